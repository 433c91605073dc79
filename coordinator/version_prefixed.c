/*
 * version_prefixed.c - see version_prefixed.h.
 */
#include "version_prefixed.h"

#include <assert.h>
#include <errno.h>

int version_prefixed_begin(struct arena *a, int16_t version, int64_t body_bytes, struct kwriter *w)
{
        if (body_bytes < 0 || body_bytes > INT32_MAX - 2)
                return -EINVAL;
        uint8_t *buf = arena_alloc(a, 2 + (size_t)body_bytes);
        if (!buf)
                return -ENOMEM;
        kw_init(w, buf, 2 + (size_t)body_bytes);
        kw_i16(w, version);
        return 0;
}

struct kbytes version_prefixed_end(const struct kwriter *w)
{
        assert(w->p == w->end);
        return (struct kbytes){ w->start, (int32_t)(w->end - w->start) };
}
