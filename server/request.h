/*
 * request.h - the boundary between connections (server/conn.c) and request
 * handling (server/dispatch.c and the handlers).
 *
 * The connection layer knows only Kafka's 4-byte size framing. For every
 * complete frame it creates a struct request, whose frame and arena it owns,
 * and calls the dispatch function the server was started with
 * (dispatch_request() in the broker, an echo in the connection tests).
 * Dispatch decodes the request header, finds
 * the handler and eventually completes the request, possibly later (a
 * Produce waiting for fsync, a Fetch waiting for data).
 *
 * Responses leave a connection in request order, whatever order requests
 * complete in: a completed request waits until every request received before
 * it on the same connection has been sent (Kafka guarantees this ordering and
 * clients depend on it when pipelining).
 *
 * Thread confinement: a request belongs to the reactor thread of its
 * connection. request_* functions are called on that thread only; other
 * threads hand work back with reactor_post().
 *
 * Lifetime: if the client disconnects while a request is in flight, the
 * request stays valid until it is completed; completing it then just frees
 * it. Handlers therefore never need to know whether the peer is still there.
 *
 * A response is a list of chunks sent in order: bytes in memory
 * (request_append) or a byte range of a file (request_append_file), read
 * only when its turn to be sent comes, so Fetch can answer with log segment
 * bytes as they lie on disk without holding them in memory (and, in splice
 * mode, without them passing through user space at all).
 */
#ifndef RUNNEL_REQUEST_H
#define RUNNEL_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../protocol/arena.h"

struct conn;
struct reactor;

/* Gives up what kept a file range valid (a segment reference). */
typedef void (*request_release_fn)(void *arg);

/* A file range of a response, in the request's arena. */
struct response_file {
        int fd;
        uint64_t offset;
        request_release_fn release;     /* may be NULL */
        void *release_arg;
        struct response_file *next;     /* the request's file ranges, newest first */
};

/* A piece of a response: len bytes at ptr in memory, or, when file is not
 * NULL, len bytes of a file (ptr is NULL then). len is never 0. */
struct response_chunk {
        const void *ptr;
        size_t len;
        const struct response_file *file;
};

struct request {
        struct conn *conn;
        struct reactor *reactor;
        struct arena arena;             /* freed when the response has been sent */

        const uint8_t *frame;           /* the request, without the 4-byte size */
        uint32_t frame_len;
        uint64_t received_ns;           /* CLOCK_MONOTONIC when the frame completed */

        /* Filled in by dispatch after decoding the header. */
        int16_t api_key;
        int16_t api_version;
        int32_t correlation_id;

        /* Response under construction: chunks in send order. */
        struct response_chunk *chunks;
        uint32_t chunk_count;
        uint32_t chunk_cap;
        uint64_t response_bytes;        /* memory and file bytes */
        struct response_file *files;    /* every file range appended, to release */

        /* Owned by conn.c: in-order queue and completion state. */
        struct request *next;
        bool is_complete;
        bool is_silent;                 /* complete without a response (acks=0) */
        bool must_close;                /* close the connection instead of responding */
};

/* Handles one request, completing it now or later. */
typedef void (*request_dispatch_fn)(struct request *req, void *ctx);

/* Appends bytes to the response; ptr must stay valid until the request is freed
 * (arena memory does). Returns 0 or -ENOMEM. */
int request_append(struct request *req, const void *ptr, size_t len);

/*
 * Appends len bytes of the regular file fd, from offset on, to the response.
 * They are read when their turn to be sent comes, through a buffer or spliced
 * from the page cache into the socket (conn_file_send_mode in conn.h).
 *
 * release(release_arg), unless release is NULL, is called exactly once, on
 * the request's reactor thread, once the bytes are no longer needed: after
 * the response has been sent, or when the request is dropped (peer gone,
 * connection closed, completed silently, request_close_connection). Until
 * then fd must stay open and the range readable; that is what release is for
 * (a segment reference held until its bytes have left). On failure release
 * has been called before the return, so the caller never releases itself.
 *
 * The response's size was announced before its bytes, so a range that cannot
 * be read whole (the file was truncated under it) closes the connection: a
 * response cannot be shortened, and the client would wait forever.
 *
 * Returns 0, -EINVAL (fd < 0, or offset + len past INT64_MAX) or -ENOMEM.
 */
int request_append_file(struct request *req, int fd, uint64_t offset, uint32_t len,
                        request_release_fn release, void *release_arg);

/* The response is whole; it is sent once every earlier response has been. */
void request_complete(struct request *req);

/* Completes without sending anything (Produce with acks=0). */
void request_complete_silently(struct request *req);

/* Closes the connection once earlier responses are sent; later requests on
 * it are dropped. Kafka does this for unknown API keys and versions and for
 * frames it cannot parse. */
void request_close_connection(struct request *req);

/* The peer's address as "ip:port", for logs. Valid while the request lives. */
const char *request_peer(const struct request *req);

#endif
