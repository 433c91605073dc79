/*
 * test_checkpoint.c - Kafka's checkpoint files byte for byte: what is
 * written for known entries, what Kafka's reader accepts and refuses
 * (CheckpointReadBuffer's rules), the leader epoch checkpoint and the
 * clean-shutdown marker.
 *
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/checkpoint.h"
#include "log/test_util.h"

static char tmp_root[64];
static int dir_fd = -1;
static char err_line[512];

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "checkpoint");
        dir_fd = test_util_dir_open(tmp_root);
        err_line[0] = '\0';
}

static void test_teardown(void)
{
        test_util_fd_close(&dir_fd);
        test_util_tmpdir_remove(tmp_root);
}

TestSuite(checkpoint, .init = test_setup, .fini = test_teardown);

/* The whole file dir/name, NUL-terminated, in a static buffer. */
static const char *test_slurp(const char *name)
{
        static char buf[8192];
        int fd = openat(dir_fd, name, O_RDONLY);
        ssize_t n;

        cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        cr_assert_geq(n, 0);
        buf[n] = '\0';
        return buf;
}

static void test_spit(const char *name, const char *text)
{
        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
        close(fd);
}

/* Parses text (copied) as an offset checkpoint. */
static int test_parse(const char *text, struct checkpoint_offsets *out)
{
        size_t len = strlen(text);
        char *copy = malloc(len + 1);

        cr_assert_not_null(copy);
        memcpy(copy, text, len + 1);
        return checkpoint_offsets_parse(copy, len, out, err_line, sizeof(err_line));
}

/* The offset of (topic, partition); -999 when absent. */
static int64_t test_find(const struct checkpoint_offsets *c, const char *topic, int32_t partition)
{
        const struct checkpoint_offset *e = checkpoint_offsets_find(c, topic, partition);

        if (!e)
                return -999;
        cr_assert_str_eq(e->topic, topic);
        cr_assert_eq(e->partition, partition);
        return e->offset;
}

static void test_expect_malformed(const char *text)
{
        struct checkpoint_offsets c;
        int rc = test_parse(text, &c);

        cr_expect_eq(rc, -EINVAL, "accepted malformed checkpoint \"%s\"", text);
        cr_expect_neq(err_line[0], '\0', "no reason given for \"%s\"", text);
        cr_expect_eq(c.count, 0);
        checkpoint_offsets_free(&c);
}

/* ---- writing ---- */

Test(checkpoint, offsets_encode_as_kafka_writes_them)
{
        const struct checkpoint_offset e[] = {
                { "orders", 0, 1500 },
                { "orders", 1, 977 },
                { "__consumer_offsets", 12, 0 },
        };
        const char *want = "0\n3\norders 0 1500\norders 1 977\n__consumer_offsets 12 0\n";
        char buf[256];
        size_t n;

        cr_assert_eq(checkpoint_offsets_encoded_bytes(e, 3), strlen(want));
        memset(buf, '#', sizeof(buf));
        n = checkpoint_offsets_encode(e, 3, buf, sizeof(buf));
        cr_assert_eq(n, strlen(want));
        cr_assert_eq(memcmp(buf, want, n), 0, "got \"%.*s\"", (int)n, buf);
        cr_assert_eq(buf[n], '#', "wrote past the end");
}

Test(checkpoint, offsets_encode_empty_and_extremes)
{
        const struct checkpoint_offset e[] = {
                { "t", 2147483647, 9223372036854775807LL },
        };
        char buf[128];
        size_t n = checkpoint_offsets_encode(NULL, 0, buf, sizeof(buf));

        cr_assert_eq(n, 4);
        cr_assert_eq(memcmp(buf, "0\n0\n", 4), 0);
        n = checkpoint_offsets_encode(e, 1, buf, sizeof(buf));
        cr_assert_eq(n, strlen("0\n1\nt 2147483647 9223372036854775807\n"));
        cr_assert_eq(memcmp(buf, "0\n1\nt 2147483647 9223372036854775807\n", n), 0);
}

Test(checkpoint, offsets_write_replaces_the_file_atomically)
{
        const struct checkpoint_offset one[] = { { "a", 0, 5 } };
        const struct checkpoint_offset two[] = { { "b", 3, 7 }, { "a", 0, 9 } };
        struct stat st;

        test_spit(CHECKPOINT_RECOVERY_POINT_FILE, "garbage that must go\n");
        cr_assert_eq(checkpoint_offsets_write(dir_fd, CHECKPOINT_RECOVERY_POINT_FILE, one, 1), 0);
        cr_assert_str_eq(test_slurp(CHECKPOINT_RECOVERY_POINT_FILE), "0\n1\na 0 5\n");
        cr_assert_eq(checkpoint_offsets_write(dir_fd, CHECKPOINT_RECOVERY_POINT_FILE, two, 2), 0);
        cr_assert_str_eq(test_slurp(CHECKPOINT_RECOVERY_POINT_FILE), "0\n2\nb 3 7\na 0 9\n");
        cr_assert_eq(fstatat(dir_fd, CHECKPOINT_RECOVERY_POINT_FILE ".tmp", &st, 0), -1, "temp file left behind");
        cr_assert_eq(errno, ENOENT);
}

/* ---- reading ---- */

Test(checkpoint, offsets_read_round_trip_sorted)
{
        const struct checkpoint_offset e[] = {
                { "zeta", 1, 40 },
                { "alpha", 10, 3 },
                { "alpha", 2, 1 },
        };
        struct checkpoint_offsets c;
        
        cr_assert_eq(checkpoint_offsets_write(dir_fd, CHECKPOINT_LOG_START_OFFSET_FILE, e, 3), 0);
        cr_assert_eq(checkpoint_offsets_read(dir_fd, CHECKPOINT_LOG_START_OFFSET_FILE, &c, err_line,
                                             sizeof(err_line)), 0, "%s", err_line);
        cr_assert_eq(c.count, 3);
        cr_assert_str_eq(c.entries[0].topic, "alpha");
        cr_assert_eq(c.entries[0].partition, 2);
        cr_assert_eq(c.entries[1].partition, 10);
        cr_assert_str_eq(c.entries[2].topic, "zeta");
        cr_assert_eq(test_find(&c, "alpha", 10), 3);
        cr_assert_eq(test_find(&c, "zeta", 1), 40);
        cr_assert_eq(test_find(&c, "zeta", 0), -999);
        cr_assert_eq(test_find(&c, "alph", 2), -999);
        cr_assert_eq(test_find(&c, "omega", 1), -999);
        checkpoint_offsets_free(&c);
}

Test(checkpoint, offsets_read_missing_file)
{
        struct checkpoint_offsets c;

        cr_assert_eq(checkpoint_offsets_read(dir_fd, CHECKPOINT_RECOVERY_POINT_FILE, &c, err_line,
                                             sizeof(err_line)), -ENOENT);
        cr_assert_eq(c.count, 0);
        checkpoint_offsets_free(&c);
}

Test(checkpoint, offsets_without_entries)
{
        static const char *const texts[] = { "", "0\n", "0", "0\n0\n", "0\r\n0\r\n" };

        for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
                struct checkpoint_offsets c;
                cr_assert_eq(test_parse(texts[i], &c), 0, "\"%s\": %s", texts[i], err_line);
                cr_assert_eq(c.count, 0, "\"%s\"", texts[i]);
                checkpoint_offsets_free(&c);
        }
}

Test(checkpoint, offsets_lenient_where_kafka_is)
{
        struct checkpoint_offsets c;
        
        /* CRLF and lone CR ends, tabs and runs of spaces between fields,
         * trailing blanks, signs, no newline after the last line. */
        cr_assert_eq(test_parse("0\r\n3\rt\t0   +5  \r\nu 1 -1\nv 2 7", &c), 0, "%s", err_line);
        cr_assert_eq(c.count, 3);
        cr_assert_eq(test_find(&c, "t", 0), 5);
        cr_assert_eq(test_find(&c, "u", 1), -1);
        cr_assert_eq(test_find(&c, "v", 2), 7);
        checkpoint_offsets_free(&c);
}

Test(checkpoint, offsets_duplicate_later_line_wins)
{
        struct checkpoint_offsets c;
        
        cr_assert_eq(test_parse("0\n3\nt 0 5\nt 1 6\nt 0 9\n", &c), 0, "%s", err_line);
        cr_assert_eq(c.count, 2);
        cr_assert_eq(test_find(&c, "t", 0), 9);
        checkpoint_offsets_free(&c);
}

Test(checkpoint, offsets_malformed)
{
        test_expect_malformed("1\n0\n");                        /* another version */
        test_expect_malformed("x\n0\n");
        test_expect_malformed(" 0\n0\n");
        test_expect_malformed("0\n-1\n");                       /* negative count */
        test_expect_malformed("0\nmany\n");
        test_expect_malformed("0\n2\nt 0 5\n");                 /* fewer than counted */
        test_expect_malformed("0\n1\nt 0 5\nt 1 5\n");          /* more than counted */
        test_expect_malformed("0\n1\nt 0\n");                   /* two fields */
        test_expect_malformed("0\n1\nt 0 5 6\n");               /* four */
        test_expect_malformed("0\n1\n t 0 5\n");                /* leading blank: an empty field */
        test_expect_malformed("0\n2\nt 0 5\n\nt 1 5\n");        /* an empty line */
        test_expect_malformed("0\n1\nt x 5\n");
        test_expect_malformed("0\n1\nt 0 5x\n");
        test_expect_malformed("0\n1\nt 2147483648 5\n");        /* partition past int32 */
        test_expect_malformed("0\n1\nt 0 9223372036854775808\n");
        test_expect_malformed("0\n1\nt 0 -\n");
}

Test(checkpoint, offsets_read_reports_the_file)
{
        struct checkpoint_offsets c;

        test_spit(CHECKPOINT_RECOVERY_POINT_FILE, "0\n1\nt 0\n");
        cr_assert_eq(checkpoint_offsets_read(dir_fd, CHECKPOINT_RECOVERY_POINT_FILE, &c, err_line,
                                             sizeof(err_line)), -EINVAL);
        cr_assert(strstr(err_line, CHECKPOINT_RECOVERY_POINT_FILE), "%s", err_line);
        cr_assert(strstr(err_line, "line 3"), "%s", err_line);
        checkpoint_offsets_free(&c);
}

/* ---- leader-epoch-checkpoint ---- */

Test(checkpoint, epochs_as_kafka_writes_them)
{
        const struct checkpoint_epoch one[] = { { 0, 0 } };
        const struct checkpoint_epoch two[] = { { 0, 0 }, { 3, 1500 } };
        char buf[64];

        cr_assert_eq(checkpoint_epochs_encode(one, 1, buf, sizeof(buf)), 8);
        cr_assert_eq(memcmp(buf, "0\n1\n0 0\n", 8), 0);
        cr_assert_eq(checkpoint_epochs_encode(two, 2, buf, 4), 15, "too small: the size needed");
        cr_assert_eq(checkpoint_epochs_write(dir_fd, two, 2), 0);
        cr_assert_str_eq(test_slurp(CHECKPOINT_LEADER_EPOCH_FILE), "0\n2\n0 0\n3 1500\n");
}

Test(checkpoint, epochs_parse)
{
        struct checkpoint_epoch e[2];
        const char *ok = "0\n2\n0 0\n3 1500\n";

        cr_assert_eq(checkpoint_epochs_parse(ok, strlen(ok), e, 2, err_line, sizeof(err_line)), 2, "%s", err_line);
        cr_assert_eq(e[1].epoch, 3);
        cr_assert_eq(e[1].start_offset, 1500);
        cr_assert_eq(checkpoint_epochs_parse("", 0, e, 2, err_line, sizeof(err_line)), 0);
        cr_assert_eq(checkpoint_epochs_parse(ok, strlen(ok), e, 1, err_line, sizeof(err_line)), -EINVAL);
        cr_assert_eq(checkpoint_epochs_parse("0\n1\n0 0 0\n", 10, e, 2, err_line, sizeof(err_line)), -EINVAL);
        cr_assert_eq(checkpoint_epochs_parse("0\n2\n0 0\n", 8, e, 2, err_line, sizeof(err_line)), -EINVAL);
}

/* ---- .kafka_cleanshutdown ---- */

Test(checkpoint, clean_shutdown_marker)
{
        char buf[CHECKPOINT_CLEAN_SHUTDOWN_BYTES_MAX];
        size_t n = checkpoint_clean_shutdown_encode(-1, buf, sizeof(buf));

        cr_assert_eq(n, strlen("{\"version\":0,\"brokerEpoch\":-1}"));
        cr_assert_eq(memcmp(buf, "{\"version\":0,\"brokerEpoch\":-1}", n), 0);
        n = checkpoint_clean_shutdown_encode(INT64_MIN, buf, sizeof(buf));
        cr_assert_str_eq(buf, "{\"version\":0,\"brokerEpoch\":-9223372036854775808}");

        cr_assert_eq(checkpoint_clean_shutdown_take(dir_fd), 0, "no marker yet");
        cr_assert_eq(checkpoint_clean_shutdown_write(dir_fd, 42), 0);
        cr_assert_str_eq(test_slurp(CHECKPOINT_CLEAN_SHUTDOWN_FILE), "{\"version\":0,\"brokerEpoch\":42}");
        cr_assert_eq(checkpoint_clean_shutdown_take(dir_fd), 1);
        cr_assert_eq(faccessat(dir_fd, CHECKPOINT_CLEAN_SHUTDOWN_FILE, F_OK, 0), -1, "taken, so removed");
        cr_assert_eq(checkpoint_clean_shutdown_take(dir_fd), 0);
}
