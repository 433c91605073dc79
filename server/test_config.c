/*
 * test_config.c - server.properties parsing, --override, key validation,
 * synonyms and precedence, listeners, and the topic defaults derived from
 * the broker's log.* keys.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

/* ---- helpers ---- */

struct entries {
        char keys[32][128];
        char values[32][256];
        uint32_t lines[32];
        int count;
};

static int collect(void *ctx, const char *key, const char *value, uint32_t line)
{
        struct entries *e = ctx;
        cr_assert_lt(e->count, 32);
        snprintf(e->keys[e->count], sizeof(e->keys[0]), "%s", key);
        snprintf(e->values[e->count], sizeof(e->values[0]), "%s", value);
        e->lines[e->count] = line;
        e->count++;
        return 0;
}

static int parse(const char *text, struct entries *e, char *err)
{
        memset(e, 0, sizeof(*e));
        return config_parse_properties(text, strlen(text), collect, e, err, CONFIG_ERR_BYTES);
}

/* Writes text to a fresh temporary file; the caller unlinks path. */
static void write_temp(char *path, size_t len, const char *text)
{
        snprintf(path, len, "/tmp/runnel-test-config-XXXXXX");
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        size_t n = strlen(text);
        cr_assert_eq(write(fd, text, n), (ssize_t)n);
        close(fd);
}

/* Loads text as a config file plus overrides; diagnostics go to *diag_out. */
static int load_text(struct broker_config *cfg, const char *text, const char *const *overrides,
                     size_t override_count, char *err, char **diag_out)
{
        char path[64];
        char *diag_buf = NULL;
        size_t diag_len = 0;
        FILE *diag = open_memstream(&diag_buf, &diag_len);
        cr_assert_not_null(diag);
        const char *file = NULL;
        if (text) {
                write_temp(path, sizeof(path), text);
                file = path;
        }
        int rc = config_load(cfg, file, overrides, override_count, diag, err, CONFIG_ERR_BYTES);
        fclose(diag);
        if (text)
                unlink(path);
        if (diag_out)
                *diag_out = diag_buf;
        else
                free(diag_buf);
        return rc;
}

/* A config file and nothing else. */
static int load(struct broker_config *cfg, const char *text, char *err)
{
        return load_text(cfg, text, NULL, 0, err, NULL);
}

static const char *lookup(const struct broker_config *cfg, const char *key,
                          enum config_source *source)
{
        const char *value = NULL;
        cr_assert(config_lookup(cfg, key, &value, source), "%s unknown", key);
        return value;
}

static int count_lines(const char *s, const char *needle)
{
        int n = 0;
        for (const char *p = s; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

/* ---- properties syntax ---- */

Test(properties, separators_and_whitespace)
{
        struct entries e;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(parse("a=1\nb: 2\nc 3\n  d  =  4  \ne\tf\ng:\nh=\ni\n", &e, err), 0);
        cr_assert_eq(e.count, 8);
        cr_assert_str_eq(e.keys[0], "a");
        cr_assert_str_eq(e.values[0], "1");
        cr_assert_str_eq(e.keys[1], "b");
        cr_assert_str_eq(e.values[1], "2");
        cr_assert_str_eq(e.keys[2], "c");
        cr_assert_str_eq(e.values[2], "3");
        cr_assert_str_eq(e.keys[3], "d");
        cr_assert_str_eq(e.values[3], "4  ", "trailing whitespace of a value is kept, as in Java");
        cr_assert_str_eq(e.keys[4], "e");
        cr_assert_str_eq(e.values[4], "f");
        cr_assert_str_eq(e.values[5], "");
        cr_assert_str_eq(e.values[6], "");
        cr_assert_str_eq(e.keys[7], "i");
        cr_assert_str_eq(e.values[7], "");
        /* "a=b=c": only the first separator splits. */
        cr_assert_eq(parse("url=http://x:1/?a=b\n", &e, err), 0);
        cr_assert_str_eq(e.values[0], "http://x:1/?a=b");
}

Test(properties, comments_and_blank_lines)
{
        struct entries e;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(parse("# comment\n! also\n   # indented\n\n  \t \nk=v # not a comment\n", &e, err), 0);
        cr_assert_eq(e.count, 1);
        cr_assert_str_eq(e.values[0], "v # not a comment");
        cr_assert_eq(e.lines[0], 6);
}

Test(properties, line_continuation)
{
        struct entries e;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(parse("listeners=PLAINTEXT://:9092,\\\n    PLAINTEXT2://:9093\nnext=1\n", &e, err), 0);
        cr_assert_eq(e.count, 2);
        cr_assert_str_eq(e.values[0], "PLAINTEXT://:9092,PLAINTEXT2://:9093");
        cr_assert_eq(e.lines[0], 1);
        cr_assert_eq(e.lines[1], 3);

        /* An even number of backslashes is an escaped backslash, not a continuation. */
        cr_assert_eq(parse("path=C:\\\\\nnext=1\n", &e, err), 0);
        cr_assert_eq(e.count, 2);
        cr_assert_str_eq(e.values[0], "C:\\");

        /* A continued line starting with # is data; a comment ending in \ does not continue. */
        cr_assert_eq(parse("k=a\\\n  #b\n# c \\\nz=1\n", &e, err), 0);
        cr_assert_eq(e.count, 2);
        cr_assert_str_eq(e.values[0], "a#b");
        cr_assert_str_eq(e.keys[1], "z");

        /* Continuation at the end of the file ends the entry. */
        cr_assert_eq(parse("k=abc\\", &e, err), 0);
        cr_assert_eq(e.count, 1);
        cr_assert_str_eq(e.values[0], "abc");

        /* CRLF line ends. */
        cr_assert_eq(parse("a=1\r\nb=x\\\r\n  y\r\n", &e, err), 0);
        cr_assert_eq(e.count, 2);
        cr_assert_str_eq(e.values[0], "1");
        cr_assert_str_eq(e.values[1], "xy");
}

Test(properties, escapes)
{
        struct entries e;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(parse("a\\=b\\:c\\ d=x\\\\y\\n\\t\\=\\:\\q\n", &e, err), 0);
        cr_assert_eq(e.count, 1);
        cr_assert_str_eq(e.keys[0], "a=b:c d");
        cr_assert_str_eq(e.values[0], "x\\y\n\t=:q");

        cr_assert_eq(parse("u=caf\\u00e9 \\u20AC \\uD83D\\uDE00\n", &e, err), 0);
        cr_assert_str_eq(e.values[0], "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");

        cr_assert_eq(parse("ok=1\nbad=\\u12G4\n", &e, err), -EINVAL);
        cr_assert_str_eq(err, "line 2: malformed \\uXXXX escape");
        cr_assert_eq(parse("bad=\\u12\n", &e, err), -EINVAL);
        cr_assert_eq(parse("bad=\\uD83D alone\n", &e, err), -EINVAL);
        cr_assert_eq(parse("bad=\\uDE00\n", &e, err), -EINVAL);
        cr_assert_eq(parse("bad=\\u0000\n", &e, err), -EINVAL);
}

Test(properties, nul_byte_refused)
{
        struct entries e;
        char err[CONFIG_ERR_BYTES];
        memset(&e, 0, sizeof(e));
        const char text[] = "a=1\nb=\0x\n";
        cr_assert_eq(config_parse_properties(text, sizeof(text) - 1, collect, &e, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "line 2: NUL byte");
}

/* ---- defaults ---- */

Test(config, kafka_defaults_without_a_file)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, NULL, err), 0, "%s", err);
        cr_assert_eq(cfg.node_id, 1);
        cr_assert_eq(cfg.listener_count, 1);
        cr_assert_str_eq(cfg.listeners[0].name, "PLAINTEXT");
        cr_assert_str_eq(cfg.listeners[0].host, "");
        cr_assert_eq(cfg.listeners[0].port, 9092);
        cr_assert_eq(cfg.listeners[0].protocol, CONFIG_PROTOCOL_PLAINTEXT);
        char hostname[256] = "";
        gethostname(hostname, sizeof(hostname) - 1);
        cr_assert_eq(cfg.advertised_count, 1);
        cr_assert_str_eq(cfg.advertised[0].host, hostname, "an empty host advertises the machine's name");
        cr_assert_eq(cfg.advertised[0].port, 9092);
        cr_assert_eq(cfg.log_dir_count, 1);
        cr_assert_str_eq(cfg.log_dirs[0], "/tmp/kafka-logs");
        cr_assert_eq(cfg.num_partitions, 1);
        cr_assert_eq(cfg.default_replication_factor, 1);
        cr_assert(cfg.is_auto_create_topics_enabled);
        cr_assert(cfg.is_delete_topic_enabled);
        cr_assert_eq(cfg.message_max_bytes, 1048588);
        cr_assert_eq(cfg.socket_request_max_bytes, 104857600);
        cr_assert_eq(cfg.connections_max_idle_ms, 600000);
        cr_assert_eq(cfg.num_network_threads, sysconf(_SC_NPROCESSORS_ONLN));
        cr_assert_eq(cfg.offsets_topic_num_partitions, 50);
        cr_assert_eq(cfg.offsets_topic_replication_factor, 1, "clamped from Kafka's 3");
        cr_assert_eq(cfg.offsets_retention_minutes, 10080);
        cr_assert_eq(cfg.transaction_state_log_num_partitions, 50);
        cr_assert_eq(cfg.transaction_state_log_replication_factor, 1);
        cr_assert_eq(cfg.transaction_state_log_min_isr, 1);
        cr_assert_eq(cfg.transactional_id_expiration_ms, 604800000);
        cr_assert_eq(cfg.group_initial_rebalance_delay_ms, 3000);
        cr_assert_eq(cfg.group_min_session_timeout_ms, 6000);
        cr_assert_eq(cfg.group_max_session_timeout_ms, 1800000);
        cr_assert_eq(cfg.log_retention_check_interval_ms, 300000);
        cr_assert_eq(cfg.log_flush_scheduler_interval_ms, INT64_MAX);
        cr_assert_eq(cfg.log_flush_offset_checkpoint_interval_ms, 60000);
        cr_assert_null(cfg.rack);
        cr_assert_eq(cfg.topic_defaults.config.retention_ms, 604800000);
        cr_assert_eq(cfg.topic_defaults.config.segment_bytes, 1073741824);
        cr_assert_eq(cfg.warning_count, 0);

        enum config_source src;
        cr_assert_str_eq(lookup(&cfg, "listeners", &src), "PLAINTEXT://:9092");
        cr_assert_eq(src, CONFIG_SOURCE_DEFAULT);
        cr_assert_null(lookup(&cfg, "advertised.listeners", &src), "Kafka's default is null");
        cr_assert_eq(src, CONFIG_SOURCE_DEFAULT);
        cr_assert_null(lookup(&cfg, "log.retention.ms", &src));
        cr_assert_str_eq(lookup(&cfg, "log.retention.hours", &src), "168");
        char cpus[16];
        snprintf(cpus, sizeof(cpus), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
        cr_assert_str_eq(lookup(&cfg, "num.network.threads", &src), cpus);
        const char *v;
        cr_assert_not(config_lookup(&cfg, "zookeeper.connect", &v, &src));
        config_free(&cfg);
}

Test(config, key_table_is_consistent)
{
        char err[CONFIG_ERR_BYTES];
        struct broker_config cfg;
        cr_assert_eq(load(&cfg, NULL, err), 0);
        for (size_t i = 0; i < config_count_keys(); i++) {
                const struct config_def *def = config_get_key(i);
                cr_assert_not_null(def->name);
                cr_assert_not_null(def->doc, "%s has no doc", def->name);
                cr_assert(def->is_read_only, "%s: no dynamic broker configs yet", def->name);
                cr_assert_eq(config_find_key(def->name), def, "%s listed twice?", def->name);
                enum config_source src;
                const char *value = lookup(&cfg, def->name, &src);
                if (value)
                        cr_assert_eq(config_def_check(def, value, err, sizeof(err)), 0, "%s", err);
        }
        /* Every broker-level synonym of a topic config is a broker key of the same family. */
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                const struct config_def *t = topic_config_def((enum topic_config_key)k);
                for (int s = 0; s < CONFIG_SYNONYM_MAX && t->synonyms[s].name; s++)
                        cr_assert_not_null(config_find_key(t->synonyms[s].name),
                                           "%s (for %s) is not a broker key", t->synonyms[s].name, t->name);
        }
        cr_assert_null(config_find_key("cluster.id"), "cluster.id lives in meta.properties");
        config_free(&cfg);
}

/* ---- file, overrides, precedence ---- */

Test(config, overrides_win_over_the_file)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        const char *ov[] = { "num.partitions=7", " log.retention.hours = 2", "num.partitions=9" };
        const char *file = "num.partitions=3\nlog.retention.hours=1\nbroker.rack=r1\n";
        cr_assert_eq(load_text(&cfg, file, ov, 3, err, NULL), 0, "%s", err);
        cr_assert_eq(cfg.num_partitions, 9, "the last override wins");
        cr_assert_eq(cfg.topic_defaults.config.retention_ms, 2 * 3600000LL);
        cr_assert_str_eq(cfg.rack, "r1");
        enum config_source src;
        cr_assert_str_eq(lookup(&cfg, "num.partitions", &src), "9");
        cr_assert_eq(src, CONFIG_SOURCE_STATIC_BROKER);
        cr_assert_str_eq(lookup(&cfg, "log.retention.hours", &src), " 2");
        config_free(&cfg);

        const char *bad[] = { "novalue" };
        cr_assert_eq(load_text(&cfg, NULL, bad, 1, err, NULL), -EINVAL);
        cr_assert_not_null(strstr(err, "key=value"), "%s", err);
        const char *empty_key[] = { "=1" };
        cr_assert_eq(load_text(&cfg, NULL, empty_key, 1, err, NULL), -EINVAL);
}

Test(config, duplicate_keys_in_the_file_last_wins)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, "num.partitions=2\nnum.partitions=4\n", err), 0);
        cr_assert_eq(cfg.num_partitions, 4);
        config_free(&cfg);
}

Test(config, retention_ms_over_minutes_over_hours)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load_text(&cfg, "log.retention.hours=1\nlog.retention.minutes=2\nlog.retention.ms=3\n",
                               NULL, 0, err, NULL), 0, "%s", err);
        cr_assert_eq(cfg.topic_defaults.config.retention_ms, 3);
        cr_assert_str_eq(cfg.topic_defaults.broker_key[TOPIC_CONFIG_RETENTION_MS], "log.retention.ms");
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "log.retention.hours=1\nlog.retention.minutes=2\n", err), 0);
        cr_assert_eq(cfg.topic_defaults.config.retention_ms, 120000);
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "log.retention.hours=-1\n", err), 0);
        cr_assert_eq(cfg.topic_defaults.config.retention_ms, -1);
        config_free(&cfg);

        cr_assert_eq(load(&cfg,
                          "log.roll.hours=2\nlog.segment.bytes=2097152\nlog.cleanup.policy=compact\n"
                          "compression.type=zstd\nlog.message.timestamp.type=LogAppendTime\n"
                          "message.max.bytes=5000000\nmin.insync.replicas=2\n",
                          err), 0, "%s", err);
        const struct topic_config *t = &cfg.topic_defaults.config;
        cr_assert_eq(t->segment_ms, 7200000);
        cr_assert_eq(t->segment_bytes, 2097152);
        cr_assert(t->is_cleanup_compact && !t->is_cleanup_delete);
        cr_assert_eq(t->compression_type, TOPIC_COMPRESSION_ZSTD);
        cr_assert_eq(t->message_timestamp_type, TOPIC_TIMESTAMP_LOG_APPEND_TIME);
        cr_assert_eq(t->max_message_bytes, 5000000);
        cr_assert_eq(cfg.message_max_bytes, 5000000);
        cr_assert_eq(t->min_insync_replicas, 2);

        /* A topic's own override wins over the broker layer. */
        const char *ov[] = { "segment.ms=1000" };
        struct topic_config topic;
        cr_assert_eq(topic_config_build(&topic, &cfg.topic_defaults, ov, 1, err, sizeof(err)), 0);
        cr_assert_eq(topic.segment_ms, 1000);
        cr_assert_eq(topic.segment_bytes, 2097152);
        config_free(&cfg);
}

Test(config, log_dirs_over_log_dir)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, "log.dir=/var/a\nlog.dirs=/d1, /d2 ,/d3\n", err), 0, "%s", err);
        cr_assert_eq(cfg.log_dir_count, 3);
        cr_assert_str_eq(cfg.log_dirs[0], "/d1");
        cr_assert_str_eq(cfg.log_dirs[1], "/d2");
        cr_assert_str_eq(cfg.log_dirs[2], "/d3");
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "log.dir=/var/a\n", err), 0);
        cr_assert_eq(cfg.log_dir_count, 1);
        cr_assert_str_eq(cfg.log_dirs[0], "/var/a");
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "log.dirs=/d1,/d1\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "listed twice"), "%s", err);
        cr_assert_eq(load(&cfg, "log.dirs=/d1,,/d2\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "log.dirs"), "%s", err);
        cr_assert_eq(load(&cfg, "log.dirs=\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "no directory"), "%s", err);
}

Test(config, node_id_and_broker_id)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, "broker.id=5\n", err), 0);
        cr_assert_eq(cfg.node_id, 5, "broker.id alone names the node");
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "node.id=3\nbroker.id=3\n", err), 0);
        cr_assert_eq(cfg.node_id, 3);
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "node.id=3\nbroker.id=-1\n", err), 0);
        cr_assert_eq(cfg.node_id, 3, "broker.id=-1 means unset");
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "node.id=0\n", err), 0);
        cr_assert_eq(cfg.node_id, 0);
        config_free(&cfg);

        cr_assert_eq(load(&cfg, "node.id=3\nbroker.id=4\n", err), -EINVAL);
        cr_assert_str_eq(err, "node.id (3) and broker.id (4) disagree; set only node.id");
        cr_assert_eq(load(&cfg, "node.id=-1\n", err), -EINVAL);
}

/* ---- invalid and unknown keys ---- */

Test(config, invalid_values_are_refused_naming_the_key)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, "# x\nnum.partitions=abc\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "invalid value 'abc' for num.partitions: not an integer"), "%s", err);
        cr_assert_not_null(strstr(err, ":2)"), "the line is named: %s", err);

        const char *ov[] = { "num.partitions=0" };
        cr_assert_eq(load_text(&cfg, NULL, ov, 1, err, NULL), -EINVAL);
        cr_assert_str_eq(err, "invalid value '0' for num.partitions: must be at least 1 (--override)");

        struct {
                const char *text;
                const char *needle;
        } cases[] = {
                { "auto.create.topics.enable=yes\n", "auto.create.topics.enable: not true or false" },
                { "compression.type=brotli\n", "compression.type: must be one of" },
                { "log.segment.bytes=1000\n", "log.segment.bytes: must be at least 1048576" },
                { "log.cleanup.policy=delete,archive\n", "log.cleanup.policy" },
                { "socket.request.max.bytes=99999999999\n", "not a 32-bit integer" },
                { "offsets.topic.replication.factor=40000\n", "not a 16-bit integer" },
                { "num.network.threads=0\n", "num.network.threads" },
                { "log.cleaner.min.cleanable.ratio=2\n", "must be between 0 and 1" },
                { "process.roles=broker,observer\n", "process.roles" },
                { "log.roll.ms=0\n", "invalid value '0' for log.roll.ms: must be at least 1" },
                { "log.roll.hours=0\n", "log.roll.hours" },
                { "log.flush.interval.ms=-5\n", "log.flush.interval.ms" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_assert_eq(load(&cfg, cases[i].text, err), -EINVAL, "%s", cases[i].text);
                cr_assert_not_null(strstr(err, cases[i].needle), "%s -> %s", cases[i].text, err);
        }
}

Test(config, unknown_keys_warn_but_load)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        char *diag;
        const char *ov[] = { "also.unknown=2" };
        const char *file = "zookeeper.connect=localhost:2181\nnum.partitions=2\n";
        cr_assert_eq(load_text(&cfg, file, ov, 1, err, &diag), 0, "%s", err);
        cr_assert_eq(cfg.warning_count, 2);
        cr_assert_eq(count_lines(diag, "warning"), 2, "%s", diag);
        cr_assert_not_null(strstr(diag, "'zookeeper.connect'"), "%s", diag);
        cr_assert_not_null(strstr(diag, ":1)"), "%s", diag);
        cr_assert_not_null(strstr(diag, "'also.unknown' (--override)"), "%s", diag);
        cr_assert_eq(cfg.num_partitions, 2);
        free(diag);
        config_free(&cfg);
}

Test(config, kraft_keys_are_accepted_with_a_note)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        char *diag;
        /* Kafka's own KRaft combined-mode sample, abridged. */
        const char *kafka_sample =
                "process.roles=broker,controller\n"
                "node.id=1\n"
                "controller.quorum.voters=1@localhost:9093\n"
                "listeners=PLAINTEXT://:9092,CONTROLLER://:9093\n"
                "inter.broker.listener.name=PLAINTEXT\n"
                "advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n"
                "controller.listener.names=CONTROLLER\n"
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,"
                "SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n"
                "num.network.threads=3\n"
                "num.io.threads=8\n"
                "socket.send.buffer.bytes=102400\n"
                "socket.receive.buffer.bytes=102400\n"
                "socket.request.max.bytes=104857600\n"
                "log.dirs=/tmp/kraft-combined-logs\n"
                "num.partitions=1\n"
                "num.recovery.threads.per.data.dir=1\n"
                "offsets.topic.replication.factor=1\n"
                "share.coordinator.state.topic.replication.factor=1\n"
                "share.coordinator.state.topic.min.isr=1\n"
                "transaction.state.log.replication.factor=1\n"
                "transaction.state.log.min.isr=1\n"
                "log.retention.hours=168\n"
                "log.segment.bytes=1073741824\n"
                "log.retention.check.interval.ms=300000\n";
        cr_assert_eq(load_text(&cfg, kafka_sample, NULL, 0, err, &diag), 0, "%s", err);
        cr_assert_eq(cfg.warning_count, 0, "%s", diag);
        cr_assert_eq(count_lines(diag, "warning"), 0, "%s", diag);
        cr_assert_not_null(strstr(diag, "process.roles is accepted and ignored"), "%s", diag);
        cr_assert_not_null(strstr(diag, "controller.quorum.voters is accepted and ignored"), "%s", diag);
        cr_assert_not_null(strstr(diag, "not opening CONTROLLER, a KRaft controller listener"), "%s", diag);
        cr_assert_eq(cfg.listener_count, 1);
        cr_assert_str_eq(cfg.listeners[0].name, "PLAINTEXT");
        cr_assert_eq(cfg.advertised_count, 1);
        cr_assert_str_eq(cfg.advertised[0].host, "localhost");
        cr_assert_eq(cfg.num_network_threads, 3);
        free(diag);
        config_free(&cfg);
}

Test(config, sample_server_properties_loads_cleanly)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        char *diag = NULL;
        size_t diag_len = 0;
        FILE *f = open_memstream(&diag, &diag_len);
        int rc = config_load(&cfg, "config/server.properties", NULL, 0, f, err, sizeof(err));
        fclose(f);
        cr_assert_eq(rc, 0, "%s (run from the repository root)", err);
        cr_assert_eq(cfg.warning_count, 0, "%s", diag);
        cr_assert_eq(cfg.node_id, 1);
        cr_assert_eq(cfg.listener_count, 1);
        cr_assert_str_eq(cfg.listeners[0].host, "");
        cr_assert_eq(cfg.listeners[0].port, 9092);
        cr_assert_str_eq(cfg.advertised[0].host, "localhost");
        cr_assert_eq(cfg.advertised[0].port, 9092);
        cr_assert_eq(cfg.log_dir_count, 1);
        cr_assert_str_eq(cfg.log_dirs[0], "./data");
        cr_assert_eq(cfg.num_partitions, 1);
        free(diag);
        config_free(&cfg);
}

Test(config, missing_file)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        const char *missing = "/nonexistent/runnel.properties";
        cr_assert_eq(config_load(&cfg, missing, NULL, 0, NULL, err, sizeof(err)), -ENOENT);
        cr_assert_not_null(strstr(err, "/nonexistent/runnel.properties"), "%s", err);
        cr_assert_eq(config_load(&cfg, "/tmp", NULL, 0, NULL, err, sizeof(err)), -EINVAL);
}

Test(config, malformed_file_names_file_and_line)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, "a=1\n\nb=\\uZZZZ\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "line 3: malformed"), "%s", err);
        cr_assert_not_null(strstr(err, "/tmp/runnel-test-config-"), "%s", err);
}

/* ---- listeners ---- */

static int load_listeners(struct broker_config *cfg, const char *listeners, const char *advertised, char *err)
{
        char text[1024];
        int n = snprintf(text, sizeof(text), "listeners=%s\n", listeners);
        if (advertised)
                snprintf(text + n, sizeof(text) - (size_t)n, "advertised.listeners=%s\n", advertised);
        return load_text(cfg, text, NULL, 0, err, NULL);
}

Test(listeners, hosts_ports_and_ipv6)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load_listeners(&cfg, "plaintext://127.0.0.1:19092", NULL, err), 0, "%s", err);
        cr_assert_str_eq(cfg.listeners[0].name, "PLAINTEXT", "names are upper-cased");
        cr_assert_str_eq(cfg.listeners[0].host, "127.0.0.1");
        cr_assert_eq(cfg.listeners[0].port, 19092);
        cr_assert_str_eq(cfg.advertised[0].host, "127.0.0.1");
        config_free(&cfg);

        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://[::1]:9092", NULL, err), 0, "%s", err);
        cr_assert_str_eq(cfg.listeners[0].host, "::1");
        config_free(&cfg);

        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://[fe80::1%eth0]:0", "PLAINTEXT://[::1]:9092", err), 0,
                     "%s", err);
        cr_assert_str_eq(cfg.listeners[0].host, "fe80::1%eth0");
        cr_assert_eq(cfg.listeners[0].port, 0, "port 0 picks a free port");
        cr_assert_str_eq(cfg.advertised[0].host, "::1");
        config_free(&cfg);

        cr_assert_eq(load(&cfg,
                          "listeners=PLAINTEXT://:9092 , INTERNAL://localhost:9094\n"
                          "listener.security.protocol.map=PLAINTEXT:PLAINTEXT, internal:plaintext\n",
                          err), 0, "%s", err);
        cr_assert_eq(cfg.listener_count, 2);
        cr_assert_str_eq(cfg.listeners[1].name, "INTERNAL");
        cr_assert_eq(cfg.listeners[1].port, 9094);
        cr_assert_eq(cfg.advertised_count, 2);
        config_free(&cfg);
}

Test(listeners, bad_entries_are_refused)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        struct {
                const char *listeners;
                const char *needle;
        } cases[] = {
                { "PLAINTEXT://:65536", "not between 0 and 65535" },
                { "PLAINTEXT://:-1", "not between 0 and 65535" },
                { "PLAINTEXT://:", "not between 0 and 65535" },
                { "PLAINTEXT://:90x", "not between 0 and 65535" },
                { "PLAINTEXT://localhost", "has no port" },
                { "localhost:9092", "not NAME://host:port" },
                { "://:9092", "not NAME://host:port" },
                { "PLAINTEXT://::1:9092", "brackets" },
                { "PLAINTEXT://[::1:9092", "[IPv6]:port" },
                { "PLAINTEXT://[::1]9092", "[IPv6]:port" },
                { "PLAINTEXT://bad host:9092", "bad character" },
                { "PLAINTEXT://:9092,", "empty entry" },
                { "", "no listener" },
                { "PLAINTEXT://:9092,PLAINTEXT://:9093", "used twice" },
                { "SSL://:9093", "runnel serves only PLAINTEXT" },
                { "SASL_SSL://:9093", "SASL_SSL" },
                { "EXTERNAL://:9093", "add EXTERNAL:PLAINTEXT to listener.security.protocol.map" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_assert_eq(load_listeners(&cfg, cases[i].listeners, NULL, err), -EINVAL, "%s",
                             cases[i].listeners);
                cr_assert_not_null(strstr(err, cases[i].needle), "%s -> %s", cases[i].listeners, err);
        }

        cr_assert_eq(load(&cfg,
                          "listeners=PLAINTEXT://:9092,EXTERNAL://:9092\n"
                          "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,EXTERNAL:PLAINTEXT\n",
                          err), -EINVAL);
        cr_assert_not_null(strstr(err, "both use port 9092"), "%s", err);

        cr_assert_eq(load(&cfg, "listeners=EXTERNAL://:9093\n"
                                "listener.security.protocol.map=EXTERNAL:SASL_SSL\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "uses SASL_SSL"), "%s", err);

        cr_assert_eq(load(&cfg, "listener.security.protocol.map=PLAINTEXT:TLS\n", err), -EINVAL);
        cr_assert_not_null(strstr(err, "listener.security.protocol.map"), "%s", err);

        cr_assert_eq(load(&cfg, "listeners=CONTROLLER://:9093\ncontroller.listener.names=CONTROLLER\n", err),
                     -EINVAL);
        cr_assert_not_null(strstr(err, "only controller listeners"), "%s", err);
}

Test(listeners, advertised_rules)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://0.0.0.0:9092", "PLAINTEXT://broker.example:9092",
                                    err), 0, "%s", err);
        cr_assert_str_eq(cfg.listeners[0].host, "0.0.0.0");
        cr_assert_str_eq(cfg.advertised[0].host, "broker.example");
        config_free(&cfg);

        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://0.0.0.0:9092", NULL, err), -EINVAL);
        cr_assert_not_null(strstr(err, "'0.0.0.0'"), "%s", err);
        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://:9092", "PLAINTEXT://[::]:9092", err), -EINVAL);
        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://:9092", "OTHER://host:9092", err), -EINVAL);
        cr_assert_not_null(strstr(err, "OTHER"), "%s", err);
        cr_assert_eq(load_listeners(&cfg, "PLAINTEXT://:9092", "PLAINTEXT://host:99999", err), -EINVAL);
        cr_assert_not_null(strstr(err, "advertised.listeners"), "%s", err);
}

/* ---- command line ---- */

Test(config, command_line)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        char path[64];
        write_temp(path, sizeof(path), "num.partitions=3\nlog.dirs=/x\n");
        char *argv[] = { "runnel", path, "--override", "num.partitions=5", "--override=log.dirs=/y", NULL };
        FILE *null = fopen("/dev/null", "w");
        cr_assert_eq(config_load_args(&cfg, 5, argv, null, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(cfg.num_partitions, 5);
        cr_assert_str_eq(cfg.log_dirs[0], "/y");
        config_free(&cfg);

        char *no_file[] = { "runnel", "--override", "num.partitions=2", NULL };
        cr_assert_eq(config_load_args(&cfg, 3, no_file, null, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(cfg.num_partitions, 2);
        config_free(&cfg);

        char *unknown[] = { "runnel", "--daemon", NULL };
        cr_assert_eq(config_load_args(&cfg, 2, unknown, null, err, sizeof(err)), -EINVAL);
        cr_assert_not_null(strstr(err, "--daemon"), "%s", err);
        char *two[] = { "runnel", path, path, NULL };
        cr_assert_eq(config_load_args(&cfg, 3, two, null, err, sizeof(err)), -EINVAL);
        char *dangling[] = { "runnel", "--override", NULL };
        cr_assert_eq(config_load_args(&cfg, 2, dangling, null, err, sizeof(err)), -EINVAL);
        fclose(null);
        unlink(path);
}

Test(config, internal_topic_replication_is_clamped_but_reported_raw)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load_text(&cfg, "offsets.topic.replication.factor=3\ntransaction.state.log.min.isr=2\n",
                               NULL, 0, err, NULL), 0);
        cr_assert_eq(cfg.offsets_topic_replication_factor, 1);
        cr_assert_eq(cfg.transaction_state_log_min_isr, 1);
        enum config_source src;
        cr_assert_str_eq(lookup(&cfg, "offsets.topic.replication.factor", &src), "3");
        cr_assert_eq(src, CONFIG_SOURCE_STATIC_BROKER);
        config_free(&cfg);
}

/* ---- DescribeConfigs synonyms (Kafka's ConfigHelper.configSynonyms) ---- */

/* retention.ms with log.retention.hours=48 set: Kafka lists nothing under
 * it (log.retention.ms has no value), and under log.retention.hours the set
 * value then the default; a bug listed the topic key's own name instead. */
Test(synonyms, time_unit_family_starts_at_the_key_described)
{
        struct broker_config cfg;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(load(&cfg, "log.retention.hours=48\nnum.network.threads=2\n", err), 0, "%s", err);
        const char *names[CONFIG_SYNONYM_MAX];
        struct config_synonym_value syn[2 * CONFIG_SYNONYM_MAX];

        size_t count = config_key_synonyms("log.retention.ms", names, CONFIG_SYNONYM_MAX);
        cr_assert_eq(count, 3);
        cr_assert_str_eq(names[2], "log.retention.hours");
        cr_assert_eq(config_synonyms(&cfg, names, count, "log.retention.ms", syn, 6), 0,
                     "nothing before log.retention.ms, which has no value");

        count = config_key_synonyms("log.retention.hours", names, CONFIG_SYNONYM_MAX);
        cr_assert_eq(count, 3);
        size_t n = config_synonyms(&cfg, names, count, "log.retention.hours", syn, 6);
        cr_assert_eq(n, 2);
        cr_assert_str_eq(syn[0].name, "log.retention.hours");
        cr_assert_str_eq(syn[0].value, "48");
        cr_assert_eq(syn[0].source, CONFIG_SOURCE_STATIC_BROKER);
        cr_assert_str_eq(syn[1].name, "log.retention.hours");
        cr_assert_str_eq(syn[1].value, "168");
        cr_assert_eq(syn[1].source, CONFIG_SOURCE_DEFAULT);

        /* A key set at start lists its default after the set value. */
        count = config_key_synonyms("num.network.threads", names, CONFIG_SYNONYM_MAX);
        cr_assert_eq(count, 1);
        n = config_synonyms(&cfg, names, count, "num.network.threads", syn, 6);
        cr_assert_eq(n, 2);
        cr_assert_eq(syn[0].source, CONFIG_SOURCE_STATIC_BROKER);
        cr_assert_eq(syn[1].source, CONFIG_SOURCE_DEFAULT);

        /* A key whose default is null and which is not set has no synonym. */
        names[0] = "advertised.listeners";
        cr_assert_eq(config_synonyms(&cfg, names, 1, "advertised.listeners", syn, 6), 0);
        config_free(&cfg);
}

Test(synonyms, flush_scheduler_interval_stands_alone)
{
        const char *names[CONFIG_SYNONYM_MAX];
        cr_assert_eq(config_key_synonyms("log.flush.interval.ms", names, CONFIG_SYNONYM_MAX), 2);
        cr_assert_str_eq(names[1], "log.flush.scheduler.interval.ms");
        cr_assert_eq(config_key_synonyms("log.flush.scheduler.interval.ms", names, CONFIG_SYNONYM_MAX), 1);
        cr_assert_eq(config_key_synonyms("log.roll.hours", names, CONFIG_SYNONYM_MAX), 2);
        cr_assert_str_eq(names[0], "log.roll.ms");
        cr_assert_eq(config_key_synonyms("message.max.bytes", names, CONFIG_SYNONYM_MAX), 1);
}
