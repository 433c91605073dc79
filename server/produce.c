/*
 * produce.c - Produce: validate each partition's record batches on the
 * request's reactor, append them on the partition's home reactor, and answer
 * once every partition has finished (written for acks=1, durable for
 * acks=all under runnel's default flush policy, silently for acks=0).
 *
 * The records are appended straight from the request frame: the batches are
 * rewritten in place (offsets, leader epoch, LogAppendTime) and written from
 * there, so produced bytes are copied once, from the socket into the frame.
 * The request therefore stays alive until every write has completed, acks=0
 * included.
 *
 * Produce v0-v2 (the pre-0.11 message formats) is advertised from v0 because
 * librdkafka before 2.11 disables compression when the minimum is above 0,
 * but answered as Kafka 4 answers it: UNSUPPORTED_VERSION per partition.
 */
#include <errno.h>
#include <string.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/produce.h"
#include "../protocol/record_batch.h"
#include "broker.h"
#include "handlers.h"
#include "reactor.h"
#include "fanout.h"
#include "txn.h"

/* One partition of the request, carried to its home and back. */
struct produce_part {
        struct fanout_item *item;
        struct partition_append append;
        struct record_batch_header header;      /* of the batch sent */
        struct produce_response_partition_produce_response *out;
};

/*
 * Kafka logs every append it refuses for what the records are (ReplicaManager:
 * "Error processing append operation on partition ..."), so an operator can
 * tell a broken or hostile producer from a broker fault. Here too, but at most
 * PRODUCE_REFUSED_LOG_MAX lines per reactor thread per interval, so that a
 * client sending garbage in a loop cannot fill the disk with our log.
 */
#define PRODUCE_REFUSED_LOG_MAX 20
#define PRODUCE_REFUSED_LOG_INTERVAL_MS 10000

static bool is_refused_for_records(int16_t code)
{
        return code == KAFKA_CORRUPT_MESSAGE || code == KAFKA_INVALID_RECORD || code == KAFKA_MESSAGE_TOO_LARGE ||
               code == KAFKA_RECORD_LIST_TOO_LARGE || code == KAFKA_INVALID_TIMESTAMP;
}

static void log_refused(const struct request *req, const char *topic, int32_t topic_len, int32_t partition,
                        int16_t code, const char *message)
{
        static _Thread_local uint64_t interval_start_ms;
        static _Thread_local uint32_t logged_count;
        static _Thread_local uint32_t suppressed_count;
        uint64_t now_ms = reactor_now_ms();

        if (now_ms - interval_start_ms >= PRODUCE_REFUSED_LOG_INTERVAL_MS) {
                if (suppressed_count > 0)
                        log_info("produce: %u more refused appends not logged in the last %d s", suppressed_count,
                                 PRODUCE_REFUSED_LOG_INTERVAL_MS / 1000);
                interval_start_ms = now_ms;
                logged_count = 0;
                suppressed_count = 0;
        }
        if (logged_count >= PRODUCE_REFUSED_LOG_MAX) {
                suppressed_count++;
                return;
        }
        logged_count++;
        log_info("produce from %s to %.*s-%d refused with %s: %s", request_peer(req), (int)topic_len, topic,
                 partition, kafka_error_name(code), message && message[0] ? message : "(no detail)");
}

/* On the request's reactor once every partition is back: fill the answers. */
static void produce_done(struct fanout *f)
{
        struct request *req = f->req;
        for (int32_t i = 0; i < f->count; i++) {
                const struct fanout_item *it = &f->items[i];
                const struct produce_part *pp = it->ctx;
                if (it->topic && is_refused_for_records(pp->append.error_code))
                        log_refused(req, it->topic->name, (int32_t)it->topic->name_len, it->index,
                                    pp->append.error_code, pp->append.error_message);
        }
        fanout_put_topics(f);
        for (int32_t i = 0; i < f->count; i++) {
                struct produce_part *pp = f->items[i].ctx;
                struct partition_append *a = &pp->append;
                struct produce_response_partition_produce_response *out = pp->out;
                if (out->error_code != KAFKA_NONE)
                        continue;       /* refused before the append */
                out->error_code = a->error_code;
                if (a->error_code == KAFKA_NONE) {
                        out->base_offset = a->base_offset;
                        out->log_append_time_ms = a->log_append_time_ms;
                        out->log_start_offset = a->log_start_offset;
                        continue;
                }
                /* Kafka explains only what record validation refused; its
                 * other errors go out with a null message. */
                bool is_validation = a->error_code == KAFKA_INVALID_RECORD || a->error_code == KAFKA_CORRUPT_MESSAGE ||
                                     a->error_code == KAFKA_INVALID_TIMESTAMP;
                if (a->error_message[0] && is_validation)
                        out->error_message = KSTR(a->error_message);
                if (req->api_version >= 8 && a->error_code == KAFKA_INVALID_RECORD && a->error_record_index >= 0) {
                        out->record_errors.items = arena_calloc(&req->arena, 1, sizeof(*out->record_errors.items));
                        if (out->record_errors.items) {
                                produce_response_batch_index_and_error_message_init(out->record_errors.items);
                                out->record_errors.items[0].batch_index = a->error_record_index;
                                out->record_errors.items[0].batch_index_error_message = out->error_message;
                                out->record_errors.count = 1;
                        }
                }
        }
        if (f->ctx == NULL)
                request_complete_silently(req);         /* acks=0 */
        else
                dispatch_respond(req, f->ctx);
}

/* On the home reactor, when the append is written (or durable). */
static void produce_append_done(struct partition_append *a)
{
        struct produce_part *pp = a->ctx;
        fanout_item_back(pp->item);
}

static bool produce_at_home(struct fanout_item *it, struct partition *p, int16_t err)
{
        struct produce_part *pp = it->ctx;
        if (!p) {
                pp->append.error_code = err;
                return false;
        }
        /* done (produce_append_done) sends the item back, maybe at once. */
        partition_append(p, &pp->append);
        return true;
}

static void fail_part(struct produce_response_partition_produce_response *out, int16_t code, const char *message)
{
        out->error_code = code;
        if (message)
                out->error_message = KSTR(message);
}

/*
 * What can be checked before the partition's home: there is a batch, and a
 * zstd batch comes in Produce v7 or later (KIP-110). The rest, which needs
 * the topic's config, is checked at home by partition_append.
 *
 * As Kafka's ProduceRequest.validateRecords: records that hold no whole
 * batch (none at all, or one whose length runs past the bytes sent) are
 * INVALID_RECORD; a header that cannot be a batch is CORRUPT_MESSAGE.
 */
static int16_t check_records(struct request *req, const struct kbytes *records,
                             struct produce_response_partition_produce_response *out, struct record_batch_header *header)
{
        struct record_batch_header h;
        memset(header, 0, sizeof(*header));
        header->producer_id = RECORD_BATCH_NO_PRODUCER_ID;
        enum record_batch_frame frame = records->len < 0 ? RECORD_BATCH_FRAME_BAD_LENGTH :
                                        record_batch_frame(records->ptr, (size_t)records->len, &h);
        if (frame == RECORD_BATCH_FRAME_END || frame == RECORD_BATCH_FRAME_PARTIAL) {
                fail_part(out, KAFKA_INVALID_RECORD, arena_printf(&req->arena, "Produce requests with version %d "
                          "must have at least one record batch per partition", req->api_version));
                return KAFKA_INVALID_RECORD;
        }
        if (frame != RECORD_BATCH_FRAME_OK) {
                fail_part(out, KAFKA_CORRUPT_MESSAGE, "The records are not a record batch of magic 2.");
                return KAFKA_CORRUPT_MESSAGE;
        }
        if (record_batch_codec(&h) == RECORD_BATCH_CODEC_ZSTD && req->api_version < 7) {
                fail_part(out, KAFKA_UNSUPPORTED_COMPRESSION_TYPE,
                          "zstd-compressed batches need Produce v7 or later.");
                return KAFKA_UNSUPPORTED_COMPRESSION_TYPE;
        }
        *header = h;
        return KAFKA_NONE;
}

/* ---- the transactional check (KIP-890 part 1) ---- */

struct produce_verify {
        struct fanout *f;
        struct produce_part **parts;    /* the transactional partitions, in topics order */
        int16_t *errors;
};

/* The coordinator could not answer now (loading, moving, busy): Kafka
 * answers the partitions NOT_ENOUGH_REPLICAS then, which every client
 * retries (KAFKA-14561), rather than an error that ends the transaction. */
static bool is_verify_retriable(int16_t error_code)
{
        return error_code == KAFKA_COORDINATOR_NOT_AVAILABLE || error_code == KAFKA_NOT_COORDINATOR ||
               error_code == KAFKA_COORDINATOR_LOAD_IN_PROGRESS || error_code == KAFKA_CONCURRENT_TRANSACTIONS;
}

static void produce_verified(void *ctx, int16_t error_code)
{
        struct produce_verify *v = ctx;
        for (int32_t i = 0; i < v->f->count; i++) {
                struct produce_part *pp = v->parts[i];
                if (!pp)
                        break;
                int16_t code = error_code != KAFKA_NONE ? error_code : v->errors[i];
                pp->append.is_txn_verified = code == KAFKA_NONE;
                if (code == KAFKA_NONE)
                        continue;
                /* Answered here, as Kafka's AddPartitionsToTxnManager maps
                 * the coordinator's refusals: the item does not go home. */
                if (is_verify_retriable(code))
                        code = KAFKA_NOT_ENOUGH_REPLICAS;
                else if (code == KAFKA_PRODUCER_FENCED)
                        code = KAFKA_INVALID_PRODUCER_EPOCH;    /* what producers expect here */
                else if (code == KAFKA_TRANSACTION_ABORTABLE)
                        code = KAFKA_INVALID_TXN_STATE;         /* Produce v11 and older */
                catalog_topic_put(pp->item->topic);
                pp->item->topic = NULL;
                fail_part(pp->out, code, NULL);
        }
        fanout_start(v->f);
}

/*
 * A transactional batch may open a transaction on a partition only once
 * the coordinator confirms the partition was added to it: the partitions
 * of this request that carry one are checked with it first, and those it
 * does not confirm are refused at their home unless their transaction is
 * already open there. Returns false when nothing needed checking.
 */
static bool produce_verify_start(struct broker *b, struct request *req, const struct produce_request *rq,
                                 struct fanout *f, struct produce_part *parts)
{
        if (req->api_version < 3 || kstr_is_null(rq->transactional_id))
                return false;
        int32_t n = 0;
        for (int32_t i = 0; i < f->count; i++)
                n += record_batch_is_transactional(&parts[i].header);
        if (n == 0)
                return false;
        struct produce_verify *v = arena_calloc(&req->arena, 1, sizeof(*v));
        struct txn_topic_partitions *topics = arena_calloc(&req->arena, (size_t)n, sizeof(*topics));
        int32_t *indexes = arena_calloc(&req->arena, (size_t)n, sizeof(*indexes));
        if (v) {
                v->parts = arena_calloc(&req->arena, (size_t)f->count + 1, sizeof(*v->parts));
                v->errors = arena_calloc(&req->arena, (size_t)n, sizeof(*v->errors));
        }
        if (!v || !topics || !indexes || !v->parts || !v->errors)
                return false;   /* unverified: refused at home unless open there */
        v->f = f;
        /* Items are in request order, topic by topic: one entry per run. */
        int32_t topic_count = 0, k = 0;
        const struct record_batch_header *first = NULL;
        for (int32_t i = 0; i < f->count; i++) {
                struct produce_part *pp = &parts[i];
                if (!record_batch_is_transactional(&pp->header))
                        continue;
                if (!first)
                        first = &pp->header;
                struct kstr name = { pp->item->topic->name, (int32_t)pp->item->topic->name_len };
                if (topic_count == 0 || !kstr_eq(topics[topic_count - 1].topic, name)) {
                        topics[topic_count].topic = name;
                        topics[topic_count].partitions = &indexes[k];
                        topics[topic_count].partition_count = 0;
                        topic_count++;
                }
                indexes[k] = pp->item->index;
                topics[topic_count - 1].partition_count++;
                v->parts[k++] = pp;
        }
        return txn_verify(b, req, rq->transactional_id, first->producer_id, first->producer_epoch, topics,
                          topic_count, v->errors, produce_verified, v);
}

void handle_produce(struct broker *b, struct request *req, struct kreader *body)
{
        struct produce_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct fanout *f = NULL;
        struct produce_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        if (!resp)
                goto out_of_memory;
        produce_response_init(resp);

        int32_t topic_count = rq->topic_data.count > 0 ? rq->topic_data.count : 0;
        int32_t part_total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                part_total += rq->topic_data.items[t].partition_data.count > 0 ?
                              rq->topic_data.items[t].partition_data.count : 0;
        f = fanout_new(b, req, part_total, produce_at_home, produce_done, rq->acks == 0 ? NULL : resp);
        struct produce_part *parts = arena_calloc(&req->arena, (size_t)part_total + 1, sizeof(*parts));
        resp->responses.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*resp->responses.items));
        if (!f || !parts || !resp->responses.items)
                goto out_of_memory;
        resp->responses.count = topic_count;

        bool is_acks_valid = rq->acks == 0 || rq->acks == 1 || rq->acks == -1;
        for (int32_t t = 0; t < topic_count; t++) {
                const struct produce_request_topic_produce_data *td = &rq->topic_data.items[t];
                struct produce_response_topic_produce_response *tr = &resp->responses.items[t];
                produce_response_topic_produce_response_init(tr);
                tr->name = td->name;
                int32_t pn = td->partition_data.count > 0 ? td->partition_data.count : 0;
                tr->partition_responses.items = arena_calloc(&req->arena, (size_t)pn + 1,
                                                             sizeof(*tr->partition_responses.items));
                if (!tr->partition_responses.items)
                        goto out_of_memory;
                tr->partition_responses.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, td->name);
                for (int32_t i = 0; i < pn; i++) {
                        const struct produce_request_partition_produce_data *pd = &td->partition_data.items[i];
                        struct produce_response_partition_produce_response *out = &tr->partition_responses.items[i];
                        produce_response_partition_produce_response_init(out);
                        out->index = pd->index;
                        out->base_offset = -1;  /* Kafka's INVALID_OFFSET, until an append succeeds */
                        if (req->api_version < 3) {
                                fail_part(out, KAFKA_UNSUPPORTED_VERSION,
                                          "Produce v0-v2 (message format v0/v1) is not supported; use v3 or later.");
                                continue;
                        }
                        if (!is_acks_valid) {
                                fail_part(out, KAFKA_INVALID_REQUIRED_ACKS, NULL);
                                continue;
                        }
                        if (!topic || !catalog_topic_partition(topic, pd->index)) {
                                fail_part(out, KAFKA_UNKNOWN_TOPIC_OR_PARTITION, NULL);
                                continue;
                        }
                        if (topic->is_internal) {
                                fail_part(out, KAFKA_INVALID_TOPIC_EXCEPTION,
                                          "Clients may not write to an internal topic.");
                                continue;
                        }
                        struct produce_part *pp = &parts[f->count];
                        int16_t records_code = check_records(req, &pd->records, out, &pp->header);
                        if (records_code != KAFKA_NONE) {
                                if (is_refused_for_records(records_code))
                                        log_refused(req, td->name.ptr, td->name.len, pd->index, records_code,
                                                    out->error_message.ptr);
                                continue;
                        }
                        struct fanout_item *it = &f->items[f->count++];
                        it->topic = catalog_topic_hold(topic);
                        it->index = pd->index;
                        it->ctx = pp;
                        pp->item = it;
                        pp->out = out;
                        pp->append.batches = (uint8_t *)pd->records.ptr;
                        pp->append.len = (size_t)pd->records.len;
                        pp->append.is_durable = rq->acks == -1;
                        pp->append.done = produce_append_done;
                        pp->append.ctx = pp;
                }
                catalog_topic_put(topic);
        }
        if (!produce_verify_start(b, req, rq, f, parts))
                fanout_start(f);
        return;

out_of_memory:
        fanout_abandon(f, req, "Produce");
}
