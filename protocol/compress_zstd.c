/*
 * compress_zstd.c - codec 4, zstd: zstd frames (RFC 8878) through libzstd.
 *
 * What clients write: the Java producer streams through zstd-jni's
 * ZstdOutputStream, so its frames carry no content size (frame header
 * descriptor 0x00, a window of 2 MiB at level 3) and no checksum;
 * librdkafka and kafka-python compress in one shot and record the content
 * size. Kafka reads with zstd-jni's ZstdInputStream, which takes any
 * number of frames, skippable frames included. Decode accepts the same,
 * and refuses bytes after the last frame. Encode writes one frame with
 * the content size and no checksum.
 *
 * Sizing the output: ZSTD_decompressBound walks the frame and block
 * headers without decoding; it is the exact size when every frame records
 * its content size, and otherwise counts each block as a full one, which
 * is within one block (128 KiB) of the truth for streamed frames. The
 * output buffer is min(bound, out_max_bytes) and the frames decode in one
 * shot into it, the buffer doubling as zstd's window: no window buffer is
 * allocated however large a window the frame asks for. When the exact size
 * is known and above the bound, the call fails before allocating; when the
 * buffer is out_max_bytes and too small, it fails with -EFBIG. So a bomb
 * allocates at most the bound.
 *
 * ZSTD_decompressBound and ZSTD_findDecompressedSize are in libzstd's
 * "static linking only" section; Debian's shared libzstd (1.5.4) exports
 * them and they have been stable since 1.4.0.
 *
 * Per-thread state: one decompression and one compression context, reset
 * by every call.
 */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "base/logging.h"
#include "compress_codec.h"

struct zstd_thread {
        ZSTD_DCtx *dctx;
        ZSTD_CCtx *cctx;
};

void compress_zstd_release(void *state)
{
        struct zstd_thread *t = state;
        ZSTD_freeDCtx(t->dctx);
        ZSTD_freeCCtx(t->cctx);
        free(t);
}

static struct zstd_thread *zstd_thread_get(void)
{
        struct zstd_thread *t = compress_thread_slot(COMPRESS_SLOT_ZSTD);
        if (t)
                return t;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        compress_thread_slot_set(COMPRESS_SLOT_ZSTD, t);
        return t;
}

int compress_zstd_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes)
{
        struct zstd_thread *t = zstd_thread_get();

        assert(src_bytes >= 1 && out_max_bytes <= COMPRESS_BYTES_MAX);
        if (!t)
                return -ENOMEM;

        unsigned long long bound_bytes = ZSTD_decompressBound(src, src_bytes);
        if (bound_bytes == ZSTD_CONTENTSIZE_ERROR)
                return -EBADMSG;        /* not frames, truncated, or bytes after the last one */
        size_t cap_bytes = out_max_bytes;
        if (bound_bytes <= out_max_bytes) {
                cap_bytes = (size_t)bound_bytes;
        } else {
                unsigned long long exact_bytes = ZSTD_findDecompressedSize(src, src_bytes);
                if (exact_bytes != ZSTD_CONTENTSIZE_UNKNOWN && exact_bytes != ZSTD_CONTENTSIZE_ERROR)
                        return -EFBIG;
        }
        bool is_cap_the_bound = bound_bytes <= out_max_bytes;

        if (!t->dctx) {
                t->dctx = ZSTD_createDCtx();
                if (!t->dctx)
                        return -ENOMEM;
        }
        uint8_t *buf = arena_alloc(a, cap_bytes);
        if (!buf)
                return -ENOMEM;

        size_t n = ZSTD_decompressDCtx(t->dctx, buf, cap_bytes, src, src_bytes);
        if (ZSTD_isError(n)) {
                switch (ZSTD_getErrorCode(n)) {
                case ZSTD_error_dstSize_tooSmall:
                        /* Past out_max_bytes; or past a bound that holds,
                         * which only a corrupt frame can do. */
                        return is_cap_the_bound ? -EBADMSG : -EFBIG;
                case ZSTD_error_memory_allocation:
                        return -ENOMEM;
                default:
                        return -EBADMSG;
                }
        }
        assert(n <= cap_bytes);

        *out = buf;
        *out_bytes = n;
        return 0;
}

int compress_zstd_encode(int level, const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes)
{
        struct zstd_thread *t = zstd_thread_get();
        size_t r = 0;

        assert(level >= -131072 && level <= 22);
        assert(src_bytes <= COMPRESS_BYTES_MAX);
        if (!t)
                return -ENOMEM;
        if (!t->cctx) {
                t->cctx = ZSTD_createCCtx();
                if (!t->cctx)
                        return -ENOMEM;
        }
        /* Forget the previous call's level and any half-done frame. Checksum
         * off and content size on are libzstd's defaults. */
        r = ZSTD_CCtx_reset(t->cctx, ZSTD_reset_session_and_parameters);
        if (ZSTD_isError(r))
                goto out_library;
        r = ZSTD_CCtx_setParameter(t->cctx, ZSTD_c_compressionLevel, level);
        if (ZSTD_isError(r))
                goto out_library;

        size_t bound_bytes = ZSTD_compressBound(src_bytes);
        if (ZSTD_isError(bound_bytes))
                goto out_library;
        uint8_t *buf = compress_alloc_with_headroom(a, headroom_bytes, bound_bytes);
        if (!buf)
                return -ENOMEM;
        r = ZSTD_compress2(t->cctx, buf + headroom_bytes, bound_bytes, src, src_bytes);
        if (ZSTD_isError(r)) {
                if (ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation)
                        return -ENOMEM;
                goto out_library;
        }
        assert(r >= 1 && r <= bound_bytes);

        *out = buf + headroom_bytes;
        *out_bytes = r;
        return 0;

out_library:
        log_error("compress: zstd compression failed (%s) at level %d on %zu bytes; "
                  "the zstd frame is dropped", ZSTD_isError(r) ? ZSTD_getErrorName(r) : "bound",
                  level, src_bytes);
        return -EIO;
}
