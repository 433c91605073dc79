/*
 * partition_home.c - partition ownership by reactor, cross-reactor hand-off,
 * and the io_uring implementation of the log layer's I/O.
 *
 * Invariant: a struct partition is created, used and closed only on the
 * reactor partition_home_index() names for it. The catalog's per-partition
 * log pointer holds a struct home_log, written once by the home thread.
 */
#include "partition_home.h"

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "broker.h"

/* An fdatasync in flight on the home's ring; pooled per home. */
struct home_io_op {
        struct reactor_op op;
        struct home *home;
        log_io_done_fn done;
        void *arg;
        int fd;
        struct home_io_op *next_free;
};

struct home {
        struct reactor *reactor;
        struct broker *broker;
        struct log_io io;
        struct home_io_op *free_ops;
        uint32_t index;
        uint32_t open_count;
        struct home_log *logs;          /* every partition open here */
};

/* What the catalog's log pointer holds for a partition. */
struct home_log {
        struct partition *partition;
        struct home *home;
        struct reactor_task close_task;
        struct home_log *prev, *next;
};

struct partition_homes {
        struct broker *broker;
        uint32_t count;
        struct home homes[];
};

/* ---- log_io over the home's ring ---- */

static int64_t home_now_ms(void *ctx)
{
        (void)ctx;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct home_io_op *home_op_get(struct home *h)
{
        struct home_io_op *op = h->free_ops;
        if (op) {
                h->free_ops = op->next_free;
        } else {
                op = malloc(sizeof(*op));
                if (!op)
                        return NULL;
        }
        memset(op, 0, sizeof(*op));
        op->home = h;
        return op;
}

static void home_op_put(struct home_io_op *op)
{
        struct home *h = op->home;
        op->next_free = h->free_ops;
        h->free_ops = op;
}

static void home_on_io(struct reactor_op *rop, int32_t res, uint32_t cqe_flags)
{
        (void)cqe_flags;
        struct home_io_op *op = container_of(rop, struct home_io_op, op);
        log_io_done_fn done = op->done;
        void *arg = op->arg;
        home_op_put(op);
        done(arg, res < 0 ? res : 0);
}

static int home_submit(struct home_io_op *op)
{
        struct io_uring_sqe *sqe = reactor_prep_op(op->home->reactor, &op->op);
        if (!sqe)
                return -EBUSY;
        io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
        return 0;
}

static int home_datasync(void *ctx, int fd, log_io_done_fn done, void *arg)
{
        struct home *h = ctx;
        struct home_io_op *op = home_op_get(h);
        if (!op)
                return -ENOMEM;
        op->op.fn = home_on_io;
        op->done = done;
        op->arg = arg;
        op->fd = fd;
        int rc = home_submit(op);
        if (rc < 0)
                home_op_put(op);
        return rc;
}

static const struct log_io_ops home_io_ops = {
        .datasync = home_datasync,
        .now_ms = home_now_ms,
};

/* ---- homes ---- */

int partition_homes_create(struct broker *b, uint32_t reactor_count, struct partition_homes **out)
{
        assert(reactor_count > 0);
        struct partition_homes *hs = calloc(1, sizeof(*hs) + reactor_count * sizeof(hs->homes[0]));
        if (!hs)
                return -ENOMEM;
        hs->broker = b;
        hs->count = reactor_count;
        for (uint32_t i = 0; i < reactor_count; i++) {
                hs->homes[i].broker = b;
                hs->homes[i].index = i;
                hs->homes[i].io.ops = &home_io_ops;
                hs->homes[i].io.ctx = &hs->homes[i];
        }
        *out = hs;
        return 0;
}

void partition_homes_destroy(struct partition_homes *hs)
{
        if (!hs)
                return;
        for (uint32_t i = 0; i < hs->count; i++) {
                struct home_io_op *op = hs->homes[i].free_ops;
                while (op) {
                        struct home_io_op *next = op->next_free;
                        free(op);
                        op = next;
                }
        }
        free(hs);
}

void partition_homes_on_reactor_start(struct reactor *r, uint32_t index, void *ctx)
{
        struct broker *b = ctx;
        assert(index < b->homes->count);
        b->homes->homes[index].reactor = r;
}

static void home_log_unlink(struct home_log *hl)
{
        struct home *h = hl->home;
        if (hl->prev)
                hl->prev->next = hl->next;
        else
                h->logs = hl->next;
        if (hl->next)
                hl->next->prev = hl->prev;
        h->open_count--;
}

void partition_homes_on_reactor_stop(struct reactor *r, uint32_t index, void *ctx)
{
        struct broker *b = ctx;
        struct home *h = &b->homes->homes[index];
        assert(h->reactor == r);
        /* The catalog still points at these; it is closed after the server,
         * and its release hook then finds them already closed. */
        for (struct home_log *hl = h->logs; hl; hl = hl->next) {
                partition_close(hl->partition);
                hl->partition = NULL;
        }
}

uint32_t partition_home_index(const struct partition_homes *hs, const struct catalog_topic *t, int32_t partition)
{
        /* FNV-1a over the topic id and the partition index. */
        uint64_t x = 1469598103934665603ULL;
        for (int i = 0; i < 16; i++)
                x = (x ^ t->id.b[i]) * 1099511628211ULL;
        for (int i = 0; i < 4; i++)
                x = (x ^ (uint8_t)((uint32_t)partition >> (8 * i))) * 1099511628211ULL;
        return (uint32_t)(x % hs->count);
}

struct reactor *partition_home_reactor(const struct partition_homes *hs, uint32_t index)
{
        assert(index < hs->count);
        return hs->homes[index].reactor;
}

void partition_home_run(struct reactor *r, struct reactor_task *task)
{
        if (reactor_self() == r) {
                task->fn(task->arg);
                return;
        }
        int rc = reactor_post_task(r, task);
        /* Only a reactor that is shutting down refuses; run the task here
         * rather than lose it, as its owner is past serving anyway. */
        if (rc < 0)
                task->fn(task->arg);
}

/* The catalog's release hook lands here when a topic's last reference goes. */
static void home_log_close_task(void *arg)
{
        struct home_log *hl = arg;
        if (hl->partition) {
                partition_close(hl->partition);
                home_log_unlink(hl);
        }
        free(hl);
}

void partition_homes_release_log(void *ctx, void *log)
{
        (void)ctx;
        struct home_log *hl = log;
        if (!hl->partition) {
                free(hl);               /* closed by the home's shutdown */
                return;
        }
        reactor_task_init(&hl->close_task, home_log_close_task, hl);
        partition_home_run(hl->home->reactor, &hl->close_task);
}

struct partition *partition_home_get(struct broker *b, const struct catalog_topic *t, int32_t index,
                                     int16_t *error_code)
{
        struct catalog_partition *cp = catalog_topic_partition(t, index);
        if (!cp) {
                *error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                return NULL;
        }
        struct home_log *hl = catalog_partition_log(cp);
        if (hl && hl->partition)
                return hl->partition;
        if (hl) {
                *error_code = KAFKA_NOT_LEADER_OR_FOLLOWER;     /* shutting down */
                return NULL;
        }

        uint32_t hi = partition_home_index(b->homes, t, index);
        struct home *h = &b->homes->homes[hi];
        assert(reactor_self() == h->reactor);

        /* The topic's effective config: broker defaults <- its overrides. */
        const char *overrides[CATALOG_CONFIGS_MAX];
        char *owned[CATALOG_CONFIGS_MAX];
        uint32_t n = t->config_count < CATALOG_CONFIGS_MAX ? t->config_count : CATALOG_CONFIGS_MAX;
        for (uint32_t i = 0; i < n; i++) {
                size_t len = strlen(t->configs[i].key) + strlen(t->configs[i].value) + 2;
                owned[i] = malloc(len);
                if (owned[i])
                        snprintf(owned[i], len, "%s=%s", t->configs[i].key, t->configs[i].value);
                overrides[i] = owned[i] ? owned[i] : "";
        }
        char err[512];
        struct partition_options o = { 0 };
        int rc = topic_config_build(&o.config, &b->config->topic_defaults, overrides, n, err, sizeof(err));
        for (uint32_t i = 0; i < n; i++)
                free(owned[i]);
        if (rc != 0) {
                log_error("topic %s has an invalid config (%s); serving it with the broker defaults", t->name, err);
                o.config = b->config->topic_defaults.config;
        }
        char dir_name[LOGDIR_NAME_BYTES_MAX + 1];
        if (logdir_format_partition_name(dir_name, sizeof(dir_name), t->name, index) < 0) {
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        o.dir_fd = b->logdirs->dirs[cp->logdir_index].dir_fd;
        o.dir_name = dir_name;
        o.is_durable_acks = b->is_durable_acks;

        struct home_log *nhl = calloc(1, sizeof(*nhl));
        if (!nhl) {
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        rc = partition_open(&o, &h->io, &nhl->partition, err, sizeof(err));
        if (rc < 0) {
                log_error("cannot open partition %s-%d: %s", t->name, index, err);
                free(nhl);
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        nhl->home = h;
        nhl->next = h->logs;
        if (h->logs)
                h->logs->prev = nhl;
        h->logs = nhl;
        h->open_count++;
        catalog_partition_set_log(cp, nhl);
        return nhl->partition;
}
