/*
 * test_catalog.c - the topic catalog: admin operations, what they leave on
 * disk byte for byte, reloading, repairs at open after crashes, I/O
 * failures, and lookups racing admin operations (run it under ASan).
 *
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/catalog.h"
#include "log/cleaner.h"
#include "log/test_util.h"

/* ---- fixture ---- */

#define TEST_DIRS_MAX 4
#define TEST_LINES_MAX 256

static char tmp_root[64];
static char dir_paths[TEST_DIRS_MAX][128];
static const char *dir_list[TEST_DIRS_MAX];
static uint32_t dir_count;
static struct logdirs dirs;
static struct catalog *cat;
static char err_line[1024];

static pthread_mutex_t lines_lock = PTHREAD_MUTEX_INITIALIZER;
static char *lines[TEST_LINES_MAX];
static uint32_t line_count;
static atomic_int released_count;
static void *_Atomic last_released;

static void test_log_line(void *ctx, const char *line)
{
        (void)ctx;
        pthread_mutex_lock(&lines_lock);
        if (line_count < TEST_LINES_MAX)
                lines[line_count++] = strdup(line);
        pthread_mutex_unlock(&lines_lock);
}

static void test_release_log(void *ctx, void *log)
{
        (void)ctx;
        atomic_store(&last_released, log);
        atomic_fetch_add(&released_count, 1);
}

/* Logs allocated as malloc'd ints are freed by this hook instead. */
static void test_free_log(void *ctx, void *log)
{
        (void)ctx;
        free(log);
        atomic_fetch_add(&released_count, 1);
}

static const struct catalog_hooks hooks = {
        .log_line = test_log_line,
        .release_log = test_release_log,
};

static bool test_logged(const char *a, const char *b)
{
        bool found = false;
        pthread_mutex_lock(&lines_lock);
        for (uint32_t i = 0; i < line_count && !found; i++)
                found = strstr(lines[i], a) && (!b || strstr(lines[i], b));
        pthread_mutex_unlock(&lines_lock);
        return found;
}

static void test_forget_lines(void)
{
        pthread_mutex_lock(&lines_lock);
        for (uint32_t i = 0; i < line_count; i++)
                free(lines[i]);
        line_count = 0;
        pthread_mutex_unlock(&lines_lock);
}

static void test_open_with(const struct catalog_hooks *h)
{
        cr_assert_eq(logdirs_open(&dirs, dir_list, dir_count, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_eq(catalog_open(&cat, &dirs, h, err_line, sizeof(err_line)), 0, "%s", err_line);
}

static void test_open(void)
{
        test_open_with(&hooks);
}

/* Like test_open but expecting the catalog to refuse; returns its result. */
static int test_open_fails(void)
{
        cr_assert_eq(logdirs_open(&dirs, dir_list, dir_count, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        err_line[0] = '\0';
        int rc = catalog_open(&cat, &dirs, &hooks, err_line, sizeof(err_line));
        cr_assert_lt(rc, 0, "catalog_open should have failed");
        cat = NULL;
        logdirs_close(&dirs);
        return rc;
}

static void test_close(void)
{
        catalog_close(cat);
        cat = NULL;
        logdirs_close(&dirs);
}

static void test_reopen(void)
{
        test_close();
        test_open();
}

static void test_setup_dirs(uint32_t count)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "catalog");
        dir_count = count;
        for (uint32_t i = 0; i < count; i++) {
                snprintf(dir_paths[i], sizeof(dir_paths[i]), "%s/d%u", tmp_root, (unsigned)i);
                dir_list[i] = dir_paths[i];
        }
        atomic_store(&released_count, 0);
        atomic_store(&last_released, NULL);
        test_forget_lines();
}

static void setup1(void)
{
        test_setup_dirs(1);
        test_open();
}

static void setup3(void)
{
        test_setup_dirs(3);
        test_open();
}

static void teardown(void)
{
        if (cat)
                test_close();
        test_forget_lines();
        test_util_tmpdir_remove(tmp_root);
}

/* ---- helpers ---- */

static const char *test_path(uint32_t dir, const char *rel)
{
        static char bufs[8][512];
        static int next;
        char *b = bufs[next++ % 8];
        snprintf(b, sizeof(bufs[0]), "%s/%s", dir_paths[dir], rel);
        return b;
}

static bool test_exists(const char *path)
{
        struct stat st;
        return lstat(path, &st) == 0;
}


/* Entries of a log dir ending with suffix. */
static int test_count_suffix(uint32_t dir, const char *suffix)
{
        DIR *d = opendir(dir_paths[dir]);
        int n = 0;
        struct dirent *e;
        cr_assert_not_null(d);
        while ((e = readdir(d)) != NULL)
                if (logdir_has_suffix(e->d_name, suffix))
                        n++;
        closedir(d);
        return n;
}

static void test_expect_metadata(uint32_t dir, const char *partdir, const char *id_str)
{
        char want[128], path[300];
        snprintf(want, sizeof(want), "version: 0\ntopic_id: %s\n", id_str);
        snprintf(path, sizeof(path), "%s/partition.metadata", partdir);
        const char *got = test_util_slurp(test_path(dir, path));
        cr_assert_not_null(got, "%s in dir %u", path, (unsigned)dir);
        cr_assert_str_eq(got, want);
}

static int test_create(const char *name, int32_t partitions, const struct catalog_config *configs,
                       uint32_t config_count, struct catalog_err *err)
{
        struct catalog_topic_spec spec = {
                .name = KSTR(name),
                .partition_count = partitions,
                .configs = configs,
                .config_count = config_count,
        };
        return catalog_create_topic(cat, &spec, NULL, err);
}

static void test_create_ok(const char *name, int32_t partitions)
{
        struct catalog_err err;
        cr_assert_eq(test_create(name, partitions, NULL, 0, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE, "%s: %d %s", name, err.code, err.message);
}

static int16_t test_create_code(const char *name, int32_t partitions)
{
        struct catalog_err err;
        cr_assert_eq(test_create(name, partitions, NULL, 0, &err), 0);
        cr_assert_eq(err.code == CATALOG_ERR_NONE, err.message == NULL);
        return err.code;
}

/* ---- create, look up, reload ---- */

TestSuite(catalog, .init = setup1, .fini = teardown);

Test(catalog, create_lays_out_dirs_and_file_like_kafka)
{
        static const struct catalog_config configs[] = {
                { "retention.ms", "1000" },
                { "cleanup.policy", "compact" },
        };
        struct catalog_topic_spec spec = { KSTR("orders"), 3, configs, 2, false };
        struct catalog_err err;
        struct kuuid id;
        uint64_t v0 = catalog_version(cat);

        cr_assert_eq(catalog_create_topic(cat, &spec, &id, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        cr_assert_null(err.message);
        cr_assert_not(kuuid_is_zero(id));
        cr_assert_gt(catalog_version(cat), v0);

        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("orders"));
        cr_assert_not_null(t);
        cr_assert_str_eq(t->name, "orders");
        cr_assert_eq(t->name_len, 6);
        cr_assert(kuuid_eq(t->id, id));
        cr_assert_eq(strlen(t->id_str), 22);
        cr_assert_not(t->is_internal);
        cr_assert_eq(t->partition_count, 3);
        cr_assert_eq(t->version, catalog_version(cat));
        cr_assert_eq(t->config_count, 2);
        cr_assert_str_eq(t->configs[0].key, "cleanup.policy", "sorted by key");
        cr_assert_str_eq(catalog_topic_config(t, "retention.ms"), "1000");
        cr_assert_str_eq(catalog_topic_config(t, "cleanup.policy"), "compact");
        cr_assert_null(catalog_topic_config(t, "segment.bytes"));
        cr_assert_null(catalog_topic_partition(t, 3));
        cr_assert_null(catalog_topic_partition(t, -1));

        const struct catalog_topic *by_id = catalog_get_topic_by_id(cat, id);
        cr_assert_eq(by_id, t, "the same version");
        catalog_topic_put(by_id);
        cr_assert_null(catalog_get_topic(cat, KSTR("orders2")));
        cr_assert_null(catalog_get_topic(cat, KSTR("order")));
        cr_assert_null(catalog_get_topic(cat, KSTR_NULL));
        struct kuuid zero = { { 0 } };
        cr_assert_null(catalog_get_topic_by_id(cat, zero));

        for (int32_t p = 0; p < 3; p++) {
                char name[32], path[512], want[512];
                snprintf(name, sizeof(name), "orders-%d", (int)p);
                test_expect_metadata(0, name, t->id_str);
                cr_assert_eq(catalog_topic_partition(t, p)->index, p);
                cr_assert_eq(catalog_partition_path(cat, t, p, path, sizeof(path)), (int)strlen(path));
                snprintf(want, sizeof(want), "%s/orders-%d", dir_paths[0], (int)p);
                cr_assert_str_eq(path, want);
        }
        cr_assert_not(test_exists(test_path(0, "orders-3")));

        char file[1024];
        snprintf(file, sizeof(file),
                 "# runnel topic catalog: topics, partition counts, config overrides.\n"
                 "# Rewritten by the broker on every change; see log/catalog.h.\n"
                 "version 1\n"
                 "topic orders %s 3 0\n"
                 "config orders cleanup.policy compact\n"
                 "config orders retention.ms 1000\n"
                 "end 1 2 0\n", t->id_str);
        cr_assert_str_eq(test_util_slurp(test_path(0, CATALOG_FILE)), file);
        cr_assert_not(test_exists(test_path(0, CATALOG_FILE ".tmp")));

        char id_str[UUID_BASE64_BYTES];
        strcpy(id_str, t->id_str);
        catalog_topic_put(t);

        test_reopen();
        cr_assert_eq(line_count, 0, "a clean reopen says nothing: %s", line_count ? lines[0] : "");
        t = catalog_get_topic(cat, KSTR("orders"));
        cr_assert_not_null(t);
        cr_assert_str_eq(t->id_str, id_str);
        cr_assert_eq(t->partition_count, 3);
        cr_assert_eq(t->version, catalog_version(cat));
        cr_assert_eq(t->config_count, 2);
        cr_assert_str_eq(catalog_topic_config(t, "retention.ms"), "1000");
        for (int32_t p = 0; p < 3; p++)
                cr_assert_eq(t->partitions[p]->logdir_index, 0);
        catalog_topic_put(t);
        cr_assert_eq(catalog_topic_count(cat), 1);
        cr_assert_str_eq(test_util_slurp(test_path(0, CATALOG_FILE)), file, "a clean reopen writes nothing");
}

/* Topic creation took two fsyncs per partition (issue 7's benchmark:
 * 1,000 partitions in about 400 ms); from 8 partitions on the files are
 * written unsynced and one syncfs makes them durable before the topic is
 * committed. The layout is the same either way. */
Test(catalog, many_partitions_are_laid_out_like_few)
{
        char partdir[64], tmp[96];

        test_create_ok("wide", 64);
        test_create_ok("narrow", 2);
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("wide"));
        const struct catalog_topic *n = catalog_get_topic(cat, KSTR("narrow"));
        cr_assert_not_null(t);
        cr_assert_not_null(n);
        for (int32_t p = 0; p < 64; p++) {
                snprintf(partdir, sizeof(partdir), "wide-%d", (int)p);
                test_expect_metadata(0, partdir, t->id_str);
                snprintf(tmp, sizeof(tmp), "%s/partition.metadata.tmp", partdir);
                cr_assert_not(test_exists(test_path(0, tmp)), "%s left behind", tmp);
        }
        test_expect_metadata(0, "narrow-1", n->id_str);
        catalog_topic_put(n);
        catalog_topic_put(t);
        test_reopen();
        t = catalog_get_topic(cat, KSTR("wide"));
        cr_assert_not_null(t);
        cr_assert_eq(t->partition_count, 64);
        catalog_topic_put(t);
}

Test(catalog, topic_name_validation)
{
        char longest[250], too_long[251];
        memset(longest, 'x', 249);
        longest[249] = '\0';
        memset(too_long, 'y', 250);
        too_long[250] = '\0';

        static const struct {
                const char *name;
                int16_t code;
        } cases[] = {
                { "", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { ".", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "..", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "a b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "a/b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "a\\b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "tópico", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "a,b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "a:b", CATALOG_ERR_INVALID_TOPIC_EXCEPTION },
                { "...", CATALOG_ERR_NONE },
                { ".hidden", CATALOG_ERR_NONE },
                { "Mixed.Case_name-09", CATALOG_ERR_NONE },
                { "-", CATALOG_ERR_NONE },
                { "ends-", CATALOG_ERR_NONE },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                cr_assert_eq(test_create_code(cases[i].name, 1), cases[i].code, "'%s'", cases[i].name);
                cr_assert_eq(catalog_is_valid_topic_name(KSTR(cases[i].name)), cases[i].code == 0, "'%s'",
                             cases[i].name);
        }
        cr_assert_eq(test_create_code(longest, 1), CATALOG_ERR_NONE);
        cr_assert_eq(test_create_code(too_long, 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
        struct kstr with_nul = { "a\0b", 3 };
        cr_assert_not(catalog_is_valid_topic_name(with_nul));
        cr_assert_not(catalog_is_valid_topic_name(KSTR_NULL));

        /* The valid ones made dirs, the others nothing. */
        cr_assert(test_exists(test_path(0, "...-0")));
        cr_assert(test_exists(test_path(0, ".hidden-0")));
        cr_assert(test_exists(test_path(0, "--0")));
        cr_assert_eq(catalog_topic_count(cat), 6);

        test_reopen();
        cr_assert_eq(catalog_topic_count(cat), 6);
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR(".hidden"));
        cr_assert_not_null(t, "a name starting with '.' survives a reload");
        catalog_topic_put(t);
        cr_assert_eq(line_count, 0, "%s", line_count ? lines[0] : "");
}

Test(catalog, duplicates_collisions_and_counts)
{
        test_create_ok("metrics.cpu", 1);
        cr_assert_eq(test_create_code("metrics.cpu", 1), CATALOG_ERR_TOPIC_ALREADY_EXISTS);
        cr_assert_eq(test_create_code("metrics_cpu", 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
        cr_assert_eq(test_create_code("metrics.cpu2", 1), CATALOG_ERR_NONE);
        test_create_ok("a_b_c", 1);
        cr_assert_eq(test_create_code("a.b_c", 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
        cr_assert_eq(test_create_code("a.b.c", 1), CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
        cr_assert_eq(test_create_code("a-b-c", 1), CATALOG_ERR_NONE, "'-' is not part of the rule");
        cr_assert(catalog_topic_names_collide(KSTR("x.y"), KSTR("x_y")));
        cr_assert(catalog_topic_names_collide(KSTR("x.y"), KSTR("x.y")));
        cr_assert_not(catalog_topic_names_collide(KSTR("x.y"), KSTR("x-y")));
        cr_assert_not(catalog_topic_names_collide(KSTR("x.y"), KSTR("x.yz")));

        cr_assert_eq(test_create_code("p0", 0), CATALOG_ERR_INVALID_PARTITIONS);
        cr_assert_eq(test_create_code("p0", -1), CATALOG_ERR_INVALID_PARTITIONS);
        cr_assert_eq(test_create_code("p0", CATALOG_PARTITIONS_MAX + 1), CATALOG_ERR_INVALID_PARTITIONS);
        cr_assert_eq(test_create_code("bad name", 0), CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "name first");
        cr_assert_eq(test_create_code("metrics.cpu", 0), CATALOG_ERR_TOPIC_ALREADY_EXISTS, "then existence");
        cr_assert_eq(test_create_code("metrics_cpu", 0), CATALOG_ERR_INVALID_TOPIC_EXCEPTION, "then collision");

        struct catalog_err err;
        struct catalog_config null_value = { "retention.ms", NULL };
        cr_assert_eq(test_create("c1", 1, &null_value, 1, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_CONFIG);
        struct catalog_config empty_key = { "", "1" };
        cr_assert_eq(test_create("c1", 1, &empty_key, 1, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_CONFIG);
        cr_assert_null(catalog_get_topic(cat, KSTR("c1")));

        /* Validate-only decides the same and changes nothing. */
        struct catalog_topic_spec spec = { KSTR("dry"), 2, NULL, 0, true };
        uint64_t v = catalog_version(cat);
        cr_assert_eq(catalog_create_topic(cat, &spec, NULL, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        cr_assert_null(catalog_get_topic(cat, KSTR("dry")));
        cr_assert_not(test_exists(test_path(0, "dry-0")));
        cr_assert_eq(catalog_version(cat), v);
        spec.name = KSTR("metrics_cpu");
        cr_assert_eq(catalog_create_topic(cat, &spec, NULL, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_TOPIC_EXCEPTION);
}

Test(catalog, internal_topics)
{
        test_create_ok("__consumer_offsets", 50);
        test_create_ok("__transaction_state", 2);
        test_create_ok("__share_group_state", 1);
        test_create_ok("__other", 1);
        cr_assert(catalog_is_internal_topic_name(KSTR("__consumer_offsets")));
        cr_assert_not(catalog_is_internal_topic_name(KSTR("__consumer_offsets2")));

        for (int reload = 0; reload < 2; reload++) {
                static const char *names[] = { "__consumer_offsets", "__transaction_state",
                                               "__share_group_state", "__other" };
                for (int i = 0; i < 4; i++) {
                        const struct catalog_topic *t = catalog_get_topic(cat, KSTR(names[i]));
                        cr_assert_not_null(t);
                        cr_assert_eq(t->is_internal, i < 3, "%s", names[i]);
                        catalog_topic_put(t);
                }
                test_reopen();
        }
        const char *file = test_util_slurp(test_path(0, CATALOG_FILE));
        cr_assert(strstr(file, " 50 1\n"), "%s", file);
        cr_assert(strstr(file, "topic __other "), "%s", file);
        cr_assert(test_exists(test_path(0, "__consumer_offsets-49")));
}

/* ---- delete ---- */

Test(catalog, delete_removes_dirs_and_survives_reload)
{
        static const struct catalog_config configs[] = { { "retention.ms", "5" } };
        struct catalog_err err;
        int log_token;

        cr_assert_eq(test_create("gone", 2, configs, 1, &err), 0);
        test_create_ok("kept", 1);
        const struct catalog_topic *held = catalog_get_topic(cat, KSTR("gone"));
        cr_assert_not_null(held);
        struct kuuid id = held->id;
        cr_assert_null(catalog_partition_set_log(held->partitions[0], &log_token));
        cr_assert_eq(catalog_partition_log(held->partitions[0]), &log_token);

        /* Cleaned partitions of it: Kafka drops their cleaner lines. */
        cr_assert_eq(cleaner_checkpoint_update(dirs.dirs[0].dir_fd, "gone", 1, 40), 0);
        cr_assert_eq(cleaner_checkpoint_update(dirs.dirs[0].dir_fd, "kept", 0, 9), 0);

        uint64_t v = catalog_version(cat);
        cr_assert_eq(catalog_delete_topic(cat, KSTR("gone"), &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        int64_t dirty = -1;
        cr_assert_eq(cleaner_checkpoint_read(dirs.dirs[0].dir_fd, "gone", 1, &dirty), -ENOENT);
        cr_assert_eq(cleaner_checkpoint_read(dirs.dirs[0].dir_fd, "kept", 0, &dirty), 0);
        cr_assert_eq(dirty, 9);
        cr_assert_gt(catalog_version(cat), v);
        cr_assert_null(catalog_get_topic(cat, KSTR("gone")));
        cr_assert_null(catalog_get_topic_by_id(cat, id));
        cr_assert_not(test_exists(test_path(0, "gone-0")));
        cr_assert_not(test_exists(test_path(0, "gone-1")));
        cr_assert_eq(test_count_suffix(0, "-delete"), 0, "removed, not only renamed");
        cr_assert(test_exists(test_path(0, "kept-0")));

        /* The reference held across the delete is still whole. */
        cr_assert_str_eq(held->name, "gone");
        cr_assert_eq(held->partition_count, 2);
        cr_assert_str_eq(catalog_topic_config(held, "retention.ms"), "5");
        cr_assert_eq(atomic_load(&released_count), 0, "the log outlives the last reference only");
        catalog_topic_put(held);
        cr_assert_eq(atomic_load(&released_count), 1);
        cr_assert_eq(atomic_load(&last_released), &log_token);

        cr_assert_eq(catalog_delete_topic(cat, KSTR("gone"), &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        cr_assert_not_null(err.message);
        cr_assert_eq(catalog_delete_topic_by_id(cat, id, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_UNKNOWN_TOPIC_ID);

        const struct catalog_topic *k = catalog_get_topic(cat, KSTR("kept"));
        struct kuuid kept_id = k->id;
        catalog_topic_put(k);
        cr_assert_eq(catalog_delete_topic_by_id(cat, kept_id, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        cr_assert_not(test_exists(test_path(0, "kept-0")));
        cr_assert_eq(catalog_topic_count(cat), 0);
        /* The delete was committed with a tombstone before any dir was touched. */
        char tomb[128];
        char kept_str[UUID_BASE64_BYTES];
        uuid_to_base64(kept_id, kept_str);
        snprintf(tomb, sizeof(tomb), "\ndeleted %s kept\nend 0 0 1\n", kept_str);
        const char *committed = test_util_slurp(test_path(0, CATALOG_FILE));
        cr_assert(strstr(committed, tomb), "%s", committed);

        test_reopen();
        cr_assert_eq(catalog_topic_count(cat), 0);
        const char *file = test_util_slurp(test_path(0, CATALOG_FILE));
        cr_assert_null(strstr(file, "\ntopic "), "%s", file);
        cr_assert_null(strstr(file, "\ndeleted "), "tombstones dropped at open: %s", file);

        /* The name is free again, with a new id. */
        test_create_ok("gone", 1);
        const struct catalog_topic *again = catalog_get_topic(cat, KSTR("gone"));
        cr_assert_not(kuuid_eq(again->id, id));
        test_expect_metadata(0, "gone-0", again->id_str);
        catalog_topic_put(again);
}

/* ---- add partitions ---- */

Test(catalog, add_partitions_grows_only)
{
        struct catalog_err err;
        int log_token;

        test_create_ok("grow", 1);
        const struct catalog_topic *v1 = catalog_get_topic(cat, KSTR("grow"));
        catalog_partition_set_log(v1->partitions[0], &log_token);

        cr_assert_eq(catalog_add_partitions(cat, KSTR("grow"), 1, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_PARTITIONS);
        cr_assert_eq(catalog_add_partitions(cat, KSTR("grow"), 0, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_PARTITIONS);
        cr_assert_eq(catalog_add_partitions(cat, KSTR("grow"), CATALOG_PARTITIONS_MAX + 1, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_PARTITIONS);
        cr_assert_eq(catalog_add_partitions(cat, KSTR("nope"), 5, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        cr_assert_eq(catalog_add_partitions(cat, KSTR("grow"), 4, true, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        cr_assert_not(test_exists(test_path(0, "grow-1")), "validate only");

        cr_assert_eq(catalog_add_partitions(cat, KSTR("grow"), 4, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        const struct catalog_topic *v2 = catalog_get_topic(cat, KSTR("grow"));
        cr_assert_neq(v1, v2, "a new version");
        cr_assert_eq(v1->partition_count, 1, "the old version is unchanged");
        cr_assert_eq(v2->partition_count, 4);
        cr_assert(kuuid_eq(v1->id, v2->id));
        cr_assert_eq(v2->partitions[0], v1->partitions[0], "existing partitions are shared");
        cr_assert_eq(catalog_partition_log(v2->partitions[0]), &log_token);
        cr_assert_null(catalog_partition_log(v2->partitions[3]));
        for (int p = 0; p < 4; p++) {
                char name[32];
                snprintf(name, sizeof(name), "grow-%d", p);
                test_expect_metadata(0, name, v2->id_str);
        }
        catalog_topic_put(v1);
        cr_assert_eq(atomic_load(&released_count), 0, "v2 still holds partition 0");
        catalog_topic_put(v2);

        test_reopen();
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("grow"));
        cr_assert_eq(t->partition_count, 4);
        catalog_topic_put(t);
        cr_assert_eq(catalog_add_partitions(cat, KSTR("grow"), 3, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_PARTITIONS);
}

/* ---- configs ---- */

Test(catalog, alter_configs_and_escaping)
{
        static const struct catalog_config initial[] = {
                { "retention.ms", "100" },
                { "segment.bytes", "2048" },
        };
        struct catalog_err err;

        cr_assert_eq(test_create("cfg", 2, initial, 2, &err), 0);
        const struct catalog_topic *v1 = catalog_get_topic(cat, KSTR("cfg"));

        /* IncrementalAlterConfigs: set one, delete one, add one. */
        static const struct catalog_config inc[] = {
                { "retention.ms", "200" },
                { "segment.bytes", NULL },
                { "weird", "a b\n%c \xc3\xbc\t" },
                { "empty", "" },
                { "never.set", NULL },
        };
        cr_assert_eq(catalog_alter_configs(cat, KSTR("cfg"), inc, 5, false, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        const struct catalog_topic *v2 = catalog_get_topic(cat, KSTR("cfg"));
        cr_assert_str_eq(catalog_topic_config(v2, "retention.ms"), "200");
        cr_assert_null(catalog_topic_config(v2, "segment.bytes"));
        cr_assert_str_eq(catalog_topic_config(v2, "weird"), "a b\n%c \xc3\xbc\t");
        cr_assert_str_eq(catalog_topic_config(v2, "empty"), "");
        cr_assert_eq(v2->config_count, 3);
        cr_assert_str_eq(catalog_topic_config(v1, "retention.ms"), "100", "old version unchanged");
        cr_assert_eq(v2->partitions[1], v1->partitions[1]);
        catalog_topic_put(v1);
        catalog_topic_put(v2);

        const char *file = test_util_slurp(test_path(0, CATALOG_FILE));
        cr_assert(strstr(file, "\nconfig cfg weird a%20b%0A%25c%20%C3%BC%09\n"), "%s", file);
        cr_assert(strstr(file, "\nconfig cfg empty \n"), "%s", file);

        test_reopen();
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("cfg"));
        cr_assert_eq(t->config_count, 3);
        cr_assert_str_eq(catalog_topic_config(t, "weird"), "a b\n%c \xc3\xbc\t");
        cr_assert_str_eq(catalog_topic_config(t, "empty"), "");
        cr_assert_str_eq(catalog_topic_config(t, "retention.ms"), "200");
        catalog_topic_put(t);

        /* AlterConfigs: the set becomes exactly what is given. */
        static const struct catalog_config all[] = { { "cleanup.policy", "compact" }, { "x", NULL } };
        cr_assert_eq(catalog_alter_configs(cat, KSTR("cfg"), all, 2, true, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        t = catalog_get_topic(cat, KSTR("cfg"));
        cr_assert_eq(t->config_count, 1);
        cr_assert_str_eq(catalog_topic_config(t, "cleanup.policy"), "compact");
        catalog_topic_put(t);
        cr_assert_eq(catalog_alter_configs(cat, KSTR("cfg"), NULL, 0, true, false, &err), 0);
        t = catalog_get_topic(cat, KSTR("cfg"));
        cr_assert_eq(t->config_count, 0);
        cr_assert_null(catalog_topic_config(t, "cleanup.policy"));
        catalog_topic_put(t);

        /* Refusals and validate-only. */
        cr_assert_eq(catalog_alter_configs(cat, KSTR("none"), all, 1, false, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION);
        static const struct catalog_config dry[] = { { "retention.ms", "1" } };
        uint64_t v = catalog_version(cat);
        cr_assert_eq(catalog_alter_configs(cat, KSTR("cfg"), dry, 1, false, true, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        cr_assert_eq(catalog_version(cat), v);
        static struct catalog_config many[CATALOG_CONFIGS_MAX + 1];
        static char keys[CATALOG_CONFIGS_MAX + 1][16];
        for (int i = 0; i <= CATALOG_CONFIGS_MAX; i++) {
                snprintf(keys[i], sizeof(keys[i]), "k%d", i);
                many[i] = (struct catalog_config){ keys[i], "v" };
        }
        cr_assert_eq(catalog_alter_configs(cat, KSTR("cfg"), many, CATALOG_CONFIGS_MAX + 1, false, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_INVALID_CONFIG);
        cr_assert_eq(catalog_alter_configs(cat, KSTR("cfg"), many, CATALOG_CONFIGS_MAX, false, false, &err), 0);
        cr_assert_eq(err.code, CATALOG_ERR_NONE);
        test_reopen();
        t = catalog_get_topic(cat, KSTR("cfg"));
        cr_assert_eq(t->config_count, CATALOG_CONFIGS_MAX);
        catalog_topic_put(t);
}

/* ---- snapshot and listing ---- */

Test(catalog, snapshot_and_list_in_name_order)
{
        struct arena arena;
        struct catalog_snapshot snap;

        test_create_ok("b", 2);
        test_create_ok("a", 1);
        test_create_ok("__consumer_offsets", 3);
        test_create_ok("c", 4);

        arena_init(&arena, 1 << 20);
        cr_assert_eq(catalog_snapshot(cat, &arena, &snap), 0);
        cr_assert_eq(snap.topic_count, 4);
        cr_assert_eq(snap.version, catalog_version(cat));
        static const char *order[] = { "__consumer_offsets", "a", "b", "c" };
        static const int32_t counts[] = { 3, 1, 2, 4 };
        for (int i = 0; i < 4; i++) {
                cr_assert(kstr_eq_cstr(snap.topics[i].name, order[i]), "%d", i);
                cr_assert_eq(snap.topics[i].name.ptr[snap.topics[i].name.len], '\0');
                cr_assert_eq(snap.topics[i].partition_count, counts[i]);
                cr_assert_eq(snap.topics[i].is_internal, i == 0);
                const struct catalog_topic *t = catalog_get_topic(cat, snap.topics[i].name);
                cr_assert(kuuid_eq(t->id, snap.topics[i].id));
                catalog_topic_put(t);
        }
        /* An arena too small fails cleanly. */
        struct arena tiny;
        arena_init(&tiny, 16);
        cr_assert_eq(catalog_snapshot(cat, &tiny, &snap), -ENOMEM);
        cr_assert_eq(snap.topic_count, 0);
        arena_free(&tiny);
        arena_free(&arena);

        const struct catalog_topic **list;
        uint32_t n;
        cr_assert_eq(catalog_list_topics(cat, &list, &n), 0);
        cr_assert_eq(n, 4);
        for (uint32_t i = 0; i < n; i++)
                cr_assert_str_eq(list[i]->name, order[i]);
        catalog_topics_put(list, n);
}

/* ---- several log dirs ---- */

TestSuite(catalog3, .init = setup3, .fini = teardown);

static uint32_t test_dir_of(const char *topic, int32_t p)
{
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR(topic));
        cr_assert_not_null(t);
        uint32_t d = t->partitions[p]->logdir_index;
        catalog_topic_put(t);
        char name[300];
        snprintf(name, sizeof(name), "%s-%d", topic, (int)p);
        for (uint32_t i = 0; i < dir_count; i++)
                cr_assert_eq(test_exists(test_path(i, name)), i == d, "%s in dir %u", name, (unsigned)i);
        return d;
}

Test(catalog3, partitions_spread_to_the_emptiest_dir)
{
        test_create_ok("four", 4);
        cr_assert_eq(test_dir_of("four", 0), 0);
        cr_assert_eq(test_dir_of("four", 1), 1);
        cr_assert_eq(test_dir_of("four", 2), 2);
        cr_assert_eq(test_dir_of("four", 3), 0);
        test_create_ok("two", 2);       /* counts now 2,1,1 */
        cr_assert_eq(test_dir_of("two", 0), 1);
        cr_assert_eq(test_dir_of("two", 1), 2);
        struct catalog_err err;
        cr_assert_eq(catalog_add_partitions(cat, KSTR("two"), 3, false, &err), 0);
        cr_assert_eq(test_dir_of("two", 2), 0, "counts 2,2,2: the first");

        /* Deleting frees room where it was. */
        cr_assert_eq(catalog_delete_topic(cat, KSTR("four"), &err), 0);
        test_create_ok("one", 1);       /* counts 1,1,1 */
        cr_assert_eq(test_dir_of("one", 0), 0);
        test_create_ok("next", 1);      /* counts 2,1,1 */
        cr_assert_eq(test_dir_of("next", 0), 1);

        /* The catalog file is in the first dir only; assignments come from disk. */
        cr_assert(test_exists(test_path(0, CATALOG_FILE)));
        cr_assert_not(test_exists(test_path(1, CATALOG_FILE)));
        test_reopen();
        cr_assert_eq(test_dir_of("two", 0), 1);
        cr_assert_eq(test_dir_of("two", 2), 0);
        cr_assert_eq(test_dir_of("next", 0), 1);
        test_create_ok("after", 1);     /* counts 2,2,1 */
        cr_assert_eq(test_dir_of("after", 0), 2);
        cr_assert_eq(line_count, 0, "%s", line_count ? lines[0] : "");
}

Test(catalog3, a_partition_in_two_dirs_is_refused)
{
        test_create_ok("dup", 1);
        cr_assert_eq(test_dir_of("dup", 0), 0);
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("dup"));
        char id[UUID_BASE64_BYTES];
        strcpy(id, t->id_str);
        catalog_topic_put(t);
        test_close();

        cr_assert_eq(mkdir(test_path(2, "dup-0"), 0755), 0);
        char text[100];
        snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", id);
        test_util_spit(test_path(2, "dup-0/partition.metadata"), text);
        cr_assert_eq(test_open_fails(), -EEXIST);
        cr_assert(strstr(err_line, dir_paths[0]) && strstr(err_line, dir_paths[2]), "%s", err_line);
        cr_assert(strstr(err_line, "dup-0"), "%s", err_line);
}

Test(catalog3, reordered_log_dirs_move_the_file)
{
        test_create_ok("t", 3);
        test_close();
        char tmp[128];
        strcpy(tmp, dir_paths[0]);
        strcpy(dir_paths[0], dir_paths[1]);
        strcpy(dir_paths[1], tmp);

        test_open();
        cr_assert(test_logged("moving it", NULL));
        cr_assert(test_exists(test_path(0, CATALOG_FILE)));
        cr_assert_not(test_exists(test_path(1, CATALOG_FILE)));
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("t"));
        cr_assert_not_null(t);
        cr_assert_eq(t->partition_count, 3);
        catalog_topic_put(t);
        test_forget_lines();
        test_reopen();
        cr_assert_eq(line_count, 0);

        /* A crash between writing the moved file and unlinking the old one
         * leaves two identical copies: the extra one goes. A different
         * second copy is refused. */
        test_close();
        char copy[1 << 12];
        strcpy(copy, test_util_slurp(test_path(0, CATALOG_FILE)));
        test_util_spit(test_path(2, CATALOG_FILE), copy);
        test_open();
        cr_assert(test_logged("interrupted move", NULL));
        cr_assert_not(test_exists(test_path(2, CATALOG_FILE)));
        test_close();
        test_util_spit(test_path(1, CATALOG_FILE), "version 1\nend 0 0 0\n");
        test_open_fails();
        cr_assert(strstr(err_line, "two log dirs"), "%s", err_line);
}

/* ---- repairs at open ---- */

static void test_topic_id(const char *name, char out[UUID_BASE64_BYTES])
{
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR(name));
        cr_assert_not_null(t);
        strcpy(out, t->id_str);
        catalog_topic_put(t);
}

Test(catalog, open_recreates_missing_partition_dirs)
{
        char id[UUID_BASE64_BYTES];

        test_create_ok("t", 3);
        test_topic_id("t", id);
        test_close();
        cr_assert_eq(unlink(test_path(0, "t-1/partition.metadata")), 0);
        cr_assert_eq(rmdir(test_path(0, "t-1")), 0);
        cr_assert_eq(unlink(test_path(0, "t-2/partition.metadata")), 0);

        test_open();
        cr_assert(test_logged("topic t: recreated 1 missing", NULL), "%s", line_count ? lines[0] : "-");
        cr_assert(test_logged("t-2 had no valid partition.metadata", id));
        test_expect_metadata(0, "t-1", id);
        test_expect_metadata(0, "t-2", id);
        test_forget_lines();
        test_reopen();
        cr_assert_eq(line_count, 0);
}

Test(catalog, open_finishes_interrupted_deletes)
{
        char id[UUID_BASE64_BYTES];

        /* A -delete dir left by a crash between rename and removal. */
        cr_assert_eq(mkdir(test_path(0, "old-0.0123456789abcdef0123456789abcdef-delete"), 0755), 0);
        test_util_spit(test_path(0, "old-0.0123456789abcdef0123456789abcdef-delete/00000000000000000000.log"), "x");

        /* A crash right after the delete committed: the dirs are still there. */
        test_create_ok("t", 2);
        test_create_ok("u", 1);
        test_topic_id("t", id);
        test_close();
        char file[1024], u_line[128];
        const char *now = test_util_slurp(test_path(0, CATALOG_FILE));
        const char *u = strstr(now, "topic u ");
        cr_assert_not_null(u);
        snprintf(u_line, sizeof(u_line), "%.*s", (int)(strchr(u, '\n') - u + 1), u);
        snprintf(file, sizeof(file), "version 1\n%sdeleted %s t\nend 1 0 1\n", u_line, id);
        test_util_spit(test_path(0, CATALOG_FILE), file);

        test_open();
        cr_assert_not(test_exists(test_path(0, "old-0.0123456789abcdef0123456789abcdef-delete")));
        cr_assert(test_logged("interrupted topic deletion", NULL));
        cr_assert_not(test_exists(test_path(0, "t-0")));
        cr_assert_not(test_exists(test_path(0, "t-1")));
        cr_assert_eq(test_count_suffix(0, "-delete"), 0);
        cr_assert(test_logged("t-0: its topic was deleted", NULL));
        cr_assert_null(catalog_get_topic(cat, KSTR("t")));
        cr_assert_null(strstr(test_util_slurp(test_path(0, CATALOG_FILE)), "deleted"), "tombstone dropped");
        cr_assert(test_exists(test_path(0, "u-0")));
}

Test(catalog, strays_are_reported_and_kept)
{
        char other[UUID_BASE64_BYTES] = "tfIO-Ab4PdddYjiU3pEWqw";
        char text[100];

        test_create_ok("mine", 1);
        test_close();
        /* A topic the catalog never heard of, e.g. from a Kafka broker. */
        cr_assert_eq(mkdir(test_path(0, "foreign-0"), 0755), 0);
        snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", other);
        test_util_spit(test_path(0, "foreign-0/partition.metadata"), text);
        test_util_spit(test_path(0, "foreign-0/00000000000000000000.log"), "data");
        /* Leftover of an older topic of a catalog topic's name. */
        test_util_spit(test_path(0, "mine-0/partition.metadata"), text);
        /* Not partitions at all: ignored. */
        cr_assert_eq(mkdir(test_path(0, "not a partition"), 0755), 0);
        test_util_spit(test_path(0, "recovery-point-offset-checkpoint"), "0\n0\n");

        test_open();
        cr_assert(test_logged("foreign-0", "left in place"));
        cr_assert(test_exists(test_path(0, "foreign-0/00000000000000000000.log")), "never deleted");
        cr_assert_null(catalog_get_topic(cat, KSTR("foreign")), "not adopted");
        cr_assert(test_logged("mine-0 has topic id tfIO-Ab4PdddYjiU3pEWqw", "-stray"));
        cr_assert_eq(test_count_suffix(0, "-stray"), 1);
        char mine[UUID_BASE64_BYTES];
        test_topic_id("mine", mine);
        test_expect_metadata(0, "mine-0", mine);
        cr_assert(test_exists(test_path(0, "not a partition")));

        /* Creating the stray's name sets the stray aside first. */
        test_forget_lines();
        test_create_ok("foreign", 1);
        cr_assert_eq(test_count_suffix(0, "-stray"), 2);
        char fresh[UUID_BASE64_BYTES];
        test_topic_id("foreign", fresh);
        cr_assert_str_neq(fresh, other);
        test_expect_metadata(0, "foreign-0", fresh);
        cr_assert_not(test_exists(test_path(0, "foreign-0/00000000000000000000.log")));
        cr_assert(test_logged("foreign-0 has topic id", "data is kept"));
}

Test(catalog, damaged_catalog_file_is_refused)
{
        static const struct {
                const char *text;
                const char *says;
        } cases[] = {
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 0\n", "no end line" },
                { "version 1\nend 0 0 0", "not terminated" },
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 0\nend 2 0 0\n", "counts disagree" },
                { "version 2\nend 0 0 0\n", "unsupported version" },
                { "topic t AAECAwQFBgcICQoLDA0ODw 1 0\nend 1 0 0\n", "line 1" },
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 0 0\nend 1 0 0\n", "line 2" },
                { "version 1\ntopic t! AAECAwQFBgcICQoLDA0ODw 1 0\nend 1 0 0\n", "line 2" },
                { "version 1\ntopic t AAAAAAAAAAAAAAAAAAAAAA 1 0\nend 1 0 0\n", "line 2" },
                { "version 1\nconfig t a b\nend 0 1 0\n", "line 2" },
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 0\nconfig t a %zz\nend 1 1 0\n", "line 3" },
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 0\nconfig t a 1\nconfig t a 2\nend 1 2 0\n",
                  "twice" },
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 0\ntopic t AAECAwQFBgcICQoLDA0OEA 1 0\nend 2 0 0\n",
                  "appears twice" },
                { "version 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 0\ntopic u AAECAwQFBgcICQoLDA0ODw 1 0\nend 2 0 0\n",
                  "same id" },
                { "version 1\nbogus\nend 0 0 0\n", "unknown line" },
                { "version 1\nend 0 0 0\nversion 1\n", "after the end" },
        };

        test_close();
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                test_util_spit(test_path(0, CATALOG_FILE), cases[i].text);
                test_open_fails();
                cr_assert(strstr(err_line, cases[i].says), "case %zu: %s", i, err_line);
                cr_assert(strstr(err_line, CATALOG_FILE), "case %zu: %s", i, err_line);
                cr_assert_null(strchr(err_line, '\n'));
        }
        /* A file written by hand the way the broker writes it loads. */
        test_util_spit(test_path(0, CATALOG_FILE),
                  "# comment\nversion 1\ntopic t AAECAwQFBgcICQoLDA0ODw 1 1\nconfig t k %41\nend 1 1 0\n");
        test_open();
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("t"));
        cr_assert_not_null(t);
        cr_assert_not(t->is_internal, "decided by the name");
        cr_assert(test_logged("marked internal=1", NULL));
        cr_assert_str_eq(catalog_topic_config(t, "k"), "A");
        test_expect_metadata(0, "t-0", "AAECAwQFBgcICQoLDA0ODw");
        catalog_topic_put(t);
}

/* ---- I/O failures leave nothing behind ---- */

Test(catalog, failed_catalog_write_changes_nothing)
{
        struct catalog_err err;

        test_create_ok("before", 1);
        cr_assert_eq(mkdir(test_path(0, CATALOG_FILE ".tmp"), 0755), 0);
        uint64_t v = catalog_version(cat);
        cr_assert_lt(test_create("t", 2, NULL, 0, &err), 0);
        cr_assert_null(catalog_get_topic(cat, KSTR("t")));
        cr_assert_not(test_exists(test_path(0, "t-0")));
        cr_assert_lt(catalog_delete_topic(cat, KSTR("before"), &err), 0);
        const struct catalog_topic *b = catalog_get_topic(cat, KSTR("before"));
        cr_assert_not_null(b, "delete failed before its commit: still there");
        catalog_topic_put(b);
        cr_assert(test_exists(test_path(0, "before-0")));
        cr_assert_lt(catalog_add_partitions(cat, KSTR("before"), 2, false, &err), 0);
        cr_assert_not(test_exists(test_path(0, "before-1")));
        static const struct catalog_config c = { "a", "b" };
        cr_assert_lt(catalog_alter_configs(cat, KSTR("before"), &c, 1, false, false, &err), 0);
        cr_assert_eq(catalog_version(cat), v);
        cr_assert(test_logged("cannot write", NULL));

        cr_assert_eq(rmdir(test_path(0, CATALOG_FILE ".tmp")), 0);
        test_create_ok("t", 2);
        test_reopen();
        cr_assert_eq(catalog_topic_count(cat), 2);
}

Test(catalog, failed_partition_dir_rolls_back)
{
        struct catalog_err err;
        struct rlimit old, one_fd;

        test_create_ok("before", 1);
        /* Leave exactly one free descriptor: enough to write the catalog
         * file, not enough to write partition.metadata (dir + temp file). */
        int lowest = open("/dev/null", O_RDONLY);
        cr_assert_geq(lowest, 0);
        close(lowest);
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
        one_fd = old;
        one_fd.rlim_cur = (rlim_t)lowest + 1;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &one_fd), 0);
        int rc = test_create("t", 2, NULL, 0, &err);
        int rc_add = catalog_add_partitions(cat, KSTR("before"), 3, false, &err);
        setrlimit(RLIMIT_NOFILE, &old);

        cr_assert_eq(rc, -EMFILE);
        cr_assert_eq(rc_add, -EMFILE);
        cr_assert_null(catalog_get_topic(cat, KSTR("t")));
        cr_assert_not(test_exists(test_path(0, "t-0")));
        const struct catalog_topic *b = catalog_get_topic(cat, KSTR("before"));
        cr_assert_eq(b->partition_count, 1);
        catalog_topic_put(b);
        cr_assert_not(test_exists(test_path(0, "before-1")));
        const char *file = test_util_slurp(test_path(0, CATALOG_FILE));
        cr_assert_null(strstr(file, "topic t "), "rolled back: %s", file);
        cr_assert(strstr(file, "topic before ") && strstr(file, " 1 0\n"), "%s", file);

        test_reopen();
        cr_assert_null(catalog_get_topic(cat, KSTR("t")));
        test_create_ok("t", 2);
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR("t"));
        test_expect_metadata(0, "t-1", t->id_str);
        catalog_topic_put(t);
}

/* ---- lookups racing admin operations ---- */

#define RACE_READERS 4
#define RACE_ROUNDS 150
#define RACE_NAMES 6
#define RACE_READS_MAX 2000000

static const char *race_names[RACE_NAMES] = { "r0", "r1", "r.2", "r3", "r4", "r5" };
static atomic_bool race_stop;
static atomic_long race_reads;

static void race_check(const struct catalog_topic *t)
{
        cr_assert_gt(t->partition_count, 0);
        cr_assert_eq(strlen(t->name), t->name_len);
        for (int32_t p = 0; p < t->partition_count; p++) {
                const struct catalog_partition *part = t->partitions[p];
                cr_assert_eq(part->index, p);
                cr_assert_lt(part->logdir_index, dir_count);
                int *log = catalog_partition_log(part);
                if (log)
                        cr_assert_eq(*log, p);
        }
        const char *gen = catalog_topic_config(t, "gen");
        if (gen)
                cr_assert_geq(atoi(gen), 0);
        for (uint32_t i = 1; i < t->config_count; i++)
                cr_assert_lt(strcmp(t->configs[i - 1].key, t->configs[i].key), 0);
}

static void *race_reader(void *arg)
{
        unsigned seed = (unsigned)(uintptr_t)arg;
        struct arena arena;
        long n = 0;

        arena_init(&arena, 1 << 20);
        while (!atomic_load(&race_stop) && n < RACE_READS_MAX) {
                const char *name = race_names[rand_r(&seed) % RACE_NAMES];
                const struct catalog_topic *t = catalog_get_topic(cat, KSTR(name));
                if (t) {
                        cr_assert_str_eq(t->name, name);
                        race_check(t);
                        const struct catalog_topic *again = catalog_get_topic_by_id(cat, t->id);
                        if (again) {
                                cr_assert(kuuid_eq(again->id, t->id));
                                cr_assert_str_eq(again->name, name);
                                catalog_topic_put(again);
                        }
                        catalog_topic_put(t);
                }
                if (n % 64 == 0) {
                        struct catalog_snapshot snap;
                        cr_assert_eq(catalog_snapshot(cat, &arena, &snap), 0);
                        for (uint32_t i = 1; i < snap.topic_count; i++)
                                cr_assert_lt(strcmp(snap.topics[i - 1].name.ptr, snap.topics[i].name.ptr), 0);
                        arena_reset(&arena);
                }
                if (n % 256 == 0) {
                        const struct catalog_topic **list;
                        uint32_t count;
                        cr_assert_eq(catalog_list_topics(cat, &list, &count), 0);
                        for (uint32_t i = 0; i < count; i++)
                                race_check(list[i]);
                        catalog_topics_put(list, count);
                }
                n++;
        }
        arena_free(&arena);
        atomic_fetch_add(&race_reads, n);
        return NULL;
}

static void race_set_logs(const char *name)
{
        const struct catalog_topic *t = catalog_get_topic(cat, KSTR(name));
        cr_assert_not_null(t);
        for (int32_t p = 0; p < t->partition_count; p++) {
                if (catalog_partition_log(t->partitions[p]))
                        continue;
                int *log = malloc(sizeof(*log));
                *log = p;
                cr_assert_null(catalog_partition_set_log(t->partitions[p], log));
        }
        catalog_topic_put(t);
}

TestSuite(catalog_race, .fini = teardown);

Test(catalog_race, lookups_during_admin_operations, .timeout = 120)
{
        static const struct catalog_hooks freeing = {
                .log_line = test_log_line,
                .release_log = test_free_log,
        };
        pthread_t readers[RACE_READERS];
        struct catalog_err err;
        int created = 0;

        test_setup_dirs(2);
        test_open_with(&freeing);
        atomic_store(&race_stop, false);
        for (int i = 0; i < RACE_READERS; i++)
                cr_assert_eq(pthread_create(&readers[i], NULL, race_reader, (void *)(uintptr_t)(i + 1)), 0);

        for (int round = 0; round < RACE_ROUNDS; round++) {
                const char *name = race_names[round % RACE_NAMES];
                const struct catalog_topic *t = catalog_get_topic(cat, KSTR(name));
                bool exists = t != NULL;
                int32_t parts = exists ? t->partition_count : 0;
                catalog_topic_put(t);
                if (!exists) {
                        char gen[16];
                        snprintf(gen, sizeof(gen), "%d", round);
                        struct catalog_config c = { "gen", gen };
                        cr_assert_eq(test_create(name, 1 + round % 3, &c, 1, &err), 0);
                        cr_assert_eq(err.code, CATALOG_ERR_NONE);
                        created++;
                } else if (round % 3 == 0) {
                        cr_assert_eq(catalog_add_partitions(cat, KSTR(name), parts + 1, false, &err), 0);
                        cr_assert_eq(err.code, CATALOG_ERR_NONE);
                } else if (round % 3 == 1) {
                        char gen[16];
                        snprintf(gen, sizeof(gen), "%d", round);
                        struct catalog_config c[] = { { "gen", gen }, { "retention.ms", "1" } };
                        cr_assert_eq(catalog_alter_configs(cat, KSTR(name), c, 2, false, false, &err), 0);
                        cr_assert_eq(err.code, CATALOG_ERR_NONE);
                } else {
                        cr_assert_eq(catalog_delete_topic(cat, KSTR(name), &err), 0);
                        cr_assert_eq(err.code, CATALOG_ERR_NONE);
                }
                const struct catalog_topic *now = catalog_get_topic(cat, KSTR(name));
                if (now) {
                        catalog_topic_put(now);
                        race_set_logs(name);
                }
        }
        atomic_store(&race_stop, true);
        for (int i = 0; i < RACE_READERS; i++)
                pthread_join(readers[i], NULL);
        cr_assert_gt(atomic_load(&race_reads), 0);
        cr_assert_gt(created, RACE_NAMES);

        /* Every partition log handed out was released exactly once: the
         * ones of deleted topics now, the rest at close; ASan sees leaks. */
        test_reopen();
        for (int i = 0; i < RACE_NAMES; i++) {
                const struct catalog_topic *t = catalog_get_topic(cat, KSTR(race_names[i]));
                if (t)
                        race_check(t);
                catalog_topic_put(t);
        }
}
