/*
 * test_disk_full.c - a segment and a partition on a file system that fills
 * up: the append that finds no space is refused with nothing written, the
 * broker never faults, and appends succeed again once space is freed.
 *
 * Regressions:
 *   - an index entry stored into a sparse page of the preallocated, mapped
 *     index file when the file system was full raised SIGBUS and killed the
 *     broker (the .log's write fitted in its last, allocated page; the
 *     index's next page had no block behind it);
 *   - segment_append's -ENOSPC meant "index full, roll": a full disk made
 *     the partition roll a new empty segment, then fail for good.
 *
 * A full disk is a small tmpfs mounted in a mount namespace of the test's
 * own (Criterion runs each test in a forked worker; the mount goes away
 * with it, whatever happens). Filling it is one file written until
 * ENOSPC. Without the privilege to do so (not root, no user namespaces)
 * the tests are skipped, saying why.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/partition.h"
#include "log/segment.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "log/test_util.h"

#define TEST_FS_BYTES (1u << 20)
#define TEST_NOW_MS TEST_UTIL_NOW_MS

static char tmp_root[64];
static int root_fd = -1;

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "diskfull");
}

static void test_teardown(void)
{
        test_util_fd_close(&root_fd);
        /* The mount dies with the worker's namespace; only the empty
         * mount point is left in the parent's. */
        umount2(tmp_root, MNT_DETACH);
        rmdir(tmp_root);
}

TestSuite(disk_full, .init = test_setup, .fini = test_teardown);

/* A TEST_FS_BYTES tmpfs on tmp_root, seen by this worker only. */
static void test_mount_small_fs(void)
{
        char opts[64];

        if (unshare(CLONE_NEWNS) < 0)
                cr_skip_test("cannot make a mount namespace (%s): run as root to test a full disk",
                             strerror(errno));
        cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0, "%s", strerror(errno));
        snprintf(opts, sizeof(opts), "size=%u", TEST_FS_BYTES);
        if (mount("tmpfs", tmp_root, "tmpfs", 0, opts) < 0)
                cr_skip_test("cannot mount a tmpfs (%s)", strerror(errno));
        root_fd = open(tmp_root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        cr_assert_geq(root_fd, 0);
}

/* Writes "filler" until the file system is full. */
static void test_fill(void)
{
        static const uint8_t block[4096];
        int fd = openat(root_fd, "filler", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        uint32_t i;

        cr_assert_geq(fd, 0);
        for (i = 0; i < 2 * TEST_FS_BYTES / sizeof(block); i++) {
                ssize_t n = write(fd, block, sizeof(block));
                if (n < 0) {
                        cr_assert_eq(errno, ENOSPC, "%s", strerror(errno));
                        break;
                }
        }
        cr_assert_lt(i, 2 * TEST_FS_BYTES / sizeof(block), "the file system never filled up");
        /* And the last partial block. */
        while (write(fd, block, 1) == 1)
                ;
        close(fd);
}

static void test_free(void)
{
        cr_assert_eq(unlinkat(root_fd, "filler", 0), 0);
}

/* A batch of count records of vlen bytes at base. */
static size_t test_batch(uint8_t *out, size_t cap, int64_t base, uint32_t count, uint32_t vlen)
{
        struct test_util_batch b = { .base_offset = base, .count = count, .key = "k", .value_bytes = vlen,
                                     .value_fill = 'v', .timestamp_ms = TEST_NOW_MS };
        return test_util_batch_encode(&b, out, cap);
}

/* ---- segment ---- */

Test(disk_full, segment_index_entry_on_a_full_disk_is_enospc_not_sigbus)
{
        struct segment_config cfg = { .index_interval_bytes = 10, .index_bytes_max = 64 << 10 };
        struct segment seg;
        uint8_t buf[512];
        uint32_t pos;
        size_t n;

        test_mount_small_fs();
        cr_assert_eq(mkdirat(root_fd, "p", 0755), 0);
        struct logdir_ref part_dir;
        cr_assert_eq(logdir_ref_init(&part_dir, root_fd, "p"), 0);
        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        /* The first batch makes no index entry and gives the .log a page
         * with room to spare. */
        n = test_batch(buf, sizeof(buf), 0, 1, 50);
        cr_assert_eq(segment_append(&seg, buf, n, &pos), 0);
        cr_assert_eq(seg.offset_index.entry_count, 0);
        uint32_t size = seg.size_bytes;

        test_fill();
        /* The second fits that page, and makes the first index entry: its
         * page of the sparse index file has no block to be had. */
        n = test_batch(buf, sizeof(buf), 1, 1, 50);
        int rc = segment_append(&seg, buf, n, &pos);
        cr_assert_eq(rc, -ENOSPC, "append on a full disk: %d (%s)", rc, strerror(-rc));
        cr_assert_eq(seg.size_bytes, size, "nothing written");
        cr_assert_eq(seg.next_offset, 1);
        cr_assert_eq(seg.offset_index.entry_count, 0);
        cr_assert_not(seg.is_tail_dirty);

        test_free();
        cr_assert_eq(segment_append(&seg, buf, n, &pos), 0);
        cr_assert_eq(pos, size);
        cr_assert_eq(seg.offset_index.entry_count, 1);
        cr_assert_eq(seg.next_offset, 2);
        cr_assert_eq(segment_close(&seg), 0);

        /* What is on disk reads back whole. */
        struct segment_scan scan;
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(scan.batch_count, 2);
        cr_assert_eq(scan.truncated_bytes, 0);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(disk_full, segment_short_write_on_a_full_disk_is_cut_off)
{
        struct segment_config cfg = { .index_interval_bytes = 4096, .index_bytes_max = 64 << 10 };
        struct segment seg;
        static uint8_t buf[64 << 10];
        uint32_t pos;
        int64_t next = 0;
        int rc = 0;

        test_mount_small_fs();
        cr_assert_eq(mkdirat(root_fd, "p", 0755), 0);
        struct logdir_ref part_dir;
        cr_assert_eq(logdir_ref_init(&part_dir, root_fd, "p"), 0);
        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        /* Batches of about 3 KiB until the disk is full: the last write is
         * short, and must leave nothing of itself. */
        for (int i = 0; i < 1000; i++) {
                size_t n = test_batch(buf, sizeof(buf), next, 1, 3000);
                rc = segment_append(&seg, buf, n, &pos);
                if (rc < 0)
                        break;
                next++;
        }
        cr_assert_eq(rc, -ENOSPC, "appending until full ended with %d (%s)", rc, strerror(-rc));
        cr_assert_not(seg.is_tail_dirty);
        cr_assert_eq(seg.next_offset, next);
        struct stat st;
        cr_assert_eq(fstat(seg.log_fd, &st), 0);
        cr_assert_eq((uint64_t)st.st_size, seg.size_bytes, "the short write was cut off");
        cr_assert_eq(segment_close(&seg), 0);
}

/* ---- partition ---- */

struct test_append {
        struct partition_append a;
        int done_count;
        uint8_t batch[4096];
};

static void test_append_done(struct partition_append *a)
{
        ((struct test_append *)a->ctx)->done_count++;
}

/* An acks=all append of one record of vlen bytes; its error code. */
static int16_t test_produce(struct partition *p, uint32_t vlen, int64_t *base_out)
{
        struct test_append *t = calloc(1, sizeof(*t));
        int16_t code;

        cr_assert_not_null(t);
        t->a.len = test_batch(t->batch, sizeof(t->batch), 0, 1, vlen);
        t->a.batches = t->batch;
        t->a.is_durable = true;
        t->a.done = test_append_done;
        t->a.ctx = t;
        partition_append(p, &t->a);
        cr_assert_eq(t->done_count, 1);
        code = t->a.error_code;
        if (base_out)
                *base_out = t->a.base_offset;
        free(t);
        return code;
}

Test(disk_full, partition_refuses_on_a_full_disk_and_takes_appends_once_freed)
{
        struct partition_options o;
        struct partition *p = NULL;
        char err[256];
        int64_t base = -1, acked = 0;
        int16_t code = KAFKA_NONE;

        test_mount_small_fs();
        memset(&o, 0, sizeof(o));
        o.dir_fd = root_fd;
        o.dir_name = "t-0";
        topic_config_init_defaults(&o.config);
        o.config.segment_bytes = 256 << 10;
        o.is_durable_acks = true;
        /* Space to free later. */
        int fd = openat(root_fd, "reserve", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(fallocate(fd, 0, 0, 64 << 10), 0, "%s", strerror(errno));
        close(fd);
        cr_assert_eq(partition_open(&o, &test_util_io, &p, err, sizeof(err)), 0, "%s", err);
        /* Appends, rolling now and then, until the disk is full. */
        for (int i = 0; i < 2000; i++) {
                code = test_produce(p, 1000, &base);
                if (code != KAFKA_NONE)
                        break;
                cr_assert_eq(base, acked);
                acked++;
        }
        cr_assert_eq(code, KAFKA_KAFKA_STORAGE_ERROR, "appending until full ended with %d", code);
        cr_assert_gt(acked, 100);
        cr_assert_not(partition_is_failed(p), "a full disk is no reason to refuse writes for good");
        cr_assert_eq(partition_log_end_offset(p), acked);
        uint32_t segments = partition_segment_count(p);
        for (int i = 0; i < 5; i++)
                cr_assert_eq(test_produce(p, 1000, NULL), KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(partition_segment_count(p), segments, "no segment rolled for a full disk");
        cr_assert_eq(partition_log_end_offset(p), acked);

        /* Space comes back: the next append goes on at the next offset. */
        cr_assert_eq(unlinkat(root_fd, "reserve", 0), 0);
        cr_assert_eq(test_produce(p, 1000, &base), KAFKA_NONE);
        cr_assert_eq(base, acked);
        acked++;
        partition_close(p);

        /* And every acknowledged record is there after an unclean open. */
        cr_assert_eq(partition_open(&o, &test_util_io, &p, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(partition_log_end_offset(p), acked);
        partition_close(p);
}

Test(disk_full, retention_frees_a_full_disk_and_appends_resume)
{
        struct partition_options o;
        struct partition *p = NULL;
        char err[256];
        int64_t base = -1, acked = 0;
        int16_t code = KAFKA_NONE;

        test_mount_small_fs();
        memset(&o, 0, sizeof(o));
        o.dir_fd = root_fd;
        o.dir_name = "t-0";
        topic_config_init_defaults(&o.config);
        o.config.segment_bytes = 256 << 10;
        o.config.retention_ms = 60000;
        o.is_durable_acks = true;
        cr_assert_eq(partition_open(&o, &test_util_io, &p, err, sizeof(err)), 0, "%s", err);
        for (int i = 0; i < 2000 && code == KAFKA_NONE; i++) {
                code = test_produce(p, 1000, &base);
                acked += code == KAFKA_NONE;
        }
        cr_assert_eq(code, KAFKA_KAFKA_STORAGE_ERROR);
        /* Every segment is past retention: all go, a new one is rolled
         * first, on the full disk. */
        int deleted = partition_enforce_retention(p, TEST_NOW_MS + 120000);
        cr_assert_gt(deleted, 0, "retention deleted nothing on a full disk");
        cr_assert_not(partition_is_failed(p));
        cr_assert_eq(partition_log_start_offset(p), acked);
        cr_assert_eq(test_produce(p, 1000, &base), KAFKA_NONE);
        cr_assert_eq(base, acked);
        partition_close(p);
}
