/*
 * txn_pset.h - the set of partitions a transaction holds (Kafka's
 * TransactionMetadata.topicPartitions), by topic: for the transaction
 * coordinator's files (coordinator/txn*.c) only. Memory is malloc'd and
 * owned by the set; nothing here is thread-safe, as nothing in a
 * coordinator is.
 */
#ifndef RUNNEL_COORDINATOR_TXN_PSET_H
#define RUNNEL_COORDINATOR_TXN_PSET_H

#include <stdbool.h>
#include <stdint.h>

#include "txn.h"

struct txn_ptopic {
        char *name;                     /* owned, NUL-terminated */
        int32_t name_len;
        int32_t *ids;                   /* sorted, distinct */
        uint32_t count;
        uint32_t cap;
};

struct txn_pset {
        struct txn_ptopic *topics;      /* in insertion order; none has count 0 */
        uint32_t topic_count;
        uint32_t topic_cap;
        uint32_t count;                 /* partitions over all topics */
};

/* Empties s, keeping its memory for reuse. */
void txn_pset_clear(struct txn_pset *s);

/* Frees what s holds; s is empty after. */
void txn_pset_free(struct txn_pset *s);

bool txn_pset_contains(const struct txn_pset *s, struct kstr topic, int32_t id);

/* Adds partition id of topic (a no-op when there); 0 or -ENOMEM. */
int txn_pset_add(struct txn_pset *s, struct kstr topic, int32_t id);

void txn_pset_remove(struct txn_pset *s, struct kstr topic, int32_t id);

/* Adds every partition of from; 0 or -ENOMEM. */
int txn_pset_add_all(struct txn_pset *s, const struct txn_pset *from);

/* The union of a and b (b may be NULL) as request-shaped topics in arena
 * memory, partitions sorted. 0 or -ENOMEM. */
int txn_pset_export(const struct txn_pset *a, const struct txn_pset *b, struct arena *ar,
                    struct txn_topic_partitions **out, int32_t *count_out);

#endif
