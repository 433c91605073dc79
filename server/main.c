/*
 * main.c - the runnel broker process: configuration, log directories, the
 * topic catalog, the network server, and an orderly shutdown on SIGTERM or
 * SIGINT.
 *
 *   build/runnel [server.properties] [--override key=value]...
 *
 * Start-up order is the dependency order (config -> log dirs -> catalog ->
 * partition homes -> checkpointer, which reads the checkpoints and takes the
 * clean-shutdown markers -> server, whose reactors open the partitions ->
 * checkpoint writer thread) and shutdown is its reverse: the reactors flush
 * and close their partitions as they stop (partition_home.h), then the
 * final checkpoints and the markers are written (checkpointer.h). A failure
 * at any step prints one line saying what to do and exits non-zero.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "../base/logging.h"
#include "../log/catalog.h"
#include "../log/logdir.h"
#include "../log/producer_ids.h"
#include "broker.h"
#include "checkpointer.h"
#include "config.h"
#include "dispatch.h"
#include "offsets.h"
#include "txn.h"
#include "partition_home.h"
#include "server.h"

static struct server *running_server;

static void on_stop_signal(int sig)
{
        (void)sig;
        if (running_server)
                server_request_stop(running_server);
}

static int install_signals(void)
{
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0)
                return -errno;
        signal(SIGPIPE, SIG_IGN);
        return 0;
}

static void catalog_log_line(void *ctx, const char *line)
{
        (void)ctx;
        log_info("%s", line);
}

/* The kernel's ceiling for RLIMIT_NOFILE (fs.nr_open); 0 when unknown. */
static rlim_t read_nr_open(void)
{
        FILE *f = fopen("/proc/sys/fs/nr_open", "re");
        unsigned long long v = 0;

        if (!f)
                return 0;
        if (fscanf(f, "%llu", &v) != 1)
                v = 0;
        fclose(f);
        return (rlim_t)v;
}

/*
 * A broker holds a descriptor per connection and per segment, so the soft
 * open-files limit (often 1024) is raised to the hard one, as nginx,
 * PostgreSQL and systemd services do, and said once: an operator who
 * sees partitions refused for lack of descriptors knows where to look.
 */
static void raise_open_files_limit(void)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
                log_warn("cannot read the open-files limit: %s", strerror(errno));
                return;
        }
        rlim_t old = rl.rlim_cur;
        rlim_t want = rl.rlim_max;
        rlim_t nr_open = read_nr_open();

        /* An unlimited hard limit cannot be set as such for descriptors. */
        if (want == RLIM_INFINITY || (nr_open > 0 && want > nr_open))
                want = nr_open > 0 ? nr_open : old;
        if (want > old) {
                rl.rlim_cur = want;
                if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
                        log_warn("cannot raise the open-files limit from %llu to %llu: %s", (unsigned long long)old,
                                 (unsigned long long)want, strerror(errno));
                        return;
                }
                log_info("open-files limit raised from %llu to %llu (the hard limit)", (unsigned long long)old,
                         (unsigned long long)want);
                return;
        }
        log_info("open-files limit: %llu (the hard limit; raise it with ulimit -Hn or LimitNOFILE= for more "
                 "partitions or connections)", (unsigned long long)old);
}

/*
 * The listeners are bound and no reactor runs yet: what Metadata,
 * FindCoordinator and the like advertise is set now. It used to be set
 * once server_start had returned, while the reactors were already
 * answering: a client reconnecting the moment a restarted broker listened
 * (an idempotent producer resending after a crash) could be told port 0,
 * and librdkafka then connected to 127.0.0.1:0 for good.
 */
static void on_listening(uint16_t port, void *ctx)
{
        struct broker *b = ctx;
        const struct broker_config *cfg = b->config;
        const struct config_listener *adv = cfg->advertised_count > 0 ? &cfg->advertised[0] : &cfg->listeners[0];

        b->advertised_port = adv->port ? adv->port : port;
}

int main(int argc, char **argv)
{
        static struct broker_config cfg;
        static struct logdirs dirs;
        struct catalog *catalog = NULL;
        struct checkpointer *checkpointer = NULL;
        struct server *srv = NULL;
        char err[512];
        char hostname[256];
        int exit_code = 1;

        if (config_load_args(&cfg, argc, argv, stderr, err, sizeof(err)) < 0) {
                fprintf(stderr, "runnel: %s\n", err);
                return 2;
        }
        raise_open_files_limit();
        if (cfg.listener_count != 1) {
                log_error("runnel serves exactly one listener for now, but listeners names %u; "
                          "keep one PLAINTEXT listener", cfg.listener_count);
                goto out_config;
        }
        if (logdirs_open(&dirs, (const char *const *)cfg.log_dirs, cfg.log_dir_count, cfg.node_id,
                         err, sizeof(err)) < 0) {
                log_error("%s", err);
                goto out_config;
        }
        struct catalog_hooks hooks = { .log_line = catalog_log_line, .release_log = partition_homes_release_log };
        if (catalog_open(&catalog, &dirs, &hooks, err, sizeof(err)) < 0) {
                log_error("%s", err);
                goto out_dirs;
        }

        static struct broker broker;
        if (producer_ids_open(dirs.dirs[0].dir_fd, &broker.producer_ids, err, sizeof(err)) < 0) {
                log_error("%s/%s: %s", dirs.dirs[0].path, PRODUCER_IDS_FILE, err);
                goto out_catalog;
        }
        broker.config = &cfg;
        broker.logdirs = &dirs;
        broker.catalog = catalog;
        broker.node_id = cfg.node_id;
        broker.cluster_id = logdirs_cluster_id(&dirs);
        broker.rack = cfg.rack;
        const struct config_listener *adv = cfg.advertised_count > 0 ? &cfg.advertised[0] : &cfg.listeners[0];
        broker.advertised_host = adv->host;
        if (!adv->host[0]) {
                /* Kafka advertises the canonical host name for an unbound listener. */
                if (gethostname(hostname, sizeof(hostname)) < 0)
                        snprintf(hostname, sizeof(hostname), "localhost");
                hostname[sizeof(hostname) - 1] = '\0';
                broker.advertised_host = hostname;
        }

        broker.is_durable_acks = cfg.is_durable_acks;
        if (partition_homes_create(&broker, (uint32_t)cfg.num_network_threads, &broker.homes) < 0) {
                log_error("out of memory setting up partition homes");
                goto out_catalog;
        }
        /* Before any partition opens: reads the checkpoints and takes the
         * clean-shutdown markers. */
        if (checkpointer_create(&cfg, &dirs, catalog, broker.homes, &checkpointer, err, sizeof(err)) < 0) {
                log_error("%s", err);
                goto out_homes;
        }
        partition_homes_set_checkpointer(broker.homes, checkpointer);

        struct server_options o;
        server_options_init(&o);
        o.on_reactor_start = partition_homes_on_reactor_start;
        o.on_reactor_stop = partition_homes_on_reactor_stop;
        o.on_listening = on_listening;
        o.host = cfg.listeners[0].host;
        o.port = cfg.listeners[0].port;
        o.reactor_count = (uint32_t)cfg.num_network_threads;
        o.dispatch = dispatch_request;
        o.dispatch_ctx = &broker;
        o.socket_request_max_bytes = cfg.socket_request_max_bytes;
        o.connections_max_idle_ms = cfg.connections_max_idle_ms < 0 ? 0 : (uint64_t)cfg.connections_max_idle_ms;
        if (cfg.max_connections > 0)
                o.max_connections = (uint32_t)cfg.max_connections;
        if (cfg.socket_listen_backlog_size > 0)
                o.listen_backlog = (uint32_t)cfg.socket_listen_backlog_size;
        if (install_signals() < 0) {
                log_error("cannot install signal handlers: %s", strerror(errno));
                goto out_homes;
        }
        /* Hold SIGTERM/SIGINT until the server can take them: the reactor
         * threads inherit the mask, and one arriving meanwhile is delivered
         * (not lost) when main unblocks it below. */
        sigset_t stop_signals, old_mask;
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGTERM);
        sigaddset(&stop_signals, SIGINT);
        pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
        if (server_start(&o, &srv) < 0) {
                pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
                goto out_finish;        /* the reactors that started have closed their partitions */
        }
        running_server = srv;
        int rc = checkpointer_start(checkpointer);
        if (rc < 0)
                log_error("cannot start the checkpoint writer thread (%s); checkpoints are written at shutdown only",
                          strerror(-rc));
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        /* Groups with committed offsets come back before anyone asks, as
         * Kafka loads its coordinator partitions at start-up. */
        offsets_load_all(&broker);
        txn_load_all(&broker);
        log_info("runnel started: node %d of cluster %s, listening on %s:%u, advertising %s:%d, "
                 "%u reactor threads, %u log dirs",
                 broker.node_id, broker.cluster_id, o.host[0] ? o.host : "*", server_port(srv),
                 broker.advertised_host, broker.advertised_port, server_reactor_count(srv), dirs.count);

        server_wait(srv);
        running_server = NULL;
        /* A line between the reactors' part of a stop and the rest, so that
         * a stop that takes long says which half held it. */
        log_info("runnel stopping: connections closed and partitions flushed; writing the checkpoints");
        exit_code = 0;
out_finish:
        /* Every reactor has flushed and closed its partitions: the final
         * checkpoints, then the clean-shutdown markers. The writer thread
         * stops first, while the reactors it posts to still exist. */
        checkpointer_finish(checkpointer);
        server_destroy(srv);
        if (exit_code == 0)
                log_info("runnel stopped");
out_homes:
        /* The catalog's release hook still needs the homes while it closes. */
        catalog_close(catalog);
        catalog = NULL;
        checkpointer_destroy(checkpointer);
        partition_homes_destroy(broker.homes);
out_catalog:
        producer_ids_close(broker.producer_ids);
        if (catalog)
                catalog_close(catalog);
out_dirs:
        logdirs_close(&dirs);
out_config:
        config_free(&cfg);
        return exit_code;
}
