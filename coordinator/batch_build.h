/*
 * batch_build.h - the record batches the coordinators append to their
 * internal topics (__consumer_offsets, __transaction_state), encoded into
 * arena memory: the one step every coordinator write shares once its
 * records are specified.
 *
 * For coordinator/offsets.c and coordinator/txn_log.c. The batch lives in
 * the caller's arena; nothing here keeps state.
 */
#ifndef RUNNEL_COORDINATOR_BATCH_BUILD_H
#define RUNNEL_COORDINATOR_BATCH_BUILD_H

#include <stddef.h>
#include <stdint.h>

#include "../protocol/arena.h"
#include "../protocol/record_batch.h"

/*
 * Encodes spec (uncompressed) into memory from a. 0 with the batch in
 * *batch_out and its length in *len_out, -EINVAL when it would pass
 * INT32_MAX bytes, -ENOMEM.
 */
int batch_build(const struct record_batch_spec *spec, struct arena *a, uint8_t **batch_out, size_t *len_out);

#endif
