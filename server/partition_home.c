/*
 * partition_home.c - partition ownership by reactor, cross-reactor hand-off,
 * the io_uring implementation of the log layer's I/O, each home's
 * maintenance timers, offsets for the checkpointer, the hand-off of
 * compaction jobs to the cleaner's threads, and the homes' part of a clean
 * shutdown (see partition_home.h for the life of a partition).
 *
 * Invariants:
 *   - a struct partition is created, used and closed only on the reactor
 *     partition_home_index() names for it; so are its home's list of logs,
 *     its timers and its offset buffers;
 *   - the catalog's per-partition log pointer holds a struct home_log,
 *     written once by the home thread; hl->partition is NULL once the
 *     partition is closed (or closing), and hl is then off the home's list;
 *   - a home's collect buffer is written by the home thread only while the
 *     checkpointer waits for it (the task was posted and has not answered),
 *     and read by the checkpointer only after the answer, under
 *     collect_lock; the final buffer is written by the home's stop hook
 *     and read only after every reactor thread has been joined;
 *   - stopping_count <= started_count; a stopping home runs its ring until
 *     stopping_count == started_count before it touches its partitions.
 */
#include "partition_home.h"

#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../log/cleaner.h"
#include "../protocol/gen/errors.h"
#include "broker.h"
#include "checkpointer.h"

/* Intervals past this (Kafka's Long.MaxValue defaults) mean "never". */
#define HOME_INTERVAL_MS_MAX (1LL << 40)
/* How long one turn of a stopping home's ring may wait for a completion. */
#define HOME_STOP_POLL_MS 20
/* How often a home looks for topic config changes (one atomic load). */
#define HOME_CONFIG_CHECK_MS 1000
/* How long a stopping home waits for its cancelled cleanings to come back. */
#define HOME_STOP_CLEANING_MS 10000

/*
 * Writes shorter than this are made with pwrite on the home thread, the
 * rest through io_uring. On ext4 (and any filesystem without non-blocking
 * buffered writes) io_uring hands every buffered write to an io-wq worker
 * thread: a wake-up and a completion per write, which for a small batch
 * costs more than the copy itself. Measured on a shared 2-core VM, ext4,
 * one librdkafka producer paced so that each Produce carries one message,
 * acks=1, broker utime + stime (io-wq workers included) per MB, median of
 * 4 interleaved runs: pwrite 13.8 / 2.7 / 1.1 / 0.83 ms at 1 / 16 / 64 /
 * 256 KiB; io_uring 24.2 / 3.4 / 1.3 / 0.91 ms. io_uring never costs less
 * CPU here; past a few tens of KiB it costs little more and takes the copy
 * off the reactor thread (onto a worker, another core), so the reactor
 * goes on serving its connections meanwhile. Hence 32 KiB; 0 sends every
 * write through the ring.
 */
#ifndef HOME_WRITE_INLINE_BYTES_MAX
#define HOME_WRITE_INLINE_BYTES_MAX (32u << 10)
#endif
/* A variable, so that a build with 0 compares without a warning. */
static const size_t home_write_inline_bytes_max = HOME_WRITE_INLINE_BYTES_MAX;
/* One IORING_OP_WRITE carries at most this much; the rest follows as a
 * short write's does. */
#define HOME_WRITE_BYTES_MAX (1u << 30)
/* A write that makes no progress (-EINTR, -EAGAIN) is resubmitted at most
 * this many times in a row before it fails. */
#define HOME_WRITE_RETRIES_MAX 16

/* An fdatasync or a write in flight on the home's ring; pooled per home. */
struct home_io_op {
        struct reactor_op op;
        struct home *home;
        log_io_done_fn done;
        void *arg;
        int fd;
        /* a write: what is left of it */
        const uint8_t *buf;
        size_t len;
        uint64_t offset;
        uint32_t retry_count;
        struct home_io_op *next_free;
};

/* Offsets a home reports; topic names live in `names`, referenced by
 * offset while it fills and by pointer once it is done. */
struct home_offsets_buf {
        struct home_partition_offsets *items;
        uint32_t count;
        uint32_t cap;
        char *names;
        size_t names_bytes;
        size_t names_cap;
};

struct home {
        struct reactor *reactor;
        struct broker *broker;
        struct partition_homes *homes;
        struct log_io io;
        struct home_io_op *free_ops;
        uint32_t index;
        uint32_t open_count;
        struct home_log *logs;          /* every partition open here */
        bool is_stopping;
        reactor_timer_id retention_timer;
        reactor_timer_id flush_timer;
        reactor_timer_id config_timer;
        reactor_timer_id producer_expiry_timer;
        reactor_timer_id cleaner_timer;
        uint32_t cleanings_in_flight;   /* jobs of partitions here out on the cleaner pool */
        /* Under homes->cleaning_lock: set when the stopping home stops
         * waiting for its jobs; a job coming back later must not post to a
         * reactor that may be freed by then. */
        bool is_cleaning_closed;
        uint64_t config_version;        /* the catalog's when configs were last applied */

        struct reactor_task collect_task;
        struct home_offsets_buf collect;
        bool is_collect_refused;        /* answered while stopping: no offsets */
        struct home_offsets_buf final;
        bool has_final;
};

/* What the catalog's log pointer holds for a partition. */
struct home_log {
        struct partition *partition;
        struct home *home;
        char *topic;                    /* for the checkpoints */
        struct kuuid topic_id;
        int32_t index;
        uint32_t logdir_index;
        struct reactor_task close_task;
        struct home_log *prev, *next;
};

struct partition_homes {
        struct broker *broker;
        struct checkpointer *checkpointer;
        struct cleaner_pool *cleaner_pool;      /* NULL when log.cleaner.enable is false */
        atomic_uint started_count;
        atomic_uint stopping_count;
        atomic_bool is_dir_failed[LOGDIR_COUNT_MAX];

        pthread_mutex_t collect_lock;
        pthread_cond_t collect_cond;
        uint32_t collect_answered;      /* under collect_lock */
        pthread_mutex_t cleaning_lock;  /* each home's is_cleaning_closed */

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

/* A write, or the rest of one, with pwrite on the home thread: a small
 * one, or when the ring has no room for it or there is no memory for an
 * op. Blocking, but never lost. */
static int home_pwrite_all(int fd, const uint8_t *buf, size_t len, uint64_t offset)
{
        while (len > 0) {
                ssize_t n = pwrite(fd, buf, len, (off_t)offset);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                buf += n;
                len -= (size_t)n;
                offset += (uint64_t)n;
        }
        return 0;
}

static int home_submit_write(struct home_io_op *op)
{
        struct io_uring_sqe *sqe = reactor_prep_op(op->home->reactor, &op->op);
        if (!sqe)
                return -EBUSY;
        unsigned chunk = op->len > HOME_WRITE_BYTES_MAX ? HOME_WRITE_BYTES_MAX : (unsigned)op->len;
        io_uring_prep_write(sqe, op->fd, op->buf, chunk, op->offset);
        return 0;
}

/* A write's CQE: done when all is written or it failed, else the rest is
 * submitted again (a short write, or one that made no progress). */
static void home_on_write(struct reactor_op *rop, int32_t res, uint32_t cqe_flags)
{
        (void)cqe_flags;
        struct home_io_op *op = container_of(rop, struct home_io_op, op);
        int result = 0;
        if (res > 0) {
                assert((size_t)res <= op->len);
                op->buf += res;
                op->len -= (size_t)res;
                op->offset += (uint64_t)res;
                op->retry_count = 0;
        } else if ((res == -EINTR || res == -EAGAIN) && op->retry_count < HOME_WRITE_RETRIES_MAX) {
                op->retry_count++;
        } else {
                result = res < 0 ? res : -EIO;  /* 0 bytes of a regular file: no space, say */
        }
        if (result == 0 && op->len > 0) {
                if (home_submit_write(op) == 0)
                        return;
                result = home_pwrite_all(op->fd, op->buf, op->len, op->offset);
        }
        log_io_done_fn done = op->done;
        void *arg = op->arg;
        home_op_put(op);
        done(arg, result);
}

static int home_write(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done,
                      void *arg)
{
        struct home *h = ctx;
        assert(len > 0);
        struct home_io_op *op = len < home_write_inline_bytes_max ? NULL : home_op_get(h);
        if (op) {
                op->op.fn = home_on_write;
                op->done = done;
                op->arg = arg;
                op->fd = fd;
                op->buf = buf;
                op->len = len;
                op->offset = offset;
                if (home_submit_write(op) == 0)
                        return 0;
                home_op_put(op);
        }
        done(arg, home_pwrite_all(fd, buf, len, offset));
        return 0;
}

static const struct log_io_ops home_io_ops = {
        .datasync = home_datasync,
        .write = home_write,
        .now_ms = home_now_ms,
};

/* ---- homes ---- */

static void home_offsets_buf_free(struct home_offsets_buf *b)
{
        free(b->items);
        free(b->names);
        memset(b, 0, sizeof(*b));
}

int partition_homes_create(struct broker *b, uint32_t reactor_count, struct partition_homes **out)
{
        assert(reactor_count > 0);
        struct partition_homes *hs = calloc(1, sizeof(*hs) + reactor_count * sizeof(hs->homes[0]));
        if (!hs)
                return -ENOMEM;
        hs->broker = b;
        hs->count = reactor_count;
        atomic_init(&hs->started_count, 0);
        atomic_init(&hs->stopping_count, 0);
        for (uint32_t i = 0; i < LOGDIR_COUNT_MAX; i++)
                atomic_init(&hs->is_dir_failed[i], false);
        pthread_mutex_init(&hs->collect_lock, NULL);
        pthread_cond_init(&hs->collect_cond, NULL);
        pthread_mutex_init(&hs->cleaning_lock, NULL);
        for (uint32_t i = 0; i < reactor_count; i++) {
                hs->homes[i].broker = b;
                hs->homes[i].homes = hs;
                hs->homes[i].index = i;
                hs->homes[i].io.ops = &home_io_ops;
                hs->homes[i].io.ctx = &hs->homes[i];
        }
        if (b->config && b->config->is_log_cleaner_enabled) {
                uint32_t threads = b->config->log_cleaner_threads > 0 ? (uint32_t)b->config->log_cleaner_threads : 1;
                int rc = cleaner_pool_start(threads, &hs->cleaner_pool);
                if (rc < 0)
                        log_error("cannot start the log cleaner's threads (%s); compacted topics are not cleaned "
                                  "until the broker restarts", strerror(-rc));
        }
        *out = hs;
        return 0;
}

void partition_homes_destroy(struct partition_homes *hs)
{
        if (!hs)
                return;
        cleaner_pool_stop(hs->cleaner_pool);
        for (uint32_t i = 0; i < hs->count; i++) {
                struct home *h = &hs->homes[i];
                struct home_io_op *op = h->free_ops;
                while (op) {
                        struct home_io_op *next = op->next_free;
                        free(op);
                        op = next;
                }
                home_offsets_buf_free(&h->collect);
                home_offsets_buf_free(&h->final);
        }
        pthread_cond_destroy(&hs->collect_cond);
        pthread_mutex_destroy(&hs->collect_lock);
        pthread_mutex_destroy(&hs->cleaning_lock);
        free(hs);
}

void partition_homes_set_checkpointer(struct partition_homes *hs, struct checkpointer *cp)
{
        hs->checkpointer = cp;
}

void partition_homes_request_checkpoint(struct partition_homes *hs)
{
        if (hs->checkpointer)
                checkpointer_request_log_start(hs->checkpointer);
}

bool partition_homes_is_dir_failed(const struct partition_homes *hs, uint32_t logdir_index)
{
        assert(logdir_index < LOGDIR_COUNT_MAX);
        return atomic_load(&((struct partition_homes *)hs)->is_dir_failed[logdir_index]);
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
        hl->prev = hl->next = NULL;
        assert(h->open_count > 0);
        h->open_count--;
}

static void home_log_free(struct home_log *hl)
{
        assert(!hl->partition);
        free(hl->topic);
        free(hl);
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
        struct partition *p = hl->partition;
        if (p) {
                /* Gone for lookups before the close fires its waiters. */
                hl->partition = NULL;
                home_log_unlink(hl);
                partition_close(p);
        }
        home_log_free(hl);
}

void partition_homes_release_log(void *ctx, void *log)
{
        (void)ctx;
        struct home_log *hl = log;
        if (!hl->partition) {
                home_log_free(hl);      /* closed by the home's shutdown */
                return;
        }
        reactor_task_init(&hl->close_task, home_log_close_task, hl);
        /* On the home itself the close waits for the end of this turn of the
         * loop: the release may come from deep inside a partition's callback,
         * or from a loop over the home's logs. */
        if (reactor_self() == hl->home->reactor)
                reactor_defer(hl->home->reactor, &hl->close_task);
        else
                partition_home_run(hl->home->reactor, &hl->close_task);
}

/* The topic's effective config: broker defaults <- its overrides. */
static void home_build_config(const struct broker *b, const struct catalog_topic *t, struct topic_config *out)
{
        const char *overrides[CATALOG_CONFIGS_MAX] = { NULL };
        char *owned[CATALOG_CONFIGS_MAX];
        char err[512];
        uint32_t n = t->config_count < CATALOG_CONFIGS_MAX ? t->config_count : CATALOG_CONFIGS_MAX;
        for (uint32_t i = 0; i < n; i++) {
                size_t len = strlen(t->configs[i].key) + strlen(t->configs[i].value) + 2;
                owned[i] = malloc(len);
                if (owned[i])
                        snprintf(owned[i], len, "%s=%s", t->configs[i].key, t->configs[i].value);
                overrides[i] = owned[i] ? owned[i] : "";
        }
        int rc = topic_config_build(out, &b->config->topic_defaults, overrides, n, err, sizeof(err));
        for (uint32_t i = 0; i < n; i++)
                free(owned[i]);
        if (rc != 0) {
                log_error("topic %s has an invalid config (%s); serving it with the broker defaults", t->name, err);
                *out = b->config->topic_defaults.config;
        }
}

#define HOME_OPEN_LOG_INTERVAL_MS 5000
static struct log_limit home_open_log_limit;

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
        uint32_t hi = partition_home_index(b->homes, t, index);
        struct home *h = &b->homes->homes[hi];
        assert(reactor_self() == h->reactor);
        if (hl || h->is_stopping) {
                *error_code = KAFKA_NOT_LEADER_OR_FOLLOWER;     /* shutting down */
                return NULL;
        }

        char err[512];
        struct partition_options o = { 0 };
        home_build_config(b, t, &o.config);
        char dir_name[LOGDIR_NAME_BYTES_MAX + 1];
        if (logdir_format_partition_name(dir_name, sizeof(dir_name), t->name, index) < 0) {
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        o.dir_fd = b->logdirs->dirs[cp->logdir_index].dir_fd;
        o.dir_name = dir_name;
        o.is_durable_acks = b->is_durable_acks;
        o.producer_id_expiration_ms = b->config->producer_id_expiration_ms;
        if (b->homes->checkpointer)
                checkpointer_fill_options(b->homes->checkpointer, cp->logdir_index, t, index, &o);

        struct home_log *nhl = calloc(1, sizeof(*nhl));
        if (nhl)
                nhl->topic = strdup(t->name);
        if (!nhl || !nhl->topic) {
                free(nhl);
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        int rc = partition_open(&o, &h->io, &nhl->partition, err, sizeof(err));
        if (rc == -EMFILE || rc == -ENFILE) {
                /* Out of descriptors: the next request tries again, and the
                 * log dir is fine. One line every few seconds, not one per
                 * produce. */
                unsigned long long suppressed;
                if (log_limit_allow(&home_open_log_limit, HOME_OPEN_LOG_INTERVAL_MS, &suppressed))
                        log_warn("cannot open partition %s-%d: %s; answering KAFKA_STORAGE_ERROR (retriable) "
                                 "until descriptors are free (raise the open-files limit, ulimit -n); %llu such "
                                 "lines suppressed", t->name, index, err, suppressed);
                nhl->partition = NULL;
                home_log_free(nhl);
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        if (rc < 0) {
                log_error("cannot open partition %s-%d: %s; its log dir %s gets no checkpoints and no "
                          "clean-shutdown marker until the broker restarts", t->name, index, err,
                          b->logdirs->dirs[cp->logdir_index].path);
                atomic_store(&b->homes->is_dir_failed[cp->logdir_index], true);
                nhl->partition = NULL;
                home_log_free(nhl);
                *error_code = KAFKA_KAFKA_STORAGE_ERROR;
                return NULL;
        }
        nhl->home = h;
        nhl->topic_id = t->id;
        nhl->index = index;
        nhl->logdir_index = cp->logdir_index;
        nhl->next = h->logs;
        if (h->logs)
                h->logs->prev = nhl;
        h->logs = nhl;
        h->open_count++;
        catalog_partition_set_log(cp, nhl);
        return nhl->partition;
}

/* ---- maintenance timers ---- */

static void home_on_retention(void *arg);
static void home_on_flush(void *arg);

/* A timer every interval_ms (the first after at most Kafka's initial
 * delay); 0 when the interval means never. */
static reactor_timer_id home_arm(struct home *h, int64_t interval_ms, bool is_first, reactor_callback_fn fn)
{
        if (interval_ms <= 0 || interval_ms >= HOME_INTERVAL_MS_MAX)
                return 0;
        int64_t delay_ms = interval_ms;
        if (is_first && delay_ms > PARTITION_HOME_INITIAL_TASK_DELAY_MS)
                delay_ms = PARTITION_HOME_INITIAL_TASK_DELAY_MS;
        reactor_timer_id id = reactor_timer_add(h->reactor, (uint64_t)delay_ms, fn, h);
        if (!id)
                log_error("reactor %u: cannot arm a maintenance timer (out of timers); retention or flushing "
                          "stops on its partitions", h->index);
        return id;
}

static void home_on_retention(void *arg)
{
        struct home *h = arg;
        h->retention_timer = 0;
        if (h->is_stopping)
                return;
        int64_t now_ms = home_now_ms(NULL);
        /* Closes are deferred while this runs (partition_homes_release_log),
         * so the list holds still. */
        for (struct home_log *hl = h->logs; hl; hl = hl->next)
                partition_enforce_retention(hl->partition, now_ms);
        h->retention_timer = home_arm(h, h->broker->config->log_retention_check_interval_ms, false,
                                      home_on_retention);
}

static void home_on_flush(void *arg)
{
        struct home *h = arg;
        h->flush_timer = 0;
        if (h->is_stopping)
                return;
        int64_t now_ms = home_now_ms(NULL);
        for (struct home_log *hl = h->logs; hl; hl = hl->next)
                partition_maybe_flush(hl->partition, now_ms);
        h->flush_timer = home_arm(h, h->broker->config->log_flush_scheduler_interval_ms, false, home_on_flush);
}

/* Kafka's removeExpiredProducers, every producer.id.expiration.check.interval.ms. */
static void home_on_producer_expiry(void *arg)
{
        struct home *h = arg;
        h->producer_expiry_timer = 0;
        if (h->is_stopping)
                return;
        int64_t now_ms = home_now_ms(NULL);
        for (struct home_log *hl = h->logs; hl; hl = hl->next)
                partition_expire_producers(hl->partition, now_ms);
        h->producer_expiry_timer = home_arm(h, h->broker->config->producer_id_expiration_check_interval_ms, false,
                                            home_on_producer_expiry);
}

/* ---- compaction ---- */

static void home_try_clean(struct home *h);

/* A job on its way back from the cleaner pool to its home. */
struct home_cleaning {
        struct reactor_task task;
        struct home *home;
        struct partition *partition;    /* kept alive by the job (partition_close waits for it) */
        struct cleaner_job *job;
};

static void home_on_cleaned(void *arg)
{
        struct home_cleaning *c = arg;
        struct home *h = c->home;
        assert(h->cleanings_in_flight > 0);
        h->cleanings_in_flight--;
        bool is_cleaned = c->job->result == 0;
        partition_cleaner_finish(c->partition, c->job);
        free(c);
        /* Kafka's cleaner thread looks for the next log at once after a
         * cleaning, and backs off when none is due; after a failure
         * (a full disk, say) the timer's next turn tries again. */
        if (!h->is_stopping && is_cleaned)
                home_try_clean(h);
}

/* On a cleaner thread: hand the job back to its partition's home. */
static void home_on_job_done(struct cleaner_job *job)
{
        struct home_cleaning *c = job->ctx;
        struct home *h = c->home;       /* freed only after the pool's threads are joined */
        reactor_task_init(&c->task, home_on_cleaned, c);
        pthread_mutex_lock(&h->homes->cleaning_lock);
        int rc = h->is_cleaning_closed ? -ESHUTDOWN : reactor_post_task(h->reactor, &c->task);
        pthread_mutex_unlock(&h->homes->cleaning_lock);
        /* Not posted: the process is exiting; the job and its partition
         * are left as they are, and the next start deletes its files. */
        if (rc < 0)
                log_error("reactor %u: stopped before a cleaning of %s came back; its files are sorted out at the "
                          "next start", h->index, job->name);
}

/* Kafka's grabFilthiestCompactedLog over the partitions of this home:
 * the due one with the highest dirty ratio, one job at a time per home. */
static void home_try_clean(struct home *h)
{
        struct cleaner_pool *pool = h->homes->cleaner_pool;
        if (!pool || h->cleanings_in_flight > 0 || h->is_stopping)
                return;
        int64_t now_ms = home_now_ms(NULL);
        struct home_log *best = NULL;
        double best_ratio = -1;
        for (struct home_log *hl = h->logs; hl; hl = hl->next) {
                double ratio;
                if (partition_cleaner_check(hl->partition, now_ms, &ratio) && ratio > best_ratio) {
                        best = hl;
                        best_ratio = ratio;
                }
        }
        if (!best)
                return;
        struct home_cleaning *c = calloc(1, sizeof(*c));
        if (!c)
                return;
        const struct broker_config *cfg = h->broker->config;
        uint32_t threads = cfg->log_cleaner_threads > 0 ? (uint32_t)cfg->log_cleaner_threads : 1;
        /* Kafka splits the buffer and the rate between its threads. */
        struct cleaner_limits limits = {
                .map_bytes_max = cfg->log_cleaner_dedupe_buffer_bytes > 0
                                         ? (size_t)(cfg->log_cleaner_dedupe_buffer_bytes / threads)
                                         : CLEANER_MAP_ENTRIES_MIN * CLEANER_MAP_ENTRY_BYTES,
                .map_load_factor = cfg->log_cleaner_io_buffer_load_factor,
                .io_bytes_per_second_max = cfg->log_cleaner_io_bytes_per_second_max / threads,
        };
        struct cleaner_job *job = NULL;
        if (partition_cleaner_prepare(best->partition, now_ms, &limits, &job) <= 0) {
                free(c);
                return;
        }
        c->home = h;
        c->partition = best->partition;
        c->job = job;
        job->done = home_on_job_done;
        job->ctx = c;
        h->cleanings_in_flight++;
        cleaner_pool_submit(pool, job);
}

/* Every log.cleaner.backoff.ms, as Kafka's cleaner thread pauses when it
 * finds nothing to clean. */
static void home_on_cleaner(void *arg)
{
        struct home *h = arg;
        h->cleaner_timer = 0;
        if (h->is_stopping)
                return;
        home_try_clean(h);
        h->cleaner_timer = home_arm(h, h->broker->config->log_cleaner_backoff_ms, false, home_on_cleaner);
}

/* AlterConfigs and IncrementalAlterConfigs publish a new topic version:
 * the partitions here take its config within a second. */
static void home_on_config_check(void *arg)
{
        struct home *h = arg;
        struct catalog *cat = h->broker->catalog;
        h->config_timer = 0;
        if (h->is_stopping)
                return;
        uint64_t version = catalog_version(cat);
        if (version != h->config_version) {
                h->config_version = version;
                for (struct home_log *hl = h->logs; hl; hl = hl->next) {
                        const struct catalog_topic *t = catalog_get_topic_by_id(cat, hl->topic_id);
                        if (!t)
                                continue;       /* deleted: its close is on the way */
                        struct topic_config config;
                        home_build_config(h->broker, t, &config);
                        partition_set_config(hl->partition, &config);
                        catalog_topic_put(t);
                }
        }
        h->config_timer = home_arm(h, HOME_CONFIG_CHECK_MS, false, home_on_config_check);
}

/* ---- start ---- */

/* Kafka's loadLogs: every partition of the catalog homed here, opened now. */
static void home_open_all(struct home *h)
{
        struct broker *b = h->broker;
        const struct catalog_topic **topics = NULL;
        uint32_t topic_count = 0, opened = 0;
        int rc = catalog_list_topics(b->catalog, &topics, &topic_count);
        if (rc < 0) {
                log_error("reactor %u: cannot list the topics to open (%s); partitions open on first use",
                          h->index, strerror(-rc));
                return;
        }
        for (uint32_t i = 0; i < topic_count; i++) {
                const struct catalog_topic *t = topics[i];
                for (int32_t p = 0; p < t->partition_count; p++) {
                        if (partition_home_index(b->homes, t, p) != h->index)
                                continue;
                        int16_t err = KAFKA_NONE;
                        if (partition_home_get(b, t, p, &err))
                                opened++;
                }
        }
        catalog_topics_put(topics, topic_count);        /* frees the array too */
        if (opened > 0)
                log_info("reactor %u: opened %u partitions", h->index, opened);
}

void partition_homes_on_reactor_start(struct reactor *r, uint32_t index, void *ctx)
{
        struct broker *b = ctx;
        assert(index < b->homes->count);
        struct home *h = &b->homes->homes[index];
        h->reactor = r;
        atomic_fetch_add(&b->homes->started_count, 1);
        h->config_version = catalog_version(b->catalog);
        home_open_all(h);
        h->config_timer = home_arm(h, HOME_CONFIG_CHECK_MS, true, home_on_config_check);
        h->retention_timer = home_arm(h, b->config->log_retention_check_interval_ms, true, home_on_retention);
        h->flush_timer = home_arm(h, b->config->log_flush_scheduler_interval_ms, true, home_on_flush);
        h->producer_expiry_timer = home_arm(h, b->config->producer_id_expiration_check_interval_ms, true,
                                            home_on_producer_expiry);
        if (b->homes->cleaner_pool)
                h->cleaner_timer = home_arm(h, b->config->log_cleaner_backoff_ms, true, home_on_cleaner);
}

/* ---- offsets for the checkpoints ---- */

static int home_offsets_add(struct home_offsets_buf *buf, const struct home_log *hl)
{
        if (buf->count == buf->cap) {
                uint32_t cap = buf->cap ? buf->cap * 2 : 64;
                struct home_partition_offsets *n = realloc(buf->items, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                buf->items = n;
                buf->cap = cap;
        }
        size_t name_bytes = strlen(hl->topic) + 1;
        if (buf->names_bytes + name_bytes > buf->names_cap) {
                size_t cap = buf->names_cap ? buf->names_cap * 2 : 4096;
                while (cap < buf->names_bytes + name_bytes)
                        cap *= 2;
                char *n = realloc(buf->names, cap);
                if (!n)
                        return -ENOMEM;
                buf->names = n;
                buf->names_cap = cap;
        }
        memcpy(buf->names + buf->names_bytes, hl->topic, name_bytes);
        struct partition *p = hl->partition;
        buf->items[buf->count++] = (struct home_partition_offsets){
                .topic = (const char *)(uintptr_t)buf->names_bytes,     /* an offset until done */
                .topic_id = hl->topic_id,
                .partition = hl->index,
                .logdir_index = hl->logdir_index,
                .recovery_point = partition_recovery_point(p),
                .log_start_offset = partition_log_start_offset(p),
                .first_segment_offset = partition_first_segment_offset(p),
                .is_failed = partition_is_failed(p) || partition_is_flushing(p),
        };
        buf->names_bytes += name_bytes;
        return 0;
}

/* Reads every open partition of h into buf; topics become pointers. */
static int home_offsets_fill(struct home *h, struct home_offsets_buf *buf)
{
        int rc = 0;
        buf->count = 0;
        buf->names_bytes = 0;
        for (struct home_log *hl = h->logs; hl && rc == 0; hl = hl->next)
                rc = home_offsets_add(buf, hl);
        for (uint32_t i = 0; i < buf->count; i++)
                buf->items[i].topic = buf->names + (uintptr_t)buf->items[i].topic;
        return rc;
}

static void home_collect_task(void *arg)
{
        struct home *h = arg;
        struct partition_homes *hs = h->homes;
        h->is_collect_refused = h->is_stopping;
        if (!h->is_stopping && home_offsets_fill(h, &h->collect) < 0) {
                log_warn("reactor %u: out of memory listing offsets for the checkpoints", h->index);
                h->is_collect_refused = true;
        }
        pthread_mutex_lock(&hs->collect_lock);
        hs->collect_answered++;
        pthread_cond_broadcast(&hs->collect_cond);
        pthread_mutex_unlock(&hs->collect_lock);
}

void home_offsets_list_free(struct home_offsets_list *l)
{
        free(l->items);
        memset(l, 0, sizeof(*l));
}

static int home_offsets_list_append(struct home_offsets_list *l, const struct home_offsets_buf *buf)
{
        if (l->count + buf->count > l->cap) {
                uint32_t cap = l->cap ? l->cap : 64;
                while (cap < l->count + buf->count)
                        cap *= 2;
                struct home_partition_offsets *n = realloc(l->items, cap * sizeof(*n));
                if (!n)
                        return -ENOMEM;
                l->items = n;
                l->cap = cap;
        }
        if (buf->count > 0)
                memcpy(l->items + l->count, buf->items, buf->count * sizeof(buf->items[0]));
        l->count += buf->count;
        return 0;
}

int partition_homes_collect(struct partition_homes *hs, struct home_offsets_list *out)
{
        uint32_t posted = 0;
        bool is_refused = false;

        assert(reactor_self() == NULL);
        out->count = 0;
        pthread_mutex_lock(&hs->collect_lock);
        hs->collect_answered = 0;
        pthread_mutex_unlock(&hs->collect_lock);
        for (uint32_t i = 0; i < hs->count; i++) {
                struct home *h = &hs->homes[i];
                if (!h->reactor) {
                        is_refused = true;
                        continue;
                }
                reactor_task_init(&h->collect_task, home_collect_task, h);
                if (reactor_post_task(h->reactor, &h->collect_task) < 0) {
                        is_refused = true;      /* stopped: its posts are closed */
                        continue;
                }
                posted++;
        }
        /* Every posted task runs, even on a reactor that is stopping. */
        pthread_mutex_lock(&hs->collect_lock);
        while (hs->collect_answered < posted)
                pthread_cond_wait(&hs->collect_cond, &hs->collect_lock);
        pthread_mutex_unlock(&hs->collect_lock);
        if (is_refused)
                return -ESHUTDOWN;
        for (uint32_t i = 0; i < hs->count; i++) {
                struct home *h = &hs->homes[i];
                if (h->is_collect_refused)
                        return -ESHUTDOWN;
                if (home_offsets_list_append(out, &h->collect) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int partition_homes_final_offsets(struct partition_homes *hs, struct home_offsets_list *out, bool *is_complete_out,
                                  bool *is_untouched_out)
{
        uint32_t finished = 0;
        out->count = 0;
        for (uint32_t i = 0; i < hs->count; i++) {
                struct home *h = &hs->homes[i];
                if (!h->has_final)
                        continue;
                finished++;
                if (home_offsets_list_append(out, &h->final) < 0)
                        return -ENOMEM;
        }
        *is_complete_out = finished == hs->count;
        *is_untouched_out = atomic_load(&hs->started_count) == 0;
        return 0;
}

/* ---- stop ---- */

static void home_wake(void *arg)
{
        (void)arg;              /* only ends the ring's wait */
}

static bool home_is_flushing(const struct home *h)
{
        for (const struct home_log *hl = h->logs; hl; hl = hl->next)
                if (partition_is_flushing(hl->partition))
                        return true;
        return false;
}

void partition_homes_on_reactor_stop(struct reactor *r, uint32_t index, void *ctx)
{
        struct broker *b = ctx;
        struct partition_homes *hs = b->homes;
        struct home *h = &hs->homes[index];
        assert(h->reactor == r);
        h->is_stopping = true;
        reactor_timer_cancel(r, h->retention_timer);
        reactor_timer_cancel(r, h->flush_timer);
        reactor_timer_cancel(r, h->config_timer);
        reactor_timer_cancel(r, h->producer_expiry_timer);
        reactor_timer_cancel(r, h->cleaner_timer);
        h->retention_timer = h->flush_timer = h->config_timer = h->producer_expiry_timer = h->cleaner_timer = 0;

        /* 1. Until every home has stopped its connections, requests from
         *    other reactors may still come for partitions here: keep serving. */
        atomic_fetch_add(&hs->stopping_count, 1);
        for (uint32_t i = 0; i < hs->count; i++)
                if (i != index && hs->homes[i].reactor)
                        reactor_post(hs->homes[i].reactor, home_wake, NULL);
        while (atomic_load(&hs->stopping_count) < atomic_load(&hs->started_count))
                if (reactor_run_once(r, HOME_STOP_POLL_MS) < 0)
                        break;

        /* 2. Every write in flight completes and everything written
         *    reaches the disk; appends waiting for either complete on the
         *    way. */
        for (struct home_log *hl = h->logs; hl; hl = hl->next)
                partition_flush(hl->partition);
        uint64_t deadline_ms = reactor_now_ms() + PARTITION_HOME_SHUTDOWN_SYNC_MS;
        while (home_is_flushing(h) && reactor_now_ms() < deadline_ms)
                if (reactor_run_once(r, HOME_STOP_POLL_MS) < 0)
                        break;
        if (home_is_flushing(h))
                log_error("reactor %u: partitions still writing or syncing after %d ms of shutdown; their log dirs get no "
                          "clean-shutdown marker", index, PARTITION_HOME_SHUTDOWN_SYNC_MS);

        /* 3. The producer snapshots at the log ends: a clean start reads
         *    them instead of the log. One missing means no clean-shutdown
         *    marker, so the next start rebuilds producer state from the log. */
        bool are_snapshots_written = true;
        for (struct home_log *l = h->logs; l; l = l->next)
                if (partition_snapshot_producers(l->partition) < 0)
                        are_snapshots_written = false;

        /* 4. The offsets for the final checkpoints, then the closes. */
        if (!are_snapshots_written)
                log_error("reactor %u: a producer snapshot could not be written; no clean-shutdown marker",
                          index);
        else if (home_offsets_fill(h, &h->final) < 0)
                log_error("reactor %u: out of memory recording the final offsets; no clean-shutdown marker",
                          index);
        else
                h->has_final = true;
        struct home_log *hl;
        while ((hl = h->logs)) {
                struct partition *p = hl->partition;
                /* The catalog still points at hl; it is closed after the
                 * server, and its release hook then frees hl. */
                hl->partition = NULL;
                home_log_unlink(hl);
                partition_close(p);
        }
        assert(h->open_count == 0);
        /* The closes cancelled the cleanings in flight: their partitions
         * are freed when the jobs come back, which is soon (a job stops
         * at its next batch). */
        uint64_t clean_deadline_ms = reactor_now_ms() + HOME_STOP_CLEANING_MS;
        while (h->cleanings_in_flight > 0 && reactor_now_ms() < clean_deadline_ms)
                if (reactor_run_once(r, HOME_STOP_POLL_MS) < 0)
                        break;
        if (h->cleanings_in_flight > 0)
                log_error("reactor %u: %u cleaning(s) still running after %d ms of shutdown", index,
                          h->cleanings_in_flight, HOME_STOP_CLEANING_MS);
        /* The reactor may be freed once this thread returns: the jobs still
         * out never post to it (those posted before run just below). */
        pthread_mutex_lock(&h->homes->cleaning_lock);
        h->is_cleaning_closed = true;
        pthread_mutex_unlock(&h->homes->cleaning_lock);
        /* Closes of deleted topics' partitions deferred meanwhile. */
        reactor_run_once(r, 0);
}
