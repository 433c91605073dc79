/*
 * txn.c - the transaction coordinator of one __transaction_state
 * partition; see txn.h for the contract. Its records and their load are
 * in txn_log.c, the partition sets of transactions in txn_pset.c.
 *
 * Kafka behaviour followed (core/.../coordinator/transaction/):
 *   - TransactionMetadata: a transactional id has a current state and at
 *     most one pending transition (TxnTransitMetadata), which becomes
 *     current only when its record is durable (completeTransitionTo). A
 *     failed append clears the pending state and answers the mapped error
 *     (appendTransactionToLog's mapping, append_error_map() here).
 *   - InitProducerId (handleInitProducerId, prepareInitProducerIdTransit,
 *     prepareIncrementProducerEpoch, prepareProducerIdRotation): KIP-360
 *     checks, CONCURRENT_TRANSACTIONS while a change is pending or a
 *     transaction is in Prepare*, epoch bump or a new producer id once the
 *     epoch reaches Short.MaxValue - 1, and for an Ongoing transaction a
 *     fence: epoch + 1, abort, answer CONCURRENT_TRANSACTIONS so that the
 *     client retries (and gets a second bump).
 *   - EndTxn (endTransaction, transaction version < 2): retried EndTxn of
 *     a completed transaction with the same result answers NONE; a Prepare*
 *     with the same result CONCURRENT_TRANSACTIONS; any other mismatch
 *     INVALID_TXN_STATE.
 *   - After Prepare* is durable Kafka immediately prepares the Complete*
 *     transition (pending while markers are written), hands the markers to
 *     its channel manager, and writes Complete* once no partition is left
 *     (TransactionMarkerChannelManager.maybeWriteTxnCompletion). A partition
 *     whose marker is written leaves the transaction's partition set.
 *   - Timeouts: Ongoing, no pending change, start + timeout < now; aborted
 *     with prepareFenceProducerEpoch (not bumped again after a fence whose
 *     append failed: hasFailedEpochFence).
 *   - Expiry: Empty/Complete*, no pending change, last update <= now -
 *     expiration; a tombstone; removed from the cache when it is durable.
 *   - Records (TransactionLog): key version 0; value version 0, or 1 from
 *     transaction.version 1; partitions null in Empty, grouped by topic
 *     otherwise; the previous/next producer id tags are not written (Kafka
 *     4 leaves them at their defaults); ClientTransactionVersion is 0.
 *   - Load (loadTransactionMetadata): the last record of each id wins, a
 *     tombstone removes it; an unknown key version is skipped; ids in
 *     Prepare* resume their markers when the load ends.
 */
#include "txn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"
#include "../protocol/compress.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/transaction_log_key.h"
#include "../protocol/gen/transaction_log_value.h"
#include "../protocol/record_batch.h"
#include "txn_internal.h"

#define TXN_BUCKETS_MIN 16u

/* ---- transactional ids ---- */

/* What the pending change is for: who gets the answer, what follows. */

static const char *const state_names[TXN_STATE_COUNT] = {
        "Empty", "Ongoing", "PrepareCommit", "PrepareAbort", "CompleteCommit", "CompleteAbort", "Dead",
        "PrepareEpochFence",
};

const char *txn_state_name(enum txn_state s)
{
        assert((unsigned)s < TXN_STATE_COUNT);
        return state_names[s];
}

bool txn_state_parse(struct kstr name, enum txn_state *out)
{
        for (int i = 0; i < TXN_STATE_COUNT; i++) {
                if (kstr_eq_cstr(name, state_names[i])) {
                        *out = (enum txn_state)i;
                        return true;
                }
        }
        return false;
}

static uint64_t id_hash(struct kstr id)
{
        uint64_t h = 1469598103934665603ULL;
        for (int32_t i = 0; i < id.len; i++)
                h = (h ^ (uint8_t)id.ptr[i]) * 1099511628211ULL;
        return h;
}

static struct kstr entry_id(const struct txn_entry *e)
{
        return (struct kstr){ e->id, e->id_len };
}

static void entry_check(const struct txn_entry *e)
{
        assert(e->partitions.count == 0 || e->state == TXN_ONGOING || e->state == TXN_PREPARE_COMMIT ||
               e->state == TXN_PREPARE_ABORT);
        assert(!e->has_pending || e->op != OP_NONE);
        assert(e->append_id == 0 || e->has_pending);
        assert(e->markers_id == 0 || (e->has_pending && e->op == OP_COMPLETE && e->append_id == 0));
        assert(e->markers_id == 0 || e->state == TXN_PREPARE_COMMIT || e->state == TXN_PREPARE_ABORT);
        assert(e->state != TXN_PREPARE_EPOCH_FENCE);
        (void)e;
}

struct txn_entry *txn_entry_find(const struct txn_coordinator *tc, struct kstr id)
{
        uint64_t h = id_hash(id);
        for (struct txn_entry *e = tc->buckets[h & (tc->bucket_count - 1)]; e; e = e->hnext)
                if (e->hash == h && kstr_eq(entry_id(e), id))
                        return e;
        return NULL;
}

static void grow(struct txn_coordinator *tc)
{
        uint32_t count = tc->bucket_count * 2;
        struct txn_entry **b = calloc(count, sizeof(*b));
        if (!b)
                return;                 /* chains grow longer */
        for (struct txn_entry *e = tc->head; e; e = e->next) {
                e->hnext = b[e->hash & (count - 1)];
                b[e->hash & (count - 1)] = e;
        }
        free(tc->buckets);
        tc->buckets = b;
        tc->bucket_count = count;
}

/* A new id in Empty with epoch -1 (Kafka's freshly created metadata). */
struct txn_entry *txn_entry_create(struct txn_coordinator *tc, struct kstr id)
{
        assert(id.len > 0 && !txn_entry_find(tc, id));
        struct txn_entry *e = calloc(1, sizeof(*e));
        char *copy = malloc((size_t)id.len + 1);
        if (!e || !copy) {
                free(e);
                free(copy);
                return NULL;
        }
        memcpy(copy, id.ptr, (size_t)id.len);
        copy[id.len] = '\0';
        e->id = copy;
        e->id_len = id.len;
        e->hash = id_hash(id);
        e->state = TXN_EMPTY;
        e->producer_id = TXN_NO_PRODUCER_ID;
        e->previous_producer_id = TXN_NO_PRODUCER_ID;
        e->producer_epoch = TXN_NO_PRODUCER_EPOCH;
        e->last_producer_epoch = TXN_NO_PRODUCER_EPOCH;
        e->start_ms = -1;
        if (tc->count >= tc->bucket_count)
                grow(tc);
        struct txn_entry **head = &tc->buckets[e->hash & (tc->bucket_count - 1)];
        e->hnext = *head;
        *head = e;
        e->prev = tc->tail;
        if (tc->tail)
                tc->tail->next = e;
        else
                tc->head = e;
        tc->tail = e;
        tc->count++;
        return e;
}

void txn_entry_destroy(struct txn_coordinator *tc, struct txn_entry *e)
{
        struct txn_entry **pp = &tc->buckets[e->hash & (tc->bucket_count - 1)];
        while (*pp != e) {
                assert(*pp);
                pp = &(*pp)->hnext;
        }
        *pp = e->hnext;
        if (e->prev)
                e->prev->next = e->next;
        else
                tc->head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        else
                tc->tail = e->prev;
        tc->count--;
        txn_pset_free(&e->partitions);
        txn_pset_free(&e->transit.added);
        free(e->id);
        free(e);
}

void txn_clear_all(struct txn_coordinator *tc)
{
        while (tc->head)
                txn_entry_destroy(tc, tc->head);
}

struct txn_coordinator *txn_coordinator_create(const struct txn_config *cfg, const struct txn_env *env,
                                               int32_t coordinator_epoch)
{
        assert(cfg->max_timeout_ms > 0 && cfg->offsets_partition_count > 0);
        assert(cfg->transaction_version == 0 || cfg->transaction_version == 1);
        assert(env->next_producer_id);
        struct txn_coordinator *tc = calloc(1, sizeof(*tc));
        if (!tc)
                return NULL;
        tc->buckets = calloc(TXN_BUCKETS_MIN, sizeof(*tc->buckets));
        if (!tc->buckets) {
                free(tc);
                return NULL;
        }
        tc->bucket_count = TXN_BUCKETS_MIN;
        tc->cfg = *cfg;
        tc->env = *env;
        tc->coordinator_epoch = coordinator_epoch;
        tc->phase = PHASE_LOADED;
        tc->next_id = 1;
        return tc;
}

void txn_coordinator_destroy(struct txn_coordinator *tc)
{
        if (!tc)
                return;
        txn_clear_all(tc);
        free(tc->buckets);
        free(tc);
}

uint32_t txn_coordinator_count(const struct txn_coordinator *tc)
{
        return tc->count;
}

/* ---- output ---- */

void txn_out_reset(struct txn_output *out)
{
        memset(out, 0, sizeof(*out));
        out->producer_id = TXN_NO_PRODUCER_ID;
        out->producer_epoch = TXN_NO_PRODUCER_EPOCH;
}

static void answer(struct txn_output *out, int16_t error_code)
{
        out->has_answer = true;
        out->error_code = error_code;
        out->producer_id = TXN_NO_PRODUCER_ID;
        out->producer_epoch = TXN_NO_PRODUCER_EPOCH;
}

static void answer_ids(struct txn_output *out, int16_t error_code, int64_t producer_id, int16_t producer_epoch)
{
        answer(out, error_code);
        out->producer_id = producer_id;
        out->producer_epoch = producer_epoch;
}

/* Room for one more element of an output array; NULL when the arena ran out. */
static void *out_slot(struct arena *a, void **items, uint32_t *count, uint32_t *cap, size_t size)
{
        if (*count == *cap) {
                uint32_t ncap = *cap ? *cap * 2 : 4;
                void *n = arena_alloc(a, (size_t)ncap * size);
                if (!n)
                        return NULL;
                if (*count)
                        memcpy(n, *items, (size_t)*count * size);
                *items = n;
                *cap = ncap;
        }
        return (char *)*items + (size_t)(*count)++ * size;
}

/* Encodes e's pending transit (or a tombstone for OP_EXPIRE) as an append
 * in out and records its id in e. 0 or -ENOMEM/-EINVAL (nothing changed). */
static int issue_append(struct txn_coordinator *tc, struct txn_entry *e, struct arena *a, struct txn_output *out)
{
        assert(e->has_pending && e->append_id == 0);
        struct kbytes key, value = KBYTES_NULL;
        int rc = txn_encode_key(entry_id(e), a, &key);
        if (rc == 0 && e->op != OP_EXPIRE)
                rc = txn_encode_value(tc, e, a, &value);
        struct kstr id = { arena_dup(a, e->id, (size_t)e->id_len + 1), e->id_len };
        if (rc == 0 && !id.ptr)
                rc = -ENOMEM;
        struct txn_append *slot = rc == 0 ? out_slot(a, (void **)&out->appends, &out->append_count,
                                                     &out->append_cap, sizeof(*slot)) :
                                            NULL;
        if (!slot) {
                out->is_truncated = true;
                return rc < 0 ? rc : -ENOMEM;
        }
        e->append_id = tc->next_id++;
        *slot = (struct txn_append){ e->append_id, id, key, value };
        return 0;
}

/* Drops e's pending change (Kafka's pendingState = None). */
static void drop_pending(struct txn_entry *e)
{
        txn_pset_free(&e->transit.added);
        e->has_pending = false;
        e->op = OP_NONE;
        e->append_id = 0;
        e->markers_id = 0;
}

/* Sets e's pending change and asks for its append; on failure to encode
 * nothing is pending and the request is answered UNKNOWN_SERVER_ERROR. */
static void begin_change(struct txn_coordinator *tc, struct txn_entry *e, enum txn_op op,
                         const struct txn_transit *t, struct arena *a, struct txn_output *out)
{
        assert(!e->has_pending);
        e->has_pending = true;
        e->op = op;
        e->transit = *t;
        if (issue_append(tc, e, a, out) < 0) {
                drop_pending(e);
                if (op != OP_TIMEOUT_ABORT && op != OP_EXPIRE)
                        answer(out, KAFKA_UNKNOWN_SERVER_ERROR);
        }
        entry_check(e);
}

static struct txn_transit transit_of(const struct txn_entry *e, enum txn_state state, int64_t now_ms)
{
        return (struct txn_transit){
                .state = state,
                .producer_id = e->producer_id,
                .producer_epoch = e->producer_epoch,
                .last_producer_epoch = e->last_producer_epoch,
                .timeout_ms = e->timeout_ms,
                .start_ms = e->start_ms,
                .last_update_ms = now_ms,
        };
}

/* ---- markers ---- */

/* Hands out e's markers (or, with no partition left, its Complete append). */
static void emit_markers(struct txn_coordinator *tc, struct txn_entry *e, struct arena *a, struct txn_output *out)
{
        assert(e->markers_id != 0);
        if (e->partitions.count == 0) {
                e->markers_id = 0;
                if (issue_append(tc, e, a, out) < 0)
                        e->markers_id = tc->next_id++;  /* still outstanding: collect again */
                entry_check(e);
                return;
        }
        struct txn_markers *m = out_slot(a, (void **)&out->markers, &out->markers_count, &out->markers_cap,
                                         sizeof(*m));
        char *id = m ? arena_dup(a, e->id, (size_t)e->id_len + 1) : NULL;
        struct txn_topic_partitions *topics = NULL;
        int32_t topic_count = 0;
        if (!id || txn_pset_export(&e->partitions, NULL, a, &topics, &topic_count) < 0) {
                if (m)
                        out->markers_count--;
                out->is_truncated = true;
                return;
        }
        *m = (struct txn_markers){
                .id = e->markers_id,
                .transactional_id = { id, e->id_len },
                .producer_id = e->producer_id,
                .producer_epoch = e->producer_epoch,
                .coordinator_epoch = tc->coordinator_epoch,
                .is_commit = e->state == TXN_PREPARE_COMMIT,
                .topic_count = topic_count,
                .topics = topics,
        };
}

/* Prepare* is durable: the Complete transition becomes pending while the
 * markers are written (Kafka's prepareComplete + addTxnMarkersToSend). */
void txn_start_markers(struct txn_coordinator *tc, struct txn_entry *e, int64_t now_ms, struct arena *a,
                       struct txn_output *out)
{
        assert(e->state == TXN_PREPARE_COMMIT || e->state == TXN_PREPARE_ABORT);
        assert(!e->has_pending);
        e->has_failed_epoch_fence = false;
        struct txn_transit t = transit_of(
                e, e->state == TXN_PREPARE_COMMIT ? TXN_COMPLETE_COMMIT : TXN_COMPLETE_ABORT, now_ms);
        t.last_producer_epoch = e->producer_epoch;
        e->has_pending = true;
        e->op = OP_COMPLETE;
        e->transit = t;
        e->markers_id = tc->next_id++;
        emit_markers(tc, e, a, out);
}

void txn_collect_markers(struct txn_coordinator *tc, struct arena *a, struct txn_output *out)
{
        txn_out_reset(out);
        for (struct txn_entry *e = tc->head; e; e = e->next)
                if (e->markers_id != 0)
                        emit_markers(tc, e, a, out);
}

static struct txn_entry *find_markers(struct txn_coordinator *tc, struct kstr id, uint64_t markers_id)
{
        if (tc->phase != PHASE_LOADED || markers_id == 0)
                return NULL;
        struct txn_entry *e = txn_entry_find(tc, id);
        return e && e->markers_id == markers_id ? e : NULL;
}

void txn_markers_done(struct txn_coordinator *tc, struct kstr transactional_id, uint64_t markers_id,
                      int64_t now_ms, struct arena *a, struct txn_output *out)
{
        txn_out_reset(out);
        struct txn_entry *e = find_markers(tc, transactional_id, markers_id);
        if (!e)
                return;
        txn_pset_clear(&e->partitions);
        emit_markers(tc, e, a, out);
}

void txn_marker_partition_done(struct txn_coordinator *tc, struct kstr transactional_id, uint64_t markers_id,
                               struct kstr topic, int32_t partition, int64_t now_ms, struct arena *a,
                               struct txn_output *out)
{
        txn_out_reset(out);
        struct txn_entry *e = find_markers(tc, transactional_id, markers_id);
        if (!e)
                return;
        txn_pset_remove(&e->partitions, topic, partition);
        if (e->partitions.count == 0)
                emit_markers(tc, e, a, out);
}

/* ---- requests ---- */

/* The coordinator-wide error, or NONE. */
static int16_t phase_error(const struct txn_coordinator *tc)
{
        switch (tc->phase) {
        case PHASE_LOADED:
                return KAFKA_NONE;
        case PHASE_LOADING:
                return KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
        case PHASE_UNLOADED:
                break;
        }
        return KAFKA_NOT_COORDINATOR;
}

static bool is_epoch_exhausted(int16_t epoch)
{
        return epoch >= TXN_EPOCH_EXHAUSTED;
}

/* Kafka's endTransaction with isFromClient false, for a fence: the epoch
 * is bumped in memory at once (not again after a failed fence), then
 * PrepareAbort is appended at that epoch. */
static void begin_fence_abort(struct txn_coordinator *tc, struct txn_entry *e, enum txn_op op, int64_t now_ms,
                              struct arena *a, struct txn_output *out)
{
        assert(e->state == TXN_ONGOING && !e->has_pending && e->producer_epoch < INT16_MAX);
        if (!e->has_failed_epoch_fence)
                e->producer_epoch++;
        e->last_producer_epoch = TXN_NO_PRODUCER_EPOCH;
        struct txn_transit t = transit_of(e, TXN_PREPARE_ABORT, now_ms);
        begin_change(tc, e, op, &t, a, out);
}

void txn_init_producer_id(struct txn_coordinator *tc, struct kstr transactional_id, int32_t timeout_ms,
                          int64_t producer_id, int16_t producer_epoch, int64_t now_ms, struct arena *a,
                          struct txn_output *out)
{
        txn_out_reset(out);
        /* KafkaApis: both or neither of the KIP-360 fields. */
        bool has_expected = producer_id != TXN_NO_PRODUCER_ID || producer_epoch != TXN_NO_PRODUCER_EPOCH;
        if (has_expected && (producer_id == TXN_NO_PRODUCER_ID || producer_epoch == TXN_NO_PRODUCER_EPOCH)) {
                answer(out, KAFKA_INVALID_REQUEST);
                return;
        }
        if (transactional_id.len <= 0) {
                answer(out, KAFKA_INVALID_REQUEST);
                return;
        }
        if (timeout_ms <= 0 || timeout_ms > tc->cfg.max_timeout_ms) {
                answer(out, KAFKA_INVALID_TRANSACTION_TIMEOUT);
                return;
        }
        int16_t err = phase_error(tc);
        if (err != KAFKA_NONE) {
                answer(out, err);
                return;
        }
        struct txn_entry *e = txn_entry_find(tc, transactional_id);
        if (!e) {
                if (tc->count >= TXN_COUNT_MAX) {
                        answer(out, KAFKA_COORDINATOR_NOT_AVAILABLE);
                        return;
                }
                int64_t pid;
                err = tc->env.next_producer_id(tc->env.ctx, &pid);
                if (err != KAFKA_NONE) {
                        answer(out, err);
                        return;
                }
                assert(pid >= 0);
                e = txn_entry_create(tc, transactional_id);
                if (!e) {
                        answer(out, KAFKA_UNKNOWN_SERVER_ERROR);
                        return;
                }
                e->producer_id = pid;
                e->timeout_ms = timeout_ms;
                e->last_update_ms = now_ms;
        }
        entry_check(e);
        if (e->has_pending) {
                answer(out, KAFKA_CONCURRENT_TRANSACTIONS);
                return;
        }
        /* isValidProducerId: a brand new id, the current producer id, or the
         * previous one with an exhausted epoch (a retry after a rotation). */
        if (has_expected && !(e->producer_epoch == TXN_NO_PRODUCER_EPOCH || producer_id == e->producer_id ||
                              (producer_id == e->previous_producer_id && is_epoch_exhausted(producer_epoch)))) {
                answer(out, KAFKA_PRODUCER_FENCED);
                return;
        }
        struct txn_transit t = transit_of(e, TXN_EMPTY, now_ms);
        t.timeout_ms = timeout_ms;
        t.start_ms = -1;
        switch (e->state) {
        case TXN_PREPARE_COMMIT:
        case TXN_PREPARE_ABORT:
                answer(out, KAFKA_CONCURRENT_TRANSACTIONS);
                return;
        case TXN_ONGOING:
                if (e->producer_epoch == INT16_MAX) {
                        answer(out, KAFKA_UNKNOWN_SERVER_ERROR);        /* Kafka: IllegalStateException */
                        return;
                }
                begin_fence_abort(tc, e, OP_INIT_FENCE, now_ms, a, out);
                return;
        case TXN_EMPTY:
        case TXN_COMPLETE_COMMIT:
        case TXN_COMPLETE_ABORT:
                break;
        case TXN_DEAD:
        case TXN_PREPARE_EPOCH_FENCE:
                answer(out, KAFKA_UNKNOWN_SERVER_ERROR);        /* Kafka: IllegalStateException */
                return;
        }
        if (is_epoch_exhausted(e->producer_epoch) && (!has_expected || producer_epoch == e->producer_epoch)) {
                /* prepareProducerIdRotation */
                int64_t pid;
                err = tc->env.next_producer_id(tc->env.ctx, &pid);
                if (err != KAFKA_NONE) {
                        answer(out, err);
                        return;
                }
                t.producer_id = pid;
                t.producer_epoch = 0;
                t.last_producer_epoch = has_expected ? e->producer_epoch : TXN_NO_PRODUCER_EPOCH;
        } else if (is_epoch_exhausted(e->producer_epoch)) {
                answer(out, KAFKA_UNKNOWN_SERVER_ERROR);        /* Kafka: IllegalStateException */
                return;
        } else if (!has_expected) {
                t.producer_epoch = (int16_t)(e->producer_epoch + 1);
                t.last_producer_epoch = TXN_NO_PRODUCER_EPOCH;
        } else if (e->producer_epoch == TXN_NO_PRODUCER_EPOCH || producer_epoch == e->producer_epoch) {
                /* The producer recovers from an error: bump, remember the last. */
                t.producer_epoch = (int16_t)(e->producer_epoch + 1);
                t.last_producer_epoch = e->producer_epoch;
        } else if (producer_epoch == e->last_producer_epoch) {
                /* A retry of a bump that succeeded: the same answer again. */
                t.last_producer_epoch = e->last_producer_epoch;
        } else {
                answer(out, KAFKA_PRODUCER_FENCED);
                return;
        }
        begin_change(tc, e, OP_INIT, &t, a, out);
}

/* The checks AddPartitions, AddOffsets and verification share. NULL with
 * *err set, or the entry. */
static struct txn_entry *find_for_producer(const struct txn_coordinator *tc, struct kstr id, int64_t producer_id,
                                           int16_t producer_epoch, int16_t *err)
{
        *err = KAFKA_NONE;
        if (id.len <= 0) {
                *err = KAFKA_INVALID_REQUEST;
                return NULL;
        }
        *err = phase_error(tc);
        if (*err != KAFKA_NONE)
                return NULL;
        struct txn_entry *e = txn_entry_find(tc, id);
        if (!e || e->producer_id != producer_id)
                *err = KAFKA_INVALID_PRODUCER_ID_MAPPING;
        else if (e->producer_epoch != producer_epoch)
                *err = KAFKA_PRODUCER_FENCED;
        return *err == KAFKA_NONE ? e : NULL;
}

void txn_add_partitions(struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id,
                        int16_t producer_epoch, const struct txn_topic_partitions *topics, int32_t topic_count,
                        int64_t now_ms, struct arena *a, struct txn_output *out)
{
        txn_out_reset(out);
        int16_t err;
        struct txn_entry *e = find_for_producer(tc, transactional_id, producer_id, producer_epoch, &err);
        if (!e) {
                answer(out, err);
                return;
        }
        if (e->has_pending || e->state == TXN_PREPARE_COMMIT || e->state == TXN_PREPARE_ABORT) {
                answer(out, KAFKA_CONCURRENT_TRANSACTIONS);
                return;
        }
        struct txn_transit t = transit_of(e, TXN_ONGOING, now_ms);
        if (e->state != TXN_ONGOING)
                t.start_ms = now_ms;
        for (int32_t i = 0; i < topic_count; i++) {
                for (int32_t j = 0; j < topics[i].partition_count; j++) {
                        int32_t p = topics[i].partitions[j];
                        if (txn_pset_contains(&e->partitions, topics[i].topic, p))
                                continue;
                        if (e->partitions.count + t.added.count >= TXN_PARTITIONS_MAX ||
                            txn_pset_add(&t.added, topics[i].topic, p) < 0) {
                                txn_pset_free(&t.added);
                                answer(out, KAFKA_UNKNOWN_SERVER_ERROR);
                                return;
                        }
                }
        }
        if (e->state == TXN_ONGOING && t.added.count == 0) {
                answer(out, KAFKA_NONE);        /* all there already: no write */
                return;
        }
        begin_change(tc, e, OP_ADD, &t, a, out);
}

int16_t txn_verify_partitions(const struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id,
                              int16_t producer_epoch, const struct txn_topic_partitions *topics,
                              int32_t topic_count, int16_t *errors_out)
{
        int16_t err;
        const struct txn_entry *e = find_for_producer(tc, transactional_id, producer_id, producer_epoch, &err);
        /* No pending check: the produce's append validates again. */
        if (e && (e->state == TXN_PREPARE_COMMIT || e->state == TXN_PREPARE_ABORT))
                err = KAFKA_CONCURRENT_TRANSACTIONS;
        size_t n = 0;
        for (int32_t i = 0; i < topic_count; i++) {
                for (int32_t j = 0; j < topics[i].partition_count; j++) {
                        if (err != KAFKA_NONE)
                                errors_out[n++] = err;
                        else
                                errors_out[n++] = txn_pset_contains(&e->partitions, topics[i].topic,
                                                                    topics[i].partitions[j]) ?
                                                          KAFKA_NONE :
                                                          KAFKA_TRANSACTION_ABORTABLE;
                }
        }
        return err;
}

int32_t txn_offsets_partition_of(const struct txn_coordinator *tc, struct kstr group_id)
{
        return group_partition_of(group_id, tc->cfg.offsets_partition_count);
}

void txn_add_offsets(struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id,
                     int16_t producer_epoch, struct kstr group_id, int64_t now_ms, struct arena *a,
                     struct txn_output *out)
{
        int32_t partition = txn_offsets_partition_of(tc, group_id);
        struct txn_topic_partitions tp = { KSTR(TXN_OFFSETS_TOPIC), 1, &partition };
        txn_add_partitions(tc, transactional_id, producer_id, producer_epoch, &tp, 1, now_ms, a, out);
}

void txn_end(struct txn_coordinator *tc, struct kstr transactional_id, int64_t producer_id, int16_t producer_epoch,
             bool is_commit, int64_t now_ms, struct arena *a, struct txn_output *out)
{
        txn_out_reset(out);
        if (transactional_id.len <= 0) {
                answer(out, KAFKA_INVALID_REQUEST);
                return;
        }
        int16_t err = phase_error(tc);
        if (err != KAFKA_NONE) {
                answer(out, err);
                return;
        }
        struct txn_entry *e = txn_entry_find(tc, transactional_id);
        if (!e || e->producer_id != producer_id) {
                answer(out, KAFKA_INVALID_PRODUCER_ID_MAPPING);
                return;
        }
        /* Transaction version < 2: a client's epoch must equal the current. */
        if (producer_epoch != e->producer_epoch) {
                answer(out, KAFKA_PRODUCER_FENCED);
                return;
        }
        if (e->has_pending) {
                answer(out, KAFKA_CONCURRENT_TRANSACTIONS);
                return;
        }
        switch (e->state) {
        case TXN_ONGOING: {
                struct txn_transit t = transit_of(e, is_commit ? TXN_PREPARE_COMMIT : TXN_PREPARE_ABORT, now_ms);
                begin_change(tc, e, OP_END, &t, a, out);
                return;
        }
        case TXN_COMPLETE_COMMIT:
        case TXN_COMPLETE_ABORT:
                /* A retry of an EndTxn that completed: the same result is fine. */
                if (is_commit == (e->state == TXN_COMPLETE_COMMIT))
                        answer_ids(out, KAFKA_NONE, e->producer_id, e->producer_epoch);
                else
                        answer(out, KAFKA_INVALID_TXN_STATE);
                return;
        case TXN_PREPARE_COMMIT:
        case TXN_PREPARE_ABORT:
                /* Unreachable while markers are outstanding (pending), kept
                 * for Kafka's table. */
                answer(out, is_commit == (e->state == TXN_PREPARE_COMMIT) ? KAFKA_CONCURRENT_TRANSACTIONS :
                                                                            KAFKA_INVALID_TXN_STATE);
                return;
        case TXN_EMPTY:
                answer(out, KAFKA_INVALID_TXN_STATE);
                return;
        case TXN_DEAD:
        case TXN_PREPARE_EPOCH_FENCE:
                break;
        }
        answer(out, KAFKA_UNKNOWN_SERVER_ERROR);        /* Kafka: IllegalStateException */
}

/* ---- completions ---- */

/* appendTransactionToLog's mapping of a log error to the client's. */
static int16_t append_error_map(int16_t err)
{
        switch (err) {
        case KAFKA_UNKNOWN_TOPIC_OR_PARTITION:
        case KAFKA_NOT_ENOUGH_REPLICAS:
        case KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case KAFKA_REQUEST_TIMED_OUT:
                return KAFKA_COORDINATOR_NOT_AVAILABLE;
        case KAFKA_NOT_LEADER_OR_FOLLOWER:
        case KAFKA_KAFKA_STORAGE_ERROR:
                return KAFKA_NOT_COORDINATOR;
        case KAFKA_MESSAGE_TOO_LARGE:
        case KAFKA_RECORD_LIST_TOO_LARGE:
                return KAFKA_UNKNOWN_SERVER_ERROR;
        default:
                return err;
        }
}

/* Kafka's completeTransitionTo for a durable transit. */
static void complete_transition(struct txn_entry *e)
{
        struct txn_transit *t = &e->transit;
        switch (t->state) {
        case TXN_EMPTY:
                assert(t->producer_epoch == e->producer_epoch || t->producer_epoch == e->producer_epoch + 1 ||
                       (t->producer_epoch == 0 && t->producer_id != e->producer_id));
                e->timeout_ms = t->timeout_ms;
                e->producer_epoch = t->producer_epoch;
                e->last_producer_epoch = t->last_producer_epoch;
                e->previous_producer_id = e->producer_id;
                e->producer_id = t->producer_id;
                break;
        case TXN_ONGOING:
                assert(t->producer_epoch == e->producer_epoch && t->producer_id == e->producer_id);
                e->start_ms = t->start_ms;
                if (txn_pset_add_all(&e->partitions, &t->added) < 0)
                        abort();        /* see txn_append_done: reserved before */
                break;
        case TXN_PREPARE_COMMIT:
        case TXN_PREPARE_ABORT:
                assert(t->producer_epoch == e->producer_epoch && t->start_ms == e->start_ms);
                break;
        case TXN_COMPLETE_COMMIT:
        case TXN_COMPLETE_ABORT:
                assert(t->start_ms != -1);
                e->start_ms = t->start_ms;
                txn_pset_clear(&e->partitions);
                break;
        case TXN_DEAD:
        case TXN_PREPARE_EPOCH_FENCE:
                assert(!"not a durable state");
                break;
        }
        e->last_update_ms = t->last_update_ms;
        e->state = t->state;
}

void txn_append_done(struct txn_coordinator *tc, struct kstr transactional_id, uint64_t append_id,
                     int16_t append_error, int64_t now_ms, struct arena *a, struct txn_output *out)
{
        txn_out_reset(out);
        struct txn_entry *e = tc->phase == PHASE_UNLOADED ? NULL : txn_entry_find(tc, transactional_id);
        if (!e || e->append_id != append_id || append_id == 0) {
                answer(out, KAFKA_NOT_COORDINATOR);
                return;
        }
        assert(e->has_pending);
        enum txn_op op = e->op;
        e->append_id = 0;
        int16_t err = append_error_map(append_error);
        if (err != KAFKA_NONE) {
                if (op == OP_COMPLETE && err == KAFKA_COORDINATOR_NOT_AVAILABLE) {
                        /* Kafka's txnLogAppendRetryQueue: keep pending, retry. */
                        if (issue_append(tc, e, a, out) < 0)
                                e->markers_id = tc->next_id++;
                        entry_check(e);
                        return;
                }
                if (op == OP_INIT_FENCE || op == OP_TIMEOUT_ABORT)
                        e->has_failed_epoch_fence = true;
                drop_pending(e);
                if (op != OP_COMPLETE && op != OP_TIMEOUT_ABORT && op != OP_EXPIRE)
                        answer(out, err);
                entry_check(e);
                return;
        }
        if (op == OP_EXPIRE) {
                txn_entry_destroy(tc, e);
                return;
        }
        if (op == OP_ADD) {
                /* Make room first so that applying cannot fail half way. */
                struct txn_pset trial = { 0 };
                int rc = txn_pset_add_all(&trial, &e->partitions);
                if (rc == 0)
                        rc = txn_pset_add_all(&trial, &e->transit.added);
                if (rc < 0) {
                        txn_pset_free(&trial);
                        drop_pending(e);
                        answer(out, KAFKA_UNKNOWN_SERVER_ERROR);
                        return;
                }
                txn_pset_free(&e->partitions);
                e->partitions = trial;
                txn_pset_clear(&e->transit.added);
        }
        complete_transition(e);
        drop_pending(e);
        switch (op) {
        case OP_INIT:
                answer_ids(out, KAFKA_NONE, e->producer_id, e->producer_epoch);
                break;
        case OP_ADD:
                answer(out, KAFKA_NONE);
                break;
        case OP_END:
                answer_ids(out, KAFKA_NONE, e->producer_id, e->producer_epoch);
                txn_start_markers(tc, e, now_ms, a, out);
                break;
        case OP_INIT_FENCE:
                answer(out, KAFKA_CONCURRENT_TRANSACTIONS);
                txn_start_markers(tc, e, now_ms, a, out);
                break;
        case OP_TIMEOUT_ABORT:
                txn_start_markers(tc, e, now_ms, a, out);
                break;
        case OP_COMPLETE:
        case OP_EXPIRE:
        case OP_NONE:
                break;
        }
        entry_check(e);
}

/* ---- time ---- */

void txn_abort_timed_out(struct txn_coordinator *tc, int64_t now_ms, uint32_t max_count, struct arena *a,
                         struct txn_output *out)
{
        txn_out_reset(out);
        if (tc->phase != PHASE_LOADED)
                return;
        uint32_t n = 0;
        for (struct txn_entry *e = tc->head; e && n < max_count && !out->is_truncated; e = e->next) {
                if (e->has_pending || e->state != TXN_ONGOING || e->start_ms + e->timeout_ms >= now_ms)
                        continue;
                if (e->producer_epoch == INT16_MAX)
                        continue;       /* Kafka cannot fence it either */
                begin_fence_abort(tc, e, OP_TIMEOUT_ABORT, now_ms, a, out);
                n++;
        }
}

void txn_expire_ids(struct txn_coordinator *tc, int64_t now_ms, uint32_t max_count, struct arena *a,
                    struct txn_output *out)
{
        txn_out_reset(out);
        if (tc->phase != PHASE_LOADED)
                return;
        uint32_t n = 0;
        for (struct txn_entry *e = tc->head; e && n < max_count && !out->is_truncated; e = e->next) {
                bool may_expire = e->state == TXN_EMPTY || e->state == TXN_COMPLETE_COMMIT ||
                                  e->state == TXN_COMPLETE_ABORT;
                if (e->has_pending || !may_expire ||
                    e->last_update_ms > now_ms - tc->cfg.transactional_id_expiration_ms)
                        continue;
                struct txn_transit t = transit_of(e, TXN_DEAD, e->last_update_ms);
                begin_change(tc, e, OP_EXPIRE, &t, a, out);
                n++;
        }
}

/* ---- listing ---- */

void txn_describe(const struct txn_coordinator *tc, struct kstr transactional_id, struct arena *a,
                  struct txn_description *out)
{
        memset(out, 0, sizeof(*out));
        out->producer_id = TXN_NO_PRODUCER_ID;
        out->producer_epoch = TXN_NO_PRODUCER_EPOCH;
        out->timeout_ms = -1;
        out->start_ms = -1;
        if (transactional_id.len <= 0) {
                out->error_code = KAFKA_INVALID_REQUEST;
                return;
        }
        out->error_code = phase_error(tc);
        if (out->error_code != KAFKA_NONE)
                return;
        const struct txn_entry *e = txn_entry_find(tc, transactional_id);
        if (!e || e->state == TXN_DEAD) {
                out->error_code = KAFKA_TRANSACTIONAL_ID_NOT_FOUND;
                return;
        }
        if (txn_pset_export(&e->partitions, NULL, a, &out->topics, &out->topic_count) < 0) {
                out->error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                return;
        }
        out->state = e->state;
        out->producer_id = e->producer_id;
        out->producer_epoch = e->producer_epoch;
        out->timeout_ms = e->timeout_ms;
        out->start_ms = e->start_ms;
}

int16_t txn_list(const struct txn_coordinator *tc, const struct kstr *state_filters, int32_t state_filter_count,
                 const int64_t *producer_id_filters, int32_t producer_id_filter_count, int64_t duration_filter_ms,
                 int64_t now_ms, struct arena *a, struct txn_listing **items_out, uint32_t *count_out,
                 struct kstr **unknown_out, uint32_t *unknown_count_out)
{
        *items_out = NULL;
        *count_out = 0;
        *unknown_out = NULL;
        *unknown_count_out = 0;
        int16_t err = phase_error(tc);
        if (err != KAFKA_NONE)
                return err;
        bool wanted[TXN_STATE_COUNT] = { false };
        uint32_t unknown_cap = 0;
        for (int32_t i = 0; i < state_filter_count; i++) {
                enum txn_state s;
                if (txn_state_parse(state_filters[i], &s)) {
                        wanted[s] = true;
                        continue;
                }
                struct kstr *slot = out_slot(a, (void **)unknown_out, unknown_count_out, &unknown_cap,
                                             sizeof(*slot));
                if (!slot)
                        return KAFKA_UNKNOWN_SERVER_ERROR;
                *slot = state_filters[i];
        }
        uint32_t cap = 0;
        for (const struct txn_entry *e = tc->head; e; e = e->next) {
                if (e->state == TXN_DEAD)
                        continue;
                if (state_filter_count > 0 && !wanted[e->state])
                        continue;
                if (producer_id_filter_count > 0) {
                        bool match = false;
                        for (int32_t i = 0; i < producer_id_filter_count && !match; i++)
                                match = producer_id_filters[i] == e->producer_id;
                        if (!match)
                                continue;
                }
                if (duration_filter_ms >= 0 && now_ms - e->start_ms <= duration_filter_ms)
                        continue;
                struct txn_listing *slot = out_slot(a, (void **)items_out, count_out, &cap, sizeof(*slot));
                char *id = slot ? arena_dup(a, e->id, (size_t)e->id_len + 1) : NULL;
                if (!id)
                        return KAFKA_UNKNOWN_SERVER_ERROR;
                *slot = (struct txn_listing){ { id, e->id_len }, e->producer_id, e->state };
        }
        return KAFKA_NONE;
}
