/*
 * test_conn_file.c - responses carrying file ranges (request_append_file),
 * in splice mode and in copy mode, over 127.0.0.1.
 *
 * The server here is a bare reactor thread with one conn_set rather than
 * server.c, so that each test can pick conn_config.file_send_mode. The test
 * thread accepts on its own listening socket and hands each accepted socket
 * to the reactor with reactor_post().
 *
 * A request is a recipe: how to complete it, then a list of items, each
 * either memory bytes (a length and a seed for their pattern) or a file range
 * (which file, offset, length). The response is a 4-byte size, then the
 * items in order: memory items with request_append, file items with
 * request_append_file. Every byte of a test file is a function of its offset
 * (file_byte), so a client checks any range without a copy of the file.
 *
 *   'N'  complete at once          'D'  complete from a timer after delay_ms
 *   'S'  complete silently          'C'  request_close_connection
 *   'E'  exercise request_append_file's failures, then answer nothing
 *
 * Every release is recorded by token: each must come exactly once, on the
 * reactor thread, and by the end of a test released == appended.
 *
 * Clients are blocking sockets with receive/send timeouts, so every wait is
 * bounded.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/conn.h"
#include "server/reactor.h"
#include "server/request.h"

#define TEST_IO_TIMEOUT_MS 10000
#define TOKEN_MAX (1u << 18)
#define RECIPE_BYTES_MAX 8192
#define FILE_BIG 0
#define FILE_SHORT 1
#define FILE_UNREADABLE 2                       /* open for writing only */
#define SHORT_FILE_BYTES 10000u

/* ---- files */

static int file_fds[3] = { -1, -1, -1 };

static uint8_t file_byte(uint64_t offset)
{
        return (uint8_t)((offset * 0x9E3779B97F4A7C15ull) >> 56);
}

static uint8_t mem_byte(uint8_t seed, uint64_t i)
{
        return (uint8_t)(seed * 31u + i * 13u + (i >> 8));
}

/* An unlinked file of size_bytes holding file_byte(offset) at each offset. */
static int file_create(uint64_t size_bytes)
{
        char path[] = "/tmp/runnel-test-conn-file-XXXXXX";
        int fd = mkstemp(path);
        cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
        unlink(path);
        enum { BLOCK = 1 << 20 };
        uint8_t *buf = malloc(BLOCK);
        cr_assert_not_null(buf);
        for (uint64_t off = 0; off < size_bytes; off += BLOCK) {
                size_t n = size_bytes - off < BLOCK ? (size_t)(size_bytes - off) : BLOCK;
                for (size_t i = 0; i < n; i++)
                        buf[i] = file_byte(off + i);
                cr_assert_eq(pwrite(fd, buf, n, (off_t)off), (ssize_t)n);
        }
        free(buf);
        return fd;
}

static void files_create(uint64_t big_bytes)
{
        file_fds[FILE_BIG] = file_create(big_bytes);
        file_fds[FILE_SHORT] = file_create(SHORT_FILE_BYTES);
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", file_fds[FILE_SHORT]);
        file_fds[FILE_UNREADABLE] = open(path, O_WRONLY | O_CLOEXEC);
        cr_assert_geq(file_fds[FILE_UNREADABLE], 0, "reopen: %s", strerror(errno));
}

static void files_close(void)
{
        for (int i = 0; i < 3; i++) {
                if (file_fds[i] >= 0)
                        close(file_fds[i]);
                file_fds[i] = -1;
        }
}

/* ---- the server under test */

struct harness {
        pthread_t thread;
        struct conn_config cfg;
        struct reactor *reactor;
        struct conn_set *set;
        atomic_uint conn_count;         /* conn_config.shared_conn_count */
        atomic_bool is_ready;
        atomic_uint alive_at_exit;
        int listen_fd;
        uint16_t port;
};

static struct harness h;
static uint64_t arena_max_bytes = 64u << 20;    /* per request, for harness_start */

struct release_log {
        atomic_uint appended_count;
        atomic_uint released_count;
        atomic_uchar is_released[TOKEN_MAX];
};

static struct release_log rl;

static void test_release(void *arg)
{
        uintptr_t token = (uintptr_t)arg;
        cr_assert_lt(token, TOKEN_MAX);
        cr_assert_eq(reactor_self(), h.reactor, "release off the reactor thread");
        cr_assert_eq(atomic_exchange(&rl.is_released[token], 1), 0, "token %lu released twice",
                     (unsigned long)token);
        atomic_fetch_add(&rl.released_count, 1);
}

static void *new_token(void)
{
        uint32_t token = atomic_fetch_add(&rl.appended_count, 1);
        cr_assert_lt(token, TOKEN_MAX);
        return (void *)(uintptr_t)token;
}

static uint16_t get_u16(const uint8_t *p)
{
        return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

static uint32_t get_u32(const uint8_t *p)
{
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t get_u64(const uint8_t *p)
{
        return ((uint64_t)get_u32(p) << 32) | get_u32(p + 4);
}

static void put_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
        put_be32(p, (uint32_t)(v >> 32));
        put_be32(p + 4, (uint32_t)v);
}

static void complete_on_timer(void *arg)
{
        request_complete(arg);
}

/* request_append_file's failures: each returns an error having released. */
static void exercise_append_errors(struct request *req)
{
        uint32_t before = atomic_load(&rl.released_count);
        cr_assert_eq(request_append_file(req, -1, 0, 10, test_release, new_token()), -EINVAL);
        cr_assert_eq(request_append_file(req, file_fds[FILE_BIG], UINT64_MAX - 5, 10, test_release,
                                         new_token()), -EINVAL);
        cr_assert_eq(atomic_load(&rl.released_count), before + 2);
        /* A NULL release is allowed, on success and on failure. */
        cr_assert_eq(request_append_file(req, file_fds[FILE_BIG], 0, 10, NULL, NULL), 0);
        cr_assert_eq(request_append_file(req, -1, 0, 10, NULL, NULL), -EINVAL);
        /* A zero-length range adds no chunk but is released like the rest. */
        uint32_t chunks = req->chunk_count;
        cr_assert_eq(request_append_file(req, file_fds[FILE_BIG], 0, 0, test_release, new_token()), 0);
        cr_assert_eq(req->chunk_count, chunks);
        /* The arena runs out: the failing call releases at once. */
        int rc = 0;
        for (int i = 0; i < 100000 && rc == 0; i++)
                rc = request_append_file(req, file_fds[FILE_BIG], (uint64_t)i, 1, test_release, new_token());
        cr_assert_eq(rc, -ENOMEM);
        /* Unreleased: the zero-length range and every range the loop added. */
        cr_assert_eq(atomic_load(&rl.appended_count) - atomic_load(&rl.released_count),
                     req->chunk_count - chunks + 1, "only the ranges on the request are unreleased");
        request_complete_silently(req);
}

static void recipe_dispatch(struct request *req, void *ctx)
{
        (void)ctx;
        const uint8_t *p = req->frame;
        uint32_t n = req->frame_len;
        cr_assert_eq(req->reactor, reactor_self());
        cr_assert_geq(n, 7);
        char kind = (char)p[0];
        uint32_t delay_ms = get_u32(p + 1);
        uint16_t item_count = get_u16(p + 5);
        if (kind == 'E') {
                exercise_append_errors(req);
                return;
        }

        uint8_t *size = arena_alloc(&req->arena, 4);
        cr_assert_not_null(size);
        cr_assert_eq(request_append(req, size, 4), 0);
        uint32_t total = 0;
        uint32_t off = 7;
        for (uint16_t i = 0; i < item_count; i++) {
                cr_assert_lt(off, n);
                if (p[off] == 'm') {
                        cr_assert_leq(off + 6, n);
                        uint32_t len = get_u32(p + off + 1);
                        uint8_t seed = p[off + 5];
                        uint8_t *bytes = arena_alloc(&req->arena, len + 1); /* +1: never contiguous */
                        cr_assert_not_null(bytes);
                        for (uint32_t k = 0; k < len; k++)
                                bytes[k] = mem_byte(seed, k);
                        cr_assert_eq(request_append(req, bytes, len), 0);
                        total += len;
                        off += 6;
                } else {
                        cr_assert_eq(p[off], 'f');
                        cr_assert_leq(off + 14, n);
                        int fd = file_fds[p[off + 1]];
                        uint64_t offset = get_u64(p + off + 2);
                        uint32_t len = get_u32(p + off + 10);
                        cr_assert_eq(request_append_file(req, fd, offset, len, test_release, new_token()), 0);
                        total += len;
                        off += 14;
                }
        }
        cr_assert_eq(off, n);
        put_be32(size, total);
        cr_assert_eq(req->response_bytes, 4 + (uint64_t)total);

        switch (kind) {
        case 'N':
                request_complete(req);
                break;
        case 'D':
                cr_assert_neq(reactor_timer_add(req->reactor, delay_ms, complete_on_timer, req), 0);
                break;
        case 'S':
                request_complete_silently(req);
                break;
        case 'C':
                request_close_connection(req);
                break;
        default:
                cr_assert_fail("unknown recipe kind %c", kind);
        }
}

static void sleep_ms(uint64_t ms)
{
        struct timespec ts = { .tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000 };
        nanosleep(&ts, NULL);
}

static void *harness_main(void *arg)
{
        (void)arg;
        struct reactor *r;
        struct conn_set *set;
        cr_assert_eq(reactor_create(NULL, &r), 0);
        cr_assert_eq(conn_set_create(r, &h.cfg, &set), 0);
        h.reactor = r;
        h.set = set;
        atomic_store(&h.is_ready, true);
        cr_assert_eq(reactor_run(r), 0);
        /* As server.c drains: close everything, run until the connections go. */
        conn_set_close_all(set);
        for (int i = 0; i < 500 && conn_set_alive_count(set) > 0; i++)
                cr_assert_geq(reactor_run_once(r, 10), 0);
        atomic_store(&h.alive_at_exit, conn_set_alive_count(set));
        reactor_close_posts(r);
        conn_set_destroy(set);
        reactor_destroy(r);
        return NULL;
}

static void harness_start(enum conn_file_send_mode mode)
{
        memset(&h.cfg, 0, sizeof(h.cfg));
        h.cfg.dispatch = recipe_dispatch;
        h.cfg.socket_request_max_bytes = 1 << 20;
        h.cfg.max_inflight_requests_per_conn = 100;
        h.cfg.max_conn_buffer_bytes = 32u << 20;
        h.cfg.request_arena_max_bytes = arena_max_bytes;
        h.cfg.recv_buffer_count = 64;
        h.cfg.recv_buffer_bytes = 16384;
        h.cfg.shared_conn_count = &h.conn_count;
        h.cfg.max_conn_count = 1024;
        h.cfg.file_send_mode = mode;
        atomic_store(&h.conn_count, 0);
        atomic_store(&h.is_ready, false);

        h.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(h.listen_fd, 0);
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(bind(h.listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
        cr_assert_eq(listen(h.listen_fd, 128), 0);
        socklen_t len = sizeof(sin);
        cr_assert_eq(getsockname(h.listen_fd, (struct sockaddr *)&sin, &len), 0);
        h.port = ntohs(sin.sin_port);
        struct timeval tv = { .tv_sec = TEST_IO_TIMEOUT_MS / 1000, .tv_usec = 0 };
        setsockopt(h.listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));   /* bounds accept */

        cr_assert_eq(pthread_create(&h.thread, NULL, harness_main, NULL), 0);
        for (int i = 0; i < 1000 && !atomic_load(&h.is_ready); i++)
                sleep_ms(2);
        cr_assert(atomic_load(&h.is_ready));
}

static void harness_stop(void)
{
        reactor_stop(h.reactor);
        pthread_join(h.thread, NULL);
        close(h.listen_fd);
        cr_assert_eq(atomic_load(&h.alive_at_exit), 0, "connections outlived the drain");
        cr_assert_eq(atomic_load(&h.conn_count), 0);
}

static void harness_open_conn(void *arg)
{
        int fd = (int)(intptr_t)arg;
        cr_assert_eq(conn_open(h.set, fd), 0);
}

/* A client socket whose server side the reactor owns. rcvbuf_bytes and
 * server_sndbuf_bytes 0 keep the default socket buffers. */
static int client_connect_with(int rcvbuf_bytes, int server_sndbuf_bytes)
{
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        struct timeval tv = { .tv_sec = TEST_IO_TIMEOUT_MS / 1000, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (rcvbuf_bytes > 0)
                setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf_bytes, sizeof(rcvbuf_bytes));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(h.port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        cr_assert_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0, "connect: %s", strerror(errno));

        int server_fd = accept4(h.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        cr_assert_geq(server_fd, 0, "accept: %s", strerror(errno));
        if (server_sndbuf_bytes > 0)
                setsockopt(server_fd, SOL_SOCKET, SO_SNDBUF, &server_sndbuf_bytes,
                           sizeof(server_sndbuf_bytes));
        cr_assert_eq(reactor_post(h.reactor, harness_open_conn, (void *)(intptr_t)server_fd), 0);
        return fd;
}

static int client_connect(void)
{
        return client_connect_with(0, 0);
}

/* Waits (bounded) until the reactor has freed every connection. */
static void wait_no_connections(void)
{
        for (int i = 0; i < 1000 && atomic_load(&h.conn_count) > 0; i++)
                sleep_ms(10);
        cr_assert_eq(atomic_load(&h.conn_count), 0);
}

static void reset_release_log(void)
{
        atomic_store(&rl.appended_count, 0);
        atomic_store(&rl.released_count, 0);
        for (uint32_t i = 0; i < TOKEN_MAX; i++)
                atomic_store(&rl.is_released[i], 0);
}

static void assert_all_released(void)
{
        uint32_t appended = atomic_load(&rl.appended_count);
        for (int i = 0; i < 500 && atomic_load(&rl.released_count) < appended; i++)
                sleep_ms(10);
        cr_assert_eq(atomic_load(&rl.released_count), appended, "%u of %u file ranges released",
                     atomic_load(&rl.released_count), appended);
}

static uint32_t open_fd_count(void)
{
        DIR *d = opendir("/proc/self/fd");
        cr_assert_not_null(d);
        uint32_t count = 0;
        for (int i = 0; i < 100000 && readdir(d); i++)
                count++;
        closedir(d);
        return count;
}

/* ---- client side */

struct recipe {
        uint8_t frame[RECIPE_BYTES_MAX];
        uint32_t len;
        uint16_t item_count;
        uint64_t response_bytes;        /* without the 4-byte size */
};

static void recipe_init(struct recipe *r, char kind, uint32_t delay_ms)
{
        r->frame[0] = (uint8_t)kind;
        put_be32(r->frame + 1, delay_ms);
        r->len = 7;
        r->item_count = 0;
        r->response_bytes = 0;
}

static void recipe_set_count(struct recipe *r)
{
        r->frame[5] = (uint8_t)(r->item_count >> 8);
        r->frame[6] = (uint8_t)r->item_count;
}

static void recipe_mem(struct recipe *r, uint32_t len, uint8_t seed)
{
        cr_assert_leq(r->len + 6, RECIPE_BYTES_MAX);
        r->frame[r->len] = 'm';
        put_be32(r->frame + r->len + 1, len);
        r->frame[r->len + 5] = seed;
        r->len += 6;
        r->item_count++;
        r->response_bytes += len;
        recipe_set_count(r);
}

static void recipe_file(struct recipe *r, uint8_t file, uint64_t offset, uint32_t len)
{
        cr_assert_leq(r->len + 14, RECIPE_BYTES_MAX);
        r->frame[r->len] = 'f';
        r->frame[r->len + 1] = file;
        put_be64(r->frame + r->len + 2, offset);
        put_be32(r->frame + r->len + 10, len);
        r->len += 14;
        r->item_count++;
        r->response_bytes += len;
        recipe_set_count(r);
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

static void recipe_send(int fd, const struct recipe *r)
{
        uint8_t hdr[4];
        put_be32(hdr, r->len);
        send_all(fd, hdr, 4);
        send_all(fd, r->frame, r->len);
}

/* Sends two requests in one write, so that the second is on its way even
 * if the first makes the server close the connection. */
static void recipe_send_two(int fd, const struct recipe *a, const struct recipe *b)
{
        static uint8_t buf[2 * (4 + RECIPE_BYTES_MAX)];
        put_be32(buf, a->len);
        memcpy(buf + 4, a->frame, a->len);
        put_be32(buf + 4 + a->len, b->len);
        memcpy(buf + 8 + a->len, b->frame, b->len);
        send_all(fd, buf, 8 + a->len + b->len);
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

/* Reads len bytes and checks each against want(arg, index). */
static void recv_check(int fd, uint64_t len, uint8_t (*want)(uint64_t base, uint64_t i), uint64_t base,
                       const char *what)
{
        static uint8_t buf[1 << 16];
        uint64_t done = 0;
        while (done < len) {
                size_t n = len - done < sizeof(buf) ? (size_t)(len - done) : sizeof(buf);
                cr_assert_eq(recv_exact(fd, buf, n), 0, "%s: EOF or timeout after %llu of %llu bytes",
                             what, (unsigned long long)done, (unsigned long long)len);
                for (size_t i = 0; i < n; i++)
                        if (buf[i] != want(base, done + i))
                                cr_assert_fail("%s: byte %llu is %u, want %u", what,
                                               (unsigned long long)(done + i), buf[i], want(base, done + i));
                done += n;
        }
}

static uint8_t want_file(uint64_t offset, uint64_t i)
{
        return file_byte(offset + i);
}

static uint8_t want_mem(uint64_t seed, uint64_t i)
{
        return mem_byte((uint8_t)seed, i);
}

/* Reads the response to r and checks it byte for byte. */
static void recipe_check(int fd, const struct recipe *r)
{
        uint8_t hdr[4];
        cr_assert_eq(recv_exact(fd, hdr, 4), 0, "no response (EOF or timeout)");
        cr_assert_eq(get_u32(hdr), r->response_bytes);
        uint32_t off = 7;
        for (uint16_t i = 0; i < r->item_count; i++) {
                char what[64];
                snprintf(what, sizeof(what), "item %u", i);
                if (r->frame[off] == 'm') {
                        recv_check(fd, get_u32(r->frame + off + 1), want_mem, r->frame[off + 5], what);
                        off += 6;
                } else {
                        recv_check(fd, get_u32(r->frame + off + 10), want_file, get_u64(r->frame + off + 2),
                                   what);
                        off += 14;
                }
        }
}

/* True if the server closes the connection within the I/O timeout. */
static bool recv_eof(int fd)
{
        uint8_t b[4096];
        for (int i = 0; i < 100000; i++) {
                ssize_t n = recv(fd, b, sizeof(b), 0);
                if (n == 0)
                        return true;
                if (n < 0)
                        return errno == ECONNRESET;
        }
        return false;
}

static void close_with_reset(int fd)
{
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        close(fd);
}

static uint64_t rng_state;

static uint32_t rng_next(void)
{
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        return (uint32_t)(rng_state >> 33);
}

/* ---- the scenarios, each run in both modes */

static uint32_t fds_before;

static void scenario_begin(enum conn_file_send_mode mode, uint64_t big_file_bytes)
{
        reset_release_log();
        files_create(big_file_bytes);
        fds_before = open_fd_count();
        harness_start(mode);
}

static void scenario_end(void)
{
        harness_stop();
        assert_all_released();
        /* Pipes, sockets and the ring are all closed again. */
        cr_assert_eq(open_fd_count(), fds_before, "file descriptors leaked");
        files_close();
}

static void mixed_chunks(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 8u << 20);
        int fd = client_connect();
        struct recipe *r = malloc(sizeof(*r));
        cr_assert_not_null(r);

        recipe_init(r, 'N', 0);
        recipe_mem(r, 10, 1);
        recipe_file(r, FILE_BIG, 0, 1000);
        recipe_mem(r, 3, 2);
        recipe_file(r, FILE_BIG, 5000, 70000);
        recipe_file(r, FILE_BIG, 123, 4096);            /* file after file */
        recipe_mem(r, 1, 3);
        recipe_send(fd, r);
        recipe_check(fd, r);

        recipe_init(r, 'N', 0);                         /* a lone byte at a page's end */
        recipe_file(r, FILE_BIG, 4095, 1);
        recipe_send(fd, r);
        recipe_check(fd, r);

        recipe_init(r, 'N', 0);                         /* exactly a pipe, and a page over */
        recipe_file(r, FILE_BIG, 4096, 1u << 20);
        recipe_file(r, FILE_BIG, 1, (1u << 20) + 5000);
        recipe_mem(r, 100000, 4);
        recipe_send(fd, r);
        recipe_check(fd, r);

        /* Many small pieces alternating: the chunk array grows, and each
         * file piece is its own step between memory sends. */
        rng_state = 7;
        recipe_init(r, 'N', 0);
        for (int i = 0; i < 200; i++) {
                recipe_mem(r, 1 + rng_next() % 40, (uint8_t)i);
                recipe_file(r, FILE_BIG, rng_next() % (7u << 20), 1 + rng_next() % 9000);
        }
        recipe_send(fd, r);
        recipe_check(fd, r);

        free(r);
        close(fd);
        wait_no_connections();
        cr_assert_eq(atomic_load(&rl.appended_count), 3 + 1 + 2 + 200);
        scenario_end();
}

Test(conn_file, mixed_chunks_splice, .timeout = 60) { mixed_chunks(CONN_FILE_SEND_SPLICE); }
Test(conn_file, mixed_chunks_copy, .timeout = 60) { mixed_chunks(CONN_FILE_SEND_COPY); }
Test(conn_file, mixed_chunks_default, .timeout = 60) { mixed_chunks(CONN_FILE_SEND_DEFAULT); }

static void large_range(enum conn_file_send_mode mode)
{
        scenario_begin(mode, (64u << 20) + 20000);
        int fd = client_connect();
        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 16, 9);
        recipe_file(&r, FILE_BIG, 12345, 64u << 20);    /* unaligned, 64 MiB */
        recipe_mem(&r, 16, 10);
        recipe_send(fd, &r);
        recipe_check(fd, &r);
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, large_range_splice, .timeout = 120) { large_range(CONN_FILE_SEND_SPLICE); }
Test(conn_file, large_range_copy, .timeout = 120) { large_range(CONN_FILE_SEND_COPY); }

/* Requests complete out of order (random delays); responses must not. */
static void pipelined_order(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 4u << 20);
        int fd = client_connect();
        enum { N = 300 };
        struct recipe *rs = malloc(N * sizeof(*rs));
        cr_assert_not_null(rs);
        rng_state = 42;
        for (uint32_t i = 0; i < N; i++) {
                recipe_init(&rs[i], 'D', rng_next() % 6);
                recipe_mem(&rs[i], 8, (uint8_t)i);
                recipe_file(&rs[i], FILE_BIG, rng_next() % (3u << 20), 1 + rng_next() % 70000);
                if (i % 3 == 0)
                        recipe_file(&rs[i], FILE_BIG, rng_next() % (3u << 20), 1 + rng_next() % 5000);
                recipe_mem(&rs[i], 4, (uint8_t)(i + 1));
        }
        /* Send while reading: the responses outgrow the socket buffers. */
        uint32_t sent = 0;
        for (uint32_t i = 0; i < N; i++) {
                for (; sent < N && sent < i + 50; sent++)
                        recipe_send(fd, &rs[sent]);
                recipe_check(fd, &rs[i]);
        }
        free(rs);
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, pipelined_order_splice, .timeout = 120) { pipelined_order(CONN_FILE_SEND_SPLICE); }
Test(conn_file, pipelined_order_copy, .timeout = 120) { pipelined_order(CONN_FILE_SEND_COPY); }

/* The peer goes away in the middle of a 64 MiB range with more responses
 * queued behind it: every range is released once, nothing leaks. */
static void peer_gone_mid_file(enum conn_file_send_mode mode, bool is_reset)
{
        scenario_begin(mode, (64u << 20) + 4096);
        int fd = client_connect();
        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 100, 1);
        recipe_file(&r, FILE_BIG, 100, 64u << 20);
        recipe_send(fd, &r);
        for (int i = 0; i < 5; i++) {
                struct recipe more;
                recipe_init(&more, i % 2 ? 'N' : 'D', 20);
                recipe_file(&more, FILE_BIG, (uint64_t)i << 20, 1u << 20);
                recipe_mem(&more, 10, 2);
                recipe_send(fd, &more);
        }
        uint8_t hdr[4];
        cr_assert_eq(recv_exact(fd, hdr, 4), 0);
        recv_check(fd, 100, want_mem, 1, "memory before the range");
        recv_check(fd, 1u << 20, want_file, 100, "first MiB of the range");
        if (is_reset)
                close_with_reset(fd);
        else
                close(fd);
        wait_no_connections();
        cr_assert_eq(atomic_load(&rl.appended_count), 6);

        /* The next connection gets a clean stage, not the dead one's bytes. */
        fd = client_connect();
        recipe_init(&r, 'N', 0);
        recipe_file(&r, FILE_BIG, 3, 200000);
        recipe_send(fd, &r);
        recipe_check(fd, &r);
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, peer_reset_mid_file_splice, .timeout = 60) { peer_gone_mid_file(CONN_FILE_SEND_SPLICE, true); }
Test(conn_file, peer_reset_mid_file_copy, .timeout = 60) { peer_gone_mid_file(CONN_FILE_SEND_COPY, true); }
Test(conn_file, peer_close_mid_file_splice, .timeout = 60) { peer_gone_mid_file(CONN_FILE_SEND_SPLICE, false); }
Test(conn_file, peer_close_mid_file_copy, .timeout = 60) { peer_gone_mid_file(CONN_FILE_SEND_COPY, false); }

/* A range past the end of a file that shrank: the connection closes after
 * what could be read, instead of leaving the client waiting for the rest. */
static void truncated_file(enum conn_file_send_mode mode, uint64_t offset)
{
        scenario_begin(mode, 1u << 20);
        int fd = client_connect();
        struct recipe ok;
        recipe_init(&ok, 'N', 0);
        recipe_file(&ok, FILE_SHORT, 0, SHORT_FILE_BYTES);
        recipe_send(fd, &ok);
        recipe_check(fd, &ok);

        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 7, 5);
        recipe_file(&r, FILE_SHORT, offset, 50000);
        recipe_send_two(fd, &r, &ok);           /* the second is never answered */
        uint8_t hdr[4];
        cr_assert_eq(recv_exact(fd, hdr, 4), 0);
        cr_assert_eq(get_u32(hdr), 7 + 50000);
        recv_check(fd, 7, want_mem, 5, "memory before the range");
        uint64_t readable = offset < SHORT_FILE_BYTES ? SHORT_FILE_BYTES - offset : 0;
        recv_check(fd, readable, want_file, offset, "what the file still has");
        cr_assert(recv_eof(fd), "a range past the end of its file did not close the connection");
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, truncated_file_closes_splice, .timeout = 60) { truncated_file(CONN_FILE_SEND_SPLICE, 3); }
Test(conn_file, truncated_file_closes_copy, .timeout = 60) { truncated_file(CONN_FILE_SEND_COPY, 3); }
Test(conn_file, range_past_eof_closes_splice, .timeout = 60) { truncated_file(CONN_FILE_SEND_SPLICE, 20000); }
Test(conn_file, range_past_eof_closes_copy, .timeout = 60) { truncated_file(CONN_FILE_SEND_COPY, 20000); }

/* Ranges on requests that never send them are released too. */
static void unsent_ranges_released(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 1u << 20);
        int fd = client_connect();
        struct recipe r;
        recipe_init(&r, 'S', 0);
        recipe_file(&r, FILE_BIG, 0, 1000);
        recipe_file(&r, FILE_BIG, 10, 0);               /* empty range: released, not sent */
        recipe_send(fd, &r);
        recipe_init(&r, 'N', 0);
        recipe_file(&r, FILE_BIG, 77, 3000);
        recipe_send(fd, &r);
        recipe_check(fd, &r);                           /* the silent one sent nothing */

        recipe_init(&r, 'C', 0);
        recipe_file(&r, FILE_BIG, 0, 1000);
        recipe_send(fd, &r);
        cr_assert(recv_eof(fd));
        close(fd);
        wait_no_connections();

        /* Completed after the peer left: an orphan, freed with its ranges. */
        fd = client_connect();
        recipe_init(&r, 'D', 150);
        recipe_file(&r, FILE_BIG, 0, 100000);
        recipe_send(fd, &r);
        sleep_ms(20);
        close_with_reset(fd);
        wait_no_connections();
        cr_assert_eq(atomic_load(&rl.appended_count), 5);
        scenario_end();
}

Test(conn_file, unsent_ranges_released_splice, .timeout = 60) { unsent_ranges_released(CONN_FILE_SEND_SPLICE); }
Test(conn_file, unsent_ranges_released_copy, .timeout = 60) { unsent_ranges_released(CONN_FILE_SEND_COPY); }

Test(conn_file, append_failures_release, .timeout = 60)
{
        arena_max_bytes = ARENA_BLOCK_BYTES;    /* the least allowed: runs out soon */
        scenario_begin(CONN_FILE_SEND_SPLICE, 1u << 20);
        int fd = client_connect();
        struct recipe r;
        recipe_init(&r, 'E', 0);
        recipe_send(fd, &r);
        recipe_init(&r, 'N', 0);
        recipe_file(&r, FILE_BIG, 5, 10);
        recipe_send(fd, &r);
        recipe_check(fd, &r);
        close(fd);
        wait_no_connections();
        cr_assert_gt(atomic_load(&rl.appended_count), 100);
        scenario_end();
}

/* A reader slower than the server: the socket fills, splices into it stop
 * short or find no room, and sending resumes where it stopped. */
static void slow_reader(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 8u << 20);
        int fd = client_connect_with(16384, 0);
        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 5, 1);
        recipe_file(&r, FILE_BIG, 333, 6u << 20);
        recipe_mem(&r, 5, 2);
        recipe_file(&r, FILE_BIG, 0, 300000);
        recipe_send(fd, &r);
        uint8_t hdr[4];
        cr_assert_eq(recv_exact(fd, hdr, 4), 0);
        cr_assert_eq(get_u32(hdr), r.response_bytes);
        recv_check(fd, 5, want_mem, 1, "first memory");
        /* The range in small reads, pausing now and then. */
        static uint8_t buf[4096];
        uint64_t done = 0;
        for (uint32_t i = 0; done < (6u << 20); i++) {
                size_t n = (6u << 20) - done < sizeof(buf) ? (size_t)((6u << 20) - done) : sizeof(buf);
                cr_assert_eq(recv_exact(fd, buf, n), 0);
                for (size_t k = 0; k < n; k++)
                        cr_assert_eq(buf[k], file_byte(333 + done + k), "byte %llu",
                                     (unsigned long long)(done + k));
                done += n;
                if (i % 128 == 0)
                        sleep_ms(1);
        }
        recv_check(fd, 5, want_mem, 2, "second memory");
        recv_check(fd, 300000, want_file, 0, "second range");
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, slow_reader_splice, .timeout = 120) { slow_reader(CONN_FILE_SEND_SPLICE); }
Test(conn_file, slow_reader_copy, .timeout = 120) { slow_reader(CONN_FILE_SEND_COPY); }

/* Many connections on one reactor sending at once: stages come from and go
 * back to one pool, and no connection's bytes reach another. */
static void many_connections(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 8u << 20);
        enum { CONNS = 20 };         /* more than the buffer pool keeps */
        int fds[CONNS];
        struct recipe r[CONNS];
        for (int c = 0; c < CONNS; c++) {
                fds[c] = client_connect();
                recipe_init(&r[c], 'N', 0);
                recipe_mem(&r[c], 4, (uint8_t)c);
                recipe_file(&r[c], FILE_BIG, (uint64_t)c * 100003, 3u << 20);
                recipe_mem(&r[c], 4, (uint8_t)(c + 100));
                recipe_send(fds[c], &r[c]);
        }
        for (int c = 0; c < CONNS; c++) {
                recipe_check(fds[c], &r[c]);
                recipe_send(fds[c], &r[c]);             /* again, from a pooled stage */
        }
        for (int c = 0; c < CONNS; c++) {
                recipe_check(fds[c], &r[c]);
                close(fds[c]);
        }
        wait_no_connections();
        scenario_end();
}

Test(conn_file, many_connections_splice, .timeout = 120) { many_connections(CONN_FILE_SEND_SPLICE); }
Test(conn_file, many_connections_copy, .timeout = 120) { many_connections(CONN_FILE_SEND_COPY); }

/* With no file descriptor left for a pipe, splice mode copies instead of
 * failing the connection. */
Test(conn_file, no_pipe_falls_back_to_copy, .timeout = 60)
{
        scenario_begin(CONN_FILE_SEND_SPLICE, 2u << 20);
        int fd = client_connect();

        /* No pipe exists yet (the pool is empty): leave no descriptor free. */
        struct rlimit saved;
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
        int lowest_free = dup(0);
        cr_assert_geq(lowest_free, 0);
        close(lowest_free);
        struct rlimit low = { .rlim_cur = (rlim_t)lowest_free, .rlim_max = saved.rlim_max };
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
        cr_assert_lt(dup(0), 0, "the limit should leave no descriptor free");

        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 3, 1);
        recipe_file(&r, FILE_BIG, 17, 1u << 20);
        recipe_file(&r, FILE_BIG, 4096, 5000);
        recipe_send(fd, &r);
        recipe_check(fd, &r);
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
        close(fd);
        wait_no_connections();
        scenario_end();
}

/* The socket is full before a file step starts (a large memory response went
 * first and the client is not reading): the splice finds no room at all,
 * waits for POLLOUT, and carries on. */
static void full_socket_before_file(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 4u << 20);
        int fd = client_connect_with(8192, 8192);
        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 1u << 20, 3);
        recipe_send(fd, &r);
        struct recipe f;
        recipe_init(&f, 'N', 0);
        for (int i = 0; i < 20; i++)
                recipe_file(&f, FILE_BIG, (uint64_t)i * 4096 * 5, 20000);
        recipe_send(fd, &f);
        sleep_ms(50);
        recipe_check(fd, &r);
        sleep_ms(50);
        recipe_check(fd, &f);
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, full_socket_before_file_splice, .timeout = 60) { full_socket_before_file(CONN_FILE_SEND_SPLICE); }
Test(conn_file, full_socket_before_file_copy, .timeout = 60) { full_socket_before_file(CONN_FILE_SEND_COPY); }

/* A file that cannot be read: the connection closes, nothing leaks. */
static void unreadable_file(enum conn_file_send_mode mode)
{
        scenario_begin(mode, 1u << 20);
        int fd = client_connect();
        struct recipe r;
        recipe_init(&r, 'N', 0);
        recipe_mem(&r, 9, 1);
        recipe_file(&r, FILE_UNREADABLE, 0, 100);
        recipe_send(fd, &r);
        uint8_t hdr[4];
        cr_assert_eq(recv_exact(fd, hdr, 4), 0);
        recv_check(fd, 9, want_mem, 1, "memory before the range");
        cr_assert(recv_eof(fd), "an unreadable file did not close the connection");
        close(fd);
        wait_no_connections();
        scenario_end();
}

Test(conn_file, unreadable_file_closes_splice, .timeout = 60) { unreadable_file(CONN_FILE_SEND_SPLICE); }
Test(conn_file, unreadable_file_closes_copy, .timeout = 60) { unreadable_file(CONN_FILE_SEND_COPY); }

Test(conn_file, unknown_file_send_mode_is_refused)
{
        struct reactor *r;
        struct conn_set *set = NULL;
        cr_assert_eq(reactor_create(NULL, &r), 0);
        memset(&h.cfg, 0, sizeof(h.cfg));
        h.cfg.dispatch = recipe_dispatch;
        h.cfg.max_inflight_requests_per_conn = 1;
        h.cfg.max_conn_buffer_bytes = 1;
        h.cfg.request_arena_max_bytes = ARENA_BLOCK_BYTES;
        h.cfg.recv_buffer_count = 2;
        h.cfg.recv_buffer_bytes = 64;
        h.cfg.file_send_mode = (enum conn_file_send_mode)(CONN_FILE_SEND_COPY + 1);
        cr_assert_eq(conn_set_create(r, &h.cfg, &set), -EINVAL);
        cr_assert_null(set);
        h.cfg.file_send_mode = CONN_FILE_SEND_SPLICE;
        cr_assert_eq(conn_set_create(r, &h.cfg, &set), 0);
        conn_set_destroy(set);
        reactor_destroy(r);
}
