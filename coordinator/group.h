/*
 * group.h - the classic (pre-KIP-848) consumer group membership protocol:
 * JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups
 * and DeleteGroups decided the way Kafka's group coordinator decides them
 * (GroupMetadataManager and ClassicGroup in Kafka 4).
 *
 * A group coordinator owns the groups of the __consumer_offsets partitions
 * homed on one reactor. It is pure logic: it does no I/O, reads no clock of
 * its own and never blocks. What it needs from outside comes through struct
 * group_env: the time, one-shot timers and random bytes for member ids. The
 * broker gives it reactor timers (server/coordinator_topic.c); the unit tests
 * give it a fake clock whose timers fire when the test moves time on.
 *
 * States (Kafka's ClassicGroupState), and what moves a group between them:
 *
 *   Empty ---------------> PreparingRebalance   a member joins
 *   PreparingRebalance --> CompletingRebalance  every member has rejoined, or
 *                                               the rebalance timeout passed
 *   PreparingRebalance --> Empty                nobody is left when it ends
 *   CompletingRebalance -> Stable               the leader's SyncGroup
 *   CompletingRebalance,
 *   Stable ------------> PreparingRebalance     a member joins, leaves, changes
 *                                               its protocols or times out
 *   any ----------------> Dead                  DeleteGroups, expiry (freed at
 *                                               once: a Dead group is never seen)
 *
 * Waiting requests. A JoinGroup that must wait for the other members, and a
 * follower's SyncGroup that must wait for the leader's assignment, are
 * parked on their member with the caller's waiter; the waiter's done()
 * runs exactly once, with the answer, either inside the call that parked it
 * or later, from another member's request or from a timer. Every park is
 * bounded by a timer (rebalance timeout, pending-sync expiry, the five
 * minute new-member join timeout), so no request waits forever.
 *
 * Invariants (asserted in group.c):
 *   - awaiting_join_count is the number of members with a join waiter;
 *     pending_sync_count the number with is_pending_sync; both <= member_count.
 *   - a member with a sync waiter is in CompletingRebalance; join waiters
 *     exist only in PreparingRebalance (and transiently while it completes).
 *   - leader is NULL exactly when there are no members.
 *   - a static member is in members_by_instance under its instance id, and
 *     no two members share one.
 *   - protocol_name is non-null in CompletingRebalance and Stable, null in
 *     Empty; PreparingRebalance keeps the last generation's until it ends.
 *   - a freed member or group has no timer armed and no waiter parked.
 *
 * Threads: none of its own. A coordinator and its groups are used by one
 * thread (the home reactor of their partitions); waiters' done() and timer
 * callbacks run on that thread. done() must not call back into this module.
 *
 * Membership is persisted through the persist hook (group_coordinator_set_persist)
 * as Kafka's GroupMetadata records, and replayed with group_restore(): after
 * a restart a group comes back Empty with its protocol type and generation,
 * and its members rejoin (as they do after any coordinator move in Kafka).
 *
 * Offsets (the offsets store, coordinator/offsets.*) use a group through
 * group_find(), group_get_or_create() for commits of simple consumers,
 * group_validate_offset_commit() and group->offsets, and are told of a
 * deleted group through group_coordinator_set_offsets_release().
 */
#ifndef RUNNEL_GROUP_H
#define RUNNEL_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../protocol/wire.h"

/* Kafka's classicGroupNewMemberJoinTimeoutMs (fixed, not a broker key):
 * how long a brand new member may wait in JoinGroup before it is dropped
 * (it cannot heartbeat yet). */
#define GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS (5 * 60 * 1000)

/* Limits of one coordinator, beyond Kafka's own: a new group past
 * GROUP_COUNT_MAX is refused with COORDINATOR_NOT_AVAILABLE, a new pending
 * member (MEMBER_ID_REQUIRED) past GROUP_PENDING_MEMBERS_MAX in one group
 * with GROUP_MAX_SIZE_REACHED. Ids are bounded by the wire (32767 bytes). */
#define GROUP_COUNT_MAX 1000000
#define GROUP_PENDING_MEMBERS_MAX 100000

/* Java's String.hashCode over the UTF-16 code units of a UTF-8 string
 * (malformed UTF-8 read as U+FFFD, as Java decodes it). */
int32_t group_java_string_hash(struct kstr s);

/*
 * The __consumer_offsets partition that owns a group: Kafka's
 * Utils.abs(groupId.hashCode()) % partition_count, where Utils.abs maps
 * Integer.MIN_VALUE to 0. partition_count > 0.
 */
int32_t group_partition_of(struct kstr group_id, int32_t partition_count);

enum group_state {
        GROUP_EMPTY,
        GROUP_PREPARING_REBALANCE,
        GROUP_COMPLETING_REBALANCE,
        GROUP_STABLE,
        GROUP_DEAD,
};

/* Kafka's names: "Empty", "PreparingRebalance", ... */
const char *group_state_name(enum group_state state);

/* The state whose name equals s ignoring case and surrounding blanks (the
 * ListGroups filter); false when none does. */
bool group_state_parse(struct kstr s, enum group_state *out);

/* What the coordinator needs from its surroundings. */
typedef uint64_t group_timer_id;        /* 0: no timer */
typedef void (*group_timer_fn)(void *arg);

struct group_env {
        int64_t (*now_ms)(void *ctx);
        /* fn(arg) once, no earlier than delay_ms from now; 0 on failure. */
        group_timer_id (*timer_add)(void *ctx, uint64_t delay_ms, group_timer_fn fn, void *arg);
        /* Cancels a pending timer; a fired or unknown id is ignored. */
        void (*timer_cancel)(void *ctx, group_timer_id id);
        void (*random_bytes)(void *ctx, uint8_t *buf, size_t len);
        void *ctx;
};

struct group_config {
        int32_t initial_rebalance_delay_ms;     /* group.initial.rebalance.delay.ms */
        int32_t min_session_timeout_ms;         /* group.min.session.timeout.ms */
        int32_t max_session_timeout_ms;         /* group.max.session.timeout.ms */
        int32_t max_size;                       /* group.max.size */
        int32_t new_member_join_timeout_ms;     /* GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS */
        int64_t empty_group_retention_ms;       /* an Empty group without offsets lives this long */
};

/* ---- groups and members: read-only outside group.c ---- */

struct group_map_node {
        struct group_map_node *next;
        uint64_t hash;
        struct kstr key;
};

struct group_map {
        struct group_map_node **buckets;
        uint32_t bucket_count;          /* 0 or a power of two */
        uint32_t count;
};

/* A protocol a member supports, in its order of preference. */
struct group_protocol {
        struct kstr name;
        struct kbytes metadata;
};

struct group_join_waiter;
struct group_sync_waiter;

struct group_member {
        struct group_map_node by_id;            /* key: member_id */
        struct group_map_node by_instance;      /* key: group_instance_id, when static */
        struct group *group;
        struct group_member *prev, *next;       /* the group's members, in join order */

        struct kstr member_id;                  /* owned, NUL-terminated */
        struct kstr group_instance_id;          /* owned; null for a dynamic member */
        struct kstr client_id;                  /* owned */
        struct kstr client_host;                /* owned */
        struct kstr protocol_type;              /* owned */
        int32_t session_timeout_ms;
        int32_t rebalance_timeout_ms;
        int32_t protocol_count;
        struct group_protocol *protocols;       /* owned, one allocation */
        struct kbytes assignment;               /* owned; len 0 until assigned */

        struct group_join_waiter *join_waiter;  /* parked JoinGroup */
        struct group_sync_waiter *sync_waiter;  /* parked SyncGroup */
        bool is_new;                            /* has not yet been through a join */
        bool is_pending_sync;                   /* joined this generation, not yet synced */
        group_timer_id heartbeat_timer;
};

/* A member id handed out with MEMBER_ID_REQUIRED, not yet joined with. */
struct group_pending_member {
        struct group_map_node node;             /* key: the member id (owned) */
        struct group *group;
        group_timer_id timer;
};

struct group_coordinator;

struct group {
        struct group_map_node node;             /* in the coordinator; key: id */
        struct group_coordinator *gc;
        struct group *prev, *next;              /* every group of the coordinator */

        struct kstr id;                         /* owned, NUL-terminated */
        enum group_state state;
        enum group_state previous_state;
        int64_t state_timestamp_ms;
        int32_t generation_id;
        struct kstr protocol_type;              /* owned; null until a member joined */
        struct kstr protocol_name;              /* owned; null when no generation runs */

        struct group_member *leader;
        struct group_member *members_head, *members_tail;
        struct group_map members_by_id;
        struct group_map members_by_instance;
        struct group_map pending_members;       /* struct group_pending_member */
        int32_t member_count;
        int32_t awaiting_join_count;
        int32_t pending_sync_count;

        /* The initial rebalance of an empty group (Kafka's
         * tryCompleteInitialRebalanceElseSchedule). */
        bool is_new_member_added;
        int32_t initial_delay_ms;
        int32_t initial_remaining_ms;

        group_timer_id join_timer;
        group_timer_id sync_timer;
        int32_t sync_timer_generation;
        group_timer_id expiry_timer;            /* Empty and nothing keeps it */

        /* The offsets store's state for this group; while it is non-NULL an
         * Empty group is kept (Kafka keeps a group that has offsets). */
        void *offsets;

        /* The leader's assignment is being stored (a GroupMetadata record):
         * SyncGroup answers wait for group_sync_stored(). */
        bool is_storing_assignment;
};

/* ---- the coordinator ---- */

/* NULL when memory ran out. env and cfg are copied. */
struct group_coordinator *group_coordinator_create(const struct group_config *cfg, const struct group_env *env);

/* Frees every group. Parked waiters are dropped without being called (the
 * broker is stopping); armed timers are cancelled. */
void group_coordinator_destroy(struct group_coordinator *gc);

/*
 * Kafka's onUnloaded: answers every parked JoinGroup and SyncGroup with
 * error_code (NOT_COORDINATOR when the broker stops, so that clients go
 * and find the coordinator again) and removes every group; their offsets
 * pointers are dropped without the release hook (the offsets store is
 * going away too). The coordinator stays usable, empty.
 */
void group_coordinator_unload(struct group_coordinator *gc, int16_t error_code);

/* Called with a group about to be deleted whose offsets is non-NULL; must
 * release it (DeleteGroups removes a group's offsets with it). */
typedef void (*group_offsets_release_fn)(void *ctx, struct group *g);
void group_coordinator_set_offsets_release(struct group_coordinator *gc, group_offsets_release_fn fn, void *ctx);

/*
 * Called when a group's metadata should be persisted (a GroupMetadata
 * record): after the leader's SyncGroup set a new generation's
 * assignments, when the group becomes Empty, and, with is_deleted, just
 * before a group is removed (DeleteGroups, expiry: a tombstone). g is
 * valid only during the call; fn must not call back into this module.
 *
 * is_assignment: the leader's SyncGroup. As in Kafka, nobody gets the
 * assignment until the record is durable: fn must report the outcome with
 * group_sync_stored() later (never from inside the call), whatever happens.
 * Without a hook the assignment goes out at once.
 */
typedef void (*group_persist_fn)(void *ctx, const struct group *g, bool is_deleted, bool is_assignment);
void group_coordinator_set_persist(struct group_coordinator *gc, group_persist_fn fn, void *ctx);

/*
 * The GroupMetadata record of the leader's assignment for generation_id
 * was written (error_code NONE) or not (the log's error). Kafka's
 * storeGroup callback: if the group still waits for it, its SyncGroup
 * waiters get their assignments and it becomes Stable; on an error they
 * get it (mapped as Kafka maps a failed store) and the group rebalances.
 * Stale answers (the group moved on or is gone) are ignored.
 */
void group_sync_stored(struct group_coordinator *gc, struct kstr group_id, int32_t generation_id,
                       int16_t error_code);

/*
 * Replay of a GroupMetadata record: the group comes back Empty, without
 * members (they rejoin, as after a coordinator move), with protocol_type
 * and generation_id kept so the next rebalance goes beyond it; its
 * protocol name stays null (Empty has none). state_timestamp_ms < 0 keeps
 * the time now. A group that has members is left alone. Returns 0 or
 * -ENOMEM. Nothing is persisted.
 */
int group_restore(struct group_coordinator *gc, struct kstr group_id, struct kstr protocol_type,
                  int32_t generation_id, int64_t state_timestamp_ms);

/* Replay of a GroupMetadata tombstone: an Empty group without offsets is
 * removed, one with offsets forgets its protocol type and generation.
 * Nothing is persisted. */
void group_restore_tombstone(struct group_coordinator *gc, struct kstr group_id);

uint32_t group_coordinator_group_count(const struct group_coordinator *gc);

/* Every group, for ListGroups: first, then next until NULL. */
struct group *group_coordinator_first(const struct group_coordinator *gc);
struct group *group_coordinator_next(const struct group *g);

/* The group, or NULL. */
struct group *group_find(const struct group_coordinator *gc, struct kstr group_id);

/*
 * The group, created Empty when there is none: a "simple" group for a
 * consumer that commits offsets without joining (Kafka creates one on an
 * OffsetCommit with generation -1). NULL with *error_code set when the id
 * is invalid (INVALID_GROUP_ID) or no group can be added
 * (COORDINATOR_NOT_AVAILABLE).
 */
struct group *group_get_or_create(struct group_coordinator *gc, struct kstr group_id, int16_t *error_code);

/* The offsets store emptied g->offsets: an Empty group may now expire. */
void group_offsets_released(struct group *g);

struct group_member *group_find_member(const struct group *g, struct kstr member_id);

/* The member's metadata for a protocol; null bytes when it has none. */
struct kbytes group_member_metadata(const struct group_member *m, struct kstr protocol_name);

/* ---- JoinGroup ---- */

struct group_join_request {
        struct kstr group_id;
        struct kstr member_id;                  /* "" for a new member */
        struct kstr group_instance_id;          /* null for a dynamic member */
        struct kstr protocol_type;
        struct kstr client_id;
        struct kstr client_host;
        struct kstr reason;                     /* may be null */
        int32_t session_timeout_ms;
        int32_t rebalance_timeout_ms;           /* v0: the session timeout */
        bool requires_known_member_id;          /* v4+: MEMBER_ID_REQUIRED handshake */
        bool supports_skip_assignment;          /* v9+ */
        int32_t protocol_count;
        const struct group_protocol *protocols;
};

/* The answer. Strings and bytes point into the group or the request and
 * are valid only during done(). */
struct group_join_result {
        int16_t error_code;
        int32_t generation_id;                  /* -1 when none */
        struct kstr protocol_type;              /* null when none */
        struct kstr protocol_name;              /* null when none */
        struct kstr leader;                     /* "" when none */
        struct kstr member_id;
        bool skip_assignment;
        /* For the leader, the group whose members (with
         * group_member_metadata() for protocol_name) go in the response;
         * NULL for everyone else. */
        const struct group *members_of;
};

struct group_join_waiter {
        void (*done)(struct group_join_waiter *w, const struct group_join_result *res);
};

/* Runs a JoinGroup; w->done() is called exactly once, now or later. */
void group_join(struct group_coordinator *gc, const struct group_join_request *rq, struct group_join_waiter *w);

/* ---- SyncGroup ---- */

struct group_assignment {
        struct kstr member_id;
        struct kbytes assignment;
};

struct group_sync_request {
        struct kstr group_id;
        int32_t generation_id;
        struct kstr member_id;
        struct kstr group_instance_id;          /* null for a dynamic member */
        struct kstr protocol_type;              /* null: not checked (before v5) */
        struct kstr protocol_name;              /* null: not checked (before v5) */
        int32_t assignment_count;               /* the leader's */
        const struct group_assignment *assignments;
};

struct group_sync_result {
        int16_t error_code;
        struct kstr protocol_type;              /* null on error */
        struct kstr protocol_name;              /* null on error */
        struct kbytes assignment;               /* valid only during done() */
};

struct group_sync_waiter {
        void (*done)(struct group_sync_waiter *w, const struct group_sync_result *res);
};

/* Runs a SyncGroup; w->done() is called exactly once, now or later. */
void group_sync(struct group_coordinator *gc, const struct group_sync_request *rq, struct group_sync_waiter *w);

/* ---- Heartbeat, LeaveGroup, DeleteGroups ---- */

/* A Kafka error code: NONE, REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION,
 * UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID, INVALID_GROUP_ID. */
int16_t group_heartbeat(struct group_coordinator *gc, struct kstr group_id, struct kstr member_id,
                        struct kstr group_instance_id, int32_t generation_id);

struct group_leave_member {
        struct kstr member_id;                  /* "" to remove a static member by instance id */
        struct kstr group_instance_id;          /* may be null */
        int16_t error_code;                     /* out */
};

/*
 * Removes members (LeaveGroup, batched from v3). Returns the request-level
 * error (INVALID_GROUP_ID) or NONE, in which case each member's error_code
 * says how it went; a group that does not exist answers UNKNOWN_MEMBER_ID
 * for every member.
 */
int16_t group_leave(struct group_coordinator *gc, struct kstr group_id, struct group_leave_member *members,
                    int32_t member_count);

/* DeleteGroups for one group: NONE, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP. */
int16_t group_delete(struct group_coordinator *gc, struct kstr group_id);

/*
 * Kafka's ClassicGroup.validateOffsetCommit for OffsetCommit (and, with
 * is_transactional, TxnOffsetCommit) against an existing group: NONE,
 * COORDINATOR_NOT_AVAILABLE, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID,
 * ILLEGAL_GENERATION or REBALANCE_IN_PROGRESS. A group that does not
 * exist is the caller's case (Kafka creates a simple group for generation
 * -1, and answers ILLEGAL_GENERATION, or GROUP_ID_NOT_FOUND from v9).
 */
int16_t group_validate_offset_commit(const struct group *g, struct kstr member_id, struct kstr group_instance_id,
                                     int32_t generation_id, bool is_transactional);

#endif
