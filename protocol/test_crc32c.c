/*
 * test_crc32c.c - CRC-32C: published check values, software against
 * hardware on every length and alignment that matters, and streaming
 * against one-shot.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/crc32c.h"

/* xorshift64*, so a failure reproduces from the seed printed with it. */
static uint64_t test_rng_state;

static uint64_t test_rand(void)
{
        test_rng_state ^= test_rng_state >> 12;
        test_rng_state ^= test_rng_state << 25;
        test_rng_state ^= test_rng_state >> 27;
        return test_rng_state * 0x2545f4914f6cdd1dull;
}

static void test_fill_random(uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                p[i] = (uint8_t)(test_rand() >> 56);
}

/* Bit-at-a-time reference, straight from the definition. */
static uint32_t test_crc32c_bitwise(const uint8_t *p, size_t len)
{
        uint32_t c = 0xffffffffu;

        for (size_t i = 0; i < len; i++) {
                c ^= p[i];
                for (int k = 0; k < 8; k++)
                        c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        }
        return ~c;
}

Test(crc32c, check_value)
{
        cr_assert_eq(crc32c("123456789", 9), 0xe3069283u);
        cr_assert_eq(crc32c_update_sw(0, "123456789", 9), 0xe3069283u);
        if (crc32c_has_hw())
                cr_assert_eq(crc32c_update_hw(0, "123456789", 9), 0xe3069283u);
}

/* Vectors from RFC 3720 (iSCSI), appendix B.4. */
Test(crc32c, rfc3720_vectors)
{
        uint8_t buf[48];

        memset(buf, 0, 32);
        cr_assert_eq(crc32c(buf, 32), 0x8a9136aau);
        memset(buf, 0xff, 32);
        cr_assert_eq(crc32c(buf, 32), 0x62a8ab43u);
        for (int i = 0; i < 32; i++)
                buf[i] = (uint8_t)i;
        cr_assert_eq(crc32c(buf, 32), 0x46dd794eu);
        for (int i = 0; i < 32; i++)
                buf[i] = (uint8_t)(31 - i);
        cr_assert_eq(crc32c(buf, 32), 0x113fdb5cu);

        static const uint8_t iscsi_read[48] = {
                0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
                0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        };
        cr_assert_eq(crc32c(iscsi_read, sizeof(iscsi_read)), 0xd9963a56u);
}

Test(crc32c, empty_input_keeps_crc)
{
        cr_assert_eq(crc32c(NULL, 0), 0);
        cr_assert_eq(crc32c_update(0x12345678u, "", 0), 0x12345678u);
        cr_assert_eq(crc32c_update_sw(0x12345678u, NULL, 0), 0x12345678u);
}

Test(crc32c, software_matches_bitwise_reference)
{
        uint8_t buf[300];

        test_rng_state = 0x9e3779b97f4a7c15ull;
        test_fill_random(buf, sizeof(buf));
        for (size_t len = 0; len <= sizeof(buf); len++)
                cr_assert_eq(crc32c_update_sw(0, buf, len), test_crc32c_bitwise(buf, len),
                             "length %zu", len);
}

/* Every length 0..1024 at every alignment 0..7, plus lengths long enough
 * to reach both three-way block sizes, with random tails. */
Test(crc32c, hardware_matches_software)
{
        if (!crc32c_has_hw()) {
                cr_skip_test("no SSE4.2 on this CPU");
                return;
        }
        size_t cap = 3 * 8192 * 4 + 64;
        uint8_t *buf = malloc(cap);

        cr_assert_not_null(buf);
        test_rng_state = 0xdeadbeefcafef00dull;
        test_fill_random(buf, cap);
        for (size_t len = 0; len <= 1024; len++) {
                for (size_t align = 0; align < 8; align++) {
                        uint32_t seed = (uint32_t)test_rand();

                        cr_assert_eq(crc32c_update_hw(seed, buf + align, len),
                                     crc32c_update_sw(seed, buf + align, len),
                                     "length %zu alignment %zu", len, align);
                }
        }
        for (int i = 0; i < 200; i++) {
                size_t align = test_rand() % 64;
                size_t len = test_rand() % (cap - 64);

                cr_assert_eq(crc32c_update_hw(0, buf + align, len), crc32c_update_sw(0, buf + align, len),
                             "length %zu alignment %zu", len, align);
        }
        /* Exactly at and around the block boundaries. */
        static const size_t edges[] = { 767, 768, 769, 24575, 24576, 24577, 24576 + 768, 49152 + 3 };
        for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
                cr_assert_eq(crc32c_update_hw(0, buf + 1, edges[i]), crc32c_update_sw(0, buf + 1, edges[i]),
                             "length %zu", edges[i]);
        free(buf);
}

Test(crc32c, streaming_equals_one_shot)
{
        size_t cap = 70000;
        uint8_t *buf = malloc(cap);

        cr_assert_not_null(buf);
        test_rng_state = 0x0123456789abcdefull;
        test_fill_random(buf, cap);
        uint32_t whole = crc32c(buf, cap);

        cr_assert_eq(whole, crc32c_update_sw(0, buf, cap));
        for (int i = 0; i < 100; i++) {
                size_t at = 0;
                uint32_t c = 0;

                while (at < cap) {
                        size_t n = test_rand() % (i < 50 ? 64 : 30000);

                        if (n > cap - at)
                                n = cap - at;
                        c = crc32c_update(c, buf + at, n);
                        at += n;
                }
                cr_assert_eq(c, whole, "split pattern %d", i);
        }
        /* Mixing implementations mid-stream is fine too. */
        uint32_t c = crc32c_update_sw(0, buf, 1000);
        c = crc32c_update(c, buf + 1000, cap - 1000);
        cr_assert_eq(c, whole);
        free(buf);
}

Test(crc32c, detects_single_bit_flips)
{
        uint8_t buf[256];

        test_rng_state = 42;
        test_fill_random(buf, sizeof(buf));
        uint32_t good = crc32c(buf, sizeof(buf));

        for (size_t bit = 0; bit < sizeof(buf) * 8; bit++) {
                buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                cr_assert_neq(crc32c(buf, sizeof(buf)), good, "bit %zu", bit);
                buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
}
