/*
 * segment.h - one log segment: `<base>.log`, `<base>.index` and
 * `<base>.timeindex` in a partition directory, byte for byte as Kafka
 * writes them, so either broker can read what the other wrote.
 *
 * Owns the three files of a segment and the in-memory state derived from
 * them: the size of the .log, the next offset, the largest timestamp and
 * both sparse indexes (offset_index.h, time_index.h say what an entry
 * means). `<base>` is the base offset as 20 zero-padded decimal digits.
 *
 * The .log holds record batches exactly as appended: the caller validates
 * and rewrites a batch (protocol/record_batch.h) before it gets here;
 * segment_append only frames the bytes to learn offsets and timestamps.
 *
 * Index maintenance follows Kafka 4.4's LogSegment.append, batch by batch:
 * an entry is written when more than index_interval_bytes have been
 * appended since the last one, checked BEFORE counting the current batch,
 * and records (the batch's last offset, the batch's position). The count
 * restarts at 0 whenever a segment is opened, as a fresh Kafka LogSegment
 * does. Recovery rebuilds exactly the same entries.
 *
 * File sizes: while a segment may take appends its index files are
 * preallocated (zero-filled) to index_bytes_max rounded down to an entry;
 * segment_seal (roll) and segment_close cut them to the entries used,
 * writing the final time index entry first. An index file that is
 * missing, misshapen or disagrees with the .log is rebuilt from the .log
 * when the segment is opened. Preallocated files are sparse, as Kafka's
 * are; the pages entries go into are given disk blocks (fallocate) a
 * little ahead of the entries, before the append that needs them writes
 * its batches: a store into a mapped hole on a full file system is a
 * SIGBUS, where fallocate is an -ENOSPC the append can answer. The
 * blocks are reserved by segment_append_reserve, for the entries of every
 * pending append, so before the caller submits the write: the entries
 * themselves are stored at the commit, after the write.
 *
 * Invariants between calls:
 *   - size_bytes is the end of the last whole batch in the .log;
 *     next_offset is one past that batch's last offset (base_offset when
 *     empty); every offset in the segment fits the indexes' 4-byte
 *     relative form;
 *   - every index entry points below size_bytes / next_offset;
 *   - is_tail_dirty: bytes past size_bytes were found that are not a
 *     whole batch (a torn write); appends are refused until
 *     segment_recover or segment_truncate_to_offset cuts them off;
 *   - with appends pending (reserved, not committed), the index bytes
 *     known to have disk blocks cover the entries they will add and the
 *     final time index entry.
 *
 * Appends in two steps, so that the write itself can go elsewhere (the
 * partition submits it through io_uring): segment_append_reserve checks
 * the batches and reserves their place after everything reserved so far;
 * the caller writes them there; segment_append_commit then takes them in
 * (size, next offset, largest timestamp, index entries), in reserve order.
 * Until its commit a reserved append is invisible: size_bytes, next_offset
 * and the indexes describe committed batches only, so a reader never sees
 * an index entry or a byte range past what was written. segment_append
 * does all three with a pwrite. Other I/O is plain pread/ftruncate/
 * fdatasync; every syscall sits in a small helper at the top of segment.c.
 *
 * Descriptors: a segment keeps its .log open and nothing else, so a
 * partition costs about one descriptor per segment, as in Kafka. Index
 * entries are written into shared mappings of the preallocated files
 * (Kafka maps its indexes too); the index files are opened by name only
 * for the moment a resize, trim or whole-file write needs them. Each
 * writable segment therefore holds two mappings (vm.max_map_count bounds
 * them, as it bounds Kafka's), and any call that resizes an index (create,
 * open, seal, close, truncate, recover, the first append after a seal)
 * may fail with -EMFILE/-ENFILE when the process is out of descriptors,
 * leaving the segment as it was.
 *
 * Errors: negative errno. Thread-confined: a segment belongs to one
 * thread; nothing here locks.
 */
#ifndef RUNNEL_SEGMENT_H
#define RUNNEL_SEGMENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logdir.h"
#include "offset_index.h"
#include "time_index.h"

#define SEGMENT_LOG_FILE_SUFFIX ".log"
/* "%020lld" plus the longest suffix, ".timeindex", a tail (".cleaned",
 * ".swap") and the NUL. */
#define SEGMENT_FILE_NAME_BYTES 48

#define SEGMENT_INDEX_INTERVAL_BYTES_DEFAULT 4096u      /* log.index.interval.bytes */
#define SEGMENT_INDEX_BYTES_DEFAULT (10u << 20)         /* segment.index.bytes */
/* Positions in the indexes are int32, so a .log never passes this. */
#define SEGMENT_LOG_BYTES_MAX ((uint32_t)INT32_MAX)
/* segment_append: the segment cannot take this append (an index is full,
 * or the .log would pass SEGMENT_LOG_BYTES_MAX); roll first. */
#define SEGMENT_FULL (-EXFULL)

struct segment_config {
        uint32_t index_interval_bytes;
        uint32_t index_bytes_max;
        /* NULL, or appended to every file name: the cleaner writes a
         * segment as `<base>.log.cleaned` and so on (cleaner.h). */
        const char *file_tail;
};

struct segment {
        const struct logdir_ref *dir;   /* borrowed; the partition directory, opened by name when needed */
        int log_fd;                     /* the only descriptor a segment holds */
        /* Both index files, mapped shared for writing while preallocated
         * (the segment takes appends); NULL otherwise. */
        uint8_t *offset_index_map;
        uint8_t *time_index_map;
        size_t offset_index_map_bytes;
        size_t time_index_map_bytes;
        int64_t base_offset;
        int64_t next_offset;
        uint32_t size_bytes;            /* end of the last whole batch */
        uint32_t file_size_bytes;       /* the .log's size on disk */
        uint32_t bytes_since_last_index_entry;
        int64_t max_timestamp_ms;       /* largest batch maxTimestamp; -1 none */
        int64_t offset_of_max_timestamp;        /* last offset of the batch that had it */
        /* Bytes of each preallocated index file known to have disk blocks
         * behind them (written or fallocated): entries are stored only
         * below this. See segment_reserve_indexes in segment.c. */
        uint32_t offset_index_reserved_bytes;
        uint32_t time_index_reserved_bytes;
        bool is_index_preallocated;
        bool is_tail_dirty;
        /* Appends reserved and not committed yet; while there are any, the
         * reserved_* fields are the state once they are. */
        uint32_t pending_count;
        uint32_t reserved_size_bytes;
        int64_t reserved_next_offset;
        uint32_t reserved_bytes_since_last_index_entry;
        uint32_t reserved_index_entry_count;    /* offset index entries the pending appends add */
        struct segment_config config;
        struct offset_index offset_index;
        struct time_index time_index;
};

/* `<20-digit base offset><suffix>` into out. */
void segment_file_name(char out[SEGMENT_FILE_NAME_BYTES], int64_t base_offset, const char *suffix);

/* `<20-digit base offset><suffix><tail>` (tail may be NULL). */
void segment_file_name_tail(char out[SEGMENT_FILE_NAME_BYTES], int64_t base_offset, const char *suffix,
                            const char *tail);

void segment_config_init_default(struct segment_config *config);

/* Creates the three files of a new, empty segment; the .log must not
 * exist yet. The directory is fsynced so the new names are durable. */
int segment_create(struct segment *seg, const struct logdir_ref *dir, int64_t base_offset, const struct segment_config *config);

/* Opens an existing segment: loads (or rebuilds) the indexes and finds
 * the next offset and the largest timestamp from the tail of the .log.
 * Does not check CRCs and never truncates; after an unclean shutdown run
 * segment_recover. */
int segment_open(struct segment *seg, const struct logdir_ref *dir, int64_t base_offset, const struct segment_config *config);

/*
 * Appends one or more whole batches, already validated and stamped with
 * their offsets, at the end of the .log, and maintains the indexes.
 * Offsets must continue from next_offset upward. *position_out gets the
 * file position of the first byte. Returns 0 or -EINVAL (not whole
 * batches, or offsets going backwards), -ERANGE (an offset too far from
 * the base: roll first), SEGMENT_FULL (an index is full, or the .log
 * would pass SEGMENT_LOG_BYTES_MAX: roll first), -EUCLEAN (torn tail:
 * recover first), or an I/O error. The segment's own limits have codes
 * of their own so that the file system's -ENOSPC (disk full) and -EFBIG
 * (file size limit) are never taken for "roll".
 *
 * A full disk is -ENOSPC (or -EDQUOT) with the segment as it was, unless
 * is_tail_dirty is set afterwards: the index pages the append needs are
 * reserved before the .log is written, and a short write is cut off
 * again. After any other I/O error the .log may hold part of the append;
 * the caller treats the log dir as failed, as Kafka does, and recovery
 * sorts it out.
 */
int segment_append(struct segment *seg, const void *batches, size_t len, uint32_t *position_out);

/*
 * The first half of segment_append: the same checks and errors (but no
 * I/O error from the write), against the end of what is reserved so far
 * (SEGMENT_FULL counts the pending appends' index entries and bytes too),
 * and the index files made ready, their blocks reserved: -ENOSPC (or
 * -EDQUOT) here is a full disk, with nothing reserved and the segment as
 * it was. *position_out gets where the caller must write the batches.
 * Nothing is visible until segment_append_commit. A write that then fails,
 * for a full disk or not, is undone by segment_append_abort.
 */
int segment_append_reserve(struct segment *seg, const void *batches, size_t len, uint32_t *position_out);

/*
 * The oldest pending append was written (the same bytes, at the position
 * its reserve gave): it becomes part of the segment, its index entries
 * included. Returns 0, or -ENOMEM when an index entry could not be kept
 * (the batches are in all the same; the index is sparser, still right).
 */
int segment_append_commit(struct segment *seg, const void *batches, size_t len, uint32_t position);

/*
 * A write failed: every pending append is dropped (none may still be in
 * flight) and the .log cut back to size_bytes. If even the cut fails, the
 * tail is marked torn (is_tail_dirty). Returns 0 or -errno.
 */
int segment_append_abort(struct segment *seg);

/* The end of the .log once every pending append is committed. */
uint32_t segment_reserved_size_bytes(const struct segment *seg);

/* Whether an index is full, so the next append must go to a new segment. */
bool segment_is_index_full(const struct segment *seg);

/* A batch located in the .log. */
struct segment_batch_location {
        uint32_t position_bytes;
        uint32_t size_bytes;
        int64_t base_offset;
        int64_t last_offset;
};

/* The first batch whose last offset is >= offset (the batch holding it,
 * or the next one when compaction removed it): index lookup, then a walk
 * over batch headers. Returns 0, -ENOENT when offset >= next_offset, or an
 * I/O error. */
int segment_find_offset(struct segment *seg, int64_t offset, struct segment_batch_location *out);

struct segment_timestamp_hit {
        int64_t timestamp_ms;
        int64_t offset;
        int32_t leader_epoch;           /* partitionLeaderEpoch of the batch */
        /* The batch is compressed: offset is its first offset >= the
         * starting offset and timestamp_ms its maxTimestamp, a lower bound
         * until decompression can look at each record. */
        bool is_batch_precision;
};

/*
 * Kafka's findOffsetByTimestamp: the first record with timestamp >=
 * timestamp_ms and offset >= starting_offset. Time index lookup, offset
 * index lookup, then a walk over batches whose maxTimestamp reaches the
 * target, reading the records of the first such batch. Returns 0,
 * -ENOENT when no record qualifies, or an error.
 */
int segment_find_timestamp(struct segment *seg, int64_t timestamp_ms, int64_t starting_offset,
                           struct segment_timestamp_hit *out);

/* Reads up to len bytes of the .log from position, never past size_bytes;
 * *read_bytes_out may be short at the end. */
int segment_read(struct segment *seg, uint32_t position_bytes, void *buf, size_t len, size_t *read_bytes_out);

/*
 * Kafka's truncateTo: drops the batch holding offset and everything after
 * it, and the index entries at or past offset; the segment stays open for
 * appends. Truncating past the end does nothing. *truncated_bytes_out (may
 * be NULL) gets the bytes cut from the .log.
 */
int segment_truncate_to_offset(struct segment *seg, int64_t offset, uint32_t *truncated_bytes_out);

/* Why a walk over the .log stopped. */
enum segment_stop {
        SEGMENT_STOP_END,               /* the end of the file, exactly */
        SEGMENT_STOP_PARTIAL,           /* the bytes end inside a batch */
        SEGMENT_STOP_BAD_LENGTH,
        SEGMENT_STOP_BAD_MAGIC,
        SEGMENT_STOP_BAD_CRC,
        SEGMENT_STOP_BAD_OFFSET,        /* offsets go backwards or leave the segment's range */
};

const char *segment_stop_name(enum segment_stop stop);

struct segment_scan {
        uint32_t valid_bytes;           /* end of the last valid batch */
        int64_t next_offset;            /* one past its last offset; -1 when no batch was valid */
        uint32_t batch_count;
        uint32_t truncated_bytes;       /* segment_recover: bytes cut from the .log */
        enum segment_stop stop;
        uint32_t stop_position_bytes;   /* where the walk stopped */
};

/* Walks batches from position (a batch boundary) to the end of the file,
 * checking framing, CRC and offsets, changing nothing. */
int segment_scan(struct segment *seg, uint32_t position_bytes, struct segment_scan *out);

/*
 * Kafka's LogSegment.recover: walks the whole .log checking every batch,
 * rebuilds both indexes from the valid ones, cuts the .log after the last
 * valid batch, and adds the final time index entry. The files are not
 * fsynced; call segment_flush.
 */
int segment_recover(struct segment *seg, struct segment_scan *out);

/* fdatasync of the .log, then of both indexes. */
int segment_flush(struct segment *seg);

/* Kafka's onBecomeInactiveSegment: the final time index entry, then both
 * index files cut to their entries. No append may be pending. Appends
 * still work (they preallocate again), but a rolled segment normally
 * takes none. */
int segment_seal(struct segment *seg);

/* segment_seal, then the files are closed and the indexes freed, even
 * on error; returns the seal's error. Kafka 4.4 splits this in two
 * (UnifiedLog.prepareActiveSegmentForClose seals the active segment on a
 * clean shutdown, LogSegment.close only closes); here one call does both. */
int segment_close(struct segment *seg);

/* Closes the files and frees the indexes writing nothing (Kafka's
 * closeHandlers), for a log dir that has failed. */
void segment_abandon(struct segment *seg);

#endif
