/*
 * txn.c - the transaction coordinator at work: InitProducerId with a
 * transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, the
 * transactional Produce check, and the shards that serve them.
 *
 * Every transactional id belongs to one partition of __transaction_state
 * (abs(Java hashCode) % transaction.state.log.num.partitions, as Kafka),
 * and its state lives in that partition's shard, on the partition's home
 * reactor: a struct txn_coordinator (coordinator/txn.h) that decides, and
 * this file, which does what it asks:
 *   - appends: TransactionLog records appended to the shard's partition
 *     with acks=all durability; the coordinator hears back when they are
 *     durable (txn_append_done), and only then answers the request that
 *     asked for them;
 *   - markers: after PrepareCommit/PrepareAbort, a control batch per
 *     partition of the transaction, written directly at each partition's
 *     home (one node: no WriteTxnMarkers over the network), retried until
 *     written; when all are, the coordinator asks for the Complete* record.
 *
 * Requests travel as in groups.c: from the connection's reactor to the
 * shard's home and back; while away the connection's reactor does not
 * touch the request, so the home allocates from its arena. Work not tied
 * to a request (markers, Complete* records, timeouts) carries its own
 * memory.
 *
 * A shard is created, and its partition replayed, the first time one of
 * its ids is served, or at start-up for every partition (txn_load_all);
 * meanwhile its ids answer COORDINATOR_LOAD_IN_PROGRESS.
 *
 * Invariants:
 *   - shards[i] is touched only on the home reactor of partition i;
 *   - every request carried home comes back and is answered exactly once;
 *   - every write and marker job in flight is on its shard's jobs list
 *     until it ends, so nothing is lost from sight at shutdown.
 */
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../base/logging.h"
#include "../coordinator/group.h"
#include "../coordinator/log_replay.h"
#include "../coordinator/txn.h"
#include "../log/producer_ids.h"
#include "../protocol/gen/add_offsets_to_txn.h"
#include "../protocol/gen/add_partitions_to_txn.h"
#include "../protocol/gen/end_txn.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/init_producer_id.h"
#include "broker.h"
#include "coordinator_topic.h"
#include "handlers.h"
#include "offsets.h"
#include "partition_home.h"
#include "request.h"
#include "txn.h"

#define TXN_LOAD_STEP_BYTES (4u << 20)
#define TXN_SCRATCH_BYTES (64u << 20)
#define TXN_JOB_ARENA_BYTES (4u << 20)
#define TXN_MARKER_RETRY_MS 200u
/* Transactions a timeout or expiry pass handles; the rest wait for the next. */
#define TXN_PASS_MAX 1000u

/* ---- shards ---- */

struct txn_job;

struct txn_shard {
        struct broker *broker;
        struct reactor *home;
        int32_t index;
        bool is_loaded;
        struct txn_coordinator *tc;
        struct log_replay replay;
        struct reactor_task load_task;
        struct txn_op *waiting;                 /* requests waiting for their append */
        struct txn_job *jobs;                   /* writes and marker sets in flight */
        reactor_timer_id abort_timer;
        reactor_timer_id expire_timer;
};

static struct txn_shard *shards[CATALOG_PARTITIONS_MAX];

static int64_t wall_now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the topic ---- */

int16_t txn_ensure_topic(struct broker *b)
{
        char segment_bytes[16];
        snprintf(segment_bytes, sizeof(segment_bytes), "%d", b->config->transaction_state_log_segment_bytes);
        /* Kafka's TransactionLog topic configs. */
        const struct catalog_config configs[] = {
                { "cleanup.policy", "compact" },
                { "compression.type", "uncompressed" },
                { "segment.bytes", segment_bytes },
        };
        return coordinator_ensure_topic(b, TXN_STATE_TOPIC, b->config->transaction_state_log_num_partitions,
                                        configs, sizeof(configs) / sizeof(configs[0]), "transaction coordinator");
}

/* The shard partition of a transactional id, and its home. false when
 * __transaction_state does not exist yet. */
static bool txn_locate(struct broker *b, struct kstr transactional_id, const struct catalog_topic **topic_out,
                       int32_t *index_out, struct reactor **home_out)
{
        const struct catalog_topic *t = catalog_get_topic(b->catalog, KSTR(TXN_STATE_TOPIC));
        if (!t)
                return false;
        *topic_out = t;
        *index_out = group_partition_of(transactional_id, t->partition_count);
        *home_out = partition_home_reactor(b->homes, partition_home_index(b->homes, t, *index_out));
        return true;
}

/* The shard's partition of __transaction_state, on its home; NULL with
 * *error_code when it is not open (shutting down, deleted by hand). No
 * topic reference is kept: the shard lives as long as the process. */
static struct partition *shard_partition(struct txn_shard *s, int16_t *error_code)
{
        const struct catalog_topic *t = catalog_get_topic(s->broker->catalog, KSTR(TXN_STATE_TOPIC));
        struct partition *p = t && s->index < t->partition_count ? partition_home_get(s->broker, t, s->index,
                                                                                      error_code)
                                                                 : NULL;
        if (!t)
                *error_code = KAFKA_NOT_COORDINATOR;
        catalog_topic_put(t);
        return p;
}

/* ---- jobs: writes to the shard's partition, and marker sets ---- */

struct txn_marker_part;

struct txn_job {
        struct txn_shard *shard;
        struct txn_job *prev, *next;
        struct arena arena;
        struct kstr transactional_id;
        bool is_markers;
        /* a write */
        uint64_t append_id;
        struct partition_append append;
        /* markers */
        uint64_t markers_id;
        struct partition_marker marker;
        uint32_t part_count;
        uint32_t remaining;
        struct txn_marker_part *parts;
};

struct txn_marker_part {
        struct txn_job *job;
        const struct catalog_topic *topic;      /* held while the marker is written */
        struct kstr topic_name;
        int32_t partition;
        struct partition_append append;
        struct reactor_task to_home, back;
        int16_t error_code;
};

struct txn_op;
static void handle_output(struct txn_shard *s, const struct txn_output *out, struct txn_op *op);

static void job_link(struct txn_shard *s, struct txn_job *j)
{
        j->shard = s;
        j->next = s->jobs;
        if (s->jobs)
                s->jobs->prev = j;
        s->jobs = j;
}

static void job_free(struct txn_job *j)
{
        struct txn_shard *s = j->shard;
        if (j->prev)
                j->prev->next = j->next;
        else
                s->jobs = j->next;
        if (j->next)
                j->next->prev = j->prev;
        arena_free(&j->arena);
        free(j);
}

static struct txn_job *job_new(struct txn_shard *s, struct kstr transactional_id)
{
        struct txn_job *j = calloc(1, sizeof(*j));
        if (!j)
                return NULL;
        arena_init(&j->arena, TXN_JOB_ARENA_BYTES);
        j->transactional_id.len = transactional_id.len;
        j->transactional_id.ptr = arena_dup(&j->arena, transactional_id.ptr, (size_t)transactional_id.len);
        if (!j->transactional_id.ptr && transactional_id.len > 0) {
                arena_free(&j->arena);
                free(j);
                return NULL;
        }
        job_link(s, j);
        return j;
}

/* The output of a call made outside any request, handled and freed. */
static void run_output(struct txn_shard *s, void (*call)(struct txn_shard *, void *, struct arena *,
                                                         struct txn_output *), void *arg)
{
        struct arena a;
        arena_init(&a, TXN_JOB_ARENA_BYTES);
        struct txn_output out;
        memset(&out, 0, sizeof(out));
        call(s, arg, &a, &out);
        handle_output(s, &out, NULL);
        arena_free(&a);
}

static struct txn_op *take_waiting(struct txn_shard *s, uint64_t append_id);
static void op_answer(struct txn_op *op, const struct txn_output *out);

/* A record is durable (or failed): the coordinator moves on, and the
 * request that asked for it, if any, gets its answer. */
static void write_done(struct partition_append *a)
{
        struct txn_job *j = a->ctx;
        struct txn_shard *s = j->shard;
        struct arena tmp;
        arena_init(&tmp, TXN_JOB_ARENA_BYTES);
        struct txn_output out;
        memset(&out, 0, sizeof(out));
        if (a->error_code != KAFKA_NONE)
                log_warn("writing transaction state of %.*s to %s-%d failed: %s", j->transactional_id.len,
                         j->transactional_id.ptr, TXN_STATE_TOPIC, s->index, kafka_error_name(a->error_code));
        txn_append_done(s->tc, j->transactional_id, j->append_id, a->error_code, wall_now_ms(), &tmp, &out);
        struct txn_op *op = take_waiting(s, j->append_id);
        job_free(j);
        handle_output(s, &out, op);
        arena_free(&tmp);
}

static void write_start(struct txn_shard *s, const struct txn_append *ap)
{
        struct txn_job *j = job_new(s, ap->transactional_id);
        int16_t err = KAFKA_NONE;
        struct partition *p = NULL;
        uint8_t *batch = NULL;
        size_t len = 0;
        if (!j) {
                log_error("out of memory writing transaction state of %s-%d", TXN_STATE_TOPIC, s->index);
                return;
        }
        j->append_id = ap->id;
        j->append.ctx = j;
        j->append.done = write_done;
        j->append.is_durable = true;
        if (txn_batch_build(ap, 1, wall_now_ms(), &j->arena, &batch, &len) < 0)
                err = KAFKA_UNKNOWN_SERVER_ERROR;
        else
                p = shard_partition(s, &err);
        if (!p) {
                j->append.error_code = err ? err : KAFKA_NOT_LEADER_OR_FOLLOWER;
                write_done(&j->append);
                return;
        }
        j->append.batches = batch;
        j->append.len = len;
        partition_append(p, &j->append);
}

static void call_markers_done(struct txn_shard *s, void *arg, struct arena *a, struct txn_output *out)
{
        struct txn_job *j = arg;
        txn_markers_done(s->tc, j->transactional_id, j->markers_id, wall_now_ms(), a, out);
}

static void marker_part_start(void *arg);

/* Back on the shard's home with one partition's outcome. */
static void marker_part_back(void *arg)
{
        struct txn_marker_part *mp = arg;
        struct txn_job *j = mp->job;
        struct txn_shard *s = j->shard;
        catalog_topic_put(mp->topic);
        mp->topic = NULL;
        int16_t err = mp->error_code;
        bool is_gone = err == KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
        if (err != KAFKA_NONE && !is_gone) {
                bool is_refused = err == KAFKA_INVALID_PRODUCER_EPOCH || err == KAFKA_TRANSACTION_COORDINATOR_FENCED;
                if (!is_refused) {
                        /* Kafka retries markers until they are written. */
                        if (!reactor_timer_add(s->home, TXN_MARKER_RETRY_MS, marker_part_start, mp))
                                log_error("cannot retry a transaction marker for %.*s-%d (out of timers)",
                                          mp->topic_name.len, mp->topic_name.ptr, mp->partition);
                        return;
                }
                /* A newer epoch wrote there already: nothing to complete. */
                log_warn("transaction marker for %.*s-%d refused (%s)", mp->topic_name.len, mp->topic_name.ptr,
                         mp->partition, kafka_error_name(err));
        }
        assert(j->remaining > 0);
        if (--j->remaining > 0)
                return;
        run_output(s, call_markers_done, j);
        job_free(j);
}

static void marker_append_done(struct partition_append *a)
{
        struct txn_marker_part *mp = a->ctx;
        mp->error_code = a->error_code;
        /* KIP-98: a marker on __consumer_offsets commits or drops the
         * transaction's pending offsets there. This runs on the partition's
         * home, which is its offsets shard's home too. */
        if (a->error_code == KAFKA_NONE && kstr_eq_cstr(mp->topic_name, TXN_OFFSETS_TOPIC))
                offsets_txn_marker_written(mp->job->shard->broker, mp->partition, mp->job->marker.producer_id,
                                           mp->job->marker.is_commit, a->base_offset);
        reactor_task_init(&mp->back, marker_part_back, mp);
        partition_home_run(mp->job->shard->home, &mp->back);
}

/* At the partition's home: write the marker. */
static void marker_part_at_home(void *arg)
{
        struct txn_marker_part *mp = arg;
        struct txn_shard *s = mp->job->shard;
        int16_t err = KAFKA_NONE;
        struct partition *p = mp->topic ? partition_home_get(s->broker, mp->topic, mp->partition, &err) : NULL;
        if (!p) {
                mp->error_code = mp->topic ? (err ? err : KAFKA_NOT_LEADER_OR_FOLLOWER)
                                           : KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                reactor_task_init(&mp->back, marker_part_back, mp);
                partition_home_run(s->home, &mp->back);
                return;
        }
        memset(&mp->append, 0, sizeof(mp->append));
        mp->append.marker = &mp->job->marker;
        mp->append.is_durable = true;
        mp->append.done = marker_append_done;
        mp->append.ctx = mp;
        partition_append(p, &mp->append);
}

static void marker_part_start(void *arg)
{
        struct txn_marker_part *mp = arg;
        struct txn_shard *s = mp->job->shard;
        const struct catalog_topic *t = catalog_get_topic(s->broker->catalog, mp->topic_name);
        if (t && !catalog_topic_partition(t, mp->partition)) {
                catalog_topic_put(t);
                t = NULL;
        }
        mp->topic = t;
        if (!t) {
                mp->error_code = KAFKA_UNKNOWN_TOPIC_OR_PARTITION;
                marker_part_back(mp);
                return;
        }
        reactor_task_init(&mp->to_home, marker_part_at_home, mp);
        partition_home_run(partition_home_reactor(s->broker->homes, partition_home_index(s->broker->homes, t,
                                                                                            mp->partition)),
                           &mp->to_home);
}

static void markers_start(struct txn_shard *s, const struct txn_markers *m)
{
        struct txn_job *j = job_new(s, m->transactional_id);
        if (!j) {
                log_error("out of memory writing transaction markers of %s-%d", TXN_STATE_TOPIC, s->index);
                return;
        }
        j->is_markers = true;
        j->markers_id = m->id;
        j->marker = (struct partition_marker){
                .producer_id = m->producer_id,
                .producer_epoch = m->producer_epoch,
                .coordinator_epoch = m->coordinator_epoch,
                .is_commit = m->is_commit,
        };
        uint32_t n = 0;
        for (int32_t t = 0; t < m->topic_count; t++)
                n += (uint32_t)m->topics[t].partition_count;
        j->parts = n ? arena_calloc(&j->arena, n, sizeof(*j->parts)) : NULL;
        if (n && !j->parts) {
                log_error("out of memory writing transaction markers of %s-%d", TXN_STATE_TOPIC, s->index);
                job_free(j);
                return;
        }
        for (int32_t t = 0; t < m->topic_count; t++) {
                struct kstr name = m->topics[t].topic;
                char *copy = arena_dup(&j->arena, name.ptr, (size_t)name.len);
                for (int32_t i = 0; i < m->topics[t].partition_count; i++) {
                        struct txn_marker_part *mp = &j->parts[j->part_count++];
                        mp->job = j;
                        mp->topic_name = (struct kstr){ copy ? copy : "", copy ? name.len : 0 };
                        mp->partition = m->topics[t].partitions[i];
                }
        }
        j->remaining = j->part_count + 1;       /* held while starting */
        for (uint32_t i = 0; i < j->part_count; i++)
                marker_part_start(&j->parts[i]);
        if (--j->remaining == 0) {
                run_output(s, call_markers_done, j);
                job_free(j);
        }
}

/* ---- requests ---- */

enum txn_op_kind {
        OP_INIT_PRODUCER_ID,
        OP_ADD_PARTITIONS,
        OP_ADD_OFFSETS,
        OP_END_TXN,
        OP_VERIFY,
};

struct txn_op {
        struct broker *broker;
        struct request *req;            /* NULL for a produce check */
        enum txn_op_kind kind;
        struct kstr transactional_id;
        int64_t producer_id;
        int16_t producer_epoch;
        const struct catalog_topic *topic;      /* __transaction_state, held */
        int32_t index;
        struct reactor *home;
        struct reactor *origin;
        struct reactor_task task;
        uint64_t append_id;
        struct txn_op *next;            /* on the shard's waiting list */

        /* request specifics */
        int32_t timeout_ms;
        bool is_commit;
        struct kstr group_id;           /* OP_ADD_OFFSETS */
        const struct txn_topic_partitions *topics;
        int32_t topic_count;
        int16_t *verify_errors;         /* OP_VERIFY: one per partition */
        void (*verified)(void *ctx, int16_t error_code);
        void *verified_ctx;

        /* the answer */
        int16_t error_code;
        int64_t answer_producer_id;
        int16_t answer_producer_epoch;
        void (*respond)(struct txn_op *op);
};

static struct txn_op *take_waiting(struct txn_shard *s, uint64_t append_id)
{
        for (struct txn_op **pp = &s->waiting; *pp; pp = &(*pp)->next) {
                if ((*pp)->append_id == append_id) {
                        struct txn_op *op = *pp;
                        *pp = op->next;
                        op->next = NULL;
                        return op;
                }
        }
        return NULL;
}

static void op_back(void *arg)
{
        struct txn_op *op = arg;
        catalog_topic_put(op->topic);
        op->topic = NULL;
        op->respond(op);
}

static void op_go_back(struct txn_op *op)
{
        reactor_task_init(&op->task, op_back, op);
        partition_home_run(op->origin, &op->task);
}

static void op_answer(struct txn_op *op, const struct txn_output *out)
{
        op->error_code = out->error_code;
        op->answer_producer_id = out->producer_id;
        op->answer_producer_epoch = out->producer_epoch;
        op_go_back(op);
}

static void op_fail(struct txn_op *op, int16_t code)
{
        struct txn_output out = { .has_answer = true, .error_code = code, .producer_id = -1, .producer_epoch = -1 };
        op_answer(op, &out);
}

/*
 * Does what the coordinator asked: the request waits for its append
 * (linked before the write starts, as a write may end at once), records
 * and markers are written, and an answer goes back.
 */
static void handle_output(struct txn_shard *s, const struct txn_output *out, struct txn_op *op)
{
        if (op && !out->has_answer) {
                if (out->append_count == 0) {
                        op_fail(op, KAFKA_UNKNOWN_SERVER_ERROR);
                        op = NULL;
                } else {
                        op->append_id = out->appends[0].id;
                        op->next = s->waiting;
                        s->waiting = op;
                }
        }
        for (uint32_t i = 0; i < out->append_count; i++)
                write_start(s, &out->appends[i]);
        for (uint32_t i = 0; i < out->markers_count; i++)
                markers_start(s, &out->markers[i]);
        if (op && out->has_answer)
                op_answer(op, out);
}

/* ---- loading ---- */

static int16_t next_producer_id(void *ctx, int64_t *producer_id_out)
{
        struct broker *b = ctx;
        int rc = producer_ids_next(b->producer_ids, producer_id_out);
        if (rc < 0) {
                log_error("cannot take a new block of producer ids: %s", strerror(-rc));
                return KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
        }
        return KAFKA_NONE;
}

static int replay_batch(void *ctx, const uint8_t *batch, size_t len, int64_t from_offset, struct arena *scratch)
{
        struct txn_shard *s = ctx;
        return txn_replay_batch(s->tc, batch, len, from_offset, scratch);
}

static void call_load_end(struct txn_shard *s, void *arg, struct arena *a, struct txn_output *out)
{
        (void)arg;
        txn_load_end(s->tc, wall_now_ms(), a, out);
}

static void shard_on_abort_timer(void *arg);
static void shard_on_expire_timer(void *arg);

static void shard_load_step(void *arg)
{
        struct txn_shard *s = arg;
        int16_t err = KAFKA_NONE;
        struct partition *p = shard_partition(s, &err);
        int rc = p ? log_replay_step(&s->replay, p, TXN_LOAD_STEP_BYTES, replay_batch, s) : -EIO;
        if (rc > 0) {
                reactor_defer(s->home, &s->load_task);
                return;
        }
        if (rc < 0) {
                /* The shard stays loading: its ids answer
                 * COORDINATOR_LOAD_IN_PROGRESS rather than forget state. */
                log_error("cannot load transaction state from %s-%d at offset %lld: %s; its transactional ids "
                          "are unavailable until the broker restarts (check the log dir)",
                          TXN_STATE_TOPIC, s->index, (long long)s->replay.next_offset,
                          p ? strerror(-rc) : kafka_error_name(err));
                return;
        }
        s->is_loaded = true;
        run_output(s, call_load_end, NULL);
        const struct broker_config *c = s->broker->config;
        s->abort_timer = reactor_timer_add(s->home, (uint64_t)c->transaction_abort_timed_out_transaction_cleanup_interval_ms,
                                           shard_on_abort_timer, s);
        s->expire_timer = reactor_timer_add(s->home, (uint64_t)c->transaction_remove_expired_transaction_cleanup_interval_ms,
                                            shard_on_expire_timer, s);
}

static void call_abort_timed_out(struct txn_shard *s, void *arg, struct arena *a, struct txn_output *out)
{
        (void)arg;
        txn_abort_timed_out(s->tc, wall_now_ms(), TXN_PASS_MAX, a, out);
}

static void call_expire_ids(struct txn_shard *s, void *arg, struct arena *a, struct txn_output *out)
{
        (void)arg;
        txn_expire_ids(s->tc, wall_now_ms(), TXN_PASS_MAX, a, out);
}

/* Kafka's abortTimedOutTransactions. */
static void shard_on_abort_timer(void *arg)
{
        struct txn_shard *s = arg;
        run_output(s, call_abort_timed_out, NULL);
        s->abort_timer = reactor_timer_add(
                s->home, (uint64_t)s->broker->config->transaction_abort_timed_out_transaction_cleanup_interval_ms,
                shard_on_abort_timer, s);
}

/* Kafka's removeExpiredTransactionalIds. */
static void shard_on_expire_timer(void *arg)
{
        struct txn_shard *s = arg;
        run_output(s, call_expire_ids, NULL);
        s->expire_timer = reactor_timer_add(
                s->home, (uint64_t)s->broker->config->transaction_remove_expired_transaction_cleanup_interval_ms,
                shard_on_expire_timer, s);
}

/* The shard of partition index, created (and loading) on first use. On
 * the home reactor. NULL with *error_code when it cannot serve now. */
static struct txn_shard *shard_get(struct broker *b, const struct catalog_topic *t, int32_t index,
                                   int16_t *error_code)
{
        assert(index >= 0 && index < t->partition_count && index < CATALOG_PARTITIONS_MAX);
        struct txn_shard *s = shards[index];
        if (s) {
                if (s->is_loaded)
                        return s;
                *error_code = KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
                return NULL;
        }
        int16_t err = KAFKA_NONE;
        struct partition *p = partition_home_get(b, t, index, &err);
        if (!p) {
                *error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
                return NULL;
        }
        s = calloc(1, sizeof(*s));
        struct txn_config cfg = {
                .max_timeout_ms = b->config->transaction_max_timeout_ms,
                .transactional_id_expiration_ms = b->config->transactional_id_expiration_ms,
                .offsets_partition_count = b->config->offsets_topic_num_partitions,
                .transaction_version = 1,
        };
        struct txn_env env = { .next_producer_id = next_producer_id, .ctx = b };
        int32_t epoch = partition_leader_epoch(p);
        if (s)
                s->tc = txn_coordinator_create(&cfg, &env, epoch);
        if (!s || !s->tc) {
                free(s);
                *error_code = KAFKA_COORDINATOR_NOT_AVAILABLE;
                return NULL;
        }
        s->broker = b;
        s->home = reactor_self();
        s->index = index;
        txn_load_begin(s->tc, epoch);
        log_replay_init(&s->replay, p, TXN_SCRATCH_BYTES);
        reactor_task_init(&s->load_task, shard_load_step, s);
        shards[index] = s;
        shard_load_step(s);
        if (s->is_loaded)
                return s;
        *error_code = KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
        return NULL;
}

struct load_start {
        struct broker *broker;
        const struct catalog_topic *topic;
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

void txn_load_all(struct broker *b)
{
        const struct catalog_topic *t = catalog_get_topic(b->catalog, KSTR(TXN_STATE_TOPIC));
        if (!t)
                return;
        for (int32_t i = 0; i < t->partition_count && i < CATALOG_PARTITIONS_MAX; i++) {
                struct load_start *ls = calloc(1, sizeof(*ls));
                if (!ls)
                        continue;       /* loads on first use */
                ls->broker = b;
                ls->topic = catalog_topic_hold(t);
                ls->index = i;
                reactor_task_init(&ls->task, load_start_at_home, ls);
                partition_home_run(partition_home_reactor(b->homes, partition_home_index(b->homes, t, i)),
                                   &ls->task);
        }
        catalog_topic_put(t);
}

/* ---- carrying a request to its shard ---- */

static void op_at_home(void *arg)
{
        struct txn_op *op = arg;
        int16_t err = KAFKA_NONE;
        struct txn_shard *s = shard_get(op->broker, op->topic, op->index, &err);
        if (!s) {
                op_fail(op, err);
                return;
        }
        struct arena *a = op->req ? &op->req->arena : NULL;
        struct arena own;
        if (!a) {
                arena_init(&own, TXN_JOB_ARENA_BYTES);
                a = &own;
        }
        struct txn_output out;
        memset(&out, 0, sizeof(out));
        int64_t now_ms = wall_now_ms();
        switch (op->kind) {
        case OP_INIT_PRODUCER_ID:
                txn_init_producer_id(s->tc, op->transactional_id, op->timeout_ms, op->producer_id,
                                     op->producer_epoch, now_ms, a, &out);
                break;
        case OP_ADD_PARTITIONS:
                txn_add_partitions(s->tc, op->transactional_id, op->producer_id, op->producer_epoch, op->topics,
                                   op->topic_count, now_ms, a, &out);
                break;
        case OP_ADD_OFFSETS:
                txn_add_offsets(s->tc, op->transactional_id, op->producer_id, op->producer_epoch, op->group_id,
                                now_ms, a, &out);
                break;
        case OP_END_TXN:
                txn_end(s->tc, op->transactional_id, op->producer_id, op->producer_epoch, op->is_commit, now_ms, a,
                        &out);
                break;
        case OP_VERIFY:
                out.has_answer = true;
                out.error_code = txn_verify_partitions(s->tc, op->transactional_id, op->producer_id,
                                                       op->producer_epoch, op->topics, op->topic_count,
                                                       op->verify_errors);
                out.producer_id = -1;
                out.producer_epoch = -1;
                break;
        }
        handle_output(s, &out, op);
        if (a == &own)
                arena_free(&own);
}

/* Sends op to the shard of its transactional id; false when there is no
 * __transaction_state (answer NOT_COORDINATOR: the client looks again). */
static bool op_start(struct txn_op *op)
{
        struct reactor *home;
        if (!txn_locate(op->broker, op->transactional_id, &op->topic, &op->index, &home))
                return false;
        op->origin = reactor_self();
        reactor_task_init(&op->task, op_at_home, op);
        partition_home_run(home, &op->task);
        return true;
}

static struct txn_op *op_new(struct broker *b, struct request *req, enum txn_op_kind kind, struct kstr transactional_id,
                             int64_t producer_id, int16_t producer_epoch, void (*respond)(struct txn_op *))
{
        struct txn_op *op = arena_calloc(&req->arena, 1, sizeof(*op));
        if (!op)
                return NULL;
        op->broker = b;
        op->req = req;
        op->kind = kind;
        op->transactional_id = transactional_id;
        op->producer_id = producer_id;
        op->producer_epoch = producer_epoch;
        op->respond = respond;
        return op;
}

/* ---- InitProducerId (transactional) ---- */

static void init_producer_id_respond(struct txn_op *op)
{
        struct init_producer_id_response resp;
        init_producer_id_response_init(&resp);
        resp.error_code = op->error_code;
        resp.producer_id = op->error_code == KAFKA_NONE ? op->answer_producer_id : -1;
        resp.producer_epoch = op->error_code == KAFKA_NONE ? op->answer_producer_epoch : -1;
        dispatch_respond(op->req, &resp);
}

void txn_handle_init_producer_id(struct broker *b, struct request *req, const struct init_producer_id_request *rq)
{
        int64_t pid = req->api_version >= 3 ? rq->producer_id : -1;
        int16_t epoch = req->api_version >= 3 ? rq->producer_epoch : -1;
        struct txn_op *op = op_new(b, req, OP_INIT_PRODUCER_ID, rq->transactional_id, pid, epoch,
                                   init_producer_id_respond);
        if (!op) {
                request_close_connection(req);
                return;
        }
        op->timeout_ms = rq->transaction_timeout_ms;
        if (!op_start(op)) {
                op->error_code = KAFKA_NOT_COORDINATOR;
                init_producer_id_respond(op);
        }
}

/* ---- AddPartitionsToTxn: v0-v3 from clients, v4-v5 batched from brokers ---- */

typedef struct add_partitions_to_txn_request_add_partitions_to_txn_topic add_topic_rq;
typedef struct add_partitions_to_txn_response_add_partitions_to_txn_topic_result add_topic_result;

/* One transaction of the request, whichever form it came in. */
struct add_txn {
        struct kstr transactional_id;
        int64_t producer_id;
        int16_t producer_epoch;
        bool is_verify_only;
        const add_topic_rq *topics;
        int32_t topic_count;
};

struct add_ctx {
        struct broker *broker;
        struct request *req;
        struct add_partitions_to_txn_response resp;
        struct add_txn *txns;
        int32_t txn_count;
        int32_t next;                   /* the transaction being handled */
        int16_t *verify_errors;         /* per partition of the current one */
        struct reactor_task task;
};

static uint32_t add_txn_partition_count(const struct add_txn *t)
{
        uint32_t n = 0;
        for (int32_t i = 0; i < t->topic_count; i++)
                n += t->topics[i].partitions.count > 0 ? (uint32_t)t->topics[i].partitions.count : 0;
        return n;
}

/*
 * The per-partition answers of one transaction: errors[k] for the k-th
 * partition when given, else code for all; partitions marked in is_unknown
 * get UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED,
 * as Kafka answers a transaction naming a partition that does not exist.
 * Returns -1 when the arena is full.
 */
static int add_fill_topics(struct request *req, const struct add_txn *t, int16_t code, const int16_t *errors,
                           const bool *is_unknown, int32_t *count_out, add_topic_result **items_out)
{
        add_topic_result *items = arena_calloc(&req->arena, (size_t)t->topic_count + 1, sizeof(*items));
        if (!items)
                return -1;
        uint32_t k = 0;
        for (int32_t i = 0; i < t->topic_count; i++) {
                const add_topic_rq *tq = &t->topics[i];
                add_topic_result *tr = &items[i];
                add_partitions_to_txn_response_add_partitions_to_txn_topic_result_init(tr);
                tr->name = tq->name;
                int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                tr->results_by_partition.items =
                        arena_calloc(&req->arena, (size_t)pn + 1, sizeof(*tr->results_by_partition.items));
                if (!tr->results_by_partition.items)
                        return -1;
                tr->results_by_partition.count = pn;
                for (int32_t j = 0; j < pn; j++, k++) {
                        struct add_partitions_to_txn_response_add_partitions_to_txn_partition_result *pr =
                                &tr->results_by_partition.items[j];
                        add_partitions_to_txn_response_add_partitions_to_txn_partition_result_init(pr);
                        pr->partition_index = tq->partitions.items[j];
                        if (is_unknown)
                                pr->partition_error_code = is_unknown[k] ? KAFKA_UNKNOWN_TOPIC_OR_PARTITION
                                                                         : KAFKA_OPERATION_NOT_ATTEMPTED;
                        else
                                pr->partition_error_code = errors ? errors[k] : code;
                }
        }
        *count_out = t->topic_count;
        *items_out = items;
        return 0;
}

/* Puts one transaction's answer where its version wants it. */
static int add_answer(struct add_ctx *ac, const struct add_txn *t, int16_t code, const int16_t *errors,
                      const bool *is_unknown)
{
        struct request *req = ac->req;
        if (req->api_version < 4)
                return add_fill_topics(req, t, code, errors, is_unknown, &ac->resp.results_by_topic_v3_and_below.count,
                                       &ac->resp.results_by_topic_v3_and_below.items);
        struct add_partitions_to_txn_response_add_partitions_to_txn_result *r =
                &ac->resp.results_by_transaction.items[ac->next];
        add_partitions_to_txn_response_add_partitions_to_txn_result_init(r);
        r->transactional_id = t->transactional_id;
        return add_fill_topics(req, t, code, errors, is_unknown, &r->topic_results.count, &r->topic_results.items);
}

static void add_step(struct add_ctx *ac);

static void add_step_task(void *arg)
{
        add_step(arg);
}

/* The coordinator answered the current transaction. */
static void add_respond(struct txn_op *op)
{
        struct add_ctx *ac = op->verified_ctx;
        const struct add_txn *t = &ac->txns[ac->next];
        int16_t code = op->error_code;
        /* Clients before v2 know INVALID_PRODUCER_EPOCH, not PRODUCER_FENCED. */
        if (ac->req->api_version < 2 && code == KAFKA_PRODUCER_FENCED)
                code = KAFKA_INVALID_PRODUCER_EPOCH;
        bool is_per_partition = t->is_verify_only && code == KAFKA_NONE;
        if (add_answer(ac, t, code, is_per_partition ? ac->verify_errors : NULL, NULL) < 0) {
                request_close_connection(ac->req);
                return;
        }
        ac->next++;
        /* On a later turn: this may run inside the walk back from the home. */
        reactor_task_init(&ac->task, add_step_task, ac);
        reactor_defer(reactor_self(), &ac->task);
}

/* Handles the transactions one after the other, then answers. */
static void add_step(struct add_ctx *ac)
{
        struct request *req = ac->req;
        while (ac->next < ac->txn_count) {
                const struct add_txn *t = &ac->txns[ac->next];
                uint32_t n = add_txn_partition_count(t);
                bool *is_unknown = arena_calloc(&req->arena, n + 1, sizeof(*is_unknown));
                struct txn_topic_partitions *topics = arena_calloc(&req->arena, (size_t)t->topic_count + 1,
                                                                   sizeof(*topics));
                ac->verify_errors = arena_calloc(&req->arena, n + 1, sizeof(*ac->verify_errors));
                if (!is_unknown || !topics || !ac->verify_errors)
                        goto out_of_memory;
                bool has_unknown = false;
                uint32_t k = 0;
                for (int32_t i = 0; i < t->topic_count; i++) {
                        const add_topic_rq *tq = &t->topics[i];
                        const struct catalog_topic *topic = catalog_get_topic(ac->broker->catalog, tq->name);
                        int32_t pn = tq->partitions.count > 0 ? tq->partitions.count : 0;
                        for (int32_t j = 0; j < pn; j++, k++) {
                                is_unknown[k] = !topic || !catalog_topic_partition(topic, tq->partitions.items[j]);
                                has_unknown |= is_unknown[k];
                        }
                        catalog_topic_put(topic);
                        topics[i] = (struct txn_topic_partitions){ tq->name, pn, tq->partitions.items };
                }
                if (kstr_is_null(t->transactional_id) || has_unknown) {
                        int16_t code = KAFKA_INVALID_REQUEST;
                        if (add_answer(ac, t, code, NULL, has_unknown ? is_unknown : NULL) < 0)
                                goto out_of_memory;
                        ac->next++;
                        continue;
                }
                struct txn_op *op = op_new(ac->broker, req, t->is_verify_only ? OP_VERIFY : OP_ADD_PARTITIONS,
                                           t->transactional_id, t->producer_id, t->producer_epoch, add_respond);
                if (!op)
                        goto out_of_memory;
                op->topics = topics;
                op->topic_count = t->topic_count;
                op->verify_errors = ac->verify_errors;
                op->verified_ctx = ac;
                if (!op_start(op)) {
                        op->error_code = KAFKA_NOT_COORDINATOR;
                        add_respond(op);
                }
                return;         /* add_respond goes on */
        }
        dispatch_respond(req, &ac->resp);
        return;
out_of_memory:
        request_close_connection(req);
}

void handle_add_partitions_to_txn(struct broker *b, struct request *req, struct kreader *body)
{
        struct add_partitions_to_txn_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct add_ctx *ac = arena_calloc(&req->arena, 1, sizeof(*ac));
        if (!ac)
                goto out_of_memory;
        ac->broker = b;
        ac->req = req;
        add_partitions_to_txn_response_init(&ac->resp);
        if (req->api_version < 4) {
                ac->txns = arena_calloc(&req->arena, 1, sizeof(*ac->txns));
                if (!ac->txns)
                        goto out_of_memory;
                ac->txn_count = 1;
                ac->txns[0] = (struct add_txn){
                        .transactional_id = rq->v3_and_below_transactional_id,
                        .producer_id = rq->v3_and_below_producer_id,
                        .producer_epoch = rq->v3_and_below_producer_epoch,
                        .topics = rq->v3_and_below_topics.items,
                        .topic_count = rq->v3_and_below_topics.count > 0 ? rq->v3_and_below_topics.count : 0,
                };
        } else {
                /* The batched form brokers send to verify a transactional
                 * Produce (KIP-890) or add partitions for several producers. */
                int32_t n = rq->transactions.count > 0 ? rq->transactions.count : 0;
                ac->txns = arena_calloc(&req->arena, (size_t)n + 1, sizeof(*ac->txns));
                ac->resp.results_by_transaction.items =
                        arena_calloc(&req->arena, (size_t)n + 1, sizeof(*ac->resp.results_by_transaction.items));
                if (!ac->txns || !ac->resp.results_by_transaction.items)
                        goto out_of_memory;
                ac->resp.results_by_transaction.count = n;
                ac->txn_count = n;
                for (int32_t i = 0; i < n; i++) {
                        const struct add_partitions_to_txn_request_add_partitions_to_txn_transaction *tq =
                                &rq->transactions.items[i];
                        ac->txns[i] = (struct add_txn){
                                .transactional_id = tq->transactional_id,
                                .producer_id = tq->producer_id,
                                .producer_epoch = tq->producer_epoch,
                                .is_verify_only = tq->verify_only,
                                .topics = tq->topics.items,
                                .topic_count = tq->topics.count > 0 ? tq->topics.count : 0,
                        };
                }
        }
        add_step(ac);
        return;
out_of_memory:
        request_close_connection(req);
}

/* ---- AddOffsetsToTxn v0-v3 ---- */

static void add_offsets_respond(struct txn_op *op)
{
        struct add_offsets_to_txn_response resp;
        add_offsets_to_txn_response_init(&resp);
        /* Kafka answers clients before v2, which do not know
         * PRODUCER_FENCED, with INVALID_PRODUCER_EPOCH. */
        resp.error_code = op->req->api_version < 2 && op->error_code == KAFKA_PRODUCER_FENCED ?
                                  KAFKA_INVALID_PRODUCER_EPOCH : op->error_code;
        dispatch_respond(op->req, &resp);
}

/* Adds the group's partition of __consumer_offsets to the transaction, so
 * that TxnOffsetCommit may write there and the markers reach it. */
void handle_add_offsets_to_txn(struct broker *b, struct request *req, struct kreader *body)
{
        struct add_offsets_to_txn_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct txn_op *op = op_new(b, req, OP_ADD_OFFSETS, rq->transactional_id, rq->producer_id, rq->producer_epoch,
                                   add_offsets_respond);
        if (!op) {
                request_close_connection(req);
                return;
        }
        op->group_id = rq->group_id;
        if (!op_start(op)) {
                op->error_code = KAFKA_NOT_COORDINATOR;
                add_offsets_respond(op);
        }
}

/* ---- EndTxn ---- */

static void end_txn_respond(struct txn_op *op)
{
        struct end_txn_response resp;
        end_txn_response_init(&resp);
        resp.error_code = op->error_code;
        dispatch_respond(op->req, &resp);
}

void handle_end_txn(struct broker *b, struct request *req, struct kreader *body)
{
        struct end_txn_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct txn_op *op = op_new(b, req, OP_END_TXN, rq->transactional_id, rq->producer_id, rq->producer_epoch,
                                   end_txn_respond);
        if (!op) {
                request_close_connection(req);
                return;
        }
        op->is_commit = rq->committed;
        if (!op_start(op)) {
                op->error_code = KAFKA_NOT_COORDINATOR;
                end_txn_respond(op);
        }
}

/* ---- the transactional Produce check (KIP-890 part 1) ---- */

static void verify_respond(struct txn_op *op)
{
        op->verified(op->verified_ctx, op->error_code);
}

bool txn_verify(struct broker *b, struct request *req, struct kstr transactional_id, int64_t producer_id,
                int16_t producer_epoch, const struct txn_topic_partitions *topics, int32_t topic_count,
                int16_t *errors_out, void (*done)(void *ctx, int16_t error_code), void *ctx)
{
        struct txn_op *op = op_new(b, req, OP_VERIFY, transactional_id, producer_id, producer_epoch, verify_respond);
        if (!op)
                return false;
        op->topics = topics;
        op->topic_count = topic_count;
        op->verify_errors = errors_out;
        op->verified = done;
        op->verified_ctx = ctx;
        if (!op_start(op)) {
                op->error_code = KAFKA_NOT_COORDINATOR;
                verify_respond(op);
        }
        return true;
}

/* ---- walks over shards (DescribeTransactions, ListTransactions) ---- */

struct txn_walk {
        struct broker *broker;
        struct request *req;
        const int32_t *indexes;
        int32_t count;
        int32_t next;
        txn_visit_fn visit;
        void (*done)(void *ctx);
        void *ctx;
        struct reactor *origin;
        struct reactor_task task;
};

static void walk_step(void *arg);

static void walk_at_home(void *arg)
{
        struct txn_walk *w = arg;
        int32_t index = w->indexes[w->next];
        int16_t err = KAFKA_NONE;
        const struct catalog_topic *t = catalog_get_topic(w->broker->catalog, KSTR(TXN_STATE_TOPIC));
        struct txn_shard *s = t && index < t->partition_count ? shard_get(w->broker, t, index, &err) : NULL;
        if (!t)
                err = KAFKA_NOT_COORDINATOR;
        catalog_topic_put(t);
        w->visit(w->ctx, index, s ? s->tc : NULL, err, wall_now_ms(), &w->req->arena);
        w->next++;
        reactor_task_init(&w->task, walk_step, w);
        partition_home_run(w->origin, &w->task);
}

static void walk_step(void *arg)
{
        struct txn_walk *w = arg;
        if (w->next >= w->count) {
                w->done(w->ctx);
                return;
        }
        const struct catalog_topic *t = catalog_get_topic(w->broker->catalog, KSTR(TXN_STATE_TOPIC));
        int32_t index = w->indexes[w->next];
        if (!t || index >= t->partition_count) {
                catalog_topic_put(t);
                w->visit(w->ctx, index, NULL, KAFKA_NOT_COORDINATOR, wall_now_ms(), &w->req->arena);
                w->next++;
                walk_step(w);
                return;
        }
        struct reactor *home = partition_home_reactor(w->broker->homes, partition_home_index(w->broker->homes, t, index));
        catalog_topic_put(t);
        reactor_task_init(&w->task, walk_at_home, w);
        partition_home_run(home, &w->task);
}

bool txn_walk_shards(struct broker *b, struct request *req, const int32_t *indexes, int32_t count,
                     txn_visit_fn visit, void (*done)(void *ctx), void *ctx)
{
        struct txn_walk *w = arena_calloc(&req->arena, 1, sizeof(*w));
        if (!w)
                return false;
        *w = (struct txn_walk){ .broker = b, .req = req, .indexes = indexes, .count = count, .visit = visit,
                                .done = done, .ctx = ctx, .origin = reactor_self() };
        walk_step(w);
        return true;
}

int32_t txn_shard_of(struct broker *b, struct kstr transactional_id)
{
        const struct catalog_topic *t = catalog_get_topic(b->catalog, KSTR(TXN_STATE_TOPIC));
        if (!t)
                return -1;
        int32_t index = group_partition_of(transactional_id, t->partition_count);
        catalog_topic_put(t);
        return index;
}

int32_t txn_shard_count(struct broker *b)
{
        const struct catalog_topic *t = catalog_get_topic(b->catalog, KSTR(TXN_STATE_TOPIC));
        int32_t n = t ? t->partition_count : 0;
        catalog_topic_put(t);
        return n;
}
