/*
 * delete_records.c - DeleteRecords v0-v2: moves partitions' log start
 * offsets (kafka-delete-records.sh, AdminClient.deleteRecords), each on its
 * partition's home.
 *
 * Per partition, as Kafka's ReplicaManager answers: UNKNOWN_TOPIC_OR_PARTITION
 * for a topic or partition the catalog does not have, INVALID_TOPIC_EXCEPTION
 * for an internal topic, POLICY_VIOLATION when cleanup.policy lacks delete,
 * OFFSET_OUT_OF_RANGE for an offset past the high watermark or negative
 * other than -1 (which means the high watermark), and otherwise the new log
 * start offset as low_watermark. Errors carry low_watermark -1. With one
 * replica the low watermark is reached at once, so timeout_ms never waits.
 *
 * The new start offset is in memory at once (Fetch below it answers
 * OFFSET_OUT_OF_RANGE, ListOffsets earliest returns it) and reaches
 * log-start-offset-checkpoint soon after: the checkpointer is asked to
 * write it now rather than at its interval. Kafka leaves it to the interval,
 * so an unclean stop in between can bring the records back, as in Kafka.
 */
#include <errno.h>

#include "../protocol/gen/delete_records.h"
#include "../protocol/gen/errors.h"
#include "fanout.h"
#include "handlers.h"
#include "partition_home.h"

struct delete_item {
        int64_t offset;
        struct delete_records_response_delete_records_partition_result *out;
};

static bool delete_at_home(struct fanout_item *it, struct partition *p, int16_t err)
{
        struct delete_item *di = it->ctx;
        struct delete_records_response_delete_records_partition_result *out = di->out;
        int64_t low_watermark = -1;

        if (!p) {
                out->error_code = err;
                return false;
        }
        int64_t before = partition_log_start_offset(p);
        out->error_code = (int16_t)partition_delete_records(p, di->offset, &low_watermark);
        if (out->error_code != KAFKA_NONE)
                return false;
        out->low_watermark = low_watermark;
        if (low_watermark > before)
                partition_homes_request_checkpoint(it->fanout->broker->homes);
        return false;
}

void handle_delete_records(struct broker *b, struct request *req, struct kreader *body)
{
        struct delete_records_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct fanout *f = NULL;
        struct delete_records_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        if (!resp)
                goto out_of_memory;
        delete_records_response_init(resp);
        int32_t tn = rq->topics.count > 0 ? rq->topics.count : 0;
        int32_t total = 0;
        for (int32_t t = 0; t < tn; t++)
                total += rq->topics.items[t].partitions.count > 0 ? rq->topics.items[t].partitions.count : 0;
        f = fanout_new(b, req, total, delete_at_home, fanout_respond, resp);
        struct delete_item *dis = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*dis));
        resp->topics.items = arena_calloc(&req->arena, (size_t)tn + 1, sizeof(*resp->topics.items));
        if (!f || !dis || !resp->topics.items)
                goto out_of_memory;
        resp->topics.count = tn;
        for (int32_t t = 0; t < tn; t++) {
                const struct delete_records_request_delete_records_topic *tq = &rq->topics.items[t];
                struct delete_records_response_delete_records_topic_result *tr = &resp->topics.items[t];
                delete_records_response_delete_records_topic_result_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        struct delete_records_response_delete_records_partition_result *out = &tr->partitions.items[i];
                        delete_records_response_delete_records_partition_result_init(out);
                        out->partition_index = tq->partitions.items[i].partition_index;
                        out->low_watermark = -1;
                        struct delete_item *di = &dis[f->count];
                        di->offset = tq->partitions.items[i].offset;
                        di->out = out;
                        /* Kafka: "Cannot delete records of internal topic"; answered here, not sent. */
                        bool is_internal = topic && topic->is_internal &&
                                           catalog_topic_partition(topic, out->partition_index);
                        if (!fanout_add_partition(f, is_internal ? NULL : topic, out->partition_index, di))
                                out->error_code = is_internal ? KAFKA_INVALID_TOPIC_EXCEPTION :
                                                                KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                }
                catalog_topic_put(topic);
        }
        fanout_start(f);
        return;
out_of_memory:
        fanout_abandon(f, req, "DeleteRecords");
}
