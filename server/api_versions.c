/*
 * api_versions.c - ApiVersions: how clients learn what runnel speaks.
 *
 * The answer is built from dispatch's handler table, so an API is advertised
 * exactly when a handler for it exists. No feature flags are finalised: a
 * client reading none assumes the oldest behaviour of each feature
 * (transaction version 1, classic groups), which is what runnel implements.
 */
#include <ctype.h>

#include "../base/logging.h"
#include "../protocol/gen/api_versions.h"
#include "../protocol/gen/errors.h"
#include "handlers.h"

/* KIP-511: client software name and version must match
 * [a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])? */
static bool is_valid_software_token(struct kstr s)
{
        if (s.len <= 0)
                return false;
        for (int32_t i = 0; i < s.len; i++) {
                unsigned char c = (unsigned char)s.ptr[i];
                bool edge = i == 0 || i == s.len - 1;
                if (isalnum(c))
                        continue;
                if (!edge && (c == '-' || c == '.'))
                        continue;
                return false;
        }
        return true;
}

static int fill_api_keys(struct request *req, struct api_versions_response *resp)
{
        int count;
        const struct handler *h = dispatch_handlers(&count);
        resp->api_keys.items = arena_calloc(&req->arena, (size_t)count, sizeof(*resp->api_keys.items));
        if (!resp->api_keys.items)
                return -1;
        resp->api_keys.count = count;
        for (int i = 0; i < count; i++) {
                api_versions_response_api_version_init(&resp->api_keys.items[i]);
                resp->api_keys.items[i].api_key = h[i].api_key;
                resp->api_keys.items[i].min_version = h[i].min_version;
                resp->api_keys.items[i].max_version = h[i].max_version;
        }
        return 0;
}

void handle_api_versions(struct broker *b, struct request *req, struct kreader *body)
{
        (void)b;
        struct api_versions_request *rq = dispatch_decode(req, body);
        if (!rq)
                return;
        struct api_versions_response resp;
        api_versions_response_init(&resp);
        if (req->api_version >= 3 && (!is_valid_software_token(rq->client_software_name) ||
                                      !is_valid_software_token(rq->client_software_version))) {
                resp.error_code = KAFKA_INVALID_REQUEST;
                dispatch_respond(req, &resp);
                return;
        }
        if (fill_api_keys(req, &resp) < 0) {
                request_close_connection(req);
                return;
        }
        dispatch_respond(req, &resp);
}

/*
 * KIP-511: an ApiVersions newer than ours is answered in v0 with
 * UNSUPPORTED_VERSION and our ApiVersions range, which is all a client needs
 * to retry (librdkafka takes our max for key 18, kafkajs steps down). Kafka 4
 * lists only that key, and so do we.
 */
void handle_api_versions_unsupported(struct broker *b, struct request *req)
{
        (void)b;
        struct api_versions_response resp;
        api_versions_response_init(&resp);
        resp.error_code = KAFKA_UNSUPPORTED_VERSION;
        int count;
        const struct handler *h = dispatch_handlers(&count);
        struct api_versions_response_api_version *self = arena_alloc(&req->arena, sizeof(*self));
        if (!self) {
                request_close_connection(req);
                return;
        }
        api_versions_response_api_version_init(self);
        for (int i = 0; i < count; i++) {
                if (h[i].api_key != API_API_VERSIONS)
                        continue;
                self->api_key = h[i].api_key;
                self->min_version = h[i].min_version;
                self->max_version = h[i].max_version;
        }
        resp.api_keys.count = 1;
        resp.api_keys.items = self;
        dispatch_respond_version(req, &resp, 0);
}
