/*
 * checkpointer.h - the broker-level files of every log dir that say how far
 * the logs can be trusted: recovery-point-offset-checkpoint,
 * log-start-offset-checkpoint and the .kafka_cleanshutdown marker
 * (formats in log/checkpoint.h), as Kafka's LogManager keeps them.
 *
 *   start-up (checkpointer_create, before the reactors start): each log
 *     dir's two checkpoints are read and its marker taken (removed, durably,
 *     so that a crash from then on leaves none). Partitions opened later ask
 *     checkpointer_fill_options for what was read.
 *   running (checkpointer_start): a thread rewrites recovery-point-offset-
 *     checkpoint every log.flush.offset.checkpoint.interval.ms and
 *     log-start-offset-checkpoint every
 *     log.flush.start.offset.checkpoint.interval.ms (or soon after a
 *     DeleteRecords). It never touches a partition: it asks every home for
 *     its partitions' offsets (partition_homes_collect) and writes once all
 *     have answered; file I/O stays off the reactors.
 *   shutdown (checkpointer_finish, after every reactor has stopped): the
 *     thread is stopped, both checkpoints are written from the offsets the
 *     homes recorded after their final flush, and then the marker, in each
 *     dir where every partition was flushed and every write succeeded.
 *
 * Consistency: each entry is one partition's state read on its home, and
 * both offsets only grow while the partition lives, so a checkpoint that
 * is a little behind is safe (recovery scans a little more; a log start
 * offset moved meanwhile is written next time, as in Kafka). An entry whose
 * topic was deleted, or deleted and created again, since it was read is
 * left out: entries are matched to the catalog by topic id. Start-up values
 * are used only for the topic (by id) that existed when they were read.
 *
 * A log dir where a partition could not be opened, or a checkpoint could
 * not be written, gets no more checkpoints and no marker this run (Kafka
 * takes such a dir offline); the next start recovers it.
 */
#ifndef RUNNEL_CHECKPOINTER_H
#define RUNNEL_CHECKPOINTER_H

#include <stddef.h>
#include <stdint.h>

#include "../log/catalog.h"
#include "../log/logdir.h"
#include "../log/partition.h"
#include "config.h"

struct checkpointer;
struct partition_homes;

/*
 * Reads every log dir's checkpoints and takes its marker. A malformed
 * checkpoint is reported and ignored (the dir's partitions are then
 * recovered from their first segment). Returns 0 or -errno with one line
 * in err.
 */
int checkpointer_create(const struct broker_config *cfg, const struct logdirs *dirs, struct catalog *cat,
                        struct partition_homes *homes, struct checkpointer **out, char *err, size_t err_bytes);

/* Fills o->is_clean_shutdown, recovery_point and log_start_offset from what
 * start-up read for partition of t in log dir logdir_index. Any thread. */
void checkpointer_fill_options(const struct checkpointer *cp, uint32_t logdir_index, const struct catalog_topic *t,
                               int32_t partition, struct partition_options *o);

/* Starts the writer thread; call once the reactors run. Returns 0 or -errno. */
int checkpointer_start(struct checkpointer *cp);

/* Has log-start-offset-checkpoint written soon. Any thread. */
void checkpointer_request_log_start(struct checkpointer *cp);

/* After every reactor thread has stopped: stops the writer, writes the final
 * checkpoints and the clean-shutdown markers. */
void checkpointer_finish(struct checkpointer *cp);

void checkpointer_destroy(struct checkpointer *cp);

#endif
