/*
 * test_recovery.c - recovery after an unclean stop, against torn and
 * corrupt tails, hundreds of times with fixed seeds.
 *
 * A partition of several small segments, densely indexed, is written once
 * and its files kept. Each iteration puts those files back, damages the
 * last segment (cut at a random byte, random bytes flipped in its last
 * batches, or both), reopens it as after a crash (is_clean_shutdown false,
 * a recovery point at 0 or at the last segment's base), and checks:
 *   - the log ends exactly at the last whole, valid batch before the first
 *     damaged byte (Kafka's LogSegment.recover cuts there, and whatever
 *     follows goes with it);
 *   - everything partition_read serves is a batch of the original log,
 *     byte for byte, whose CRC-32C is right (checked here with the
 *     software CRC, not the one the log uses), offsets contiguous;
 *   - the indexes agree with the data: a read at every offset starts at
 *     the batch holding it, and a lookup by each batch's timestamp finds
 *     that batch;
 *   - appends continue at the recovered end, and a clean reopen keeps all
 *     of it.
 *
 * Which bytes are flipped: anything the recovery can check. The base
 * offset (bytes 0-7) and partitionLeaderEpoch (12-15) of a batch are
 * outside its CRC, and Kafka's recovery does not look at them beyond
 * offsets going backwards, so a flip there may go unnoticed by design; the
 * length, magic, CRC and everything the CRC covers may not.
 *
 * TEST_RECOVERY_ITERATIONS (environment) changes the count (default 500);
 * TEST_RECOVERY_SEED the first seed. A failure names its seed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/partition.h"
#include "log/segment.h"
#include "protocol/crc32c.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "log/test_util.h"

#define TEST_DIR "t-0"
#define TEST_PRISTINE "pristine"
#define TEST_NOW_MS TEST_UTIL_NOW_MS
#define TEST_BATCHES 120
#define TEST_FILES_MAX 64
#define TEST_FILE_BYTES_MAX (1 << 20)
#define TEST_ITERATIONS_DEFAULT 500

static char tmp_root[64];
static int root_fd = -1;
static char err_line[512];
static uint32_t rng_state;

/* ---- a small PRNG, so a seed replays the same damage everywhere ---- */

static uint32_t rng_next(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 17;
        rng_state ^= rng_state << 5;
        return rng_state;
}

static uint32_t rng_below(uint32_t n)
{
        return n ? rng_next() % n : 0;
}

/* The log_io: test_util_io, real writes and fdatasync, completed at once. */

/* ---- appends ---- */

struct test_append {
        struct partition_append a;
        int done_count;
        uint8_t batch[8192];
};

static void test_append_done(struct partition_append *a)
{
        ((struct test_append *)a->ctx)->done_count++;
}

/* Appends count records of vlen bytes with timestamp ts; the base offset. */
static int64_t test_append_ok(struct partition *p, uint32_t count, uint32_t vlen, int64_t ts)
{
        static uint8_t value[1024];
        struct record_spec rs[8];
        struct record_batch_spec spec;
        struct test_append *t = calloc(1, sizeof(*t));
        int64_t base;

        cr_assert_not_null(t);
        cr_assert_leq(count, 8);
        cr_assert_leq(vlen, sizeof(value));
        for (uint32_t i = 0; i < vlen; i++)
                value[i] = (uint8_t)('a' + (ts + i) % 26);
        for (uint32_t i = 0; i < count; i++)
                rs[i] = (struct record_spec){ { (const uint8_t *)"key", 3 }, { value, (int32_t)vlen }, ts, NULL, 0 };
        record_batch_spec_init(&spec, rs, count);
        t->a.len = record_batch_encoded_size(&spec);
        cr_assert_leq(t->a.len, sizeof(t->batch));
        cr_assert_eq(record_batch_encode(&spec, t->batch, t->a.len), t->a.len);
        t->a.batches = t->batch;
        t->a.done = test_append_done;
        t->a.ctx = t;
        partition_append(p, &t->a);
        cr_assert_eq(t->done_count, 1);
        cr_assert_eq(t->a.error_code, KAFKA_NONE, "append: %d %s", t->a.error_code, t->a.error_message);
        base = t->a.base_offset;
        free(t);
        return base;
}

/* ---- files ---- */

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "recovery");
        root_fd = test_util_dir_open(tmp_root);
}

static void test_teardown(void)
{
        test_util_fd_close(&root_fd);
        test_util_tmpdir_remove(tmp_root);
}

TestSuite(recovery, .init = test_setup, .fini = test_teardown);

static size_t test_read_file(int dir_fd, const char *name, uint8_t *buf, size_t cap)
{
        int fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        size_t got = 0;

        cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
        for (;;) {
                ssize_t n = read(fd, buf + got, cap - got);
                cr_assert_geq(n, 0);
                if (n == 0)
                        break;
                got += (size_t)n;
                cr_assert_lt(got, cap, "%s is larger than the test expects", name);
        }
        close(fd);
        return got;
}

static void test_write_file(int dir_fd, const char *name, const uint8_t *buf, size_t len)
{
        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
        cr_assert_eq(write(fd, buf, len), (ssize_t)len);
        close(fd);
}

/* Copies every file of directory from into directory to (made empty first). */
static void test_copy_dir(const char *from, const char *to)
{
        static uint8_t buf[TEST_FILE_BYTES_MAX];
        int from_fd = openat(root_fd, from, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        int to_fd;
        DIR *d;
        struct dirent *e;

        cr_assert_geq(from_fd, 0);
        mkdirat(root_fd, to, 0755);
        to_fd = openat(root_fd, to, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        cr_assert_geq(to_fd, 0);
        /* Empty the target. */
        d = fdopendir(dup(to_fd));
        cr_assert_not_null(d);
        while ((e = readdir(d)) != NULL)
                if (e->d_name[0] != '.')
                        cr_assert_eq(unlinkat(to_fd, e->d_name, 0), 0);
        closedir(d);
        d = fdopendir(dup(from_fd));
        cr_assert_not_null(d);
        while ((e = readdir(d)) != NULL) {
                if (e->d_name[0] == '.')
                        continue;
                size_t n = test_read_file(from_fd, e->d_name, buf, sizeof(buf));
                test_write_file(to_fd, e->d_name, buf, n);
        }
        closedir(d);
        close(to_fd);
        close(from_fd);
}

/* ---- the original log ---- */

struct test_batch {
        int64_t segment_base;
        uint32_t position;
        uint32_t size;
        int64_t base_offset;
        int64_t last_offset;
        int64_t timestamp_ms;
        uint32_t crc;
};

static struct test_batch batches[TEST_BATCHES];
static uint32_t batch_count;
static int64_t last_segment_base;
static int64_t log_end;

static struct partition_options test_options(void)
{
        struct partition_options o;

        memset(&o, 0, sizeof(o));
        o.dir_fd = root_fd;
        o.dir_name = TEST_DIR;
        topic_config_init_defaults(&o.config);
        o.config.segment_bytes = 12 << 10;
        o.config.segment_index_bytes = 4096;
        o.config.index_interval_bytes = 200;
        o.is_durable_acks = true;
        return o;
}

static struct partition *test_open(const struct partition_options *o)
{
        struct partition *p = NULL;
        int rc = partition_open(o, &test_util_io, &p, err_line, sizeof(err_line));

        cr_assert_eq(rc, 0, "partition_open: %s", err_line);
        return p;
}

/*
 * Writes TEST_BATCHES batches of 1-8 records of 20-400 bytes, each with
 * its own timestamp, over several segments; copies the files, as the
 * crash left them (indexes still preallocated), to TEST_PRISTINE; and
 * lists every batch from the .log files.
 */
static void test_build_log(void)
{
        struct partition_options o = test_options();
        struct partition *p = test_open(&o);
        static uint8_t buf[TEST_FILE_BYTES_MAX];

        rng_state = 12345;
        for (uint32_t i = 0; i < TEST_BATCHES; i++)
                test_append_ok(p, 1 + rng_below(8), 20 + rng_below(380), TEST_NOW_MS + 10 * (int64_t)i);
        partition_flush(p);
        log_end = partition_log_end_offset(p);
        cr_assert_gt(partition_segment_count(p), 4, "the log should span several segments");
        test_copy_dir(TEST_DIR, TEST_PRISTINE);
        partition_close(p);

        /* The batches, from the files. */
        int dir_fd = openat(root_fd, TEST_PRISTINE, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        cr_assert_geq(dir_fd, 0);
        batch_count = 0;
        for (int64_t base = 0; base < log_end;) {
                char name[SEGMENT_FILE_NAME_BYTES];
                segment_file_name(name, base, ".log");
                size_t n = test_read_file(dir_fd, name, buf, sizeof(buf));
                uint32_t at = 0;
                last_segment_base = base;
                while (at < n) {
                        struct record_batch_header h;
                        cr_assert_eq(record_batch_parse_header(buf + at, n - at, &h), RECORD_BATCH_FRAME_OK);
                        cr_assert_lt(batch_count, TEST_BATCHES);
                        struct test_batch *b = &batches[batch_count];
                        b->segment_base = base;
                        b->position = at;
                        b->size = record_batch_size_bytes(&h);
                        b->base_offset = h.base_offset;
                        b->last_offset = record_batch_last_offset(&h);
                        b->timestamp_ms = h.max_timestamp_ms;
                        b->crc = h.crc;
                        cr_assert_eq(b->base_offset, batch_count ? batches[batch_count - 1].last_offset + 1 : 0);
                        batch_count++;
                        at += b->size;
                }
                cr_assert_eq(at, n);
                base = batches[batch_count - 1].last_offset + 1;
        }
        close(dir_fd);
        cr_assert_eq(batch_count, TEST_BATCHES);
}

/* ---- damage ---- */

/* The first batch of the last segment. */
static uint32_t test_first_of_last_segment(void)
{
        uint32_t i = batch_count;

        while (i > 0 && batches[i - 1].segment_base == last_segment_base)
                i--;
        return i;
}

/* Is byte `at` of a batch one recovery must notice when it changes? */
static bool test_is_checked_byte(uint32_t at)
{
        return !(at < 8 || (at >= 12 && at < 16));
}

/*
 * Damages the last segment of TEST_DIR; returns the index of the first
 * batch recovery must drop (batch_count when none).
 */
static uint32_t test_damage(char *what, size_t what_bytes)
{
        static uint8_t buf[TEST_FILE_BYTES_MAX];
        char name[SEGMENT_FILE_NAME_BYTES];
        uint32_t first = test_first_of_last_segment();
        uint32_t dropped = batch_count;
        int dir_fd = openat(root_fd, TEST_DIR, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        uint32_t kind = rng_below(3);   /* 0 cut, 1 flips, 2 both */
        size_t n, used = 0;

        cr_assert_geq(dir_fd, 0);
        segment_file_name(name, last_segment_base, ".log");
        n = test_read_file(dir_fd, name, buf, sizeof(buf));
        what[0] = '\0';
        if (kind != 0) {
                /* 1-3 bytes in the last 1-3 batches. */
                uint32_t span = 1 + rng_below(3);
                uint32_t from = batch_count - span < first ? first : batch_count - span;
                uint32_t flips = 1 + rng_below(3);
                for (uint32_t f = 0; f < flips; f++) {
                        uint32_t i = from + rng_below(batch_count - from);
                        uint32_t at;
                        do {
                                at = rng_below(batches[i].size);
                        } while (!test_is_checked_byte(at));
                        buf[batches[i].position + at] ^= (uint8_t)(1 + rng_below(255));
                        if (i < dropped)
                                dropped = i;
                        used += (size_t)snprintf(what + used, what_bytes - used, "flip batch %u byte %u; ", i, at);
                }
        }
        if (kind != 1) {
                uint32_t cut = rng_below((uint32_t)n);
                n = cut;
                for (uint32_t i = first; i < batch_count; i++)
                        if (batches[i].position + batches[i].size > cut && i < dropped)
                                dropped = i;
                used += (size_t)snprintf(what + used, what_bytes - used, "cut at byte %u; ", cut);
        }
        test_write_file(dir_fd, name, buf, n);
        close(dir_fd);
        return dropped;
}

/* ---- checks ---- */

/* Reads every batch from offset 0 with partition_read: the first
 * original_count ones of the original log, byte for byte, CRC right,
 * offsets contiguous, no more than want_count; returns the count. */
static uint32_t test_read_all(struct partition *p, uint32_t want_count, uint32_t original_count)
{
        static uint8_t buf[64 << 10];
        int64_t offset = 0;
        uint32_t count = 0;

        while (offset < partition_high_watermark(p)) {
                struct partition_read r = { .fetch_offset = offset, .max_bytes = sizeof(buf),
                                            .is_first_batch_whole = true };
                partition_read(p, &r);
                cr_assert_eq(r.error_code, KAFKA_NONE);
                cr_assert_not_null(r.segment, "nothing to read at %lld below the high watermark %lld",
                                   (long long)offset, (long long)partition_high_watermark(p));
                cr_assert_leq(r.len, sizeof(buf));
                cr_assert_eq(pread(r.fd, buf, r.len, (off_t)r.file_position), (ssize_t)r.len);
                partition_read_release(&r);
                uint32_t at = 0;
                while (at < r.len) {
                        struct record_batch_header h;
                        cr_assert_eq(record_batch_parse_header(buf + at, r.len - at, &h), RECORD_BATCH_FRAME_OK,
                                     "a read served a partial or malformed batch at offset %lld",
                                     (long long)offset);
                        uint32_t size = record_batch_size_bytes(&h);
                        cr_assert_leq(at + size, r.len, "a read served a partial batch");
                        uint32_t crc = crc32c_update_sw(0, buf + at + RECORD_BATCH_OFFSET_ATTRIBUTES,
                                                        size - RECORD_BATCH_OFFSET_ATTRIBUTES);
                        cr_assert_eq(crc, h.crc, "served batch at offset %lld has a wrong CRC",
                                     (long long)h.base_offset);
                        cr_assert_eq(h.base_offset, offset, "offsets not contiguous");
                        cr_assert_lt(count, want_count, "more batches served than recovery should keep");
                        const struct test_batch *b = &batches[count];
                        cr_assert(count >= original_count ||
                                  (h.base_offset == b->base_offset && size == b->size && h.crc == b->crc),
                                  "batch %u is not the original's", count);
                        count++;
                        offset = record_batch_next_offset(&h);
                        at += size;
                }
        }
        return count;
}

static void test_check_lookups(struct partition *p, uint32_t kept)
{
        for (uint32_t i = 0; i < kept; i++) {
                const struct test_batch *b = &batches[i];
                for (int64_t o = b->base_offset; o <= b->last_offset; o++) {
                        struct partition_read r = { .fetch_offset = o, .max_bytes = 1,
                                                    .is_first_batch_whole = true };
                        uint8_t head[RECORD_BATCH_HEADER_BYTES];
                        struct record_batch_header h;
                        partition_read(p, &r);
                        cr_assert_not_null(r.segment, "no data at offset %lld", (long long)o);
                        cr_assert_eq(pread(r.fd, head, sizeof(head), (off_t)r.file_position), (ssize_t)sizeof(head));
                        partition_read_release(&r);
                        cr_assert_eq(record_batch_parse_header(head, sizeof(head), &h), RECORD_BATCH_FRAME_OK);
                        cr_assert_eq(h.base_offset, b->base_offset, "a read at %lld starts at batch %lld, want %lld",
                                     (long long)o, (long long)h.base_offset, (long long)b->base_offset);
                }
                int64_t found, ts;
                partition_offset_for_time(p, b->timestamp_ms, &found, &ts);
                cr_assert_eq(found, b->base_offset, "by time %lld: offset %lld, want %lld",
                             (long long)b->timestamp_ms, (long long)found, (long long)b->base_offset);
                cr_assert_eq(ts, b->timestamp_ms);
        }
        int64_t found, ts;
        partition_offset_for_time(p, TEST_NOW_MS + 10 * (int64_t)kept, &found, &ts);
        cr_assert_eq(found, -1, "a timestamp past the recovered log found offset %lld", (long long)found);
}

static void test_iteration(uint32_t seed)
{
        struct partition_options o = test_options();
        char what[256];
        uint32_t dropped;

        rng_state = seed * 2654435761u + 1;
        test_copy_dir(TEST_PRISTINE, TEST_DIR);
        dropped = test_damage(what, sizeof(what));
        int64_t want_end = dropped < batch_count ? batches[dropped].base_offset : log_end;
        o.is_clean_shutdown = false;
        o.recovery_point = rng_below(2) ? last_segment_base : 0;

        struct partition *p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), want_end, "seed %u (%s): recovered to %lld, want %lld", seed,
                     what, (long long)partition_log_end_offset(p), (long long)want_end);
        cr_assert_eq(test_read_all(p, dropped, dropped), dropped, "seed %u (%s)", seed, what);
        test_check_lookups(p, dropped);
        /* Appends continue at the recovered end, and read back. */
        int64_t next_ts = TEST_NOW_MS + 10 * (int64_t)dropped;
        cr_assert_eq(test_append_ok(p, 2, 50, next_ts), want_end, "seed %u (%s)", seed, what);
        partition_flush(p);
        partition_close(p);

        /* A clean reopen keeps it all. */
        o.is_clean_shutdown = true;
        o.recovery_point = want_end + 2;
        p = test_open(&o);
        cr_assert_eq(partition_log_end_offset(p), want_end + 2, "seed %u (%s)", seed, what);
        cr_assert_eq(test_read_all(p, dropped + 1, dropped), dropped + 1, "seed %u (%s)", seed, what);
        partition_close(p);
}

static uint32_t test_env(const char *name, uint32_t fallback)
{
        const char *v = getenv(name);

        return v && *v ? (uint32_t)strtoul(v, NULL, 10) : fallback;
}

Test(recovery, torn_and_corrupt_tails, .timeout = 300)
{
        uint32_t iterations = test_env("TEST_RECOVERY_ITERATIONS", TEST_ITERATIONS_DEFAULT);
        uint32_t first_seed = test_env("TEST_RECOVERY_SEED", 1);

        test_build_log();
        for (uint32_t i = 0; i < iterations; i++)
                test_iteration(first_seed + i);
}
