/*
 * logging.c - see logging.h. Formats into a stack buffer and writes it with
 * one write(2) so that lines from different threads never interleave.
 */
#include "logging.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_threshold = LOG_LEVEL_INFO;
static int log_threshold_read;

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void logging_set_level(enum log_level level)
{
        log_threshold = level;
        log_threshold_read = 1;
}

int logging_enabled(enum log_level level)
{
        if (!log_threshold_read) {
                const char *env = getenv("RUNNEL_LOG_LEVEL");
                if (env && strcasecmp(env, "debug") == 0)
                        log_threshold = LOG_LEVEL_DEBUG;
                else if (env && strcasecmp(env, "warn") == 0)
                        log_threshold = LOG_LEVEL_WARN;
                else if (env && strcasecmp(env, "error") == 0)
                        log_threshold = LOG_LEVEL_ERROR;
                log_threshold_read = 1;
        }
        return level >= log_threshold;
}

void logging_write(enum log_level level, const char *fmt, ...)
{
        if (!logging_enabled(level))
                return;
        char line[2048];
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(line, sizeof(line), "[%Y-%m-%d %H:%M:%S", &tm);
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",%03ld] %s ", ts.tv_nsec / 1000000,
                              level_names[level]);
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
        va_end(ap);
        if (m < 0)
                m = 0;
        n += (size_t)m;
        if (n > sizeof(line) - 2)
                n = sizeof(line) - 2;
        line[n++] = '\n';
        ssize_t w = write(STDERR_FILENO, line, n);
        (void)w;
}

static unsigned long long log_monotonic_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (unsigned long long)ts.tv_sec * 1000ull + (unsigned long long)ts.tv_nsec / 1000000ull;
}

int log_limit_allow(struct log_limit *l, unsigned long long interval_ms, unsigned long long *suppressed_count_out)
{
        unsigned long long now_ms = log_monotonic_ms();
        unsigned long long next_ms = atomic_load(&l->next_ms);

        /* One thread wins the slot; the others count themselves held back. */
        if (now_ms >= next_ms && atomic_compare_exchange_strong(&l->next_ms, &next_ms, now_ms + interval_ms)) {
                *suppressed_count_out = atomic_exchange(&l->suppressed_count, 0);
                return 1;
        }
        atomic_fetch_add(&l->suppressed_count, 1);
        return 0;
}
