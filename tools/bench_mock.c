/*
 * bench_mock.c - librdkafka's in-memory mock cluster (rdkafka_mock.h) as a
 * broker of its own, the ceiling `make bench` sets beside runnel and Kafka:
 * a broker that keeps records in memory, syncs nothing and writes no files.
 *
 *   bench_mock
 *
 * Prints "bootstrap HOST:PORT" once the cluster (one broker) listens, then
 * reads commands on stdin, one a line:
 *
 *   create TOPIC PARTITIONS     ->  "ok" or "error MESSAGE"
 *
 * and exits when stdin closes or on SIGTERM. The mock keeps only the last
 * 5 MB / 100,000 batches of each partition (rd_kafka_mock_partition_init in
 * librdkafka 2.0.2), so a consumer reads at most that much from the start.
 * Not a test.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define MOCK_LINE_MAX 1024
#define MOCK_PARTITIONS_MAX 100000

int main(void)
{
        char err[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        /* The handle only owns the cluster; it never connects anywhere. */
        if (rd_kafka_conf_set(conf, "client.id", "runnel-bench-mock", err, sizeof(err)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "bench_mock: %s\n", err);
                return 1;
        }
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        if (!rk) {
                fprintf(stderr, "bench_mock: rd_kafka_new: %s\n", err);
                return 1;
        }
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, 1);
        if (!mc) {
                fprintf(stderr, "bench_mock: cannot create the mock cluster\n");
                rd_kafka_destroy(rk);
                return 1;
        }
        signal(SIGPIPE, SIG_IGN);
        setvbuf(stdout, NULL, _IOLBF, 0);
        printf("bootstrap %s\n", rd_kafka_mock_cluster_bootstraps(mc));

        char line[MOCK_LINE_MAX];
        while (fgets(line, sizeof(line), stdin)) {
                char topic[256];
                int partition_count = 0;
                if (sscanf(line, "create %255s %d", topic, &partition_count) == 2 && partition_count > 0 &&
                    partition_count <= MOCK_PARTITIONS_MAX) {
                        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mc, topic, partition_count, 1);
                        if (e)
                                printf("error %s\n", rd_kafka_err2str(e));
                        else
                                printf("ok\n");
                } else {
                        printf("error unknown command\n");
                }
        }
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(rk);
        return 0;
}
