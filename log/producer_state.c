/*
 * producer_state.c - per-partition producer table, its checks and Kafka's
 * snapshot files. See producer_state.h for the rules it enforces.
 *
 * Invariants:
 *   - cap is 0 or a power of two, count <= cap * 3 / 4 when cap > 0, so
 *     a free slot always ends a probe;
 *   - a slot is free exactly when its producer_id is -1; the table has no
 *     tombstones: a removal shifts the following run back (linear probing
 *     with backward-shift deletion), so every entry is reachable from its
 *     home slot without crossing a free slot;
 *   - an entry's batches are in offset order, oldest at batch_head, all of
 *     the entry's current epoch.
 */
#include "producer_state.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../protocol/crc32c.h"
#include "../protocol/gen/errors.h"

#define TABLE_CAP_MIN 8u

/* ---- the table ---- */

static uint32_t slot_of(int64_t producer_id, uint32_t cap)
{
        /* Producer ids are handed out in sequence: mix them so that runs of
         * ids do not pile into neighbouring slots. */
        uint64_t x = (uint64_t)producer_id * 0x9E3779B97F4A7C15ull;
        return (uint32_t)(x >> 32) & (cap - 1);
}

void producer_state_init(struct producer_state *s)
{
        memset(s, 0, sizeof(*s));
}

void producer_state_free(struct producer_state *s)
{
        free(s->slots);
        memset(s, 0, sizeof(*s));
}

void producer_state_clear(struct producer_state *s)
{
        for (uint32_t i = 0; i < s->cap; i++)
                s->slots[i].producer_id = -1;
        s->count = 0;
        s->change_count++;
}

uint32_t producer_state_count(const struct producer_state *s)
{
        return s->count;
}

static struct producer_entry *find_slot(const struct producer_state *s, int64_t producer_id)
{
        if (s->cap == 0)
                return NULL;
        for (uint32_t i = slot_of(producer_id, s->cap), n = 0; n < s->cap; i = (i + 1) & (s->cap - 1), n++) {
                struct producer_entry *e = &s->slots[i];
                if (e->producer_id == producer_id)
                        return e;
                if (e->producer_id < 0)
                        return NULL;
        }
        return NULL;
}

const struct producer_entry *producer_state_find(const struct producer_state *s, int64_t producer_id)
{
        return find_slot(s, producer_id);
}

const struct producer_entry *producer_state_next(const struct producer_state *s, uint32_t *cursor)
{
        while (*cursor < s->cap) {
                const struct producer_entry *e = &s->slots[(*cursor)++];
                if (e->producer_id >= 0)
                        return e;
        }
        return NULL;
}

static void place(struct producer_entry *slots, uint32_t cap, const struct producer_entry *e)
{
        uint32_t i = slot_of(e->producer_id, cap);
        while (slots[i].producer_id >= 0)
                i = (i + 1) & (cap - 1);
        slots[i] = *e;
}

static int grow(struct producer_state *s)
{
        uint32_t cap = s->cap ? s->cap * 2 : TABLE_CAP_MIN;
        if (cap < s->cap)
                return -ENOMEM;
        struct producer_entry *slots = malloc((size_t)cap * sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        for (uint32_t i = 0; i < cap; i++)
                slots[i].producer_id = -1;
        for (uint32_t i = 0; i < s->cap; i++)
                if (s->slots[i].producer_id >= 0)
                        place(slots, cap, &s->slots[i]);
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
        return 0;
}

/* The entry of producer_id, added (empty, epoch -1) when missing. */
static struct producer_entry *get_or_add(struct producer_state *s, int64_t producer_id)
{
        struct producer_entry *e = find_slot(s, producer_id);
        if (e)
                return e;
        if ((uint64_t)(s->count + 1) * 4 > (uint64_t)s->cap * 3 && grow(s) < 0)
                return NULL;
        struct producer_entry fresh = {
                .producer_id = producer_id,
                .epoch = RECORD_BATCH_NO_PRODUCER_EPOCH,
                .coordinator_epoch = -1,
                .last_timestamp_ms = RECORD_BATCH_NO_TIMESTAMP,
                .txn_first_offset = -1,
        };
        place(s->slots, s->cap, &fresh);
        s->count++;
        return find_slot(s, producer_id);
}

/* Backward-shift deletion: later entries of the run move into the hole
 * when their home slot does not lie between the hole and them. */
static void remove_slot(struct producer_state *s, uint32_t hole)
{
        uint32_t mask = s->cap - 1;
        s->slots[hole].producer_id = -1;
        for (uint32_t i = (hole + 1) & mask;; i = (i + 1) & mask) {
                struct producer_entry *e = &s->slots[i];
                if (e->producer_id < 0)
                        break;
                uint32_t home = slot_of(e->producer_id, s->cap);
                bool is_between = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
                if (is_between)
                        continue;
                s->slots[hole] = *e;
                e->producer_id = -1;
                hole = i;
        }
        s->count--;
}

/* ---- sequences ---- */

static int32_t seq_add(int32_t seq, int32_t delta)
{
        /* Kafka's incrementSequence: wraps past INT32_MAX to 0. */
        if (seq > INT32_MAX - delta)
                return delta - (INT32_MAX - seq) - 1;
        return seq + delta;
}

static int32_t seq_sub(int32_t seq, int32_t delta)
{
        if (seq < delta)
                return INT32_MAX - (delta - seq) + 1;
        return seq - delta;
}

int32_t producer_batch_first_seq(const struct producer_batch *b)
{
        return seq_sub(b->last_seq, b->offset_delta);
}

int32_t producer_header_last_seq(const struct record_batch_header *h)
{
        if (h->base_sequence < 0)
                return RECORD_BATCH_NO_SEQUENCE;
        return seq_add(h->base_sequence, h->last_offset_delta);
}

static bool is_in_sequence(int32_t last_seq, int32_t next_seq)
{
        return (int64_t)next_seq == (int64_t)last_seq + 1 || (next_seq == 0 && last_seq == INT32_MAX);
}

static const struct producer_batch *entry_batch(const struct producer_entry *e, uint32_t i)
{
        assert(i < e->batch_count);
        return &e->batches[(e->batch_head + i) % PRODUCER_BATCHES_KEPT];
}

static const struct producer_batch *entry_last_batch(const struct producer_entry *e)
{
        return e->batch_count ? entry_batch(e, e->batch_count - 1u) : NULL;
}

/* ---- checks and updates ---- */

int16_t producer_state_check(const struct producer_state *s, const struct record_batch_header *h,
                             bool *is_duplicate, struct producer_duplicate *dup, char *reason,
                             size_t reason_bytes)
{
        assert(h->producer_id >= 0 && !record_batch_is_control(h));
        *is_duplicate = false;
        reason[0] = '\0';
        const struct producer_entry *e = find_slot(s, h->producer_id);
        if (!e)
                return KAFKA_NONE;      /* unknown here: any epoch and sequence starts it */
        int32_t first_seq = h->base_sequence;
        int32_t last_seq = producer_header_last_seq(h);

        /* A retry of one of the last five batches gets its first answer. */
        if (h->producer_epoch == e->epoch) {
                for (uint32_t i = 0; i < e->batch_count; i++) {
                        const struct producer_batch *b = entry_batch(e, i);
                        if (b->last_seq == last_seq && producer_batch_first_seq(b) == first_seq) {
                                *is_duplicate = true;
                                dup->last_offset = b->last_offset;
                                dup->first_offset = b->last_offset - b->offset_delta;
                                dup->timestamp_ms = b->timestamp_ms;
                                return KAFKA_NONE;
                        }
                }
        }
        if (h->producer_epoch < e->epoch) {
                snprintf(reason, reason_bytes, "Producer %" PRId64 " has epoch %d, older than the current %d.",
                         h->producer_id, h->producer_epoch, e->epoch);
                return KAFKA_INVALID_PRODUCER_EPOCH;
        }
        if (h->producer_epoch != e->epoch) {
                /* A new epoch starts its sequences at 0, unless the producer
                 * only ever wrote markers here (no epoch of data known). */
                if (first_seq != 0 && e->epoch != RECORD_BATCH_NO_PRODUCER_EPOCH) {
                        snprintf(reason, reason_bytes,
                                 "Producer %" PRId64 " starts epoch %d at sequence %d; a new epoch starts at 0.",
                                 h->producer_id, h->producer_epoch, first_seq);
                        return KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
                }
        } else {
                const struct producer_batch *last = entry_last_batch(e);
                int32_t current_last_seq = last ? last->last_seq : RECORD_BATCH_NO_SEQUENCE;
                /* An epoch known from a marker only, with no data batch,
                 * has no sequence to follow: Kafka requires 0 after the
                 * -1 then, which is_in_sequence says. */
                if (!is_in_sequence(current_last_seq, first_seq)) {
                        snprintf(reason, reason_bytes,
                                 "Producer %" PRId64 " sent sequence %d; the next expected is %d.",
                                 h->producer_id, first_seq, seq_add(current_last_seq < 0 ? -1 : current_last_seq, 1));
                        return KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER;
                }
        }
        if (e->txn_first_offset >= 0 && !record_batch_is_transactional(h)) {
                snprintf(reason, reason_bytes,
                         "Producer %" PRId64 " has an open transaction; it cannot write outside it.", h->producer_id);
                return KAFKA_INVALID_TXN_STATE;
        }
        return KAFKA_NONE;
}

static void set_epoch(struct producer_entry *e, int16_t epoch)
{
        if (e->epoch != epoch) {
                e->batch_count = 0;
                e->batch_head = 0;
                e->epoch = epoch;
        }
}

static void add_batch(struct producer_entry *e, const struct producer_batch *b)
{
        if (e->batch_count == PRODUCER_BATCHES_KEPT) {
                e->batch_head = (uint8_t)((e->batch_head + 1) % PRODUCER_BATCHES_KEPT);
                e->batch_count--;
        }
        e->batches[(e->batch_head + e->batch_count) % PRODUCER_BATCHES_KEPT] = *b;
        e->batch_count++;
}

int producer_state_update(struct producer_state *s, const struct record_batch_header *h, int16_t control_type,
                          int32_t coordinator_epoch, struct producer_completed_txn *completed)
{
        assert(h->producer_id >= 0);
        struct producer_entry *e = get_or_add(s, h->producer_id);
        if (!e)
                return -ENOMEM;
        s->change_count++;
        if (record_batch_is_control(h)) {
                int rc = 0;
                if (e->txn_first_offset >= 0) {
                        if (completed) {
                                completed->producer_id = h->producer_id;
                                completed->first_offset = e->txn_first_offset;
                                completed->last_offset = h->base_offset;
                                completed->is_aborted = control_type == 0;
                        }
                        rc = 1;
                }
                set_epoch(e, h->producer_epoch);
                e->coordinator_epoch = coordinator_epoch;
                e->txn_first_offset = -1;
                e->last_timestamp_ms = h->max_timestamp_ms;
                return rc;
        }
        struct producer_batch b = {
                .last_seq = producer_header_last_seq(h),
                .last_offset = record_batch_last_offset(h),
                .offset_delta = h->last_offset_delta,
                .timestamp_ms = h->max_timestamp_ms,
        };
        set_epoch(e, h->producer_epoch);
        add_batch(e, &b);
        e->last_timestamp_ms = h->max_timestamp_ms;
        if (record_batch_is_transactional(h) && e->txn_first_offset < 0)
                e->txn_first_offset = h->base_offset;
        return 0;
}

int producer_state_reserve(struct producer_state *s, int64_t producer_id)
{
        return get_or_add(s, producer_id) ? 0 : -ENOMEM;
}

void producer_state_restore(struct producer_state *s, int64_t producer_id, const struct producer_entry *before)
{
        assert(producer_id >= 0 && (!before || before->producer_id == producer_id));
        struct producer_entry *e = find_slot(s, producer_id);
        s->change_count++;
        if (!before) {
                if (e)
                        remove_slot(s, (uint32_t)(e - s->slots));
                return;
        }
        if (!e)
                e = get_or_add(s, producer_id);
        if (e)
                *e = *before;
}

static bool is_expired(const struct producer_entry *e, int64_t now_ms, int64_t expiration_ms)
{
        return e->txn_first_offset < 0 && now_ms - e->last_timestamp_ms >= expiration_ms;
}

uint32_t producer_state_expire(struct producer_state *s, int64_t now_ms, int64_t expiration_ms)
{
        uint32_t removed = 0;
        for (uint32_t i = 0; i < s->cap;) {
                struct producer_entry *e = &s->slots[i];
                if (e->producer_id >= 0 && is_expired(e, now_ms, expiration_ms)) {
                        /* The shift may pull an unvisited entry into i: look
                         * again. Entries only move back towards a hole, so
                         * none skips past i unvisited. */
                        remove_slot(s, i);
                        removed++;
                        continue;
                }
                i++;
        }
        if (removed)
                s->change_count++;
        return removed;
}

int64_t producer_state_first_open_txn_offset(const struct producer_state *s)
{
        int64_t lowest = -1;
        for (uint32_t i = 0; i < s->cap; i++) {
                const struct producer_entry *e = &s->slots[i];
                if (e->producer_id >= 0 && e->txn_first_offset >= 0 &&
                    (lowest < 0 || e->txn_first_offset < lowest))
                        lowest = e->txn_first_offset;
        }
        return lowest;
}

/* ---- snapshot bytes ---- */

static uint8_t *put16(uint8_t *p, int16_t v)
{
        p[0] = (uint8_t)((uint16_t)v >> 8);
        p[1] = (uint8_t)v;
        return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
        for (int i = 3; i >= 0; i--)
                *p++ = (uint8_t)(v >> (i * 8));
        return p;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
        for (int i = 7; i >= 0; i--)
                *p++ = (uint8_t)(v >> (i * 8));
        return p;
}

static uint64_t get_be(const uint8_t *p, int bytes)
{
        uint64_t v = 0;
        for (int i = 0; i < bytes; i++)
                v = v << 8 | p[i];
        return v;
}

size_t producer_state_snapshot_bytes(const struct producer_state *s)
{
        return PRODUCER_SNAPSHOT_HEADER_BYTES + (size_t)s->count * PRODUCER_SNAPSHOT_ENTRY_BYTES;
}

void producer_state_snapshot_encode(const struct producer_state *s, uint8_t *buf)
{
        uint8_t *p = put16(buf, PRODUCER_SNAPSHOT_VERSION);
        p += 4;                 /* the CRC, filled in last */
        p = put32(p, s->count);
        uint32_t cursor = 0;
        for (const struct producer_entry *e; (e = producer_state_next(s, &cursor));) {
                const struct producer_batch *last = entry_last_batch(e);
                p = put64(p, (uint64_t)e->producer_id);
                p = put16(p, e->epoch);
                p = put32(p, (uint32_t)(last ? last->last_seq : RECORD_BATCH_NO_SEQUENCE));
                p = put64(p, (uint64_t)(last ? last->last_offset : -1));
                p = put32(p, (uint32_t)(last ? last->offset_delta : 0));
                p = put64(p, (uint64_t)e->last_timestamp_ms);
                p = put32(p, (uint32_t)e->coordinator_epoch);
                p = put64(p, (uint64_t)e->txn_first_offset);
        }
        assert((size_t)(p - buf) == producer_state_snapshot_bytes(s));
        size_t after_crc = 6;
        put32(buf + 2, crc32c(buf + after_crc, (size_t)(p - buf) - after_crc));
}

int producer_state_snapshot_decode(struct producer_state *s, const uint8_t *buf, size_t len, int64_t now_ms,
                                   int64_t expiration_ms)
{
        if (len < PRODUCER_SNAPSHOT_HEADER_BYTES || (int16_t)get_be(buf, 2) != PRODUCER_SNAPSHOT_VERSION)
                return -EBADMSG;
        if ((uint32_t)get_be(buf + 2, 4) != crc32c(buf + 6, len - 6))
                return -EBADMSG;
        int32_t count = (int32_t)get_be(buf + 6, 4);
        if (count < 0 || (size_t)count * PRODUCER_SNAPSHOT_ENTRY_BYTES != len - PRODUCER_SNAPSHOT_HEADER_BYTES)
                return -EBADMSG;

        struct producer_state n;
        producer_state_init(&n);
        const uint8_t *p = buf + PRODUCER_SNAPSHOT_HEADER_BYTES;
        for (int32_t i = 0; i < count; i++, p += PRODUCER_SNAPSHOT_ENTRY_BYTES) {
                int64_t producer_id = (int64_t)get_be(p, 8);
                struct producer_batch b = {
                        .last_seq = (int32_t)get_be(p + 10, 4),
                        .last_offset = (int64_t)get_be(p + 14, 8),
                        .offset_delta = (int32_t)get_be(p + 22, 4),
                        .timestamp_ms = (int64_t)get_be(p + 26, 8),
                };
                int64_t txn_first_offset = (int64_t)get_be(p + 38, 8);
                if (producer_id < 0 || b.offset_delta < 0 || find_slot(&n, producer_id))
                        goto bad;
                struct producer_entry *e = get_or_add(&n, producer_id);
                if (!e) {
                        producer_state_free(&n);
                        return -ENOMEM;
                }
                e->epoch = (int16_t)get_be(p + 8, 2);
                e->last_timestamp_ms = b.timestamp_ms;
                e->coordinator_epoch = (int32_t)get_be(p + 34, 4);
                e->txn_first_offset = txn_first_offset >= 0 ? txn_first_offset : -1;
                if (b.last_offset >= 0)
                        add_batch(e, &b);
                if (expiration_ms > 0 && is_expired(e, now_ms, expiration_ms))
                        remove_slot(&n, (uint32_t)(e - n.slots));
        }
        producer_state_free(s);
        *s = n;
        s->change_count = 0;
        return 0;
bad:
        producer_state_free(&n);
        return -EBADMSG;
}

/* ---- snapshot files ---- */

void producer_snapshot_file_name(char *out, size_t out_bytes, int64_t offset)
{
        snprintf(out, out_bytes, "%020" PRId64 PRODUCER_SNAPSHOT_SUFFIX, offset);
}

/* The offset a snapshot file name carries, or -1 for other names. */
static int64_t snapshot_offset_of(const char *name)
{
        size_t len = strlen(name);
        size_t suffix = sizeof(PRODUCER_SNAPSHOT_SUFFIX) - 1;
        if (len != 20 + suffix || strcmp(name + 20, PRODUCER_SNAPSHOT_SUFFIX) != 0)
                return -1;
        int64_t v = 0;
        for (size_t i = 0; i < 20; i++) {
                int digit = name[i] - '0';
                if (digit < 0 || digit > 9 || v > (INT64_MAX - digit) / 10)
                        return -1;
                v = v * 10 + (name[i] - '0');
        }
        return v;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = write(fd, buf + done, len - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                done += (size_t)n;
        }
        return 0;
}

int producer_state_write_snapshot(const struct producer_state *s, int dir_fd, int64_t offset, bool is_synced)
{
        char name[64], tmp[80];
        producer_snapshot_file_name(name, sizeof(name), offset);
        snprintf(tmp, sizeof(tmp), "%s.tmp", name);
        size_t len = producer_state_snapshot_bytes(s);
        uint8_t *buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        producer_state_snapshot_encode(s, buf);
        int rc = 0;
        int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
                rc = -errno;
                goto out_free;
        }
        rc = write_all(fd, buf, len);
        if (rc == 0 && is_synced && fdatasync(fd) < 0)
                rc = -errno;
        if (close(fd) < 0 && rc == 0)
                rc = -errno;
        if (rc == 0 && renameat(dir_fd, tmp, dir_fd, name) < 0)
                rc = -errno;
        if (rc < 0)
                unlinkat(dir_fd, tmp, 0);
        else if (is_synced && fsync(dir_fd) < 0)
                rc = -errno;
out_free:
        free(buf);
        return rc;
}

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return (x > y) - (x < y);
}

int producer_snapshot_list(int dir_fd, int64_t **offsets_out)
{
        *offsets_out = NULL;
        int fd = openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int err = -errno;
                close(fd);
                return err;
        }
        int64_t *offsets = NULL;
        size_t count = 0, cap = 0;
        int rc = 0;
        for (struct dirent *de; (de = readdir(d));) {
                int64_t offset = snapshot_offset_of(de->d_name);
                if (offset < 0 || (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
                        continue;
                if (count == cap) {
                        size_t ncap = cap ? cap * 2 : 8;
                        int64_t *n = realloc(offsets, ncap * sizeof(*n));
                        if (!n) {
                                rc = -ENOMEM;
                                break;
                        }
                        offsets = n;
                        cap = ncap;
                }
                offsets[count++] = offset;
        }
        closedir(d);
        if (rc < 0) {
                free(offsets);
                return rc;
        }
        if (count)
                qsort(offsets, count, sizeof(*offsets), cmp_i64);
        *offsets_out = offsets;
        return (int)count;
}

static int delete_snapshot(int dir_fd, int64_t offset)
{
        char name[64];
        producer_snapshot_file_name(name, sizeof(name), offset);
        if (unlinkat(dir_fd, name, 0) == 0)
                return 0;
        if (errno != ENOENT)
                log_warn("cannot delete producer snapshot %s: %s", name, strerror(errno));
        return -errno;
}

/* Reads a whole snapshot file into a malloc'ed buffer. */
static int read_snapshot_file(int dir_fd, int64_t offset, uint8_t **buf_out, size_t *len_out)
{
        char name[64];
        producer_snapshot_file_name(name, sizeof(name), offset);
        int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        int rc = 0;
        uint8_t *buf = NULL;
        if (fstat(fd, &st) < 0) {
                rc = -errno;
                goto out_close;
        }
        if (st.st_size > PRODUCER_SNAPSHOT_BYTES_MAX) {
                rc = -EFBIG;
                goto out_close;
        }
        size_t len = (size_t)st.st_size;
        buf = malloc(len ? len : 1);
        if (!buf) {
                rc = -ENOMEM;
                goto out_close;
        }
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, buf + done, len - done, (off_t)done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        rc = n < 0 ? -errno : -EBADMSG;
                        goto out_close;
                }
                done += (size_t)n;
        }
        *buf_out = buf;
        *len_out = len;
        buf = NULL;
out_close:
        free(buf);
        close(fd);
        return rc;
}

int producer_state_load_snapshot(struct producer_state *s, int dir_fd, int64_t max_offset, int64_t now_ms,
                                 int64_t expiration_ms, int64_t *offset_out)
{
        *offset_out = -1;
        producer_state_clear(s);
        int64_t *offsets;
        int count = producer_snapshot_list(dir_fd, &offsets);
        if (count < 0)
                return count;
        int rc = 0;
        for (int i = count - 1; i >= 0; i--) {
                if (offsets[i] > max_offset) {
                        delete_snapshot(dir_fd, offsets[i]);
                        continue;
                }
                uint8_t *buf = NULL;
                size_t len = 0;
                rc = read_snapshot_file(dir_fd, offsets[i], &buf, &len);
                if (rc == -EFBIG)
                        rc = -EBADMSG;  /* no snapshot of ours is that big */
                if (rc == 0) {
                        rc = producer_state_snapshot_decode(s, buf, len, now_ms, expiration_ms);
                        free(buf);
                }
                if (rc == 0) {
                        *offset_out = offsets[i];
                        break;
                }
                /* Only a damaged file is deleted, as Kafka does; an I/O
                 * error fails the open so that nothing is thrown away. */
                if (rc != -EBADMSG)
                        break;
                /* Torn by a crash or damaged: the one before it, or the
                 * log itself, rebuilds what it held. */
                log_warn("producer snapshot %020" PRId64 PRODUCER_SNAPSHOT_SUFFIX " is unusable (%s); deleted, "
                         "the state is rebuilt from the log", offsets[i], strerror(-rc));
                delete_snapshot(dir_fd, offsets[i]);
                rc = 0;
        }
        free(offsets);
        return rc;
}

int producer_snapshot_delete_below(int dir_fd, int64_t offset)
{
        int64_t *offsets;
        int count = producer_snapshot_list(dir_fd, &offsets);
        if (count < 0)
                return count;
        int deleted = 0;
        for (int i = 0; i < count && offsets[i] < offset; i++)
                deleted += delete_snapshot(dir_fd, offsets[i]) == 0;
        free(offsets);
        return deleted;
}
