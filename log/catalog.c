/*
 * catalog.c - the topic catalog; see catalog.h for the contract, the crash
 * order and the thread rules.
 *
 * Structure. The published state is struct catalog_tables: two arrays of
 * the same topic versions, one sorted by name (lookups by name, Metadata
 * order, the file's order) and one by id (lookups by id). The arrays hold
 * one reference per topic between them (the "table reference"). An admin
 * operation builds new arrays next to the old ones, commits the file from
 * them, then swaps them in under the write lock and puts what it replaced.
 *
 * Invariants (checked by catalog_check_tables in debug builds):
 *   - by_name is strictly increasing by name, by_id strictly increasing by
 *     id, and both hold the same topics;
 *   - no two topics collide by Kafka's '.'/'_' rule;
 *   - every topic version is immutable once published; only a partition's
 *     `log` pointer changes, atomically;
 *   - partitions_per_dir[d] is the number of published partitions in dir d.
 *
 * The catalog file, `__runnel_catalog` in the first log dir:
 *
 *     # comment lines
 *     version 1
 *     topic <name> <base64url id> <partition count> <internal 0|1>
 *     config <name> <key> <value>          (after its topic line)
 *     deleted <base64url id> <name>        (tombstone; see catalog.h)
 *     end <topic lines> <config lines> <deleted lines>
 *
 * Fields are separated by one space. Names are valid topic names and need
 * no escaping; config keys and values are escaped: every byte outside
 * '!'..'~', and '%' itself, is written %XX (two uppercase hex digits), so
 * a field never holds a space or a line break. An empty value is an empty
 * last field. The end line's counts catch a truncated or spliced file; the
 * file is replaced by rename, so a crash never leaves it half-written.
 */
#include "catalog.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleaner.h"

#define CATALOG_FILE_VERSION 1
#define CATALOG_FILE_BYTES_MAX (256u << 20)
#define CATALOG_LOG_LINE_BYTES 1024
#define CATALOG_ID_DRAWS_MAX 16
#define CATALOG_UNASSIGNED UINT32_MAX

struct catalog_tables {
        struct catalog_topic **by_name;
        struct catalog_topic **by_id;
        uint32_t count;
};

struct catalog_tombstone {
        struct kuuid id;
        char *name;
        bool has_leftover;              /* a dir of it could not be removed */
};

struct catalog {
        const struct logdirs *dirs;
        struct catalog_hooks hooks;

        /* Published state: read under lock (read), replaced under lock
         * (write) while admin_mutex is held. */
        pthread_rwlock_t lock;
        struct catalog_tables t;
        _Atomic uint64_t version;

        /* Admin state: admin_mutex only. */
        pthread_mutex_t admin_mutex;
        uint64_t partitions_per_dir[LOGDIR_COUNT_MAX];
        struct catalog_tombstone *tombstones;
        uint32_t tombstone_count;
        int stale_file_dir;             /* a dir other than the first still holding a catalog file, or -1 */

        atomic_uint live_versions;      /* topic versions not yet freed */
};

/* ---- logging ---- */

static void catalog_log(const struct catalog *cat, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void catalog_log(const struct catalog *cat, const char *fmt, ...)
{
        char line[CATALOG_LOG_LINE_BYTES];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        if (cat->hooks.log_line)
                cat->hooks.log_line(cat->hooks.ctx, line);
        else
                fprintf(stderr, "runnel: catalog: %s\n", line);
}

static void catalog_fail(char *err, size_t err_bytes, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void catalog_fail(char *err, size_t err_bytes, const char *fmt, ...)
{
        if (!err || err_bytes == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_bytes, fmt, ap);
        va_end(ap);
}

static void catalog_set_err(struct catalog_err *err, int16_t code, const char *message)
{
        assert((code == CATALOG_ERR_NONE) == (message == NULL));
        err->code = code;
        err->message = message;
}

/* ---- names ---- */

static int catalog_kstr_cmp(struct kstr a, const char *b, size_t b_len)
{
        size_t n = (size_t)a.len < b_len ? (size_t)a.len : b_len;
        int c = n ? memcmp(a.ptr, b, n) : 0;
        if (c)
                return c;
        return (size_t)a.len < b_len ? -1 : (size_t)a.len > b_len ? 1 : 0;
}

static const char *catalog_check_name(struct kstr name)
{
        if (name.len <= 0)
                return "Topic name is illegal, it can't be empty";
        if (kstr_eq_cstr(name, ".") || kstr_eq_cstr(name, ".."))
                return "Topic name cannot be \".\" or \"..\"";
        if (name.len > CATALOG_TOPIC_NAME_BYTES_MAX)
                return "Topic name is illegal, it can't be longer than 249 characters";
        for (int32_t i = 0; i < name.len; i++) {
                char c = name.ptr[i];
                bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                          c == '.' || c == '_' || c == '-';
                if (!ok)
                        return "Topic name is illegal, it contains a character other than "
                               "ASCII alphanumerics, '.', '_' and '-'";
        }
        return NULL;
}

bool catalog_is_valid_topic_name(struct kstr name)
{
        return catalog_check_name(name) == NULL;
}

bool catalog_is_internal_topic_name(struct kstr name)
{
        return kstr_eq_cstr(name, "__consumer_offsets") || kstr_eq_cstr(name, "__transaction_state") ||
               kstr_eq_cstr(name, "__share_group_state");
}

bool catalog_topic_names_collide(struct kstr a, struct kstr b)
{
        if (a.len != b.len || a.len < 0)
                return false;
        for (int32_t i = 0; i < a.len; i++) {
                char x = a.ptr[i] == '.' ? '_' : a.ptr[i];
                char y = b.ptr[i] == '.' ? '_' : b.ptr[i];
                if (x != y)
                        return false;
        }
        return true;
}

static struct kstr catalog_topic_kstr(const struct catalog_topic *t)
{
        return (struct kstr){ t->name, (int32_t)t->name_len };
}

/* ---- topic versions and partitions ---- */

static void catalog_partition_put(struct catalog_partition *p)
{
        unsigned before = atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel);
        assert(before >= 1);
        if (before != 1)
                return;
        void *log = atomic_load_explicit(&p->log, memory_order_acquire);
        if (log && p->cat->hooks.release_log)
                p->cat->hooks.release_log(p->cat->hooks.ctx, log);
        free(p);
}

static struct catalog_partition *catalog_partition_new(struct catalog *cat, int32_t index)
{
        struct catalog_partition *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->index = index;
        p->logdir_index = CATALOG_UNASSIGNED;
        atomic_init(&p->log, NULL);
        atomic_init(&p->refs, 1);
        p->cat = cat;
        return p;
}

static void catalog_free_configs(struct catalog_config *configs, uint32_t count)
{
        for (uint32_t i = 0; i < count; i++) {
                free((char *)configs[i].key);
                free((char *)configs[i].value);
        }
        free(configs);
}

static void catalog_topic_free(struct catalog_topic *t)
{
        struct catalog *cat = t->cat;

        if (t->partitions) {
                for (int32_t i = 0; i < t->partition_count; i++)
                        if (t->partitions[i])
                                catalog_partition_put(t->partitions[i]);
                free((void *)t->partitions);
        }
        catalog_free_configs((struct catalog_config *)t->configs, t->config_count);
        free((char *)t->name);
        free(t);
        unsigned before = atomic_fetch_sub_explicit(&cat->live_versions, 1, memory_order_acq_rel);
        assert(before >= 1);
        (void)before;
}

/*
 * A new, unpublished version with name, id and room for partition_count
 * partitions (all NULL) and no configs; one reference, the future table
 * reference.
 */
static struct catalog_topic *catalog_topic_alloc(struct catalog *cat, struct kstr name, struct kuuid id,
                                                 int32_t partition_count)
{
        assert(catalog_is_valid_topic_name(name));
        assert(partition_count >= 1 && partition_count <= CATALOG_PARTITIONS_MAX);
        assert(!kuuid_is_zero(id));

        struct catalog_topic *t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        t->cat = cat;
        atomic_init(&t->refs, 1);
        atomic_fetch_add_explicit(&cat->live_versions, 1, memory_order_relaxed);

        char *n = malloc((size_t)name.len + 1);
        t->partitions = calloc((size_t)partition_count, sizeof(*t->partitions));
        if (!n || !t->partitions) {
                free(n);
                catalog_topic_free(t);
                return NULL;
        }
        memcpy(n, name.ptr, (size_t)name.len);
        n[name.len] = '\0';
        t->name = n;
        t->name_len = (uint32_t)name.len;
        t->id = id;
        uuid_to_base64(id, t->id_str);
        t->is_internal = catalog_is_internal_topic_name(name);
        t->partition_count = partition_count;
        return t;
}

static struct catalog_partition **catalog_topic_slots(struct catalog_topic *t)
{
        /* Writable only before the version is published. */
        return (struct catalog_partition **)t->partitions;
}

/* Fills partitions [from, partition_count) with new partitions. */
static int catalog_topic_add_new_partitions(struct catalog *cat, struct catalog_topic *t, int32_t from)
{
        struct catalog_partition **slots = catalog_topic_slots(t);

        for (int32_t i = from; i < t->partition_count; i++) {
                assert(slots[i] == NULL);
                slots[i] = catalog_partition_new(cat, i);
                if (!slots[i])
                        return -ENOMEM;
        }
        return 0;
}

/* Shares the first `count` partitions of old with t. */
static void catalog_topic_share_partitions(struct catalog_topic *t, const struct catalog_topic *old,
                                           int32_t count)
{
        struct catalog_partition **slots = catalog_topic_slots(t);

        assert(count <= old->partition_count && count <= t->partition_count);
        for (int32_t i = 0; i < count; i++) {
                assert(slots[i] == NULL);
                atomic_fetch_add_explicit(&old->partitions[i]->refs, 1, memory_order_relaxed);
                slots[i] = old->partitions[i];
        }
}

static int catalog_config_cmp(const void *a, const void *b)
{
        const struct catalog_config *x = a, *y = b;
        return strcmp(x->key, y->key);
}

/*
 * Gives t deep copies of configs (which must be sorted with unique keys).
 */
static int catalog_topic_copy_configs(struct catalog_topic *t, const struct catalog_config *configs,
                                      uint32_t count)
{
        assert(t->config_count == 0 && t->configs == NULL);
        assert(count <= CATALOG_CONFIGS_MAX);
        if (count == 0)
                return 0;
        struct catalog_config *c = calloc(count, sizeof(*c));
        if (!c)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++) {
                assert(i == 0 || strcmp(configs[i - 1].key, configs[i].key) < 0);
                c[i].key = strdup(configs[i].key);
                c[i].value = strdup(configs[i].value);
                if (!c[i].key || !c[i].value) {
                        catalog_free_configs(c, i + 1);
                        return -ENOMEM;
                }
        }
        t->configs = c;
        t->config_count = count;
        return 0;
}

const struct catalog_topic *catalog_topic_hold(const struct catalog_topic *t)
{
        struct catalog_topic *m = (struct catalog_topic *)t;
        unsigned before = atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
        assert(before >= 1);
        (void)before;
        return t;
}

void catalog_topic_put(const struct catalog_topic *t)
{
        if (!t)
                return;
        struct catalog_topic *m = (struct catalog_topic *)t;
        unsigned before = atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel);
        assert(before >= 1);
        if (before == 1)
                catalog_topic_free(m);
}

const char *catalog_topic_config(const struct catalog_topic *t, const char *key)
{
        assert(t && key);
        if (t->config_count == 0)
                return NULL;    /* configs may be NULL, which bsearch must not see */
        struct catalog_config probe = { key, NULL };
        const struct catalog_config *c =
                bsearch(&probe, t->configs, t->config_count, sizeof(*t->configs), catalog_config_cmp);
        return c ? c->value : NULL;
}

struct catalog_partition *catalog_topic_partition(const struct catalog_topic *t, int32_t index)
{
        if (index < 0 || index >= t->partition_count)
                return NULL;
        struct catalog_partition *p = t->partitions[index];
        assert(p->index == index);
        return p;
}

int catalog_partition_path(const struct catalog *cat, const struct catalog_topic *t,
                           int32_t index, char *buf, size_t buf_bytes)
{
        const struct catalog_partition *p = catalog_topic_partition(t, index);
        assert(p && p->logdir_index < cat->dirs->count);
        int n = snprintf(buf, buf_bytes, "%s/%s-%d", cat->dirs->dirs[p->logdir_index].path, t->name,
                         (int)index);
        if (n < 0 || (size_t)n >= buf_bytes)
                return -ENAMETOOLONG;
        return n;
}

void *catalog_partition_log(const struct catalog_partition *p)
{
        return atomic_load_explicit(&((struct catalog_partition *)p)->log, memory_order_acquire);
}

void *catalog_partition_set_log(struct catalog_partition *p, void *log)
{
        return atomic_exchange_explicit(&p->log, log, memory_order_acq_rel);
}

/* ---- tables ---- */

static int catalog_id_cmp(struct kuuid a, struct kuuid b)
{
        return memcmp(a.b, b.b, sizeof(a.b));
}

/* Index of name in by_name, or -(insertion point) - 1. */
static int64_t catalog_search_name(const struct catalog_tables *t, struct kstr name)
{
        uint32_t lo = 0, hi = t->count;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                int c = catalog_kstr_cmp(name, t->by_name[mid]->name, t->by_name[mid]->name_len);
                if (c == 0)
                        return mid;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -(int64_t)lo - 1;
}

static int64_t catalog_search_id(const struct catalog_tables *t, struct kuuid id)
{
        uint32_t lo = 0, hi = t->count;

        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                int c = catalog_id_cmp(id, t->by_id[mid]->id);
                if (c == 0)
                        return mid;
                if (c < 0)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return -(int64_t)lo - 1;
}

static struct catalog_topic *catalog_find_name(const struct catalog_tables *t, struct kstr name)
{
        if (name.len <= 0 || name.len > CATALOG_TOPIC_NAME_BYTES_MAX)
                return NULL;
        int64_t i = catalog_search_name(t, name);
        return i >= 0 ? t->by_name[i] : NULL;
}

static struct catalog_topic *catalog_find_id(const struct catalog_tables *t, struct kuuid id)
{
        int64_t i = catalog_search_id(t, id);
        return i >= 0 ? t->by_id[i] : NULL;
}

static void catalog_check_tables(const struct catalog_tables *t)
{
#ifndef NDEBUG
        for (uint32_t i = 1; i < t->count; i++) {
                assert(strcmp(t->by_name[i - 1]->name, t->by_name[i]->name) < 0);
                assert(catalog_id_cmp(t->by_id[i - 1]->id, t->by_id[i]->id) < 0);
        }
        for (uint32_t i = 0; i < t->count; i++)
                assert(catalog_find_id(t, t->by_name[i]->id) == t->by_name[i]);
#else
        (void)t;
#endif
}

static void catalog_tables_free(struct catalog_tables *t)
{
        free(t->by_name);
        free(t->by_id);
        memset(t, 0, sizeof(*t));
}

/*
 * Builds into out the tables of old without `drop` (if not NULL) and with
 * `add` (if not NULL). The topics' references are not touched.
 */
static int catalog_tables_edit(const struct catalog_tables *old, const struct catalog_topic *drop,
                               struct catalog_topic *add, struct catalog_tables *out)
{
        uint32_t count = old->count - (drop ? 1 : 0) + (add ? 1 : 0);
        size_t n = count ? count : 1;

        out->by_name = malloc(n * sizeof(*out->by_name));
        out->by_id = malloc(n * sizeof(*out->by_id));
        out->count = count;
        if (!out->by_name || !out->by_id) {
                catalog_tables_free(out);
                return -ENOMEM;
        }
        /* Two sorted merges of old (minus drop) with the single add. */
        uint32_t o = 0;
        bool added = add == NULL;
        for (uint32_t i = 0; i < old->count; i++) {
                struct catalog_topic *x = old->by_name[i];
                if (x == drop)
                        continue;
                if (!added && strcmp(add->name, x->name) < 0) {
                        out->by_name[o++] = add;
                        added = true;
                }
                out->by_name[o++] = x;
        }
        if (!added)
                out->by_name[o++] = add;
        assert(o == count);

        o = 0;
        added = add == NULL;
        for (uint32_t i = 0; i < old->count; i++) {
                struct catalog_topic *x = old->by_id[i];
                if (x == drop)
                        continue;
                if (!added && catalog_id_cmp(add->id, x->id) < 0) {
                        out->by_id[o++] = add;
                        added = true;
                }
                out->by_id[o++] = x;
        }
        if (!added)
                out->by_id[o++] = add;
        assert(o == count);
        catalog_check_tables(out);
        return 0;
}

/* Swaps next in as the published tables and bumps the version; the
 * previous tables are handed back in *next for the caller to free. */
static void catalog_publish(struct catalog *cat, struct catalog_tables *next)
{
        catalog_check_tables(next);
        pthread_rwlock_wrlock(&cat->lock);
        struct catalog_tables prev = cat->t;
        cat->t = *next;
        atomic_fetch_add_explicit(&cat->version, 1, memory_order_acq_rel);
        pthread_rwlock_unlock(&cat->lock);
        *next = prev;
}

/* ---- lookups ---- */

const struct catalog_topic *catalog_get_topic(struct catalog *cat, struct kstr name)
{
        pthread_rwlock_rdlock(&cat->lock);
        struct catalog_topic *t = catalog_find_name(&cat->t, name);
        if (t)
                catalog_topic_hold(t);
        pthread_rwlock_unlock(&cat->lock);
        return t;
}

const struct catalog_topic *catalog_get_topic_by_id(struct catalog *cat, struct kuuid id)
{
        if (kuuid_is_zero(id))
                return NULL;
        pthread_rwlock_rdlock(&cat->lock);
        struct catalog_topic *t = catalog_find_id(&cat->t, id);
        if (t)
                catalog_topic_hold(t);
        pthread_rwlock_unlock(&cat->lock);
        return t;
}

uint64_t catalog_version(const struct catalog *cat)
{
        return atomic_load_explicit(&((struct catalog *)cat)->version, memory_order_acquire);
}

uint32_t catalog_topic_count(struct catalog *cat)
{
        pthread_rwlock_rdlock(&cat->lock);
        uint32_t n = cat->t.count;
        pthread_rwlock_unlock(&cat->lock);
        return n;
}

int catalog_snapshot(struct catalog *cat, struct arena *arena, struct catalog_snapshot *out)
{
        int rc = 0;

        memset(out, 0, sizeof(*out));
        pthread_rwlock_rdlock(&cat->lock);
        out->version = catalog_version(cat);
        if (cat->t.count == 0)
                goto out_unlock;
        out->topics = arena_calloc(arena, cat->t.count, sizeof(*out->topics));
        if (!out->topics) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        for (uint32_t i = 0; i < cat->t.count; i++) {
                const struct catalog_topic *t = cat->t.by_name[i];
                char *name = arena_strndup(arena, t->name, t->name_len);
                if (!name) {
                        rc = -ENOMEM;
                        goto out_unlock;
                }
                out->topics[i] = (struct catalog_snapshot_topic){
                        .name = { name, (int32_t)t->name_len },
                        .id = t->id,
                        .is_internal = t->is_internal,
                        .partition_count = t->partition_count,
                };
        }
        out->topic_count = cat->t.count;
out_unlock:
        pthread_rwlock_unlock(&cat->lock);
        if (rc < 0)
                memset(out, 0, sizeof(*out));
        return rc;
}

int catalog_list_topics(struct catalog *cat, const struct catalog_topic ***out, uint32_t *count_out)
{
        const struct catalog_topic **list = NULL;
        uint32_t n;

        for (int attempt = 0; attempt < 8; attempt++) {
                n = catalog_topic_count(cat);
                free(list);
                list = malloc((n ? n : 1) * sizeof(*list));
                if (!list)
                        return -ENOMEM;
                pthread_rwlock_rdlock(&cat->lock);
                if (cat->t.count <= n) {
                        n = cat->t.count;
                        for (uint32_t i = 0; i < n; i++)
                                list[i] = catalog_topic_hold(cat->t.by_name[i]);
                        pthread_rwlock_unlock(&cat->lock);
                        *out = list;
                        *count_out = n;
                        return 0;
                }
                pthread_rwlock_unlock(&cat->lock);      /* grew meanwhile: size again */
        }
        free(list);
        return -EAGAIN;
}

void catalog_topics_put(const struct catalog_topic **topics, uint32_t count)
{
        for (uint32_t i = 0; i < count; i++)
                catalog_topic_put(topics[i]);
        free(topics);
}

/* ---- the catalog file: writing ---- */

struct catalog_buf {
        char *p;
        size_t len;
        size_t cap;
        bool is_oom;
};

static void catalog_buf_add(struct catalog_buf *b, const char *s, size_t n)
{
        if (b->is_oom)
                return;
        if (b->len + n + 1 > b->cap) {
                size_t cap = b->cap ? b->cap : 4096;
                while (cap < b->len + n + 1)
                        cap *= 2;
                char *p = realloc(b->p, cap);
                if (!p) {
                        b->is_oom = true;
                        return;
                }
                b->p = p;
                b->cap = cap;
        }
        memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

static void catalog_buf_printf(struct catalog_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void catalog_buf_printf(struct catalog_buf *b, const char *fmt, ...)
{
        char line[512];
        va_list ap;

        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        assert(n >= 0 && (size_t)n < sizeof(line));
        catalog_buf_add(b, line, (size_t)n);
}

static void catalog_buf_escaped(struct catalog_buf *b, const char *s)
{
        static const char hex[] = "0123456789ABCDEF";

        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if (*p > ' ' && *p < 0x7f && *p != '%') {
                        catalog_buf_add(b, (const char *)p, 1);
                        continue;
                }
                char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
                catalog_buf_add(b, e, 3);
        }
}

/* Commits tables (and the tombstones) to the catalog file. */
static int catalog_write_file(struct catalog *cat, const struct catalog_tables *t)
{
        struct catalog_buf b = { 0 };
        uint32_t config_lines = 0;
        int rc;

        catalog_buf_printf(&b, "# runnel topic catalog: topics, partition counts, config overrides.\n"
                               "# Rewritten by the broker on every change; see log/catalog.h.\n"
                               "version %d\n", CATALOG_FILE_VERSION);
        for (uint32_t i = 0; i < t->count; i++) {
                const struct catalog_topic *x = t->by_name[i];
                catalog_buf_printf(&b, "topic %s %s %d %d\n", x->name, x->id_str, (int)x->partition_count,
                                   x->is_internal ? 1 : 0);
                for (uint32_t c = 0; c < x->config_count; c++) {
                        catalog_buf_printf(&b, "config %s ", x->name);
                        catalog_buf_escaped(&b, x->configs[c].key);
                        catalog_buf_add(&b, " ", 1);
                        catalog_buf_escaped(&b, x->configs[c].value);
                        catalog_buf_add(&b, "\n", 1);
                        config_lines++;
                }
        }
        for (uint32_t i = 0; i < cat->tombstone_count; i++) {
                char id[UUID_BASE64_BYTES];
                uuid_to_base64(cat->tombstones[i].id, id);
                catalog_buf_printf(&b, "deleted %s %s\n", id, cat->tombstones[i].name);
        }
        catalog_buf_printf(&b, "end %u %u %u\n", (unsigned)t->count, (unsigned)config_lines,
                           (unsigned)cat->tombstone_count);
        if (b.is_oom) {
                free(b.p);
                return -ENOMEM;
        }
        rc = logdir_write_file_atomic(cat->dirs->dirs[0].dir_fd, CATALOG_FILE, b.p, b.len);
        free(b.p);
        if (rc < 0) {
                catalog_log(cat, "cannot write %s/%s: %s", cat->dirs->dirs[0].path, CATALOG_FILE,
                            strerror(-rc));
                return rc;
        }
        if (cat->stale_file_dir > 0) {
                /* The file moved to the first dir (log.dirs was reordered). */
                const struct logdir *d = &cat->dirs->dirs[cat->stale_file_dir];
                if (unlinkat(d->dir_fd, CATALOG_FILE, 0) == 0 || errno == ENOENT) {
                        fsync(d->dir_fd);
                        cat->stale_file_dir = -1;
                }
        }
        return 0;
}

/* ---- the catalog file: reading ---- */

static bool catalog_unescape(char *s)
{
        char *w = s;

        for (char *r = s; *r; r++) {
                if (*r != '%') {
                        *w++ = *r;
                        continue;
                }
                int v = 0;
                for (int i = 1; i <= 2; i++) {
                        char c = r[i];
                        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
                        if (d < 0)
                                return false;
                        v = v * 16 + d;
                }
                if (v == 0)
                        return false;
                *w++ = (char)v;
                r += 2;
        }
        *w = '\0';
        return true;
}

/* Splits line at single spaces into at most max fields; the last takes the rest. */
static int catalog_split(char *line, char **fields, int max)
{
        int n = 0;

        fields[n++] = line;
        while (n < max) {
                char *sp = strchr(fields[n - 1], ' ');
                if (!sp)
                        break;
                *sp = '\0';
                fields[n++] = sp + 1;
        }
        return n;
}

static bool catalog_parse_u32(const char *s, uint32_t limit, uint32_t *out)
{
        uint64_t v = 0;

        if (!*s || (s[0] == '0' && s[1]))
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                v = v * 10 + (uint64_t)(*s - '0');
                if (v > limit)
                        return false;
        }
        *out = (uint32_t)v;
        return true;
}

struct catalog_loading {
        struct catalog_topic **topics;  /* in file order until sorted */
        uint32_t count;
        uint32_t cap;
        struct catalog_config *configs; /* of the last topic, while being read */
        uint32_t config_count;
};

static int catalog_loading_finish_configs(struct catalog_loading *l, const char **problem)
{
        if (l->count == 0 || l->config_count == 0)
                return 0;
        struct catalog_topic *t = l->topics[l->count - 1];
        qsort(l->configs, l->config_count, sizeof(*l->configs), catalog_config_cmp);
        for (uint32_t i = 1; i < l->config_count; i++) {
                if (!strcmp(l->configs[i - 1].key, l->configs[i].key)) {
                        *problem = "a config key appears twice for one topic";
                        return -EINVAL;
                }
        }
        int rc = catalog_topic_copy_configs(t, l->configs, l->config_count);
        l->config_count = 0;
        return rc;
}

/*
 * Parses the catalog file text into l and cat's tombstones. On failure
 * returns -errno and names the line and the problem in err.
 */
static int catalog_parse_file(struct catalog *cat, char *text, const char *path,
                              struct catalog_loading *l, char *err, size_t err_bytes)
{
        const char *problem = NULL;
        uint32_t line_no = 0, config_lines = 0;
        bool has_version = false, has_end = false;
        int rc = -EINVAL;

        l->configs = calloc(CATALOG_CONFIGS_MAX, sizeof(*l->configs));
        if (!l->configs)
                return -ENOMEM;

        for (char *next = text; next && *next;) {
                char *line = next;
                char *nl = strchr(line, '\n');
                if (!nl) {
                        line_no++;
                        problem = "the last line is not terminated: the file is truncated";
                        goto out_fail;
                }
                *nl = '\0';
                next = nl + 1;
                line_no++;
                if (line[0] == '#')
                        continue;
                if (has_end) {
                        problem = "text after the end line";
                        goto out_fail;
                }
                char *f[5];
                int n = catalog_split(line, f, 5);
                if (!has_version) {
                        uint32_t v;
                        if (n != 2 || strcmp(f[0], "version") || !catalog_parse_u32(f[1], 1000, &v)) {
                                problem = "expected `version <n>` first";
                                goto out_fail;
                        }
                        if (v != CATALOG_FILE_VERSION) {
                                problem = "unsupported version (written by a newer runnel?)";
                                goto out_fail;
                        }
                        has_version = true;
                        continue;
                }
                if (!strcmp(f[0], "topic")) {
                        struct kuuid id;
                        uint32_t parts, internal;
                        if (n != 5 || !catalog_is_valid_topic_name(KSTR(f[1])) ||
                            !uuid_from_base64(f[2], strlen(f[2]), &id) || uuid_is_reserved(id) ||
                            !catalog_parse_u32(f[3], CATALOG_PARTITIONS_MAX, &parts) || parts == 0 ||
                            !catalog_parse_u32(f[4], 1, &internal)) {
                                problem = "expected `topic <name> <id> <partitions> <0|1>`";
                                goto out_fail;
                        }
                        rc = catalog_loading_finish_configs(l, &problem);
                        if (rc < 0)
                                goto out_fail;
                        rc = -EINVAL;
                        if (l->count == l->cap) {
                                uint32_t cap = l->cap ? l->cap * 2 : 64;
                                void *p = realloc(l->topics, cap * sizeof(*l->topics));
                                if (!p) {
                                        rc = -ENOMEM;
                                        problem = "out of memory";
                                        goto out_fail;
                                }
                                l->topics = p;
                                l->cap = cap;
                        }
                        struct catalog_topic *t = catalog_topic_alloc(cat, KSTR(f[1]), id, (int32_t)parts);
                        if (!t || catalog_topic_add_new_partitions(cat, t, 0) < 0) {
                                catalog_topic_put(t);
                                rc = -ENOMEM;
                                problem = "out of memory";
                                goto out_fail;
                        }
                        l->topics[l->count++] = t;
                        if ((internal == 1) != t->is_internal)
                                catalog_log(cat, "%s line %u: topic %s is marked internal=%u, but internal "
                                            "is decided by the name; using %d", path, (unsigned)line_no,
                                            t->name, (unsigned)internal, t->is_internal ? 1 : 0);
                } else if (!strcmp(f[0], "config")) {
                        if (n != 4 || l->count == 0 || strcmp(f[1], l->topics[l->count - 1]->name)) {
                                problem = "expected `config <name> <key> <value>` after the topic's line";
                                goto out_fail;
                        }
                        if (l->config_count == CATALOG_CONFIGS_MAX) {
                                problem = "too many config lines for one topic";
                                goto out_fail;
                        }
                        if (!*f[2] || !catalog_unescape(f[2]) || !catalog_unescape(f[3]) ||
                            strlen(f[2]) > CATALOG_CONFIG_KEY_BYTES_MAX ||
                            strlen(f[3]) > CATALOG_CONFIG_VALUE_BYTES_MAX) {
                                problem = "bad escape, or a config key or value too long";
                                goto out_fail;
                        }
                        l->configs[l->config_count++] = (struct catalog_config){ f[2], f[3] };
                        config_lines++;
                } else if (!strcmp(f[0], "deleted")) {
                        struct kuuid id;
                        if (n != 3 || !uuid_from_base64(f[1], strlen(f[1]), &id) ||
                            !catalog_is_valid_topic_name(KSTR(f[2]))) {
                                problem = "expected `deleted <id> <name>`";
                                goto out_fail;
                        }
                        size_t bytes = (cat->tombstone_count + 1) * sizeof(*cat->tombstones);
                        void *p = realloc(cat->tombstones, bytes);
                        char *name = strdup(f[2]);
                        if (p)
                                cat->tombstones = p;
                        if (!p || !name) {
                                free(name);
                                rc = -ENOMEM;
                                problem = "out of memory";
                                goto out_fail;
                        }
                        cat->tombstones[cat->tombstone_count++] =
                                (struct catalog_tombstone){ .id = id, .name = name };
                } else if (!strcmp(f[0], "end")) {
                        uint32_t topics, configs, deleted;
                        if (n != 4 || !catalog_parse_u32(f[1], UINT32_MAX, &topics) ||
                            !catalog_parse_u32(f[2], UINT32_MAX, &configs) ||
                            !catalog_parse_u32(f[3], UINT32_MAX, &deleted)) {
                                problem = "expected `end <topics> <configs> <deleted>`";
                                goto out_fail;
                        }
                        if (topics != l->count || configs != config_lines ||
                            deleted != cat->tombstone_count) {
                                problem = "the end line's counts disagree with the lines above";
                                goto out_fail;
                        }
                        has_end = true;
                } else {
                        problem = "unknown line";
                        goto out_fail;
                }
        }
        if (!has_end) {
                problem = "no end line: the file is truncated";
                line_no++;
                goto out_fail;
        }
        rc = catalog_loading_finish_configs(l, &problem);
        if (rc < 0)
                goto out_fail;
        free(l->configs);
        l->configs = NULL;
        return 0;

out_fail:
        free(l->configs);
        l->configs = NULL;
        l->config_count = 0;
        catalog_fail(err, err_bytes, "catalog file %s, line %u: %s; restore the file from a backup or "
                     "fix the line (topics it loses are then reported as stray directories)",
                     path, (unsigned)line_no, problem ? problem : "unreadable");
        return rc;
}

static int catalog_topic_name_cmp(const void *a, const void *b)
{
        const struct catalog_topic *x = *(const struct catalog_topic *const *)a;
        const struct catalog_topic *y = *(const struct catalog_topic *const *)b;
        return strcmp(x->name, y->name);
}

static int catalog_topic_id_cmp(const void *a, const void *b)
{
        const struct catalog_topic *x = *(const struct catalog_topic *const *)a;
        const struct catalog_topic *y = *(const struct catalog_topic *const *)b;
        return catalog_id_cmp(x->id, y->id);
}

/* Turns the loaded topics into cat->t, refusing duplicates. */
static int catalog_build_tables(struct catalog *cat, struct catalog_loading *l, const char *path,
                                char *err, size_t err_bytes)
{
        struct catalog_tables *t = &cat->t;

        t->by_name = l->topics;
        t->count = l->count;
        l->topics = NULL;
        l->count = 0;
        t->by_id = malloc((t->count ? t->count : 1) * sizeof(*t->by_id));
        if (!t->by_id)
                return -ENOMEM;
        if (t->count == 0)
                return 0;
        memcpy(t->by_id, t->by_name, t->count * sizeof(*t->by_id));
        qsort(t->by_name, t->count, sizeof(*t->by_name), catalog_topic_name_cmp);
        qsort(t->by_id, t->count, sizeof(*t->by_id), catalog_topic_id_cmp);
        for (uint32_t i = 1; i < t->count; i++) {
                if (!strcmp(t->by_name[i - 1]->name, t->by_name[i]->name)) {
                        catalog_fail(err, err_bytes, "catalog file %s: topic %s appears twice; "
                                     "remove one of its lines", path, t->by_name[i]->name);
                        return -EINVAL;
                }
                if (!catalog_id_cmp(t->by_id[i - 1]->id, t->by_id[i]->id)) {
                        catalog_fail(err, err_bytes, "catalog file %s: topics %s and %s have the same id %s; "
                                     "remove one of their lines", path, t->by_id[i - 1]->name,
                                     t->by_id[i]->name, t->by_id[i]->id_str);
                        return -EINVAL;
                }
        }
        catalog_check_tables(t);
        return 0;
}

/* ---- partition directories ---- */

static bool catalog_is_tombstoned(const struct catalog *cat, struct kuuid id, uint32_t *index)
{
        for (uint32_t i = 0; i < cat->tombstone_count; i++) {
                if (kuuid_eq(cat->tombstones[i].id, id)) {
                        if (index)
                                *index = i;
                        return true;
                }
        }
        return false;
}

/* Renames dir d's entry to `...-delete` and removes it. A failure is logged
 * (the next open finishes the job) and returned. */
static int catalog_discard_dir(struct catalog *cat, uint32_t d, const char *name)
{
        const struct logdir *dir = &cat->dirs->dirs[d];
        char aside[LOGDIR_NAME_BYTES_MAX + 1];

        int rc = logdir_rename_aside(dir->dir_fd, name, LOGDIR_DELETE_SUFFIX, aside);
        if (rc == -ENOENT)
                return 0;
        if (rc < 0) {
                catalog_log(cat, "cannot rename %s/%s for deletion: %s; it is retried at the next start",
                            dir->path, name, strerror(-rc));
                return rc;
        }
        rc = logdir_remove_tree(dir->dir_fd, aside);
        if (rc < 0)
                catalog_log(cat, "cannot remove %s/%s: %s; it is retried at the next start", dir->path,
                            aside, strerror(-rc));
        return 0;       /* renamed: the data is gone as far as the catalog is concerned */
}

/*
 * A dir named like a partition of ours sits where we need the name but is
 * not ours: remove it if it belongs to a deleted topic, else set it aside
 * as `-stray` for the operator.
 */
static int catalog_set_aside(struct catalog *cat, uint32_t d, const char *name, bool has_id,
                             struct kuuid found, const struct catalog_topic *t)
{
        const struct logdir *dir = &cat->dirs->dirs[d];
        char aside[LOGDIR_NAME_BYTES_MAX + 1];
        char found_str[UUID_BASE64_BYTES] = "none";

        if (has_id && catalog_is_tombstoned(cat, found, NULL)) {
                catalog_log(cat, "removing %s/%s: it belongs to a deleted topic", dir->path, name);
                return catalog_discard_dir(cat, d, name);
        }
        if (has_id)
                uuid_to_base64(found, found_str);
        int rc = logdir_rename_aside(dir->dir_fd, name, LOGDIR_STRAY_SUFFIX, aside);
        if (rc < 0) {
                catalog_log(cat, "cannot rename stray %s/%s: %s; move it away by hand", dir->path, name,
                            strerror(-rc));
                return rc;
        }
        catalog_log(cat, "%s/%s has topic id %s, not %s of topic %s: renamed it %s (its data is kept; "
                    "delete it when unwanted)", dir->path, name, found_str, t->id_str, t->name, aside);
        return 0;
}

/* Creates the dir of partition p of t in its assigned log dir, setting
 * aside a foreign dir of the same name; on failure leaves no new dir.
 * is_synced: see logdir_create_partition. */
static int catalog_make_partition_dir(struct catalog *cat, const struct catalog_topic *t,
                                      const struct catalog_partition *p, bool is_synced)
{
        const struct logdir *dir = &cat->dirs->dirs[p->logdir_index];
        char name[LOGDIR_NAME_BYTES_MAX + 1];
        struct stat st;
        struct kuuid found = { { 0 } };
        int rc;

        assert(p->logdir_index < cat->dirs->count);
        rc = logdir_format_partition_name(name, sizeof(name), t->name, p->index);
        if (rc < 0)
                return rc;
        if (fstatat(dir->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                rc = logdir_read_partition_metadata(dir->dir_fd, name, &found);
                if (rc == 0 && kuuid_eq(found, t->id))
                        return 0;       /* ours, from an interrupted attempt */
                if (rc < 0 && rc != -ENOENT && rc != -EINVAL && rc != -ENOTDIR)
                        return rc;
                rc = catalog_set_aside(cat, p->logdir_index, name, rc == 0, found, t);
                if (rc < 0)
                        return rc;
        } else if (errno != ENOENT) {
                return -errno;
        }
        rc = logdir_create_partition(dir->dir_fd, name, t->id, is_synced);
        if (rc < 0) {
                catalog_log(cat, "cannot create %s/%s: %s", dir->path, name, strerror(-rc));
                logdir_remove_tree(dir->dir_fd, name);
                return rc;
        }
        return 0;
}

/* The log dir with the fewest partitions by counts[]; the first on a tie,
 * as Kafka's LogManager.nextLogDirs picks. */
static uint32_t catalog_pick_dir(const struct catalog *cat, const uint64_t *counts)
{
        uint32_t best = 0;

        for (uint32_t d = 1; d < cat->dirs->count; d++)
                if (counts[d] < counts[best])
                        best = d;
        return best;
}

/*
 * Creates the dirs of partitions [from, partition_count) of t, assigning
 * each to the least loaded dir, and makes them durable before returning:
 * the topic is committed (and acknowledged) only after. On failure removes
 * what it created.
 *
 * Each partition.metadata fsynced with its directory cost two fsyncs per
 * partition: in the benchmark 1,000 partitions took about 400 ms where
 * Kafka took 57.
 * From CATALOG_SYNC_BATCH_MIN partitions on, the files are written
 * unsynced and one syncfs per log dir makes them all durable at once.
 * Below it the per-file fsyncs are cheaper than writing back whatever
 * else the filesystem holds dirty.
 */
#define CATALOG_SYNC_BATCH_MIN 8

static int catalog_make_partition_dirs(struct catalog *cat, struct catalog_topic *t, int32_t from)
{
        uint64_t counts[LOGDIR_COUNT_MAX];
        bool touched[LOGDIR_COUNT_MAX] = { false };
        bool is_batched = t->partition_count - from >= CATALOG_SYNC_BATCH_MIN;
        int32_t made = from;
        int rc = 0;

        memcpy(counts, cat->partitions_per_dir, sizeof(counts));
        for (int32_t i = from; i < t->partition_count; i++) {
                struct catalog_partition *p = t->partitions[i];
                assert(p->logdir_index == CATALOG_UNASSIGNED);
                p->logdir_index = catalog_pick_dir(cat, counts);
                counts[p->logdir_index]++;
        }
        for (; made < t->partition_count; made++) {
                struct catalog_partition *p = t->partitions[made];
                rc = catalog_make_partition_dir(cat, t, p, !is_batched);
                if (rc < 0)
                        break;
                touched[p->logdir_index] = true;
        }
        for (uint32_t d = 0; d < cat->dirs->count && rc == 0; d++) {
                if (!touched[d])
                        continue;
                if (is_batched)
                        rc = logdir_sync_filesystem(cat->dirs->dirs[d].dir_fd);
                else if (fsync(cat->dirs->dirs[d].dir_fd) < 0)
                        rc = -errno;
        }
        if (rc == 0) {
                memcpy(cat->partitions_per_dir, counts, sizeof(counts));
                return 0;
        }
        for (int32_t i = from; i < made; i++) {
                char name[LOGDIR_NAME_BYTES_MAX + 1];
                const struct catalog_partition *p = t->partitions[i];
                if (logdir_format_partition_name(name, sizeof(name), t->name, p->index) >= 0)
                        logdir_remove_tree(cat->dirs->dirs[p->logdir_index].dir_fd, name);
        }
        return rc;
}

/* ---- open: reconcile the file with the dirs ---- */

struct catalog_entries {
        char **names;
        uint32_t count;
        uint32_t cap;
};

static void catalog_entries_free(struct catalog_entries *e)
{
        for (uint32_t i = 0; i < e->count; i++)
                free(e->names[i]);
        free(e->names);
        memset(e, 0, sizeof(*e));
}

static int catalog_entries_add(struct catalog_entries *e, const char *name)
{
        if (e->count == e->cap) {
                uint32_t cap = e->cap ? e->cap * 2 : 64;
                void *p = realloc(e->names, cap * sizeof(*e->names));
                if (!p)
                        return -ENOMEM;
                e->names = p;
                e->cap = cap;
        }
        e->names[e->count] = strdup(name);
        if (!e->names[e->count])
                return -ENOMEM;
        e->count++;
        return 0;
}

/* The directory entries of log dir d that are directories. */
static int catalog_list_subdirs(const struct logdir *dir, struct catalog_entries *out)
{
        int fd = openat(dir->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        DIR *d = fdopendir(fd);
        if (!d) {
                int rc = -errno;
                close(fd);
                return rc;
        }
        int rc = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
                if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                        continue;       /* (a topic name may start with '.') */
                bool is_dir = e->d_type == DT_DIR;
                if (e->d_type == DT_UNKNOWN) {
                        struct stat st;
                        is_dir = fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
                }
                if (!is_dir)
                        continue;
                rc = catalog_entries_add(out, e->d_name);
                if (rc < 0)
                        break;
        }
        closedir(d);
        return rc;
}

static int catalog_reconcile_entry(struct catalog *cat, uint32_t d, const char *entry,
                                   char *err, size_t err_bytes)
{
        const struct logdir *dir = &cat->dirs->dirs[d];
        char topic[CATALOG_TOPIC_NAME_BYTES_MAX + 1];
        struct kuuid found = { { 0 } };
        int32_t index;
        uint32_t tomb;

        if (logdir_has_suffix(entry, LOGDIR_DELETE_SUFFIX)) {
                int rc = logdir_remove_tree(dir->dir_fd, entry);
                if (rc < 0)
                        catalog_log(cat, "cannot remove %s/%s: %s; it is retried at the next start",
                                    dir->path, entry, strerror(-rc));
                else
                        catalog_log(cat, "removed %s/%s, left by an interrupted topic deletion",
                                    dir->path, entry);
                return 0;
        }
        if (logdir_has_suffix(entry, LOGDIR_STRAY_SUFFIX) || logdir_has_suffix(entry, LOGDIR_FUTURE_SUFFIX))
                return 0;
        if (!logdir_parse_partition_name(entry, topic, sizeof(topic), &index))
                return 0;       /* not a partition directory */

        int rc = logdir_read_partition_metadata(dir->dir_fd, entry, &found);
        if (rc < 0 && rc != -ENOENT && rc != -EINVAL) {
                catalog_fail(err, err_bytes, "log dir %s: cannot read %s/%s: %s; fix the disk or "
                             "the file's permissions", dir->path, entry, LOGDIR_PARTITION_METADATA_FILE,
                             strerror(-rc));
                return rc;
        }
        bool has_id = rc == 0;
        struct catalog_topic *t = catalog_find_name(&cat->t, KSTR(topic));
        bool is_known = t && index < t->partition_count;

        if (is_known && (!has_id || kuuid_eq(found, t->id))) {
                struct catalog_partition *p = t->partitions[index];
                if (p->logdir_index != CATALOG_UNASSIGNED) {
                        catalog_fail(err, err_bytes, "partition %s is in two log dirs, %s and %s; "
                                     "remove the copy you do not want", entry,
                                     cat->dirs->dirs[p->logdir_index].path, dir->path);
                        return -EEXIST;
                }
                p->logdir_index = d;
                if (!has_id) {
                        rc = logdir_write_partition_metadata(dir->dir_fd, entry, t->id);
                        if (rc < 0) {
                                catalog_fail(err, err_bytes, "log dir %s: cannot write %s/%s: %s",
                                             dir->path, entry, LOGDIR_PARTITION_METADATA_FILE, strerror(-rc));
                                return rc;
                        }
                        catalog_log(cat, "%s/%s had no valid %s: wrote topic id %s", dir->path, entry,
                                    LOGDIR_PARTITION_METADATA_FILE, t->id_str);
                }
                return 0;
        }
        if (has_id && catalog_is_tombstoned(cat, found, &tomb)) {
                catalog_log(cat, "removing %s/%s: its topic was deleted", dir->path, entry);
                if (catalog_discard_dir(cat, d, entry) < 0)
                        cat->tombstones[tomb].has_leftover = true;
                return 0;
        }
        if (is_known) {
                /* If this fails (logged), recreating the partition below
                 * meets the dir again and the open fails there. */
                (void)catalog_set_aside(cat, d, entry, has_id, found, t);
                return 0;
        }

        char found_str[UUID_BASE64_BYTES] = "none";
        if (has_id)
                uuid_to_base64(found, found_str);
        catalog_log(cat, "%s/%s (topic id %s) is not in the catalog: left in place; delete it if unwanted",
                    dir->path, entry, found_str);
        return 0;
}

/* Whether the catalog files of dirs a and b hold the same bytes. */
static bool catalog_files_equal(const struct catalog *cat, int a, int b)
{
        char *x = NULL, *y = NULL;
        size_t xn = 0, yn = 0;
        int fa = cat->dirs->dirs[a].dir_fd, fb = cat->dirs->dirs[b].dir_fd;
        bool eq = logdir_read_file(fa, CATALOG_FILE, CATALOG_FILE_BYTES_MAX, &x, &xn) == 0 &&
                  logdir_read_file(fb, CATALOG_FILE, CATALOG_FILE_BYTES_MAX, &y, &yn) == 0 &&
                  xn == yn && memcmp(x, y, xn) == 0;
        free(x);
        free(y);
        return eq;
}

/*
 * Finds the catalog file: in the first log dir, or in one other dir
 * (log.dirs reordered; the file then moves to the first at the next
 * write). Identical copies in the first dir and one other are what a crash
 * in the middle of that move leaves; the other is then removed.
 * *at is the dir to load from, or -1 for none. Returns 0 or -errno.
 */
static int catalog_locate_file(struct catalog *cat, int *at_out, char *err, size_t err_bytes)
{
        int at = -1;

        for (uint32_t d = 0; d < cat->dirs->count; d++) {
                struct stat st;
                if (fstatat(cat->dirs->dirs[d].dir_fd, CATALOG_FILE, &st, 0) < 0) {
                        if (errno == ENOENT)
                                continue;
                        int rc = -errno;
                        catalog_fail(err, err_bytes, "log dir %s: cannot stat %s: %s",
                                     cat->dirs->dirs[d].path, CATALOG_FILE, strerror(-rc));
                        return rc;
                }
                if (at == 0 && cat->stale_file_dir < 0 && catalog_files_equal(cat, 0, (int)d)) {
                        cat->stale_file_dir = (int)d;
                        catalog_log(cat, "catalog file in %s is a copy of the one in %s, left by an "
                                    "interrupted move: removing it", cat->dirs->dirs[d].path,
                                    cat->dirs->dirs[0].path);
                        continue;
                }
                if (at >= 0) {
                        catalog_fail(err, err_bytes, "catalog file %s is in two log dirs, %s and %s; "
                                     "keep the newer one and delete the other", CATALOG_FILE,
                                     cat->dirs->dirs[at].path, cat->dirs->dirs[d].path);
                        return -EEXIST;
                }
                at = (int)d;
        }
        *at_out = at;
        return 0;
}

static int catalog_load(struct catalog *cat, char *err, size_t err_bytes)
{
        struct catalog_loading l = { 0 };
        char path[PATH_MAX];
        char *text = NULL;
        size_t size;
        int rc;

        int at = -1;
        rc = catalog_locate_file(cat, &at, err, err_bytes);
        if (rc < 0)
                return rc;
        if (at < 0) {
                cat->t.by_name = malloc(sizeof(*cat->t.by_name));
                cat->t.by_id = malloc(sizeof(*cat->t.by_id));
                return cat->t.by_name && cat->t.by_id ? 0 : -ENOMEM;
        }
        const struct logdir *dir = &cat->dirs->dirs[at];
        snprintf(path, sizeof(path), "%s/%s", dir->path, CATALOG_FILE);
        rc = logdir_read_file(dir->dir_fd, CATALOG_FILE, CATALOG_FILE_BYTES_MAX, &text, &size);
        if (rc < 0) {
                catalog_fail(err, err_bytes, "cannot read catalog file %s: %s; fix the disk or the "
                             "file's permissions", path, strerror(-rc));
                return rc;
        }
        if (strlen(text) != size) {
                catalog_fail(err, err_bytes, "catalog file %s holds a NUL byte: it is damaged; restore "
                             "it from a backup", path);
                rc = -EINVAL;
                goto out;
        }
        rc = catalog_parse_file(cat, text, path, &l, err, err_bytes);
        if (rc < 0)
                goto out;
        rc = catalog_build_tables(cat, &l, path, err, err_bytes);
        if (rc < 0)
                goto out;
        if (at > 0) {
                assert(cat->stale_file_dir < 0);
                cat->stale_file_dir = at;
                catalog_log(cat, "catalog file found in %s, not in the first log dir %s: moving it",
                            dir->path, cat->dirs->dirs[0].path);
        }
out:
        for (uint32_t i = 0; i < l.count; i++)
                catalog_topic_put(l.topics[i]);
        free(l.topics);
        free(text);
        return rc;
}

static int catalog_reconcile(struct catalog *cat, char *err, size_t err_bytes)
{
        struct catalog_entries entries = { 0 };
        int rc = 0;

        for (uint32_t d = 0; d < cat->dirs->count; d++) {
                const struct logdir *dir = &cat->dirs->dirs[d];
                rc = catalog_list_subdirs(dir, &entries);
                if (rc < 0) {
                        catalog_fail(err, err_bytes, "log dir %s: cannot list it: %s", dir->path,
                                     strerror(-rc));
                        goto out;
                }
                for (uint32_t i = 0; i < entries.count; i++) {
                        rc = catalog_reconcile_entry(cat, d, entries.names[i], err, err_bytes);
                        if (rc < 0)
                                goto out;
                }
                catalog_entries_free(&entries);
        }

        /* Count what was found, then recreate what was not. */
        memset(cat->partitions_per_dir, 0, sizeof(cat->partitions_per_dir));
        for (uint32_t i = 0; i < cat->t.count; i++) {
                const struct catalog_topic *t = cat->t.by_name[i];
                for (int32_t p = 0; p < t->partition_count; p++)
                        if (t->partitions[p]->logdir_index != CATALOG_UNASSIGNED)
                                cat->partitions_per_dir[t->partitions[p]->logdir_index]++;
        }
        for (uint32_t i = 0; i < cat->t.count; i++) {
                struct catalog_topic *t = cat->t.by_name[i];
                int32_t missing = 0, first = -1;
                for (int32_t p = 0; p < t->partition_count; p++) {
                        struct catalog_partition *part = t->partitions[p];
                        if (part->logdir_index != CATALOG_UNASSIGNED)
                                continue;
                        if (first < 0)
                                first = p;
                        part->logdir_index = catalog_pick_dir(cat, cat->partitions_per_dir);
                        rc = catalog_make_partition_dir(cat, t, part, true);
                        if (rc < 0) {
                                catalog_fail(err, err_bytes, "log dir %s: cannot create the directory of "
                                             "partition %s-%d: %s; fix the disk or its permissions",
                                             cat->dirs->dirs[part->logdir_index].path, t->name, (int)p,
                                             strerror(-rc));
                                goto out;
                        }
                        cat->partitions_per_dir[part->logdir_index]++;
                        missing++;
                }
                if (missing)
                        catalog_log(cat, "topic %s: recreated %d missing partition director%s (first: %d), "
                                    "empty", t->name, (int)missing, missing == 1 ? "y" : "ies", (int)first);
        }
        for (uint32_t d = 0; d < cat->dirs->count; d++) {
                if (fsync(cat->dirs->dirs[d].dir_fd) < 0) {
                        rc = -errno;
                        catalog_fail(err, err_bytes, "log dir %s: fsync: %s", cat->dirs->dirs[d].path,
                                     strerror(-rc));
                        goto out;
                }
        }

        /* Tombstones whose dirs are all gone are done with. */
        uint32_t kept = 0;
        bool had_tombstones = cat->tombstone_count > 0;
        for (uint32_t i = 0; i < cat->tombstone_count; i++) {
                if (cat->tombstones[i].has_leftover) {
                        cat->tombstones[i].has_leftover = false;
                        cat->tombstones[kept++] = cat->tombstones[i];
                } else {
                        free(cat->tombstones[i].name);
                }
        }
        cat->tombstone_count = kept;
        if (had_tombstones || cat->stale_file_dir > 0) {
                rc = catalog_write_file(cat, &cat->t);
                if (rc < 0) {
                        catalog_fail(err, err_bytes, "cannot write catalog file %s/%s: %s; fix the disk",
                                     cat->dirs->dirs[0].path, CATALOG_FILE, strerror(-rc));
                        goto out;
                }
        }
out:
        catalog_entries_free(&entries);
        return rc;
}

int catalog_open(struct catalog **out, const struct logdirs *dirs,
                 const struct catalog_hooks *hooks, char *err, size_t err_bytes)
{
        pthread_rwlockattr_t attr;
        int rc;

        assert(out && dirs && dirs->count >= 1 && dirs->count <= LOGDIR_COUNT_MAX);
        struct catalog *cat = calloc(1, sizeof(*cat));
        if (!cat) {
                catalog_fail(err, err_bytes, "catalog: out of memory");
                return -ENOMEM;
        }
        cat->dirs = dirs;
        if (hooks)
                cat->hooks = *hooks;
        cat->stale_file_dir = -1;
        atomic_init(&cat->version, 0);
        atomic_init(&cat->live_versions, 0);

        /* Writers would starve behind a steady stream of Metadata lookups
         * with glibc's default reader preference. */
        pthread_rwlockattr_init(&attr);
        pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
        rc = -pthread_rwlock_init(&cat->lock, &attr);
        pthread_rwlockattr_destroy(&attr);
        if (rc < 0)
                goto out_free;
        rc = -pthread_mutex_init(&cat->admin_mutex, NULL);
        if (rc < 0)
                goto out_rwlock;

        rc = catalog_load(cat, err, err_bytes);
        if (rc < 0)
                goto out_tables;
        rc = catalog_reconcile(cat, err, err_bytes);
        if (rc < 0)
                goto out_tables;
        /* Nothing is shared yet: the loaded versions may still be written. */
        for (uint32_t i = 0; i < cat->t.count; i++)
                cat->t.by_name[i]->version = 1;
        atomic_store(&cat->version, 1);
        *out = cat;
        return 0;

out_tables:
        for (uint32_t i = 0; i < cat->t.count; i++)
                catalog_topic_put(cat->t.by_name[i]);
        catalog_tables_free(&cat->t);
        for (uint32_t i = 0; i < cat->tombstone_count; i++)
                free(cat->tombstones[i].name);
        free(cat->tombstones);
        assert(atomic_load(&cat->live_versions) == 0);
        pthread_mutex_destroy(&cat->admin_mutex);
out_rwlock:
        pthread_rwlock_destroy(&cat->lock);
out_free:
        if (rc == -ENOMEM && err && err_bytes && !err[0])
                catalog_fail(err, err_bytes, "catalog: out of memory");
        free(cat);
        return rc;
}

void catalog_close(struct catalog *cat)
{
        if (!cat)
                return;
        for (uint32_t i = 0; i < cat->t.count; i++)
                catalog_topic_put(cat->t.by_name[i]);
        catalog_tables_free(&cat->t);
        /* A reference still held would outlive the hooks it needs. */
        assert(atomic_load(&cat->live_versions) == 0 && "catalog_close with topic references held");
        for (uint32_t i = 0; i < cat->tombstone_count; i++)
                free(cat->tombstones[i].name);
        free(cat->tombstones);
        pthread_mutex_destroy(&cat->admin_mutex);
        pthread_rwlock_destroy(&cat->lock);
        free(cat);
}

/* ---- admin operations ---- */

static bool catalog_check_partition_count(int32_t count, struct catalog_err *err)
{
        if (count < 1) {
                catalog_set_err(err, CATALOG_ERR_INVALID_PARTITIONS,
                                "Number of partitions must be larger than 0");
                return false;
        }
        if (count > CATALOG_PARTITIONS_MAX) {
                catalog_set_err(err, CATALOG_ERR_INVALID_PARTITIONS,
                                "Number of partitions is larger than this broker allows (100000)");
                return false;
        }
        return true;
}

/* Size limits on one config change; NULL value allowed only when may_delete. */
static bool catalog_check_config(const struct catalog_config *c, bool may_delete, struct catalog_err *err)
{
        if (!c->key || !*c->key || strlen(c->key) > CATALOG_CONFIG_KEY_BYTES_MAX) {
                catalog_set_err(err, CATALOG_ERR_INVALID_CONFIG,
                                "Config key is empty or longer than 255 bytes");
                return false;
        }
        if (!c->value && !may_delete) {
                catalog_set_err(err, CATALOG_ERR_INVALID_CONFIG, "Config value is null");
                return false;
        }
        if (c->value && strlen(c->value) > CATALOG_CONFIG_VALUE_BYTES_MAX) {
                catalog_set_err(err, CATALOG_ERR_INVALID_CONFIG, "Config value is longer than 65536 bytes");
                return false;
        }
        return true;
}

/*
 * Applies changes to base (sorted, unique) into a malloc'd sorted array of
 * pointers to the strings of base and changes. Returns 0 with *out and
 * *count_out, or -ENOMEM; a Kafka-level refusal returns 0 with err set and
 * *out NULL.
 */
static int catalog_merge_configs(const struct catalog_config *base, uint32_t base_count,
                                 const struct catalog_config *changes, uint32_t change_count,
                                 bool is_replace_all, struct catalog_config **out, uint32_t *count_out,
                                 struct catalog_err *err)
{
        uint32_t cap = (is_replace_all ? 0 : base_count) + change_count;
        struct catalog_config *m = malloc((cap ? cap : 1) * sizeof(*m));
        uint32_t n = 0;

        *out = NULL;
        if (change_count > CATALOG_CONFIG_CHANGES_MAX) {
                /* Bounds the quadratic merge below. */
                catalog_set_err(err, CATALOG_ERR_INVALID_CONFIG,
                                "More than 1024 config changes in one request");
                free(m);
                return 0;
        }
        if (!m)
                return -ENOMEM;
        if (!is_replace_all && base_count) {
                memcpy(m, base, base_count * sizeof(*m));
                n = base_count;
        }
        for (uint32_t i = 0; i < change_count; i++) {
                const struct catalog_config *c = &changes[i];
                if (!catalog_check_config(c, true, err))
                        goto out_refuse;
                uint32_t at = n;
                for (uint32_t j = 0; j < n; j++) {
                        if (!strcmp(m[j].key, c->key)) {
                                at = j;
                                break;
                        }
                }
                if (!c->value) {
                        if (at < n)
                                m[at] = m[--n];
                        continue;
                }
                if (at == n)
                        n++;
                m[at] = *c;
        }
        if (n > CATALOG_CONFIGS_MAX) {
                catalog_set_err(err, CATALOG_ERR_INVALID_CONFIG,
                                "More than 256 config overrides on one topic");
                goto out_refuse;
        }
        qsort(m, n, sizeof(*m), catalog_config_cmp);
        *out = m;
        *count_out = n;
        return 0;

out_refuse:
        free(m);
        return 0;
}

/* A fresh topic id unused by any topic or tombstone. */
static int catalog_new_topic_id(const struct catalog *cat, struct kuuid *id)
{
        for (int i = 0; i < CATALOG_ID_DRAWS_MAX; i++) {
                int rc = uuid_random(id);
                if (rc < 0)
                        return rc;
                if (!catalog_find_id(&cat->t, *id) && !catalog_is_tombstoned(cat, *id, NULL))
                        return 0;
        }
        return -EAGAIN;
}

/*
 * Commits next to the file, makes the dirs of partitions [from, count) of
 * `made` (if any), then publishes next and puts `replaced` (if any). On
 * failure restores the file and frees next; `made` is the caller's.
 */
static int catalog_commit(struct catalog *cat, struct catalog_tables *next, struct catalog_topic *made,
                          int32_t from, struct catalog_topic *replaced)
{
        int rc = catalog_write_file(cat, next);
        if (rc < 0)
                goto out_free;
        if (made && from < made->partition_count) {
                rc = catalog_make_partition_dirs(cat, made, from);
                if (rc < 0) {
                        int undo = catalog_write_file(cat, &cat->t);
                        if (undo < 0)
                                catalog_log(cat, "topic %s: the catalog file could not be rolled back (%s); "
                                            "the failed change reappears at the next start unless another "
                                            "change is made first", made->name, strerror(-undo));
                        goto out_free;
                }
        }
        catalog_publish(cat, next);
        catalog_tables_free(next);      /* now the previous tables */
        catalog_topic_put(replaced);
        return 0;

out_free:
        catalog_tables_free(next);
        return rc;
}

int catalog_create_topic(struct catalog *cat, const struct catalog_topic_spec *spec,
                         struct kuuid *id_out, struct catalog_err *err)
{
        struct catalog_config *configs = NULL;
        struct catalog_topic *t = NULL;
        struct catalog_tables next;
        uint32_t config_count = 0;
        struct kuuid id;
        int rc = 0;

        assert(cat && spec && err);
        assert(spec->configs || spec->config_count == 0);
        catalog_set_err(err, CATALOG_ERR_NONE, NULL);

        /* Kafka's order: the name, then existence (kafka-topics
         * --if-not-exists relies on TOPIC_ALREADY_EXISTS winning over any
         * other complaint), then collisions, partitions and configs. */
        const char *bad = catalog_check_name(spec->name);
        if (bad) {
                catalog_set_err(err, CATALOG_ERR_INVALID_TOPIC_EXCEPTION, bad);
                return 0;
        }
        pthread_mutex_lock(&cat->admin_mutex);
        if (catalog_find_name(&cat->t, spec->name)) {
                catalog_set_err(err, CATALOG_ERR_TOPIC_ALREADY_EXISTS, "Topic already exists");
                goto out_unlock;
        }
        if (memchr(spec->name.ptr, '.', (size_t)spec->name.len) ||
            memchr(spec->name.ptr, '_', (size_t)spec->name.len)) {
                for (uint32_t i = 0; i < cat->t.count; i++) {
                        if (catalog_topic_names_collide(spec->name, catalog_topic_kstr(cat->t.by_name[i]))) {
                                catalog_set_err(err, CATALOG_ERR_INVALID_TOPIC_EXCEPTION,
                                                "Topic name collides with an existing topic: names that "
                                                "differ only in '.' and '_' collide");
                                goto out_unlock;
                        }
                }
        }
        if (!catalog_check_partition_count(spec->partition_count, err))
                goto out_unlock;
        for (uint32_t i = 0; i < spec->config_count; i++)
                if (!catalog_check_config(&spec->configs[i], false, err))
                        goto out_unlock;
        rc = catalog_merge_configs(NULL, 0, spec->configs, spec->config_count, true, &configs,
                                   &config_count, err);
        if (rc < 0 || err->code || spec->is_validate_only)
                goto out_unlock;

        rc = catalog_new_topic_id(cat, &id);
        if (rc < 0)
                goto out_unlock;
        t = catalog_topic_alloc(cat, spec->name, id, spec->partition_count);
        if (!t) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        rc = catalog_topic_add_new_partitions(cat, t, 0);
        if (rc < 0)
                goto out_put;
        rc = catalog_topic_copy_configs(t, configs, config_count);
        if (rc < 0)
                goto out_put;
        rc = catalog_tables_edit(&cat->t, NULL, t, &next);
        if (rc < 0)
                goto out_put;
        t->version = catalog_version(cat) + 1;  /* what publishing makes it */
        rc = catalog_commit(cat, &next, t, 0, NULL);
        if (rc < 0)
                goto out_put;
        assert(t->version == catalog_version(cat));
        if (id_out)
                *id_out = id;
        t = NULL;       /* the table's now */
out_put:
        catalog_topic_put(t);
out_unlock:
        pthread_mutex_unlock(&cat->admin_mutex);
        free(configs);
        return rc;
}

/* Deletes topic t (in the tables); admin_mutex held, and released here. */
static int catalog_delete_locked(struct catalog *cat, struct catalog_topic *t)
{
        struct catalog_tables next;
        char (*names)[LOGDIR_NAME_BYTES_MAX + 1] = NULL;
        uint32_t *dirs_of = NULL;
        int32_t renamed = 0;
        bool has_leftover = false;
        int rc;

        names = malloc((size_t)t->partition_count * sizeof(*names));
        dirs_of = malloc((size_t)t->partition_count * sizeof(*dirs_of));
        void *grown = realloc(cat->tombstones, (cat->tombstone_count + 1) * sizeof(*cat->tombstones));
        if (grown)
                cat->tombstones = grown;
        char *tomb_name = strdup(t->name);
        if (!names || !dirs_of || !grown || !tomb_name) {
                free(tomb_name);
                rc = -ENOMEM;
                goto out_unlock;
        }
        rc = catalog_tables_edit(&cat->t, t, NULL, &next);
        if (rc < 0) {
                free(tomb_name);
                goto out_unlock;
        }
        uint32_t tomb = cat->tombstone_count++;
        cat->tombstones[tomb] = (struct catalog_tombstone){ .id = t->id, .name = tomb_name };
        rc = catalog_write_file(cat, &next);
        if (rc < 0) {
                cat->tombstone_count--;
                free(tomb_name);
                catalog_tables_free(&next);
                goto out_unlock;
        }
        catalog_publish(cat, &next);
        catalog_tables_free(&next);

        /* Committed: from here on failures are only logged. */
        for (int32_t i = 0; i < t->partition_count; i++) {
                const struct catalog_partition *p = t->partitions[i];
                const struct logdir *dir = &cat->dirs->dirs[p->logdir_index];
                char name[LOGDIR_NAME_BYTES_MAX + 1];
                assert(p->logdir_index < cat->dirs->count);
                assert(cat->partitions_per_dir[p->logdir_index] > 0);
                cat->partitions_per_dir[p->logdir_index]--;
                if (logdir_format_partition_name(name, sizeof(name), t->name, p->index) < 0)
                        continue;
                int r = logdir_rename_aside(dir->dir_fd, name, LOGDIR_DELETE_SUFFIX, names[renamed]);
                if (r == -ENOENT)
                        continue;
                if (r < 0) {
                        catalog_log(cat, "cannot rename %s/%s for deletion: %s; it is retried at the "
                                    "next start", dir->path, name, strerror(-r));
                        has_leftover = true;
                        continue;
                }
                dirs_of[renamed++] = p->logdir_index;
        }
        if (!has_leftover) {
                /* Every dir is renamed -delete, which open removes anyway. */
                free(cat->tombstones[tomb].name);
                cat->tombstones[tomb] = cat->tombstones[--cat->tombstone_count];
        }
        pthread_mutex_unlock(&cat->admin_mutex);

        /* Kafka removes a deleted log's line from cleaner-offset-checkpoint:
         * a later topic of the same name must not start cleaning from it. */
        for (int32_t i = 0; i < t->partition_count; i++) {
                const struct catalog_partition *p = t->partitions[i];
                const struct logdir *dir = &cat->dirs->dirs[p->logdir_index];
                int r = cleaner_checkpoint_update(dir->dir_fd, t->name, p->index, -1);
                if (r < 0)
                        catalog_log(cat, "cannot remove %s-%d from %s/%s: %s; a new log of that name drops it",
                                    t->name, p->index, dir->path, CLEANER_CHECKPOINT_FILE, strerror(-r));
        }
        /* Removal can take long for big partitions; no lock is needed for it. */
        for (int32_t i = 0; i < renamed; i++) {
                const struct logdir *dir = &cat->dirs->dirs[dirs_of[i]];
                int r = logdir_remove_tree(dir->dir_fd, names[i]);
                if (r < 0)
                        catalog_log(cat, "cannot remove %s/%s: %s; it is retried at the next start",
                                    dir->path, names[i], strerror(-r));
        }
        catalog_topic_put(t);   /* the table reference */
        free(names);
        free(dirs_of);
        return 0;

out_unlock:
        pthread_mutex_unlock(&cat->admin_mutex);
        free(names);
        free(dirs_of);
        return rc;
}

int catalog_delete_topic(struct catalog *cat, struct kstr name, struct catalog_err *err)
{
        assert(cat && err);
        catalog_set_err(err, CATALOG_ERR_NONE, NULL);
        pthread_mutex_lock(&cat->admin_mutex);
        struct catalog_topic *t = catalog_find_name(&cat->t, name);
        if (!t) {
                pthread_mutex_unlock(&cat->admin_mutex);
                catalog_set_err(err, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                                "This server does not host this topic-partition.");
                return 0;
        }
        return catalog_delete_locked(cat, t);
}

int catalog_delete_topic_by_id(struct catalog *cat, struct kuuid id, struct catalog_err *err)
{
        assert(cat && err);
        catalog_set_err(err, CATALOG_ERR_NONE, NULL);
        pthread_mutex_lock(&cat->admin_mutex);
        struct catalog_topic *t = catalog_find_id(&cat->t, id);
        if (!t) {
                pthread_mutex_unlock(&cat->admin_mutex);
                catalog_set_err(err, CATALOG_ERR_UNKNOWN_TOPIC_ID,
                                "This server does not host this topic ID.");
                return 0;
        }
        return catalog_delete_locked(cat, t);
}

/* A new version of old with partition_count partitions (sharing old's) and
 * the given configs (sorted, unique). */
static struct catalog_topic *catalog_topic_derive(struct catalog *cat, const struct catalog_topic *old,
                                                  int32_t partition_count,
                                                  const struct catalog_config *configs, uint32_t config_count)
{
        assert(partition_count >= old->partition_count);
        struct catalog_topic *t = catalog_topic_alloc(cat, catalog_topic_kstr(old), old->id, partition_count);
        if (!t)
                return NULL;
        catalog_topic_share_partitions(t, old, old->partition_count);
        if (catalog_topic_add_new_partitions(cat, t, old->partition_count) < 0 ||
            catalog_topic_copy_configs(t, configs, config_count) < 0) {
                catalog_topic_put(t);
                return NULL;
        }
        return t;
}

int catalog_add_partitions(struct catalog *cat, struct kstr name, int32_t partition_count,
                           bool is_validate_only, struct catalog_err *err)
{
        struct catalog_tables next;
        struct catalog_topic *t = NULL;
        int rc = 0;

        assert(cat && err);
        catalog_set_err(err, CATALOG_ERR_NONE, NULL);
        pthread_mutex_lock(&cat->admin_mutex);
        struct catalog_topic *old = catalog_find_name(&cat->t, name);
        if (!old) {
                catalog_set_err(err, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                                "This server does not host this topic-partition.");
                goto out_unlock;
        }
        if (partition_count == old->partition_count) {
                catalog_set_err(err, CATALOG_ERR_INVALID_PARTITIONS,
                                "Topic already has the requested number of partitions");
                goto out_unlock;
        }
        if (partition_count < old->partition_count) {
                catalog_set_err(err, CATALOG_ERR_INVALID_PARTITIONS,
                                "Topic currently has more partitions than requested; "
                                "partitions cannot be removed");
                goto out_unlock;
        }
        if (!catalog_check_partition_count(partition_count, err) || is_validate_only)
                goto out_unlock;

        t = catalog_topic_derive(cat, old, partition_count, old->configs, old->config_count);
        if (!t) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        rc = catalog_tables_edit(&cat->t, old, t, &next);
        if (rc < 0)
                goto out_put;
        t->version = catalog_version(cat) + 1;
        rc = catalog_commit(cat, &next, t, old->partition_count, old);
        if (rc < 0)
                goto out_put;
        t = NULL;
out_put:
        catalog_topic_put(t);
out_unlock:
        pthread_mutex_unlock(&cat->admin_mutex);
        return rc;
}

int catalog_alter_configs(struct catalog *cat, struct kstr name,
                          const struct catalog_config *changes, uint32_t change_count,
                          bool is_replace_all, bool is_validate_only, struct catalog_err *err)
{
        struct catalog_config *merged = NULL;
        struct catalog_tables next;
        struct catalog_topic *t = NULL;
        uint32_t merged_count = 0;
        int rc = 0;

        assert(cat && err && (changes || change_count == 0));
        catalog_set_err(err, CATALOG_ERR_NONE, NULL);
        pthread_mutex_lock(&cat->admin_mutex);
        struct catalog_topic *old = catalog_find_name(&cat->t, name);
        if (!old) {
                catalog_set_err(err, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION,
                                "This server does not host this topic-partition.");
                goto out_unlock;
        }
        rc = catalog_merge_configs(old->configs, old->config_count, changes, change_count, is_replace_all,
                                   &merged, &merged_count, err);
        if (rc < 0 || err->code || is_validate_only)
                goto out_unlock;

        t = catalog_topic_derive(cat, old, old->partition_count, merged, merged_count);
        if (!t) {
                rc = -ENOMEM;
                goto out_unlock;
        }
        for (int32_t i = 0; i < t->partition_count; i++)
                assert(t->partitions[i] == old->partitions[i]);
        rc = catalog_tables_edit(&cat->t, old, t, &next);
        if (rc < 0)
                goto out_put;
        t->version = catalog_version(cat) + 1;
        rc = catalog_commit(cat, &next, NULL, 0, old);
        if (rc < 0)
                goto out_put;
        t = NULL;
out_put:
        catalog_topic_put(t);
out_unlock:
        pthread_mutex_unlock(&cat->admin_mutex);
        free(merged);
        return rc;
}
