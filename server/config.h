/*
 * config.h - the broker's configuration: server.properties plus
 * --override key=value, with Kafka's key names, defaults and meanings.
 *
 *      build/runnel [server.properties] [--override key=value]...
 *
 * What this module owns:
 *
 *  - A Java-properties parser (comments # and !, key=value, key: value and
 *    key value, backslash line continuation, escapes \t \n \r \f \uXXXX and
 *    backslash-anything-else as that character).
 *
 *  - The table of every broker key runnel knows: type, Kafka's default,
 *    validation rule and a one-line doc of our own. Values are checked
 *    against it when loading; an invalid value fails the load with a message
 *    naming the key and the value, and main exits non-zero. Unknown keys get
 *    one warning line each and are otherwise ignored, as Kafka does. Some
 *    keys are accepted and ignored with a one-line note (KRaft quorum keys,
 *    num.io.threads, ...): a Kafka server.properties loads unchanged.
 *
 *  - struct broker_config: typed fields for everything the broker uses,
 *    plus the raw text and source of every known key for DescribeConfigs on
 *    the broker resource (STATIC_BROKER_CONFIG when the file or an override
 *    set it, DEFAULT_CONFIG otherwise), plus the topic defaults resolved
 *    from the broker-level synonyms of topic configs (log/topic_config.h).
 *
 * Where runnel departs from Kafka, and why:
 *
 *  - node.id defaults to 1 (Kafka requires it in KRaft mode): runnel's
 *    embedded default is one node. broker.id is a synonym; if both are set
 *    they must agree.
 *  - process.roles, controller.quorum.voters, controller.quorum.bootstrap.servers,
 *    controller.listener.names: accepted and ignored with a note; a single
 *    runnel node has no KRaft quorum. Listeners named in
 *    controller.listener.names are not opened.
 *  - num.network.threads is the number of io_uring reactor threads, and
 *    defaults to the number of online CPUs (Kafka: 3 network threads).
 *    num.io.threads is accepted and unused: reactors run the handlers.
 *  - offsets.topic.replication.factor, transaction.state.log.replication.factor
 *    and transaction.state.log.min.isr are clamped to 1 in the typed fields
 *    (one node can hold one replica); the raw value is still reported.
 *  - Only PLAINTEXT listeners: an SSL or SASL listener is refused at load.
 *  - An empty advertised host is replaced by gethostname(), without the DNS
 *    canonicalisation Kafka does.
 *  - Every broker key is reported read-only: runnel has no dynamic broker
 *    configs yet.
 *
 * cluster.id is not a server.properties key (it lives in meta.properties).
 *
 * Thread safety: config_load() runs once in main before any thread starts;
 * afterwards a struct broker_config is immutable and shared by all threads.
 */
#ifndef RUNNEL_CONFIG_H
#define RUNNEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../log/topic_config.h"

#define CONFIG_LISTENERS_MAX 16
#define CONFIG_LISTENER_NAME_BYTES 64
#define CONFIG_HOST_BYTES 256
#define CONFIG_LOG_DIRS_MAX 64
#define CONFIG_NETWORK_THREADS_MAX 1024
#define CONFIG_FILE_BYTES_MAX (16u << 20)

enum config_security_protocol {
        CONFIG_PROTOCOL_PLAINTEXT,
        CONFIG_PROTOCOL_SSL,
        CONFIG_PROTOCOL_SASL_PLAINTEXT,
        CONFIG_PROTOCOL_SASL_SSL,
};

/* One entry of listeners or advertised.listeners. */
struct config_listener {
        char name[CONFIG_LISTENER_NAME_BYTES];  /* upper-cased: PLAINTEXT, EXTERNAL, ... */
        char host[CONFIG_HOST_BYTES];           /* without IPv6 brackets; "" binds every interface */
        uint16_t port;                          /* 0: any free port; the reactor reports the bound one */
        enum config_security_protocol protocol;
};

struct config_slot;

struct broker_config {
        /* identity */
        int32_t node_id;                        /* node.id, else broker.id, else 1 */
        char *rack;                             /* broker.rack; NULL when unset */

        /* network */
        struct config_listener listeners[CONFIG_LISTENERS_MAX];  /* to bind; controller ones left out */
        uint32_t listener_count;
        struct config_listener advertised[CONFIG_LISTENERS_MAX]; /* what Metadata returns */
        uint32_t advertised_count;
        int32_t num_network_threads;            /* reactor threads */
        int32_t socket_request_max_bytes;
        int32_t socket_send_buffer_bytes;       /* -1: the OS default */
        int32_t socket_receive_buffer_bytes;    /* -1: the OS default */
        int32_t socket_listen_backlog_size;
        int64_t connections_max_idle_ms;        /* negative: never close idle connections */
        int32_t max_connections;
        int32_t max_connections_per_ip;
        int32_t fetch_max_bytes;                /* cap on one Fetch response */

        /* storage */
        char **log_dirs;                        /* log.dirs, else log.dir */
        uint32_t log_dir_count;
        int32_t num_recovery_threads_per_data_dir;
        int64_t log_retention_check_interval_ms;
        int64_t log_flush_scheduler_interval_ms;
        int32_t log_flush_offset_checkpoint_interval_ms;
        int32_t log_flush_start_offset_checkpoint_interval_ms;
        bool is_log_cleaner_enabled;
        bool is_durable_acks;                   /* runnel.log.flush.acks.all */
        int32_t log_cleaner_threads;
        int64_t log_cleaner_backoff_ms;
        int64_t log_cleaner_dedupe_buffer_bytes;
        int32_t log_cleaner_io_buffer_bytes;
        double log_cleaner_io_buffer_load_factor;       /* how full the offset map may get */
        double log_cleaner_io_bytes_per_second_max;     /* the cleaner's read + write rate, all threads */
        /* Kafka defaults <- the broker's log.* synonyms: what a topic without
         * overrides runs with. Give it to topic_config_build(). */
        struct topic_config_base topic_defaults;

        /* topics */
        int32_t num_partitions;                 /* for auto-created topics */
        int16_t default_replication_factor;
        bool is_auto_create_topics_enabled;
        bool is_delete_topic_enabled;
        int32_t message_max_bytes;

        /* classic groups */
        int32_t group_initial_rebalance_delay_ms;
        int32_t group_min_session_timeout_ms;
        int32_t group_max_session_timeout_ms;
        int32_t group_max_size;
        /* KIP-848 consumer groups */
        int32_t group_consumer_session_timeout_ms;
        int32_t group_consumer_min_session_timeout_ms;
        int32_t group_consumer_max_session_timeout_ms;
        int32_t group_consumer_heartbeat_interval_ms;
        int32_t group_consumer_min_heartbeat_interval_ms;
        int32_t group_consumer_max_heartbeat_interval_ms;
        int32_t group_consumer_max_size;
        /* __consumer_offsets */
        int32_t offsets_topic_num_partitions;
        int16_t offsets_topic_replication_factor;       /* clamped to 1 */
        int32_t offsets_topic_segment_bytes;
        int32_t offsets_retention_minutes;
        int64_t offsets_retention_check_interval_ms;
        int32_t offsets_commit_timeout_ms;
        int32_t offset_metadata_max_bytes;

        /* transactions and idempotence */
        int32_t transaction_state_log_num_partitions;
        int16_t transaction_state_log_replication_factor;       /* clamped to 1 */
        int32_t transaction_state_log_min_isr;                  /* clamped to 1 */
        int32_t transaction_state_log_segment_bytes;
        int32_t transactional_id_expiration_ms;
        int32_t transaction_max_timeout_ms;
        int32_t transaction_abort_timed_out_transaction_cleanup_interval_ms;
        int32_t transaction_remove_expired_transaction_cleanup_interval_ms;
        bool is_transaction_partition_verification_enabled;
        int32_t producer_id_expiration_ms;
        int32_t producer_id_expiration_check_interval_ms;

        /* bookkeeping */
        uint32_t warning_count;                 /* unknown keys seen while loading */

        /* private to config.c */
        struct config_slot *slots;              /* raw value and source of each known key */
        char network_threads_default_text[12];
};

/*
 * Loads the configuration: Kafka's defaults, then the file at path (NULL:
 * none), then each "key=value" override in order. Warnings and notes go to
 * diag (NULL: stderr), one line each. Returns 0, or a negative errno with a
 * one-line message in err: -EINVAL for an invalid value (naming the key and
 * the value) or a malformed file, -ENOENT/-EACCES/-EFBIG/... when the file
 * cannot be read, -ENOMEM. On failure cfg holds nothing to free.
 */
int config_load(struct broker_config *cfg, const char *path, const char *const *overrides,
                size_t override_count, FILE *diag, char *err, size_t err_len);

/*
 * config_load() from the command line: argv[1..] is at most one properties
 * file and any number of "--override key=value" (or "--override=key=value").
 * Anything else is refused with -EINVAL and a usage message in err.
 */
int config_load_args(struct broker_config *cfg, int argc, char *const argv[], FILE *diag,
                     char *err, size_t err_len);

void config_free(struct broker_config *cfg);

/*
 * The value of a known broker key for DescribeConfigs: sets *value to the
 * text as configured (STATIC_BROKER) or to the default (DEFAULT; NULL when
 * Kafka's default is null, e.g. advertised.listeners or log.retention.ms)
 * and *source accordingly. Returns false for a key runnel does not know.
 */
bool config_lookup(const struct broker_config *cfg, const char *key, const char **value,
                   enum config_source *source);

/* One synonym of a config as DescribeConfigs lists it. */
struct config_synonym_value {
        const char *name;               /* a broker key */
        const char *value;              /* never NULL: a key without a value is no synonym */
        enum config_source source;      /* STATIC_BROKER or DEFAULT */
};

/*
 * Kafka's synonyms (ConfigHelper.configSynonyms) of a config fed by the broker
 * keys names[0..count): each of them set in server.properties or --override,
 * then each with a non-null default, in the order of names; the entries
 * before the first one named primary are left out. So retention.ms lists
 * log.retention.hours only when log.retention.ms itself has a value, and
 * then after it, as Kafka does. Fills out[] (at most cap); returns the count.
 */
size_t config_synonyms(const struct broker_config *cfg, const char *const *names, size_t count,
                       const char *primary, struct config_synonym_value *out, size_t cap);

/*
 * The broker keys whose values feed broker key `key`, in precedence order
 * (Kafka's DynamicBrokerConfig.brokerConfigSynonyms): the time-unit families
 * (log.retention.ms/.minutes/.hours, log.roll.ms/.hours, log.roll.jitter.*),
 * log.flush.interval.ms with log.flush.scheduler.interval.ms, else key alone.
 * Fills names[] (cap at least CONFIG_SYNONYM_MAX); returns the count.
 */
size_t config_key_synonyms(const char *key, const char **names, size_t cap);

/* Iteration over every known broker key, in a stable order grouped by concern. */
size_t config_count_keys(void);
const struct config_def *config_get_key(size_t index);
/* The definition of a broker key, or NULL when runnel does not know it. */
const struct config_def *config_find_key(const char *name);

/* Called for each entry of a properties text with its unescaped key and
 * value and the line it starts on; a non-zero return stops the parse and is
 * returned. */
typedef int (*config_property_fn)(void *ctx, const char *key, const char *value, uint32_t line);

/*
 * Parses Java-properties text (not necessarily NUL-terminated). Returns 0,
 * the callback's non-zero value, -EINVAL for malformed text (a bad \u
 * escape, a NUL byte) with "line N: ..." in err, or -ENOMEM.
 */
int config_parse_properties(const char *text, size_t len, config_property_fn fn, void *ctx,
                            char *err, size_t err_len);

#endif /* RUNNEL_CONFIG_H */
