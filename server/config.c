/*
 * config.c - loads the broker configuration; see config.h for the contract
 * and for where runnel departs from Kafka.
 *
 * Loading is a pipeline over one table, broker_keys[], indexed by enum
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

#define ANY_INT .int_min = INT64_MIN, .int_max = INT64_MAX
#define AT_LEAST(n) .int_min = (n), .int_max = INT64_MAX
#define BETWEEN(lo, hi) .int_min = (lo), .int_max = (hi)

#define LONG_MAX_TEXT "9223372036854775807"
#define INT_MAX_TEXT "2147483647"

struct config_slot {
        char *text;                     /* as configured; NULL: not set */
        enum config_source source;
        uint32_t line;                  /* line in the file; 0: from --override */
};

enum broker_key {
        /* identity and KRaft */
        BK_NODE_ID,
        BK_BROKER_ID,
        BK_BROKER_RACK,
        BK_PROCESS_ROLES,
        BK_CONTROLLER_QUORUM_VOTERS,
        BK_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS,
        BK_CONTROLLER_LISTENER_NAMES,
        BK_INTER_BROKER_LISTENER_NAME,
        /* network */
        BK_LISTENERS,
        BK_ADVERTISED_LISTENERS,
        BK_LISTENER_SECURITY_PROTOCOL_MAP,
        BK_NUM_NETWORK_THREADS,
        BK_NUM_IO_THREADS,
        BK_SOCKET_REQUEST_MAX_BYTES,
        BK_SOCKET_SEND_BUFFER_BYTES,
        BK_SOCKET_RECEIVE_BUFFER_BYTES,
        BK_SOCKET_LISTEN_BACKLOG_SIZE,
        BK_CONNECTIONS_MAX_IDLE_MS,
        BK_MAX_CONNECTIONS,
        BK_MAX_CONNECTIONS_PER_IP,
        BK_QUEUED_MAX_REQUESTS,
        BK_FETCH_MAX_BYTES,
        /* storage */
        BK_LOG_DIRS,
        BK_LOG_DIR,
        BK_NUM_RECOVERY_THREADS_PER_DATA_DIR,
        BK_LOG_RETENTION_CHECK_INTERVAL_MS,
        BK_LOG_FLUSH_SCHEDULER_INTERVAL_MS,
        BK_LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS,
        BK_LOG_FLUSH_START_OFFSET_CHECKPOINT_INTERVAL_MS,
        BK_LOG_CLEANER_ENABLE,
        BK_RUNNEL_LOG_FLUSH_ACKS_ALL,
        BK_LOG_CLEANER_THREADS,
        BK_LOG_CLEANER_BACKOFF_MS,
        BK_LOG_CLEANER_DEDUPE_BUFFER_SIZE,
        BK_LOG_CLEANER_IO_BUFFER_SIZE,
        /* broker-level synonyms of topic configs */
        BK_LOG_SEGMENT_BYTES,
        BK_LOG_ROLL_MS,
        BK_LOG_ROLL_HOURS,
        BK_LOG_ROLL_JITTER_MS,
        BK_LOG_ROLL_JITTER_HOURS,
        BK_LOG_INDEX_SIZE_MAX_BYTES,
        BK_LOG_INDEX_INTERVAL_BYTES,
        BK_LOG_FLUSH_INTERVAL_MESSAGES,
        BK_LOG_FLUSH_INTERVAL_MS,
        BK_LOG_RETENTION_BYTES,
        BK_LOG_RETENTION_MS,
        BK_LOG_RETENTION_MINUTES,
        BK_LOG_RETENTION_HOURS,
        BK_LOG_LOCAL_RETENTION_BYTES,
        BK_LOG_LOCAL_RETENTION_MS,
        BK_LOG_REMOTE_COPY_LAG_BYTES,
        BK_LOG_REMOTE_COPY_LAG_MS,
        BK_LOG_CLEANUP_POLICY,
        BK_LOG_CLEANER_DELETE_RETENTION_MS,
        BK_LOG_CLEANER_MIN_COMPACTION_LAG_MS,
        BK_LOG_CLEANER_MAX_COMPACTION_LAG_MS,
        BK_LOG_CLEANER_MIN_CLEANABLE_RATIO,
        BK_LOG_SEGMENT_DELETE_DELAY_MS,
        BK_LOG_PREALLOCATE,
        BK_LOG_MESSAGE_TIMESTAMP_TYPE,
        BK_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS,
        BK_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS,
        BK_MESSAGE_MAX_BYTES,
        BK_COMPRESSION_TYPE,
        BK_COMPRESSION_GZIP_LEVEL,
        BK_COMPRESSION_LZ4_LEVEL,
        BK_COMPRESSION_ZSTD_LEVEL,
        BK_MIN_INSYNC_REPLICAS,
        BK_UNCLEAN_LEADER_ELECTION_ENABLE,
        /* topics */
        BK_NUM_PARTITIONS,
        BK_DEFAULT_REPLICATION_FACTOR,
        BK_AUTO_CREATE_TOPICS_ENABLE,
        BK_DELETE_TOPIC_ENABLE,
        /* groups */
        BK_GROUP_INITIAL_REBALANCE_DELAY_MS,
        BK_GROUP_MIN_SESSION_TIMEOUT_MS,
        BK_GROUP_MAX_SESSION_TIMEOUT_MS,
        BK_GROUP_MAX_SIZE,
        BK_GROUP_CONSUMER_SESSION_TIMEOUT_MS,
        BK_GROUP_CONSUMER_MIN_SESSION_TIMEOUT_MS,
        BK_GROUP_CONSUMER_MAX_SESSION_TIMEOUT_MS,
        BK_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS,
        BK_GROUP_CONSUMER_MIN_HEARTBEAT_INTERVAL_MS,
        BK_GROUP_CONSUMER_MAX_HEARTBEAT_INTERVAL_MS,
        BK_GROUP_CONSUMER_MAX_SIZE,
        BK_OFFSETS_TOPIC_NUM_PARTITIONS,
        BK_OFFSETS_TOPIC_REPLICATION_FACTOR,
        BK_OFFSETS_TOPIC_SEGMENT_BYTES,
        BK_OFFSETS_RETENTION_MINUTES,
        BK_OFFSETS_RETENTION_CHECK_INTERVAL_MS,
        BK_OFFSETS_COMMIT_TIMEOUT_MS,
        BK_OFFSETS_LOAD_BUFFER_SIZE,
        BK_OFFSET_METADATA_MAX_BYTES,
        /* transactions */
        BK_TRANSACTION_STATE_LOG_NUM_PARTITIONS,
        BK_TRANSACTION_STATE_LOG_REPLICATION_FACTOR,
        BK_TRANSACTION_STATE_LOG_MIN_ISR,
        BK_TRANSACTION_STATE_LOG_SEGMENT_BYTES,
        BK_TRANSACTION_STATE_LOG_LOAD_BUFFER_SIZE,
        BK_TRANSACTIONAL_ID_EXPIRATION_MS,
        BK_TRANSACTION_MAX_TIMEOUT_MS,
        BK_TRANSACTION_ABORT_TIMED_OUT_CLEANUP_INTERVAL_MS,
        BK_TRANSACTION_REMOVE_EXPIRED_CLEANUP_INTERVAL_MS,
        BK_TRANSACTION_PARTITION_VERIFICATION_ENABLE,
        BK_PRODUCER_ID_EXPIRATION_MS,
        BK_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS,
        /* share groups (KIP-932) */
        BK_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR,
        BK_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR,
        BK_COUNT
};

struct broker_key_def {
        struct config_def def;
        const char *unused_note;        /* non-NULL: accepted but unused; said once when set */
};

static const char *const process_roles[] = { "broker", "controller", NULL };
static const char *const cleanup_policies[] = { "compact", "delete", NULL };
static const char *const compression_types[] = {
        "uncompressed", "zstd", "lz4", "snappy", "gzip", "producer", NULL
};
static const char *const timestamp_types[] = { "CreateTime", "LogAppendTime", NULL };

#define NO_QUORUM "a single runnel node has no KRaft quorum"

/* Every broker key is read-only: runnel has no dynamic broker configs yet. */
#define BROKER_KEY(...) { .is_read_only = true, __VA_ARGS__ }

static const struct broker_key_def broker_keys[BK_COUNT] = {
        /* ---- identity and KRaft ---- */
        [BK_NODE_ID] = { BROKER_KEY(
                .name = "node.id", .type = CONFIG_TYPE_INT, .default_text = "1", BETWEEN(0, INT32_MAX),
                .doc = "This broker's id in Metadata responses; runnel "
                       "defaults it to 1 where Kafka requires it.",
        ) },
        [BK_BROKER_ID] = { BROKER_KEY(
                .name = "broker.id", .type = CONFIG_TYPE_INT, .default_text = "-1", BETWEEN(-1, INT32_MAX),
                .doc = "Older name of node.id; -1 means unset, and if both are set they must agree.",
        ) },
        [BK_BROKER_RACK] = { BROKER_KEY(
                .name = "broker.rack", .type = CONFIG_TYPE_STRING,
                .doc = "Rack label this broker reports in Metadata, for rack-aware clients.",
        ) },
        [BK_PROCESS_ROLES] = { BROKER_KEY(
                .name = "process.roles", .type = CONFIG_TYPE_LIST, .default_text = "",
                .valid_values = process_roles,
                .doc = "KRaft roles of the process (broker, controller); "
                       "runnel is always a self-contained broker.",
        ), NO_QUORUM },
        [BK_CONTROLLER_QUORUM_VOTERS] = { BROKER_KEY(
                .name = "controller.quorum.voters", .type = CONFIG_TYPE_LIST, .default_text = "",
                .doc = "Static KRaft voter set as id@host:port; not used by runnel.",
        ), NO_QUORUM },
        [BK_CONTROLLER_QUORUM_BOOTSTRAP_SERVERS] = { BROKER_KEY(
                .name = "controller.quorum.bootstrap.servers", .type = CONFIG_TYPE_LIST, .default_text = "",
                .doc = "Addresses used to discover a dynamic KRaft quorum; not used by runnel.",
        ), NO_QUORUM },
        [BK_CONTROLLER_LISTENER_NAMES] = { BROKER_KEY(
                .name = "controller.listener.names", .type = CONFIG_TYPE_LIST,
                .doc = "Listeners reserved for KRaft controller traffic; runnel does not open them.",
        ), NO_QUORUM "; listeners named here are not opened" },
        [BK_INTER_BROKER_LISTENER_NAME] = { BROKER_KEY(
                .name = "inter.broker.listener.name", .type = CONFIG_TYPE_STRING,
                .doc = "Listener brokers use to talk to each other; unused while runnel runs one node.",
        ), "runnel runs one node, so there is no inter-broker traffic" },

        /* ---- network ---- */
        [BK_LISTENERS] = { BROKER_KEY(
                .name = "listeners", .type = CONFIG_TYPE_STRING, .default_text = "PLAINTEXT://:9092",
                .doc = "Comma-separated NAME://host:port addresses to accept "
                       "clients on; an empty host means every interface.",
        ) },
        [BK_ADVERTISED_LISTENERS] = { BROKER_KEY(
                .name = "advertised.listeners", .type = CONFIG_TYPE_STRING,
                .doc = "Addresses handed to clients in Metadata, which "
                       "they then connect to; defaults to listeners.",
        ) },
        [BK_LISTENER_SECURITY_PROTOCOL_MAP] = { BROKER_KEY(
                .name = "listener.security.protocol.map", .type = CONFIG_TYPE_STRING,
                .default_text = "SASL_SSL:SASL_SSL,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT",
                .doc = "NAME:PROTOCOL pairs giving each listener name its "
                       "security protocol; runnel serves PLAINTEXT only.",
        ) },
        [BK_NUM_NETWORK_THREADS] = { BROKER_KEY(
                .name = "num.network.threads", .type = CONFIG_TYPE_INT,
                BETWEEN(1, CONFIG_NETWORK_THREADS_MAX),
                .doc = "Number of io_uring reactor threads serving "
                       "connections; defaults to the number of online CPUs.",
        ) },
        [BK_NUM_IO_THREADS] = { BROKER_KEY(
                .name = "num.io.threads", .type = CONFIG_TYPE_INT, .default_text = "8", AT_LEAST(1),
                .doc = "Kafka's request handler pool size; runnel handles requests on the reactor threads.",
        ), "requests are handled on the reactor threads (num.network.threads)" },
        [BK_SOCKET_REQUEST_MAX_BYTES] = { BROKER_KEY(
                .name = "socket.request.max.bytes", .type = CONFIG_TYPE_INT, .default_text = "104857600",
                AT_LEAST(1),
                .doc = "Largest request frame accepted; a bigger size prefix closes the connection.",
        ) },
        [BK_SOCKET_SEND_BUFFER_BYTES] = { BROKER_KEY(
                .name = "socket.send.buffer.bytes", .type = CONFIG_TYPE_INT, .default_text = "102400",
                AT_LEAST(-1),
                .doc = "SO_SNDBUF for client connections; -1 keeps the OS default.",
        ) },
        [BK_SOCKET_RECEIVE_BUFFER_BYTES] = { BROKER_KEY(
                .name = "socket.receive.buffer.bytes", .type = CONFIG_TYPE_INT, .default_text = "102400",
                AT_LEAST(-1),
                .doc = "SO_RCVBUF for client connections; -1 keeps the OS default.",
        ) },
        [BK_SOCKET_LISTEN_BACKLOG_SIZE] = { BROKER_KEY(
                .name = "socket.listen.backlog.size", .type = CONFIG_TYPE_INT, .default_text = "50",
                AT_LEAST(1),
                .doc = "Backlog passed to listen() for each listener.",
        ) },
        [BK_CONNECTIONS_MAX_IDLE_MS] = { BROKER_KEY(
                .name = "connections.max.idle.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "600000", ANY_INT,
                .doc = "Connections with no traffic for this long are "
                       "closed; a negative value never closes them.",
        ) },
        [BK_MAX_CONNECTIONS] = { BROKER_KEY(
                .name = "max.connections", .type = CONFIG_TYPE_INT, .default_text = INT_MAX_TEXT, AT_LEAST(0),
                .doc = "Most client connections the broker holds open at once.",
        ) },
        [BK_MAX_CONNECTIONS_PER_IP] = { BROKER_KEY(
                .name = "max.connections.per.ip", .type = CONFIG_TYPE_INT, .default_text = INT_MAX_TEXT,
                AT_LEAST(0),
                .doc = "Most client connections accepted from one address.",
        ) },
        [BK_QUEUED_MAX_REQUESTS] = { BROKER_KEY(
                .name = "queued.max.requests", .type = CONFIG_TYPE_INT, .default_text = "500", AT_LEAST(1),
                .doc = "Kafka's bound on requests waiting for a handler thread; "
                       "runnel bounds in-flight requests per connection.",
        ), "runnel bounds in-flight requests per connection instead of one shared queue" },
        [BK_FETCH_MAX_BYTES] = { BROKER_KEY(
                .name = "fetch.max.bytes", .type = CONFIG_TYPE_INT,
                .default_text = "57671680", AT_LEAST(1024),
                .doc = "Most record bytes one Fetch response carries, whatever the client asks for.",
        ) },

        /* ---- storage ---- */
        [BK_LOG_DIRS] = { BROKER_KEY(
                .name = "log.dirs", .type = CONFIG_TYPE_LIST,
                .doc = "Comma-separated directories holding partition data; when unset, log.dir is used.",
        ) },
        [BK_LOG_DIR] = { BROKER_KEY(
                .name = "log.dir", .type = CONFIG_TYPE_LIST, .default_text = "/tmp/kafka-logs",
                .doc = "Data directories used when log.dirs is not set.",
        ) },
        [BK_NUM_RECOVERY_THREADS_PER_DATA_DIR] = { BROKER_KEY(
                .name = "num.recovery.threads.per.data.dir", .type = CONFIG_TYPE_INT, .default_text = "2",
                AT_LEAST(1),
                .doc = "Threads per data directory recovering logs "
                       "at start-up and flushing them at shutdown.",
        ) },
        [BK_LOG_RETENTION_CHECK_INTERVAL_MS] = { BROKER_KEY(
                .name = "log.retention.check.interval.ms", .type = CONFIG_TYPE_LONG, .default_text = "300000",
                AT_LEAST(1),
                .doc = "How often partitions are checked for segments past retention.",
        ) },
        [BK_LOG_FLUSH_SCHEDULER_INTERVAL_MS] = { BROKER_KEY(
                .name = "log.flush.scheduler.interval.ms", .type = CONFIG_TYPE_LONG,
                .default_text = LONG_MAX_TEXT,
                ANY_INT,
                .doc = "How often the flusher looks for logs due an fsync; "
                       "also flush.ms when log.flush.interval.ms is unset.",
        ) },
        [BK_LOG_FLUSH_OFFSET_CHECKPOINT_INTERVAL_MS] = { BROKER_KEY(
                .name = "log.flush.offset.checkpoint.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "60000",
                AT_LEAST(0),
                .doc = "How often the recovery-point checkpoint file is rewritten.",
        ) },
        [BK_LOG_FLUSH_START_OFFSET_CHECKPOINT_INTERVAL_MS] = { BROKER_KEY(
                .name = "log.flush.start.offset.checkpoint.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "60000", AT_LEAST(0),
                .doc = "How often the log-start-offset checkpoint file is rewritten.",
        ) },
        [BK_RUNNEL_LOG_FLUSH_ACKS_ALL] = { BROKER_KEY(
                .name = "runnel.log.flush.acks.all", .type = CONFIG_TYPE_BOOLEAN, .default_text = "true",
                .doc = "runnel's own key: acknowledge acks=all produce only once the data is fsynced "
                       "(group commit). false keeps Kafka's page-cache behaviour, where durability "
                       "comes from log.flush.interval.* and replication.",
        ) },
        [BK_LOG_CLEANER_ENABLE] = { BROKER_KEY(
                .name = "log.cleaner.enable", .type = CONFIG_TYPE_BOOLEAN, .default_text = "true",
                .doc = "Run the compactor for topics with cleanup.policy=compact.",
        ) },
        [BK_LOG_CLEANER_THREADS] = { BROKER_KEY(
                .name = "log.cleaner.threads", .type = CONFIG_TYPE_INT, .default_text = "1", AT_LEAST(0),
                .doc = "Threads compacting logs.",
        ) },
        [BK_LOG_CLEANER_BACKOFF_MS] = { BROKER_KEY(
                .name = "log.cleaner.backoff.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "15000", AT_LEAST(0),
                .doc = "Pause of the compactor when it finds nothing to clean.",
        ) },
        [BK_LOG_CLEANER_DEDUPE_BUFFER_SIZE] = { BROKER_KEY(
                .name = "log.cleaner.dedupe.buffer.size", .type = CONFIG_TYPE_LONG,
                .default_text = "134217728",
                ANY_INT,
                .doc = "Memory, over all compactor threads, for the key-to-offset map of one cleaning pass.",
        ) },
        [BK_LOG_CLEANER_IO_BUFFER_SIZE] = { BROKER_KEY(
                .name = "log.cleaner.io.buffer.size", .type = CONFIG_TYPE_INT, .default_text = "524288",
                AT_LEAST(0),
                .doc = "Memory, over all compactor threads, for reading and writing segments.",
        ) },

        /* ---- broker-level synonyms of topic configs ---- */
        [BK_LOG_SEGMENT_BYTES] = { BROKER_KEY(
                .name = "log.segment.bytes", .type = CONFIG_TYPE_INT, .default_text = "1073741824",
                AT_LEAST(1048576),
                .doc = "Default segment.bytes: size at which a segment is rolled.",
        ) },
        [BK_LOG_ROLL_MS] = { BROKER_KEY(
                .name = "log.roll.ms", .type = CONFIG_TYPE_LONG, ANY_INT,
                .doc = "Default segment.ms; takes precedence over log.roll.hours.",
        ) },
        [BK_LOG_ROLL_HOURS] = { BROKER_KEY(
                .name = "log.roll.hours", .type = CONFIG_TYPE_INT, .default_text = "168", AT_LEAST(1),
                .doc = "Default segment.ms in hours, used when log.roll.ms is unset.",
        ) },
        [BK_LOG_ROLL_JITTER_MS] = { BROKER_KEY(
                .name = "log.roll.jitter.ms", .type = CONFIG_TYPE_LONG, ANY_INT,
                .doc = "Default segment.jitter.ms; takes precedence over log.roll.jitter.hours.",
        ) },
        [BK_LOG_ROLL_JITTER_HOURS] = { BROKER_KEY(
                .name = "log.roll.jitter.hours", .type = CONFIG_TYPE_INT, .default_text = "0", AT_LEAST(0),
                .doc = "Default segment.jitter.ms in hours, used when log.roll.jitter.ms is unset.",
        ) },
        [BK_LOG_INDEX_SIZE_MAX_BYTES] = { BROKER_KEY(
                .name = "log.index.size.max.bytes", .type = CONFIG_TYPE_INT, .default_text = "10485760",
                AT_LEAST(4),
                .doc = "Default segment.index.bytes: room reserved for each segment's index files.",
        ) },
        [BK_LOG_INDEX_INTERVAL_BYTES] = { BROKER_KEY(
                .name = "log.index.interval.bytes", .type = CONFIG_TYPE_INT,
                .default_text = "4096", AT_LEAST(0),
                .doc = "Default index.interval.bytes: log bytes between two index entries.",
        ) },
        [BK_LOG_FLUSH_INTERVAL_MESSAGES] = { BROKER_KEY(
                .name = "log.flush.interval.messages", .type = CONFIG_TYPE_LONG,
                .default_text = LONG_MAX_TEXT,
                AT_LEAST(1),
                .doc = "Default flush.messages: records appended between forced fsyncs.",
        ) },
        [BK_LOG_FLUSH_INTERVAL_MS] = { BROKER_KEY(
                .name = "log.flush.interval.ms", .type = CONFIG_TYPE_LONG, ANY_INT,
                .doc = "Default flush.ms: age of unflushed data that forces an fsync.",
        ) },
        [BK_LOG_RETENTION_BYTES] = { BROKER_KEY(
                .name = "log.retention.bytes", .type = CONFIG_TYPE_LONG, .default_text = "-1", ANY_INT,
                .doc = "Default retention.bytes: partition size past which old segments go; -1 for no limit.",
        ) },
        [BK_LOG_RETENTION_MS] = { BROKER_KEY(
                .name = "log.retention.ms", .type = CONFIG_TYPE_LONG, ANY_INT,
                .doc = "Default retention.ms; wins over log.retention.minutes "
                       "and .hours; negative for no limit.",
        ) },
        [BK_LOG_RETENTION_MINUTES] = { BROKER_KEY(
                .name = "log.retention.minutes", .type = CONFIG_TYPE_INT, ANY_INT,
                .doc = "Default retention.ms in minutes, used when log.retention.ms is unset.",
        ) },
        [BK_LOG_RETENTION_HOURS] = { BROKER_KEY(
                .name = "log.retention.hours", .type = CONFIG_TYPE_INT, .default_text = "168", ANY_INT,
                .doc = "Default retention.ms in hours, used when neither .ms nor .minutes is set.",
        ) },
        [BK_LOG_LOCAL_RETENTION_BYTES] = { BROKER_KEY(
                .name = "log.local.retention.bytes", .type = CONFIG_TYPE_LONG, .default_text = "-2",
                AT_LEAST(-2),
                .doc = "Default local.retention.bytes for tiered topics; -2 follows retention.bytes.",
        ) },
        [BK_LOG_LOCAL_RETENTION_MS] = { BROKER_KEY(
                .name = "log.local.retention.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "-2", AT_LEAST(-2),
                .doc = "Default local.retention.ms for tiered topics; -2 follows retention.ms.",
        ) },
        [BK_LOG_REMOTE_COPY_LAG_BYTES] = { BROKER_KEY(
                .name = "log.remote.copy.lag.bytes", .type = CONFIG_TYPE_LONG,
                .default_text = "-1", AT_LEAST(-1),
                .doc = "Default remote.copy.lag.bytes for tiered topics.",
        ) },
        [BK_LOG_REMOTE_COPY_LAG_MS] = { BROKER_KEY(
                .name = "log.remote.copy.lag.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "0", AT_LEAST(-1),
                .doc = "Default remote.copy.lag.ms for tiered topics.",
        ) },
        [BK_LOG_CLEANUP_POLICY] = { BROKER_KEY(
                .name = "log.cleanup.policy", .type = CONFIG_TYPE_LIST, .default_text = "delete",
                .valid_values = cleanup_policies,
                .doc = "Default cleanup.policy: delete, compact, or both.",
        ) },
        [BK_LOG_CLEANER_DELETE_RETENTION_MS] = { BROKER_KEY(
                .name = "log.cleaner.delete.retention.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "86400000",
                AT_LEAST(0),
                .doc = "Default delete.retention.ms: how long tombstones survive compaction.",
        ) },
        [BK_LOG_CLEANER_MIN_COMPACTION_LAG_MS] = { BROKER_KEY(
                .name = "log.cleaner.min.compaction.lag.ms", .type = CONFIG_TYPE_LONG, .default_text = "0",
                AT_LEAST(0),
                .doc = "Default min.compaction.lag.ms.",
        ) },
        [BK_LOG_CLEANER_MAX_COMPACTION_LAG_MS] = { BROKER_KEY(
                .name = "log.cleaner.max.compaction.lag.ms", .type = CONFIG_TYPE_LONG,
                .default_text = LONG_MAX_TEXT, AT_LEAST(1),
                .doc = "Default max.compaction.lag.ms.",
        ) },
        [BK_LOG_CLEANER_MIN_CLEANABLE_RATIO] = { BROKER_KEY(
                .name = "log.cleaner.min.cleanable.ratio", .type = CONFIG_TYPE_DOUBLE, .default_text = "0.5",
                .double_min = 0.0, .double_max = 1.0,
                .doc = "Default min.cleanable.dirty.ratio.",
        ) },
        [BK_LOG_SEGMENT_DELETE_DELAY_MS] = { BROKER_KEY(
                .name = "log.segment.delete.delay.ms", .type = CONFIG_TYPE_LONG, .default_text = "60000",
                AT_LEAST(0),
                .doc = "Default file.delete.delay.ms: wait before unlinking a dropped segment.",
        ) },
        [BK_LOG_PREALLOCATE] = { BROKER_KEY(
                .name = "log.preallocate", .type = CONFIG_TYPE_BOOLEAN, .default_text = "false",
                .doc = "Default preallocate: reserve a new segment's full size on disk.",
        ) },
        [BK_LOG_MESSAGE_TIMESTAMP_TYPE] = { BROKER_KEY(
                .name = "log.message.timestamp.type", .type = CONFIG_TYPE_STRING,
                .default_text = "CreateTime",
                .valid_values = timestamp_types,
                .doc = "Default message.timestamp.type: CreateTime or LogAppendTime.",
        ) },
        [BK_LOG_MESSAGE_TIMESTAMP_BEFORE_MAX_MS] = { BROKER_KEY(
                .name = "log.message.timestamp.before.max.ms", .type = CONFIG_TYPE_LONG,
                .default_text = LONG_MAX_TEXT, AT_LEAST(0),
                .doc = "Default message.timestamp.before.max.ms.",
        ) },
        [BK_LOG_MESSAGE_TIMESTAMP_AFTER_MAX_MS] = { BROKER_KEY(
                .name = "log.message.timestamp.after.max.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "3600000",
                AT_LEAST(0),
                .doc = "Default message.timestamp.after.max.ms.",
        ) },
        [BK_MESSAGE_MAX_BYTES] = { BROKER_KEY(
                .name = "message.max.bytes", .type = CONFIG_TYPE_INT, .default_text = "1048588", AT_LEAST(0),
                .doc = "Default max.message.bytes: largest record batch a producer may send.",
        ) },
        [BK_COMPRESSION_TYPE] = { BROKER_KEY(
                .name = "compression.type", .type = CONFIG_TYPE_STRING, .default_text = "producer",
                .valid_values = compression_types,
                .doc = "Default compression.type; producer keeps batches as the producer compressed them.",
        ) },
        [BK_COMPRESSION_GZIP_LEVEL] = { BROKER_KEY(
                .name = "compression.gzip.level", .type = CONFIG_TYPE_INT,
                .default_text = "-1", BETWEEN(-1, 9),
                .doc = "Default compression.gzip.level.",
        ) },
        [BK_COMPRESSION_LZ4_LEVEL] = { BROKER_KEY(
                .name = "compression.lz4.level", .type = CONFIG_TYPE_INT, .default_text = "9", BETWEEN(1, 17),
                .doc = "Default compression.lz4.level.",
        ) },
        [BK_COMPRESSION_ZSTD_LEVEL] = { BROKER_KEY(
                .name = "compression.zstd.level", .type = CONFIG_TYPE_INT, .default_text = "3",
                BETWEEN(-131072, 22),
                .doc = "Default compression.zstd.level.",
        ) },
        [BK_MIN_INSYNC_REPLICAS] = { BROKER_KEY(
                .name = "min.insync.replicas", .type = CONFIG_TYPE_INT, .default_text = "1", AT_LEAST(1),
                .doc = "Default min.insync.replicas for acks=all produce.",
        ) },
        [BK_UNCLEAN_LEADER_ELECTION_ENABLE] = { BROKER_KEY(
                .name = "unclean.leader.election.enable", .type = CONFIG_TYPE_BOOLEAN,
                .default_text = "false",
                .doc = "Default unclean.leader.election.enable.",
        ) },

        /* ---- topics ---- */
        [BK_NUM_PARTITIONS] = { BROKER_KEY(
                .name = "num.partitions", .type = CONFIG_TYPE_INT, .default_text = "1", AT_LEAST(1),
                .doc = "Partitions given to a topic created without a count, including auto-created ones.",
        ) },
        [BK_DEFAULT_REPLICATION_FACTOR] = { BROKER_KEY(
                .name = "default.replication.factor", .type = CONFIG_TYPE_INT, .default_text = "1",
                BETWEEN(1, INT16_MAX),
                .doc = "Replication factor of a topic created without one, including auto-created ones.",
        ) },
        [BK_AUTO_CREATE_TOPICS_ENABLE] = { BROKER_KEY(
                .name = "auto.create.topics.enable", .type = CONFIG_TYPE_BOOLEAN, .default_text = "true",
                .doc = "Create a topic when a client asks Metadata "
                       "for one that does not exist and allows it.",
        ) },
        [BK_DELETE_TOPIC_ENABLE] = { BROKER_KEY(
                .name = "delete.topic.enable", .type = CONFIG_TYPE_BOOLEAN, .default_text = "true",
                .doc = "Allow DeleteTopics; when false it is refused.",
        ) },

        /* ---- groups ---- */
        [BK_GROUP_INITIAL_REBALANCE_DELAY_MS] = { BROKER_KEY(
                .name = "group.initial.rebalance.delay.ms", .type = CONFIG_TYPE_INT, .default_text = "3000",
                AT_LEAST(0),
                .doc = "How long the first rebalance of an empty "
                       "classic group waits for more members to join.",
        ) },
        [BK_GROUP_MIN_SESSION_TIMEOUT_MS] = { BROKER_KEY(
                .name = "group.min.session.timeout.ms", .type = CONFIG_TYPE_INT,
                .default_text = "6000", ANY_INT,
                .doc = "Smallest session timeout a classic group member may ask for.",
        ) },
        [BK_GROUP_MAX_SESSION_TIMEOUT_MS] = { BROKER_KEY(
                .name = "group.max.session.timeout.ms", .type = CONFIG_TYPE_INT, .default_text = "1800000",
                ANY_INT,
                .doc = "Largest session timeout a classic group member may ask for.",
        ) },
        [BK_GROUP_MAX_SIZE] = { BROKER_KEY(
                .name = "group.max.size", .type = CONFIG_TYPE_INT, .default_text = INT_MAX_TEXT, AT_LEAST(1),
                .doc = "Most members one classic group may have.",
        ) },
        [BK_GROUP_CONSUMER_SESSION_TIMEOUT_MS] = { BROKER_KEY(
                .name = "group.consumer.session.timeout.ms", .type = CONFIG_TYPE_INT, .default_text = "45000",
                AT_LEAST(1),
                .doc = "Session timeout of KIP-848 consumer group members.",
        ) },
        [BK_GROUP_CONSUMER_MIN_SESSION_TIMEOUT_MS] = { BROKER_KEY(
                .name = "group.consumer.min.session.timeout.ms", .type = CONFIG_TYPE_INT,
                .default_text = "45000", AT_LEAST(1),
                .doc = "Smallest session timeout a KIP-848 consumer group may be given.",
        ) },
        [BK_GROUP_CONSUMER_MAX_SESSION_TIMEOUT_MS] = { BROKER_KEY(
                .name = "group.consumer.max.session.timeout.ms", .type = CONFIG_TYPE_INT,
                .default_text = "60000", AT_LEAST(1),
                .doc = "Largest session timeout a KIP-848 consumer group may be given.",
        ) },
        [BK_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS] = { BROKER_KEY(
                .name = "group.consumer.heartbeat.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "5000", AT_LEAST(1),
                .doc = "Heartbeat interval the broker tells KIP-848 consumers to use.",
        ) },
        [BK_GROUP_CONSUMER_MIN_HEARTBEAT_INTERVAL_MS] = { BROKER_KEY(
                .name = "group.consumer.min.heartbeat.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "5000", AT_LEAST(1),
                .doc = "Smallest heartbeat interval a KIP-848 consumer group may be given.",
        ) },
        [BK_GROUP_CONSUMER_MAX_HEARTBEAT_INTERVAL_MS] = { BROKER_KEY(
                .name = "group.consumer.max.heartbeat.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "15000", AT_LEAST(1),
                .doc = "Largest heartbeat interval a KIP-848 consumer group may be given.",
        ) },
        [BK_GROUP_CONSUMER_MAX_SIZE] = { BROKER_KEY(
                .name = "group.consumer.max.size", .type = CONFIG_TYPE_INT, .default_text = INT_MAX_TEXT,
                AT_LEAST(1),
                .doc = "Most members one KIP-848 consumer group may have.",
        ) },
        [BK_OFFSETS_TOPIC_NUM_PARTITIONS] = { BROKER_KEY(
                .name = "offsets.topic.num.partitions", .type = CONFIG_TYPE_INT, .default_text = "50",
                AT_LEAST(1),
                .doc = "Partitions of __consumer_offsets; fixed once "
                       "the topic exists, as groups hash onto them.",
        ) },
        [BK_OFFSETS_TOPIC_REPLICATION_FACTOR] = { BROKER_KEY(
                .name = "offsets.topic.replication.factor", .type = CONFIG_TYPE_SHORT, .default_text = "3",
                AT_LEAST(1),
                .doc = "Replication factor of __consumer_offsets; a "
                       "single runnel node uses 1 whatever is set.",
        ) },
        [BK_OFFSETS_TOPIC_SEGMENT_BYTES] = { BROKER_KEY(
                .name = "offsets.topic.segment.bytes", .type = CONFIG_TYPE_INT, .default_text = "104857600",
                AT_LEAST(1),
                .doc = "Segment size of __consumer_offsets, kept small so compaction and loading stay quick.",
        ) },
        [BK_OFFSETS_RETENTION_MINUTES] = { BROKER_KEY(
                .name = "offsets.retention.minutes", .type = CONFIG_TYPE_INT, .default_text = "10080",
                AT_LEAST(1),
                .doc = "How long committed offsets of an empty group are kept.",
        ) },
        [BK_OFFSETS_RETENTION_CHECK_INTERVAL_MS] = { BROKER_KEY(
                .name = "offsets.retention.check.interval.ms", .type = CONFIG_TYPE_LONG,
                .default_text = "600000", AT_LEAST(1),
                .doc = "How often expired committed offsets are looked for.",
        ) },
        [BK_OFFSETS_COMMIT_TIMEOUT_MS] = { BROKER_KEY(
                .name = "offsets.commit.timeout.ms", .type = CONFIG_TYPE_INT,
                .default_text = "5000", AT_LEAST(1),
                .doc = "How long an offset commit waits for its write to __consumer_offsets.",
        ) },
        [BK_OFFSETS_LOAD_BUFFER_SIZE] = { BROKER_KEY(
                .name = "offsets.load.buffer.size", .type = CONFIG_TYPE_INT, .default_text = "5242880",
                AT_LEAST(1),
                .doc = "Kafka's read size when loading __consumer_offsets; runnel reads segments directly.",
        ), "runnel replays __consumer_offsets without a separate read buffer" },
        [BK_OFFSET_METADATA_MAX_BYTES] = { BROKER_KEY(
                .name = "offset.metadata.max.bytes", .type = CONFIG_TYPE_INT, .default_text = "4096", ANY_INT,
                .doc = "Longest metadata string accepted with a committed offset.",
        ) },

        /* ---- transactions ---- */
        [BK_TRANSACTION_STATE_LOG_NUM_PARTITIONS] = { BROKER_KEY(
                .name = "transaction.state.log.num.partitions", .type = CONFIG_TYPE_INT, .default_text = "50",
                AT_LEAST(1),
                .doc = "Partitions of __transaction_state; fixed once the topic exists.",
        ) },
        [BK_TRANSACTION_STATE_LOG_REPLICATION_FACTOR] = { BROKER_KEY(
                .name = "transaction.state.log.replication.factor", .type = CONFIG_TYPE_SHORT,
                .default_text = "3", AT_LEAST(1),
                .doc = "Replication factor of __transaction_state; a single runnel node uses 1.",
        ) },
        [BK_TRANSACTION_STATE_LOG_MIN_ISR] = { BROKER_KEY(
                .name = "transaction.state.log.min.isr", .type = CONFIG_TYPE_INT, .default_text = "2",
                AT_LEAST(1),
                .doc = "min.insync.replicas of __transaction_state; a single runnel node uses 1.",
        ) },
        [BK_TRANSACTION_STATE_LOG_SEGMENT_BYTES] = { BROKER_KEY(
                .name = "transaction.state.log.segment.bytes", .type = CONFIG_TYPE_INT,
                .default_text = "104857600", AT_LEAST(1),
                .doc = "Segment size of __transaction_state.",
        ) },
        [BK_TRANSACTION_STATE_LOG_LOAD_BUFFER_SIZE] = { BROKER_KEY(
                .name = "transaction.state.log.load.buffer.size", .type = CONFIG_TYPE_INT,
                .default_text = "5242880", AT_LEAST(1),
                .doc = "Kafka's read size when loading __transaction_state; runnel reads segments directly.",
        ), "runnel replays __transaction_state without a separate read buffer" },
        [BK_TRANSACTIONAL_ID_EXPIRATION_MS] = { BROKER_KEY(
                .name = "transactional.id.expiration.ms", .type = CONFIG_TYPE_INT,
                .default_text = "604800000",
                AT_LEAST(1),
                .doc = "A transactional id idle for this long is forgotten.",
        ) },
        [BK_TRANSACTION_MAX_TIMEOUT_MS] = { BROKER_KEY(
                .name = "transaction.max.timeout.ms", .type = CONFIG_TYPE_INT, .default_text = "900000",
                AT_LEAST(1),
                .doc = "Largest transaction timeout a producer may ask for in InitProducerId.",
        ) },
        [BK_TRANSACTION_ABORT_TIMED_OUT_CLEANUP_INTERVAL_MS] = { BROKER_KEY(
                .name = "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                .type = CONFIG_TYPE_INT,
                .default_text = "10000", AT_LEAST(1),
                .doc = "How often transactions past their timeout are looked for and aborted.",
        ) },
        [BK_TRANSACTION_REMOVE_EXPIRED_CLEANUP_INTERVAL_MS] = { BROKER_KEY(
                .name = "transaction.remove.expired.transaction.cleanup.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "3600000", AT_LEAST(1),
                .doc = "How often expired transactional ids are removed.",
        ) },
        [BK_TRANSACTION_PARTITION_VERIFICATION_ENABLE] = { BROKER_KEY(
                .name = "transaction.partition.verification.enable", .type = CONFIG_TYPE_BOOLEAN,
                .default_text = "true",
                .doc = "Refuse transactional writes to a partition "
                       "not yet added to the transaction (KIP-890).",
        ) },
        [BK_PRODUCER_ID_EXPIRATION_MS] = { BROKER_KEY(
                .name = "producer.id.expiration.ms", .type = CONFIG_TYPE_INT, .default_text = "86400000",
                AT_LEAST(1),
                .doc = "Idempotence state of a producer id is dropped after this long without writes.",
        ) },
        [BK_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS] = { BROKER_KEY(
                .name = "producer.id.expiration.check.interval.ms", .type = CONFIG_TYPE_INT,
                .default_text = "600000", AT_LEAST(1),
                .doc = "How often expired producer ids are looked for.",
        ) },

        /* ---- share groups ---- */
        [BK_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR] = { BROKER_KEY(
                .name = "share.coordinator.state.topic.replication.factor", .type = CONFIG_TYPE_SHORT,
                .default_text = "3", AT_LEAST(1),
                .doc = "Replication factor of __share_group_state; runnel has no share groups yet.",
        ), "runnel has no share groups yet" },
        [BK_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR] = { BROKER_KEY(
                .name = "share.coordinator.state.topic.min.isr", .type = CONFIG_TYPE_SHORT,
                .default_text = "2",
                AT_LEAST(1),
                .doc = "min.insync.replicas of __share_group_state; runnel has no share groups yet.",
        ), "runnel has no share groups yet" },
};

/* ---- small helpers ---- */

static void set_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
        if (!err || err_len == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
}

static const struct broker_key_def *find_broker_key(const char *name)
{
        for (size_t i = 0; i < BK_COUNT; i++) {
                assert(broker_keys[i].def.name);
                if (strcmp(broker_keys[i].def.name, name) == 0)
                        return &broker_keys[i];
        }
        return NULL;
}

size_t config_count_keys(void)
{
        return BK_COUNT;
}

const struct config_def *config_get_key(size_t index)
{
        assert(index < BK_COUNT);
        return &broker_keys[index].def;
}

const struct config_def *config_find_key(const char *name)
{
        assert(name);
        const struct broker_key_def *bk = find_broker_key(name);
        return bk ? &bk->def : NULL;
}

static const char *default_text(const struct broker_config *cfg, enum broker_key k)
{
        if (k == BK_NUM_NETWORK_THREADS)
                return cfg->network_threads_default_text;
        return broker_keys[k].def.default_text;
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
        assert(v >= broker_keys[k].def.int_min && v <= broker_keys[k].def.int_max);
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
        const struct broker_key_def *bk = find_broker_key(key);
        if (!bk)
                return false;
        enum broker_key k = (enum broker_key)(bk - broker_keys);
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
                        const struct broker_key_def *bk = find_broker_key(names[i]);
                        if (!bk)
                                continue;
                        enum broker_key k = (enum broker_key)(bk - broker_keys);
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

/* ---- Java properties ---- */

static bool is_prop_space(char c)
{
        return c == ' ' || c == '\t' || c == '\f';
}

struct text_buf {
        char *ptr;
        size_t len;
        size_t cap;
};

static int text_buf_append(struct text_buf *b, const char *s, size_t n)
{
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 128;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->ptr, cap);
                if (!p)
                        return -ENOMEM;
                b->ptr = p;
                b->cap = cap;
        }
        memcpy(b->ptr + b->len, s, n);
        b->len += n;
        b->ptr[b->len] = '\0';
        return 0;
}

static int hex4(const char *s, size_t avail, uint32_t *out)
{
        if (avail < 4)
                return -EINVAL;
        uint32_t v = 0;
        for (int i = 0; i < 4; i++) {
                char c = s[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t)(c - 'A' + 10);
                else
                        return -EINVAL;
        }
        *out = v;
        return 0;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
        assert(cp > 0 && cp <= 0x10FFFF);
        if (cp < 0x80) {
                out[0] = (char)cp;
                return 1;
        }
        if (cp < 0x800) {
                out[0] = (char)(0xC0 | (cp >> 6));
                out[1] = (char)(0x80 | (cp & 0x3F));
                return 2;
        }
        if (cp < 0x10000) {
                out[0] = (char)(0xE0 | (cp >> 12));
                out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                out[2] = (char)(0x80 | (cp & 0x3F));
                return 3;
        }
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
}

/*
 * Resolves escapes in s[0..n) into a new string. The result is never longer
 * than the input: \uXXXX (6 bytes) encodes to at most 3 bytes of UTF-8, a
 * surrogate pair (12 bytes) to 4.
 */
static int unescape(const char *s, size_t n, uint32_t line, char **out, char *err, size_t err_len)
{
        char *o = malloc(n + 1);
        if (!o)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] != '\\') {
                        o[k++] = s[i];
                        continue;
                }
                if (++i == n)
                        break;          /* a lone backslash at the very end is dropped */
                switch (s[i]) {
                case 't': o[k++] = '\t'; break;
                case 'n': o[k++] = '\n'; break;
                case 'r': o[k++] = '\r'; break;
                case 'f': o[k++] = '\f'; break;
                case 'u': {
                        uint32_t cp, low;
                        if (hex4(s + i + 1, n - i - 1, &cp))
                                goto bad_escape;
                        i += 4;
                        if (cp >= 0xD800 && cp <= 0xDBFF) {
                                if (n - i - 1 < 6 || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                                    hex4(s + i + 3, n - i - 3, &low) || low < 0xDC00 || low > 0xDFFF)
                                        goto bad_escape;
                                i += 6;
                                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                                goto bad_escape;
                        }
                        if (cp == 0) {
                                set_err(err, err_len, "line %" PRIu32 ": \\u0000 is not allowed", line);
                                free(o);
                                return -EINVAL;
                        }
                        k += utf8_encode(cp, o + k);
                        break;
                }
                default:
                        o[k++] = s[i];
                }
                assert(k <= i + 1);
        }
        assert(k <= n);
        o[k] = '\0';
        *out = o;
        return 0;

bad_escape:
        set_err(err, err_len, "line %" PRIu32 ": malformed \\uXXXX escape", line);
        free(o);
        return -EINVAL;
}

/* Splits one logical line into key and value and hands them to fn. */
static int emit_property(const char *s, size_t n, uint32_t line, config_property_fn fn, void *ctx,
                         char *err, size_t err_len)
{
        size_t i = 0;
        bool has_separator = false;
        while (i < n) {
                if (s[i] == '\\') {
                        i += 2;
                        continue;
                }
                if (s[i] == '=' || s[i] == ':') {
                        has_separator = true;
                        break;
                }
                if (is_prop_space(s[i]))
                        break;
                i++;
        }
        size_t key_end = i < n ? i : n;
        size_t v = key_end;
        if (has_separator) {
                v++;
        } else {
                while (v < n && is_prop_space(s[v]))
                        v++;
                if (v < n && (s[v] == '=' || s[v] == ':'))
                        v++;
        }
        while (v < n && is_prop_space(s[v]))
                v++;

        char *key = NULL, *value = NULL;
        int rc = unescape(s, key_end, line, &key, err, err_len);
        if (rc)
                goto out;
        rc = unescape(s + v, n - v, line, &value, err, err_len);
        if (rc)
                goto out_key;
        rc = fn(ctx, key, value, line);
        free(value);
out_key:
        free(key);
out:
        return rc;
}

int config_parse_properties(const char *text, size_t len, config_property_fn fn, void *ctx,
                            char *err, size_t err_len)
{
        assert(text || len == 0);
        assert(fn);
        struct text_buf logical = { NULL, 0, 0 };
        size_t pos = 0;
        uint32_t line = 0, start_line = 0;
        bool is_continued = false;
        int rc = 0;

        while (pos < len) {
                size_t start = pos;
                while (pos < len && text[pos] != '\n' && text[pos] != '\r')
                        pos++;
                size_t end = pos;
                if (pos < len)
                        pos += (text[pos] == '\r' && pos + 1 < len && text[pos + 1] == '\n') ? 2 : 1;
                line++;
                if (memchr(text + start, '\0', end - start)) {
                        set_err(err, err_len, "line %" PRIu32 ": NUL byte", line);
                        rc = -EINVAL;
                        goto out;
                }
                size_t s = start;
                while (s < end && is_prop_space(text[s]))
                        s++;
                if (!is_continued) {
                        if (s == end || text[s] == '#' || text[s] == '!')
                                continue;       /* blank line or comment */
                        logical.len = 0;
                        start_line = line;
                }
                /* An odd number of trailing backslashes continues the line. */
                size_t slashes = 0;
                while (end - slashes > s && text[end - 1 - slashes] == '\\')
                        slashes++;
                is_continued = slashes % 2 == 1;
                rc = text_buf_append(&logical, text + s, end - s - (is_continued ? 1 : 0));
                if (rc)
                        goto out;
                if (is_continued)
                        continue;
                rc = emit_property(logical.ptr, logical.len, start_line, fn, ctx, err, err_len);
                if (rc)
                        goto out;
        }
        if (is_continued)
                rc = emit_property(logical.ptr, logical.len, start_line, fn, ctx, err, err_len);
out:
        free(logical.ptr);
        return rc;
}

/* ---- loading ---- */

struct load_ctx {
        struct broker_config *cfg;
        FILE *diag;
        const char *path;               /* for messages; NULL for overrides */
};

static int store_value(struct load_ctx *lc, const char *key, const char *value, uint32_t line)
{
        const struct broker_key_def *bk = find_broker_key(key);
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
        struct config_slot *slot = &lc->cfg->slots[bk - broker_keys];
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
                set_err(err, err_len, "cannot open config file '%s': %s", lc->path, strerror(errno));
                goto out;
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
                rc = -errno;
                set_err(err, err_len, "cannot stat config file '%s': %s", lc->path, strerror(errno));
                goto out_close;
        }
        if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > CONFIG_FILE_BYTES_MAX) {
                rc = S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
                set_err(err, err_len, "config file '%s' is not a regular file of at most %u bytes",
                        lc->path, CONFIG_FILE_BYTES_MAX);
                goto out_close;
        }
        size_t size = (size_t)st.st_size;
        char *text = malloc(size + 1);
        if (!text) {
                rc = -ENOMEM;
                set_err(err, err_len, "out of memory reading '%s'", lc->path);
                goto out_close;
        }
        size_t got = 0;
        while (got < size) {
                ssize_t n = read(fd, text + got, size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = -errno;
                        set_err(err, err_len, "cannot read config file '%s': %s", lc->path, strerror(errno));
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
                set_err(err, err_len, "out of memory reading '%s'", lc->path);
        else if (rc)
                set_err(err, err_len, "%s: %s", lc->path, msg);
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
                        set_err(err, err_len, "--override needs key=value, got '%s'", kv);
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
                if (config_def_check(&broker_keys[k].def, cfg->slots[k].text, msg, sizeof(msg)) == 0)
                        continue;
                char origin[CONFIG_ERR_BYTES];
                format_origin(cfg, (enum broker_key)k, path, origin, sizeof(origin));
                set_err(err, err_len, "%s%s", msg, origin);
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
                        set_err(err, err_len,
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
        const char *name = broker_keys[k].def.name;
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
                        set_err(err, err_len, "invalid value '%s' for %s: more than %d directories",
                                text, name, CONFIG_LOG_DIRS_MAX);
                        return -EINVAL;
                }
                for (uint32_t i = 0; i < cfg->log_dir_count; i++) {
                        if (strlen(cfg->log_dirs[i]) == item_len &&
                            memcmp(cfg->log_dirs[i], item, item_len) == 0) {
                                set_err(err, err_len, "invalid value '%s' for %s: '%.*s' is listed twice",
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
                set_err(err, err_len, "invalid value '%s' for %s: no directory given", text, name);
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
                set_err(err, err_len, "invalid value for %s: '%.*s' is not NAME://host:port",
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
                        set_err(err, err_len, "invalid value for %s: '%.*s' has a bad [IPv6]:port part",
                                key, (int)len, item);
                        return -EINVAL;
                }
                host = hp + 1;
                host_len = (size_t)(close - host);
                colon = close + 1;
        } else {
                colon = memrchr(hp, ':', hp_len);
                if (!colon) {
                        set_err(err, err_len, "invalid value for %s: '%.*s' has no port",
                                key, (int)len, item);
                        return -EINVAL;
                }
                host = hp;
                host_len = (size_t)(colon - hp);
                if (memchr(host, ':', host_len)) {
                        set_err(err, err_len,
                                "invalid value for %s: '%.*s': put an IPv6 address in brackets, as in "
                                "PLAINTEXT://[::1]:9092",
                                key, (int)len, item);
                        return -EINVAL;
                }
        }
        if (host_len >= CONFIG_HOST_BYTES) {
                set_err(err, err_len, "invalid value for %s: host in '%.*s' is too long",
                        key, (int)len, item);
                return -EINVAL;
        }
        for (size_t i = 0; i < host_len; i++) {
                if (!is_host_char(host[i])) {
                        set_err(err, err_len, "invalid value for %s: bad character in host of '%.*s'",
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
                set_err(err, err_len,
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
                        set_err(err, err_len, "invalid value '%s' for %s: empty entry", text, key);
                        return -EINVAL;
                }
                if (*count == CONFIG_LISTENERS_MAX) {
                        set_err(err, err_len, "invalid value for %s: more than %d listeners", key,
                                CONFIG_LISTENERS_MAX);
                        return -EINVAL;
                }
                struct config_listener *l = &out[*count];
                int rc = parse_listener(key, item, item_len, l, err, err_len);
                if (rc)
                        return rc;
                for (uint32_t i = 0; i < *count; i++) {
                        if (strcmp(out[i].name, l->name) == 0) {
                                set_err(err, err_len, "invalid value for %s: listener name %s is used twice",
                                        key, l->name);
                                return -EINVAL;
                        }
                }
                (*count)++;
        }
        if (*count == 0) {
                set_err(err, err_len, "invalid value '%s' for %s: no listener given", text, key);
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
        const char *key = broker_keys[BK_LISTENER_SECURITY_PROTOCOL_MAP].def.name;
        struct config_list_iter it;
        const char *item;
        size_t item_len;
        map->count = 0;
        config_list_start(&it, text);
        while (config_list_next(&it, &item, &item_len)) {
                const char *colon = memchr(item, ':', item_len);
                if (!colon) {
                        set_err(err, err_len, "invalid value for %s: '%.*s' is not NAME:PROTOCOL",
                                key, (int)item_len, item);
                        return -EINVAL;
                }
                if (map->count == PROTOCOL_MAP_MAX) {
                        set_err(err, err_len, "invalid value for %s: more than %d entries",
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
                        set_err(err, err_len,
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
                        set_err(err, err_len,
                                "invalid value for %s: listener %s has no security protocol; "
                                "add %s:PLAINTEXT to listener.security.protocol.map",
                                key, l->name, l->name);
                        return -EINVAL;
                }
                l->protocol = map->protocols[m];
                if (l->protocol != CONFIG_PROTOCOL_PLAINTEXT) {
                        set_err(err, err_len,
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

        const char *key = broker_keys[BK_LISTENERS].def.name;
        rc = parse_listener_list(key, effective_text(cfg, BK_LISTENERS), cfg->listeners, &cfg->listener_count,
                                 err, err_len);
        if (rc)
                return rc;
        rc = assign_protocols(key, cfg->listeners, &cfg->listener_count, &map, controller_names, diag, true,
                              err, err_len);
        if (rc)
                return rc;
        if (cfg->listener_count == 0) {
                set_err(err, err_len, "invalid value for listeners: only controller listeners are given; "
                                      "add one such as PLAINTEXT://:9092");
                return -EINVAL;
        }
        for (uint32_t i = 0; i < cfg->listener_count; i++) {
                for (uint32_t j = 0; j < i; j++) {
                        const struct config_listener *a = &cfg->listeners[j], *b = &cfg->listeners[i];
                        if (a->port != 0 && a->port == b->port && strcmp(a->host, b->host) == 0) {
                                set_err(err, err_len,
                                        "invalid value for listeners: %s and %s both use port %u",
                                        a->name, b->name, (unsigned)a->port);
                                return -EINVAL;
                        }
                }
        }

        key = broker_keys[BK_ADVERTISED_LISTENERS].def.name;
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
                        set_err(err, err_len,
                                "invalid value for advertised.listeners: %s is not one of the listeners",
                                a->name);
                        return -EINVAL;
                }
                if (strcmp(a->host, "0.0.0.0") == 0 || strcmp(a->host, "::") == 0) {
                        set_err(err, err_len,
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
        const struct broker_key_def *bk = find_broker_key(broker_key);
        assert(bk);     /* every topic synonym is a broker key */
        return bk ? cfg->slots[bk - broker_keys].text : NULL;
}

static void note_unused_keys(const struct broker_config *cfg, FILE *diag)
{
        for (size_t k = 0; k < BK_COUNT; k++) {
                if (cfg->slots[k].text && broker_keys[k].unused_note)
                        fprintf(diag, "runnel: note: %s is accepted and ignored: %s\n",
                                broker_keys[k].def.name, broker_keys[k].unused_note);
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
        set_err(err, err_len, "out of memory loading the configuration");
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
                set_err(err, err_len, "out of memory parsing the command line");
                memset(cfg, 0, sizeof(*cfg));
                return -ENOMEM;
        }
        for (int i = 1; i < argc; i++) {
                const char *arg = argv[i];
                if (strcmp(arg, "--override") == 0) {
                        if (i + 1 == argc) {
                                set_err(err, err_len, "--override needs key=value");
                                rc = -EINVAL;
                                goto out_usage;
                        }
                        overrides[count++] = argv[++i];
                } else if (strncmp(arg, "--override=", 11) == 0) {
                        overrides[count++] = arg + 11;
                } else if (arg[0] == '-' && arg[1] != '\0') {
                        set_err(err, err_len, "unknown option '%s'; usage: runnel [server.properties] "
                                              "[--override key=value]...", arg);
                        rc = -EINVAL;
                        goto out_usage;
                } else if (path) {
                        set_err(err, err_len, "more than one config file ('%s', '%s'); usage: runnel "
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
