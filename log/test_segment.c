/*
 * test_segment.c - segments on disk: the files Kafka 4.4 writes for a
 * known sequence of appends are reproduced byte for byte; index entries
 * land at the right interval with the right values; offsets and
 * timestamps are found; reopening (clean or after a crash) restores the
 * state; truncation; recovery of torn and corrupted tails.
 *
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/segment.h"
#include "protocol/crc32c.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "log/test_util.h"

static char tmp_root[64];
static int dir_fd = -1;
static struct logdir_ref part_dir;         /* dir_fd, as segments hold it */

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "segment");
        dir_fd = test_util_dir_open(tmp_root);
        cr_assert_eq(logdir_ref_init(&part_dir, dir_fd, "."), 0);
}

static void test_teardown(void)
{
        test_util_fd_close(&dir_fd);
        test_util_tmpdir_remove(tmp_root);
}

TestSuite(segment, .init = test_setup, .fini = test_teardown);

/* ---- helpers ---- */

static struct segment_config test_config(uint32_t interval_bytes, uint32_t index_bytes)
{
        struct segment_config c = { .index_interval_bytes = interval_bytes, .index_bytes_max = index_bytes };

        return c;
}

/* A batch as test GenSegment.java built them with Kafka's
 * MemoryRecordsBuilder: no producer, CreateTime, records with key "key",
 * a value of vlen 'x' bytes and timestamp ts + i * step. */
static size_t test_batch(uint8_t *out, size_t cap, int64_t base, uint32_t count, uint32_t vlen, int64_t ts,
                         int64_t step)
{
        struct test_util_batch b = { .base_offset = base, .count = count, .key = "key", .value_bytes = vlen,
                                     .value_fill = 'x', .timestamp_ms = ts, .timestamp_step_ms = step };
        return test_util_batch_encode(&b, out, cap);
}

static uint32_t test_append(struct segment *seg, int64_t base, uint32_t count, uint32_t vlen, int64_t ts,
                            int64_t step)
{
        static uint8_t buf[300000];
        size_t n = test_batch(buf, sizeof(buf), base, count, vlen, ts, step);
        uint32_t pos = 0;
        int rc = segment_append(seg, buf, n, &pos);

        cr_assert_eq(rc, 0, "append at %lld: %s", (long long)base, strerror(-rc));
        return pos;
}

static const char *test_name(int64_t base, const char *suffix)
{
        static char bufs[4][SEGMENT_FILE_NAME_BYTES];
        static int next;
        char *b = bufs[next++ % 4];

        segment_file_name(b, base, suffix);
        return b;
}

static off_t test_file_size(int64_t base, const char *suffix)
{
        struct stat st;

        cr_assert_eq(fstatat(dir_fd, test_name(base, suffix), &st, 0), 0, "%s", test_name(base, suffix));
        return st.st_size;
}

static size_t test_read_file(int64_t base, const char *suffix, uint8_t *buf, size_t cap)
{
        int fd = openat(dir_fd, test_name(base, suffix), O_RDONLY);
        size_t n = 0;
        ssize_t r;

        cr_assert_geq(fd, 0);
        while ((r = read(fd, buf + n, cap - n)) > 0)
                n += (size_t)r;
        close(fd);
        cr_assert_lt(n, cap);
        return n;
}

static size_t test_unhex(const char *hex, uint8_t *out, size_t cap)
{
        size_t n = strlen(hex) / 2;

        cr_assert_leq(n, cap);
        for (size_t i = 0; i < n; i++) {
                unsigned v;

                cr_assert_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
                out[i] = (uint8_t)v;
        }
        return n;
}

static void test_assert_file_hex(int64_t base, const char *suffix, const char *hex)
{
        static uint8_t want[4096], got[1 << 16];
        size_t wn = test_unhex(hex, want, sizeof(want));
        size_t gn = test_read_file(base, suffix, got, sizeof(got));

        cr_assert_eq(gn, wn, "%s is %zu bytes, expected %zu", suffix, gn, wn);
        cr_assert_arr_eq(got, want, wn, "%s differs", suffix);
}

static void test_flip_byte(int64_t base, off_t at)
{
        int fd = openat(dir_fd, test_name(base, SEGMENT_LOG_FILE_SUFFIX), O_RDWR);
        uint8_t b;

        cr_assert_geq(fd, 0);
        cr_assert_eq(pread(fd, &b, 1, at), 1);
        b ^= 0x5a;
        cr_assert_eq(pwrite(fd, &b, 1, at), 1);
        close(fd);
}

static void test_cut_log(int64_t base, off_t size)
{
        int fd = openat(dir_fd, test_name(base, SEGMENT_LOG_FILE_SUFFIX), O_RDWR);

        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, size), 0);
        close(fd);
}

/* Same entries, offsets taken relative to each segment's base. */
static bool test_indexes_equal(const struct segment *a, const struct segment *b)
{
        if (a->offset_index.entry_count != b->offset_index.entry_count ||
            a->time_index.entry_count != b->time_index.entry_count)
                return false;
        for (uint32_t i = 0; i < a->offset_index.entry_count; i++) {
                struct offset_index_entry x = offset_index_entry_at(&a->offset_index, i);
                struct offset_index_entry y = offset_index_entry_at(&b->offset_index, i);

                if (x.offset - a->base_offset != y.offset - b->base_offset ||
                    x.position_bytes != y.position_bytes)
                        return false;
        }
        for (uint32_t i = 0; i < a->time_index.entry_count; i++) {
                struct time_index_entry x = time_index_entry_at(&a->time_index, i);
                struct time_index_entry y = time_index_entry_at(&b->time_index, i);

                if (x.offset - a->base_offset != y.offset - b->base_offset ||
                    x.timestamp_ms != y.timestamp_ms)
                        return false;
        }
        return true;
}

/* ---- Kafka's own files ---- */

/*
 * Expected files from Kafka 4.4.0's LogSegment (kafka-storage jar in
 * build/kafka-lib), driven by a small Java program: segment base 100,
 * index.interval.bytes 100, segment.index.bytes 1024, these appends (the
 * fifth holds two batches), then onBecomeInactiveSegment (roll) and close.
 */
static void test_kafka_appends(struct segment *seg)
{
        static uint8_t buf[2048];
        uint32_t pos;
        size_t n;

        test_append(seg, 100, 1, 50, 1000, 0);
        test_append(seg, 101, 2, 60, 1010, -5);
        test_append(seg, 103, 3, 10, 990, 1);
        test_append(seg, 106, 1, 120, 1020, 0);
        n = test_batch(buf, sizeof(buf), 107, 2, 30, 1030, 1);
        n += test_batch(buf + n, sizeof(buf) - n, 109, 1, 200, 1025, 0);
        cr_assert_eq(segment_append(seg, buf, n, &pos), 0);
        cr_assert_eq(pos, 638);
        test_append(seg, 110, 4, 40, 1040, 2);
        test_append(seg, 114, 1, 5, 1039, 0);
}

static const char kafka_rolled_index_hex[] =
        "0000000200000079000000050000014400000006000001bd000000080000027e"
        "000000090000030b0000000d0000041c0000000e00000521";
static const char kafka_rolled_timeindex_hex[] =
        "00000000000003f20000000200000000000003fc000000060000000000000407"
        "0000000800000000000004160000000d";

Test(segment, kafka_reference_append_and_roll)
{
        struct segment seg;
        struct segment_config cfg = test_config(100, 1024);
        static uint8_t log[4096];

        cr_assert_eq(segment_create(&seg, &part_dir, 100, &cfg), 0);
        test_kafka_appends(&seg);
        /* While active, preallocated as Kafka's are. */
        cr_assert_eq(test_file_size(100, OFFSET_INDEX_FILE_SUFFIX), 1024);
        cr_assert_eq(test_file_size(100, TIME_INDEX_FILE_SUFFIX), 1020);
        cr_assert_eq(seg.size_bytes, 1389);
        cr_assert_eq(seg.next_offset, 115);
        cr_assert_eq(seg.max_timestamp_ms, 1046);
        cr_assert_eq(seg.offset_of_max_timestamp, 113);
        /* The entries in the preallocated file are already right. */
        static uint8_t want[64], got[2048];
        size_t wn = test_unhex(kafka_rolled_index_hex, want, sizeof(want));

        cr_assert_eq(test_read_file(100, OFFSET_INDEX_FILE_SUFFIX, got, sizeof(got)), 1024);
        cr_assert_arr_eq(got, want, wn);
        for (size_t i = wn; i < 1024; i++)
                cr_assert_eq(got[i], 0);

        cr_assert_eq(segment_seal(&seg), 0);
        test_assert_file_hex(100, OFFSET_INDEX_FILE_SUFFIX, kafka_rolled_index_hex);
        test_assert_file_hex(100, TIME_INDEX_FILE_SUFFIX, kafka_rolled_timeindex_hex);
        cr_assert_eq(segment_close(&seg), 0);
        test_assert_file_hex(100, OFFSET_INDEX_FILE_SUFFIX, kafka_rolled_index_hex);
        test_assert_file_hex(100, TIME_INDEX_FILE_SUFFIX, kafka_rolled_timeindex_hex);
        size_t n = test_read_file(100, SEGMENT_LOG_FILE_SUFFIX, log, sizeof(log));

        cr_assert_eq(n, 1389);
        cr_assert_eq(crc32c(log, n), 0x237547b5u, "the .log differs from Kafka's");
}

Test(segment, kafka_reference_truncate_and_roll)
{
        struct segment seg;
        struct segment_config cfg = test_config(100, 1024);
        static uint8_t log[4096];
        uint32_t cut = 0;

        cr_assert_eq(segment_create(&seg, &part_dir, 100, &cfg), 0);
        test_kafka_appends(&seg);
        cr_assert_eq(segment_truncate_to_offset(&seg, 108, &cut), 0);
        cr_assert_eq(cut, 751);
        cr_assert_eq(seg.size_bytes, 638);
        cr_assert_eq(seg.next_offset, 107);
        cr_assert_eq(seg.max_timestamp_ms, 1020);
        cr_assert_eq(test_file_size(100, SEGMENT_LOG_FILE_SUFFIX), 638);
        test_append(&seg, 107, 2, 70, 1050, 1);
        cr_assert_eq(segment_close(&seg), 0);
        test_assert_file_hex(100, OFFSET_INDEX_FILE_SUFFIX, "0000000200000079000000050000014400000006000001bd");
        test_assert_file_hex(100, TIME_INDEX_FILE_SUFFIX,
                             "00000000000003f20000000200000000000003fc00000006000000000000041b00000008");
        size_t n = test_read_file(100, SEGMENT_LOG_FILE_SUFFIX, log, sizeof(log));

        cr_assert_eq(n, 863);
        cr_assert_eq(crc32c(log, n), 0x686f4ca8u, "the .log differs from Kafka's");
}

/* ---- files ---- */

Test(segment, names_preallocation_and_empty_close)
{
        char name[SEGMENT_FILE_NAME_BYTES];
        struct segment seg;
        struct segment_config cfg;

        segment_file_name(name, 42, ".log");
        cr_assert_str_eq(name, "00000000000000000042.log");
        segment_file_name(name, INT64_MAX, ".timeindex");
        cr_assert_str_eq(name, "09223372036854775807.timeindex");
        segment_config_init_default(&cfg);
        cr_assert_eq(cfg.index_interval_bytes, 4096);
        cr_assert_eq(cfg.index_bytes_max, 10485760);

        cr_assert_eq(segment_create(&seg, &part_dir, 42, &cfg), 0);
        cr_assert_eq(test_file_size(42, SEGMENT_LOG_FILE_SUFFIX), 0);
        cr_assert_eq(test_file_size(42, OFFSET_INDEX_FILE_SUFFIX), 10485760);
        cr_assert_eq(test_file_size(42, TIME_INDEX_FILE_SUFFIX), 10485756);    /* 12 * 873813 */
        cr_assert_eq(seg.next_offset, 42);
        cr_assert_eq(segment_flush(&seg), 0);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_file_size(42, OFFSET_INDEX_FILE_SUFFIX), 0);
        cr_assert_eq(test_file_size(42, TIME_INDEX_FILE_SUFFIX), 0);

        /* A second create over the same .log is refused, and leaves it. */
        cr_assert_eq(segment_create(&seg, &part_dir, 42, &cfg), -EEXIST);
        cr_assert_eq(test_file_size(42, SEGMENT_LOG_FILE_SUFFIX), 0);
        cr_assert_eq(segment_open(&seg, &part_dir, 43, &cfg), -ENOENT);
        cr_assert_eq(segment_open(&seg, &part_dir, 42, &cfg), 0);
        cr_assert_eq(seg.next_offset, 42);
        cr_assert_eq(seg.size_bytes, 0);
        cr_assert_eq(segment_close(&seg), 0);
}

/* Issue 7: a segment held three descriptors (.log, .index, .timeindex),
 * so 10,000 partitions ran out of them. It holds its .log only; the
 * indexes are written through mappings. */
Test(segment, holds_one_descriptor)
{
        struct segment seg;
        struct segment_config cfg = test_config(100, 4096);
        int before = test_util_fd_count();
        static uint8_t buf[8192];

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(test_util_fd_count(), before + 1);
        for (int i = 0; i < 10; i++)
                test_append(&seg, i, 1, 200, 1000 + i, 0);
        cr_assert_eq(test_util_fd_count(), before + 1);
        /* The entries are in the files while the segment is open. */
        cr_assert_gt(seg.offset_index.entry_count, 0);
        cr_assert_eq(test_read_file(0, OFFSET_INDEX_FILE_SUFFIX, buf, sizeof(buf)), 4096);
        cr_assert_neq(memcmp(buf, "\0\0\0\0\0\0\0\0", OFFSET_INDEX_ENTRY_BYTES), 0);
        cr_assert_eq(segment_flush(&seg), 0);
        cr_assert_eq(segment_seal(&seg), 0);
        cr_assert_eq(test_util_fd_count(), before + 1);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_util_fd_count(), before);

        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(test_util_fd_count(), before + 1);
        test_append(&seg, 10, 1, 200, 2000, 0);
        cr_assert_eq(test_util_fd_count(), before + 1);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_util_fd_count(), before);
}

/* Out of descriptors, an append that must reopen the index files fails
 * with -EMFILE and changes nothing; once descriptors are back it works. */
Test(segment, out_of_descriptors_is_transient)
{
        struct segment seg;
        struct segment_config cfg = test_config(100, 4096);
        struct rlimit old, low;
        static uint8_t batch[4096];
        size_t n = test_batch(batch, sizeof(batch), 1, 1, 200, 1001, 0);
        uint32_t pos;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        test_append(&seg, 0, 1, 200, 1000, 0);
        cr_assert_eq(segment_seal(&seg), 0);    /* unmapped: the next append maps again */
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        low = old;
        /* The limit bounds descriptor numbers: the lowest free one is
         * the first that cannot be had. */
        int lowest_free = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(lowest_free, 0);
        close(lowest_free);
        low.rlim_cur = (rlim_t)lowest_free;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        cr_assert_eq(segment_append(&seg, batch, n, &pos), -EMFILE);
        cr_assert_eq(seg.next_offset, 1);
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
        cr_assert_eq(segment_append(&seg, batch, n, &pos), 0);
        cr_assert_eq(seg.next_offset, 2);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(seg.next_offset, 2);
        cr_assert_eq(segment_close(&seg), 0);
}

/* Value length that makes a one-record batch exactly size_bytes. */
static uint32_t test_vlen_for(size_t size_bytes)
{
        static uint8_t buf[8192];

        for (uint32_t v = 0; v < 4000; v++)
                if (test_batch(buf, sizeof(buf), 0, 1, v, 0, 0) == size_bytes)
                        return v;
        cr_assert_fail("no value length gives %zu bytes", size_bytes);
        return 0;
}

/* 23 one-record batches of exactly 1000 bytes with the default 4096-byte
 * interval: more than 4096 bytes have passed before batches 5, 10, 15
 * and 20, so those get entries (their offset, their position). */
static void test_append_thousands(struct segment *seg, int64_t first, int count)
{
        uint32_t vlen = test_vlen_for(1000);

        for (int i = 0; i < count; i++) {
                uint32_t pos = test_append(seg, first + i, 1, vlen, 1000 + first + i, 0);

                cr_assert_eq(pos, (uint32_t)(1000 * (first + i)));
        }
}

Test(segment, index_entries_at_the_interval)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);
        static uint8_t got[4096];

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        test_append_thousands(&seg, 0, 23);
        cr_assert_eq(seg.offset_index.entry_count, 4);
        for (uint32_t i = 0; i < 4; i++) {
                struct offset_index_entry e = offset_index_entry_at(&seg.offset_index, i);
                struct time_index_entry t = time_index_entry_at(&seg.time_index, i);

                cr_assert_eq(e.offset, 5 * (i + 1));
                cr_assert_eq(e.position_bytes, 5000 * (i + 1));
                cr_assert_eq(t.timestamp_ms, 1000 + 5 * (i + 1));
                cr_assert_eq(t.offset, 5 * (i + 1));
        }
        cr_assert_eq(seg.time_index.entry_count, 4);
        cr_assert_eq(seg.bytes_since_last_index_entry, 3000);
        cr_assert_eq(segment_close(&seg), 0);

        /* On disk: four entries, and the time index gets the final maximum. */
        cr_assert_eq(test_read_file(0, OFFSET_INDEX_FILE_SUFFIX, got, sizeof(got)), 32);
        static const uint8_t oi_want[32] = {
                0, 0, 0, 5, 0, 0, 0x13, 0x88, 0, 0, 0, 10, 0, 0, 0x27, 0x10,
                0, 0, 0, 15, 0, 0, 0x3a, 0x98, 0, 0, 0, 20, 0, 0, 0x4e, 0x20,
        };
        cr_assert_arr_eq(got, oi_want, 32);
        cr_assert_eq(test_read_file(0, TIME_INDEX_FILE_SUFFIX, got, sizeof(got)), 60);
        static const uint8_t ti_last[12] = { 0, 0, 0, 0, 0, 0, 0x03, 0xfe, 0, 0, 0, 22 };   /* (1022, 22) */

        cr_assert_arr_eq(got + 48, ti_last, 12);
}

/* Exactly the interval is not more than the interval: with 2000 and
 * 1000-byte batches, entries come before batches 3, 6, 9 (3000 bytes
 * since the last), not 2, 4, 6. Recovery draws the same line. */
Test(segment, index_interval_is_strictly_more_than)
{
        struct segment seg;
        struct segment_config cfg = test_config(2000, 4096);
        struct segment_scan scan;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        test_append_thousands(&seg, 0, 10);
        cr_assert_eq(seg.offset_index.entry_count, 3);
        for (uint32_t i = 0; i < 3; i++)
                cr_assert_eq(offset_index_entry_at(&seg.offset_index, i).offset, 3 * (i + 1));
        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_END);
        cr_assert_eq(seg.offset_index.entry_count, 3);
        for (uint32_t i = 0; i < 3; i++) {
                cr_assert_eq(offset_index_entry_at(&seg.offset_index, i).offset, 3 * (i + 1));
                cr_assert_eq(offset_index_entry_at(&seg.offset_index, i).position_bytes, 3000 * (i + 1));
        }
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, reopen_restores_state_and_restarts_the_interval)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        test_append_thousands(&seg, 0, 23);
        cr_assert_eq(segment_close(&seg), 0);

        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(seg.next_offset, 23);
        cr_assert_eq(seg.size_bytes, 23000);
        cr_assert_eq(seg.max_timestamp_ms, 1022);
        cr_assert_eq(seg.offset_of_max_timestamp, 22);
        cr_assert_eq(seg.offset_index.entry_count, 4);
        cr_assert_eq(seg.time_index.entry_count, 5);
        cr_assert(!seg.is_tail_dirty);
        for (int64_t o = 0; o < 23; o++) {
                struct segment_batch_location loc;

                cr_assert_eq(segment_find_offset(&seg, o, &loc), 0);
                cr_assert_eq(loc.base_offset, o);
                cr_assert_eq(loc.position_bytes, 1000 * o);
                cr_assert_eq(loc.size_bytes, 1000);
        }
        /* Kafka counts from zero again in a reopened segment: the next
         * entry comes on the fifth append after the reopen. */
        test_append_thousands(&seg, 23, 6);
        cr_assert_eq(seg.offset_index.entry_count, 5);
        cr_assert_eq(offset_index_last(&seg.offset_index).offset, 28);
        cr_assert_eq(offset_index_last(&seg.offset_index).position_bytes, 28000);
        cr_assert_eq(test_file_size(0, OFFSET_INDEX_FILE_SUFFIX), 4096);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_file_size(0, OFFSET_INDEX_FILE_SUFFIX), 40);
}

Test(segment, reopen_after_crash_with_preallocated_indexes)
{
        struct segment seg, ref;
        struct segment_config cfg = test_config(4096, 4096);

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        test_append_thousands(&seg, 0, 23);
        segment_abandon(&seg);                  /* no seal: files stay preallocated */
        cr_assert_eq(test_file_size(0, OFFSET_INDEX_FILE_SUFFIX), 4096);

        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(seg.next_offset, 23);
        cr_assert_eq(seg.size_bytes, 23000);
        cr_assert_eq(seg.offset_index.entry_count, 4);
        cr_assert_eq(seg.time_index.entry_count, 4);
        cr_assert_eq(seg.max_timestamp_ms, 1022);       /* from the tail, past the last entry */
        cr_assert_eq(seg.offset_of_max_timestamp, 22);
        test_append_thousands(&seg, 23, 2);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_file_size(0, OFFSET_INDEX_FILE_SUFFIX), 32);
        cr_assert_eq(test_file_size(0, TIME_INDEX_FILE_SUFFIX), 60);

        cr_assert_eq(segment_open(&ref, &part_dir, 0, &cfg), 0);
        cr_assert_eq(ref.next_offset, 25);
        cr_assert_eq(time_index_last(&ref.time_index).timestamp_ms, 1024);
        cr_assert_eq(segment_close(&ref), 0);
}

/* ---- lookups ---- */

Test(segment, find_offset_in_multi_record_batches)
{
        struct segment seg;
        struct segment_config cfg = test_config(300, 4096);
        struct segment_batch_location loc;
        uint32_t pos[40];

        cr_assert_eq(segment_create(&seg, &part_dir, 1000, &cfg), 0);
        for (int i = 0; i < 40; i++)
                pos[i] = test_append(&seg, 1000 + 3 * i, 3, 20 + i, 5000 + i, 0);
        cr_assert_gt(seg.offset_index.entry_count, 5);
        for (int64_t o = 1000; o < 1120; o++) {
                int i = (int)((o - 1000) / 3);

                cr_assert_eq(segment_find_offset(&seg, o, &loc), 0);
                cr_assert_eq(loc.position_bytes, pos[i], "offset %lld", (long long)o);
                cr_assert_eq(loc.base_offset, 1000 + 3 * i);
                cr_assert_eq(loc.last_offset, 1002 + 3 * i);
        }
        cr_assert_eq(segment_find_offset(&seg, 1120, &loc), -ENOENT);
        cr_assert_eq(segment_find_offset(&seg, 999, &loc), 0);     /* below the base: the first batch */
        cr_assert_eq(loc.position_bytes, 0);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, find_offset_across_a_gap)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);
        struct segment_batch_location loc;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        test_append(&seg, 0, 3, 10, 1, 0);
        uint32_t second = test_append(&seg, 10, 3, 10, 2, 0);  /* compacted away: 3..9 */

        cr_assert_eq(segment_find_offset(&seg, 5, &loc), 0);
        cr_assert_eq(loc.position_bytes, second);
        cr_assert_eq(loc.base_offset, 10);
        cr_assert_eq(seg.next_offset, 13);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, find_timestamp_like_kafka)
{
        struct segment seg;
        struct segment_config cfg = test_config(200, 4096);
        struct segment_timestamp_hit hit;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        /* 30 batches of 4 records; batch i: timestamps 10000 + 100 i + {0, 10, 20, 30} */
        for (int i = 0; i < 30; i++)
                test_append(&seg, 4 * i, 4, 40, 10000 + 100 * i, 10);
        cr_assert_gt(seg.time_index.entry_count, 3);

        cr_assert_eq(segment_find_timestamp(&seg, 0, 0, &hit), 0);
        cr_assert_eq(hit.offset, 0);
        cr_assert_eq(hit.timestamp_ms, 10000);
        cr_assert(!hit.is_batch_precision);
        cr_assert_eq(hit.leader_epoch, -1);
        for (int i = 0; i < 30; i++) {
                for (int j = 0; j < 4; j++) {
                        int64_t ts = 10000 + 100 * i + 10 * j;

                        cr_assert_eq(segment_find_timestamp(&seg, ts, 0, &hit), 0);
                        cr_assert_eq(hit.offset, 4 * i + j, "ts %lld", (long long)ts);
                        cr_assert_eq(hit.timestamp_ms, ts);
                        /* Just above: the next record. */
                        cr_assert_eq(segment_find_timestamp(&seg, ts + 1, 0, &hit), i == 29 && j == 3 ? -ENOENT : 0);
                        if (!(i == 29 && j == 3))
                                cr_assert_eq(hit.offset, 4 * i + j + 1);
                }
        }
        /* A starting offset past the first match. */
        cr_assert_eq(segment_find_timestamp(&seg, 10000, 57, &hit), 0);
        cr_assert_eq(hit.offset, 57);
        cr_assert_eq(hit.timestamp_ms, 10000 + 100 * 14 + 10);
        cr_assert_eq(segment_find_timestamp(&seg, 20000, 0, &hit), -ENOENT);
        cr_assert_eq(segment_find_timestamp(&seg, 10000, 120, &hit), -ENOENT);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, find_timestamp_out_of_order_and_compressed)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);
        struct segment_timestamp_hit hit;
        /* Kafka's gzip batch from test_record_batch.c: offsets 0-3,
         * ts 1700000000000-003. */
        static const char gzip_hex[] =
                "00000000000000000000006bffffffff02648a97100001000000030000018bcfe568"
                "000000018bcfe56803ffffffffffffffffffffffffffff000000041f8b0800000000"
                "0000ff0dc6c10d00400445c11f795181422c65b9ab7fcd694212936c2a64c63cf65d"
                "8129b6aeee4cb3ad0fcdb804f22c000000";
        uint8_t gz[256];
        size_t n = test_unhex(gzip_hex, gz, sizeof(gz));
        uint32_t pos;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        /* timestamps 1699999999100, 1699999999090, 1699999999080 */
        test_append(&seg, 0, 3, 5, 1699999999100LL, -10);
        record_batch_assign(gz, n, 3, 4, false, 1700000000003LL);
        cr_assert_eq(segment_append(&seg, gz, n, &pos), 0);
        /* The first record in offset order at or above the target, not
         * the one with the closest timestamp. */
        cr_assert_eq(segment_find_timestamp(&seg, 1699999999085LL, 0, &hit), 0);
        cr_assert_eq(hit.offset, 0);
        cr_assert_eq(hit.timestamp_ms, 1699999999100LL);
        cr_assert_eq(segment_find_timestamp(&seg, 1699999999085LL, 1, &hit), 0);
        cr_assert_eq(hit.offset, 1);
        cr_assert_eq(hit.timestamp_ms, 1699999999090LL);
        /* Nothing in the first batch from offset 2 on: the compressed one
         * answers at batch precision. */
        cr_assert_eq(segment_find_timestamp(&seg, 1699999999081LL, 2, &hit), 0);
        cr_assert(hit.is_batch_precision);
        cr_assert_eq(hit.offset, 3);
        cr_assert_eq(segment_find_timestamp(&seg, 1700000000001LL, 0, &hit), 0);
        cr_assert(hit.is_batch_precision);
        cr_assert_eq(hit.offset, 3);
        cr_assert_eq(hit.timestamp_ms, 1700000000003LL);
        cr_assert_eq(hit.leader_epoch, 4);
        cr_assert_eq(segment_find_timestamp(&seg, 1700000000001LL, 5, &hit), 0);
        cr_assert_eq(hit.offset, 5);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, read_byte_ranges)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);
        static uint8_t want[4096], got[4096];
        size_t n = 0, r;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        for (int i = 0; i < 5; i++) {
                size_t k = test_batch(want + n, sizeof(want) - n, 2 * i, 2, 30, 7, 1);
                uint32_t pos;

                cr_assert_eq(segment_append(&seg, want + n, k, &pos), 0);
                cr_assert_eq(pos, n);
                n += k;
        }
        cr_assert_eq(segment_read(&seg, 0, got, sizeof(got), &r), 0);
        cr_assert_eq(r, n);
        cr_assert_arr_eq(got, want, n);
        cr_assert_eq(segment_read(&seg, 10, got, 20, &r), 0);
        cr_assert_eq(r, 20);
        cr_assert_arr_eq(got, want + 10, 20);
        cr_assert_eq(segment_read(&seg, (uint32_t)n - 5, got, 100, &r), 0);
        cr_assert_eq(r, 5);
        cr_assert_eq(segment_read(&seg, (uint32_t)n, got, 100, &r), 0);
        cr_assert_eq(r, 0);
        cr_assert_eq(segment_read(&seg, (uint32_t)n + 1, got, 100, &r), -EINVAL);
        cr_assert_eq(segment_close(&seg), 0);
}

/* ---- append refusals ---- */

Test(segment, append_refusals)
{
        struct segment seg;
        struct segment_config cfg = test_config(100, 24);       /* 3 offset entries, 2 time entries */
        static uint8_t buf[4096];
        uint32_t pos;
        size_t n;

        cr_assert_eq(segment_create(&seg, &part_dir, 10, &cfg), 0);
        n = test_batch(buf, sizeof(buf), 9, 1, 10, 1, 0);
        cr_assert_eq(segment_append(&seg, buf, n, &pos), -EINVAL);    /* below the base */
        n = test_batch(buf, sizeof(buf), 10 + (int64_t)INT32_MAX, 2, 10, 1, 0);
        cr_assert_eq(segment_append(&seg, buf, n, &pos), -ERANGE);    /* beyond 4-byte relative */
        n = test_batch(buf, sizeof(buf), 10, 2, 10, 1, 0);
        cr_assert_eq(segment_append(&seg, buf, n - 1, &pos), -EINVAL); /* not whole */
        cr_assert_eq(segment_append(&seg, buf, 0, &pos), -EINVAL);
        cr_assert_eq(segment_append(&seg, buf, n, &pos), 0);
        cr_assert_eq(segment_append(&seg, buf, n, &pos), -EINVAL);     /* offsets again */
        cr_assert_eq(seg.size_bytes, n);
        /* The first entry fills the time index's ordinary slots. */
        test_append(&seg, 12, 2, 100, 5, 0);
        cr_assert_eq(seg.offset_index.entry_count, 1);
        cr_assert(segment_is_index_full(&seg));
        n = test_batch(buf, sizeof(buf), 14, 1, 10, 9, 0);
        cr_assert_eq(segment_append(&seg, buf, n, &pos), SEGMENT_FULL);
        cr_assert_eq(seg.next_offset, 14);
        cr_assert_eq(segment_close(&seg), 0);
}

/* ---- truncation ---- */

Test(segment, truncate_to_offset)
{
        struct segment seg;
        struct segment_config cfg = test_config(150, 4096);
        uint32_t pos[20], cut;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        for (int i = 0; i < 20; i++)
                pos[i] = test_append(&seg, 3 * i, 3, 30, 100 + 3 * i, 1);
        uint32_t size = seg.size_bytes;

        cr_assert_eq(segment_truncate_to_offset(&seg, 60, &cut), 0);  /* past the end */
        cr_assert_eq(cut, 0);
        cr_assert_eq(seg.size_bytes, size);
        cr_assert_eq(segment_truncate_to_offset(&seg, 31, &cut), 0);  /* inside batch 30..32 */
        cr_assert_eq(seg.size_bytes, pos[10]);
        cr_assert_eq(cut, size - pos[10]);
        cr_assert_eq(seg.next_offset, 30);
        cr_assert_eq(seg.max_timestamp_ms, 100 + 27 + 2);
        cr_assert_eq(seg.offset_of_max_timestamp, 29);
        for (uint32_t i = 0; i < seg.offset_index.entry_count; i++)
                cr_assert_lt(offset_index_entry_at(&seg.offset_index, i).offset, 30);
        for (uint32_t i = 0; i < seg.time_index.entry_count; i++)
                cr_assert_lt(time_index_entry_at(&seg.time_index, i).offset, 30);
        struct segment_batch_location loc;

        cr_assert_eq(segment_find_offset(&seg, 30, &loc), -ENOENT);
        cr_assert_eq(segment_find_offset(&seg, 29, &loc), 0);
        cr_assert_eq(loc.position_bytes, pos[9]);
        /* Appends carry on from the cut. */
        cr_assert_eq(test_append(&seg, 30, 3, 30, 200, 1), pos[10]);
        cr_assert_eq(seg.next_offset, 33);
        cr_assert_eq(segment_close(&seg), 0);

        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(seg.next_offset, 33);
        cr_assert_eq(seg.max_timestamp_ms, 202);
        cr_assert_eq(segment_truncate_to_offset(&seg, 0, &cut), 0);   /* everything */
        cr_assert_eq(seg.size_bytes, 0);
        cr_assert_eq(seg.next_offset, 0);
        cr_assert_eq(seg.offset_index.entry_count, 0);
        cr_assert_eq(seg.time_index.entry_count, 0);
        cr_assert_eq(seg.max_timestamp_ms, -1);
        cr_assert_eq(test_file_size(0, SEGMENT_LOG_FILE_SUFFIX), 0);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_file_size(0, OFFSET_INDEX_FILE_SUFFIX), 0);
        cr_assert_eq(test_file_size(0, TIME_INDEX_FILE_SUFFIX), 0);
}

/* ---- recovery ---- */

/* Writes batches 0..count-1 (2 records each, varied sizes) in a fresh
 * segment at base, sealed and closed; returns the batch positions. */
static void test_write_segment(int64_t base, int count, uint32_t *pos, uint32_t vlen_big)
{
        struct segment seg;
        struct segment_config cfg = test_config(200, 4096);

        cr_assert_eq(segment_create(&seg, &part_dir, base, &cfg), 0);
        for (int i = 0; i < count; i++)
                pos[i] = test_append(&seg, base + 2 * i, 2, vlen_big ? vlen_big : 20 + 7 * (uint32_t)i,
                                     500 + 5 * i, 2);
        pos[count] = seg.size_bytes;
        cr_assert_eq(segment_close(&seg), 0);
}

/* The indexes a clean write of the first `count` batches ends with. */
static void test_reference_segment(struct segment *ref, int count, uint32_t vlen_big)
{
        static uint32_t pos[64];
        struct segment_config cfg = test_config(200, 4096);

        test_write_segment(5000, count, pos, vlen_big);
        cr_assert_eq(segment_open(ref, &part_dir, 5000, &cfg), 0);
}

Test(segment, recover_torn_tail)
{
        struct segment seg, ref;
        struct segment_config cfg = test_config(200, 4096);
        struct segment_scan scan;
        uint32_t pos[21];

        test_write_segment(0, 20, pos, 0);
        test_cut_log(0, pos[20] - 7);           /* the last batch loses 7 bytes */

        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert(seg.is_tail_dirty);
        cr_assert_eq(seg.size_bytes, pos[19]);
        cr_assert_eq(seg.next_offset, 38);
        uint8_t buf[512];
        size_t n = test_batch(buf, sizeof(buf), 40, 1, 1, 1, 0);
        uint32_t at;

        cr_assert_eq(segment_append(&seg, buf, n, &at), -EUCLEAN);

        cr_assert_eq(segment_scan(&seg, 0, &scan), 0);          /* read-only */
        cr_assert_eq(scan.stop, SEGMENT_STOP_PARTIAL);
        cr_assert_eq(scan.valid_bytes, pos[19]);
        cr_assert_eq(scan.batch_count, 19);
        cr_assert_eq(scan.next_offset, 38);
        cr_assert_eq(test_file_size(0, SEGMENT_LOG_FILE_SUFFIX), pos[20] - 7);
        cr_assert_eq(segment_scan(&seg, pos[5], &scan), 0);     /* from a batch boundary */
        cr_assert_eq(scan.batch_count, 14);

        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_PARTIAL);
        cr_assert_eq(scan.truncated_bytes, pos[20] - 7 - pos[19]);
        cr_assert_eq(scan.next_offset, 38);
        cr_assert_eq(seg.next_offset, 38);
        cr_assert(!seg.is_tail_dirty);
        cr_assert_eq(test_file_size(0, SEGMENT_LOG_FILE_SUFFIX), pos[19]);

        /* The rebuilt indexes are those of a clean write of 19 batches. */
        test_reference_segment(&ref, 19, 0);
        cr_assert_gt(ref.offset_index.entry_count, 3);
        cr_assert(test_indexes_equal(&seg, &ref));
        cr_assert_eq(ref.max_timestamp_ms, seg.max_timestamp_ms);
        cr_assert_eq(segment_close(&ref), 0);

        n = test_batch(buf, sizeof(buf), 37, 1, 1, 1, 0);
        cr_assert_eq(segment_append(&seg, buf, n, &at), -EINVAL);     /* behind next_offset */
        n = test_batch(buf, sizeof(buf), 38, 1, 1, 1, 0);
        cr_assert_eq(segment_append(&seg, buf, n, &at), 0);
        cr_assert_eq(at, pos[19]);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, recover_corrupted_byte)
{
        struct segment seg, ref;
        struct segment_config cfg = test_config(200, 4096);
        struct segment_scan scan;
        uint32_t pos[21];
        static uint8_t a[4096], b[4096];

        test_write_segment(0, 20, pos, 0);
        test_flip_byte(0, pos[10] + 70);        /* inside batch 10's records */

        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert(!seg.is_tail_dirty);          /* framing is intact: only the CRC knows */
        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_BAD_CRC);
        cr_assert_eq(scan.stop_position_bytes, pos[10]);
        cr_assert_eq(scan.valid_bytes, pos[10]);
        cr_assert_eq(scan.batch_count, 10);
        cr_assert_eq(seg.next_offset, 20);
        cr_assert_eq(scan.truncated_bytes, pos[20] - pos[10]);
        cr_assert_eq(segment_close(&seg), 0);

        /* Byte for byte what a clean write of the first 10 batches leaves. */
        test_reference_segment(&ref, 10, 0);
        cr_assert_eq(segment_close(&ref), 0);
        size_t an = test_read_file(0, OFFSET_INDEX_FILE_SUFFIX, a, sizeof(a));
        size_t bn = test_read_file(5000, OFFSET_INDEX_FILE_SUFFIX, b, sizeof(b));

        cr_assert_eq(an, bn);
        cr_assert_gt(an, 0);
        cr_assert_arr_eq(a, b, an);     /* relative offsets: the bases differ, the files do not */
        an = test_read_file(0, TIME_INDEX_FILE_SUFFIX, a, sizeof(a));
        bn = test_read_file(5000, TIME_INDEX_FILE_SUFFIX, b, sizeof(b));
        cr_assert_eq(an, bn);
        cr_assert_arr_eq(a, b, an);
}

Test(segment, recover_bad_framing)
{
        struct segment seg;
        struct segment_config cfg = test_config(200, 4096);
        struct segment_scan scan;
        uint32_t pos[21];

        test_write_segment(0, 20, pos, 0);
        /* batch 12's magic becomes 2 ^ 0x5a */
        test_flip_byte(0, pos[12] + 16);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(segment_scan(&seg, 0, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_BAD_MAGIC);
        cr_assert_eq(scan.valid_bytes, pos[12]);
        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(seg.size_bytes, pos[12]);
        cr_assert_eq(seg.next_offset, 24);
        cr_assert_eq(segment_close(&seg), 0);

        /* A batchLength below the minimum. */
        test_write_segment(100, 20, pos, 0);
        int fd = openat(dir_fd, test_name(100, SEGMENT_LOG_FILE_SUFFIX), O_RDWR);
        uint8_t len_field[4] = { 0, 0, 0, 20 };

        cr_assert_eq(pwrite(fd, len_field, 4, pos[3] + 8), 4);
        close(fd);
        /* Opening walks only the tail, past the last index entry: damage
         * further back is for recovery to find. */
        cr_assert_eq(segment_open(&seg, &part_dir, 100, &cfg), 0);
        cr_assert(!seg.is_tail_dirty);
        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_BAD_LENGTH);
        cr_assert_eq(seg.next_offset, 106);
        cr_assert_eq(seg.size_bytes, pos[3]);
        cr_assert_eq(segment_close(&seg), 0);
}

Test(segment, recover_large_batches_streams_the_crc)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);
        struct segment_scan scan;
        uint32_t pos[7];

        test_write_segment(0, 6, pos, 100000);
        cr_assert_gt(pos[1] - pos[0], 100000);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(segment_scan(&seg, 0, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_END);
        cr_assert_eq(scan.batch_count, 6);
        cr_assert_eq(segment_close(&seg), 0);

        test_flip_byte(0, pos[3] + 77777);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(segment_recover(&seg, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_BAD_CRC);
        cr_assert_eq(scan.valid_bytes, pos[3]);
        cr_assert_eq(seg.next_offset, 6);
        struct segment_timestamp_hit hit;

        cr_assert_eq(segment_find_timestamp(&seg, 510, 0, &hit), 0);
        cr_assert_eq(hit.offset, 4);
        cr_assert_eq(segment_close(&seg), 0);
}

/* ---- damaged or missing index files ---- */

Test(segment, rebuilds_missing_or_damaged_indexes)
{
        struct segment seg;
        struct segment_config cfg = test_config(200, 4096);
        uint32_t pos[21];
        static uint8_t oi[4096], ti[4096], got[4096];

        test_write_segment(0, 20, pos, 0);
        size_t oi_n = test_read_file(0, OFFSET_INDEX_FILE_SUFFIX, oi, sizeof(oi));
        size_t ti_n = test_read_file(0, TIME_INDEX_FILE_SUFFIX, ti, sizeof(ti));

        cr_assert_gt(oi_n, 16);

        /* Missing. */
        cr_assert_eq(unlinkat(dir_fd, test_name(0, OFFSET_INDEX_FILE_SUFFIX), 0), 0);
        cr_assert_eq(unlinkat(dir_fd, test_name(0, TIME_INDEX_FILE_SUFFIX), 0), 0);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(seg.next_offset, 40);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_read_file(0, OFFSET_INDEX_FILE_SUFFIX, got, sizeof(got)), oi_n);
        cr_assert_arr_eq(got, oi, oi_n);
        cr_assert_eq(test_read_file(0, TIME_INDEX_FILE_SUFFIX, got, sizeof(got)), ti_n);
        cr_assert_arr_eq(got, ti, ti_n);

        /* Entries out of order. */
        int fd = openat(dir_fd, test_name(0, OFFSET_INDEX_FILE_SUFFIX), O_RDWR);
        uint8_t junk[8] = { 0, 0, 0, 1, 0, 0, 0, 9 };

        cr_assert_eq(pwrite(fd, junk, 8, 8), 8);
        close(fd);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        struct segment_batch_location loc;

        cr_assert_eq(segment_find_offset(&seg, 17, &loc), 0);
        cr_assert_eq(loc.position_bytes, pos[8]);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_read_file(0, OFFSET_INDEX_FILE_SUFFIX, got, sizeof(got)), oi_n);
        cr_assert_arr_eq(got, oi, oi_n);

        /* A time index pointing past the log. */
        fd = openat(dir_fd, test_name(0, TIME_INDEX_FILE_SUFFIX), O_RDWR);
        uint8_t far[4] = { 0, 0, 1, 0 };

        cr_assert_eq(pwrite(fd, far, 4, (off_t)ti_n - 4), 4);
        close(fd);
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(test_read_file(0, TIME_INDEX_FILE_SUFFIX, got, sizeof(got)), ti_n);
        cr_assert_arr_eq(got, ti, ti_n);
}

/* ---- appends in two steps (reserve, write elsewhere, commit) ---- */

/* 23 batches of 1000 bytes reserved at once, written last first, committed
 * in order: the same segment as segment_append makes, and nothing of a
 * batch visible before its commit. */
Test(segment, reserve_and_commit_match_append)
{
        struct segment seg, ref;
        struct segment_config cfg = test_config(4096, 4096);
        uint32_t vlen = test_vlen_for(1000);
        static uint8_t bufs[23][1000];
        uint32_t pos[23];
        struct segment_batch_location loc;
        size_t got;
        uint8_t byte;

        cr_assert_eq(mkdirat(dir_fd, "ref", 0755), 0);
        struct logdir_ref ref_dir;
        cr_assert_eq(logdir_ref_init(&ref_dir, dir_fd, "ref"), 0);
        cr_assert_eq(segment_create(&ref, &ref_dir, 0, &cfg), 0);
        test_append_thousands(&ref, 0, 23);
        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        for (int i = 0; i < 23; i++) {
                cr_assert_eq(test_batch(bufs[i], sizeof(bufs[i]), i, 1, vlen, 1000 + i, 0), 1000);
                cr_assert_eq(segment_append_reserve(&seg, bufs[i], 1000, &pos[i]), 0);
                cr_assert_eq(pos[i], (uint32_t)(1000 * i));
        }
        cr_assert_eq(segment_reserved_size_bytes(&seg), 23000);
        cr_assert_eq(seg.size_bytes, 0);
        cr_assert_eq(seg.next_offset, 0);
        for (int i = 22; i >= 0; i--)
                cr_assert_eq(pwrite(seg.log_fd, bufs[i], 1000, pos[i]), 1000);
        cr_assert_eq(segment_find_offset(&seg, 0, &loc), -ENOENT, "written, not committed");
        cr_assert_eq(segment_read(&seg, 0, &byte, 1, &got), 0);
        cr_assert_eq(got, 0);
        for (int i = 0; i < 23; i++) {
                cr_assert_eq(segment_append_commit(&seg, bufs[i], 1000, pos[i]), 0);
                cr_assert_eq(seg.size_bytes, 1000 * (uint32_t)(i + 1));
                cr_assert_eq(seg.next_offset, i + 1);
                if (seg.offset_index.entry_count > 0)
                        cr_assert_lt(offset_index_last(&seg.offset_index).position_bytes, seg.size_bytes);
        }
        cr_assert_eq(seg.pending_count, 0);
        cr_assert_eq(seg.offset_index.entry_count, 4);
        cr_assert(test_indexes_equal(&seg, &ref));
        cr_assert_eq(seg.bytes_since_last_index_entry, ref.bytes_since_last_index_entry);
        cr_assert_eq(seg.max_timestamp_ms, 1022);
        cr_assert_eq(segment_find_offset(&seg, 17, &loc), 0);
        cr_assert_eq(loc.position_bytes, 17000);
        cr_assert_eq(segment_close(&seg), 0);
        cr_assert_eq(segment_close(&ref), 0);
}

/* Pending appends count against the index room: the reserve that would
 * overfill an index is refused, as segment_append's would be. */
Test(segment, reserve_counts_pending_index_entries)
{
        struct segment seg;
        struct segment_config cfg = test_config(100, 24);       /* 3 offset entries, 2 time entries */
        static uint8_t a[4096], b[4096], c[4096];
        uint32_t pa, pb, pc;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        size_t na = test_batch(a, sizeof(a), 0, 2, 100, 1, 0);
        size_t nb = test_batch(b, sizeof(b), 2, 2, 100, 5, 0);
        size_t nc = test_batch(c, sizeof(c), 4, 1, 10, 9, 0);
        cr_assert_eq(segment_append_reserve(&seg, a, na, &pa), 0);
        cr_assert_eq(segment_append_reserve(&seg, b, nb, &pb), 0, "its entry fills the time index");
        cr_assert_eq(segment_append_reserve(&seg, c, nc, &pc), SEGMENT_FULL);
        cr_assert_eq(segment_append_reserve(&seg, a, na, &pc), -EINVAL, "offsets continue from the reserved");
        cr_assert_eq(pwrite(seg.log_fd, a, na, pa), (ssize_t)na);
        cr_assert_eq(pwrite(seg.log_fd, b, nb, pb), (ssize_t)nb);
        cr_assert_eq(segment_append_commit(&seg, a, na, pa), 0);
        cr_assert_eq(segment_append_commit(&seg, b, nb, pb), 0);
        cr_assert_eq(seg.offset_index.entry_count, 1);
        cr_assert(segment_is_index_full(&seg));
        cr_assert_eq(segment_close(&seg), 0);
}

/* A write failed: the pending appends go, the .log is cut back to what
 * was committed, and the next reserve starts there. */
Test(segment, abort_drops_pending_appends)
{
        struct segment seg;
        struct segment_config cfg = test_config(4096, 4096);
        static uint8_t a[4096], b[4096], c[4096];
        uint32_t pa, pb, pc;

        cr_assert_eq(segment_create(&seg, &part_dir, 0, &cfg), 0);
        size_t na = test_batch(a, sizeof(a), 0, 2, 100, 1, 0);
        size_t nb = test_batch(b, sizeof(b), 2, 2, 100, 5, 0);
        size_t nc = test_batch(c, sizeof(c), 4, 1, 10, 9, 0);
        cr_assert_eq(segment_append_reserve(&seg, a, na, &pa), 0);
        cr_assert_eq(segment_append_reserve(&seg, b, nb, &pb), 0);
        cr_assert_eq(segment_append_reserve(&seg, c, nc, &pc), 0);
        cr_assert_eq(pwrite(seg.log_fd, a, na, pa), (ssize_t)na);
        cr_assert_eq(pwrite(seg.log_fd, c, nc, pc), (ssize_t)nc);       /* b failed */
        cr_assert_eq(segment_append_commit(&seg, a, na, pa), 0);
        cr_assert_eq(segment_append_abort(&seg), 0);
        cr_assert_eq(seg.pending_count, 0);
        cr_assert_eq(seg.size_bytes, na);
        cr_assert_eq(seg.next_offset, 2);
        cr_assert_eq(test_file_size(0, SEGMENT_LOG_FILE_SUFFIX), (off_t)na, "c's bytes are gone");
        nb = test_batch(b, sizeof(b), 2, 1, 10, 5, 0);
        cr_assert_eq(segment_append_reserve(&seg, b, nb, &pb), 0);
        cr_assert_eq(pb, na);
        cr_assert_eq(pwrite(seg.log_fd, b, nb, pb), (ssize_t)nb);
        cr_assert_eq(segment_append_commit(&seg, b, nb, pb), 0);
        cr_assert_eq(segment_close(&seg), 0);

        /* What is on disk opens cleanly. */
        struct segment_scan scan;
        cr_assert_eq(segment_open(&seg, &part_dir, 0, &cfg), 0);
        cr_assert_eq(segment_scan(&seg, 0, &scan), 0);
        cr_assert_eq(scan.stop, SEGMENT_STOP_END);
        cr_assert_eq(scan.next_offset, 3);
        cr_assert_eq(segment_close(&seg), 0);
}
