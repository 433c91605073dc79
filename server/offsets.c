/*
 * offsets.c - the shards that serve OffsetCommit, OffsetFetch and
 * OffsetDelete (server/offsets_requests.c) and TxnOffsetCommit
 * (server/txn_offsets.c): the committed offsets of each __consumer_offsets
 * partition, on the partition's home reactor.
 *
 * A request is checked on its connection's reactor, then carried to the
 * home of the group's __consumer_offsets partition (group_partition_of),
 * where the shard and the group's membership live, and carried back to
 * answer.
 *
 * Shards. A shard is created on its home the first time a group of its
 * partition is served, or for every partition by offsets_load_all() (at
 * start-up, and at the first offsets request): its store is replayed from
 * the partition's log, a few MiB per reactor iteration, and until that is
 * done its groups answer COORDINATOR_LOAD_IN_PROGRESS, as Kafka's do while
 * a coordinator loads.
 * Once loaded, an expiry pass runs every offsets.retention.check.interval.ms.
 *
 * Writes (Kafka's coordinator runtime, simplified to one partition):
 * a commit, a delete or an expiry pass becomes one record batch, appended
 * to the shard's partition with acks=all durability; the store takes the
 * writes and the client its answer only once the append has completed. The
 * store therefore always equals a replay of the log (coordinator/offsets.h).
 *
 * Membership (server/groups.c, coordinator/group.h) decides whether a
 * member may commit (generation, member id, rebalance) and how a group's
 * offsets expire; this file reads it through the "group bridge" below.
 * Group metadata is persisted here too: the group coordinator's persist
 * hook appends a GroupMetadata record (or tombstone) to the group's
 * partition, without waiting for it (SyncGroup is answered at once), and
 * the replay hands those records back to group_restore().
 *
 * Invariants:
 *   - shards[i] is touched only on the home reactor of partition i;
 *   - a shard's store equals the replay of its partition's durable log;
 *   - every request carried home comes back and is answered exactly once.
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/logging.h"
#include "../coordinator/group.h"
#include "../coordinator/offsets.h"
#include "../protocol/gen/consumer_protocol_subscription.h"
#include "../protocol/gen/errors.h"
#include "broker.h"
#include "coordinator_topic.h"
#include "offsets.h"
#include "offsets_shard.h"
#include "partition_home.h"

/* Bytes of log replayed per reactor iteration while a shard loads. */
#define OFFSETS_LOAD_STEP_BYTES (4u << 20)
/* Tombstones one expiry pass writes; more wait for the next pass. */
#define OFFSETS_EXPIRE_BATCH_MAX 1000u
/* The memory of one write not tied to a request (expiry, group deletion). */
#define OFFSETS_WRITE_ARENA_BYTES (64u << 20)
/* The next expiry pass after one that hit OFFSETS_EXPIRE_BATCH_MAX. */
#define OFFSETS_EXPIRE_AGAIN_MS 100u

int64_t offsets_wall_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- shards ---- */

/*
 * The shard of each __consumer_offsets partition, by index. A slot is read
 * and written only by the partition's home reactor, so the table needs no
 * lock; it is static because the broker struct has no room for it, and the
 * broker process has one broker.
 */
static struct shard *shards[CATALOG_PARTITIONS_MAX];

/* Kafka's GroupCoordinatorService.handleOperationException for a failed
 * write or an unavailable partition. */
int16_t offsets_coordinator_error(int16_t code)
{
        switch (code) {
        case KAFKA_NONE:
                return KAFKA_NONE;
        case KAFKA_UNKNOWN_TOPIC_OR_PARTITION:
        case KAFKA_NOT_ENOUGH_REPLICAS:
        case KAFKA_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
        case KAFKA_REQUEST_TIMED_OUT:
                return KAFKA_COORDINATOR_NOT_AVAILABLE;
        case KAFKA_NOT_LEADER_OR_FOLLOWER:
        case KAFKA_KAFKA_STORAGE_ERROR:
                return KAFKA_NOT_COORDINATOR;
        default:
                return KAFKA_UNKNOWN_SERVER_ERROR;
        }
}

static void shard_on_loaded(struct shard *s);
static void shard_destroy(struct shard *s);
static void replay_group_record(void *ctx, int64_t offset, int16_t record_type, struct kbytes key,
                                struct kbytes value);
static struct group_coordinator *groups_here(struct broker *b);
static void persist_group(void *ctx, const struct group *g, bool is_deleted, bool is_assignment);

static void shard_load_step(void *arg)
{
        struct shard *s = arg;
        assert(s->state == SHARD_LOADING && shards[s->index] == s);
        int16_t err = KAFKA_NONE;
        struct partition *p = partition_home_get(s->broker, s->loading_topic, s->index, &err);
        int rc = p ? offsets_loader_step(&s->loader, p, s->store, OFFSETS_LOAD_STEP_BYTES, replay_group_record, s) : -EIO;
        if (rc > 0) {
                reactor_defer(s->home, &s->load_task);
                return;
        }
        if (rc == 0) {
                shard_on_loaded(s);
                return;
        }
        log_error("cannot load committed offsets from %s-%d at offset %lld: %s; its groups get "
                  "NOT_COORDINATOR until a later request retries the load",
                  COORDINATOR_OFFSETS_TOPIC, s->index, (long long)s->loader.replay.next_offset,
                  p ? strerror(-rc) : kafka_error_name(err));
        shards[s->index] = NULL;
        shard_destroy(s);
}

static void shard_destroy(struct shard *s)
{
        assert(!s->is_expiring);
        if (s->expire_timer)
                reactor_timer_cancel(s->home, s->expire_timer);
        catalog_topic_put(s->loading_topic);
        offsets_store_destroy(s->store);
        free(s->markers);
        free(s);
}

/* The shard of partition index, created (and loading) on first use. On the
 * home reactor. NULL with *error_code when it cannot serve now. */
struct shard *offsets_shard_get(struct broker *b, const struct catalog_topic *ot, int32_t index, int16_t *error_code)
{
        assert(index >= 0 && index < ot->partition_count && index < CATALOG_PARTITIONS_MAX);
        assert(reactor_self() == partition_home_reactor(b->homes, partition_home_index(b->homes, ot, index)));
        struct shard *s = shards[index];
        if (s) {
                assert(s->broker == b);
                if (s->state == SHARD_LOADED)
                        return s;
                *error_code = KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
                return NULL;
        }
        s = calloc(1, sizeof(*s));
        if (s)
                s->store = offsets_store_create();
        if (!s || !s->store) {
                free(s);
                *error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
                return NULL;
        }
        int16_t err = KAFKA_NONE;
        struct partition *p = partition_home_get(b, ot, index, &err);
        if (!p) {
                offsets_store_destroy(s->store);
                free(s);
                *error_code = offsets_coordinator_error(err);
                return NULL;
        }
        s->broker = b;
        s->home = reactor_self();
        s->index = index;
        s->state = SHARD_LOADING;
        s->loading_topic = catalog_topic_hold(ot);
        s->load_started_ms = reactor_now_ms();
        reactor_task_init(&s->load_task, shard_load_step, s);
        offsets_loader_init(&s->loader, p);
        shards[index] = s;
        /* A small log loads at once and the request goes on. */
        shard_load_step(s);
        s = shards[index];
        if (s && s->state == SHARD_LOADED)
                return s;
        *error_code = s ? KAFKA_COORDINATOR_LOAD_IN_PROGRESS : KAFKA_NOT_COORDINATOR;
        return NULL;
}

struct offsets_store *offsets_shard_store(struct broker *b, const struct catalog_topic *offsets_topic, int32_t index,
                                          int16_t *error_code)
{
        struct shard *s = offsets_shard_get(b, offsets_topic, index, error_code);
        if (s)
                groups_here(b);         /* the hooks, before any group change */
        return s ? s->store : NULL;
}

int16_t offsets_partition_ready(struct broker *b, const struct catalog_topic *offsets_topic, int32_t index)
{
        int16_t err = KAFKA_NONE;
        struct shard *s = offsets_shard_get(b, offsets_topic, index, &err);
        if (s)
                groups_here(b);         /* the hooks, before any group change */
        return s ? KAFKA_NONE : err;
}

/* A load of one partition on its way to the partition's home. */
struct load_start {
        struct broker *broker;
        const struct catalog_topic *topic;      /* held */
        int32_t index;
        struct reactor_task task;
};

static void load_start_at_home(void *arg)
{
        struct load_start *ls = arg;
        int16_t err = KAFKA_NONE;
        offsets_shard_get(ls->broker, ls->topic, ls->index, &err);
        catalog_topic_put(ls->topic);
        free(ls);
}

/* Set once offsets_load_all has run with __consumer_offsets present. */
static atomic_bool is_load_all_started;

void offsets_load_all(struct broker *b)
{
        const struct catalog_topic *ot = catalog_get_topic(b->catalog, KSTR(COORDINATOR_OFFSETS_TOPIC));
        if (!ot)
                return;
        for (int32_t i = 0; i < ot->partition_count && i < CATALOG_PARTITIONS_MAX; i++) {
                struct load_start *ls = calloc(1, sizeof(*ls));
                if (!ls) {
                        log_warn("out of memory starting the load of %s-%d; it loads on first use",
                                 COORDINATOR_OFFSETS_TOPIC, i);
                        continue;
                }
                ls->broker = b;
                ls->topic = catalog_topic_hold(ot);
                ls->index = i;
                reactor_task_init(&ls->task, load_start_at_home, ls);
                partition_home_run(partition_home_reactor(b->homes, partition_home_index(b->homes, ot, i)),
                                   &ls->task);
        }
        catalog_topic_put(ot);
        atomic_store(&is_load_all_started, true);
}

/* The first offsets request loads every partition, in case start-up did
 * not (groups with offsets then show in ListGroups without being named). */
void offsets_maybe_load_all(struct broker *b)
{
        if (!atomic_load_explicit(&is_load_all_started, memory_order_relaxed))
                offsets_load_all(b);
}

/* ---- the group bridge ---- */

/*
 * The group coordinator of the calling home reactor (server/coordinator_topic.c),
 * or NULL when memory ran out: then every group is a "simple" one (no
 * members; only commits with generation -1 pass).
 */
static struct group_coordinator *groups_here(struct broker *b)
{
        struct group_coordinator *gc = coordinator_home_groups(b);
        /* DeleteGroups of a group with offsets deletes them too. Setting
         * the hook each time keeps this file the only one that knows it. */
        if (gc) {
                group_coordinator_set_offsets_release(gc, offsets_release_group, b);
                group_coordinator_set_persist(gc, persist_group, b);
        }
        return gc;
}

static bool kstr_is_consumer(struct kstr protocol_type)
{
        return kstr_eq_cstr(protocol_type, "consumer");
}

/* Tells the group whether it has offsets (an Empty group with offsets is
 * kept; one without may expire). Creates the simple group of offsets that
 * were replayed or committed with no group around. */
void offsets_shard_note_group(struct shard *s, struct kstr group_id)
{
        struct group_coordinator *gc = groups_here(s->broker);
        if (!gc)
                return;
        bool has_offsets = offsets_store_group_count(s->store, group_id) > 0;
        struct group *g = group_find(gc, group_id);
        if (!g && has_offsets) {
                int16_t err = KAFKA_NONE;
                g = group_get_or_create(gc, group_id, &err);
        }
        if (!g)
                return;
        if (has_offsets && !g->offsets) {
                g->offsets = s;
        } else if (!has_offsets && g->offsets) {
                g->offsets = NULL;
                group_offsets_released(g);
        }
}

static void bridge_note_offsets_fn(void *ctx, struct kstr group_id)
{
        offsets_shard_note_group(ctx, group_id);
}

void offsets_note_group(struct broker *b, int32_t index, struct kstr group_id)
{
        struct shard *s = index >= 0 && index < CATALOG_PARTITIONS_MAX ? shards[index] : NULL;
        if (s && s->state == SHARD_LOADED && s->broker == b)
                offsets_shard_note_group(s, group_id);
}

struct group_coordinator *offsets_groups_here(struct broker *b)
{
        return groups_here(b);
}

/* ---- transaction markers ---- */

static void shard_end_txn(struct shard *s, int64_t producer_id, bool is_commit)
{
        if (offsets_store_end_txn(s->store, producer_id, is_commit, bridge_note_offsets_fn, s) < 0)
                log_error("out of memory committing the transactional offsets of producer %lld in %s-%d; "
                          "OffsetFetch misses them until the broker restarts",
                          (long long)producer_id, COORDINATOR_OFFSETS_TOPIC, s->index);
}

void offsets_txn_marker_written(struct broker *b, int32_t index, int64_t producer_id, bool is_commit,
                                int64_t marker_offset)
{
        struct shard *s = index >= 0 && index < CATALOG_PARTITIONS_MAX ? shards[index] : NULL;
        /* No shard: its load, when it comes, replays the marker. */
        if (!s || s->broker != b)
                return;
        if (s->state == SHARD_LOADED) {
                shard_end_txn(s, producer_id, is_commit);
                return;
        }
        /* Loading: the replay reads up to where the log ended when it
         * began; a marker past that waits for the load to finish. */
        if (marker_offset < s->loader.replay.end_offset)
                return;
        if (s->marker_count == s->marker_cap) {
                uint32_t cap = s->marker_cap ? s->marker_cap * 2 : 8;
                struct shard_marker *m = realloc(s->markers, cap * sizeof(*m));
                if (!m) {
                        log_error("out of memory queueing a transaction marker of producer %lld for %s-%d; its "
                                  "offsets stay pending until the broker restarts",
                                  (long long)producer_id, COORDINATOR_OFFSETS_TOPIC, s->index);
                        return;
                }
                s->markers = m;
                s->marker_cap = cap;
        }
        s->markers[s->marker_count++] = (struct shard_marker){ producer_id, is_commit };
}

/*
 * Whether a member of g subscribes to topic: Kafka's
 * ClassicGroup.isSubscribedToTopic, which reads the consumer protocol
 * subscription of every member for the chosen protocol. Unknown (another
 * protocol type, no protocol chosen, metadata that does not parse) is
 * "not subscribed", as in Kafka.
 */
bool offsets_group_is_subscribed(const struct group *g, struct kstr topic)
{
        if (!kstr_is_consumer(g->protocol_type) || kstr_is_null(g->protocol_name) || g->member_count == 0)
                return false;
        for (const struct group_member *m = g->members_head; m; m = m->next) {
                struct kbytes md = group_member_metadata(m, g->protocol_name);
                if (md.len < 2)
                        return false;
                struct kreader r;
                kr_init(&r, md.ptr, (size_t)md.len);
                int16_t version = kr_i16(&r);
                if (version > CONSUMER_PROTOCOL_SUBSCRIPTION_MAX_VERSION)
                        version = CONSUMER_PROTOCOL_SUBSCRIPTION_MAX_VERSION;  /* Kafka reads newer as its newest */
                struct arena a;
                arena_init(&a, 1u << 20);
                struct consumer_protocol_subscription sub;
                int rc = consumer_protocol_subscription_decode(&r, &a, version, &sub);
                bool is_found = false;
                for (int32_t i = 0; rc == 0 && i < sub.topics.count; i++)
                        is_found = is_found || kstr_eq(sub.topics.items[i], topic);
                arena_free(&a);
                if (rc < 0)
                        return false;
                if (is_found)
                        return true;
        }
        return false;
}

static bool bridge_is_subscribed(void *ctx, struct kstr group_id, struct kstr topic)
{
        struct group_coordinator *gc = groups_here(ctx);
        const struct group *g = gc ? group_find(gc, group_id) : NULL;
        return g && offsets_group_is_subscribed(g, topic);
}

/* Kafka's ClassicGroup.offsetExpirationCondition. */
static enum offsets_expiry bridge_expiry(void *ctx, struct kstr group_id, int64_t *base_ms)
{
        struct group_coordinator *gc = groups_here(ctx);
        const struct group *g = gc ? group_find(gc, group_id) : NULL;
        if (!g || kstr_is_null(g->protocol_type))
                return OFFSETS_EXPIRY_FROM_COMMIT;      /* a simple group */
        if (g->state == GROUP_EMPTY) {
                *base_ms = g->state_timestamp_ms;
                return OFFSETS_EXPIRY_FROM_EMPTY;
        }
        if (kstr_is_consumer(g->protocol_type) && g->state == GROUP_STABLE)
                return OFFSETS_EXPIRY_FROM_COMMIT;      /* for topics no member subscribes to */
        return OFFSETS_EXPIRY_NEVER;
}

/* Kafka's validateOffsetDelete: GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP or NONE. */
int16_t offsets_shard_validate_delete(struct shard *s, struct kstr group_id, const struct group **g_out)
{
        struct group_coordinator *gc = groups_here(s->broker);
        const struct group *g = gc ? group_find(gc, group_id) : NULL;
        *g_out = g;
        if (!g)
                return offsets_store_has_group(s->store, group_id) ? KAFKA_NONE : KAFKA_GROUP_ID_NOT_FOUND;
        switch (g->state) {
        case GROUP_DEAD:
                return KAFKA_GROUP_ID_NOT_FOUND;
        case GROUP_STABLE:
        case GROUP_PREPARING_REBALANCE:
        case GROUP_COMPLETING_REBALANCE:
                return kstr_is_consumer(g->protocol_type) ? KAFKA_NONE : KAFKA_NON_EMPTY_GROUP;
        case GROUP_EMPTY:
                break;
        }
        return KAFKA_NONE;
}

/* ---- writes not tied to a request: expiry, group deletion ---- */

struct shard_write {
        struct shard *shard;
        struct arena arena;             /* the writes, the batch */
        struct offsets_write *writes;
        uint32_t count;
        bool is_expiry;
        uint8_t *group_batch;           /* a GroupMetadata record, instead of writes */
        size_t group_batch_len;
        bool is_assignment;             /* a leader's SyncGroup waits for it */
        struct kstr group_id;           /* in arena, for group_sync_stored */
        int32_t generation_id;
        struct partition_append append;
        struct reactor_task start_task;
};

static void shard_write_free(struct shard_write *w)
{
        arena_free(&w->arena);
        free(w);
}

static struct shard_write *shard_write_new(struct shard *s)
{
        struct shard_write *w = calloc(1, sizeof(*w));
        if (!w)
                return NULL;
        w->shard = s;
        arena_init(&w->arena, OFFSETS_WRITE_ARENA_BYTES);
        return w;
}

static void shard_expire_arm(struct shard *s, uint64_t delay_ms);

static void shard_write_done(struct partition_append *a)
{
        struct shard_write *w = a->ctx;
        struct shard *s = w->shard;
        if (w->is_assignment) {
                /* The leader's SyncGroup and its members wait for this. */
                struct group_coordinator *gc = coordinator_home_groups(s->broker);
                if (gc)
                        group_sync_stored(gc, w->group_id, w->generation_id, a->error_code);
        }
        if (a->error_code == KAFKA_NONE) {
                for (uint32_t i = 0; i < w->count; i++)
                        if (offsets_store_apply(s->store, &w->writes[i]) < 0)
                                log_error("out of memory applying a tombstone of %s-%d; the offset stays "
                                          "until the broker restarts", COORDINATOR_OFFSETS_TOPIC, s->index);
                for (uint32_t i = 0; i < w->count; i++)
                        if (i == 0 || !kstr_eq(w->writes[i].group, w->writes[i - 1].group))
                                offsets_shard_note_group(s, w->writes[i].group);
                if (w->is_expiry)
                        log_info("expired %u committed offsets in %s-%d", w->count, COORDINATOR_OFFSETS_TOPIC,
                                 s->index);
        } else if (w->group_batch) {
                log_warn("writing group metadata to %s-%d failed (%s)", COORDINATOR_OFFSETS_TOPIC, s->index,
                         kafka_error_name(a->error_code));
        } else {
                log_warn("writing %u offset tombstones to %s-%d failed (%s); retried by the next expiry pass",
                         w->count, COORDINATOR_OFFSETS_TOPIC, s->index, kafka_error_name(a->error_code));
        }
        if (w->is_expiry) {
                s->is_expiring = false;
                shard_expire_arm(s, w->count == OFFSETS_EXPIRE_BATCH_MAX && a->error_code == KAFKA_NONE ?
                                            OFFSETS_EXPIRE_AGAIN_MS :
                                            (uint64_t)s->broker->config->offsets_retention_check_interval_ms);
        }
        shard_write_free(w);
}

/* Appends w's writes to the shard's partition; takes w. */
static void shard_write_start(struct shard_write *w)
{
        struct shard *s = w->shard;
        uint8_t *batch;
        size_t len;
        int rc = 0;
        if (w->group_batch) {
                batch = w->group_batch;
                len = w->group_batch_len;
        } else {
                rc = offsets_batch_build(w->writes, w->count, offsets_wall_now_ms(), &w->arena, &batch, &len);
        }
        int16_t err = KAFKA_NONE;
        const struct catalog_topic *ot = catalog_get_topic(s->broker->catalog, KSTR(COORDINATOR_OFFSETS_TOPIC));
        struct partition *p = rc == 0 && ot ? partition_home_get(s->broker, ot, s->index, &err) : NULL;
        catalog_topic_put(ot);
        w->append.batches = batch;
        w->append.len = len;
        w->append.is_durable = true;
        w->append.done = shard_write_done;
        w->append.ctx = w;
        if (!p) {
                w->append.error_code = rc < 0 ? KAFKA_UNKNOWN_SERVER_ERROR : err ? err : KAFKA_NOT_LEADER_OR_FOLLOWER;
                shard_write_done(&w->append);
                return;
        }
        partition_append(p, &w->append);
}

static void shard_write_start_task(void *arg)
{
        shard_write_start(arg);
}

static void shard_expire_fired(void *arg)
{
        struct shard *s = arg;
        s->expire_timer = 0;
        assert(s->state == SHARD_LOADED && !s->is_expiring);
        const struct broker_config *cfg = s->broker->config;
        struct shard_write *w = shard_write_new(s);
        if (!w) {
                shard_expire_arm(s, (uint64_t)cfg->offsets_retention_check_interval_ms);
                return;
        }
        w->is_expiry = true;
        struct offsets_group_ops ops = { bridge_expiry, bridge_is_subscribed, s->broker };
        int64_t retention_ms = (int64_t)cfg->offsets_retention_minutes * 60000;
        int rc = offsets_store_collect_expired(s->store, offsets_wall_now_ms(), retention_ms, &ops, OFFSETS_EXPIRE_BATCH_MAX,
                                               &w->arena, &w->writes, &w->count);
        if (rc < 0 || w->count == 0) {
                shard_write_free(w);
                shard_expire_arm(s, (uint64_t)cfg->offsets_retention_check_interval_ms);
                return;
        }
        s->is_expiring = true;
        shard_write_start(w);
}

static void shard_expire_arm(struct shard *s, uint64_t delay_ms)
{
        assert(!s->expire_timer);
        s->expire_timer = reactor_timer_add(s->home, delay_ms, shard_expire_fired, s);
        if (!s->expire_timer)
                log_error("no timer for the offset expiry of %s-%d; its offsets do not expire until restart",
                          COORDINATOR_OFFSETS_TOPIC, s->index);
}

static void shard_on_loaded(struct shard *s)
{
        const struct offsets_loader *l = &s->loader;
        s->state = SHARD_LOADED;
        catalog_topic_put(s->loading_topic);
        s->loading_topic = NULL;
        log_info("loaded %llu committed offsets of %u groups from %s-%d in %llu ms (%llu batches, %llu commits, "
                 "%llu tombstones, %llu other records, %llu skipped)",
                 (unsigned long long)offsets_store_count(s->store), offsets_store_groups(s->store),
                 COORDINATOR_OFFSETS_TOPIC, s->index, (unsigned long long)(reactor_now_ms() - s->load_started_ms),
                 (unsigned long long)l->stats.batch_count, (unsigned long long)l->stats.commit_count,
                 (unsigned long long)l->stats.tombstone_count, (unsigned long long)l->stats.other_count,
                 (unsigned long long)l->stats.skipped_count);
        for (uint32_t i = 0; i < s->marker_count; i++)
                shard_end_txn(s, s->markers[i].producer_id, s->markers[i].is_commit);
        free(s->markers);
        s->markers = NULL;
        s->marker_count = s->marker_cap = 0;
        offsets_store_for_each_group(s->store, bridge_note_offsets_fn, s);
        shard_expire_arm(s, (uint64_t)s->broker->config->offsets_retention_check_interval_ms);
}

void offsets_release_group(void *ctx, struct group *g)
{
        struct broker *b = ctx;
        g->offsets = NULL;
        struct coordinator_place place;
        if (!coordinator_locate_group(b, g->id, &place))
                return;
        struct shard *s = shards[place.partition];
        coordinator_place_put(&place);
        if (!s || s->state != SHARD_LOADED)
                return;
        struct shard_write *w = shard_write_new(s);
        if (!w || offsets_store_collect_group(s->store, g->id, &w->arena, &w->writes, &w->count) < 0) {
                log_error("out of memory deleting the offsets of group %.*s", (int)g->id.len, g->id.ptr);
                if (w)
                        shard_write_free(w);
                return;
        }
        if (w->count == 0) {
                shard_write_free(w);
                return;
        }
        /* Not from inside group.c's DeleteGroups: the write may finish at
         * once and tell the group coordinator about it. */
        reactor_task_init(&w->start_task, shard_write_start_task, w);
        reactor_defer(s->home, &w->start_task);
}

/* ---- group metadata records ---- */

/* Appends g's GroupMetadata record (or tombstone) to its partition, without
 * waiting: the group coordinator's state does not depend on it. */
/* The answer to a SyncGroup store that never reached the log, given on a
 * later turn of the reactor (never inside group.c). */
struct store_ack {
        struct broker *broker;
        struct kstr group_id;           /* follows the struct */
        int32_t generation_id;
        int16_t error_code;
        struct reactor_task task;
};

static void store_ack_run(void *arg)
{
        struct store_ack *ack = arg;
        struct group_coordinator *gc = coordinator_home_groups(ack->broker);
        if (gc)
                group_sync_stored(gc, ack->group_id, ack->generation_id, ack->error_code);
        free(ack);
}

static void store_ack_later(struct broker *b, const struct group *g, int16_t error_code)
{
        struct store_ack *ack = malloc(sizeof(*ack) + (size_t)g->id.len + 1);
        if (!ack) {
                /* The members' sync timeout ends the wait. */
                log_error("out of memory answering the assignment store of group %s", g->id.ptr);
                return;
        }
        char *id = (char *)(ack + 1);
        memcpy(id, g->id.ptr, (size_t)g->id.len);
        id[g->id.len] = '\0';
        ack->broker = b;
        ack->group_id = (struct kstr){ id, g->id.len };
        ack->generation_id = g->generation_id;
        ack->error_code = error_code;
        reactor_task_init(&ack->task, store_ack_run, ack);
        reactor_defer(reactor_self(), &ack->task);
}

static void persist_group(void *ctx, const struct group *g, bool is_deleted, bool is_assignment)
{
        struct broker *b = ctx;
        struct coordinator_place place;
        if (!coordinator_locate_group(b, g->id, &place)) {
                if (is_assignment)
                        store_ack_later(b, g, KAFKA_NOT_COORDINATOR);
                return;
        }
        struct shard *s = shards[place.partition];
        coordinator_place_put(&place);
        if (!s || s->state != SHARD_LOADED) {
                if (is_assignment)
                        store_ack_later(b, g, KAFKA_NOT_COORDINATOR);
                return;
        }
        struct shard_write *w = shard_write_new(s);
        if (!w)
                goto out_nomem;
        if (is_assignment) {
                w->is_assignment = true;
                w->generation_id = g->generation_id;
                w->group_id.ptr = arena_dup(&w->arena, g->id.ptr, (size_t)g->id.len);
                w->group_id.len = g->id.len;
                if (!w->group_id.ptr)
                        goto out_free;
        }
        struct offsets_group_record r = { .group = g->id, .is_tombstone = is_deleted };
        if (!is_deleted) {
                struct group_metadata_value *v = &r.value;
                group_metadata_value_init(v);
                v->protocol_type = kstr_is_null(g->protocol_type) ? (struct kstr){ "", 0 } : g->protocol_type;
                v->generation = g->generation_id;
                v->protocol = g->protocol_name;
                v->leader = g->leader ? g->leader->member_id : KSTR_NULL;
                v->current_state_timestamp = g->state_timestamp_ms;
                if (g->member_count > 0) {
                        v->members.items = arena_calloc(&w->arena, (size_t)g->member_count, sizeof(*v->members.items));
                        if (!v->members.items)
                                goto out_free;
                }
                int32_t n = 0;
                for (const struct group_member *m = g->members_head; m && n < g->member_count; m = m->next, n++) {
                        struct group_metadata_value_member_metadata *mm = &v->members.items[n];
                        group_metadata_value_member_metadata_init(mm);
                        struct kbytes sub = group_member_metadata(m, g->protocol_name);
                        mm->member_id = m->member_id;
                        mm->group_instance_id = m->group_instance_id;
                        mm->client_id = m->client_id;
                        mm->client_host = m->client_host;
                        mm->rebalance_timeout = m->rebalance_timeout_ms;
                        mm->session_timeout = m->session_timeout_ms;
                        mm->subscription = sub.len < 0 ? (struct kbytes){ (const uint8_t *)"", 0 } : sub;
                        mm->assignment = m->assignment.len < 0 ? (struct kbytes){ (const uint8_t *)"", 0 } :
                                                                  m->assignment;
                }
                v->members.count = n;
        }
        if (offsets_group_batch_build(&r, offsets_wall_now_ms(), &w->arena, &w->group_batch, &w->group_batch_len) < 0)
                goto out_free;
        /* Deferred: the append may complete at once, and this runs inside
         * group.c. */
        reactor_task_init(&w->start_task, shard_write_start_task, w);
        reactor_defer(s->home, &w->start_task);
        return;
out_free:
        shard_write_free(w);
out_nomem:
        log_error("cannot write the group metadata of %.*s to %s-%d", (int)g->id.len, g->id.ptr,
                  COORDINATOR_OFFSETS_TOPIC, s->index);
        if (is_assignment)
                store_ack_later(b, g, KAFKA_COORDINATOR_NOT_AVAILABLE);
}

/* The replay hook: GroupMetadata records rebuild their groups, Empty. */
static void replay_group_record(void *ctx, int64_t offset, int16_t record_type, struct kbytes key,
                                struct kbytes value)
{
        struct shard *s = ctx;
        if (record_type != OFFSETS_RECORD_TYPE_GROUP_METADATA)
                return;
        struct group_coordinator *gc = coordinator_home_groups(s->broker);
        if (!gc)
                return;
        struct arena a;
        arena_init(&a, 64u << 20);
        struct offsets_group_record r;
        int rc = offsets_group_record_decode(key, value, &a, &r);
        if (rc < 0) {
                log_warn("skipping an undecodable group metadata record at %s-%d offset %lld",
                         COORDINATOR_OFFSETS_TOPIC, s->index, (long long)offset);
        } else if (r.is_tombstone) {
                group_restore_tombstone(gc, r.group);
        } else {
                /* Members are not restored: they rejoin. A group persisted
                 * with members became Empty now; one persisted Empty, then. */
                int64_t ts = r.value.members.count == 0 ? r.value.current_state_timestamp : -1;
                if (group_restore(gc, r.group, r.value.protocol_type, r.value.generation, ts) < 0)
                        log_error("out of memory restoring group %.*s", (int)r.group.len, r.group.ptr);
        }
        arena_free(&a);
}
