/*
 * uuid.c - random uuids and their text forms; see uuid.h for the contract.
 *
 * Invariant: uuid_to_base64 and uuid_from_base64 are exact inverses on every
 * uuid, so an id compares equal as text exactly when it does as bytes.
 */
#include "uuid.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char uuid_b64_alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Bounds the retry loop; the chance of needing a second draw is ~1/64. */
#define UUID_DRAWS_MAX 1000

bool uuid_is_reserved(struct kuuid u)
{
        /* Zero (Uuid.ZERO_UUID, DirectoryId.UNASSIGNED), one (Uuid.ONE_UUID,
         * the metadata topic) and the rest of DirectoryId's reserved range:
         * most significant half zero, least significant half below 100. */
        for (int i = 0; i < 15; i++)
                if (u.b[i] != 0)
                        return false;
        return u.b[15] < 100;
}

static int uuid_fill_random(uint8_t *buf, size_t len_bytes)
{
        size_t done = 0;
        int attempts = 0;

        while (done < len_bytes) {
                ssize_t n = getrandom(buf + done, len_bytes - done, 0);
                if (n < 0) {
                        if (errno == EINTR && ++attempts < UUID_DRAWS_MAX)
                                continue;
                        return -errno;
                }
                done += (size_t)n;
        }
        return 0;
}

int uuid_random(struct kuuid *out)
{
        assert(out);
        for (int draw = 0; draw < UUID_DRAWS_MAX; draw++) {
                struct kuuid u;
                int rc = uuid_fill_random(u.b, sizeof(u.b));
                if (rc < 0)
                        return rc;
                /* RFC 4122 version 4, variant 10xx: what java.util.UUID's
                 * randomUUID produces and Kafka's randomUuid wraps. */
                u.b[6] = (uint8_t)((u.b[6] & 0x0f) | 0x40);
                u.b[8] = (uint8_t)((u.b[8] & 0x3f) | 0x80);
                if (uuid_is_reserved(u))
                        continue;
                /* The first base64 character is the top six bits; '-' is 62. */
                if ((u.b[0] >> 2) == 62)
                        continue;
                *out = u;
                return 0;
        }
        return -EAGAIN;
}

void uuid_to_base64(struct kuuid u, char out[UUID_BASE64_BYTES])
{
        size_t o = 0;

        for (size_t i = 0; i < 16; i += 3) {
                uint32_t v = (uint32_t)u.b[i] << 16;
                size_t chars = 2;
                if (i + 1 < 16) {
                        v |= (uint32_t)u.b[i + 1] << 8;
                        chars = 3;
                }
                if (i + 2 < 16) {
                        v |= u.b[i + 2];
                        chars = 4;
                }
                for (size_t c = 0; c < chars; c++)
                        out[o++] = uuid_b64_alphabet[(v >> (18 - 6 * c)) & 63];
        }
        assert(o == UUID_BASE64_BYTES - 1);
        out[o] = '\0';
}

static int uuid_b64_value(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

bool uuid_from_base64(const char *s, size_t len, struct kuuid *out)
{
        assert(s || len == 0);
        assert(out);
        if (len == 24 && s[22] == '=' && s[23] == '=')
                len = 22;
        if (len != 22)
                return false;

        struct kuuid u;
        uint32_t acc = 0;
        int bits = 0;
        size_t o = 0;
        for (size_t i = 0; i < 22; i++) {
                int v = uuid_b64_value(s[i]);
                if (v < 0)
                        return false;
                acc = acc << 6 | (uint32_t)v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        u.b[o++] = (uint8_t)(acc >> bits);
                        acc &= (1u << bits) - 1;
                }
        }
        assert(o == 16 && bits == 4);
        if (acc != 0)
                return false;   /* non-canonical: stray low bits in the last char */
        *out = u;
        return true;
}

void uuid_to_hex(struct kuuid u, char out[UUID_HEX_BYTES])
{
        static const char digits[] = "0123456789abcdef";

        for (size_t i = 0; i < 16; i++) {
                out[2 * i] = digits[u.b[i] >> 4];
                out[2 * i + 1] = digits[u.b[i] & 15];
        }
        out[32] = '\0';
}
