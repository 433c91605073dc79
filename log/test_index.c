/*
 * test_index.c - the offset and time index entry logic on its own: the
 * bytes of an entry, which entries are taken, lookups at and between
 * entries, truncation as Kafka does it, and loading files that are
 * trimmed, preallocated, or damaged.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "log/offset_index.h"
#include "log/time_index.h"

/* ---- offset index ---- */

Test(offset_index, entry_bytes_are_big_endian_relative)
{
        struct offset_index ix;
        uint8_t e[OFFSET_INDEX_ENTRY_BYTES];
        static const uint8_t want1[8] = { 0, 0, 0, 5, 0, 0, 0x10, 0x68 };
        static const uint8_t want2[8] = { 0x7f, 0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xfe };

        offset_index_init(&ix, 1000, 4096);
        cr_assert_eq(ix.entry_count_max, 512);
        cr_assert_eq(offset_index_file_bytes_max(&ix), 4096);
        cr_assert_eq(offset_index_append(&ix, 1005, 4200, e), 0);
        cr_assert_arr_eq(e, want1, 8);
        cr_assert_eq(offset_index_append(&ix, 1000 + (int64_t)INT32_MAX, INT32_MAX - 1, e), 0);
        cr_assert_arr_eq(e, want2, 8);
        cr_assert_eq(offset_index_size_bytes(&ix), 16);

        uint8_t all[16];

        offset_index_encode(&ix, all, sizeof(all));
        cr_assert_arr_eq(all, want1, 8);
        cr_assert_arr_eq(all + 8, want2, 8);
        offset_index_free(&ix);
}

Test(offset_index, refuses_bad_entries)
{
        struct offset_index ix;
        uint8_t e[OFFSET_INDEX_ENTRY_BYTES];

        offset_index_init(&ix, 100, 20);        /* rounds down to 2 entries */
        cr_assert_eq(ix.entry_count_max, 2);
        cr_assert_eq(offset_index_append(&ix, 99, 10, e), -ERANGE);
        cr_assert_eq(offset_index_append(&ix, 100 + (int64_t)INT32_MAX + 1, 10, e), -ERANGE);
        cr_assert_eq(offset_index_append(&ix, 101, 0, e), -EINVAL);
        cr_assert_eq(offset_index_append(&ix, 101, 10, e), 0);
        cr_assert_eq(offset_index_append(&ix, 101, 20, e), -EINVAL);   /* same offset */
        cr_assert_eq(offset_index_append(&ix, 102, 10, e), -EINVAL);   /* same position */
        cr_assert(!offset_index_is_full(&ix));
        cr_assert_eq(offset_index_append(&ix, 102, 20, e), 0);
        cr_assert(offset_index_is_full(&ix));
        cr_assert_eq(offset_index_append(&ix, 103, 30, e), -ENOSPC);
        cr_assert(offset_index_can_hold(&ix, 100));
        cr_assert(!offset_index_can_hold(&ix, 99));
        offset_index_free(&ix);
}

Test(offset_index, lookup_floor)
{
        struct offset_index ix;
        uint8_t e[OFFSET_INDEX_ENTRY_BYTES];
        struct offset_index_entry r;

        offset_index_init(&ix, 50, 1 << 20);
        r = offset_index_lookup(&ix, 70);
        cr_assert_eq(r.offset, 50);
        cr_assert_eq(r.position_bytes, 0);
        /* 1000 entries: offsets 60, 70, ... at positions 100, 200, ... */
        for (int i = 0; i < 1000; i++)
                cr_assert_eq(offset_index_append(&ix, 60 + 10 * i, (uint32_t)(100 * (i + 1)), e), 0);
        r = offset_index_lookup(&ix, 59);
        cr_assert_eq(r.offset, 50);
        cr_assert_eq(r.position_bytes, 0);
        r = offset_index_lookup(&ix, 10);
        cr_assert_eq(r.offset, 50);
        for (int64_t t = 60; t < 60 + 10 * 1000 + 50; t += 3) {
                int64_t i = (t - 60) / 10;

                if (i > 999)
                        i = 999;
                r = offset_index_lookup(&ix, t);
                cr_assert_eq(r.offset, 60 + 10 * i, "target %lld", (long long)t);
                cr_assert_eq(r.position_bytes, 100 * (i + 1));
        }
        r = offset_index_last(&ix);
        cr_assert_eq(r.offset, 60 + 10 * 999);
        offset_index_free(&ix);
}

Test(offset_index, truncate_like_kafka)
{
        struct offset_index ix;
        uint8_t e[OFFSET_INDEX_ENTRY_BYTES];

        offset_index_init(&ix, 0, 1024);
        for (int i = 1; i <= 5; i++)
                offset_index_append(&ix, 10 * i, (uint32_t)(100 * i), e);
        offset_index_truncate_to_offset(&ix, 60);     /* past the end: nothing */
        cr_assert_eq(ix.entry_count, 5);
        offset_index_truncate_to_offset(&ix, 40);     /* exact: it goes */
        cr_assert_eq(ix.entry_count, 3);
        offset_index_truncate_to_offset(&ix, 25);     /* between: the lower stays */
        cr_assert_eq(ix.entry_count, 2);
        offset_index_truncate_to_offset(&ix, 5);      /* below all */
        cr_assert_eq(ix.entry_count, 0);
        offset_index_free(&ix);
}

static size_t test_offset_file(uint8_t *buf, const uint32_t (*entries)[2], int n, size_t zero_tail)
{
        size_t at = 0;

        for (int i = 0; i < n; i++) {
                for (int k = 0; k < 2; k++) {
                        buf[at++] = (uint8_t)(entries[i][k] >> 24);
                        buf[at++] = (uint8_t)(entries[i][k] >> 16);
                        buf[at++] = (uint8_t)(entries[i][k] >> 8);
                        buf[at++] = (uint8_t)entries[i][k];
                }
        }
        memset(buf + at, 0, zero_tail);
        return at + zero_tail;
}

Test(offset_index, load_accepts_trimmed_and_preallocated)
{
        static const uint32_t entries[3][2] = { { 3, 4100 }, { 9, 8300 }, { 20, 12500 } };
        uint8_t buf[256];
        struct offset_index ix;

        offset_index_init(&ix, 7, 1024);
        size_t n = test_offset_file(buf, entries, 3, 0);

        cr_assert_eq(offset_index_load(&ix, buf, n, 13000), 0);
        cr_assert_eq(ix.entry_count, 3);
        cr_assert_eq(offset_index_entry_at(&ix, 2).offset, 27);
        cr_assert_eq(offset_index_entry_at(&ix, 2).position_bytes, 12500);
        n = test_offset_file(buf, entries, 3, 128);
        cr_assert_eq(offset_index_load(&ix, buf, n, 13000), 0);
        cr_assert_eq(ix.entry_count, 3);
        cr_assert_eq(offset_index_load(&ix, buf, 0, 13000), 0);
        cr_assert_eq(ix.entry_count, 0);
        cr_assert_eq(offset_index_load(&ix, NULL, 0, 0), 0);
        offset_index_free(&ix);
}

Test(offset_index, load_refuses_damage)
{
        uint8_t buf[256];
        struct offset_index ix;
        size_t n;

        offset_index_init(&ix, 0, 1024);
        static const uint32_t ok[2][2] = { { 3, 4100 }, { 9, 8300 } };
        static const uint32_t backwards[2][2] = { { 9, 4100 }, { 3, 8300 } };
        static const uint32_t same_pos[2][2] = { { 3, 4100 }, { 9, 4100 } };
        static const uint32_t negative[1][2] = { { 0x80000000u, 4100 } };
        static const uint32_t zero_pos[2][2] = { { 3, 0 }, { 9, 8300 } };

        n = test_offset_file(buf, ok, 2, 0);
        cr_assert_eq(offset_index_load(&ix, buf, n - 1, 9000), -EINVAL);       /* not a multiple of 8 */
        cr_assert_eq(offset_index_load(&ix, buf, n, 8300), -EINVAL);           /* past the log */
        n = test_offset_file(buf, ok, 2, 16);
        buf[n - 3] = 1;                                                         /* garbage after zeros */
        cr_assert_eq(offset_index_load(&ix, buf, n, 9000), -EINVAL);
        n = test_offset_file(buf, backwards, 2, 0);
        cr_assert_eq(offset_index_load(&ix, buf, n, 9000), -EINVAL);
        n = test_offset_file(buf, same_pos, 2, 0);
        cr_assert_eq(offset_index_load(&ix, buf, n, 9000), -EINVAL);
        n = test_offset_file(buf, negative, 1, 0);
        cr_assert_eq(offset_index_load(&ix, buf, n, 9000), -EINVAL);
        n = test_offset_file(buf, zero_pos, 2, 0);
        cr_assert_eq(offset_index_load(&ix, buf, n, 9000), -EINVAL);
        cr_assert_eq(ix.entry_count, 0);
        offset_index_free(&ix);

        /* More entries than this segment.index.bytes allows. */
        offset_index_init(&ix, 0, 8);
        n = test_offset_file(buf, ok, 2, 0);
        cr_assert_eq(offset_index_load(&ix, buf, n, 9000), -EINVAL);
        offset_index_free(&ix);
}

/* ---- time index ---- */

Test(time_index, takes_only_growing_timestamps)
{
        struct time_index ix;
        uint8_t e[TIME_INDEX_ENTRY_BYTES];
        static const uint8_t want[12] = { 0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, 0, 0, 0, 4 };

        time_index_init(&ix, 100, 1024);
        cr_assert_eq(ix.entry_count_max, 85);   /* 1024 / 12, rounded down */
        cr_assert_eq(time_index_file_bytes_max(&ix), 1020);
        /* An unknown maximum offered to an empty index is not taken. */
        cr_assert_eq(time_index_maybe_append(&ix, -1, -1, false, e), 0);
        cr_assert_eq(time_index_maybe_append(&ix, 1700000000000LL, 104, false, e), 1);
        cr_assert_arr_eq(e, want, 12);
        cr_assert_eq(time_index_maybe_append(&ix, 1700000000000LL, 104, false, e), 0);
        cr_assert_eq(time_index_maybe_append(&ix, 1700000000000LL, 110, false, e), 0);
        cr_assert_eq(time_index_maybe_append(&ix, 1699999999999LL, 110, false, e), -EINVAL);
        cr_assert_eq(time_index_maybe_append(&ix, 1700000000001LL, 103, false, e), -EINVAL);
        cr_assert_eq(time_index_maybe_append(&ix, 1700000000001LL, 104, false, e), 1);
        cr_assert_eq(ix.entry_count, 2);
        struct time_index_entry last = time_index_last(&ix);

        cr_assert_eq(last.timestamp_ms, 1700000000001LL);
        cr_assert_eq(last.offset, 104);
        time_index_free(&ix);
}

Test(time_index, keeps_the_last_slot_for_the_roll)
{
        struct time_index ix;
        uint8_t e[TIME_INDEX_ENTRY_BYTES];

        time_index_init(&ix, 0, 36);            /* three slots */
        cr_assert_eq(time_index_maybe_append(&ix, 10, 1, false, e), 1);
        cr_assert(!time_index_is_full(&ix));
        cr_assert_eq(time_index_maybe_append(&ix, 20, 2, false, e), 1);
        cr_assert(time_index_is_full(&ix));
        cr_assert_eq(time_index_maybe_append(&ix, 30, 3, false, e), -ENOSPC);
        cr_assert_eq(time_index_maybe_append(&ix, 30, 3, true, e), 1);
        cr_assert_eq(time_index_maybe_append(&ix, 40, 4, true, e), -ENOSPC);
        time_index_free(&ix);
}

Test(time_index, lookup_floor_by_timestamp)
{
        struct time_index ix;
        uint8_t e[TIME_INDEX_ENTRY_BYTES];
        struct time_index_entry r;

        time_index_init(&ix, 1000, 1 << 20);
        r = time_index_lookup(&ix, 5);
        cr_assert_eq(r.timestamp_ms, TIME_INDEX_NO_TIMESTAMP);
        cr_assert_eq(r.offset, 1000);
        for (int i = 0; i < 300; i++)
                cr_assert_eq(time_index_maybe_append(&ix, 5000 + 7 * i, 1000 + 2 * i, false, e), 1);
        r = time_index_lookup(&ix, 4999);
        cr_assert_eq(r.timestamp_ms, TIME_INDEX_NO_TIMESTAMP);
        cr_assert_eq(r.offset, 1000);
        for (int64_t t = 5000; t < 5000 + 7 * 310; t++) {
                int64_t i = (t - 5000) / 7;

                if (i > 299)
                        i = 299;
                r = time_index_lookup(&ix, t);
                cr_assert_eq(r.timestamp_ms, 5000 + 7 * i);
                cr_assert_eq(r.offset, 1000 + 2 * i);
        }
        time_index_free(&ix);
}

Test(time_index, truncate_by_offset)
{
        struct time_index ix;
        uint8_t e[TIME_INDEX_ENTRY_BYTES];

        time_index_init(&ix, 0, 1024);
        time_index_maybe_append(&ix, 10, 5, false, e);
        time_index_maybe_append(&ix, 20, 9, false, e);
        time_index_maybe_append(&ix, 30, 9, true, e);   /* a roll entry at the same offset */
        time_index_maybe_append(&ix, 40, 15, false, e);
        time_index_truncate_to_offset(&ix, 16);
        cr_assert_eq(ix.entry_count, 4);
        time_index_truncate_to_offset(&ix, 15);
        cr_assert_eq(ix.entry_count, 3);
        time_index_truncate_to_offset(&ix, 9);          /* both entries at 9 go */
        cr_assert_eq(ix.entry_count, 1);
        time_index_truncate_to_offset(&ix, 3);
        cr_assert_eq(ix.entry_count, 0);
        time_index_free(&ix);
}

Test(time_index, load_checks_order_and_offsets)
{
        struct time_index src, ix;
        uint8_t e[TIME_INDEX_ENTRY_BYTES], buf[256];

        time_index_init(&src, 50, 1024);
        time_index_init(&ix, 50, 1024);
        time_index_maybe_append(&src, 100, 55, false, e);
        time_index_maybe_append(&src, 200, 58, false, e);
        time_index_maybe_append(&src, 300, 58, true, e);
        size_t n = time_index_size_bytes(&src);

        time_index_encode(&src, buf, sizeof(buf));
        memset(buf + n, 0, 48);
        cr_assert_eq(time_index_load(&ix, buf, n, 59), 0);
        cr_assert_eq(ix.entry_count, 3);
        cr_assert_eq(time_index_entry_at(&ix, 2).timestamp_ms, 300);
        cr_assert_eq(time_index_load(&ix, buf, n + 48, 59), 0);
        cr_assert_eq(ix.entry_count, 3);
        cr_assert_eq(time_index_load(&ix, buf, n, 58), -EINVAL);        /* points past the log */
        cr_assert_eq(time_index_load(&ix, buf, n - 1, 59), -EINVAL);
        buf[2 * 12 + 11] = 0;                           /* entry 2 at offset 50 < 58 */
        cr_assert_eq(time_index_load(&ix, buf, n, 59), -EINVAL);
        time_index_encode(&src, buf, sizeof(buf));
        buf[12 + 7] = 50;                               /* entry 1 ts 50 < 100 */
        cr_assert_eq(time_index_load(&ix, buf, n, 59), -EINVAL);
        cr_assert_eq(ix.entry_count, 0);
        time_index_free(&src);
        time_index_free(&ix);
}
