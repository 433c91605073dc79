/*
 * codec.h - the round-trip property of the generated codecs
 * (protocol/gen/api_table.h struct msg_codec), shared by the targets that
 * decode messages: request.c and internal_records.c.
 */
#ifndef RUNNEL_FUZZ_CODEC_H
#define RUNNEL_FUZZ_CODEC_H

#include <errno.h>

#include "fuzz.h"
#include "protocol/arena.h"
#include "protocol/gen/api_table.h"

/* Re-decoding an encoding needs no more than decoding it the first time. */
#define CODEC_ROUND_TRIP_ARENA_BYTES (16u << 20)

/* Encodes m, decodes the bytes again and re-encodes: the two encodings must
 * be identical, and as long as size() said. */
static inline void codec_check_round_trip(const struct msg_codec *c, int16_t version, const void *m)
{
        int64_t n1 = c->size(m, version);
        FUZZ_CHECK(n1 >= 0, "%s v%d: decoded message has no size (%lld)", c->name, version, (long long)n1);
        uint8_t *b1 = malloc((size_t)n1 + 1);
        struct kwriter w;
        kw_init(&w, b1, (size_t)n1);
        c->encode(&w, m, version);
        FUZZ_CHECK(w.p == w.end, "%s v%d: encode wrote %td of %lld bytes", c->name, version,
                   w.p - w.start, (long long)n1);

        /* Re-decoding needs at most what the first decode did; a fresh arena
         * with room to spare. */
        struct arena a;
        arena_init(&a, CODEC_ROUND_TRIP_ARENA_BYTES);
        void *m2 = arena_alloc(&a, c->struct_bytes);
        FUZZ_CHECK(m2 != NULL, "arena");
        memset(m2, 0xa5, c->struct_bytes);
        struct kreader r;
        kr_init(&r, b1, (size_t)n1);
        int rc = c->decode(&r, &a, version, m2);
        FUZZ_CHECK(rc == 0, "%s v%d: own encoding does not decode (%d)", c->name, version, rc);
        FUZZ_CHECK(kr_remaining(&r) == 0, "%s v%d: %zu bytes of own encoding left unread", c->name,
                   version, kr_remaining(&r));

        int64_t n2 = c->size(m2, version);
        FUZZ_CHECK(n2 == n1, "%s v%d: size %lld after round trip, %lld before", c->name, version,
                   (long long)n2, (long long)n1);
        uint8_t *b2 = malloc((size_t)n2 + 1);
        kw_init(&w, b2, (size_t)n2);
        c->encode(&w, m2, version);
        FUZZ_CHECK(w.p == w.end, "%s v%d: second encode short", c->name, version);
        FUZZ_CHECK(memcmp(b1, b2, (size_t)n1) == 0, "%s v%d: re-encoding differs", c->name, version);
        free(b2);
        free(b1);
        arena_free(&a);
}

/* Decodes one message from r with codec c; round-trips it on success. */
static inline int codec_decode_one(const struct msg_codec *c, int16_t version, struct kreader *r, struct arena *a)
{
        void *m = arena_alloc(a, c->struct_bytes);
        if (!m)
                return -ENOMEM;
        memset(m, 0xa5, c->struct_bytes);
        const uint8_t *start = r->p;
        int rc = c->decode(r, a, version, m);
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOMEM, "%s v%d: decode returned %d", c->name,
                   version, rc);
        if (rc == 0) {
                FUZZ_CHECK(!r->err && r->p >= start && r->p <= r->end, "%s v%d: reader state", c->name,
                           version);
                codec_check_round_trip(c, version, m);
        }
        return rc;
}

#endif
