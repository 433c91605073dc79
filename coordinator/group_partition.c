/*
 * group_partition.c - which partition of __consumer_offsets a group lives
 * in: Kafka's Utils.abs(groupId.hashCode()) % partitions, with Java's
 * String.hashCode over the UTF-16 of the id as Java decodes its UTF-8, so
 * that a group id of any bytes lands where Kafka would put it and clients
 * that compute it themselves agree (see group.h).
 */
#include <assert.h>
#include <stdint.h>

#include "group.h"

/* Decodes one code point of UTF-8 the way Java's decoder (JDK 17) does: a
 * malformed sequence becomes U+FFFD and consumes its maximal valid prefix
 * (at least one byte), except that a well-formed three-byte encoding of a
 * UTF-16 surrogate is one U+FFFD for all three. Returns the bytes consumed. */
static int utf8_next(const uint8_t *p, int32_t len, uint32_t *cp)
{
        uint8_t b = p[0];
        if (b < 0x80) {
                *cp = b;
                return 1;
        }
        int need;
        uint32_t c;
        uint8_t lo = 0x80, hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) {
                need = 1;
                c = b & 0x1f;
        } else if (b >= 0xe0 && b <= 0xef) {
                need = 2;
                c = b & 0x0f;
                if (b == 0xe0)
                        lo = 0xa0;
        } else if (b >= 0xf0 && b <= 0xf4) {
                need = 3;
                c = b & 0x07;
                if (b == 0xf0)
                        lo = 0x90;
                else if (b == 0xf4)
                        hi = 0x8f;
        } else {
                *cp = 0xfffd;
                return 1;
        }
        int i = 1;
        for (; i <= need; i++) {
                if (i >= len || p[i] < lo || p[i] > hi) {
                        *cp = 0xfffd;
                        return i;
                }
                c = (c << 6) | (p[i] & 0x3f);
                lo = 0x80;
                hi = 0xbf;
        }
        *cp = c >= 0xd800 && c <= 0xdfff ? 0xfffd : c;
        return i;
}

int32_t group_java_string_hash(struct kstr s)
{
        uint32_t h = 0;
        const uint8_t *p = (const uint8_t *)s.ptr;
        int32_t at = 0;
        while (at < s.len) {
                uint32_t cp;
                int n = utf8_next(p + at, s.len - at, &cp);
                assert(n >= 1 && n <= 4 && at + n <= s.len);
                at += n;
                if (cp >= 0x10000) {
                        cp -= 0x10000;
                        h = 31 * h + (0xd800 | (cp >> 10));
                        h = 31 * h + (0xdc00 | (cp & 0x3ff));
                } else {
                        h = 31 * h + cp;
                }
        }
        return (int32_t)h;
}

int32_t group_partition_of(struct kstr group_id, int32_t partition_count)
{
        assert(partition_count > 0);
        int32_t h = group_java_string_hash(group_id);
        /* Kafka's Utils.abs: Integer.MIN_VALUE maps to 0, not to itself. */
        int32_t a = h == INT32_MIN ? 0 : (h < 0 ? -h : h);
        int32_t p = a % partition_count;
        assert(p >= 0 && p < partition_count);
        return p;
}
