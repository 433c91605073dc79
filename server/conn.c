/*
 * conn.c - connections: framing, request lifetime, in-order responses, flow
 * control and idle expiry; the request_* functions of request.h.
 *
 * Input. One multishot recv per connection takes buffers from the reactor's
 * provided buffer ring. Bytes are copied from the ring buffer into the frame
 * of the request being assembled (conn->partial), and the ring buffer goes
 * straight back to the kernel. The frame is allocated at its announced size
 * once the 4-byte size has been checked against socket_request_max_bytes:
 * in the request's arena, or from 64 KiB on in a buffer of its own, from a
 * small per-reactor pool of buffers already touched (see
 * CONN_FRAME_POOL_MIN_BYTES) or else from malloc, which maps it lazily, so
 * a peer that announces much and sends little does not make us touch more
 * memory than the pool holds. When a frame is complete the request is
 * queued and dispatched at once.
 *
 * Large frames skip the ring. Once a frame lacks at least
 * CONN_DIRECT_MIN_BYTES, the rest of it is read by one recv (MSG_WAITALL)
 * straight into the frame: the kernel copies the bytes once, from the socket
 * to where they stay, and our copy out of the ring (a few % of the broker's
 * CPU on produce) is gone, as are the ring's completions, one per buffer.
 * Only one read is ever in flight, which keeps the bytes in order: a
 * multishot recv in flight is cancelled first, and the bytes its last
 * completions bring are framed as usual; the direct recv is armed from its
 * final completion. After a large frame the next one is likely large too,
 * so it is read with a single-shot ring recv (one buffer: its size prefix
 * and first bytes), which cannot run ahead into its body as a multishot
 * recv would. The frame being filled belongs to the recv until its
 * completion: a connection closing meanwhile leaves it there, and the
 * completion frees it (the kernel may write into it until then).
 *
 * Flow control. A new frame is started only while the connection holds fewer
 * than max_inflight_requests_per_conn requests and its queued frames total
 * less than max_conn_buffer_bytes. Bytes that arrive past that point (the
 * kernel may still deliver what it had received before our cancel took effect)
 * are kept raw in conn->stash, and the recv is cancelled. When responses
 * drain, the stash is framed first, then the recv re-armed.
 *
 * Output. conn->queue holds the connection's requests in arrival order.
 * Completing a request schedules a flush (a reactor_defer task, so everything
 * completed in one loop iteration leaves in one sendmsg). A flush takes one
 * step at the head of the output, and only one step is in flight per
 * connection, which is what keeps responses in order:
 *
 *   - memory chunks: the ones of the complete requests at the head of the
 *     queue, up to the first file chunk, gathered into one sendmsg of at most
 *     CONN_IOV_MAX iovecs;
 *   - a file chunk: its bytes go through a stage borrowed from the
 *     conn_set's pool. With a buffer (copy mode, the default, or splice mode
 *     when no pipe can be made) a READ fills it and a SEND empties it; both
 *     complete inline when the pages are cached. With a pipe (splice mode),
 *     one submission links SPLICE file -> pipe to SPLICE pipe -> socket;
 *     both run in io_uring's workers, and the bytes go from the page cache
 *     to the socket as page references, never through user space. Which is
 *     faster where is in conn.h.
 *
 * A step's completions record how far into the head request it got
 * (head_chunk_index/offset counts bytes on the socket; staged_bytes counts
 * file bytes read into the stage but not yet sent), free the requests it
 * finished, and flush again. A pipe is filled only when empty, with at most
 * its capacity less the offset within the first page (a pipe slot holds one
 * page, and a short fill would break the link). The socket is non-blocking,
 * so a splice into it may stop short when the socket buffer is full; the
 * next step then links a POLL for POLLOUT before the splice. A file that
 * ends before its range does (a fill returning 0) closes the connection: the
 * response's size went out first and cannot be taken back. MSG_MORE /
 * SPLICE_F_MORE mark sends that more bytes follow at once, so the pieces of
 * a Fetch response (a header, then a file range, ...) fill whole segments.
 *
 * Lifetime. A connection is reference counted: one reference while it is
 * open, one per operation in flight (recv, direct recv, send, fill, poll,
 * drain), one per request object (partial, queued, orphaned, or dropped but
 * still filled by a direct recv), one while its flush task is queued.
 * Closing shuts the socket down (which ends any recv or send in flight),
 * frees the requests that are complete, and turns the ones still being
 * handled into orphans: out of the queue, still pointing at the connection,
 * freed by request_complete. The fd is closed and the memory freed when the last
 * reference goes, so a late request can still ask for its peer's address.
 * Freeing a request calls the release function of every file range it was
 * given; requests are never freed while an output step is in flight, so no
 * file is released while a splice or read still uses it. A stage holding
 * bytes when its connection closes is destroyed, not pooled.
 *
 * Invariants (asserted where they matter):
 *   - queue_count == length of the queue <= max_inflight_requests_per_conn;
 *   - a queued request is marked is_queued, an orphan is not, and only a
 *     closed or draining connection has orphans;
 *   - while a step is in flight (out_ops_inflight > 0), the requests it
 *     covers are complete, are the first ones in the queue, and are not
 *     freed;
 *   - staged_bytes > 0 only while the head chunk is a file chunk and the
 *     connection holds a stage; head_chunk_offset + staged_bytes <= its len;
 *   - state only moves forward: OPEN -> DRAINING -> CLOSED or OPEN -> CLOSED.
 */
#include "conn.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/logging.h"

#include "reactor.h"

#define CONN_IOV_MAX 64                         /* iovecs per sendmsg */
#define CONN_REQUEST_POOL_MAX 256               /* idle request objects kept per reactor */
#define CONN_CHUNKS_INITIAL 8
#define CONN_STASH_MIN_BYTES (64u * 1024)
/* A frame lacking at least this much is read straight into its buffer: past
 * it, the copy saved outweighs the recv calls (cancel, direct, re-arm)
 * spent. */
#define CONN_DIRECT_MIN_BYTES (64u * 1024)
/*
 * Frames of at least CONN_FRAME_POOL_MIN_BYTES have buffers of their own,
 * rounded up to a power of two, kept for the next frame of their class when
 * freed (up to CONN_FRAME_POOL_MAX_BYTES per reactor, emptied by the idle
 * sweep when unused): a buffer new from malloc is fresh mapped memory, whose
 * first touch faults and zeroes every page (5-8% of the broker's CPU on
 * produce, with a munmap at each free). Past the largest class a frame's
 * buffer is malloc'd and freed alone.
 */
#define CONN_FRAME_POOL_MIN_BYTES (64u * 1024)
#define CONN_FRAME_POOL_CLASSES 8               /* 64 KiB .. 8 MiB */
#define CONN_FRAME_POOL_MAX_BYTES (16u << 20)
#define CONN_FRAME_IN_ARENA 0xff
#define CONN_FRAME_ALONE 0xfe
/* Raw input may exceed max_conn_buffer_bytes by what the kernel delivers
 * between our decision to pause and the cancel taking effect: at most a
 * socket receive buffer (tcp_rmem[2] is 6 MiB by default). */
#define CONN_STASH_SLACK_BYTES (16u * 1024 * 1024)
#define CONN_PEER_BYTES 64
#define CONN_IDLE_SWEEP_MIN_MS 10
#define CONN_IDLE_SWEEP_MAX_MS 1000
#define CONN_BUF_GROUP 0
/* A stage: the pipe size asked for (fs.pipe-max-size is 1 MiB by default),
 * and the size of a copy-mode buffer (256 KiB measured 20-30% slower). A
 * connection holds one only while a file step is under way. */
#define CONN_STAGE_BYTES (1u << 20)
#define CONN_PIPE_POOL_MAX 64                   /* idle pipes kept per reactor: 2 fds each */
#define CONN_BUFFER_POOL_MAX 16                 /* idle buffers kept per reactor */
#define CONN_STAGE_LOG_INTERVAL_MS 10000

enum conn_state {
        CONN_OPEN,              /* reading and answering */
        CONN_DRAINING,          /* a request asked to close: flush earlier responses, read nothing */
        CONN_CLOSED,            /* socket shut down; waiting for references to go */
};

/* Where file bytes wait between the file and the socket. */
enum conn_stage_kind {
        CONN_STAGE_PIPE,
        CONN_STAGE_BUFFER,
};

struct conn_stage {
        struct conn_stage *next;        /* in its pool */
        enum conn_stage_kind kind;
        int pipe_fds[2];                /* read end, write end; -1 for a buffer */
        uint8_t *buf;                   /* NULL for a pipe */
        uint32_t cap_bytes;             /* pipe capacity or buffer size */
};

/* struct request plus what only this file needs; requests are only ever
 * created here, so every struct request * points into one of these. */
struct conn_request {
        struct request req;
        uint8_t *frame_buf;             /* req.frame, writable while assembling */
        uint8_t frame_class;            /* its conn_set frame pool class, or CONN_FRAME_IN_ARENA */
        struct conn_request *pool_next;
        bool is_queued;                 /* in its connection's queue, not an orphan */
};

struct conn {
        struct conn_set *set;
        int fd;
        enum conn_state state;
        uint32_t ref_count;

        struct reactor_op recv_op;      /* ring recv: multishot, or one buffer after a large frame */
        struct reactor_op direct_op;    /* recv straight into the partial frame */
        struct reactor_op send_op;      /* sendmsg of memory chunks */
        struct reactor_op fill_op;      /* file -> stage */
        struct reactor_op drain_op;     /* stage -> socket */
        struct reactor_op poll_op;      /* socket writable again, linked before a drain */
        struct reactor_task flush_task;
        uint32_t out_ops_inflight;      /* operations of the output step whose CQE is due */
        bool is_recv_armed;
        bool is_recv_cancel_sent;
        bool is_direct_armed;
        bool is_direct_cancel_sent;
        struct conn_request *direct_target;     /* the frame the direct recv fills; freed by its CQE if dropped */
        bool is_consuming;              /* inside conn_consume: the stash must not be freed */

        /* The file step in flight, and what its completions said. */
        struct conn_stage *stage;       /* borrowed while it holds or moves bytes */
        uint32_t staged_bytes;          /* read from the file, not yet on the socket */
        uint32_t stage_sent_bytes;      /* buffer stage: its first bytes, already sent */
        uint32_t fill_bytes;            /* asked of the fill in flight */
        int32_t fill_res;
        int32_t drain_res;
        bool has_fill;
        bool has_drain;
        bool is_socket_full;            /* the last splice into the socket stopped short */

        /* Open and draining connections, least recently active first. */
        struct conn *lru_prev;
        struct conn *lru_next;
        uint64_t active_ms;

        /* Framing. */
        uint8_t size_prefix[4];
        uint32_t size_prefix_have;
        struct conn_request *partial;
        uint32_t partial_have_bytes;
        uint32_t last_frame_bytes;      /* of the last frame completed: a large one predicts another */
        uint64_t input_bytes;           /* frame bytes of queued requests and the partial */

        /* Raw bytes received while not allowed to frame them. */
        uint8_t *stash;
        size_t stash_off;
        size_t stash_len;
        size_t stash_cap;

        /* Requests in arrival order; the head's response is sent first. */
        struct request *queue_head;
        struct request *queue_tail;
        uint32_t queue_count;
        uint32_t head_chunk_index;      /* send progress within the head request */
        size_t head_chunk_offset;

        struct msghdr msg;
        struct iovec iov[CONN_IOV_MAX];
        char peer[CONN_PEER_BYTES];
};

struct conn_set {
        struct reactor *reactor;
        struct conn_config cfg;
        struct reactor_buf_ring *bufs;
        struct conn *lru_head;
        struct conn *lru_tail;
        uint32_t open_count;            /* in the LRU list */
        uint32_t alive_count;           /* allocated */
        struct conn_request *pool;
        uint32_t pool_count;
        void *frame_pool[CONN_FRAME_POOL_CLASSES];      /* idle frame buffers, chained through their first bytes */
        uint64_t frame_pool_bytes;
        bool is_frame_pool_used;                        /* since the last idle sweep */
        reactor_timer_id idle_timer;
        uint64_t idle_sweep_ms;

        /* Idle stages for file chunks, by kind. */
        enum conn_file_send_mode file_send_mode;        /* never DEFAULT */
        struct conn_stage *pipe_pool;
        uint32_t pipe_pool_count;
        struct conn_stage *buffer_pool;
        uint32_t buffer_pool_count;
        uint32_t page_bytes;
        uint64_t stage_log_ms;          /* when a stage failure was last logged */
};

static void conn_close(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_update_flow(struct conn *c);

static void conn_log(const struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_log(const struct conn *c, const char *fmt, ...)
{
        char msg[256];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        log_warn("connection from %s: %s", c->peer, msg);
}

static struct conn_request *conn_request_of(const struct request *req)
{
        return container_of(req, struct conn_request, req);
}

static bool conn_is_sending(const struct conn *c)
{
        return c->out_ops_inflight > 0;
}

/* ---- stages */

static void conn_stage_destroy(struct conn_stage *st)
{
        if (st->kind == CONN_STAGE_PIPE) {
                close(st->pipe_fds[0]);
                close(st->pipe_fds[1]);
        }
        free(st->buf);
        free(st);
}

static struct conn_stage *conn_stage_create_pipe(struct conn_set *set, int *err)
{
        int fds[2];

        if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
                *err = errno;
                return NULL;
        }
        /* Larger than the default 64 KiB: fewer, larger splices. Refused past
         * fs.pipe-max-size or the user's pipe page quota; the pipe then keeps
         * the size it has, which only costs more steps. */
        (void)fcntl(fds[1], F_SETPIPE_SZ, (int)CONN_STAGE_BYTES);
        int size = fcntl(fds[1], F_GETPIPE_SZ);
        if (size < (int)set->page_bytes) {
                *err = size < 0 ? errno : EINVAL;
                goto out_close;
        }
        struct conn_stage *st = calloc(1, sizeof(*st));
        if (!st) {
                *err = ENOMEM;
                goto out_close;
        }
        st->kind = CONN_STAGE_PIPE;
        st->pipe_fds[0] = fds[0];
        st->pipe_fds[1] = fds[1];
        st->cap_bytes = (uint32_t)size;
        return st;

out_close:
        close(fds[0]);
        close(fds[1]);
        return NULL;
}

static struct conn_stage *conn_stage_create_buffer(void)
{
        struct conn_stage *st = calloc(1, sizeof(*st));
        if (!st)
                return NULL;
        st->buf = malloc(CONN_STAGE_BYTES);
        if (!st->buf) {
                free(st);
                return NULL;
        }
        st->kind = CONN_STAGE_BUFFER;
        st->pipe_fds[0] = -1;
        st->pipe_fds[1] = -1;
        st->cap_bytes = CONN_STAGE_BYTES;
        return st;
}

/* A stage for the next file step: a pipe in splice mode, a buffer in copy
 * mode or when no pipe can be made (out of file descriptors, say: a
 * connection should not fail for that). NULL when memory runs out. */
static struct conn_stage *conn_stage_get(struct conn_set *set)
{
        struct conn_stage *st;

        if (set->file_send_mode == CONN_FILE_SEND_SPLICE) {
                if (set->pipe_pool) {
                        st = set->pipe_pool;
                        set->pipe_pool = st->next;
                        set->pipe_pool_count--;
                        st->next = NULL;
                        return st;
                }
                int err = 0;
                st = conn_stage_create_pipe(set, &err);
                if (st)
                        return st;
                uint64_t now_ms = reactor_now_ms();
                if (!set->stage_log_ms || now_ms - set->stage_log_ms >= CONN_STAGE_LOG_INTERVAL_MS) {
                        set->stage_log_ms = now_ms;
                        log_warn("connections: cannot make a pipe to splice file bytes (%s); "
                                 "copying them through a buffer instead", strerror(err));
                }
        }
        if (set->buffer_pool) {
                st = set->buffer_pool;
                set->buffer_pool = st->next;
                set->buffer_pool_count--;
                st->next = NULL;
                return st;
        }
        return conn_stage_create_buffer();
}

/* Gives a stage back to the pool, unless it may hold bytes (a pipe still
 * holding some would hand them to the next connection) or the pool is full. */
static void conn_stage_put(struct conn_set *set, struct conn_stage *st, bool is_empty)
{
        assert(!st->next);
        if (st->kind == CONN_STAGE_PIPE && is_empty && set->pipe_pool_count < CONN_PIPE_POOL_MAX) {
                st->next = set->pipe_pool;
                set->pipe_pool = st;
                set->pipe_pool_count++;
                return;
        }
        if (st->kind == CONN_STAGE_BUFFER && set->buffer_pool_count < CONN_BUFFER_POOL_MAX) {
                st->next = set->buffer_pool;
                set->buffer_pool = st;
                set->buffer_pool_count++;
                return;
        }
        conn_stage_destroy(st);
}

static void conn_stage_pool_destroy(struct conn_stage *pool, uint32_t count)
{
        while (pool) {
                struct conn_stage *next = pool->next;
                assert(count > 0);
                count--;
                conn_stage_destroy(pool);
                pool = next;
        }
        assert(count == 0);
}

/* Returns the connection's stage once no step uses it; the bytes it still
 * holds, if any, are dropped with it. */
static void conn_put_stage(struct conn *c)
{
        assert(!conn_is_sending(c));
        if (!c->stage)
                return;
        conn_stage_put(c->set, c->stage, c->staged_bytes == 0);
        c->stage = NULL;
        c->staged_bytes = 0;
        c->stage_sent_bytes = 0;
        c->is_socket_full = false;
}

/* ---- references */

static void conn_get(struct conn *c)
{
        assert(c->ref_count > 0);
        c->ref_count++;
}

static void conn_free(struct conn *c)
{
        struct conn_set *set = c->set;
        assert(c->state == CONN_CLOSED);
        assert(!c->partial && !c->queue_head && c->queue_count == 0);
        assert(!c->is_recv_armed && !conn_is_sending(c) && !c->flush_task.is_queued);
        assert(!c->is_direct_armed && !c->direct_target);
        assert(!c->stage && c->staged_bytes == 0);
        close(c->fd);
        free(c->stash);
        assert(set->alive_count > 0);
        set->alive_count--;
        if (set->cfg.shared_conn_count)
                atomic_fetch_sub(set->cfg.shared_conn_count, 1);
        free(c);
}

static void conn_put(struct conn *c)
{
        assert(c->ref_count > 0);
        if (--c->ref_count == 0)
                conn_free(c);
}

/* ---- frame buffers */

static uint64_t conn_frame_class_bytes(uint32_t class)
{
        return (uint64_t)CONN_FRAME_POOL_MIN_BYTES << class;
}

/* A buffer for a frame of frame_len >= CONN_FRAME_POOL_MIN_BYTES, and its
 * class (CONN_FRAME_ALONE past the largest). NULL when memory runs out. */
static uint8_t *conn_frame_get(struct conn_set *set, uint32_t frame_len, uint8_t *class_out)
{
        assert(frame_len >= CONN_FRAME_POOL_MIN_BYTES);
        uint32_t class = 0;
        while (class < CONN_FRAME_POOL_CLASSES && conn_frame_class_bytes(class) < frame_len)
                class++;
        if (class == CONN_FRAME_POOL_CLASSES) {
                *class_out = CONN_FRAME_ALONE;
                return malloc(frame_len);
        }
        *class_out = (uint8_t)class;
        set->is_frame_pool_used = true;
        void *buf = set->frame_pool[class];
        if (buf) {
                memcpy(&set->frame_pool[class], buf, sizeof(void *));
                assert(set->frame_pool_bytes >= conn_frame_class_bytes(class));
                set->frame_pool_bytes -= conn_frame_class_bytes(class);
                return buf;
        }
        return malloc(conn_frame_class_bytes(class));
}

static void conn_frame_put(struct conn_set *set, uint8_t *buf, uint8_t class)
{
        if (class == CONN_FRAME_ALONE ||
            set->frame_pool_bytes + conn_frame_class_bytes(class) > CONN_FRAME_POOL_MAX_BYTES) {
                free(buf);
                return;
        }
        assert(class < CONN_FRAME_POOL_CLASSES);
        memcpy(buf, &set->frame_pool[class], sizeof(void *));
        set->frame_pool[class] = buf;
        set->frame_pool_bytes += conn_frame_class_bytes(class);
}

static void conn_frame_pool_empty(struct conn_set *set)
{
        for (uint32_t class = 0; class < CONN_FRAME_POOL_CLASSES; class++) {
                void *buf = set->frame_pool[class];
                while (buf) {
                        void *next;
                        memcpy(&next, buf, sizeof(next));
                        free(buf);
                        buf = next;
                }
                set->frame_pool[class] = NULL;
        }
        set->frame_pool_bytes = 0;
}

/* ---- request objects */

/* Calls the release function of every file range of the request, once. */
static void conn_request_release_files(struct request *req)
{
        struct response_file *f = req->files;
        req->files = NULL;
        while (f) {
                struct response_file *next = f->next;  /* arena memory, still ours */
                if (f->release)
                        f->release(f->release_arg);
                f = next;
        }
}

static void conn_request_release(struct conn_set *set, struct conn_request *cr)
{
        conn_request_release_files(&cr->req);
        if (cr->frame_class != CONN_FRAME_IN_ARENA)
                conn_frame_put(set, cr->frame_buf, cr->frame_class);
        cr->frame_class = CONN_FRAME_IN_ARENA;
        if (set->pool_count < CONN_REQUEST_POOL_MAX) {
                arena_reset(&cr->req.arena);    /* keeps one block for the next request */
                cr->pool_next = set->pool;
                set->pool = cr;
                set->pool_count++;
                return;
        }
        arena_free(&cr->req.arena);
        free(cr);
}

/* A request for a frame of frame_len bytes, its frame allocated but empty.
 * Holds a reference on c. NULL when memory or the arena limit runs out. */
static struct conn_request *conn_request_alloc(struct conn *c, uint32_t frame_len)
{
        struct conn_set *set = c->set;
        struct conn_request *cr = set->pool;
        struct arena arena;

        if (cr) {
                set->pool = cr->pool_next;
                set->pool_count--;
                arena = cr->req.arena;
        } else {
                cr = malloc(sizeof(*cr));
                if (!cr)
                        return NULL;
                arena_init(&arena, 0);
        }
        memset(cr, 0, sizeof(*cr));
        /* The arena keeps its first block across requests; only its limit is
         * per request: the configured arena bytes, plus the frame if it is
         * there, plus the block a pooled arena already holds. */
        bool is_frame_apart = frame_len >= CONN_FRAME_POOL_MIN_BYTES;
        arena.limit_bytes = set->cfg.request_arena_max_bytes + (is_frame_apart ? 0 : (uint64_t)frame_len + 16) +
                            ARENA_BLOCK_BYTES;
        cr->req.arena = arena;
        cr->frame_class = CONN_FRAME_IN_ARENA;

        uint8_t *frame = is_frame_apart ? conn_frame_get(set, frame_len, &cr->frame_class)
                                        : arena_alloc(&cr->req.arena, frame_len);
        if (!frame) {
                cr->frame_class = CONN_FRAME_IN_ARENA;
                conn_request_release(set, cr);
                return NULL;
        }
        cr->frame_buf = frame;
        cr->req.frame = frame;
        cr->req.frame_len = frame_len;
        cr->req.conn = c;
        cr->req.reactor = set->reactor;
        conn_get(c);
        return cr;
}

static void conn_request_free(struct conn_request *cr)
{
        struct conn *c = cr->req.conn;
        assert(!cr->is_queued);
        assert(cr->req.next == NULL);
        conn_request_release(c->set, cr);
        conn_put(c);
}

/* ---- the in-order queue */

static void conn_enqueue(struct conn *c, struct conn_request *cr)
{
        struct request *req = &cr->req;
        assert(!cr->is_queued && req->next == NULL);
        assert(c->queue_count < c->set->cfg.max_inflight_requests_per_conn);
        if (c->queue_tail)
                c->queue_tail->next = req;
        else
                c->queue_head = req;
        c->queue_tail = req;
        c->queue_count++;
        cr->is_queued = true;
}

static struct conn_request *conn_dequeue_head(struct conn *c)
{
        struct request *req = c->queue_head;
        assert(req && c->queue_count > 0);
        c->queue_head = req->next;
        if (!c->queue_head)
                c->queue_tail = NULL;
        req->next = NULL;
        c->queue_count--;
        assert(c->input_bytes >= req->frame_len);
        c->input_bytes -= req->frame_len;
        c->head_chunk_index = 0;
        c->head_chunk_offset = 0;
        struct conn_request *cr = conn_request_of(req);
        cr->is_queued = false;
        return cr;
}

/* Frees a request leaving the queue of a closing connection, or leaves it to
 * its handler as an orphan if it is still being handled. */
static void conn_drop_request(struct conn_request *cr)
{
        assert(!cr->is_queued);
        if (cr->req.is_complete)
                conn_request_free(cr);
}

/* Drops every request after req (Kafka closes the connection at the request
 * that asked for it; later requests get no answer). */
static void conn_truncate_after(struct conn *c, struct request *req)
{
        struct request *rest = req->next;
        req->next = NULL;
        c->queue_tail = req;
        while (rest) {
                struct request *next = rest->next;
                struct conn_request *cr = conn_request_of(rest);
                assert(cr->is_queued);
                rest->next = NULL;
                cr->is_queued = false;
                assert(c->queue_count > 0);
                c->queue_count--;
                c->input_bytes -= rest->frame_len;
                conn_drop_request(cr);
                rest = next;
        }
}

/* Empties the queue of a closed connection and gives its stage back,
 * unless a step still uses them. */
static void conn_reap_queue(struct conn *c)
{
        assert(c->state == CONN_CLOSED);
        if (conn_is_sending(c))
                return;
        conn_put_stage(c);
        uint32_t budget = c->queue_count;
        while (c->queue_head && budget > 0) {
                budget--;
                conn_drop_request(conn_dequeue_head(c));
        }
        assert(!c->queue_head && c->queue_count == 0);
}

static bool conn_is_handling(const struct conn *c)
{
        for (const struct request *req = c->queue_head; req; req = req->next)
                if (!req->is_complete)
                        return true;
        return false;
}

/* ---- activity and idle expiry */

static void conn_lru_remove(struct conn *c)
{
        struct conn_set *set = c->set;
        if (c->lru_prev)
                c->lru_prev->lru_next = c->lru_next;
        else
                set->lru_head = c->lru_next;
        if (c->lru_next)
                c->lru_next->lru_prev = c->lru_prev;
        else
                set->lru_tail = c->lru_prev;
        c->lru_prev = NULL;
        c->lru_next = NULL;
}

static void conn_lru_append(struct conn *c)
{
        struct conn_set *set = c->set;
        c->lru_prev = set->lru_tail;
        c->lru_next = NULL;
        if (set->lru_tail)
                set->lru_tail->lru_next = c;
        else
                set->lru_head = c;
        set->lru_tail = c;
}

static void conn_touch(struct conn *c)
{
        assert(c->state != CONN_CLOSED);
        c->active_ms = reactor_now_ms();
        if (c->set->lru_tail != c) {
                conn_lru_remove(c);
                conn_lru_append(c);
        }
}

/* A plain idle connection is closed silently, as Kafka does; one that was
 * sending a frame too slowly, or not reading its responses, is the kind of
 * client an operator wants to hear about. */
static void conn_log_idle_close(const struct conn *c, uint64_t idle_ms)
{
        if (c->partial)
                conn_log(c, "a %u-byte frame still incomplete (%u bytes received) after %llu ms "
                         "(connections.max.idle.ms), closing", c->partial->req.frame_len, c->partial_have_bytes,
                         (unsigned long long)idle_ms);
        else if (c->size_prefix_have > 0)
                conn_log(c, "a frame size prefix still incomplete after %llu ms (connections.max.idle.ms), closing",
                         (unsigned long long)idle_ms);
        else if (c->queue_head)
                conn_log(c, "%u response(s) not read by the peer for %llu ms (connections.max.idle.ms), closing",
                         c->queue_count, (unsigned long long)idle_ms);
}

static void conn_set_on_idle_timer(void *arg)
{
        struct conn_set *set = arg;
        uint64_t now_ms = reactor_now_ms();
        uint64_t idle_ms = set->cfg.connections_max_idle_ms;
        uint32_t budget = set->open_count;

        set->idle_timer = 0;
        if (!set->is_frame_pool_used)
                conn_frame_pool_empty(set);     /* no large frame since the last sweep */
        set->is_frame_pool_used = false;
        while (set->lru_head && budget-- > 0) {
                struct conn *c = set->lru_head;
                if (now_ms - c->active_ms < idle_ms)
                        break;
                if (conn_is_handling(c)) {
                        /* Waiting on us (a long-poll Fetch, an fsync) is not idleness. */
                        conn_touch(c);
                        continue;
                }
                conn_log_idle_close(c, now_ms - c->active_ms);
                conn_close(c);
        }
        set->idle_timer = reactor_timer_add(set->reactor, set->idle_sweep_ms,
                                            conn_set_on_idle_timer, set);
        if (!set->idle_timer)
                log_error("connections: cannot re-arm idle timer; idle connections "
                          "will not be closed");
}

/* ---- stash */

static void conn_stash_free(struct conn *c)
{
        assert(!c->is_consuming);
        free(c->stash);
        c->stash = NULL;
        c->stash_off = 0;
        c->stash_len = 0;
        c->stash_cap = 0;
}

static bool conn_has_stash(const struct conn *c)
{
        return c->stash_off < c->stash_len;
}

static int conn_stash_append(struct conn *c, const uint8_t *p, size_t len)
{
        size_t held = c->stash_len - c->stash_off;
        size_t limit = c->set->cfg.max_conn_buffer_bytes + CONN_STASH_SLACK_BYTES;

        assert(!c->is_consuming);
        if (held + len > limit)
                return -ENOBUFS;
        if (c->stash_off > 0) {
                memmove(c->stash, c->stash + c->stash_off, held);
                c->stash_off = 0;
                c->stash_len = held;
        }
        if (held + len > c->stash_cap) {
                size_t cap = c->stash_cap ? c->stash_cap * 2 : CONN_STASH_MIN_BYTES;
                if (cap < held + len)
                        cap = held + len;
                if (cap > limit)
                        cap = limit;
                uint8_t *stash = realloc(c->stash, cap);
                if (!stash)
                        return -ENOMEM;
                c->stash = stash;
                c->stash_cap = cap;
        }
        memcpy(c->stash + c->stash_len, p, len);
        c->stash_len += len;
        return 0;
}

/* ---- framing */

static bool conn_can_start_frame(const struct conn *c)
{
        const struct conn_config *cfg = &c->set->cfg;
        if (c->state != CONN_OPEN)
                return false;
        if (c->queue_count >= cfg->max_inflight_requests_per_conn)
                return false;
        /* One frame is always allowed, however large, or nothing could progress. */
        return c->queue_count == 0 || c->input_bytes < cfg->max_conn_buffer_bytes;
}

static void conn_finish_frame(struct conn *c)
{
        struct conn_request *cr = c->partial;
        assert(cr && c->partial_have_bytes == cr->req.frame_len);
        c->partial = NULL;
        c->partial_have_bytes = 0;
        c->last_frame_bytes = cr->req.frame_len;
        conn_touch(c);
        cr->req.received_ns = reactor_now_ns();
        conn_enqueue(c, cr);
        /* May complete the request, or even ask to close, before returning. */
        c->set->cfg.dispatch(&cr->req, c->set->cfg.dispatch_ctx);
}

static int conn_start_frame(struct conn *c, int32_t size)
{
        const struct conn_config *cfg = &c->set->cfg;
        assert(!c->partial);
        if (size < 0 || (uint32_t)size > cfg->socket_request_max_bytes) {
                /* Kafka's InvalidReceiveException: refuse before allocating. */
                conn_log(c, "frame size %d outside 0..%u (socket.request.max.bytes), closing",
                         size, cfg->socket_request_max_bytes);
                return -EMSGSIZE;
        }
        struct conn_request *cr = conn_request_alloc(c, (uint32_t)size);
        if (!cr) {
                conn_log(c, "no memory for a %d-byte frame, closing", size);
                return -ENOMEM;
        }
        c->partial = cr;
        c->partial_have_bytes = 0;
        conn_touch(c);          /* the frame has idle_ms to arrive whole: see conn_on_idle_timer */
        if (size == 0)
                conn_finish_frame(c);
        return 0;
}

/* Frames bytes from p; returns how many it used. Stops early when the
 * connection may not start another frame or stops being open. */
static size_t conn_consume(struct conn *c, const uint8_t *p, size_t len)
{
        size_t used = 0;

        assert(c->is_consuming);
        while (used < len && c->state == CONN_OPEN) {
                if (c->partial) {
                        struct request *req = &c->partial->req;
                        size_t need = req->frame_len - c->partial_have_bytes;
                        size_t n = len - used < need ? len - used : need;
                        memcpy(c->partial->frame_buf + c->partial_have_bytes, p + used, n);
                        c->partial_have_bytes += (uint32_t)n;
                        c->input_bytes += n;
                        used += n;
                        if (c->partial_have_bytes == req->frame_len)
                                conn_finish_frame(c);
                        continue;
                }
                if (c->size_prefix_have == 0 && !conn_can_start_frame(c))
                        break;
                size_t n = 4 - c->size_prefix_have;
                if (n > len - used)
                        n = len - used;
                memcpy(c->size_prefix + c->size_prefix_have, p + used, n);
                c->size_prefix_have += (uint32_t)n;
                used += n;
                if (c->size_prefix_have < 4)
                        break;
                c->size_prefix_have = 0;
                int32_t size = (int32_t)(((uint32_t)c->size_prefix[0] << 24) |
                                         ((uint32_t)c->size_prefix[1] << 16) |
                                         ((uint32_t)c->size_prefix[2] << 8) |
                                         (uint32_t)c->size_prefix[3]);
                if (conn_start_frame(c, size) != 0) {
                        conn_close(c);
                        break;
                }
        }
        return used;
}

static void conn_drain_stash(struct conn *c)
{
        if (!conn_has_stash(c))
                return;
        c->is_consuming = true;
        while (c->state == CONN_OPEN && conn_has_stash(c)) {
                size_t used = conn_consume(c, c->stash + c->stash_off, c->stash_len - c->stash_off);
                c->stash_off += used;
                if (used == 0)
                        break;
        }
        c->is_consuming = false;
        if (c->state != CONN_OPEN || !conn_has_stash(c))
                conn_stash_free(c);
}

static void conn_receive(struct conn *c, const uint8_t *p, size_t len)
{
        size_t used = 0;

        assert(c->state == CONN_OPEN);
        if (!conn_has_stash(c)) {
                c->is_consuming = true;
                used = conn_consume(c, p, len);
                c->is_consuming = false;
                if (c->state != CONN_OPEN) {
                        conn_stash_free(c);
                        return;
                }
        }
        if (used < len && conn_stash_append(c, p + used, len - used) != 0) {
                conn_log(c, "more than %llu bytes of input buffered (max_conn_buffer_bytes), closing",
                         (unsigned long long)c->set->cfg.max_conn_buffer_bytes);
                conn_close(c);
        }
}

/* ---- recv */

static void conn_on_recv(struct reactor_op *op, int32_t res, uint32_t cqe_flags);

/* Arms the ring recv: multishot, or for one buffer only (is_multishot
 * false) when the next frame is expected to be large and read directly. */
static int conn_arm_recv(struct conn *c, bool is_multishot)
{
        assert(!c->is_recv_armed && !c->is_direct_armed);
        assert(c->state == CONN_OPEN);
        struct io_uring_sqe *sqe = reactor_prep_op(c->set->reactor, &c->recv_op);
        if (!sqe)
                return -EBUSY;
        if (is_multishot)
                io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
        else
                io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);     /* length 0: the buffer's */
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = reactor_buf_ring_group(c->set->bufs);
        c->is_recv_armed = true;
        c->is_recv_cancel_sent = false;
        conn_get(c);
        return 0;
}

static void conn_cancel_recv(struct conn *c)
{
        if (!c->is_recv_armed || c->is_recv_cancel_sent)
                return;
        struct io_uring_sqe *sqe = reactor_prep_untracked(c->set->reactor);
        if (!sqe)
                return;         /* keep receiving; the stash limit still bounds us */
        io_uring_prep_cancel(sqe, &c->recv_op, 0);
        c->is_recv_cancel_sent = true;
}

/* Stops the direct recv of a connection that reads no more. Without an SQE
 * the recv still ends: closing shuts the socket down. */
static void conn_cancel_direct(struct conn *c)
{
        if (!c->is_direct_armed || c->is_direct_cancel_sent)
                return;
        struct io_uring_sqe *sqe = reactor_prep_untracked(c->set->reactor);
        if (!sqe)
                return;
        io_uring_prep_cancel(sqe, &c->direct_op, 0);
        c->is_direct_cancel_sent = true;
}

/* Forgets the frame being assembled. A direct recv filling it keeps it
 * until its completion, which frees it. */
static void conn_drop_partial(struct conn *c)
{
        struct conn_request *cr = c->partial;
        if (!cr)
                return;
        c->partial = NULL;
        assert(c->input_bytes >= c->partial_have_bytes);
        c->input_bytes -= c->partial_have_bytes;
        c->partial_have_bytes = 0;
        if (c->is_direct_armed && c->direct_target == cr)
                return;
        conn_request_free(cr);
}

static void conn_log_peer_gone_mid_frame(const struct conn *c)
{
        if (c->state == CONN_OPEN && (c->partial || c->size_prefix_have > 0))
                log_info("connection from %s: closed by the peer in the middle of a %u-byte frame "
                         "(%u bytes received)", c->peer,
                         c->partial ? c->partial->req.frame_len : 0,
                         c->partial ? c->partial_have_bytes : c->size_prefix_have);
}

static void conn_on_recv(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct conn *c = container_of(op, struct conn, recv_op);
        bool is_final = !(cqe_flags & IORING_CQE_F_MORE);

        assert(c->is_recv_armed);
        conn_get(c);
        if (is_final) {
                c->is_recv_armed = false;
                c->is_recv_cancel_sent = false;
        }
        if (res > 0) {
                assert(cqe_flags & IORING_CQE_F_BUFFER);
                if (c->state == CONN_OPEN) {
                        uint16_t buf_id = (uint16_t)(cqe_flags >> IORING_CQE_BUFFER_SHIFT);
                        conn_receive(c, reactor_buf_ring_buffer(c->set->bufs, buf_id), (size_t)res);
                }
        } else if (res == 0) {
                conn_log_peer_gone_mid_frame(c);
                conn_close(c);          /* the peer closed its side */
        } else if (res != -ENOBUFS && res != -ECANCELED) {
                /* ECONNRESET and friends: nothing to tell an operator. */
                conn_close(c);
        }
        /* Every buffer the kernel picked goes back, filled or not. */
        if (cqe_flags & IORING_CQE_F_BUFFER)
                reactor_buf_ring_recycle(c->set->bufs, (uint16_t)(cqe_flags >> IORING_CQE_BUFFER_SHIFT));
        if (is_final)
                conn_put(c);            /* the recv's reference */
        conn_update_flow(c);
        conn_put(c);
}

static void conn_on_direct(struct reactor_op *op, int32_t res, uint32_t cqe_flags);

/* Reads the rest of the partial frame straight into it. */
static int conn_arm_direct(struct conn *c)
{
        struct conn_request *cr = c->partial;
        assert(cr && !c->is_recv_armed && !c->is_direct_armed);
        assert(c->state == CONN_OPEN && c->partial_have_bytes < cr->req.frame_len);
        struct io_uring_sqe *sqe = reactor_prep_op(c->set->reactor, &c->direct_op);
        if (!sqe)
                return -EBUSY;
        /* MSG_WAITALL: io_uring retries short reads itself, so the frame
         * takes one completion, with what arrived if the peer goes. */
        io_uring_prep_recv(sqe, c->fd, cr->frame_buf + c->partial_have_bytes,
                           cr->req.frame_len - c->partial_have_bytes, MSG_WAITALL);
        c->is_direct_armed = true;
        c->is_direct_cancel_sent = false;
        c->direct_target = cr;
        conn_get(c);
        return 0;
}

static void conn_on_direct(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct conn *c = container_of(op, struct conn, direct_op);
        struct conn_request *cr = c->direct_target;
        (void)cqe_flags;

        assert(c->is_direct_armed && cr);
        conn_get(c);
        c->is_direct_armed = false;
        c->is_direct_cancel_sent = false;
        c->direct_target = NULL;
        if (c->partial != cr) {
                /* Dropped while we filled it: the connection closed or drains. */
                assert(c->state != CONN_OPEN);
                conn_request_free(cr);
        } else if (res > 0) {
                assert(c->state == CONN_OPEN);
                assert((uint32_t)res <= cr->req.frame_len - c->partial_have_bytes);
                c->partial_have_bytes += (uint32_t)res;
                c->input_bytes += (uint32_t)res;
                if (c->partial_have_bytes == cr->req.frame_len)
                        conn_finish_frame(c);
        } else {
                if (res == 0)
                        conn_log_peer_gone_mid_frame(c);
                conn_close(c);          /* the peer went (0), or ECONNRESET and friends */
        }
        conn_put(c);                    /* the recv's reference */
        conn_update_flow(c);
        conn_put(c);
}

/* True if the rest of the partial frame is worth a recv of its own. */
static bool conn_wants_direct(const struct conn *c)
{
        return c->partial && !conn_has_stash(c) &&
               c->partial->req.frame_len - c->partial_have_bytes >= CONN_DIRECT_MIN_BYTES;
}

/* Decides whether and how the connection reads: frames stashed input if it
 * may, then arms or cancels a recv. Called whenever a limit may have
 * changed, and after every read's completion. */
static void conn_update_flow(struct conn *c)
{
        if (c->state != CONN_OPEN)
                return;
        conn_drain_stash(c);
        if (c->state != CONN_OPEN || c->is_direct_armed)
                return;
        if (conn_wants_direct(c)) {
                /* The frame is admitted already: its rest is read whatever
                 * the limits on new frames say. */
                if (c->is_recv_armed) {
                        conn_cancel_recv(c);    /* its final completion comes back here */
                        return;
                }
                if (conn_arm_direct(c) != 0) {
                        conn_log(c, "submission queue full, cannot read, closing");
                        conn_close(c);
                }
                return;
        }
        bool want_recv = !conn_has_stash(c) && conn_can_start_frame(c);
        if (want_recv && !c->is_recv_armed) {
                if (conn_arm_recv(c, c->last_frame_bytes < CONN_DIRECT_MIN_BYTES) != 0) {
                        conn_log(c, "submission queue full, cannot read, closing");
                        conn_close(c);
                }
        } else if (!want_recv) {
                conn_cancel_recv(c);
        }
}

/* ---- send */

/* Accounts sent bytes against the queue head: frees each request whose
 * response has been sent whole and notes how far into the next one we got.
 * With sent == 0 it just frees leading requests that have nothing to send. */
static void conn_advance_sent(struct conn *c, size_t sent)
{
        uint32_t budget = c->queue_count;
        while (c->queue_head && budget-- > 0) {
                struct request *req = c->queue_head;
                if (!req->is_complete || req->must_close)
                        break;
                while (c->head_chunk_index < req->chunk_count) {
                        const struct response_chunk *ch = &req->chunks[c->head_chunk_index];
                        assert(ch->len > c->head_chunk_offset);
                        size_t left = ch->len - c->head_chunk_offset;
                        if (sent < left) {
                                c->head_chunk_offset += sent;
                                return;
                        }
                        sent -= left;
                        c->head_chunk_index++;
                        c->head_chunk_offset = 0;
                }
                conn_request_free(conn_dequeue_head(c));
        }
        assert(sent == 0);
}

/* True if complete response bytes follow the head chunk, so the step after
 * the current one will send at once. */
static bool conn_has_more_after_head_chunk(const struct conn *c)
{
        const struct request *req = c->queue_head;
        assert(req && req->is_complete);
        if (c->head_chunk_index + 1 < req->chunk_count)
                return true;
        const struct request *next = req->next;
        return next && next->is_complete && !next->must_close && next->chunk_count > 0;
}

static void conn_on_send(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct conn *c = container_of(op, struct conn, send_op);
        (void)cqe_flags;
        assert(c->out_ops_inflight == 1 && !c->has_fill && !c->has_drain);
        c->out_ops_inflight = 0;

        if (c->state == CONN_CLOSED) {
                conn_reap_queue(c);
        } else if (res <= 0) {
                if (res != -EPIPE && res != -ECONNRESET && res != 0)
                        conn_log(c, "send failed: %s, closing", strerror(-res));
                conn_close(c);
        } else {
                conn_touch(c);
                conn_advance_sent(c, (size_t)res);
                conn_flush(c);
        }
        conn_put(c);            /* the send's reference */
}

/* Sends the memory chunks from the head of the output on, across complete
 * requests, up to the first file chunk, in one sendmsg. */
static int conn_send_memory(struct conn *c)
{
        uint32_t iov_count = 0;
        uint32_t chunk_index = c->head_chunk_index;
        size_t offset = c->head_chunk_offset;
        bool is_more = false;

        assert(c->staged_bytes == 0);
        for (struct request *req = c->queue_head;
             req && req->is_complete && !req->must_close && !is_more; req = req->next) {
                for (; chunk_index < req->chunk_count; chunk_index++) {
                        const struct response_chunk *ch = &req->chunks[chunk_index];
                        if (ch->file || iov_count == CONN_IOV_MAX) {
                                is_more = true;         /* the next step follows at once */
                                break;
                        }
                        assert(ch->ptr && ch->len > offset);
                        c->iov[iov_count].iov_base = (void *)((const uint8_t *)ch->ptr + offset);
                        c->iov[iov_count].iov_len = ch->len - offset;
                        iov_count++;
                        offset = 0;
                }
                chunk_index = 0;
        }
        assert(iov_count > 0);

        struct io_uring_sqe *sqe = reactor_prep_op(c->set->reactor, &c->send_op);
        if (!sqe)
                return -EBUSY;
        memset(&c->msg, 0, sizeof(c->msg));
        c->msg.msg_iov = c->iov;
        c->msg.msg_iovlen = iov_count;
        /* MSG_WAITALL: io_uring retries short sends on stream sockets itself. */
        io_uring_prep_sendmsg(sqe, c->fd, &c->msg,
                              MSG_NOSIGNAL | MSG_WAITALL | (is_more ? MSG_MORE : 0));
        c->out_ops_inflight = 1;
        conn_get(c);
        return 0;
}

/* Starts the next step of the file chunk at the head of the output. An
 * empty stage is filled from the file (a pipe with the splice into the
 * socket linked behind the fill); a stage holding bytes is drained into the
 * socket, after a POLLOUT if the socket was full last time. */
static int conn_start_file_step(struct conn *c)
{
        struct conn_set *set = c->set;
        struct reactor *r = set->reactor;
        const struct request *req = c->queue_head;
        const struct response_chunk *ch = &req->chunks[c->head_chunk_index];
        const struct response_file *f = ch->file;
        struct io_uring_sqe *sqe;

        assert(f && !conn_is_sending(c));
        assert(c->head_chunk_offset + c->staged_bytes <= ch->len);
        if (!c->stage) {
                assert(c->staged_bytes == 0);
                c->stage = conn_stage_get(set);
                if (!c->stage)
                        return -ENOMEM;
        }
        struct conn_stage *st = c->stage;
        bool is_pipe = st->kind == CONN_STAGE_PIPE;
        uint64_t read_bytes = c->head_chunk_offset + c->staged_bytes;
        uint64_t file_pos = f->offset + read_bytes;
        uint32_t fill_bytes = 0;
        if (c->staged_bytes == 0) {
                /* A pipe slot holds one page: a range starting mid-page
                 * needs one slot more than its length says. */
                uint64_t room = st->cap_bytes - (is_pipe ? file_pos % set->page_bytes : 0);
                uint64_t left = ch->len - read_bytes;
                fill_bytes = (uint32_t)(left < room ? left : room);
                assert(fill_bytes > 0);
        }
        bool has_fill = fill_bytes > 0;
        bool has_drain = is_pipe || !has_fill;
        bool has_poll = is_pipe && !has_fill && c->is_socket_full;
        uint32_t drain_bytes = has_fill ? fill_bytes : c->staged_bytes;
        bool is_more = read_bytes + fill_bytes < ch->len || conn_has_more_after_head_chunk(c);
        uint32_t op_count = (uint32_t)has_fill + (uint32_t)has_poll + (uint32_t)has_drain;

        assert(!st->buf || c->stage_sent_bytes + drain_bytes <= st->cap_bytes);
        if (reactor_reserve_sqes(r, op_count) != 0)
                return -EBUSY;
        if (has_fill) {
                sqe = reactor_prep_op(r, &c->fill_op);
                assert(sqe);
                if (is_pipe) {
                        io_uring_prep_splice(sqe, f->fd, (int64_t)file_pos, st->pipe_fds[1], -1,
                                             fill_bytes, 0);
                        sqe->flags |= IOSQE_IO_LINK;    /* a short fill cancels the drain */
                } else {
                        io_uring_prep_read(sqe, f->fd, st->buf, fill_bytes, file_pos);
                }
        }
        if (has_poll) {
                sqe = reactor_prep_op(r, &c->poll_op);
                assert(sqe);
                io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
                sqe->flags |= IOSQE_IO_LINK;
        }
        if (has_drain) {
                sqe = reactor_prep_op(r, &c->drain_op);
                assert(sqe);
                if (is_pipe)
                        io_uring_prep_splice(sqe, st->pipe_fds[0], -1, c->fd, -1, drain_bytes,
                                             is_more ? SPLICE_F_MORE : 0);
                else
                        io_uring_prep_send(sqe, c->fd, st->buf + c->stage_sent_bytes, drain_bytes,
                                           MSG_NOSIGNAL | MSG_WAITALL | (is_more ? MSG_MORE : 0));
        }
        c->fill_bytes = fill_bytes;
        c->fill_res = 0;
        c->drain_res = 0;
        c->has_fill = has_fill;
        c->has_drain = has_drain;
        c->out_ops_inflight = op_count;
        for (uint32_t i = 0; i < op_count; i++)
                conn_get(c);
        return 0;
}

/* All the operations of a file step are in: account what moved, decide. */
static void conn_finish_file_step(struct conn *c)
{
        bool had_fill = c->has_fill;
        bool had_drain = c->has_drain;
        uint32_t filled = had_fill && c->fill_res > 0 ? (uint32_t)c->fill_res : 0;
        uint32_t drained = had_drain && c->drain_res > 0 ? (uint32_t)c->drain_res : 0;

        c->has_fill = false;
        c->has_drain = false;
        /* Account before anything else, closed or not: a pipe goes back to
         * the pool only if it is known to be empty. */
        assert(c->stage && (!had_fill || c->staged_bytes == 0));
        assert(filled <= c->fill_bytes && drained <= c->staged_bytes + filled);
        if (had_fill)
                c->stage_sent_bytes = 0;
        c->staged_bytes += filled - drained;
        c->stage_sent_bytes += drained;
        if (c->state == CONN_CLOSED) {
                conn_reap_queue(c);
                return;
        }
        const struct request *req = c->queue_head;
        assert(req && req->is_complete && c->head_chunk_index < req->chunk_count);
        const struct response_chunk *ch = &req->chunks[c->head_chunk_index];
        assert(ch->file);
        bool is_pipe = c->stage->kind == CONN_STAGE_PIPE;

        if (had_fill && c->fill_res <= 0) {
                unsigned long long file_pos = ch->file->offset + c->head_chunk_offset;
                if (c->fill_res == 0)
                        conn_log(c, "response file ends at offset %llu, inside the %zu-byte range "
                                 "at %llu promised to the client, closing", file_pos, ch->len,
                                 (unsigned long long)ch->file->offset);
                else
                        conn_log(c, "reading response file at offset %llu failed: %s, closing",
                                 file_pos, strerror(-c->fill_res));
                conn_close(c);
                return;
        }
        if (had_drain) {
                int32_t res = c->drain_res;
                if (res > 0) {
                        c->is_socket_full = c->staged_bytes > 0;
                        conn_touch(c);
                        conn_advance_sent(c, drained);          /* ch may be freed */
                } else if (res == -EAGAIN && is_pipe) {
                        c->is_socket_full = true;
                } else if (res == -ECANCELED && had_fill && filled < c->fill_bytes) {
                        /* The fill came up short, which broke the link: the
                         * next step drains what it did read. */
                } else {
                        if (res == 0)
                                conn_log(c, "socket took none of %u staged file bytes, closing",
                                         c->staged_bytes);
                        else if (res != -EPIPE && res != -ECONNRESET)
                                conn_log(c, "sending response file bytes failed: %s, closing",
                                         strerror(-res));
                        conn_close(c);
                        return;
                }
        }
        if (c->staged_bytes == 0)
                conn_put_stage(c);
        conn_flush(c);
}

static void conn_on_file_op(struct conn *c)
{
        assert(c->out_ops_inflight > 0);
        c->out_ops_inflight--;
        if (c->out_ops_inflight == 0)
                conn_finish_file_step(c);
        conn_put(c);            /* the operation's reference */
}

static void conn_on_fill(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct conn *c = container_of(op, struct conn, fill_op);
        (void)cqe_flags;
        assert(c->has_fill);
        c->fill_res = res;
        conn_on_file_op(c);
}

static void conn_on_poll(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct conn *c = container_of(op, struct conn, poll_op);
        (void)cqe_flags;
        (void)res;              /* the splice behind it reports what matters */
        assert(c->has_drain);
        conn_on_file_op(c);
}

static void conn_on_drain(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct conn *c = container_of(op, struct conn, drain_op);
        (void)cqe_flags;
        assert(c->has_drain);
        c->drain_res = res;
        conn_on_file_op(c);
}

/* Takes the next output step: sends what can be sent of the responses of
 * complete requests at the head of the queue, in order. Closes the
 * connection when the head asked for it. */
static void conn_flush(struct conn *c)
{
        if (c->state == CONN_CLOSED || conn_is_sending(c))
                return;
        conn_advance_sent(c, 0);
        struct request *req = c->queue_head;
        if (req && req->is_complete && req->must_close) {
                conn_close(c);  /* every earlier response has been sent */
                return;
        }
        if (req && req->is_complete) {
                assert(c->head_chunk_index < req->chunk_count);
                bool is_file = req->chunks[c->head_chunk_index].file != NULL;
                int rc = is_file ? conn_start_file_step(c) : conn_send_memory(c);
                if (rc) {
                        conn_log(c, "%s, closing", rc == -EBUSY ? "submission queue full, cannot send"
                                                               : "no memory to stage file bytes");
                        conn_close(c);
                        return;
                }
        }
        /* Requests were freed above: reading may resume. */
        conn_update_flow(c);
}

static void conn_on_flush_task(void *arg)
{
        struct conn *c = arg;
        conn_flush(c);
        conn_put(c);            /* the task's reference */
}

static void conn_schedule_flush(struct conn *c)
{
        if (c->flush_task.is_queued || c->state == CONN_CLOSED)
                return;
        conn_get(c);
        reactor_defer(c->set->reactor, &c->flush_task);
}

/* ---- open and close */

static void conn_format_peer(int fd, char *out, size_t out_bytes)
{
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        char host[INET6_ADDRSTRLEN];

        if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
                snprintf(out, out_bytes, "unknown");
                return;
        }
        if (ss.ss_family == AF_INET) {
                const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
                snprintf(out, out_bytes, "%s:%u", host, (unsigned)ntohs(sin->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
                if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
                        inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, sizeof(host));
                        snprintf(out, out_bytes, "%s:%u", host, (unsigned)ntohs(sin6->sin6_port));
                } else {
                        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
                        snprintf(out, out_bytes, "[%s]:%u", host, (unsigned)ntohs(sin6->sin6_port));
                }
        } else {
                snprintf(out, out_bytes, "unknown");
        }
}

int conn_open(struct conn_set *set, int fd)
{
        int rc;

        assert(fd >= 0);
        if (set->cfg.shared_conn_count &&
            atomic_fetch_add(set->cfg.shared_conn_count, 1) >= set->cfg.max_conn_count) {
                atomic_fetch_sub(set->cfg.shared_conn_count, 1);
                close(fd);
                return -EMFILE;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
                if (set->cfg.shared_conn_count)
                        atomic_fetch_sub(set->cfg.shared_conn_count, 1);
                close(fd);
                return -ENOMEM;
        }
        c->set = set;
        c->fd = fd;
        c->state = CONN_OPEN;
        c->ref_count = 1;       /* open */
        c->recv_op.fn = conn_on_recv;
        c->direct_op.fn = conn_on_direct;
        c->send_op.fn = conn_on_send;
        c->fill_op.fn = conn_on_fill;
        c->drain_op.fn = conn_on_drain;
        c->poll_op.fn = conn_on_poll;
        reactor_task_init(&c->flush_task, conn_on_flush_task, c);
        conn_format_peer(fd, c->peer, sizeof(c->peer));

        /* Responses are written whole; Nagle would only delay them. */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        set->alive_count++;
        set->open_count++;
        conn_lru_append(c);
        c->active_ms = reactor_now_ms();

        rc = conn_arm_recv(c, true);
        if (rc) {
                conn_log(c, "submission queue full, refusing connection");
                conn_close(c);  /* frees c */
                return rc;
        }
        return 0;
}

/* Closes now: no more reading or sending. Requests being handled become
 * orphans. May free c (callers that use c afterwards hold a reference). */
static void conn_close(struct conn *c)
{
        if (c->state == CONN_CLOSED)
                return;
        c->state = CONN_CLOSED;
        conn_lru_remove(c);
        assert(c->set->open_count > 0);
        c->set->open_count--;
        /* Ends the recv and any send in flight, whatever the peer does. */
        (void)shutdown(c->fd, SHUT_RDWR);
        conn_cancel_recv(c);
        conn_cancel_direct(c);
        conn_drop_partial(c);
        if (!c->is_consuming)
                conn_stash_free(c);
        conn_reap_queue(c);
        conn_put(c);            /* the open reference */
}

/* ---- conn_set */

int conn_set_create(struct reactor *r, const struct conn_config *cfg, struct conn_set **out)
{
        int rc;

        assert(r == reactor_self());
        if (!cfg->dispatch || cfg->max_inflight_requests_per_conn == 0 ||
            cfg->max_conn_buffer_bytes == 0 || cfg->request_arena_max_bytes < ARENA_BLOCK_BYTES ||
            cfg->socket_request_max_bytes > INT32_MAX || cfg->recv_buffer_count == 0 ||
            cfg->recv_buffer_bytes == 0 || cfg->file_send_mode > CONN_FILE_SEND_COPY)
                return -EINVAL;
        long page_bytes = sysconf(_SC_PAGESIZE);
        if (page_bytes <= 0 || page_bytes > (long)CONN_STAGE_BYTES)
                return -EINVAL;

        struct conn_set *set = calloc(1, sizeof(*set));
        if (!set)
                return -ENOMEM;
        set->reactor = r;
        set->cfg = *cfg;
        set->page_bytes = (uint32_t)page_bytes;
        /* Measured by tools/bench_file_send.c: see conn.h. */
        set->file_send_mode = cfg->file_send_mode == CONN_FILE_SEND_DEFAULT ? CONN_FILE_SEND_COPY
                                                                           : cfg->file_send_mode;
        rc = reactor_buf_ring_create(r, CONN_BUF_GROUP, cfg->recv_buffer_count,
                                     cfg->recv_buffer_bytes, &set->bufs);
        if (rc)
                goto out_free;
        if (cfg->connections_max_idle_ms > 0) {
                uint64_t sweep_ms = cfg->connections_max_idle_ms / 8;
                if (sweep_ms < CONN_IDLE_SWEEP_MIN_MS)
                        sweep_ms = CONN_IDLE_SWEEP_MIN_MS;
                if (sweep_ms > CONN_IDLE_SWEEP_MAX_MS)
                        sweep_ms = CONN_IDLE_SWEEP_MAX_MS;
                set->idle_sweep_ms = sweep_ms;
                set->idle_timer = reactor_timer_add(r, sweep_ms, conn_set_on_idle_timer, set);
                if (!set->idle_timer) {
                        rc = -ENOMEM;
                        goto out_destroy_bufs;
                }
        }
        *out = set;
        return 0;

out_destroy_bufs:
        reactor_buf_ring_destroy(set->bufs);
out_free:
        free(set);
        return rc;
}

void conn_set_close_all(struct conn_set *set)
{
        uint32_t budget = set->open_count;
        while (set->lru_head && budget-- > 0)
                conn_close(set->lru_head);
        assert(set->open_count == 0);
        reactor_timer_cancel(set->reactor, set->idle_timer);
        set->idle_timer = 0;
}

void conn_set_destroy(struct conn_set *set)
{
        if (!set)
                return;
        if (set->alive_count > 0)
                log_warn("connections: %u connection(s) still referenced by requests "
                         "never completed at shutdown; leaking them", set->alive_count);
        reactor_timer_cancel(set->reactor, set->idle_timer);
        while (set->pool) {
                struct conn_request *cr = set->pool;
                set->pool = cr->pool_next;
                arena_free(&cr->req.arena);
                free(cr);
        }
        conn_stage_pool_destroy(set->pipe_pool, set->pipe_pool_count);
        conn_stage_pool_destroy(set->buffer_pool, set->buffer_pool_count);
        conn_frame_pool_empty(set);
        reactor_buf_ring_destroy(set->bufs);
        free(set);
}

uint32_t conn_set_alive_count(const struct conn_set *set)
{
        return set->alive_count;
}

uint32_t conn_set_open_count(const struct conn_set *set)
{
        return set->open_count;
}

/* ---- request.h */

/* Makes room for one more chunk. Returns 0 or -ENOMEM. */
static int request_reserve_chunk(struct request *req)
{
        if (req->chunk_count < req->chunk_cap)
                return 0;
        if (req->chunk_cap > UINT32_MAX / 2)
                return -ENOMEM;
        uint32_t cap = req->chunk_cap ? req->chunk_cap * 2 : CONN_CHUNKS_INITIAL;
        struct response_chunk *chunks = arena_alloc(&req->arena, (size_t)cap * sizeof(*chunks));
        if (!chunks)
                return -ENOMEM;
        if (req->chunk_count)
                memcpy(chunks, req->chunks, req->chunk_count * sizeof(*chunks));
        req->chunks = chunks;
        req->chunk_cap = cap;
        return 0;
}

int request_append(struct request *req, const void *ptr, size_t len)
{
        assert(req->reactor == reactor_self());
        assert(!req->is_complete);
        assert(ptr || len == 0);
        if (len == 0)
                return 0;
        if (req->chunk_count > 0) {
                /* Contiguous with the last chunk (consecutive arena writes): extend it. */
                struct response_chunk *last = &req->chunks[req->chunk_count - 1];
                if (!last->file && (const uint8_t *)last->ptr + last->len == (const uint8_t *)ptr) {
                        last->len += len;
                        req->response_bytes += len;
                        return 0;
                }
        }
        if (request_reserve_chunk(req) != 0)
                return -ENOMEM;
        struct response_chunk *ch = &req->chunks[req->chunk_count++];
        ch->ptr = ptr;
        ch->len = len;
        ch->file = NULL;
        req->response_bytes += len;
        return 0;
}

int request_append_file(struct request *req, int fd, uint64_t offset, uint32_t len,
                        request_release_fn release, void *release_arg)
{
        struct response_file *f;
        int rc;

        assert(req->reactor == reactor_self());
        assert(!req->is_complete);
        if (fd < 0 || offset > (uint64_t)INT64_MAX - len) {
                rc = -EINVAL;
                goto out_release;
        }
        /* Everything that can fail comes first: once the range is on the
         * request's list, the request owns the release. */
        if (len > 0 && request_reserve_chunk(req) != 0) {
                rc = -ENOMEM;
                goto out_release;
        }
        f = arena_alloc(&req->arena, sizeof(*f));
        if (!f) {
                rc = -ENOMEM;
                goto out_release;
        }
        f->fd = fd;
        f->offset = offset;
        f->release = release;
        f->release_arg = release_arg;
        f->next = req->files;
        req->files = f;
        if (len > 0) {
                assert(req->chunk_count < req->chunk_cap);
                struct response_chunk *ch = &req->chunks[req->chunk_count++];
                ch->ptr = NULL;
                ch->len = len;
                ch->file = f;
                req->response_bytes += len;
        }
        return 0;

out_release:
        if (release)
                release(release_arg);
        return rc;
}

void request_complete(struct request *req)
{
        struct conn_request *cr = conn_request_of(req);
        assert(req->reactor == reactor_self());
        assert(!req->is_complete);
        req->is_complete = true;
        if (!cr->is_queued) {
                conn_request_free(cr);  /* orphan: the connection is gone */
                return;
        }
        conn_schedule_flush(req->conn);
}

void request_complete_silently(struct request *req)
{
        assert(!req->is_complete);
        req->is_silent = true;
        req->chunk_count = 0;
        req->response_bytes = 0;
        request_complete(req);
}

void request_close_connection(struct request *req)
{
        struct conn_request *cr = conn_request_of(req);
        struct conn *c = req->conn;

        assert(req->reactor == reactor_self());
        assert(!req->is_complete);
        req->is_complete = true;
        req->must_close = true;
        req->chunk_count = 0;
        req->response_bytes = 0;
        if (!cr->is_queued) {
                conn_request_free(cr);
                return;
        }
        if (c->state == CONN_OPEN) {
                c->state = CONN_DRAINING;
                conn_cancel_recv(c);
                conn_cancel_direct(c);
                conn_drop_partial(c);
                if (!c->is_consuming)
                        conn_stash_free(c);
        }
        conn_truncate_after(c, req);
        conn_schedule_flush(c);
}

const char *request_peer(const struct request *req)
{
        return req->conn->peer;
}
