/*
 * config_keys.c - the broker keys runnel knows: each one's name, type,
 * default, valid range or values and documentation, with Kafka's meanings
 * and defaults, in one table indexed by enum broker_key (config_internal.h).
 *
 * config.c loads values against it; DescribeConfigs (server/configs.c)
 * lists it through config_get_key(). A key accepted but unused says so
 * with its unused_note, once, when it is set. Every broker-level synonym
 * of a topic config is a key here (test_config.c checks it).
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "config_internal.h"

#define ANY_INT .int_min = INT64_MIN, .int_max = INT64_MAX
#define AT_LEAST(n) .int_min = (n), .int_max = INT64_MAX
#define BETWEEN(lo, hi) .int_min = (lo), .int_max = (hi)

#define LONG_MAX_TEXT "9223372036854775807"
#define INT_MAX_TEXT "2147483647"

static const char *const process_roles[] = { "broker", "controller", NULL };
static const char *const cleanup_policies[] = { "compact", "delete", NULL };
static const char *const compression_types[] = {
        "uncompressed", "zstd", "lz4", "snappy", "gzip", "producer", NULL
};
static const char *const timestamp_types[] = { "CreateTime", "LogAppendTime", NULL };

#define NO_QUORUM "a single runnel node has no KRaft quorum"

/* Every broker key is read-only: runnel has no dynamic broker configs yet. */
#define BROKER_KEY(...) { .is_read_only = true, __VA_ARGS__ }

const struct broker_key_def config_broker_keys[BK_COUNT] = {
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
        [BK_LOG_CLEANER_IO_BUFFER_LOAD_FACTOR] = { BROKER_KEY(
                .name = "log.cleaner.io.buffer.load.factor", .type = CONFIG_TYPE_DOUBLE, .default_text = "0.9",
                .double_min = 0.0, .double_max = 1.0,
                .doc = "How full the compactor's key-to-offset map may get before a pass stops adding keys.",
        ) },
        [BK_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND] = { BROKER_KEY(
                .name = "log.cleaner.io.max.bytes.per.second", .type = CONFIG_TYPE_DOUBLE,
                .default_text = "1.7976931348623157E308", .double_min = 0.0, .double_max = 1.7976931348623157E308,
                .doc = "Bytes per second the compactor may read plus write, over its threads.",
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

const struct broker_key_def *config_find_broker_key(const char *name)
{
        for (size_t i = 0; i < BK_COUNT; i++) {
                assert(config_broker_keys[i].def.name);
                if (strcmp(config_broker_keys[i].def.name, name) == 0)
                        return &config_broker_keys[i];
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
        return &config_broker_keys[index].def;
}

const struct config_def *config_find_key(const char *name)
{
        assert(name);
        const struct broker_key_def *bk = config_find_broker_key(name);
        return bk ? &bk->def : NULL;
}
