/*
 * decompress.c - fuzz target: the four record-batch decompressors
 * (protocol/compress.h: gzip, snappy raw and xerial, lz4 frame, zstd).
 *
 * Input: one control byte, then the compressed stream.
 *
 *   ctl % 4 + 1        the codec (gzip, snappy, lz4, zstd)
 *   (ctl >> 2) % 4     out_max_bytes: 64 KiB, 4 KiB, 257 or 0
 *
 * Properties: decoding never crashes or reads out of bounds; it fails only
 * with -EBADMSG (not that codec's stream) or -EFBIG (more than
 * out_max_bytes), never -EIO or -EINVAL, and never runs out of an arena
 * with room for out_max_bytes plus the rounding compress.h allows; what it
 * returns is at most out_max_bytes. What decodes is encoded again at the
 * default level, and that decodes to the same bytes.
 */
#include <errno.h>

#include "fuzz.h"
#include "protocol/arena.h"
#include "protocol/compress.h"

static const size_t out_max_choices[4] = { 64 * 1024, 4096, 257, 0 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fuzz_input in = { data, size };
        uint8_t ctl = fuzz_u8(&in);
        enum compress_codec codec = (enum compress_codec)(ctl % 4 + 1);
        size_t out_max = out_max_choices[(ctl >> 2) % 4];
        uint8_t *src = fuzz_dup(in.p, in.left);

        struct arena a;
        /* compress.h: never more than out_max_bytes of output plus one
         * arena block of rounding; the rest is slack for small allocations. */
        arena_init(&a, 2 * out_max + 4 * ARENA_BLOCK_BYTES);
        uint8_t *out = (uint8_t *)&a;
        size_t out_bytes = 1;
        int rc = compress_decode(codec, src, in.left, out_max, &a, &out, &out_bytes);
        FUZZ_CHECK(rc == 0 || rc == -EBADMSG || rc == -EFBIG, "%s: decode returned %d",
                   compress_codec_name(codec), rc);
        if (rc != 0) {
                FUZZ_CHECK(out == NULL && out_bytes == 0, "%s: error %d left output", compress_codec_name(codec),
                           rc);
                goto out;
        }
        FUZZ_CHECK(out != NULL && out_bytes <= out_max, "%s: %zu bytes out, max %zu", compress_codec_name(codec),
                   out_bytes, out_max);
        /* Touch every byte handed back, so ASan checks they are ours. */
        volatile uint8_t sum = 0;
        for (size_t i = 0; i < out_bytes; i++)
                sum += out[i];
        (void)sum;

        struct arena b;
        arena_init(&b, 4u << 20);
        uint8_t *packed = NULL, *again = NULL;
        size_t packed_bytes = 0, again_bytes = 0;
        rc = compress_encode(codec, compress_level_default(codec), out, out_bytes, 61, &b, &packed,
                             &packed_bytes);
        FUZZ_CHECK(rc == 0, "%s: encode of %zu bytes returned %d", compress_codec_name(codec), out_bytes, rc);
        rc = compress_decode(codec, packed, packed_bytes, out_bytes, &b, &again, &again_bytes);
        FUZZ_CHECK(rc == 0, "%s: own encoding does not decode (%d)", compress_codec_name(codec), rc);
        FUZZ_CHECK(again_bytes == out_bytes && (out_bytes == 0 || memcmp(again, out, out_bytes) == 0),
                   "%s: round trip changed the bytes", compress_codec_name(codec));
        arena_free(&b);
out:
        arena_free(&a);
        free(src);
        return 0;
}
