/*
 * record_batch.c - magic-2 record batches; see record_batch.h for the
 * layout and the contract.
 *
 * Kafka behaviour followed here, from its sources (clients/.../record/
 * DefaultRecordBatch.java, DefaultRecord.java, ByteBufferLogInputStream.java,
 * storage/.../log/LogValidator.java, core/.../UnifiedLog.scala
 * analyzeAndValidateRecords, clients/.../requests/ProduceRequest.java
 * validateRecords):
 *   - framing: a length below the minimum or a magic above 2 is
 *     CorruptRecordException (CORRUPT_MESSAGE); a batch cut short is not an
 *     error to the iterator, it simply ends (Fetch responses end so);
 *   - Produce v3+: one batch per partition, magic 2, else INVALID_RECORD;
 *   - from a client: baseOffset 0, recordCount >= 1 and equal to
 *     lastOffsetDelta + 1, no control batch, a base sequence >= 0 when
 *     producerId >= 0, all INVALID_RECORD;
 *   - batch size over max.message.bytes: MESSAGE_TOO_LARGE; CRC mismatch:
 *     CORRUPT_MESSAGE;
 *   - records: a length that disagrees with the fields, a null header key,
 *     a negative header count, bytes left over after recordCount records or
 *     records missing: INVALID_RECORD;
 *   - compacted topic without key: INVALID_RECORD; timestamps: INVALID_TIMESTAMP
 *     as LogValidator.validateTimestamp decides.
 * Where runnel is stricter it says so at the check.
 *
 * Invariant: every read of batch bytes goes through a bounded struct
 * kreader or is preceded by a length check against the buffer.
 */
#include "record_batch.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "gen/errors.h"

/* ---- fixed-offset helpers ---- */

static uint32_t rb_load_u32(const uint8_t *p)
{
        struct kreader r;

        kr_init(&r, p, 4);
        return kr_u32(&r);
}

static uint16_t rb_load_u16(const uint8_t *p)
{
        struct kreader r;

        kr_init(&r, p, 2);
        return kr_u16(&r);
}

static int64_t rb_load_i64(const uint8_t *p)
{
        struct kreader r;

        kr_init(&r, p, 8);
        return kr_i64(&r);
}

static void rb_store_u32(uint8_t *p, uint32_t v)
{
        struct kwriter w;

        kw_init(&w, p, 4);
        kw_u32(&w, v);
}

static void rb_store_u16(uint8_t *p, uint16_t v)
{
        struct kwriter w;

        kw_init(&w, p, 2);
        kw_u16(&w, v);
}

static void rb_store_i64(uint8_t *p, int64_t v)
{
        struct kwriter w;

        kw_init(&w, p, 8);
        kw_i64(&w, v);
}

/* Two's-complement arithmetic without signed-overflow UB, as Java's long. */
static int64_t rb_add_wrapping(int64_t a, int64_t b)
{
        return (int64_t)((uint64_t)a + (uint64_t)b);
}

static int64_t rb_sub_wrapping(int64_t a, int64_t b)
{
        return (int64_t)((uint64_t)a - (uint64_t)b);
}

/* ---- framing ---- */

const char *record_batch_frame_name(enum record_batch_frame f)
{
        switch (f) {
        case RECORD_BATCH_FRAME_OK:
                return "ok";
        case RECORD_BATCH_FRAME_END:
                return "end";
        case RECORD_BATCH_FRAME_PARTIAL:
                return "partial batch";
        case RECORD_BATCH_FRAME_BAD_LENGTH:
                return "batch length below the minimum";
        case RECORD_BATCH_FRAME_BAD_MAGIC:
                return "magic other than 2";
        }
        return "?";
}

enum record_batch_frame record_batch_parse_header(const void *buf, size_t len,
                                                  struct record_batch_header *out)
{
        const uint8_t *p = buf;

        assert(out != NULL);
        assert(p != NULL || len == 0);
        if (len == 0)
                return RECORD_BATCH_FRAME_END;
        if (len < RECORD_BATCH_LOG_OVERHEAD_BYTES)
                return RECORD_BATCH_FRAME_PARTIAL;
        if ((int32_t)rb_load_u32(p + RECORD_BATCH_OFFSET_LENGTH) < RECORD_BATCH_LENGTH_MIN)
                return RECORD_BATCH_FRAME_BAD_LENGTH;
        if (len < RECORD_BATCH_HEADER_TO_MAGIC_BYTES)
                return RECORD_BATCH_FRAME_PARTIAL;
        if ((int8_t)p[RECORD_BATCH_OFFSET_MAGIC] != RECORD_BATCH_MAGIC)
                return RECORD_BATCH_FRAME_BAD_MAGIC;
        if (len < RECORD_BATCH_HEADER_BYTES)
                return RECORD_BATCH_FRAME_PARTIAL;

        struct kreader r;

        kr_init(&r, p, RECORD_BATCH_HEADER_BYTES);
        out->base_offset = kr_i64(&r);
        out->batch_length = kr_i32(&r);
        out->partition_leader_epoch = kr_i32(&r);
        out->magic = kr_i8(&r);
        out->crc = kr_u32(&r);
        out->attributes = kr_i16(&r);
        out->last_offset_delta = kr_i32(&r);
        out->base_timestamp_ms = kr_i64(&r);
        out->max_timestamp_ms = kr_i64(&r);
        out->producer_id = kr_i64(&r);
        out->producer_epoch = kr_i16(&r);
        out->base_sequence = kr_i32(&r);
        out->record_count = kr_i32(&r);
        assert(!r.err && kr_remaining(&r) == 0);
        assert(out->batch_length >= RECORD_BATCH_LENGTH_MIN);
        return RECORD_BATCH_FRAME_OK;
}

enum record_batch_frame record_batch_frame(const void *buf, size_t len, struct record_batch_header *out)
{
        enum record_batch_frame f = record_batch_parse_header(buf, len, out);

        if (f == RECORD_BATCH_FRAME_OK && record_batch_size_bytes(out) > len)
                return RECORD_BATCH_FRAME_PARTIAL;
        return f;
}

void record_batch_iter_init(struct record_batch_iter *it, const void *buf, size_t len)
{
        assert(buf != NULL || len == 0);
        it->start = buf;
        it->pos = buf;
        it->end = it->pos + len;
}

enum record_batch_frame record_batch_iter_next(struct record_batch_iter *it, struct record_batch_view *out)
{
        assert(it->start <= it->pos && it->pos <= it->end);
        enum record_batch_frame f = record_batch_frame(it->pos, (size_t)(it->end - it->pos), &out->header);

        if (f != RECORD_BATCH_FRAME_OK)
                return f;
        out->bytes = it->pos;
        out->size_bytes = record_batch_size_bytes(&out->header);
        it->pos += out->size_bytes;
        assert(it->pos <= it->end);
        return RECORD_BATCH_FRAME_OK;
}

uint32_t record_batch_compute_crc(const void *batch, size_t size_bytes)
{
        assert(size_bytes >= RECORD_BATCH_HEADER_BYTES);
        return crc32c((const uint8_t *)batch + RECORD_BATCH_OFFSET_ATTRIBUTES,
                      size_bytes - RECORD_BATCH_OFFSET_ATTRIBUTES);
}

/* ---- records ---- */

__attribute__((format(printf, 2, 3)))
static bool record_iter_fail(struct record_iter *it, const char *fmt, ...)
{
        va_list ap;

        it->error_code = KAFKA_INVALID_RECORD;
        va_start(ap, fmt);
        vsnprintf(it->reason, sizeof(it->reason), fmt, ap);
        va_end(ap);
        kr_fail(&it->r);
        return false;
}

void record_iter_init_records(struct record_iter *it, const struct record_batch_header *header,
                              const void *records, size_t len)
{
        assert(header != NULL);
        assert(records != NULL || len == 0);
        kr_init(&it->r, records, len);
        it->header = *header;
        it->index = 0;
        it->error_code = KAFKA_NONE;
        it->reason[0] = '\0';
}

int16_t record_iter_init(struct record_iter *it, const void *batch, size_t len)
{
        struct record_batch_header h;

        memset(it, 0, sizeof(*it));
        if (record_batch_frame(batch, len, &h) != RECORD_BATCH_FRAME_OK || record_batch_size_bytes(&h) != len) {
                it->error_code = KAFKA_CORRUPT_MESSAGE;
                snprintf(it->reason, sizeof(it->reason), "not one whole record batch (%zu bytes)", len);
                return it->error_code;
        }
        if (record_batch_codec(&h) != RECORD_BATCH_CODEC_NONE) {
                it->error_code = KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
                snprintf(it->reason, sizeof(it->reason), "batch is compressed (codec %d); decompress it first",
                         record_batch_codec(&h));
                return it->error_code;
        }
        record_iter_init_records(it, &h, (const uint8_t *)batch + RECORD_BATCH_HEADER_BYTES,
                                 len - RECORD_BATCH_HEADER_BYTES);
        return KAFKA_NONE;
}

/* A key or value: length varint (-1 null) then the bytes. */
static bool record_read_bytes(struct kreader *body, struct kbytes *out)
{
        int32_t n = kr_varint(body);

        if (body->err || n < -1)
                return false;
        out->len = n;
        out->ptr = n >= 0 ? kr_take(body, (size_t)n) : NULL;
        return !body->err;
}

static bool record_read_header(struct kreader *body, struct record_header_view *out)
{
        if (!record_read_bytes(body, &out->key) || out->key.len < 0)
                return false;
        return record_read_bytes(body, &out->value);
}

bool record_iter_next(struct record_iter *it, struct record_view *out)
{
        int32_t idx = it->index;

        if (it->error_code != KAFKA_NONE || it->r.err)
                return false;
        /* Not "the end after 0 records": the batch cannot have a count
         * below zero (found by fuzz/record_batch.c). */
        if (it->header.record_count < 0)
                return record_iter_fail(it, "negative recordCount %d", it->header.record_count);
        if (idx >= it->header.record_count) {
                if (kr_remaining(&it->r) != 0)
                        return record_iter_fail(it, "%zu bytes follow the last of %d records; "
                                                "batchLength disagrees with the records",
                                                kr_remaining(&it->r), it->header.record_count);
                return false;
        }
        if (kr_remaining(&it->r) == 0)
                return record_iter_fail(it, "batch ends after %d of %d records", idx, it->header.record_count);

        const uint8_t *record_start = it->r.p;
        int32_t length = kr_varint(&it->r);

        if (it->r.err)
                return record_iter_fail(it, "record %d: unreadable length varint", idx);
        if (length < 0 || (size_t)length > kr_remaining(&it->r))
                return record_iter_fail(it, "record %d: length %d but %zu bytes are left in the batch",
                                        idx, length, kr_remaining(&it->r));

        struct kreader body;

        kr_init(&body, kr_take(&it->r, (size_t)length), (size_t)length);
        out->attributes = kr_i8(&body);
        out->timestamp_delta_ms = kr_varlong(&body);
        out->offset_delta = kr_varint(&body);
        if (body.err)
                return record_iter_fail(it, "record %d: fields run past its length %d", idx, length);
        if (!record_read_bytes(&body, &out->key))
                return record_iter_fail(it, "record %d: bad key length or key past the record's length %d",
                                        idx, length);
        if (!record_read_bytes(&body, &out->value))
                return record_iter_fail(it, "record %d: bad value length or value past the record's length %d",
                                        idx, length);
        out->header_count = kr_varint(&body);
        if (body.err || out->header_count < 0 || (size_t)out->header_count > kr_remaining(&body))
                return record_iter_fail(it, "record %d: invalid header count %d", idx, out->header_count);
        out->headers = body.p;
        for (int32_t h = 0; h < out->header_count; h++) {
                struct record_header_view hv;

                if (!record_read_header(&body, &hv))
                        return record_iter_fail(it, "record %d: header %d malformed (null key, bad length, "
                                                "or past the record's length %d)", idx, h, length);
        }
        out->headers_bytes = (size_t)(body.p - out->headers);
        if (kr_remaining(&body) != 0)
                return record_iter_fail(it, "record %d: length %d but its fields take %d bytes", idx, length,
                                        length - (int32_t)kr_remaining(&body));

        out->size_bytes = (uint32_t)(it->r.p - record_start);
        out->offset = rb_add_wrapping(it->header.base_offset, out->offset_delta);
        if (record_batch_is_log_append_time(&it->header))
                out->timestamp_ms = it->header.max_timestamp_ms;
        else
                out->timestamp_ms = rb_add_wrapping(it->header.base_timestamp_ms, out->timestamp_delta_ms);
        it->index++;
        return true;
}

void record_header_iter_init(struct record_header_iter *it, const struct record_view *rec)
{
        kr_init(&it->r, rec->headers, rec->headers_bytes);
        it->remaining_count = rec->header_count;
}

bool record_header_iter_next(struct record_header_iter *it, struct record_header_view *out)
{
        if (it->remaining_count <= 0 || it->r.err)
                return false;
        if (!record_read_header(&it->r, out)) {
                /* The headers were checked by record_iter_next; only a
                 * view not made by it gets here. */
                it->remaining_count = 0;
                return false;
        }
        it->remaining_count--;
        return true;
}

/* ---- validation ---- */

__attribute__((format(printf, 4, 5)))
static int16_t record_batch_fail(struct record_batch_check *out, int16_t code, int32_t record_index,
                                 const char *fmt, ...)
{
        va_list ap;

        assert(code != KAFKA_NONE);
        out->error_code = code;
        out->record_index = record_index;
        va_start(ap, fmt);
        vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
        va_end(ap);
        return code;
}

/* LogValidator.recordHasInvalidTimestamp, without overflow. */
static bool record_batch_timestamp_in_range(int64_t ts_ms, const struct record_batch_policy *policy)
{
        int64_t behind_ms, ahead_ms;

        if (__builtin_sub_overflow(policy->now_ms, ts_ms, &behind_ms))
                return false;
        if (__builtin_sub_overflow(ts_ms, policy->now_ms, &ahead_ms))
                return false;
        return behind_ms <= policy->timestamp_before_max_ms && ahead_ms <= policy->timestamp_after_max_ms;
}

/* Framing and the checks of ProduceRequest.validateRecords. */
static int16_t record_batch_check_frame(const uint8_t *p, size_t len, struct record_batch_check *out)
{
        struct record_batch_header *h = &out->header;

        switch (record_batch_parse_header(p, len, h)) {
        case RECORD_BATCH_FRAME_OK:
                break;
        case RECORD_BATCH_FRAME_END:
                return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                         "no record batch: a partition's records must hold exactly one");
        case RECORD_BATCH_FRAME_PARTIAL:
                return record_batch_fail(out, KAFKA_CORRUPT_MESSAGE, -1,
                                         "records are %zu bytes, shorter than a batch header (%d)",
                                         len, RECORD_BATCH_HEADER_BYTES);
        case RECORD_BATCH_FRAME_BAD_LENGTH:
                return record_batch_fail(out, KAFKA_CORRUPT_MESSAGE, -1, "batchLength %d is below the minimum %d",
                                         (int32_t)rb_load_u32(p + RECORD_BATCH_OFFSET_LENGTH),
                                         RECORD_BATCH_LENGTH_MIN);
        case RECORD_BATCH_FRAME_BAD_MAGIC: {
                int8_t magic = (int8_t)p[RECORD_BATCH_OFFSET_MAGIC];

                if (magic == 0 || magic == 1)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                                 "magic %d: Produce v3 and later carry only magic 2 batches", magic);
                return record_batch_fail(out, KAFKA_CORRUPT_MESSAGE, -1, "invalid magic %d", magic);
        }
        }

        uint32_t size_bytes = record_batch_size_bytes(h);

        if (size_bytes > len)
                return record_batch_fail(out, KAFKA_CORRUPT_MESSAGE, -1,
                                         "batchLength %d says %u bytes but only %zu are there",
                                         h->batch_length, size_bytes, len);
        if (size_bytes < len) {
                struct record_batch_header next;

                if (record_batch_frame(p + size_bytes, len - size_bytes, &next) == RECORD_BATCH_FRAME_OK)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                                 "more than one record batch; Produce allows exactly one per partition");
                /* Kafka's iterator would stop at the stray bytes and the log
                 * would trim them; runnel refuses a frame it cannot account
                 * for instead. */
                return record_batch_fail(out, KAFKA_CORRUPT_MESSAGE, -1,
                                         "%zu stray bytes after the %u-byte batch", len - size_bytes, size_bytes);
        }
        return KAFKA_NONE;
}

/* Header rules: LogValidator.validateBatch and UnifiedLog's checks. */
static int16_t record_batch_check_header(const uint8_t *p, const struct record_batch_policy *policy,
                                         struct record_batch_check *out)
{
        const struct record_batch_header *h = &out->header;
        uint32_t size_bytes = record_batch_size_bytes(h);
        bool is_client = policy != NULL && policy->is_from_client;

        if (is_client && h->base_offset != 0)
                return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                         "baseOffset is %lld; a producer's batch must start at 0",
                                         (long long)h->base_offset);
        if (policy != NULL && policy->batch_bytes_max != 0 && size_bytes > policy->batch_bytes_max)
                return record_batch_fail(out, KAFKA_MESSAGE_TOO_LARGE, -1,
                                         "batch is %u bytes, above max.message.bytes %u",
                                         size_bytes, policy->batch_bytes_max);

        uint32_t crc = record_batch_compute_crc(p, size_bytes);

        if (crc != h->crc)
                return record_batch_fail(out, KAFKA_CORRUPT_MESSAGE, -1,
                                         "CRC mismatch: stored 0x%08x, computed 0x%08x", h->crc, crc);
        if (record_batch_codec(h) > RECORD_BATCH_CODEC_MAX)
                return record_batch_fail(out, KAFKA_UNSUPPORTED_COMPRESSION_TYPE, -1,
                                         "unknown compression codec %d", record_batch_codec(h));
        if (h->record_count < 0)
                return record_batch_fail(out, KAFKA_INVALID_RECORD, -1, "negative recordCount %d",
                                         h->record_count);
        if (h->last_offset_delta < 0)
                return record_batch_fail(out, KAFKA_INVALID_RECORD, -1, "negative lastOffsetDelta %d",
                                         h->last_offset_delta);
        if (is_client) {
                if (h->record_count == 0)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, -1, "recordCount is 0");
                if ((int64_t)h->last_offset_delta + 1 != h->record_count)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                                 "lastOffsetDelta %d disagrees with recordCount %d",
                                                 h->last_offset_delta, h->record_count);
                if (record_batch_is_control(h))
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                                 "clients may not write control batches");
                if (record_batch_has_producer_id(h) && h->base_sequence < 0)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                                 "producerId %lld with invalid baseSequence %d",
                                                 (long long)h->producer_id, h->base_sequence);
        } else if ((int64_t)h->record_count > (int64_t)h->last_offset_delta + 1) {
                /* Compaction leaves gaps and even empty batches, but never
                 * more records than offsets. */
                return record_batch_fail(out, KAFKA_INVALID_RECORD, -1,
                                         "recordCount %d exceeds the %lld offsets of lastOffsetDelta %d",
                                         h->record_count, (long long)h->last_offset_delta + 1,
                                         h->last_offset_delta);
        }
        return KAFKA_NONE;
}

/* LogValidator.validateTimestamp for one record: the clock bounds (when
 * the policy asks for them), and no LogAppendTime bit from a producer. */
static int16_t record_batch_check_timestamp(const struct record_view *rec, int32_t idx,
                                            const struct record_batch_policy *policy,
                                            struct record_batch_check *out)
{
        if (!policy->is_log_append_time && rec->timestamp_ms != RECORD_BATCH_NO_TIMESTAMP) {
                if (policy->is_timestamp_checked && !record_batch_timestamp_in_range(rec->timestamp_ms, policy))
                        return record_batch_fail(out, KAFKA_INVALID_TIMESTAMP, idx,
                                                 "timestamp %lld of record %d is out of range [now-%lld, now+%lld]",
                                                 (long long)rec->timestamp_ms, idx,
                                                 (long long)policy->timestamp_before_max_ms,
                                                 (long long)policy->timestamp_after_max_ms);
        } else if (record_batch_is_log_append_time(&out->header)) {
                return record_batch_fail(out, KAFKA_INVALID_TIMESTAMP, idx,
                                         "record %d: producers may not set the LogAppendTime timestamp type", idx);
        }
        return KAFKA_NONE;
}

static int16_t record_batch_check_records(const uint8_t *p, const struct record_batch_policy *policy,
                                          struct record_batch_check *out)
{
        const struct record_batch_header *h = &out->header;
        bool is_client = policy != NULL && policy->is_from_client;
        struct record_iter it;
        struct record_view rec;
        int64_t max_timestamp_ms = RECORD_BATCH_NO_TIMESTAMP;
        int32_t prev_delta = -1;

        record_iter_init_records(&it, h, p + RECORD_BATCH_HEADER_BYTES,
                                 record_batch_size_bytes(h) - RECORD_BATCH_HEADER_BYTES);
        while (record_iter_next(&it, &rec)) {
                int32_t idx = it.index - 1;

                /*
                 * Kafka's in-place path assigns offsets by counting records
                 * and never reads offsetDelta of uncompressed batches, so a
                 * gap would be stored and shown to consumers. runnel refuses
                 * it: producers write 0..n-1, and compacted (non-client)
                 * batches at least increase strictly within lastOffsetDelta.
                 */
                if (is_client ? rec.offset_delta != idx
                              : rec.offset_delta <= prev_delta || rec.offset_delta > h->last_offset_delta)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, idx,
                                                 "record %d has offsetDelta %d after %d (lastOffsetDelta %d)",
                                                 idx, rec.offset_delta, prev_delta, h->last_offset_delta);
                prev_delta = rec.offset_delta;
                if (policy != NULL && policy->is_compacted && rec.key.len < 0)
                        return record_batch_fail(out, KAFKA_INVALID_RECORD, idx,
                                                 "compacted topic cannot accept record %d without a key", idx);
                if (policy != NULL) {
                        int16_t err = record_batch_check_timestamp(&rec, idx, policy, out);

                        if (err != KAFKA_NONE)
                                return err;
                }
                if (rec.timestamp_ms > max_timestamp_ms)
                        max_timestamp_ms = rec.timestamp_ms;
        }
        if (it.error_code != KAFKA_NONE)
                return record_batch_fail(out, it.error_code, it.index, "%s", it.reason);
        assert(it.index == h->record_count);
        out->is_records_walked = true;
        out->max_timestamp_ms = max_timestamp_ms;
        return KAFKA_NONE;
}

int16_t record_batch_validate(const void *buf, size_t len, const struct record_batch_policy *policy,
                              struct record_batch_check *out)
{
        const uint8_t *p = buf;
        int16_t err;

        assert(out != NULL);
        assert(p != NULL || len == 0);
        memset(out, 0, sizeof(*out));
        out->error_code = KAFKA_NONE;
        out->record_index = -1;
        out->max_timestamp_ms = RECORD_BATCH_NO_TIMESTAMP;

        err = record_batch_check_frame(p, len, out);
        if (err != KAFKA_NONE)
                return err;
        assert(record_batch_size_bytes(&out->header) == len);
        err = record_batch_check_header(p, policy, out);
        if (err != KAFKA_NONE)
                return err;
        if (record_batch_codec(&out->header) != RECORD_BATCH_CODEC_NONE) {
                out->max_timestamp_ms = out->header.max_timestamp_ms;
                return KAFKA_NONE;
        }
        return record_batch_check_records(p, policy, out);
}

/* ---- rewrite ---- */

void record_batch_assign(void *batch, size_t size_bytes, int64_t base_offset, int32_t leader_epoch,
                         bool is_log_append_time, int64_t max_timestamp_ms)
{
        uint8_t *p = batch;

        assert(p != NULL);
        assert(size_bytes >= RECORD_BATCH_HEADER_BYTES);
        assert(rb_load_u32(p + RECORD_BATCH_OFFSET_LENGTH) + (size_t)RECORD_BATCH_LOG_OVERHEAD_BYTES == size_bytes);
        assert(p[RECORD_BATCH_OFFSET_MAGIC] == RECORD_BATCH_MAGIC);
        assert(base_offset >= 0);

        rb_store_i64(p + RECORD_BATCH_OFFSET_BASE_OFFSET, base_offset);
        rb_store_u32(p + RECORD_BATCH_OFFSET_LEADER_EPOCH, (uint32_t)leader_epoch);

        uint16_t attributes = rb_load_u16(p + RECORD_BATCH_OFFSET_ATTRIBUTES);
        bool was_log_append_time = (attributes & RECORD_BATCH_ATTR_LOG_APPEND_TIME) != 0;

        if (was_log_append_time == is_log_append_time &&
            rb_load_i64(p + RECORD_BATCH_OFFSET_MAX_TIMESTAMP) == max_timestamp_ms)
                return;

        /* Kafka rebuilds the attributes from codec, type, transactional,
         * control and delete-horizon, which drops bits 7-15. */
        uint16_t kept = RECORD_BATCH_ATTR_CODEC_MASK | RECORD_BATCH_ATTR_TRANSACTIONAL |
                        RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_DELETE_HORIZON;

        attributes &= kept;
        if (is_log_append_time)
                attributes |= RECORD_BATCH_ATTR_LOG_APPEND_TIME;
        rb_store_u16(p + RECORD_BATCH_OFFSET_ATTRIBUTES, attributes);
        rb_store_i64(p + RECORD_BATCH_OFFSET_MAX_TIMESTAMP, max_timestamp_ms);
        rb_store_u32(p + RECORD_BATCH_OFFSET_CRC, record_batch_compute_crc(p, size_bytes));
}

/* ---- encoding ---- */

void record_batch_spec_init(struct record_batch_spec *spec, const struct record_spec *records,
                            uint32_t record_count)
{
        memset(spec, 0, sizeof(*spec));
        spec->partition_leader_epoch = RECORD_BATCH_NO_LEADER_EPOCH;
        spec->producer_id = RECORD_BATCH_NO_PRODUCER_ID;
        spec->producer_epoch = RECORD_BATCH_NO_PRODUCER_EPOCH;
        spec->base_sequence = RECORD_BATCH_NO_SEQUENCE;
        spec->log_append_time_ms = RECORD_BATCH_NO_TIMESTAMP;
        spec->records = records;
        spec->record_count = record_count;
}

static uint64_t record_bytes_field_size(struct kbytes b)
{
        assert(b.len >= -1);
        return kw_varint_size(b.len) + (b.len > 0 ? (uint64_t)b.len : 0);
}

/* The record's length field: everything after the length varint. */
static uint64_t record_body_size(const struct record_spec *rec, int64_t base_timestamp_ms, int32_t offset_delta)
{
        uint64_t n = 1;         /* attributes */

        n += kw_varlong_size(rb_sub_wrapping(rec->timestamp_ms, base_timestamp_ms));
        n += kw_varint_size(offset_delta);
        n += record_bytes_field_size(rec->key);
        n += record_bytes_field_size(rec->value);
        assert(rec->header_count <= INT32_MAX);
        n += kw_varint_size((int32_t)rec->header_count);
        for (uint32_t i = 0; i < rec->header_count; i++) {
                assert(rec->headers[i].key.len >= 0);
                n += record_bytes_field_size(rec->headers[i].key);
                n += record_bytes_field_size(rec->headers[i].value);
        }
        return n;
}

static int64_t record_batch_spec_base_timestamp(const struct record_batch_spec *spec)
{
        assert(spec->record_count >= 1);
        return spec->records[0].timestamp_ms;
}

size_t record_batch_encoded_size(const struct record_batch_spec *spec)
{
        assert(spec != NULL && spec->records != NULL);
        assert(spec->record_count >= 1 && spec->record_count <= INT32_MAX);
        int64_t base_ts = record_batch_spec_base_timestamp(spec);
        uint64_t total = RECORD_BATCH_HEADER_BYTES;

        for (uint32_t i = 0; i < spec->record_count; i++) {
                uint64_t body = record_body_size(&spec->records[i], base_ts, (int32_t)i);

                if (body > INT32_MAX)
                        return SIZE_MAX;
                total += kw_varint_size((int32_t)body) + body;
                if (total > INT32_MAX)
                        return SIZE_MAX;
        }
        return (size_t)total;
}

static void record_write_bytes(struct kwriter *w, struct kbytes b)
{
        kw_varint(w, b.len);
        if (b.len > 0)
                kw_raw(w, b.ptr, (size_t)b.len);
}

size_t record_batch_encode(const struct record_batch_spec *spec, void *buf, size_t len)
{
        size_t size_bytes = record_batch_encoded_size(spec);

        assert(size_bytes != SIZE_MAX);
        assert(len >= size_bytes);
        assert((spec->attributes & RECORD_BATCH_ATTR_CODEC_MASK) == RECORD_BATCH_CODEC_NONE);

        bool is_lat = (spec->attributes & RECORD_BATCH_ATTR_LOG_APPEND_TIME) != 0;
        int64_t base_ts = record_batch_spec_base_timestamp(spec);
        int64_t max_ts = RECORD_BATCH_NO_TIMESTAMP;

        for (uint32_t i = 0; i < spec->record_count; i++)
                if (spec->records[i].timestamp_ms > max_ts)
                        max_ts = spec->records[i].timestamp_ms;
        if (is_lat)
                max_ts = spec->log_append_time_ms;

        struct kwriter w;

        kw_init(&w, buf, size_bytes);
        kw_i64(&w, spec->base_offset);
        kw_i32(&w, (int32_t)(size_bytes - RECORD_BATCH_LOG_OVERHEAD_BYTES));
        kw_i32(&w, spec->partition_leader_epoch);
        kw_i8(&w, RECORD_BATCH_MAGIC);
        kw_u32(&w, 0);                  /* CRC, filled in last */
        kw_i16(&w, spec->attributes);
        kw_i32(&w, (int32_t)spec->record_count - 1);
        kw_i64(&w, base_ts);
        kw_i64(&w, max_ts);
        kw_i64(&w, spec->producer_id);
        kw_i16(&w, spec->producer_epoch);
        kw_i32(&w, spec->base_sequence);
        kw_i32(&w, (int32_t)spec->record_count);
        assert((size_t)(w.p - (uint8_t *)buf) == RECORD_BATCH_HEADER_BYTES);

        for (uint32_t i = 0; i < spec->record_count; i++) {
                const struct record_spec *rec = &spec->records[i];
                uint64_t body = record_body_size(rec, base_ts, (int32_t)i);
                uint8_t *body_start;

                kw_varint(&w, (int32_t)body);
                body_start = w.p;
                kw_i8(&w, 0);           /* record attributes: unused in v2 */
                kw_varlong(&w, rb_sub_wrapping(rec->timestamp_ms, base_ts));
                kw_varint(&w, (int32_t)i);
                record_write_bytes(&w, rec->key);
                record_write_bytes(&w, rec->value);
                kw_varint(&w, (int32_t)rec->header_count);
                for (uint32_t j = 0; j < rec->header_count; j++) {
                        record_write_bytes(&w, rec->headers[j].key);
                        record_write_bytes(&w, rec->headers[j].value);
                }
                assert((uint64_t)(w.p - body_start) == body);
        }
        assert(w.p == w.end);
        rb_store_u32((uint8_t *)buf + RECORD_BATCH_OFFSET_CRC, record_batch_compute_crc(buf, size_bytes));
        return size_bytes;
}
