/*
 * offsets_requests.c - OffsetCommit, OffsetFetch and OffsetDelete, answered
 * by the shards of server/offsets.c (see its top comment for the path of a
 * request and the invariants), and the trip they and TxnOffsetCommit share.
 *
 * A request is checked on its connection's reactor (group id, topics and
 * partitions against the catalog, metadata size), then carried to the home
 * of the group's __consumer_offsets partition, where the shard and the
 * group's membership live, and carried back to answer. OffsetFetch v8+
 * names several groups: it visits their homes one after the other. While
 * the request is away its connection's reactor does not touch it, so the
 * home may allocate from the request's arena.
 *
 * Invariant: every request carried home comes back and is answered
 * exactly once.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "../base/logging.h"
#include "../coordinator/group.h"
#include "../coordinator/offsets.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/offset_commit.h"
#include "../protocol/gen/offset_delete.h"
#include "../protocol/gen/offset_fetch.h"
#include "broker.h"
#include "coordinator_topic.h"
#include "handlers.h"
#include "offsets.h"
#include "offsets_shard.h"
#include "partition_home.h"

/* Kafka's validateOffsetCommit (OffsetMetadataManager, ClassicGroup). */
static int16_t validate_commit(struct group_coordinator *gc, const struct offset_commit_request *rq,
                               int16_t version)
{
        struct group *g = gc ? group_find(gc, rq->group_id) : NULL;
        if (!g) {
                if (rq->generation_id_or_member_epoch >= 0)
                        return version >= 9 ? KAFKA_GROUP_ID_NOT_FOUND : KAFKA_ILLEGAL_GENERATION;
                /* Generation -1: an admin client or a consumer without group
                 * management; Kafka creates a "simple" group for it. */
                int16_t err = KAFKA_NONE;
                if (gc && !group_get_or_create(gc, rq->group_id, &err) && err != KAFKA_INVALID_GROUP_ID)
                        return err;
                /* Kafka 4.4 takes simple commits even for the group id ""
                 * (which JoinGroup refuses); its offsets then live without
                 * a group object. */
                return KAFKA_NONE;
        }
        return group_validate_offset_commit(g, rq->member_id, rq->group_instance_id,
                                            rq->generation_id_or_member_epoch, false);
}

/* ---- answers in Kafka's order ---- */

/* OffsetCommit and OffsetDelete answers have the shape of struct
 * offsets_answer_topic (offsets.h), checked here. */
#define ANSWER_SAME_LAYOUT(t, p)                                                                               \
        _Static_assert(sizeof(struct t) == sizeof(struct offsets_answer_topic) &&                              \
                               offsetof(struct t, partitions) == offsetof(struct offsets_answer_topic, partitions) && \
                               sizeof(struct p) == sizeof(struct offsets_answer_partition) &&                  \
                               offsetof(struct p, error_code) == offsetof(struct offsets_answer_partition,     \
                                                                          error_code),                          \
                       #t " differs from struct offsets_answer_topic")
ANSWER_SAME_LAYOUT(offset_commit_response_topic, offset_commit_response_partition);
ANSWER_SAME_LAYOUT(offset_delete_response_topic, offset_delete_response_partition);

static struct offsets_answer_topic *answer_find(struct offsets_answer_topic *topics, int32_t count, struct kstr name)
{
        for (int32_t i = 0; i < count; i++)
                if (kstr_eq(topics[i].name, name))
                        return &topics[i];
        return NULL;
}

/* Appends one topic's partitions that are (or are not) refused early. */
static void answer_take(struct offsets_answer_topic *out, int32_t *out_count, const struct offsets_answer_topic *from,
                        bool is_early)
{
        struct offsets_answer_topic *t = NULL;
        for (int32_t i = 0; i < from->partitions.count; i++) {
                const struct offsets_answer_partition *p = &from->partitions.items[i];
                if ((p->error_code == KAFKA_UNKNOWN_TOPIC_OR_PARTITION) != is_early)
                        continue;
                if (!t)
                        t = answer_find(out, *out_count, from->name);
                if (!t) {
                        t = &out[(*out_count)++];
                        t->name = from->name;
                        t->partitions.count = 0;
                }
                t->partitions.items[t->partitions.count++] = *p;
        }
}

/* Reorders topics[0..*count) as Kafka's response builder would; 0 or -ENOMEM. */
int offsets_answer_order(struct arena *a, struct offsets_answer_topic **topics, int32_t *count)
{
        bool has_early = false;
        int32_t total = 0;
        for (int32_t t = 0; t < *count; t++) {
                total += (*topics)[t].partitions.count;
                for (int32_t i = 0; i < (*topics)[t].partitions.count; i++)
                        has_early = has_early ||
                                    (*topics)[t].partitions.items[i].error_code == KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        }
        if (!has_early)
                return 0;
        struct offsets_answer_topic *out = arena_calloc(a, (size_t)*count + 1, sizeof(*out));
        struct offsets_answer_partition *parts = arena_calloc(a, (size_t)total + 1, sizeof(*parts));
        if (!out || !parts)
                return -ENOMEM;
        /* Room for every partition of a name in its first entry. */
        int32_t n = 0;
        for (int32_t t = 0; t < *count; t++) {
                if (answer_find(out, n, (*topics)[t].name))
                        continue;
                out[n].name = (*topics)[t].name;
                out[n].partitions.items = parts;
                for (int32_t u = t; u < *count; u++)
                        if (kstr_eq((*topics)[u].name, (*topics)[t].name))
                                parts += (*topics)[u].partitions.count;
                n++;
        }
        /* Entries are filled in the order Kafka adds them. */
        struct offsets_answer_topic *order = arena_calloc(a, (size_t)n + 1, sizeof(*order));
        if (!order)
                return -ENOMEM;
        int32_t m = 0;
        for (int pass = 0; pass < 2; pass++) {
                for (int32_t t = 0; t < *count; t++) {
                        const struct offsets_answer_topic *from = &(*topics)[t];
                        if (!answer_find(order, m, from->name)) {
                                bool is_needed = false;
                                for (int32_t i = 0; i < from->partitions.count; i++)
                                        is_needed = is_needed || (from->partitions.items[i].error_code ==
                                                                  KAFKA_UNKNOWN_TOPIC_OR_PARTITION) == (pass == 0);
                                if (!is_needed)
                                        continue;
                                struct offsets_answer_topic *slot = answer_find(out, n, from->name);
                                order[m] = *slot;
                                order[m].partitions.count = 0;
                                m++;
                        }
                        answer_take(order, &m, from, pass == 0);
                }
        }
        *topics = order;
        *count = m;
        return 0;
}

/* ---- the trip OffsetCommit, TxnOffsetCommit and OffsetDelete share ---- */

int offsets_trip_init(struct offsets_trip *c, struct broker *b, struct request *req, struct kstr group_id,
                      uint32_t write_count_max, offsets_trip_respond_fn respond)
{
        assert(respond);
        c->b = b;
        c->req = req;
        c->group_id = group_id;
        c->respond = respond;
        c->writes = arena_calloc(&req->arena, (size_t)write_count_max + 1, sizeof(*c->writes));
        c->errors = arena_calloc(&req->arena, (size_t)write_count_max + 1, sizeof(*c->errors));
        return c->writes && c->errors ? 0 : -ENOMEM;
}

struct offsets_write *offsets_trip_add(struct offsets_trip *c, int16_t *error_code, struct kstr topic,
                                       int32_t partition, int64_t offset, int32_t leader_epoch,
                                       struct kstr metadata)
{
        struct offsets_write *w = &c->writes[c->count];
        c->errors[c->count++] = error_code;
        w->group = c->group_id;
        w->topic = topic;
        w->partition = partition;
        w->value.offset = offset;
        w->value.leader_epoch = leader_epoch < 0 ? OFFSETS_NO_LEADER_EPOCH : leader_epoch;
        w->value.metadata = kstr_is_null(metadata) ? (struct kstr){ "", 0 } : metadata;
        w->value.commit_timestamp_ms = OFFSETS_NO_TIMESTAMP;
        w->value.expire_timestamp_ms = OFFSETS_NO_TIMESTAMP;
        return w;
}

void offsets_trip_fail(struct offsets_trip *c, int16_t code)
{
        for (uint32_t i = 0; i < c->count; i++)
                *c->errors[i] = code;
}

void offsets_trip_go_home(struct offsets_trip *c, void (*at_home)(void *c))
{
        assert(c->place.topic);
        reactor_task_init(&c->task, at_home, c);
        partition_home_run(c->place.home, &c->task);
}

void offsets_trip_append(struct offsets_trip *c, struct partition *p, uint8_t *batch, size_t len,
                         bool is_txn_verified, partition_append_done_fn done)
{
        c->append.batches = batch;
        c->append.len = len;
        c->append.is_durable = true;
        c->append.is_txn_verified = is_txn_verified;
        c->append.done = done;
        c->append.ctx = c;
        partition_append(p, &c->append);
}

static void commit_answer(void *arg)
{
        struct offsets_trip *c = arg;
        coordinator_place_put(&c->place);
        c->respond(c);
}

void offsets_trip_go_back(struct offsets_trip *c)
{
        reactor_task_init(&c->task, commit_answer, c);
        partition_home_run(c->req->reactor, &c->task);
}

/* ---- OffsetCommit ---- */

struct commit_op {
        struct offsets_trip c;
        const struct offset_commit_request *rq;
        struct offset_commit_response *resp;
        struct shard *shard;            /* while the append runs */
};

static void commit_respond(struct offsets_trip *c)
{
        struct commit_op *op = container_of(c, struct commit_op, c);
        struct offset_commit_response *resp = op->resp;
        struct offsets_answer_topic *topics = (struct offsets_answer_topic *)(void *)resp->topics.items;
        if (offsets_answer_order(&c->req->arena, &topics, &resp->topics.count) < 0) {
                request_close_connection(c->req);
                return;
        }
        resp->topics.items = (struct offset_commit_response_topic *)(void *)topics;
        dispatch_respond(c->req, resp);
}

static void commit_append_done(struct partition_append *a)
{
        struct offsets_trip *c = a->ctx;
        struct commit_op *op = container_of(c, struct commit_op, c);
        struct shard *s = op->shard;
        if (a->error_code != KAFKA_NONE) {
                log_warn("committing %u offsets of group %.*s to %s-%d failed: %s", c->count,
                         (int)c->group_id.len, c->group_id.ptr, COORDINATOR_OFFSETS_TOPIC, s->index,
                         kafka_error_name(a->error_code));
                offsets_trip_fail(c, offsets_coordinator_error(a->error_code));
        } else {
                for (uint32_t i = 0; i < c->count; i++)
                        c->writes[i].value.record_offset = a->base_offset + (int64_t)i;
                for (uint32_t i = 0; i < c->count; i++)
                        if (offsets_store_apply(s->store, &c->writes[i]) < 0)
                                log_error("out of memory applying a durable commit of group %.*s; OffsetFetch "
                                          "misses it until the broker restarts",
                                          (int)c->group_id.len, c->group_id.ptr);
        }
        offsets_store_end_write(s->store, c->group_id);
        offsets_shard_note_group(s, c->group_id);
        offsets_trip_go_back(c);
}

static void commit_at_home(void *arg)
{
        struct offsets_trip *c = arg;
        struct commit_op *op = container_of(c, struct commit_op, c);
        struct request *req = c->req;
        const struct offset_commit_request *rq = op->rq;
        int16_t err = KAFKA_NONE;
        struct shard *s = offsets_shard_get(c->b, c->place.topic, c->place.partition, &err);
        if (!s)
                goto fail;
        err = validate_commit(offsets_groups_here(c->b), rq, req->api_version);
        if (err != KAFKA_NONE)
                goto fail;

        /* OffsetAndMetadata.fromRequest: v1 may carry the commit time; v2-v4
         * a retention that sets an expire time. */
        int64_t now_ms = offsets_wall_now_ms();
        int64_t expire_ms = rq->retention_time_ms != -1 && req->api_version >= 2 && req->api_version <= 4 ?
                                    now_ms + rq->retention_time_ms : OFFSETS_NO_TIMESTAMP;
        for (uint32_t i = 0; i < c->count; i++) {
                struct offsets_value *v = &c->writes[i].value;
                if (v->commit_timestamp_ms == OFFSETS_NO_TIMESTAMP)
                        v->commit_timestamp_ms = now_ms;
                v->expire_timestamp_ms = expire_ms;
        }
        uint8_t *batch;
        size_t len;
        int rc = offsets_batch_build(c->writes, c->count, now_ms, &req->arena, &batch, &len);
        if (rc < 0) {
                err = rc == -ENOMEM ? KAFKA_COORDINATOR_NOT_AVAILABLE : KAFKA_UNKNOWN_SERVER_ERROR;
                goto fail;
        }
        struct partition *p = partition_home_get(c->b, c->place.topic, c->place.partition, &err);
        if (!p) {
                err = offsets_coordinator_error(err);
                goto fail;
        }
        if (offsets_store_begin_write(s->store, rq->group_id) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        op->shard = s;
        /* done (commit_append_done) takes it from here, maybe at once. */
        offsets_trip_append(c, p, batch, len, false, commit_append_done);
        return;
fail:
        offsets_trip_fail(c, err);
        offsets_trip_go_back(c);
}

void handle_offset_commit(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct offset_commit_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct offset_commit_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct commit_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        offset_commit_response_init(resp);
        int32_t topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
        uint32_t total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                total += rq->topics.items[t].partitions.count > 0 ? (uint32_t)rq->topics.items[t].partitions.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*resp->topics.items));
        if (!resp->topics.items || offsets_trip_init(&op->c, b, req, rq->group_id, total, commit_respond) < 0)
                goto out_of_memory;
        resp->topics.count = topic_count;
        op->rq = rq;
        op->resp = resp;

        /* An empty group id is a group like any other to Kafka 4.4's
         * OffsetCommit and OffsetFetch (not to OffsetDelete). */
        int32_t metadata_max = b->config->offset_metadata_max_bytes;
        for (int32_t t = 0; t < topic_count; t++) {
                const struct offset_commit_request_topic *tq = &rq->topics.items[t];
                struct offset_commit_response_topic *tr = &resp->topics.items[t];
                offset_commit_response_topic_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        const struct offset_commit_request_partition *pq = &tq->partitions.items[i];
                        struct offset_commit_response_partition *out = &tr->partitions.items[i];
                        offset_commit_response_partition_init(out);
                        out->partition_index = pq->partition_index;
                        if (!topic || !catalog_topic_partition(topic, pq->partition_index)) {
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        if (!kstr_is_null(pq->committed_metadata) &&
                            offsets_metadata_length(pq->committed_metadata) > metadata_max) {
                                out->error_code = KAFKA_OFFSET_METADATA_TOO_LARGE;
                                continue;
                        }
                        struct offsets_write *w =
                                offsets_trip_add(&op->c, &out->error_code, tq->name, pq->partition_index,
                                                 pq->committed_offset, pq->committed_leader_epoch,
                                                 pq->committed_metadata);
                        if (req->api_version == 1 && pq->commit_timestamp != -1)
                                w->value.commit_timestamp_ms = pq->commit_timestamp;
                }
                catalog_topic_put(topic);
        }
        /* Nothing left for the coordinator: Kafka answers without asking it. */
        if (op->c.count == 0) {
                commit_respond(&op->c);
                return;
        }
        /* No __consumer_offsets yet: NOT_COORDINATOR sends the client to
         * FindCoordinator, which creates it. */
        if (!coordinator_locate_group(b, rq->group_id, &op->c.place)) {
                offsets_trip_fail(&op->c, KAFKA_NOT_COORDINATOR);
                commit_respond(&op->c);
                return;
        }
        offsets_trip_go_home(&op->c, commit_at_home);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetCommit exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- OffsetFetch ---- */

/* One group of an OffsetFetch, in the v8+ shape whatever the version. */
struct fetch_group {
        struct kstr group_id;
        bool is_all_topics;
        const struct offset_fetch_request_topics *topics;       /* when not all */
        int32_t topic_count;
        bool is_stable_required;                                /* OffsetFetch v7+ require_stable */
        struct coordinator_place place;                         /* topic held; NULL: no home */
        struct offset_fetch_response_group *out;
};

struct fetch_op {
        struct broker *b;
        struct request *req;
        struct offset_fetch_response *resp;
        struct fetch_group *groups;
        int32_t count;
        int32_t next;                   /* the next group to visit */
        struct reactor_task task;
};

/* Kafka's answer for a partition with pending transactional offsets when
 * the client asks for stable offsets only (KIP-447): it retries. */
static void fetch_unstable(struct offset_fetch_response_partitions *p)
{
        p->error_code = KAFKA_UNSTABLE_OFFSET_COMMIT;
        p->committed_offset = OFFSETS_INVALID_OFFSET;
        p->committed_leader_epoch = OFFSETS_NO_LEADER_EPOCH;
        p->metadata = (struct kstr){ "", 0 };
}

static int fetch_fill_all(struct fetch_group *fg, struct shard *s, struct arena *a)
{
        struct offsets_item *items;
        uint32_t n;
        int rc = offsets_store_list_group(s->store, fg->group_id, a, &items, &n);
        if (rc < 0)
                return rc;
        int32_t topic_count = 0;
        for (uint32_t i = 0; i < n; i++)
                topic_count += i == 0 || !kstr_eq(items[i].topic, items[i - 1].topic);
        struct offset_fetch_response_topics *topics = arena_calloc(a, (size_t)topic_count + 1, sizeof(*topics));
        struct offset_fetch_response_partitions *parts = arena_calloc(a, (size_t)n + 1, sizeof(*parts));
        if (!topics || !parts)
                return -ENOMEM;
        int32_t t = -1;
        for (uint32_t i = 0; i < n; i++) {
                if (i == 0 || !kstr_eq(items[i].topic, items[i - 1].topic)) {
                        t++;
                        offset_fetch_response_topics_init(&topics[t]);
                        topics[t].name = items[i].topic;
                        topics[t].partitions.items = &parts[i];
                }
                struct offset_fetch_response_partitions *p = &parts[i];
                offset_fetch_response_partitions_init(p);
                p->partition_index = items[i].partition;
                topics[t].partitions.count++;
                if (fg->is_stable_required &&
                    offsets_store_has_pending(s->store, fg->group_id, items[i].topic, items[i].partition)) {
                        fetch_unstable(p);
                        continue;
                }
                p->committed_offset = items[i].value.offset;
                p->committed_leader_epoch = items[i].value.leader_epoch;
                p->metadata = items[i].value.metadata;
        }
        assert(t + 1 == topic_count);
        fg->out->topics.items = topics;
        fg->out->topics.count = topic_count;
        return 0;
}

static int fetch_fill_some(struct fetch_group *fg, struct shard *s, struct arena *a)
{
        struct offset_fetch_response_topics *topics = arena_calloc(a, (size_t)fg->topic_count + 1, sizeof(*topics));
        if (!topics)
                return -ENOMEM;
        for (int32_t t = 0; t < fg->topic_count; t++) {
                const struct offset_fetch_request_topics *tq = &fg->topics[t];
                struct offset_fetch_response_topics *tr = &topics[t];
                offset_fetch_response_topics_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partition_indexes.count > 0 ? tq->partition_indexes.count : 0;
                tr->partitions.items = arena_calloc(a, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        return -ENOMEM;
                tr->partitions.count = pn;
                for (int32_t i = 0; i < pn; i++) {
                        struct offset_fetch_response_partitions *p = &tr->partitions.items[i];
                        offset_fetch_response_partitions_init(p);
                        p->partition_index = tq->partition_indexes.items[i];
                        p->committed_offset = OFFSETS_INVALID_OFFSET;
                        p->committed_leader_epoch = OFFSETS_NO_LEADER_EPOCH;
                        p->metadata = (struct kstr){ "", 0 };
                        if (fg->is_stable_required &&
                            offsets_store_has_pending(s->store, fg->group_id, tq->name, p->partition_index)) {
                                fetch_unstable(p);
                                continue;
                        }
                        const struct offsets_value *v =
                                offsets_store_get(s->store, fg->group_id, tq->name, p->partition_index);
                        if (!v)
                                continue;
                        p->committed_offset = v->offset;
                        p->committed_leader_epoch = v->leader_epoch;
                        if (v->metadata.len > 0) {
                                char *md = arena_dup(a, v->metadata.ptr, (size_t)v->metadata.len);
                                if (!md)
                                        return -ENOMEM;
                                p->metadata = (struct kstr){ md, v->metadata.len };
                        }
                }
        }
        fg->out->topics.items = topics;
        fg->out->topics.count = fg->topic_count;
        return 0;
}

static void fetch_visit(void *arg);

static void fetch_answer(void *arg)
{
        struct fetch_op *op = arg;
        struct request *req = op->req;
        struct offset_fetch_response *resp = op->resp;
        for (int32_t i = 0; i < op->count; i++)
                if (op->groups[i].place.topic)
                        coordinator_place_put(&op->groups[i].place);
        if (req->api_version >= 8) {
                dispatch_respond(req, resp);
                return;
        }
        /* v0-v7: one group, with its answer in the top-level fields. */
        assert(op->count == 1);
        const struct offset_fetch_response_group *g = &resp->groups.items[0];
        const struct fetch_group *fg = &op->groups[0];
        resp->groups.count = 0;
        resp->groups.items = NULL;
        resp->error_code = g->error_code;
        if (g->error_code != KAFKA_NONE && req->api_version < 2) {
                /* v0-v1 have no top-level error: every partition asked carries it. */
                resp->topics.items = arena_calloc(&req->arena, (size_t)fg->topic_count + 1,
                                                  sizeof(*resp->topics.items));
                if (!resp->topics.items)
                        goto out_of_memory;
                resp->topics.count = fg->topic_count;
                for (int32_t t = 0; t < fg->topic_count; t++) {
                        struct offset_fetch_response_topic *tr = &resp->topics.items[t];
                        offset_fetch_response_topic_init(tr);
                        tr->name = fg->topics[t].name;
                        const struct kint32_array *asked = &fg->topics[t].partition_indexes;
                        int32_t pn = asked->count > 0 ? asked->count : 0;
                        tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1,
                                                            sizeof(*tr->partitions.items));
                        if (!tr->partitions.items)
                                goto out_of_memory;
                        tr->partitions.count = pn;
                        for (int32_t i = 0; i < pn; i++) {
                                struct offset_fetch_response_partition *p = &tr->partitions.items[i];
                                offset_fetch_response_partition_init(p);
                                p->partition_index = asked->items[i];
                                p->committed_offset = OFFSETS_INVALID_OFFSET;
                                p->metadata = (struct kstr){ "", 0 };
                                p->error_code = g->error_code;
                        }
                }
                dispatch_respond(req, resp);
                return;
        }
        int32_t tn = g->error_code == KAFKA_NONE ? g->topics.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)tn + 1, sizeof(*resp->topics.items));
        if (!resp->topics.items)
                goto out_of_memory;
        resp->topics.count = tn;
        for (int32_t t = 0; t < tn; t++) {
                const struct offset_fetch_response_topics *from = &g->topics.items[t];
                struct offset_fetch_response_topic *tr = &resp->topics.items[t];
                offset_fetch_response_topic_init(tr);
                tr->name = from->name;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)from->partitions.count + 1,
                                                    sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = from->partitions.count;
                for (int32_t i = 0; i < from->partitions.count; i++) {
                        const struct offset_fetch_response_partitions *fp = &from->partitions.items[i];
                        struct offset_fetch_response_partition *p = &tr->partitions.items[i];
                        offset_fetch_response_partition_init(p);
                        p->partition_index = fp->partition_index;
                        p->committed_offset = fp->committed_offset;
                        p->committed_leader_epoch = fp->committed_leader_epoch;
                        p->metadata = fp->metadata;
                        p->error_code = fp->error_code;
                }
        }
        dispatch_respond(req, resp);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetFetch exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* Moves on to the next group's home, or back to the request's reactor. */
static void fetch_go_next(struct fetch_op *op)
{
        while (op->next < op->count && !op->groups[op->next].place.topic)
                op->next++;
        struct reactor *to = op->req->reactor;
        reactor_callback_fn fn = fetch_answer;
        if (op->next < op->count) {
                const struct fetch_group *fg = &op->groups[op->next];
                to = fg->place.home;
                fn = fetch_visit;
        }
        reactor_task_init(&op->task, fn, op);
        partition_home_run(to, &op->task);
}

/* At the home of groups[next] (and of any later group homed here too). */
static void fetch_visit(void *arg)
{
        struct fetch_op *op = arg;
        struct reactor *here = reactor_self();
        while (op->next < op->count) {
                struct fetch_group *fg = &op->groups[op->next];
                if (fg->place.topic && fg->place.home != here)
                        break;
                op->next++;
                if (!fg->place.topic)
                        continue;
                int16_t err = KAFKA_NONE;
                struct shard *s = offsets_shard_get(op->b, fg->place.topic, fg->place.partition, &err);
                if (!s) {
                        fg->out->error_code = err;
                        continue;
                }
                int rc = fg->is_all_topics ? fetch_fill_all(fg, s, &op->req->arena) :
                                             fetch_fill_some(fg, s, &op->req->arena);
                if (rc < 0) {
                        fg->out->topics.count = 0;
                        fg->out->error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
                }
        }
        fetch_go_next(op);
}

void handle_offset_fetch(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct offset_fetch_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct offset_fetch_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct fetch_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        offset_fetch_response_init(resp);
        op->b = b;
        op->req = req;
        op->resp = resp;
        op->count = req->api_version >= 8 ? (rq->groups.count > 0 ? rq->groups.count : 0) : 1;
        op->groups = arena_calloc(&req->arena, (size_t)op->count + 1, sizeof(*op->groups));
        resp->groups.items = arena_calloc(&req->arena, (size_t)op->count + 1, sizeof(*resp->groups.items));
        if (!op->groups || !resp->groups.items)
                goto out_of_memory;
        resp->groups.count = op->count;
        for (int32_t i = 0; i < op->count; i++) {
                struct fetch_group *fg = &op->groups[i];
                if (req->api_version >= 8) {
                        const struct offset_fetch_request_group *gq = &rq->groups.items[i];
                        fg->group_id = gq->group_id;
                        fg->is_all_topics = gq->topics.count < 0;
                        fg->topics = gq->topics.items;
                        fg->topic_count = gq->topics.count > 0 ? gq->topics.count : 0;
                } else {
                        /* v0-v7 topics have the v8 topics' layout: same fields, same types. */
                        _Static_assert(sizeof(struct offset_fetch_request_topic) ==
                                               sizeof(struct offset_fetch_request_topics),
                                       "OffsetFetch topic layouts differ");
                        fg->group_id = rq->group_id;
                        fg->is_all_topics = rq->topics.count < 0;
                        fg->topics = (const struct offset_fetch_request_topics *)(const void *)rq->topics.items;
                        fg->topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
                }
                fg->is_stable_required = req->api_version >= 7 && rq->require_stable;
                fg->out = &resp->groups.items[i];
                offset_fetch_response_group_init(fg->out);
                fg->out->group_id = fg->group_id;
                if (!coordinator_locate_group(b, fg->group_id, &fg->place)) {
                        fg->place.topic = NULL;
                        fg->out->error_code = KAFKA_NOT_COORDINATOR;
                }
        }
        fetch_go_next(op);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetFetch exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- OffsetDelete ---- */

struct delete_op {
        struct offsets_trip c;          /* the partitions that exist, with their answers */
        const struct offset_delete_request *rq;
        struct offset_delete_response *resp;
        uint32_t tombstone_count;       /* c.writes[0..tombstone_count) once at home */
        struct shard *shard;
};

static void delete_respond(struct offsets_trip *c)
{
        struct delete_op *op = container_of(c, struct delete_op, c);
        struct offset_delete_response *resp = op->resp;
        if (resp->error_code != KAFKA_NONE)
                resp->topics.count = 0;         /* Kafka answers a group error alone */
        struct offsets_answer_topic *topics = (struct offsets_answer_topic *)(void *)resp->topics.items;
        if (offsets_answer_order(&c->req->arena, &topics, &resp->topics.count) < 0) {
                request_close_connection(c->req);
                return;
        }
        resp->topics.items = (struct offset_delete_response_topic *)(void *)topics;
        dispatch_respond(c->req, resp);
}

static void delete_append_done(struct partition_append *a)
{
        struct offsets_trip *c = a->ctx;
        struct delete_op *op = container_of(c, struct delete_op, c);
        struct shard *s = op->shard;
        if (a->error_code != KAFKA_NONE) {
                op->resp->error_code = offsets_coordinator_error(a->error_code);
        } else {
                for (uint32_t i = 0; i < op->tombstone_count; i++)
                        if (offsets_store_apply(s->store, &c->writes[i]) < 0)
                                log_error("out of memory applying an offset tombstone");
        }
        offsets_store_end_write(s->store, op->rq->group_id);
        offsets_shard_note_group(s, op->rq->group_id);
        offsets_trip_go_back(c);
}

static void delete_at_home(void *arg)
{
        struct offsets_trip *c = arg;
        struct delete_op *op = container_of(c, struct delete_op, c);
        const struct offset_delete_request *rq = op->rq;
        int16_t err = KAFKA_NONE;
        struct shard *s = offsets_shard_get(c->b, c->place.topic, c->place.partition, &err);
        if (!s)
                goto fail;
        const struct group *g;
        err = offsets_shard_validate_delete(s, rq->group_id, &g);
        if (err != KAFKA_NONE)
                goto fail;
        /* Subscribed partitions refuse; the others get a tombstone when
         * they have an offset (and answer NONE either way). */
        uint32_t n = 0;
        for (uint32_t i = 0; i < c->count; i++) {
                struct offsets_write *w = &c->writes[i];
                if (g && offsets_group_is_subscribed(g, w->topic)) {
                        *c->errors[i] = KAFKA_GROUP_SUBSCRIBED_TO_TOPIC;
                        continue;
                }
                if (offsets_store_get(s->store, w->group, w->topic, w->partition))
                        c->writes[n++] = *w;
        }
        op->tombstone_count = n;
        if (n == 0) {
                offsets_trip_go_back(c);
                return;
        }
        uint8_t *batch;
        size_t len;
        if (offsets_batch_build(c->writes, n, offsets_wall_now_ms(), &c->req->arena, &batch, &len) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        struct partition *p = partition_home_get(c->b, c->place.topic, c->place.partition, &err);
        if (!p) {
                err = offsets_coordinator_error(err);
                goto fail;
        }
        if (offsets_store_begin_write(s->store, rq->group_id) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        op->shard = s;
        offsets_trip_append(c, p, batch, len, false, delete_append_done);
        return;
fail:
        op->resp->error_code = err;
        offsets_trip_go_back(c);
}

void handle_offset_delete(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct offset_delete_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct offset_delete_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct delete_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        offset_delete_response_init(resp);
        int32_t topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
        uint32_t total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                total += rq->topics.items[t].partitions.count > 0 ? (uint32_t)rq->topics.items[t].partitions.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*resp->topics.items));
        if (!resp->topics.items || offsets_trip_init(&op->c, b, req, rq->group_id, total, delete_respond) < 0)
                goto out_of_memory;
        resp->topics.count = topic_count;
        op->rq = rq;
        op->resp = resp;
        if (rq->group_id.len <= 0) {
                resp->error_code = KAFKA_INVALID_GROUP_ID;
                resp->topics.count = 0;
                dispatch_respond(req, resp);
                return;
        }
        for (int32_t t = 0; t < topic_count; t++) {
                const struct offset_delete_request_topic *tq = &rq->topics.items[t];
                struct offset_delete_response_topic *tr = &resp->topics.items[t];
                offset_delete_response_topic_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        struct offset_delete_response_partition *out = &tr->partitions.items[i];
                        offset_delete_response_partition_init(out);
                        out->partition_index = tq->partitions.items[i].partition_index;
                        if (!topic || !catalog_topic_partition(topic, out->partition_index)) {
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        struct offsets_write *w = offsets_trip_add(&op->c, &out->error_code, tq->name,
                                                                   out->partition_index, -1, -1, KSTR_NULL);
                        w->is_tombstone = true;
                }
                catalog_topic_put(topic);
        }
        if (!coordinator_locate_group(b, rq->group_id, &op->c.place)) {
                resp->error_code = KAFKA_NOT_COORDINATOR;
                resp->topics.count = 0;
                dispatch_respond(req, resp);
                return;
        }
        offsets_trip_go_home(&op->c, delete_at_home);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetDelete exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}
