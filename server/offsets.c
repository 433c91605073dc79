/*
 * offsets.c - OffsetCommit, OffsetFetch and OffsetDelete, and the shards
 * that serve them: the committed offsets of each __consumer_offsets
 * partition, on the partition's home reactor.
 *
 * A request is checked on its connection's reactor (group id, topics and
 * partitions against the catalog, metadata size), then carried to the home
 * of the group's __consumer_offsets partition (group_partition_of), where
 * the shard and the group's membership live, and carried back to answer.
 * OffsetFetch v8+ names several groups: it visits their homes one after
 * the other. While the request is away its connection's reactor does not
 * touch it, so the home may allocate from the request's arena.
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
#include "../protocol/gen/offset_commit.h"
#include "../protocol/gen/offset_delete.h"
#include "../protocol/gen/offset_fetch.h"
#include "broker.h"
#include "coordinator_topic.h"
#include "handlers.h"
#include "offsets.h"
#include "partition_home.h"

/* Bytes of log replayed per reactor iteration while a shard loads. */
#define OFFSETS_LOAD_STEP_BYTES (4u << 20)
/* Tombstones one expiry pass writes; more wait for the next pass. */
#define OFFSETS_EXPIRE_BATCH_MAX 1000u
/* The memory of one write not tied to a request (expiry, group deletion). */
#define OFFSETS_WRITE_ARENA_BYTES (64u << 20)
/* The next expiry pass after one that hit OFFSETS_EXPIRE_BATCH_MAX. */
#define OFFSETS_EXPIRE_AGAIN_MS 100u

static int64_t wall_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- shards ---- */

enum shard_state {
        SHARD_LOADING,
        SHARD_LOADED,
};

struct shard {
        struct broker *broker;
        struct reactor *home;
        const struct catalog_topic *loading_topic;      /* held while loading */
        int32_t index;
        enum shard_state state;
        struct offsets_store *store;
        struct offsets_loader loader;
        uint64_t load_started_ms;
        struct reactor_task load_task;
        reactor_timer_id expire_timer;
        bool is_expiring;               /* an expiry write is in flight */
        /* Transaction markers written past the end of the load, while it
         * runs: applied once it is done, in order. */
        struct shard_marker *markers;
        uint32_t marker_count, marker_cap;
};

struct shard_marker {
        int64_t producer_id;
        bool is_commit;
};

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
static struct shard *shard_get(struct broker *b, const struct catalog_topic *ot, int32_t index, int16_t *error_code)
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
        struct shard *s = shard_get(b, offsets_topic, index, error_code);
        if (s)
                groups_here(b);         /* the hooks, before any group change */
        return s ? s->store : NULL;
}

int16_t offsets_partition_ready(struct broker *b, const struct catalog_topic *offsets_topic, int32_t index)
{
        int16_t err = KAFKA_NONE;
        struct shard *s = shard_get(b, offsets_topic, index, &err);
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
        shard_get(ls->broker, ls->topic, ls->index, &err);
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

/* Kafka's validateOffsetCommit (OffsetMetadataManager, ClassicGroup). */
static int16_t bridge_validate_commit(struct group_coordinator *gc, const struct offset_commit_request *rq,
                                      int16_t version)
{
        struct group *g = gc ? group_find(gc, rq->group_id) : NULL;
        if (!g) {
                if (rq->generation_id_or_member_epoch >= 0)
                        return version >= 9 ? KAFKA_GROUP_ID_NOT_FOUND : KAFKA_ILLEGAL_GENERATION;
                /* Generation -1: an admin client or a consumer without group
                 * management; Kafka creates a "simple" group for it. */
                int16_t err = KAFKA_NONE;
                if (gc && !group_get_or_create(gc, rq->group_id, &err) && err != KAFKA_INVALID_GROUP_ID)
                        return err;
                /* Kafka 4.4 takes simple commits even for the group id ""
                 * (which JoinGroup refuses); its offsets then live without
                 * a group object. */
                return KAFKA_NONE;
        }
        return group_validate_offset_commit(g, rq->member_id, rq->group_instance_id,
                                            rq->generation_id_or_member_epoch, false);
}

/* Tells the group whether it has offsets (an Empty group with offsets is
 * kept; one without may expire). Creates the simple group of offsets that
 * were replayed or committed with no group around. */
static void bridge_note_offsets(struct shard *s, struct kstr group_id)
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
        bridge_note_offsets(ctx, group_id);
}

void offsets_note_group(struct broker *b, int32_t index, struct kstr group_id)
{
        struct shard *s = index >= 0 && index < CATALOG_PARTITIONS_MAX ? shards[index] : NULL;
        if (s && s->state == SHARD_LOADED && s->broker == b)
                bridge_note_offsets(s, group_id);
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
static bool group_is_subscribed(const struct group *g, struct kstr topic)
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
        return g && group_is_subscribed(g, topic);
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
static int16_t bridge_validate_delete(struct shard *s, struct kstr group_id, const struct group **g_out)
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
                                bridge_note_offsets(s, w->writes[i].group);
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
                rc = offsets_batch_build(w->writes, w->count, wall_now_ms(), &w->arena, &batch, &len);
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
        int rc = offsets_store_collect_expired(s->store, wall_now_ms(), retention_ms, &ops, OFFSETS_EXPIRE_BATCH_MAX,
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
        if (offsets_group_batch_build(&r, wall_now_ms(), &w->arena, &w->group_batch, &w->group_batch_len) < 0)
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

/* ---- answers in Kafka's order ---- */

/* OffsetCommit and OffsetDelete answers have the shape of struct
 * offsets_answer_topic (offsets.h), checked here. */
#define ANSWER_SAME_LAYOUT(t, p)                                                                               \
        _Static_assert(sizeof(struct t) == sizeof(struct offsets_answer_topic) &&                              \
                               offsetof(struct t, partitions) == offsetof(struct offsets_answer_topic, partitions) && \
                               sizeof(struct p) == sizeof(struct offsets_answer_partition) &&                  \
                               offsetof(struct p, error_code) == offsetof(struct offsets_answer_partition,     \
                                                                          error_code),                          \
                       #t " differs from struct offsets_answer_topic")
ANSWER_SAME_LAYOUT(offset_commit_response_topic, offset_commit_response_partition);
ANSWER_SAME_LAYOUT(offset_delete_response_topic, offset_delete_response_partition);

static struct offsets_answer_topic *answer_find(struct offsets_answer_topic *topics, int32_t count, struct kstr name)
{
        for (int32_t i = 0; i < count; i++)
                if (kstr_eq(topics[i].name, name))
                        return &topics[i];
        return NULL;
}

/* Appends one topic's partitions that are (or are not) refused early. */
static void answer_take(struct offsets_answer_topic *out, int32_t *out_count, const struct offsets_answer_topic *from,
                        bool is_early)
{
        struct offsets_answer_topic *t = NULL;
        for (int32_t i = 0; i < from->partitions.count; i++) {
                const struct offsets_answer_partition *p = &from->partitions.items[i];
                if ((p->error_code == KAFKA_UNKNOWN_TOPIC_OR_PARTITION) != is_early)
                        continue;
                if (!t)
                        t = answer_find(out, *out_count, from->name);
                if (!t) {
                        t = &out[(*out_count)++];
                        t->name = from->name;
                        t->partitions.count = 0;
                }
                t->partitions.items[t->partitions.count++] = *p;
        }
}

/* Reorders topics[0..*count) as Kafka's response builder would; 0 or -ENOMEM. */
int offsets_answer_order(struct arena *a, struct offsets_answer_topic **topics, int32_t *count)
{
        bool has_early = false;
        int32_t total = 0;
        for (int32_t t = 0; t < *count; t++) {
                total += (*topics)[t].partitions.count;
                for (int32_t i = 0; i < (*topics)[t].partitions.count; i++)
                        has_early = has_early ||
                                    (*topics)[t].partitions.items[i].error_code == KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        }
        if (!has_early)
                return 0;
        struct offsets_answer_topic *out = arena_calloc(a, (size_t)*count + 1, sizeof(*out));
        struct offsets_answer_partition *parts = arena_calloc(a, (size_t)total + 1, sizeof(*parts));
        if (!out || !parts)
                return -ENOMEM;
        /* Room for every partition of a name in its first entry. */
        int32_t n = 0;
        for (int32_t t = 0; t < *count; t++) {
                if (answer_find(out, n, (*topics)[t].name))
                        continue;
                out[n].name = (*topics)[t].name;
                out[n].partitions.items = parts;
                for (int32_t u = t; u < *count; u++)
                        if (kstr_eq((*topics)[u].name, (*topics)[t].name))
                                parts += (*topics)[u].partitions.count;
                n++;
        }
        /* Entries are filled in the order Kafka adds them. */
        struct offsets_answer_topic *order = arena_calloc(a, (size_t)n + 1, sizeof(*order));
        if (!order)
                return -ENOMEM;
        int32_t m = 0;
        for (int pass = 0; pass < 2; pass++) {
                for (int32_t t = 0; t < *count; t++) {
                        const struct offsets_answer_topic *from = &(*topics)[t];
                        if (!answer_find(order, m, from->name)) {
                                bool is_needed = false;
                                for (int32_t i = 0; i < from->partitions.count; i++)
                                        is_needed = is_needed || (from->partitions.items[i].error_code ==
                                                                  KAFKA_UNKNOWN_TOPIC_OR_PARTITION) == (pass == 0);
                                if (!is_needed)
                                        continue;
                                struct offsets_answer_topic *slot = answer_find(out, n, from->name);
                                order[m] = *slot;
                                order[m].partitions.count = 0;
                                m++;
                        }
                        answer_take(order, &m, from, pass == 0);
                }
        }
        *topics = order;
        *count = m;
        return 0;
}

/* ---- the commit OffsetCommit and TxnOffsetCommit share ---- */

int offsets_commit_init(struct offsets_commit *c, struct broker *b, struct request *req, struct kstr group_id,
                        uint32_t write_count_max, offsets_commit_respond_fn respond)
{
        assert(respond);
        c->b = b;
        c->req = req;
        c->group_id = group_id;
        c->respond = respond;
        c->writes = arena_calloc(&req->arena, (size_t)write_count_max + 1, sizeof(*c->writes));
        c->errors = arena_calloc(&req->arena, (size_t)write_count_max + 1, sizeof(*c->errors));
        return c->writes && c->errors ? 0 : -ENOMEM;
}

struct offsets_write *offsets_commit_add(struct offsets_commit *c, int16_t *error_code, struct kstr topic,
                                         int32_t partition, int64_t offset, int32_t leader_epoch,
                                         struct kstr metadata)
{
        struct offsets_write *w = &c->writes[c->count];
        c->errors[c->count++] = error_code;
        w->group = c->group_id;
        w->topic = topic;
        w->partition = partition;
        w->value.offset = offset;
        w->value.leader_epoch = leader_epoch < 0 ? OFFSETS_NO_LEADER_EPOCH : leader_epoch;
        w->value.metadata = kstr_is_null(metadata) ? (struct kstr){ "", 0 } : metadata;
        w->value.commit_timestamp_ms = OFFSETS_NO_TIMESTAMP;
        w->value.expire_timestamp_ms = OFFSETS_NO_TIMESTAMP;
        return w;
}

void offsets_commit_fail(struct offsets_commit *c, int16_t code)
{
        for (uint32_t i = 0; i < c->count; i++)
                *c->errors[i] = code;
}

void offsets_commit_go_home(struct offsets_commit *c, void (*at_home)(void *c))
{
        assert(c->place.topic);
        reactor_task_init(&c->task, at_home, c);
        partition_home_run(c->place.home, &c->task);
}

void offsets_commit_append(struct offsets_commit *c, struct partition *p, uint8_t *batch, size_t len,
                           bool is_txn_verified, partition_append_done_fn done)
{
        c->append.batches = batch;
        c->append.len = len;
        c->append.is_durable = true;
        c->append.is_txn_verified = is_txn_verified;
        c->append.done = done;
        c->append.ctx = c;
        partition_append(p, &c->append);
}

static void commit_answer(void *arg)
{
        struct offsets_commit *c = arg;
        coordinator_place_put(&c->place);
        c->respond(c);
}

void offsets_commit_go_back(struct offsets_commit *c)
{
        reactor_task_init(&c->task, commit_answer, c);
        partition_home_run(c->req->reactor, &c->task);
}

/* ---- OffsetCommit ---- */

struct commit_op {
        struct offsets_commit c;
        const struct offset_commit_request *rq;
        struct offset_commit_response *resp;
        struct shard *shard;            /* while the append runs */
};

static void commit_respond(struct offsets_commit *c)
{
        struct commit_op *op = container_of(c, struct commit_op, c);
        struct offset_commit_response *resp = op->resp;
        struct offsets_answer_topic *topics = (struct offsets_answer_topic *)(void *)resp->topics.items;
        if (offsets_answer_order(&c->req->arena, &topics, &resp->topics.count) < 0) {
                request_close_connection(c->req);
                return;
        }
        resp->topics.items = (struct offset_commit_response_topic *)(void *)topics;
        dispatch_respond(c->req, resp);
}

static void commit_append_done(struct partition_append *a)
{
        struct offsets_commit *c = a->ctx;
        struct commit_op *op = container_of(c, struct commit_op, c);
        struct shard *s = op->shard;
        if (a->error_code != KAFKA_NONE) {
                log_warn("committing %u offsets of group %.*s to %s-%d failed: %s", c->count,
                         (int)c->group_id.len, c->group_id.ptr, COORDINATOR_OFFSETS_TOPIC, s->index,
                         kafka_error_name(a->error_code));
                offsets_commit_fail(c, offsets_coordinator_error(a->error_code));
        } else {
                for (uint32_t i = 0; i < c->count; i++)
                        c->writes[i].value.record_offset = a->base_offset + (int64_t)i;
                for (uint32_t i = 0; i < c->count; i++)
                        if (offsets_store_apply(s->store, &c->writes[i]) < 0)
                                log_error("out of memory applying a durable commit of group %.*s; OffsetFetch "
                                          "misses it until the broker restarts",
                                          (int)c->group_id.len, c->group_id.ptr);
        }
        offsets_store_end_write(s->store, c->group_id);
        bridge_note_offsets(s, c->group_id);
        offsets_commit_go_back(c);
}

static void commit_at_home(void *arg)
{
        struct offsets_commit *c = arg;
        struct commit_op *op = container_of(c, struct commit_op, c);
        struct request *req = c->req;
        const struct offset_commit_request *rq = op->rq;
        int16_t err = KAFKA_NONE;
        struct shard *s = shard_get(c->b, c->place.topic, c->place.partition, &err);
        if (!s)
                goto fail;
        err = bridge_validate_commit(groups_here(c->b), rq, req->api_version);
        if (err != KAFKA_NONE)
                goto fail;

        /* OffsetAndMetadata.fromRequest: v1 may carry the commit time; v2-v4
         * a retention that sets an expire time. */
        int64_t now_ms = wall_now_ms();
        int64_t expire_ms = rq->retention_time_ms != -1 && req->api_version >= 2 && req->api_version <= 4 ?
                                    now_ms + rq->retention_time_ms : OFFSETS_NO_TIMESTAMP;
        for (uint32_t i = 0; i < c->count; i++) {
                struct offsets_value *v = &c->writes[i].value;
                if (v->commit_timestamp_ms == OFFSETS_NO_TIMESTAMP)
                        v->commit_timestamp_ms = now_ms;
                v->expire_timestamp_ms = expire_ms;
        }
        uint8_t *batch;
        size_t len;
        int rc = offsets_batch_build(c->writes, c->count, now_ms, &req->arena, &batch, &len);
        if (rc < 0) {
                err = rc == -ENOMEM ? KAFKA_COORDINATOR_NOT_AVAILABLE : KAFKA_UNKNOWN_SERVER_ERROR;
                goto fail;
        }
        struct partition *p = partition_home_get(c->b, c->place.topic, c->place.partition, &err);
        if (!p) {
                err = offsets_coordinator_error(err);
                goto fail;
        }
        if (offsets_store_begin_write(s->store, rq->group_id) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        op->shard = s;
        /* done (commit_append_done) takes it from here, maybe at once. */
        offsets_commit_append(c, p, batch, len, false, commit_append_done);
        return;
fail:
        offsets_commit_fail(c, err);
        offsets_commit_go_back(c);
}

void handle_offset_commit(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct offset_commit_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct offset_commit_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct commit_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        offset_commit_response_init(resp);
        int32_t topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
        uint32_t total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                total += rq->topics.items[t].partitions.count > 0 ? (uint32_t)rq->topics.items[t].partitions.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*resp->topics.items));
        if (!resp->topics.items || offsets_commit_init(&op->c, b, req, rq->group_id, total, commit_respond) < 0)
                goto out_of_memory;
        resp->topics.count = topic_count;
        op->rq = rq;
        op->resp = resp;

        /* An empty group id is a group like any other to Kafka 4.4's
         * OffsetCommit and OffsetFetch (not to OffsetDelete). */
        int32_t metadata_max = b->config->offset_metadata_max_bytes;
        for (int32_t t = 0; t < topic_count; t++) {
                const struct offset_commit_request_topic *tq = &rq->topics.items[t];
                struct offset_commit_response_topic *tr = &resp->topics.items[t];
                offset_commit_response_topic_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        const struct offset_commit_request_partition *pq = &tq->partitions.items[i];
                        struct offset_commit_response_partition *out = &tr->partitions.items[i];
                        offset_commit_response_partition_init(out);
                        out->partition_index = pq->partition_index;
                        if (!topic || !catalog_topic_partition(topic, pq->partition_index)) {
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        if (!kstr_is_null(pq->committed_metadata) &&
                            offsets_metadata_length(pq->committed_metadata) > metadata_max) {
                                out->error_code = KAFKA_OFFSET_METADATA_TOO_LARGE;
                                continue;
                        }
                        struct offsets_write *w =
                                offsets_commit_add(&op->c, &out->error_code, tq->name, pq->partition_index,
                                                   pq->committed_offset, pq->committed_leader_epoch,
                                                   pq->committed_metadata);
                        if (req->api_version == 1 && pq->commit_timestamp != -1)
                                w->value.commit_timestamp_ms = pq->commit_timestamp;
                }
                catalog_topic_put(topic);
        }
        /* Nothing left for the coordinator: Kafka answers without asking it. */
        if (op->c.count == 0) {
                commit_respond(&op->c);
                return;
        }
        /* No __consumer_offsets yet: NOT_COORDINATOR sends the client to
         * FindCoordinator, which creates it. */
        if (!coordinator_locate_group(b, rq->group_id, &op->c.place)) {
                offsets_commit_fail(&op->c, KAFKA_NOT_COORDINATOR);
                commit_respond(&op->c);
                return;
        }
        offsets_commit_go_home(&op->c, commit_at_home);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetCommit exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- OffsetFetch ---- */

/* One group of an OffsetFetch, in the v8+ shape whatever the version. */
struct fetch_group {
        struct kstr group_id;
        bool is_all_topics;
        const struct offset_fetch_request_topics *topics;       /* when not all */
        int32_t topic_count;
        bool is_stable_required;                                /* OffsetFetch v7+ require_stable */
        struct coordinator_place place;                         /* topic held; NULL: no home */
        struct offset_fetch_response_group *out;
};

struct fetch_op {
        struct broker *b;
        struct request *req;
        struct offset_fetch_response *resp;
        struct fetch_group *groups;
        int32_t count;
        int32_t next;                   /* the next group to visit */
        struct reactor_task task;
};

/* Kafka's answer for a partition with pending transactional offsets when
 * the client asks for stable offsets only (KIP-447): it retries. */
static void fetch_unstable(struct offset_fetch_response_partitions *p)
{
        p->error_code = KAFKA_UNSTABLE_OFFSET_COMMIT;
        p->committed_offset = OFFSETS_INVALID_OFFSET;
        p->committed_leader_epoch = OFFSETS_NO_LEADER_EPOCH;
        p->metadata = (struct kstr){ "", 0 };
}

static int fetch_fill_all(struct fetch_group *fg, struct shard *s, struct arena *a)
{
        struct offsets_item *items;
        uint32_t n;
        int rc = offsets_store_list_group(s->store, fg->group_id, a, &items, &n);
        if (rc < 0)
                return rc;
        int32_t topic_count = 0;
        for (uint32_t i = 0; i < n; i++)
                topic_count += i == 0 || !kstr_eq(items[i].topic, items[i - 1].topic);
        struct offset_fetch_response_topics *topics = arena_calloc(a, (size_t)topic_count + 1, sizeof(*topics));
        struct offset_fetch_response_partitions *parts = arena_calloc(a, (size_t)n + 1, sizeof(*parts));
        if (!topics || !parts)
                return -ENOMEM;
        int32_t t = -1;
        for (uint32_t i = 0; i < n; i++) {
                if (i == 0 || !kstr_eq(items[i].topic, items[i - 1].topic)) {
                        t++;
                        offset_fetch_response_topics_init(&topics[t]);
                        topics[t].name = items[i].topic;
                        topics[t].partitions.items = &parts[i];
                }
                struct offset_fetch_response_partitions *p = &parts[i];
                offset_fetch_response_partitions_init(p);
                p->partition_index = items[i].partition;
                topics[t].partitions.count++;
                if (fg->is_stable_required &&
                    offsets_store_has_pending(s->store, fg->group_id, items[i].topic, items[i].partition)) {
                        fetch_unstable(p);
                        continue;
                }
                p->committed_offset = items[i].value.offset;
                p->committed_leader_epoch = items[i].value.leader_epoch;
                p->metadata = items[i].value.metadata;
        }
        assert(t + 1 == topic_count);
        fg->out->topics.items = topics;
        fg->out->topics.count = topic_count;
        return 0;
}

static int fetch_fill_some(struct fetch_group *fg, struct shard *s, struct arena *a)
{
        struct offset_fetch_response_topics *topics = arena_calloc(a, (size_t)fg->topic_count + 1, sizeof(*topics));
        if (!topics)
                return -ENOMEM;
        for (int32_t t = 0; t < fg->topic_count; t++) {
                const struct offset_fetch_request_topics *tq = &fg->topics[t];
                struct offset_fetch_response_topics *tr = &topics[t];
                offset_fetch_response_topics_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partition_indexes.count > 0 ? tq->partition_indexes.count : 0;
                tr->partitions.items = arena_calloc(a, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        return -ENOMEM;
                tr->partitions.count = pn;
                for (int32_t i = 0; i < pn; i++) {
                        struct offset_fetch_response_partitions *p = &tr->partitions.items[i];
                        offset_fetch_response_partitions_init(p);
                        p->partition_index = tq->partition_indexes.items[i];
                        p->committed_offset = OFFSETS_INVALID_OFFSET;
                        p->committed_leader_epoch = OFFSETS_NO_LEADER_EPOCH;
                        p->metadata = (struct kstr){ "", 0 };
                        if (fg->is_stable_required &&
                            offsets_store_has_pending(s->store, fg->group_id, tq->name, p->partition_index)) {
                                fetch_unstable(p);
                                continue;
                        }
                        const struct offsets_value *v =
                                offsets_store_get(s->store, fg->group_id, tq->name, p->partition_index);
                        if (!v)
                                continue;
                        p->committed_offset = v->offset;
                        p->committed_leader_epoch = v->leader_epoch;
                        if (v->metadata.len > 0) {
                                char *md = arena_dup(a, v->metadata.ptr, (size_t)v->metadata.len);
                                if (!md)
                                        return -ENOMEM;
                                p->metadata = (struct kstr){ md, v->metadata.len };
                        }
                }
        }
        fg->out->topics.items = topics;
        fg->out->topics.count = fg->topic_count;
        return 0;
}

static void fetch_visit(void *arg);

static void fetch_answer(void *arg)
{
        struct fetch_op *op = arg;
        struct request *req = op->req;
        struct offset_fetch_response *resp = op->resp;
        for (int32_t i = 0; i < op->count; i++)
                if (op->groups[i].place.topic)
                        coordinator_place_put(&op->groups[i].place);
        if (req->api_version >= 8) {
                dispatch_respond(req, resp);
                return;
        }
        /* v0-v7: one group, with its answer in the top-level fields. */
        assert(op->count == 1);
        const struct offset_fetch_response_group *g = &resp->groups.items[0];
        const struct fetch_group *fg = &op->groups[0];
        resp->groups.count = 0;
        resp->groups.items = NULL;
        resp->error_code = g->error_code;
        if (g->error_code != KAFKA_NONE && req->api_version < 2) {
                /* v0-v1 have no top-level error: every partition asked carries it. */
                resp->topics.items = arena_calloc(&req->arena, (size_t)fg->topic_count + 1,
                                                  sizeof(*resp->topics.items));
                if (!resp->topics.items)
                        goto out_of_memory;
                resp->topics.count = fg->topic_count;
                for (int32_t t = 0; t < fg->topic_count; t++) {
                        struct offset_fetch_response_topic *tr = &resp->topics.items[t];
                        offset_fetch_response_topic_init(tr);
                        tr->name = fg->topics[t].name;
                        const struct kint32_array *asked = &fg->topics[t].partition_indexes;
                        int32_t pn = asked->count > 0 ? asked->count : 0;
                        tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1,
                                                            sizeof(*tr->partitions.items));
                        if (!tr->partitions.items)
                                goto out_of_memory;
                        tr->partitions.count = pn;
                        for (int32_t i = 0; i < pn; i++) {
                                struct offset_fetch_response_partition *p = &tr->partitions.items[i];
                                offset_fetch_response_partition_init(p);
                                p->partition_index = asked->items[i];
                                p->committed_offset = OFFSETS_INVALID_OFFSET;
                                p->metadata = (struct kstr){ "", 0 };
                                p->error_code = g->error_code;
                        }
                }
                dispatch_respond(req, resp);
                return;
        }
        int32_t tn = g->error_code == KAFKA_NONE ? g->topics.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)tn + 1, sizeof(*resp->topics.items));
        if (!resp->topics.items)
                goto out_of_memory;
        resp->topics.count = tn;
        for (int32_t t = 0; t < tn; t++) {
                const struct offset_fetch_response_topics *from = &g->topics.items[t];
                struct offset_fetch_response_topic *tr = &resp->topics.items[t];
                offset_fetch_response_topic_init(tr);
                tr->name = from->name;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)from->partitions.count + 1,
                                                    sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = from->partitions.count;
                for (int32_t i = 0; i < from->partitions.count; i++) {
                        const struct offset_fetch_response_partitions *fp = &from->partitions.items[i];
                        struct offset_fetch_response_partition *p = &tr->partitions.items[i];
                        offset_fetch_response_partition_init(p);
                        p->partition_index = fp->partition_index;
                        p->committed_offset = fp->committed_offset;
                        p->committed_leader_epoch = fp->committed_leader_epoch;
                        p->metadata = fp->metadata;
                        p->error_code = fp->error_code;
                }
        }
        dispatch_respond(req, resp);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetFetch exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* Moves on to the next group's home, or back to the request's reactor. */
static void fetch_go_next(struct fetch_op *op)
{
        while (op->next < op->count && !op->groups[op->next].place.topic)
                op->next++;
        struct reactor *to = op->req->reactor;
        reactor_callback_fn fn = fetch_answer;
        if (op->next < op->count) {
                const struct fetch_group *fg = &op->groups[op->next];
                to = fg->place.home;
                fn = fetch_visit;
        }
        reactor_task_init(&op->task, fn, op);
        partition_home_run(to, &op->task);
}

/* At the home of groups[next] (and of any later group homed here too). */
static void fetch_visit(void *arg)
{
        struct fetch_op *op = arg;
        struct reactor *here = reactor_self();
        while (op->next < op->count) {
                struct fetch_group *fg = &op->groups[op->next];
                if (fg->place.topic && fg->place.home != here)
                        break;
                op->next++;
                if (!fg->place.topic)
                        continue;
                int16_t err = KAFKA_NONE;
                struct shard *s = shard_get(op->b, fg->place.topic, fg->place.partition, &err);
                if (!s) {
                        fg->out->error_code = err;
                        continue;
                }
                int rc = fg->is_all_topics ? fetch_fill_all(fg, s, &op->req->arena) :
                                             fetch_fill_some(fg, s, &op->req->arena);
                if (rc < 0) {
                        fg->out->topics.count = 0;
                        fg->out->error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
                }
        }
        fetch_go_next(op);
}

void handle_offset_fetch(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct offset_fetch_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct offset_fetch_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct fetch_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        offset_fetch_response_init(resp);
        op->b = b;
        op->req = req;
        op->resp = resp;
        op->count = req->api_version >= 8 ? (rq->groups.count > 0 ? rq->groups.count : 0) : 1;
        op->groups = arena_calloc(&req->arena, (size_t)op->count + 1, sizeof(*op->groups));
        resp->groups.items = arena_calloc(&req->arena, (size_t)op->count + 1, sizeof(*resp->groups.items));
        if (!op->groups || !resp->groups.items)
                goto out_of_memory;
        resp->groups.count = op->count;
        for (int32_t i = 0; i < op->count; i++) {
                struct fetch_group *fg = &op->groups[i];
                if (req->api_version >= 8) {
                        const struct offset_fetch_request_group *gq = &rq->groups.items[i];
                        fg->group_id = gq->group_id;
                        fg->is_all_topics = gq->topics.count < 0;
                        fg->topics = gq->topics.items;
                        fg->topic_count = gq->topics.count > 0 ? gq->topics.count : 0;
                } else {
                        /* v0-v7 topics have the v8 topics' layout: same fields, same types. */
                        _Static_assert(sizeof(struct offset_fetch_request_topic) ==
                                               sizeof(struct offset_fetch_request_topics),
                                       "OffsetFetch topic layouts differ");
                        fg->group_id = rq->group_id;
                        fg->is_all_topics = rq->topics.count < 0;
                        fg->topics = (const struct offset_fetch_request_topics *)(const void *)rq->topics.items;
                        fg->topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
                }
                fg->is_stable_required = req->api_version >= 7 && rq->require_stable;
                fg->out = &resp->groups.items[i];
                offset_fetch_response_group_init(fg->out);
                fg->out->group_id = fg->group_id;
                if (!coordinator_locate_group(b, fg->group_id, &fg->place)) {
                        fg->place.topic = NULL;
                        fg->out->error_code = KAFKA_NOT_COORDINATOR;
                }
        }
        fetch_go_next(op);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetFetch exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}

/* ---- OffsetDelete ---- */

struct delete_op {
        struct broker *b;
        struct request *req;
        const struct offset_delete_request *rq;
        struct offset_delete_response *resp;
        struct coordinator_place place; /* topic held while set */
        /* The partitions that exist, with their answers. */
        struct offsets_write *writes;
        int16_t **errors;
        uint32_t count;
        uint32_t tombstone_count;       /* writes[0..tombstone_count) once at home */
        struct shard *shard;
        struct partition_append append;
        struct reactor_task task;
};

static void delete_answer(void *arg)
{
        struct delete_op *op = arg;
        coordinator_place_put(&op->place);
        struct offset_delete_response *resp = op->resp;
        if (resp->error_code != KAFKA_NONE)
                resp->topics.count = 0;         /* Kafka answers a group error alone */
        struct offsets_answer_topic *topics = (struct offsets_answer_topic *)(void *)resp->topics.items;
        if (offsets_answer_order(&op->req->arena, &topics, &resp->topics.count) < 0) {
                request_close_connection(op->req);
                return;
        }
        resp->topics.items = (struct offset_delete_response_topic *)(void *)topics;
        dispatch_respond(op->req, resp);
}

static void delete_go_back(struct delete_op *op)
{
        reactor_task_init(&op->task, delete_answer, op);
        partition_home_run(op->req->reactor, &op->task);
}

static void delete_append_done(struct partition_append *a)
{
        struct delete_op *op = a->ctx;
        struct shard *s = op->shard;
        if (a->error_code != KAFKA_NONE) {
                op->resp->error_code = offsets_coordinator_error(a->error_code);
        } else {
                for (uint32_t i = 0; i < op->tombstone_count; i++)
                        if (offsets_store_apply(s->store, &op->writes[i]) < 0)
                                log_error("out of memory applying an offset tombstone");
        }
        offsets_store_end_write(s->store, op->rq->group_id);
        bridge_note_offsets(s, op->rq->group_id);
        delete_go_back(op);
}

static void delete_at_home(void *arg)
{
        struct delete_op *op = arg;
        const struct offset_delete_request *rq = op->rq;
        int16_t err = KAFKA_NONE;
        struct shard *s = shard_get(op->b, op->place.topic, op->place.partition, &err);
        if (!s)
                goto fail;
        const struct group *g;
        err = bridge_validate_delete(s, rq->group_id, &g);
        if (err != KAFKA_NONE)
                goto fail;
        /* Subscribed partitions refuse; the others get a tombstone when
         * they have an offset (and answer NONE either way). */
        uint32_t n = 0;
        for (uint32_t i = 0; i < op->count; i++) {
                struct offsets_write *w = &op->writes[i];
                if (g && group_is_subscribed(g, w->topic)) {
                        *op->errors[i] = KAFKA_GROUP_SUBSCRIBED_TO_TOPIC;
                        continue;
                }
                if (offsets_store_get(s->store, w->group, w->topic, w->partition))
                        op->writes[n++] = *w;
        }
        op->tombstone_count = n;
        if (n == 0) {
                delete_go_back(op);
                return;
        }
        uint8_t *batch;
        size_t len;
        if (offsets_batch_build(op->writes, n, wall_now_ms(), &op->req->arena, &batch, &len) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        struct partition *p = partition_home_get(op->b, op->place.topic, op->place.partition, &err);
        if (!p) {
                err = offsets_coordinator_error(err);
                goto fail;
        }
        if (offsets_store_begin_write(s->store, rq->group_id) < 0) {
                err = KAFKA_COORDINATOR_NOT_AVAILABLE;
                goto fail;
        }
        op->shard = s;
        op->append.batches = batch;
        op->append.len = len;
        op->append.is_durable = true;
        op->append.done = delete_append_done;
        op->append.ctx = op;
        partition_append(p, &op->append);
        return;
fail:
        op->resp->error_code = err;
        delete_go_back(op);
}

void handle_offset_delete(struct broker *b, struct request *req, struct kreader *body)
{
        offsets_maybe_load_all(b);
        struct offset_delete_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct offset_delete_response *resp = arena_alloc(&req->arena, sizeof(*resp));
        struct delete_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!resp || !op)
                goto out_of_memory;
        offset_delete_response_init(resp);
        int32_t topic_count = rq->topics.count > 0 ? rq->topics.count : 0;
        uint32_t total = 0;
        for (int32_t t = 0; t < topic_count; t++)
                total += rq->topics.items[t].partitions.count > 0 ? (uint32_t)rq->topics.items[t].partitions.count : 0;
        resp->topics.items = arena_calloc(&req->arena, (size_t)topic_count + 1, sizeof(*resp->topics.items));
        op->writes = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*op->writes));
        op->errors = arena_calloc(&req->arena, (size_t)total + 1, sizeof(*op->errors));
        if (!resp->topics.items || !op->writes || !op->errors)
                goto out_of_memory;
        resp->topics.count = topic_count;
        op->b = b;
        op->req = req;
        op->rq = rq;
        op->resp = resp;
        if (rq->group_id.len <= 0) {
                resp->error_code = KAFKA_INVALID_GROUP_ID;
                resp->topics.count = 0;
                dispatch_respond(req, resp);
                return;
        }
        for (int32_t t = 0; t < topic_count; t++) {
                const struct offset_delete_request_topic *tq = &rq->topics.items[t];
                struct offset_delete_response_topic *tr = &resp->topics.items[t];
                offset_delete_response_topic_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->partitions.items = arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->partitions.items));
                if (!tr->partitions.items)
                        goto out_of_memory;
                tr->partitions.count = pn;
                const struct catalog_topic *topic = catalog_get_topic(b->catalog, tq->name);
                for (int32_t i = 0; i < pn; i++) {
                        struct offset_delete_response_partition *out = &tr->partitions.items[i];
                        offset_delete_response_partition_init(out);
                        out->partition_index = tq->partitions.items[i].partition_index;
                        if (!topic || !catalog_topic_partition(topic, out->partition_index)) {
                                out->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                                continue;
                        }
                        struct offsets_write *w = &op->writes[op->count];
                        op->errors[op->count++] = &out->error_code;
                        w->group = rq->group_id;
                        w->topic = tq->name;
                        w->partition = out->partition_index;
                        w->is_tombstone = true;
                }
                catalog_topic_put(topic);
        }
        if (!coordinator_locate_group(b, rq->group_id, &op->place)) {
                resp->error_code = KAFKA_NOT_COORDINATOR;
                resp->topics.count = 0;
                dispatch_respond(req, resp);
                return;
        }
        reactor_task_init(&op->task, delete_at_home, op);
        partition_home_run(op->place.home, &op->task);
        return;

out_of_memory:
        log_warn("closing connection from %s: OffsetDelete exceeds the request memory limit", request_peer(req));
        request_close_connection(req);
}
