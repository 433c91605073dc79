/*
 * test_txn.c - the transaction coordinator with a fake clock and a fake
 * producer id allocator: the __transaction_state records byte for byte,
 * InitProducerId (new id, bump, fence, exhaustion, KIP-360), AddPartitions
 * and AddOffsets, verification, EndTxn and its retries, markers, append
 * failures, timeouts, expiry, replay, ListTransactions and
 * DescribeTransactions. Each test names the Kafka behaviour it checks.
 *
 * Expected record bytes are written out by hand from
 * kafka-protocol/records/TransactionLog{Key,Value}.json, not produced by
 * the code under test.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator/group.h"
#include "coordinator/txn.h"
#include "protocol/gen/errors.h"
#include "protocol/gen/transaction_log_value.h"
#include "protocol/record_batch.h"

/* ---- fixture: clock, allocator, arena ---- */

static int64_t now_ms;
static int64_t next_pid;
static int16_t pid_error;
static struct arena arena;
static struct txn_coordinator *tc;

static int16_t fake_next_producer_id(void *ctx, int64_t *out)
{
        (void)ctx;
        if (pid_error != KAFKA_NONE)
                return pid_error;
        *out = next_pid++;
        return KAFKA_NONE;
}

static const struct txn_config config = {
        .max_timeout_ms = 900000,
        .transactional_id_expiration_ms = 604800000,
        .offsets_partition_count = 50,
        .transaction_version = 1,
};

static struct txn_coordinator *make(int16_t transaction_version)
{
        struct txn_config cfg = config;
        cfg.transaction_version = transaction_version;
        struct txn_env env = { fake_next_producer_id, NULL };
        struct txn_coordinator *c = txn_coordinator_create(&cfg, &env, 7);
        cr_assert_not_null(c);
        return c;
}

static void setup(void)
{
        now_ms = 1000000;
        next_pid = 4000;
        pid_error = KAFKA_NONE;
        arena_init(&arena, 64u << 20);
        tc = make(1);
}

static void teardown(void)
{
        txn_coordinator_destroy(tc);
        arena_free(&arena);
}

TestSuite(txn_records, .init = setup, .fini = teardown);
TestSuite(txn_init, .init = setup, .fini = teardown);
TestSuite(txn_add, .init = setup, .fini = teardown);
TestSuite(txn_end, .init = setup, .fini = teardown);
TestSuite(txn_markers, .init = setup, .fini = teardown);
TestSuite(txn_time, .init = setup, .fini = teardown);
TestSuite(txn_load, .init = setup, .fini = teardown);
TestSuite(txn_list, .init = setup, .fini = teardown);

/* ---- helpers ---- */

/* Every record appended so far, as the log would hold them. */
#define LOG_MAX 256
static struct {
        struct kbytes key, value;
} log_records[LOG_MAX];
static int log_count;

static void log_keep(const struct txn_append *ap)
{
        cr_assert_lt(log_count, LOG_MAX);
        log_records[log_count].key = ap->key;
        log_records[log_count].value = ap->value;
        log_count++;
}

/* Completes the one append of out with err; returns what that produced. */
static struct txn_output ack_err(const struct txn_output *out, int16_t err)
{
        cr_assert_eq(out->append_count, 1, "expected one append, got %u", out->append_count);
        if (err == KAFKA_NONE)
                log_keep(&out->appends[0]);
        struct txn_output res;
        txn_append_done(tc, out->appends[0].transactional_id, out->appends[0].id, err, now_ms, &arena, &res);
        return res;
}

static struct txn_output ack(const struct txn_output *out)
{
        return ack_err(out, KAFKA_NONE);
}

static struct txn_output init_pid(const char *id, int32_t timeout_ms, int64_t pid, int16_t epoch)
{
        struct txn_output out;
        txn_init_producer_id(tc, KSTR(id), timeout_ms, pid, epoch, now_ms, &arena, &out);
        return out;
}

/* A complete InitProducerId: answered NONE. */
static struct txn_output init_ok(const char *id)
{
        struct txn_output out = init_pid(id, 60000, -1, -1);
        cr_assert(!out.has_answer, "answered %d", out.error_code);
        struct txn_output res = ack(&out);
        cr_assert(res.has_answer);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        return res;
}

static const int32_t p0[] = { 0 }, p01[] = { 0, 1 }, p2[] = { 2 };

static struct txn_output add(const char *id, int64_t pid, int16_t epoch, const char *topic, const int32_t *parts,
                             int32_t n)
{
        struct txn_topic_partitions tp = { KSTR(topic), n, parts };
        struct txn_output out;
        txn_add_partitions(tc, KSTR(id), pid, epoch, &tp, 1, now_ms, &arena, &out);
        return out;
}

static void add_ok(const char *id, int64_t pid, int16_t epoch, const char *topic, const int32_t *parts, int32_t n)
{
        struct txn_output out = add(id, pid, epoch, topic, parts, n);
        if (out.has_answer) {
                cr_assert_eq(out.error_code, KAFKA_NONE);
                return;
        }
        struct txn_output res = ack(&out);
        cr_assert(res.has_answer);
        cr_assert_eq(res.error_code, KAFKA_NONE);
}

static struct txn_output end(const char *id, int64_t pid, int16_t epoch, bool is_commit)
{
        struct txn_output out;
        txn_end(tc, KSTR(id), pid, epoch, is_commit, now_ms, &arena, &out);
        return out;
}

static struct txn_description describe(const char *id)
{
        struct txn_description d;
        txn_describe(tc, KSTR(id), &arena, &d);
        return d;
}

/* Completes markers: the Complete* append, acknowledged. */
static void finish_markers(const struct txn_markers *m)
{
        struct txn_output out;
        txn_markers_done(tc, m->transactional_id, m->id, now_ms, &arena, &out);
        cr_assert(!out.has_answer);
        struct txn_output res = ack(&out);
        cr_assert(!res.has_answer);
        cr_assert_eq(res.markers_count, 0);
}

/* A transaction of id, in Ongoing with partitions t-0 and t-1. */
static struct txn_output begin_txn(const char *id)
{
        struct txn_output r = init_ok(id);
        add_ok(id, r.producer_id, r.producer_epoch, "t", p01, 2);
        return r;
}

/* Decodes a value record. */
static struct txn_record_value value_of(struct kbytes key, struct kbytes value)
{
        struct kstr id;
        struct txn_record_value v;
        cr_assert_eq(txn_record_decode(key, value, &arena, &id, &v), 0);
        return v;
}

/* Replays the kept log into a fresh coordinator. */
static void reload(struct txn_output *out)
{
        txn_load_begin(tc, 8);
        for (int i = 0; i < log_count; i++)
                cr_assert_geq(txn_replay_record(tc, log_records[i].key, log_records[i].value), 0);
        txn_load_end(tc, now_ms, &arena, out);
}

/* ---- records ---- */

struct bytes {
        uint8_t b[512];
        size_t n;
};

static void put(struct bytes *x, uint64_t v, int width)
{
        for (int i = width - 1; i >= 0; i--)
                x->b[x->n++] = (uint8_t)(v >> (8 * i));
}

static void put_raw(struct bytes *x, const char *s)
{
        memcpy(x->b + x->n, s, strlen(s));
        x->n += strlen(s);
}

Test(txn_records, init_writes_key_v0_and_empty_value_v1)
{
        struct txn_output out = init_pid("abc", 60000, -1, -1);
        cr_assert_eq(out.append_count, 1);
        struct bytes k = { .n = 0 };
        put(&k, 0, 2);                  /* key version */
        put(&k, 3, 2);
        put_raw(&k, "abc");
        cr_assert_eq((size_t)out.appends[0].key.len, k.n);
        cr_assert_arr_eq(out.appends[0].key.ptr, k.b, k.n);

        struct bytes v = { .n = 0 };
        put(&v, 1, 2);                  /* value version 1 (flexible) */
        put(&v, 4000, 8);               /* producer id */
        put(&v, 0, 2);                  /* epoch */
        put(&v, 60000, 4);              /* timeout */
        put(&v, 0, 1);                  /* Empty */
        put(&v, 0, 1);                  /* partitions: null compact array */
        put(&v, (uint64_t)now_ms, 8);   /* last update */
        put(&v, (uint64_t)-1, 8);       /* start: none */
        put(&v, 0, 1);                  /* no tagged fields */
        cr_assert_eq((size_t)out.appends[0].value.len, v.n);
        cr_assert_arr_eq(out.appends[0].value.ptr, v.b, v.n);
}

Test(txn_records, transaction_version_0_writes_value_v0)
{
        txn_coordinator_destroy(tc);
        tc = make(0);
        struct txn_output r = init_ok("x");
        struct txn_output out = add("x", r.producer_id, r.producer_epoch, "tp", p01, 2);
        cr_assert_eq(out.append_count, 1);
        struct bytes v = { .n = 0 };
        put(&v, 0, 2);                  /* value version 0 */
        put(&v, 4000, 8);
        put(&v, 0, 2);
        put(&v, 60000, 4);
        put(&v, 1, 1);                  /* Ongoing */
        put(&v, 1, 4);                  /* one topic */
        put(&v, 2, 2);
        put_raw(&v, "tp");
        put(&v, 2, 4);                  /* two partitions */
        put(&v, 0, 4);
        put(&v, 1, 4);
        put(&v, (uint64_t)now_ms, 8);
        put(&v, (uint64_t)now_ms, 8);   /* started now */
        cr_assert_eq((size_t)out.appends[0].value.len, v.n);
        cr_assert_arr_eq(out.appends[0].value.ptr, v.b, v.n);
}

Test(txn_records, ongoing_value_v1_groups_partitions_by_topic)
{
        struct txn_output r = init_ok("x");
        add_ok("x", r.producer_id, r.producer_epoch, "tp", p2, 1);
        now_ms += 5;
        struct txn_output out = add("x", r.producer_id, r.producer_epoch, "tp", p0, 1);
        cr_assert_eq(out.append_count, 1);
        struct bytes v = { .n = 0 };
        put(&v, 1, 2);
        put(&v, 4000, 8);
        put(&v, 0, 2);
        put(&v, 60000, 4);
        put(&v, 1, 1);                  /* Ongoing */
        put(&v, 2, 1);                  /* compact array: one topic */
        put(&v, 3, 1);                  /* compact string "tp" */
        put_raw(&v, "tp");
        put(&v, 3, 1);                  /* two partitions, sorted */
        put(&v, 0, 4);
        put(&v, 2, 4);
        put(&v, 0, 1);                  /* the topic's tagged fields */
        put(&v, (uint64_t)now_ms, 8);
        put(&v, (uint64_t)(now_ms - 5), 8); /* start stays the first add's */
        put(&v, 0, 1);
        cr_assert_eq((size_t)out.appends[0].value.len, v.n);
        cr_assert_arr_eq(out.appends[0].value.ptr, v.b, v.n);
}

Test(txn_records, prepare_and_complete_values)
{
        struct txn_output r = begin_txn("x");
        int64_t start = now_ms;
        now_ms += 10;
        struct txn_output out = end("x", r.producer_id, r.producer_epoch, true);
        struct txn_record_value v = value_of(out.appends[0].key, out.appends[0].value);
        cr_assert_eq(v.state, TXN_PREPARE_COMMIT);
        cr_assert_eq(v.topic_count, 1);
        cr_assert_eq(v.topics[0].partition_count, 2);
        cr_assert_eq(v.start_ms, start);
        cr_assert_eq(v.last_update_ms, now_ms);
        struct txn_output res = ack(&out);
        cr_assert_eq(res.markers_count, 1);

        struct txn_output done;
        txn_markers_done(tc, res.markers[0].transactional_id, res.markers[0].id, now_ms, &arena, &done);
        cr_assert_eq(done.append_count, 1);
        /* CompleteCommit: an empty (not null) partition array. */
        const struct kbytes val = done.appends[0].value;
        struct bytes tail = { .n = 0 };
        put(&tail, 4, 1);               /* CompleteCommit */
        put(&tail, 1, 1);               /* compact array of 0 */
        put(&tail, (uint64_t)now_ms, 8);
        put(&tail, (uint64_t)start, 8);
        put(&tail, 0, 1);
        cr_assert_eq((size_t)val.len, 2 + 8 + 2 + 4 + tail.n);
        cr_assert_arr_eq(val.ptr + 16, tail.b, tail.n);
}

Test(txn_records, decode_reads_both_versions_and_tombstones)
{
        struct txn_output out = init_pid("abc", 60000, -1, -1);
        struct kstr id;
        struct txn_record_value v;
        cr_assert_eq(txn_record_decode(out.appends[0].key, out.appends[0].value, &arena, &id, &v), 0);
        cr_assert(kstr_eq_cstr(id, "abc"));
        cr_assert_eq(v.producer_id, 4000);
        cr_assert_eq(v.state, TXN_EMPTY);
        cr_assert_eq(v.start_ms, -1);
        cr_assert_eq(txn_record_decode(out.appends[0].key, KBYTES_NULL, &arena, &id, &v), 1);

        uint8_t bad[64];
        memcpy(bad, out.appends[0].value.ptr, (size_t)out.appends[0].value.len);
        bad[1] = 2;                     /* value version 2: unknown */
        cr_assert_eq(txn_record_decode(out.appends[0].key, (struct kbytes){ bad, out.appends[0].value.len },
                                       &arena, &id, &v),
                     -EBADMSG);
        memcpy(bad, out.appends[0].value.ptr, (size_t)out.appends[0].value.len);
        bad[16] = 9;                    /* status 9: no such state */
        cr_assert_eq(txn_record_decode(out.appends[0].key, (struct kbytes){ bad, out.appends[0].value.len },
                                       &arena, &id, &v),
                     -EBADMSG);
}

Test(txn_records, state_names_are_kafkas)
{
        cr_assert_str_eq(txn_state_name(TXN_PREPARE_EPOCH_FENCE), "PrepareEpochFence");
        cr_assert_str_eq(txn_state_name(TXN_COMPLETE_ABORT), "CompleteAbort");
        enum txn_state s;
        cr_assert(txn_state_parse(KSTR("Ongoing"), &s));
        cr_assert_eq(s, TXN_ONGOING);
        cr_assert(!txn_state_parse(KSTR("ongoing"), &s));       /* Kafka matches exactly */
}

/* ---- InitProducerId ---- */

Test(txn_init, new_id_gets_a_producer_id_and_epoch_0_once_durable)
{
        struct txn_output out = init_pid("a", 60000, -1, -1);
        cr_assert(!out.has_answer);
        cr_assert_eq(next_pid, 4001);
        /* Pending: a second InitProducerId must wait. */
        struct txn_output again = init_pid("a", 60000, -1, -1);
        cr_assert_eq(again.error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(again.producer_id, -1);
        struct txn_description d = describe("a");
        cr_assert_eq(d.producer_epoch, -1);

        struct txn_output res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.producer_id, 4000);
        cr_assert_eq(res.producer_epoch, 0);
        d = describe("a");
        cr_assert_eq(d.state, TXN_EMPTY);
        cr_assert_eq(d.producer_epoch, 0);
        cr_assert_eq(d.timeout_ms, 60000);
}

Test(txn_init, again_bumps_the_epoch_of_the_same_producer_id)
{
        init_ok("a");
        struct txn_output r = init_ok("a");
        cr_assert_eq(r.producer_id, 4000);
        cr_assert_eq(r.producer_epoch, 1);
        cr_assert_eq(next_pid, 4001);
}

Test(txn_init, bad_requests)
{
        struct txn_output out = init_pid("", 60000, -1, -1);
        cr_assert_eq(out.error_code, KAFKA_INVALID_REQUEST);
        out = init_pid("a", 0, -1, -1);
        cr_assert_eq(out.error_code, KAFKA_INVALID_TRANSACTION_TIMEOUT);
        out = init_pid("a", 900001, -1, -1);
        cr_assert_eq(out.error_code, KAFKA_INVALID_TRANSACTION_TIMEOUT);
        out = init_pid("a", 900000, 5, -1);     /* KIP-360 fields: both or neither */
        cr_assert_eq(out.error_code, KAFKA_INVALID_REQUEST);
        cr_assert_eq(txn_coordinator_count(tc), 0);
        out = init_pid("a", 900000, -1, -1);
        cr_assert(!out.has_answer);
}

Test(txn_init, allocator_error_is_the_answer)
{
        pid_error = KAFKA_COORDINATOR_LOAD_IN_PROGRESS;
        struct txn_output out = init_pid("a", 60000, -1, -1);
        cr_assert_eq(out.error_code, KAFKA_COORDINATOR_LOAD_IN_PROGRESS);
        cr_assert_eq(txn_coordinator_count(tc), 0);
}

Test(txn_init, failed_append_answers_the_mapped_error_and_clears_pending)
{
        struct txn_output out = init_pid("a", 60000, -1, -1);
        struct txn_output res = ack_err(&out, KAFKA_NOT_LEADER_OR_FOLLOWER);
        cr_assert_eq(res.error_code, KAFKA_NOT_COORDINATOR);
        out = init_pid("a", 60000, -1, -1);
        res = ack_err(&out, KAFKA_REQUEST_TIMED_OUT);
        cr_assert_eq(res.error_code, KAFKA_COORDINATOR_NOT_AVAILABLE);
        out = init_pid("a", 60000, -1, -1);
        res = ack_err(&out, KAFKA_MESSAGE_TOO_LARGE);
        cr_assert_eq(res.error_code, KAFKA_UNKNOWN_SERVER_ERROR);
        /* The metadata stayed (as in Kafka's cache); the next try works. */
        res = init_ok("a");
        cr_assert_eq(res.producer_id, 4000);
        cr_assert_eq(res.producer_epoch, 0);
}

Test(txn_init, fences_an_ongoing_transaction_by_aborting_it_with_epoch_plus_one)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = init_pid("a", 60000, -1, -1);
        struct txn_record_value v = value_of(out.appends[0].key, out.appends[0].value);
        cr_assert_eq(v.state, TXN_PREPARE_ABORT);
        cr_assert_eq(v.producer_epoch, 1);
        cr_assert_eq(v.topic_count, 1);

        struct txn_output res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(res.markers_count, 1);
        const struct txn_markers *m = &res.markers[0];
        cr_assert_eq(m->producer_id, r.producer_id);
        cr_assert_eq(m->producer_epoch, 1);
        cr_assert_eq(m->coordinator_epoch, 7);
        cr_assert(!m->is_commit);
        cr_assert_eq(m->topics[0].partition_count, 2);

        /* The old producer is fenced; the new one waits for the abort. */
        struct txn_output old = end("a", r.producer_id, 0, true);
        cr_assert_eq(old.error_code, KAFKA_PRODUCER_FENCED);
        struct txn_output retry = init_pid("a", 60000, -1, -1);
        cr_assert_eq(retry.error_code, KAFKA_CONCURRENT_TRANSACTIONS);

        finish_markers(m);
        cr_assert_eq(describe("a").state, TXN_COMPLETE_ABORT);
        struct txn_output again = init_ok("a");
        cr_assert_eq(again.producer_epoch, 2);
}

Test(txn_init, failed_fence_is_not_bumped_twice)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = init_pid("a", 60000, -1, -1);
        struct txn_output res = ack_err(&out, KAFKA_REQUEST_TIMED_OUT);
        cr_assert_eq(res.error_code, KAFKA_COORDINATOR_NOT_AVAILABLE);
        /* Kafka bumped the epoch in memory before the append; it stays. */
        cr_assert_eq(describe("a").producer_epoch, 1);
        cr_assert_eq(describe("a").state, TXN_ONGOING);
        out = init_pid("a", 60000, -1, -1);
        struct txn_record_value v = value_of(out.appends[0].key, out.appends[0].value);
        cr_assert_eq(v.producer_epoch, 1);
        (void)r;
}

/* Builds and replays one value record for id. */
static void replay_state(const char *id, int64_t pid, int16_t epoch, enum txn_state state)
{
        uint8_t key[64], val[128];
        size_t kn = 0;
        key[kn++] = 0;
        key[kn++] = 0;
        key[kn++] = 0;
        key[kn++] = (uint8_t)strlen(id);
        memcpy(key + kn, id, strlen(id));
        kn += strlen(id);
        struct transaction_log_value v;
        transaction_log_value_init(&v);
        v.producer_id = pid;
        v.producer_epoch = epoch;
        v.transaction_timeout_ms = 60000;
        v.transaction_status = (int8_t)state;
        v.transaction_partitions.count = state == TXN_EMPTY ? -1 : 0;
        v.transaction_last_update_timestamp_ms = now_ms;
        v.transaction_start_timestamp_ms = -1;
        int64_t size = transaction_log_value_size(&v, 0);
        cr_assert_gt(size, 0);
        struct kwriter w;
        kw_init(&w, val, 2 + (size_t)size);
        kw_i16(&w, 0);
        transaction_log_value_encode(&w, &v, 0);
        txn_load_begin(tc, 7);
        cr_assert_eq(txn_replay_record(tc, (struct kbytes){ key, (int32_t)kn },
                                       (struct kbytes){ val, (int32_t)(2 + size) }),
                     0);
        struct txn_output out;
        txn_load_end(tc, now_ms, &arena, &out);
}

Test(txn_init, exhausted_epoch_gets_a_new_producer_id)
{
        replay_state("a", 77, 32765, TXN_EMPTY);
        struct txn_output r = init_ok("a");
        cr_assert_eq(r.producer_id, 77);
        cr_assert_eq(r.producer_epoch, 32766);
        r = init_ok("a");               /* 32766 is exhausted */
        cr_assert_eq(r.producer_id, 4000);
        cr_assert_eq(r.producer_epoch, 0);
}

Test(txn_init, kip360_bump_with_the_current_epoch_and_retry_with_the_last)
{
        struct txn_output r = init_ok("a");
        struct txn_output out = init_pid("a", 60000, r.producer_id, 0);
        struct txn_output res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.producer_epoch, 1);
        /* The response was lost; the retry names epoch 0 (now the last). */
        out = init_pid("a", 60000, r.producer_id, 0);
        res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.producer_epoch, 1);
        /* Another epoch is fenced, and so is another producer id. */
        out = init_pid("a", 60000, r.producer_id, 5);
        cr_assert_eq(out.error_code, KAFKA_PRODUCER_FENCED);
        out = init_pid("a", 60000, 999, 1);
        cr_assert_eq(out.error_code, KAFKA_PRODUCER_FENCED);
        /* A plain InitProducerId forgets the last epoch. */
        init_ok("a");
        out = init_pid("a", 60000, r.producer_id, 1);
        cr_assert_eq(out.error_code, KAFKA_PRODUCER_FENCED);
}

Test(txn_init, kip360_for_a_new_id_accepts_any_producer)
{
        struct txn_output out = init_pid("a", 60000, 123, 4);
        struct txn_output res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.producer_id, 4000);
        cr_assert_eq(res.producer_epoch, 0);
}

Test(txn_init, kip360_retry_after_a_rotation_names_the_previous_producer_id)
{
        replay_state("a", 77, 32766, TXN_EMPTY);
        struct txn_output out = init_pid("a", 60000, 77, 32766);
        struct txn_output res = ack(&out);
        cr_assert_eq(res.producer_id, 4000);
        cr_assert_eq(res.producer_epoch, 0);
        /* The retry: the previous id with its exhausted epoch, which is the
         * last epoch recorded by the rotation. */
        out = init_pid("a", 60000, 77, 32766);
        res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.producer_id, 4000);
}

/* ---- AddPartitionsToTxn, AddOffsetsToTxn, verification ---- */

Test(txn_add, errors_before_any_write)
{
        struct txn_output r = init_ok("a");
        struct txn_output out = add("", r.producer_id, 0, "t", p0, 1);
        cr_assert_eq(out.error_code, KAFKA_INVALID_REQUEST);
        out = add("nope", r.producer_id, 0, "t", p0, 1);
        cr_assert_eq(out.error_code, KAFKA_INVALID_PRODUCER_ID_MAPPING);
        out = add("a", r.producer_id + 1, 0, "t", p0, 1);
        cr_assert_eq(out.error_code, KAFKA_INVALID_PRODUCER_ID_MAPPING);
        out = add("a", r.producer_id, 1, "t", p0, 1);
        cr_assert_eq(out.error_code, KAFKA_PRODUCER_FENCED);
        out = add("a", r.producer_id, 0, "t", p0, 1);
        cr_assert(!out.has_answer);
        struct txn_output busy = add("a", r.producer_id, 0, "u", p0, 1);
        cr_assert_eq(busy.error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(busy.append_count, 0);
}

Test(txn_add, first_add_starts_the_transaction_and_known_partitions_need_no_write)
{
        struct txn_output r = init_ok("a");
        int64_t start = now_ms;
        add_ok("a", r.producer_id, 0, "t", p01, 2);
        struct txn_description d = describe("a");
        cr_assert_eq(d.state, TXN_ONGOING);
        cr_assert_eq(d.start_ms, start);
        now_ms += 100;
        struct txn_output out = add("a", r.producer_id, 0, "t", p0, 1);
        cr_assert(out.has_answer);
        cr_assert_eq(out.error_code, KAFKA_NONE);
        cr_assert_eq(out.append_count, 0);
        add_ok("a", r.producer_id, 0, "u", p2, 1);
        d = describe("a");
        cr_assert_eq(d.start_ms, start);
        cr_assert_eq(d.topic_count, 2);
        cr_assert(kstr_eq_cstr(d.topics[1].topic, "u"));
}

Test(txn_add, a_failed_add_leaves_the_partitions_out)
{
        struct txn_output r = init_ok("a");
        struct txn_output out = add("a", r.producer_id, 0, "t", p0, 1);
        struct txn_output res = ack_err(&out, KAFKA_NOT_ENOUGH_REPLICAS);
        cr_assert_eq(res.error_code, KAFKA_COORDINATOR_NOT_AVAILABLE);
        struct txn_description d = describe("a");
        cr_assert_eq(d.state, TXN_EMPTY);
        cr_assert_eq(d.topic_count, 0);
}

Test(txn_add, add_offsets_adds_the_groups_offsets_partition)
{
        struct txn_output r = init_ok("a");
        cr_assert_eq(txn_offsets_partition_of(tc, KSTR("group")), 98629247 % 50);
        cr_assert_eq(txn_offsets_partition_of(tc, KSTR("group")), group_partition_of(KSTR("group"), 50));
        struct txn_output out;
        txn_add_offsets(tc, KSTR("a"), r.producer_id, 0, KSTR("group"), now_ms, &arena, &out);
        struct txn_output res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        struct txn_description d = describe("a");
        cr_assert_eq(d.topic_count, 1);
        cr_assert(kstr_eq_cstr(d.topics[0].topic, "__consumer_offsets"));
        cr_assert_eq(d.topics[0].partitions[0], 47);
}

Test(txn_add, verify_only_reports_each_partition)
{
        struct txn_output r = begin_txn("a");
        int32_t parts[] = { 1, 5 };
        struct txn_topic_partitions tp = { KSTR("t"), 2, parts };
        int16_t errs[2];
        cr_assert_eq(txn_verify_partitions(tc, KSTR("a"), r.producer_id, 0, &tp, 1, errs), KAFKA_NONE);
        cr_assert_eq(errs[0], KAFKA_NONE);
        cr_assert_eq(errs[1], KAFKA_TRANSACTION_ABORTABLE);
        cr_assert_eq(txn_verify_partitions(tc, KSTR("a"), r.producer_id, 3, &tp, 1, errs), KAFKA_PRODUCER_FENCED);
        cr_assert_eq(errs[1], KAFKA_PRODUCER_FENCED);
        cr_assert_eq(txn_verify_partitions(tc, KSTR("b"), r.producer_id, 0, &tp, 1, errs),
                     KAFKA_INVALID_PRODUCER_ID_MAPPING);
        cr_assert_eq(txn_verify_partitions(tc, KSTR(""), r.producer_id, 0, &tp, 1, errs), KAFKA_INVALID_REQUEST);
        struct txn_output out = end("a", r.producer_id, 0, true);
        ack(&out);
        cr_assert_eq(txn_verify_partitions(tc, KSTR("a"), r.producer_id, 0, &tp, 1, errs),
                     KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(txn_coordinator_count(tc), 1);
}

/* ---- EndTxn ---- */

Test(txn_end, commit_writes_prepare_then_markers_then_complete)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = end("a", r.producer_id, 0, true);
        cr_assert(!out.has_answer);
        struct txn_output busy = end("a", r.producer_id, 0, true);
        cr_assert_eq(busy.error_code, KAFKA_CONCURRENT_TRANSACTIONS);

        struct txn_output res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.producer_id, r.producer_id);
        cr_assert_eq(res.producer_epoch, 0);
        cr_assert_eq(res.markers_count, 1);
        const struct txn_markers *m = &res.markers[0];
        cr_assert(m->is_commit);
        cr_assert_eq(m->producer_id, r.producer_id);
        cr_assert_eq(m->producer_epoch, 0);
        cr_assert_eq(m->coordinator_epoch, 7);
        cr_assert_eq(m->topic_count, 1);
        cr_assert(kstr_eq_cstr(m->topics[0].topic, "t"));
        cr_assert_eq(m->topics[0].partition_count, 2);
        cr_assert_eq(describe("a").state, TXN_PREPARE_COMMIT);

        /* While markers are written everything waits. */
        cr_assert_eq(end("a", r.producer_id, 0, true).error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(end("a", r.producer_id, 0, false).error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(add("a", r.producer_id, 0, "t", p0, 1).error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        cr_assert_eq(init_pid("a", 60000, -1, -1).error_code, KAFKA_CONCURRENT_TRANSACTIONS);

        finish_markers(m);
        struct txn_description d = describe("a");
        cr_assert_eq(d.state, TXN_COMPLETE_COMMIT);
        cr_assert_eq(d.topic_count, 0);
}

Test(txn_end, retried_end_txn_after_completion)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = end("a", r.producer_id, 0, true);
        struct txn_output res = ack(&out);
        finish_markers(&res.markers[0]);
        /* Kafka: the same result again is NONE, with the ids; the other is
         * INVALID_TXN_STATE. */
        out = end("a", r.producer_id, 0, true);
        cr_assert_eq(out.error_code, KAFKA_NONE);
        cr_assert_eq(out.append_count, 0);
        cr_assert_eq(out.producer_id, r.producer_id);
        cr_assert_eq(out.producer_epoch, 0);
        cr_assert_eq(end("a", r.producer_id, 0, false).error_code, KAFKA_INVALID_TXN_STATE);

        /* Likewise after an abort. */
        add_ok("a", r.producer_id, 0, "t", p0, 1);
        out = end("a", r.producer_id, 0, false);
        res = ack(&out);
        finish_markers(&res.markers[0]);
        cr_assert_eq(end("a", r.producer_id, 0, false).error_code, KAFKA_NONE);
        cr_assert_eq(end("a", r.producer_id, 0, true).error_code, KAFKA_INVALID_TXN_STATE);
}

Test(txn_end, errors)
{
        struct txn_output r = init_ok("a");
        cr_assert_eq(end("", r.producer_id, 0, true).error_code, KAFKA_INVALID_REQUEST);
        cr_assert_eq(end("b", r.producer_id, 0, true).error_code, KAFKA_INVALID_PRODUCER_ID_MAPPING);
        cr_assert_eq(end("a", r.producer_id + 1, 0, true).error_code, KAFKA_INVALID_PRODUCER_ID_MAPPING);
        cr_assert_eq(end("a", r.producer_id, 1, true).error_code, KAFKA_PRODUCER_FENCED);
        struct txn_output out = end("a", r.producer_id, 0, true);
        cr_assert_eq(out.error_code, KAFKA_INVALID_TXN_STATE);   /* Empty */
        cr_assert_eq(out.producer_id, -1);
        cr_assert_eq(out.producer_epoch, -1);
}

Test(txn_end, failed_prepare_keeps_the_transaction_ongoing)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = end("a", r.producer_id, 0, false);
        struct txn_output res = ack_err(&out, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(res.error_code, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(res.markers_count, 0);
        cr_assert_eq(describe("a").state, TXN_ONGOING);
        out = end("a", r.producer_id, 0, false);
        res = ack(&out);
        cr_assert_eq(res.error_code, KAFKA_NONE);
        cr_assert_eq(res.markers_count, 1);
        cr_assert(!res.markers[0].is_commit);
}

/* ---- markers ---- */

Test(txn_markers, partitions_leave_one_by_one_and_the_last_completes)
{
        struct txn_output r = begin_txn("a");
        add_ok("a", r.producer_id, 0, "u", p2, 1);
        struct txn_output out = end("a", r.producer_id, 0, true);
        struct txn_output res = ack(&out);
        const struct txn_markers m = res.markers[0];
        cr_assert_eq(m.topic_count, 2);

        struct txn_output o;
        txn_marker_partition_done(tc, m.transactional_id, m.id, KSTR("t"), 0, now_ms, &arena, &o);
        cr_assert_eq(o.append_count, 0);
        struct txn_description d = describe("a");
        cr_assert_eq(d.topic_count, 2);
        cr_assert_eq(d.topics[0].partition_count, 1);
        /* A stale id is ignored. */
        txn_marker_partition_done(tc, m.transactional_id, m.id + 100, KSTR("t"), 1, now_ms, &arena, &o);
        cr_assert_eq(describe("a").topics[0].partition_count, 1);
        txn_marker_partition_done(tc, m.transactional_id, m.id, KSTR("t"), 1, now_ms, &arena, &o);
        cr_assert_eq(o.append_count, 0);
        txn_marker_partition_done(tc, m.transactional_id, m.id, KSTR("u"), 2, now_ms, &arena, &o);
        cr_assert_eq(o.append_count, 1);
        struct txn_record_value v = value_of(o.appends[0].key, o.appends[0].value);
        cr_assert_eq(v.state, TXN_COMPLETE_COMMIT);
        ack(&o);
        cr_assert_eq(describe("a").state, TXN_COMPLETE_COMMIT);
}

Test(txn_markers, complete_append_is_retried_when_the_log_is_not_available)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = end("a", r.producer_id, 0, false);
        struct txn_output res = ack(&out);
        struct txn_output o;
        txn_markers_done(tc, res.markers[0].transactional_id, res.markers[0].id, now_ms, &arena, &o);
        struct txn_output retry = ack_err(&o, KAFKA_NOT_ENOUGH_REPLICAS);
        cr_assert(!retry.has_answer);
        cr_assert_eq(retry.append_count, 1);
        cr_assert_eq(describe("a").state, TXN_PREPARE_ABORT);
        cr_assert_eq(init_pid("a", 60000, -1, -1).error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        ack(&retry);
        cr_assert_eq(describe("a").state, TXN_COMPLETE_ABORT);
}

Test(txn_markers, collect_lists_outstanding_markers_again)
{
        struct txn_output r = begin_txn("a");
        begin_txn("b");
        struct txn_output out = end("a", r.producer_id, 0, true);
        ack(&out);
        struct txn_output all;
        txn_collect_markers(tc, &arena, &all);
        cr_assert_eq(all.markers_count, 1);
        cr_assert(kstr_eq_cstr(all.markers[0].transactional_id, "a"));
        finish_markers(&all.markers[0]);
        txn_collect_markers(tc, &arena, &all);
        cr_assert_eq(all.markers_count, 0);
}

Test(txn_markers, append_batch_is_one_uncompressed_batch_of_the_records)
{
        struct txn_output out = init_pid("a", 60000, -1, -1);
        uint8_t *batch;
        size_t len;
        cr_assert_eq(txn_batch_build(out.appends, out.append_count, now_ms, &arena, &batch, &len), 0);
        struct record_batch_header h;
        cr_assert_eq(record_batch_frame(batch, len, &h), RECORD_BATCH_FRAME_OK);
        cr_assert_eq(h.record_count, 1);
        cr_assert_eq(record_batch_codec(&h), RECORD_BATCH_CODEC_NONE);
        cr_assert(!record_batch_is_transactional(&h));

        txn_load_begin(tc, 9);
        cr_assert_eq(txn_replay_batch(tc, batch, len, 0, &arena), 0);
        struct txn_output o;
        txn_load_end(tc, now_ms, &arena, &o);
        struct txn_description d = describe("a");
        cr_assert_eq(d.error_code, KAFKA_NONE);
        cr_assert_eq(d.producer_id, 4000);
        cr_assert_eq(d.producer_epoch, 0);
}

/* ---- timeouts and expiry ---- */

Test(txn_time, timed_out_transaction_is_aborted_with_an_epoch_bump)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out;
        now_ms += 60000;                /* start + timeout is not yet past */
        txn_abort_timed_out(tc, now_ms, 100, &arena, &out);
        cr_assert_eq(out.append_count, 0);
        now_ms += 1;
        txn_abort_timed_out(tc, now_ms, 100, &arena, &out);
        cr_assert_eq(out.append_count, 1);
        struct txn_record_value v = value_of(out.appends[0].key, out.appends[0].value);
        cr_assert_eq(v.state, TXN_PREPARE_ABORT);
        cr_assert_eq(v.producer_epoch, 1);
        /* Pending: not aborted twice. */
        struct txn_output again;
        txn_abort_timed_out(tc, now_ms, 100, &arena, &again);
        cr_assert_eq(again.append_count, 0);

        struct txn_output res = ack(&out);
        cr_assert(!res.has_answer);
        cr_assert_eq(res.markers_count, 1);
        cr_assert_eq(res.markers[0].producer_epoch, 1);
        cr_assert(!res.markers[0].is_commit);
        /* The producer finds itself fenced. */
        cr_assert_eq(end("a", r.producer_id, 0, true).error_code, KAFKA_PRODUCER_FENCED);
        finish_markers(&res.markers[0]);
        cr_assert_eq(describe("a").state, TXN_COMPLETE_ABORT);
        cr_assert_eq(describe("a").producer_epoch, 1);
}

Test(txn_time, abort_count_is_bounded)
{
        begin_txn("a");
        begin_txn("b");
        now_ms += 100000;
        struct txn_output out;
        txn_abort_timed_out(tc, now_ms, 1, &arena, &out);
        cr_assert_eq(out.append_count, 1);
        txn_abort_timed_out(tc, now_ms, 10, &arena, &out);
        cr_assert_eq(out.append_count, 1);
        cr_assert(kstr_eq_cstr(out.appends[0].transactional_id, "b"));
}

Test(txn_time, idle_ids_expire_with_a_tombstone)
{
        init_ok("a");
        begin_txn("b");
        struct txn_output out;
        now_ms += config.transactional_id_expiration_ms - 1;
        txn_expire_ids(tc, now_ms, 100, &arena, &out);
        cr_assert_eq(out.append_count, 0);
        now_ms += 1;
        txn_expire_ids(tc, now_ms, 100, &arena, &out);
        cr_assert_eq(out.append_count, 1);     /* b is Ongoing: never expired */
        cr_assert(kstr_eq_cstr(out.appends[0].transactional_id, "a"));
        cr_assert_eq(out.appends[0].value.len, -1);
        cr_assert_eq(out.appends[0].key.len, 2 + 2 + 1);
        /* Pending Dead: InitProducerId waits. */
        cr_assert_eq(init_pid("a", 60000, -1, -1).error_code, KAFKA_CONCURRENT_TRANSACTIONS);
        ack(&out);
        cr_assert_eq(describe("a").error_code, KAFKA_TRANSACTIONAL_ID_NOT_FOUND);
        cr_assert_eq(txn_coordinator_count(tc), 1);
}

Test(txn_time, failed_tombstone_keeps_the_id)
{
        init_ok("a");
        now_ms += config.transactional_id_expiration_ms;
        struct txn_output out;
        txn_expire_ids(tc, now_ms, 100, &arena, &out);
        struct txn_output res = ack_err(&out, KAFKA_REQUEST_TIMED_OUT);
        cr_assert(!res.has_answer);
        cr_assert_eq(describe("a").state, TXN_EMPTY);
        txn_expire_ids(tc, now_ms, 100, &arena, &out);
        cr_assert_eq(out.append_count, 1);
}

/* ---- load ---- */

Test(txn_load, replay_rebuilds_the_state)
{
        struct txn_output r = begin_txn("a");
        add_ok("a", r.producer_id, 0, "u", p2, 1);
        init_ok("b");
        init_ok("b");
        struct txn_output out;
        reload(&out);
        cr_assert_eq(out.markers_count, 0);
        struct txn_description d = describe("a");
        cr_assert_eq(d.state, TXN_ONGOING);
        cr_assert_eq(d.topic_count, 2);
        cr_assert_eq(d.producer_id, r.producer_id);
        d = describe("b");
        cr_assert_eq(d.state, TXN_EMPTY);
        cr_assert_eq(d.producer_epoch, 1);
        /* The transaction goes on after the load. */
        out = end("a", r.producer_id, 0, true);
        struct txn_output res = ack(&out);
        cr_assert_eq(res.markers_count, 1);
        cr_assert_eq(res.markers[0].coordinator_epoch, 8);
}

Test(txn_load, prepared_transactions_resume_their_markers)
{
        struct txn_output r = begin_txn("a");
        struct txn_output out = end("a", r.producer_id, 0, true);
        struct txn_output res = ack(&out);
        uint64_t old_markers = res.markers[0].id;
        struct txn_output loaded;
        reload(&loaded);
        cr_assert_eq(loaded.markers_count, 1);
        cr_assert(loaded.markers[0].is_commit);
        cr_assert_eq(loaded.markers[0].coordinator_epoch, 8);
        cr_assert_eq(loaded.markers[0].topics[0].partition_count, 2);
        /* Markers of the old load are stale. */
        struct txn_output o;
        txn_markers_done(tc, KSTR("a"), old_markers, now_ms, &arena, &o);
        cr_assert_eq(o.append_count, 0);
        finish_markers(&loaded.markers[0]);
        cr_assert_eq(describe("a").state, TXN_COMPLETE_COMMIT);
}

Test(txn_load, tombstones_remove_and_requests_wait_while_loading)
{
        init_ok("a");
        now_ms += config.transactional_id_expiration_ms;
        struct txn_output out;
        txn_expire_ids(tc, now_ms, 100, &arena, &out);
        ack(&out);
        init_ok("b");
        struct txn_output pending = init_pid("b", 60000, -1, -1);

        txn_load_begin(tc, 8);
        cr_assert_eq(init_pid("c", 60000, -1, -1).error_code, KAFKA_COORDINATOR_LOAD_IN_PROGRESS);
        cr_assert_eq(end("b", 4001, 0, true).error_code, KAFKA_COORDINATOR_LOAD_IN_PROGRESS);
        cr_assert_eq(describe("b").error_code, KAFKA_COORDINATOR_LOAD_IN_PROGRESS);
        for (int i = 0; i < log_count; i++)
                cr_assert_eq(txn_replay_record(tc, log_records[i].key, log_records[i].value), 0);
        txn_load_end(tc, now_ms, &arena, &out);
        cr_assert_eq(describe("a").error_code, KAFKA_TRANSACTIONAL_ID_NOT_FOUND);
        cr_assert_eq(describe("b").error_code, KAFKA_NONE);
        /* An append from before the load is answered NOT_COORDINATOR. */
        struct txn_output res;
        txn_append_done(tc, KSTR("b"), pending.appends[0].id, KAFKA_NONE, now_ms, &arena, &res);
        cr_assert_eq(res.error_code, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(describe("b").producer_epoch, 0);

        txn_unload(tc);
        cr_assert_eq(init_pid("b", 60000, -1, -1).error_code, KAFKA_NOT_COORDINATOR);
}

Test(txn_load, unknown_key_versions_are_skipped_and_bad_values_fail)
{
        static const uint8_t key1[] = { 0, 1, 0, 1, 'a' };
        static const uint8_t val[] = { 0, 0 };
        txn_load_begin(tc, 8);
        cr_assert_eq(txn_replay_record(tc, (struct kbytes){ key1, sizeof(key1) }, (struct kbytes){ val, 2 }), 1);
        static const uint8_t key0[] = { 0, 0, 0, 1, 'a' };
        cr_assert_eq(txn_replay_record(tc, (struct kbytes){ key0, sizeof(key0) }, (struct kbytes){ val, 2 }),
                     -EBADMSG);
        struct txn_output out;
        txn_load_end(tc, now_ms, &arena, &out);
        cr_assert_eq(txn_coordinator_count(tc), 0);
}

/* ---- ListTransactions, DescribeTransactions ---- */

Test(txn_list, filters_by_state_producer_and_duration)
{
        begin_txn("a");                 /* pid 4000, Ongoing since now */
        init_ok("b");                   /* pid 4001, Empty */
        now_ms += 1000;
        struct txn_listing *items;
        uint32_t count, unknown_count;
        struct kstr *unknown;
        cr_assert_eq(txn_list(tc, NULL, 0, NULL, 0, -1, now_ms, &arena, &items, &count, &unknown, &unknown_count),
                     KAFKA_NONE);
        cr_assert_eq(count, 2);

        struct kstr states[] = { KSTR("Ongoing"), KSTR("Bogus") };
        cr_assert_eq(txn_list(tc, states, 2, NULL, 0, -1, now_ms, &arena, &items, &count, &unknown,
                              &unknown_count),
                     KAFKA_NONE);
        cr_assert_eq(count, 1);
        cr_assert(kstr_eq_cstr(items[0].transactional_id, "a"));
        cr_assert_eq(items[0].state, TXN_ONGOING);
        cr_assert_eq(unknown_count, 1);
        cr_assert(kstr_eq_cstr(unknown[0], "Bogus"));

        int64_t pids[] = { 4001 };
        cr_assert_eq(txn_list(tc, NULL, 0, pids, 1, -1, now_ms, &arena, &items, &count, &unknown, &unknown_count),
                     KAFKA_NONE);
        cr_assert_eq(count, 1);
        cr_assert(kstr_eq_cstr(items[0].transactional_id, "b"));

        /* Duration: started more than the filter ago ("b" has start -1). */
        cr_assert_eq(txn_list(tc, NULL, 0, NULL, 0, 1000, now_ms, &arena, &items, &count, &unknown,
                              &unknown_count),
                     KAFKA_NONE);
        cr_assert_eq(count, 1);
        cr_assert(kstr_eq_cstr(items[0].transactional_id, "b"));
        cr_assert_eq(txn_list(tc, NULL, 0, NULL, 0, 999, now_ms, &arena, &items, &count, &unknown,
                              &unknown_count),
                     KAFKA_NONE);
        cr_assert_eq(count, 2);
}

Test(txn_list, describe_reports_the_transaction)
{
        struct txn_output r = begin_txn("a");
        struct txn_description d = describe("a");
        cr_assert_eq(d.error_code, KAFKA_NONE);
        cr_assert_eq(d.state, TXN_ONGOING);
        cr_assert_eq(d.producer_id, r.producer_id);
        cr_assert_eq(d.producer_epoch, 0);
        cr_assert_eq(d.timeout_ms, 60000);
        cr_assert_eq(d.start_ms, now_ms);
        cr_assert_eq(d.topics[0].partitions[1], 1);
        cr_assert_eq(describe("").error_code, KAFKA_INVALID_REQUEST);
        cr_assert_eq(describe("zz").error_code, KAFKA_TRANSACTIONAL_ID_NOT_FOUND);
}
