/*
 * topic_admin.c - CreateTopics, DeleteTopics, CreatePartitions, and topic
 * auto-creation for other handlers.
 *
 * Validation follows Kafka's controller: per-topic errors with a message,
 * never a failed request. On one node a replication factor above 1 cannot be
 * met and is refused with INVALID_REPLICATION_FACTOR, as Kafka refuses a
 * factor above its number of brokers; replica assignments may name only
 * this node.
 *
 * The catalog does the disk work synchronously on the calling reactor.
 * Admin requests are rare and each is a few fsyncs; the data path never
 * waits behind them because it does not take the catalog's write lock.
 */
#include "topic_admin.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../base/logging.h"
#include "../log/topic_config.h"
#include "../protocol/gen/create_partitions.h"
#include "../protocol/gen/create_topics.h"
#include "../protocol/gen/delete_topics.h"
#include "../protocol/gen/errors.h"
#include "configs.h"
#include "handlers.h"

#define BROKER_COUNT 1

int topic_admin_auto_create(struct broker *b, struct kstr name)
{
        if (!b->config->is_auto_create_topics_enabled)
                return KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        struct catalog_topic_spec spec = {
                .name = name,
                .partition_count = b->config->num_partitions,
        };
        struct catalog_err err = { 0 };
        int rc = catalog_create_topic(b->catalog, &spec, NULL, &err);
        if (rc < 0) {
                log_error("auto-creating topic %.*s failed: %s", name.len, name.ptr, strerror(-rc));
                return KAFKA_UNKNOWN_SERVER_ERROR;
        }
        if (err.code == KAFKA_TOPIC_ALREADY_EXISTS)
                return KAFKA_NONE;
        if (err.code == KAFKA_NONE)
                log_info("auto-created topic %.*s with %d partitions", name.len, name.ptr, spec.partition_count);
        return err.code;
}

static bool is_repeated_name(struct kstr name, const struct create_topics_request *rq)
{
        int seen = 0;
        for (int32_t i = 0; i < rq->topics.count; i++)
                seen += kstr_eq(rq->topics.items[i].name, name);
        return seen > 1;
}

/* Checks explicit replica assignments: partitions 0..n-1, each on this node only. */
static int check_assignments(const struct broker *b, const struct create_topics_request_creatable_topic *t,
                             struct request *req, const char **msg)
{
        int32_t n = t->assignments.count;
        uint8_t *seen = arena_calloc(&req->arena, (size_t)n, 1);
        if (!seen)
                return KAFKA_UNKNOWN_SERVER_ERROR;
        for (int32_t i = 0; i < n; i++) {
                const struct create_topics_request_creatable_replica_assignment *as = &t->assignments.items[i];
                /* Any order, but each of partitions 0..n-1 exactly once. */
                if (as->partition_index < 0 || as->partition_index >= n || seen[as->partition_index]) {
                        *msg = "Replica assignments must name each partition 0 to n-1 exactly once.";
                        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
                }
                seen[as->partition_index] = 1;
                if (as->broker_ids.count != 1 || as->broker_ids.items[0] != b->node_id) {
                        *msg = arena_printf(&req->arena,
                                            "Replica assignment of partition %d names brokers other than "
                                            "the only broker, %d.", i, b->node_id);
                        return KAFKA_INVALID_REPLICA_ASSIGNMENT;
                }
        }
        return KAFKA_NONE;
}

/* Turns the request's configs into NUL-terminated pairs, validating each. */
static int collect_configs(struct request *req, const struct create_topics_request_creatable_topic *t,
                           struct catalog_config **out, const char **msg)
{
        struct catalog_config *cfg = arena_calloc(&req->arena, (size_t)t->configs.count + 1, sizeof(*cfg));
        if (!cfg)
                return -ENOMEM;
        for (int32_t i = 0; i < t->configs.count; i++) {
                const struct create_topics_request_creatable_topic_config *c = &t->configs.items[i];
                char *key = arena_strndup(&req->arena, c->name.ptr ? c->name.ptr : "", c->name.len > 0 ? (size_t)c->name.len : 0);
                char *value = c->value.len < 0 ? NULL :
                        arena_strndup(&req->arena, c->value.ptr ? c->value.ptr : "", (size_t)c->value.len);
                char *err = arena_alloc(&req->arena, CONFIG_ERR_BYTES);
                if (!key || (!value && c->value.len >= 0) || !err)
                        return -ENOMEM;
                if (topic_config_validate(key, value, err, CONFIG_ERR_BYTES) != 0) {
                        *msg = err;
                        return KAFKA_INVALID_CONFIG;
                }
                cfg[i].key = key;
                cfg[i].value = value;
        }
        *out = cfg;
        return KAFKA_NONE;
}

static int fill_created_configs(struct broker *b, struct request *req, struct kstr name,
                                struct create_topics_response_creatable_topic_result *res,
                                const struct catalog_config *pending, int32_t pending_count)
{
        const struct catalog_topic *t = catalog_get_topic(b->catalog, name);
        struct config_entry *entries;
        int n = configs_topic_entries(b, t, &req->arena, &entries);
        /* Override values live in the topic: copy them before letting go. */
        for (int i = 0; n > 0 && i < n; i++) {
                if (entries[i].source == CONFIG_SOURCE_DYNAMIC_TOPIC && entries[i].value) {
                        entries[i].value = arena_strndup(&req->arena, entries[i].value, strlen(entries[i].value));
                        if (!entries[i].value)
                                n = -ENOMEM;
                }
        }
        catalog_topic_put(t);
        if (n < 0)
                return n;
        res->configs.items = arena_calloc(&req->arena, (size_t)n, sizeof(*res->configs.items));
        if (!res->configs.items)
                return -ENOMEM;
        res->configs.count = n;
        for (int i = 0; i < n; i++) {
                struct create_topics_response_creatable_topic_configs *c = &res->configs.items[i];
                create_topics_response_creatable_topic_configs_init(c);
                const char *value = entries[i].value;
                int8_t source = (int8_t)entries[i].source;
                /* validate_only: nothing was stored, report what would be. */
                for (int32_t j = 0; !t && j < pending_count; j++) {
                        if (strcmp(pending[j].key, entries[i].def->name) == 0) {
                                value = pending[j].value;
                                source = CONFIG_SOURCE_DYNAMIC_TOPIC;
                        }
                }
                c->name = KSTR(entries[i].def->name);
                c->value = value ? KSTR(value) : KSTR_NULL;
                c->read_only = entries[i].def->is_read_only;
                c->config_source = source;
                c->is_sensitive = entries[i].def->is_sensitive;
                if (c->is_sensitive)
                        c->value = KSTR_NULL;
        }
        return 0;
}

static int create_one(struct broker *b, struct request *req, const struct create_topics_request *rq,
                      const struct create_topics_request_creatable_topic *t,
                      struct create_topics_response_creatable_topic_result *res)
{
        const char *msg = NULL;
        int code = KAFKA_NONE;
        int32_t partitions = t->num_partitions;
        int16_t replication = t->replication_factor;
        struct catalog_config *configs = NULL;

        res->name = t->name;
        /* Kafka's order: duplicates, name, existence, then the rest, so that
         * `kafka-topics --if-not-exists` sees TOPIC_ALREADY_EXISTS first. */
        if (is_repeated_name(t->name, rq)) {
                code = KAFKA_INVALID_REQUEST;
                msg = "Duplicate topic name.";
                goto out;
        }
        if (!catalog_is_valid_topic_name(t->name) || kstr_eq_cstr(t->name, "__cluster_metadata")) {
                code = KAFKA_INVALID_TOPIC_EXCEPTION;
                msg = "The topic name is not valid: 1 to 249 characters of [a-zA-Z0-9._-], not '.' or '..'.";
                goto out;
        }
        const struct catalog_topic *existing = catalog_get_topic(b->catalog, t->name);
        catalog_topic_put(existing);
        if (existing) {
                code = KAFKA_TOPIC_ALREADY_EXISTS;
                msg = arena_printf(&req->arena, "Topic '%.*s' already exists.", t->name.len, t->name.ptr);
                goto out;
        }
        if (t->assignments.count > 0) {
                if (partitions != -1 || replication != -1) {
                        code = KAFKA_INVALID_REQUEST;
                        msg = "Both numPartitions or replicationFactor and replicasAssignments were set. "
                              "Both cannot be used at the same time.";
                        goto out;
                }
                code = check_assignments(b, t, req, &msg);
                if (code != KAFKA_NONE)
                        goto out;
                partitions = t->assignments.count;
                replication = 1;
        }
        if (partitions == -1)
                partitions = b->config->num_partitions;
        if (replication == -1)
                replication = b->config->default_replication_factor;
        if (partitions <= 0) {
                code = KAFKA_INVALID_PARTITIONS;
                msg = "Number of partitions was set to an invalid non-positive value.";
                goto out;
        }
        if (replication <= 0) {
                code = KAFKA_INVALID_REPLICATION_FACTOR;
                msg = "Replication factor must be larger than 0, or -1 to use the default value.";
                goto out;
        }
        if (replication > BROKER_COUNT) {
                code = KAFKA_INVALID_REPLICATION_FACTOR;
                msg = arena_printf(&req->arena, "Unable to replicate the partition %d time(s): this cluster "
                                   "has %d broker.", replication, BROKER_COUNT);
                goto out;
        }
        code = collect_configs(req, t, &configs, &msg);
        if (code < 0)
                return code;
        if (code != KAFKA_NONE)
                goto out;

        struct catalog_topic_spec spec = {
                .name = t->name,
                .partition_count = partitions,
                .configs = configs,
                .config_count = (uint32_t)t->configs.count,
                .is_validate_only = req->api_version >= 1 && rq->validate_only,
        };
        struct catalog_err err = { 0 };
        int rc = catalog_create_topic(b->catalog, &spec, &res->topic_id, &err);
        if (rc < 0) {
                log_error("creating topic %.*s failed: %s", t->name.len, t->name.ptr, strerror(-rc));
                code = KAFKA_UNKNOWN_SERVER_ERROR;
                msg = "The broker could not write the topic to disk; see its log.";
                goto out;
        }
        code = err.code;
        msg = err.message;
        if (code == KAFKA_NONE) {
                if (!spec.is_validate_only)
                        log_info("created topic %.*s with %d partitions", t->name.len, t->name.ptr, partitions);
                res->num_partitions = partitions;
                res->replication_factor = replication;
                if (req->api_version >= 5 &&
                    fill_created_configs(b, req, t->name, res, configs, t->configs.count) < 0)
                        return -ENOMEM;
        }
out:
        res->error_code = (int16_t)code;
        res->error_message = KSTR_NULL;         /* Kafka sends null on success */
        if (code != KAFKA_NONE) {
                res->error_message = msg ? KSTR(msg) : KSTR_NULL;
                /* v5+: a failed topic reports -1 and no configs. */
                res->num_partitions = -1;
                res->replication_factor = -1;
                res->configs.count = -1;
                res->topic_config_error_code = 0;
        }
        return 0;
}

void handle_create_topics(struct broker *b, struct request *req, struct kreader *body)
{
        struct create_topics_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct create_topics_response resp;
        create_topics_response_init(&resp);
        int32_t n = rq->topics.count > 0 ? rq->topics.count : 0;
        resp.topics.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.topics.items));
        if (!resp.topics.items)
                goto out_of_memory;
        resp.topics.count = n;
        for (int32_t i = 0; i < n; i++) {
                create_topics_response_creatable_topic_result_init(&resp.topics.items[i]);
                if (create_one(b, req, rq, &rq->topics.items[i], &resp.topics.items[i]) < 0)
                        goto out_of_memory;
        }
        dispatch_respond(req, &resp);
        return;
out_of_memory:
        log_warn("closing connection from %s: CreateTopics exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

static void delete_one(struct broker *b, struct request *req, struct kstr name, struct kuuid id,
                       struct delete_topics_response_deletable_topic_result *res)
{
        struct catalog_err err = { 0 };
        int rc;
        res->name = name;
        res->topic_id = id;
        if (!b->config->is_delete_topic_enabled) {
                /* TOPIC_DELETION_DISABLED is known to clients from v3 on. */
                res->error_code = req->api_version >= 3 ? KAFKA_TOPIC_DELETION_DISABLED : KAFKA_INVALID_REQUEST;
                res->error_message = KSTR("Topic deletion is disabled (delete.topic.enable=false).");
                return;
        }
        bool by_id = !kuuid_is_zero(id);
        if (by_id && name.len >= 0) {
                res->error_code = KAFKA_INVALID_REQUEST;
                res->error_message = KSTR("You may not specify both topic name and topic id.");
                return;
        }
        if (!by_id && name.len < 0) {
                res->error_code = KAFKA_INVALID_REQUEST;
                res->error_message = KSTR("Neither topic name nor id were specified.");
                return;
        }
        const struct catalog_topic *t = by_id ? catalog_get_topic_by_id(b->catalog, id)
                                              : catalog_get_topic(b->catalog, name);
        if (t) {
                if (by_id) {
                        char *copy = arena_strndup(&req->arena, t->name, t->name_len);
                        if (copy)
                                res->name = (struct kstr){ copy, (int32_t)t->name_len };
                } else {
                        res->topic_id = t->id;
                }
                catalog_topic_put(t);
        }
        rc = by_id ? catalog_delete_topic_by_id(b->catalog, id, &err) : catalog_delete_topic(b->catalog, name, &err);
        if (rc < 0) {
                log_error("deleting topic %.*s failed: %s", name.len > 0 ? name.len : 0, name.ptr, strerror(-rc));
                res->error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                res->error_message = KSTR("The broker could not delete the topic from disk; see its log.");
                return;
        }
        res->error_code = err.code;
        res->error_message = err.message ? KSTR(err.message) : KSTR_NULL;
        if (err.code == KAFKA_NONE)
                log_info("deleted topic %.*s", res->name.len > 0 ? res->name.len : 0, res->name.ptr);
}

void handle_delete_topics(struct broker *b, struct request *req, struct kreader *body)
{
        struct delete_topics_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct delete_topics_response resp;
        delete_topics_response_init(&resp);
        bool by_state = req->api_version >= 6;
        int32_t n = by_state ? rq->topics.count : rq->topic_names.count;
        if (n < 0)
                n = 0;
        resp.responses.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.responses.items));
        if (!resp.responses.items) {
                request_close_connection(req);
                return;
        }
        resp.responses.count = n;
        for (int32_t i = 0; i < n; i++) {
                struct delete_topics_response_deletable_topic_result *res = &resp.responses.items[i];
                delete_topics_response_deletable_topic_result_init(res);
                struct kuuid zero = { { 0 } };
                struct kstr name = by_state ? rq->topics.items[i].name : rq->topic_names.items[i];
                struct kuuid id = by_state ? rq->topics.items[i].topic_id : zero;
                bool is_repeated = false;
                for (int32_t j = 0; j < i && !is_repeated; j++) {
                        struct kstr other = by_state ? rq->topics.items[j].name : rq->topic_names.items[j];
                        struct kuuid other_id = by_state ? rq->topics.items[j].topic_id : zero;
                        is_repeated = kuuid_is_zero(id) ? (name.len >= 0 && kstr_eq(name, other))
                                                        : kuuid_eq(id, other_id);
                }
                if (is_repeated) {
                        res->name = name;
                        res->topic_id = id;
                        res->error_code = KAFKA_INVALID_REQUEST;
                        res->error_message = KSTR(kuuid_is_zero(id) ? "Duplicate topic name." : "Duplicate topic id.");
                        continue;
                }
                delete_one(b, req, name, id, res);
        }
        dispatch_respond(req, &resp);
}

static int grow_one(struct broker *b, struct request *req, const struct create_partitions_request *rq,
                    const struct create_partitions_request_create_partitions_topic *t,
                    struct create_partitions_response_create_partitions_topic_result *res)
{
        res->name = t->name;
        int seen = 0;
        for (int32_t i = 0; i < rq->topics.count; i++)
                seen += kstr_eq(rq->topics.items[i].name, t->name);
        if (seen > 1) {
                res->error_code = KAFKA_INVALID_REQUEST;
                res->error_message = KSTR("The topic is named more than once in this request.");
                return 0;
        }
        const struct catalog_topic *cur = catalog_get_topic(b->catalog, t->name);
        int32_t now = cur ? cur->partition_count : 0;
        catalog_topic_put(cur);
        if (!cur) {
                res->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                res->error_message = KSTR("The topic does not exist.");
                return 0;
        }
        if (t->count_ <= now) {
                res->error_code = KAFKA_INVALID_PARTITIONS;
                res->error_message = KSTR(t->count_ == now ?
                        arena_printf(&req->arena, "Topic already has %d partition(s).", now) ?: "" :
                        arena_printf(&req->arena, "The topic %.*s currently has %d partition(s); %d would not "
                                     "be an increase.", t->name.len, t->name.ptr, now, t->count_) ?: "");
                return 0;
        }
        if (t->assignments.count >= 0) {
                if ((int64_t)t->assignments.count != (int64_t)t->count_ - now) {
                        res->error_code = KAFKA_INVALID_REPLICA_ASSIGNMENT;
                        res->error_message = KSTR(arena_printf(&req->arena,
                                "Increasing the number of partitions by %d but %d assignments provided.",
                                t->count_ - now, t->assignments.count) ?: "");
                        return 0;
                }
                for (int32_t i = 0; i < t->assignments.count; i++) {
                        const struct kint32_array *ids = &t->assignments.items[i].broker_ids;
                        if (ids->count != 1 || ids->items[0] != b->node_id) {
                                res->error_code = KAFKA_INVALID_REPLICA_ASSIGNMENT;
                                res->error_message = KSTR("Replica assignments may name only this broker.");
                                return 0;
                        }
                }
        }
        struct catalog_err err = { 0 };
        int rc = catalog_add_partitions(b->catalog, t->name, t->count_, rq->validate_only, &err);
        if (rc < 0) {
                log_error("adding partitions to %.*s failed: %s", t->name.len, t->name.ptr, strerror(-rc));
                res->error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                res->error_message = KSTR("The broker could not write the partitions to disk; see its log.");
                return 0;
        }
        res->error_code = err.code;
        res->error_message = err.message ? KSTR(err.message) : KSTR_NULL;
        if (err.code == KAFKA_NONE && !rq->validate_only)
                log_info("topic %.*s now has %d partitions", t->name.len, t->name.ptr, t->count_);
        return 0;
}

void handle_create_partitions(struct broker *b, struct request *req, struct kreader *body)
{
        struct create_partitions_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct create_partitions_response resp;
        create_partitions_response_init(&resp);
        int32_t n = rq->topics.count > 0 ? rq->topics.count : 0;
        resp.results.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.results.items));
        if (!resp.results.items) {
                request_close_connection(req);
                return;
        }
        resp.results.count = n;
        for (int32_t i = 0; i < n; i++) {
                create_partitions_response_create_partitions_topic_result_init(&resp.results.items[i]);
                grow_one(b, req, rq, &rq->topics.items[i], &resp.results.items[i]);
        }
        dispatch_respond(req, &resp);
}
