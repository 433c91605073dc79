/*
 * offset_index.c - entries of the `.index` file; see offset_index.h.
 *
 * Invariants (the tail is asserted by offset_index_check after every change;
 * load checks every entry):
 *   - entry_count <= capacity, entry_count <= entry_count_max;
 *   - relative offsets and positions strictly increase from slot to slot;
 *   - no position is 0 and no relative offset passes INT32_MAX.
 *
 * Searches are plain binary searches over memory. Kafka splits its search
 * into a "warm" tail and the rest so lookups near the end touch the same
 * mmap pages; with the entries in an array that concern does not arise.
 */
#include "offset_index.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define OFFSET_INDEX_CAPACITY_MIN 64u

/* O(1): the counts and the last two entries; appends and truncations
 * keep the rest as it was, so checking the tail each time covers all. */
static void offset_index_check(const struct offset_index *ix)
{
        assert(ix->entry_count <= ix->capacity || (ix->entry_count == 0 && ix->capacity == 0));
        assert(ix->entry_count <= ix->entry_count_max);
        if (ix->entry_count == 0)
                return;

        const struct offset_index_slot *last = &ix->slots[ix->entry_count - 1];

        assert(last->position_bytes > 0 && last->position_bytes <= INT32_MAX);
        assert(last->relative_offset <= INT32_MAX);
        if (ix->entry_count >= 2) {
                assert(last->relative_offset > last[-1].relative_offset);
                assert(last->position_bytes > last[-1].position_bytes);
        }
        (void)last;
}

void offset_index_init(struct offset_index *ix, int64_t base_offset, uint32_t index_bytes_max)
{
        assert(base_offset >= 0);
        assert(index_bytes_max >= OFFSET_INDEX_ENTRY_BYTES);
        memset(ix, 0, sizeof(*ix));
        ix->base_offset = base_offset;
        ix->entry_count_max = index_bytes_max / OFFSET_INDEX_ENTRY_BYTES;
}

void offset_index_free(struct offset_index *ix)
{
        free(ix->slots);
        ix->slots = NULL;
        ix->capacity = 0;
        ix->entry_count = 0;
}

bool offset_index_can_hold(const struct offset_index *ix, int64_t offset)
{
        return offset >= ix->base_offset && offset - ix->base_offset <= INT32_MAX;
}

static int offset_index_reserve(struct offset_index *ix, uint32_t count)
{
        if (count <= ix->capacity)
                return 0;

        uint64_t cap = ix->capacity ? ix->capacity : OFFSET_INDEX_CAPACITY_MIN;

        while (cap < count)
                cap *= 2;
        if (cap > ix->entry_count_max)
                cap = ix->entry_count_max;
        assert(cap >= count);

        struct offset_index_slot *slots = realloc(ix->slots, (size_t)cap * sizeof(*slots));

        if (slots == NULL)
                return -ENOMEM;
        ix->slots = slots;
        ix->capacity = (uint32_t)cap;
        return 0;
}

static void offset_index_encode_slot(const struct offset_index_slot *s, uint8_t *out)
{
        uint32_t v[2] = { s->relative_offset, s->position_bytes };

        for (int i = 0; i < 2; i++) {
                out[4 * i + 0] = (uint8_t)(v[i] >> 24);
                out[4 * i + 1] = (uint8_t)(v[i] >> 16);
                out[4 * i + 2] = (uint8_t)(v[i] >> 8);
                out[4 * i + 3] = (uint8_t)v[i];
        }
}

static uint32_t offset_index_load_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int offset_index_append(struct offset_index *ix, int64_t offset, uint32_t position_bytes,
                        uint8_t entry_out[OFFSET_INDEX_ENTRY_BYTES])
{
        if (offset_index_is_full(ix))
                return -ENOSPC;
        if (!offset_index_can_hold(ix, offset) || position_bytes > INT32_MAX)
                return -ERANGE;
        if (position_bytes == 0)
                return -EINVAL;
        if (ix->entry_count > 0) {
                struct offset_index_entry last = offset_index_last(ix);

                if (offset <= last.offset || position_bytes <= last.position_bytes)
                        return -EINVAL;
        }

        int rc = offset_index_reserve(ix, ix->entry_count + 1);

        if (rc < 0)
                return rc;

        struct offset_index_slot *s = &ix->slots[ix->entry_count++];

        s->relative_offset = (uint32_t)(offset - ix->base_offset);
        s->position_bytes = position_bytes;
        offset_index_encode_slot(s, entry_out);
        offset_index_check(ix);
        return 0;
}

struct offset_index_entry offset_index_entry_at(const struct offset_index *ix, uint32_t n)
{
        assert(n < ix->entry_count);
        return (struct offset_index_entry){
                .offset = ix->base_offset + ix->slots[n].relative_offset,
                .position_bytes = ix->slots[n].position_bytes,
        };
}

struct offset_index_entry offset_index_last(const struct offset_index *ix)
{
        if (ix->entry_count == 0)
                return (struct offset_index_entry){ ix->base_offset, 0 };
        return offset_index_entry_at(ix, ix->entry_count - 1);
}

/* Slot of the largest entry with offset <= target, or -1. */
static int64_t offset_index_floor_slot(const struct offset_index *ix, int64_t target)
{
        if (ix->entry_count == 0 || target < ix->base_offset)
                return -1;
        int64_t rel = target - ix->base_offset;
        int64_t lo = 0, hi = (int64_t)ix->entry_count - 1;

        if ((int64_t)ix->slots[0].relative_offset > rel)
                return -1;
        /* slots[lo] <= rel holds throughout. */
        while (lo < hi) {
                int64_t mid = lo + (hi - lo + 1) / 2;

                if ((int64_t)ix->slots[mid].relative_offset <= rel)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        assert((int64_t)ix->slots[lo].relative_offset <= rel);
        assert(lo + 1 == ix->entry_count || (int64_t)ix->slots[lo + 1].relative_offset > rel);
        return lo;
}

struct offset_index_entry offset_index_lookup(const struct offset_index *ix, int64_t target_offset)
{
        int64_t slot = offset_index_floor_slot(ix, target_offset);

        if (slot < 0)
                return (struct offset_index_entry){ ix->base_offset, 0 };
        return offset_index_entry_at(ix, (uint32_t)slot);
}

void offset_index_truncate_to_entries(struct offset_index *ix, uint32_t n)
{
        assert(n <= ix->entry_count);
        ix->entry_count = n;
        offset_index_check(ix);
}

void offset_index_truncate_to_offset(struct offset_index *ix, int64_t offset)
{
        int64_t slot = offset_index_floor_slot(ix, offset);
        uint32_t keep;

        /* Kafka's three cases: nothing <= offset, an entry for offset
         * itself (it goes too), or entries below it (they stay). */
        if (slot < 0)
                keep = 0;
        else if (offset_index_entry_at(ix, (uint32_t)slot).offset == offset)
                keep = (uint32_t)slot;
        else
                keep = (uint32_t)slot + 1;
        offset_index_truncate_to_entries(ix, keep);
}

static bool offset_index_is_zero(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i] != 0)
                        return false;
        return true;
}

int offset_index_load(struct offset_index *ix, const uint8_t *bytes, size_t len, uint32_t log_size_bytes)
{
        ix->entry_count = 0;
        if (len == 0)
                return 0;
        if (len % OFFSET_INDEX_ENTRY_BYTES != 0)
                return -EINVAL;

        size_t n = len / OFFSET_INDEX_ENTRY_BYTES;
        uint32_t used = 0;

        while (used < n && !offset_index_is_zero(bytes + (size_t)used * OFFSET_INDEX_ENTRY_BYTES,
                                                  OFFSET_INDEX_ENTRY_BYTES))
                used++;
        if (!offset_index_is_zero(bytes + (size_t)used * OFFSET_INDEX_ENTRY_BYTES,
                                  len - (size_t)used * OFFSET_INDEX_ENTRY_BYTES))
                return -EINVAL;         /* something after the zeros */
        if (used > ix->entry_count_max)
                return -EINVAL;         /* written under a larger segment.index.bytes */

        int rc = offset_index_reserve(ix, used);

        if (rc < 0)
                return rc;
        for (uint32_t i = 0; i < used; i++) {
                const uint8_t *p = bytes + (size_t)i * OFFSET_INDEX_ENTRY_BYTES;
                struct offset_index_slot s = {
                        .relative_offset = offset_index_load_be32(p),
                        .position_bytes = offset_index_load_be32(p + 4),
                };

                if (s.relative_offset > INT32_MAX || s.position_bytes == 0 ||
                    s.position_bytes >= log_size_bytes)
                        goto out_invalid;
                if (i > 0 && (s.relative_offset <= ix->slots[i - 1].relative_offset ||
                              s.position_bytes <= ix->slots[i - 1].position_bytes))
                        goto out_invalid;
                ix->slots[i] = s;
        }
        ix->entry_count = used;
        offset_index_check(ix);
        return 0;

out_invalid:
        ix->entry_count = 0;
        return -EINVAL;
}

void offset_index_encode(const struct offset_index *ix, uint8_t *out, size_t len)
{
        assert(len >= offset_index_size_bytes(ix));
        for (uint32_t i = 0; i < ix->entry_count; i++)
                offset_index_encode_slot(&ix->slots[i], out + (size_t)i * OFFSET_INDEX_ENTRY_BYTES);
}
