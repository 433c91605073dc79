/*
 * offsets.h - what the committed-offsets side of the group coordinator
 * (server/offsets.c) offers the membership side (server/groups.c,
 * server/coordinator_topic.c).
 *
 * Each partition of __consumer_offsets has its committed offsets in an
 * offsets store (coordinator/offsets.h) on the partition's home reactor,
 * loaded from the partition's log on first use. Every function here runs on
 * that home reactor.
 */
#ifndef RUNNEL_SERVER_OFFSETS_H
#define RUNNEL_SERVER_OFFSETS_H

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

#endif
