/*
 * offset_index.h - the sparse offset index of a segment (`.index`), in
 * Kafka's file format, held in memory.
 *
 * File format (Kafka's OffsetIndex): a sequence of 8-byte entries, each a
 * big-endian int32 offset relative to the segment's base offset and a
 * big-endian int32 byte position in the segment's .log file. Entries are
 * strictly increasing in both. The file is preallocated with zeros to
 * segment.index.bytes rounded down to a multiple of 8 while the segment
 * is active, and cut to the used entries when it is rolled or closed.
 *
 * What an entry means, as Kafka 4.4's LogSegment.append writes it:
 * appended batches are counted in bytes; when more than
 * log.index.interval.bytes have gone by since the last entry, the next
 * batch gets an entry before its bytes are counted: (the LAST offset of
 * that batch, the position where the batch STARTS). Kafka 3.x wrote one
 * per append, (largest offset of the append, where the append starts);
 * either way the batch holding any offset >= the entry's offset starts at
 * or after the entry's position, which is all a lookup needs. No entry
 * ever has position 0 (a batch at 0 has nothing before it).
 *
 * This module is pure: it computes entries and their bytes, searches and
 * truncates; the caller (segment.c) does the file I/O. Entries live in a
 * growable array (8 bytes per entry, one entry per ~4 KiB of log, 0.2% of
 * the log's size) instead of Kafka's mmap, so a lookup never blocks on a
 * page fault; a later change may drop the arrays of cold segments.
 *
 * Thread-confined: an index belongs to its segment's thread.
 */
#ifndef RUNNEL_OFFSET_INDEX_H
#define RUNNEL_OFFSET_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OFFSET_INDEX_ENTRY_BYTES 8
#define OFFSET_INDEX_FILE_SUFFIX ".index"

/* An entry with the absolute offset. */
struct offset_index_entry {
        int64_t offset;
        uint32_t position_bytes;
};

struct offset_index_slot {
        uint32_t relative_offset;
        uint32_t position_bytes;
};

struct offset_index {
        int64_t base_offset;
        uint32_t entry_count;
        uint32_t entry_count_max;       /* segment.index.bytes / 8 */
        uint32_t capacity;              /* slots allocated */
        struct offset_index_slot *slots;
};

/* index_bytes_max is segment.index.bytes; at least one entry. */
void offset_index_init(struct offset_index *ix, int64_t base_offset, uint32_t index_bytes_max);
void offset_index_free(struct offset_index *ix);

/* The preallocated file size: index_bytes_max rounded down to an entry. */
static inline uint32_t offset_index_file_bytes_max(const struct offset_index *ix)
{
        return ix->entry_count_max * OFFSET_INDEX_ENTRY_BYTES;
}
/* The bytes the entries take, the file size after a trim. */
static inline uint32_t offset_index_size_bytes(const struct offset_index *ix)
{
        return ix->entry_count * OFFSET_INDEX_ENTRY_BYTES;
}
static inline bool offset_index_is_full(const struct offset_index *ix)
{
        return ix->entry_count >= ix->entry_count_max;
}

/* Whether offset fits the 4-byte relative form: 0 <= offset - base <= INT32_MAX. */
bool offset_index_can_hold(const struct offset_index *ix, int64_t offset);

/*
 * Adds (offset, position) at the end and writes the entry's 8 file bytes
 * to entry_out; they belong at file position offset_index_size_bytes()
 * minus 8, after the call. Returns 0, -ENOSPC when full, -ERANGE when the
 * offset does not fit, -EINVAL unless offset and position are both larger
 * than the last entry's, -ENOMEM.
 */
int offset_index_append(struct offset_index *ix, int64_t offset, uint32_t position_bytes,
                        uint8_t entry_out[OFFSET_INDEX_ENTRY_BYTES]);

/* The n-th entry; n < entry_count. */
struct offset_index_entry offset_index_entry_at(const struct offset_index *ix, uint32_t n);

/* The last entry, or (base_offset, 0) when empty. */
struct offset_index_entry offset_index_last(const struct offset_index *ix);

/* The entry with the largest offset <= target, or (base_offset, 0) when
 * there is none: where a forward scan for target may start. */
struct offset_index_entry offset_index_lookup(const struct offset_index *ix, int64_t target_offset);

/* Removes the entries with offset >= offset (Kafka's truncateTo). */
void offset_index_truncate_to_offset(struct offset_index *ix, int64_t offset);

/* Keeps the first n entries. */
void offset_index_truncate_to_entries(struct offset_index *ix, uint32_t n);

/*
 * Loads entries from the bytes of an index file. A valid file is a run of
 * entries, strictly increasing, every position inside [1, log_size_bytes),
 * followed by nothing or only by zero bytes (a preallocated file). Returns
 * 0 with the entries loaded, or -EINVAL with none loaded when the bytes are
 * anything else (the caller rebuilds the index from the log), or -ENOMEM.
 */
int offset_index_load(struct offset_index *ix, const uint8_t *bytes, size_t len, uint32_t log_size_bytes);

/* Writes all entries, as the file holds them, into out (at least
 * offset_index_size_bytes()). */
void offset_index_encode(const struct offset_index *ix, uint8_t *out, size_t len);

#endif
