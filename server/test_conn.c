/*
 * test_conn.c - the reactor and the connection layer, driven over 127.0.0.1.
 *
 * The server under test runs an echo dispatch: every response is the request
 * frame, framed again by a 4-byte size. The first byte of a frame tells the
 * echo how to complete it:
 *
 *   'E'  at once                'D' + u32 delay_ms  from a timer, later
 *   'S'  silently (no answer)   'C'  request_close_connection
 *   'A'  answer with request_peer() instead of the frame
 *   'X' + u32 delay_ms          request_close_connection from a timer
 *   'M'  answer with MANY_CHUNKS separate 8-byte chunks "chunk%03u"
 *
 * Clients are plain blocking sockets with receive/send timeouts, so every
 * wait in these tests is bounded.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/reactor.h"
#include "server/request.h"
#include "server/server.h"

#define TEST_IO_TIMEOUT_MS 5000

/* ---- echo dispatch */

struct echo_stats {
        atomic_uint dispatched;
        atomic_uint completed;
        atomic_uint completed_orphaned;  /* completed after the peer was gone (best effort) */
};

static struct echo_stats stats;

static void put_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static void echo_respond(struct request *req, const void *body, size_t len)
{
        uint8_t *out = arena_alloc(&req->arena, 4 + len);
        cr_assert_not_null(out);
        put_be32(out, (uint32_t)len);
        memcpy(out + 4, body, len);
        /* Two appends, the second contiguous: exercises chunk coalescing. */
        cr_assert_eq(request_append(req, out, 4), 0);
        cr_assert_eq(request_append(req, out + 4, len), 0);
        atomic_fetch_add(&stats.completed, 1);
        request_complete(req);
}

static void echo_on_timer(void *arg)
{
        struct request *req = arg;
        echo_respond(req, req->frame, req->frame_len);
}

static void close_on_timer(void *arg)
{
        struct request *req = arg;
        atomic_fetch_add(&stats.completed, 1);
        request_close_connection(req);
}

static uint32_t frame_delay_ms(const struct request *req)
{
        cr_assert_geq(req->frame_len, 5);
        return ((uint32_t)req->frame[1] << 24) | ((uint32_t)req->frame[2] << 16) |
               ((uint32_t)req->frame[3] << 8) | req->frame[4];
}

enum { MANY_CHUNKS = 300 };

/* A response in MANY_CHUNKS non-contiguous pieces: more than one sendmsg's
 * worth of iovecs, and chunk array growth. */
static void many_chunks_respond(struct request *req)
{
        uint8_t *hdr = arena_alloc(&req->arena, 4);
        cr_assert_not_null(hdr);
        put_be32(hdr, MANY_CHUNKS * 8);
        cr_assert_eq(request_append(req, hdr, 4), 0);
        for (unsigned i = 0; i < MANY_CHUNKS; i++) {
                char *piece = arena_alloc(&req->arena, 9);   /* padded: never contiguous */
                cr_assert_not_null(piece);
                snprintf(piece, 9, "chunk%03u", i);
                cr_assert_eq(request_append(req, piece, 8), 0);
        }
        cr_assert_eq(req->chunk_count, MANY_CHUNKS + 1);
        atomic_fetch_add(&stats.completed, 1);
        request_complete(req);
}

static void echo_dispatch(struct request *req, void *ctx)
{
        (void)ctx;
        atomic_fetch_add(&stats.dispatched, 1);
        cr_assert_eq(req->reactor, reactor_self());
        cr_assert_gt(req->received_ns, 0);
        char kind = req->frame_len > 0 ? (char)req->frame[0] : 'E';
        switch (kind) {
        case 'D':
                cr_assert_neq(reactor_timer_add(req->reactor, frame_delay_ms(req), echo_on_timer, req), 0);
                break;
        case 'X':
                cr_assert_neq(reactor_timer_add(req->reactor, frame_delay_ms(req), close_on_timer, req), 0);
                break;
        case 'S':
                atomic_fetch_add(&stats.completed, 1);
                request_complete_silently(req);
                break;
        case 'C':
                atomic_fetch_add(&stats.completed, 1);
                request_close_connection(req);
                break;
        case 'M':
                many_chunks_respond(req);
                break;
        case 'A': {
                const char *peer = request_peer(req);
                echo_respond(req, peer, strlen(peer));
                break;
        }
        default:
                echo_respond(req, req->frame, req->frame_len);
                break;
        }
}

/* ---- server and client helpers */

static void test_options(struct server_options *o)
{
        server_options_init(o);
        o->host = "127.0.0.1";
        o->port = 0;
        o->reactor_count = 2;
        o->dispatch = echo_dispatch;
        o->shutdown_timeout_ms = 3000;
}

static struct server *start_server(const struct server_options *o)
{
        struct server *s = NULL;
        int rc = server_start(o, &s);
        cr_assert_eq(rc, 0, "server_start: %s", strerror(-rc));
        cr_assert_neq(server_port(s), 0);
        return s;
}

static void sleep_ms(uint64_t ms)
{
        struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
}

static int client_connect(uint16_t port)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        struct timeval tv = { .tv_sec = TEST_IO_TIMEOUT_MS / 1000, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s", strerror(errno));
        return fd;
}

static void send_all(int fd, const void *p, size_t len)
{
        const uint8_t *b = p;
        while (len > 0) {
                ssize_t n = send(fd, b, len, MSG_NOSIGNAL);
                cr_assert_gt(n, 0, "send: %s", strerror(errno));
                b += n;
                len -= (size_t)n;
        }
}

static uint32_t get_u32(const uint8_t *p)
{
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Appends one frame to buf at *off (buf must have room). */
static void frame_put(uint8_t *buf, size_t *off, const void *body, uint32_t len)
{
        put_be32(buf + *off, len);
        memcpy(buf + *off + 4, body, len);
        *off += 4 + len;
}

static void send_frame(int fd, const void *body, uint32_t len)
{
        uint8_t hdr[4];
        put_be32(hdr, len);
        send_all(fd, hdr, 4);
        send_all(fd, body, len);
}

/* Reads exactly len bytes; returns 0, or -1 on EOF/error/timeout. */
static int recv_exact(int fd, void *p, size_t len)
{
        uint8_t *b = p;
        while (len > 0) {
                ssize_t n = recv(fd, b, len, 0);
                if (n <= 0)
                        return -1;
                b += n;
                len -= (size_t)n;
        }
        return 0;
}

/* Reads one frame into buf; returns its length. */
static uint32_t recv_frame(int fd, void *buf, uint32_t cap)
{
        uint8_t hdr[4];
        cr_assert_eq(recv_exact(fd, hdr, 4), 0, "no response frame (EOF or timeout)");
        uint32_t len = get_u32(hdr);
        cr_assert_leq(len, cap);
        cr_assert_eq(recv_exact(fd, buf, len), 0, "short response frame");
        return len;
}

/* True if the server closes the connection within the I/O timeout. */
static bool recv_eof(int fd)
{
        uint8_t b[256];
        for (int i = 0; i < 1000; i++) {
                ssize_t n = recv(fd, b, sizeof(b), 0);
                if (n == 0)
                        return true;
                if (n < 0)
                        return errno == ECONNRESET;
        }
        return false;
}

static void roundtrip(int fd, const char *body)
{
        char buf[256];
        uint32_t len = (uint32_t)strlen(body);
        send_frame(fd, body, len);
        uint32_t got = recv_frame(fd, buf, sizeof(buf));
        cr_assert_eq(got, len);
        cr_assert_eq(memcmp(buf, body, len), 0);
}

/* Waits (bounded) until the server has no open connection. */
static void wait_no_connections(struct server *s)
{
        for (int i = 0; i < 500 && server_connection_count(s) > 0; i++)
                sleep_ms(10);
        cr_assert_eq(server_connection_count(s), 0);
}

static void reset_stats(void)
{
        atomic_store(&stats.dispatched, 0);
        atomic_store(&stats.completed, 0);
        atomic_store(&stats.completed_orphaned, 0);
}

/* ---- connection tests */

Test(conn, single_request_response, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        roundtrip(fd, "Ehello");
        close(fd);
        server_stop(s);
        server_destroy(s);
        cr_assert_eq(atomic_load(&stats.dispatched), 1);
}

Test(conn, empty_frame_is_dispatched, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t zero[4] = { 0 };
        send_all(fd, zero, 4);
        uint8_t buf[8];
        cr_assert_eq(recv_frame(fd, buf, sizeof(buf)), 0);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, pipelined_responses_keep_request_order, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        /* 100 requests; request i completes after (100 - i) * 2 ms, so the
         * dispatch completes them in reverse order. */
        enum { N = 100 };
        static uint8_t buf[N * 16];
        size_t off = 0;
        for (uint32_t i = 0; i < N; i++) {
                uint8_t body[9];
                body[0] = 'D';
                put_be32(body + 1, (N - i) * 2);
                put_be32(body + 5, i);
                frame_put(buf, &off, body, sizeof(body));
        }
        send_all(fd, buf, off);
        for (uint32_t i = 0; i < N; i++) {
                uint8_t resp[16];
                cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 9);
                cr_assert_eq(get_u32(resp + 5), i, "response %u out of order", i);
        }
        close(fd);
        server_stop(s);
        server_destroy(s);
        cr_assert_eq(atomic_load(&stats.completed), N);
}

Test(conn, inflight_limit_pauses_and_resumes, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.max_inflight_requests_per_conn = 3;
        reset_stats();
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        /* Far more pipelined frames than may be in flight, all in one write:
         * the excess is stashed, reading pauses, and resumes as responses go. */
        enum { N = 500 };
        static uint8_t buf[N * 16];
        size_t off = 0;
        for (uint32_t i = 0; i < N; i++) {
                uint8_t body[9];
                body[0] = i % 7 == 0 ? 'D' : 'E';
                put_be32(body + 1, 1);
                put_be32(body + 5, i);
                frame_put(buf, &off, body, sizeof(body));
        }
        send_all(fd, buf, off);
        for (uint32_t i = 0; i < N; i++) {
                uint8_t resp[16];
                cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 9);
                cr_assert_eq(get_u32(resp + 5), i);
        }
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, buffer_limit_pauses_and_resumes, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.max_conn_buffer_bytes = 8192;
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        enum { N = 40, BODY = 3000 };
        static uint8_t buf[N * (BODY + 4)];
        static uint8_t body[BODY];
        size_t off = 0;
        for (uint32_t i = 0; i < N; i++) {
                memset(body, 'x', sizeof(body));
                body[0] = 'D';
                put_be32(body + 1, 3);
                put_be32(body + 5, i);
                frame_put(buf, &off, body, sizeof(body));
        }
        send_all(fd, buf, off);
        for (uint32_t i = 0; i < N; i++) {
                static uint8_t resp[BODY];
                cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), BODY);
                cr_assert_eq(get_u32(resp + 5), i);
                cr_assert_eq(resp[BODY - 1], 'x');
        }
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, frame_split_across_reads, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        uint8_t buf[64];
        size_t off = 0;
        frame_put(buf, &off, "Esplit-frame", 12);
        for (size_t i = 0; i < off; i++) {
                send_all(fd, buf + i, 1);
                sleep_ms(2);
        }
        char resp[32];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 12);
        cr_assert_eq(memcmp(resp, "Esplit-frame", 12), 0);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, large_frame_round_trip, .timeout = 60)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        /* Bigger than the socket buffers: the response needs several sends. */
        enum { LEN = 8 << 20 };
        uint8_t *body = malloc(LEN);
        uint8_t *resp = malloc(LEN);
        cr_assert(body && resp);
        for (uint32_t i = 0; i < LEN; i++)
                body[i] = (uint8_t)(i * 31 + 7);
        body[0] = 'E';
        /* The server answers only once the whole frame is in, so sending it
         * all before reading cannot deadlock. */
        uint8_t hdr[4];
        put_be32(hdr, LEN);
        send_all(fd, hdr, 4);
        send_all(fd, body, LEN);
        cr_assert_eq(recv_frame(fd, resp, LEN), LEN);
        cr_assert_eq(memcmp(resp, body, LEN), 0);
        free(body);
        free(resp);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

/* Every peer left mid-frame: their connections go, nothing was dispatched,
 * and a new client is served. Stops the server. */
static void stop_after_peers_left(struct server *s)
{
        wait_no_connections(s);
        int fd = client_connect(server_port(s));
        roundtrip(fd, "Estill-fine");
        close(fd);
        server_stop(s);
        server_destroy(s);
        cr_assert_eq(atomic_load(&stats.dispatched), 1);
}

/* ---- frames read straight into their buffers (large ones) */

/* Frames of mixed sizes, pipelined, each body a pattern of its index: large
 * ones are read directly, small ones through the ring, and a ring recv in
 * flight when a large frame begins is cancelled first. */
struct mixed {
        int fd;
        uint32_t frame_count;
};

static uint32_t mixed_body_bytes(uint32_t i)
{
        static const uint32_t sizes[] = { 9, 300000, 70000, 9, 9, 1 << 20, 65540, 5000, 200000, 9 };
        return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void mixed_fill(uint8_t *body, uint32_t len, uint32_t i)
{
        for (uint32_t k = 0; k < len; k++)
                body[k] = (uint8_t)(k * 13 + i);
        body[0] = 'E';
        put_be32(body + 1, i);
}

static void *mixed_sender(void *arg)
{
        struct mixed *m = arg;
        uint8_t *buf = malloc(4 + (1 << 20));
        cr_assert_not_null(buf);
        for (uint32_t i = 0; i < m->frame_count; i++) {
                uint32_t len = mixed_body_bytes(i);
                put_be32(buf, len);
                mixed_fill(buf + 4, len, i);
                /* Split unevenly, so frames and prefixes straddle sends. */
                uint32_t cut = (4 + len) / 3 + 1;
                send_all(m->fd, buf, cut);
                send_all(m->fd, buf + cut, 4 + len - cut);
        }
        free(buf);
        return NULL;
}

static void mixed_round_trip(struct server *s, uint32_t frame_count)
{
        struct mixed m = { .fd = client_connect(server_port(s)), .frame_count = frame_count };
        pthread_t sender;
        cr_assert_eq(pthread_create(&sender, NULL, mixed_sender, &m), 0);
        uint8_t *resp = malloc(1 << 20);
        uint8_t *want = malloc(1 << 20);
        cr_assert(resp && want);
        for (uint32_t i = 0; i < frame_count; i++) {
                uint32_t len = mixed_body_bytes(i);
                cr_assert_eq(recv_frame(m.fd, resp, 1 << 20), len, "response %u has the wrong size", i);
                mixed_fill(want, len, i);
                cr_assert_eq(memcmp(resp, want, len), 0, "response %u differs from its request", i);
        }
        free(want);
        free(resp);
        pthread_join(sender, NULL);
        close(m.fd);
}

Test(conn, large_and_small_frames_pipelined_keep_order_and_bytes, .timeout = 120)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        mixed_round_trip(s, 60);
        server_stop(s);
        server_destroy(s);
}

Test(conn, large_frames_under_tight_limits, .timeout = 120)
{
        struct server_options o;
        test_options(&o);
        o.max_inflight_requests_per_conn = 2;
        o.max_conn_buffer_bytes = 4096;
        o.recv_buffer_count = 4;                /* the ring runs dry too */
        o.recv_buffer_bytes = 4096;
        struct server *s = start_server(&o);
        mixed_round_trip(s, 40);
        server_stop(s);
        server_destroy(s);
}

/* The peer leaves while the body of a large frame is being read into it. */
Test(conn, peer_gone_mid_large_frame, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        uint8_t *body = calloc(1, 200000);
        cr_assert_not_null(body);
        body[0] = 'E';
        for (int i = 0; i < 10; i++) {
                int fd = client_connect(server_port(s));
                uint8_t hdr[4];
                put_be32(hdr, 1 << 20);
                send_all(fd, hdr, 4);
                send_all(fd, body, 200000);
                sleep_ms(5);            /* the direct recv is armed */
                if (i % 2) {
                        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                }
                close(fd);
        }
        free(body);
        stop_after_peers_left(s);
}

/* A request closes the connection while the next frame, a large one, is
 * being read directly: the frame is dropped, but kept until its recv ends. */
Test(conn, close_requested_while_large_frame_arrives, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        uint8_t *body = calloc(1, 100000);
        cr_assert_not_null(body);
        body[0] = 'E';
        for (int i = 0; i < 5; i++) {
                int fd = client_connect(server_port(s));
                uint8_t closer[5] = { 'X' };
                put_be32(closer + 1, 30);
                send_frame(fd, closer, sizeof(closer));
                uint8_t hdr[4];
                put_be32(hdr, 1 << 20);
                send_all(fd, hdr, 4);
                send_all(fd, body, 100000);     /* and the rest never comes */
                cr_assert(recv_eof(fd), "connection not closed after request_close_connection");
                close(fd);
        }
        free(body);
        wait_no_connections(s);
        server_stop(s);
        server_destroy(s);
}

/* A large frame that stops arriving is closed as idle, as a small one is. */
Test(conn, stalled_large_frame_is_closed_as_idle, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.connections_max_idle_ms = 200;
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t *body = calloc(1, 100000);
        cr_assert_not_null(body);
        body[0] = 'E';
        uint8_t hdr[4];
        put_be32(hdr, 1 << 20);
        send_all(fd, hdr, 4);
        send_all(fd, body, 100000);
        uint64_t start_ms = reactor_now_ms();
        cr_assert(recv_eof(fd), "stalled large frame not closed");
        uint64_t waited_ms = reactor_now_ms() - start_ms;
        cr_assert_leq(waited_ms, 2000);
        free(body);
        close(fd);
        wait_no_connections(s);
        server_stop(s);
        server_destroy(s);
}

Test(conn, oversized_frame_closes_only_that_connection, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.reactor_count = 1;    /* both connections on one reactor */
        struct server *s = start_server(&o);
        int good = client_connect(server_port(s));
        int bad = client_connect(server_port(s));
        roundtrip(good, "Ebefore");

        uint8_t hdr[4];
        put_be32(hdr, 200u << 20);       /* 200 MiB > socket.request.max.bytes */
        send_all(bad, hdr, 4);
        cr_assert(recv_eof(bad), "oversized frame did not close the connection");
        roundtrip(good, "Eafter");
        close(bad);
        close(good);
        server_stop(s);
        server_destroy(s);
}

Test(conn, negative_frame_size_closes, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t hdr[4] = { 0xff, 0xff, 0xff, 0xfe };
        send_all(fd, hdr, 4);
        cr_assert(recv_eof(fd));
        close(fd);
        wait_no_connections(s);
        server_stop(s);
        server_destroy(s);
}

Test(conn, size_above_configured_max_closes, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.socket_request_max_bytes = 1000;
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        static uint8_t body[1000];
        memset(body, 'E', sizeof(body));
        send_frame(fd, body, 1000);             /* exactly the limit: fine */
        static uint8_t resp[1000];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 1000);
        uint8_t hdr[4];
        put_be32(hdr, 1001);
        send_all(fd, hdr, 4);
        cr_assert(recv_eof(fd));
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, peer_gone_mid_frame, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        for (int i = 0; i < 10; i++) {
                int fd = client_connect(server_port(s));
                uint8_t hdr[4];
                put_be32(hdr, 100000);
                send_all(fd, hdr, 4);
                send_all(fd, "Epartial", 8);
                close(fd);
        }
        stop_after_peers_left(s);
}

Test(conn, peer_gone_mid_request, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        enum { N = 20 };
        for (int i = 0; i < N; i++) {
                int fd = client_connect(server_port(s));
                uint8_t body[5] = { 'D' };
                put_be32(body + 1, 150);
                send_frame(fd, body, sizeof(body));
                /* RST rather than FIN for half of them. */
                if (i % 2) {
                        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
                }
                close(fd);
        }
        /* The requests complete after their peers left; the connections go
         * once they have. */
        for (int i = 0; i < 300 && atomic_load(&stats.completed) < N; i++)
                sleep_ms(10);
        cr_assert_eq(atomic_load(&stats.dispatched), N);
        cr_assert_eq(atomic_load(&stats.completed), N);
        wait_no_connections(s);
        int fd = client_connect(server_port(s));
        roundtrip(fd, "Eafter");
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, close_connection_flushes_earlier_and_drops_later, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        uint8_t buf[128];
        size_t off = 0;
        uint8_t slow[5] = { 'D' };
        put_be32(slow + 1, 50);
        frame_put(buf, &off, slow, sizeof(slow));       /* answered, late */
        frame_put(buf, &off, "Efirst", 6);               /* answered */
        frame_put(buf, &off, "S", 1);                    /* silent */
        frame_put(buf, &off, "C", 1);                    /* close here */
        frame_put(buf, &off, "Elater", 6);               /* never answered */
        send_all(fd, buf, off);

        uint8_t resp[16];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 5);
        cr_assert_eq(resp[0], 'D');
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 6);
        cr_assert_eq(memcmp(resp, "Efirst", 6), 0);
        cr_assert(recv_eof(fd), "connection not closed after request_close_connection");
        close(fd);
        wait_no_connections(s);
        server_stop(s);
        server_destroy(s);
}

Test(conn, late_close_drops_queued_and_orphans_handled, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));

        /* The close comes from a timer, once later requests are queued: one
         * complete (dropped at once), one still handled (orphaned, completed
         * later), and a frame still arriving (discarded). */
        uint8_t buf[128];
        size_t off = 0;
        uint8_t body[5];
        frame_put(buf, &off, "Efirst", 6);
        body[0] = 'X';
        put_be32(body + 1, 100);
        frame_put(buf, &off, body, sizeof(body));
        frame_put(buf, &off, "Edropped", 8);
        body[0] = 'D';
        put_be32(body + 1, 300);
        frame_put(buf, &off, body, sizeof(body));
        put_be32(buf + off, 1000);       /* a partial frame: size and 3 bytes */
        memcpy(buf + off + 4, "Epa", 3);
        off += 7;
        send_all(fd, buf, off);

        uint8_t resp[16];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 6);
        cr_assert(recv_eof(fd));
        close(fd);
        /* The orphan completes after the close; then the connection is freed. */
        for (int i = 0; i < 300 && atomic_load(&stats.completed) < 4; i++)
                sleep_ms(10);
        cr_assert_eq(atomic_load(&stats.dispatched), 4);
        cr_assert_eq(atomic_load(&stats.completed), 4);
        wait_no_connections(s);
        server_stop(s);
        server_destroy(s);
}

Test(conn, peer_gone_while_response_is_sent, .timeout = 60)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        enum { LEN = 16 << 20 };
        uint8_t *body = calloc(1, LEN);
        cr_assert_not_null(body);
        body[0] = 'E';
        send_frame(fd, body, LEN);
        free(body);
        for (int i = 0; i < 500 && atomic_load(&stats.completed) < 1; i++)
                sleep_ms(10);
        cr_assert_eq(atomic_load(&stats.completed), 1);
        sleep_ms(50);           /* the server is now blocked sending 16 MiB */
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);              /* RST */
        wait_no_connections(s);
        int fd2 = client_connect(server_port(s));
        roundtrip(fd2, "Eafter");
        close(fd2);
        server_stop(s);
        server_destroy(s);
}

struct blast {
        uint16_t port;
        int fd;
        uint32_t frame_count;
        uint32_t body_bytes;
};

static void *blast_sender(void *arg)
{
        struct blast *b = arg;
        enum { BATCH = 256 };
        uint32_t frame_bytes = 4 + b->body_bytes;
        uint8_t *buf = malloc((size_t)BATCH * frame_bytes);
        uint8_t *body = calloc(1, b->body_bytes);
        cr_assert(buf && body);
        body[0] = 'E';
        for (uint32_t i = 0; i < b->frame_count;) {
                size_t off = 0;
                for (uint32_t k = 0; k < BATCH && i < b->frame_count; k++, i++) {
                        put_be32(body + 1, i);
                        frame_put(buf, &off, body, b->body_bytes);
                }
                send_all(b->fd, buf, off);
        }
        free(body);
        free(buf);
        return NULL;
}

static void blast_and_check(struct server *s, uint32_t frame_count, uint32_t body_bytes)
{
        struct blast b = { .port = server_port(s), .frame_count = frame_count, .body_bytes = body_bytes };
        b.fd = client_connect(b.port);
        pthread_t sender;
        cr_assert_eq(pthread_create(&sender, NULL, blast_sender, &b), 0);
        uint8_t *resp = malloc(body_bytes);
        cr_assert_not_null(resp);
        for (uint32_t i = 0; i < frame_count; i++) {
                cr_assert_eq(recv_frame(b.fd, resp, body_bytes), body_bytes);
                cr_assert_eq(get_u32(resp + 1), i, "response %u out of order", i);
        }
        free(resp);
        pthread_join(sender, NULL);
        close(b.fd);
}

Test(conn, sustained_pipelining_under_tight_limits, .timeout = 120)
{
        struct server_options o;
        test_options(&o);
        o.max_inflight_requests_per_conn = 2;
        o.max_conn_buffer_bytes = 4096;
        struct server *s = start_server(&o);
        blast_and_check(s, 20000, 9);           /* many tiny frames: the in-flight bound */
        blast_and_check(s, 2000, 3000);         /* bigger frames: the byte bound */
        server_stop(s);
        server_destroy(s);
}

Test(conn, exhausted_buffer_ring_recovers, .timeout = 120)
{
        struct server_options o;
        test_options(&o);
        o.reactor_count = 1;
        o.recv_buffer_count = 2;        /* runs dry constantly: ENOBUFS, re-arm */
        o.recv_buffer_bytes = 512;
        struct server *s = start_server(&o);
        enum { CONNS = 8, REQS = 20, BODY = 5000 };
        int fds[CONNS];
        static uint8_t body[BODY];
        static uint8_t buf[REQS * (BODY + 4)];
        for (int c = 0; c < CONNS; c++)
                fds[c] = client_connect(server_port(s));
        for (int c = 0; c < CONNS; c++) {
                size_t off = 0;
                for (uint32_t i = 0; i < REQS; i++) {
                        memset(body, 'y', sizeof(body));
                        body[0] = 'E';
                        put_be32(body + 1, (uint32_t)c);
                        put_be32(body + 5, i);
                        frame_put(buf, &off, body, sizeof(body));
                }
                send_all(fds[c], buf, off);
        }
        for (int c = 0; c < CONNS; c++) {
                for (uint32_t i = 0; i < REQS; i++) {
                        static uint8_t resp[BODY];
                        cr_assert_eq(recv_frame(fds[c], resp, sizeof(resp)), BODY);
                        cr_assert_eq(get_u32(resp + 1), (uint32_t)c);
                        cr_assert_eq(get_u32(resp + 5), i);
                        cr_assert_eq(resp[BODY - 1], 'y');
                }
                close(fds[c]);
        }
        server_stop(s);
        server_destroy(s);
}

Test(conn, ipv6_loopback_listener, .timeout = 30)
{
        int probe = socket(AF_INET6, SOCK_STREAM, 0);
        struct sockaddr_in6 sin6;
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        sin6.sin6_addr = in6addr_loopback;
        bool has_ipv6 = probe >= 0 && bind(probe, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
        if (probe >= 0)
                close(probe);
        if (!has_ipv6)
                cr_skip_test("no IPv6 loopback here");

        struct server_options o;
        test_options(&o);
        o.host = "[::1]";               /* as written in a Kafka listener */
        struct server *s = start_server(&o);
        int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = { .tv_sec = TEST_IO_TIMEOUT_MS / 1000, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        sin6.sin6_port = htons(server_port(s));
        cr_assert_eq(connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)), 0);
        send_frame(fd, "A", 1);
        char resp[80];
        uint32_t got = recv_frame(fd, resp, sizeof(resp) - 1);
        resp[got] = '\0';
        cr_assert(strncmp(resp, "[::1]:", 6) == 0, "peer %s", resp);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, reactor_setup_failure_is_reported, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        /* 32768 x 16 MiB of provided buffers cannot be mapped. */
        o.recv_buffer_count = 32768;
        o.recv_buffer_bytes = 16u << 20;
        struct server *s = NULL;
        cr_assert_lt(server_start(&o, &s), 0);
        cr_assert_null(s);
}

struct hook_probe {
        atomic_int started_count;
        atomic_int stopped_count;
        atomic_int posted_count;
};

static struct hook_probe hooks;

static void hook_start(struct reactor *r, uint32_t index, void *ctx)
{
        cr_assert_eq(r, reactor_self());
        cr_assert_lt(index, 2);
        atomic_fetch_add(&hooks.started_count, 1);
}

static void hook_stop(struct reactor *r, uint32_t index, void *ctx)
{
        cr_assert_eq(r, reactor_self());
        atomic_fetch_add(&hooks.stopped_count, 1);
}

static void hook_posted(void *arg)
{
        cr_assert_eq(reactor_self(), arg);
        atomic_fetch_add(&hooks.posted_count, 1);
}

Test(conn, reactor_hooks_and_posting_into_server, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.on_reactor_start = hook_start;
        o.on_reactor_stop = hook_stop;
        struct server *s = start_server(&o);
        cr_assert_eq(atomic_load(&hooks.started_count), 2);
        cr_assert_eq(server_reactor_count(s), 2);
        for (uint32_t i = 0; i < server_reactor_count(s); i++) {
                struct reactor *r = server_reactor(s, i);
                cr_assert_not_null(r);
                cr_assert_eq(reactor_post(r, hook_posted, r), 0);
        }
        for (int i = 0; i < 500 && atomic_load(&hooks.posted_count) < 2; i++)
                sleep_ms(2);
        cr_assert_eq(atomic_load(&hooks.posted_count), 2);
        server_stop(s);
        cr_assert_eq(atomic_load(&hooks.stopped_count), 2);
        /* Stopped but not destroyed: posting fails cleanly. */
        cr_assert_eq(reactor_post(server_reactor(s, 0), hook_posted, NULL), -ESHUTDOWN);
        server_destroy(s);
}

Test(conn, response_of_many_chunks, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t buf[64];
        size_t off = 0;
        frame_put(buf, &off, "M", 1);
        frame_put(buf, &off, "Enext", 5);
        send_all(fd, buf, off);
        static char resp[MANY_CHUNKS * 8];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), MANY_CHUNKS * 8);
        for (unsigned i = 0; i < MANY_CHUNKS; i++) {
                char expect[9];
                snprintf(expect, sizeof(expect), "chunk%03u", i);
                cr_assert_eq(memcmp(resp + i * 8, expect, 8), 0, "chunk %u", i);
        }
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 5);
        cr_assert_eq(memcmp(resp, "Enext", 5), 0);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, silent_completion_sends_nothing, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t buf[64];
        size_t off = 0;
        frame_put(buf, &off, "S1", 2);
        frame_put(buf, &off, "S2", 2);
        frame_put(buf, &off, "Eonly", 5);
        send_all(fd, buf, off);
        uint8_t resp[16];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 5);
        cr_assert_eq(memcmp(resp, "Eonly", 5), 0);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, request_peer_names_the_client, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        struct sockaddr_in local;
        socklen_t len = sizeof(local);
        cr_assert_eq(getsockname(fd, (struct sockaddr *)&local, &len), 0);
        char expect[64];
        snprintf(expect, sizeof(expect), "127.0.0.1:%u", (unsigned)ntohs(local.sin_port));

        send_frame(fd, "A", 1);
        char resp[64];
        uint32_t got = recv_frame(fd, resp, sizeof(resp) - 1);
        resp[got] = '\0';
        cr_assert_str_eq(resp, expect);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, idle_connection_is_closed, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.connections_max_idle_ms = 200;
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        roundtrip(fd, "Ewarm");
        uint64_t start_ms = reactor_now_ms();
        cr_assert(recv_eof(fd), "idle connection not closed");
        uint64_t waited_ms = reactor_now_ms() - start_ms;
        cr_assert_geq(waited_ms, 150);
        cr_assert_leq(waited_ms, 2000);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

/* Regression: every byte of a frame used to count as activity, so a client
 * sending one byte a second (a slowloris) held its connection, and the frame
 * memory announced, forever. A frame must now arrive whole within the idle
 * timeout of its size prefix. */
Test(conn, trickled_frame_is_closed_as_idle, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.connections_max_idle_ms = 200;
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t hdr[4];
        put_be32(hdr, 100);
        send_all(fd, hdr, sizeof(hdr));
        uint64_t start_ms = reactor_now_ms();
        bool is_closed = false;
        for (int i = 0; i < 100 && !is_closed; i++) {
                uint8_t b = 'E';
                if (send(fd, &b, 1, MSG_NOSIGNAL) != 1) {
                        is_closed = true;
                        break;
                }
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                if (poll(&pfd, 1, 50) == 1) {
                        uint8_t buf[16];
                        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
                        cr_assert_leq(n, 0, "the server answered an incomplete frame");
                        is_closed = n == 0 || errno == ECONNRESET;
                }
        }
        uint64_t waited_ms = reactor_now_ms() - start_ms;
        cr_assert(is_closed, "a frame trickling in one byte per 50 ms was not closed");
        cr_assert_geq(waited_ms, 150);
        cr_assert_leq(waited_ms, 2000);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, busy_connection_is_not_idle, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.connections_max_idle_ms = 100;
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        /* A request handled for longer than the idle timeout (a long poll). */
        uint8_t body[5] = { 'D' };
        put_be32(body + 1, 400);
        send_frame(fd, body, sizeof(body));
        uint8_t resp[8];
        cr_assert_eq(recv_frame(fd, resp, sizeof(resp)), 5);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, many_connections_many_requests, .timeout = 60)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        enum { CONNS = 32, REQS = 50 };
        int fds[CONNS];
        for (int c = 0; c < CONNS; c++)
                fds[c] = client_connect(server_port(s));
        for (int c = 0; c < CONNS; c++) {
                static uint8_t buf[REQS * 16];
                size_t off = 0;
                for (uint32_t i = 0; i < REQS; i++) {
                        uint8_t body[9] = { 'E' };
                        put_be32(body + 1, (uint32_t)c);
                        put_be32(body + 5, i);
                        frame_put(buf, &off, body, sizeof(body));
                }
                send_all(fds[c], buf, off);
        }
        for (int c = 0; c < CONNS; c++) {
                for (uint32_t i = 0; i < REQS; i++) {
                        uint8_t resp[16];
                        cr_assert_eq(recv_frame(fds[c], resp, sizeof(resp)), 9);
                        cr_assert_eq(get_u32(resp + 1), (uint32_t)c);
                        cr_assert_eq(get_u32(resp + 5), i);
                }
                close(fds[c]);
        }
        server_stop(s);
        server_destroy(s);
        cr_assert_eq(atomic_load(&stats.dispatched), CONNS * REQS);
}

Test(conn, max_connections_refuses_extra, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.max_connections = 1;
        struct server *s = start_server(&o);
        int first = client_connect(server_port(s));
        roundtrip(first, "Efirst");
        int second = client_connect(server_port(s));    /* the kernel accepts, we close */
        cr_assert(recv_eof(second));
        roundtrip(first, "Estill");
        close(second);
        close(first);
        server_stop(s);
        server_destroy(s);
}

Test(conn, stop_waits_for_requests_in_flight, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        reset_stats();
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        uint8_t body[5] = { 'D' };
        put_be32(body + 1, 200);
        send_frame(fd, body, sizeof(body));
        for (int i = 0; i < 300 && atomic_load(&stats.dispatched) < 1; i++)
                sleep_ms(5);
        cr_assert_eq(atomic_load(&stats.dispatched), 1);
        server_stop(s);         /* the request is completed during the drain */
        cr_assert_eq(atomic_load(&stats.completed), 1);
        server_destroy(s);
        close(fd);
}

Test(conn, listen_on_all_interfaces, .timeout = 30)
{
        struct server_options o;
        test_options(&o);
        o.host = "";
        struct server *s = start_server(&o);
        int fd = client_connect(server_port(s));
        roundtrip(fd, "Eany");
        close(fd);
        server_stop(s);
        server_destroy(s);
}

Test(conn, bad_options_are_refused)
{
        struct server_options o;
        struct server *s = NULL;
        test_options(&o);
        o.dispatch = NULL;
        cr_assert_eq(server_start(&o, &s), -EINVAL);
        test_options(&o);
        o.recv_buffer_count = 100;
        cr_assert_eq(server_start(&o, &s), -EINVAL);
        test_options(&o);
        o.host = "256.1.1.1";
        cr_assert_lt(server_start(&o, &s), 0);
}

Test(conn, port_in_use_is_reported)
{
        struct server_options o;
        test_options(&o);
        struct server *s = start_server(&o);
        /* A plain socket (no SO_REUSEPORT) on the same port must fail... */
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(server_port(s));
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_neq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        close(fd);
        server_stop(s);
        server_destroy(s);
}

/* ---- reactor tests (the reactor runs on the test's own thread) */

struct timer_log {
        int order[16];
        int count;
};

struct timer_arg {
        struct timer_log *log;
        int id;
};

static void record_timer(void *arg)
{
        struct timer_arg *t = arg;
        cr_assert_lt(t->log->count, 16);
        t->log->order[t->log->count++] = t->id;
}

static void run_until_timers_done(struct reactor *r)
{
        for (int i = 0; i < 1000 && reactor_timer_count(r) > 0; i++)
                cr_assert_geq(reactor_run_once(r, 100), 0);
        cr_assert_eq(reactor_timer_count(r), 0);
}

Test(reactor, timers_fire_in_order_and_cancel_works, .timeout = 30)
{
        struct reactor *r;
        cr_assert_eq(reactor_create(NULL, &r), 0);
        cr_assert_eq(reactor_self(), r);
        struct timer_log log = { .count = 0 };
        struct timer_arg a[6];
        static const uint64_t delays_ms[6] = { 40, 10, 30, 10, 20, 0 };
        reactor_timer_id ids[6];
        for (int i = 0; i < 6; i++) {
                a[i].log = &log;
                a[i].id = i;
                ids[i] = reactor_timer_add(r, delays_ms[i], record_timer, &a[i]);
                cr_assert_neq(ids[i], 0);
        }
        cr_assert(reactor_timer_cancel(r, ids[2]));
        cr_assert_not(reactor_timer_cancel(r, ids[2]), "double cancel");
        cr_assert_eq(reactor_timer_count(r), 5);

        uint64_t start_ms = reactor_now_ms();
        run_until_timers_done(r);
        cr_assert_geq(reactor_now_ms() - start_ms, 40);
        /* By deadline; equal deadlines in insertion order. */
        int expect[] = { 5, 1, 3, 4, 0 };
        cr_assert_eq(log.count, 5);
        for (int i = 0; i < 5; i++)
                cr_assert_eq(log.order[i], expect[i], "position %d: timer %d", i, log.order[i]);
        /* Stale ids cancel nothing, even once their slots are reused. */
        reactor_timer_id again = reactor_timer_add(r, 1000, record_timer, &a[0]);
        for (int i = 0; i < 6; i++)
                cr_assert_not(reactor_timer_cancel(r, ids[i]));
        cr_assert(reactor_timer_cancel(r, again));
        cr_assert_not(reactor_timer_cancel(r, 0));
        reactor_destroy(r);
        cr_assert_null(reactor_self());
}

struct self_adding {
        struct reactor *r;
        int fired_count;
};

static void add_again(void *arg)
{
        struct self_adding *sa = arg;
        sa->fired_count++;
        if (sa->fired_count < 50)
                cr_assert_neq(reactor_timer_add(sa->r, 0, add_again, sa), 0);
}

Test(reactor, zero_delay_timer_added_by_timer_waits_for_next_iteration, .timeout = 30)
{
        struct reactor *r;
        cr_assert_eq(reactor_create(NULL, &r), 0);
        struct self_adding sa = { .r = r, .fired_count = 0 };
        cr_assert_neq(reactor_timer_add(r, 0, add_again, &sa), 0);
        cr_assert_geq(reactor_run_once(r, 0), 0);
        cr_assert_eq(sa.fired_count, 1, "a timer added while firing ran in the same pass");
        run_until_timers_done(r);
        cr_assert_eq(sa.fired_count, 50);
        reactor_destroy(r);
}

static void count_timer(void *arg)
{
        (*(int *)arg)++;
}

Test(reactor, timer_limit_is_enforced)
{
        struct reactor_options ro;
        reactor_options_init(&ro);
        ro.timer_max_count = 100;
        struct reactor *r;
        cr_assert_eq(reactor_create(&ro, &r), 0);
        int fired = 0;
        reactor_timer_id ids[100];
        for (int i = 0; i < 100; i++) {
                ids[i] = reactor_timer_add(r, (uint64_t)(i % 7), count_timer, &fired);
                cr_assert_neq(ids[i], 0);
        }
        cr_assert_eq(reactor_timer_add(r, 1, count_timer, &fired), 0);
        /* Cancel every other one from the middle of the heap. */
        for (int i = 0; i < 100; i += 2)
                cr_assert(reactor_timer_cancel(r, ids[i]));
        run_until_timers_done(r);
        cr_assert_eq(fired, 50);
        reactor_destroy(r);
}

struct post_probe {
        struct reactor *r;
        atomic_int ran_count;
        pthread_t ran_on;
        struct reactor *ran_in;
};

static void probe_fn(void *arg)
{
        struct post_probe *p = arg;
        p->ran_on = pthread_self();
        p->ran_in = reactor_self();
        atomic_fetch_add(&p->ran_count, 1);
}

static void *poster_main(void *arg)
{
        struct post_probe *p = arg;
        cr_assert_null(reactor_self());
        for (int i = 0; i < 1000; i++) {
                int rc;
                /* Bounded retry on a full queue. */
                for (int k = 0; k < 1000 && (rc = reactor_post(p->r, probe_fn, p)) == -EAGAIN; k++)
                        sleep_ms(1);
                cr_assert_eq(rc, 0);
        }
        return NULL;
}

Test(reactor, post_from_other_thread_runs_on_reactor, .timeout = 30)
{
        struct reactor_options ro;
        reactor_options_init(&ro);
        ro.post_queue_cap = 64;         /* small, so the full-queue path is taken */
        struct reactor *r;
        cr_assert_eq(reactor_create(&ro, &r), 0);
        struct post_probe p = { .r = r };
        atomic_init(&p.ran_count, 0);
        pthread_t poster;
        cr_assert_eq(pthread_create(&poster, NULL, poster_main, &p), 0);
        for (int i = 0; i < 10000 && atomic_load(&p.ran_count) < 1000; i++)
                cr_assert_geq(reactor_run_once(r, 100), 0);
        pthread_join(poster, NULL);
        cr_assert_eq(atomic_load(&p.ran_count), 1000);
        cr_assert(pthread_equal(p.ran_on, pthread_self()));
        cr_assert_eq(p.ran_in, r);

        reactor_close_posts(r);
        cr_assert_eq(reactor_post(r, probe_fn, &p), -ESHUTDOWN);
        reactor_destroy(r);
}

static void *stopper_main(void *arg)
{
        sleep_ms(50);
        reactor_stop(arg);
        return NULL;
}

Test(reactor, stop_from_other_thread_ends_run, .timeout = 30)
{
        struct reactor *r;
        cr_assert_eq(reactor_create(NULL, &r), 0);
        pthread_t stopper;
        cr_assert_eq(pthread_create(&stopper, NULL, stopper_main, r), 0);
        cr_assert_eq(reactor_run(r), 0);
        cr_assert(reactor_is_stop_requested(r));
        pthread_join(stopper, NULL);
        reactor_destroy(r);
}

struct task_probe {
        struct reactor *r;
        struct reactor_task task;
        int ran_count;
};

static void task_fn(void *arg)
{
        struct task_probe *t = arg;
        t->ran_count++;
}

Test(reactor, deferred_task_runs_once_per_defer, .timeout = 30)
{
        struct reactor *r;
        cr_assert_eq(reactor_create(NULL, &r), 0);
        struct task_probe t = { .r = r };
        reactor_task_init(&t.task, task_fn, &t);
        reactor_defer(r, &t.task);
        reactor_defer(r, &t.task);      /* already queued: still once */
        /* A queued task makes the loop not wait. */
        uint64_t start_ms = reactor_now_ms();
        cr_assert_geq(reactor_run_once(r, 5000), 0);
        cr_assert_lt(reactor_now_ms() - start_ms, 1000);
        cr_assert_eq(t.ran_count, 1);
        reactor_defer(r, &t.task);
        cr_assert_geq(reactor_run_once(r, 0), 0);
        cr_assert_eq(t.ran_count, 2);
        reactor_destroy(r);
}
