/*
 * record_batch.h - Kafka's magic-2 record batch: framing, validation,
 * in-place rewrite on append, record iteration and encoding.
 *
 * Owns the byte layout of a batch (implementation.html, "Record Batch"):
 *
 *   off size field                    under CRC
 *    0    8  baseOffset               no
 *    8    4  batchLength              no   bytes after this field
 *   12    4  partitionLeaderEpoch     no
 *   16    1  magic (2)                no
 *   17    4  crc (uint32, CRC-32C)    no   covers offset 21 to the end
 *   21    2  attributes               yes  bits 0-2 codec, 3 LogAppendTime,
 *                                          4 transactional, 5 control,
 *                                          6 delete horizon
 *   23    4  lastOffsetDelta          yes
 *   27    8  baseTimestamp            yes
 *   35    8  maxTimestamp             yes
 *   43    8  producerId               yes
 *   51    2  producerEpoch            yes
 *   53    4  baseSequence             yes
 *   57    4  recordCount              yes
 *   61       records (compressed as one stream when codec != 0)
 *
 * and of a record inside it: length varint, attributes int8, timestampDelta
 * varlong, offsetDelta varint, key length varint + bytes (-1 null), value
 * length varint + bytes (-1 null), header count varint, then per header a
 * key (length varint >= 0 + bytes) and a value (length varint + bytes, -1
 * null). Varints here are zig-zag (wire.h kr_varint/kr_varlong).
 *
 * Nothing here copies: views point into the caller's buffer and are valid
 * as long as it is. Nothing allocates. Functions are reentrant.
 *
 * Compressed batches (codec 1-4): framing, header checks and the CRC only.
 * The records of a compressed batch are one compressed stream that this
 * module does not open; the decompression module hands the decompressed
 * bytes to record_iter_init_records(), and per-record checks (keys on
 * compacted topics, timestamps) of compressed batches happen there.
 *
 * Errors returned to clients are Kafka's codes (protocol/gen/errors.h):
 * CORRUPT_MESSAGE for framing and CRC, INVALID_RECORD for a batch or record
 * that is well framed but not acceptable, UNSUPPORTED_COMPRESSION_TYPE for
 * codecs 5-7, INVALID_TIMESTAMP for timestamps outside the topic's bounds,
 * MESSAGE_TOO_LARGE for a batch above max.message.bytes.
 */
#ifndef RUNNEL_RECORD_BATCH_H
#define RUNNEL_RECORD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

/* ---- layout ---- */

#define RECORD_BATCH_MAGIC 2
#define RECORD_BATCH_HEADER_BYTES 61            /* up to and including recordCount */
#define RECORD_BATCH_LOG_OVERHEAD_BYTES 12      /* baseOffset + batchLength */
#define RECORD_BATCH_HEADER_TO_MAGIC_BYTES 17   /* bytes needed to see the magic */
/* Smallest legal batchLength: a header with no records. */
#define RECORD_BATCH_LENGTH_MIN (RECORD_BATCH_HEADER_BYTES - RECORD_BATCH_LOG_OVERHEAD_BYTES)

#define RECORD_BATCH_OFFSET_BASE_OFFSET 0
#define RECORD_BATCH_OFFSET_LENGTH 8
#define RECORD_BATCH_OFFSET_LEADER_EPOCH 12
#define RECORD_BATCH_OFFSET_MAGIC 16
#define RECORD_BATCH_OFFSET_CRC 17
#define RECORD_BATCH_OFFSET_ATTRIBUTES 21
#define RECORD_BATCH_OFFSET_LAST_OFFSET_DELTA 23
#define RECORD_BATCH_OFFSET_BASE_TIMESTAMP 27
#define RECORD_BATCH_OFFSET_MAX_TIMESTAMP 35
#define RECORD_BATCH_OFFSET_PRODUCER_ID 43
#define RECORD_BATCH_OFFSET_PRODUCER_EPOCH 51
#define RECORD_BATCH_OFFSET_BASE_SEQUENCE 53
#define RECORD_BATCH_OFFSET_RECORD_COUNT 57

#define RECORD_BATCH_ATTR_CODEC_MASK 0x07
#define RECORD_BATCH_ATTR_LOG_APPEND_TIME 0x08
#define RECORD_BATCH_ATTR_TRANSACTIONAL 0x10
#define RECORD_BATCH_ATTR_CONTROL 0x20
#define RECORD_BATCH_ATTR_DELETE_HORIZON 0x40

enum record_batch_codec {
        RECORD_BATCH_CODEC_NONE = 0,
        RECORD_BATCH_CODEC_GZIP = 1,
        RECORD_BATCH_CODEC_SNAPPY = 2,
        RECORD_BATCH_CODEC_LZ4 = 3,
        RECORD_BATCH_CODEC_ZSTD = 4,
        RECORD_BATCH_CODEC_MAX = 4,             /* 5-7 are not codecs */
};

#define RECORD_BATCH_NO_TIMESTAMP (-1LL)
#define RECORD_BATCH_NO_PRODUCER_ID (-1LL)
#define RECORD_BATCH_NO_PRODUCER_EPOCH (-1)
#define RECORD_BATCH_NO_SEQUENCE (-1)
#define RECORD_BATCH_NO_LEADER_EPOCH (-1)

/* The decoded 61-byte header. batch_length is the wire field: the bytes
 * that follow it, so the whole batch is batch_length + 12 bytes. */
struct record_batch_header {
        int64_t base_offset;
        int32_t batch_length;
        int32_t partition_leader_epoch;
        int8_t magic;
        uint32_t crc;
        int16_t attributes;
        int32_t last_offset_delta;
        int64_t base_timestamp_ms;
        int64_t max_timestamp_ms;
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t base_sequence;
        int32_t record_count;
};

static inline uint32_t record_batch_size_bytes(const struct record_batch_header *h)
{
        return (uint32_t)h->batch_length + RECORD_BATCH_LOG_OVERHEAD_BYTES;
}
/* Wrapping, never undefined: a header read from a damaged file may carry
 * any base offset and delta, and the callers that scan such files reject
 * the batch on its nonsensical offsets. */
static inline int64_t record_batch_last_offset(const struct record_batch_header *h)
{
        return (int64_t)((uint64_t)h->base_offset + (uint64_t)(int64_t)h->last_offset_delta);
}
static inline int64_t record_batch_next_offset(const struct record_batch_header *h)
{
        return (int64_t)((uint64_t)record_batch_last_offset(h) + 1u);
}
static inline int record_batch_codec(const struct record_batch_header *h)
{
        return h->attributes & RECORD_BATCH_ATTR_CODEC_MASK;
}
static inline bool record_batch_is_log_append_time(const struct record_batch_header *h)
{
        return (h->attributes & RECORD_BATCH_ATTR_LOG_APPEND_TIME) != 0;
}
static inline bool record_batch_is_transactional(const struct record_batch_header *h)
{
        return (h->attributes & RECORD_BATCH_ATTR_TRANSACTIONAL) != 0;
}
static inline bool record_batch_is_control(const struct record_batch_header *h)
{
        return (h->attributes & RECORD_BATCH_ATTR_CONTROL) != 0;
}
static inline bool record_batch_has_delete_horizon(const struct record_batch_header *h)
{
        return (h->attributes & RECORD_BATCH_ATTR_DELETE_HORIZON) != 0;
}
static inline bool record_batch_has_producer_id(const struct record_batch_header *h)
{
        return h->producer_id >= 0;
}

/* ---- framing ---- */

/* What the bytes at a position hold. Only OK yields a header. */
enum record_batch_frame {
        RECORD_BATCH_FRAME_OK,          /* a header (and, for _frame/_iter, the whole batch) */
        RECORD_BATCH_FRAME_END,         /* no bytes at all */
        RECORD_BATCH_FRAME_PARTIAL,     /* a batch starts but its bytes stop early */
        RECORD_BATCH_FRAME_BAD_LENGTH,  /* batchLength below RECORD_BATCH_LENGTH_MIN */
        RECORD_BATCH_FRAME_BAD_MAGIC,   /* magic other than 2 */
};

const char *record_batch_frame_name(enum record_batch_frame f);

/*
 * Decodes the header at buf. Needs RECORD_BATCH_HEADER_BYTES, not the whole
 * batch: a reader that holds only the start of a big batch may look at it.
 * Checks are in the order the bytes arrive: an impossible length is
 * reported as soon as 12 bytes are there, a bad magic as soon as 17 are.
 */
enum record_batch_frame record_batch_parse_header(const void *buf, size_t len,
                                                  struct record_batch_header *out);

/* Like record_batch_parse_header, and the whole batch must be in len. */
enum record_batch_frame record_batch_frame(const void *buf, size_t len,
                                           struct record_batch_header *out);

/* One batch found in a buffer. */
struct record_batch_view {
        const uint8_t *bytes;           /* the batch, from baseOffset */
        uint32_t size_bytes;            /* batch_length + 12 */
        struct record_batch_header header;
};

/*
 * Walks the batches of a buffer (a Produce `records` field, a Fetch
 * response's records, a chunk of a .log file). record_batch_iter_next
 * returns OK with the next batch, END when the buffer is used up exactly,
 * or PARTIAL / BAD_* when the bytes at the cursor are not a whole batch;
 * the cursor then stays on those bytes (record_batch_iter_offset tells
 * where) and every later call returns the same. Nothing is checked beyond
 * framing: validate each batch before trusting its contents.
 */
struct record_batch_iter {
        const uint8_t *start;
        const uint8_t *pos;
        const uint8_t *end;
};

void record_batch_iter_init(struct record_batch_iter *it, const void *buf, size_t len);
enum record_batch_frame record_batch_iter_next(struct record_batch_iter *it,
                                               struct record_batch_view *out);
static inline size_t record_batch_iter_offset(const struct record_batch_iter *it)
{
        return (size_t)(it->pos - it->start);
}

/* ---- checksum ---- */

/* The CRC-32C the batch should carry: over offset 21 to size_bytes. */
uint32_t record_batch_compute_crc(const void *batch, size_t size_bytes);

/* ---- validation ---- */

/*
 * What the broker requires of a batch beyond its structure. A NULL policy
 * checks structure only (framing, CRC, header sanity, records of an
 * uncompressed batch), as reading back a log or a replica needs.
 */
struct record_batch_policy {
        /* From a producer (AppendOrigin.CLIENT): baseOffset must be 0,
         * recordCount >= 1 and equal to lastOffsetDelta + 1, offset deltas
         * exactly 0..n-1, no control batch, a sequence when there is a
         * producer id. */
        bool is_from_client;
        /* cleanup.policy includes compact: every record needs a key. */
        bool is_compacted;
        /* message.timestamp.type = LogAppendTime: record timestamps are not
         * checked (the broker overwrites them), but a producer may not set
         * the LogAppendTime bit itself. */
        bool is_log_append_time;
        /* When false, no timestamp is checked against the clock; the
         * LogAppendTime-bit rule above applies either way. */
        bool is_timestamp_checked;
        int64_t now_ms;
        int64_t timestamp_before_max_ms;        /* message.timestamp.before.max.ms */
        int64_t timestamp_after_max_ms;         /* message.timestamp.after.max.ms */
        /* max.message.bytes; 0 means no limit. */
        uint32_t batch_bytes_max;
};

#define RECORD_BATCH_REASON_BYTES 160

struct record_batch_check {
        int16_t error_code;             /* KAFKA_NONE or the code to return */
        int32_t record_index;           /* record at fault (ProduceResponse record_errors), or -1 */
        char reason[RECORD_BATCH_REASON_BYTES];   /* for the log line and error_message */
        struct record_batch_header header;
        bool is_records_walked;         /* uncompressed: every record was decoded */
        /* Largest record timestamp (uncompressed, CreateTime), what the
         * broker writes as maxTimestamp; the header's value otherwise. */
        int64_t max_timestamp_ms;
};

/*
 * Validates buf[0..len) as exactly one batch, as a leader must on produce:
 * framing, magic 2, batchLength equal to the bytes, CRC-32C, codec, the
 * header rules of the policy and, when uncompressed, every record (its
 * length, offset delta, key, value and headers, the lengths adding up
 * exactly to the batch). The first failure wins. Returns out->error_code.
 *
 * A Produce request (v3+) must carry exactly one batch per partition;
 * bytes after the first batch are refused here (INVALID_RECORD when they
 * are another batch, CORRUPT_MESSAGE otherwise). The zstd-needs-Produce-v7
 * rule depends on the request version and is the caller's.
 */
int16_t record_batch_validate(const void *buf, size_t len, const struct record_batch_policy *policy,
                              struct record_batch_check *out);

/* ---- rewrite on append ---- */

/*
 * Rewrites in place what the leader assigns on append, as Kafka does to a
 * batch it stores without recompressing: baseOffset and
 * partitionLeaderEpoch (neither under the CRC), and the timestamp type and
 * maxTimestamp (LogAppendTime: the append time; CreateTime: the largest
 * record timestamp, record_batch_check.max_timestamp_ms). The CRC is
 * recomputed only when attributes or maxTimestamp change; attribute bits
 * 7-15 are cleared then, as Kafka's rewrite does. batch must be a whole,
 * valid batch of size_bytes.
 */
void record_batch_assign(void *batch, size_t size_bytes, int64_t base_offset, int32_t leader_epoch,
                         bool is_log_append_time, int64_t max_timestamp_ms);

/* ---- records ---- */

/* One record header: key is never null, value may be (len -1). */
struct record_header_view {
        struct kbytes key;
        struct kbytes value;
};

/* One record, decoded. offset and timestamp_ms are absolute: base plus
 * delta, and for LogAppendTime batches the batch's maxTimestamp, which is
 * what consumers see. */
struct record_view {
        uint32_t size_bytes;            /* the whole record, length varint included */
        int8_t attributes;
        int64_t timestamp_delta_ms;
        int32_t offset_delta;
        int64_t offset;
        int64_t timestamp_ms;
        struct kbytes key;              /* len -1: null */
        struct kbytes value;            /* len -1: null (a tombstone) */
        int32_t header_count;
        const uint8_t *headers;         /* header_count headers, already checked */
        size_t headers_bytes;
};

/*
 * Iterates the records of a batch. record_iter_next returns true with the
 * next record, or false: at the end (error_code KAFKA_NONE) or on a
 * malformed record (error_code KAFKA_INVALID_RECORD, reason set), after
 * which it keeps returning false. Reaching the end also checks that the
 * records fill the batch exactly and that there were recordCount of them.
 */
struct record_iter {
        struct kreader r;
        struct record_batch_header header;
        int32_t index;                  /* records returned so far */
        int16_t error_code;
        char reason[RECORD_BATCH_REASON_BYTES];
};

/* Over a whole uncompressed batch. Returns KAFKA_NONE, CORRUPT_MESSAGE when
 * the bytes are not one batch, or UNSUPPORTED_COMPRESSION_TYPE when the
 * batch is compressed (decompress and use record_iter_init_records). */
int16_t record_iter_init(struct record_iter *it, const void *batch, size_t len);

/* Over records already decompressed, with the batch's header. */
void record_iter_init_records(struct record_iter *it, const struct record_batch_header *header,
                              const void *records, size_t len);

bool record_iter_next(struct record_iter *it, struct record_view *out);

/* Walks the headers of a record returned by record_iter_next. */
struct record_header_iter {
        struct kreader r;
        int32_t remaining_count;
};

void record_header_iter_init(struct record_header_iter *it, const struct record_view *rec);
bool record_header_iter_next(struct record_header_iter *it, struct record_header_view *out);

/* ---- encoding ---- */

/* A record to encode; key/value len -1 means null. */
struct record_spec {
        struct kbytes key;
        struct kbytes value;
        int64_t timestamp_ms;
        const struct record_header_view *headers;
        uint32_t header_count;
};

/* An uncompressed batch to encode. baseTimestamp is the first record's
 * timestamp; maxTimestamp the largest, or log_append_time_ms when the
 * attributes say LogAppendTime. Offset deltas are 0..n-1. */
struct record_batch_spec {
        int64_t base_offset;
        int32_t partition_leader_epoch;
        int16_t attributes;             /* codec bits must be 0 */
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t base_sequence;
        int64_t log_append_time_ms;
        const struct record_spec *records;
        uint32_t record_count;          /* >= 1 */
};

/* A spec with no producer, no epoch, CreateTime, and the given records. */
void record_batch_spec_init(struct record_batch_spec *spec, const struct record_spec *records,
                            uint32_t record_count);

/* Bytes record_batch_encode will write; SIZE_MAX if the batch would pass
 * INT32_MAX bytes and cannot be encoded. */
size_t record_batch_encoded_size(const struct record_batch_spec *spec);

/* Writes the batch, CRC included, into buf (at least the encoded size)
 * and returns the bytes written. */
size_t record_batch_encode(const struct record_batch_spec *spec, void *buf, size_t len);

#endif
