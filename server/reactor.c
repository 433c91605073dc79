/*
 * reactor.c - the event loop; see reactor.h for the contract.
 *
 * One iteration of the loop:
 *
 *   1. io_uring_submit_and_wait_timeout(): submits every SQE prepared since
 *      the last iteration and waits for one CQE, at most until the earliest
 *      timer is due (0 if deferred tasks are queued). One syscall.
 *   2. Runs the callbacks of the CQEs available (at most
 *      REACTOR_CQE_BATCH_MAX), then advances the CQ ring once.
 *   3. Runs the timers that are due, in (deadline, insertion) order; timers
 *      added while doing so wait for the next iteration.
 *   4. Runs the deferred tasks queued so far; tasks queued by them wait for
 *      the next iteration.
 *
 * Invariants:
 *   - timer_heap[0..timer_count) is a binary min-heap of slot indices by
 *     (deadline_ns, seq); slot->heap_index is the slot's position in it.
 *     Free slots are chained through next_free and have heap_index
 *     REACTOR_TIMER_FREE. A timer id is (generation << 32 | slot index) and
 *     the generation changes whenever a slot is freed, so a stale id never
 *     cancels a newer timer.
 *   - post_in holds post_in_count <= post_queue_cap items, guarded by
 *     post_lock. is_wake_pending is true iff an eventfd write is outstanding
 *     that the reactor has not yet drained, so producers write the eventfd at
 *     most once per drain.
 *   - the eventfd read (wake_op) is armed whenever the reactor runs, except
 *     briefly inside its own completion.
 */
#include "reactor.h"

#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "../base/logging.h"

#define REACTOR_CQE_BATCH_MAX 4096
#define REACTOR_TIMER_FREE UINT32_MAX
#define REACTOR_TIMER_SLOTS_INITIAL 64
#define REACTOR_BUF_COUNT_MAX 32768

struct reactor_timer_slot {
        uint64_t deadline_ns;
        uint64_t seq;
        reactor_callback_fn fn;
        void *arg;
        uint32_t generation;
        uint32_t heap_index;            /* REACTOR_TIMER_FREE when free */
        uint32_t next_free;
};

struct reactor_post_item {
        reactor_callback_fn fn;
        void *arg;
};

struct reactor {
        struct io_uring ring;
        pthread_t owner;
        atomic_bool is_stop_requested;
        bool is_running;                /* inside reactor_run_once */
        uint32_t ops_pending_count;

        /* Wake-up: the eventfd and its armed read. */
        int wake_fd;
        uint64_t wake_value;
        struct reactor_op wake_op;
        bool is_wake_armed;

        /* Posted work. */
        pthread_mutex_t post_lock;
        struct reactor_post_item *post_in;      /* producers append, under post_lock */
        struct reactor_post_item *post_out;     /* the reactor runs from here */
        uint32_t post_in_count;
        struct reactor_task *post_task_head;    /* reactor_post_task(), guarded by post_lock */
        struct reactor_task *post_task_tail;
        uint32_t post_queue_cap;
        bool is_wake_pending;                   /* under post_lock */
        bool is_post_closed;                    /* under post_lock */

        /* Timers. */
        struct reactor_timer_slot *timer_slots;
        uint32_t *timer_heap;
        uint32_t timer_slot_cap;
        uint32_t timer_count;
        uint32_t timer_max_count;
        uint32_t timer_free_head;
        uint64_t timer_seq;

        /* Deferred tasks, FIFO. */
        struct reactor_task *task_head;
        struct reactor_task *task_tail;
};

struct reactor_buf_ring {
        struct reactor *reactor;
        struct io_uring_buf_ring *ring;
        size_t ring_bytes;
        uint8_t *bufs;
        size_t bufs_bytes;
        uint32_t buf_count;
        uint32_t buf_bytes;
        uint16_t group_id;
};

static __thread struct reactor *reactor_current;

static inline bool reactor_is_owner(const struct reactor *r)
{
        return pthread_equal(pthread_self(), r->owner) != 0;
}

uint64_t reactor_now_ns(void)
{
        struct timespec ts;
        int rc = clock_gettime(CLOCK_MONOTONIC, &ts);
        assert(rc == 0);
        (void)rc;
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t reactor_now_ms(void)
{
        return reactor_now_ns() / 1000000u;
}

struct reactor *reactor_self(void)
{
        return reactor_current;
}

void reactor_options_init(struct reactor_options *opts)
{
        memset(opts, 0, sizeof(*opts));
        opts->sq_entries = 4096;
        opts->cq_entries = 16384;
        opts->post_queue_cap = 65536;
        opts->timer_max_count = 1u << 20;
}

/* ---- ring setup */

static int reactor_init_ring(struct reactor *r, const struct reactor_options *opts)
{
        /* Most capable first: DEFER_TASKRUN runs completion work only when we
         * wait, on our thread, which is what a one-thread-per-ring design wants. */
        static const unsigned flag_sets[] = {
                IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
                0,
        };
        int rc = -EINVAL;

        for (size_t i = 0; i < sizeof(flag_sets) / sizeof(flag_sets[0]); i++) {
                struct io_uring_params p;
                memset(&p, 0, sizeof(p));
                p.flags = flag_sets[i] | IORING_SETUP_CQSIZE;
                p.cq_entries = opts->cq_entries;
                rc = io_uring_queue_init_params(opts->sq_entries, &r->ring, &p);
                if (rc == 0) {
                        if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
                                /* Timers rely on the wait timeout without an SQE,
                                 * and completions must never be dropped. */
                                io_uring_queue_exit(&r->ring);
                                return -ENOTSUP;
                        }
                        return 0;
                }
                if (rc != -EINVAL)
                        return rc;
        }
        return rc;
}

static void reactor_on_wake(struct reactor_op *op, int32_t res, uint32_t cqe_flags);

static int reactor_arm_wake(struct reactor *r)
{
        assert(!r->is_wake_armed);
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (!sqe) {
                io_uring_submit(&r->ring);
                sqe = io_uring_get_sqe(&r->ring);
                if (!sqe)
                        return -EBUSY;
        }
        io_uring_prep_read(sqe, r->wake_fd, &r->wake_value, sizeof(r->wake_value), 0);
        io_uring_sqe_set_data(sqe, &r->wake_op);
        r->is_wake_armed = true;
        return 0;
}

int reactor_create(const struct reactor_options *opts, struct reactor **out)
{
        struct reactor_options defaults;
        int rc;

        if (!opts) {
                reactor_options_init(&defaults);
                opts = &defaults;
        }
        if (opts->sq_entries == 0 || opts->cq_entries < opts->sq_entries ||
            opts->post_queue_cap == 0 || opts->timer_max_count == 0 ||
            opts->timer_max_count >= REACTOR_TIMER_FREE)
                return -EINVAL;
        if (reactor_current)
                return -EBUSY;  /* one reactor per thread */

        struct reactor *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->owner = pthread_self();
        atomic_init(&r->is_stop_requested, false);
        r->post_queue_cap = opts->post_queue_cap;
        r->timer_max_count = opts->timer_max_count;
        r->timer_free_head = REACTOR_TIMER_FREE;
        r->wake_op.fn = reactor_on_wake;

        r->post_in = calloc(opts->post_queue_cap, sizeof(*r->post_in));
        r->post_out = calloc(opts->post_queue_cap, sizeof(*r->post_out));
        if (!r->post_in || !r->post_out) {
                rc = -ENOMEM;
                goto out_free_posts;
        }
        rc = pthread_mutex_init(&r->post_lock, NULL);
        if (rc) {
                rc = -rc;
                goto out_free_posts;
        }
        r->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (r->wake_fd < 0) {
                rc = -errno;
                goto out_destroy_lock;
        }
        rc = reactor_init_ring(r, opts);
        if (rc)
                goto out_close_wake;
        rc = reactor_arm_wake(r);
        if (rc)
                goto out_exit_ring;

        reactor_current = r;
        *out = r;
        return 0;

out_exit_ring:
        io_uring_queue_exit(&r->ring);
out_close_wake:
        close(r->wake_fd);
out_destroy_lock:
        pthread_mutex_destroy(&r->post_lock);
out_free_posts:
        free(r->post_in);
        free(r->post_out);
        free(r);
        return rc;
}

void reactor_destroy(struct reactor *r)
{
        if (!r)
                return;
        assert(!r->is_running);
        io_uring_queue_exit(&r->ring);
        close(r->wake_fd);
        pthread_mutex_destroy(&r->post_lock);
        free(r->post_in);
        free(r->post_out);
        free(r->timer_slots);
        free(r->timer_heap);
        if (reactor_current == r)
                reactor_current = NULL;
        free(r);
}

/* ---- operations */

struct io_uring_sqe *reactor_prep_untracked(struct reactor *r)
{
        assert(reactor_is_owner(r));
        struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
        if (!sqe) {
                /* Full: hand what we have to the kernel and try once more. */
                io_uring_submit(&r->ring);
                sqe = io_uring_get_sqe(&r->ring);
                if (!sqe)
                        return NULL;
        }
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data(sqe, NULL);
        return sqe;
}

struct io_uring_sqe *reactor_prep_op(struct reactor *r, struct reactor_op *op)
{
        assert(op && op->fn);
        struct io_uring_sqe *sqe = reactor_prep_untracked(r);
        if (!sqe)
                return NULL;
        /* io_uring_prep_* functions leave user_data alone, so it can be set first. */
        io_uring_sqe_set_data(sqe, op);
        r->ops_pending_count++;
        return sqe;
}

int reactor_reserve_sqes(struct reactor *r, uint32_t count)
{
        assert(reactor_is_owner(r));
        assert(count > 0);
        if (io_uring_sq_space_left(&r->ring) >= count)
                return 0;
        io_uring_submit(&r->ring);
        return io_uring_sq_space_left(&r->ring) >= count ? 0 : -EBUSY;
}

uint32_t reactor_ops_pending_count(const struct reactor *r)
{
        return r->ops_pending_count;
}

/* ---- posted work */

int reactor_post_task(struct reactor *r, struct reactor_task *t)
{
        assert(t && t->fn && !t->is_queued);
        bool must_wake;

        pthread_mutex_lock(&r->post_lock);
        if (r->is_post_closed) {
                pthread_mutex_unlock(&r->post_lock);
                return -ESHUTDOWN;
        }
        t->next = NULL;
        t->is_queued = true;
        if (r->post_task_tail)
                r->post_task_tail->next = t;
        else
                r->post_task_head = t;
        r->post_task_tail = t;
        must_wake = !r->is_wake_pending;
        r->is_wake_pending = true;
        pthread_mutex_unlock(&r->post_lock);

        if (must_wake) {
                uint64_t one = 1;
                ssize_t n = write(r->wake_fd, &one, sizeof(one));
                assert(n == (ssize_t)sizeof(one));
                (void)n;
        }
        return 0;
}

int reactor_post(struct reactor *r, reactor_callback_fn fn, void *arg)
{
        assert(fn);
        bool must_wake;

        pthread_mutex_lock(&r->post_lock);
        if (r->is_post_closed) {
                pthread_mutex_unlock(&r->post_lock);
                return -ESHUTDOWN;
        }
        if (r->post_in_count == r->post_queue_cap) {
                pthread_mutex_unlock(&r->post_lock);
                return -EAGAIN;
        }
        r->post_in[r->post_in_count].fn = fn;
        r->post_in[r->post_in_count].arg = arg;
        r->post_in_count++;
        must_wake = !r->is_wake_pending;
        r->is_wake_pending = true;
        pthread_mutex_unlock(&r->post_lock);

        if (must_wake) {
                uint64_t one = 1;
                /* Cannot fail short of a counter overflow (2^64 - 2 writes). */
                ssize_t n = write(r->wake_fd, &one, sizeof(one));
                assert(n == (ssize_t)sizeof(one));
                (void)n;
        }
        return 0;
}

/* Runs everything posted so far. The swap keeps the lock held for O(1). */
static void reactor_run_posts(struct reactor *r)
{
        pthread_mutex_lock(&r->post_lock);
        struct reactor_post_item *items = r->post_in;
        uint32_t count = r->post_in_count;
        r->post_in = r->post_out;
        r->post_out = items;
        r->post_in_count = 0;
        struct reactor_task *tasks = r->post_task_head;
        r->post_task_head = NULL;
        r->post_task_tail = NULL;
        r->is_wake_pending = false;
        pthread_mutex_unlock(&r->post_lock);

        assert(count <= r->post_queue_cap);
        for (uint32_t i = 0; i < count; i++)
                items[i].fn(items[i].arg);
        while (tasks) {
                struct reactor_task *t = tasks;
                tasks = t->next;
                t->next = NULL;
                t->is_queued = false;
                t->fn(t->arg);
        }
}

static void reactor_on_wake(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct reactor *r = container_of(op, struct reactor, wake_op);
        (void)cqe_flags;
        assert(r->is_wake_armed);
        r->is_wake_armed = false;
        /* res is 8 (the counter) or -EAGAIN-like noise; either way, drain. */
        (void)res;
        if (reactor_arm_wake(r) != 0) {
                /* The SQ is full even after a submit; the next iteration retries. */
                log_warn("reactor: cannot re-arm wake-up read, retrying");
        }
        reactor_run_posts(r);
}

void reactor_close_posts(struct reactor *r)
{
        assert(reactor_is_owner(r));
        pthread_mutex_lock(&r->post_lock);
        r->is_post_closed = true;
        pthread_mutex_unlock(&r->post_lock);
        /* Work accepted before the close still runs: a successful post always does. */
        reactor_run_posts(r);
}

void reactor_stop(struct reactor *r)
{
        /* Async-signal-safe: an atomic store and a write(2). */
        int saved_errno = errno;
        uint64_t one = 1;
        atomic_store(&r->is_stop_requested, true);
        ssize_t n = write(r->wake_fd, &one, sizeof(one));
        (void)n;
        errno = saved_errno;
}

bool reactor_is_stop_requested(const struct reactor *r)
{
        return atomic_load(&((struct reactor *)r)->is_stop_requested);
}

/* ---- timers */

static bool reactor_timer_before(const struct reactor *r, uint32_t a, uint32_t b)
{
        const struct reactor_timer_slot *sa = &r->timer_slots[a];
        const struct reactor_timer_slot *sb = &r->timer_slots[b];
        if (sa->deadline_ns != sb->deadline_ns)
                return sa->deadline_ns < sb->deadline_ns;
        return sa->seq < sb->seq;
}

static void reactor_heap_set(struct reactor *r, uint32_t pos, uint32_t slot)
{
        r->timer_heap[pos] = slot;
        r->timer_slots[slot].heap_index = pos;
}

static void reactor_heap_sift_up(struct reactor *r, uint32_t pos)
{
        uint32_t slot = r->timer_heap[pos];
        while (pos > 0) {
                uint32_t parent = (pos - 1) / 2;
                if (!reactor_timer_before(r, slot, r->timer_heap[parent]))
                        break;
                reactor_heap_set(r, pos, r->timer_heap[parent]);
                pos = parent;
        }
        reactor_heap_set(r, pos, slot);
}

static void reactor_heap_sift_down(struct reactor *r, uint32_t pos)
{
        uint32_t slot = r->timer_heap[pos];
        for (;;) {
                uint32_t child = 2 * pos + 1;
                if (child >= r->timer_count)
                        break;
                if (child + 1 < r->timer_count &&
                    reactor_timer_before(r, r->timer_heap[child + 1], r->timer_heap[child]))
                        child++;
                if (!reactor_timer_before(r, r->timer_heap[child], slot))
                        break;
                reactor_heap_set(r, pos, r->timer_heap[child]);
                pos = child;
        }
        reactor_heap_set(r, pos, slot);
}

/* Removes the timer at heap position pos and frees its slot. */
static void reactor_heap_remove(struct reactor *r, uint32_t pos)
{
        assert(pos < r->timer_count);
        uint32_t slot = r->timer_heap[pos];
        uint32_t last = r->timer_heap[r->timer_count - 1];
        r->timer_count--;
        if (pos < r->timer_count) {
                reactor_heap_set(r, pos, last);
                reactor_heap_sift_down(r, pos);
                reactor_heap_sift_up(r, r->timer_slots[last].heap_index);
        }

        struct reactor_timer_slot *s = &r->timer_slots[slot];
        s->heap_index = REACTOR_TIMER_FREE;
        s->fn = NULL;
        s->arg = NULL;
        s->generation++;
        if (s->generation == 0)
                s->generation = 1;
        s->next_free = r->timer_free_head;
        r->timer_free_head = slot;
}

static int reactor_timer_grow(struct reactor *r)
{
        uint32_t old_cap = r->timer_slot_cap;
        if (old_cap >= r->timer_max_count)
                return -ENOSPC;
        uint64_t new_cap = old_cap ? (uint64_t)old_cap * 2 : REACTOR_TIMER_SLOTS_INITIAL;
        if (new_cap > r->timer_max_count)
                new_cap = r->timer_max_count;

        struct reactor_timer_slot *slots = realloc(r->timer_slots, new_cap * sizeof(*slots));
        if (!slots)
                return -ENOMEM;
        r->timer_slots = slots;
        uint32_t *heap = realloc(r->timer_heap, new_cap * sizeof(*heap));
        if (!heap)
                return -ENOMEM; /* slots grew; harmless, cap stays old_cap */
        r->timer_heap = heap;

        /* Chain the new slots into the free list, lowest index first. */
        for (uint32_t i = (uint32_t)new_cap; i-- > old_cap;) {
                slots[i].generation = 1;
                slots[i].heap_index = REACTOR_TIMER_FREE;
                slots[i].fn = NULL;
                slots[i].arg = NULL;
                slots[i].next_free = r->timer_free_head;
                r->timer_free_head = i;
        }
        r->timer_slot_cap = (uint32_t)new_cap;
        return 0;
}

reactor_timer_id reactor_timer_add(struct reactor *r, uint64_t delay_ms,
                                   reactor_callback_fn fn, void *arg)
{
        assert(reactor_is_owner(r));
        assert(fn);
        if (r->timer_free_head == REACTOR_TIMER_FREE && reactor_timer_grow(r) != 0)
                return 0;
        assert(r->timer_free_head != REACTOR_TIMER_FREE);
        assert(r->timer_count < r->timer_slot_cap);

        uint32_t slot = r->timer_free_head;
        struct reactor_timer_slot *s = &r->timer_slots[slot];
        assert(s->heap_index == REACTOR_TIMER_FREE);
        r->timer_free_head = s->next_free;

        uint64_t now_ns = reactor_now_ns();
        uint64_t delay_ns = delay_ms > UINT64_MAX / 2000000u ? UINT64_MAX / 2 : delay_ms * 1000000u;
        s->deadline_ns = now_ns + delay_ns;
        s->seq = r->timer_seq++;
        s->fn = fn;
        s->arg = arg;
        s->next_free = REACTOR_TIMER_FREE;

        uint32_t pos = r->timer_count++;
        reactor_heap_set(r, pos, slot);
        reactor_heap_sift_up(r, pos);
        return ((uint64_t)s->generation << 32) | slot;
}

bool reactor_timer_cancel(struct reactor *r, reactor_timer_id id)
{
        assert(reactor_is_owner(r));
        if (id == 0)
                return false;
        uint32_t slot = (uint32_t)id;
        uint32_t generation = (uint32_t)(id >> 32);
        if (slot >= r->timer_slot_cap)
                return false;
        struct reactor_timer_slot *s = &r->timer_slots[slot];
        if (s->generation != generation || s->heap_index == REACTOR_TIMER_FREE)
                return false;
        assert(r->timer_heap[s->heap_index] == slot);
        reactor_heap_remove(r, s->heap_index);
        return true;
}

uint32_t reactor_timer_count(const struct reactor *r)
{
        return r->timer_count;
}

static void reactor_fire_timers(struct reactor *r)
{
        uint64_t now_ns = reactor_now_ns();
        uint64_t seq_limit = r->timer_seq;      /* timers added from here on wait */
        uint32_t budget = r->timer_count;

        while (budget-- > 0 && r->timer_count > 0) {
                uint32_t slot = r->timer_heap[0];
                struct reactor_timer_slot *s = &r->timer_slots[slot];
                if (s->deadline_ns > now_ns || s->seq >= seq_limit)
                        break;
                reactor_callback_fn fn = s->fn;
                void *arg = s->arg;
                reactor_heap_remove(r, 0);
                fn(arg);
        }
}

/* ---- deferred tasks */

void reactor_task_init(struct reactor_task *t, reactor_callback_fn fn, void *arg)
{
        t->next = NULL;
        t->fn = fn;
        t->arg = arg;
        t->is_queued = false;
}

void reactor_defer(struct reactor *r, struct reactor_task *t)
{
        assert(reactor_is_owner(r));
        assert(t->fn);
        if (t->is_queued)
                return;
        t->is_queued = true;
        t->next = NULL;
        if (r->task_tail)
                r->task_tail->next = t;
        else
                r->task_head = t;
        r->task_tail = t;
}

static void reactor_run_tasks(struct reactor *r)
{
        struct reactor_task *t = r->task_head;
        r->task_head = NULL;
        r->task_tail = NULL;
        while (t) {
                struct reactor_task *next = t->next;
                assert(t->is_queued);
                t->next = NULL;
                t->is_queued = false;
                t->fn(t->arg);
                t = next;
        }
}

/* ---- the loop */

static unsigned reactor_run_completions(struct reactor *r)
{
        struct io_uring_cqe *cqe;
        unsigned head;
        unsigned count = 0;

        io_uring_for_each_cqe(&r->ring, head, cqe) {
                struct reactor_op *op = io_uring_cqe_get_data(cqe);
                int32_t res = cqe->res;
                uint32_t flags = cqe->flags;
                count++;
                if (op) {
                        if (op != &r->wake_op && !(flags & IORING_CQE_F_MORE)) {
                                assert(r->ops_pending_count > 0);
                                r->ops_pending_count--;
                        }
                        op->fn(op, res, flags);
                }
                if (count == REACTOR_CQE_BATCH_MAX)
                        break;
        }
        io_uring_cq_advance(&r->ring, count);
        return count;
}

int reactor_run_once(struct reactor *r, uint64_t max_wait_ms)
{
        assert(reactor_is_owner(r));
        assert(!r->is_running);
        struct io_uring_cqe *cqe = NULL;
        struct __kernel_timespec ts;
        uint64_t wait_ns = max_wait_ms > UINT64_MAX / 2000000u ? UINT64_MAX / 2 : max_wait_ms * 1000000u;
        int rc;

        r->is_running = true;
        if (!r->is_wake_armed)
                (void)reactor_arm_wake(r);
        if (r->task_head)
                wait_ns = 0;
        if (r->timer_count > 0) {
                uint64_t now_ns = reactor_now_ns();
                uint64_t deadline_ns = r->timer_slots[r->timer_heap[0]].deadline_ns;
                uint64_t until_ns = deadline_ns > now_ns ? deadline_ns - now_ns : 0;
                if (until_ns < wait_ns)
                        wait_ns = until_ns;
        }
        ts.tv_sec = (long long)(wait_ns / 1000000000u);
        ts.tv_nsec = (long long)(wait_ns % 1000000000u);

        rc = io_uring_submit_and_wait_timeout(&r->ring, &cqe, 1, &ts, NULL);
        if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
                r->is_running = false;
                return rc;
        }
        unsigned count = reactor_run_completions(r);
        reactor_fire_timers(r);
        reactor_run_tasks(r);
        r->is_running = false;
        return (int)count;
}

int reactor_run(struct reactor *r)
{
        while (!reactor_is_stop_requested(r)) {
                int rc = reactor_run_once(r, UINT64_MAX);
                if (rc < 0) {
                        log_error("reactor: io_uring wait failed: %s", strerror(-rc));
                        return rc;
                }
        }
        return 0;
}

/* ---- provided buffer rings */

int reactor_buf_ring_create(struct reactor *r, uint16_t group_id, uint32_t buf_count,
                            uint32_t buf_bytes, struct reactor_buf_ring **out)
{
        assert(reactor_is_owner(r));
        int rc;

        if (buf_count == 0 || buf_count > REACTOR_BUF_COUNT_MAX || (buf_count & (buf_count - 1)) ||
            buf_bytes == 0 || buf_bytes > (1u << 30))
                return -EINVAL;

        struct reactor_buf_ring *br = calloc(1, sizeof(*br));
        if (!br)
                return -ENOMEM;
        br->reactor = r;
        br->buf_count = buf_count;
        br->buf_bytes = buf_bytes;
        br->group_id = group_id;

        /* liburing 2.3 has no io_uring_setup_buf_ring(): the ring must be
         * page-aligned memory we map ourselves. */
        br->ring_bytes = (size_t)buf_count * sizeof(struct io_uring_buf);
        br->ring = mmap(NULL, br->ring_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (br->ring == MAP_FAILED) {
                rc = -errno;
                goto out_free;
        }
        br->bufs_bytes = (size_t)buf_count * buf_bytes;
        br->bufs = mmap(NULL, br->bufs_bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (br->bufs == MAP_FAILED) {
                rc = -errno;
                goto out_unmap_ring;
        }

        struct io_uring_buf_reg reg;
        memset(&reg, 0, sizeof(reg));
        reg.ring_addr = (uint64_t)(uintptr_t)br->ring;
        reg.ring_entries = buf_count;
        reg.bgid = group_id;
        rc = io_uring_register_buf_ring(&r->ring, &reg, 0);
        if (rc)
                goto out_unmap_bufs;

        io_uring_buf_ring_init(br->ring);
        int mask = io_uring_buf_ring_mask(buf_count);
        for (uint32_t i = 0; i < buf_count; i++)
                io_uring_buf_ring_add(br->ring, br->bufs + (size_t)i * buf_bytes, buf_bytes,
                                      (unsigned short)i, mask, (int)i);
        io_uring_buf_ring_advance(br->ring, (int)buf_count);
        *out = br;
        return 0;

out_unmap_bufs:
        munmap(br->bufs, br->bufs_bytes);
out_unmap_ring:
        munmap(br->ring, br->ring_bytes);
out_free:
        free(br);
        return rc;
}

void reactor_buf_ring_destroy(struct reactor_buf_ring *br)
{
        if (!br)
                return;
        io_uring_unregister_buf_ring(&br->reactor->ring, br->group_id);
        munmap(br->bufs, br->bufs_bytes);
        munmap(br->ring, br->ring_bytes);
        free(br);
}

uint16_t reactor_buf_ring_group(const struct reactor_buf_ring *br)
{
        return br->group_id;
}

const uint8_t *reactor_buf_ring_buffer(const struct reactor_buf_ring *br, uint16_t buf_id)
{
        assert(buf_id < br->buf_count);
        return br->bufs + (size_t)buf_id * br->buf_bytes;
}

void reactor_buf_ring_recycle(struct reactor_buf_ring *br, uint16_t buf_id)
{
        assert(buf_id < br->buf_count);
        io_uring_buf_ring_add(br->ring, br->bufs + (size_t)buf_id * br->buf_bytes, br->buf_bytes,
                              buf_id, io_uring_buf_ring_mask(br->buf_count), 0);
        io_uring_buf_ring_advance(br->ring, 1);
}
