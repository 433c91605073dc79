/*
 * bench_file_send.c - how fast the connection layer sends file ranges of
 * responses (request_append_file), in splice mode and in copy mode.
 *
 * The server is one reactor thread with one conn_set, as in the broker. A
 * client in a child process asks, over 127.0.0.1, for a file chunk after
 * chunk (--chunk-kib each, --inflight requests pipelined) until it has read
 * the whole file (--size-mib, page cache warm), and reads as fast as it can.
 * Each response is a 4-byte size and the file range, so the server's work is
 * what a Fetch answer's log bytes cost.
 *
 * Per round it prints the throughput and CPU seconds per GB (10^9 bytes):
 *   reactor  the reactor thread alone;
 *   server   the whole server process: the reactor plus io_uring's worker
 *            threads, which run the splices (and any read that misses the
 *            page cache);
 *   client   the reading process, for scale.
 *
 *   bench_file_send [--mode splice|copy|both] [--size-mib N] [--chunk-kib N]
 *                   [--inflight N] [--rounds N] [--dir PATH]
 *
 * Not a test: it asserts nothing beyond the bytes being the right ones.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../protocol/arena.h"
#include "../server/conn.h"
#include "../server/reactor.h"
#include "../server/request.h"

#define BENCH_ROUNDS_MAX 50
#define BENCH_IO_TIMEOUT_S 30

struct bench_options {
        const char *mode;               /* splice, copy or both */
        uint64_t size_bytes;
        uint32_t chunk_bytes;
        uint32_t inflight_count;
        uint32_t round_count;
        const char *dir;
};

struct bench_server {
        pthread_t thread;
        struct conn_config cfg;
        struct reactor *reactor;
        struct conn_set *set;
        atomic_uint conn_count;
        atomic_bool is_ready;
        atomic_bool has_failed;
        int listen_fd;
        uint16_t port;
};

static int file_fd = -1;
static uint64_t file_bytes;
static atomic_uint_fast64_t released_count;

static uint8_t file_byte(uint64_t offset)
{
        return (uint8_t)((offset * 0x9E3779B97F4A7C15ull) >> 56);
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t timeval_ns(const struct timeval *tv)
{
        return (uint64_t)tv->tv_sec * 1000000000u + (uint64_t)tv->tv_usec * 1000u;
}

static void put_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- server */

static void bench_release(void *arg)
{
        (void)arg;
        atomic_fetch_add(&released_count, 1);
}

/* A request is a u64 offset and a u32 length; the answer is the range. */
static void bench_dispatch(struct request *req, void *ctx)
{
        (void)ctx;
        if (req->frame_len != 12) {
                request_close_connection(req);
                return;
        }
        uint64_t offset = ((uint64_t)get_u32(req->frame) << 32) | get_u32(req->frame + 4);
        uint32_t len = get_u32(req->frame + 8);
        uint8_t *size = arena_alloc(&req->arena, 4);
        if (!size || offset > file_bytes || len > file_bytes - offset ||
            request_append(req, size, 4) != 0 ||
            request_append_file(req, file_fd, offset, len, bench_release, NULL) != 0) {
                request_close_connection(req);
                return;
        }
        put_be32(size, len);
        request_complete(req);
}

static void *bench_server_main(void *arg)
{
        struct bench_server *s = arg;
        struct reactor *r;
        int rc = reactor_create(NULL, &r);
        if (rc) {
                fprintf(stderr, "reactor_create: %s\n", strerror(-rc));
                atomic_store(&s->has_failed, true);
                return NULL;
        }
        rc = conn_set_create(r, &s->cfg, &s->set);
        if (rc) {
                fprintf(stderr, "conn_set_create: %s\n", strerror(-rc));
                reactor_destroy(r);
                atomic_store(&s->has_failed, true);
                return NULL;
        }
        s->reactor = r;
        atomic_store(&s->is_ready, true);
        reactor_run(r);
        conn_set_close_all(s->set);
        for (int i = 0; i < 1000 && conn_set_alive_count(s->set) > 0; i++)
                reactor_run_once(r, 10);
        reactor_close_posts(r);
        conn_set_destroy(s->set);
        reactor_destroy(r);
        return NULL;
}

static int bench_server_start(struct bench_server *s, enum conn_file_send_mode mode)
{
        memset(s, 0, sizeof(*s));
        s->cfg.dispatch = bench_dispatch;
        s->cfg.socket_request_max_bytes = 1 << 20;
        s->cfg.max_inflight_requests_per_conn = 1024;
        s->cfg.max_conn_buffer_bytes = 32u << 20;
        s->cfg.request_arena_max_bytes = 1u << 20;
        s->cfg.recv_buffer_count = 256;
        s->cfg.recv_buffer_bytes = 32768;
        s->cfg.shared_conn_count = &s->conn_count;
        s->cfg.max_conn_count = 16;
        s->cfg.file_send_mode = mode;

        s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s->listen_fd < 0)
                return -errno;
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        if (bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(s->listen_fd, 16) != 0 ||
            getsockname(s->listen_fd, (struct sockaddr *)&sin, &len) != 0) {
                int rc = -errno;
                close(s->listen_fd);
                return rc;
        }
        s->port = ntohs(sin.sin_port);
        struct timeval tv = { .tv_sec = BENCH_IO_TIMEOUT_S, .tv_usec = 0 };
        setsockopt(s->listen_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

        if (pthread_create(&s->thread, NULL, bench_server_main, s) != 0) {
                close(s->listen_fd);
                return -EAGAIN;
        }
        for (int i = 0; i < 5000 && !atomic_load(&s->is_ready) && !atomic_load(&s->has_failed); i++)
                usleep(1000);
        if (!atomic_load(&s->is_ready)) {
                pthread_join(s->thread, NULL);
                close(s->listen_fd);
                return -EIO;
        }
        return 0;
}

static void bench_server_stop(struct bench_server *s)
{
        reactor_stop(s->reactor);
        pthread_join(s->thread, NULL);
        close(s->listen_fd);
}

struct bench_open {
        struct bench_server *server;
        int fd;
};

static void bench_open_conn(void *arg)
{
        struct bench_open *o = arg;
        int rc = conn_open(o->server->set, o->fd);
        if (rc)
                fprintf(stderr, "conn_open: %s\n", strerror(-rc));
}

/* ---- client (child process: no allocation, no stdio until done) */

struct client_result {
        uint64_t elapsed_ns;
        uint64_t received_bytes;
        int32_t error;                  /* 0, or the line that failed */
};

static int client_send_request(int fd, uint64_t offset, uint32_t len)
{
        uint8_t frame[16];
        put_be32(frame, 12);
        put_be32(frame + 4, (uint32_t)(offset >> 32));
        put_be32(frame + 8, (uint32_t)offset);
        put_be32(frame + 12, len);
        return send(fd, frame, sizeof(frame), MSG_NOSIGNAL) == (ssize_t)sizeof(frame) ? 0 : -1;
}

static int client_recv_exact(int fd, uint8_t *p, size_t len)
{
        while (len > 0) {
                ssize_t n = recv(fd, p, len, 0);
                if (n <= 0)
                        return -1;
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

static void client_run(uint16_t port, const struct bench_options *o, uint8_t *buf, int result_fd)
{
        struct client_result res = { 0, 0, 0 };
        uint64_t chunk_count = file_bytes / o->chunk_bytes;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = { .tv_sec = BENCH_IO_TIMEOUT_S, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct sockaddr_in sin;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_port = htons(port);
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
                res.error = __LINE__;
                goto out;
        }
        uint64_t start_ns = now_ns();
        uint64_t sent = 0;
        for (; sent < chunk_count && sent < o->inflight_count; sent++)
                if (client_send_request(fd, sent * o->chunk_bytes, o->chunk_bytes) != 0) {
                        res.error = __LINE__;
                        goto out;
                }
        for (uint64_t i = 0; i < chunk_count; i++) {
                uint8_t hdr[4];
                if (client_recv_exact(fd, hdr, 4) != 0 || get_u32(hdr) != o->chunk_bytes ||
                    client_recv_exact(fd, buf, o->chunk_bytes) != 0) {
                        res.error = __LINE__;
                        goto out;
                }
                uint64_t base = i * o->chunk_bytes;
                if (buf[0] != file_byte(base) || buf[o->chunk_bytes - 1] != file_byte(base + o->chunk_bytes - 1) ||
                    buf[o->chunk_bytes / 2] != file_byte(base + o->chunk_bytes / 2)) {
                        res.error = __LINE__;
                        goto out;
                }
                res.received_bytes += o->chunk_bytes;
                if (sent < chunk_count) {
                        if (client_send_request(fd, sent * o->chunk_bytes, o->chunk_bytes) != 0) {
                                res.error = __LINE__;
                                goto out;
                        }
                        sent++;
                }
        }
        res.elapsed_ns = now_ns() - start_ns;
out:
        close(fd);
        if (write(result_fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
                _exit(2);
        _exit(0);
}

/* ---- rounds */

struct round_figures {
        double gb_per_s;
        double reactor_cpu_s_per_gb;
        double server_cpu_s_per_gb;
        double client_cpu_s_per_gb;
};

static int thread_cpu_ns(pthread_t t, uint64_t *out)
{
        clockid_t clock;
        struct timespec ts;
        if (pthread_getcpuclockid(t, &clock) != 0 || clock_gettime(clock, &ts) != 0)
                return -1;
        *out = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        return 0;
}

static int bench_round(enum conn_file_send_mode mode, const struct bench_options *o, uint8_t *buf,
                       struct round_figures *out)
{
        struct bench_server s;
        struct bench_open open_arg;
        int rc = bench_server_start(&s, mode);
        if (rc) {
                fprintf(stderr, "cannot start the server: %s\n", strerror(-rc));
                return rc;
        }
        int result_pipe[2];
        if (pipe2(result_pipe, O_CLOEXEC) != 0) {
                rc = -errno;
                goto out_stop;
        }
        struct rusage self_before, self_after, child;
        uint64_t reactor_before_ns = 0, reactor_after_ns = 0;
        getrusage(RUSAGE_SELF, &self_before);
        thread_cpu_ns(s.thread, &reactor_before_ns);

        pid_t pid = fork();
        if (pid < 0) {
                rc = -errno;
                goto out_close_pipe;
        }
        if (pid == 0)
                client_run(s.port, o, buf, result_pipe[1]);

        int server_fd = accept4(s.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (server_fd < 0) {
                rc = -errno;
                fprintf(stderr, "accept: %s\n", strerror(errno));
                kill(pid, SIGKILL);
        } else {
                open_arg.server = &s;
                open_arg.fd = server_fd;
                if (reactor_post(s.reactor, bench_open_conn, &open_arg) != 0) {
                        close(server_fd);
                        kill(pid, SIGKILL);
                        rc = -EIO;
                }
        }
        int status = 0;
        struct client_result res;
        memset(&res, 0, sizeof(res));
        if (wait4(pid, &status, 0, &child) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                if (!rc)
                        rc = -EIO;
        } else if (read(result_pipe[0], &res, sizeof(res)) != (ssize_t)sizeof(res) || res.error) {
                fprintf(stderr, "client failed at bench_file_send.c:%d\n", res.error);
                rc = -EIO;
        }
        /* The connection goes when the client does: wait for it, so the
         * figures include everything the server did for this round. */
        for (int i = 0; i < 5000 && atomic_load(&s.conn_count) > 0; i++)
                usleep(1000);
        thread_cpu_ns(s.thread, &reactor_after_ns);
        getrusage(RUSAGE_SELF, &self_after);
        if (!rc) {
                double gb = (double)res.received_bytes / 1e9;
                double self_ns = (double)(timeval_ns(&self_after.ru_utime) + timeval_ns(&self_after.ru_stime)) -
                                 (double)(timeval_ns(&self_before.ru_utime) + timeval_ns(&self_before.ru_stime));
                out->gb_per_s = gb / ((double)res.elapsed_ns / 1e9);
                out->reactor_cpu_s_per_gb = (double)(reactor_after_ns - reactor_before_ns) / 1e9 / gb;
                out->server_cpu_s_per_gb = self_ns / 1e9 / gb;
                out->client_cpu_s_per_gb =
                        (double)(timeval_ns(&child.ru_utime) + timeval_ns(&child.ru_stime)) / 1e9 / gb;
        }
out_close_pipe:
        close(result_pipe[0]);
        close(result_pipe[1]);
out_stop:
        bench_server_stop(&s);
        return rc;
}

static int compare_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(double *v, uint32_t n)
{
        qsort(v, n, sizeof(*v), compare_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- setup */

static int file_prepare(const struct bench_options *o)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/runnel-bench-file-send-XXXXXX", o->dir);
        int fd = mkstemp(path);
        if (fd < 0) {
                fprintf(stderr, "cannot create a file in %s: %s\n", o->dir, strerror(errno));
                return -1;
        }
        unlink(path);
        enum { BLOCK = 1 << 20 };
        uint8_t *block = malloc(BLOCK);
        if (!block) {
                close(fd);
                return -1;
        }
        for (uint64_t off = 0; off < o->size_bytes; off += BLOCK) {
                size_t n = o->size_bytes - off < BLOCK ? (size_t)(o->size_bytes - off) : BLOCK;
                for (size_t i = 0; i < n; i++)
                        block[i] = file_byte(off + i);
                if (pwrite(fd, block, n, (off_t)off) != (ssize_t)n) {
                        fprintf(stderr, "cannot write the file: %s\n", strerror(errno));
                        free(block);
                        close(fd);
                        return -1;
                }
        }
        /* Clean pages, so that writeback does not run during the rounds;
         * they stay cached, and are read once anyway so a round measures
         * sending, not the disk. */
        if (fdatasync(fd) != 0)
                fprintf(stderr, "fdatasync: %s\n", strerror(errno));
        for (uint64_t off = 0; off < o->size_bytes; off += BLOCK)
                if (pread(fd, block, BLOCK, (off_t)off) < 0)
                        break;
        free(block);
        file_fd = fd;
        file_bytes = o->size_bytes;
        return 0;
}

static void usage(void)
{
        fprintf(stderr, "usage: bench_file_send [--mode splice|copy|both] [--size-mib N] [--chunk-kib N]\n"
                        "                       [--inflight N] [--rounds N] [--dir PATH]\n");
        exit(2);
}

static uint64_t parse_count(const char *s, uint64_t max)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v == 0 || v > max)
                usage();
        return v;
}

int main(int argc, char **argv)
{
        struct bench_options o = {
                .mode = "both", .size_bytes = 1ull << 30, .chunk_bytes = 1u << 20,
                .inflight_count = 4, .round_count = 3, .dir = "/var/tmp",
        };
        for (int i = 1; i < argc; i++) {
                if (i + 1 >= argc)
                        usage();
                if (!strcmp(argv[i], "--mode"))
                        o.mode = argv[++i];
                else if (!strcmp(argv[i], "--size-mib"))
                        o.size_bytes = parse_count(argv[++i], 1u << 20) << 20;
                else if (!strcmp(argv[i], "--chunk-kib"))
                        o.chunk_bytes = (uint32_t)parse_count(argv[++i], 1u << 20) << 10;
                else if (!strcmp(argv[i], "--inflight"))
                        o.inflight_count = (uint32_t)parse_count(argv[++i], 512);
                else if (!strcmp(argv[i], "--rounds"))
                        o.round_count = (uint32_t)parse_count(argv[++i], BENCH_ROUNDS_MAX);
                else if (!strcmp(argv[i], "--dir"))
                        o.dir = argv[++i];
                else
                        usage();
        }
        bool run_splice = !strcmp(o.mode, "splice") || !strcmp(o.mode, "both");
        bool run_copy = !strcmp(o.mode, "copy") || !strcmp(o.mode, "both");
        if ((!run_splice && !run_copy) || o.chunk_bytes > o.size_bytes)
                usage();
        signal(SIGPIPE, SIG_IGN);       /* as the broker does */
        if (file_prepare(&o) != 0)
                return 1;
        uint8_t *buf = malloc(o.chunk_bytes);
        if (!buf)
                return 1;

        printf("file %llu MiB, chunks of %u KiB, %u in flight, %u rounds per mode\n",
               (unsigned long long)(o.size_bytes >> 20), o.chunk_bytes >> 10, o.inflight_count,
               o.round_count);
        printf("%-7s %6s %9s %15s %14s %14s\n", "mode", "round", "GB/s", "reactor s/GB", "server s/GB",
               "client s/GB");
        static const enum conn_file_send_mode modes[2] = { CONN_FILE_SEND_SPLICE, CONN_FILE_SEND_COPY };
        static const char *const names[2] = { "splice", "copy" };
        double figures[2][4][BENCH_ROUNDS_MAX];
        int rc = 0;
        /* Modes alternate round by round, so drift hits both alike. */
        for (uint32_t round = 0; round < o.round_count && !rc; round++) {
                for (int m = 0; m < 2 && !rc; m++) {
                        if ((m == 0 && !run_splice) || (m == 1 && !run_copy))
                                continue;
                        struct round_figures f = { 0, 0, 0, 0 };
                        rc = bench_round(modes[m], &o, buf, &f);
                        if (rc)
                                break;
                        figures[m][0][round] = f.gb_per_s;
                        figures[m][1][round] = f.reactor_cpu_s_per_gb;
                        figures[m][2][round] = f.server_cpu_s_per_gb;
                        figures[m][3][round] = f.client_cpu_s_per_gb;
                        printf("%-7s %6u %9.2f %15.3f %14.3f %14.3f\n", names[m], round + 1, f.gb_per_s,
                               f.reactor_cpu_s_per_gb, f.server_cpu_s_per_gb, f.client_cpu_s_per_gb);
                        fflush(stdout);
                }
        }
        if (!rc) {
                for (int m = 0; m < 2; m++) {
                        if ((m == 0 && !run_splice) || (m == 1 && !run_copy))
                                continue;
                        printf("%-7s %6s %9.2f %15.3f %14.3f %14.3f\n", names[m], "median",
                               median(figures[m][0], o.round_count), median(figures[m][1], o.round_count),
                               median(figures[m][2], o.round_count), median(figures[m][3], o.round_count));
                }
                printf("file ranges released: %llu\n", (unsigned long long)atomic_load(&released_count));
        }
        free(buf);
        close(file_fd);
        return rc ? 1 : 0;
}
