/*
 * partition.c - one partition's log on its home thread: the append pipeline
 * (validate, assign offsets, reserve, write, commit), the high watermark,
 * the group-commit fdatasync, reads for Fetch, waiters, retention and
 * DeleteRecords, and loading and recovery at open.
 *
 * Descriptors: one per segment (its .log), as Kafka holds one channel per
 * segment. The partition directory is held by name (logdir_ref) and opened
 * only for the moment a roll, a snapshot or a deletion needs it, so 10,000
 * partitions cost 10,000 descriptors, not 20,000.
 *
 * An append is validated, given its offsets and recorded in the producer
 * state at once, its place reserved at the end of the active segment
 * (segment_append_reserve), and its write submitted through log_io
 * (io_uring in the broker), so the home thread never copies into the page
 * cache itself nor waits for the disk. Writes may complete in any order;
 * each goes on the list of writes, in offset order, and the list is
 * drained from its head as far as the writes there have completed: each
 * is committed to its segment (segment_append_commit: size, indexes), the
 * high watermark moves past it, and its append completes (acks=1) or waits
 * for the next fdatasync (acks=all), which only ever covers committed
 * writes.
 *
 * Invariants:
 *   - log_start_offset <= high_watermark <= log_end_offset; with no write
 *     on the list, high_watermark == log_end_offset;
 *   - `writes` holds, in offset order, every append submitted and not yet
 *     completed by its write (and answers to retries of those); the high
 *     watermark is the end offset of the last committed one;
 *   - handle->written_bytes (== its segment's size_bytes) is the .log size
 *     covering every append below the high watermark; reads never go past
 *     it, and the segment's indexes point below it;
 *   - handle->writes_in_flight counts the writes on the list into that
 *     segment; a segment rolled while it has some is sealed (and synced)
 *     when the last completes;
 *   - is_disk_full, rewind_offset and refused_head are set only while
 *     writes are on the list: a write met a full disk, appends are
 *     refused, and the appends not committed wait on refused_head for the
 *     rewind once the list is empty;
 *   - synced_offset <= high_watermark, and segs[0]->base_offset <=
 *     log_start_offset;
 *   - `durable` holds appends whose writes are committed, waiting for an
 *     fdatasync; it is empty unless a sync is in flight (or the partition
 *     failed, and then it is emptied at once); one sync is in flight at
 *     most, covering up to sync_target <= high_watermark, and it holds a
 *     reference on every segment it syncs, so retention cannot close a
 *     file under it;
 *   - a segment handle is freed by its last reference: the partition's
 *     own, a sync's, or a Fetch's read (which may be on another thread);
 *   - the partition's memory is freed only when it is closing, no write
 *     and no sync is in flight, and no call into it is on the stack
 *     (call_depth 0): callbacks may close it from inside.
 *
 * A write or sync that fails puts the partition in a failed state: every
 * later append answers KAFKA_STORAGE_ERROR, as Kafka takes a log dir
 * offline on an I/O error, and the operator is told in the log. Writes in
 * flight then complete without being committed (their appends answer
 * KAFKA_STORAGE_ERROR too), and once the last is done the segment is cut
 * back to its committed end, as a failed pwrite's partial bytes were.
 *
 * Two failures leave the partition writable: running out of descriptors,
 * and a full disk. Either refuses the append that met it with
 * KAFKA_STORAGE_ERROR, and the next append tries again. When the disk is
 * found full before the write (a roll, the index blocks reserved by
 * segment_append_reserve) nothing has changed yet. When a write itself
 * fails with ENOSPC (or EDQUOT), the appends from it on are refused as
 * for a failed write, new appends too while writes are in flight, and
 * once the last is done the partition is rewound to its committed end
 * (rewind_after_disk_full): the segment cut back, segments rolled past
 * it deleted, the producer state, the open and aborted transactions and
 * the .txnindex as they were before the refused appends. Then it takes
 * appends again.
 */
#include "partition.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "../protocol/arena.h"
#include "../protocol/batch_convert.h"
#include "../protocol/compress.h"
#include "../protocol/record_batch.h"
#include "checkpoint.h"
#include "cleaner.h"
#include "logdir.h"
#include "producer_state.h"
#include "txn_index.h"
#include "segment.h"

#define PARTITION_SEGMENTS_MAX 65536
/* Leader epochs a leader-epoch-checkpoint may list (runnel writes one). */
#define PARTITION_EPOCHS_MAX 256

/* A segment as the partition and its readers see it. */
struct segment_handle {
        struct segment seg;
        int64_t base_offset;
        int fd;
        uint64_t written_bytes;         /* end of the bytes below the high watermark */
        int64_t created_ms;
        atomic_uint refs;               /* the partition's own + a sync's + reads in flight */
        uint32_t writes_in_flight;      /* appends on the list of writes into this segment */
        bool is_seal_pending;           /* rolled while writes were in flight: seal when they are done */
        bool is_sync_after_seal;        /* and then sync it, as a roll does */
        bool is_deleted;                /* remove the files when the last ref goes */
        struct logdir_ref *dir;         /* a reference: the handle may outlive the partition */
        int dir_fd;                     /* held only while deletion waits for the last ref */
        struct txn_index txn;           /* the aborted transactions whose markers are here */
        int64_t first_batch_timestamp_ms;       /* cached for max.compaction.lag.ms; INT64_MIN: not read */
};

struct partition {
        struct log_io io;
        struct topic_config config;
        bool is_durable_acks;
        bool is_failed;
        bool is_closing;                /* partition_close was called; freed when idle */
        uint32_t call_depth;            /* calls into the partition on the stack */
        struct logdir_ref *dir;         /* the partition directory, held by name */
        char name[256];

        struct segment_handle **segs;
        uint32_t seg_count;
        uint32_t seg_cap;

        int64_t log_start_offset;
        int64_t log_end_offset;
        int64_t high_watermark;
        int64_t synced_offset;          /* the recovery point */
        int32_t leader_epoch;

        struct partition_append *writes_head, *writes_tail;     /* submitted, in offset order */
        uint32_t writes_in_flight;      /* of them, those that are writes (not retries answered) */
        int64_t roll_sync_offset;       /* a rolled segment to sync up to, -1 when none */
        /* A write met a full disk: appends are refused until the last
         * write in flight is done and the partition is rewound. */
        bool is_disk_full;
        int64_t rewind_offset;          /* the first write not committed for it, -1 when none */
        struct partition_append *refused_head;  /* those appends, newest first, answered at the rewind */
        struct partition_append *durable_head, *durable_tail;   /* written, waiting for a sync */
        bool is_syncing;
        bool is_flush_wanted;           /* another sync once the one in flight is done */
        int64_t sync_target;
        int sync_outstanding;
        int sync_error;
        struct segment_handle **sync_segs;      /* referenced by the sync in flight; seg_cap slots */
        uint32_t sync_seg_count;
        int64_t unflushed_count;        /* records since the last sync */
        int64_t last_flush_ms;

        struct partition_waiter *waiters;
        struct partition_waiter *firing;        /* ready, about to fire */

        struct producer_state producers;        /* idempotence: see producer_state.h */
        uint64_t snapshot_change_count;         /* producers.change_count at the last snapshot */
        int64_t snapshot_offset;                /* the newest snapshot's offset, -1 when none */
        int64_t producer_expiration_ms;
        int64_t first_unstable_offset;          /* the oldest open transaction's first offset, -1: none */
        struct partition_aborted_txn *aborted;  /* by last_offset; those ending at or past the log start */
        uint32_t aborted_count, aborted_cap;

        /* compaction (cleaner.h) */
        struct cleaner_job *cleaning;           /* a job out on the pool: the partition waits for it to close */
        bool is_uncleanable;    /* a cleaning failed: none until a restart (Kafka's markPartitionUncleanable) */
        int64_t cleaner_first_dirty_offset;     /* -1 until read from cleaner-offset-checkpoint */
        uint64_t rewind_count;                  /* rewinds after a full disk: a job prepared before one is void */
        char topic[256];
        int32_t partition_index;
};

static void partition_check(const struct partition *p)
{
        assert(p->seg_count > 0 && p->seg_count <= p->seg_cap);
        assert(p->segs[0]->base_offset <= p->log_start_offset);
        assert(p->log_start_offset <= p->high_watermark);
        assert(p->high_watermark <= p->log_end_offset);
        assert(p->writes_head || p->high_watermark == p->log_end_offset);
        assert(!p->writes_head == !p->writes_tail);
        assert(p->writes_head || p->writes_in_flight == 0);
        assert(p->writes_head || (!p->is_disk_full && p->rewind_offset < 0 && !p->refused_head));
        assert(p->rewind_offset < 0 || p->rewind_offset >= p->high_watermark);
        assert(p->synced_offset <= p->high_watermark);
        assert(p->is_syncing || !p->durable_head);
        assert(!p->is_syncing || p->sync_target <= p->high_watermark);
        (void)p;
}

/* ---- segment handles ---- */

static void delete_segment_files(int dir_fd, int64_t base_offset)
{
        static const char *const suffixes[] = { ".log", ".index", ".timeindex", ".txnindex" };
        char name[SEGMENT_FILE_NAME_BYTES];
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                segment_file_name(name, base_offset, suffixes[i]);
                if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT)
                        log_warn("cannot delete %s: %s", name, strerror(errno));
        }
}

/* The same for a partition's directory, opened for the moment. */
static void delete_partition_segment_files(const struct partition *p, int64_t base_offset)
{
        int dir_fd = logdir_ref_open(p->dir);
        if (dir_fd < 0) {
                log_warn("%s: cannot delete segment %020lld: %s", p->name, (long long)base_offset,
                         strerror(-dir_fd));
                return;
        }
        delete_segment_files(dir_fd, base_offset);
        close(dir_fd);
}

static void delete_snapshots_below(const struct partition *p, int64_t offset)
{
        int dir_fd = logdir_ref_open(p->dir);
        if (dir_fd < 0)
                return;         /* the directory is going: its snapshots with it */
        producer_snapshot_delete_below(dir_fd, offset);
        close(dir_fd);
}

static void handle_get(struct segment_handle *h)
{
        unsigned prev = atomic_fetch_add(&h->refs, 1);
        assert(prev > 0);
        (void)prev;
}

/* Any thread: the last reference closes the segment (and deletes it if asked). */
static void handle_put(struct segment_handle *h)
{
        unsigned prev = atomic_fetch_sub(&h->refs, 1);
        assert(prev > 0);
        if (prev != 1)
                return;
        txn_index_close(&h->txn);
        if (h->is_deleted) {
                segment_abandon(&h->seg);
                if (h->dir_fd >= 0) {
                        delete_segment_files(h->dir_fd, h->base_offset);
                        close(h->dir_fd);
                }
        } else {
                segment_close(&h->seg);
        }
        logdir_ref_put(h->dir);
        free(h);
}

/* Drops the partition's reference on h and has its files deleted when the
 * last reference goes; reads in flight keep the open descriptors. */
static void handle_delete(struct partition *p, struct segment_handle *h)
{
        h->is_deleted = true;
        /* The files go with the last reference, by this descriptor: the
         * directory may be renamed for deletion meanwhile. */
        h->dir_fd = logdir_ref_open(h->dir);
        if (h->dir_fd < 0 && h->dir_fd != -ENOENT) {
                log_warn("%s: cannot delete segment %020lld now (%s); it stays on disk until the next start",
                         p->name, (long long)h->base_offset, strerror(-h->dir_fd));
        }
        handle_put(h);
}

/* Opens (or creates) segment base_offset as a handle with one reference. */
static int open_handle(struct partition *p, int64_t base_offset, bool is_new, int64_t now_ms,
                       struct segment_handle **out)
{
        struct segment_handle *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        struct segment_config sc;
        segment_config_init_default(&sc);
        sc.index_interval_bytes = (uint32_t)p->config.index_interval_bytes;
        sc.index_bytes_max = (uint32_t)p->config.segment_index_bytes;
        int rc = is_new ? segment_create(&h->seg, p->dir, base_offset, &sc)
                        : segment_open(&h->seg, p->dir, base_offset, &sc);
        if (rc < 0) {
                free(h);
                return rc;
        }
        /* The .txnindex is opened only if it exists: most segments have none. */
        rc = txn_index_open(&h->txn, p->dir, base_offset);
        if (rc == 0 && is_new && txn_index_entry_count(&h->txn) > 0)
                rc = txn_index_reset(&h->txn);  /* left over from a segment deleted by hand */
        if (rc == -EBADMSG) {
                log_warn("%s: %020lld%s fails its sanity check; emptied: read_committed consumers may see the "
                         "records of transactions aborted in that segment", p->name, (long long)base_offset,
                         TXN_INDEX_FILE_SUFFIX);
                rc = txn_index_reset(&h->txn);
        }
        if (rc < 0) {
                txn_index_close(&h->txn);
                segment_close(&h->seg);
                free(h);
                return rc;
        }
        h->base_offset = base_offset;
        h->fd = h->seg.log_fd;
        h->written_bytes = h->seg.size_bytes;
        h->created_ms = now_ms;
        h->dir = p->dir;
        logdir_ref_get(h->dir);
        h->dir_fd = -1;
        h->first_batch_timestamp_ms = INT64_MIN;
        atomic_init(&h->refs, 1);
        *out = h;
        return 0;
}

/* Opens (or creates) segment base_offset and makes it the newest handle. */
static int add_segment(struct partition *p, int64_t base_offset, bool is_new, int64_t now_ms,
                       struct segment_handle **out)
{
        if (p->seg_count == p->seg_cap) {
                uint32_t cap = p->seg_cap ? p->seg_cap * 2 : 8;
                if (cap > PARTITION_SEGMENTS_MAX)
                        return -EMFILE;
                struct segment_handle **n = realloc(p->segs, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                p->segs = n;
                /* A sync references at most every segment: its list grows
                 * here so that starting one never allocates. */
                n = realloc(p->sync_segs, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                p->sync_segs = n;
                p->seg_cap = cap;
        }
        struct segment_handle *h;
        int rc = open_handle(p, base_offset, is_new, now_ms, &h);
        if (rc < 0)
                return rc;
        assert(p->seg_count == 0 || p->segs[p->seg_count - 1]->base_offset < h->base_offset);
        p->segs[p->seg_count++] = h;
        *out = h;
        return 0;
}

static struct segment_handle *active(const struct partition *p)
{
        assert(p->seg_count > 0);
        return p->segs[p->seg_count - 1];
}

/* The index of the segment holding offset: the last whose base offset is
 * <= offset (the first when offset is below every base). */
static uint32_t find_segment_index(const struct partition *p, int64_t offset)
{
        uint32_t lo = 0, hi = p->seg_count;
        assert(p->seg_count > 0);
        while (hi - lo > 1) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (p->segs[mid]->base_offset <= offset)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

static struct segment_handle *find_segment(const struct partition *p, int64_t offset)
{
        return p->segs[find_segment_index(p, offset)];
}

/* ---- re-entrancy: a callback may close the partition ---- */

static bool partition_is_idle(const struct partition *p)
{
        return !p->is_syncing && !p->writes_head;
}

static void partition_destroy(struct partition *p)
{
        assert(p->is_closing && partition_is_idle(p) && p->call_depth == 0 && !p->cleaning);
        assert(!p->durable_head && !p->waiters && !p->firing);
        for (uint32_t i = 0; i < p->seg_count; i++)
                handle_put(p->segs[i]);
        free(p->segs);
        free(p->sync_segs);
        producer_state_free(&p->producers);
        free(p->aborted);
        logdir_ref_put(p->dir);
        free(p);
}

static void partition_enter(struct partition *p)
{
        p->call_depth++;
}

/* The partition may be gone when this returns. */
static void partition_leave(struct partition *p)
{
        assert(p->call_depth > 0);
        if (--p->call_depth == 0 && p->is_closing && partition_is_idle(p) && !p->cleaning)
                partition_destroy(p);
}

/* ---- opening and recovery ---- */

static int cmp_offsets(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* Base offsets of the .log files in the partition directory, sorted. */
static int list_segments(const struct logdir_ref *dir, int64_t **out, uint32_t *count)
{
        int fd = logdir_ref_open(dir);
        if (fd < 0)
                return fd;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        int64_t *v = NULL;
        uint32_t n = 0, cap = 0;
        struct dirent *e;
        rewinddir(d);
        while ((e = readdir(d))) {
                size_t len = strlen(e->d_name);
                if (len != 24 || strcmp(e->d_name + 20, ".log") != 0)
                        continue;
                char *end;
                long long base = strtoll(e->d_name, &end, 10);
                if (end != e->d_name + 20 || base < 0)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        int64_t *nv = realloc(v, cap * sizeof(*nv));
                        if (!nv) {
                                free(v);
                                closedir(d);
                                return -ENOMEM;
                        }
                        v = nv;
                }
                v[n++] = base;
        }
        closedir(d);
        if (n > 0)
                qsort(v, n, sizeof(*v), cmp_offsets);
        *out = v;
        *count = n;
        return 0;
}

static void start_sync(struct partition *p, int64_t target_offset);

/*
 * leader-epoch-checkpoint as Kafka's LeaderEpochFileCache keeps it:
 * truncateFromStart(log start) drops the epochs that began at or before the
 * log start but the last of them, which is moved up to begin there. runnel
 * has led in epoch 0 only, so the file it writes is "0 <log start>"; one
 * written by Kafka keeps its later epochs. A missing or unreadable file (or
 * one with no entry) gets that one entry. Blocking file I/O: called at open
 * and when the log start moves (DeleteRecords, retention), which are rare.
 */
static int update_leader_epoch_checkpoint(struct partition *p)
{
        struct checkpoint_epoch e[PARTITION_EPOCHS_MAX];
        char why[200];
        char *text = NULL;
        size_t len = 0;
        int n = 0;
        bool is_changed = false;
        int dir_fd = logdir_ref_open(p->dir);
        if (dir_fd < 0)
                return dir_fd;
        int rc = logdir_read_file(dir_fd, CHECKPOINT_LEADER_EPOCH_FILE, CHECKPOINT_FILE_BYTES_MAX, &text, &len);

        if (rc == 0) {
                n = checkpoint_epochs_parse(text, len, e, PARTITION_EPOCHS_MAX, why, sizeof(why));
                free(text);
                if (n < 0) {
                        log_warn("%s/%s: %s; writing it anew", p->name, CHECKPOINT_LEADER_EPOCH_FILE, why);
                        n = 0;
                }
        } else if (rc != -ENOENT) {
                goto out_close;
        }
        rc = 0;
        if (n == 0) {
                e[0] = (struct checkpoint_epoch){ p->leader_epoch, p->log_start_offset };
                n = 1;
                is_changed = true;
        }
        int first = 0;
        for (int i = 0; i < n; i++)
                if (e[i].start_offset <= p->log_start_offset)
                        first = i;
        if (first > 0 || e[first].start_offset < p->log_start_offset) {
                if (e[first].start_offset < p->log_start_offset)
                        e[first].start_offset = p->log_start_offset;
                is_changed = true;
        }
        if (is_changed)
                rc = checkpoint_epochs_write(dir_fd, e + first, (uint32_t)(n - first));
out_close:
        close(dir_fd);
        return rc;
}

/* The log start offset moved: the leader epoch checkpoint follows. */
static void on_log_start_moved(struct partition *p)
{
        /* Aborted transactions wholly below the log start concern no fetch. */
        uint32_t gone = 0;
        while (gone < p->aborted_count && p->aborted[gone].last_offset < p->log_start_offset)
                gone++;
        if (gone) {
                memmove(p->aborted, p->aborted + gone, (p->aborted_count - gone) * sizeof(*p->aborted));
                p->aborted_count -= gone;
        }
        int rc = update_leader_epoch_checkpoint(p);
        if (rc < 0)
                log_warn("%s: cannot update %s: %s; it is brought up to date at the next start", p->name,
                         CHECKPOINT_LEADER_EPOCH_FILE, strerror(-rc));
}

/* ---- producer state: replay and snapshots ---- */

static void on_txn_completed(struct partition *p, const struct producer_completed_txn *c);
static int load_aborted(struct partition *p);

/* The marker of a control batch: key (version int16, type int16: 0 abort,
 * 1 commit), value (version int16, coordinator epoch int32). Returns 0 or
 * -EBADMSG. */
static int read_control_marker(const uint8_t *batch, size_t len, int16_t *type_out, int32_t *coordinator_epoch_out)
{
        struct record_iter it;
        struct record_view rec;
        if (record_iter_init(&it, batch, len) != KAFKA_NONE || !record_iter_next(&it, &rec))
                return -EBADMSG;
        if (rec.key.len < 4 || rec.value.len < 6)
                return -EBADMSG;
        *type_out = (int16_t)(rec.key.ptr[2] << 8 | rec.key.ptr[3]);
        const uint8_t *v = rec.value.ptr;
        *coordinator_epoch_out = (int32_t)((uint32_t)v[2] << 24 | (uint32_t)v[3] << 16 | (uint32_t)v[4] << 8 | v[5]);
        return 0;
}

/* Control batches hold one small record; anything larger is not one. */
#define CONTROL_BATCH_BYTES_MAX 4096

/*
 * Kafka's rebuildProducerState: the batches from from_offset to the log
 * end, read header by header (and the marker of each control batch), are
 * applied to the producer table. Blocking reads, at open only.
 */
static int replay_producers(struct partition *p, int64_t from_offset)
{
        uint8_t buf[CONTROL_BATCH_BYTES_MAX];
        for (uint32_t i = find_segment_index(p, from_offset); i < p->seg_count; i++) {
                struct segment_handle *h = p->segs[i];
                uint32_t position = 0;
                if (from_offset > h->base_offset) {
                        struct segment_batch_location loc;
                        int rc = segment_find_offset(&h->seg, from_offset, &loc);
                        if (rc == -ENOENT)
                                continue;
                        if (rc < 0)
                                return rc;
                        position = loc.position_bytes;
                }
                while (position < h->written_bytes) {
                        size_t got;
                        int rc = segment_read(&h->seg, position, buf, RECORD_BATCH_HEADER_BYTES, &got);
                        if (rc < 0)
                                return rc;
                        struct record_batch_header hdr;
                        if (record_batch_parse_header(buf, got, &hdr) != RECORD_BATCH_FRAME_OK)
                                return -EBADMSG;        /* recovery left only whole batches */
                        uint32_t size = record_batch_size_bytes(&hdr);
                        /* An empty control batch is a marker whose transaction
                         * the cleaner removed whole: Kafka's ProducerAppendInfo
                         * skips it. */
                        bool is_cleaned_marker = record_batch_is_control(&hdr) && hdr.record_count == 0;
                        if (hdr.producer_id >= 0 && record_batch_last_offset(&hdr) >= from_offset &&
                            !is_cleaned_marker) {
                                int16_t type = 0;
                                int32_t coordinator_epoch = -1;
                                if (record_batch_is_control(&hdr)) {
                                        if (size > sizeof(buf))
                                                return -EBADMSG;
                                        rc = segment_read(&h->seg, position, buf, size, &got);
                                        if (rc < 0)
                                                return rc;
                                        if (got != size || read_control_marker(buf, size, &type, &coordinator_epoch) < 0)
                                                return -EBADMSG;
                                }
                                struct producer_completed_txn done;
                                rc = producer_state_update(&p->producers, &hdr, type, coordinator_epoch, &done);
                                if (rc < 0)
                                        return rc;
                                if (rc == 1)
                                        on_txn_completed(p, &done);
                        }
                        position += size;
                }
        }
        return 0;
}

/*
 * Kafka's LogLoader for producer state: the newest snapshot at or below the
 * log end (newer ones are deleted: the log was cut below them), then the
 * batches after it. With no snapshot, the whole log is read: a log that
 * never had idempotent producers costs one header read per batch, once,
 * until the first snapshot is written.
 */
static int load_producers(struct partition *p, bool is_clean_shutdown, int64_t now_ms)
{
        int64_t snapshot_offset;
        int rc = load_aborted(p);
        if (rc < 0)
                return rc;
        int dir_fd = logdir_ref_open(p->dir);
        if (dir_fd < 0)
                return dir_fd;
        rc = producer_state_load_snapshot(&p->producers, dir_fd, p->log_end_offset, now_ms,
                                          p->producer_expiration_ms, &snapshot_offset);
        close(dir_fd);
        if (rc < 0)
                return rc;
        p->snapshot_offset = snapshot_offset;
        int64_t from = snapshot_offset >= 0 ? snapshot_offset : p->segs[0]->base_offset;
        if (from < p->segs[0]->base_offset)
                from = p->segs[0]->base_offset;
        /* Kafka too skips the scan after a clean shutdown that left no
         * snapshot: a clean close snapshots any producer it knew. */
        if (snapshot_offset < 0 && is_clean_shutdown)
                from = p->log_end_offset;
        if (from < p->log_end_offset) {
                rc = replay_producers(p, from);
                if (rc < 0)
                        return rc;
                producer_state_expire(&p->producers, now_ms, p->producer_expiration_ms);
        }
        p->first_unstable_offset = producer_state_first_open_txn_offset(&p->producers);
        p->snapshot_change_count = snapshot_offset == p->log_end_offset ? p->producers.change_count : UINT64_MAX;
        return 0;
}

/* A snapshot of the producer table at the log end. */
static int snapshot_producers(struct partition *p, bool is_synced)
{
        int dir_fd = logdir_ref_open(p->dir);
        int rc = dir_fd;
        if (dir_fd >= 0) {
                rc = producer_state_write_snapshot(&p->producers, dir_fd, p->log_end_offset, is_synced);
                close(dir_fd);
        }
        if (rc < 0) {
                log_warn("%s: cannot write the producer snapshot at offset %lld: %s; after an unclean stop "
                         "the state is rebuilt from the log", p->name, (long long)p->log_end_offset,
                         strerror(-rc));
                return rc;
        }
        p->snapshot_offset = p->log_end_offset;
        p->snapshot_change_count = p->producers.change_count;
        return 0;
}

/* A log begun anew: a cleaner-offset-checkpoint line for its name is a
 * deleted topic's (the catalog removes it at deletion, but a crash, or a
 * cleaning that finished late, may leave it); kept, it would count the new
 * log's first offsets as cleaned. */
static void forget_cleaner_checkpoint(struct partition *p, int64_t log_start_offset)
{
        p->cleaner_first_dirty_offset = log_start_offset;
        if (p->partition_index < 0)
                return;
        int rc = cleaner_checkpoint_update(p->dir->parent_fd, p->topic, p->partition_index, -1);
        if (rc < 0)
                log_warn("%s: cannot remove its line from %s: %s; remove it by hand before the next start",
                         p->name, CLEANER_CHECKPOINT_FILE, strerror(-rc));
}

int partition_open(const struct partition_options *o, const struct log_io *io, struct partition **out,
                   char *err, size_t err_bytes)
{
        struct partition *p = calloc(1, sizeof(*p));
        int64_t *bases = NULL;
        uint32_t base_count = 0;
        uint32_t recovered_count = 0;
        bool is_cut = false;
        int rc;

        assert(o->dir_name && o->dir_name[0]);
        assert(io && io->ops && io->ops->datasync && io->ops->write && io->ops->now_ms);
        if (!p) {
                snprintf(err, err_bytes, "out of memory");
                return -ENOMEM;
        }
        p->io = *io;
        p->config = o->config;
        p->is_durable_acks = o->is_durable_acks;
        p->roll_sync_offset = -1;
        p->rewind_offset = -1;
        producer_state_init(&p->producers);
        p->snapshot_offset = -1;
        p->first_unstable_offset = -1;
        p->cleaner_first_dirty_offset = -1;
        p->producer_expiration_ms = o->producer_id_expiration_ms > 0 ? o->producer_id_expiration_ms
                                                                      : PARTITION_PRODUCER_EXPIRATION_MS_DEFAULT;
        snprintf(p->name, sizeof(p->name), "%s", o->dir_name);
        int64_t now_ms = io->ops->now_ms(io->ctx);
        p->last_flush_ms = now_ms;

        if (mkdirat(o->dir_fd, o->dir_name, 0755) < 0 && errno != EEXIST) {
                rc = -errno;
                snprintf(err, err_bytes, "cannot create %s: %s", o->dir_name, strerror(errno));
                goto fail;
        }
        rc = logdir_ref_new(o->dir_fd, o->dir_name, &p->dir);
        if (rc < 0) {
                snprintf(err, err_bytes, "cannot open %s: %s", o->dir_name, strerror(-rc));
                goto fail;
        }
        if (!logdir_parse_partition_name(o->dir_name, p->topic, sizeof(p->topic), &p->partition_index)) {
                snprintf(p->topic, sizeof(p->topic), "%s", o->dir_name);
                p->partition_index = -1;
        }
        /* A cleaning interrupted by a crash: finish its swap or drop its
         * files before the segments are listed (Kafka's LogLoader). */
        rc = cleaner_recover_dir(p->dir);
        if (rc < 0) {
                snprintf(err, err_bytes, "cannot recover the cleaner's files in %s: %s", o->dir_name, strerror(-rc));
                goto fail;
        }
        if (rc > 0)
                log_info("%s: finished %d interrupted cleaner swap(s)", o->dir_name, rc);
        rc = list_segments(p->dir, &bases, &base_count);
        if (rc < 0) {
                snprintf(err, err_bytes, "cannot list %s: %s", o->dir_name, strerror(-rc));
                goto fail;
        }
        for (uint32_t i = 0; i < base_count; i++) {
                if (is_cut) {
                        /* Kafka deletes the segments after a cut one: their
                         * offsets would follow a hole. */
                        log_warn("%s: deleting segment %020lld, which follows the cut", o->dir_name,
                                 (long long)bases[i]);
                        delete_partition_segment_files(p, bases[i]);
                        continue;
                }
                struct segment_handle *h;
                rc = add_segment(p, bases[i], false, now_ms, &h);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot open segment %020lld of %s: %s",
                                 (long long)bases[i], o->dir_name, strerror(-rc));
                        goto fail;
                }
                /* After an unclean stop, the segments holding offsets at or
                 * past the recovery point are checked batch by batch and cut
                 * at the first torn or corrupt one. After a clean one only a
                 * segment found torn anyway is. */
                bool is_last = i + 1 == base_count;
                bool is_past_recovery = is_last || bases[i + 1] > o->recovery_point;
                if (!h->seg.is_tail_dirty && (o->is_clean_shutdown || !is_past_recovery))
                        continue;
                struct segment_scan scan;
                rc = segment_recover(&h->seg, &scan);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot recover segment %020lld of %s: %s",
                                 (long long)bases[i], o->dir_name, strerror(-rc));
                        goto fail;
                }
                if (scan.batch_count > 0 || scan.truncated_bytes > 0)
                        recovered_count++;
                h->written_bytes = h->seg.size_bytes;
                if (scan.truncated_bytes > 0) {
                        log_warn("%s: segment %020lld had %u bytes of torn or corrupt batches at "
                                 "position %u (%s); truncated them", o->dir_name, (long long)bases[i],
                                 scan.truncated_bytes, scan.valid_bytes, segment_stop_name(scan.stop));
                        is_cut = true;
                }
        }
        if (p->seg_count > 0 && o->log_start_offset > active(p)->seg.next_offset) {
                log_warn("%s: the log ends at %lld, below its checkpointed start offset %lld (segments "
                         "removed by hand?); deleting every segment and starting at %lld, as Kafka does",
                         o->dir_name, (long long)active(p)->seg.next_offset, (long long)o->log_start_offset,
                         (long long)o->log_start_offset);
                for (uint32_t i = 0; i < p->seg_count; i++)
                        handle_delete(p, p->segs[i]);
                p->seg_count = 0;
                /* The producers' state went with the records. */
                delete_snapshots_below(p, INT64_MAX);
        }
        if (p->seg_count == 0) {
                struct segment_handle *h;
                int64_t base = o->log_start_offset > 0 ? o->log_start_offset : 0;
                rc = add_segment(p, base, true, now_ms, &h);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot create the first segment of %s: %s", o->dir_name,
                                 strerror(-rc));
                        goto fail;
                }
                forget_cleaner_checkpoint(p, base);
        }
        p->log_end_offset = active(p)->seg.next_offset;
        p->high_watermark = p->log_end_offset;
        p->log_start_offset = p->segs[0]->base_offset;
        if (o->log_start_offset > p->log_start_offset)
                p->log_start_offset = o->log_start_offset;
        /* Kafka's recovery point: the log end after a clean shutdown (all
         * was flushed before the marker), else no further than the
         * checkpoint said: what recovery kept may be only in the page cache. */
        if (o->is_clean_shutdown && !is_cut)
                p->synced_offset = p->log_end_offset;
        else
                p->synced_offset = o->recovery_point < p->log_end_offset ? o->recovery_point : p->log_end_offset;
        if (p->synced_offset < 0)
                p->synced_offset = 0;
        rc = update_leader_epoch_checkpoint(p);
        if (rc < 0) {
                snprintf(err, err_bytes, "cannot write %s/%s: %s", o->dir_name, CHECKPOINT_LEADER_EPOCH_FILE,
                         strerror(-rc));
                goto fail;
        }
        rc = load_producers(p, o->is_clean_shutdown, now_ms);
        if (rc < 0) {
                snprintf(err, err_bytes, "cannot load the producer state of %s: %s", o->dir_name,
                         strerror(-rc));
                goto fail;
        }
        free(bases);
        partition_check(p);
        if (recovered_count > 0 && !o->is_clean_shutdown)
                log_info("%s: recovered %u segment(s) after an unclean shutdown; offsets %lld to %lld",
                         o->dir_name, recovered_count, (long long)p->log_start_offset,
                         (long long)p->log_end_offset);
        if (p->synced_offset < p->high_watermark) {
                partition_enter(p);
                start_sync(p, p->high_watermark);
                partition_leave(p);
        }
        *out = p;
        return 0;
fail:
        free(bases);
        p->is_closing = true;
        partition_destroy(p);
        return rc;
}

/* ---- waiters ---- */

static void waiter_link(struct partition_waiter **list, struct partition_waiter *w)
{
        w->prev = NULL;
        w->next = *list;
        if (*list)
                (*list)->prev = w;
        *list = w;
}

static void waiter_unlink(struct partition_waiter **list, struct partition_waiter *w)
{
        if (w->prev)
                w->prev->next = w->next;
        else
                *list = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->prev = w->next = NULL;
}

void partition_wait(struct partition *p, struct partition_waiter *w)
{
        assert(!w->is_linked);
        if (p->high_watermark > w->offset || p->is_failed || p->is_closing) {
                w->fire(w);
                return;
        }
        waiter_link(&p->waiters, w);
        w->is_linked = true;
        w->is_firing = false;
}

void partition_unwait(struct partition *p, struct partition_waiter *w)
{
        if (!w->is_linked)
                return;
        waiter_unlink(w->is_firing ? &p->firing : &p->waiters, w);
        w->is_linked = false;
        w->is_firing = false;
}

/*
 * Fires the waiters the high watermark has passed (every one when
 * is_all). The ready ones move to a list of their own first, because a
 * fire may unwait or re-arm others (a Fetch over several partitions of
 * this home); one unwaited meanwhile is not fired.
 */
static void fire_waiters(struct partition *p, bool is_all)
{
        struct partition_waiter *w = p->waiters;
        while (w) {
                struct partition_waiter *next = w->next;
                if (is_all || p->high_watermark > w->offset) {
                        waiter_unlink(&p->waiters, w);
                        waiter_link(&p->firing, w);
                        w->is_firing = true;
                }
                w = next;
        }
        while ((w = p->firing)) {
                waiter_unlink(&p->firing, w);
                w->is_linked = false;
                w->is_firing = false;
                w->fire(w);
        }
}

int partition_snapshot_producers(struct partition *p)
{
        if (p->is_failed)
                return 0;
        bool is_current = p->snapshot_change_count == p->producers.change_count &&
                          (p->snapshot_offset == p->log_end_offset || p->producers.count == 0);
        if (is_current)
                return 0;
        return snapshot_producers(p, true);
}

uint32_t partition_expire_producers(struct partition *p, int64_t now_ms)
{
        return producer_state_expire(&p->producers, now_ms, p->producer_expiration_ms);
}

const struct producer_state *partition_producers(const struct partition *p)
{
        return &p->producers;
}

void partition_close(struct partition *p)
{
        if (!p)
                return;
        assert(!p->is_closing);
        partition_enter(p);
        p->is_closing = true;
        if (p->cleaning)
                atomic_store(&p->cleaning->is_cancelled, true);
        /* Whoever still waits is told the partition is going. */
        fire_waiters(p, true);
        partition_leave(p);
}

void partition_set_config(struct partition *p, const struct topic_config *config)
{
        p->config = *config;
}

int64_t partition_log_start_offset(const struct partition *p) { return p->log_start_offset; }
int64_t partition_log_end_offset(const struct partition *p) { return p->log_end_offset; }
int64_t partition_high_watermark(const struct partition *p) { return p->high_watermark; }
int64_t partition_last_stable_offset(const struct partition *p)
{
        /* A transaction may open at an offset still being written. */
        if (p->first_unstable_offset >= 0 && p->first_unstable_offset < p->high_watermark)
                return p->first_unstable_offset;
        return p->high_watermark;
}
int64_t partition_recovery_point(const struct partition *p) { return p->synced_offset; }
int32_t partition_leader_epoch(const struct partition *p) { return p->leader_epoch; }
int64_t partition_first_segment_offset(const struct partition *p) { return p->segs[0]->base_offset; }
uint32_t partition_segment_count(const struct partition *p) { return p->seg_count; }
bool partition_is_failed(const struct partition *p) { return p->is_failed; }
bool partition_is_flushing(const struct partition *p) { return !partition_is_idle(p); }

/* ---- the append pipeline ---- */

static void complete(struct partition_append *a)
{
        a->log_start_offset = a->partition->log_start_offset;
        a->done(a);
}

static void fail_append(struct partition_append *a, int16_t code, const char *reason)
{
        a->error_code = code;
        if (reason)
                snprintf(a->error_message, sizeof(a->error_message), "%s", reason);
        complete(a);
}

/* Running out of descriptors is the process's state, not the disk's:
 * the operation changed nothing (segment.h) and is retried by the
 * client, so the partition stays writable. One line every few seconds
 * for the whole broker, however many partitions hit it. */
#define PARTITION_TRANSIENT_LOG_INTERVAL_MS 5000
static struct log_limit transient_log_limit;

static bool is_transient_error(int err)
{
        return err == -EMFILE || err == -ENFILE;
}

static void mark_failed(struct partition *p, const char *what, int err)
{
        unsigned long long suppressed;

        if (is_transient_error(err)) {
                if (log_limit_allow(&transient_log_limit, PARTITION_TRANSIENT_LOG_INTERVAL_MS, &suppressed))
                        log_warn("%s: %s failed: %s; answering KAFKA_STORAGE_ERROR (retriable) until descriptors "
                                 "are free (raise the open-files limit, ulimit -n); %llu such lines suppressed",
                                 p->name, what, strerror(-err), suppressed);
                return;
        }
        if (!p->is_failed)
                log_error("%s: %s failed: %s; the partition refuses writes until the broker restarts "
                          "(check the disk)", p->name, what, strerror(-err));
        p->is_failed = true;
}

/*
 * A full disk refuses the append and leaves the partition writable: the
 * segment is as it was (segment.h: index blocks are reserved before the
 * .log is written), or is put back as it was once the writes in flight
 * are done (rewind_after_disk_full: a write that met it is cut off
 * again), so the producer's retry succeeds once space is freed, with no
 * restart. Kafka instead
 * takes the whole log dir offline on the IOException, and a broker whose
 * every log dir is offline shuts down; both answer the request that hit
 * it with KAFKA_STORAGE_ERROR, which clients retry. A failed fdatasync is
 * different (the page cache may have dropped what it could not write) and
 * still fails the partition.
 */
#define PARTITION_DISK_FULL_LOG_INTERVAL_MS 5000
static struct log_limit disk_full_log_limit;

static bool is_disk_full(int err)
{
        return err == -ENOSPC || err == -EDQUOT;
}

static void refuse_disk_full(struct partition *p, struct partition_append *a, int err)
{
        unsigned long long suppressed;

        if (log_limit_allow(&disk_full_log_limit, PARTITION_DISK_FULL_LOG_INTERVAL_MS, &suppressed))
                log_warn("%s: appending to the log failed: %s; answering KAFKA_STORAGE_ERROR (retriable) until "
                         "space is freed; nothing of it is kept; %llu such lines suppressed", p->name,
                         strerror(-err), suppressed);
        fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The broker's disk is full.");
}

/* The last fdatasync of a sync has completed: advance the recovery point,
 * complete the appends it covers, and start the next sync if one is due. */
static void on_sync_done(void *arg, int result)
{
        struct partition *p = arg;
        assert(p->is_syncing && p->sync_outstanding > 0);
        if (result < 0)
                p->sync_error = result;
        if (--p->sync_outstanding > 0)
                return;
        partition_enter(p);
        p->is_syncing = false;
        for (uint32_t i = 0; i < p->sync_seg_count; i++)
                handle_put(p->sync_segs[i]);
        p->sync_seg_count = 0;
        if (p->sync_error < 0) {
                mark_failed(p, "fdatasync", p->sync_error);
                p->sync_error = 0;
        } else {
                assert(p->sync_target >= p->synced_offset);
                p->synced_offset = p->sync_target;
        }
        while (p->durable_head && (p->is_failed || p->durable_head->end_offset <= p->synced_offset)) {
                struct partition_append *a = p->durable_head;
                p->durable_head = a->next;
                if (!p->durable_head)
                        p->durable_tail = NULL;
                if (p->is_failed && a->end_offset > p->synced_offset) {
                        a->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                        snprintf(a->error_message, sizeof(a->error_message),
                                 "The broker could not sync the log to disk; see its log.");
                }
                complete(a);
        }
        if (p->durable_head || (p->is_flush_wanted && !p->is_closing && p->synced_offset < p->high_watermark))
                start_sync(p, p->high_watermark);
        /* A flush asked for while writes are in flight waits for them. */
        p->is_flush_wanted = (p->is_syncing || p->writes_in_flight > 0) && p->is_flush_wanted;
        partition_leave(p);
}

/*
 * Makes the log durable up to target_offset (at least): one fdatasync per
 * segment holding bytes between the synced offset and the target, each
 * segment referenced until the sync is done. A sync already in flight
 * covers less than what is written now: another, to the high watermark,
 * is started when it ends.
 */
static void start_sync(struct partition *p, int64_t target_offset)
{
        assert(p->call_depth > 0);
        if (p->is_failed)
                return;
        if (p->is_syncing) {
                p->is_flush_wanted = true;
                return;
        }
        assert(p->sync_seg_count == 0);
        p->is_syncing = true;
        p->is_flush_wanted = false;
        assert(target_offset > p->synced_offset && target_offset <= p->high_watermark);
        p->sync_target = target_offset;
        p->sync_outstanding = 1;        /* held until every sync is submitted */
        if (target_offset == p->high_watermark) {
                p->unflushed_count = 0;
                p->last_flush_ms = p->io.ops->now_ms(p->io.ctx);
        }
        for (uint32_t i = find_segment_index(p, p->synced_offset);
             i < p->seg_count && p->segs[i]->base_offset < target_offset; i++) {
                struct segment_handle *h = p->segs[i];
                assert(p->sync_seg_count < p->seg_cap);
                handle_get(h);
                p->sync_segs[p->sync_seg_count++] = h;
                p->sync_outstanding++;
                int rc = p->io.ops->datasync(p->io.ctx, h->fd, on_sync_done, p);
                if (rc < 0)
                        on_sync_done(p, rc);
                /* Kafka's LogSegment.flush syncs the transaction index with
                 * the log: an abort marker below the recovery point must
                 * keep its .txnindex entry through a power loss. */
                if (h->txn.fd >= 0) {
                        p->sync_outstanding++;
                        rc = p->io.ops->datasync(p->io.ctx, h->txn.fd, on_sync_done, p);
                        if (rc < 0)
                                on_sync_done(p, rc);
                }
        }
        on_sync_done(p, 0);
}

/* A rolled segment with no write in flight any more: seal it (Kafka cuts
 * its indexes to their used size at a roll) and have it synced, as Kafka
 * flushes a segment once rolled, in the background, so that recovery has
 * the active segment only to scan. */
static int finish_rolled_segment(struct partition *p, struct segment_handle *h, bool is_synced)
{
        assert(h->writes_in_flight == 0 && h != active(p));
        h->is_seal_pending = false;
        int rc = segment_seal(&h->seg);
        if (rc < 0)
                return rc;
        if (is_synced && h->seg.next_offset > p->roll_sync_offset) {
                assert(h->seg.next_offset <= p->high_watermark);
                p->roll_sync_offset = h->seg.next_offset;
        }
        return 0;
}

/* Starts the sync a roll asked for; called where callbacks may run. */
static void start_roll_sync(struct partition *p)
{
        int64_t target = p->roll_sync_offset;
        p->roll_sync_offset = -1;
        if (target > p->synced_offset && !p->is_failed)
                start_sync(p, target);
}

/* A new active segment when this batch would not fit, segment.ms passed,
 * or force (the segment's offsets or indexes are full). The old segment
 * is sealed now, or when its last write in flight completes; is_synced
 * has it synced then. Returns 1 when it rolled, 0 when not, or -errno. */
static int roll(struct partition *p, size_t len, int64_t now_ms, bool force, bool is_synced)
{
        struct segment_handle *h = active(p);
        uint32_t size_bytes = segment_reserved_size_bytes(&h->seg);
        bool is_empty = size_bytes == 0;
        bool is_full = (uint64_t)size_bytes + len > (uint64_t)p->config.segment_bytes ||
                       segment_is_index_full(&h->seg);
        bool is_old = now_ms - h->created_ms >= p->config.segment_ms;
        if (is_empty || (!force && !is_full && !is_old))
                return 0;
        /* Kafka cuts the old segment's indexes to their used size at a
         * roll; with writes in flight their entries are still to come. */
        if (h->writes_in_flight == 0) {
                int rc = segment_seal(&h->seg);
                if (rc < 0)
                        return rc;
        }
        struct segment_handle *n;
        int rc = add_segment(p, p->log_end_offset, true, now_ms, &n);
        if (rc < 0)
                return rc;
        if (h->writes_in_flight > 0) {
                h->is_seal_pending = true;
                h->is_sync_after_seal = is_synced;
        } else if (is_synced && h->seg.next_offset > p->roll_sync_offset) {
                p->roll_sync_offset = h->seg.next_offset;
        }
        /* Kafka snapshots the producers at every roll, so that a restart
         * replays at most the active segment. Not synced: the roll's own
         * sync of the segment is what recovery relies on. Taken at the log
         * end, writes in flight included: a start that finds the log
         * shorter discards it. */
        snapshot_producers(p, false);
        return 1;
}

/* Room for decompressed records when a batch is converted or inspected:
 * Kafka sets no bound; runnel bounds it so a compression bomb is refused. */
static size_t convert_records_bytes_max(const struct topic_config *c)
{
        size_t four = (size_t)c->max_message_bytes * 4;
        return four > (64u << 20) ? four : (64u << 20);
}

static size_t convert_arena_bytes(const struct topic_config *c)
{
        /* batch_convert.h: about 2.25 times the records bound, plus a block. */
        return convert_records_bytes_max(c) * 9 / 4 + (1u << 20);
}

static int compression_level(const struct topic_config *c)
{
        switch (c->compression_type) {
        case TOPIC_COMPRESSION_GZIP:
                return c->compression_gzip_level;
        case TOPIC_COMPRESSION_LZ4:
                return c->compression_lz4_level;
        case TOPIC_COMPRESSION_ZSTD:
                return c->compression_zstd_level;
        default:
                return 0;
        }
}

/*
 * Kafka's LogValidator in three cases: a topic with its own compression.type
 * gets the batch rebuilt with that codec (records checked on the way); a
 * compacted topic has every record of a compressed batch checked for a key;
 * otherwise the batch is stored as produced after the header, CRC and (when
 * uncompressed) record checks. On return, bytes and len are the batch to store.
 */
static int16_t check_batch(struct partition *p, struct partition_append *a, const struct record_batch_policy *policy,
                           struct arena *scratch, uint8_t **bytes, size_t *len, struct record_batch_check *check)
{
        const struct topic_config *c = &p->config;
        size_t bound = convert_records_bytes_max(c);
        if (c->compression_type != TOPIC_COMPRESSION_PRODUCER) {
                struct record_batch_recompressed out;
                int16_t code = record_batch_recompress(a->batches, a->len, policy,
                                                       (enum compress_codec)c->compression_type,
                                                       compression_level(c), bound, scratch, &out, check);
                if (code == KAFKA_NONE && out.is_converted) {
                        *bytes = out.bytes;
                        *len = out.size_bytes;
                }
                return code;
        }
        if (c->is_cleanup_compact)
                return record_batch_validate_compressed_records(a->batches, a->len, policy, bound, scratch, check);
        return record_batch_validate(a->batches, a->len, policy, check);
}

/*
 * Kafka's analyzeAndValidateProducerState for one client batch: a retry
 * is found, else the epoch and sequence are checked, and a transactional
 * batch must belong to a transaction this partition knows is open, or one
 * the transaction coordinator verified (KIP-890). On success the
 * producer's entry exists, so that recording the write cannot fail.
 */
static int16_t check_producer(struct partition *p, const struct partition_append *a,
                              const struct record_batch_header *h, bool *is_duplicate, struct producer_duplicate *dup,
                              char *reason, size_t reason_bytes)
{
        int16_t code = producer_state_check(&p->producers, h, is_duplicate, dup, reason, reason_bytes);
        if (*is_duplicate)
                return code;
        /* After the duplicate check and before epochs and sequences, as in
         * Kafka's analyzeAndValidateProducerState. */
        if (record_batch_is_transactional(h) && !a->is_txn_verified) {
                const struct producer_entry *e = producer_state_find(&p->producers, h->producer_id);
                if (!e || e->txn_first_offset < 0) {
                        snprintf(reason, reason_bytes, "The record batch of producer %lld is not part of an "
                                 "ongoing transaction.", (long long)h->producer_id);
                        return KAFKA_INVALID_TXN_STATE;
                }
        }
        if (code != KAFKA_NONE)
                return code;
        if (producer_state_reserve(&p->producers, h->producer_id) < 0) {
                snprintf(reason, reason_bytes, "The broker is out of memory for producer state.");
                return KAFKA_KAFKA_STORAGE_ERROR;
        }
        return KAFKA_NONE;
}

/* ---- transactions ---- */

/* A control batch: one record, key (version 0, type 0 abort / 1 commit),
 * value (version 0, coordinator epoch), as Kafka's EndTransactionMarker. */
static void build_marker_batch(struct partition_append *a, int64_t now_ms)
{
        const struct partition_marker *m = a->marker;
        uint32_t ce = (uint32_t)m->coordinator_epoch;
        uint8_t key[4] = { 0, 0, 0, m->is_commit ? 1 : 0 };
        uint8_t value[6] = { 0, 0, (uint8_t)(ce >> 24), (uint8_t)(ce >> 16), (uint8_t)(ce >> 8), (uint8_t)ce };
        struct record_spec rec = {
                .key = { key, sizeof(key) },
                .value = { value, sizeof(value) },
                .timestamp_ms = now_ms,
        };
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, &rec, 1);
        spec.attributes = RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_TRANSACTIONAL;
        spec.producer_id = m->producer_id;
        spec.producer_epoch = m->producer_epoch;
        spec.base_sequence = RECORD_BATCH_NO_SEQUENCE;
        assert(record_batch_encoded_size(&spec) <= sizeof(a->marker_batch));
        a->len = record_batch_encode(&spec, a->marker_batch, sizeof(a->marker_batch));
        a->batches = a->marker_batch;
}

/* Room for one more aborted transaction, taken before a marker is written. */
static int reserve_aborted(struct partition *p)
{
        if (p->aborted_count < p->aborted_cap)
                return 0;
        uint32_t cap = p->aborted_cap ? p->aborted_cap * 2 : 16;
        struct partition_aborted_txn *n = realloc(p->aborted, cap * sizeof(*n));
        if (!n)
                return -ENOMEM;
        p->aborted = n;
        p->aborted_cap = cap;
        return 0;
}

/* Kafka's appendEndTxnMarker checks: the marker's producer epoch is not
 * older than the partition's, nor its coordinator epoch. */
static int16_t check_marker(struct partition *p, const struct partition_marker *m, char *reason, size_t reason_bytes)
{
        const struct producer_entry *e = producer_state_find(&p->producers, m->producer_id);
        if (e && m->producer_epoch < e->epoch) {
                snprintf(reason, reason_bytes, "Marker of producer %lld has epoch %d, older than the current %d.",
                         (long long)m->producer_id, m->producer_epoch, e->epoch);
                return KAFKA_INVALID_PRODUCER_EPOCH;
        }
        if (e && m->coordinator_epoch < e->coordinator_epoch) {
                snprintf(reason, reason_bytes, "Marker of producer %lld comes from coordinator epoch %d, older "
                         "than %d.", (long long)m->producer_id, m->coordinator_epoch, e->coordinator_epoch);
                return KAFKA_TRANSACTION_COORDINATOR_FENCED;
        }
        if (producer_state_reserve(&p->producers, m->producer_id) < 0 || (!m->is_commit && reserve_aborted(p) < 0)) {
                snprintf(reason, reason_bytes, "The broker is out of memory for producer state.");
                return KAFKA_KAFKA_STORAGE_ERROR;
        }
        return KAFKA_NONE;
}

/* A transactional data batch was written: it may open a transaction. */
static void on_txn_data(struct partition *p, const struct record_batch_header *h)
{
        const struct producer_entry *e = producer_state_find(&p->producers, h->producer_id);
        if (e && e->txn_first_offset == h->base_offset && p->first_unstable_offset < 0)
                p->first_unstable_offset = h->base_offset;
}

/*
 * A marker ended a transaction holding data: the last stable offset may
 * move on, and an aborted one is listed for read_committed fetches with
 * the LSO right after it, as Kafka's transaction index records.
 */
static void on_txn_completed(struct partition *p, const struct producer_completed_txn *c)
{
        if (p->first_unstable_offset == c->first_offset)
                p->first_unstable_offset = producer_state_first_open_txn_offset(&p->producers);
        if (!c->is_aborted)
                return;
        /* A replay at open meets aborts the .txnindex already listed. */
        if (p->aborted_count > 0 && p->aborted[p->aborted_count - 1].last_offset >= c->last_offset)
                return;
        if (reserve_aborted(p) < 0) {
                log_error("%s: out of memory listing the aborted transaction of producer %lld; read_committed "
                          "consumers may see its records until the broker restarts", p->name,
                          (long long)c->producer_id);
                return;
        }
        struct partition_aborted_txn *t = &p->aborted[p->aborted_count++];
        t->producer_id = c->producer_id;
        t->first_offset = c->first_offset;
        t->last_offset = c->last_offset;
        /* Kafka's lastStableOffset(completedTxn): the next open transaction's
         * first offset (the cached one is not computed yet during a replay). */
        int64_t next_open = producer_state_first_open_txn_offset(&p->producers);
        t->last_stable_offset = next_open >= 0 ? next_open : c->last_offset + 1;
        struct txn_aborted entry = { t->producer_id, t->first_offset, t->last_offset, t->last_stable_offset };
        int rc = txn_index_append(&find_segment(p, c->last_offset)->txn, &entry);
        if (rc < 0)
                log_warn("%s: cannot write the aborted transaction at offset %lld to %s: %s; it is known until "
                         "the broker restarts", p->name, (long long)c->last_offset, TXN_INDEX_FILE_SUFFIX,
                         strerror(-rc));
}

/* At open: the aborted transactions the segments' .txnindex files list,
 * those past a log end cut by recovery removed. */
static int load_aborted(struct partition *p)
{
        for (uint32_t i = 0; i < p->seg_count; i++) {
                struct txn_index *ix = &p->segs[i]->txn;
                if (txn_index_entry_count(ix) == 0)
                        continue;
                if (ix->last_offset >= p->log_end_offset) {
                        int rc = txn_index_truncate_to(ix, p->log_end_offset);
                        if (rc < 0)
                                return rc;
                }
                struct txn_aborted_list l = { 0 };
                bool is_complete;
                int rc = txn_index_collect(ix, 0, INT64_MAX, &l, &is_complete);
                for (uint32_t k = 0; rc == 0 && k < l.count; k++) {
                        rc = reserve_aborted(p);
                        if (rc == 0)
                                p->aborted[p->aborted_count++] = (struct partition_aborted_txn){
                                        l.items[k].producer_id, l.items[k].first_offset, l.items[k].last_offset,
                                        l.items[k].last_stable_offset,
                                };
                }
                txn_aborted_list_free(&l);
                if (rc < 0)
                        return rc;
        }
        return 0;
}

/* a completes once an fdatasync covers its end offset. */
static void complete_after_sync(struct partition *p, struct partition_append *a)
{
        assert(a->end_offset <= p->high_watermark);
        if (p->is_failed) {
                fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The partition's log dir had an I/O error.");
                return;
        }
        if (a->end_offset <= p->synced_offset) {
                complete(a);
                return;
        }
        a->next = NULL;
        if (p->durable_tail)
                p->durable_tail->next = a;
        else
                p->durable_head = a;
        p->durable_tail = a;
        start_sync(p, p->high_watermark);
}

/* The write of a (or, for a retry, of its original) is committed: a
 * completes now or after the next sync, as it asked. */
static void finish_append(struct partition *p, struct partition_append *a)
{
        if (a->is_durable && p->is_durable_acks) {
                complete_after_sync(p, a);
                return;
        }
        if (a->write_segment && p->unflushed_count >= p->config.flush_messages &&
            p->high_watermark > p->synced_offset)
                start_sync(p, p->high_watermark);
        complete(a);
}

static void writes_push(struct partition *p, struct partition_append *a)
{
        a->next = NULL;
        if (p->writes_tail)
                p->writes_tail->next = a;
        else
                p->writes_head = a;
        p->writes_tail = a;
}

/* A retried batch: the first answer again, once it is as durable as asked.
 * Its original may still be in flight: then it waits on the list of
 * writes behind it, so that it is never answered before the original is
 * written (and answers the original's error if that write fails). */
static void answer_duplicate(struct partition *p, struct partition_append *a, const struct producer_duplicate *d)
{
        a->base_offset = d->first_offset;
        a->end_offset = d->last_offset + 1;
        /* Kafka answers a duplicate with the batch's timestamp in
         * log_append_time, whatever the topic's timestamp type. */
        a->log_append_time_ms = d->timestamp_ms;
        if (a->end_offset > p->high_watermark) {
                assert(p->writes_in_flight > 0);
                a->write_segment = NULL;
                a->write_result = 0;
                a->is_write_done = true;
                writes_push(p, a);
                return;
        }
        finish_append(p, a);
}

/* A segment whose last write in flight has completed: a failed
 * partition's reservations go, a roll waiting for it finishes. */
static void settle_segment(struct partition *p, struct segment_handle *h)
{
        assert(h->writes_in_flight == 0);
        if (h->seg.pending_count > 0) {
                assert(p->is_failed || p->rewind_offset >= 0);
                int rc = segment_append_abort(&h->seg);
                if (rc < 0)
                        log_warn("%s: cannot cut segment %020lld back to %u bytes after a failed write: %s; the "
                                 "next start recovers it", p->name, (long long)h->base_offset, h->seg.size_bytes,
                                 strerror(-rc));
        }
        if (h->is_seal_pending) {
                /* Not synced when cut back for a full disk: it may end
                 * past the rewound log (and then goes). */
                int rc = finish_rolled_segment(p, h, h->is_sync_after_seal && !p->is_failed && p->rewind_offset < 0);
                if (rc < 0)
                        mark_failed(p, "sealing a rolled segment", rc);
        }
}

/* Takes the write of a into its segment: the bytes below the high
 * watermark now include it. */
static void commit_write(struct partition *p, struct partition_append *a)
{
        struct segment_handle *h = a->write_segment;
        assert(a->base_offset == p->high_watermark);
        int rc = segment_append_commit(&h->seg, a->write_bytes, a->write_len, a->write_position);
        h->written_bytes = h->seg.size_bytes;
        p->high_watermark = a->end_offset;
        if (rc < 0)
                mark_failed(p, "indexing the log", rc);
}

/*
 * After a write met a full disk, once no write is in flight: the partition
 * as it was before the first append not committed (rewind_offset, the high
 * watermark). Segments rolled past it are empty and deleted with the
 * producer snapshots their rolls took; the refused appends' producer state
 * updates are undone newest first (refused_head is in that order), and
 * what follows from them (the first unstable offset, aborted transactions
 * and their .txnindex entries) is recomputed or cut back. The segments
 * were already cut back by settle_segment. Returns the refused appends in
 * offset order, to be answered.
 */
static struct partition_append *rewind_after_disk_full(struct partition *p)
{
        int64_t end = p->high_watermark;
        assert(!p->writes_head && p->writes_in_flight == 0 && p->rewind_offset == end);
        while (p->seg_count > 1 && active(p)->base_offset > end) {
                struct segment_handle *h = p->segs[--p->seg_count];
                assert(h->writes_in_flight == 0 && h->seg.size_bytes == 0 && h->seg.pending_count == 0);
                char name[64];
                producer_snapshot_file_name(name, sizeof(name), h->base_offset);
                int r = logdir_ref_unlink(p->dir, name);
                if (r < 0 && r != -ENOENT)
                        log_warn("%s: cannot delete %s: %s", p->name, name, strerror(-r));
                handle_delete(p, h);
        }
        assert(active(p)->base_offset <= end && !active(p)->is_seal_pending);
        if (p->snapshot_offset > end) {
                p->snapshot_offset = -1;
                p->snapshot_change_count = UINT64_MAX;
        }
        struct partition_append *ordered = NULL;
        while (p->refused_head) {
                struct partition_append *a = p->refused_head;
                p->refused_head = a->next;
                if (a->has_producer_update)
                        producer_state_restore(&p->producers, a->producer_before.producer_id,
                                               a->had_producer_entry ? &a->producer_before : NULL);
                a->next = ordered;
                ordered = a;
        }
        p->first_unstable_offset = producer_state_first_open_txn_offset(&p->producers);
        while (p->aborted_count > 0 && p->aborted[p->aborted_count - 1].last_offset >= end)
                p->aborted_count--;
        for (uint32_t i = 0; i < p->seg_count; i++) {
                struct txn_index *ix = &p->segs[i]->txn;
                if (txn_index_entry_count(ix) == 0 || ix->last_offset < end)
                        continue;
                int rc = txn_index_truncate_to(ix, end);
                if (rc < 0)
                        log_warn("%s: cannot cut %020lld%s back to offset %lld after a full disk: %s; the next "
                                 "start does", p->name, (long long)p->segs[i]->base_offset, TXN_INDEX_FILE_SUFFIX,
                                 (long long)end, strerror(-rc));
        }
        p->log_end_offset = end;
        p->rewind_offset = -1;
        p->is_disk_full = false;
        p->rewind_count++;
        return ordered;
}

/*
 * Drains the list of writes from its head while the writes there have
 * completed: each is committed (unless the partition has failed, or a
 * write before it met a full disk), and its append finished. Callbacks
 * run on the way and may append (their writes join the tail, and may
 * complete and drain from inside) or close the partition; the list is
 * read afresh each turn.
 */
static void drain_writes(struct partition *p)
{
        int64_t hw_before = p->high_watermark;
        struct partition_append *a, *refused = NULL;
        while ((a = p->writes_head) && a->is_write_done) {
                p->writes_head = a->next;
                if (!p->writes_head)
                        p->writes_tail = NULL;
                a->next = NULL;
                struct segment_handle *h = a->write_segment;
                if (h && is_disk_full(a->write_result) && p->rewind_offset < 0 && !p->is_failed) {
                        assert(a->base_offset == p->high_watermark);
                        p->rewind_offset = a->base_offset;
                }
                /* A retry answered is written when its original was. */
                bool is_written = !p->is_failed && (h ? a->write_result == 0 && p->rewind_offset < 0
                                                      : a->end_offset <= p->high_watermark);
                if (h) {
                        if (is_written)
                                commit_write(p, a);
                        arena_free(&a->scratch);
                        assert(h->writes_in_flight > 0 && p->writes_in_flight > 0);
                        h->writes_in_flight--;
                        p->writes_in_flight--;
                        if (h->writes_in_flight == 0)
                                settle_segment(p, h);
                }
                if (!is_written && p->rewind_offset >= 0 && !p->is_failed) {
                        /* Answered at the rewind, once its producer state
                         * update is undone. */
                        a->next = p->refused_head;
                        p->refused_head = a;
                        continue;
                }
                if (!is_written) {
                        fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The broker could not write to the log; see "
                                    "its log.");
                        continue;
                }
                finish_append(p, a);
        }
        if (!p->writes_head && p->rewind_offset >= 0 && !p->is_failed)
                refused = rewind_after_disk_full(p);
        if ((p->is_failed || p->rewind_offset >= 0) && !p->writes_head) {
                /* What was never written gets no offsets: the log ends at
                 * what was committed. A failed partition is not rewound
                 * further: it takes no appends until a restart. */
                p->log_end_offset = p->high_watermark;
                p->rewind_offset = -1;
                p->is_disk_full = false;
                refused = p->refused_head;
                p->refused_head = NULL;
        }
        partition_check(p);
        while (refused) {
                a = refused;
                refused = a->next;
                a->next = NULL;
                fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The broker's disk is full.");
        }
        if (p->high_watermark > hw_before)
                fire_waiters(p, false);
        if (p->roll_sync_offset >= 0)
                start_roll_sync(p);
        if (p->is_flush_wanted && p->writes_in_flight == 0 && !p->is_syncing && !p->is_closing &&
            p->synced_offset < p->high_watermark)
                start_sync(p, p->high_watermark);
}

/* log_io's answer for the write of a. */
static void on_write_done(void *arg, int result)
{
        struct partition_append *a = arg;
        struct partition *p = a->partition;
        assert(!a->is_write_done && a->write_segment);
        partition_enter(p);
        a->is_write_done = true;
        a->write_result = result;
        if (is_disk_full(result) && !p->is_failed) {
                /* This write and those after it are cut off, and the
                 * partition rewound, once every write in flight is done;
                 * appends until then would be cut off too. */
                unsigned long long suppressed;
                if (log_limit_allow(&disk_full_log_limit, PARTITION_DISK_FULL_LOG_INTERVAL_MS, &suppressed))
                        log_warn("%s: writing to the log failed: %s; answering KAFKA_STORAGE_ERROR (retriable) "
                                 "until space is freed; what was written from offset %lld on is cut off; %llu "
                                 "such lines suppressed", p->name, strerror(-result), (long long)a->base_offset,
                                 suppressed);
                p->is_disk_full = true;
        } else if (result < 0) {
                /* A hole in the log: never a transient failure. */
                mark_failed(p, "writing to the log", is_transient_error(result) ? -EIO : result);
        }
        drain_writes(p);
        partition_leave(p);
}

/* Reserves room for bytes in the active segment, rolling first when it
 * cannot take them. Returns 0 or -errno. */
static int reserve_write(struct partition *p, const uint8_t *bytes, size_t len, int64_t now_ms, uint32_t *position_out)
{
        int rc = roll(p, len, now_ms, false, true);
        if (rc < 0)
                return rc;
        rc = segment_append_reserve(&active(p)->seg, bytes, len, position_out);
        if (rc == -ERANGE || rc == SEGMENT_FULL) {
                /* The segment cannot take it (offsets or an index full): roll. */
                rc = roll(p, len, now_ms, true, true);
                if (rc >= 0)
                        rc = segment_append_reserve(&active(p)->seg, bytes, len, position_out);
        }
        return rc;
}

void partition_append(struct partition *p, struct partition_append *a)
{
        assert(!p->is_closing);
        a->partition = p;
        a->error_code = KAFKA_NONE;
        a->error_message[0] = '\0';
        a->error_record_index = -1;
        a->log_append_time_ms = -1;
        a->next = NULL;
        a->write_segment = NULL;
        a->is_write_done = false;
        a->write_result = 0;
        partition_enter(p);
        a->has_producer_update = false;
        if (p->is_failed) {
                fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The partition's log dir had an I/O error.");
                goto out;
        }
        if (p->is_disk_full) {
                /* It would be cut off with the writes in flight. */
                fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The broker's disk is full.");
                goto out;
        }
        int64_t now_ms = p->io.ops->now_ms(p->io.ctx);
        bool is_log_append_time = p->config.message_timestamp_type == TOPIC_TIMESTAMP_LOG_APPEND_TIME;
        bool is_marker = a->marker != NULL;
        if (is_marker) {
                build_marker_batch(a, now_ms);
                a->had_producer_entry = producer_state_find(&p->producers, a->marker->producer_id) != NULL;
        }
        struct record_batch_policy policy = {
                .is_from_client = !is_marker,
                .is_compacted = p->config.is_cleanup_compact && !is_marker,
                .is_log_append_time = is_log_append_time,
                .is_timestamp_checked = !is_log_append_time && !is_marker,
                .now_ms = now_ms,
                .timestamp_before_max_ms = p->config.message_timestamp_before_max_ms,
                .timestamp_after_max_ms = p->config.message_timestamp_after_max_ms,
                .batch_bytes_max = (uint32_t)p->config.max_message_bytes,
        };
        struct record_batch_check check;
        /* A recompressed batch lives here until its write completes. */
        arena_init(&a->scratch, convert_arena_bytes(&p->config));
        uint8_t *bytes = a->batches;
        size_t len = a->len;
        /* Markers are written as built: never recompressed (they hold no
         * data), and checked against the producer's epochs only. */
        int16_t code = is_marker ? record_batch_validate(bytes, len, &policy, &check)
                                 : check_batch(p, a, &policy, &a->scratch, &bytes, &len, &check);
        if (code == KAFKA_NONE && is_marker)
                code = check_marker(p, a->marker, check.reason, sizeof(check.reason));
        if (code != KAFKA_NONE) {
                arena_free(&a->scratch);
                a->error_record_index = check.record_index;
                fail_append(a, code, check.reason);
                goto out;
        }
        bool has_producer = record_batch_has_producer_id(&check.header);
        if (has_producer && !is_marker) {
                bool is_duplicate;
                struct producer_duplicate dup;
                char reason[sizeof(a->error_message)];
                a->had_producer_entry = producer_state_find(&p->producers, check.header.producer_id) != NULL;
                code = check_producer(p, a, &check.header, &is_duplicate, &dup, reason, sizeof(reason));
                if (code != KAFKA_NONE || is_duplicate)
                        arena_free(&a->scratch);
                if (code != KAFKA_NONE) {
                        fail_append(a, code, reason);
                        goto out;
                }
                if (is_duplicate) {
                        answer_duplicate(p, a, &dup);
                        goto out;
                }
        }
        int64_t count = (int64_t)check.header.last_offset_delta + 1;
        int64_t max_ts = is_log_append_time ? now_ms : check.max_timestamp_ms;
        record_batch_assign(bytes, len, p->log_end_offset, p->leader_epoch, is_log_append_time, max_ts);
        uint32_t position;
        int rc = reserve_write(p, bytes, len, now_ms, &position);
        if (rc < 0) {
                arena_free(&a->scratch);
                /* Nothing written, nothing recorded: the segment is as it
                 * was (segment.h), so a full disk leaves it writable. */
                if (is_disk_full(rc)) {
                        refuse_disk_full(p, a, rc);
                        goto out;
                }
                mark_failed(p, "appending to the log", rc);
                fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The broker could not write to the log; see its log.");
                goto out;
        }
        struct segment_handle *h = active(p);
        a->base_offset = p->log_end_offset;
        a->end_offset = p->log_end_offset + count;
        if (is_log_append_time)
                a->log_append_time_ms = now_ms;
        p->log_end_offset = a->end_offset;
        p->unflushed_count += count;
        if (has_producer) {
                struct record_batch_header written = check.header;
                written.base_offset = a->base_offset;
                written.max_timestamp_ms = max_ts;
                /* check_producer or check_marker reserved the entry (and
                 * room for an aborted transaction): this cannot fail. A
                 * retry arriving while the write is in flight is found. */
                struct producer_completed_txn done;
                int16_t control_type = is_marker && a->marker->is_commit ? 1 : 0;
                int32_t coordinator_epoch = is_marker ? a->marker->coordinator_epoch : -1;
                /* Kept to undo the update if the write meets a full disk. */
                a->producer_before = *producer_state_find(&p->producers, written.producer_id);
                a->has_producer_update = true;
                int urc = producer_state_update(&p->producers, &written, control_type, coordinator_epoch, &done);
                assert(urc >= 0);
                if (urc == 1)
                        on_txn_completed(p, &done);
                else if (record_batch_is_transactional(&written) && !is_marker)
                        on_txn_data(p, &written);
        }
        a->write_segment = h;
        a->write_bytes = bytes;
        a->write_len = len;
        a->write_position = position;
        h->writes_in_flight++;
        p->writes_in_flight++;
        writes_push(p, a);
        /* a may complete from inside (a synchronous log_io); it is not
         * touched after. */
        rc = p->io.ops->write(p->io.ctx, h->fd, bytes, len, position, on_write_done, a);
        if (rc < 0)
                on_write_done(a, rc);
        if (p->roll_sync_offset >= 0)
                start_roll_sync(p);
out:
        partition_leave(p);
}

/* ---- reads ---- */

/*
 * Kafka's collectAbortedTransactions: those ending at or after the fetch
 * offset and starting below the upper bound. The list is in marker order,
 * so the first candidate is found by bisection.
 */
static int collect_aborted(struct partition *p, struct partition_read *r, int64_t upper_offset)
{
        uint32_t lo = 0, hi = p->aborted_count;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (p->aborted[mid].last_offset < r->fetch_offset)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        uint32_t n = 0;
        for (uint32_t i = lo; i < p->aborted_count; i++)
                n += p->aborted[i].first_offset < upper_offset;
        if (n == 0)
                return 0;
        r->aborted = malloc(n * sizeof(*r->aborted));
        if (!r->aborted)
                return -ENOMEM;
        for (uint32_t i = lo; i < p->aborted_count; i++)
                if (p->aborted[i].first_offset < upper_offset)
                        r->aborted[r->aborted_count++] = p->aborted[i];
        return 0;
}

void partition_read(struct partition *p, struct partition_read *r)
{
        r->error_code = KAFKA_NONE;
        r->high_watermark = p->high_watermark;
        r->last_stable_offset = partition_last_stable_offset(p);
        r->log_start_offset = p->log_start_offset;
        r->fd = -1;
        r->len = 0;
        r->segment = NULL;
        r->aborted = NULL;
        r->aborted_count = 0;
        if (r->fetch_offset < p->log_start_offset || r->fetch_offset > p->high_watermark) {
                r->error_code = KAFKA_OFFSET_OUT_OF_RANGE;
                return;
        }
        /* read_committed reads stop at the last stable offset. */
        int64_t end_offset = r->is_read_committed ? r->last_stable_offset : p->high_watermark;
        if (r->fetch_offset >= end_offset)
                return;
        if (r->is_read_committed && collect_aborted(p, r, end_offset) < 0) {
                /* Without the list the client would show aborted records:
                 * send nothing this time; it fetches again. */
                return;
        }
        struct segment_handle *h = find_segment(p, r->fetch_offset);
        /* A fetch offset may fall in a segment's tail past its last batch
         * (after a compaction, say); then the data starts in the next one. */
        struct segment_batch_location loc;
        while (segment_find_offset(&h->seg, r->fetch_offset, &loc) != 0) {
                struct segment_handle *next = NULL;
                for (uint32_t i = 0; i + 1 < p->seg_count; i++)
                        if (p->segs[i] == h)
                                next = p->segs[i + 1];
                if (!next)
                        return;
                h = next;
        }
        uint64_t pos = loc.position_bytes;
        uint32_t first_bytes = loc.size_bytes;
        uint64_t end_bytes = h->written_bytes;
        if (end_offset < p->high_watermark) {
                /* The batch holding the LSO starts the part not to send:
                 * it is the first batch of the oldest open transaction. */
                struct segment_batch_location stop;
                if (segment_find_offset(&h->seg, end_offset, &stop) == 0 && stop.position_bytes < end_bytes)
                        end_bytes = stop.position_bytes;
        }
        if (pos >= end_bytes)
                return;
        uint64_t avail = end_bytes - pos;
        uint64_t len = avail < (uint64_t)(r->max_bytes > 0 ? r->max_bytes : 0) ? avail : (uint64_t)r->max_bytes;
        if (len < first_bytes && r->is_first_batch_whole)
                len = first_bytes;      /* Kafka returns a first batch whole, whatever the limit */
        if (len == 0)
                return;
        atomic_fetch_add(&h->refs, 1);
        r->segment = h;
        r->fd = h->fd;
        r->file_position = pos;
        r->len = (uint32_t)len;
}

void partition_read_release(struct partition_read *r)
{
        free(r->aborted);
        r->aborted = NULL;
        r->aborted_count = 0;
        if (!r->segment)
                return;
        handle_put(r->segment);
        r->segment = NULL;
        r->fd = -1;
}

/* ---- offsets by time ---- */

/*
 * Record precision inside one batch, as Kafka answers ListOffsets: the first
 * record at or after target_ms (is_max false), or the first record carrying
 * the batch's max timestamp (is_max true). Compressed batches are
 * decompressed for it. Returns 0 with *offset_out and *ts_out, -ENOENT when
 * no record qualifies, or another -errno.
 */
static int find_record_in_batch(struct partition *p, struct segment_handle *h, int64_t batch_offset,
                                bool is_max, int64_t target_ms, int64_t *offset_out, int64_t *ts_out)
{
        struct segment_batch_location loc;
        int rc = segment_find_offset(&h->seg, batch_offset, &loc);
        if (rc < 0)
                return rc;
        uint8_t *buf = malloc(loc.size_bytes);
        if (!buf)
                return -ENOMEM;
        struct arena scratch;
        arena_init(&scratch, convert_arena_bytes(&p->config));
        size_t got = 0;
        rc = segment_read(&h->seg, loc.position_bytes, buf, loc.size_bytes, &got);
        if (rc < 0 || got != loc.size_bytes) {
                rc = rc < 0 ? rc : -EIO;
                goto out;
        }
        struct record_iter it;
        struct record_batch_header hdr;
        if (record_batch_parse_header(buf, got, &hdr) != RECORD_BATCH_FRAME_OK) {
                rc = -EBADMSG;
                goto out;
        }
        int codec = record_batch_codec(&hdr);
        if (codec == RECORD_BATCH_CODEC_NONE) {
                if (record_iter_init(&it, buf, got) != KAFKA_NONE) {
                        rc = -EBADMSG;
                        goto out;
                }
        } else {
                uint8_t *records;
                size_t records_len;
                rc = compress_decode((enum compress_codec)codec, buf + RECORD_BATCH_HEADER_BYTES,
                                     got - RECORD_BATCH_HEADER_BYTES, convert_records_bytes_max(&p->config),
                                     &scratch, &records, &records_len);
                if (rc < 0)
                        goto out;
                record_iter_init_records(&it, &hdr, records, records_len);
        }
        rc = -ENOENT;
        struct record_view rec;
        while (record_iter_next(&it, &rec)) {
                /* LogAppendTime batches carry the time in the header only. */
                int64_t ts = record_batch_is_log_append_time(&hdr) ? hdr.max_timestamp_ms : rec.timestamp_ms;
                if (!is_max && rec.offset < p->log_start_offset)
                        continue;
                if (is_max ? ts == hdr.max_timestamp_ms : ts >= target_ms) {
                        *offset_out = rec.offset;
                        *ts_out = ts;
                        rc = 0;
                        break;
                }
        }
out:
        arena_free(&scratch);
        free(buf);
        return rc;
}

void partition_offset_for_time(struct partition *p, int64_t timestamp_ms, int64_t *offset_out,
                               int64_t *timestamp_out)
{
        *offset_out = -1;
        *timestamp_out = -1;
        for (uint32_t i = 0; i < p->seg_count; i++) {
                struct segment_handle *h = p->segs[i];
                if (h->seg.max_timestamp_ms < timestamp_ms)
                        continue;
                struct segment_timestamp_hit hit;
                if (segment_find_timestamp(&h->seg, timestamp_ms, p->log_start_offset, &hit) != 0 ||
                    hit.offset >= p->high_watermark)
                        continue;
                int64_t off = hit.offset, ts = hit.timestamp_ms;
                /* A compressed batch answered for its first offset: look inside. */
                if (hit.is_batch_precision &&
                    find_record_in_batch(p, h, hit.offset, false, timestamp_ms, &off, &ts) != 0)
                        continue;
                *offset_out = off;
                *timestamp_out = ts;
                return;
        }
}

/*
 * Kafka (UnifiedLog.fetchOffsetByTimestamp, MAX_TIMESTAMP) takes the segment
 * with the largest timestamp, the first of equals, and answers its record
 * carrying that timestamp, whatever the log start offset: after DeleteRecords
 * the answer may lie below it while its segment is still there (Kafka 4.4
 * answers offset 0 for a partition whose records were all deleted from its
 * active segment). Skipping such a segment answered -1, "no records", for a
 * partition that had some.
 */
void partition_max_timestamp(struct partition *p, int64_t *offset_out, int64_t *timestamp_out)
{
        *offset_out = -1;
        *timestamp_out = -1;
        struct segment_handle *best = NULL;
        for (uint32_t i = 0; i < p->seg_count; i++) {
                const struct segment *seg = &p->segs[i]->seg;
                if (seg->max_timestamp_ms > *timestamp_out) {
                        *offset_out = seg->offset_of_max_timestamp;
                        *timestamp_out = seg->max_timestamp_ms;
                        best = p->segs[i];
                }
        }
        /* The segment knows the batch; Kafka answers the record (KIP-734). */
        int64_t off, ts;
        if (best && find_record_in_batch(p, best, *offset_out, true, 0, &off, &ts) == 0)
                *offset_out = off;
}

/* ---- maintenance ---- */

/* Kafka's LogSegment.largestTimestamp: the largest record timestamp, or
 * the .log's last modification when no batch had one. */
static int64_t segment_largest_timestamp_ms(const struct segment_handle *h)
{
        struct stat st;

        if (h->seg.max_timestamp_ms >= 0)
                return h->seg.max_timestamp_ms;
        if (fstat(h->fd, &st) < 0)
                return h->created_ms;
        return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Kafka's deletableSegments guard for segment i: it must end at or below
 * the high watermark, and an empty active segment never goes. */
static bool is_segment_deletable(const struct partition *p, uint32_t i)
{
        bool is_last = i + 1 == p->seg_count;
        int64_t upper = is_last ? p->log_end_offset : p->segs[i + 1]->base_offset;
        return p->high_watermark >= upper && !(is_last && p->segs[i]->written_bytes == 0);
}

/* Deletes the n oldest segments, rolling first when that is all of them,
 * and moves the log start offset to the first one left. Returns n or -errno. */
static int delete_oldest_segments(struct partition *p, uint32_t n, const char *why, int64_t now_ms)
{
        if (n == 0)
                return 0;
        assert(n <= p->seg_count);
        if (n == p->seg_count) {
                int rc = roll(p, 0, now_ms, true, false);
                if (rc < 0 && is_disk_full(rc)) {
                        /* The log is as it was; the next check tries again
                         * (and a full disk is when retention matters most). */
                        log_warn("%s: cannot roll a new segment to delete the old ones: %s; retention tries "
                                 "again at its next check", p->name, strerror(-rc));
                        return rc;
                }
                if (rc < 0) {
                        mark_failed(p, "rolling the log for retention", rc);
                        return rc;
                }
                /* No sync of what is about to be deleted. */
                assert(rc == 1 && p->seg_count == n + 1);
        }
        for (uint32_t i = 0; i < n; i++) {
                struct segment_handle *h = p->segs[i];
                log_info("%s: deleting segment %020lld (%s)", p->name, (long long)h->base_offset, why);
                handle_delete(p, h);
        }
        memmove(p->segs, p->segs + n, (p->seg_count - n) * sizeof(p->segs[0]));
        p->seg_count -= n;
        /* The snapshots of deleted segments go with them. */
        delete_snapshots_below(p, p->segs[0]->base_offset);
        if (p->log_start_offset < p->segs[0]->base_offset) {
                p->log_start_offset = p->segs[0]->base_offset;
                on_log_start_moved(p);
        }
        partition_check(p);
        return (int)n;
}

/* Segments wholly below the log start offset (DeleteRecords moved it). */
static int delete_below_log_start(struct partition *p, int64_t now_ms)
{
        uint32_t n = 0;
        while (n + 1 < p->seg_count && is_segment_deletable(p, n) && p->segs[n + 1]->base_offset <= p->log_start_offset)
                n++;
        return delete_oldest_segments(p, n, "below the log start offset", now_ms);
}

static int delete_over_retention_bytes(struct partition *p, int64_t now_ms)
{
        int64_t total = 0;
        uint32_t n = 0;

        if (p->config.retention_bytes < 0)
                return 0;
        for (uint32_t i = 0; i < p->seg_count; i++)
                total += (int64_t)p->segs[i]->written_bytes;
        if (total < p->config.retention_bytes)
                return 0;
        int64_t over = total - p->config.retention_bytes;
        while (n < p->seg_count && is_segment_deletable(p, n) && over - (int64_t)p->segs[n]->written_bytes >= 0) {
                over -= (int64_t)p->segs[n]->written_bytes;
                n++;
        }
        return delete_oldest_segments(p, n, "retention.bytes", now_ms);
}

static int delete_past_retention_ms(struct partition *p, int64_t now_ms)
{
        uint32_t n = 0;

        if (p->config.retention_ms < 0)
                return 0;
        while (n < p->seg_count && is_segment_deletable(p, n) &&
               now_ms - segment_largest_timestamp_ms(p->segs[n]) > p->config.retention_ms)
                n++;
        return delete_oldest_segments(p, n, "retention.ms", now_ms);
}

int partition_enforce_retention(struct partition *p, int64_t now_ms)
{
        int total = 0, rc;

        assert(!p->is_closing);
        if (p->is_failed)
                return 0;
        partition_enter(p);
        rc = delete_below_log_start(p, now_ms);
        if (rc > 0)
                total += rc;
        if (rc >= 0 && p->config.is_cleanup_delete) {
                rc = delete_over_retention_bytes(p, now_ms);
                if (rc > 0)
                        total += rc;
        }
        if (rc >= 0 && p->config.is_cleanup_delete) {
                rc = delete_past_retention_ms(p, now_ms);
                if (rc > 0)
                        total += rc;
        }
        partition_leave(p);
        return total;
}

int partition_delete_records(struct partition *p, int64_t offset, int64_t *low_watermark_out)
{
        int16_t code = KAFKA_NONE;

        assert(!p->is_closing);
        partition_enter(p);
        if (offset == -1)
                offset = p->high_watermark;
        if (p->is_failed)
                code = KAFKA_KAFKA_STORAGE_ERROR;
        else if (!p->config.is_cleanup_delete)
                code = KAFKA_POLICY_VIOLATION;  /* Kafka: "can not be deleted due to the configured policy" */
        else if (offset < 0 || offset > p->high_watermark)
                code = KAFKA_OFFSET_OUT_OF_RANGE;
        if (code == KAFKA_NONE && offset > p->log_start_offset) {
                p->log_start_offset = offset;
                on_log_start_moved(p);
                /* Kafka leaves the segments to the next retention check;
                 * they go now, readers in flight keeping theirs. */
                if (delete_below_log_start(p, p->io.ops->now_ms(p->io.ctx)) < 0)
                        code = KAFKA_KAFKA_STORAGE_ERROR;
        }
        *low_watermark_out = p->log_start_offset;
        partition_check(p);
        partition_leave(p);
        return code;
}

void partition_maybe_flush(struct partition *p, int64_t now_ms)
{
        if (p->is_failed || p->high_watermark == p->synced_offset || p->is_syncing)
                return;
        if (now_ms - p->last_flush_ms < p->config.flush_ms)
                return;
        partition_enter(p);
        start_sync(p, p->high_watermark);
        partition_leave(p);
}

void partition_flush(struct partition *p)
{
        if (p->is_failed)
                return;
        partition_enter(p);
        if (p->high_watermark > p->synced_offset)
                start_sync(p, p->high_watermark);
        /* Writes in flight are synced once they complete (drain_writes). */
        if (p->writes_in_flight > 0)
                p->is_flush_wanted = true;
        partition_leave(p);
}

/* ---- compaction (cleaner.h): choosing, preparing, swapping ---- */

/* Kafka's LogSegment.lastModified: the .log's mtime. */
static int64_t handle_last_modified_ms(const struct segment_handle *h)
{
        struct stat st;
        if (fstat(h->fd, &st) < 0)
                return h->created_ms;
        return (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/* Kafka's getFirstBatchTimestamp: the first batch's max timestamp, -1
 * when none; read once per segment. */
static int64_t handle_first_batch_timestamp_ms(struct segment_handle *h)
{
        if (h->first_batch_timestamp_ms != INT64_MIN)
                return h->first_batch_timestamp_ms;
        uint8_t buf[RECORD_BATCH_HEADER_BYTES];
        size_t got = 0;
        struct record_batch_header hdr;
        int64_t ts = -1;
        if (h->written_bytes >= RECORD_BATCH_HEADER_BYTES && segment_read(&h->seg, 0, buf, sizeof(buf), &got) == 0 &&
            record_batch_parse_header(buf, got, &hdr) == RECORD_BATCH_FRAME_OK)
                ts = hdr.max_timestamp_ms;
        h->first_batch_timestamp_ms = ts;
        return ts;
}

/* The first dirty offset: the checkpoint's, kept in memory once read,
 * reset to the log start when it lies outside the log, as Kafka's
 * cleanableOffsets does. */
static int64_t cleaner_first_dirty(struct partition *p)
{
        if (p->cleaner_first_dirty_offset < 0) {
                int64_t offset = -1;
                if (p->partition_index < 0 ||
                    cleaner_checkpoint_read(p->dir->parent_fd, p->topic, p->partition_index, &offset) < 0)
                        offset = 0;     /* never cleaned: from the log start */
                p->cleaner_first_dirty_offset = offset;
        }
        /* Out of range, the offset is reset for good, not only for this
         * call: a cached offset past a short log would count [log start,
         * it) as cleaned once the log grows past it, and that range never
         * enters the offset map while its tombstones get horizons. */
        if (p->cleaner_first_dirty_offset < p->log_start_offset ||
            p->cleaner_first_dirty_offset > p->log_end_offset)
                p->cleaner_first_dirty_offset = p->log_start_offset;
        return p->cleaner_first_dirty_offset;
}

/*
 * Kafka's cleanableOffsets and calculateCleanableBytes: the cleanable
 * section is [first dirty, the base of the segment holding the first
 * uncleanable offset), the first uncleanable offset being the least of the
 * last stable offset (itself at most the high watermark), the active
 * segment's base and the base of the first dirty segment younger than
 * min.compaction.lag.ms. Returns the index of that first uncleanable
 * segment.
 */
static uint32_t cleaner_offsets(struct partition *p, int64_t now_ms, int64_t *first_dirty_out,
                                struct cleaner_candidate *c)
{
        int64_t first_dirty = cleaner_first_dirty(p);
        int64_t uncleanable = partition_last_stable_offset(p);
        if (active(p)->base_offset < uncleanable)
                uncleanable = active(p)->base_offset;
        int64_t min_lag_ms = p->config.min_compaction_lag_ms > 0 ? p->config.min_compaction_lag_ms : 0;
        int64_t max_lag_ms = p->config.max_compaction_lag_ms > 0 ? p->config.max_compaction_lag_ms : 0;
        int64_t earliest_dirty_ts = INT64_MAX;
        for (uint32_t i = find_segment_index(p, first_dirty); i + 1 < p->seg_count; i++) {
                struct segment_handle *h = p->segs[i];
                if (min_lag_ms > 0 && segment_largest_timestamp_ms(h) > now_ms - min_lag_ms &&
                    h->base_offset < uncleanable)
                        uncleanable = h->base_offset;
                int64_t ts = handle_first_batch_timestamp_ms(h);
                if (ts > 0 && ts < earliest_dirty_ts)
                        earliest_dirty_ts = ts;
        }
        if (uncleanable < first_dirty)
                uncleanable = first_dirty;
        uint32_t u = find_segment_index(p, uncleanable);
        if (u + 1 >= p->seg_count || p->segs[u]->base_offset > uncleanable)
                u = p->seg_count - 1;
        memset(c, 0, sizeof(*c));
        for (uint32_t i = 0; i < p->seg_count && p->segs[i]->base_offset < first_dirty; i++)
                c->clean_bytes += (int64_t)p->segs[i]->written_bytes;
        int64_t from = first_dirty < p->segs[u]->base_offset ? first_dirty : p->segs[u]->base_offset;
        for (uint32_t i = find_segment_index(p, from); i < u; i++)
                c->cleanable_bytes += (int64_t)p->segs[i]->written_bytes;
        /* Kafka's maxCompactionDelay: a dirty segment older than the lag. */
        c->is_compaction_lag_exceeded = max_lag_ms < now_ms && earliest_dirty_ts < now_ms - max_lag_ms;
        c->min_cleanable_ratio = p->config.min_cleanable_dirty_ratio;
        *first_dirty_out = first_dirty;
        return u;
}

/* A cleaning that fails (a full disk, say) is tried again at every
 * backoff: one line every few seconds for the whole broker. */
#define PARTITION_CLEANER_LOG_INTERVAL_MS 5000
static struct log_limit cleaner_log_limit;

bool partition_cleaner_check(struct partition *p, int64_t now_ms, double *ratio_out)
{
        *ratio_out = 0;
        if (!p->config.is_cleanup_compact || p->is_failed || p->is_closing || p->cleaning || p->is_disk_full ||
            p->is_uncleanable)
                return false;
        struct cleaner_candidate c;
        int64_t first_dirty;
        uint32_t u = cleaner_offsets(p, now_ms, &first_dirty, &c);
        *ratio_out = cleaner_dirty_ratio(&c);
        return u > 0 && first_dirty < p->segs[u]->base_offset && cleaner_is_due(&c);
}

static int cmp_aborted_first(const void *a, const void *b)
{
        const struct txn_aborted *x = a, *y = b;
        return x->first_offset < y->first_offset ? -1 : x->first_offset > y->first_offset;
}

static int cmp_producer_id(const void *a, const void *b)
{
        const struct cleaner_producer *x = a, *y = b;
        return x->producer_id < y->producer_id ? -1 : x->producer_id > y->producer_id;
}

static void cleaner_job_free(struct cleaner_job *job)
{
        for (uint32_t i = 0; i < job->source_count; i++)
                if (job->sources[i].handle)
                        handle_put(job->sources[i].handle);
        cleaner_job_free_results(job);
        if (job->dir)
                logdir_ref_put((struct logdir_ref *)job->dir);
        free(job->sources);
        free(job->aborted);
        free(job->producers);
        free(job);
}

int partition_cleaner_prepare(struct partition *p, int64_t now_ms, const struct cleaner_limits *limits,
                              struct cleaner_job **out)
{
        *out = NULL;
        double ratio;
        if (!partition_cleaner_check(p, now_ms, &ratio))
                return 0;
        struct cleaner_candidate c;
        int64_t first_dirty;
        uint32_t u = cleaner_offsets(p, now_ms, &first_dirty, &c);
        for (uint32_t i = 0; i < u; i++)
                if (p->segs[i]->writes_in_flight > 0 || p->segs[i]->is_seal_pending)
                        return 0;       /* a roll still settling: next time */
        struct cleaner_job *job = calloc(1, sizeof(*job));
        if (!job)
                return -ENOMEM;
        job->sources = calloc(u, sizeof(*job->sources));
        job->aborted = calloc(p->aborted_count ? p->aborted_count : 1, sizeof(*job->aborted));
        uint32_t producer_count = producer_state_count(&p->producers);
        job->producers = calloc(producer_count ? producer_count : 1, sizeof(*job->producers));
        if (!job->sources || !job->aborted || !job->producers) {
                cleaner_job_free(job);
                return -ENOMEM;
        }
        logdir_ref_get(p->dir);
        job->dir = p->dir;
        snprintf(job->name, sizeof(job->name), "%s", p->name);
        for (uint32_t i = 0; i < u; i++) {
                struct segment_handle *h = p->segs[i];
                handle_get(h);
                job->sources[i] = (struct cleaner_source){
                        .handle = h,
                        .fd = h->fd,
                        .base_offset = h->base_offset,
                        .end_offset = p->segs[i + 1]->base_offset,
                        .size_bytes = (uint32_t)h->written_bytes,
                        .offset_index_bytes = offset_index_size_bytes(&h->seg.offset_index),
                        .time_index_bytes = time_index_size_bytes(&h->seg.time_index),
                        .last_modified_ms = handle_last_modified_ms(h),
                };
                job->source_count++;
        }
        for (uint32_t i = 0; i < p->aborted_count; i++)
                job->aborted[i] = (struct txn_aborted){ p->aborted[i].producer_id, p->aborted[i].first_offset,
                                                        p->aborted[i].last_offset, p->aborted[i].last_stable_offset };
        job->aborted_count = p->aborted_count;
        qsort(job->aborted, job->aborted_count, sizeof(*job->aborted), cmp_aborted_first);
        uint32_t cursor = 0;
        for (const struct producer_entry *e; (e = producer_state_next(&p->producers, &cursor));) {
                assert(job->producer_count < producer_count);
                int64_t last = -1;
                if (e->batch_count > 0)
                        last = e->batches[(e->batch_head + e->batch_count - 1) % PRODUCER_BATCHES_KEPT].last_offset;
                job->producers[job->producer_count++] = (struct cleaner_producer){ e->producer_id, last, e->epoch };
        }
        qsort(job->producers, job->producer_count, sizeof(*job->producers), cmp_producer_id);
        job->first_dirty_offset = first_dirty;
        job->first_uncleanable_offset = p->segs[u]->base_offset;
        job->now_ms = now_ms;
        job->delete_retention_ms = p->config.delete_retention_ms;
        job->segment_bytes_max = (uint32_t)p->config.segment_bytes;
        job->index_bytes_max = (uint32_t)p->config.segment_index_bytes;
        job->index_interval_bytes = (uint32_t)p->config.index_interval_bytes;
        job->max_message_bytes = (uint32_t)p->config.max_message_bytes;
        job->limits = *limits;
        atomic_init(&job->is_cancelled, false);
        job->prepared_log_end_offset = p->log_end_offset;
        job->prepared_rewind_count = p->rewind_count;
        p->cleaning = job;
        *out = job;
        return 1;
}

/* The aborted transactions of the cleaned range [from, to) become those
 * the cleaned .txnindex files list (Kafka rebuilds the index so). kept
 * lists the whole job's: groups past `to` may not have been swapped, and
 * DeleteRecords may have moved the log start into the range meanwhile,
 * dropping the entries below it from memory; only those in [the later of
 * from and the log start, to) replace the range's. */
static void splice_aborted(struct partition *p, int64_t from, int64_t to, const struct txn_aborted *kept,
                           uint32_t kept_count)
{
        int64_t start = from > p->log_start_offset ? from : p->log_start_offset;
        uint32_t lo = 0, hi;
        while (lo < p->aborted_count && p->aborted[lo].last_offset < start)
                lo++;
        hi = lo;
        while (hi < p->aborted_count && p->aborted[hi].last_offset < to)
                hi++;
        uint32_t kept_in_range = 0;
        for (uint32_t k = 0; k < kept_count; k++)
                kept_in_range += kept[k].last_offset >= start && kept[k].last_offset < to;
        /* Those kept were in memory at prepare and are at or past the log
         * start, so still there: a subset of those removed, no room needed. */
        assert(kept_in_range <= hi - lo);
        if (hi == lo)
                return;
        uint32_t n = 0;
        for (uint32_t k = 0; k < kept_count && n < hi - lo; k++)
                if (kept[k].last_offset >= start && kept[k].last_offset < to)
                        p->aborted[lo + n++] = (struct partition_aborted_txn){
                                kept[k].producer_id, kept[k].first_offset, kept[k].last_offset,
                                kept[k].last_stable_offset,
                        };
        memmove(p->aborted + lo + n, p->aborted + hi, (p->aborted_count - hi) * sizeof(*p->aborted));
        p->aborted_count -= hi - lo - n;
}

/* The sources of a job are still the partition's segments, in place:
 * returns the index of the first, or -1. */
static int64_t find_sources(const struct partition *p, const struct cleaner_job *job, uint32_t used)
{
        for (uint32_t i = 0; i < p->seg_count; i++) {
                if (p->segs[i] != job->sources[0].handle)
                        continue;
                if (i + used >= p->seg_count)
                        return -1;      /* the active segment is never replaced */
                for (uint32_t k = 0; k < used; k++)
                        if (p->segs[i + k] != job->sources[k].handle)
                                return -1;
                return i;
        }
        return -1;
}

/*
 * Swaps the groups in: (1) .cleaned -> .swap, the commit of each group,
 * in order, as far as they go, each made durable (a directory sync)
 * before the next, so that a power loss never keeps a later group's
 * commit without an earlier one's (recovery deletes [the first swap's
 * base, the last swap's end): a missing earlier swap would leave its old
 * segments beside later ones whose tombstones are gone); the later phases
 * take one directory sync each over every group: (2) the old files of
 * the committed groups removed;
 * (3) .swap -> final names; (4) the new handles in place of the old.
 * Returns the groups swapped; *rc_out gets the first error. A failure
 * after a commit leaves the partition failed (reads go on from the old
 * descriptors) until a restart finishes the swap (cleaner_recover_dir).
 */
static uint32_t swap_groups(struct partition *p, const struct cleaner_job *job, uint32_t at, int *rc_out)
{
        uint32_t committed = 0;
        int rc = 0;
        while (committed < job->group_count && rc == 0) {
                rc = cleaner_commit_group(p->dir, &job->groups[committed], true);
                if (rc == 0)
                        committed++;
        }
        *rc_out = rc;           /* a group that could not commit: it and those after it are not swapped */
        if (committed == 0)
                return 0;       /* nothing replaced */
        int step_rc = 0;        /* each commit was synced */
        /* From here the old files' names are going, or go to the new
         * segments: the old handles must never write or delete by name. */
        uint32_t seg = at;
        for (uint32_t i = 0; i < committed; i++) {
                const struct cleaner_group *g = &job->groups[i];
                for (uint32_t k = 0; k < g->count; k++) {
                        struct segment_handle *old = p->segs[seg + k];
                        assert(old == job->sources[g->first + k].handle);
                        old->is_deleted = true;
                        old->dir_fd = -1;
                        if (step_rc == 0)
                                cleaner_unlink_segment(p->dir, old->base_offset);
                }
                seg += g->count;
        }
        if (step_rc == 0)
                step_rc = logdir_ref_fsync(p->dir);
        for (uint32_t i = 0; i < committed && step_rc == 0; i++)
                step_rc = cleaner_finish_group(p->dir, job->groups[i].base_offset, false);
        if (step_rc == 0)
                step_rc = logdir_ref_fsync(p->dir);
        uint32_t swapped = 0;
        for (; swapped < committed && step_rc == 0; swapped++) {
                const struct cleaner_group *g = &job->groups[swapped];
                struct segment_handle *h;
                step_rc = open_handle(p, g->base_offset, false, p->io.ops->now_ms(p->io.ctx), &h);
                if (step_rc < 0)
                        break;
                /* The groups before this one are one segment each now. */
                uint32_t pos = at + swapped;
                for (uint32_t k = 0; k < g->count; k++)
                        handle_put(p->segs[pos + k]);
                p->segs[pos] = h;
                memmove(p->segs + pos + 1, p->segs + pos + g->count,
                        (p->seg_count - pos - g->count) * sizeof(p->segs[0]));
                p->seg_count -= g->count - 1;
        }
        if (step_rc < 0) {
                log_error("%s: swapping in cleaned segments failed: %s; the partition refuses writes until the "
                          "broker restarts, which finishes the swap", p->name, strerror(-step_rc));
                p->is_failed = true;
                *rc_out = step_rc;
        }
        return swapped;
}

void partition_cleaner_finish(struct partition *p, struct cleaner_job *job)
{
        assert(p->cleaning == job);
        partition_enter(p);
        p->cleaning = NULL;
        uint32_t used = 0;
        for (uint32_t i = 0; i < job->group_count; i++)
                used += job->groups[i].count;
        bool is_swappable = job->result == 0 && job->group_count > 0 && !p->is_failed && !p->is_closing &&
                            p->rewind_count == job->prepared_rewind_count &&
                            p->high_watermark >= job->prepared_log_end_offset;
        int64_t at = is_swappable ? find_sources(p, job, used) : -1;
        unsigned long long suppressed;
        /* Kafka marks a partition whose cleaning threw uncleanable until a
         * restart rather than failing on it every backoff; a full disk is
         * the exception: it passes, and the disk-full state holds the
         * cleaner back meanwhile. */
        bool is_transient = job->result == -ENOSPC || job->result == -EDQUOT || job->result == -ENOMEM;
        if (job->result < 0 && job->result != -ECANCELED) {
                if (!is_transient)
                        p->is_uncleanable = true;
                if (log_limit_allow(&cleaner_log_limit, PARTITION_CLEANER_LOG_INTERVAL_MS, &suppressed))
                        log_warn("%s: cleaning failed: %s; %s; %llu such lines suppressed", p->name,
                                 strerror(-job->result),
                                 is_transient ? "it is tried again after log.cleaner.backoff.ms"
                                              : "the partition is not cleaned again until the broker restarts",
                                 suppressed);
        }
        if (at < 0) {
                cleaner_discard_files(job);
                cleaner_job_free(job);
                partition_leave(p);
                return;
        }
        uint64_t bytes_before = 0;
        for (uint32_t i = 0; i < used; i++)
                bytes_before += job->sources[i].size_bytes;
        struct timespec swap_start, swap_end;
        clock_gettime(CLOCK_MONOTONIC, &swap_start);
        int rc = 0;
        uint32_t swapped = swap_groups(p, job, (uint32_t)at, &rc);
        if (swapped < job->group_count)
                cleaner_discard_files(job);     /* the groups not committed; .swap files stay for recovery */
        if (swapped > 0) {
                /* The aborted transactions of what was swapped become what
                 * its .txnindex files list: an entry left for a marker the
                 * cleaner removed would make the producer's later
                 * transactions look aborted to the next cleaning. */
                uint32_t swapped_sources = 0;
                for (uint32_t i = 0; i < swapped; i++)
                        swapped_sources += job->groups[i].count;
                int64_t to = swapped_sources < job->source_count ? job->sources[swapped_sources].base_offset
                                                                 : job->first_uncleanable_offset;
                splice_aborted(p, job->sources[0].base_offset, to, job->kept_aborted, job->kept_aborted_count);
        }
        if (rc == 0) {
                p->cleaner_first_dirty_offset = job->end_offset;
                if (p->partition_index >= 0) {
                        int crc = cleaner_checkpoint_update(p->dir->parent_fd, p->topic, p->partition_index,
                                                            job->end_offset);
                        if (crc < 0)
                                log_warn("%s: cannot write %s: %s; the next start cleans from an older offset",
                                         p->name, CLEANER_CHECKPOINT_FILE, strerror(-crc));
                }
                clock_gettime(CLOCK_MONOTONIC, &swap_end);
                long long swap_us = (long long)(swap_end.tv_sec - swap_start.tv_sec) * 1000000 +
                                    (swap_end.tv_nsec - swap_start.tv_nsec) / 1000;
                log_info("%s: cleaned offsets %lld to %lld (dirty from %lld): %u segment(s) of %llu bytes into "
                         "%u, %llu bytes; %llu of %llu records kept, %llu records mapped, in %lld ms; the swap "
                         "held the partition %lld us", p->name,
                         (long long)job->sources[0].base_offset, (long long)job->end_offset,
                         (long long)job->first_dirty_offset, used, (unsigned long long)bytes_before,
                         job->group_count, (unsigned long long)job->stats.bytes_written,
                         (unsigned long long)job->stats.records_written, (unsigned long long)job->stats.records_read,
                         (unsigned long long)job->stats.map_records, (long long)job->stats.elapsed_ms, swap_us);
        }
        partition_check(p);
        cleaner_job_free(job);
        partition_leave(p);
}

bool partition_is_cleaning(const struct partition *p)
{
        return p->cleaning != NULL;
}
