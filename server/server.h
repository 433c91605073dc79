/*
 * server.h - the network front of the broker: reactor threads, listeners,
 * and the connections they accept.
 *
 * server_start() opens one listening socket per reactor, all bound to the
 * same address with SO_REUSEPORT so the kernel spreads connections across
 * reactors, starts one thread per reactor, and returns once every reactor is
 * accepting. It first checks that no other process holds the address (a
 * bind without SO_REUSEPORT), so a second broker on the same port fails
 * with -EADDRINUSE, as Kafka does, instead of joining the group. Each reactor owns the connections it accepted for their whole
 * life (see conn.h); every request is dispatched on its connection's
 * reactor thread through options.dispatch (see request.h).
 *
 * Shutdown: server_request_stop() (async-signal-safe, callable from a signal
 * handler or any thread) tells every reactor to stop accepting, close its
 * connections, and keep running for at most shutdown_timeout_ms while
 * requests still being handled are completed; server_wait() joins the
 * threads; server_destroy() frees what is left. server_stop() is
 * request_stop + wait.
 *
 * Typical use from main():
 *
 *      struct server_options o;
 *      server_options_init(&o);
 *      o.host = "";  o.port = 9092;  o.reactor_count = 4;
 *      o.dispatch = dispatch_request;  o.dispatch_ctx = broker;
 *      struct server *s;
 *      int rc = server_start(&o, &s);          // -errno, message on stderr
 *      ... install SIGTERM/SIGINT handlers that call server_request_stop(s) ...
 *      server_wait(s);
 *      server_destroy(s);
 *
 * Thread confinement: server_start/wait/destroy are for one controlling
 * thread; server_port(), server_reactor() and server_reactor_count() may be
 * called from any thread while the server exists.
 */
#ifndef RUNNEL_SERVER_H
#define RUNNEL_SERVER_H

#include <stdint.h>

#include "request.h"

struct server;
struct reactor;

/* Runs on reactor index's thread before it accepts (start) and after its
 * connections are gone (stop); for per-reactor state of other layers. */
typedef void (*server_reactor_hook_fn)(struct reactor *r, uint32_t index, void *ctx);

struct server_options {
        const char *host;                       /* "" or NULL: all interfaces (IPv6 + IPv4);
                                                 * else an IPv4/IPv6 literal or a host name */
        uint16_t port;                          /* 0: any free port, see server_port() */
        uint32_t reactor_count;                 /* threads */

        request_dispatch_fn dispatch;
        void *dispatch_ctx;
        server_reactor_hook_fn on_reactor_start; /* optional, gets dispatch_ctx */
        server_reactor_hook_fn on_reactor_stop;  /* optional, gets dispatch_ctx */
        /* Optional, gets the bound port (the one picked when port is 0) and
         * dispatch_ctx: called once the listeners are bound and before any
         * reactor runs, so what it sets is there for the first request. */
        void (*on_listening)(uint16_t port, void *ctx);

        int32_t socket_request_max_bytes;       /* socket.request.max.bytes, 104857600 */
        uint32_t max_inflight_requests_per_conn;/* 100 */
        uint64_t max_conn_buffer_bytes;         /* input held per connection, 32 MiB */
        uint64_t connections_max_idle_ms;       /* connections.max.idle.ms, 600000; 0 = never */
        uint64_t request_arena_max_bytes;       /* per request beyond its frame, 64 MiB */
        uint32_t max_connections;               /* all reactors together, 65536 */
        uint32_t listen_backlog;                /* 1024 */
        uint64_t shutdown_timeout_ms;           /* wait for requests in flight, 10000 */

        uint32_t recv_buffer_count;             /* provided buffers per reactor, 256 */
        uint32_t recv_buffer_bytes;             /* 32 KiB */
};

/* Defaults as commented above; host "", port 9092, one reactor, no dispatch. */
void server_options_init(struct server_options *o);

/* Starts the listeners and reactor threads. Returns 0 or -errno, having
 * printed one line saying what failed (bad option, address in use, ...). */
int server_start(const struct server_options *o, struct server **out);

/* The port listened on (the one picked when options.port was 0). */
uint16_t server_port(const struct server *s);

uint32_t server_reactor_count(const struct server *s);

/* Reactor index (< server_reactor_count), e.g. to reactor_post() to it. */
struct reactor *server_reactor(const struct server *s, uint32_t index);

/* Open connections across all reactors. Any thread. */
uint32_t server_connection_count(const struct server *s);

/* Asks the server to shut down. Async-signal-safe; any thread; idempotent. */
void server_request_stop(struct server *s);

/* Blocks until every reactor thread has shut down (after a stop request). */
void server_wait(struct server *s);

/* server_request_stop() then server_wait(). */
void server_stop(struct server *s);

/* Frees the server; call after server_wait(). */
void server_destroy(struct server *s);

#endif
