/*
 * bench_limits.c - the machine's own limits, which `make bench` sets beside
 * every broker figure: what any broker on this machine could at best reach.
 *
 *   bench_limits tcp   [-d SECONDS] [-c CHUNK_KIB]
 *        A plain socket pump over 127.0.0.1: one process writes CHUNK_KIB
 *        buffers as fast as it can, another reads them. The loopback bandwidth
 *        of one TCP stream, what one consumer connection can at most carry.
 *   bench_limits write -f DIR [-m MIB]
 *        Sequential 1 MiB writes of a new file in DIR, then one fdatasync:
 *        the durable write bandwidth of DIR's disk (and, apart, the speed of
 *        the writes into the page cache alone).
 *   bench_limits fsync -f DIR [-s BYTES] [-n COUNT] [-d SECONDS]
 *        Append BYTES to a file in DIR, fdatasync, repeat (as a log's group
 *        commit does): syncs per second and the latency of write + fdatasync.
 *   bench_limits cpu -f DIR [-m MIB] [-c CHUNK_KIB]
 *        The CPU floor of the produce path: what any broker must spend per
 *        byte produced. The CPU seconds (getrusage) of a process receiving
 *        MIB over a loopback TCP stream into a 1 MiB buffer (the receiver
 *        alone, as a broker's figure is its own process's; the sender sends
 *        CHUNK_KIB buffers), then of write()s of as many bytes, 1 MiB each,
 *        into a new file in DIR (page cache only, no sync), each per 10^9
 *        bytes, and their sum.
 *
 * Prints one JSON object on stdout. Files are removed afterwards. Every loop
 * stops at its count or its deadline, whichever comes first. Not a test.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
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

#define LIMITS_CHUNK_MAX (16u << 20)
#define LIMITS_WRITE_BLOCK (1u << 20)
#define LIMITS_FSYNC_COUNT_MAX 1000000
#define LIMITS_IO_TIMEOUT_S 30
#define LIMITS_CPU_BUF_BYTES (1u << 20)

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *what)
{
        fprintf(stderr, "bench_limits: %s: %s\n", what, strerror(errno));
        exit(1);
}

static uint8_t *buffer_new(size_t len)
{
        uint8_t *b = malloc(len);
        if (!b)
                fail("malloc");
        for (size_t i = 0; i < len; i++)
                b[i] = (uint8_t)(i * 131u + 7u);
        return b;
}

/* ---- tcp */

/* A listening socket on a free port of 127.0.0.1, its address in sin. */
static int listen_loopback(struct sockaddr_in *sin)
{
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memset(sin, 0, sizeof(*sin));
        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(*sin);
        if (lfd < 0 || bind(lfd, (struct sockaddr *)sin, sizeof(*sin)) != 0 || listen(lfd, 1) != 0 ||
            getsockname(lfd, (struct sockaddr *)sin, &len) != 0)
                fail("listen");
        return lfd;
}

/* The sender's connection, with receives bounded in time. */
static int accept_bounded(int lfd)
{
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                fail("accept");
        struct timeval tv = { .tv_sec = LIMITS_IO_TIMEOUT_S, .tv_usec = 0 };
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        return fd;
}

/* A child that connects to sin and sends chunk_bytes buffers: size_bytes
 * in all (0: until the reader hangs up), for at most duration_s. */
static pid_t fork_sender(const struct sockaddr_in *sin, const uint8_t *buf, uint32_t chunk_bytes,
                         uint64_t size_bytes, double duration_s)
{
        pid_t pid = fork();
        if (pid < 0)
                fail("fork");
        if (pid > 0)
                return pid;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) != 0)
                _exit(1);
        uint64_t deadline_ns = now_ns() + (uint64_t)(duration_s * 1e9);
        for (uint64_t sent = 0; (size_bytes == 0 || sent < size_bytes) && now_ns() < deadline_ns;) {
                size_t n = chunk_bytes;
                if (size_bytes > 0 && size_bytes - sent < n)
                        n = (size_t)(size_bytes - sent);
                ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);
                if (w <= 0)
                        break;
                sent += (uint64_t)w;
        }
        _exit(0);
}

static int run_tcp(double duration_s, uint32_t chunk_bytes)
{
        struct sockaddr_in sin;
        int lfd = listen_loopback(&sin);
        uint8_t *buf = buffer_new(chunk_bytes);
        pid_t pid = fork_sender(&sin, buf, chunk_bytes, 0, duration_s + LIMITS_IO_TIMEOUT_S);
        int fd = accept_bounded(lfd);
        uint64_t received = 0;
        uint64_t start_ns = now_ns(), t = start_ns;
        uint64_t stop_ns = start_ns + (uint64_t)(duration_s * 1e9);
        for (uint64_t i = 0; t < stop_ns; i++) {
                ssize_t n = recv(fd, buf, chunk_bytes, 0);
                if (n <= 0)
                        break;
                received += (uint64_t)n;
                if ((i & 15) == 0)
                        t = now_ns();
        }
        t = now_ns();
        close(fd);
        close(lfd);
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        free(buf);
        double s = (double)(t - start_ns) / 1e9;
        printf("{\"mode\":\"tcp\",\"bytes\":%" PRIu64 ",\"elapsed_s\":%.3f,\"chunk_bytes\":%u,\"mb_per_s\":%.1f}\n",
               received, s, chunk_bytes, (double)received / 1e6 / s);
        return 0;
}

/* ---- cpu */

static double rusage_cpu_s(void)
{
        struct rusage ru;
        if (getrusage(RUSAGE_SELF, &ru) != 0)
                fail("getrusage");
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
               (double)ru.ru_stime.tv_usec / 1e6;
}

/* Receives size_bytes sent by a child over loopback: this process's CPU
 * seconds. */
static double cpu_receive_s(uint64_t size_bytes, uint32_t chunk_bytes, uint8_t *buf)
{
        struct sockaddr_in sin;
        int lfd = listen_loopback(&sin);
        pid_t pid = fork_sender(&sin, buf, chunk_bytes, size_bytes, LIMITS_IO_TIMEOUT_S);
        int fd = accept_bounded(lfd);
        double cpu0_s = rusage_cpu_s();
        uint64_t received = 0;
        while (received < size_bytes) {
                ssize_t n = recv(fd, buf, LIMITS_CPU_BUF_BYTES, 0);
                if (n <= 0)
                        break;
                received += (uint64_t)n;
        }
        double cpu_s = rusage_cpu_s() - cpu0_s;
        close(fd);
        close(lfd);
        waitpid(pid, NULL, 0);
        if (received < size_bytes) {
                fprintf(stderr, "bench_limits: received %" PRIu64 " of %" PRIu64 " bytes\n", received, size_bytes);
                exit(1);
        }
        return cpu_s;
}

/* Writes size_bytes into a new file in dir, 1 MiB at a time: this
 * process's CPU seconds. */
static double cpu_write_s(const char *dir, uint64_t size_bytes, const uint8_t *buf)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/bench-limits-cpu.%d", dir, (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                fail(path);
        double cpu0_s = rusage_cpu_s();
        for (uint64_t written = 0; written < size_bytes;) {
                size_t n = size_bytes - written < LIMITS_CPU_BUF_BYTES ? (size_t)(size_bytes - written)
                                                                      : LIMITS_CPU_BUF_BYTES;
                ssize_t w = write(fd, buf, n);
                if (w <= 0)
                        fail("write");
                written += (uint64_t)w;
        }
        double cpu_s = rusage_cpu_s() - cpu0_s;
        close(fd);
        unlink(path);
        return cpu_s;
}

static int run_cpu(const char *dir, uint64_t size_bytes, uint32_t chunk_bytes)
{
        uint8_t *buf = buffer_new(chunk_bytes > LIMITS_CPU_BUF_BYTES ? chunk_bytes : LIMITS_CPU_BUF_BYTES);
        double gb = (double)size_bytes / 1e9;
        double receive_s = cpu_receive_s(size_bytes, chunk_bytes, buf);
        double write_s = cpu_write_s(dir, size_bytes, buf);
        free(buf);
        printf("{\"mode\":\"cpu\",\"bytes\":%" PRIu64 ",\"chunk_bytes\":%u,\"receive_cpu_s\":%.3f,"
               "\"write_cpu_s\":%.3f,\"receive_s_per_gb\":%.3f,\"write_s_per_gb\":%.3f,\"sum_s_per_gb\":%.3f}\n",
               size_bytes, chunk_bytes, receive_s, write_s, receive_s / gb, write_s / gb, (receive_s + write_s) / gb);
        return 0;
}

/* ---- write */

static int run_write(const char *dir, uint64_t size_bytes)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/bench-limits-write.%d", dir, (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                fail(path);
        uint8_t *buf = buffer_new(LIMITS_WRITE_BLOCK);
        uint64_t start_ns = now_ns();
        uint64_t written = 0;
        while (written < size_bytes) {
                ssize_t n = write(fd, buf, LIMITS_WRITE_BLOCK);
                if (n <= 0)
                        fail("write");
                written += (uint64_t)n;
        }
        uint64_t written_ns = now_ns();
        if (fdatasync(fd) != 0)
                fail("fdatasync");
        uint64_t synced_ns = now_ns();
        close(fd);
        unlink(path);
        free(buf);
        double total_s = (double)(synced_ns - start_ns) / 1e9;
        printf("{\"mode\":\"write\",\"bytes\":%" PRIu64 ",\"elapsed_s\":%.3f,\"mb_per_s\":%.1f,"
               "\"page_cache_mb_per_s\":%.1f}\n",
               written, total_s, (double)written / 1e6 / total_s,
               (double)written / 1e6 / ((double)(written_ns - start_ns) / 1e9));
        return 0;
}

/* ---- fsync */

static int compare_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static int run_fsync(const char *dir, uint32_t size_bytes, uint64_t count, double duration_s)
{
        char path[4096];
        snprintf(path, sizeof(path), "%s/bench-limits-fsync.%d", dir, (int)getpid());
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0)
                fail(path);
        uint8_t *buf = buffer_new(size_bytes);
        uint64_t *lat = malloc(count * sizeof(uint64_t));
        if (!lat)
                fail("malloc");
        uint64_t start_ns = now_ns();
        uint64_t stop_ns = start_ns + (uint64_t)(duration_s * 1e9);
        uint64_t n = 0;
        for (; n < count; n++) {
                uint64_t t0 = now_ns();
                if (t0 >= stop_ns)
                        break;
                if (write(fd, buf, size_bytes) != (ssize_t)size_bytes)
                        fail("write");
                if (fdatasync(fd) != 0)
                        fail("fdatasync");
                lat[n] = now_ns() - t0;
        }
        double s = (double)(now_ns() - start_ns) / 1e9;
        close(fd);
        unlink(path);
        qsort(lat, n, sizeof(*lat), compare_u64);
#define PCT(q) (n ? (double)lat[(uint64_t)((double)(n - 1) * (q))] / 1e6 : -1.0)
        printf("{\"mode\":\"fsync\",\"size_bytes\":%u,\"count\":%" PRIu64 ",\"elapsed_s\":%.3f,\"per_s\":%.1f,"
               "\"mb_per_s\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f}\n",
               size_bytes, n, s, (double)n / s, (double)n * size_bytes / 1e6 / s, PCT(0.5), PCT(0.99),
               n ? (double)lat[n - 1] / 1e6 : -1.0);
#undef PCT
        free(lat);
        free(buf);
        return 0;
}

static uint64_t parse_u64(const char *s, uint64_t max)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || end == s || v == 0 || v > max) {
                fprintf(stderr, "bench_limits: bad number: %s\n", s);
                exit(2);
        }
        return v;
}

static void usage(void)
{
        fprintf(stderr, "usage: bench_limits tcp [-d SECONDS] [-c CHUNK_KIB]\n"
                        "       bench_limits write -f DIR [-m MIB]\n"
                        "       bench_limits fsync -f DIR [-s BYTES] [-n COUNT] [-d SECONDS]\n"
                        "       bench_limits cpu -f DIR [-m MIB] [-c CHUNK_KIB]\n");
        exit(2);
}

int main(int argc, char **argv)
{
        if (argc < 2)
                usage();
        const char *mode = argv[1], *dir = NULL;
        double duration_s = 3;
        uint32_t chunk_bytes = 256u << 10, size_bytes = 16384;
        uint64_t write_bytes = 1024ull << 20, count = 100000;
        for (int i = 2; i + 1 < argc; i += 2) {
                const char *a = argv[i], *v = argv[i + 1];
                if (strcmp(a, "-d") == 0) {
                        char *end;
                        duration_s = strtod(v, &end);
                        if (*end || end == v || !(duration_s > 0 && duration_s <= 3600))
                                usage();
                } else if (strcmp(a, "-c") == 0)
                        chunk_bytes = (uint32_t)parse_u64(v, LIMITS_CHUNK_MAX >> 10) << 10;
                else if (strcmp(a, "-f") == 0)
                        dir = v;
                else if (strcmp(a, "-m") == 0)
                        write_bytes = parse_u64(v, 1u << 20) << 20;
                else if (strcmp(a, "-s") == 0)
                        size_bytes = (uint32_t)parse_u64(v, LIMITS_CHUNK_MAX);
                else if (strcmp(a, "-n") == 0)
                        count = parse_u64(v, LIMITS_FSYNC_COUNT_MAX);
                else
                        usage();
        }
        if (argc % 2 != 0)
                usage();
        if (strcmp(mode, "tcp") == 0)
                return run_tcp(duration_s, chunk_bytes);
        if (!dir)
                usage();
        if (strcmp(mode, "write") == 0)
                return run_write(dir, write_bytes);
        if (strcmp(mode, "fsync") == 0)
                return run_fsync(dir, size_bytes, count, duration_s);
        if (strcmp(mode, "cpu") == 0)
                return run_cpu(dir, write_bytes, chunk_bytes);
        usage();
        return 2;
}
