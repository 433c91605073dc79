/*
 * producer_ids.c - durable producer id blocks. See producer_ids.h.
 *
 * The file is text, like Kafka's checkpoint files: a version line ("0")
 * and the first id of the next block to take.
 *
 * Invariants (under the mutex): next_id <= block_end <= the mark on disk.
 */
#include "producer_ids.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logdir.h"

struct producer_ids {
        pthread_mutex_t lock;
        int dir_fd;
        int64_t next_id;                /* the next id to return, if below block_end */
        int64_t block_end;              /* one past the block in use; the mark on disk */
};

static int parse_mark(const char *text, int64_t *mark_out)
{
        int version;
        int64_t mark;
        char tail;
        if (sscanf(text, "%d\n%" SCNd64 "%c", &version, &mark, &tail) != 3 || tail != '\n' || version != 0 ||
            mark < 0)
                return -EBADMSG;
        *mark_out = mark;
        return 0;
}

int producer_ids_open(int dir_fd, struct producer_ids **out, char *err, size_t err_bytes)
{
        int64_t mark = 0;
        char *text = NULL;
        size_t len = 0;
        int rc = logdir_read_file(dir_fd, PRODUCER_IDS_FILE, PRODUCER_IDS_FILE_BYTES_MAX, &text, &len);
        if (rc == 0) {
                rc = parse_mark(text, &mark);
                free(text);
                if (rc < 0) {
                        snprintf(err, err_bytes, "%s is damaged (expected \"0\\n<next id>\\n\"); restore it "
                                 "or set it past every producer id in use", PRODUCER_IDS_FILE);
                        return rc;
                }
        } else if (rc != -ENOENT) {
                snprintf(err, err_bytes, "cannot read %s: %s", PRODUCER_IDS_FILE, strerror(-rc));
                return rc;
        }
        struct producer_ids *ids = calloc(1, sizeof(*ids));
        if (!ids) {
                snprintf(err, err_bytes, "out of memory");
                return -ENOMEM;
        }
        pthread_mutex_init(&ids->lock, NULL);
        ids->dir_fd = dir_fd;
        ids->next_id = mark;
        ids->block_end = mark;          /* no block taken yet in this run */
        *out = ids;
        return 0;
}

void producer_ids_close(struct producer_ids *ids)
{
        if (!ids)
                return;
        pthread_mutex_destroy(&ids->lock);
        free(ids);
}

/* Records that ids below new_end are taken. */
static int write_mark(int dir_fd, int64_t new_end)
{
        char text[64];
        int n = snprintf(text, sizeof(text), "0\n%" PRId64 "\n", new_end);
        return logdir_write_file_atomic(dir_fd, PRODUCER_IDS_FILE, text, (size_t)n);
}

int producer_ids_next(struct producer_ids *ids, int64_t *id_out)
{
        int rc = 0;
        pthread_mutex_lock(&ids->lock);
        if (ids->next_id >= ids->block_end) {
                if (ids->block_end > INT64_MAX - PRODUCER_IDS_BLOCK_SIZE) {
                        rc = -EOVERFLOW;
                        goto out;
                }
                int64_t new_end = ids->block_end + PRODUCER_IDS_BLOCK_SIZE;
                rc = write_mark(ids->dir_fd, new_end);
                if (rc < 0)
                        goto out;
                ids->next_id = ids->block_end;
                ids->block_end = new_end;
        }
        *id_out = ids->next_id++;
out:
        pthread_mutex_unlock(&ids->lock);
        return rc;
}
