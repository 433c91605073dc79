/*
 * cleaner_swap.c - the cleaner's files on disk (cleaner.h): names with a
 * tail (`.cleaned`, `.swap`), the swap's renames in Kafka's order, the
 * recovery of an interrupted swap at open, and cleaner-offset-checkpoint.
 *
 * The order that makes a swap crash-safe: a cleaned segment is written
 * and synced whole under `.cleaned` names; its index files, then its
 * .log, are renamed to `.swap` and the directory synced (the commit
 * point: a `<base>.log.swap` exists); the replaced segments' files are
 * removed and the directory synced; the `.swap` files take their final
 * names, the .log last, and the directory is synced. A start finds either
 * `.cleaned` files (deleted: the old segments are whole) or `.log.swap`
 * files (the swap is finished: every segment with a base offset in [the
 * least swap base, the greatest swap next offset) deleted, as Kafka's
 * LogLoader does, the `.swap` files renamed). Groups commit in offset
 * order, each rename made durable before the next, so the swaps a crash
 * leaves are always a prefix of the job's groups.
 *
 * Blocking file I/O, called by a partition's home thread (swap, recovery)
 * or a cleaner thread (discarding a failed job's files); the checkpoint is
 * read and rewritten under one lock for the process.
 */
#include "cleaner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../protocol/record_batch.h"
#include "checkpoint.h"
#include "offset_index.h"
#include "segment.h"
#include "time_index.h"

/* Files one directory listing may hold that recovery looks at. */
#define CLEANER_DIR_ENTRIES_MAX 1000000u

static const char *const segment_suffixes[] = {
        OFFSET_INDEX_FILE_SUFFIX, TIME_INDEX_FILE_SUFFIX, TXN_INDEX_FILE_SUFFIX, SEGMENT_LOG_FILE_SUFFIX,
};
#define SEGMENT_SUFFIX_COUNT (sizeof(segment_suffixes) / sizeof(segment_suffixes[0]))

void cleaner_unlink_files(const struct logdir_ref *dir, int64_t base, const char *tail)
{
        char name[SEGMENT_FILE_NAME_BYTES];
        for (size_t i = 0; i < SEGMENT_SUFFIX_COUNT; i++) {
                segment_file_name_tail(name, base, segment_suffixes[i], tail);
                (void)logdir_ref_unlink(dir, name);
        }
}


void cleaner_discard_files(struct cleaner_job *job)
{
        for (uint32_t i = 0; i < job->group_count; i++)
                cleaner_unlink_files(job->dir, job->groups[i].base_offset, CLEANER_CLEANED_TAIL);
}

/* ---- swap and recovery ---- */

static int rename_in(const struct logdir_ref *dir, int dir_fd, int64_t base, const char *suffix, const char *from_tail,
                     const char *to_tail)
{
        char from[SEGMENT_FILE_NAME_BYTES], to[SEGMENT_FILE_NAME_BYTES];
        (void)dir;
        segment_file_name_tail(from, base, suffix, from_tail);
        segment_file_name_tail(to, base, suffix, to_tail);
        if (renameat(dir_fd, from, dir_fd, to) < 0)
                return -errno;
        return 0;
}

/* Renames the four files (the .log last; a missing index is fine: it is
 * rebuilt at open), and fsyncs the directory when is_synced. */
static int rename_group(const struct logdir_ref *dir, int64_t base, const char *from_tail, const char *to_tail,
                        bool is_synced)
{
        int dir_fd = logdir_ref_open(dir);
        if (dir_fd < 0)
                return dir_fd;
        int rc = 0;
        for (size_t i = 0; i < SEGMENT_SUFFIX_COUNT && rc == 0; i++) {
                rc = rename_in(dir, dir_fd, base, segment_suffixes[i], from_tail, to_tail);
                bool is_log = i + 1 == SEGMENT_SUFFIX_COUNT;
                if (rc == -ENOENT && !is_log)
                        rc = 0;
        }
        if (rc == 0 && is_synced && fsync(dir_fd) < 0)
                rc = -errno;
        close(dir_fd);
        return rc;
}

int cleaner_commit_group(const struct logdir_ref *dir, const struct cleaner_group *g, bool is_synced)
{
        /* An index .swap left by an earlier commit that failed would be
         * renamed into place with this group when this one has no such
         * index (a stale .txnindex makes committed data look aborted):
         * none is left before, nor after a failure. */
        cleaner_unlink_files(dir, g->base_offset, CLEANER_SWAP_TAIL);
        int rc = rename_group(dir, g->base_offset, CLEANER_CLEANED_TAIL, CLEANER_SWAP_TAIL, is_synced);
        if (rc < 0)
                cleaner_unlink_files(dir, g->base_offset, CLEANER_SWAP_TAIL);
        return rc;
}

int cleaner_finish_group(const struct logdir_ref *dir, int64_t base_offset, bool is_synced)
{
        return rename_group(dir, base_offset, CLEANER_SWAP_TAIL, "", is_synced);
}

void cleaner_unlink_segment(const struct logdir_ref *dir, int64_t base_offset)
{
        cleaner_unlink_files(dir, base_offset, "");
}

/* The next offset of a .log.swap: one past its last whole batch. */
static int swap_next_offset(const struct logdir_ref *dir, int64_t base, int64_t *out)
{
        char name[SEGMENT_FILE_NAME_BYTES];
        segment_file_name_tail(name, base, SEGMENT_LOG_FILE_SUFFIX, CLEANER_SWAP_TAIL);
        int fd = logdir_ref_openat(dir, name, O_RDONLY, 0);
        if (fd < 0)
                return fd;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int rc = -errno;
                close(fd);
                return rc;
        }
        uint64_t size = (uint64_t)st.st_size, position = 0;
        *out = base;
        for (uint64_t guard = 0; guard <= size / RECORD_BATCH_HEADER_BYTES && position < size; guard++) {
                uint8_t hb[RECORD_BATCH_HEADER_BYTES];
                ssize_t n = pread(fd, hb, sizeof(hb), (off_t)position);
                struct record_batch_header h;
                if (n < (ssize_t)sizeof(hb) ||
                    record_batch_parse_header(hb, (size_t)n, &h) != RECORD_BATCH_FRAME_OK ||
                    position + record_batch_size_bytes(&h) > size)
                        break;
                *out = record_batch_next_offset(&h);
                position += record_batch_size_bytes(&h);
        }
        close(fd);
        return 0;
}

static bool parse_base(const char *name, int64_t *base_out, const char **rest_out)
{
        if (strlen(name) < 21)
                return false;
        for (int i = 0; i < 20; i++)
                if (name[i] < '0' || name[i] > '9')
                        return false;
        char *end;
        long long v = strtoll(name, &end, 10);
        if (end != name + 20 || v < 0)
                return false;
        *base_out = v;
        *rest_out = name + 20;
        return true;
}

struct dir_names {
        int64_t *log_bases;             /* `<base>.log` */
        uint32_t log_count, log_cap;
        int64_t *swap_bases;            /* `<base>.log.swap` */
        uint32_t swap_count, swap_cap;
};

int cleaner_recover_dir(const struct logdir_ref *dir)
{
        struct dir_names n = { 0 };
        int finished = 0;
        int fd = logdir_ref_open(dir);
        if (fd < 0)
                return fd;
        DIR *d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -errno;
        }
        int rc = 0;
        struct dirent *e;
        /* A listing first: names are removed only after it. */
        char **doomed = NULL;
        uint32_t doomed_count = 0, doomed_cap = 0;
        for (uint32_t guard = 0; guard < CLEANER_DIR_ENTRIES_MAX && (e = readdir(d)); guard++) {
                int64_t base;
                const char *rest;
                if (!parse_base(e->d_name, &base, &rest))
                        continue;
                if (strcmp(rest, ".log") == 0) {
                        if ((rc = cleaner_grow((void **)&n.log_bases, &n.log_cap, n.log_count, sizeof(int64_t))) < 0)
                                break;
                        n.log_bases[n.log_count++] = base;
                } else if (strcmp(rest, ".log" CLEANER_SWAP_TAIL) == 0) {
                        if ((rc = cleaner_grow((void **)&n.swap_bases, &n.swap_cap, n.swap_count, sizeof(int64_t))) < 0)
                                break;
                        n.swap_bases[n.swap_count++] = base;
                } else if (logdir_has_suffix(rest, CLEANER_CLEANED_TAIL) ||
                           logdir_has_suffix(rest, CLEANER_DELETED_TAIL) ||
                           logdir_has_suffix(rest, CLEANER_SWAP_TAIL)) {
                        /* Index .swap files are kept when their .log.swap is there (checked below). */
                        if ((rc = cleaner_grow((void **)&doomed, &doomed_cap, doomed_count, sizeof(char *))) < 0)
                                break;
                        doomed[doomed_count] = strdup(e->d_name);
                        if (!doomed[doomed_count]) {
                                rc = -ENOMEM;
                                break;
                        }
                        doomed_count++;
                }
        }
        closedir(d);
        for (uint32_t i = 0; rc == 0 && i < doomed_count; i++) {
                int64_t base;
                const char *rest;
                bool is_kept_swap = false;
                if (parse_base(doomed[i], &base, &rest) && logdir_has_suffix(rest, CLEANER_SWAP_TAIL))
                        for (uint32_t k = 0; k < n.swap_count; k++)
                                if (n.swap_bases[k] == base)
                                        is_kept_swap = true;
                if (is_kept_swap)
                        continue;
                log_info("%s: deleting %s, left by an interrupted cleaning", dir->name, doomed[i]);
                (void)logdir_ref_unlink(dir, doomed[i]);
        }
        /* Kafka's LogLoader: every segment with a base offset in [the
         * least swap base, the greatest swap next offset) goes, across all
         * swaps, not per swap. A group whose last sources lost every record
         * ends below their bases, yet they were replaced: kept, their old
         * values would come back while a later group's tombstone is gone. */
        int64_t range_start = INT64_MAX, range_end = INT64_MIN;
        for (uint32_t k = 0; rc == 0 && k < n.swap_count; k++) {
                int64_t base = n.swap_bases[k], next = base;
                rc = swap_next_offset(dir, base, &next);
                if (rc < 0)
                        break;
                if (base < range_start)
                        range_start = base;
                if (next > range_end)
                        range_end = next;
        }
        for (uint32_t i = 0; rc == 0 && i < n.log_count; i++) {
                int64_t b = n.log_bases[i];
                bool is_swap_base = false;
                for (uint32_t k = 0; k < n.swap_count; k++)
                        is_swap_base = is_swap_base || n.swap_bases[k] == b;
                if (is_swap_base || (b >= range_start && b < range_end)) {
                        log_info("%s: deleting segment %020" PRId64 ", replaced by the cleaned segments of an "
                                 "interrupted swap", dir->name, b);
                        cleaner_unlink_segment(dir, b);
                }
        }
        /* Then the swaps' files take their names. */
        for (uint32_t k = 0; rc == 0 && k < n.swap_count; k++) {
                rc = cleaner_finish_group(dir, n.swap_bases[k], true);
                if (rc == 0)
                        finished++;
        }
        if (rc == 0 && doomed_count > 0)
                rc = logdir_ref_fsync(dir);
        for (uint32_t i = 0; i < doomed_count; i++)
                free(doomed[i]);
        free(doomed);
        free(n.log_bases);
        free(n.swap_bases);
        return rc < 0 ? rc : finished;
}

/* ---- cleaner-offset-checkpoint ---- */

static pthread_mutex_t checkpoint_lock = PTHREAD_MUTEX_INITIALIZER;

int cleaner_checkpoint_read(int logdir_fd, const char *topic, int32_t partition, int64_t *offset_out)
{
        struct checkpoint_offsets c = { 0 };
        char err[200];
        pthread_mutex_lock(&checkpoint_lock);
        int rc = checkpoint_offsets_read(logdir_fd, CLEANER_CHECKPOINT_FILE, &c, err, sizeof(err));
        pthread_mutex_unlock(&checkpoint_lock);
        if (rc == -EINVAL) {
                log_warn("%s: %s; every compacted partition of this log dir is cleaned from its start",
                         CLEANER_CHECKPOINT_FILE, err);
                return -ENOENT;
        }
        if (rc < 0)
                return rc;
        const struct checkpoint_offset *e = checkpoint_offsets_find(&c, topic, partition);
        rc = -ENOENT;
        if (e) {
                *offset_out = e->offset;
                rc = 0;
        }
        checkpoint_offsets_free(&c);
        return rc;
}

int cleaner_checkpoint_update(int logdir_fd, const char *topic, int32_t partition, int64_t offset)
{
        struct checkpoint_offsets c = { 0 };
        char err[200];
        pthread_mutex_lock(&checkpoint_lock);
        int rc = checkpoint_offsets_read(logdir_fd, CLEANER_CHECKPOINT_FILE, &c, err, sizeof(err));
        if (rc == -ENOENT || rc == -EINVAL)
                rc = 0;         /* written anew */
        if (rc < 0)
                goto out;
        struct checkpoint_offset *v = calloc(c.count + 1, sizeof(*v));
        if (!v) {
                rc = -ENOMEM;
                goto out;
        }
        uint32_t n = 0;
        for (uint32_t i = 0; i < c.count; i++)
                if (c.entries[i].partition != partition || strcmp(c.entries[i].topic, topic) != 0)
                        v[n++] = c.entries[i];
        if (offset < 0 && n == c.count) {
                free(v);        /* nothing to remove: the file stays as it is */
                goto out;
        }
        if (offset >= 0)
                v[n++] = (struct checkpoint_offset){ topic, partition, offset };
        rc = checkpoint_offsets_write(logdir_fd, CLEANER_CHECKPOINT_FILE, v, n);
        free(v);
out:
        checkpoint_offsets_free(&c);
        pthread_mutex_unlock(&checkpoint_lock);
        return rc;
}

