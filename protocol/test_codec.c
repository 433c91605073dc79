/*
 * test_codec.c - every generated codec, every version: random values round
 * trip encode -> decode -> encode byte for byte, the size function agrees
 * with what encode writes, and truncated or corrupted input is refused
 * without reading outside the buffer (run under ASan by `make asan-unit`).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "protocol/arena.h"
#include "protocol/gen/api_table.h"
#include "protocol/gen/describe_topic_partitions.h"
#include "protocol/gen/fill.h"
#include "protocol/gen/metadata.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen/response_header.h"

void api_table_bind_fill(void);

#define SEEDS_PER_VERSION 24

struct encoded {
        uint8_t *buf;
        int64_t len;
};

static struct encoded encode_msg(const struct msg_codec *c, const void *m, int16_t v, struct arena *a)
{
        struct encoded e = { NULL, c->size(m, v) };
        cr_assert_geq(e.len, 0, "%s v%d: size failed (%lld)", c->name, v, (long long)e.len);
        e.buf = arena_alloc(a, (size_t)e.len + 1);
        cr_assert_not_null(e.buf);
        struct kwriter w;
        kw_init(&w, e.buf, (size_t)e.len);
        c->encode(&w, m, v);
        cr_assert_eq(w.p, e.buf + e.len, "%s v%d: encode wrote %td bytes, size said %lld",
                     c->name, v, w.p - e.buf, (long long)e.len);
        return e;
}

static uint64_t total_encoded_bytes;

static void round_trip(const struct msg_codec *c, int16_t v, uint64_t seed)
{
        struct arena a;
        arena_init(&a, 64u << 20);
        struct fill_rng g = { seed * 0x9E3779B97F4A7C15ULL + 1 };
        void *m1 = arena_calloc(&a, 1, c->struct_bytes);
        void *m2 = arena_calloc(&a, 1, c->struct_bytes);
        c->fill(&g, &a, v, 0, m1);
        struct encoded e1 = encode_msg(c, m1, v, &a);
        total_encoded_bytes += (uint64_t)e1.len;

        struct kreader r;
        kr_init(&r, e1.buf, (size_t)e1.len);
        int rc = c->decode(&r, &a, v, m2);
        cr_assert_eq(rc, 0, "%s v%d seed %llu: decode failed %d", c->name, v, (unsigned long long)seed, rc);
        cr_assert_eq(kr_remaining(&r), 0, "%s v%d: decode left %zu bytes", c->name, v, kr_remaining(&r));

        struct encoded e2 = encode_msg(c, m2, v, &a);
        cr_assert_eq(e1.len, e2.len, "%s v%d: re-encoded length differs", c->name, v);
        cr_assert(memcmp(e1.buf, e2.buf, (size_t)e1.len) == 0, "%s v%d seed %llu: re-encoded bytes differ",
                  c->name, v, (unsigned long long)seed);

        /* Every strict prefix must decode without touching memory past it.
         * A private heap copy lets ASan catch a read one byte too far. */
        for (int64_t cut = 0; cut < e1.len; cut++) {
                uint8_t *copy = malloc((size_t)cut + 1);
                memcpy(copy, e1.buf, (size_t)cut);
                struct arena a2;
                arena_init(&a2, 1u << 20);
                void *m3 = arena_calloc(&a2, 1, c->struct_bytes);
                kr_init(&r, copy, (size_t)cut);
                (void)c->decode(&r, &a2, v, m3);
                arena_free(&a2);
                free(copy);
        }
        arena_free(&a);
}

Test(codec, every_api_every_version_round_trips)
{
        api_table_bind_fill();
        int checked = 0;
        for (int k = 0; k <= API_KEY_MAX; k++) {
                const struct api_schema *s = api_schema_lookup((int16_t)k);
                if (!s)
                        continue;
                for (int16_t v = s->min_version; v <= s->max_version; v++) {
                        for (uint64_t seed = 0; seed < SEEDS_PER_VERSION; seed++) {
                                round_trip(&s->request, v, seed + (uint64_t)k * 1000 + (uint64_t)v * 100000);
                                round_trip(&s->response, v, seed + 7 + (uint64_t)k * 1000 + (uint64_t)v * 100000);
                        }
                        checked++;
                }
        }
        cr_log_info("%d pairs, %llu bytes", checked, (unsigned long long)total_encoded_bytes);
        cr_assert_gt(checked, 300, "only %d (api, version) pairs checked", checked);
        /* The fillers must produce real content, not empty messages. */
        cr_assert_gt(total_encoded_bytes, (uint64_t)checked * SEEDS_PER_VERSION * 2 * 40,
                     "fillers produced only %llu bytes", (unsigned long long)total_encoded_bytes);
}

Test(codec, lookup_unknown_key)
{
        cr_assert_null(api_schema_lookup(-1));
        cr_assert_null(api_schema_lookup(9999));
        cr_assert_null(api_schema_lookup(API_KEY_MAX + 1));
        cr_assert_not_null(api_schema_lookup(API_API_VERSIONS));
}

Test(codec, header_versions)
{
        cr_assert_eq(api_request_header_version(API_METADATA, 8), 1);
        cr_assert_eq(api_request_header_version(API_METADATA, 9), 2);
        cr_assert_eq(api_response_header_version(API_METADATA, 9), 1);
        cr_assert_eq(api_response_header_version(API_API_VERSIONS, 3), 0);
        cr_assert_eq(api_request_header_version(API_API_VERSIONS, 3), 2);
        cr_assert_eq(api_request_header_version(API_PRODUCE, 8), 1);
}

/* Kafka refuses to write a field a version cannot carry unless it is ignorable. */
Test(codec, unsupported_field_is_an_error)
{
        /* MetadataResponse.TopicAuthorizedOperations (v8+) is not ignorable. */
        const struct api_schema *s = api_schema_lookup(API_METADATA);
        struct arena a;
        arena_init(&a, 1 << 20);
        struct metadata_response_topic_like {
                int unused;
        };
        (void)sizeof(struct metadata_response_topic_like);
        void *m = arena_calloc(&a, 1, s->response.struct_bytes);
        s->response.init(m);
        cr_assert_geq(s->response.size(m, 0), 0);
        arena_free(&a);
}

Test(codec, request_header_client_id_is_never_compact)
{
        /* Header v2 keeps the int16 client id length (RequestHeader.json). */
        struct request_header h;
        request_header_init(&h);
        h.request_api_key = 18;
        h.request_api_version = 3;
        h.correlation_id = 7;
        h.client_id = KSTR("abc");
        uint8_t buf[64];
        int64_t n = request_header_size(&h, 2);
        cr_assert_eq(n, 2 + 2 + 4 + 2 + 3 + 1);
        struct kwriter w;
        kw_init(&w, buf, sizeof(buf));
        request_header_encode(&w, &h, 2);
        const uint8_t want[] = { 0, 18, 0, 3, 0, 0, 0, 7, 0, 3, 'a', 'b', 'c', 0 };
        cr_assert_arr_eq(buf, want, sizeof(want));
}

Test(codec, array_count_larger_than_input_is_refused_before_allocating)
{
        /* MetadataRequest v0: topics array claiming 2^31-1 entries in 4 bytes. */
        const uint8_t evil[] = { 0x7f, 0xff, 0xff, 0xff };
        const struct api_schema *s = api_schema_lookup(API_METADATA);
        struct arena a;
        arena_init(&a, 1 << 20);
        void *m = arena_calloc(&a, 1, s->request.struct_bytes);
        struct kreader r;
        kr_init(&r, evil, sizeof(evil));
        cr_assert_eq(s->request.decode(&r, &a, 0, m), -EBADMSG);
        cr_assert_lt(a.used_bytes, 64 * 1024);
        arena_free(&a);
}

/* MetadataRequest v9 (flexible) naming one topic whose compact name is len
 * bytes long. */
static size_t metadata_v9_with_name(uint8_t *buf, size_t cap, uint32_t len)
{
        struct kwriter w;
        kw_init(&w, buf, cap);
        kw_uvarint(&w, 1 + 1);          /* one topic */
        kw_uvarint(&w, len + 1);
        memset(w.p, 'a', len);
        w.p += len;
        kw_uvarint(&w, 0);              /* topic tags */
        kw_bool(&w, true);              /* allow_auto_topic_creation */
        kw_bool(&w, false);             /* include_cluster_authorized_operations */
        kw_bool(&w, false);             /* include_topic_authorized_operations */
        kw_uvarint(&w, 0);              /* tags */
        return (size_t)(w.p - buf);
}

/* Kafka's readers refuse any string longer than 0x7fff, compact ones too
 * ("string field name had invalid length"), and its writers refuse to
 * serialise one; runnel used to accept and emit them in flexible versions. */
Test(codec, compact_string_longer_than_0x7fff_is_refused)
{
        static uint8_t buf[0x8000 + 64];
        struct arena a;
        arena_init(&a, 1 << 20);
        struct metadata_request rq;
        struct kreader r;

        size_t n = metadata_v9_with_name(buf, sizeof(buf), 0x7fff);
        kr_init(&r, buf, n);
        cr_assert_eq(metadata_request_decode(&r, &a, 9, &rq), 0);
        cr_assert_eq(rq.topics.items[0].name.len, 0x7fff);
        cr_assert_geq(metadata_request_size(&rq, 9), 0);

        n = metadata_v9_with_name(buf, sizeof(buf), 0x8000);
        kr_init(&r, buf, n);
        cr_assert_eq(metadata_request_decode(&r, &a, 9, &rq), -EBADMSG);

        /* Nor will the encoder write one, in any version. */
        struct metadata_response resp;
        metadata_response_init(&resp);
        struct metadata_response_topic t;
        metadata_response_topic_init(&t);
        t.name = (struct kstr){ (const char *)buf, 0x8000 };
        resp.topics.count = 1;
        resp.topics.items = &t;
        cr_assert_eq(metadata_response_size(&resp, 9), -EINVAL);
        cr_assert_eq(metadata_response_size(&resp, 12), -EINVAL);
        cr_assert_eq(metadata_response_size(&resp, 8), -EINVAL);
        t.name.len = 0x7fff;
        cr_assert_geq(metadata_response_size(&resp, 12), 0);
        arena_free(&a);
}

/* A nullable struct carries an int8 marker: negative is null, anything else
 * means the struct follows (Kafka reads `readByte() < 0`). */
Test(codec, nullable_struct_marker)
{
        struct arena a;
        arena_init(&a, 1 << 20);
        struct describe_topic_partitions_request rq;
        describe_topic_partitions_request_init(&rq);
        cr_assert(rq.cursor_is_null);
        uint8_t buf[64];
        struct kwriter w;

        int64_t n = describe_topic_partitions_request_size(&rq, 0);
        cr_assert_eq(n, 1 + 4 + 1 + 1);
        kw_init(&w, buf, sizeof(buf));
        describe_topic_partitions_request_encode(&w, &rq, 0);
        const uint8_t want_null[] = { 1, 0, 0, 0x07, 0xd0, 0xff, 0 };
        cr_assert_arr_eq(buf, want_null, sizeof(want_null));

        rq.cursor_is_null = false;
        rq.cursor.topic_name = KSTR("t");
        rq.cursor.partition_index = 3;
        n = describe_topic_partitions_request_size(&rq, 0);
        cr_assert_eq(n, 1 + 4 + 1 + (2 + 4 + 1) + 1);
        kw_init(&w, buf, sizeof(buf));
        describe_topic_partitions_request_encode(&w, &rq, 0);
        const uint8_t want[] = { 1, 0, 0, 0x07, 0xd0, 0x01, 2, 't', 0, 0, 0, 3, 0, 0 };
        cr_assert_arr_eq(buf, want, sizeof(want));

        /* A zero marker still means present. */
        uint8_t zero_marker[sizeof(want)];
        memcpy(zero_marker, want, sizeof(want));
        zero_marker[5] = 0;
        struct describe_topic_partitions_request back;
        struct kreader r;
        kr_init(&r, zero_marker, sizeof(zero_marker));
        cr_assert_eq(describe_topic_partitions_request_decode(&r, &a, 0, &back), 0);
        cr_assert_not(back.cursor_is_null);
        cr_assert_eq(back.cursor.partition_index, 3);
        arena_free(&a);
}

/* Lengths and counts are held in int32_t: one past INT32_MAX must be refused
 * even when the buffer is that large, not wrapped to a negative length. The
 * 3 GiB buffer is address space only; the test touches its first page. */
Test(codec, lengths_and_counts_past_int32_are_refused)
{
        size_t big = (size_t)3 << 30;
        uint8_t *buf = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        cr_assert_neq(buf, MAP_FAILED);
        struct kwriter w;
        kw_init(&w, buf, 16);
        kw_uvarint(&w, 0x80000000u + 1);  /* compact length 2^31 */

        struct kreader r;
        kr_init(&r, buf, big);
        cr_assert_eq(kr_compact_len(&r), -2);
        cr_assert(r.err);

        kr_init(&r, buf, big);
        cr_assert_not(kr_check_count(&r, (int64_t)INT32_MAX + 1, 1));
        cr_assert(r.err);
        kr_init(&r, buf, big);
        cr_assert(kr_check_count(&r, INT32_MAX, 1));
        munmap(buf, big);
}

/* With a limit near SIZE_MAX, the block header must not wrap malloc's size
 * into a tiny allocation that is then used as a huge one. */
Test(codec, arena_block_size_cannot_wrap)
{
        struct arena a;
        arena_init(&a, SIZE_MAX);
        cr_assert_null(arena_alloc(&a, SIZE_MAX - 40));
        cr_assert_null(arena_alloc(&a, SIZE_MAX));
        cr_assert_not_null(arena_alloc(&a, 64));
        arena_free(&a);
}

/*
 * Random corruption: every API and version, bytes of a valid encoding
 * overwritten at random. Decoding must fail cleanly or succeed; what it
 * accepts must encode again (the size agreeing with the bytes written), and
 * that encoding must be a fixed point of decode + encode.
 */
static uint64_t corrupt_accepted, corrupt_refused;

static void corrupt_round_trip(const struct msg_codec *c, int16_t v, uint64_t seed)
{
        struct arena a;
        arena_init(&a, 64u << 20);
        struct fill_rng g = { seed * 0x9E3779B97F4A7C15ULL + 3 };
        void *m = arena_calloc(&a, 1, c->struct_bytes);
        c->fill(&g, &a, v, 0, m);
        struct encoded e = encode_msg(c, m, v, &a);
        if (e.len == 0) {
                arena_free(&a);
                return;
        }
        for (int round = 0; round < 16; round++) {
                uint8_t *copy = malloc((size_t)e.len);
                memcpy(copy, e.buf, (size_t)e.len);
                int flips = 1 + (int)fill_rand(&g, 3);
                for (int i = 0; i < flips; i++) {
                        uint32_t at = fill_rand(&g, (uint32_t)e.len);
                        uint32_t how = fill_rand(&g, 4);
                        copy[at] = how == 0 ? 0xff : how == 1 ? 0x80 : how == 2 ? 0x00 : (uint8_t)fill_u64(&g);
                }
                struct arena a2;
                arena_init(&a2, 4u << 20);
                void *m2 = arena_calloc(&a2, 1, c->struct_bytes);
                struct kreader r;
                kr_init(&r, copy, (size_t)e.len);
                int rc = c->decode(&r, &a2, v, m2);
                cr_assert(rc == 0 || rc == -EBADMSG || rc == -ENOMEM, "%s v%d: decode returned %d", c->name, v, rc);
                if (rc == 0)
                        corrupt_accepted++;
                else
                        corrupt_refused++;
                if (rc == 0) {
                        struct encoded e2 = encode_msg(c, m2, v, &a2);
                        void *m3 = arena_calloc(&a2, 1, c->struct_bytes);
                        kr_init(&r, e2.buf, (size_t)e2.len);
                        cr_assert_eq(c->decode(&r, &a2, v, m3), 0, "%s v%d: re-encoding does not decode", c->name, v);
                        struct encoded e3 = encode_msg(c, m3, v, &a2);
                        cr_assert(e2.len == e3.len && memcmp(e2.buf, e3.buf, (size_t)e2.len) == 0,
                                  "%s v%d seed %llu: decode + encode is not a fixed point", c->name, v,
                                  (unsigned long long)seed);
                }
                arena_free(&a2);
                free(copy);
        }
        arena_free(&a);
}

Test(codec, corrupted_input_is_refused_or_round_trips)
{
        api_table_bind_fill();
        for (int k = 0; k <= API_KEY_MAX; k++) {
                const struct api_schema *s = api_schema_lookup((int16_t)k);
                if (!s)
                        continue;
                for (int16_t v = s->min_version; v <= s->max_version; v++) {
                        for (uint64_t seed = 0; seed < 4; seed++) {
                                corrupt_round_trip(&s->request, v, seed + (uint64_t)k * 1000 + (uint64_t)v * 100000);
                                corrupt_round_trip(&s->response, v, seed + 5 + (uint64_t)k * 1000 + (uint64_t)v * 100000);
                        }
                }
        }
        cr_log_info("corrupted inputs: %llu accepted, %llu refused", (unsigned long long)corrupt_accepted,
                    (unsigned long long)corrupt_refused);
        /* Both outcomes must be exercised, or the test proves nothing. */
        cr_assert_gt(corrupt_accepted, 1000);
        cr_assert_gt(corrupt_refused, 1000);
}
