/*
 * group.c - the classic group state machine (see group.h for the states,
 * the waiting rules and the invariants).
 *
 * The code follows the shape of Kafka's GroupMetadataManager so that a
 * reader can check one against the other: join_new_member,
 * join_existing_member, add_member_then_rebalance, prepare_rebalance,
 * complete_join, the initial-rebalance delay, heartbeat and pending-sync
 * expiry. Where Kafka writes a GroupMetadata record and continues in the
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
 * Which partition a group lives in is group_partition.c; what is stored
 * of a group and how it is restored, group_store.c.
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

static void group_persist(const struct group *g, bool is_deleted)
{
        if (g->gc->persist)
                g->gc->persist(g->gc->persist_ctx, g, is_deleted, false);
}

#define GROUP_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static void complete_join(struct group *g);
static void prepare_rebalance(struct group *g, const char *reason, struct kstr who);

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

static uint64_t map_hash(struct kstr k)
{
        uint64_t x = 1469598103934665603ULL;
        for (int32_t i = 0; i < k.len; i++)
                x = (x ^ (uint8_t)k.ptr[i]) * 1099511628211ULL;
        return x;
}

static struct group_map_node *map_find(const struct group_map *m, struct kstr key)
{
        if (m->bucket_count == 0 || key.len < 0)
                return NULL;
        uint64_t h = map_hash(key);
        for (struct group_map_node *n = m->buckets[h & (m->bucket_count - 1)]; n; n = n->next)
                if (n->hash == h && kstr_eq(n->key, key))
                        return n;
        return NULL;
}

static int map_grow(struct group_map *m)
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
static int map_insert(struct group_map *m, struct group_map_node *n)
{
        assert(n->key.len >= 0);
        assert(!map_find(m, n->key));
        if ((uint64_t)(m->count + 1) * 4 > (uint64_t)m->bucket_count * 3) {
                /* A full table only gets slower; an empty one cannot hold n. */
                if (map_grow(m) < 0 && m->bucket_count == 0)
                        return -ENOMEM;
        }
        n->hash = map_hash(n->key);
        struct group_map_node **b = &m->buckets[n->hash & (m->bucket_count - 1)];
        n->next = *b;
        *b = n;
        m->count++;
        return 0;
}

static void map_remove(struct group_map *m, struct group_map_node *n)
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

static void map_free(struct group_map *m)
{
        assert(m->count == 0);
        free(m->buckets);
        m->buckets = NULL;
        m->bucket_count = 0;
}

/* ---- small helpers ---- */

static struct kstr kstr_or_empty(struct kstr s)
{
        return s.len < 0 ? (struct kstr){ "", 0 } : s;
}

static int32_t max_i32(int32_t a, int32_t b)
{
        return a > b ? a : b;
}

/* ---- timers ---- */

static void timer_cancel(struct group_coordinator *gc, group_timer_id *id)
{
        if (*id) {
                gc->env.timer_cancel(gc->env.ctx, *id);
                *id = 0;
        }
}

/* Kafka's timer.schedule(key, ...): replaces what the key had. */
static void timer_set(struct group_coordinator *gc, group_timer_id *id, int64_t delay_ms, group_timer_fn fn,
                      void *arg)
{
        timer_cancel(gc, id);
        *id = gc->env.timer_add(gc->env.ctx, delay_ms > 0 ? (uint64_t)delay_ms : 0, fn, arg);
        if (*id == 0)
                log_error("group coordinator: cannot arm a timer (timer table full or out of memory); "
                          "a rebalance may stall until the client retries");
}

/* ---- members ---- */

struct group_member *group_find_member(const struct group *g, struct kstr member_id)
{
        struct group_map_node *n = map_find(&g->members_by_id, member_id);
        return n ? GROUP_CONTAINER_OF(n, struct group_member, by_id) : NULL;
}

static struct group_member *find_static_member(const struct group *g, struct kstr instance_id)
{
        struct group_map_node *n = map_find(&g->members_by_instance, instance_id);
        return n ? GROUP_CONTAINER_OF(n, struct group_member, by_instance) : NULL;
}

static struct group_pending_member *find_pending_member(const struct group *g, struct kstr member_id)
{
        struct group_map_node *n = map_find(&g->pending_members, member_id);
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

static int32_t span(int32_t len)
{
        return len > 0 ? len : 0;
}

/* The protocols copied into one allocation (names and metadata after the
 * array); a null name or metadata becomes empty. NULL on ENOMEM. */
static struct group_protocol *protocols_dup(const struct group_protocol *in, int32_t count)
{
        assert(count >= 0);
        size_t bytes = (size_t)count * sizeof(struct group_protocol) + 1;
        for (int32_t i = 0; i < count; i++)
                bytes += (size_t)span(in[i].name.len) + 1 + (size_t)span(in[i].metadata.len);
        struct group_protocol *out = malloc(bytes);
        if (!out)
                return NULL;
        char *at = (char *)(out + count);
        for (int32_t i = 0; i < count; i++) {
                int32_t n = span(in[i].name.len);
                if (n)
                        memcpy(at, in[i].name.ptr, (size_t)n);
                at[n] = '\0';
                out[i].name = (struct kstr){ at, n };
                at += n + 1;
                int32_t b = span(in[i].metadata.len);
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
        int32_t n = span(a.len);
        return n == span(b.len) && (n == 0 || memcmp(a.ptr, b.ptr, (size_t)n) == 0);
}

/* Kafka's ClassicGroupMember.matches: the same protocols, in the same order,
 * with the same metadata. */
static bool member_matches(const struct group_member *m, const struct group_protocol *p, int32_t count)
{
        if (m->protocol_count != count)
                return false;
        for (int32_t i = 0; i < count; i++)
                if (!kstr_eq(m->protocols[i].name, kstr_or_empty(p[i].name)) ||
                    !bytes_same(m->protocols[i].metadata, p[i].metadata))
                        return false;
        return true;
}

static void member_free(struct group_member *m)
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
static struct group_member *member_new(struct group *g, const struct group_join_request *rq, struct kstr member_id)
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
            !group_kstr_dup(&m->client_id, kstr_or_empty(rq->client_id)) ||
            !group_kstr_dup(&m->client_host, kstr_or_empty(rq->client_host)) ||
            !group_kstr_dup(&m->protocol_type, kstr_or_empty(rq->protocol_type)))
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
        member_free(m);
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

static void join_answer_error(struct group_join_waiter *w, int16_t error_code, struct kstr member_id)
{
        struct group_join_result res = {
                .error_code = error_code,
                .generation_id = -1,
                .protocol_type = KSTR_NULL,
                .protocol_name = KSTR_NULL,
                .leader = (struct kstr){ "", 0 },
                .member_id = kstr_or_empty(member_id),
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

static void sync_answer_error(struct group_sync_waiter *w, int16_t error_code)
{
        struct group_sync_result res = {
                .error_code = error_code,
                .protocol_type = KSTR_NULL,
                .protocol_name = KSTR_NULL,
                .assignment = (struct kbytes){ NULL, 0 },
        };
        w->done(w, &res);
}

static void member_fail_sync(struct group_member *m, int16_t error_code)
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
static struct group_join_result current_join_result(const struct group *g, const struct group_member *m,
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

static void member_complete_join_current(struct group *g, struct group_member *m, struct kstr leader,
                                         bool has_members, bool skip_assignment)
{
        struct group_join_result res = current_join_result(g, m, leader, has_members, skip_assignment);
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
                        assert(find_static_member(g, m->group_instance_id) == m);
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

static void group_arm_expiry(struct group *g)
{
        if (g->state == GROUP_EMPTY && !g->offsets)
                timer_set(g->gc, &g->expiry_timer, g->gc->cfg.empty_group_retention_ms, expiry_fired, g);
}

void group_transition(struct group *g, enum group_state to)
{
        assert(is_valid_transition(g->state, to));
        if (g->state == GROUP_EMPTY)
                timer_cancel(g->gc, &g->expiry_timer);
        g->previous_state = g->state;
        g->state = to;
        g->state_timestamp_ms = g->gc->env.now_ms(g->gc->env.ctx);
        g->is_storing_assignment = false;       /* a store still in flight is stale now */
        if (to == GROUP_EMPTY)
                group_arm_expiry(g);
}

struct group *group_new(struct group_coordinator *gc, struct kstr id, int16_t *error_code)
{
        assert(id.len > 0 && !map_find(&gc->groups, id));
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
        if (map_insert(&gc->groups, &g->node) < 0)
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

static void pending_free(struct group *g, struct group_pending_member *pm)
{
        map_remove(&g->pending_members, &pm->node);
        timer_cancel(g->gc, &pm->timer);
        group_kstr_free(&pm->node.key);
        free(pm);
}

/* Unlinks m from the group's list and id maps (not from leader, counts). */
static void member_unlink(struct group *g, struct group_member *m)
{
        map_remove(&g->members_by_id, &m->by_id);
        if (member_is_static(m))
                map_remove(&g->members_by_instance, &m->by_instance);
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
static void group_remove_member(struct group *g, struct group_member *m, int16_t sync_error)
{
        assert(m->group == g && g->member_count > 0);
        if (m->join_waiter)
                member_fail_join(g, m, KAFKA_UNKNOWN_MEMBER_ID, (struct kstr){ "", 0 });
        if (m->sync_waiter)
                member_fail_sync(m, sync_error);
        timer_cancel(g->gc, &m->heartbeat_timer);
        member_unlink(g, m);
        g->member_count--;
        if (m->is_pending_sync) {
                m->is_pending_sync = false;
                g->pending_sync_count--;
        }
        if (g->leader == m)
                g->leader = g->members_head;
        struct group_pending_member *pm = find_pending_member(g, m->member_id);
        if (pm)
                pending_free(g, pm);
        member_free(m);
}

/* Frees a group and everything in it. Waiters still parked are dropped
 * (only when the coordinator is destroyed). */
void group_free(struct group *g)
{
        struct group_coordinator *gc = g->gc;
        assert(!g->offsets);
        timer_cancel(gc, &g->join_timer);
        timer_cancel(gc, &g->sync_timer);
        timer_cancel(gc, &g->expiry_timer);
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
                        pending_free(g, GROUP_CONTAINER_OF(g->pending_members.buckets[i],
                                                           struct group_pending_member, node));
        map_free(&g->members_by_id);
        map_free(&g->members_by_instance);
        map_free(&g->pending_members);
        map_remove(&gc->groups, &g->node);
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
static bool group_supports_protocols(const struct group *g, struct kstr protocol_type,
                                     const struct group_protocol *protocols, int32_t count)
{
        if (g->state == GROUP_EMPTY)
                return !group_kstr_is_empty(protocol_type) && count > 0;
        if (kstr_is_null(g->protocol_type) || !kstr_eq(g->protocol_type, protocol_type))
                return false;
        for (int32_t i = 0; i < count; i++)
                if (group_is_supported_by_all(g, kstr_or_empty(protocols[i].name)))
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
static struct kstr group_select_protocol(const struct group *g)
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
static int group_add_member(struct group *g, struct group_member *m, struct group_join_waiter *w)
{
        assert(m->group == g && !group_find_member(g, m->member_id));
        struct kstr type = KSTR_NULL;
        if (g->member_count == 0 && !group_kstr_dup(&type, m->protocol_type))
                return -ENOMEM;
        if (map_insert(&g->members_by_id, &m->by_id) < 0)
                goto out_free_type;
        if (member_is_static(m)) {
                assert(!find_static_member(g, m->group_instance_id));
                if (map_insert(&g->members_by_instance, &m->by_instance) < 0) {
                        map_remove(&g->members_by_id, &m->by_id);
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
        struct group_pending_member *pm = find_pending_member(g, m->member_id);
        if (pm)
                pending_free(g, pm);
        return 0;
out_free_type:
        group_kstr_free(&type);
        return -ENOMEM;
}

/* Kafka's ClassicGroup.updateMember: new protocols and timeouts, and w
 * parked. 0 or -ENOMEM (nothing changed). */
static int group_update_member(struct group *g, struct group_member *m, const struct group_join_request *rq,
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
static struct group_member *group_replace_static_member(struct group *g, struct group_member *old,
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
                member_fail_sync(old, KAFKA_FENCED_INSTANCE_ID);
        timer_cancel(g->gc, &old->heartbeat_timer);

        /* Same place in the list, so join order is kept. */
        m->prev = old->prev;
        m->next = old->next;
        map_remove(&g->members_by_id, &old->by_id);
        map_remove(&g->members_by_instance, &old->by_instance);
        int rc = map_insert(&g->members_by_id, &m->by_id);
        assert(rc == 0);        /* the tables have buckets: insert cannot fail */
        rc = map_insert(&g->members_by_instance, &m->by_instance);
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
        member_free(m);
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

static void schedule_heartbeat(struct group *g, struct group_member *m, int64_t timeout_ms)
{
        timer_set(g->gc, &m->heartbeat_timer, timeout_ms, heartbeat_fired, m);
}

static void pending_fired(void *arg)
{
        struct group_pending_member *pm = arg;
        struct group *g = pm->group;
        pm->timer = 0;
        log_info("Pending member %s in group %s has been removed after session timeout expiration",
                 pm->node.key.ptr, g->id.ptr);
        pending_free(g, pm);
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
                timer_set(gc, &g->join_timer, g->initial_delay_ms, initial_delay_fired, g);
                return;
        }
        complete_join(g);
}

static void maybe_complete_join_phase(struct group *g)
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
                prepare_rebalance(g, reason, who);
        else
                maybe_complete_join_phase(g);
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
                schedule_heartbeat(g, m, m->session_timeout_ms);
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

static void prepare_rebalance(struct group *g, const char *reason, struct kstr who)
{
        struct group_coordinator *gc = g->gc;
        if (g->state == GROUP_COMPLETING_REBALANCE)
                group_reset_and_propagate_assignment_with_error(g, KAFKA_REBALANCE_IN_PROGRESS);
        clear_pending_sync(g);
        timer_cancel(gc, &g->sync_timer);

        bool is_initial = g->state == GROUP_EMPTY;
        if (is_initial) {
                /* A new group: give other members a moment to join too. */
                g->initial_delay_ms = gc->cfg.initial_rebalance_delay_ms;
                g->initial_remaining_ms = max_i32(group_rebalance_timeout_ms(g) - g->initial_delay_ms, 0);
                g->is_new_member_added = false;
                timer_set(gc, &g->join_timer, g->initial_delay_ms, initial_delay_fired, g);
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
                timer_set(gc, &g->join_timer, group_rebalance_timeout_ms(g), join_timer_fired, g);
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
        timer_cancel(gc, &g->join_timer);

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
                timer_set(gc, &g->join_timer, group_rebalance_timeout_ms(g), join_timer_fired, g);
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
                timer_set(gc, &g->join_timer, group_rebalance_timeout_ms(g), join_timer_fired, g);
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
                schedule_heartbeat(g, m, m->session_timeout_ms);
                m->is_new = false;
                m->is_pending_sync = true;
                g->pending_sync_count++;
        }
        g->sync_timer_generation = g->generation_id;
        timer_set(gc, &g->sync_timer, group_rebalance_timeout_ms(g), sync_timer_fired, g);
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
        prepare_rebalance(g, "removing members on pending sync request expiration", KSTR_NULL);
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

/* ---- JoinGroup ---- */

/* Kafka's ClassicGroup.validateMember. */
static int16_t validate_member(const struct group *g, struct kstr member_id, struct kstr group_instance_id)
{
        if (!kstr_is_null(group_instance_id)) {
                const struct group_member *sm = find_static_member(g, group_instance_id);
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
        int32_t n = span(prefix.len);
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
        struct group_join_result res = current_join_result(g, m, leader, has_members, skip_assignment);
        w->done(w, &res);
}

static void add_member_then_rebalance(struct group *g, const struct group_join_request *rq, struct kstr member_id,
                                      struct group_join_waiter *w)
{
        struct group_member *m = member_new(g, rq, member_id);
        if (!m || group_add_member(g, m, w) < 0) {
                member_free(m);
                log_error("group coordinator: out of memory adding member to group %s", g->id.ptr);
                join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, member_id);
                return;
        }
        /* More members for the initial rebalance: it may wait longer. */
        if (g->state == GROUP_PREPARING_REBALANCE && g->previous_state == GROUP_EMPTY)
                g->is_new_member_added = true;
        /* A new member cannot heartbeat while its JoinGroup is parked, and a
         * client that gave up will retry with another one: bound the wait. */
        schedule_heartbeat(g, m, g->gc->cfg.new_member_join_timeout_ms);
        group_maybe_prepare_rebalance_or_complete_join(g, "adding new member", m->member_id);
}

static void update_member_then_rebalance(struct group *g, struct group_member *m, const struct group_join_request *rq,
                                         struct group_join_waiter *w, const char *reason)
{
        if (group_update_member(g, m, rq, w) < 0) {
                log_error("group coordinator: out of memory updating member %s of group %s", m->member_id.ptr,
                          g->id.ptr);
                join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, m->member_id);
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
                join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, (struct kstr){ "", 0 });
                return;
        }
        schedule_heartbeat(g, m, m->session_timeout_ms);
        if (group_update_member(g, m, rq, w) < 0) {
                join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, m->member_id);
                member_free(old);
                return;
        }
        switch (g->state) {
        case GROUP_STABLE:
                if (kstr_eq(g->protocol_name, group_select_protocol(g))) {
                        if (rq->supports_skip_assignment) {
                                /* v9+: the leader learns it leads, and that it
                                 * must not reassign (SkipAssignment). */
                                bool is_leader = g->leader == m;
                                member_complete_join_current(g, m, g->leader->member_id, is_leader, is_leader);
                        } else {
                                /* Before v9 the old leader id is returned, so a
                                 * rejoining static leader does not reassign a
                                 * Stable group's partitions. */
                                member_complete_join_current(g, m, leader_before, false, false);
                        }
                } else {
                        group_maybe_prepare_rebalance_or_complete_join(g, "static member joined with a change of protocol",
                                                                 m->member_id);
                }
                break;
        case GROUP_COMPLETING_REBALANCE:
                /* The leader may already be assigning to the old id. */
                prepare_rebalance(g, "updating metadata for static member", m->member_id);
                break;
        case GROUP_PREPARING_REBALANCE:
                maybe_complete_join_phase(g);
                break;
        case GROUP_EMPTY:
        case GROUP_DEAD:
                assert(!"a group with a static member is never Empty or Dead");
                break;
        }
        member_free(old);
        group_check(g);
}

static void join_new_member(struct group *g, const struct group_join_request *rq, struct group_join_waiter *w)
{
        struct group_coordinator *gc = g->gc;
        if (!group_supports_protocols(g, rq->protocol_type, rq->protocols, rq->protocol_count)) {
                join_answer_error(w, KAFKA_INCONSISTENT_GROUP_PROTOCOL, (struct kstr){ "", 0 });
                return;
        }
        bool is_static = !kstr_is_null(rq->group_instance_id);
        char *id = generate_member_id(gc, is_static ? rq->group_instance_id : kstr_or_empty(rq->client_id));
        if (!id) {
                join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, (struct kstr){ "", 0 });
                return;
        }
        struct kstr new_id = KSTR(id);
        struct group_member *old = is_static ? find_static_member(g, rq->group_instance_id) : NULL;
        if (old) {
                update_static_member_then_rebalance(g, rq, old, new_id, w);
        } else if (!is_static && rq->requires_known_member_id) {
                /* KIP-394: hand out the id and wait for the member to come
                 * back with it; until then it holds up a rebalance for at
                 * most its session timeout. */
                struct group_pending_member *pm = NULL;
                if (g->pending_members.count >= GROUP_PENDING_MEMBERS_MAX) {
                        join_answer_error(w, KAFKA_GROUP_MAX_SIZE_REACHED, (struct kstr){ "", 0 });
                        goto out;
                }
                pm = calloc(1, sizeof(*pm));
                if (!pm || !group_kstr_dup(&pm->node.key, new_id) || map_insert(&g->pending_members, &pm->node) < 0) {
                        if (pm)
                                group_kstr_free(&pm->node.key);
                        free(pm);
                        join_answer_error(w, KAFKA_COORDINATOR_NOT_AVAILABLE, (struct kstr){ "", 0 });
                        goto out;
                }
                pm->group = g;
                timer_set(gc, &pm->timer, rq->session_timeout_ms, pending_fired, pm);
                join_answer_error(w, KAFKA_MEMBER_ID_REQUIRED, new_id);
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
                join_answer_error(w, KAFKA_INCONSISTENT_GROUP_PROTOCOL, member_id);
                return;
        }
        if (find_pending_member(g, member_id)) {
                if (!kstr_is_null(rq->group_instance_id)) {
                        /* Pending ids are only handed to dynamic members;
                         * Kafka fails such a request the same way. */
                        join_answer_error(w, KAFKA_UNKNOWN_SERVER_ERROR, member_id);
                        return;
                }
                add_member_then_rebalance(g, rq, member_id, w);
                return;
        }
        int16_t err = validate_member(g, member_id, rq->group_instance_id);
        if (err != KAFKA_NONE) {
                join_answer_error(w, err, member_id);
                return;
        }
        struct group_member *m = group_find_member(g, member_id);
        assert(m);
        switch (g->state) {
        case GROUP_PREPARING_REBALANCE:
                update_member_then_rebalance(g, m, rq, w, "member joining group during rebalance");
                break;
        case GROUP_COMPLETING_REBALANCE:
                if (member_matches(m, rq->protocols, rq->protocol_count)) {
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
                } else if (!member_matches(m, rq->protocols, rq->protocol_count)) {
                        update_member_then_rebalance(g, m, rq, w, "updating metadata for member");
                } else {
                        join_answer_current(g, w, m, g->leader->member_id, false, false);
                }
                break;
        case GROUP_EMPTY:
        case GROUP_DEAD:
                join_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID, member_id);
                break;
        }
        group_check(g);
}

void group_join(struct group_coordinator *gc, const struct group_join_request *rq, struct group_join_waiter *w)
{
        assert(gc && rq && w && w->done);
        assert(rq->protocol_count >= 0 && (rq->protocol_count == 0 || rq->protocols));
        struct kstr member_id = kstr_or_empty(rq->member_id);
        if (group_kstr_is_empty(rq->group_id)) {
                join_answer_error(w, KAFKA_INVALID_GROUP_ID, member_id);
                return;
        }
        if (rq->session_timeout_ms < gc->cfg.min_session_timeout_ms ||
            rq->session_timeout_ms > gc->cfg.max_session_timeout_ms) {
                join_answer_error(w, KAFKA_INVALID_SESSION_TIMEOUT, member_id);
                return;
        }
        bool is_unknown_member = member_id.len == 0;
        struct group *g = group_find(gc, rq->group_id);
        if (!g) {
                /* Only a new member creates a group. */
                if (!is_unknown_member) {
                        join_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID, member_id);
                        return;
                }
                int16_t err = KAFKA_NONE;
                g = group_new(gc, rq->group_id, &err);
                if (!g) {
                        join_answer_error(w, err, member_id);
                        return;
                }
        }
        if (!group_accepts_joining_member(g, member_id)) {
                struct group_member *m = group_find_member(g, member_id);
                struct group_pending_member *pm = find_pending_member(g, member_id);
                log_info("Group %s is full (group.max.size %d); turning away member %.*s", g->id.ptr,
                         gc->cfg.max_size, member_id.len, member_id.ptr);
                if (m)
                        group_remove_member(g, m, KAFKA_GROUP_MAX_SIZE_REACHED);
                else if (pm)
                        pending_free(g, pm);
                join_answer_error(w, KAFKA_GROUP_MAX_SIZE_REACHED, (struct kstr){ "", 0 });
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
                timer_cancel(g->gc, &g->sync_timer);
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
                struct kstr key = kstr_or_empty(as[i].member_id);
                struct group_map_node *n = map_find(&map, key);
                if (n) {
                        GROUP_CONTAINER_OF(n, struct assignment_node, node)->index = i;
                        continue;
                }
                nodes[i].node.key = key;
                nodes[i].index = i;
                if (map_insert(&map, &nodes[i].node) < 0)
                        goto out;
        }
        int32_t k = 0;
        for (struct group_member *m = g->members_head; m; m = m->next, k++) {
                struct group_map_node *n = map_find(&map, m->member_id);
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
        struct kstr member_id = kstr_or_empty(rq->member_id);
        if (group_kstr_is_empty(rq->group_id)) {
                sync_answer_error(w, KAFKA_INVALID_GROUP_ID);
                return;
        }
        struct group *g = group_find(gc, rq->group_id);
        if (!g || g->member_count == 0) {
                sync_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID);
                return;
        }
        int16_t err = validate_member(g, member_id, rq->group_instance_id);
        if (err == KAFKA_NONE && rq->generation_id != g->generation_id)
                err = KAFKA_ILLEGAL_GENERATION;
        if (err == KAFKA_NONE && (is_protocol_inconsistent(rq->protocol_type, g->protocol_type) ||
                                  is_protocol_inconsistent(rq->protocol_name, g->protocol_name)))
                err = KAFKA_INCONSISTENT_GROUP_PROTOCOL;
        if (err != KAFKA_NONE) {
                sync_answer_error(w, err);
                return;
        }
        struct group_member *m = group_find_member(g, member_id);
        assert(m);
        switch (g->state) {
        case GROUP_PREPARING_REBALANCE:
                sync_answer_error(w, KAFKA_REBALANCE_IN_PROGRESS);
                break;
        case GROUP_COMPLETING_REBALANCE:
                if (m->sync_waiter)
                        member_fail_sync(m, KAFKA_REBALANCE_IN_PROGRESS);       /* the newer wins */
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
                sync_answer_error(w, KAFKA_UNKNOWN_MEMBER_ID);
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
        member_id = kstr_or_empty(member_id);
        int16_t err = validate_member(g, member_id, group_instance_id);
        if (err != KAFKA_NONE)
                return err;
        if (generation_id != g->generation_id)
                return KAFKA_ILLEGAL_GENERATION;
        struct group_member *m = group_find_member(g, member_id);
        assert(m);
        switch (g->state) {
        case GROUP_PREPARING_REBALANCE:
                schedule_heartbeat(g, m, m->session_timeout_ms);
                return KAFKA_REBALANCE_IN_PROGRESS;
        case GROUP_COMPLETING_REBALANCE:
        case GROUP_STABLE:
                /* Members may heartbeat between their JoinGroup answer and
                 * their SyncGroup: a heartbeat like any other. */
                schedule_heartbeat(g, m, m->session_timeout_ms);
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
                struct kstr member_id = kstr_or_empty(lm->member_id);
                lm->error_code = KAFKA_NONE;
                if (member_id.len == 0) {
                        /* An administrator removing a static member by its
                         * instance id (kafka-consumer-groups --delete etc). */
                        struct group_member *sm = kstr_is_null(lm->group_instance_id) ? NULL :
                                                  find_static_member(g, lm->group_instance_id);
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
                struct group_pending_member *pm = find_pending_member(g, member_id);
                if (pm) {
                        pending_free(g, pm);
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
                        maybe_complete_join_phase(g);
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
        member_id = kstr_or_empty(member_id);
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
        map_free(&gc->groups);
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
                                member_fail_sync(m, error_code);
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
        struct group_map_node *n = map_find(&gc->groups, group_id);
        return n ? GROUP_CONTAINER_OF(n, struct group, node) : NULL;
}
