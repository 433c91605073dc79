/*
 * config.c - loads the broker configuration; see config.h for the contract
 * and for where runnel departs from Kafka.
 *
 * Loading is a pipeline over one table, config_broker_keys[], indexed by enum
 * broker_key:
 *
 *   properties file, then --override   -> raw text per known key (slots)
 *   every set slot                     -> checked against its definition
 *   slots or defaults                  -> typed fields of struct broker_config
 *   cross-key rules                    -> node.id/broker.id, log.dirs/log.dir,
 *                                         listeners/advertised.listeners
 *   log.* synonyms                     -> cfg->topic_defaults (log/topic_config.c)
 *
 * Invariants:
 *  - cfg->slots has one entry per broker key; a slot's text is non-NULL
 *    exactly when the file or an override set the key (source STATIC_BROKER).
 *  - Typed fields are read only after every set slot passed
 *    config_def_check(), so get_int()/get_bool() cannot fail.
 *  - Every broker-level synonym of a topic config is a key of this table
 *    (test_config.c checks it), so topic defaults always see the broker's
 *    value.
 *  - On failure nothing stays allocated: config_load() frees through the
 *    same config_free() a caller uses.
 */
#include "config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"

struct config_slot {
        char *text;                     /* as configured; NULL: not set */
        enum config_source source;
        uint32_t line;                  /* line in the file; 0: from --override */
};

/* ---- small helpers ---- */

void config_set_err(char *err, size_t err_len, const char *fmt, ...)
{
        if (!err || err_len == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
}

static const char *default_text(const struct broker_config *cfg, enum broker_key k)
{
        if (k == BK_NUM_NETWORK_THREADS)
                return cfg->network_threads_default_text;
        return config_broker_keys[k].def.default_text;
}

/* The configured text, else the default; NULL when both are absent. */
static const char *effective_text(const struct broker_config *cfg, enum broker_key k)
{
        assert(k < BK_COUNT);
        return cfg->slots[k].text ? cfg->slots[k].text : default_text(cfg, k);
}

static bool is_set(const struct broker_config *cfg, enum broker_key k)
{
        return cfg->slots[k].text != NULL;
}

static int64_t get_int(const struct broker_config *cfg, enum broker_key k)
{
        const char *text = effective_text(cfg, k);
        int64_t v = 0;
        assert(text);
        int rc = config_parse_int64(text, &v);
        assert(rc == 0);
        (void)rc;
        assert(v >= config_broker_keys[k].def.int_min && v <= config_broker_keys[k].def.int_max);
        return v;
}

static double get_double(const struct broker_config *cfg, enum broker_key k)
{
        const char *text = effective_text(cfg, k);
        double v = 0;
        assert(text);
        int rc = config_parse_double(text, &v);
        assert(rc == 0);
        (void)rc;
        return v;
}

static bool get_bool(const struct broker_config *cfg, enum broker_key k)
{
        const char *text = effective_text(cfg, k);
        bool b = false;
        assert(text);
        int rc = config_parse_bool(text, &b);
        assert(rc == 0);
        (void)rc;
        return b;
}

bool config_lookup(const struct broker_config *cfg, const char *key, const char **value,
                   enum config_source *source)
{
        assert(cfg && cfg->slots);
        assert(key && value && source);
        const struct broker_key_def *bk = config_find_broker_key(key);
        if (!bk)
                return false;
        enum broker_key k = (enum broker_key)(bk - config_broker_keys);
        *value = effective_text(cfg, k);
        *source = is_set(cfg, k) ? cfg->slots[k].source : CONFIG_SOURCE_DEFAULT;
        return true;
}

size_t config_synonyms(const struct broker_config *cfg, const char *const *names, size_t count,
                       const char *primary, struct config_synonym_value *out, size_t cap)
{
        assert(cfg && cfg->slots && names && primary && out);
        size_t n = 0;
        bool is_past_primary = false;
        /* Kafka's order: every set key first, then every default. */
        for (int pass = 0; pass < 2; pass++) {
                for (size_t i = 0; i < count; i++) {
                        const struct broker_key_def *bk = config_find_broker_key(names[i]);
                        if (!bk)
                                continue;
                        enum broker_key k = (enum broker_key)(bk - config_broker_keys);
                        const char *value = pass == 0 ? cfg->slots[k].text : default_text(cfg, k);
                        if (!value)
                                continue;
                        is_past_primary = is_past_primary || strcmp(names[i], primary) == 0;
                        if (!is_past_primary || n == cap)
                                continue;
                        out[n].name = bk->def.name;
                        out[n].value = value;
                        out[n].source = pass == 0 ? cfg->slots[k].source : CONFIG_SOURCE_DEFAULT;
                        n++;
                }
        }
        assert(n <= cap);
        return n;
}

size_t config_key_synonyms(const char *key, const char **names, size_t cap)
{
        assert(key && names && cap >= CONFIG_SYNONYM_MAX);
        /* The families are the topic configs fed by several broker keys. A key
         * of a family other than its first counts only as a unit of it
         * (log.retention.hours): log.flush.scheduler.interval.ms, which feeds
         * flush.ms at factor 1, stands alone, as in Kafka. */
        for (int t = 0; t < TOPIC_CONFIG_COUNT; t++) {
                const struct config_def *def = topic_config_def((enum topic_config_key)t);
                if (!def->synonyms[0].name || !def->synonyms[1].name)
                        continue;
                for (int i = 0; i < CONFIG_SYNONYM_MAX && def->synonyms[i].name; i++) {
                        if (strcmp(def->synonyms[i].name, key) != 0)
                                continue;
                        if (i > 0 && def->synonyms[i].factor == 1)
                                break;
                        size_t n = 0;
                        for (int j = 0; j < CONFIG_SYNONYM_MAX && def->synonyms[j].name; j++)
                                names[n++] = def->synonyms[j].name;
                        return n;
                }
        }
        names[0] = key;
        return 1;
}

/* ---- loading ---- */

struct load_ctx {
        struct broker_config *cfg;
        FILE *diag;
        const char *path;               /* for messages; NULL for overrides */
};

static int store_value(struct load_ctx *lc, const char *key, const char *value, uint32_t line)
{
        const struct broker_key_def *bk = config_find_broker_key(key);
        if (!bk) {
                if (lc->path)
                        fprintf(lc->diag,
                                "runnel: warning: unknown config key '%s' (%s:%" PRIu32 ") ignored\n",
                                key, lc->path, line);
                else
                        fprintf(lc->diag, "runnel: warning: unknown config key '%s' (--override) ignored\n",
                                key);
                lc->cfg->warning_count++;
                return 0;
        }
        struct config_slot *slot = &lc->cfg->slots[bk - config_broker_keys];
        char *copy = strdup(value);
        if (!copy)
                return -ENOMEM;
        free(slot->text);
        slot->text = copy;
        slot->source = CONFIG_SOURCE_STATIC_BROKER;
        slot->line = lc->path ? line : 0;
        return 0;
}

static int on_property(void *ctx, const char *key, const char *value, uint32_t line)
{
        return store_value(ctx, key, value, line);
}

static int load_file(struct load_ctx *lc, char *err, size_t err_len)
{
        int rc = 0;
        int fd = open(lc->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                rc = -errno;
                config_set_err(err, err_len, "cannot open config file '%s': %s", lc->path, strerror(errno));
                goto out;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
                rc = -errno;
                config_set_err(err, err_len, "cannot stat config file '%s': %s", lc->path, strerror(errno));
                goto out_close;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CONFIG_FILE_BYTES_MAX) {
                rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
                config_set_err(err, err_len, "config file '%s' is not a regular file of at most %u bytes",
                               lc->path, CONFIG_FILE_BYTES_MAX);
                goto out_close;
        }
        size_t size = (size_t)st.st_size;
        char *text = malloc(size + 1);
        if (!text) {
                rc = -ENOMEM;
                config_set_err(err, err_len, "out of memory reading '%s'", lc->path);
                goto out_close;
        }
        size_t got = 0;
        while (got < size) {
                ssize_t n = read(fd, text + got, size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = -errno;
                        config_set_err(err, err_len, "cannot read config file '%s': %s", lc->path, strerror(errno));
                        goto out_free;
                }
                if (n == 0)
                        break;          /* the file shrank meanwhile: parse what is there */
                got += (size_t)n;
        }
        char msg[CONFIG_ERR_BYTES];
        msg[0] = '\0';
        rc = config_parse_properties(text, got, on_property, lc, msg, sizeof(msg));
        if (rc == -ENOMEM)
                config_set_err(err, err_len, "out of memory reading '%s'", lc->path);
        else if (rc)
                config_set_err(err, err_len, "%s: %s", lc->path, msg);
out_free:
        free(text);
out_close:
        close(fd);
out:
        return rc;
}

static int apply_overrides(struct load_ctx *lc, const char *const *overrides, size_t count,
                           char *err, size_t err_len)
{
        for (size_t i = 0; i < count; i++) {
                const char *kv = overrides[i];
                assert(kv);
                const char *eq = strchr(kv, '=');
                const char *k = kv;
                while (eq && k < eq && isspace((unsigned char)*k))
                        k++;
                size_t key_len = eq ? (size_t)(eq - k) : 0;
                while (key_len > 0 && isspace((unsigned char)k[key_len - 1]))
                        key_len--;
                if (!eq || key_len == 0) {
                        config_set_err(err, err_len, "--override needs key=value, got '%s'", kv);
                        return -EINVAL;
                }
                char *key = strndup(k, key_len);
                if (!key)
                        return -ENOMEM;
                int rc = store_value(lc, key, eq + 1, 0);
                free(key);
                if (rc)
                        return rc;
        }
        return 0;
}

/* Where a set key came from, for messages: " (server.properties:12)". */
static void format_origin(const struct broker_config *cfg, enum broker_key k, const char *path,
                          char *buf, size_t len)
{
        if (cfg->slots[k].line == 0)
                snprintf(buf, len, " (--override)");
        else
                snprintf(buf, len, " (%s:%" PRIu32 ")", path ? path : "config", cfg->slots[k].line);
}

static int check_set_values(struct broker_config *cfg, const char *path, char *err, size_t err_len)
{
        for (size_t k = 0; k < BK_COUNT; k++) {
                if (!cfg->slots[k].text)
                        continue;
                char msg[CONFIG_ERR_BYTES];
                if (config_def_check(&config_broker_keys[k].def, cfg->slots[k].text, msg, sizeof(msg)) == 0)
                        continue;
                char origin[CONFIG_ERR_BYTES];
                format_origin(cfg, (enum broker_key)k, path, origin, sizeof(origin));
                config_set_err(err, err_len, "%s%s", msg, origin);
                return -EINVAL;
        }
        return 0;
}

/* ---- cross-key rules ---- */

static int resolve_node_id(struct broker_config *cfg, char *err, size_t err_len)
{
        int64_t broker_id = get_int(cfg, BK_BROKER_ID);
        bool has_broker_id = is_set(cfg, BK_BROKER_ID) && broker_id >= 0;
        if (is_set(cfg, BK_NODE_ID)) {
                int64_t node_id = get_int(cfg, BK_NODE_ID);
                if (has_broker_id && broker_id != node_id) {
                        config_set_err(err, err_len,
                                       "node.id (%" PRId64 ") and broker.id (%" PRId64 ") disagree; set only "
                                       "node.id",
                                       node_id, broker_id);
                        return -EINVAL;
                }
                cfg->node_id = (int32_t)node_id;
        } else if (has_broker_id) {
                cfg->node_id = (int32_t)broker_id;
        } else {
                cfg->node_id = (int32_t)get_int(cfg, BK_NODE_ID);
        }
        assert(cfg->node_id >= 0);
        return 0;
}

static int resolve_log_dirs(struct broker_config *cfg, char *err, size_t err_len)
{
        enum broker_key k = is_set(cfg, BK_LOG_DIRS) ? BK_LOG_DIRS : BK_LOG_DIR;
        const char *name = config_broker_keys[k].def.name;
        const char *text = effective_text(cfg, k);
        assert(text);

        cfg->log_dirs = calloc(CONFIG_LOG_DIRS_MAX, sizeof(char *));
        if (!cfg->log_dirs)
                return -ENOMEM;
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        config_list_start(&it, text);
        while (config_list_next(&it, &item, &item_len)) {
                assert(item_len > 0);   /* empty items were refused by config_def_check */
                if (cfg->log_dir_count == CONFIG_LOG_DIRS_MAX) {
                        config_set_err(err, err_len, "invalid value '%s' for %s: more than %d directories",
                                       text, name, CONFIG_LOG_DIRS_MAX);
                        return -EINVAL;
                }
                for (uint32_t i = 0; i < cfg->log_dir_count; i++) {
                        if (strlen(cfg->log_dirs[i]) == item_len &&
                            memcmp(cfg->log_dirs[i], item, item_len) == 0) {
                                config_set_err(err, err_len, "invalid value '%s' for %s: '%.*s' is listed twice",
                                               text, name, (int)item_len, item);
                                return -EINVAL;
                        }
                }
                cfg->log_dirs[cfg->log_dir_count] = strndup(item, item_len);
                if (!cfg->log_dirs[cfg->log_dir_count])
                        return -ENOMEM;
                cfg->log_dir_count++;
        }
        if (cfg->log_dir_count == 0) {
                config_set_err(err, err_len, "invalid value '%s' for %s: no directory given", text, name);
                return -EINVAL;
        }
        return 0;
}

/* ---- listeners ---- */

static const char *const protocol_names[] = {
        [CONFIG_PROTOCOL_PLAINTEXT] = "PLAINTEXT",
        [CONFIG_PROTOCOL_SSL] = "SSL",
        [CONFIG_PROTOCOL_SASL_PLAINTEXT] = "SASL_PLAINTEXT",
        [CONFIG_PROTOCOL_SASL_SSL] = "SASL_SSL",
};

static int parse_protocol(const char *s, size_t len, enum config_security_protocol *out)
{
        for (size_t i = 0; i < sizeof(protocol_names) / sizeof(protocol_names[0]); i++) {
                if (strlen(protocol_names[i]) == len && strncasecmp(protocol_names[i], s, len) == 0) {
                        *out = (enum config_security_protocol)i;
                        return 0;
                }
        }
        return -EINVAL;
}

static bool is_listener_name_char(char c)
{
        return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

static bool is_host_char(char c)
{
        return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_' || c == '%' || c == ':';
}

/* Copies an upper-cased listener name; 0 or -EINVAL. */
static int copy_listener_name(char *dst, const char *s, size_t len)
{
        if (len == 0 || len >= CONFIG_LISTENER_NAME_BYTES)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (!is_listener_name_char(s[i]))
                        return -EINVAL;
                dst[i] = (char)toupper((unsigned char)s[i]);
        }
        dst[len] = '\0';
        return 0;
}

/* Parses one NAME://host:port item (host may be [IPv6]). */
static int parse_listener(const char *key, const char *item, size_t len, struct config_listener *out,
                          char *err, size_t err_len)
{
        memset(out, 0, sizeof(*out));
        const char *sep = memmem(item, len, "://", 3);
        if (!sep || copy_listener_name(out->name, item, (size_t)(sep - item))) {
                config_set_err(err, err_len, "invalid value for %s: '%.*s' is not NAME://host:port",
                               key, (int)len, item);
                return -EINVAL;
        }
        const char *hp = sep + 3;
        size_t hp_len = len - (size_t)(hp - item);
        const char *host, *colon;
        size_t host_len;
        if (hp_len > 0 && hp[0] == '[') {
                const char *close = memchr(hp, ']', hp_len);
                if (!close || close + 1 >= hp + hp_len || close[1] != ':') {
                        config_set_err(err, err_len, "invalid value for %s: '%.*s' has a bad [IPv6]:port part",
                                       key, (int)len, item);
                        return -EINVAL;
                }
                host = hp + 1;
                host_len = (size_t)(close - host);
                colon = close + 1;
        } else {
                colon = memrchr(hp, ':', hp_len);
                if (!colon) {
                        config_set_err(err, err_len, "invalid value for %s: '%.*s' has no port",
                                       key, (int)len, item);
                        return -EINVAL;
                }
                host = hp;
                host_len = (size_t)(colon - hp);
                if (memchr(host, ':', host_len)) {
                        config_set_err(err, err_len,
                                       "invalid value for %s: '%.*s': put an IPv6 address in brackets, as in "
                                       "PLAINTEXT://[::1]:9092",
                                       key, (int)len, item);
                        return -EINVAL;
                }
        }
        if (host_len >= CONFIG_HOST_BYTES) {
                config_set_err(err, err_len, "invalid value for %s: host in '%.*s' is too long",
                               key, (int)len, item);
                return -EINVAL;
        }
        for (size_t i = 0; i < host_len; i++) {
                if (!is_host_char(host[i])) {
                        config_set_err(err, err_len, "invalid value for %s: bad character in host of '%.*s'",
                                       key, (int)len, item);
                        return -EINVAL;
                }
        }
        memcpy(out->host, host, host_len);
        out->host[host_len] = '\0';

        const char *port = colon + 1;
        size_t port_len = len - (size_t)(port - item);
        uint32_t v = 0;
        bool is_number = port_len > 0 && port_len <= 5;
        for (size_t i = 0; is_number && i < port_len; i++) {
                if (!isdigit((unsigned char)port[i]))
                        is_number = false;
                else
                        v = v * 10 + (uint32_t)(port[i] - '0');
        }
        if (!is_number || v > 65535) {
                config_set_err(err, err_len,
                               "invalid value for %s: port '%.*s' of '%.*s' is not between 0 and 65535",
                               key, (int)port_len, port, (int)len, item);
                return -EINVAL;
        }
        out->port = (uint16_t)v;
        return 0;
}

static int parse_listener_list(const char *key, const char *text, struct config_listener *out,
                               uint32_t *count, char *err, size_t err_len)
{
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        *count = 0;
        config_list_start(&it, text);
        while (config_list_next(&it, &item, &item_len)) {
                if (item_len == 0) {
                        config_set_err(err, err_len, "invalid value '%s' for %s: empty entry", text, key);
                        return -EINVAL;
                }
                if (*count == CONFIG_LISTENERS_MAX) {
                        config_set_err(err, err_len, "invalid value for %s: more than %d listeners", key,
                                       CONFIG_LISTENERS_MAX);
                        return -EINVAL;
                }
                struct config_listener *l = &out[*count];
                int rc = parse_listener(key, item, item_len, l, err, err_len);
                if (rc)
                        return rc;
                for (uint32_t i = 0; i < *count; i++) {
                        if (strcmp(out[i].name, l->name) == 0) {
                                config_set_err(err, err_len, "invalid value for %s: listener name %s is used twice",
                                               key, l->name);
                                return -EINVAL;
                        }
                }
                (*count)++;
        }
        if (*count == 0) {
                config_set_err(err, err_len, "invalid value '%s' for %s: no listener given", text, key);
                return -EINVAL;
        }
        return 0;
}

#define PROTOCOL_MAP_MAX 32

struct protocol_map {
        char names[PROTOCOL_MAP_MAX][CONFIG_LISTENER_NAME_BYTES];
        enum config_security_protocol protocols[PROTOCOL_MAP_MAX];
        uint32_t count;
};

static int parse_protocol_map(const char *text, struct protocol_map *map, char *err, size_t err_len)
{
        const char *key = config_broker_keys[BK_LISTENER_SECURITY_PROTOCOL_MAP].def.name;
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        map->count = 0;
        config_list_start(&it, text);
        while (config_list_next(&it, &item, &item_len)) {
                const char *colon = memchr(item, ':', item_len);
                if (!colon) {
                        config_set_err(err, err_len, "invalid value for %s: '%.*s' is not NAME:PROTOCOL",
                                       key, (int)item_len, item);
                        return -EINVAL;
                }
                if (map->count == PROTOCOL_MAP_MAX) {
                        config_set_err(err, err_len, "invalid value for %s: more than %d entries",
                                       key, PROTOCOL_MAP_MAX);
                        return -EINVAL;
                }
                size_t name_len = (size_t)(colon - item);
                while (name_len > 0 && isspace((unsigned char)item[name_len - 1]))
                        name_len--;
                const char *proto = colon + 1;
                while (proto < item + item_len && isspace((unsigned char)*proto))
                        proto++;
                size_t proto_len = (size_t)(item + item_len - proto);
                if (copy_listener_name(map->names[map->count], item, name_len) ||
                    parse_protocol(proto, proto_len, &map->protocols[map->count])) {
                        config_set_err(err, err_len,
                                       "invalid value for %s: '%.*s' is not NAME:PROTOCOL with PROTOCOL one of "
                                       "PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                                       key, (int)item_len, item);
                        return -EINVAL;
                }
                map->count++;
        }
        return 0;
}

static bool is_name_in_list(const char *list, const char *name)
{
        if (!list)
                return false;
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        config_list_start(&it, list);
        while (config_list_next(&it, &item, &item_len)) {
                if (strlen(name) == item_len && strncasecmp(name, item, item_len) == 0)
                        return true;
        }
        return false;
}

/* Drops controller listeners, gives the rest their protocol; PLAINTEXT only. */
static int assign_protocols(const char *key, struct config_listener *ls, uint32_t *count,
                            const struct protocol_map *map, const char *controller_names,
                            FILE *diag, bool is_noted, char *err, size_t err_len)
{
        uint32_t kept = 0;
        for (uint32_t i = 0; i < *count; i++) {
                struct config_listener *l = &ls[i];
                if (is_name_in_list(controller_names, l->name)) {
                        if (is_noted)
                                fprintf(diag,
                                        "runnel: note: %s: not opening %s, a KRaft controller listener\n",
                                        key, l->name);
                        continue;
                }
                uint32_t m = 0;
                while (m < map->count && strcmp(map->names[m], l->name) != 0)
                        m++;
                if (m == map->count) {
                        config_set_err(err, err_len,
                                       "invalid value for %s: listener %s has no security protocol; "
                                       "add %s:PLAINTEXT to listener.security.protocol.map",
                                       key, l->name, l->name);
                        return -EINVAL;
                }
                l->protocol = map->protocols[m];
                if (l->protocol != CONFIG_PROTOCOL_PLAINTEXT) {
                        config_set_err(err, err_len,
                                       "invalid value for %s: listener %s uses %s; runnel serves only PLAINTEXT "
                                       "listeners for now",
                                       key, l->name, protocol_names[l->protocol]);
                        return -EINVAL;
                }
                ls[kept++] = *l;
        }
        *count = kept;
        return 0;
}

static int resolve_listeners(struct broker_config *cfg, FILE *diag, char *err, size_t err_len)
{
        const char *controller_names = effective_text(cfg, BK_CONTROLLER_LISTENER_NAMES);
        struct protocol_map map;
        const char *map_text = effective_text(cfg, BK_LISTENER_SECURITY_PROTOCOL_MAP);
        int rc = parse_protocol_map(map_text, &map, err, err_len);
        if (rc)
                return rc;

        const char *key = config_broker_keys[BK_LISTENERS].def.name;
        rc = parse_listener_list(key, effective_text(cfg, BK_LISTENERS), cfg->listeners, &cfg->listener_count,
                                 err, err_len);
        if (rc)
                return rc;
        rc = assign_protocols(key, cfg->listeners, &cfg->listener_count, &map, controller_names, diag, true,
                              err, err_len);
        if (rc)
                return rc;
        if (cfg->listener_count == 0) {
                config_set_err(err, err_len, "invalid value for listeners: only controller listeners are given; "
                               "add one such as PLAINTEXT://:9092");
                return -EINVAL;
        }
        for (uint32_t i = 0; i < cfg->listener_count; i++) {
                for (uint32_t j = 0; j < i; j++) {
                        const struct config_listener *a = &cfg->listeners[j], *b = &cfg->listeners[i];
                        if (a->port != 0 && a->port == b->port && strcmp(a->host, b->host) == 0) {
                                config_set_err(err, err_len,
                                               "invalid value for listeners: %s and %s both use port %u",
                                               a->name, b->name, (unsigned)a->port);
                                return -EINVAL;
                        }
                }
        }

        key = config_broker_keys[BK_ADVERTISED_LISTENERS].def.name;
        if (is_set(cfg, BK_ADVERTISED_LISTENERS)) {
                rc = parse_listener_list(key, cfg->slots[BK_ADVERTISED_LISTENERS].text, cfg->advertised,
                                         &cfg->advertised_count, err, err_len);
                if (rc)
                        return rc;
                rc = assign_protocols(key, cfg->advertised, &cfg->advertised_count, &map, controller_names,
                                      diag, false, err, err_len);
                if (rc)
                        return rc;
        } else {
                memcpy(cfg->advertised, cfg->listeners, sizeof(cfg->listeners));
                cfg->advertised_count = cfg->listener_count;
        }

        char hostname[CONFIG_HOST_BYTES];
        hostname[0] = '\0';
        for (uint32_t i = 0; i < cfg->advertised_count; i++) {
                struct config_listener *a = &cfg->advertised[i];
                uint32_t j = 0;
                while (j < cfg->listener_count && strcmp(cfg->listeners[j].name, a->name) != 0)
                        j++;
                if (j == cfg->listener_count) {
                        config_set_err(err, err_len,
                                       "invalid value for advertised.listeners: %s is not one of the listeners",
                                       a->name);
                        return -EINVAL;
                }
                if (strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0) {
                        config_set_err(err, err_len,
                                       "invalid value for advertised.listeners: %s advertises '%s', an address "
                                       "clients "
                                       "cannot connect to; set advertised.listeners to a reachable host",
                                       a->name, a->host);
                        return -EINVAL;
                }
                if (a->host[0] != '\0')
                        continue;
                /* Kafka advertises the machine's name for an empty host. */
                if (hostname[0] == '\0' && gethostname(hostname, sizeof(hostname) - 1) != 0)
                        snprintf(hostname, sizeof(hostname), "localhost");
                hostname[sizeof(hostname) - 1] = '\0';
                snprintf(a->host, sizeof(a->host), "%s", hostname);
        }
        return 0;
}

/* ---- typed fields ---- */

/* min(v, 1): one node holds at most one replica of an internal topic. */
static int16_t clamp_to_one_node(int64_t v)
{
        assert(v >= 1);
        return (int16_t)(v < 1 ? v : 1);
}

static void resolve_typed(struct broker_config *cfg)
{
        cfg->num_network_threads = (int32_t)get_int(cfg, BK_NUM_NETWORK_THREADS);
        cfg->socket_request_max_bytes = (int32_t)get_int(cfg, BK_SOCKET_REQUEST_MAX_BYTES);
        cfg->socket_send_buffer_bytes = (int32_t)get_int(cfg, BK_SOCKET_SEND_BUFFER_BYTES);
        cfg->socket_receive_buffer_bytes = (int32_t)get_int(cfg, BK_SOCKET_RECEIVE_BUFFER_BYTES);
        cfg->socket_listen_backlog_size = (int32_t)get_int(cfg, BK_SOCKET_LISTEN_BACKLOG_SIZE);
        cfg->connections_max_idle_ms = get_int(cfg, BK_CONNECTIONS_MAX_IDLE_MS);
        cfg->max_connections = (int32_t)get_int(cfg, BK_MAX_CONNECTIONS);
        cfg->max_connections_per_ip = (int32_t)get_int(cfg, BK_MAX_CONNECTIONS_PER_IP);
        cfg->fetch_max_bytes = (int32_t)get_int(cfg, BK_FETCH_MAX_BYTES);

        cfg->num_recovery_threads_per_data_dir = (int32_t)get_int(cfg, BK_NUM_RECOVERY_THREADS_PER_DATA_DIR);
        cfg->log_retention_check_interval_ms = get_int(cfg, BK_LOG_RETENTION_CHECK_INTERVAL_MS);
        cfg->log_flush_scheduler_interval_ms = get_int(cfg, BK_LOG_FLUSH_SCHEDULER_INTERVAL_MS);
        cfg->log_flush_offset_checkpoint_interval_ms =
                (int32_t)get_int(cfg, BK_LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS);
        cfg->log_flush_start_offset_checkpoint_interval_ms =
                (int32_t)get_int(cfg, BK_LOG_FLUSH_START_OFFSET_CHECKPOINT_INTERVAL_MS);
        cfg->is_log_cleaner_enabled = get_bool(cfg, BK_LOG_CLEANER_ENABLE);
        cfg->is_durable_acks = get_bool(cfg, BK_RUNNEL_LOG_FLUSH_ACKS_ALL);
        cfg->log_cleaner_threads = (int32_t)get_int(cfg, BK_LOG_CLEANER_THREADS);
        cfg->log_cleaner_backoff_ms = get_int(cfg, BK_LOG_CLEANER_BACKOFF_MS);
        cfg->log_cleaner_dedupe_buffer_bytes = get_int(cfg, BK_LOG_CLEANER_DEDUPE_BUFFER_SIZE);
        cfg->log_cleaner_io_buffer_bytes = (int32_t)get_int(cfg, BK_LOG_CLEANER_IO_BUFFER_SIZE);
        cfg->log_cleaner_io_buffer_load_factor = get_double(cfg, BK_LOG_CLEANER_IO_BUFFER_LOAD_FACTOR);
        cfg->log_cleaner_io_bytes_per_second_max = get_double(cfg, BK_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND);

        cfg->num_partitions = (int32_t)get_int(cfg, BK_NUM_PARTITIONS);
        cfg->default_replication_factor = (int16_t)get_int(cfg, BK_DEFAULT_REPLICATION_FACTOR);
        cfg->is_auto_create_topics_enabled = get_bool(cfg, BK_AUTO_CREATE_TOPICS_ENABLE);
        cfg->is_delete_topic_enabled = get_bool(cfg, BK_DELETE_TOPIC_ENABLE);
        cfg->message_max_bytes = (int32_t)get_int(cfg, BK_MESSAGE_MAX_BYTES);

        cfg->group_initial_rebalance_delay_ms = (int32_t)get_int(cfg, BK_GROUP_INITIAL_REBALANCE_DELAY_MS);
        cfg->group_min_session_timeout_ms = (int32_t)get_int(cfg, BK_GROUP_MIN_SESSION_TIMEOUT_MS);
        cfg->group_max_session_timeout_ms = (int32_t)get_int(cfg, BK_GROUP_MAX_SESSION_TIMEOUT_MS);
        cfg->group_max_size = (int32_t)get_int(cfg, BK_GROUP_MAX_SIZE);
        cfg->group_consumer_session_timeout_ms = (int32_t)get_int(cfg, BK_GROUP_CONSUMER_SESSION_TIMEOUT_MS);
        cfg->group_consumer_min_session_timeout_ms =
                (int32_t)get_int(cfg, BK_GROUP_CONSUMER_MIN_SESSION_TIMEOUT_MS);
        cfg->group_consumer_max_session_timeout_ms =
                (int32_t)get_int(cfg, BK_GROUP_CONSUMER_MAX_SESSION_TIMEOUT_MS);
        cfg->group_consumer_heartbeat_interval_ms =
                (int32_t)get_int(cfg, BK_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS);
        cfg->group_consumer_min_heartbeat_interval_ms =
                (int32_t)get_int(cfg, BK_GROUP_CONSUMER_MIN_HEARTBEAT_INTERVAL_MS);
        cfg->group_consumer_max_heartbeat_interval_ms =
                (int32_t)get_int(cfg, BK_GROUP_CONSUMER_MAX_HEARTBEAT_INTERVAL_MS);
        cfg->group_consumer_max_size = (int32_t)get_int(cfg, BK_GROUP_CONSUMER_MAX_SIZE);
        cfg->offsets_topic_num_partitions = (int32_t)get_int(cfg, BK_OFFSETS_TOPIC_NUM_PARTITIONS);
        cfg->offsets_topic_replication_factor =
                clamp_to_one_node(get_int(cfg, BK_OFFSETS_TOPIC_REPLICATION_FACTOR));
        cfg->offsets_topic_segment_bytes = (int32_t)get_int(cfg, BK_OFFSETS_TOPIC_SEGMENT_BYTES);
        cfg->offsets_retention_minutes = (int32_t)get_int(cfg, BK_OFFSETS_RETENTION_MINUTES);
        cfg->offsets_retention_check_interval_ms = get_int(cfg, BK_OFFSETS_RETENTION_CHECK_INTERVAL_MS);
        cfg->offsets_commit_timeout_ms = (int32_t)get_int(cfg, BK_OFFSETS_COMMIT_TIMEOUT_MS);
        cfg->offset_metadata_max_bytes = (int32_t)get_int(cfg, BK_OFFSET_METADATA_MAX_BYTES);

        cfg->transaction_state_log_num_partitions =
                (int32_t)get_int(cfg, BK_TRANSACTION_STATE_LOG_NUM_PARTITIONS);
        cfg->transaction_state_log_replication_factor =
                clamp_to_one_node(get_int(cfg, BK_TRANSACTION_STATE_LOG_REPLICATION_FACTOR));
        cfg->transaction_state_log_min_isr =
                clamp_to_one_node(get_int(cfg, BK_TRANSACTION_STATE_LOG_MIN_ISR));
        cfg->transaction_state_log_segment_bytes =
                (int32_t)get_int(cfg, BK_TRANSACTION_STATE_LOG_SEGMENT_BYTES);
        cfg->transactional_id_expiration_ms = (int32_t)get_int(cfg, BK_TRANSACTIONAL_ID_EXPIRATION_MS);
        cfg->transaction_max_timeout_ms = (int32_t)get_int(cfg, BK_TRANSACTION_MAX_TIMEOUT_MS);
        cfg->transaction_abort_timed_out_transaction_cleanup_interval_ms =
                (int32_t)get_int(cfg, BK_TRANSACTION_ABORT_TIMED_OUT_CLEANUP_INTERVAL_MS);
        cfg->transaction_remove_expired_transaction_cleanup_interval_ms =
                (int32_t)get_int(cfg, BK_TRANSACTION_REMOVE_EXPIRED_CLEANUP_INTERVAL_MS);
        cfg->is_transaction_partition_verification_enabled =
                get_bool(cfg, BK_TRANSACTION_PARTITION_VERIFICATION_ENABLE);
        cfg->producer_id_expiration_ms = (int32_t)get_int(cfg, BK_PRODUCER_ID_EXPIRATION_MS);
        cfg->producer_id_expiration_check_interval_ms =
                (int32_t)get_int(cfg, BK_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS);
}

/* The topic layer sees only what the broker config sets explicitly. */
static const char *lookup_set_value(void *ctx, const char *broker_key)
{
        const struct broker_config *cfg = ctx;
        const struct broker_key_def *bk = config_find_broker_key(broker_key);
        assert(bk);     /* every topic synonym is a broker key */
        return bk ? cfg->slots[bk - config_broker_keys].text : NULL;
}

static void note_unused_keys(const struct broker_config *cfg, FILE *diag)
{
        for (size_t k = 0; k < BK_COUNT; k++) {
                if (cfg->slots[k].text && config_broker_keys[k].unused_note)
                        fprintf(diag, "runnel: note: %s is accepted and ignored: %s\n",
                                config_broker_keys[k].def.name, config_broker_keys[k].unused_note);
        }
}

static long online_cpus(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        if (n < 1)
                n = 1;
        if (n > CONFIG_NETWORK_THREADS_MAX)
                n = CONFIG_NETWORK_THREADS_MAX;
        return n;
}

void config_free(struct broker_config *cfg)
{
        assert(cfg);
        if (cfg->slots) {
                for (size_t k = 0; k < BK_COUNT; k++)
                        free(cfg->slots[k].text);
                free(cfg->slots);
        }
        if (cfg->log_dirs) {
                for (uint32_t i = 0; i < cfg->log_dir_count; i++)
                        free(cfg->log_dirs[i]);
                free(cfg->log_dirs);
        }
        free(cfg->rack);
        topic_config_base_free(&cfg->topic_defaults);
        memset(cfg, 0, sizeof(*cfg));
}

int config_load(struct broker_config *cfg, const char *path, const char *const *overrides,
                size_t override_count, FILE *diag, char *err, size_t err_len)
{
        assert(cfg);
        assert(overrides || override_count == 0);
        memset(cfg, 0, sizeof(*cfg));
        if (!diag)
                diag = stderr;
        snprintf(cfg->network_threads_default_text, sizeof(cfg->network_threads_default_text), "%ld",
                 online_cpus());

        int rc = -ENOMEM;
        cfg->slots = calloc(BK_COUNT, sizeof(*cfg->slots));
        if (!cfg->slots)
                goto out_nomem;

        struct load_ctx lc = { cfg, diag, path };
        if (path) {
                rc = load_file(&lc, err, err_len);
                if (rc)
                        goto out_free;
        }
        lc.path = NULL;
        rc = apply_overrides(&lc, overrides, override_count, err, err_len);
        if (rc == -ENOMEM)
                goto out_nomem;
        if (rc)
                goto out_free;

        rc = check_set_values(cfg, path, err, err_len);
        if (rc)
                goto out_free;
        resolve_typed(cfg);
        rc = resolve_node_id(cfg, err, err_len);
        if (rc)
                goto out_free;
        rc = resolve_log_dirs(cfg, err, err_len);
        if (rc == -ENOMEM)
                goto out_nomem;
        if (rc)
                goto out_free;
        rc = resolve_listeners(cfg, diag, err, err_len);
        if (rc)
                goto out_free;
        if (is_set(cfg, BK_BROKER_RACK)) {
                cfg->rack = strdup(cfg->slots[BK_BROKER_RACK].text);
                if (!cfg->rack)
                        goto out_nomem;
        }
        rc = topic_config_base_init(&cfg->topic_defaults, lookup_set_value, cfg, err, err_len);
        if (rc)
                goto out_free;

        note_unused_keys(cfg, diag);
        return 0;

out_nomem:
        rc = -ENOMEM;
        config_set_err(err, err_len, "out of memory loading the configuration");
out_free:
        config_free(cfg);
        return rc;
}

int config_load_args(struct broker_config *cfg, int argc, char *const argv[], FILE *diag,
                     char *err, size_t err_len)
{
        assert(cfg);
        assert(argc >= 1 && argv);
        const char *path = NULL;
        size_t count = 0;
        int rc;
        const char **overrides = calloc((size_t)argc, sizeof(*overrides));
        if (!overrides) {
                config_set_err(err, err_len, "out of memory parsing the command line");
                memset(cfg, 0, sizeof(*cfg));
                return -ENOMEM;
        }
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i];
                if (strcmp(arg, "--override") == 0) {
                        if (i + 1 == argc) {
                                config_set_err(err, err_len, "--override needs key=value");
                                rc = -EINVAL;
                                goto out_usage;
                        }
                        overrides[count++] = argv[++i];
                } else if (strncmp(arg, "--override=", 11) == 0) {
                        overrides[count++] = arg + 11;
                } else if (arg[0] == '-' && arg[1] != '\0') {
                        config_set_err(err, err_len, "unknown option '%s'; usage: runnel [server.properties] "
                                       "[--override key=value]...", arg);
                        rc = -EINVAL;
                        goto out_usage;
                } else if (path) {
                        config_set_err(err, err_len, "more than one config file ('%s', '%s'); usage: runnel "
                                       "[server.properties] [--override key=value]...", path, arg);
                        rc = -EINVAL;
                        goto out_usage;
                } else {
                        path = arg;
                }
        }
        rc = config_load(cfg, path, overrides, count, diag, err, err_len);
        free(overrides);
        return rc;

out_usage:
        memset(cfg, 0, sizeof(*cfg));
        free(overrides);
        return rc;
}
