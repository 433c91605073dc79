/*
 * offsets.h - what the committed-offsets side of the group coordinator
 * (server/offsets.c) offers the membership side (server/groups.c,
 * server/coordinator_topic.c), TxnOffsetCommit (server/txn_offsets.c) and
 * the transaction coordinator's markers (server/txn.c).
 *
 * Each partition of __consumer_offsets has its committed offsets in an
 * offsets store (coordinator/offsets.h) on the partition's home reactor,
 * loaded from the partition's log on first use. Every function here runs on
 * that home reactor.
 */
#ifndef RUNNEL_SERVER_OFFSETS_H
#define RUNNEL_SERVER_OFFSETS_H

#include <stdbool.h>
#include <stdint.h>

#include "../coordinator/offsets.h"
#include "../log/catalog.h"
#include "../log/partition.h"
#include "coordinator_topic.h"
#include "reactor.h"

struct broker;
struct group;

/*
 * On the home reactor of __consumer_offsets partition index: starts loading
 * its offsets if that has not begun, and says whether its groups can be
 * served. Returns NONE once loaded, COORDINATOR_LOAD_IN_PROGRESS while the
 * log is replayed, NOT_COORDINATOR when the partition cannot be opened
 * (the load is retried on the next call). Kafka answers every group request
 * of a loading partition with COORDINATOR_LOAD_IN_PROGRESS.
 */
int16_t offsets_partition_ready(struct broker *b, const struct catalog_topic *offsets_topic, int32_t index);

/*
 * Starts loading every partition of __consumer_offsets on its home (a no-op
 * for those loaded or loading), so that groups with committed offsets
 * exist again (ListGroups, DescribeGroups) without waiting for a request
 * to name them: Kafka loads its coordinator partitions when it becomes
 * their leader, at start-up. Any thread, once the reactors run; call it
 * after the server has started and after __consumer_offsets is created.
 */
void offsets_load_all(struct broker *b);

/*
 * The group_offsets_release_fn for group_coordinator_set_offsets_release()
 * (ctx: the struct broker): a group is being deleted (DeleteGroups) while it
 * has committed offsets. Clears g->offsets and writes a tombstone for each
 * offset; they leave the store when the tombstones are durable, an fsync
 * later (Kafka writes them in the batch of the group's own tombstone and
 * answers DeleteGroups after it).
 */
void offsets_release_group(void *ctx, struct group *g);

/* ---- for TxnOffsetCommit (server/txn_offsets.c) and the transaction markers ---- */

struct arena;
struct group_coordinator;
struct offsets_store;

/* Starts loading every partition of __consumer_offsets, once. Any thread. */
void offsets_maybe_load_all(struct broker *b);

/* The wall clock in ms since the epoch: the commit and expire times of
 * offsets, as Kafka's time.milliseconds(). */
int64_t offsets_wall_now_ms(void);

/*
 * On the home of partition index: the store of its loaded shard (loading
 * it on first use), or NULL with *error_code as offsets_partition_ready()
 * says. Valid until the reactor next runs other work.
 */
struct offsets_store *offsets_shard_store(struct broker *b, const struct catalog_topic *offsets_topic, int32_t index,
                                          int16_t *error_code);

/* On the home of partition index: tells the group coordinator the group's
 * offsets changed (a group with offsets is kept, a simple one created). */
void offsets_note_group(struct broker *b, int32_t index, struct kstr group_id);

/* The group coordinator of the calling home reactor, with the offsets
 * hooks set; NULL when memory ran out. */
struct group_coordinator *offsets_groups_here(struct broker *b);

/* The error a client gets for a failed append to __consumer_offsets
 * (Kafka's handleOperationException). */
int16_t offsets_coordinator_error(int16_t append_error);

/*
 * On the home of __consumer_offsets partition index, from the transaction
 * coordinator: producer_id's COMMIT or ABORT marker was written there, at
 * marker_offset. Its pending transactional offsets become committed or are
 * dropped (Kafka's replayEndTransactionMarker). A shard still loading
 * applies it once loaded; a partition without a shard reads it when it loads.
 */
void offsets_txn_marker_written(struct broker *b, int32_t index, int64_t producer_id, bool is_commit,
                                int64_t marker_offset);

/*
 * The answers of OffsetCommit, OffsetDelete and TxnOffsetCommit have this
 * shape (checked against the generated structs). Kafka builds them in two
 * steps: the partitions it refuses before asking the coordinator (unknown
 * topics and partitions) first, then the coordinator's answer merged in by
 * topic name; when nothing was refused the answer is sent as it is.
 */
struct offsets_answer_partition {
        int32_t partition_index;
        int16_t error_code;
};

struct offsets_answer_topic {
        struct kstr name;
        struct {
                int32_t count;
                struct offsets_answer_partition *items;
        } partitions;
};

/* Reorders topics[0..*count) as Kafka's response builder would, in arena
 * a; 0 or -ENOMEM. */
int offsets_answer_order(struct arena *a, struct offsets_answer_topic **topics, int32_t *count);

/* ---- the trip OffsetCommit, TxnOffsetCommit and OffsetDelete share ---- */

struct request;
struct offsets_trip;

/* On the request's reactor, the place given back: sends the answer. */
typedef void (*offsets_trip_respond_fn)(struct offsets_trip *c);

/*
 * A write of a group's offsets (commits, or OffsetDelete's tombstones) on
 * its way, in the request's arena: collected on the request's reactor
 * (offsets_trip_init, _add), carried
 * to the home of the group's __consumer_offsets partition (_go_home),
 * appended there as one record batch (_append), and carried back
 * (_go_back) to be answered by respond. While it is away, only the home
 * touches it and the request.
 */
struct offsets_trip {
        struct broker *b;
        struct request *req;
        struct kstr group_id;
        struct coordinator_place place;         /* topic held while set */
        struct offsets_write *writes;           /* the partitions to write, in request order */
        int16_t **errors;                       /* each write's error_code in the response */
        uint32_t count;
        offsets_trip_respond_fn respond;
        struct partition_append append;
        struct reactor_task task;
};

/* Room for write_count_max writes in req's arena; 0 or -ENOMEM. */
int offsets_trip_init(struct offsets_trip *c, struct broker *b, struct request *req, struct kstr group_id,
                      uint32_t write_count_max, offsets_trip_respond_fn respond);

/*
 * The next write: partition of topic at offset, answered in *error_code.
 * A negative leader_epoch is none; null metadata is stored empty, as
 * Kafka stores it. The commit and expire times are left unset
 * (OFFSETS_NO_TIMESTAMP) for the caller.
 */
struct offsets_write *offsets_trip_add(struct offsets_trip *c, int16_t *error_code, struct kstr topic,
                                       int32_t partition, int64_t offset, int32_t leader_epoch,
                                       struct kstr metadata);

/* Answers every write with code. */
void offsets_trip_fail(struct offsets_trip *c, int16_t code);

/* On the request's reactor, c->place located: at_home(c) runs on its home. */
void offsets_trip_go_home(struct offsets_trip *c, void (*at_home)(void *c));

/* On the home: appends batch (durable) to p; done(&c->append) follows, maybe at once. */
void offsets_trip_append(struct offsets_trip *c, struct partition *p, uint8_t *batch, size_t len,
                         bool is_txn_verified, partition_append_done_fn done);

/* On the home: back to the request's reactor, which gives the place back and responds. */
void offsets_trip_go_back(struct offsets_trip *c);

#endif
