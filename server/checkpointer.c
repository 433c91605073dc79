/*
 * checkpointer.c - start-up reading, periodic rewriting and final writing
 * of each log dir's recovery-point-offset-checkpoint,
 * log-start-offset-checkpoint and clean-shutdown marker; see checkpointer.h.
 *
 * Invariants:
 *   - the start-up tables (struct checkpointer_dir) are written by
 *     checkpointer_create only and read-only afterwards, from any thread;
 *     ids[i] is the catalog's id, at start-up, of entries[i]'s topic (zero
 *     when the catalog had no such topic, which then never matches);
 *   - is_stopping, is_log_start_requested and the writer's deadlines are
 *     under lock; the writer thread is the only caller of
 *     partition_homes_collect and of checkpointer_write until it is joined,
 *     after which checkpointer_finish is;
 *   - a dir's is_write_failed only goes from false to true.
 */
#include "checkpointer.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/logging.h"
#include "../log/checkpoint.h"
#include "partition_home.h"

/* Intervals at or past this (or at or below 0) mean "only at shutdown". */
#define CHECKPOINTER_INTERVAL_MS_MAX (1LL << 40)

/* One start-up table: a checkpoint file and the topic ids of its entries. */
struct checkpointer_table {
        struct checkpoint_offsets offsets;
        struct kuuid *ids;
};

struct checkpointer_dir {
        bool is_clean_shutdown;         /* the marker was there at start-up */
        struct checkpointer_table recovery_points;
        struct checkpointer_table log_start_offsets;
        bool is_write_failed;           /* a checkpoint write failed this run */
};

struct checkpointer {
        const struct broker_config *cfg;
        const struct logdirs *dirs;
        struct catalog *catalog;
        struct partition_homes *homes;
        struct checkpointer_dir dir[LOGDIR_COUNT_MAX];

        pthread_t thread;
        bool is_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;            /* CLOCK_MONOTONIC */
        bool is_stopping;
        bool is_log_start_requested;

        struct home_offsets_list list;  /* the writer's */
        struct checkpoint_offset *entries;
        uint32_t entries_cap;
};

static int64_t checkpointer_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- start-up ---- */

static int checkpointer_load_table(struct checkpointer *cp, uint32_t d, const char *name,
                                   struct checkpointer_table *table)
{
        const struct logdir *ld = &cp->dirs->dirs[d];
        char err[512];
        int rc = checkpoint_offsets_read(ld->dir_fd, name, &table->offsets, err, sizeof(err));
        if (rc == -ENOENT)
                return 0;
        if (rc == -EINVAL) {
                log_warn("%s/%s", ld->path, err);
                log_warn("ignoring %s/%s: the partitions of %s are recovered from their first segment and keep "
                         "their first segment's base offset as log start", ld->path, name, ld->path);
                return 0;
        }
        if (rc < 0) {
                log_error("cannot read %s/%s: %s", ld->path, name, strerror(-rc));
                return rc;
        }
        table->ids = calloc(table->offsets.count + 1, sizeof(*table->ids));
        if (!table->ids)
                return -ENOMEM;
        for (uint32_t i = 0; i < table->offsets.count; i++) {
                const char *topic = table->offsets.entries[i].topic;
                const struct catalog_topic *t = catalog_get_topic(cp->catalog, KSTR(topic));
                if (t)
                        table->ids[i] = t->id;
                catalog_topic_put(t);
        }
        return 0;
}

static void checkpointer_free_table(struct checkpointer_table *table)
{
        checkpoint_offsets_free(&table->offsets);
        free(table->ids);
        table->ids = NULL;
}

int checkpointer_create(const struct broker_config *cfg, const struct logdirs *dirs, struct catalog *cat,
                        struct partition_homes *homes, struct checkpointer **out, char *err, size_t err_bytes)
{
        struct checkpointer *cp = calloc(1, sizeof(*cp));
        pthread_condattr_t attr;
        int rc;

        if (!cp) {
                snprintf(err, err_bytes, "out of memory");
                return -ENOMEM;
        }
        cp->cfg = cfg;
        cp->dirs = dirs;
        cp->catalog = cat;
        cp->homes = homes;
        pthread_mutex_init(&cp->lock, NULL);
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&cp->cond, &attr);
        pthread_condattr_destroy(&attr);
        assert(dirs->count <= LOGDIR_COUNT_MAX);
        for (uint32_t d = 0; d < dirs->count; d++) {
                struct checkpointer_dir *cd = &cp->dir[d];
                rc = checkpointer_load_table(cp, d, CHECKPOINT_RECOVERY_POINT_FILE, &cd->recovery_points);
                if (rc == 0)
                        rc = checkpointer_load_table(cp, d, CHECKPOINT_LOG_START_OFFSET_FILE,
                                                     &cd->log_start_offsets);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot read the checkpoints of log dir %s: %s; check the "
                                 "directory's permissions and disk", dirs->dirs[d].path, strerror(-rc));
                        goto fail;
                }
                /* Taken before any partition opens: a crash from here on
                 * must leave no marker behind. */
                rc = checkpoint_clean_shutdown_take(dirs->dirs[d].dir_fd);
                if (rc < 0) {
                        snprintf(err, err_bytes, "cannot remove %s/%s: %s; check the directory's permissions",
                                 dirs->dirs[d].path, CHECKPOINT_CLEAN_SHUTDOWN_FILE, strerror(-rc));
                        goto fail;
                }
                cd->is_clean_shutdown = rc == 1;
                if (!cd->is_clean_shutdown && !dirs->dirs[d].was_formatted)
                        log_info("log dir %s was not shut down cleanly: partitions are recovered from their "
                                 "recovery points", dirs->dirs[d].path);
        }
        *out = cp;
        return 0;
fail:
        checkpointer_destroy(cp);
        return rc;
}

static bool checkpointer_table_find(const struct checkpointer_table *table, const struct catalog_topic *t,
                                    int32_t partition, int64_t *offset_out)
{
        const struct checkpoint_offset *e = checkpoint_offsets_find(&table->offsets, t->name, partition);
        if (!e || !kuuid_eq(table->ids[e - table->offsets.entries], t->id))
                return false;
        *offset_out = e->offset;
        return true;
}

void checkpointer_fill_options(const struct checkpointer *cp, uint32_t logdir_index, const struct catalog_topic *t,
                               int32_t partition, struct partition_options *o)
{
        assert(logdir_index < cp->dirs->count);
        const struct checkpointer_dir *cd = &cp->dir[logdir_index];
        int64_t offset;
        o->is_clean_shutdown = cd->is_clean_shutdown;
        o->recovery_point = 0;
        o->log_start_offset = 0;
        if (checkpointer_table_find(&cd->recovery_points, t, partition, &offset) && offset > 0)
                o->recovery_point = offset;
        if (checkpointer_table_find(&cd->log_start_offsets, t, partition, &offset) && offset > 0)
                o->log_start_offset = offset;
}

/* ---- writing ---- */

static int checkpointer_cmp_offsets(const void *a, const void *b)
{
        const struct home_partition_offsets *x = a, *y = b;
        if (x->logdir_index != y->logdir_index)
                return x->logdir_index < y->logdir_index ? -1 : 1;
        int c = strcmp(x->topic, y->topic);
        if (c)
                return c;
        return x->partition < y->partition ? -1 : x->partition > y->partition;
}

/* Whether the catalog still has this topic, by id: the partition was not
 * deleted (or deleted and created again) since it was read. */
static bool checkpointer_is_current(struct checkpointer *cp, const struct home_partition_offsets *o,
                                    const struct home_partition_offsets *prev, bool prev_is_current)
{
        if (prev && strcmp(prev->topic, o->topic) == 0 && kuuid_eq(prev->topic_id, o->topic_id))
                return prev_is_current;
        const struct catalog_topic *t = catalog_get_topic(cp->catalog, KSTR(o->topic));
        bool is_current = t && kuuid_eq(t->id, o->topic_id) && o->partition < t->partition_count;
        catalog_topic_put(t);
        return is_current;
}

static int checkpointer_write_file(struct checkpointer *cp, uint32_t d, const char *name, uint32_t count)
{
        const struct logdir *ld = &cp->dirs->dirs[d];
        int rc = checkpoint_offsets_write(ld->dir_fd, name, cp->entries, count);
        if (rc < 0 && !cp->dir[d].is_write_failed) {
                log_error("cannot write %s/%s: %s; %s gets no further checkpoints and no clean-shutdown marker "
                          "this run (check the disk)", ld->path, name, strerror(-rc), ld->path);
                cp->dir[d].is_write_failed = true;
        }
        return rc;
}

/*
 * Writes the chosen checkpoints of every log dir from l (sorted here), each
 * dir's entries in (topic, partition) order. has_failed_partition[d] is set
 * for dirs with a partition that failed or was not flushed.
 */
static void checkpointer_write(struct checkpointer *cp, struct home_offsets_list *l, bool is_recovery_points,
                               bool is_log_start_offsets, bool *has_failed_partition)
{
        if (l->count > 0)
                qsort(l->items, l->count, sizeof(l->items[0]), checkpointer_cmp_offsets);
        if (l->count > cp->entries_cap) {
                struct checkpoint_offset *n = realloc(cp->entries, l->count * sizeof(*n));
                if (!n) {
                        log_error("out of memory writing the checkpoints; they are left as they were");
                        for (uint32_t d = 0; d < cp->dirs->count; d++)
                                has_failed_partition[d] = true;
                        return;
                }
                cp->entries = n;
                cp->entries_cap = l->count;
        }
        uint32_t at = 0;
        for (uint32_t d = 0; d < cp->dirs->count; d++) {
                uint32_t begin = at;
                while (at < l->count && l->items[at].logdir_index == d)
                        at++;
                for (uint32_t i = begin; i < at; i++)
                        has_failed_partition[d] |= l->items[i].is_failed;
                if (cp->dir[d].is_write_failed || partition_homes_is_dir_failed(cp->homes, d))
                        continue;
                /* Which entries still belong to live topics. */
                uint32_t n = 0;
                bool is_current = false;
                for (uint32_t i = begin; i < at; i++) {
                        const struct home_partition_offsets *o = &l->items[i];
                        is_current = checkpointer_is_current(cp, o, i > begin ? &l->items[i - 1] : NULL, is_current);
                        if (is_current)
                                cp->entries[n++] = (struct checkpoint_offset){ o->topic, o->partition,
                                                                               o->recovery_point };
                }
                if (is_recovery_points &&
                    checkpointer_write_file(cp, d, CHECKPOINT_RECOVERY_POINT_FILE, n) < 0)
                        continue;
                if (!is_log_start_offsets)
                        continue;
                /* Kafka keeps a log start offset only when it is inside a
                 * segment: otherwise the first segment says it. The ones
                 * kept are a subsequence of the recovery point entries. */
                uint32_t m = 0;
                for (uint32_t i = begin, j = 0; i < at && j < n; i++) {
                        const struct home_partition_offsets *o = &l->items[i];
                        if (strcmp(o->topic, cp->entries[j].topic) != 0 || o->partition != cp->entries[j].partition)
                                continue;       /* not current */
                        j++;
                        if (o->log_start_offset > o->first_segment_offset)
                                cp->entries[m++] = (struct checkpoint_offset){ o->topic, o->partition,
                                                                               o->log_start_offset };
                }
                checkpointer_write_file(cp, d, CHECKPOINT_LOG_START_OFFSET_FILE, m);
        }
}

/* ---- the writer thread ---- */

static bool checkpointer_is_periodic(int64_t interval_ms)
{
        return interval_ms > 0 && interval_ms < CHECKPOINTER_INTERVAL_MS_MAX;
}

/* The first run after Kafka's initial task delay, at most. */
static int64_t checkpointer_first_due_ms(int64_t now_ms, int64_t interval_ms)
{
        if (!checkpointer_is_periodic(interval_ms))
                return INT64_MAX;
        return now_ms + (interval_ms < PARTITION_HOME_INITIAL_TASK_DELAY_MS ? interval_ms
                                                                            : PARTITION_HOME_INITIAL_TASK_DELAY_MS);
}

static void *checkpointer_main(void *arg)
{
        struct checkpointer *cp = arg;
        int64_t recovery_interval_ms = cp->cfg->log_flush_offset_checkpoint_interval_ms;
        int64_t start_interval_ms = cp->cfg->log_flush_start_offset_checkpoint_interval_ms;
        int64_t now_ms = checkpointer_now_ms();
        int64_t recovery_due_ms = checkpointer_first_due_ms(now_ms, recovery_interval_ms);
        int64_t start_due_ms = checkpointer_first_due_ms(now_ms, start_interval_ms);
        bool has_failed[LOGDIR_COUNT_MAX] = { false };  /* only the final write looks */

        pthread_mutex_lock(&cp->lock);
        while (!cp->is_stopping) {
                now_ms = checkpointer_now_ms();
                bool is_recovery_due = now_ms >= recovery_due_ms;
                bool is_start_due = now_ms >= start_due_ms || cp->is_log_start_requested;
                if (!is_recovery_due && !is_start_due) {
                        int64_t due_ms = recovery_due_ms < start_due_ms ? recovery_due_ms : start_due_ms;
                        if (due_ms == INT64_MAX) {
                                pthread_cond_wait(&cp->cond, &cp->lock);
                                continue;
                        }
                        struct timespec ts = { (time_t)(due_ms / 1000), (long)(due_ms % 1000) * 1000000 };
                        pthread_cond_timedwait(&cp->cond, &cp->lock, &ts);
                        continue;
                }
                cp->is_log_start_requested = false;
                pthread_mutex_unlock(&cp->lock);

                int rc = partition_homes_collect(cp->homes, &cp->list);
                if (rc == 0)
                        checkpointer_write(cp, &cp->list, is_recovery_due, is_start_due, has_failed);
                else if (rc != -ESHUTDOWN)
                        log_warn("cannot collect the partitions' offsets (%s); the checkpoints are written "
                                 "next time", strerror(-rc));

                pthread_mutex_lock(&cp->lock);
                now_ms = checkpointer_now_ms();
                if (is_recovery_due)
                        recovery_due_ms = now_ms + recovery_interval_ms;
                if (is_start_due && checkpointer_is_periodic(start_interval_ms))
                        start_due_ms = now_ms + start_interval_ms;
                else if (is_start_due)
                        start_due_ms = INT64_MAX;
                if (rc == -ESHUTDOWN)
                        break;          /* the homes are stopping: the final write follows */
        }
        pthread_mutex_unlock(&cp->lock);
        return NULL;
}

int checkpointer_start(struct checkpointer *cp)
{
        assert(!cp->is_started);
        int err = pthread_create(&cp->thread, NULL, checkpointer_main, cp);
        if (err)
                return -err;
        cp->is_started = true;
        return 0;
}

void checkpointer_request_log_start(struct checkpointer *cp)
{
        pthread_mutex_lock(&cp->lock);
        cp->is_log_start_requested = true;
        pthread_cond_signal(&cp->cond);
        pthread_mutex_unlock(&cp->lock);
}

/* ---- shutdown ---- */

static void checkpointer_write_marker(struct checkpointer *cp, uint32_t d)
{
        const struct logdir *ld = &cp->dirs->dirs[d];
        /* runnel has no broker epoch (KIP-966 registers one with a KRaft
         * controller): -1, what Kafka writes when it has none either. */
        int rc = checkpoint_clean_shutdown_write(ld->dir_fd, -1);
        if (rc < 0)
                log_error("cannot write %s/%s: %s; the next start recovers %s", ld->path,
                          CHECKPOINT_CLEAN_SHUTDOWN_FILE, strerror(-rc), ld->path);
}

void checkpointer_finish(struct checkpointer *cp)
{
        bool has_failed[LOGDIR_COUNT_MAX] = { false };
        bool is_complete = false, is_untouched = false;

        if (cp->is_started) {
                pthread_mutex_lock(&cp->lock);
                cp->is_stopping = true;
                pthread_cond_signal(&cp->cond);
                pthread_mutex_unlock(&cp->lock);
                pthread_join(cp->thread, NULL);
                cp->is_started = false;
        }
        if (partition_homes_final_offsets(cp->homes, &cp->list, &is_complete, &is_untouched) < 0) {
                log_error("out of memory at shutdown: no final checkpoints and no clean-shutdown marker");
                return;
        }
        if (is_untouched) {
                /* The server never started: no partition was opened, the
                 * dirs are as start-up found them, markers included. */
                for (uint32_t d = 0; d < cp->dirs->count; d++)
                        if (cp->dir[d].is_clean_shutdown)
                                checkpointer_write_marker(cp, d);
                return;
        }
        if (!is_complete) {
                /* A home never got to record its partitions: a checkpoint
                 * without them would lose their log start offsets. */
                log_warn("not every reactor closed its partitions; the checkpoints are left as they were and "
                         "the next start recovers every log dir");
                return;
        }
        checkpointer_write(cp, &cp->list, true, true, has_failed);
        /* Kafka writes the marker last, once every log is flushed and closed
         * and the checkpoints are on disk. */
        for (uint32_t d = 0; d < cp->dirs->count; d++) {
                if (has_failed[d] || cp->dir[d].is_write_failed || partition_homes_is_dir_failed(cp->homes, d)) {
                        log_warn("log dir %s: no clean-shutdown marker (a partition failed or was not flushed); "
                                 "the next start recovers it", cp->dirs->dirs[d].path);
                        continue;
                }
                checkpointer_write_marker(cp, d);
        }
}

void checkpointer_destroy(struct checkpointer *cp)
{
        if (!cp)
                return;
        assert(!cp->is_started);
        for (uint32_t d = 0; d < LOGDIR_COUNT_MAX; d++) {
                checkpointer_free_table(&cp->dir[d].recovery_points);
                checkpointer_free_table(&cp->dir[d].log_start_offsets);
        }
        home_offsets_list_free(&cp->list);
        free(cp->entries);
        pthread_cond_destroy(&cp->cond);
        pthread_mutex_destroy(&cp->lock);
        free(cp);
}
