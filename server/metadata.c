/*
 * metadata.c - Metadata and DescribeCluster: what the cluster looks like.
 *
 * runnel is one node: it is every partition's leader, its only replica and
 * its whole ISR, and it is the controller. The endpoint it reports is
 * advertised.listeners (falling back to listeners), because clients connect
 * to what Metadata says, never to the bootstrap address they were given.
 *
 * Without an authorizer every operation is allowed, so authorized-operation
 * bit fields list every operation Kafka defines for the resource type.
 */
#include <errno.h>

#include "../base/logging.h"
#include "../protocol/gen/describe_cluster.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/metadata.h"
#include "broker.h"
#include "handlers.h"
#include "topic_admin.h"

/* Kafka's AclOperation codes. */
enum acl_operation {
        ACL_READ = 3,
        ACL_WRITE = 4,
        ACL_CREATE = 5,
        ACL_DELETE = 6,
        ACL_ALTER = 7,
        ACL_DESCRIBE = 8,
        ACL_CLUSTER_ACTION = 9,
        ACL_DESCRIBE_CONFIGS = 10,
        ACL_ALTER_CONFIGS = 11,
        ACL_IDEMPOTENT_WRITE = 12,
};

#define OPS_BIT(op) (1 << (op))
static const int32_t topic_operations = OPS_BIT(ACL_READ) | OPS_BIT(ACL_WRITE) | OPS_BIT(ACL_CREATE) |
        OPS_BIT(ACL_DELETE) | OPS_BIT(ACL_ALTER) | OPS_BIT(ACL_DESCRIBE) |
        OPS_BIT(ACL_DESCRIBE_CONFIGS) | OPS_BIT(ACL_ALTER_CONFIGS);
static const int32_t cluster_operations = OPS_BIT(ACL_CREATE) | OPS_BIT(ACL_ALTER) | OPS_BIT(ACL_DESCRIBE) |
        OPS_BIT(ACL_CLUSTER_ACTION) | OPS_BIT(ACL_DESCRIBE_CONFIGS) | OPS_BIT(ACL_ALTER_CONFIGS) |
        OPS_BIT(ACL_IDEMPOTENT_WRITE);

/* Fills one topic entry for a topic that exists. */
static int describe_topic(struct broker *b, struct request *req, const struct metadata_request *rq,
                          struct kstr name, struct kuuid id, bool is_internal, int32_t partition_count,
                          struct metadata_response_topic *out)
{
        out->error_code = KAFKA_NONE;
        out->name = name;
        out->topic_id = id;
        out->is_internal = is_internal;
        if (req->api_version >= 8 && rq->include_topic_authorized_operations)
                out->topic_authorized_operations = topic_operations;
        out->partitions.items = arena_calloc(&req->arena, (size_t)partition_count,
                                             sizeof(*out->partitions.items));
        int32_t *node = arena_alloc(&req->arena, sizeof(*node));
        if ((!out->partitions.items && partition_count > 0) || !node)
                return -ENOMEM;
        *node = b->node_id;
        out->partitions.count = partition_count;
        for (int32_t p = 0; p < partition_count; p++) {
                struct metadata_response_partition *mp = &out->partitions.items[p];
                metadata_response_partition_init(mp);
                mp->partition_index = p;
                mp->leader_id = b->node_id;
                mp->leader_epoch = 0;
                /* Every partition shares the one-element node list. */
                mp->replica_nodes = (struct kint32_array){ 1, node };
                mp->isr_nodes = (struct kint32_array){ 1, node };
                mp->offline_replicas = (struct kint32_array){ 0, NULL };
        }
        return 0;
}

static int describe_held_topic(struct broker *b, struct request *req, const struct metadata_request *rq,
                               const struct catalog_topic *t, struct metadata_response_topic *out)
{
        char *name = arena_strndup(&req->arena, t->name, t->name_len);
        if (!name)
                return -ENOMEM;
        return describe_topic(b, req, rq, (struct kstr){ name, (int32_t)t->name_len }, t->id, t->is_internal,
                              t->partition_count, out);
}

static bool may_auto_create(const struct broker *b, const struct request *req, const struct metadata_request *rq)
{
        if (!b->config->is_auto_create_topics_enabled)
                return false;
        /* v0-3 have no AllowAutoTopicCreation field: Kafka always allowed it. */
        return req->api_version < 4 || rq->allow_auto_topic_creation;
}

static int describe_requested(struct broker *b, struct request *req, const struct metadata_request *rq,
                              const struct metadata_request_topic *want, struct metadata_response_topic *out)
{
        const struct catalog_topic *t;
        bool is_by_id = want->name.len < 0 || (want->name.len == 0 && !kuuid_is_zero(want->topic_id));
        if (is_by_id && req->api_version < 12) {
                /* Topic ids in Metadata requests arrived in v12 (KIP-516). */
                out->error_code = KAFKA_INVALID_REQUEST;
                out->name = want->name.len < 0 ? KSTR("") : want->name;
                return 0;
        }
        if (is_by_id) {
                /* By id (v10+). */
                t = catalog_get_topic_by_id(b->catalog, want->topic_id);
                if (!t) {
                        out->error_code = KAFKA_UNKNOWN_TOPIC_ID;
                        out->name = KSTR_NULL;
                        out->topic_id = want->topic_id;
                        return 0;
                }
        } else {
                out->name = want->name;
                if (!catalog_is_valid_topic_name(want->name)) {
                        out->error_code = KAFKA_INVALID_TOPIC_EXCEPTION;
                        return 0;
                }
                t = catalog_get_topic(b->catalog, want->name);
                if (!t && may_auto_create(b, req, rq) && !catalog_is_internal_topic_name(want->name)) {
                        int err = topic_admin_auto_create(b, want->name);
                        if (err != KAFKA_NONE) {
                                out->error_code = (int16_t)err;
                                return 0;
                        }
                        t = catalog_get_topic(b->catalog, want->name);
                }
                if (!t) {
                        out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                        return 0;
                }
        }
        int rc = describe_held_topic(b, req, rq, t, out);
        catalog_topic_put(t);
        return rc;
}

static int describe_all(struct broker *b, struct request *req, const struct metadata_request *rq,
                        struct metadata_response *resp)
{
        struct catalog_snapshot snap;
        if (catalog_snapshot(b->catalog, &req->arena, &snap) < 0)
                return -ENOMEM;
        resp->topics.items = arena_calloc(&req->arena, snap.topic_count, sizeof(*resp->topics.items));
        if (!resp->topics.items && snap.topic_count > 0)
                return -ENOMEM;
        resp->topics.count = (int32_t)snap.topic_count;
        for (uint32_t i = 0; i < snap.topic_count; i++) {
                struct catalog_snapshot_topic *st = &snap.topics[i];
                metadata_response_topic_init(&resp->topics.items[i]);
                if (describe_topic(b, req, rq, st->name, st->id, st->is_internal, st->partition_count,
                                   &resp->topics.items[i]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

void handle_metadata(struct broker *b, struct request *req, struct kreader *body)
{
        struct metadata_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct metadata_response resp;
        metadata_response_init(&resp);

        struct metadata_response_broker *self = arena_alloc(&req->arena, sizeof(*self));
        if (!self)
                goto out_of_memory;
        metadata_response_broker_init(self);
        self->node_id = b->node_id;
        self->host = KSTR(b->advertised_host);
        self->port = b->advertised_port;
        self->rack = b->rack ? KSTR(b->rack) : KSTR_NULL;
        resp.brokers.count = 1;
        resp.brokers.items = self;
        resp.cluster_id = KSTR(b->cluster_id);
        resp.controller_id = b->node_id;
        if (req->api_version >= 8 && req->api_version <= 10 && rq->include_cluster_authorized_operations)
                resp.cluster_authorized_operations = cluster_operations;

        /* A null list asks for every topic; so does an empty one in v0. */
        bool want_all = rq->topics.count < 0 || (req->api_version == 0 && rq->topics.count == 0);
        if (want_all) {
                if (describe_all(b, req, rq, &resp) < 0)
                        goto out_of_memory;
        } else if (rq->topics.count > 0) {
                resp.topics.items = arena_calloc(&req->arena, (size_t)rq->topics.count, sizeof(*resp.topics.items));
                if (!resp.topics.items)
                        goto out_of_memory;
                resp.topics.count = rq->topics.count;
                for (int32_t i = 0; i < rq->topics.count; i++) {
                        metadata_response_topic_init(&resp.topics.items[i]);
                        if (describe_requested(b, req, rq, &rq->topics.items[i], &resp.topics.items[i]) < 0)
                                goto out_of_memory;
                }
        }
        dispatch_respond(req, &resp);
        return;

out_of_memory:
        log_warn("closing connection from %s: Metadata response exceeds the request memory limit",
                 request_peer(req));
        request_close_connection(req);
}

void handle_describe_cluster(struct broker *b, struct request *req, struct kreader *body)
{
        struct describe_cluster_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct describe_cluster_response resp;
        describe_cluster_response_init(&resp);
        resp.endpoint_type = rq->endpoint_type;
        /* KIP-919: a broker listener answers for brokers (1) only. */
        if (req->api_version >= 1 && rq->endpoint_type != 1) {
                resp.error_code = KAFKA_UNSUPPORTED_ENDPOINT_TYPE;
                resp.error_message = KSTR("runnel serves broker endpoints only; there are no separate controller endpoints");
                dispatch_respond(req, &resp);
                return;
        }
        struct describe_cluster_response_describe_cluster_broker *self = arena_alloc(&req->arena, sizeof(*self));
        if (!self) {
                request_close_connection(req);
                return;
        }
        describe_cluster_response_describe_cluster_broker_init(self);
        self->broker_id = b->node_id;
        self->host = KSTR(b->advertised_host);
        self->port = b->advertised_port;
        self->rack = b->rack ? KSTR(b->rack) : KSTR_NULL;
        resp.brokers.count = 1;
        resp.brokers.items = self;
        resp.cluster_id = KSTR(b->cluster_id);
        resp.controller_id = b->node_id;
        if (rq->include_cluster_authorized_operations)
                resp.cluster_authorized_operations = cluster_operations;
        dispatch_respond(req, &resp);
}
