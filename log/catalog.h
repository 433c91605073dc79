/*
 * catalog.h - the broker's topic catalog: which topics exist, their ids,
 * partition counts, per-topic config overrides, and which log dir holds
 * each partition. It plays the part Kafka's KRaft metadata image plays for
 * topics on a single broker.
 *
 * Owns:
 *   - the in-memory registry of topics, shared by every thread;
 *   - the catalog file `<first log dir>/__runnel_catalog`, the source of
 *     truth for topics, partition counts and configs (Kafka keeps these in
 *     its metadata log, which runnel does not have). It is rewritten whole,
 *     atomically, on every change; the format is described in catalog.c.
 *     If log.dirs is reordered the file is found in the other dir and
 *     moved to the new first one;
 *   - the existence of partition directories `<log dir>/<topic>-<p>/` and
 *     their partition.metadata. What goes inside them (segments, indexes,
 *     checkpoints) belongs to the log layer.
 *
 * Durability and crash order. The catalog file is the commit point of every
 * change; partition directories follow it:
 *   create / add partitions: write the catalog file, then create the
 *     partition dirs, then publish in memory. A crash after the commit
 *     leaves dirs missing; the next open recreates them.
 *   delete: write the catalog file without the topic and with a tombstone
 *     (its id), unpublish, rename every partition dir to
 *     `<topic>-<p>.<hex>-delete`, then remove those (on the calling thread,
 *     after the admin mutex is released; Kafka waits file.delete.delay.ms,
 *     we do not). Files the log layer still has open stay usable until it
 *     closes them. The next open removes what a crash left: `-delete`
 *     dirs, and partition dirs whose id has a tombstone.
 *   alter configs: write the catalog file, then publish.
 * If creating dirs fails after the commit, the catalog file is rewritten
 * without the change and the error returned; nothing is published. (If
 * even that rewrite fails, a line is logged: the change is in the file
 * until the next admin operation rewrites it, or reappears at restart.)
 *
 * Open reconciles the file with the partition dirs found in all log dirs:
 *   - a catalog partition found in one log dir is assigned to it (a missing
 *     partition.metadata is written, as Kafka does for pre-2.8 dirs); found
 *     in two, open fails naming both;
 *   - a catalog partition found nowhere is recreated empty (one log line);
 *   - a dir named like a catalog partition but with another topic id (a
 *     leftover of an older topic of the same name) is renamed
 *     `...-stray`, Kafka's name for such dirs, and the partition recreated;
 *   - a partition dir of a topic the catalog does not know (stray: a Kafka
 *     dir, a restored backup) is reported and left in place, never deleted;
 *     creating a topic of that name later renames it `...-stray` first;
 *   - `-delete` dirs are removed; `-stray` and `-future` dirs are left.
 *
 * Threads. Lookups run on any thread, concurrently with each other and with
 * one admin operation: a read lock is held only to find a topic and take a
 * reference. Admin operations (create, delete, add partitions, alter
 * configs) are serialised by a mutex held across their I/O; the write lock
 * is held only to swap pointers, so lookups never wait for an fsync. Admin
 * operations block on disk: call them off the reactor threads.
 *
 * Lifetime rule. A struct catalog_topic is an immutable version: a change
 * to a topic publishes a new version and retires the old. A lookup returns a
 * version with a reference the caller owns; everything reachable from it
 * (name, configs, partitions) stays valid and unchanged until the caller
 * calls catalog_topic_put(), even if the topic is deleted meanwhile. Never
 * keep a pointer into a topic after putting it. Hot paths may cache a
 * reference and refresh it when catalog_version() moves on.
 *
 * Partitions. struct catalog_partition is shared by every version of its
 * topic and lives until the last version referring to it is put. Its `log`
 * field is the log layer's: set with catalog_partition_set_log(); when the
 * partition is freed the release_log hook is called with it.
 *
 * Errors. Admin operations return 0 or -errno: negative means the disk
 * failed (or memory ran out) and nothing visible changed; the caller
 * answers UNKNOWN_SERVER_ERROR or KAFKA_STORAGE_ERROR as it sees fit.
 * On 0 the request was decided, and
 * *err says how in Kafka's terms: err->code is the error code a client
 * should get (CATALOG_ERR_NONE when done) and err->message a static
 * explanation, or NULL. Lookups return NULL for "not found"; mapping that
 * to UNKNOWN_TOPIC_OR_PARTITION or UNKNOWN_TOPIC_ID is the caller's.
 *
 * Validation. The catalog checks names (Kafka's Topic.validate and the
 * '.'/'_' collision rule) and partition counts; config keys and values are
 * stored as given, only bounded in size: the caller validates them.
 */
#ifndef RUNNEL_CATALOG_H
#define RUNNEL_CATALOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/arena.h"
#include "../protocol/wire.h"
#include "logdir.h"
#include "uuid.h"

/* Kafka error codes the catalog decides (numbers from Kafka's Errors). */
enum {
        CATALOG_ERR_NONE = 0,
        CATALOG_ERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
        CATALOG_ERR_INVALID_TOPIC_EXCEPTION = 17,
        CATALOG_ERR_TOPIC_ALREADY_EXISTS = 36,
        CATALOG_ERR_INVALID_PARTITIONS = 37,
        CATALOG_ERR_INVALID_CONFIG = 40,
        CATALOG_ERR_UNKNOWN_TOPIC_ID = 100,
};

/* Limits. A topic name is at most 249 bytes (Kafka's Topic.MAX_NAME_LENGTH),
 * so with at most 100000 partitions `<topic>-<p>` fits NAME_MAX. */
#define CATALOG_TOPIC_NAME_BYTES_MAX 249
#define CATALOG_PARTITIONS_MAX 100000
#define CATALOG_CONFIGS_MAX 256
#define CATALOG_CONFIG_CHANGES_MAX 1024
#define CATALOG_CONFIG_KEY_BYTES_MAX 255
#define CATALOG_CONFIG_VALUE_BYTES_MAX 65536

#define CATALOG_FILE "__runnel_catalog"

struct catalog;

struct catalog_err {
        int16_t code;                   /* CATALOG_ERR_* */
        const char *message;            /* static; NULL when code is NONE */
};

/* A config override: key and value, NUL-terminated. */
struct catalog_config {
        const char *key;
        const char *value;
};

struct catalog_partition {
        int32_t index;
        uint32_t logdir_index;          /* into struct logdirs.dirs */
        _Atomic(void *) log;            /* the log layer's; see catalog_partition_log() */
        atomic_uint refs;               /* private: topic versions referring to it */
        struct catalog *cat;            /* private */
};

struct catalog_topic {
        const char *name;               /* NUL-terminated, valid topic name */
        uint32_t name_len;
        struct kuuid id;
        char id_str[UUID_BASE64_BYTES]; /* base64url, for display and files */
        bool is_internal;
        int32_t partition_count;
        struct catalog_partition *const *partitions;    /* [partition_count], by index */
        uint32_t config_count;
        const struct catalog_config *configs;           /* sorted by key, keys unique */
        uint64_t version;               /* catalog_version() when this version was made */
        atomic_uint refs;               /* private */
        struct catalog *cat;            /* private */
};

struct catalog_hooks {
        /* One operator-facing line (no newline); NULL writes to stderr. */
        void (*log_line)(void *ctx, const char *line);
        /* Called once for a partition whose log was set, when the partition
         * is freed: its topic is deleted (or the catalog closed) and the last
         * reference is put. Runs on the thread that put it. May be NULL. */
        void (*release_log)(void *ctx, void *log);
        void *ctx;
};

/*
 * Loads the catalog of dirs (opened by logdirs_open, to outlive the
 * catalog) and reconciles it with the partition dirs on disk, as described
 * above. hooks may be NULL. Returns 0 or -errno with one line in err.
 */
int catalog_open(struct catalog **out, const struct logdirs *dirs,
                 const struct catalog_hooks *hooks, char *err, size_t err_bytes);

/* Frees the catalog. Every reference taken by a lookup must have been put. */
void catalog_close(struct catalog *cat);

/* ---- names ---- */

/* Kafka's Topic.validate: 1 to 249 bytes of [a-zA-Z0-9._-], not "." or "..". */
bool catalog_is_valid_topic_name(struct kstr name);

/* __consumer_offsets, __transaction_state, __share_group_state. */
bool catalog_is_internal_topic_name(struct kstr name);

/* Kafka's Topic.hasCollision: equal once every '.' is read as '_'. */
bool catalog_topic_names_collide(struct kstr a, struct kstr b);

/* ---- lookups: any thread ---- */

/* The topic with this name or id, with a reference; NULL if there is none. */
const struct catalog_topic *catalog_get_topic(struct catalog *cat, struct kstr name);
const struct catalog_topic *catalog_get_topic_by_id(struct catalog *cat, struct kuuid id);

/* Takes one more reference on a topic the caller already holds. */
const struct catalog_topic *catalog_topic_hold(const struct catalog_topic *t);

/* Gives a reference back. NULL is allowed. */
void catalog_topic_put(const struct catalog_topic *t);

/* The override for key, or NULL. */
const char *catalog_topic_config(const struct catalog_topic *t, const char *key);

/* The partition, or NULL when index is out of range. */
struct catalog_partition *catalog_topic_partition(const struct catalog_topic *t, int32_t index);

/* `<log dir>/<topic>-<p>` into buf; returns its length or -ENAMETOOLONG. */
int catalog_partition_path(const struct catalog *cat, const struct catalog_topic *t,
                           int32_t index, char *buf, size_t buf_bytes);

/* The log layer's pointer for a partition. set returns the previous one. */
void *catalog_partition_log(const struct catalog_partition *p);
void *catalog_partition_set_log(struct catalog_partition *p, void *log);

/* Bumped by every change; one atomic load. */
uint64_t catalog_version(const struct catalog *cat);

uint32_t catalog_topic_count(struct catalog *cat);

/* ---- snapshot: the whole catalog copied into an arena (Metadata) ---- */

struct catalog_snapshot_topic {
        struct kstr name;               /* NUL-terminated copy in the arena */
        struct kuuid id;
        bool is_internal;
        int32_t partition_count;
};

struct catalog_snapshot {
        uint64_t version;
        uint32_t topic_count;
        struct catalog_snapshot_topic *topics;  /* sorted by name */
};

/* Copies every topic, in name order, into arena. Returns 0 or -ENOMEM. */
int catalog_snapshot(struct catalog *cat, struct arena *arena, struct catalog_snapshot *out);

/*
 * All topics in name order, each with a reference, in a malloc'd array
 * (for start-up, when the log layer opens every partition). Give them back
 * with catalog_topics_put(). Returns 0 or -ENOMEM.
 */
int catalog_list_topics(struct catalog *cat, const struct catalog_topic ***out, uint32_t *count_out);
void catalog_topics_put(const struct catalog_topic **topics, uint32_t count);

/* ---- admin operations: one at a time, block on disk ---- */

struct catalog_topic_spec {
        struct kstr name;
        int32_t partition_count;        /* resolved by the caller (num.partitions) */
        const struct catalog_config *configs;
        uint32_t config_count;          /* later duplicates of a key win */
        bool is_validate_only;          /* check everything, change nothing */
};

/*
 * Creates a topic. err: INVALID_TOPIC_EXCEPTION (bad name, or collides
 * with an existing name by '.'/'_'), TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS
 * (< 1 or > CATALOG_PARTITIONS_MAX), INVALID_CONFIG (over a size limit).
 * id_out (may be NULL) gets the new topic id.
 */
int catalog_create_topic(struct catalog *cat, const struct catalog_topic_spec *spec,
                         struct kuuid *id_out, struct catalog_err *err);

/* Deletes a topic. err: UNKNOWN_TOPIC_OR_PARTITION / UNKNOWN_TOPIC_ID. */
int catalog_delete_topic(struct catalog *cat, struct kstr name, struct catalog_err *err);
int catalog_delete_topic_by_id(struct catalog *cat, struct kuuid id, struct catalog_err *err);

/*
 * Grows a topic to partition_count partitions. err: UNKNOWN_TOPIC_OR_PARTITION,
 * INVALID_PARTITIONS (not more than now, or over the limit).
 */
int catalog_add_partitions(struct catalog *cat, struct kstr name, int32_t partition_count,
                           bool is_validate_only, struct catalog_err *err);

/*
 * Changes a topic's config overrides. With is_replace_all the overrides
 * become exactly the changes whose value is not NULL (AlterConfigs);
 * otherwise each change in order sets its key, or deletes it when value is
 * NULL (IncrementalAlterConfigs SET/DELETE; the caller turns APPEND and
 * SUBTRACT into SET). err: UNKNOWN_TOPIC_OR_PARTITION, INVALID_CONFIG.
 */
int catalog_alter_configs(struct catalog *cat, struct kstr name,
                          const struct catalog_config *changes, uint32_t change_count,
                          bool is_replace_all, bool is_validate_only, struct catalog_err *err);

#endif
