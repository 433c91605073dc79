/*
 * log_replay.c - step-wise replay of a partition's log. See log_replay.h.
 */
#include "log_replay.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../protocol/compress.h"
#include "../protocol/record_batch.h"

void log_replay_init(struct log_replay *l, struct partition *p, size_t scratch_bytes)
{
        memset(l, 0, sizeof(*l));
        l->next_offset = partition_log_start_offset(p);
        l->end_offset = partition_high_watermark(p);
        l->scratch_bytes = scratch_bytes;
        assert(l->next_offset <= l->end_offset);
}

/* pread of exactly len bytes; 0 or -errno (-EIO for a short file). */
static int read_fully(int fd, uint8_t *buf, size_t len, uint64_t position)
{
        size_t done = 0;
        while (done < len) {
                ssize_t n = pread(fd, buf + done, len - done, (off_t)(position + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        return -EIO;
                done += (size_t)n;
        }
        return 0;
}

/* Replays one read of the log (a range of one segment, at most
 * step_bytes unless the first batch is larger); *read_bytes gets its size. */
static int replay_range(struct log_replay *l, struct partition *p, uint32_t step_bytes, log_replay_batch_fn fn,
                        void *ctx, uint32_t *read_bytes)
{
        *read_bytes = 0;
        if (l->next_offset < partition_log_start_offset(p))
                l->next_offset = partition_log_start_offset(p);       /* retention moved the start */
        struct partition_read rd = {
                .fetch_offset = l->next_offset,
                .max_bytes = (int32_t)(step_bytes > INT32_MAX ? INT32_MAX : step_bytes),
                .is_first_batch_whole = true,
        };
        partition_read(p, &rd);
        if (rd.error_code != 0)
                return -EIO;
        if (rd.fd < 0 || rd.len == 0) {
                /* Nothing readable below the end: the rest was compacted away. */
                partition_read_release(&rd);
                l->next_offset = l->end_offset;
                return 0;
        }
        uint8_t *buf = malloc(rd.len);
        if (!buf) {
                partition_read_release(&rd);
                return -ENOMEM;
        }
        int rc = read_fully(rd.fd, buf, rd.len, rd.file_position);
        partition_read_release(&rd);
        if (rc < 0)
                goto out_free;
        *read_bytes = rd.len;

        struct arena scratch;
        arena_init(&scratch, l->scratch_bytes);
        struct record_batch_iter it;
        struct record_batch_view v;
        enum record_batch_frame f;
        bool is_progress = false;
        record_batch_iter_init(&it, buf, rd.len);
        while ((f = record_batch_iter_next(&it, &v)) == RECORD_BATCH_FRAME_OK) {
                if (record_batch_next_offset(&v.header) <= l->next_offset)
                        continue;
                rc = fn(ctx, v.bytes, v.size_bytes, l->next_offset, &scratch);
                arena_reset(&scratch);
                if (rc < 0)
                        break;
                l->next_offset = record_batch_next_offset(&v.header);
                is_progress = true;
                if (l->next_offset >= l->end_offset)
                        break;
        }
        arena_free(&scratch);
        /* A range cut by max_bytes ends in a partial batch, read next time;
         * but its first batch is whole, so each read makes progress. */
        if (rc == 0 && !is_progress && f != RECORD_BATCH_FRAME_OK)
                rc = -EBADMSG;
out_free:
        free(buf);
        return rc;
}

int log_replay_step(struct log_replay *l, struct partition *p, uint32_t step_bytes, log_replay_batch_fn fn,
                    void *ctx)
{
        assert(step_bytes > 0);
        uint64_t done_bytes = 0;
        while (l->next_offset < l->end_offset && done_bytes < step_bytes) {
                uint32_t read_bytes;
                int rc = replay_range(l, p, (uint32_t)(step_bytes - done_bytes), fn, ctx, &read_bytes);
                if (rc < 0)
                        return rc;
                done_bytes += read_bytes;
        }
        return l->next_offset < l->end_offset ? 1 : 0;
}

int log_replay_open_records(const uint8_t *batch, size_t len, const struct record_batch_header *h,
                            size_t records_bytes_max, struct arena *scratch, struct record_iter *it)
{
        if (record_batch_compute_crc(batch, len) != h->crc)
                return -EBADMSG;
        int codec = record_batch_codec(h);
        if (codec == RECORD_BATCH_CODEC_NONE)
                return record_iter_init(it, batch, len) == 0 ? 0 : -EBADMSG;
        uint8_t *records;
        size_t records_bytes;
        int rc = compress_decode((enum compress_codec)codec, batch + RECORD_BATCH_HEADER_BYTES,
                                 len - RECORD_BATCH_HEADER_BYTES, records_bytes_max, scratch, &records,
                                 &records_bytes);
        if (rc < 0)
                return rc == -ENOMEM ? -ENOMEM : -EBADMSG;
        record_iter_init_records(it, h, records, records_bytes);
        return 0;
}
