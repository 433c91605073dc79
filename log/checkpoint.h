/*
 * checkpoint.h - Kafka's small state files beside the segments, byte for
 * byte as Kafka 4.x writes and reads them:
 *
 *   <log dir>/recovery-point-offset-checkpoint  each partition's recovery
 *           point: the prefix of its log known to be on disk, where a
 *           recovery after an unclean stop may start scanning;
 *   <log dir>/log-start-offset-checkpoint  the log start offset of each
 *           partition whose start offset is above its first segment's
 *           base offset (DeleteRecords moved it inside a segment);
 *   <partition dir>/leader-epoch-checkpoint  the leader epochs of the
 *           partition and the offset each began at;
 *   <log dir>/.kafka_cleanshutdown  present only between a clean shutdown
 *           and the next start-up, which deletes it first.
 *
 * The three checkpoints are Kafka's CheckpointFile: a version line ("0"), a
 * line with the entry count, then one line per entry, fields separated by
 * one space, every line ended by "\n" (Java's BufferedWriter.newLine on
 * Linux):
 *
 *      0
 *      2
 *      orders 0 1500
 *      orders 1 977
 *
 * Offset checkpoints have "topic partition offset" entries, the leader
 * epoch checkpoint "epoch start_offset" entries. Reading follows Kafka's
 * CheckpointReadBuffer: an empty file, or one with only the version line,
 * has no entries; a version other than 0, a line that is not exactly the
 * right number of whitespace-separated fields of the right types, or fewer
 * or more entries than the count line says make the file malformed. When
 * a topic partition appears twice the later line wins, as Kafka's map
 * does. The marker holds Kafka's JSON, {"version":0,"brokerEpoch":N}.
 *
 * Writes go through logdir_write_file_atomic (`<name>.tmp`, fsync, rename,
 * fsync of the directory), the same crash-safe replacement Kafka makes.
 *
 * Pure functions and blocking file I/O; no state, thread-safe.
 */
#ifndef RUNNEL_CHECKPOINT_H
#define RUNNEL_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHECKPOINT_RECOVERY_POINT_FILE "recovery-point-offset-checkpoint"
#define CHECKPOINT_LOG_START_OFFSET_FILE "log-start-offset-checkpoint"
#define CHECKPOINT_LEADER_EPOCH_FILE "leader-epoch-checkpoint"
#define CHECKPOINT_CLEAN_SHUTDOWN_FILE ".kafka_cleanshutdown"

#define CHECKPOINT_VERSION 0
/* A checkpoint larger than this is refused as malformed rather than read:
 * 100000 partitions of 249-byte names fit in 27 MB. */
#define CHECKPOINT_FILE_BYTES_MAX (64u << 20)
/* Room for any one line of an offset checkpoint: a 249-byte topic name,
 * an int32, an int64, two spaces and the newline. */
#define CHECKPOINT_LINE_BYTES_MAX 300
/* The marker's JSON with the longest broker epoch, and its NUL. */
#define CHECKPOINT_CLEAN_SHUTDOWN_BYTES_MAX 64

/* ---- offset checkpoints: recovery points, log start offsets ---- */

struct checkpoint_offset {
        const char *topic;              /* NUL-terminated */
        int32_t partition;
        int64_t offset;
};

/* A parsed offset checkpoint. entries are sorted by (topic, partition),
 * one per topic partition; topics point into text, which it owns. */
struct checkpoint_offsets {
        struct checkpoint_offset *entries;
        uint32_t count;
        char *text;
};

/* The bytes checkpoint_offsets_encode writes for these entries. */
size_t checkpoint_offsets_encoded_bytes(const struct checkpoint_offset *entries, uint32_t count);

/* Writes the file's bytes, entries in the order given, into buf (at least
 * checkpoint_offsets_encoded_bytes); returns the bytes written. */
size_t checkpoint_offsets_encode(const struct checkpoint_offset *entries, uint32_t count, char *buf,
                                 size_t buf_bytes);

/*
 * Parses a file's bytes. Takes text (malloc'd, len bytes plus a NUL)
 * whatever happens: on success out owns it, else it is freed. Returns 0,
 * -EINVAL with one line in err when the bytes are malformed, or -ENOMEM.
 */
int checkpoint_offsets_parse(char *text, size_t len, struct checkpoint_offsets *out, char *err,
                             size_t err_bytes);

/* The entry of (topic, partition), or NULL. */
const struct checkpoint_offset *checkpoint_offsets_find(const struct checkpoint_offsets *c, const char *topic,
                                                        int32_t partition);

void checkpoint_offsets_free(struct checkpoint_offsets *c);

/*
 * Reads dir_fd/name. Returns 0 (out holds the entries; none when the file
 * is empty), -ENOENT (no file; out is empty), -EINVAL (malformed, err says
 * how; out is empty), or another -errno.
 */
int checkpoint_offsets_read(int dir_fd, const char *name, struct checkpoint_offsets *out, char *err,
                            size_t err_bytes);

/* Replaces dir_fd/name atomically with these entries. Returns 0 or -errno. */
int checkpoint_offsets_write(int dir_fd, const char *name, const struct checkpoint_offset *entries,
                             uint32_t count);

/* ---- leader-epoch-checkpoint ---- */

struct checkpoint_epoch {
        int32_t epoch;
        int64_t start_offset;
};

/* Writes the file's bytes into buf; returns the bytes written, or the bytes
 * needed when buf_bytes is too small (nothing written then). */
size_t checkpoint_epochs_encode(const struct checkpoint_epoch *entries, uint32_t count, char *buf,
                                size_t buf_bytes);

/* Parses a file's bytes (not modified) into at most entries_max entries.
 * Returns the entry count, -EINVAL (malformed, or more than entries_max)
 * with one line in err. */
int checkpoint_epochs_parse(const char *text, size_t len, struct checkpoint_epoch *entries,
                            uint32_t entries_max, char *err, size_t err_bytes);

/* Replaces dir_fd/leader-epoch-checkpoint atomically. Returns 0 or -errno. */
int checkpoint_epochs_write(int dir_fd, const struct checkpoint_epoch *entries, uint32_t count);

/* ---- .kafka_cleanshutdown ---- */

/* The marker's bytes, {"version":0,"brokerEpoch":<broker_epoch>}, no
 * newline; returns their length. buf has CHECKPOINT_CLEAN_SHUTDOWN_BYTES_MAX. */
size_t checkpoint_clean_shutdown_encode(int64_t broker_epoch, char *buf, size_t buf_bytes);

/* Writes the marker into dir_fd durably. Returns 0 or -errno. */
int checkpoint_clean_shutdown_write(int dir_fd, int64_t broker_epoch);

/*
 * Start-up: whether dir_fd holds the marker, which is then removed and the
 * removal made durable, so that a crash from here on leaves none. Returns
 * 1 (it was there), 0 (it was not), or -errno when it could not be checked
 * or removed (the caller then treats the shutdown as unclean).
 */
int checkpoint_clean_shutdown_take(int dir_fd);

#endif
