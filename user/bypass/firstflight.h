/* firstflight: what a bypass worker reads of a new connection before it
 * picks a pod (issue 12, ../shared/BYPASS.md): the first request, HTTP/1.1
 * or h2c with prior knowledge, from the connection's bytes in order (the
 * worker's TCP endpoint reassembles them and keeps them for the replay to
 * the pod). No I/O, no DPDK: the workers in dpdk/ call it, and so do the
 * tests and a fuzz target.
 *
 * Call ff_parse with everything received so far (the same buffer, grown);
 * it resumes where it stopped. It answers
 *   FF_MORE     the first request is not complete yet;
 *   FF_DONE     it is: r holds what routing needs, and every body byte was
 *               passed to the body callback once, in order (the worker feeds
 *               core/bodyscan and the fingerprint with them);
 *   FF_HAND_UP  the connection is not for the bypass (r->cause says why):
 *               kvgated takes it over as a kernel socket and answers it as on
 *               its socket path (404, 405, 413, 431, 400, or serves it).
 *
 * What is spliced is what kvgated's socket path would forward to a pod
 * (user/gateway/exchange.c x_classify, client_h1.c, client_h2.c): POST to
 * /v1/chat/completions or /v1/completions (a ?query allowed); HTTP/1.1 with
 * a Content-Length within max_body, no Transfer-Encoding, Upgrade or
 * Expect, the head within max_head (user/common/http1.c parses it, the
 * socket path's parser); or h2c: the preface, SETTINGS first, then the
 * first stream's HEADERS (+ CONTINUATION; HPACK through nghttp2's
 * inflater, as the socket path's nghttp2 session decodes it) and DATA to
 * END_STREAM, frames at most 16,384 bytes (the default the worker keeps),
 * the header list within max_head (RFC 9113 size: name + value + 32), no
 * connection-specific field, a Content-Length that matches the DATA.
 * Other streams' frames before the first one ends are decoded (HPACK state)
 * and otherwise passed over: the whole connection goes to the pod. */
#ifndef KVGATE_BYPASS_FIRSTFLIGHT_H
#define KVGATE_BYPASS_FIRSTFLIGHT_H

#include <stddef.h>
#include <stdint.h>

enum ff_status { FF_MORE = 0, FF_DONE = 1, FF_HAND_UP = 2 };
enum ff_proto { FF_PROTO_UNKNOWN = 0, FF_PROTO_H1 = 1, FF_PROTO_H2C = 2 };

enum ff_cause {
    FF_C_NONE = 0,
    FF_C_MALFORMED,        /* bad syntax (kvgated: 400; h2: a connection error) */
    FF_C_NOT_INFERENCE,    /* another method or path: kvgated answers it */
    FF_C_HTTP10,           /* HTTP/1.0 */
    FF_C_NO_LENGTH,        /* h1 POST without Content-Length */
    FF_C_CHUNKED,          /* Transfer-Encoding */
    FF_C_UPGRADE,          /* Upgrade (h2c upgrade included) */
    FF_C_EXPECT,           /* Expect: 100-continue */
    FF_C_HEAD_TOO_LARGE,   /* head / header list over max_head (431) */
    FF_C_BODY_TOO_LARGE,   /* body over max_body (413) */
    FF_C_H2_PROTOCOL,      /* h2 framing: bad preface, frame order or size, PUSH_PROMISE */
    FF_C_H2_RESET,         /* RST_STREAM or GOAWAY before the request ended */
    FF_C_MAX
};
const char *ff_cause_name(enum ff_cause c);

struct ff_cfg {
    size_t max_head;       /* limits.max_header_bytes (65,536) */
    uint64_t max_body;     /* limits.max_body_bytes (32 MiB) */
    /* each body byte of the first request, once, in order */
    void (*body)(void *ctx, const uint8_t *p, size_t n);
    void *ctx;
};

struct ff_request {
    enum ff_proto proto;
    enum ff_cause cause;   /* FF_HAND_UP: why */
    char method[16];
    char path[256];        /* as sent, ?query included */
    char session[128];     /* x-session-id ("" none) */
    char tenant[128];      /* x-gateway-inference-fairness-id, else x-llm-d-... */
    int64_t content_length;/* -1 absent (h2 only) */
    uint64_t body_bytes;   /* passed to the body callback */
    uint32_t stream_id;    /* h2: the first stream */
    size_t end;            /* FF_DONE: bytes of the flight up to the end of the
                            * first request (h1: head + body; h2: through the frame
                            * that ended its stream) */
};

struct ff;
/* NULL on ENOMEM. */
struct ff *ff_new(const struct ff_cfg *cfg);
void ff_free(struct ff *f);
/* buf[0..len): every byte of the connection so far (len never shrinks).
 * After FF_DONE or FF_HAND_UP it answers the same again. */
enum ff_status ff_parse(struct ff *f, const uint8_t *buf, size_t len);
const struct ff_request *ff_request(const struct ff *f);

#endif
