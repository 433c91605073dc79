/*
 * partition_home.h - which reactor thread owns each partition, how work
 * gets there and back, and what each home does on its own: maintenance
 * timers, reporting offsets for the checkpoints, and its part of a clean
 * shutdown.
 *
 * Every partition lives on one reactor, its home, chosen by hashing the
 * topic id and partition index over the reactors. All of a partition's
 * state is touched only there, so appends and reads need no locks; a
 * request arriving on another reactor sends its partition work home with
 * partition_home_run() and the home posts the result back the same way.
 *
 * Each home also provides the log layer's I/O (struct log_io) on its own
 * io_uring: appends' writes (IORING_OP_WRITE, short writes continued;
 * those under HOME_WRITE_INLINE_BYTES_MAX are made with pwrite on the spot,
 * see partition_home.c) and fdatasyncs are submitted there and complete
 * there.
 *
 * Life of the partitions:
 *   - start: when its reactor starts, a home opens every partition of the
 *     catalog that hashes to it (Kafka loads every log at start-up: recovery
 *     happens then, and retention covers partitions nobody reads), with the
 *     recovery point, log start offset and clean-shutdown flag the
 *     checkpointer read from the log dir. Partitions of topics created later
 *     are opened on first use.
 *   - run: every log.retention.check.interval.ms the home enforces
 *     retention on its partitions, every log.flush.scheduler.interval.ms it
 *     lets them flush by flush.ms, and every second it applies topic configs
 *     that AlterConfigs changed (a new catalog version); the checkpointer
 *     thread asks each home for its partitions' offsets
 *     (partition_homes_collect).
 *   - stop (on_reactor_stop): first every home waits, its ring still
 *     running, until all homes have stopped their connections, so no
 *     request can reach a partition afterwards; then it flushes every
 *     partition and runs its ring until the writes and syncs are done
 *     (appends waiting for them complete here); then it records each
 *     partition's final offsets (partition_homes_final_offsets) and
 *     closes them. A deleted
 *     topic's partitions are closed on their home as soon as the catalog
 *     lets go of them.
 */
#ifndef RUNNEL_PARTITION_HOME_H
#define RUNNEL_PARTITION_HOME_H

#include <stdbool.h>
#include <stdint.h>

#include "../log/catalog.h"
#include "../log/partition.h"
#include "reactor.h"

struct broker;
struct checkpointer;
struct partition_homes;

/* How long a stopping home waits for its partitions' last syncs. */
#define PARTITION_HOME_SHUTDOWN_SYNC_MS 60000
/* Kafka's InitialTaskDelayMs: the first maintenance run waits at most this. */
#define PARTITION_HOME_INITIAL_TASK_DELAY_MS 30000

/* Sets up one home per reactor; call before server_start. */
int partition_homes_create(struct broker *b, uint32_t reactor_count, struct partition_homes **out);
void partition_homes_destroy(struct partition_homes *h);

/* Where homes find the start-up checkpoints and send checkpoint requests;
 * set before server_start (may stay NULL in tests: nothing checkpointed). */
void partition_homes_set_checkpointer(struct partition_homes *h, struct checkpointer *cp);

/* server_options.on_reactor_start / on_reactor_stop hooks (ctx is the broker). */
void partition_homes_on_reactor_start(struct reactor *r, uint32_t index, void *ctx);
void partition_homes_on_reactor_stop(struct reactor *r, uint32_t index, void *ctx);

/* The catalog release_log hook: closes a deleted topic's partition on its home. */
void partition_homes_release_log(void *ctx, void *log);

/* The home index of a partition. Any thread. */
uint32_t partition_home_index(const struct partition_homes *h, const struct catalog_topic *t, int32_t partition);

/* The reactor of a home. Any thread, once the server runs. */
struct reactor *partition_home_reactor(const struct partition_homes *h, uint32_t index);

/*
 * Runs task on reactor r: at once when the caller is on r, else posted.
 * The task must stay valid until it runs. Any thread.
 */
void partition_home_run(struct reactor *r, struct reactor_task *task);

/*
 * On the home thread of (t, partition): its log, opened on first use.
 * NULL with *error_code set (UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR,
 * NOT_LEADER_OR_FOLLOWER while shutting down) when it cannot be had.
 */
struct partition *partition_home_get(struct broker *b, const struct catalog_topic *t, int32_t partition,
                                     int16_t *error_code);

/* DeleteRecords moved a log start offset: have log-start-offset-checkpoint
 * written soon rather than at its interval. Any thread. */
void partition_homes_request_checkpoint(struct partition_homes *h);

/* ---- offsets for the checkpoint files ---- */

/* One open partition as its home reported it. */
struct home_partition_offsets {
        const char *topic;
        struct kuuid topic_id;
        int32_t partition;
        uint32_t logdir_index;
        int64_t recovery_point;
        int64_t log_start_offset;
        int64_t first_segment_offset;
        bool is_failed;                 /* an I/O error, or its last sync did not finish */
};

/* A growable list the caller owns; topics point into the homes' buffers
 * and stay valid until the caller's next collect. */
struct home_offsets_list {
        struct home_partition_offsets *items;
        uint32_t count;
        uint32_t cap;
};

void home_offsets_list_free(struct home_offsets_list *l);

/*
 * Asks every home for the offsets of its open partitions and waits for all
 * of them (each reads its own partitions, so every entry is that
 * partition's state at one moment). Blocks: call it from a thread that is
 * not a reactor, one caller at a time. Returns 0, -ESHUTDOWN when a home
 * has begun to stop (no complete view: the caller skips this round), or
 * -ENOMEM.
 */
int partition_homes_collect(struct partition_homes *h, struct home_offsets_list *out);

/*
 * After every reactor thread has stopped: the offsets each home recorded
 * once its partitions were flushed, just before it closed them. Returns
 * 0 or -ENOMEM; *is_complete_out says whether every home got that far (so
 * the list covers every partition), *is_untouched_out whether none even
 * started (the server failed to start: no partition was opened).
 */
int partition_homes_final_offsets(struct partition_homes *h, struct home_offsets_list *out, bool *is_complete_out,
                                  bool *is_untouched_out);

/* Whether a partition of log dir index failed to open during this run
 * (the dir then gets no new checkpoints and no clean-shutdown marker). */
bool partition_homes_is_dir_failed(const struct partition_homes *h, uint32_t logdir_index);

#endif
