/*
 * configs.c - DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and the
 * effective topic config entries they and CreateTopics report.
 *
 * A topic's value comes from, in Kafka's order of precedence: its own
 * override (DYNAMIC_TOPIC_CONFIG), the broker's synonym in server.properties
 * (STATIC_BROKER_CONFIG), or Kafka's default (DEFAULT_CONFIG).
 */
#include "configs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/logging.h"
#include "../log/topic_config.h"
#include "../protocol/gen/alter_configs.h"
#include "../protocol/gen/describe_configs.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/incremental_alter_configs.h"
#include "handlers.h"

int configs_topic_entries(const struct broker *b, const struct catalog_topic *t, struct arena *a,
                          struct config_entry **out)
{
        const struct topic_config_base *base = &b->config->topic_defaults;
        struct config_entry *e = arena_calloc(a, TOPIC_CONFIG_COUNT, sizeof(*e));
        if (!e)
                return -ENOMEM;
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                const struct config_def *def = topic_config_def((enum topic_config_key)k);
                const char *override = t ? catalog_topic_config(t, def->name) : NULL;
                e[k].def = def;
                if (override) {
                        e[k].value = override;
                        e[k].source = CONFIG_SOURCE_DYNAMIC_TOPIC;
                } else {
                        e[k].value = base->text[k];
                        e[k].source = base->source[k];
                        e[k].broker_key = base->broker_key[k];
                }
        }
        *out = e;
        return TOPIC_CONFIG_COUNT;
}

/* ---- DescribeConfigs ---- */

/* Kafka's ConfigResource.Type codes. */
enum resource_type {
        RESOURCE_TOPIC = 2,
        RESOURCE_BROKER = 4,
        RESOURCE_BROKER_LOGGER = 8,
};

/* A NUL-terminated copy; NULL for a null string. */
static char *dup_kstr(struct arena *a, struct kstr s)
{
        if (s.len < 0)
                return NULL;
        return arena_strndup(a, s.ptr ? s.ptr : "", (size_t)s.len);
}

/* Kafka's names and values are text: a NUL inside one would be cut short. */
static bool has_nul(struct kstr s)
{
        return s.len > 0 && memchr(s.ptr, '\0', (size_t)s.len) != NULL;
}

typedef struct describe_configs_response_describe_configs_resource_result describe_entry;
typedef struct describe_configs_response_describe_configs_synonym describe_synonym;

struct describe_ctx {
        struct request *req;
        const struct describe_configs_request *rq;
        const struct describe_configs_request_describe_configs_resource *res;
        describe_entry *items;
        int32_t count;
        int32_t cap;
};

static bool is_key_wanted(const struct describe_ctx *d, const char *name)
{
        const struct kstr_array *keys = &d->res->configuration_keys;
        if (keys->count <= 0)
                return true;            /* null or empty: every key, as Kafka's ConfigHelper */
        for (int32_t i = 0; i < keys->count; i++)
                if (kstr_eq_cstr(keys->items[i], name))
                        return true;
        return false;
}

static struct kstr kstr_or_null(const char *s)
{
        return s ? KSTR(s) : KSTR_NULL;
}

/* Appends one entry; synonyms are added by the caller. NULL on out of memory. */
static describe_entry *add_entry(struct describe_ctx *d, const struct config_def *def, const char *value,
                                 enum config_source source)
{
        assert(d->count < d->cap);
        describe_entry *e = &d->items[d->count++];
        describe_configs_response_describe_configs_resource_result_init(e);
        e->name = KSTR(def->name);
        e->value = def->is_sensitive ? KSTR_NULL : kstr_or_null(value);
        e->read_only = def->is_read_only;
        e->is_default = d->req->api_version == 0 && source == CONFIG_SOURCE_DEFAULT;       /* v0 only */
        e->config_source = (int8_t)source;
        e->is_sensitive = def->is_sensitive;
        e->config_type = (int8_t)def->type;
        if (d->rq->include_documentation)
                e->documentation = kstr_or_null(def->doc);
        else
                e->documentation = KSTR_NULL;
        e->synonyms.count = 0;
        return e;
}

static int add_synonym(struct describe_ctx *d, describe_entry *e, const char *name, const char *value,
                       enum config_source source, bool is_sensitive)
{
        if (!d->rq->include_synonyms || d->req->api_version < 1)
                return 0;
        if (e->synonyms.count == 0) {
                e->synonyms.items = arena_calloc(&d->req->arena, CONFIG_SYNONYM_MAX + 2, sizeof(describe_synonym));
                if (!e->synonyms.items)
                        return -ENOMEM;
        }
        assert(e->synonyms.count < CONFIG_SYNONYM_MAX + 2);
        describe_synonym *s = &e->synonyms.items[e->synonyms.count++];
        describe_configs_response_describe_configs_synonym_init(s);
        s->name = KSTR(name);
        s->value = is_sensitive ? KSTR_NULL : kstr_or_null(value);
        s->source = (int8_t)source;
        return 0;
}

/*
 * Appends the entry of one config with its synonyms (when asked for) in
 * Kafka's order: syn[0..n). The entry's source is its first synonym's, or
 * DEFAULT without one, as Kafka reports it (retention.ms reads DEFAULT_CONFIG
 * while log.retention.ms is unset, whatever log.retention.hours says).
 */
static int add_entry_with_synonyms(struct describe_ctx *d, const struct config_def *def, const char *value,
                                   const struct config_synonym_value *syn, size_t n)
{
        describe_entry *e = add_entry(d, def, value, n ? syn[0].source : CONFIG_SOURCE_DEFAULT);
        for (size_t i = 0; i < n; i++) {
                if (add_synonym(d, e, syn[i].name, syn[i].value, syn[i].source, def->is_sensitive) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/*
 * A topic key (ConfigHelper.createTopicConfigEntry): the topic's override,
 * then the synonyms of its broker keys from the first one on. A key without
 * broker keys (remote.storage.enable) has no synonyms but its override.
 */
static int add_topic_entry(struct describe_ctx *d, const struct broker *b, const struct config_entry *ce)
{
        const struct config_def *def = ce->def;
        struct config_synonym_value syn[2 * CONFIG_SYNONYM_MAX + 1];
        size_t n = 0;
        if (ce->source == CONFIG_SOURCE_DYNAMIC_TOPIC && ce->value) {
                syn[n].name = def->name;
                syn[n].value = ce->value;
                syn[n].source = CONFIG_SOURCE_DYNAMIC_TOPIC;
                n++;
        }
        const char *names[CONFIG_SYNONYM_MAX];
        size_t count = 0;
        for (int i = 0; i < CONFIG_SYNONYM_MAX && def->synonyms[i].name; i++)
                names[count++] = def->synonyms[i].name;
        if (count > 0)
                n += config_synonyms(b->config, names, count, names[0], syn + n, sizeof(syn) / sizeof(syn[0]) - n);
        return add_entry_with_synonyms(d, def, ce->value, syn, n);
}

static int describe_topic_configs(struct describe_ctx *d, const struct broker *b,
                                  struct describe_configs_response_describe_configs_result *out)
{
        struct kstr name = d->res->resource_name;
        if (!catalog_is_valid_topic_name(name)) {
                out->error_code = KAFKA_INVALID_TOPIC_EXCEPTION;
                out->error_message = KSTR("The topic name is not valid.");
                return 0;
        }
        const struct catalog_topic *t = catalog_get_topic(b->catalog, name);
        if (!t) {
                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                out->error_message = KSTR("The topic does not exist.");
                return 0;
        }
        struct config_entry *ce;
        int n = configs_topic_entries(b, t, &d->req->arena, &ce);
        /* Override values live in the topic; copy them before letting go. */
        for (int i = 0; n > 0 && i < n; i++) {
                if (ce[i].source == CONFIG_SOURCE_DYNAMIC_TOPIC && ce[i].value) {
                        ce[i].value = arena_strndup(&d->req->arena, ce[i].value, strlen(ce[i].value));
                        if (!ce[i].value)
                                n = -ENOMEM;
                }
        }
        catalog_topic_put(t);
        if (n < 0)
                return n;
        d->items = arena_calloc(&d->req->arena, (size_t)n, sizeof(*d->items));
        if (!d->items)
                return -ENOMEM;
        d->cap = n;
        for (int i = 0; i < n; i++) {
                if (!is_key_wanted(d, ce[i].def->name))
                        continue;
                if (add_topic_entry(d, b, &ce[i]) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int describe_broker_configs(struct describe_ctx *d, const struct broker *b,
                                   struct describe_configs_response_describe_configs_result *out)
{
        struct kstr name = d->res->resource_name;
        if (name.len == 0)
                return 0;       /* cluster-wide dynamic defaults: runnel has none */
        char *text = dup_kstr(&d->req->arena, name);
        int64_t id;
        if (!text)
                return -ENOMEM;
        if (config_parse_int64(text, &id) != 0 || strlen(text) != (size_t)name.len) {
                out->error_code = KAFKA_INVALID_REQUEST;
                out->error_message = KSTR(arena_printf(&d->req->arena,
                        "Broker id must be an integer, but it is: %s", text) ?: "");
                return 0;
        }
        if (id != b->node_id) {
                out->error_code = KAFKA_INVALID_REQUEST;
                out->error_message = KSTR(arena_printf(&d->req->arena,
                        "Unexpected broker id, expected %d or empty string, but received %s",
                        b->node_id, text) ?: "");
                return 0;
        }
        size_t n = config_count_keys();
        d->items = arena_calloc(&d->req->arena, n, sizeof(*d->items));
        if (!d->items)
                return -ENOMEM;
        d->cap = (int32_t)n;
        for (size_t i = 0; i < n; i++) {
                const struct config_def *def = config_get_key(i);
                const char *value;
                enum config_source source;
                if (!is_key_wanted(d, def->name) || !config_lookup(b->config, def->name, &value, &source))
                        continue;
                /* ConfigHelper.createBrokerConfigEntry: the key's family from the key on. */
                const char *names[CONFIG_SYNONYM_MAX];
                size_t count = config_key_synonyms(def->name, names, CONFIG_SYNONYM_MAX);
                struct config_synonym_value syn[2 * CONFIG_SYNONYM_MAX];
                size_t m = config_synonyms(b->config, names, count, def->name, syn, sizeof(syn) / sizeof(syn[0]));
                if (add_entry_with_synonyms(d, def, value, syn, m) < 0)
                        return -ENOMEM;
        }
        return 0;
}

void handle_describe_configs(struct broker *b, struct request *req, struct kreader *body)
{
        struct describe_configs_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct describe_configs_response resp;
        describe_configs_response_init(&resp);
        int32_t n = rq->resources.count > 0 ? rq->resources.count : 0;
        resp.results.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.results.items));
        if (!resp.results.items)
                goto out_of_memory;
        resp.results.count = n;
        for (int32_t i = 0; i < n; i++) {
                const struct describe_configs_request_describe_configs_resource *res = &rq->resources.items[i];
                struct describe_configs_response_describe_configs_result *out = &resp.results.items[i];
                describe_configs_response_describe_configs_result_init(out);
                out->resource_type = res->resource_type;
                out->resource_name = res->resource_name;
                struct describe_ctx d = { .req = req, .rq = rq, .res = res };
                int rc = 0;
                if (res->resource_type == RESOURCE_TOPIC) {
                        rc = describe_topic_configs(&d, b, out);
                } else if (res->resource_type == RESOURCE_BROKER) {
                        rc = describe_broker_configs(&d, b, out);
                } else {
                        out->error_code = KAFKA_INVALID_REQUEST;
                        out->error_message = KSTR("runnel describes topic and broker configs only.");
                }
                if (rc < 0)
                        goto out_of_memory;
                out->configs.count = d.count;
                out->configs.items = d.items;
        }
        dispatch_respond(req, &resp);
        return;
out_of_memory:
        log_warn("closing connection from %s: DescribeConfigs exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- AlterConfigs and IncrementalAlterConfigs ---- */

/* Kafka's AlterConfigOp.OpType codes. */
enum alter_op {
        ALTER_OP_SET = 0,
        ALTER_OP_DELETE = 1,
        ALTER_OP_APPEND = 2,
        ALTER_OP_SUBTRACT = 3,
};

struct alter_result {
        int16_t code;
        const char *message;
};


/* Checks the resource: a topic that exists, or a broker, which runnel cannot change at runtime. */
static bool check_alter_resource(struct broker *b, struct request *req, int8_t type, struct kstr name,
                                 struct alter_result *res)
{
        if (type == RESOURCE_BROKER) {
                res->code = KAFKA_INVALID_REQUEST;
                res->message = "runnel does not change broker configs at runtime; set them in "
                               "server.properties and restart.";
                return false;
        }
        if (type != RESOURCE_TOPIC) {
                res->code = KAFKA_INVALID_REQUEST;
                res->message = "runnel alters topic configs only.";
                return false;
        }
        if (!catalog_is_valid_topic_name(name)) {
                res->code = KAFKA_INVALID_TOPIC_EXCEPTION;
                res->message = "The topic name is not valid.";
                return false;
        }
        const struct catalog_topic *t = catalog_get_topic(b->catalog, name);
        catalog_topic_put(t);
        if (!t) {
                res->code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                res->message = "The topic does not exist.";
                return false;
        }
        (void)req;
        return true;
}

static void apply_changes(struct broker *b, struct request *req, struct kstr name, struct catalog_config *changes,
                          uint32_t count, bool is_replace_all, bool is_validate_only, struct alter_result *res)
{
        struct catalog_err err = { 0 };
        int rc = catalog_alter_configs(b->catalog, name, changes, count, is_replace_all, is_validate_only, &err);
        if (rc < 0) {
                log_error("altering configs of topic %.*s failed: %s", name.len, name.ptr, strerror(-rc));
                res->code = KAFKA_UNKNOWN_SERVER_ERROR;
                res->message = "The broker could not write the change to disk; see its log.";
                return;
        }
        res->code = err.code;
        res->message = err.message;
        if (err.code == KAFKA_NONE && !is_validate_only)
                log_info("altered %u config(s) of topic %.*s", count, name.len, name.ptr);
        (void)req;
}

static void alter_one(struct broker *b, struct request *req, bool is_validate_only,
                      const struct alter_configs_request_alter_configs_resource *r, struct alter_result *res)
{
        if (!check_alter_resource(b, req, r->resource_type, r->resource_name, res))
                return;
        int32_t n = r->configs.count > 0 ? r->configs.count : 0;
        struct catalog_config *changes = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*changes));
        char *err = arena_alloc(&req->arena, CONFIG_ERR_BYTES);
        if (!changes || !err)
                goto out_of_memory;
        for (int32_t i = 0; i < n; i++) {
                if (has_nul(r->configs.items[i].name) || has_nul(r->configs.items[i].value)) {
                        res->code = KAFKA_INVALID_REQUEST;
                        res->message = "Config names and values may not contain NUL characters.";
                        return;
                }
                changes[i].key = dup_kstr(&req->arena, r->configs.items[i].name);
                changes[i].value = dup_kstr(&req->arena, r->configs.items[i].value);
                if (!changes[i].key)
                        goto out_of_memory;
                if (!changes[i].value) {
                        res->code = KAFKA_INVALID_REQUEST;
                        res->message = arena_printf(&req->arena, "Null value not supported for : %s",
                                                    changes[i].key);
                        return;
                }
                if (topic_config_validate(changes[i].key, changes[i].value, err, CONFIG_ERR_BYTES) != 0) {
                        res->code = KAFKA_INVALID_CONFIG;
                        res->message = err;
                        return;
                }
        }
        apply_changes(b, req, r->resource_name, changes, (uint32_t)n, true, is_validate_only, res);
        return;
out_of_memory:
        res->code = KAFKA_UNKNOWN_SERVER_ERROR;
        res->message = "The request is too large for the broker's request memory limit.";
}

void handle_alter_configs(struct broker *b, struct request *req, struct kreader *body)
{
        struct alter_configs_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct alter_configs_response resp;
        alter_configs_response_init(&resp);
        int32_t n = rq->resources.count > 0 ? rq->resources.count : 0;
        resp.responses.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.responses.items));
        if (!resp.responses.items) {
                request_close_connection(req);
                return;
        }
        resp.responses.count = n;
        for (int32_t i = 0; i < n; i++) {
                struct alter_result res = { KAFKA_NONE, NULL };
                alter_one(b, req, rq->validate_only, &rq->resources.items[i], &res);
                struct alter_configs_response_alter_configs_resource_response *out = &resp.responses.items[i];
                alter_configs_response_alter_configs_resource_response_init(out);
                out->error_code = res.code;
                out->error_message = kstr_or_null(res.message);
                out->resource_type = rq->resources.items[i].resource_type;
                out->resource_name = rq->resources.items[i].resource_name;
        }
        dispatch_respond(req, &resp);
}

/* The current value of a list key of a topic: its override, else the base. */
static const char *current_value(const struct broker *b, const struct catalog_topic *t, const struct config_def *def)
{
        const char *v = catalog_topic_config(t, def->name);
        if (v)
                return v;
        return b->config->topic_defaults.text[topic_config_key_of(def)];
}

static bool list_contains(const char *list, const char *item, size_t item_len)
{
        struct config_list_iter it;
        const char *x;
        size_t xlen;
        config_list_start(&it, list ? list : "");
        while (config_list_next(&it, &x, &xlen))
                if (xlen == item_len && memcmp(x, item, xlen) == 0)
                        return true;
        return false;
}

/* APPEND adds the items not yet present; SUBTRACT removes the given ones (KIP-339). */
static char *edit_list(struct arena *a, const char *cur, const char *arg, bool is_append)
{
        size_t cap = (cur ? strlen(cur) : 0) + strlen(arg) + 2;
        char *out = arena_alloc(a, cap);
        if (!out)
                return NULL;
        size_t n = 0;
        struct config_list_iter it;
        const char *x;
        size_t xlen;
        config_list_start(&it, cur ? cur : "");
        while (config_list_next(&it, &x, &xlen)) {
                if (!is_append && list_contains(arg, x, xlen))
                        continue;
                n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)xlen, x);
        }
        if (is_append) {
                config_list_start(&it, arg);
                while (config_list_next(&it, &x, &xlen)) {
                        out[n] = '\0';
                        if (list_contains(out, x, xlen))
                                continue;
                        n += (size_t)snprintf(out + n, cap - n, "%s%.*s", n ? "," : "", (int)xlen, x);
                }
        }
        out[n] = '\0';
        return out;
}

static void incremental_alter_one(struct broker *b, struct request *req, bool is_validate_only,
                                  const struct incremental_alter_configs_request_alter_configs_resource *r,
                                  struct alter_result *res)
{
        if (!check_alter_resource(b, req, r->resource_type, r->resource_name, res))
                return;
        int32_t n = r->configs.count > 0 ? r->configs.count : 0;
        struct catalog_config *changes = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*changes));
        char *err = arena_alloc(&req->arena, CONFIG_ERR_BYTES);
        if (!changes || !err)
                goto out_of_memory;
        for (int32_t i = 0; i < n; i++) {
                for (int32_t j = 0; j < i; j++) {
                        if (kstr_eq(r->configs.items[i].name, r->configs.items[j].name)) {
                                res->code = KAFKA_INVALID_REQUEST;
                                res->message = "A config key appears more than once for this resource.";
                                return;
                        }
                }
        }
        const struct catalog_topic *t = catalog_get_topic(b->catalog, r->resource_name);
        if (!t) {
                res->code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                res->message = "The topic does not exist.";
                return;
        }
        for (int32_t i = 0; i < n; i++) {
                const struct incremental_alter_configs_request_alterable_config *c = &r->configs.items[i];
                if (has_nul(c->name) || has_nul(c->value)) {
                        res->code = KAFKA_INVALID_REQUEST;
                        res->message = "Config names and values may not contain NUL characters.";
                        goto out_put;
                }
                char *key = dup_kstr(&req->arena, c->name);
                char *value = dup_kstr(&req->arena, c->value);
                if (!key)
                        goto out_of_memory_put;
                if (c->config_operation == ALTER_OP_SET && !value) {
                        res->code = KAFKA_INVALID_REQUEST;
                        res->message = arena_printf(&req->arena, "Null value not supported for : %s", key);
                        goto out_put;
                }
                const struct config_def *def = topic_config_find(key);
                if (!def) {
                        res->code = KAFKA_INVALID_CONFIG;
                        res->message = arena_printf(&req->arena, "Unknown topic config name: %s", key);
                        goto out_put;
                }
                switch (c->config_operation) {
                case ALTER_OP_SET:
                        break;
                case ALTER_OP_DELETE:
                        value = NULL;
                        break;
                case ALTER_OP_APPEND:
                case ALTER_OP_SUBTRACT:
                        if (def->type != CONFIG_TYPE_LIST) {
                                res->code = KAFKA_INVALID_CONFIG;
                                res->message = arena_printf(&req->arena, "Config value %s is not allowed for "
                                        "config key %s, which is not a list",
                                        c->config_operation == ALTER_OP_APPEND ? "append" : "subtract", key);
                                goto out_put;
                        }
                        if (!value) {
                                res->code = KAFKA_INVALID_REQUEST;
                                res->message = "A null value cannot be appended or subtracted.";
                                goto out_put;
                        }
                        value = edit_list(&req->arena, current_value(b, t, def), value,
                                          c->config_operation == ALTER_OP_APPEND);
                        if (!value)
                                goto out_of_memory_put;
                        break;
                default:
                        res->code = KAFKA_INVALID_REQUEST;
                        res->message = arena_printf(&req->arena, "Unknown config operation %d for %s",
                                                    c->config_operation, key);
                        goto out_put;
                }
                if (c->config_operation != ALTER_OP_DELETE &&
                    topic_config_validate(key, value, err, CONFIG_ERR_BYTES) != 0) {
                        res->code = KAFKA_INVALID_CONFIG;
                        res->message = err;
                        goto out_put;
                }
                changes[i].key = key;
                changes[i].value = value;
        }
        catalog_topic_put(t);
        apply_changes(b, req, r->resource_name, changes, (uint32_t)n, false, is_validate_only, res);
        return;
out_put:
        catalog_topic_put(t);
        return;
out_of_memory_put:
        catalog_topic_put(t);
out_of_memory:
        res->code = KAFKA_UNKNOWN_SERVER_ERROR;
        res->message = "The request is too large for the broker's request memory limit.";
}

void handle_incremental_alter_configs(struct broker *b, struct request *req, struct kreader *body)
{
        struct incremental_alter_configs_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct incremental_alter_configs_response resp;
        incremental_alter_configs_response_init(&resp);
        int32_t n = rq->resources.count > 0 ? rq->resources.count : 0;
        resp.responses.items = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*resp.responses.items));
        if (!resp.responses.items) {
                request_close_connection(req);
                return;
        }
        resp.responses.count = n;
        for (int32_t i = 0; i < n; i++) {
                struct alter_result res = { KAFKA_NONE, NULL };
                incremental_alter_one(b, req, rq->validate_only, &rq->resources.items[i], &res);
                struct incremental_alter_configs_response_alter_configs_resource_response *out =
                        &resp.responses.items[i];
                incremental_alter_configs_response_alter_configs_resource_response_init(out);
                out->error_code = res.code;
                out->error_message = kstr_or_null(res.message);
                out->resource_type = rq->resources.items[i].resource_type;
                out->resource_name = rq->resources.items[i].resource_name;
        }
        dispatch_respond(req, &resp);
}
