/*
 * segment_recovery.c - fuzz target: a segment's .log as a crash, a torn
 * write or a bad disk left it, opened and recovered (log/segment.h).
 *
 * Input: one control byte, then the bytes of the .log file.
 *
 *   ctl bit 0    rewrite the CRC-32C of every batch that frames (walking
 *                by batchLength from the start), so mutations get past the
 *                checksum to the offset and framing rules
 *   ctl bits 1-2 log.index.interval.bytes: 0, 64, 512 or 4096
 *   ctl bit 3    index files of garbage (the input's first bytes) left by
 *                the crash, instead of none
 *
 * What runs: segment_open (which rebuilds or loads the indexes),
 * segment_recover, lookups, an append, segment_close and segment_open
 * again. Properties checked, against a walk of the input made here with
 * the software CRC:
 *   - the .log is cut to a prefix of the input that is exactly the whole,
 *     valid batches before the first one that is not (partial, length,
 *     magic, CRC, or offsets going backwards or out of the segment's
 *     range): nothing valid is lost, nothing invalid is kept;
 *   - next_offset is one past the last kept batch;
 *   - segment_find_offset finds, for every offset of every kept batch, the
 *     batch that holds it;
 *   - an append at next_offset lands right after the kept batches, and
 *     the segment opens again with everything in place.
 *
 * The files live in a directory of the process's own under
 * $TMPDIR (default /tmp), emptied after every input and removed at exit.
 */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/segment.h"
#include "protocol/crc32c.h"
#include "protocol/record_batch.h"

#define BATCHES_MAX 4096

static char dir_path[256];
static int dir_fd = -1;
static struct logdir_ref part_dir;         /* dir_fd, as segments hold it */

static void remove_files(void)
{
        static const char *const suffixes[] = { ".log", ".index", ".timeindex" };
        char name[SEGMENT_FILE_NAME_BYTES];

        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
                segment_file_name(name, 0, suffixes[i]);
                unlinkat(dir_fd, name, 0);
        }
}

static void remove_dir(void)
{
        if (dir_fd < 0)
                return;
        remove_files();
        close(dir_fd);
        rmdir(dir_path);
}

static void make_dir(void)
{
        const char *tmp = getenv("TMPDIR");

        if (dir_fd >= 0)
                return;
        snprintf(dir_path, sizeof(dir_path), "%s/runnel-fuzz-segment-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        FUZZ_CHECK(mkdtemp(dir_path) != NULL, "mkdtemp %s: %s", dir_path, strerror(errno));
        dir_fd = open(dir_path, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(dir_fd >= 0, "open %s", dir_path);
        FUZZ_CHECK(logdir_ref_init(&part_dir, dir_fd, ".") == 0, "stat %s", dir_path);
        atexit(remove_dir);
}

static void write_file(const char *suffix, const uint8_t *data, size_t len)
{
        char name[SEGMENT_FILE_NAME_BYTES];
        int fd;

        segment_file_name(name, 0, suffix);
        fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        FUZZ_CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
        FUZZ_CHECK(len == 0 || write(fd, data, len) == (ssize_t)len, "write %s", name);
        close(fd);
}

/* A batch found by the walk here. */
struct batch {
        uint32_t position;
        uint32_t size;
        int64_t base_offset;
        int64_t last_offset;
};

/*
 * Walks buf as Kafka's recovery does, independently of segment.c: whole
 * batches with magic 2, a length at least the header's, the right CRC,
 * offsets not going back and within 2^31 of the base (0). Returns the
 * count of valid batches before the first one that is not.
 */
static uint32_t walk(const uint8_t *buf, size_t len, struct batch *out)
{
        uint32_t n = 0, at = 0;
        int64_t next_min = 0;

        while (n < BATCHES_MAX) {
                struct record_batch_header h;

                if (len - at < RECORD_BATCH_HEADER_BYTES)
                        break;
                if (record_batch_parse_header(buf + at, len - at, &h) != RECORD_BATCH_FRAME_OK)
                        break;
                uint32_t size = record_batch_size_bytes(&h);
                if (size > len - at)
                        break;
                if (crc32c_update_sw(0, buf + at + RECORD_BATCH_OFFSET_ATTRIBUTES,
                                     size - RECORD_BATCH_OFFSET_ATTRIBUTES) != h.crc)
                        break;
                int64_t last = record_batch_last_offset(&h);
                if (h.last_offset_delta < 0 || h.base_offset < next_min || last > INT32_MAX)
                        break;
                out[n++] = (struct batch){ at, size, h.base_offset, last };
                next_min = last + 1;
                at += size;
        }
        return n;
}

/* ctl bit 0: the right CRC in every batch that frames. */
static void fix_crcs(uint8_t *buf, size_t len)
{
        size_t at = 0;

        while (len - at >= RECORD_BATCH_HEADER_BYTES) {
                struct record_batch_header h;
                if (record_batch_parse_header(buf + at, len - at, &h) != RECORD_BATCH_FRAME_OK)
                        return;
                uint32_t size = record_batch_size_bytes(&h);
                if (size > len - at)
                        return;
                uint32_t crc = crc32c_update_sw(0, buf + at + RECORD_BATCH_OFFSET_ATTRIBUTES,
                                                size - RECORD_BATCH_OFFSET_ATTRIBUTES);
                buf[at + 17] = (uint8_t)(crc >> 24);
                buf[at + 18] = (uint8_t)(crc >> 16);
                buf[at + 19] = (uint8_t)(crc >> 8);
                buf[at + 20] = (uint8_t)crc;
                at += size;
        }
}

/* A one-record batch at base_offset, as a producer's after assignment. */
static size_t new_batch(uint8_t *out, size_t cap, int64_t base_offset)
{
        struct record_spec r = { { (const uint8_t *)"k", 1 }, { (const uint8_t *)"appended", 8 }, 1700000000000LL,
                                 NULL, 0 };
        struct record_batch_spec spec;

        record_batch_spec_init(&spec, &r, 1);
        spec.base_offset = base_offset;
        return record_batch_encode(&spec, out, cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const uint32_t intervals[] = { 0, 64, 512, 4096 };
        static struct batch batches[BATCHES_MAX];
        struct segment_config cfg = { .index_bytes_max = 64 << 10 };
        struct segment seg;
        struct segment_scan scan;
        uint8_t ctl;
        uint8_t *log;
        size_t len;
        int rc;

        if (size < 1 || size > (1 << 20))
                return 0;
        make_dir();
        ctl = data[0];
        len = size - 1;
        log = fuzz_dup(data + 1, len);
        if (ctl & 1)
                fix_crcs(log, len);
        cfg.index_interval_bytes = intervals[(ctl >> 1) & 3];
        write_file(".log", log, len);
        if (ctl & 8) {
                write_file(".index", data, size < 80 ? size : 80);
                write_file(".timeindex", data, size < 120 ? size : 120);
        }

        uint32_t count = walk(log, len, batches);
        uint32_t valid_bytes = count ? batches[count - 1].position + batches[count - 1].size : 0;
        int64_t next_offset = count ? batches[count - 1].last_offset + 1 : 0;

        rc = segment_open(&seg, &part_dir, 0, &cfg);
        FUZZ_CHECK(rc == 0, "segment_open: %s", strerror(-rc));
        rc = segment_recover(&seg, &scan);
        FUZZ_CHECK(rc == 0, "segment_recover: %s", strerror(-rc));
        FUZZ_CHECK(scan.batch_count == count, "recovery kept %u batches, %u are valid", scan.batch_count, count);
        FUZZ_CHECK(seg.size_bytes == valid_bytes && scan.valid_bytes == valid_bytes,
                   "recovery cut at %u, the valid batches end at %u", seg.size_bytes, valid_bytes);
        FUZZ_CHECK(seg.next_offset == next_offset, "next offset %lld, want %lld", (long long)seg.next_offset,
                   (long long)next_offset);
        struct stat st;
        FUZZ_CHECK(fstat(seg.log_fd, &st) == 0 && (uint64_t)st.st_size == valid_bytes,
                   "the .log is %lld bytes after recovery, want %u", (long long)st.st_size, valid_bytes);

        /* Every offset of every kept batch is found in its batch. Offsets
         * may jump (as after compaction); an offset in a gap finds the next
         * batch. Bounded: at most 64 offsets per batch are asked. */
        for (uint32_t i = 0; i < count; i++) {
                const struct batch *b = &batches[i];
                int64_t step = (b->last_offset - b->base_offset) / 64 + 1;
                for (int64_t o = b->base_offset; o <= b->last_offset; o += step) {
                        struct segment_batch_location loc;
                        rc = segment_find_offset(&seg, o, &loc);
                        FUZZ_CHECK(rc == 0 && loc.position_bytes == b->position && loc.size_bytes == b->size,
                                   "offset %lld: rc %d, position %u, want batch %u at %u", (long long)o, rc,
                                   loc.position_bytes, i, b->position);
                }
        }

        /* Appends go on right after the kept batches. */
        uint8_t batch[256];
        size_t n = new_batch(batch, sizeof(batch), next_offset);
        uint32_t position = 0;
        rc = segment_append(&seg, batch, n, &position);
        if (next_offset <= INT32_MAX) {
                FUZZ_CHECK(rc == 0, "append at %lld: %s", (long long)next_offset, strerror(-rc));
                FUZZ_CHECK(position == valid_bytes, "append at byte %u, want %u", position, valid_bytes);
        } else {
                FUZZ_CHECK(rc == -ERANGE, "append past the segment's range: %d", rc);
        }
        int64_t end = seg.next_offset;
        uint32_t end_bytes = seg.size_bytes;
        rc = segment_close(&seg);
        FUZZ_CHECK(rc == 0, "segment_close: %s", strerror(-rc));

        /* And it opens again, everything in place, no recovery needed. */
        rc = segment_open(&seg, &part_dir, 0, &cfg);
        FUZZ_CHECK(rc == 0, "segment_open again: %s", strerror(-rc));
        FUZZ_CHECK(seg.next_offset == end && seg.size_bytes == end_bytes && !seg.is_tail_dirty,
                   "reopened at %lld (%u bytes), closed at %lld (%u bytes)", (long long)seg.next_offset,
                   seg.size_bytes, (long long)end, end_bytes);
        segment_close(&seg);

        remove_files();
        free(log);
        return 0;
}
