/*
 * test_util.c - see test_util.h. Everything here asserts rather than
 * returns an error, except test_util_pwrite_all and the log_io, whose
 * errors are what the code under test must handle.
 */
#include "log/test_util.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/segment.h"
#include "protocol/record_batch.h"

void test_util_tmpdir_make(char *path, size_t path_bytes, const char *name)
{
        int n = snprintf(path, path_bytes, "/tmp/runnel-%s-XXXXXX", name);
        cr_assert(n > 0 && (size_t)n < path_bytes, "no room for the directory name %s", name);
        cr_assert_not_null(mkdtemp(path), "mkdtemp %s: %s", path, strerror(errno));
}

int test_util_dir_open(const char *path)
{
        int fd = open(path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        return fd;
}

void test_util_fd_close(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

void test_util_tmpdir_remove(const char *path)
{
        nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int test_util_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
        const uint8_t *b = buf;
        while (len > 0) {
                ssize_t n = pwrite(fd, b, len, (off_t)offset);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                b += n;
                len -= (size_t)n;
                offset += (uint64_t)n;
        }
        return 0;
}

int test_util_write_now(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done,
                        void *arg)
{
        (void)ctx;
        done(arg, test_util_pwrite_all(fd, buf, len, offset));
        return 0;
}

int test_util_datasync_now(void *ctx, int fd, log_io_done_fn done, void *arg)
{
        (void)ctx;
        done(arg, fdatasync(fd) < 0 ? -errno : 0);
        return 0;
}

static int64_t now_fixed_ms(void *ctx)
{
        (void)ctx;
        return TEST_UTIL_NOW_MS;
}

static const struct log_io_ops now_ops = {
        .datasync = test_util_datasync_now,
        .write = test_util_write_now,
        .now_ms = now_fixed_ms,
};
const struct log_io test_util_io = { &now_ops, NULL };

size_t test_util_batch_encode(const struct test_util_batch *b, uint8_t *out, size_t cap)
{
        static uint8_t value[TEST_UTIL_BATCH_VALUE_BYTES_MAX];
        struct record_spec rs[TEST_UTIL_BATCH_RECORDS_MAX];
        struct record_batch_spec spec;

        cr_assert_leq(b->count, TEST_UTIL_BATCH_RECORDS_MAX);
        cr_assert_leq(b->value_bytes, sizeof(value));
        memset(value, b->value_fill, b->value_bytes);
        for (uint32_t i = 0; i < b->count; i++)
                rs[i] = (struct record_spec){ { (const uint8_t *)b->key, (int32_t)strlen(b->key) },
                                              { value, (int32_t)b->value_bytes },
                                              b->timestamp_ms + (int64_t)i * b->timestamp_step_ms, NULL, 0 };
        record_batch_spec_init(&spec, rs, b->count);
        spec.base_offset = b->base_offset;
        cr_assert_leq(record_batch_encoded_size(&spec), cap);
        return record_batch_encode(&spec, out, cap);
}

int test_util_fd_count(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        cr_assert_not_null(d);
        while ((e = readdir(d)) != NULL)
                n += e->d_name[0] != '.';
        closedir(d);
        return n - 1;
}

const char *test_util_slurp(const char *path)
{
        static char buf[1 << 16];
        FILE *f = fopen(path, "r");
        if (!f)
                return NULL;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

void test_util_spit(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        cr_assert_not_null(f, "open %s", path);
        fputs(text, f);
        fclose(f);
}

const char *test_util_seg_path(const char *dir_name, int64_t base, const char *suffix)
{
        static char bufs[4][96];
        static int next;
        char name[SEGMENT_FILE_NAME_BYTES];
        char *b = bufs[next++ % 4];

        segment_file_name(name, base, suffix);
        snprintf(b, sizeof(bufs[0]), "%s/%s", dir_name, name);
        return b;
}

bool test_util_exists_at(int dir_fd, const char *rel)
{
        return faccessat(dir_fd, rel, F_OK, 0) == 0;
}

off_t test_util_size_at(int dir_fd, const char *rel)
{
        struct stat st;

        cr_assert_eq(fstatat(dir_fd, rel, &st, 0), 0, "%s: %s", rel, strerror(errno));
        return st.st_size;
}

void test_util_truncate_at(int dir_fd, const char *rel, off_t size_bytes)
{
        int fd = openat(dir_fd, rel, O_RDWR);

        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, size_bytes), 0);
        close(fd);
}

struct partition_options test_util_partition_options(int dir_fd, const char *dir_name)
{
        struct partition_options o;

        memset(&o, 0, sizeof(o));
        o.dir_fd = dir_fd;
        o.dir_name = dir_name;
        topic_config_init_defaults(&o.config);
        o.is_durable_acks = true;
        return o;
}

struct partition *test_util_partition_open(const struct partition_options *o, const struct log_io *io)
{
        char err_line[512];
        struct partition *p = NULL;
        int rc = partition_open(o, io, &p, err_line, sizeof(err_line));

        cr_assert_eq(rc, 0, "partition_open: %s", err_line);
        cr_assert_not_null(p);
        return p;
}
