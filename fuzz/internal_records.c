/*
 * internal_records.c - fuzz target: the records runnel reads back from its
 * internal topics and the group protocol's embedded data, with the codecs
 * generated from Kafka's records/ JSON and data schemas: the keys and
 * values of __consumer_offsets (OffsetCommitKey/Value, GroupMetadataKey/
 * Value, the KIP-848 and share group records) and __transaction_state
 * (TransactionLogKey/Value), and ConsumerProtocolSubscription/Assignment,
 * which a classic group's JoinGroup and SyncGroup carry as opaque bytes.
 *
 * Input: one byte choosing the schema, then the bytes as Kafka stores them:
 * an int16 version followed by the struct in that version (the coordinator
 * record serde and ConsumerProtocol both write the version first). A
 * version outside the schema's range is mapped into it, so every input
 * reaches a decoder.
 *
 * Property: that of codec.h - no crash, bounded memory, and what decodes
 * re-encodes to bytes that decode to the same encoding.
 *
 * Schemas are included when protocol/gen has them (__has_include): the
 * generator leaves out records it cannot code yet, and this target follows.
 */
#include "codec.h"
#include "fuzz.h"

#define ARENA_BYTES (8u << 20)
#define SCHEMAS_MAX 34         /* the ids given below */

/* Indexed by a fixed id per schema, so a seed keeps choosing the same
 * schema whichever others the generator writes; a missing one is NULL. */
static const struct msg_codec *schemas[SCHEMAS_MAX];
static int16_t schema_min[SCHEMAS_MAX];
static int16_t schema_max[SCHEMAS_MAX];

static void add_schema(int id, const struct msg_codec *c, int16_t min_version, int16_t max_version)
{
        FUZZ_CHECK(id < SCHEMAS_MAX, "raise SCHEMAS_MAX");
        schemas[id] = c;
        schema_min[id] = min_version;
        schema_max[id] = max_version;
}

/* fuzz/gen_seeds.c includes this file with FUZZ_SEED_GEN defined, to fill
 * each schema with the codec tests' random values. */
#ifdef FUZZ_SEED_GEN
#define SCHEMA_FILL(msg)                                                                        \
        static void msg##_fill_v(struct fill_rng *g, struct arena *a, int16_t v, int depth, void *m) \
        {                                                                                       \
                msg##_fill(g, a, v, depth, m);                                                  \
        }
#define SCHEMA_FILL_FIELD(msg) .fill = msg##_fill_v,
#else
#define SCHEMA_FILL(msg)
#define SCHEMA_FILL_FIELD(msg)
#endif

/* Wraps a generated codec in a struct msg_codec and registers it at start-up. */
#define SCHEMA(id, msg, NAME)                                                                   \
        static int msg##_decode_v(struct kreader *r, struct arena *a, int16_t v, void *m)       \
        {                                                                                       \
                return msg##_decode(r, a, v, m);                                                \
        }                                                                                       \
        static int64_t msg##_size_v(const void *m, int16_t v) { return msg##_size(m, v); }      \
        static void msg##_encode_v(struct kwriter *w, const void *m, int16_t v)                 \
        {                                                                                       \
                msg##_encode(w, m, v);                                                          \
        }                                                                                       \
        SCHEMA_FILL(msg)                                                                        \
        static const struct msg_codec msg##_codec = {                                           \
                .name = #msg,                                                                   \
                .struct_bytes = sizeof(struct msg),                                             \
                .decode = msg##_decode_v,                                                       \
                .size = msg##_size_v,                                                           \
                .encode = msg##_encode_v,                                                       \
                SCHEMA_FILL_FIELD(msg)                                                          \
        };                                                                                      \
        __attribute__((constructor)) static void msg##_register(void)                           \
        {                                                                                       \
                add_schema(id, &msg##_codec, NAME##_MIN_VERSION, NAME##_MAX_VERSION);           \
        }

#if __has_include("protocol/gen/offset_commit_key.h")
#include "protocol/gen/offset_commit_key.h"
SCHEMA(0, offset_commit_key, OFFSET_COMMIT_KEY)
#endif
#if __has_include("protocol/gen/offset_commit_value.h")
#include "protocol/gen/offset_commit_value.h"
SCHEMA(1, offset_commit_value, OFFSET_COMMIT_VALUE)
#endif
#if __has_include("protocol/gen/group_metadata_key.h")
#include "protocol/gen/group_metadata_key.h"
SCHEMA(2, group_metadata_key, GROUP_METADATA_KEY)
#endif
#if __has_include("protocol/gen/group_metadata_value.h")
#include "protocol/gen/group_metadata_value.h"
SCHEMA(3, group_metadata_value, GROUP_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/transaction_log_key.h")
#include "protocol/gen/transaction_log_key.h"
SCHEMA(4, transaction_log_key, TRANSACTION_LOG_KEY)
#endif
#if __has_include("protocol/gen/transaction_log_value.h")
#include "protocol/gen/transaction_log_value.h"
SCHEMA(5, transaction_log_value, TRANSACTION_LOG_VALUE)
#endif
#if __has_include("protocol/gen/consumer_group_metadata_key.h")
#include "protocol/gen/consumer_group_metadata_key.h"
SCHEMA(6, consumer_group_metadata_key, CONSUMER_GROUP_METADATA_KEY)
#endif
#if __has_include("protocol/gen/consumer_group_metadata_value.h")
#include "protocol/gen/consumer_group_metadata_value.h"
SCHEMA(7, consumer_group_metadata_value, CONSUMER_GROUP_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/consumer_group_member_metadata_key.h")
#include "protocol/gen/consumer_group_member_metadata_key.h"
SCHEMA(8, consumer_group_member_metadata_key, CONSUMER_GROUP_MEMBER_METADATA_KEY)
#endif
#if __has_include("protocol/gen/consumer_group_member_metadata_value.h")
#include "protocol/gen/consumer_group_member_metadata_value.h"
SCHEMA(9, consumer_group_member_metadata_value, CONSUMER_GROUP_MEMBER_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/consumer_group_partition_metadata_key.h")
#include "protocol/gen/consumer_group_partition_metadata_key.h"
SCHEMA(10, consumer_group_partition_metadata_key, CONSUMER_GROUP_PARTITION_METADATA_KEY)
#endif
#if __has_include("protocol/gen/consumer_group_partition_metadata_value.h")
#include "protocol/gen/consumer_group_partition_metadata_value.h"
SCHEMA(11, consumer_group_partition_metadata_value, CONSUMER_GROUP_PARTITION_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/consumer_group_current_member_assignment_key.h")
#include "protocol/gen/consumer_group_current_member_assignment_key.h"
SCHEMA(12, consumer_group_current_member_assignment_key, CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY)
#endif
#if __has_include("protocol/gen/consumer_group_current_member_assignment_value.h")
#include "protocol/gen/consumer_group_current_member_assignment_value.h"
SCHEMA(13, consumer_group_current_member_assignment_value, CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT_VALUE)
#endif
#if __has_include("protocol/gen/consumer_group_target_assignment_member_key.h")
#include "protocol/gen/consumer_group_target_assignment_member_key.h"
SCHEMA(14, consumer_group_target_assignment_member_key, CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY)
#endif
#if __has_include("protocol/gen/consumer_group_target_assignment_member_value.h")
#include "protocol/gen/consumer_group_target_assignment_member_value.h"
SCHEMA(15, consumer_group_target_assignment_member_value, CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER_VALUE)
#endif
#if __has_include("protocol/gen/consumer_group_target_assignment_metadata_key.h")
#include "protocol/gen/consumer_group_target_assignment_metadata_key.h"
SCHEMA(16, consumer_group_target_assignment_metadata_key, CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_KEY)
#endif
#if __has_include("protocol/gen/consumer_group_target_assignment_metadata_value.h")
#include "protocol/gen/consumer_group_target_assignment_metadata_value.h"
SCHEMA(17, consumer_group_target_assignment_metadata_value, CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/share_group_metadata_key.h")
#include "protocol/gen/share_group_metadata_key.h"
SCHEMA(18, share_group_metadata_key, SHARE_GROUP_METADATA_KEY)
#endif
#if __has_include("protocol/gen/share_group_metadata_value.h")
#include "protocol/gen/share_group_metadata_value.h"
SCHEMA(19, share_group_metadata_value, SHARE_GROUP_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/share_group_member_metadata_key.h")
#include "protocol/gen/share_group_member_metadata_key.h"
SCHEMA(20, share_group_member_metadata_key, SHARE_GROUP_MEMBER_METADATA_KEY)
#endif
#if __has_include("protocol/gen/share_group_member_metadata_value.h")
#include "protocol/gen/share_group_member_metadata_value.h"
SCHEMA(21, share_group_member_metadata_value, SHARE_GROUP_MEMBER_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/share_group_partition_metadata_key.h")
#include "protocol/gen/share_group_partition_metadata_key.h"
SCHEMA(22, share_group_partition_metadata_key, SHARE_GROUP_PARTITION_METADATA_KEY)
#endif
#if __has_include("protocol/gen/share_group_partition_metadata_value.h")
#include "protocol/gen/share_group_partition_metadata_value.h"
SCHEMA(23, share_group_partition_metadata_value, SHARE_GROUP_PARTITION_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/share_group_current_member_assignment_key.h")
#include "protocol/gen/share_group_current_member_assignment_key.h"
SCHEMA(24, share_group_current_member_assignment_key, SHARE_GROUP_CURRENT_MEMBER_ASSIGNMENT_KEY)
#endif
#if __has_include("protocol/gen/share_group_current_member_assignment_value.h")
#include "protocol/gen/share_group_current_member_assignment_value.h"
SCHEMA(25, share_group_current_member_assignment_value, SHARE_GROUP_CURRENT_MEMBER_ASSIGNMENT_VALUE)
#endif
#if __has_include("protocol/gen/share_group_target_assignment_member_key.h")
#include "protocol/gen/share_group_target_assignment_member_key.h"
SCHEMA(26, share_group_target_assignment_member_key, SHARE_GROUP_TARGET_ASSIGNMENT_MEMBER_KEY)
#endif
#if __has_include("protocol/gen/share_group_target_assignment_member_value.h")
#include "protocol/gen/share_group_target_assignment_member_value.h"
SCHEMA(27, share_group_target_assignment_member_value, SHARE_GROUP_TARGET_ASSIGNMENT_MEMBER_VALUE)
#endif
#if __has_include("protocol/gen/share_group_target_assignment_metadata_key.h")
#include "protocol/gen/share_group_target_assignment_metadata_key.h"
SCHEMA(28, share_group_target_assignment_metadata_key, SHARE_GROUP_TARGET_ASSIGNMENT_METADATA_KEY)
#endif
#if __has_include("protocol/gen/share_group_target_assignment_metadata_value.h")
#include "protocol/gen/share_group_target_assignment_metadata_value.h"
SCHEMA(29, share_group_target_assignment_metadata_value, SHARE_GROUP_TARGET_ASSIGNMENT_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/share_group_state_partition_metadata_key.h")
#include "protocol/gen/share_group_state_partition_metadata_key.h"
SCHEMA(30, share_group_state_partition_metadata_key, SHARE_GROUP_STATE_PARTITION_METADATA_KEY)
#endif
#if __has_include("protocol/gen/share_group_state_partition_metadata_value.h")
#include "protocol/gen/share_group_state_partition_metadata_value.h"
SCHEMA(31, share_group_state_partition_metadata_value, SHARE_GROUP_STATE_PARTITION_METADATA_VALUE)
#endif
#if __has_include("protocol/gen/consumer_protocol_subscription.h")
#include "protocol/gen/consumer_protocol_subscription.h"
SCHEMA(32, consumer_protocol_subscription, CONSUMER_PROTOCOL_SUBSCRIPTION)
#endif
#if __has_include("protocol/gen/consumer_protocol_assignment.h")
#include "protocol/gen/consumer_protocol_assignment.h"
SCHEMA(33, consumer_protocol_assignment, CONSUMER_PROTOCOL_ASSIGNMENT)
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fuzz_input in = { data, size };
        int i = fuzz_u8(&in) % SCHEMAS_MAX;
        if (!schemas[i])
                return 0;
        int16_t version = (int16_t)fuzz_u16(&in);
        int16_t span = (int16_t)(schema_max[i] - schema_min[i] + 1);
        if (version < schema_min[i] || version > schema_max[i])
                version = (int16_t)(schema_min[i] + (uint16_t)version % (uint16_t)span);

        uint8_t *bytes = fuzz_dup(in.p, in.left);
        struct arena a;
        arena_init(&a, ARENA_BYTES);
        struct kreader r;
        kr_init(&r, bytes, in.left);
        codec_decode_one(schemas[i], version, &r, &a);
        arena_free(&a);
        free(bytes);
        return 0;
}
