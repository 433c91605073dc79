/*
 * group_internal.h - what the files of the group coordinator share:
 * group.c (groups, members and the rebalance state machine) and
 * group_store.c (persistence and replay). No other file includes it;
 * everyone else uses group.h. Everything here runs on the coordinator's
 * thread, as the rest of the module.
 */
#ifndef RUNNEL_COORDINATOR_GROUP_INTERNAL_H
#define RUNNEL_COORDINATOR_GROUP_INTERNAL_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "group.h"

struct group_coordinator {
        struct group_config cfg;
        struct group_env env;
        struct group_map groups;
        struct group *head, *tail;
        group_offsets_release_fn release_offsets;
        void *release_ctx;
        group_persist_fn persist;
        void *persist_ctx;
};

/* An owned, NUL-terminated copy; a null string stays null. false on ENOMEM. */
static inline bool group_kstr_dup(struct kstr *out, struct kstr s)
{
        if (s.len < 0) {
                *out = KSTR_NULL;
                return true;
        }
        char *p = malloc((size_t)s.len + 1);
        if (!p)
                return false;
        if (s.len > 0)
                memcpy(p, s.ptr, (size_t)s.len);
        p[s.len] = '\0';
        *out = (struct kstr){ p, s.len };
        return true;
}

static inline void group_kstr_free(struct kstr *s)
{
        if (s->len >= 0)
                free((void *)s->ptr);
        *s = KSTR_NULL;
}

static inline bool group_kstr_is_empty(struct kstr s)
{
        return s.len <= 0;
}

/* A new, empty group named id, added to gc; NULL with *error_code
 * (COORDINATOR_NOT_AVAILABLE past GROUP_COUNT_MAX or out of memory). */
struct group *group_new(struct group_coordinator *gc, struct kstr id, int16_t *error_code);

/* Unlinks g from its coordinator and frees it with its members; their
 * parked requests are forgotten, not answered. g->offsets must be NULL. */
void group_free(struct group *g);

/* Asserts the invariants of group.h on g. */
void group_check(const struct group *g);

void group_transition(struct group *g, enum group_state to);

/* Answers every member's parked SyncGroup with its assignment (or error_code). */
void group_propagate_assignment(struct group *g, int16_t error_code);

/* Clears the assignment and answers the parked SyncGroups with error_code. */
void group_reset_and_propagate_assignment_with_error(struct group *g, int16_t error_code);

/* Kafka's maybePrepareRebalance, or completes the join at once when it can. */
void group_maybe_prepare_rebalance_or_complete_join(struct group *g, const char *reason, struct kstr who);

#endif
