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

#include "../log/catalog.h"

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

#endif
