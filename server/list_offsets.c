/*
 * list_offsets.c - ListOffsets and OffsetForLeaderEpoch: offsets by time and
 * by leader epoch, answered by each partition's home.
 *
 * ListOffsets timestamps: -1 latest (the high watermark; the last stable
 * offset for read_committed, which is the same until transactions exist),
 * -2 earliest (log start offset), -3 the record with the largest timestamp
 * (v7+), -4 earliest local (v8+, the log start offset: runnel keeps every
 * segment locally), -5 earliest pending upload (v9+, none: -1), and any
 * other value the first offset whose timestamp is at or after it.
 *
 * runnel has been the only leader of every partition, in leader epoch 0.
 */
#include <errno.h>

#include "../protocol/gen/errors.h"
#include "../protocol/gen/list_offsets.h"
#include "../protocol/gen/offset_for_leader_epoch.h"
#include "fanout.h"
#include "handlers.h"

#define LIST_LATEST (-1)
#define LIST_EARLIEST (-2)
#define LIST_MAX_TIMESTAMP (-3)
#define LIST_EARLIEST_LOCAL (-4)
#define LIST_EARLIEST_PENDING_UPLOAD (-5)

/* KIP-320: the leader epoch a client believes in against ours. */
static int16_t check_leader_epoch(int32_t client_epoch, struct partition *p)
{
        if (client_epoch < 0)
                return KAFKA_NONE;
        int32_t epoch = partition_leader_epoch(p);
        if (client_epoch < epoch)
                return KAFKA_FENCED_LEADER_EPOCH;
        if (client_epoch > epoch)
                return KAFKA_UNKNOWN_LEADER_EPOCH;
        return KAFKA_NONE;
}

struct list_item {
        const struct list_offsets_request_list_offsets_partition *want;
        struct list_offsets_response_list_offsets_partition_response *out;
        int16_t version;
        bool is_read_committed;         /* v2+ isolation_level 1: latest is the LSO */
};

static bool list_at_home(struct fanout_item *it, struct partition *p, int16_t err)
{
        struct list_item *li = it->ctx;
        struct list_offsets_response_list_offsets_partition_response *out = li->out;
        if (!p) {
                out->error_code = err;
                return false;
        }
        out->error_code = check_leader_epoch(li->version >= 4 ? li->want->current_leader_epoch : -1, p);
        if (out->error_code != KAFKA_NONE)
                return false;
        int64_t offset = -1;
        int64_t timestamp = -1;
        switch (li->want->timestamp) {
        case LIST_LATEST:
                offset = li->is_read_committed ? partition_last_stable_offset(p) : partition_high_watermark(p);
                break;
        case LIST_EARLIEST:
        case LIST_EARLIEST_LOCAL:
                offset = partition_log_start_offset(p);
                break;
        case LIST_MAX_TIMESTAMP:
                partition_max_timestamp(p, &offset, &timestamp);
                break;
        case LIST_EARLIEST_PENDING_UPLOAD:
                break;
        default:
                if (li->want->timestamp < 0) {
                        out->error_code = KAFKA_INVALID_REQUEST;
                        return false;
                }
                partition_offset_for_time(p, li->want->timestamp, &offset, &timestamp);
                break;
        }
        out->offset = offset;
        out->timestamp = timestamp;
        if (li->version >= 4)
                out->leader_epoch = offset >= 0 ? partition_leader_epoch(p) : -1;
        return false;
}

static void list_done(struct fanout *f)
{
        struct request *req = f->req;
        struct list_offsets_response *resp = f->ctx;
        fanout_put_topics(f);
        if (req->api_version == 0) {
                /* v0 answers a list of offsets instead of one. */
                for (int32_t i = 0; i < f->count; i++) {
                        struct list_item *li = f->items[i].ctx;
                        int64_t *one = arena_alloc(&req->arena, sizeof(*one));
                        if (!one) {
                                request_close_connection(req);
                                return;
                        }
                        *one = li->out->offset;
                        bool has = li->out->error_code == KAFKA_NONE && li->out->offset >= 0 &&
                                   li->want->max_num_offsets > 0;
                        li->out->old_style_offsets = (struct kint64_array){ has ? 1 : 0, one };
                        li->out->offset = -1;
                        li->out->timestamp = -1;
                        li->out->leader_epoch = -1;
                }
        }
        dispatch_respond(req, resp);
}

void handle_list_offsets(struct broker *b, struct request *req, struct kreader *body)
{
        struct list_offsets_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct fanout *f = NULL;
        struct list_offsets_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        if (!resp)
                goto out_of_memory;
        list_offsets_response_init(resp);
        int32_t tn = rq->topics.count > 0 ? rq->topics.count : 0;
        int32_t total = 0;
        for (int32_t t = 0; t < tn; t++)
                total += rq->topics.items[t].partitions.count > 0 ? rq->topics.items[t].partitions.count : 0;
        f = fanout_new(b, req, total, list_at_home, list_done, resp);
        struct list_item *lis = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*lis));
        resp->topics.items = arena_calloc(&req->arena, (size_t)tn + 1, sizeof(*resp->topics.items));
        if (!f || !lis || !resp->topics.items)
                goto out_of_memory;
        resp->topics.count = tn;
        for (int32_t t = 0; t < tn; t++) {
                const struct list_offsets_request_list_offsets_topic *tq = &rq->topics.items[t];
                struct list_offsets_response_list_offsets_topic_response *tr = &resp->topics.items[t];
                list_offsets_response_list_offsets_topic_response_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        struct list_offsets_response_list_offsets_partition_response *out = &tr->partitions.items[i];
                        list_offsets_response_list_offsets_partition_response_init(out);
                        out->partition_index = tq->partitions.items[i].partition_index;
                        struct list_item *li = &lis[f->count];
                        li->want = &tq->partitions.items[i];
                        li->out = out;
                        li->version = req->api_version;
                        li->is_read_committed = req->api_version >= 2 && rq->isolation_level == 1;
                        if (!fanout_add_partition(f, topic, out->partition_index, li))
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                }
                catalog_topic_put(topic);
        }
        fanout_start(f);
        return;
out_of_memory:
        fanout_abandon(f, req, "ListOffsets");
}

/* ---- OffsetForLeaderEpoch ---- */

struct epoch_item {
        const struct offset_for_leader_epoch_request_offset_for_leader_partition *want;
        struct offset_for_leader_epoch_response_epoch_end_offset *out;
        int16_t version;
};

static bool epoch_at_home(struct fanout_item *it, struct partition *p, int16_t err)
{
        struct epoch_item *ei = it->ctx;
        struct offset_for_leader_epoch_response_epoch_end_offset *out = ei->out;
        if (!p) {
                out->error_code = err;
                return false;
        }
        out->error_code = check_leader_epoch(ei->version >= 2 ? ei->want->current_leader_epoch : -1, p);
        if (out->error_code != KAFKA_NONE)
                return false;
        int32_t epoch = partition_leader_epoch(p);
        if (ei->want->leader_epoch > epoch || ei->want->leader_epoch < 0) {
                /* An epoch we never had: Kafka answers UNDEFINED (-1, -1). */
                out->leader_epoch = -1;
                out->end_offset = -1;
                return false;
        }
        /* Every epoch up to ours ends at our log end: there was only ours. */
        out->leader_epoch = epoch;
        out->end_offset = partition_log_end_offset(p);
        return false;
}

void handle_offset_for_leader_epoch(struct broker *b, struct request *req, struct kreader *body)
{
        struct offset_for_leader_epoch_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct fanout *f = NULL;
        struct offset_for_leader_epoch_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        if (!resp)
                goto out_of_memory;
        offset_for_leader_epoch_response_init(resp);
        int32_t tn = rq->topics.count > 0 ? rq->topics.count : 0;
        int32_t total = 0;
        for (int32_t t = 0; t < tn; t++)
                total += rq->topics.items[t].partitions.count > 0 ? rq->topics.items[t].partitions.count : 0;
        f = fanout_new(b, req, total, epoch_at_home, fanout_respond, resp);
        struct epoch_item *eis = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*eis));
        resp->topics.items = arena_calloc(&req->arena, (size_t)tn + 1, sizeof(*resp->topics.items));
        if (!f || !eis || !resp->topics.items)
                goto out_of_memory;
        resp->topics.count = tn;
        for (int32_t t = 0; t < tn; t++) {
                const struct offset_for_leader_epoch_request_offset_for_leader_topic *tq = &rq->topics.items[t];
                struct offset_for_leader_epoch_response_offset_for_leader_topic_result *tr = &resp->topics.items[t];
                offset_for_leader_epoch_response_offset_for_leader_topic_result_init(tr);
                tr->topic = tq->topic;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->topic);
                for (int32_t i = 0; i < pn; i++) {
                        struct offset_for_leader_epoch_response_epoch_end_offset *out = &tr->partitions.items[i];
                        offset_for_leader_epoch_response_epoch_end_offset_init(out);
                        out->partition = tq->partitions.items[i].partition;
                        struct epoch_item *ei = &eis[f->count];
                        ei->want = &tq->partitions.items[i];
                        ei->out = out;
                        ei->version = req->api_version;
                        if (!fanout_add_partition(f, topic, out->partition, ei))
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                }
                catalog_topic_put(topic);
        }
        fanout_start(f);
        return;
out_of_memory:
        fanout_abandon(f, req, "OffsetForLeaderEpoch");
}
