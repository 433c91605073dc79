/*
 * txn_log.c - what a transaction coordinator keeps in __transaction_state
 * and how it reads it back (Kafka's TransactionLog and
 * loadTransactionMetadata): the key and value records of a transactional
 * id, the batch of several, and the load, where the last record of each id
 * wins, a tombstone removes it, an unknown key version is skipped, and ids
 * in Prepare* resume their markers when the load ends.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../protocol/gen/errors.h"
#include "../protocol/gen/transaction_log_key.h"
#include "../protocol/gen/transaction_log_value.h"
#include "../protocol/record_batch.h"
#include "batch_build.h"
#include "log_replay.h"
#include "txn_internal.h"
#include "version_prefixed.h"

#define TXN_REPLAY_RECORDS_BYTES_MAX (64u << 20)

int txn_encode_key(struct kstr id, struct arena *a, struct kbytes *out)
{
        struct transaction_log_key k;
        transaction_log_key_init(&k);
        k.transactional_id = id;
        struct kwriter w;
        int rc = version_prefixed_begin(a, TXN_LOG_KEY_VERSION, transaction_log_key_size(&k, TXN_LOG_KEY_VERSION),
                                        &w);
        if (rc < 0)
                return rc;
        transaction_log_key_encode(&w, &k, TXN_LOG_KEY_VERSION);
        *out = version_prefixed_end(&w);
        return 0;
}

/* The value record of e's pending transit (Kafka's valueToBytes). */
int txn_encode_value(const struct txn_coordinator *tc, const struct txn_entry *e, struct arena *a,
                     struct kbytes *out)
{
        const struct txn_transit *t = &e->transit;
        struct transaction_log_value v;
        transaction_log_value_init(&v);
        v.producer_id = t->producer_id;
        v.producer_epoch = t->producer_epoch;
        v.transaction_timeout_ms = t->timeout_ms;
        v.transaction_status = (int8_t)t->state;
        v.transaction_last_update_timestamp_ms = t->last_update_ms;
        v.transaction_start_timestamp_ms = t->start_ms;
        if (t->state == TXN_EMPTY) {
                v.transaction_partitions.count = -1;
        } else {
                static const struct txn_pset none;
                const struct txn_pset *cur = t->state == TXN_ONGOING || t->state == TXN_PREPARE_COMMIT ||
                                                             t->state == TXN_PREPARE_ABORT ?
                                                     &e->partitions :
                                                     &none;
                struct txn_topic_partitions *topics;
                int32_t topic_count;
                int rc = txn_pset_export(cur, t->state == TXN_ONGOING ? &t->added : NULL, a, &topics, &topic_count);
                if (rc < 0)
                        return rc;
                v.transaction_partitions.count = topic_count;
                v.transaction_partitions.items = arena_calloc(a, topic_count ? (size_t)topic_count : 1,
                                                              sizeof(*v.transaction_partitions.items));
                if (!v.transaction_partitions.items)
                        return -ENOMEM;
                for (int32_t i = 0; i < topic_count; i++) {
                        struct transaction_log_value_partitions_schema *p = &v.transaction_partitions.items[i];
                        transaction_log_value_partitions_schema_init(p);
                        p->topic = topics[i].topic;
                        p->partition_ids.count = topics[i].partition_count;
                        p->partition_ids.items = (int32_t *)topics[i].partitions;
                }
        }
        int16_t version = tc->cfg.transaction_version >= 1 ? 1 : 0;
        struct kwriter w;
        int rc = version_prefixed_begin(a, version, transaction_log_value_size(&v, version), &w);
        if (rc < 0)
                return rc;
        transaction_log_value_encode(&w, &v, version);
        *out = version_prefixed_end(&w);
        return 0;
}

int txn_record_decode(struct kbytes key, struct kbytes value, struct arena *a, struct kstr *transactional_id_out,
                      struct txn_record_value *value_out)
{
        if (key.len < 2)
                return -EBADMSG;
        struct kreader r;
        kr_init(&r, key.ptr, (size_t)key.len);
        int16_t kv = kr_i16(&r);
        if (kv != TXN_LOG_KEY_VERSION)
                return -EBADMSG;
        struct transaction_log_key k;
        int rc = transaction_log_key_decode(&r, a, kv, &k);
        if (rc < 0)
                return rc;
        if (kstr_is_null(k.transactional_id))
                return -EBADMSG;
        *transactional_id_out = k.transactional_id;
        if (value.len < 0)
                return 1;
        if (value.len < 2)
                return -EBADMSG;
        kr_init(&r, value.ptr, (size_t)value.len);
        int16_t vv = kr_i16(&r);
        if (vv < TRANSACTION_LOG_VALUE_MIN_VERSION || vv > TRANSACTION_LOG_VALUE_MAX_VERSION)
                return -EBADMSG;
        struct transaction_log_value v;
        rc = transaction_log_value_decode(&r, a, vv, &v);
        if (rc < 0)
                return rc;
        if (v.transaction_status < 0 || v.transaction_status >= TXN_STATE_COUNT)
                return -EBADMSG;
        memset(value_out, 0, sizeof(*value_out));
        value_out->producer_id = v.producer_id;
        value_out->producer_epoch = v.producer_epoch;
        value_out->timeout_ms = v.transaction_timeout_ms;
        value_out->state = (enum txn_state)v.transaction_status;
        value_out->last_update_ms = v.transaction_last_update_timestamp_ms;
        value_out->start_ms = v.transaction_start_timestamp_ms;
        int32_t n = v.transaction_partitions.count > 0 ? v.transaction_partitions.count : 0;
        value_out->topic_count = n;
        value_out->topics = arena_calloc(a, n ? (size_t)n : 1, sizeof(*value_out->topics));
        if (!value_out->topics)
                return -ENOMEM;
        for (int32_t i = 0; i < n; i++) {
                const struct transaction_log_value_partitions_schema *p = &v.transaction_partitions.items[i];
                if (kstr_is_null(p->topic))
                        return -EBADMSG;
                value_out->topics[i].topic = p->topic;
                value_out->topics[i].partition_count = p->partition_ids.count > 0 ? p->partition_ids.count : 0;
                value_out->topics[i].partitions = p->partition_ids.items;
        }
        return 0;
}

int txn_batch_build(const struct txn_append *appends, uint32_t count, int64_t now_ms, struct arena *a,
                    uint8_t **batch_out, size_t *len_out)
{
        *batch_out = NULL;
        *len_out = 0;
        if (count == 0)
                return -EINVAL;
        struct record_spec *records = arena_calloc(a, count, sizeof(*records));
        if (!records)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++) {
                records[i].key = appends[i].key;
                records[i].value = appends[i].value;
                records[i].timestamp_ms = now_ms;
        }
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, records, count);
        return batch_build(&spec, a, batch_out, len_out);
}

/* ---- load ---- */

void txn_load_begin(struct txn_coordinator *tc, int32_t coordinator_epoch)
{
        txn_clear_all(tc);
        tc->coordinator_epoch = coordinator_epoch;
        tc->phase = PHASE_LOADING;
}

void txn_unload(struct txn_coordinator *tc)
{
        txn_clear_all(tc);
        tc->phase = PHASE_UNLOADED;
}

int txn_replay_record(struct txn_coordinator *tc, struct kbytes key, struct kbytes value)
{
        assert(tc->phase == PHASE_LOADING);
        if (key.len >= 2 && (int16_t)((uint16_t)key.ptr[0] << 8 | key.ptr[1]) != TXN_LOG_KEY_VERSION)
                return 1;               /* Kafka's UnknownKey: skipped */
        struct arena scratch;
        arena_init(&scratch, (size_t)TXN_REPLAY_RECORDS_BYTES_MAX);
        struct kstr id;
        struct txn_record_value v;
        int rc = txn_record_decode(key, value, &scratch, &id, &v);
        if (rc < 0)
                goto out;
        if (id.len <= 0) {
                rc = -EBADMSG;
                goto out;
        }
        struct txn_entry *e = txn_entry_find(tc, id);
        if (rc == 1) {
                if (e)
                        txn_entry_destroy(tc, e);
                rc = 0;
                goto out;
        }
        if (!e) {
                e = txn_entry_create(tc, id);
                if (!e) {
                        rc = -ENOMEM;
                        goto out;
                }
        }
        /* The record replaces everything (Kafka puts a new metadata object). */
        txn_pset_clear(&e->partitions);
        e->state = v.state;
        e->producer_id = v.producer_id;
        e->previous_producer_id = TXN_NO_PRODUCER_ID;
        e->producer_epoch = v.producer_epoch;
        e->last_producer_epoch = TXN_NO_PRODUCER_EPOCH;
        e->timeout_ms = v.timeout_ms;
        e->start_ms = v.start_ms;
        e->last_update_ms = v.last_update_ms;
        e->has_failed_epoch_fence = false;
        if (v.state != TXN_EMPTY) {
                for (int32_t i = 0; i < v.topic_count && rc == 0; i++)
                        for (int32_t j = 0; j < v.topics[i].partition_count && rc == 0; j++)
                                rc = txn_pset_add(&e->partitions, v.topics[i].topic, v.topics[i].partitions[j]);
        }
out:
        arena_free(&scratch);
        return rc;
}

int txn_replay_batch(struct txn_coordinator *tc, const uint8_t *batch, size_t len, int64_t from_offset,
                     struct arena *scratch)
{
        struct record_batch_header h;
        if (record_batch_frame(batch, len, &h) != RECORD_BATCH_FRAME_OK || record_batch_size_bytes(&h) != len)
                return -EBADMSG;
        if (record_batch_is_control(&h) || record_batch_last_offset(&h) < from_offset)
                return 0;
        struct record_iter it;
        int rc = log_replay_open_records(batch, len, &h, TXN_REPLAY_RECORDS_BYTES_MAX, scratch, &it);
        if (rc < 0)
                return rc;
        struct record_view rec;
        while (record_iter_next(&it, &rec)) {
                if (rec.offset < from_offset)
                        continue;
                if (rec.key.len < 0)
                        return -EBADMSG;        /* Kafka: the key must not be null */
                rc = txn_replay_record(tc, rec.key, rec.value);
                if (rc < 0)
                        return rc;
        }
        return it.error_code == 0 ? 0 : -EBADMSG;
}

void txn_load_end(struct txn_coordinator *tc, int64_t now_ms, struct arena *a, struct txn_output *out)
{
        assert(tc->phase == PHASE_LOADING);
        txn_out_reset(out);
        tc->phase = PHASE_LOADED;
        for (struct txn_entry *e = tc->head; e; e = e->next)
                if (e->state == TXN_PREPARE_COMMIT || e->state == TXN_PREPARE_ABORT)
                        txn_start_markers(tc, e, now_ms, a, out);
}
