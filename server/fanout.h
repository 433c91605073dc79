/*
 * fanout.h - run a piece of work on the home reactor of each partition a
 * request names, and continue on the request's reactor once all are back.
 *
 * The shape of Produce, ListOffsets and OffsetForLeaderEpoch: items are
 * prepared on the request's reactor, each visits its partition's home
 * (where the partition may be touched) and comes back; done runs once, on
 * the request's reactor, after the last item is back. Items for unknown
 * partitions are answered by the caller and not sent (topic NULL).
 */
#ifndef RUNNEL_FANOUT_H
#define RUNNEL_FANOUT_H

#include <stdint.h>

#include "../log/partition.h"
#include "broker.h"
#include "reactor.h"
#include "request.h"

struct fanout;
struct fanout_item;

/*
 * On the home thread; p is NULL (and error_code set) when it cannot be had.
 * Returns false when the item's work is done, true when it finishes later
 * (an append waiting for its sync) and fanout_item_back() will be called
 * for it, possibly already from inside at_home: once at_home has handed the
 * item on, it must not touch it again, as the whole request may be gone.
 */
typedef bool (*fanout_home_fn)(struct fanout_item *it, struct partition *p, int16_t error_code);

struct fanout_item {
        struct fanout *fanout;
        const struct catalog_topic *topic;      /* held; put by fanout; NULL: not sent */
        int32_t index;
        void *ctx;                              /* the caller's */
        struct reactor_task to_home;
        struct reactor_task back;
};

struct fanout {
        struct broker *broker;
        struct request *req;
        fanout_home_fn at_home;
        void (*done)(struct fanout *f);
        void *ctx;
        struct fanout_item *items;
        int32_t count;
        int32_t pending_count;
};

/* Sends every item with a topic home; done runs when all are back (at once if none). */
void fanout_start(struct fanout *f);

/* From the home thread: the item's work is finished. */
void fanout_item_back(struct fanout_item *it);

/* Gives back the topic references of every item (done calls this when finished with them). */
void fanout_put_topics(struct fanout *f);

#endif
