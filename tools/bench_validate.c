/*
 * bench_validate.c - what produce validation costs per byte: CRC-32C and the
 * walk over the records of an uncompressed batch (record_batch_validate with
 * the policy of a client's batch on a default topic), for records of a few
 * sizes, in batches of about 1 MB as librdkafka sends them.
 *
 *   bench_validate [--rounds N]
 *
 * Prints, per record size, ns per record and CPU seconds per GB (10^9 bytes
 * of batch) for the CRC alone and for the whole validation; the difference
 * is the record walk. Not a test: it asserts only that the batches are valid.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../protocol/crc32c.h"
#include "../protocol/gen/errors.h"
#include "../protocol/record_batch.h"

#define BENCH_BATCH_BYTES (1u << 20)
#define BENCH_ROUNDS_MAX 1000
#define BENCH_PASS_BYTES (1ull << 30)   /* bytes validated per figure */

static double cpu_now_s(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* An uncompressed batch of records with value_bytes values and no key,
 * timestamps a millisecond apart, as a producer would send it. */
static uint8_t *make_batch(uint32_t value_bytes, uint32_t *count_out, size_t *len_out)
{
        uint32_t count = BENCH_BATCH_BYTES / (value_bytes + 10);
        struct record_spec *recs = calloc(count, sizeof(*recs));
        uint8_t *value = malloc(value_bytes);
        if (!recs || !value)
                return NULL;
        for (uint32_t i = 0; i < value_bytes; i++)
                value[i] = (uint8_t)(i * 7 + 1);
        for (uint32_t i = 0; i < count; i++) {
                recs[i].key.len = -1;
                recs[i].value.ptr = value;
                recs[i].value.len = (int32_t)value_bytes;
                recs[i].timestamp_ms = 1700000000000LL + i;
        }
        struct record_batch_spec spec;
        record_batch_spec_init(&spec, recs, count);
        size_t len = record_batch_encoded_size(&spec);
        uint8_t *batch = malloc(len);
        if (batch)
                record_batch_encode(&spec, batch, len);
        free(recs);
        free(value);
        *count_out = count;
        *len_out = len;
        return batch;
}

static int run_size(uint32_t value_bytes, int rounds)
{
        uint32_t count;
        size_t len;
        uint8_t *batch = make_batch(value_bytes, &count, &len);
        if (!batch)
                return 1;
        struct record_batch_policy policy = {
                .is_from_client = true,
                .now_ms = 1700000000000LL,
        };
        uint64_t passes = BENCH_PASS_BYTES / len + 1;
        for (int r = 0; r < rounds; r++) {
                volatile uint32_t sink = 0;
                double t0 = cpu_now_s();
                for (uint64_t i = 0; i < passes; i++)
                        sink += crc32c(batch, len);
                double crc_s = cpu_now_s() - t0;
                struct record_batch_check check;
                t0 = cpu_now_s();
                for (uint64_t i = 0; i < passes; i++) {
                        if (record_batch_validate(batch, len, &policy, &check) != KAFKA_NONE) {
                                fprintf(stderr, "bench_validate: batch refused: %s\n", check.reason);
                                free(batch);
                                return 1;
                        }
                }
                double all_s = cpu_now_s() - t0;
                double gb = (double)passes * (double)len / 1e9;
                double records = (double)passes * count;
                printf("%5u B records: crc %.3f s/GB (%.1f ns/record), validate %.3f s/GB (%.1f ns/record)\n",
                       value_bytes, crc_s / gb, crc_s * 1e9 / records, all_s / gb, all_s * 1e9 / records);
                (void)sink;
        }
        free(batch);
        return 0;
}

int main(int argc, char **argv)
{
        int rounds = 3;
        if (argc == 3 && strcmp(argv[1], "--rounds") == 0)
                rounds = atoi(argv[2]);
        else if (argc != 1) {
                fprintf(stderr, "usage: bench_validate [--rounds N]\n");
                return 2;
        }
        if (rounds < 1 || rounds > BENCH_ROUNDS_MAX)
                rounds = 3;
        static const uint32_t sizes[] = { 100, 1024, 10240 };
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
                if (run_size(sizes[i], rounds) != 0)
                        return 1;
        return 0;
}
