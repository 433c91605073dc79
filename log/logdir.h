/*
 * logdir.h - the broker's log directories (log.dirs) and the parts of
 * Kafka's on-disk layout that are not log segments.
 *
 * Owns:
 *   - each log dir's existence, its lock and its meta.properties (KRaft v1:
 *     version, cluster.id, node.id, directory.id), which ties the dir to
 *     one cluster and one node;
 *   - the names of partition directories, `<topic>-<partition>`, and of the
 *     directories a partition is renamed to when it is deleted
 *     (`<topic>-<partition>.<hex uuid>-delete`) or set aside as stray
 *     (`...-stray`), as Kafka names them;
 *   - partition.metadata, the topic id of a partition directory
 *     ("version: 0\ntopic_id: <base64url>\n");
 *   - the primitives every other file in log/ uses to change the layout
 *     durably: atomic file replacement and recursive removal.
 *
 * Invariants after logdirs_open() succeeds:
 *   - every dir exists, is locked against other processes (an OFD lock on
 *     `<dir>/.lock`, which Kafka's FileChannel lock also respects) and holds a
 *     meta.properties with the same cluster.id and the configured node.id;
 *   - no two entries of log.dirs are the same directory and no two share a
 *     directory.id.
 *
 * Thread safety: logdirs_open/close are called once, by start-up and
 * shutdown. Between them struct logdirs is read-only and may be read from
 * any thread. The layout helpers are reentrant; serialising changes to one
 * partition directory is the caller's business (catalog.c does it).
 */
#ifndef RUNNEL_LOGDIR_H
#define RUNNEL_LOGDIR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../protocol/wire.h"
#include "uuid.h"

/* Limits: dirs per broker, and the longest name a directory entry may have
 * (NAME_MAX on Linux; Kafka caps the -delete/-stray names to it too). */
#define LOGDIR_COUNT_MAX 64
#define LOGDIR_NAME_BYTES_MAX 255

#define LOGDIR_META_FILE "meta.properties"
#define LOGDIR_LOCK_FILE ".lock"
#define LOGDIR_PARTITION_METADATA_FILE "partition.metadata"
#define LOGDIR_DELETE_SUFFIX "-delete"
#define LOGDIR_STRAY_SUFFIX "-stray"
#define LOGDIR_FUTURE_SUFFIX "-future"

struct logdir {
        char *path;                     /* as configured */
        int dir_fd;                     /* O_DIRECTORY, for the *at() calls */
        int lock_fd;                    /* holds the lock on .lock */
        struct kuuid directory_id;
        char directory_id_str[UUID_BASE64_BYTES];
        bool was_formatted;             /* meta.properties was written by this start */
};

struct logdirs {
        struct logdir dirs[LOGDIR_COUNT_MAX];
        uint32_t count;
        int32_t node_id;
        struct kuuid cluster_id;
        char cluster_id_str[UUID_BASE64_BYTES];
};

/*
 * Opens, and creates where missing, every dir of log.dirs for node node_id.
 *
 * When no dir has a meta.properties yet, a new random cluster id is made and
 * written to all of them; otherwise the cluster id of the formatted dirs is
 * written to the unformatted ones. A dir whose cluster.id disagrees with the
 * others, or whose node.id is not node_id, is refused.
 *
 * Returns 0, or -errno with one line in err (naming the dir, what was found,
 * what was expected and what to do) and nothing left open.
 */
int logdirs_open(struct logdirs *ld, const char *const *paths, uint32_t path_count,
                 int32_t node_id, char *err, size_t err_bytes);

/* Releases the locks and closes the dirs. */
void logdirs_close(struct logdirs *ld);

/* The cluster id, 22 base64url characters, NUL-terminated. */
const char *logdirs_cluster_id(const struct logdirs *ld);

/* ---- layout primitives ---- */

/*
 * Replaces dir_fd/name with data atomically: writes name.tmp, fsyncs it,
 * renames it over name and fsyncs the directory. After a crash the file
 * holds either the old or the new content. Returns 0 or -errno.
 */
int logdir_write_file_atomic(int dir_fd, const char *name, const void *data, size_t size_bytes);

/*
 * syncfs(2) of the filesystem holding dir_fd: every file written and every
 * name created there is durable on return. One call instead of two
 * fsyncs per file when many files are made at once (a topic's
 * partitions); it also writes back whatever else is dirty on that
 * filesystem. Returns 0 or -errno (write-back errors included).
 */
int logdir_sync_filesystem(int dir_fd);

/* fsync of a directory opened relative to dir_fd ("." for dir_fd itself). */
int logdir_fsync_dir(int dir_fd, const char *name);

/* Reads a whole file of at most size_bytes_max bytes into a malloc'd,
 * NUL-terminated buffer. Returns 0, -ENOENT, -EFBIG, or another -errno. */
int logdir_read_file(int dir_fd, const char *name, size_t size_bytes_max,
                     char **out, size_t *out_size_bytes);

/* Removes dir_fd/name and everything below it (at most 8 levels deep, which
 * is more than any Kafka layout has). A missing name is success. */
int logdir_remove_tree(int dir_fd, const char *name);

/* ---- partition directories ---- */

/* `<topic>-<partition>`; returns the length, or -ENAMETOOLONG. */
int logdir_format_partition_name(char *buf, size_t buf_bytes, const char *topic, int32_t partition);

/*
 * Splits a directory entry name of the form `<topic>-<partition>`: the
 * topic is everything before the last '-' and must be a valid topic name;
 * the partition is canonical decimal (no sign, no leading zero) below 2^31.
 * Writes the topic (NUL-terminated) to topic_out of topic_bytes.
 */
bool logdir_parse_partition_name(const char *name, char *topic_out, size_t topic_bytes,
                                 int32_t *partition_out);

/* Creates dir_fd/partdir (if missing) with a partition.metadata naming
 * topic_id. With is_synced both are durable on return but for partdir's
 * name in dir_fd (fsync dir_fd); without, nothing is synced and the
 * caller makes them durable (logdir_sync_filesystem). Returns 0 or -errno. */
int logdir_create_partition(int dir_fd, const char *partdir, struct kuuid topic_id, bool is_synced);

/* Writes partition.metadata in dir_fd/partdir atomically. */
int logdir_write_partition_metadata(int dir_fd, const char *partdir, struct kuuid topic_id);

/* Reads partition.metadata in dir_fd/partdir. Returns 0, -ENOENT when there
 * is none, -EINVAL when it is not version 0 with a valid topic_id, or -errno. */
int logdir_read_partition_metadata(int dir_fd, const char *partdir, struct kuuid *topic_id_out);

/*
 * Renames dir_fd/partdir to `<partdir>.<random hex uuid><suffix>`, the
 * prefix shortened as Kafka does when the whole would pass 255 bytes, and
 * fsyncs dir_fd. The new name is written to new_name (of at least
 * LOGDIR_NAME_BYTES_MAX + 1 bytes). Returns 0 or -errno.
 */
int logdir_rename_aside(int dir_fd, const char *partdir, const char *suffix, char *new_name);

/*
 * A partition directory held by name, not by an open descriptor.
 *
 * A partition needs its directory only for rare changes (a segment rolls,
 * an index is resized, a snapshot is written); holding it open would cost
 * a descriptor per partition, and 10,000 partitions would need 10,000 more
 * than Kafka's one per segment. So a partition keeps the log dir's
 * descriptor (open for the broker's life), its own entry name, and the
 * identity (device, inode) the name had when the partition opened. Each
 * change opens the directory for the moment it needs it and checks the
 * identity first: a directory renamed aside for deletion, or replaced by a
 * new topic of the same name, answers -ENOENT instead of letting an old
 * partition write into the new one's files.
 *
 * logdir_ref_new() makes one shared by reference count (a partition and the
 * segment handles that may outlive it); logdir_ref_init() fills one the
 * caller owns (tests). Any thread may use a ref; get/put are atomic.
 */
struct logdir_ref {
        int parent_fd;                  /* the log dir (borrowed) */
        dev_t dev;
        ino_t ino;
        atomic_uint refs;               /* 0 for a ref filled by logdir_ref_init() */
        char name[LOGDIR_NAME_BYTES_MAX + 1];
};

/* Fills ref for parent_fd/name, which must exist and be a directory
 * ("." names parent_fd itself). Returns 0 or -errno. */
int logdir_ref_init(struct logdir_ref *ref, int parent_fd, const char *name);

/* The same on the heap with one reference. Returns 0 or -errno. */
int logdir_ref_new(int parent_fd, const char *name, struct logdir_ref **out);

void logdir_ref_get(struct logdir_ref *ref);

/* Drops a reference; the last frees the ref (never the directory). */
void logdir_ref_put(struct logdir_ref *ref);

/* Opens the directory (O_DIRECTORY) for the caller to close. -ENOENT when
 * the name is gone or names another directory now. */
int logdir_ref_open(const struct logdir_ref *ref);

/* openat(2) of a file in the directory; returns the descriptor or -errno. */
int logdir_ref_openat(const struct logdir_ref *ref, const char *name, int flags, mode_t mode);

/* unlinkat(2) of a file in the directory; a missing file is -ENOENT. */
int logdir_ref_unlink(const struct logdir_ref *ref, const char *name);

/* fsync(2) of the directory: names created in it are durable on return. */
int logdir_ref_fsync(const struct logdir_ref *ref);

/* Whether name ends with suffix. */
bool logdir_has_suffix(const char *name, const char *suffix);

#endif
