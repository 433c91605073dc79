/*
 * compress_gzip.c - codec 1, gzip: RFC 1952 members through zlib.
 *
 * What Kafka does, and so what this does:
 *   - The Java producer writes one member with java.util.zip's
 *     GZIPOutputStream (Kafka's GzipOutputStream only adds a level): the
 *     10-byte header 1f 8b 08 00, mtime 0, xfl 0, os 0xff, then deflate
 *     data, then CRC-32 and ISIZE. librdkafka writes one member with zlib
 *     (deflateInit2, windowBits 15 + 16). Encode here is zlib with
 *     windowBits 15 + 16 and os 0xff, memLevel 8 as Java's Deflater.
 *   - Kafka reads with GZIPInputStream semantics (KafkaGZIPInputStream):
 *     members may be concatenated; after a member, bytes that do not parse
 *     as another member's header are ignored. Only the gzip wrapper is
 *     accepted, not a zlib or raw deflate stream. Decode does the same,
 *     except that a tail starting 1f 8b 08 is taken to be a member and must
 *     be a whole, valid one.
 *
 * Sizing the output: the last 4 bytes of a single member are ISIZE, the
 * exact output size, so the common case allocates once, exactly, and
 * inflates straight into it. When the stream turns out larger than ISIZE
 * (several members, a trailing tail, a lying trailer) or ISIZE is above the
 * bound, a counting pass inflates into a per-thread scratch buffer up to
 * out_max_bytes and the stream is inflated again into a buffer of the
 * counted size. A bomb therefore allocates at most min(ISIZE, bound) of
 * output, and costs at most out_max_bytes of inflate work to refuse.
 *
 * Per-thread state: one inflate stream (reset per call), one deflate
 * stream kept for the last level used (re-made when the level changes),
 * and the 32 KiB counting scratch.
 */
#define ZLIB_CONST
#include <zlib.h>

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/logging.h"
#include "compress_codec.h"

#define GZIP_WINDOW_BITS (15 + 16)      /* 32 KiB window, gzip wrapper only */
#define GZIP_MEM_LEVEL 8                /* zlib's and Java's Deflater's default */
#define GZIP_OS_UNKNOWN 255             /* what GZIPOutputStream writes */
#define GZIP_TRAILER_BYTES 8            /* CRC-32, ISIZE */
#define GZIP_MEMBER_BYTES_MIN 18        /* 10-byte header + trailer */
#define GZIP_SCRATCH_BYTES (32 * 1024)

struct gzip_thread {
        z_stream inflater;
        z_stream deflater;
        bool has_inflater;
        bool has_deflater;
        int deflater_level;
        uint8_t scratch[GZIP_SCRATCH_BYTES];
};

void compress_gzip_release(void *state)
{
        struct gzip_thread *t = state;
        if (t->has_inflater)
                inflateEnd(&t->inflater);
        if (t->has_deflater)
                deflateEnd(&t->deflater);
        free(t);
}

static struct gzip_thread *gzip_thread_get(void)
{
        struct gzip_thread *t = compress_thread_slot(COMPRESS_SLOT_GZIP);
        if (t)
                return t;
        t = calloc(1, sizeof(*t));
        if (!t)
                return NULL;
        compress_thread_slot_set(COMPRESS_SLOT_GZIP, t);
        return t;
}

static uint32_t gzip_load_le32(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whether p[0..len) starts like a gzip member: magic and method 8 (deflate). */
static bool gzip_is_member_start(const uint8_t *p, size_t len)
{
        return len >= 3 && p[0] == 0x1f && p[1] == 0x8b && p[2] == 8;
}

/*
 * Inflates every member of src into dst[0..dst_cap), or only counts the
 * output when dst is NULL. *produced_bytes is the output size on success.
 * -EFBIG as soon as the output would pass dst_cap: when dst is full, one
 * more byte is asked for in a 1-byte probe, so an exact fit is not mistaken
 * for an overflow.
 */
static int gzip_inflate(struct gzip_thread *t, const uint8_t *src, size_t src_bytes,
                        uint8_t *dst, size_t dst_cap, size_t *produced_bytes)
{
        z_stream *z = &t->inflater;
        size_t in_pos = 0;
        size_t out_pos = 0;
        uint8_t probe;

        assert(src_bytes <= COMPRESS_BYTES_MAX && dst_cap <= COMPRESS_BYTES_MAX);
        if (inflateReset(z) != Z_OK)
                return -EIO;
        for (;;) {
                z->next_in = src + in_pos;
                z->avail_in = (uInt)(src_bytes - in_pos);
                int zrc;
                do {
                        uint8_t *window = &probe;
                        size_t window_bytes = 1;
                        if (!dst) {
                                window = t->scratch;
                                window_bytes = sizeof(t->scratch);
                        } else if (out_pos < dst_cap) {
                                window = dst + out_pos;
                                window_bytes = dst_cap - out_pos;
                        }
                        z->next_out = window;
                        z->avail_out = (uInt)window_bytes;
                        uInt avail_in_before = z->avail_in;

                        zrc = inflate(z, Z_NO_FLUSH);

                        size_t consumed = avail_in_before - z->avail_in;
                        size_t written = window_bytes - z->avail_out;
                        assert(consumed <= src_bytes - in_pos);
                        in_pos += consumed;
                        out_pos += written;
                        if (out_pos > dst_cap)
                                return -EFBIG;
                        if (zrc == Z_OK && consumed == 0 && written == 0)
                                return -EBADMSG;        /* zlib promises Z_BUF_ERROR instead */
                } while (zrc == Z_OK);

                switch (zrc) {
                case Z_STREAM_END:
                        break;
                case Z_BUF_ERROR:
                        /* Output always has room, so the input ended inside a member. */
                        return -EBADMSG;
                case Z_MEM_ERROR:
                        return -ENOMEM;
                default:
                        return -EBADMSG;        /* Z_DATA_ERROR: corrupt data, header or trailer */
                }

                /* One member done, its CRC-32 and ISIZE checked by zlib. */
                if (!gzip_is_member_start(src + in_pos, src_bytes - in_pos))
                        break;
                if (inflateReset(z) != Z_OK)
                        return -EIO;
        }
        assert(dst == NULL || out_pos <= dst_cap);
        *produced_bytes = out_pos;
        return 0;
}

int compress_gzip_decode(const uint8_t *src, size_t src_bytes, size_t out_max_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes)
{
        struct gzip_thread *t = gzip_thread_get();
        uint8_t *buf;
        size_t n = 0;
        int rc;

        assert(src_bytes >= 1 && out_max_bytes <= COMPRESS_BYTES_MAX);
        if (!t)
                return -ENOMEM;
        if (!t->has_inflater) {
                memset(&t->inflater, 0, sizeof(t->inflater));
                rc = inflateInit2(&t->inflater, GZIP_WINDOW_BITS);
                if (rc != Z_OK)
                        return rc == Z_MEM_ERROR ? -ENOMEM : -EIO;
                t->has_inflater = true;
        }

        if (src_bytes >= GZIP_MEMBER_BYTES_MIN) {
                size_t isize_bytes = gzip_load_le32(src + src_bytes - 4);
                if (isize_bytes <= out_max_bytes) {
                        buf = arena_alloc(a, isize_bytes);
                        if (!buf)
                                return -ENOMEM;
                        rc = gzip_inflate(t, src, src_bytes, buf, isize_bytes, &n);
                        if (rc == 0)
                                goto out_done;
                        if (rc != -EFBIG)
                                return rc;
                        /* Larger than the last member says: count first. */
                }
        }

        size_t counted_bytes;
        rc = gzip_inflate(t, src, src_bytes, NULL, out_max_bytes, &counted_bytes);
        if (rc)
                return rc;
        buf = arena_alloc(a, counted_bytes);
        if (!buf)
                return -ENOMEM;
        rc = gzip_inflate(t, src, src_bytes, buf, counted_bytes, &n);
        if (rc)
                return rc;
        assert(n == counted_bytes);

out_done:
        assert(n <= out_max_bytes);
        *out = buf;
        *out_bytes = n;
        return 0;
}

int compress_gzip_encode(int level, const uint8_t *src, size_t src_bytes, size_t headroom_bytes,
                         struct arena *a, uint8_t **out, size_t *out_bytes)
{
        struct gzip_thread *t = gzip_thread_get();
        z_stream *z;
        int zrc;

        assert(level == Z_DEFAULT_COMPRESSION || (level >= 1 && level <= 9));
        assert(src_bytes <= COMPRESS_BYTES_MAX);
        if (!t)
                return -ENOMEM;
        z = &t->deflater;
        if (t->has_deflater && t->deflater_level != level) {
                deflateEnd(z);
                t->has_deflater = false;
        }
        if (t->has_deflater) {
                zrc = deflateReset(z);
        } else {
                memset(z, 0, sizeof(*z));
                zrc = deflateInit2(z, level, Z_DEFLATED, GZIP_WINDOW_BITS, GZIP_MEM_LEVEL,
                                   Z_DEFAULT_STRATEGY);
                if (zrc == Z_MEM_ERROR)
                        return -ENOMEM;
                if (zrc == Z_OK) {
                        t->has_deflater = true;
                        t->deflater_level = level;
                }
        }
        if (zrc != Z_OK)
                goto out_library;

        /* Must stay alive until deflate() returns: zlib keeps the pointer. */
        gz_header header = { .os = GZIP_OS_UNKNOWN };
        zrc = deflateSetHeader(z, &header);
        if (zrc != Z_OK)
                goto out_library;

        size_t bound_bytes = deflateBound(z, (uLong)src_bytes);
        uint8_t *buf = compress_alloc_with_headroom(a, headroom_bytes, bound_bytes);
        if (!buf)
                return -ENOMEM;
        z->next_in = src;
        z->avail_in = (uInt)src_bytes;
        z->next_out = buf + headroom_bytes;
        z->avail_out = (uInt)bound_bytes;
        /* deflateBound is documented to be enough for one Z_FINISH call. */
        zrc = deflate(z, Z_FINISH);
        if (zrc != Z_STREAM_END)
                goto out_library;
        assert(z->avail_in == 0);

        *out = buf + headroom_bytes;
        *out_bytes = bound_bytes - z->avail_out;
        assert(*out_bytes >= GZIP_MEMBER_BYTES_MIN);
        return 0;

out_library:
        log_error("compress: zlib deflate failed (%d) at level %d on %zu bytes; "
                  "the gzip stream is dropped and the thread's deflater rebuilt",
                  zrc, level, src_bytes);
        if (t->has_deflater) {
                deflateEnd(z);
                t->has_deflater = false;
        }
        return -EIO;
}
