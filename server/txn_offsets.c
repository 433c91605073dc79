/*
 * txn_offsets.c - TxnOffsetCommit (KIP-98): a transactional producer
 * commits a consumer group's offsets inside its transaction, the heart of
 * consume-transform-produce (librdkafka's send_offsets_to_transaction, the
 * Java client's sendOffsetsToTransaction).
 *
 * The path of a request, as Kafka's KafkaApis.handleTxnOffsetCommitRequest
 * and GroupCoordinatorService.commitTransactionalOffsets take it:
 *
 *   1. on the connection's reactor: unknown topics and partitions are
 *      answered UNKNOWN_TOPIC_OR_PARTITION, an empty group id
 *      INVALID_GROUP_ID;
 *   2. the transaction coordinator is asked whether the group's
 *      __consumer_offsets partition is in the producer's open transaction
 *      (the AddOffsetsToTxn the client sent first put it there), as
 *      Kafka's coordinator runtime verifies a transactional write (KIP-890
 *      part 1) -- the same hop as a transactional Produce;
 *   3. at the home of that partition (server/offsets.c's shard): the group
 *      checks the member and generation (v3+, Kafka's
 *      validateTransactionalOffsetCommit), metadata over
 *      offset.metadata.max.bytes gets OFFSET_METADATA_TOO_LARGE, and the
 *      rest become one TRANSACTIONAL record batch of the producer's id and
 *      epoch, appended with acks=all;
 *   4. once durable, the offsets are staged as pending for the producer id
 *      in the shard's store: OffsetFetch does not see them until the
 *      transaction's COMMIT marker reaches the partition
 *      (offsets_txn_marker_written, called by server/txn.c), and an ABORT
 *      drops them.
 *
 * Invariant: every request carried home comes back and is answered once.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "../base/logging.h"
#include "../coordinator/group.h"
#include "../coordinator/offsets.h"
#include "../log/producer_state.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/txn_offset_commit.h"
#include "broker.h"
#include "coordinator_topic.h"
#include "handlers.h"
#include "offsets.h"
#include "partition_home.h"
#include "txn.h"

_Static_assert(sizeof(struct txn_offset_commit_response_topic) == sizeof(struct offsets_answer_topic) &&
                       offsetof(struct txn_offset_commit_response_topic, partitions) ==
                               offsetof(struct offsets_answer_topic, partitions) &&
                       sizeof(struct txn_offset_commit_response_partition) ==
                               sizeof(struct offsets_answer_partition) &&
                       offsetof(struct txn_offset_commit_response_partition, error_code) ==
                               offsetof(struct offsets_answer_partition, error_code),
               "TxnOffsetCommit answers differ from struct offsets_answer_topic");

struct txn_commit_op {
        struct offsets_trip c;        /* the writes the coordinator decides */
        const struct txn_offset_commit_request *rq;
        struct txn_offset_commit_response *resp;
        bool *is_metadata_too_large;    /* per write */
        uint32_t write_count;           /* writes appended, once at home */
        struct txn_topic_partitions verify_topic;
        int32_t verify_partition;
        int16_t verify_error;
        bool is_txn_verified;
};

static void commit_respond(struct offsets_trip *c)
{
        struct txn_commit_op *op = container_of(c, struct txn_commit_op, c);
        struct request *req = c->req;
        struct txn_offset_commit_response *resp = op->resp;
        /* Clients before v2 (Kafka 0.11 to 2.0) may crash on
         * COORDINATOR_LOAD_IN_PROGRESS here (KAFKA-7296): Kafka sends them
         * COORDINATOR_NOT_AVAILABLE instead. */
        for (int32_t t = 0; req->api_version < 2 && t < resp->topics.count; t++)
                for (int32_t i = 0; i < resp->topics.items[t].partitions.count; i++)
                        if (resp->topics.items[t].partitions.items[i].error_code == KAFKA_COORDINATOR_LOAD_IN_PROGRESS)
                                resp->topics.items[t].partitions.items[i].error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
        struct offsets_answer_topic *topics = (struct offsets_answer_topic *)(void *)resp->topics.items;
        if (offsets_answer_order(&req->arena, &topics, &resp->topics.count) < 0) {
                request_close_connection(req);
                return;
        }
        resp->topics.items = (struct txn_offset_commit_response_topic *)(void *)topics;
        dispatch_respond(req, resp);
}

/* A failed transactional append: the producer's own errors reach it as
 * they are (Kafka's handleOperationException passes them through), the
 * partition's become the coordinator errors. */
static int16_t append_error_of(int16_t code)
{
        switch (code) {
        case KAFKA_INVALID_PRODUCER_EPOCH:
        case KAFKA_PRODUCER_FENCED:
        case KAFKA_INVALID_TXN_STATE:
        case KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER:
                return code;
        default:
                return offsets_coordinator_error(code);
        }
}

static void commit_append_done(struct partition_append *a)
{
        struct offsets_trip *c = a->ctx;
        struct txn_commit_op *op = container_of(c, struct txn_commit_op, c);
        const struct txn_offset_commit_request *rq = op->rq;
        int16_t err = KAFKA_NONE;
        struct offsets_store *store = offsets_shard_store(c->b, c->place.topic, c->place.partition, &err);
        assert(store);          /* a loaded shard stays loaded */
        if (a->error_code != KAFKA_NONE) {
                log_warn("committing %u transactional offsets of group %.*s (producer %lld) to %s-%d failed: %s",
                         op->write_count, (int)rq->group_id.len, rq->group_id.ptr, (long long)rq->producer_id,
                         COORDINATOR_OFFSETS_TOPIC, c->place.partition, kafka_error_name(a->error_code));
                for (uint32_t i = 0; i < c->count; i++)
                        if (!op->is_metadata_too_large[i])
                                *c->errors[i] = append_error_of(a->error_code);
        } else if (store) {
                uint32_t k = 0;
                for (uint32_t i = 0; i < c->count; i++) {
                        if (op->is_metadata_too_large[i])
                                continue;
                        struct offsets_write *w = &c->writes[i];
                        w->value.record_offset = a->base_offset + (int64_t)k++;
                        if (offsets_store_stage(store, rq->producer_id, w) < 0)
                                log_error("out of memory staging a durable transactional commit of group %.*s; "
                                          "its transaction's marker misses it until the broker restarts",
                                          (int)rq->group_id.len, rq->group_id.ptr);
                }
        }
        if (store)
                offsets_store_end_write(store, rq->group_id);
        offsets_note_group(c->b, c->place.partition, rq->group_id);
        offsets_trip_go_back(c);
}

/* Kafka's validateTransactionalOffsetCommit: a group that does not exist
 * takes commits of generation -1 only (a "simple" group is created for
 * them); one that exists checks member, instance and generation. */
static int16_t validate_commit(struct broker *b, const struct txn_offset_commit_request *rq)
{
        struct group_coordinator *gc = offsets_groups_here(b);
        struct group *g = gc ? group_find(gc, rq->group_id) : NULL;
        if (!g) {
                if (rq->generation_id >= 0)
                        return KAFKA_ILLEGAL_GENERATION;
                int16_t err = KAFKA_NONE;
                if (gc && !group_get_or_create(gc, rq->group_id, &err) && err != KAFKA_INVALID_GROUP_ID)
                        return err;
                return KAFKA_NONE;
        }
        return group_validate_offset_commit(g, rq->member_id, rq->group_instance_id, rq->generation_id, true);
}

/*
 * The base sequence the batch needs to pass the partition's producer
 * check: the producer's next one at this epoch, 0 for a new epoch. Kafka's
 * coordinator writes 0 and skips the sequence check for its own appends
 * (AppendOrigin.COORDINATOR); runnel's partition checks every batch, and
 * the producer writes nothing else to __consumer_offsets, so continuing
 * its sequence here is what keeps the check meaningful and passing.
 */
static int32_t next_sequence(struct partition *p, int64_t producer_id, int16_t producer_epoch)
{
        const struct producer_entry *e = producer_state_find(partition_producers(p), producer_id);
        if (!e || e->epoch != producer_epoch || e->batch_count == 0)
                return 0;
        const struct producer_batch *last =
                &e->batches[(e->batch_head + e->batch_count - 1u) % PRODUCER_BATCHES_KEPT];
        return last->last_seq == INT32_MAX ? 0 : last->last_seq + 1;
}

static void commit_at_home(void *arg)
{
        struct offsets_trip *c = arg;
        struct txn_commit_op *op = container_of(c, struct txn_commit_op, c);
        struct request *req = c->req;
        const struct txn_offset_commit_request *rq = op->rq;
        int16_t err = KAFKA_NONE;
        struct offsets_store *store = offsets_shard_store(c->b, c->place.topic, c->place.partition, &err);
        if (!store)
                goto fail;
        err = validate_commit(c->b, rq);
        if (err != KAFKA_NONE)
                goto fail;
        int64_t now_ms = offsets_wall_now_ms();
        /* The writes to append first, in request order; the refused ones
         * keep their answer. */
        struct offsets_write *writes = arena_calloc(&req->arena, (size_t)c->count + 1, sizeof(*writes));
        if (!writes) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        uint32_t n = 0;
        for (uint32_t i = 0; i < c->count; i++) {
                if (op->is_metadata_too_large[i]) {
                        *c->errors[i] = KAFKA_OFFSET_METADATA_TOO_LARGE;
                        continue;
                }
                c->writes[i].value.commit_timestamp_ms = now_ms;
                writes[n++] = c->writes[i];
        }
        op->write_count = n;
        if (n == 0) {
                offsets_trip_go_back(c);
                return;
        }
        struct partition *p = partition_home_get(c->b, c->place.topic, c->place.partition, &err);
        if (!p) {
                err = offsets_coordinator_error(err);
                goto fail;
        }
        struct offsets_txn_producer producer = {
                .producer_id = rq->producer_id,
                .producer_epoch = rq->producer_epoch,
                .base_sequence = next_sequence(p, rq->producer_id, rq->producer_epoch),
        };
        if (rq->producer_id < 0 || rq->producer_epoch < 0) {
                err = KAFKA_INVALID_PRODUCER_ID_MAPPING;
                goto fail;
        }
        uint8_t *batch;
        size_t len;
        int rc = offsets_txn_batch_build(writes, n, now_ms, &producer, &req->arena, &batch, &len);
        if (rc < 0) {
                err = rc == -ENOMEM ? KAFKA_COORDINATOR_NOT_AVAILABLE : KAFKA_UNKNOWN_SERVER_ERROR;
                goto fail;
        }
        if (offsets_store_begin_write(store, rq->group_id) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        /* The transaction coordinator confirmed (step 2) that this
         * partition is in the producer's open transaction: AddOffsetsToTxn
         * added it. Unconfirmed, the batch passes only when the producer's
         * transaction is already open on the partition (an earlier
         * TxnOffsetCommit of the same transaction), else INVALID_TXN_STATE,
         * so that no batch can open a transaction that no marker will end. */
        offsets_trip_append(c, p, batch, len, op->is_txn_verified, commit_append_done);
        return;
fail:
        offsets_trip_fail(c, err);
        offsets_trip_go_back(c);
}

/* Back from the transaction coordinator, on the request's reactor. */
static void commit_verified(void *ctx, int16_t error_code)
{
        struct txn_commit_op *op = ctx;
        if (error_code != KAFKA_NONE) {
                /* Kafka's AddPartitionsToTxnManager: clients before the
                 * KIP-890 error class know neither PRODUCER_FENCED here nor
                 * TRANSACTION_ABORTABLE. */
                if (error_code == KAFKA_PRODUCER_FENCED)
                        error_code = KAFKA_INVALID_PRODUCER_EPOCH;
                else if (error_code == KAFKA_TRANSACTION_ABORTABLE)
                        error_code = KAFKA_INVALID_TXN_STATE;
                offsets_trip_fail(&op->c, error_code);
                coordinator_place_put(&op->c.place);
                commit_respond(&op->c);
                return;
        }
        op->is_txn_verified = op->verify_error == KAFKA_NONE;
        offsets_trip_go_home(&op->c, commit_at_home);
}

void handle_txn_offset_commit(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct txn_offset_commit_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct txn_offset_commit_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct txn_commit_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        txn_offset_commit_response_init(resp);
        int32_t topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
        uint32_t total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                total += rq->topics.items[t].partitions.count > 0 ? (uint32_t)rq->topics.items[t].partitions.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*resp->topics.items));
        op->is_metadata_too_large = arena_calloc(&req->arena, (size_t)total + 1, sizeof(bool));
        if (!resp->topics.items || !op->is_metadata_too_large ||
            offsets_trip_init(&op->c, b, req, rq->group_id, total, commit_respond) < 0)
                goto out_of_memory;
        resp->topics.count = topic_count;
        op->rq = rq;
        op->resp = resp;

        int32_t metadata_max = b->config->offset_metadata_max_bytes;
        for (int32_t t = 0; t < topic_count; t++) {
                const struct txn_offset_commit_request_topic *tq = &rq->topics.items[t];
                struct txn_offset_commit_response_topic *tr = &resp->topics.items[t];
                txn_offset_commit_response_topic_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        const struct txn_offset_commit_request_partition *pq = &tq->partitions.items[i];
                        struct txn_offset_commit_response_partition *out = &tr->partitions.items[i];
                        txn_offset_commit_response_partition_init(out);
                        out->partition_index = pq->partition_index;
                        if (!topic || !catalog_topic_partition(topic, pq->partition_index)) {
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        op->is_metadata_too_large[op->c.count] =
                                !kstr_is_null(pq->committed_metadata) &&
                                offsets_metadata_length(pq->committed_metadata) > metadata_max;
                        offsets_trip_add(&op->c, &out->error_code, tq->name, pq->partition_index,
                                         pq->committed_offset,
                                         req->api_version >= 2 ? pq->committed_leader_epoch : -1,
                                         pq->committed_metadata);
                }
                catalog_topic_put(topic);
        }
        /* Nothing left for the coordinator: Kafka answers without asking it. */
        if (op->c.count == 0) {
                commit_respond(&op->c);
                return;
        }
        if (rq->group_id.len <= 0) {
                offsets_trip_fail(&op->c, KAFKA_INVALID_GROUP_ID);
                commit_respond(&op->c);
                return;
        }
        /* No __consumer_offsets yet: NOT_COORDINATOR sends the client to
         * FindCoordinator, which creates it. */
        if (!coordinator_locate_group(b, rq->group_id, &op->c.place)) {
                offsets_trip_fail(&op->c, KAFKA_NOT_COORDINATOR);
                commit_respond(&op->c);
                return;
        }
        op->verify_partition = op->c.place.partition;
        op->verify_topic = (struct txn_topic_partitions){ KSTR(COORDINATOR_OFFSETS_TOPIC), 1, &op->verify_partition };
        if (!txn_verify(b, req, rq->transactional_id, rq->producer_id, rq->producer_epoch, &op->verify_topic, 1,
                        &op->verify_error, commit_verified, op)) {
                coordinator_place_put(&op->c.place);
                goto out_of_memory;
        }
        return;

out_of_memory:
        log_warn("closing connection from %s: TxnOffsetCommit exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}
