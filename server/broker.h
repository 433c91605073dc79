/*
 * broker.h - the state one broker process shares among its reactors.
 *
 * Built by main() before the reactors start and torn down after they stop;
 * in between the pointers here never change. What they point to carries its
 * own thread-safety rules (the catalog is safe from any thread, the config
 * is read-only).
 */
#ifndef RUNNEL_BROKER_H
#define RUNNEL_BROKER_H

#include <stdint.h>

#include "../log/catalog.h"
#include "../log/logdir.h"
#include "config.h"

struct partition_homes;
struct producer_ids;

struct broker {
        const struct broker_config *config;
        struct logdirs *logdirs;
        struct catalog *catalog;
        int32_t node_id;
        const char *cluster_id;         /* base64url, from meta.properties */
        const char *advertised_host;    /* what Metadata tells clients to connect to */
        int32_t advertised_port;
        const char *rack;               /* NULL when broker.rack is unset */
        struct partition_homes *homes;  /* which reactor owns each partition */
        bool is_durable_acks;           /* acks=all waits for fdatasync */
        struct producer_ids *producer_ids;      /* InitProducerId's allocator, any thread */
};

#endif
