/*
 * dispatch.h - from a framed request to its handler, and from a handler's
 * response struct back to bytes on the connection.
 *
 * dispatch_request() decodes the request header, checks the API key and
 * version against what runnel implements, and calls the handler. Kafka's
 * rules apply: an unknown API key or an unsupported version closes the
 * connection, except ApiVersions, which answers UNSUPPORTED_VERSION in the
 * v0 body format with the full list of APIs (KIP-511) so that the client
 * can pick a version it shares with us.
 *
 * The table in dispatch.c is the single source of what ApiVersions
 * advertises: an API appears there only when its handler implements every
 * advertised version.
 */
#ifndef RUNNEL_DISPATCH_H
#define RUNNEL_DISPATCH_H

#include <stdint.h>

#include "../protocol/gen/api_table.h"
#include "request.h"

struct broker;

typedef void (*handler_fn)(struct broker *b, struct request *req, struct kreader *body);

struct handler {
        int16_t api_key;
        int16_t min_version;    /* advertised range */
        int16_t max_version;
        handler_fn handle;
};

/* The request_dispatch_fn the server is started with; ctx is the struct broker. */
void dispatch_request(struct request *req, void *ctx);

/* The handler table, ordered by api_key; count in *count. */
const struct handler *dispatch_handlers(int *count);

/*
 * Decodes the request body with the schema's codec into arena memory.
 * On malformed input the connection is closed (as Kafka does) and NULL is
 * returned; the handler then returns at once.
 */
void *dispatch_decode(struct request *req, struct kreader *body);

/*
 * Encodes msg (the response struct of req's API) after the response header,
 * appends it and completes the request. A response the version cannot carry
 * is a runnel bug: it is logged and the connection is closed.
 */
void dispatch_respond(struct request *req, const void *msg);

/* A byte range of a file that takes the place of the next `records` hole. */
struct response_range {
        int fd;
        uint64_t offset;
        uint32_t len;
        void (*release)(void *arg);     /* called once, when the range is no longer needed */
        void *release_arg;
};

/*
 * Like dispatch_respond, for a response whose `records` fields with a NULL
 * ptr and len > 0 are file ranges: files[i] fills the i-th such field in
 * encoding order. Every file's release is called exactly once, whatever
 * happens.
 */
void dispatch_respond_files(struct request *req, const void *msg, const struct response_range *files,
                            uint32_t file_count);

/* Same, encoding the body with an explicit version (ApiVersions fallback). */
void dispatch_respond_version(struct request *req, const void *msg, int16_t body_version);

#endif
