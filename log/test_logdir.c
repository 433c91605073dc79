/*
 * test_logdir.c - log directories and meta.properties, partition directory
 * names and partition.metadata, and the uuid text forms they use.
 *
 * Every test works in its own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/logdir.h"
#include "log/uuid.h"
#include "log/test_util.h"

static char tmp_root[64];
static char err_line[512];

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "logdir");
        err_line[0] = '\0';
}

static void test_teardown(void)
{
        test_util_tmpdir_remove(tmp_root);
}

/* tmp_root/rel, in a static rotating buffer. */
static const char *test_path(const char *rel)
{
        static char bufs[8][512];
        static int next;
        char *b = bufs[next++ % 8];
        snprintf(b, sizeof(bufs[0]), "%s/%s", tmp_root, rel);
        return b;
}


/* The value of key in a properties text, into out. */
static bool test_prop(const char *text, const char *key, char *out, size_t out_bytes)
{
        size_t klen = strlen(key);
        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                if (!strncmp(p, key, klen) && p[klen] == '=') {
                        const char *v = p + klen + 1;
                        size_t n = strcspn(v, "\n");
                        if (n + 1 > out_bytes)
                                return false;
                        memcpy(out, v, n);
                        out[n] = '\0';
                        return true;
                }
        }
        return false;
}

/* ---- uuid ---- */

Test(uuid, base64_known_values)
{
        struct kuuid u = { { 0 } };
        char s[UUID_BASE64_BYTES];

        uuid_to_base64(u, s);
        cr_assert_str_eq(s, "AAAAAAAAAAAAAAAAAAAAAA");
        memset(u.b, 0xff, 16);
        uuid_to_base64(u, s);
        cr_assert_str_eq(s, "_____________________w");
        u.b[0] = 0xfb;  /* top six bits 62 -> '-' */
        uuid_to_base64(u, s);
        cr_assert_eq(s[0], '-');

        /* 00010203-0405-0607-0809-0a0b0c0d0e0f, as Java's URL encoder spells it. */
        for (int i = 0; i < 16; i++)
                u.b[i] = (uint8_t)i;
        uuid_to_base64(u, s);
        cr_assert_str_eq(s, "AAECAwQFBgcICQoLDA0ODw");
        struct kuuid back;
        cr_assert(uuid_from_base64(s, strlen(s), &back));
        cr_assert(kuuid_eq(u, back));
        cr_assert(uuid_from_base64("AAECAwQFBgcICQoLDA0ODw==", 24, &back));
        cr_assert(kuuid_eq(u, back));

        char hex[UUID_HEX_BYTES];
        uuid_to_hex(u, hex);
        cr_assert_str_eq(hex, "000102030405060708090a0b0c0d0e0f");
}

Test(uuid, base64_refuses_bad_text)
{
        struct kuuid u;

        cr_assert_not(uuid_from_base64("", 0, &u));
        cr_assert_not(uuid_from_base64("AAECAwQFBgcICQoLDA0OD", 21, &u));
        cr_assert_not(uuid_from_base64("AAECAwQFBgcICQoLDA0ODwA", 23, &u));
        cr_assert_not(uuid_from_base64("AAECAwQFBgcICQoLDA0OD+", 22, &u), "'+' is standard, not url");
        cr_assert_not(uuid_from_base64("AAECAwQFBgcICQoLDA0ODx", 22, &u), "stray low bits");
        cr_assert_not(uuid_from_base64("AAECAwQFBgcICQoLDA0ODw=", 23, &u));
}

Test(uuid, random_ids_follow_kafkas_rules)
{
        for (int i = 0; i < 2000; i++) {
                struct kuuid u, back;
                char s[UUID_BASE64_BYTES];
                cr_assert_eq(uuid_random(&u), 0);
                cr_assert_not(uuid_is_reserved(u));
                cr_assert_eq(u.b[6] >> 4, 4, "version 4");
                cr_assert_eq(u.b[8] >> 6, 2, "variant 10");
                uuid_to_base64(u, s);
                cr_assert_neq(s[0], '-');
                cr_assert(uuid_from_base64(s, 22, &back));
                cr_assert(kuuid_eq(u, back));
        }
        struct kuuid one = { { 0 } };
        one.b[15] = 1;
        cr_assert(uuid_is_reserved(one));
        one.b[15] = 99;
        cr_assert(uuid_is_reserved(one));
        one.b[15] = 100;
        cr_assert_not(uuid_is_reserved(one));
}

/* ---- log dirs and meta.properties ---- */

TestSuite(logdirs, .init = test_setup, .fini = test_teardown);

Test(logdirs, first_start_formats_every_dir)
{
        struct logdirs ld;
        const char *paths[] = { test_path("a"), test_path("deep/er/b") };

        cr_assert_eq(logdirs_open(&ld, paths, 2, 7, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_eq(ld.count, 2);
        cr_assert_eq(strlen(logdirs_cluster_id(&ld)), 22);
        cr_assert(ld.dirs[0].was_formatted && ld.dirs[1].was_formatted);
        cr_assert_not(kuuid_eq(ld.dirs[0].directory_id, ld.dirs[1].directory_id));
        char cluster[32];
        strcpy(cluster, logdirs_cluster_id(&ld));
        char dir0[32], dir1[32];
        strcpy(dir0, ld.dirs[0].directory_id_str);
        strcpy(dir1, ld.dirs[1].directory_id_str);

        for (int i = 0; i < 2; i++) {
                char file[600], v[64];
                snprintf(file, sizeof(file), "%s/meta.properties", paths[i]);
                const char *text = test_util_slurp(file);
                cr_assert_not_null(text);
                /* Properties.store's header: an empty comment and a date. */
                cr_assert(!strncmp(text, "#\n#", 3), "%s", text);
                cr_assert(strstr(text, " UTC "), "%s", text);
                cr_assert(test_prop(text, "version", v, sizeof(v)));
                cr_assert_str_eq(v, "1");
                cr_assert(test_prop(text, "cluster.id", v, sizeof(v)));
                cr_assert_str_eq(v, cluster);
                cr_assert(test_prop(text, "node.id", v, sizeof(v)));
                cr_assert_str_eq(v, "7");
                cr_assert(test_prop(text, "directory.id", v, sizeof(v)));
                cr_assert_str_eq(v, i == 0 ? dir0 : dir1);
                snprintf(file, sizeof(file), "%s/meta.properties.tmp", paths[i]);
                cr_assert_neq(access(file, F_OK), 0, "no temp file left");
        }
        logdirs_close(&ld);

        /* Later starts read what the first wrote. */
        cr_assert_eq(logdirs_open(&ld, paths, 2, 7, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_str_eq(logdirs_cluster_id(&ld), cluster);
        cr_assert_str_eq(ld.dirs[0].directory_id_str, dir0);
        cr_assert_str_eq(ld.dirs[1].directory_id_str, dir1);
        cr_assert_not(ld.dirs[0].was_formatted || ld.dirs[1].was_formatted);
        logdirs_close(&ld);

        /* A dir added later joins the cluster. */
        const char *more[] = { paths[0], paths[1], test_path("c") };
        cr_assert_eq(logdirs_open(&ld, more, 3, 7, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_str_eq(logdirs_cluster_id(&ld), cluster);
        cr_assert(ld.dirs[2].was_formatted && !ld.dirs[0].was_formatted);
        logdirs_close(&ld);
}

Test(logdirs, refuses_a_dir_of_another_cluster)
{
        struct logdirs ld;
        const char *a[] = { test_path("a") };
        const char *b[] = { test_path("b") };
        const char *both[] = { test_path("a"), test_path("b") };
        char id_a[32], id_b[32];

        cr_assert_eq(logdirs_open(&ld, a, 1, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        strcpy(id_a, logdirs_cluster_id(&ld));
        logdirs_close(&ld);
        cr_assert_eq(logdirs_open(&ld, b, 1, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        strcpy(id_b, logdirs_cluster_id(&ld));
        logdirs_close(&ld);
        cr_assert_str_neq(id_a, id_b);

        cr_assert_eq(logdirs_open(&ld, both, 2, 1, err_line, sizeof(err_line)), -EINVAL);
        cr_assert(strstr(err_line, both[1]), "names the dir: %s", err_line);
        cr_assert(strstr(err_line, id_a) && strstr(err_line, id_b), "found and expected: %s", err_line);
        cr_assert(strstr(err_line, "delete the directory or point log.dirs elsewhere"), "%s", err_line);
        cr_assert_null(strchr(err_line, '\n'), "one line");

        /* Nothing is left locked: each opens alone again. */
        cr_assert_eq(logdirs_open(&ld, b, 1, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        logdirs_close(&ld);
}

Test(logdirs, refuses_a_dir_of_another_node)
{
        struct logdirs ld;
        const char *a[] = { test_path("a") };

        cr_assert_eq(logdirs_open(&ld, a, 1, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        logdirs_close(&ld);
        cr_assert_eq(logdirs_open(&ld, a, 1, 2, err_line, sizeof(err_line)), -EINVAL);
        cr_assert(strstr(err_line, a[0]), "%s", err_line);
        cr_assert(strstr(err_line, "node.id=1") && strstr(err_line, "node.id is 2"), "%s", err_line);
}

Test(logdirs, reads_what_kafka_writes)
{
        struct logdirs ld;
        const char *a[] = { test_path("kafka") };

        mkdir(a[0], 0755);
        /* As a Kafka 3.6 broker leaves it: any order, no directory.id. */
        test_util_spit(test_path("kafka/meta.properties"),
                  "#\n#Wed May 08 10:23:45 CST 2024\nnode.id=3\nversion=1\ncluster.id=tfIO-Ab4PdddYjiU3pEWqw\n");
        cr_assert_eq(logdirs_open(&ld, a, 1, 3, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_str_eq(logdirs_cluster_id(&ld), "tfIO-Ab4PdddYjiU3pEWqw");
        cr_assert_not(ld.dirs[0].was_formatted);
        char id[32];
        strcpy(id, ld.dirs[0].directory_id_str);
        logdirs_close(&ld);

        /* The directory.id Kafka would add was written and is kept. */
        char v[64];
        cr_assert(test_prop(test_util_slurp(test_path("kafka/meta.properties")), "directory.id", v, sizeof(v)));
        cr_assert_str_eq(v, id);
        cr_assert_eq(logdirs_open(&ld, a, 1, 3, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_str_eq(ld.dirs[0].directory_id_str, id);
        logdirs_close(&ld);

        /* Other spellings Properties allows. */
        test_util_spit(test_path("kafka/meta.properties"),
                  "! comment\n  version : 1\r\ncluster.id tfIO-Ab4PdddYjiU3pEWqw\nnode.id=3\n\ndirectory.id=" );
        FILE *f = fopen(test_path("kafka/meta.properties"), "a");
        fprintf(f, "%s\n", id);
        fclose(f);
        cr_assert_eq(logdirs_open(&ld, a, 1, 3, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_str_eq(ld.dirs[0].directory_id_str, id);
        logdirs_close(&ld);
}

Test(logdirs, refuses_bad_meta_properties)
{
        struct logdirs ld;
        const char *a[] = { test_path("x") };
        static const struct {
                const char *text;
                const char *says;
        } cases[] = {
                { "version=0\nbroker.id=1\ncluster.id=tfIO-Ab4PdddYjiU3pEWqw\n", "version=0" },
                { "version=1\nnode.id=1\n", "lacks cluster.id" },
                { "version=1\ncluster.id=tfIO-Ab4PdddYjiU3pEWqw\n", "lacks node.id" },
                { "cluster.id=tfIO-Ab4PdddYjiU3pEWqw\nnode.id=1\n", "lacks version" },
                { "version=1\nnode.id=1\ncluster.id=not-a-uuid\n", "cluster.id=not-a-uuid" },
                { "version=1\nnode.id=-1\ncluster.id=tfIO-Ab4PdddYjiU3pEWqw\n", "node.id=-1" },
                { "version=1\nnode.id=1\ncluster.id=tfIO-Ab4PdddYjiU3pEWqw\ndirectory.id=AAAAAAAAAAAAAAAAAAAAAA\n",
                  "directory.id" },
        };

        mkdir(a[0], 0755);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                test_util_spit(test_path("x/meta.properties"), cases[i].text);
                err_line[0] = '\0';
                cr_assert_lt(logdirs_open(&ld, a, 1, 1, err_line, sizeof(err_line)), 0, "case %zu", i);
                cr_assert(strstr(err_line, cases[i].says), "case %zu: %s", i, err_line);
                cr_assert(strstr(err_line, a[0]), "case %zu: %s", i, err_line);
        }
}

Test(logdirs, refuses_the_same_dir_twice_and_a_locked_dir)
{
        struct logdirs ld, other;
        const char *a[] = { test_path("a") };
        char alias[600];
        snprintf(alias, sizeof(alias), "%s/.", a[0]);
        const char *twice[] = { a[0], alias };

        cr_assert_eq(logdirs_open(&ld, twice, 2, 1, err_line, sizeof(err_line)), -EINVAL);
        cr_assert(strstr(err_line, "same directory"), "%s", err_line);

        cr_assert_eq(logdirs_open(&ld, a, 1, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        cr_assert_lt(logdirs_open(&other, a, 1, 1, err_line, sizeof(err_line)), 0);
        cr_assert(strstr(err_line, "in use"), "%s", err_line);
        logdirs_close(&ld);
        cr_assert_eq(logdirs_open(&other, a, 1, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        logdirs_close(&other);

        cr_assert_eq(logdirs_open(&ld, a, 0, 1, err_line, sizeof(err_line)), -EINVAL);
        cr_assert_eq(logdirs_open(&ld, a, 1, -1, err_line, sizeof(err_line)), -EINVAL);
}

Test(logdirs, refuses_copied_directory_ids)
{
        struct logdirs ld;
        const char *paths[] = { test_path("a"), test_path("b") };

        cr_assert_eq(logdirs_open(&ld, paths, 2, 1, err_line, sizeof(err_line)), 0, "%s", err_line);
        logdirs_close(&ld);
        char text[1024];
        strcpy(text, test_util_slurp(test_path("a/meta.properties")));
        test_util_spit(test_path("b/meta.properties"), text);
        cr_assert_eq(logdirs_open(&ld, paths, 2, 1, err_line, sizeof(err_line)), -EINVAL);
        cr_assert(strstr(err_line, "directory.id"), "%s", err_line);
}

/* ---- partition directories ---- */

Test(partition_dirs, names)
{
        char topic[300], buf[300];
        int32_t p;

        cr_assert(logdir_parse_partition_name("orders-0", topic, sizeof(topic), &p));
        cr_assert_str_eq(topic, "orders");
        cr_assert_eq(p, 0);
        cr_assert(logdir_parse_partition_name("my-topic-12", topic, sizeof(topic), &p));
        cr_assert_str_eq(topic, "my-topic");
        cr_assert_eq(p, 12);
        cr_assert(logdir_parse_partition_name("__consumer_offsets-49", topic, sizeof(topic), &p));
        cr_assert(logdir_parse_partition_name(".hidden-2147483647", topic, sizeof(topic), &p));
        cr_assert_eq(p, 2147483647);
        cr_assert(logdir_parse_partition_name("orders--1", topic, sizeof(topic), &p));
        cr_assert_str_eq(topic, "orders-", "a topic may end in '-'");

        static const char *not_partitions[] = {
                "orders", "orders-", "-0", "orders-01", "orders-x", "orders-2147483648",
                "or ders-0", "meta.properties", "..-0", ".-0", "t-0.0123456789abcdef0123456789abcdef-delete",
        };
        for (size_t i = 0; i < sizeof(not_partitions) / sizeof(not_partitions[0]); i++)
                cr_assert_not(logdir_parse_partition_name(not_partitions[i], topic, sizeof(topic), &p), "%s",
                              not_partitions[i]);

        cr_assert_eq(logdir_format_partition_name(buf, sizeof(buf), "orders", 3), 8);
        cr_assert_str_eq(buf, "orders-3");
        cr_assert_eq(logdir_format_partition_name(buf, 5, "orders", 3), -ENAMETOOLONG);
}

TestSuite(partition_files, .init = test_setup, .fini = test_teardown);

Test(partition_files, partition_metadata_byte_for_byte)
{
        int fd = open(tmp_root, O_RDONLY | O_DIRECTORY);
        struct kuuid id, back;

        for (int i = 0; i < 16; i++)
                id.b[i] = (uint8_t)(i + 1);
        cr_assert_eq(logdir_create_partition(fd, "orders-0", id, true), 0);
        cr_assert_str_eq(test_util_slurp(test_path("orders-0/partition.metadata")),
                         "version: 0\ntopic_id: AQIDBAUGBwgJCgsMDQ4PEA\n");
        cr_assert_eq(logdir_read_partition_metadata(fd, "orders-0", &back), 0);
        cr_assert(kuuid_eq(id, back));
        cr_assert_neq(access(test_path("orders-0/partition.metadata.tmp"), F_OK), 0);

        /* Read what Kafka writes, and refuse what it would not. */
        test_util_spit(test_path("orders-0/partition.metadata"), "version: 0\ntopic_id: tfIO-Ab4PdddYjiU3pEWqw\n");
        cr_assert_eq(logdir_read_partition_metadata(fd, "orders-0", &back), 0);
        test_util_spit(test_path("orders-0/partition.metadata"), "version: 1\ntopic_id: tfIO-Ab4PdddYjiU3pEWqw\n");
        cr_assert_eq(logdir_read_partition_metadata(fd, "orders-0", &back), -EINVAL);
        test_util_spit(test_path("orders-0/partition.metadata"), "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAA\n");
        cr_assert_eq(logdir_read_partition_metadata(fd, "orders-0", &back), -EINVAL);
        test_util_spit(test_path("orders-0/partition.metadata"), "version: 0\n");
        cr_assert_eq(logdir_read_partition_metadata(fd, "orders-0", &back), -EINVAL);
        unlink(test_path("orders-0/partition.metadata"));
        cr_assert_eq(logdir_read_partition_metadata(fd, "orders-0", &back), -ENOENT);
        cr_assert_eq(logdir_read_partition_metadata(fd, "nothing-0", &back), -ENOENT);
        close(fd);
}

Test(partition_files, rename_aside_and_remove)
{
        int fd = open(tmp_root, O_RDONLY | O_DIRECTORY);
        char aside[LOGDIR_NAME_BYTES_MAX + 1];

        cr_assert_eq(mkdir(test_path("orders-1"), 0755), 0);
        cr_assert_eq(mkdir(test_path("orders-1/sub"), 0755), 0);
        test_util_spit(test_path("orders-1/00000000000000000000.log"), "x");
        test_util_spit(test_path("orders-1/sub/f"), "y");
        cr_assert_eq(symlink("/etc", test_path("orders-1/link")), 0);
        cr_assert_eq(logdir_rename_aside(fd, "orders-1", LOGDIR_DELETE_SUFFIX, aside), 0);
        /* <topic>-<partition>.<32 hex>-delete */
        cr_assert_eq(strlen(aside), strlen("orders-1.") + 32 + strlen("-delete"), "%s", aside);
        cr_assert(!strncmp(aside, "orders-1.", 9) && logdir_has_suffix(aside, "-delete"), "%s", aside);
        for (int i = 9; i < 41; i++)
                cr_assert(strchr("0123456789abcdef", aside[i]), "%s", aside);
        cr_assert_neq(access(test_path("orders-1"), F_OK), 0);
        cr_assert_eq(logdir_remove_tree(fd, aside), 0);
        cr_assert_neq(access(test_path(aside), F_OK), 0);
        cr_assert_eq(access("/etc/passwd", F_OK), 0, "a symlink is removed, not followed");
        cr_assert_eq(logdir_remove_tree(fd, aside), 0, "already gone is fine");

        /* A name near the limit is shortened at the front part, as Kafka does. */
        char longname[256];
        memset(longname, 'a', 249);
        strcpy(longname + 249, "-99999");
        cr_assert_eq(mkdirat(fd, longname, 0755), 0);
        cr_assert_eq(logdir_rename_aside(fd, longname, LOGDIR_STRAY_SUFFIX, aside), 0);
        cr_assert_eq(strlen(aside), 255, "%zu", strlen(aside));
        cr_assert(logdir_has_suffix(aside, "-stray"));
        close(fd);
}

Test(partition_files, atomic_write_replaces)
{
        int fd = open(tmp_root, O_RDONLY | O_DIRECTORY);
        char *text;
        size_t size;

        cr_assert_eq(logdir_write_file_atomic(fd, "f", "one", 3), 0);
        cr_assert_eq(logdir_write_file_atomic(fd, "f", "second", 6), 0);
        cr_assert_eq(logdir_read_file(fd, "f", 100, &text, &size), 0);
        cr_assert_eq(size, 6);
        cr_assert_str_eq(text, "second");
        free(text);
        cr_assert_eq(logdir_read_file(fd, "f", 5, &text, &size), -EFBIG);
        cr_assert_eq(logdir_read_file(fd, "none", 5, &text, &size), -ENOENT);

        /* A failed write leaves the old content. */
        cr_assert_eq(mkdir(test_path("f.tmp"), 0755), 0);
        cr_assert_lt(logdir_write_file_atomic(fd, "f", "third", 5), 0);
        cr_assert_str_eq(test_util_slurp(test_path("f")), "second");
        close(fd);
}

/* A ref names one directory: renamed away or replaced by another of the
 * same name, it no longer opens. */
Test(partition_files, ref_follows_the_directory_not_the_name)
{
        int root = open(tmp_root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        struct logdir_ref ref;
        cr_assert_geq(root, 0);
        cr_assert_eq(mkdirat(root, "t-0", 0755), 0);
        cr_assert_eq(logdir_ref_init(&ref, root, "t-0"), 0);

        int fd = logdir_ref_openat(&ref, "a.log", O_RDWR | O_CREAT | O_EXCL, 0644);
        cr_assert_geq(fd, 0);
        close(fd);
        cr_assert_eq(logdir_ref_fsync(&ref), 0);
        cr_assert_eq(access(test_path("t-0/a.log"), F_OK), 0);

        cr_assert_eq(renameat(root, "t-0", root, "t-0.x-delete"), 0);
        cr_assert_eq(logdir_ref_open(&ref), -ENOENT, "renamed aside");
        cr_assert_eq(mkdirat(root, "t-0", 0755), 0);
        cr_assert_eq(logdir_ref_open(&ref), -ENOENT, "a new directory of the same name");
        cr_assert_eq(logdir_ref_openat(&ref, "b.log", O_RDWR | O_CREAT, 0644), -ENOENT);
        cr_assert_eq(logdir_ref_unlink(&ref, "a.log"), -ENOENT);
        cr_assert_eq(access(test_path("t-0/b.log"), F_OK), -1);
        cr_assert_eq(access(test_path("t-0.x-delete/a.log"), F_OK), 0, "the old file is untouched");

        struct logdir_ref *shared = NULL;
        cr_assert_eq(logdir_ref_new(root, "t-0", &shared), 0);
        logdir_ref_get(shared);
        logdir_ref_put(shared);
        fd = logdir_ref_open(shared);
        cr_assert_geq(fd, 0);
        close(fd);
        logdir_ref_put(shared);
        cr_assert_eq(logdir_ref_init(&ref, root, "missing"), -ENOENT);
        close(root);
}
