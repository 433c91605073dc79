/*
 * test_batch_convert.c - protocol/batch_convert: recompression between
 * every pair of codecs keeps the header and the records and writes a batch
 * that validates; equal codecs cost nothing; Kafka's own batches convert to
 * exactly what Kafka's builder writes; bombs are refused within the bound;
 * corrupt streams, null keys on compacted topics, offset-delta gaps and
 * bad timestamps inside compressed batches are refused with Kafka's code
 * and the index of the record at fault.
 *
 * Batches under test are exactly-sized heap copies, so a read past the end
 * is an ASan report under `make asan-unit`. Each call under test gets an
 * arena of its own, so what it allocated can be measured.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/arena.h"
#include "protocol/batch_convert.h"
#include "protocol/compress.h"
#include "protocol/crc32c.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "protocol/wire.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define HDR RECORD_BATCH_HEADER_BYTES
#define CODEC_COUNT 5                   /* none, gzip, snappy, lz4, zstd */
#define TEST_ARENA_BYTES (256u * MIB)
#define TEST_RECORDS_MAX (16u * MIB)
#define T0 1700000000000LL

static const char *codec_name(int c)
{
        return compress_codec_name((enum compress_codec)c);
}

static int default_level(int c)
{
        return c == COMPRESS_CODEC_NONE ? 0 : compress_level_default((enum compress_codec)c);
}

static uint64_t rng_next(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545F4914F6CDD1DULL;
}

static struct kbytes kb(const char *s)
{
        if (s == NULL)
                return KBYTES_NULL;
        return (struct kbytes){ (const uint8_t *)s, (int32_t)strlen(s) };
}

static bool kb_is(struct kbytes b, struct kbytes want)
{
        if (want.len < 0)
                return b.len == -1;
        return b.len == want.len && (want.len == 0 || memcmp(b.ptr, want.ptr, (size_t)want.len) == 0);
}

static struct record_batch_policy client_policy(void)
{
        struct record_batch_policy p = {
                .is_from_client = true,
                .is_timestamp_checked = true,
                .now_ms = T0 + 1000,
                .timestamp_before_max_ms = INT64_MAX,
                .timestamp_after_max_ms = INT64_MAX,
                .batch_bytes_max = 16 * MIB,
        };
        return p;
}

static struct record_batch_policy compacted_policy(void)
{
        struct record_batch_policy p = client_policy();

        p.is_compacted = true;
        return p;
}

/* ---- the records every conversion carries ---- */

static const struct record_header_view hdrs_three[] = {
        { { (const uint8_t *)"h1", 2 }, { (const uint8_t *)"x", 1 } },
        { { (const uint8_t *)"h2", 2 }, { NULL, -1 } },
        { { (const uint8_t *)"", 0 }, { (const uint8_t *)"", 0 } },
};
static const struct record_header_view hdrs_one[] = {
        { { (const uint8_t *)"trace-id", 8 }, { (const uint8_t *)"0af7651916cd43dd8448eb211c80319c", 32 } },
};

static char big_value[4096];

/* Keys, values, headers, nulls of each, empty ones, a timestamp going
 * backwards, one value big enough for every codec to find repeats. */
static void fill_records(struct record_spec *r)
{
        size_t n = 0;

        for (size_t i = 0; i + 1 < sizeof(big_value); i++)
                big_value[i] = "the quick brown fox jumps over the lazy dog "[i % 44];
        big_value[sizeof(big_value) - 1] = '\0';
        memset(r, 0, 6 * sizeof(*r));
        r[n++] = (struct record_spec){ kb("key-0"), kb("value-0"), T0, NULL, 0 };
        r[n++] = (struct record_spec){ kb(NULL), kb("value-1"), T0 + 5, hdrs_three, 3 };
        r[n++] = (struct record_spec){ kb("key-2"), kb(NULL), T0 - 10, NULL, 0 };
        r[n++] = (struct record_spec){ kb(""), kb(""), T0 + 7, NULL, 0 };
        r[n++] = (struct record_spec){ kb("key-4"), kb(big_value), T0 + 9, hdrs_one, 1 };
        r[n++] = (struct record_spec){ kb(NULL), kb(NULL), T0 + 2, NULL, 0 };
        cr_assert_eq(n, 6);
}
#define RECORD_COUNT 6

/* ---- building batches ---- */

static uint8_t *dup_exact(const void *p, size_t len)
{
        uint8_t *d = malloc(len ? len : 1);

        cr_assert_not_null(d);
        if (len)
                memcpy(d, p, len);
        return d;
}

/*
 * A batch with header h (batchLength, attributes' codec bits and CRC
 * recomputed) and records[0..n) compressed with codec at its default
 * level; an exactly-sized heap copy the caller frees.
 */
static uint8_t *wrap_records(const struct record_batch_header *h, const uint8_t *records, size_t n, int codec,
                             size_t *len_out)
{
        struct arena a;
        const uint8_t *payload = records;
        size_t payload_bytes = n;

        arena_init(&a, TEST_ARENA_BYTES);
        if (codec != COMPRESS_CODEC_NONE) {
                uint8_t *out;

                cr_assert_eq(compress_encode((enum compress_codec)codec, default_level(codec), records, n, 0, &a,
                                             &out, &payload_bytes), 0);
                payload = out;
        }
        size_t len = HDR + payload_bytes;
        uint8_t *b = malloc(len);
        struct kwriter w;

        cr_assert_not_null(b);
        kw_init(&w, b, len);
        kw_i64(&w, h->base_offset);
        kw_i32(&w, (int32_t)(len - 12));
        kw_i32(&w, h->partition_leader_epoch);
        kw_i8(&w, RECORD_BATCH_MAGIC);
        kw_u32(&w, 0);
        kw_i16(&w, (int16_t)((h->attributes & ~RECORD_BATCH_ATTR_CODEC_MASK) | codec));
        kw_i32(&w, h->last_offset_delta);
        kw_i64(&w, h->base_timestamp_ms);
        kw_i64(&w, h->max_timestamp_ms);
        kw_i64(&w, h->producer_id);
        kw_i16(&w, h->producer_epoch);
        kw_i32(&w, h->base_sequence);
        kw_i32(&w, h->record_count);
        kw_raw(&w, payload, payload_bytes);
        cr_assert(w.p == w.end);
        uint32_t crc = crc32c(b + 21, len - 21);

        b[17] = (uint8_t)(crc >> 24);
        b[18] = (uint8_t)(crc >> 16);
        b[19] = (uint8_t)(crc >> 8);
        b[20] = (uint8_t)crc;
        arena_free(&a);
        *len_out = len;
        return b;
}

/* An idempotent, transactional producer's batch of the given records. */
static uint8_t *encode_plain(const struct record_spec *recs, uint32_t count, size_t *len_out)
{
        struct record_batch_spec spec;

        record_batch_spec_init(&spec, recs, count);
        spec.partition_leader_epoch = 7;
        spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
        spec.producer_id = 1234;
        spec.producer_epoch = 5;
        spec.base_sequence = 42;
        size_t len = record_batch_encoded_size(&spec);
        uint8_t *b = malloc(len);

        cr_assert_not_null(b);
        cr_assert_eq(record_batch_encode(&spec, b, len), len);
        *len_out = len;
        return b;
}

/* The same batch with its records compressed with codec. */
static uint8_t *encode_batch(const struct record_spec *recs, uint32_t count, int codec, size_t *len_out)
{
        size_t plain_len;
        uint8_t *plain = encode_plain(recs, count, &plain_len);
        struct record_batch_header h;

        cr_assert_eq(record_batch_frame(plain, plain_len, &h), RECORD_BATCH_FRAME_OK);
        uint8_t *b = wrap_records(&h, plain + HDR, plain_len - HDR, codec, len_out);

        free(plain);
        return b;
}

/* A record written field by field, so tests can put in what no encoder
 * would: any offset delta, any attributes. */
static void put_record(struct kwriter *w, int32_t offset_delta, int64_t ts_delta_ms, const char *key,
                       const char *value)
{
        uint8_t body[256];
        struct kwriter bw;

        kw_init(&bw, body, sizeof(body));
        kw_i8(&bw, 0);
        kw_varlong(&bw, ts_delta_ms);
        kw_varint(&bw, offset_delta);
        kw_varint(&bw, key ? (int32_t)strlen(key) : -1);
        if (key)
                kw_raw(&bw, key, strlen(key));
        kw_varint(&bw, value ? (int32_t)strlen(value) : -1);
        if (value)
                kw_raw(&bw, value, strlen(value));
        kw_varint(&bw, 0);
        kw_varint(w, (int32_t)(bw.p - body));
        kw_raw(w, body, (size_t)(bw.p - body));
}

static struct record_batch_header raw_header(int32_t record_count, int32_t last_offset_delta)
{
        struct record_batch_header h = {
                .base_offset = 0,
                .partition_leader_epoch = -1,
                .magic = RECORD_BATCH_MAGIC,
                .attributes = 0,
                .last_offset_delta = last_offset_delta,
                .base_timestamp_ms = T0,
                .max_timestamp_ms = T0,
                .producer_id = -1,
                .producer_epoch = -1,
                .base_sequence = -1,
                .record_count = record_count,
        };
        return h;
}

/* Three records with the given offset deltas, in a batch under codec. */
static uint8_t *batch_with_deltas(const int32_t deltas[3], int32_t record_count, int32_t last_offset_delta,
                                  int codec, size_t *len_out)
{
        uint8_t recs[256];
        struct kwriter w;
        struct record_batch_header h = raw_header(record_count, last_offset_delta);

        kw_init(&w, recs, sizeof(recs));
        put_record(&w, deltas[0], 0, "a", "1");
        put_record(&w, deltas[1], 1, "b", "2");
        put_record(&w, deltas[2], 2, "c", "3");
        return wrap_records(&h, recs, (size_t)(w.p - recs), codec, len_out);
}

/* ---- checking what came back ---- */

static const uint8_t codec_magic[CODEC_COUNT][8] = {
        [COMPRESS_CODEC_GZIP] = { 0x1f, 0x8b },
        [COMPRESS_CODEC_SNAPPY] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 },
        [COMPRESS_CODEC_LZ4] = { 0x04, 0x22, 0x4d, 0x18 },
        [COMPRESS_CODEC_ZSTD] = { 0x28, 0xb5, 0x2f, 0xfd },
};
static const size_t codec_magic_bytes[CODEC_COUNT] = { 0, 2, 8, 4, 4 };

/*
 * The converted batch frames, validates (CRC included), carries src's
 * header with codec in place of src's codec, is written with codec, and
 * holds records byte for byte equal to want_records.
 */
static void expect_converted(const uint8_t *src, size_t src_len, const struct record_batch_recompressed *out,
                             int codec, const uint8_t *want_records, size_t want_records_bytes)
{
        struct record_batch_header sh, nh;
        struct record_batch_check c;
        struct record_batch_policy p = client_policy();
        struct arena a;

        cr_assert(out->is_converted);
        cr_assert_not_null(out->bytes);
        cr_assert_eq(record_batch_frame(src, src_len, &sh), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(record_batch_frame(out->bytes, out->size_bytes, &nh), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(record_batch_size_bytes(&nh), out->size_bytes);

        /* Header fields kept, codec bits replaced, bits 7-15 dropped. */
        cr_assert_eq(nh.base_offset, sh.base_offset);
        cr_assert_eq(nh.partition_leader_epoch, sh.partition_leader_epoch);
        cr_assert_eq(nh.magic, RECORD_BATCH_MAGIC);
        cr_assert_eq(nh.attributes, (int16_t)((sh.attributes & 0x78) | codec), "attributes 0x%x from 0x%x",
                     nh.attributes, sh.attributes);
        cr_assert_eq(nh.last_offset_delta, sh.last_offset_delta);
        cr_assert_eq(nh.base_timestamp_ms, sh.base_timestamp_ms);
        cr_assert_eq(nh.max_timestamp_ms, sh.max_timestamp_ms);
        cr_assert_eq(nh.producer_id, sh.producer_id);
        cr_assert_eq(nh.producer_epoch, sh.producer_epoch);
        cr_assert_eq(nh.base_sequence, sh.base_sequence);
        cr_assert_eq(nh.record_count, sh.record_count);

        /* The CRC, computed here from the bytes, not by the module. */
        cr_assert_eq(nh.crc, crc32c(out->bytes + 21, out->size_bytes - 21));
        cr_assert_eq(record_batch_validate(out->bytes, out->size_bytes, &p, &c), KAFKA_NONE, "%s", c.reason);

        /* Written with codec, and the records are the ones sent. */
        const uint8_t *payload = out->bytes + HDR;
        size_t payload_bytes = out->size_bytes - HDR;

        arena_init(&a, TEST_ARENA_BYTES);
        if (codec != COMPRESS_CODEC_NONE) {
                uint8_t *dec;
                size_t dec_bytes;

                cr_assert_geq(payload_bytes, codec_magic_bytes[codec]);
                cr_assert(memcmp(payload, codec_magic[codec], codec_magic_bytes[codec]) == 0,
                          "records not written as %s", codec_name(codec));
                cr_assert_eq(compress_decode((enum compress_codec)codec, payload, payload_bytes, TEST_RECORDS_MAX,
                                             &a, &dec, &dec_bytes), 0);
                payload = dec;
                payload_bytes = dec_bytes;
        }
        cr_assert_eq(payload_bytes, want_records_bytes);
        cr_assert(memcmp(payload, want_records, want_records_bytes) == 0, "records differ");
        arena_free(&a);
}

/* The records of the fixture, read back through the record iterator. */
static void expect_fixture_records(const struct record_batch_header *h, const uint8_t *records, size_t n,
                                   const struct record_spec *want)
{
        struct record_iter it;
        struct record_view r;

        record_iter_init_records(&it, h, records, n);
        for (int i = 0; i < RECORD_COUNT; i++) {
                struct record_header_iter hit;
                struct record_header_view hv;

                cr_assert(record_iter_next(&it, &r), "record %d: %s", i, it.reason);
                cr_assert_eq(r.offset_delta, i);
                cr_assert_eq(r.timestamp_ms, want[i].timestamp_ms);
                cr_assert(kb_is(r.key, want[i].key), "record %d key", i);
                cr_assert(kb_is(r.value, want[i].value), "record %d value", i);
                cr_assert_eq(r.header_count, (int32_t)want[i].header_count);
                record_header_iter_init(&hit, &r);
                for (uint32_t j = 0; j < want[i].header_count; j++) {
                        cr_assert(record_header_iter_next(&hit, &hv));
                        cr_assert(kb_is(hv.key, want[i].headers[j].key));
                        cr_assert(kb_is(hv.value, want[i].headers[j].value));
                }
                cr_assert(!record_header_iter_next(&hit, &hv));
        }
        cr_assert(!record_iter_next(&it, &r));
        cr_assert_eq(it.error_code, KAFKA_NONE, "%s", it.reason);
}

#define expect_error(got, check, code, index)                                                           \
        do {                                                                                            \
                cr_assert_eq((got), (code), "expected %s, got %s (%s)", kafka_error_name(code),         \
                             kafka_error_name(got), (check).reason);                                    \
                cr_assert_eq((check).error_code, (code));                                               \
                cr_assert_eq((check).record_index, (index), "record_index %d, want %d (%s)",            \
                             (check).record_index, (index), (check).reason);                            \
                cr_assert_neq((check).reason[0], '\0');                                                 \
        } while (0)

/* ---- every pair of codecs ---- */

Test(batch_convert, every_codec_pair_round_trips)
{
        struct record_spec recs[RECORD_COUNT];
        size_t plain_len;

        fill_records(recs);
        uint8_t *plain = encode_plain(recs, RECORD_COUNT, &plain_len);

        for (int from = 0; from < CODEC_COUNT; from++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, from, &len);

                for (int to = 0; to < CODEC_COUNT; to++) {
                        struct record_batch_policy p = client_policy();
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;

                        arena_init(&a, TEST_ARENA_BYTES);
                        int16_t err = record_batch_recompress(b, len, &p, (enum compress_codec)to,
                                                              default_level(to), TEST_RECORDS_MAX, &a, &out, &c);

                        cr_assert_eq(err, KAFKA_NONE, "%s -> %s: %s", codec_name(from), codec_name(to), c.reason);
                        cr_assert_eq(c.error_code, KAFKA_NONE);
                        if (from == to) {
                                /* No work: nothing built, nothing allocated. */
                                cr_assert(!out.is_converted, "%s -> itself converted", codec_name(from));
                                cr_assert_null(out.bytes);
                                cr_assert_eq(a.used_bytes, 0, "%s -> itself allocated %zu bytes",
                                             codec_name(from), a.used_bytes);
                                arena_free(&a);
                                continue;
                        }
                        expect_converted(b, len, &out, to, plain + HDR, plain_len - HDR);
                        cr_assert(c.is_records_walked);
                        cr_assert_eq(c.max_timestamp_ms, T0 + 9);
                        cr_assert_eq(c.header.crc, crc32c(out.bytes + 21, out.size_bytes - 21));
                        cr_assert_eq(record_batch_codec(&c.header), to);
                        cr_assert_eq(record_batch_size_bytes(&c.header), out.size_bytes);

                        /* And back again: the produced batch's records. */
                        struct record_batch_recompressed back;
                        struct record_batch_check c2;

                        err = record_batch_recompress(out.bytes, out.size_bytes, &p, (enum compress_codec)from,
                                                      default_level(from), TEST_RECORDS_MAX, &a, &back, &c2);
                        cr_assert_eq(err, KAFKA_NONE, "%s -> %s -> back: %s", codec_name(from), codec_name(to),
                                     c2.reason);
                        expect_converted(out.bytes, out.size_bytes, &back, from, plain + HDR, plain_len - HDR);
                        arena_free(&a);
                }
                free(b);
        }
        free(plain);
}

/* Kafka builds a rebuilt batch's attributes from its fields: bits 7-15,
 * which mean nothing, do not survive; LogAppendTime, transactional and the
 * rest do. */
Test(batch_convert, unused_attribute_bits_dropped_the_rest_kept)
{
        struct record_spec recs[RECORD_COUNT];
        size_t plain_len;

        fill_records(recs);
        uint8_t *plain = encode_plain(recs, RECORD_COUNT, &plain_len);
        struct record_batch_header h;

        cr_assert_eq(record_batch_frame(plain, plain_len, &h), RECORD_BATCH_FRAME_OK);
        h.attributes |= (int16_t)(0x0180 | RECORD_BATCH_ATTR_TRANSACTIONAL);
        for (int from = 0; from < CODEC_COUNT; from++) {
                size_t len;
                uint8_t *b = wrap_records(&h, plain + HDR, plain_len - HDR, from, &len);

                for (int to = 0; to < CODEC_COUNT; to++) {
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;

                        if (from == to)
                                continue;
                        arena_init(&a, TEST_ARENA_BYTES);
                        cr_assert_eq(record_batch_recompress(b, len, NULL, (enum compress_codec)to, default_level(to),
                                                             TEST_RECORDS_MAX, &a, &out, &c), KAFKA_NONE, "%s",
                                     c.reason);
                        expect_converted(b, len, &out, to, plain + HDR, plain_len - HDR);
                        cr_assert_eq(out.bytes[RECORD_BATCH_OFFSET_ATTRIBUTES], 0);
                        cr_assert_eq(out.bytes[RECORD_BATCH_OFFSET_ATTRIBUTES + 1],
                                     RECORD_BATCH_ATTR_TRANSACTIONAL | to);
                        arena_free(&a);
                }
                free(b);
        }
        free(plain);
}

Test(batch_convert, converted_records_read_back_field_by_field)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int from = 0; from < CODEC_COUNT; from++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, from, &len);

                for (int to = 0; to < CODEC_COUNT; to++) {
                        struct record_batch_policy p = client_policy();
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;

                        if (from == to)
                                continue;
                        arena_init(&a, TEST_ARENA_BYTES);
                        cr_assert_eq(record_batch_recompress(b, len, &p, (enum compress_codec)to, default_level(to),
                                                             TEST_RECORDS_MAX, &a, &out, &c), KAFKA_NONE);
                        const uint8_t *records = out.bytes + HDR;
                        size_t n = out.size_bytes - HDR;

                        if (to != COMPRESS_CODEC_NONE) {
                                uint8_t *dec;

                                cr_assert_eq(compress_decode((enum compress_codec)to, records, n, TEST_RECORDS_MAX,
                                                             &a, &dec, &n), 0);
                                records = dec;
                        }
                        expect_fixture_records(&c.header, records, n, recs);
                        arena_free(&a);
                }
                free(b);
        }
}

Test(batch_convert, every_level_of_every_codec)
{
        static const struct {
                int codec;
                int level;
        } cases[] = {
                { COMPRESS_CODEC_GZIP, -1 }, { COMPRESS_CODEC_GZIP, 1 }, { COMPRESS_CODEC_GZIP, 9 },
                { COMPRESS_CODEC_LZ4, 1 }, { COMPRESS_CODEC_LZ4, 9 }, { COMPRESS_CODEC_LZ4, 10 },
                { COMPRESS_CODEC_LZ4, 17 }, { COMPRESS_CODEC_ZSTD, -5 }, { COMPRESS_CODEC_ZSTD, 1 },
                { COMPRESS_CODEC_ZSTD, 3 }, { COMPRESS_CODEC_ZSTD, 19 }, { COMPRESS_CODEC_SNAPPY, 0 },
        };
        struct record_spec recs[RECORD_COUNT];
        size_t plain_len, zstd_len;

        fill_records(recs);
        uint8_t *plain = encode_plain(recs, RECORD_COUNT, &plain_len);
        uint8_t *zstd = encode_batch(recs, RECORD_COUNT, COMPRESS_CODEC_ZSTD, &zstd_len);

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const uint8_t *src = cases[i].codec == COMPRESS_CODEC_ZSTD ? plain : zstd;
                size_t src_len = cases[i].codec == COMPRESS_CODEC_ZSTD ? plain_len : zstd_len;
                struct record_batch_policy p = client_policy();
                struct record_batch_recompressed out;
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                cr_assert_eq(record_batch_recompress(src, src_len, &p, (enum compress_codec)cases[i].codec,
                                                     cases[i].level, TEST_RECORDS_MAX, &a, &out, &c),
                             KAFKA_NONE, "%s level %d: %s", codec_name(cases[i].codec), cases[i].level, c.reason);
                expect_converted(src, src_len, &out, cases[i].codec, plain + HDR, plain_len - HDR);
                arena_free(&a);
        }
        free(plain);
        free(zstd);
}

/*
 * Kafka 4.4.0's MemoryRecords.builder, gzip, no producer, records k0..k3 /
 * v0..v3 at T0 + i (test_record_batch.c's vector). Uncompressed by runnel
 * it must be what the same builder writes without compression, which is
 * what record_batch_encode writes (test_record_batch.c checks the encoder
 * against Kafka's builder).
 */
static const char kafka_gzip_hex[] =
        "00000000000000000000006bffffffff02648a97100001000000030000018bcfe568"
        "000000018bcfe56803ffffffffffffffffffffffffffff000000041f8b0800000000"
        "0000ff0dc6c10d00400445c11f795181422c65b9ab7fcd694212936c2a64c63cf65d"
        "8129b6aeee4cb3ad0fcdb804f22c000000";

/* Kafka 4.4.0's builder, uncompressed: producer 1234/5/42, a null key, a
 * null value, two headers one with a null value (test_record_batch.c). */
static const char kafka_plain_hex[] =
        "000000000000000000000067ffffffff021d7b65680000000000020000018bcfe568"
        "000000018bcfe5680500000000000004d200050000002a00000003240000000a6b65"
        "792d300e76616c75652d30002c000a02010e76616c75652d31040468310278046832"
        "01160013040a6b65792d320100";

static uint8_t *unhex(const char *hex, size_t *len_out)
{
        size_t n = strlen(hex) / 2;
        uint8_t *out = malloc(n);

        cr_assert_not_null(out);
        for (size_t i = 0; i < n; i++) {
                unsigned v;

                cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t)v;
        }
        *len_out = n;
        return out;
}

Test(batch_convert, kafka_gzip_batch_uncompresses_to_kafkas_plain_bytes)
{
        static const char *const keys[4] = { "k0", "k1", "k2", "k3" };
        static const char *const values[4] = { "v0", "v1", "v2", "v3" };
        struct record_spec recs[4];
        struct record_batch_spec spec;
        size_t len;
        uint8_t *b = unhex(kafka_gzip_hex, &len);

        for (int i = 0; i < 4; i++) {
                recs[i] = (struct record_spec){ kb(keys[i]), kb(values[i]), T0 + i, NULL, 0 };
        }
        record_batch_spec_init(&spec, recs, 4);
        size_t want_len = record_batch_encoded_size(&spec);
        uint8_t want[256];

        cr_assert_leq(want_len, sizeof(want));
        record_batch_encode(&spec, want, sizeof(want));

        struct record_batch_policy p = compacted_policy();
        struct record_batch_recompressed out;
        struct record_batch_check c;
        struct arena a;

        arena_init(&a, TEST_ARENA_BYTES);
        cr_assert_eq(record_batch_recompress(b, len, &p, COMPRESS_CODEC_NONE, 0, TEST_RECORDS_MAX, &a, &out, &c),
                     KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(out.size_bytes, want_len);
        cr_assert(memcmp(out.bytes, want, want_len) == 0, "not the bytes Kafka's builder writes");
        arena_free(&a);
        free(b);
}

Test(batch_convert, kafka_plain_batch_survives_every_codec_byte_for_byte)
{
        size_t len;
        uint8_t *plain = unhex(kafka_plain_hex, &len);

        for (int via = 1; via < CODEC_COUNT; via++) {
                for (int via2 = 1; via2 < CODEC_COUNT; via2++) {
                        struct record_batch_policy p = client_policy();
                        struct record_batch_recompressed x, y, back;
                        struct record_batch_check c;
                        struct arena a;

                        arena_init(&a, TEST_ARENA_BYTES);
                        cr_assert_eq(record_batch_recompress(plain, len, &p, (enum compress_codec)via,
                                                             default_level(via), TEST_RECORDS_MAX, &a, &x, &c),
                                     KAFKA_NONE, "%s", c.reason);
                        y = x;
                        if (via2 != via)
                                cr_assert_eq(record_batch_recompress(x.bytes, x.size_bytes, &p,
                                                                     (enum compress_codec)via2, default_level(via2),
                                                                     TEST_RECORDS_MAX, &a, &y, &c),
                                             KAFKA_NONE, "%s", c.reason);
                        cr_assert_eq(record_batch_recompress(y.bytes, y.size_bytes, &p, COMPRESS_CODEC_NONE, 0,
                                                             TEST_RECORDS_MAX, &a, &back, &c),
                                     KAFKA_NONE, "%s", c.reason);
                        cr_assert_eq(back.size_bytes, len);
                        cr_assert(memcmp(back.bytes, plain, len) == 0, "none -> %s -> %s -> none changed bytes",
                                  codec_name(via), codec_name(via2));
                        arena_free(&a);
                }
        }
        free(plain);
}

/* ---- no work ---- */

Test(batch_convert, same_codec_is_no_work_and_allocates_nothing)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 0; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                uint8_t *copy = dup_exact(b, len);
                struct record_batch_policy p = client_policy();
                struct record_batch_recompressed out = { true, (uint8_t *)1, 1 };
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                for (int round = 0; round < 2; round++) {
                        cr_assert_eq(record_batch_recompress(b, len, &p, (enum compress_codec)codec,
                                                             default_level(codec), TEST_RECORDS_MAX, &a, &out, &c),
                                     KAFKA_NONE, "%s", c.reason);
                        cr_assert(!out.is_converted);
                        cr_assert_null(out.bytes);
                        cr_assert_eq(out.size_bytes, 0);
                }
                cr_assert_eq(a.used_bytes, 0);
                cr_assert(memcmp(b, copy, len) == 0, "the produced batch was modified");
                /* The check is record_batch_validate's. */
                struct record_batch_check want;

                cr_assert_eq(record_batch_validate(b, len, &p, &want), KAFKA_NONE);
                cr_assert(memcmp(&want.header, &c.header, sizeof(want.header)) == 0);
                cr_assert_eq(want.max_timestamp_ms, c.max_timestamp_ms);
                arena_free(&a);
                free(copy);
                free(b);
        }
}

Test(batch_convert, converting_a_converted_batch_again_is_no_work)
{
        struct record_spec recs[RECORD_COUNT];
        size_t len;

        fill_records(recs);
        uint8_t *b = encode_batch(recs, RECORD_COUNT, COMPRESS_CODEC_GZIP, &len);
        struct record_batch_policy p = client_policy();
        struct record_batch_recompressed once, twice;
        struct record_batch_check c;
        struct arena a;

        arena_init(&a, TEST_ARENA_BYTES);
        cr_assert_eq(record_batch_recompress(b, len, &p, COMPRESS_CODEC_LZ4, 9, TEST_RECORDS_MAX, &a, &once, &c),
                     KAFKA_NONE);
        cr_assert(once.is_converted);
        size_t used = a.used_bytes;

        cr_assert_eq(record_batch_recompress(once.bytes, once.size_bytes, &p, COMPRESS_CODEC_LZ4, 9,
                                             TEST_RECORDS_MAX, &a, &twice, &c), KAFKA_NONE);
        cr_assert(!twice.is_converted);
        cr_assert_eq(a.used_bytes, used);
        arena_free(&a);
        free(b);
}

Test(batch_convert, uncompressed_control_batch_is_never_compressed)
{
        uint8_t recs[64];
        struct kwriter w;
        struct record_batch_header h = raw_header(1, 0);
        size_t len;

        h.attributes = RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_TRANSACTIONAL;
        h.producer_id = 9;
        h.producer_epoch = 0;
        kw_init(&w, recs, sizeof(recs));
        put_record(&w, 0, 0, "\x00\x00\x00\x01", "\x00\x00\x00\x00\x00\x00");
        uint8_t *b = wrap_records(&h, recs, (size_t)(w.p - recs), COMPRESS_CODEC_NONE, &len);
        struct record_batch_recompressed out;
        struct record_batch_check c;
        struct arena a;

        arena_init(&a, TEST_ARENA_BYTES);
        /* A control batch comes from the coordinator, never a client. */
        cr_assert_eq(record_batch_recompress(b, len, NULL, COMPRESS_CODEC_ZSTD, 3, TEST_RECORDS_MAX, &a, &out, &c),
                     KAFKA_NONE, "%s", c.reason);
        cr_assert(!out.is_converted);
        cr_assert_eq(a.used_bytes, 0);
        arena_free(&a);
        free(b);
}

Test(batch_convert, uncompressed_batch_validates_as_record_batch_validate)
{
        struct record_spec recs[RECORD_COUNT];
        size_t len;

        fill_records(recs);
        uint8_t *b = encode_batch(recs, RECORD_COUNT, COMPRESS_CODEC_NONE, &len);
        struct record_batch_policy p = compacted_policy();
        struct record_batch_check got, want;
        struct arena a;

        arena_init(&a, TEST_ARENA_BYTES);
        int16_t e1 = record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &got);
        int16_t e2 = record_batch_validate(b, len, &p, &want);

        cr_assert_eq(e1, e2);
        cr_assert_eq(got.record_index, want.record_index);
        cr_assert_str_eq(got.reason, want.reason);
        expect_error(e1, got, KAFKA_INVALID_RECORD, 1);
        cr_assert_eq(a.used_bytes, 0);
        arena_free(&a);
        free(b);
}

/* ---- validating compressed records ---- */

Test(batch_convert, compressed_records_walked_and_max_timestamp_found)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                struct record_batch_policy p = client_policy();
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c),
                             KAFKA_NONE, "%s: %s", codec_name(codec), c.reason);
                cr_assert(c.is_records_walked);
                cr_assert_eq(c.max_timestamp_ms, T0 + 9);
                cr_assert_eq(c.record_index, -1);
                arena_free(&a);
                free(b);
        }
}

Test(batch_convert, max_timestamp_comes_from_the_records_not_the_header)
{
        struct record_spec recs[RECORD_COUNT];
        size_t plain_len, len;

        fill_records(recs);
        uint8_t *plain = encode_plain(recs, RECORD_COUNT, &plain_len);
        struct record_batch_header h;

        cr_assert_eq(record_batch_frame(plain, plain_len, &h), RECORD_BATCH_FRAME_OK);
        h.max_timestamp_ms = T0 - 12345;
        uint8_t *b = wrap_records(&h, plain + HDR, plain_len - HDR, COMPRESS_CODEC_SNAPPY, &len);
        struct record_batch_policy p = client_policy();
        struct record_batch_check c;
        struct arena a;

        arena_init(&a, TEST_ARENA_BYTES);
        cr_assert_eq(record_batch_validate(b, len, &p, &c), KAFKA_NONE);
        cr_assert_eq(c.max_timestamp_ms, T0 - 12345);   /* header only */
        cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c), KAFKA_NONE);
        cr_assert_eq(c.max_timestamp_ms, T0 + 9);
        arena_free(&a);
        free(b);
        free(plain);
}

/* Compacted topic: every record needs a key; the index of the first one
 * without goes back for ProduceResponse record_errors. */
Test(batch_convert, compacted_topic_refuses_null_key_with_its_index)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        recs[1].key = kb("key-1");      /* the first null key is now record 5 */
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                struct record_batch_policy p = compacted_policy();
                struct record_batch_policy plain_p = client_policy();
                struct record_batch_recompressed out;
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                /* Header-only validation cannot see it. */
                cr_assert_eq(record_batch_validate(b, len, &p, &c), KAFKA_NONE);
                int16_t err = record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c);

                expect_error(err, c, KAFKA_INVALID_RECORD, 5);
                cr_assert_not_null(strstr(c.reason, "without a key"), "%s", c.reason);
                cr_assert(!c.is_records_walked);

                /* Recompressing to any codec, or to the same one, checks too. */
                for (int to = 0; to < CODEC_COUNT; to++) {
                        err = record_batch_recompress(b, len, &p, (enum compress_codec)to, default_level(to),
                                                      TEST_RECORDS_MAX, &a, &out, &c);
                        expect_error(err, c, KAFKA_INVALID_RECORD, 5);
                        cr_assert(!out.is_converted);
                }
                /* Not compacted: null keys are fine. */
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &plain_p, TEST_RECORDS_MAX, &a, &c),
                             KAFKA_NONE);
                arena_free(&a);
                free(b);
        }
}

Test(batch_convert, compacted_topic_accepts_keys_everywhere_and_empty_keys)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        recs[1].key = kb("key-1");
        recs[5].key = kb("");           /* empty is not null */
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                struct record_batch_policy p = compacted_policy();
                struct record_batch_recompressed out;
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c),
                             KAFKA_NONE, "%s", c.reason);
                cr_assert_eq(record_batch_recompress(b, len, &p, (enum compress_codec)codec, default_level(codec),
                                                     TEST_RECORDS_MAX, &a, &out, &c), KAFKA_NONE);
                cr_assert(!out.is_converted);
                cr_assert(c.is_records_walked, "same codec on a compacted topic must still walk");
                arena_free(&a);
                free(b);
        }
}

Test(batch_convert, offset_delta_gaps_inside_compressed_batch_refused)
{
        static const struct {
                int32_t deltas[3];
                int32_t count;
                int32_t last_delta;
                int32_t index;
        } cases[] = {
                { { 0, 1, 3 }, 3, 2, 2 },       /* a gap */
                { { 0, 1, 1 }, 3, 2, 2 },       /* a repeat */
                { { 1, 2, 3 }, 3, 2, 0 },       /* not from 0 */
                { { 0, 2, 1 }, 3, 2, 1 },       /* out of order */
                { { 0, -1, 2 }, 3, 2, 1 },      /* negative */
        };

        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                        size_t len;
                        uint8_t *b = batch_with_deltas(cases[i].deltas, cases[i].count, cases[i].last_delta, codec,
                                                       &len);
                        struct record_batch_policy p = client_policy();
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;

                        arena_init(&a, TEST_ARENA_BYTES);
                        cr_assert_eq(record_batch_validate(b, len, &p, &c), KAFKA_NONE, "%s", c.reason);
                        int16_t err = record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c);

                        expect_error(err, c, KAFKA_INVALID_RECORD, cases[i].index);
                        cr_assert_not_null(strstr(c.reason, "offsetDelta"), "%s", c.reason);
                        err = record_batch_recompress(b, len, &p, COMPRESS_CODEC_NONE, 0, TEST_RECORDS_MAX, &a,
                                                      &out, &c);
                        expect_error(err, c, KAFKA_INVALID_RECORD, cases[i].index);
                        arena_free(&a);
                        free(b);
                }
        }
}

Test(batch_convert, record_count_must_match_the_compressed_records)
{
        static const int32_t deltas[3] = { 0, 1, 2 };

        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                struct record_batch_policy p = client_policy();
                struct record_batch_check c;
                struct arena a;
                size_t len;

                arena_init(&a, TEST_ARENA_BYTES);
                /* Four announced, three there. */
                uint8_t *b = batch_with_deltas(deltas, 4, 3, codec, &len);

                expect_error(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c), c,
                             KAFKA_INVALID_RECORD, 3);
                free(b);
                /* Two announced, three there: bytes left over. */
                b = batch_with_deltas(deltas, 2, 1, codec, &len);
                expect_error(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c), c,
                             KAFKA_INVALID_RECORD, 2);
                free(b);
                arena_free(&a);
        }
}

/* From the log (no client policy) compaction leaves gaps; they are kept. */
Test(batch_convert, gaps_from_the_log_are_kept_through_conversion)
{
        static const int32_t deltas[3] = { 0, 2, 5 };
        size_t len;
        uint8_t *b = batch_with_deltas(deltas, 3, 5, COMPRESS_CODEC_LZ4, &len);
        struct record_batch_recompressed out;
        struct record_batch_check c;
        struct record_iter it;
        struct record_view r;
        struct arena a;

        arena_init(&a, TEST_ARENA_BYTES);
        cr_assert_eq(record_batch_recompress(b, len, NULL, COMPRESS_CODEC_NONE, 0, TEST_RECORDS_MAX, &a, &out, &c),
                     KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(record_iter_init(&it, out.bytes, out.size_bytes), KAFKA_NONE);
        for (int i = 0; i < 3; i++) {
                cr_assert(record_iter_next(&it, &r));
                cr_assert_eq(r.offset_delta, deltas[i]);
        }
        cr_assert(!record_iter_next(&it, &r));
        cr_assert_eq(it.error_code, KAFKA_NONE);
        /* A client may not. */
        struct record_batch_policy p = client_policy();

        expect_error(record_batch_validate(b, len, &p, &c), c, KAFKA_INVALID_RECORD, -1);
        arena_free(&a);
        free(b);
}

Test(batch_convert, timestamps_inside_compressed_records_checked)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                struct record_batch_policy p = client_policy();
                struct record_batch_check c;
                struct arena a;

                /* Record 2 (T0 - 10) is too old; the batch's maxTimestamp
                 * is within range, so only the record walk sees it. */
                p.timestamp_before_max_ms = 1005;
                arena_init(&a, TEST_ARENA_BYTES);
                cr_assert_eq(record_batch_validate(b, len, &p, &c), KAFKA_NONE);
                expect_error(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c), c,
                             KAFKA_INVALID_TIMESTAMP, 2);
                /* Not checked on LogAppendTime topics. */
                p.is_log_append_time = true;
                p.is_timestamp_checked = false;
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c),
                             KAFKA_NONE, "%s", c.reason);
                arena_free(&a);
                free(b);
        }
}

/*
 * Found by fuzz/compressed_batch.c: on a LogAppendTime topic a producer's
 * LogAppendTime bit is refused in every record whether or not the policy
 * checks timestamps against the clock, as record_batch_validate refuses it
 * in an uncompressed batch (Kafka's validateTimestamp runs for every record
 * of both). On a CreateTime topic Kafka lets a record with a timestamp
 * through, and so does runnel.
 */
Test(batch_convert, log_append_time_bit_refused_without_clock_checks)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 0; codec < CODEC_COUNT; codec++) {
                size_t plain_len, len;
                uint8_t *plain = encode_plain(recs, RECORD_COUNT, &plain_len);
                struct record_batch_header h;

                cr_assert_eq(record_batch_frame(plain, plain_len, &h), RECORD_BATCH_FRAME_OK);
                h.attributes |= RECORD_BATCH_ATTR_LOG_APPEND_TIME;
                uint8_t *b = wrap_records(&h, plain + HDR, plain_len - HDR, codec, &len);
                struct record_batch_policy p = client_policy();
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                p.is_timestamp_checked = false;
                p.is_log_append_time = true;
                expect_error(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c), c,
                             KAFKA_INVALID_TIMESTAMP, 0);
                p.is_log_append_time = false;
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c),
                             KAFKA_NONE, "%s", c.reason);
                arena_free(&a);
                free(b);
                free(plain);
        }
}

/* ---- bounds ---- */

/* One record whose value is value_bytes of zeros: kilobytes compressed. */
static uint8_t *bomb_batch(int codec, size_t value_bytes, size_t *len_out)
{
        char *zeros = calloc(1, value_bytes);
        struct record_spec rec;

        cr_assert_not_null(zeros);
        rec = (struct record_spec){ kb("k"), { (const uint8_t *)zeros, (int32_t)value_bytes }, T0, NULL, 0 };
        uint8_t *b = encode_batch(&rec, 1, codec, len_out);

        free(zeros);
        return b;
}

Test(batch_convert, bomb_refused_without_allocating_past_the_bound)
{
        const size_t bound = 64 * KIB;

        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = bomb_batch(codec, 8 * MIB, &len);

                cr_assert_lt(len, MIB, "%s bomb is %zu bytes", codec_name(codec), len);
                for (int to = -1; to < CODEC_COUNT; to++) {
                        struct record_batch_policy p = compacted_policy();
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;
                        int16_t err;

                        /* Room for the bound and the arena's rounding, not
                         * for what the bomb expands to. */
                        arena_init(&a, bound + 2 * ARENA_BLOCK_BYTES);
                        p.batch_bytes_max = 0;
                        if (to < 0)
                                err = record_batch_validate_compressed_records(b, len, &p, bound, &a, &c);
                        else
                                err = record_batch_recompress(b, len, &p, (enum compress_codec)to,
                                                              default_level(to), bound, &a, &out, &c);
                        expect_error(err, c, KAFKA_MESSAGE_TOO_LARGE, -1);
                        cr_assert_not_null(strstr(c.reason, "decompress to more than"), "%s -> %d: %s",
                                           codec_name(codec), to, c.reason);
                        cr_assert_leq(a.used_bytes, bound + ARENA_BLOCK_BYTES, "%s: %zu bytes used",
                                      codec_name(codec), a.used_bytes);
                        arena_free(&a);
                }
                /* The same batch under a bound it fits is fine. */
                struct record_batch_policy p = client_policy();
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, 9 * MIB, &a, &c), KAFKA_NONE,
                             "%s", c.reason);
                arena_free(&a);
                free(b);
        }
}

Test(batch_convert, bound_is_exact)
{
        struct record_spec recs[RECORD_COUNT];
        size_t plain_len;

        fill_records(recs);
        uint8_t *plain = encode_plain(recs, RECORD_COUNT, &plain_len);
        size_t records_bytes = plain_len - HDR;

        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                struct record_batch_policy p = client_policy();
                struct record_batch_check c;
                struct arena a;

                arena_init(&a, TEST_ARENA_BYTES);
                cr_assert_eq(record_batch_validate_compressed_records(b, len, &p, records_bytes, &a, &c),
                             KAFKA_NONE, "%s: %s", codec_name(codec), c.reason);
                expect_error(record_batch_validate_compressed_records(b, len, &p, records_bytes - 1, &a, &c), c,
                             KAFKA_MESSAGE_TOO_LARGE, -1);
                arena_free(&a);
                free(b);
        }
        free(plain);
}

/* Uncompressed, a batch must still fit max.message.bytes: Kafka checks a
 * converted batch's size again (UnifiedLog, RecordTooLargeException). */
Test(batch_convert, uncompressing_past_max_message_bytes_refused_early)
{
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = bomb_batch(codec, 4 * MIB, &len);
                struct record_batch_policy p = client_policy();
                struct record_batch_recompressed out;
                struct record_batch_check c;
                struct arena a;

                p.batch_bytes_max = MIB;
                arena_init(&a, TEST_ARENA_BYTES);
                int16_t err = record_batch_recompress(b, len, &p, COMPRESS_CODEC_NONE, 0, 64 * MIB, &a, &out, &c);

                expect_error(err, c, KAFKA_MESSAGE_TOO_LARGE, -1);
                cr_assert_not_null(strstr(c.reason, "max.message.bytes"), "%s", c.reason);
                cr_assert_leq(a.used_bytes, MIB + ARENA_BLOCK_BYTES);
                cr_assert(!out.is_converted);
                /* Compressed again it fits. */
                int to = codec == COMPRESS_CODEC_ZSTD ? COMPRESS_CODEC_GZIP : COMPRESS_CODEC_ZSTD;

                err = record_batch_recompress(b, len, &p, (enum compress_codec)to, default_level(to), 64 * MIB, &a,
                                              &out, &c);
                cr_assert_eq(err, KAFKA_NONE, "%s", c.reason);
                cr_assert(out.is_converted);
                cr_assert_leq(out.size_bytes, MIB);
                arena_free(&a);
                free(b);
        }
}

Test(batch_convert, converted_batch_above_max_message_bytes_refused)
{
        size_t value_bytes = 200 * KIB;
        uint8_t *noise = malloc(value_bytes);
        uint64_t s = 42;

        cr_assert_not_null(noise);
        for (size_t i = 0; i < value_bytes; i++)
                noise[i] = (uint8_t)(rng_next(&s) >> 56);
        struct record_spec rec = { kb("k"), { noise, (int32_t)value_bytes }, T0, NULL, 0 };
        size_t len;
        uint8_t *b = encode_batch(&rec, 1, COMPRESS_CODEC_NONE, &len);

        for (int to = 1; to < CODEC_COUNT; to++) {
                struct record_batch_policy p = client_policy();
                struct record_batch_recompressed out;
                struct record_batch_check c;
                struct arena a;

                /* Fits as produced; noise only grows when compressed. */
                p.batch_bytes_max = (uint32_t)len;
                arena_init(&a, TEST_ARENA_BYTES);
                int16_t err = record_batch_recompress(b, len, &p, (enum compress_codec)to, default_level(to),
                                                      TEST_RECORDS_MAX, &a, &out, &c);

                expect_error(err, c, KAFKA_MESSAGE_TOO_LARGE, -1);
                cr_assert_not_null(strstr(c.reason, "above max.message.bytes"), "%s", c.reason);
                cr_assert(!out.is_converted);
                p.batch_bytes_max = 0;
                cr_assert_eq(record_batch_recompress(b, len, &p, (enum compress_codec)to, default_level(to),
                                                     TEST_RECORDS_MAX, &a, &out, &c), KAFKA_NONE);
                cr_assert_gt(out.size_bytes, len);
                arena_free(&a);
        }
        free(b);
        free(noise);
}

Test(batch_convert, arena_too_small_is_refused_not_crashed)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int from = 0; from < CODEC_COUNT; from++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, from, &len);

                for (int to = 0; to < CODEC_COUNT; to++) {
                        struct record_batch_policy p = client_policy();
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;

                        if (from == to)
                                continue;
                        arena_init(&a, 1 * KIB);
                        int16_t err = record_batch_recompress(b, len, &p, (enum compress_codec)to,
                                                              default_level(to), TEST_RECORDS_MAX, &a, &out, &c);

                        expect_error(err, c, KAFKA_MESSAGE_TOO_LARGE, -1);
                        cr_assert_not_null(strstr(c.reason, "memory"), "%s", c.reason);
                        cr_assert(!out.is_converted);
                        cr_assert_eq(a.used_bytes, 0);
                        arena_free(&a);
                }
                free(b);
        }
}

/* ---- corrupt input ---- */

/* b with its compressed payload replaced by payload[0..n) (CRC fixed, so
 * only the payload is wrong). */
static uint8_t *with_payload(const uint8_t *b, size_t len, const uint8_t *payload, size_t n, size_t *len_out)
{
        struct record_batch_header h;

        cr_assert_eq(record_batch_frame(b, len, &h), RECORD_BATCH_FRAME_OK);
        h.attributes &= (int16_t)~RECORD_BATCH_ATTR_CODEC_MASK;
        uint8_t *raw = wrap_records(&h, payload, n, COMPRESS_CODEC_NONE, len_out);

        /* wrap_records wrote codec none; put the codec back. */
        raw[RECORD_BATCH_OFFSET_ATTRIBUTES + 1] |= (uint8_t)(b[RECORD_BATCH_OFFSET_ATTRIBUTES + 1] &
                                                             RECORD_BATCH_ATTR_CODEC_MASK);
        uint32_t crc = crc32c(raw + 21, *len_out - 21);

        raw[17] = (uint8_t)(crc >> 24);
        raw[18] = (uint8_t)(crc >> 16);
        raw[19] = (uint8_t)(crc >> 8);
        raw[20] = (uint8_t)crc;
        return raw;
}

static int16_t convert_corrupt(const uint8_t *b, size_t len, struct record_batch_check *c,
                               struct record_batch_recompressed *out)
{
        struct record_batch_policy p = client_policy();
        struct arena a;
        int16_t e1, e2;

        arena_init(&a, TEST_ARENA_BYTES);
        e1 = record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, c);
        e2 = record_batch_recompress(b, len, &p, COMPRESS_CODEC_NONE, 0, TEST_RECORDS_MAX, &a, out, c);
        cr_assert_eq(e1, e2);
        if (e2 == KAFKA_NONE) {
                struct record_batch_check c2;

                cr_assert(out->is_converted);
                cr_assert_eq(record_batch_validate(out->bytes, out->size_bytes, &p, &c2), KAFKA_NONE, "%s",
                             c2.reason);
        }
        arena_free(&a);
        return e2;
}

Test(batch_convert, corrupt_compressed_payloads_refused_cleanly)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len, n;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                const uint8_t *payload = b + HDR;
                size_t payload_bytes = len - HDR;
                uint8_t *bad, *edit = dup_exact(payload, payload_bytes);
                struct record_batch_recompressed out;
                struct record_batch_check c;

                /* Cut short at every length. */
                for (size_t cut = 1; cut < payload_bytes; cut += (cut < 64 ? 1 : 7)) {
                        bad = with_payload(b, len, payload, cut, &n);
                        int16_t err = convert_corrupt(bad, n, &c, &out);

                        cr_assert_eq(err, KAFKA_INVALID_RECORD, "%s cut to %zu: %s (%s)", codec_name(codec), cut,
                                     kafka_error_name(err), c.reason);
                        cr_assert(!out.is_converted);
                        free(bad);
                }
                /* An empty payload. */
                bad = with_payload(b, len, payload, 0, &n);
                expect_error(convert_corrupt(bad, n, &c, &out), c, KAFKA_INVALID_RECORD, -1);
                free(bad);
                /* The codec's magic broken. */
                edit[0] ^= 0x40;
                bad = with_payload(b, len, edit, payload_bytes, &n);
                expect_error(convert_corrupt(bad, n, &c, &out), c, KAFKA_INVALID_RECORD, -1);
                cr_assert_not_null(strstr(c.reason, "do not decompress"), "%s: %s", codec_name(codec), c.reason);
                free(bad);
                edit[0] ^= 0x40;
                /* Noise. */
                uint64_t s = 7 + (uint64_t)codec;

                for (size_t i = 0; i < payload_bytes; i++)
                        edit[i] = (uint8_t)(rng_next(&s) >> 56);
                bad = with_payload(b, len, edit, payload_bytes, &n);
                expect_error(convert_corrupt(bad, n, &c, &out), c, KAFKA_INVALID_RECORD, -1);
                free(bad);
                free(edit);
                free(b);
        }
}

Test(batch_convert, single_byte_flips_never_pass_unnoticed_into_a_bad_batch)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len, n;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                size_t payload_bytes = len - HDR;
                uint8_t *edit = dup_exact(b + HDR, payload_bytes);
                uint64_t s = 99 + (uint64_t)codec;
                int refused = 0;

                for (int round = 0; round < 300; round++) {
                        size_t at = (size_t)(rng_next(&s) % payload_bytes);
                        uint8_t flip = (uint8_t)(1u << (rng_next(&s) % 8));
                        struct record_batch_recompressed out;
                        struct record_batch_check c;

                        edit[at] ^= flip;
                        uint8_t *bad = with_payload(b, len, edit, payload_bytes, &n);
                        int16_t err = convert_corrupt(bad, n, &c, &out);

                        /* Either refused as a bad record, or it still decodes
                         * to well-formed records (a flipped value byte). */
                        cr_assert(err == KAFKA_INVALID_RECORD || err == KAFKA_NONE ||
                                          err == KAFKA_MESSAGE_TOO_LARGE,
                                  "%s flip at %zu: %s (%s)", codec_name(codec), at, kafka_error_name(err), c.reason);
                        refused += err != KAFKA_NONE;
                        free(bad);
                        edit[at] ^= flip;
                }
                cr_assert_gt(refused, 0, "%s: no flip was noticed", codec_name(codec));
                free(edit);
                free(b);
        }
}

/* A stream that decodes, to bytes that are not records. */
Test(batch_convert, garbage_records_in_a_good_stream_refused)
{
        uint8_t noise[300];
        uint64_t s = 5;

        for (size_t i = 0; i < sizeof(noise); i++)
                noise[i] = (uint8_t)(rng_next(&s) >> 56);
        noise[0] = 0x7f;                /* record 0 claims -64 bytes */
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                struct record_batch_header h = raw_header(3, 2);
                struct record_batch_recompressed out;
                struct record_batch_check c;
                size_t len;
                uint8_t *b = wrap_records(&h, noise, sizeof(noise), codec, &len);

                expect_error(convert_corrupt(b, len, &c, &out), c, KAFKA_INVALID_RECORD, 0);
                free(b);
        }
}

Test(batch_convert, bad_crc_refused_before_decompressing)
{
        struct record_spec recs[RECORD_COUNT];

        fill_records(recs);
        for (int codec = 1; codec < CODEC_COUNT; codec++) {
                size_t len;
                uint8_t *b = encode_batch(recs, RECORD_COUNT, codec, &len);
                struct record_batch_policy p = compacted_policy();
                struct record_batch_recompressed out;
                struct record_batch_check c;
                struct arena a;

                b[len - 1] ^= 1;
                arena_init(&a, TEST_ARENA_BYTES);
                expect_error(record_batch_validate_compressed_records(b, len, &p, TEST_RECORDS_MAX, &a, &c), c,
                             KAFKA_CORRUPT_MESSAGE, -1);
                expect_error(record_batch_recompress(b, len, &p, COMPRESS_CODEC_NONE, 0, TEST_RECORDS_MAX, &a, &out,
                                                     &c), c, KAFKA_CORRUPT_MESSAGE, -1);
                cr_assert_eq(a.used_bytes, 0);
                arena_free(&a);
                free(b);
        }
}

/* batch_convert.h's sizing promise, for the worst input: noise. */
Test(batch_convert, arena_of_the_documented_size_suffices)
{
        size_t value_bytes = 300 * KIB;
        uint8_t *noise = malloc(value_bytes);
        uint64_t s = 11;

        cr_assert_not_null(noise);
        for (size_t i = 0; i < value_bytes; i++)
                noise[i] = (uint8_t)(rng_next(&s) >> 56);
        struct record_spec rec = { kb("k"), { noise, (int32_t)value_bytes }, T0, NULL, 0 };
        size_t plain_len;
        uint8_t *plain = encode_plain(&rec, 1, &plain_len);
        size_t bound = plain_len - HDR;

        for (int from = 0; from < CODEC_COUNT; from++) {
                size_t len;
                uint8_t *b = encode_batch(&rec, 1, from, &len);

                for (int to = 0; to < CODEC_COUNT; to++) {
                        struct record_batch_recompressed out;
                        struct record_batch_check c;
                        struct arena a;

                        arena_init(&a, bound * 9 / 4 + 64 * KIB);
                        cr_assert_eq(record_batch_recompress(b, len, NULL, (enum compress_codec)to, default_level(to),
                                                             bound, &a, &out, &c), KAFKA_NONE, "%s -> %s: %s",
                                     codec_name(from), codec_name(to), c.reason);
                        arena_free(&a);
                }
                free(b);
        }
        free(plain);
        free(noise);
}
