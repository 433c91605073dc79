/*
 * test_cleaner.c - log compaction (cleaner.h) through a real partition:
 * records appended with partition_append, a job prepared, run and
 * finished as the broker's homes do (synchronously here), and the log read
 * back with partition_read and decoded byte by byte, held against Kafka's
 * Cleaner and MemoryRecords.filterTo:
 *
 *   - the latest record of each key is kept at its offset, older ones go,
 *     the active segment is never touched, small segments are grouped;
 *   - a tombstone is kept with a delete horizon (bit 6, baseTimestamp)
 *     and removed by a cleaning after the horizon (a fake clock);
 *   - records of an aborted transaction go; the producer's last batch is
 *     kept empty, its sequence and offsets intact;
 *   - compressed batches stay compressed with their codec, CRCs valid;
 *   - cleaner-offset-checkpoint says where the next cleaning starts;
 *   - a crash after the swap's commit point is finished at open, one
 *     before it is rolled back; a read in flight keeps the old bytes.
 *
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/cleaner.h"
#include "log/partition.h"
#include "log/segment.h"
#include "protocol/arena.h"
#include "protocol/compress.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"

#define TEST_DIR "t-0"
#define TEST_NOW_MS 1700000000000LL
#define TEST_RECORDS_MAX 4096
#define TEST_MAP_BYTES (1u << 20)
#define TEST_READ_BYTES (4u << 20)

static char tmp_root[64];
static int root_fd = -1;
static char err_line[512];
static int64_t now_ms;

/* ---- a log_io done at once ---- */

static int fake_datasync(void *ctx, int fd, log_io_done_fn done, void *arg)
{
        (void)ctx;
        done(arg, fdatasync(fd) < 0 ? -errno : 0);
        return 0;
}

static int fake_write(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done, void *arg)
{
        (void)ctx;
        ssize_t n = pwrite(fd, buf, len, (off_t)offset);
        done(arg, n == (ssize_t)len ? 0 : -EIO);
        return 0;
}

static int64_t fake_now_ms(void *ctx)
{
        (void)ctx;
        return now_ms;
}

static const struct log_io_ops fake_ops = { .datasync = fake_datasync, .write = fake_write, .now_ms = fake_now_ms };
static const struct log_io fake_io = { &fake_ops, NULL };

/* ---- fixture ---- */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

static void setup(void)
{
        strcpy(tmp_root, "/tmp/runnel-cleaner-XXXXXX");
        cr_assert_not_null(mkdtemp(tmp_root));
        root_fd = open(tmp_root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        cr_assert_geq(root_fd, 0);
        now_ms = TEST_NOW_MS;
}

static void teardown(void)
{
        if (root_fd >= 0)
                close(root_fd);
        root_fd = -1;
        nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(cleaner, .init = setup, .fini = teardown);

static struct partition_options options(void)
{
        struct partition_options o;
        memset(&o, 0, sizeof(o));
        o.dir_fd = root_fd;
        o.dir_name = TEST_DIR;
        topic_config_init_defaults(&o.config);
        o.config.is_cleanup_compact = true;
        o.config.is_cleanup_delete = false;
        o.config.segment_bytes = 1024;
        o.config.min_cleanable_dirty_ratio = 0.01;
        o.config.delete_retention_ms = 60000;
        o.is_durable_acks = false;
        return o;
}

static struct partition *open_partition(const struct partition_options *o)
{
        struct partition *p = NULL;
        int rc = partition_open(o, &fake_io, &p, err_line, sizeof(err_line));
        cr_assert_eq(rc, 0, "partition_open: %s", err_line);
        return p;
}

static void close_partition(struct partition *p)
{
        partition_flush(p);
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_snapshot_producers(p), 0);
        partition_close(p);
}

/* ---- appending ---- */

struct rec {
        const char *key;
        const char *value;              /* NULL: a tombstone */
};

static void append_done(struct partition_append *a)
{
        cr_assert_eq(a->error_code, KAFKA_NONE, "append: %d %s", a->error_code, a->error_message);
}

/* One batch of n records, from producer_id (-1: none), appended; returns
 * its base offset. */
static int64_t append_recs(struct partition *p, const struct rec *recs, uint32_t n, int64_t producer_id,
                           int32_t seq, bool is_txn)
{
        struct record_spec rs[16];
        cr_assert_leq(n, 16);
        for (uint32_t i = 0; i < n; i++)
                rs[i] = (struct record_spec){
                        { (const uint8_t *)recs[i].key, (int32_t)strlen(recs[i].key) },
                        { (const uint8_t *)recs[i].value, recs[i].value ? (int32_t)strlen(recs[i].value) : -1 },
                        now_ms, NULL, 0,
                };
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, rs, n);
        if (producer_id >= 0) {
                spec.producer_id = producer_id;
                spec.producer_epoch = 0;
                spec.base_sequence = seq;
        }
        if (is_txn)
                spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
        size_t len = record_batch_encoded_size(&spec);
        uint8_t *buf = malloc(len);
        cr_assert_eq(record_batch_encode(&spec, buf, len), len);
        struct partition_append a = { .batches = buf, .len = len, .done = append_done, .is_txn_verified = true };
        partition_append(p, &a);
        free(buf);
        return a.base_offset;
}

static int64_t put(struct partition *p, const char *key, const char *value)
{
        struct rec r = { key, value };
        return append_recs(p, &r, 1, -1, 0, false);
}

static int64_t marker(struct partition *p, int64_t producer_id, bool is_commit)
{
        struct partition_marker m = { producer_id, 0, 0, is_commit };
        struct partition_append a = { .marker = &m, .done = append_done };
        partition_append(p, &a);
        return a.base_offset;
}

/* ---- cleaning ---- */

/* One cleaning as a home runs it; returns whether one ran. */
static const struct cleaner_limits test_limits = { TEST_MAP_BYTES, 0.9, 1.7976931348623157E308 };

static bool clean(struct partition *p)
{
        struct cleaner_job *job = NULL;
        int rc = partition_cleaner_prepare(p, now_ms, &test_limits, &job);
        cr_assert_geq(rc, 0);
        if (rc == 0)
                return false;
        cr_assert_eq(cleaner_run(job), 0, "cleaner_run: %s", strerror(-job->result));
        partition_cleaner_finish(p, job);
        return true;
}

/* ---- reading back ---- */

struct seen {
        int64_t offset;
        char key[32];
        char value[32];
        bool is_tombstone;
        int64_t batch_base;
        int16_t batch_attributes;
        int32_t batch_record_count;
};

struct seen_batch {
        struct record_batch_header h;
};

static struct seen seen[TEST_RECORDS_MAX];
static int seen_count;
static struct seen_batch seen_batches[TEST_RECORDS_MAX];
static int seen_batch_count;

/* Every batch from the log start to the high watermark, checked (CRC,
 * offsets increasing) and decoded into seen[] / seen_batches[]. */
static void read_all(struct partition *p)
{
        seen_count = 0;
        seen_batch_count = 0;
        int64_t offset = partition_log_start_offset(p);
        int64_t last_offset = -1;
        uint8_t *buf = malloc(TEST_READ_BYTES);
        for (int rounds = 0; offset < partition_high_watermark(p); rounds++) {
                cr_assert_lt(rounds, 10000);
                struct partition_read r = { .fetch_offset = offset, .max_bytes = TEST_READ_BYTES,
                                            .is_first_batch_whole = true };
                partition_read(p, &r);
                cr_assert_eq(r.error_code, KAFKA_NONE);
                if (r.len == 0) {
                        partition_read_release(&r);
                        break;
                }
                cr_assert_leq(r.len, TEST_READ_BYTES);
                cr_assert_eq(pread(r.fd, buf, r.len, (off_t)r.file_position), (ssize_t)r.len);
                partition_read_release(&r);
                struct record_batch_iter it;
                struct record_batch_view v;
                record_batch_iter_init(&it, buf, r.len);
                while (record_batch_iter_next(&it, &v) == RECORD_BATCH_FRAME_OK) {
                        const struct record_batch_header *h = &v.header;
                        cr_assert_eq(h->crc, record_batch_compute_crc(v.bytes, v.size_bytes), "CRC at %lld",
                                     (long long)h->base_offset);
                        cr_assert_gt(h->base_offset, last_offset, "offsets go backwards");
                        last_offset = record_batch_last_offset(h);
                        cr_assert_lt(seen_batch_count, TEST_RECORDS_MAX);
                        seen_batches[seen_batch_count++].h = *h;
                        struct arena a;
                        arena_init(&a, 64u << 20);
                        struct record_iter ri;
                        if (record_batch_codec(h) == 0) {
                                cr_assert_eq(record_iter_init(&ri, v.bytes, v.size_bytes), KAFKA_NONE);
                        } else {
                                uint8_t *recs;
                                size_t len;
                                cr_assert_eq(compress_decode((enum compress_codec)record_batch_codec(h),
                                                             v.bytes + RECORD_BATCH_HEADER_BYTES,
                                                             v.size_bytes - RECORD_BATCH_HEADER_BYTES, 64u << 20, &a,
                                                             &recs, &len), 0);
                                record_iter_init_records(&ri, h, recs, len);
                        }
                        struct record_view rec;
                        while (record_iter_next(&ri, &rec)) {
                                cr_assert_leq(rec.offset, record_batch_last_offset(h));
                                if (record_batch_is_control(h))
                                        continue;
                                cr_assert_lt(seen_count, TEST_RECORDS_MAX);
                                struct seen *s = &seen[seen_count++];
                                memset(s, 0, sizeof(*s));
                                s->offset = rec.offset;
                                snprintf(s->key, sizeof(s->key), "%.*s", rec.key.len, (const char *)rec.key.ptr);
                                s->is_tombstone = rec.value.len < 0;
                                if (!s->is_tombstone)
                                        snprintf(s->value, sizeof(s->value), "%.*s", rec.value.len,
                                                 (const char *)rec.value.ptr);
                                s->batch_base = h->base_offset;
                                s->batch_attributes = h->attributes;
                                s->batch_record_count = h->record_count;
                        }
                        cr_assert_eq(ri.error_code, KAFKA_NONE, "%s", ri.reason);
                        arena_free(&a);
                        offset = record_batch_next_offset(h);
                }
        }
        free(buf);
}

static const struct seen *find_key(const char *key)
{
        const struct seen *found = NULL;
        for (int i = 0; i < seen_count; i++)
                if (strcmp(seen[i].key, key) == 0)
                        found = &seen[i];
        return found;
}

static int count_key(const char *key)
{
        int n = 0;
        for (int i = 0; i < seen_count; i++)
                n += strcmp(seen[i].key, key) == 0;
        return n;
}

/* Writes n versions of keys k0..k<keys-1>, key-major within each round;
 * remembers the offset of each key's last version in last[]. */
static void write_versions(struct partition *p, int keys, int rounds, int64_t *last)
{
        for (int v = 0; v < rounds; v++)
                for (int k = 0; k < keys; k++) {
                        char key[16], value[16];
                        snprintf(key, sizeof(key), "k%d", k);
                        snprintf(value, sizeof(value), "v%d", v);
                        last[k] = put(p, key, value);
                }
}

/* Every key k0..k<keys-1> is there once more, at last[k], with value. */
static void expect_latest(int keys, const int64_t *last, const char *value)
{
        for (int k = 0; k < keys; k++) {
                char key[16];
                snprintf(key, sizeof(key), "k%d", k);
                const struct seen *s = find_key(key);
                cr_assert_not_null(s, "%s lost", key);
                cr_assert_eq(s->offset, last[k], "%s at %lld, written at %lld", key, (long long)s->offset,
                             (long long)last[k]);
                if (value)
                        cr_assert_str_eq(s->value, value);
        }
}

static bool dir_has_tail(const char *tail)
{
        DIR *d = opendir(tmp_root);
        char path[128];
        snprintf(path, sizeof(path), "%s/" TEST_DIR, tmp_root);
        closedir(d);
        d = opendir(path);
        cr_assert_not_null(d);
        bool found = false;
        struct dirent *e;
        while ((e = readdir(d)))
                if (strstr(e->d_name, tail))
                        found = true;
        closedir(d);
        return found;
}

/* A partition with 20 versions of k0..k9 written; last[] as write_versions. */
static struct partition *open_with_versions(const struct partition_options *o, int64_t last[10])
{
        struct partition *p = open_partition(o);
        write_versions(p, 10, 20, last);
        return p;
}

/* A job prepared and run, not finished. */
static struct cleaner_job *prepare_and_run(struct partition *p)
{
        struct cleaner_job *job = NULL;
        cr_assert_eq(partition_cleaner_prepare(p, now_ms, &test_limits, &job), 1);
        cr_assert_eq(cleaner_run(job), 0, "cleaner_run: %s", strerror(-job->result));
        return job;
}

/* ---- tests ---- */

Test(cleaner, keeps_the_latest_record_of_each_key_at_its_offset)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        uint32_t segments_before = partition_segment_count(p);
        cr_assert_gt(segments_before, 4, "small segments roll");
        read_all(p);
        int records_before = seen_count;
        int64_t hw = partition_high_watermark(p);

        cr_assert(clean(p));
        read_all(p);
        cr_assert_lt(seen_count, records_before);
        cr_assert_eq(partition_high_watermark(p), hw, "offsets never change");
        expect_latest(10, last, "v19");
        /* A second cleaning finds small cleaned segments: it groups them,
         * as Kafka's groupSegmentsBySize does. */
        write_versions(p, 10, 20, last);
        uint32_t segments_dirty = partition_segment_count(p);
        cr_assert(clean(p));
        cr_assert_lt(partition_segment_count(p) + 5, segments_dirty, "cleaned segments are grouped (%u, %u)",
                     partition_segment_count(p), segments_dirty);
        read_all(p);
        expect_latest(10, last, "v19");
        close_partition(p);

        /* A restart reads the same log and resumes from the checkpoint. */
        p = open_partition(&o);
        int before = seen_count;
        read_all(p);
        cr_assert_eq(seen_count, before);
        int64_t dirty = -1;
        cr_assert_eq(cleaner_checkpoint_read(root_fd, "t", 0, &dirty), 0);
        cr_assert_gt(dirty, 0);
        double ratio;
        cr_assert_not(partition_cleaner_check(p, now_ms, &ratio), "nothing new to clean (ratio %f)", ratio);
        close_partition(p);
}

Test(cleaner, leaves_a_log_below_the_dirty_ratio_alone)
{
        struct partition_options o = options();
        o.config.min_cleanable_dirty_ratio = 0.9;
        struct partition *p = open_partition(&o);
        int64_t last[4];
        write_versions(p, 4, 30, last);
        cr_assert(clean(p), "never cleaned: everything is dirty");
        /* One more dirty segment beside the clean ones: below 0.9. */
        uint32_t segments = partition_segment_count(p);
        for (int i = 0; i < 200 && partition_segment_count(p) < segments + 2; i++)
                write_versions(p, 4, 1, last);
        double ratio;
        bool is_due = partition_cleaner_check(p, now_ms, &ratio);
        cr_assert_gt(ratio, 0.0);
        cr_assert_eq(is_due, ratio > 0.9, "ratio %f", ratio);
        cr_assert_not(is_due, "ratio %f", ratio);
        cr_assert_not(clean(p));
        close_partition(p);
}

Test(cleaner, keeps_segments_younger_than_min_compaction_lag)
{
        struct partition_options o = options();
        o.config.min_compaction_lag_ms = 3600000;
        struct partition *p = open_partition(&o);
        int64_t last[4];
        write_versions(p, 4, 30, last);
        cr_assert_not(clean(p), "every segment is younger than the lag");
        now_ms += 3600001;
        cr_assert(clean(p));
        close_partition(p);
}

Test(cleaner, keeps_a_tombstone_until_its_delete_horizon)
{
        struct partition_options o = options();
        struct partition *p = open_partition(&o);
        put(p, "gone", "alive");
        int64_t tomb = put(p, "gone", NULL);
        int64_t last[8];
        write_versions(p, 8, 10, last);

        cr_assert(clean(p));
        read_all(p);
        const struct seen *s = find_key("gone");
        cr_assert_not_null(s, "a tombstone is kept through the first cleaning");
        cr_assert(s->is_tombstone);
        cr_assert_eq(s->offset, tomb);
        cr_assert_eq(count_key("gone"), 1, "the value it deleted is gone");
        cr_assert(s->batch_attributes & RECORD_BATCH_ATTR_DELETE_HORIZON, "the batch carries a delete horizon");
        for (int i = 0; i < seen_batch_count; i++)
                if (seen_batches[i].h.base_offset == s->batch_base)
                        cr_assert_eq(seen_batches[i].h.base_timestamp_ms, now_ms + o.config.delete_retention_ms);

        /* Before the horizon a new cleaning keeps it, after it removes it. */
        write_versions(p, 8, 10, last);
        now_ms += o.config.delete_retention_ms / 2;
        cr_assert(clean(p));
        read_all(p);
        cr_assert_not_null(find_key("gone"));
        write_versions(p, 8, 10, last);
        now_ms += o.config.delete_retention_ms;
        cr_assert(clean(p));
        read_all(p);
        cr_assert_null(find_key("gone"), "removed after delete.retention.ms");
        expect_latest(8, last, NULL);
        close_partition(p);
}

Test(cleaner, removes_aborted_records_and_keeps_the_producers_last_batch_empty)
{
        struct partition_options o = options();
        struct partition *p = open_partition(&o);
        int64_t good = put(p, "x", "good");
        struct rec bad[2] = { { "x", "bad" }, { "y", "bad" } };
        int64_t aborted = append_recs(p, bad, 2, 42, 0, true);
        int64_t abort_marker = marker(p, 42, false);
        struct rec ok[1] = { { "z", "committed" } };
        int64_t committed = append_recs(p, ok, 1, 43, 0, true);
        marker(p, 43, true);
        int64_t last[8];
        write_versions(p, 8, 10, last);

        cr_assert(clean(p));
        read_all(p);
        const struct seen *x = find_key("x");
        cr_assert_not_null(x);
        cr_assert_str_eq(x->value, "good", "the aborted value never wins");
        cr_assert_eq(x->offset, good);
        cr_assert_null(find_key("y"), "aborted records are removed");
        const struct seen *z = find_key("z");
        cr_assert_not_null(z);
        cr_assert_eq(z->offset, committed);
        /* Producer 42's last batch stays, empty, with its offsets and sequence. */
        bool is_empty_kept = false, is_marker_kept = false;
        for (int i = 0; i < seen_batch_count; i++) {
                const struct record_batch_header *h = &seen_batches[i].h;
                if (h->base_offset == aborted) {
                        is_empty_kept = true;
                        cr_assert_eq(h->record_count, 0);
                        cr_assert_eq(h->producer_id, 42);
                        cr_assert_eq(h->base_sequence, 0);
                        cr_assert_eq(record_batch_last_offset(h), aborted + 1);
                        cr_assert_eq(h->batch_length, RECORD_BATCH_LENGTH_MIN);
                }
                if (h->base_offset == abort_marker)
                        is_marker_kept = true;
        }
        cr_assert(is_empty_kept, "the producer's last batch is retained empty");
        cr_assert(is_marker_kept, "the abort marker stays while its transaction had batches");
        close_partition(p);

        /* read_committed consumers still learn the transaction was aborted. */
        p = open_partition(&o);
        struct partition_read r = { .fetch_offset = 0, .max_bytes = 1 << 20, .is_read_committed = true };
        partition_read(p, &r);
        cr_assert_eq(r.aborted_count, 1);
        cr_assert_eq(r.aborted[0].producer_id, 42);
        partition_read_release(&r);
        close_partition(p);
}

Test(cleaner, keeps_compressed_batches_compressed)
{
        struct partition_options o = options();
        o.config.compression_type = TOPIC_COMPRESSION_GZIP;
        o.config.segment_bytes = 2048;
        struct partition *p = open_partition(&o);
        int64_t last[6] = { 0 };
        for (int round = 0; round < 30; round++) {
                struct rec recs[3];
                char keys[3][16], values[3][16];
                for (int i = 0; i < 3; i++) {
                        int k = (round + i) % 6;
                        snprintf(keys[i], sizeof(keys[i]), "c%d", k);
                        snprintf(values[i], sizeof(values[i]), "r%d", round);
                        recs[i] = (struct rec){ keys[i], values[i] };
                }
                int64_t base = append_recs(p, recs, 3, -1, 0, false);
                for (int i = 0; i < 3; i++)
                        last[(round + i) % 6] = base + i;
        }
        cr_assert(clean(p));
        read_all(p);
        for (int i = 0; i < seen_batch_count; i++)
                if (seen_batches[i].h.record_count > 0)
                        cr_assert_eq(record_batch_codec(&seen_batches[i].h), RECORD_BATCH_CODEC_GZIP);
        for (int k = 0; k < 6; k++) {
                char key[16];
                snprintf(key, sizeof(key), "c%d", k);
                const struct seen *s = find_key(key);
                cr_assert_not_null(s);
                cr_assert_eq(s->offset, last[k]);
        }
        close_partition(p);
}

Test(cleaner, keeps_an_idempotent_producers_last_batch_empty)
{
        struct partition_options o = options();
        struct partition *p = open_partition(&o);
        struct rec r = { "p", "first" };
        int64_t idem = append_recs(p, &r, 1, 7, 0, false);
        int64_t last[8];
        put(p, "p", "second");
        write_versions(p, 8, 10, last);
        cr_assert(clean(p));
        read_all(p);
        cr_assert_eq(count_key("p"), 1);
        cr_assert_str_eq(find_key("p")->value, "second");
        bool found = false;
        for (int i = 0; i < seen_batch_count; i++)
                if (seen_batches[i].h.base_offset == idem) {
                        found = true;
                        cr_assert_eq(seen_batches[i].h.record_count, 0);
                        cr_assert_eq(seen_batches[i].h.producer_id, 7);
                        cr_assert_eq(seen_batches[i].h.base_sequence, 0);
                }
        cr_assert(found, "the sequence of producer 7 survives the cleaning");
        close_partition(p);
}

Test(cleaner, finishes_a_swap_interrupted_after_its_commit_point)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        /* What a finished cleaning leaves, on a copy of the data. */
        struct cleaner_job *job = prepare_and_run(p);
        cr_assert_geq(job->group_count, 1);
        /* The crash: the first group committed (.swap), one old segment of
         * it already removed, nothing renamed further. */
        cr_assert_eq(cleaner_commit_group(job->dir, &job->groups[0], true), 0);
        if (job->groups[0].count > 1)
                cleaner_unlink_segment(job->dir, job->sources[job->groups[0].first + 1].base_offset);
        cr_assert(dir_has_tail(".swap"));
        job->result = -ECANCELED;       /* the home never swaps it */
        partition_cleaner_finish(p, job);
        partition_close(p);             /* unclean: no snapshot, nothing flushed */

        o.is_clean_shutdown = false;
        p = open_partition(&o);
        cr_assert_not(dir_has_tail(".swap"), "the swap is finished at open");
        cr_assert_not(dir_has_tail(".cleaned"));
        read_all(p);
        expect_latest(10, last, "v19");
        close_partition(p);
}

Test(cleaner, rolls_back_a_cleaning_interrupted_before_its_commit_point)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        read_all(p);
        int before = seen_count;
        struct cleaner_job *job = prepare_and_run(p);
        /* Crash with the .cleaned files written: simulated by not removing them. */
        struct cleaner_group *groups = job->groups;
        uint32_t group_count = job->group_count;
        job->groups = NULL;
        job->group_count = 0;
        job->result = -ECANCELED;
        partition_cleaner_finish(p, job);
        free(groups);
        (void)group_count;
        cr_assert(dir_has_tail(".cleaned"));
        partition_close(p);
        p = open_partition(&o);
        cr_assert_not(dir_has_tail(".cleaned"), ".cleaned files go at open");
        read_all(p);
        cr_assert_eq(seen_count, before, "the log is as it was");
        close_partition(p);
}

Test(cleaner, a_read_in_flight_keeps_the_replaced_segment)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        struct partition_read r = { .fetch_offset = 0, .max_bytes = 4096, .is_first_batch_whole = true };
        partition_read(p, &r);
        cr_assert_gt(r.len, 0);
        uint8_t before[4096], after[4096];
        cr_assert_eq(pread(r.fd, before, r.len, (off_t)r.file_position), (ssize_t)r.len);

        cr_assert(clean(p));
        /* The old file is unlinked but open: the read sends what it found. */
        cr_assert_eq(pread(r.fd, after, r.len, (off_t)r.file_position), (ssize_t)r.len);
        cr_assert_eq(memcmp(before, after, r.len), 0);
        partition_read_release(&r);
        read_all(p);
        cr_assert_not_null(find_key("k0"));
        close_partition(p);
}

Test(cleaner, a_close_during_a_cleaning_waits_for_it)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        struct cleaner_job *job = NULL;
        cr_assert_eq(partition_cleaner_prepare(p, now_ms, &test_limits, &job), 1);
        partition_close(p);     /* cancels the job; the partition waits for it */
        cr_assert(atomic_load(&job->is_cancelled));
        cr_assert_eq(cleaner_run(job), -ECANCELED);
        partition_cleaner_finish(p, job);       /* frees the partition */
        cr_assert_not(dir_has_tail(".cleaned"));
        p = open_partition(&o);
        read_all(p);
        cr_assert_not_null(find_key("k9"));
        close_partition(p);
}

Test(cleaner, the_checkpoint_file_is_kafkas)
{
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "orders", 3, 1500), 0);
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "orders", 1, 977), 0);
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "orders", 3, 1600), 0);
        int64_t v = 0;
        cr_assert_eq(cleaner_checkpoint_read(root_fd, "orders", 3, &v), 0);
        cr_assert_eq(v, 1600);
        cr_assert_eq(cleaner_checkpoint_read(root_fd, "orders", 2, &v), -ENOENT);
        char buf[256];
        int fd = openat(root_fd, CLEANER_CHECKPOINT_FILE, O_RDONLY);
        cr_assert_geq(fd, 0);
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        cr_assert_gt(n, 0);
        buf[n] = '\0';
        cr_assert_str_eq(buf, "0\n2\norders 1 977\norders 3 1600\n");
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "orders", 1, -1), 0);
        cr_assert_eq(cleaner_checkpoint_read(root_fd, "orders", 1, &v), -ENOENT);
}

Test(cleaner, the_dirty_ratio_is_kafkas)
{
        struct cleaner_candidate c = { .clean_bytes = 50, .cleanable_bytes = 50, .min_cleanable_ratio = 0.5 };
        cr_assert_not(cleaner_is_due(&c), "Kafka wants the ratio above the minimum");
        c.cleanable_bytes = 51;
        cr_assert(cleaner_is_due(&c));
        c = (struct cleaner_candidate){ .clean_bytes = 100, .cleanable_bytes = 1, .min_cleanable_ratio = 0.5,
                                        .is_compaction_lag_exceeded = true };
        cr_assert(cleaner_is_due(&c), "max.compaction.lag.ms forces it");
        c.cleanable_bytes = 0;
        cr_assert_not(cleaner_is_due(&c));
}

/* A marker the cleaner kept empty (its transaction removed whole) is
 * skipped by the producer-state replay at open, as Kafka skips it. */
Test(cleaner, an_empty_marker_batch_reopens)
{
        cr_assert_eq(mkdirat(root_fd, TEST_DIR, 0755), 0);
        struct record_spec rs = { { (const uint8_t *)"a", 1 }, { (const uint8_t *)"b", 1 }, now_ms, NULL, 0 };
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, &rs, 1);
        spec.producer_id = 42;
        spec.producer_epoch = 0;
        spec.base_sequence = 0;
        spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
        uint8_t buf[256];
        size_t len = record_batch_encode(&spec, buf, sizeof(buf));
        /* The empty marker at offset 1: a header and no record. */
        uint8_t *m = buf + len;
        memset(m, 0, RECORD_BATCH_HEADER_BYTES);
        m[7] = 1;                                       /* baseOffset 1 */
        m[11] = RECORD_BATCH_LENGTH_MIN;                /* batchLength */
        m[16] = RECORD_BATCH_MAGIC;
        m[22] = RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_TRANSACTIONAL;
        memset(m + 27, 0xff, 8);                        /* baseTimestamp -1 */
        m[50] = 42;                                     /* producerId 42 */
        memset(m + 53, 0xff, 4);                        /* baseSequence -1 */
        uint32_t crc = record_batch_compute_crc(m, RECORD_BATCH_HEADER_BYTES);
        for (int i = 0; i < 4; i++)
                m[17 + i] = (uint8_t)(crc >> (24 - 8 * i));
        int fd = openat(root_fd, TEST_DIR "/00000000000000000000.log", O_WRONLY | O_CREAT, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, buf, len + RECORD_BATCH_HEADER_BYTES), (ssize_t)(len + RECORD_BATCH_HEADER_BYTES));
        close(fd);

        struct partition_options o = options();
        o.is_clean_shutdown = false;
        struct partition *p = open_partition(&o);
        cr_assert_eq(partition_log_end_offset(p), 2);
        close_partition(p);
}

/* A map too small for the dirty section: each cleaning covers what fits
 * (Kafka stops at the batch that filled it), loses nothing, and the next
 * ones go on from the checkpoint until the log is clean. */
Test(cleaner, a_full_map_cleans_part_and_loses_nothing)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        read_all(p);
        int records_before = seen_count;
        /* 1024 slots at 0.005: five keys. */
        struct cleaner_limits tiny = { CLEANER_MAP_ENTRIES_MIN * CLEANER_MAP_ENTRY_BYTES, 0.005,
                                       1.7976931348623157E308 };
        int passes = 0;
        int64_t end_before = -1;
        for (; passes < 50; passes++) {
                struct cleaner_job *job = NULL;
                int rc = partition_cleaner_prepare(p, now_ms, &tiny, &job);
                cr_assert_geq(rc, 0);
                if (rc == 0)
                        break;
                cr_assert_eq(cleaner_run(job), 0, "%s", strerror(-job->result));
                cr_assert_lt(job->end_offset, job->first_uncleanable_offset + 1);
                cr_assert_gt(job->end_offset, end_before, "each pass moves on");
                end_before = job->end_offset;
                partition_cleaner_finish(p, job);
                read_all(p);
                expect_latest(10, last, "v19");
        }
        cr_assert_gt(passes, 1, "the map could not take the whole dirty section at once");
        cr_assert_lt(seen_count, records_before);
        close_partition(p);
}

/* ---- a random history against a model ---- */

#define MODEL_KEYS 24
#define MODEL_OPS 1500
#define MODEL_RECORDS_MAX 8192
#define MODEL_TXN_PRODUCERS 2

struct model_record {
        int key;
        int64_t offset;
        int value;                      /* -1: a tombstone */
};

static struct {
        struct model_record committed[MODEL_RECORDS_MAX];
        int committed_count;
        int64_t aborted[MODEL_RECORDS_MAX];
        int aborted_count;
        struct model_record pending[MODEL_TXN_PRODUCERS][64];
        int pending_count[MODEL_TXN_PRODUCERS];
        int32_t seq[MODEL_TXN_PRODUCERS];
} model;

static bool model_is_pending(int64_t offset)
{
        for (int p = 0; p < MODEL_TXN_PRODUCERS; p++)
                for (int i = 0; i < model.pending_count[p]; i++)
                        if (model.pending[p][i].offset == offset)
                                return true;
        return false;
}

static bool model_is_aborted(int64_t offset)
{
        for (int i = 0; i < model.aborted_count; i++)
                if (model.aborted[i] == offset)
                        return true;
        return false;
}

/* What compaction must keep, key by key: the committed record with the
 * highest offset (a tombstone may be gone), nothing aborted after it. */
static void model_check(struct partition *p)
{
        int64_t cleaned_to = 0;
        if (cleaner_checkpoint_read(root_fd, "t", 0, &cleaned_to) < 0)
                cleaned_to = 0;
        read_all(p);
        for (int k = 0; k < MODEL_KEYS; k++) {
                char key[16];
                snprintf(key, sizeof(key), "m%d", k);
                const struct model_record *want = NULL;
                for (int i = 0; i < model.committed_count; i++)
                        if (model.committed[i].key == k && (!want || model.committed[i].offset > want->offset))
                                want = &model.committed[i];
                const struct seen *got = NULL;
                for (int i = 0; i < seen_count; i++) {
                        if (strcmp(seen[i].key, key) != 0 || model_is_pending(seen[i].offset))
                                continue;
                        if (model_is_aborted(seen[i].offset)) {
                                cr_assert_geq(seen[i].offset, cleaned_to, "%s at %lld: an aborted record survived "
                                              "a cleaning up to %lld", key, (long long)seen[i].offset,
                                              (long long)cleaned_to);
                                continue;
                        }
                        got = &seen[i];
                }
                if (!want) {
                        cr_assert_null(got, "%s never written, read at %lld", key, (long long)got->offset);
                        continue;
                }
                if (want->value < 0) {
                        cr_assert(!got || (got->offset == want->offset && got->is_tombstone),
                                  "%s: deleted at %lld, reads %lld", key, (long long)want->offset,
                                  (long long)got->offset);
                        continue;
                }
                cr_assert_not_null(got, "%s lost: its latest value was at %lld", key, (long long)want->offset);
                char value[16];
                snprintf(value, sizeof(value), "x%d", want->value);
                cr_assert_eq(got->offset, want->offset, "%s: reads offset %lld, latest is %lld", key,
                             (long long)got->offset, (long long)want->offset);
                cr_assert_str_eq(got->value, value);
        }
}

/* Removes every producer snapshot: the next open rebuilds the producer
 * table from the log alone. */
static void delete_snapshots(void)
{
        char path[128];
        snprintf(path, sizeof(path), "%s/" TEST_DIR, tmp_root);
        DIR *d = opendir(path);
        cr_assert_not_null(d);
        struct dirent *e;
        while ((e = readdir(d))) {
                if (!strstr(e->d_name, ".snapshot"))
                        continue;
                char rel[300];
                snprintf(rel, sizeof(rel), TEST_DIR "/%s", e->d_name);
                cr_assert_eq(unlinkat(root_fd, rel, 0), 0);
        }
        closedir(d);
}

Test(cleaner, a_random_history_keeps_every_latest_committed_record)
{
        struct partition_options o = options();
        o.config.delete_retention_ms = 5000;
        struct partition *p = open_partition(&o);
        memset(&model, 0, sizeof(model));
        /* CLEANER_TEST_SEED=N replays another history. */
        const char *seed_text = getenv("CLEANER_TEST_SEED");
        unsigned seed = seed_text ? (unsigned)strtoul(seed_text, NULL, 10) : 20261125;
        int cleanings = 0;
        for (int op = 0; op < MODEL_OPS; op++) {
                int r = (int)(rand_r(&seed) % 100);
                int k = (int)(rand_r(&seed) % MODEL_KEYS);
                char key[16], value[16];
                snprintf(key, sizeof(key), "m%d", k);
                snprintf(value, sizeof(value), "x%d", op);
                int tp = (int)(rand_r(&seed) % MODEL_TXN_PRODUCERS);
                if (r < 55 || (r < 75 && model.pending_count[tp] >= 60)) {
                        bool is_tombstone = rand_r(&seed) % 8 == 0;
                        struct rec rc = { key, is_tombstone ? NULL : value };
                        int64_t off = append_recs(p, &rc, 1, -1, 0, false);
                        cr_assert_lt(model.committed_count, MODEL_RECORDS_MAX);
                        model.committed[model.committed_count++] = (struct model_record){ k, off,
                                                                                        is_tombstone ? -1 : op };
                } else if (r < 75) {
                        struct rec rc = { key, value };
                        int64_t off = append_recs(p, &rc, 1, 100 + tp, model.seq[tp], true);
                        model.seq[tp]++;
                        model.pending[tp][model.pending_count[tp]++] = (struct model_record){ k, off, op };
                } else if (r < 85) {
                        if (model.pending_count[tp] == 0)
                                continue;
                        bool is_commit = rand_r(&seed) % 2 == 0;
                        marker(p, 100 + tp, is_commit);
                        for (int i = 0; i < model.pending_count[tp]; i++) {
                                if (is_commit)
                                        model.committed[model.committed_count++] = model.pending[tp][i];
                                else
                                        model.aborted[model.aborted_count++] = model.pending[tp][i].offset;
                        }
                        model.pending_count[tp] = 0;
                } else if (r < 97) {
                        now_ms += (int64_t)(rand_r(&seed) % 4000);
                        if (clean(p))
                                cleanings++;
                        model_check(p);
                } else {
                        /* Half the reopens unclean: producer state rebuilt
                         * from the cleaned log, whose retained empty
                         * batches carry on the producers' sequences. */
                        struct partition_options reopen = o;
                        if (rand_r(&seed) % 2 == 0) {
                                close_partition(p);
                                reopen.is_clean_shutdown = true;
                        } else {
                                partition_close(p);
                                delete_snapshots();
                        }
                        p = open_partition(&reopen);
                        model_check(p);
                }
        }
        model_check(p);
        cr_assert_gt(cleanings, 20, "only %d cleanings ran", cleanings);
        close_partition(p);
}

/* A swap that cannot commit (its .log.cleaned is gone) changes nothing:
 * the old segments stay, the strays go at the next start. */
static void swap_fails_to_commit_group(uint32_t bad)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        read_all(p);
        int before = seen_count;
        struct cleaner_job *job = prepare_and_run(p);
        cr_assert_gt(job->group_count, bad);
        char name[SEGMENT_FILE_NAME_BYTES], path[96];
        segment_file_name_tail(name, job->groups[bad].base_offset, ".log", CLEANER_CLEANED_TAIL);
        snprintf(path, sizeof(path), TEST_DIR "/%s", name);
        cr_assert_eq(unlinkat(root_fd, path, 0), 0);
        partition_cleaner_finish(p, job);
        cr_assert_not(partition_is_failed(p));
        /* The index .swap files its commit renamed before the .log failed
         * go: a later job for the base would rename them into place. */
        cr_assert_not(dir_has_tail(".swap"), "a failed commit leaves no .swap file");
        read_all(p);
        if (bad == 0)
                cr_assert_eq(seen_count, before, "nothing was swapped");
        expect_latest(10, last, "v19");
        close_partition(p);
        p = open_partition(&o);
        cr_assert_not(dir_has_tail(".swap"));
        cr_assert_not(dir_has_tail(".cleaned"));
        read_all(p);
        if (bad == 0)
                cr_assert_eq(seen_count, before);
        expect_latest(10, last, "v19");
        close_partition(p);
}

Test(cleaner, a_swap_that_cannot_commit_changes_nothing)
{
        swap_fails_to_commit_group(0);
}

/* The groups before the one that cannot commit are swapped, the rest not. */
Test(cleaner, a_swap_that_commits_part_keeps_the_rest)
{
        swap_fails_to_commit_group(3);
}

/* Every group committed (.swap), then a crash before any old segment went.
 * Round one leaves small cleaned segments, each holding a few keys; round
 * two rewrites every key, so those segments, grouped into one, lose every
 * record: their group's cleaned file ends below their bases. Recovery
 * must still delete them (Kafka's LogLoader: the union of the swaps'
 * ranges), or their old values come back. */
Test(cleaner, a_crash_after_every_commit_deletes_every_replaced_segment)
{
        struct partition_options o = options();
        struct partition *p = open_partition(&o);
        char key[16];
        for (int i = 0; i < 120; i++) {
                snprintf(key, sizeof(key), "a%d", i);
                put(p, key, "old");
                put(p, "hot", "h");
                put(p, "hot", "h");
        }
        cr_assert(clean(p));
        for (int i = 0; i < 120; i++) {
                snprintf(key, sizeof(key), "a%d", i);
                put(p, key, "new");
        }
        put(p, "hot", "last");
        for (int i = 0; i < 40; i++)
                put(p, "pad", "p");     /* the new values leave the active segment */
        struct cleaner_job *job = prepare_and_run(p);
        bool has_emptied_source = false;
        for (uint32_t g = 0; g < job->group_count; g++) {
                cr_assert_eq(cleaner_commit_group(job->dir, &job->groups[g], true), 0);
                has_emptied_source = has_emptied_source || job->groups[g].count > 1;
        }
        cr_assert(has_emptied_source, "a group of several cleaned segments");
        job->result = -ECANCELED;
        partition_cleaner_finish(p, job);
        partition_close(p);

        o.is_clean_shutdown = false;
        p = open_partition(&o);
        cr_assert_not(dir_has_tail(".swap"));
        read_all(p);
        for (int i = 0; i < 120; i++) {
                snprintf(key, sizeof(key), "a%d", i);
                cr_assert_eq(count_key(key), 1, "%s: %d records", key, count_key(key));
                cr_assert_str_eq(find_key(key)->value, "new");
        }
        cr_assert_eq(count_key("hot"), 1);
        close_partition(p);
}

/* A group past the first fails to commit, and an abort marker the job
 * kept lies in it: only the entries of the swapped range replace the
 * partition's (the whole job's would trip the splice's assert). */
Test(cleaner, a_partial_swap_keeps_the_aborted_transactions_past_it)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        struct rec r = { "t", "x" };
        append_recs(p, &r, 1, 100, 0, true);
        int64_t abort_at = marker(p, 100, false);
        write_versions(p, 10, 3, last);
        struct cleaner_job *job = prepare_and_run(p);
        cr_assert_gt(job->group_count, 1);
        cr_assert_eq(job->kept_aborted_count, 1, "the abort marker is kept until its horizon");
        cr_assert_geq(job->kept_aborted[0].last_offset, job->groups[1].base_offset);
        char name[SEGMENT_FILE_NAME_BYTES], path[96];
        segment_file_name_tail(name, job->groups[1].base_offset, ".log", CLEANER_CLEANED_TAIL);
        snprintf(path, sizeof(path), TEST_DIR "/%s", name);
        cr_assert_eq(unlinkat(root_fd, path, 0), 0);
        partition_cleaner_finish(p, job);
        cr_assert_not(partition_is_failed(p));
        read_all(p);
        expect_latest(10, last, "v2");
        /* The abort is still known: a second cleaning removes its record. */
        cr_assert(clean(p));
        read_all(p);
        cr_assert_null(find_key("t"), "the aborted record at %lld is gone", (long long)abort_at - 1);
        close_partition(p);
}

/* DeleteRecords moves the log start past an aborted transaction inside
 * the first segment while a cleaning runs (compact,delete): the entry
 * leaves memory, the job still keeps it; the swap must not trip. */
Test(cleaner, delete_records_during_a_cleaning_drops_the_aborts_below_the_start)
{
        struct partition_options o = options();
        o.config.is_cleanup_delete = true;
        struct partition *p = open_partition(&o);
        struct rec r = { "t", "x" };
        append_recs(p, &r, 1, 100, 0, true);
        int64_t abort_at = marker(p, 100, false);
        int64_t last[10];
        write_versions(p, 10, 20, last);
        struct cleaner_job *job = prepare_and_run(p);
        cr_assert_eq(job->kept_aborted_count, 1);
        cr_assert_lt(abort_at + 1, job->sources[0].end_offset, "the new start is inside the first segment");
        int64_t low = -1;
        cr_assert_eq(partition_delete_records(p, abort_at + 1, &low), KAFKA_NONE);
        cr_assert_eq(low, abort_at + 1);
        partition_cleaner_finish(p, job);
        cr_assert_not(partition_is_failed(p));
        read_all(p);
        expect_latest(10, last, "v19");
        close_partition(p);
}

/* A deleted topic's line in cleaner-offset-checkpoint, beyond the new log
 * of the same name: a check while the log is short must not keep it, or
 * once the log grows past it [0, it) counts as cleaned and a tombstone
 * there outlives the value it deleted. */
Test(cleaner, a_checkpoint_past_the_log_end_is_reset_for_good)
{
        struct partition_options o = options();
        struct partition *p = open_partition(&o);
        close_partition(p);
        /* The old topic's line, written after the new log began. */
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "t", 0, 300), 0);
        o.is_clean_shutdown = true;
        p = open_partition(&o);
        put(p, "gone", "alive");
        put(p, "gone", NULL);
        double ratio;
        cr_assert_not(partition_cleaner_check(p, now_ms, &ratio), "one segment: nothing to clean");
        int64_t last[10];
        write_versions(p, 10, 35, last);
        cr_assert_gt(partition_high_watermark(p), 300);
        cr_assert(clean(p));
        read_all(p);
        cr_assert_eq(count_key("gone"), 1, "the value the tombstone deleted is gone");
        cr_assert(find_key("gone")->is_tombstone);
        close_partition(p);
}

/* A log begun anew drops its name's line: the topic it was is deleted. */
Test(cleaner, a_new_log_forgets_a_deleted_topics_checkpoint)
{
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "t", 0, 300), 0);
        cr_assert_eq(cleaner_checkpoint_update(root_fd, "u", 0, 7), 0);
        struct partition_options o = options();
        struct partition *p = open_partition(&o);
        int64_t offset = -1;
        cr_assert_eq(cleaner_checkpoint_read(root_fd, "t", 0, &offset), -ENOENT, "still %lld", (long long)offset);
        cr_assert_eq(cleaner_checkpoint_read(root_fd, "u", 0, &offset), 0, "another's line stays");
        cr_assert_eq(offset, 7);
        close_partition(p);
}

/* A cleaning that fails marks the partition uncleanable until a restart,
 * as Kafka does, rather than failing on it every backoff. */
Test(cleaner, a_failed_cleaning_makes_the_partition_uncleanable_until_a_restart)
{
        struct partition_options o = options();
        int64_t last[10];
        struct partition *p = open_with_versions(&o, last);
        struct cleaner_job *job = prepare_and_run(p);
        cleaner_discard_files(job);
        job->result = -EIO;     /* as a read error would leave it */
        partition_cleaner_finish(p, job);
        double ratio;
        cr_assert_not(partition_cleaner_check(p, now_ms, &ratio), "not cleaned again");
        cr_assert_not(clean(p));
        close_partition(p);
        o.is_clean_shutdown = true;
        p = open_partition(&o);
        cr_assert(clean(p), "a restart clears the mark");
        read_all(p);
        expect_latest(10, last, "v19");
        close_partition(p);
}
