/*
 * test_topic_config.c - topic config definitions, validation, and the
 * defaults <- broker <- topic layering.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "topic_config.h"

/* ---- a fake broker config for the broker layer ---- */

struct fake_broker {
        const char *keys[8];
        const char *values[8];
};

static const char *fake_lookup(void *ctx, const char *broker_key)
{
        struct fake_broker *b = ctx;
        for (int i = 0; i < 8 && b->keys[i]; i++) {
                if (strcmp(b->keys[i], broker_key) == 0)
                        return b->values[i];
        }
        return NULL;
}

static int validate(const char *name, const char *value, char *err)
{
        return topic_config_validate(name, value, err, CONFIG_ERR_BYTES);
}

/* ---- the table ---- */

Test(topic_config_table, is_sorted_and_indexed_by_key)
{
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                const struct config_def *def = topic_config_def((enum topic_config_key)k);
                cr_assert_not_null(def->name);
                cr_assert_eq(topic_config_key_of(def), (enum topic_config_key)k);
                cr_assert_eq(topic_config_find(def->name), def, "find(%s)", def->name);
                if (k == 0)
                        continue;
                const struct config_def *prev = topic_config_def((enum topic_config_key)(k - 1));
                cr_assert_lt(strcmp(prev->name, def->name), 0, "%s out of order", def->name);
        }
}

Test(topic_config_table, every_default_passes_its_own_validation)
{
        char err[CONFIG_ERR_BYTES];
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                const struct config_def *def = topic_config_def((enum topic_config_key)k);
                cr_assert_not_null(def->default_text, "%s has no default", def->name);
                cr_assert_eq(config_def_check(def, def->default_text, err, sizeof(err)), 0,
                             "%s: %s", def->name, err);
                cr_assert_not_null(def->doc);
                cr_assert_not(def->is_sensitive);
                cr_assert_not(def->is_read_only);
        }
}

Test(topic_config_table, has_kafka_4_keys_and_not_removed_ones)
{
        const char *present[] = {
                "cleanup.policy", "compression.type", "compression.gzip.level", "compression.lz4.level",
                "compression.zstd.level", "delete.retention.ms", "errors.deadletterqueue.group.enable",
                "file.delete.delay.ms", "flush.messages",
                "flush.ms", "follower.replication.throttled.replicas", "index.interval.bytes",
                "leader.replication.throttled.replicas", "local.retention.bytes", "local.retention.ms",
                "max.compaction.lag.ms", "max.message.bytes", "message.timestamp.after.max.ms",
                "message.timestamp.before.max.ms", "message.timestamp.type", "min.cleanable.dirty.ratio",
                "min.compaction.lag.ms", "min.insync.replicas", "preallocate", "remote.storage.enable",
                "remote.log.copy.disable", "remote.log.delete.on.disable", "remote.copy.lag.bytes",
                "remote.copy.lag.ms", "retention.bytes",
                "retention.ms", "segment.bytes", "segment.index.bytes", "segment.jitter.ms", "segment.ms",
                "unclean.leader.election.enable",
        };
        for (size_t i = 0; i < sizeof(present) / sizeof(present[0]); i++)
                cr_assert_not_null(topic_config_find(present[i]), "%s missing", present[i]);
        cr_assert_eq(sizeof(present) / sizeof(present[0]), TOPIC_CONFIG_COUNT);

        cr_assert_null(topic_config_find("message.format.version"));
        cr_assert_null(topic_config_find("message.downconversion.enable"));
        cr_assert_null(topic_config_find("message.timestamp.difference.max.ms"));
        cr_assert_null(topic_config_find("log.retention.ms"));
        cr_assert_null(topic_config_find(""));
}

Test(topic_config_table, find_n_takes_unterminated_names)
{
        const char *wire = "retention.msXYZ";
        cr_assert_eq(topic_config_find_n(wire, 12), topic_config_def(TOPIC_CONFIG_RETENTION_MS));
        cr_assert_null(topic_config_find_n(wire, 11));
        cr_assert_null(topic_config_find_n(wire, 13));
        cr_assert_null(topic_config_find_n(NULL, 0));
}

Test(topic_config_table, kafka_defaults_and_synonyms)
{
        const struct config_def *d = topic_config_find("retention.ms");
        cr_assert_str_eq(d->default_text, "604800000");
        cr_assert_eq(d->type, CONFIG_TYPE_LONG);
        cr_assert_str_eq(d->synonyms[0].name, "log.retention.ms");
        cr_assert_str_eq(d->synonyms[1].name, "log.retention.minutes");
        cr_assert_eq(d->synonyms[1].factor, 60000);
        cr_assert_str_eq(d->synonyms[2].name, "log.retention.hours");
        cr_assert_eq(d->synonyms[2].factor, 3600000);

        d = topic_config_find("max.message.bytes");
        cr_assert_str_eq(d->default_text, "1048588");
        cr_assert_str_eq(d->synonyms[0].name, "message.max.bytes");

        d = topic_config_find("compression.type");
        cr_assert_str_eq(d->default_text, "producer");
        cr_assert_str_eq(d->synonyms[0].name, "compression.type");

        d = topic_config_find("flush.ms");
        cr_assert_str_eq(d->synonyms[0].name, "log.flush.interval.ms");
        cr_assert_str_eq(d->synonyms[1].name, "log.flush.scheduler.interval.ms");

        d = topic_config_find("cleanup.policy");
        cr_assert_eq(d->type, CONFIG_TYPE_LIST);
        cr_assert_str_eq(d->default_text, "delete");

        cr_assert_str_eq(topic_config_find("message.timestamp.after.max.ms")->default_text, "3600000");
        cr_assert_null(topic_config_find("remote.storage.enable")->synonyms[0].name);
}

/* ---- value parsers ---- */

Test(config_parse, integers)
{
        int64_t v;
        cr_assert_eq(config_parse_int64("42", &v), 0);
        cr_assert_eq(v, 42);
        cr_assert_eq(config_parse_int64("  -7 \t", &v), 0);
        cr_assert_eq(v, -7);
        cr_assert_eq(config_parse_int64("+3", &v), 0);
        cr_assert_eq(v, 3);
        cr_assert_eq(config_parse_int64("9223372036854775807", &v), 0);
        cr_assert_eq(v, INT64_MAX);
        cr_assert_eq(config_parse_int64("9223372036854775808", &v), -ERANGE);
        cr_assert_eq(config_parse_int64("", &v), -EINVAL);
        cr_assert_eq(config_parse_int64("12abc", &v), -EINVAL);
        cr_assert_eq(config_parse_int64("0x10", &v), -EINVAL);
        cr_assert_eq(config_parse_int64("1e3", &v), -EINVAL);
        cr_assert_eq(config_parse_int64("- 1", &v), -EINVAL);
        cr_assert_eq(config_parse_int64("1 2", &v), -EINVAL);
}

Test(config_parse, booleans_and_doubles)
{
        bool b;
        cr_assert_eq(config_parse_bool("TRUE", &b), 0);
        cr_assert(b);
        cr_assert_eq(config_parse_bool(" false ", &b), 0);
        cr_assert_not(b);
        cr_assert_eq(config_parse_bool("yes", &b), -EINVAL);
        cr_assert_eq(config_parse_bool("1", &b), -EINVAL);

        double d;
        cr_assert_eq(config_parse_double("0.25", &d), 0);
        cr_assert_float_eq(d, 0.25, 1e-12);
        cr_assert_eq(config_parse_double("1e-1", &d), 0);
        cr_assert_eq(config_parse_double("nan", &d), -EINVAL);
        cr_assert_eq(config_parse_double("inf", &d), -EINVAL);
        cr_assert_eq(config_parse_double("0x1p3", &d), -EINVAL);
        cr_assert_eq(config_parse_double("1e999", &d), -ERANGE);
        cr_assert_eq(config_parse_double("", &d), -EINVAL);
}

Test(config_parse, lists)
{
        struct config_list_iter it;
        const char *item;
        size_t len;

        config_list_start(&it, "   ");
        cr_assert_not(config_list_next(&it, &item, &len));

        config_list_start(&it, " compact , delete");
        cr_assert(config_list_next(&it, &item, &len));
        cr_assert_eq(len, 7);
        cr_assert_eq(memcmp(item, "compact", 7), 0);
        cr_assert(config_list_next(&it, &item, &len));
        cr_assert_eq(len, 6);
        cr_assert_eq(memcmp(item, "delete", 6), 0);
        cr_assert_not(config_list_next(&it, &item, &len));

        config_list_start(&it, "a,");
        cr_assert(config_list_next(&it, &item, &len));
        cr_assert(config_list_next(&it, &item, &len));
        cr_assert_eq(len, 0);
        cr_assert_not(config_list_next(&it, &item, &len));
}

/* ---- validation ---- */

Test(topic_config_validate, accepts_good_values)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("retention.ms", "-1", err), 0);
        cr_assert_eq(validate("retention.ms", " 86400000 ", err), 0);
        cr_assert_eq(validate("retention.bytes", "-12345", err), 0);
        cr_assert_eq(validate("segment.bytes", "1048576", err), 0);
        cr_assert_eq(validate("min.cleanable.dirty.ratio", "0.1", err), 0);
        cr_assert_eq(validate("min.cleanable.dirty.ratio", "1", err), 0);
        cr_assert_eq(validate("preallocate", "True", err), 0);
        cr_assert_eq(validate("local.retention.ms", "-2", err), 0);
        cr_assert_eq(validate("compression.zstd.level", "-5", err), 0);
        cr_assert_eq(validate("compression.gzip.level", "-1", err), 0);
        cr_assert_eq(validate("compression.gzip.level", "9", err), 0);
        cr_assert_eq(validate("flush.messages", "9223372036854775807", err), 0);
}

Test(topic_config_validate, unknown_key)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("retention.forever", "1", err), TOPIC_CONFIG_INVALID);
        cr_assert_not_null(strstr(err, "retention.forever"), "%s", err);
        cr_assert_eq(validate("log.retention.hours", "1", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("message.format.version", "3.0", err), TOPIC_CONFIG_INVALID);
}

Test(topic_config_validate, null_value)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("retention.ms", NULL, err), TOPIC_CONFIG_INVALID);
        cr_assert_not_null(strstr(err, "retention.ms"), "%s", err);
}

Test(topic_config_validate, wrong_type)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("retention.ms", "abc", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value 'abc' for retention.ms: not an integer");
        cr_assert_eq(validate("retention.ms", "", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("retention.ms", "1.5", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("segment.bytes", "2147483648", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value '2147483648' for segment.bytes: not a 32-bit integer");
        cr_assert_eq(validate("retention.ms", "99999999999999999999", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("preallocate", "yes", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value 'yes' for preallocate: not true or false");
        cr_assert_eq(validate("min.cleanable.dirty.ratio", "half", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value 'half' for min.cleanable.dirty.ratio: not a number");
}

Test(topic_config_validate, out_of_range)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("retention.ms", "-2", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value '-2' for retention.ms: must be at least -1");
        cr_assert_eq(validate("segment.bytes", "1048575", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value '1048575' for segment.bytes: must be at least 1048576");
        cr_assert_eq(validate("segment.ms", "0", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("min.insync.replicas", "0", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("flush.messages", "0", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("local.retention.bytes", "-3", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("compression.lz4.level", "18", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value '18' for compression.lz4.level: must be between 1 and 17");
        cr_assert_eq(validate("compression.zstd.level", "23", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("compression.gzip.level", "0", err), TOPIC_CONFIG_INVALID);
        cr_assert_not_null(strstr(err, "compression.gzip.level"));
        cr_assert_eq(validate("compression.gzip.level", "10", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("min.cleanable.dirty.ratio", "1.01", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("min.cleanable.dirty.ratio", "-0.5", err), TOPIC_CONFIG_INVALID);
}

Test(topic_config_validate, enumerated_strings)
{
        char err[CONFIG_ERR_BYTES];
        const char *codecs[] = { "uncompressed", "zstd", "lz4", "snappy", "gzip", "producer" };
        for (size_t i = 0; i < 6; i++)
                cr_assert_eq(validate("compression.type", codecs[i], err), 0, "%s", codecs[i]);
        cr_assert_eq(validate("compression.type", " lz4 ", err), 0);
        cr_assert_eq(validate("compression.type", "brotli", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value 'brotli' for compression.type: must be one of "
                              "uncompressed, zstd, lz4, snappy, gzip, producer");
        cr_assert_eq(validate("compression.type", "GZIP", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("compression.type", "none", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("message.timestamp.type", "LogAppendTime", err), 0);
        cr_assert_eq(validate("message.timestamp.type", "logappendtime", err), TOPIC_CONFIG_INVALID);
}

Test(topic_config_validate, cleanup_policy_list)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("cleanup.policy", "delete", err), 0);
        cr_assert_eq(validate("cleanup.policy", "compact", err), 0);
        cr_assert_eq(validate("cleanup.policy", "compact,delete", err), 0);
        cr_assert_eq(validate("cleanup.policy", " delete , compact ", err), 0);
        cr_assert_eq(validate("cleanup.policy", "", err), 0);
        cr_assert_eq(validate("cleanup.policy", "delete,archive", err), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "invalid value 'delete,archive' for cleanup.policy: "
                              "'archive' is not one of compact, delete");
        cr_assert_eq(validate("cleanup.policy", "delete,", err), TOPIC_CONFIG_INVALID);
        cr_assert_not_null(strstr(err, "empty list item"), "%s", err);
        cr_assert_eq(validate("cleanup.policy", "Compact", err), TOPIC_CONFIG_INVALID);
}

Test(topic_config_validate, throttled_replicas)
{
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(validate("leader.replication.throttled.replicas", "", err), 0);
        cr_assert_eq(validate("leader.replication.throttled.replicas", "*", err), 0);
        cr_assert_eq(validate("leader.replication.throttled.replicas", "0:1, 1:2", err), 0);
        cr_assert_eq(validate("follower.replication.throttled.replicas", "0:x", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("follower.replication.throttled.replicas", "0:1,*", err), TOPIC_CONFIG_INVALID);
        cr_assert_eq(validate("follower.replication.throttled.replicas", "7", err), TOPIC_CONFIG_INVALID);
}

/* ---- typed values and layering ---- */

Test(topic_config_layers, kafka_defaults)
{
        struct topic_config c;
        topic_config_init_defaults(&c);
        cr_assert_eq(c.segment_bytes, 1073741824);
        cr_assert_eq(c.segment_ms, 604800000);
        cr_assert_eq(c.segment_jitter_ms, 0);
        cr_assert_eq(c.segment_index_bytes, 10485760);
        cr_assert_eq(c.index_interval_bytes, 4096);
        cr_assert_eq(c.flush_messages, INT64_MAX);
        cr_assert_eq(c.flush_ms, INT64_MAX);
        cr_assert_eq(c.retention_ms, 604800000);
        cr_assert_eq(c.retention_bytes, -1);
        cr_assert_eq(c.local_retention_ms, -2);
        cr_assert_eq(c.local_retention_bytes, -2);
        cr_assert_eq(c.file_delete_delay_ms, 60000);
        cr_assert_eq(c.delete_retention_ms, 86400000);
        cr_assert_eq(c.min_compaction_lag_ms, 0);
        cr_assert_eq(c.max_compaction_lag_ms, INT64_MAX);
        cr_assert_float_eq(c.min_cleanable_dirty_ratio, 0.5, 1e-12);
        cr_assert_eq(c.max_message_bytes, 1048588);
        cr_assert_eq(c.min_insync_replicas, 1);
        cr_assert_eq(c.message_timestamp_before_max_ms, INT64_MAX);
        cr_assert_eq(c.message_timestamp_after_max_ms, 3600000);
        cr_assert_eq(c.message_timestamp_type, TOPIC_TIMESTAMP_CREATE_TIME);
        cr_assert_eq(c.compression_type, TOPIC_COMPRESSION_PRODUCER);
        cr_assert_eq(c.compression_gzip_level, -1);
        cr_assert_eq(c.compression_lz4_level, 9);
        cr_assert_eq(c.compression_zstd_level, 3);
        cr_assert(c.is_cleanup_delete);
        cr_assert_not(c.is_cleanup_compact);
        cr_assert_not(c.is_unclean_leader_election_enabled);
        cr_assert_not(c.is_preallocated);
        cr_assert_not(c.is_remote_storage_enabled);
}

Test(topic_config_layers, apply_sets_typed_fields)
{
        struct topic_config c;
        char err[CONFIG_ERR_BYTES];
        topic_config_init_defaults(&c);
        cr_assert_eq(topic_config_apply(&c, "cleanup.policy", "compact", err, sizeof(err)), 0);
        cr_assert(c.is_cleanup_compact);
        cr_assert_not(c.is_cleanup_delete);
        cr_assert_eq(topic_config_apply(&c, "cleanup.policy", "delete, compact", err, sizeof(err)), 0);
        cr_assert(c.is_cleanup_compact && c.is_cleanup_delete);
        cr_assert_eq(topic_config_apply(&c, "cleanup.policy", "", err, sizeof(err)), 0);
        cr_assert(!c.is_cleanup_compact && !c.is_cleanup_delete);
        cr_assert_eq(topic_config_apply(&c, "compression.type", "zstd", err, sizeof(err)), 0);
        cr_assert_eq(c.compression_type, TOPIC_COMPRESSION_ZSTD);
        cr_assert_eq(topic_config_apply(&c, "compression.type", "uncompressed", err, sizeof(err)), 0);
        cr_assert_eq(c.compression_type, TOPIC_COMPRESSION_UNCOMPRESSED);
        cr_assert_eq(topic_config_apply(&c, "message.timestamp.type", "LogAppendTime", err, sizeof(err)), 0);
        cr_assert_eq(c.message_timestamp_type, TOPIC_TIMESTAMP_LOG_APPEND_TIME);
        cr_assert_eq(topic_config_apply(&c, "unclean.leader.election.enable", "TRUE", err, sizeof(err)), 0);
        cr_assert(c.is_unclean_leader_election_enabled);
        cr_assert_eq(topic_config_apply(&c, "min.cleanable.dirty.ratio", "0.75", err, sizeof(err)), 0);
        cr_assert_float_eq(c.min_cleanable_dirty_ratio, 0.75, 1e-12);

        struct topic_config before = c;
        cr_assert_eq(topic_config_apply(&c, "segment.ms", "0", err, sizeof(err)), TOPIC_CONFIG_INVALID);
        cr_assert_eq(memcmp(&before, &c, sizeof(c)), 0, "a refused value must leave cfg unchanged");
        cr_assert_eq(topic_config_apply(&c, "no.such", "0", err, sizeof(err)), TOPIC_CONFIG_INVALID);
}

Test(topic_config_layers, base_without_broker_values_is_kafka_defaults)
{
        struct fake_broker b = { { NULL }, { NULL } };
        struct topic_config_base base;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &b, err, sizeof(err)), 0);
        struct topic_config defaults;
        topic_config_init_defaults(&defaults);
        cr_assert_eq(memcmp(&base.config, &defaults, sizeof(defaults)), 0);
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                cr_assert_eq(base.source[k], CONFIG_SOURCE_DEFAULT);
                cr_assert_null(base.broker_key[k]);
                cr_assert_str_eq(base.text[k], topic_config_def((enum topic_config_key)k)->default_text);
        }
        topic_config_base_free(&base);
}

Test(topic_config_layers, broker_synonyms_convert_units)
{
        struct fake_broker b = {
                { "log.retention.hours", "log.roll.hours", "log.cleanup.policy", "message.max.bytes",
                  "compression.type", "log.flush.scheduler.interval.ms", "log.preallocate" },
                { "24", "1", " compact , delete ", "2000000", " lz4", "1000", "TRUE" },
        };
        struct topic_config_base base;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &b, err, sizeof(err)), 0, "%s", err);

        cr_assert_eq(base.config.retention_ms, 24 * 3600000LL);
        cr_assert_str_eq(base.text[TOPIC_CONFIG_RETENTION_MS], "86400000");
        cr_assert_eq(base.source[TOPIC_CONFIG_RETENTION_MS], CONFIG_SOURCE_STATIC_BROKER);
        cr_assert_str_eq(base.broker_key[TOPIC_CONFIG_RETENTION_MS], "log.retention.hours");

        cr_assert_eq(base.config.segment_ms, 3600000);
        cr_assert_str_eq(base.text[TOPIC_CONFIG_CLEANUP_POLICY], "compact,delete");
        cr_assert(base.config.is_cleanup_compact && base.config.is_cleanup_delete);
        cr_assert_eq(base.config.max_message_bytes, 2000000);
        cr_assert_str_eq(base.broker_key[TOPIC_CONFIG_MAX_MESSAGE_BYTES], "message.max.bytes");
        cr_assert_eq(base.config.compression_type, TOPIC_COMPRESSION_LZ4);
        cr_assert_str_eq(base.text[TOPIC_CONFIG_COMPRESSION_TYPE], "lz4");
        cr_assert_str_eq(base.text[TOPIC_CONFIG_PREALLOCATE], "true");
        /* flush.ms falls back to the scheduler interval when log.flush.interval.ms is unset. */
        cr_assert_eq(base.config.flush_ms, 1000);
        cr_assert_str_eq(base.broker_key[TOPIC_CONFIG_FLUSH_MS], "log.flush.scheduler.interval.ms");
        /* Untouched keys stay at Kafka's default. */
        cr_assert_eq(base.source[TOPIC_CONFIG_SEGMENT_BYTES], CONFIG_SOURCE_DEFAULT);
        topic_config_base_free(&base);
}

Test(topic_config_layers, retention_precedence_ms_minutes_hours)
{
        struct topic_config_base base;
        char err[CONFIG_ERR_BYTES];

        struct fake_broker all = {
                { "log.retention.hours", "log.retention.minutes", "log.retention.ms" },
                { "1", "2", "3" },
        };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &all, err, sizeof(err)), 0);
        cr_assert_eq(base.config.retention_ms, 3);
        cr_assert_str_eq(base.broker_key[TOPIC_CONFIG_RETENTION_MS], "log.retention.ms");
        topic_config_base_free(&base);

        struct fake_broker two = { { "log.retention.hours", "log.retention.minutes" }, { "1", "2" } };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &two, err, sizeof(err)), 0);
        cr_assert_eq(base.config.retention_ms, 120000);
        cr_assert_str_eq(base.broker_key[TOPIC_CONFIG_RETENTION_MS], "log.retention.minutes");
        topic_config_base_free(&base);

        /* Any negative broker retention means unlimited, reported as -1. */
        struct fake_broker neg = { { "log.retention.hours" }, { "-5" } };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &neg, err, sizeof(err)), 0);
        cr_assert_eq(base.config.retention_ms, -1);
        cr_assert_str_eq(base.text[TOPIC_CONFIG_RETENTION_MS], "-1");
        topic_config_base_free(&base);
}

Test(topic_config_layers, invalid_broker_value_names_the_broker_key)
{
        struct topic_config_base base;
        char err[CONFIG_ERR_BYTES];

        struct fake_broker seg = { { "log.segment.bytes" }, { "1000" } };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &seg, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "invalid value '1000' for log.segment.bytes: must be at least 1048576");

        struct fake_broker roll = { { "log.roll.ms" }, { "0" } };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &roll, err, sizeof(err)), -EINVAL);
        cr_assert_not_null(strstr(err, "log.roll.ms"), "%s", err);

        struct fake_broker big = { { "log.roll.hours" }, { "9223372036854775807" } };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &big, err, sizeof(err)), -EINVAL);
        cr_assert_not_null(strstr(err, "log.roll.hours"), "%s", err);

        struct fake_broker nan = { { "log.retention.minutes" }, { "soon" } };
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &nan, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "invalid value 'soon' for log.retention.minutes: not an integer");
}

Test(topic_config_layers, topic_overrides_win_over_broker)
{
        struct fake_broker b = { { "log.retention.hours", "log.segment.bytes" }, { "24", "2097152" } };
        struct topic_config_base base;
        char err[CONFIG_ERR_BYTES];
        cr_assert_eq(topic_config_base_init(&base, fake_lookup, &b, err, sizeof(err)), 0);

        const char *overrides[] = { "retention.ms=1000", "cleanup.policy=compact", "retention.ms=2000" };
        struct topic_config t;
        cr_assert_eq(topic_config_build(&t, &base, overrides, 3, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(t.retention_ms, 2000, "a later override for the same key wins");
        cr_assert(t.is_cleanup_compact);
        cr_assert_not(t.is_cleanup_delete);
        cr_assert_eq(t.segment_bytes, 2097152, "broker layer shows through");
        cr_assert_eq(t.max_message_bytes, 1048588, "Kafka default shows through");

        struct topic_config none;
        cr_assert_eq(topic_config_build(&none, &base, NULL, 0, err, sizeof(err)), 0);
        cr_assert_eq(memcmp(&none, &base.config, sizeof(none)), 0);

        const char *bad[] = { "retention.ms=1000", "segment.bytes=12" };
        struct topic_config untouched = t;
        cr_assert_eq(topic_config_build(&t, &base, bad, 2, err, sizeof(err)), TOPIC_CONFIG_INVALID);
        cr_assert_not_null(strstr(err, "segment.bytes"), "%s", err);
        cr_assert_eq(memcmp(&untouched, &t, sizeof(t)), 0, "out is untouched on failure");

        const char *unknown[] = { "retention.hours=1" };
        cr_assert_eq(topic_config_build(&t, &base, unknown, 1, err, sizeof(err)), TOPIC_CONFIG_INVALID);
        cr_assert_str_eq(err, "unknown topic config 'retention.hours'");

        const char *no_eq[] = { "retention.ms" };
        cr_assert_eq(topic_config_build(&t, &base, no_eq, 1, err, sizeof(err)), TOPIC_CONFIG_INVALID);
        cr_assert_not_null(strstr(err, "key=value"), "%s", err);

        /* An empty value is a value: refused for numbers, the empty list for lists. */
        const char *empty[] = { "cleanup.policy=" };
        cr_assert_eq(topic_config_build(&t, &base, empty, 1, err, sizeof(err)), 0);
        cr_assert(!t.is_cleanup_compact && !t.is_cleanup_delete);
        topic_config_base_free(&base);
}
