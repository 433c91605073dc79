/*
 * txn_internal.h - what the files of the transaction coordinator share:
 * txn.c (transactional ids, requests, markers, completions, time) and
 * txn_log.c (the __transaction_state records and their load). No other
 * file includes it; everyone else uses txn.h. A coordinator is touched by
 * one thread at a time, as txn.h says.
 */
#ifndef RUNNEL_COORDINATOR_TXN_INTERNAL_H
#define RUNNEL_COORDINATOR_TXN_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "txn.h"
#include "txn_pset.h"

/* Kafka's TransactionMetadata.isEpochExhausted: epochs stop one short of
 * Short.MaxValue so that a fence always has an epoch left. */
#define TXN_EPOCH_EXHAUSTED (INT16_MAX - 1)

enum txn_op {
        OP_NONE,
        OP_INIT,                        /* InitProducerId: Empty */
        OP_INIT_FENCE,                  /* InitProducerId fencing Ongoing: PrepareAbort */
        OP_ADD,                         /* AddPartitions/AddOffsets: Ongoing */
        OP_END,                         /* EndTxn: Prepare* */
        OP_TIMEOUT_ABORT,               /* timeout: PrepareAbort */
        OP_COMPLETE,                    /* markers written: Complete* */
        OP_EXPIRE,                      /* tombstone: Dead */
};

/* The target of a pending change (Kafka's TxnTransitMetadata). */
struct txn_transit {
        enum txn_state state;
        int64_t producer_id;
        int16_t producer_epoch;
        int16_t last_producer_epoch;
        int32_t timeout_ms;
        int64_t start_ms;
        int64_t last_update_ms;
        struct txn_pset added;          /* OP_ADD: partitions not yet in the transaction */
};

struct txn_entry {
        struct txn_entry *hnext;
        uint64_t hash;
        struct txn_entry *prev, *next;  /* every id, in creation order */
        char *id;                       /* owned, NUL-terminated */
        int32_t id_len;

        /* Current state: what is durable (and what Kafka keeps in memory). */
        enum txn_state state;
        int64_t producer_id;
        int64_t previous_producer_id;
        int16_t producer_epoch;
        int16_t last_producer_epoch;
        int32_t timeout_ms;
        struct txn_pset partitions;
        int64_t start_ms;
        int64_t last_update_ms;
        bool has_failed_epoch_fence;

        /* The pending change. */
        bool has_pending;
        enum txn_op op;
        struct txn_transit transit;
        uint64_t append_id;             /* its record is being appended; 0: none */
        uint64_t markers_id;            /* markers outstanding (pending Complete*); 0: none */
};

enum txn_phase { PHASE_LOADED, PHASE_LOADING, PHASE_UNLOADED };

struct txn_coordinator {
        struct txn_config cfg;
        struct txn_env env;
        int32_t coordinator_epoch;
        enum txn_phase phase;
        struct txn_entry **buckets;
        uint32_t bucket_count;          /* a power of two */
        uint32_t count;
        struct txn_entry *head, *tail;
        uint64_t next_id;               /* of appends and marker sets */
};

/* The entry of id, or NULL. */
struct txn_entry *txn_entry_find(const struct txn_coordinator *tc, struct kstr id);

/* A new entry for id, in state Empty, or NULL when memory ran out. */
struct txn_entry *txn_entry_create(struct txn_coordinator *tc, struct kstr id);

void txn_entry_destroy(struct txn_coordinator *tc, struct txn_entry *e);

/* Destroys every entry. */
void txn_clear_all(struct txn_coordinator *tc);

/* Empties out for the next call. */
void txn_out_reset(struct txn_output *out);

/* e's Prepare* is durable: prepares its Complete* and hands its markers to out. */
void txn_start_markers(struct txn_coordinator *tc, struct txn_entry *e, int64_t now_ms, struct arena *a,
                       struct txn_output *out);

/* The key and value records of e's pending transit (Kafka's keyToBytes,
 * valueToBytes), in arena memory; 0, -EINVAL or -ENOMEM. */
int txn_encode_key(struct kstr id, struct arena *a, struct kbytes *out);
int txn_encode_value(const struct txn_coordinator *tc, const struct txn_entry *e, struct arena *a,
                     struct kbytes *out);

#endif
