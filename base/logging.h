/*
 * logging.h - operator log lines, one per event, on stderr.
 *
 * Format follows Kafka's log4j pattern closely enough that people who grep
 * Kafka logs can grep ours: "[2026-11-25 09:00:00,123] WARN message".
 * Every layer may log; this is the only thing below protocol/ besides libc.
 * Thread-safe: each line is written with a single write(2).
 */
#ifndef RUNNEL_LOGGING_H
#define RUNNEL_LOGGING_H

enum log_level {
        LOG_LEVEL_DEBUG,
        LOG_LEVEL_INFO,
        LOG_LEVEL_WARN,
        LOG_LEVEL_ERROR,
};

/* Lines below this level are dropped; default INFO, RUNNEL_LOG_LEVEL=debug lowers it. */
void logging_set_level(enum log_level level);
int logging_enabled(enum log_level level);

void logging_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A limit on one kind of line that may repeat for every request or every
 * connection (out of descriptors, say): at most one line per interval,
 * and that line says how many were held back since the one before.
 * Zero-initialized is ready; any thread.
 */
struct log_limit {
        _Atomic unsigned long long next_ms;     /* monotonic; no line before */
        _Atomic unsigned long long suppressed_count;
};

/* Whether a line may go out now; if so *suppressed_count_out gets the
 * lines held back since the last one went out, else the count grows. */
int log_limit_allow(struct log_limit *l, unsigned long long interval_ms, unsigned long long *suppressed_count_out);

#define log_debug(...) do { if (logging_enabled(LOG_LEVEL_DEBUG)) logging_write(LOG_LEVEL_DEBUG, __VA_ARGS__); } while (0)
#define log_info(...) logging_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...) logging_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) logging_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
