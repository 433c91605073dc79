/*
 * batch_convert.c - validation of a compressed batch's records and
 * recompression to a topic's codec; see batch_convert.h for the contract.
 *
 * Kafka behaviour followed here, from its sources (storage/.../log/
 * LogValidator.java validateMessagesAndAssignOffsetsCompressed and
 * buildRecordsAndAssignOffsets, clients/.../record/DefaultRecordBatch.java
 * StreamRecordIterator, core/.../log/UnifiedLog.scala append):
 *   - a batch whose codec is not the topic's is rebuilt with the same
 *     producer id, epoch, base sequence and transactional flag and the
 *     same records; one whose codec is the topic's is stored as produced
 *     (in-place assignment). An uncompressed control batch is never
 *     compressed;
 *   - every record of a compressed batch is read and checked as those of
 *     an uncompressed one: compacted topics need keys (INVALID_RECORD,
 *     with the record's index), timestamps (INVALID_TIMESTAMP), and the
 *     stream must hold recordCount records and nothing after them
 *     (INVALID_RECORD);
 *   - a batch whose size changed in conversion is checked against
 *     max.message.bytes again: RecordTooLargeException, MESSAGE_TOO_LARGE.
 *
 * Where runnel differs, on purpose:
 *   - Kafka has no bound on decompression (it even collects every record
 *     of a batch it rebuilds); runnel stops at records_bytes_max and
 *     answers MESSAGE_TOO_LARGE, Kafka's answer for a batch that is too
 *     large once converted.
 *   - A stream that does not decompress is INVALID_RECORD. Kafka wraps the
 *     codec's IOException in a plain KafkaException ("Failed to decompress
 *     record stream"), which reaches the client as UNKNOWN_SERVER_ERROR,
 *     and answers INVALID_RECORD only when the stream ends inside a record.
 *     The bytes passed the CRC, so the fault is the producer's and final:
 *     CORRUPT_MESSAGE would make clients retry the same bytes, and
 *     UNKNOWN_SERVER_ERROR would send an operator looking for a broker bug.
 *   - Inner offset deltas other than 0..n-1 from a client are refused, as
 *     record_batch.c refuses them in uncompressed batches; Kafka rebuilds
 *     the batch with deltas 0..n-1 instead. So the records are copied byte
 *     for byte: Kafka's rebuild re-encodes each record, which gives the
 *     same bytes for every record a client writes canonically (attributes
 *     0, shortest varints), and the same values, offsets and timestamps
 *     for any other.
 *
 * Invariants:
 *   - records are decompressed at most once per call, into the arena,
 *     never past the bound given to compress_decode;
 *   - every record byte is read through record_iter (a bounded kreader);
 *   - a batch handed back frames as one whole batch of size_bytes with a
 *     CRC-32C over its bytes, and its records are the validated ones.
 */
#include "batch_convert.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "arena.h"
#include "gen/errors.h"
#include "wire.h"

/* The attribute bits a rebuilt batch keeps besides the codec; Kafka
 * computes the attributes of a new batch from these and drops bits 7-15. */
#define BC_ATTR_KEPT_MASK (RECORD_BATCH_ATTR_LOG_APPEND_TIME | RECORD_BATCH_ATTR_TRANSACTIONAL | \
                           RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_DELETE_HORIZON)

/* The largest batch a batchLength (int32) can describe. */
#define BC_BATCH_BYTES_MAX ((size_t)INT32_MAX + RECORD_BATCH_LOG_OVERHEAD_BYTES)

__attribute__((format(printf, 4, 5)))
static int16_t bc_fail(struct record_batch_check *out, int16_t code, int32_t record_index, const char *fmt, ...)
{
        va_list ap;

        assert(code != KAFKA_NONE);
        assert(record_index >= -1);
        out->error_code = code;
        out->record_index = record_index;
        out->is_records_walked = false;
        va_start(ap, fmt);
        vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
        va_end(ap);
        return code;
}

static const char *bc_codec_name(int codec)
{
        const char *name = compress_codec_name((enum compress_codec)codec);

        assert(name != NULL);
        return name;
}

/* ---- record walk ---- */

/* LogValidator.recordHasInvalidTimestamp, without overflow. */
static bool bc_is_timestamp_in_range(int64_t ts_ms, const struct record_batch_policy *policy)
{
        int64_t behind_ms, ahead_ms;

        if (__builtin_sub_overflow(policy->now_ms, ts_ms, &behind_ms))
                return false;
        if (__builtin_sub_overflow(ts_ms, policy->now_ms, &ahead_ms))
                return false;
        return behind_ms <= policy->timestamp_before_max_ms && ahead_ms <= policy->timestamp_after_max_ms;
}

/* LogValidator.validateTimestamp for one record: the clock bounds (when
 * the policy asks for them), and no LogAppendTime bit from a producer
 * whatever the policy's clock checks (record_batch.h). */
static int16_t bc_check_timestamp(const struct record_view *rec, int32_t idx, const struct record_batch_policy *policy,
                                  struct record_batch_check *out)
{
        if (!policy->is_log_append_time && rec->timestamp_ms != RECORD_BATCH_NO_TIMESTAMP) {
                if (policy->is_timestamp_checked && !bc_is_timestamp_in_range(rec->timestamp_ms, policy))
                        return bc_fail(out, KAFKA_INVALID_TIMESTAMP, idx,
                                       "timestamp %lld of record %d is out of range [now-%lld, now+%lld]",
                                       (long long)rec->timestamp_ms, idx,
                                       (long long)policy->timestamp_before_max_ms,
                                       (long long)policy->timestamp_after_max_ms);
        } else if (record_batch_is_log_append_time(&out->header)) {
                return bc_fail(out, KAFKA_INVALID_TIMESTAMP, idx,
                               "record %d: producers may not set the LogAppendTime timestamp type", idx);
        }
        return KAFKA_NONE;
}

/*
 * Every record of records[0..records_bytes), decompressed from the batch
 * whose header out->header holds; the checks record_batch.c applies to the
 * records of an uncompressed batch.
 */
static int16_t bc_check_records(const uint8_t *records, size_t records_bytes, const struct record_batch_policy *policy,
                                struct record_batch_check *out)
{
        const struct record_batch_header *h = &out->header;
        bool is_client = policy != NULL && policy->is_from_client;
        struct record_iter it;
        struct record_view rec;
        int64_t max_timestamp_ms = RECORD_BATCH_NO_TIMESTAMP;
        int32_t prev_delta = -1;

        assert(records != NULL);
        record_iter_init_records(&it, h, records, records_bytes);
        while (record_iter_next(&it, &rec)) {
                int32_t idx = it.index - 1;

                assert(idx >= 0 && idx < h->record_count);
                /* Kafka would rebuild a client's batch with deltas 0..n-1;
                 * runnel refuses it, as it does uncompressed (file top). */
                if (is_client ? rec.offset_delta != idx
                              : rec.offset_delta <= prev_delta || rec.offset_delta > h->last_offset_delta)
                        return bc_fail(out, KAFKA_INVALID_RECORD, idx,
                                       "record %d of the %s batch has offsetDelta %d after %d (lastOffsetDelta %d)",
                                       idx, bc_codec_name(record_batch_codec(h)), rec.offset_delta, prev_delta,
                                       h->last_offset_delta);
                prev_delta = rec.offset_delta;
                if (policy != NULL && policy->is_compacted && rec.key.len < 0)
                        return bc_fail(out, KAFKA_INVALID_RECORD, idx,
                                       "compacted topic cannot accept record %d without a key", idx);
                if (policy != NULL) {
                        int16_t err = bc_check_timestamp(&rec, idx, policy, out);

                        if (err != KAFKA_NONE)
                                return err;
                }
                if (rec.timestamp_ms > max_timestamp_ms)
                        max_timestamp_ms = rec.timestamp_ms;
        }
        if (it.error_code != KAFKA_NONE)
                return bc_fail(out, it.error_code, it.index, "%s", it.reason);
        assert(it.index == h->record_count);
        out->is_records_walked = true;
        out->max_timestamp_ms = max_timestamp_ms;
        return KAFKA_NONE;
}

/* ---- decompression ---- */

/*
 * Decompresses the records of the validated batch at p, at most
 * records_bytes_max bytes; is_bound_max_message says the bound is
 * max.message.bytes (an uncompressed target) rather than the caller's.
 */
static int16_t bc_decompress(const uint8_t *p, size_t records_bytes_max, bool is_bound_max_message, struct arena *a,
                             const uint8_t **records, size_t *records_bytes, struct record_batch_check *out)
{
        const struct record_batch_header *h = &out->header;
        int codec = record_batch_codec(h);
        size_t src_bytes = record_batch_size_bytes(h) - RECORD_BATCH_HEADER_BYTES;
        uint8_t *dst;
        size_t dst_bytes;

        assert(codec >= RECORD_BATCH_CODEC_GZIP && codec <= RECORD_BATCH_CODEC_MAX);
        assert(record_batch_size_bytes(h) >= RECORD_BATCH_HEADER_BYTES);
        *records = NULL;
        *records_bytes = 0;

        int rc = compress_decode((enum compress_codec)codec, p + RECORD_BATCH_HEADER_BYTES, src_bytes,
                                 records_bytes_max, a, &dst, &dst_bytes);

        switch (rc) {
        case 0:
                break;
        case -EFBIG:
                if (is_bound_max_message)
                        return bc_fail(out, KAFKA_MESSAGE_TOO_LARGE, -1,
                                       "%s records decompress to more than %zu bytes; uncompressed the batch "
                                       "would pass max.message.bytes %zu",
                                       bc_codec_name(codec), records_bytes_max,
                                       records_bytes_max + RECORD_BATCH_HEADER_BYTES);
                return bc_fail(out, KAFKA_MESSAGE_TOO_LARGE, -1,
                               "%s records decompress to more than the broker's limit of %zu bytes",
                               bc_codec_name(codec), records_bytes_max);
        case -EBADMSG:
                /* INVALID_RECORD, not Kafka's UNKNOWN_SERVER_ERROR: file top. */
                return bc_fail(out, KAFKA_INVALID_RECORD, -1,
                               "the %zu bytes of %s-compressed records do not decompress (corrupt or truncated "
                               "stream, or a framing Kafka refuses)", src_bytes, bc_codec_name(codec));
        case -ENOMEM:
                return bc_fail(out, KAFKA_MESSAGE_TOO_LARGE, -1,
                               "decompressing %zu bytes of %s records needs more memory than a request may use",
                               src_bytes, bc_codec_name(codec));
        default:
                /* -EIO: the library failed, not the input (compress.h);
                 * -EINVAL cannot happen for a codec the header check let by. */
                assert(rc == -EIO);
                return bc_fail(out, KAFKA_UNKNOWN_SERVER_ERROR, -1,
                               "the %s library failed to decompress; see the broker log", bc_codec_name(codec));
        }
        assert(dst != NULL && dst_bytes <= records_bytes_max);
        *records = dst;
        *records_bytes = dst_bytes;
        return KAFKA_NONE;
}

/* Decompresses the records of the validated compressed batch at p and
 * walks them; on success *records holds them. */
static int16_t bc_walk_compressed(const uint8_t *p, const struct record_batch_policy *policy, size_t records_bytes_max,
                                  bool is_bound_max_message, struct arena *a, const uint8_t **records,
                                  size_t *records_bytes, struct record_batch_check *out)
{
        int16_t err;

        assert(out->error_code == KAFKA_NONE);
        assert(record_batch_codec(&out->header) != RECORD_BATCH_CODEC_NONE);
        assert(!out->is_records_walked);
        err = bc_decompress(p, records_bytes_max, is_bound_max_message, a, records, records_bytes, out);
        if (err != KAFKA_NONE)
                return err;
        return bc_check_records(*records, *records_bytes, policy, out);
}

int16_t record_batch_validate_compressed_records(const void *buf, size_t len,
                                                 const struct record_batch_policy *policy,
                                                 size_t records_bytes_max, struct arena *a,
                                                 struct record_batch_check *out)
{
        const uint8_t *records;
        size_t records_bytes;
        int16_t err;

        assert(a != NULL && out != NULL);
        err = record_batch_validate(buf, len, policy, out);
        if (err != KAFKA_NONE)
                return err;
        if (record_batch_codec(&out->header) == RECORD_BATCH_CODEC_NONE) {
                assert(out->is_records_walked);
                return KAFKA_NONE;
        }
        return bc_walk_compressed(buf, policy, records_bytes_max, false, a, &records, &records_bytes, out);
}

/* ---- rebuild ---- */

static void bc_store_u32(uint8_t *p, uint32_t v)
{
        struct kwriter w;

        kw_init(&w, p, 4);
        kw_u32(&w, v);
}

static void bc_store_u16(uint8_t *p, uint16_t v)
{
        struct kwriter w;

        kw_init(&w, p, 2);
        kw_u16(&w, v);
}

/*
 * Writes the header of the new batch at dst, whose records are already in
 * place after it: the source's 61 bytes with batchLength, attributes and
 * CRC of the new batch. Refreshes check->header to describe it.
 */
static void bc_write_header(uint8_t *dst, size_t size_bytes, const uint8_t *src, int codec,
                            struct record_batch_check *check)
{
        uint16_t attributes = (uint16_t)check->header.attributes;

        assert(size_bytes >= RECORD_BATCH_HEADER_BYTES && size_bytes <= BC_BATCH_BYTES_MAX);
        assert(codec >= RECORD_BATCH_CODEC_NONE && codec <= RECORD_BATCH_CODEC_MAX);
        attributes = (uint16_t)((attributes & BC_ATTR_KEPT_MASK) | (uint16_t)codec);
        memcpy(dst, src, RECORD_BATCH_HEADER_BYTES);
        bc_store_u32(dst + RECORD_BATCH_OFFSET_LENGTH, (uint32_t)(size_bytes - RECORD_BATCH_LOG_OVERHEAD_BYTES));
        bc_store_u16(dst + RECORD_BATCH_OFFSET_ATTRIBUTES, attributes);
        bc_store_u32(dst + RECORD_BATCH_OFFSET_CRC, record_batch_compute_crc(dst, size_bytes));

        struct record_batch_header before = check->header;
        enum record_batch_frame f = record_batch_frame(dst, size_bytes, &check->header);

        assert(f == RECORD_BATCH_FRAME_OK);
        (void)f;
        assert(record_batch_size_bytes(&check->header) == size_bytes);
        assert(record_batch_codec(&check->header) == codec);
        assert(check->header.base_offset == before.base_offset);
        assert(check->header.last_offset_delta == before.last_offset_delta);
        assert(check->header.record_count == before.record_count);
        assert(check->header.producer_id == before.producer_id);
        assert(check->header.base_sequence == before.base_sequence);
        assert(check->header.max_timestamp_ms == before.max_timestamp_ms);
        (void)before;
}

/* Kafka's check of a converted batch against max.message.bytes, and the
 * int32 batchLength. */
static int16_t bc_check_new_size(size_t size_bytes, const struct record_batch_policy *policy, int codec,
                                 struct record_batch_check *check)
{
        if (size_bytes > BC_BATCH_BYTES_MAX)
                return bc_fail(check, KAFKA_MESSAGE_TOO_LARGE, -1,
                               "the batch would be %zu bytes as %s, more than a batch can hold",
                               size_bytes, bc_codec_name(codec));
        if (policy != NULL && policy->batch_bytes_max != 0 && size_bytes > policy->batch_bytes_max)
                return bc_fail(check, KAFKA_MESSAGE_TOO_LARGE, -1,
                               "the batch is %zu bytes as %s, above max.message.bytes %u",
                               size_bytes, bc_codec_name(codec), policy->batch_bytes_max);
        return KAFKA_NONE;
}

/* The new batch: records[0..records_bytes) under codec, behind src's header. */
static int16_t bc_build(const uint8_t *src, const uint8_t *records, size_t records_bytes, int codec, int level,
                        const struct record_batch_policy *policy, struct arena *a,
                        struct record_batch_recompressed *out, struct record_batch_check *check)
{
        uint8_t *batch;
        size_t size_bytes;
        int16_t err;

        assert(records != NULL || records_bytes == 0);
        if (codec == RECORD_BATCH_CODEC_NONE) {
                size_bytes = RECORD_BATCH_HEADER_BYTES + records_bytes;
                err = bc_check_new_size(size_bytes, policy, codec, check);
                if (err != KAFKA_NONE)
                        return err;
                batch = arena_alloc(a, size_bytes);
                if (batch == NULL)
                        return bc_fail(check, KAFKA_MESSAGE_TOO_LARGE, -1,
                                       "the %zu-byte uncompressed batch needs more memory than a request may use",
                                       size_bytes);
                if (records_bytes != 0)
                        memcpy(batch + RECORD_BATCH_HEADER_BYTES, records, records_bytes);
        } else {
                uint8_t *payload;
                size_t payload_bytes;
                int rc = compress_encode((enum compress_codec)codec, level, records, records_bytes,
                                         RECORD_BATCH_HEADER_BYTES, a, &payload, &payload_bytes);

                switch (rc) {
                case 0:
                        break;
                case -ENOMEM:
                case -EFBIG:
                        return bc_fail(check, KAFKA_MESSAGE_TOO_LARGE, -1,
                                       "compressing %zu bytes of records with %s needs more memory than a "
                                       "request may use", records_bytes, bc_codec_name(codec));
                default:
                        assert(rc == -EIO);     /* -EINVAL: level checked on entry */
                        return bc_fail(check, KAFKA_UNKNOWN_SERVER_ERROR, -1,
                                       "the %s library failed to compress; see the broker log",
                                       bc_codec_name(codec));
                }
                size_bytes = RECORD_BATCH_HEADER_BYTES + payload_bytes;
                err = bc_check_new_size(size_bytes, policy, codec, check);
                if (err != KAFKA_NONE)
                        return err;
                batch = payload - RECORD_BATCH_HEADER_BYTES;
        }
        bc_write_header(batch, size_bytes, src, codec, check);
        out->is_converted = true;
        out->bytes = batch;
        out->size_bytes = size_bytes;
        return KAFKA_NONE;
}

int16_t record_batch_recompress(const void *buf, size_t len, const struct record_batch_policy *policy,
                                enum compress_codec codec, int level, size_t records_bytes_max,
                                struct arena *a, struct record_batch_recompressed *out,
                                struct record_batch_check *check)
{
        const uint8_t *p = buf;
        const uint8_t *records;
        size_t records_bytes;
        int16_t err;

        assert(a != NULL && out != NULL && check != NULL);
        assert((int)codec >= RECORD_BATCH_CODEC_NONE && (int)codec <= RECORD_BATCH_CODEC_MAX);
        assert(codec == COMPRESS_CODEC_NONE || compress_level_is_valid(codec, level));
        out->is_converted = false;
        out->bytes = NULL;
        out->size_bytes = 0;

        err = record_batch_validate(buf, len, policy, check);
        if (err != KAFKA_NONE)
                return err;
        assert(record_batch_size_bytes(&check->header) == len);

        int source = record_batch_codec(&check->header);

        /* Kafka's in-place cases: the topic's codec already, or an
         * uncompressed control batch ("do not compress control records"). */
        if (source == (int)codec || (source == RECORD_BATCH_CODEC_NONE && record_batch_is_control(&check->header))) {
                if (source != RECORD_BATCH_CODEC_NONE && policy != NULL && policy->is_compacted)
                        return bc_walk_compressed(p, policy, records_bytes_max, false, a, &records, &records_bytes,
                                                  check);
                return KAFKA_NONE;
        }

        if (source == RECORD_BATCH_CODEC_NONE) {
                /* record_batch_validate walked them already. */
                assert(check->is_records_walked);
                records = p + RECORD_BATCH_HEADER_BYTES;
                records_bytes = len - RECORD_BATCH_HEADER_BYTES;
        } else {
                size_t bound_bytes = records_bytes_max;
                bool is_bound_max_message = false;

                /* Uncompressed, the records must fit max.message.bytes:
                 * no need to decompress further than that. */
                if (codec == COMPRESS_CODEC_NONE && policy != NULL && policy->batch_bytes_max != 0) {
                        assert(policy->batch_bytes_max >= len && len >= RECORD_BATCH_HEADER_BYTES);
                        size_t fit_bytes = policy->batch_bytes_max - RECORD_BATCH_HEADER_BYTES;

                        if (fit_bytes <= bound_bytes) {
                                bound_bytes = fit_bytes;
                                is_bound_max_message = true;
                        }
                }
                err = bc_walk_compressed(p, policy, bound_bytes, is_bound_max_message, a, &records, &records_bytes,
                                         check);
                if (err != KAFKA_NONE)
                        return err;
        }
        return bc_build(p, records, records_bytes, (int)codec, level, policy, a, out, check);
}
