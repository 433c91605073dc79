/*
 * test_group.c - the classic group state machine against a fake clock:
 * join and sync flows for one to three members, rebalances on join, leave,
 * session expiry, rebalance and sync timeouts, the initial rebalance
 * delay, static membership, every error the coordinator answers, and a
 * randomized run that checks no parked request is ever left behind.
 *
 * The fake environment's timers fire only when a test moves time on with
 * advance(), in deadline order, so every timeout is exact and repeatable.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/logging.h"
#include "coordinator/group.h"
#include "protocol/gen/errors.h"

/* ---- the fake environment ---- */

struct fake_timer {
        group_timer_id id;
        int64_t due_ms;
        group_timer_fn fn;
        void *arg;
};

#define FAKE_TIMERS_MAX 4096

static struct {
        int64_t now_ms;
        struct fake_timer timers[FAKE_TIMERS_MAX];
        int count;
        group_timer_id next_id;
        uint32_t rand_state;
} F;

static int64_t fake_now_ms(void *ctx)
{
        (void)ctx;
        return F.now_ms;
}

static group_timer_id fake_timer_add(void *ctx, uint64_t delay_ms, group_timer_fn fn, void *arg)
{
        (void)ctx;
        cr_assert(F.count < FAKE_TIMERS_MAX, "too many timers");
        struct fake_timer *t = &F.timers[F.count++];
        t->id = ++F.next_id;
        t->due_ms = F.now_ms + (int64_t)delay_ms;
        t->fn = fn;
        t->arg = arg;
        return t->id;
}

static void fake_timer_cancel(void *ctx, group_timer_id id)
{
        (void)ctx;
        for (int i = 0; i < F.count; i++) {
                if (F.timers[i].id == id) {
                        F.timers[i] = F.timers[--F.count];
                        return;
                }
        }
}

static void fake_random_bytes(void *ctx, uint8_t *buf, size_t len)
{
        (void)ctx;
        for (size_t i = 0; i < len; i++) {
                F.rand_state = F.rand_state * 1103515245u + 12345u;
                buf[i] = (uint8_t)(F.rand_state >> 16);
        }
}

/* Moves time on by ms, firing due timers in (deadline, creation) order. */
static void advance(int64_t ms)
{
        int64_t target = F.now_ms + ms;
        for (;;) {
                int best = -1;
                for (int i = 0; i < F.count; i++) {
                        const struct fake_timer *t = &F.timers[i];
                        if (t->due_ms > target)
                                continue;
                        if (best < 0 || t->due_ms < F.timers[best].due_ms ||
                            (t->due_ms == F.timers[best].due_ms && t->id < F.timers[best].id))
                                best = i;
                }
                if (best < 0)
                        break;
                struct fake_timer t = F.timers[best];
                F.timers[best] = F.timers[--F.count];
                if (t.due_ms > F.now_ms)
                        F.now_ms = t.due_ms;
                t.fn(t.arg);
        }
        F.now_ms = target;
}

static struct group_config test_config(void)
{
        return (struct group_config){
                .initial_rebalance_delay_ms = 0,
                .min_session_timeout_ms = 6000,
                .max_session_timeout_ms = 1800000,
                .max_size = 1000,
                .new_member_join_timeout_ms = GROUP_NEW_MEMBER_JOIN_TIMEOUT_MS,
                .empty_group_retention_ms = 600000,
        };
}

static struct group_coordinator *make_coordinator(const struct group_config *cfg)
{
        memset(&F, 0, sizeof(F));
        F.rand_state = 42;
        logging_set_level(LOG_LEVEL_ERROR);
        struct group_env env = {
                .now_ms = fake_now_ms,
                .timer_add = fake_timer_add,
                .timer_cancel = fake_timer_cancel,
                .random_bytes = fake_random_bytes,
        };
        struct group_coordinator *gc = group_coordinator_create(cfg, &env);
        cr_assert(gc);
        return gc;
}

static struct group_coordinator *gc;

static void setup(void)
{
        struct group_config cfg = test_config();
        gc = make_coordinator(&cfg);
}

static void teardown(void)
{
        group_coordinator_destroy(gc);
        gc = NULL;
        cr_assert_eq(F.count, 0, "the coordinator left %d timers armed", F.count);
}

/* ---- recording answers ---- */

#define REC_MEMBERS_MAX 32

struct join_rec {
        struct group_join_waiter w;
        int done_count;
        int16_t error_code;
        int32_t generation_id;
        char member_id[128];
        char leader[128];
        char protocol_type[32];
        char protocol_name[32];
        bool has_protocol_name;
        bool skip_assignment;
        int member_count;
        char members[REC_MEMBERS_MAX][128];
        char metadata[REC_MEMBERS_MAX][64];
};

struct sync_rec {
        struct group_sync_waiter w;
        int done_count;
        int16_t error_code;
        char assignment[64];
        char protocol_name[32];
        bool has_protocol_name;
};

static void copy_kstr(char *dst, size_t cap, struct kstr s)
{
        snprintf(dst, cap, "%.*s", s.len > 0 ? s.len : 0, s.len > 0 ? s.ptr : "");
}

static void join_done(struct group_join_waiter *w, const struct group_join_result *res)
{
        struct join_rec *r = (struct join_rec *)w;
        r->done_count++;
        r->error_code = res->error_code;
        r->generation_id = res->generation_id;
        copy_kstr(r->member_id, sizeof(r->member_id), res->member_id);
        copy_kstr(r->leader, sizeof(r->leader), res->leader);
        copy_kstr(r->protocol_type, sizeof(r->protocol_type), res->protocol_type);
        copy_kstr(r->protocol_name, sizeof(r->protocol_name), res->protocol_name);
        r->has_protocol_name = !kstr_is_null(res->protocol_name);
        r->skip_assignment = res->skip_assignment;
        r->member_count = 0;
        if (res->members_of) {
                for (const struct group_member *m = res->members_of->members_head; m; m = m->next) {
                        cr_assert(r->member_count < REC_MEMBERS_MAX);
                        copy_kstr(r->members[r->member_count], 128, m->member_id);
                        struct kbytes md = group_member_metadata(m, res->protocol_name);
                        cr_assert(md.len >= 0);
                        copy_kstr(r->metadata[r->member_count], 64,
                                  (struct kstr){ (const char *)md.ptr, md.len });
                        r->member_count++;
                }
        }
}

static void sync_done(struct group_sync_waiter *w, const struct group_sync_result *res)
{
        struct sync_rec *r = (struct sync_rec *)w;
        r->done_count++;
        r->error_code = res->error_code;
        copy_kstr(r->assignment, sizeof(r->assignment), (struct kstr){ (const char *)res->assignment.ptr,
                                                                          res->assignment.len });
        copy_kstr(r->protocol_name, sizeof(r->protocol_name), res->protocol_name);
        r->has_protocol_name = !kstr_is_null(res->protocol_name);
}

/* ---- requests ---- */

struct join_opts {
        const char *group;
        const char *member_id;
        const char *instance_id;        /* NULL: dynamic */
        const char *protocol_type;
        const char *protocols[3];       /* names; metadata is "<name>:<meta>" */
        const char *meta;
        int32_t session_timeout_ms;
        int32_t rebalance_timeout_ms;
        int version;
};

static void join_with(struct join_rec *r, struct join_opts o)
{
        memset(r, 0, sizeof(*r));
        r->w.done = join_done;
        static char meta_buf[3][64];
        struct group_protocol p[3];
        int n = 0;
        if (!o.protocols[0])
                o.protocols[0] = "range";
        for (int i = 0; i < 3 && o.protocols[i]; i++) {
                if (strcmp(o.protocols[i], "-") == 0)
                        break;          /* "-": no protocols at all */
                snprintf(meta_buf[i], sizeof(meta_buf[i]), "%s:%s", o.protocols[i], o.meta ? o.meta : "m");
                p[n].name = KSTR(o.protocols[i]);
                p[n].metadata = (struct kbytes){ (const uint8_t *)meta_buf[i], (int32_t)strlen(meta_buf[i]) };
                n++;
        }
        struct group_join_request rq = {
                .group_id = KSTR(o.group ? o.group : "g"),
                .member_id = KSTR(o.member_id ? o.member_id : ""),
                .group_instance_id = o.instance_id ? KSTR(o.instance_id) : KSTR_NULL,
                .protocol_type = KSTR(o.protocol_type ? o.protocol_type : "consumer"),
                .client_id = KSTR("client"),
                .client_host = KSTR("/127.0.0.1"),
                .reason = KSTR_NULL,
                .session_timeout_ms = o.session_timeout_ms ? o.session_timeout_ms : 10000,
                .rebalance_timeout_ms = o.rebalance_timeout_ms ? o.rebalance_timeout_ms : 30000,
                .requires_known_member_id = (o.version ? o.version : 9) >= 4,
                .supports_skip_assignment = (o.version ? o.version : 9) >= 9,
                .protocol_count = n,
                .protocols = p,
        };
        group_join(gc, &rq, &r->w);
}

#define JOIN(r, ...) join_with((r), (struct join_opts){ __VA_ARGS__ })

struct sync_opts {
        const char *group;
        const char *member_id;
        const char *instance_id;
        int32_t generation_id;
        const char *protocol_type;
        const char *protocol_name;
        const char *assign_to[3];       /* member ids */
        const char *assignments[3];
};

static void sync_with(struct sync_rec *r, struct sync_opts o)
{
        memset(r, 0, sizeof(*r));
        r->w.done = sync_done;
        struct group_assignment a[3];
        int n = 0;
        for (int i = 0; i < 3 && o.assign_to[i]; i++, n++) {
                a[i].member_id = KSTR(o.assign_to[i]);
                a[i].assignment = (struct kbytes){ (const uint8_t *)o.assignments[i],
                                                   (int32_t)strlen(o.assignments[i]) };
        }
        struct group_sync_request rq = {
                .group_id = KSTR(o.group ? o.group : "g"),
                .generation_id = o.generation_id,
                .member_id = KSTR(o.member_id),
                .group_instance_id = o.instance_id ? KSTR(o.instance_id) : KSTR_NULL,
                .protocol_type = o.protocol_type ? KSTR(o.protocol_type) : KSTR_NULL,
                .protocol_name = o.protocol_name ? KSTR(o.protocol_name) : KSTR_NULL,
                .assignment_count = n,
                .assignments = a,
        };
        group_sync(gc, &rq, &r->w);
}

#define SYNC(r, ...) sync_with((r), (struct sync_opts){ __VA_ARGS__ })

static int16_t heartbeat(const char *member_id, int32_t generation_id)
{
        return group_heartbeat(gc, KSTR("g"), KSTR(member_id), KSTR_NULL, generation_id);
}

static int16_t heartbeat_static(const char *member_id, const char *instance_id, int32_t generation_id)
{
        return group_heartbeat(gc, KSTR("g"), KSTR(member_id), KSTR(instance_id), generation_id);
}

static int16_t leave(const char *member_id)
{
        struct group_leave_member m = { .member_id = KSTR(member_id), .group_instance_id = KSTR_NULL };
        int16_t top = group_leave(gc, KSTR("g"), &m, 1);
        cr_assert_eq(top, KAFKA_NONE);
        return m.error_code;
}

static struct group *the_group(void)
{
        struct group *g = group_find(gc, KSTR("g"));
        cr_assert(g, "group g does not exist");
        return g;
}

/* A dynamic member through the KIP-394 handshake: its id, parked join. */
static void join_dynamic(struct join_rec *r, char *id_out, size_t cap)
{
        JOIN(r);
        cr_assert_eq(r->error_code, KAFKA_MEMBER_ID_REQUIRED);
        cr_assert_eq(r->generation_id, -1);
        cr_assert(strncmp(r->member_id, "client-", 7) == 0, "member id %s", r->member_id);
        cr_assert_eq(strlen(r->member_id), strlen("client-") + 36);
        snprintf(id_out, cap, "%s", r->member_id);
        JOIN(r, .member_id = id_out);
}

/* One member, joined and synced: generation 1, Stable. */
static void form_group_of_one(char *id, size_t cap)
{
        struct join_rec j;
        struct sync_rec s;
        join_dynamic(&j, id, cap);
        advance(0);
        cr_assert_eq(j.done_count, 1);
        cr_assert_eq(j.error_code, KAFKA_NONE);
        SYNC(&s, .member_id = id, .generation_id = 1, .assign_to = { id }, .assignments = { "a0" });
        cr_assert_eq(s.done_count, 1);
        cr_assert_eq(s.error_code, KAFKA_NONE);
        cr_assert_eq(the_group()->state, GROUP_STABLE);
}

/* Two members A (leader) and B, joined and synced at generation 1. */
static void form_group_of_two(char *a, char *b)
{
        struct join_rec ja, jb;
        struct sync_rec sa, sb;
        join_dynamic(&ja, a, 128);
        join_dynamic(&jb, b, 128);
        advance(0);
        cr_assert_eq(ja.error_code, KAFKA_NONE);
        cr_assert_eq(jb.error_code, KAFKA_NONE);
        SYNC(&sb, .member_id = b, .generation_id = 1);
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { a, b }, .assignments = { "pa", "pb" });
        cr_assert_eq(sa.done_count, 1);
        cr_assert_eq(sb.done_count, 1);
        cr_assert_eq(the_group()->state, GROUP_STABLE);
}

/* ---- the group's partition ---- */

Test(group_partition, is_javas_string_hash_mod_partitions)
{
        /* Expected values from java.lang.String.hashCode. */
        cr_assert_eq(group_java_string_hash(KSTR("")), 0);
        cr_assert_eq(group_java_string_hash(KSTR("a")), 97);
        cr_assert_eq(group_java_string_hash(KSTR("group")), 98629247);
        cr_assert_eq(group_java_string_hash(KSTR("my-group")), -1906497762);
        cr_assert_eq(group_java_string_hash(KSTR("\xc3\xa9")), 233);            /* é: one UTF-16 unit */
        cr_assert_eq(group_java_string_hash(KSTR("\xf0\x9f\x98\x80")), 1772899); /* a surrogate pair */
        cr_assert_eq(group_java_string_hash(KSTR("\xff")), 65533);              /* malformed: U+FFFD */
        cr_assert_eq(group_java_string_hash(KSTR("\xe2\x82")), 65533);          /* truncated: one U+FFFD */
        cr_assert_eq(group_java_string_hash(KSTR("\xed\xa0\x80")), 65533, "an encoded surrogate: one U+FFFD");
        cr_assert_eq(group_java_string_hash(KSTR("\xed\xa0\x41")), 31 * 65533 + 'A');
        cr_assert_eq(group_java_string_hash(KSTR("\xe0\xa4\x85")), 0x905);    /* a three-byte letter */
        cr_assert_eq(group_java_string_hash(KSTR("\xe0\x80\x80")), 31 * 31 * 65533 + 31 * 65533 + 65533,
                     "overlong: each byte malformed");
        cr_assert_eq(group_java_string_hash(KSTR("\xf4\x8f\xbf\xbf")), 31 * 0xdbff + 0xdfff); /* U+10FFFF */
        cr_assert_eq(group_java_string_hash(KSTR("\xf4\x90\x80\x80")), 65533 * (29791 + 961 + 31 + 1),
                     "past U+10FFFF: four U+FFFD");

        cr_assert_eq(group_partition_of(KSTR("my-group"), 50), 12);
        cr_assert_eq(group_partition_of(KSTR("group"), 50), 47);
        cr_assert_eq(group_partition_of(KSTR("console-consumer-12345"), 50), 6);
        cr_assert_eq(group_partition_of(KSTR(""), 50), 0);
        cr_assert_eq(group_partition_of(KSTR("a"), 1), 0);
}

Test(group_partition, integer_min_value_maps_to_zero)
{
        /* Utils.abs(Integer.MIN_VALUE) is 0 in Kafka; Math.abs would stay negative. */
        cr_assert_eq(group_java_string_hash(KSTR("polygenelubricants")), INT32_MIN);
        cr_assert_eq(group_partition_of(KSTR("polygenelubricants"), 50), 0);
        cr_assert_eq(group_partition_of(KSTR("polygenelubricants"), 7), 0);
}

Test(group_state, names_and_parsing)
{
        cr_assert_str_eq(group_state_name(GROUP_EMPTY), "Empty");
        cr_assert_str_eq(group_state_name(GROUP_PREPARING_REBALANCE), "PreparingRebalance");
        cr_assert_str_eq(group_state_name(GROUP_COMPLETING_REBALANCE), "CompletingRebalance");
        cr_assert_str_eq(group_state_name(GROUP_STABLE), "Stable");
        cr_assert_str_eq(group_state_name(GROUP_DEAD), "Dead");
        enum group_state s;
        cr_assert(group_state_parse(KSTR(" stable "), &s));
        cr_assert_eq(s, GROUP_STABLE);
        cr_assert(group_state_parse(KSTR("PREPARINGREBALANCE"), &s));
        cr_assert_eq(s, GROUP_PREPARING_REBALANCE);
        cr_assert(!group_state_parse(KSTR("stabl"), &s));
        cr_assert(!group_state_parse(KSTR(""), &s));
}

/* ---- one member ---- */

TestSuite(group, .init = setup, .fini = teardown);

Test(group, one_member_joins_and_syncs)
{
        struct join_rec j;
        struct sync_rec s;
        char id[128];
        join_dynamic(&j, id, sizeof(id));
        /* Parked until the initial rebalance delay (0 here) passes. */
        cr_assert_eq(j.done_count, 0);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        advance(0);
        cr_assert_eq(j.done_count, 1);
        cr_assert_eq(j.error_code, KAFKA_NONE);
        cr_assert_eq(j.generation_id, 1);
        cr_assert_str_eq(j.member_id, id);
        cr_assert_str_eq(j.leader, id);
        cr_assert_str_eq(j.protocol_type, "consumer");
        cr_assert_str_eq(j.protocol_name, "range");
        cr_assert_eq(j.member_count, 1);
        cr_assert_str_eq(j.members[0], id);
        cr_assert_str_eq(j.metadata[0], "range:m");
        cr_assert_eq(the_group()->state, GROUP_COMPLETING_REBALANCE);

        cr_assert_eq(heartbeat(id, 1), KAFKA_NONE);
        SYNC(&s, .member_id = id, .generation_id = 1, .protocol_type = "consumer", .protocol_name = "range",
             .assign_to = { id }, .assignments = { "all" });
        cr_assert_eq(s.done_count, 1);
        cr_assert_eq(s.error_code, KAFKA_NONE);
        cr_assert_str_eq(s.assignment, "all");
        cr_assert_str_eq(s.protocol_name, "range");
        cr_assert_eq(the_group()->state, GROUP_STABLE);
        cr_assert_eq(heartbeat(id, 1), KAFKA_NONE);

        /* SyncGroup again in Stable: the same assignment at once. */
        SYNC(&s, .member_id = id, .generation_id = 1);
        cr_assert_eq(s.error_code, KAFKA_NONE);
        cr_assert_str_eq(s.assignment, "all");
}

Test(group, before_v4_a_new_member_joins_without_the_handshake)
{
        struct join_rec j;
        JOIN(&j, .version = 3);
        cr_assert_eq(j.done_count, 0);
        advance(0);
        cr_assert_eq(j.done_count, 1);
        cr_assert_eq(j.error_code, KAFKA_NONE);
        cr_assert_eq(j.generation_id, 1);
        cr_assert(strncmp(j.member_id, "client-", 7) == 0);
        cr_assert_eq(the_group()->pending_members.count, 0);
}

Test(group, the_initial_rebalance_waits_for_its_delay_and_extends_it)
{
        group_coordinator_destroy(gc);
        struct group_config cfg = test_config();
        cfg.initial_rebalance_delay_ms = 3000;
        gc = make_coordinator(&cfg);

        struct join_rec ja, jb, jc;
        char a[128], b[128], c[128];
        join_dynamic(&ja, a, sizeof(a));
        advance(2000);
        join_dynamic(&jb, b, sizeof(b));        /* a new member: the delay extends */
        advance(1000);
        cr_assert_eq(ja.done_count, 0);
        cr_assert_eq(jb.done_count, 0);
        advance(2000);
        join_dynamic(&jc, c, sizeof(c));        /* at 5 s, in the second window */
        advance(1000);
        cr_assert_eq(ja.done_count, 0, "extended again at 6 s");
        advance(2999);
        cr_assert_eq(ja.done_count, 0);
        advance(1);                             /* 9 s: a window without newcomers */
        cr_assert_eq(ja.done_count, 1);
        cr_assert_eq(jb.done_count, 1);
        cr_assert_eq(jc.done_count, 1);
        cr_assert_eq(ja.generation_id, 1);
        cr_assert_eq(ja.member_count, 3);
        cr_assert_eq(jb.member_count, 0);
}

Test(group, the_initial_delay_never_exceeds_the_rebalance_timeout)
{
        group_coordinator_destroy(gc);
        struct group_config cfg = test_config();
        cfg.initial_rebalance_delay_ms = 3000;
        gc = make_coordinator(&cfg);

        struct join_rec j[6];
        char ids[6][128];
        JOIN(&j[0], .rebalance_timeout_ms = 7000, .version = 3);
        for (int i = 1; i < 6; i++) {
                advance(2500);
                JOIN(&j[i], .rebalance_timeout_ms = 7000, .version = 3);
                snprintf(ids[i], sizeof(ids[i]), "%s", j[i].member_id);
        }
        /* Delays 3000 + 3000 + 1000 = the 7000 ms rebalance timeout. */
        cr_assert_eq(F.now_ms, 12500);
        cr_assert_eq(j[0].done_count, 1, "answered once the rebalance timeout was used up");
        cr_assert_eq(j[0].member_count, 3);
        cr_assert_eq(j[3].done_count, 0, "joined after the generation formed: a new rebalance");
}

/* ---- two and three members ---- */

Test(group, a_follower_syncing_first_waits_for_the_leader)
{
        struct join_rec ja, jb;
        struct sync_rec sa, sb;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        cr_assert_eq(ja.error_code, KAFKA_NONE);
        cr_assert_eq(jb.error_code, KAFKA_NONE);
        cr_assert_str_eq(ja.leader, a);
        cr_assert_str_eq(jb.leader, a);
        cr_assert_eq(ja.member_count, 2, "the leader gets every member");
        cr_assert_str_eq(ja.members[0], a);
        cr_assert_str_eq(ja.members[1], b);
        cr_assert_eq(jb.member_count, 0, "followers get none");

        SYNC(&sb, .member_id = b, .generation_id = 1);
        cr_assert_eq(sb.done_count, 0, "parked until the leader syncs");
        cr_assert_eq(heartbeat(b, 1), KAFKA_NONE);
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { a, b }, .assignments = { "pa", "pb" });
        cr_assert_eq(sa.done_count, 1);
        cr_assert_eq(sb.done_count, 1);
        cr_assert_str_eq(sa.assignment, "pa");
        cr_assert_str_eq(sb.assignment, "pb");
        cr_assert_str_eq(sb.protocol_name, "range");
        cr_assert_eq(the_group()->state, GROUP_STABLE);
}

Test(group, a_member_the_leader_leaves_out_gets_an_empty_assignment)
{
        struct join_rec ja, jb;
        struct sync_rec sa, sb;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { a, "stranger" },
             .assignments = { "pa", "px" });
        SYNC(&sb, .member_id = b, .generation_id = 1);
        cr_assert_eq(sb.error_code, KAFKA_NONE);
        cr_assert_str_eq(sb.assignment, "");
}

Test(group, a_third_member_triggers_a_rebalance_of_a_stable_group)
{
        char a[128], b[128], c[128];
        form_group_of_two(a, b);
        struct join_rec ja, jb, jc;
        struct sync_rec sa, sb, sc;
        join_dynamic(&jc, c, sizeof(c));
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(jc.done_count, 0);
        cr_assert_eq(heartbeat(a, 1), KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(heartbeat(b, 1), KAFKA_REBALANCE_IN_PROGRESS);
        SYNC(&sa, .member_id = a, .generation_id = 1);
        cr_assert_eq(sa.error_code, KAFKA_REBALANCE_IN_PROGRESS);

        JOIN(&ja, .member_id = a);
        cr_assert_eq(ja.done_count, 0);
        JOIN(&jb, .member_id = b);
        /* Everyone is back: no need to wait for the rebalance timeout. */
        cr_assert_eq(ja.done_count, 1);
        cr_assert_eq(jb.done_count, 1);
        cr_assert_eq(jc.done_count, 1);
        cr_assert_eq(ja.generation_id, 2);
        cr_assert_eq(jc.generation_id, 2);
        cr_assert_str_eq(jc.leader, a);
        cr_assert_eq(ja.member_count, 3);

        SYNC(&sc, .member_id = c, .generation_id = 2);
        SYNC(&sb, .member_id = b, .generation_id = 2);
        SYNC(&sa, .member_id = a, .generation_id = 2, .assign_to = { a, b, c }, .assignments = { "1", "2", "3" });
        cr_assert_str_eq(sa.assignment, "1");
        cr_assert_str_eq(sb.assignment, "2");
        cr_assert_str_eq(sc.assignment, "3");
        cr_assert_eq(heartbeat(c, 2), KAFKA_NONE);
        cr_assert_eq(heartbeat(c, 1), KAFKA_ILLEGAL_GENERATION);
}

Test(group, a_join_during_completing_rebalance_fails_parked_syncs)
{
        struct join_rec ja, jb, jc;
        struct sync_rec sb;
        char a[128], b[128], c[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        SYNC(&sb, .member_id = b, .generation_id = 1);
        cr_assert_eq(sb.done_count, 0);
        join_dynamic(&jc, c, sizeof(c));
        cr_assert_eq(sb.done_count, 1);
        cr_assert_eq(sb.error_code, KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(sb.has_protocol_name, false);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
}

Test(group, a_follower_rejoining_unchanged_gets_the_current_generation)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        struct join_rec jb;
        JOIN(&jb, .member_id = b);
        cr_assert_eq(jb.done_count, 1, "no rebalance");
        cr_assert_eq(jb.error_code, KAFKA_NONE);
        cr_assert_eq(jb.generation_id, 1);
        cr_assert_str_eq(jb.leader, a);
        cr_assert_eq(jb.member_count, 0);
        cr_assert_eq(the_group()->state, GROUP_STABLE);

        /* With other metadata it is a rebalance. */
        JOIN(&jb, .member_id = b, .meta = "new-topics");
        cr_assert_eq(jb.done_count, 0);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
}

Test(group, the_leader_rejoining_a_stable_group_rebalances)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        struct join_rec ja, jb;
        JOIN(&ja, .member_id = a);
        cr_assert_eq(ja.done_count, 0);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        JOIN(&jb, .member_id = b);
        cr_assert_eq(ja.generation_id, 2);
        cr_assert_eq(jb.generation_id, 2);
}

Test(group, a_lost_join_answer_is_repeated_during_completing_rebalance)
{
        struct join_rec ja, jb, again;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        JOIN(&again, .member_id = a);
        cr_assert_eq(again.done_count, 1);
        cr_assert_eq(again.generation_id, 1);
        cr_assert_eq(again.member_count, 2, "still the leader, still every member");
        cr_assert_eq(the_group()->state, GROUP_COMPLETING_REBALANCE);
}

/* ---- leaving ---- */

Test(group, a_leaving_member_triggers_a_rebalance)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        cr_assert_eq(leave(a), KAFKA_NONE);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(heartbeat(a, 1), KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(heartbeat(b, 1), KAFKA_REBALANCE_IN_PROGRESS);
        struct join_rec jb;
        JOIN(&jb, .member_id = b);
        cr_assert_eq(jb.done_count, 1);
        cr_assert_eq(jb.generation_id, 2);
        cr_assert_str_eq(jb.leader, b, "the leader left: b leads");
        cr_assert_eq(jb.member_count, 1);
        cr_assert_eq(leave(a), KAFKA_UNKNOWN_MEMBER_ID);
}

Test(group, the_last_member_leaving_empties_the_group)
{
        char a[128];
        form_group_of_one(a, sizeof(a));
        cr_assert_eq(leave(a), KAFKA_NONE);
        struct group *g = the_group();
        cr_assert_eq(g->state, GROUP_EMPTY);
        cr_assert_eq(g->generation_id, 2);
        cr_assert(kstr_is_null(g->protocol_name));
        cr_assert(kstr_eq_cstr(g->protocol_type, "consumer"), "an Empty group keeps its protocol type");
}

Test(group, leave_answers_each_member_of_a_batch)
{
        struct join_rec js, jd;
        char d[128];
        JOIN(&js, .instance_id = "inst-1");
        cr_assert_eq(js.done_count, 0, "static members skip MEMBER_ID_REQUIRED");
        join_dynamic(&jd, d, sizeof(d));
        advance(0);
        char s[128];
        snprintf(s, sizeof(s), "%s", js.member_id);
        cr_assert(strncmp(s, "inst-1-", 7) == 0, "static ids start with the instance id: %s", s);

        struct group_leave_member m[4] = {
                { .member_id = KSTR(""), .group_instance_id = KSTR("inst-1") },         /* by instance id */
                { .member_id = KSTR(""), .group_instance_id = KSTR("inst-9") },         /* unknown instance */
                { .member_id = KSTR("nobody"), .group_instance_id = KSTR_NULL },        /* unknown member */
                { .member_id = KSTR(d), .group_instance_id = KSTR("inst-1") },          /* gone by now */
        };
        cr_assert_eq(group_leave(gc, KSTR("g"), m, 4), KAFKA_NONE);
        cr_assert_eq(m[0].error_code, KAFKA_NONE);
        cr_assert_eq(m[1].error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(m[2].error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(m[3].error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(the_group()->member_count, 1);

        struct group_leave_member f = { .member_id = KSTR("wrong-id"), .group_instance_id = KSTR_NULL };
        cr_assert_eq(group_leave(gc, KSTR("no-such-group"), &f, 1), KAFKA_NONE);
        cr_assert_eq(f.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(group_leave(gc, KSTR(""), &f, 1), KAFKA_INVALID_GROUP_ID);
}

Test(group, a_pending_member_may_leave)
{
        struct join_rec j;
        JOIN(&j);
        cr_assert_eq(j.error_code, KAFKA_MEMBER_ID_REQUIRED);
        char id[128];
        snprintf(id, sizeof(id), "%s", j.member_id);
        cr_assert_eq(the_group()->pending_members.count, 1);
        cr_assert_eq(leave(id), KAFKA_NONE);
        cr_assert_eq(the_group()->pending_members.count, 0);
        JOIN(&j, .member_id = id);
        cr_assert_eq(j.error_code, KAFKA_UNKNOWN_MEMBER_ID);
}

/* ---- timeouts ---- */

Test(group, a_silent_member_is_removed_after_its_session_timeout)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        for (int i = 0; i < 3; i++) {
                advance(3000);
                cr_assert_eq(heartbeat(a, 1), KAFKA_NONE);
        }
        cr_assert_eq(the_group()->state, GROUP_STABLE);
        advance(1000);
        /* b last heard of at t=0 (its SyncGroup answer); session 10 s. */
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_null(group_find_member(the_group(), KSTR(b)));
        cr_assert_eq(heartbeat(a, 1), KAFKA_REBALANCE_IN_PROGRESS);
        struct join_rec ja;
        JOIN(&ja, .member_id = a);
        cr_assert_eq(ja.generation_id, 2);
        cr_assert_eq(ja.member_count, 1);
        cr_assert_eq(heartbeat(b, 2), KAFKA_UNKNOWN_MEMBER_ID);
}

Test(group, heartbeats_keep_a_member_alive)
{
        char a[128];
        form_group_of_one(a, sizeof(a));
        for (int i = 0; i < 100; i++) {
                advance(9999);
                cr_assert_eq(heartbeat(a, 1), KAFKA_NONE);
        }
        cr_assert_eq(the_group()->state, GROUP_STABLE);
        advance(10000);
        cr_assert_eq(the_group()->state, GROUP_EMPTY, "its only member expired");
}

Test(group, a_member_not_rejoining_is_dropped_at_the_rebalance_timeout)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        struct join_rec ja;
        JOIN(&ja, .member_id = a);
        cr_assert_eq(ja.done_count, 0);
        /* b keeps heartbeating but never rejoins; the timeout is 30 s. */
        for (int i = 0; i < 9; i++) {
                advance(3000);
                cr_assert_eq(heartbeat(b, 1), KAFKA_REBALANCE_IN_PROGRESS);
        }
        advance(2999);
        cr_assert_eq(ja.done_count, 0);
        advance(1);
        cr_assert_eq(ja.done_count, 1);
        cr_assert_eq(ja.error_code, KAFKA_NONE);
        cr_assert_eq(ja.member_count, 1);
        cr_assert_eq(heartbeat(b, 2), KAFKA_UNKNOWN_MEMBER_ID);
}

Test(group, a_pending_member_that_never_rejoins_expires)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        struct join_rec jn, ja, jb;
        JOIN(&jn, .session_timeout_ms = 6000);
        cr_assert_eq(jn.error_code, KAFKA_MEMBER_ID_REQUIRED);
        JOIN(&ja, .member_id = a);
        JOIN(&jb, .member_id = b);
        cr_assert_eq(ja.done_count, 0, "waits for the pending member");
        advance(5999);
        cr_assert_eq(ja.done_count, 0);
        advance(1);
        cr_assert_eq(ja.done_count, 1);
        cr_assert_eq(jb.done_count, 1);
        cr_assert_eq(ja.member_count, 2);
        cr_assert_eq(the_group()->pending_members.count, 0);
}

Test(group, a_member_that_never_syncs_is_dropped)
{
        struct join_rec ja, jb;
        struct sync_rec sa;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { a, b }, .assignments = { "pa", "pb" });
        cr_assert_eq(the_group()->state, GROUP_STABLE);
        for (int i = 0; i < 3; i++) {
                advance(9000);
                cr_assert_eq(heartbeat(a, 1), KAFKA_NONE);
                cr_assert_eq(heartbeat(b, 1), KAFKA_NONE);
        }
        advance(2999);
        cr_assert_not_null(group_find_member(the_group(), KSTR(b)));
        advance(1);             /* 30 s rebalance timeout since the join completed */
        cr_assert_null(group_find_member(the_group(), KSTR(b)));
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
}

Test(group, a_new_member_parked_too_long_is_dropped)
{
        char a[128], b[128];
        struct join_rec ja, jb;
        join_dynamic(&ja, a, sizeof(a));
        advance(0);
        /* a never syncs nor rejoins, but its rebalance timeout is long. */
        struct sync_rec sa;
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { a }, .assignments = { "x" });
        JOIN(&jb, .rebalance_timeout_ms = 600000);
        snprintf(b, sizeof(b), "%s", jb.member_id);
        JOIN(&jb, .member_id = b, .rebalance_timeout_ms = 600000);
        cr_assert_eq(jb.done_count, 0);
        for (int i = 0; i < 100; i++) {
                advance(3000);
                cr_assert_eq(heartbeat(a, 1), KAFKA_REBALANCE_IN_PROGRESS);
        }
        cr_assert_eq(jb.done_count, 1, "dropped after five minutes");
        cr_assert_eq(jb.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_str_eq(jb.member_id, "");
}

Test(group, an_empty_group_expires)
{
        char a[128];
        form_group_of_one(a, sizeof(a));
        cr_assert_eq(leave(a), KAFKA_NONE);
        advance(599999);
        cr_assert_not_null(group_find(gc, KSTR("g")));
        advance(1);
        cr_assert_null(group_find(gc, KSTR("g")));
        cr_assert_eq(group_coordinator_group_count(gc), 0);
}

Test(group, an_empty_group_with_offsets_is_kept)
{
        int16_t err = KAFKA_NONE;
        struct group *g = group_get_or_create(gc, KSTR("g"), &err);
        cr_assert_not_null(g);
        cr_assert_eq(g->state, GROUP_EMPTY);
        static int marker;
        g->offsets = &marker;
        advance(10000000);
        cr_assert_eq(group_find(gc, KSTR("g")), g);
        g->offsets = NULL;
        group_offsets_released(g);
        advance(600000);
        cr_assert_null(group_find(gc, KSTR("g")));
        cr_assert_null(group_get_or_create(gc, KSTR(""), &err));
        cr_assert_eq(err, KAFKA_INVALID_GROUP_ID);
}

/* ---- static membership ---- */

Test(group, a_static_member_rejoining_a_stable_group_causes_no_rebalance)
{
        struct join_rec js, jd, again;
        struct sync_rec ss, sd;
        char s[128], d[128];
        JOIN(&js, .instance_id = "inst-1");
        join_dynamic(&jd, d, sizeof(d));
        advance(0);
        snprintf(s, sizeof(s), "%s", js.member_id);
        cr_assert_str_eq(js.leader, s);
        SYNC(&sd, .member_id = d, .generation_id = 1);
        SYNC(&ss, .member_id = s, .instance_id = "inst-1", .generation_id = 1, .assign_to = { s, d },
             .assignments = { "ps", "pd" });
        cr_assert_eq(the_group()->state, GROUP_STABLE);

        /* The process restarts: same instance id, no member id (v9). */
        JOIN(&again, .instance_id = "inst-1");
        cr_assert_eq(again.done_count, 1);
        cr_assert_eq(again.error_code, KAFKA_NONE);
        cr_assert_eq(again.generation_id, 1);
        cr_assert_str_neq(again.member_id, s);
        cr_assert_str_eq(again.leader, again.member_id, "still the leader");
        cr_assert(again.skip_assignment, "v9: lead, but do not reassign");
        cr_assert_eq(again.member_count, 2);
        cr_assert_eq(the_group()->state, GROUP_STABLE);

        /* The old incarnation is fenced. */
        cr_assert_eq(heartbeat_static(s, "inst-1", 1), KAFKA_FENCED_INSTANCE_ID);
        cr_assert_eq(heartbeat_static(again.member_id, "inst-1", 1), KAFKA_NONE);
        SYNC(&ss, .member_id = s, .instance_id = "inst-1", .generation_id = 1);
        cr_assert_eq(ss.error_code, KAFKA_FENCED_INSTANCE_ID);
        SYNC(&ss, .member_id = again.member_id, .instance_id = "inst-1", .generation_id = 1);
        cr_assert_eq(ss.error_code, KAFKA_NONE);
        cr_assert_str_eq(ss.assignment, "ps", "the assignment carries over");
        cr_assert_eq(heartbeat(d, 1), KAFKA_NONE);
}

Test(group, before_v9_a_rejoining_static_leader_is_told_the_old_leader)
{
        struct join_rec js, again;
        struct sync_rec ss;
        char s[128];
        JOIN(&js, .instance_id = "inst-1", .version = 5);
        advance(0);
        snprintf(s, sizeof(s), "%s", js.member_id);
        SYNC(&ss, .member_id = s, .instance_id = "inst-1", .generation_id = 1, .assign_to = { s },
             .assignments = { "ps" });
        JOIN(&again, .instance_id = "inst-1", .version = 5);
        cr_assert_eq(again.error_code, KAFKA_NONE);
        cr_assert_str_eq(again.leader, s);
        cr_assert_str_neq(again.member_id, s);
        cr_assert(!again.skip_assignment);
        cr_assert_eq(again.member_count, 0);
}

Test(group, a_static_member_changing_protocol_rebalances)
{
        struct join_rec js, again;
        struct sync_rec ss;
        char s[128];
        JOIN(&js, .instance_id = "inst-1");
        advance(0);
        snprintf(s, sizeof(s), "%s", js.member_id);
        SYNC(&ss, .member_id = s, .instance_id = "inst-1", .generation_id = 1, .assign_to = { s },
             .assignments = { "ps" });
        /* roundrobin first: still sharing range with the group it rejoins. */
        JOIN(&again, .instance_id = "inst-1", .protocols = { "roundrobin", "range" });
        cr_assert_eq(again.done_count, 1, "the only member is back: the rebalance completes");
        cr_assert_eq(again.generation_id, 2);
        cr_assert_str_eq(again.protocol_name, "roundrobin");
}

Test(group, a_replaced_static_members_parked_join_is_fenced)
{
        struct join_rec js, jd, again;
        char d[128];
        JOIN(&js, .instance_id = "inst-1");
        join_dynamic(&jd, d, sizeof(d));
        advance(0);
        /* d rejoins with new metadata: a rebalance; the static member rejoins too. */
        JOIN(&jd, .member_id = d, .meta = "changed");
        char s[128];
        snprintf(s, sizeof(s), "%s", js.member_id);
        JOIN(&js, .member_id = s, .instance_id = "inst-1");
        cr_assert_eq(js.done_count, 1, "everyone rejoined");
        cr_assert_eq(js.generation_id, 2);
        /* Now a rebalance where the static member is parked, then its
         * restarted incarnation arrives. */
        JOIN(&js, .member_id = s, .instance_id = "inst-1", .meta = "changed");
        cr_assert_eq(js.done_count, 0);
        JOIN(&again, .instance_id = "inst-1");
        cr_assert_eq(js.done_count, 1);
        cr_assert_eq(js.error_code, KAFKA_FENCED_INSTANCE_ID);
        cr_assert_str_eq(js.member_id, s);
        cr_assert_eq(again.done_count, 0, "d has not rejoined yet");
        JOIN(&jd, .member_id = d, .meta = "changed");
        cr_assert_eq(again.done_count, 1, "all members joined: completes");
        cr_assert_eq(again.error_code, KAFKA_NONE);
        cr_assert_eq(again.generation_id, 3);
        cr_assert_eq(heartbeat_static(s, "inst-1", 3), KAFKA_FENCED_INSTANCE_ID);
}

Test(group, a_static_member_that_does_not_rejoin_keeps_its_place)
{
        struct join_rec js, jd;
        struct sync_rec ss, sd;
        char s[128], d[128];
        JOIN(&js, .instance_id = "inst-1", .session_timeout_ms = 60000, .rebalance_timeout_ms = 10000);
        join_dynamic(&jd, d, sizeof(d));
        advance(0);
        snprintf(s, sizeof(s), "%s", js.member_id);
        SYNC(&sd, .member_id = d, .generation_id = 1);
        SYNC(&ss, .member_id = s, .instance_id = "inst-1", .generation_id = 1, .assign_to = { s, d },
             .assignments = { "ps", "pd" });
        JOIN(&jd, .member_id = d, .meta = "changed", .rebalance_timeout_ms = 10000);
        cr_assert_eq(jd.done_count, 0);
        advance(10000);
        /* The static member did not rejoin but stays (its session is 60 s). */
        cr_assert_eq(jd.done_count, 1);
        cr_assert_eq(jd.generation_id, 2);
        cr_assert_str_eq(jd.leader, d, "leadership moves to a member that rejoined");
        cr_assert_eq(jd.member_count, 2);
        cr_assert_not_null(group_find_member(the_group(), KSTR(s)));
}

Test(group, a_static_member_with_a_wrong_member_id_is_fenced)
{
        struct join_rec js, bad;
        JOIN(&js, .instance_id = "inst-1");
        advance(0);
        JOIN(&bad, .member_id = "inst-1-forged", .instance_id = "inst-1");
        cr_assert_eq(bad.error_code, KAFKA_FENCED_INSTANCE_ID);
        JOIN(&bad, .member_id = js.member_id, .instance_id = "inst-2");
        cr_assert_eq(bad.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        struct group_leave_member m = { .member_id = KSTR("inst-1-forged"), .group_instance_id = KSTR("inst-1") };
        cr_assert_eq(group_leave(gc, KSTR("g"), &m, 1), KAFKA_NONE);
        cr_assert_eq(m.error_code, KAFKA_FENCED_INSTANCE_ID);
}

/* ---- protocols ---- */

Test(group, the_protocol_is_the_one_most_members_prefer)
{
        struct join_rec ja, jb, jc;
        JOIN(&ja, .protocols = { "roundrobin", "range" }, .version = 3);
        JOIN(&jb, .protocols = { "range", "roundrobin" }, .version = 3);
        JOIN(&jc, .protocols = { "range", "sticky" }, .version = 3);
        advance(0);
        cr_assert_str_eq(ja.protocol_name, "range", "roundrobin is not supported by c");
        cr_assert_str_eq(ja.metadata[0], "range:m", "the leader sees metadata of the chosen protocol");
}

Test(group, on_a_tie_the_first_members_preference_wins)
{
        struct join_rec ja, jb;
        JOIN(&ja, .protocols = { "x", "y" }, .version = 3);
        JOIN(&jb, .protocols = { "y", "x" }, .version = 3);
        advance(0);
        cr_assert_str_eq(ja.protocol_name, "x");
        char a[128], b[128];
        snprintf(a, sizeof(a), "%s", ja.member_id);
        snprintf(b, sizeof(b), "%s", jb.member_id);
        struct join_rec jc;
        JOIN(&jc, .protocols = { "y" }, .version = 3);
        JOIN(&ja, .member_id = a, .protocols = { "x", "y" });
        JOIN(&jb, .member_id = b, .protocols = { "y", "x" });
        cr_assert_str_eq(jc.protocol_name, "y");
        cr_assert_eq(jc.generation_id, 2);
}

Test(group, inconsistent_protocols_are_refused)
{
        char a[128];
        form_group_of_one(a, sizeof(a));
        struct join_rec j;
        JOIN(&j, .protocol_type = "connect");
        cr_assert_eq(j.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        cr_assert_str_eq(j.member_id, "");
        JOIN(&j, .protocols = { "roundrobin" });
        cr_assert_eq(j.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        JOIN(&j, .member_id = a, .protocols = { "roundrobin" });
        cr_assert_eq(j.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        cr_assert_str_eq(j.member_id, a);

        struct sync_rec s;
        SYNC(&s, .member_id = a, .generation_id = 1, .protocol_type = "consumer", .protocol_name = "roundrobin");
        cr_assert_eq(s.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        SYNC(&s, .member_id = a, .generation_id = 1, .protocol_type = "connect", .protocol_name = "range");
        cr_assert_eq(s.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);

        /* A new group needs a protocol type and at least one protocol. */
        JOIN(&j, .group = "other", .protocol_type = "");
        cr_assert_eq(j.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
        JOIN(&j, .group = "other", .protocols = { "-" });
        cr_assert_eq(j.error_code, KAFKA_INCONSISTENT_GROUP_PROTOCOL);
}

/* ---- errors ---- */

Test(group, invalid_group_ids_and_session_timeouts)
{
        struct join_rec j;
        struct sync_rec s;
        JOIN(&j, .group = "");
        cr_assert_eq(j.error_code, KAFKA_INVALID_GROUP_ID);
        SYNC(&s, .group = "", .member_id = "x");
        cr_assert_eq(s.error_code, KAFKA_INVALID_GROUP_ID);
        cr_assert_eq(group_heartbeat(gc, KSTR(""), KSTR("x"), KSTR_NULL, 0), KAFKA_INVALID_GROUP_ID);
        JOIN(&j, .session_timeout_ms = 5999);
        cr_assert_eq(j.error_code, KAFKA_INVALID_SESSION_TIMEOUT);
        JOIN(&j, .session_timeout_ms = 1800001);
        cr_assert_eq(j.error_code, KAFKA_INVALID_SESSION_TIMEOUT);
        JOIN(&j, .session_timeout_ms = 6000);
        cr_assert_eq(j.error_code, KAFKA_MEMBER_ID_REQUIRED);
        cr_assert_eq(group_coordinator_group_count(gc), 1);
}

Test(group, unknown_members_and_groups)
{
        struct join_rec j;
        struct sync_rec s;
        JOIN(&j, .member_id = "ghost");
        cr_assert_eq(j.error_code, KAFKA_UNKNOWN_MEMBER_ID, "a known member id cannot create a group");
        cr_assert_str_eq(j.member_id, "ghost");
        cr_assert_null(group_find(gc, KSTR("g")));
        SYNC(&s, .member_id = "ghost", .generation_id = 1);
        cr_assert_eq(s.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(heartbeat("ghost", 1), KAFKA_UNKNOWN_MEMBER_ID);

        char a[128];
        form_group_of_one(a, sizeof(a));
        JOIN(&j, .member_id = "ghost");
        cr_assert_eq(j.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        SYNC(&s, .member_id = "ghost", .generation_id = 1);
        cr_assert_eq(s.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(heartbeat("ghost", 1), KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(leave("ghost"), KAFKA_UNKNOWN_MEMBER_ID);

        /* Sync into an Empty group. */
        cr_assert_eq(leave(a), KAFKA_NONE);
        SYNC(&s, .member_id = a, .generation_id = 2);
        cr_assert_eq(s.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(heartbeat(a, 2), KAFKA_UNKNOWN_MEMBER_ID);
}

Test(group, illegal_generations)
{
        char a[128];
        form_group_of_one(a, sizeof(a));
        struct sync_rec s;
        SYNC(&s, .member_id = a, .generation_id = 0);
        cr_assert_eq(s.error_code, KAFKA_ILLEGAL_GENERATION);
        cr_assert_eq(heartbeat(a, 2), KAFKA_ILLEGAL_GENERATION);
        cr_assert_eq(heartbeat(a, -1), KAFKA_ILLEGAL_GENERATION);
        cr_assert_eq(heartbeat(a, 1), KAFKA_NONE);
}

Test(group, rebalance_in_progress)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        struct join_rec ja;
        JOIN(&ja, .member_id = a);
        cr_assert_eq(heartbeat(b, 1), KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(heartbeat(a, 1), KAFKA_REBALANCE_IN_PROGRESS);
        struct sync_rec s;
        SYNC(&s, .member_id = b, .generation_id = 1);
        cr_assert_eq(s.error_code, KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(group_validate_offset_commit(the_group(), KSTR(b), KSTR_NULL, 1, false), KAFKA_NONE,
                     "commits during PreparingRebalance are accepted, as in Kafka");
}

Test(group, group_max_size)
{
        group_coordinator_destroy(gc);
        struct group_config cfg = test_config();
        cfg.max_size = 2;
        gc = make_coordinator(&cfg);
        char a[128], b[128], c[128];
        form_group_of_two(a, b);
        struct join_rec jc;
        JOIN(&jc);
        cr_assert_eq(jc.error_code, KAFKA_GROUP_MAX_SIZE_REACHED);
        cr_assert_str_eq(jc.member_id, "");
        cr_assert_eq(the_group()->state, GROUP_STABLE);
        cr_assert_eq(the_group()->pending_members.count, 0);

        /* During a rebalance only members awaiting join count. */
        struct join_rec ja;
        JOIN(&ja, .member_id = a, .meta = "changed");
        JOIN(&jc);
        cr_assert_eq(jc.error_code, KAFKA_MEMBER_ID_REQUIRED, "b has not rejoined: room for one");
        snprintf(c, sizeof(c), "%s", jc.member_id);
        JOIN(&jc, .member_id = c);
        cr_assert_eq(jc.done_count, 0);
        struct join_rec jb;
        JOIN(&jb, .member_id = b);
        cr_assert_eq(jb.error_code, KAFKA_GROUP_MAX_SIZE_REACHED, "the last to rejoin is turned away");
        cr_assert_null(group_find_member(the_group(), KSTR(b)));
        advance(30000);
        cr_assert_eq(ja.done_count, 1);
        cr_assert_eq(ja.member_count, 2);
}

Test(group, delete_groups)
{
        char a[128], b[128];
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_GROUP_ID_NOT_FOUND);
        form_group_of_two(a, b);
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_NON_EMPTY_GROUP);
        struct join_rec j;
        JOIN(&j, .member_id = a, .meta = "changed");
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_NON_EMPTY_GROUP, "in any non-empty state");
        cr_assert_eq(leave(a), KAFKA_NONE);
        cr_assert_eq(j.done_count, 1, "its parked join is answered");
        cr_assert_eq(j.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(leave(b), KAFKA_NONE);
        cr_assert_eq(the_group()->state, GROUP_EMPTY);
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_NONE);
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_GROUP_ID_NOT_FOUND);
        cr_assert_eq(group_coordinator_group_count(gc), 0);
}

static int released_count;

static void release_offsets(void *ctx, struct group *g)
{
        (void)ctx;
        cr_assert_str_eq(g->id.ptr, "g");
        released_count++;
        g->offsets = NULL;
}

Test(group, deleting_a_group_releases_its_offsets)
{
        static int marker;
        int16_t err;
        group_coordinator_set_offsets_release(gc, release_offsets, NULL);
        struct group *g = group_get_or_create(gc, KSTR("g"), &err);
        g->offsets = &marker;
        released_count = 0;
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_NONE);
        cr_assert_eq(released_count, 1);
}

Test(group, duplicate_requests_answer_the_older_one)
{
        char a[128], b[128];
        form_group_of_two(a, b);
        struct join_rec j1, j2;
        JOIN(&j1, .member_id = a);
        JOIN(&j2, .member_id = a);
        cr_assert_eq(j1.done_count, 1);
        cr_assert_eq(j1.error_code, KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(j2.done_count, 0);
        struct join_rec jb;
        JOIN(&jb, .member_id = b);
        cr_assert_eq(j2.done_count, 1);
        cr_assert_eq(j2.error_code, KAFKA_NONE);

        struct sync_rec s1, s2;
        SYNC(&s1, .member_id = b, .generation_id = 2);
        SYNC(&s2, .member_id = b, .generation_id = 2);
        cr_assert_eq(s1.done_count, 1);
        cr_assert_eq(s1.error_code, KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(s2.done_count, 0);
        cr_assert_eq(leave(b), KAFKA_NONE);
        cr_assert_eq(s2.done_count, 1, "a leaving member's parked sync is answered");
        cr_assert_eq(s2.error_code, KAFKA_UNKNOWN_MEMBER_ID);
}

Test(group, validate_offset_commit)
{
        int16_t err;
        struct group *simple = group_get_or_create(gc, KSTR("simple"), &err);
        cr_assert_eq(group_validate_offset_commit(simple, KSTR(""), KSTR_NULL, -1, false), KAFKA_NONE);
        cr_assert_eq(group_validate_offset_commit(simple, KSTR("m"), KSTR_NULL, 3, false), KAFKA_UNKNOWN_MEMBER_ID);

        struct join_rec ja, jb;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        struct group *g = the_group();
        cr_assert_eq(group_validate_offset_commit(g, KSTR(a), KSTR_NULL, 1, false), KAFKA_REBALANCE_IN_PROGRESS);
        cr_assert_eq(group_validate_offset_commit(g, KSTR(a), KSTR_NULL, 1, true), KAFKA_NONE);
        struct sync_rec s;
        SYNC(&s, .member_id = a, .generation_id = 1, .assign_to = { a }, .assignments = { "x" });
        cr_assert_eq(group_validate_offset_commit(g, KSTR(a), KSTR_NULL, 1, false), KAFKA_NONE);
        cr_assert_eq(group_validate_offset_commit(g, KSTR(a), KSTR_NULL, 0, false), KAFKA_ILLEGAL_GENERATION);
        cr_assert_eq(group_validate_offset_commit(g, KSTR("x"), KSTR_NULL, 1, false), KAFKA_UNKNOWN_MEMBER_ID);
        cr_assert_eq(group_validate_offset_commit(g, KSTR(""), KSTR_NULL, -1, false), KAFKA_UNKNOWN_MEMBER_ID,
                     "v0-style commits only into an empty group");
        cr_assert_eq(group_validate_offset_commit(g, KSTR(""), KSTR_NULL, -1, true), KAFKA_NONE);
        cr_assert_eq(group_validate_offset_commit(g, KSTR(a), KSTR("inst"), 1, false), KAFKA_UNKNOWN_MEMBER_ID);
}

Test(group, destroying_with_parked_requests)
{
        struct join_rec ja, jb;
        char a[128];
        join_dynamic(&ja, a, sizeof(a));
        JOIN(&jb, .group = "other", .version = 3);
        JOIN(&jb, .group = "third", .instance_id = "i");
        cr_assert_eq(group_coordinator_group_count(gc), 3);
        /* teardown destroys it: no waiter runs, no timer is left. */
}

Test(group, unloading_answers_every_parked_request)
{
        struct join_rec ja, jb, jc;
        struct sync_rec sb;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        SYNC(&sb, .member_id = b, .generation_id = 1);
        JOIN(&jc, .group = "other", .version = 3);
        cr_assert_eq(sb.done_count + jc.done_count, 0);
        group_coordinator_unload(gc, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(sb.done_count, 1);
        cr_assert_eq(sb.error_code, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(jc.done_count, 1);
        cr_assert_eq(jc.error_code, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(group_coordinator_group_count(gc), 0);
        cr_assert_eq(F.count, 0, "no timer left armed");
        JOIN(&ja);
        cr_assert_eq(ja.error_code, KAFKA_MEMBER_ID_REQUIRED, "still usable");
}

Test(group, many_groups_and_members)
{
        struct join_rec j[20], g;
        for (int i = 0; i < 20; i++)
                JOIN(&j[i], .version = 3);
        advance(0);
        for (int i = 0; i < 20; i++) {
                cr_assert_eq(j[i].error_code, KAFKA_NONE);
                cr_assert_eq(j[i].generation_id, 1);
        }
        cr_assert_eq(j[0].member_count, 20);
        cr_assert_eq(the_group()->member_count, 20);
        for (int i = 0; i < 40; i++) {
                char name[32];
                snprintf(name, sizeof(name), "group-%d", i);
                JOIN(&g, .group = name);
                cr_assert_eq(g.error_code, KAFKA_MEMBER_ID_REQUIRED);
        }
        cr_assert_eq(group_coordinator_group_count(gc), 41);
        for (int i = 0; i < 40; i++) {
                char name[32];
                snprintf(name, sizeof(name), "group-%d", i);
                cr_assert_not_null(group_find(gc, KSTR(name)));
        }
        for (int i = 0; i < 20; i += 2)
                cr_assert_eq(leave(j[i].member_id), KAFKA_NONE);
        cr_assert_eq(the_group()->member_count, 10);
}

Test(group, a_group_of_absent_static_members_waits_for_them)
{
        struct join_rec js, jd;
        struct sync_rec ss;
        char s[128], d[128];
        JOIN(&js, .instance_id = "inst-1", .session_timeout_ms = 60000, .rebalance_timeout_ms = 10000);
        advance(0);
        snprintf(s, sizeof(s), "%s", js.member_id);
        SYNC(&ss, .member_id = s, .instance_id = "inst-1", .generation_id = 1, .assign_to = { s },
             .assignments = { "ps" });
        join_dynamic(&jd, d, sizeof(d));
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(leave(d), KAFKA_NONE);
        cr_assert_eq(jd.error_code, KAFKA_UNKNOWN_MEMBER_ID);
        advance(10000);
        /* Nobody rejoined and the only member is static: keep waiting. */
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(the_group()->generation_id, 1);
        advance(10000);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        advance(40000);         /* its session ends 60 s after its SyncGroup */
        cr_assert_eq(the_group()->state, GROUP_EMPTY);
        cr_assert_eq(the_group()->generation_id, 2);
}

Test(group, a_static_member_replaced_during_completing_rebalance_rebalances)
{
        struct join_rec js, jd, again;
        struct sync_rec sd;
        char d[128];
        JOIN(&js, .instance_id = "inst-1");
        join_dynamic(&jd, d, sizeof(d));
        advance(0);
        cr_assert_eq(the_group()->state, GROUP_COMPLETING_REBALANCE);
        SYNC(&sd, .member_id = d, .generation_id = 1);
        JOIN(&again, .instance_id = "inst-1");
        cr_assert_eq(sd.done_count, 1);
        cr_assert_eq(sd.error_code, KAFKA_REBALANCE_IN_PROGRESS, "the leader may be assigning to the old id");
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        JOIN(&jd, .member_id = d);
        cr_assert_eq(again.done_count, 1);
        cr_assert_eq(again.generation_id, 2);
        cr_assert_eq(jd.generation_id, 2);
}

Test(group, a_pending_id_with_an_instance_id_is_refused)
{
        struct join_rec j;
        JOIN(&j);
        char id[128];
        snprintf(id, sizeof(id), "%s", j.member_id);
        JOIN(&j, .member_id = id, .instance_id = "inst-1");
        cr_assert_eq(j.error_code, KAFKA_UNKNOWN_SERVER_ERROR, "Kafka fails it the same way");
}

Test(group, the_last_assignment_for_a_member_wins)
{
        struct join_rec ja, jb;
        struct sync_rec sa, sb;
        char a[128], b[128];
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { b, a, b }, .assignments = { "first", "pa", "last" });
        SYNC(&sb, .member_id = b, .generation_id = 1);
        cr_assert_str_eq(sb.assignment, "last");
        cr_assert_str_eq(sa.assignment, "pa");
        int16_t err;
        cr_assert_eq(group_get_or_create(gc, KSTR("g"), &err), the_group());
}

Test(group, listing_every_group)
{
        struct join_rec j;
        JOIN(&j, .group = "g1");
        JOIN(&j, .group = "g2");
        JOIN(&j, .group = "g3");
        int n = 0;
        for (struct group *g = group_coordinator_first(gc); g; g = group_coordinator_next(g))
                n++;
        cr_assert_eq(n, 3);
        cr_assert_eq(group_coordinator_group_count(gc), 3);
}

/* ---- a randomized run ---- */

#define RUN_MEMBERS 5

static struct join_rec joins[RUN_MEMBERS][64];
static struct sync_rec syncs[RUN_MEMBERS][64];
static bool learned[RUN_MEMBERS][64];

/* One run of random requests from five members (member 0 static), then
 * silence: every parked request must be answered exactly once. */
static void random_run(uint32_t seed, int steps, int *joined, int *synced, int *max_gen)
{
        int jn[RUN_MEMBERS] = { 0 }, sn[RUN_MEMBERS] = { 0 };
        char ids[RUN_MEMBERS][128] = { { 0 } };
        int32_t gens[RUN_MEMBERS] = { 0 };
        memset(joins, 0, sizeof(joins));
        memset(syncs, 0, sizeof(syncs));
        memset(learned, 0, sizeof(learned));
        for (int step = 0; step < steps; step++) {
                seed = seed * 1664525u + 1013904223u;
                int who = (int)((seed >> 8) % RUN_MEMBERS);
                int roll = (int)((seed >> 16) % 20);
                /* Mostly joins, syncs and heartbeats; now and then time
                 * passes, someone leaves, or the group is deleted. */
                int op = roll < 3 ? (roll == 0) : roll < 10 ? 2 : roll < 15 ? 3 : roll == 15 ? 4 : roll < 19 ? 5 : 6;
                const char *inst = who == 0 ? "static-0" : NULL;
                if (jn[who] == 64 || sn[who] == 64) {
                        jn[who] = sn[who] = 0;          /* recycle the records */
                        memset(learned[who], 0, sizeof(learned[who]));
                }
                /* A record is reused only once answered. */
                struct join_rec *jr = &joins[who][jn[who]];
                struct sync_rec *sr = &syncs[who][sn[who]];
                if ((jr->w.done && jr->done_count == 0) || (sr->w.done && sr->done_count == 0)) {
                        advance(1000);
                        continue;
                }
                switch (op) {
                case 0:
                case 1:
                        JOIN(jr, .member_id = ids[who], .instance_id = inst, .rebalance_timeout_ms = 20000,
                             .meta = op ? "new" : "same");
                        if (jr->done_count && (jr->error_code == KAFKA_MEMBER_ID_REQUIRED ||
                                               jr->error_code == KAFKA_NONE))
                                snprintf(ids[who], 128, "%s", jr->member_id);
                        if (jr->done_count && jr->error_code == KAFKA_UNKNOWN_MEMBER_ID)
                                ids[who][0] = '\0';
                        jn[who]++;
                        break;
                case 2:
                        SYNC(sr, .member_id = ids[who], .instance_id = inst, .generation_id = gens[who],
                             .assign_to = { ids[0], ids[1], ids[2] }, .assignments = { "0", "1", "2" });
                        sn[who]++;
                        break;
                case 3:
                        heartbeat_static(ids[who], inst ? inst : "", gens[who]);
                        group_heartbeat(gc, KSTR("g"), KSTR(ids[who]), inst ? KSTR(inst) : KSTR_NULL, gens[who]);
                        break;
                case 4:
                        leave(ids[who]);
                        break;
                case 5:
                        advance((int64_t)((seed >> 4) % ((seed >> 24) % 16 == 0 ? 15000 : 1500)));
                        break;
                case 6:
                        if ((seed >> 24) % 4 == 0)
                                group_delete(gc, KSTR("g"));
                        break;
                }
                /* Learn ids and generations from answers that arrived. */
                for (int m = 0; m < RUN_MEMBERS; m++) {
                        for (int i = 0; i < jn[m]; i++) {
                                struct join_rec *r = &joins[m][i];
                                if (r->done_count == 1 && !learned[m][i] && r->error_code == KAFKA_NONE) {
                                        gens[m] = r->generation_id;
                                        snprintf(ids[m], 128, "%s", r->member_id);
                                }
                                if (r->done_count == 1)
                                        learned[m][i] = true;
                                cr_assert_leq(r->done_count, 1, "a waiter answered twice");
                        }
                        for (int i = 0; i < sn[m]; i++)
                                cr_assert_leq(syncs[m][i].done_count, 1, "a waiter answered twice");
                }
        }
        /* Nobody acts any more: within bounded time every parked request is answered. */
        advance(10 * 60 * 1000);
        for (int m = 0; m < RUN_MEMBERS; m++) {
                for (int i = 0; i < jn[m]; i++)
                        cr_assert_eq(joins[m][i].done_count, 1, "join %d of member %d stranded", i, m);
                for (int i = 0; i < sn[m]; i++)
                        cr_assert_eq(syncs[m][i].done_count, 1, "sync %d of member %d stranded", i, m);
        }
        struct group *g = group_find(gc, KSTR("g"));
        cr_assert(!g || g->member_count == 0 || g->state != GROUP_PREPARING_REBALANCE);
        for (int m = 0; m < RUN_MEMBERS; m++) {
                for (int i = 0; i < 64; i++) {
                        *joined += joins[m][i].done_count && joins[m][i].error_code == KAFKA_NONE;
                        *synced += syncs[m][i].done_count && syncs[m][i].error_code == KAFKA_NONE &&
                                   syncs[m][i].has_protocol_name;
                        if (joins[m][i].generation_id > *max_gen)
                                *max_gen = joins[m][i].generation_id;
                }
        }
}

Test(group, random_operations_never_strand_a_request)
{
        int joined = 0, synced = 0, max_gen = 0;
        for (uint32_t seed = 1; seed <= 16; seed++) {
                group_coordinator_destroy(gc);
                struct group_config cfg = test_config();
                cfg.initial_rebalance_delay_ms = (int32_t)(seed % 3) * 1000;
                cfg.max_size = seed % 4 == 0 ? 3 : 1000;
                gc = make_coordinator(&cfg);
                random_run(seed, 5000, &joined, &synced, &max_gen);
        }
        /* The runs did reach the interesting places. */
        cr_log_info("random runs: %d joins and %d syncs succeeded, generation %d reached", joined, synced, max_gen);
        cr_assert_gt(joined, 500);
        cr_assert_gt(synced, 200);
        cr_assert_gt(max_gen, 20);
}

/* ---- persisting and restoring group metadata ---- */

static struct {
        int count;
        bool is_deleted;
        enum group_state state;
        int32_t generation_id;
        int32_t member_count;
        bool has_assignment;
        bool is_assignment;
} P;

static void persist_rec(void *ctx, const struct group *g, bool is_deleted, bool is_assignment)
{
        (void)ctx;
        P.count++;
        P.is_deleted = is_deleted;
        P.is_assignment = is_assignment;
        P.state = g->state;
        P.generation_id = g->generation_id;
        P.member_count = g->member_count;
        P.has_assignment = g->members_head && g->members_head->assignment.len > 0;
}

Test(group, a_completed_rebalance_an_empty_group_and_a_deletion_are_persisted)
{
        memset(&P, 0, sizeof(P));
        group_coordinator_set_persist(gc, persist_rec, NULL);
        char a[128];
        struct join_rec j;
        struct sync_rec s;
        join_dynamic(&j, a, sizeof(a));
        advance(0);
        cr_assert_eq(j.error_code, KAFKA_NONE);
        SYNC(&s, .member_id = a, .generation_id = 1, .assign_to = { a }, .assignments = { "a0" });
        cr_assert_eq(P.count, 1, "only the leader's SyncGroup persists");
        cr_assert(P.is_assignment);
        cr_assert_not(P.is_deleted);
        cr_assert_eq(P.state, GROUP_COMPLETING_REBALANCE, "stored before anyone gets the assignment");
        cr_assert_eq(P.generation_id, 1);
        cr_assert_eq(P.member_count, 1);
        cr_assert(P.has_assignment);
        cr_assert_eq(s.done_count, 0, "the leader waits for the store");
        group_sync_stored(gc, KSTR("g"), 1, KAFKA_NONE);
        cr_assert_eq(s.done_count, 1);
        cr_assert_eq(s.error_code, KAFKA_NONE);
        cr_assert_eq(the_group()->state, GROUP_STABLE);
        group_sync_stored(gc, KSTR("g"), 1, KAFKA_NONE);        /* a second answer changes nothing */
        cr_assert_eq(s.done_count, 1);
        cr_assert_eq(leave(a), KAFKA_NONE);
        cr_assert_eq(P.count, 2);
        cr_assert_not(P.is_assignment);
        cr_assert_eq(P.state, GROUP_EMPTY);
        cr_assert_eq(P.generation_id, 2);
        cr_assert_eq(P.member_count, 0);
        cr_assert_eq(group_delete(gc, KSTR("g")), KAFKA_NONE);
        cr_assert_eq(P.count, 3);
        cr_assert(P.is_deleted);
}

Test(group, a_failed_assignment_store_answers_every_member_and_rebalances)
{
        memset(&P, 0, sizeof(P));
        group_coordinator_set_persist(gc, persist_rec, NULL);
        char a[128], b[128];
        struct join_rec ja, jb;
        struct sync_rec sa, sb;
        join_dynamic(&ja, a, sizeof(a));
        join_dynamic(&jb, b, sizeof(b));
        advance(0);
        SYNC(&sb, .member_id = b, .generation_id = 1);
        SYNC(&sa, .member_id = a, .generation_id = 1, .assign_to = { a, b }, .assignments = { "pa", "pb" });
        cr_assert_eq(sa.done_count + sb.done_count, 0);
        /* Kafka's storeGroup maps a storage error to NOT_COORDINATOR. */
        group_sync_stored(gc, KSTR("g"), 1, KAFKA_KAFKA_STORAGE_ERROR);
        cr_assert_eq(sa.done_count, 1);
        cr_assert_eq(sb.done_count, 1);
        cr_assert_eq(sa.error_code, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(sb.error_code, KAFKA_NOT_COORDINATOR);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(the_group()->members_head->assignment.len, 0, "the assignment is dropped");
}

Test(group, a_store_answer_for_a_generation_gone_is_ignored)
{
        memset(&P, 0, sizeof(P));
        group_coordinator_set_persist(gc, persist_rec, NULL);
        char a[128], c[128];
        struct join_rec j, jc;
        struct sync_rec s;
        join_dynamic(&j, a, sizeof(a));
        advance(0);
        SYNC(&s, .member_id = a, .generation_id = 1, .assign_to = { a }, .assignments = { "a0" });
        cr_assert_eq(s.done_count, 0);
        /* A new member joins while the store runs: the group rebalances. */
        join_dynamic(&jc, c, sizeof(c));
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE);
        cr_assert_eq(s.done_count, 1, "the waiting SyncGroup is told to rejoin");
        cr_assert_eq(s.error_code, KAFKA_REBALANCE_IN_PROGRESS);
        group_sync_stored(gc, KSTR("g"), 1, KAFKA_NONE);
        cr_assert_eq(the_group()->state, GROUP_PREPARING_REBALANCE, "the late answer changes nothing");
        cr_assert_eq(s.done_count, 1);
}

Test(group, an_expired_empty_group_is_persisted_deleted)
{
        memset(&P, 0, sizeof(P));
        group_coordinator_set_persist(gc, persist_rec, NULL);
        cr_assert_eq(group_restore(gc, KSTR("g"), KSTR("consumer"), 4, 1000), 0);
        cr_assert_eq(P.count, 0, "a replay persists nothing");
        advance(test_config().empty_group_retention_ms);
        cr_assert_null(group_find(gc, KSTR("g")));
        cr_assert_eq(P.count, 1);
        cr_assert(P.is_deleted);
}

Test(group, a_restored_group_is_empty_and_the_next_join_goes_beyond_its_generation)
{
        cr_assert_eq(group_restore(gc, KSTR("g"), KSTR("consumer"), 5, 1234), 0);
        struct group *g = the_group();
        cr_assert_eq(g->state, GROUP_EMPTY);
        cr_assert_eq(g->generation_id, 5);
        cr_assert(kstr_eq_cstr(g->protocol_type, "consumer"));
        cr_assert(kstr_is_null(g->protocol_name));
        cr_assert_eq(g->member_count, 0);
        cr_assert_eq(g->state_timestamp_ms, 1234);

        struct join_rec j;
        char id[128];
        join_dynamic(&j, id, sizeof(id));
        advance(0);
        cr_assert_eq(j.error_code, KAFKA_NONE);
        cr_assert_eq(j.generation_id, 6);

        /* a group with members is left alone by a later record */
        cr_assert_eq(group_restore(gc, KSTR("g"), KSTR("consumer"), 9, 1), 0);
        cr_assert_eq(the_group()->generation_id, 6);
        group_restore_tombstone(gc, KSTR("g"));
        cr_assert_not_null(group_find(gc, KSTR("g")));
}

Test(group, a_replayed_tombstone_removes_the_restored_group)
{
        cr_assert_eq(group_restore(gc, KSTR("g"), KSTR("consumer"), 3, -1), 0);
        cr_assert_not_null(group_find(gc, KSTR("g")));
        group_restore_tombstone(gc, KSTR("g"));
        cr_assert_null(group_find(gc, KSTR("g")));
        group_restore_tombstone(gc, KSTR("nope"));      /* nothing to remove */
}
