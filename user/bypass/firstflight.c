/* firstflight: see firstflight.h. */
#include "bypass/firstflight.h"

#include <nghttp2/nghttp2.h>
#include <string.h>

#include "common/alloc.h"
#include "common/http1.h"

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_FRAME_MAX 16384 /* SETTINGS_MAX_FRAME_SIZE's default: the worker keeps it */

enum { T_DATA = 0, T_HEADERS = 1, T_PRIORITY = 2, T_RST = 3, T_SETTINGS = 4, T_PUSH = 5,
       T_PING = 6, T_GOAWAY = 7, T_WINDOW = 8, T_CONT = 9 };
enum { F_END_STREAM = 0x1, F_ACK = 0x1, F_END_HEADERS = 0x4, F_PADDED = 0x8, F_PRIORITY = 0x20 };

struct ff {
    struct ff_cfg cfg;
    struct ff_request r;
    enum ff_status status;
    size_t pos;                  /* h2: bytes of complete frames processed; h1: body delivered up to */
    /* h1 */
    size_t head_len;
    /* h2 */
    nghttp2_hd_inflater *inf;
    int settings_seen, headers_done;
    uint32_t cont_stream;        /* a header block continues on this stream (0: none) */
    int cont_ours, cont_end_stream;
    size_t hlist;                /* header list size so far (ours) */
    int pseudo_done;             /* a regular field seen (pseudo ones must come first) */
};

static const char *const CAUSES[FF_C_MAX] = {
    "none", "malformed", "not_inference", "http10", "no_length", "chunked", "upgrade",
    "expect", "head_too_large", "body_too_large", "h2_protocol", "h2_reset"};

const char *ff_cause_name(enum ff_cause c)
{
    return (unsigned)c < FF_C_MAX ? CAUSES[c] : "?";
}

struct ff *ff_new(const struct ff_cfg *cfg)
{
    struct ff *f = kv_calloc(1, sizeof(*f));
    if (!f)
        return NULL;
    f->cfg = *cfg;
    if (!f->cfg.max_head)
        f->cfg.max_head = 65536;
    f->r.content_length = -1;
    return f;
}

void ff_free(struct ff *f)
{
    if (!f)
        return;
    if (f->inf)
        nghttp2_hd_inflate_del(f->inf);
    kv_free(f);
}

const struct ff_request *ff_request(const struct ff *f)
{
    return &f->r;
}

static enum ff_status hand_up(struct ff *f, enum ff_cause c)
{
    f->r.cause = c;
    return f->status = FF_HAND_UP;
}

static void copy(char *dst, size_t cap, const void *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* POST to an inference path (the query aside), as x_classify routes. */
static int inference(const char *method, const char *path, size_t plen)
{
    const char *q = memchr(path, '?', plen);
    size_t n = q ? (size_t)(q - path) : plen;
    return !strcmp(method, "POST") &&
           ((n == 20 && !memcmp(path, "/v1/chat/completions", 20)) ||
            (n == 15 && !memcmp(path, "/v1/completions", 15)));
}

/* The routing headers, from either protocol: 1 when taken. */
static int routing_field(struct ff_request *r, const char *name, size_t nl, const char *v,
                         size_t vl)
{
    if (http1_name_eq(name, nl, "x-session-id"))
        copy(r->session, sizeof(r->session), v, vl);
    else if (http1_name_eq(name, nl, "x-gateway-inference-fairness-id"))
        copy(r->tenant, sizeof(r->tenant), v, vl);
    else if (http1_name_eq(name, nl, "x-llm-d-inference-fairness-id")) {
        if (!r->tenant[0])
            copy(r->tenant, sizeof(r->tenant), v, vl);
    } else
        return 0;
    return 1;
}

/* Passes body bytes to the callback. */
static void body(struct ff *f, const uint8_t *p, size_t n)
{
    if (!n)
        return;
    f->r.body_bytes += n;
    if (f->cfg.body)
        f->cfg.body(f->cfg.ctx, p, n);
}

/* ---- HTTP/1.1 ---- */

static enum ff_status parse_h1(struct ff *f, const uint8_t *buf, size_t len)
{
    struct ff_request *r = &f->r;
    if (!f->head_len) {
        struct http1_request q;
        int rc = http1_parse_request((const char *)buf, len, f->cfg.max_head, &q);
        if (rc == HTTP1_INCOMPLETE)
            return FF_MORE;
        if (rc == HTTP1_ERR_TOO_LARGE)
            return hand_up(f, FF_C_HEAD_TOO_LARGE);
        if (rc < 0)
            return hand_up(f, FF_C_MALFORMED);
        copy(r->method, sizeof(r->method), q.method, q.method_len);
        copy(r->path, sizeof(r->path), q.target, q.target_len);
        if (q.method_len >= sizeof(r->method) || q.target_len >= sizeof(r->path) ||
            !inference(r->method, q.target, q.target_len))
            return hand_up(f, FF_C_NOT_INFERENCE);
        if (q.minor != 1)
            return hand_up(f, FF_C_HTTP10);
        if (q.chunked)
            return hand_up(f, FF_C_CHUNKED);
        if (q.expect_continue)
            return hand_up(f, FF_C_EXPECT);
        for (size_t i = 0; i < q.nheaders; i++) {
            const struct http1_header *h = &q.headers[i];
            if (http1_name_eq(h->name, h->name_len, "upgrade") ||
                http1_name_eq(h->name, h->name_len, "transfer-encoding"))
                return hand_up(f, http1_name_eq(h->name, h->name_len, "upgrade")
                                      ? FF_C_UPGRADE
                                      : FF_C_CHUNKED);
            routing_field(r, h->name, h->name_len, h->value, h->value_len);
        }
        if (q.content_length < 0)
            return hand_up(f, FF_C_NO_LENGTH);
        if (f->cfg.max_body && (uint64_t)q.content_length > f->cfg.max_body)
            return hand_up(f, FF_C_BODY_TOO_LARGE);
        r->content_length = q.content_length;
        f->head_len = (size_t)rc;
        f->pos = f->head_len;
    }
    size_t end = f->head_len + (size_t)r->content_length;
    size_t upto = len < end ? len : end;
    if (upto > f->pos) {
        body(f, buf + f->pos, upto - f->pos);
        f->pos = upto;
    }
    if (f->pos < end)
        return FF_MORE;
    r->end = end;
    return f->status = FF_DONE;
}

/* ---- h2c ---- */

static uint32_t be24(const uint8_t *p) { return (uint32_t)p[0] << 16 | p[1] << 8 | p[2]; }
static uint32_t be31(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]) &
           0x7fffffffu;
}

/* One field of the first stream's header block. */
static enum ff_cause h2_field(struct ff *f, const nghttp2_nv *nv)
{
    struct ff_request *r = &f->r;
    const char *n = (const char *)nv->name, *v = (const char *)nv->value;
    f->hlist += nv->namelen + nv->valuelen + 32;
    if (f->hlist > f->cfg.max_head)
        return FF_C_HEAD_TOO_LARGE;
    for (size_t i = 0; i < nv->namelen; i++)
        if (n[i] >= 'A' && n[i] <= 'Z')
            return FF_C_MALFORMED; /* RFC 9113 8.2.1: lowercase only */
    if (nv->namelen && n[0] == ':') {
        if (f->pseudo_done)
            return FF_C_MALFORMED;
        if (nv->namelen == 7 && !memcmp(n, ":method", 7)) {
            if (r->method[0] || nv->valuelen >= sizeof(r->method))
                return FF_C_MALFORMED;
            copy(r->method, sizeof(r->method), v, nv->valuelen);
        } else if (nv->namelen == 5 && !memcmp(n, ":path", 5)) {
            if (r->path[0] || !nv->valuelen)
                return FF_C_MALFORMED;
            if (nv->valuelen >= sizeof(r->path))
                return FF_C_NOT_INFERENCE;
            copy(r->path, sizeof(r->path), v, nv->valuelen);
        } else if (!(nv->namelen == 7 && !memcmp(n, ":scheme", 7)) &&
                   !(nv->namelen == 10 && !memcmp(n, ":authority", 10))) {
            return FF_C_MALFORMED; /* :protocol (extended CONNECT) or unknown */
        }
        return FF_C_NONE;
    }
    f->pseudo_done = 1;
    static const char *const conn[] = {"connection", "keep-alive", "proxy-connection",
                                       "transfer-encoding", "upgrade", NULL};
    for (int i = 0; conn[i]; i++)
        if (http1_name_eq(n, nv->namelen, conn[i]))
            return FF_C_MALFORMED; /* RFC 9113 8.2.2 */
    if (http1_name_eq(n, nv->namelen, "te") &&
        !(nv->valuelen == 8 && !memcmp(v, "trailers", 8)))
        return FF_C_MALFORMED;
    if (http1_name_eq(n, nv->namelen, "content-length")) {
        int64_t cl = 0;
        if (!nv->valuelen || nv->valuelen > 18 || r->content_length >= 0)
            return FF_C_MALFORMED;
        for (size_t i = 0; i < nv->valuelen; i++) {
            if (v[i] < '0' || v[i] > '9')
                return FF_C_MALFORMED;
            cl = cl * 10 + (v[i] - '0');
        }
        r->content_length = cl;
        return FF_C_NONE;
    }
    routing_field(r, n, nv->namelen, v, nv->valuelen);
    return FF_C_NONE;
}

/* A header block fragment: decoded whatever its stream (HPACK state is
 * shared); fields kept only for ours. */
static enum ff_cause h2_block(struct ff *f, const uint8_t *p, size_t n, int last, int ours)
{
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(f->inf, &nv, &fl, p, n, last);
        if (rv < 0)
            return FF_C_MALFORMED;
        p += rv;
        n -= (size_t)rv;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            if (ours) {
                enum ff_cause c = h2_field(f, &nv);
                if (c)
                    return c;
            }
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(f->inf);
            return FF_C_NONE;
        }
        if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && n == 0)
            return FF_C_NONE;
    }
}

/* Our stream's header block ended: is it a request the bypass takes? */
static enum ff_cause h2_request_checked(struct ff *f)
{
    struct ff_request *r = &f->r;
    if (!r->method[0] || !r->path[0])
        return FF_C_MALFORMED;
    if (!inference(r->method, r->path, strlen(r->path)))
        return FF_C_NOT_INFERENCE;
    if (f->cfg.max_body && r->content_length > 0 &&
        (uint64_t)r->content_length > f->cfg.max_body)
        return FF_C_BODY_TOO_LARGE;
    f->headers_done = 1;
    return FF_C_NONE;
}

/* The first stream ended (END_STREAM). */
static enum ff_status h2_end(struct ff *f, size_t end)
{
    if (f->r.content_length >= 0 && (uint64_t)f->r.content_length != f->r.body_bytes)
        return hand_up(f, FF_C_MALFORMED); /* RFC 9113 8.1.1 */
    f->r.end = end;
    return f->status = FF_DONE;
}

/* Payload of a padded frame: the pad length byte and the padding off. */
static int unpad(const uint8_t **p, size_t *n, uint8_t flags, size_t extra)
{
    size_t pad = 0;
    if (flags & F_PADDED) {
        if (*n < 1)
            return -1;
        pad = (*p)[0];
        (*p)++, (*n)--;
    }
    if (*n < pad + extra)
        return -1;
    *p += extra;
    *n -= pad + extra;
    return 0;
}

/* One complete frame at buf (9 + len bytes). */
static enum ff_status h2_frame(struct ff *f, const uint8_t *fr, size_t flen, size_t end)
{
    struct ff_request *r = &f->r;
    uint8_t type = fr[3], flags = fr[4];
    uint32_t sid = be31(fr + 5);
    const uint8_t *p = fr + 9;
    size_t n = flen;
    if (!f->settings_seen) {
        if (type != T_SETTINGS || (flags & F_ACK) || sid || n % 6)
            return hand_up(f, FF_C_H2_PROTOCOL); /* RFC 9113 3.4 */
        f->settings_seen = 1;
        return FF_MORE;
    }
    if (f->cont_stream && (type != T_CONT || sid != f->cont_stream))
        return hand_up(f, FF_C_H2_PROTOCOL); /* 6.10: nothing between */
    switch (type) {
    case T_SETTINGS:
        if (sid || ((flags & F_ACK) ? n != 0 : n % 6))
            return hand_up(f, FF_C_H2_PROTOCOL);
        return FF_MORE;
    case T_PING:
        return sid || n != 8 ? hand_up(f, FF_C_H2_PROTOCOL) : FF_MORE;
    case T_WINDOW:
        return n != 4 ? hand_up(f, FF_C_H2_PROTOCOL) : FF_MORE;
    case T_PRIORITY:
        return !sid || n != 5 ? hand_up(f, FF_C_H2_PROTOCOL) : FF_MORE;
    case T_RST:
    case T_GOAWAY:
        return hand_up(f, FF_C_H2_RESET);
    case T_PUSH:
        return hand_up(f, FF_C_H2_PROTOCOL); /* clients never push */
    case T_HEADERS: {
        if (!sid || !(sid & 1))
            return hand_up(f, FF_C_H2_PROTOCOL);
        if (unpad(&p, &n, flags, (flags & F_PRIORITY) ? 5 : 0))
            return hand_up(f, FF_C_H2_PROTOCOL);
        int ours = !r->stream_id || sid == r->stream_id;
        if (ours && f->headers_done)
            return hand_up(f, FF_C_MALFORMED); /* trailers: not for the bypass */
        if (!r->stream_id)
            r->stream_id = sid;
        enum ff_cause c = h2_block(f, p, n, (flags & F_END_HEADERS) != 0, ours);
        if (c)
            return hand_up(f, c);
        if (!(flags & F_END_HEADERS)) {
            f->cont_stream = sid;
            f->cont_ours = ours;
            f->cont_end_stream = (flags & F_END_STREAM) != 0;
            return FF_MORE;
        }
        if (!ours)
            return FF_MORE;
        if ((c = h2_request_checked(f)))
            return hand_up(f, c);
        return (flags & F_END_STREAM) ? h2_end(f, end) : FF_MORE;
    }
    case T_CONT: {
        if (!f->cont_stream)
            return hand_up(f, FF_C_H2_PROTOCOL);
        int ours = f->cont_ours, es = f->cont_end_stream;
        enum ff_cause c = h2_block(f, p, n, (flags & F_END_HEADERS) != 0, ours);
        if (c)
            return hand_up(f, c);
        if (!(flags & F_END_HEADERS))
            return FF_MORE;
        f->cont_stream = 0;
        if (!ours)
            return FF_MORE;
        if ((c = h2_request_checked(f)))
            return hand_up(f, c);
        return es ? h2_end(f, end) : FF_MORE;
    }
    case T_DATA:
        if (!sid)
            return hand_up(f, FF_C_H2_PROTOCOL);
        if (unpad(&p, &n, flags, 0))
            return hand_up(f, FF_C_H2_PROTOCOL);
        if (sid != r->stream_id)
            return r->stream_id && sid < r->stream_id ? hand_up(f, FF_C_H2_PROTOCOL)
                                                      : FF_MORE; /* another stream's */
        if (!f->headers_done)
            return hand_up(f, FF_C_H2_PROTOCOL);
        if ((f->cfg.max_body && r->body_bytes + n > f->cfg.max_body) ||
            (r->content_length >= 0 && r->body_bytes + n > (uint64_t)r->content_length))
            return hand_up(f, r->content_length >= 0 &&
                                      r->body_bytes + n > (uint64_t)r->content_length
                                  ? FF_C_MALFORMED
                                  : FF_C_BODY_TOO_LARGE);
        body(f, p, n);
        return (flags & F_END_STREAM) ? h2_end(f, end) : FF_MORE;
    default:
        return FF_MORE; /* unknown frame types are ignored (RFC 9113 4.1) */
    }
}

static enum ff_status parse_h2(struct ff *f, const uint8_t *buf, size_t len)
{
    if (!f->pos) {
        if (len < H2_PREFACE_LEN)
            return FF_MORE;
        if (memcmp(buf, H2_PREFACE, H2_PREFACE_LEN))
            return hand_up(f, FF_C_H2_PROTOCOL);
        if (!f->inf && nghttp2_hd_inflate_new(&f->inf))
            return FF_MORE; /* out of memory: try again with the next bytes */
        f->pos = H2_PREFACE_LEN;
    }
    while (len - f->pos >= 9) {
        const uint8_t *fr = buf + f->pos;
        uint32_t flen = be24(fr);
        if (flen > H2_FRAME_MAX)
            return hand_up(f, FF_C_H2_PROTOCOL); /* FRAME_SIZE_ERROR */
        if (len - f->pos - 9 < flen)
            return FF_MORE;
        size_t end = f->pos + 9 + flen;
        enum ff_status s = h2_frame(f, fr, flen, end);
        f->pos = end;
        if (s != FF_MORE)
            return s;
    }
    return FF_MORE;
}

enum ff_status ff_parse(struct ff *f, const uint8_t *buf, size_t len)
{
    if (f->status != FF_MORE)
        return f->status;
    if (f->r.proto == FF_PROTO_UNKNOWN) {
        if (!len)
            return FF_MORE;
        /* "PRI " starts the h2 preface and no HTTP/1.1 request kvgated
         * serves: it decides (the rest of the preface is then checked) */
        size_t n = len < 4 ? len : 4;
        if (!memcmp(buf, H2_PREFACE, n)) {
            if (n < 4)
                return FF_MORE;
            f->r.proto = FF_PROTO_H2C;
        } else {
            f->r.proto = FF_PROTO_H1;
        }
    }
    return f->r.proto == FF_PROTO_H1 ? parse_h1(f, buf, len) : parse_h2(f, buf, len);
}
