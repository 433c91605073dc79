/*
 * txn_admin.c - what kafka-transactions.sh asks: DescribeTransactions,
 * ListTransactions (the transaction coordinator's shards) and
 * DescribeProducers (each partition's producer state).
 *
 * The coordinators are read at their homes one shard after the other
 * (txn_walk_shards); the request's arena is used there, as no other thread
 * touches the request meanwhile. Producer state is read at each
 * partition's home in parallel (fanout): those visits copy what they find
 * into malloc'ed memory, which the request's reactor moves into the
 * response once all are back.
 */
#include <stdlib.h>
#include <string.h>

#include "../base/logging.h"
#include "../log/producer_state.h"
#include "../protocol/gen/describe_producers.h"
#include "../protocol/gen/describe_transactions.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/list_transactions.h"
#include "fanout.h"
#include "handlers.h"
#include "txn.h"

/* Producers DescribeProducers lists per partition, at most. */
#define DESCRIBE_PRODUCERS_MAX 100000u

/* ---- DescribeTransactions ---- */

struct describe_txn {
        struct request *req;
        const struct describe_transactions_request *rq;
        struct describe_transactions_response resp;
        int32_t next;                   /* the id being described */
};

static void describe_txn_visit(void *ctx, int32_t index, const struct txn_coordinator *tc, int16_t err,
                               int64_t now_ms, struct arena *a)
{
        (void)index;
        (void)now_ms;
        struct describe_txn *d = ctx;
        struct describe_transactions_response_transaction_state *out = &d->resp.transaction_states.items[d->next++];
        if (!tc) {
                out->error_code = err;
                return;
        }
        struct txn_description desc;
        txn_describe(tc, out->transactional_id, a, &desc);
        out->error_code = desc.error_code;
        if (desc.error_code != KAFKA_NONE)
                return;
        out->transaction_state = KSTR(txn_state_name(desc.state));
        out->transaction_timeout_ms = desc.timeout_ms;
        out->transaction_start_time_ms = desc.start_ms;
        out->producer_id = desc.producer_id;
        out->producer_epoch = desc.producer_epoch;
        out->topics.items = desc.topic_count ? arena_calloc(a, (size_t)desc.topic_count, sizeof(*out->topics.items))
                                             : NULL;
        if (desc.topic_count && !out->topics.items) {
                out->error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                return;
        }
        out->topics.count = desc.topic_count;
        for (int32_t t = 0; t < desc.topic_count; t++) {
                struct describe_transactions_response_topic_data *td = &out->topics.items[t];
                describe_transactions_response_topic_data_init(td);
                td->topic = desc.topics[t].topic;
                td->partitions.count = desc.topics[t].partition_count;
                td->partitions.items = (int32_t *)desc.topics[t].partitions;
        }
}

static void describe_txn_done(void *ctx)
{
        struct describe_txn *d = ctx;
        dispatch_respond(d->req, &d->resp);
}

void handle_describe_transactions(struct broker *b, struct request *req, struct kreader *body)
{
        struct describe_transactions_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct describe_txn *d = arena_calloc(&req->arena, 1, sizeof(*d));
        int32_t n = rq->transactional_ids.count > 0 ? rq->transactional_ids.count : 0;
        int32_t *indexes = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*indexes));
        if (!d || !indexes)
                goto out_of_memory;
        d->req = req;
        d->rq = rq;
        describe_transactions_response_init(&d->resp);
        d->resp.transaction_states.items = arena_calloc(&req->arena, (size_t)n + 1,
                                                        sizeof(*d->resp.transaction_states.items));
        if (!d->resp.transaction_states.items)
                goto out_of_memory;
        d->resp.transaction_states.count = n;
        /* Ids without a coordinator partition are answered here; the rest
         * are visited in order (the walk's visits fill d->next onwards). */
        int32_t walk = 0;
        for (int32_t i = 0; i < n; i++) {
                struct describe_transactions_response_transaction_state *out = &d->resp.transaction_states.items[i];
                describe_transactions_response_transaction_state_init(out);
                out->transactional_id = rq->transactional_ids.items[i];
                out->transaction_state = KSTR("");
                int32_t index = txn_shard_of(b, out->transactional_id);
                /* No __transaction_state yet: no transaction was ever begun. */
                if (index < 0) {
                        out->error_code = KAFKA_TRANSACTIONAL_ID_NOT_FOUND;
                        continue;
                }
                indexes[walk++] = index;
        }
        if (walk < n) {
                /* Move the ids to visit first, in order, keeping answers aligned. */
                struct describe_transactions_response_transaction_state *items = d->resp.transaction_states.items;
                struct describe_transactions_response_transaction_state *sorted =
                        arena_calloc(&req->arena, (size_t)n + 1, sizeof(*sorted));
                if (!sorted)
                        goto out_of_memory;
                int32_t k = 0;
                for (int32_t i = 0; i < n; i++)
                        if (items[i].error_code == KAFKA_NONE)
                                sorted[k++] = items[i];
                for (int32_t i = 0; i < n; i++)
                        if (items[i].error_code != KAFKA_NONE)
                                sorted[k++] = items[i];
                d->resp.transaction_states.items = sorted;
        }
        if (!txn_walk_shards(b, req, indexes, walk, describe_txn_visit, describe_txn_done, d))
                goto out_of_memory;
        return;
out_of_memory:
        request_close_connection(req);
}

/* ---- ListTransactions ---- */

struct list_txn {
        struct request *req;
        const struct list_transactions_request *rq;
        struct list_transactions_response resp;
        uint32_t cap;
        bool has_unknown;
};

static void list_txn_visit(void *ctx, int32_t index, const struct txn_coordinator *tc, int16_t err, int64_t now_ms,
                           struct arena *a)
{
        (void)index;
        struct list_txn *l = ctx;
        if (!tc) {
                if (l->resp.error_code == KAFKA_NONE)
                        l->resp.error_code = err;
                return;
        }
        const struct list_transactions_request *rq = l->rq;
        struct txn_listing *items;
        uint32_t count;
        struct kstr *unknown;
        uint32_t unknown_count;
        int64_t duration_ms = l->req->api_version >= 1 ? rq->duration_filter : -1;
        int16_t code = txn_list(tc, rq->state_filters.items, rq->state_filters.count > 0 ? rq->state_filters.count : 0,
                                rq->producer_id_filters.items,
                                rq->producer_id_filters.count > 0 ? rq->producer_id_filters.count : 0, duration_ms,
                                now_ms, a, &items, &count, &unknown, &unknown_count);
        if (code != KAFKA_NONE) {
                if (l->resp.error_code == KAFKA_NONE)
                        l->resp.error_code = code;
                return;
        }
        if (!l->has_unknown) {
                l->has_unknown = true;
                l->resp.unknown_state_filters.items = unknown;
                l->resp.unknown_state_filters.count = (int32_t)unknown_count;
        }
        if (count == 0)
                return;
        uint32_t have = (uint32_t)l->resp.transaction_states.count;
        if (have + count > l->cap) {
                uint32_t cap = (have + count) * 2;
                struct list_transactions_response_transaction_state *n = arena_calloc(a, cap, sizeof(*n));
                if (!n) {
                        l->resp.error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                        return;
                }
                if (have)
                        memcpy(n, l->resp.transaction_states.items, have * sizeof(*n));
                l->resp.transaction_states.items = n;
                l->cap = cap;
        }
        for (uint32_t i = 0; i < count; i++) {
                struct list_transactions_response_transaction_state *out = &l->resp.transaction_states.items[have + i];
                list_transactions_response_transaction_state_init(out);
                out->transactional_id = items[i].transactional_id;
                out->producer_id = items[i].producer_id;
                out->transaction_state = KSTR(txn_state_name(items[i].state));
        }
        l->resp.transaction_states.count = (int32_t)(have + count);
}

static void list_txn_done(void *ctx)
{
        struct list_txn *l = ctx;
        dispatch_respond(l->req, &l->resp);
}

void handle_list_transactions(struct broker *b, struct request *req, struct kreader *body)
{
        struct list_transactions_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct list_txn *l = arena_calloc(&req->arena, 1, sizeof(*l));
        int32_t n = txn_shard_count(b);
        int32_t *indexes = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*indexes));
        if (!l || !indexes) {
                request_close_connection(req);
                return;
        }
        l->req = req;
        l->rq = rq;
        list_transactions_response_init(&l->resp);
        for (int32_t i = 0; i < n; i++)
                indexes[i] = i;
        if (!txn_walk_shards(b, req, indexes, n, list_txn_visit, list_txn_done, l))
                request_close_connection(req);
}

/* ---- DescribeProducers ---- */

struct producers_item {
        struct describe_producers_response_partition_response *out;
        struct describe_producers_response_producer_state *found;      /* malloc'ed at the home */
        uint32_t found_count;
};

static bool producers_at_home(struct fanout_item *it, struct partition *p, int16_t err)
{
        struct producers_item *pi = it->ctx;
        if (!p) {
                pi->out->error_code = err;
                return false;
        }
        const struct producer_state *s = partition_producers(p);
        uint32_t n = producer_state_count(s);
        if (n > DESCRIBE_PRODUCERS_MAX)
                n = DESCRIBE_PRODUCERS_MAX;
        pi->found = n ? calloc(n, sizeof(*pi->found)) : NULL;
        if (n && !pi->found) {
                pi->out->error_code = KAFKA_UNKNOWN_SERVER_ERROR;
                return false;
        }
        uint32_t cursor = 0;
        for (const struct producer_entry *e; pi->found_count < n && (e = producer_state_next(s, &cursor));) {
                struct describe_producers_response_producer_state *ps = &pi->found[pi->found_count++];
                describe_producers_response_producer_state_init(ps);
                uint32_t last = e->batch_count ? (e->batch_head + e->batch_count - 1u) % PRODUCER_BATCHES_KEPT : 0;
                ps->producer_id = e->producer_id;
                ps->producer_epoch = e->epoch;
                ps->last_sequence = e->batch_count ? e->batches[last].last_seq : -1;
                ps->last_timestamp = e->last_timestamp_ms;
                ps->coordinator_epoch = e->coordinator_epoch;
                ps->current_txn_start_offset = e->txn_first_offset;
        }
        return false;
}

static void producers_done(struct fanout *f)
{
        struct request *req = f->req;
        bool is_oom = false;
        for (int32_t i = 0; i < f->count; i++) {
                struct producers_item *pi = f->items[i].ctx;
                if (pi->found_count) {
                        void *copy = arena_dup(&req->arena, pi->found, pi->found_count * sizeof(*pi->found));
                        is_oom |= copy == NULL;
                        pi->out->active_producers.items = copy;
                        pi->out->active_producers.count = copy ? (int32_t)pi->found_count : 0;
                }
                free(pi->found);
                pi->found = NULL;
        }
        fanout_put_topics(f);
        if (is_oom)
                request_close_connection(req);
        else
                dispatch_respond(req, f->ctx);
}

void handle_describe_producers(struct broker *b, struct request *req, struct kreader *body)
{
        struct describe_producers_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct fanout *f = NULL;
        struct describe_producers_response *resp = arena_calloc(&req->arena, 1, sizeof(*resp));
        int32_t tn = rq->topics.count > 0 ? rq->topics.count : 0;
        int32_t total = 0;
        for (int32_t t = 0; t < tn; t++)
                total += rq->topics.items[t].partition_indexes.count > 0 ? rq->topics.items[t].partition_indexes.count
                                                                        : 0;
        if (!resp)
                goto out_of_memory;
        describe_producers_response_init(resp);
        f = fanout_new(b, req, total, producers_at_home, producers_done, resp);
        struct producers_item *pis = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*pis));
        resp->topics.items = arena_calloc(&req->arena, (size_t)tn + 1, sizeof(*resp->topics.items));
        if (!f || !pis || !resp->topics.items)
                goto out_of_memory;
        resp->topics.count = tn;
        for (int32_t t = 0; t < tn; t++) {
                const struct describe_producers_request_topic_request *tq = &rq->topics.items[t];
                struct describe_producers_response_topic_response *tr = &resp->topics.items[t];
                describe_producers_response_topic_response_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partition_indexes.count > 0 ? tq->partition_indexes.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        struct describe_producers_response_partition_response *out = &tr->partitions.items[i];
                        describe_producers_response_partition_response_init(out);
                        out->partition_index = tq->partition_indexes.items[i];
                        struct producers_item *pi = &pis[f->count];
                        pi->out = out;
                        if (!fanout_add_partition(f, topic, out->partition_index, pi))
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                }
                catalog_topic_put(topic);
        }
        fanout_start(f);
        return;
out_of_memory:
        fanout_abandon(f, req, "DescribeProducers");
}
