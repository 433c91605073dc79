/*
 * fanout.h - run a piece of work on the home reactor of each partition a
 * request names, and continue on the request's reactor once all are back.
 *
 * The shape of Produce, ListOffsets and OffsetForLeaderEpoch: items are
 * prepared on the request's reactor, each visits its partition's home
 * (where the partition may be touched) and comes back; done runs once, on
 * the request's reactor, after the last item is back. Items for unknown
 * partitions are answered by the caller and not sent (topic NULL).
 *
 * Who calls it: the request handlers in server/ that touch partitions
 * (produce.c, list_offsets.c, delete_records.c, txn_admin.c), on the
 * request's reactor, except at_home, which runs on each partition's home.
 * The fanout and its items live in the request's arena: nothing here
 * outlives the request, and the request is answered (or its connection
 * closed) by done alone once fanout_start() has been called.
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

/*
 * A fanout in req's arena with room for item_count_max items and no item
 * yet; ctx is the caller's (the response, usually). NULL when the request's
 * memory limit is reached.
 */
struct fanout *fanout_new(struct broker *b, struct request *req, int32_t item_count_max, fanout_home_fn at_home,
                          void (*done)(struct fanout *f), void *ctx);

/*
 * Appends the item for partition index of topic (NULL: not in the catalog)
 * with the caller's ctx. The item is sent home, holding the topic, when the
 * catalog has the partition; otherwise its topic stays NULL and false
 * says the caller answers it UNKNOWN_TOPIC_OR_PARTITION.
 */
bool fanout_add_partition(struct fanout *f, const struct catalog_topic *topic, int32_t index, void *ctx);

/* A done that gives the topics back and answers with f->ctx as the response. */
void fanout_respond(struct fanout *f);

/*
 * The request's memory limit was reached while items were being collected
 * (f may be NULL): gives back the topics held, logs what was refused
 * (api_name, e.g. "ListOffsets") and closes the connection, as for any
 * request over the limit. Not after fanout_start().
 */
void fanout_abandon(struct fanout *f, struct request *req, const char *api_name);

/* Sends every item with a topic home; done runs when all are back (at once if none). */
void fanout_start(struct fanout *f);

/* From the home thread: the item's work is finished. */
void fanout_item_back(struct fanout_item *it);

/* Gives back the topic references of every item (done calls this when finished with them). */
void fanout_put_topics(struct fanout *f);

#endif
