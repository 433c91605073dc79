/*
 * conn.h - client connections on one reactor: framing, in-order responses,
 * flow control, idle expiry. Implements the request_* functions of request.h.
 *
 * A conn_set is the per-reactor collection of connections. server.c creates
 * one per reactor, hands it every accepted socket with conn_open(), and at
 * shutdown closes them all and runs the reactor until conn_set_alive_count()
 * reaches zero.
 *
 * What a connection guarantees (see conn.c for how):
 *   - a frame whose 4-byte size is negative or above socket_request_max_bytes
 *     closes the connection before anything is allocated for it;
 *   - at most max_inflight_requests_per_conn requests per connection exist at
 *     once; past that, or once the frames held reach max_conn_buffer_bytes,
 *     the connection stops reading until responses drain;
 *   - responses leave in request order; a request that asked for the
 *     connection to close has every earlier response sent first;
 *   - a connection with no traffic and no request being handled for
 *     connections_max_idle_ms is closed (Kafka's connections.max.idle.ms).
 *     Traffic is a frame begun or completed, or response bytes sent: unlike
 *     Kafka, bytes of a frame do not count one by one, so a frame must
 *     arrive whole within connections_max_idle_ms of its size prefix (10
 *     minutes by default) and a client trickling one byte a second, or one
 *     that never reads its responses, is closed like an idle one;
 *   - file ranges of responses (request_append_file) are read only when
 *     their turn to be sent comes, copied through a buffer or spliced (see
 *     conn_file_send_mode), and never block the reactor thread on the disk;
 *     a range that turns out shorter than promised closes the connection.
 *
 * Thread confinement: everything here runs on the conn_set's reactor thread,
 * except the shared connection counter, which is atomic.
 */
#ifndef RUNNEL_CONN_H
#define RUNNEL_CONN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "request.h"

struct reactor;
struct conn_set;

/*
 * How file ranges of responses reach the socket.
 *
 * SPLICE moves page references: file -> pipe -> socket, linked splices that
 * io_uring runs in its worker threads, so the reactor thread hardly touches
 * the bytes (about 0.02-0.03 CPU s/GB against 0.17-0.24 for COPY). COPY
 * reads into a 1 MiB buffer and sends it, inline on the reactor thread when
 * the pages are cached. DEFAULT is COPY because it measured faster
 * (tools/bench_file_send.c, 127.0.0.1, 2 vCPUs): the same throughput with
 * 1 MiB ranges, 3x more with 64 KiB ranges, and less CPU in all (every splice
 * is a hand-off to an io_uring worker, and over loopback the reader pays for
 * reading page-cache pages that a copy would have left in the CPU cache).
 * Over a real NIC splice saves both copies; measure there before switching.
 */
enum conn_file_send_mode {
        CONN_FILE_SEND_DEFAULT = 0,     /* COPY, see above */
        CONN_FILE_SEND_SPLICE,          /* file -> pipe -> socket, no copy through user space */
        CONN_FILE_SEND_COPY,            /* file -> buffer -> socket (read, then send) */
};

struct conn_config {
        request_dispatch_fn dispatch;
        void *dispatch_ctx;

        uint32_t socket_request_max_bytes;      /* largest frame body accepted */
        uint32_t max_inflight_requests_per_conn;
        uint64_t max_conn_buffer_bytes;         /* input held per connection */
        uint64_t connections_max_idle_ms;       /* 0 disables idle expiry */
        uint64_t request_arena_max_bytes;       /* per request, on top of its frame */

        uint32_t recv_buffer_count;             /* provided buffers per reactor, power of two */
        uint32_t recv_buffer_bytes;

        enum conn_file_send_mode file_send_mode;

        /* Connections across all reactors: incremented on open, decremented on
         * free; opening fails once it reaches max_conn_count. May be NULL. */
        atomic_uint *shared_conn_count;
        uint32_t max_conn_count;
};

/* Creates the set and its provided buffer ring on the calling (reactor)
 * thread. Returns 0 or -errno. */
int conn_set_create(struct reactor *r, const struct conn_config *cfg, struct conn_set **out);

/* Frees the set. Every connection must have been freed (alive count 0);
 * otherwise the survivors are leaked, with a log line saying so. */
void conn_set_destroy(struct conn_set *set);

/* Takes ownership of a connected, non-blocking socket and starts reading.
 * Returns 0, or -errno (the socket is closed then). */
int conn_open(struct conn_set *set, int fd);

/* Closes every connection at once (shutdown). Requests being handled stay
 * valid until completed, as when a peer disconnects. */
void conn_set_close_all(struct conn_set *set);

/* Connections not yet freed (open, closing, or kept by requests in flight). */
uint32_t conn_set_alive_count(const struct conn_set *set);

/* Open connections. */
uint32_t conn_set_open_count(const struct conn_set *set);

#endif
