/*
 * logdir.c - log directories, meta.properties, partition directory names,
 * partition.metadata and the durable-change primitives; see logdir.h.
 *
 * meta.properties is a java.util.Properties file. Kafka writes it with
 * Properties.store(): a "#" line, a "#<date>" line, then key=value lines in
 * no particular order. The reader below understands the subset Kafka
 * produces (key=value, key: value, key value, '#'/'!' comments, blank
 * lines); values that need Properties escapes never occur in this file.
 *
 * Every change to the layout is made durable before it is relied on: a file
 * is replaced by rename after its data is fsynced, and the directory holding
 * a new name is fsynced before the name is counted on.
 */
#include "logdir.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOGDIR_META_BYTES_MAX 65536
#define LOGDIR_PARTITION_METADATA_BYTES_MAX 4096
#define LOGDIR_TREE_DEPTH_MAX 8
#define LOGDIR_TREE_PASSES_MAX 4
#define LOGDIR_MKDIR_DEPTH_MAX 64

/* Kafka's topic name limit (Topic.MAX_NAME_LENGTH); see catalog.c for the rest. */
#define LOGDIR_TOPIC_BYTES_MAX 249

static void logdir_fail(char *err, size_t err_bytes, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void logdir_fail(char *err, size_t err_bytes, const char *fmt, ...)
{
        if (!err || err_bytes == 0)
                return;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_bytes, fmt, ap);
        va_end(ap);
}

bool logdir_has_suffix(const char *name, const char *suffix)
{
        size_t n = strlen(name), s = strlen(suffix);
        return n >= s && memcmp(name + n - s, suffix, s) == 0;
}

/* ---- durable-change primitives ---- */

int logdir_fsync_dir(int dir_fd, const char *name)
{
        int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int rc = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        return rc;
}

/* ---- partition directories held by name (logdir_ref) ---- */

int logdir_ref_init(struct logdir_ref *ref, int parent_fd, const char *name)
{
        struct stat st;
        size_t len = strlen(name);

        assert(parent_fd >= 0 || parent_fd == AT_FDCWD);
        if (len == 0 || len > LOGDIR_NAME_BYTES_MAX)
                return -ENAMETOOLONG;
        if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode))
                return -ENOTDIR;
        memset(ref, 0, sizeof(*ref));
        ref->parent_fd = parent_fd;
        ref->dev = st.st_dev;
        ref->ino = st.st_ino;
        atomic_init(&ref->refs, 0);
        memcpy(ref->name, name, len + 1);
        return 0;
}

int logdir_ref_new(int parent_fd, const char *name, struct logdir_ref **out)
{
        struct logdir_ref *ref = malloc(sizeof(*ref));
        int rc;

        if (!ref)
                return -ENOMEM;
        rc = logdir_ref_init(ref, parent_fd, name);
        if (rc < 0) {
                free(ref);
                return rc;
        }
        atomic_init(&ref->refs, 1);
        *out = ref;
        return 0;
}

void logdir_ref_get(struct logdir_ref *ref)
{
        unsigned prev = atomic_fetch_add(&ref->refs, 1);

        assert(prev > 0);
        (void)prev;
}

void logdir_ref_put(struct logdir_ref *ref)
{
        if (!ref)
                return;
        unsigned prev = atomic_fetch_sub(&ref->refs, 1);

        assert(prev > 0);
        if (prev == 1)
                free(ref);
}

int logdir_ref_open(const struct logdir_ref *ref)
{
        struct stat st;
        int fd;

        do {
                fd = openat(ref->parent_fd, ref->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                int rc = -errno;
                close(fd);
                return rc;
        }
        if (st.st_dev != ref->dev || st.st_ino != ref->ino) {
                close(fd);
                return -ENOENT;         /* renamed aside, or a new directory of the same name */
        }
        return fd;
}

int logdir_ref_openat(const struct logdir_ref *ref, const char *name, int flags, mode_t mode)
{
        int dir_fd = logdir_ref_open(ref);
        int fd;

        if (dir_fd < 0)
                return dir_fd;
        do {
                fd = openat(dir_fd, name, flags | O_CLOEXEC, mode);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0)
                fd = -errno;
        close(dir_fd);
        return fd;
}

int logdir_ref_unlink(const struct logdir_ref *ref, const char *name)
{
        int dir_fd = logdir_ref_open(ref);
        int rc = 0;

        if (dir_fd < 0)
                return dir_fd;
        if (unlinkat(dir_fd, name, 0) < 0)
                rc = -errno;
        close(dir_fd);
        return rc;
}

int logdir_ref_fsync(const struct logdir_ref *ref)
{
        int dir_fd = logdir_ref_open(ref);
        int rc = 0;

        if (dir_fd < 0)
                return dir_fd;
        if (fsync(dir_fd) < 0)
                rc = -errno;
        close(dir_fd);
        return rc;
}

static int logdir_write_all(int fd, const void *data, size_t size_bytes)
{
        const char *p = data;
        size_t done = 0;

        while (done < size_bytes) {
                ssize_t n = write(fd, p + done, size_bytes - done);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                assert(n > 0);
                done += (size_t)n;
        }
        return 0;
}

/* Writes name.tmp and renames it over name; with is_synced the file
 * and then the directory are fsynced, else the caller syncs later. */
static int logdir_write_file_renamed(int dir_fd, const char *name, const void *data, size_t size_bytes,
                                     bool is_synced)
{
        char tmp[LOGDIR_NAME_BYTES_MAX + 1];
        int fd, rc;

        assert(name && !strchr(name, '/'));
        assert(data || size_bytes == 0);
        if (snprintf(tmp, sizeof(tmp), "%s.tmp", name) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;

        fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        rc = logdir_write_all(fd, data, size_bytes);
        if (rc < 0)
                goto out_unlink;
        if (is_synced && fsync(fd) < 0) {
                rc = -errno;
                goto out_unlink;
        }
        if (close(fd) < 0) {
                fd = -1;
                rc = -errno;
                goto out_unlink;
        }
        fd = -1;
        if (renameat(dir_fd, tmp, dir_fd, name) < 0) {
                rc = -errno;
                goto out_unlink;
        }
        if (!is_synced)
                return 0;
        return fsync(dir_fd) < 0 ? -errno : 0;

out_unlink:
        if (fd >= 0)
                close(fd);
        unlinkat(dir_fd, tmp, 0);
        return rc;
}

int logdir_write_file_atomic(int dir_fd, const char *name, const void *data, size_t size_bytes)
{
        return logdir_write_file_renamed(dir_fd, name, data, size_bytes, true);
}

int logdir_sync_filesystem(int dir_fd)
{
        return syncfs(dir_fd) < 0 ? -errno : 0;
}

int logdir_read_file(int dir_fd, const char *name, size_t size_bytes_max,
                     char **out, size_t *out_size_bytes)
{
        struct stat st;
        char *buf = NULL;
        size_t done = 0;
        int fd, rc;

        assert(out && out_size_bytes);
        fd = openat(dir_fd, name, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                rc = -errno;
                goto out_close;
        }
        if (!S_ISREG(st.st_mode)) {
                rc = -EINVAL;
                goto out_close;
        }
        if ((uint64_t)st.st_size > size_bytes_max) {
                rc = -EFBIG;
                goto out_close;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                rc = -ENOMEM;
                goto out_close;
        }
        while (done < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + done, (size_t)st.st_size - done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        rc = -errno;
                        goto out_free;
                }
                if (n == 0)
                        break;  /* shrank under us: take what is there */
                done += (size_t)n;
        }
        buf[done] = '\0';
        close(fd);
        *out = buf;
        *out_size_bytes = done;
        return 0;

out_free:
        free(buf);
out_close:
        close(fd);
        return rc;
}

static int logdir_remove_tree_at(int dir_fd, const char *name, int depth)
{
        int rc = 0;

        if (depth > LOGDIR_TREE_DEPTH_MAX)
                return -ELOOP;
        for (int pass = 0; pass < LOGDIR_TREE_PASSES_MAX; pass++) {
                int fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        if (errno == ENOENT)
                                return 0;
                        if (errno == ENOTDIR || errno == ELOOP)
                                return unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
                        return -errno;
                }
                DIR *d = fdopendir(fd);
                if (!d) {
                        rc = -errno;
                        close(fd);
                        return rc;
                }
                struct dirent *e;
                while ((e = readdir(d)) != NULL) {
                        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                                continue;
                        bool is_dir = e->d_type == DT_DIR;
                        if (e->d_type == DT_UNKNOWN) {
                                struct stat st;
                                if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                                        is_dir = S_ISDIR(st.st_mode);
                        }
                        int r = is_dir ? logdir_remove_tree_at(fd, e->d_name, depth + 1)
                                       : (unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT ? -errno : 0);
                        if (r < 0 && rc == 0)
                                rc = r;
                }
                closedir(d);
                if (rc < 0)
                        return rc;
                if (unlinkat(dir_fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
                        return 0;
                if (errno != ENOTEMPTY && errno != EEXIST)
                        return -errno;
                /* Something appeared while we were emptying it: go again. */
        }
        return -ENOTEMPTY;
}

int logdir_remove_tree(int dir_fd, const char *name)
{
        assert(name && *name && strcmp(name, ".") && strcmp(name, ".."));
        return logdir_remove_tree_at(dir_fd, name, 0);
}

/* ---- partition directories ---- */

int logdir_format_partition_name(char *buf, size_t buf_bytes, const char *topic, int32_t partition)
{
        assert(partition >= 0);
        int n = snprintf(buf, buf_bytes, "%s-%d", topic, (int)partition);
        if (n < 0 || (size_t)n >= buf_bytes || n > LOGDIR_NAME_BYTES_MAX)
                return -ENAMETOOLONG;
        return n;
}

static bool logdir_is_topic_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
}

bool logdir_parse_partition_name(const char *name, char *topic_out, size_t topic_bytes,
                                 int32_t *partition_out)
{
        const char *dash = strrchr(name, '-');
        if (!dash || dash == name)
                return false;
        const char *digits = dash + 1;
        size_t ndigits = strlen(digits);
        if (ndigits == 0 || ndigits > 10 || (digits[0] == '0' && ndigits > 1))
                return false;
        int64_t v = 0;
        for (size_t i = 0; i < ndigits; i++) {
                if (digits[i] < '0' || digits[i] > '9')
                        return false;
                v = v * 10 + (digits[i] - '0');
        }
        if (v > INT32_MAX)
                return false;

        size_t tlen = (size_t)(dash - name);
        if (tlen > LOGDIR_TOPIC_BYTES_MAX || tlen + 1 > topic_bytes)
                return false;
        if ((tlen == 1 && name[0] == '.') || (tlen == 2 && name[0] == '.' && name[1] == '.'))
                return false;
        for (size_t i = 0; i < tlen; i++)
                if (!logdir_is_topic_char(name[i]))
                        return false;
        memcpy(topic_out, name, tlen);
        topic_out[tlen] = '\0';
        *partition_out = (int32_t)v;
        return true;
}

static int logdir_write_partition_metadata_file(int dir_fd, const char *partdir, struct kuuid topic_id,
                                                bool is_synced)
{
        char id[UUID_BASE64_BYTES];
        char text[64];

        assert(!kuuid_is_zero(topic_id));
        uuid_to_base64(topic_id, id);
        int n = snprintf(text, sizeof(text), "version: 0\ntopic_id: %s\n", id);
        assert(n > 0 && (size_t)n < sizeof(text));

        int fd = openat(dir_fd, partdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int rc = logdir_write_file_renamed(fd, LOGDIR_PARTITION_METADATA_FILE, text, (size_t)n, is_synced);
        close(fd);
        return rc;
}

int logdir_write_partition_metadata(int dir_fd, const char *partdir, struct kuuid topic_id)
{
        return logdir_write_partition_metadata_file(dir_fd, partdir, topic_id, true);
}

int logdir_create_partition(int dir_fd, const char *partdir, struct kuuid topic_id, bool is_synced)
{
        if (mkdirat(dir_fd, partdir, 0755) < 0 && errno != EEXIST)
                return -errno;
        /* Synced, writing partition.metadata fsyncs it and the partition
         * dir; the caller fsyncs dir_fd once for the whole batch of new
         * names. Unsynced, the caller syncs the filesystem once for all. */
        return logdir_write_partition_metadata_file(dir_fd, partdir, topic_id, is_synced);
}

/* Reads one "key: value" line of partition.metadata into value (NUL-ended). */
static bool logdir_take_field(const char **p, const char *key, char *value, size_t value_bytes)
{
        size_t klen = strlen(key);
        if (strncmp(*p, key, klen) != 0 || (*p)[klen] != ':')
                return false;
        const char *v = *p + klen + 1;
        while (*v == ' ')
                v++;
        const char *eol = strchr(v, '\n');
        if (!eol)
                eol = v + strlen(v);
        size_t vlen = (size_t)(eol - v);
        while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
        if (vlen + 1 > value_bytes)
                return false;
        memcpy(value, v, vlen);
        value[vlen] = '\0';
        *p = *eol ? eol + 1 : eol;
        return true;
}

int logdir_read_partition_metadata(int dir_fd, const char *partdir, struct kuuid *topic_id_out)
{
        char path[2 * LOGDIR_NAME_BYTES_MAX + 2];
        char *text;
        size_t size;
        char version[16], id[64];

        if (snprintf(path, sizeof(path), "%s/%s", partdir, LOGDIR_PARTITION_METADATA_FILE) >=
            (int)sizeof(path))
                return -ENAMETOOLONG;
        int rc = logdir_read_file(dir_fd, path, LOGDIR_PARTITION_METADATA_BYTES_MAX, &text, &size);
        if (rc == -EFBIG)
                return -EINVAL;
        if (rc < 0)
                return rc;

        const char *p = text;
        rc = -EINVAL;
        if (!logdir_take_field(&p, "version", version, sizeof(version)) || strcmp(version, "0"))
                goto out;
        if (!logdir_take_field(&p, "topic_id", id, sizeof(id)))
                goto out;
        if (!uuid_from_base64(id, strlen(id), topic_id_out) || kuuid_is_zero(*topic_id_out))
                goto out;
        rc = 0;
out:
        free(text);
        return rc;
}

int logdir_rename_aside(int dir_fd, const char *partdir, const char *suffix, char *new_name)
{
        struct kuuid u;
        char hex[UUID_HEX_BYTES];

        int rc = uuid_random(&u);
        if (rc < 0)
                return rc;
        uuid_to_hex(u, hex);
        /* Kafka keeps the whole name within 255 bytes by shortening the
         * `<topic>-<partition>` prefix, never the unique suffix. */
        size_t tail = 1 + 32 + strlen(suffix);
        assert(tail < LOGDIR_NAME_BYTES_MAX);
        size_t prefix = strlen(partdir);
        if (prefix > LOGDIR_NAME_BYTES_MAX - tail)
                prefix = LOGDIR_NAME_BYTES_MAX - tail;
        int n = snprintf(new_name, LOGDIR_NAME_BYTES_MAX + 1, "%.*s.%s%s", (int)prefix, partdir, hex, suffix);
        assert(n > 0 && n <= LOGDIR_NAME_BYTES_MAX);

        if (renameat2(dir_fd, partdir, dir_fd, new_name, RENAME_NOREPLACE) < 0)
                return -errno;
        return fsync(dir_fd) < 0 ? -errno : 0;
}

/* ---- meta.properties ---- */

struct logdir_meta {
        bool is_present;
        bool has_directory_id;
        struct kuuid cluster_id;
        int32_t node_id;
        struct kuuid directory_id;
};

static bool logdir_parse_i32(const char *s, int32_t *out)
{
        if (!*s || strlen(s) > 10)
                return false;
        int64_t v = 0;
        for (const char *p = s; *p; p++) {
                if (*p < '0' || *p > '9')
                        return false;
                v = v * 10 + (*p - '0');
        }
        if (v > INT32_MAX)
                return false;
        *out = (int32_t)v;
        return true;
}

/*
 * Reads dir's meta.properties into m. Returns 0 (m->is_present false when
 * there is none) or -errno with the reason in err.
 */
static int logdir_read_meta(const struct logdir *dir, struct logdir_meta *m, char *err, size_t err_bytes)
{
        char *text, *line, *save = NULL;
        size_t size;
        bool has_version = false, has_cluster = false, has_node = false;
        int rc;

        memset(m, 0, sizeof(*m));
        rc = logdir_read_file(dir->dir_fd, LOGDIR_META_FILE, LOGDIR_META_BYTES_MAX, &text, &size);
        if (rc == -ENOENT)
                return 0;
        if (rc < 0) {
                logdir_fail(err, err_bytes, "log dir %s: cannot read %s: %s; check the file's permissions",
                            dir->path, LOGDIR_META_FILE, strerror(-rc));
                return rc;
        }
        m->is_present = true;

        rc = -EINVAL;
        for (line = strtok_r(text, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
                while (*line == ' ' || *line == '\t' || *line == '\f')
                        line++;
                if (*line == '\0' || *line == '#' || *line == '!')
                        continue;
                char *k = line;
                char *v = line + strcspn(line, "=: \t\f");
                char *kend = v;
                while (*v == ' ' || *v == '\t' || *v == '\f')
                        v++;
                if (*v == '=' || *v == ':')
                        v++;
                while (*v == ' ' || *v == '\t' || *v == '\f')
                        v++;
                *kend = '\0';
                size_t vlen = strlen(v);
                while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                        v[--vlen] = '\0';

                if (!strcmp(k, "version")) {
                        if (strcmp(v, "1")) {
                                logdir_fail(err, err_bytes,
                                            "log dir %s: %s has version=%s, expected version=1 (KRaft); "
                                            "a ZooKeeper-mode or newer Kafka wrote it: "
                                            "point log.dirs elsewhere",
                                            dir->path, LOGDIR_META_FILE, v);
                                goto out;
                        }
                        has_version = true;
                } else if (!strcmp(k, "cluster.id")) {
                        if (!uuid_from_base64(v, vlen, &m->cluster_id) || kuuid_is_zero(m->cluster_id)) {
                                logdir_fail(err, err_bytes,
                                            "log dir %s: %s has cluster.id=%s, expected a 22-character "
                                            "base64url uuid; fix the file or delete the directory",
                                            dir->path, LOGDIR_META_FILE, v);
                                goto out;
                        }
                        has_cluster = true;
                } else if (!strcmp(k, "node.id")) {
                        if (!logdir_parse_i32(v, &m->node_id)) {
                                logdir_fail(err, err_bytes,
                                            "log dir %s: %s has node.id=%s, expected a non-negative integer; "
                                            "fix the file or delete the directory",
                                            dir->path, LOGDIR_META_FILE, v);
                                goto out;
                        }
                        has_node = true;
                } else if (!strcmp(k, "directory.id")) {
                        if (!uuid_from_base64(v, vlen, &m->directory_id) ||
                            uuid_is_reserved(m->directory_id)) {
                                logdir_fail(err, err_bytes,
                                            "log dir %s: %s has directory.id=%s, expected a base64url uuid "
                                            "that is not reserved; remove the line to get a new one",
                                            dir->path, LOGDIR_META_FILE, v);
                                goto out;
                        }
                        m->has_directory_id = true;
                }
                /* Other keys (directory.ids of early KIP-858 drafts, ...) are ignored. */
        }
        if (!has_version || !has_cluster || !has_node) {
                logdir_fail(err, err_bytes,
                            "log dir %s: %s lacks %s; it was not written by a KRaft broker: "
                            "fix the file, or delete it to have the directory formatted again",
                            dir->path, LOGDIR_META_FILE,
                            !has_version ? "version" : !has_cluster ? "cluster.id" : "node.id");
                goto out;
        }
        rc = 0;
out:
        free(text);
        return rc;
}

static int logdir_write_meta(struct logdir *dir, const struct logdirs *ld)
{
        char stamp[64], text[512];
        time_t now = time(NULL);
        struct tm tm;

        /* Properties.store() heads the file with the comment (empty here)
         * and Date.toString(); Kafka's readers skip both. */
        gmtime_r(&now, &tm);
        if (strftime(stamp, sizeof(stamp), "%a %b %d %H:%M:%S UTC %Y", &tm) == 0)
                stamp[0] = '\0';
        int n = snprintf(text, sizeof(text),
                         "#\n#%s\nversion=1\ncluster.id=%s\nnode.id=%d\ndirectory.id=%s\n",
                         stamp, ld->cluster_id_str, (int)ld->node_id, dir->directory_id_str);
        assert(n > 0 && (size_t)n < sizeof(text));
        return logdir_write_file_atomic(dir->dir_fd, LOGDIR_META_FILE, text, (size_t)n);
}

/* mkdir -p, fsyncing the parent of each directory it creates. */
static int logdir_make_path(const char *path)
{
        char buf[PATH_MAX];
        size_t len = strlen(path);
        int created = 0;

        if (len == 0 || len >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, len + 1);
        while (len > 1 && buf[len - 1] == '/')
                buf[--len] = '\0';

        for (size_t i = 1; i <= len; i++) {
                if (buf[i] != '/' && buf[i] != '\0')
                        continue;
                if (++created > LOGDIR_MKDIR_DEPTH_MAX)
                        return -ELOOP;
                char saved = buf[i];
                buf[i] = '\0';
                if (mkdir(buf, 0755) == 0) {
                        /* Make the new entry durable in its parent. */
                        char *slash = strrchr(buf, '/');
                        int rc;
                        if (!slash)
                                rc = logdir_fsync_dir(AT_FDCWD, ".");
                        else if (slash == buf)
                                rc = logdir_fsync_dir(AT_FDCWD, "/");
                        else {
                                *slash = '\0';
                                rc = logdir_fsync_dir(AT_FDCWD, buf);
                                *slash = '/';
                        }
                        if (rc < 0)
                                return rc;
                } else if (errno != EEXIST) {
                        return -errno;
                }
                buf[i] = saved;
        }
        return 0;
}

static void logdir_close_one(struct logdir *dir)
{
        if (dir->lock_fd >= 0)
                close(dir->lock_fd);    /* drops the OFD lock */
        if (dir->dir_fd >= 0)
                close(dir->dir_fd);
        free(dir->path);
        memset(dir, 0, sizeof(*dir));
        dir->dir_fd = -1;
        dir->lock_fd = -1;
}

/* Creates and opens one dir. */
static int logdir_open_one(struct logdir *dir, const char *path, char *err, size_t err_bytes)
{
        int rc;

        dir->dir_fd = -1;
        dir->lock_fd = -1;
        dir->path = strdup(path);
        if (!dir->path)
                return -ENOMEM;

        rc = logdir_make_path(path);
        if (rc < 0) {
                logdir_fail(err, err_bytes, "log dir %s: cannot create it: %s; "
                            "fix its permissions or point log.dirs elsewhere", path, strerror(-rc));
                return rc;
        }
        dir->dir_fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir->dir_fd < 0) {
                rc = -errno;
                logdir_fail(err, err_bytes, "log dir %s: cannot open it: %s; "
                            "fix its permissions or point log.dirs elsewhere", path, strerror(-rc));
                return rc;
        }
        return 0;
}

/* Locks dir against other brokers, Kafka ones included. */
static int logdir_lock(struct logdir *dir, char *err, size_t err_bytes)
{
        const char *path = dir->path;
        int rc;

        dir->lock_fd = openat(dir->dir_fd, LOGDIR_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (dir->lock_fd < 0) {
                rc = -errno;
                logdir_fail(err, err_bytes, "log dir %s: cannot create %s: %s; "
                            "fix its permissions or point log.dirs elsewhere", path, LOGDIR_LOCK_FILE,
                            strerror(-rc));
                return rc;
        }
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0 };
        if (fcntl(dir->lock_fd, F_OFD_SETLK, &fl) < 0) {
                rc = -errno;
                if (rc == -EAGAIN || rc == -EACCES)
                        logdir_fail(err, err_bytes, "log dir %s: in use by another broker (%s is locked); "
                                    "stop it or point log.dirs elsewhere", path, LOGDIR_LOCK_FILE);
                else
                        logdir_fail(err, err_bytes, "log dir %s: cannot lock %s: %s", path,
                                    LOGDIR_LOCK_FILE, strerror(-rc));
                return rc;
        }
        return 0;
}

int logdirs_open(struct logdirs *ld, const char *const *paths, uint32_t path_count,
                 int32_t node_id, char *err, size_t err_bytes)
{
        struct logdir_meta metas[LOGDIR_COUNT_MAX];
        struct stat ids[LOGDIR_COUNT_MAX];
        int first_formatted = -1;
        int rc;

        assert(ld && (paths || path_count == 0));
        memset(ld, 0, sizeof(*ld));
        for (uint32_t i = 0; i < LOGDIR_COUNT_MAX; i++) {
                ld->dirs[i].dir_fd = -1;
                ld->dirs[i].lock_fd = -1;
        }
        if (path_count == 0 || path_count > LOGDIR_COUNT_MAX) {
                logdir_fail(err, err_bytes, "log.dirs: %u directories given, expected 1 to %d",
                            (unsigned)path_count, LOGDIR_COUNT_MAX);
                return -EINVAL;
        }
        if (node_id < 0) {
                logdir_fail(err, err_bytes, "node.id: %d is negative, expected 0 or more", (int)node_id);
                return -EINVAL;
        }
        ld->node_id = node_id;

        for (uint32_t i = 0; i < path_count; i++) {
                if (!paths[i] || !*paths[i]) {
                        logdir_fail(err, err_bytes, "log.dirs: entry %u is empty; remove it",
                                    (unsigned)i + 1);
                        rc = -EINVAL;
                        goto out_close;
                }
                ld->count = i + 1;
                rc = logdir_open_one(&ld->dirs[i], paths[i], err, err_bytes);
                if (rc < 0)
                        goto out_close;
                if (fstat(ld->dirs[i].dir_fd, &ids[i]) < 0) {
                        rc = -errno;
                        logdir_fail(err, err_bytes, "log dir %s: stat: %s", paths[i], strerror(-rc));
                        goto out_close;
                }
                for (uint32_t j = 0; j < i; j++) {
                        if (ids[j].st_dev == ids[i].st_dev && ids[j].st_ino == ids[i].st_ino) {
                                logdir_fail(err, err_bytes, "log dirs %s and %s are the same directory; "
                                            "list each directory once in log.dirs", paths[j], paths[i]);
                                rc = -EINVAL;
                                goto out_close;
                        }
                }
                rc = logdir_lock(&ld->dirs[i], err, err_bytes);
                if (rc < 0)
                        goto out_close;
                rc = logdir_read_meta(&ld->dirs[i], &metas[i], err, err_bytes);
                if (rc < 0)
                        goto out_close;
        }

        /* Every formatted dir must belong to this cluster and this node. */
        for (uint32_t i = 0; i < ld->count; i++) {
                if (!metas[i].is_present)
                        continue;
                if (metas[i].node_id != node_id) {
                        logdir_fail(err, err_bytes,
                                    "log dir %s: %s has node.id=%d but node.id is %d in the configuration; "
                                    "set node.id=%d, or delete the directory or point log.dirs elsewhere",
                                    ld->dirs[i].path, LOGDIR_META_FILE, (int)metas[i].node_id,
                                    (int)node_id, (int)metas[i].node_id);
                        rc = -EINVAL;
                        goto out_close;
                }
                if (first_formatted < 0) {
                        first_formatted = (int)i;
                        ld->cluster_id = metas[i].cluster_id;
                        continue;
                }
                if (!kuuid_eq(metas[i].cluster_id, ld->cluster_id)) {
                        char found[UUID_BASE64_BYTES], want[UUID_BASE64_BYTES];
                        uuid_to_base64(metas[i].cluster_id, found);
                        uuid_to_base64(ld->cluster_id, want);
                        logdir_fail(err, err_bytes,
                                    "log dir %s: %s has cluster.id=%s but %s has cluster.id=%s; the "
                                    "directory belongs to another cluster: delete the directory or "
                                    "point log.dirs elsewhere",
                                    ld->dirs[i].path, LOGDIR_META_FILE, found,
                                    ld->dirs[first_formatted].path, want);
                        rc = -EINVAL;
                        goto out_close;
                }
        }
        if (first_formatted < 0) {
                rc = uuid_random(&ld->cluster_id);
                if (rc < 0) {
                        logdir_fail(err, err_bytes, "log dirs: cannot make a cluster id: %s", strerror(-rc));
                        goto out_close;
                }
        }
        uuid_to_base64(ld->cluster_id, ld->cluster_id_str);

        for (uint32_t i = 0; i < ld->count; i++) {
                struct logdir *dir = &ld->dirs[i];
                if (metas[i].has_directory_id) {
                        dir->directory_id = metas[i].directory_id;
                        uuid_to_base64(dir->directory_id, dir->directory_id_str);
                        for (uint32_t j = 0; j < i; j++) {
                                if (kuuid_eq(ld->dirs[j].directory_id, dir->directory_id)) {
                                        logdir_fail(err, err_bytes,
                                                    "log dir %s: %s has directory.id=%s, the same as %s; "
                                                    "one was copied from the other: remove the directory.id "
                                                    "line from one to get a new id",
                                                    dir->path, LOGDIR_META_FILE, dir->directory_id_str,
                                                    ld->dirs[j].path);
                                        rc = -EINVAL;
                                        goto out_close;
                                }
                        }
                        continue;
                }
                /* Unformatted, or formatted before KIP-858 gave dirs an id:
                 * Kafka adds one and rewrites the file; so do we. */
                rc = uuid_random(&dir->directory_id);
                if (rc < 0) {
                        logdir_fail(err, err_bytes, "log dir %s: cannot make a directory id: %s",
                                    dir->path, strerror(-rc));
                        goto out_close;
                }
                uuid_to_base64(dir->directory_id, dir->directory_id_str);
        }
        for (uint32_t i = 0; i < ld->count; i++) {
                struct logdir *dir = &ld->dirs[i];
                if (metas[i].has_directory_id)
                        continue;
                rc = logdir_write_meta(dir, ld);
                if (rc < 0) {
                        logdir_fail(err, err_bytes, "log dir %s: cannot write %s: %s; "
                                    "fix the disk or point log.dirs elsewhere",
                                    dir->path, LOGDIR_META_FILE, strerror(-rc));
                        goto out_close;
                }
                dir->was_formatted = !metas[i].is_present;
        }
        return 0;

out_close:
        logdirs_close(ld);
        return rc;
}

void logdirs_close(struct logdirs *ld)
{
        assert(ld && ld->count <= LOGDIR_COUNT_MAX);
        for (uint32_t i = 0; i < ld->count; i++)
                logdir_close_one(&ld->dirs[i]);
        ld->count = 0;
}

const char *logdirs_cluster_id(const struct logdirs *ld)
{
        assert(ld->count > 0);
        assert(strlen(ld->cluster_id_str) == UUID_BASE64_BYTES - 1);
        return ld->cluster_id_str;
}
