/*
 * test_record_batch.c - magic-2 record batches: batches written by Kafka's
 * own client library are accepted and read back field by field, each kind
 * of corruption is refused with the code Kafka sends, the append rewrite
 * keeps the CRC right, and the encoder writes exactly what the format
 * specifies (checked against bytes assembled here field by field, and
 * against Kafka's builder).
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/crc32c.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"

/*
 * Produced with Kafka 4.4.0's MemoryRecords.builder (kafka-clients jar in
 * build/kafka-lib): magic 2, no compression, CreateTime, base offset 0,
 * producerId 1234, epoch 5, base sequence 42, no leader epoch, records
 *   0: ts 1700000000000, key "key-0", value "value-0"
 *   1: ts 1700000000005, key null, value "value-1",
 *      headers ("h1", "x"), ("h2", null)
 *   2: ts 1699999999990, key "key-2", value null
 */
static const char kafka_plain_hex[] =
        "000000000000000000000067ffffffff021d7b65680000000000020000018bcfe568"
        "000000018bcfe5680500000000000004d200050000002a00000003240000000a6b65"
        "792d300e76616c75652d30002c000a02010e76616c75652d31040468310278046832"
        "01160013040a6b65792d320100";

/* The same builder, gzip, no producer, four records k0..k3 / v0..v3 at
 * ts 1700000000000 + i. */
static const char kafka_gzip_hex[] =
        "00000000000000000000006bffffffff02648a97100001000000030000018bcfe568"
        "000000018bcfe56803ffffffffffffffffffffffffffff000000041f8b0800000000"
        "0000ff0dc6c10d00400445c11f795181422c65b9ab7fcd694212936c2a64c63cf65d"
        "8129b6aeee4cb3ad0fcdb804f22c000000";

/* Byte positions inside kafka_plain, worked out from the layout. */
#define PLAIN_REC0 61                   /* record 0's length varint */
#define PLAIN_REC1 80
#define PLAIN_REC1_OFFSET_DELTA 83
#define PLAIN_REC1_HEADER_COUNT 93
#define PLAIN_REC1_H2_KEY_LEN 99
#define PLAIN_REC2 103

static size_t test_unhex(const char *hex, uint8_t *out, size_t cap)
{
        size_t n = strlen(hex) / 2;

        cr_assert_leq(n, cap);
        for (size_t i = 0; i < n; i++) {
                unsigned v;

                cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t)v;
        }
        return n;
}

static uint8_t plain[256];
static size_t plain_len;

static void test_load_plain(void)
{
        plain_len = test_unhex(kafka_plain_hex, plain, sizeof(plain));
}

/* The CRC again, after a test edits bytes under it. */
static void test_fix_crc(uint8_t *b, size_t len)
{
        uint32_t c = crc32c(b + 21, len - 21);

        b[17] = (uint8_t)(c >> 24);
        b[18] = (uint8_t)(c >> 16);
        b[19] = (uint8_t)(c >> 8);
        b[20] = (uint8_t)c;
}

static void test_put_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static struct record_batch_policy test_client_policy(void)
{
        struct record_batch_policy p = {
                .is_from_client = true,
                .is_timestamp_checked = true,
                .now_ms = 1700000001000LL,
                .timestamp_before_max_ms = INT64_MAX,
                .timestamp_after_max_ms = INT64_MAX,
                .batch_bytes_max = 1048588,
        };
        return p;
}

static int16_t test_validate_client(const uint8_t *b, size_t len, struct record_batch_check *c)
{
        struct record_batch_policy p = test_client_policy();

        return record_batch_validate(b, len, &p, c);
}

#define assert_refused(buf, len, code)                                                          \
        do {                                                                                    \
                struct record_batch_check c_;                                                   \
                int16_t e_ = test_validate_client((buf), (len), &c_);                           \
                cr_assert_eq(e_, (code), "expected %s, got %s (%s)", kafka_error_name(code),    \
                             kafka_error_name(e_), c_.reason);                                  \
                cr_assert_eq(c_.error_code, e_);                                                \
                cr_assert_neq(c_.reason[0], '\0');                                              \
        } while (0)

static bool test_kbytes_is(struct kbytes b, const char *s)
{
        if (s == NULL)
                return b.len == -1;
        return b.len == (int32_t)strlen(s) && memcmp(b.ptr, s, strlen(s)) == 0;
}

/* ---- Kafka's batches ---- */

Test(record_batch, kafka_batch_header_fields, .init = test_load_plain)
{
        struct record_batch_header h;

        cr_assert_eq(plain_len, 115);
        cr_assert_eq(record_batch_parse_header(plain, plain_len, &h), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(h.base_offset, 0);
        cr_assert_eq(h.batch_length, 103);
        cr_assert_eq(record_batch_size_bytes(&h), 115);
        cr_assert_eq(h.partition_leader_epoch, -1);
        cr_assert_eq(h.magic, 2);
        cr_assert_eq(h.crc, 0x1d7b6568u);
        cr_assert_eq(h.crc, record_batch_compute_crc(plain, plain_len));
        cr_assert_eq(h.attributes, 0);
        cr_assert_eq(h.last_offset_delta, 2);
        cr_assert_eq(h.base_timestamp_ms, 1700000000000LL);
        cr_assert_eq(h.max_timestamp_ms, 1700000000005LL);
        cr_assert_eq(h.producer_id, 1234);
        cr_assert_eq(h.producer_epoch, 5);
        cr_assert_eq(h.base_sequence, 42);
        cr_assert_eq(h.record_count, 3);
        cr_assert_eq(record_batch_last_offset(&h), 2);
        cr_assert_eq(record_batch_next_offset(&h), 3);
        cr_assert(!record_batch_is_control(&h) && !record_batch_is_transactional(&h));
        /* The header alone is enough to parse it. */
        cr_assert_eq(record_batch_parse_header(plain, 61, &h), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(record_batch_frame(plain, 61, &h), RECORD_BATCH_FRAME_PARTIAL);
}

Test(record_batch, kafka_batch_validates_and_iterates, .init = test_load_plain)
{
        struct record_batch_check c;

        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert(c.is_records_walked);
        cr_assert_eq(c.max_timestamp_ms, 1700000000005LL);
        cr_assert_eq(c.record_index, -1);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);

        struct record_iter it;
        struct record_view r;
        struct record_header_iter hi;
        struct record_header_view hv;

        cr_assert_eq(record_iter_init(&it, plain, plain_len), KAFKA_NONE);
        cr_assert(record_iter_next(&it, &r));
        cr_assert_eq(r.offset, 0);
        cr_assert_eq(r.offset_delta, 0);
        cr_assert_eq(r.timestamp_ms, 1700000000000LL);
        cr_assert_eq(r.timestamp_delta_ms, 0);
        cr_assert_eq(r.size_bytes, 19);
        cr_assert(test_kbytes_is(r.key, "key-0"));
        cr_assert(test_kbytes_is(r.value, "value-0"));
        cr_assert_eq(r.header_count, 0);

        cr_assert(record_iter_next(&it, &r));
        cr_assert_eq(r.offset, 1);
        cr_assert_eq(r.timestamp_ms, 1700000000005LL);
        cr_assert(test_kbytes_is(r.key, NULL));
        cr_assert(test_kbytes_is(r.value, "value-1"));
        cr_assert_eq(r.header_count, 2);
        record_header_iter_init(&hi, &r);
        cr_assert(record_header_iter_next(&hi, &hv));
        cr_assert(test_kbytes_is(hv.key, "h1"));
        cr_assert(test_kbytes_is(hv.value, "x"));
        cr_assert(record_header_iter_next(&hi, &hv));
        cr_assert(test_kbytes_is(hv.key, "h2"));
        cr_assert(test_kbytes_is(hv.value, NULL));
        cr_assert(!record_header_iter_next(&hi, &hv));

        cr_assert(record_iter_next(&it, &r));
        cr_assert_eq(r.offset, 2);
        cr_assert_eq(r.timestamp_delta_ms, -10);
        cr_assert_eq(r.timestamp_ms, 1699999999990LL);
        cr_assert(test_kbytes_is(r.key, "key-2"));
        cr_assert(test_kbytes_is(r.value, NULL));
        cr_assert(!record_iter_next(&it, &r));
        cr_assert_eq(it.error_code, KAFKA_NONE, "%s", it.reason);
        cr_assert(!record_iter_next(&it, &r));
}

Test(record_batch, kafka_gzip_batch_header_level_only)
{
        uint8_t b[256];
        size_t n = test_unhex(kafka_gzip_hex, b, sizeof(b));
        struct record_batch_check c;
        struct record_iter it;

        cr_assert_eq(test_validate_client(b, n, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(record_batch_codec(&c.header), RECORD_BATCH_CODEC_GZIP);
        cr_assert(!c.is_records_walked);
        cr_assert_eq(c.max_timestamp_ms, 1700000000003LL);
        cr_assert_eq(record_iter_init(&it, b, n), KAFKA_UNSUPPORTED_COMPRESSION_TYPE);
        b[n - 3] ^= 1;
        assert_refused(b, n, KAFKA_CORRUPT_MESSAGE);
}

Test(record_batch, encoder_reproduces_kafka_builder, .init = test_load_plain)
{
        struct record_header_view hdrs[2] = {
                { { (const uint8_t *)"h1", 2 }, { (const uint8_t *)"x", 1 } },
                { { (const uint8_t *)"h2", 2 }, KBYTES_NULL },
        };
        struct record_spec recs[3] = {
                { { (const uint8_t *)"key-0", 5 }, { (const uint8_t *)"value-0", 7 }, 1700000000000LL, NULL, 0 },
                { KBYTES_NULL, { (const uint8_t *)"value-1", 7 }, 1700000000005LL, hdrs, 2 },
                { { (const uint8_t *)"key-2", 5 }, KBYTES_NULL, 1699999999990LL, NULL, 0 },
        };
        struct record_batch_spec spec;
        uint8_t out[256];

        record_batch_spec_init(&spec, recs, 3);
        spec.producer_id = 1234;
        spec.producer_epoch = 5;
        spec.base_sequence = 42;
        cr_assert_eq(record_batch_encoded_size(&spec), plain_len);
        cr_assert_eq(record_batch_encode(&spec, out, sizeof(out)), plain_len);
        cr_assert_arr_eq(out, plain, plain_len);
}

/* ---- the format, byte by byte ---- */

struct test_buf {
        uint8_t b[512];
        size_t n;
};

static void tb_be(struct test_buf *t, uint64_t v, int bytes)
{
        for (int i = bytes - 1; i >= 0; i--)
                t->b[t->n++] = (uint8_t)(v >> (8 * i));
}

/* Protobuf-style zig-zag varint, as the spec says. */
static void tb_zigzag(struct test_buf *t, int64_t v)
{
        uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);

        while (u >= 0x80) {
                t->b[t->n++] = (uint8_t)(u | 0x80);
                u >>= 7;
        }
        t->b[t->n++] = (uint8_t)u;
}

static void tb_raw(struct test_buf *t, const char *s)
{
        memcpy(t->b + t->n, s, strlen(s));
        t->n += strlen(s);
}

static uint32_t test_crc_bitwise(const uint8_t *p, size_t len)
{
        uint32_t c = 0xffffffffu;

        for (size_t i = 0; i < len; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        return ~c;
}

Test(record_batch, encoder_matches_spec_byte_for_byte)
{
        /* Two records; the second is 300 ms later (a two-byte varint), has
         * a 200-byte value (two-byte lengths) and one header. */
        char big[201];

        memset(big, 'z', 200);
        big[200] = '\0';

        struct test_buf rec1 = { .n = 0 }, rec2 = { .n = 0 }, want = { .n = 0 };

        tb_be(&rec1, 0, 1);             /* attributes */
        tb_zigzag(&rec1, 0);            /* timestampDelta */
        tb_zigzag(&rec1, 0);            /* offsetDelta */
        tb_zigzag(&rec1, 3);
        tb_raw(&rec1, "abc");
        tb_zigzag(&rec1, 2);
        tb_raw(&rec1, "hi");
        tb_zigzag(&rec1, 0);            /* headers */

        tb_be(&rec2, 0, 1);
        tb_zigzag(&rec2, 300);
        tb_zigzag(&rec2, 1);
        tb_zigzag(&rec2, -1);           /* null key */
        tb_zigzag(&rec2, 200);
        tb_raw(&rec2, big);
        tb_zigzag(&rec2, 1);            /* one header */
        tb_zigzag(&rec2, 5);
        tb_raw(&rec2, "trace");
        tb_zigzag(&rec2, -1);           /* null header value */

        size_t records_bytes = 0;
        struct test_buf recs = { .n = 0 };

        tb_zigzag(&recs, (int64_t)rec1.n);
        memcpy(recs.b + recs.n, rec1.b, rec1.n);
        recs.n += rec1.n;
        tb_zigzag(&recs, (int64_t)rec2.n);
        memcpy(recs.b + recs.n, rec2.b, rec2.n);
        recs.n += rec2.n;
        records_bytes = recs.n;

        int64_t ts0 = 1600000000000LL;

        tb_be(&want, 77, 8);                            /* baseOffset */
        tb_be(&want, 49 + records_bytes, 4);            /* batchLength */
        tb_be(&want, 9, 4);                             /* partitionLeaderEpoch */
        tb_be(&want, 2, 1);                             /* magic */
        tb_be(&want, 0, 4);                             /* crc, below */
        tb_be(&want, 0x10, 2);                          /* attributes: transactional */
        tb_be(&want, 1, 4);                             /* lastOffsetDelta */
        tb_be(&want, (uint64_t)ts0, 8);                 /* baseTimestamp */
        tb_be(&want, (uint64_t)(ts0 + 300), 8);         /* maxTimestamp */
        tb_be(&want, 99, 8);                            /* producerId */
        tb_be(&want, 3, 2);                             /* producerEpoch */
        tb_be(&want, 10, 4);                            /* baseSequence */
        tb_be(&want, 2, 4);                             /* recordCount */
        cr_assert_eq(want.n, 61);
        memcpy(want.b + want.n, recs.b, recs.n);
        want.n += recs.n;

        uint32_t crc = test_crc_bitwise(want.b + 21, want.n - 21);

        want.b[17] = (uint8_t)(crc >> 24);
        want.b[18] = (uint8_t)(crc >> 16);
        want.b[19] = (uint8_t)(crc >> 8);
        want.b[20] = (uint8_t)crc;

        struct record_header_view h = { { (const uint8_t *)"trace", 5 }, KBYTES_NULL };
        struct record_spec rs[2] = {
                { { (const uint8_t *)"abc", 3 }, { (const uint8_t *)"hi", 2 }, ts0, NULL, 0 },
                { KBYTES_NULL, { (const uint8_t *)big, 200 }, ts0 + 300, &h, 1 },
        };
        struct record_batch_spec spec;
        uint8_t out[512];

        record_batch_spec_init(&spec, rs, 2);
        spec.base_offset = 77;
        spec.partition_leader_epoch = 9;
        spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
        spec.producer_id = 99;
        spec.producer_epoch = 3;
        spec.base_sequence = 10;
        cr_assert_eq(record_batch_encode(&spec, out, sizeof(out)), want.n);
        cr_assert_arr_eq(out, want.b, want.n);

        struct record_batch_check c;

        cr_assert_eq(record_batch_validate(out, want.n, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert(record_batch_is_transactional(&c.header));
}

/* ---- refusals ---- */

Test(record_batch, refuses_bad_crc, .init = test_load_plain)
{
        plain[PLAIN_REC0 + 10] ^= 0x20;         /* inside record 0's key */
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
        plain[PLAIN_REC0 + 10] ^= 0x20;
        plain[19] ^= 1;                         /* the CRC itself */
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
        plain[19] ^= 1;
        plain[RECORD_BATCH_OFFSET_MAX_TIMESTAMP + 7] ^= 1;
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
}

Test(record_batch, crc_does_not_cover_offset_epoch_or_length_prefix, .init = test_load_plain)
{
        struct record_batch_check c;

        /* baseOffset and partitionLeaderEpoch are outside the CRC. */
        plain[12] = 0;
        plain[13] = 0;
        plain[14] = 0;
        plain[15] = 3;
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);
        plain[7] = 5;
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(c.header.base_offset, 5);
        cr_assert_eq(c.header.partition_leader_epoch, 3);
}

Test(record_batch, refuses_wrong_magic, .init = test_load_plain)
{
        plain[16] = 1;
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        plain[16] = 0;
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        plain[16] = 3;
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
        plain[16] = 0xff;
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
}

Test(record_batch, refuses_bad_length, .init = test_load_plain)
{
        test_put_be32(plain + 8, 104);          /* one more than there is */
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
        test_put_be32(plain + 8, 102);          /* one byte left over */
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
        test_put_be32(plain + 8, 48);           /* below a header */
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
        test_put_be32(plain + 8, 0x80000000u);  /* negative */
        assert_refused(plain, plain_len, KAFKA_CORRUPT_MESSAGE);
}

Test(record_batch, refuses_every_truncation, .init = test_load_plain)
{
        assert_refused(plain, 0, KAFKA_INVALID_RECORD);
        for (size_t n = 1; n < plain_len; n++)
                assert_refused(plain, n, KAFKA_CORRUPT_MESSAGE);
}

Test(record_batch, refuses_two_batches, .init = test_load_plain)
{
        uint8_t two[256];

        memcpy(two, plain, plain_len);
        memcpy(two + plain_len, plain, plain_len);
        assert_refused(two, 2 * plain_len, KAFKA_INVALID_RECORD);
}

Test(record_batch, refuses_offset_delta_gap, .init = test_load_plain)
{
        struct record_batch_check c;

        plain[PLAIN_REC1_OFFSET_DELTA] = 4;     /* zig-zag 2: record 1 claims delta 2 */
        test_fix_crc(plain, plain_len);
        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 1);
        /* Records 1 and 2 both at delta 2: not increasing, even for a
         * compacted batch read back from a log. */
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_INVALID_RECORD);
        plain[PLAIN_REC1_OFFSET_DELTA] = 0;     /* delta 0 twice */
        test_fix_crc(plain, plain_len);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 1);
}

Test(record_batch, accepts_compacted_gaps_from_the_log)
{
        /* Offsets 0 and 3 of a batch whose lastOffsetDelta is 3: what the
         * cleaner leaves. Built with the encoder and edited. */
        struct record_spec rs[2] = {
                { { (const uint8_t *)"a", 1 }, { (const uint8_t *)"1", 1 }, 1000, NULL, 0 },
                { { (const uint8_t *)"b", 1 }, { (const uint8_t *)"2", 1 }, 1001, NULL, 0 },
        };
        struct record_batch_spec spec;
        uint8_t b[128];
        struct record_batch_check c;

        record_batch_spec_init(&spec, rs, 2);
        size_t n = record_batch_encode(&spec, b, sizeof(b));

        /* record 1 starts after record 0 (1 length byte + 8 body bytes) */
        cr_assert_eq(b[61], 16);
        cr_assert_eq(b[61 + 9 + 3], 2);         /* offsetDelta 1 */
        b[61 + 9 + 3] = 6;                      /* offsetDelta 3 */
        test_put_be32(b + 23, 3);               /* lastOffsetDelta 3 */
        test_fix_crc(b, n);
        cr_assert_eq(record_batch_validate(b, n, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(record_batch_last_offset(&c.header), 3);
        assert_refused(b, n, KAFKA_INVALID_RECORD);
}

Test(record_batch, refuses_record_length_mismatch, .init = test_load_plain)
{
        struct record_batch_check c;

        plain[PLAIN_REC0] = 0x26;               /* record 0 says 19 bytes, has 18 */
        test_fix_crc(plain, plain_len);
        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 0);
        plain[PLAIN_REC0] = 0x22;               /* says 17 */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        test_load_plain();
        plain[PLAIN_REC2] = 0x7e;               /* record 2 says 63: past the batch */
        test_fix_crc(plain, plain_len);
        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 2);
        plain[PLAIN_REC2] = 0x01;               /* negative length */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
}

Test(record_batch, refuses_records_not_filling_the_batch, .init = test_load_plain)
{
        struct record_batch_check c;

        /* Count 2 (and lastOffsetDelta 1): record 2's bytes are left over. */
        test_put_be32(plain + 57, 2);
        test_put_be32(plain + 23, 1);
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_INVALID_RECORD);
        /* Count 4: the bytes end after three. */
        test_put_be32(plain + 57, 4);
        test_put_be32(plain + 23, 3);
        test_fix_crc(plain, plain_len);
        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 3);
}

Test(record_batch, refuses_header_rules_from_clients, .init = test_load_plain)
{
        struct record_batch_check c;

        test_put_be32(plain + 23, 3);           /* lastOffsetDelta != count - 1 */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);

        test_load_plain();
        test_put_be32(plain + 57, 0);           /* recordCount 0 */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        test_put_be32(plain + 57, 0xffffffffu); /* negative */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);

        test_load_plain();
        plain[7] = 1;                           /* baseOffset 1 */
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);

        test_load_plain();
        plain[22] |= RECORD_BATCH_ATTR_CONTROL;
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);

        test_load_plain();
        test_put_be32(plain + 53, 0xffffffffu); /* producerId set, no sequence */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
}

Test(record_batch, refuses_unknown_codec, .init = test_load_plain)
{
        for (int codec = 5; codec <= 7; codec++) {
                test_load_plain();
                plain[22] = (uint8_t)codec;
                test_fix_crc(plain, plain_len);
                assert_refused(plain, plain_len, KAFKA_UNSUPPORTED_COMPRESSION_TYPE);
        }
}

Test(record_batch, refuses_oversized_batch, .init = test_load_plain)
{
        struct record_batch_policy p = test_client_policy();
        struct record_batch_check c;

        p.batch_bytes_max = 114;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_MESSAGE_TOO_LARGE);
        p.batch_bytes_max = 115;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE);
}

Test(record_batch, refuses_bad_headers, .init = test_load_plain)
{
        struct record_batch_check c;

        plain[PLAIN_REC1_H2_KEY_LEN] = 0x01;    /* header key null */
        test_fix_crc(plain, plain_len);
        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 1);
        test_load_plain();
        plain[PLAIN_REC1_HEADER_COUNT] = 0x03;  /* -2 headers */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
        plain[PLAIN_REC1_HEADER_COUNT] = 0x7e;  /* 63 headers in 9 bytes */
        test_fix_crc(plain, plain_len);
        assert_refused(plain, plain_len, KAFKA_INVALID_RECORD);
}

Test(record_batch, compacted_topic_needs_keys, .init = test_load_plain)
{
        struct record_batch_policy p = test_client_policy();
        struct record_batch_check c;

        p.is_compacted = true;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_RECORD);
        cr_assert_eq(c.record_index, 1);
}

Test(record_batch, timestamps_checked_like_kafka, .init = test_load_plain)
{
        struct record_batch_policy p = test_client_policy();
        struct record_batch_check c;

        /* Record 2 is 1010 ms before "now", record 1 995 ms. */
        p.timestamp_before_max_ms = 1010;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE, "%s", c.reason);
        p.timestamp_before_max_ms = 1009;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
        cr_assert_eq(c.record_index, 2);
        p.timestamp_before_max_ms = INT64_MAX;
        p.now_ms = 1699999999000LL;             /* records 0 and 1 are 1000 and 1005 ms ahead */
        p.timestamp_after_max_ms = 1004;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
        cr_assert_eq(c.record_index, 1);
        p.timestamp_after_max_ms = 999;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
        cr_assert_eq(c.record_index, 0);
        p.timestamp_after_max_ms = 1005;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE, "%s", c.reason);
        p.is_timestamp_checked = false;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE);

        /* A producer setting LogAppendTime itself. */
        p = test_client_policy();
        p.is_log_append_time = true;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE, "%s", c.reason);
        plain[22] |= RECORD_BATCH_ATTR_LOG_APPEND_TIME;
        test_fix_crc(plain, plain_len);
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
        p.is_timestamp_checked = false;         /* the bit rule holds without clock checks */
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
        /* On a CreateTime topic the bit makes every record carry maxTimestamp,
         * which Kafka checks against the clock instead. */
        p = test_client_policy();
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE, "%s", c.reason);
        p.timestamp_after_max_ms = 0;
        p.now_ms = 1700000000004LL;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
        /* ...and with no clock check, lets it through as Kafka would. */
        p.is_timestamp_checked = false;
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert(record_batch_validate(plain, plain_len, NULL, &c) == KAFKA_NONE);
        /* Extreme clocks do not overflow. */
        p = test_client_policy();
        p.now_ms = INT64_MIN;
        p.timestamp_before_max_ms = 0;
        test_load_plain();
        cr_assert_eq(record_batch_validate(plain, plain_len, &p, &c), KAFKA_INVALID_TIMESTAMP);
}

/* ---- rewrite on append ---- */

Test(record_batch, assign_sets_offset_and_epoch_keeping_crc, .init = test_load_plain)
{
        struct record_batch_check c;
        uint32_t crc_before = record_batch_compute_crc(plain, plain_len);

        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_NONE);
        record_batch_assign(plain, plain_len, 1000, 7, false, c.max_timestamp_ms);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(c.header.base_offset, 1000);
        cr_assert_eq(record_batch_last_offset(&c.header), 1002);
        cr_assert_eq(c.header.partition_leader_epoch, 7);
        cr_assert_eq(c.header.crc, crc_before);
        cr_assert_eq(c.header.max_timestamp_ms, 1700000000005LL);
        cr_assert(!record_batch_is_log_append_time(&c.header));
}

Test(record_batch, assign_corrects_create_time_max_timestamp, .init = test_load_plain)
{
        struct record_batch_check c;

        /* A producer that wrote a wrong maxTimestamp: the broker writes the
         * records' real maximum, and the CRC follows. */
        plain[RECORD_BATCH_OFFSET_MAX_TIMESTAMP + 7] ^= 0x40;
        test_fix_crc(plain, plain_len);
        cr_assert_eq(test_validate_client(plain, plain_len, &c), KAFKA_NONE);
        cr_assert_eq(c.max_timestamp_ms, 1700000000005LL);
        cr_assert_neq(c.header.max_timestamp_ms, 1700000000005LL);
        record_batch_assign(plain, plain_len, 0, 0, false, c.max_timestamp_ms);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(c.header.max_timestamp_ms, 1700000000005LL);
}

Test(record_batch, assign_log_append_time, .init = test_load_plain)
{
        struct record_batch_check c;
        struct record_iter it;
        struct record_view r;
        int64_t now_ms = 1800000000000LL;
        uint32_t crc_before = record_batch_compute_crc(plain, plain_len);

        /* An unused attribute bit, which Kafka's rewrite drops. */
        plain[21] = 0x01;
        test_fix_crc(plain, plain_len);
        record_batch_assign(plain, plain_len, 50, 2, true, now_ms);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert(record_batch_is_log_append_time(&c.header));
        cr_assert_eq(c.header.attributes, RECORD_BATCH_ATTR_LOG_APPEND_TIME);
        cr_assert_eq(c.header.max_timestamp_ms, now_ms);
        cr_assert_neq(c.header.crc, crc_before);
        cr_assert_eq(c.header.crc, record_batch_compute_crc(plain, plain_len));
        /* Consumers see the append time on every record. */
        cr_assert_eq(record_iter_init(&it, plain, plain_len), KAFKA_NONE);
        for (int i = 0; i < 3; i++) {
                cr_assert(record_iter_next(&it, &r));
                cr_assert_eq(r.timestamp_ms, now_ms);
                cr_assert_eq(r.offset, 50 + i);
        }
        /* Back to CreateTime. */
        record_batch_assign(plain, plain_len, 50, 2, false, 1700000000005LL);
        cr_assert_eq(record_batch_validate(plain, plain_len, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(c.header.crc, crc_before);
}

/* ---- buffers of batches ---- */

static size_t test_encode_simple(uint8_t *out, size_t cap, int64_t base_offset, uint32_t count, int64_t ts)
{
        struct record_spec rs[16];
        struct record_batch_spec spec;

        cr_assert_leq(count, 16);
        for (uint32_t i = 0; i < count; i++) {
                rs[i] = (struct record_spec){ { (const uint8_t *)"key", 3 }, { (const uint8_t *)"value", 5 },
                                              ts + i, NULL, 0 };
        }
        record_batch_spec_init(&spec, rs, count);
        spec.base_offset = base_offset;
        return record_batch_encode(&spec, out, cap);
}

Test(record_batch, iterates_batches_and_spots_trailing_partial)
{
        uint8_t buf[1024];
        size_t n = 0, sizes[3];
        struct record_batch_iter it;
        struct record_batch_view v;

        for (int i = 0; i < 3; i++) {
                sizes[i] = test_encode_simple(buf + n, sizeof(buf) - n, 10 * i, (uint32_t)(i + 1), 5000);
                n += sizes[i];
        }
        for (size_t cut = 0; cut <= sizes[2]; cut++) {
                size_t len = n - sizes[2] + cut;
                size_t at = 0;

                record_batch_iter_init(&it, buf, len);
                for (int i = 0; i < 2; i++) {
                        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_OK);
                        cr_assert_eq(v.bytes, buf + at);
                        cr_assert_eq(v.size_bytes, sizes[i]);
                        cr_assert_eq(v.header.base_offset, 10 * i);
                        cr_assert_eq(v.header.record_count, i + 1);
                        at += sizes[i];
                }
                enum record_batch_frame f = record_batch_iter_next(&it, &v);

                if (cut == 0) {
                        cr_assert_eq(f, RECORD_BATCH_FRAME_END);
                } else if (cut == sizes[2]) {
                        cr_assert_eq(f, RECORD_BATCH_FRAME_OK);
                        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_END);
                } else {
                        cr_assert_eq(f, RECORD_BATCH_FRAME_PARTIAL, "cut %zu: %s", cut,
                                     record_batch_frame_name(f));
                        cr_assert_eq(record_batch_iter_offset(&it), at);
                        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_PARTIAL);
                }
        }
}

Test(record_batch, iterator_stops_on_bad_framing)
{
        uint8_t buf[512];
        size_t a = test_encode_simple(buf, sizeof(buf), 0, 2, 1);
        size_t b = test_encode_simple(buf + a, sizeof(buf) - a, 2, 2, 1);
        struct record_batch_iter it;
        struct record_batch_view v;

        buf[a + 16] = 1;                        /* second batch: magic 1 */
        record_batch_iter_init(&it, buf, a + b);
        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_BAD_MAGIC);
        cr_assert_eq(record_batch_iter_offset(&it), a);
        buf[a + 16] = 2;
        test_put_be32(buf + a + 8, 13);
        record_batch_iter_init(&it, buf, a + b);
        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(record_batch_iter_next(&it, &v), RECORD_BATCH_FRAME_BAD_LENGTH);
        /* A bad length shows with 12 bytes, a bad magic with 17. */
        struct record_batch_header h;

        cr_assert_eq(record_batch_parse_header(buf + a, 12, &h), RECORD_BATCH_FRAME_BAD_LENGTH);
        cr_assert_eq(record_batch_parse_header(buf + a, 11, &h), RECORD_BATCH_FRAME_PARTIAL);
}

/* Found by fuzz/record_batch.c: a batch with no record bytes and a negative
 * recordCount ended the walk as if it had been complete. */
Test(record_batch, record_iterator_refuses_negative_count, .init = test_load_plain)
{
        uint8_t b[RECORD_BATCH_HEADER_BYTES];
        struct record_iter it;
        struct record_view r;

        memcpy(b, plain, sizeof(b));
        test_put_be32(b + RECORD_BATCH_OFFSET_LENGTH, RECORD_BATCH_LENGTH_MIN);
        test_put_be32(b + RECORD_BATCH_OFFSET_RECORD_COUNT, (uint32_t)-1);
        test_fix_crc(b, sizeof(b));
        cr_assert_eq(record_iter_init(&it, b, sizeof(b)), KAFKA_NONE);
        cr_assert(!record_iter_next(&it, &r));
        cr_assert_eq(it.error_code, KAFKA_INVALID_RECORD, "%s", it.reason);
        cr_assert_neq(it.reason[0], '\0');
}

/* ---- encoder round trip ---- */

static uint64_t test_rng = 88172645463325252ull;

static uint32_t test_rand32(void)
{
        test_rng ^= test_rng << 13;
        test_rng ^= test_rng >> 7;
        test_rng ^= test_rng << 17;
        return (uint32_t)test_rng;
}

Test(record_batch, encoder_round_trips_random_records)
{
        static uint8_t pool[4096];
        static uint8_t out[1 << 16];

        for (size_t i = 0; i < sizeof(pool); i++)
                pool[i] = (uint8_t)test_rand32();
        for (int round = 0; round < 200; round++) {
                struct record_spec rs[12];
                struct record_header_view hs[12][4];
                uint32_t count = 1 + test_rand32() % 12;
                int64_t base_ts = (int64_t)(test_rand32() % 2000000) * 1000000;

                for (uint32_t i = 0; i < count; i++) {
                        int32_t klen = (int32_t)(test_rand32() % 40) - 1;
                        int32_t vlen = (int32_t)(test_rand32() % 300) - 1;

                        rs[i].key = (struct kbytes){ klen < 0 ? NULL : pool + test_rand32() % 1000, klen };
                        rs[i].value = (struct kbytes){ vlen < 0 ? NULL : pool + test_rand32() % 1000, vlen };
                        rs[i].timestamp_ms = base_ts + (int64_t)(test_rand32() % 100000) - 50000;
                        rs[i].header_count = test_rand32() % 5;
                        rs[i].headers = hs[i];
                        for (uint32_t j = 0; j < rs[i].header_count; j++) {
                                int32_t hv = (int32_t)(test_rand32() % 10) - 1;

                                hs[i][j].key = (struct kbytes){ pool + j, (int32_t)(test_rand32() % 8) };
                                hs[i][j].value = (struct kbytes){ hv < 0 ? NULL : pool + 50, hv };
                        }
                }

                struct record_batch_spec spec;

                record_batch_spec_init(&spec, rs, count);
                size_t n = record_batch_encode(&spec, out, sizeof(out));
                struct record_batch_check c;

                cr_assert_eq(test_validate_client(out, n, &c), KAFKA_NONE, "round %d: %s", round, c.reason);
                cr_assert_eq(c.header.record_count, (int32_t)count);
                cr_assert_eq(c.header.base_timestamp_ms, rs[0].timestamp_ms);
                cr_assert_eq(c.header.max_timestamp_ms, c.max_timestamp_ms);

                struct record_iter it;
                struct record_view r;

                cr_assert_eq(record_iter_init(&it, out, n), KAFKA_NONE);
                for (uint32_t i = 0; i < count; i++) {
                        cr_assert(record_iter_next(&it, &r));
                        cr_assert_eq(r.offset_delta, (int32_t)i);
                        cr_assert_eq(r.timestamp_ms, rs[i].timestamp_ms);
                        cr_assert(kbytes_eq(r.key, rs[i].key), "round %d record %u key", round, i);
                        cr_assert(kbytes_eq(r.value, rs[i].value));
                        cr_assert_eq(r.header_count, (int32_t)rs[i].header_count);

                        struct record_header_iter hi;
                        struct record_header_view hv;

                        record_header_iter_init(&hi, &r);
                        for (uint32_t j = 0; j < rs[i].header_count; j++) {
                                cr_assert(record_header_iter_next(&hi, &hv));
                                cr_assert(kbytes_eq(hv.key, hs[i][j].key));
                                cr_assert(kbytes_eq(hv.value, hs[i][j].value));
                        }
                        cr_assert(!record_header_iter_next(&hi, &hv));
                }
                cr_assert(!record_iter_next(&it, &r));
                cr_assert_eq(it.error_code, KAFKA_NONE);

                /* Any single flipped byte after the CRC is caught. */
                size_t at = 21 + test_rand32() % (n - 21);

                out[at] ^= (uint8_t)(1 + test_rand32() % 255);
                assert_refused(out, n, KAFKA_CORRUPT_MESSAGE);
        }
}

Test(record_batch, encoder_log_append_time_batch)
{
        struct record_spec r = { KBYTES_NULL, { (const uint8_t *)"v", 1 }, 123, NULL, 0 };
        struct record_batch_spec spec;
        uint8_t out[128];
        struct record_batch_check c;

        record_batch_spec_init(&spec, &r, 1);
        spec.attributes = RECORD_BATCH_ATTR_LOG_APPEND_TIME;
        spec.log_append_time_ms = 999;
        size_t n = record_batch_encode(&spec, out, sizeof(out));

        cr_assert_eq(record_batch_validate(out, n, NULL, &c), KAFKA_NONE, "%s", c.reason);
        cr_assert_eq(c.header.base_timestamp_ms, 123);
        cr_assert_eq(c.header.max_timestamp_ms, 999);
        cr_assert_eq(c.max_timestamp_ms, 999);
}
