/*
 * test_util.h - what the log/ unit tests share: a temporary directory per
 * test, a log_io that completes at once, record batches of a known shape,
 * a count of open descriptors.
 *
 * Owned by the tests alone: the Makefile links test_util.c into every test
 * program and into nothing else, so no broker code may call it. Failures
 * are Criterion assertions, which end the calling test. Not thread-safe
 * (test_util_batch_encode writes a static value buffer).
 */
#ifndef RUNNEL_LOG_TEST_UTIL_H
#define RUNNEL_LOG_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log/partition.h"

/* The clock of test_util_io, in ms since the epoch (2023-11-14). */
#define TEST_UTIL_NOW_MS 1700000000000LL

/*
 * Makes a new, empty directory /tmp/runnel-<name>-XXXXXX and leaves its
 * path in path (path_bytes of room, 64 are plenty).
 */
void test_util_tmpdir_make(char *path, size_t path_bytes, const char *name);

/* A read-only O_DIRECTORY descriptor of path. */
int test_util_dir_open(const char *path);

/* Closes *fd unless it is -1, and leaves -1 there. */
void test_util_fd_close(int *fd);

/* Removes path and everything below it, links not followed. */
void test_util_tmpdir_remove(const char *path);

/* pwrite of all of len bytes at offset, short writes continued; 0 or -errno. */
int test_util_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

/*
 * A log_io (log/partition.h) whose write and datasync are done before they
 * return, by pwrite and fdatasync (so -ENOSPC reaches the caller on a full
 * disk), and whose clock stands at TEST_UTIL_NOW_MS. Its write and
 * datasync may serve in a test's own log_io_ops too.
 */
extern const struct log_io test_util_io;
int test_util_write_now(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done,
                        void *arg);
int test_util_datasync_now(void *ctx, int fd, log_io_done_fn done, void *arg);

/* The shape of a batch test_util_batch_encode writes: magic 2, no producer,
 * CreateTime, uncompressed. */
struct test_util_batch {
        int64_t base_offset;
        uint32_t count;                 /* records, at most TEST_UTIL_BATCH_RECORDS_MAX */
        const char *key;                /* every record's */
        uint32_t value_bytes;           /* every record's value: this many value_fill bytes */
        char value_fill;
        int64_t timestamp_ms;           /* record i's: timestamp_ms + i * timestamp_step_ms */
        int64_t timestamp_step_ms;
};

#define TEST_UTIL_BATCH_RECORDS_MAX 64
#define TEST_UTIL_BATCH_VALUE_BYTES_MAX 200000

/* Encodes the batch into out (cap bytes, asserted enough); its length. */
size_t test_util_batch_encode(const struct test_util_batch *b, uint8_t *out, size_t cap);

/* Open descriptors of this process (the listing's own excluded). */
int test_util_fd_count(void);

/* ---- files, by path or relative to a directory descriptor ---- */

/* The file at path, NUL-terminated, in a static buffer (64 KiB at most); NULL if missing. */
const char *test_util_slurp(const char *path);

/* Writes text as the whole file at path. */
void test_util_spit(const char *path, const char *text);

/* "<dir_name>/<20-digit base><suffix>", in one of four static buffers used in turn. */
const char *test_util_seg_path(const char *dir_name, int64_t base, const char *suffix);

bool test_util_exists_at(int dir_fd, const char *rel);

/* Its size; asserted to exist. */
off_t test_util_size_at(int dir_fd, const char *rel);

void test_util_truncate_at(int dir_fd, const char *rel, off_t size_bytes);

/* ---- partitions ---- */

/* Options for the partition dir_name under dir_fd: default topic config, acks=all durable. */
struct partition_options test_util_partition_options(int dir_fd, const char *dir_name);

/* partition_open through io, asserted to succeed. */
struct partition *test_util_partition_open(const struct partition_options *o, const struct log_io *io);

#endif
