/*
 * log_replay.h - reading a coordinator's partition back, a step at a time.
 *
 * The group and transaction coordinators keep their state as records in
 * an internal topic and rebuild it at start-up by replaying the
 * partition's log from its start to the high watermark as it was when the
 * load began. A step reads about step_bytes (at least one whole batch) and
 * hands each batch to the caller's function, so that a home reactor can
 * load a large partition between serving other requests.
 *
 * Called on the partition's home thread only.
 */
#ifndef RUNNEL_LOG_REPLAY_H
#define RUNNEL_LOG_REPLAY_H

#include <stddef.h>
#include <stdint.h>

#include "../log/partition.h"
#include "../protocol/arena.h"
#include "../protocol/record_batch.h"

/* One batch of the log, whose records at or past from_offset are new to
 * the caller; scratch is reset after each batch. Returns 0 or -errno
 * (which ends the load). */
typedef int (*log_replay_batch_fn)(void *ctx, const uint8_t *batch, size_t len, int64_t from_offset,
                                   struct arena *scratch);

struct log_replay {
        int64_t next_offset;            /* the first offset not replayed yet */
        int64_t end_offset;             /* the high watermark when the load began */
        size_t scratch_bytes;           /* the arena each batch may use (decompression) */
};

/* Starts at the log start offset and ends at the current high watermark. */
void log_replay_init(struct log_replay *l, struct partition *p, size_t scratch_bytes);

/*
 * Replays about step_bytes of the log. Returns 1 while more remains, 0 once
 * the load is done, or -errno: -EIO when the log cannot be read, -EBADMSG
 * when a batch is not whole where one must be, or the function's error.
 */
int log_replay_step(struct log_replay *l, struct partition *p, uint32_t step_bytes, log_replay_batch_fn fn,
                    void *ctx);

/*
 * For a log_replay_batch_fn, once it has framed batch (header h) and wants
 * its records: checks the batch's CRC and opens it over its records,
 * decompressed into scratch (at most records_bytes_max bytes). 0,
 * -EBADMSG (a wrong CRC, records that do not decode or are too large), or
 * -ENOMEM.
 */
int log_replay_open_records(const uint8_t *batch, size_t len, const struct record_batch_header *h,
                            size_t records_bytes_max, struct arena *scratch, struct record_iter *it);

#endif
