/*
 * offsets.h - committed offsets: what each consumer group has committed for
 * each topic partition, kept in memory per __consumer_offsets partition and
 * persisted in that partition as Kafka's offset commit records.
 *
 * Owns:
 *
 *   - The record format, Kafka's coordinator record serde: a record key is
 *     an int16 record type followed by the key struct coded at that version,
 *     a record value an int16 version followed by the value struct; a null
 *     value is a tombstone. Types 0 and 1 are OffsetCommitKey (same layout;
 *     Kafka writes 1), 2 is GroupMetadataKey, 3 and up are the KIP-848 and
 *     share group records. OffsetCommitValue is written at v3, or at v1
 *     when the commit has an expire timestamp (OffsetCommit v2-v4 with a
 *     retention_time_ms), as Kafka 4.0 writes them. v0-v4 are read, unknown
 *     tagged fields skipped. Kafka 4.4 writes v4 with a topicId tagged field
 *     (not in runnel's schemas); every Kafka since 2.1 reads v3, so v3 it
 *     stays (KIP-915: v3 is the newest version readers before 3.6 know).
 *
 *   - struct offsets_store: the offsets of one __consumer_offsets
 *     partition, group -> topic -> partition -> committed offset, the
 *     "offsetsByGroup" of Kafka's OffsetMetadataManager.
 *
 *   - Transactional offsets (KIP-98, TxnOffsetCommit): commits written in
 *     a transactional batch wait, per producer id, as pending offsets
 *     invisible to OffsetFetch until the producer's transaction marker
 *     reaches the partition: COMMIT moves them to the committed offsets,
 *     ABORT drops them (Kafka's pendingTransactionalOffsets and
 *     replayEndTransactionMarker).
 *
 *   - Replay: rebuilding a store from its partition's log, batch by batch
 *     (struct offsets_loader). Records that are not offset commits
 *     (GroupMetadata, KIP-848 records) are handed to a hook so that the
 *     group coordinator can rebuild its own state from the same pass.
 *
 *   - Expiry: which offsets offsets.retention.minutes has expired, by
 *     Kafka's rules (see offsets_store_collect_expired).
 *
 * Invariant: a store equals the replay, in offset order, of the records of
 * its partition that have been durably appended: commits put, tombstones
 * remove. The writer keeps it so by building a batch with
 * offsets_batch_build(), appending it, and applying the same writes with
 * offsets_store_apply() only once the append has completed, in append
 * order. OffsetFetch therefore never sees a commit that is not durable.
 *
 * A transactional commit is staged (offsets_store_stage()) once its batch
 * is durable, and offsets_store_end_txn() runs once the marker is; so the
 * pending offsets too equal the replay of the durable log.
 *
 * While a group has writes in flight (offsets_store_begin_write() ..
 * offsets_store_end_write()) its offsets are not expired: an expiry decided
 * on a state that misses a commit still in flight could otherwise write a
 * tombstone after it and delete the fresh commit.
 *
 * Threads: a store and a loader belong to the thread that owns the
 * partition (its home reactor in the broker); nothing here locks.
 * Errors are negative errno values; Kafka error codes are the caller's.
 */
#ifndef RUNNEL_COORDINATOR_OFFSETS_H
#define RUNNEL_COORDINATOR_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/arena.h"
#include "../protocol/wire.h"
#include "../protocol/gen/group_metadata_value.h"
#include "log_replay.h"

struct partition;

/* Record types (the key's int16 prefix). */
#define OFFSETS_RECORD_TYPE_COMMIT_V0 0         /* written by Kafka before 0.11 */
#define OFFSETS_RECORD_TYPE_COMMIT 1
#define OFFSETS_RECORD_TYPE_GROUP_METADATA 2

/* OffsetCommitValue versions written. */
#define OFFSETS_VALUE_VERSION 3
#define OFFSETS_VALUE_VERSION_WITH_EXPIRE 1

#define OFFSETS_NO_TIMESTAMP (-1LL)
#define OFFSETS_NO_LEADER_EPOCH (-1)

/* Kafka's OffsetFetch answer for a partition without a committed offset. */
#define OFFSETS_INVALID_OFFSET (-1LL)

/* Limits: a batch holds at most this many records; a key at most three
 * int16-length strings. */
#define OFFSETS_BATCH_RECORDS_MAX 100000u

/* One committed offset: OffsetCommitValue as the store keeps it. */
struct offsets_value {
        int64_t offset;
        int32_t leader_epoch;           /* OFFSETS_NO_LEADER_EPOCH: none */
        struct kstr metadata;           /* never null: "" when the client sent null */
        int64_t commit_timestamp_ms;
        int64_t expire_timestamp_ms;    /* OFFSETS_NO_TIMESTAMP: the group's retention decides */
        /* The log offset of the record that wrote it (Kafka's
         * OffsetAndMetadata.recordOffset): a transaction's commit does not
         * replace a commit written after it. Not part of the record. */
        int64_t record_offset;
};

/* One record of __consumer_offsets about an offset: a commit, or a
 * tombstone deleting it. */
struct offsets_write {
        struct kstr group;
        struct kstr topic;
        int32_t partition;
        bool is_tombstone;
        struct offsets_value value;     /* unused for a tombstone */
};

/* ---- the record format ---- */

/*
 * Encodes a write's record key and value (value len -1 for a tombstone)
 * into arena memory. Returns 0, -EINVAL (a string longer than an int16
 * length can carry) or -ENOMEM.
 */
int offsets_record_encode(const struct offsets_write *w, struct arena *a, struct kbytes *key_out,
                          struct kbytes *value_out);

/* What a record of __consumer_offsets is. */
enum offsets_record_kind {
        OFFSETS_RECORD_COMMIT,          /* write filled in, not a tombstone */
        OFFSETS_RECORD_TOMBSTONE,       /* write filled in (group, topic, partition) */
        OFFSETS_RECORD_OTHER,           /* record_type says which; not decoded */
};

struct offsets_record {
        enum offsets_record_kind kind;
        int16_t record_type;
        struct offsets_write write;     /* strings point into the key and value */
};

/*
 * Decodes one record. key must not be null; value len -1 is a tombstone.
 * Returns 0 or -EBADMSG (truncated, an unknown value version, trailing
 * bytes in a key).
 */
int offsets_record_decode(struct kbytes key, struct kbytes value, struct offsets_record *out);

/*
 * Encodes writes as one uncompressed record batch, as Kafka's coordinator
 * writes them: base offset 0 (the log assigns offsets), no producer,
 * CreateTime now_ms for every record. The batch comes from arena a.
 * Returns 0, -EINVAL (count 0 or above OFFSETS_BATCH_RECORDS_MAX, a string
 * too long, a batch above INT32_MAX bytes) or -ENOMEM.
 */
int offsets_batch_build(const struct offsets_write *writes, uint32_t count, int64_t now_ms, struct arena *a,
                        uint8_t **batch_out, size_t *len_out);

/* The producer of a transactional batch of offset commits (TxnOffsetCommit). */
struct offsets_txn_producer {
        int64_t producer_id;
        int16_t producer_epoch;
        int32_t base_sequence;
};

/*
 * offsets_batch_build(), as a transactional batch of producer (when not
 * NULL): the transactional attribute, the producer's id, epoch and base
 * sequence, as Kafka's coordinator runtime writes a TxnOffsetCommit.
 */
int offsets_txn_batch_build(const struct offsets_write *writes, uint32_t count, int64_t now_ms,
                            const struct offsets_txn_producer *producer, struct arena *a, uint8_t **batch_out,
                            size_t *len_out);

/* Control record types (the control record key: int16 version, int16 type). */
#define OFFSETS_CONTROL_ABORT 0
#define OFFSETS_CONTROL_COMMIT 1

/* The type of a control record key: OFFSETS_CONTROL_ABORT or _COMMIT, or
 * -EBADMSG (short, a negative version, another type). */
int offsets_control_record_type(struct kbytes key);

/*
 * Java's String.length() of UTF-8 text, the measure Kafka compares with
 * offset.metadata.max.bytes (despite the name): UTF-16 code units, so a
 * character outside the BMP counts 2 and any other character 1.
 */
int64_t offsets_metadata_length(struct kstr metadata);

/* ---- group metadata records ---- */

/* GroupMetadataValue version written: 3, as Kafka 2.3+ writes it. */
#define OFFSETS_GROUP_VALUE_VERSION 3

/* A GroupMetadata record of a classic group: its metadata, or a tombstone
 * (the group was deleted). */
struct offsets_group_record {
        struct kstr group;
        bool is_tombstone;
        struct group_metadata_value value;      /* unused for a tombstone */
};

/*
 * Encodes a GroupMetadataKey (type 2) and GroupMetadataValue v3 (value len
 * -1 for a tombstone) into arena a. Returns 0, -EINVAL or -ENOMEM.
 */
int offsets_group_record_encode(const struct offsets_group_record *r, struct arena *a, struct kbytes *key_out,
                                struct kbytes *value_out);

/*
 * Decodes a record of type OFFSETS_RECORD_TYPE_GROUP_METADATA (any value
 * version 0-4); members come from arena a, strings point into key and
 * value. Returns 0, -EBADMSG or -ENOMEM.
 */
int offsets_group_record_decode(struct kbytes key, struct kbytes value, struct arena *a,
                                struct offsets_group_record *out);

/* One group record as a record batch, like offsets_batch_build(). */
int offsets_group_batch_build(const struct offsets_group_record *r, int64_t now_ms, struct arena *a,
                              uint8_t **batch_out, size_t *len_out);

/* ---- the store ---- */

struct offsets_store;

/* Returns NULL when memory runs out. */
struct offsets_store *offsets_store_create(void);
void offsets_store_destroy(struct offsets_store *s);

/* The committed offset, or NULL. Valid until the store next changes. */
const struct offsets_value *offsets_store_get(const struct offsets_store *s, struct kstr group,
                                              struct kstr topic, int32_t partition);

/*
 * Applies a commit (replacing any earlier one) or a tombstone (a no-op when
 * there is nothing to delete). Copies the strings it keeps. Returns 0 or
 * -ENOMEM, in which case the store is unchanged.
 */
int offsets_store_apply(struct offsets_store *s, const struct offsets_write *w);

/* ---- transactional offsets ---- */

/*
 * Stages a commit of producer_id's open transaction (replacing the same
 * partition's earlier pending commit of that producer), invisible to
 * offsets_store_get() until offsets_store_end_txn(). The group stays in
 * the store meanwhile. Copies the strings. Returns 0 or -ENOMEM (the store
 * is then unchanged).
 */
int offsets_store_stage(struct offsets_store *s, int64_t producer_id, const struct offsets_write *w);

/*
 * producer_id's transaction marker: COMMIT applies its pending offsets
 * (each one unless the committed offset has a later record_offset), ABORT
 * drops them; fn (may be NULL) is called with each group they were of,
 * after the change. A producer without pending offsets is a no-op.
 * Returns 0, or -ENOMEM when some commit could not be applied (the
 * pending offsets are gone either way).
 */
int offsets_store_end_txn(struct offsets_store *s, int64_t producer_id, bool is_commit,
                          void (*fn)(void *ctx, struct kstr group), void *ctx);

/* Whether any open transaction has a pending offset for the partition
 * (OffsetFetch require_stable answers UNSTABLE_OFFSET_COMMIT then). */
bool offsets_store_has_pending(const struct offsets_store *s, struct kstr group, struct kstr topic,
                               int32_t partition);

/* Whether any open transaction has pending offsets of the group. */
bool offsets_store_group_has_pending(const struct offsets_store *s, struct kstr group);

/* producer_id's pending offset for the partition, or NULL. */
const struct offsets_value *offsets_store_get_pending(const struct offsets_store *s, int64_t producer_id,
                                                      struct kstr group, struct kstr topic, int32_t partition);

/* Open transactions with pending offsets. */
uint32_t offsets_store_txn_count(const struct offsets_store *s);

/* Whether the group has a committed offset, a write in flight or pending
 * transactional offsets. */
bool offsets_store_has_group(const struct offsets_store *s, struct kstr group);

/* The group's committed offsets. */
uint32_t offsets_store_group_count(const struct offsets_store *s, struct kstr group);

/* Every committed offset in the store, and the groups that have some. */
uint64_t offsets_store_count(const struct offsets_store *s);
uint32_t offsets_store_groups(const struct offsets_store *s);

/* Calls fn with every group that has offsets or writes in flight, in no
 * particular order; fn must not change the store. */
void offsets_store_for_each_group(const struct offsets_store *s, void (*fn)(void *ctx, struct kstr group),
                                  void *ctx);

/* One committed offset of a listing, copied into the caller's arena. */
struct offsets_item {
        struct kstr topic;
        int32_t partition;
        struct offsets_value value;
};

/*
 * The group's offsets sorted by topic, then partition, with every string
 * copied into arena a (so they outlive later changes to the store).
 * Returns 0 (count 0 and items NULL for a group without offsets) or -ENOMEM.
 */
int offsets_store_list_group(const struct offsets_store *s, struct kstr group, struct arena *a,
                             struct offsets_item **items_out, uint32_t *count_out);

/*
 * Tombstones for every offset of the group (DeleteGroups), in arena a.
 * Returns 0 or -ENOMEM.
 */
int offsets_store_collect_group(const struct offsets_store *s, struct kstr group, struct arena *a,
                                struct offsets_write **writes_out, uint32_t *count_out);

/* Marks a write of the group in flight / finished. begin returns 0 or
 * -ENOMEM (it may have to create the group's entry). */
int offsets_store_begin_write(struct offsets_store *s, struct kstr group);
void offsets_store_end_write(struct offsets_store *s, struct kstr group);

/* ---- expiry ---- */

/* How a group's offsets expire now: Kafka's OffsetExpirationCondition. */
enum offsets_expiry {
        /* Not at all: the group has members and no way to tell what they
         * consume (a non-consumer protocol, or a rebalance under way). */
        OFFSETS_EXPIRY_NEVER,
        /* Retention counts from each offset's commit timestamp: a simple
         * group (no protocol type), or the topics a Stable consumer group
         * is not subscribed to. */
        OFFSETS_EXPIRY_FROM_COMMIT,
        /* Retention counts from base_ms, when the group became Empty (the
         * commit timestamp when that time is unknown, base_ms < 0). */
        OFFSETS_EXPIRY_FROM_EMPTY,
};

/* What the group coordinator knows of a group; NULL functions (or a NULL
 * ops) mean a group without membership: FROM_COMMIT, subscribed to nothing. */
struct offsets_group_ops {
        enum offsets_expiry (*expiry)(void *ctx, struct kstr group, int64_t *base_ms);
        bool (*is_subscribed)(void *ctx, struct kstr group, struct kstr topic);
        void *ctx;
};

/*
 * Tombstones, in arena a, for the offsets expired at now_ms, at most
 * max_count of them: an offset of a topic the group is not subscribed to,
 * of a group without writes in flight, whose expire timestamp has passed or,
 * without one, whose base (above) is retention_ms or more in the past.
 * Returns 0 or -ENOMEM.
 */
int offsets_store_collect_expired(const struct offsets_store *s, int64_t now_ms, int64_t retention_ms,
                                  const struct offsets_group_ops *ops, uint32_t max_count, struct arena *a,
                                  struct offsets_write **writes_out, uint32_t *count_out);

/* ---- replay ---- */

/* Called for each record that is not an offset commit, in log order. */
typedef void (*offsets_record_hook_fn)(void *ctx, int64_t offset, int16_t record_type, struct kbytes key,
                                       struct kbytes value);

struct offsets_replay_stats {
        uint64_t batch_count;
        uint64_t commit_count;
        uint64_t tombstone_count;
        uint64_t other_count;           /* handed to the hook */
        uint64_t skipped_count;         /* undecodable records and markers */
        uint64_t pending_count;         /* transactional commits staged */
        uint64_t marker_count;          /* transaction markers read */
};

/*
 * Replays the records of one whole batch whose offsets are >= from_offset.
 * The commits of a transactional batch are staged for its producer; a
 * control batch (a transaction marker) commits or drops what its producer
 * staged; what is still staged at the end of the log stays pending. A
 * compressed batch is decompressed into scratch. A record that does not
 * decode is skipped and counted (Kafka fails the load; runnel keeps the
 * rest). Returns 0, -EBADMSG (the batch itself is corrupt) or -ENOMEM.
 */
int offsets_store_replay_batch(struct offsets_store *s, const uint8_t *batch, size_t len, int64_t from_offset,
                               struct arena *scratch, offsets_record_hook_fn hook, void *hook_ctx,
                               struct offsets_replay_stats *stats);

/* Loads a store from a partition's log, a step at a time. */
struct offsets_loader {
        struct log_replay replay;
        struct offsets_replay_stats stats;
};

/* Starts at the log start offset and ends at the current high watermark. */
void offsets_loader_init(struct offsets_loader *l, struct partition *p);

/*
 * Replays about step_bytes of the log (at least one batch) into s, on the
 * partition's thread. Returns 1 while more remains, 0 once the load is
 * done, or -errno: -EIO when the log cannot be read, -EBADMSG when what it
 * reads is not record batches, -ENOMEM.
 */
int offsets_loader_step(struct offsets_loader *l, struct partition *p, struct offsets_store *s,
                        uint32_t step_bytes, offsets_record_hook_fn hook, void *hook_ctx);

#endif
