/*
 * server.c - listeners and reactor threads; see server.h for the contract.
 *
 * Each worker is one thread, one reactor, one listening socket and one
 * conn_set. The listening sockets are created by server_start() on the
 * calling thread (so port 0 can be resolved once and the others bound to the
 * same port, and so address errors surface synchronously); the reactor and
 * everything tied to its ring are created on the worker thread, because the
 * ring is single-issuer.
 *
 * Worker life:
 *   start:  reactor, conn_set, multishot accept armed, reports to
 *           server_start() through start_lock/start_cond;
 *   run:    reactor_run() until its stop flag is set;
 *   drain:  accept cancelled, every connection closed, the reactor run until
 *           the accept and every connection are gone or shutdown_timeout_ms
 *           passes (timers keep firing, so delayed requests complete);
 *   finish: on_reactor_stop hook, posts closed (and run), conn_set freed,
 *           listener closed. The reactor is freed by server_destroy().
 *
 * Invariants: a worker's listen_fd stays open while its thread runs (the
 * thread closes it last, server_free() if the thread never started);
 * is_accept_armed is true exactly while the multishot accept's final CQE
 * has not arrived.
 */
#include "server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../base/logging.h"

#include "conn.h"
#include "reactor.h"

#define SERVER_REACTOR_COUNT_MAX 1024
#define SERVER_ACCEPT_RETRY_MS 100
/* Out of descriptors, accepting waits longer each time, up to this. */
#define SERVER_ACCEPT_BACKOFF_MS_MAX 2000
#define SERVER_ACCEPT_LOG_INTERVAL_MS 10000

struct server;

struct server_worker {
        struct server *server;
        uint32_t index;
        pthread_t thread;
        bool is_thread_started;
        struct reactor *reactor;                /* set before the worker reports */
        struct conn_set *conns;
        int listen_fd;
        struct reactor_op accept_op;
        bool is_accept_armed;
        bool is_draining;
        reactor_timer_id accept_retry_timer;
        uint64_t accept_backoff_ms;             /* next wait after a resource error; 0 after a success */
        struct log_limit accept_log_limit;
};

struct server {
        struct server_options opts;
        char host[256];
        uint16_t port;
        uint32_t worker_count;
        struct server_worker *workers;
        atomic_uint conn_count;
        atomic_bool is_stop_requested;

        pthread_mutex_t start_lock;
        pthread_cond_t start_cond;
        uint32_t reported_count;                /* workers that reported, under start_lock */
        int start_rc;                           /* first failure, under start_lock */
        bool is_joined;
};

void server_options_init(struct server_options *o)
{
        memset(o, 0, sizeof(*o));
        o->host = "";
        o->port = 9092;
        o->reactor_count = 1;
        o->socket_request_max_bytes = 104857600;
        o->max_inflight_requests_per_conn = 100;
        o->max_conn_buffer_bytes = 32ull << 20;
        o->connections_max_idle_ms = 600000;
        o->request_arena_max_bytes = 64ull << 20;
        o->max_connections = 65536;
        o->listen_backlog = 1024;
        o->shutdown_timeout_ms = 10000;
        o->recv_buffer_count = 256;
        o->recv_buffer_bytes = 32 * 1024;
}

static int server_check_options(const struct server_options *o)
{
        const char *bad = NULL;
        if (!o->dispatch)
                bad = "dispatch callback missing";
        else if (o->reactor_count == 0 || o->reactor_count > SERVER_REACTOR_COUNT_MAX)
                bad = "reactor_count must be 1..1024";
        else if (o->socket_request_max_bytes < 0)
                bad = "socket.request.max.bytes must not be negative";
        else if (o->max_inflight_requests_per_conn == 0)
                bad = "max_inflight_requests_per_conn must be positive";
        else if (o->max_conn_buffer_bytes == 0)
                bad = "max_conn_buffer_bytes must be positive";
        else if (o->request_arena_max_bytes < ARENA_BLOCK_BYTES)
                bad = "request_arena_max_bytes must be at least 16384";
        else if (o->max_connections == 0)
                bad = "max_connections must be positive";
        else if (o->recv_buffer_count == 0 || o->recv_buffer_count > 32768 ||
                 (o->recv_buffer_count & (o->recv_buffer_count - 1)))
                bad = "recv_buffer_count must be a power of two up to 32768";
        else if (o->recv_buffer_bytes < 512 || o->recv_buffer_bytes > (16u << 20))
                bad = "recv_buffer_bytes must be 512..16777216";
        else if (o->host && strlen(o->host) >= 256)
                bad = "listener host name too long";
        if (bad) {
                log_error("server: invalid option: %s", bad);
                return -EINVAL;
        }
        return 0;
}

/* ---- listeners */

/*
 * Binds (and unless is_probe, listens on) one socket. The reactors'
 * listeners share the port through SO_REUSEPORT; a probe does not set it,
 * so that its bind fails when any other socket holds the port, SO_REUSEPORT
 * group of another process included (server_check_port_free).
 */
static int server_bind_one(const struct sockaddr *addr, socklen_t addr_len, int family,
                           uint32_t backlog, bool is_probe, int *fd_out)
{
        int one = 1;
        int zero = 0;
        int rc;

        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            (!is_probe && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)) {
                rc = -errno;
                goto out_close;
        }
        /* "::" should take IPv4 too, whatever net.ipv6.bindv6only says. */
        if (family == AF_INET6)
                (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        if (bind(fd, addr, addr_len) != 0 || (!is_probe && listen(fd, (int)backlog) != 0)) {
                rc = -errno;
                goto out_close;
        }
        *fd_out = fd;
        return 0;

out_close:
        close(fd);
        return rc;
}

/* Opens a listening socket on host:port (a bound probe when is_probe);
 * *port_out gets the bound port. Logs the reason when it fails. */
static int server_listen(const char *host, uint16_t port, uint32_t backlog, bool is_probe, int *fd_out,
                         uint16_t *port_out)
{
        struct addrinfo hints;
        struct addrinfo *res = NULL;
        char port_str[8];
        int rc = -EADDRNOTAVAIL;

        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        snprintf(port_str, sizeof(port_str), "%u", (unsigned)port);

        if (!host || !host[0]) {
                /* All interfaces: one dual-stack socket, or IPv4 where IPv6 is off. */
                struct sockaddr_in6 any6;
                memset(&any6, 0, sizeof(any6));
                any6.sin6_family = AF_INET6;
                any6.sin6_addr = in6addr_any;
                any6.sin6_port = htons(port);
                rc = server_bind_one((const struct sockaddr *)&any6, sizeof(any6), AF_INET6,
                                     backlog, is_probe, fd_out);
                if (rc == -EAFNOSUPPORT) {
                        struct sockaddr_in any4;
                        memset(&any4, 0, sizeof(any4));
                        any4.sin_family = AF_INET;
                        any4.sin_addr.s_addr = htonl(INADDR_ANY);
                        any4.sin_port = htons(port);
                        rc = server_bind_one((const struct sockaddr *)&any4, sizeof(any4), AF_INET,
                                             backlog, is_probe, fd_out);
                }
        } else {
                /* Accept "[::1]" as written in Kafka listener strings. */
                char name[256];
                size_t len = strlen(host);
                if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
                        memcpy(name, host + 1, len - 2);
                        name[len - 2] = '\0';
                } else {
                        snprintf(name, sizeof(name), "%s", host);
                }
                int gai = getaddrinfo(name, port_str, &hints, &res);
                if (gai != 0) {
                        log_error("server: cannot resolve listener host '%s': %s",
                                  host, gai_strerror(gai));
                        return -EADDRNOTAVAIL;
                }
                for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                        rc = server_bind_one(ai->ai_addr, ai->ai_addrlen, ai->ai_family, backlog, is_probe,
                                             fd_out);
                        if (rc == 0)
                                break;
                }
                freeaddrinfo(res);
        }
        if (rc && !(is_probe && rc == -EADDRINUSE)) {
                log_error("server: cannot listen on %s:%u: %s%s", host && host[0] ? host : "*",
                          (unsigned)port, strerror(-rc),
                          rc == -EADDRINUSE ? " (another process listens there: stop it or pick another "
                                              "port in listeners)" : "");
                return rc;
        }
        if (rc)
                return rc;      /* the probe's caller says it */

        struct sockaddr_storage ss;
        socklen_t ss_len = sizeof(ss);
        if (getsockname(*fd_out, (struct sockaddr *)&ss, &ss_len) != 0) {
                rc = -errno;
                close(*fd_out);
                return rc;
        }
        if (ss.ss_family == AF_INET)
                *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else
                *port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        return 0;
}

/*
 * Fails with -EADDRINUSE when another process holds host:port. The
 * listeners share their port with SO_REUSEPORT so the kernel spreads
 * connections over the reactors; but a second broker of the same user
 * would join that group just as well, start without a word, and take half
 * the connections (Kafka refuses to start: "Address already in use"). A
 * socket bound without SO_REUSEPORT conflicts with any holder of the port,
 * so binding one first, and closing it before the real listeners bind,
 * tells us. Two brokers starting within the same few microseconds could
 * still both pass; one starting later never does, since ours hold the
 * port by then.
 *
 * A broker killed a moment ago still holds its port for a few
 * milliseconds after its process is gone: the kernel tears an io_uring
 * down asynchronously, and the ring's multishot accept keeps the
 * listening socket open until then. So a port in use is tried again for
 * up to SERVER_PORT_WAIT_MS before the broker gives up; a restart right
 * after a crash (a supervisor's, the crash tests') then starts.
 */
#define SERVER_PORT_WAIT_MS 2000
#define SERVER_PORT_RETRY_MS 10

static int server_check_port_free(const char *host, uint16_t port)
{
        int fd = -1;
        uint16_t bound_port = 0;
        int rc = 0;

        if (port == 0)
                return 0;       /* the kernel picks a port nobody holds */
        for (int waited_ms = 0; waited_ms <= SERVER_PORT_WAIT_MS; waited_ms += SERVER_PORT_RETRY_MS) {
                rc = server_listen(host, port, 0, true, &fd, &bound_port);
                if (rc != -EADDRINUSE)
                        break;
                usleep(SERVER_PORT_RETRY_MS * 1000);
        }
        if (rc == -EADDRINUSE)
                log_error("server: cannot listen on %s:%u: %s (another process listens there: stop it or pick "
                          "another port in listeners)", host && host[0] ? host : "*", (unsigned)port,
                          strerror(-rc));
        if (rc)
                return rc;      /* server_listen or the line above said why */
        close(fd);
        return 0;
}

/* ---- accept */

static void server_on_accept(struct reactor_op *op, int32_t res, uint32_t cqe_flags);

static int server_arm_accept(struct server_worker *w)
{
        assert(!w->is_accept_armed);
        struct io_uring_sqe *sqe = reactor_prep_op(w->reactor, &w->accept_op);
        if (!sqe)
                return -EBUSY;
        io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        w->is_accept_armed = true;
        return 0;
}

static void server_on_accept_retry(void *arg)
{
        struct server_worker *w = arg;
        w->accept_retry_timer = 0;
        if (w->is_draining || w->is_accept_armed)
                return;
        if (server_arm_accept(w) != 0)
                w->accept_retry_timer = reactor_timer_add(w->reactor, SERVER_ACCEPT_RETRY_MS,
                                                          server_on_accept_retry, w);
}

static void server_log_accept_error(struct server_worker *w, const char *what)
{
        unsigned long long suppressed;
        /* Such errors tend to repeat for every connection: one line per
         * interval, saying how many were held back. */
        if (!log_limit_allow(&w->accept_log_limit, SERVER_ACCEPT_LOG_INTERVAL_MS, &suppressed))
                return;
        if (suppressed)
                log_warn("server: reactor %u: %s (%llu more since the last such line)", w->index, what, suppressed);
        else
                log_warn("server: reactor %u: %s", w->index, what);
}

/* How long to wait before accepting again after error res: resource
 * shortages (descriptors, memory) back off exponentially, since
 * accepting again at once fails again and a full listen queue keeps the
 * multishot accept completing. */
static uint64_t server_accept_delay_ms(struct server_worker *w, int32_t res)
{
        if (res != -EMFILE && res != -ENFILE && res != -ENOBUFS && res != -ENOMEM)
                return SERVER_ACCEPT_RETRY_MS;
        uint64_t delay_ms = w->accept_backoff_ms ? w->accept_backoff_ms : SERVER_ACCEPT_RETRY_MS;
        w->accept_backoff_ms = delay_ms * 2 > SERVER_ACCEPT_BACKOFF_MS_MAX ? SERVER_ACCEPT_BACKOFF_MS_MAX
                                                                           : delay_ms * 2;
        return delay_ms;
}

static void server_on_accept(struct reactor_op *op, int32_t res, uint32_t cqe_flags)
{
        struct server_worker *w = container_of(op, struct server_worker, accept_op);

        if (!(cqe_flags & IORING_CQE_F_MORE))
                w->is_accept_armed = false;
        if (res >= 0) {
                w->accept_backoff_ms = 0;
                if (w->is_draining) {
                        close(res);
                } else {
                        int rc = conn_open(w->conns, res);
                        if (rc == -EMFILE)
                                server_log_accept_error(w, "max_connections reached, refusing connections");
                        else if (rc)
                                server_log_accept_error(w, "cannot set up a new connection, refusing it");
                }
        } else if (res != -ECANCELED && res != -ECONNABORTED && res != -EINTR) {
                /* (A peer that gave up before we accepted is not worth a line.) */
                char what[160];
                snprintf(what, sizeof(what), "accepting a connection failed: %s%s", strerror(-res),
                         res == -EMFILE || res == -ENFILE ? " (raise the open-files limit, ulimit -n)" : "");
                server_log_accept_error(w, what);
        }
        if (w->is_accept_armed || w->is_draining || w->accept_retry_timer)
                return;
        /* Re-arm; after a resource error, give the system a moment first. */
        if (res >= 0 || res == -ECANCELED || res == -EINTR || res == -ECONNABORTED) {
                if (server_arm_accept(w) == 0)
                        return;
        }
        w->accept_retry_timer = reactor_timer_add(w->reactor, res < 0 ? server_accept_delay_ms(w, res)
                                                                     : SERVER_ACCEPT_RETRY_MS,
                                                  server_on_accept_retry, w);
}

/* ---- worker thread */

static void server_report_start(struct server *s, int rc)
{
        pthread_mutex_lock(&s->start_lock);
        if (rc && !s->start_rc)
                s->start_rc = rc;
        s->reported_count++;
        pthread_cond_broadcast(&s->start_cond);
        pthread_mutex_unlock(&s->start_lock);
}

static bool server_worker_is_drained(const struct server_worker *w)
{
        return !w->is_accept_armed && conn_set_alive_count(w->conns) == 0;
}

static void server_worker_drain(struct server_worker *w)
{
        struct server *s = w->server;
        w->is_draining = true;
        reactor_timer_cancel(w->reactor, w->accept_retry_timer);
        w->accept_retry_timer = 0;
        if (w->is_accept_armed) {
                struct io_uring_sqe *sqe = reactor_prep_untracked(w->reactor);
                if (sqe)
                        io_uring_prep_cancel(sqe, &w->accept_op, 0);
        }
        conn_set_close_all(w->conns);

        uint64_t deadline_ms = reactor_now_ms() + s->opts.shutdown_timeout_ms;
        while (!server_worker_is_drained(w)) {
                uint64_t now_ms = reactor_now_ms();
                if (now_ms >= deadline_ms)
                        break;
                int rc = reactor_run_once(w->reactor, deadline_ms - now_ms);
                if (rc < 0)
                        break;
        }
        if (!server_worker_is_drained(w))
                log_warn("server: reactor %u: %u connection(s) still busy after "
                         "%llu ms of shutdown; giving up on them",
                         w->index, conn_set_alive_count(w->conns),
                         (unsigned long long)s->opts.shutdown_timeout_ms);
}

static void *server_worker_main(void *arg)
{
        struct server_worker *w = arg;
        struct server *s = w->server;
        struct reactor *r = NULL;
        struct conn_set *conns = NULL;
        struct reactor_options ropts;
        struct conn_config cfg;
        int rc;

        reactor_options_init(&ropts);
        rc = reactor_create(&ropts, &r);
        if (rc) {
                log_error("server: reactor %u: cannot set up io_uring: %s",
                          w->index, strerror(-rc));
                goto out_report;
        }
        memset(&cfg, 0, sizeof(cfg));
        cfg.dispatch = s->opts.dispatch;
        cfg.dispatch_ctx = s->opts.dispatch_ctx;
        cfg.socket_request_max_bytes = (uint32_t)s->opts.socket_request_max_bytes;
        cfg.max_inflight_requests_per_conn = s->opts.max_inflight_requests_per_conn;
        cfg.max_conn_buffer_bytes = s->opts.max_conn_buffer_bytes;
        cfg.connections_max_idle_ms = s->opts.connections_max_idle_ms;
        cfg.request_arena_max_bytes = s->opts.request_arena_max_bytes;
        cfg.recv_buffer_count = s->opts.recv_buffer_count;
        cfg.recv_buffer_bytes = s->opts.recv_buffer_bytes;
        cfg.shared_conn_count = &s->conn_count;
        cfg.max_conn_count = s->opts.max_connections;
        rc = conn_set_create(r, &cfg, &conns);
        if (rc) {
                log_error("server: reactor %u: cannot set up connections "
                          "(provided buffer ring): %s", w->index, strerror(-rc));
                goto out_destroy_reactor;
        }
        w->reactor = r;
        w->conns = conns;
        rc = server_arm_accept(w);
        if (rc) {
                log_error("server: reactor %u: cannot arm accept", w->index);
                goto out_destroy_conns;
        }
        if (s->opts.on_reactor_start)
                s->opts.on_reactor_start(r, w->index, s->opts.dispatch_ctx);
        server_report_start(s, 0);

        /* A stop requested while we were starting must not be missed. */
        if (atomic_load(&s->is_stop_requested))
                reactor_stop(r);
        rc = reactor_run(r);
        if (rc) {
                /* A ring that fails is not something to limp along without:
                 * its listener would keep taking connections nobody serves. */
                log_error("server: reactor %u: event loop failed (%s); shutting the server down",
                          w->index, strerror(-rc));
                server_request_stop(s);
        }
        server_worker_drain(w);
        if (s->opts.on_reactor_stop)
                s->opts.on_reactor_stop(r, w->index, s->opts.dispatch_ctx);
        reactor_close_posts(r);
        conn_set_destroy(conns);
        w->conns = NULL;
        /* Closing our listener takes it out of the SO_REUSEPORT group, so the
         * kernel stops handing it connections. */
        close(w->listen_fd);
        w->listen_fd = -1;
        /* The reactor itself lives until server_destroy(), so reactor_post()
         * from other threads fails cleanly with -ESHUTDOWN meanwhile. */
        return NULL;

out_destroy_conns:
        w->conns = NULL;
        w->reactor = NULL;
        conn_set_destroy(conns);
out_destroy_reactor:
        reactor_destroy(r);
out_report:
        server_report_start(s, rc);
        return NULL;
}

/* ---- public */

static void server_join_all(struct server *s)
{
        for (uint32_t i = 0; i < s->worker_count; i++) {
                struct server_worker *w = &s->workers[i];
                if (w->is_thread_started) {
                        pthread_join(w->thread, NULL);
                        w->is_thread_started = false;
                }
        }
        s->is_joined = true;
}

static void server_free(struct server *s)
{
        for (uint32_t i = 0; i < s->worker_count; i++) {
                struct server_worker *w = &s->workers[i];
                assert(!w->is_thread_started);
                reactor_destroy(w->reactor);
                if (w->listen_fd >= 0)
                        close(w->listen_fd);
        }
        pthread_cond_destroy(&s->start_cond);
        pthread_mutex_destroy(&s->start_lock);
        free(s->workers);
        free(s);
}

int server_start(const struct server_options *o, struct server **out)
{
        int rc;

        rc = server_check_options(o);
        if (rc)
                return rc;
        struct server *s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->opts = *o;
        snprintf(s->host, sizeof(s->host), "%s", o->host ? o->host : "");
        s->opts.host = s->host;
        s->worker_count = o->reactor_count;
        atomic_init(&s->conn_count, 0);
        atomic_init(&s->is_stop_requested, false);
        pthread_mutex_init(&s->start_lock, NULL);
        pthread_cond_init(&s->start_cond, NULL);
        s->workers = calloc(s->worker_count, sizeof(*s->workers));
        if (!s->workers) {
                rc = -ENOMEM;
                goto out_free;
        }
        for (uint32_t i = 0; i < s->worker_count; i++) {
                s->workers[i].server = s;
                s->workers[i].index = i;
                s->workers[i].listen_fd = -1;
                s->workers[i].accept_op.fn = server_on_accept;
        }

        /* The first socket picks the port (when asked for 0); the others share it. */
        s->port = o->port;
        rc = server_check_port_free(s->host, s->port);
        if (rc)
                goto out_free;
        for (uint32_t i = 0; i < s->worker_count; i++) {
                uint16_t bound_port = 0;
                rc = server_listen(s->host, s->port, o->listen_backlog, false, &s->workers[i].listen_fd,
                                   &bound_port);
                if (rc)
                        goto out_free;  /* server_listen said why */
                s->port = bound_port;
        }
        if (o->on_listening)
                o->on_listening(s->port, o->dispatch_ctx);

        for (uint32_t i = 0; i < s->worker_count; i++) {
                struct server_worker *w = &s->workers[i];
                int err = pthread_create(&w->thread, NULL, server_worker_main, w);
                if (err) {
                        rc = -err;
                        log_error("server: cannot start reactor thread: %s", strerror(err));
                        break;
                }
                w->is_thread_started = true;
        }
        uint32_t started = 0;
        for (uint32_t i = 0; i < s->worker_count; i++)
                started += s->workers[i].is_thread_started;

        pthread_mutex_lock(&s->start_lock);
        while (s->reported_count < started)
                pthread_cond_wait(&s->start_cond, &s->start_lock);
        if (!rc)
                rc = s->start_rc;
        pthread_mutex_unlock(&s->start_lock);

        if (rc) {
                server_request_stop(s);
                server_join_all(s);
                goto out_free;
        }
        *out = s;
        return 0;

out_free:
        server_free(s);
        return rc;
}

uint16_t server_port(const struct server *s)
{
        return s->port;
}

uint32_t server_reactor_count(const struct server *s)
{
        return s->worker_count;
}

struct reactor *server_reactor(const struct server *s, uint32_t index)
{
        assert(index < s->worker_count);
        return s->workers[index].reactor;
}

uint32_t server_connection_count(const struct server *s)
{
        return atomic_load(&((struct server *)s)->conn_count);
}

void server_request_stop(struct server *s)
{
        /* Async-signal-safe: atomics and reactor_stop (a write to an eventfd).
         * A worker that has not published its reactor yet checks the flag
         * right after it has. */
        atomic_store(&s->is_stop_requested, true);
        for (uint32_t i = 0; i < s->worker_count; i++) {
                struct reactor *r = s->workers[i].reactor;
                if (r)
                        reactor_stop(r);
        }
}

void server_wait(struct server *s)
{
        if (!s->is_joined)
                server_join_all(s);
}

void server_stop(struct server *s)
{
        server_request_stop(s);
        server_wait(s);
}

void server_destroy(struct server *s)
{
        if (!s)
                return;
        server_wait(s);
        server_free(s);
}
