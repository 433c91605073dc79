/*
 * group_requests.c - what each classic group request does to a group:
 * JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DeleteGroups, and the
 * member and generation checks of OffsetCommit and TxnOffsetCommit (see
 * group.h for the contract).
 *
 * These follow Kafka's GroupMetadataManager handlers by name so that a
 * reader can check one against the other (join_new_member,
 * join_existing_member, add_member_then_rebalance, the SyncGroup and
 * Heartbeat state checks, LeaveGroup's static-member rules). They drive
 * the state machine of group.c (groups, members, the join phase, timers)
 * through group_internal.h.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "group_internal.h"

/* ---- JoinGroup ---- */

/* Kafka's ClassicGroup.validateMember. */
static int16_t validate_member(const struct group *g, struct kstr member_id, struct kstr group_instance_id)
{
        if (!kstr_is_null(group_instance_id)) {
                const struct group_member *sm = group_find_static_member(g, group_instance_id);
                if (!sm)
                        return KAFKA_UNKNOWN_MEMBER_ID;
                if (!kstr_eq(sm->member_id, member_id)) {
                        log_info("Request member id %.*s for static member with group instance id %.*s is fenced "
                                 "by existing member id %s", member_id.len, member_id.ptr, group_instance_id.len,
                                 group_instance_id.ptr, sm->member_id.ptr);
                        return KAFKA_FENCED_INSTANCE_ID;
                }
        }
        if (!group_find_member(g, member_id))
                return KAFKA_UNKNOWN_MEMBER_ID;
        return KAFKA_NONE;
}

/* Kafka's acceptJoiningMember: group.max.size. */
static bool group_accepts_joining_member(const struct group *g, struct kstr member_id)
{
        int32_t max = g->gc->cfg.max_size;
        const struct group_member *m = group_find_member(g, member_id);
        switch (g->state) {
        case GROUP_EMPTY:
        case GROUP_DEAD:
                return true;
        case GROUP_PREPARING_REBALANCE:
                /* Counting the members awaiting join, not all of them, lets
                 * the last rejoiners be the ones turned away. */
                return (m && m->join_waiter) || g->awaiting_join_count < max;
        case GROUP_COMPLETING_REBALANCE:
        case GROUP_STABLE:
                return m || g->member_count < max;
        }
        return false;
}

/* "<prefix>-<random UUID>", as Kafka's ClassicGroup.generateMemberId. */
static char *generate_member_id(struct group_coordinator *gc, struct kstr prefix)
{
        uint8_t u[16];
        gc->env.random_bytes(gc->env.ctx, u, sizeof(u));
        u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);        /* version 4 */
        u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);        /* IETF variant */
        int32_t n = group_span(prefix.len);
        size_t bytes = (size_t)n + 1 + 36 + 1;
        char *s = malloc(bytes);
        if (!s)
                return NULL;
        int len = snprintf(s, bytes,
                           "%.*s-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", n,
                           n ? prefix.ptr : "", u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
                           u[11], u[12], u[13], u[14], u[15]);
        assert(len == (int)bytes - 1);
        (void)len;
        return s;
}

static void join_answer_current(struct group *g, struct group_join_waiter *w, const struct group_member *m,
                                struct kstr leader, bool has_members, bool skip_assignment)
{
        struct group_join_result res = group_current_join_result(g, m, leader, has_members, skip_assignment);
        w->done(w, &res);
}

static void add_member_then_rebalance(struct group *g, const struct group_join_request *rq, struct kstr member_id,
                                      struct group_join_waiter *w)
{
        struct group_member *m = group_member_new(g, rq, member_id);
        if (!m || group_add_member(g, m, w) < 0) {
                group_member_free(m);
                log_error("group coordinator: out of memory adding member to group %s", g->id.ptr);
                group_join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, member_id);
                return;
        }
        /* More members for the initial rebalance: it may wait longer. */
        if (g->state == GROUP_PREPARING_REBALANCE && g->previous_state == GROUP_EMPTY)
                g->is_new_member_added = true;
        /* A new member cannot heartbeat while its JoinGroup is parked, and a
         * client that gave up will retry with another one: bound the wait. */
        group_schedule_heartbeat(g, m, g->gc->cfg.new_member_join_timeout_ms);
        group_maybe_prepare_rebalance_or_complete_join(g, "adding new member", m->member_id);
}

static void update_member_then_rebalance(struct group *g, struct group_member *m, const struct group_join_request *rq,
                                         struct group_join_waiter *w, const char *reason)
{
        if (group_update_member(g, m, rq, w) < 0) {
                log_error("group coordinator: out of memory updating member %s of group %s", m->member_id.ptr,
                          g->id.ptr);
                group_join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, m->member_id);
                return;
        }
        group_maybe_prepare_rebalance_or_complete_join(g, reason, m->member_id);
}

/* Kafka's updateStaticMemberThenRebalanceOrCompleteJoin: a known
 * group.instance.id came back without its member id. In a Stable group
 * whose protocol would not change this is no rebalance at all (KIP-345). */
static void update_static_member_then_rebalance(struct group *g, const struct group_join_request *rq,
                                                struct group_member *old, struct kstr new_id,
                                                struct group_join_waiter *w)
{
        struct kstr leader_before = g->leader->member_id;       /* may be old's: old is freed last */
        log_info("Static member with group instance id %s joins group %s in state %s; replacing member %s with %.*s",
                 old->group_instance_id.ptr, g->id.ptr, group_state_name(g->state), old->member_id.ptr, new_id.len,
                 new_id.ptr);
        struct group_member *m = group_replace_static_member(g, old, new_id);
        if (!m) {
                log_error("group coordinator: out of memory replacing a static member of group %s", g->id.ptr);
                group_join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, (struct kstr){ "", 0 });
                return;
        }
        group_schedule_heartbeat(g, m, m->session_timeout_ms);
        if (group_update_member(g, m, rq, w) < 0) {
                group_join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, m->member_id);
                group_member_free(old);
                return;
        }
        switch (g->state) {
        case GROUP_STABLE:
                if (kstr_eq(g->protocol_name, group_select_protocol(g))) {
                        if (rq->supports_skip_assignment) {
                                /* v9+: the leader learns it leads, and that it
                                 * must not reassign (SkipAssignment). */
                                bool is_leader = g->leader == m;
                                group_member_complete_join_current(g, m, g->leader->member_id, is_leader, is_leader);
                        } else {
                                /* Before v9 the old leader id is returned, so a
                                 * rejoining static leader does not reassign a
                                 * Stable group's partitions. */
                                group_member_complete_join_current(g, m, leader_before, false, false);
                        }
                } else {
                        group_maybe_prepare_rebalance_or_complete_join(g, "static member joined with a change of protocol",
                                                                       m->member_id);
                }
                break;
        case GROUP_COMPLETING_REBALANCE:
                /* The leader may already be assigning to the old id. */
                group_prepare_rebalance(g, "updating metadata for static member", m->member_id);
                break;
        case GROUP_PREPARING_REBALANCE:
                group_maybe_complete_join_phase(g);
                break;
        case GROUP_EMPTY:
        case GROUP_DEAD:
                assert(!"a group with a static member is never Empty or Dead");
                break;
        }
        group_member_free(old);
        group_check(g);
}

static void join_new_member(struct group *g, const struct group_join_request *rq, struct group_join_waiter *w)
{
        struct group_coordinator *gc = g->gc;
        if (!group_supports_protocols(g, rq->protocol_type, rq->protocols, rq->protocol_count)) {
                group_join_answer_error(w, KAFKA_INCONSISTENT_GROUP_PROTOCOL, (struct kstr){ "", 0 });
                return;
        }
        bool is_static = !kstr_is_null(rq->group_instance_id);
        char *id = generate_member_id(gc, is_static ? rq->group_instance_id : group_kstr_or_empty(rq->client_id));
        if (!id) {
                group_join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, (struct kstr){ "", 0 });
                return;
        }
        struct kstr new_id = KSTR(id);
        struct group_member *old = is_static ? group_find_static_member(g, rq->group_instance_id) : NULL;
        if (old) {
                update_static_member_then_rebalance(g, rq, old, new_id, w);
        } else if (!is_static && rq->requires_known_member_id) {
                /* KIP-394: hand out the id and wait for the member to come
                 * back with it; until then it holds up a rebalance for at
                 * most its session timeout. */
                struct group_pending_member *pm = NULL;
                if (g->pending_members.count >= GROUP_PENDING_MEMBERS_MAX) {
                        group_join_answer_error(w, KAFKA_GROUP_MAX_SIZE_REACHED, (struct kstr){ "", 0 });
                        goto out;
                }
                pm = calloc(1, sizeof(*pm));
                if (!pm || !group_kstr_dup(&pm->node.key, new_id) || group_map_insert(&g->pending_members, &pm->node) < 0) {
                        if (pm)
                                group_kstr_free(&pm->node.key);
                        free(pm);
                        group_join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, (struct kstr){ "", 0 });
                        goto out;
                }
                pm->group = g;
                group_timer_set(gc, &pm->timer, rq->session_timeout_ms, group_pending_fired, pm);
                group_join_answer_error(w, KAFKA_MEMBER_ID_REQUIRED, new_id);
        } else {
                add_member_then_rebalance(g, rq, new_id, w);
        }
out:
        free(id);
        group_check(g);
}

static void join_existing_member(struct group *g, const struct group_join_request *rq, struct kstr member_id,
                                 struct group_join_waiter *w)
{
        if (!group_supports_protocols(g, rq->protocol_type, rq->protocols, rq->protocol_count)) {
                group_join_answer_error(w, KAFKA_INCONSISTENT_GROUP_PROTOCOL, member_id);
                return;
        }
        if (group_find_pending_member(g, member_id)) {
                if (!kstr_is_null(rq->group_instance_id)) {
                        /* Pending ids are only handed to dynamic members;
                         * Kafka fails such a request the same way. */
                        group_join_answer_error(w, KAFKA_UNKNOWN_SERVER_ERROR, member_id);
                        return;
                }
                add_member_then_rebalance(g, rq, member_id, w);
                return;
        }
        int16_t err = validate_member(g, member_id, rq->group_instance_id);
        if (err != KAFKA_NONE) {
                group_join_answer_error(w, err, member_id);
                return;
        }
        struct group_member *m = group_find_member(g, member_id);
        assert(m);
        switch (g->state) {
        case GROUP_PREPARING_REBALANCE:
                update_member_then_rebalance(g, m, rq, w, "member joining group during rebalance");
                break;
        case GROUP_COMPLETING_REBALANCE:
                if (group_member_matches(m, rq->protocols, rq->protocol_count)) {
                        /* It lost our JoinGroup answer: send it again. */
                        join_answer_current(g, w, m, g->leader->member_id, m == g->leader, false);
                } else {
                        update_member_then_rebalance(g, m, rq, w, "updating metadata for member");
                }
                break;
        case GROUP_STABLE:
                if (m == g->leader) {
                        /* The leader may rejoin to reassign on changes the
                         * members' metadata does not show (new partitions). */
                        update_member_then_rebalance(g, m, rq, w, "leader re-joining group");
                } else if (!group_member_matches(m, rq->protocols, rq->protocol_count)) {
                        update_member_then_rebalance(g, m, rq, w, "updating metadata for member");
                } else {
                        join_answer_current(g, w, m, g->leader->member_id, false, false);
                }
                break;
        case GROUP_EMPTY:
        case GROUP_DEAD:
                group_join_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID, member_id);
                break;
        }
        group_check(g);
}

void group_join(struct group_coordinator *gc, const struct group_join_request *rq, struct group_join_waiter *w)
{
        assert(gc && rq && w && w->done);
        assert(rq->protocol_count >= 0 && (rq->protocol_count == 0 || rq->protocols));
        struct kstr member_id = group_kstr_or_empty(rq->member_id);
        if (group_kstr_is_empty(rq->group_id)) {
                group_join_answer_error(w, KAFKA_INVALID_GROUP_ID, member_id);
                return;
        }
        if (rq->session_timeout_ms < gc->cfg.min_session_timeout_ms ||
            rq->session_timeout_ms > gc->cfg.max_session_timeout_ms) {
                group_join_answer_error(w, KAFKA_INVALID_SESSION_TIMEOUT, member_id);
                return;
        }
        bool is_unknown_member = member_id.len == 0;
        struct group *g = group_find(gc, rq->group_id);
        if (!g) {
                /* Only a new member creates a group. */
                if (!is_unknown_member) {
                        group_join_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID, member_id);
                        return;
                }
                int16_t err = KAFKA_NONE;
                g = group_new(gc, rq->group_id, &err);
                if (!g) {
                        group_join_answer_error(w, err, member_id);
                        return;
                }
        }
        if (!group_accepts_joining_member(g, member_id)) {
                struct group_member *m = group_find_member(g, member_id);
                struct group_pending_member *pm = group_find_pending_member(g, member_id);
                log_info("Group %s is full (group.max.size %d); turning away member %.*s", g->id.ptr,
                         gc->cfg.max_size, member_id.len, member_id.ptr);
                if (m)
                        group_remove_member(g, m, KAFKA_GROUP_MAX_SIZE_REACHED);
                else if (pm)
                        group_pending_free(g, pm);
                group_join_answer_error(w, KAFKA_GROUP_MAX_SIZE_REACHED, (struct kstr){ "", 0 });
                group_check(g);
                return;
        }
        if (is_unknown_member)
                join_new_member(g, rq, w);
        else
                join_existing_member(g, rq, member_id, w);
}

/* ---- SyncGroup ---- */

static bool is_protocol_inconsistent(struct kstr requested, struct kstr group_value)
{
        return !kstr_is_null(requested) && !kstr_is_null(group_value) && !kstr_eq(requested, group_value);
}

static void remove_pending_sync(struct group *g, struct group_member *m)
{
        if (m->is_pending_sync) {
                m->is_pending_sync = false;
                g->pending_sync_count--;
        }
        if (g->pending_sync_count == 0)
                group_timer_cancel(g->gc, &g->sync_timer);
}

struct assignment_node {
        struct group_map_node node;
        int32_t index;
};

/*
 * Gives every member its part of the leader's assignment (the last entry
 * for a member id wins; members without one get an empty assignment).
 * 0, or -ENOMEM with nothing changed.
 */
static int group_set_assignments(struct group *g, const struct group_assignment *as, int32_t count)
{
        int rc = -ENOMEM;
        struct group_map map = { 0 };
        struct assignment_node *nodes = calloc((size_t)count + 1, sizeof(*nodes));
        uint8_t **copies = calloc((size_t)g->member_count + 1, sizeof(*copies));
        int32_t *lens = calloc((size_t)g->member_count + 1, sizeof(*lens));
        if (!nodes || !copies || !lens)
                goto out;
        for (int32_t i = 0; i < count; i++) {
                struct kstr key = group_kstr_or_empty(as[i].member_id);
                struct group_map_node *n = group_map_find(&map, key);
                if (n) {
                        GROUP_CONTAINER_OF(n, struct assignment_node, node)->index = i;
                        continue;
                }
                nodes[i].node.key = key;
                nodes[i].index = i;
                if (group_map_insert(&map, &nodes[i].node) < 0)
                        goto out;
        }
        int32_t k = 0;
        for (struct group_member *m = g->members_head; m; m = m->next, k++) {
                struct group_map_node *n = group_map_find(&map, m->member_id);
                if (!n)
                        continue;
                struct kbytes a = as[GROUP_CONTAINER_OF(n, struct assignment_node, node)->index].assignment;
                if (a.len <= 0)
                        continue;
                copies[k] = malloc((size_t)a.len);
                if (!copies[k])
                        goto out;
                memcpy(copies[k], a.ptr, (size_t)a.len);
                lens[k] = a.len;
        }
        k = 0;
        for (struct group_member *m = g->members_head; m; m = m->next, k++) {
                free((void *)m->assignment.ptr);
                m->assignment = (struct kbytes){ copies[k], lens[k] };
                copies[k] = NULL;
        }
        rc = 0;
out:
        if (copies)
                for (int32_t i = 0; i < g->member_count; i++)
                        free(copies[i]);
        free(copies);
        free(lens);
        free(nodes);
        free(map.buckets);
        return rc;
}

void group_sync(struct group_coordinator *gc, const struct group_sync_request *rq, struct group_sync_waiter *w)
{
        assert(gc && rq && w && w->done);
        assert(rq->assignment_count >= 0 && (rq->assignment_count == 0 || rq->assignments));
        struct kstr member_id = group_kstr_or_empty(rq->member_id);
        if (group_kstr_is_empty(rq->group_id)) {
                group_sync_answer_error(w, KAFKA_INVALID_GROUP_ID);
                return;
        }
        struct group *g = group_find(gc, rq->group_id);
        if (!g || g->member_count == 0) {
                group_sync_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID);
                return;
        }
        int16_t err = validate_member(g, member_id, rq->group_instance_id);
        if (err == KAFKA_NONE && rq->generation_id != g->generation_id)
                err = KAFKA_ILLEGAL_GENERATION;
        if (err == KAFKA_NONE && (is_protocol_inconsistent(rq->protocol_type, g->protocol_type) ||
                                  is_protocol_inconsistent(rq->protocol_name, g->protocol_name)))
                err = KAFKA_INCONSISTENT_GROUP_PROTOCOL;
        if (err != KAFKA_NONE) {
                group_sync_answer_error(w, err);
                return;
        }
        struct group_member *m = group_find_member(g, member_id);
        assert(m);
        switch (g->state) {
        case GROUP_PREPARING_REBALANCE:
                group_sync_answer_error(w, KAFKA_REBALANCE_IN_PROGRESS);
                break;
        case GROUP_COMPLETING_REBALANCE:
                if (m->sync_waiter)
                        group_member_fail_sync(m, KAFKA_REBALANCE_IN_PROGRESS);       /* the newer wins */
                m->sync_waiter = w;
                remove_pending_sync(g, m);
                if (m != g->leader)
                        break;          /* waits for the leader's assignment */
                log_info("Assignment received from leader %s for group %s for generation %d; the group has %d "
                         "members", m->member_id.ptr, g->id.ptr, g->generation_id, g->member_count);
                if (group_set_assignments(g, rq->assignments, rq->assignment_count) < 0) {
                        log_error("group coordinator: out of memory storing the assignment of group %s",
                                  g->id.ptr);
                        group_reset_and_propagate_assignment_with_error(g, KAFKA_COORDINATOR_NOT_AVAILABLE);
                        group_maybe_prepare_rebalance_or_complete_join(g, "error storing the group assignment", KSTR_NULL);
                        break;
                }
                if (!gc->persist) {
                        group_propagate_assignment(g, KAFKA_NONE);
                        group_transition(g, GROUP_STABLE);
                        break;
                }
                /* Kafka's storeGroup: the members get the assignment once
                 * it is durable (group_sync_stored). */
                g->is_storing_assignment = true;
                gc->persist(gc->persist_ctx, g, false, true);
                break;
        case GROUP_STABLE: {
                remove_pending_sync(g, m);
                struct group_sync_result res = {
                        .error_code = KAFKA_NONE,
                        .protocol_type = g->protocol_type,
                        .protocol_name = g->protocol_name,
                        .assignment = m->assignment,
                };
                w->done(w, &res);
                break;
        }
        case GROUP_EMPTY:
        case GROUP_DEAD:
                assert(!"a group with members is never Empty or Dead");
                group_sync_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID);
                break;
        }
        group_check(g);
}

/* ---- Heartbeat ---- */

int16_t group_heartbeat(struct group_coordinator *gc, struct kstr group_id, struct kstr member_id,
                        struct kstr group_instance_id, int32_t generation_id)
{
        assert(gc);
        if (group_kstr_is_empty(group_id))
                return KAFKA_INVALID_GROUP_ID;
        struct group *g = group_find(gc, group_id);
        if (!g)
                return KAFKA_UNKNOWN_MEMBER_ID;
        member_id = group_kstr_or_empty(member_id);
        int16_t err = validate_member(g, member_id, group_instance_id);
        if (err != KAFKA_NONE)
                return err;
        if (generation_id != g->generation_id)
                return KAFKA_ILLEGAL_GENERATION;
        struct group_member *m = group_find_member(g, member_id);
        assert(m);
        switch (g->state) {
        case GROUP_PREPARING_REBALANCE:
                group_schedule_heartbeat(g, m, m->session_timeout_ms);
                return KAFKA_REBALANCE_IN_PROGRESS;
        case GROUP_COMPLETING_REBALANCE:
        case GROUP_STABLE:
                /* Members may heartbeat between their JoinGroup answer and
                 * their SyncGroup: a heartbeat like any other. */
                group_schedule_heartbeat(g, m, m->session_timeout_ms);
                return KAFKA_NONE;
        case GROUP_EMPTY:
        case GROUP_DEAD:
                break;
        }
        return KAFKA_UNKNOWN_MEMBER_ID;
}

/* ---- LeaveGroup ---- */

int16_t group_leave(struct group_coordinator *gc, struct kstr group_id, struct group_leave_member *members,
                    int32_t member_count)
{
        assert(gc && member_count >= 0 && (member_count == 0 || members));
        if (group_kstr_is_empty(group_id))
                return KAFKA_INVALID_GROUP_ID;
        struct group *g = group_find(gc, group_id);
        if (!g) {
                for (int32_t i = 0; i < member_count; i++)
                        members[i].error_code = KAFKA_UNKNOWN_MEMBER_ID;
                return KAFKA_NONE;
        }
        int32_t left = 0;
        for (int32_t i = 0; i < member_count; i++) {
                struct group_leave_member *lm = &members[i];
                struct kstr member_id = group_kstr_or_empty(lm->member_id);
                lm->error_code = KAFKA_NONE;
                if (member_id.len == 0) {
                        /* An administrator removing a static member by its
                         * instance id (kafka-consumer-groups --delete etc). */
                        struct group_member *sm = kstr_is_null(lm->group_instance_id) ? NULL :
                                                  group_find_static_member(g, lm->group_instance_id);
                        if (!sm) {
                                lm->error_code = KAFKA_UNKNOWN_MEMBER_ID;
                                continue;
                        }
                        log_info("Member %s has left group %s through an explicit LeaveGroup request",
                                 sm->member_id.ptr, g->id.ptr);
                        group_remove_member(g, sm, KAFKA_UNKNOWN_MEMBER_ID);
                        left++;
                        continue;
                }
                struct group_pending_member *pm = group_find_pending_member(g, member_id);
                if (pm) {
                        group_pending_free(g, pm);
                        left++;
                        continue;
                }
                int16_t err = validate_member(g, member_id, lm->group_instance_id);
                if (err != KAFKA_NONE) {
                        lm->error_code = err;
                        continue;
                }
                log_info("Member %.*s has left group %s through an explicit LeaveGroup request", member_id.len,
                         member_id.ptr, g->id.ptr);
                group_remove_member(g, group_find_member(g, member_id), KAFKA_UNKNOWN_MEMBER_ID);
                left++;
        }
        if (left > 0) {
                if (g->state == GROUP_STABLE || g->state == GROUP_COMPLETING_REBALANCE)
                        group_maybe_prepare_rebalance_or_complete_join(g, "explicit LeaveGroup request", KSTR_NULL);
                else if (g->state == GROUP_PREPARING_REBALANCE)
                        group_maybe_complete_join_phase(g);
        }
        group_check(g);
        return KAFKA_NONE;
}

/* ---- DeleteGroups ---- */

int16_t group_delete(struct group_coordinator *gc, struct kstr group_id)
{
        struct group *g = group_find(gc, group_id);
        if (!g)
                return KAFKA_GROUP_ID_NOT_FOUND;
        if (g->state != GROUP_EMPTY)
                return KAFKA_NON_EMPTY_GROUP;
        if (g->offsets) {
                if (gc->release_offsets)
                        gc->release_offsets(gc->release_ctx, g);
                g->offsets = NULL;
        }
        log_info("Group %s deleted", g->id.ptr);
        group_persist(g, true);
        group_free(g);
        return KAFKA_NONE;
}

/* ---- offsets ---- */

int16_t group_validate_offset_commit(const struct group *g, struct kstr member_id, struct kstr group_instance_id,
                                     int32_t generation_id, bool is_transactional)
{
        assert(g);
        member_id = group_kstr_or_empty(member_id);
        if (g->state == GROUP_DEAD)
                return KAFKA_COORDINATOR_NOT_AVAILABLE;
        /* Generation -1: the admin client, or a consumer that assigns its
         * own partitions; it may commit while nobody is in the group. */
        if (generation_id < 0 && g->state == GROUP_EMPTY)
                return KAFKA_NONE;
        if (generation_id >= 0 || member_id.len > 0 || !kstr_is_null(group_instance_id)) {
                int16_t err = validate_member(g, member_id, group_instance_id);
                if (err != KAFKA_NONE)
                        return err;
                if (generation_id != g->generation_id)
                        return KAFKA_ILLEGAL_GENERATION;
        } else if (!is_transactional && g->state != GROUP_EMPTY) {
                /* OffsetCommit v0 (no member, no generation) only into an
                 * empty group. */
                return KAFKA_UNKNOWN_MEMBER_ID;
        }
        /* The member knows the new generation but has not synced yet. */
        if (!is_transactional && g->state == GROUP_COMPLETING_REBALANCE)
                return KAFKA_REBALANCE_IN_PROGRESS;
        return KAFKA_NONE;
}

struct group *group_get_or_create(struct group_coordinator *gc, struct kstr group_id, int16_t *error_code)
{
        if (group_kstr_is_empty(group_id)) {
                *error_code = KAFKA_INVALID_GROUP_ID;
                return NULL;
        }
        struct group *g = group_find(gc, group_id);
        if (g)
                return g;
        return group_new(gc, group_id, error_code);
}

void group_offsets_released(struct group *g)
{
        assert(!g->offsets);
        if (g->state == GROUP_EMPTY && !g->expiry_timer)
                group_arm_expiry(g);
}
