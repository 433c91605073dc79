/*
 * configs.h - topic and broker configuration as clients see it: the entries
 * DescribeConfigs and CreateTopics (v5+) report, and the changes AlterConfigs
 * and IncrementalAlterConfigs make.
 */
#ifndef RUNNEL_CONFIGS_H
#define RUNNEL_CONFIGS_H

#include <stdbool.h>
#include <stdint.h>

#include "../protocol/arena.h"
#include "broker.h"

/* One effective config value with where it came from. */
struct config_entry {
        const struct config_def *def;
        const char *value;              /* NULL when Kafka reports null */
        enum config_source source;
        const char *broker_key;         /* synonym that supplied it, for STATIC_BROKER */
};

/*
 * Every topic config of t (NULL: a topic with no overrides), in the stable
 * order of log/topic_config.h, into arena memory. Returns the count, or
 * -ENOMEM.
 */
int configs_topic_entries(const struct broker *b, const struct catalog_topic *t, struct arena *a,
                          struct config_entry **out);

#endif
