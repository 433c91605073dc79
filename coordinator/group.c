/*
 * group.c - the classic group state machine (see group.h for the states,
 * the waiting rules and the invariants).
 *
 * The code follows the shape of Kafka's GroupMetadataManager so that a
 * reader can check one against the other: group_prepare_rebalance,
 * complete_join, the initial-rebalance delay, heartbeat and pending-sync
 * expiry here; join_new_member, join_existing_member,
 * add_member_then_rebalance and the other request handlers in
 * group_requests.c. Where Kafka writes a GroupMetadata record and continues in the
 * append callback, runnel keeps membership in memory only and continues at
 * once (a restarted broker starts with no groups; members rejoin, which is
 * what Kafka clients do after a coordinator change anyway).
 *
 * Where Kafka would leave a parked request unanswered (a second JoinGroup
 * or SyncGroup from the same member, a member removed while its SyncGroup
 * waits), runnel answers the old one with an error: a parked request must
 * complete, or its connection stalls behind it.
 *
 * Memory: groups, members and their strings are malloc'd, one allocation
 * per string set; nothing is allocated per heartbeat.
 *
 * What each request does to a group is group_requests.c; which partition
 * a group lives in, group_partition.c; what is stored of a group and how
 * it is restored, group_store.c.
 */
#include "group.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "group_internal.h"

#include "../base/logging.h"
#include "../protocol/gen/errors.h"

void group_persist(const struct group *g, bool is_deleted)
{
        if (g->gc->persist)
                g->gc->persist(g->gc->persist_ctx, g, is_deleted, false);
}

static void complete_join(struct group *g);

/* ---- states ---- */

static const char *const state_names[] = {
        [GROUP_EMPTY] = "Empty",
        [GROUP_PREPARING_REBALANCE] = "PreparingRebalance",
        [GROUP_COMPLETING_REBALANCE] = "CompletingRebalance",
        [GROUP_STABLE] = "Stable",
        [GROUP_DEAD] = "Dead",
};

const char *group_state_name(enum group_state state)
{
        assert((unsigned)state <= GROUP_DEAD);
        return state_names[state];
}

bool group_state_parse(struct kstr s, enum group_state *out)
{
        const char *p = s.ptr;
        int32_t n = s.len;
        while (n > 0 && (unsigned char)*p <= ' ') {
                p++;
                n--;
        }
        while (n > 0 && (unsigned char)p[n - 1] <= ' ')
                n--;
        for (int i = 0; i <= GROUP_DEAD; i++) {
                if ((size_t)n == strlen(state_names[i]) && strncasecmp(p, state_names[i], (size_t)n) == 0) {
                        *out = (enum group_state)i;
                        return true;
                }
        }
        return false;
}

/* Kafka's ClassicGroupState.validPreviousStates. */
static bool is_valid_transition(enum group_state from, enum group_state to)
{
        switch (to) {
        case GROUP_EMPTY:
                return from == GROUP_PREPARING_REBALANCE;
        case GROUP_PREPARING_REBALANCE:
                return from == GROUP_STABLE || from == GROUP_COMPLETING_REBALANCE || from == GROUP_EMPTY;
        case GROUP_COMPLETING_REBALANCE:
                return from == GROUP_PREPARING_REBALANCE;
        case GROUP_STABLE:
                return from == GROUP_COMPLETING_REBALANCE;
        case GROUP_DEAD:
                return true;
        }
        return false;
}

/* ---- a string-keyed hash map of intrusive nodes ---- */

static uint64_t group_map_hash(struct kstr k)
{
        uint64_t x = 1469598103934665603ULL;
        for (int32_t i = 0; i < k.len; i++)
                x = (x ^ (uint8_t)k.ptr[i]) * 1099511628211ULL;
        return x;
}

struct group_map_node *group_map_find(const struct group_map *m, struct kstr key)
{
        if (m->bucket_count == 0 || key.len < 0)
                return NULL;
        uint64_t h = group_map_hash(key);
        for (struct group_map_node *n = m->buckets[h & (m->bucket_count - 1)]; n; n = n->next)
                if (n->hash == h && kstr_eq(n->key, key))
                        return n;
        return NULL;
}

static int group_map_grow(struct group_map *m)
{
        uint32_t count = m->bucket_count ? m->bucket_count * 2 : 8;
        struct group_map_node **b = calloc(count, sizeof(*b));
        if (!b)
                return -ENOMEM;
        for (uint32_t i = 0; i < m->bucket_count; i++) {
                struct group_map_node *n = m->buckets[i];
                while (n) {
                        struct group_map_node *next = n->next;
                        n->next = b[n->hash & (count - 1)];
                        b[n->hash & (count - 1)] = n;
                        n = next;
                }
        }
        free(m->buckets);
        m->buckets = b;
        m->bucket_count = count;
        return 0;
}

/* Inserts n, whose key is set and not in the map. 0 or -ENOMEM. */
int group_map_insert(struct group_map *m, struct group_map_node *n)
{
        assert(n->key.len >= 0);
        assert(!group_map_find(m, n->key));
        if ((uint64_t)(m->count + 1) * 4 > (uint64_t)m->bucket_count * 3) {
                /* A full table only gets slower; an empty one cannot hold n. */
                if (group_map_grow(m) < 0 && m->bucket_count == 0)
                        return -ENOMEM;
        }
        n->hash = group_map_hash(n->key);
        struct group_map_node **b = &m->buckets[n->hash & (m->bucket_count - 1)];
        n->next = *b;
        *b = n;
        m->count++;
        return 0;
}

static void group_map_remove(struct group_map *m, struct group_map_node *n)
{
        assert(m->bucket_count > 0 && m->count > 0);
        struct group_map_node **p = &m->buckets[n->hash & (m->bucket_count - 1)];
        while (*p != n) {
                assert(*p);
                p = &(*p)->next;
        }
        *p = n->next;
        n->next = NULL;
        m->count--;
}

static void group_map_free(struct group_map *m)
{
        assert(m->count == 0);
        free(m->buckets);
        m->buckets = NULL;
        m->bucket_count = 0;
}

/* ---- small helpers ---- */

static int32_t max_i32(int32_t a, int32_t b)
{
        return a > b ? a : b;
}

/* ---- timers ---- */

void group_timer_cancel(struct group_coordinator *gc, group_timer_id *id)
{
        if (*id) {
                gc->env.timer_cancel(gc->env.ctx, *id);
                *id = 0;
        }
}

/* Kafka's timer.schedule(key, ...): replaces what the key had. */
void group_timer_set(struct group_coordinator *gc, group_timer_id *id, int64_t delay_ms, group_timer_fn fn,
                     void *arg)
{
        group_timer_cancel(gc, id);
        *id = gc->env.timer_add(gc->env.ctx, delay_ms > 0 ? (uint64_t)delay_ms : 0, fn, arg);
        if (*id == 0)
                log_error("group coordinator: cannot arm a timer (timer table full or out of memory); "
                          "a rebalance may stall until the client retries");
}

/* ---- members ---- */

struct group_member *group_find_member(const struct group *g, struct kstr member_id)
{
        struct group_map_node *n = group_map_find(&g->members_by_id, member_id);
        return n ? GROUP_CONTAINER_OF(n, struct group_member, by_id) : NULL;
}

struct group_member *group_find_static_member(const struct group *g, struct kstr instance_id)
{
        struct group_map_node *n = group_map_find(&g->members_by_instance, instance_id);
        return n ? GROUP_CONTAINER_OF(n, struct group_member, by_instance) : NULL;
}

struct group_pending_member *group_find_pending_member(const struct group *g, struct kstr member_id)
{
        struct group_map_node *n = group_map_find(&g->pending_members, member_id);
        return n ? GROUP_CONTAINER_OF(n, struct group_pending_member, node) : NULL;
}

static bool member_is_static(const struct group_member *m)
{
        return !kstr_is_null(m->group_instance_id);
}

struct kbytes group_member_metadata(const struct group_member *m, struct kstr protocol_name)
{
        for (int32_t i = 0; i < m->protocol_count; i++)
                if (kstr_eq(m->protocols[i].name, protocol_name))
                        return m->protocols[i].metadata;
        return KBYTES_NULL;
}

static bool member_supports(const struct group_member *m, struct kstr protocol_name)
{
        return group_member_metadata(m, protocol_name).len >= 0;
}

/* The protocols copied into one allocation (names and metadata after the
 * array); a null name or metadata becomes empty. NULL on ENOMEM. */
static struct group_protocol *protocols_dup(const struct group_protocol *in, int32_t count)
{
        assert(count >= 0);
        size_t bytes = (size_t)count * sizeof(struct group_protocol) + 1;
        for (int32_t i = 0; i < count; i++)
                bytes += (size_t)group_span(in[i].name.len) + 1 + (size_t)group_span(in[i].metadata.len);
        struct group_protocol *out = malloc(bytes);
        if (!out)
                return NULL;
        char *at = (char *)(out + count);
        for (int32_t i = 0; i < count; i++) {
                int32_t n = group_span(in[i].name.len);
                if (n)
                        memcpy(at, in[i].name.ptr, (size_t)n);
                at[n] = '\0';
                out[i].name = (struct kstr){ at, n };
                at += n + 1;
                int32_t b = group_span(in[i].metadata.len);
                if (b)
                        memcpy(at, in[i].metadata.ptr, (size_t)b);
                out[i].metadata = (struct kbytes){ (const uint8_t *)at, b };
                at += b;
        }
        assert((size_t)(at - (char *)out) < bytes);
        return out;
}

static bool bytes_same(struct kbytes a, struct kbytes b)
{
        int32_t n = group_span(a.len);
        return n == group_span(b.len) && (n == 0 || memcmp(a.ptr, b.ptr, (size_t)n) == 0);
}

/* Kafka's ClassicGroupMember.matches: the same protocols, in the same order,
 * with the same metadata. */
bool group_member_matches(const struct group_member *m, const struct group_protocol *p, int32_t count)
{
        if (m->protocol_count != count)
                return false;
        for (int32_t i = 0; i < count; i++)
                if (!kstr_eq(m->protocols[i].name, group_kstr_or_empty(p[i].name)) ||
                    !bytes_same(m->protocols[i].metadata, p[i].metadata))
                        return false;
        return true;
}

void group_member_free(struct group_member *m)
{
        if (!m)
                return;
        assert(!m->join_waiter && !m->sync_waiter);
        assert(m->heartbeat_timer == 0);
        group_kstr_free(&m->member_id);
        group_kstr_free(&m->group_instance_id);
        group_kstr_free(&m->client_id);
        group_kstr_free(&m->client_host);
        group_kstr_free(&m->protocol_type);
        free(m->protocols);
        free((void *)m->assignment.ptr);
        free(m);
}

/* A member from a JoinGroup, not yet in any group. NULL on ENOMEM. */
struct group_member *group_member_new(struct group *g, const struct group_join_request *rq, struct kstr member_id)
{
        struct group_member *m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        m->member_id = KSTR_NULL;
        m->group_instance_id = KSTR_NULL;
        m->client_id = KSTR_NULL;
        m->client_host = KSTR_NULL;
        m->protocol_type = KSTR_NULL;
        m->assignment = (struct kbytes){ NULL, 0 };
        if (!group_kstr_dup(&m->member_id, member_id) || !group_kstr_dup(&m->group_instance_id, rq->group_instance_id) ||
            !group_kstr_dup(&m->client_id, group_kstr_or_empty(rq->client_id)) ||
            !group_kstr_dup(&m->client_host, group_kstr_or_empty(rq->client_host)) ||
            !group_kstr_dup(&m->protocol_type, group_kstr_or_empty(rq->protocol_type)))
                goto out_free;
        m->protocols = protocols_dup(rq->protocols, rq->protocol_count);
        if (!m->protocols)
                goto out_free;
        m->protocol_count = rq->protocol_count;
        m->group = g;
        m->session_timeout_ms = rq->session_timeout_ms;
        m->rebalance_timeout_ms = rq->rebalance_timeout_ms;
        m->is_new = true;
        m->by_id.key = m->member_id;
        m->by_instance.key = m->group_instance_id;
        return m;
out_free:
        group_member_free(m);
        return NULL;
}

/* ---- answering parked requests ---- */

static void member_complete_join(struct group *g, struct group_member *m, const struct group_join_result *res)
{
        struct group_join_waiter *w = m->join_waiter;
        assert(w && g->awaiting_join_count > 0);
        m->join_waiter = NULL;
        g->awaiting_join_count--;
        w->done(w, res);
}

static void member_complete_sync(struct group_member *m, const struct group_sync_result *res)
{
        struct group_sync_waiter *w = m->sync_waiter;
        assert(w);
        m->sync_waiter = NULL;
        w->done(w, res);
}

void group_join_answer_error(struct group_join_waiter *w, int16_t error_code, struct kstr member_id)
{
        struct group_join_result res = {
                .error_code = error_code,
                .generation_id = -1,
                .protocol_type = KSTR_NULL,
                .protocol_name = KSTR_NULL,
                .leader = (struct kstr){ "", 0 },
                .member_id = group_kstr_or_empty(member_id),
        };
        w->done(w, &res);
}

static void member_fail_join(struct group *g, struct group_member *m, int16_t error_code, struct kstr member_id)
{
        struct group_join_result res = {
                .error_code = error_code,
                .generation_id = -1,
                .protocol_type = KSTR_NULL,
                .protocol_name = KSTR_NULL,
                .leader = (struct kstr){ "", 0 },
                .member_id = member_id,
        };
        member_complete_join(g, m, &res);
}

void group_sync_answer_error(struct group_sync_waiter *w, int16_t error_code)
{
        struct group_sync_result res = {
                .error_code = error_code,
                .protocol_type = KSTR_NULL,
                .protocol_name = KSTR_NULL,
                .assignment = (struct kbytes){ NULL, 0 },
        };
        w->done(w, &res);
}

void group_member_fail_sync(struct group_member *m, int16_t error_code)
{
        struct group_sync_result res = {
                .error_code = error_code,
                .protocol_type = KSTR_NULL,
                .protocol_name = KSTR_NULL,
                .assignment = (struct kbytes){ NULL, 0 },
        };
        member_complete_sync(m, &res);
}

/* The current generation, to a member whose JoinGroup needs no rebalance. */
/* The JoinGroup answer of member m in g's current generation: the member
 * list only when has_members (the leader's). */
struct group_join_result group_current_join_result(const struct group *g, const struct group_member *m,
                                                   struct kstr leader, bool has_members, bool skip_assignment)
{
        assert(g->state == GROUP_COMPLETING_REBALANCE || g->state == GROUP_STABLE);
        return (struct group_join_result){
                .error_code = KAFKA_NONE,
                .generation_id = g->generation_id,
                .protocol_type = g->protocol_type,
                .protocol_name = g->protocol_name,
                .leader = leader,
                .member_id = m->member_id,
                .skip_assignment = skip_assignment,
                .members_of = has_members ? g : NULL,
        };
}

void group_member_complete_join_current(struct group *g, struct group_member *m, struct kstr leader,
                                        bool has_members, bool skip_assignment)
{
        struct group_join_result res = group_current_join_result(g, m, leader, has_members, skip_assignment);
        member_complete_join(g, m, &res);
}

/* ---- invariants ---- */

void group_check(const struct group *g)
{
#ifndef NDEBUG
        int32_t n = 0, awaiting = 0, pending_sync = 0, statics = 0;
        const struct group_member *prev = NULL;
        for (const struct group_member *m = g->members_head; m; m = m->next) {
                assert(m->group == g && m->prev == prev);
                assert(group_find_member(g, m->member_id) == m);
                if (member_is_static(m)) {
                        assert(group_find_static_member(g, m->group_instance_id) == m);
                        statics++;
                }
                assert(!m->sync_waiter || g->state == GROUP_COMPLETING_REBALANCE);
                n++;
                awaiting += m->join_waiter != NULL;
                pending_sync += m->is_pending_sync;
                prev = m;
        }
        assert(prev == g->members_tail);
        assert(n == g->member_count && n == (int32_t)g->members_by_id.count);
        assert(statics == (int32_t)g->members_by_instance.count);
        assert(awaiting == g->awaiting_join_count && pending_sync == g->pending_sync_count);
        assert((g->leader == NULL) == (n == 0));
        assert(!g->leader || group_find_member(g, g->leader->member_id) == g->leader);
        if (g->state == GROUP_COMPLETING_REBALANCE || g->state == GROUP_STABLE)
                assert(!kstr_is_null(g->protocol_name));
        if (g->state == GROUP_EMPTY)
                assert(kstr_is_null(g->protocol_name));
        assert(g->state != GROUP_EMPTY || n == 0);
        assert(g->state != GROUP_DEAD);
#else
        (void)g;
#endif
}

/* ---- groups ---- */

static void expiry_fired(void *arg);

void group_arm_expiry(struct group *g)
{
        if (g->state == GROUP_EMPTY && !g->offsets)
                group_timer_set(g->gc, &g->expiry_timer, g->gc->cfg.empty_group_retention_ms, expiry_fired, g);
}

void group_transition(struct group *g, enum group_state to)
{
        assert(is_valid_transition(g->state, to));
        if (g->state == GROUP_EMPTY)
                group_timer_cancel(g->gc, &g->expiry_timer);
        g->previous_state = g->state;
        g->state = to;
        g->state_timestamp_ms = g->gc->env.now_ms(g->gc->env.ctx);
        g->is_storing_assignment = false;       /* a store still in flight is stale now */
        if (to == GROUP_EMPTY)
                group_arm_expiry(g);
}

struct group *group_new(struct group_coordinator *gc, struct kstr id, int16_t *error_code)
{
        assert(id.len > 0 && !group_map_find(&gc->groups, id));
        if (gc->groups.count >= GROUP_COUNT_MAX) {
                log_warn("group coordinator: refusing group %.*s: this coordinator already holds %u groups",
                         id.len, id.ptr, gc->groups.count);
                *error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
                return NULL;
        }
        struct group *g = calloc(1, sizeof(*g));
        if (!g)
                goto out_nomem;
        if (!group_kstr_dup(&g->id, id))
                goto out_free;
        g->gc = gc;
        g->node.key = g->id;
        g->protocol_type = KSTR_NULL;
        g->protocol_name = KSTR_NULL;
        g->state = GROUP_EMPTY;
        g->previous_state = GROUP_DEAD;
        g->state_timestamp_ms = gc->env.now_ms(gc->env.ctx);
        if (group_map_insert(&gc->groups, &g->node) < 0)
                goto out_free;
        g->prev = gc->tail;
        if (gc->tail)
                gc->tail->next = g;
        else
                gc->head = g;
        gc->tail = g;
        group_arm_expiry(g);
        return g;
out_free:
        if (g)
                group_kstr_free(&g->id);
        free(g);
out_nomem:
        log_error("group coordinator: out of memory creating group %.*s", id.len, id.ptr);
        *error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
        return NULL;
}

void group_pending_free(struct group *g, struct group_pending_member *pm)
{
        group_map_remove(&g->pending_members, &pm->node);
        group_timer_cancel(g->gc, &pm->timer);
        group_kstr_free(&pm->node.key);
        free(pm);
}

/* Unlinks m from the group's list and id maps (not from leader, counts). */
static void member_unlink(struct group *g, struct group_member *m)
{
        group_map_remove(&g->members_by_id, &m->by_id);
        if (member_is_static(m))
                group_map_remove(&g->members_by_instance, &m->by_instance);
        if (m->prev)
                m->prev->next = m->next;
        else
                g->members_head = m->next;
        if (m->next)
                m->next->prev = m->prev;
        else
                g->members_tail = m->prev;
        m->prev = m->next = NULL;
}

/*
 * Kafka's ClassicGroup.remove, with runnel's rule that nothing parked is
 * left behind: a waiting JoinGroup is answered UNKNOWN_MEMBER_ID (as Kafka
 * answers it) and a waiting SyncGroup sync_error. Frees m.
 */
void group_remove_member(struct group *g, struct group_member *m, int16_t sync_error)
{
        assert(m->group == g && g->member_count > 0);
        if (m->join_waiter)
                member_fail_join(g, m, KAFKA_UNKNOWN_MEMBER_ID, (struct kstr){ "", 0 });
        if (m->sync_waiter)
                group_member_fail_sync(m, sync_error);
        group_timer_cancel(g->gc, &m->heartbeat_timer);
        member_unlink(g, m);
        g->member_count--;
        if (m->is_pending_sync) {
                m->is_pending_sync = false;
                g->pending_sync_count--;
        }
        if (g->leader == m)
                g->leader = g->members_head;
        struct group_pending_member *pm = group_find_pending_member(g, m->member_id);
        if (pm)
                group_pending_free(g, pm);
        group_member_free(m);
}

/* Frees a group and everything in it. Waiters still parked are dropped
 * (only when the coordinator is destroyed). */
void group_free(struct group *g)
{
        struct group_coordinator *gc = g->gc;
        assert(!g->offsets);
        group_timer_cancel(gc, &g->join_timer);
        group_timer_cancel(gc, &g->sync_timer);
        group_timer_cancel(gc, &g->expiry_timer);
        while (g->members_head) {
                struct group_member *m = g->members_head;
                if (m->join_waiter) {
                        m->join_waiter = NULL;
                        g->awaiting_join_count--;
                }
                m->sync_waiter = NULL;
                group_remove_member(g, m, KAFKA_COORDINATOR_NOT_AVAILABLE);
        }
        assert(g->member_count == 0 && g->awaiting_join_count == 0 && g->pending_sync_count == 0);
        for (uint32_t i = 0; i < g->pending_members.bucket_count; i++)
                while (g->pending_members.buckets && g->pending_members.buckets[i])
                        group_pending_free(g, GROUP_CONTAINER_OF(g->pending_members.buckets[i],
                                                                 struct group_pending_member, node));
        group_map_free(&g->members_by_id);
        group_map_free(&g->members_by_instance);
        group_map_free(&g->pending_members);
        group_map_remove(&gc->groups, &g->node);
        if (g->prev)
                g->prev->next = g->next;
        else
                gc->head = g->next;
        if (g->next)
                g->next->prev = g->prev;
        else
                gc->tail = g->prev;
        group_kstr_free(&g->id);
        group_kstr_free(&g->protocol_type);
        group_kstr_free(&g->protocol_name);
        free(g);
}

static void expiry_fired(void *arg)
{
        struct group *g = arg;
        g->expiry_timer = 0;
        if (g->state != GROUP_EMPTY || g->offsets)
                return;
        if (g->pending_members.count > 0) {
                group_arm_expiry(g);    /* a member id handed out; wait for it */
                return;
        }
        log_debug("group coordinator: removing empty group %s", g->id.ptr);
        group_persist(g, true);
        group_free(g);
}

/* Kafka's ClassicGroup.rebalanceTimeoutMs: the largest of the members'. */
static int32_t group_rebalance_timeout_ms(const struct group *g)
{
        int32_t t = 0;
        for (const struct group_member *m = g->members_head; m; m = m->next)
                t = max_i32(t, m->rebalance_timeout_ms);
        return t;
}

static bool group_has_all_members_joined(const struct group *g)
{
        return g->member_count == g->awaiting_join_count && g->pending_members.count == 0;
}

/* Whether every member supports the protocol (vacuously true without members). */
static bool group_is_supported_by_all(const struct group *g, struct kstr protocol_name)
{
        for (const struct group_member *m = g->members_head; m; m = m->next)
                if (!member_supports(m, protocol_name))
                        return false;
        return true;
}

/* Kafka's ClassicGroup.supportsProtocols. */
bool group_supports_protocols(const struct group *g, struct kstr protocol_type,
                              const struct group_protocol *protocols, int32_t count)
{
        if (g->state == GROUP_EMPTY)
                return !group_kstr_is_empty(protocol_type) && count > 0;
        if (kstr_is_null(g->protocol_type) || !kstr_eq(g->protocol_type, protocol_type))
                return false;
        for (int32_t i = 0; i < count; i++)
                if (group_is_supported_by_all(g, group_kstr_or_empty(protocols[i].name)))
                        return true;
        return false;
}

/*
 * Kafka's ClassicGroup.selectProtocol: the candidates are the protocols
 * every member supports; each member votes for the first candidate in its
 * own order of preference; most votes wins. Ties go to the candidate the
 * first member prefers (Kafka's pick among ties depends on HashMap order).
 * Points into the first member's protocols.
 */
struct kstr group_select_protocol(const struct group *g)
{
        const struct group_member *first = g->members_head;
        assert(first);
        int32_t n = first->protocol_count;
        int32_t *votes = calloc((size_t)n + 1, sizeof(*votes));
        bool *is_candidate = calloc((size_t)n + 1, sizeof(*is_candidate));
        struct kstr chosen = KSTR_NULL;
        if (!votes || !is_candidate)
                goto fallback;
        for (int32_t i = 0; i < n; i++) {
                is_candidate[i] = group_is_supported_by_all(g, first->protocols[i].name);
                for (int32_t j = 0; j < i && is_candidate[i]; j++)
                        if (kstr_eq(first->protocols[j].name, first->protocols[i].name))
                                is_candidate[i] = false;        /* counted under its first mention */
        }
        for (const struct group_member *m = g->members_head; m; m = m->next) {
                int32_t vote = -1;
                for (int32_t p = 0; p < m->protocol_count && vote < 0; p++)
                        for (int32_t i = 0; i < n && vote < 0; i++)
                                if (is_candidate[i] && kstr_eq(first->protocols[i].name, m->protocols[p].name))
                                        vote = i;
                assert(vote >= 0);      /* joins only admit members sharing a protocol with all */
                if (vote >= 0)
                        votes[vote]++;
        }
        int32_t best = -1;
        for (int32_t i = 0; i < n; i++)
                if (is_candidate[i] && (best < 0 || votes[i] > votes[best]))
                        best = i;
        if (best >= 0)
                chosen = first->protocols[best].name;
fallback:
        if (kstr_is_null(chosen)) {
                for (int32_t i = 0; i < n && kstr_is_null(chosen); i++)
                        if (group_is_supported_by_all(g, first->protocols[i].name))
                                chosen = first->protocols[i].name;
        }
        free(votes);
        free(is_candidate);
        assert(!kstr_is_null(chosen));
        return chosen;
}

/* Adds m (from member_new) to g with its parked JoinGroup w (may be NULL).
 * Kafka's ClassicGroup.add. 0 or -ENOMEM, in which case nothing changed. */
int group_add_member(struct group *g, struct group_member *m, struct group_join_waiter *w)
{
        assert(m->group == g && !group_find_member(g, m->member_id));
        struct kstr type = KSTR_NULL;
        if (g->member_count == 0 && !group_kstr_dup(&type, m->protocol_type))
                return -ENOMEM;
        if (group_map_insert(&g->members_by_id, &m->by_id) < 0)
                goto out_free_type;
        if (member_is_static(m)) {
                assert(!group_find_static_member(g, m->group_instance_id));
                if (group_map_insert(&g->members_by_instance, &m->by_instance) < 0) {
                        group_map_remove(&g->members_by_id, &m->by_id);
                        goto out_free_type;
                }
        }
        if (g->member_count == 0) {
                group_kstr_free(&g->protocol_type);
                g->protocol_type = type;
        }
        assert(kstr_eq(g->protocol_type, m->protocol_type));
        m->prev = g->members_tail;
        if (g->members_tail)
                g->members_tail->next = m;
        else
                g->members_head = m;
        g->members_tail = m;
        g->member_count++;
        if (!g->leader)
                g->leader = m;
        m->join_waiter = w;
        if (w)
                g->awaiting_join_count++;
        struct group_pending_member *pm = group_find_pending_member(g, m->member_id);
        if (pm)
                group_pending_free(g, pm);
        return 0;
out_free_type:
        group_kstr_free(&type);
        return -ENOMEM;
}

/* Kafka's ClassicGroup.updateMember: new protocols and timeouts, and w
 * parked. 0 or -ENOMEM (nothing changed). */
int group_update_member(struct group *g, struct group_member *m, const struct group_join_request *rq,
                        struct group_join_waiter *w)
{
        struct group_protocol *p = protocols_dup(rq->protocols, rq->protocol_count);
        if (!p)
                return -ENOMEM;
        free(m->protocols);
        m->protocols = p;
        m->protocol_count = rq->protocol_count;
        m->rebalance_timeout_ms = rq->rebalance_timeout_ms;
        m->session_timeout_ms = rq->session_timeout_ms;
        if (m->join_waiter) {
                /* A second JoinGroup while the first waits: the newer wins. */
                member_fail_join(g, m, KAFKA_REBALANCE_IN_PROGRESS, m->member_id);
        }
        m->join_waiter = w;
        g->awaiting_join_count++;
        return 0;
}

/*
 * Kafka's replaceStaticMember: a static member rejoined without its member
 * id, so it gets new_id and takes over the old member's place (protocols,
 * assignment, leadership); requests the old one has parked are answered
 * FENCED_INSTANCE_ID. Returns the new member, or NULL on ENOMEM with
 * nothing changed. old is unlinked but not freed, so that its strings stay
 * valid for the caller; the caller frees it with member_free().
 */
struct group_member *group_replace_static_member(struct group *g, struct group_member *old,
                                                 struct kstr new_id)
{
        assert(member_is_static(old));
        struct group_member *m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        m->member_id = m->group_instance_id = m->client_id = m->client_host = m->protocol_type = KSTR_NULL;
        if (!group_kstr_dup(&m->member_id, new_id) || !group_kstr_dup(&m->group_instance_id, old->group_instance_id) ||
            !group_kstr_dup(&m->client_id, old->client_id) || !group_kstr_dup(&m->client_host, old->client_host) ||
            !group_kstr_dup(&m->protocol_type, old->protocol_type))
                goto out_free;
        m->protocols = protocols_dup(old->protocols, old->protocol_count);
        if (!m->protocols)
                goto out_free;
        m->protocol_count = old->protocol_count;
        if (old->assignment.len > 0) {
                uint8_t *a = malloc((size_t)old->assignment.len);
                if (!a)
                        goto out_free;
                memcpy(a, old->assignment.ptr, (size_t)old->assignment.len);
                m->assignment = (struct kbytes){ a, old->assignment.len };
        }
        m->group = g;
        m->session_timeout_ms = old->session_timeout_ms;
        m->rebalance_timeout_ms = old->rebalance_timeout_ms;
        m->by_id.key = m->member_id;
        m->by_instance.key = m->group_instance_id;

        if (old->join_waiter)
                member_fail_join(g, old, KAFKA_FENCED_INSTANCE_ID, old->member_id);
        if (old->sync_waiter)
                group_member_fail_sync(old, KAFKA_FENCED_INSTANCE_ID);
        group_timer_cancel(g->gc, &old->heartbeat_timer);

        /* Same place in the list, so join order is kept. */
        m->prev = old->prev;
        m->next = old->next;
        group_map_remove(&g->members_by_id, &old->by_id);
        group_map_remove(&g->members_by_instance, &old->by_instance);
        int rc = group_map_insert(&g->members_by_id, &m->by_id);
        assert(rc == 0);        /* the tables have buckets: insert cannot fail */
        rc = group_map_insert(&g->members_by_instance, &m->by_instance);
        assert(rc == 0);
        (void)rc;
        if (m->prev)
                m->prev->next = m;
        else
                g->members_head = m;
        if (m->next)
                m->next->prev = m;
        else
                g->members_tail = m;
        old->prev = old->next = NULL;
        if (g->leader == old)
                g->leader = m;
        m->is_pending_sync = old->is_pending_sync;
        old->is_pending_sync = false;
        return m;
out_free:
        group_member_free(m);
        return NULL;
}

/* ---- timers of members ---- */

static void remove_member_and_update_group(struct group *g, struct group_member *m, const char *reason);

static void heartbeat_fired(void *arg)
{
        struct group_member *m = arg;
        struct group *g = m->group;
        m->heartbeat_timer = 0;
        /* Kafka's hasSatisfiedHeartbeat: a member waiting in a rebalance is
         * alive by definition, unless it is new (it cannot heartbeat yet). */
        if (!m->is_new && (m->join_waiter || m->sync_waiter))
                return;
        log_info("Member %s in group %s has failed, removing it from the group", m->member_id.ptr, g->id.ptr);
        remove_member_and_update_group(g, m, "removing member on heartbeat expiration");
}

void group_schedule_heartbeat(struct group *g, struct group_member *m, int64_t timeout_ms)
{
        group_timer_set(g->gc, &m->heartbeat_timer, timeout_ms, heartbeat_fired, m);
}

void group_pending_fired(void *arg)
{
        struct group_pending_member *pm = arg;
        struct group *g = pm->group;
        pm->timer = 0;
        log_info("Pending member %s in group %s has been removed after session timeout expiration",
                 pm->node.key.ptr, g->id.ptr);
        group_pending_free(g, pm);
        if (g->state == GROUP_PREPARING_REBALANCE && group_has_all_members_joined(g))
                complete_join(g);
        else
                group_check(g);
}

/* ---- the join phase ---- */

static void join_timer_fired(void *arg)
{
        struct group *g = arg;
        g->join_timer = 0;
        complete_join(g);
}

/* Kafka's tryCompleteInitialRebalanceElseSchedule: while new members keep
 * arriving, the first rebalance of an empty group waits a little longer,
 * up to its rebalance timeout. */
static void initial_delay_fired(void *arg)
{
        struct group *g = arg;
        struct group_coordinator *gc = g->gc;
        g->join_timer = 0;
        int32_t delay_ms = g->initial_delay_ms;
        int32_t remaining_ms = g->initial_remaining_ms;
        if (g->is_new_member_added && remaining_ms != 0) {
                g->is_new_member_added = false;
                g->initial_delay_ms = remaining_ms < gc->cfg.initial_rebalance_delay_ms ?
                                      remaining_ms : gc->cfg.initial_rebalance_delay_ms;
                g->initial_remaining_ms = max_i32(remaining_ms - delay_ms, 0);
                group_timer_set(gc, &g->join_timer, g->initial_delay_ms, initial_delay_fired, g);
                return;
        }
        complete_join(g);
}

void group_maybe_complete_join_phase(struct group *g)
{
        if (g->state != GROUP_PREPARING_REBALANCE)
                return;
        if (g->previous_state == GROUP_EMPTY)
                return;         /* the initial rebalance ends with its delay */
        if (!group_has_all_members_joined(g))
                return;
        complete_join(g);
}

void group_maybe_prepare_rebalance_or_complete_join(struct group *g, const char *reason, struct kstr who)
{
        if (g->state == GROUP_STABLE || g->state == GROUP_COMPLETING_REBALANCE || g->state == GROUP_EMPTY)
                group_prepare_rebalance(g, reason, who);
        else
                group_maybe_complete_join_phase(g);
}

/* Answers every parked SyncGroup: the member's assignment, or error. */
void group_propagate_assignment(struct group *g, int16_t error_code)
{
        for (struct group_member *m = g->members_head; m; m = m->next) {
                if (!m->sync_waiter)
                        continue;
                struct group_sync_result res = {
                        .error_code = error_code,
                        .protocol_type = error_code == KAFKA_NONE ? g->protocol_type : KSTR_NULL,
                        .protocol_name = error_code == KAFKA_NONE ? g->protocol_name : KSTR_NULL,
                        .assignment = m->assignment,
                };
                member_complete_sync(m, &res);
                /* Its session restarts now that it has its answer. */
                group_schedule_heartbeat(g, m, m->session_timeout_ms);
        }
}

void group_reset_and_propagate_assignment_with_error(struct group *g, int16_t error_code)
{
        assert(g->state == GROUP_COMPLETING_REBALANCE);
        for (struct group_member *m = g->members_head; m; m = m->next) {
                free((void *)m->assignment.ptr);
                m->assignment = (struct kbytes){ NULL, 0 };
        }
        group_propagate_assignment(g, error_code);
}

static void clear_pending_sync(struct group *g)
{
        for (struct group_member *m = g->members_head; m; m = m->next)
                m->is_pending_sync = false;
        g->pending_sync_count = 0;
}

void group_prepare_rebalance(struct group *g, const char *reason, struct kstr who)
{
        struct group_coordinator *gc = g->gc;
        if (g->state == GROUP_COMPLETING_REBALANCE)
                group_reset_and_propagate_assignment_with_error(g, KAFKA_REBALANCE_IN_PROGRESS);
        clear_pending_sync(g);
        group_timer_cancel(gc, &g->sync_timer);

        bool is_initial = g->state == GROUP_EMPTY;
        if (is_initial) {
                /* A new group: give other members a moment to join too. */
                g->initial_delay_ms = gc->cfg.initial_rebalance_delay_ms;
                g->initial_remaining_ms = max_i32(group_rebalance_timeout_ms(g) - g->initial_delay_ms, 0);
                g->is_new_member_added = false;
                group_timer_set(gc, &g->join_timer, g->initial_delay_ms, initial_delay_fired, g);
        }
        enum group_state from = g->state;
        group_transition(g, GROUP_PREPARING_REBALANCE);
        log_info("Preparing to rebalance group %s in state %s with old generation %d (reason: %s%s%.*s)",
                 g->id.ptr, group_state_name(from), g->generation_id, reason, who.len > 0 ? " " : "",
                 who.len > 0 ? who.len : 0, who.len > 0 ? who.ptr : "");
        if (is_initial) {
                group_check(g);
                return;
        }
        if (group_has_all_members_joined(g))
                complete_join(g);
        else {
                group_timer_set(gc, &g->join_timer, group_rebalance_timeout_ms(g), join_timer_fired, g);
                group_check(g);
        }
}

/* Kafka's ClassicGroup.maybeElectNewJoinedLeader. */
static bool group_elect_joined_leader(struct group *g)
{
        if (!g->leader)
                return false;
        if (g->leader->join_waiter)
                return true;
        for (struct group_member *m = g->members_head; m; m = m->next) {
                if (m->join_waiter) {
                        log_info("Group %s leader %s failed to join before the rebalance timeout; member %s is "
                                 "the new leader", g->id.ptr, g->leader->member_id.ptr, m->member_id.ptr);
                        g->leader = m;
                        return true;
                }
        }
        return false;
}

static void sync_timer_fired(void *arg);

/* Kafka's completeClassicGroupJoin: drop dynamic members that did not
 * rejoin, start the next generation and answer every parked JoinGroup. */
static void complete_join(struct group *g)
{
        struct group_coordinator *gc = g->gc;
        assert(g->state == GROUP_PREPARING_REBALANCE);
        group_timer_cancel(gc, &g->join_timer);

        for (struct group_member *m = g->members_head, *next; m; m = next) {
                next = m->next;
                if (!m->join_waiter && !member_is_static(m)) {
                        log_info("Group %s removed dynamic member %s, which did not rejoin", g->id.ptr,
                                 m->member_id.ptr);
                        group_remove_member(g, m, KAFKA_UNKNOWN_MEMBER_ID);
                }
        }
        if (!group_elect_joined_leader(g) && g->member_count > 0) {
                /* Only static members that did not rejoin are left: wait
                 * until they rejoin or their sessions expire. */
                log_warn("Group %s could not complete rebalance because no members rejoined", g->id.ptr);
                group_timer_set(gc, &g->join_timer, group_rebalance_timeout_ms(g), join_timer_fired, g);
                group_check(g);
                return;
        }

        /* Kafka's ClassicGroup.initNextGeneration. */
        g->generation_id++;
        group_kstr_free(&g->protocol_name);
        clear_pending_sync(g);
        if (g->member_count == 0) {
                group_transition(g, GROUP_EMPTY);
                log_info("Group %s with generation %d is now empty", g->id.ptr, g->generation_id);
                group_persist(g, false);
                group_check(g);
                return;
        }
        if (!group_kstr_dup(&g->protocol_name, group_select_protocol(g))) {
                /* Cannot name the protocol: try again after the timeout. */
                log_error("group coordinator: out of memory completing the rebalance of group %s", g->id.ptr);
                g->generation_id--;
                group_timer_set(gc, &g->join_timer, group_rebalance_timeout_ms(g), join_timer_fired, g);
                return;
        }
        group_transition(g, GROUP_COMPLETING_REBALANCE);
        log_info("Stabilized group %s generation %d (protocol %s) with %d members", g->id.ptr, g->generation_id,
                 g->protocol_name.ptr, g->member_count);

        for (struct group_member *m = g->members_head; m; m = m->next) {
                if (m->join_waiter) {
                        struct group_join_result res = {
                                .error_code = KAFKA_NONE,
                                .generation_id = g->generation_id,
                                .protocol_type = g->protocol_type,
                                .protocol_name = g->protocol_name,
                                .leader = g->leader->member_id,
                                .member_id = m->member_id,
                                .members_of = m == g->leader ? g : NULL,
                        };
                        member_complete_join(g, m, &res);
                }
                group_schedule_heartbeat(g, m, m->session_timeout_ms);
                m->is_new = false;
                m->is_pending_sync = true;
                g->pending_sync_count++;
        }
        g->sync_timer_generation = g->generation_id;
        group_timer_set(gc, &g->sync_timer, group_rebalance_timeout_ms(g), sync_timer_fired, g);
        group_check(g);
}

/* Kafka's expirePendingSync: members that got their JoinGroup answer but
 * did not sync within the rebalance timeout are dropped. */
static void sync_timer_fired(void *arg)
{
        struct group *g = arg;
        g->sync_timer = 0;
        if (g->sync_timer_generation != g->generation_id)
                return;
        if (g->state != GROUP_COMPLETING_REBALANCE && g->state != GROUP_STABLE)
                return;
        if (g->pending_sync_count == 0)
                return;
        for (struct group_member *m = g->members_head, *next; m; m = next) {
                next = m->next;
                if (m->is_pending_sync) {
                        log_info("Group %s removed member %s, which did not send its SyncGroup in time",
                                 g->id.ptr, m->member_id.ptr);
                        group_remove_member(g, m, KAFKA_UNKNOWN_MEMBER_ID);
                }
        }
        group_prepare_rebalance(g, "removing members on pending sync request expiration", KSTR_NULL);
}

static void remove_member_and_update_group(struct group *g, struct group_member *m, const char *reason)
{
        char id[256];
        snprintf(id, sizeof(id), "%s", m->member_id.ptr);
        group_remove_member(g, m, KAFKA_UNKNOWN_MEMBER_ID);
        if (g->state == GROUP_STABLE || g->state == GROUP_COMPLETING_REBALANCE)
                group_maybe_prepare_rebalance_or_complete_join(g, reason, KSTR(id));
        else if (g->state == GROUP_PREPARING_REBALANCE && group_has_all_members_joined(g))
                complete_join(g);
        else
                group_check(g);
}

/* ---- the coordinator ---- */

struct group_coordinator *group_coordinator_create(const struct group_config *cfg, const struct group_env *env)
{
        assert(cfg && env && env->now_ms && env->timer_add && env->timer_cancel && env->random_bytes);
        assert(cfg->initial_rebalance_delay_ms >= 0 && cfg->max_size > 0);
        struct group_coordinator *gc = calloc(1, sizeof(*gc));
        if (!gc)
                return NULL;
        gc->cfg = *cfg;
        gc->env = *env;
        return gc;
}

void group_coordinator_destroy(struct group_coordinator *gc)
{
        if (!gc)
                return;
        while (gc->head) {
                struct group *g = gc->head;
                g->offsets = NULL;      /* the offsets store tears down its own */
                group_free(g);
        }
        group_map_free(&gc->groups);
        free(gc);
}

void group_coordinator_unload(struct group_coordinator *gc, int16_t error_code)
{
        assert(error_code != KAFKA_NONE);
        while (gc->head) {
                struct group *g = gc->head;
                for (struct group_member *m = g->members_head; m; m = m->next) {
                        if (m->join_waiter)
                                member_fail_join(g, m, error_code, m->member_id);
                        if (m->sync_waiter)
                                group_member_fail_sync(m, error_code);
                }
                g->offsets = NULL;
                group_free(g);
        }
}

void group_coordinator_set_offsets_release(struct group_coordinator *gc, group_offsets_release_fn fn, void *ctx)
{
        gc->release_offsets = fn;
        gc->release_ctx = ctx;
}

uint32_t group_coordinator_group_count(const struct group_coordinator *gc)
{
        return gc->groups.count;
}

struct group *group_coordinator_first(const struct group_coordinator *gc)
{
        return gc->head;
}

struct group *group_coordinator_next(const struct group *g)
{
        return g->next;
}

struct group *group_find(const struct group_coordinator *gc, struct kstr group_id)
{
        struct group_map_node *n = group_map_find(&gc->groups, group_id);
        return n ? GROUP_CONTAINER_OF(n, struct group, node) : NULL;
}
