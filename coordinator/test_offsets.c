/*
 * test_offsets.c - committed offsets: the __consumer_offsets record format
 * byte for byte (keys, values of every version, tombstones, GroupMetadata),
 * the store (put, replace, delete, listing), expiry by Kafka's rules, and
 * replay: batches built here and a real partition log rebuild the same
 * store, tombstones included; transactional offsets (TxnOffsetCommit)
 * staged per producer and committed or dropped by their markers, live and
 * in replay.
 *
 * The expected bytes are written out by hand from the schemas in
 * kafka-protocol/records/ and Kafka's serde (an int16 version in front of
 * each key and value), not produced by the code under test.
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/offsets.h"
#include "log/partition.h"
#include "protocol/compress.h"
#include "protocol/gen/group_metadata_key.h"
#include "protocol/gen/group_metadata_value.h"
#include "protocol/record_batch.h"

/* ---- helpers ---- */

static struct arena test_arena;

static void arena_setup(void)
{
        arena_init(&test_arena, 64u << 20);
}

static void arena_teardown(void)
{
        arena_free(&test_arena);
}

TestSuite(records, .init = arena_setup, .fini = arena_teardown);
TestSuite(store, .init = arena_setup, .fini = arena_teardown);
TestSuite(expiry, .init = arena_setup, .fini = arena_teardown);
TestSuite(replay, .init = arena_setup, .fini = arena_teardown);

/* Appends big-endian integers and int16-length strings to a buffer. */
struct bytes {
        uint8_t b[512];
        size_t n;
};

static void put_be(struct bytes *x, uint64_t v, int width)
{
        for (int i = width - 1; i >= 0; i--)
                x->b[x->n++] = (uint8_t)(v >> (8 * i));
}

static void put_str16(struct bytes *x, const char *s)
{
        put_be(x, strlen(s), 2);
        memcpy(x->b + x->n, s, strlen(s));
        x->n += strlen(s);
}

static void assert_bytes(struct kbytes got, const struct bytes *want)
{
        cr_assert_eq((size_t)got.len, want->n, "length %d, want %zu", got.len, want->n);
        cr_assert_eq(memcmp(got.ptr, want->b, want->n), 0, "bytes differ");
}

static struct offsets_write commit_of(const char *group, const char *topic, int32_t partition, int64_t offset)
{
        struct offsets_write w;
        memset(&w, 0, sizeof(w));
        w.group = KSTR(group);
        w.topic = KSTR(topic);
        w.partition = partition;
        w.value.offset = offset;
        w.value.leader_epoch = OFFSETS_NO_LEADER_EPOCH;
        w.value.metadata = KSTR("");
        w.value.commit_timestamp_ms = 1000;
        w.value.expire_timestamp_ms = OFFSETS_NO_TIMESTAMP;
        return w;
}

static struct offsets_write tombstone_of(const char *group, const char *topic, int32_t partition)
{
        struct offsets_write w = commit_of(group, topic, partition, 0);
        w.is_tombstone = true;
        return w;
}

static struct kbytes kb(const struct bytes *x)
{
        return (struct kbytes){ x->b, (int32_t)x->n };
}

/* ---- record format ---- */

Test(records, commit_key_is_type_1_then_group_topic_partition)
{
        struct offsets_write w = commit_of("grp", "orders", 7, 42);
        struct kbytes key, value;
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &key, &value), 0);
        struct bytes want = { .n = 0 };
        put_be(&want, 1, 2);
        put_str16(&want, "grp");
        put_str16(&want, "orders");
        put_be(&want, 7, 4);
        assert_bytes(key, &want);
}

Test(records, commit_value_is_v3_without_expire)
{
        struct offsets_write w = commit_of("g", "t", 0, 0x0102030405060708LL);
        w.value.leader_epoch = 9;
        w.value.metadata = KSTR("meta");
        w.value.commit_timestamp_ms = 1700000000123LL;
        struct kbytes key, value;
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &key, &value), 0);
        struct bytes want = { .n = 0 };
        put_be(&want, 3, 2);                    /* value version */
        put_be(&want, 0x0102030405060708ULL, 8); /* offset */
        put_be(&want, 9, 4);                    /* leaderEpoch (v3+) */
        put_str16(&want, "meta");               /* metadata */
        put_be(&want, 1700000000123ULL, 8);     /* commitTimestamp */
        assert_bytes(value, &want);
}

Test(records, commit_value_with_expire_is_v1)
{
        struct offsets_write w = commit_of("g", "t", 0, 5);
        w.value.leader_epoch = 3;               /* v1 has no leader epoch: dropped, as in Kafka */
        w.value.commit_timestamp_ms = 1000;
        w.value.expire_timestamp_ms = 61000;
        struct kbytes key, value;
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &key, &value), 0);
        struct bytes want = { .n = 0 };
        put_be(&want, 1, 2);
        put_be(&want, 5, 8);
        put_str16(&want, "");
        put_be(&want, 1000, 8);
        put_be(&want, 61000, 8);                /* expireTimestamp (v1 only) */
        assert_bytes(value, &want);
}

Test(records, null_metadata_is_written_empty)
{
        struct offsets_write w = commit_of("g", "t", 0, 5);
        w.value.metadata = KSTR_NULL;
        struct kbytes key, value;
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &key, &value), 0);
        cr_assert_eq(value.len, 2 + 8 + 4 + 2 + 8);
        cr_assert_eq(value.ptr[14], 0);
        cr_assert_eq(value.ptr[15], 0);
}

Test(records, tombstone_has_null_value)
{
        struct offsets_write w = tombstone_of("g", "t", 1);
        struct kbytes key, value;
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &key, &value), 0);
        cr_assert_eq(value.len, -1);
        cr_assert_eq(key.len, 2 + 3 + 3 + 4);
}

Test(records, decodes_every_value_version)
{
        struct bytes key = { .n = 0 };
        put_be(&key, 0, 2);                     /* type 0: the pre-0.11 key, same layout */
        put_str16(&key, "g");
        put_str16(&key, "t");
        put_be(&key, 2, 4);

        struct offsets_record r;
        /* v0 and v2: offset, metadata, commitTimestamp */
        for (int version = 0; version <= 2; version += 2) {
                struct bytes v = { .n = 0 };
                put_be(&v, (uint64_t)version, 2);
                put_be(&v, 77, 8);
                put_str16(&v, "md");
                put_be(&v, 123, 8);
                cr_assert_eq(offsets_record_decode(kb(&key), kb(&v), &r), 0);
                cr_assert_eq(r.kind, OFFSETS_RECORD_COMMIT);
                cr_assert_eq(r.record_type, 0);
                cr_assert(kstr_eq_cstr(r.write.group, "g") && kstr_eq_cstr(r.write.topic, "t"));
                cr_assert_eq(r.write.partition, 2);
                cr_assert_eq(r.write.value.offset, 77);
                cr_assert(kstr_eq_cstr(r.write.value.metadata, "md"));
                cr_assert_eq(r.write.value.commit_timestamp_ms, 123);
                cr_assert_eq(r.write.value.expire_timestamp_ms, -1);
                cr_assert_eq(r.write.value.leader_epoch, -1);
        }
        /* v1: + expireTimestamp */
        struct bytes v1 = { .n = 0 };
        put_be(&v1, 1, 2);
        put_be(&v1, 77, 8);
        put_str16(&v1, "");
        put_be(&v1, 123, 8);
        put_be(&v1, 456, 8);
        cr_assert_eq(offsets_record_decode(kb(&key), kb(&v1), &r), 0);
        cr_assert_eq(r.write.value.expire_timestamp_ms, 456);

        /* v4: flexible, compact string, empty tagged fields */
        struct bytes v4 = { .n = 0 };
        put_be(&v4, 4, 2);
        put_be(&v4, 78, 8);
        put_be(&v4, 11, 4);
        put_be(&v4, 3, 1);                      /* compact length + 1 */
        memcpy(v4.b + v4.n, "ab", 2);
        v4.n += 2;
        put_be(&v4, 124, 8);
        put_be(&v4, 0, 1);                      /* no tagged fields */
        cr_assert_eq(offsets_record_decode(kb(&key), kb(&v4), &r), 0);
        cr_assert_eq(r.write.value.offset, 78);
        cr_assert_eq(r.write.value.leader_epoch, 11);
        cr_assert(kstr_eq_cstr(r.write.value.metadata, "ab"));
        cr_assert_eq(r.write.value.commit_timestamp_ms, 124);

        /* v5 does not exist */
        v4.b[1] = 5;
        cr_assert_eq(offsets_record_decode(kb(&key), kb(&v4), &r), -EBADMSG);
}

Test(records, round_trips_what_it_writes)
{
        struct offsets_write w = commit_of("group-1", "topic.a", 12, 99);
        w.value.leader_epoch = 4;
        w.value.metadata = KSTR("x");
        struct kbytes key, value;
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &key, &value), 0);
        struct offsets_record r;
        cr_assert_eq(offsets_record_decode(key, value, &r), 0);
        cr_assert_eq(r.kind, OFFSETS_RECORD_COMMIT);
        cr_assert_eq(r.record_type, 1);
        cr_assert(kstr_eq_cstr(r.write.group, "group-1"));
        cr_assert(kstr_eq_cstr(r.write.topic, "topic.a"));
        cr_assert_eq(r.write.partition, 12);
        cr_assert_eq(r.write.value.offset, 99);
        cr_assert_eq(r.write.value.leader_epoch, 4);

        struct offsets_write t = tombstone_of("group-1", "topic.a", 12);
        cr_assert_eq(offsets_record_encode(&t, &test_arena, &key, &value), 0);
        cr_assert_eq(offsets_record_decode(key, value, &r), 0);
        cr_assert_eq(r.kind, OFFSETS_RECORD_TOMBSTONE);
        cr_assert(r.write.is_tombstone);
}

Test(records, refuses_malformed_keys)
{
        struct offsets_record r;
        struct bytes key = { .n = 0 };
        put_be(&key, 1, 2);
        put_str16(&key, "g");
        put_str16(&key, "t");
        put_be(&key, 2, 4);
        key.n--;                                /* truncated partition */
        cr_assert_eq(offsets_record_decode(kb(&key), KBYTES_NULL, &r), -EBADMSG);
        key.n++;
        key.b[key.n++] = 0;                     /* a trailing byte */
        cr_assert_eq(offsets_record_decode(kb(&key), KBYTES_NULL, &r), -EBADMSG);
        struct bytes tiny = { .b = { 0 }, .n = 1 };
        cr_assert_eq(offsets_record_decode(kb(&tiny), KBYTES_NULL, &r), -EBADMSG);
}

Test(records, group_metadata_records_are_other)
{
        struct bytes key = { .n = 0 };
        put_be(&key, 2, 2);
        put_str16(&key, "grp");
        struct offsets_record r;
        cr_assert_eq(offsets_record_decode(kb(&key), KBYTES_NULL, &r), 0);
        cr_assert_eq(r.kind, OFFSETS_RECORD_OTHER);
        cr_assert_eq(r.record_type, 2);
}

/* The generated GroupMetadata codecs against Kafka's v3 layout. */
Test(records, group_metadata_key_and_value_v3_byte_for_byte)
{
        struct bytes want_key = { .n = 0 };
        put_str16(&want_key, "grp");
        struct group_metadata_key k;
        group_metadata_key_init(&k);
        k.group = KSTR("grp");
        uint8_t buf[256];
        struct kwriter w;
        cr_assert_eq(group_metadata_key_size(&k, 2), (int64_t)want_key.n);
        kw_init(&w, buf, sizeof(buf));
        group_metadata_key_encode(&w, &k, 2);
        cr_assert_eq(memcmp(buf, want_key.b, want_key.n), 0);

        struct bytes want = { .n = 0 };
        put_str16(&want, "consumer");           /* protocolType */
        put_be(&want, 5, 4);                    /* generation */
        put_str16(&want, "range");              /* protocol */
        put_str16(&want, "m-1");                /* leader */
        put_be(&want, 1700000000000ULL, 8);     /* currentStateTimestamp (v2+) */
        put_be(&want, 1, 4);                    /* members */
        put_str16(&want, "m-1");                /* memberId */
        put_be(&want, 0xffff, 2);               /* groupInstanceId null (v3+) */
        put_str16(&want, "cli");                /* clientId */
        put_str16(&want, "/1.2.3.4");           /* clientHost */
        put_be(&want, 300000, 4);               /* rebalanceTimeout (v1+) */
        put_be(&want, 45000, 4);                /* sessionTimeout */
        put_be(&want, 2, 4);                    /* subscription */
        want.b[want.n++] = 0xAA;
        want.b[want.n++] = 0xBB;
        put_be(&want, 0, 4);                    /* assignment */

        struct group_metadata_value v;
        struct kreader r;
        kr_init(&r, want.b, want.n);
        cr_assert_eq(group_metadata_value_decode(&r, &test_arena, 3, &v), 0);
        cr_assert_eq(kr_remaining(&r), 0);
        cr_assert(kstr_eq_cstr(v.protocol_type, "consumer"));
        cr_assert_eq(v.generation, 5);
        cr_assert(kstr_eq_cstr(v.leader, "m-1"));
        cr_assert_eq(v.current_state_timestamp, 1700000000000LL);
        cr_assert_eq(v.members.count, 1);
        cr_assert(kstr_is_null(v.members.items[0].group_instance_id));
        cr_assert_eq(v.members.items[0].rebalance_timeout, 300000);
        cr_assert_eq(v.members.items[0].subscription.len, 2);
        cr_assert_eq(group_metadata_value_size(&v, 3), (int64_t)want.n);
        kw_init(&w, buf, sizeof(buf));
        group_metadata_value_encode(&w, &v, 3);
        cr_assert_eq(memcmp(buf, want.b, want.n), 0);
}

Test(records, batch_is_one_uncompressed_batch_of_every_write)
{
        struct offsets_write ws[3] = {
                commit_of("g", "t", 0, 10),
                commit_of("g", "t", 1, 11),
                tombstone_of("g", "u", 0),
        };
        uint8_t *batch;
        size_t len;
        cr_assert_eq(offsets_batch_build(ws, 3, 5555, &test_arena, &batch, &len), 0);
        struct record_batch_check check;
        struct record_batch_policy policy = { .is_from_client = true, .is_compacted = true };
        cr_assert_eq(record_batch_validate(batch, len, &policy, &check), 0, "%s", check.reason);
        cr_assert_eq(check.header.record_count, 3);
        cr_assert_eq(check.header.producer_id, -1);
        cr_assert_eq(check.header.base_timestamp_ms, 5555);
        cr_assert_eq(record_batch_codec(&check.header), 0);
        struct record_iter it;
        struct record_view rec;
        cr_assert_eq(record_iter_init(&it, batch, len), 0);
        int n = 0;
        while (record_iter_next(&it, &rec)) {
                struct offsets_record r;
                cr_assert_eq(offsets_record_decode(rec.key, rec.value, &r), 0);
                cr_assert_eq(r.write.partition, ws[n].partition);
                cr_assert_eq(r.write.is_tombstone, ws[n].is_tombstone);
                n++;
        }
        cr_assert_eq(n, 3);
        cr_assert_eq(offsets_batch_build(ws, 0, 1, &test_arena, &batch, &len), -EINVAL);
}

Test(records, metadata_length_counts_utf16_units)
{
        cr_assert_eq(offsets_metadata_length(KSTR("abc")), 3);
        cr_assert_eq(offsets_metadata_length(KSTR("\xc3\xa9")), 1);             /* é */
        cr_assert_eq(offsets_metadata_length(KSTR("\xe2\x82\xac")), 1);         /* € */
        cr_assert_eq(offsets_metadata_length(KSTR("\xf0\x9f\x98\x80")), 2);     /* 😀, a surrogate pair */
        cr_assert_eq(offsets_metadata_length(KSTR_NULL), 0);
}

/* ---- store ---- */

Test(store, put_get_replace_delete)
{
        struct offsets_store *s = offsets_store_create();
        cr_assert_not_null(s);
        struct offsets_write w = commit_of("g", "t", 3, 10);
        char meta[] = "hello";
        w.value.metadata = KSTR(meta);
        cr_assert_eq(offsets_store_apply(s, &w), 0);
        memset(meta, 'X', 5);                   /* the store keeps its own copy */
        const struct offsets_value *v = offsets_store_get(s, KSTR("g"), KSTR("t"), 3);
        cr_assert_not_null(v);
        cr_assert_eq(v->offset, 10);
        cr_assert(kstr_eq_cstr(v->metadata, "hello"));
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 4));
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("u"), 3));
        cr_assert_null(offsets_store_get(s, KSTR("h"), KSTR("t"), 3));

        w = commit_of("g", "t", 3, 20);
        cr_assert_eq(offsets_store_apply(s, &w), 0);
        v = offsets_store_get(s, KSTR("g"), KSTR("t"), 3);
        cr_assert_eq(v->offset, 20);
        cr_assert_eq(v->metadata.len, 0);
        cr_assert_eq(offsets_store_count(s), 1);

        struct offsets_write t = tombstone_of("g", "t", 3);
        cr_assert_eq(offsets_store_apply(s, &t), 0);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 3));
        cr_assert_eq(offsets_store_count(s), 0);
        cr_assert_eq(offsets_store_groups(s), 0);
        cr_assert(!offsets_store_has_group(s, KSTR("g")));
        /* deleting what is not there is a no-op */
        cr_assert_eq(offsets_store_apply(s, &t), 0);
        offsets_store_destroy(s);
}

Test(store, many_groups_topics_partitions_and_sorted_listing)
{
        struct offsets_store *s = offsets_store_create();
        char group[32], topic[32];
        /* 200 groups x 5 topics x 7 partitions, partitions in descending order */
        for (int g = 0; g < 200; g++) {
                for (int t = 4; t >= 0; t--) {
                        for (int p = 6; p >= 0; p--) {
                                snprintf(group, sizeof(group), "group-%d", g);
                                snprintf(topic, sizeof(topic), "topic-%d", t);
                                struct offsets_write w = commit_of(group, topic, p, g * 1000 + t * 10 + p);
                                cr_assert_eq(offsets_store_apply(s, &w), 0);
                        }
                }
        }
        cr_assert_eq(offsets_store_count(s), 200 * 5 * 7);
        cr_assert_eq(offsets_store_groups(s), 200);
        cr_assert_eq(offsets_store_group_count(s, KSTR("group-17")), 35);
        const struct offsets_value *v = offsets_store_get(s, KSTR("group-123"), KSTR("topic-3"), 5);
        cr_assert_not_null(v);
        cr_assert_eq(v->offset, 123035);

        struct offsets_item *items;
        uint32_t count;
        cr_assert_eq(offsets_store_list_group(s, KSTR("group-42"), &test_arena, &items, &count), 0);
        cr_assert_eq(count, 35);
        for (uint32_t i = 0; i < count; i++) {
                snprintf(topic, sizeof(topic), "topic-%u", i / 7);
                cr_assert(kstr_eq_cstr(items[i].topic, topic));
                cr_assert_eq(items[i].partition, (int32_t)(i % 7));
                cr_assert_eq(items[i].value.offset, 42000 + (i / 7) * 10 + i % 7);
        }
        cr_assert_eq(offsets_store_list_group(s, KSTR("nobody"), &test_arena, &items, &count), 0);
        cr_assert_eq(count, 0);
        cr_assert_null(items);

        struct offsets_write *ws;
        cr_assert_eq(offsets_store_collect_group(s, KSTR("group-42"), &test_arena, &ws, &count), 0);
        cr_assert_eq(count, 35);
        for (uint32_t i = 0; i < count; i++) {
                cr_assert(ws[i].is_tombstone);
                cr_assert_eq(offsets_store_apply(s, &ws[i]), 0);
        }
        cr_assert(!offsets_store_has_group(s, KSTR("group-42")));
        cr_assert_eq(offsets_store_count(s), 199 * 5 * 7);
        offsets_store_destroy(s);
}

Test(store, writes_in_flight_keep_the_group)
{
        struct offsets_store *s = offsets_store_create();
        cr_assert_eq(offsets_store_begin_write(s, KSTR("g")), 0);
        cr_assert(offsets_store_has_group(s, KSTR("g")));
        cr_assert_eq(offsets_store_group_count(s, KSTR("g")), 0);
        struct offsets_write w = commit_of("g", "t", 0, 1);
        cr_assert_eq(offsets_store_apply(s, &w), 0);
        offsets_store_end_write(s, KSTR("g"));
        cr_assert(offsets_store_has_group(s, KSTR("g")));
        struct offsets_write t = tombstone_of("g", "t", 0);
        cr_assert_eq(offsets_store_apply(s, &t), 0);
        cr_assert(!offsets_store_has_group(s, KSTR("g")));

        cr_assert_eq(offsets_store_begin_write(s, KSTR("h")), 0);
        offsets_store_end_write(s, KSTR("h"));
        cr_assert(!offsets_store_has_group(s, KSTR("h")));
        offsets_store_destroy(s);
}

/* ---- expiry ---- */

#define MINUTE_MS 60000LL

struct fake_groups {
        enum offsets_expiry expiry;
        int64_t base_ms;
        const char *subscribed_topic;
};

static enum offsets_expiry fake_expiry(void *ctx, struct kstr group, int64_t *base_ms)
{
        struct fake_groups *f = ctx;
        if (kstr_eq_cstr(group, "simple"))
                return OFFSETS_EXPIRY_FROM_COMMIT;
        *base_ms = f->base_ms;
        return f->expiry;
}

static bool fake_is_subscribed(void *ctx, struct kstr group, struct kstr topic)
{
        struct fake_groups *f = ctx;
        return !kstr_eq_cstr(group, "simple") && f->subscribed_topic && kstr_eq_cstr(topic, f->subscribed_topic);
}

static uint32_t expire(struct offsets_store *s, int64_t now_ms, struct fake_groups *f, bool apply)
{
        struct offsets_group_ops ops = { fake_expiry, fake_is_subscribed, f };
        struct offsets_write *ws;
        uint32_t n;
        cr_assert_eq(offsets_store_collect_expired(s, now_ms, 10 * MINUTE_MS, f ? &ops : NULL, 1000, &test_arena,
                                                   &ws, &n), 0);
        for (uint32_t i = 0; apply && i < n; i++) {
                cr_assert(ws[i].is_tombstone);
                cr_assert_eq(offsets_store_apply(s, &ws[i]), 0);
        }
        return n;
}

Test(expiry, simple_group_expires_from_each_commit)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write a = commit_of("simple", "t", 0, 1);
        struct offsets_write b = commit_of("simple", "t", 1, 1);
        a.value.commit_timestamp_ms = 0;
        b.value.commit_timestamp_ms = 5 * MINUTE_MS;
        cr_assert_eq(offsets_store_apply(s, &a), 0);
        cr_assert_eq(offsets_store_apply(s, &b), 0);
        cr_assert_eq(expire(s, 10 * MINUTE_MS - 1, NULL, false), 0);
        cr_assert_eq(expire(s, 10 * MINUTE_MS, NULL, true), 1);         /* now - commit >= retention */
        cr_assert_null(offsets_store_get(s, KSTR("simple"), KSTR("t"), 0));
        cr_assert_not_null(offsets_store_get(s, KSTR("simple"), KSTR("t"), 1));
        cr_assert_eq(expire(s, 15 * MINUTE_MS, NULL, true), 1);
        cr_assert_eq(offsets_store_count(s), 0);
        offsets_store_destroy(s);
}

Test(expiry, empty_group_expires_from_when_it_became_empty)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write a = commit_of("g", "t", 0, 1);
        a.value.commit_timestamp_ms = 0;
        cr_assert_eq(offsets_store_apply(s, &a), 0);
        struct fake_groups f = { .expiry = OFFSETS_EXPIRY_FROM_EMPTY, .base_ms = 30 * MINUTE_MS };
        cr_assert_eq(expire(s, 39 * MINUTE_MS, &f, false), 0);
        cr_assert_eq(expire(s, 40 * MINUTE_MS, &f, true), 1);
        /* without a state timestamp, the commit timestamp counts */
        cr_assert_eq(offsets_store_apply(s, &a), 0);
        f.base_ms = -1;
        cr_assert_eq(expire(s, 10 * MINUTE_MS, &f, false), 1);
        offsets_store_destroy(s);
}

Test(expiry, active_groups_and_subscribed_topics_keep_their_offsets)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write a = commit_of("g", "sub", 0, 1);
        struct offsets_write b = commit_of("g", "other", 0, 1);
        a.value.commit_timestamp_ms = 0;
        b.value.commit_timestamp_ms = 0;
        cr_assert_eq(offsets_store_apply(s, &a), 0);
        cr_assert_eq(offsets_store_apply(s, &b), 0);
        struct fake_groups f = { .expiry = OFFSETS_EXPIRY_NEVER };
        cr_assert_eq(expire(s, 1000 * MINUTE_MS, &f, false), 0);
        /* Stable consumer group: only what it does not subscribe to expires */
        f.expiry = OFFSETS_EXPIRY_FROM_COMMIT;
        f.subscribed_topic = "sub";
        cr_assert_eq(expire(s, 1000 * MINUTE_MS, &f, true), 1);
        cr_assert_not_null(offsets_store_get(s, KSTR("g"), KSTR("sub"), 0));
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("other"), 0));
        /* a write in flight holds the whole group */
        f.subscribed_topic = NULL;
        cr_assert_eq(offsets_store_begin_write(s, KSTR("g")), 0);
        cr_assert_eq(expire(s, 1000 * MINUTE_MS, &f, false), 0);
        offsets_store_end_write(s, KSTR("g"));
        cr_assert_eq(expire(s, 1000 * MINUTE_MS, &f, false), 1);
        offsets_store_destroy(s);
}

Test(expiry, explicit_expire_timestamp_wins)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write a = commit_of("g", "t", 0, 1);
        a.value.commit_timestamp_ms = 0;
        a.value.expire_timestamp_ms = 2 * MINUTE_MS;    /* OffsetCommit v2-v4 retention_time_ms */
        cr_assert_eq(offsets_store_apply(s, &a), 0);
        struct fake_groups f = { .expiry = OFFSETS_EXPIRY_FROM_EMPTY, .base_ms = 0 };
        cr_assert_eq(expire(s, 2 * MINUTE_MS - 1, &f, false), 0);
        cr_assert_eq(expire(s, 2 * MINUTE_MS, &f, false), 1);
        offsets_store_destroy(s);
}

Test(expiry, bounded_by_max_count)
{
        struct offsets_store *s = offsets_store_create();
        for (int p = 0; p < 50; p++) {
                struct offsets_write a = commit_of("simple", "t", p, 1);
                a.value.commit_timestamp_ms = 0;
                cr_assert_eq(offsets_store_apply(s, &a), 0);
        }
        struct offsets_write *ws;
        uint32_t n;
        cr_assert_eq(offsets_store_collect_expired(s, 100 * MINUTE_MS, MINUTE_MS, NULL, 20, &test_arena, &ws, &n), 0);
        cr_assert_eq(n, 20);
        offsets_store_destroy(s);
}

/* ---- replay ---- */

/* A batch of writes as the log would hold it, at base_offset. */
static uint8_t *logged_batch(const struct offsets_write *ws, uint32_t count, int64_t base_offset, size_t *len)
{
        uint8_t *batch;
        cr_assert_eq(offsets_batch_build(ws, count, 1234, &test_arena, &batch, len), 0);
        record_batch_assign(batch, *len, base_offset, 0, false, 1234);
        return batch;
}

Test(replay, commits_and_tombstones_rebuild_the_store)
{
        struct offsets_write b1[] = { commit_of("g", "t", 0, 5), commit_of("g", "t", 1, 6), commit_of("h", "t", 0, 7) };
        struct offsets_write b2[] = { commit_of("g", "t", 0, 8), tombstone_of("g", "t", 1) };
        size_t l1, l2;
        uint8_t *p1 = logged_batch(b1, 3, 0, &l1);
        uint8_t *p2 = logged_batch(b2, 2, 3, &l2);

        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        cr_assert_eq(offsets_store_replay_batch(s, p1, l1, 0, &test_arena, NULL, NULL, &st), 0);
        cr_assert_eq(offsets_store_replay_batch(s, p2, l2, 0, &test_arena, NULL, NULL, &st), 0);
        cr_assert_eq(st.commit_count, 4);
        cr_assert_eq(st.tombstone_count, 1);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 8);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 1));
        cr_assert_eq(offsets_store_get(s, KSTR("h"), KSTR("t"), 0)->offset, 7);
        offsets_store_destroy(s);

        /* from_offset: records before it are not replayed again */
        s = offsets_store_create();
        memset(&st, 0, sizeof(st));
        cr_assert_eq(offsets_store_replay_batch(s, p1, l1, 2, &test_arena, NULL, NULL, &st), 0);
        cr_assert_eq(st.commit_count, 1);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 0));
        cr_assert_not_null(offsets_store_get(s, KSTR("h"), KSTR("t"), 0));
        offsets_store_destroy(s);
}

struct hook_seen {
        int count;
        int16_t last_type;
        int64_t last_offset;
};

static void count_hook(void *ctx, int64_t offset, int16_t record_type, struct kbytes key, struct kbytes value)
{
        struct hook_seen *h = ctx;
        (void)key;
        (void)value;
        h->count++;
        h->last_type = record_type;
        h->last_offset = offset;
}

Test(replay, other_records_go_to_the_hook_and_corrupt_ones_are_skipped)
{
        struct bytes gkey = { .n = 0 };
        put_be(&gkey, 2, 2);
        put_str16(&gkey, "g");
        struct bytes bad = { .n = 0 };
        put_be(&bad, 1, 2);
        put_str16(&bad, "g");                   /* no topic, no partition */
        struct kbytes k1, v1;
        struct offsets_write w = commit_of("g", "t", 0, 9);
        cr_assert_eq(offsets_record_encode(&w, &test_arena, &k1, &v1), 0);
        struct record_spec recs[3] = {
                { .key = kb(&gkey), .value = KBYTES_NULL, .timestamp_ms = 1 },
                { .key = kb(&bad), .value = KBYTES_NULL, .timestamp_ms = 1 },
                { .key = k1, .value = v1, .timestamp_ms = 1 },
        };
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, recs, 3);
        spec.base_offset = 10;
        size_t len = record_batch_encoded_size(&spec);
        uint8_t *batch = arena_alloc(&test_arena, len);
        record_batch_encode(&spec, batch, len);

        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        struct hook_seen seen = { 0 };
        cr_assert_eq(offsets_store_replay_batch(s, batch, len, 0, &test_arena, count_hook, &seen, &st), 0);
        cr_assert_eq(seen.count, 1);
        cr_assert_eq(seen.last_type, 2);
        cr_assert_eq(seen.last_offset, 10);
        cr_assert_eq(st.skipped_count, 1);
        cr_assert_eq(st.commit_count, 1);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 9);

        /* a flipped byte fails the CRC: the batch is refused whole */
        batch[len - 3] ^= 0x40;
        cr_assert_eq(offsets_store_replay_batch(s, batch, len, 0, &test_arena, NULL, NULL, &st), -EBADMSG);
        offsets_store_destroy(s);
}

/*
 * A batch Apache Kafka 4.4 wrote to __consumer_offsets-2 for a simple
 * consumer (kafka-python, group "ref-simple") committing t1-0 at 7 with
 * metadata "meta-ref" and t1-1 at 3: OffsetCommitValue v4 with the topicId
 * tagged field (tag 0), which runnel's schema does not have and skips.
 */
static const uint8_t kafka_4_4_batch[] = {
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc9,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x36, 0x13, 0xab, 0x15, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x12, 0x29, 0x97, 0x13, 0x00,
        0x00, 0x01, 0xa2, 0x12, 0x29, 0x97, 0x13, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x02, 0x9c, 0x01, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x0a, 0x72,
        0x65, 0x66, 0x2d, 0x73, 0x69, 0x6d, 0x70, 0x6c, 0x65, 0x00, 0x02, 0x74,
        0x31, 0x00, 0x00, 0x00, 0x00, 0x64, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x07, 0xff, 0xff, 0xff, 0xff, 0x09, 0x6d, 0x65, 0x74,
        0x61, 0x2d, 0x72, 0x65, 0x66, 0x00, 0x00, 0x01, 0xa2, 0x12, 0x29, 0x97,
        0x0d, 0x01, 0x00, 0x10, 0xa6, 0x0e, 0x6d, 0x5f, 0x49, 0x02, 0x46, 0x64,
        0xa1, 0xd8, 0xfa, 0x6e, 0xc2, 0x14, 0x28, 0x0e, 0x00, 0x8c, 0x01, 0x00,
        0x00, 0x02, 0x2c, 0x00, 0x01, 0x00, 0x0a, 0x72, 0x65, 0x66, 0x2d, 0x73,
        0x69, 0x6d, 0x70, 0x6c, 0x65, 0x00, 0x02, 0x74, 0x31, 0x00, 0x00, 0x00,
        0x01, 0x54, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03,
        0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x01, 0xa2, 0x12, 0x29, 0x97,
        0x0d, 0x01, 0x00, 0x10, 0xa6, 0x0e, 0x6d, 0x5f, 0x49, 0x02, 0x46, 0x64,
        0xa1, 0xd8, 0xfa, 0x6e, 0xc2, 0x14, 0x28, 0x0e, 0x00,
};

Test(replay, reads_what_kafka_4_4_writes)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        cr_assert_eq(offsets_store_replay_batch(s, kafka_4_4_batch, sizeof(kafka_4_4_batch), 0, &test_arena, NULL,
                                                NULL, &st), 0);
        cr_assert_eq(st.commit_count, 2);
        cr_assert_eq(st.skipped_count, 0);
        const struct offsets_value *v = offsets_store_get(s, KSTR("ref-simple"), KSTR("t1"), 0);
        cr_assert_not_null(v);
        cr_assert_eq(v->offset, 7);
        cr_assert_eq(v->leader_epoch, -1);
        cr_assert(kstr_eq_cstr(v->metadata, "meta-ref"));
        cr_assert_eq(v->commit_timestamp_ms, 1795601045261LL);
        cr_assert_eq(v->expire_timestamp_ms, -1);
        v = offsets_store_get(s, KSTR("ref-simple"), KSTR("t1"), 1);
        cr_assert_not_null(v);
        cr_assert_eq(v->offset, 3);
        cr_assert_eq(v->metadata.len, 0);
        offsets_store_destroy(s);
}

/* ---- transactional offsets (KIP-98) ---- */

TestSuite(txn, .init = arena_setup, .fini = arena_teardown);

/*
 * A transactional batch of offset commits as Kafka 4.4's coordinator
 * runtime writes one for TxnOffsetCommit: the v2 batch header with the
 * transactional attribute (0x10), the producer's id and epoch, base
 * sequence 0, one record: key type 1 (group "g", topic "t", partition 0),
 * OffsetCommitValue v3 (offset 42, leader epoch -1, metadata "", commit
 * timestamp 1000). Written out by hand.
 */
static uint8_t *kafka_txn_batch(int64_t base_offset, int64_t producer_id, int16_t epoch, int64_t offset,
                                size_t *len_out)
{
        struct bytes key = { .n = 0 };
        put_be(&key, 1, 2);
        put_str16(&key, "g");
        put_str16(&key, "t");
        put_be(&key, 0, 4);
        struct bytes value = { .n = 0 };
        put_be(&value, 3, 2);
        put_be(&value, (uint64_t)offset, 8);
        put_be(&value, 0xffffffff, 4);
        put_str16(&value, "");
        put_be(&value, 1000, 8);
        struct record_spec rec = { .key = kb(&key), .value = kb(&value), .timestamp_ms = 1000 };
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, &rec, 1);
        spec.base_offset = base_offset;
        spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL;
        spec.producer_id = producer_id;
        spec.producer_epoch = epoch;
        spec.base_sequence = 0;
        *len_out = record_batch_encoded_size(&spec);
        uint8_t *batch = arena_alloc(&test_arena, *len_out);
        cr_assert_eq(record_batch_encode(&spec, batch, *len_out), *len_out);
        return batch;
}

/* A transaction marker as Kafka writes it: a control batch (attributes
 * 0x30) of one record, key int16 version 0 + int16 type (0 abort, 1
 * commit), value int16 version 0 + int32 coordinator epoch. */
static uint8_t *kafka_marker(int64_t base_offset, int64_t producer_id, int16_t epoch, bool is_commit,
                             size_t *len_out)
{
        static const uint8_t commit_key[] = { 0, 0, 0, 1 }, abort_key[] = { 0, 0, 0, 0 };
        static const uint8_t value[] = { 0, 0, 0, 0, 0, 5 };
        struct record_spec rec = {
                .key = { is_commit ? commit_key : abort_key, 4 },
                .value = { value, sizeof(value) },
                .timestamp_ms = 2000,
        };
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, &rec, 1);
        spec.base_offset = base_offset;
        spec.attributes = RECORD_BATCH_ATTR_TRANSACTIONAL | RECORD_BATCH_ATTR_CONTROL;
        spec.producer_id = producer_id;
        spec.producer_epoch = epoch;
        spec.base_sequence = -1;
        *len_out = record_batch_encoded_size(&spec);
        uint8_t *batch = arena_alloc(&test_arena, *len_out);
        cr_assert_eq(record_batch_encode(&spec, batch, *len_out), *len_out);
        return batch;
}

static void replay_ok(struct offsets_store *s, const uint8_t *batch, size_t len, struct offsets_replay_stats *st)
{
        cr_assert_eq(offsets_store_replay_batch(s, batch, len, 0, &test_arena, NULL, NULL, st), 0);
}

Test(txn, txn_batch_is_kafkas_transactional_batch)
{
        struct offsets_write w = commit_of("g", "t", 0, 42);
        struct offsets_txn_producer pr = { .producer_id = 7000, .producer_epoch = 3, .base_sequence = 0 };
        uint8_t *ours;
        size_t ours_len;
        cr_assert_eq(offsets_txn_batch_build(&w, 1, 1000, &pr, &test_arena, &ours, &ours_len), 0);
        size_t want_len;
        uint8_t *want = kafka_txn_batch(0, 7000, 3, 42, &want_len);
        cr_assert_eq(ours_len, want_len);
        cr_assert_eq(memcmp(ours, want, want_len), 0, "the batch differs from Kafka's");
        struct record_batch_header h;
        cr_assert_eq(record_batch_parse_header(ours, ours_len, &h), RECORD_BATCH_FRAME_OK);
        cr_assert(record_batch_is_transactional(&h));
        cr_assert_not(record_batch_is_control(&h));
        cr_assert_eq(h.producer_id, 7000);
        cr_assert_eq(h.producer_epoch, 3);
        cr_assert_eq(h.base_sequence, 0);
}

Test(txn, control_record_type_reads_the_marker_key)
{
        const uint8_t commit[] = { 0, 0, 0, 1 }, abort_[] = { 0, 0, 0, 0 }, other[] = { 0, 0, 0, 2 },
                      neg[] = { 0xff, 0xff, 0, 1 };
        cr_assert_eq(offsets_control_record_type((struct kbytes){ commit, 4 }), OFFSETS_CONTROL_COMMIT);
        cr_assert_eq(offsets_control_record_type((struct kbytes){ abort_, 4 }), OFFSETS_CONTROL_ABORT);
        cr_assert_eq(offsets_control_record_type((struct kbytes){ other, 4 }), -EBADMSG);
        cr_assert_eq(offsets_control_record_type((struct kbytes){ neg, 4 }), -EBADMSG);
        cr_assert_eq(offsets_control_record_type((struct kbytes){ commit, 3 }), -EBADMSG);
}

struct groups_seen {
        int count;
        char last[16];
};

static void note_group(void *ctx, struct kstr group)
{
        struct groups_seen *g = ctx;
        g->count++;
        snprintf(g->last, sizeof(g->last), "%.*s", (int)group.len, group.ptr);
}

Test(txn, staged_offsets_are_invisible_until_commit)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write old = commit_of("g", "t", 0, 5);
        old.value.record_offset = 1;
        cr_assert_eq(offsets_store_apply(s, &old), 0);
        struct offsets_write w = commit_of("g", "t", 0, 10);
        w.value.record_offset = 2;
        cr_assert_eq(offsets_store_stage(s, 100, &w), 0);
        struct offsets_write w2 = commit_of("g", "t", 1, 11);
        w2.value.record_offset = 2;
        cr_assert_eq(offsets_store_stage(s, 100, &w2), 0);

        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 5);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 1));
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 0));
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 1));
        cr_assert_not(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 2));
        cr_assert_not(offsets_store_has_pending(s, KSTR("h"), KSTR("t"), 0));
        cr_assert_eq(offsets_store_txn_count(s), 1);
        cr_assert_eq(offsets_store_get_pending(s, 100, KSTR("g"), KSTR("t"), 1)->offset, 11);
        cr_assert_eq(offsets_store_group_count(s, KSTR("g")), 1);

        /* another producer's marker changes nothing */
        struct groups_seen seen = { 0 };
        cr_assert_eq(offsets_store_end_txn(s, 999, true, note_group, &seen), 0);
        cr_assert_eq(seen.count, 0);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 5);

        cr_assert_eq(offsets_store_end_txn(s, 100, true, note_group, &seen), 0);
        cr_assert_eq(seen.count, 1);
        cr_assert_str_eq(seen.last, "g");
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 10);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 1)->offset, 11);
        cr_assert_not(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 0));
        cr_assert_eq(offsets_store_txn_count(s), 0);
        offsets_store_destroy(s);
}

Test(txn, abort_drops_and_pending_alone_keeps_the_group)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write w = commit_of("g", "t", 0, 10);
        cr_assert_eq(offsets_store_stage(s, 100, &w), 0);
        cr_assert(offsets_store_has_group(s, KSTR("g")));
        cr_assert(offsets_store_group_has_pending(s, KSTR("g")));
        cr_assert_eq(offsets_store_group_count(s, KSTR("g")), 0);
        cr_assert_eq(offsets_store_end_txn(s, 100, false, NULL, NULL), 0);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 0));
        cr_assert_not(offsets_store_has_group(s, KSTR("g")));
        cr_assert_eq(offsets_store_groups(s), 0);
        offsets_store_destroy(s);
}

Test(txn, later_plain_commit_wins_over_an_earlier_transactional_one)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write t = commit_of("g", "t", 0, 10);
        t.value.record_offset = 5;
        cr_assert_eq(offsets_store_stage(s, 100, &t), 0);
        struct offsets_write plain = commit_of("g", "t", 0, 20);
        plain.value.record_offset = 6;
        cr_assert_eq(offsets_store_apply(s, &plain), 0);
        cr_assert_eq(offsets_store_end_txn(s, 100, true, NULL, NULL), 0);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 20);
        offsets_store_destroy(s);
}

Test(txn, tombstone_deletes_pending_offsets_of_every_producer)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write a = commit_of("g", "t", 0, 10), b = commit_of("g", "t", 0, 11),
                             c = commit_of("g", "t", 1, 12);
        cr_assert_eq(offsets_store_stage(s, 1, &a), 0);
        cr_assert_eq(offsets_store_stage(s, 2, &b), 0);
        cr_assert_eq(offsets_store_stage(s, 2, &c), 0);
        struct offsets_write dead = tombstone_of("g", "t", 0);
        cr_assert_eq(offsets_store_apply(s, &dead), 0);
        cr_assert_not(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 0));
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 1));
        cr_assert_eq(offsets_store_end_txn(s, 1, true, NULL, NULL), 0);
        cr_assert_eq(offsets_store_end_txn(s, 2, true, NULL, NULL), 0);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 0));
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 1)->offset, 12);
        offsets_store_destroy(s);
}

Test(txn, pending_offsets_do_not_expire_what_they_replace)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_write old = commit_of("g", "t", 0, 5), other = commit_of("g", "t", 1, 6);
        cr_assert_eq(offsets_store_apply(s, &old), 0);
        cr_assert_eq(offsets_store_apply(s, &other), 0);
        struct offsets_write w = commit_of("g", "t", 0, 10);
        cr_assert_eq(offsets_store_stage(s, 100, &w), 0);
        struct offsets_write *ws;
        uint32_t n;
        cr_assert_eq(offsets_store_collect_expired(s, 1000 + 10 * 60000, 60000, NULL, 10, &test_arena, &ws, &n), 0);
        cr_assert_eq(n, 1);
        cr_assert_eq(ws[0].partition, 1);
        offsets_store_destroy(s);
}

Test(txn, replay_commits_aborts_and_leaves_open_transactions_pending)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        size_t len;
        uint8_t *b;
        /* producer 7 commits 42 at offset 0, marker at 1 */
        b = kafka_txn_batch(0, 7, 0, 42, &len);
        replay_ok(s, b, len, &st);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("t"), 0));
        b = kafka_marker(1, 7, 0, true, &len);
        replay_ok(s, b, len, &st);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 42);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->record_offset, 0);
        /* producer 8 sends 50 and aborts */
        b = kafka_txn_batch(2, 8, 0, 50, &len);
        replay_ok(s, b, len, &st);
        b = kafka_marker(3, 8, 0, false, &len);
        replay_ok(s, b, len, &st);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 42);
        /* producer 7, next transaction, 60: no marker yet */
        b = kafka_txn_batch(4, 7, 0, 60, &len);
        replay_ok(s, b, len, &st);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 0)->offset, 42);
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 0));
        cr_assert_eq(offsets_store_get_pending(s, 7, KSTR("g"), KSTR("t"), 0)->offset, 60);
        cr_assert_eq(st.pending_count, 3);
        cr_assert_eq(st.marker_count, 2);
        cr_assert_eq(st.commit_count, 0);
        cr_assert_eq(st.skipped_count, 0);
        /* a marker replayed from past from_offset is not read again */
        b = kafka_marker(3, 7, 0, false, &len);
        cr_assert_eq(offsets_store_replay_batch(s, b, len, 5, &test_arena, NULL, NULL, &st), 0);
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 0));
        offsets_store_destroy(s);
}

Test(txn, markers_of_unknown_type_are_skipped)
{
        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        size_t len;
        uint8_t *b = kafka_txn_batch(0, 7, 0, 42, &len);
        replay_ok(s, b, len, &st);
        b = kafka_marker(1, 7, 0, true, &len);
        /* make the key's type 5 and fix the CRC */
        uint8_t *type = memmem(b + RECORD_BATCH_HEADER_BYTES, len - RECORD_BATCH_HEADER_BYTES,
                               (const uint8_t[]){ 0, 0, 0, 1 }, 4);
        cr_assert_not_null(type);
        type[3] = 5;
        uint32_t crc = record_batch_compute_crc(b, len);
        for (int i = 0; i < 4; i++)
                b[RECORD_BATCH_OFFSET_CRC + i] = (uint8_t)(crc >> (24 - 8 * i));
        replay_ok(s, b, len, &st);
        cr_assert_eq(st.skipped_count, 1);
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("t"), 0));
        offsets_store_destroy(s);
}

Test(replay, compressed_batches_are_read)
{
        struct offsets_write ws[] = { commit_of("g", "t", 0, 5), commit_of("g", "t", 1, 6) };
        size_t len;
        uint8_t *plain = logged_batch(ws, 2, 100, &len);
        uint8_t *z;
        size_t zlen;
        cr_assert_eq(compress_encode(COMPRESS_CODEC_GZIP, -1, plain + RECORD_BATCH_HEADER_BYTES,
                                     len - RECORD_BATCH_HEADER_BYTES, RECORD_BATCH_HEADER_BYTES, &test_arena, &z,
                                     &zlen), 0);
        uint8_t *batch = z - RECORD_BATCH_HEADER_BYTES;
        memcpy(batch, plain, RECORD_BATCH_HEADER_BYTES);
        size_t blen = RECORD_BATCH_HEADER_BYTES + zlen;
        uint32_t batch_length = (uint32_t)(blen - RECORD_BATCH_LOG_OVERHEAD_BYTES);
        for (int i = 0; i < 4; i++)
                batch[RECORD_BATCH_OFFSET_LENGTH + i] = (uint8_t)(batch_length >> (24 - 8 * i));
        batch[RECORD_BATCH_OFFSET_ATTRIBUTES + 1] |= RECORD_BATCH_CODEC_GZIP;
        uint32_t crc = record_batch_compute_crc(batch, blen);
        for (int i = 0; i < 4; i++)
                batch[RECORD_BATCH_OFFSET_CRC + i] = (uint8_t)(crc >> (24 - 8 * i));

        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        cr_assert_eq(offsets_store_replay_batch(s, batch, blen, 0, &test_arena, NULL, NULL, &st), 0);
        cr_assert_eq(st.commit_count, 2);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("t"), 1)->offset, 6);
        offsets_store_destroy(s);
}

/* ---- replay from a partition's log ---- */

static char tmp_root[64];
static int dir_fd = -1;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

static int sync_datasync(void *ctx, int fd, log_io_done_fn done, void *arg)
{
        (void)ctx;
        done(arg, fdatasync(fd) < 0 ? -errno : 0);
        return 0;
}

static int sync_write(void *ctx, int fd, const void *buf, size_t len, uint64_t offset, log_io_done_fn done,
                      void *arg)
{
        (void)ctx;
        ssize_t n = pwrite(fd, buf, len, (off_t)offset);
        done(arg, n < 0 ? -errno : n == (ssize_t)len ? 0 : -EIO);
        return 0;
}

static int64_t sync_now_ms(void *ctx)
{
        (void)ctx;
        return 1234;
}

static const struct log_io_ops sync_ops = { .datasync = sync_datasync, .write = sync_write, .now_ms = sync_now_ms };

static void log_setup(void)
{
        arena_setup();
        strcpy(tmp_root, "/tmp/runnel-offsets-XXXXXX");
        cr_assert_not_null(mkdtemp(tmp_root));
        dir_fd = open(tmp_root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        cr_assert_geq(dir_fd, 0);
}

static void log_teardown(void)
{
        if (dir_fd >= 0)
                close(dir_fd);
        dir_fd = -1;
        nftw(tmp_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        arena_teardown();
}

TestSuite(load, .init = log_setup, .fini = log_teardown);

static struct partition *open_offsets_partition(void)
{
        struct partition_options o;
        memset(&o, 0, sizeof(o));
        topic_config_init_defaults(&o.config);
        char err[256];
        cr_assert_eq(topic_config_apply(&o.config, "cleanup.policy", "compact", err, sizeof(err)), 0, "%s", err);
        o.config.segment_bytes = 16384;         /* below Kafka's minimum, for several segments */
        o.dir_fd = dir_fd;
        o.dir_name = "__consumer_offsets-0";
        o.is_durable_acks = true;
        struct log_io io = { .ops = &sync_ops, .ctx = NULL };
        struct partition *p;
        cr_assert_eq(partition_open(&o, &io, &p, err, sizeof(err)), 0, "%s", err);
        return p;
}

static void append_done(struct partition_append *a)
{
        *(int *)a->ctx = 1;
}

static void append_writes(struct partition *p, const struct offsets_write *ws, uint32_t count)
{
        uint8_t *batch;
        size_t len;
        cr_assert_eq(offsets_batch_build(ws, count, 1234, &test_arena, &batch, &len), 0);
        int done = 0;
        struct partition_append a = { .batches = batch, .len = len, .is_durable = true, .done = append_done,
                                      .ctx = &done };
        partition_append(p, &a);
        cr_assert_eq(done, 1);
        cr_assert_eq(a.error_code, 0, "append: %s", a.error_message);
}

static int count_segments(void)
{
        char path[128];
        snprintf(path, sizeof(path), "%s/__consumer_offsets-0", tmp_root);
        DIR *d = opendir(path);
        cr_assert_not_null(d);
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
                size_t len = strlen(e->d_name);
                n += len > 4 && strcmp(e->d_name + len - 4, ".log") == 0;
        }
        closedir(d);
        return n;
}

static uint32_t load_all(struct partition *p, struct offsets_store *s, uint32_t step_bytes,
                         struct offsets_loader *l)
{
        offsets_loader_init(l, p);
        uint32_t steps = 0;
        int rc;
        while ((rc = offsets_loader_step(l, p, s, step_bytes, NULL, NULL)) == 1)
                steps++;
        cr_assert_eq(rc, 0);
        return steps + 1;
}

Test(load, replay_of_the_log_equals_the_writes)
{
        struct partition *p = open_offsets_partition();
        struct offsets_store *live = offsets_store_create();
        char group[32], topic[32];
        /* 300 commit batches over several segments, then tombstones */
        for (int i = 0; i < 300; i++) {
                snprintf(group, sizeof(group), "g%d", i % 7);
                snprintf(topic, sizeof(topic), "t%d", i % 3);
                struct offsets_write ws[2] = { commit_of(group, topic, i % 4, i), commit_of(group, "x", 0, i) };
                append_writes(p, ws, 2);
                cr_assert_eq(offsets_store_apply(live, &ws[0]), 0);
                cr_assert_eq(offsets_store_apply(live, &ws[1]), 0);
        }
        for (int i = 0; i < 7; i += 2) {
                snprintf(group, sizeof(group), "g%d", i);
                struct offsets_write t = tombstone_of(group, "x", 0);
                append_writes(p, &t, 1);
                cr_assert_eq(offsets_store_apply(live, &t), 0);
        }

        cr_assert_gt(count_segments(), 1, "the log should span segments");

        struct offsets_store *loaded = offsets_store_create();
        struct offsets_loader l;
        uint32_t steps = load_all(p, loaded, 1000, &l);
        cr_assert_gt(steps, 10, "small steps should take many: %u", steps);
        cr_assert_eq(l.stats.commit_count, 600);
        cr_assert_eq(l.stats.tombstone_count, 4);
        cr_assert_eq(offsets_store_count(loaded), offsets_store_count(live));
        for (int g = 0; g < 7; g++) {
                snprintf(group, sizeof(group), "g%d", g);
                struct offsets_item *a, *b;
                uint32_t na, nb;
                cr_assert_eq(offsets_store_list_group(live, KSTR(group), &test_arena, &a, &na), 0);
                cr_assert_eq(offsets_store_list_group(loaded, KSTR(group), &test_arena, &b, &nb), 0);
                cr_assert_eq(na, nb);
                for (uint32_t i = 0; i < na; i++) {
                        cr_assert(kstr_eq(a[i].topic, b[i].topic));
                        cr_assert_eq(a[i].partition, b[i].partition);
                        cr_assert_eq(a[i].value.offset, b[i].value.offset);
                }
        }
        cr_assert_null(offsets_store_get(loaded, KSTR("g2"), KSTR("x"), 0));
        cr_assert_not_null(offsets_store_get(loaded, KSTR("g1"), KSTR("x"), 0));

        /* one big step does it at once */
        struct offsets_store *again = offsets_store_create();
        cr_assert_eq(load_all(p, again, 64u << 20, &l), 1);
        cr_assert_eq(offsets_store_count(again), offsets_store_count(live));

        offsets_store_destroy(again);
        offsets_store_destroy(loaded);
        offsets_store_destroy(live);
        partition_close(p);
}

static void append_txn(struct partition *p, const struct offsets_write *ws, uint32_t count, int64_t producer_id,
                       int32_t base_sequence)
{
        struct offsets_txn_producer pr = { producer_id, 0, base_sequence };
        uint8_t *batch;
        size_t len;
        cr_assert_eq(offsets_txn_batch_build(ws, count, 1234, &pr, &test_arena, &batch, &len), 0);
        int done = 0;
        struct partition_append a = { .batches = batch, .len = len, .is_durable = true, .is_txn_verified = true,
                                      .done = append_done, .ctx = &done };
        partition_append(p, &a);
        cr_assert_eq(done, 1);
        cr_assert_eq(a.error_code, 0, "append: %s", a.error_message);
}

static void append_marker(struct partition *p, int64_t producer_id, bool is_commit)
{
        struct partition_marker m = { .producer_id = producer_id, .producer_epoch = 0, .coordinator_epoch = 0,
                                      .is_commit = is_commit };
        int done = 0;
        struct partition_append a = { .marker = &m, .is_durable = true, .done = append_done, .ctx = &done };
        partition_append(p, &a);
        cr_assert_eq(done, 1);
        cr_assert_eq(a.error_code, 0, "marker: %s", a.error_message);
}

Test(load, transactional_offsets_survive_a_restart_as_their_markers_say)
{
        struct partition *p = open_offsets_partition();
        struct offsets_write plain = commit_of("g", "in", 0, 1);
        append_writes(p, &plain, 1);
        struct offsets_write c1 = commit_of("g", "in", 0, 10);
        append_txn(p, &c1, 1, 500, 0);
        append_marker(p, 500, true);                    /* committed: 10 */
        struct offsets_write a1 = commit_of("g", "in", 0, 20);
        append_txn(p, &a1, 1, 500, 1);
        append_marker(p, 500, false);                   /* aborted: stays 10 */
        struct offsets_write o1 = commit_of("g", "in", 1, 30);
        append_txn(p, &o1, 1, 501, 0);                  /* open at the end */

        struct offsets_store *s = offsets_store_create();
        struct offsets_loader l;
        load_all(p, s, 64u << 20, &l);
        cr_assert_eq(offsets_store_get(s, KSTR("g"), KSTR("in"), 0)->offset, 10);
        cr_assert_null(offsets_store_get(s, KSTR("g"), KSTR("in"), 1));
        cr_assert(offsets_store_has_pending(s, KSTR("g"), KSTR("in"), 1));
        cr_assert_not(offsets_store_has_pending(s, KSTR("g"), KSTR("in"), 0));
        cr_assert_eq(l.stats.marker_count, 2);
        cr_assert_eq(l.stats.pending_count, 3);
        cr_assert_eq(l.stats.commit_count, 1);
        offsets_store_destroy(s);
        partition_close(p);
}

Test(load, empty_log_loads_at_once)
{
        struct partition *p = open_offsets_partition();
        struct offsets_store *s = offsets_store_create();
        struct offsets_loader l;
        offsets_loader_init(&l, p);
        cr_assert_eq(offsets_loader_step(&l, p, s, 4096, NULL, NULL), 0);
        cr_assert_eq(offsets_store_count(s), 0);
        offsets_store_destroy(s);
        partition_close(p);
}

/* ---- GroupMetadata records written by runnel ---- */

struct group_seen {
        int count;
        bool is_tombstone;
        char group[32];
        char protocol_type[32];
        int32_t generation;
        int32_t member_count;
        char member_id[32];
        char instance_id[32];
        int32_t session_timeout;
        char assignment[32];
};

static void group_hook(void *ctx, int64_t offset, int16_t record_type, struct kbytes key, struct kbytes value)
{
        (void)offset;
        struct group_seen *h = ctx;
        cr_assert_eq(record_type, OFFSETS_RECORD_TYPE_GROUP_METADATA);
        struct offsets_group_record r;
        cr_assert_eq(offsets_group_record_decode(key, value, &test_arena, &r), 0);
        h->count++;
        h->is_tombstone = r.is_tombstone;
        snprintf(h->group, sizeof(h->group), "%.*s", (int)r.group.len, r.group.ptr);
        if (r.is_tombstone)
                return;
        snprintf(h->protocol_type, sizeof(h->protocol_type), "%.*s", (int)r.value.protocol_type.len,
                 r.value.protocol_type.ptr);
        h->generation = r.value.generation;
        h->member_count = r.value.members.count;
        if (r.value.members.count > 0) {
                const struct group_metadata_value_member_metadata *m = &r.value.members.items[0];
                snprintf(h->member_id, sizeof(h->member_id), "%.*s", (int)m->member_id.len, m->member_id.ptr);
                snprintf(h->instance_id, sizeof(h->instance_id), "%.*s", (int)m->group_instance_id.len,
                         m->group_instance_id.ptr);
                h->session_timeout = m->session_timeout;
                snprintf(h->assignment, sizeof(h->assignment), "%.*s", (int)m->assignment.len,
                         (const char *)m->assignment.ptr);
        }
}

Test(replay, group_metadata_records_round_trip_through_a_batch)
{
        struct group_metadata_value_member_metadata mm;
        group_metadata_value_member_metadata_init(&mm);
        mm.member_id = KSTR("m-1");
        mm.group_instance_id = KSTR("inst");
        mm.client_id = KSTR("cli");
        mm.client_host = KSTR("/127.0.0.1");
        mm.rebalance_timeout = 300000;
        mm.session_timeout = 45000;
        mm.subscription = (struct kbytes){ (const uint8_t *)"\xAA\xBB", 2 };
        mm.assignment = (struct kbytes){ (const uint8_t *)"asg", 3 };
        struct offsets_group_record r = { .group = KSTR("grp") };
        group_metadata_value_init(&r.value);
        r.value.protocol_type = KSTR("consumer");
        r.value.generation = 7;
        r.value.protocol = KSTR("range");
        r.value.leader = KSTR("m-1");
        r.value.current_state_timestamp = 1700000000000LL;
        r.value.members.count = 1;
        r.value.members.items = &mm;

        /* key: type 2 then the group; value: version 3 first */
        struct kbytes k, v;
        cr_assert_eq(offsets_group_record_encode(&r, &test_arena, &k, &v), 0);
        cr_assert_eq(k.len, 2 + 2 + 3);
        cr_assert_eq(k.ptr[0], 0);
        cr_assert_eq(k.ptr[1], 2);
        cr_assert_gt(v.len, 2);
        cr_assert_eq(v.ptr[0], 0);
        cr_assert_eq(v.ptr[1], OFFSETS_GROUP_VALUE_VERSION);

        uint8_t *batch;
        size_t len;
        cr_assert_eq(offsets_group_batch_build(&r, 5, &test_arena, &batch, &len), 0);
        struct offsets_store *s = offsets_store_create();
        struct offsets_replay_stats st = { 0 };
        struct group_seen seen = { 0 };
        cr_assert_eq(offsets_store_replay_batch(s, batch, len, 0, &test_arena, group_hook, &seen, &st), 0);
        cr_assert_eq(seen.count, 1);
        cr_assert_not(seen.is_tombstone);
        cr_assert_str_eq(seen.group, "grp");
        cr_assert_str_eq(seen.protocol_type, "consumer");
        cr_assert_eq(seen.generation, 7);
        cr_assert_eq(seen.member_count, 1);
        cr_assert_str_eq(seen.member_id, "m-1");
        cr_assert_str_eq(seen.instance_id, "inst");
        cr_assert_eq(seen.session_timeout, 45000);
        cr_assert_str_eq(seen.assignment, "asg");
        cr_assert_eq(st.other_count, 1);
        cr_assert_eq(offsets_store_count(s), 0);

        /* the tombstone: the same key, a null value */
        r.is_tombstone = true;
        cr_assert_eq(offsets_group_record_encode(&r, &test_arena, &k, &v), 0);
        cr_assert_eq(v.len, -1);
        cr_assert_eq(offsets_group_batch_build(&r, 6, &test_arena, &batch, &len), 0);
        cr_assert_eq(offsets_store_replay_batch(s, batch, len, 0, &test_arena, group_hook, &seen, &st), 0);
        cr_assert_eq(seen.count, 2);
        cr_assert(seen.is_tombstone);
        cr_assert_str_eq(seen.group, "grp");
        offsets_store_destroy(s);
}

Test(records, group_record_decode_refuses_other_types_and_versions)
{
        struct offsets_group_record r;
        struct bytes key = { .n = 0 };
        put_be(&key, 1, 2);
        put_str16(&key, "g");
        cr_assert_eq(offsets_group_record_decode(kb(&key), KBYTES_NULL, &test_arena, &r), -EBADMSG);
        struct bytes gkey = { .n = 0 };
        put_be(&gkey, 2, 2);
        put_str16(&gkey, "g");
        struct bytes val = { .n = 0 };
        put_be(&val, 9, 2);                     /* no such version */
        cr_assert_eq(offsets_group_record_decode(kb(&gkey), kb(&val), &test_arena, &r), -EBADMSG);
}
