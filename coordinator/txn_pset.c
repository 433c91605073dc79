/*
 * txn_pset.c - the partitions of a transaction, by topic: a small set kept
 * sorted per topic, in the order topics were added (txn_pset.h).
 */
#include "txn_pset.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void txn_pset_clear(struct txn_pset *s)
{
        for (uint32_t i = 0; i < s->topic_count; i++) {
                free(s->topics[i].name);
                free(s->topics[i].ids);
        }
        s->topic_count = 0;
        s->count = 0;
}

void txn_pset_free(struct txn_pset *s)
{
        txn_pset_clear(s);
        free(s->topics);
        memset(s, 0, sizeof(*s));
}

static struct txn_ptopic *txn_pset_find_topic(const struct txn_pset *s, struct kstr topic)
{
        for (uint32_t i = 0; i < s->topic_count; i++)
                if (kstr_eq((struct kstr){ s->topics[i].name, s->topics[i].name_len }, topic))
                        return &s->topics[i];
        return NULL;
}

/* The index of id in t, or where it goes (*found false). */
static uint32_t ptopic_search(const struct txn_ptopic *t, int32_t id, bool *found)
{
        uint32_t lo = 0, hi = t->count;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (t->ids[mid] < id)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < t->count && t->ids[lo] == id;
        return lo;
}

bool txn_pset_contains(const struct txn_pset *s, struct kstr topic, int32_t id)
{
        const struct txn_ptopic *t = txn_pset_find_topic(s, topic);
        bool found = false;
        if (t)
                ptopic_search(t, id, &found);
        return found;
}

/* Adds (topic, id); 0 (also when present) or -ENOMEM. */
int txn_pset_add(struct txn_pset *s, struct kstr topic, int32_t id)
{
        assert(topic.len >= 0);
        struct txn_ptopic *t = txn_pset_find_topic(s, topic);
        if (!t) {
                if (s->topic_count == s->topic_cap) {
                        uint32_t cap = s->topic_cap ? s->topic_cap * 2 : 4;
                        struct txn_ptopic *topics = realloc(s->topics, cap * sizeof(*topics));
                        if (!topics)
                                return -ENOMEM;
                        s->topics = topics;
                        s->topic_cap = cap;
                }
                char *name = malloc((size_t)topic.len + 1);
                if (!name)
                        return -ENOMEM;
                memcpy(name, topic.ptr, (size_t)topic.len);
                name[topic.len] = '\0';
                t = &s->topics[s->topic_count++];
                *t = (struct txn_ptopic){ .name = name, .name_len = topic.len };
        }
        bool found;
        uint32_t at = ptopic_search(t, id, &found);
        if (found)
                return 0;
        if (t->count == t->cap) {
                uint32_t cap = t->cap ? t->cap * 2 : 4;
                int32_t *ids = realloc(t->ids, cap * sizeof(*ids));
                if (!ids) {
                        if (t->count == 0) {    /* a topic just made: undo it */
                                free(t->name);
                                s->topic_count--;
                        }
                        return -ENOMEM;
                }
                t->ids = ids;
                t->cap = cap;
        }
        memmove(&t->ids[at + 1], &t->ids[at], (t->count - at) * sizeof(*t->ids));
        t->ids[at] = id;
        t->count++;
        s->count++;
        return 0;
}

void txn_pset_remove(struct txn_pset *s, struct kstr topic, int32_t id)
{
        struct txn_ptopic *t = txn_pset_find_topic(s, topic);
        bool found = false;
        uint32_t at = t ? ptopic_search(t, id, &found) : 0;
        if (!found)
                return;
        memmove(&t->ids[at], &t->ids[at + 1], (t->count - at - 1) * sizeof(*t->ids));
        t->count--;
        s->count--;
        if (t->count == 0) {
                free(t->name);
                free(t->ids);
                uint32_t i = (uint32_t)(t - s->topics);
                memmove(&s->topics[i], &s->topics[i + 1], (s->topic_count - i - 1) * sizeof(*t));
                s->topic_count--;
        }
}

/* Adds every partition of from; 0 or -ENOMEM (s then holds some of them). */
int txn_pset_add_all(struct txn_pset *s, const struct txn_pset *from)
{
        for (uint32_t i = 0; i < from->topic_count; i++) {
                const struct txn_ptopic *t = &from->topics[i];
                for (uint32_t j = 0; j < t->count; j++) {
                        int rc = txn_pset_add(s, (struct kstr){ t->name, t->name_len }, t->ids[j]);
                        if (rc < 0)
                                return rc;
                }
        }
        return 0;
}

static int cmp_int32(const void *a, const void *b)
{
        int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
        return (x > y) - (x < y);
}

/* The union of a and b (b may be NULL) as request-shaped topics in arena
 * memory, partitions sorted. 0 or -ENOMEM. */
int txn_pset_export(const struct txn_pset *a, const struct txn_pset *b, struct arena *ar,
                    struct txn_topic_partitions **out, int32_t *count_out)
{
        uint32_t max = a->topic_count + (b ? b->topic_count : 0);
        struct txn_topic_partitions *topics = arena_calloc(ar, max ? max : 1, sizeof(*topics));
        if (!topics)
                return -ENOMEM;
        uint32_t n = 0;
        for (int pass = 0; pass < 2; pass++) {
                const struct txn_pset *s = pass == 0 ? a : b;
                for (uint32_t i = 0; s && i < s->topic_count; i++) {
                        const struct txn_ptopic *t = &s->topics[i];
                        struct kstr name = { t->name, t->name_len };
                        if (pass == 1 && txn_pset_find_topic(a, name))
                                continue;       /* merged in pass 0 */
                        const struct txn_ptopic *other = pass == 0 && b ? txn_pset_find_topic(b, name) : NULL;
                        uint32_t count = t->count + (other ? other->count : 0);
                        int32_t *ids = arena_alloc(ar, count * sizeof(*ids));
                        char *copy = arena_dup(ar, t->name, (size_t)t->name_len + 1);
                        if (!ids || !copy)
                                return -ENOMEM;
                        memcpy(ids, t->ids, t->count * sizeof(*ids));
                        if (other) {
                                memcpy(ids + t->count, other->ids, other->count * sizeof(*ids));
                                qsort(ids, count, sizeof(*ids), cmp_int32);
                        }
                        topics[n++] = (struct txn_topic_partitions){ { copy, t->name_len }, (int32_t)count, ids };
                }
        }
        *out = topics;
        *count_out = (int32_t)n;
        return 0;
}
