/*
 * time_index.h - the sparse time index of a segment (`.timeindex`), in
 * Kafka's file format, held in memory.
 *
 * File format (Kafka's TimeIndex): 12-byte entries, a big-endian int64
 * timestamp and a big-endian int32 offset relative to the segment's base
 * offset. Timestamps strictly increase from entry to entry; offsets never
 * decrease. Preallocated and trimmed like the offset index, with
 * segment.index.bytes rounded down to a multiple of 12.
 *
 * What an entry means, as Kafka's LogSegment writes it: the segment keeps
 * the largest batch maxTimestamp seen so far and the offset that goes with
 * it (the LAST offset of the first batch that carried it). Whenever an
 * offset index entry is written, (max timestamp so far, its offset) is
 * offered to the time index, which takes it only if the timestamp is
 * larger than its last entry's. When the segment is rolled or closed the
 * final maximum is offered once more, even into the slot that is always
 * kept free for it (Kafka's isFull reserves the last one).
 *
 * Pure, like offset_index: the caller does the I/O. Thread-confined.
 */
#ifndef RUNNEL_TIME_INDEX_H
#define RUNNEL_TIME_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TIME_INDEX_ENTRY_BYTES 12
#define TIME_INDEX_FILE_SUFFIX ".timeindex"
#define TIME_INDEX_NO_TIMESTAMP (-1LL)

/* An entry with the absolute offset. */
struct time_index_entry {
        int64_t timestamp_ms;
        int64_t offset;
};

struct time_index_slot {
        int64_t timestamp_ms;
        uint32_t relative_offset;
};

struct time_index {
        int64_t base_offset;
        uint32_t entry_count;
        uint32_t entry_count_max;       /* segment.index.bytes / 12 */
        uint32_t capacity;
        struct time_index_slot *slots;
};

void time_index_init(struct time_index *ix, int64_t base_offset, uint32_t index_bytes_max);
void time_index_free(struct time_index *ix);

static inline uint32_t time_index_file_bytes_max(const struct time_index *ix)
{
        return ix->entry_count_max * TIME_INDEX_ENTRY_BYTES;
}
static inline uint32_t time_index_size_bytes(const struct time_index *ix)
{
        return ix->entry_count * TIME_INDEX_ENTRY_BYTES;
}
/* Full for ordinary appends: the last slot stays free for the roll entry. */
static inline bool time_index_is_full(const struct time_index *ix)
{
        return ix->entry_count + 1 >= ix->entry_count_max;
}

/*
 * Offers (timestamp, offset). Returns 1 when added, with its 12 file bytes
 * in entry_out (they belong at time_index_size_bytes() minus 12, after the
 * call); 0 when the timestamp is not above the last entry's; -ENOSPC when
 * full (is_roll_entry lifts the reserve); -ERANGE when the offset does not
 * fit; -EINVAL when the offset or timestamp goes backwards; -ENOMEM.
 */
int time_index_maybe_append(struct time_index *ix, int64_t timestamp_ms, int64_t offset, bool is_roll_entry,
                            uint8_t entry_out[TIME_INDEX_ENTRY_BYTES]);

struct time_index_entry time_index_entry_at(const struct time_index *ix, uint32_t n);

/* The last entry, or (TIME_INDEX_NO_TIMESTAMP, base_offset) when empty. */
struct time_index_entry time_index_last(const struct time_index *ix);

/* The entry with the largest timestamp <= target, or
 * (TIME_INDEX_NO_TIMESTAMP, base_offset) when there is none. */
struct time_index_entry time_index_lookup(const struct time_index *ix, int64_t target_timestamp_ms);

/* Removes the entries with offset >= offset (Kafka's truncateTo). */
void time_index_truncate_to_offset(struct time_index *ix, int64_t offset);

void time_index_truncate_to_entries(struct time_index *ix, uint32_t n);

/*
 * Loads entries from the bytes of a time index file: a run of entries in
 * order (timestamps increasing, offsets not decreasing, each offset below
 * next_offset), then nothing or zero bytes only. Returns 0, -EINVAL with
 * nothing loaded (rebuild from the log), or -ENOMEM.
 */
int time_index_load(struct time_index *ix, const uint8_t *bytes, size_t len, int64_t next_offset);

void time_index_encode(const struct time_index *ix, uint8_t *out, size_t len);

#endif
