/*
 * reactor.h - one event loop per thread, a thin layer over io_uring.
 *
 * A reactor owns one io_uring and everything that runs on its thread:
 *
 *   - operations: the caller embeds a struct reactor_op in its own object,
 *     asks for an SQE with reactor_prep_op() and fills it with an
 *     io_uring_prep_*() call. Every CQE for that SQE (several for multishot
 *     operations) calls op->fn on the reactor thread. The op is finished when
 *     a CQE arrives without IORING_CQE_F_MORE; until then the op's memory
 *     must stay valid.
 *   - timers: a min-heap ordered by (deadline, insertion order), serviced by
 *     the timeout of the one io_uring_enter() each loop iteration makes
 *     (IORING_FEAT_EXT_ARG), so a timer costs no SQE and no syscall.
 *   - posted work: reactor_post() may be called from any thread; it queues
 *     fn(arg) in a bounded queue and wakes the reactor through an eventfd whose
 *     read is kept armed in the ring.
 *   - deferred tasks: reactor_defer() runs a task once, after the completions
 *     of this iteration and before the reactor next waits; the connection layer
 *     uses it to coalesce all responses made ready in one iteration into one
 *     send per connection.
 *   - provided buffer rings for multishot recv.
 *
 * Thread confinement: a reactor is driven by the thread that created it
 * (the ring is set up IORING_SETUP_SINGLE_ISSUER where the kernel allows).
 * Only reactor_post(), reactor_stop(), reactor_is_stop_requested(),
 * reactor_now_ms() and reactor_now_ns() may be called from other threads;
 * reactor_stop() is also async-signal-safe.
 *
 * Limits: the post queue holds at most post_queue_cap entries (posting to a
 * full queue fails with -EAGAIN); at most timer_max_count timers are pending
 * (adding more fails). Nothing here allocates per operation.
 */
#ifndef RUNNEL_REACTOR_H
#define RUNNEL_REACTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct io_uring_sqe;
struct reactor;

#ifndef container_of
#define container_of(ptr, type, member) \
        ((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#endif

/* Called for each CQE of an operation: res is cqe->res (bytes, an fd, or a
 * negative errno), cqe_flags is cqe->flags (IORING_CQE_F_MORE, buffer id). */
struct reactor_op;
typedef void (*reactor_op_fn)(struct reactor_op *op, int32_t res, uint32_t cqe_flags);

struct reactor_op {
        reactor_op_fn fn;
};

/* Timer, posted and deferred work all run fn(arg) on the reactor thread. */
typedef void (*reactor_callback_fn)(void *arg);

/* A deferred task, embedded in its owner; see reactor_defer(). */
struct reactor_task {
        struct reactor_task *next;
        reactor_callback_fn fn;
        void *arg;
        bool is_queued;
};

/* A pending timer; 0 is never a valid id. */
typedef uint64_t reactor_timer_id;

struct reactor_options {
        uint32_t sq_entries;            /* submission queue size, power of two */
        uint32_t cq_entries;            /* completion queue size, >= sq_entries */
        uint32_t post_queue_cap;        /* pending reactor_post() calls */
        uint32_t timer_max_count;       /* pending timers */
};

/* Fills in defaults: 4096 SQEs, 16384 CQEs, 65536 posts, 1M timers. */
void reactor_options_init(struct reactor_options *opts);

/* Creates a reactor owned by the calling thread. Returns 0 or -errno. */
int reactor_create(const struct reactor_options *opts, struct reactor **out);

/* Tears the ring down, cancelling whatever is still pending; pending timers
 * and posted work are dropped without being run. May be called from any thread
 * once the owner thread has stopped driving the reactor and no thread posts. */
void reactor_destroy(struct reactor *r);

/* The reactor owned by the calling thread, or NULL. */
struct reactor *reactor_self(void);

/* CLOCK_MONOTONIC. Any thread. */
uint64_t reactor_now_ms(void);
uint64_t reactor_now_ns(void);

/* ---- running */

/* Runs iterations until reactor_stop(). Returns 0, or -errno if the ring
 * failed. */
int reactor_run(struct reactor *r);

/* One iteration: submit, wait at most max_wait_ms (less if a timer is due,
 * 0 if deferred tasks are queued) for a completion, run the completions,
 * the due timers and the deferred tasks. Returns the number of completions
 * handled, or -errno if the ring failed. */
int reactor_run_once(struct reactor *r, uint64_t max_wait_ms);

/* Asks reactor_run() to return after the current iteration. Any thread;
 * async-signal-safe. */
void reactor_stop(struct reactor *r);
bool reactor_is_stop_requested(const struct reactor *r);

/* ---- operations */

/* An SQE whose completions go to op->fn, or NULL if the submission queue is
 * full even after submitting what it holds. The caller must fill the SQE. */
struct io_uring_sqe *reactor_prep_op(struct reactor *r, struct reactor_op *op);

/* An SQE whose completion is ignored (cancellations, fire-and-forget). */
struct io_uring_sqe *reactor_prep_untracked(struct reactor *r);

/* Makes room for count SQEs, submitting what the queue holds if it must, so
 * that the next count reactor_prep_* calls reach the kernel in one submission
 * (operations linked with IOSQE_IO_LINK must). Returns 0, or -EBUSY if the
 * room cannot be made. */
int reactor_reserve_sqes(struct reactor *r, uint32_t count);

/* Operations prepared through reactor_prep_op whose final CQE has not yet
 * arrived, excluding the reactor's own eventfd read. */
uint32_t reactor_ops_pending_count(const struct reactor *r);

/* ---- timers (reactor thread only) */

/* Runs fn(arg) once, no earlier than delay_ms from now. Timers run in
 * deadline order, timers with equal deadlines in the order they were added;
 * a timer added by a running timer waits for the next loop iteration even
 * with delay 0. Returns the id, or 0 when timer_max_count timers are pending
 * or memory ran out. */
reactor_timer_id reactor_timer_add(struct reactor *r, uint64_t delay_ms,
                                   reactor_callback_fn fn, void *arg);

/* Cancels a pending timer. Returns true if it was pending (and now will not
 * run), false if it already ran, was cancelled, or id is 0. */
bool reactor_timer_cancel(struct reactor *r, reactor_timer_id id);

uint32_t reactor_timer_count(const struct reactor *r);

/* ---- cross-thread posting */

/* Runs fn(arg) on r's thread soon. Any thread (not from a signal handler).
 * Returns 0, -EAGAIN if the queue is full, or -ESHUTDOWN once the reactor
 * stopped accepting posts; on error fn is not run and arg stays the caller's.
 * Work posted successfully always runs, in posting order per thread. */
int reactor_post(struct reactor *r, reactor_callback_fn fn, void *arg);

/* Refuses further posts, then runs what was already posted. Owner thread;
 * called once the reactor is shutting down. */
void reactor_close_posts(struct reactor *r);

/* ---- deferred tasks (reactor thread only) */

void reactor_task_init(struct reactor_task *t, reactor_callback_fn fn, void *arg);

/*
 * Like reactor_post(), for a task embedded in the caller's object: no queue
 * bound and no allocation, so a post that must not fail (handing a finished
 * append back to the request's reactor) cannot. Any thread. The task must
 * not be queued already; it is free for reuse once its fn runs. Returns 0 or
 * -ESHUTDOWN after reactor_close_posts().
 */
int reactor_post_task(struct reactor *r, struct reactor_task *t);

/* Queues t to run once before the reactor next waits; a task already queued
 * stays queued once. The task's memory must stay valid until it has run. */
void reactor_defer(struct reactor *r, struct reactor_task *t);

/* ---- provided buffer rings (reactor thread only) */

struct reactor_buf_ring;

/* Registers buf_count buffers of buf_bytes each as buffer group group_id.
 * buf_count is a power of two <= 32768. Returns 0 or -errno. */
int reactor_buf_ring_create(struct reactor *r, uint16_t group_id, uint32_t buf_count,
                            uint32_t buf_bytes, struct reactor_buf_ring **out);
void reactor_buf_ring_destroy(struct reactor_buf_ring *br);

uint16_t reactor_buf_ring_group(const struct reactor_buf_ring *br);

/* The memory of buffer buf_id (from cqe_flags >> IORING_CQE_BUFFER_SHIFT). */
const uint8_t *reactor_buf_ring_buffer(const struct reactor_buf_ring *br, uint16_t buf_id);

/* Hands buffer buf_id back to the kernel. */
void reactor_buf_ring_recycle(struct reactor_buf_ring *br, uint16_t buf_id);

#endif
