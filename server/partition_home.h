/*
 * partition_home.h - which reactor thread owns each partition, and how work
 * gets there and back.
 *
 * Every partition lives on one reactor, its home, chosen by hashing the
 * topic id and partition index over the reactors. All of a partition's
 * state is touched only there, so appends and reads need no locks; a
 * request arriving on another reactor sends its partition work home with
 * partition_home_post() and the home posts the result back the same way.
 *
 * Each home also provides the log layer's I/O (struct log_io) on its own
 * io_uring: writes and fdatasyncs are submitted there and complete there.
 *
 * Partitions are opened on first use, on their home thread, and closed when
 * the home reactor stops or their topic is deleted.
 */
#ifndef RUNNEL_PARTITION_HOME_H
#define RUNNEL_PARTITION_HOME_H

#include <stdint.h>

#include "../log/catalog.h"
#include "../log/partition.h"
#include "reactor.h"

struct broker;
struct partition_homes;

/* Sets up one home per reactor; call before server_start. */
int partition_homes_create(struct broker *b, uint32_t reactor_count, struct partition_homes **out);
void partition_homes_destroy(struct partition_homes *h);

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
 * NULL with *error_code set (UNKNOWN_TOPIC_OR_PARTITION, KAFKA_STORAGE_ERROR)
 * when it cannot be had.
 */
struct partition *partition_home_get(struct broker *b, const struct catalog_topic *t, int32_t partition,
                                     int16_t *error_code);

#endif
