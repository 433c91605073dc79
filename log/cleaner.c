/*
 * cleaner.c - log compaction's heavy part (cleaner.h): the offset map,
 * the batch filter, writing cleaned segments, and the pool of threads
 * that runs jobs. The files' names, the swap, its recovery and
 * cleaner-offset-checkpoint are cleaner_swap.c's.
 *
 * Nothing here touches a struct partition: a job carries descriptors and
 * copies, so a pool thread never shares state with the partition's home
 * thread. Source segments are read with pread through their .log
 * descriptors (the job holds references on their handles, so they stay
 * open); the output is a segment of its own (segment.h with a file tail),
 * written with segment_append on the pool thread, which owns it.
 *
 * Invariants:
 *   - the map's latest_offset is the last offset of the last batch whose
 *     records were all put in the map (or the end of a segment walked
 *     whole); a record past it is always kept;
 *   - an output batch keeps its source's base offset and last offset, so
 *     offsets never move and a producer's sequence numbers keep their
 *     meaning;
 *   - a job that fails leaves no .cleaned file behind.
 */
#include "cleaner.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../protocol/arena.h"
#include "../protocol/compress.h"
#include "../protocol/gen/errors.h"
#include "../protocol/record_batch.h"
#include "../protocol/wire.h"
#include "offset_index.h"
#include "segment.h"
#include "time_index.h"

/* ---- deciding ---- */

double cleaner_dirty_ratio(const struct cleaner_candidate *c)
{
        int64_t total = c->clean_bytes + c->cleanable_bytes;
        return total > 0 ? (double)c->cleanable_bytes / (double)total : 0.0;
}

bool cleaner_is_due(const struct cleaner_candidate *c)
{
        if (c->clean_bytes + c->cleanable_bytes <= 0)
                return false;
        if (c->is_compaction_lag_exceeded && c->cleanable_bytes > 0)
                return true;
        return cleaner_dirty_ratio(c) > c->min_cleanable_ratio;
}

/* ---- the key hash: MurmurHash3 x64 128 (public domain algorithm) ---- */

static uint64_t rotl64(uint64_t x, int r)
{
        return (x << r) | (x >> (64 - r));
}

static uint64_t fmix64(uint64_t k)
{
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53ULL;
        k ^= k >> 33;
        return k;
}

static uint64_t load64_le(const uint8_t *p)
{
        uint64_t v = 0;
        for (int i = 7; i >= 0; i--)
                v = (v << 8) | p[i];
        return v;
}

static void hash_key(const uint8_t *key, size_t len, uint64_t out[2])
{
        const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
        uint64_t h1 = 0x9747b28c, h2 = 0x9747b28c;
        size_t nblocks = len / 16;
        for (size_t i = 0; i < nblocks; i++) {
                uint64_t k1 = load64_le(key + i * 16), k2 = load64_le(key + i * 16 + 8);
                k1 *= c1;
                k1 = rotl64(k1, 31);
                k1 *= c2;
                h1 ^= k1;
                h1 = rotl64(h1, 27);
                h1 += h2;
                h1 = h1 * 5 + 0x52dce729;
                k2 *= c2;
                k2 = rotl64(k2, 33);
                k2 *= c1;
                h2 ^= k2;
                h2 = rotl64(h2, 31);
                h2 += h1;
                h2 = h2 * 5 + 0x38495ab5;
        }
        const uint8_t *tail = key + nblocks * 16;
        uint64_t k1 = 0, k2 = 0;
        size_t rest = len & 15;
        for (size_t i = rest; i > 8; i--)
                k2 ^= (uint64_t)tail[i - 1] << ((i - 9) * 8);
        if (rest > 8) {
                k2 *= c2;
                k2 = rotl64(k2, 33);
                k2 *= c1;
                h2 ^= k2;
        }
        for (size_t i = rest < 8 ? rest : 8; i > 0; i--)
                k1 ^= (uint64_t)tail[i - 1] << ((i - 1) * 8);
        if (rest > 0) {
                k1 *= c1;
                k1 = rotl64(k1, 31);
                k1 *= c2;
                h1 ^= k1;
        }
        h1 ^= (uint64_t)len;
        h2 ^= (uint64_t)len;
        h1 += h2;
        h2 += h1;
        h1 = fmix64(h1);
        h2 = fmix64(h2);
        h1 += h2;
        h2 += h1;
        out[0] = h1;
        out[1] = h2;
}

/* ---- the offset map (Kafka's SkimpyOffsetMap) ---- */

struct map_entry {
        uint64_t hash[2];
        int64_t offset;                 /* -1: a free slot */
};

struct offset_map {
        struct map_entry *slots;
        uint32_t cap;                   /* a power of two */
        uint32_t count;
        uint32_t count_max;             /* cap * load factor: full past this */
        int64_t latest_offset;          /* -1 until a batch was mapped */
};

static int map_init(struct offset_map *m, size_t bytes_max, double load_factor, uint64_t entries_wanted)
{
        uint64_t cap = CLEANER_MAP_ENTRIES_MIN;
        uint64_t by_memory = bytes_max / CLEANER_MAP_ENTRY_BYTES;
        while (cap * 2 <= by_memory && cap < entries_wanted && cap * 2 <= (1ULL << 31))
                cap *= 2;
        m->slots = malloc(cap * sizeof(*m->slots));
        if (!m->slots)
                return -ENOMEM;
        for (uint64_t i = 0; i < cap; i++)
                m->slots[i].offset = -1;
        m->cap = (uint32_t)cap;
        m->count = 0;
        m->count_max = (uint32_t)((double)cap * load_factor);
        if (m->count_max >= cap)
                m->count_max = (uint32_t)cap - 1;       /* a free slot ends every probe */
        m->latest_offset = -1;
        return 0;
}

static void map_free(struct offset_map *m)
{
        free(m->slots);
        m->slots = NULL;
}

static struct map_entry *map_slot(const struct offset_map *m, const uint64_t h[2])
{
        uint32_t mask = m->cap - 1;
        uint32_t i = (uint32_t)h[0] & mask;
        /* Linear probing; the table is never full (count_max < cap). */
        for (uint32_t probes = 0; probes < m->cap; probes++) {
                struct map_entry *e = &m->slots[i];
                if (e->offset < 0 || (e->hash[0] == h[0] && e->hash[1] == h[1]))
                        return e;
                i = (i + 1) & mask;
        }
        assert(!"offset map full");
        return NULL;
}

/* Returns false when the map is full (nothing put). */
static bool map_put(struct offset_map *m, const struct kbytes *key, int64_t offset)
{
        uint64_t h[2];
        hash_key(key->ptr, (size_t)key->len, h);
        struct map_entry *e = map_slot(m, h);
        if (e->offset < 0) {
                if (m->count >= m->count_max)
                        return false;
                m->count++;
                e->hash[0] = h[0];
                e->hash[1] = h[1];
        }
        e->offset = offset;
        return true;
}

static int64_t map_get(const struct offset_map *m, const struct kbytes *key)
{
        uint64_t h[2];
        hash_key(key->ptr, (size_t)key->len, h);
        return map_slot(m, h)->offset;
}

/* ---- reading a source segment ---- */

struct src_reader {
        int fd;
        uint32_t size_bytes;
        uint8_t *buf;
        size_t cap;
        uint64_t buf_position;          /* file position of buf[0] */
        size_t buf_len;
};

static int reader_fill(struct src_reader *r, uint32_t position, size_t want)
{
        if (want > r->cap) {
                uint8_t *n = realloc(r->buf, want);
                if (!n)
                        return -ENOMEM;
                r->buf = n;
                r->cap = want;
        }
        size_t len = r->cap;
        if ((uint64_t)position + len > r->size_bytes)
                len = r->size_bytes - position;
        size_t got = 0;
        while (got < len) {
                ssize_t n = pread(r->fd, r->buf + got, len - got, (off_t)position + (off_t)got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        r->buf_position = position;
        r->buf_len = got;
        return 0;
}

/*
 * The batch at position: *out points into the reader's buffer until the
 * next call. Returns 1 with a batch, 0 at the end, or -errno (-EBADMSG
 * for bytes that are no batch: the segment was recovered, so never).
 */
static int reader_next(struct src_reader *r, uint32_t position, const uint8_t **out,
                       struct record_batch_header *hdr)
{
        if (position >= r->size_bytes)
                return 0;
        if (position < r->buf_position || position + (uint64_t)RECORD_BATCH_HEADER_BYTES >
                                                   r->buf_position + r->buf_len) {
                int rc = reader_fill(r, position, r->cap);
                if (rc < 0)
                        return rc;
        }
        const uint8_t *p = r->buf + (position - r->buf_position);
        size_t avail = r->buf_len - (size_t)(position - r->buf_position);
        if (record_batch_parse_header(p, avail, hdr) != RECORD_BATCH_FRAME_OK)
                return -EBADMSG;
        uint32_t size = record_batch_size_bytes(hdr);
        if ((uint64_t)position + size > r->size_bytes)
                return -EBADMSG;
        if (size > avail) {
                int rc = reader_fill(r, position, size > r->cap ? size : r->cap);
                if (rc < 0)
                        return rc;
                if (r->buf_len < size)
                        return -EBADMSG;
                p = r->buf;
        }
        *out = p;
        return 1;
}

/* A batch whose records are open: plain, or decompressed once into the
 * arena, so that they can be walked more than once. */
struct opened_batch {
        const uint8_t *batch;
        const struct record_batch_header *h;
        uint8_t *records;               /* NULL: the batch is plain */
        size_t len;
};

static void reopen_records(const struct opened_batch *o, struct record_iter *it)
{
        if (o->records)
                record_iter_init_records(it, o->h, o->records, o->len);
        else
                (void)record_iter_init(it, o->batch, record_batch_size_bytes(o->h));
}

static int open_records(const uint8_t *batch, const struct record_batch_header *hdr, size_t records_bytes_max,
                        struct arena *scratch, struct opened_batch *o, struct record_iter *it)
{
        uint32_t size = record_batch_size_bytes(hdr);
        int codec = record_batch_codec(hdr);
        o->batch = batch;
        o->h = hdr;
        o->records = NULL;
        o->len = 0;
        if (codec == RECORD_BATCH_CODEC_NONE)
                return record_iter_init(it, batch, size) == KAFKA_NONE ? 0 : -EBADMSG;
        if (codec > RECORD_BATCH_CODEC_MAX)
                return -EBADMSG;
        int rc = compress_decode((enum compress_codec)codec, batch + RECORD_BATCH_HEADER_BYTES,
                                 size - RECORD_BATCH_HEADER_BYTES, records_bytes_max, scratch, &o->records, &o->len);
        if (rc < 0)
                return rc;
        record_iter_init_records(it, hdr, o->records, o->len);
        return 0;
}

/* ---- transaction metadata (Kafka's CleanedTransactionMetadata) ---- */

struct ongoing_aborted {
        int64_t producer_id;
        uint32_t aborted_index;         /* into job->aborted */
        bool has_observed_batch;
};

struct txn_meta {
        const struct txn_aborted *aborted;      /* sorted by first_offset */
        uint32_t aborted_count;
        uint32_t next;                  /* the next not yet consumed */
        int64_t start_offset;           /* entries ending below this are skipped */
        struct ongoing_aborted *ongoing;
        uint32_t ongoing_count, ongoing_cap;
        int64_t *committed;             /* producers with a committed transaction being read */
        uint32_t committed_count, committed_cap;
        /* the cleaned .txnindex of the current group, and what was kept */
        struct txn_aborted *kept;
        uint32_t kept_count, kept_cap;
};

static void txn_meta_init(struct txn_meta *t, const struct cleaner_job *job, int64_t start_offset)
{
        memset(t, 0, sizeof(*t));
        t->aborted = job->aborted;
        t->aborted_count = job->aborted_count;
        t->start_offset = start_offset;
}

static void txn_meta_free(struct txn_meta *t)
{
        free(t->ongoing);
        free(t->committed);
        free(t->kept);
}

int cleaner_grow(void **v, uint32_t *cap, uint32_t count, size_t elem)
{
        if (count < *cap)
                return 0;
        uint32_t n = *cap ? *cap * 2 : 16;
        void *p = realloc(*v, n * elem);
        if (!p)
                return -ENOMEM;
        *v = p;
        *cap = n;
        return 0;
}

static int txn_consume_up_to(struct txn_meta *t, int64_t offset)
{
        while (t->next < t->aborted_count && t->aborted[t->next].first_offset <= offset) {
                const struct txn_aborted *a = &t->aborted[t->next];
                uint32_t index = t->next++;
                /* A transaction that ended before the walk began has its
                 * marker behind us: taking it would make a later
                 * transaction of the producer look aborted. */
                if (a->last_offset < t->start_offset)
                        continue;
                bool is_known = false;
                for (uint32_t i = 0; i < t->ongoing_count; i++)
                        if (t->ongoing[i].producer_id == a->producer_id)
                                is_known = true;
                if (is_known)
                        continue;
                if (cleaner_grow((void **)&t->ongoing, &t->ongoing_cap, t->ongoing_count, sizeof(*t->ongoing)) < 0)
                        return -ENOMEM;
                t->ongoing[t->ongoing_count++] = (struct ongoing_aborted){ a->producer_id, index, false };
        }
        return 0;
}

static struct ongoing_aborted *txn_find_aborted(struct txn_meta *t, int64_t producer_id)
{
        for (uint32_t i = 0; i < t->ongoing_count; i++)
                if (t->ongoing[i].producer_id == producer_id)
                        return &t->ongoing[i];
        return NULL;
}

/* A data batch: returns 1 when it belongs to an aborted transaction. */
static int txn_on_batch(struct txn_meta *t, const struct record_batch_header *h)
{
        int rc = txn_consume_up_to(t, record_batch_last_offset(h));
        if (rc < 0)
                return rc;
        if (!record_batch_is_transactional(h))
                return 0;
        struct ongoing_aborted *a = txn_find_aborted(t, h->producer_id);
        if (a) {
                a->has_observed_batch = true;
                return 1;
        }
        for (uint32_t i = 0; i < t->committed_count; i++)
                if (t->committed[i] == h->producer_id)
                        return 0;
        if (cleaner_grow((void **)&t->committed, &t->committed_cap, t->committed_count, sizeof(*t->committed)) < 0)
                return -ENOMEM;
        t->committed[t->committed_count++] = h->producer_id;
        return 0;
}

/* A control batch: returns 1 when it may be discarded (its horizon
 * permitting), as Kafka's onControlBatchRead. is_index_kept: its aborted
 * transaction goes to the cleaned .txnindex. */
static int txn_on_control(struct txn_meta *t, const uint8_t *batch, const struct record_batch_header *h,
                          bool is_index_kept)
{
        int rc = txn_consume_up_to(t, record_batch_last_offset(h));
        if (rc < 0)
                return rc;
        struct record_iter it;
        struct record_view rec;
        if (record_iter_init(&it, batch, record_batch_size_bytes(h)) != KAFKA_NONE || !record_iter_next(&it, &rec))
                return 1;       /* an empty control batch was cleaned before */
        if (rec.key.len < 4)
                return 0;
        int16_t type = (int16_t)(rec.key.ptr[2] << 8 | rec.key.ptr[3]);
        if (type == 0) {        /* ABORT */
                struct ongoing_aborted *a = txn_find_aborted(t, h->producer_id);
                if (!a)
                        return 1;
                bool is_observed = a->has_observed_batch;
                uint32_t index = a->aborted_index;
                *a = t->ongoing[--t->ongoing_count];
                if (!is_observed)
                        return 1;
                if (is_index_kept) {
                        if (cleaner_grow((void **)&t->kept, &t->kept_cap, t->kept_count, sizeof(*t->kept)) < 0)
                                return -ENOMEM;
                        t->kept[t->kept_count++] = t->aborted[index];
                }
                return 0;
        }
        if (type == 1) {        /* COMMIT */
                for (uint32_t i = 0; i < t->committed_count; i++) {
                        if (t->committed[i] == h->producer_id) {
                                t->committed[i] = t->committed[--t->committed_count];
                                return 0;
                        }
                }
                return 1;
        }
        return 0;
}

/* ---- building the map ---- */

static bool is_cancelled(struct cleaner_job *job)
{
        return atomic_load_explicit(&job->is_cancelled, memory_order_relaxed);
}

/* Kafka's Throttler: every CLEANER_THROTTLE_CHECK_MS (or sooner, once that
 * period's worth of bytes is used), when the bytes read and written since
 * the last check came faster than the limit, sleep as long as they should
 * have taken (in slices, so a cancel is seen). */
#define CLEANER_THROTTLE_CHECK_MS 300
#define CLEANER_THROTTLE_SLICE_MS 100

static int64_t clock_ms(void);

static void throttle(struct cleaner_job *job, uint64_t bytes)
{
        double rate_max = job->limits.io_bytes_per_second_max;
        if (!(rate_max > 0) || rate_max >= 1e300)
                return;
        job->throttle_bytes += bytes;
        int64_t elapsed_ms = clock_ms() - job->throttle_start_ms;
        /* Checked once a period has passed or its bytes are used up, so
         * that a short burst cannot run far ahead of the rate either. */
        if (elapsed_ms < CLEANER_THROTTLE_CHECK_MS &&
            (double)job->throttle_bytes < rate_max * CLEANER_THROTTLE_CHECK_MS / 1000.0)
                return;
        double wanted_ms = (double)job->throttle_bytes * 1000.0 / rate_max;
        double sleep_ms = wanted_ms - (double)elapsed_ms;
        /* Bounded: a second per check at most, as the period restarts. */
        for (int slept = 0; sleep_ms > 0 && slept < 1000 / CLEANER_THROTTLE_SLICE_MS && !is_cancelled(job); slept++) {
                int64_t slice_ms = sleep_ms < CLEANER_THROTTLE_SLICE_MS ? (int64_t)sleep_ms + 1
                                                                        : CLEANER_THROTTLE_SLICE_MS;
                struct timespec ts = { slice_ms / 1000, (slice_ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
                sleep_ms -= (double)slice_ms;
        }
        job->throttle_start_ms = clock_ms();
        job->throttle_bytes = 0;
}

static size_t records_bytes_max(const struct cleaner_job *job)
{
        size_t four = (size_t)job->max_message_bytes * 4;
        return four > CLEANER_RECORDS_BYTES_MAX ? four : CLEANER_RECORDS_BYTES_MAX;
}

static size_t scratch_bytes(const struct cleaner_job *job)
{
        return records_bytes_max(job) * 9 / 4 + (1u << 20);
}

/* Kafka's buildOffsetMapForSegment. Returns 1 when the map filled up, 0
 * when the segment was read whole, or -errno. */
static int map_segment(struct cleaner_job *job, const struct cleaner_source *s, struct offset_map *m,
                       struct txn_meta *txn, struct src_reader *r, struct arena *scratch)
{
        uint32_t position = 0;
        r->fd = s->fd;
        r->size_bytes = s->size_bytes;
        r->buf_len = 0;
        for (uint32_t guard = 0; guard <= s->size_bytes / RECORD_BATCH_HEADER_BYTES; guard++) {
                if (is_cancelled(job))
                        return -ECANCELED;
                const uint8_t *batch;
                struct record_batch_header h;
                int rc = reader_next(r, position, &batch, &h);
                if (rc <= 0) {
                        if (rc < 0)
                                return rc;
                        break;
                }
                position += record_batch_size_bytes(&h);
                job->stats.bytes_read += record_batch_size_bytes(&h);
                throttle(job, record_batch_size_bytes(&h));
                int64_t last = record_batch_last_offset(&h);
                if (last < job->first_dirty_offset)
                        continue;
                if (record_batch_is_control(&h)) {
                        rc = txn_on_control(txn, batch, &h, false);
                        if (rc < 0)
                                return rc;
                } else {
                        rc = txn_on_batch(txn, &h);
                        if (rc < 0)
                                return rc;
                        if (rc == 0) {
                                struct record_iter it;
                                struct opened_batch o;
                                arena_reset(scratch);
                                rc = open_records(batch, &h, records_bytes_max(job), scratch, &o, &it);
                                if (rc < 0)
                                        return rc;
                                struct record_view rec;
                                while (record_iter_next(&it, &rec)) {
                                        if (rec.key.len < 0 || rec.offset < job->first_dirty_offset)
                                                continue;
                                        if (!map_put(m, &rec.key, rec.offset))
                                                return 1;
                                        job->stats.map_records++;
                                }
                                if (it.error_code != KAFKA_NONE)
                                        return -EBADMSG;
                        }
                }
                if (last > m->latest_offset)
                        m->latest_offset = last;
        }
        /* Offsets may have a gap at the segment's end (an earlier cleaning). */
        if (s->end_offset - 1 > m->latest_offset)
                m->latest_offset = s->end_offset - 1;
        return 0;
}

static int build_map(struct cleaner_job *job, struct offset_map *m, struct src_reader *r, struct arena *scratch)
{
        struct txn_meta txn;
        txn_meta_init(&txn, job, job->first_dirty_offset);
        int rc = 0;
        for (uint32_t i = 0; i < job->source_count && rc == 0; i++) {
                const struct cleaner_source *s = &job->sources[i];
                if (s->end_offset <= job->first_dirty_offset)
                        continue;
                rc = map_segment(job, s, m, &txn, r, scratch);
        }
        txn_meta_free(&txn);
        return rc < 0 ? rc : 0;
}

/* ---- filtering and rebuilding batches ---- */

static const struct cleaner_producer *find_producer(const struct cleaner_job *job, int64_t producer_id)
{
        uint32_t lo = 0, hi = job->producer_count;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (job->producers[mid].producer_id < producer_id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < job->producer_count && job->producers[lo].producer_id == producer_id)
                return &job->producers[lo];
        return NULL;
}

/* Kafka's isBatchLastRecordOfProducer. */
static bool is_last_of_producer(const struct cleaner_job *job, const struct record_batch_header *h)
{
        if (h->producer_id < 0)
                return false;
        const struct cleaner_producer *p = find_producer(job, h->producer_id);
        if (!p)
                return false;
        if (p->last_data_offset >= 0)
                return record_batch_last_offset(h) == p->last_data_offset;
        return record_batch_is_control(h) && h->producer_epoch == p->epoch;
}

/* The 61-byte header, CRC computed over what follows once written. */
static void write_header(uint8_t *out, const struct record_batch_header *src, int16_t attributes,
                         int64_t base_timestamp_ms, int64_t max_timestamp_ms, int32_t record_count,
                         uint32_t size_bytes)
{
        struct kwriter w;
        kw_init(&w, out, RECORD_BATCH_HEADER_BYTES);
        kw_i64(&w, src->base_offset);
        kw_u32(&w, size_bytes - RECORD_BATCH_LOG_OVERHEAD_BYTES);
        kw_i32(&w, src->partition_leader_epoch);
        kw_i8(&w, RECORD_BATCH_MAGIC);
        kw_u32(&w, 0);          /* the CRC, below */
        kw_i16(&w, attributes);
        kw_i32(&w, src->last_offset_delta);
        kw_i64(&w, base_timestamp_ms);
        kw_i64(&w, max_timestamp_ms);
        kw_i64(&w, src->producer_id);
        kw_i16(&w, src->producer_epoch);
        kw_i32(&w, src->base_sequence);
        kw_i32(&w, record_count);
        assert(w.p == w.end);
        kw_init(&w, out + RECORD_BATCH_OFFSET_CRC, 4);
        kw_u32(&w, record_batch_compute_crc(out, size_bytes));
}

/* Attributes Kafka computes for a rebuilt batch: codec, timestamp type,
 * transactional, control, delete horizon; bits 7-15 cleared. */
static int16_t rebuilt_attributes(const struct record_batch_header *h, int codec, bool has_horizon)
{
        int16_t a = (int16_t)(codec & RECORD_BATCH_ATTR_CODEC_MASK);
        a |= (int16_t)(h->attributes & (RECORD_BATCH_ATTR_LOG_APPEND_TIME | RECORD_BATCH_ATTR_TRANSACTIONAL |
                                        RECORD_BATCH_ATTR_CONTROL));
        if (has_horizon)
                a |= RECORD_BATCH_ATTR_DELETE_HORIZON;
        return a;
}

/* The output of one job: batches gathered, then appended to the cleaned segment. */
struct out_writer {
        struct segment seg;
        bool is_open;
        uint8_t *buf;
        size_t len;
        size_t cap;
};

static int out_flush(struct cleaner_job *job, struct out_writer *w)
{
        if (w->len == 0)
                return 0;
        throttle(job, w->len);
        uint32_t position;
        int rc = segment_append(&w->seg, w->buf, w->len, &position);
        w->len = 0;
        return rc;
}

/* Room for n more bytes in the writer's buffer (flushing first if need be). */
static int out_reserve(struct cleaner_job *job, struct out_writer *w, size_t n, uint8_t **out)
{
        if (w->len + n > w->cap) {
                int rc = out_flush(job, w);
                if (rc < 0)
                        return rc;
        }
        if (n > w->cap) {
                uint8_t *b = realloc(w->buf, n);
                if (!b)
                        return -ENOMEM;
                w->buf = b;
                w->cap = n;
        }
        *out = w->buf + w->len;
        return 0;
}

/*
 * Writes the retained records of a batch as a new batch (Kafka's
 * buildRetainedRecordsInto): plain records re-encoded after the header,
 * then compressed with the batch's codec. kept[] are indexes of the
 * records (in iteration order) to keep.
 */
static int write_rebuilt(struct cleaner_job *job, struct out_writer *w, const struct opened_batch *o,
                         const bool *keep, uint32_t record_total, uint32_t kept_count, int64_t horizon_ms,
                         struct arena *scratch)
{
        const struct record_batch_header *h = o->h;
        struct record_iter it;
        struct record_view rec;
        int rc;
        reopen_records(o, &it);
        /* First pass: the size of the plain records and the timestamps. */
        size_t plain_bytes = 0;
        int64_t first_ts = RECORD_BATCH_NO_TIMESTAMP, max_ts = RECORD_BATCH_NO_TIMESTAMP;
        bool is_first = true;
        for (uint32_t i = 0; record_iter_next(&it, &rec) && i < record_total; i++) {
                if (!keep[i])
                        continue;
                if (is_first)
                        first_ts = rec.timestamp_ms;
                is_first = false;
                if (rec.timestamp_ms > max_ts)
                        max_ts = rec.timestamp_ms;
        }
        if (it.error_code != KAFKA_NONE)
                return -EBADMSG;
        int64_t base_ts = horizon_ms != RECORD_BATCH_NO_TIMESTAMP ? horizon_ms : first_ts;
        if (record_batch_is_log_append_time(h))
                max_ts = h->max_timestamp_ms;
        reopen_records(o, &it);
        for (uint32_t i = 0; record_iter_next(&it, &rec) && i < record_total; i++) {
                if (!keep[i])
                        continue;
                size_t body = 1 + kw_varlong_size(rec.timestamp_ms - base_ts) +
                              kw_varint_size((int32_t)(rec.offset - h->base_offset)) +
                              kw_varint_size(rec.key.len) + (rec.key.len > 0 ? (size_t)rec.key.len : 0) +
                              kw_varint_size(rec.value.len) + (rec.value.len > 0 ? (size_t)rec.value.len : 0) +
                              kw_varint_size(rec.header_count) + rec.headers_bytes;
                plain_bytes += kw_varint_size((int32_t)body) + body;
        }
        uint8_t *plain = arena_alloc(scratch, plain_bytes + RECORD_BATCH_HEADER_BYTES);
        if (!plain)
                return -ENOMEM;
        struct kwriter kw;
        kw_init(&kw, plain + RECORD_BATCH_HEADER_BYTES, plain_bytes);
        reopen_records(o, &it);
        for (uint32_t i = 0; record_iter_next(&it, &rec) && i < record_total; i++) {
                if (!keep[i])
                        continue;
                int32_t offset_delta = (int32_t)(rec.offset - h->base_offset);
                size_t body = 1 + kw_varlong_size(rec.timestamp_ms - base_ts) + kw_varint_size(offset_delta) +
                              kw_varint_size(rec.key.len) + (rec.key.len > 0 ? (size_t)rec.key.len : 0) +
                              kw_varint_size(rec.value.len) + (rec.value.len > 0 ? (size_t)rec.value.len : 0) +
                              kw_varint_size(rec.header_count) + rec.headers_bytes;
                kw_varint(&kw, (int32_t)body);
                kw_u8(&kw, 0);
                kw_varlong(&kw, rec.timestamp_ms - base_ts);
                kw_varint(&kw, offset_delta);
                kw_varint(&kw, rec.key.len);
                if (rec.key.len > 0)
                        kw_raw(&kw, rec.key.ptr, (size_t)rec.key.len);
                kw_varint(&kw, rec.value.len);
                if (rec.value.len > 0)
                        kw_raw(&kw, rec.value.ptr, (size_t)rec.value.len);
                kw_varint(&kw, rec.header_count);
                kw_raw(&kw, rec.headers, rec.headers_bytes);
        }
        assert(kw.p == kw.end);
        int codec = record_batch_codec(h);
        const uint8_t *records = plain + RECORD_BATCH_HEADER_BYTES;
        size_t records_len = plain_bytes;
        if (codec != RECORD_BATCH_CODEC_NONE) {
                uint8_t *z;
                size_t zlen;
                rc = compress_encode((enum compress_codec)codec, compress_level_default((enum compress_codec)codec),
                                     plain + RECORD_BATCH_HEADER_BYTES, plain_bytes, 0, scratch, &z, &zlen);
                if (rc < 0)
                        return rc;
                records = z;
                records_len = zlen;
        }
        size_t size = RECORD_BATCH_HEADER_BYTES + records_len;
        if (size > INT32_MAX)
                return -EFBIG;
        uint8_t *out;
        rc = out_reserve(job, w, size, &out);
        if (rc < 0)
                return rc;
        memcpy(out + RECORD_BATCH_HEADER_BYTES, records, records_len);
        write_header(out, h, rebuilt_attributes(h, codec, horizon_ms != RECORD_BATCH_NO_TIMESTAMP), base_ts, max_ts,
                     (int32_t)kept_count, (uint32_t)size);
        w->len += size;
        job->stats.bytes_written += size;
        job->stats.records_written += kept_count;
        return 0;
}

/* DefaultRecordBatch.writeEmptyHeader: the batch's offsets and producer
 * fields, no records, no codec. */
static int write_empty(struct cleaner_job *job, struct out_writer *w, const struct record_batch_header *h)
{
        uint8_t *out;
        int rc = out_reserve(job, w, RECORD_BATCH_HEADER_BYTES, &out);
        if (rc < 0)
                return rc;
        write_header(out, h, rebuilt_attributes(h, RECORD_BATCH_CODEC_NONE, false), RECORD_BATCH_NO_TIMESTAMP,
                     h->max_timestamp_ms, 0, RECORD_BATCH_HEADER_BYTES);
        w->len += RECORD_BATCH_HEADER_BYTES;
        job->stats.bytes_written += RECORD_BATCH_HEADER_BYTES;
        return 0;
}

static int write_original(struct cleaner_job *job, struct out_writer *w, const uint8_t *batch, uint32_t size,
                          uint32_t record_count)
{
        uint8_t *out;
        int rc = out_reserve(job, w, size, &out);
        if (rc < 0)
                return rc;
        memcpy(out, batch, size);
        w->len += size;
        job->stats.bytes_written += size;
        job->stats.records_written += record_count;
        return 0;
}

enum batch_retention { RETAIN_EMPTY, DELETE, DELETE_EMPTY };

/* Kafka's cleanInto filter for one batch (checkBatchRetention, then
 * shouldRetainRecord per record, then filterTo's choice of output). */
static int clean_batch(struct cleaner_job *job, const struct offset_map *m, struct txn_meta *txn,
                       struct out_writer *w, const uint8_t *batch, const struct record_batch_header *h,
                       struct arena *scratch)
{
        bool is_control = record_batch_is_control(h);
        int can_discard = is_control ? txn_on_control(txn, batch, h, true) : txn_on_batch(txn, h);
        if (can_discard < 0)
                return can_discard;
        bool has_horizon = record_batch_has_delete_horizon(h);
        int64_t horizon_ms = has_horizon ? h->base_timestamp_ms : RECORD_BATCH_NO_TIMESTAMP;
        bool discard_records = is_control ? can_discard && has_horizon && horizon_ms <= job->now_ms
                                          : can_discard != 0;
        enum batch_retention retention;
        if (h->producer_id >= 0 && is_last_of_producer(job, h))
                retention = RETAIN_EMPTY;
        else if (record_batch_next_offset(h) == job->first_uncleanable_offset)
                retention = RETAIN_EMPTY;       /* the round's last offset stays known */
        else if (discard_records)
                retention = DELETE;
        else
                retention = DELETE_EMPTY;
        bool is_marker_for_empty_txn = can_discard && is_control;
        if (retention == DELETE)
                return 0;

        /* The records to keep. */
        uint32_t total = h->record_count > 0 ? (uint32_t)h->record_count : 0;
        bool *keep = arena_calloc(scratch, total ? total : 1, sizeof(bool));
        if (!keep)
                return -ENOMEM;
        struct record_iter it;
        struct opened_batch o;
        int rc = open_records(batch, h, records_bytes_max(job), scratch, &o, &it);
        if (rc < 0)
                return rc;
        struct record_view rec;
        uint32_t kept = 0, n = 0;
        bool has_tombstone = false;
        while (record_iter_next(&it, &rec)) {
                if (n >= total)
                        return -EBADMSG;
                bool is_kept;
                if (discard_records)
                        is_kept = false;
                else if (is_control)
                        is_kept = true;
                else if (rec.offset > m->latest_offset)
                        is_kept = true;
                else if (rec.key.len < 0)
                        is_kept = false;        /* Kafka counts it invalid and drops it */
                else {
                        bool is_latest = rec.offset >= map_get(m, &rec.key);
                        bool is_retained_value = rec.value.len >= 0 || !has_horizon || job->now_ms < horizon_ms;
                        is_kept = is_latest && is_retained_value;
                }
                keep[n++] = is_kept;
                if (is_kept) {
                        kept++;
                        if (rec.value.len < 0)
                                has_tombstone = true;
                }
        }
        if (it.error_code != KAFKA_NONE || n != total)
                return -EBADMSG;
        job->stats.records_read += total;

        if (kept > 0) {
                bool needs_horizon = (has_tombstone || is_marker_for_empty_txn) && !has_horizon;
                if (kept == total && !needs_horizon)
                        return write_original(job, w, batch, record_batch_size_bytes(h), kept);
                int64_t new_horizon = needs_horizon ? job->now_ms + job->delete_retention_ms : horizon_ms;
                return write_rebuilt(job, w, &o, keep, total, kept, new_horizon, scratch);
        }
        if (retention == RETAIN_EMPTY)
                return write_empty(job, w, h);
        return 0;
}

/* ---- groups ---- */

/* Kafka's groupSegmentsBySize over the sources below end_offset. */
static int group_sources(struct cleaner_job *job, uint32_t source_end)
{
        job->groups = calloc(source_end ? source_end : 1, sizeof(*job->groups));
        if (!job->groups)
                return -ENOMEM;
        uint32_t i = 0;
        while (i < source_end) {
                const struct cleaner_source *s = &job->sources[i];
                struct cleaner_group *g = &job->groups[job->group_count++];
                g->first = i;
                g->count = 1;
                g->base_offset = s->base_offset;
                uint64_t log_bytes = s->size_bytes, index_bytes = s->offset_index_bytes,
                         time_bytes = s->time_index_bytes;
                i++;
                while (i < source_end) {
                        const struct cleaner_source *n = &job->sources[i];
                        int64_t last = i + 1 < source_end ? job->sources[i + 1].base_offset - 1
                                                                  : job->first_uncleanable_offset - 1;
                        if (log_bytes + n->size_bytes > job->segment_bytes_max ||
                            index_bytes + n->offset_index_bytes > job->index_bytes_max ||
                            time_bytes + n->time_index_bytes > job->index_bytes_max ||
                            (n->size_bytes > 0 && last - g->base_offset > INT32_MAX))
                                break;
                        log_bytes += n->size_bytes;
                        index_bytes += n->offset_index_bytes;
                        time_bytes += n->time_index_bytes;
                        g->count++;
                        i++;
                }
        }
        return 0;
}

/* The .txnindex.cleaned of a group: the aborted transactions kept in it. */
static int write_txn_index(const struct logdir_ref *dir, int64_t base, const struct txn_aborted *t, uint32_t n)
{
        char name[SEGMENT_FILE_NAME_BYTES];
        segment_file_name_tail(name, base, TXN_INDEX_FILE_SUFFIX, CLEANER_CLEANED_TAIL);
        int fd = logdir_ref_openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
                return fd;
        int rc = 0;
        for (uint32_t i = 0; i < n && rc == 0; i++) {
                uint8_t e[TXN_INDEX_ENTRY_BYTES];
                txn_index_encode_entry(&t[i], e);
                ssize_t w = pwrite(fd, e, sizeof(e), (off_t)i * TXN_INDEX_ENTRY_BYTES);
                if (w != (ssize_t)sizeof(e))
                        rc = w < 0 ? -errno : -EIO;
        }
        if (rc == 0 && fdatasync(fd) < 0)
                rc = -errno;
        close(fd);
        return rc;
}

static int64_t clock_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Kafka's cleanSegments: one group into one `.cleaned` segment. */
static int clean_group(struct cleaner_job *job, struct cleaner_group *g, const struct offset_map *m,
                       struct txn_meta *txn, struct src_reader *r, struct out_writer *w, struct arena *scratch)
{
        struct segment_config sc;
        segment_config_init_default(&sc);
        sc.index_interval_bytes = job->index_interval_bytes;
        sc.index_bytes_max = job->index_bytes_max;
        sc.file_tail = CLEANER_CLEANED_TAIL;
        cleaner_unlink_files(job->dir, g->base_offset, CLEANER_CLEANED_TAIL);    /* left by a failed job */
        int rc = segment_create(&w->seg, job->dir, g->base_offset, &sc);
        if (rc < 0)
                return rc;
        w->is_open = true;
        w->len = 0;
        uint32_t kept_before = txn->kept_count;
        for (uint32_t k = g->first; k < g->first + g->count && rc == 0; k++) {
                const struct cleaner_source *s = &job->sources[k];
                uint32_t position = 0;
                r->fd = s->fd;
                r->size_bytes = s->size_bytes;
                r->buf_len = 0;
                for (uint32_t guard = 0; guard <= s->size_bytes / RECORD_BATCH_HEADER_BYTES; guard++) {
                        if (is_cancelled(job)) {
                                rc = -ECANCELED;
                                break;
                        }
                        const uint8_t *batch;
                        struct record_batch_header h;
                        rc = reader_next(r, position, &batch, &h);
                        if (rc <= 0)
                                break;
                        position += record_batch_size_bytes(&h);
                        throttle(job, record_batch_size_bytes(&h));
                        arena_reset(scratch);
                        rc = clean_batch(job, m, txn, w, batch, &h, scratch);
                        if (rc < 0)
                                break;
                }
        }
        if (rc == 0)
                rc = out_flush(job, w);
        if (rc == 0)
                rc = segment_seal(&w->seg);
        if (rc == 0)
                rc = segment_flush(&w->seg);
        g->size_bytes = w->seg.size_bytes;
        int close_rc = segment_close(&w->seg);
        w->is_open = false;
        if (rc == 0)
                rc = close_rc;
        if (rc == 0 && txn->kept_count > kept_before) {
                g->has_txn_index = true;
                rc = write_txn_index(job->dir, g->base_offset, txn->kept + kept_before, txn->kept_count - kept_before);
        }
        if (rc == 0) {
                /* Kafka keeps the last modification time of the originals. */
                char name[SEGMENT_FILE_NAME_BYTES];
                segment_file_name_tail(name, g->base_offset, SEGMENT_LOG_FILE_SUFFIX, CLEANER_CLEANED_TAIL);
                int fd = logdir_ref_openat(job->dir, name, O_RDONLY, 0);
                const struct cleaner_source *last = &job->sources[g->first + g->count - 1];
                if (fd >= 0) {
                        struct timespec times[2] = {
                                { .tv_nsec = UTIME_OMIT },
                                { .tv_sec = last->last_modified_ms / 1000,
                                  .tv_nsec = (last->last_modified_ms % 1000) * 1000000 },
                        };
                        (void)futimens(fd, times);
                        close(fd);
                }
        }
        return rc;
}


void cleaner_job_free_results(struct cleaner_job *job)
{
        free(job->groups);
        job->groups = NULL;
        job->group_count = 0;
        free(job->kept_aborted);
        job->kept_aborted = NULL;
        job->kept_aborted_count = 0;
}

static int cmp_by_last_offset(const void *a, const void *b)
{
        const struct txn_aborted *x = a, *y = b;
        return x->last_offset < y->last_offset ? -1 : x->last_offset > y->last_offset;
}

int cleaner_run(struct cleaner_job *job)
{
        struct offset_map m = { 0 };
        struct src_reader r = { .fd = -1 };
        struct out_writer w = { 0 };
        struct arena scratch;
        struct txn_meta txn;
        int64_t started_ms = clock_ms();
        int rc;

        assert(job->source_count > 0 && job->first_dirty_offset < job->first_uncleanable_offset);
        job->groups = NULL;
        job->group_count = 0;
        job->kept_aborted = NULL;
        job->kept_aborted_count = 0;
        memset(&job->stats, 0, sizeof(job->stats));
        job->throttle_start_ms = started_ms;
        job->throttle_bytes = 0;
        arena_init(&scratch, scratch_bytes(job));
        txn_meta_init(&txn, job, job->sources[0].base_offset);
        r.buf = malloc(CLEANER_READ_BUFFER_BYTES);
        w.buf = malloc(CLEANER_WRITE_BUFFER_BYTES);
        if (!r.buf || !w.buf) {
                rc = -ENOMEM;
                goto out;
        }
        r.cap = CLEANER_READ_BUFFER_BYTES;
        w.cap = CLEANER_WRITE_BUFFER_BYTES;

        /* 1. The map over the dirty section, as far as it fits. Its size:
         * at most the memory given, and no more than the dirty bytes could
         * hold keys for (an uncompressed record takes at least 8 bytes). */
        uint64_t dirty_bytes = 0;
        for (uint32_t i = 0; i < job->source_count; i++)
                if (job->sources[i].end_offset > job->first_dirty_offset)
                        dirty_bytes += job->sources[i].size_bytes;
        rc = map_init(&m, job->limits.map_bytes_max, job->limits.map_load_factor, dirty_bytes / 8 + 1);
        if (rc < 0)
                goto out;
        rc = build_map(job, &m, &r, &scratch);
        if (rc < 0)
                goto out;
        if (m.latest_offset < job->first_dirty_offset) {
                rc = -ENOSPC;   /* not even one batch fit: log.cleaner.dedupe.buffer.size too small */
                goto out;
        }
        job->end_offset = m.latest_offset + 1;

        /* 2. Every segment below the end, grouped, each group cleaned into
         * a new segment. */
        uint32_t source_end = 0;
        while (source_end < job->source_count && job->sources[source_end].base_offset < job->end_offset)
                source_end++;
        rc = group_sources(job, source_end);
        if (rc < 0)
                goto out;
        for (uint32_t i = 0; i < job->group_count && rc == 0; i++)
                rc = clean_group(job, &job->groups[i], &m, &txn, &r, &w, &scratch);
        if (rc < 0)
                goto out;
        /* Entries kept, for the partition's list: ordered as the .txnindex. */
        if (txn.kept_count > 0) {
                qsort(txn.kept, txn.kept_count, sizeof(*txn.kept), cmp_by_last_offset);
                job->kept_aborted = txn.kept;
                job->kept_aborted_count = txn.kept_count;
                txn.kept = NULL;
        }
out:
        if (w.is_open)
                segment_abandon(&w.seg);
        if (rc < 0) {
                cleaner_discard_files(job);
                free(job->groups);
                job->groups = NULL;
                job->group_count = 0;
        }
        txn_meta_free(&txn);
        map_free(&m);
        free(r.buf);
        free(w.buf);
        arena_free(&scratch);
        compress_thread_release();
        job->stats.elapsed_ms = clock_ms() - started_ms;
        job->result = rc;
        return rc;
}

/* ---- the pool ---- */

#define CLEANER_THREADS_MAX 64

struct cleaner_pool {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        struct cleaner_job *head, *tail;
        bool is_stopping;
        uint32_t thread_count;
        pthread_t threads[CLEANER_THREADS_MAX];
};

static void *pool_main(void *arg)
{
        struct cleaner_pool *pool = arg;
        pthread_mutex_lock(&pool->lock);
        for (;;) {
                while (!pool->head && !pool->is_stopping)
                        pthread_cond_wait(&pool->cond, &pool->lock);
                struct cleaner_job *job = pool->head;
                if (!job)
                        break;
                pool->head = job->next;
                if (!pool->head)
                        pool->tail = NULL;
                job->next = NULL;
                if (pool->is_stopping)
                        atomic_store(&job->is_cancelled, true);
                pthread_mutex_unlock(&pool->lock);
                if (is_cancelled(job)) {
                        job->result = -ECANCELED;
                        job->groups = NULL;
                        job->group_count = 0;
                        job->kept_aborted = NULL;
                        job->kept_aborted_count = 0;
                } else {
                        cleaner_run(job);
                }
                job->done(job);
                pthread_mutex_lock(&pool->lock);
        }
        pthread_mutex_unlock(&pool->lock);
        return NULL;
}

int cleaner_pool_start(uint32_t thread_count, struct cleaner_pool **out)
{
        struct cleaner_pool *pool = calloc(1, sizeof(*pool));
        if (!pool)
                return -ENOMEM;
        if (thread_count == 0)
                thread_count = 1;
        if (thread_count > CLEANER_THREADS_MAX)
                thread_count = CLEANER_THREADS_MAX;
        pthread_mutex_init(&pool->lock, NULL);
        pthread_cond_init(&pool->cond, NULL);
        for (uint32_t i = 0; i < thread_count; i++) {
                int rc = pthread_create(&pool->threads[i], NULL, pool_main, pool);
                if (rc != 0) {
                        pool->thread_count = i;
                        cleaner_pool_stop(pool);
                        return -rc;
                }
                pool->thread_count = i + 1;
        }
        *out = pool;
        return 0;
}

void cleaner_pool_submit(struct cleaner_pool *pool, struct cleaner_job *job)
{
        job->next = NULL;
        pthread_mutex_lock(&pool->lock);
        if (pool->tail)
                pool->tail->next = job;
        else
                pool->head = job;
        pool->tail = job;
        pthread_cond_signal(&pool->cond);
        pthread_mutex_unlock(&pool->lock);
}

void cleaner_pool_stop(struct cleaner_pool *pool)
{
        if (!pool)
                return;
        pthread_mutex_lock(&pool->lock);
        pool->is_stopping = true;
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->lock);
        for (uint32_t i = 0; i < pool->thread_count; i++)
                pthread_join(pool->threads[i], NULL);
        pthread_cond_destroy(&pool->cond);
        pthread_mutex_destroy(&pool->lock);
        free(pool);
}
