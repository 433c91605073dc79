/*
 * fanout.c - see fanout.h. Invariant: pending_count counts items sent home
 * and not yet back; done runs exactly once, when it reaches zero.
 */
#include "fanout.h"

#include "../base/logging.h"
#include "dispatch.h"
#include "partition_home.h"

struct fanout *fanout_new(struct broker *b, struct request *req, int32_t item_count_max, fanout_home_fn at_home,
                          void (*done)(struct fanout *f), void *ctx)
{
        assert(item_count_max >= 0);
        assert(at_home && done);
        struct fanout *f = arena_calloc(&req->arena, 1, sizeof(*f));
        if (!f)
                return NULL;
        f->items = arena_calloc(&req->arena, (size_t)item_count_max + 1, sizeof(*f->items));
        if (!f->items)
                return NULL;
        f->broker = b;
        f->req = req;
        f->at_home = at_home;
        f->done = done;
        f->ctx = ctx;
        return f;
}

bool fanout_add_partition(struct fanout *f, const struct catalog_topic *topic, int32_t index, void *ctx)
{
        struct fanout_item *it = &f->items[f->count++];
        it->ctx = ctx;
        it->index = index;
        if (!topic || !catalog_topic_partition(topic, index))
                return false;
        it->topic = catalog_topic_hold(topic);
        return true;
}

void fanout_respond(struct fanout *f)
{
        fanout_put_topics(f);
        dispatch_respond(f->req, f->ctx);
}

void fanout_abandon(struct fanout *f, struct request *req, const char *api_name)
{
        if (f)
                fanout_put_topics(f);
        log_warn("closing connection from %s: %s exceeds the request memory limit", request_peer(req), api_name);
        request_close_connection(req);
}

static void fanout_item_arrived_back(void *arg)
{
        struct fanout_item *it = arg;
        struct fanout *f = it->fanout;
        assert(f->pending_count > 0);
        if (--f->pending_count == 0)
                f->done(f);
}

void fanout_item_back(struct fanout_item *it)
{
        reactor_task_init(&it->back, fanout_item_arrived_back, it);
        partition_home_run(it->fanout->req->reactor, &it->back);
}

static void fanout_item_at_home(void *arg)
{
        struct fanout_item *it = arg;
        struct fanout *f = it->fanout;
        int16_t err = 0;
        struct partition *p = partition_home_get(f->broker, it->topic, it->index, &err);
        if (!f->at_home(it, p, err))
                fanout_item_back(it);
}

void fanout_start(struct fanout *f)
{
        int32_t sent = 0;
        for (int32_t i = 0; i < f->count; i++)
                sent += f->items[i].topic != NULL;
        if (sent == 0) {
                f->done(f);
                return;
        }
        /* Count first: items may come back before the loop ends, and the
         * last one back may end the request. */
        f->pending_count = sent;
        int32_t count = f->count;
        struct fanout_item *items = f->items;
        struct partition_homes *homes = f->broker->homes;
        for (int32_t i = 0; i < count; i++) {
                struct fanout_item *it = &items[i];
                if (!it->topic)
                        continue;
                bool is_last = --sent == 0;
                it->fanout = f;
                uint32_t home = partition_home_index(homes, it->topic, it->index);
                reactor_task_init(&it->to_home, fanout_item_at_home, it);
                partition_home_run(partition_home_reactor(homes, home), &it->to_home);
                if (is_last)
                        break;
        }
}

void fanout_put_topics(struct fanout *f)
{
        for (int32_t i = 0; i < f->count; i++) {
                catalog_topic_put(f->items[i].topic);
                f->items[i].topic = NULL;
        }
}
