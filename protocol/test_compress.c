/*
 * test_compress.c - protocol/compress: round trips for every codec, size
 * and level; the bytes real clients write (golden vectors from Kafka 4.4's
 * Java client and from the Python modules kafka-python uses); the other
 * framings each codec must read; bounded decoding of bombs; truncated,
 * corrupted and random input refused without reading outside the buffer
 * (decoders are always handed an exactly-sized heap copy so ASan sees a
 * one-byte overread, under `make asan-unit`).
 *
 * The kafka_java_* vectors were written by kafka-clients 4.4.0 itself:
 *   Compression.<codec>().build().wrapForOutput(new ByteBufferOutputStream(1024),
 *                                               RecordBatch.MAGIC_VALUE_V2)
 * with the default level, given PAYLOAD. The python_* vectors come from
 * Debian 12's python3-snappy 0.5.3 (snappy.compress: one raw block, as
 * librdkafka writes), python3-lz4 4.0.2 (lz4.frame.compress(p,
 * block_linked=False), as kafka-python calls it), python3-zstandard 0.20
 * (ZstdCompressor().compress) and gzip.compress(p, mtime=0).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LZ4F_STATIC_LINKING_ONLY
#include <lz4frame.h>
#include <snappy-c.h>
#define ZSTD_STATIC_LINKING_ONLY
#include <zlib.h>
#include <zstd.h>

#include "protocol/arena.h"
#include "protocol/compress.h"

#if defined(__SANITIZE_ADDRESS__)
#define IS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IS_ASAN 1
#endif
#endif
#ifndef IS_ASAN
#define IS_ASAN 0
#endif

#define KIB 1024u
#define MIB (1024u * 1024u)
#define BATCH_HEADER_BYTES 61

static const enum compress_codec all_codecs[] = {
        COMPRESS_CODEC_GZIP, COMPRESS_CODEC_SNAPPY, COMPRESS_CODEC_LZ4, COMPRESS_CODEC_ZSTD,
};
#define CODEC_COUNT (sizeof(all_codecs) / sizeof(all_codecs[0]))

/* ---- payloads ---- */

static uint64_t rng_next(uint64_t *s)
{
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * 0x2545F4914F6CDD1DULL;
}

enum fill {
        FILL_RANDOM,    /* incompressible */
        FILL_TEXT,      /* words: compressible, not trivially */
        FILL_ZEROS,     /* as compressible as it gets */
};

static uint8_t *make_payload(enum fill kind, size_t len, uint64_t seed)
{
        static const char *const words[] = {
                "kafka", "runnel", "broker", "record", "batch", "offset", "topic",
                "partition", "leader", "epoch", "consumer", "group", "{\"id\":", "}, ",
        };
        uint64_t s = seed * 0x9E3779B97F4A7C15ULL + 1;
        uint8_t *p = malloc(len + 1);
        cr_assert_not_null(p);
        size_t i = 0;
        switch (kind) {
        case FILL_RANDOM:
                while (i < len)
                        p[i++] = (uint8_t)(rng_next(&s) >> 56);
                break;
        case FILL_TEXT:
                while (i < len) {
                        const char *w = words[rng_next(&s) % (sizeof(words) / sizeof(words[0]))];
                        for (; *w && i < len; w++)
                                p[i++] = (uint8_t)*w;
                        if (i < len)
                                p[i++] = ' ';
                }
                break;
        case FILL_ZEROS:
                memset(p, 0, len);
                break;
        }
        return p;
}

/* The text every golden vector decodes to. */
static const char PAYLOAD[] = "runnel golden vector: the quick brown fox jumps over the lazy dog. "
                              "the quick brown fox jumps over the lazy dog.";
#define PAYLOAD_BYTES (sizeof(PAYLOAD) - 1)

/* ---- helpers ---- */

/* Decodes from an exactly-sized heap copy of src, so that ASan catches a
 * read past its end. */
static int decode_copy(enum compress_codec codec, const uint8_t *src, size_t len, size_t out_max_bytes,
                       struct arena *a, uint8_t **out, size_t *out_bytes)
{
        uint8_t *copy = malloc(len ? len : 1);
        cr_assert_not_null(copy);
        if (len)
                memcpy(copy, src, len);
        int rc = compress_decode(codec, copy, len, out_max_bytes, a, out, out_bytes);
        free(copy);
        return rc;
}

static void expect_decodes_to(enum compress_codec codec, const uint8_t *src, size_t len,
                              const void *want, size_t want_bytes, const char *what)
{
        struct arena a;
        arena_init(&a, 64 * MIB);
        uint8_t *out;
        size_t n;
        int rc = decode_copy(codec, src, len, want_bytes, &a, &out, &n);
        cr_assert_eq(rc, 0, "%s: decode failed %d", what, rc);
        cr_assert_eq(n, want_bytes, "%s: %zu bytes, want %zu", what, n, want_bytes);
        cr_assert(n == 0 || memcmp(out, want, n) == 0, "%s: wrong bytes", what);
        arena_free(&a);
}

static void expect_decode_error(enum compress_codec codec, const uint8_t *src, size_t len, int want_rc,
                                const char *what)
{
        struct arena a;
        arena_init(&a, 64 * MIB);
        uint8_t *out = (uint8_t *)1;
        size_t n = 1;
        int rc = decode_copy(codec, src, len, 16 * MIB, &a, &out, &n);
        cr_assert_eq(rc, want_rc, "%s: rc %d, want %d", what, rc, want_rc);
        cr_assert_null(out, "%s: *out set on error", what);
        cr_assert_eq(n, 0, "%s: *out_bytes set on error", what);
        arena_free(&a);
}

/* Encodes into a fresh arena the caller frees; returns a malloc'd copy. */
static uint8_t *encode_copy(enum compress_codec codec, int level, const uint8_t *src, size_t len,
                            size_t *out_bytes)
{
        struct arena a;
        arena_init(&a, 256 * MIB);
        uint8_t *out;
        int rc = compress_encode(codec, level, src, len, 0, &a, &out, out_bytes);
        cr_assert_eq(rc, 0, "%s level %d: encode of %zu bytes failed %d", compress_codec_name(codec), level,
                     len, rc);
        uint8_t *copy = malloc(*out_bytes);
        cr_assert_not_null(copy);
        memcpy(copy, out, *out_bytes);
        arena_free(&a);
        return copy;
}

/*
 * Encodes src with headroom, writes over the headroom as a batch header
 * would, decodes with out_max exactly the size (fits) and one less (-EFBIG),
 * and checks the bytes.
 */
static void round_trip(enum compress_codec codec, int level, const uint8_t *src, size_t len,
                       const char *what)
{
        struct arena a;
        arena_init(&a, 256 * MIB);
        uint8_t *enc;
        size_t enc_bytes;
        int rc = compress_encode(codec, level, src, len, BATCH_HEADER_BYTES, &a, &enc, &enc_bytes);
        cr_assert_eq(rc, 0, "%s %s level %d len %zu: encode failed %d", what, compress_codec_name(codec),
                     level, len, rc);
        cr_assert_geq(enc_bytes, 1);
        memset(enc - BATCH_HEADER_BYTES, 0xAB, BATCH_HEADER_BYTES);

        uint8_t *dec;
        size_t dec_bytes;
        rc = decode_copy(codec, enc, enc_bytes, len, &a, &dec, &dec_bytes);
        cr_assert_eq(rc, 0, "%s %s level %d len %zu: decode failed %d", what, compress_codec_name(codec),
                     level, len, rc);
        cr_assert_eq(dec_bytes, len, "%s %s level %d: %zu bytes back, want %zu", what,
                     compress_codec_name(codec), level, dec_bytes, len);
        cr_assert(len == 0 || memcmp(dec, src, len) == 0, "%s %s level %d len %zu: bytes differ", what,
                  compress_codec_name(codec), level, len);
        if (len > 0) {
                rc = decode_copy(codec, enc, enc_bytes, len - 1, &a, &dec, &dec_bytes);
                cr_assert_eq(rc, -EFBIG, "%s %s len %zu: out_max one short gave %d", what,
                             compress_codec_name(codec), len, rc);
        }
        arena_free(&a);
}

/* ---- API basics ---- */

Test(compress, names_levels_and_unknown_codecs)
{
        cr_assert_str_eq(compress_codec_name(COMPRESS_CODEC_GZIP), "gzip");
        cr_assert_str_eq(compress_codec_name(COMPRESS_CODEC_SNAPPY), "snappy");
        cr_assert_str_eq(compress_codec_name(COMPRESS_CODEC_LZ4), "lz4");
        cr_assert_str_eq(compress_codec_name(COMPRESS_CODEC_ZSTD), "zstd");
        cr_assert_null(compress_codec_name((enum compress_codec)5));

        cr_assert_eq(compress_level_default(COMPRESS_CODEC_GZIP), -1);
        cr_assert_eq(compress_level_default(COMPRESS_CODEC_LZ4), 9);
        cr_assert_eq(compress_level_default(COMPRESS_CODEC_ZSTD), 3);

        static const struct {
                enum compress_codec codec;
                int level;
                bool is_valid;
        } levels[] = {
                { COMPRESS_CODEC_GZIP, -1, true },  { COMPRESS_CODEC_GZIP, 1, true },
                { COMPRESS_CODEC_GZIP, 9, true },   { COMPRESS_CODEC_GZIP, 0, false },
                { COMPRESS_CODEC_GZIP, 10, false }, { COMPRESS_CODEC_GZIP, -2, false },
                { COMPRESS_CODEC_LZ4, 1, true },    { COMPRESS_CODEC_LZ4, 17, true },
                { COMPRESS_CODEC_LZ4, 0, false },   { COMPRESS_CODEC_LZ4, 18, false },
                { COMPRESS_CODEC_ZSTD, -131072, true }, { COMPRESS_CODEC_ZSTD, 22, true },
                { COMPRESS_CODEC_ZSTD, 0, true },   { COMPRESS_CODEC_ZSTD, 23, false },
                { COMPRESS_CODEC_ZSTD, -131073, false }, { COMPRESS_CODEC_SNAPPY, 12345, true },
                { COMPRESS_CODEC_NONE, 0, false },  { (enum compress_codec)7, 0, false },
        };
        struct arena a;
        arena_init(&a, MIB);
        for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
                cr_assert_eq(compress_level_is_valid(levels[i].codec, levels[i].level), levels[i].is_valid,
                             "codec %d level %d", levels[i].codec, levels[i].level);
                uint8_t *out;
                size_t n;
                int rc = compress_encode(levels[i].codec, levels[i].level, (const uint8_t *)PAYLOAD,
                                         PAYLOAD_BYTES, 0, &a, &out, &n);
                cr_assert_eq(rc, levels[i].is_valid ? 0 : -EINVAL, "codec %d level %d: rc %d",
                             levels[i].codec, levels[i].level, rc);
        }

        static const int not_codecs[] = { 0, 5, 6, 7, -1 };
        for (size_t i = 0; i < sizeof(not_codecs) / sizeof(not_codecs[0]); i++) {
                uint8_t *out = (uint8_t *)1;
                size_t n = 1;
                cr_assert_eq(compress_decode((enum compress_codec)not_codecs[i], (const uint8_t *)PAYLOAD,
                                             PAYLOAD_BYTES, MIB, &a, &out, &n), -EINVAL);
                cr_assert_null(out);
                cr_assert_eq(n, 0);
        }
        arena_free(&a);
}

Test(compress, empty_input_is_malformed)
{
        for (size_t c = 0; c < CODEC_COUNT; c++)
                expect_decode_error(all_codecs[c], NULL, 0, -EBADMSG, compress_codec_name(all_codecs[c]));
}

/* ---- round trips ---- */

Test(compress, round_trip_every_codec_and_size, .timeout = 120)
{
        static const size_t sizes[] = {
                0, 1, 2, 100, 32 * KIB - 1, 32 * KIB, 32 * KIB + 1, 64 * KIB - 1,
                64 * KIB, 64 * KIB + 1, 200 * KIB + 3, MIB,
        };
        static const enum fill fills[] = { FILL_RANDOM, FILL_TEXT, FILL_ZEROS };
        static const char *const fill_names[] = { "random", "text", "zeros" };
        for (size_t f = 0; f < 3; f++) {
                for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                        uint8_t *p = make_payload(fills[f], sizes[s], s + 1);
                        for (size_t c = 0; c < CODEC_COUNT; c++)
                                round_trip(all_codecs[c], compress_level_default(all_codecs[c]), p,
                                           sizes[s], fill_names[f]);
                        free(p);
                }
        }
}

Test(compress, round_trip_every_level, .timeout = 120)
{
        size_t len = 100 * KIB + 7;
        uint8_t *p = make_payload(FILL_TEXT, len, 42);
        for (int level = 1; level <= 9; level++)
                round_trip(COMPRESS_CODEC_GZIP, level, p, len, "gzip level");
        round_trip(COMPRESS_CODEC_GZIP, -1, p, len, "gzip default");
        for (int level = 1; level <= 17; level++)
                round_trip(COMPRESS_CODEC_LZ4, level, p, len, "lz4 level");
        static const int zstd_levels[] = { -131072, -100, -5, -1, 0, 1, 3, 9, 15, 19, 22 };
        for (size_t i = 0; i < sizeof(zstd_levels) / sizeof(zstd_levels[0]); i++)
                round_trip(COMPRESS_CODEC_ZSTD, zstd_levels[i], p, len, "zstd level");

        /* Levels must reach the library: a higher level is smaller here. */
        size_t fast_bytes, best_bytes;
        free(encode_copy(COMPRESS_CODEC_GZIP, 1, p, len, &fast_bytes));
        free(encode_copy(COMPRESS_CODEC_GZIP, 9, p, len, &best_bytes));
        cr_assert_lt(best_bytes, fast_bytes, "gzip 9 %zu, gzip 1 %zu", best_bytes, fast_bytes);
        free(encode_copy(COMPRESS_CODEC_ZSTD, 1, p, len, &fast_bytes));
        free(encode_copy(COMPRESS_CODEC_ZSTD, 19, p, len, &best_bytes));
        cr_assert_lt(best_bytes, fast_bytes, "zstd 19 %zu, zstd 1 %zu", best_bytes, fast_bytes);
        free(p);
}

/* ---- what encode writes ---- */

static uint32_t load_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t load_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* GZIPOutputStream's header: 1f 8b 08 00, mtime 0, xfl, os 0xff; one member. */
Test(compress, gzip_encode_writes_one_java_style_member)
{
        size_t len = 70 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 3);
        size_t n;
        uint8_t *enc = encode_copy(COMPRESS_CODEC_GZIP, -1, p, len, &n);
        static const uint8_t head[] = { 0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0 };
        cr_assert(memcmp(enc, head, sizeof(head)) == 0);
        cr_assert_eq(enc[9], 0xff, "os byte %#x", enc[9]);
        cr_assert_eq(load_le32(enc + n - 4), len, "ISIZE");
        cr_assert_eq(load_le32(enc + n - 8), (uint32_t)crc32(0, p, (uInt)len), "CRC-32");
        free(enc);
        free(p);
}

/* snappy-java's SnappyOutputStream: the 16-byte header, then one chunk per
 * 32 KiB of input, each a big-endian length and a raw snappy block. */
Test(compress, snappy_encode_writes_xerial_32k_chunks)
{
        static const uint8_t header[16] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1 };
        size_t len = 3 * 32 * KIB + 1000;
        uint8_t *p = make_payload(FILL_RANDOM, len, 4);
        size_t n;
        uint8_t *enc = encode_copy(COMPRESS_CODEC_SNAPPY, 0, p, len, &n);
        cr_assert(memcmp(enc, header, sizeof(header)) == 0);
        size_t pos = 16, chunks = 0, total = 0;
        while (pos < n) {
                uint32_t clen = load_be32(enc + pos);
                pos += 4;
                cr_assert_leq(clen, n - pos);
                size_t ulen;
                cr_assert_eq(snappy_uncompressed_length((const char *)enc + pos, clen, &ulen), SNAPPY_OK);
                cr_assert_eq(ulen, chunks < 3 ? 32 * KIB : 1000, "chunk %zu holds %zu", chunks, ulen);
                total += ulen;
                pos += clen;
                chunks++;
        }
        cr_assert_eq(pos, n);
        cr_assert_eq(chunks, 4);
        cr_assert_eq(total, len);

        /* Empty input: the header alone, as snappy-java writes. */
        free(enc);
        enc = encode_copy(COMPRESS_CODEC_SNAPPY, 0, p, 0, &n);
        cr_assert_eq(n, 16);
        cr_assert(memcmp(enc, header, sizeof(header)) == 0);
        expect_decodes_to(COMPRESS_CODEC_SNAPPY, enc, n, "", 0, "xerial header only");
        free(enc);
        free(p);
}

/* Kafka's Lz4BlockOutputStream header 04 22 4d 18 60 40 82; 64 KiB blocks,
 * incompressible ones stored raw; end mark, no content checksum. */
Test(compress, lz4_encode_writes_kafka_frame)
{
        static const uint8_t header[7] = { 0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82 };
        size_t len = 200 * KIB;
        uint8_t *p = make_payload(FILL_RANDOM, len, 5);
        for (int level = 1; level <= 17; level += 8) {
                size_t n;
                uint8_t *enc = encode_copy(COMPRESS_CODEC_LZ4, level, p, len, &n);
                cr_assert(memcmp(enc, header, sizeof(header)) == 0, "level %d header", level);
                size_t pos = 7, blocks = 0;
                for (;;) {
                        uint32_t h = load_le32(enc + pos);
                        pos += 4;
                        if (h == 0)
                                break;
                        cr_assert(h & 0x80000000u, "random data stored raw");
                        cr_assert_leq(h & 0x7fffffffu, 64 * KIB);
                        pos += h & 0x7fffffffu;
                        blocks++;
                }
                cr_assert_eq(pos, n, "nothing after the end mark");
                cr_assert_eq(blocks, 4);
                free(enc);
        }
        free(p);
}

/* Kafka's level 9 is lz4-java's fast compressor: LZ4F level 0, byte for
 * byte; other levels are HC at that level. */
Test(compress, lz4_level_9_is_the_fast_compressor)
{
        size_t len = 150 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 6);
        static const struct { int kafka_level, lz4f_level; } map[] = { { 9, 0 }, { 4, 4 }, { 12, 12 } };
        for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
                LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
                prefs.frameInfo.blockSizeID = LZ4F_max64KB;
                prefs.frameInfo.blockMode = LZ4F_blockIndependent;
                prefs.compressionLevel = map[i].lz4f_level;
                size_t cap = LZ4F_compressFrameBound(len, &prefs);
                uint8_t *want = malloc(cap);
                size_t want_bytes = LZ4F_compressFrame(want, cap, p, len, &prefs);
                cr_assert(!LZ4F_isError(want_bytes));
                size_t n;
                uint8_t *enc = encode_copy(COMPRESS_CODEC_LZ4, map[i].kafka_level, p, len, &n);
                cr_assert_eq(n, want_bytes, "level %d: %zu bytes, LZ4F level %d gives %zu", map[i].kafka_level,
                             n, map[i].lz4f_level, want_bytes);
                cr_assert(memcmp(enc, want, n) == 0, "level %d", map[i].kafka_level);
                free(want);
                free(enc);
        }
        free(p);
}

Test(compress, zstd_encode_records_content_size)
{
        size_t len = 300 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 7);
        size_t n;
        uint8_t *enc = encode_copy(COMPRESS_CODEC_ZSTD, 3, p, len, &n);
        cr_assert_eq(load_le32(enc), 0xFD2FB528u);
        cr_assert_eq(ZSTD_getFrameContentSize(enc, n), len);
        cr_assert_eq(ZSTD_findFrameCompressedSize(enc, n), n, "one frame");
        free(enc);
        free(p);
}

/* ---- golden vectors: what real clients write ---- */

static const uint8_t kafka_java_gzip[85] = {
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x2b, 0x2a,
        0xcd, 0xcb, 0x4b, 0xcd, 0x51, 0x48, 0xcf, 0xcf, 0x49, 0x49, 0xcd, 0x53,
        0x28, 0x4b, 0x4d, 0x2e, 0xc9, 0x2f, 0xb2, 0x52, 0x28, 0xc9, 0x48, 0x55,
        0x28, 0x2c, 0xcd, 0x4c, 0xce, 0x56, 0x48, 0x2a, 0xca, 0x2f, 0xcf, 0x53,
        0x48, 0xcb, 0xaf, 0x50, 0xc8, 0x2a, 0xcd, 0x2d, 0x28, 0x56, 0xc8, 0x2f,
        0x4b, 0x2d, 0x02, 0x4b, 0xe7, 0x24, 0x56, 0x55, 0x2a, 0xa4, 0xe4, 0xa7,
        0xeb, 0x91, 0xa4, 0x18, 0x00, 0xa1, 0x31, 0xd3, 0x0b, 0x6f, 0x00, 0x00,
        0x00,
};
static const uint8_t kafka_java_snappy[90] = {
        0x82, 0x53, 0x4e, 0x41, 0x50, 0x50, 0x59, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x46, 0x6f, 0xd0, 0x72, 0x75,
        0x6e, 0x6e, 0x65, 0x6c, 0x20, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x20,
        0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x3a, 0x20, 0x74, 0x68, 0x65, 0x20,
        0x71, 0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72, 0x6f, 0x77, 0x6e, 0x20,
        0x66, 0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70, 0x73, 0x20, 0x6f, 0x76,
        0x65, 0x72, 0x20, 0x01, 0x1f, 0x20, 0x6c, 0x61, 0x7a, 0x79, 0x20, 0x64,
        0x6f, 0x67, 0x2e, 0xb2, 0x2d, 0x00,
};
static const uint8_t kafka_java_lz4[93] = {
        0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82, 0x4e, 0x00, 0x00, 0x00, 0xf1,
        0x25, 0x72, 0x75, 0x6e, 0x6e, 0x65, 0x6c, 0x20, 0x67, 0x6f, 0x6c, 0x64,
        0x65, 0x6e, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x3a, 0x20, 0x74,
        0x68, 0x65, 0x20, 0x71, 0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72, 0x6f,
        0x77, 0x6e, 0x20, 0x66, 0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70, 0x73,
        0x20, 0x6f, 0x76, 0x65, 0x72, 0x1f, 0x00, 0x91, 0x6c, 0x61, 0x7a, 0x79,
        0x20, 0x64, 0x6f, 0x67, 0x2e, 0x0e, 0x00, 0x0f, 0x2d, 0x00, 0x10, 0x50,
        0x20, 0x64, 0x6f, 0x67, 0x2e, 0x00, 0x00, 0x00, 0x00,
};
/* zstd-jni streams: no content size (descriptor 0x00), 2 MiB window (0x58). */
static const uint8_t kafka_java_zstd[84] = {
        0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58, 0x44, 0x02, 0x00, 0xd4, 0x03, 0x72,
        0x75, 0x6e, 0x6e, 0x65, 0x6c, 0x20, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e,
        0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x3a, 0x20, 0x74, 0x68, 0x65,
        0x20, 0x71, 0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72, 0x6f, 0x77, 0x6e,
        0x20, 0x66, 0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70, 0x73, 0x20, 0x6f,
        0x76, 0x65, 0x72, 0x6c, 0x61, 0x7a, 0x79, 0x20, 0x64, 0x6f, 0x67, 0x2e,
        0x02, 0x00, 0x42, 0x65, 0x0e, 0x09, 0x41, 0x41, 0x01, 0x01, 0x00, 0x00,
};
static const uint8_t python_raw_snappy[70] = {
        0x6f, 0xd0, 0x72, 0x75, 0x6e, 0x6e, 0x65, 0x6c, 0x20, 0x67, 0x6f, 0x6c,
        0x64, 0x65, 0x6e, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x3a, 0x20,
        0x74, 0x68, 0x65, 0x20, 0x71, 0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72,
        0x6f, 0x77, 0x6e, 0x20, 0x66, 0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70,
        0x73, 0x20, 0x6f, 0x76, 0x65, 0x72, 0x20, 0x01, 0x1f, 0x20, 0x6c, 0x61,
        0x7a, 0x79, 0x20, 0x64, 0x6f, 0x67, 0x2e, 0xb2, 0x2d, 0x00,
};
/* FLG 0x68: independent blocks and a content size (111). */
static const uint8_t python_lz4_frame[101] = {
        0x04, 0x22, 0x4d, 0x18, 0x68, 0x40, 0x6f, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xf3, 0x4e, 0x00, 0x00, 0x00, 0xf1, 0x25, 0x72, 0x75, 0x6e,
        0x6e, 0x65, 0x6c, 0x20, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x20, 0x76,
        0x65, 0x63, 0x74, 0x6f, 0x72, 0x3a, 0x20, 0x74, 0x68, 0x65, 0x20, 0x71,
        0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72, 0x6f, 0x77, 0x6e, 0x20, 0x66,
        0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70, 0x73, 0x20, 0x6f, 0x76, 0x65,
        0x72, 0x1f, 0x00, 0x91, 0x6c, 0x61, 0x7a, 0x79, 0x20, 0x64, 0x6f, 0x67,
        0x2e, 0x0e, 0x00, 0x0f, 0x2d, 0x00, 0x10, 0x50, 0x20, 0x64, 0x6f, 0x67,
        0x2e, 0x00, 0x00, 0x00, 0x00,
};
static const uint8_t python_zstd[81] = {
        0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x6f, 0x45, 0x02, 0x00, 0xd4, 0x03, 0x72,
        0x75, 0x6e, 0x6e, 0x65, 0x6c, 0x20, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e,
        0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x3a, 0x20, 0x74, 0x68, 0x65,
        0x20, 0x71, 0x75, 0x69, 0x63, 0x6b, 0x20, 0x62, 0x72, 0x6f, 0x77, 0x6e,
        0x20, 0x66, 0x6f, 0x78, 0x20, 0x6a, 0x75, 0x6d, 0x70, 0x73, 0x20, 0x6f,
        0x76, 0x65, 0x72, 0x6c, 0x61, 0x7a, 0x79, 0x20, 0x64, 0x6f, 0x67, 0x2e,
        0x02, 0x00, 0x42, 0x65, 0x0e, 0x09, 0x41, 0x41, 0x01,
};
static const uint8_t python_gzip[85] = {
        0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x2b, 0x2a,
        0xcd, 0xcb, 0x4b, 0xcd, 0x51, 0x48, 0xcf, 0xcf, 0x49, 0x49, 0xcd, 0x53,
        0x28, 0x4b, 0x4d, 0x2e, 0xc9, 0x2f, 0xb2, 0x52, 0x28, 0xc9, 0x48, 0x55,
        0x28, 0x2c, 0xcd, 0x4c, 0xce, 0x56, 0x48, 0x2a, 0xca, 0x2f, 0xcf, 0x53,
        0x48, 0xcb, 0xaf, 0x50, 0xc8, 0x2a, 0xcd, 0x2d, 0x28, 0x56, 0xc8, 0x2f,
        0x4b, 0x2d, 0x02, 0x4b, 0xe7, 0x24, 0x56, 0x55, 0x2a, 0xa4, 0xe4, 0xa7,
        0xeb, 0x91, 0xa4, 0x18, 0x00, 0xa1, 0x31, 0xd3, 0x0b, 0x6f, 0x00, 0x00,
        0x00,
};

struct golden {
        const char *name;
        enum compress_codec codec;
        const uint8_t *bytes;
        size_t len;
};

#define GOLDEN(codec, v) { #v, codec, v, sizeof(v) }
static const struct golden goldens[] = {
        GOLDEN(COMPRESS_CODEC_GZIP, kafka_java_gzip),
        GOLDEN(COMPRESS_CODEC_SNAPPY, kafka_java_snappy),
        GOLDEN(COMPRESS_CODEC_LZ4, kafka_java_lz4),
        GOLDEN(COMPRESS_CODEC_ZSTD, kafka_java_zstd),
        GOLDEN(COMPRESS_CODEC_SNAPPY, python_raw_snappy),
        GOLDEN(COMPRESS_CODEC_LZ4, python_lz4_frame),
        GOLDEN(COMPRESS_CODEC_ZSTD, python_zstd),
        GOLDEN(COMPRESS_CODEC_GZIP, python_gzip),
};
#define GOLDEN_COUNT (sizeof(goldens) / sizeof(goldens[0]))

Test(compress, golden_vectors_from_real_clients)
{
        cr_assert_eq(PAYLOAD_BYTES, 111);
        for (size_t i = 0; i < GOLDEN_COUNT; i++)
                expect_decodes_to(goldens[i].codec, goldens[i].bytes, goldens[i].len, PAYLOAD, PAYLOAD_BYTES,
                                  goldens[i].name);
}

/* What we write for PAYLOAD is what Kafka's Java client writes, where the
 * format leaves no choice: snappy (same library), lz4 at the default level
 * (fast compressor, Kafka's header), and gzip apart from the xfl byte. */
Test(compress, encode_matches_kafka_java_client)
{
        size_t n;
        uint8_t *enc = encode_copy(COMPRESS_CODEC_SNAPPY, 0, (const uint8_t *)PAYLOAD, PAYLOAD_BYTES, &n);
        cr_assert_eq(n, sizeof(kafka_java_snappy));
        cr_assert(memcmp(enc, kafka_java_snappy, n) == 0, "snappy differs from snappy-java");
        free(enc);

        enc = encode_copy(COMPRESS_CODEC_LZ4, 9, (const uint8_t *)PAYLOAD, PAYLOAD_BYTES, &n);
        cr_assert_eq(n, sizeof(kafka_java_lz4));
        cr_assert(memcmp(enc, kafka_java_lz4, n) == 0, "lz4 differs from Lz4BlockOutputStream");
        free(enc);

        enc = encode_copy(COMPRESS_CODEC_GZIP, -1, (const uint8_t *)PAYLOAD, PAYLOAD_BYTES, &n);
        cr_assert_eq(n, sizeof(kafka_java_gzip));
        cr_assert(memcmp(enc, kafka_java_gzip, 8) == 0 && enc[9] == kafka_java_gzip[9]);
        cr_assert(memcmp(enc + 10, kafka_java_gzip + 10, n - 10) == 0, "deflate data or trailer differs");
        free(enc);
}

/* ---- the other framings each decoder must read ---- */

static uint8_t *xerial_frame_chunks(const uint8_t *src, size_t len, const size_t *chunk_bytes,
                                    size_t chunk_count, bool is_version_le, size_t *out_bytes)
{
        size_t cap = 16 + chunk_count * 4 + snappy_max_compressed_length(len) + chunk_count * 64;
        uint8_t *out = malloc(cap);
        memcpy(out, "\x82SNAPPY\0", 8);
        static const uint8_t be1[4] = { 0, 0, 0, 1 }, le1[4] = { 1, 0, 0, 0 };
        memcpy(out + 8, is_version_le ? le1 : be1, 4);
        memcpy(out + 12, is_version_le ? le1 : be1, 4);
        size_t pos = 16, in = 0;
        for (size_t i = 0; i < chunk_count; i++) {
                size_t clen = cap - pos - 4;
                cr_assert_eq(snappy_compress((const char *)src + in, chunk_bytes[i], (char *)out + pos + 4, &clen),
                             SNAPPY_OK);
                out[pos] = (uint8_t)(clen >> 24);
                out[pos + 1] = (uint8_t)(clen >> 16);
                out[pos + 2] = (uint8_t)(clen >> 8);
                out[pos + 3] = (uint8_t)clen;
                pos += 4 + clen;
                in += chunk_bytes[i];
        }
        cr_assert_eq(in, len);
        *out_bytes = pos;
        return out;
}

Test(compress, snappy_reads_raw_and_every_xerial_variant)
{
        size_t len = 100 * KIB + 5;
        uint8_t *p = make_payload(FILL_TEXT, len, 8);

        /* librdkafka: one raw block over everything. */
        size_t raw_bytes = snappy_max_compressed_length(len);
        uint8_t *raw = malloc(raw_bytes);
        cr_assert_eq(snappy_compress((const char *)p, len, (char *)raw, &raw_bytes), SNAPPY_OK);
        expect_decodes_to(COMPRESS_CODEC_SNAPPY, raw, raw_bytes, p, len, "raw snappy");
        cr_assert_eq(load_be32(raw) == load_be32((const uint8_t *)"\x82SNA"), 0);

        /* xerial with uneven chunks, and with little-endian versions. */
        size_t chunks[] = { 1, 50000, 7, len - 50008 };
        size_t n;
        uint8_t *x = xerial_frame_chunks(p, len, chunks, 4, false, &n);
        expect_decodes_to(COMPRESS_CODEC_SNAPPY, x, n, p, len, "xerial, uneven chunks");
        free(x);
        x = xerial_frame_chunks(p, len, chunks, 4, true, &n);
        expect_decodes_to(COMPRESS_CODEC_SNAPPY, x, n, p, len, "xerial, little-endian versions");

        /* Two xerial streams back to back read as one. */
        size_t half = 40 * KIB;
        size_t n1, n2;
        uint8_t *x1 = encode_copy(COMPRESS_CODEC_SNAPPY, 0, p, half, &n1);
        uint8_t *x2 = encode_copy(COMPRESS_CODEC_SNAPPY, 0, p + half, len - half, &n2);
        uint8_t *cat = malloc(n1 + n2);
        memcpy(cat, x1, n1);
        memcpy(cat + n1, x2, n2);
        expect_decodes_to(COMPRESS_CODEC_SNAPPY, cat, n1 + n2, p, len, "concatenated xerial streams");

        /* A concatenated header cut short, or with a wrong magic tail. */
        expect_decode_error(COMPRESS_CODEC_SNAPPY, cat, n1 + 10, -EBADMSG, "cut concatenated header");
        cat[n1 + 5] ^= 0x20;
        expect_decode_error(COMPRESS_CODEC_SNAPPY, cat, n1 + n2, -EBADMSG, "bad concatenated magic");

        /* Stray bytes, empty chunks, chunks past the end. */
        uint8_t *bad = malloc(n + 4);
        memcpy(bad, x, n);
        for (size_t extra = 1; extra <= 3; extra++) {
                memset(bad + n, 0, extra);
                expect_decode_error(COMPRESS_CODEC_SNAPPY, bad, n + extra, -EBADMSG, "stray trailing bytes");
        }
        memset(bad + n, 0, 4);
        expect_decode_error(COMPRESS_CODEC_SNAPPY, bad, n + 4, -EBADMSG, "empty chunk");
        memcpy(bad, x, n);
        bad[16] = 0x10;
        expect_decode_error(COMPRESS_CODEC_SNAPPY, bad, n, -EBADMSG, "chunk past the end");

        free(bad);
        free(cat);
        free(x1);
        free(x2);
        free(x);
        free(raw);
        free(p);
}

static uint8_t *lz4f_frame(const uint8_t *src, size_t len, LZ4F_preferences_t *prefs, size_t *out_bytes)
{
        size_t cap = LZ4F_HEADER_SIZE_MAX + LZ4F_compressBound(len, prefs);
        uint8_t *out = malloc(cap);
        LZ4F_cctx *cctx;
        cr_assert(!LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)));
        size_t pos = LZ4F_compressBegin(cctx, out, cap, prefs);
        cr_assert(!LZ4F_isError(pos));
        size_t r = LZ4F_compressUpdate(cctx, out + pos, cap - pos, src, len, NULL);
        cr_assert(!LZ4F_isError(r));
        pos += r;
        r = LZ4F_compressEnd(cctx, out + pos, cap - pos, NULL);
        cr_assert(!LZ4F_isError(r));
        LZ4F_freeCompressionContext(cctx);
        *out_bytes = pos + r;
        return out;
}

Test(compress, lz4_reads_every_kafka_legal_frame_and_refuses_the_rest)
{
        size_t len = 600 * KIB + 11;
        uint8_t *p = make_payload(FILL_TEXT, len, 9);
        size_t n;

        /* Content size, both checksums, every block size. */
        for (int bs = LZ4F_max64KB; bs <= LZ4F_max4MB; bs++) {
                LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
                prefs.frameInfo.blockSizeID = (LZ4F_blockSizeID_t)bs;
                prefs.frameInfo.blockMode = LZ4F_blockIndependent;
                prefs.frameInfo.contentSize = len;
                prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
                prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
                uint8_t *f = lz4f_frame(p, len, &prefs, &n);
                expect_decodes_to(COMPRESS_CODEC_LZ4, f, n, p, len, "lz4 with checksums and size");

                /* A wrong content checksum and a wrong block checksum. */
                f[n - 1] ^= 1;
                expect_decode_error(COMPRESS_CODEC_LZ4, f, n, -EBADMSG, "content checksum");
                f[n - 1] ^= 1;
                uint32_t first = load_le32(f + 15) & 0x7fffffffu;
                f[15 + 4 + first] ^= 1;
                expect_decode_error(COMPRESS_CODEC_LZ4, f, n, -EBADMSG, "block checksum");
                free(f);
        }

        /* A content size that lies is corrupt, not too big: the header of a
         * frame of len - 100 bytes in front of the blocks of one of len. */
        {
                LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
                prefs.frameInfo.blockMode = LZ4F_blockIndependent;
                prefs.frameInfo.contentSize = len;
                uint8_t *f = lz4f_frame(p, len, &prefs, &n);
                size_t short_bytes;
                prefs.frameInfo.contentSize = len - 100;
                uint8_t *g = lz4f_frame(p, len - 100, &prefs, &short_bytes);
                memcpy(f, g, 15);
                expect_decode_error(COMPRESS_CODEC_LZ4, f, n, -EBADMSG, "content size too small");
                free(g);
                free(f);
        }

        /* Linked blocks: Kafka refuses them. */
        LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
        prefs.frameInfo.blockMode = LZ4F_blockLinked;
        uint8_t *f = lz4f_frame(p, len, &prefs, &n);
        expect_decode_error(COMPRESS_CODEC_LZ4, f, n, -EBADMSG, "linked blocks");
        free(f);

        /* Kafka's own frame plus one trailing byte, or a second frame. */
        size_t k;
        uint8_t *kf = encode_copy(COMPRESS_CODEC_LZ4, 9, p, len, &k);
        uint8_t *two = malloc(2 * k);
        memcpy(two, kf, k);
        memcpy(two + k, kf, k);
        expect_decode_error(COMPRESS_CODEC_LZ4, two, k + 1, -EBADMSG, "trailing byte");
        expect_decode_error(COMPRESS_CODEC_LZ4, two, 2 * k, -EBADMSG, "two frames");

        /* Header bits Kafka treats as reserved, a wrong header checksum,
         * a bad version, a skippable frame. */
        static const struct { size_t at; uint8_t xor; const char *what; } flips[] = {
                { 4, 0x01, "dictionary id flag" }, { 4, 0x02, "reserved FLG bit" },
                { 4, 0x80, "version 11" },         { 5, 0x01, "reserved BD bits" },
                { 5, 0x80, "reserved BD bit 7" },  { 5, 0x40, "block size id 0" },
                { 6, 0x01, "header checksum" },    { 0, 0x0a, "skippable frame magic" },
        };
        for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
                memcpy(two, kf, k);
                two[flips[i].at] ^= flips[i].xor;
                expect_decode_error(COMPRESS_CODEC_LZ4, two, k, -EBADMSG, flips[i].what);
        }
        free(two);
        free(kf);
        free(p);
}

/* Regression: liblz4 1.9.4 keeps a failed frame's remaining content size in
 * a reset context (lz4 issue #1227), which made the thread's context refuse
 * the next good frame without a content size: Kafka's own. */
Test(compress, lz4_good_frame_after_a_frame_that_failed_midway)
{
        size_t len = 300 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 15);
        LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        prefs.frameInfo.contentSize = len;
        prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
        size_t n;
        uint8_t *f = lz4f_frame(p, len, &prefs, &n);
        /* Corrupt the second block so the frame fails after its first. */
        size_t second = 15 + 4 + (load_le32(f + 15) & 0x7fffffffu) + 4;
        f[second + 4 + 10] ^= 0x55;
        for (int round = 0; round < 3; round++) {
                expect_decode_error(COMPRESS_CODEC_LZ4, f, n, -EBADMSG, "second block corrupt");
                expect_decodes_to(COMPRESS_CODEC_LZ4, kafka_java_lz4, sizeof(kafka_java_lz4), PAYLOAD,
                                  PAYLOAD_BYTES, "Kafka's frame after a failed one");
        }
        free(f);
        free(p);
}

Test(compress, zstd_reads_frames_with_and_without_size_skippable_and_concatenated)
{
        size_t len = 500 * KIB + 3;
        uint8_t *p = make_payload(FILL_TEXT, len, 10);
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        size_t cap = ZSTD_compressBound(len) + 64;
        uint8_t *f = malloc(2 * cap + 64);

        /* As zstd-jni streams: no content size; and with a checksum. */
        for (int checksum = 0; checksum <= 1; checksum++) {
                ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
                ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
                ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum);
                size_t n = ZSTD_compress2(cctx, f, cap, p, len);
                cr_assert(!ZSTD_isError(n));
                cr_assert_eq(ZSTD_getFrameContentSize(f, n), ZSTD_CONTENTSIZE_UNKNOWN);
                expect_decodes_to(COMPRESS_CODEC_ZSTD, f, n, p, len, "zstd without content size");
                if (checksum) {
                        f[n - 1] ^= 1;
                        expect_decode_error(COMPRESS_CODEC_ZSTD, f, n, -EBADMSG, "zstd checksum");
                }
        }

        /* A skippable frame, then two frames holding the two halves. */
        size_t pos = 0;
        static const uint8_t skippable[12] = { 0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 'r', 'u', 'n', 'l' };
        memcpy(f, skippable, sizeof(skippable));
        pos += sizeof(skippable);
        ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
        size_t r = ZSTD_compress2(cctx, f + pos, cap, p, len / 2);
        cr_assert(!ZSTD_isError(r));
        pos += r;
        r = ZSTD_compress2(cctx, f + pos, cap, p + len / 2, len - len / 2);
        cr_assert(!ZSTD_isError(r));
        pos += r;
        expect_decodes_to(COMPRESS_CODEC_ZSTD, f, pos, p, len, "skippable + two frames");
        expect_decodes_to(COMPRESS_CODEC_ZSTD, f, sizeof(skippable), "", 0, "a skippable frame alone");

        f[pos] = 0;
        expect_decode_error(COMPRESS_CODEC_ZSTD, f, pos + 1, -EBADMSG, "trailing byte");
        free(f);
        ZSTD_freeCCtx(cctx);
        free(p);
}

static uint8_t *gzip_member(const uint8_t *src, size_t len, int window_bits, gz_header *h, size_t *out_bytes)
{
        z_stream z;
        memset(&z, 0, sizeof(z));
        cr_assert_eq(deflateInit2(&z, 6, Z_DEFLATED, window_bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
        if (h)
                cr_assert_eq(deflateSetHeader(&z, h), Z_OK);
        size_t cap = deflateBound(&z, len);
        uint8_t *out = malloc(cap);
        z.next_in = (Bytef *)src;
        z.avail_in = (uInt)len;
        z.next_out = out;
        z.avail_out = (uInt)cap;
        cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
        *out_bytes = cap - z.avail_out;
        deflateEnd(&z);
        return out;
}

Test(compress, gzip_reads_members_like_java_and_only_gzip)
{
        size_t len = 90 * KIB + 1;
        uint8_t *p = make_payload(FILL_TEXT, len, 11);
        size_t n1, n2, n;

        /* Header fields a member may carry: name, comment, extra, header CRC. */
        gz_header h;
        memset(&h, 0, sizeof(h));
        h.name = (Bytef *)"records.bin";
        h.comment = (Bytef *)"runnel";
        h.extra = (Bytef *)"xy\2\0ab";
        h.extra_len = 6;
        h.hcrc = 1;
        h.os = 3;
        uint8_t *m1 = gzip_member(p, 30 * KIB, 15 + 16, &h, &n1);
        expect_decodes_to(COMPRESS_CODEC_GZIP, m1, n1, p, 30 * KIB, "member with every header field");

        /* Concatenated members read as one stream (GZIPInputStream). */
        uint8_t *m2 = gzip_member(p + 30 * KIB, len - 30 * KIB, 15 + 16, NULL, &n2);
        uint8_t *cat = malloc(n1 + n2 + 64);
        memcpy(cat, m1, n1);
        memcpy(cat + n1, m2, n2);
        expect_decodes_to(COMPRESS_CODEC_GZIP, cat, n1 + n2, p, len, "two members");

        /* Bytes after the last member that are not a member are ignored;
         * ones that start like a member must be one. */
        memcpy(cat + n1 + n2, "\0\0\0garbage", 10);
        expect_decodes_to(COMPRESS_CODEC_GZIP, cat, n1 + n2 + 10, p, len, "junk after the members");
        memcpy(cat + n1 + n2, "\x1f\x8b\x08garbage", 10);
        expect_decode_error(COMPRESS_CODEC_GZIP, cat, n1 + n2 + 10, -EBADMSG, "broken third member");
        expect_decode_error(COMPRESS_CODEC_GZIP, cat, n1 + n2 - 1, -EBADMSG, "second member cut");

        /* Trailer checks: CRC-32 and ISIZE. */
        cat[n1 + n2 - 8] ^= 1;
        expect_decode_error(COMPRESS_CODEC_GZIP, cat, n1 + n2, -EBADMSG, "CRC-32");
        cat[n1 + n2 - 8] ^= 1;
        cat[n1 + n2 - 3] ^= 1;
        expect_decode_error(COMPRESS_CODEC_GZIP, cat, n1 + n2, -EBADMSG, "ISIZE");

        /* zlib (RFC 1950) and raw deflate are not what Kafka reads. */
        uint8_t *zl = gzip_member(p, len, 15, NULL, &n);
        expect_decode_error(COMPRESS_CODEC_GZIP, zl, n, -EBADMSG, "zlib wrapper");
        free(zl);
        zl = gzip_member(p, len, -15, NULL, &n);
        expect_decode_error(COMPRESS_CODEC_GZIP, zl, n, -EBADMSG, "raw deflate");
        free(zl);

        free(cat);
        free(m1);
        free(m2);
        free(p);
}

/* ---- bounded decoding ---- */

struct bomb {
        const char *what;
        enum compress_codec codec;
        uint8_t *bytes;
        size_t len;
        size_t arena_max_bytes;         /* what decoding it may take from the arena */
};

#define BOMB_COUNT 9

/* Eight ways to say "64 MiB of zeros" in a few hundred KiB or less. */
static void make_bombs(struct bomb *b, size_t zeros_bytes, size_t out_max_bytes)
{
        uint8_t *zeros = calloc(1, zeros_bytes);
        size_t i = 0;
        cr_assert_not_null(zeros);

        b[i] = (struct bomb){ "gzip", COMPRESS_CODEC_GZIP, NULL, 0, 0 };
        b[i].bytes = encode_copy(COMPRESS_CODEC_GZIP, 9, zeros, zeros_bytes, &b[i].len);
        i++;
        /* ISIZE claims 1000 bytes: costs a 1000-byte guess, no more. */
        b[i] = (struct bomb){ "gzip, lying ISIZE", COMPRESS_CODEC_GZIP, NULL, 0, ARENA_BLOCK_BYTES };
        b[i].bytes = encode_copy(COMPRESS_CODEC_GZIP, 1, zeros, zeros_bytes, &b[i].len);
        memcpy(b[i].bytes + b[i].len - 4, "\xe8\x03\0\0", 4);
        i++;
        b[i] = (struct bomb){ "snappy xerial", COMPRESS_CODEC_SNAPPY, NULL, 0, 0 };
        b[i].bytes = encode_copy(COMPRESS_CODEC_SNAPPY, 0, zeros, zeros_bytes, &b[i].len);
        i++;
        b[i] = (struct bomb){ "snappy raw", COMPRESS_CODEC_SNAPPY, NULL, 0, 0 };
        b[i].len = snappy_max_compressed_length(zeros_bytes);
        b[i].bytes = malloc(b[i].len);
        cr_assert_eq(snappy_compress((const char *)zeros, zeros_bytes, (char *)b[i].bytes, &b[i].len), SNAPPY_OK);
        i++;
        b[i] = (struct bomb){ "lz4", COMPRESS_CODEC_LZ4, NULL, 0, out_max_bytes };
        b[i].bytes = encode_copy(COMPRESS_CODEC_LZ4, 9, zeros, zeros_bytes, &b[i].len);
        i++;
        LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        prefs.frameInfo.blockSizeID = LZ4F_max4MB;
        prefs.frameInfo.contentSize = zeros_bytes;
        b[i] = (struct bomb){ "lz4 with content size", COMPRESS_CODEC_LZ4, NULL, 0, 0 };
        b[i].bytes = lz4f_frame(zeros, zeros_bytes, &prefs, &b[i].len);
        i++;
        b[i] = (struct bomb){ "lz4, 4 MiB blocks", COMPRESS_CODEC_LZ4, NULL, 0, out_max_bytes };
        prefs.frameInfo.contentSize = 0;
        b[i].bytes = lz4f_frame(zeros, zeros_bytes, &prefs, &b[i].len);
        i++;
        b[i] = (struct bomb){ "zstd", COMPRESS_CODEC_ZSTD, NULL, 0, 0 };
        b[i].bytes = encode_copy(COMPRESS_CODEC_ZSTD, 3, zeros, zeros_bytes, &b[i].len);
        i++;
        b[i] = (struct bomb){ "zstd without content size", COMPRESS_CODEC_ZSTD, NULL, 0, out_max_bytes };
        ZSTD_CCtx *cctx = ZSTD_createCCtx();
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 0);
        b[i].len = ZSTD_compressBound(zeros_bytes);
        b[i].bytes = malloc(b[i].len);
        b[i].len = ZSTD_compress2(cctx, b[i].bytes, b[i].len, zeros, zeros_bytes);
        cr_assert(!ZSTD_isError(b[i].len));
        ZSTD_freeCCtx(cctx);
        i++;
        cr_assert_eq(i, BOMB_COUNT);
        free(zeros);
}

static void free_bombs(struct bomb *b)
{
        for (size_t i = 0; i < BOMB_COUNT; i++)
                free(b[i].bytes);
}

Test(compress, bombs_fail_with_efbig_within_the_bound, .timeout = 120)
{
        size_t zeros_bytes = 64 * MIB, out_max_bytes = MIB;
        struct bomb b[BOMB_COUNT];
        make_bombs(b, zeros_bytes, out_max_bytes);
        for (size_t i = 0; i < BOMB_COUNT; i++) {
                cr_assert_lt(b[i].len, 4 * MIB, "%s: %zu bytes is no bomb", b[i].what, b[i].len);
                struct arena a;
                arena_init(&a, 512 * MIB);
                uint8_t *out = (uint8_t *)1;
                size_t n = 1;
                int rc = decode_copy(b[i].codec, b[i].bytes, b[i].len, out_max_bytes, &a, &out, &n);
                cr_assert_eq(rc, -EFBIG, "%s: rc %d", b[i].what, rc);
                cr_assert_null(out);
                cr_assert_eq(n, 0);
                cr_assert_leq(a.used_bytes, b[i].arena_max_bytes, "%s: took %zu arena bytes, may take %zu",
                              b[i].what, a.used_bytes, b[i].arena_max_bytes);
                arena_free(&a);

                /* With room for all of it, it decodes. */
                arena_init(&a, 512 * MIB);
                rc = decode_copy(b[i].codec, b[i].bytes, b[i].len, zeros_bytes, &a, &out, &n);
                if (i == 1) {
                        cr_assert_eq(rc, -EBADMSG, "%s: the ISIZE lie is caught", b[i].what);
                } else {
                        cr_assert_eq(rc, 0, "%s: rc %d", b[i].what, rc);
                        cr_assert_eq(n, zeros_bytes);
                        cr_assert_eq(out[0], 0);
                        cr_assert_eq(out[n - 1], 0);
                }
                arena_free(&a);
        }
        free_bombs(b);
}

static size_t vm_size_bytes(void)
{
        FILE *f = fopen("/proc/self/status", "r");
        char line[256];
        size_t kib = 0;
        cr_assert_not_null(f);
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmSize: %zu kB", &kib) == 1)
                        break;
        fclose(f);
        cr_assert_gt(kib, 0);
        return kib * 1024;
}

/*
 * Nothing but the arena's bounded output may grow with a bomb: under an
 * address-space limit a little above what the test already uses, decoding
 * 64 MiB bombs must still fail cleanly with -EFBIG, not -ENOMEM. (ASan
 * reserves terabytes of address space, so this runs in the plain build.)
 */
Test(compress, bombs_need_no_hidden_memory, .timeout = 120)
{
        if (IS_ASAN) {
                cr_skip_test("RLIMIT_AS cannot be used under AddressSanitizer");
                return;
        }
        size_t zeros_bytes = 64 * MIB, out_max_bytes = 4 * MIB;
        struct bomb b[BOMB_COUNT];
        make_bombs(b, zeros_bytes, out_max_bytes);
        /* Warm this thread's contexts so the limit measures decoding only. */
        struct arena a;
        arena_init(&a, 64 * MIB);
        for (size_t i = 0; i < GOLDEN_COUNT; i++) {
                uint8_t *out;
                size_t n;
                cr_assert_eq(compress_decode(goldens[i].codec, goldens[i].bytes, goldens[i].len, MIB, &a,
                                             &out, &n), 0);
        }
        arena_free(&a);

        struct rlimit old, lim;
        cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
        lim = old;
        lim.rlim_cur = vm_size_bytes() + 32 * MIB;
        cr_assert_eq(setrlimit(RLIMIT_AS, &lim), 0);
        void *probe = malloc(64 * MIB);
        cr_assert_null(probe, "the limit must bite");

        for (size_t i = 0; i < BOMB_COUNT; i++) {
                arena_init(&a, 512 * MIB);
                uint8_t *out;
                size_t n;
                int rc = compress_decode(b[i].codec, b[i].bytes, b[i].len, out_max_bytes, &a, &out, &n);
                cr_assert_eq(rc, -EFBIG, "%s under a 32 MiB margin: rc %d", b[i].what, rc);
                arena_free(&a);
        }
        cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
        free_bombs(b);
}

/* With a generous bound, decoding takes about the output from the arena:
 * exactly it where the format says the size (gzip ISIZE, snappy, zstd
 * and lz4 content sizes, lz4's raw blocks), within one block otherwise. */
Test(compress, decode_allocates_about_the_output_size)
{
        size_t len = 300 * KIB + 17;
        static const enum fill fills[] = { FILL_RANDOM, FILL_TEXT };
        for (size_t f = 0; f < 2; f++) {
                uint8_t *p = make_payload(fills[f], len, 16);
                for (size_t c = 0; c < CODEC_COUNT; c++) {
                        enum compress_codec codec = all_codecs[c];
                        size_t n;
                        uint8_t *enc = encode_copy(codec, compress_level_default(codec), p, len, &n);
                        size_t slack = ARENA_BLOCK_BYTES;
                        if (codec == COMPRESS_CODEC_LZ4 && fills[f] == FILL_TEXT)
                                slack += 64 * KIB;      /* the last block counts as a full one */
                        struct arena a;
                        arena_init(&a, 512 * MIB);
                        uint8_t *out;
                        size_t m;
                        cr_assert_eq(decode_copy(codec, enc, n, 256 * MIB, &a, &out, &m), 0);
                        cr_assert_eq(m, len);
                        cr_assert_leq(a.used_bytes, len + slack, "%s %s: %zu arena bytes for %zu",
                                      compress_codec_name(codec), f ? "text" : "random", a.used_bytes, len);
                        arena_free(&a);
                        free(enc);
                }
                free(p);
        }
}

Test(compress, arena_limit_is_enomem)
{
        size_t len = 256 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 12);
        for (size_t c = 0; c < CODEC_COUNT; c++) {
                size_t n;
                uint8_t *enc = encode_copy(all_codecs[c], compress_level_default(all_codecs[c]), p, len, &n);
                struct arena a;
                arena_init(&a, 64 * KIB);
                uint8_t *out;
                size_t m;
                cr_assert_eq(compress_decode(all_codecs[c], enc, n, len, &a, &out, &m), -ENOMEM, "%s decode",
                             compress_codec_name(all_codecs[c]));
                cr_assert_eq(compress_encode(all_codecs[c], compress_level_default(all_codecs[c]), p, len, 0, &a,
                                             &out, &m), -ENOMEM, "%s encode", compress_codec_name(all_codecs[c]));
                arena_free(&a);
                free(enc);
        }
        free(p);
}

/* ---- malformed input ---- */

/* A prefix decodes to an error, or (xerial cut at a chunk boundary, gzip
 * members) to a strict prefix of the original. */
static void check_every_prefix(enum compress_codec codec, const uint8_t *enc, size_t enc_bytes,
                               const uint8_t *want, size_t want_bytes, const char *what)
{
        size_t successes = 0;
        for (size_t cut = 0; cut < enc_bytes; cut++) {
                struct arena a;
                arena_init(&a, 64 * MIB);
                uint8_t *out;
                size_t n;
                int rc = decode_copy(codec, enc, cut, want_bytes, &a, &out, &n);
                if (rc == 0) {
                        cr_assert_lt(n, want_bytes, "%s: prefix %zu decoded to everything", what, cut);
                        cr_assert(n == 0 || memcmp(out, want, n) == 0, "%s: prefix %zu decoded to garbage",
                                  what, cut);
                        successes++;
                } else {
                        cr_assert(rc == -EBADMSG || rc == -EFBIG, "%s: prefix %zu: rc %d", what, cut, rc);
                }
                arena_free(&a);
        }
        /* Only snappy's framing has prefixes that are whole streams. */
        if (codec != COMPRESS_CODEC_SNAPPY)
                cr_assert_eq(successes, 0, "%s: %zu prefixes decoded", what, successes);
}

Test(compress, every_prefix_is_refused, .timeout = 300)
{
        for (size_t i = 0; i < GOLDEN_COUNT; i++)
                check_every_prefix(goldens[i].codec, goldens[i].bytes, goldens[i].len, (const uint8_t *)PAYLOAD,
                                   PAYLOAD_BYTES, goldens[i].name);

        /* Several chunks and blocks; text so that blocks are compressed. */
        size_t len = 70 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 13);
        for (size_t c = 0; c < CODEC_COUNT; c++) {
                size_t n;
                uint8_t *enc = encode_copy(all_codecs[c], compress_level_default(all_codecs[c]), p, len, &n);
                check_every_prefix(all_codecs[c], enc, n, p, len, compress_codec_name(all_codecs[c]));
                free(enc);
        }
        free(p);
}

Test(compress, corrupted_and_random_input_fails_cleanly, .timeout = 300)
{
        size_t len = 20 * KIB;
        uint8_t *p = make_payload(FILL_TEXT, len, 14);
        uint64_t s = 0x5eed;
        for (size_t c = 0; c < CODEC_COUNT; c++) {
                size_t n;
                uint8_t *enc = encode_copy(all_codecs[c], compress_level_default(all_codecs[c]), p, len, &n);
                uint8_t *bad = malloc(n);
                size_t refused = 0;
                for (int iter = 0; iter < 3000; iter++) {
                        memcpy(bad, enc, n);
                        int flips = 1 + (int)(rng_next(&s) % 3);
                        for (int k = 0; k < flips; k++)
                                bad[rng_next(&s) % n] ^= (uint8_t)(1u << (rng_next(&s) % 8));
                        struct arena a;
                        arena_init(&a, 64 * MIB);
                        uint8_t *out;
                        size_t m;
                        int rc = decode_copy(all_codecs[c], bad, n, len, &a, &out, &m);
                        cr_assert(rc == 0 || rc == -EBADMSG || rc == -EFBIG, "%s flip: rc %d",
                                  compress_codec_name(all_codecs[c]), rc);
                        if (rc == 0)
                                cr_assert_leq(m, len);
                        else
                                refused++;
                        arena_free(&a);
                }
                /* Most flips must be caught (gzip's CRC, lz4/snappy structure). */
                cr_assert_gt(refused, 1500, "%s: only %zu of 3000 corruptions refused",
                             compress_codec_name(all_codecs[c]), refused);
                free(bad);
                free(enc);
        }

        /* Pure noise, and noise behind a valid-looking magic. */
        static const uint8_t magics[][8] = {
                { 0x1f, 0x8b, 0x08, 0 }, { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 },
                { 0x04, 0x22, 0x4d, 0x18, 0x60, 0x40, 0x82 }, { 0x28, 0xb5, 0x2f, 0xfd },
        };
        for (int iter = 0; iter < 4000; iter++) {
                size_t n = 1 + rng_next(&s) % 300;
                uint8_t *noise = malloc(n);
                for (size_t k = 0; k < n; k++)
                        noise[k] = (uint8_t)rng_next(&s);
                size_t c = (size_t)iter % CODEC_COUNT;
                if (iter % 2)
                        memcpy(noise, magics[c], n < 8 ? n : 8);
                struct arena a;
                arena_init(&a, 64 * MIB);
                uint8_t *out;
                size_t m;
                int rc = decode_copy(all_codecs[c], noise, n, 4 * MIB, &a, &out, &m);
                cr_assert(rc == 0 || rc == -EBADMSG || rc == -EFBIG, "noise: rc %d", rc);
                arena_free(&a);
                free(noise);
        }
        free(p);
}

/* ---- threads ---- */

struct worker {
        uint64_t seed;
        int failures;
};

static void *worker_run(void *arg)
{
        struct worker *w = arg;
        for (int iter = 0; iter < 40; iter++) {
                size_t len = (size_t)(rng_next(&w->seed) % (300 * KIB));
                uint8_t *p = make_payload(iter % 2 ? FILL_TEXT : FILL_RANDOM, len, w->seed);
                enum compress_codec codec = all_codecs[(size_t)iter % CODEC_COUNT];
                int level = codec == COMPRESS_CODEC_GZIP ? 1 + iter % 9 :
                            codec == COMPRESS_CODEC_LZ4  ? 1 + iter % 17 :
                            codec == COMPRESS_CODEC_ZSTD ? -5 + iter % 15 : 0;
                struct arena a;
                arena_init(&a, 64 * MIB);
                uint8_t *enc, *dec;
                size_t enc_bytes, dec_bytes;
                if (compress_encode(codec, level, p, len, 0, &a, &enc, &enc_bytes) != 0 ||
                    compress_decode(codec, enc, enc_bytes, len, &a, &dec, &dec_bytes) != 0 ||
                    dec_bytes != len || (len && memcmp(dec, p, len) != 0))
                        w->failures++;
                arena_free(&a);
                free(p);
                if (iter == 20)
                        compress_thread_release();
        }
        return NULL;
}

/* Threads share nothing; their contexts are freed when they exit (LSan
 * checks that under asan-unit). */
Test(compress, threads_round_trip_concurrently, .timeout = 120)
{
        enum { THREADS = 4 };
        pthread_t tid[THREADS];
        struct worker w[THREADS];
        for (int i = 0; i < THREADS; i++) {
                w[i] = (struct worker){ .seed = 1000 + (uint64_t)i, .failures = 0 };
                cr_assert_eq(pthread_create(&tid[i], NULL, worker_run, &w[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) {
                cr_assert_eq(pthread_join(tid[i], NULL), 0);
                cr_assert_eq(w[i].failures, 0, "thread %d: %d failures", i, w[i].failures);
        }
}
