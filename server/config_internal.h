/*
 * config_internal.h - what the files of the configuration loader share:
 * config.c (loading, cross-key rules, typed fields), config_keys.c (the
 * table of broker keys) and config_properties.c (the Java properties
 * format). No other file includes it; the rest of the broker reads the
 * configuration through config.h.
 */
#ifndef RUNNEL_SERVER_CONFIG_INTERNAL_H
#define RUNNEL_SERVER_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config.h"

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
        BK_LOG_CLEANER_IO_BUFFER_LOAD_FACTOR,
        BK_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND,
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

/* The definition of every broker key, indexed by enum broker_key. */
extern const struct broker_key_def config_broker_keys[BK_COUNT];

/* The key named name, or NULL when runnel does not know it. */
const struct broker_key_def *config_find_broker_key(const char *name);

/* Formats a message into err (err_len bytes); nothing when err is NULL. */
void config_set_err(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
