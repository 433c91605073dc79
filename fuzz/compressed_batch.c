/*
 * compressed_batch.c - fuzz target: looking inside compressed record batches
 * on produce (protocol/batch_convert.h): record_batch_validate_compressed_records
 * and record_batch_recompress.
 *
 * Input: two control bytes, then one record batch.
 *
 *   ctl0 bit 0   compress the records first: when the batch is uncompressed,
 *                its bytes after the 61-byte header are compressed with
 *                the codec of ctl1 bits 4-5 and the attributes say so. The
 *                fuzzer then mutates plain records and still reaches the
 *                record walk after decompression.
 *   ctl0 bit 1   write the right batchLength and CRC-32C (after bit 0), so
 *                mutations get past the CRC
 *   ctl0 bits 2-6  policy: from client, compacted, LogAppendTime,
 *                timestamps checked, max.message.bytes small
 *   ctl1 bits 0-2  target codec of recompress (5-7: none)
 *   ctl1 bit 3   records_bytes_max 1 KiB instead of 64 KiB
 *
 * Properties: no crash, no read out of bounds; validate_compressed_records
 * refuses whatever record_batch_validate refuses, with the same code, and
 * for an uncompressed batch answers exactly as it; a batch recompress
 * builds validates, has the target codec, the produced header fields and
 * the same records once decompressed.
 */
#include <errno.h>

#include "fuzz.h"
#include "protocol/arena.h"
#include "protocol/batch_convert.h"
#include "protocol/compress.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"

#define ARENA_BYTES (8u << 20)

/* Field by field: the struct has padding that memcmp would compare. */
static bool header_eq(const struct record_batch_header *a, const struct record_batch_header *b)
{
        return a->base_offset == b->base_offset && a->batch_length == b->batch_length &&
               a->partition_leader_epoch == b->partition_leader_epoch && a->magic == b->magic &&
               a->crc == b->crc && a->attributes == b->attributes &&
               a->last_offset_delta == b->last_offset_delta && a->base_timestamp_ms == b->base_timestamp_ms &&
               a->max_timestamp_ms == b->max_timestamp_ms && a->producer_id == b->producer_id &&
               a->producer_epoch == b->producer_epoch && a->base_sequence == b->base_sequence &&
               a->record_count == b->record_count;
}

static void put_u32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

/* The records of a whole, valid batch as plain bytes. */
static int records_of(const uint8_t *batch, size_t len, struct arena *a, const uint8_t **out, size_t *out_bytes)
{
        int codec = batch[RECORD_BATCH_OFFSET_ATTRIBUTES + 1] & RECORD_BATCH_ATTR_CODEC_MASK;
        const uint8_t *records = batch + RECORD_BATCH_HEADER_BYTES;
        size_t records_bytes = len - RECORD_BATCH_HEADER_BYTES;
        if (codec == RECORD_BATCH_CODEC_NONE) {
                *out = records;
                *out_bytes = records_bytes;
                return 0;
        }
        uint8_t *plain;
        int rc = compress_decode((enum compress_codec)codec, records, records_bytes, 1u << 20, a, &plain, out_bytes);
        *out = plain;
        return rc;
}

/* Replaces buf's records by their compressed form; returns the new buffer
 * (malloc'd) or buf itself when nothing was done. */
static uint8_t *compress_records(uint8_t *buf, size_t *len, enum compress_codec codec, struct arena *a)
{
        if (*len < RECORD_BATCH_HEADER_BYTES ||
            (buf[RECORD_BATCH_OFFSET_ATTRIBUTES + 1] & RECORD_BATCH_ATTR_CODEC_MASK) != 0)
                return buf;
        uint8_t *packed;
        size_t packed_bytes;
        int rc = compress_encode(codec, compress_level_default(codec), buf + RECORD_BATCH_HEADER_BYTES,
                                 *len - RECORD_BATCH_HEADER_BYTES, 0, a, &packed, &packed_bytes);
        FUZZ_CHECK(rc == 0, "compress_encode returned %d", rc);
        size_t n = RECORD_BATCH_HEADER_BYTES + packed_bytes;
        uint8_t *out = malloc(n);
        memcpy(out, buf, RECORD_BATCH_HEADER_BYTES);
        memcpy(out + RECORD_BATCH_HEADER_BYTES, packed, packed_bytes);
        out[RECORD_BATCH_OFFSET_ATTRIBUTES + 1] |= (uint8_t)codec;
        free(buf);
        *len = n;
        return out;
}

static void check_recompressed(const uint8_t *src, size_t src_len, const struct record_batch_policy *policy,
                               enum compress_codec codec, const struct record_batch_recompressed *rb,
                               const struct record_batch_check *check)
{
        struct record_batch_header old, new;
        FUZZ_CHECK(record_batch_frame(src, src_len, &old) == RECORD_BATCH_FRAME_OK, "source frames");
        if (!rb->is_converted) {
                FUZZ_CHECK(rb->bytes == NULL, "not converted, but bytes");
                FUZZ_CHECK(record_batch_codec(&old) == (int)codec ||
                                   (record_batch_is_control(&old) && record_batch_codec(&old) == 0),
                           "codec %d kept, target %d", record_batch_codec(&old), codec);
                return;
        }
        FUZZ_CHECK(rb->bytes != NULL && rb->size_bytes >= RECORD_BATCH_HEADER_BYTES, "converted, no batch");
        FUZZ_CHECK(record_batch_frame(rb->bytes, rb->size_bytes, &new) == RECORD_BATCH_FRAME_OK &&
                           record_batch_size_bytes(&new) == rb->size_bytes,
                   "converted batch does not frame");
        FUZZ_CHECK(header_eq(&check->header, &new), "check->header is not the new batch's");
        FUZZ_CHECK(record_batch_codec(&new) == (int)codec, "converted to %d, asked %d", record_batch_codec(&new),
                   codec);
        FUZZ_CHECK(new.base_offset == old.base_offset && new.partition_leader_epoch == old.partition_leader_epoch &&
                           new.last_offset_delta == old.last_offset_delta &&
                           new.base_timestamp_ms == old.base_timestamp_ms &&
                           new.max_timestamp_ms == old.max_timestamp_ms && new.producer_id == old.producer_id &&
                           new.producer_epoch == old.producer_epoch && new.base_sequence == old.base_sequence &&
                           new.record_count == old.record_count,
                   "converted header fields differ");
        FUZZ_CHECK((new.attributes & ~RECORD_BATCH_ATTR_CODEC_MASK) == (old.attributes & 0x78),
                   "attributes 0x%x from 0x%x", new.attributes, old.attributes);

        struct arena a;
        arena_init(&a, ARENA_BYTES);
        struct record_batch_check again;
        FUZZ_CHECK(record_batch_validate_compressed_records(rb->bytes, rb->size_bytes, policy, 1u << 20, &a,
                                                            &again) == KAFKA_NONE,
                   "converted batch does not validate: %s", again.reason);
        const uint8_t *r1, *r2;
        size_t n1, n2;
        FUZZ_CHECK(records_of(src, src_len, &a, &r1, &n1) == 0, "source records");
        FUZZ_CHECK(records_of(rb->bytes, rb->size_bytes, &a, &r2, &n2) == 0, "converted records");
        FUZZ_CHECK(n1 == n2 && (n1 == 0 || memcmp(r1, r2, n1) == 0), "records changed in conversion");
        arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fuzz_input in = { data, size };
        uint8_t ctl0 = fuzz_u8(&in);
        uint8_t ctl1 = fuzz_u8(&in);
        size_t len = in.left;
        uint8_t *buf = fuzz_dup(in.p, len);
        struct arena a;
        arena_init(&a, ARENA_BYTES);

        if (ctl0 & 1)
                buf = compress_records(buf, &len, (enum compress_codec)((ctl1 >> 4) % 4 + 1), &a);
        if ((ctl0 & 2) && len >= RECORD_BATCH_HEADER_BYTES) {
                put_u32(buf + RECORD_BATCH_OFFSET_LENGTH, (uint32_t)(len - RECORD_BATCH_LOG_OVERHEAD_BYTES));
                put_u32(buf + RECORD_BATCH_OFFSET_CRC, record_batch_compute_crc(buf, len));
        }
        arena_reset(&a);

        struct record_batch_policy policy = {
                .is_from_client = ctl0 & 4,
                .is_compacted = ctl0 & 8,
                .is_log_append_time = ctl0 & 16,
                .is_timestamp_checked = ctl0 & 32,
                .now_ms = 1700000000000LL,
                .timestamp_before_max_ms = 3600000,
                .timestamp_after_max_ms = 3600000,
                .batch_bytes_max = (ctl0 & 64) ? 200 : 0,
        };
        size_t records_max = (ctl1 & 8) ? 1024 : 64 * 1024;

        struct record_batch_check plain, deep;
        int16_t e1 = record_batch_validate(buf, len, &policy, &plain);
        int16_t e2 = record_batch_validate_compressed_records(buf, len, &policy, records_max, &a, &deep);
        FUZZ_CHECK(e2 == deep.error_code, "returned %d, check says %d", e2, deep.error_code);
        FUZZ_CHECK(e1 == KAFKA_NONE || e2 == e1, "validate %d, validate_compressed_records %d", e1, e2);
        if (e1 == KAFKA_NONE && record_batch_codec(&plain.header) == RECORD_BATCH_CODEC_NONE)
                FUZZ_CHECK(e2 == KAFKA_NONE && deep.max_timestamp_ms == plain.max_timestamp_ms,
                           "uncompressed batch judged differently: %s", deep.reason);
        if (e2 == KAFKA_NONE)
                FUZZ_CHECK(deep.is_records_walked, "valid, records not walked");
        arena_reset(&a);

        int codec_choice = ctl1 & 7;
        enum compress_codec codec = codec_choice <= 4 ? (enum compress_codec)codec_choice : COMPRESS_CODEC_NONE;
        struct record_batch_recompressed rb;
        struct record_batch_check check;
        int level = codec == COMPRESS_CODEC_NONE ? 0 : compress_level_default(codec);
        int16_t e3 = record_batch_recompress(buf, len, &policy, codec, level, records_max, &a, &rb, &check);
        FUZZ_CHECK(e3 == check.error_code, "returned %d, check says %d", e3, check.error_code);
        FUZZ_CHECK(e1 == KAFKA_NONE || e3 == e1, "validate %d, recompress %d", e1, e3);
        if (e3 == KAFKA_NONE)
                check_recompressed(buf, len, &policy, codec, &rb, &check);
        else
                FUZZ_CHECK(!rb.is_converted, "error %d, but converted", e3);

        arena_free(&a);
        free(buf);
        return 0;
}
