/*
 * bench_rdkafka.c - a librdkafka load driver: the client most non-Java users
 * run, driving any Kafka-compatible broker the same way.
 *
 *   bench_rdkafka create  -b BROKERS -t TOPIC -p PARTITIONS
 *   bench_rdkafka produce -b BROKERS -t TOPIC [-s SIZE] [-n COUNT] [-d SECONDS]
 *                         [-a 0|1|all] [-z none|gzip|snappy|lz4|zstd] [-l LINGER_MS]
 *                         [-B BATCH_BYTES] [-p PARTITIONS] [-k KEY_COUNT] [-r RATE]
 *   bench_rdkafka consume -b BROKERS -t TOPIC -p PARTITIONS [-n COUNT] [-d SECONDS]
 *                         [-m MIN_BYTES]
 *   bench_rdkafka latency -b BROKERS -t TOPIC [-s SIZE] [-r RATE] [-d SECONDS]
 *                         [-a ACKS] [-l LINGER_MS] [-w WARMUP_S] [-p PARTITIONS]
 *   any mode: [-X librdkafka.key=value]...
 *
 * create   makes a topic (replication factor 1) through the Admin API and waits
 *          until Metadata shows a leader for every partition. Past 5,000
 *          partitions it creates 5,000 and adds the rest with CreatePartitions,
 *          5,000 at a time: Kafka's controller refuses an operation of over
 *          10,000 records (max.records.per.user.op) "as excessively large".
 * produce  sends COUNT messages of SIZE bytes (or stops after SECONDS), waits
 *          for every delivery report and prints messages/s and MB/s (10^6
 *          bytes of key + value per second) from the first send to the last
 *          acknowledgement. With -p, message i goes to partition i % P (what
 *          the scale workloads want: every partition busy); without it the
 *          librdkafka partitioner chooses (sticky for keyless messages). -k N
 *          gives messages N distinct keys. -r paces the sends at RATE msg/s.
 *          Values are slices of a pool of 6-bit-entropy bytes, so codecs have
 *          something realistic to do.
 * consume  assigns partitions 0..P-1 from the beginning (no consumer group)
 *          and reads up to the high watermarks queried at start; -m repeats
 *          passes from the beginning until MIN_BYTES are read (librdkafka's
 *          mock cluster keeps only the last 5 MB of a partition).
 * latency  one producer paced at RATE msg/s and one consumer assigned at the
 *          end of the log, in one process: every value carries the time it
 *          was scheduled to be sent (CLOCK_MONOTONIC), so a stalled broker
 *          delays the figures instead of slowing the senders (no coordinated
 *          omission). Prints end-to-end (send -> consumed) and ack (send ->
 *          delivery report) percentiles; messages scheduled in the first
 *          WARMUP_S seconds are not counted.
 *
 * The last line on stdout is one JSON object with the figures; progress and
 * errors go to stderr. Every loop is bounded by a count and a deadline.
 * Not a test: it asserts nothing about speed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#define BENCH_CONF_MAX 32
#define BENCH_PARTITIONS_MAX 100000
#define BENCH_POOL_BYTES (4u << 20)
#define BENCH_SIZE_MAX (1u << 20)
#define BENCH_FLUSH_TIMEOUT_MS 120000
#define BENCH_CREATE_TIMEOUT_MS 300000
#define BENCH_CREATE_STEP 5000
#define BENCH_WATERMARK_TIMEOUT_MS 10000
#define BENCH_PASSES_MAX 1000
#define BENCH_LATENCY_SAMPLES_MAX (20u * 1000 * 1000)
#define BENCH_DRAIN_TIMEOUT_MS 15000
#define BENCH_STAMP_MAGIC 0x52554e4e454c3031ull /* "RUNNEL01" */

struct bench_options {
        const char *mode;
        const char *brokers;
        const char *topic;
        uint32_t size_bytes;
        uint64_t count;                 /* 0: no count bound */
        double duration_s;              /* 0: no time bound */
        const char *acks;
        const char *codec;
        int linger_ms;
        int batch_bytes;                /* 0: librdkafka's default */
        uint32_t partition_count;       /* 0: the partitioner chooses */
        uint32_t key_count;
        double rate_per_s;              /* 0: as fast as possible */
        double warmup_s;
        uint64_t min_bytes;
        const char *conf[BENCH_CONF_MAX];
        int conf_count;
};

static volatile sig_atomic_t is_interrupted;

static void on_signal(int sig)
{
        (void)sig;
        is_interrupted = 1;
}

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_until_ns(uint64_t t_ns)
{
        struct timespec ts = { .tv_sec = (time_t)(t_ns / 1000000000u), .tv_nsec = (long)(t_ns % 1000000000u) };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !is_interrupted)
                ;
}

static void die(const char *fmt, const char *arg)
{
        fprintf(stderr, "bench_rdkafka: ");
        fprintf(stderr, fmt, arg);
        fprintf(stderr, "\n");
        exit(1);
}

static void put_u64(uint8_t *p, uint64_t v)
{
        memcpy(p, &v, sizeof(v));
}

static uint64_t get_u64(const uint8_t *p)
{
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return v;
}

/* ---- configuration */

static void conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
        char err[512];
        if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "bench_rdkafka: %s=%s: %s\n", key, value, err);
                exit(2);
        }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
        (void)rk;
        fprintf(stderr, "rdkafka %d %s: %s\n", level, fac, buf);
}

static rd_kafka_conf_t *conf_new(const struct bench_options *o)
{
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        conf_set(conf, "bootstrap.servers", o->brokers);
        conf_set(conf, "client.id", "runnel-bench");
        /* Metadata refreshes every 5 minutes by default; nothing changes. */
        conf_set(conf, "log.connection.close", "false");
        rd_kafka_conf_set_log_cb(conf, on_log);
        for (int i = 0; i < o->conf_count; i++) {
                char key[256];
                const char *eq = strchr(o->conf[i], '=');
                if (!eq || (size_t)(eq - o->conf[i]) >= sizeof(key))
                        die("-X wants key=value, not %s", o->conf[i]);
                memcpy(key, o->conf[i], (size_t)(eq - o->conf[i]));
                key[eq - o->conf[i]] = '\0';
                conf_set(conf, key, eq + 1);
        }
        return conf;
}

static rd_kafka_t *client_new(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
        char err[512];
        rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
        if (!rk)
                die("rd_kafka_new: %s", err);
        return rk;
}

/* ---- create */

/* Waits until Metadata shows the topic with every partition led. */
static int wait_topic_ready(rd_kafka_t *rk, const char *topic, uint32_t partition_count, uint64_t deadline_ns)
{
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
        int rc = -1;
        for (int attempt = 0; attempt < 100000 && now_ns() < deadline_ns && !is_interrupted; attempt++) {
                const struct rd_kafka_metadata *md = NULL;
                if (rd_kafka_metadata(rk, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
                        bool is_ready = md->topic_cnt == 1 && md->topics[0].err == 0 &&
                                        (uint32_t)md->topics[0].partition_cnt == partition_count;
                        for (int i = 0; is_ready && i < md->topics[0].partition_cnt; i++)
                                if (md->topics[0].partitions[i].leader < 0)
                                        is_ready = false;
                        rd_kafka_metadata_destroy(md);
                        if (is_ready) {
                                rc = 0;
                                break;
                        }
                }
                usleep(50 * 1000);
        }
        rd_kafka_topic_destroy(rkt);
        return rc;
}

/* Waits for the one result event of an Admin API call; 0 when every topic
 * in it succeeded (or, for CreateTopics, already existed). */
static int admin_wait(rd_kafka_queue_t *q, const char *what)
{
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, BENCH_CREATE_TIMEOUT_MS + 5000);
        int rc = 0;
        if (!ev) {
                fprintf(stderr, "bench_rdkafka: %s timed out\n", what);
                return 1;
        }
        if (rd_kafka_event_error(ev)) {
                fprintf(stderr, "bench_rdkafka: %s: %s\n", what, rd_kafka_event_error_string(ev));
                rc = 1;
        } else {
                size_t n = 0;
                const rd_kafka_topic_result_t **res =
                        rd_kafka_event_type(ev) == RD_KAFKA_EVENT_CREATETOPICS_RESULT ?
                                rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n) :
                                rd_kafka_CreatePartitions_result_topics(
                                        rd_kafka_event_CreatePartitions_result(ev), &n);
                for (size_t i = 0; i < n; i++) {
                        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
                        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                                fprintf(stderr, "bench_rdkafka: %s %s: %s\n", what, rd_kafka_topic_result_name(res[i]),
                                        rd_kafka_topic_result_error_string(res[i]));
                                rc = 1;
                        }
                }
        }
        rd_kafka_event_destroy(ev);
        return rc;
}

static int run_create(const struct bench_options *o)
{
        if (o->partition_count == 0)
                die("create needs -p PARTITIONS%s", "");
        rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf_new(o));
        uint64_t start_ns = now_ns();
        uint64_t deadline_ns = start_ns + (uint64_t)BENCH_CREATE_TIMEOUT_MS * 1000000u;
        char err[512];
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        uint32_t first = o->partition_count < BENCH_CREATE_STEP ? o->partition_count : BENCH_CREATE_STEP;
        rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(o->topic, (int)first, 1, err, sizeof(err));
        if (!nt)
                die("NewTopic: %s", err);
        rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
        rd_kafka_AdminOptions_set_operation_timeout(opts, BENCH_CREATE_TIMEOUT_MS, err, sizeof(err));
        rd_kafka_AdminOptions_set_request_timeout(opts, BENCH_CREATE_TIMEOUT_MS, err, sizeof(err));
        rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
        int rc = admin_wait(q, "CreateTopics");
        rd_kafka_NewTopic_destroy(nt);
        for (uint32_t have = first; rc == 0 && have < o->partition_count && now_ns() < deadline_ns;) {
                /* The new partitions must exist before more can be added. */
                if (wait_topic_ready(rk, o->topic, have, deadline_ns) != 0) {
                        rc = 1;
                        break;
                }
                uint32_t want = o->partition_count - have < BENCH_CREATE_STEP ? o->partition_count
                                                                              : have + BENCH_CREATE_STEP;
                rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(o->topic, want, err, sizeof(err));
                if (!np)
                        die("NewPartitions: %s", err);
                rd_kafka_CreatePartitions(rk, &np, 1, opts, q);
                rc = admin_wait(q, "CreatePartitions");
                rd_kafka_NewPartitions_destroy(np);
                have = want;
        }
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
        uint64_t created_ns = now_ns();
        if (rc == 0 && wait_topic_ready(rk, o->topic, o->partition_count, deadline_ns) != 0) {
                fprintf(stderr, "bench_rdkafka: topic %s not ready with %u led partitions\n", o->topic,
                        o->partition_count);
                rc = 1;
        }
        uint64_t ready_ns = now_ns();
        printf("{\"mode\":\"create\",\"ok\":%s,\"topic\":\"%s\",\"partitions\":%u,"
               "\"create_s\":%.3f,\"ready_s\":%.3f}\n",
               rc == 0 ? "true" : "false", o->topic, o->partition_count, (double)(created_ns - start_ns) / 1e9,
               (double)(ready_ns - start_ns) / 1e9);
        rd_kafka_destroy(rk);
        return rc;
}

/* ---- produce */

struct produce_state {
        uint64_t delivered_count;
        uint64_t delivered_bytes;
        uint64_t failed_count;
        uint64_t last_ack_ns;
        rd_kafka_resp_err_t first_error;
        /* latency mode: ack latency per message, indexed by sequence */
        uint64_t *ack_ns;
        uint64_t ack_capacity;
        uint64_t ack_count;
        uint64_t warmup_end_ns;
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
        (void)rk;
        struct produce_state *s = opaque;
        uint64_t t = now_ns();
        if (m->err) {
                if (s->failed_count++ == 0) {
                        s->first_error = m->err;
                        fprintf(stderr, "bench_rdkafka: delivery failed: %s\n", rd_kafka_err2str(m->err));
                }
                return;
        }
        s->delivered_count++;
        s->delivered_bytes += m->len + m->key_len;
        s->last_ack_ns = t;
        if (s->ack_ns && m->len >= 16) {
                uint64_t sent_ns = get_u64((const uint8_t *)m->payload + 8);
                if (sent_ns >= s->warmup_end_ns && s->ack_count < s->ack_capacity)
                        s->ack_ns[s->ack_count++] = t - sent_ns;
        }
}

static uint8_t *pool_new(void)
{
        uint8_t *pool = malloc(BENCH_POOL_BYTES);
        if (!pool)
                die("out of memory%s", "");
        uint64_t x = 0x9E3779B97F4A7C15ull;
        for (uint32_t i = 0; i < BENCH_POOL_BYTES; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                pool[i] = (uint8_t)(' ' + (x >> 58));   /* 64 symbols: 6 bits of entropy */
        }
        return pool;
}

static void producer_conf(rd_kafka_conf_t *conf, const struct bench_options *o, struct produce_state *s)
{
        char v[32];
        conf_set(conf, "acks", o->acks);
        conf_set(conf, "compression.codec", o->codec);
        snprintf(v, sizeof(v), "%d", o->linger_ms);
        conf_set(conf, "linger.ms", v);
        if (o->batch_bytes > 0) {
                snprintf(v, sizeof(v), "%d", o->batch_bytes);
                conf_set(conf, "batch.size", v);
        }
        conf_set(conf, "queue.buffering.max.messages", "1000000");
        conf_set(conf, "queue.buffering.max.kbytes", "1048576");
        conf_set(conf, "message.timeout.ms", "120000");
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, s);
}

/* Sends one message, waiting (bounded by deadline) while the queue is full. */
static int produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, int32_t partition, void *value, size_t len,
                       const char *key, size_t key_len, int flags, uint64_t deadline_ns)
{
        for (int attempt = 0; attempt < 1000000; attempt++) {
                if (rd_kafka_produce(rkt, partition, flags, value, len, key, key_len, NULL) == 0)
                        return 0;
                rd_kafka_resp_err_t e = rd_kafka_last_error();
                if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                        fprintf(stderr, "bench_rdkafka: produce: %s\n", rd_kafka_err2str(e));
                        return -1;
                }
                if (now_ns() > deadline_ns || is_interrupted)
                        return -1;
                rd_kafka_poll(rk, 1);
        }
        return -1;
}

static int run_produce(const struct bench_options *o)
{
        if (o->count == 0 && o->duration_s <= 0)
                die("produce needs -n COUNT or -d SECONDS%s", "");
        struct produce_state s;
        memset(&s, 0, sizeof(s));
        rd_kafka_conf_t *conf = conf_new(o);
        producer_conf(conf, o, &s);
        rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
        uint8_t *pool = pool_new();
        uint32_t slice_count = (BENCH_POOL_BYTES - o->size_bytes) / 64 + 1;

        /* Connections and metadata first, so the clock starts at the first send. */
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_metadata_destroy(md);

        uint64_t start_ns = now_ns();
        uint64_t stop_ns = o->duration_s > 0 ? start_ns + (uint64_t)(o->duration_s * 1e9) : UINT64_MAX;
        uint64_t count_max = o->count ? o->count : UINT64_MAX;
        uint64_t sent = 0;
        char key[32];
        for (; sent < count_max && !is_interrupted; sent++) {
                if ((sent & 255) == 0 && now_ns() >= stop_ns)
                        break;
                if (o->rate_per_s > 0)
                        sleep_until_ns(start_ns + (uint64_t)((double)sent * 1e9 / o->rate_per_s));
                int32_t partition = o->partition_count ? (int32_t)(sent % o->partition_count) : RD_KAFKA_PARTITION_UA;
                size_t key_len = 0;
                if (o->key_count)
                        key_len = (size_t)snprintf(key, sizeof(key), "key-%08" PRIu64, sent % o->key_count);
                /* No copy: values point into the pool, which outlives the producer. */
                uint8_t *value = pool + (sent % slice_count) * 64;
                if (produce_one(rk, rkt, partition, value, o->size_bytes, key_len ? key : NULL, key_len, 0,
                                stop_ns == UINT64_MAX ? now_ns() + 60000000000ull : stop_ns + 60000000000ull) != 0)
                        break;
                if ((sent & 1023) == 0)
                        rd_kafka_poll(rk, 0);
        }
        uint64_t sent_ns = now_ns();
        rd_kafka_flush(rk, BENCH_FLUSH_TIMEOUT_MS);
        rd_kafka_poll(rk, 0);
        int outq = rd_kafka_outq_len(rk);
        uint64_t end_ns = s.last_ack_ns > start_ns ? s.last_ack_ns : now_ns();
        double elapsed_s = (double)(end_ns - start_ns) / 1e9;
        printf("{\"mode\":\"produce\",\"ok\":%s,\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64
               ",\"failed\":%" PRIu64 ",\"undelivered\":%d,\"bytes\":%" PRIu64 ",\"elapsed_s\":%.4f,"
               "\"send_s\":%.4f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"first_error\":\"%s\"}\n",
               s.failed_count == 0 && outq == 0 && s.delivered_count > 0 ? "true" : "false", sent,
               s.delivered_count, s.failed_count, outq, s.delivered_bytes, elapsed_s,
               (double)(sent_ns - start_ns) / 1e9, (double)s.delivered_count / elapsed_s,
               (double)s.delivered_bytes / 1e6 / elapsed_s, s.failed_count ? rd_kafka_err2name(s.first_error) : "");
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        free(pool);
        return s.failed_count == 0 && outq == 0 ? 0 : 1;
}

/* ---- consume */

struct consume_range {
        int64_t low;
        int64_t high;
        bool is_done;
};

static int query_ranges(rd_kafka_t *rk, const char *topic, uint32_t partition_count, struct consume_range *r)
{
        for (uint32_t p = 0; p < partition_count; p++) {
                rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
                for (int attempt = 0; attempt < 20; attempt++) {
                        e = rd_kafka_query_watermark_offsets(rk, topic, (int32_t)p, &r[p].low, &r[p].high,
                                                             BENCH_WATERMARK_TIMEOUT_MS);
                        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                                break;
                        usleep(100 * 1000);
                }
                if (e) {
                        fprintf(stderr, "bench_rdkafka: watermarks of %s [%u]: %s\n", topic, p, rd_kafka_err2str(e));
                        return -1;
                }
        }
        return 0;
}

static void assign_all(rd_kafka_t *rk, const char *topic, uint32_t partition_count, const struct consume_range *r,
                       bool is_from_end)
{
        rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)partition_count);
        for (uint32_t p = 0; p < partition_count; p++)
                rd_kafka_topic_partition_list_add(list, topic, (int32_t)p)->offset =
                        is_from_end ? r[p].high : RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
        if (e)
                die("assign: %s", rd_kafka_err2str(e));
        rd_kafka_topic_partition_list_destroy(list);
}

static rd_kafka_t *consumer_new(const struct bench_options *o)
{
        rd_kafka_conf_t *conf = conf_new(o);
        /* assign() needs no group; the id only names the client's state, and
         * nothing is committed, so no coordinator is ever asked for. */
        conf_set(conf, "group.id", "runnel-bench");
        conf_set(conf, "enable.auto.commit", "false");
        conf_set(conf, "enable.auto.offset.store", "false");
        conf_set(conf, "auto.offset.reset", "earliest");
        conf_set(conf, "enable.partition.eof", "false");
        rd_kafka_t *rk = client_new(RD_KAFKA_CONSUMER, conf);
        rd_kafka_poll_set_consumer(rk);
        return rk;
}

/* Takes what is queued without waiting, or waits (up to timeout_ms) for one
 * message: rd_kafka_consume_batch_queue alone would hold messages back until
 * its batch is full or its timeout ends, which a clock must not see. */
static ssize_t take_messages(rd_kafka_queue_t *q, int timeout_ms, rd_kafka_message_t **batch, size_t size)
{
        ssize_t n = rd_kafka_consume_batch_queue(q, 0, batch, size);
        if (n != 0)
                return n;
        batch[0] = rd_kafka_consume_queue(q, timeout_ms);
        return batch[0] ? 1 : 0;
}

static int run_consume(const struct bench_options *o)
{
        if (o->partition_count == 0 || o->partition_count > BENCH_PARTITIONS_MAX)
                die("consume needs -p PARTITIONS%s", "");
        rd_kafka_t *rk = consumer_new(o);
        struct consume_range *r = calloc(o->partition_count, sizeof(*r));
        if (!r || query_ranges(rk, o->topic, o->partition_count, r) != 0) {
                rd_kafka_destroy(rk);
                free(r);
                return 1;
        }
        uint64_t pass_count_total = 0;
        for (uint32_t p = 0; p < o->partition_count; p++)
                pass_count_total += (uint64_t)(r[p].high - r[p].low);
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
        rd_kafka_message_t *batch[1024];
        uint64_t count = 0, bytes = 0, errors = 0, last_ns = 0;
        /* Time between the first and the last message of each pass, summed:
         * the start of a pass (ListOffsets, the first fetch, and on the mock
         * an empty fetch held for fetch.wait.max.ms) is not delivery. */
        uint64_t active_ns = 0;
        uint64_t count_max = o->count ? o->count : UINT64_MAX;
        uint64_t start_ns = now_ns();
        uint64_t stop_ns = start_ns + (uint64_t)((o->duration_s > 0 ? o->duration_s : 600) * 1e9);
        int passes = 0;
        bool is_complete = pass_count_total == 0;
        while (passes < BENCH_PASSES_MAX && !is_complete && !is_interrupted) {
                uint32_t left = 0;
                passes++;
                for (uint32_t p = 0; p < o->partition_count; p++) {
                        r[p].is_done = r[p].high <= r[p].low;
                        left += !r[p].is_done;
                }
                assign_all(rk, o->topic, o->partition_count, r, false);
                uint64_t pass_first_ns = 0, pass_last_ns = 0;
                while (left > 0 && count < count_max && !is_interrupted) {
                        if (now_ns() >= stop_ns)
                                break;
                        ssize_t n = take_messages(q, 100, batch, 1024);
                        for (ssize_t i = 0; i < n; i++) {
                                rd_kafka_message_t *m = batch[i];
                                if (m->err) {
                                        if (errors++ == 0)
                                                fprintf(stderr, "bench_rdkafka: consume: %s\n", rd_kafka_message_errstr(m));
                                } else if ((uint32_t)m->partition < o->partition_count) {
                                        struct consume_range *pr = &r[m->partition];
                                        count++;
                                        bytes += m->len + m->key_len;
                                        if (!pr->is_done && m->offset + 1 >= pr->high) {
                                                pr->is_done = true;
                                                left--;
                                        }
                                }
                                rd_kafka_message_destroy(m);
                        }
                        if (n > 0) {
                                last_ns = now_ns();
                                if (!pass_first_ns)
                                        pass_first_ns = last_ns;
                                pass_last_ns = last_ns;
                        }
                }
                active_ns += pass_last_ns - pass_first_ns;
                rd_kafka_assign(rk, NULL);
                is_complete = left == 0 && bytes >= o->min_bytes;
                if (left > 0 || count >= count_max || now_ns() >= stop_ns)
                        break;
        }
        double elapsed_s = (double)((last_ns > start_ns ? last_ns : now_ns()) - start_ns) / 1e9;
        double active_s = active_ns ? (double)active_ns / 1e9 : elapsed_s;
        bool is_ok = count > 0 && errors == 0 && (is_complete || count >= count_max);
        printf("{\"mode\":\"consume\",\"ok\":%s,\"messages\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"passes\":%d,\"log_messages\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"elapsed_s\":%.4f,"
               "\"active_s\":%.4f,\"msgs_per_s\":%.1f,\"mb_per_s\":%.3f,\"wall_mb_per_s\":%.3f}\n",
               is_ok ? "true" : "false", count, bytes, passes, pass_count_total, errors, elapsed_s, active_s,
               (double)count / active_s, (double)bytes / 1e6 / active_s, (double)bytes / 1e6 / elapsed_s);
        rd_kafka_queue_destroy(q);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        free(r);
        return is_ok ? 0 : 1;
}

/* ---- latency */

struct latency_consumer {
        pthread_t thread;
        rd_kafka_t *rk;
        uint64_t *e2e_ns;
        uint64_t capacity;
        uint64_t count;                 /* samples kept (after warm-up) */
        atomic_uint_fast64_t seen_count;/* stamped messages received */
        uint64_t warmup_end_ns;
        atomic_bool should_stop;
        uint64_t errors;
};

static void *latency_consume_main(void *arg)
{
        struct latency_consumer *c = arg;
        rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c->rk);
        rd_kafka_message_t *batch[256];
        while (!atomic_load(&c->should_stop)) {
                ssize_t n = take_messages(q, 50, batch, 256);
                uint64_t t = now_ns();
                for (ssize_t i = 0; i < n; i++) {
                        rd_kafka_message_t *m = batch[i];
                        if (m->err) {
                                if (c->errors++ == 0)
                                        fprintf(stderr, "bench_rdkafka: consume: %s\n", rd_kafka_message_errstr(m));
                        } else if (m->len >= 16 && get_u64(m->payload) == BENCH_STAMP_MAGIC) {
                                uint64_t sent_ns = get_u64((const uint8_t *)m->payload + 8);
                                atomic_fetch_add(&c->seen_count, 1);
                                if (sent_ns >= c->warmup_end_ns && c->count < c->capacity)
                                        c->e2e_ns[c->count++] = t - sent_ns;
                        }
                        rd_kafka_message_destroy(m);
                }
        }
        rd_kafka_queue_destroy(q);
        return NULL;
}

static int compare_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void print_percentiles(const char *name, uint64_t *v, uint64_t n)
{
        qsort(v, n, sizeof(*v), compare_u64);
#define PCT(q) (n ? (double)v[(uint64_t)((double)(n - 1) * (q))] / 1e6 : -1.0)
        printf("\"%s\":{\"count\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f}", name,
               n, PCT(0.5), PCT(0.99), PCT(0.999), n ? (double)v[n - 1] / 1e6 : -1.0);
#undef PCT
}

static int run_latency(const struct bench_options *o)
{
        if (o->rate_per_s <= 0 || o->duration_s <= 0)
                die("latency needs -r RATE and -d SECONDS%s", "");
        if (o->size_bytes < 16)
                die("latency needs -s 16 or more%s", "");
        uint32_t partition_count = o->partition_count ? o->partition_count : 1;
        uint64_t planned = (uint64_t)(o->rate_per_s * o->duration_s);
        if (planned > BENCH_LATENCY_SAMPLES_MAX)
                die("rate x duration is over the sample bound%s", "");

        struct latency_consumer c;
        memset(&c, 0, sizeof(c));
        c.rk = consumer_new(o);
        c.capacity = planned + 1;
        c.e2e_ns = malloc(c.capacity * sizeof(uint64_t));
        struct consume_range *r = calloc(partition_count, sizeof(*r));
        struct produce_state s;
        memset(&s, 0, sizeof(s));
        s.ack_capacity = planned + 1;
        s.ack_ns = malloc(s.ack_capacity * sizeof(uint64_t));
        if (!c.e2e_ns || !r || !s.ack_ns)
                die("out of memory%s", "");
        if (query_ranges(c.rk, o->topic, partition_count, r) != 0)
                return 1;
        assign_all(c.rk, o->topic, partition_count, r, true);

        rd_kafka_conf_t *conf = conf_new(o);
        producer_conf(conf, o, &s);
        rd_kafka_t *rk = client_new(RD_KAFKA_PRODUCER, conf);
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, o->topic, NULL);
        const struct rd_kafka_metadata *md = NULL;
        if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
                rd_kafka_metadata_destroy(md);
        /* Let the consumer's first fetches reach the broker before the clock starts. */
        usleep(500 * 1000);

        uint64_t start_ns = now_ns();
        c.warmup_end_ns = start_ns + (uint64_t)(o->warmup_s * 1e9);
        s.warmup_end_ns = c.warmup_end_ns;
        if (pthread_create(&c.thread, NULL, latency_consume_main, &c) != 0)
                die("pthread_create%s", "");
        uint8_t *value = calloc(1, o->size_bytes);
        if (!value)
                die("out of memory%s", "");
        uint8_t *pool = pool_new();
        memcpy(value, pool, o->size_bytes);
        free(pool);
        put_u64(value, BENCH_STAMP_MAGIC);
        uint64_t sent = 0, late_max_ns = 0;
        for (; sent < planned && !is_interrupted; sent++) {
                uint64_t due_ns = start_ns + (uint64_t)((double)sent * 1e9 / o->rate_per_s);
                uint64_t t = now_ns();
                if (t < due_ns)
                        sleep_until_ns(due_ns);
                else if (t - due_ns > late_max_ns)
                        late_max_ns = t - due_ns;
                /* The stamp is the time the message was due, not when it went. */
                put_u64(value + 8, due_ns);
                int32_t partition = (int32_t)(sent % partition_count);
                if (produce_one(rk, rkt, partition, value, o->size_bytes, NULL, 0, RD_KAFKA_MSG_F_COPY,
                                due_ns + 60000000000ull) != 0)
                        break;
                rd_kafka_poll(rk, 0);
        }
        uint64_t send_end_ns = now_ns();
        rd_kafka_flush(rk, BENCH_FLUSH_TIMEOUT_MS);
        rd_kafka_poll(rk, 0);
        int outq = rd_kafka_outq_len(rk);
        /* Wait (bounded) for the consumer to see every delivered message. */
        uint64_t drain_deadline_ns = now_ns() + (uint64_t)BENCH_DRAIN_TIMEOUT_MS * 1000000u;
        while (atomic_load(&c.seen_count) < s.delivered_count && now_ns() < drain_deadline_ns && !is_interrupted)
                usleep(10 * 1000);
        atomic_store(&c.should_stop, true);
        pthread_join(c.thread, NULL);

        uint64_t seen = atomic_load(&c.seen_count);
        bool is_ok = s.failed_count == 0 && outq == 0 && seen >= s.delivered_count && c.errors == 0;
        printf("{\"mode\":\"latency\",\"ok\":%s,\"sent\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"consumed\":%" PRIu64
               ",\"failed\":%" PRIu64 ",\"rate_target\":%.1f,\"rate_achieved\":%.1f,\"sender_late_max_ms\":%.3f,"
               "\"warmup_s\":%.2f,",
               is_ok ? "true" : "false", sent, s.delivered_count, seen, s.failed_count, o->rate_per_s,
               (double)sent / ((double)(send_end_ns - start_ns) / 1e9), (double)late_max_ns / 1e6, o->warmup_s);
        print_percentiles("e2e", c.e2e_ns, c.count);
        printf(",");
        print_percentiles("ack", s.ack_ns, s.ack_count);
        printf("}\n");

        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        rd_kafka_assign(c.rk, NULL);
        rd_kafka_consumer_close(c.rk);
        rd_kafka_destroy(c.rk);
        free(value);
        free(c.e2e_ns);
        free(s.ack_ns);
        free(r);
        return is_ok ? 0 : 1;
}

/* ---- options */

static uint64_t parse_u64(const char *s, uint64_t max)
{
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || end == s || v > max)
                die("bad number: %s", s);
        return v;
}

static double parse_double(const char *s)
{
        char *end;
        double v = strtod(s, &end);
        if (*end || end == s || v < 0)
                die("bad number: %s", s);
        return v;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: bench_rdkafka create|produce|consume|latency -b BROKERS -t TOPIC\n"
                "       [-s SIZE] [-n COUNT] [-d SECONDS] [-a 0|1|all] [-z CODEC] [-l LINGER_MS]\n"
                "       [-B BATCH_BYTES] [-p PARTITIONS] [-k KEYS] [-r RATE] [-w WARMUP_S]\n"
                "       [-m MIN_BYTES] [-X key=value]...\n");
        exit(2);
}

int main(int argc, char **argv)
{
        struct bench_options o = {
                .size_bytes = 1024, .acks = "1", .codec = "none", .linger_ms = 5, .warmup_s = 1.0,
        };
        if (argc < 2)
                usage();
        o.mode = argv[1];
        for (int i = 2; i < argc; i++) {
                const char *a = argv[i];
                if (a[0] != '-' || a[1] == '\0' || a[2] != '\0' || i + 1 >= argc)
                        usage();
                const char *v = argv[++i];
                switch (a[1]) {
                case 'b': o.brokers = v; break;
                case 't': o.topic = v; break;
                case 's': o.size_bytes = (uint32_t)parse_u64(v, BENCH_SIZE_MAX); break;
                case 'n': o.count = parse_u64(v, UINT64_MAX / 2); break;
                case 'd': o.duration_s = parse_double(v); break;
                case 'a': o.acks = v; break;
                case 'z': o.codec = v; break;
                case 'l': o.linger_ms = (int)parse_u64(v, 900000); break;
                case 'B': o.batch_bytes = (int)parse_u64(v, 1u << 30); break;
                case 'p': o.partition_count = (uint32_t)parse_u64(v, BENCH_PARTITIONS_MAX); break;
                case 'k': o.key_count = (uint32_t)parse_u64(v, UINT32_MAX); break;
                case 'r': o.rate_per_s = parse_double(v); break;
                case 'w': o.warmup_s = parse_double(v); break;
                case 'm': o.min_bytes = parse_u64(v, UINT64_MAX / 2); break;
                case 'X':
                        if (o.conf_count >= BENCH_CONF_MAX)
                                die("too many -X%s", "");
                        o.conf[o.conf_count++] = v;
                        break;
                default: usage();
                }
        }
        if (!o.brokers || !o.topic)
                usage();
        if (o.size_bytes > BENCH_POOL_BYTES / 2)
                die("-s is at most 1 MiB%s", "");
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (strcmp(o.mode, "create") == 0)
                return run_create(&o);
        if (strcmp(o.mode, "produce") == 0)
                return run_produce(&o);
        if (strcmp(o.mode, "consume") == 0)
                return run_consume(&o);
        if (strcmp(o.mode, "latency") == 0)
                return run_latency(&o);
        usage();
        return 2;
}
