/*
 * offsets.c - committed offsets: records, the in-memory store, expiry and
 * replay. See offsets.h for the contract.
 *
 * The store nests as Kafka's does: a table of groups, each with a table of
 * topics, each with its partitions' offsets in an array sorted by
 * partition index. Both tables are chained hash tables keyed by name
 * (FNV-1a), doubling when their load passes 1. Every group and topic node
 * carries its name in the same allocation.
 *
 * Invariants (checked by store_check_group in debug builds):
 *   - a group node exists iff it has offsets or writes in flight;
 *   - a topic node exists iff it has at least one offset;
 *   - group->offset_count is the sum of its topics' counts, and
 *     store->offset_count the sum over groups;
 *   - a topic's slots are sorted by partition, without duplicates;
 *   - a slot's metadata is its own malloc'd copy (NULL when empty).
 */
#include "offsets.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../log/partition.h"
#include "../protocol/gen/group_metadata_key.h"
#include "../protocol/gen/offset_commit_key.h"
#include "../protocol/gen/offset_commit_value.h"
#include "../protocol/record_batch.h"
#include "batch_build.h"
#include "version_prefixed.h"

/* ---- name tables ---- */

struct name_node {
        struct name_node *next;
        uint64_t hash;
        const char *name;               /* NUL-terminated, in the node's allocation */
        int32_t name_len;
};

struct name_table {
        struct name_node **buckets;
        uint32_t bucket_count;          /* a power of two, or 0 before the first insert */
        uint32_t count;
};

#define NAME_TABLE_BUCKETS_MIN 8u
#define NAME_TABLE_BUCKETS_MAX (1u << 30)

static uint64_t name_hash(struct kstr name)
{
        uint64_t h = 1469598103934665603ULL;
        for (int32_t i = 0; i < name.len; i++)
                h = (h ^ (uint8_t)name.ptr[i]) * 1099511628211ULL;
        return h;
}

static struct name_node *name_table_find(const struct name_table *t, struct kstr name, uint64_t hash)
{
        if (t->bucket_count == 0)
                return NULL;
        for (struct name_node *n = t->buckets[hash & (t->bucket_count - 1)]; n; n = n->next)
                if (n->hash == hash && n->name_len == name.len && memcmp(n->name, name.ptr, (size_t)name.len) == 0)
                        return n;
        return NULL;
}

/* Doubles the buckets; failing to is harmless (chains grow longer). */
static void name_table_grow(struct name_table *t)
{
        if (t->bucket_count >= NAME_TABLE_BUCKETS_MAX)
                return;
        uint32_t count = t->bucket_count * 2;
        struct name_node **b = calloc(count, sizeof(*b));
        if (!b)
                return;
        for (uint32_t i = 0; i < t->bucket_count; i++) {
                struct name_node *n = t->buckets[i];
                while (n) {
                        struct name_node *next = n->next;
                        n->next = b[n->hash & (count - 1)];
                        b[n->hash & (count - 1)] = n;
                        n = next;
                }
        }
        free(t->buckets);
        t->buckets = b;
        t->bucket_count = count;
}

/* Links a node whose name is not in the table yet. 0 or -ENOMEM. */
static int name_table_insert(struct name_table *t, struct name_node *n)
{
        if (t->bucket_count == 0) {
                t->buckets = calloc(NAME_TABLE_BUCKETS_MIN, sizeof(*t->buckets));
                if (!t->buckets)
                        return -ENOMEM;
                t->bucket_count = NAME_TABLE_BUCKETS_MIN;
        } else if (t->count >= t->bucket_count) {
                name_table_grow(t);
        }
        struct name_node **head = &t->buckets[n->hash & (t->bucket_count - 1)];
        n->next = *head;
        *head = n;
        t->count++;
        return 0;
}

static void name_table_remove(struct name_table *t, struct name_node *n)
{
        assert(t->bucket_count > 0 && t->count > 0);
        struct name_node **pp = &t->buckets[n->hash & (t->bucket_count - 1)];
        while (*pp != n) {
                assert(*pp);
                pp = &(*pp)->next;
        }
        *pp = n->next;
        n->next = NULL;
        t->count--;
}

static void name_table_free(struct name_table *t)
{
        free(t->buckets);
        t->buckets = NULL;
        t->bucket_count = 0;
        t->count = 0;
}

/* Allocates size bytes for a node type starting with a name_node, with
 * the name copied behind it. */
static void *name_node_alloc(size_t size, struct kstr name, uint64_t hash)
{
        assert(name.len >= 0);
        char *mem = malloc(size + (size_t)name.len + 1);
        if (!mem)
                return NULL;
        memset(mem, 0, size);
        char *copy = mem + size;
        memcpy(copy, name.ptr, (size_t)name.len);
        copy[name.len] = '\0';
        struct name_node *n = (struct name_node *)(void *)mem;
        n->hash = hash;
        n->name = copy;
        n->name_len = name.len;
        return mem;
}

static struct kstr name_node_str(const struct name_node *n)
{
        return (struct kstr){ n->name, n->name_len };
}

/* ---- the store's nodes ---- */

struct offsets_slot {
        int32_t partition;
        struct offsets_value value;     /* metadata points at metadata_copy, or "" */
        char *metadata_copy;
};

struct offsets_topic {
        struct name_node node;          /* first: the table links this */
        struct offsets_slot *slots;     /* sorted by partition */
        uint32_t count;
        uint32_t cap;
};

struct offsets_group {
        struct name_node node;          /* first */
        struct name_table topics;
        uint32_t offset_count;
        uint32_t write_count;           /* writes in flight */
        uint32_t txn_count;             /* open transactions with pending offsets of the group */
};

/* One open transaction's pending offsets: Kafka's
 * pendingTransactionalOffsets entry of a producer id. */
struct offsets_txn {
        int64_t producer_id;
        struct offsets_store *pending;  /* a store of its own; its txns stay empty */
};

struct offsets_store {
        struct name_table groups;
        uint64_t offset_count;
        struct offsets_txn *txns;       /* unordered */
        uint32_t txn_count;
        uint32_t txn_cap;
};

static struct offsets_group *store_find_group(const struct offsets_store *s, struct kstr group)
{
        return (struct offsets_group *)(void *)name_table_find(&s->groups, group, name_hash(group));
}

static struct offsets_topic *group_find_topic(const struct offsets_group *g, struct kstr topic)
{
        return (struct offsets_topic *)(void *)name_table_find(&g->topics, topic, name_hash(topic));
}

/* The index of partition in t's slots, or where it would go (*found false). */
static uint32_t topic_search(const struct offsets_topic *t, int32_t partition, bool *found)
{
        uint32_t lo = 0, hi = t->count;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (t->slots[mid].partition < partition)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < t->count && t->slots[lo].partition == partition;
        return lo;
}

static void slot_release(struct offsets_slot *slot)
{
        free(slot->metadata_copy);
        slot->metadata_copy = NULL;
}

static void topic_free(struct offsets_topic *t)
{
        for (uint32_t i = 0; i < t->count; i++)
                slot_release(&t->slots[i]);
        free(t->slots);
        free(t);
}

static void group_free(struct offsets_group *g)
{
        for (uint32_t b = 0; b < g->topics.bucket_count; b++) {
                struct name_node *n = g->topics.buckets[b];
                while (n) {
                        struct name_node *next = n->next;
                        topic_free((struct offsets_topic *)(void *)n);
                        n = next;
                }
        }
        name_table_free(&g->topics);
        free(g);
}

#ifndef NDEBUG
static void store_check_group(const struct offsets_group *g)
{
        uint32_t total = 0;
        for (uint32_t b = 0; b < g->topics.bucket_count; b++) {
                for (const struct name_node *n = g->topics.buckets[b]; n; n = n->next) {
                        const struct offsets_topic *t = (const struct offsets_topic *)(const void *)n;
                        assert(t->count > 0 && t->count <= t->cap);
                        for (uint32_t i = 1; i < t->count; i++)
                                assert(t->slots[i - 1].partition < t->slots[i].partition);
                        total += t->count;
                }
        }
        assert(total == g->offset_count);
        assert(g->offset_count > 0 || g->write_count > 0 || g->txn_count > 0);
}
#else
static void store_check_group(const struct offsets_group *g)
{
        (void)g;
}
#endif

/* Drops a group that has no offsets, writes in flight nor pending
 * transactional offsets. */
static void store_maybe_drop_group(struct offsets_store *s, struct offsets_group *g)
{
        if (g->offset_count > 0 || g->write_count > 0 || g->txn_count > 0) {
                store_check_group(g);
                return;
        }
        assert(g->topics.count == 0);
        name_table_remove(&s->groups, &g->node);
        group_free(g);
}

static struct offsets_group *store_get_or_add_group(struct offsets_store *s, struct kstr group)
{
        uint64_t hash = name_hash(group);
        struct offsets_group *g = (struct offsets_group *)(void *)name_table_find(&s->groups, group, hash);
        if (g)
                return g;
        g = name_node_alloc(sizeof(*g), group, hash);
        if (!g)
                return NULL;
        if (name_table_insert(&s->groups, &g->node) < 0) {
                free(g);
                return NULL;
        }
        return g;
}

struct offsets_store *offsets_store_create(void)
{
        return calloc(1, sizeof(struct offsets_store));
}

void offsets_store_destroy(struct offsets_store *s)
{
        if (!s)
                return;
        for (uint32_t b = 0; b < s->groups.bucket_count; b++) {
                struct name_node *n = s->groups.buckets[b];
                while (n) {
                        struct name_node *next = n->next;
                        group_free((struct offsets_group *)(void *)n);
                        n = next;
                }
        }
        name_table_free(&s->groups);
        for (uint32_t i = 0; i < s->txn_count; i++)
                offsets_store_destroy(s->txns[i].pending);
        free(s->txns);
        free(s);
}

const struct offsets_value *offsets_store_get(const struct offsets_store *s, struct kstr group,
                                              struct kstr topic, int32_t partition)
{
        const struct offsets_group *g = store_find_group(s, group);
        if (!g)
                return NULL;
        const struct offsets_topic *t = group_find_topic(g, topic);
        if (!t)
                return NULL;
        bool found;
        uint32_t i = topic_search(t, partition, &found);
        return found ? &t->slots[i].value : NULL;
}

static int store_put(struct offsets_store *s, const struct offsets_write *w)
{
        assert(!w->is_tombstone && w->value.metadata.len >= 0);
        char *metadata = NULL;
        if (w->value.metadata.len > 0) {
                metadata = malloc((size_t)w->value.metadata.len);
                if (!metadata)
                        return -ENOMEM;
                memcpy(metadata, w->value.metadata.ptr, (size_t)w->value.metadata.len);
        }
        struct offsets_group *g = store_get_or_add_group(s, w->group);
        if (!g)
                goto out_free_metadata;
        uint64_t topic_hash = name_hash(w->topic);
        struct offsets_topic *t = (struct offsets_topic *)(void *)name_table_find(&g->topics, w->topic, topic_hash);
        bool is_new_topic = t == NULL;
        if (is_new_topic) {
                t = name_node_alloc(sizeof(*t), w->topic, topic_hash);
                if (!t)
                        goto out_drop_group;
        }
        bool found;
        uint32_t at = topic_search(t, w->partition, &found);
        if (!found && t->count == t->cap) {
                uint32_t cap = t->cap ? t->cap * 2 : 4;
                struct offsets_slot *slots = realloc(t->slots, cap * sizeof(*slots));
                if (!slots)
                        goto out_free_topic;
                t->slots = slots;
                t->cap = cap;
        }
        if (is_new_topic && name_table_insert(&g->topics, &t->node) < 0)
                goto out_free_topic;

        struct offsets_slot *slot = &t->slots[at];
        if (found) {
                slot_release(slot);
        } else {
                memmove(slot + 1, slot, (t->count - at) * sizeof(*slot));
                t->count++;
                g->offset_count++;
                s->offset_count++;
        }
        slot->partition = w->partition;
        slot->value = w->value;
        slot->metadata_copy = metadata;
        slot->value.metadata = (struct kstr){ metadata ? metadata : "", w->value.metadata.len };
        store_check_group(g);
        return 0;

out_free_topic:
        if (is_new_topic) {
                free(t->slots);
                free(t);
        }
out_drop_group:
        store_maybe_drop_group(s, g);
out_free_metadata:
        free(metadata);
        return -ENOMEM;
}

static void store_remove(struct offsets_store *s, const struct offsets_write *w)
{
        struct offsets_group *g = store_find_group(s, w->group);
        if (!g)
                return;
        struct offsets_topic *t = group_find_topic(g, w->topic);
        if (!t)
                return;
        bool found;
        uint32_t at = topic_search(t, w->partition, &found);
        if (!found)
                return;
        slot_release(&t->slots[at]);
        memmove(&t->slots[at], &t->slots[at + 1], (t->count - at - 1) * sizeof(t->slots[0]));
        t->count--;
        assert(g->offset_count > 0 && s->offset_count > 0);
        g->offset_count--;
        s->offset_count--;
        if (t->count == 0) {
                name_table_remove(&g->topics, &t->node);
                topic_free(t);
        }
        store_maybe_drop_group(s, g);
}

/* A tombstone also deletes the partition's pending offsets in every open
 * transaction (OffsetMetadataManager.replay of a null value). */
static void store_remove_pending(struct offsets_store *s, const struct offsets_write *w)
{
        struct offsets_group *g = store_find_group(s, w->group);
        if (!g || g->txn_count == 0)
                return;
        for (uint32_t i = 0; i < s->txn_count; i++) {
                struct offsets_store *pending = s->txns[i].pending;
                if (!store_find_group(pending, w->group))
                        continue;
                store_remove(pending, w);
                if (!store_find_group(pending, w->group)) {
                        assert(g->txn_count > 0);
                        g->txn_count--;
                }
        }
        store_maybe_drop_group(s, g);
}

int offsets_store_apply(struct offsets_store *s, const struct offsets_write *w)
{
        assert(w->group.len >= 0 && w->topic.len >= 0);
        if (w->is_tombstone) {
                store_remove_pending(s, w);
                store_remove(s, w);
                return 0;
        }
        return store_put(s, w);
}

/* ---- transactional offsets ---- */

static struct offsets_txn *store_find_txn(const struct offsets_store *s, int64_t producer_id)
{
        for (uint32_t i = 0; i < s->txn_count; i++)
                if (s->txns[i].producer_id == producer_id)
                        return &s->txns[i];
        return NULL;
}

int offsets_store_stage(struct offsets_store *s, int64_t producer_id, const struct offsets_write *w)
{
        assert(!w->is_tombstone && producer_id >= 0 && w->group.len >= 0 && w->topic.len >= 0);
        struct offsets_group *g = store_get_or_add_group(s, w->group);
        if (!g)
                return -ENOMEM;
        struct offsets_txn *t = store_find_txn(s, producer_id);
        bool is_new_txn = t == NULL;
        if (is_new_txn) {
                if (s->txn_count == s->txn_cap) {
                        uint32_t cap = s->txn_cap ? s->txn_cap * 2 : 4;
                        struct offsets_txn *txns = cap > s->txn_cap ? realloc(s->txns, cap * sizeof(*txns)) : NULL;
                        if (!txns)
                                goto out_drop_group;
                        s->txns = txns;
                        s->txn_cap = cap;
                }
                struct offsets_store *pending = offsets_store_create();
                if (!pending)
                        goto out_drop_group;
                t = &s->txns[s->txn_count++];
                t->producer_id = producer_id;
                t->pending = pending;
        }
        bool had_group = store_find_group(t->pending, w->group) != NULL;
        if (store_put(t->pending, w) < 0) {
                if (is_new_txn) {
                        offsets_store_destroy(t->pending);
                        s->txn_count--;
                }
                goto out_drop_group;
        }
        if (!had_group)
                g->txn_count++;
        store_check_group(g);
        return 0;

out_drop_group:
        store_maybe_drop_group(s, g);
        return -ENOMEM;
}

/* Commits one group's pending offsets: each replaces the committed offset
 * unless that one was written later in the log (Kafka keeps the most
 * recent record when transactional and plain commits mix). */
static int txn_commit_group(struct offsets_store *s, const struct offsets_group *pg)
{
        int rc = 0;
        struct kstr group = name_node_str(&pg->node);
        for (uint32_t b = 0; b < pg->topics.bucket_count; b++) {
                for (const struct name_node *n = pg->topics.buckets[b]; n; n = n->next) {
                        const struct offsets_topic *t = (const struct offsets_topic *)(const void *)n;
                        for (uint32_t i = 0; i < t->count; i++) {
                                struct offsets_write w = {
                                        .group = group,
                                        .topic = name_node_str(n),
                                        .partition = t->slots[i].partition,
                                        .value = t->slots[i].value,
                                };
                                const struct offsets_value *now = offsets_store_get(s, w.group, w.topic, w.partition);
                                if (now && now->record_offset >= w.value.record_offset)
                                        continue;
                                if (store_put(s, &w) < 0)
                                        rc = -ENOMEM;
                        }
                }
        }
        return rc;
}

int offsets_store_end_txn(struct offsets_store *s, int64_t producer_id, bool is_commit,
                          void (*fn)(void *ctx, struct kstr group), void *ctx)
{
        struct offsets_txn *t = store_find_txn(s, producer_id);
        if (!t)
                return 0;
        struct offsets_store *pending = t->pending;
        *t = s->txns[--s->txn_count];
        int rc = 0;
        for (uint32_t b = 0; b < pending->groups.bucket_count; b++) {
                for (const struct name_node *n = pending->groups.buckets[b]; n; n = n->next) {
                        const struct offsets_group *pg = (const struct offsets_group *)(const void *)n;
                        struct offsets_group *g = store_find_group(s, name_node_str(n));
                        assert(g && g->txn_count > 0);
                        if (!g)
                                continue;
                        if (is_commit && txn_commit_group(s, pg) < 0)
                                rc = -ENOMEM;
                        g->txn_count--;
                        store_maybe_drop_group(s, g);
                        if (fn)
                                fn(ctx, name_node_str(n));
                }
        }
        offsets_store_destroy(pending);
        return rc;
}

bool offsets_store_has_pending(const struct offsets_store *s, struct kstr group, struct kstr topic, int32_t partition)
{
        const struct offsets_group *g = store_find_group(s, group);
        if (!g || g->txn_count == 0)
                return false;
        for (uint32_t i = 0; i < s->txn_count; i++)
                if (offsets_store_get(s->txns[i].pending, group, topic, partition))
                        return true;
        return false;
}

bool offsets_store_group_has_pending(const struct offsets_store *s, struct kstr group)
{
        const struct offsets_group *g = store_find_group(s, group);
        return g && g->txn_count > 0;
}

const struct offsets_value *offsets_store_get_pending(const struct offsets_store *s, int64_t producer_id,
                                                      struct kstr group, struct kstr topic, int32_t partition)
{
        const struct offsets_txn *t = store_find_txn(s, producer_id);
        return t ? offsets_store_get(t->pending, group, topic, partition) : NULL;
}

uint32_t offsets_store_txn_count(const struct offsets_store *s)
{
        return s->txn_count;
}

bool offsets_store_has_group(const struct offsets_store *s, struct kstr group)
{
        return store_find_group(s, group) != NULL;
}

uint32_t offsets_store_group_count(const struct offsets_store *s, struct kstr group)
{
        const struct offsets_group *g = store_find_group(s, group);
        return g ? g->offset_count : 0;
}

uint64_t offsets_store_count(const struct offsets_store *s)
{
        return s->offset_count;
}

uint32_t offsets_store_groups(const struct offsets_store *s)
{
        return s->groups.count;
}

void offsets_store_for_each_group(const struct offsets_store *s, void (*fn)(void *ctx, struct kstr group),
                                  void *ctx)
{
        for (uint32_t b = 0; b < s->groups.bucket_count; b++)
                for (const struct name_node *n = s->groups.buckets[b]; n; n = n->next)
                        fn(ctx, name_node_str(n));
}

int offsets_store_begin_write(struct offsets_store *s, struct kstr group)
{
        struct offsets_group *g = store_get_or_add_group(s, group);
        if (!g)
                return -ENOMEM;
        assert(g->write_count < UINT32_MAX);
        g->write_count++;
        return 0;
}

void offsets_store_end_write(struct offsets_store *s, struct kstr group)
{
        struct offsets_group *g = store_find_group(s, group);
        assert(g && g->write_count > 0);
        if (!g)
                return;
        g->write_count--;
        store_maybe_drop_group(s, g);
}

/* ---- listing ---- */

static int item_compare(const void *a, const void *b)
{
        const struct offsets_item *x = a, *y = b;
        int32_t n = x->topic.len < y->topic.len ? x->topic.len : y->topic.len;
        int c = memcmp(x->topic.ptr, y->topic.ptr, (size_t)n);
        if (c != 0)
                return c;
        if (x->topic.len != y->topic.len)
                return x->topic.len < y->topic.len ? -1 : 1;
        return x->partition < y->partition ? -1 : x->partition > y->partition;
}

static struct kstr arena_kstr(struct arena *a, struct kstr s)
{
        if (s.len <= 0)
                return (struct kstr){ "", 0 };
        char *p = arena_dup(a, s.ptr, (size_t)s.len);
        return p ? (struct kstr){ p, s.len } : KSTR_NULL;
}

int offsets_store_list_group(const struct offsets_store *s, struct kstr group, struct arena *a,
                             struct offsets_item **items_out, uint32_t *count_out)
{
        *items_out = NULL;
        *count_out = 0;
        const struct offsets_group *g = store_find_group(s, group);
        if (!g || g->offset_count == 0)
                return 0;
        struct offsets_item *items = arena_alloc(a, (size_t)g->offset_count * sizeof(*items));
        if (!items)
                return -ENOMEM;
        uint32_t n = 0;
        for (uint32_t b = 0; b < g->topics.bucket_count; b++) {
                for (const struct name_node *nn = g->topics.buckets[b]; nn; nn = nn->next) {
                        const struct offsets_topic *t = (const struct offsets_topic *)(const void *)nn;
                        struct kstr topic = arena_kstr(a, name_node_str(nn));
                        if (topic.len < 0)
                                return -ENOMEM;
                        for (uint32_t i = 0; i < t->count; i++) {
                                assert(n < g->offset_count);
                                struct offsets_item *it = &items[n++];
                                it->topic = topic;
                                it->partition = t->slots[i].partition;
                                it->value = t->slots[i].value;
                                it->value.metadata = arena_kstr(a, t->slots[i].value.metadata);
                                if (it->value.metadata.len < 0)
                                        return -ENOMEM;
                        }
                }
        }
        assert(n == g->offset_count);
        qsort(items, n, sizeof(*items), item_compare);
        *items_out = items;
        *count_out = n;
        return 0;
}

static void tombstone_init(struct offsets_write *w, struct kstr group, struct kstr topic, int32_t partition)
{
        memset(w, 0, sizeof(*w));
        w->group = group;
        w->topic = topic;
        w->partition = partition;
        w->is_tombstone = true;
}

int offsets_store_collect_group(const struct offsets_store *s, struct kstr group, struct arena *a,
                                struct offsets_write **writes_out, uint32_t *count_out)
{
        struct offsets_item *items;
        uint32_t count;
        *writes_out = NULL;
        *count_out = 0;
        int rc = offsets_store_list_group(s, group, a, &items, &count);
        if (rc < 0 || count == 0)
                return rc;
        struct offsets_write *writes = arena_alloc(a, (size_t)count * sizeof(*writes));
        struct kstr group_copy = arena_kstr(a, group);
        if (!writes || group_copy.len < 0)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++)
                tombstone_init(&writes[i], group_copy, items[i].topic, items[i].partition);
        *writes_out = writes;
        *count_out = count;
        return 0;
}

/* ---- expiry ---- */

/* Kafka's OffsetExpirationConditionImpl.isOffsetExpired. */
static bool value_is_expired(const struct offsets_value *v, enum offsets_expiry expiry, int64_t base_ms,
                             int64_t now_ms, int64_t retention_ms)
{
        if (v->expire_timestamp_ms != OFFSETS_NO_TIMESTAMP)
                return now_ms >= v->expire_timestamp_ms;
        int64_t from_ms = expiry == OFFSETS_EXPIRY_FROM_EMPTY && base_ms >= 0 ? base_ms : v->commit_timestamp_ms;
        return now_ms - from_ms >= retention_ms;
}

int offsets_store_collect_expired(const struct offsets_store *s, int64_t now_ms, int64_t retention_ms,
                                  const struct offsets_group_ops *ops, uint32_t max_count, struct arena *a,
                                  struct offsets_write **writes_out, uint32_t *count_out)
{
        assert(retention_ms >= 0);
        *writes_out = NULL;
        *count_out = 0;
        uint64_t cap64 = s->offset_count < max_count ? s->offset_count : max_count;
        if (cap64 == 0)
                return 0;
        uint32_t cap = (uint32_t)cap64;
        struct offsets_write *writes = arena_alloc(a, (size_t)cap * sizeof(*writes));
        if (!writes)
                return -ENOMEM;
        uint32_t n = 0;
        for (uint32_t b = 0; b < s->groups.bucket_count && n < cap; b++) {
                for (const struct name_node *gn = s->groups.buckets[b]; gn && n < cap; gn = gn->next) {
                        const struct offsets_group *g = (const struct offsets_group *)(const void *)gn;
                        if (g->write_count > 0)
                                continue;
                        struct kstr group = name_node_str(gn);
                        enum offsets_expiry expiry = OFFSETS_EXPIRY_FROM_COMMIT;
                        int64_t base_ms = -1;
                        if (ops && ops->expiry)
                                expiry = ops->expiry(ops->ctx, group, &base_ms);
                        if (expiry == OFFSETS_EXPIRY_NEVER)
                                continue;
                        struct kstr group_copy = KSTR_NULL;
                        for (uint32_t tb = 0; tb < g->topics.bucket_count && n < cap; tb++) {
                                for (const struct name_node *tn = g->topics.buckets[tb]; tn && n < cap;
                                     tn = tn->next) {
                                        const struct offsets_topic *t = (const struct offsets_topic *)(const void *)tn;
                                        struct kstr topic = name_node_str(tn);
                                        if (ops && ops->is_subscribed && ops->is_subscribed(ops->ctx, group, topic))
                                                continue;
                                        struct kstr topic_copy = KSTR_NULL;
                                        for (uint32_t i = 0; i < t->count && n < cap; i++) {
                                                if (!value_is_expired(&t->slots[i].value, expiry, base_ms, now_ms,
                                                                      retention_ms))
                                                        continue;
                                                /* Kafka keeps an offset a transaction is about to replace. */
                                                if (g->txn_count > 0 &&
                                                    offsets_store_has_pending(s, group, topic, t->slots[i].partition))
                                                        continue;
                                                if (group_copy.len < 0)
                                                        group_copy = arena_kstr(a, group);
                                                if (topic_copy.len < 0)
                                                        topic_copy = arena_kstr(a, topic);
                                                if (group_copy.len < 0 || topic_copy.len < 0)
                                                        return -ENOMEM;
                                                tombstone_init(&writes[n++], group_copy, topic_copy,
                                                               t->slots[i].partition);
                                        }
                                }
                        }
                }
        }
        *writes_out = n > 0 ? writes : NULL;
        *count_out = n;
        return 0;
}

/* ---- the record format ---- */

int offsets_record_encode(const struct offsets_write *w, struct arena *a, struct kbytes *key_out,
                          struct kbytes *value_out)
{
        struct offset_commit_key k;
        offset_commit_key_init(&k);
        k.group = w->group;
        k.topic = w->topic;
        k.partition = w->partition;
        struct kwriter kw;
        int rc = version_prefixed_begin(a, OFFSETS_RECORD_TYPE_COMMIT,
                                        offset_commit_key_size(&k, OFFSETS_RECORD_TYPE_COMMIT), &kw);
        if (rc < 0)
                return rc;
        offset_commit_key_encode(&kw, &k, OFFSETS_RECORD_TYPE_COMMIT);
        *key_out = version_prefixed_end(&kw);
        if (w->is_tombstone) {
                *value_out = KBYTES_NULL;
                return 0;
        }

        struct offset_commit_value v;
        offset_commit_value_init(&v);
        v.offset = w->value.offset;
        v.leader_epoch = w->value.leader_epoch;
        v.metadata = w->value.metadata.len < 0 ? (struct kstr){ "", 0 } : w->value.metadata;
        v.commit_timestamp = w->value.commit_timestamp_ms;
        v.expire_timestamp = w->value.expire_timestamp_ms;
        int16_t version = w->value.expire_timestamp_ms != OFFSETS_NO_TIMESTAMP ? OFFSETS_VALUE_VERSION_WITH_EXPIRE :
                                                                                  OFFSETS_VALUE_VERSION;
        rc = version_prefixed_begin(a, version, offset_commit_value_size(&v, version), &kw);
        if (rc < 0)
                return rc;
        offset_commit_value_encode(&kw, &v, version);
        *value_out = version_prefixed_end(&kw);
        return 0;
}

int offsets_record_decode(struct kbytes key, struct kbytes value, struct offsets_record *out)
{
        memset(out, 0, sizeof(*out));
        if (key.len < 2)
                return -EBADMSG;
        /* The codecs take an arena only for arrays, which these have none of. */
        struct arena unused;
        arena_init(&unused, 0);
        struct kreader r;
        kr_init(&r, key.ptr, (size_t)key.len);
        out->record_type = kr_i16(&r);
        if (out->record_type != OFFSETS_RECORD_TYPE_COMMIT_V0 && out->record_type != OFFSETS_RECORD_TYPE_COMMIT) {
                out->kind = OFFSETS_RECORD_OTHER;
                return 0;
        }
        struct offset_commit_key k;
        if (offset_commit_key_decode(&r, &unused, out->record_type, &k) < 0 || kr_remaining(&r) != 0 ||
            k.group.len < 0 || k.topic.len < 0)
                return -EBADMSG;
        out->write.group = k.group;
        out->write.topic = k.topic;
        out->write.partition = k.partition;
        if (value.len < 0) {
                out->kind = OFFSETS_RECORD_TOMBSTONE;
                out->write.is_tombstone = true;
                return 0;
        }
        kr_init(&r, value.ptr, (size_t)value.len);
        int16_t version = kr_i16(&r);
        struct offset_commit_value v;
        /* Kafka reads a value and ignores what follows it. */
        if (r.err || offset_commit_value_decode(&r, &unused, version, &v) < 0 || v.metadata.len < 0)
                return -EBADMSG;
        out->kind = OFFSETS_RECORD_COMMIT;
        out->write.value.offset = v.offset;
        out->write.value.leader_epoch = v.leader_epoch;
        out->write.value.metadata = v.metadata;
        out->write.value.commit_timestamp_ms = v.commit_timestamp;
        out->write.value.expire_timestamp_ms = v.expire_timestamp;
        return 0;
}

int offsets_batch_build(const struct offsets_write *writes, uint32_t count, int64_t now_ms, struct arena *a,
                        uint8_t **batch_out, size_t *len_out)
{
        return offsets_txn_batch_build(writes, count, now_ms, NULL, a, batch_out, len_out);
}

int offsets_txn_batch_build(const struct offsets_write *writes, uint32_t count, int64_t now_ms,
                            const struct offsets_txn_producer *producer, struct arena *a, uint8_t **batch_out,
                            size_t *len_out)
{
        *batch_out = NULL;
        *len_out = 0;
        if (count == 0 || count > OFFSETS_BATCH_RECORDS_MAX)
                return -EINVAL;
        struct record_spec *records = arena_calloc(a, count, sizeof(*records));
        if (!records)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++) {
                int rc = offsets_record_encode(&writes[i], a, &records[i].key, &records[i].value);
                if (rc < 0)
                        return rc;
                records[i].timestamp_ms = now_ms;
        }
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, records, count);
        if (producer) {
                assert(producer->producer_id >= 0 && producer->producer_epoch >= 0);
                spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
                spec.producer_id = producer->producer_id;
                spec.producer_epoch = producer->producer_epoch;
                spec.base_sequence = producer->base_sequence;
        }
        return batch_build(&spec, a, batch_out, len_out);
}

int offsets_group_record_encode(const struct offsets_group_record *r, struct arena *a, struct kbytes *key_out,
                                struct kbytes *value_out)
{
        struct group_metadata_key k;
        group_metadata_key_init(&k);
        k.group = r->group;
        if (r->group.len < 0)
                return -EINVAL;
        struct kwriter kw;
        int rc = version_prefixed_begin(a, OFFSETS_RECORD_TYPE_GROUP_METADATA,
                                        group_metadata_key_size(&k, OFFSETS_RECORD_TYPE_GROUP_METADATA), &kw);
        if (rc < 0)
                return rc;
        group_metadata_key_encode(&kw, &k, OFFSETS_RECORD_TYPE_GROUP_METADATA);
        *key_out = version_prefixed_end(&kw);
        if (r->is_tombstone) {
                *value_out = KBYTES_NULL;
                return 0;
        }
        rc = version_prefixed_begin(a, OFFSETS_GROUP_VALUE_VERSION,
                                    group_metadata_value_size(&r->value, OFFSETS_GROUP_VALUE_VERSION), &kw);
        if (rc < 0)
                return rc;
        group_metadata_value_encode(&kw, &r->value, OFFSETS_GROUP_VALUE_VERSION);
        *value_out = version_prefixed_end(&kw);
        return 0;
}

int offsets_group_record_decode(struct kbytes key, struct kbytes value, struct arena *a,
                                struct offsets_group_record *out)
{
        memset(out, 0, sizeof(*out));
        if (key.len < 2)
                return -EBADMSG;
        struct kreader r;
        kr_init(&r, key.ptr, (size_t)key.len);
        if (kr_i16(&r) != OFFSETS_RECORD_TYPE_GROUP_METADATA)
                return -EBADMSG;
        struct group_metadata_key k;
        if (group_metadata_key_decode(&r, a, OFFSETS_RECORD_TYPE_GROUP_METADATA, &k) < 0 || kr_remaining(&r) != 0 ||
            k.group.len < 0)
                return -EBADMSG;
        out->group = k.group;
        if (value.len < 0) {
                out->is_tombstone = true;
                return 0;
        }
        kr_init(&r, value.ptr, (size_t)value.len);
        int16_t version = kr_i16(&r);
        if (r.err || version < GROUP_METADATA_VALUE_MIN_VERSION || version > GROUP_METADATA_VALUE_MAX_VERSION)
                return -EBADMSG;
        int rc = group_metadata_value_decode(&r, a, version, &out->value);
        if (rc < 0)
                return rc == -ENOMEM ? -ENOMEM : -EBADMSG;
        if (out->value.protocol_type.len < 0)
                return -EBADMSG;
        return 0;
}

int offsets_group_batch_build(const struct offsets_group_record *r, int64_t now_ms, struct arena *a,
                              uint8_t **batch_out, size_t *len_out)
{
        *batch_out = NULL;
        *len_out = 0;
        struct record_spec *rec = arena_calloc(a, 1, sizeof(*rec));
        if (!rec)
                return -ENOMEM;
        int rc = offsets_group_record_encode(r, a, &rec->key, &rec->value);
        if (rc < 0)
                return rc;
        rec->timestamp_ms = now_ms;
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, rec, 1);
        return batch_build(&spec, a, batch_out, len_out);
}

int64_t offsets_metadata_length(struct kstr metadata)
{
        int64_t units = 0;
        for (int32_t i = 0; i < metadata.len; i++) {
                uint8_t c = (uint8_t)metadata.ptr[i];
                if ((c & 0xC0) == 0x80)
                        continue;               /* a continuation byte */
                units += c >= 0xF0 ? 2 : 1;     /* 4-byte sequences are surrogate pairs */
        }
        return units;
}

/* ---- replay ---- */

/* Decompressed records of one batch may be this large; Kafka's offsets
 * topic keeps batches under max.message.bytes, a few MiB at most. */
#define OFFSETS_REPLAY_RECORDS_BYTES_MAX (256u << 20)

/* Applies one record of a batch of producer_id (-1: not transactional);
 * 0 or -ENOMEM. A transactional commit is staged until its marker; a
 * tombstone applies at once, as Kafka's replay does whatever the batch. */
static int replay_record(struct offsets_store *s, const struct record_view *rec, int64_t producer_id,
                         offsets_record_hook_fn hook, void *hook_ctx, struct offsets_replay_stats *stats)
{
        struct offsets_record r;
        if (rec->key.len < 0 || offsets_record_decode(rec->key, rec->value, &r) < 0) {
                stats->skipped_count++;
                return 0;
        }
        if (r.kind == OFFSETS_RECORD_OTHER) {
                stats->other_count++;
                if (hook)
                        hook(hook_ctx, rec->offset, r.record_type, rec->key, rec->value);
                return 0;
        }
        r.write.value.record_offset = rec->offset;
        if (r.kind == OFFSETS_RECORD_COMMIT && producer_id >= 0) {
                if (offsets_store_stage(s, producer_id, &r.write) < 0)
                        return -ENOMEM;
                stats->pending_count++;
                return 0;
        }
        if (offsets_store_apply(s, &r.write) < 0)
                return -ENOMEM;
        if (r.kind == OFFSETS_RECORD_COMMIT)
                stats->commit_count++;
        else
                stats->tombstone_count++;
        return 0;
}

int offsets_control_record_type(struct kbytes key)
{
        if (key.len < 4)
                return -EBADMSG;
        struct kreader r;
        kr_init(&r, key.ptr, (size_t)key.len);
        int16_t version = kr_i16(&r);
        int16_t type = kr_i16(&r);
        /* Kafka's ControlRecordType.parseTypeId reads any version >= 0. */
        if (version < 0 || (type != OFFSETS_CONTROL_ABORT && type != OFFSETS_CONTROL_COMMIT))
                return -EBADMSG;
        return type;
}

/* A control batch ends its producer's transaction: the pending offsets
 * become committed (COMMIT) or are dropped (ABORT). Kafka reads the type
 * from the batch's single control record. */
static int replay_control_batch(struct offsets_store *s, const struct record_batch_header *h, const uint8_t *batch,
                                size_t len, struct offsets_replay_stats *stats)
{
        if (record_batch_compute_crc(batch, len) != h->crc)
                return -EBADMSG;
        struct record_iter it;
        struct record_view rec;
        /* Markers are never compressed; one that is, is not one runnel or
         * Kafka wrote, and is skipped like an undecodable record. */
        if (record_batch_codec(h) != RECORD_BATCH_CODEC_NONE || record_iter_init(&it, batch, len) != 0 ||
            !record_iter_next(&it, &rec) || rec.key.len < 0) {
                stats->skipped_count++;
                return 0;
        }
        int type = offsets_control_record_type(rec.key);
        if (type < 0) {
                stats->skipped_count++;
                return 0;
        }
        stats->marker_count++;
        return offsets_store_end_txn(s, h->producer_id, type == OFFSETS_CONTROL_COMMIT, NULL, NULL);
}

int offsets_store_replay_batch(struct offsets_store *s, const uint8_t *batch, size_t len, int64_t from_offset,
                               struct arena *scratch, offsets_record_hook_fn hook, void *hook_ctx,
                               struct offsets_replay_stats *stats)
{
        struct record_batch_header h;
        if (record_batch_frame(batch, len, &h) != RECORD_BATCH_FRAME_OK || record_batch_size_bytes(&h) != len)
                return -EBADMSG;
        stats->batch_count++;
        if (record_batch_last_offset(&h) < from_offset)
                return 0;
        if (record_batch_is_control(&h))
                return replay_control_batch(s, &h, batch, len, stats);
        int64_t producer_id = record_batch_is_transactional(&h) ? h.producer_id : -1;
        struct record_iter it;
        int rc = log_replay_open_records(batch, len, &h, OFFSETS_REPLAY_RECORDS_BYTES_MAX, scratch, &it);
        if (rc < 0)
                return rc;
        struct record_view rec;
        while (rc == 0 && record_iter_next(&it, &rec)) {
                if (rec.offset < from_offset)
                        continue;
                rc = replay_record(s, &rec, producer_id, hook, hook_ctx, stats);
        }
        if (rc < 0)
                return rc;
        return it.error_code == 0 ? 0 : -EBADMSG;
}

void offsets_loader_init(struct offsets_loader *l, struct partition *p)
{
        memset(l, 0, sizeof(*l));
        log_replay_init(&l->replay, p, 2 * (size_t)OFFSETS_REPLAY_RECORDS_BYTES_MAX);
}

struct loader_step {
        struct offsets_loader *loader;
        struct offsets_store *store;
        offsets_record_hook_fn hook;
        void *hook_ctx;
};

static int loader_replay_batch(void *ctx, const uint8_t *batch, size_t len, int64_t from_offset,
                               struct arena *scratch)
{
        struct loader_step *st = ctx;
        return offsets_store_replay_batch(st->store, batch, len, from_offset, scratch, st->hook, st->hook_ctx,
                                          &st->loader->stats);
}

int offsets_loader_step(struct offsets_loader *l, struct partition *p, struct offsets_store *s,
                        uint32_t step_bytes, offsets_record_hook_fn hook, void *hook_ctx)
{
        struct loader_step st = { .loader = l, .store = s, .hook = hook, .hook_ctx = hook_ctx };
        return log_replay_step(&l->replay, p, step_bytes, loader_replay_batch, &st);
}
