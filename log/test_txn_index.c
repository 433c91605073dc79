/*
 * test_txn_index.c - the `.txnindex` file: Kafka's 34-byte entries byte for
 * byte, append order, collecting aborted transactions for a fetch range
 * within one segment and across segments, truncation, and what open does
 * with a torn tail and a corrupt file.
 *
 * Expected bytes are written out by hand from Kafka's AbortedTxn layout
 * (int16 version, then four big-endian int64s), not by the code under test.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log/test_util.h"
#include "log/txn_index.h"

static char dir_path[64];
static int dir_fd = -1;
static struct logdir_ref part_dir;         /* dir_fd, as segments hold it */

static void dir_setup(void)
{
        test_util_tmpdir_make(dir_path, sizeof(dir_path), "txnidx");
        dir_fd = test_util_dir_open(dir_path);
        cr_assert_eq(logdir_ref_init(&part_dir, dir_fd, "."), 0);
}

static void dir_teardown(void)
{
        test_util_fd_close(&dir_fd);
        test_util_tmpdir_remove(dir_path);
}

TestSuite(txn_index, .init = dir_setup, .fini = dir_teardown);

static const char *file_of(int64_t base)
{
        static char path[128];
        snprintf(path, sizeof(path), "%s/%020lld.txnindex", dir_path, (long long)base);
        return path;
}

static long file_size(int64_t base)
{
        struct stat st;
        if (stat(file_of(base), &st) < 0)
                return -1;
        return (long)st.st_size;
}

static size_t read_file(int64_t base, uint8_t *buf, size_t cap)
{
        FILE *f = fopen(file_of(base), "rb");
        cr_assert_not_null(f);
        size_t n = fread(buf, 1, cap, f);
        fclose(f);
        return n;
}

static void write_file(int64_t base, const uint8_t *buf, size_t len)
{
        FILE *f = fopen(file_of(base), "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(buf, 1, len, f), len);
        fclose(f);
}

static struct txn_aborted aborted(int64_t pid, int64_t first, int64_t last, int64_t lso)
{
        return (struct txn_aborted){ pid, first, last, lso };
}

Test(txn_index, entry_bytes_are_kafkas)
{
        uint8_t got[TXN_INDEX_ENTRY_BYTES];
        struct txn_aborted t = aborted(0x0102030405060708LL, 5, 0x1122334455667788LL, -1);
        txn_index_encode_entry(&t, got);
        static const uint8_t want[TXN_INDEX_ENTRY_BYTES] = {
                0x00, 0x00,                                             /* version 0 */
                0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,         /* producer id */
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,         /* first offset */
                0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,         /* last offset */
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,         /* last stable offset */
        };
        cr_assert_arr_eq(got, want, sizeof(want));

        struct txn_aborted back;
        cr_assert_eq(txn_index_decode_entry(want, &back), 0);
        cr_assert_eq(back.producer_id, t.producer_id);
        cr_assert_eq(back.first_offset, 5);
        cr_assert_eq(back.last_offset, t.last_offset);
        cr_assert_eq(back.last_stable_offset, -1);

        uint8_t v1[TXN_INDEX_ENTRY_BYTES];
        memcpy(v1, want, sizeof(v1));
        v1[1] = 1;
        cr_assert_eq(txn_index_decode_entry(v1, &back), -EBADMSG);
}

Test(txn_index, no_file_until_the_first_append)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 100), 0);
        cr_assert_eq(ix.fd, -1);
        cr_assert_eq(txn_index_entry_count(&ix), 0);
        cr_assert_eq(file_size(100), -1);
        cr_assert_eq(txn_index_flush(&ix), 0);

        struct txn_aborted t = aborted(7, 90, 120, 95);
        cr_assert_eq(txn_index_append(&ix, &t), 0);
        cr_assert_eq(file_size(100), TXN_INDEX_ENTRY_BYTES);
        cr_assert_eq(ix.last_offset, 120);
        cr_assert_eq(txn_index_flush(&ix), 0);
        txn_index_close(&ix);
}

Test(txn_index, file_holds_the_entries_in_append_order)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        struct txn_aborted a = aborted(1, 0, 10, 0), b = aborted(2, 3, 11, 3);
        cr_assert_eq(txn_index_append(&ix, &a), 0);
        cr_assert_eq(txn_index_append(&ix, &b), 0);
        txn_index_close(&ix);

        uint8_t buf[256], want[2 * TXN_INDEX_ENTRY_BYTES];
        cr_assert_eq(read_file(0, buf, sizeof(buf)), sizeof(want));
        txn_index_encode_entry(&a, want);
        txn_index_encode_entry(&b, want + TXN_INDEX_ENTRY_BYTES);
        cr_assert_arr_eq(buf, want, sizeof(want));
        /* Spot check by hand: the second entry's producer id and last offset. */
        cr_assert_eq(buf[TXN_INDEX_ENTRY_BYTES + 9], 2);
        cr_assert_eq(buf[TXN_INDEX_ENTRY_BYTES + 25], 11);

        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 2);
        cr_assert_eq(ix.last_offset, 11);
        txn_index_close(&ix);
}

Test(txn_index, append_refuses_last_offsets_that_do_not_increase)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 50), 0);
        struct txn_aborted a = aborted(1, 40, 60, 40);
        cr_assert_eq(txn_index_append(&ix, &a), 0);
        struct txn_aborted same = aborted(2, 55, 60, 40);
        cr_assert_eq(txn_index_append(&ix, &same), -EINVAL);
        struct txn_aborted back = aborted(2, 55, 59, 40);
        cr_assert_eq(txn_index_append(&ix, &back), -EINVAL);
        struct txn_aborted inverted = aborted(2, 70, 65, 40);
        cr_assert_eq(txn_index_append(&ix, &inverted), -EINVAL);
        struct txn_aborted before_segment = aborted(3, 10, 49, 10);
        struct txn_index fresh;
        cr_assert_eq(txn_index_open(&fresh, &part_dir, 500), 0);
        cr_assert_eq(txn_index_append(&fresh, &before_segment), -EINVAL);
        cr_assert_eq(txn_index_entry_count(&ix), 1);
        cr_assert_eq(file_size(50), TXN_INDEX_ENTRY_BYTES);
        txn_index_close(&ix);
        txn_index_close(&fresh);
}

/* Kafka's TransactionIndexTest.testCollectAbortedTransactions, in spirit:
 * overlap is lastOffset >= from and firstOffset < upper. */
Test(txn_index, collect_takes_the_transactions_overlapping_the_range)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        struct txn_aborted all[] = {
                aborted(0, 0, 10, 11), aborted(1, 5, 15, 13), aborted(2, 18, 35, 25), aborted(3, 32, 50, 40),
        };
        for (int i = 0; i < 4; i++)
                cr_assert_eq(txn_index_append(&ix, &all[i]), 0);

        struct txn_aborted_list l = { 0 };
        bool is_complete;
        cr_assert_eq(txn_index_collect(&ix, 0, 8, &l, &is_complete), 0);
        cr_assert_eq(l.count, 1);
        cr_assert_eq(l.items[0].producer_id, 0);
        cr_assert(is_complete);         /* the first entry's LSO 11 >= 8 */
        l.count = 0;

        cr_assert_eq(txn_index_collect(&ix, 0, 15, &l, &is_complete), 0);
        cr_assert_eq(l.count, 2);
        cr_assert_eq(l.items[1].producer_id, 1);
        cr_assert(is_complete);
        l.count = 0;

        cr_assert_eq(txn_index_collect(&ix, 16, 33, &l, &is_complete), 0);
        cr_assert_eq(l.count, 2);
        cr_assert_eq(l.items[0].producer_id, 2);
        cr_assert_eq(l.items[1].producer_id, 3);
        cr_assert(is_complete);         /* the last entry's LSO 40 >= 33 */
        l.count = 0;

        cr_assert_eq(txn_index_collect(&ix, 51, 60, &l, &is_complete), 0);
        cr_assert_eq(l.count, 0);
        cr_assert(!is_complete);        /* no entry's LSO reaches 60 */
        l.count = 0;

        /* The last offset is inclusive, the upper bound exclusive. */
        cr_assert_eq(txn_index_collect(&ix, 50, 60, &l, &is_complete), 0);
        cr_assert_eq(l.count, 1);
        l.count = 0;
        cr_assert_eq(txn_index_collect(&ix, 36, 32, &l, &is_complete), 0);
        cr_assert_eq(l.count, 0);

        txn_aborted_list_free(&l);
        txn_index_close(&ix);
}

Test(txn_index, collect_range_goes_on_to_later_segments_until_complete)
{
        struct txn_index s0, s1, s2;
        cr_assert_eq(txn_index_open(&s0, &part_dir, 0), 0);
        cr_assert_eq(txn_index_open(&s1, &part_dir, 100), 0);
        cr_assert_eq(txn_index_open(&s2, &part_dir, 200), 0);
        /* A transaction that began in segment 0 and aborted in segment 1. */
        struct txn_aborted a = aborted(1, 10, 20, 10), b = aborted(2, 90, 110, 90), c = aborted(3, 150, 160, 300),
                           d = aborted(4, 190, 210, 190);
        cr_assert_eq(txn_index_append(&s0, &a), 0);
        cr_assert_eq(txn_index_append(&s1, &b), 0);
        cr_assert_eq(txn_index_append(&s1, &c), 0);
        cr_assert_eq(txn_index_append(&s2, &d), 0);
        const struct txn_index *ixs[] = { &s0, &s1, &s2 };

        struct txn_aborted_list l = { 0 };
        cr_assert_eq(txn_index_collect_range(ixs, 3, 15, 250, &l), 0);
        /* c's LSO 300 >= 250 completes the search in segment 1: d is not
         * looked at, although it overlaps. */
        cr_assert_eq(l.count, 3);
        cr_assert_eq(l.items[0].producer_id, 1);
        cr_assert_eq(l.items[1].producer_id, 2);
        cr_assert_eq(l.items[2].producer_id, 3);
        l.count = 0;

        cr_assert_eq(txn_index_collect_range(ixs + 1, 2, 100, 105, &l), 0);
        cr_assert_eq(l.count, 1);
        cr_assert_eq(l.items[0].producer_id, 2);
        txn_aborted_list_free(&l);
        txn_index_close(&s0);
        txn_index_close(&s1);
        txn_index_close(&s2);
}

Test(txn_index, truncate_to_cuts_at_the_first_entry_reaching_the_offset)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        for (int i = 0; i < 5; i++) {
                struct txn_aborted t = aborted(i, i * 10, i * 10 + 5, i * 10);
                cr_assert_eq(txn_index_append(&ix, &t), 0);
        }
        cr_assert_eq(txn_index_truncate_to(&ix, 100), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 5);

        cr_assert_eq(txn_index_truncate_to(&ix, 25), 0);   /* entry 2 ends at 25 */
        cr_assert_eq(txn_index_entry_count(&ix), 2);
        cr_assert_eq(ix.last_offset, 15);
        cr_assert_eq(file_size(0), 2 * TXN_INDEX_ENTRY_BYTES);

        /* Appends continue after the cut. */
        struct txn_aborted t = aborted(9, 20, 22, 20);
        cr_assert_eq(txn_index_append(&ix, &t), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 3);

        cr_assert_eq(txn_index_truncate_to(&ix, 0), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 0);
        cr_assert_eq(ix.last_offset, TXN_INDEX_NO_OFFSET);
        cr_assert_eq(file_size(0), 0);
        txn_index_close(&ix);
}

Test(txn_index, reset_empties_and_delete_removes_the_file)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        struct txn_aborted t = aborted(1, 0, 5, 0);
        cr_assert_eq(txn_index_append(&ix, &t), 0);
        cr_assert_eq(txn_index_reset(&ix), 0);
        cr_assert_eq(file_size(0), 0);
        cr_assert_eq(txn_index_append(&ix, &t), 0);
        cr_assert_eq(txn_index_delete(&ix), 0);
        cr_assert_eq(file_size(0), -1);
        cr_assert_eq(txn_index_delete(&ix), 0);
}

Test(txn_index, open_cuts_a_torn_trailing_entry)
{
        uint8_t buf[2 * TXN_INDEX_ENTRY_BYTES];
        struct txn_aborted a = aborted(1, 0, 5, 0), b = aborted(2, 6, 9, 6);
        txn_index_encode_entry(&a, buf);
        txn_index_encode_entry(&b, buf + TXN_INDEX_ENTRY_BYTES);
        write_file(0, buf, TXN_INDEX_ENTRY_BYTES + 20);

        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 1);
        cr_assert_eq(ix.last_offset, 5);
        cr_assert_eq(file_size(0), TXN_INDEX_ENTRY_BYTES);
        cr_assert_eq(txn_index_append(&ix, &b), 0);
        txn_index_close(&ix);

        uint8_t got[128];
        cr_assert_eq(read_file(0, got, sizeof(got)), sizeof(buf));
        cr_assert_arr_eq(got, buf, sizeof(buf));
}

Test(txn_index, open_refuses_an_entry_below_the_base_offset)
{
        uint8_t buf[TXN_INDEX_ENTRY_BYTES];
        struct txn_aborted a = aborted(1, 0, 5, 0);
        txn_index_encode_entry(&a, buf);
        write_file(10, buf, sizeof(buf));

        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 10), -EBADMSG);
        /* Appends are refused until the caller rebuilds it. */
        struct txn_aborted b = aborted(2, 10, 12, 10);
        cr_assert_eq(txn_index_append(&ix, &b), -EINVAL);
        cr_assert_eq(txn_index_reset(&ix), 0);
        cr_assert_eq(txn_index_append(&ix, &b), 0);
        txn_index_close(&ix);
        cr_assert_eq(txn_index_open(&ix, &part_dir, 10), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 1);
        txn_index_close(&ix);
}

Test(txn_index, open_refuses_an_unknown_version_and_unordered_entries)
{
        uint8_t buf[2 * TXN_INDEX_ENTRY_BYTES];
        struct txn_aborted a = aborted(1, 0, 5, 0), b = aborted(2, 0, 4, 0);
        txn_index_encode_entry(&a, buf);
        txn_index_encode_entry(&b, buf + TXN_INDEX_ENTRY_BYTES);
        write_file(0, buf, sizeof(buf));
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), -EBADMSG);
        txn_index_close(&ix);

        buf[0] = 1;
        write_file(0, buf, TXN_INDEX_ENTRY_BYTES);
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), -EBADMSG);
        txn_index_close(&ix);
}

Test(txn_index, collect_reads_past_one_buffer_of_entries)
{
        struct txn_index ix;
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        for (int i = 0; i < 1000; i++) {
                struct txn_aborted t = aborted(i, 2 * i, 2 * i + 1, 0);
                cr_assert_eq(txn_index_append(&ix, &t), 0);
        }
        txn_index_close(&ix);
        cr_assert_eq(txn_index_open(&ix, &part_dir, 0), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 1000);
        struct txn_aborted_list l = { 0 };
        bool is_complete;
        cr_assert_eq(txn_index_collect(&ix, 500, 1500, &l, &is_complete), 0);
        cr_assert_eq(l.count, 500);
        cr_assert_eq(l.items[0].producer_id, 250);
        cr_assert_eq(l.items[499].producer_id, 749);
        cr_assert(!is_complete);
        txn_aborted_list_free(&l);
        cr_assert_eq(txn_index_truncate_to(&ix, 1001), 0);
        cr_assert_eq(txn_index_entry_count(&ix), 500);
        txn_index_close(&ix);
}
