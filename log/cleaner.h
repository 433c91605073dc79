/*
 * cleaner.h - log compaction (cleanup.policy=compact), Kafka's LogCleaner:
 * for every key only the record with the highest offset is kept, with the
 * offsets of everything kept unchanged.
 *
 * The work is split by thread:
 *
 *   home thread   partition_cleaner_prepare (partition.c) decides whether
 *                 a partition is due (Kafka's LogCleanerManager rules,
 *                 cleaner_is_due) and fills a struct cleaner_job: the sealed
 *                 segments of the cleanable section, each referenced so
 *                 that no deletion closes it, the aborted transactions, the
 *                 last batch of every producer, the config;
 *   cleaner pool  cleaner_run (any thread, one job per thread) reads those
 *                 segments by their descriptors only, builds the offset map
 *                 (a 128-bit hash of each key -> its latest offset, bounded
 *                 by log.cleaner.dedupe.buffer.size) over the dirty part,
 *                 reading and writing at most log.cleaner.io.max.bytes.per.
 *                 second, and writes each group of segments into a new segment
 *                 named `<base>.log.cleaned` (with its `.index.cleaned`,
 *                 `.timeindex.cleaned` and `.txnindex.cleaned`), synced;
 *   home thread   partition_cleaner_finish swaps the cleaned segments in as
 *                 Kafka's replaceSegments does (`.cleaned` -> `.swap` ->
 *                 final names, the old files removed in between), or
 *                 discards them when the partition changed meanwhile.
 *
 * What a cleaning keeps, as Kafka's Cleaner and MemoryRecords.filterTo:
 *   - a record whose offset is past the map's last offset, or at least the
 *     map's offset for its key; records without a key are dropped;
 *   - a tombstone (null value) until its batch's delete horizon: the first
 *     cleaning that keeps it rewrites the batch with the horizon (now +
 *     delete.retention.ms) in baseTimestamp and attribute bit 6; a later
 *     one after the horizon removes it;
 *   - none of the records of an aborted transaction (the .txnindex says
 *     which); an abort marker until no batch of its transaction is left and
 *     its delete horizon has passed, a commit marker once no batch of its
 *     transaction is left and its horizon has passed;
 *   - a batch all of whose records go is still written, empty (header only,
 *     its offsets, producer id, epoch and sequence kept), when it is the
 *     last data batch of a producer the partition still knows, when it is
 *     that producer's last marker, or when it ends the cleaned section;
 *   - a batch keeping all its records and needing no horizon is copied byte
 *     for byte; any other is rebuilt: same base offset, last offset delta,
 *     producer id/epoch/base sequence, leader epoch, codec (at its default
 *     level), records re-encoded, CRC recomputed.
 *
 * Crash safety, as Kafka's: a cleaned segment is complete and synced
 * before its `.log.cleaned` is renamed to `.log.swap` (the commit point);
 * cleaner_recover_dir, run when a partition opens, deletes `.cleaned`
 * files and finishes every swap it finds (the old segments whose base
 * offsets fall in [swap base, swap's next offset) deleted, the `.swap`
 * files renamed), the range being the union over all swaps, as Kafka's
 * LogLoader: a group whose last sources lost every record ends below them.
 *
 * cleaner-offset-checkpoint (log dir): each partition's first dirty offset,
 * Kafka's CheckpointFile format; cleaner_checkpoint_* read and update it
 * under one lock for the process.
 *
 * Bounds: every loop walks a bounded list (segments, batches of a segment,
 * records of a batch); the map is at most dedupe.buffer.size; a batch read
 * is at most the segment's size; decompressed records at most
 * CLEANER_RECORDS_BYTES_MAX or 4 * max.message.bytes.
 */
#ifndef RUNNEL_CLEANER_H
#define RUNNEL_CLEANER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logdir.h"
#include "txn_index.h"

#define CLEANER_CHECKPOINT_FILE "cleaner-offset-checkpoint"
#define CLEANER_CLEANED_TAIL ".cleaned"
#define CLEANER_SWAP_TAIL ".swap"
#define CLEANER_DELETED_TAIL ".deleted"
/* A map entry: a 128-bit key hash and an offset, as Kafka's SkimpyOffsetMap
 * with MD5 (16 + 8 bytes). */
#define CLEANER_MAP_ENTRY_BYTES 24u
#define CLEANER_MAP_ENTRIES_MIN 1024u
#define CLEANER_RECORDS_BYTES_MAX (64u << 20)
/* Output batches are gathered up to this before one append. */
#define CLEANER_WRITE_BUFFER_BYTES (256u << 10)
#define CLEANER_READ_BUFFER_BYTES (1u << 20)

struct segment_handle;

/* The broker's log.cleaner.* limits for one job. */
struct cleaner_limits {
        size_t map_bytes_max;           /* log.cleaner.dedupe.buffer.size / threads */
        double map_load_factor;         /* log.cleaner.io.buffer.load.factor: the map is full past this share */
        double io_bytes_per_second_max; /* log.cleaner.io.max.bytes.per.second / threads */
};

/* A sealed segment of the section being cleaned. */
struct cleaner_source {
        struct segment_handle *handle;  /* referenced by the job (partition.c) */
        int fd;                         /* its .log; only pread */
        int64_t base_offset;
        int64_t end_offset;             /* the next segment's base: no offset here reaches it */
        uint32_t size_bytes;
        uint32_t offset_index_bytes;
        uint32_t time_index_bytes;
        int64_t last_modified_ms;       /* the .log's mtime */
};

/* Kafka's lastRecordsOfActiveProducers entry. */
struct cleaner_producer {
        int64_t producer_id;
        int64_t last_data_offset;       /* -1 when the producer has no data batch */
        int16_t epoch;
};

/* A run of sources written into one cleaned segment. */
struct cleaner_group {
        uint32_t first;                 /* index into sources */
        uint32_t count;
        int64_t base_offset;            /* sources[first].base_offset */
        bool has_txn_index;             /* a .txnindex.cleaned was written */
        uint32_t size_bytes;
};

struct cleaner_stats {
        uint64_t bytes_read;
        uint64_t bytes_written;
        uint64_t records_read;
        uint64_t records_written;
        uint64_t map_records;
        int64_t elapsed_ms;
};

struct cleaner_job {
        /* ---- inputs, from the home thread ---- */
        const struct logdir_ref *dir;   /* referenced for the job */
        char name[LOGDIR_NAME_BYTES_MAX + 1];
        struct cleaner_source *sources; /* from the first segment to the first uncleanable one */
        uint32_t source_count;
        int64_t first_dirty_offset;
        int64_t first_uncleanable_offset;       /* a segment base: the end of the cleanable section */
        struct txn_aborted *aborted;    /* sorted by first_offset */
        uint32_t aborted_count;
        struct cleaner_producer *producers;     /* sorted by producer_id */
        uint32_t producer_count;
        int64_t now_ms;
        int64_t delete_retention_ms;
        uint32_t segment_bytes_max;     /* segment.bytes */
        uint32_t index_bytes_max;       /* segment.index.bytes */
        uint32_t index_interval_bytes;
        uint32_t max_message_bytes;
        struct cleaner_limits limits;
        atomic_bool is_cancelled;       /* set by any thread: stop at the next batch */

        /* ---- results, from cleaner_run ---- */
        int result;                     /* 0, -ECANCELED, or -errno */
        int64_t end_offset;             /* the map's last offset + 1: the next first dirty offset */
        struct cleaner_group *groups;
        uint32_t group_count;
        /* The aborted transactions the cleaned .txnindex files list, by
         * last_offset: what the partition keeps in memory for the range. */
        struct txn_aborted *kept_aborted;
        uint32_t kept_aborted_count;
        struct cleaner_stats stats;
        /* private to cleaner_run: the throttle's period */
        int64_t throttle_start_ms;
        uint64_t throttle_bytes;

        /* ---- the owner's ---- */
        void (*done)(struct cleaner_job *job);  /* called on the pool's thread when run */
        void *ctx;
        int64_t prepared_log_end_offset;        /* partition.c: the log end at prepare */
        uint64_t prepared_rewind_count;
        struct cleaner_job *next;       /* the pool's queue */
};

/* ---- deciding (pure) ---- */

/* What the home thread knows of one partition for Kafka's choice. */
struct cleaner_candidate {
        int64_t clean_bytes;            /* bytes of segments below the first dirty offset */
        int64_t cleanable_bytes;        /* bytes of dirty segments below the first uncleanable offset */
        bool is_compaction_lag_exceeded;        /* max.compaction.lag.ms passed for a dirty segment */
        double min_cleanable_ratio;
};

/* Kafka's grabFilthiestCompactedLog filter: (lag exceeded and something to
 * clean) or cleanable / (clean + cleanable) > min.cleanable.dirty.ratio. */
bool cleaner_is_due(const struct cleaner_candidate *c);
double cleaner_dirty_ratio(const struct cleaner_candidate *c);

/* ---- running (any thread) ---- */

/* Cleans: builds the map, writes the cleaned segments, syncs them. Sets
 * job->result (and returns it); on failure no .cleaned file is left. */
int cleaner_run(struct cleaner_job *job);

/* Removes the .cleaned files of a job's groups (a swap abandoned). */
void cleaner_discard_files(struct cleaner_job *job);

/* Frees what cleaner_run allocated in the job (groups, kept_aborted). */
void cleaner_job_free_results(struct cleaner_job *job);

/* ---- swapping and recovery (the partition's thread) ---- */

/* Renames a cleaned group's files `.cleaned` -> `.swap` (the .log last)
 * and, when is_synced, fsyncs the directory: once its .log.swap name is
 * durable a restart completes the swap. Any `.swap` file of the base is
 * removed first, and again when the commit fails: no .swap is left but a
 * committed one. */
int cleaner_commit_group(const struct logdir_ref *dir, const struct cleaner_group *g, bool is_synced);

/* Renames a group's `.swap` files to their final names (the .log last)
 * and, when is_synced, fsyncs the directory. */
int cleaner_finish_group(const struct logdir_ref *dir, int64_t base_offset, bool is_synced);

/* Removes the four files of segment base_offset (missing ones are fine). */
void cleaner_unlink_segment(const struct logdir_ref *dir, int64_t base_offset);

/*
 * At open, before the segments are listed: deletes `*.cleaned` and
 * `*.deleted` files, and finishes every `<base>.log.swap` (Kafka's
 * LogLoader: segments with base offsets in [the least swap base, the
 * greatest swap next offset) are deleted, then the swap files renamed); stray index `.swap` files
 * without their .log are deleted. Returns the swaps finished, or -errno.
 */
int cleaner_recover_dir(const struct logdir_ref *dir);

/* ---- shared by cleaner.c and cleaner_swap.c ---- */

/* Removes `<base><suffix><tail>` for the four suffixes (missing is fine). */
void cleaner_unlink_files(const struct logdir_ref *dir, int64_t base, const char *tail);

/* Room for one more element in *v (capacity *cap, count used): 0 or -ENOMEM. */
int cleaner_grow(void **v, uint32_t *cap, uint32_t count, size_t elem);

/* ---- cleaner-offset-checkpoint ---- */

/* The first dirty offset checkpointed for topic-partition in the log dir
 * logdir_fd: 0 with *offset_out, -ENOENT when none, or -errno. */
int cleaner_checkpoint_read(int logdir_fd, const char *topic, int32_t partition, int64_t *offset_out);

/* Sets (offset >= 0) or removes (offset < 0) the entry; a removal of no
 * entry writes nothing. Blocking. */
int cleaner_checkpoint_update(int logdir_fd, const char *topic, int32_t partition, int64_t offset);

/* ---- the pool: threads that run jobs ---- */

struct cleaner_pool;

int cleaner_pool_start(uint32_t thread_count, struct cleaner_pool **out);

/* Queues the job; job->done is called on a pool thread once it ran. */
void cleaner_pool_submit(struct cleaner_pool *pool, struct cleaner_job *job);

/* Cancels what is queued (each still gets done, result -ECANCELED) and
 * joins the threads. */
void cleaner_pool_stop(struct cleaner_pool *pool);

#endif
