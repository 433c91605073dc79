/*
 * txn_index.c - the `.txnindex` file of a segment; see txn_index.h.
 *
 * Kafka behaviour followed (storage/.../log/TransactionIndex.java and
 * AbortedTxn.java):
 *   - the file is created by the first append, never preallocated;
 *   - appends must have increasing last offsets (IllegalArgumentException
 *     in Kafka, -EINVAL here);
 *   - truncateTo cuts at the first entry whose last offset is >= the
 *     offset; collectAbortedTxns takes entries with lastOffset >= fetch
 *     offset and firstOffset < upper bound, and is complete once an entry's
 *     lastStableOffset reaches the upper bound;
 *   - sanityCheck refuses an entry whose last offset is below the
 *     segment's base offset. Kafka's reader checks the version by reading
 *     one byte at the start of the entry (the high byte of the int16);
 *     a version is 0 either way, so the whole int16 is checked here.
 * Kafka ignores trailing bytes shorter than an entry but then appends after
 * them; runnel cuts them on open so that every later entry stays aligned.
 *
 * Reads go through a fixed buffer of TXN_INDEX_READ_ENTRIES entries on the
 * stack, refilled by pread: no read allocates, whatever the file's size.
 */
#include "txn_index.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "segment.h"

#define TXN_INDEX_READ_ENTRIES 128u
#define TXN_INDEX_FILE_MODE 0644
/* A file beyond this is not an index (Kafka's are bounded by int positions). */
#define TXN_INDEX_FILE_BYTES_MAX ((uint64_t)INT32_MAX)

static void txn_index_check(const struct txn_index *ix)
{
        assert(ix->size_bytes % TXN_INDEX_ENTRY_BYTES == 0);
        assert((ix->size_bytes == 0) == (ix->last_offset == TXN_INDEX_NO_OFFSET));
        assert(ix->size_bytes == 0 || ix->fd >= 0);
        (void)ix;
}

/* ---- entries ---- */

static void put_be64(uint8_t *p, int64_t v)
{
        uint64_t u = (uint64_t)v;
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(u >> (56 - 8 * i));
}

static int64_t get_be64(const uint8_t *p)
{
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
                u = u << 8 | p[i];
        return (int64_t)u;
}

void txn_index_encode_entry(const struct txn_aborted *t, uint8_t out[TXN_INDEX_ENTRY_BYTES])
{
        out[0] = (uint8_t)(TXN_INDEX_VERSION >> 8);
        out[1] = (uint8_t)TXN_INDEX_VERSION;
        put_be64(out + 2, t->producer_id);
        put_be64(out + 10, t->first_offset);
        put_be64(out + 18, t->last_offset);
        put_be64(out + 26, t->last_stable_offset);
}

int txn_index_decode_entry(const uint8_t in[TXN_INDEX_ENTRY_BYTES], struct txn_aborted *out)
{
        int16_t version = (int16_t)((uint16_t)in[0] << 8 | in[1]);
        if (version != TXN_INDEX_VERSION)
                return -EBADMSG;
        out->producer_id = get_be64(in + 2);
        out->first_offset = get_be64(in + 10);
        out->last_offset = get_be64(in + 18);
        out->last_stable_offset = get_be64(in + 26);
        return 0;
}

/* ---- syscalls ---- */

static int pread_fully(int fd, uint8_t *buf, size_t len, uint64_t position)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, buf + done, len - done, (off_t)(position + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }
        return 0;
}

static int pwrite_fully(int fd, const uint8_t *buf, size_t len, uint64_t position)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(position + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                done += (size_t)n;
        }
        return 0;
}

static int ftruncate_retry(int fd, uint64_t size)
{
        while (ftruncate(fd, (off_t)size) < 0) {
                if (errno != EINTR)
                        return -errno;
        }
        return 0;
}

static int open_file(const struct txn_index *ix, int flags)
{
        char name[SEGMENT_FILE_NAME_BYTES];

        segment_file_name(name, ix->base_offset, TXN_INDEX_FILE_SUFFIX);
        return logdir_ref_openat(ix->dir, name, flags | O_RDWR, TXN_INDEX_FILE_MODE);
}

/* ---- walking the entries ---- */

/* Calls fn with each entry in file order and its byte position, until fn
 * returns non-zero (returned) or the entries end (0). -errno on a read
 * error, -EBADMSG for an entry of an unknown version. */
typedef int (*entry_fn)(void *ctx, const struct txn_aborted *t, uint64_t position);

static int for_each_entry(const struct txn_index *ix, entry_fn fn, void *ctx)
{
        uint8_t buf[TXN_INDEX_READ_ENTRIES * TXN_INDEX_ENTRY_BYTES];
        uint64_t position = 0;

        while (position < ix->size_bytes) {
                uint64_t left = ix->size_bytes - position;
                size_t len = left < sizeof(buf) ? (size_t)left : sizeof(buf);
                assert(len % TXN_INDEX_ENTRY_BYTES == 0);
                int rc = pread_fully(ix->fd, buf, len, position);
                if (rc < 0)
                        return rc;
                for (size_t off = 0; off < len; off += TXN_INDEX_ENTRY_BYTES) {
                        struct txn_aborted t;
                        if (txn_index_decode_entry(buf + off, &t) < 0)
                                return -EBADMSG;
                        rc = fn(ctx, &t, position + off);
                        if (rc != 0)
                                return rc;
                }
                position += len;
        }
        return 0;
}

/* ---- open, close ---- */

struct sanity {
        int64_t base_offset;
        int64_t last_offset;
};

static int sanity_entry(void *ctx, const struct txn_aborted *t, uint64_t position)
{
        struct sanity *s = ctx;
        (void)position;
        if (t->last_offset < s->base_offset)
                return -EBADMSG;
        if (s->last_offset != TXN_INDEX_NO_OFFSET && t->last_offset <= s->last_offset)
                return -EBADMSG;
        s->last_offset = t->last_offset;
        return 0;
}

int txn_index_open(struct txn_index *ix, const struct logdir_ref *dir, int64_t base_offset)
{
        assert(base_offset >= 0);
        memset(ix, 0, sizeof(*ix));
        ix->dir = dir;
        ix->fd = -1;
        ix->base_offset = base_offset;
        ix->last_offset = TXN_INDEX_NO_OFFSET;

        int fd = open_file(ix, 0);
        if (fd == -ENOENT)
                return 0;
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int rc = -errno;
                close(fd);
                return rc;
        }
        uint64_t size = (uint64_t)st.st_size;
        if (size > TXN_INDEX_FILE_BYTES_MAX) {
                close(fd);
                return -EFBIG;
        }
        ix->fd = fd;
        uint64_t whole = size - size % TXN_INDEX_ENTRY_BYTES;
        if (whole != size) {
                int rc = ftruncate_retry(fd, whole);
                if (rc < 0) {
                        txn_index_close(ix);
                        return rc;
                }
        }
        ix->size_bytes = whole;

        struct sanity s = { base_offset, TXN_INDEX_NO_OFFSET };
        int rc = for_each_entry(ix, sanity_entry, &s);
        if (rc < 0) {
                /* Open, refusing appends until the caller resets it. */
                ix->last_offset = ix->size_bytes > 0 ? INT64_MAX : TXN_INDEX_NO_OFFSET;
                return rc;
        }
        ix->last_offset = s.last_offset;
        txn_index_check(ix);
        return 0;
}

void txn_index_close(struct txn_index *ix)
{
        if (ix->fd >= 0)
                close(ix->fd);
        ix->fd = -1;
        ix->size_bytes = 0;
        ix->last_offset = TXN_INDEX_NO_OFFSET;
}

int txn_index_delete(struct txn_index *ix)
{
        char name[SEGMENT_FILE_NAME_BYTES];

        txn_index_close(ix);
        segment_file_name(name, ix->base_offset, TXN_INDEX_FILE_SUFFIX);
        int rc = logdir_ref_unlink(ix->dir, name);
        return rc == -ENOENT ? 0 : rc;
}

/* ---- changes ---- */

int txn_index_append(struct txn_index *ix, const struct txn_aborted *t)
{
        txn_index_check(ix);
        if (t->first_offset > t->last_offset || t->last_offset < ix->base_offset)
                return -EINVAL;
        if (ix->last_offset != TXN_INDEX_NO_OFFSET && t->last_offset <= ix->last_offset)
                return -EINVAL;
        if (ix->size_bytes + TXN_INDEX_ENTRY_BYTES > TXN_INDEX_FILE_BYTES_MAX)
                return -EFBIG;
        if (ix->fd < 0) {
                int fd = open_file(ix, O_CREAT);
                if (fd < 0)
                        return fd;
                ix->fd = fd;
        }
        uint8_t entry[TXN_INDEX_ENTRY_BYTES];
        txn_index_encode_entry(t, entry);
        int rc = pwrite_fully(ix->fd, entry, sizeof(entry), ix->size_bytes);
        if (rc < 0)
                return rc;
        ix->size_bytes += TXN_INDEX_ENTRY_BYTES;
        ix->last_offset = t->last_offset;
        txn_index_check(ix);
        return 0;
}

int txn_index_flush(struct txn_index *ix)
{
        if (ix->fd < 0)
                return 0;
        while (fdatasync(ix->fd) < 0) {
                if (errno != EINTR)
                        return -errno;
        }
        return 0;
}

struct truncate_search {
        int64_t offset;
        uint64_t cut_position;          /* UINT64_MAX: nothing to cut */
        int64_t new_last_offset;
};

static int truncate_entry(void *ctx, const struct txn_aborted *t, uint64_t position)
{
        struct truncate_search *s = ctx;
        if (t->last_offset >= s->offset) {
                s->cut_position = position;
                return 1;
        }
        s->new_last_offset = t->last_offset;
        return 0;
}

int txn_index_truncate_to(struct txn_index *ix, int64_t offset)
{
        txn_index_check(ix);
        if (ix->size_bytes == 0)
                return 0;
        struct truncate_search s = { offset, UINT64_MAX, TXN_INDEX_NO_OFFSET };
        int rc = for_each_entry(ix, truncate_entry, &s);
        if (rc < 0)
                return rc;
        if (s.cut_position == UINT64_MAX)
                return 0;
        rc = ftruncate_retry(ix->fd, s.cut_position);
        if (rc < 0)
                return rc;
        ix->size_bytes = s.cut_position;
        ix->last_offset = s.new_last_offset;
        txn_index_check(ix);
        return 0;
}

int txn_index_reset(struct txn_index *ix)
{
        if (ix->fd >= 0) {
                int rc = ftruncate_retry(ix->fd, 0);
                if (rc < 0)
                        return rc;
        }
        ix->size_bytes = 0;
        ix->last_offset = TXN_INDEX_NO_OFFSET;
        txn_index_check(ix);
        return 0;
}

/* ---- collecting ---- */

void txn_aborted_list_free(struct txn_aborted_list *l)
{
        free(l->items);
        memset(l, 0, sizeof(*l));
}

static int list_push(struct txn_aborted_list *l, const struct txn_aborted *t)
{
        if (l->count >= TXN_INDEX_COLLECT_MAX)
                return -E2BIG;
        if (l->count == l->cap) {
                uint32_t cap = l->cap ? l->cap * 2 : 16;
                if (cap > TXN_INDEX_COLLECT_MAX)
                        cap = TXN_INDEX_COLLECT_MAX;
                struct txn_aborted *items = realloc(l->items, (size_t)cap * sizeof(*items));
                if (!items)
                        return -ENOMEM;
                l->items = items;
                l->cap = cap;
        }
        l->items[l->count++] = *t;
        return 0;
}

struct collect {
        int64_t from_offset;
        int64_t upper_offset;
        struct txn_aborted_list *out;
        bool is_complete;
};

static int collect_entry(void *ctx, const struct txn_aborted *t, uint64_t position)
{
        struct collect *c = ctx;
        (void)position;
        if (t->last_offset >= c->from_offset && t->first_offset < c->upper_offset) {
                int rc = list_push(c->out, t);
                if (rc < 0)
                        return rc;
        }
        if (t->last_stable_offset >= c->upper_offset) {
                c->is_complete = true;
                return 1;
        }
        return 0;
}

int txn_index_collect(const struct txn_index *ix, int64_t from_offset, int64_t upper_offset,
                      struct txn_aborted_list *out, bool *is_complete)
{
        txn_index_check(ix);
        struct collect c = { from_offset, upper_offset, out, false };
        *is_complete = false;
        int rc = for_each_entry(ix, collect_entry, &c);
        if (rc < 0)
                return rc;
        *is_complete = c.is_complete;
        return 0;
}

int txn_index_collect_range(const struct txn_index *const *indexes, uint32_t index_count, int64_t from_offset,
                            int64_t upper_offset, struct txn_aborted_list *out)
{
        for (uint32_t i = 0; i < index_count; i++) {
                assert(i == 0 || indexes[i]->base_offset > indexes[i - 1]->base_offset);
                bool is_complete;
                int rc = txn_index_collect(indexes[i], from_offset, upper_offset, out, &is_complete);
                if (rc < 0)
                        return rc;
                if (is_complete)
                        break;
        }
        return 0;
}
