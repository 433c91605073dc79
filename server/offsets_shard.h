/*
 * offsets_shard.h - the shards of server/offsets.c as the offsets request
 * handlers (server/offsets_requests.c) reach them. No other file includes
 * it. Everything here runs on the home reactor of the shard's partition.
 */
#ifndef RUNNEL_SERVER_OFFSETS_SHARD_H
#define RUNNEL_SERVER_OFFSETS_SHARD_H

#include <stdbool.h>
#include <stdint.h>

#include "../coordinator/group.h"
#include "../coordinator/offsets.h"
#include "offsets.h"
#include "reactor.h"

enum shard_state {
        SHARD_LOADING,
        SHARD_LOADED,
};

struct shard {
        struct broker *broker;
        struct reactor *home;
        const struct catalog_topic *loading_topic;      /* held while loading */
        int32_t index;
        enum shard_state state;
        struct offsets_store *store;
        struct offsets_loader loader;
        uint64_t load_started_ms;
        struct reactor_task load_task;
        reactor_timer_id expire_timer;
        bool is_expiring;               /* an expiry write is in flight */
        /* Transaction markers written past the end of the load, while it
         * runs: applied once it is done, in order. */
        struct shard_marker *markers;
        uint32_t marker_count, marker_cap;
};

struct shard_marker {
        int64_t producer_id;
        bool is_commit;
};

/*
 * The loaded shard of __consumer_offsets partition index (loading it on
 * first use), or NULL with *error_code as offsets_partition_ready() says.
 */
struct shard *offsets_shard_get(struct broker *b, const struct catalog_topic *ot, int32_t index, int16_t *error_code);

/* Tells the group whether it has offsets in s (an Empty group with offsets
 * is kept; one without may expire), creating the simple group of offsets
 * that have no group around. */
void offsets_shard_note_group(struct shard *s, struct kstr group_id);

/* Kafka's validateOffsetDelete: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP or
 * NONE, with the group (NULL when there is none) in *g_out. */
int16_t offsets_shard_validate_delete(struct shard *s, struct kstr group_id, const struct group **g_out);

/* Whether a member of g subscribes to topic (Kafka's
 * ClassicGroup.isSubscribedToTopic). */
bool offsets_group_is_subscribed(const struct group *g, struct kstr topic);

#endif
