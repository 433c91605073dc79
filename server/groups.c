/*
 * groups.c - the classic group protocol's requests: FindCoordinator,
 * JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups
 * and DeleteGroups.
 *
 * The decisions are coordinator/group.c's; this file moves requests to
 * where a group lives and answers in the version the client speaks. A
 * request for one group makes a trip: from its connection's reactor to the
 * home reactor of the group's __consumer_offsets partition
 * (coordinator_locate_group), where the group coordinator runs it, and back
 * to req->reactor, where the response is encoded. A JoinGroup that waits
 * for the rest of the group, or a follower's SyncGroup that waits for the
 * leader, simply stays parked at the home as a waiter: its trip back starts
 * when group.c answers it, and no thread waits. Requests naming several
 * groups (DescribeGroups, DeleteGroups, ListGroups) walk from home to home,
 * one at a time, then back.
 *
 * At the home, a group's __consumer_offsets partition must first have its
 * committed offsets loaded (offsets_partition_ready, server/offsets.c):
 * until then its groups are not known whole, and requests get
 * COORDINATOR_LOAD_IN_PROGRESS, as from a Kafka coordinator still loading.
 * No request holds a topic reference while parked; at shutdown the homes
 * answer what is parked with NOT_COORDINATOR (coordinator_topic.c).
 *
 * Invariants:
 *   - a trip or walk touches the request (and its arena) on one thread at a
 *     time: the request's reactor before it leaves and after it is back,
 *     the home in between; hand-offs go through the reactors' task queues;
 *   - the way back from a home is never a direct call on the same reactor
 *     but a deferred task, so a response never completes inside group.c;
 *   - everything the response holds is copied into the request's arena at
 *     the home, because group state changes as soon as the home moves on;
 *   - every response is in the version asked for: fields a version lacks
 *     keep their defaults (the codecs refuse anything else).
 *
 * Nothing is persisted: group membership lives in memory (see
 * coordinator_topic.h), as in Kafka after a coordinator failover members
 * simply rejoin.
 */
#include <stdio.h>
#include <string.h>

#include "../base/logging.h"
#include "../coordinator/group.h"
#include "../protocol/gen/delete_groups.h"
#include "../protocol/gen/describe_groups.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/find_coordinator.h"
#include "../protocol/gen/heartbeat.h"
#include "../protocol/gen/join_group.h"
#include "../protocol/gen/leave_group.h"
#include "../protocol/gen/list_groups.h"
#include "../protocol/gen/request_header.h"
#include "../protocol/gen/sync_group.h"
#include "broker.h"
#include "coordinator_topic.h"
#include "handlers.h"
#include "offsets.h"
#include "partition_home.h"
#include "txn.h"

/* FindCoordinator key types (KIP-98, KIP-932). */
enum {
        COORDINATOR_KEY_GROUP = 0,
        COORDINATOR_KEY_TRANSACTION = 1,
        COORDINATOR_KEY_SHARE = 2,
};

/* AclOperation codes of what a group supports; with no authorizer every
 * one is allowed (Kafka's AuthHelper.authorizedOperations). */
#define OPS_BIT(op) (1 << (op))
static const int32_t group_operations = OPS_BIT(3) /* READ */ | OPS_BIT(6) /* DELETE */ |
                                        OPS_BIT(8) /* DESCRIBE */ | OPS_BIT(10) /* DESCRIBE_CONFIGS */ |
                                        OPS_BIT(11) /* ALTER_CONFIGS */;

/* ---- copies into the request's arena ---- */

/* A copy of s (null stays null); sets *is_oom when the arena is full. */
static struct kstr copy_kstr(struct request *req, struct kstr s, bool *is_oom)
{
        if (s.len <= 0)
                return s.len < 0 ? KSTR_NULL : (struct kstr){ "", 0 };
        char *p = arena_strndup(&req->arena, s.ptr, (size_t)s.len);
        if (!p) {
                *is_oom = true;
                return (struct kstr){ "", 0 };
        }
        return (struct kstr){ p, s.len };
}

static struct kbytes copy_kbytes(struct request *req, struct kbytes b, bool *is_oom)
{
        if (b.len <= 0)
                return b.len < 0 ? KBYTES_NULL : (struct kbytes){ NULL, 0 };
        void *p = arena_dup(&req->arena, b.ptr, (size_t)b.len);
        if (!p) {
                *is_oom = true;
                return (struct kbytes){ NULL, 0 };
        }
        return (struct kbytes){ p, b.len };
}

static struct kstr or_empty(struct kstr s)
{
        return s.len < 0 ? (struct kstr){ "", 0 } : s;
}

/* The client.id of the request header (dispatch keeps only key, version
 * and correlation id); "" when absent. */
static struct kstr request_client_id(struct request *req)
{
        struct kreader r;
        struct request_header hdr;
        kr_init(&r, req->frame, req->frame_len);
        if (request_header_decode(&r, &req->arena, api_request_header_version(req->api_key, req->api_version),
                                  &hdr) < 0)
                return (struct kstr){ "", 0 };
        return or_empty(hdr.client_id);
}

/* Kafka's clientHost: InetAddress.toString() of the peer, "/127.0.0.1". */
static struct kstr request_client_host(struct request *req)
{
        const char *peer = request_peer(req);
        const char *end = strrchr(peer, ':');
        const char *start = peer;
        if (!end)
                end = peer + strlen(peer);
        if (*start == '[') {
                start++;
                if (end > start && end[-1] == ']')
                        end--;
        }
        char *s = arena_printf(&req->arena, "/%.*s", (int)(end - start), start);
        return s ? KSTR(s) : (struct kstr){ "", 0 };
}

/* ---- a trip to a group's home and back ---- */

struct trip;
typedef void (*trip_home_fn)(struct trip *t, struct group_coordinator *gc);
typedef void (*trip_respond_fn)(struct trip *t, int16_t error_code);

struct trip {
        struct broker *broker;
        struct request *req;
        struct coordinator_place place;
        trip_home_fn at_home;           /* on the home; ends with trip_return(), now or later */
        trip_respond_fn respond;        /* on the request's reactor; error_code != NONE: no answer from home */
        int16_t error_code;
        bool is_out_of_memory;          /* a copy into the arena failed at the home */
        struct reactor_task to_home;
        struct reactor_task back;
};

/*
 * Hands task to reactor r: deferred when already there, so that it never
 * runs inside the caller (group.c must not see a response complete under
 * it). false when r takes no more work: it has stopped, the broker is
 * exiting, and the task must not run on another thread instead.
 */
static bool hand_over(struct reactor *r, struct reactor_task *task)
{
        if (reactor_self() == r) {
                reactor_defer(r, task);
                return true;
        }
        return reactor_post_task(r, task) == 0;
}

static void trip_back(void *arg)
{
        struct trip *t = arg;
        assert(reactor_self() == t->req->reactor);
        coordinator_place_put(&t->place);
        if (t->is_out_of_memory) {
                log_warn("closing connection from %s: the group response does not fit the request memory limit",
                         request_peer(t->req));
                request_close_connection(t->req);
                return;
        }
        t->respond(t, t->error_code);
}

/* At the home: the work is done (or answered). t must not be touched after. */
static void trip_return(struct trip *t)
{
        reactor_task_init(&t->back, trip_back, t);
        if (!hand_over(t->req->reactor, &t->back)) {
                /* The request's reactor gave up on its connections at
                 * shutdown; nobody will read the answer. */
                coordinator_place_put(&t->place);
        }
}

static void trip_at_home(void *arg)
{
        struct trip *t = arg;
        assert(reactor_self() == t->place.home);
        /* The partition's committed offsets load first: until then its
         * groups are not known whole (Kafka: COORDINATOR_LOAD_IN_PROGRESS). */
        int16_t err = offsets_partition_ready(t->broker, t->place.topic, t->place.partition);
        /* Not held while parked: a shutdown must not find it taken. */
        coordinator_place_put(&t->place);
        struct group_coordinator *gc = err == KAFKA_NONE ? coordinator_home_groups(t->broker) : NULL;
        if (err == KAFKA_NONE && !gc)
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
        if (err != KAFKA_NONE) {
                t->error_code = err;
                trip_return(t);
                return;
        }
        t->at_home(t, gc);
}

static void trip_init(struct trip *t, struct broker *b, struct request *req, trip_home_fn at_home,
                      trip_respond_fn respond)
{
        t->broker = b;
        t->req = req;
        t->at_home = at_home;
        t->respond = respond;
        t->error_code = KAFKA_NONE;
}

/* Sends t to group_id's home. When the group has no home yet (no
 * __consumer_offsets), answers NOT_COORDINATOR at once. */
static void trip_start(struct trip *t, struct kstr group_id)
{
        if (!coordinator_locate_group(t->broker, group_id, &t->place)) {
                t->respond(t, KAFKA_NOT_COORDINATOR);
                return;
        }
        reactor_task_init(&t->to_home, trip_at_home, t);
        if (reactor_self() == t->place.home) {
                trip_at_home(t);
                return;
        }
        if (reactor_post_task(t->place.home, &t->to_home) < 0) {
                coordinator_place_put(&t->place);
                t->respond(t, KAFKA_NOT_COORDINATOR);   /* the home is shutting down */
        }
}

static void *alloc_call(struct request *req, size_t bytes)
{
        void *p = arena_calloc(&req->arena, 1, bytes);
        if (!p) {
                log_warn("closing connection from %s: out of request memory", request_peer(req));
                request_close_connection(req);
        }
        return p;
}

/* ---- FindCoordinator ---- */

static int16_t find_coordinator_for(struct broker *b, int8_t key_type)
{
        switch (key_type) {
        case COORDINATOR_KEY_GROUP:
                return coordinator_ensure_offsets_topic(b);
        case COORDINATOR_KEY_TRANSACTION:
                return txn_ensure_topic(b);
        case COORDINATOR_KEY_SHARE:
                /* No share groups (KIP-932): Kafka without a share
                 * coordinator answers the same, as it does before v6. */
                return KAFKA_INVALID_REQUEST;
        default:
                return KAFKA_INVALID_REQUEST;
        }
}

/* Kafka's Errors.message(): the exception's text, "NONE" for no error. */
static const char *error_message(int16_t code)
{
        switch (code) {
        case KAFKA_NONE:
                return "NONE";
        case KAFKA_COORDINATOR_NOT_AVAILABLE:
                return "The coordinator is not available.";
        case KAFKA_INVALID_REQUEST:
                return "This most likely occurs because of a request being malformed by the client library or "
                       "the message was sent to an incompatible broker. See the broker logs for more details.";
        default:
                return kafka_error_name(code);
        }
}

void handle_find_coordinator(struct broker *b, struct request *req, struct kreader *body)
{
        struct find_coordinator_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        int16_t v = req->api_version;
        struct find_coordinator_response resp;
        find_coordinator_response_init(&resp);
        struct kstr host = KSTR(b->advertised_host);
        if (v < 4) {
                int16_t err = find_coordinator_for(b, rq->key_type);
                resp.error_code = err;
                if (v >= 1)
                        resp.error_message = KSTR(error_message(err));
                resp.node_id = err == KAFKA_NONE ? b->node_id : -1;
                resp.host = err == KAFKA_NONE ? host : (struct kstr){ "", 0 };
                resp.port = err == KAFKA_NONE ? b->advertised_port : -1;
                dispatch_respond(req, &resp);
                return;
        }
        int32_t n = rq->coordinator_keys.count > 0 ? rq->coordinator_keys.count : 0;
        resp.coordinators.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.coordinators.items));
        if (!resp.coordinators.items) {
                request_close_connection(req);
                return;
        }
        resp.coordinators.count = n;
        for (int32_t i = 0; i < n; i++) {
                struct find_coordinator_response_coordinator *c = &resp.coordinators.items[i];
                find_coordinator_response_coordinator_init(c);
                int16_t err = find_coordinator_for(b, rq->key_type);
                c->key = or_empty(rq->coordinator_keys.items[i]);
                c->error_code = err;
                c->error_message = KSTR_NULL;
                c->node_id = err == KAFKA_NONE ? b->node_id : -1;
                c->host = err == KAFKA_NONE ? host : (struct kstr){ "", 0 };
                c->port = err == KAFKA_NONE ? b->advertised_port : -1;
        }
        dispatch_respond(req, &resp);
}

/* ---- JoinGroup ---- */

struct join_call {
        struct trip trip;
        struct group_join_waiter waiter;
        struct group_join_request in;
        struct join_group_response resp;
};

static void join_at_home(struct trip *t, struct group_coordinator *gc)
{
        struct join_call *c = container_of(t, struct join_call, trip);
        group_join(gc, &c->in, &c->waiter);
}

/* At the home, from group.c: copy the answer into the request. */
static void join_answered(struct group_join_waiter *w, const struct group_join_result *res)
{
        struct join_call *c = container_of(w, struct join_call, waiter);
        struct request *req = c->trip.req;
        int16_t v = req->api_version;
        bool *oom = &c->trip.is_out_of_memory;
        struct join_group_response *resp = &c->resp;
        resp->error_code = res->error_code;
        resp->generation_id = res->generation_id;
        /* Before v7 the protocol name is not nullable and "" means none;
         * from v7 none is null (Kafka's JoinGroupResponse does the same). */
        struct kstr name = copy_kstr(req, res->protocol_name, oom);
        if (v < 7)
                resp->protocol_name = or_empty(name);
        else
                resp->protocol_name = name.len == 0 ? KSTR_NULL : name;
        resp->protocol_type = v >= 7 ? copy_kstr(req, res->protocol_type, oom) : KSTR_NULL;
        resp->leader = copy_kstr(req, or_empty(res->leader), oom);
        resp->member_id = copy_kstr(req, or_empty(res->member_id), oom);
        resp->skip_assignment = v >= 9 && res->skip_assignment;
        const struct group *g = res->members_of;
        if (g && g->member_count > 0) {
                resp->members.items = arena_calloc(&req->arena, (size_t)g->member_count,
                                                   sizeof(*resp->members.items));
                if (!resp->members.items) {
                        *oom = true;
                } else {
                        int32_t i = 0;
                        for (const struct group_member *m = g->members_head; m; m = m->next, i++) {
                                struct join_group_response_member *out = &resp->members.items[i];
                                join_group_response_member_init(out);
                                out->member_id = copy_kstr(req, m->member_id, oom);
                                out->group_instance_id = v >= 5 ? copy_kstr(req, m->group_instance_id, oom) :
                                                                  KSTR_NULL;
                                struct kbytes md = group_member_metadata(m, res->protocol_name);
                                out->metadata = copy_kbytes(req, md.len < 0 ? (struct kbytes){ NULL, 0 } : md, oom);
                        }
                        assert(i == g->member_count);
                        resp->members.count = g->member_count;
                }
        }
        trip_return(&c->trip);
}

static void join_respond(struct trip *t, int16_t error_code)
{
        struct join_call *c = container_of(t, struct join_call, trip);
        if (error_code != KAFKA_NONE) {
                join_group_response_init(&c->resp);
                c->resp.error_code = error_code;
                c->resp.protocol_name = t->req->api_version >= 7 ? KSTR_NULL : (struct kstr){ "", 0 };
        }
        dispatch_respond(t->req, &c->resp);
}

void handle_join_group(struct broker *b, struct request *req, struct kreader *body)
{
        struct join_group_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        int16_t v = req->api_version;
        struct join_call *c = alloc_call(req, sizeof(*c));
        if (!c)
                return;
        trip_init(&c->trip, b, req, join_at_home, join_respond);
        int32_t n = rq->protocols.count > 0 ? rq->protocols.count : 0;
        struct group_protocol *protocols = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*protocols));
        if (!protocols) {
                request_close_connection(req);
                return;
        }
        for (int32_t i = 0; i < n; i++) {
                protocols[i].name = or_empty(rq->protocols.items[i].name);
                protocols[i].metadata = rq->protocols.items[i].metadata;
        }
        join_group_response_init(&c->resp);
        if (rq->group_id.len <= 0) {
                c->resp.error_code = KAFKA_INVALID_GROUP_ID;
                c->resp.member_id = or_empty(rq->member_id);
                c->resp.protocol_name = v >= 7 ? KSTR_NULL : (struct kstr){ "", 0 };
                dispatch_respond(req, &c->resp);
                return;
        }
        c->waiter.done = join_answered;
        c->in = (struct group_join_request){
                .group_id = or_empty(rq->group_id),
                .member_id = or_empty(rq->member_id),
                .group_instance_id = v >= 5 ? rq->group_instance_id : KSTR_NULL,
                .protocol_type = or_empty(rq->protocol_type),
                .client_id = request_client_id(req),
                .client_host = request_client_host(req),
                .reason = v >= 8 ? rq->reason : KSTR_NULL,
                .session_timeout_ms = rq->session_timeout_ms,
                /* v0 has no rebalance timeout: the session timeout serves. */
                .rebalance_timeout_ms = v >= 1 ? rq->rebalance_timeout_ms : rq->session_timeout_ms,
                .requires_known_member_id = v >= 4,
                .supports_skip_assignment = v >= 9,
                .protocol_count = n,
                .protocols = protocols,
        };
        trip_start(&c->trip, c->in.group_id);
}

/* ---- SyncGroup ---- */

struct sync_call {
        struct trip trip;
        struct group_sync_waiter waiter;
        struct group_sync_request in;
        struct sync_group_response resp;
};

static void sync_at_home(struct trip *t, struct group_coordinator *gc)
{
        struct sync_call *c = container_of(t, struct sync_call, trip);
        group_sync(gc, &c->in, &c->waiter);
}

static void sync_answered(struct group_sync_waiter *w, const struct group_sync_result *res)
{
        struct sync_call *c = container_of(w, struct sync_call, waiter);
        struct request *req = c->trip.req;
        bool *oom = &c->trip.is_out_of_memory;
        c->resp.error_code = res->error_code;
        if (req->api_version >= 5) {
                c->resp.protocol_type = copy_kstr(req, res->protocol_type, oom);
                c->resp.protocol_name = copy_kstr(req, res->protocol_name, oom);
        }
        c->resp.assignment = copy_kbytes(req, res->assignment.len < 0 ? (struct kbytes){ NULL, 0 } : res->assignment,
                                         oom);
        trip_return(&c->trip);
}

static void sync_respond(struct trip *t, int16_t error_code)
{
        struct sync_call *c = container_of(t, struct sync_call, trip);
        if (error_code != KAFKA_NONE) {
                sync_group_response_init(&c->resp);
                c->resp.error_code = error_code;
        }
        dispatch_respond(t->req, &c->resp);
}

void handle_sync_group(struct broker *b, struct request *req, struct kreader *body)
{
        struct sync_group_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        int16_t v = req->api_version;
        struct sync_call *c = alloc_call(req, sizeof(*c));
        if (!c)
                return;
        trip_init(&c->trip, b, req, sync_at_home, sync_respond);
        sync_group_response_init(&c->resp);
        c->resp.assignment = (struct kbytes){ NULL, 0 };
        if (v >= 5 && (kstr_is_null(rq->protocol_type) || kstr_is_null(rq->protocol_name))) {
                /* KIP-559: from v5 both are mandatory. */
                c->resp.error_code = KAFKA_INCONSISTENT_GROUP_PROTOCOL;
                dispatch_respond(req, &c->resp);
                return;
        }
        if (rq->group_id.len <= 0) {
                c->resp.error_code = KAFKA_INVALID_GROUP_ID;
                dispatch_respond(req, &c->resp);
                return;
        }
        int32_t n = rq->assignments.count > 0 ? rq->assignments.count : 0;
        struct group_assignment *as = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*as));
        if (!as) {
                request_close_connection(req);
                return;
        }
        for (int32_t i = 0; i < n; i++) {
                as[i].member_id = or_empty(rq->assignments.items[i].member_id);
                as[i].assignment = rq->assignments.items[i].assignment;
        }
        c->waiter.done = sync_answered;
        c->in = (struct group_sync_request){
                .group_id = or_empty(rq->group_id),
                .generation_id = rq->generation_id,
                .member_id = or_empty(rq->member_id),
                .group_instance_id = v >= 3 ? rq->group_instance_id : KSTR_NULL,
                .protocol_type = v >= 5 ? rq->protocol_type : KSTR_NULL,
                .protocol_name = v >= 5 ? rq->protocol_name : KSTR_NULL,
                .assignment_count = n,
                .assignments = as,
        };
        trip_start(&c->trip, c->in.group_id);
}

/* ---- Heartbeat ---- */

struct heartbeat_call {
        struct trip trip;
        struct heartbeat_request *rq;
        int16_t error_code;
};

static void heartbeat_at_home(struct trip *t, struct group_coordinator *gc)
{
        struct heartbeat_call *c = container_of(t, struct heartbeat_call, trip);
        struct heartbeat_request *rq = c->rq;
        c->error_code = group_heartbeat(gc, or_empty(rq->group_id), or_empty(rq->member_id),
                                        t->req->api_version >= 3 ? rq->group_instance_id : KSTR_NULL,
                                        rq->generation_id);
        trip_return(t);
}

static void heartbeat_respond(struct trip *t, int16_t error_code)
{
        struct heartbeat_call *c = container_of(t, struct heartbeat_call, trip);
        struct heartbeat_response resp;
        heartbeat_response_init(&resp);
        resp.error_code = error_code != KAFKA_NONE ? error_code : c->error_code;
        dispatch_respond(t->req, &resp);
}

void handle_heartbeat(struct broker *b, struct request *req, struct kreader *body)
{
        struct heartbeat_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct heartbeat_call *c = alloc_call(req, sizeof(*c));
        if (!c)
                return;
        trip_init(&c->trip, b, req, heartbeat_at_home, heartbeat_respond);
        c->rq = rq;
        if (kstr_is_null(rq->group_id) || rq->group_id.len == 0) {
                heartbeat_respond(&c->trip, KAFKA_INVALID_GROUP_ID);
                return;
        }
        trip_start(&c->trip, rq->group_id);
}

/* ---- LeaveGroup ---- */

struct leave_call {
        struct trip trip;
        struct leave_group_request *rq;
        struct group_leave_member *members;
        int32_t member_count;
        int16_t error_code;
};

static void leave_at_home(struct trip *t, struct group_coordinator *gc)
{
        struct leave_call *c = container_of(t, struct leave_call, trip);
        c->error_code = group_leave(gc, or_empty(c->rq->group_id), c->members, c->member_count);
        trip_return(t);
}

static void leave_respond(struct trip *t, int16_t error_code)
{
        struct leave_call *c = container_of(t, struct leave_call, trip);
        struct request *req = t->req;
        struct leave_group_response resp;
        leave_group_response_init(&resp);
        if (error_code == KAFKA_NONE)
                error_code = c->error_code;
        resp.error_code = error_code;
        if (req->api_version < 3) {
                /* One member, its error at the top (LeaveGroupResponse). */
                if (error_code == KAFKA_NONE && c->member_count == 1)
                        resp.error_code = c->members[0].error_code;
                dispatch_respond(req, &resp);
                return;
        }
        if (error_code == KAFKA_NONE) {
                resp.members.items = arena_calloc(&req->arena, (size_t)c->member_count + 1,
                                                  sizeof(*resp.members.items));
                if (!resp.members.items) {
                        request_close_connection(req);
                        return;
                }
                resp.members.count = c->member_count;
                for (int32_t i = 0; i < c->member_count; i++) {
                        struct leave_group_response_member_response *out = &resp.members.items[i];
                        leave_group_response_member_response_init(out);
                        out->member_id = c->members[i].member_id;
                        out->group_instance_id = c->members[i].group_instance_id;
                        out->error_code = c->members[i].error_code;
                }
        }
        dispatch_respond(req, &resp);
}

void handle_leave_group(struct broker *b, struct request *req, struct kreader *body)
{
        struct leave_group_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct leave_call *c = alloc_call(req, sizeof(*c));
        if (!c)
                return;
        trip_init(&c->trip, b, req, leave_at_home, leave_respond);
        c->rq = rq;
        if (req->api_version < 3) {
                c->member_count = 1;
                c->members = arena_calloc(&req->arena, 1, sizeof(*c->members));
                if (c->members) {
                        c->members[0].member_id = or_empty(rq->member_id);
                        c->members[0].group_instance_id = KSTR_NULL;
                }
        } else {
                c->member_count = rq->members.count > 0 ? rq->members.count : 0;
                c->members = arena_calloc(&req->arena, (size_t)c->member_count + 1, sizeof(*c->members));
                for (int32_t i = 0; c->members && i < c->member_count; i++) {
                        c->members[i].member_id = or_empty(rq->members.items[i].member_id);
                        c->members[i].group_instance_id = rq->members.items[i].group_instance_id;
                }
        }
        if (!c->members) {
                request_close_connection(req);
                return;
        }
        if (kstr_is_null(rq->group_id) || rq->group_id.len == 0) {
                leave_respond(&c->trip, KAFKA_INVALID_GROUP_ID);
                return;
        }
        trip_start(&c->trip, rq->group_id);
}

/* ---- walking several homes: DescribeGroups, DeleteGroups, ListGroups ---- */

struct walk;
/* On item i's home. error_code is NONE (and gc set) when the item's
 * partition can serve; else COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR
 * or COORDINATOR_NOT_AVAILABLE. */
typedef void (*walk_item_fn)(struct walk *w, struct group_coordinator *gc, int32_t i, int16_t error_code);

struct walk {
        struct broker *broker;
        struct request *req;
        const struct catalog_topic *topic;      /* __consumer_offsets, held; NULL: none */
        int32_t count;
        struct reactor **homes;         /* per item; NULL: answered without a visit */
        int32_t *partitions;            /* per item, of __consumer_offsets */
        bool *is_visited;
        walk_item_fn at_home;
        void (*respond)(struct walk *w);
        void *ctx;
        struct reactor *target;         /* the home being visited */
        bool is_out_of_memory;
        struct reactor_task task;
};

static void walk_next(struct walk *w);

static void walk_finish(void *arg)
{
        struct walk *w = arg;
        catalog_topic_put(w->topic);
        w->topic = NULL;
        if (w->is_out_of_memory) {
                log_warn("closing connection from %s: the group response does not fit the request memory limit",
                         request_peer(w->req));
                request_close_connection(w->req);
                return;
        }
        w->respond(w);
}

/* On some home: every item that lives here, then on to the next home. */
static void walk_visit(void *arg)
{
        struct walk *w = arg;
        struct group_coordinator *gc = NULL;
        bool has_gc = false;
        assert(reactor_self() == w->target);
        for (int32_t i = 0; i < w->count; i++) {
                if (w->is_visited[i] || w->homes[i] != w->target)
                        continue;
                if (!has_gc) {
                        gc = coordinator_home_groups(w->broker);
                        has_gc = true;
                }
                int16_t err = offsets_partition_ready(w->broker, w->topic, w->partitions[i]);
                if (err == KAFKA_NONE && !gc)
                        err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                w->at_home(w, err == KAFKA_NONE ? gc : NULL, i, err);
                w->is_visited[i] = true;
        }
        walk_next(w);
}

static void walk_next(struct walk *w)
{
        for (int32_t i = 0; i < w->count; i++) {
                if (w->is_visited[i] || !w->homes[i])
                        continue;
                w->target = w->homes[i];
                reactor_task_init(&w->task, walk_visit, w);
                if (hand_over(w->target, &w->task))
                        return;
                /* That home is shutting down: its items get NOT_COORDINATOR. */
                for (int32_t k = i; k < w->count; k++) {
                        if (!w->is_visited[k] && w->homes[k] == w->target) {
                                w->at_home(w, NULL, k, KAFKA_NOT_COORDINATOR);
                                w->is_visited[k] = true;
                        }
                }
        }
        reactor_task_init(&w->task, walk_finish, w);
        if (!hand_over(w->req->reactor, &w->task)) {
                catalog_topic_put(w->topic);    /* the request's reactor is gone */
                w->topic = NULL;
        }
}

/* A walk over count items; NULL when the arena is full. */
static struct walk *walk_new(struct broker *b, struct request *req, int32_t count, walk_item_fn at_home,
                             void (*respond)(struct walk *w))
{
        struct walk *w = arena_calloc(&req->arena, 1, sizeof(*w));
        if (!w)
                return NULL;
        w->broker = b;
        w->req = req;
        w->count = count;
        w->at_home = at_home;
        w->respond = respond;
        w->homes = arena_calloc(&req->arena, (size_t)count + 1, sizeof(*w->homes));
        w->partitions = arena_calloc(&req->arena, (size_t)count + 1, sizeof(*w->partitions));
        w->is_visited = arena_calloc(&req->arena, (size_t)count + 1, sizeof(*w->is_visited));
        if (!w->homes || !w->partitions || !w->is_visited)
                return NULL;
        w->topic = catalog_get_topic(b->catalog, KSTR(COORDINATOR_OFFSETS_TOPIC));
        return w;
}

/* Item i is group_id: its home, or false when there is none yet. */
static bool walk_place_group(struct walk *w, int32_t i, struct kstr group_id)
{
        if (!w->topic)
                return false;
        int32_t p = group_partition_of(group_id, w->topic->partition_count);
        w->partitions[i] = p;
        w->homes[i] = partition_home_reactor(w->broker->homes, partition_home_index(w->broker->homes, w->topic, p));
        return true;
}

/* ---- DescribeGroups ---- */

static void describe_at_home(struct walk *w, struct group_coordinator *gc, int32_t i, int16_t error_code)
{
        struct describe_groups_response *resp = w->ctx;
        struct describe_groups_response_described_group *out = &resp->groups.items[i];
        struct request *req = w->req;
        int16_t v = req->api_version;
        bool *oom = &w->is_out_of_memory;
        if (error_code != KAFKA_NONE) {
                out->error_code = error_code;
                return;
        }
        const struct group *g = group_find(gc, out->group_id);
        if (!g) {
                /* Kafka describes an unknown group as Dead, without error. */
                out->group_state = KSTR(group_state_name(GROUP_DEAD));
                return;
        }
        bool is_stable = g->state == GROUP_STABLE;
        out->group_state = KSTR(group_state_name(g->state));
        out->protocol_type = copy_kstr(req, or_empty(g->protocol_type), oom);
        out->protocol_data = is_stable ? copy_kstr(req, g->protocol_name, oom) : (struct kstr){ "", 0 };
        if (g->member_count == 0)
                return;
        out->members.items = arena_calloc(&req->arena, (size_t)g->member_count, sizeof(*out->members.items));
        if (!out->members.items) {
                *oom = true;
                return;
        }
        int32_t k = 0;
        for (const struct group_member *m = g->members_head; m; m = m->next, k++) {
                struct describe_groups_response_described_group_member *dm = &out->members.items[k];
                describe_groups_response_described_group_member_init(dm);
                dm->member_id = copy_kstr(req, m->member_id, oom);
                dm->group_instance_id = v >= 4 ? copy_kstr(req, m->group_instance_id, oom) : KSTR_NULL;
                dm->client_id = copy_kstr(req, m->client_id, oom);
                dm->client_host = copy_kstr(req, m->client_host, oom);
                /* Metadata only once a protocol is settled (Stable). */
                struct kbytes md = is_stable ? group_member_metadata(m, g->protocol_name) : (struct kbytes){ NULL, 0 };
                dm->member_metadata = copy_kbytes(req, md.len < 0 ? (struct kbytes){ NULL, 0 } : md, oom);
                dm->member_assignment = copy_kbytes(req, m->assignment, oom);
        }
        out->members.count = k;
}

static void describe_respond(struct walk *w)
{
        struct describe_groups_response *resp = w->ctx;
        /* Authorized operations only for groups described without error. */
        for (int32_t i = 0; i < resp->groups.count; i++)
                if (resp->groups.items[i].error_code != KAFKA_NONE)
                        resp->groups.items[i].authorized_operations = INT32_MIN;
        dispatch_respond(w->req, resp);
}

void handle_describe_groups(struct broker *b, struct request *req, struct kreader *body)
{
        struct describe_groups_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        int16_t v = req->api_version;
        int32_t n = rq->groups.count > 0 ? rq->groups.count : 0;
        struct walk *w = walk_new(b, req, n, describe_at_home, describe_respond);
        struct describe_groups_response *resp = arena_calloc(&req->arena, 1, sizeof(*resp));
        if (!w || !resp)
                goto out_of_memory;
        describe_groups_response_init(resp);
        resp->groups.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp->groups.items));
        if (!resp->groups.items)
                goto out_of_memory;
        resp->groups.count = n;
        w->ctx = resp;
        for (int32_t i = 0; i < n; i++) {
                struct describe_groups_response_described_group *out = &resp->groups.items[i];
                describe_groups_response_described_group_init(out);
                out->group_id = or_empty(rq->groups.items[i]);
                if (v >= 3 && rq->include_authorized_operations)
                        out->authorized_operations = group_operations;
                if (!walk_place_group(w, i, out->group_id))
                        out->error_code = KAFKA_NOT_COORDINATOR;
        }
        walk_next(w);
        return;
out_of_memory:
        if (w)
                catalog_topic_put(w->topic);
        log_warn("closing connection from %s: DescribeGroups exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- DeleteGroups ---- */

static void delete_at_home(struct walk *w, struct group_coordinator *gc, int32_t i, int16_t error_code)
{
        struct delete_groups_response *resp = w->ctx;
        struct delete_groups_response_deletable_group_result *out = &resp->results.items[i];
        out->error_code = error_code == KAFKA_NONE ? group_delete(gc, out->group_id) : error_code;
}

static void delete_respond(struct walk *w)
{
        dispatch_respond(w->req, w->ctx);
}

void handle_delete_groups(struct broker *b, struct request *req, struct kreader *body)
{
        struct delete_groups_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        int32_t n = rq->groups_names.count > 0 ? rq->groups_names.count : 0;
        struct walk *w = walk_new(b, req, n, delete_at_home, delete_respond);
        struct delete_groups_response *resp = arena_calloc(&req->arena, 1, sizeof(*resp));
        if (!w || !resp)
                goto out_of_memory;
        delete_groups_response_init(resp);
        resp->results.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp->results.items));
        if (!resp->results.items)
                goto out_of_memory;
        resp->results.count = n;
        w->ctx = resp;
        for (int32_t i = 0; i < n; i++) {
                struct delete_groups_response_deletable_group_result *out = &resp->results.items[i];
                delete_groups_response_deletable_group_result_init(out);
                out->group_id = or_empty(rq->groups_names.items[i]);
                if (!walk_place_group(w, i, out->group_id))
                        out->error_code = KAFKA_NOT_COORDINATOR;
        }
        walk_next(w);
        return;
out_of_memory:
        if (w)
                catalog_topic_put(w->topic);
        log_warn("closing connection from %s: DeleteGroups exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- ListGroups ---- */

struct list_ctx {
        struct list_groups_response_listed_group **found;       /* per item */
        int32_t *found_count;
        struct reactor *listed_home;    /* the home whose groups are listed */
        int16_t error_code;             /* a partition that cannot serve yet */
        bool has_state_filter;
        bool states[GROUP_DEAD + 1];    /* states the filter names */
        bool is_type_filtered_out;      /* a types filter without "classic" */
};

static bool list_wants(const struct list_ctx *lc, const struct group *g)
{
        if (lc->is_type_filtered_out)
                return false;
        return !lc->has_state_filter || lc->states[g->state];
}

/* Item i is partition i of __consumer_offsets; a home's groups are listed
 * with the first of its partitions. */
static void list_at_home(struct walk *w, struct group_coordinator *gc, int32_t i, int16_t error_code)
{
        struct list_ctx *lc = w->ctx;
        struct request *req = w->req;
        int16_t v = req->api_version;
        bool *oom = &w->is_out_of_memory;
        if (error_code != KAFKA_NONE) {
                /* Kafka leaves out partitions it does not own, and fails
                 * the listing while one is loading. */
                if (error_code != KAFKA_NOT_COORDINATOR)
                        lc->error_code = error_code;
                return;
        }
        if (lc->listed_home == w->target)
                return;
        lc->listed_home = w->target;
        int32_t n = 0;
        for (const struct group *g = group_coordinator_first(gc); g; g = group_coordinator_next(g))
                n += list_wants(lc, g);
        if (n == 0)
                return;
        struct list_groups_response_listed_group *items = arena_calloc(&req->arena, (size_t)n, sizeof(*items));
        if (!items) {
                *oom = true;
                return;
        }
        int32_t k = 0;
        for (const struct group *g = group_coordinator_first(gc); g; g = group_coordinator_next(g)) {
                if (!list_wants(lc, g))
                        continue;
                struct list_groups_response_listed_group *out = &items[k++];
                list_groups_response_listed_group_init(out);
                out->group_id = copy_kstr(req, g->id, oom);
                out->protocol_type = copy_kstr(req, or_empty(g->protocol_type), oom);
                if (v >= 4)
                        out->group_state = KSTR(group_state_name(g->state));
                if (v >= 5)
                        out->group_type = KSTR("classic");
        }
        assert(k == n);
        lc->found[i] = items;
        lc->found_count[i] = n;
}

static void list_respond(struct walk *w)
{
        struct list_ctx *lc = w->ctx;
        struct request *req = w->req;
        struct list_groups_response resp;
        list_groups_response_init(&resp);
        if (lc->error_code != KAFKA_NONE) {
                resp.error_code = lc->error_code;
                dispatch_respond(req, &resp);
                return;
        }
        int64_t total = 0;
        for (int32_t i = 0; i < w->count; i++)
                total += lc->found_count[i];
        resp.groups.items = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*resp.groups.items));
        if (!resp.groups.items || total > INT32_MAX) {
                request_close_connection(req);
                return;
        }
        for (int32_t i = 0; i < w->count; i++) {
                if (lc->found_count[i] > 0)
                        memcpy(resp.groups.items + resp.groups.count, lc->found[i],
                               (size_t)lc->found_count[i] * sizeof(*resp.groups.items));
                resp.groups.count += lc->found_count[i];
        }
        dispatch_respond(req, &resp);
}

void handle_list_groups(struct broker *b, struct request *req, struct kreader *body)
{
        struct list_groups_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        int16_t v = req->api_version;
        struct walk *w = NULL;
        struct list_ctx *lc = arena_calloc(&req->arena, 1, sizeof(*lc));
        if (!lc)
                goto out_of_memory;
        if (v >= 4 && rq->states_filter.count > 0) {
                /* Kafka compares lower-cased, trimmed names; an unknown name
                 * matches nothing. */
                lc->has_state_filter = true;
                for (int32_t i = 0; i < rq->states_filter.count; i++) {
                        enum group_state s;
                        if (group_state_parse(or_empty(rq->states_filter.items[i]), &s))
                                lc->states[s] = true;
                }
        }
        if (v >= 5 && rq->types_filter.count > 0) {
                /* Every group here is a classic one. */
                lc->is_type_filtered_out = true;
                for (int32_t i = 0; i < rq->types_filter.count; i++) {
                        struct kstr t = or_empty(rq->types_filter.items[i]);
                        if (t.len == 7 && strncasecmp(t.ptr, "classic", 7) == 0)
                                lc->is_type_filtered_out = false;
                }
        }
        /* Every partition of __consumer_offsets, visited home by home. */
        const struct catalog_topic *t = catalog_get_topic(b->catalog, KSTR(COORDINATOR_OFFSETS_TOPIC));
        int32_t parts = t ? t->partition_count : 0;
        catalog_topic_put(t);
        w = walk_new(b, req, parts, list_at_home, list_respond);
        if (!w)
                goto out_of_memory;
        if (w->topic && w->topic->partition_count != parts)
                parts = w->count = 0;   /* recreated meanwhile: list nothing */
        lc->found = arena_calloc(&req->arena, (size_t)parts + 1, sizeof(*lc->found));
        lc->found_count = arena_calloc(&req->arena, (size_t)parts + 1, sizeof(*lc->found_count));
        if (!lc->found || !lc->found_count)
                goto out_of_memory;
        w->ctx = lc;
        for (int32_t p = 0; p < parts; p++) {
                w->partitions[p] = p;
                w->homes[p] = partition_home_reactor(b->homes, partition_home_index(b->homes, w->topic, p));
        }
        walk_next(w);
        return;
out_of_memory:
        if (w)
                catalog_topic_put(w->topic);
        log_warn("closing connection from %s: ListGroups exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}
