/*
 * test_producer_state.c - one partition's producer table held against
 * Kafka's ProducerAppendInfo / ProducerStateEntry / ProducerStateManager:
 * what a client batch is answered (accepted, duplicate with its original
 * offsets, INVALID_PRODUCER_EPOCH, OUT_OF_ORDER_SEQUENCE_NUMBER,
 * INVALID_TXN_STATE), sequence wrap-around at INT32_MAX, transactions
 * opened by data and closed by markers, producer expiry over a large
 * table, and Kafka's `<offset>.snapshot` files byte for byte.
 *
 * The expected snapshot bytes are built here by hand from Kafka's layout
 * (ProducerSnapshot.json, version 1) with an independent CRC-32C call, not
 * by the encoder under test.
 *
 * File tests work in their own mkdtemp directory under /tmp, removed after.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/producer_state.h"
#include "protocol/crc32c.h"
#include "protocol/gen/errors.h"
#include "protocol/record_batch.h"
#include "log/test_util.h"

#define TEST_ATTR_TXN RECORD_BATCH_ATTR_TRANSACTIONAL
#define TEST_ATTR_MARKER (RECORD_BATCH_ATTR_CONTROL | RECORD_BATCH_ATTR_TRANSACTIONAL)
#define TEST_ABORT 0
#define TEST_COMMIT 1
#define TEST_TS 1700000000000LL

/* ---- batches ---- */

/* A data batch header: count records from base_seq at base_offset. */
static struct record_batch_header test_batch(int64_t producer_id, int16_t epoch, int32_t base_seq, int32_t count,
                                             int64_t base_offset, int64_t ts, int16_t attributes)
{
        struct record_batch_header h = {
                .base_offset = base_offset,
                .batch_length = 100,
                .partition_leader_epoch = 0,
                .magic = RECORD_BATCH_MAGIC,
                .attributes = attributes,
                .last_offset_delta = count - 1,
                .base_timestamp_ms = ts - 5,
                .max_timestamp_ms = ts,
                .producer_id = producer_id,
                .producer_epoch = epoch,
                .base_sequence = base_seq,
                .record_count = count,
        };
        return h;
}

/* What check answers; *dup filled when a duplicate (else all -7). */
static int16_t test_check(const struct producer_state *s, const struct record_batch_header *h, bool *is_dup,
                          struct producer_duplicate *dup)
{
        char reason[256];
        memset(reason, 'x', sizeof(reason));
        dup->first_offset = dup->last_offset = dup->timestamp_ms = -7;
        int16_t rc = producer_state_check(s, h, is_dup, dup, reason, sizeof(reason));
        if (rc == KAFKA_NONE)
                cr_expect_eq(reason[0], '\0', "no error but a reason: %s", reason);
        else
                cr_expect(reason[0] != '\0' && reason[0] != 'x' && memchr(reason, '\0', sizeof(reason)),
                          "error %d without a reason line", rc);
        if (rc != KAFKA_NONE)
                cr_expect_not(*is_dup, "an error that is also a duplicate");
        return rc;
}

/* The error code of a batch expected not to be a duplicate. */
static int16_t test_verdict(const struct producer_state *s, const struct record_batch_header *h)
{
        bool is_dup = true;
        struct producer_duplicate dup;
        int16_t rc = test_check(s, h, &is_dup, &dup);
        cr_expect_not(is_dup, "pid %lld epoch %d seq %d taken for a duplicate", (long long)h->producer_id,
                      h->producer_epoch, h->base_sequence);
        return rc;
}

/* Checks (must be accepted, not a duplicate) and records a data batch. */
static void test_append(struct producer_state *s, const struct record_batch_header *h)
{
        cr_assert_eq(test_verdict(s, h), KAFKA_NONE, "pid %lld epoch %d seq %d refused", (long long)h->producer_id,
                     h->producer_epoch, h->base_sequence);
        cr_assert_eq(producer_state_update(s, h, -1, -1, NULL), 0);
}

/* Records a transaction marker; returns update's answer. */
static int test_marker(struct producer_state *s, int64_t producer_id, int16_t epoch, int64_t offset, int64_t ts,
                       int16_t control_type, int32_t coordinator_epoch, struct producer_completed_txn *completed)
{
        struct record_batch_header h = test_batch(producer_id, epoch, RECORD_BATCH_NO_SEQUENCE, 1, offset, ts,
                                                  TEST_ATTR_MARKER);
        return producer_state_update(s, &h, control_type, coordinator_epoch, completed);
}

static void test_expect_duplicate(const struct producer_state *s, const struct record_batch_header *h,
                                  int64_t first_offset, int64_t last_offset, int64_t ts)
{
        bool is_dup = false;
        struct producer_duplicate dup;
        cr_expect_eq(test_check(s, h, &is_dup, &dup), KAFKA_NONE);
        cr_expect(is_dup, "seq %d..%d not found as a duplicate", h->base_sequence, producer_header_last_seq(h));
        cr_expect_eq(dup.first_offset, first_offset, "seq %d: first offset %lld, want %lld", h->base_sequence,
                     (long long)dup.first_offset, (long long)first_offset);
        cr_expect_eq(dup.last_offset, last_offset, "seq %d: last offset %lld, want %lld", h->base_sequence,
                     (long long)dup.last_offset, (long long)last_offset);
        cr_expect_eq(dup.timestamp_ms, ts);
}

static const struct producer_entry *test_entry(const struct producer_state *s, int64_t producer_id)
{
        const struct producer_entry *e = producer_state_find(s, producer_id);
        cr_assert_not_null(e, "producer %lld missing", (long long)producer_id);
        cr_assert_eq(e->producer_id, producer_id);
        return e;
}

static const struct producer_batch *test_last_batch(const struct producer_entry *e)
{
        cr_assert_gt(e->batch_count, 0);
        return &e->batches[(e->batch_head + e->batch_count - 1u) % PRODUCER_BATCHES_KEPT];
}

/* ---- unknown producers and sequences ---- */

Test(producer_state, unknown_producer_takes_any_epoch_and_sequence)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;

        /* Kafka 2.5+: a producer whose state is gone starts wherever it is. */
        h = test_batch(1, 7, 100, 3, 50, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        h = test_batch(1, 0, 0, 1, 50, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        h = test_batch(1, 32000, 2000000000, 10, 50, TEST_TS, TEST_ATTR_TXN);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        cr_expect_eq(producer_state_count(&s), 0, "check must not change the state");

        h = test_batch(1, 7, 100, 3, 50, TEST_TS, 0);
        test_append(&s, &h);
        cr_expect_eq(producer_state_count(&s), 1);
        const struct producer_entry *e = test_entry(&s, 1);
        cr_expect_eq(e->epoch, 7);
        cr_expect_eq(e->batch_count, 1);
        cr_expect_eq(e->last_timestamp_ms, TEST_TS);
        cr_expect_eq(e->txn_first_offset, -1);
        cr_expect_eq(e->coordinator_epoch, -1);
        cr_expect_eq(test_last_batch(e)->last_seq, 102);
        cr_expect_eq(test_last_batch(e)->last_offset, 52);
        cr_expect_eq(test_last_batch(e)->offset_delta, 2);
        cr_expect_eq(producer_batch_first_seq(test_last_batch(e)), 100);

        /* Next in sequence is 103. */
        h = test_batch(1, 7, 103, 2, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        /* A gap. */
        h = test_batch(1, 7, 104, 1, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(1, 7, 5, 1, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* Earlier sequences that are not exactly the kept batch. */
        h = test_batch(1, 7, 101, 2, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(1, 7, 100, 2, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(1, 7, 102, 1, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* Another producer is still unknown. */
        h = test_batch(2, 7, 104, 1, 53, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);

        h = test_batch(1, 7, 103, 2, 53, TEST_TS + 1, 0);
        test_append(&s, &h);
        h = test_batch(1, 7, 105, 1, 55, TEST_TS + 2, 0);
        test_append(&s, &h);
        /* Mirrors testBasicIdMapping: a repeat of seq 103 (now two batches
         * back, kept) is a duplicate; seq 101 inside the first batch is not. */
        h = test_batch(1, 7, 103, 2, 99, TEST_TS + 9, 0);
        test_expect_duplicate(&s, &h, 53, 54, TEST_TS + 1);
        h = test_batch(1, 7, 101, 1, 99, TEST_TS + 9, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        producer_state_free(&s);
}

Test(producer_state, kept_batches_are_duplicates_with_their_first_answer)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;
        int64_t first[6], last[6], ts[6];
        int64_t offset = 1000;

        /* Six batches of 2..7 records; other producers' batches in between
         * leave gaps in the offsets. */
        int32_t seq = 0;
        for (int i = 0; i < 6; i++) {
                int32_t count = 2 + i;
                first[i] = offset;
                last[i] = offset + count - 1;
                ts[i] = TEST_TS + 10 * i;
                h = test_batch(9, 3, seq, count, offset, ts[i], 0);
                test_append(&s, &h);
                struct record_batch_header other = test_batch(10, 0, i, 1, last[i] + 1, ts[i], 0);
                test_append(&s, &other);
                seq += count;
                offset = last[i] + 5;
        }
        const struct producer_entry *e = test_entry(&s, 9);
        cr_expect_eq(e->batch_count, PRODUCER_BATCHES_KEPT);

        /* Each of the last five, retried with whatever offset and time the
         * retry carries, gets the first append's offsets and timestamp. */
        seq = 2;
        for (int i = 1; i < 6; i++) {
                int32_t count = 2 + i;
                h = test_batch(9, 3, seq, count, 77777, TEST_TS + 99999, 0);
                test_expect_duplicate(&s, &h, first[i], last[i], ts[i]);
                /* The same range with another epoch is no duplicate. */
                h = test_batch(9, 4, seq, count, 77777, TEST_TS + 99999, 0);
                cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER,
                             "newer epoch, sequence %d", seq);
                h = test_batch(9, 2, seq, count, 77777, TEST_TS + 99999, 0);
                cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH, "older epoch, sequence %d", seq);
                /* Same first sequence, another last one. */
                h = test_batch(9, 3, seq, count + 1, 77777, TEST_TS + 99999, 0);
                cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
                h = test_batch(9, 3, seq + 1, count - 1, 77777, TEST_TS + 99999, 0);
                cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
                seq += count;
        }
        /* The oldest (seq 0..1) has left the five: out of order now. */
        h = test_batch(9, 3, 0, 2, 77777, TEST_TS + 99999, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* And the next one is still taken. */
        h = test_batch(9, 3, seq, 1, offset, TEST_TS + 99999, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);

        /* A seventh pushes out seq 2..4. */
        test_append(&s, &h);
        h = test_batch(9, 3, 2, 3, 77777, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(9, 3, 5, 4, 77777, TEST_TS, 0);
        test_expect_duplicate(&s, &h, first[2], last[2], ts[2]);
        producer_state_free(&s);
}

Test(producer_state, older_epoch_is_fenced_and_newer_epoch_starts_at_zero)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;

        for (int i = 0; i < 4; i++) {
                h = test_batch(5, 10, 2 * i, 2, 2 * i, TEST_TS + i, 0);
                test_append(&s, &h);
        }
        /* Older epochs, whatever the sequence. */
        h = test_batch(5, 9, 8, 1, 8, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH);
        h = test_batch(5, 0, 0, 1, 8, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH);
        h = test_batch(5, 9, 2, 2, 8, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH, "a retry from an older epoch");
        /* A newer epoch must start at 0, even at the old next sequence. */
        h = test_batch(5, 11, 8, 1, 8, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(5, 11, 1, 1, 8, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(5, 12, 0, 3, 8, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE, "a jump of more than one epoch is fine");

        h = test_batch(5, 11, 0, 1, 8, TEST_TS + 50, 0);
        test_append(&s, &h);
        const struct producer_entry *e = test_entry(&s, 5);
        cr_expect_eq(e->epoch, 11);
        cr_expect_eq(e->batch_count, 1, "a new epoch drops the old epoch's batches");
        cr_expect_eq(test_last_batch(e)->last_seq, 0);
        cr_expect_eq(test_last_batch(e)->last_offset, 8);

        /* The old epoch's batches are gone: retried at epoch 10 they are
         * fenced, and their ranges at epoch 11 are out of order. */
        h = test_batch(5, 10, 6, 2, 99, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH);
        h = test_batch(5, 11, 2, 2, 99, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(5, 11, 0, 2, 99, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        /* The new epoch's own batch is the duplicate. */
        h = test_batch(5, 11, 0, 1, 99, TEST_TS, 0);
        test_expect_duplicate(&s, &h, 8, 8, TEST_TS + 50);
        h = test_batch(5, 11, 1, 1, 9, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        producer_state_free(&s);
}

Test(producer_state, marker_epoch_bump_resets_sequences)
{
        /* Kafka's testControlRecordBumpsProducerEpoch and
         * testOutOfSequenceAfterControlRecordEpochBump. */
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;

        h = test_batch(3, 0, 0, 1, 0, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        h = test_batch(3, 0, 1, 1, 1, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        struct producer_completed_txn c;
        cr_expect_eq(test_marker(&s, 3, 1, 2, TEST_TS + 1, TEST_ABORT, 0, &c), 1);
        const struct producer_entry *e = test_entry(&s, 3);
        cr_expect_eq(e->epoch, 1);
        cr_expect_eq(e->batch_count, 0);
        cr_expect_eq(e->txn_first_offset, -1);
        cr_expect_eq(e->last_timestamp_ms, TEST_TS + 1);

        h = test_batch(3, 1, 2, 1, 3, TEST_TS, TEST_ATTR_TXN);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(3, 2, 2, 1, 3, TEST_TS, TEST_ATTR_TXN);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(3, 0, 2, 1, 3, TEST_TS, TEST_ATTR_TXN);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH);
        h = test_batch(3, 1, 0, 1, 3, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        e = test_entry(&s, 3);
        cr_expect_eq(e->epoch, 1);
        cr_expect_eq(test_last_batch(e)->last_seq, 0);
        producer_state_free(&s);
}

Test(producer_state, marker_for_unknown_producer)
{
        /* Kafka's testAppendTxnMarkerWithNoProducerState. */
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;
        struct producer_completed_txn c = { .producer_id = -5 };

        cr_expect_eq(test_marker(&s, 44, 2, 27, TEST_TS, TEST_COMMIT, 8, &c), 0);
        cr_expect_eq(c.producer_id, -5, "no transaction was completed");
        const struct producer_entry *e = test_entry(&s, 44);
        cr_expect_eq(e->epoch, 2);
        cr_expect_eq(e->batch_count, 0);
        cr_expect_eq(e->coordinator_epoch, 8);
        cr_expect_eq(e->txn_first_offset, -1);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), -1);

        h = test_batch(44, 0, 0, 1, 28, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_PRODUCER_EPOCH, "fencing survives with only a marker");
        h = test_batch(44, 2, 17, 1, 28, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(44, 2, 0, 1, 28, TEST_TS, 0);
        test_append(&s, &h);
        cr_expect_eq(test_last_batch(test_entry(&s, 44))->last_seq, 0);
        producer_state_free(&s);
}

/* ---- sequence wrap-around ---- */

Test(producer_state, sequence_arithmetic_wraps_at_int32_max)
{
        struct record_batch_header h;
        h = test_batch(1, 0, 5, 5, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), 9);
        h = test_batch(1, 0, INT32_MAX, 1, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), INT32_MAX);
        h = test_batch(1, 0, INT32_MAX, 2, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), 0);
        h = test_batch(1, 0, INT32_MAX - 1, 4, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), 1);
        h = test_batch(1, 0, INT32_MAX - 10, 21, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), 9);
        h = test_batch(1, 0, INT32_MAX - 3, 4, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), INT32_MAX);
        h = test_batch(1, 0, RECORD_BATCH_NO_SEQUENCE, 3, 0, TEST_TS, 0);
        cr_expect_eq(producer_header_last_seq(&h), RECORD_BATCH_NO_SEQUENCE);

        struct producer_batch b = { .last_seq = 9, .offset_delta = 4 };
        cr_expect_eq(producer_batch_first_seq(&b), 5);
        b = (struct producer_batch){ .last_seq = 0, .offset_delta = 0 };
        cr_expect_eq(producer_batch_first_seq(&b), 0);
        b = (struct producer_batch){ .last_seq = 2, .offset_delta = 2 };
        cr_expect_eq(producer_batch_first_seq(&b), 0);
        b = (struct producer_batch){ .last_seq = 0, .offset_delta = 1 };
        cr_expect_eq(producer_batch_first_seq(&b), INT32_MAX);
        b = (struct producer_batch){ .last_seq = 1, .offset_delta = 3 };
        cr_expect_eq(producer_batch_first_seq(&b), INT32_MAX - 1);
        b = (struct producer_batch){ .last_seq = 9, .offset_delta = 20 };
        cr_expect_eq(producer_batch_first_seq(&b), INT32_MAX - 10);
        b = (struct producer_batch){ .last_seq = INT32_MAX, .offset_delta = INT32_MAX };
        cr_expect_eq(producer_batch_first_seq(&b), 0);
}

Test(producer_state, sequence_continues_past_int32_max)
{
        /* testProducerSequenceWrapAround / ...InvalidWrapAround. */
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;

        h = test_batch(6, 15, INT32_MAX, 1, 735, TEST_TS, 0);
        test_append(&s, &h);
        h = test_batch(6, 15, 1, 1, 736, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(6, 15, INT32_MAX, 1, 736, TEST_TS, 0);
        test_expect_duplicate(&s, &h, 735, 735, TEST_TS);
        h = test_batch(6, 15, 0, 1, 736, TEST_TS + 1, 0);
        test_append(&s, &h);
        cr_expect_eq(test_last_batch(test_entry(&s, 6))->last_seq, 0);
        h = test_batch(6, 15, 1, 1, 737, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        producer_state_free(&s);
}

Test(producer_state, batch_whose_sequences_wrap)
{
        /* testProducerSequenceWithWrapAroundBatchRecord. */
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;

        h = test_batch(6, 15, INT32_MAX - 30, 20, 1980, TEST_TS, 0);
        test_append(&s, &h);
        /* MAX-10 .. 9: 21 records at 2000..2020. */
        h = test_batch(6, 15, INT32_MAX - 10, 21, 2000, TEST_TS + 1, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        test_append(&s, &h);
        const struct producer_entry *e = test_entry(&s, 6);
        const struct producer_batch *b = test_last_batch(e);
        cr_expect_eq(b->last_seq, 9);
        cr_expect_eq(b->offset_delta, 20);
        cr_expect_eq(b->last_offset, 2020);
        cr_expect_eq(producer_batch_first_seq(b), INT32_MAX - 10);

        h = test_batch(6, 15, INT32_MAX - 10, 21, 5000, TEST_TS + 7, 0);
        test_expect_duplicate(&s, &h, 2000, 2020, TEST_TS + 1);
        h = test_batch(6, 15, INT32_MAX - 30, 20, 5000, TEST_TS + 7, 0);
        test_expect_duplicate(&s, &h, 1980, 1999, TEST_TS);
        h = test_batch(6, 15, INT32_MAX - 10, 20, 5000, TEST_TS + 7, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(6, 15, 0, 1, 2021, TEST_TS + 7, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(6, 15, 10, 1, 2021, TEST_TS + 7, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        producer_state_free(&s);
}

/* ---- transactions ---- */

Test(producer_state, transaction_opened_by_data_closed_by_marker)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;
        struct producer_completed_txn c;

        cr_expect_eq(producer_state_first_open_txn_offset(&s), -1);
        h = test_batch(1, 0, 0, 2, 10, TEST_TS, 0);
        test_append(&s, &h);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), -1, "plain writes open nothing");
        h = test_batch(1, 0, 2, 2, 20, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        cr_expect_eq(test_entry(&s, 1)->txn_first_offset, 20);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), 20);

        /* A plain write inside the open transaction. */
        h = test_batch(1, 0, 4, 1, 22, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_INVALID_TXN_STATE);
        /* Epoch and sequence are judged first. */
        h = test_batch(1, 0, 9, 1, 22, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);

        h = test_batch(2, 4, 0, 1, 22, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        h = test_batch(1, 0, 4, 3, 23, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        cr_expect_eq(test_entry(&s, 1)->txn_first_offset, 20, "later batches keep the first offset");
        cr_expect_eq(producer_state_first_open_txn_offset(&s), 20);

        /* Commit of producer 1 by coordinator epoch 3. */
        memset(&c, 0xab, sizeof(c));
        cr_expect_eq(test_marker(&s, 1, 0, 26, TEST_TS + 5, TEST_COMMIT, 3, &c), 1);
        cr_expect_eq(c.producer_id, 1);
        cr_expect_eq(c.first_offset, 20);
        cr_expect_eq(c.last_offset, 26);
        cr_expect_eq(c.is_aborted, false);
        const struct producer_entry *e = test_entry(&s, 1);
        cr_expect_eq(e->txn_first_offset, -1);
        cr_expect_eq(e->coordinator_epoch, 3);
        cr_expect_eq(e->epoch, 0);
        cr_expect_eq(e->last_timestamp_ms, TEST_TS + 5);
        cr_expect_eq(e->batch_count, 3, "a marker of the same epoch keeps the batches");
        cr_expect_eq(producer_state_first_open_txn_offset(&s), 22);

        /* After it, a plain write and a retry are fine again. */
        h = test_batch(1, 0, 7, 1, 27, TEST_TS, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);
        h = test_batch(1, 0, 4, 3, 99, TEST_TS, TEST_ATTR_TXN);
        test_expect_duplicate(&s, &h, 23, 25, TEST_TS);

        /* Abort of producer 2. */
        memset(&c, 0xab, sizeof(c));
        cr_expect_eq(test_marker(&s, 2, 4, 27, TEST_TS + 6, TEST_ABORT, 3, &c), 1);
        cr_expect_eq(c.producer_id, 2);
        cr_expect_eq(c.first_offset, 22);
        cr_expect_eq(c.last_offset, 27);
        cr_expect_eq(c.is_aborted, true);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), -1);

        /* A marker with nothing open completes nothing. */
        memset(&c, 0xab, sizeof(c));
        struct producer_completed_txn untouched;
        memset(&untouched, 0xab, sizeof(untouched));
        cr_expect_eq(test_marker(&s, 1, 0, 28, TEST_TS + 7, TEST_ABORT, 4, &c), 0);
        cr_expect_eq(memcmp(&c, &untouched, sizeof(c)), 0, "completed written without a transaction");
        cr_expect_eq(test_entry(&s, 1)->coordinator_epoch, 4);
        /* completed may be NULL. */
        h = test_batch(2, 4, 1, 1, 29, TEST_TS, TEST_ATTR_TXN);
        test_append(&s, &h);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), 29);
        cr_expect_eq(test_marker(&s, 2, 4, 30, TEST_TS + 8, TEST_COMMIT, 4, NULL), 1);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), -1);
        producer_state_free(&s);
}

Test(producer_state, fencing_abort_marker_clears_batches_and_transaction)
{
        /* testProducerStateAfterFencingAbortMarker. */
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h = test_batch(8, 0, 0, 1, 0, TEST_TS, TEST_ATTR_TXN);
        struct producer_completed_txn c;
        test_append(&s, &h);
        cr_expect_eq(test_marker(&s, 8, 1, 1, TEST_TS, TEST_ABORT, 0, &c), 1);
        cr_expect(c.is_aborted);
        const struct producer_entry *e = test_entry(&s, 8);
        cr_expect_eq(e->txn_first_offset, -1);
        cr_expect_eq(e->batch_count, 0);
        cr_expect_eq(e->epoch, 1);
        cr_expect_eq(producer_state_expire(&s, TEST_TS, 1000), 0);
        test_entry(&s, 8);
        producer_state_free(&s);
}

/* ---- expiry and the table ---- */

Test(producer_state, expiry_spares_recent_and_transactional_producers)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;

        h = test_batch(1, 0, 0, 1, 0, 1000, 0);
        test_append(&s, &h);
        h = test_batch(2, 0, 0, 1, 1, 1000, TEST_ATTR_TXN);
        test_append(&s, &h);
        h = test_batch(3, 0, 0, 1, 2, 1200, 0);
        test_append(&s, &h);
        cr_expect_eq(test_marker(&s, 4, 0, 3, 1000, TEST_COMMIT, 0, NULL), 0);

        cr_expect_eq(producer_state_expire(&s, 1499, 500), 0);
        cr_expect_eq(producer_state_count(&s), 4);
        /* now - last write >= expiration, as in Kafka's isProducerExpired. */
        cr_expect_eq(producer_state_expire(&s, 1500, 500), 2);
        cr_expect_eq(producer_state_count(&s), 2);
        cr_expect_null(producer_state_find(&s, 1));
        cr_expect_null(producer_state_find(&s, 4), "a marker-only producer expires by the marker's time");
        test_entry(&s, 2);
        test_entry(&s, 3);

        /* An expired producer is unknown again: any sequence. */
        h = test_batch(1, 0, 50, 1, 9, 1600, 0);
        cr_expect_eq(test_verdict(&s, &h), KAFKA_NONE);

        cr_expect_eq(producer_state_expire(&s, 1000000, 500), 1);
        test_entry(&s, 2);
        cr_expect_eq(producer_state_count(&s), 1);
        cr_expect_eq(test_marker(&s, 2, 0, 10, 2000, TEST_ABORT, 0, NULL), 1);
        cr_expect_eq(producer_state_expire(&s, 2499, 500), 0);
        cr_expect_eq(producer_state_expire(&s, 2500, 500), 1);
        cr_expect_eq(producer_state_count(&s), 0);
        cr_expect_null(producer_state_find(&s, 2));
        uint32_t cursor = 0;
        cr_expect_null(producer_state_next(&s, &cursor));
        producer_state_free(&s);
}

Test(producer_state, clear_forgets_everyone)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h;
        for (int64_t pid = 0; pid < 100; pid++) {
                h = test_batch(pid, 0, 0, 1, pid, TEST_TS, pid % 2 ? TEST_ATTR_TXN : 0);
                test_append(&s, &h);
        }
        cr_expect_eq(producer_state_count(&s), 100);
        producer_state_clear(&s);
        cr_expect_eq(producer_state_count(&s), 0);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), -1);
        for (int64_t pid = 0; pid < 100; pid++)
                cr_expect_null(producer_state_find(&s, pid));
        h = test_batch(7, 3, 5, 1, 0, TEST_TS, 0);
        test_append(&s, &h);
        cr_expect_eq(producer_state_count(&s), 1);
        cr_expect_eq(test_entry(&s, 7)->epoch, 3);
        producer_state_free(&s);
}

/* xorshift64*: the same sequence on every run. */
static uint64_t test_rand_state = 0x9E3779B97F4A7C15ull;

static uint64_t test_rand(void)
{
        test_rand_state ^= test_rand_state >> 12;
        test_rand_state ^= test_rand_state << 25;
        test_rand_state ^= test_rand_state >> 27;
        return test_rand_state * 2685821657736338717ull;
}

#define TEST_MANY 10000

struct test_producer {
        int64_t producer_id;
        int64_t ts;
        int64_t last_offset;
        bool is_txn;
        bool is_present;
};

/* Every producer the test expects is found with its fields, every one it
 * does not is absent, iteration sees exactly the present ones once. */
static void test_expect_table(const struct producer_state *s, const struct test_producer *p, uint32_t n)
{
        /* Plain ifs: a million passing cr_asserts would each be an event. */
        uint32_t present = 0;
        for (uint32_t i = 0; i < n; i++) {
                const struct producer_entry *e = producer_state_find(s, p[i].producer_id);
                if (!p[i].is_present) {
                        if (e)
                                cr_assert_fail("producer %lld should be gone", (long long)p[i].producer_id);
                        continue;
                }
                present++;
                if (!e)
                        cr_assert_fail("producer %lld lost", (long long)p[i].producer_id);
                const struct producer_batch *b = e->batch_count ? test_last_batch(e) : NULL;
                if (e->producer_id != p[i].producer_id || e->last_timestamp_ms != p[i].ts ||
                    e->txn_first_offset != (p[i].is_txn ? p[i].last_offset : -1) || !b ||
                    b->last_offset != p[i].last_offset)
                        cr_assert_fail("producer %lld: wrong entry", (long long)p[i].producer_id);
        }
        cr_assert_eq(producer_state_count(s), present);
        /* At most three quarters full, so a probe always meets a free slot.
         * (producer_state.c's invariant comment says count < cap * 3 / 4;
         * get_or_add lets it reach exactly 3/4, which is harmless.) */
        cr_assert(s->cap == 0 || (uint64_t)s->count * 4 <= (uint64_t)s->cap * 3, "load factor above 3/4");
        uint32_t cursor = 0, seen = 0;
        for (const struct producer_entry *e; (e = producer_state_next(s, &cursor));) {
                if (producer_state_find(s, e->producer_id) != e)
                        cr_assert_fail("iterated producer %lld not found at its slot", (long long)e->producer_id);
                seen++;
        }
        cr_assert_eq(seen, present);
}

Test(producer_state, many_producers_survive_growth_and_random_expiry)
{
        struct producer_state s;
        producer_state_init(&s);
        struct test_producer *p = calloc(TEST_MANY, sizeof(*p));
        cr_assert_not_null(p);

        /* Half consecutive ids (as the coordinator hands them out), half
         * scattered; random last-write times spread the removals. */
        for (uint32_t i = 0; i < TEST_MANY; i++) {
                p[i].producer_id = i % 2 ? (int64_t)i : (int64_t)((test_rand() >> 2) & ~0xFFFFull) | i;
                p[i].ts = 1 + (int64_t)(test_rand() % 1000);
                p[i].is_txn = test_rand() % 10 == 0;
                p[i].last_offset = 10 * (int64_t)i;
                p[i].is_present = true;
                struct record_batch_header h = test_batch(p[i].producer_id, 0, 0, 1, p[i].last_offset, p[i].ts,
                                                          p[i].is_txn ? TEST_ATTR_TXN : 0);
                test_append(&s, &h);
        }
        test_expect_table(&s, p, TEST_MANY);

        static const int64_t rounds[] = { 50, 200, 201, 450, 700, 950, 1000 };
        int64_t expiration_ms = 5000;
        for (size_t r = 0; r < sizeof(rounds) / sizeof(rounds[0]); r++) {
                uint32_t want = 0;
                for (uint32_t i = 0; i < TEST_MANY; i++) {
                        if (p[i].is_present && !p[i].is_txn && p[i].ts <= rounds[r]) {
                                p[i].is_present = false;
                                want++;
                        }
                }
                cr_assert_eq(producer_state_expire(&s, rounds[r] + expiration_ms, expiration_ms), want,
                             "round %zu", r);
                test_expect_table(&s, p, TEST_MANY);

                /* Bring some back (never to expire) into the shifted table. */
                for (uint32_t i = 0; i < TEST_MANY; i++) {
                        if (p[i].is_present || test_rand() % 4)
                                continue;
                        p[i].ts = 1000000;
                        p[i].last_offset = 1000000 + i;
                        p[i].is_present = true;
                        struct record_batch_header h = test_batch(p[i].producer_id, 0, 77, 1, p[i].last_offset,
                                                                  p[i].ts, p[i].is_txn ? TEST_ATTR_TXN : 0);
                        test_append(&s, &h);
                }
                test_expect_table(&s, p, TEST_MANY);
        }
        /* Only transactions and re-added producers are left. */
        for (uint32_t i = 0; i < TEST_MANY; i++)
                cr_assert(!p[i].is_present || p[i].is_txn || p[i].ts == 1000000);

        /* And a snapshot of the survivors decodes to the same table. */
        size_t len = producer_state_snapshot_bytes(&s);
        uint8_t *buf = malloc(len);
        cr_assert_not_null(buf);
        producer_state_snapshot_encode(&s, buf);
        struct producer_state back;
        producer_state_init(&back);
        cr_assert_eq(producer_state_snapshot_decode(&back, buf, len, 0, 0), 0);
        test_expect_table(&back, p, TEST_MANY);
        producer_state_free(&back);
        free(buf);
        free(p);
        producer_state_free(&s);
}

Test(producer_state, small_tables_stay_consistent_under_random_expiry)
{
        /* Small tables are nearly full and their runs cross the end of the
         * slot array often: the wrapped case of backward-shift deletion. */
        struct test_producer p[48];
        for (int trial = 0; trial < 4000; trial++) {
                struct producer_state s;
                producer_state_init(&s);
                uint32_t n = 1 + (uint32_t)(test_rand() % 48);
                for (uint32_t i = 0; i < n; i++) {
                        p[i].producer_id = (int64_t)((test_rand() >> 8) & ~0xFFull) | i;
                        p[i].ts = 1 + (int64_t)(test_rand() % 100);
                        p[i].is_txn = test_rand() % 8 == 0;
                        p[i].last_offset = i;
                        p[i].is_present = true;
                        struct record_batch_header h = test_batch(p[i].producer_id, 0, 0, 1, p[i].last_offset,
                                                                  p[i].ts, p[i].is_txn ? TEST_ATTR_TXN : 0);
                        test_append(&s, &h);
                }
                test_expect_table(&s, p, n);
                for (int64_t cut = 20; cut <= 100; cut += 40) {
                        uint32_t want = 0;
                        for (uint32_t i = 0; i < n; i++) {
                                if (p[i].is_present && !p[i].is_txn && p[i].ts <= cut) {
                                        p[i].is_present = false;
                                        want++;
                                }
                        }
                        cr_assert_eq(producer_state_expire(&s, cut + 1000, 1000), want);
                        test_expect_table(&s, p, n);
                        for (uint32_t i = 0; i < n; i++) {
                                if (p[i].is_present || test_rand() % 2)
                                        continue;
                                p[i].ts = 1000000;
                                p[i].is_present = true;
                                struct record_batch_header h = test_batch(p[i].producer_id, 0, 0, 1,
                                                                          p[i].last_offset, p[i].ts, 0);
                                test_append(&s, &h);
                        }
                        test_expect_table(&s, p, n);
                }
                producer_state_free(&s);
        }
}

/* ---- snapshot bytes ---- */

static uint8_t *test_put(uint8_t *p, uint64_t v, int bytes)
{
        for (int i = bytes - 1; i >= 0; i--)
                *p++ = (uint8_t)(v >> (8 * i));
        return p;
}

/* One 46-byte snapshot entry in Kafka's field order. */
static uint8_t *test_put_entry(uint8_t *p, int64_t producer_id, int16_t epoch, int32_t last_seq, int64_t last_offset,
                               int32_t offset_delta, int64_t ts, int32_t coordinator_epoch, int64_t txn_first_offset)
{
        p = test_put(p, (uint64_t)producer_id, 8);
        p = test_put(p, (uint16_t)epoch, 2);
        p = test_put(p, (uint32_t)last_seq, 4);
        p = test_put(p, (uint64_t)last_offset, 8);
        p = test_put(p, (uint32_t)offset_delta, 4);
        p = test_put(p, (uint64_t)ts, 8);
        p = test_put(p, (uint32_t)coordinator_epoch, 4);
        return test_put(p, (uint64_t)txn_first_offset, 8);
}

/* Version and CRC over what follows (CRC-32C from byte 6 to the end). */
static void test_seal(uint8_t *buf, size_t len, int16_t version)
{
        test_put(buf, (uint16_t)version, 2);
        test_put(buf + 2, crc32c(buf + 6, len - 6), 4);
}

/* A state of three producers: one in a transaction, one plain with five
 * kept batches, one known only from a marker. */
static void test_small_state(struct producer_state *s)
{
        struct record_batch_header h;
        producer_state_init(s);
        /* 0x0102030405060708, epoch 3: seq 7..9 at 100..102, txn open. */
        h = test_batch(0x0102030405060708LL, 3, 7, 3, 100, 1700000000123LL, TEST_ATTR_TXN);
        test_append(s, &h);
        /* 42, epoch 0: seqs 0..11 in six batches of 2; the last at 210..211. */
        for (int i = 0; i < 6; i++) {
                h = test_batch(42, 0, 2 * i, 2, 200 + 2 * i, 1700000000200LL + i, 0);
                test_append(s, &h);
        }
        /* 7: commit marker at 300, epoch 5 by coordinator epoch 11. */
        cr_assert_eq(test_marker(s, 7, 5, 300, 1700000000456LL, TEST_COMMIT, 11, NULL), 0);
}

/* Kafka's bytes for one producer of test_small_state. */
static void test_small_entry(uint8_t *out, int64_t producer_id)
{
        if (producer_id == 0x0102030405060708LL)
                test_put_entry(out, producer_id, 3, 9, 102, 2, 1700000000123LL, -1, 100);
        else if (producer_id == 42)
                test_put_entry(out, producer_id, 0, 11, 211, 1, 1700000000205LL, -1, -1);
        else if (producer_id == 7)
                test_put_entry(out, producer_id, 5, -1, -1, 0, 1700000000456LL, 11, -1);
        else
                cr_assert_fail("unexpected producer %lld", (long long)producer_id);
}

Test(producer_state, snapshot_encodes_kafka_bytes)
{
        struct producer_state s;
        test_small_state(&s);
        size_t len = producer_state_snapshot_bytes(&s);
        cr_assert_eq(len, 10 + 3 * 46);

        /* Kafka writes producers in its map's order; take the table's. */
        uint8_t want[10 + 3 * 46], got[10 + 3 * 46];
        uint8_t *p = test_put(want + 6, 3, 4);
        uint32_t cursor = 0;
        for (const struct producer_entry *e; (e = producer_state_next(&s, &cursor)); p += 46)
                test_small_entry(p, e->producer_id);
        cr_assert_eq((size_t)(p - want), len);
        test_seal(want, len, 1);

        memset(got, 0xee, sizeof(got));
        producer_state_snapshot_encode(&s, got);
        for (size_t i = 0; i < len; i++)
                cr_expect_eq(got[i], want[i], "byte %zu: %02x, want %02x", i, got[i], want[i]);
        producer_state_free(&s);

        /* An empty table: version, CRC of the count alone, count 0. */
        struct producer_state empty;
        producer_state_init(&empty);
        cr_assert_eq(producer_state_snapshot_bytes(&empty), 10);
        uint8_t e_want[10] = { 0 }, e_got[10];
        test_seal(e_want, 10, 1);
        producer_state_snapshot_encode(&empty, e_got);
        cr_expect_eq(memcmp(e_got, e_want, 10), 0);
        producer_state_free(&empty);
}

/* Both states hold the same producers with the same snapshot fields. */
static void test_expect_same_snapshot(const struct producer_state *a, const struct producer_state *b)
{
        size_t len = producer_state_snapshot_bytes(a);
        cr_assert_eq(producer_state_snapshot_bytes(b), len);
        uint8_t *ba = malloc(len), *bb = malloc(len);
        cr_assert(ba && bb);
        producer_state_snapshot_encode(a, ba);
        producer_state_snapshot_encode(b, bb);
        cr_assert_eq(memcmp(ba, bb, 2), 0);
        cr_assert_eq(memcmp(ba + 6, bb + 6, 4), 0);
        /* Entry order follows each table; compare as sets. */
        for (size_t i = 10; i < len; i += 46) {
                bool is_found = false;
                for (size_t j = 10; j < len && !is_found; j += 46)
                        is_found = memcmp(ba + i, bb + j, 46) == 0;
                cr_assert(is_found, "entry at %zu differs after the round trip", i);
        }
        free(ba);
        free(bb);
}

Test(producer_state, snapshot_round_trip)
{
        struct producer_state s, back;
        test_small_state(&s);
        size_t len = producer_state_snapshot_bytes(&s);
        uint8_t buf[10 + 3 * 46];
        producer_state_snapshot_encode(&s, buf);

        producer_state_init(&back);
        struct record_batch_header h = test_batch(999, 0, 0, 1, 0, TEST_TS, 0);
        test_append(&back, &h);
        cr_assert_eq(producer_state_snapshot_decode(&back, buf, len, 0, 0), 0);
        cr_expect_eq(producer_state_count(&back), 3);
        cr_expect_null(producer_state_find(&back, 999), "decode replaces, it does not merge");
        test_expect_same_snapshot(&s, &back);
        cr_expect_eq(producer_state_first_open_txn_offset(&back), 100);

        /* The transactional producer: one batch, txn still open. */
        const struct producer_entry *e = test_entry(&back, 0x0102030405060708LL);
        cr_expect_eq(e->epoch, 3);
        cr_expect_eq(e->batch_count, 1);
        cr_expect_eq(e->txn_first_offset, 100);
        cr_expect_eq(e->coordinator_epoch, -1);
        cr_expect_eq(e->last_timestamp_ms, 1700000000123LL);
        h = test_batch(0x0102030405060708LL, 3, 10, 1, 103, TEST_TS, 0);
        cr_expect_eq(test_verdict(&back, &h), KAFKA_INVALID_TXN_STATE);
        h = test_batch(0x0102030405060708LL, 3, 7, 3, 999, TEST_TS, TEST_ATTR_TXN);
        test_expect_duplicate(&back, &h, 100, 102, 1700000000123LL);

        /* The plain producer: only its newest batch survives, as in Kafka. */
        e = test_entry(&back, 42);
        cr_expect_eq(e->batch_count, 1);
        const struct producer_batch *b = test_last_batch(e);
        cr_expect_eq(b->last_seq, 11);
        cr_expect_eq(b->last_offset, 211);
        cr_expect_eq(b->offset_delta, 1);
        cr_expect_eq(b->timestamp_ms, 1700000000205LL);
        h = test_batch(42, 0, 10, 2, 999, TEST_TS, 0);
        test_expect_duplicate(&back, &h, 210, 211, 1700000000205LL);
        h = test_batch(42, 0, 8, 2, 999, TEST_TS, 0);
        cr_expect_eq(test_verdict(&back, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(42, 0, 12, 2, 212, TEST_TS, 0);
        cr_expect_eq(test_verdict(&back, &h), KAFKA_NONE);

        /* The marker-only producer: last offset -1 in the file, no batch back. */
        e = test_entry(&back, 7);
        cr_expect_eq(e->batch_count, 0);
        cr_expect_eq(e->epoch, 5);
        cr_expect_eq(e->coordinator_epoch, 11);
        cr_expect_eq(e->txn_first_offset, -1);
        cr_expect_eq(e->last_timestamp_ms, 1700000000456LL);
        h = test_batch(7, 5, 3, 1, 301, TEST_TS, 0);
        cr_expect_eq(test_verdict(&back, &h), KAFKA_OUT_OF_ORDER_SEQUENCE_NUMBER);
        h = test_batch(7, 4, 0, 1, 301, TEST_TS, 0);
        cr_expect_eq(test_verdict(&back, &h), KAFKA_INVALID_PRODUCER_EPOCH);
        h = test_batch(7, 5, 0, 1, 301, TEST_TS, 0);
        cr_expect_eq(test_verdict(&back, &h), KAFKA_NONE);

        /* And once more: decode(encode(decoded)) is stable. */
        uint8_t again[10 + 3 * 46];
        producer_state_snapshot_encode(&back, again);
        struct producer_state third;
        producer_state_init(&third);
        cr_assert_eq(producer_state_snapshot_decode(&third, again, len, 0, 0), 0);
        test_expect_same_snapshot(&back, &third);
        producer_state_free(&third);
        producer_state_free(&back);
        producer_state_free(&s);
}

Test(producer_state, snapshot_decode_empty)
{
        uint8_t buf[10] = { 0 };
        test_seal(buf, 10, 1);
        struct producer_state s;
        test_small_state(&s);
        cr_assert_eq(producer_state_snapshot_decode(&s, buf, 10, 0, 0), 0);
        cr_expect_eq(producer_state_count(&s), 0);
        cr_expect_null(producer_state_find(&s, 42));
        producer_state_free(&s);
}

/* Decoding must fail with -EBADMSG and leave a known state as it was. */
static void test_expect_refused(const uint8_t *buf, size_t len, const char *what)
{
        struct producer_state s;
        test_small_state(&s);
        size_t before_len = producer_state_snapshot_bytes(&s);
        uint8_t before[10 + 3 * 46], after[10 + 3 * 46];
        producer_state_snapshot_encode(&s, before);
        int rc = producer_state_snapshot_decode(&s, buf, len, 0, 0);
        cr_expect_eq(rc, -EBADMSG, "%s: decode answered %d", what, rc);
        cr_expect_eq(producer_state_count(&s), 3, "%s: state changed", what);
        cr_expect_eq(producer_state_snapshot_bytes(&s), before_len);
        producer_state_snapshot_encode(&s, after);
        cr_expect_eq(memcmp(before, after, before_len), 0, "%s: state changed", what);
        producer_state_free(&s);
}

Test(producer_state, snapshot_decode_refuses_damage)
{
        struct producer_state s;
        test_small_state(&s);
        size_t len = producer_state_snapshot_bytes(&s);
        uint8_t good[10 + 3 * 46], bad[10 + 3 * 46 + 46];
        producer_state_snapshot_encode(&s, good);
        producer_state_free(&s);
        char what[64];

        /* Every single flipped bit: version, CRC, count or an entry. */
        for (size_t i = 0; i < len * 8; i++) {
                memcpy(bad, good, len);
                bad[i / 8] ^= (uint8_t)(1u << (i % 8));
                snprintf(what, sizeof(what), "bit %zu flipped", i);
                test_expect_refused(bad, len, what);
        }
        /* Every truncation (testLoadFromTruncatedSnapshotFile, ...Empty...). */
        for (size_t n = 0; n < len; n++) {
                snprintf(what, sizeof(what), "cut to %zu bytes", n);
                test_expect_refused(good, n, what);
        }
        /* Versions other than 1, with a CRC that matches (it does not cover
         * the version). */
        static const int16_t versions[] = { 0, 2, -1, 0x0101 };
        for (size_t v = 0; v < sizeof(versions) / sizeof(versions[0]); v++) {
                memcpy(bad, good, len);
                test_seal(bad, len, versions[v]);
                snprintf(what, sizeof(what), "version %d", versions[v]);
                test_expect_refused(bad, len, what);
        }
        /* A count that disagrees with the length, CRC made to match. */
        memcpy(bad, good, len);
        test_put(bad + 6, 4, 4);
        test_seal(bad, len, 1);
        test_expect_refused(bad, len, "count 4 with 3 entries");
        memcpy(bad, good, len);
        test_put(bad + 6, 2, 4);
        test_seal(bad, len, 1);
        test_expect_refused(bad, len, "count 2 with 3 entries");
        memcpy(bad, good, len);
        test_put(bad + 6, 0xFFFFFFFFu, 4);
        test_seal(bad, len, 1);
        test_expect_refused(bad, len, "count -1");
        /* Cut at an entry boundary, CRC made to match the shorter file. */
        memcpy(bad, good, len);
        test_seal(bad, len - 46, 1);
        test_expect_refused(bad, len - 46, "last entry cut off");
        /* A negative producer id (CRC made to match). */
        memcpy(bad, good, len);
        test_put(bad + 10, (uint64_t)-3LL, 8);
        test_seal(bad, len, 1);
        test_expect_refused(bad, len, "producer id -3");
}

Test(producer_state, snapshot_decode_drops_expired_producers)
{
        uint8_t buf[10 + 4 * 46];
        uint8_t *p = test_put(buf + 6, 4, 4);
        /* 1: idle since 1000; 2: idle since 1000 but in a transaction;
         * 3: recent; 4: marker only, idle since 1000. */
        p = test_put_entry(p, 1, 0, 4, 50, 4, 1000, -1, -1);
        p = test_put_entry(p, 2, 0, 4, 60, 4, 1000, -1, 55);
        p = test_put_entry(p, 3, 0, 4, 70, 4, 1600, -1, -1);
        p = test_put_entry(p, 4, 2, -1, -1, 0, 1000, 3, -1);
        test_seal(buf, sizeof(buf), 1);

        struct producer_state s;
        producer_state_init(&s);
        /* No expiration: all four. */
        cr_assert_eq(producer_state_snapshot_decode(&s, buf, sizeof(buf), 1000000, 0), 0);
        cr_expect_eq(producer_state_count(&s), 4);
        /* now - ts >= expiration drops; 1499 - 1000 < 500 keeps. */
        cr_assert_eq(producer_state_snapshot_decode(&s, buf, sizeof(buf), 1499, 500), 0);
        cr_expect_eq(producer_state_count(&s), 4);
        cr_assert_eq(producer_state_snapshot_decode(&s, buf, sizeof(buf), 1500, 500), 0);
        cr_expect_eq(producer_state_count(&s), 2);
        cr_expect_null(producer_state_find(&s, 1));
        cr_expect_null(producer_state_find(&s, 4));
        const struct producer_entry *e = test_entry(&s, 2);
        cr_expect_eq(e->txn_first_offset, 55);
        cr_expect_eq(test_last_batch(e)->last_offset, 60);
        cr_expect_eq(producer_batch_first_seq(test_last_batch(e)), 0);
        e = test_entry(&s, 3);
        cr_expect_eq(test_last_batch(e)->last_offset, 70);
        cr_expect_eq(producer_state_first_open_txn_offset(&s), 55);
        uint32_t cursor = 0, seen = 0;
        while (producer_state_next(&s, &cursor))
                seen++;
        cr_expect_eq(seen, 2);
        producer_state_free(&s);
}

Test(producer_state, snapshot_round_trip_many)
{
        struct producer_state s, back;
        producer_state_init(&s);
        for (int64_t pid = 0; pid < 3000; pid++) {
                struct record_batch_header h = test_batch(pid * 7919, (int16_t)(pid % 300), (int32_t)pid, 1 + pid % 4,
                                                          pid * 10, TEST_TS + pid, pid % 5 ? 0 : TEST_ATTR_TXN);
                test_append(&s, &h);
                if (pid % 11 == 0)
                        cr_assert_geq(test_marker(&s, pid * 7919, (int16_t)(pid % 300 + 1), pid * 10 + 5,
                                                  TEST_TS + pid, TEST_ABORT, (int32_t)pid, NULL),
                                      0);
        }
        size_t len = producer_state_snapshot_bytes(&s);
        cr_assert_eq(len, 10 + 3000u * 46);
        uint8_t *buf = malloc(len);
        cr_assert_not_null(buf);
        producer_state_snapshot_encode(&s, buf);
        producer_state_init(&back);
        cr_assert_eq(producer_state_snapshot_decode(&back, buf, len, 0, 0), 0);
        test_expect_same_snapshot(&s, &back);
        cr_expect_eq(producer_state_first_open_txn_offset(&back), producer_state_first_open_txn_offset(&s));
        free(buf);
        producer_state_free(&back);
        producer_state_free(&s);
}

/* ---- snapshot files ---- */

static char tmp_root[64];
static int dir_fd = -1;

static void test_setup(void)
{
        test_util_tmpdir_make(tmp_root, sizeof(tmp_root), "producer-state");
        dir_fd = test_util_dir_open(tmp_root);
}

static void test_teardown(void)
{
        test_util_fd_close(&dir_fd);
        test_util_tmpdir_remove(tmp_root);
}

TestSuite(producer_snapshot_file, .init = test_setup, .fini = test_teardown);

static bool test_exists(const char *name)
{
        struct stat st;
        return fstatat(dir_fd, name, &st, 0) == 0;
}

static bool test_snapshot_exists(int64_t offset)
{
        char name[64];
        producer_snapshot_file_name(name, sizeof(name), offset);
        return test_exists(name);
}

static void test_touch(const char *name, const void *bytes, size_t len)
{
        int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
        cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
        close(fd);
}

/* The snapshot file at offset; returns its length. */
static size_t test_read_snapshot(int64_t offset, uint8_t *buf, size_t cap)
{
        char name[64];
        producer_snapshot_file_name(name, sizeof(name), offset);
        int fd = openat(dir_fd, name, O_RDONLY);
        cr_assert_geq(fd, 0, "%s: %s", name, strerror(errno));
        ssize_t n = read(fd, buf, cap);
        close(fd);
        cr_assert_geq(n, 0);
        return (size_t)n;
}

static void test_expect_list(const int64_t *want, int want_count)
{
        int64_t *got = (int64_t *)1;
        int n = producer_snapshot_list(dir_fd, &got);
        cr_assert_eq(n, want_count, "%d snapshots listed, want %d", n, want_count);
        if (want_count == 0)
                cr_expect_null(got);
        for (int i = 0; i < n; i++)
                cr_expect_eq(got[i], want[i], "snapshot %d at %lld, want %lld", i, (long long)got[i],
                             (long long)want[i]);
        free(got);
}

/* A state with `producers` plain producers, ids base.., told apart by it. */
static void test_state_of(struct producer_state *s, int64_t base, int producers)
{
        producer_state_init(s);
        for (int i = 0; i < producers; i++) {
                struct record_batch_header h = test_batch(base + i, 1, 0, 1, base + i, TEST_TS, 0);
                test_append(s, &h);
        }
}

Test(producer_snapshot_file, file_name_is_twenty_digits)
{
        char name[64];
        producer_snapshot_file_name(name, sizeof(name), 42);
        cr_expect_str_eq(name, "00000000000000000042.snapshot");
        producer_snapshot_file_name(name, sizeof(name), 0);
        cr_expect_str_eq(name, "00000000000000000000.snapshot");
        producer_snapshot_file_name(name, sizeof(name), 9223372036854775807LL);
        cr_expect_str_eq(name, "09223372036854775807.snapshot");
}

Test(producer_snapshot_file, write_then_list_in_offset_order)
{
        struct producer_state s;
        test_small_state(&s);
        int64_t none[1] = { 0 };
        test_expect_list(none, 0);

        cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, 100, true), 0);
        cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, 7, false), 0);
        cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, 12345678901LL, true), 0);
        cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, 99, false), 0);
        /* Not snapshots: other files of the log dir, a stray temporary. */
        test_touch("00000000000000000100.log", "x", 1);
        test_touch("00000000000000000100.index", "x", 1);
        test_touch("00000000000000000200.snapshot.tmp", "x", 1);
        test_touch("0000000000000000020x.snapshot", "x", 1);
        test_touch("leader-epoch-checkpoint", "x", 1);
        const int64_t want[] = { 7, 99, 100, 12345678901LL };
        test_expect_list(want, 4);
        cr_expect(test_exists("00000000000000000100.snapshot"));
        cr_expect_not(test_exists("00000000000000000100.snapshot.tmp"), "temporary left behind");
        cr_expect_not(test_exists("00000000000000000007.snapshot.tmp"), "temporary left behind");

        /* The file holds exactly the encoded bytes, synced or not. */
        size_t len = producer_state_snapshot_bytes(&s);
        uint8_t want_bytes[10 + 3 * 46], got[512];
        producer_state_snapshot_encode(&s, want_bytes);
        cr_assert_eq(test_read_snapshot(100, got, sizeof(got)), len);
        cr_expect_eq(memcmp(got, want_bytes, len), 0);
        cr_assert_eq(test_read_snapshot(7, got, sizeof(got)), len);
        cr_expect_eq(memcmp(got, want_bytes, len), 0);

        /* Writing again at an offset replaces the file whole. */
        struct producer_state small;
        test_state_of(&small, 500, 1);
        cr_assert_eq(producer_state_write_snapshot(&small, dir_fd, 100, false), 0);
        cr_expect_eq(test_read_snapshot(100, got, sizeof(got)), 10 + 46);
        test_expect_list(want, 4);
        producer_state_free(&small);
        producer_state_free(&s);
}

Test(producer_snapshot_file, load_picks_newest_at_or_below_max_offset)
{
        struct producer_state a, b, c, s;
        test_state_of(&a, 1000, 1);
        test_state_of(&b, 2000, 2);
        test_state_of(&c, 3000, 3);
        cr_assert_eq(producer_state_write_snapshot(&a, dir_fd, 50, true), 0);
        cr_assert_eq(producer_state_write_snapshot(&b, dir_fd, 100, false), 0);
        cr_assert_eq(producer_state_write_snapshot(&c, dir_fd, 200, true), 0);

        /* Loading replaces whatever s held. */
        test_state_of(&s, 9000, 4);
        int64_t offset = -99;
        cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 150, 0, 0, &offset), 0);
        cr_expect_eq(offset, 100);
        cr_expect_eq(producer_state_count(&s), 2);
        test_entry(&s, 2000);
        test_entry(&s, 2001);
        cr_expect_null(producer_state_find(&s, 9000));
        /* 200 is above the log's end now: gone; 50 stays. */
        const int64_t left[] = { 50, 100 };
        test_expect_list(left, 2);

        /* max_offset equal to a snapshot's offset takes it. */
        cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 100, 0, 0, &offset), 0);
        cr_expect_eq(offset, 100);
        cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 99, 0, 0, &offset), 0);
        cr_expect_eq(offset, 50);
        cr_expect_eq(producer_state_count(&s), 1);
        test_entry(&s, 1000);
        const int64_t only50[] = { 50 };
        test_expect_list(only50, 1);

        /* Below every snapshot: none usable, all deleted, state empty. */
        cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 49, 0, 0, &offset), 0);
        cr_expect_eq(offset, -1);
        cr_expect_eq(producer_state_count(&s), 0);
        test_expect_list(only50, 0);

        /* And with no snapshot at all. */
        producer_state_free(&a);
        test_state_of(&a, 1000, 1);
        cr_assert_eq(producer_state_load_snapshot(&a, dir_fd, 1000, 0, 0, &offset), 0);
        cr_expect_eq(offset, -1);
        cr_expect_eq(producer_state_count(&a), 0);

        producer_state_free(&a);
        producer_state_free(&b);
        producer_state_free(&c);
        producer_state_free(&s);
}

Test(producer_snapshot_file, load_applies_expiration)
{
        struct producer_state s;
        producer_state_init(&s);
        struct record_batch_header h = test_batch(1, 0, 0, 1, 0, 1000, 0);
        test_append(&s, &h);
        h = test_batch(2, 0, 0, 1, 1, 5000, 0);
        test_append(&s, &h);
        cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, 2, true), 0);
        int64_t offset;
        cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 2, 5999, 1000, &offset), 0);
        cr_expect_eq(offset, 2);
        cr_expect_eq(producer_state_count(&s), 1);
        cr_expect_null(producer_state_find(&s, 1));
        test_entry(&s, 2);
        producer_state_free(&s);
}

/* Damages the snapshot at offset: kind 0 flips a byte, 1 cuts it in half,
 * 2 empties it, 3 writes garbage over the middle. */
static void test_damage(int64_t offset, int kind)
{
        uint8_t buf[4096];
        size_t len = test_read_snapshot(offset, buf, sizeof(buf));
        char name[64];
        producer_snapshot_file_name(name, sizeof(name), offset);
        cr_assert_gt(len, 20);
        if (kind == 0) {
                buf[len - 3] ^= 0x10;
        } else if (kind == 1) {
                len /= 2;
        } else if (kind == 2) {
                len = 0;
        } else {
                memset(buf + 10, 0, 37);
        }
        test_touch(name, buf, len);
}

Test(producer_snapshot_file, corrupt_newest_is_deleted_and_older_loaded)
{
        struct producer_state a, b, s;
        test_state_of(&a, 1000, 1);
        test_state_of(&b, 2000, 2);
        for (int kind = 0; kind < 4; kind++) {
                cr_assert_eq(producer_state_write_snapshot(&a, dir_fd, 50, true), 0);
                cr_assert_eq(producer_state_write_snapshot(&b, dir_fd, 100, true), 0);
                test_damage(100, kind);
                test_state_of(&s, 9000, 4);
                int64_t offset = -99;
                cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 1000, 0, 0, &offset), 0, "damage %d", kind);
                cr_expect_eq(offset, 50, "damage %d", kind);
                cr_expect_eq(producer_state_count(&s), 1, "damage %d", kind);
                test_entry(&s, 1000);
                cr_expect_not(test_snapshot_exists(100), "damaged snapshot kept (damage %d)", kind);
                cr_expect(test_snapshot_exists(50));
                producer_state_free(&s);
        }

        /* Every snapshot damaged: all deleted, empty state, offset -1. */
        cr_assert_eq(producer_state_write_snapshot(&b, dir_fd, 100, true), 0);
        test_damage(50, 0);
        test_damage(100, 3);
        test_state_of(&s, 9000, 4);
        int64_t offset = -99;
        cr_assert_eq(producer_state_load_snapshot(&s, dir_fd, 1000, 0, 0, &offset), 0);
        cr_expect_eq(offset, -1);
        cr_expect_eq(producer_state_count(&s), 0);
        int64_t none[1] = { 0 };
        test_expect_list(none, 0);
        producer_state_free(&s);
        producer_state_free(&a);
        producer_state_free(&b);
}

Test(producer_snapshot_file, delete_below_removes_older_snapshots)
{
        struct producer_state s;
        test_state_of(&s, 1, 1);
        cr_assert_eq(producer_snapshot_delete_below(dir_fd, 100), 0, "nothing to delete");
        static const int64_t offsets[] = { 10, 20, 30, 40 };
        for (int i = 0; i < 4; i++)
                cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, offsets[i], false), 0);
        test_touch("00000000000000000001.log", "x", 1);

        cr_expect_eq(producer_snapshot_delete_below(dir_fd, 10), 0);
        test_expect_list(offsets, 4);
        /* Strictly below: 30 itself stays (Kafka's deleteSnapshotsBefore). */
        cr_expect_eq(producer_snapshot_delete_below(dir_fd, 30), 2);
        test_expect_list(offsets + 2, 2);
        cr_expect_eq(producer_snapshot_delete_below(dir_fd, 31), 1);
        test_expect_list(offsets + 3, 1);
        cr_expect_eq(producer_snapshot_delete_below(dir_fd, 1000), 1);
        test_expect_list(offsets, 0);
        cr_expect(test_exists("00000000000000000001.log"), "other files untouched");
        producer_state_free(&s);
}

/*
 * BUG (producer_state.c, snapshot_offset_of): the overflow guard
 * `v > (INT64_MAX - 9) / 10` is checked before every digit, so any name
 * whose first 19 digits exceed 922337203685477579 is refused: snapshots
 * written at offsets 9223372036854775800 .. INT64_MAX get a file that
 * producer_snapshot_list never returns (so never loaded nor deleted).
 * Kafka parses the name with Long.parseLong and lists them. Offsets that
 * high do not occur in practice; the fix is to test against the digit
 * being added: `v > (INT64_MAX - digit) / 10`. Fails until fixed.
 */
Test(producer_snapshot_file, list_reads_every_name_it_writes_near_int64_max)
{
        struct producer_state s;
        producer_state_init(&s);
        static const int64_t offsets[] = { 9223372036854775799LL, 9223372036854775800LL, INT64_MAX };
        for (int i = 0; i < 3; i++)
                cr_assert_eq(producer_state_write_snapshot(&s, dir_fd, offsets[i], false), 0);
        test_expect_list(offsets, 3);
        producer_state_free(&s);
}
