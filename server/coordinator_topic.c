/*
 * coordinator_topic.c - creating __consumer_offsets, locating a group's
 * home, and the group coordinator of each home (see coordinator_topic.h).
 *
 * Each home's coordinator hangs off a thread-local pointer: a home is a
 * reactor thread, so "this thread's coordinator" is "this home's". They
 * are also kept on a global list, so that they stay reachable (and are not
 * reported as leaks) until the process exits; nothing frees them before,
 * because reactors are only stopped at exit.
 */
#include "coordinator_topic.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "partition_home.h"

/* ---- the topic ---- */

int16_t coordinator_ensure_topic(struct broker *b, const char *topic, int32_t partition_count,
                                 const struct catalog_config *configs, uint32_t config_count, const char *purpose)
{
        struct kstr name = KSTR(topic);
        const struct catalog_topic *t = catalog_get_topic(b->catalog, name);
        if (t) {
                catalog_topic_put(t);
                return KAFKA_NONE;
        }
        struct catalog_topic_spec spec = {
                .name = name,
                .partition_count = partition_count,
                .configs = configs,
                .config_count = config_count,
        };
        struct catalog_err err = { 0 };
        int rc = catalog_create_topic(b->catalog, &spec, NULL, &err);
        if (rc < 0) {
                log_error("cannot create %s: %s; the %s is unavailable until it can be created "
                          "(check the first log dir)", topic, strerror(-rc), purpose);
                return KAFKA_COORDINATOR_NOT_AVAILABLE;
        }
        if (err.code == KAFKA_NONE) {
                log_info("created %s with %d partitions for the %s", topic, spec.partition_count, purpose);
                return KAFKA_NONE;
        }
        if (err.code == KAFKA_TOPIC_ALREADY_EXISTS)
                return KAFKA_NONE;      /* another reactor was first */
        log_error("cannot create %s: %s (error %s)", topic, err.message ? err.message : "",
                  kafka_error_name(err.code));
        return KAFKA_COORDINATOR_NOT_AVAILABLE;
}

int16_t coordinator_ensure_offsets_topic(struct broker *b)
{
        char segment_bytes[16];
        snprintf(segment_bytes, sizeof(segment_bytes), "%d", b->config->offsets_topic_segment_bytes);
        const struct catalog_config configs[] = {
                { "cleanup.policy", "compact" },
                { "compression.type", "producer" },
                { "segment.bytes", segment_bytes },
        };
        return coordinator_ensure_topic(b, COORDINATOR_OFFSETS_TOPIC, b->config->offsets_topic_num_partitions,
                                        configs, sizeof(configs) / sizeof(configs[0]), "group coordinator");
}

bool coordinator_locate_group(struct broker *b, struct kstr group_id, struct coordinator_place *out)
{
        const struct catalog_topic *t = catalog_get_topic(b->catalog, KSTR(COORDINATOR_OFFSETS_TOPIC));
        if (!t)
                return false;
        assert(t->partition_count > 0);
        out->topic = t;
        out->partition = group_partition_of(group_id.len < 0 ? (struct kstr){ "", 0 } : group_id,
                                            t->partition_count);
        out->home = partition_home_reactor(b->homes, partition_home_index(b->homes, t, out->partition));
        assert(out->home);
        return true;
}

void coordinator_place_put(struct coordinator_place *place)
{
        catalog_topic_put(place->topic);
        place->topic = NULL;
}

/* ---- the coordinator of each home ---- */

/* How often a home looks whether its reactor is stopping. */
#define HOME_STOP_WATCH_MS 200

struct home_groups {
        struct group_coordinator *gc;
        struct reactor *reactor;
        reactor_timer_id stop_watch;
        struct home_groups *next;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct home_groups *registry;
static _Thread_local struct group_coordinator *this_home_groups;

static int64_t env_now_ms(void *ctx)
{
        (void)ctx;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static group_timer_id env_timer_add(void *ctx, uint64_t delay_ms, group_timer_fn fn, void *arg)
{
        struct reactor *r = ctx;
        assert(reactor_self() == r);
        return reactor_timer_add(r, delay_ms, fn, arg);
}

static void env_timer_cancel(void *ctx, group_timer_id id)
{
        struct reactor *r = ctx;
        assert(reactor_self() == r);
        reactor_timer_cancel(r, id);
}

static void env_random_bytes(void *ctx, uint8_t *buf, size_t len)
{
        (void)ctx;
        size_t done = 0;
        while (done < len) {
                ssize_t n = getrandom(buf + done, len - done, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        /* Member ids need to be unique, not secret. */
                        uint64_t x = (uint64_t)env_now_ms(NULL) ^ (uint64_t)(uintptr_t)buf ^ 0x9e3779b97f4a7c15ULL;
                        for (; done < len; done++) {
                                x ^= x << 13;
                                x ^= x >> 7;
                                x ^= x << 17;
                                buf[done] = (uint8_t)x;
                        }
                        return;
                }
                done += (size_t)n;
        }
}

/*
 * Parked JoinGroup and SyncGroup requests would hold their connections
 * open through the whole shutdown drain, so once the reactor is stopping
 * they are answered NOT_COORDINATOR, as Kafka answers them when a
 * coordinator unloads, and the groups are dropped.
 */
static void home_watch_stop(void *arg)
{
        struct home_groups *hg = arg;
        hg->stop_watch = 0;
        if (reactor_is_stop_requested(hg->reactor) && group_coordinator_group_count(hg->gc) > 0)
                group_coordinator_unload(hg->gc, KAFKA_NOT_COORDINATOR);
        hg->stop_watch = reactor_timer_add(hg->reactor, HOME_STOP_WATCH_MS, home_watch_stop, hg);
}

struct group_coordinator *coordinator_home_groups(struct broker *b)
{
        if (this_home_groups)
                return this_home_groups;
        struct reactor *r = reactor_self();
        assert(r);
        const struct broker_config *c = b->config;
        struct group_config cfg = {
                .initial_rebalance_delay_ms = c->group_initial_rebalance_delay_ms,
                .min_session_timeout_ms = c->group_min_session_timeout_ms,
                .max_session_timeout_ms = c->group_max_session_timeout_ms,
                .max_size = c->group_max_size > 0 ? c->group_max_size : 1,
                .new_member_join_timeout_ms = GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS,
                .empty_group_retention_ms = c->offsets_retention_check_interval_ms,
        };
        if (cfg.min_session_timeout_ms > cfg.max_session_timeout_ms) {
                log_warn("group.min.session.timeout.ms %d is above group.max.session.timeout.ms %d; "
                         "every JoinGroup will fail with INVALID_SESSION_TIMEOUT",
                         cfg.min_session_timeout_ms, cfg.max_session_timeout_ms);
        }
        if (cfg.initial_rebalance_delay_ms < 0)
                cfg.initial_rebalance_delay_ms = 0;
        struct group_env env = {
                .now_ms = env_now_ms,
                .timer_add = env_timer_add,
                .timer_cancel = env_timer_cancel,
                .random_bytes = env_random_bytes,
                .ctx = r,
        };
        struct home_groups *hg = calloc(1, sizeof(*hg));
        if (!hg)
                return NULL;
        hg->gc = group_coordinator_create(&cfg, &env);
        if (!hg->gc) {
                free(hg);
                return NULL;
        }
        pthread_mutex_lock(&registry_lock);
        hg->next = registry;
        registry = hg;
        pthread_mutex_unlock(&registry_lock);
        hg->reactor = r;
        hg->stop_watch = reactor_timer_add(r, HOME_STOP_WATCH_MS, home_watch_stop, hg);
        this_home_groups = hg->gc;
        return hg->gc;
}
