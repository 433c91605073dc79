/*
 * batch_convert.h - looking inside a compressed record batch on produce:
 * validating every record of it, and rewriting it with the topic's codec.
 *
 * Owns the two produce-path jobs that need a batch's records decompressed
 * (DESIGN.md, "Protocol": compression is decoded only when the broker must
 * look inside records):
 *
 *   record_batch_validate_compressed_records
 *           what record_batch_validate does, and for a compressed batch
 *           also the record walk it does for uncompressed ones: lengths,
 *           offset deltas, keys, values, headers, timestamps, and a key on
 *           every record of a compacted topic. For a compacted topic the
 *           leader must call this, not record_batch_validate, on every
 *           compressed batch.
 *   record_batch_recompress
 *           the same validation, then a new batch whose records are the
 *           produced ones under the topic's compression.type (anything but
 *           `producer`), as Kafka's LogValidator rebuilds a batch whose
 *           codec is not the topic's.
 *
 * Both decompress at most once per call, never past the caller's bound
 * (records_bytes_max), and take all their memory from the caller's arena.
 * What they return lives as long as the arena. Reentrant; an arena is one
 * thread's, the codec contexts are per thread (compress.h).
 *
 * Errors are Kafka codes, in the struct record_batch_check that
 * record_batch_validate fills, so the caller answers both alike
 * (error_code, record_index for ProduceResponse record_errors, reason for
 * error_message and the log line):
 *   - whatever record_batch_validate returns, unchanged;
 *   - MESSAGE_TOO_LARGE when the records decompress to more than
 *     records_bytes_max, or the rebuilt batch is larger than
 *     policy->batch_bytes_max (max.message.bytes), or the arena cannot hold
 *     the work. Kafka answers RecordTooLargeException (MESSAGE_TOO_LARGE)
 *     when a batch it converted is above max.message.bytes; the Java
 *     producer then splits the batch and retries, which is what a client
 *     with an over-large batch should do;
 *   - INVALID_RECORD when the compressed bytes do not decode (bad header,
 *     corrupt or truncated stream: the CRC matched, so the producer sent
 *     them so and a retry cannot help), and for every record-level fault,
 *     with the record's index where one is at fault;
 *   - INVALID_TIMESTAMP for a record timestamp outside the policy's bounds;
 *   - UNKNOWN_SERVER_ERROR when a compression library fails in a way that
 *     no input can cause (compress.h -EIO).
 *
 * Memory a call may take from the arena: one buffer for the decompressed
 * records (sized from the stream's own headers, within one codec block of
 * the real size, and never above records_bytes_max), plus for recompress
 * the target codec's worst-case output for those records with the 61-byte
 * header in front (for an uncompressed target, header and records). The
 * worst case is snappy's, about 1.17 times its input, so an arena limit of
 * 2.25 * records_bytes_max + 64 KiB always suffices; running out is
 * MESSAGE_TOO_LARGE with a reason that says memory.
 */
#ifndef RUNNEL_BATCH_CONVERT_H
#define RUNNEL_BATCH_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compress.h"
#include "record_batch.h"

struct arena;

/*
 * Validates buf[0..len) as exactly one batch, as record_batch_validate does
 * with the same policy, and when the batch is compressed decompresses its
 * records (at most records_bytes_max bytes of them) and checks every record
 * the way record_batch_validate checks those of an uncompressed batch:
 *   - lengths and fields inside each record, headers with non-null keys,
 *     recordCount records filling the decompressed bytes exactly;
 *   - offset deltas: from a client exactly 0..n-1 (lastOffsetDelta + 1 ==
 *     recordCount is a header rule already), otherwise strictly increasing
 *     up to lastOffsetDelta;
 *   - policy->is_compacted: a key on every record;
 *   - policy->is_timestamp_checked: every record's timestamp.
 * On success out->is_records_walked is true and out->max_timestamp_ms is the
 * largest record timestamp, what record_batch_assign should store.
 *
 * An uncompressed batch is record_batch_validate exactly, with nothing taken
 * from the arena. Returns out->error_code.
 */
int16_t record_batch_validate_compressed_records(const void *buf, size_t len,
                                                 const struct record_batch_policy *policy,
                                                 size_t records_bytes_max, struct arena *a,
                                                 struct record_batch_check *out);

/* A batch record_batch_recompress built, or the word that none was needed. */
struct record_batch_recompressed {
        /* false: the batch already has the target codec (or is an
         * uncompressed control batch, which Kafka never compresses); store
         * it as produced. bytes is NULL then. */
        bool is_converted;
        uint8_t *bytes;                 /* the new batch, from the arena */
        size_t size_bytes;              /* batchLength + 12 */
};

/*
 * Validates buf[0..len) and, when its codec is not `codec`, builds in arena
 * memory the batch the leader stores instead, with `codec` at `level`
 * (compress.h levels; ignored for COMPRESS_CODEC_NONE and snappy).
 *
 * The new batch has the header of the produced one: baseOffset,
 * partitionLeaderEpoch, lastOffsetDelta, baseTimestamp, maxTimestamp,
 * producerId, producerEpoch, baseSequence, recordCount; attributes with
 * bits 0-2 set to codec and the unused bits 7-15 cleared (Kafka builds the
 * attributes of a rebuilt batch from its fields). Its records are the
 * produced records byte for byte, compressed with codec or left plain, and
 * batchLength and the CRC-32C are those of the new bytes. The caller still
 * runs record_batch_assign on it, as on any batch it stores.
 *
 * Validation is that of record_batch_validate_compressed_records: every
 * record is walked whenever the records are decompressed, or when the
 * source is uncompressed. With the codecs equal nothing is converted;
 * a compressed batch's records are then decompressed and walked only when
 * policy->is_compacted (as record_batch_validate_compressed_records), and
 * otherwise it is record_batch_validate, with nothing taken from the arena.
 *
 * On success out describes the result and check->header the batch to
 * store: the new one when converted (its batchLength, attributes and CRC).
 * On error out->is_converted is false. Returns check->error_code.
 */
int16_t record_batch_recompress(const void *buf, size_t len, const struct record_batch_policy *policy,
                                enum compress_codec codec, int level, size_t records_bytes_max,
                                struct arena *a, struct record_batch_recompressed *out,
                                struct record_batch_check *check);

#endif
