/*
 * compress_codec.h - what compress.c and the per-codec files
 * (compress_gzip.c, compress_snappy.c, compress_lz4.c, compress_zstd.c)
 * say to each other. Not for use outside protocol/compress*.c; the public
 * contract is compress.h.
 *
 * compress.c checks arguments (codec, level, sizes, non-NULL pointers) and
 * clears *out / *out_bytes before calling a codec, so a codec may assume:
 * src_bytes >= 1 for decode, src_bytes <= COMPRESS_BYTES_MAX,
 * out_max_bytes <= COMPRESS_BYTES_MAX, and a valid level. A codec sets
 * *out and *out_bytes only on success.
 *
 * Per-thread library contexts live in slots owned by compress.c: a codec
 * gets its slot, fills it on first use, and frees what is in it when
 * compress.c calls its release function (thread exit or
 * compress_thread_release()).
 */
#ifndef RUNNEL_COMPRESS_CODEC_H
#define RUNNEL_COMPRESS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "compress.h"

enum compress_slot {
        COMPRESS_SLOT_GZIP,
        COMPRESS_SLOT_LZ4,
        COMPRESS_SLOT_ZSTD,
        COMPRESS_SLOT_COUNT,
};

/* The calling thread's state for slot, NULL before the codec first stores one. */
void *compress_thread_slot(enum compress_slot slot);
/* Stores state in the calling thread's slot (which must be empty) and makes
 * sure it is released when the thread exits. */
void compress_thread_slot_set(enum compress_slot slot, void *state);

int compress_gzip_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes);
int compress_gzip_encode(int level, const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes);
void compress_gzip_release(void *state);

int compress_snappy_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                           struct arena *a, uint8_t **out, size_t *out_bytes);
int compress_snappy_encode(const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                           struct arena *a, uint8_t **out, size_t *out_bytes);

int compress_lz4_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                        struct arena *a, uint8_t **out, size_t *out_bytes);
int compress_lz4_encode(int level, const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                        struct arena *a, uint8_t **out, size_t *out_bytes);
void compress_lz4_release(void *state);

int compress_zstd_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes);
int compress_zstd_encode(int level, const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes);
void compress_zstd_release(void *state);

/* headroom_bytes + payload_bytes from the arena, or NULL on overflow or
 * when the arena is at its limit. */
static inline uint8_t *compress_alloc_with_headroom(struct arena *a, size_t headroom_bytes,
                                                    size_t payload_bytes)
{
        if (payload_bytes > SIZE_MAX - headroom_bytes)
                return NULL;
        return arena_alloc(a, headroom_bytes + payload_bytes);
}

#endif
