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

#endif
