/*
 * topic_config.h - every topic-level config Kafka 4.x defines, and the
 * effective typed configuration of one topic.
 *
 * What this module owns:
 *
 *  - The definition table: for each topic key its name, type, Kafka's
 *    default (as DescribeConfigs reports it), validation rule, broker-level
 *    synonyms in Kafka's precedence order, and a one-line documentation.
 *    The table is fixed at compile time and iterated in a stable
 *    (alphabetical) order, which is also the order of enum topic_config_key.
 *
 *  - Validation of (name, value) pairs as CreateTopics, AlterConfigs and
 *    IncrementalAlterConfigs need it: unknown key, wrong type, out of range,
 *    not one of the allowed strings. A refused pair yields
 *    TOPIC_CONFIG_INVALID (Kafka's INVALID_CONFIG, 40) and a message meant
 *    for the client's error_message field.
 *
 *  - struct topic_config: plain typed fields the log reads on its hot path.
 *    It is built in layers, Kafka's order: Kafka defaults <- broker-level
 *    synonyms (server.properties) <- the topic's own overrides. The first two
 *    layers are resolved once at start-up into a struct topic_config_base;
 *    a topic's config is that base with its overrides applied.
 *
 * Also here, because log/ is the lowest layer that needs them and
 * server/config.c reuses them for broker keys: struct config_def (the
 * definition record), config_def_check() (its validator) and the
 * config_parse_*() value parsers. Their rules follow Kafka's ConfigDef:
 * numbers, booleans and strings are trimmed of surrounding whitespace before
 * they are parsed; booleans are true/false in any case; lists are
 * comma-separated with whitespace around items ignored, and an empty string
 * is the empty list; enumerated strings are case-sensitive.
 *
 * Not here: message.format.version, message.timestamp.difference.max.ms and
 * message.downconversion.enable were removed in Kafka 4.0 (KIP-724,
 * KIP-937) and are unknown keys, as they are to a 4.x broker.
 *
 * Thread safety: the tables are immutable. A struct topic_config_base is
 * written once at start-up and read-only afterwards; a struct topic_config
 * belongs to whoever built it.
 */
#ifndef RUNNEL_TOPIC_CONFIG_H
#define RUNNEL_TOPIC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Kafka's INVALID_CONFIG error code, what a refused topic config answers. */
#define TOPIC_CONFIG_INVALID 40

/* Room for any message this module writes into a caller's error buffer. */
#define CONFIG_ERR_BYTES 256

/* Value types, numbered as DescribeConfigs v3+ reports them (ConfigType). */
enum config_type {
        CONFIG_TYPE_UNKNOWN = 0,
        CONFIG_TYPE_BOOLEAN = 1,
        CONFIG_TYPE_STRING = 2,
        CONFIG_TYPE_INT = 3,
        CONFIG_TYPE_SHORT = 4,
        CONFIG_TYPE_LONG = 5,
        CONFIG_TYPE_DOUBLE = 6,
        CONFIG_TYPE_LIST = 7,
        CONFIG_TYPE_CLASS = 8,
        CONFIG_TYPE_PASSWORD = 9,
};

/* Where a value came from, numbered as DescribeConfigs v1+ reports it. */
enum config_source {
        CONFIG_SOURCE_UNKNOWN = 0,
        CONFIG_SOURCE_DYNAMIC_TOPIC = 1,
        CONFIG_SOURCE_DYNAMIC_BROKER = 2,
        CONFIG_SOURCE_DYNAMIC_DEFAULT_BROKER = 3,
        CONFIG_SOURCE_STATIC_BROKER = 4,
        CONFIG_SOURCE_DEFAULT = 5,
        CONFIG_SOURCE_DYNAMIC_BROKER_LOGGER = 6,
};

/* A key that feeds another one, with the factor that converts its unit to
 * the fed key's (log.retention.hours feeds retention.ms times 3,600,000). */
struct config_synonym {
        const char *name;
        int64_t factor;
};

#define CONFIG_SYNONYM_MAX 3

struct config_def;

/* An extra rule beyond type, range and allowed strings; runs after those
 * passed and gets the value as given. shown_name is the key to name in the
 * message (a broker synonym when the value came from one). Returns 0 or
 * -EINVAL with a message. */
typedef int (*config_check_fn)(const struct config_def *def, const char *shown_name,
                               const char *value, char *err, size_t err_len);

/*
 * One config key. Ranges apply to INT, SHORT and LONG (int_min/int_max,
 * inclusive) and DOUBLE (double_min/double_max); a type's own limits apply
 * when the range is wider. valid_values, when not NULL, is a NULL-terminated
 * list: a STRING must be one of them, every item of a LIST must be.
 */
struct config_def {
        const char *name;
        enum config_type type;
        const char *default_text;       /* as DescribeConfigs shows it; NULL: no default */
        int64_t int_min;
        int64_t int_max;
        double double_min;
        double double_max;
        const char *const *valid_values;
        config_check_fn check;          /* NULL: none */
        const char *doc;                /* one sentence, runnel's words */
        struct config_synonym synonyms[CONFIG_SYNONYM_MAX]; /* keys feeding this one, first wins */
        bool is_sensitive;
        bool is_read_only;
};

/*
 * Checks a value against a definition. Returns 0, or -EINVAL with a message
 * naming the key and the value ("invalid value 'abc' for num.partitions: not
 * an integer"). A NULL value is refused (Kafka refuses null topic configs).
 */
int config_def_check(const struct config_def *def, const char *value, char *err, size_t err_len);

/* Value parsers shared by every config: whitespace around the text is
 * ignored. Return 0, -EINVAL (not of the type) or -ERANGE (does not fit). */
int config_parse_int64(const char *text, int64_t *out);
int config_parse_bool(const char *text, bool *out);
int config_parse_double(const char *text, double *out);

/*
 * Walks a comma-separated list without copying it: items come back without
 * the whitespace around them. A blank text is the empty list; "a,,b" and
 * "a," have empty items, which validation then refuses (as Kafka does).
 *
 *      struct config_list_iter it;
 *      config_list_start(&it, text);
 *      while (config_list_next(&it, &item, &item_len))
 *              ...
 */
struct config_list_iter {
        const char *next;               /* start of the next item; NULL when done */
};

void config_list_start(struct config_list_iter *it, const char *text);
bool config_list_next(struct config_list_iter *it, const char **item, size_t *item_len);

/* ---- topic keys ---- */

enum topic_config_key {
        TOPIC_CONFIG_CLEANUP_POLICY,
        TOPIC_CONFIG_COMPRESSION_GZIP_LEVEL,
        TOPIC_CONFIG_COMPRESSION_LZ4_LEVEL,
        TOPIC_CONFIG_COMPRESSION_TYPE,
        TOPIC_CONFIG_COMPRESSION_ZSTD_LEVEL,
        TOPIC_CONFIG_DELETE_RETENTION_MS,
        TOPIC_CONFIG_ERRORS_DEADLETTERQUEUE_GROUP_ENABLE,
        TOPIC_CONFIG_FILE_DELETE_DELAY_MS,
        TOPIC_CONFIG_FLUSH_MESSAGES,
        TOPIC_CONFIG_FLUSH_MS,
        TOPIC_CONFIG_FOLLOWER_REPLICATION_THROTTLED_REPLICAS,
        TOPIC_CONFIG_INDEX_INTERVAL_BYTES,
        TOPIC_CONFIG_LEADER_REPLICATION_THROTTLED_REPLICAS,
        TOPIC_CONFIG_LOCAL_RETENTION_BYTES,
        TOPIC_CONFIG_LOCAL_RETENTION_MS,
        TOPIC_CONFIG_MAX_COMPACTION_LAG_MS,
        TOPIC_CONFIG_MAX_MESSAGE_BYTES,
        TOPIC_CONFIG_MESSAGE_TIMESTAMP_AFTER_MAX_MS,
        TOPIC_CONFIG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
        TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE,
        TOPIC_CONFIG_MIN_CLEANABLE_DIRTY_RATIO,
        TOPIC_CONFIG_MIN_COMPACTION_LAG_MS,
        TOPIC_CONFIG_MIN_INSYNC_REPLICAS,
        TOPIC_CONFIG_PREALLOCATE,
        TOPIC_CONFIG_REMOTE_COPY_LAG_BYTES,
        TOPIC_CONFIG_REMOTE_COPY_LAG_MS,
        TOPIC_CONFIG_REMOTE_LOG_COPY_DISABLE,
        TOPIC_CONFIG_REMOTE_LOG_DELETE_ON_DISABLE,
        TOPIC_CONFIG_REMOTE_STORAGE_ENABLE,
        TOPIC_CONFIG_RETENTION_BYTES,
        TOPIC_CONFIG_RETENTION_MS,
        TOPIC_CONFIG_SEGMENT_BYTES,
        TOPIC_CONFIG_SEGMENT_INDEX_BYTES,
        TOPIC_CONFIG_SEGMENT_JITTER_MS,
        TOPIC_CONFIG_SEGMENT_MS,
        TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE,
        TOPIC_CONFIG_COUNT
};

/* Codec ids are the record batch attribute values (bits 0-2); PRODUCER
 * means "keep whatever the producer sent" and is no codec. */
enum topic_compression {
        TOPIC_COMPRESSION_PRODUCER = -1,
        TOPIC_COMPRESSION_UNCOMPRESSED = 0,
        TOPIC_COMPRESSION_GZIP = 1,
        TOPIC_COMPRESSION_SNAPPY = 2,
        TOPIC_COMPRESSION_LZ4 = 3,
        TOPIC_COMPRESSION_ZSTD = 4,
};

/* The record batch timestamp type attribute (bit 3). */
enum topic_timestamp_type {
        TOPIC_TIMESTAMP_CREATE_TIME = 0,
        TOPIC_TIMESTAMP_LOG_APPEND_TIME = 1,
};

/*
 * The effective configuration of one topic. Every field is the value of the
 * topic key named after it (segment_bytes <- segment.bytes). Kafka's special
 * values keep their meaning: retention_ms/_bytes -1 = unlimited,
 * local_retention_* -2 = same as retention_*, flush_* INT64_MAX = never
 * force a flush. leader/follower.replication.throttled.replicas have no
 * typed field: runnel does not replicate yet.
 */
struct topic_config {
        int32_t segment_bytes;
        int64_t segment_ms;
        int64_t segment_jitter_ms;
        int32_t segment_index_bytes;
        int32_t index_interval_bytes;
        int64_t flush_messages;
        int64_t flush_ms;
        int64_t retention_ms;
        int64_t retention_bytes;
        int64_t local_retention_ms;
        int64_t local_retention_bytes;
        int64_t remote_copy_lag_ms;
        int64_t remote_copy_lag_bytes;
        int64_t file_delete_delay_ms;
        int64_t delete_retention_ms;
        int64_t min_compaction_lag_ms;
        int64_t max_compaction_lag_ms;
        double min_cleanable_dirty_ratio;
        int32_t max_message_bytes;
        int32_t min_insync_replicas;
        int64_t message_timestamp_before_max_ms;
        int64_t message_timestamp_after_max_ms;
        enum topic_timestamp_type message_timestamp_type;
        enum topic_compression compression_type;
        int32_t compression_gzip_level;
        int32_t compression_lz4_level;
        int32_t compression_zstd_level;
        bool is_cleanup_delete;         /* cleanup.policy has delete */
        bool is_cleanup_compact;        /* cleanup.policy has compact */
        bool is_unclean_leader_election_enabled;
        bool is_preallocated;
        bool is_remote_storage_enabled;
        bool is_remote_log_copy_disabled;
        bool is_remote_log_deleted_on_disable;
        bool is_errors_deadletterqueue_group_enabled;
};

/* The definition of a key, or NULL if Kafka has no such topic config. */
const struct config_def *topic_config_find(const char *name);
/* Same for a counted name (a string slice from a request). */
const struct config_def *topic_config_find_n(const char *name, size_t name_len);

/* The definition of key; key < TOPIC_CONFIG_COUNT. Iterating 0..COUNT-1
 * visits every topic config in a stable, alphabetical order. */
const struct config_def *topic_config_def(enum topic_config_key key);

/* The key of a definition returned by this module. */
enum topic_config_key topic_config_key_of(const struct config_def *def);

/*
 * Validates one topic config as a client sent it. Returns 0, or
 * TOPIC_CONFIG_INVALID with a message in err (unknown key, null value,
 * wrong type, out of range, not an allowed string).
 */
int topic_config_validate(const char *name, const char *value, char *err, size_t err_len);

/* Kafka's defaults, no broker or topic layer. */
void topic_config_init_defaults(struct topic_config *cfg);

/*
 * Validates name=value and stores it into cfg. Returns 0 or
 * TOPIC_CONFIG_INVALID (cfg unchanged).
 */
int topic_config_apply(struct topic_config *cfg, const char *name, const char *value,
                       char *err, size_t err_len);

/* ---- the defaults <- broker layer ---- */

/* Returns the broker's value of broker_key when server.properties or an
 * override sets it, NULL when it is left at its default. */
typedef const char *(*topic_config_broker_lookup_fn)(void *ctx, const char *broker_key);

/*
 * Kafka defaults overlaid with the broker's synonyms; what a topic without
 * overrides runs with, and what DescribeConfigs reports for it.
 */
struct topic_config_base {
        struct topic_config config;
        char *text[TOPIC_CONFIG_COUNT];                 /* value in the topic key's unit */
        enum config_source source[TOPIC_CONFIG_COUNT];  /* DEFAULT or STATIC_BROKER */
        const char *broker_key[TOPIC_CONFIG_COUNT];     /* synonym used, NULL for DEFAULT */
};

/*
 * Resolves each topic key from the first synonym the broker sets (in the
 * definition's order, converted to the topic key's unit) or else Kafka's
 * default. Returns 0, -EINVAL when a broker value is invalid for the topic
 * key it feeds (the message names the broker key), or -ENOMEM. On failure
 * base holds nothing to free.
 */
int topic_config_base_init(struct topic_config_base *base, topic_config_broker_lookup_fn lookup,
                           void *ctx, char *err, size_t err_len);
void topic_config_base_free(struct topic_config_base *base);

/*
 * A topic's effective config: base, then each "key=value" override in
 * order (a later one for the same key wins). Returns 0 or
 * TOPIC_CONFIG_INVALID with the offending override named in err.
 */
int topic_config_build(struct topic_config *out, const struct topic_config_base *base,
                       const char *const *overrides, size_t override_count,
                       char *err, size_t err_len);

#endif /* RUNNEL_TOPIC_CONFIG_H */
