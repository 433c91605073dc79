/*
 * compress.h - the four codecs of Kafka record batches (gzip, snappy, lz4,
 * zstd), byte-compatible with what Kafka's clients write and its broker
 * reads.
 *
 * Owns the compressed form of a batch's records: the bytes after the
 * 61-byte batch header when attributes bits 0-2 are 1-4. It knows nothing
 * of batches or records; protocol/record_batch.c hands it that byte range
 * and walks the records it gets back.
 *
 * What each codec reads and writes (the formats clients put on the wire,
 * checked against Kafka 4.4, snappy-java 1.1.10, librdkafka and
 * kafka-python; compress_<codec>.c says more):
 *
 *   gzip    RFC 1952 members. Decode reads concatenated members as Java's
 *           GZIPInputStream does, and ignores bytes after the last member
 *           that do not start a new one. Encode writes one member.
 *   snappy  xerial snappy-java framing (the Java producer) or one raw
 *           snappy block (librdkafka), told apart by the 8-byte xerial
 *           magic. Encode writes xerial framing with 32 KiB chunks, which
 *           every client reads.
 *   lz4     one LZ4 frame with independent blocks (Kafka refuses linked
 *           blocks). Encode writes Kafka's frame: 64 KiB blocks, no
 *           checksums, no content size. Kafka's wrong header checksum of
 *           magic-0 messages is not accepted: it never applies to magic 2.
 *   zstd    one or more zstd frames, with or without content size.
 *
 * Decoding is bounded. The caller gives out_max_bytes, the most output it
 * will accept. A stream that would decode to more fails with -EFBIG, and
 * while finding that out the decoder never allocates more than
 * out_max_bytes of output (plus one arena block of rounding): a 10 KiB zip
 * bomb costs at most the bound, never what it expands to.
 *
 * Memory. Output comes from the caller's arena and lives as long as it
 * does; nothing is malloc'd per call. Each thread keeps its own library
 * contexts (zlib streams, LZ4F and zstd contexts, a scratch buffer), made
 * on first use and reused, so a call does not build a compressor from
 * scratch. They are freed when the thread exits or by
 * compress_thread_release(). Their size does not depend on the input,
 * except that an LZ4 frame announcing 4 MiB blocks grows the thread's LZ4
 * context to about 8 MiB of (mostly untouched) buffers, kept while the
 * context lives.
 *
 * Thread-safety: every function may be called from any thread at once;
 * each thread uses its own contexts. An arena is still one thread's.
 *
 * Errors are negative errno values, never Kafka codes:
 *   -EINVAL   codec is not 1-4, or level is not valid for the codec
 *   -EBADMSG  the input is not a valid stream of that codec (truncated,
 *             corrupt, a checksum mismatch, bytes Kafka would refuse)
 *   -EFBIG    decode: the output would pass out_max_bytes;
 *             encode: the input is larger than COMPRESS_BYTES_MAX
 *   -ENOMEM   the arena's limit was reached, or a library context could
 *             not be allocated
 *   -EIO      a library failed in a way its documentation rules out
 *             (logged); never caused by the input
 * On error *out is NULL and *out_bytes is 0, and nothing the call took
 * from the arena is handed back (it is released with the arena).
 */
#ifndef RUNNEL_COMPRESS_H
#define RUNNEL_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct arena;

/* Kafka's codec ids, the values of record batch attributes bits 0-2
 * (the same numbers as enum record_batch_codec). */
enum compress_codec {
        COMPRESS_CODEC_NONE = 0,
        COMPRESS_CODEC_GZIP = 1,
        COMPRESS_CODEC_SNAPPY = 2,
        COMPRESS_CODEC_LZ4 = 3,
        COMPRESS_CODEC_ZSTD = 4,
};

/* Inputs and outputs are at most this large: a batch's length is an int32. */
#define COMPRESS_BYTES_MAX ((size_t)INT32_MAX)

/*
 * Levels, as Kafka's topic and producer configs spell them
 * (compression.gzip.level, compression.lz4.level, compression.zstd.level):
 *   gzip    1..9, or -1 for zlib's default (6)
 *   lz4     1..17, default 9. As in Kafka, 9 means LZ4's fast compressor and
 *           every other level LZ4 HC; 1 and 2 are the fast compressor too
 *           here (liblz4's frame API has no HC below 3).
 *   zstd    -131072..22, default 3
 *   snappy  has no levels; any value is accepted and ignored
 */
#define COMPRESS_GZIP_LEVEL_DEFAULT (-1)
#define COMPRESS_LZ4_LEVEL_DEFAULT 9
#define COMPRESS_ZSTD_LEVEL_DEFAULT 3

/* "gzip", "snappy", "lz4", "zstd", "none"; NULL for ids 5-7 and others. */
const char *compress_codec_name(enum compress_codec codec);

/* Kafka's default level for the codec (0 for snappy). codec must be 1-4. */
int compress_level_default(enum compress_codec codec);

/* Whether Kafka accepts level for codec; false for codecs other than 1-4. */
bool compress_level_is_valid(enum compress_codec codec, int level);

/*
 * Decompresses src[0..src_bytes) into memory from arena a. On success *out
 * points at *out_bytes bytes (*out is non-NULL even when *out_bytes is 0).
 * out_max_bytes above COMPRESS_BYTES_MAX is taken as COMPRESS_BYTES_MAX.
 * An empty src is -EBADMSG: every encoder writes at least a header.
 */
int compress_decode(enum compress_codec codec, const uint8_t *src, size_t src_bytes,
                    size_t out_max_bytes, struct arena *a, uint8_t **out, size_t *out_bytes);

/*
 * Compresses src[0..src_bytes) at level into memory from arena a. On
 * success *out points at the *out_bytes compressed bytes, and
 * headroom_bytes of the same allocation come right before *out, for the
 * caller to write a batch header in front without copying the payload.
 * The allocation is the codec's worst-case size, not *out_bytes.
 */
int compress_encode(enum compress_codec codec, int level, const uint8_t *src, size_t src_bytes,
                    size_t headroom_bytes, struct arena *a, uint8_t **out, size_t *out_bytes);

/* Frees the calling thread's codec contexts now rather than at its exit.
 * The next call on this thread makes them again. */
void compress_thread_release(void);

#endif
