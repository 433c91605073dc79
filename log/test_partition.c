/*
 * test_partition.c - one partition's log driven directly, with a fake
 * log_io: fdatasync and write are the real syscalls (pwrite), counted, and
 * their completions are handed back either at once or when the test says
 * (so a sync or writes can be "in flight" while more appends arrive, and
 * writes can complete out of order, or fail: a deferred write reaches the
 * file only when the test completes it); the clock is the test's.
 *
 * Covers: append and read round trip, rolling on segment.bytes, retention
 * by time and by size as Kafka's deleteOldSegments decides it, reads that
 * outlive the segment retention deleted, DeleteRecords, reopening after a
 * clean close (nothing scanned) and after a torn or corrupt tail (cut, and
 * the segments after it deleted), the recovery point, durable appends and
 * their group commit, sync failure, and closing with work in flight.
 *
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log/checkpoint.h"
#include "log/partition.h"
#include "log/segment.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "log/test_util.h"

#define TEST_DIR "t-0"
#define TEST_NOW_MS 1700000000000LL
#define TEST_APPENDS_MAX 512
#define TEST_PENDING_MAX 64

static char tmp_root[64];
static int root_fd = -1;
static char err_line[512];

/* ---- the fake log_io ---- */

struct fake_completion {
        log_io_done_fn done;
        void *arg;
        int result;
};

struct fake_write {
        int fd;
        const void *buf;
        size_t len;
        uint64_t offset;
        log_io_done_fn done;
        void *arg;
};

static struct {
        int64_t now_ms;
        bool is_deferred;               /* sync completions wait for fake_complete() */
        int fail_result;                /* what datasync reports, 0 for the real result */
        int datasync_count;
        struct fake_completion pending[TEST_PENDING_MAX];
        int pending_count;
        bool is_write_deferred;         /* writes wait for fake_complete_write() */
        int write_count;
        struct fake_write writes[TEST_PENDING_MAX];
        int write_pending_count;
} fake;

static int fake_write(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done,
                      void *arg)
{
        (void)ctx;
        fake.write_count++;
        if (!fake.is_write_deferred) {
                done(arg, test_util_pwrite_all(fd, buf, len, offset));
                return 0;
        }
        cr_assert_lt(fake.write_pending_count, TEST_PENDING_MAX);
        fake.writes[fake.write_pending_count++] = (struct fake_write){ fd, buf, len, offset, done, arg };
        return 0;
}

/* Completes the i-th write in flight (in submission order): written, or
 * failed with result (< 0) and not written at all. */
static void fake_complete_write(int i, int result)
{
        cr_assert_lt(i, fake.write_pending_count, "write %d is not in flight", i);
        struct fake_write w = fake.writes[i];
        memmove(fake.writes + i, fake.writes + i + 1, (size_t)(fake.write_pending_count - i - 1) * sizeof(w));
        fake.write_pending_count--;
        if (result == 0)
                result = test_util_pwrite_all(w.fd, w.buf, w.len, w.offset);
        w.done(w.arg, result);
}

/* Completes every write in flight now, oldest first; returns how many. */
static int fake_complete_writes(void)
{
        int n = fake.write_pending_count;
        for (int i = 0; i < n; i++)
                fake_complete_write(0, 0);
        return n;
}

static int fake_datasync(void *ctx, int fd, log_io_done_fn done, void *arg)
{
        (void)ctx;
        int result = fdatasync(fd) < 0 ? -errno : 0;
        fake.datasync_count++;
        if (fake.fail_result)
                result = fake.fail_result;
        if (!fake.is_deferred) {
                done(arg, result);
                return 0;
        }
        cr_assert_lt(fake.pending_count, TEST_PENDING_MAX);
        fake.pending[fake.pending_count++] = (struct fake_completion){ done, arg, result };
        return 0;
}

static int64_t fake_now_ms(void *ctx)
{
        (void)ctx;
        return fake.now_ms;
}

static const struct log_io_ops fake_ops = { .datasync = fake_datasync, .write = fake_write, .now_ms = fake_now_ms };
static const struct log_io fake_io = { &fake_ops, NULL };

/* Completes the syncs in flight now (not those they start); returns how many. */
static int fake_complete(void)
{
        struct fake_completion batch[TEST_PENDING_MAX];
        int n = fake.pending_count;

        memcpy(batch, fake.pending, (size_t)n * sizeof(batch[0]));
        fake.pending_count = 0;
        for (int i = 0; i < n; i++)
                batch[i].done(batch[i].arg, batch[i].result);
        return n;
}

/* ---- appends ---- */

struct test_append {
        struct partition_append a;
        int done_count;
        int done_order;                 /* 1 for the first append done, 2 for the next... */
        uint8_t batch[];
};

static struct test_append *appends[TEST_APPENDS_MAX];
static int append_count;
static int done_total;
static struct partition *close_in_done;         /* closed by the next append's done */

static void test_append_done(struct partition_append *a)
{
        struct test_append *t = a->ctx;
        t->done_count++;
        t->done_order = ++done_total;
        if (close_in_done) {
                struct partition *p = close_in_done;
                close_in_done = NULL;
                partition_close(p);
        }
}

/* A batch of count records of vlen bytes, timestamps ts, from an
 * idempotent producer when producer_id >= 0, appended. */
static struct test_append *test_append_from(struct partition *p, uint32_t count, uint32_t vlen, int64_t ts,
                                            bool is_durable, int64_t producer_id, int32_t base_sequence)
{
        static uint8_t value[4096];
        struct record_spec rs[16];
        struct record_batch_spec spec;

        cr_assert_leq(count, 16);
        cr_assert_leq(vlen, sizeof(value));
        cr_assert_lt(append_count, TEST_APPENDS_MAX);
        memset(value, 'v', vlen);
        for (uint32_t i = 0; i < count; i++)
                rs[i] = (struct record_spec){ { (const uint8_t *)"k", 1 }, { value, (int32_t)vlen }, ts, NULL, 0 };
        record_batch_spec_init(&spec, rs, count);
        if (producer_id >= 0) {
                spec.producer_id = producer_id;
                spec.producer_epoch = 0;
                spec.base_sequence = base_sequence;
        }
        size_t len = record_batch_encoded_size(&spec);
        struct test_append *t = calloc(1, sizeof(*t) + len);
        cr_assert_not_null(t);
        cr_assert_eq(record_batch_encode(&spec, t->batch, len), len);
        t->a.batches = t->batch;
        t->a.len = len;
        t->a.is_durable = is_durable;
        t->a.done = test_append_done;
        t->a.ctx = t;
        appends[append_count++] = t;
        partition_append(p, &t->a);
        return t;
}

/* A batch of count records of vlen bytes, timestamps ts, appended. */
static struct test_append *test_append(struct partition *p, uint32_t count, uint32_t vlen, int64_t ts,
                                       bool is_durable)
{
        return test_append_from(p, count, vlen, ts, is_durable, -1, -1);
}

/* An acks=1 append that must succeed at once; returns its base offset. */
static int64_t test_append_ok(struct partition *p, uint32_t count, uint32_t vlen, int64_t ts)
{
        struct test_append *t = test_append(p, count, vlen, ts, false);
        cr_assert_eq(t->done_count, 1);
        cr_assert_eq(t->a.error_code, KAFKA_NONE, "append: error %d %s", t->a.error_code, t->a.error_message);
        return t->a.base_offset;
}

/* ---- fixture ---- */

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "partition");
        root_fd = test_util_dir_open(tmp_root);
        memset(&fake, 0, sizeof(fake));
        fake.now_ms = TEST_NOW_MS;
        append_count = 0;
        done_total = 0;
        close_in_done = NULL;
        err_line[0] = '\0';
}

static void test_teardown(void)
{
        for (int i = 0; i < append_count; i++)
                free(appends[i]);
        append_count = 0;
        test_util_fd_close(&root_fd);
        test_util_tmpdir_remove(tmp_root);
}

TestSuite(partition, .init = test_setup, .fini = test_teardown);

static struct partition_options test_options(void)
{
        return test_util_partition_options(root_fd, TEST_DIR);
}

static struct partition *test_open(const struct partition_options *o)
{
        return test_util_partition_open(o, &fake_io);
}

/* "t-0/<20-digit base><suffix>" */
static const char *test_seg_path(int64_t base, const char *suffix)
{
        return test_util_seg_path(TEST_DIR, base, suffix);
}

static bool test_exists(const char *rel)
{
        return test_util_exists_at(root_fd, rel);
}

static off_t test_size(const char *rel)
{
        return test_util_size_at(root_fd, rel);
}

/* Flips one byte of rel at position from its end. */
static void test_flip_byte(const char *rel, off_t from_end)
{
        int fd = openat(root_fd, rel, O_RDWR);
        off_t at = test_size(rel) - from_end;
        uint8_t b;

        cr_assert_geq(fd, 0);
        cr_assert_eq(pread(fd, &b, 1, at), 1);
        b ^= 0x5a;
        cr_assert_eq(pwrite(fd, &b, 1, at), 1);
        close(fd);
}

static void test_truncate(const char *rel, off_t size)
{
        test_util_truncate_at(root_fd, rel, size);
}

/* The partition's leader-epoch-checkpoint, in a static buffer. */
static const char *test_epochs(void)
{
        static char buf[256];
        int fd = openat(root_fd, TEST_DIR "/" CHECKPOINT_LEADER_EPOCH_FILE, O_RDONLY);
        ssize_t n;

        cr_assert_geq(fd, 0);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        cr_assert_geq(n, 0);
        buf[n] = '\0';
        return buf;
}

static void test_write_epochs(const char *text)
{
        int fd = openat(root_fd, TEST_DIR "/" CHECKPOINT_LEADER_EPOCH_FILE, O_WRONLY | O_TRUNC);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

/* Reads at offset; returns the base offset of the first batch sent. */
static int64_t test_read_base(struct partition *p, int64_t offset)
{
        struct partition_read r = { .fetch_offset = offset, .max_bytes = 1 << 20, .is_first_batch_whole = true };
        uint8_t head[RECORD_BATCH_HEADER_BYTES];
        struct record_batch_header h;

        partition_read(p, &r);
        cr_assert_eq(r.error_code, KAFKA_NONE, "read at %lld: error %d", (long long)offset, r.error_code);
        cr_assert_not_null(r.segment, "read at %lld: nothing", (long long)offset);
        cr_assert_eq(pread(r.fd, head, sizeof(head), (off_t)r.file_position), (ssize_t)sizeof(head));
        cr_assert_eq(record_batch_parse_header(head, sizeof(head), &h), RECORD_BATCH_FRAME_OK);
        partition_read_release(&r);
        cr_assert_null(r.segment);
        return h.base_offset;
}

static int16_t test_read_error(struct partition *p, int64_t offset)
{
        struct partition_read r = { .fetch_offset = offset, .max_bytes = 1 << 20, .is_first_batch_whole = true };

        partition_read(p, &r);
        partition_read_release(&r);
        return r.error_code;
}

/* ---- append and read ---- */

Test(partition, append_read_round_trip)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        struct partition_read r = { .max_bytes = 1 << 20, .is_first_batch_whole = true };

        cr_assert_eq(partition_log_end_offset(p), 0);
        cr_assert_eq(test_append_ok(p, 3, 10, TEST_NOW_MS), 0);
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 3);
        cr_assert_eq(test_append_ok(p, 2, 10, TEST_NOW_MS), 4);
        cr_assert_eq(partition_high_watermark(p), 6);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(partition_log_start_offset(p), 0);
        cr_assert_eq(fake.datasync_count, 0, "acks=1 appends sync nothing");

        cr_assert_eq(test_read_base(p, 0), 0);
        cr_assert_eq(test_read_base(p, 2), 0, "the batch holding offset 2");
        cr_assert_eq(test_read_base(p, 3), 3);
        cr_assert_eq(test_read_base(p, 5), 4);
        r.fetch_offset = 0;
        partition_read(p, &r);
        cr_assert_eq(r.len, (uint32_t)(appends[0]->a.len + appends[1]->a.len + appends[2]->a.len),
                     "a read returns every batch up to max_bytes");
        partition_read_release(&r);
        r.fetch_offset = 6;
        partition_read(p, &r);
        cr_assert_eq(r.error_code, KAFKA_NONE);
        cr_assert_eq(r.len, 0, "at the high watermark: nothing yet");
        cr_assert_null(r.segment);
        cr_assert_eq(test_read_error(p, 7), KAFKA_OFFSET_OUT_OF_RANGE);
        cr_assert_eq(test_read_error(p, -1), KAFKA_OFFSET_OUT_OF_RANGE);
        partition_close(p);

        /* A new partition gets Kafka's leader-epoch-checkpoint for epoch 0. */
        cr_assert_str_eq(test_epochs(), "0\n1\n0 0\n");
}

Test(partition, invalid_batch_is_refused)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        struct test_append *t;

        appends[append_count] = calloc(1, sizeof(struct test_append) + 16);
        t = appends[append_count++];
        memset(t->batch, 0xff, 16);
        t->a.batches = t->batch;
        t->a.len = 16;
        t->a.done = test_append_done;
        t->a.ctx = t;
        partition_append(p, &t->a);
        cr_assert_eq(t->done_count, 1);
        cr_assert_neq(t->a.error_code, KAFKA_NONE);
        cr_assert_eq(partition_log_end_offset(p), 0);
        partition_close(p);
}

Test(partition, roll_on_segment_bytes_and_flush_the_rolled)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 300;
        struct partition *p = test_open(&o);

        for (int i = 0; i < 6; i++)
                cr_assert_eq(test_append_ok(p, 2, 100, TEST_NOW_MS), 2 * i);
        /* Each batch is about 260 bytes: one per segment. */
        cr_assert_eq(partition_segment_count(p), 6);
        for (int i = 0; i < 6; i++)
                cr_assert(test_exists(test_seg_path(2 * i, ".log")), "segment %d", 2 * i);
        cr_assert_eq(test_read_base(p, 7), 6);
        cr_assert_eq(test_read_base(p, 10), 10);
        /* Kafka flushes a segment once rolled: the recovery point follows. */
        cr_assert_eq(fake.datasync_count, 5);
        cr_assert_eq(partition_recovery_point(p), 10);
        partition_close(p);

        /* The rolled segments' indexes were cut to size, the active one's at close. */
        cr_assert_eq(test_size(test_seg_path(0, ".index")), 0);
        cr_assert_eq(test_size(test_seg_path(10, ".index")), 0);
}

/* ---- descriptors (issue 7) ---- */

/* One descriptor per segment, as Kafka: the partition directory is opened
 * only for the moment a change needs it (logdir_ref). */
Test(partition, descriptors_per_partition)
{
        struct partition_options o = test_options();
        int before = test_util_fd_count();

        o.config.segment_bytes = 300;
        struct partition *p = test_open(&o);
        cr_assert_eq(test_util_fd_count(), before + 1);
        test_append_ok(p, 2, 100, TEST_NOW_MS);
        cr_assert_eq(test_util_fd_count(), before + 1, "a partition produced to: its .log");
        test_append_ok(p, 2, 100, TEST_NOW_MS);
        cr_assert_eq(partition_segment_count(p), 2);
        cr_assert_eq(test_util_fd_count(), before + 2, "one more per segment");
        partition_close(p);
        cr_assert_eq(test_util_fd_count(), before);
}

/* Lowers the soft open-files limit so that no descriptor can be opened. */
static void test_exhaust_descriptors(struct rlimit *old)
{
        struct rlimit low;

        cr_assert_eq(getrlimit(RLIMIT_NOFILE, old), 0);
        low = *old;
        /* The limit bounds descriptor numbers: the lowest free one is
         * the first that cannot be had. */
        int lowest_free = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(lowest_free, 0);
        close(lowest_free);
        low.rlim_cur = (rlim_t)lowest_free;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
}

/* Out of descriptors, a roll fails: the append answers the retriable
 * KAFKA_STORAGE_ERROR but the partition is not failed for good (it was,
 * until the broker restarted); with descriptors back, appends work. */
Test(partition, out_of_descriptors_at_a_roll_is_transient)
{
        struct partition_options o = test_options();
        struct rlimit old;

        o.config.segment_bytes = 300;
        struct partition *p = test_open(&o);
        cr_assert_eq(test_append_ok(p, 2, 100, TEST_NOW_MS), 0);
        test_exhaust_descriptors(&old);
        struct test_append *t = test_append(p, 2, 100, TEST_NOW_MS, false);
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        cr_assert_eq(t->done_count, 1);
        cr_assert_eq(t->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_not(partition_is_failed(p));
        cr_assert_eq(partition_log_end_offset(p), 2);
        cr_assert_eq(test_append_ok(p, 2, 100, TEST_NOW_MS), 2);
        cr_assert_eq(partition_segment_count(p), 2);
        cr_assert_eq(test_read_base(p, 0), 0);
        cr_assert_eq(test_read_base(p, 2), 2);
        partition_close(p);

        /* Nothing on disk is the worse for it. */
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 4);
        partition_close(p);
}

Test(partition, out_of_descriptors_at_open_fails_with_emfile)
{
        struct partition_options o = test_options();
        struct partition *p = NULL;
        struct rlimit old;

        test_exhaust_descriptors(&old);
        int rc = partition_open(&o, &fake_io, &p, err_line, sizeof(err_line));
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        cr_assert_eq(rc, -EMFILE, "%s", err_line);
        cr_assert_null(p);
        p = test_open(&o);
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 0);
        partition_close(p);
}

/* ---- retention ---- */

/* n segments of one 100-byte-value batch each, the i-th stamped ts0 + i * step. */
static struct partition *test_segments(struct partition_options *o, int n, int64_t ts0, int64_t step)
{
        o->config.segment_bytes = 200;
        struct partition *p = test_open(o);
        for (int i = 0; i < n; i++)
                test_append_ok(p, 1, 100, ts0 + i * step);
        cr_assert_eq(partition_segment_count(p), (uint32_t)n);
        return p;
}

Test(partition, retention_ms_uses_largest_timestamp)
{
        struct partition_options o = test_options();
        o.config.retention_ms = 10000;
        /* Segments stamped now-40s, -30s, -20s, -10s, now. */
        struct partition *p = test_segments(&o, 5, TEST_NOW_MS - 40000, 10000);

        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 3, "older than 10 s: strictly more");
        cr_assert_eq(partition_segment_count(p), 2);
        cr_assert_eq(partition_log_start_offset(p), 3);
        cr_assert_str_eq(test_epochs(), "0\n1\n0 3\n", "Kafka's truncateFromStart");
        cr_assert_eq(partition_first_segment_offset(p), 3);
        cr_assert_not(test_exists(test_seg_path(0, ".log")));
        cr_assert_not(test_exists(test_seg_path(2, ".index")));
        cr_assert_not(test_exists(test_seg_path(2, ".timeindex")));
        cr_assert(test_exists(test_seg_path(3, ".log")));
        cr_assert_eq(test_read_error(p, 2), KAFKA_OFFSET_OUT_OF_RANGE);
        cr_assert_eq(test_read_base(p, 3), 3);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 0, "nothing more is due");
        partition_close(p);
}

Test(partition, retention_ms_never_deletes_the_segment_taking_appends)
{
        struct partition_options o = test_options();
        o.config.retention_ms = 1000;
        struct partition *p = test_segments(&o, 3, TEST_NOW_MS - 5000, 0);

        /* All expired, the active one too: Kafka rolls a new active segment
         * first, then deletes every old one. */
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 3);
        cr_assert_eq(partition_segment_count(p), 1);
        cr_assert_eq(partition_first_segment_offset(p), 3);
        cr_assert_eq(partition_log_start_offset(p), 3);
        cr_assert_eq(partition_log_end_offset(p), 3);
        cr_assert(test_exists(test_seg_path(3, ".log")));
        cr_assert_not(test_exists(test_seg_path(2, ".log")));
        /* The new active segment is empty: it never goes, however old its
         * file (an empty segment's largest timestamp is its mtime). */
        fake.now_ms = (int64_t)time(NULL) * 1000 + 100000000;
        cr_assert_eq(partition_enforce_retention(p, fake.now_ms), 0);
        cr_assert_eq(test_append_ok(p, 1, 10, fake.now_ms), 3);
        partition_close(p);
}

Test(partition, retention_bytes)
{
        struct partition_options o = test_options();
        struct partition *p = test_segments(&o, 5, TEST_NOW_MS, 0);
        int64_t seg_bytes = (int64_t)appends[0]->a.len;

        /* 5 segments of one batch; at most 2.5 segments' worth: Kafka deletes
         * the oldest while the excess still covers them: 2 of them. */
        o.config.retention_bytes = 2 * seg_bytes + seg_bytes / 2;
        partition_set_config(p, &o.config);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 2);
        cr_assert_eq(partition_log_start_offset(p), 2);
        cr_assert_eq(partition_segment_count(p), 3);
        /* Exactly the size of what is left: nothing to do. */
        o.config.retention_bytes = 3 * seg_bytes;
        partition_set_config(p, &o.config);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 0);
        /* 0 bytes: everything, the active segment after a roll. */
        o.config.retention_bytes = 0;
        partition_set_config(p, &o.config);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 3);
        cr_assert_eq(partition_segment_count(p), 1);
        cr_assert_eq(partition_log_start_offset(p), 5);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 0, "an empty active segment stays");
        partition_close(p);
}

Test(partition, retention_needs_cleanup_policy_delete)
{
        struct partition_options o = test_options();
        o.config.retention_ms = 1000;
        o.config.retention_bytes = 0;
        o.config.is_cleanup_delete = false;
        o.config.is_cleanup_compact = true;
        struct partition *p = test_open(&o);

        /* A compacted topic's records need keys: test_append gives "k". */
        o.config.segment_bytes = 200;
        partition_set_config(p, &o.config);
        for (int i = 0; i < 3; i++)
                test_append_ok(p, 1, 100, TEST_NOW_MS - 100000);
        cr_assert_eq(partition_segment_count(p), 3);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 0);
        int64_t low = -1;
        cr_assert_eq(partition_delete_records(p, 1, &low), KAFKA_POLICY_VIOLATION);
        cr_assert_eq(low, 0);
        partition_close(p);
}

Test(partition, deleted_segment_stays_readable_by_a_fetch_holding_it)
{
        struct partition_options o = test_options();
        o.config.retention_ms = 1000;
        struct partition *p = test_segments(&o, 3, TEST_NOW_MS - 5000, 2000);
        struct partition_read r = { .fetch_offset = 0, .max_bytes = 1 << 20, .is_first_batch_whole = true };
        uint8_t want[512], got[512];

        partition_read(p, &r);
        cr_assert_not_null(r.segment);
        cr_assert_leq(r.len, sizeof(want));
        cr_assert_eq(pread(r.fd, want, r.len, (off_t)r.file_position), (ssize_t)r.len);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 2);
        /* The files stay until the read lets go; its descriptor still reads. */
        cr_assert(test_exists(test_seg_path(0, ".log")));
        cr_assert_not(test_exists(test_seg_path(1, ".log")), "nobody held segment 1");
        cr_assert_eq(pread(r.fd, got, r.len, (off_t)r.file_position), (ssize_t)r.len);
        cr_assert_eq(memcmp(want, got, r.len), 0);
        partition_read_release(&r);
        cr_assert_not(test_exists(test_seg_path(0, ".log")));
        cr_assert_not(test_exists(test_seg_path(0, ".index")));
        partition_close(p);
}

/* ---- DeleteRecords ---- */

Test(partition, delete_records)
{
        struct partition_options o = test_options();
        struct partition *p = test_segments(&o, 5, TEST_NOW_MS, 0);
        int64_t low = -7;

        cr_assert_eq(partition_delete_records(p, 6, &low), KAFKA_OFFSET_OUT_OF_RANGE, "past the high watermark");
        cr_assert_eq(low, 0);
        cr_assert_eq(partition_delete_records(p, -2, &low), KAFKA_OFFSET_OUT_OF_RANGE);
        cr_assert_eq(partition_delete_records(p, 2, &low), KAFKA_NONE);
        cr_assert_eq(low, 2);
        cr_assert_str_eq(test_epochs(), "0\n1\n0 2\n");
        cr_assert_eq(partition_log_start_offset(p), 2);
        cr_assert_eq(partition_first_segment_offset(p), 2, "segments wholly below go at once");
        cr_assert_not(test_exists(test_seg_path(1, ".log")));
        cr_assert_eq(test_read_error(p, 1), KAFKA_OFFSET_OUT_OF_RANGE);
        cr_assert_eq(test_read_base(p, 2), 2);
        cr_assert_eq(partition_delete_records(p, 1, &low), KAFKA_NONE, "below the start: nothing to do");
        cr_assert_eq(low, 2);
        cr_assert_eq(partition_delete_records(p, -1, &low), KAFKA_NONE, "-1: the high watermark");
        cr_assert_eq(low, 5);
        cr_assert_eq(partition_log_start_offset(p), 5);
        cr_assert_eq(partition_segment_count(p), 1, "the active segment stays");
        cr_assert_eq(partition_first_segment_offset(p), 4);
        cr_assert_eq(test_read_error(p, 4), KAFKA_OFFSET_OUT_OF_RANGE);
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 5);
        partition_close(p);

        /* The start inside a segment survives only through the checkpoint. */
        p = test_open(&o);
        cr_assert_eq(partition_log_start_offset(p), 4);
        partition_close(p);
        o.log_start_offset = 5;
        p = test_open(&o);
        cr_assert_eq(partition_log_start_offset(p), 5);
        cr_assert_eq(test_read_error(p, 4), KAFKA_OFFSET_OUT_OF_RANGE);
        partition_close(p);
}

/* ListOffsets -3 after DeleteRecords: Kafka 4.4 answers the record with the
 * largest timestamp of the segments still there, below the log start or not. */
Test(partition, max_timestamp_below_the_log_start)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        int64_t low, offset, ts;

        test_append_ok(p, 1, 10, TEST_NOW_MS + 30);
        test_append_ok(p, 1, 10, TEST_NOW_MS + 10);
        test_append_ok(p, 1, 10, TEST_NOW_MS + 20);
        partition_max_timestamp(p, &offset, &ts);
        cr_assert_eq(offset, 0);
        cr_assert_eq(ts, TEST_NOW_MS + 30);
        cr_assert_eq(partition_delete_records(p, 1, &low), KAFKA_NONE);
        partition_max_timestamp(p, &offset, &ts);
        cr_assert_eq(offset, 0, "the segment holding it is still there");
        cr_assert_eq(ts, TEST_NOW_MS + 30);
        cr_assert_eq(partition_delete_records(p, -1, &low), KAFKA_NONE);
        cr_assert_eq(low, 3);
        partition_max_timestamp(p, &offset, &ts);
        cr_assert_eq(offset, 0, "every record deleted, the active segment stays");
        partition_offset_for_time(p, TEST_NOW_MS, &offset, &ts);
        cr_assert_eq(offset, -1, "by timestamp, nothing below the log start");
        partition_close(p);
}

Test(partition, log_start_checkpoint_past_the_log_end_empties_it)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        test_append_ok(p, 3, 10, TEST_NOW_MS);
        partition_close(p);
        o.log_start_offset = 10;
        p = test_open(&o);
        cr_assert_eq(partition_log_start_offset(p), 10);
        cr_assert_eq(partition_log_end_offset(p), 10);
        cr_assert_eq(partition_segment_count(p), 1);
        cr_assert_not(test_exists(test_seg_path(0, ".log")));
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 10);
        partition_close(p);
}

Test(partition, leader_epochs_truncated_from_the_start_as_kafka_does)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        test_append_ok(p, 10, 10, TEST_NOW_MS);
        partition_close(p);
        /* A file Kafka wrote after three leaders. */
        test_write_epochs("0\n3\n0 0\n1 3\n2 8\n");
        o.log_start_offset = 5;
        p = test_open(&o);
        cr_assert_str_eq(test_epochs(), "0\n2\n1 5\n2 8\n");
        partition_close(p);
        /* Up to date: left as it is. */
        p = test_open(&o);
        cr_assert_str_eq(test_epochs(), "0\n2\n1 5\n2 8\n");
        partition_close(p);
        /* Unreadable, or empty of entries: epoch 0 from the log start. */
        test_write_epochs("0\n2\n0 0\n");
        p = test_open(&o);
        cr_assert_str_eq(test_epochs(), "0\n1\n0 5\n");
        partition_close(p);
        test_write_epochs("0\n0\n");
        p = test_open(&o);
        cr_assert_str_eq(test_epochs(), "0\n1\n0 5\n");
        partition_close(p);
}

/* ---- reopening and recovery ---- */

/* Three acks=1 batches (offsets 0-2, 3-5, 6-8), synced, closed. */
static void test_write_and_close(struct partition_options *o)
{
        struct partition *p = test_open(o);
        for (int i = 0; i < 3; i++)
                test_append_ok(p, 3, 50, TEST_NOW_MS);
        partition_flush(p);
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_recovery_point(p), 9);
        partition_close(p);
}

Test(partition, reopen_after_clean_close_scans_nothing)
{
        struct partition_options o = test_options();

        test_write_and_close(&o);
        /* A corrupt byte in the last batch's records: only a scan sees it. */
        test_flip_byte(test_seg_path(0, ".log"), 5);
        int before = fake.datasync_count;
        o.is_clean_shutdown = true;
        o.recovery_point = 9;
        struct partition *p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 9, "a clean open checks no CRC");
        cr_assert_eq(partition_recovery_point(p), 9);
        cr_assert_eq(fake.datasync_count, before, "nothing to sync after a clean shutdown");
        partition_close(p);

        /* The same files after an unclean stop: the last batch is cut. */
        o.is_clean_shutdown = false;
        o.recovery_point = 0;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(partition_recovery_point(p), 6, "recovered, then synced");
        cr_assert_eq(fake.datasync_count, before + 1);
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 6, "offsets continue after the cut");
        partition_close(p);
}

Test(partition, reopen_after_torn_tail_truncates)
{
        struct partition_options o = test_options();

        test_write_and_close(&o);
        off_t full = test_size(test_seg_path(0, ".log"));
        test_truncate(test_seg_path(0, ".log"), full - 20);
        fake.is_deferred = true;
        struct partition *p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(partition_recovery_point(p), 0, "what recovery kept may not be on disk");
        cr_assert(partition_is_flushing(p), "so it is synced");
        cr_assert_eq(fake_complete(), 1);
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_recovery_point(p), 6);
        cr_assert_lt(test_size(test_seg_path(0, ".log")), full - 20, "the torn batch is cut off the file");
        cr_assert_eq(test_read_base(p, 5), 3);
        partition_close(p);

        /* A checkpoint ahead of the log: the recovery point stops at its end. */
        o.recovery_point = 100;
        p = test_open(&o);
        cr_assert_eq(partition_recovery_point(p), 6);
        cr_assert_not(partition_is_flushing(p));
        partition_close(p);
}

Test(partition, recovery_cut_deletes_the_later_segments)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 200;
        struct partition *p = test_open(&o);
        for (int i = 0; i < 4; i++)
                test_append_ok(p, 1, 100, TEST_NOW_MS);
        partition_close(p);
        test_flip_byte(test_seg_path(1, ".log"), 5);

        p = test_open(&o);              /* unclean, no recovery point: all scanned */
        cr_assert_eq(partition_log_end_offset(p), 1);
        cr_assert_eq(partition_segment_count(p), 2);
        cr_assert_not(test_exists(test_seg_path(2, ".log")));
        cr_assert_not(test_exists(test_seg_path(3, ".log")));
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 1);
        partition_close(p);
}

Test(partition, recovery_starts_at_the_recovery_point)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 200;
        struct partition *p = test_open(&o);
        for (int i = 0; i < 3; i++)
                test_append_ok(p, 1, 100, TEST_NOW_MS);
        partition_close(p);
        /* Damage below the recovery point goes unnoticed (Kafka trusts it);
         * damage in the segment holding it is found. */
        test_flip_byte(test_seg_path(0, ".log"), 5);
        test_flip_byte(test_seg_path(2, ".log"), 5);
        o.recovery_point = 2;
        p = test_open(&o);
        cr_assert_eq(partition_segment_count(p), 3);
        cr_assert_eq(partition_log_end_offset(p), 2);
        cr_assert_eq(test_read_base(p, 0), 0);
        partition_close(p);
}

/* ---- durability ---- */

Test(partition, durable_appends_group_commit)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        fake.is_deferred = true;

        struct test_append *a = test_append(p, 2, 10, TEST_NOW_MS, true);
        cr_assert_eq(fake.datasync_count, 1);
        cr_assert_eq(a->done_count, 0, "acks=all waits for the sync");
        cr_assert_eq(partition_high_watermark(p), 2, "visible to Fetch at once");
        cr_assert_eq(partition_recovery_point(p), 0);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, true);
        struct test_append *c = test_append(p, 3, 10, TEST_NOW_MS, true);
        struct test_append *d = test_append(p, 1, 10, TEST_NOW_MS, false);
        cr_assert_eq(d->done_count, 1, "acks=1 does not wait");
        cr_assert_eq(fake.datasync_count, 1, "one sync in flight at a time");
        cr_assert_eq(b->done_count + c->done_count, 0);

        cr_assert_eq(fake_complete(), 1);
        cr_assert_eq(a->done_count, 1);
        cr_assert_eq(a->a.error_code, KAFKA_NONE);
        cr_assert_eq(partition_recovery_point(p), 2);
        cr_assert_eq(b->done_count + c->done_count, 0, "not covered by the first sync");
        cr_assert_eq(fake.datasync_count, 2, "one sync for everything that waited");

        cr_assert_eq(fake_complete(), 1);
        cr_assert_eq(b->done_count, 1);
        cr_assert_eq(c->done_count, 1);
        cr_assert_eq(c->a.base_offset, 3);
        cr_assert_eq(partition_recovery_point(p), 7);
        cr_assert_eq(fake.datasync_count, 2);
        cr_assert_not(partition_is_flushing(p));
        partition_close(p);
}

Test(partition, page_cache_mode_acks_all_does_not_wait)
{
        struct partition_options o = test_options();
        o.is_durable_acks = false;
        struct partition *p = test_open(&o);
        fake.is_deferred = true;

        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, true);
        cr_assert_eq(a->done_count, 1);
        cr_assert_eq(fake.datasync_count, 0);
        cr_assert_eq(partition_recovery_point(p), 0);
        partition_close(p);
}

Test(partition, flush_ms_and_flush_messages)
{
        struct partition_options o = test_options();
        o.config.flush_ms = 1000;
        o.config.flush_messages = 5;
        struct partition *p = test_open(&o);

        test_append_ok(p, 2, 10, TEST_NOW_MS);
        partition_maybe_flush(p, TEST_NOW_MS + 999);
        cr_assert_eq(fake.datasync_count, 0);
        partition_maybe_flush(p, TEST_NOW_MS + 1000);
        cr_assert_eq(fake.datasync_count, 1);
        cr_assert_eq(partition_recovery_point(p), 2);
        partition_maybe_flush(p, TEST_NOW_MS + 5000);
        cr_assert_eq(fake.datasync_count, 1, "nothing new to flush");
        test_append_ok(p, 4, 10, TEST_NOW_MS);
        cr_assert_eq(fake.datasync_count, 1, "4 records since the flush");
        test_append_ok(p, 1, 10, TEST_NOW_MS);
        cr_assert_eq(fake.datasync_count, 2, "flush.messages reached");
        cr_assert_eq(partition_recovery_point(p), 7);
        partition_close(p);
}

Test(partition, flush_during_a_sync_is_not_lost)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        fake.is_deferred = true;

        test_append(p, 1, 10, TEST_NOW_MS, true);
        test_append_ok(p, 1, 10, TEST_NOW_MS);
        partition_flush(p);
        cr_assert_eq(fake.datasync_count, 1);
        fake_complete();
        cr_assert(partition_is_flushing(p), "the flush asked for meanwhile follows");
        fake_complete();
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_recovery_point(p), 2);
        partition_close(p);
}

Test(partition, sync_failure_fails_the_partition)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        fake.fail_result = -EIO;
        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, true);
        cr_assert_eq(a->done_count, 1);
        cr_assert_eq(a->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert(partition_is_failed(p));
        cr_assert_eq(partition_recovery_point(p), 0);
        fake.fail_result = 0;
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, false);
        cr_assert_eq(b->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        int64_t low;
        cr_assert_eq(partition_delete_records(p, 0, &low), KAFKA_KAFKA_STORAGE_ERROR);
        partition_close(p);
}

/* ---- closing with work in flight ---- */

Test(partition, close_waits_for_the_sync_in_flight)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        fake.is_deferred = true;

        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, true);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, true);
        partition_close(p);             /* freed once its syncs are done */
        cr_assert_eq(a->done_count + b->done_count, 0);
        fake_complete();
        cr_assert_eq(a->done_count, 1);
        fake_complete();
        cr_assert_eq(b->done_count, 1);
        cr_assert_eq(b->a.error_code, KAFKA_NONE);
        cr_assert_eq(fake.pending_count, 0);
}

Test(partition, close_from_inside_a_callback)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        fake.is_deferred = true;

        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, true);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, true);
        close_in_done = p;
        fake_complete();                /* a's done closes p; b still waits */
        cr_assert_eq(a->done_count, 1);
        cr_assert_null(close_in_done);
        fake_complete();
        cr_assert_eq(b->done_count, 1);

        /* An acks=1 append whose done closes the partition it is in. */
        fake.is_deferred = false;
        p = test_open(&o);
        close_in_done = p;
        test_append_ok(p, 1, 10, TEST_NOW_MS);
        cr_assert_null(close_in_done);
}

/* ---- waiters ---- */

static int fired_count;

static void test_fire(struct partition_waiter *w)
{
        (void)w;
        fired_count++;
}

static void test_fire_count(struct partition_waiter *w)
{
        test_fire(w);
}

Test(partition, waiters_fire_on_data_and_on_close)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        struct partition_waiter w1 = { .offset = 0, .fire = test_fire };
        struct partition_waiter w2 = { .offset = 1, .fire = test_fire };
        struct partition_waiter w3 = { .offset = 0, .fire = test_fire };

        fired_count = 0;
        partition_wait(p, &w1);
        partition_wait(p, &w2);
        partition_wait(p, &w3);
        partition_unwait(p, &w3);
        cr_assert_eq(fired_count, 0);
        test_append_ok(p, 1, 10, TEST_NOW_MS);
        cr_assert_eq(fired_count, 1, "only the waiter below the new high watermark");
        cr_assert_not(w1.is_linked);
        cr_assert(w2.is_linked);
        partition_close(p);
        cr_assert_eq(fired_count, 2, "close tells the others");
        cr_assert_not(w2.is_linked);
}

/* ---- writes through log_io (issue 4) ---- */

/* The bytes a read at offset would send, or 0. */
static uint32_t test_read_len(struct partition *p, int64_t offset)
{
        struct partition_read r = { .fetch_offset = offset, .max_bytes = 1 << 20, .is_first_batch_whole = true };
        partition_read(p, &r);
        uint32_t len = r.len;
        partition_read_release(&r);
        return len;
}

/* Three writes completing last first: nothing is visible, nothing
 * answered, until the oldest completes; then all three, in offset order. */
Test(partition, writes_completing_out_of_order_expose_no_hole)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        struct partition_waiter w = { .offset = 0, .fire = test_fire_count };

        fake.is_write_deferred = true;
        struct test_append *a = test_append(p, 2, 10, TEST_NOW_MS, false);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, false);
        struct test_append *c = test_append(p, 3, 10, TEST_NOW_MS, false);
        cr_assert_eq(fake.write_count, 3);
        cr_assert_eq(a->a.base_offset, 0);
        cr_assert_eq(b->a.base_offset, 2);
        cr_assert_eq(c->a.base_offset, 3);
        cr_assert_eq(partition_log_end_offset(p), 6, "offsets are assigned at submit");
        cr_assert_eq(partition_high_watermark(p), 0, "visible once written");
        cr_assert(partition_is_flushing(p), "writes in flight");
        fired_count = 0;
        partition_wait(p, &w);

        fake_complete_write(2, 0);
        fake_complete_write(1, 0);
        cr_assert_eq(a->done_count + b->done_count + c->done_count, 0, "a hole at offset 0");
        cr_assert_eq(partition_high_watermark(p), 0);
        cr_assert_eq(test_read_len(p, 0), 0, "no byte past the hole is sent");
        cr_assert_eq(fired_count, 0);

        fake_complete_write(0, 0);
        cr_assert_eq(a->done_order, 1);
        cr_assert_eq(b->done_order, 2);
        cr_assert_eq(c->done_order, 3);
        cr_assert_eq(c->a.error_code, KAFKA_NONE);
        cr_assert_eq(partition_high_watermark(p), 6);
        cr_assert_eq(fired_count, 1);
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(test_read_len(p, 0), (uint32_t)(a->a.len + b->a.len + c->a.len));
        cr_assert_eq(test_read_base(p, 5), 3);
        cr_assert_eq(fake.datasync_count, 0, "acks=1 syncs nothing");
        partition_close(p);

        /* What reached the file, in whatever order, is the log. */
        o.is_clean_shutdown = false;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(test_read_base(p, 2), 2);
        partition_close(p);
}

/* Index entries are added as writes complete, never past the bytes written. */
Test(partition, index_entries_wait_for_their_writes)
{
        struct partition_options o = test_options();
        o.config.index_interval_bytes = 100;
        struct partition *p = test_open(&o);
        int64_t found, ts;

        fake.is_write_deferred = true;
        for (int i = 0; i < 4; i++)
                test_append(p, 1, 200, TEST_NOW_MS + i, false);
        partition_offset_for_time(p, TEST_NOW_MS, &found, &ts);
        cr_assert_eq(found, -1, "nothing written yet");
        fake_complete_write(3, 0);
        fake_complete_write(0, 0);
        cr_assert_eq(partition_high_watermark(p), 1);
        partition_offset_for_time(p, TEST_NOW_MS + 1, &found, &ts);
        cr_assert_eq(found, -1, "offset 1 is not written yet");
        fake_complete_writes();
        cr_assert_eq(partition_high_watermark(p), 4);
        partition_offset_for_time(p, TEST_NOW_MS + 3, &found, &ts);
        cr_assert_eq(found, 3);
        for (int i = 0; i < 4; i++)
                cr_assert_eq(test_read_base(p, i), i);
        partition_close(p);
        /* The index on disk agrees with the .log: a clean open rebuilds nothing. */
        o.is_clean_shutdown = true;
        o.recovery_point = 4;
        p = test_open(&o);
        cr_assert_eq(test_read_base(p, 3), 3);
        partition_offset_for_time(p, TEST_NOW_MS + 2, &found, &ts);
        cr_assert_eq(found, 2);
        partition_close(p);
}

/* acks=all completes after a sync that covers only completed writes. */
Test(partition, durable_append_syncs_after_its_write)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        fake.is_write_deferred = true;
        fake.is_deferred = true;
        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, true);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, true);
        cr_assert_eq(fake.datasync_count, 0, "nothing written to sync");
        fake_complete_write(0, 0);
        cr_assert_eq(fake.datasync_count, 1);
        cr_assert_eq(fake_complete(), 1);
        cr_assert_eq(a->done_count, 1);
        cr_assert_eq(partition_recovery_point(p), 1, "the sync covered the completed write only");
        cr_assert_eq(b->done_count, 0);
        fake_complete_write(0, 0);
        cr_assert_eq(fake_complete(), 1);
        cr_assert_eq(b->done_count, 1);
        cr_assert_eq(b->a.error_code, KAFKA_NONE);
        cr_assert_eq(partition_recovery_point(p), 2);
        partition_close(p);
}

/* One write fails: the partition fails; writes after it, completed or
 * not, are never exposed and answer KAFKA_STORAGE_ERROR; the .log is cut
 * back to what was committed, and the log end follows. */
Test(partition, write_failure_fails_the_partition_and_cuts_the_log)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 0);
        off_t committed = test_size(test_seg_path(0, ".log"));
        fake.is_write_deferred = true;
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, false);
        struct test_append *c = test_append(p, 1, 10, TEST_NOW_MS, false);
        struct test_append *d = test_append(p, 1, 10, TEST_NOW_MS, true);
        fake_complete_write(2, 0);              /* d written, behind b and c */
        fake_complete_write(0, -EIO);           /* b fails */
        cr_assert(partition_is_failed(p));
        cr_assert_eq(b->done_count, 1);
        cr_assert_eq(b->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(c->done_count + d->done_count, 0, "c is still in flight");
        cr_assert(partition_is_flushing(p));
        fake_complete_write(0, 0);              /* c written, too late */
        cr_assert_eq(c->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(d->done_count, 1);
        cr_assert_eq(d->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(fake.datasync_count, 0);
        cr_assert_eq(partition_high_watermark(p), 1);
        cr_assert_eq(partition_log_end_offset(p), 1, "the offsets never written are given back");
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(test_size(test_seg_path(0, ".log")), committed, "c's and d's bytes are cut off");
        struct test_append *e = test_append(p, 1, 10, TEST_NOW_MS, false);
        cr_assert_eq(e->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(fake.write_count, 4);
        partition_close(p);

        fake.is_write_deferred = false;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 1);
        cr_assert_eq(test_append_ok(p, 1, 10, TEST_NOW_MS), 1);
        partition_close(p);
}

/* A write meets a full disk (ENOSPC from io_uring or pwrite) with others
 * in flight and segments rolled behind it: the appends from it on are
 * refused, new ones too until the writes in flight are done; then the
 * partition is as before them (log end, segments, producer sequences) and
 * takes appends again, without failing. */
Test(partition, write_on_a_full_disk_refuses_and_rewinds)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 300;
        struct partition *p = test_open(&o);
        struct test_append *a = test_append_from(p, 1, 10, TEST_NOW_MS, false, 7, 0);

        cr_assert_eq(a->a.error_code, KAFKA_NONE);
        off_t committed = test_size(test_seg_path(0, ".log"));
        fake.is_write_deferred = true;
        struct test_append *b = test_append_from(p, 2, 100, TEST_NOW_MS, false, 7, 1);
        struct test_append *c = test_append_from(p, 2, 100, TEST_NOW_MS, false, 7, 3);
        struct test_append *d = test_append(p, 2, 100, TEST_NOW_MS, true);
        cr_assert_eq(partition_segment_count(p), 4, "a roll before each of b, c, d");
        fake_complete_write(1, 0);              /* c written, behind b */
        fake_complete_write(0, -ENOSPC);        /* b meets the full disk */
        cr_assert_not(partition_is_failed(p));
        cr_assert_eq(b->done_count + c->done_count + d->done_count, 0, "answered once d is done");
        struct test_append *e = test_append(p, 1, 10, TEST_NOW_MS, false);
        cr_assert_eq(e->done_count, 1);
        cr_assert_eq(e->a.error_code, KAFKA_KAFKA_STORAGE_ERROR, "it would be cut off");
        fake_complete_write(0, 0);              /* d written, too late */
        cr_assert_eq(b->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(c->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(d->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert(b->done_order < c->done_order && c->done_order < d->done_order, "in offset order");
        cr_assert_not(partition_is_failed(p));
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_high_watermark(p), 1);
        cr_assert_eq(partition_log_end_offset(p), 1);
        cr_assert_eq(partition_segment_count(p), 2, "the segments rolled past the log end go");
        cr_assert_eq(test_size(test_seg_path(0, ".log")), committed);
        cr_assert_eq(test_size(test_seg_path(1, ".log")), 0, "c's bytes are cut off");
        struct stat st;
        cr_assert_neq(fstatat(root_fd, test_seg_path(3, ".log"), &st, 0), 0);

        /* The producer's retries are new batches again, at the same offsets. */
        fake.is_write_deferred = false;
        b = test_append_from(p, 2, 100, TEST_NOW_MS, false, 7, 1);
        cr_assert_eq(b->a.error_code, KAFKA_NONE, "error %d %s", b->a.error_code, b->a.error_message);
        cr_assert_eq(b->a.base_offset, 1);
        c = test_append_from(p, 2, 100, TEST_NOW_MS, false, 7, 3);
        cr_assert_eq(c->a.error_code, KAFKA_NONE, "error %d %s", c->a.error_code, c->a.error_message);
        cr_assert_eq(c->a.base_offset, 3);
        c = test_append_from(p, 2, 100, TEST_NOW_MS, false, 7, 3);
        cr_assert_eq(c->a.base_offset, 3, "and a retry of one written is a duplicate");
        cr_assert_eq(test_append_ok(p, 2, 100, TEST_NOW_MS), 5);
        cr_assert_eq(test_read_base(p, 4), 3);
        partition_close(p);

        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 7);
        cr_assert_eq(test_read_base(p, 2), 1);
        partition_close(p);
}

/* Rolls while the old segments' writes are in flight: each is sealed
 * (indexes cut to size) and synced once its last write completes. */
Test(partition, roll_with_writes_in_flight)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 300;
        struct partition *p = test_open(&o);

        fake.is_write_deferred = true;
        for (int i = 0; i < 3; i++)
                test_append(p, 2, 100, TEST_NOW_MS, false);
        /* About 260 bytes each: a segment each, reserved sizes counted. */
        cr_assert_eq(partition_segment_count(p), 3);
        cr_assert_gt(test_size(test_seg_path(0, ".index")), 0, "not sealed while its write is in flight");
        fake_complete_write(2, 0);
        fake_complete_write(1, 0);
        cr_assert_eq(partition_high_watermark(p), 0);
        cr_assert_gt(test_size(test_seg_path(2, ".index")), 0);
        cr_assert_eq(fake.datasync_count, 0, "nothing is synced before it is written");
        fake_complete_write(0, 0);
        cr_assert_eq(partition_high_watermark(p), 6);
        cr_assert_eq(test_size(test_seg_path(0, ".index")), 0, "sealed");
        cr_assert_eq(test_size(test_seg_path(2, ".index")), 0);
        cr_assert_gt(test_size(test_seg_path(4, ".index")), 0, "the active segment stays preallocated");
        cr_assert_eq(partition_recovery_point(p), 4, "the rolled segments are synced");
        cr_assert_eq(fake.datasync_count, 2);
        for (int i = 0; i < 3; i++)
                cr_assert_eq(test_read_base(p, 2 * i + 1), 2 * i);
        cr_assert_not(partition_is_flushing(p));
        partition_close(p);

        fake.is_write_deferred = false;
        o.is_clean_shutdown = true;
        o.recovery_point = 6;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(partition_segment_count(p), 3);
        partition_close(p);
}

/* partition_flush while writes are in flight: the shutdown waits for
 * them, then for the sync covering them. */
Test(partition, flush_covers_writes_in_flight)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        fake.is_write_deferred = true;
        test_append(p, 1, 10, TEST_NOW_MS, false);
        test_append(p, 1, 10, TEST_NOW_MS, false);
        partition_flush(p);
        cr_assert(partition_is_flushing(p));
        cr_assert_eq(fake.datasync_count, 0);
        fake_complete_write(1, 0);
        cr_assert(partition_is_flushing(p));
        fake_complete_write(0, 0);
        cr_assert_eq(fake.datasync_count, 1);
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_recovery_point(p), 2, "the recovery point reached the log end");
        partition_close(p);
}

/* Closing with writes in flight: they complete first (acks=all ones
 * after their sync), and the partition goes after them. */
Test(partition, close_with_writes_in_flight)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        fake.is_write_deferred = true;
        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, false);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, true);
        struct test_append *c = test_append(p, 1, 10, TEST_NOW_MS, false);
        partition_close(p);
        cr_assert_eq(a->done_count + b->done_count + c->done_count, 0);
        fake_complete_write(1, 0);
        fake_complete_write(0, 0);
        cr_assert_eq(a->done_count, 1);
        cr_assert_eq(b->done_count, 1, "synced after its write");
        cr_assert_eq(b->a.error_code, KAFKA_NONE);
        cr_assert_eq(fake.datasync_count, 1);
        cr_assert_eq(c->done_count, 0);
        fake_complete_write(0, -ENOSPC);        /* the last one fails: freed all the same */
        cr_assert_eq(c->done_count, 1);
        cr_assert_eq(c->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(fake.write_pending_count, 0);

        fake.is_write_deferred = false;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 2);
        partition_close(p);
}

/* An acks=1 append whose done closes the partition while later writes
 * are still in flight. */
Test(partition, close_from_a_done_with_writes_in_flight)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        fake.is_write_deferred = true;
        struct test_append *a = test_append(p, 1, 10, TEST_NOW_MS, false);
        struct test_append *b = test_append(p, 1, 10, TEST_NOW_MS, false);
        close_in_done = p;
        fake_complete_write(0, 0);
        cr_assert_eq(a->done_count, 1);
        cr_assert_null(close_in_done);
        fake_complete_write(0, 0);
        cr_assert_eq(b->done_count, 1);
        cr_assert_eq(b->a.error_code, KAFKA_NONE);
}

/* A retry arriving while its original is being written is known as one
 * (the producer state is updated at submit), written once, and answered
 * only once the original is: with its offsets, or with its failure. */
Test(partition, retry_while_the_original_is_in_flight)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        fake.is_write_deferred = true;
        struct test_append *a = test_append_from(p, 2, 10, TEST_NOW_MS, false, 1000, 0);
        struct test_append *retry = test_append_from(p, 2, 10, TEST_NOW_MS, false, 1000, 0);
        cr_assert_eq(fake.write_count, 1, "the retry is not written");
        cr_assert_eq(retry->done_count, 0, "not answered before the original is written");
        cr_assert_eq(partition_log_end_offset(p), 2);
        fake_complete_write(0, 0);
        cr_assert_eq(a->done_order, 1);
        cr_assert_eq(retry->done_order, 2);
        cr_assert_eq(retry->a.error_code, KAFKA_NONE);
        cr_assert_eq(retry->a.base_offset, 0);
        /* Once written, a retry is answered at once. */
        struct test_append *again = test_append_from(p, 2, 10, TEST_NOW_MS, false, 1000, 0);
        cr_assert_eq(again->done_count, 1);
        cr_assert_eq(again->a.base_offset, 0);

        /* The next batch's write fails: its retry answers the failure. */
        struct test_append *b = test_append_from(p, 1, 10, TEST_NOW_MS, false, 1000, 2);
        struct test_append *b_retry = test_append_from(p, 1, 10, TEST_NOW_MS, true, 1000, 2);
        cr_assert_eq(b->a.base_offset, 2);
        cr_assert_eq(b_retry->done_count, 0);
        fake_complete_write(0, -EIO);
        cr_assert_eq(b->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(b_retry->done_count, 1);
        cr_assert_eq(b_retry->a.error_code, KAFKA_KAFKA_STORAGE_ERROR);
        partition_close(p);
}

/* A topic deleted and made again under the same name: the old partition's
 * directory is renamed aside and a new one takes its name while the old
 * partition may still be closing. Its last changes (trimming the indexes
 * of its active segment) must not land in the new directory's files. */
Test(partition, a_directory_replaced_by_name_is_left_alone)
{
        static const char *const suffixes[] = { OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX };
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        uint8_t marker[4096];
        struct stat st;

        test_append_ok(p, 3, 100, TEST_NOW_MS);
        cr_assert_eq(renameat(root_fd, TEST_DIR, root_fd, TEST_DIR ".0-delete"), 0);
        cr_assert_eq(mkdirat(root_fd, TEST_DIR, 0755), 0);
        memset(marker, 0xab, sizeof(marker));
        for (int i = 0; i < 2; i++) {
                int fd = openat(root_fd, test_seg_path(0, suffixes[i]), O_WRONLY | O_CREAT | O_EXCL, 0644);
                cr_assert_geq(fd, 0);
                cr_assert_eq(write(fd, marker, sizeof(marker)), (ssize_t)sizeof(marker));
                close(fd);
        }

        partition_close(p);

        for (int i = 0; i < 2; i++) {
                cr_assert_eq(fstatat(root_fd, test_seg_path(0, suffixes[i]), &st, 0), 0);
                cr_assert_eq(st.st_size, (off_t)sizeof(marker), "%s of the new directory was trimmed",
                             suffixes[i]);
        }
}
