/*
 * dispatch.c - request header decoding, version policy and response framing.
 *
 * Owns the handler table: the one place that says which APIs and versions
 * runnel serves. ApiVersions advertises exactly this table.
 *
 * Invariant: every request handed to dispatch_request() is completed exactly
 * once, by a handler (now or later) or by this file closing the connection.
 */
#include "dispatch.h"

#include <errno.h>
#include <string.h>

#include "../base/logging.h"
#include "../protocol/gen/errors.h"
#include "../protocol/gen/request_header.h"
#include "../protocol/gen/response_header.h"
#include "handlers.h"

/*
 * Minimum versions stay at 0 wherever Kafka 3.9 had them: librdkafka before
 * 2.11 enables features only when an exact low version is inside the
 * advertised range (see the client notes in the project docs).
 */
static const struct handler handlers[] = {
        /* Produce v0-v2 are answered UNSUPPORTED_VERSION per partition, as
         * Kafka 4 does, but advertised: librdkafka < 2.11 compresses only
         * when Produce v0 is in range (KAFKA-18659). */
        { API_PRODUCE, 0, 11, handle_produce },
        { API_FETCH, 4, 17, handle_fetch },
        { API_LIST_OFFSETS, 0, 10, handle_list_offsets },
        { API_METADATA, 0, 12, handle_metadata },
        { API_OFFSET_COMMIT, 0, 9, handle_offset_commit },
        { API_OFFSET_FETCH, 0, 9, handle_offset_fetch },
        { API_FIND_COORDINATOR, 0, 6, handle_find_coordinator },
        { API_JOIN_GROUP, 0, 9, handle_join_group },
        { API_HEARTBEAT, 0, 4, handle_heartbeat },
        { API_LEAVE_GROUP, 0, 5, handle_leave_group },
        { API_SYNC_GROUP, 0, 5, handle_sync_group },
        { API_DESCRIBE_GROUPS, 0, 5, handle_describe_groups },
        { API_LIST_GROUPS, 0, 5, handle_list_groups },
        { API_API_VERSIONS, 0, 4, handle_api_versions },
        { API_CREATE_TOPICS, 0, 7, handle_create_topics },
        { API_DELETE_TOPICS, 0, 6, handle_delete_topics },
        { API_DELETE_RECORDS, 0, 2, handle_delete_records },
        { API_DESCRIBE_CONFIGS, 0, 4, handle_describe_configs },
        { API_ALTER_CONFIGS, 0, 2, handle_alter_configs },
        { API_CREATE_PARTITIONS, 0, 3, handle_create_partitions },
        { API_DELETE_GROUPS, 0, 2, handle_delete_groups },
        { API_INCREMENTAL_ALTER_CONFIGS, 0, 1, handle_incremental_alter_configs },
        { API_OFFSET_DELETE, 0, 0, handle_offset_delete },
        { API_OFFSET_FOR_LEADER_EPOCH, 0, 4, handle_offset_for_leader_epoch },
        { API_DESCRIBE_CLUSTER, 0, 1, handle_describe_cluster },
        { API_INIT_PRODUCER_ID, 0, 5, handle_init_producer_id },
        { API_ADD_PARTITIONS_TO_TXN, 0, 5, handle_add_partitions_to_txn },
        /* AddOffsetsToTxn v4 and TxnOffsetCommit v4+ are transaction.version 2. */
        { API_ADD_OFFSETS_TO_TXN, 0, 3, handle_add_offsets_to_txn },
        { API_TXN_OFFSET_COMMIT, 0, 3, handle_txn_offset_commit },
        /* v5 is transaction.version 2 (KIP-890 part 2): not implemented. */
        { API_END_TXN, 0, 4, handle_end_txn },
        { API_DESCRIBE_PRODUCERS, 0, 0, handle_describe_producers },
        { API_DESCRIBE_TRANSACTIONS, 0, 0, handle_describe_transactions },
        { API_LIST_TRANSACTIONS, 0, 1, handle_list_transactions },
};

#define HANDLER_COUNT ((int)(sizeof(handlers) / sizeof(handlers[0])))

const struct handler *dispatch_handlers(int *count)
{
        *count = HANDLER_COUNT;
        return handlers;
}

static const struct handler *find_handler(int16_t api_key)
{
        for (int i = 0; i < HANDLER_COUNT; i++)
                if (handlers[i].api_key == api_key)
                        return &handlers[i];
        return NULL;
}

void dispatch_request(struct request *req, void *ctx)
{
        struct broker *b = ctx;
        struct kreader r;
        kr_init(&r, req->frame, req->frame_len);

        /* The key and version come first in every header version. */
        struct kreader peek = r;
        int16_t api_key = kr_i16(&peek);
        int16_t api_version = kr_i16(&peek);
        if (peek.err) {
                log_warn("closing connection from %s: frame of %u bytes is too short for a request header",
                         request_peer(req), req->frame_len);
                request_close_connection(req);
                return;
        }

        const struct api_schema *schema = api_schema_lookup(api_key);
        int16_t header_version = schema ? api_request_header_version(api_key, api_version) : 1;
        /* A version newer than the schema knows: decode the header as the
         * newest one would be, which for flexible APIs means header v2. */
        if (schema && api_version > schema->max_version && schema->flexible_min_version >= 0)
                header_version = 2;
        struct request_header hdr;
        int hrc = request_header_decode(&r, &req->arena, header_version, &hdr);
        if (hrc < 0 && api_key == API_API_VERSIONS && header_version == 2) {
                /* An ApiVersions of a version we do not know may come with
                 * either header; KIP-511 wants it answered, so try v1. */
                kr_init(&r, req->frame, req->frame_len);
                hrc = request_header_decode(&r, &req->arena, 1, &hdr);
        }
        if (hrc < 0) {
                log_warn("closing connection from %s: malformed request header (api key %d, version %d)",
                         request_peer(req), api_key, api_version);
                request_close_connection(req);
                return;
        }
        req->api_key = api_key;
        req->api_version = api_version;
        req->correlation_id = hdr.correlation_id;

        const struct handler *h = find_handler(api_key);
        if (!h) {
                log_info("closing connection from %s: unsupported API key %d (%s) version %d",
                         request_peer(req), api_key, schema ? schema->name : "unknown", api_version);
                request_close_connection(req);
                return;
        }
        if (api_version < h->min_version || api_version > h->max_version) {
                if (api_key == API_API_VERSIONS) {
                        /* KIP-511: answer in v0 so any client can read it. */
                        handle_api_versions_unsupported(b, req);
                        return;
                }
                log_info("closing connection from %s: unsupported version %d of %s (supported %d-%d)",
                         request_peer(req), api_version, schema->name, h->min_version, h->max_version);
                request_close_connection(req);
                return;
        }
        h->handle(b, req, &r);
}

void *dispatch_decode(struct request *req, struct kreader *body)
{
        const struct api_schema *schema = api_schema_lookup(req->api_key);
        assert(schema);
        void *m = arena_alloc(&req->arena, schema->request.struct_bytes);
        if (!m) {
                log_warn("closing connection from %s: out of request memory for %s v%d",
                         request_peer(req), schema->name, req->api_version);
                request_close_connection(req);
                return NULL;
        }
        int rc = schema->request.decode(body, &req->arena, req->api_version, m);
        if (rc == 0 && kr_remaining(body) != 0) {
                /* Kafka ignores trailing bytes after a request body. */
                log_debug("%s v%d from %s has %zu trailing bytes", schema->name, req->api_version,
                          request_peer(req), kr_remaining(body));
        }
        if (rc < 0) {
                log_warn("closing connection from %s: malformed %s v%d request (%s)", request_peer(req),
                         schema->name, req->api_version, rc == -ENOMEM ? "too large to decode" : "cannot decode");
                request_close_connection(req);
                return NULL;
        }
        return m;
}

void dispatch_respond_version(struct request *req, const void *msg, int16_t body_version)
{
        const struct api_schema *schema = api_schema_lookup(req->api_key);
        assert(schema);
        int16_t hv = api_response_header_version(req->api_key, req->api_version);
        struct response_header rh;
        response_header_init(&rh);
        rh.correlation_id = req->correlation_id;

        int64_t header_bytes = response_header_size(&rh, hv);
        int64_t body_bytes = schema->response.size(msg, body_version);
        if (header_bytes < 0 || body_bytes < 0 || header_bytes + body_bytes > INT32_MAX) {
                log_error("cannot encode %s v%d response for %s (error %lld); closing the connection",
                          schema->name, body_version, request_peer(req), (long long)body_bytes);
                request_close_connection(req);
                return;
        }
        size_t total = 4 + (size_t)header_bytes + (size_t)body_bytes;
        uint8_t *buf = arena_alloc(&req->arena, total);
        if (!buf) {
                log_error("out of memory encoding %s response (%zu bytes) for %s; closing the connection",
                          schema->name, total, request_peer(req));
                request_close_connection(req);
                return;
        }
        struct kwriter w;
        kw_init(&w, buf, total);
        kw_i32(&w, (int32_t)(total - 4));
        response_header_encode(&w, &rh, hv);
        schema->response.encode(&w, msg, body_version);
        assert(w.p == buf + total);
        if (request_append(req, buf, total) < 0) {
                request_close_connection(req);
                return;
        }
        request_complete(req);
}

void dispatch_respond(struct request *req, const void *msg)
{
        dispatch_respond_version(req, msg, req->api_version);
}

static void release_files(const struct response_range *files, uint32_t from, uint32_t count)
{
        for (uint32_t i = from; i < count; i++)
                if (files[i].release)
                        files[i].release(files[i].release_arg);
}

void dispatch_respond_files(struct request *req, const void *msg, const struct response_range *files,
                            uint32_t file_count)
{
        const struct api_schema *schema = api_schema_lookup(req->api_key);
        assert(schema);
        int16_t hv = api_response_header_version(req->api_key, req->api_version);
        struct response_header rh;
        response_header_init(&rh);
        rh.correlation_id = req->correlation_id;
        uint64_t file_bytes = 0;
        for (uint32_t i = 0; i < file_count; i++)
                file_bytes += files[i].len;

        int64_t header_bytes = response_header_size(&rh, hv);
        int64_t body_bytes = schema->response.size(msg, req->api_version);
        uint32_t done_files = 0;
        if (header_bytes < 0 || body_bytes < 0 || header_bytes + body_bytes > INT32_MAX ||
            (uint64_t)body_bytes < file_bytes) {
                log_error("cannot encode %s v%d response for %s (error %lld); closing the connection",
                          schema->name, req->api_version, request_peer(req), (long long)body_bytes);
                goto fail;
        }
        size_t total = 4 + (size_t)header_bytes + (size_t)body_bytes;
        size_t mem = total - file_bytes;
        uint8_t *buf = arena_alloc(&req->arena, mem);
        struct kw_hole *holes = arena_calloc(&req->arena, file_count + 1, sizeof(*holes));
        if (!buf || !holes)
                goto fail;
        struct kwriter w;
        kw_init(&w, buf, mem);
        w.holes = holes;
        w.hole_cap = file_count;
        kw_i32(&w, (int32_t)(total - 4));
        response_header_encode(&w, &rh, hv);
        schema->response.encode(&w, msg, req->api_version);
        assert(w.p == buf + mem);
        assert(w.hole_count == file_count);

        size_t at = 0;
        for (uint32_t i = 0; i < file_count; i++) {
                assert(holes[i].len == files[i].len);
                if (holes[i].offset > at && request_append(req, buf + at, holes[i].offset - at) < 0)
                        goto fail;
                at = holes[i].offset;
                /* From here the request owns the range's release, even on failure. */
                done_files = i + 1;
                int rc = request_append_file(req, files[i].fd, files[i].offset, files[i].len,
                                             files[i].release, files[i].release_arg);
                if (rc < 0)
                        goto fail;
        }
        if (mem > at && request_append(req, buf + at, mem - at) < 0)
                goto fail;
        request_complete(req);
        return;
fail:
        release_files(files, done_files, file_count);
        request_close_connection(req);
}
