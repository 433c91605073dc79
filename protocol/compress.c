/*
 * compress.c - the codec-independent half of compress.h: argument checks,
 * dispatch by codec id, Kafka's level rules, and the per-thread slots that
 * hold each codec's library contexts.
 *
 * Invariants:
 *   - a codec function is called only with a codec 1-4, a level Kafka
 *     accepts, src_bytes <= COMPRESS_BYTES_MAX (and >= 1 to decode) and
 *     out_max_bytes <= COMPRESS_BYTES_MAX (see compress_codec.h);
 *   - *out and *out_bytes are NULL/0 unless the call returns 0;
 *   - a thread's slots are non-NULL only after the thread registered with
 *     the exit destructor, so every context made is freed at thread exit.
 */
#include "compress.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "compress_codec.h"

/* ---- per-thread contexts ---- */

static __thread void *thread_slots[COMPRESS_SLOT_COUNT];
static __thread bool is_thread_registered;

static pthread_key_t thread_exit_key;
static pthread_once_t thread_exit_once = PTHREAD_ONCE_INIT;
static bool is_thread_exit_key_made;

static void compress_on_thread_exit(void *unused)
{
        (void)unused;
        compress_thread_release();
        /* A later destructor that compresses registers again, and glibc
         * runs destructors again for keys set during a round. */
        is_thread_registered = false;
}

static void compress_make_thread_exit_key(void)
{
        is_thread_exit_key_made = pthread_key_create(&thread_exit_key, compress_on_thread_exit) == 0;
}

void *compress_thread_slot(enum compress_slot slot)
{
        assert(slot < COMPRESS_SLOT_COUNT);
        return thread_slots[slot];
}

void compress_thread_slot_set(enum compress_slot slot, void *state)
{
        assert(slot < COMPRESS_SLOT_COUNT);
        assert(thread_slots[slot] == NULL);
        assert(state != NULL);
        if (!is_thread_registered) {
                pthread_once(&thread_exit_once, compress_make_thread_exit_key);
                /* The destructor runs only for a non-NULL value; what the
                 * value is does not matter, the slots are thread-local. If
                 * the key could not be made the contexts live until
                 * compress_thread_release() or process exit. */
                if (is_thread_exit_key_made)
                        pthread_setspecific(thread_exit_key, &thread_slots);
                is_thread_registered = true;
        }
        thread_slots[slot] = state;
}

void compress_thread_release(void)
{
        static void (*const release[COMPRESS_SLOT_COUNT])(void *) = {
                [COMPRESS_SLOT_GZIP] = compress_gzip_release,
                [COMPRESS_SLOT_LZ4] = compress_lz4_release,
                [COMPRESS_SLOT_ZSTD] = compress_zstd_release,
        };
        for (int i = 0; i < COMPRESS_SLOT_COUNT; i++) {
                if (thread_slots[i]) {
                        release[i](thread_slots[i]);
                        thread_slots[i] = NULL;
                }
        }
}

/* ---- codecs and levels ---- */

const char *compress_codec_name(enum compress_codec codec)
{
        switch (codec) {
        case COMPRESS_CODEC_NONE:
                return "none";
        case COMPRESS_CODEC_GZIP:
                return "gzip";
        case COMPRESS_CODEC_SNAPPY:
                return "snappy";
        case COMPRESS_CODEC_LZ4:
                return "lz4";
        case COMPRESS_CODEC_ZSTD:
                return "zstd";
        }
        return NULL;
}

int compress_level_default(enum compress_codec codec)
{
        switch (codec) {
        case COMPRESS_CODEC_GZIP:
                return COMPRESS_GZIP_LEVEL_DEFAULT;
        case COMPRESS_CODEC_LZ4:
                return COMPRESS_LZ4_LEVEL_DEFAULT;
        case COMPRESS_CODEC_ZSTD:
                return COMPRESS_ZSTD_LEVEL_DEFAULT;
        case COMPRESS_CODEC_SNAPPY:
        case COMPRESS_CODEC_NONE:
                break;
        }
        assert(codec == COMPRESS_CODEC_SNAPPY);
        return 0;
}

/* The ranges are Kafka's CompressionType MIN_LEVEL / MAX_LEVEL. */
bool compress_level_is_valid(enum compress_codec codec, int level)
{
        switch (codec) {
        case COMPRESS_CODEC_GZIP:
                return level == COMPRESS_GZIP_LEVEL_DEFAULT || (level >= 1 && level <= 9);
        case COMPRESS_CODEC_SNAPPY:
                return true;
        case COMPRESS_CODEC_LZ4:
                return level >= 1 && level <= 17;
        case COMPRESS_CODEC_ZSTD:
                return level >= -131072 && level <= 22;
        case COMPRESS_CODEC_NONE:
                break;
        }
        return false;
}

/* ---- entry points ---- */

int compress_decode(enum compress_codec codec, const uint8_t *src, size_t src_bytes,
                    size_t out_max_bytes, struct arena *a, uint8_t **out, size_t *out_bytes)
{
        assert(a != NULL && out != NULL && out_bytes != NULL);
        assert(src != NULL || src_bytes == 0);
        *out = NULL;
        *out_bytes = 0;
        if (out_max_bytes > COMPRESS_BYTES_MAX)
                out_max_bytes = COMPRESS_BYTES_MAX;

        int rc;
        if (codec < COMPRESS_CODEC_GZIP || codec > COMPRESS_CODEC_ZSTD)
                return -EINVAL;
        if (src_bytes == 0)
                return -EBADMSG;
        /* A batch cannot be this large; refusing it here lets every codec
         * hand lengths to 32-bit library interfaces unchecked. */
        if (src_bytes > COMPRESS_BYTES_MAX)
                return -EFBIG;

        switch (codec) {
        case COMPRESS_CODEC_GZIP:
                rc = compress_gzip_decode(src, src_bytes, out_max_bytes, a, out, out_bytes);
                break;
        case COMPRESS_CODEC_SNAPPY:
                rc = compress_snappy_decode(src, src_bytes, out_max_bytes, a, out, out_bytes);
                break;
        case COMPRESS_CODEC_LZ4:
                rc = compress_lz4_decode(src, src_bytes, out_max_bytes, a, out, out_bytes);
                break;
        case COMPRESS_CODEC_ZSTD:
                rc = compress_zstd_decode(src, src_bytes, out_max_bytes, a, out, out_bytes);
                break;
        default:
                return -EINVAL;
        }

        assert(rc <= 0);
        if (rc < 0) {
                assert(rc == -EBADMSG || rc == -EFBIG || rc == -ENOMEM || rc == -EIO);
                *out = NULL;
                *out_bytes = 0;
                return rc;
        }
        assert(*out != NULL);
        assert(*out_bytes <= out_max_bytes);
        return 0;
}

int compress_encode(enum compress_codec codec, int level, const uint8_t *src, size_t src_bytes,
                    size_t headroom_bytes, struct arena *a, uint8_t **out, size_t *out_bytes)
{
        assert(a != NULL && out != NULL && out_bytes != NULL);
        assert(src != NULL || src_bytes == 0);
        *out = NULL;
        *out_bytes = 0;

        int rc;
        if (!compress_level_is_valid(codec, level))
                return -EINVAL;
        if (src_bytes > COMPRESS_BYTES_MAX)
                return -EFBIG;

        switch (codec) {
        case COMPRESS_CODEC_GZIP:
                rc = compress_gzip_encode(level, src, src_bytes, headroom_bytes, a, out, out_bytes);
                break;
        case COMPRESS_CODEC_SNAPPY:
                rc = compress_snappy_encode(src, src_bytes, headroom_bytes, a, out, out_bytes);
                break;
        case COMPRESS_CODEC_LZ4:
                rc = compress_lz4_encode(level, src, src_bytes, headroom_bytes, a, out, out_bytes);
                break;
        case COMPRESS_CODEC_ZSTD:
                rc = compress_zstd_encode(level, src, src_bytes, headroom_bytes, a, out, out_bytes);
                break;
        default:
                return -EINVAL;
        }

        assert(rc <= 0);
        if (rc < 0) {
                assert(rc == -ENOMEM || rc == -EIO);
                *out = NULL;
                *out_bytes = 0;
                return rc;
        }
        assert(*out != NULL);
        assert(*out_bytes >= 1);
        return 0;
}
