/*
 * compress_lz4.c - codec 3, lz4: one LZ4 frame (lz4_Frame_format.md),
 * through liblz4's frame API (LZ4F).
 *
 * What Kafka writes (Lz4BlockOutputStream, the Java producer): magic
 * 04 22 4d 18, FLG 0x60 (version 01, independent blocks, no block
 * checksums, no content size, no content checksum), BD 0x40 (64 KiB
 * blocks), the header checksum, blocks, and a zero end mark. Level 9
 * (the default) uses LZ4's fast compressor, any other level LZ4 HC.
 * librdkafka writes the same with LZ4F (independent blocks, default
 * 64 KiB); kafka-python's lz4.frame adds a content size. Encode writes
 * Kafka's exact header.
 *
 * What Kafka reads (Lz4BlockInputStream), and so what decode accepts:
 *   - version 01; the two low FLG bits and BD's reserved bits zero (Kafka
 *     treats them as reserved, so dictionary ids are refused);
 *   - independent blocks only: Kafka refuses linked blocks, so a batch
 *     with them would break every Java consumer;
 *   - block sizes 64 KiB to 4 MiB, optional content size, block checksums
 *     and content checksum (all verified, here by LZ4F);
 *   - the header checksum must be right. Kafka wrote a wrong one only for
 *     magic-0 messages (KafkaLZ4BlockOutputStream's
 *     useBrokenFlagDescriptorChecksum), which a magic-2 batch never has.
 *   - one frame. Kafka ignores bytes after it; librdkafka refuses them, and
 *     so does this.
 *
 * Sizing the output: before decoding, the frame's block headers are walked
 * (no data touched). An uncompressed block adds its size, a compressed one
 * at most the frame's block size, so the sum bounds the output and is
 * within one block of it for anything a client writes (every block but the
 * last is full). The output buffer is min(that bound, out_max_bytes), or
 * the content size when the frame has one, and LZ4F decodes straight into
 * it. A frame that would overflow an out_max_bytes buffer is -EFBIG; so a
 * bomb allocates at most the bound.
 *
 * Per-thread state: one LZ4F decompression context (reset per call, and
 * remade after a call that failed inside a frame, see out_drop_dctx) and
 * one compression context. LZ4F sizes its buffers to the largest block
 * size it has seen, up to about 8 MiB for 4 MiB blocks, and keeps them.
 */
#define LZ4F_STATIC_LINKING_ONLY        /* LZ4F_getErrorCode; exported by Debian's liblz4 */
#include <lz4frame.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "base/logging.h"
#include "compress_codec.h"

#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_FRAME_MAGIC_BYTES 4
#define LZ4_DESCRIPTOR_BYTES 2          /* FLG, BD */
#define LZ4_CONTENT_SIZE_BYTES 8
#define LZ4_HEADER_CHECKSUM_BYTES 1
#define LZ4_BLOCK_HEADER_BYTES 4
#define LZ4_CHECKSUM_BYTES 4

#define LZ4_FLG_VERSION_MASK 0xc0
#define LZ4_FLG_VERSION_01 0x40
#define LZ4_FLG_BLOCK_INDEPENDENT 0x20
#define LZ4_FLG_BLOCK_CHECKSUM 0x10
#define LZ4_FLG_CONTENT_SIZE 0x08
#define LZ4_FLG_CONTENT_CHECKSUM 0x04
#define LZ4_FLG_RESERVED 0x03           /* reserved and dictionary id, both refused by Kafka */
#define LZ4_BD_BLOCK_SIZE_SHIFT 4
#define LZ4_BD_BLOCK_SIZE_MASK 0x70
#define LZ4_BD_RESERVED 0x8f
#define LZ4_BLOCK_SIZE_ID_MIN 4         /* 64 KiB */
#define LZ4_BLOCK_SIZE_ID_MAX 7         /* 4 MiB */
#define LZ4_BLOCK_UNCOMPRESSED 0x80000000u

struct lz4_thread {
        LZ4F_dctx *dctx;
        LZ4F_cctx *cctx;
};

/* What a walk over the frame's headers learned. */
struct lz4_frame {
        size_t frame_bytes;             /* header through end mark and content checksum */
        size_t bound_bytes;             /* the most output the blocks can hold (saturating) */
        bool has_content_size;
        uint64_t content_bytes;
};

void compress_lz4_release(void *state)
{
        struct lz4_thread *t = state;
        LZ4F_freeDecompressionContext(t->dctx);
        LZ4F_freeCompressionContext(t->cctx);
        free(t);
}

static struct lz4_thread *lz4_thread_get(void)
{
        struct lz4_thread *t = compress_thread_slot(COMPRESS_SLOT_LZ4);
        if (t)
                return t;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        compress_thread_slot_set(COMPRESS_SLOT_LZ4, t);
        return t;
}

static uint32_t lz4_load_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t lz4_add_saturating(size_t a, size_t b)
{
        return a > SIZE_MAX - b ? SIZE_MAX : a + b;
}

/*
 * Checks the frame's structure the way Kafka's reader would, without
 * decoding any block, and measures it. The header checksum and the data
 * are left to LZ4F.
 */
static int lz4_scan_frame(const uint8_t *src, size_t src_bytes, struct lz4_frame *f)
{
        size_t pos = LZ4_FRAME_MAGIC_BYTES + LZ4_DESCRIPTOR_BYTES;

        if (src_bytes < pos + LZ4_HEADER_CHECKSUM_BYTES)
                return -EBADMSG;
        if (lz4_load_le32(src) != LZ4_FRAME_MAGIC)
                return -EBADMSG;        /* also skippable frames, which Kafka refuses */
        uint8_t flg = src[LZ4_FRAME_MAGIC_BYTES];
        uint8_t bd = src[LZ4_FRAME_MAGIC_BYTES + 1];
        if ((flg & LZ4_FLG_VERSION_MASK) != LZ4_FLG_VERSION_01 || (flg & LZ4_FLG_RESERVED) ||
            !(flg & LZ4_FLG_BLOCK_INDEPENDENT) || (bd & LZ4_BD_RESERVED))
                return -EBADMSG;
        unsigned block_size_id = (bd & LZ4_BD_BLOCK_SIZE_MASK) >> LZ4_BD_BLOCK_SIZE_SHIFT;
        if (block_size_id < LZ4_BLOCK_SIZE_ID_MIN || block_size_id > LZ4_BLOCK_SIZE_ID_MAX)
                return -EBADMSG;
        size_t block_max_bytes = (size_t)1 << (2 * block_size_id + 8);

        f->has_content_size = flg & LZ4_FLG_CONTENT_SIZE;
        f->content_bytes = 0;
        if (f->has_content_size) {
                if (src_bytes - pos < LZ4_CONTENT_SIZE_BYTES + LZ4_HEADER_CHECKSUM_BYTES)
                        return -EBADMSG;
                f->content_bytes = (uint64_t)lz4_load_le32(src + pos) |
                                   (uint64_t)lz4_load_le32(src + pos + 4) << 32;
                pos += LZ4_CONTENT_SIZE_BYTES;
        }
        pos += LZ4_HEADER_CHECKSUM_BYTES;

        size_t block_checksum_bytes = (flg & LZ4_FLG_BLOCK_CHECKSUM) ? LZ4_CHECKSUM_BYTES : 0;
        size_t bound_bytes = 0;
        for (;;) {
                /* Each pass moves pos by at least 5 bytes, so this ends. */
                if (src_bytes - pos < LZ4_BLOCK_HEADER_BYTES)
                        return -EBADMSG;
                uint32_t header = lz4_load_le32(src + pos);
                pos += LZ4_BLOCK_HEADER_BYTES;
                size_t block_bytes = header & ~LZ4_BLOCK_UNCOMPRESSED;
                if (block_bytes == 0)
                        break;          /* end mark (LZ4F and Kafka ignore its high bit too) */
                if (block_bytes > block_max_bytes)
                        return -EBADMSG;
                if (src_bytes - pos < block_bytes || src_bytes - pos - block_bytes < block_checksum_bytes)
                        return -EBADMSG;
                pos += block_bytes + block_checksum_bytes;
                bound_bytes = lz4_add_saturating(bound_bytes, (header & LZ4_BLOCK_UNCOMPRESSED) ?
                                                                      block_bytes : block_max_bytes);
        }
        if (flg & LZ4_FLG_CONTENT_CHECKSUM) {
                if (src_bytes - pos < LZ4_CHECKSUM_BYTES)
                        return -EBADMSG;
                pos += LZ4_CHECKSUM_BYTES;
        }
        if (pos != src_bytes)
                return -EBADMSG;
        f->frame_bytes = pos;
        f->bound_bytes = bound_bytes;
        return 0;
}

int compress_lz4_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                        struct arena *a, uint8_t **out, size_t *out_bytes)
{
        struct lz4_thread *t = lz4_thread_get();
        struct lz4_frame f;
        size_t cap_bytes;
        int rc;

        assert(src_bytes >= 1 && out_max_bytes <= COMPRESS_BYTES_MAX);
        if (!t)
                return -ENOMEM;
        rc = lz4_scan_frame(src, src_bytes, &f);
        if (rc)
                return rc;
        if (f.has_content_size) {
                if (f.content_bytes > out_max_bytes)
                        return -EFBIG;
                cap_bytes = (size_t)f.content_bytes;
        } else {
                cap_bytes = f.bound_bytes < out_max_bytes ? f.bound_bytes : out_max_bytes;
        }
        /* Overflowing the buffer means passing the bound only when the
         * buffer is the bound; otherwise the frame contradicts itself. */
        bool is_overflow_efbig = !f.has_content_size && cap_bytes < f.bound_bytes;

        if (!t->dctx) {
                if (LZ4F_isError(LZ4F_createDecompressionContext(&t->dctx, LZ4F_VERSION))) {
                        t->dctx = NULL;
                        return -ENOMEM;
                }
        }
        /* An earlier call may have stopped mid-frame. */
        LZ4F_resetDecompressionContext(t->dctx);

        uint8_t *buf = arena_alloc(a, cap_bytes);
        if (!buf)
                return -ENOMEM;

        LZ4F_decompressOptions_t options = { 0 };
        size_t in_pos = 0;
        size_t out_pos = 0;
        uint8_t probe;
        for (;;) {
                /* When buf is full, ask for one more byte to tell an exact
                 * fit from an overflow. */
                uint8_t *window = &probe;
                size_t window_bytes = 1;
                if (out_pos < cap_bytes) {
                        window = buf + out_pos;
                        window_bytes = cap_bytes - out_pos;
                }
                size_t in_bytes = f.frame_bytes - in_pos;
                size_t hint = LZ4F_decompress(t->dctx, window, &window_bytes, src + in_pos, &in_bytes,
                                              &options);
                if (LZ4F_isError(hint)) {
                        rc = LZ4F_getErrorCode(hint) == LZ4F_ERROR_allocation_failed ? -ENOMEM : -EBADMSG;
                        goto out_drop_dctx;
                }
                in_pos += in_bytes;
                out_pos += window_bytes;
                assert(in_pos <= f.frame_bytes);
                if (out_pos > cap_bytes) {
                        rc = is_overflow_efbig ? -EFBIG : -EBADMSG;
                        goto out_drop_dctx;
                }
                if (hint == 0)
                        break;          /* end mark and checksums read and verified */
                if (in_bytes == 0 && window_bytes == 0) {
                        rc = -EBADMSG;  /* wants input the scan says is not there */
                        goto out_drop_dctx;
                }
        }
        /* The scan found the frame's end where LZ4F did, and LZ4F checked
         * the content size; neither is left to an assert on client bytes. */
        if (in_pos != f.frame_bytes || (f.has_content_size && out_pos != f.content_bytes)) {
                rc = -EBADMSG;
                goto out_drop_dctx;
        }

        *out = buf;
        *out_bytes = out_pos;
        return 0;

out_drop_dctx:
        /* liblz4 before 1.10 (lz4 issue #1227) keeps a frame's remaining
         * content size across LZ4F_resetDecompressionContext, so a context
         * that stopped inside a frame with a content size would refuse the
         * next good frame without one. A fresh context is cheap next to
         * an error. */
        LZ4F_freeDecompressionContext(t->dctx);
        t->dctx = NULL;
        return rc;
}

int compress_lz4_encode(int level, const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                        struct arena *a, uint8_t **out, size_t *out_bytes)
{
        struct lz4_thread *t = lz4_thread_get();
        LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
        size_t r = 0;

        assert(level >= 1 && level <= 17);
        assert(src_bytes <= COMPRESS_BYTES_MAX);
        if (!t)
                return -ENOMEM;
        if (!t->cctx) {
                if (LZ4F_isError(LZ4F_createCompressionContext(&t->cctx, LZ4F_VERSION))) {
                        t->cctx = NULL;
                        return -ENOMEM;
                }
        }

        /* Kafka's header: FLG 0x60, BD 0x40. */
        prefs.frameInfo.blockSizeID = LZ4F_max64KB;
        prefs.frameInfo.blockMode = LZ4F_blockIndependent;
        prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
        prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
        prefs.frameInfo.contentSize = 0;
        /* Kafka: the default level 9 means lz4-java's fast compressor (LZ4F
         * level 0), others its HC compressor at that level. */
        prefs.compressionLevel = level == COMPRESS_LZ4_LEVEL_DEFAULT ? 0 : level;
        /* Compress the last, partial block right away instead of copying
         * it into the context to wait for more input. */
        prefs.autoFlush = 1;

        size_t bound_bytes = LZ4F_compressBound(src_bytes, &prefs);
        if (LZ4F_isError(bound_bytes))
                goto out_library;
        bound_bytes = lz4_add_saturating(bound_bytes, LZ4F_HEADER_SIZE_MAX);
        uint8_t *buf = compress_alloc_with_headroom(a, headroom_bytes, bound_bytes);
        if (!buf)
                return -ENOMEM;
        uint8_t *dst = buf + headroom_bytes;

        size_t pos = 0;
        r = LZ4F_compressBegin(t->cctx, dst, bound_bytes, &prefs);
        if (LZ4F_isError(r))
                goto out_library;
        pos += r;
        r = LZ4F_compressUpdate(t->cctx, dst + pos, bound_bytes - pos, src, src_bytes, NULL);
        if (LZ4F_isError(r))
                goto out_library;
        pos += r;
        r = LZ4F_compressEnd(t->cctx, dst + pos, bound_bytes - pos, NULL);
        if (LZ4F_isError(r))
                goto out_library;
        pos += r;
        assert(pos <= bound_bytes);
        assert(lz4_load_le32(dst) == LZ4_FRAME_MAGIC);

        *out = dst;
        *out_bytes = pos;
        return 0;

out_library:
        log_error("compress: LZ4F compression failed (%s) at level %d on %zu bytes; "
                  "the lz4 frame is dropped and the thread's context rebuilt",
                  LZ4F_isError(r) ? LZ4F_getErrorName(r) : "bound", level, src_bytes);
        LZ4F_freeCompressionContext(t->cctx);
        t->cctx = NULL;
        return -EIO;
}
