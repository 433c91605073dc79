/*
 * partition.c - one partition's log on its home thread: the append pipeline
 * (validate, assign offsets, write), the high watermark, the group-commit
 * fdatasync, reads for Fetch, waiters, retention, and recovery at open.
 *
 * Writes go to the page cache with segment_append on the home thread (a
 * memory copy); the fdatasync that makes acks=all durable is the slow part
 * and is submitted through log_io, so the home thread never waits for the
 * disk. Moving the copy itself onto io_uring is a later step.
 *
 * Invariants:
 *   - the high watermark is the log end offset: an append is visible once
 *     segment_append returned, as Kafka's single-replica leader does;
 *   - handle->written_bytes is the .log size covering every append below
 *     the high watermark; reads never go past it;
 *   - `durable` holds, in offset order, appends waiting for an fdatasync;
 *     one sync is in flight at most, covering up to sync_target.
 *
 * A write or sync that fails puts the partition in a failed state: every
 * later append answers KAFKA_STORAGE_ERROR, as Kafka takes a log dir
 * offline on an I/O error, and the operator is told in the log.
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
#include <unistd.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "../protocol/record_batch.h"
#include "segment.h"

#define PARTITION_SEGMENTS_MAX 65536

/* A segment as the partition and its readers see it. */
struct segment_handle {
        struct segment seg;
        int64_t base_offset;
        int fd;
        uint64_t written_bytes;         /* end of the bytes below the high watermark */
        int64_t created_ms;
        atomic_uint refs;               /* the partition's own + reads in flight */
        bool is_deleted;                /* remove the files when the last ref goes */
        int dir_fd;
};

struct partition {
        struct log_io io;
        struct topic_config config;
        bool is_durable_acks;
        bool is_failed;
        int dir_fd;                     /* the partition directory */
        char name[256];

        struct segment_handle **segs;
        uint32_t seg_count;
        uint32_t seg_cap;

        int64_t log_start_offset;
        int64_t log_end_offset;
        int64_t high_watermark;
        int64_t synced_offset;
        int32_t leader_epoch;

        struct partition_append *durable_head, *durable_tail;   /* written, waiting for a sync */
        bool is_syncing;
        int64_t sync_target;
        int sync_outstanding;
        int sync_error;
        int64_t unflushed_count;        /* records since the last sync */
        int64_t last_flush_ms;

        struct partition_waiter *waiters;
};

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

/* Any thread: the last reference closes the segment (and deletes it if asked). */
static void handle_put(struct segment_handle *h)
{
        if (atomic_fetch_sub(&h->refs, 1) != 1)
                return;
        if (h->is_deleted) {
                segment_abandon(&h->seg);
                delete_segment_files(h->dir_fd, h->base_offset);
                close(h->dir_fd);
        } else {
                segment_close(&h->seg);
        }
        free(h);
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
                p->seg_cap = cap;
        }
        struct segment_handle *h = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        struct segment_config sc;
        segment_config_init_default(&sc);
        sc.index_interval_bytes = (uint32_t)p->config.index_interval_bytes;
        sc.index_bytes_max = (uint32_t)p->config.segment_index_bytes;
        int rc = is_new ? segment_create(&h->seg, p->dir_fd, base_offset, &sc)
                        : segment_open(&h->seg, p->dir_fd, base_offset, &sc);
        if (rc < 0) {
                free(h);
                return rc;
        }
        h->base_offset = base_offset;
        h->fd = h->seg.log_fd;
        h->written_bytes = h->seg.size_bytes;
        h->created_ms = now_ms;
        h->dir_fd = p->dir_fd;
        atomic_init(&h->refs, 1);
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

/* The segment holding offset: the last whose base offset is <= offset. */
static struct segment_handle *find_segment(const struct partition *p, int64_t offset)
{
        uint32_t lo = 0, hi = p->seg_count;
        while (hi - lo > 1) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (p->segs[mid]->base_offset <= offset)
                        lo = mid;
                else
                        hi = mid;
        }
        return p->segs[lo];
}

/* ---- opening and recovery ---- */

static int cmp_offsets(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* Base offsets of the .log files in the partition directory, sorted. */
static int list_segments(int dir_fd, int64_t **out, uint32_t *count)
{
        int fd = dup(dir_fd);
        if (fd < 0)
                return -errno;
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
        qsort(v, n, sizeof(*v), cmp_offsets);
        *out = v;
        *count = n;
        return 0;
}

int partition_open(const struct partition_options *o, const struct log_io *io, struct partition **out,
                   char *err, size_t err_bytes)
{
        struct partition *p = calloc(1, sizeof(*p));
        int64_t *bases = NULL;
        uint32_t base_count = 0;
        int rc;
        if (!p) {
                snprintf(err, err_bytes, "out of memory");
                return -ENOMEM;
        }
        p->io = *io;
        p->config = o->config;
        p->is_durable_acks = o->is_durable_acks;
        p->dir_fd = -1;
        snprintf(p->name, sizeof(p->name), "%s", o->dir_name);
        int64_t now_ms = io->ops->now_ms(io->ctx);
        p->last_flush_ms = now_ms;

        if (mkdirat(o->dir_fd, o->dir_name, 0755) < 0 && errno != EEXIST) {
                rc = -errno;
                snprintf(err, err_bytes, "cannot create %s: %s", o->dir_name, strerror(errno));
                goto fail;
        }
        p->dir_fd = openat(o->dir_fd, o->dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (p->dir_fd < 0) {
                rc = -errno;
                snprintf(err, err_bytes, "cannot open %s: %s", o->dir_name, strerror(errno));
                goto fail;
        }
        rc = list_segments(p->dir_fd, &bases, &base_count);
        if (rc < 0) {
                snprintf(err, err_bytes, "cannot list %s: %s", o->dir_name, strerror(-rc));
                goto fail;
        }
        for (uint32_t i = 0; i < base_count; i++) {
                struct segment_handle *h;
                rc = add_segment(p, bases[i], false, now_ms, &h);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot open segment %020lld of %s: %s",
                                 (long long)bases[i], o->dir_name, strerror(-rc));
                        goto fail;
                }
                /* After an unclean stop, segments past the recovery point are
                 * checked batch by batch and cut at the first torn or corrupt
                 * one; the active segment is always checked. */
                bool is_last = i + 1 == base_count;
                bool is_past_recovery = i + 1 < base_count ? bases[i + 1] > o->recovery_point : true;
                if (is_last || (!o->is_clean_shutdown && is_past_recovery)) {
                        struct segment_scan scan;
                        rc = segment_recover(&h->seg, &scan);
                        if (rc < 0) {
                                snprintf(err, err_bytes, "cannot recover segment %020lld of %s: %s",
                                         (long long)bases[i], o->dir_name, strerror(-rc));
                                goto fail;
                        }
                        if (scan.truncated_bytes > 0)
                                log_warn("%s: segment %020lld had %u bytes of torn or corrupt batches at "
                                         "position %u; truncated them", o->dir_name, (long long)bases[i],
                                         scan.truncated_bytes, scan.valid_bytes);
                        h->written_bytes = h->seg.size_bytes;
                }
        }
        if (p->seg_count == 0) {
                struct segment_handle *h;
                rc = add_segment(p, 0, true, now_ms, &h);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot create the first segment of %s: %s", o->dir_name,
                                 strerror(-rc));
                        goto fail;
                }
        }
        p->log_end_offset = active(p)->seg.next_offset;
        p->high_watermark = p->log_end_offset;
        p->synced_offset = p->log_end_offset;
        p->log_start_offset = p->segs[0]->base_offset;
        if (o->log_start_offset > p->log_start_offset && o->log_start_offset <= p->log_end_offset)
                p->log_start_offset = o->log_start_offset;
        free(bases);
        *out = p;
        return 0;
fail:
        free(bases);
        partition_close(p);
        return rc;
}

void partition_close(struct partition *p)
{
        if (!p)
                return;
        assert(!p->is_syncing);
        /* Whoever still waits is told the partition is going. */
        while (p->waiters) {
                struct partition_waiter *w = p->waiters;
                partition_unwait(p, w);
                w->fire(w);
        }
        for (uint32_t i = 0; i < p->seg_count; i++)
                handle_put(p->segs[i]);
        free(p->segs);
        if (p->dir_fd >= 0)
                close(p->dir_fd);
        free(p);
}

void partition_set_config(struct partition *p, const struct topic_config *config)
{
        p->config = *config;
}

int64_t partition_log_start_offset(const struct partition *p) { return p->log_start_offset; }
int64_t partition_log_end_offset(const struct partition *p) { return p->log_end_offset; }
int64_t partition_high_watermark(const struct partition *p) { return p->high_watermark; }
int64_t partition_recovery_point(const struct partition *p) { return p->synced_offset; }
int32_t partition_leader_epoch(const struct partition *p) { return p->leader_epoch; }

/* ---- waiters ---- */

void partition_wait(struct partition *p, struct partition_waiter *w)
{
        assert(!w->is_linked);
        if (p->high_watermark > w->offset || p->is_failed) {
                w->fire(w);
                return;
        }
        w->prev = NULL;
        w->next = p->waiters;
        if (p->waiters)
                p->waiters->prev = w;
        p->waiters = w;
        w->is_linked = true;
}

void partition_unwait(struct partition *p, struct partition_waiter *w)
{
        if (!w->is_linked)
                return;
        if (w->prev)
                w->prev->next = w->next;
        else
                p->waiters = w->next;
        if (w->next)
                w->next->prev = w->prev;
        w->is_linked = false;
}

static void fire_waiters(struct partition *p)
{
        struct partition_waiter *w = p->waiters;
        while (w) {
                struct partition_waiter *next = w->next;
                if (p->high_watermark > w->offset) {
                        partition_unwait(p, w);
                        w->fire(w);
                }
                w = next;
        }
}

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

static void mark_failed(struct partition *p, const char *what, int err)
{
        if (!p->is_failed)
                log_error("%s: %s failed: %s; the partition refuses writes until the broker restarts "
                          "(check the disk)", p->name, what, strerror(-err));
        p->is_failed = true;
}

static void start_sync(struct partition *p);

static void on_sync_done(void *arg, int result)
{
        struct partition *p = arg;
        assert(p->is_syncing && p->sync_outstanding > 0);
        if (result < 0)
                p->sync_error = result;
        if (--p->sync_outstanding > 0)
                return;
        p->is_syncing = false;
        if (p->sync_error < 0) {
                mark_failed(p, "fdatasync", p->sync_error);
                p->sync_error = 0;
        } else {
                p->synced_offset = p->sync_target;
        }
        while (p->durable_head && (p->is_failed || p->durable_head->end_offset <= p->synced_offset)) {
                struct partition_append *a = p->durable_head;
                p->durable_head = a->next;
                if (!p->durable_head)
                        p->durable_tail = NULL;
                if (p->is_failed && a->end_offset > p->synced_offset)
                        a->error_code = KAFKA_KAFKA_STORAGE_ERROR;
                complete(a);
        }
        if (p->durable_head)
                start_sync(p);
}

/* One fdatasync per segment holding bytes past the synced offset. */
static void start_sync(struct partition *p)
{
        if (p->is_syncing || p->is_failed)
                return;
        p->is_syncing = true;
        p->sync_target = p->high_watermark;
        p->sync_outstanding = 1;        /* held until every sync is submitted */
        p->unflushed_count = 0;
        p->last_flush_ms = p->io.ops->now_ms(p->io.ctx);
        struct segment_handle *first = find_segment(p, p->synced_offset);
        for (uint32_t i = 0; i < p->seg_count; i++) {
                struct segment_handle *h = p->segs[i];
                if (h->base_offset < first->base_offset)
                        continue;
                p->sync_outstanding++;
                int rc = p->io.ops->datasync(p->io.ctx, h->fd, on_sync_done, p);
                if (rc < 0)
                        on_sync_done(p, rc);
        }
        on_sync_done(p, 0);
}

/* A new active segment when this batch would not fit, segment.ms passed,
 * or force (the segment's offsets or indexes are full). */
static int roll(struct partition *p, size_t len, int64_t now_ms, bool force)
{
        struct segment_handle *h = active(p);
        bool is_empty = h->seg.size_bytes == 0;
        bool is_full = (uint64_t)h->seg.size_bytes + len > (uint64_t)p->config.segment_bytes ||
                       segment_is_index_full(&h->seg);
        bool is_old = now_ms - h->created_ms >= p->config.segment_ms;
        if (is_empty || (!force && !is_full && !is_old))
                return 0;
        /* Kafka cuts the old segment's indexes to their used size at a roll. */
        int rc = segment_seal(&h->seg);
        if (rc < 0)
                return rc;
        struct segment_handle *n;
        return add_segment(p, p->log_end_offset, true, now_ms, &n);
}

void partition_append(struct partition *p, struct partition_append *a)
{
        a->partition = p;
        a->error_code = KAFKA_NONE;
        a->error_message[0] = '\0';
        a->error_record_index = -1;
        a->log_append_time_ms = -1;
        a->next = NULL;
        if (p->is_failed) {
                fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The partition's log dir had an I/O error.");
                return;
        }
        int64_t now_ms = p->io.ops->now_ms(p->io.ctx);
        bool is_log_append_time = p->config.message_timestamp_type == TOPIC_TIMESTAMP_LOG_APPEND_TIME;
        struct record_batch_policy policy = {
                .is_from_client = true,
                .is_compacted = p->config.is_cleanup_compact,
                .is_log_append_time = is_log_append_time,
                .is_timestamp_checked = !is_log_append_time,
                .now_ms = now_ms,
                .timestamp_before_max_ms = p->config.message_timestamp_before_max_ms,
                .timestamp_after_max_ms = p->config.message_timestamp_after_max_ms,
                .batch_bytes_max = (uint32_t)p->config.max_message_bytes,
        };
        struct record_batch_check check;
        if (record_batch_validate(a->batches, a->len, &policy, &check) != KAFKA_NONE) {
                a->error_record_index = check.record_index;
                fail_append(a, check.error_code, check.reason);
                return;
        }
        int rc = roll(p, a->len, now_ms, false);
        if (rc < 0)
                goto storage_error;
        int64_t count = (int64_t)check.header.last_offset_delta + 1;
        int64_t max_ts = is_log_append_time ? now_ms : check.max_timestamp_ms;
        record_batch_assign(a->batches, a->len, p->log_end_offset, p->leader_epoch, is_log_append_time, max_ts);
        uint32_t position;
        rc = segment_append(&active(p)->seg, a->batches, a->len, &position);
        if (rc == -ERANGE || rc == -ENOSPC || rc == -EFBIG) {
                /* The segment cannot take it (offsets or an index full): roll. */
                rc = roll(p, a->len, now_ms, true);
                if (rc == 0)
                        rc = segment_append(&active(p)->seg, a->batches, a->len, &position);
        }
        if (rc < 0)
                goto storage_error;
        struct segment_handle *h = active(p);
        a->base_offset = p->log_end_offset;
        a->end_offset = p->log_end_offset + count;
        if (is_log_append_time)
                a->log_append_time_ms = now_ms;
        h->written_bytes = h->seg.size_bytes;
        p->log_end_offset = a->end_offset;
        p->high_watermark = a->end_offset;
        p->unflushed_count += count;
        fire_waiters(p);
        if (a->is_durable && p->is_durable_acks) {
                if (p->durable_tail)
                        p->durable_tail->next = a;
                else
                        p->durable_head = a;
                p->durable_tail = a;
                start_sync(p);
        } else {
                if (p->unflushed_count >= p->config.flush_messages)
                        start_sync(p);
                complete(a);
        }
        return;
storage_error:
        mark_failed(p, "appending to the log", rc);
        fail_append(a, KAFKA_KAFKA_STORAGE_ERROR, "The broker could not write to the log; see its log.");
}

/* ---- reads ---- */

void partition_read(struct partition *p, struct partition_read *r)
{
        r->error_code = KAFKA_NONE;
        r->high_watermark = p->high_watermark;
        r->log_start_offset = p->log_start_offset;
        r->fd = -1;
        r->len = 0;
        r->segment = NULL;
        if (r->fetch_offset < p->log_start_offset || r->fetch_offset > p->high_watermark) {
                r->error_code = KAFKA_OFFSET_OUT_OF_RANGE;
                return;
        }
        if (r->fetch_offset == p->high_watermark)
                return;
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
        if (pos >= h->written_bytes)
                return;
        uint64_t avail = h->written_bytes - pos;
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
        if (!r->segment)
                return;
        handle_put(r->segment);
        r->segment = NULL;
        r->fd = -1;
}

/* ---- offsets by time ---- */

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
                if (segment_find_timestamp(&h->seg, timestamp_ms, p->log_start_offset, &hit) == 0 &&
                    hit.offset < p->high_watermark) {
                        *offset_out = hit.offset;
                        *timestamp_out = hit.timestamp_ms;
                        return;
                }
        }
}

void partition_max_timestamp(struct partition *p, int64_t *offset_out, int64_t *timestamp_out)
{
        *offset_out = -1;
        *timestamp_out = -1;
        for (uint32_t i = 0; i < p->seg_count; i++) {
                const struct segment *seg = &p->segs[i]->seg;
                if (seg->max_timestamp_ms > *timestamp_out && seg->offset_of_max_timestamp >= p->log_start_offset) {
                        *offset_out = seg->offset_of_max_timestamp;
                        *timestamp_out = seg->max_timestamp_ms;
                }
        }
}

/* ---- maintenance ---- */

static void drop_first_segments(struct partition *p, uint32_t n)
{
        for (uint32_t i = 0; i < n; i++) {
                struct segment_handle *h = p->segs[i];
                h->is_deleted = true;
                h->dir_fd = dup(p->dir_fd);     /* the files go with the last reference */
                log_info("%s: deleting segment %020lld (retention)", p->name, (long long)h->base_offset);
                handle_put(h);
        }
        memmove(p->segs, p->segs + n, (p->seg_count - n) * sizeof(p->segs[0]));
        p->seg_count -= n;
        if (p->log_start_offset < p->segs[0]->base_offset)
                p->log_start_offset = p->segs[0]->base_offset;
}

int partition_enforce_retention(struct partition *p, int64_t now_ms)
{
        if (!p->config.is_cleanup_delete || p->seg_count < 2)
                return 0;
        uint32_t n = 0;
        /* By time: every segment whose newest record is older than retention.ms. */
        if (p->config.retention_ms >= 0) {
                while (n + 1 < p->seg_count) {
                        int64_t ts = p->segs[n]->seg.max_timestamp_ms;
                        int64_t newest = ts >= 0 ? ts : p->segs[n]->created_ms;
                        if (now_ms - newest <= p->config.retention_ms)
                                break;
                        n++;
                }
        }
        /* By size: oldest segments while the log is larger than retention.bytes. */
        if (p->config.retention_bytes >= 0) {
                uint64_t total = 0;
                for (uint32_t i = 0; i < p->seg_count; i++)
                        total += p->segs[i]->written_bytes;
                for (uint32_t i = 0; i < n; i++)
                        total -= p->segs[i]->written_bytes;
                while (n + 1 < p->seg_count && total - p->segs[n]->written_bytes >= (uint64_t)p->config.retention_bytes) {
                        total -= p->segs[n]->written_bytes;
                        n++;
                }
        }
        /* Never past the high watermark, never the active segment. */
        while (n > 0 && p->segs[n]->base_offset > p->high_watermark)
                n--;
        if (n > 0)
                drop_first_segments(p, n);
        return (int)n;
}

int partition_delete_records(struct partition *p, int64_t offset, int64_t *low_watermark_out)
{
        if (offset == -1)
                offset = p->high_watermark;
        if (offset < 0 || offset > p->high_watermark) {
                *low_watermark_out = p->log_start_offset;
                return KAFKA_OFFSET_OUT_OF_RANGE;
        }
        if (offset > p->log_start_offset)
                p->log_start_offset = offset;
        uint32_t n = 0;
        while (n + 1 < p->seg_count && p->segs[n + 1]->base_offset <= p->log_start_offset)
                n++;
        if (n > 0)
                drop_first_segments(p, n);
        *low_watermark_out = p->log_start_offset;
        return KAFKA_NONE;
}

void partition_maybe_flush(struct partition *p, int64_t now_ms)
{
        if (p->high_watermark > p->synced_offset && now_ms - p->last_flush_ms >= p->config.flush_ms)
                start_sync(p);
}
