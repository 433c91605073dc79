/*
 * record_batch.c - fuzz target: magic-2 record batches as a producer or a
 * log file hands them over (protocol/record_batch.h).
 *
 * Input: two control bytes, then the bytes of the batch (or of a run of
 * batches, as a segment file holds them).
 *
 *   ctl0 bit 0   write batchLength = bytes - 12 before anything reads it
 *   ctl0 bit 1   write the right CRC-32C (after the length), so mutations
 *                get past the CRC check to the header rules and records
 *   ctl0 bits 2- and ctl1   the policy fields (from client, compacted,
 *                LogAppendTime, timestamp bounds, max.message.bytes)
 *
 * What runs: header parsing and framing, the batch iterator over the whole
 * buffer, record_batch_validate with no policy, the input's policy and a
 * producer's policy, the record and record-header iterators, and for a
 * batch that validates: record_batch_assign (the batch must still validate
 * afterwards) and record_batch_encode of the records read back (the same
 * keys, values, headers and timestamps must come out again).
 */
#include "fuzz.h"
#include "protocol/crc32c.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"

#define RECORDS_MAX 4096
#define HEADERS_MAX 16384

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

static bool is_inside(const void *ptr, size_t len, const uint8_t *buf, size_t buf_len)
{
        const uint8_t *p = ptr;
        return len == 0 || (p >= buf && p <= buf + buf_len && len <= (size_t)(buf + buf_len - p));
}

static void check_framing(const uint8_t *buf, size_t len)
{
        struct record_batch_header h1, h2;
        enum record_batch_frame f1 = record_batch_parse_header(buf, len, &h1);
        enum record_batch_frame f2 = record_batch_frame(buf, len, &h2);
        (void)record_batch_frame_name(f1);
        if (f2 == RECORD_BATCH_FRAME_OK) {
                FUZZ_CHECK(f1 == RECORD_BATCH_FRAME_OK, "frame OK but header %d", f1);
                FUZZ_CHECK(header_eq(&h1, &h2), "header differs between parse and frame");
                FUZZ_CHECK(record_batch_size_bytes(&h2) <= len, "frame OK past the buffer");
        }

        struct record_batch_iter it;
        struct record_batch_view v;
        size_t seen = 0;
        enum record_batch_frame f;
        record_batch_iter_init(&it, buf, len);
        while ((f = record_batch_iter_next(&it, &v)) == RECORD_BATCH_FRAME_OK) {
                FUZZ_CHECK(v.bytes == buf + seen, "batch view at %td, expected %zu", v.bytes - buf, seen);
                FUZZ_CHECK(is_inside(v.bytes, v.size_bytes, buf, len), "batch view outside the buffer");
                FUZZ_CHECK(v.size_bytes >= RECORD_BATCH_HEADER_BYTES, "batch view of %zu bytes",
                           (size_t)v.size_bytes);
                seen += v.size_bytes;
        }
        FUZZ_CHECK(record_batch_iter_offset(&it) == seen, "iterator offset %zu, batches %zu",
                   record_batch_iter_offset(&it), seen);
        FUZZ_CHECK((f == RECORD_BATCH_FRAME_END) == (seen == len), "END at %zu of %zu", seen, len);
        FUZZ_CHECK(record_batch_iter_next(&it, &v) == f, "iterator not sticky");
}

/* The records of an uncompressed batch, each inside buf; returns how many,
 * or -1 when the iterator stopped on a malformed record. */
static int walk_records(const uint8_t *buf, size_t len, struct record_spec *specs,
                        struct record_header_view *headers, uint32_t *header_used)
{
        struct record_iter it;
        if (record_iter_init(&it, buf, len) != KAFKA_NONE)
                return -1;
        struct record_view rec;
        int n = 0;
        while (record_iter_next(&it, &rec)) {
                FUZZ_CHECK(is_inside(rec.key.ptr, rec.key.len > 0 ? (size_t)rec.key.len : 0, buf, len),
                           "key outside the batch");
                FUZZ_CHECK(is_inside(rec.value.ptr, rec.value.len > 0 ? (size_t)rec.value.len : 0, buf, len),
                           "value outside the batch");
                FUZZ_CHECK(is_inside(rec.headers, rec.headers_bytes, buf, len), "headers outside the batch");
                FUZZ_CHECK(rec.offset == (int64_t)((uint64_t)it.header.base_offset + (uint64_t)(int64_t)rec.offset_delta),
                           "offset %lld", (long long)rec.offset);
                struct record_header_iter hi;
                struct record_header_view hv;
                int32_t hn = 0;
                uint32_t first = *header_used;
                record_header_iter_init(&hi, &rec);
                while (record_header_iter_next(&hi, &hv)) {
                        FUZZ_CHECK(hv.key.len >= 0, "null header key");
                        FUZZ_CHECK(is_inside(hv.key.ptr, (size_t)hv.key.len, buf, len), "header key outside");
                        FUZZ_CHECK(is_inside(hv.value.ptr, hv.value.len > 0 ? (size_t)hv.value.len : 0, buf,
                                             len),
                                   "header value outside");
                        if (*header_used < HEADERS_MAX)
                                headers[(*header_used)++] = hv;
                        hn++;
                }
                FUZZ_CHECK(hn == rec.header_count, "%d headers walked of %d", hn, rec.header_count);
                if (n < RECORDS_MAX) {
                        specs[n] = (struct record_spec){
                                .key = rec.key,
                                .value = rec.value,
                                .timestamp_ms = rec.timestamp_ms,
                                .headers = headers + first,
                                .header_count = *header_used - first,
                        };
                }
                n++;
        }
        FUZZ_CHECK(it.index == n, "index %d after %d records", it.index, n);
        FUZZ_CHECK(!record_iter_next(&it, &rec), "record iterator not sticky");
        if (it.error_code != KAFKA_NONE)
                return -1;
        FUZZ_CHECK(n == it.header.record_count, "%d records, recordCount %d", n, it.header.record_count);
        return n;
}

static bool bytes_equal(struct kbytes a, struct kbytes b)
{
        return a.len == b.len && (a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0);
}

/* Encodes the records read from a valid batch into a new batch and reads
 * them back: same count, keys, values, headers and (CreateTime) timestamps. */
static void check_reencode(const struct record_spec *specs, int n, bool is_lat)
{
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, specs, (uint32_t)n);
        size_t size = record_batch_encoded_size(&spec);
        FUZZ_CHECK(size != SIZE_MAX, "records of a valid batch cannot be encoded");
        uint8_t *out = malloc(size);
        FUZZ_CHECK(record_batch_encode(&spec, out, size) == size, "encode size");

        struct record_batch_policy client = { .is_from_client = true };
        struct record_batch_check check;
        FUZZ_CHECK(record_batch_validate(out, size, &client, &check) == KAFKA_NONE,
                   "encoded batch does not validate: %s", check.reason);

        struct record_iter it;
        struct record_view rec;
        FUZZ_CHECK(record_iter_init(&it, out, size) == KAFKA_NONE, "iter init");
        for (int i = 0; i < n; i++) {
                FUZZ_CHECK(record_iter_next(&it, &rec), "record %d missing: %s", i, it.reason);
                FUZZ_CHECK(bytes_equal(rec.key, specs[i].key), "record %d key", i);
                FUZZ_CHECK(bytes_equal(rec.value, specs[i].value), "record %d value", i);
                FUZZ_CHECK(is_lat || rec.timestamp_ms == specs[i].timestamp_ms, "record %d timestamp", i);
                FUZZ_CHECK(rec.header_count == (int32_t)specs[i].header_count, "record %d header count", i);
                struct record_header_iter hi;
                struct record_header_view hv;
                record_header_iter_init(&hi, &rec);
                for (uint32_t j = 0; j < specs[i].header_count; j++) {
                        FUZZ_CHECK(record_header_iter_next(&hi, &hv), "record %d header %u", i, j);
                        FUZZ_CHECK(bytes_equal(hv.key, specs[i].headers[j].key) &&
                                           bytes_equal(hv.value, specs[i].headers[j].value),
                                   "record %d header %u differs", i, j);
                }
        }
        FUZZ_CHECK(!record_iter_next(&it, &rec) && it.error_code == KAFKA_NONE, "extra records");
        free(out);
}

/* A batch that validated under policy: assign offsets as the leader does,
 * and it must still be a valid batch, with what was assigned. */
static void check_assign(const uint8_t *buf, size_t len, const struct record_batch_policy *policy,
                         const struct record_batch_check *check, int64_t base_offset)
{
        uint8_t *copy = fuzz_dup(buf, len);
        bool is_lat = policy && policy->is_log_append_time;
        int64_t max_ts = is_lat ? policy->now_ms : check->max_timestamp_ms;
        record_batch_assign(copy, len, base_offset, 7, is_lat, max_ts);
        struct record_batch_check again;
        FUZZ_CHECK(record_batch_validate(copy, len, NULL, &again) == KAFKA_NONE,
                   "batch no longer valid after assign: %s", again.reason);
        FUZZ_CHECK(again.header.base_offset == base_offset && again.header.partition_leader_epoch == 7 &&
                           again.header.max_timestamp_ms == max_ts &&
                           record_batch_is_log_append_time(&again.header) == is_lat,
                   "assign did not store its fields");
        free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fuzz_input in = { data, size };
        uint8_t ctl0 = fuzz_u8(&in);
        uint8_t ctl1 = fuzz_u8(&in);
        size_t len = in.left;
        uint8_t *buf = fuzz_dup(in.p, len);

        if ((ctl0 & 1) && len >= RECORD_BATCH_LOG_OVERHEAD_BYTES)
                put_u32(buf + RECORD_BATCH_OFFSET_LENGTH, (uint32_t)(len - RECORD_BATCH_LOG_OVERHEAD_BYTES));
        if ((ctl0 & 2) && len >= RECORD_BATCH_HEADER_BYTES)
                put_u32(buf + RECORD_BATCH_OFFSET_CRC, record_batch_compute_crc(buf, len));

        check_framing(buf, len);

        struct record_batch_policy policy = {
                .is_from_client = ctl0 & 4,
                .is_compacted = ctl0 & 8,
                .is_log_append_time = ctl0 & 16,
                .is_timestamp_checked = ctl0 & 32,
                .now_ms = 1700000000000LL,
                .timestamp_before_max_ms = (ctl1 & 1) ? 3600000 : INT64_MAX,
                .timestamp_after_max_ms = (ctl1 & 2) ? 3600000 : INT64_MAX,
                .batch_bytes_max = (ctl0 & 64) ? (uint32_t)(ctl1 >> 2) * 16u : 0,
        };
        struct record_batch_policy producer = { .is_from_client = true, .now_ms = policy.now_ms };
        const struct record_batch_policy *policies[] = { NULL, &policy, &producer };
        struct record_batch_check checks[3];
        for (int i = 0; i < 3; i++) {
                int16_t err = record_batch_validate(buf, len, policies[i], &checks[i]);
                FUZZ_CHECK(err == checks[i].error_code, "returned %d, check says %d", err,
                           checks[i].error_code);
                FUZZ_CHECK(memchr(checks[i].reason, 0, sizeof(checks[i].reason)) != NULL, "reason unterminated");
                if (err != KAFKA_NONE)
                        continue;
                FUZZ_CHECK(record_batch_size_bytes(&checks[i].header) == len, "valid batch is not the buffer");
                bool is_plain = record_batch_codec(&checks[i].header) == RECORD_BATCH_CODEC_NONE;
                FUZZ_CHECK(checks[i].is_records_walked == is_plain, "records walked %d, codec %d",
                           checks[i].is_records_walked, record_batch_codec(&checks[i].header));
                /* A policy only adds rules to the structural ones. */
                FUZZ_CHECK(checks[0].error_code == KAFKA_NONE, "valid under a policy, not without one");
                check_assign(buf, len, policies[i], &checks[i], (int64_t)(ctl1 & 0x7f) << 20);
        }

        static struct record_spec specs[RECORDS_MAX];
        static struct record_header_view headers[HEADERS_MAX];
        uint32_t header_used = 0;
        int n = walk_records(buf, len, specs, headers, &header_used);
        if (checks[0].error_code == KAFKA_NONE && checks[0].is_records_walked) {
                FUZZ_CHECK(n == checks[0].header.record_count, "validated, but the iterator gave %d", n);
                if (n >= 1 && n <= RECORDS_MAX && header_used < HEADERS_MAX)
                        check_reencode(specs, n, record_batch_is_log_append_time(&checks[0].header));
        }
        free(buf);
        return 0;
}
