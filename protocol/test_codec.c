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

#include "protocol/arena.h"
#include "protocol/gen/api_table.h"
#include "protocol/gen/fill.h"
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
