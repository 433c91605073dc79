/*
 * checkpoint.c - Kafka's checkpoint files and clean-shutdown marker; the
 * format and its reading rules are in checkpoint.h.
 *
 * Reading mirrors Kafka's CheckpointReadBuffer line by line: lines end at
 * "\n", "\r\n" or a lone "\r" (Java's readLine), fields are split on runs
 * of whitespace the way String.split("\\s+") splits (a leading run makes
 * an empty first field, a trailing run is dropped), and numbers are Java's
 * parseInt/parseLong (an optional sign, then ASCII digits, in range).
 *
 * Invariants of a parsed struct checkpoint_offsets: entries are sorted by
 * (topic, partition) with no two equal, every topic is a NUL-terminated
 * slice of text, and count never exceeds the lines in the file.
 */
#include "checkpoint.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logdir.h"

/* Fields an entry line may have; one more tells "too many". */
#define CHECKPOINT_FIELDS_MAX 4

/* ---- lines, fields and numbers, as Java reads them ---- */

struct checkpoint_lines {
        const char *at;
        const char *end;
        uint32_t number;                /* 1-based, of the line last returned */
};

static bool checkpoint_next_line(struct checkpoint_lines *l, const char **line, size_t *len)
{
        const char *p = l->at;

        if (p >= l->end)
                return false;
        while (p < l->end && *p != '\n' && *p != '\r')
                p++;
        *line = l->at;
        *len = (size_t)(p - l->at);
        if (p < l->end)
                p += *p == '\r' && p + 1 < l->end && p[1] == '\n' ? 2 : 1;
        l->at = p;
        l->number++;
        return true;
}

static bool checkpoint_is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

struct checkpoint_field {
        const char *p;
        size_t len;
};

/* String.split("\\s+") of one line; returns the field count, at most
 * CHECKPOINT_FIELDS_MAX (more fields are reported as that many). */
static uint32_t checkpoint_split(const char *line, size_t len, struct checkpoint_field *f)
{
        uint32_t n = 0;
        size_t i = 0;

        if (len == 0) {
                f[0] = (struct checkpoint_field){ line, 0 };
                return 1;
        }
        if (checkpoint_is_space(line[0])) {
                f[n++] = (struct checkpoint_field){ line, 0 };
                while (i < len && checkpoint_is_space(line[i]))
                        i++;
        }
        while (i < len && n < CHECKPOINT_FIELDS_MAX) {
                size_t start = i;
                while (i < len && !checkpoint_is_space(line[i]))
                        i++;
                f[n++] = (struct checkpoint_field){ line + start, i - start };
                while (i < len && checkpoint_is_space(line[i]))
                        i++;
        }
        return n;
}

/* Java's parseLong/parseInt: [+-]?[0-9]+ within [min, max]. */
static bool checkpoint_parse_integer(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
        bool is_negative = false;
        uint64_t limit, v = 0;
        size_t i = 0;

        if (len > 0 && (s[0] == '-' || s[0] == '+')) {
                is_negative = s[0] == '-';
                i = 1;
        }
        if (i == len)
                return false;
        limit = is_negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                uint64_t d = (uint64_t)(s[i] - '0');
                if (v > (limit - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        int64_t r = is_negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
        if (r < min || r > max)
                return false;
        *out = r;
        return true;
}

/*
 * The version and count lines. Returns 1 with *count_out set when entry
 * lines follow, 0 when the file ends before the count (no entries), or
 * -EINVAL with err filled.
 */
static int checkpoint_parse_header(struct checkpoint_lines *l, int64_t *count_out, char *err, size_t err_bytes)
{
        const char *line;
        size_t len;
        int64_t v;

        if (!checkpoint_next_line(l, &line, &len))
                return 0;
        if (!checkpoint_parse_integer(line, len, INT32_MIN, INT32_MAX, &v)) {
                snprintf(err, err_bytes, "malformed version line \"%.*s\"", (int)(len < 40 ? len : 40), line);
                return -EINVAL;
        }
        if (v != CHECKPOINT_VERSION) {
                snprintf(err, err_bytes, "version %" PRId64 ", expected %d", v, CHECKPOINT_VERSION);
                return -EINVAL;
        }
        if (!checkpoint_next_line(l, &line, &len))
                return 0;
        /* Java sizes an ArrayList with it: a negative count throws. */
        if (!checkpoint_parse_integer(line, len, 0, INT32_MAX, &v)) {
                snprintf(err, err_bytes, "malformed entry count line \"%.*s\"", (int)(len < 40 ? len : 40), line);
                return -EINVAL;
        }
        *count_out = v;
        return 1;
}

static void checkpoint_malformed_line(char *err, size_t err_bytes, uint32_t number, const char *line, size_t len)
{
        snprintf(err, err_bytes, "malformed line %u: \"%.*s\"", number, (int)(len < 80 ? len : 80), line);
}

static void checkpoint_wrong_count(char *err, size_t err_bytes, int64_t expected, uint32_t found)
{
        snprintf(err, err_bytes, "expected %" PRId64 " entries, found %u", expected, found);
}

static size_t checkpoint_decimal_bytes(int64_t v)
{
        char tmp[24];
        return (size_t)snprintf(tmp, sizeof(tmp), "%" PRId64, v);
}

/* "0\n<count>\n" into buf; returns its length. */
static size_t checkpoint_put_header(char *buf, size_t buf_bytes, uint32_t count)
{
        int n = snprintf(buf, buf_bytes, "%d\n%u\n", CHECKPOINT_VERSION, count);
        assert(n > 0 && (size_t)n < buf_bytes);
        return (size_t)n;
}

/* ---- offset checkpoints ---- */

size_t checkpoint_offsets_encoded_bytes(const struct checkpoint_offset *entries, uint32_t count)
{
        size_t total = 2 + checkpoint_decimal_bytes(count) + 1;

        for (uint32_t i = 0; i < count; i++)
                total += strlen(entries[i].topic) + 1 + checkpoint_decimal_bytes(entries[i].partition) + 1 +
                         checkpoint_decimal_bytes(entries[i].offset) + 1;
        return total;
}

size_t checkpoint_offsets_encode(const struct checkpoint_offset *entries, uint32_t count, char *buf,
                                 size_t buf_bytes)
{
        size_t at;

        assert(buf_bytes >= checkpoint_offsets_encoded_bytes(entries, count));
        /* snprintf wants room for its NUL; the header is tiny, so use a
         * scratch line and copy. */
        char line[CHECKPOINT_LINE_BYTES_MAX + 16];
        at = checkpoint_put_header(line, sizeof(line), count);
        memcpy(buf, line, at);
        for (uint32_t i = 0; i < count; i++) {
                const struct checkpoint_offset *e = &entries[i];
                size_t topic_bytes = strlen(e->topic);
                assert(topic_bytes > 0 && !strpbrk(e->topic, " \t\r\n"));
                memcpy(buf + at, e->topic, topic_bytes);
                at += topic_bytes;
                int n = snprintf(line, sizeof(line), " %" PRId32 " %" PRId64 "\n", e->partition, e->offset);
                assert(n > 0 && (size_t)n < sizeof(line));
                memcpy(buf + at, line, (size_t)n);
                at += (size_t)n;
        }
        assert(at == checkpoint_offsets_encoded_bytes(entries, count));
        return at;
}

struct checkpoint_sorting {
        struct checkpoint_offset e;
        uint32_t line;
};

static int checkpoint_cmp_sorting(const void *a, const void *b)
{
        const struct checkpoint_sorting *x = a, *y = b;
        int c = strcmp(x->e.topic, y->e.topic);

        if (c)
                return c;
        if (x->e.partition != y->e.partition)
                return x->e.partition < y->e.partition ? -1 : 1;
        return x->line < y->line ? -1 : x->line > y->line;
}

int checkpoint_offsets_parse(char *text, size_t len, struct checkpoint_offsets *out, char *err,
                             size_t err_bytes)
{
        struct checkpoint_lines l = { text, text + len, 0 };
        struct checkpoint_sorting *sorting = NULL;
        struct checkpoint_field f[CHECKPOINT_FIELDS_MAX];
        const char *line;
        size_t line_len, cap = 0;
        uint32_t found = 0, kept = 0;
        int64_t expected = 0;
        int rc;

        memset(out, 0, sizeof(*out));
        rc = checkpoint_parse_header(&l, &expected, err, err_bytes);
        if (rc <= 0)
                goto out_header;
        for (const char *p = l.at; p < l.end; p++)
                cap += *p == '\n' || *p == '\r';
        cap += 1;
        sorting = calloc(cap, sizeof(*sorting));
        if (!sorting) {
                rc = -ENOMEM;
                goto out_free_text;
        }
        while (checkpoint_next_line(&l, &line, &line_len)) {
                int64_t partition, offset;
                assert(found < cap);
                if (checkpoint_split(line, line_len, f) != 3 || f[0].len == 0 ||
                    !checkpoint_parse_integer(f[1].p, f[1].len, INT32_MIN, INT32_MAX, &partition) ||
                    !checkpoint_parse_integer(f[2].p, f[2].len, INT64_MIN, INT64_MAX, &offset)) {
                        checkpoint_malformed_line(err, err_bytes, l.number, line, line_len);
                        rc = -EINVAL;
                        goto out_free_sorting;
                }
                /* The topic ends at whitespace, which becomes its NUL. */
                ((char *)f[0].p)[f[0].len] = '\0';
                sorting[found++] = (struct checkpoint_sorting){ { f[0].p, (int32_t)partition, offset }, l.number };
        }
        if (found != expected) {
                checkpoint_wrong_count(err, err_bytes, expected, found);
                rc = -EINVAL;
                goto out_free_sorting;
        }
        qsort(sorting, found, sizeof(*sorting), checkpoint_cmp_sorting);
        out->entries = calloc(found + 1, sizeof(*out->entries));
        if (!out->entries) {
                rc = -ENOMEM;
                goto out_free_sorting;
        }
        /* Equal keys sort by line: keep the last of each run. */
        for (uint32_t i = 0; i < found; i++) {
                bool is_last_of_key = i + 1 == found || strcmp(sorting[i].e.topic, sorting[i + 1].e.topic) != 0 ||
                                      sorting[i].e.partition != sorting[i + 1].e.partition;
                if (is_last_of_key)
                        out->entries[kept++] = sorting[i].e;
        }
        out->count = kept;
        out->text = text;
        free(sorting);
        return 0;

out_free_sorting:
        free(sorting);
out_free_text:
        free(text);
        memset(out, 0, sizeof(*out));
        return rc;
out_header:
        if (rc < 0) {
                free(text);
                return rc;
        }
        out->text = text;               /* an empty file, or one without a count */
        return 0;
}

const struct checkpoint_offset *checkpoint_offsets_find(const struct checkpoint_offsets *c, const char *topic,
                                                        int32_t partition)
{
        uint32_t lo = 0, hi = c->count;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                const struct checkpoint_offset *e = &c->entries[mid];
                int cmp = strcmp(e->topic, topic);
                if (cmp == 0)
                        cmp = e->partition < partition ? -1 : e->partition > partition;
                if (cmp == 0)
                        return e;
                if (cmp < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

void checkpoint_offsets_free(struct checkpoint_offsets *c)
{
        free(c->entries);
        free(c->text);
        memset(c, 0, sizeof(*c));
}

int checkpoint_offsets_read(int dir_fd, const char *name, struct checkpoint_offsets *out, char *err,
                            size_t err_bytes)
{
        char why[200];
        char *text = NULL;
        size_t len = 0;
        int rc;

        memset(out, 0, sizeof(*out));
        rc = logdir_read_file(dir_fd, name, CHECKPOINT_FILE_BYTES_MAX, &text, &len);
        if (rc == -EFBIG) {
                snprintf(err, err_bytes, "%s is larger than %u bytes", name, CHECKPOINT_FILE_BYTES_MAX);
                return -EINVAL;
        }
        if (rc < 0)
                return rc;
        rc = checkpoint_offsets_parse(text, len, out, why, sizeof(why));
        if (rc == -EINVAL)
                snprintf(err, err_bytes, "%s: %s", name, why);
        return rc;
}

int checkpoint_offsets_write(int dir_fd, const char *name, const struct checkpoint_offset *entries,
                             uint32_t count)
{
        size_t bytes = checkpoint_offsets_encoded_bytes(entries, count);
        char *buf = malloc(bytes);
        int rc;

        if (!buf)
                return -ENOMEM;
        size_t n = checkpoint_offsets_encode(entries, count, buf, bytes);
        assert(n == bytes);
        rc = logdir_write_file_atomic(dir_fd, name, buf, n);
        free(buf);
        return rc;
}

/* ---- leader-epoch-checkpoint ---- */

size_t checkpoint_epochs_encode(const struct checkpoint_epoch *entries, uint32_t count, char *buf,
                                size_t buf_bytes)
{
        char line[64];
        size_t need = 2 + checkpoint_decimal_bytes(count) + 1;
        size_t at;

        for (uint32_t i = 0; i < count; i++)
                need += checkpoint_decimal_bytes(entries[i].epoch) + 1 +
                        checkpoint_decimal_bytes(entries[i].start_offset) + 1;
        if (need > buf_bytes)
                return need;
        at = checkpoint_put_header(line, sizeof(line), count);
        memcpy(buf, line, at);
        for (uint32_t i = 0; i < count; i++) {
                int n = snprintf(line, sizeof(line), "%" PRId32 " %" PRId64 "\n", entries[i].epoch,
                                 entries[i].start_offset);
                assert(n > 0 && (size_t)n < sizeof(line));
                memcpy(buf + at, line, (size_t)n);
                at += (size_t)n;
        }
        assert(at == need);
        return at;
}

int checkpoint_epochs_parse(const char *text, size_t len, struct checkpoint_epoch *entries,
                            uint32_t entries_max, char *err, size_t err_bytes)
{
        struct checkpoint_lines l = { text, text + len, 0 };
        struct checkpoint_field f[CHECKPOINT_FIELDS_MAX];
        const char *line;
        size_t line_len;
        uint32_t found = 0;
        int64_t expected = 0;
        int rc = checkpoint_parse_header(&l, &expected, err, err_bytes);

        if (rc <= 0)
                return rc;
        while (checkpoint_next_line(&l, &line, &line_len)) {
                int64_t epoch, start;
                if (checkpoint_split(line, line_len, f) != 2 ||
                    !checkpoint_parse_integer(f[0].p, f[0].len, INT32_MIN, INT32_MAX, &epoch) ||
                    !checkpoint_parse_integer(f[1].p, f[1].len, INT64_MIN, INT64_MAX, &start)) {
                        checkpoint_malformed_line(err, err_bytes, l.number, line, line_len);
                        return -EINVAL;
                }
                if (found == entries_max) {
                        snprintf(err, err_bytes, "more than %u entries", entries_max);
                        return -EINVAL;
                }
                entries[found++] = (struct checkpoint_epoch){ (int32_t)epoch, start };
        }
        if (found != expected) {
                checkpoint_wrong_count(err, err_bytes, expected, found);
                return -EINVAL;
        }
        return (int)found;
}

int checkpoint_epochs_write(int dir_fd, const struct checkpoint_epoch *entries, uint32_t count)
{
        char small[256];
        size_t need = checkpoint_epochs_encode(entries, count, small, sizeof(small));
        char *buf = small;
        int rc;

        if (need > sizeof(small)) {
                buf = malloc(need);
                if (!buf)
                        return -ENOMEM;
                size_t n = checkpoint_epochs_encode(entries, count, buf, need);
                assert(n == need);
                (void)n;
        }
        rc = logdir_write_file_atomic(dir_fd, CHECKPOINT_LEADER_EPOCH_FILE, buf, need);
        if (buf != small)
                free(buf);
        return rc;
}

/* ---- .kafka_cleanshutdown ---- */

size_t checkpoint_clean_shutdown_encode(int64_t broker_epoch, char *buf, size_t buf_bytes)
{
        /* Jackson writes Kafka's Content class fields in declaration order. */
        int n = snprintf(buf, buf_bytes, "{\"version\":%d,\"brokerEpoch\":%" PRId64 "}", CHECKPOINT_VERSION,
                         broker_epoch);
        assert(n > 0 && (size_t)n < buf_bytes);
        return (size_t)n;
}

int checkpoint_clean_shutdown_write(int dir_fd, int64_t broker_epoch)
{
        char buf[CHECKPOINT_CLEAN_SHUTDOWN_BYTES_MAX];
        size_t n = checkpoint_clean_shutdown_encode(broker_epoch, buf, sizeof(buf));

        return logdir_write_file_atomic(dir_fd, CHECKPOINT_CLEAN_SHUTDOWN_FILE, buf, n);
}

int checkpoint_clean_shutdown_take(int dir_fd)
{
        struct stat st;

        if (fstatat(dir_fd, CHECKPOINT_CLEAN_SHUTDOWN_FILE, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (unlinkat(dir_fd, CHECKPOINT_CLEAN_SHUTDOWN_FILE, 0) < 0 && errno != ENOENT)
                return -errno;
        int rc = logdir_fsync_dir(dir_fd, ".");
        return rc < 0 ? rc : 1;
}
