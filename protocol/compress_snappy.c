/*
 * compress_snappy.c - codec 2, snappy: raw snappy blocks and snappy-java's
 * ("xerial") stream framing.
 *
 * Two formats reach a Kafka broker under codec 2:
 *   - xerial framing, written by the Java producer (Kafka's
 *     SnappyCompression wraps snappy-java's SnappyOutputStream) and by
 *     kafka-python: a 16-byte header, the magic 82 'S' 'N' 'A' 'P' 'P' 'Y' 00
 *     then version and compatible version as big-endian int32 (both 1),
 *     followed by chunks of a big-endian int32 length and one raw snappy
 *     block. snappy-java compresses 32 KiB of input per chunk
 *     (SnappyOutputStream.DEFAULT_BLOCK_SIZE), and writes only the header
 *     for empty input.
 *   - one raw snappy block, written by librdkafka (snappy_compress_iov
 *     over the whole payload).
 * Every client reads both: snappy-java's SnappyInputStream treats input
 * that does not start with the 8-byte magic (or is shorter than the
 * header) as one raw block, librdkafka and kafka-python test the same
 * magic. Decode here does the same test.
 *
 * Details of the xerial reader, following snappy-java 1.1.10:
 *   - version and compatible version are not checked (kafka-python notes
 *     producers that write them little-endian, and snappy-java checks only
 *     version >= 1, which such a header passes);
 *   - a chunk length equal to the first four magic bytes starts a
 *     concatenated stream: a whole new 16-byte header follows;
 *   - an empty chunk, a length past the end, or 1-3 stray bytes at the end
 *     are errors (snappy-java ignores the last case; librdkafka refuses
 *     any trailing bytes, so a batch like that would break its consumers).
 *
 * No state is kept between calls and nothing is allocated but the output:
 * every raw block starts with its uncompressed length, so a first walk
 * over the chunk headers gives the exact output size (and refuses a bomb
 * before anything is allocated), and each chunk then decompresses straight
 * into its place.
 */
#include <snappy-c.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "base/logging.h"
#include "compress_codec.h"

#define XERIAL_MAGIC_BYTES 8
#define XERIAL_HEADER_BYTES 16
#define XERIAL_CHUNK_LENGTH_BYTES 4
#define XERIAL_CHUNK_INPUT_BYTES (32 * 1024)
#define XERIAL_VERSION 1
#define XERIAL_COMPATIBLE_VERSION 1

static const uint8_t xerial_magic[XERIAL_MAGIC_BYTES] = { 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0 };

static uint32_t snappy_load_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void snappy_store_be32(uint8_t *p, uint32_t v)
{
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
}

static bool snappy_is_xerial(const uint8_t *src, size_t src_bytes)
{
        return src_bytes >= XERIAL_HEADER_BYTES && memcmp(src, xerial_magic, XERIAL_MAGIC_BYTES) == 0;
}

static int snappy_decode_raw(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                             struct arena *a, uint8_t **out, size_t *out_bytes)
{
        size_t n;
        if (snappy_uncompressed_length((const char *)src, src_bytes, &n) != SNAPPY_OK)
                return -EBADMSG;
        if (n > out_max_bytes)
                return -EFBIG;
        uint8_t *buf = arena_alloc(a, n);
        if (!buf)
                return -ENOMEM;
        size_t written = n;
        if (snappy_uncompress((const char *)src, src_bytes, (char *)buf, &written) != SNAPPY_OK)
                return -EBADMSG;
        assert(written == n);
        *out = buf;
        *out_bytes = n;
        return 0;
}

/*
 * Walks the xerial chunks after the header. With dst NULL it only checks
 * the framing and sums the chunks' declared sizes into *total_bytes (-EFBIG
 * past out_max_bytes); with dst it decompresses each chunk into place, dst
 * having exactly the summed size.
 */
static int snappy_walk_xerial(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                              uint8_t *dst, size_t *total_bytes)
{
        size_t pos = XERIAL_HEADER_BYTES;
        size_t out_pos = 0;

        assert(src_bytes >= XERIAL_HEADER_BYTES);
        while (pos < src_bytes) {
                if (src_bytes - pos < XERIAL_CHUNK_LENGTH_BYTES)
                        return -EBADMSG;
                uint32_t chunk_bytes = snappy_load_be32(src + pos);
                pos += XERIAL_CHUNK_LENGTH_BYTES;
                if (chunk_bytes == snappy_load_be32(xerial_magic)) {
                        /* Another stream's header; its first 4 bytes were just read. */
                        size_t rest = XERIAL_HEADER_BYTES - XERIAL_CHUNK_LENGTH_BYTES;
                        if (src_bytes - pos < rest ||
                            memcmp(src + pos, xerial_magic + XERIAL_CHUNK_LENGTH_BYTES,
                                   XERIAL_MAGIC_BYTES - XERIAL_CHUNK_LENGTH_BYTES) != 0)
                                return -EBADMSG;
                        pos += rest;
                        continue;
                }
                if (chunk_bytes == 0 || chunk_bytes > src_bytes - pos)
                        return -EBADMSG;

                const char *chunk = (const char *)src + pos;
                size_t n;
                if (snappy_uncompressed_length(chunk, chunk_bytes, &n) != SNAPPY_OK)
                        return -EBADMSG;
                if (!dst) {
                        if (n > out_max_bytes - out_pos)
                                return -EFBIG;
                } else {
                        assert(n <= *total_bytes - out_pos);
                        size_t written = n;
                        if (snappy_uncompress(chunk, chunk_bytes, (char *)dst + out_pos, &written) !=
                            SNAPPY_OK)
                                return -EBADMSG;
                        assert(written == n);
                }
                out_pos += n;
                pos += chunk_bytes;
        }
        assert(pos == src_bytes);
        assert(out_pos <= out_max_bytes);
        if (dst)
                assert(out_pos == *total_bytes);
        *total_bytes = out_pos;
        return 0;
}

int compress_snappy_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                           struct arena *a, uint8_t **out, size_t *out_bytes)
{
        assert(src_bytes >= 1 && out_max_bytes <= COMPRESS_BYTES_MAX);
        if (!snappy_is_xerial(src, src_bytes))
                return snappy_decode_raw(src, src_bytes, out_max_bytes, a, out, out_bytes);

        size_t total_bytes;
        int rc = snappy_walk_xerial(src, src_bytes, out_max_bytes, NULL, &total_bytes);
        if (rc)
                return rc;
        uint8_t *buf = arena_alloc(a, total_bytes);
        if (!buf)
                return -ENOMEM;
        rc = snappy_walk_xerial(src, src_bytes, out_max_bytes, buf, &total_bytes);
        if (rc)
                return rc;
        *out = buf;
        *out_bytes = total_bytes;
        return 0;
}

int compress_snappy_encode(const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                           struct arena *a, uint8_t **out, size_t *out_bytes)
{
        assert(src_bytes <= COMPRESS_BYTES_MAX);
        size_t full_chunks = src_bytes / XERIAL_CHUNK_INPUT_BYTES;
        size_t last_chunk_bytes = src_bytes % XERIAL_CHUNK_INPUT_BYTES;
        size_t bound_bytes = XERIAL_HEADER_BYTES +
                             full_chunks * (XERIAL_CHUNK_LENGTH_BYTES +
                                            snappy_max_compressed_length(XERIAL_CHUNK_INPUT_BYTES));
        if (last_chunk_bytes)
                bound_bytes += XERIAL_CHUNK_LENGTH_BYTES + snappy_max_compressed_length(last_chunk_bytes);

        uint8_t *buf = compress_alloc_with_headroom(a, headroom_bytes, bound_bytes);
        if (!buf)
                return -ENOMEM;
        uint8_t *dst = buf + headroom_bytes;
        memcpy(dst, xerial_magic, XERIAL_MAGIC_BYTES);
        snappy_store_be32(dst + XERIAL_MAGIC_BYTES, XERIAL_VERSION);
        snappy_store_be32(dst + XERIAL_MAGIC_BYTES + 4, XERIAL_COMPATIBLE_VERSION);
        size_t pos = XERIAL_HEADER_BYTES;

        for (size_t in_pos = 0; in_pos < src_bytes; ) {
                size_t n = src_bytes - in_pos;
                if (n > XERIAL_CHUNK_INPUT_BYTES)
                        n = XERIAL_CHUNK_INPUT_BYTES;
                size_t chunk_bytes = bound_bytes - pos - XERIAL_CHUNK_LENGTH_BYTES;
                assert(chunk_bytes >= snappy_max_compressed_length(n));
                snappy_status st = snappy_compress((const char *)src + in_pos, n,
                                                   (char *)dst + pos + XERIAL_CHUNK_LENGTH_BYTES,
                                                   &chunk_bytes);
                if (st != SNAPPY_OK) {
                        log_error("compress: snappy_compress failed (%d) on %zu bytes with room for "
                                  "the worst case; the snappy stream is dropped", (int)st, n);
                        return -EIO;
                }
                assert(chunk_bytes >= 1 && chunk_bytes <= INT32_MAX);
                snappy_store_be32(dst + pos, (uint32_t)chunk_bytes);
                pos += XERIAL_CHUNK_LENGTH_BYTES + chunk_bytes;
                in_pos += n;
        }
        assert(pos <= bound_bytes);
        *out = dst;
        *out_bytes = pos;
        return 0;
}
