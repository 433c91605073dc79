/*
 * producers.c - InitProducerId: producer ids for idempotent producers.
 *
 * A producer without a transactional id asks once at start (and again
 * after a fatal sequence error, KIP-360): Kafka hands it a fresh id with
 * epoch 0 every time, whatever id and epoch it sends, and so does runnel.
 * Ids come from the broker's durable allocator (log/producer_ids.h), so no
 * id is reused after a restart and the partitions' producer state never
 * mistakes a new producer for an old one.
 *
 * Transactional ids belong to the transaction coordinator, which runnel
 * does not have yet: they get COORDINATOR_NOT_AVAILABLE, the same answer
 * FindCoordinator gives for them, so a transactional client waits and
 * reports it rather than misbehaving.
 */
#include <errno.h>
#include <inttypes.h>

#include "../base/logging.h"
#include "../log/producer_ids.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/init_producer_id.h"
#include "broker.h"
#include "handlers.h"
#include "request.h"
#include "txn.h"

void handle_init_producer_id(struct broker *b, struct request *req, struct kreader *body)
{
        struct init_producer_id_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct init_producer_id_response resp;
        init_producer_id_response_init(&resp);
        resp.producer_id = -1;
        resp.producer_epoch = -1;
        if (!kstr_is_null(rq->transactional_id)) {
                if (rq->transactional_id.len > 0) {
                        txn_handle_init_producer_id(b, req, rq);
                        return;
                }
                /* Kafka refuses an empty transactional id outright. */
                resp.error_code = KAFKA_INVALID_REQUEST;
                dispatch_respond(req, &resp);
                return;
        }
        int64_t id;
        int rc = producer_ids_next(b->producer_ids, &id);
        if (rc < 0) {
                /* Retriable, as Kafka answers while its next id block is
                 * on the way from the controller. */
                log_error("cannot take a new block of producer ids: %s; InitProducerId answers "
                          "COORDINATOR_LOAD_IN_PROGRESS until it can (check the first log dir)",
                          rc == -EOVERFLOW ? "every producer id is used" : strerror(-rc));
                resp.error_code = KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
        } else {
                resp.producer_id = id;
                resp.producer_epoch = 0;
        }
        dispatch_respond(req, &resp);
}
