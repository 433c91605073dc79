/*
 * group_store.c - groups and __consumer_offsets: the persist hook that
 * learns of every change Kafka would write as a GroupMetadata record,
 * what a failed write of the assignment means to the members, and the
 * replay that brings groups back from those records at start-up
 * (group_restore, group_restore_tombstone; see group.h). The records
 * themselves are written and read by server/offsets.c.
 */
#include <errno.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "group_internal.h"

/* Kafka's GroupMetadataManager.storeGroup: what a failed append means to
 * the members. */
static int16_t store_error_of(int16_t log_error)
{
        switch (log_error) {
        case KAFKA_UNKNOWN_TOPIC_OR_PARTITION:
        case KAFKA_NOT_ENOUGH_REPLICAS:
        case KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
                return KAFKA_COORDINATOR_NOT_AVAILABLE;
        case KAFKA_NOT_LEADER_OR_FOLLOWER:
        case KAFKA_KAFKA_STORAGE_ERROR:
                return KAFKA_NOT_COORDINATOR;
        case KAFKA_REQUEST_TIMED_OUT:
                return KAFKA_REBALANCE_IN_PROGRESS;
        case KAFKA_MESSAGE_TOO_LARGE:
        case KAFKA_RECORD_LIST_TOO_LARGE:
        case KAFKA_INVALID_FETCH_SIZE:
                return KAFKA_UNKNOWN_SERVER_ERROR;
        default:
                return log_error;
        }
}

void group_sync_stored(struct group_coordinator *gc, struct kstr group_id, int32_t generation_id,
                       int16_t error_code)
{
        struct group *g = group_find(gc, group_id);
        if (!g || !g->is_storing_assignment || g->state != GROUP_COMPLETING_REBALANCE ||
            g->generation_id != generation_id)
                return;
        g->is_storing_assignment = false;
        if (error_code != KAFKA_NONE) {
                log_warn("Group %s: storing the assignment of generation %d failed (%s); rebalancing", g->id.ptr,
                         generation_id, kafka_error_name(error_code));
                group_reset_and_propagate_assignment_with_error(g, store_error_of(error_code));
                group_maybe_prepare_rebalance_or_complete_join(g, "error storing the group assignment", KSTR_NULL);
                group_check(g);
                return;
        }
        group_propagate_assignment(g, KAFKA_NONE);
        group_transition(g, GROUP_STABLE);
        group_check(g);
}

void group_coordinator_set_persist(struct group_coordinator *gc, group_persist_fn fn, void *ctx)
{
        gc->persist = fn;
        gc->persist_ctx = ctx;
}

int group_restore(struct group_coordinator *gc, struct kstr group_id, struct kstr protocol_type,
                  int32_t generation_id, int64_t state_timestamp_ms)
{
        if (group_kstr_is_empty(group_id))
                return 0;
        struct group *g = group_find(gc, group_id);
        if (!g) {
                int16_t err = KAFKA_NONE;
                g = group_new(gc, group_id, &err);
                if (!g)
                        return err == KAFKA_COORDINATOR_NOT_AVAILABLE && gc->groups.count >= GROUP_COUNT_MAX ?
                                       0 : -ENOMEM;
        }
        if (g->state != GROUP_EMPTY || g->member_count > 0)
                return 0;
        struct kstr type = KSTR_NULL;
        if (!group_kstr_is_empty(protocol_type) && !group_kstr_dup(&type, protocol_type))
                return -ENOMEM;
        group_kstr_free(&g->protocol_type);
        g->protocol_type = type;
        group_kstr_free(&g->protocol_name);
        g->generation_id = generation_id;
        if (state_timestamp_ms >= 0)
                g->state_timestamp_ms = state_timestamp_ms;
        group_check(g);
        return 0;
}

void group_restore_tombstone(struct group_coordinator *gc, struct kstr group_id)
{
        struct group *g = group_find(gc, group_id);
        if (!g || g->state != GROUP_EMPTY || g->member_count > 0 || g->pending_members.count > 0)
                return;
        if (!g->offsets) {
                group_free(g);
                return;
        }
        group_kstr_free(&g->protocol_type);
        group_kstr_free(&g->protocol_name);
        g->generation_id = 0;
}
