/*
 * group_internal.h - what the files of the group coordinator share:
 * group.c (groups, members and the rebalance state machine),
 * group_requests.c (what each request does to a group) and group_store.c
 * (persistence and replay). No other file includes it;
 * everyone else uses group.h. Everything here runs on the coordinator's
 * thread, as the rest of the module.
 */
#ifndef RUNNEL_COORDINATOR_GROUP_INTERNAL_H
#define RUNNEL_COORDINATOR_GROUP_INTERNAL_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

struct group_coordinator {
        struct group_config cfg;
        struct group_env env;
        struct group_map groups;
        struct group *head, *tail;
        group_offsets_release_fn release_offsets;
        void *release_ctx;
        group_persist_fn persist;
        void *persist_ctx;
};

/* An owned, NUL-terminated copy; a null string stays null. false on ENOMEM. */
static inline bool group_kstr_dup(struct kstr *out, struct kstr s)
{
        if (s.len < 0) {
                *out = KSTR_NULL;
                return true;
        }
        char *p = malloc((size_t)s.len + 1);
        if (!p)
                return false;
        if (s.len > 0)
                memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
        *out = (struct kstr){ p, s.len };
        return true;
}

static inline void group_kstr_free(struct kstr *s)
{
        if (s->len >= 0)
                free((void *)s->ptr);
        *s = KSTR_NULL;
}

static inline bool group_kstr_is_empty(struct kstr s)
{
        return s.len <= 0;
}

/* A new, empty group named id, added to gc; NULL with *error_code
 * (COORDINATOR_NOT_AVAILABLE past GROUP_COUNT_MAX or out of memory). */
struct group *group_new(struct group_coordinator *gc, struct kstr id, int16_t *error_code);

/* Unlinks g from its coordinator and frees it with its members; their
 * parked requests are forgotten, not answered. g->offsets must be NULL. */
void group_free(struct group *g);

/* Asserts the invariants of group.h on g. */
void group_check(const struct group *g);

void group_transition(struct group *g, enum group_state to);

/* Answers every member's parked SyncGroup with its assignment (or error_code). */
void group_propagate_assignment(struct group *g, int16_t error_code);

/* Clears the assignment and answers the parked SyncGroups with error_code. */
void group_reset_and_propagate_assignment_with_error(struct group *g, int16_t error_code);

/* Kafka's maybePrepareRebalance, or completes the join at once when it can. */
void group_maybe_prepare_rebalance_or_complete_join(struct group *g, const char *reason, struct kstr who);

/* ---- what group.c offers group_requests.c ---- */

#define GROUP_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* A null string as an empty one. */
static inline struct kstr group_kstr_or_empty(struct kstr s)
{
        return s.len < 0 ? (struct kstr){ "", 0 } : s;
}

/* A length, null (-1) counted as 0. */
static inline int32_t group_span(int32_t len)
{
        return len > 0 ? len : 0;
}

/* The JoinGroup answer of member m in g's current generation: the member
 * list only when has_members (the leader's). */
struct group_join_result group_current_join_result(const struct group *g, const struct group_member *m,
                                                   struct kstr leader, bool has_members, bool skip_assignment);

/* The member that has a member id but has not joined yet (KIP-394), or NULL. */
struct group_pending_member *group_find_pending_member(const struct group *g, struct kstr member_id);

/* The static member of group.instance.id instance_id, or NULL. */
struct group_member *group_find_static_member(const struct group *g, struct kstr instance_id);

/* Adds m (from group_member_new) to g with its parked JoinGroup w (may be NULL).
 * Kafka's ClassicGroup.add. 0 or -ENOMEM, in which case nothing changed. */
int group_add_member(struct group *g, struct group_member *m, struct group_join_waiter *w);

/* Starts the timer after which an Empty group without offsets is removed. */
void group_arm_expiry(struct group *g);

/* Tells the persist hook (group_store.c) that g changed or is deleted. */
void group_persist(const struct group *g, bool is_deleted);

/*
 * Kafka's ClassicGroup.remove, with runnel's rule that nothing parked is
 * left behind: a waiting JoinGroup is answered UNKNOWN_MEMBER_ID (as Kafka
 * answers it) and a waiting SyncGroup sync_error. Frees m.
 */
void group_remove_member(struct group *g, struct group_member *m, int16_t sync_error);

/*
 * Kafka's replaceStaticMember: a static member rejoined without its member
 * id, so it gets new_id and takes over the old member's place (protocols,
 * assignment, leadership); requests the old one has parked are answered
 * FENCED_INSTANCE_ID. Returns the new member, or NULL on ENOMEM with
 * nothing changed. old is unlinked but not freed, so that its strings stay
 * valid for the caller; the caller frees it with group_member_free().
 */
struct group_member *group_replace_static_member(struct group *g, struct group_member *old,
                                                 struct kstr new_id);

/*
 * Kafka's ClassicGroup.selectProtocol: the candidates are the protocols
 * every member supports; each member votes for the first candidate in its
 * own order of preference; most votes wins. Ties go to the candidate the
 * first member prefers (Kafka's pick among ties depends on HashMap order).
 * Points into the first member's protocols.
 */
struct kstr group_select_protocol(const struct group *g);

/* Kafka's ClassicGroup.supportsProtocols. */
bool group_supports_protocols(const struct group *g, struct kstr protocol_type,
                              const struct group_protocol *protocols, int32_t count);

/* Kafka's ClassicGroup.updateMember: new protocols and timeouts, and w
 * parked. 0 or -ENOMEM (nothing changed). */
int group_update_member(struct group *g, struct group_member *m, const struct group_join_request *rq,
                        struct group_join_waiter *w);

/* Answers a JoinGroup that is not parked with error_code. */
void group_join_answer_error(struct group_join_waiter *w, int16_t error_code, struct kstr member_id);

/* The node of key, or NULL. */
struct group_map_node *group_map_find(const struct group_map *m, struct kstr key);

/* Inserts n, whose key is set and not in the map. 0 or -ENOMEM. */
int group_map_insert(struct group_map *m, struct group_map_node *n);

/* Completes the join phase when every member it waits for has joined. */
void group_maybe_complete_join_phase(struct group *g);

/* Answers m's parked JoinGroup with g's current generation. */
void group_member_complete_join_current(struct group *g, struct group_member *m, struct kstr leader,
                                        bool has_members, bool skip_assignment);

/* Answers m's parked SyncGroup with error_code. */
void group_member_fail_sync(struct group_member *m, int16_t error_code);

/* Frees a member no group holds any more. */
void group_member_free(struct group_member *m);

/* Kafka's ClassicGroupMember.matches: the same protocols, in the same order,
 * with the same metadata. */
bool group_member_matches(const struct group_member *m, const struct group_protocol *p, int32_t count);

/* A member from a JoinGroup, not yet in any group. NULL on ENOMEM. */
struct group_member *group_member_new(struct group *g, const struct group_join_request *rq, struct kstr member_id);

/* The timer of a pending member: it did not join in time and is forgotten. */
void group_pending_fired(void *arg);

/* Forgets a pending member. */
void group_pending_free(struct group *g, struct group_pending_member *pm);

/* Kafka's prepareRebalance: to PreparingRebalance, why logged. */
void group_prepare_rebalance(struct group *g, const char *reason, struct kstr who);

/* (Re)starts m's session timer: m is removed when it fires. */
void group_schedule_heartbeat(struct group *g, struct group_member *m, int64_t timeout_ms);

/* Answers a SyncGroup that is not parked with error_code. */
void group_sync_answer_error(struct group_sync_waiter *w, int16_t error_code);

/* Cancels the timer in *id, if any, and clears it. */
void group_timer_cancel(struct group_coordinator *gc, group_timer_id *id);

/* Kafka's timer.schedule(key, ...): replaces what the key had. */
void group_timer_set(struct group_coordinator *gc, group_timer_id *id, int64_t delay_ms, group_timer_fn fn,
                     void *arg);

#endif
