/*
 * producer_state.h - what one partition knows of each producer writing to
 * it: Kafka's ProducerStateManager for a single partition.
 *
 * For every producer id seen in the log (batches with producerId >= 0) the
 * partition keeps the producer's epoch, the metadata of its last five
 * batches (sequence range, offsets, timestamp), the epoch of the last
 * transaction coordinator that wrote a marker for it, and the first offset
 * of its open transaction. From that it answers, before an append:
 *   - a retried batch (same epoch, same sequence range as one of the five)
 *     is a duplicate: the partition answers with the original offsets and
 *     writes nothing (KIP-98 idempotence);
 *   - an older epoch is INVALID_PRODUCER_EPOCH (Kafka 2.7+ sends it rather
 *     than PRODUCER_FENCED from the partition, so that clients can abort and
 *     retry);
 *   - a sequence that does not follow the last one is
 *     OUT_OF_ORDER_SEQUENCE_NUMBER; a new epoch must start at sequence 0
 *     unless the producer is unknown here (its state expired or was
 *     removed with the records: any sequence is then taken, as Kafka 2.5+
 *     does instead of UNKNOWN_PRODUCER_ID);
 *   - a plain write from a producer whose transaction is open is
 *     INVALID_TXN_STATE.
 * and after an append (or while replaying the log at open) records it.
 *
 * Snapshots are Kafka's `<offset>.snapshot` files, byte for byte: int16
 * version (1), uint32 CRC-32C of everything after it, int32 entry count,
 * then per producer: id int64, epoch int16, last sequence int32, last
 * offset int64, offset delta int32, timestamp int64, coordinator epoch
 * int32, current transaction first offset int64 (-1: none). As in Kafka a
 * snapshot keeps only the newest batch of each producer; the state at
 * offset N is the snapshot named N plus the batches from N on.
 *
 * Thread-confined to the partition's home thread; nothing here locks.
 */
#ifndef RUNNEL_PRODUCER_STATE_H
#define RUNNEL_PRODUCER_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/record_batch.h"

#define PRODUCER_BATCHES_KEPT 5                 /* Kafka's NUM_BATCHES_TO_RETAIN */
#define PRODUCER_SNAPSHOT_VERSION 1
#define PRODUCER_SNAPSHOT_HEADER_BYTES 10       /* version, crc, entry count */
#define PRODUCER_SNAPSHOT_ENTRY_BYTES 46
/* A snapshot larger than this is refused at load (about 11 million producers). */
#define PRODUCER_SNAPSHOT_BYTES_MAX (512u << 20)
#define PRODUCER_SNAPSHOT_SUFFIX ".snapshot"

/* One written batch of a producer (Kafka's BatchMetadata). */
struct producer_batch {
        int32_t last_seq;
        int64_t last_offset;
        int32_t offset_delta;           /* last_offset - first offset == last_seq - first seq */
        int64_t timestamp_ms;           /* the batch's max timestamp */
};

struct producer_entry {
        int64_t producer_id;            /* -1: a free slot */
        int16_t epoch;
        int32_t coordinator_epoch;      /* -1 until a marker was written */
        int64_t last_timestamp_ms;
        int64_t txn_first_offset;       /* the open transaction's first offset, -1 when none */
        uint8_t batch_count;            /* 0..PRODUCER_BATCHES_KEPT, oldest first from batch_head */
        uint8_t batch_head;
        struct producer_batch batches[PRODUCER_BATCHES_KEPT];
};

/* An open-addressing table of producer entries (linear probing). */
struct producer_state {
        struct producer_entry *slots;
        uint32_t cap;                   /* 0 or a power of two */
        uint32_t count;
        uint64_t change_count;          /* bumped by every change: snapshots compare it */
};

/* A transaction ended by a marker: what the last stable offset and the
 * aborted-transaction index need. */
struct producer_completed_txn {
        int64_t producer_id;
        int64_t first_offset;
        int64_t last_offset;            /* the marker's offset */
        bool is_aborted;
};

/* The original offsets of a batch found to be a retry. */
struct producer_duplicate {
        int64_t first_offset;
        int64_t last_offset;
        int64_t timestamp_ms;
};

void producer_state_init(struct producer_state *s);
void producer_state_free(struct producer_state *s);
/* Forgets every producer (the log was emptied). */
void producer_state_clear(struct producer_state *s);

uint32_t producer_state_count(const struct producer_state *s);
/* The entry of producer_id, or NULL. Valid until the next change. */
const struct producer_entry *producer_state_find(const struct producer_state *s, int64_t producer_id);
/* Iteration: *cursor starts at 0; NULL at the end. */
const struct producer_entry *producer_state_next(const struct producer_state *s, uint32_t *cursor);

/* The first sequence of an entry's batch: sequences wrap at INT32_MAX. */
int32_t producer_batch_first_seq(const struct producer_batch *b);
/* The last sequence of a batch header: base sequence + last offset delta, wrapping. */
int32_t producer_header_last_seq(const struct record_batch_header *h);

/*
 * Checks a client's data batch (h->producer_id >= 0, not a control batch)
 * before it is written. Returns KAFKA_NONE with *is_duplicate false when it
 * may be appended; KAFKA_NONE with *is_duplicate true and *dup filled when
 * it is a retry of a batch still remembered; or INVALID_PRODUCER_EPOCH,
 * OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_TXN_STATE, with one line in reason.
 */
int16_t producer_state_check(const struct producer_state *s, const struct record_batch_header *h,
                             bool *is_duplicate, struct producer_duplicate *dup, char *reason,
                             size_t reason_bytes);

/* Makes sure producer_id has an entry (empty when new), so that the
 * update after a write cannot fail. Returns 0 or -ENOMEM. */
int producer_state_reserve(struct producer_state *s, int64_t producer_id);

/*
 * Records a written batch; h->base_offset is its assigned offset. For a
 * control batch, control_type is the marker's (0 abort, 1 commit) and
 * coordinator_epoch its coordinator epoch (ignored for data batches).
 * *completed (may be NULL) is filled and true returned when a marker ended
 * a transaction holding data. Returns 1 when a transaction was completed, 0
 * otherwise, or -ENOMEM (the state is then unchanged).
 */
int producer_state_update(struct producer_state *s, const struct record_batch_header *h, int16_t control_type,
                          int32_t coordinator_epoch, struct producer_completed_txn *completed);

/*
 * Undoes producer_state_update calls whose writes never reached the log
 * (a full disk), newest first: producer_id's entry becomes *before, a copy
 * of it taken just before the update, or goes when before is NULL (the
 * producer had no entry then). Cannot fail short of memory to re-add an
 * entry expired meanwhile; the producer is then unknown, as if expired.
 */
void producer_state_restore(struct producer_state *s, int64_t producer_id, const struct producer_entry *before);

/* Drops producers with no open transaction whose last write is at least
 * expiration_ms before now_ms (producer.id.expiration.ms). Returns how many. */
uint32_t producer_state_expire(struct producer_state *s, int64_t now_ms, int64_t expiration_ms);

/* The lowest open transaction's first offset, or -1 when none is open:
 * the last stable offset is min(this, high watermark). */
int64_t producer_state_first_open_txn_offset(const struct producer_state *s);

/* ---- snapshots ---- */

size_t producer_state_snapshot_bytes(const struct producer_state *s);
/* Writes exactly producer_state_snapshot_bytes() bytes, CRC included. */
void producer_state_snapshot_encode(const struct producer_state *s, uint8_t *buf);
/*
 * Replaces s with a snapshot's contents, leaving out producers expired at
 * now_ms (expiration_ms <= 0: none). Returns 0, -EBADMSG (version, CRC,
 * length or a field out of range: the file is not a snapshot to trust), or
 * -ENOMEM; s is unchanged on error.
 */
int producer_state_snapshot_decode(struct producer_state *s, const uint8_t *buf, size_t len, int64_t now_ms,
                                   int64_t expiration_ms);

/* "<20-digit offset>.snapshot" */
void producer_snapshot_file_name(char *out, size_t out_bytes, int64_t offset);

/*
 * Writes s as the snapshot named offset in dir_fd: a temporary file, then
 * renamed over the name, so a reader never sees half of one. With is_synced
 * the file and the directory are fsynced before returning (clean shutdown);
 * without, a crash may leave an older or no snapshot at that name, which
 * load handles (a torn one fails its CRC and is deleted). Returns 0 or -errno.
 */
int producer_state_write_snapshot(const struct producer_state *s, int dir_fd, int64_t offset, bool is_synced);

/*
 * The snapshot offsets in dir_fd, ascending, in a malloc'ed array (NULL
 * when there are none). Returns the count or -errno.
 */
int producer_snapshot_list(int dir_fd, int64_t **offsets_out);

/*
 * Loads the newest snapshot at or below max_offset into s, deleting the
 * ones above max_offset (the log was cut below them) and any found corrupt
 * on the way (bad CRC, version or length). *offset_out gets the loaded
 * snapshot's offset, or -1 when none was usable (s is then empty).
 * Returns 0 or -errno (an I/O error reading one, memory).
 */
int producer_state_load_snapshot(struct producer_state *s, int dir_fd, int64_t max_offset, int64_t now_ms,
                                 int64_t expiration_ms, int64_t *offset_out);

/* Deletes the snapshots named below offset (their segments are gone).
 * Returns how many went, or -errno when the directory cannot be listed. */
int producer_snapshot_delete_below(int dir_fd, int64_t offset);

#endif
