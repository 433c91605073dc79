/*
 * topic_config.c - the topic config definitions, their validation, and the
 * layered build of struct topic_config; see topic_config.h for the contract.
 *
 * Invariants:
 *  - topic_defs[] is indexed by enum topic_config_key and sorted by name;
 *    every entry's default passes its own validation (test_topic_config.c
 *    checks both).
 *  - A value is stored into a struct topic_config only after
 *    config_def_check() accepted it, so topic_config_store() never fails.
 *  - Defaults and ranges are Kafka 4.x's (LogConfig, ServerLogConfigs,
 *    ServerTopicConfigSynonyms); the documentation strings are our own.
 */
#include "topic_config.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MS_PER_MINUTE 60000LL
#define MS_PER_HOUR 3600000LL

#define ANY_INT .int_min = INT64_MIN, .int_max = INT64_MAX
#define AT_LEAST(n) .int_min = (n), .int_max = INT64_MAX
#define BETWEEN(lo, hi) .int_min = (lo), .int_max = (hi)

/* ---- value parsing ---- */

static const char *skip_space(const char *p)
{
        while (*p && isspace((unsigned char)*p))
                p++;
        return p;
}

/* Length of text with trailing whitespace removed. */
static size_t trimmed_len(const char *text, size_t len)
{
        while (len > 0 && isspace((unsigned char)text[len - 1]))
                len--;
        return len;
}

static void set_err(char *err, size_t err_len, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
        if (!err || err_len == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
}

int config_parse_int64(const char *text, int64_t *out)
{
        assert(text);
        assert(out);
        const char *p = skip_space(text);
        const char *digits = (*p == '+' || *p == '-') ? p + 1 : p;
        if (!isdigit((unsigned char)*digits))
                return -EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        int saved = errno;
        if (*skip_space(end) != '\0')
                return -EINVAL;
        if (saved == ERANGE)
                return -ERANGE;
        *out = v;
        return 0;
}

int config_parse_bool(const char *text, bool *out)
{
        assert(text);
        assert(out);
        const char *p = skip_space(text);
        size_t len = trimmed_len(p, strlen(p));
        if (len == 4 && strncasecmp(p, "true", 4) == 0) {
                *out = true;
                return 0;
        }
        if (len == 5 && strncasecmp(p, "false", 5) == 0) {
                *out = false;
                return 0;
        }
        return -EINVAL;
}

int config_parse_double(const char *text, double *out)
{
        assert(text);
        assert(out);
        const char *p = skip_space(text);
        size_t len = trimmed_len(p, strlen(p));
        if (len == 0)
                return -EINVAL;
        /* Decimal notation only: strtod would also take "nan", "inf" and hex. */
        for (size_t i = 0; i < len; i++) {
                if (!strchr("0123456789+-.eE", p[i]))
                        return -EINVAL;
        }
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end != p + len)
                return -EINVAL;
        if (!isfinite(v))
                return -ERANGE;
        *out = v;
        return 0;
}

void config_list_start(struct config_list_iter *it, const char *text)
{
        assert(it);
        assert(text);
        it->next = *skip_space(text) ? text : NULL;
}

bool config_list_next(struct config_list_iter *it, const char **item, size_t *item_len)
{
        assert(it);
        assert(item && item_len);
        if (!it->next)
                return false;
        const char *p = skip_space(it->next);
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        *item = p;
        *item_len = trimmed_len(p, len);
        it->next = comma ? comma + 1 : NULL;
        return true;
}

/* ---- validation ---- */

static bool is_valid_value(const struct config_def *def, const char *s, size_t len)
{
        assert(def->valid_values);
        for (const char *const *v = def->valid_values; *v; v++) {
                if (strlen(*v) == len && memcmp(*v, s, len) == 0)
                        return true;
        }
        return false;
}

/* "a, b, c" for messages. */
static void format_valid_values(const struct config_def *def, char *buf, size_t len)
{
        size_t used = 0;
        buf[0] = '\0';
        for (const char *const *v = def->valid_values; *v && used < len; v++) {
                int n = snprintf(buf + used, len - used, "%s%s", v == def->valid_values ? "" : ", ", *v);
                if (n < 0)
                        break;
                used += (size_t)n;
        }
}

static int check_integer(const struct config_def *def, const char *shown_name, const char *value,
                         char *err, size_t err_len)
{
        int64_t type_min = INT64_MIN, type_max = INT64_MAX;
        const char *type_word = "a 64-bit integer";
        if (def->type == CONFIG_TYPE_INT) {
                type_min = INT32_MIN;
                type_max = INT32_MAX;
                type_word = "a 32-bit integer";
        } else if (def->type == CONFIG_TYPE_SHORT) {
                type_min = INT16_MIN;
                type_max = INT16_MAX;
                type_word = "a 16-bit integer";
        }
        assert(def->int_min <= def->int_max);

        int64_t v;
        int rc = config_parse_int64(value, &v);
        if (rc == -EINVAL) {
                set_err(err, err_len, "invalid value '%s' for %s: not an integer", value, shown_name);
                return -EINVAL;
        }
        if (rc == -ERANGE || v < type_min || v > type_max) {
                set_err(err, err_len, "invalid value '%s' for %s: not %s", value, shown_name, type_word);
                return -EINVAL;
        }
        int64_t lo = def->int_min > type_min ? def->int_min : type_min;
        int64_t hi = def->int_max < type_max ? def->int_max : type_max;
        if (v >= lo && v <= hi)
                return 0;
        if (lo > type_min && hi < type_max)
                set_err(err, err_len, "invalid value '%s' for %s: must be between %" PRId64 " and %" PRId64,
                        value, shown_name, lo, hi);
        else if (lo > type_min)
                set_err(err, err_len, "invalid value '%s' for %s: must be at least %" PRId64,
                        value, shown_name, lo);
        else
                set_err(err, err_len, "invalid value '%s' for %s: must be at most %" PRId64,
                        value, shown_name, hi);
        return -EINVAL;
}

static int check_double(const struct config_def *def, const char *shown_name, const char *value,
                        char *err, size_t err_len)
{
        assert(def->double_min <= def->double_max);
        double v;
        if (config_parse_double(value, &v) != 0) {
                set_err(err, err_len, "invalid value '%s' for %s: not a number", value, shown_name);
                return -EINVAL;
        }
        if (v < def->double_min || v > def->double_max) {
                set_err(err, err_len, "invalid value '%s' for %s: must be between %g and %g",
                        value, shown_name, def->double_min, def->double_max);
                return -EINVAL;
        }
        return 0;
}

static int check_string(const struct config_def *def, const char *shown_name, const char *value,
                        char *err, size_t err_len)
{
        if (!def->valid_values)
                return 0;
        const char *p = skip_space(value);
        if (is_valid_value(def, p, trimmed_len(p, strlen(p))))
                return 0;
        char allowed[160];
        format_valid_values(def, allowed, sizeof(allowed));
        set_err(err, err_len, "invalid value '%s' for %s: must be one of %s", value, shown_name, allowed);
        return -EINVAL;
}

static int check_list(const struct config_def *def, const char *shown_name, const char *value,
                      char *err, size_t err_len)
{
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        config_list_start(&it, value);
        while (config_list_next(&it, &item, &item_len)) {
                if (item_len == 0) {
                        set_err(err, err_len, "invalid value '%s' for %s: empty list item",
                                value, shown_name);
                        return -EINVAL;
                }
                if (def->valid_values && !is_valid_value(def, item, item_len)) {
                        char allowed[160];
                        format_valid_values(def, allowed, sizeof(allowed));
                        set_err(err, err_len, "invalid value '%s' for %s: '%.*s' is not one of %s",
                                value, shown_name, (int)item_len, item, allowed);
                        return -EINVAL;
                }
        }
        return 0;
}

static int check_value(const struct config_def *def, const char *shown_name, const char *value,
                       char *err, size_t err_len)
{
        assert(def && def->name);
        assert(shown_name);
        if (!value) {
                set_err(err, err_len, "%s needs a value, not null", shown_name);
                return -EINVAL;
        }
        int rc;
        switch (def->type) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_SHORT:
        case CONFIG_TYPE_LONG:
                rc = check_integer(def, shown_name, value, err, err_len);
                break;
        case CONFIG_TYPE_DOUBLE:
                rc = check_double(def, shown_name, value, err, err_len);
                break;
        case CONFIG_TYPE_BOOLEAN: {
                bool b;
                rc = config_parse_bool(value, &b);
                if (rc)
                        set_err(err, err_len, "invalid value '%s' for %s: not true or false",
                                value, shown_name);
                break;
        }
        case CONFIG_TYPE_STRING:
        case CONFIG_TYPE_CLASS:
        case CONFIG_TYPE_PASSWORD:
                rc = check_string(def, shown_name, value, err, err_len);
                break;
        case CONFIG_TYPE_LIST:
                rc = check_list(def, shown_name, value, err, err_len);
                break;
        default:
                assert(!"config_def with unknown type");
                rc = -EINVAL;
        }
        if (rc == 0 && def->check)
                rc = def->check(def, shown_name, value, err, err_len);
        return rc ? -EINVAL : 0;
}

int config_def_check(const struct config_def *def, const char *value, char *err, size_t err_len)
{
        return check_value(def, def->name, value, err, err_len);
}

/* gzip takes 1..9, or -1 for zlib's own default; 0 (store) is refused as Kafka does. */
static int check_gzip_level(const struct config_def *def, const char *shown_name, const char *value,
                            char *err, size_t err_len)
{
        int64_t v;
        int rc = config_parse_int64(value, &v);
        assert(rc == 0);
        (void)rc;
        if (v == -1 || (v >= 1 && v <= 9))
                return 0;
        set_err(err, err_len, "invalid value '%s' for %s: must be -1 (zlib's default) or between 1 and 9",
                value, shown_name);
        return -EINVAL;
}

static bool is_all_digits(const char *s, size_t len)
{
        if (len == 0)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (!isdigit((unsigned char)s[i]))
                        return false;
        }
        return true;
}

/* "*" alone, or items "<partition>:<broker id>". */
static int check_throttled_replicas(const struct config_def *def, const char *shown_name,
                                    const char *value, char *err, size_t err_len)
{
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        size_t count = 0;
        bool has_wildcard = false;
        config_list_start(&it, value);
        while (config_list_next(&it, &item, &item_len)) {
                count++;
                if (item_len == 1 && item[0] == '*') {
                        has_wildcard = true;
                        continue;
                }
                const char *colon = memchr(item, ':', item_len);
                if (!colon || !is_all_digits(item, (size_t)(colon - item)) ||
                    !is_all_digits(colon + 1, item_len - (size_t)(colon - item) - 1)) {
                        set_err(err, err_len,
                                "invalid value '%s' for %s: '%.*s' is not <partition>:<broker id>",
                                value, shown_name, (int)item_len, item);
                        return -EINVAL;
                }
        }
        if (has_wildcard && count > 1) {
                set_err(err, err_len, "invalid value '%s' for %s: '*' must be the only item",
                        value, shown_name);
                return -EINVAL;
        }
        return 0;
}

/* ---- the table ---- */

static const char *const cleanup_policies[] = { "compact", "delete", NULL };
static const char *const compression_types[] = {
        "uncompressed", "zstd", "lz4", "snappy", "gzip", "producer", NULL
};
static const char *const timestamp_types[] = { "CreateTime", "LogAppendTime", NULL };

#define LONG_MAX_TEXT "9223372036854775807"

static const struct config_def topic_defs[TOPIC_CONFIG_COUNT] = {
        [TOPIC_CONFIG_CLEANUP_POLICY] = {
                .name = "cleanup.policy", .type = CONFIG_TYPE_LIST, .default_text = "delete",
                .valid_values = cleanup_policies,
                .doc = "What happens to old segments: delete drops them past retention, "
                       "compact keeps the latest record per key; both may be listed.",
                .synonyms = { { "log.cleanup.policy", 1 } },
        },
        [TOPIC_CONFIG_COMPRESSION_GZIP_LEVEL] = {
                .name = "compression.gzip.level", .type = CONFIG_TYPE_INT, .default_text = "-1",
                BETWEEN(-1, 9), .check = check_gzip_level,
                .doc = "Level used when the broker itself compresses with gzip; -1 lets zlib choose.",
                .synonyms = { { "compression.gzip.level", 1 } },
        },
        [TOPIC_CONFIG_COMPRESSION_LZ4_LEVEL] = {
                .name = "compression.lz4.level", .type = CONFIG_TYPE_INT, .default_text = "9",
                BETWEEN(1, 17),
                .doc = "Level used when the broker itself compresses with lz4.",
                .synonyms = { { "compression.lz4.level", 1 } },
        },
        [TOPIC_CONFIG_COMPRESSION_TYPE] = {
                .name = "compression.type", .type = CONFIG_TYPE_STRING, .default_text = "producer",
                .valid_values = compression_types,
                .doc = "Codec batches are stored with; producer keeps "
                       "each batch as the producer compressed it.",
                .synonyms = { { "compression.type", 1 } },
        },
        [TOPIC_CONFIG_COMPRESSION_ZSTD_LEVEL] = {
                .name = "compression.zstd.level", .type = CONFIG_TYPE_INT, .default_text = "3",
                BETWEEN(-131072, 22),
                .doc = "Level used when the broker itself compresses with zstd.",
                .synonyms = { { "compression.zstd.level", 1 } },
        },
        [TOPIC_CONFIG_DELETE_RETENTION_MS] = {
                .name = "delete.retention.ms", .type = CONFIG_TYPE_LONG, .default_text = "86400000",
                AT_LEAST(0),
                .doc = "How long a compacted topic keeps tombstones, so a "
                       "reader starting from the beginning still sees deletes.",
                .synonyms = { { "log.cleaner.delete.retention.ms", 1 } },
        },
        [TOPIC_CONFIG_ERRORS_DEADLETTERQUEUE_GROUP_ENABLE] = {
                .name = "errors.deadletterqueue.group.enable", .type = CONFIG_TYPE_BOOLEAN,
                .default_text = "false",
                .doc = "Whether a group's dead-letter queue may be this topic (Kafka 4.4); "
                       "accepted, no effect in runnel.",
        },
        [TOPIC_CONFIG_FILE_DELETE_DELAY_MS] = {
                .name = "file.delete.delay.ms", .type = CONFIG_TYPE_LONG, .default_text = "60000",
                AT_LEAST(0),
                .doc = "Grace period between a segment leaving the log and its files being unlinked.",
                .synonyms = { { "log.segment.delete.delay.ms", 1 } },
        },
        [TOPIC_CONFIG_FLUSH_MESSAGES] = {
                .name = "flush.messages", .type = CONFIG_TYPE_LONG, .default_text = LONG_MAX_TEXT,
                AT_LEAST(1),
                .doc = "Force an fsync after this many appended records; "
                       "the default leaves flushing to the OS and acks=all.",
                .synonyms = { { "log.flush.interval.messages", 1 } },
        },
        [TOPIC_CONFIG_FLUSH_MS] = {
                .name = "flush.ms", .type = CONFIG_TYPE_LONG, .default_text = LONG_MAX_TEXT,
                AT_LEAST(0),
                .doc = "Force an fsync when unflushed data is this old; the default never forces one.",
                .synonyms = { { "log.flush.interval.ms", 1 }, { "log.flush.scheduler.interval.ms", 1 } },
        },
        [TOPIC_CONFIG_FOLLOWER_REPLICATION_THROTTLED_REPLICAS] = {
                .name = "follower.replication.throttled.replicas", .type = CONFIG_TYPE_LIST,
                .default_text = "", .check = check_throttled_replicas,
                .doc = "Replicas (partition:broker, or *) whose follower-side "
                       "fetching is throttled; accepted, no effect on one node.",
        },
        [TOPIC_CONFIG_INDEX_INTERVAL_BYTES] = {
                .name = "index.interval.bytes", .type = CONFIG_TYPE_INT, .default_text = "4096",
                AT_LEAST(0),
                .doc = "Bytes of log between two entries of the sparse offset and time indexes.",
                .synonyms = { { "log.index.interval.bytes", 1 } },
        },
        [TOPIC_CONFIG_LEADER_REPLICATION_THROTTLED_REPLICAS] = {
                .name = "leader.replication.throttled.replicas", .type = CONFIG_TYPE_LIST,
                .default_text = "", .check = check_throttled_replicas,
                .doc = "Replicas (partition:broker, or *) whose leader-side serving "
                       "to followers is throttled; accepted, no effect on one node.",
        },
        [TOPIC_CONFIG_LOCAL_RETENTION_BYTES] = {
                .name = "local.retention.bytes", .type = CONFIG_TYPE_LONG, .default_text = "-2",
                AT_LEAST(-2),
                .doc = "With tiered storage, the local share of "
                       "retention.bytes; -2 means the same as retention.bytes.",
                .synonyms = { { "log.local.retention.bytes", 1 } },
        },
        [TOPIC_CONFIG_LOCAL_RETENTION_MS] = {
                .name = "local.retention.ms", .type = CONFIG_TYPE_LONG, .default_text = "-2",
                AT_LEAST(-2),
                .doc = "With tiered storage, the local share of "
                       "retention.ms; -2 means the same as retention.ms.",
                .synonyms = { { "log.local.retention.ms", 1 } },
        },
        [TOPIC_CONFIG_MAX_COMPACTION_LAG_MS] = {
                .name = "max.compaction.lag.ms", .type = CONFIG_TYPE_LONG, .default_text = LONG_MAX_TEXT,
                AT_LEAST(1),
                .doc = "Longest a record may wait before its segment becomes eligible for compaction.",
                .synonyms = { { "log.cleaner.max.compaction.lag.ms", 1 } },
        },
        [TOPIC_CONFIG_MAX_MESSAGE_BYTES] = {
                .name = "max.message.bytes", .type = CONFIG_TYPE_INT, .default_text = "1048588",
                AT_LEAST(0),
                .doc = "Largest record batch, after compression, the topic accepts from a producer.",
                .synonyms = { { "message.max.bytes", 1 } },
        },
        [TOPIC_CONFIG_MESSAGE_TIMESTAMP_AFTER_MAX_MS] = {
                .name = "message.timestamp.after.max.ms", .type = CONFIG_TYPE_LONG, .default_text = "3600000",
                AT_LEAST(0),
                .doc = "With CreateTime, how far into the future of "
                       "the broker clock a record timestamp may be.",
                .synonyms = { { "log.message.timestamp.after.max.ms", 1 } },
        },
        [TOPIC_CONFIG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS] = {
                .name = "message.timestamp.before.max.ms", .type = CONFIG_TYPE_LONG,
                .default_text = LONG_MAX_TEXT,
                AT_LEAST(0),
                .doc = "With CreateTime, how far behind the broker clock a record timestamp may be.",
                .synonyms = { { "log.message.timestamp.before.max.ms", 1 } },
        },
        [TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE] = {
                .name = "message.timestamp.type", .type = CONFIG_TYPE_STRING, .default_text = "CreateTime",
                .valid_values = timestamp_types,
                .doc = "Whether stored records keep the producer's timestamp "
                       "(CreateTime) or get the broker's (LogAppendTime).",
                .synonyms = { { "log.message.timestamp.type", 1 } },
        },
        [TOPIC_CONFIG_MIN_CLEANABLE_DIRTY_RATIO] = {
                .name = "min.cleanable.dirty.ratio", .type = CONFIG_TYPE_DOUBLE, .default_text = "0.5",
                .double_min = 0.0, .double_max = 1.0,
                .doc = "Share of not-yet-compacted log above which the compactor considers the partition.",
                .synonyms = { { "log.cleaner.min.cleanable.ratio", 1 } },
        },
        [TOPIC_CONFIG_MIN_COMPACTION_LAG_MS] = {
                .name = "min.compaction.lag.ms", .type = CONFIG_TYPE_LONG, .default_text = "0",
                AT_LEAST(0),
                .doc = "Shortest time a record stays uncompacted.",
                .synonyms = { { "log.cleaner.min.compaction.lag.ms", 1 } },
        },
        [TOPIC_CONFIG_MIN_INSYNC_REPLICAS] = {
                .name = "min.insync.replicas", .type = CONFIG_TYPE_INT, .default_text = "1",
                AT_LEAST(1),
                .doc = "In-sync replicas, leader included, an acks=all produce needs before it succeeds.",
                .synonyms = { { "min.insync.replicas", 1 } },
        },
        [TOPIC_CONFIG_PREALLOCATE] = {
                .name = "preallocate", .type = CONFIG_TYPE_BOOLEAN, .default_text = "false",
                .doc = "Reserve a segment's full size on disk when it is created.",
                .synonyms = { { "log.preallocate", 1 } },
        },
        [TOPIC_CONFIG_REMOTE_COPY_LAG_BYTES] = {
                .name = "remote.copy.lag.bytes", .type = CONFIG_TYPE_LONG, .default_text = "-1",
                AT_LEAST(-1),
                .doc = "With tiered storage, bytes a segment waits locally before its "
                       "upload; runnel has no tiered storage.",
                .synonyms = { { "log.remote.copy.lag.bytes", 1 } },
        },
        [TOPIC_CONFIG_REMOTE_COPY_LAG_MS] = {
                .name = "remote.copy.lag.ms", .type = CONFIG_TYPE_LONG, .default_text = "0",
                AT_LEAST(-1),
                .doc = "With tiered storage, time a segment waits locally before its "
                       "upload; runnel has no tiered storage.",
                .synonyms = { { "log.remote.copy.lag.ms", 1 } },
        },
        [TOPIC_CONFIG_REMOTE_LOG_COPY_DISABLE] = {
                .name = "remote.log.copy.disable", .type = CONFIG_TYPE_BOOLEAN, .default_text = "false",
                .doc = "With tiered storage, stop uploading new segments and keep the remote ones read-only.",
        },
        [TOPIC_CONFIG_REMOTE_LOG_DELETE_ON_DISABLE] = {
                .name = "remote.log.delete.on.disable", .type = CONFIG_TYPE_BOOLEAN, .default_text = "false",
                .doc = "With tiered storage, delete the remote copy "
                       "when tiering is switched off for the topic.",
        },
        [TOPIC_CONFIG_REMOTE_STORAGE_ENABLE] = {
                .name = "remote.storage.enable", .type = CONFIG_TYPE_BOOLEAN, .default_text = "false",
                .doc = "Tier old segments to remote storage; runnel has "
                       "no tiered storage and keeps everything local.",
        },
        [TOPIC_CONFIG_RETENTION_BYTES] = {
                .name = "retention.bytes", .type = CONFIG_TYPE_LONG, .default_text = "-1",
                ANY_INT,
                .doc = "Per-partition size past which the oldest "
                       "segments are deleted; -1 means no size limit.",
                .synonyms = { { "log.retention.bytes", 1 } },
        },
        [TOPIC_CONFIG_RETENTION_MS] = {
                .name = "retention.ms", .type = CONFIG_TYPE_LONG, .default_text = "604800000",
                AT_LEAST(-1),
                .doc = "Age past which segments are deleted; -1 means no time limit.",
                .synonyms = {
                        { "log.retention.ms", 1 },
                        { "log.retention.minutes", MS_PER_MINUTE },
                        { "log.retention.hours", MS_PER_HOUR },
                },
        },
        [TOPIC_CONFIG_SEGMENT_BYTES] = {
                .name = "segment.bytes", .type = CONFIG_TYPE_INT, .default_text = "1073741824",
                AT_LEAST(1048576),
                .doc = "Size at which the active segment is closed and a new one started.",
                .synonyms = { { "log.segment.bytes", 1 } },
        },
        [TOPIC_CONFIG_SEGMENT_INDEX_BYTES] = {
                .name = "segment.index.bytes", .type = CONFIG_TYPE_INT, .default_text = "10485760",
                AT_LEAST(4),
                .doc = "Space reserved for a segment's offset and time "
                       "index files; a full index rolls the segment.",
                .synonyms = { { "log.index.size.max.bytes", 1 } },
        },
        [TOPIC_CONFIG_SEGMENT_JITTER_MS] = {
                .name = "segment.jitter.ms", .type = CONFIG_TYPE_LONG, .default_text = "0",
                AT_LEAST(0),
                .doc = "Random amount up to which segment.ms is "
                       "shortened, so partitions do not all roll at once.",
                .synonyms = {
                        { "log.roll.jitter.ms", 1 },
                        { "log.roll.jitter.hours", MS_PER_HOUR },
                },
        },
        [TOPIC_CONFIG_SEGMENT_MS] = {
                .name = "segment.ms", .type = CONFIG_TYPE_LONG, .default_text = "604800000",
                AT_LEAST(1),
                .doc = "Age at which the active segment is closed "
                       "even if not full, so retention can act on it.",
                .synonyms = {
                        { "log.roll.ms", 1 },
                        { "log.roll.hours", MS_PER_HOUR },
                },
        },
        [TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE] = {
                .name = "unclean.leader.election.enable", .type = CONFIG_TYPE_BOOLEAN,
                .default_text = "false",
                .doc = "Allow an out-of-sync replica to become leader when no "
                       "in-sync one is left, at the cost of losing records.",
                .synonyms = { { "unclean.leader.election.enable", 1 } },
        },
};

/* ---- lookup ---- */

const struct config_def *topic_config_def(enum topic_config_key key)
{
        assert((unsigned)key < TOPIC_CONFIG_COUNT);
        assert(topic_defs[key].name);
        return &topic_defs[key];
}

enum topic_config_key topic_config_key_of(const struct config_def *def)
{
        assert(def >= topic_defs && def < topic_defs + TOPIC_CONFIG_COUNT);
        return (enum topic_config_key)(def - topic_defs);
}

/* Binary search: topic_defs is sorted by name (asserted by the tests). */
const struct config_def *topic_config_find_n(const char *name, size_t name_len)
{
        assert(name || name_len == 0);
        if (name_len == 0)
                return NULL;    /* no key is empty; also keeps NULL away from memcmp */
        size_t lo = 0, hi = TOPIC_CONFIG_COUNT;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                const char *key = topic_defs[mid].name;
                size_t key_len = strlen(key);
                int c = memcmp(key, name, key_len < name_len ? key_len : name_len);
                if (c == 0)
                        c = key_len < name_len ? -1 : key_len > name_len ? 1 : 0;
                if (c == 0)
                        return &topic_defs[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const struct config_def *topic_config_find(const char *name)
{
        assert(name);
        return topic_config_find_n(name, strlen(name));
}

int topic_config_validate(const char *name, const char *value, char *err, size_t err_len)
{
        assert(name);
        const struct config_def *def = topic_config_find(name);
        if (!def) {
                set_err(err, err_len, "unknown topic config '%s'", name);
                return TOPIC_CONFIG_INVALID;
        }
        return config_def_check(def, value, err, err_len) ? TOPIC_CONFIG_INVALID : 0;
}

/* ---- the typed struct ---- */

static enum topic_compression parse_compression(const char *s, size_t len)
{
        static const struct {
                const char *name;
                enum topic_compression codec;
        } map[] = {
                { "producer", TOPIC_COMPRESSION_PRODUCER },
                { "uncompressed", TOPIC_COMPRESSION_UNCOMPRESSED },
                { "gzip", TOPIC_COMPRESSION_GZIP },
                { "snappy", TOPIC_COMPRESSION_SNAPPY },
                { "lz4", TOPIC_COMPRESSION_LZ4 },
                { "zstd", TOPIC_COMPRESSION_ZSTD },
        };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
                if (strlen(map[i].name) == len && memcmp(map[i].name, s, len) == 0)
                        return map[i].codec;
        }
        assert(!"compression.type passed validation but is unknown");
        return TOPIC_COMPRESSION_PRODUCER;
}

/* Stores an already validated value into its typed field. */
static void topic_config_store(struct topic_config *cfg, enum topic_config_key key, const char *value)
{
        const struct config_def *def = topic_config_def(key);
        int64_t i = 0;
        bool b = false;
        double d = 0;
        int rc = 0;
        switch (def->type) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_LONG:
                rc = config_parse_int64(value, &i);
                break;
        case CONFIG_TYPE_BOOLEAN:
                rc = config_parse_bool(value, &b);
                break;
        case CONFIG_TYPE_DOUBLE:
                rc = config_parse_double(value, &d);
                break;
        default:
                break;
        }
        assert(rc == 0);
        (void)rc;
        assert(def->type != CONFIG_TYPE_INT || (i >= INT32_MIN && i <= INT32_MAX));

        const char *s = skip_space(value);
        size_t s_len = trimmed_len(s, strlen(s));

        switch (key) {
        case TOPIC_CONFIG_CLEANUP_POLICY: {
                struct config_list_iter it;
                const char *item;
                size_t item_len;
                cfg->is_cleanup_delete = false;
                cfg->is_cleanup_compact = false;
                config_list_start(&it, value);
                while (config_list_next(&it, &item, &item_len)) {
                        if (item_len == 6 && memcmp(item, "delete", 6) == 0)
                                cfg->is_cleanup_delete = true;
                        else if (item_len == 7 && memcmp(item, "compact", 7) == 0)
                                cfg->is_cleanup_compact = true;
                        else
                                assert(!"cleanup.policy passed validation with an unknown item");
                }
                break;
        }
        case TOPIC_CONFIG_COMPRESSION_GZIP_LEVEL: cfg->compression_gzip_level = (int32_t)i; break;
        case TOPIC_CONFIG_COMPRESSION_LZ4_LEVEL: cfg->compression_lz4_level = (int32_t)i; break;
        case TOPIC_CONFIG_COMPRESSION_TYPE: cfg->compression_type = parse_compression(s, s_len); break;
        case TOPIC_CONFIG_COMPRESSION_ZSTD_LEVEL: cfg->compression_zstd_level = (int32_t)i; break;
        case TOPIC_CONFIG_DELETE_RETENTION_MS: cfg->delete_retention_ms = i; break;
        case TOPIC_CONFIG_ERRORS_DEADLETTERQUEUE_GROUP_ENABLE: cfg->is_errors_deadletterqueue_group_enabled = b; break;
        case TOPIC_CONFIG_FILE_DELETE_DELAY_MS: cfg->file_delete_delay_ms = i; break;
        case TOPIC_CONFIG_FLUSH_MESSAGES: cfg->flush_messages = i; break;
        case TOPIC_CONFIG_FLUSH_MS: cfg->flush_ms = i; break;
        case TOPIC_CONFIG_FOLLOWER_REPLICATION_THROTTLED_REPLICAS: break;
        case TOPIC_CONFIG_INDEX_INTERVAL_BYTES: cfg->index_interval_bytes = (int32_t)i; break;
        case TOPIC_CONFIG_LEADER_REPLICATION_THROTTLED_REPLICAS: break;
        case TOPIC_CONFIG_LOCAL_RETENTION_BYTES: cfg->local_retention_bytes = i; break;
        case TOPIC_CONFIG_LOCAL_RETENTION_MS: cfg->local_retention_ms = i; break;
        case TOPIC_CONFIG_MAX_COMPACTION_LAG_MS: cfg->max_compaction_lag_ms = i; break;
        case TOPIC_CONFIG_MAX_MESSAGE_BYTES: cfg->max_message_bytes = (int32_t)i; break;
        case TOPIC_CONFIG_MESSAGE_TIMESTAMP_AFTER_MAX_MS: cfg->message_timestamp_after_max_ms = i; break;
        case TOPIC_CONFIG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS: cfg->message_timestamp_before_max_ms = i; break;
        case TOPIC_CONFIG_MESSAGE_TIMESTAMP_TYPE:
                cfg->message_timestamp_type = (s_len == 13 && memcmp(s, "LogAppendTime", 13) == 0)
                                                      ? TOPIC_TIMESTAMP_LOG_APPEND_TIME
                                                      : TOPIC_TIMESTAMP_CREATE_TIME;
                break;
        case TOPIC_CONFIG_MIN_CLEANABLE_DIRTY_RATIO: cfg->min_cleanable_dirty_ratio = d; break;
        case TOPIC_CONFIG_MIN_COMPACTION_LAG_MS: cfg->min_compaction_lag_ms = i; break;
        case TOPIC_CONFIG_MIN_INSYNC_REPLICAS: cfg->min_insync_replicas = (int32_t)i; break;
        case TOPIC_CONFIG_PREALLOCATE: cfg->is_preallocated = b; break;
        case TOPIC_CONFIG_REMOTE_COPY_LAG_BYTES: cfg->remote_copy_lag_bytes = i; break;
        case TOPIC_CONFIG_REMOTE_COPY_LAG_MS: cfg->remote_copy_lag_ms = i; break;
        case TOPIC_CONFIG_REMOTE_LOG_COPY_DISABLE: cfg->is_remote_log_copy_disabled = b; break;
        case TOPIC_CONFIG_REMOTE_LOG_DELETE_ON_DISABLE: cfg->is_remote_log_deleted_on_disable = b; break;
        case TOPIC_CONFIG_REMOTE_STORAGE_ENABLE: cfg->is_remote_storage_enabled = b; break;
        case TOPIC_CONFIG_RETENTION_BYTES: cfg->retention_bytes = i; break;
        case TOPIC_CONFIG_RETENTION_MS: cfg->retention_ms = i; break;
        case TOPIC_CONFIG_SEGMENT_BYTES: cfg->segment_bytes = (int32_t)i; break;
        case TOPIC_CONFIG_SEGMENT_INDEX_BYTES: cfg->segment_index_bytes = (int32_t)i; break;
        case TOPIC_CONFIG_SEGMENT_JITTER_MS: cfg->segment_jitter_ms = i; break;
        case TOPIC_CONFIG_SEGMENT_MS: cfg->segment_ms = i; break;
        case TOPIC_CONFIG_UNCLEAN_LEADER_ELECTION_ENABLE: cfg->is_unclean_leader_election_enabled = b; break;
        case TOPIC_CONFIG_COUNT:
        default:
                assert(!"topic config key out of range");
        }
}

void topic_config_init_defaults(struct topic_config *cfg)
{
        assert(cfg);
        memset(cfg, 0, sizeof(*cfg));
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                assert(config_def_check(&topic_defs[k], topic_defs[k].default_text, NULL, 0) == 0);
                topic_config_store(cfg, (enum topic_config_key)k, topic_defs[k].default_text);
        }
}

static int apply_def(struct topic_config *cfg, const struct config_def *def, const char *value,
                     char *err, size_t err_len)
{
        if (config_def_check(def, value, err, err_len))
                return TOPIC_CONFIG_INVALID;
        topic_config_store(cfg, topic_config_key_of(def), value);
        return 0;
}

int topic_config_apply(struct topic_config *cfg, const char *name, const char *value,
                       char *err, size_t err_len)
{
        assert(cfg);
        assert(name);
        const struct config_def *def = topic_config_find(name);
        if (!def) {
                set_err(err, err_len, "unknown topic config '%s'", name);
                return TOPIC_CONFIG_INVALID;
        }
        return apply_def(cfg, def, value, err, err_len);
}

int topic_config_build(struct topic_config *out, const struct topic_config_base *base,
                       const char *const *overrides, size_t override_count,
                       char *err, size_t err_len)
{
        assert(out);
        assert(base);
        assert(overrides || override_count == 0);
        struct topic_config cfg = base->config;
        for (size_t i = 0; i < override_count; i++) {
                const char *kv = overrides[i];
                assert(kv);
                const char *eq = strchr(kv, '=');
                if (!eq) {
                        set_err(err, err_len, "topic config override '%s' is not key=value", kv);
                        return TOPIC_CONFIG_INVALID;
                }
                const struct config_def *def = topic_config_find_n(kv, (size_t)(eq - kv));
                if (!def) {
                        set_err(err, err_len, "unknown topic config '%.*s'", (int)(eq - kv), kv);
                        return TOPIC_CONFIG_INVALID;
                }
                int rc = apply_def(&cfg, def, eq + 1, err, err_len);
                if (rc)
                        return rc;
        }
        *out = cfg;
        return 0;
}

/* ---- defaults <- broker ---- */

/*
 * The text DescribeConfigs shows for a valid value: integers in decimal,
 * booleans as true/false, list items joined by commas, anything else
 * trimmed. Returns a malloc'd string or NULL on allocation failure.
 */
static char *normalize_value(const struct config_def *def, const char *value)
{
        int64_t i;
        bool b;
        switch (def->type) {
        case CONFIG_TYPE_INT:
        case CONFIG_TYPE_SHORT:
        case CONFIG_TYPE_LONG: {
                char buf[24];
                int rc = config_parse_int64(value, &i);
                assert(rc == 0);
                (void)rc;
                snprintf(buf, sizeof(buf), "%" PRId64, i);
                return strdup(buf);
        }
        case CONFIG_TYPE_BOOLEAN: {
                int rc = config_parse_bool(value, &b);
                assert(rc == 0);
                (void)rc;
                return strdup(b ? "true" : "false");
        }
        case CONFIG_TYPE_LIST: {
                char *out = malloc(strlen(value) + 1);
                if (!out)
                        return NULL;
                size_t used = 0;
                struct config_list_iter it;
                const char *item;
                size_t item_len;
                config_list_start(&it, value);
                while (config_list_next(&it, &item, &item_len)) {
                        if (used > 0)
                                out[used++] = ',';
                        memcpy(out + used, item, item_len);
                        used += item_len;
                }
                assert(used <= strlen(value));
                out[used] = '\0';
                return out;
        }
        default: {
                const char *s = skip_space(value);
                return strndup(s, trimmed_len(s, strlen(s)));
        }
        }
}

/*
 * Converts a broker synonym's value to the topic key's unit. Writes the
 * converted text into buf (or points *text at value when no conversion is
 * needed). Returns 0 or -EINVAL.
 */
static int convert_synonym(enum topic_config_key key, const struct config_synonym *syn,
                           const char *value, const char **text, char *buf, size_t buf_len,
                           char *err, size_t err_len)
{
        assert(syn->factor >= 1);
        *text = value;
        bool is_retention = key == TOPIC_CONFIG_RETENTION_MS;
        if (syn->factor == 1 && !is_retention)
                return 0;

        int64_t v;
        if (config_parse_int64(value, &v) != 0) {
                set_err(err, err_len, "invalid value '%s' for %s: not an integer", value, syn->name);
                return -EINVAL;
        }
        int64_t ms;
        if (__builtin_mul_overflow(v, syn->factor, &ms)) {
                set_err(err, err_len, "invalid value '%s' for %s: too large once converted to milliseconds",
                        value, syn->name);
                return -EINVAL;
        }
        /* Kafka reads any negative broker retention time as "no limit". */
        if (is_retention && ms < 0)
                ms = -1;
        snprintf(buf, buf_len, "%" PRId64, ms);
        *text = buf;
        return 0;
}

void topic_config_base_free(struct topic_config_base *base)
{
        assert(base);
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                free(base->text[k]);
                base->text[k] = NULL;
        }
}

int topic_config_base_init(struct topic_config_base *base, topic_config_broker_lookup_fn lookup,
                           void *ctx, char *err, size_t err_len)
{
        assert(base);
        assert(lookup);
        memset(base, 0, sizeof(*base));
        topic_config_init_defaults(&base->config);

        int rc = 0;
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                const struct config_def *def = &topic_defs[k];
                const struct config_synonym *used = NULL;
                const char *raw = NULL;
                for (int s = 0; s < CONFIG_SYNONYM_MAX && def->synonyms[s].name; s++) {
                        raw = lookup(ctx, def->synonyms[s].name);
                        if (raw) {
                                used = &def->synonyms[s];
                                break;
                        }
                }
                if (!used) {
                        base->text[k] = strdup(def->default_text);
                        base->source[k] = CONFIG_SOURCE_DEFAULT;
                        if (!base->text[k]) {
                                rc = -ENOMEM;
                                goto out_free;
                        }
                        continue;
                }

                char buf[24];
                const char *text;
                rc = convert_synonym((enum topic_config_key)k, used, raw, &text, buf, sizeof(buf),
                                     err, err_len);
                if (rc)
                        goto out_free;
                rc = check_value(def, used->name, text, err, err_len);
                if (rc)
                        goto out_free;
                base->text[k] = normalize_value(def, text);
                if (!base->text[k]) {
                        rc = -ENOMEM;
                        goto out_free;
                }
                base->source[k] = CONFIG_SOURCE_STATIC_BROKER;
                base->broker_key[k] = used->name;
                topic_config_store(&base->config, (enum topic_config_key)k, text);
        }
        return 0;

out_free:
        if (rc == -ENOMEM)
                set_err(err, err_len, "out of memory resolving topic defaults");
        topic_config_base_free(base);
        return rc;
}
