/*
 * txn_index.h - the transaction index of a segment (`.txnindex`): the
 * aborted transactions whose abort markers were written into the segment,
 * which a read_committed Fetch returns so that consumers skip their records.
 *
 * File format (Kafka's TransactionIndex and AbortedTxn), 34-byte entries,
 * all big-endian:
 *
 *   int16 version            0 (the only version)
 *   int64 producer_id
 *   int64 first_offset       the transaction's first offset in the partition
 *   int64 last_offset        the offset of its abort marker
 *   int64 last_stable_offset the partition's LSO when the marker was written
 *
 * Entries are in the order their markers were written, so last_offset
 * strictly increases. A transaction may start in an earlier segment; the
 * entry sits in the segment that holds its marker. Kafka creates the file
 * only when the first entry is appended: a segment without aborted
 * transactions has no `.txnindex`, and so has none here.
 *
 * Owns: the open file (fd, -1 until the file exists), its size and the
 * last entry's last_offset. Invariants (asserted): size_bytes is a
 * multiple of TXN_INDEX_ENTRY_BYTES; last_offset is TXN_INDEX_NO_OFFSET
 * exactly when size_bytes is 0; fd is -1 only while size_bytes is 0.
 *
 * I/O is pread/pwrite on the file; nothing is mapped. Thread-confined to
 * the partition's owner. Errors are negative errno values.
 */
#ifndef RUNNEL_LOG_TXN_INDEX_H
#define RUNNEL_LOG_TXN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "logdir.h"

#define TXN_INDEX_ENTRY_BYTES 34
#define TXN_INDEX_FILE_SUFFIX ".txnindex"
#define TXN_INDEX_VERSION 0
#define TXN_INDEX_NO_OFFSET (-1LL)

/* Limit on what one collect returns: more aborted transactions than this
 * in one fetch range answer -E2BIG (a fetch response could not carry them
 * anyway; Kafka's is bounded by the fetch size in the same way). */
#define TXN_INDEX_COLLECT_MAX 1000000u

/* One aborted transaction (Kafka's AbortedTxn). */
struct txn_aborted {
        int64_t producer_id;
        int64_t first_offset;
        int64_t last_offset;
        int64_t last_stable_offset;
};

struct txn_index {
        const struct logdir_ref *dir;   /* the partition directory; not owned */
        int fd;                         /* -1 until the file exists */
        int64_t base_offset;            /* the segment's */
        uint64_t size_bytes;
        int64_t last_offset;            /* of the last entry; TXN_INDEX_NO_OFFSET when empty */
};

/* The 34 bytes of an entry, and back (decode returns -EBADMSG for a
 * version other than 0). */
void txn_index_encode_entry(const struct txn_aborted *t, uint8_t out[TXN_INDEX_ENTRY_BYTES]);
int txn_index_decode_entry(const uint8_t in[TXN_INDEX_ENTRY_BYTES], struct txn_aborted *out);

/*
 * Opens the segment's `.txnindex` in dir if it exists (a missing file
 * is an empty index, created on the first append). A partial entry at the
 * end (a crash during an append) is cut off the file. Then Kafka's sanity
 * check: every entry must have version 0, last_offset >= base_offset, and
 * last offsets must increase; otherwise -EBADMSG, with the index open,
 * its file untouched and appends refused, for the caller to
 * txn_index_reset() and rebuild from the log. Returns 0 or -errno.
 */
int txn_index_open(struct txn_index *ix, const struct logdir_ref *dir, int64_t base_offset);

/* Closes the file; the struct may be opened again. */
void txn_index_close(struct txn_index *ix);

/* Closes and unlinks the file (a deleted segment). 0 or -errno; a file
 * that never existed is 0. */
int txn_index_delete(struct txn_index *ix);

/* Entries in the index. */
static inline uint64_t txn_index_entry_count(const struct txn_index *ix)
{
        return ix->size_bytes / TXN_INDEX_ENTRY_BYTES;
}

/*
 * Appends an entry, creating the file if needed. -EINVAL (nothing written)
 * when t->last_offset is not above the last entry's, is below the
 * segment's base offset, or first_offset is above last_offset; otherwise 0 or -errno from the write, in which case
 * the index keeps its previous size (a torn entry is overwritten by the
 * next append and cut by the next open).
 */
int txn_index_append(struct txn_index *ix, const struct txn_aborted *t);

/* fdatasync of the file, if there is one. */
int txn_index_flush(struct txn_index *ix);

/* Kafka's truncateTo: removes the first entry whose last_offset >= offset
 * and everything after it. 0 or -errno. */
int txn_index_truncate_to(struct txn_index *ix, int64_t offset);

/* Removes every entry. 0 or -errno. */
int txn_index_reset(struct txn_index *ix);

/* A growable list of aborted transactions (malloc'd). */
struct txn_aborted_list {
        struct txn_aborted *items;
        uint32_t count;
        uint32_t cap;
};

void txn_aborted_list_free(struct txn_aborted_list *l);

/*
 * Kafka's collectAbortedTxns over one index: appends to out every entry
 * that overlaps the fetch range [from_offset, upper_offset), that is
 * last_offset >= from_offset and first_offset < upper_offset, in file
 * order. Stops after the first entry whose last_stable_offset >=
 * upper_offset, with *is_complete true: no later entry (in this segment or
 * a later one) can overlap the range. Returns 0, -ENOMEM, -E2BIG (more
 * than TXN_INDEX_COLLECT_MAX in out) or -errno of a read (-EIO for a file
 * shorter than the index believes).
 */
int txn_index_collect(const struct txn_index *ix, int64_t from_offset, int64_t upper_offset,
                      struct txn_aborted_list *out, bool *is_complete);

/*
 * The same across segments (Kafka's collectAbortedTransactions): indexes
 * are those of the segment holding from_offset and every later segment,
 * in offset order; the search stops at the first complete one.
 */
int txn_index_collect_range(const struct txn_index *const *indexes, uint32_t index_count, int64_t from_offset,
                            int64_t upper_offset, struct txn_aborted_list *out);

#endif
