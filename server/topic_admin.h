/*
 * topic_admin.h - creating topics on behalf of other handlers (Metadata's
 * and, later, Produce's auto-creation), with the broker's defaults.
 */
#ifndef RUNNEL_TOPIC_ADMIN_H
#define RUNNEL_TOPIC_ADMIN_H

#include "broker.h"

/*
 * Creates name with num.partitions partitions and no overrides when
 * auto.create.topics.enable allows it. Returns a Kafka error code:
 * NONE (created, or created concurrently by someone else),
 * UNKNOWN_TOPIC_OR_PARTITION (auto-creation disabled), INVALID_TOPIC_EXCEPTION,
 * or UNKNOWN_SERVER_ERROR when the disk refused.
 */
int topic_admin_auto_create(struct broker *b, struct kstr name);

#endif
