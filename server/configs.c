/*
 * configs.c - DescribeConfigs, AlterConfigs, IncrementalAlterConfigs and the
 * effective topic config entries they and CreateTopics report.
 *
 * A topic's value comes from, in Kafka's order of precedence: its own
 * override (DYNAMIC_TOPIC_CONFIG), the broker's synonym in server.properties
 * (STATIC_BROKER_CONFIG), or Kafka's default (DEFAULT_CONFIG).
 */
#include "configs.h"

#include <errno.h>

#include "../log/topic_config.h"

int configs_topic_entries(const struct broker *b, const struct catalog_topic *t, struct arena *a,
                          struct config_entry **out)
{
        const struct topic_config_base *base = &b->config->topic_defaults;
        struct config_entry *e = arena_calloc(a, TOPIC_CONFIG_COUNT, sizeof(*e));
        if (!e)
                return -ENOMEM;
        for (int k = 0; k < TOPIC_CONFIG_COUNT; k++) {
                const struct config_def *def = topic_config_def((enum topic_config_key)k);
                const char *override = t ? catalog_topic_config(t, def->name) : NULL;
                e[k].def = def;
                if (override) {
                        e[k].value = override;
                        e[k].source = CONFIG_SOURCE_DYNAMIC_TOPIC;
                } else {
                        e[k].value = base->text[k];
                        e[k].source = base->source[k];
                        e[k].broker_key = base->broker_key[k];
                }
        }
        *out = e;
        return TOPIC_CONFIG_COUNT;
}
