/*
 * request.c - fuzz target: Kafka framing, request and response headers and
 * every generated message body (protocol/gen/api_table.h).
 *
 * Input: one mode byte, then the bytes that mode reads.
 *
 *   mode % 3 == 0  a TCP byte stream from a client: 4-byte size-prefixed
 *                  frames, split as server/conn.c splits them and decoded
 *                  as server/dispatch.c decodes them (api key and version
 *                  peeked, header version chosen, ApiVersions' header v1
 *                  fallback, body decoded when the schema has the version).
 *                  Real client captures are seeds of this mode.
 *   mode % 3 == 1  a response: api key byte, version byte (mapped into the
 *                  schema's range when outside it), then response header
 *                  and body, as the broker sends them after the size.
 *   mode % 3 == 2  a request header alone, decoded with every version 0-2.
 *   mode bit 2     a 4 KiB arena instead of 8 MiB, to reach -ENOMEM paths.
 *
 * Property: decoding never crashes, reads out of bounds or allocates past the
 * arena's limit; whatever decodes has a size, encodes to exactly that many
 * bytes, and those bytes decode again and re-encode to identical bytes.
 */
#include <errno.h>

#include "codec.h"
#include "fuzz.h"
#include "protocol/arena.h"
#include "protocol/gen/api_table.h"
#include "protocol/gen/request_header.h"
#include "protocol/gen/response_header.h"

#define FRAME_COUNT_MAX 8
#define FRAME_BYTES_MAX (1u << 20)
#define ARENA_BYTES (8u << 20)
#define ARENA_SMALL_BYTES 4096

static size_t arena_bytes;

/* The generated codec functions of the request and response headers, in
 * msg_codec form so codec_check_round_trip serves them too. */
static int request_header_decode_v(struct kreader *r, struct arena *a, int16_t v, void *m)
{
        return request_header_decode(r, a, v, m);
}
static int64_t request_header_size_v(const void *m, int16_t v) { return request_header_size(m, v); }
static void request_header_encode_v(struct kwriter *w, const void *m, int16_t v)
{
        request_header_encode(w, m, v);
}
static const struct msg_codec request_header_codec = {
        .name = "RequestHeader",
        .struct_bytes = sizeof(struct request_header),
        .decode = request_header_decode_v,
        .size = request_header_size_v,
        .encode = request_header_encode_v,
};

static int response_header_decode_v(struct kreader *r, struct arena *a, int16_t v, void *m)
{
        return response_header_decode(r, a, v, m);
}
static int64_t response_header_size_v(const void *m, int16_t v) { return response_header_size(m, v); }
static void response_header_encode_v(struct kwriter *w, const void *m, int16_t v)
{
        response_header_encode(w, m, v);
}
static const struct msg_codec response_header_codec = {
        .name = "ResponseHeader",
        .struct_bytes = sizeof(struct response_header),
        .decode = response_header_decode_v,
        .size = response_header_size_v,
        .encode = response_header_encode_v,
};

/* One request frame (size prefix removed), as dispatch_request reads it. */
static void decode_request_frame(const uint8_t *frame, size_t len)
{
        struct arena a;
        arena_init(&a, arena_bytes);
        struct kreader r;
        kr_init(&r, frame, len);

        struct kreader peek = r;
        int16_t api_key = kr_i16(&peek);
        int16_t api_version = kr_i16(&peek);
        if (peek.err)
                goto out;
        const struct api_schema *s = api_schema_lookup(api_key);
        int16_t hv = s ? api_request_header_version(api_key, api_version) : 1;
        if (s && api_version > s->max_version && s->flexible_min_version >= 0)
                hv = 2;
        int rc = codec_decode_one(&request_header_codec, hv, &r, &a);
        if (rc < 0 && api_key == API_API_VERSIONS && hv == 2) {
                kr_init(&r, frame, len);
                rc = codec_decode_one(&request_header_codec, 1, &r, &a);
        }
        if (rc < 0 || !s || api_version < s->min_version || api_version > s->max_version)
                goto out;
        codec_decode_one(&s->request, api_version, &r, &a);
out:
        arena_free(&a);
}

/* A client's byte stream: frames until the bytes run out or one is refused. */
static void decode_stream(struct fuzz_input *in)
{
        for (int i = 0; i < FRAME_COUNT_MAX; i++) {
                if (in->left < 4)
                        return;
                int32_t size = (int32_t)((uint32_t)in->p[0] << 24 | (uint32_t)in->p[1] << 16 |
                                         (uint32_t)in->p[2] << 8 | in->p[3]);
                /* conn.c closes on a negative or oversized size; a partial
                 * frame waits for more bytes, which never come here. */
                if (size < 0 || (uint32_t)size > FRAME_BYTES_MAX || in->left - 4 < (size_t)size)
                        return;
                uint8_t *frame = fuzz_dup(in->p + 4, (size_t)size);
                in->p += 4 + (size_t)size;
                in->left -= 4 + (size_t)size;
                decode_request_frame(frame, (size_t)size);
                free(frame);
        }
}

static void decode_response(struct fuzz_input *in)
{
        const struct api_schema *s = api_schema_lookup((int16_t)(fuzz_u8(in) % (API_KEY_MAX + 1)));
        uint8_t vbyte = fuzz_u8(in);
        if (!s)
                return;
        int16_t version = vbyte;
        if (version < s->min_version || version > s->max_version)
                version = (int16_t)(s->min_version + vbyte % (s->max_version - s->min_version + 1));
        uint8_t *body = fuzz_dup(in->p, in->left);
        struct arena a;
        arena_init(&a, arena_bytes);
        struct kreader r;
        kr_init(&r, body, in->left);
        if (codec_decode_one(&response_header_codec, api_response_header_version(s->api_key, version), &r,
                       &a) == 0)
                codec_decode_one(&s->response, version, &r, &a);
        arena_free(&a);
        free(body);
}

static void decode_headers(struct fuzz_input *in)
{
        uint8_t *bytes = fuzz_dup(in->p, in->left);
        for (int16_t v = REQUEST_HEADER_MIN_VERSION; v <= REQUEST_HEADER_MAX_VERSION; v++) {
                struct arena a;
                arena_init(&a, arena_bytes);
                struct kreader r;
                kr_init(&r, bytes, in->left);
                codec_decode_one(&request_header_codec, v, &r, &a);
                arena_free(&a);
        }
        free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct fuzz_input in = { data, size };
        uint8_t mode = fuzz_u8(&in);
        arena_bytes = (mode & 4) ? ARENA_SMALL_BYTES : ARENA_BYTES;
        switch (mode % 3) {
        case 0:
                decode_stream(&in);
                break;
        case 1:
                decode_response(&in);
                break;
        default:
                decode_headers(&in);
                break;
        }
        return 0;
}
