/*
 * test_partition_txn.c - a partition's idempotent and transactional
 * producers, driven through partition_append and partition_read as the
 * Produce, WriteTxnMarkers and Fetch handlers drive them, and held against
 * Kafka's UnifiedLog, ProducerStateManager and ProducerAppendInfo:
 *
 *   - a retried batch gets its first answer and writes nothing; with
 *     acks=all it completes only once the original is synced; an old epoch
 *     or a sequence gap is refused with nothing written;
 *   - the producer table survives a clean close (its snapshot) and an
 *     unclean one (replayed from the log); a roll snapshots at the new
 *     segment's base, and retention takes the snapshots of the segments it
 *     deletes;
 *   - KIP-890 verification, the last stable offset, commit and abort
 *     markers and their fencing, read_committed reads and their aborted
 *     transaction lists;
 *   - the .txnindex, byte for byte, across clean and unclean reopens and a
 *     recovery that cuts the marker off;
 *   - the marker batch itself, as Kafka's EndTransactionMarker.
 *
 * Expected bytes (the .txnindex entry, the marker's key and value) are
 * written out here from Kafka's layout, not built by the code under test.
 *
 * The log_io is a fake: fdatasync is the real syscall, counted, with the
 * inode it covered remembered, completed at once or when the test says.
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/partition.h"
#include "log/producer_state.h"
#include "log/segment.h"
#include "log/txn_index.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "log/test_util.h"

#define TEST_DIR "t-0"
#define TEST_NOW_MS 1700000000000LL
#define TEST_APPENDS_MAX 256
#define TEST_PENDING_MAX 64
#define TEST_SYNCED_MAX 256
#define TEST_VALUE_BYTES 20

/* append flags */
#define TA_TXN 1u               /* the batch is transactional */
#define TA_VERIFIED 2u          /* the coordinator verified it (KIP-890) */
#define TA_DURABLE 4u           /* acks=all */

#define NO_PRODUCER (-1LL)

static char tmp_root[64];
static int root_fd = -1;
static char err_line[512];

/* ---- the fake log_io ---- */

struct fake_completion {
        log_io_done_fn done;
        void *arg;
        int result;
};

static struct {
        int64_t now_ms;
        bool is_deferred;               /* completions wait for fake_complete() */
        int datasync_count;
        ino_t synced[TEST_SYNCED_MAX];  /* the inode each datasync covered */
        struct fake_completion pending[TEST_PENDING_MAX];
        int pending_count;
} fake;

static int fake_datasync(void *ctx, int fd, log_io_done_fn done, void *arg)
{
        struct stat st;

        (void)ctx;
        int result = fdatasync(fd) < 0 ? -errno : 0;
        cr_assert_eq(fstat(fd, &st), 0);
        if (fake.datasync_count < TEST_SYNCED_MAX)
                fake.synced[fake.datasync_count] = st.st_ino;
        fake.datasync_count++;
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

/* Writes are done at once; syncs as fake.is_deferred says. */
static const struct log_io_ops fake_ops = {
        .datasync = fake_datasync, .write = test_util_write_now, .now_ms = fake_now_ms
};
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

/* Completes syncs until none is in flight. */
static void fake_complete_all(void)
{
        for (int rounds = 0; fake.pending_count > 0; rounds++) {
                cr_assert_lt(rounds, 16, "syncs keep starting");
                fake_complete();
        }
}

/* ---- appends ---- */

struct txn_append {
        struct partition_append a;
        struct partition_marker marker;
        int done_count;
        int done_order;                 /* when it completed, among all appends */
        uint8_t batch[];
};

static struct txn_append *appends[TEST_APPENDS_MAX];
static int append_count;
static int done_sequence;

static void txn_append_done(struct partition_append *a)
{
        struct txn_append *t = a->ctx;
        t->done_count++;
        t->done_order = ++done_sequence;
}

static struct txn_append *txn_append_new(size_t batch_bytes, unsigned flags)
{
        cr_assert_lt(append_count, TEST_APPENDS_MAX);
        struct txn_append *t = calloc(1, sizeof(*t) + batch_bytes);
        cr_assert_not_null(t);
        t->a.is_durable = (flags & TA_DURABLE) != 0;
        t->a.is_txn_verified = (flags & TA_VERIFIED) != 0;
        t->a.done = txn_append_done;
        t->a.ctx = t;
        appends[append_count++] = t;
        return t;
}

/*
 * A client batch of count records from producer_id (NO_PRODUCER: a plain
 * one) at epoch and base sequence, as a producer sends it (base offset 0),
 * appended. A retry is the same call again: a fresh buffer with the same
 * producer fields, as the client resends it.
 */
static struct txn_append *append_batch(struct partition *p, int64_t producer_id, int16_t epoch, int32_t seq,
                                       uint32_t count, unsigned flags)
{
        static const uint8_t value[TEST_VALUE_BYTES] = { 'v' };
        struct record_spec rs[8];
        struct record_batch_spec spec;

        cr_assert_leq(count, 8);
        for (uint32_t i = 0; i < count; i++)
                rs[i] = (struct record_spec){ { (const uint8_t *)"k", 1 }, { value, TEST_VALUE_BYTES },
                                              TEST_NOW_MS, NULL, 0 };
        record_batch_spec_init(&spec, rs, count);
        if (producer_id != NO_PRODUCER) {
                spec.producer_id = producer_id;
                spec.producer_epoch = epoch;
                spec.base_sequence = seq;
        }
        if (flags & TA_TXN)
                spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
        size_t len = record_batch_encoded_size(&spec);
        struct txn_append *t = txn_append_new(len, flags);
        cr_assert_eq(record_batch_encode(&spec, t->batch, len), len);
        t->a.batches = t->batch;
        t->a.len = len;
        partition_append(p, &t->a);
        return t;
}

/* A transaction marker from the coordinator, appended. */
static struct txn_append *append_marker(struct partition *p, int64_t producer_id, int16_t epoch,
                                        int32_t coordinator_epoch, bool is_commit, unsigned flags)
{
        struct txn_append *t = txn_append_new(0, flags);
        t->marker = (struct partition_marker){ producer_id, epoch, coordinator_epoch, is_commit };
        t->a.marker = &t->marker;
        partition_append(p, &t->a);
        return t;
}

/* The append completed once, without error; returns its base offset. */
static int64_t expect_ok(const struct txn_append *t)
{
        cr_assert_eq(t->done_count, 1, "done %d times", t->done_count);
        cr_assert_eq(t->a.error_code, KAFKA_NONE, "error %d: %s", t->a.error_code, t->a.error_message);
        return t->a.base_offset;
}

/* The append completed once with code, and said why. */
static void expect_error(const struct txn_append *t, int16_t code)
{
        cr_assert_eq(t->done_count, 1, "done %d times", t->done_count);
        cr_assert_eq(t->a.error_code, code, "error %d, expected %d: %s", t->a.error_code, code,
                     t->a.error_message);
        cr_assert_neq(t->a.error_message[0], '\0', "a refusal says why");
}

static int64_t batch_ok(struct partition *p, int64_t producer_id, int16_t epoch, int32_t seq, uint32_t count,
                        unsigned flags)
{
        return expect_ok(append_batch(p, producer_id, epoch, seq, count, flags));
}

static int64_t plain_ok(struct partition *p)
{
        return batch_ok(p, NO_PRODUCER, 0, 0, 1, 0);
}

static int64_t marker_ok(struct partition *p, int64_t producer_id, int16_t epoch, int32_t coordinator_epoch,
                         bool is_commit)
{
        return expect_ok(append_marker(p, producer_id, epoch, coordinator_epoch, is_commit, 0));
}

/* ---- fixture ---- */

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "partition-txn");
        root_fd = test_util_dir_open(tmp_root);
        memset(&fake, 0, sizeof(fake));
        fake.now_ms = TEST_NOW_MS;
        append_count = 0;
        done_sequence = 0;
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

TestSuite(partition_txn, .init = test_setup, .fini = test_teardown);

static struct partition_options test_options(void)
{
        return test_util_partition_options(root_fd, TEST_DIR);
}

static struct partition *test_open(const struct partition_options *o)
{
        return test_util_partition_open(o, &fake_io);
}

/* Closes as the broker does at a clean shutdown: flushed, snapshotted. */
static void test_close_clean(struct partition *p)
{
        partition_flush(p);
        fake_complete_all();
        cr_assert_not(partition_is_flushing(p));
        cr_assert_eq(partition_snapshot_producers(p), 0);
        partition_close(p);
}

/* ---- files ---- */

/* "t-0/<20-digit base><suffix>" */
static const char *test_seg_path(int64_t base, const char *suffix)
{
        return test_util_seg_path(TEST_DIR, base, suffix);
}

static const char *test_snapshot_path(int64_t offset)
{
        static char buf[80];
        char name[64];

        producer_snapshot_file_name(name, sizeof(name), offset);
        snprintf(buf, sizeof(buf), TEST_DIR "/%s", name);
        return buf;
}

static bool test_exists(const char *rel)
{
        return test_util_exists_at(root_fd, rel);
}

static off_t test_size(const char *rel)
{
        return test_util_size_at(root_fd, rel);
}

static ino_t test_inode(const char *rel)
{
        struct stat st;

        cr_assert_eq(fstatat(root_fd, rel, &st, 0), 0, "%s: %s", rel, strerror(errno));
        return st.st_ino;
}

/* Reads a whole small file; returns its size. */
static size_t test_read_file(const char *rel, uint8_t *buf, size_t cap)
{
        int fd = openat(root_fd, rel, O_RDONLY);
        cr_assert_geq(fd, 0, "%s: %s", rel, strerror(errno));
        ssize_t n = read(fd, buf, cap);
        close(fd);
        cr_assert_geq(n, 0);
        cr_assert_lt((size_t)n, cap, "%s is larger than expected", rel);
        return (size_t)n;
}

static void test_truncate(const char *rel, off_t size)
{
        test_util_truncate_at(root_fd, rel, size);
}

/* The offsets of the .snapshot files in the partition directory, ascending;
 * returns how many. */
static int test_snapshots(int64_t *out, int cap)
{
        int64_t *offsets = NULL;
        int fd = openat(root_fd, TEST_DIR, O_RDONLY | O_DIRECTORY);

        cr_assert_geq(fd, 0);
        int n = producer_snapshot_list(fd, &offsets);
        close(fd);
        cr_assert_geq(n, 0);
        cr_assert_leq(n, cap);
        for (int i = 0; i < n; i++)
                out[i] = offsets[i];
        free(offsets);
        return n;
}

static uint8_t *put_be(uint8_t *p, uint64_t v, int bytes)
{
        for (int i = bytes - 1; i >= 0; i--)
                *p++ = (uint8_t)(v >> (i * 8));
        return p;
}

/* Kafka's AbortedTxn, written out from its layout: version int16 0,
 * producerId, firstOffset, lastOffset, lastStableOffset (int64s). */
static void test_aborted_bytes(uint8_t out[34], int64_t producer_id, int64_t first, int64_t last, int64_t lso)
{
        uint8_t *p = put_be(out, 0, 2);
        p = put_be(p, (uint64_t)producer_id, 8);
        p = put_be(p, (uint64_t)first, 8);
        p = put_be(p, (uint64_t)last, 8);
        put_be(p, (uint64_t)lso, 8);
}

/* ---- reads ---- */

static void test_read(struct partition *p, int64_t offset, bool is_committed, int32_t max_bytes,
                      struct partition_read *r)
{
        memset(r, 0, sizeof(*r));
        r->fetch_offset = offset;
        r->max_bytes = max_bytes;
        r->is_first_batch_whole = true;
        r->is_read_committed = is_committed;
        partition_read(p, r);
        cr_assert_eq(r->error_code, KAFKA_NONE, "read at %lld: error %d", (long long)offset, r->error_code);
}

/* The aborted transactions a read_committed fetch from offset gets. */
static uint32_t test_aborted(struct partition *p, int64_t offset, struct partition_aborted_txn *out, uint32_t cap)
{
        struct partition_read r;

        test_read(p, offset, true, 1 << 20, &r);
        uint32_t n = r.aborted_count;
        cr_assert(n == 0 || r.aborted != NULL);
        cr_assert_leq(n, cap);
        for (uint32_t i = 0; i < n; i++)
                out[i] = r.aborted[i];
        partition_read_release(&r);
        return n;
}

/* The raw batch at offset (the first batch of an uncommitted read). */
static size_t test_read_batch(struct partition *p, int64_t offset, uint8_t *buf, size_t cap,
                              struct record_batch_header *h)
{
        struct partition_read r;

        test_read(p, offset, false, 1, &r);
        cr_assert_not_null(r.segment, "nothing at %lld", (long long)offset);
        cr_assert_leq(r.len, cap);
        cr_assert_eq(pread(r.fd, buf, r.len, (off_t)r.file_position), (ssize_t)r.len);
        size_t len = r.len;
        partition_read_release(&r);
        cr_assert_eq(record_batch_frame(buf, len, h), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(record_batch_size_bytes(h), len, "one whole batch");
        return len;
}

/* ---- idempotence ---- */

Test(partition_txn, retry_gets_the_original_offsets_and_writes_nothing)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 1000, 0, 0, 3, 0), 0);
        cr_assert_eq(plain_ok(p), 3);
        cr_assert_eq(batch_ok(p, 1000, 0, 3, 2, 0), 4);
        off_t size = test_size(test_seg_path(0, ".log"));

        /* Both batches are among the five Kafka remembers. */
        struct txn_append *r1 = append_batch(p, 1000, 0, 0, 3, 0);
        cr_assert_eq(expect_ok(r1), 0);
        cr_assert_eq(r1->a.log_append_time_ms, TEST_NOW_MS, "Kafka answers a duplicate with its timestamp");
        struct txn_append *r2 = append_batch(p, 1000, 0, 3, 2, 0);
        cr_assert_eq(expect_ok(r2), 4);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(partition_high_watermark(p), 6);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size, "a duplicate writes nothing");

        /* The sequence goes on from the last batch, not from the retry. */
        cr_assert_eq(batch_ok(p, 1000, 0, 5, 1, 0), 6);
        const struct producer_entry *e = producer_state_find(partition_producers(p), 1000);
        cr_assert_not_null(e);
        cr_assert_eq(e->epoch, 0);
        partition_close(p);
}

Test(partition_txn, retry_of_a_batch_older_than_the_last_five_is_out_of_order)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        for (int i = 0; i < 6; i++)
                cr_assert_eq(batch_ok(p, 7, 0, i, 1, 0), i);
        off_t size = test_size(test_seg_path(0, ".log"));
        /* Kafka keeps NUM_BATCHES_TO_RETAIN (5): seq 1 is still known, 0 is not. */
        cr_assert_eq(expect_ok(append_batch(p, 7, 0, 1, 1, 0)), 1);
        expect_error(append_batch(p, 7, 0, 0, 1, 0), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size);
        partition_close(p);
}

Test(partition_txn, durable_retry_completes_after_the_sync_covering_the_original)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        fake.is_deferred = true;

        struct txn_append *orig = append_batch(p, 1, 0, 0, 2, TA_DURABLE);
        cr_assert_eq(orig->done_count, 0, "acks=all waits for the sync");
        cr_assert(partition_is_flushing(p));
        struct txn_append *retry = append_batch(p, 1, 0, 0, 2, TA_DURABLE);
        cr_assert_eq(retry->done_count, 0, "the retry of an unsynced batch waits too");
        /* acks=1 retries are answered at once, as their originals are. */
        cr_assert_eq(expect_ok(append_batch(p, 1, 0, 0, 2, 0)), 0);
        cr_assert_eq(partition_log_end_offset(p), 2);

        fake_complete_all();
        cr_assert_eq(expect_ok(orig), 0);
        cr_assert_eq(expect_ok(retry), 0);
        cr_assert_lt(orig->done_order, retry->done_order);
        cr_assert_eq(partition_recovery_point(p), 2);

        /* Synced: a durable retry is answered at once. */
        struct txn_append *again = append_batch(p, 1, 0, 0, 2, TA_DURABLE);
        cr_assert_eq(expect_ok(again), 0);
        cr_assert_not(partition_is_flushing(p));

        /* The original was acks=1 and is not synced: the acks=all retry
         * waits for a sync of its own. */
        cr_assert_eq(batch_ok(p, 1, 0, 2, 1, 0), 2);
        cr_assert_eq(partition_recovery_point(p), 2);
        struct txn_append *late = append_batch(p, 1, 0, 2, 1, TA_DURABLE);
        cr_assert_eq(late->done_count, 0);
        cr_assert(partition_is_flushing(p));
        fake_complete_all();
        cr_assert_eq(expect_ok(late), 2);
        cr_assert_eq(partition_recovery_point(p), 3);
        cr_assert_eq(partition_log_end_offset(p), 3);
        partition_close(p);
}

Test(partition_txn, sequence_gap_and_old_epoch_write_nothing)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 5, 1, 0, 2, 0), 0);
        off_t size = test_size(test_seg_path(0, ".log"));
        expect_error(append_batch(p, 5, 1, 5, 1, 0), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* Overlapping the last batch without matching it is no retry. */
        expect_error(append_batch(p, 5, 1, 1, 1, 0), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* A new epoch starts at sequence 0. */
        expect_error(append_batch(p, 5, 2, 2, 1, 0), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* Kafka 2.7+: INVALID_PRODUCER_EPOCH rather than PRODUCER_FENCED. */
        expect_error(append_batch(p, 5, 0, 2, 1, 0), KAFKA_INVALID_PRODUCER_EPOCH);
        cr_assert_eq(partition_log_end_offset(p), 2);
        cr_assert_eq(partition_high_watermark(p), 2);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size, "a refused batch writes nothing");

        cr_assert_eq(batch_ok(p, 5, 2, 0, 1, 0), 2, "the bumped epoch from 0");
        size = test_size(test_seg_path(0, ".log"));
        expect_error(append_batch(p, 5, 1, 2, 1, 0), KAFKA_INVALID_PRODUCER_EPOCH);
        /* A retry from before the bump is not found: its epoch is gone. */
        expect_error(append_batch(p, 5, 1, 0, 2, 0), KAFKA_INVALID_PRODUCER_EPOCH);
        cr_assert_eq(partition_log_end_offset(p), 3);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size);
        partition_close(p);
}

/* ---- the producer table across restarts ---- */

Test(partition_txn, clean_reopen_reads_the_snapshot_named_by_the_log_end)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 42, 3, 0, 3, 0), 0);
        cr_assert_eq(batch_ok(p, 42, 3, 3, 2, 0), 3);
        off_t size = test_size(test_seg_path(0, ".log"));
        test_close_clean(p);
        cr_assert(test_exists(test_snapshot_path(5)), "Kafka names the snapshot by the log end");
        int64_t snaps[8];
        cr_assert_eq(test_snapshots(snaps, 8), 1);

        o.is_clean_shutdown = true;
        o.recovery_point = 5;
        p = test_open(&o);
        cr_assert_eq(producer_state_count(partition_producers(p)), 1);
        cr_assert_eq(expect_ok(append_batch(p, 42, 3, 3, 2, 0)), 3, "still a duplicate");
        cr_assert_eq(partition_log_end_offset(p), 5);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size);
        expect_error(append_batch(p, 42, 3, 7, 1, 0), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        expect_error(append_batch(p, 42, 2, 5, 1, 0), KAFKA_INVALID_PRODUCER_EPOCH);
        cr_assert_eq(batch_ok(p, 42, 3, 5, 1, 0), 5);
        partition_close(p);
}

Test(partition_txn, unclean_reopen_without_snapshot_replays_the_log)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(plain_ok(p), 0);
        cr_assert_eq(batch_ok(p, 42, 0, 0, 3, 0), 1);
        cr_assert_eq(batch_ok(p, 43, 0, 0, 1, 0), 4);
        cr_assert_eq(batch_ok(p, 42, 0, 3, 2, 0), 5);
        off_t size = test_size(test_seg_path(0, ".log"));
        partition_close(p);             /* no flush, no snapshot: a crash */
        int64_t snaps[8];
        cr_assert_eq(test_snapshots(snaps, 8), 0);

        p = test_open(&o);              /* unclean, recovery point 0 */
        cr_assert_eq(partition_log_end_offset(p), 7);
        cr_assert_eq(producer_state_count(partition_producers(p)), 2);
        cr_assert_eq(expect_ok(append_batch(p, 42, 0, 3, 2, 0)), 5, "rebuilt from the log");
        cr_assert_eq(expect_ok(append_batch(p, 42, 0, 0, 3, 0)), 1, "every batch of the five");
        cr_assert_eq(expect_ok(append_batch(p, 43, 0, 0, 1, 0)), 4);
        cr_assert_eq(partition_log_end_offset(p), 7);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size);
        expect_error(append_batch(p, 42, 0, 6, 1, 0), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        cr_assert_eq(batch_ok(p, 42, 0, 5, 1, 0), 7);
        partition_close(p);

        /* The same after the recovery point moved past part of the log. */
        o.recovery_point = 5;
        p = test_open(&o);
        cr_assert_eq(expect_ok(append_batch(p, 42, 0, 5, 1, 0)), 7);
        cr_assert_eq(partition_log_end_offset(p), 8);
        partition_close(p);
}

/* The producer table a snapshot file holds. */
static void test_decode_snapshot(int64_t offset, struct producer_state *s)
{
        uint8_t buf[1024];
        size_t len = test_read_file(test_snapshot_path(offset), buf, sizeof(buf));

        producer_state_init(s);
        cr_assert_eq(producer_state_snapshot_decode(s, buf, len, TEST_NOW_MS, 0), 0);
}

Test(partition_txn, roll_snapshots_at_the_new_segment_base)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 200;
        struct partition *p = test_open(&o);

        /* Two 3-record batches do not fit 200 bytes: one per segment. */
        for (int i = 0; i < 4; i++)
                cr_assert_eq(batch_ok(p, 9, 0, 3 * i, 3, 0), 3 * i);
        cr_assert_eq(partition_segment_count(p), 4);
        int64_t snaps[8];
        cr_assert_eq(test_snapshots(snaps, 8), 3);
        cr_assert_eq(snaps[0], 3);
        cr_assert_eq(snaps[1], 6);
        cr_assert_eq(snaps[2], 9);

        /* Each holds the state before its segment: the batch ending at base - 1. */
        struct producer_state s;
        test_decode_snapshot(6, &s);
        const struct producer_entry *e = producer_state_find(&s, 9);
        cr_assert_not_null(e);
        cr_assert_eq(e->batch_count, 1, "Kafka's snapshot keeps the last batch");
        cr_assert_eq(e->batches[e->batch_head].last_seq, 5);
        cr_assert_eq(e->batches[e->batch_head].last_offset, 5);
        cr_assert_eq(e->batches[e->batch_head].offset_delta, 2);
        producer_state_free(&s);
        partition_close(p);

        /* An unclean restart replays from the newest snapshot. */
        p = test_open(&o);
        cr_assert_eq(expect_ok(append_batch(p, 9, 0, 9, 3, 0)), 9);
        cr_assert_eq(partition_log_end_offset(p), 12);
        cr_assert_eq(batch_ok(p, 9, 0, 12, 1, 0), 12);
        partition_close(p);
}

Test(partition_txn, retention_deletes_the_snapshots_of_deleted_segments)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 200;
        struct partition *p = test_open(&o);

        for (int i = 0; i < 5; i++)
                cr_assert_eq(batch_ok(p, 9, 0, 3 * i, 3, 0), 3 * i);
        cr_assert_eq(partition_segment_count(p), 5);
        int64_t snaps[8];
        cr_assert_eq(test_snapshots(snaps, 8), 4);

        /* Five equal segments, room for two: the three oldest go. */
        int64_t seg_bytes = (int64_t)test_size(test_seg_path(0, ".log"));
        o.config.retention_bytes = 2 * seg_bytes;
        partition_set_config(p, &o.config);
        cr_assert_eq(partition_enforce_retention(p, TEST_NOW_MS), 3);
        cr_assert_eq(partition_first_segment_offset(p), 9);
        cr_assert_eq(test_snapshots(snaps, 8), 2);
        cr_assert_eq(snaps[0], 9, "the first remaining segment's snapshot stays");
        cr_assert_eq(snaps[1], 12);
        cr_assert_not(test_exists(test_snapshot_path(3)));
        cr_assert_not(test_exists(test_snapshot_path(6)));
        partition_close(p);

        /* What is left still rebuilds the table. */
        p = test_open(&o);
        cr_assert_eq(partition_log_start_offset(p), 9);
        cr_assert_eq(expect_ok(append_batch(p, 9, 0, 12, 3, 0)), 12);
        cr_assert_eq(partition_log_end_offset(p), 15);
        partition_close(p);
}

/* ---- transactions ---- */

Test(partition_txn, unverified_transactional_batch_without_open_txn_is_invalid_txn_state)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        expect_error(append_batch(p, 10, 0, 0, 2, TA_TXN), KAFKA_INVALID_TXN_STATE);
        cr_assert_eq(partition_log_end_offset(p), 0);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), 0);
        /* A producer known from idempotent writes, with no transaction open. */
        cr_assert_eq(batch_ok(p, 11, 0, 0, 1, 0), 0);
        expect_error(append_batch(p, 11, 0, 1, 1, TA_TXN), KAFKA_INVALID_TXN_STATE);
        cr_assert_eq(partition_log_end_offset(p), 1);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        partition_close(p);
}

Test(partition_txn, open_transaction_holds_the_last_stable_offset)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(plain_ok(p), 0);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        cr_assert_eq(batch_ok(p, 10, 0, 0, 2, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        cr_assert_eq(partition_high_watermark(p), 3);
        cr_assert_eq(plain_ok(p), 3);
        cr_assert_eq(batch_ok(p, 20, 0, 0, 1, 0), 4, "other producers write on");
        cr_assert_eq(partition_high_watermark(p), 5);
        cr_assert_eq(partition_last_stable_offset(p), 1);

        /* In the open transaction, no verification is needed. */
        cr_assert_eq(batch_ok(p, 10, 0, 2, 1, TA_TXN), 5);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        /* Outside it, the producer may not write. */
        off_t size = test_size(test_seg_path(0, ".log"));
        expect_error(append_batch(p, 10, 0, 3, 1, 0), KAFKA_INVALID_TXN_STATE);
        cr_assert_eq(partition_log_end_offset(p), 6);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size);

        cr_assert_eq(marker_ok(p, 10, 0, 1, true), 6);
        cr_assert_eq(partition_high_watermark(p), 7);
        cr_assert_eq(partition_last_stable_offset(p), 7, "the commit frees the LSO");
        struct partition_aborted_txn none[2];
        cr_assert_eq(test_aborted(p, 0, none, 2), 0, "a commit lists nothing");

        /* The transaction is over: a transactional batch needs a new one. */
        expect_error(append_batch(p, 10, 0, 3, 1, TA_TXN), KAFKA_INVALID_TXN_STATE);
        cr_assert_eq(batch_ok(p, 10, 0, 3, 1, 0), 7, "idempotent writes go on");
        cr_assert_eq(partition_last_stable_offset(p), 8);
        partition_close(p);
}

Test(partition_txn, abort_is_listed_for_read_committed_only)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        struct partition_read r;

        cr_assert_eq(plain_ok(p), 0);
        cr_assert_eq(batch_ok(p, 30, 2, 0, 2, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(marker_ok(p, 30, 2, 4, false), 3);
        cr_assert_eq(partition_last_stable_offset(p), 4);
        cr_assert_eq(partition_high_watermark(p), 4);

        test_read(p, 0, true, 1 << 20, &r);
        cr_assert_eq(r.last_stable_offset, 4);
        cr_assert_eq(r.high_watermark, 4);
        cr_assert_eq(r.aborted_count, 1);
        cr_assert_eq(r.aborted[0].producer_id, 30);
        cr_assert_eq(r.aborted[0].first_offset, 1);
        cr_assert_eq(r.aborted[0].last_offset, 3);
        cr_assert_eq(r.aborted[0].last_stable_offset, 4);
        cr_assert_eq(r.len, (uint32_t)test_size(test_seg_path(0, ".log")), "the aborted records are sent too");
        partition_read_release(&r);
        cr_assert_null(r.aborted);

        test_read(p, 0, false, 1 << 20, &r);
        cr_assert_eq(r.aborted_count, 0, "read_uncommitted gets no list");
        cr_assert_null(r.aborted);
        partition_read_release(&r);

        /* A fetch from past the marker concerns no aborted transaction. */
        cr_assert_eq(plain_ok(p), 4);
        struct partition_aborted_txn t[2];
        cr_assert_eq(test_aborted(p, 4, t, 2), 0);
        cr_assert_eq(test_aborted(p, 3, t, 2), 1, "one ending at the fetch offset is listed");
        cr_assert_eq(test_aborted(p, 2, t, 2), 1);
        partition_close(p);
}

Test(partition_txn, read_committed_stops_before_the_open_transaction)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        struct partition_read r;

        cr_assert_eq(batch_ok(p, NO_PRODUCER, 0, 0, 2, 0), 0);
        off_t second = test_size(test_seg_path(0, ".log"));
        cr_assert_eq(plain_ok(p), 2);
        off_t txn_position = test_size(test_seg_path(0, ".log"));
        cr_assert_eq(batch_ok(p, 50, 0, 0, 2, TA_TXN | TA_VERIFIED), 3);
        cr_assert_eq(plain_ok(p), 5);
        off_t end = test_size(test_seg_path(0, ".log"));
        cr_assert_eq(partition_last_stable_offset(p), 3);

        test_read(p, 0, true, 1 << 20, &r);
        cr_assert_not_null(r.segment);
        cr_assert_eq(r.last_stable_offset, 3);
        cr_assert_eq(r.high_watermark, 6);
        cr_assert_eq(r.file_position, 0);
        cr_assert_eq(r.len, (uint32_t)txn_position, "only the bytes before the open transaction");
        cr_assert_eq(r.aborted_count, 0);
        partition_read_release(&r);

        test_read(p, 2, true, 1 << 20, &r);
        cr_assert_eq(r.file_position, (uint64_t)second);
        cr_assert_eq(r.len, (uint32_t)(txn_position - second));
        partition_read_release(&r);

        /* A tiny max_bytes still gets the first batch whole, no more. */
        test_read(p, 0, true, 1, &r);
        cr_assert_eq(r.len, (uint32_t)second);
        partition_read_release(&r);

        /* At or past the LSO: nothing, and no error. */
        for (int64_t at = 3; at <= 6; at++) {
                test_read(p, at, true, 1 << 20, &r);
                cr_assert_null(r.segment, "read_committed at %lld", (long long)at);
                cr_assert_eq(r.len, 0);
                cr_assert_eq(r.fd, -1);
                cr_assert_eq(r.aborted_count, 0);
                partition_read_release(&r);
        }

        test_read(p, 0, false, 1 << 20, &r);
        cr_assert_eq(r.len, (uint32_t)end, "read_uncommitted reads to the high watermark");
        partition_read_release(&r);
        test_read(p, 3, false, 1 << 20, &r);
        cr_assert_eq(r.file_position, (uint64_t)txn_position);
        partition_read_release(&r);

        cr_assert_eq(marker_ok(p, 50, 0, 0, true), 6);
        test_read(p, 0, true, 1 << 20, &r);
        cr_assert_eq(r.last_stable_offset, 7);
        cr_assert_eq(r.len, (uint32_t)test_size(test_seg_path(0, ".log")));
        partition_read_release(&r);
        partition_close(p);
}

Test(partition_txn, last_stable_offset_is_the_oldest_open_transaction)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 1, 0, 0, 1, TA_TXN | TA_VERIFIED), 0);
        cr_assert_eq(batch_ok(p, 2, 0, 0, 1, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(batch_ok(p, 1, 0, 1, 1, TA_TXN), 2);
        cr_assert_eq(partition_last_stable_offset(p), 0);

        /* Aborting the oldest: the LSO moves to the next open one, and the
         * index records it (Kafka's lastStableOffset(completedTxn)). */
        cr_assert_eq(marker_ok(p, 1, 0, 0, false), 3);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        struct partition_aborted_txn t[4];
        cr_assert_eq(test_aborted(p, 0, t, 4), 1);
        cr_assert_eq(t[0].producer_id, 1);
        cr_assert_eq(t[0].first_offset, 0);
        cr_assert_eq(t[0].last_offset, 3);
        cr_assert_eq(t[0].last_stable_offset, 1);

        /* Committing a younger one while an older is open leaves the LSO. */
        cr_assert_eq(batch_ok(p, 3, 0, 0, 1, TA_TXN | TA_VERIFIED), 4);
        cr_assert_eq(marker_ok(p, 3, 0, 0, true), 5);
        cr_assert_eq(partition_last_stable_offset(p), 1);

        cr_assert_eq(marker_ok(p, 2, 0, 0, false), 6);
        cr_assert_eq(partition_last_stable_offset(p), 7);
        cr_assert_eq(test_aborted(p, 0, t, 4), 2);
        cr_assert_eq(t[1].producer_id, 2);
        cr_assert_eq(t[1].first_offset, 1);
        cr_assert_eq(t[1].last_offset, 6);
        cr_assert_eq(t[1].last_stable_offset, 7);
        partition_close(p);
}

Test(partition_txn, markers_from_an_old_producer_or_coordinator_epoch_are_fenced)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 9, 3, 0, 1, TA_TXN | TA_VERIFIED), 0);
        expect_error(append_marker(p, 9, 2, 5, true, 0), KAFKA_INVALID_PRODUCER_EPOCH);
        cr_assert_eq(partition_log_end_offset(p), 1);
        cr_assert_eq(partition_last_stable_offset(p), 0, "the transaction is still open");

        cr_assert_eq(marker_ok(p, 9, 3, 5, true), 1);
        cr_assert_eq(batch_ok(p, 9, 3, 1, 1, TA_TXN | TA_VERIFIED), 2);
        off_t size = test_size(test_seg_path(0, ".log"));
        expect_error(append_marker(p, 9, 3, 4, false, 0), KAFKA_TRANSACTION_COORDINATOR_FENCED);
        cr_assert_eq(partition_log_end_offset(p), 3);
        cr_assert_eq(test_size(test_seg_path(0, ".log")), size);
        cr_assert_eq(partition_last_stable_offset(p), 2);
        struct partition_aborted_txn t[2];
        cr_assert_eq(test_aborted(p, 0, t, 2), 0, "a fenced abort lists nothing");

        /* A newer coordinator epoch is taken. */
        cr_assert_eq(marker_ok(p, 9, 3, 6, false), 3);
        cr_assert_eq(partition_last_stable_offset(p), 4);
        cr_assert_eq(test_aborted(p, 0, t, 2), 1);

        /* A marker with a bumped epoch fences the producer's older epoch. */
        cr_assert_eq(marker_ok(p, 9, 4, 6, false), 4);
        expect_error(append_batch(p, 9, 3, 2, 1, 0), KAFKA_INVALID_PRODUCER_EPOCH);
        cr_assert_eq(test_aborted(p, 0, t, 2), 1, "a marker for no open transaction lists nothing");
        cr_assert_eq(partition_log_end_offset(p), 5);
        partition_close(p);
}

Test(partition_txn, open_transaction_survives_reopen)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(plain_ok(p), 0);
        cr_assert_eq(batch_ok(p, 60, 1, 0, 2, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(plain_ok(p), 3);
        test_close_clean(p);

        /* From the snapshot. */
        o.is_clean_shutdown = true;
        o.recovery_point = 4;
        p = test_open(&o);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        cr_assert_eq(partition_high_watermark(p), 4);
        cr_assert_eq(batch_ok(p, 60, 1, 2, 1, TA_TXN), 4, "still open: no verification needed");
        partition_close(p);

        /* From the log. */
        o.is_clean_shutdown = false;
        o.recovery_point = 0;
        cr_assert_eq(unlinkat(root_fd, test_snapshot_path(4), 0), 0);
        p = test_open(&o);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        cr_assert_eq(marker_ok(p, 60, 1, 0, false), 5);
        cr_assert_eq(partition_last_stable_offset(p), 6);
        struct partition_aborted_txn t[2];
        cr_assert_eq(test_aborted(p, 0, t, 2), 1);
        cr_assert_eq(t[0].first_offset, 1);
        cr_assert_eq(t[0].last_offset, 5);
        partition_close(p);
}

/* ---- the .txnindex ---- */

/* A plain batch at 0, producer 30's transaction at 1-2, its abort at 3
 * (coordinator epoch 7), a plain batch at 4. */
static struct partition *test_aborted_log(const struct partition_options *o)
{
        struct partition *p = test_open(o);
        cr_assert_eq(plain_ok(p), 0);
        cr_assert_eq(batch_ok(p, 30, 0, 0, 2, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(marker_ok(p, 30, 0, 7, false), 3);
        cr_assert_eq(plain_ok(p), 4);
        return p;
}

static void test_expect_one_aborted(struct partition *p)
{
        struct partition_aborted_txn t[4];
        cr_assert_eq(test_aborted(p, 0, t, 4), 1, "listed exactly once");
        cr_assert_eq(t[0].producer_id, 30);
        cr_assert_eq(t[0].first_offset, 1);
        cr_assert_eq(t[0].last_offset, 3);
        cr_assert_eq(t[0].last_stable_offset, 4);
}

static void test_expect_index_bytes(const uint8_t *expected, size_t len)
{
        uint8_t got[256];
        cr_assert_eq(test_read_file(test_seg_path(0, TXN_INDEX_FILE_SUFFIX), got, sizeof(got)), len);
        cr_assert_eq(memcmp(got, expected, len), 0, "the .txnindex holds Kafka's AbortedTxn");
}

Test(partition_txn, abort_writes_kafkas_txnindex_entry)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        uint8_t expected[34];

        cr_assert_eq(plain_ok(p), 0);
        cr_assert_eq(batch_ok(p, 30, 0, 0, 2, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(marker_ok(p, 30, 0, 7, true), 3);
        cr_assert_not(test_exists(test_seg_path(0, TXN_INDEX_FILE_SUFFIX)), "Kafka creates it on the first abort");
        cr_assert_eq(batch_ok(p, 30, 0, 2, 2, TA_TXN | TA_VERIFIED), 4);
        cr_assert_eq(marker_ok(p, 30, 0, 7, false), 6);

        test_aborted_bytes(expected, 30, 4, 6, 7);
        test_expect_index_bytes(expected, sizeof(expected));
        /* Exact big-endian layout, spelt out once. */
        static const uint8_t spelt[34] = {
                0, 0,                                   /* version */
                0, 0, 0, 0, 0, 0, 0, 30,                /* producer id */
                0, 0, 0, 0, 0, 0, 0, 4,                 /* first offset */
                0, 0, 0, 0, 0, 0, 0, 6,                 /* last offset: the marker */
                0, 0, 0, 0, 0, 0, 0, 7,                 /* last stable offset */
        };
        cr_assert_eq(memcmp(expected, spelt, sizeof(spelt)), 0);
        partition_close(p);
}

Test(partition_txn, aborted_txn_survives_reopen_exactly_once)
{
        struct partition_options o = test_options();
        struct partition *p = test_aborted_log(&o);
        uint8_t expected[68];

        test_aborted_bytes(expected, 30, 1, 3, 4);
        test_expect_index_bytes(expected, 34);
        test_expect_one_aborted(p);
        test_close_clean(p);

        /* Clean: the snapshot at the log end, nothing replayed. */
        o.is_clean_shutdown = true;
        o.recovery_point = 5;
        p = test_open(&o);
        test_expect_one_aborted(p);
        cr_assert_eq(partition_last_stable_offset(p), 5);
        partition_close(p);
        test_expect_index_bytes(expected, 34);

        /* Unclean with the snapshot: from it. */
        o.is_clean_shutdown = false;
        o.recovery_point = 0;
        p = test_open(&o);
        test_expect_one_aborted(p);
        partition_close(p);
        test_expect_index_bytes(expected, 34);

        /* Unclean without any snapshot: the whole log is replayed, the
         * marker met again, and the index already lists it. */
        int64_t snaps[8];
        int n = test_snapshots(snaps, 8);
        for (int i = 0; i < n; i++)
                cr_assert_eq(unlinkat(root_fd, test_snapshot_path(snaps[i]), 0), 0);
        p = test_open(&o);
        test_expect_one_aborted(p);
        test_expect_index_bytes(expected, 34);

        /* A later abort is appended after it. */
        cr_assert_eq(batch_ok(p, 31, 0, 0, 1, TA_TXN | TA_VERIFIED), 5);
        cr_assert_eq(marker_ok(p, 31, 0, 7, false), 6);
        test_aborted_bytes(expected + 34, 31, 5, 6, 7);
        test_expect_index_bytes(expected, 68);
        struct partition_aborted_txn t[4];
        cr_assert_eq(test_aborted(p, 0, t, 4), 2);
        cr_assert_eq(test_aborted(p, 4, t, 4), 1);
        cr_assert_eq(t[0].producer_id, 31);
        partition_close(p);
}

Test(partition_txn, recovery_cutting_the_marker_drops_its_entry)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(plain_ok(p), 0);
        off_t first_bytes = test_size(test_seg_path(0, ".log"));
        cr_assert_eq(batch_ok(p, 30, 0, 0, 2, TA_TXN | TA_VERIFIED), 1);
        off_t marker_position = test_size(test_seg_path(0, ".log"));
        cr_assert_eq(marker_ok(p, 30, 0, 7, false), 3);
        cr_assert_eq(plain_ok(p), 4);
        cr_assert_eq(test_size(test_seg_path(0, TXN_INDEX_FILE_SUFFIX)), 34);
        partition_close(p);

        /* A crash tore the marker: recovery cuts the log before it. */
        test_truncate(test_seg_path(0, ".log"), marker_position + 10);
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 3);
        cr_assert_eq(test_size(test_seg_path(0, TXN_INDEX_FILE_SUFFIX)), 0, "the entry past the log end is cut");
        struct partition_aborted_txn t[2];
        cr_assert_eq(test_aborted(p, 0, t, 2), 0);
        /* Without its marker the transaction is open again. */
        cr_assert_eq(partition_last_stable_offset(p), 1);
        struct partition_read r;
        test_read(p, 0, true, 1 << 20, &r);
        cr_assert_eq(r.len, (uint32_t)first_bytes);
        partition_read_release(&r);

        /* The coordinator writes the marker again. */
        cr_assert_eq(marker_ok(p, 30, 0, 7, false), 3);
        uint8_t expected[34];
        test_aborted_bytes(expected, 30, 1, 3, 4);
        test_expect_index_bytes(expected, 34);
        cr_assert_eq(test_aborted(p, 0, t, 2), 1);
        partition_close(p);

        /* After a clean close with a snapshot at 5, a cut to 3 drops that
         * snapshot too, and the index with it. */
        p = test_open(&o);
        cr_assert_eq(plain_ok(p), 4);
        test_close_clean(p);
        cr_assert(test_exists(test_snapshot_path(5)));
        test_truncate(test_seg_path(0, ".log"), marker_position + 10);
        o.recovery_point = 0;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), 3);
        cr_assert_not(test_exists(test_snapshot_path(5)), "a snapshot past the log end is deleted");
        cr_assert_eq(test_aborted(p, 0, t, 2), 0);
        cr_assert_eq(partition_last_stable_offset(p), 1);
        partition_close(p);
}

/*
 * Kafka's LogSegment.flush syncs the .txnindex with the .log, so that an
 * abort below the recovery point (never rescanned after a crash) keeps its
 * entry. Here every fdatasync goes through log_io (partition.h): the sync
 * that covers the marker must include the segment's .txnindex.
 */
Test(partition_txn, sync_covering_an_abort_marker_syncs_the_txnindex)
{
        struct partition_options o = test_options();
        struct partition *p = test_aborted_log(&o);

        partition_flush(p);
        fake_complete_all();
        cr_assert_eq(partition_recovery_point(p), 5);
        ino_t ix = test_inode(test_seg_path(0, TXN_INDEX_FILE_SUFFIX));
        bool is_synced = false;
        for (int i = 0; i < fake.datasync_count && i < TEST_SYNCED_MAX; i++)
                is_synced |= fake.synced[i] == ix;
        cr_assert(is_synced, "the recovery point passed the abort marker, but its .txnindex entry was never "
                             "fdatasync'ed: a power loss can drop it while the .log keeps the marker");
        partition_close(p);
}

/* ---- the marker batch ---- */

static void test_expect_marker_batch(struct partition *p, int64_t offset, int64_t producer_id, int16_t epoch,
                                     int32_t coordinator_epoch, bool is_commit)
{
        uint8_t buf[256];
        struct record_batch_header h;
        size_t len = test_read_batch(p, offset, buf, sizeof(buf), &h);
        struct record_batch_check check;

        cr_assert_eq(record_batch_validate(buf, len, NULL, &check), KAFKA_NONE, "%s", check.reason);
        cr_assert_eq(h.base_offset, offset);
        cr_assert_eq(h.magic, 2);
        cr_assert_eq(h.attributes, RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_TRANSACTIONAL,
                     "control + transactional, uncompressed, CreateTime: 0x%x", h.attributes);
        cr_assert_eq(h.producer_id, producer_id);
        cr_assert_eq(h.producer_epoch, epoch);
        cr_assert_eq(h.base_sequence, RECORD_BATCH_NO_SEQUENCE);
        cr_assert_eq(h.record_count, 1);
        cr_assert_eq(h.last_offset_delta, 0);
        cr_assert_eq(h.partition_leader_epoch, partition_leader_epoch(p));
        cr_assert_eq(h.max_timestamp_ms, TEST_NOW_MS);

        struct record_iter it;
        struct record_view rec;
        cr_assert_eq(record_iter_init(&it, buf, len), KAFKA_NONE);
        cr_assert(record_iter_next(&it, &rec));
        /* ControlRecordType key: version int16 0, type int16 (0 abort, 1 commit). */
        uint8_t key[4] = { 0, 0, 0, is_commit ? 1 : 0 };
        cr_assert_eq(rec.key.len, 4);
        cr_assert_eq(memcmp(rec.key.ptr, key, 4), 0);
        /* EndTransactionMarker value: version int16 0, coordinator epoch int32. */
        uint8_t value[6];
        put_be(put_be(value, 0, 2), (uint32_t)coordinator_epoch, 4);
        cr_assert_eq(rec.value.len, 6);
        cr_assert_eq(memcmp(rec.value.ptr, value, 6), 0);
        cr_assert_eq(rec.header_count, 0);
        cr_assert_eq(rec.offset, offset);
        cr_assert_not(record_iter_next(&it, &rec));
        cr_assert_eq(it.error_code, KAFKA_NONE);
}

Test(partition_txn, marker_batch_is_kafkas_end_transaction_marker)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 77, 3, 0, 2, TA_TXN | TA_VERIFIED), 0);
        cr_assert_eq(marker_ok(p, 77, 3, 0x01020304, true), 2);
        cr_assert_eq(batch_ok(p, 77, 3, 2, 1, TA_TXN | TA_VERIFIED), 3);
        cr_assert_eq(marker_ok(p, 77, 3, 0x01020305, false), 4);
        /* A marker for a producer this partition never saw is written too. */
        cr_assert_eq(marker_ok(p, 78, 0, 1, true), 5);
        test_expect_marker_batch(p, 2, 77, 3, 0x01020304, true);
        test_expect_marker_batch(p, 4, 77, 3, 0x01020305, false);
        test_expect_marker_batch(p, 5, 78, 0, 1, true);
        partition_close(p);
}

/* ---- transactions across segments ---- */

Test(partition_txn, transaction_across_a_roll)
{
        struct partition_options o = test_options();
        o.config.segment_bytes = 200;
        struct partition *p = test_open(&o);

        /* Segment 0: the transaction's data; segment 3: its abort. */
        cr_assert_eq(batch_ok(p, 1, 0, 0, 3, TA_TXN | TA_VERIFIED), 0);
        cr_assert_eq(plain_ok(p), 3);
        cr_assert_eq(partition_segment_count(p), 2);
        cr_assert_eq(partition_last_stable_offset(p), 0);
        cr_assert(test_exists(test_snapshot_path(3)));
        cr_assert_eq(marker_ok(p, 1, 0, 2, false), 4);
        cr_assert_eq(partition_segment_count(p), 2, "the marker fits segment 3");
        cr_assert_eq(partition_last_stable_offset(p), 5);

        /* The entry sits in the segment holding the marker. */
        cr_assert_not(test_exists(test_seg_path(0, TXN_INDEX_FILE_SUFFIX)));
        uint8_t expected[34], got[64];
        test_aborted_bytes(expected, 1, 0, 4, 5);
        cr_assert_eq(test_read_file(test_seg_path(3, TXN_INDEX_FILE_SUFFIX), got, sizeof(got)), 34);
        cr_assert_eq(memcmp(got, expected, 34), 0);
        struct partition_aborted_txn t[2];
        cr_assert_eq(test_aborted(p, 0, t, 2), 1);
        cr_assert_eq(test_aborted(p, 3, t, 2), 1, "a fetch inside the transaction gets it");
        cr_assert_eq(t[0].first_offset, 0);
        partition_close(p);

        /* The snapshot at 3 holds the open transaction; the replay from it
         * meets the abort, which the index already lists. */
        p = test_open(&o);
        cr_assert_eq(partition_last_stable_offset(p), 5);
        cr_assert_eq(test_aborted(p, 0, t, 2), 1);
        cr_assert_eq(test_size(test_seg_path(3, TXN_INDEX_FILE_SUFFIX)), 34);

        /* Deleting the segments takes the entry and its file. */
        cr_assert_eq(plain_ok(p), 5);
        cr_assert_eq(partition_segment_count(p), 3);
        int64_t low;
        cr_assert_eq(partition_delete_records(p, 5, &low), KAFKA_NONE);
        cr_assert_eq(partition_first_segment_offset(p), 5);
        cr_assert_not(test_exists(test_seg_path(3, TXN_INDEX_FILE_SUFFIX)));
        cr_assert_not(test_exists(test_snapshot_path(3)));
        cr_assert_eq(test_aborted(p, 5, t, 2), 0);
        partition_close(p);
}

/*
 * Kafka's recovery rebuilds a .txnindex with lastStableOffset(completedTxn):
 * the first offset of the oldest transaction still open, else the marker's
 * offset + 1. When runnel's replay at open re-creates a missing entry
 * (here the file is gone, as after a crash that lost its unsynced pages)
 * it must record the same value, or Kafka's collectAbortedTxns, which
 * stops at the first entry whose lastStableOffset reaches the fetch's
 * upper bound, would stop too early on these files.
 */
Test(partition_txn, replay_rebuilds_a_lost_txnindex_entry_with_kafkas_last_stable_offset)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);

        cr_assert_eq(batch_ok(p, 1, 0, 0, 1, TA_TXN | TA_VERIFIED), 0);
        cr_assert_eq(batch_ok(p, 2, 0, 0, 1, TA_TXN | TA_VERIFIED), 1);
        cr_assert_eq(marker_ok(p, 1, 0, 0, false), 2);
        cr_assert_eq(plain_ok(p), 3);
        uint8_t expected[34];
        test_aborted_bytes(expected, 1, 0, 2, 1);
        test_expect_index_bytes(expected, 34);
        partition_close(p);

        cr_assert_eq(unlinkat(root_fd, test_seg_path(0, TXN_INDEX_FILE_SUFFIX), 0), 0);
        p = test_open(&o);              /* unclean, no snapshot: the whole log */
        cr_assert_eq(partition_last_stable_offset(p), 1, "producer 2's transaction is open");
        struct partition_aborted_txn t[2];
        cr_assert_eq(test_aborted(p, 0, t, 2), 1, "the abort is found again");
        cr_assert_eq(t[0].producer_id, 1);
        cr_assert_eq(t[0].last_offset, 2);
        cr_assert_eq(t[0].last_stable_offset, 1, "producer 2's open transaction, not the marker + 1");
        test_expect_index_bytes(expected, 34);
        partition_close(p);
}
