/*
 * version_prefixed.h - the framing of every key and value the coordinators
 * write to their internal topics (__consumer_offsets, __transaction_state):
 * an int16 version, then the generated struct encoded at that version, as
 * Kafka's MessageUtil.toVersionPrefixedBytes writes them.
 *
 * For coordinator/offsets.c and coordinator/txn_log.c. The record lives in
 * the caller's arena; nothing here keeps state.
 *
 *      struct kwriter w;
 *      int rc = version_prefixed_begin(a, version, foo_size(&v, version), &w);
 *      if (rc < 0)
 *              return rc;
 *      foo_encode(&w, &v, version);
 *      *out = version_prefixed_end(&w);
 */
#ifndef RUNNEL_COORDINATOR_VERSION_PREFIXED_H
#define RUNNEL_COORDINATOR_VERSION_PREFIXED_H

#include <stdint.h>

#include "../protocol/arena.h"
#include "../protocol/wire.h"

/*
 * Room in a for the version and body_bytes (what the codec's _size said)
 * after it, the version written, *w left at the body. 0, -EINVAL when
 * body_bytes is negative (the codec refused the struct) or too large for
 * a record, -ENOMEM.
 */
int version_prefixed_begin(struct arena *a, int16_t version, int64_t body_bytes, struct kwriter *w);

/* The record, once the body has filled w to its end. */
struct kbytes version_prefixed_end(const struct kwriter *w);

#endif
