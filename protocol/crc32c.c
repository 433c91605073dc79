/*
 * crc32c.c - CRC-32C in software (slicing-by-8) and with SSE4.2.
 *
 * Both implementations work on the raw, reflected CRC register; the public
 * functions invert on entry and exit, which is what makes the streaming
 * form (crc in == crc out of the previous call) work.
 *
 * Software: table[0] advances the register by one byte; table[k][b] is the
 * effect of byte b followed by k zero bytes, so eight table lookups advance
 * the register by eight bytes at once.
 *
 * Hardware: the crc32 instruction has a latency of three cycles but a
 * throughput of one per cycle, so one dependent chain leaves two thirds of
 * the unit idle. Long buffers are cut into three consecutive blocks whose
 * CRCs are computed side by side, each chain starting from zero, and then
 * joined: CRC is linear, so
 *     crc(s, A||B) = shift(crc(s, A), |B|) ^ crc(0, B)
 * where shift(c, n) is the register after n zero bytes, itself a linear map
 * of c. That map, for the two block sizes used, is tabulated four bytes at a
 * time (shift_long, shift_short) the same way table[] is.
 *
 * Invariants: the tables are written once, under pthread_once, before any
 * checksum is computed; afterwards they are read-only.
 */
#include "crc32c.h"

#include <assert.h>
#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#define CRC32C_HAVE_X86 1
#else
#define CRC32C_HAVE_X86 0
#endif

#define CRC32C_POLY 0x82f63b78u         /* Castagnoli, reflected */

/* Block sizes for the three-way interleave: long blocks amortise the join,
 * short blocks pick up what is left of a buffer too small for long ones. */
#define CRC32C_LONG_BYTES 8192u
#define CRC32C_SHORT_BYTES 256u

static uint32_t crc32c_table[8][256];
static uint32_t crc32c_shift_long[4][256];
static uint32_t crc32c_shift_short[4][256];
static bool crc32c_hw_ok;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

/* The register after n zero bytes, one table step at a time (init only). */
static uint32_t crc32c_zeros_slow(uint32_t c, size_t n)
{
        while (n--)
                c = crc32c_table[0][c & 0xff] ^ (c >> 8);
        return c;
}

/* Tabulates c -> crc32c_zeros_slow(c, n) byte by byte: the map is linear,
 * so it is fixed by its action on the 32 unit vectors. */
static void crc32c_build_shift(uint32_t shift[4][256], size_t n)
{
        uint32_t column[32];

        for (int i = 0; i < 32; i++)
                column[i] = crc32c_zeros_slow(1u << i, n);
        for (int k = 0; k < 4; k++) {
                for (int b = 0; b < 256; b++) {
                        uint32_t v = 0;

                        for (int j = 0; j < 8; j++)
                                if (b & (1 << j))
                                        v ^= column[8 * k + j];
                        shift[k][b] = v;
                }
        }
}

static void crc32c_init(void)
{
        for (uint32_t n = 0; n < 256; n++) {
                uint32_t c = n;

                for (int i = 0; i < 8; i++)
                        c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
                crc32c_table[0][n] = c;
        }
        for (int k = 1; k < 8; k++) {
                for (int n = 0; n < 256; n++) {
                        uint32_t c = crc32c_table[k - 1][n];

                        crc32c_table[k][n] = crc32c_table[0][c & 0xff] ^ (c >> 8);
                }
        }
        crc32c_build_shift(crc32c_shift_long, CRC32C_LONG_BYTES);
        crc32c_build_shift(crc32c_shift_short, CRC32C_SHORT_BYTES);
#if CRC32C_HAVE_X86
        __builtin_cpu_init();
        crc32c_hw_ok = __builtin_cpu_supports("sse4.2");
#endif
        /* The byte 0x80 is x^0 after reflection: its row is the polynomial. */
        assert(crc32c_table[0][0x80] == CRC32C_POLY);
}

static void crc32c_ensure_init(void)
{
        int rc = pthread_once(&crc32c_once, crc32c_init);

        assert(rc == 0);
        (void)rc;
}

static inline uint32_t crc32c_load_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t crc32c_raw_sw(uint32_t c, const uint8_t *p, size_t len)
{
        while (len >= 8) {
                uint32_t lo = crc32c_load_le32(p) ^ c;
                uint32_t hi = crc32c_load_le32(p + 4);

                c = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^
                    crc32c_table[5][(lo >> 16) & 0xff] ^ crc32c_table[4][lo >> 24] ^
                    crc32c_table[3][hi & 0xff] ^ crc32c_table[2][(hi >> 8) & 0xff] ^
                    crc32c_table[1][(hi >> 16) & 0xff] ^ crc32c_table[0][hi >> 24];
                p += 8;
                len -= 8;
        }
        while (len--)
                c = crc32c_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        return c;
}

uint32_t crc32c_update_sw(uint32_t crc, const void *buf, size_t len)
{
        assert(buf != NULL || len == 0);
        crc32c_ensure_init();
        if (len == 0)
                return crc;
        return ~crc32c_raw_sw(~crc, buf, len);
}

bool crc32c_has_hw(void)
{
        crc32c_ensure_init();
        return crc32c_hw_ok;
}

#if CRC32C_HAVE_X86

static inline uint32_t crc32c_shift(const uint32_t shift[4][256], uint32_t c)
{
        return shift[0][c & 0xff] ^ shift[1][(c >> 8) & 0xff] ^
               shift[2][(c >> 16) & 0xff] ^ shift[3][c >> 24];
}

static inline uint64_t crc32c_load64(const uint8_t *p)
{
        uint64_t v;

        memcpy(&v, p, sizeof(v));
        return v;
}

/* Three chains over consecutive blocks of block_bytes, joined by shift. */
__attribute__((target("sse4.2")))
static uint32_t crc32c_raw_hw_3way(uint32_t c, const uint8_t **pp, size_t *lenp,
                                   size_t block_bytes, const uint32_t shift[4][256])
{
        const uint8_t *p = *pp;
        size_t len = *lenp;

        assert(block_bytes % 8 == 0);
        while (len >= 3 * block_bytes) {
                uint64_t c0 = c, c1 = 0, c2 = 0;
                const uint8_t *end = p + block_bytes;

                do {
                        c0 = _mm_crc32_u64(c0, crc32c_load64(p));
                        c1 = _mm_crc32_u64(c1, crc32c_load64(p + block_bytes));
                        c2 = _mm_crc32_u64(c2, crc32c_load64(p + 2 * block_bytes));
                        p += 8;
                } while (p < end);
                c = crc32c_shift(shift, (uint32_t)c0) ^ (uint32_t)c1;
                c = crc32c_shift(shift, c) ^ (uint32_t)c2;
                p += 2 * block_bytes;
                len -= 3 * block_bytes;
        }
        *pp = p;
        *lenp = len;
        return c;
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_raw_hw(uint32_t c, const uint8_t *p, size_t len)
{
        /* Align so the 8-byte loads of the main loops never split a line. */
        while (len > 0 && ((uintptr_t)p & 7) != 0) {
                c = _mm_crc32_u8(c, *p++);
                len--;
        }
        c = crc32c_raw_hw_3way(c, &p, &len, CRC32C_LONG_BYTES, crc32c_shift_long);
        c = crc32c_raw_hw_3way(c, &p, &len, CRC32C_SHORT_BYTES, crc32c_shift_short);

        uint64_t c64 = c;

        while (len >= 8) {
                c64 = _mm_crc32_u64(c64, crc32c_load64(p));
                p += 8;
                len -= 8;
        }
        c = (uint32_t)c64;
        while (len > 0) {
                c = _mm_crc32_u8(c, *p++);
                len--;
        }
        return c;
}

uint32_t crc32c_update_hw(uint32_t crc, const void *buf, size_t len)
{
        assert(buf != NULL || len == 0);
        crc32c_ensure_init();
        assert(crc32c_hw_ok);
        if (len == 0)
                return crc;
        return ~crc32c_raw_hw(~crc, buf, len);
}

#else

uint32_t crc32c_update_hw(uint32_t crc, const void *buf, size_t len)
{
        assert(!"crc32c_update_hw called on a CPU without crc32 instructions");
        return crc32c_update_sw(crc, buf, len);
}

#endif

uint32_t crc32c_update(uint32_t crc, const void *buf, size_t len)
{
        assert(buf != NULL || len == 0);
        crc32c_ensure_init();
        if (len == 0)
                return crc;
#if CRC32C_HAVE_X86
        if (crc32c_hw_ok)
                return ~crc32c_raw_hw(~crc, buf, len);
#endif
        return ~crc32c_raw_sw(~crc, buf, len);
}
