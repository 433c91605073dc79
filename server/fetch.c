/*
 * fetch.c - Fetch: read each partition on its home reactor, wait for data
 * when min_bytes asks for more than there is, and answer with the log bytes
 * sent from the segment files.
 *
 * One round: every partition's read goes to its home, which returns a byte
 * range of one segment (whole batches from fetch_offset, at most the
 * partition's max bytes) and the partition's offsets. Back on the request's
 * reactor the ranges are cut to the response's max_bytes in request order
 * (the first partition with data keeps its first batch whole, as Kafka
 * does), and if together they reach min_bytes the response goes out.
 * Otherwise every partition gets a waiter and the request a timer of
 * max_wait_ms; whichever fires first starts the next round, which also
 * removes the waiters. Nothing polls and no thread blocks.
 *
 * Invariant: a fetch completes only when no task of it is queued anywhere:
 * every task sent home comes back exactly once, and a waiter's wake-up is
 * posted before the home answers the round that removes it, so it is
 * delivered first.
 *
 * Fetch sessions (KIP-227) are not kept: the response's session id is 0,
 * which tells clients to send full requests, as Kafka allows.
 */
#include <errno.h>
#include <string.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/fetch.h"
#include "broker.h"
#include "handlers.h"
#include "partition_home.h"

struct fetch_ctx;

struct fetch_part {
        struct fetch_ctx *ctx;
        const struct catalog_topic *topic;      /* NULL: answered with an error */
        int32_t index;
        int32_t current_leader_epoch;
        struct partition_read read;
        struct partition_waiter waiter;
        bool is_waiting;                        /* home state: waiter linked */
        int64_t seen_high_watermark;            /* at the last read: wait for more than this */
        struct reactor_task to_home;
        struct reactor_task back;
        struct reactor_task wake;
        struct fetch_response_partition_data *out;
};

struct fetch_ctx {
        struct broker *broker;
        struct request *req;
        struct fetch_response resp;
        struct fetch_part *parts;
        int32_t part_count;
        int32_t pending_count;                  /* tasks at homes */
        bool is_read_committed;                 /* isolation_level 1 */
        int32_t min_bytes;
        int32_t max_bytes;
        int32_t max_wait_ms;
        bool is_waiting;                        /* the wait round is armed */
        bool is_woken;                          /* data arrived while arming */
        bool is_last_round;                     /* next answer goes out whatever it holds */
        uint64_t deadline_ms;                   /* of max_wait_ms, once waiting started */
        reactor_timer_id timer;
};

static void fetch_round(struct fetch_ctx *c, bool is_wait_round);
static void fetch_wake(void *arg);

static void fetch_release_reads(struct fetch_ctx *c)
{
        for (int32_t i = 0; i < c->part_count; i++)
                partition_read_release(&c->parts[i].read);
}

static void fetch_put_topics(struct fetch_ctx *c)
{
        for (int32_t i = 0; i < c->part_count; i++)
                catalog_topic_put(c->parts[i].topic);
}

static void release_read(void *arg)
{
        partition_read_release(arg);
}

/* Kafka lists aborted transactions for read_committed fetches only (an
 * empty list when there are none) and sends null otherwise. */
static int fill_aborted(struct request *req, const struct fetch_ctx *c, const struct partition_read *r,
                        struct fetch_response_partition_data *out)
{
        if (!c->is_read_committed) {
                out->aborted_transactions.count = -1;
                return 0;
        }
        out->aborted_transactions.count = 0;
        if (r->aborted_count == 0)
                return 0;
        out->aborted_transactions.items = arena_calloc(&req->arena, r->aborted_count,
                                                       sizeof(*out->aborted_transactions.items));
        if (!out->aborted_transactions.items)
                return -1;
        for (uint32_t i = 0; i < r->aborted_count; i++) {
                struct fetch_response_aborted_transaction *t = &out->aborted_transactions.items[i];
                fetch_response_aborted_transaction_init(t);
                t->producer_id = r->aborted[i].producer_id;
                t->first_offset = r->aborted[i].first_offset;
        }
        out->aborted_transactions.count = (int32_t)r->aborted_count;
        return 0;
}

/* Cuts ranges to max_bytes in request order and sends the response. */
static void fetch_respond(struct fetch_ctx *c)
{
        struct request *req = c->req;
        struct response_range *files = arena_calloc(&req->arena, (size_t)c->part_count + 1, sizeof(*files));
        if (!files) {
                fetch_release_reads(c);
                fetch_put_topics(c);
                request_close_connection(req);
                return;
        }
        uint32_t file_count = 0;
        int64_t budget = c->max_bytes;
        bool has_data = false;
        for (int32_t i = 0; i < c->part_count; i++) {
                struct fetch_part *fp = &c->parts[i];
                struct partition_read *r = &fp->read;
                struct fetch_response_partition_data *out = fp->out;
                if (!fp->topic)
                        continue;
                out->error_code = r->error_code;
                out->high_watermark = r->high_watermark;
                out->last_stable_offset = r->last_stable_offset;
                out->log_start_offset = r->log_start_offset;
                if (fill_aborted(req, c, r, out) < 0) {
                        fetch_release_reads(c);
                        fetch_put_topics(c);
                        request_close_connection(req);
                        return;
                }
                out->records = (struct kbytes){ NULL, 0 };
                if (r->error_code != KAFKA_NONE || r->len == 0 || !r->segment)
                        continue;
                uint32_t len = r->len;
                if (has_data && (int64_t)len > budget)
                        len = budget > 0 ? (uint32_t)budget : 0;
                if (len == 0)
                        continue;       /* released below with the others */
                has_data = true;
                budget -= len;
                out->records = (struct kbytes){ NULL, (int32_t)len };
                files[file_count].fd = r->fd;
                files[file_count].offset = r->file_position;
                files[file_count].len = len;
                files[file_count].release = release_read;
                files[file_count].release_arg = r;
                file_count++;
        }
        /* Reads whose bytes are not sent give their segment back now. */
        for (int32_t i = 0, f = 0; i < c->part_count; i++) {
                struct partition_read *r = &c->parts[i].read;
                if (f < (int32_t)file_count && files[f].release_arg == r) {
                        f++;
                        continue;
                }
                partition_read_release(r);
        }
        fetch_put_topics(c);
        dispatch_respond_files(req, &c->resp, files, file_count);
}

static int64_t fetch_ready_bytes(const struct fetch_ctx *c)
{
        int64_t n = 0;
        for (int32_t i = 0; i < c->part_count; i++) {
                const struct partition_read *r = &c->parts[i].read;
                if (!c->parts[i].topic)
                        return INT64_MAX;       /* unknown topic or partition */
                if (r->error_code != KAFKA_NONE)
                        return INT64_MAX;       /* an error is news: answer now */
                n += r->len;
        }
        return n;
}

/* On the request's reactor, once every part of a round is back. */
static void fetch_round_done(struct fetch_ctx *c)
{
        if (c->is_last_round || fetch_ready_bytes(c) >= c->min_bytes || c->max_wait_ms <= 0 ||
            (c->deadline_ms && reactor_now_ms() >= c->deadline_ms)) {
                fetch_respond(c);
                return;
        }
        /* Not enough: wait for data or the deadline. */
        fetch_release_reads(c);
        fetch_round(c, true);
}

static void fetch_part_back(void *arg)
{
        struct fetch_part *fp = arg;
        struct fetch_ctx *c = fp->ctx;
        assert(c->pending_count > 0);
        if (--c->pending_count > 0)
                return;
        if (c->is_waiting) {
                /* All waiters are armed; now the first wake-up or the timer
                 * ends the wait, unless one came while arming. */
                if (c->is_woken)
                        fetch_wake(fp);
                return;
        }
        fetch_round_done(c);
}

/* A waiter fired on a home: new data. Runs on the request's reactor. */
static void fetch_wake(void *arg)
{
        struct fetch_part *fp = arg;
        struct fetch_ctx *c = fp->ctx;
        if (!c->is_waiting)
                return;         /* a later round already started */
        if (c->pending_count > 0) {
                c->is_woken = true;     /* still arming: go once all are armed */
                return;
        }
        reactor_timer_cancel(c->req->reactor, c->timer);
        c->timer = 0;
        c->is_waiting = false;
        /* New data, but maybe not min_bytes of it: read again, and wait
         * again for what is left of max_wait_ms if it is still short. */
        fetch_round(c, false);
}

static void fetch_timeout(void *arg)
{
        struct fetch_ctx *c = arg;
        c->timer = 0;
        if (!c->is_waiting || c->pending_count > 0)
                return;
        c->is_waiting = false;
        c->is_last_round = true;
        fetch_round(c, false);
}

static void fetch_waiter_fire(struct partition_waiter *w)
{
        struct fetch_part *fp = w->ctx;
        fp->is_waiting = false;
        reactor_task_init(&fp->wake, fetch_wake, fp);
        partition_home_run(fp->ctx->req->reactor, &fp->wake);
}

static void fetch_check_epoch(struct fetch_part *fp, struct partition *p)
{
        /* KIP-320: a client ahead of us knows a newer leader we do not. */
        if (fp->current_leader_epoch < 0)
                return;
        int32_t epoch = partition_leader_epoch(p);
        if (fp->current_leader_epoch < epoch)
                fp->read.error_code = KAFKA_FENCED_LEADER_EPOCH;
        else if (fp->current_leader_epoch > epoch)
                fp->read.error_code = KAFKA_UNKNOWN_LEADER_EPOCH;
}

/* On the partition's home: read now, or arm a waiter for new data. */
static void fetch_part_at_home(void *arg)
{
        struct fetch_part *fp = arg;
        struct fetch_ctx *c = fp->ctx;
        int16_t err = KAFKA_NONE;
        struct partition *p = partition_home_get(c->broker, fp->topic, fp->index, &err);
        if (p && fp->is_waiting) {
                partition_unwait(p, &fp->waiter);
                fp->is_waiting = false;
        }
        int64_t offset = fp->read.fetch_offset;
        int32_t max_bytes = fp->read.max_bytes;
        memset(&fp->read, 0, sizeof(fp->read));
        fp->read.fetch_offset = offset;
        fp->read.max_bytes = max_bytes;
        fp->read.is_first_batch_whole = true;
        fp->read.is_read_committed = c->is_read_committed;
        fp->read.fd = -1;
        if (!p) {
                fp->read.error_code = err;
        } else if (c->is_waiting) {
                /* Wake for data newer than what the last read saw, so a
                 * read short of min_bytes does not wake itself at once. */
                fp->waiter.offset = offset > fp->seen_high_watermark ? offset : fp->seen_high_watermark;
                fp->waiter.fire = fetch_waiter_fire;
                fp->waiter.ctx = fp;
                fp->is_waiting = true;
                partition_wait(p, &fp->waiter);
        } else {
                fetch_check_epoch(fp, p);
                if (fp->read.error_code == KAFKA_NONE)
                        partition_read(p, &fp->read);
                fp->seen_high_watermark = partition_high_watermark(p);
        }
        reactor_task_init(&fp->back, fetch_part_back, fp);
        partition_home_run(c->req->reactor, &fp->back);
}

static void fetch_round(struct fetch_ctx *c, bool is_wait_round)
{
        struct broker *b = c->broker;
        int32_t sent = 0;
        c->is_waiting = is_wait_round;
        for (int32_t i = 0; i < c->part_count; i++)
                sent += c->parts[i].topic != NULL;
        if (sent == 0) {
                fetch_respond(c);
                return;
        }
        if (is_wait_round) {
                uint64_t now_ms = reactor_now_ms();
                if (!c->deadline_ms)
                        c->deadline_ms = now_ms + (uint64_t)c->max_wait_ms;
                uint64_t left_ms = c->deadline_ms > now_ms ? c->deadline_ms - now_ms : 0;
                c->timer = reactor_timer_add(c->req->reactor, left_ms, fetch_timeout, c);
                c->is_woken = false;
        }
        c->pending_count = sent;
        /* The last part sent may come back at once and end the request:
         * nothing of c is touched after it. */
        struct fetch_part *parts = c->parts;
        int32_t count = c->part_count;
        for (int32_t i = 0; i < count; i++) {
                struct fetch_part *fp = &parts[i];
                if (!fp->topic)
                        continue;
                bool is_last = --sent == 0;
                uint32_t home = partition_home_index(b->homes, fp->topic, fp->index);
                reactor_task_init(&fp->to_home, fetch_part_at_home, fp);
                partition_home_run(partition_home_reactor(b->homes, home), &fp->to_home);
                if (is_last)
                        break;
        }
}

/* Resolves a requested topic by id (v13+) or name; answers errors in out. */
static const struct catalog_topic *fetch_topic(struct broker *b, struct request *req,
                                               const struct fetch_request_fetch_topic *ft, int16_t *err)
{
        const struct catalog_topic *t;
        if (req->api_version >= 13) {
                t = catalog_get_topic_by_id(b->catalog, ft->topic_id);
                *err = t ? KAFKA_NONE : KAFKA_UNKNOWN_TOPIC_ID;
        } else {
                t = catalog_get_topic(b->catalog, ft->topic);
                *err = t ? KAFKA_NONE : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        }
        return t;
}

void handle_fetch(struct broker *b, struct request *req, struct kreader *body)
{
        struct fetch_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct fetch_ctx *c = arena_calloc(&req->arena, 1, sizeof(*c));
        if (!c)
                goto out_of_memory;
        c->broker = b;
        c->req = req;
        c->min_bytes = rq->min_bytes;
        c->max_bytes = rq->max_bytes > 0 ? rq->max_bytes : INT32_MAX;
        if (b->config->fetch_max_bytes > 0 && c->max_bytes > b->config->fetch_max_bytes)
                c->max_bytes = b->config->fetch_max_bytes;
        c->max_wait_ms = rq->max_wait_ms;
        c->is_read_committed = rq->isolation_level == 1;
        fetch_response_init(&c->resp);
        c->resp.session_id = 0;

        int32_t topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
        int32_t total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                total += rq->topics.items[t].partitions.count > 0 ? rq->topics.items[t].partitions.count : 0;
        c->parts = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*c->parts));
        c->resp.responses.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*c->resp.responses.items));
        if (!c->parts || !c->resp.responses.items)
                goto out_of_memory;
        c->resp.responses.count = topic_count;

        for (int32_t t = 0; t < topic_count; t++) {
                const struct fetch_request_fetch_topic *ft = &rq->topics.items[t];
                struct fetch_response_fetchable_topic_response *tr = &c->resp.responses.items[t];
                fetch_response_fetchable_topic_response_init(tr);
                tr->topic = ft->topic;
                tr->topic_id = ft->topic_id;
                int32_t pn = ft->partitions.count > 0 ? ft->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                int16_t topic_err;
                const struct catalog_topic *topic = fetch_topic(b, req, ft, &topic_err);
                for (int32_t i = 0; i < pn; i++) {
                        const struct fetch_request_fetch_partition *fpq = &ft->partitions.items[i];
                        struct fetch_response_partition_data *out = &tr->partitions.items[i];
                        fetch_response_partition_data_init(out);
                        out->partition_index = fpq->partition;
                        out->records = KBYTES_NULL;
                        struct fetch_part *fp = &c->parts[c->part_count++];
                        fp->ctx = c;
                        fp->out = out;
                        fp->index = fpq->partition;
                        fp->read.fd = -1;
                        if (!topic || !catalog_topic_partition(topic, fpq->partition)) {
                                out->error_code = topic ? KAFKA_UNKNOWN_TOPIC_OR_PARTITION : topic_err;
                                continue;
                        }
                        fp->topic = catalog_topic_hold(topic);
                        fp->current_leader_epoch = req->api_version >= 9 ? fpq->current_leader_epoch : -1;
                        fp->read.fetch_offset = fpq->fetch_offset;
                        fp->read.max_bytes = fpq->partition_max_bytes;
                }
                catalog_topic_put(topic);
        }
        fetch_round(c, false);
        return;

out_of_memory:
        if (c) {
                for (int32_t i = 0; i < c->part_count; i++)
                        catalog_topic_put(c->parts[i].topic);
        }
        log_warn("closing connection from %s: Fetch exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}
