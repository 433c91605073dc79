/*
 * partition.h - one partition's log: its segments, offsets, appends,
 * reads, durability, maintenance and the waiters on new data.
 *
 * Ownership: a partition belongs to one thread, its home (in the broker, one
 * reactor chosen by hashing the topic and partition). Every function here
 * except the refcounted read results is called on the home thread only, and
 * every callback runs there. Other threads hand work to the home thread
 * (server/partition_home.c does that); nothing in a partition is locked.
 *
 * I/O: appends are sequential writes and fdatasyncs, both submitted through
 * struct log_io, which the home thread's event loop implements (io_uring in
 * the broker, plain syscalls in unit tests), so the log layer never waits
 * for the disk. Opening or rolling a segment is brief, rare metadata work
 * done on the home thread.
 *
 * Offsets, for one node:
 *   log_start_offset <= high_watermark <= log_end_offset
 *   recovery_point <= high_watermark
 *   last_stable_offset <= high_watermark
 * log_end_offset is the next offset to assign; what is below the high
 * watermark is what Fetch may return. An append gets its offsets when it
 * is submitted and becomes visible when its write has completed and so
 * have the writes of every offset below it: writes may complete out of
 * order, the high watermark never passes a hole. With no write in flight
 * the high watermark is the log end offset, as for Kafka's single-replica
 * leader; a write refused for a full disk takes the log end offset back to
 * the high watermark once none is in flight. The recovery point is the end of the prefix known durable
 * (fdatasync'ed): what recovery-point-offset-checkpoint records, and where
 * a recovery after an unclean stop starts scanning.
 *
 * Durability: an append with is_durable set (acks=all) completes only once
 * an fdatasync covering it has completed, unless the broker runs in Kafka's
 * page-cache mode. fdatasyncs are group commits: while one runs, later
 * durable appends wait for the next, which covers all of them; a sync
 * covers completed writes only, and syncs each segment's .txnindex with
 * its .log, as Kafka's LogSegment.flush does. A roll starts a sync of the rolled segment
 * once its writes have completed, as Kafka flushes a segment once it is
 * rolled, so that recovery rarely has more than the active segment to
 * scan.
 *
 * Callbacks (append done, waiter fire) may re-enter the partition, and may
 * even close it: a close from inside a callback, or while a write or an
 * fdatasync is in flight, takes effect when the last of them has returned.
 */
#ifndef RUNNEL_PARTITION_H
#define RUNNEL_PARTITION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/arena.h"
#include "producer_state.h"
#include "topic_config.h"

/* ---- the I/O the home thread provides ---- */

typedef void (*log_io_done_fn)(void *arg, int result);

/*
 * Both calls return 0 when done will be called (maybe from inside the
 * call), or -errno when it will not. done runs on the home thread.
 */
struct log_io_ops {
        /* fdatasync(fd); done gets 0 or -errno. */
        int (*datasync)(void *ctx, int fd, log_io_done_fn done, void *arg);
        /* pwrite of all len bytes of buf at offset of fd, a short write
         * continued until all are written; done gets 0 or -errno (some
         * bytes may be written then). buf stays valid until done. */
        int (*write)(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done,
                     void *arg);
        /* Milliseconds, wall clock (record timestamps, segment.ms). */
        int64_t (*now_ms)(void *ctx);
};

struct log_io {
        const struct log_io_ops *ops;
        void *ctx;
};

struct partition;
struct segment_handle;

/* ---- opening ---- */

struct partition_options {
        int dir_fd;                     /* the log dir holding the partition dir */
        const char *dir_name;           /* "<topic>-<partition>" */
        struct topic_config config;     /* effective config of the topic */
        bool is_durable_acks;           /* acks=all waits for fdatasync (runnel's default) */
        bool is_clean_shutdown;         /* the log dir has a clean-shutdown marker: no recovery scan */
        int64_t recovery_point;         /* from recovery-point-offset-checkpoint, 0 if none */
        int64_t log_start_offset;       /* from log-start-offset-checkpoint, 0 if none */
        int64_t producer_id_expiration_ms;      /* producer.id.expiration.ms; 0: Kafka's default */
};

#define PARTITION_PRODUCER_EXPIRATION_MS_DEFAULT 86400000

/*
 * Opens (creating if needed) a partition, as Kafka's LogLoader does:
 *   - after a clean shutdown nothing is scanned (a segment whose tail is
 *     found torn anyway is recovered);
 *   - otherwise every segment holding offsets at or past the recovery point
 *     is checked batch by batch and cut at the first invalid batch, and the
 *     segments after a cut one are deleted; the recovery point stays at
 *     min(recovery_point, log end) and a sync of the rest is started;
 *   - the log start offset is max(log_start_offset, first segment's base);
 *     a log ending below log_start_offset is emptied and restarts there;
 *   - a missing leader-epoch-checkpoint is written ("0 <log start>").
 * Returns 0 or -errno with one line in err.
 */
int partition_open(const struct partition_options *o, const struct log_io *io, struct partition **out,
                   char *err, size_t err_bytes);

/*
 * Closes: waiters fire, segments are sealed (indexes cut to size) and
 * closed once no read holds them. Nothing is synced here: call
 * partition_flush and wait for !partition_is_flushing first when the
 * recovery point must reach the log end (clean shutdown). Writes and a
 * sync in flight complete first, the appends waiting for them included
 * (a durable append whose write completes after the close gets its sync);
 * the memory goes when they have.
 */
void partition_close(struct partition *p);

/* Takes a new effective config (AlterConfigs); applies to later appends. */
void partition_set_config(struct partition *p, const struct topic_config *config);

/* ---- offsets ---- */

int64_t partition_log_start_offset(const struct partition *p);
int64_t partition_log_end_offset(const struct partition *p);
int64_t partition_high_watermark(const struct partition *p);
/* The first offset of the oldest open transaction, or the high watermark
 * when that is lower (or there is none), as Kafka's
 * firstUnstableOffset / highWatermark: what read_committed consumers may
 * read up to. */
int64_t partition_last_stable_offset(const struct partition *p);
int64_t partition_recovery_point(const struct partition *p);
int32_t partition_leader_epoch(const struct partition *p);

/* The base offset of the oldest segment: Kafka checkpoints the log start
 * offset only when it is above this. */
int64_t partition_first_segment_offset(const struct partition *p);
uint32_t partition_segment_count(const struct partition *p);

/* A write or sync failed: appends answer KAFKA_STORAGE_ERROR until restart.
 * A full disk is not a failure: the appends it refuses answer
 * KAFKA_STORAGE_ERROR and later ones are taken (see partition_append). */
bool partition_is_failed(const struct partition *p);

/* ---- appending ---- */

struct partition_append;
typedef void (*partition_append_done_fn)(struct partition_append *a);

/* An aborted transaction, as the .txnindex and Fetch list it. */
struct partition_aborted_txn {
        int64_t producer_id;
        int64_t first_offset;
        int64_t last_offset;            /* the abort marker's offset */
        int64_t last_stable_offset;     /* the LSO once the marker was written */
};

/* A transaction marker (control batch) to write, from the transaction
 * coordinator: set partition_append.marker, leave batches NULL. */
struct partition_marker {
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t coordinator_epoch;
        bool is_commit;
};

/*
 * One Produce request's records for this partition: a buffer of one or more
 * record batches already validated by the caller (record_batch_validate),
 * which the append rewrites in place (base offset, partition leader epoch,
 * LogAppendTime) and writes from directly. The buffer must stay valid until
 * done is called.
 */
struct partition_append {
        uint8_t *batches;
        size_t len;
        bool is_durable;                /* acks=all */
        /* The transaction coordinator confirmed this partition is in the
         * producer's open transaction (KIP-890 verification). */
        bool is_txn_verified;
        const struct partition_marker *marker;  /* a marker instead of batches */
        partition_append_done_fn done;
        void *ctx;                      /* the caller's */

        /* results, valid in done */
        int16_t error_code;             /* Kafka error: NONE, CORRUPT_MESSAGE, KAFKA_STORAGE_ERROR, ... */
        int32_t error_record_index;     /* the record at fault for INVALID_RECORD, or -1 */
        char error_message[160];        /* empty when there is nothing to say */
        int64_t base_offset;
        int64_t log_append_time_ms;     /* -1 unless the topic uses LogAppendTime */
        int64_t log_start_offset;

        /* private */
        int64_t end_offset;
        struct partition *partition;
        struct partition_append *next;  /* on the list of writes, then of durable appends */
        struct segment_handle *write_segment;   /* NULL: a retry answered, nothing written */
        const uint8_t *write_bytes;     /* batches, or the recompressed batch in scratch */
        size_t write_len;
        uint32_t write_position;
        int write_result;
        bool is_write_done;
        struct arena scratch;           /* a recompressed batch, kept until written */
        /* The producer's entry as it was before this append was recorded
         * in the producer state (had_producer_entry: it had one), put back
         * if the write is refused for a full disk. */
        struct producer_entry producer_before;
        bool has_producer_update;
        bool had_producer_entry;
        uint8_t marker_batch[128];      /* the control batch of a marker */
};

/*
 * Validates the batch against the topic's config (record_batch_validate:
 * one batch per partition, CRC, records, timestamps, max.message.bytes,
 * keys on compacted topics), assigns offsets, records it in the producer
 * state (so a retry arriving meanwhile is known as one) and submits the
 * write. done is called exactly once: from inside this call when the batch
 * is refused or the partition has failed, else once the write and those of
 * every offset below it have completed (acks=1), or after the fdatasync
 * covering it (is_durable in durable mode). A retry of a batch still being
 * written is answered once that write has completed.
 *
 * A full disk refuses appends with KAFKA_STORAGE_ERROR without failing the
 * partition. Found before the write (a roll, the index blocks), it refuses
 * that append from inside this call with nothing changed. Met by a write,
 * it refuses that append, the appends after it still in flight and any
 * new one until they are all done; then the partition is rewound to the
 * end of the committed writes (log end, segments, producer state, open
 * and aborted transactions, .txnindex), all of them are answered, in
 * offset order, and appends are taken again: a producer's retries are new
 * batches at the same offsets.
 */
void partition_append(struct partition *p, struct partition_append *a);

/* ---- reading ---- */

/*
 * What a Fetch returns for this partition: a byte range of one segment file,
 * whole batches from the one containing fetch_offset, up to max_bytes (the
 * first batch whole even when larger, when is_first_batch_whole).
 * The segment is referenced until partition_read_release(); the range may be
 * sent from another thread meanwhile.
 */
struct partition_read {
        int64_t fetch_offset;
        int32_t max_bytes;
        bool is_first_batch_whole;
        /* isolation_level=read_committed: nothing at or past the last
         * stable offset, and the aborted transactions the range may hold. */
        bool is_read_committed;

        /* results */
        int16_t error_code;             /* NONE or OFFSET_OUT_OF_RANGE */
        int64_t high_watermark;
        int64_t last_stable_offset;
        /* read_committed: the aborted transactions overlapping
         * [fetch_offset, last_stable_offset), malloc'ed, freed by
         * partition_read_release. */
        struct partition_aborted_txn *aborted;
        uint32_t aborted_count;
        int64_t log_start_offset;
        int fd;                         /* -1 when there is nothing to send */
        uint64_t file_position;
        uint32_t len;
        struct segment_handle *segment; /* reference for the range, or NULL */
};

void partition_read(struct partition *p, struct partition_read *r);

/* Any thread: drops the segment reference a read took. */
void partition_read_release(struct partition_read *r);

/* ---- waiting for data (Fetch long poll) ---- */

struct partition_waiter;
typedef void (*partition_waiter_fn)(struct partition_waiter *w);

/* Called once when the high watermark passes offset (or the partition
 * closes, or has failed). */
struct partition_waiter {
        int64_t offset;
        partition_waiter_fn fire;
        void *ctx;
        /* private */
        struct partition_waiter *prev, *next;
        bool is_linked;
        bool is_firing;                 /* on the list of waiters about to fire */
};

void partition_wait(struct partition *p, struct partition_waiter *w);
/* Removes a waiter that has not fired (timeout); no-op otherwise. */
void partition_unwait(struct partition *p, struct partition_waiter *w);

/* ---- offsets by time (ListOffsets) and by epoch (OffsetForLeaderEpoch) ---- */

/* The first offset whose batch max timestamp is >= timestamp_ms, with that
 * timestamp; -1 offset when none. */
void partition_offset_for_time(struct partition *p, int64_t timestamp_ms, int64_t *offset_out,
                               int64_t *timestamp_out);

/* The offset and timestamp of the record with the largest timestamp (-3), as
 * Kafka answers it: from the segments still there, even below the log start. */
void partition_max_timestamp(struct partition *p, int64_t *offset_out, int64_t *timestamp_out);

/* ---- maintenance, on the home thread ---- */

/*
 * Kafka's deleteOldSegments, in its order: segments wholly below the log
 * start offset; then, when cleanup.policy has delete, the oldest while the
 * log is over retention.bytes by at least their size; then the oldest whose
 * largest timestamp (the .log's mtime when it has none) is more than
 * retention.ms before now_ms. Only a prefix of segments goes, never one
 * reaching past the high watermark, never an empty active segment; when
 * every segment goes, a new active segment is rolled first, as Kafka does,
 * so the segment taking appends is never the one deleted. The log start
 * offset moves to the first remaining segment. A Fetch holding a deleted
 * segment keeps reading it; its files go with the last reference.
 * Returns the number of segments deleted.
 */
int partition_enforce_retention(struct partition *p, int64_t now_ms);

/*
 * DeleteRecords: moves the log start offset to offset (-1: the high
 * watermark) and deletes the segments wholly below it. Returns a Kafka
 * error: NONE, OFFSET_OUT_OF_RANGE (offset < 0 or past the high
 * watermark), POLICY_VIOLATION (cleanup.policy without delete),
 * KAFKA_STORAGE_ERROR (failed partition). *low_watermark_out gets the log
 * start offset either way. A lower offset than the current start is no error.
 */
int partition_delete_records(struct partition *p, int64_t offset, int64_t *low_watermark_out);

/* ---- producers (idempotence) ---- */

struct producer_state;

/* The producer table, for DescribeProducers; valid until the next append. */
const struct producer_state *partition_producers(const struct partition *p);

/* Drops producers idle past producer.id.expiration.ms. Returns how many. */
uint32_t partition_expire_producers(struct partition *p, int64_t now_ms);

/*
 * Clean shutdown: writes and fsyncs the producer snapshot at the log end
 * unless the one on disk already says the same, so that the next start
 * reads no log to rebuild it. Blocking. Returns 0 or -errno (logged; the
 * state is then rebuilt from the log after the next start).
 */
int partition_snapshot_producers(struct partition *p);

/* ---- compaction (cleaner.h), on the home thread ---- */

struct cleaner_job;
struct cleaner_limits;

/* Whether cleanup.policy has compact and Kafka's rules find the partition
 * due for cleaning now; *ratio_out gets its dirty ratio either way. */
bool partition_cleaner_check(struct partition *p, int64_t now_ms, double *ratio_out);

/*
 * When due, a job for cleaner_run on another thread: the sealed segments
 * of the cleanable section referenced, the aborted transactions, the
 * producers' last batches, the config. Returns 1 with *out, 0 when
 * nothing is due, or -ENOMEM. One job per partition at a time; a close
 * meanwhile cancels it and waits for partition_cleaner_finish.
 */
int partition_cleaner_prepare(struct partition *p, int64_t now_ms, const struct cleaner_limits *limits,
                              struct cleaner_job **out);

/*
 * Once the job ran: swaps the cleaned segments in (crash-safely, see
 * cleaner.h) when the job succeeded and the partition still has those
 * segments, no rewind happened and everything appended before the job
 * is written; else removes the cleaned files. Updates the aborted
 * transactions and cleaner-offset-checkpoint, and frees the job. Reads in
 * flight keep the replaced segments open until they are released.
 */
void partition_cleaner_finish(struct partition *p, struct cleaner_job *job);

bool partition_is_cleaning(const struct partition *p);

/* Starts an fdatasync of everything written if flush.messages/flush.ms is due. */
void partition_maybe_flush(struct partition *p, int64_t now_ms);

/* Starts an fdatasync of everything written and not yet synced, now or
 * right after the one in flight; writes in flight are covered once they
 * complete. */
void partition_flush(struct partition *p);

/* A write or an fdatasync is in flight (and appends may be waiting for
 * it). Once this is false after partition_flush, the recovery point is the
 * log end. */
bool partition_is_flushing(const struct partition *p);

#endif
