/*
 * batch_build.c - see batch_build.h.
 */
#include "batch_build.h"

#include <assert.h>
#include <errno.h>

int batch_build(const struct record_batch_spec *spec, struct arena *a, uint8_t **batch_out, size_t *len_out)
{
        size_t size = record_batch_encoded_size(spec);
        if (size == SIZE_MAX)
                return -EINVAL;
        uint8_t *batch = arena_alloc(a, size);
        if (!batch)
                return -ENOMEM;
        size_t written = record_batch_encode(spec, batch, size);
        assert(written == size);
        (void)written;
        *batch_out = batch;
        *len_out = size;
        return 0;
}
