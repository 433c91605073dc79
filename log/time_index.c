/*
 * time_index.c - entries of the `.timeindex` file; see time_index.h.
 *
 * Invariants (the tail is asserted by time_index_check after every change;
 * load checks every entry):
 *   - entry_count <= capacity, entry_count <= entry_count_max;
 *   - timestamps strictly increase, relative offsets never decrease and
 *     stay within INT32_MAX.
 *
 * One ambiguity of the format: an entry of timestamp 0 at relative offset 0
 * is all zero bytes, the same as an unused preallocated slot. Loading takes
 * the first all-zero entry as the end, so such an entry (records stamped at
 * the epoch) is dropped on reload; lookups stay correct, only less sparse.
 */
#include "time_index.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TIME_INDEX_CAPACITY_MIN 64u

static void time_index_check(const struct time_index *ix)
{
        assert(ix->entry_count <= ix->capacity || (ix->entry_count == 0 && ix->capacity == 0));
        assert(ix->entry_count <= ix->entry_count_max);
        if (ix->entry_count == 0)
                return;

        const struct time_index_slot *last = &ix->slots[ix->entry_count - 1];

        assert(last->relative_offset <= INT32_MAX);
        if (ix->entry_count >= 2) {
                assert(last->timestamp_ms > last[-1].timestamp_ms);
                assert(last->relative_offset >= last[-1].relative_offset);
        }
        (void)last;
}

void time_index_init(struct time_index *ix, int64_t base_offset, uint32_t index_bytes_max)
{
        assert(base_offset >= 0);
        assert(index_bytes_max >= 2 * TIME_INDEX_ENTRY_BYTES);
        memset(ix, 0, sizeof(*ix));
        ix->base_offset = base_offset;
        ix->entry_count_max = index_bytes_max / TIME_INDEX_ENTRY_BYTES;
}

void time_index_free(struct time_index *ix)
{
        free(ix->slots);
        ix->slots = NULL;
        ix->capacity = 0;
        ix->entry_count = 0;
}

static int time_index_reserve(struct time_index *ix, uint32_t count)
{
        if (count <= ix->capacity)
                return 0;

        uint64_t cap = ix->capacity ? ix->capacity : TIME_INDEX_CAPACITY_MIN;

        while (cap < count)
                cap *= 2;
        if (cap > ix->entry_count_max)
                cap = ix->entry_count_max;
        assert(cap >= count);

        struct time_index_slot *slots = realloc(ix->slots, (size_t)cap * sizeof(*slots));

        if (slots == NULL)
                return -ENOMEM;
        ix->slots = slots;
        ix->capacity = (uint32_t)cap;
        return 0;
}

static void time_index_encode_slot(const struct time_index_slot *s, uint8_t *out)
{
        uint64_t ts = (uint64_t)s->timestamp_ms;

        for (int i = 0; i < 8; i++)
                out[i] = (uint8_t)(ts >> (56 - 8 * i));
        out[8] = (uint8_t)(s->relative_offset >> 24);
        out[9] = (uint8_t)(s->relative_offset >> 16);
        out[10] = (uint8_t)(s->relative_offset >> 8);
        out[11] = (uint8_t)s->relative_offset;
}

static struct time_index_slot time_index_decode_slot(const uint8_t *p)
{
        uint64_t ts = 0;

        for (int i = 0; i < 8; i++)
                ts = ts << 8 | p[i];
        return (struct time_index_slot){
                .timestamp_ms = (int64_t)ts,
                .relative_offset = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11],
        };
}

struct time_index_entry time_index_entry_at(const struct time_index *ix, uint32_t n)
{
        assert(n < ix->entry_count);
        return (struct time_index_entry){
                .timestamp_ms = ix->slots[n].timestamp_ms,
                .offset = ix->base_offset + ix->slots[n].relative_offset,
        };
}

struct time_index_entry time_index_last(const struct time_index *ix)
{
        if (ix->entry_count == 0)
                return (struct time_index_entry){ TIME_INDEX_NO_TIMESTAMP, ix->base_offset };
        return time_index_entry_at(ix, ix->entry_count - 1);
}

int time_index_maybe_append(struct time_index *ix, int64_t timestamp_ms, int64_t offset, bool is_roll_entry,
                            uint8_t entry_out[TIME_INDEX_ENTRY_BYTES])
{
        struct time_index_entry last = time_index_last(ix);

        /* Kafka's order: full, going backwards, then "not larger"; the
         * offset is only converted when an entry is made, so an unknown
         * maximum (-1, -1) offered to an empty index is simply not taken. */
        if (!is_roll_entry && time_index_is_full(ix))
                return -ENOSPC;
        if (ix->entry_count >= ix->entry_count_max)
                return -ENOSPC;
        if (ix->entry_count > 0 && (offset < last.offset || timestamp_ms < last.timestamp_ms))
                return -EINVAL;
        if (timestamp_ms <= last.timestamp_ms)
                return 0;
        if (offset < ix->base_offset || offset - ix->base_offset > INT32_MAX)
                return -ERANGE;

        int rc = time_index_reserve(ix, ix->entry_count + 1);

        if (rc < 0)
                return rc;

        struct time_index_slot *s = &ix->slots[ix->entry_count++];

        s->timestamp_ms = timestamp_ms;
        s->relative_offset = (uint32_t)(offset - ix->base_offset);
        time_index_encode_slot(s, entry_out);
        time_index_check(ix);
        return 1;
}

/* Largest slot whose key (timestamp or offset) is <= target, or -1. */
static int64_t time_index_floor_slot(const struct time_index *ix, int64_t target, bool by_offset)
{
        int64_t lo = 0, hi = (int64_t)ix->entry_count - 1;

#define TIME_INDEX_KEY(i) (by_offset ? ix->base_offset + ix->slots[i].relative_offset : ix->slots[i].timestamp_ms)
        if (ix->entry_count == 0 || TIME_INDEX_KEY(0) > target)
                return -1;
        while (lo < hi) {
                int64_t mid = lo + (hi - lo + 1) / 2;

                if (TIME_INDEX_KEY(mid) <= target)
                        lo = mid;
                else
                        hi = mid - 1;
        }
        assert(TIME_INDEX_KEY(lo) <= target);
#undef TIME_INDEX_KEY
        return lo;
}

struct time_index_entry time_index_lookup(const struct time_index *ix, int64_t target_timestamp_ms)
{
        int64_t slot = time_index_floor_slot(ix, target_timestamp_ms, false);

        if (slot < 0)
                return (struct time_index_entry){ TIME_INDEX_NO_TIMESTAMP, ix->base_offset };
        return time_index_entry_at(ix, (uint32_t)slot);
}

void time_index_truncate_to_entries(struct time_index *ix, uint32_t n)
{
        assert(n <= ix->entry_count);
        ix->entry_count = n;
        time_index_check(ix);
}

void time_index_truncate_to_offset(struct time_index *ix, int64_t offset)
{
        /* Offsets may repeat; the floor search finds the last of a run,
         * and Kafka then drops only that one when it equals offset. With
         * strictly increasing timestamps a repeat can only be the roll
         * entry, so the difference is one entry at most. Drop them all:
         * no entry may point at a truncated offset. */
        int64_t slot = time_index_floor_slot(ix, offset, true);
        uint32_t keep = slot < 0 ? 0 : (uint32_t)slot + 1;

        while (keep > 0 && time_index_entry_at(ix, keep - 1).offset >= offset)
                keep--;
        time_index_truncate_to_entries(ix, keep);
}

static bool time_index_is_zero(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i] != 0)
                        return false;
        return true;
}

int time_index_load(struct time_index *ix, const uint8_t *bytes, size_t len, int64_t next_offset)
{
        ix->entry_count = 0;
        if (len == 0)
                return 0;
        if (len % TIME_INDEX_ENTRY_BYTES != 0)
                return -EINVAL;

        size_t n = len / TIME_INDEX_ENTRY_BYTES;
        uint32_t used = 0;

        while (used < n && !time_index_is_zero(bytes + (size_t)used * TIME_INDEX_ENTRY_BYTES,
                                               TIME_INDEX_ENTRY_BYTES))
                used++;
        if (!time_index_is_zero(bytes + (size_t)used * TIME_INDEX_ENTRY_BYTES,
                                len - (size_t)used * TIME_INDEX_ENTRY_BYTES))
                return -EINVAL;
        if (used > ix->entry_count_max)
                return -EINVAL;

        int rc = time_index_reserve(ix, used);

        if (rc < 0)
                return rc;
        for (uint32_t i = 0; i < used; i++) {
                struct time_index_slot s = time_index_decode_slot(bytes + (size_t)i * TIME_INDEX_ENTRY_BYTES);

                if (s.relative_offset > INT32_MAX || ix->base_offset + s.relative_offset >= next_offset)
                        goto out_invalid;
                if (i > 0 && (s.timestamp_ms <= ix->slots[i - 1].timestamp_ms ||
                              s.relative_offset < ix->slots[i - 1].relative_offset))
                        goto out_invalid;
                ix->slots[i] = s;
        }
        ix->entry_count = used;
        time_index_check(ix);
        return 0;

out_invalid:
        ix->entry_count = 0;
        return -EINVAL;
}

void time_index_encode(const struct time_index *ix, uint8_t *out, size_t len)
{
        assert(len >= time_index_size_bytes(ix));
        for (uint32_t i = 0; i < ix->entry_count; i++)
                time_index_encode_slot(&ix->slots[i], out + (size_t)i * TIME_INDEX_ENTRY_BYTES);
}
