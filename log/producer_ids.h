/*
 * producer_ids.h - the broker's producer id allocator: ids for
 * InitProducerId that are never handed out twice, restarts included.
 *
 * Kafka's controller hands brokers blocks of 1,000 ids and records each
 * block in its metadata log before a broker uses it. runnel, one node,
 * does the same with a file in the first log dir, `__runnel_producer_ids`,
 * holding the first id of the next block: a block is taken by durably
 * moving that mark past it (written, fsynced, renamed) before any id of it
 * is returned. A crash loses at most the unused rest of a block.
 *
 * Any thread may allocate: a mutex guards the block, which is held only
 * while an id is taken, or while the next block is written (once per
 * 1,000 ids, a small synchronous file write and fsync).
 */
#ifndef RUNNEL_PRODUCER_IDS_H
#define RUNNEL_PRODUCER_IDS_H

#include <stddef.h>
#include <stdint.h>

#define PRODUCER_IDS_FILE "__runnel_producer_ids"
#define PRODUCER_IDS_BLOCK_SIZE 1000            /* Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE */
#define PRODUCER_IDS_FILE_BYTES_MAX 256

struct producer_ids;

/* Reads the mark in dir_fd (none yet: ids start at 0). Returns 0 or
 * -errno with one line in err (an unreadable or damaged file). */
int producer_ids_open(int dir_fd, struct producer_ids **out, char *err, size_t err_bytes);
void producer_ids_close(struct producer_ids *ids);

/* The next producer id. Returns 0, or -errno when the next block cannot be
 * recorded (the caller answers a retriable error), or -EOVERFLOW when ids
 * are exhausted. */
int producer_ids_next(struct producer_ids *ids, int64_t *id_out);

#endif
