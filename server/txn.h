/*
 * txn.h - the transaction coordinator's service: __transaction_state and
 * the requests it answers (server/txn.c). Any reactor may call these; the
 * work happens on the home of the transactional id's partition.
 */
#ifndef RUNNEL_SERVER_TXN_H
#define RUNNEL_SERVER_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "../coordinator/txn.h"
#include "../protocol/gen/init_producer_id.h"
#include "broker.h"
#include "request.h"

#define TXN_STATE_TOPIC "__transaction_state"

/* Creates __transaction_state unless it exists (FindCoordinator for a
 * transactional id). NONE, or COORDINATOR_NOT_AVAILABLE (logged). */
int16_t txn_ensure_topic(struct broker *b);

/* Loads every shard of an existing __transaction_state at start-up, so
 * that prepared transactions finish and timeouts run. */
void txn_load_all(struct broker *b);

/* InitProducerId with a (non-empty) transactional id. */
void txn_handle_init_producer_id(struct broker *b, struct request *req, const struct init_producer_id_request *rq);

/*
 * The transactional Produce check: asks the coordinator whether each
 * partition of topics is in the producer's open transaction; errors_out
 * (one per partition, flattened in order) gets NONE or the refusal, and
 * done(ctx, error) runs on the calling reactor with the transaction-wide
 * error. The request stays with the caller meanwhile but must not be
 * touched. false (nothing started) when memory ran out.
 */
bool txn_verify(struct broker *b, struct request *req, struct kstr transactional_id, int64_t producer_id,
                int16_t producer_epoch, const struct txn_topic_partitions *topics, int32_t topic_count,
                int16_t *errors_out, void (*done)(void *ctx, int16_t error_code), void *ctx);

/* ---- reading the coordinators (DescribeTransactions, ListTransactions) ---- */

/* Called at the home of shard index with its coordinator (NULL with err
 * when it cannot serve: loading, no topic); a is the request's arena. */
typedef void (*txn_visit_fn)(void *ctx, int32_t index, const struct txn_coordinator *tc, int16_t err,
                             int64_t now_ms, struct arena *a);

/*
 * Visits the shards named by indexes one after the other, then calls
 * done(ctx) on the calling reactor. The request must not be touched
 * meanwhile. false (nothing started) when memory ran out.
 */
bool txn_walk_shards(struct broker *b, struct request *req, const int32_t *indexes, int32_t count,
                     txn_visit_fn visit, void (*done)(void *ctx), void *ctx);

/* The shard of a transactional id, or -1 when there is no __transaction_state. */
int32_t txn_shard_of(struct broker *b, struct kstr transactional_id);
/* Partitions of __transaction_state (0 when it does not exist). */
int32_t txn_shard_count(struct broker *b);

#endif
