/*
 * segment.c - a segment's .log, .index and .timeindex; see segment.h for
 * the contract and the invariants.
 *
 * Kafka behaviour followed here, from storage/.../log/LogSegment.java,
 * OffsetIndex.java, TimeIndex.java, AbstractIndex.java and clients/.../
 * record/FileRecords.java, FileLogInputStream.java, and for append and
 * close from the Kafka 4.4.0 jars themselves (javap of LogSegment), whose
 * output for a known sequence of appends test_segment.c reproduces:
 *   - append, per batch of the append: if its maxTimestamp is above the
 *     largest so far, (maxTimestamp, its last offset) becomes the largest;
 *     then, if bytesSinceLastIndexEntry > indexIntervalBytes, an entry
 *     (the batch's LAST offset, the batch's position) goes into the offset
 *     index, (largest timestamp, its offset) is offered to the time index,
 *     and the count restarts; then the batch's size is counted. (Kafka 3.x
 *     did this once per append with the append's largest offset and start
 *     position; for the usual one-batch append the two agree.)
 *   - recover: reset both indexes, walk every batch checking it (size and
 *     CRC), index with `validBytes - lastIndexEntry > indexIntervalBytes`,
 *     cut the .log at the last valid batch, add the final time index entry,
 *     trim both indexes;
 *   - translateOffset: index floor entry, then the first batch whose LAST
 *     offset is >= the target;
 *   - findOffsetByTimestamp: time index floor entry, offset index floor of
 *     max(that offset, startingOffset), then the first record with
 *     timestamp >= target and offset >= startingOffset in a batch whose
 *     maxTimestamp >= target;
 *   - truncateTo: translate first, truncate both indexes to the offset,
 *     resize them to the maximum, cut the .log at the batch, reset the
 *     byte count, recompute the largest timestamp;
 *   - onBecomeInactiveSegment / close: final time index entry (allowed
 *     into the reserved slot), trim the indexes to their entries.
 *
 * Reading batches from the file goes through struct segment_walk: one
 * buffer on the stack, refilled by pread, that a walk over batch headers
 * moves along; CRCs of batches larger than the buffer are computed in
 * streaming fashion, so no walk allocates, whatever the batch sizes.
 */
#include "segment.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../protocol/crc32c.h"
#include "../protocol/gen/errors.h"
#include "../protocol/record_batch.h"

#define SEGMENT_WALK_BUFFER_BYTES 16384u
#define SEGMENT_FILE_MODE 0644
/* Index files larger than this are not Kafka's and are rebuilt. */
#define SEGMENT_INDEX_FILE_BYTES_MAX ((uint64_t)INT32_MAX)

/* ---- syscalls ---- */

static int segment_pwrite_all(int fd, const void *buf, size_t len, uint64_t position)
{
        const uint8_t *p = buf;

        while (len > 0) {
                ssize_t n = pwrite(fd, p, len, (off_t)position);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                assert(n > 0);
                p += n;
                len -= (size_t)n;
                position += (uint64_t)n;
        }
        return 0;
}

/* Reads len bytes unless the file ends first; *got_out says how many. */
static int segment_pread_all(int fd, void *buf, size_t len, uint64_t position, size_t *got_out)
{
        uint8_t *p = buf;
        size_t got = 0;

        while (got < len) {
                ssize_t n = pread(fd, p + got, len - got, (off_t)(position + got));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        *got_out = got;
        return 0;
}

static int segment_ftruncate(int fd, uint64_t size_bytes)
{
        while (ftruncate(fd, (off_t)size_bytes) < 0) {
                if (errno != EINTR)
                        return -errno;
        }
        return 0;
}

static int segment_file_size(int fd, uint64_t *size_out)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        *size_out = (uint64_t)st.st_size;
        return 0;
}

/* Gives [position, position + len) of fd disk blocks, so that stores into
 * a shared mapping of it cannot fault for want of space. Where fallocate
 * is not supported the range is written with zeros, which it must hold
 * anyway (the part of an index past its entries). */
static int segment_allocate(int fd, uint64_t position, uint64_t len)
{
        static const uint8_t zeros[4096];

        while (fallocate(fd, 0, (off_t)position, (off_t)len) < 0) {
                if (errno == EINTR)
                        continue;
                if (errno != EOPNOTSUPP)
                        return -errno;
                while (len > 0) {
                        size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
                        int rc = segment_pwrite_all(fd, zeros, n, position);

                        if (rc < 0)
                                return rc;
                        position += n;
                        len -= n;
                }
                return 0;
        }
        return 0;
}

static int segment_fdatasync(int fd)
{
        while (fdatasync(fd) < 0) {
                if (errno != EINTR)
                        return -errno;
        }
        return 0;
}

/* A segment's file: `<base><suffix><tail>`, the tail ".cleaned" for a
 * segment the cleaner writes (segment_config.file_tail), else empty. */
static void segment_seg_file_name(char out[SEGMENT_FILE_NAME_BYTES], const struct segment *seg, const char *suffix)
{
        segment_file_name_tail(out, seg->base_offset, suffix, seg->config.file_tail);
}

static int segment_open_file(const struct segment *seg, const char *suffix, int flags)
{
        char name[SEGMENT_FILE_NAME_BYTES];

        segment_seg_file_name(name, seg, suffix);
        return logdir_ref_openat(seg->dir, name, flags, SEGMENT_FILE_MODE);
}

static void segment_unlink_file(const struct segment *seg, const char *suffix)
{
        char name[SEGMENT_FILE_NAME_BYTES];

        segment_seg_file_name(name, seg, suffix);
        (void)logdir_ref_unlink(seg->dir, name);
}

static void segment_close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* "<log dir>/<partition dir>/<base><suffix>" for log lines; the log dir
 * comes from /proc. A name too long for buf is cut: it is only shown. */
static const char *segment_describe(const struct segment *seg, const char *suffix, char *buf, size_t len)
{
        char link[64], dir[PATH_MAX], name[SEGMENT_FILE_NAME_BYTES];
        ssize_t n;

        segment_seg_file_name(name, seg, suffix);
        snprintf(link, sizeof(link), "/proc/self/fd/%d", seg->dir->parent_fd);
        n = readlink(link, dir, sizeof(dir) - 1);
        if (n < 0)
                n = 0;
        dir[n] = '\0';
        if (snprintf(buf, len, "%s/%s/%s", n > 0 ? dir : "?", seg->dir->name, name) < 0 && len > 0)
                buf[0] = '\0';
        return buf;
}

/* ---- names and config ---- */

void segment_file_name(char out[SEGMENT_FILE_NAME_BYTES], int64_t base_offset, const char *suffix)
{
        segment_file_name_tail(out, base_offset, suffix, NULL);
}

void segment_file_name_tail(char out[SEGMENT_FILE_NAME_BYTES], int64_t base_offset, const char *suffix,
                            const char *tail)
{
        int n;

        assert(base_offset >= 0);
        if (!tail)
                tail = "";
        assert(strlen(suffix) + strlen(tail) <= SEGMENT_FILE_NAME_BYTES - 21);
        n = snprintf(out, SEGMENT_FILE_NAME_BYTES, "%020" PRId64 "%s%s", base_offset, suffix, tail);
        assert(n > 0 && n < SEGMENT_FILE_NAME_BYTES);
        (void)n;
}

void segment_config_init_default(struct segment_config *config)
{
        config->index_interval_bytes = SEGMENT_INDEX_INTERVAL_BYTES_DEFAULT;
        config->index_bytes_max = SEGMENT_INDEX_BYTES_DEFAULT;
        config->file_tail = NULL;
}

const char *segment_stop_name(enum segment_stop stop)
{
        switch (stop) {
        case SEGMENT_STOP_END:
                return "end of file";
        case SEGMENT_STOP_PARTIAL:
                return "batch cut short by the end of the file";
        case SEGMENT_STOP_BAD_LENGTH:
                return "batch length below the minimum";
        case SEGMENT_STOP_BAD_MAGIC:
                return "magic other than 2";
        case SEGMENT_STOP_BAD_CRC:
                return "CRC mismatch";
        case SEGMENT_STOP_BAD_OFFSET:
                return "offsets out of order or out of the segment's range";
        }
        return "?";
}

static void segment_check(const struct segment *seg)
{
        assert(seg->log_fd >= 0);
        assert(seg->base_offset >= 0);
        assert(seg->next_offset >= seg->base_offset);
        assert(seg->size_bytes <= seg->file_size_bytes);
        assert(seg->is_tail_dirty || seg->size_bytes == seg->file_size_bytes);
        assert(seg->size_bytes <= SEGMENT_LOG_BYTES_MAX);
        assert(seg->offset_index.entry_count == 0 ||
               (offset_index_last(&seg->offset_index).position_bytes < seg->size_bytes &&
                offset_index_last(&seg->offset_index).offset < seg->next_offset));
        assert(seg->time_index.entry_count == 0 ||
               time_index_last(&seg->time_index).offset < seg->next_offset);
        assert(seg->max_timestamp_ms >= time_index_last(&seg->time_index).timestamp_ms);
        assert(seg->pending_count == 0 || (seg->reserved_size_bytes >= seg->size_bytes &&
                                           seg->reserved_next_offset >= seg->next_offset));
        (void)seg;
}

static void segment_init_struct(struct segment *seg, const struct logdir_ref *dir, int64_t base_offset,
                                const struct segment_config *config)
{
        assert(dir != NULL);
        assert(base_offset >= 0);
        assert(config->index_bytes_max >= 2 * TIME_INDEX_ENTRY_BYTES);
        memset(seg, 0, sizeof(*seg));
        seg->dir = dir;
        seg->log_fd = -1;
        seg->base_offset = base_offset;
        seg->next_offset = base_offset;
        seg->max_timestamp_ms = RECORD_BATCH_NO_TIMESTAMP;
        seg->offset_of_max_timestamp = -1;
        seg->config = *config;
        offset_index_init(&seg->offset_index, base_offset, config->index_bytes_max);
        time_index_init(&seg->time_index, base_offset, config->index_bytes_max);
}

/* ---- walking batches in the .log ---- */

struct segment_walk {
        int fd;
        uint32_t position;              /* of the next batch */
        uint32_t end;                   /* walk no further */
        uint32_t buf_position;          /* file position of buf[0] */
        uint32_t buf_len;
        uint8_t buf[SEGMENT_WALK_BUFFER_BYTES];
};

static void segment_walk_init(struct segment_walk *w, int fd, uint32_t position, uint32_t end)
{
        assert(position <= end);
        w->fd = fd;
        w->position = position;
        w->end = end;
        w->buf_position = 0;
        w->buf_len = 0;
}

/* Makes buf hold [position, position + need), reading ahead to end. */
static int segment_walk_fill(struct segment_walk *w, uint32_t position, uint32_t need)
{
        assert(need <= SEGMENT_WALK_BUFFER_BYTES);
        assert(position <= w->end && need <= w->end - position);
        if (position >= w->buf_position && position - w->buf_position + (uint64_t)need <= w->buf_len)
                return 0;

        uint32_t want = w->end - position;
        size_t got;
        int rc;

        if (want > SEGMENT_WALK_BUFFER_BYTES)
                want = SEGMENT_WALK_BUFFER_BYTES;
        rc = segment_pread_all(w->fd, w->buf, want, position, &got);
        if (rc < 0)
                return rc;
        w->buf_position = position;
        w->buf_len = (uint32_t)got;
        if (got < need)
                return -EIO;            /* the file shrank under the walk */
        return 0;
}

/* CRC-32C over [from, to) of the file, through the buffer. */
static int segment_walk_crc(struct segment_walk *w, uint32_t from, uint32_t to, uint32_t *crc_out)
{
        uint32_t crc = 0;
        uint32_t at = from;

        while (at < to) {
                uint32_t chunk = to - at;

                if (chunk > SEGMENT_WALK_BUFFER_BYTES)
                        chunk = SEGMENT_WALK_BUFFER_BYTES;

                int rc = segment_walk_fill(w, at, chunk);

                if (rc < 0)
                        return rc;
                crc = crc32c_update(crc, w->buf + (at - w->buf_position), chunk);
                at += chunk;
        }
        *crc_out = crc;
        return 0;
}

/*
 * The next batch: 1 with its header and position, 0 when the walk stops
 * (reason in *stop), or -errno. Framing as Kafka's FileLogInputStream:
 * too few bytes for a header or for the declared length is the end of the
 * valid data, not an error of the file.
 */
static int segment_walk_next(struct segment_walk *w, bool is_crc_checked, struct record_batch_header *h,
                             uint32_t *position_out, enum segment_stop *stop)
{
        uint32_t avail = w->end - w->position;
        uint32_t need = avail < RECORD_BATCH_HEADER_BYTES ? avail : RECORD_BATCH_HEADER_BYTES;
        int rc;

        if (avail == 0) {
                *stop = SEGMENT_STOP_END;
                return 0;
        }
        rc = segment_walk_fill(w, w->position, need);
        if (rc < 0)
                return rc;
        switch (record_batch_parse_header(w->buf + (w->position - w->buf_position), need, h)) {
        case RECORD_BATCH_FRAME_OK:
                break;
        case RECORD_BATCH_FRAME_END:
        case RECORD_BATCH_FRAME_PARTIAL:
                *stop = SEGMENT_STOP_PARTIAL;
                return 0;
        case RECORD_BATCH_FRAME_BAD_LENGTH:
                *stop = SEGMENT_STOP_BAD_LENGTH;
                return 0;
        case RECORD_BATCH_FRAME_BAD_MAGIC:
                *stop = SEGMENT_STOP_BAD_MAGIC;
                return 0;
        }

        uint32_t size_bytes = record_batch_size_bytes(h);

        if (size_bytes > avail) {
                *stop = SEGMENT_STOP_PARTIAL;
                return 0;
        }
        if (is_crc_checked) {
                uint32_t crc;

                rc = segment_walk_crc(w, w->position + RECORD_BATCH_OFFSET_ATTRIBUTES, w->position + size_bytes,
                                      &crc);
                if (rc < 0)
                        return rc;
                if (crc != h->crc) {
                        *stop = SEGMENT_STOP_BAD_CRC;
                        return 0;
                }
        }
        *position_out = w->position;
        w->position += size_bytes;
        return 1;
}

/* A batch's offsets fit the segment and follow the previous batch. */
static bool segment_batch_offsets_ok(const struct segment *seg, const struct record_batch_header *h,
                                     int64_t next_offset_min)
{
        if (h->last_offset_delta < 0 || h->base_offset < next_offset_min || h->base_offset < seg->base_offset)
                return false;
        return offset_index_can_hold(&seg->offset_index, record_batch_last_offset(h));
}

/*
 * Walks the .log from position to end. With is_index_built the indexes and
 * the largest timestamp are rebuilt from scratch, as Kafka's recover does
 * (position must then be 0); the caller writes the index files.
 */
static int segment_walk_log(struct segment *seg, uint32_t position, uint32_t end, bool is_crc_checked,
                            bool is_index_built, struct segment_scan *out)
{
        struct segment_walk walk, *w = &walk;
        struct record_batch_header h;
        int64_t next_offset = position == 0 ? seg->base_offset : -1;
        int64_t max_ts = RECORD_BATCH_NO_TIMESTAMP, offset_of_max_ts = -1;
        uint32_t last_index_entry = 0;
        bool is_index_room_logged = false;
        int rc;

        assert(!is_index_built || position == 0);
        memset(out, 0, sizeof(*out));
        out->valid_bytes = position;
        out->next_offset = -1;
        if (is_index_built) {
                offset_index_truncate_to_entries(&seg->offset_index, 0);
                time_index_truncate_to_entries(&seg->time_index, 0);
        }
        segment_walk_init(w, seg->log_fd, position, end);
        for (;;) {
                uint32_t at;

                rc = segment_walk_next(w, is_crc_checked, &h, &at, &out->stop);
                if (rc < 0)
                        return rc;
                if (rc == 0) {
                        out->stop_position_bytes = w->position;
                        break;
                }
                if (!segment_batch_offsets_ok(seg, &h, next_offset)) {
                        out->stop = SEGMENT_STOP_BAD_OFFSET;
                        out->stop_position_bytes = at;
                        break;
                }

                int64_t last = record_batch_last_offset(&h);

                if (is_index_built) {
                        uint8_t entry[TIME_INDEX_ENTRY_BYTES];

                        if (h.max_timestamp_ms > max_ts) {
                                max_ts = h.max_timestamp_ms;
                                offset_of_max_ts = last;
                        }
                        if (at - last_index_entry > seg->config.index_interval_bytes) {
                                rc = offset_index_append(&seg->offset_index, last, at, entry);
                                if (rc == 0)
                                        rc = time_index_maybe_append(&seg->time_index, max_ts, offset_of_max_ts,
                                                                     false, entry);
                                if (rc == -ENOSPC) {
                                        /* Written under a larger segment.index.bytes:
                                         * the indexes get sparser, lookups stay right. */
                                        if (!is_index_room_logged)
                                                log_warn("segment %020" PRId64 ": index full while rebuilding at "
                                                         "byte %u; later entries skipped", seg->base_offset, at);
                                        is_index_room_logged = true;
                                } else if (rc < 0) {
                                        return rc;
                                }
                                last_index_entry = at;
                        }
                }
                out->valid_bytes = at + record_batch_size_bytes(&h);
                out->next_offset = last + 1;
                out->batch_count++;
                next_offset = last + 1;
        }
        if (is_index_built) {
                seg->max_timestamp_ms = max_ts;
                seg->offset_of_max_timestamp = offset_of_max_ts;
        }
        return 0;
}

/* ---- index files ----
 *
 * No descriptor of an index file stays open: a segment holds its .log
 * open and nothing else, as Kafka holds one channel per segment. While a
 * segment takes appends its two index files are preallocated and mapped
 * shared and writable (Kafka's MappedByteBuffer), so writing an entry is
 * a store into the page cache, as pwrite was; the descriptors used to set
 * the mapping up are closed at once. Resizing, trimming and the rare
 * whole-file writes (recovery, a rebuild) open the file by name for the
 * moment they need it. A mapping never outlives a shrink of its file:
 * every resize unmaps first.
 */

static int segment_open_index(const struct segment *seg, const char *suffix)
{
        return segment_open_file(seg, suffix, O_RDWR);
}

static void segment_unmap_for_write(uint8_t **map, size_t *map_bytes)
{
        if (*map != NULL)
                munmap(*map, *map_bytes);
        *map = NULL;
        *map_bytes = 0;
}

static void segment_unmap_indexes_for_write(struct segment *seg)
{
        segment_unmap_for_write(&seg->offset_index_map, &seg->offset_index_map_bytes);
        segment_unmap_for_write(&seg->time_index_map, &seg->time_index_map_bytes);
        seg->offset_index_reserved_bytes = 0;
        seg->time_index_reserved_bytes = 0;
}

/* Opens both index files: 0 with both descriptors, or -errno with none. */
static int segment_open_indexes(const struct segment *seg, int *oi_fd, int *ti_fd)
{
        *oi_fd = segment_open_index(seg, OFFSET_INDEX_FILE_SUFFIX);
        if (*oi_fd < 0)
                return *oi_fd;
        *ti_fd = segment_open_index(seg, TIME_INDEX_FILE_SUFFIX);
        if (*ti_fd < 0) {
                int rc = *ti_fd;

                segment_close_fd(oi_fd);
                return rc;
        }
        return 0;
}

static int segment_resize_index_files(int oi_fd, int ti_fd, uint32_t offset_index_bytes, uint32_t time_index_bytes)
{
        int rc = segment_ftruncate(oi_fd, offset_index_bytes);

        if (rc == 0)
                rc = segment_ftruncate(ti_fd, time_index_bytes);
        return rc;
}

static int segment_map_for_write(int fd, uint32_t len, uint8_t **map, size_t *map_bytes)
{
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return -errno;
        *map = p;
        *map_bytes = len;
        return 0;
}

/*
 * Makes both index files ready for appends: grown to their maximum with
 * whatever lies past the entries zeroed (stale entries after a
 * truncation), and mapped for writing.
 */
static int segment_preallocate_indexes(struct segment *seg)
{
        uint32_t oi_max = offset_index_file_bytes_max(&seg->offset_index);
        uint32_t ti_max = time_index_file_bytes_max(&seg->time_index);
        int oi_fd, ti_fd, rc;

        if (seg->is_index_preallocated && seg->offset_index_map != NULL && seg->time_index_map != NULL)
                return 0;
        rc = segment_open_indexes(seg, &oi_fd, &ti_fd);
        if (rc < 0)
                return rc;
        /* Both resized every time: a file left preallocated by an unclean
         * stop may have another length, and a mapping past the end of its
         * file would fault. */
        segment_unmap_indexes_for_write(seg);
        seg->is_index_preallocated = true;      /* sizes unknown until trimmed */
        rc = segment_resize_index_files(oi_fd, ti_fd, offset_index_size_bytes(&seg->offset_index),
                                        time_index_size_bytes(&seg->time_index));
        if (rc == 0)
                rc = segment_resize_index_files(oi_fd, ti_fd, oi_max, ti_max);
        if (rc == 0)
                rc = segment_map_for_write(oi_fd, oi_max, &seg->offset_index_map, &seg->offset_index_map_bytes);
        if (rc == 0)
                rc = segment_map_for_write(ti_fd, ti_max, &seg->time_index_map, &seg->time_index_map_bytes);
        if (rc < 0) {
                segment_unmap_indexes_for_write(seg);
        } else {
                /* The entries kept their blocks through the resizes; the
                 * rest is a hole until segment_reserve_indexes. */
                seg->offset_index_reserved_bytes = offset_index_size_bytes(&seg->offset_index);
                seg->time_index_reserved_bytes = time_index_size_bytes(&seg->time_index);
        }

        segment_close_fd(&ti_fd);
        segment_close_fd(&oi_fd);
        return rc;
}

/*
 * Index files are sparse while preallocated, and entries are stored into
 * their mappings: on a full file system a store into a page without a
 * block is a SIGBUS (tmpfs, ext4 and xfs alike), which would kill the
 * broker. So the bytes the next entries go into get their blocks first,
 * with fallocate, SEGMENT_INDEX_RESERVE_BYTES ahead so that this happens
 * once every few thousand entries; a full disk is then an -ENOSPC before
 * the append has written anything.
 */
#define SEGMENT_INDEX_RESERVE_BYTES (64u << 10)
#define SEGMENT_PAGE_BYTES 4096u

static int segment_reserve_index(const struct segment *seg, const char *suffix, size_t map_bytes,
                                 uint32_t *reserved_bytes, uint64_t need_bytes)
{
        uint64_t want;
        int fd, rc;

        if (need_bytes > map_bytes)
                need_bytes = map_bytes;
        if (need_bytes <= *reserved_bytes)
                return 0;
        want = (need_bytes + SEGMENT_INDEX_RESERVE_BYTES + SEGMENT_PAGE_BYTES - 1) & ~(uint64_t)(SEGMENT_PAGE_BYTES - 1);
        if (want > map_bytes)
                want = map_bytes;
        fd = segment_open_index(seg, suffix);
        if (fd < 0)
                return fd;
        rc = segment_allocate(fd, *reserved_bytes, want - *reserved_bytes);
        close(fd);
        if (rc < 0)
                return rc;
        *reserved_bytes = (uint32_t)want;
        return 0;
}

/* Room with blocks for entries_needed more entry pairs, and for the final
 * time index entry a seal adds. */
static int segment_reserve_indexes(struct segment *seg, uint32_t entries_needed)
{
        uint64_t oi_need = ((uint64_t)seg->offset_index.entry_count + entries_needed) * OFFSET_INDEX_ENTRY_BYTES;
        uint64_t ti_need = ((uint64_t)seg->time_index.entry_count + entries_needed + 1) * TIME_INDEX_ENTRY_BYTES;
        int rc;

        assert(seg->offset_index_map != NULL && seg->time_index_map != NULL);
        rc = segment_reserve_index(seg, OFFSET_INDEX_FILE_SUFFIX, seg->offset_index_map_bytes,
                                   &seg->offset_index_reserved_bytes, oi_need);
        if (rc == 0)
                rc = segment_reserve_index(seg, TIME_INDEX_FILE_SUFFIX, seg->time_index_map_bytes,
                                           &seg->time_index_reserved_bytes, ti_need);
        return rc;
}

/* Unmaps both indexes and cuts the files to their entries. */
static int segment_trim_indexes(struct segment *seg)
{
        int oi_fd, ti_fd;
        int rc = segment_open_indexes(seg, &oi_fd, &ti_fd);

        if (rc < 0)
                return rc;
        segment_unmap_indexes_for_write(seg);
        rc = segment_resize_index_files(oi_fd, ti_fd, offset_index_size_bytes(&seg->offset_index),
                                        time_index_size_bytes(&seg->time_index));
        if (rc == 0)
                seg->is_index_preallocated = false;
        segment_close_fd(&ti_fd);
        segment_close_fd(&oi_fd);
        return rc;
}

/* Writes len bytes of an index file at position: into its mapping while
 * the segment is preallocated, else through a descriptor of the moment. */
static int segment_write_index_bytes(struct segment *seg, const char *suffix, uint8_t *map, size_t map_bytes,
                                     const uint8_t *bytes, size_t len, uint32_t position)
{
        if (map != NULL) {
                assert((uint64_t)position + len <= map_bytes);
                assert((uint64_t)position + len <= (map == seg->offset_index_map ? seg->offset_index_reserved_bytes
                                                                                : seg->time_index_reserved_bytes));
                memcpy(map + position, bytes, len);
                return 0;
        }

        int fd = segment_open_index(seg, suffix);
        int rc;

        if (fd < 0)
                return fd;
        rc = segment_pwrite_all(fd, bytes, len, position);
        close(fd);
        return rc;
}

/* Writes both indexes whole, trimmed to their entries. */
static int segment_write_indexes(struct segment *seg)
{
        uint32_t oi_bytes = offset_index_size_bytes(&seg->offset_index);
        uint32_t ti_bytes = time_index_size_bytes(&seg->time_index);
        uint8_t *buf = malloc((oi_bytes > ti_bytes ? oi_bytes : ti_bytes) + 1);
        int oi_fd = -1, ti_fd = -1;
        int rc;

        if (buf == NULL)
                return -ENOMEM;
        rc = segment_open_indexes(seg, &oi_fd, &ti_fd);
        if (rc < 0)
                goto out_free;
        segment_unmap_indexes_for_write(seg);
        seg->is_index_preallocated = true;      /* sizes unknown until trimmed */
        offset_index_encode(&seg->offset_index, buf, oi_bytes);
        rc = segment_pwrite_all(oi_fd, buf, oi_bytes, 0);
        if (rc < 0)
                goto out_close;
        time_index_encode(&seg->time_index, buf, ti_bytes);
        rc = segment_pwrite_all(ti_fd, buf, ti_bytes, 0);
        if (rc < 0)
                goto out_close;
        rc = segment_resize_index_files(oi_fd, ti_fd, oi_bytes, ti_bytes);
        if (rc == 0)
                seg->is_index_preallocated = false;
out_close:
        segment_close_fd(&ti_fd);
        segment_close_fd(&oi_fd);
out_free:
        free(buf);
        return rc;
}

/* Creates an empty index file (truncating a stale one); keeps no descriptor. */
static int segment_create_index_file(const struct segment *seg, const char *suffix)
{
        int fd = segment_open_file(seg, suffix, O_RDWR | O_CREAT | O_TRUNC);

        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

/* Makes an index file durable: its mapping when it has one, then the file. */
static int segment_sync_index(const struct segment *seg, const char *suffix, uint8_t *map, size_t map_bytes)
{
        int fd, rc;

        if (map != NULL && msync(map, map_bytes, MS_SYNC) < 0)
                return -errno;
        fd = segment_open_index(seg, suffix);
        if (fd < 0)
                return fd;
        rc = segment_fdatasync(fd);
        close(fd);
        return rc;
}

/* Maps a whole index file read-only; *bytes is NULL for an empty one.
 * The mapping keeps no descriptor. */
static int segment_map_index(const struct segment *seg, const char *suffix, const uint8_t **bytes, size_t *len)
{
        uint64_t size = 0;
        int fd = segment_open_index(seg, suffix);
        int rc;

        *bytes = NULL;
        *len = 0;
        if (fd < 0)
                return fd;
        rc = segment_file_size(fd, &size);
        if (rc < 0)
                goto out_close;
        if (size > SEGMENT_INDEX_FILE_BYTES_MAX) {
                rc = -EFBIG;
                goto out_close;
        }
        if (size == 0)
                goto out_close;

        void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);

        if (p == MAP_FAILED) {
                rc = -errno;
                goto out_close;
        }
        *bytes = p;
        *len = (size_t)size;
out_close:
        close(fd);
        return rc;
}

static void segment_unmap_index(const uint8_t *bytes, size_t len)
{
        if (bytes != NULL)
                munmap((void *)bytes, len);
}

/*
 * From the last offset index entry to the end of the .log, over batch
 * headers only: finds size_bytes and next_offset, and the largest
 * timestamp, seeded from the time index (whose last entry covers every
 * batch before the last offset index entry: both are written together).
 * Returns 1 when the walk reached the end of the file exactly, 0 when it
 * stopped early (in *out), or -errno.
 */
static int segment_walk_tail(struct segment *seg, struct segment_scan *out)
{
        struct offset_index_entry from = offset_index_last(&seg->offset_index);
        struct segment_walk walk, *w = &walk;
        struct record_batch_header h;
        struct time_index_entry t = time_index_last(&seg->time_index);
        int64_t max_ts = t.timestamp_ms, offset_of_max_ts = t.timestamp_ms >= 0 ? t.offset : -1;
        int64_t next_offset = seg->base_offset;
        bool is_first = true;
        int rc;

        memset(out, 0, sizeof(*out));
        out->valid_bytes = from.position_bytes;
        segment_walk_init(w, seg->log_fd, from.position_bytes, seg->file_size_bytes);
        for (;;) {
                uint32_t at;

                rc = segment_walk_next(w, false, &h, &at, &out->stop);
                if (rc < 0)
                        return rc;
                if (rc == 0)
                        break;
                /* An entry's offset is the largest of an append that starts
                 * at its position, so the first batch there starts at or
                 * below it. */
                if ((is_first && seg->offset_index.entry_count > 0 && h.base_offset > from.offset) ||
                    !segment_batch_offsets_ok(seg, &h, next_offset)) {
                        out->stop = SEGMENT_STOP_BAD_OFFSET;
                        break;
                }
                is_first = false;
                if (h.max_timestamp_ms > max_ts) {
                        max_ts = h.max_timestamp_ms;
                        offset_of_max_ts = record_batch_last_offset(&h);
                }
                next_offset = record_batch_next_offset(&h);
                out->valid_bytes = at + record_batch_size_bytes(&h);
                out->batch_count++;
        }
        out->stop_position_bytes = out->valid_bytes;
        out->next_offset = next_offset;
        if (seg->offset_index.entry_count > 0 && from.offset >= next_offset)
                out->stop = SEGMENT_STOP_BAD_OFFSET;    /* the index points past the data */
        seg->max_timestamp_ms = max_ts;
        seg->offset_of_max_timestamp = offset_of_max_ts;
        return out->stop == SEGMENT_STOP_END ? 1 : 0;
}

/* Rebuilds both indexes from the batch headers (no CRC), without cutting
 * the .log; a torn tail is left for segment_recover. */
static int segment_rebuild_indexes(struct segment *seg, const char *why)
{
        struct segment_scan scan;
        char what[PATH_MAX + 64];
        int rc;

        log_warn("rebuilding the indexes of %s: %s", segment_describe(seg, SEGMENT_LOG_FILE_SUFFIX, what,
                                                                     sizeof(what)), why);
        rc = segment_walk_log(seg, 0, seg->file_size_bytes, false, true, &scan);
        if (rc < 0)
                return rc;
        seg->size_bytes = scan.valid_bytes;
        seg->next_offset = scan.next_offset >= 0 ? scan.next_offset : seg->base_offset;
        seg->is_tail_dirty = scan.valid_bytes != seg->file_size_bytes;
        if (seg->is_tail_dirty)
                log_warn("%s: %u bytes after byte %u are not whole batches (%s); recovery will cut them",
                         what, seg->file_size_bytes - scan.valid_bytes, scan.valid_bytes,
                         segment_stop_name(scan.stop));
        return segment_write_indexes(seg);
}

static int segment_load_indexes(struct segment *seg)
{
        const uint8_t *bytes;
        size_t len;
        struct segment_scan tail;
        bool is_preallocated = false;
        int rc;

        rc = segment_map_index(seg, OFFSET_INDEX_FILE_SUFFIX, &bytes, &len);
        if (rc == -EFBIG)
                return segment_rebuild_indexes(seg, "offset index file too large");
        if (rc < 0)
                return rc;
        rc = offset_index_load(&seg->offset_index, bytes, len, seg->file_size_bytes);
        is_preallocated |= len != offset_index_size_bytes(&seg->offset_index);
        segment_unmap_index(bytes, len);
        if (rc == -EINVAL)
                return segment_rebuild_indexes(seg, "offset index entries out of order or past the log");
        if (rc < 0)
                return rc;

        /* The time index seeds the largest timestamp of the tail walk;
         * load it unchecked first, check it against next_offset after. */
        rc = segment_map_index(seg, TIME_INDEX_FILE_SUFFIX, &bytes, &len);
        if (rc == -EFBIG)
                return segment_rebuild_indexes(seg, "time index file too large");
        if (rc < 0)
                return rc;
        rc = time_index_load(&seg->time_index, bytes, len, INT64_MAX);
        if (rc == -EINVAL) {
                segment_unmap_index(bytes, len);
                return segment_rebuild_indexes(seg, "time index entries out of order");
        }
        if (rc < 0) {
                segment_unmap_index(bytes, len);
                return rc;
        }

        rc = segment_walk_tail(seg, &tail);
        if (rc < 0) {
                segment_unmap_index(bytes, len);
                return rc;
        }
        if (rc == 0) {
                segment_unmap_index(bytes, len);
                return segment_rebuild_indexes(seg, "the .log does not end where the indexes say");
        }
        seg->size_bytes = tail.valid_bytes;
        seg->next_offset = tail.next_offset;
        rc = time_index_load(&seg->time_index, bytes, len, seg->next_offset);
        is_preallocated |= len != time_index_size_bytes(&seg->time_index);
        segment_unmap_index(bytes, len);
        if (rc == -EINVAL)
                return segment_rebuild_indexes(seg, "time index points past the log");
        if (rc < 0)
                return rc;
        /* Left preallocated by an unclean stop: trimmed when sealed. */
        seg->is_index_preallocated = is_preallocated;
        return 0;
}

/* ---- lifecycle ---- */

int segment_create(struct segment *seg, const struct logdir_ref *dir, int64_t base_offset,
                   const struct segment_config *config)
{
        int rc;

        segment_init_struct(seg, dir, base_offset, config);
        rc = segment_open_file(seg, SEGMENT_LOG_FILE_SUFFIX, O_RDWR | O_CREAT | O_EXCL);
        if (rc < 0)
                goto out_free;
        seg->log_fd = rc;
        rc = segment_create_index_file(seg, OFFSET_INDEX_FILE_SUFFIX);
        if (rc < 0)
                goto out_unlink_log;
        rc = segment_create_index_file(seg, TIME_INDEX_FILE_SUFFIX);
        if (rc < 0)
                goto out_unlink_offset_index;
        rc = segment_preallocate_indexes(seg);
        if (rc < 0)
                goto out_unlink_time_index;
        rc = logdir_ref_fsync(dir);
        if (rc < 0)
                goto out_unlink_time_index;
        segment_check(seg);
        return 0;

out_unlink_time_index:
        segment_unmap_indexes_for_write(seg);
        segment_unlink_file(seg, TIME_INDEX_FILE_SUFFIX);
out_unlink_offset_index:
        segment_unlink_file(seg, OFFSET_INDEX_FILE_SUFFIX);
out_unlink_log:
        segment_close_fd(&seg->log_fd);
        segment_unlink_file(seg, SEGMENT_LOG_FILE_SUFFIX);
out_free:
        offset_index_free(&seg->offset_index);
        time_index_free(&seg->time_index);
        return rc;
}

/* Checks that an index file can be opened, creating it (and saying so)
 * when missing; keeps no descriptor. */
static int segment_check_index_file(const struct segment *seg, const char *suffix, bool *is_missing)
{
        int fd = segment_open_index(seg, suffix);

        if (fd == -ENOENT) {
                *is_missing = true;
                fd = segment_open_file(seg, suffix, O_RDWR | O_CREAT | O_EXCL);
        }
        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

int segment_open(struct segment *seg, const struct logdir_ref *dir, int64_t base_offset,
                 const struct segment_config *config)
{
        bool is_index_missing = false;
        uint64_t size = 0;
        int rc;

        segment_init_struct(seg, dir, base_offset, config);
        rc = segment_open_file(seg, SEGMENT_LOG_FILE_SUFFIX, O_RDWR);
        if (rc < 0)
                goto out_free;
        seg->log_fd = rc;
        rc = segment_file_size(seg->log_fd, &size);
        if (rc < 0)
                goto out_close;
        if (size > SEGMENT_LOG_BYTES_MAX) {
                rc = -EFBIG;
                goto out_close;
        }
        seg->file_size_bytes = (uint32_t)size;
        /* Kafka rebuilds a missing index from the .log, and so does this. */
        rc = segment_check_index_file(seg, OFFSET_INDEX_FILE_SUFFIX, &is_index_missing);
        if (rc < 0)
                goto out_close;
        rc = segment_check_index_file(seg, TIME_INDEX_FILE_SUFFIX, &is_index_missing);
        if (rc < 0)
                goto out_close;
        if (is_index_missing)
                rc = segment_rebuild_indexes(seg, "index file missing");
        else
                rc = segment_load_indexes(seg);
        if (rc < 0)
                goto out_close;
        segment_check(seg);
        return 0;

out_close:
        segment_unmap_indexes_for_write(seg);
        segment_close_fd(&seg->log_fd);
out_free:
        offset_index_free(&seg->offset_index);
        time_index_free(&seg->time_index);
        return rc;
}

/* Writes the final time index entry (into the reserved slot if need be). */
static int segment_append_final_time_entry(struct segment *seg)
{
        uint8_t entry[TIME_INDEX_ENTRY_BYTES];
        int rc = time_index_maybe_append(&seg->time_index, seg->max_timestamp_ms, seg->offset_of_max_timestamp,
                                         true, entry);

        if (rc == -ENOSPC)
                return 0;               /* only when rebuilt from a bigger index: sparser, still right */
        assert(rc != -EINVAL && rc != -ERANGE);
        if (rc <= 0)
                return rc;
        rc = 0;
        if (seg->time_index_map != NULL)
                rc = segment_reserve_index(seg, TIME_INDEX_FILE_SUFFIX, seg->time_index_map_bytes,
                                           &seg->time_index_reserved_bytes, time_index_size_bytes(&seg->time_index));
        if (rc == 0)
                rc = segment_write_index_bytes(seg, TIME_INDEX_FILE_SUFFIX, seg->time_index_map,
                                               seg->time_index_map_bytes, entry, sizeof(entry),
                                               time_index_size_bytes(&seg->time_index) - TIME_INDEX_ENTRY_BYTES);
        if (rc < 0)
                time_index_truncate_to_entries(&seg->time_index, seg->time_index.entry_count - 1);
        return rc;
}

int segment_seal(struct segment *seg)
{
        int rc;

        segment_check(seg);
        assert(seg->pending_count == 0);
        rc = segment_append_final_time_entry(seg);
        if (rc < 0)
                return rc;
        if (!seg->is_index_preallocated)
                return 0;
        return segment_trim_indexes(seg);
}

int segment_close(struct segment *seg)
{
        int rc = 0;

        if (seg->log_fd >= 0)
                rc = segment_seal(seg);
        segment_abandon(seg);
        return rc;
}

void segment_abandon(struct segment *seg)
{
        segment_unmap_indexes_for_write(seg);
        segment_close_fd(&seg->log_fd);
        offset_index_free(&seg->offset_index);
        time_index_free(&seg->time_index);
}

int segment_flush(struct segment *seg)
{
        int rc;

        segment_check(seg);
        rc = segment_fdatasync(seg->log_fd);
        if (rc == 0)
                rc = segment_sync_index(seg, OFFSET_INDEX_FILE_SUFFIX, seg->offset_index_map,
                                        seg->offset_index_map_bytes);
        if (rc == 0)
                rc = segment_sync_index(seg, TIME_INDEX_FILE_SUFFIX, seg->time_index_map, seg->time_index_map_bytes);
        return rc;
}

/* ---- append ---- */

bool segment_is_index_full(const struct segment *seg)
{
        return offset_index_is_full(&seg->offset_index) || time_index_is_full(&seg->time_index);
}

/* Writes one index entry pair: (offset, position) to the offset index
 * and (max timestamp so far, its offset) offered to the time index. */
static int segment_write_index_entries(struct segment *seg, int64_t offset, uint32_t position)
{
        uint8_t entry[TIME_INDEX_ENTRY_BYTES];
        int rc;

        rc = offset_index_append(&seg->offset_index, offset, position, entry);
        assert(rc == 0 || rc == -ENOMEM);
        if (rc < 0)
                return rc;
        rc = segment_write_index_bytes(seg, OFFSET_INDEX_FILE_SUFFIX, seg->offset_index_map,
                                       seg->offset_index_map_bytes, entry, OFFSET_INDEX_ENTRY_BYTES,
                                       offset_index_size_bytes(&seg->offset_index) - OFFSET_INDEX_ENTRY_BYTES);
        if (rc < 0) {
                offset_index_truncate_to_entries(&seg->offset_index, seg->offset_index.entry_count - 1);
                return rc;
        }
        rc = time_index_maybe_append(&seg->time_index, seg->max_timestamp_ms, seg->offset_of_max_timestamp,
                                     false, entry);
        assert(rc >= 0 || rc == -ENOMEM);
        if (rc <= 0)
                return rc;
        rc = segment_write_index_bytes(seg, TIME_INDEX_FILE_SUFFIX, seg->time_index_map, seg->time_index_map_bytes,
                                       entry, TIME_INDEX_ENTRY_BYTES,
                                       time_index_size_bytes(&seg->time_index) - TIME_INDEX_ENTRY_BYTES);
        if (rc < 0)
                time_index_truncate_to_entries(&seg->time_index, seg->time_index.entry_count - 1);
        return rc;
}

/* The end state appends are reserved against: the pending ones', or the
 * committed one when none is pending. */
static void segment_reserved_end(const struct segment *seg, uint32_t *size_out, int64_t *next_offset_out,
                                 uint32_t *bytes_since_out, uint32_t *index_entries_out)
{
        if (seg->pending_count > 0) {
                *size_out = seg->reserved_size_bytes;
                *next_offset_out = seg->reserved_next_offset;
                *bytes_since_out = seg->reserved_bytes_since_last_index_entry;
                *index_entries_out = seg->reserved_index_entry_count;
        } else {
                *size_out = seg->size_bytes;
                *next_offset_out = seg->next_offset;
                *bytes_since_out = seg->bytes_since_last_index_entry;
                *index_entries_out = 0;
        }
}

uint32_t segment_reserved_size_bytes(const struct segment *seg)
{
        return seg->pending_count > 0 ? seg->reserved_size_bytes : seg->size_bytes;
}

int segment_append_reserve(struct segment *seg, const void *batches, size_t len, uint32_t *position_out)
{
        struct record_batch_iter it;
        struct record_batch_view v;
        enum record_batch_frame f;
        uint32_t position, bytes_since, index_entries, entries_needed = 0;
        int64_t next_offset;
        int rc;

        segment_check(seg);
        assert(batches != NULL && position_out != NULL);
        if (seg->is_tail_dirty)
                return -EUCLEAN;
        if (len == 0)
                return -EINVAL;
        segment_reserved_end(seg, &position, &next_offset, &bytes_since, &index_entries);
        if (len > SEGMENT_LOG_BYTES_MAX - position)
                return SEGMENT_FULL;

        /* Check the whole append before any of it is written, and count
         * the index entries it will make so a full index is caught up front. */
        record_batch_iter_init(&it, batches, len);
        while ((f = record_batch_iter_next(&it, &v)) == RECORD_BATCH_FRAME_OK) {
                if (v.header.base_offset < next_offset || v.header.last_offset_delta < 0)
                        return -EINVAL;
                if (!segment_batch_offsets_ok(seg, &v.header, next_offset))
                        return -ERANGE;
                next_offset = record_batch_next_offset(&v.header);
                if (bytes_since > seg->config.index_interval_bytes) {
                        entries_needed++;
                        bytes_since = 0;
                }
                bytes_since += v.size_bytes;
        }
        if (f != RECORD_BATCH_FRAME_END)
                return -EINVAL;
        index_entries += entries_needed;
        if (seg->offset_index.entry_count + (uint64_t)index_entries > seg->offset_index.entry_count_max ||
            seg->time_index.entry_count + (uint64_t)index_entries + 1 > seg->time_index.entry_count_max)
                return SEGMENT_FULL;
        rc = segment_preallocate_indexes(seg);
        if (rc < 0)
                return rc;
        /* Blocks for the entries of every pending append, this one's
         * included: they are stored at the commits, after the writes. */
        rc = segment_reserve_indexes(seg, index_entries);
        if (rc < 0)
                return rc;

        seg->pending_count++;
        seg->reserved_size_bytes = position + (uint32_t)len;
        seg->reserved_next_offset = next_offset;
        seg->reserved_bytes_since_last_index_entry = bytes_since;
        seg->reserved_index_entry_count = index_entries;
        *position_out = position;
        return 0;
}

int segment_append_commit(struct segment *seg, const void *batches, size_t len, uint32_t position)
{
        struct record_batch_iter it;
        struct record_batch_view v;
        int rc = 0;

        segment_check(seg);
        assert(seg->pending_count > 0);
        assert(position == seg->size_bytes && len <= seg->reserved_size_bytes - position);
        seg->size_bytes = position + (uint32_t)len;
        seg->file_size_bytes = seg->size_bytes;

        /* Kafka 4.4's LogSegment.append, batch by batch: the largest
         * timestamp first, then an entry for this batch (its last offset,
         * its position) if more than the interval has passed, then count
         * its bytes. */
        record_batch_iter_init(&it, batches, len);
        while (record_batch_iter_next(&it, &v) == RECORD_BATCH_FRAME_OK) {
                int64_t last = record_batch_last_offset(&v.header);

                assert(v.header.base_offset >= seg->next_offset);
                seg->next_offset = record_batch_next_offset(&v.header);
                if (v.header.max_timestamp_ms > seg->max_timestamp_ms) {
                        seg->max_timestamp_ms = v.header.max_timestamp_ms;
                        seg->offset_of_max_timestamp = last;
                }
                if (seg->bytes_since_last_index_entry > seg->config.index_interval_bytes) {
                        /* The reserve counted this entry's room. */
                        assert(seg->reserved_index_entry_count > 0);
                        seg->reserved_index_entry_count--;
                        int erc = segment_write_index_entries(seg, last, position);
                        if (erc < 0 && rc == 0)
                                rc = erc;
                        seg->bytes_since_last_index_entry = 0;
                }
                position += v.size_bytes;
                seg->bytes_since_last_index_entry += v.size_bytes;
        }
        assert(position == seg->size_bytes);
        if (--seg->pending_count == 0) {
                assert(seg->reserved_size_bytes == seg->size_bytes);
                assert(seg->reserved_next_offset == seg->next_offset);
                assert(seg->reserved_bytes_since_last_index_entry == seg->bytes_since_last_index_entry);
                assert(seg->reserved_index_entry_count == 0);
        }
        segment_check(seg);
        return rc;
}

int segment_append_abort(struct segment *seg)
{
        uint32_t reserved = segment_reserved_size_bytes(seg);
        int rc;

        segment_check(seg);
        seg->pending_count = 0;
        seg->reserved_index_entry_count = 0;
        /* Whatever part of the pending appends reached the file goes. */
        rc = segment_ftruncate(seg->log_fd, seg->size_bytes);
        if (rc < 0) {
                seg->is_tail_dirty = true;
                seg->file_size_bytes = reserved;
        }
        segment_check(seg);
        return rc;
}

int segment_append(struct segment *seg, const void *batches, size_t len, uint32_t *position_out)
{
        uint32_t position;
        int rc;

        assert(seg->pending_count == 0);
        rc = segment_append_reserve(seg, batches, len, &position);
        if (rc < 0)
                return rc;
        rc = segment_pwrite_all(seg->log_fd, batches, len, position);
        if (rc < 0) {
                /* Undo a partial write; if even that fails the tail is torn. */
                segment_append_abort(seg);
                return rc;
        }
        *position_out = position;
        return segment_append_commit(seg, batches, len, position);
}

/* ---- lookups ---- */

int segment_find_offset(struct segment *seg, int64_t offset, struct segment_batch_location *out)
{
        struct segment_walk walk, *w = &walk;
        struct record_batch_header h;
        enum segment_stop stop = SEGMENT_STOP_END;
        uint32_t at;
        int rc;

        segment_check(seg);
        if (offset >= seg->next_offset)
                return -ENOENT;
        segment_walk_init(w, seg->log_fd, offset_index_lookup(&seg->offset_index, offset).position_bytes,
                          seg->size_bytes);
        while ((rc = segment_walk_next(w, false, &h, &at, &stop)) == 1) {
                if (record_batch_last_offset(&h) >= offset) {
                        out->position_bytes = at;
                        out->size_bytes = record_batch_size_bytes(&h);
                        out->base_offset = h.base_offset;
                        out->last_offset = record_batch_last_offset(&h);
                        break;
                }
        }
        if (rc < 0)
                return rc;
        if (rc == 0) {
                /* size_bytes ends at a whole batch, so only END is possible. */
                if (stop != SEGMENT_STOP_END)
                        return -EIO;
                return -ENOENT;
        }
        return 0;
}

/* Reads one whole batch into a new buffer. */
static int segment_read_batch(struct segment *seg, uint32_t position, uint32_t size_bytes, uint8_t **out)
{
        uint8_t *buf = malloc(size_bytes);
        size_t got;
        int rc;

        if (buf == NULL)
                return -ENOMEM;
        rc = segment_pread_all(seg->log_fd, buf, size_bytes, position, &got);
        if (rc == 0 && got != size_bytes)
                rc = -EIO;
        if (rc < 0) {
                free(buf);
                return rc;
        }
        *out = buf;
        return 0;
}

/* The first record of an uncompressed batch at or after both targets:
 * 1 found, 0 none, or -errno. */
static int segment_search_batch(struct segment *seg, uint32_t position, const struct record_batch_header *h,
                                int64_t timestamp_ms, int64_t starting_offset, struct segment_timestamp_hit *out)
{
        uint32_t size_bytes = record_batch_size_bytes(h);
        struct record_iter it;
        struct record_view r;
        uint8_t *batch;
        int rc = segment_read_batch(seg, position, size_bytes, &batch);

        if (rc < 0)
                return rc;
        if (record_iter_init(&it, batch, size_bytes) != KAFKA_NONE) {
                rc = -EIO;
                goto out_free;
        }
        rc = 0;
        while (record_iter_next(&it, &r)) {
                if (r.timestamp_ms >= timestamp_ms && r.offset >= starting_offset) {
                        out->timestamp_ms = r.timestamp_ms;
                        out->offset = r.offset;
                        out->leader_epoch = h->partition_leader_epoch;
                        out->is_batch_precision = false;
                        rc = 1;
                        break;
                }
        }
        if (it.error_code != KAFKA_NONE)
                rc = -EIO;
out_free:
        free(batch);
        return rc;
}

int segment_find_timestamp(struct segment *seg, int64_t timestamp_ms, int64_t starting_offset,
                           struct segment_timestamp_hit *out)
{
        struct time_index_entry t = time_index_lookup(&seg->time_index, timestamp_ms);
        int64_t from_offset = t.offset > starting_offset ? t.offset : starting_offset;
        struct segment_walk walk, *w = &walk;
        struct record_batch_header h;
        enum segment_stop stop = SEGMENT_STOP_END;
        uint32_t at;
        int rc;

        segment_check(seg);
        segment_walk_init(w, seg->log_fd, offset_index_lookup(&seg->offset_index, from_offset).position_bytes,
                          seg->size_bytes);
        while ((rc = segment_walk_next(w, false, &h, &at, &stop)) == 1) {
                if (h.max_timestamp_ms < timestamp_ms || record_batch_last_offset(&h) < starting_offset)
                        continue;
                if (record_batch_codec(&h) != RECORD_BATCH_CODEC_NONE) {
                        out->timestamp_ms = h.max_timestamp_ms;
                        out->offset = h.base_offset > starting_offset ? h.base_offset : starting_offset;
                        out->leader_epoch = h.partition_leader_epoch;
                        out->is_batch_precision = true;
                        break;
                }
                rc = segment_search_batch(seg, at, &h, timestamp_ms, starting_offset, out);
                if (rc != 0)
                        break;
                rc = 1;
        }
        if (rc < 0)
                return rc;
        if (rc == 0)
                return stop == SEGMENT_STOP_END ? -ENOENT : -EIO;
        return 0;
}

int segment_read(struct segment *seg, uint32_t position_bytes, void *buf, size_t len, size_t *read_bytes_out)
{
        size_t want, got;
        int rc;

        segment_check(seg);
        *read_bytes_out = 0;
        if (position_bytes > seg->size_bytes)
                return -EINVAL;
        want = seg->size_bytes - position_bytes;
        if (want > len)
                want = len;
        rc = segment_pread_all(seg->log_fd, buf, want, position_bytes, &got);
        if (rc < 0)
                return rc;
        if (got != want)
                return -EIO;
        *read_bytes_out = got;
        return 0;
}

/* ---- truncation and recovery ---- */

int segment_truncate_to_offset(struct segment *seg, int64_t offset, uint32_t *truncated_bytes_out)
{
        struct segment_batch_location loc;
        struct segment_scan tail;
        uint32_t new_size;
        int rc;

        segment_check(seg);
        assert(seg->pending_count == 0);
        rc = segment_find_offset(seg, offset, &loc);
        if (rc < 0 && rc != -ENOENT)
                return rc;
        new_size = rc == 0 ? loc.position_bytes : seg->size_bytes;
        offset_index_truncate_to_offset(&seg->offset_index, offset);
        time_index_truncate_to_offset(&seg->time_index, offset);
        /* Kafka keeps entries below the offset; those of the cut batch
         * (below the offset, inside the batch) must go as well. */
        while (seg->offset_index.entry_count > 0 &&
               offset_index_last(&seg->offset_index).position_bytes >= new_size)
                offset_index_truncate_to_entries(&seg->offset_index, seg->offset_index.entry_count - 1);
        if (rc == 0) {
                while (seg->time_index.entry_count > 0 &&
                       time_index_last(&seg->time_index).offset >= loc.base_offset)
                        time_index_truncate_to_entries(&seg->time_index, seg->time_index.entry_count - 1);
        }
        if (new_size < seg->file_size_bytes) {
                rc = segment_ftruncate(seg->log_fd, new_size);
                if (rc < 0)
                        return rc;
        }
        if (truncated_bytes_out != NULL)
                *truncated_bytes_out = seg->file_size_bytes - new_size;
        seg->size_bytes = new_size;
        seg->file_size_bytes = new_size;
        seg->is_tail_dirty = false;
        seg->bytes_since_last_index_entry = 0;

        /* Zero the cut entries in the files and make room for appends. */
        seg->is_index_preallocated = false;
        rc = segment_preallocate_indexes(seg);
        if (rc < 0)
                return rc;
        rc = segment_walk_tail(seg, &tail);
        if (rc < 0)
                return rc;
        if (rc == 0)
                return -EIO;            /* batches that framed a moment ago no longer do */
        seg->next_offset = tail.next_offset;
        segment_check(seg);
        return 0;
}

int segment_scan(struct segment *seg, uint32_t position_bytes, struct segment_scan *out)
{
        uint64_t size = 0;
        int rc;

        assert(seg->log_fd >= 0);
        rc = segment_file_size(seg->log_fd, &size);
        if (rc < 0)
                return rc;
        if (size > SEGMENT_LOG_BYTES_MAX)
                return -EFBIG;
        if (position_bytes > size)
                return -EINVAL;
        return segment_walk_log(seg, position_bytes, (uint32_t)size, true, false, out);
}

int segment_recover(struct segment *seg, struct segment_scan *out)
{
        char what[PATH_MAX + 64];
        uint64_t size = 0;
        int rc;

        assert(seg->log_fd >= 0);
        assert(seg->pending_count == 0);
        rc = segment_file_size(seg->log_fd, &size);
        if (rc < 0)
                return rc;
        if (size > SEGMENT_LOG_BYTES_MAX)
                return -EFBIG;
        seg->file_size_bytes = (uint32_t)size;
        rc = segment_walk_log(seg, 0, seg->file_size_bytes, true, true, out);
        if (rc < 0)
                return rc;
        if (out->stop != SEGMENT_STOP_END)
                log_warn("found an invalid batch in %s at byte %u (%s); truncating %u bytes",
                         segment_describe(seg, SEGMENT_LOG_FILE_SUFFIX, what, sizeof(what)),
                         out->stop_position_bytes, segment_stop_name(out->stop),
                         seg->file_size_bytes - out->valid_bytes);
        if (out->valid_bytes < seg->file_size_bytes) {
                rc = segment_ftruncate(seg->log_fd, out->valid_bytes);
                if (rc < 0)
                        return rc;
        }
        out->truncated_bytes = seg->file_size_bytes - out->valid_bytes;
        seg->size_bytes = out->valid_bytes;
        seg->file_size_bytes = out->valid_bytes;
        seg->next_offset = out->next_offset >= 0 ? out->next_offset : seg->base_offset;
        seg->is_tail_dirty = false;
        seg->bytes_since_last_index_entry = 0;
        /* A normally closed segment always ends its time index with the
         * largest timestamp; recovery adds it too (LogSegment.recover). */
        uint8_t entry[TIME_INDEX_ENTRY_BYTES];

        rc = time_index_maybe_append(&seg->time_index, seg->max_timestamp_ms, seg->offset_of_max_timestamp, true,
                                     entry);
        if (rc < 0 && rc != -ENOSPC)
                return rc;
        rc = segment_write_indexes(seg);
        if (rc < 0)
                return rc;
        segment_check(seg);
        return 0;
}
