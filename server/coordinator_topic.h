/*
 * coordinator_topic.h - __consumer_offsets, and where each group lives.
 *
 * Every consumer group belongs to one partition of __consumer_offsets
 * (group_partition_of() in coordinator/group.h: Kafka's
 * Utils.abs(groupId.hashCode()) % partitions), and all of a group's state -
 * its membership (coordinator/group.c) and its committed offsets
 * (coordinator/offsets.c) - lives on that partition's home reactor and is
 * touched only there. A request for a group arrives on any reactor: it
 * finds the home with coordinator_locate_group(), runs its work there with
 * partition_home_run(place.home, ...), and comes back to req->reactor the
 * same way.
 *
 * The topic is created by the broker, not by clients: on the first
 * FindCoordinator for a group (or by any coordinator that needs it), with
 * offsets.topic.num.partitions partitions and Kafka's configs for it
 * (cleanup.policy=compact, compression.type=producer, segment.bytes from
 * offsets.topic.segment.bytes). A topic that already exists keeps its
 * partition count, which is what groups hash over (as in Kafka, where the
 * running topic, not the config, decides).
 *
 * The group coordinator of a home (struct group_coordinator) is created on
 * first use on that home's thread, with reactor timers, and lives until the
 * process exits. Membership is not persisted: a restarted broker starts
 * with no members, and they rejoin, as Kafka clients do after any
 * coordinator move (groups that only have committed offsets come back
 * from the offsets store). Once the home's reactor is stopping, every
 * parked JoinGroup and SyncGroup is answered NOT_COORDINATOR (Kafka's
 * coordinator unload), so that shutdown does not wait for rebalances.
 */
#ifndef RUNNEL_COORDINATOR_TOPIC_H
#define RUNNEL_COORDINATOR_TOPIC_H

#include <stdbool.h>
#include <stdint.h>

#include "../coordinator/group.h"
#include "broker.h"
#include "reactor.h"

#define COORDINATOR_OFFSETS_TOPIC "__consumer_offsets"

/*
 * Creates __consumer_offsets unless it exists. Returns a Kafka error code:
 * NONE (it exists now), or COORDINATOR_NOT_AVAILABLE when it cannot be
 * created (the disk refused; logged). The first call blocks on the catalog's
 * disk writes, like any topic creation; later calls are one lookup. Any
 * thread.
 */
int16_t coordinator_ensure_offsets_topic(struct broker *b);

/* The same for any internal topic of a coordinator (purpose names it in
 * the log): created with partition_count partitions and configs. */
int16_t coordinator_ensure_topic(struct broker *b, const char *topic, int32_t partition_count,
                                 const struct catalog_config *configs, uint32_t config_count, const char *purpose);

/* Where a group lives. */
struct coordinator_place {
        const struct catalog_topic *topic;      /* __consumer_offsets, held */
        int32_t partition;                      /* the group's partition of it */
        struct reactor *home;                   /* the partition's home reactor */
};

/*
 * Fills *out for group_id. false when __consumer_offsets does not exist
 * (answer NOT_COORDINATOR, as Kafka does for a partition it has not
 * loaded; clients then call FindCoordinator, which creates it). On true the
 * caller gives the topic back with coordinator_place_put() (which may be
 * called again: it clears place->topic). Any thread.
 */
bool coordinator_locate_group(struct broker *b, struct kstr group_id, struct coordinator_place *out);

void coordinator_place_put(struct coordinator_place *place);

/*
 * The group coordinator of the calling reactor, created on first use; NULL
 * when memory ran out. Call it only on a home reactor, for groups whose
 * place names this reactor.
 */
struct group_coordinator *coordinator_home_groups(struct broker *b);

#endif
