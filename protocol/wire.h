/*
 * wire.h - Kafka's primitive wire types: the reader and writer every codec
 * in protocol/ is built on.
 *
 * All integers are big-endian; varints are the unsigned LEB128 form Kafka
 * uses for compact lengths and tagged fields, and the zig-zag form used
 * inside records. Strings and bytes are never copied when decoded: a
 * struct kstr or struct kbytes points into the buffer being read.
 *
 * The reader is bounded and sticky: a read past the end sets r->err, leaves
 * the cursor at the end and returns zero, and every later read fails too.
 * Callers check r->err once at the end of a message, and before allocating
 * anything sized by a count they call kr_check_count().
 *
 * The writer writes into a buffer sized beforehand by the matching size
 * function; writing past its end is a bug, caught by assert.
 */
#ifndef RUNNEL_WIRE_H
#define RUNNEL_WIRE_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A string on the wire; len == -1 is null. Not NUL-terminated. */
struct kstr {
        const char *ptr;
        int32_t len;
};

/* Bytes on the wire (also `records` fields); len == -1 is null. */
struct kbytes {
        const uint8_t *ptr;
        int32_t len;
};

struct kuuid {
        uint8_t b[16];
};

#define KSTR_NULL ((struct kstr){ NULL, -1 })
#define KBYTES_NULL ((struct kbytes){ NULL, -1 })
/* A kstr for a C string literal or a NUL-terminated char pointer. */
#define KSTR(s) ((struct kstr){ (s), (int32_t)strlen(s) })

static inline bool kstr_is_null(struct kstr s) { return s.len < 0; }
static inline bool kstr_eq(struct kstr a, struct kstr b)
{
        if (a.len != b.len)
                return false;
        return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}
static inline bool kstr_eq_cstr(struct kstr a, const char *c)
{
        return a.len >= 0 && (size_t)a.len == strlen(c) && memcmp(a.ptr, c, (size_t)a.len) == 0;
}
static inline bool kbytes_eq(struct kbytes a, struct kbytes b)
{
        if (a.len != b.len)
                return false;
        return a.len <= 0 || memcmp(a.ptr, b.ptr, (size_t)a.len) == 0;
}
static inline bool kuuid_is_zero(struct kuuid u)
{
        static const struct kuuid zero;
        return memcmp(u.b, zero.b, 16) == 0;
}
static inline bool kuuid_eq(struct kuuid a, struct kuuid b) { return memcmp(a.b, b.b, 16) == 0; }

/* Arrays of primitives; count == -1 is null. Arrays of structs are declared
 * by the generated code in the same shape. */
#define KARRAY(T) struct { int32_t count; T *items; }
struct kint8_array { int32_t count; int8_t *items; };
struct kint16_array { int32_t count; int16_t *items; };
struct kint32_array { int32_t count; int32_t *items; };
struct kint64_array { int32_t count; int64_t *items; };
struct kuuid_array { int32_t count; struct kuuid *items; };
struct kstr_array { int32_t count; struct kstr *items; };

/* ---- reader ---- */

struct kreader {
        const uint8_t *p;
        const uint8_t *end;
        bool err;
};

static inline void kr_init(struct kreader *r, const void *buf, size_t len)
{
        r->p = buf;
        r->end = r->p + len;
        r->err = false;
}

static inline size_t kr_remaining(const struct kreader *r) { return (size_t)(r->end - r->p); }

static inline bool kr_fail(struct kreader *r)
{
        r->err = true;
        r->p = r->end;
        return false;
}

static inline bool kr_need(struct kreader *r, size_t n)
{
        if (r->err || kr_remaining(r) < n)
                return kr_fail(r);
        return true;
}

/* A count read from the wire must fit in what is left, given that each element
 * takes at least min_elem_bytes; this bounds every allocation by the frame.
 * Counts are stored as int32_t, so anything larger is refused whatever the
 * buffer holds. */
static inline bool kr_check_count(struct kreader *r, int64_t count, size_t min_elem_bytes)
{
        if (count < 0 || count > INT32_MAX)
                return kr_fail(r);
        if (min_elem_bytes == 0)
                min_elem_bytes = 1;
        if ((uint64_t)count > kr_remaining(r) / min_elem_bytes)
                return kr_fail(r);
        return true;
}

static inline uint8_t kr_u8(struct kreader *r)
{
        if (!kr_need(r, 1))
                return 0;
        return *r->p++;
}
static inline int8_t kr_i8(struct kreader *r) { return (int8_t)kr_u8(r); }
static inline bool kr_bool(struct kreader *r) { return kr_u8(r) != 0; }

static inline uint16_t kr_u16(struct kreader *r)
{
        if (!kr_need(r, 2))
                return 0;
        uint16_t v = (uint16_t)((uint16_t)r->p[0] << 8 | r->p[1]);
        r->p += 2;
        return v;
}
static inline int16_t kr_i16(struct kreader *r) { return (int16_t)kr_u16(r); }

static inline uint32_t kr_u32(struct kreader *r)
{
        if (!kr_need(r, 4))
                return 0;
        uint32_t v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
        r->p += 4;
        return v;
}
static inline int32_t kr_i32(struct kreader *r) { return (int32_t)kr_u32(r); }

static inline uint64_t kr_u64(struct kreader *r)
{
        if (!kr_need(r, 8))
                return 0;
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v = v << 8 | r->p[i];
        r->p += 8;
        return v;
}
static inline int64_t kr_i64(struct kreader *r) { return (int64_t)kr_u64(r); }

static inline double kr_f64(struct kreader *r)
{
        uint64_t u = kr_u64(r);
        double d;
        memcpy(&d, &u, sizeof(d));
        return d;
}

static inline struct kuuid kr_uuid(struct kreader *r)
{
        struct kuuid u = { { 0 } };
        if (kr_need(r, 16)) {
                memcpy(u.b, r->p, 16);
                r->p += 16;
        }
        return u;
}

/* Unsigned varint of at most 5 bytes (32 bits), as Kafka's readUnsignedVarint. */
static inline uint32_t kr_uvarint(struct kreader *r)
{
        uint32_t v = 0;
        for (int shift = 0; shift <= 28; shift += 7) {
                if (!kr_need(r, 1))
                        return 0;
                uint8_t b = *r->p++;
                if (shift == 28 && (b & 0xf0))
                        break;          /* more than 32 bits */
                v |= (uint32_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                        return v;
        }
        kr_fail(r);
        return 0;
}

/* Unsigned varlong of at most 10 bytes. */
static inline uint64_t kr_uvarlong(struct kreader *r)
{
        uint64_t v = 0;
        for (int shift = 0; shift <= 63; shift += 7) {
                if (!kr_need(r, 1))
                        return 0;
                uint8_t b = *r->p++;
                if (shift == 63 && (b & 0xfe))
                        break;
                v |= (uint64_t)(b & 0x7f) << shift;
                if (!(b & 0x80))
                        return v;
        }
        kr_fail(r);
        return 0;
}

/* Zig-zag varint / varlong (record fields). */
static inline int32_t kr_varint(struct kreader *r)
{
        uint32_t u = kr_uvarint(r);
        return (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
}
static inline int64_t kr_varlong(struct kreader *r)
{
        uint64_t u = kr_uvarlong(r);
        return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
}

/* Takes n bytes as a slice; n must already be checked non-negative. */
static inline const uint8_t *kr_take(struct kreader *r, size_t n)
{
        if (!kr_need(r, n))
                return NULL;
        const uint8_t *p = r->p;
        r->p += n;
        return p;
}

/* Length prefixes. Each returns -1 for null and -2 (with r->err set) when the
 * prefix is malformed or longer than the bytes left. */
static inline int32_t kr_len_checked(struct kreader *r, int64_t len)
{
        if (r->err)
                return -2;
        if (len < -1 || len > INT32_MAX || (len >= 0 && (uint64_t)len > kr_remaining(r))) {
                kr_fail(r);
                return -2;
        }
        return (int32_t)len;
}
static inline int32_t kr_len16(struct kreader *r) { return kr_len_checked(r, kr_i16(r)); }
static inline int32_t kr_len32(struct kreader *r) { return kr_len_checked(r, kr_i32(r)); }
static inline int32_t kr_compact_len(struct kreader *r) { return kr_len_checked(r, (int64_t)kr_uvarint(r) - 1); }

/* ---- writer ---- */

/*
 * A hole is a `records` field whose bytes are not in memory (ptr NULL, len
 * > 0): a byte range of a log segment that the connection sends from the
 * file. The encoder writes the length prefix and notes where the bytes
 * belong; the buffer has no room for them. Writers without a hole table
 * must never meet one.
 */
struct kw_hole {
        size_t offset;          /* in the buffer, where the bytes go */
        size_t len;
};

struct kwriter {
        uint8_t *p;
        uint8_t *end;
        uint8_t *start;
        struct kw_hole *holes;
        uint32_t hole_count;
        uint32_t hole_cap;
};

static inline void kw_init(struct kwriter *w, void *buf, size_t len)
{
        w->p = buf;
        w->end = w->p + len;
        w->start = buf;
        w->holes = NULL;
        w->hole_count = 0;
        w->hole_cap = 0;
}

static inline void kw_hole(struct kwriter *w, size_t len)
{
        assert(w->hole_count < w->hole_cap);
        w->holes[w->hole_count].offset = (size_t)(w->p - w->start);
        w->holes[w->hole_count].len = len;
        w->hole_count++;
}

static inline void kw_u8(struct kwriter *w, uint8_t v)
{
        assert(w->end - w->p >= 1);
        *w->p++ = v;
}
static inline void kw_i8(struct kwriter *w, int8_t v) { kw_u8(w, (uint8_t)v); }
static inline void kw_bool(struct kwriter *w, bool v) { kw_u8(w, v ? 1 : 0); }
static inline void kw_u16(struct kwriter *w, uint16_t v)
{
        assert(w->end - w->p >= 2);
        w->p[0] = (uint8_t)(v >> 8);
        w->p[1] = (uint8_t)v;
        w->p += 2;
}
static inline void kw_i16(struct kwriter *w, int16_t v) { kw_u16(w, (uint16_t)v); }
static inline void kw_u32(struct kwriter *w, uint32_t v)
{
        assert(w->end - w->p >= 4);
        w->p[0] = (uint8_t)(v >> 24);
        w->p[1] = (uint8_t)(v >> 16);
        w->p[2] = (uint8_t)(v >> 8);
        w->p[3] = (uint8_t)v;
        w->p += 4;
}
static inline void kw_i32(struct kwriter *w, int32_t v) { kw_u32(w, (uint32_t)v); }
static inline void kw_u64(struct kwriter *w, uint64_t v)
{
        assert(w->end - w->p >= 8);
        for (int i = 7; i >= 0; i--) {
                w->p[i] = (uint8_t)v;
                v >>= 8;
        }
        w->p += 8;
}
static inline void kw_i64(struct kwriter *w, int64_t v) { kw_u64(w, (uint64_t)v); }
static inline void kw_f64(struct kwriter *w, double d)
{
        uint64_t u;
        memcpy(&u, &d, sizeof(u));
        kw_u64(w, u);
}
static inline void kw_uuid(struct kwriter *w, struct kuuid u)
{
        assert(w->end - w->p >= 16);
        memcpy(w->p, u.b, 16);
        w->p += 16;
}
static inline void kw_uvarint(struct kwriter *w, uint32_t v)
{
        while (v >= 0x80) {
                kw_u8(w, (uint8_t)(v | 0x80));
                v >>= 7;
        }
        kw_u8(w, (uint8_t)v);
}
static inline void kw_uvarlong(struct kwriter *w, uint64_t v)
{
        while (v >= 0x80) {
                kw_u8(w, (uint8_t)(v | 0x80));
                v >>= 7;
        }
        kw_u8(w, (uint8_t)v);
}
static inline void kw_varint(struct kwriter *w, int32_t v)
{
        kw_uvarint(w, ((uint32_t)v << 1) ^ (uint32_t)(v >> 31));
}
static inline void kw_varlong(struct kwriter *w, int64_t v)
{
        kw_uvarlong(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
static inline void kw_raw(struct kwriter *w, const void *src, size_t n)
{
        assert((size_t)(w->end - w->p) >= n);
        if (n)
                memcpy(w->p, src, n);
        w->p += n;
}

static inline size_t kw_uvarint_size(uint32_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}
static inline size_t kw_uvarlong_size(uint64_t v)
{
        size_t n = 1;
        while (v >= 0x80) {
                v >>= 7;
                n++;
        }
        return n;
}
static inline size_t kw_varint_size(int32_t v) { return kw_uvarint_size(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }
static inline size_t kw_varlong_size(int64_t v) { return kw_uvarlong_size(((uint64_t)v << 1) ^ (uint64_t)(v >> 63)); }

#endif
