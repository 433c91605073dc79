/*
 * txn.h - the transaction coordinator of one __transaction_state
 * partition: InitProducerId with a transactional id, AddPartitionsToTxn,
 * AddOffsetsToTxn, EndTxn, transaction timeouts, transactional id expiry,
 * ListTransactions and DescribeTransactions, decided as Kafka's
 * TransactionCoordinator and TransactionMetadata decide them.
 *
 * Pure: no I/O, no clock, no threads. Time comes in as now_ms arguments;
 * new producer ids come from the caller's allocator (struct txn_env). What
 * the coordinator needs done comes out in a struct txn_output:
 *
 *   - appends: records (TransactionLogKey / TransactionLogValue, or a
 *     tombstone) that the caller appends to the partition, in order. A
 *     state change takes effect only when the caller reports the append
 *     with txn_append_done(): until then the transactional id has a
 *     pending state and other requests for it get CONCURRENT_TRANSACTIONS,
 *     as in Kafka. The answer to the request that asked for the append
 *     comes out of txn_append_done().
 *   - markers: once PrepareCommit or PrepareAbort is durable, the
 *     (partitions, producer id, epoch, result, coordinator epoch) markers
 *     the caller writes with WriteTxnMarkers. When they are written
 *     (txn_markers_done(), or txn_marker_partition_done() one partition at
 *     a time) the coordinator asks for the CompleteCommit/CompleteAbort
 *     append.
 *   - an answer (error code, producer id, epoch) when the request is
 *     answered now.
 *
 * States (Kafka's TransactionState) and their moves:
 *
 *   Empty, CompleteCommit,
 *   CompleteAbort ----------> Empty            InitProducerId (epoch bump)
 *   Empty, Ongoing,
 *   CompleteCommit,
 *   CompleteAbort ----------> Ongoing          AddPartitionsToTxn, AddOffsetsToTxn
 *   Ongoing ----------------> PrepareCommit    EndTxn(commit)
 *   Ongoing ----------------> PrepareAbort     EndTxn(abort); and through
 *                                              PrepareEpochFence (never
 *                                              written) when InitProducerId
 *                                              fences an ongoing transaction
 *                                              or it times out: epoch + 1
 *   PrepareCommit ----------> CompleteCommit   every marker written
 *   PrepareAbort -----------> CompleteAbort    every marker written
 *   Empty, Complete* -------> Dead             idle past transactional.id.expiration.ms:
 *                                              a tombstone; removed once durable
 *
 * Kafka behaviour followed: TransactionCoordinator.scala,
 * TransactionMetadata.scala, TransactionStateManager.scala and
 * TransactionLog.scala of Kafka 4 (see txn.c for the details). The broker
 * modelled runs transaction.version 1 (KIP-890 part 1): records carry the
 * version-1 (flexible) value when TXN_CONFIG transaction_version is 1 and
 * version 0 when it is 0; the per-transaction epoch bump of
 * transaction.version 2 (EndTxn v5+) is not implemented, so the broker
 * must not advertise EndTxn above v4.
 *
 * Invariants (asserted in txn.c):
 *   - at most one state change per transactional id is in flight: an
 *     append, or markers being written then the Complete* append;
 *   - a transactional id in PrepareCommit/PrepareAbort after load or after
 *     its Prepare* append has its markers outstanding;
 *   - partitions are non-empty only in Ongoing and Prepare*;
 *   - the in-memory state is the replay of the durable records, except for
 *     what Kafka also keeps only in memory (last epoch, previous producer id,
 *     the epoch of a failed fence, partitions whose markers are written).
 *
 * Threads: one coordinator belongs to the thread that owns its partition;
 * nothing locks. Errors to clients are Kafka error codes (enum kafka_error);
 * -errno only from the record and replay functions.
 */
#ifndef RUNNEL_COORDINATOR_TXN_H
#define RUNNEL_COORDINATOR_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/arena.h"
#include "../protocol/wire.h"

#define TXN_NO_PRODUCER_ID (-1LL)
#define TXN_NO_PRODUCER_EPOCH ((int16_t)-1)

/* The topic AddOffsetsToTxn adds a partition of. */
#define TXN_OFFSETS_TOPIC "__consumer_offsets"

/* Limits beyond Kafka's own: transactional ids per coordinator (a new one
 * past it gets COORDINATOR_NOT_AVAILABLE) and partitions in one
 * transaction (an AddPartitionsToTxn that would pass it gets
 * UNKNOWN_SERVER_ERROR; Kafka has no limit but memory). */
#define TXN_COUNT_MAX 1000000u
#define TXN_PARTITIONS_MAX 100000u

/* TransactionLogValue versions: 0, and 1 (flexible, KIP-915) which Kafka
 * writes from transaction.version 1. */
#define TXN_LOG_KEY_VERSION 0

enum txn_state {
        TXN_EMPTY = 0,                  /* the TransactionStatus ids of the record */
        TXN_ONGOING = 1,
        TXN_PREPARE_COMMIT = 2,
        TXN_PREPARE_ABORT = 3,
        TXN_COMPLETE_COMMIT = 4,
        TXN_COMPLETE_ABORT = 5,
        TXN_DEAD = 6,
        TXN_PREPARE_EPOCH_FENCE = 7,
};
#define TXN_STATE_COUNT 8

/* Kafka's names ("Empty", "Ongoing", "PrepareCommit", ...). */
const char *txn_state_name(enum txn_state s);
/* The state with exactly this name (ListTransactions filters); false if none. */
bool txn_state_parse(struct kstr name, enum txn_state *out);

struct txn_config {
        int32_t max_timeout_ms;                 /* transaction.max.timeout.ms (900000) */
        int64_t transactional_id_expiration_ms; /* transactional.id.expiration.ms (604800000) */
        int32_t offsets_partition_count;        /* offsets.topic.num.partitions (50) */
        int16_t transaction_version;            /* feature level: 0 or 1 */
};

/*
 * The producer id allocator (the broker's durable block allocator). Returns
 * a Kafka error code: NONE with *producer_id_out set, or the error the
 * request gets (COORDINATOR_LOAD_IN_PROGRESS while a block is being
 * fetched, UNKNOWN_SERVER_ERROR...).
 */
struct txn_env {
        int16_t (*next_producer_id)(void *ctx, int64_t *producer_id_out);
        void *ctx;
};

/* A topic and some of its partitions, in requests and in markers. */
struct txn_topic_partitions {
        struct kstr topic;
        int32_t partition_count;
        const int32_t *partitions;
};

/* A record to append to the partition: value null (len -1) for a tombstone. */
struct txn_append {
        uint64_t id;                            /* report it with txn_append_done() */
        struct kstr transactional_id;
        struct kbytes key;
        struct kbytes value;
};

/* Markers to write for one transaction (one WriteTxnMarkers entry). */
struct txn_markers {
        uint64_t id;                            /* report with txn_markers_done() */
        struct kstr transactional_id;
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t coordinator_epoch;
        bool is_commit;
        int32_t topic_count;
        struct txn_topic_partitions *topics;
};

/*
 * What a call produced; everything in it lives in the arena passed to the
 * call. has_answer: the request is answered (producer id and epoch are
 * InitProducerId's and EndTxn v5's fields; -1 when not applicable).
 */
struct txn_output {
        bool has_answer;
        int16_t error_code;
        int64_t producer_id;
        int16_t producer_epoch;
        uint32_t append_count;
        struct txn_append *appends;
        uint32_t markers_count;
        struct txn_markers *markers;
        /* The arena ran out: an append or markers could not be handed out.
         * The change they belong to did not start (a request is answered
         * UNKNOWN_SERVER_ERROR); markers stay outstanding, listed again by
         * txn_collect_markers(). */
        bool is_truncated;
        uint32_t append_cap, markers_cap;       /* private */
};

struct txn_coordinator;

/* NULL when memory runs out. cfg and env are copied. The coordinator
 * starts loaded and empty, at coordinator_epoch. */
struct txn_coordinator *txn_coordinator_create(const struct txn_config *cfg, const struct txn_env *env,
                                               int32_t coordinator_epoch);
void txn_coordinator_destroy(struct txn_coordinator *tc);

/* Transactional ids known (any state). */
uint32_t txn_coordinator_count(const struct txn_coordinator *tc);

/* ---- requests ---- */

/*
 * InitProducerId with a transactional id (the null id is the idempotent
 * producer's, not this module's: INVALID_REQUEST here). producer_id and
 * producer_epoch are the request's (KIP-360), both -1 when absent.
 */
void txn_init_producer_id(struct txn_coordinator *tc, struct kstr transactional_id, int32_t timeout_ms,
                          int64_t producer_id, int16_t producer_epoch, int64_t now_ms, struct arena *a,
                          struct txn_output *out);

/* AddPartitionsToTxn for one transaction: v0-v3 from a client, or one
 * non-verify-only transaction of v4+. One error for all its partitions. */
void txn_add_partitions(struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id,
                        int16_t producer_epoch, const struct txn_topic_partitions *topics, int32_t topic_count,
                        int64_t now_ms, struct arena *a, struct txn_output *out);

/*
 * AddPartitionsToTxn v4+ verify_only (a broker checking a transactional
 * produce): never appends. Returns the transaction-wide error, or NONE
 * with errors_out[i] for the i-th partition (flattened in request order):
 * NONE when it is in the transaction, TRANSACTION_ABORTABLE when not.
 * On a transaction-wide error every errors_out[i] is that error.
 */
int16_t txn_verify_partitions(const struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id,
                              int16_t producer_epoch, const struct txn_topic_partitions *topics,
                              int32_t topic_count, int16_t *errors_out);

/* AddOffsetsToTxn: adds __consumer_offsets partition
 * abs(hash(group_id)) % offsets_partition_count. */
void txn_add_offsets(struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id,
                     int16_t producer_epoch, struct kstr group_id, int64_t now_ms, struct arena *a,
                     struct txn_output *out);

/* The __consumer_offsets partition AddOffsetsToTxn adds for a group. */
int32_t txn_offsets_partition_of(const struct txn_coordinator *tc, struct kstr group_id);

/* EndTxn (v0-v4). */
void txn_end(struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id, int16_t producer_epoch,
             bool is_commit, int64_t now_ms, struct arena *a, struct txn_output *out);

/* ---- completions ---- */

/*
 * An append finished: append_error is the log's error code (NONE when
 * durable). Answers the request that asked for it, if any (an append the
 * coordinator no longer knows answers NOT_COORDINATOR, as Kafka does after
 * an unload), and may ask for markers or a retry of a Complete* append
 * (when the error maps to COORDINATOR_NOT_AVAILABLE, Kafka's retry queue).
 */
void txn_append_done(struct txn_coordinator *tc, struct kstr transactional_id, uint64_t append_id,
                     int16_t append_error, int64_t now_ms, struct arena *a, struct txn_output *out);

/*
 * Every marker of a txn_markers was written (or its partition no longer
 * exists): the coordinator asks for the CompleteCommit/CompleteAbort
 * append. A stale id (the transaction moved on, or was unloaded) is
 * ignored. out has no answer.
 */
void txn_markers_done(struct txn_coordinator *tc, struct kstr transactional_id, uint64_t markers_id,
                      int64_t now_ms, struct arena *a, struct txn_output *out);

/* One partition's marker was written (or the partition is gone): it
 * leaves the transaction, and the last one leads to the Complete* append. */
void txn_marker_partition_done(struct txn_coordinator *tc, struct kstr transactional_id, uint64_t markers_id,
                               struct kstr topic, int32_t partition, int64_t now_ms, struct arena *a,
                               struct txn_output *out);

/* Every transaction whose markers are outstanding (after a lost output,
 * or to resend them all), into out. */
void txn_collect_markers(struct txn_coordinator *tc, struct arena *a, struct txn_output *out);

/* ---- time ---- */

/*
 * Aborts, with an epoch bump (a PrepareEpochFence then PrepareAbort
 * append), up to max_count Ongoing transactions without a pending change
 * whose start + timeout < now_ms (Kafka's abortTimedOutTransactions, run
 * every transaction.abort.timed.out.transaction.cleanup.interval.ms).
 */
void txn_abort_timed_out(struct txn_coordinator *tc, int64_t now_ms, uint32_t max_count, struct arena *a,
                         struct txn_output *out);

/*
 * Tombstones for up to max_count transactional ids in Empty,
 * CompleteCommit or CompleteAbort, without a pending change, last updated
 * at or before now_ms - transactional.id.expiration.ms (Kafka's
 * removeExpiredTransactionalIds, run every
 * transactional.id.expiration.check.interval.ms). Each is removed when its
 * tombstone is durable.
 */
void txn_expire_ids(struct txn_coordinator *tc, int64_t now_ms, uint32_t max_count, struct arena *a,
                    struct txn_output *out);

/* ---- load ---- */

/*
 * Forgets every transactional id (the partition is being reloaded or
 * handed away) and enters loading at coordinator_epoch: until
 * txn_load_end() requests answer COORDINATOR_LOAD_IN_PROGRESS. Appends
 * and markers in flight become stale.
 */
void txn_load_begin(struct txn_coordinator *tc, int32_t coordinator_epoch);

/*
 * Replays one record of the partition, in log order: a value replaces the
 * id's state, a tombstone removes it. Returns 0, -EBADMSG (an unknown
 * value version or state, a record that does not decode; Kafka fails the
 * load) or -ENOMEM. A key of an unknown version is skipped (1), as Kafka
 * skips it.
 */
int txn_replay_record(struct txn_coordinator *tc, struct kbytes key, struct kbytes value);

/*
 * Replays every record of one record batch with offsets >= from_offset;
 * control batches are skipped. Returns 0, -EBADMSG or -ENOMEM.
 */
int txn_replay_batch(struct txn_coordinator *tc, const uint8_t *batch, size_t len, int64_t from_offset,
                     struct arena *scratch);

/* Ends the load: transactions in PrepareCommit/PrepareAbort resume, their
 * markers in out. */
void txn_load_end(struct txn_coordinator *tc, int64_t now_ms, struct arena *a, struct txn_output *out);

/* Drops everything and stays unloaded: requests answer NOT_COORDINATOR. */
void txn_unload(struct txn_coordinator *tc);

/* ---- records ---- */

/* The decoded form of a value record. */
struct txn_record_value {
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t timeout_ms;
        enum txn_state state;
        int64_t last_update_ms;
        int64_t start_ms;
        int32_t topic_count;
        struct txn_topic_partitions *topics;
};

/* Decodes a key (its transactional id, pointing into key) and a value
 * (null for a tombstone: returns 1). 0, 1, -EBADMSG or -ENOMEM. */
int txn_record_decode(struct kbytes key, struct kbytes value, struct arena *a, struct kstr *transactional_id_out,
                      struct txn_record_value *value_out);

/* The appends as one uncompressed record batch, as Kafka's coordinator
 * writes them (base offset 0, no producer, CreateTime now_ms). 0, -EINVAL
 * or -ENOMEM. */
int txn_batch_build(const struct txn_append *appends, uint32_t count, int64_t now_ms, struct arena *a,
                    uint8_t **batch_out, size_t *len_out);

/* ---- listing ---- */

struct txn_description {
        int16_t error_code;
        enum txn_state state;
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t timeout_ms;
        int64_t start_ms;
        int32_t topic_count;
        struct txn_topic_partitions *topics;    /* in arena */
};

/* DescribeTransactions for one id: NONE, INVALID_REQUEST (empty id),
 * TRANSACTIONAL_ID_NOT_FOUND, COORDINATOR_LOAD_IN_PROGRESS,
 * NOT_COORDINATOR; -ENOMEM leaves error_code UNKNOWN_SERVER_ERROR. */
void txn_describe(const struct txn_coordinator *tc, struct kstr transactional_id, struct arena *a,
                  struct txn_description *out);

struct txn_listing {
        struct kstr transactional_id;
        int64_t producer_id;
        enum txn_state state;
};

/*
 * ListTransactions: the ids whose state is among state_filters (names;
 * none: any), whose producer id is among producer_id_filters (none: any),
 * and, when duration_filter_ms >= 0, that started more than that long
 * before now_ms. Dead ids are never listed. Filters that name no state go
 * to unknown_out (pointing at the request's strings). Returns NONE,
 * COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR or UNKNOWN_SERVER_ERROR
 * (arena exhausted).
 */
int16_t txn_list(const struct txn_coordinator *tc, const struct kstr *state_filters, int32_t state_filter_count,
                 const int64_t *producer_id_filters, int32_t producer_id_filter_count, int64_t duration_filter_ms,
                 int64_t now_ms, struct arena *a, struct txn_listing **items_out, uint32_t *count_out,
                 struct kstr **unknown_out, uint32_t *unknown_count_out);

#endif
