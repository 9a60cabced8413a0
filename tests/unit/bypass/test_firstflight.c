/* Unit tests for user/bypass/firstflight.c: the bypass worker's parse of a
 * connection's first request. Each request is fed grown one byte at a time
 * (every split), and must give the same answer and the same body as fed
 * whole, and as the socket path's parsers: http1_parse_request for
 * HTTP/1.1, an nghttp2 server session (as kvgated's h2 side) for h2c bytes
 * an nghttp2 client session wrote. Then each cause of a hand-up. */
#include "bypass/firstflight.h"
#include "common/http1.h"
#include "harness.h"

#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    uint8_t *b;
    size_t n, cap;
};

static void sink_cb(void *ctx, const uint8_t *p, size_t n)
{
    struct sink *s = ctx;
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->b = realloc(s->b, s->cap);
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static struct ff_cfg cfg_with(struct sink *s)
{
    return (struct ff_cfg){.max_head = 65536, .max_body = 32u << 20, .body = sink_cb, .ctx = s};
}

/* Feeds buf grown a byte at a time; the status at the end, and checks
 * that FF_MORE held until the last needed byte. */
static enum ff_status feed_bytewise(const uint8_t *buf, size_t len, struct sink *s,
                                    struct ff_request *out)
{
    struct ff_cfg c = cfg_with(s);
    struct ff *f = ff_new(&c);
    enum ff_status st = FF_MORE;
    size_t at = 0;
    for (size_t i = 1; i <= len && st == FF_MORE; i++) {
        st = ff_parse(f, buf, i);
        at = i;
    }
    if (st == FF_DONE)
        CHECK_EQ(ff_request(f)->end, at); /* done exactly at its last byte */
    CHECK_EQ(ff_parse(f, buf, len), st); /* and stays so */
    *out = *ff_request(f);
    ff_free(f);
    return st;
}

static enum ff_status feed_whole(const uint8_t *buf, size_t len, struct sink *s,
                                 struct ff_request *out)
{
    struct ff_cfg c = cfg_with(s);
    struct ff *f = ff_new(&c);
    enum ff_status st = ff_parse(f, buf, len);
    *out = *ff_request(f);
    ff_free(f);
    return st;
}

static char *json_body(size_t size)
{
    /* openai clients put "model" after "messages" */
    char *b = malloc(size + 200);
    int k = sprintf(b, "{\"messages\":[{\"role\":\"user\",\"content\":\"");
    for (; (size_t)k < size; k++)
        b[k] = (char)('a' + k % 26);
    sprintf(b + k, "\"}],\"model\":\"llama\",\"stream\":true}");
    return b;
}

/* ---- HTTP/1.1 ---- */

TEST(h1_every_split_equals_whole_and_the_socket_parser)
{
    size_t sizes[] = {0, 100, 20000, 300000};
    for (int t = 0; t < 4; t++) {
        char *body = json_body(sizes[t]);
        size_t bl = strlen(body);
        char head[512];
        int hl = snprintf(head, sizeof(head),
                          "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw\r\n"
                          "Content-Type: application/json\r\nX-Session-Id: s-42\r\n"
                          "x-llm-d-inference-fairness-id: team-b\r\n"
                          "Content-Length: %zu\r\n\r\n",
                          bl);
        static const char next[] = "POST /v1/completions HTTP/1.1\r\nHost: g"; /* pipelined */
        size_t len = (size_t)hl + bl + sizeof(next) - 1;
        uint8_t *buf = malloc(len);
        memcpy(buf, head, (size_t)hl);
        memcpy(buf + hl, body, bl);
        memcpy(buf + hl + bl, next, sizeof(next) - 1);
        struct sink s1 = {0}, s2 = {0};
        struct ff_request r1, r2;
        /* byte by byte is quadratic in the head: fine for these sizes */
        CHECK_EQ(feed_bytewise(buf, len, &s1, &r1), FF_DONE);
        CHECK_EQ(feed_whole(buf, len, &s2, &r2), FF_DONE);
        CHECK_EQ(r1.proto, FF_PROTO_H1);
        CHECK_EQ(r1.end, (size_t)hl + bl);
        CHECK_EQ(r2.end, r1.end);
        CHECK_EQ(s1.n, bl);
        CHECK(s1.n == s2.n && !memcmp(s1.b, body, bl) && !memcmp(s2.b, body, bl));
        CHECK_STR(r1.path, "/v1/chat/completions?x=1");
        CHECK_STR(r1.session, "s-42");
        CHECK_STR(r1.tenant, "team-b");
        /* the socket path's parser sees the same head */
        struct http1_request q;
        CHECK_EQ(http1_parse_request((char *)buf, len, 65536, &q), hl);
        CHECK_EQ(q.content_length, (int64_t)bl);
        CHECK_EQ(r1.content_length, q.content_length);
        free(s1.b), free(s2.b), free(buf), free(body);
    }
}

static enum ff_cause h1_cause(const char *req)
{
    struct sink s = {0};
    struct ff_request r;
    struct ff_cfg c = cfg_with(&s);
    c.max_head = 1024;
    c.max_body = 1000;
    struct ff *f = ff_new(&c);
    enum ff_status st = ff_parse(f, (const uint8_t *)req, strlen(req));
    r = *ff_request(f);
    ff_free(f);
    free(s.b);
    return st == FF_HAND_UP ? r.cause : FF_C_MAX; /* FF_C_MAX: not handed up */
}

TEST(h1_hand_ups)
{
    CHECK_EQ(h1_cause("GET /health HTTP/1.1\r\n\r\n"), FF_C_NOT_INFERENCE);
    CHECK_EQ(h1_cause("GET /v1/chat/completions HTTP/1.1\r\n\r\n"), FF_C_NOT_INFERENCE);
    CHECK_EQ(h1_cause("POST /admin/faults HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
             FF_C_NOT_INFERENCE);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}"),
             FF_C_HTTP10);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
             FF_C_CHUNKED);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                      "HTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n\r\n{}"),
             FF_C_UPGRADE);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nExpect: 100-continue\r\n"
                      "Content-Length: 2\r\n\r\n"),
             FF_C_EXPECT);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n"), FF_C_NO_LENGTH);
    /* the body limit, crossed by one; at it: not handed up */
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nContent-Length: 1001\r\n\r\n"),
             FF_C_BODY_TOO_LARGE);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"),
             FF_C_MAX);
    CHECK_EQ(h1_cause("POST /v1/completions HTTP/1.1\r\nBad Name: x\r\n\r\n"), FF_C_MALFORMED);
    /* the head limit, crossed */
    char big[2100];
    int k = sprintf(big, "POST /v1/completions HTTP/1.1\r\nX-Pad: ");
    memset(big + k, 'p', 1200);
    strcpy(big + k + 1200, "\r\nContent-Length: 2\r\n\r\n{}");
    CHECK_EQ(h1_cause(big), FF_C_HEAD_TOO_LARGE);
}

/* ---- h2c ---- */

struct h2out {
    uint8_t *b;
    size_t n, cap;
};

static ssize_t send_cb(nghttp2_session *s, const uint8_t *d, size_t n, int fl, void *u)
{
    (void)s, (void)fl;
    struct h2out *o = u;
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 1024;
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, d, n);
    o->n += n;
    return (ssize_t)n;
}

struct src {
    const char *p;
    size_t n, off;
};

static ssize_t read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                             uint32_t *fl, nghttp2_data_source *ds, void *u)
{
    (void)s, (void)sid, (void)u;
    struct src *x = ds->ptr;
    size_t n = x->n - x->off < len ? x->n - x->off : len;
    memcpy(buf, x->p + x->off, n);
    x->off += n;
    if (x->off == x->n)
        *fl |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* What an nghttp2 client writes for one request (with a second stream's
 * HEADERS after it when two is set). */
static struct h2out h2_request(const char *method, const char *path, const char *body,
                               int with_cl, int two)
{
    struct h2out o = {0};
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_send_callback(cb, send_cb);
    nghttp2_session *s;
    nghttp2_session_client_new(&s, cb, &o);
    nghttp2_submit_settings(s, NGHTTP2_FLAG_NONE, NULL, 0);
    char cl[24];
    snprintf(cl, sizeof(cl), "%zu", body ? strlen(body) : 0);
#define NV(n, v) {(uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE}
    nghttp2_nv hdrs[] = {NV(":method", method), NV(":scheme", "http"),
                         NV(":authority", "gw"), NV(":path", path),
                         NV("content-type", "application/json"),
                         NV("x-session-id", "sess-7"),
                         NV("x-gateway-inference-fairness-id", "team-a"),
                         NV("content-length", cl)};
    struct src sr = {body, body ? strlen(body) : 0, 0};
    nghttp2_data_provider dp = {.source.ptr = &sr, .read_callback = read_cb};
    nghttp2_submit_request(s, NULL, hdrs, with_cl ? 8 : 7, body ? &dp : NULL, NULL);
    if (two)
        nghttp2_submit_request(s, NULL, hdrs, 7, NULL, NULL);
    while (nghttp2_session_want_write(s))
        if (nghttp2_session_send(s))
            break;
    nghttp2_session_del(s);
    nghttp2_session_callbacks_del(cb);
    return o;
}

/* The reference: an nghttp2 server session's view of the same bytes. */
struct ref {
    char method[16], path[256], session[128];
    struct sink body;
    int ended;
};

static int ref_header(nghttp2_session *s, const nghttp2_frame *fr, const uint8_t *n, size_t nl,
                      const uint8_t *v, size_t vl, uint8_t fl, void *u)
{
    (void)s, (void)fl;
    struct ref *r = u;
    if (fr->hd.stream_id != 1)
        return 0;
    char *dst = nl == 7 && !memcmp(n, ":method", 7)        ? r->method
                : nl == 5 && !memcmp(n, ":path", 5)        ? r->path
                : nl == 12 && !memcmp(n, "x-session-id", 12) ? r->session
                                                              : NULL;
    if (dst)
        snprintf(dst, 128, "%.*s", (int)vl, v);
    return 0;
}

static int ref_data(nghttp2_session *s, uint8_t fl, int32_t sid, const uint8_t *d, size_t n,
                    void *u)
{
    (void)s, (void)fl;
    if (sid == 1)
        sink_cb(&((struct ref *)u)->body, d, n);
    return 0;
}

static int ref_frame(nghttp2_session *s, const nghttp2_frame *fr, void *u)
{
    (void)s;
    if (fr->hd.stream_id == 1 && (fr->hd.flags & NGHTTP2_FLAG_END_STREAM))
        ((struct ref *)u)->ended = 1;
    return 0;
}

static void reference(const struct h2out *o, struct ref *r)
{
    memset(r, 0, sizeof(*r));
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(cb, ref_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, ref_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, ref_frame);
    nghttp2_session *s;
    nghttp2_session_server_new(&s, cb, r);
    CHECK(nghttp2_session_mem_recv(s, o->b, o->n) == (ssize_t)o->n);
    nghttp2_session_del(s);
    nghttp2_session_callbacks_del(cb);
}

TEST(h2c_every_split_equals_whole_and_an_nghttp2_server)
{
    size_t sizes[] = {0, 50, 20000, 60000}; /* within the initial window (65,535) */
    for (int t = 0; t < 4; t++) {
        char *body = json_body(sizes[t]);
        struct h2out o = h2_request("POST", "/v1/chat/completions", body, t != 1, t == 2);
        struct ref ref;
        reference(&o, &ref);
        CHECK(ref.ended);
        struct sink s1 = {0}, s2 = {0};
        struct ff_request r1, r2;
        CHECK_EQ(feed_bytewise(o.b, o.n, &s1, &r1), FF_DONE);
        CHECK_EQ(feed_whole(o.b, o.n, &s2, &r2), FF_DONE);
        CHECK_EQ(r1.proto, FF_PROTO_H2C);
        CHECK_EQ(r1.stream_id, 1);
        CHECK_EQ(r1.end, r2.end);
        CHECK_STR(r1.method, ref.method);
        CHECK_STR(r1.path, ref.path);
        CHECK_STR(r1.session, ref.session);
        CHECK_STR(r1.tenant, "team-a");
        CHECK_EQ(s1.n, ref.body.n);
        CHECK(s1.n == s2.n && !memcmp(s1.b, ref.body.b, s1.n) && !memcmp(s2.b, s1.b, s1.n));
        CHECK_EQ(s1.n, strlen(body));
        free(s1.b), free(s2.b), free(ref.body.b), free(o.b), free(body);
    }
}

static enum ff_cause h2_cause(const uint8_t *b, size_t n)
{
    struct sink s = {0};
    struct ff_cfg c = cfg_with(&s);
    c.max_head = 4096;
    c.max_body = 100000;
    struct ff *f = ff_new(&c);
    enum ff_status st = ff_parse(f, b, n);
    enum ff_cause cause = ff_request(f)->cause;
    ff_free(f);
    free(s.b);
    return st == FF_HAND_UP ? cause : FF_C_MAX;
}

/* Appends one frame. */
static size_t frame(uint8_t *o, uint8_t type, uint8_t flags, uint32_t sid, const void *p,
                    size_t n)
{
    o[0] = (uint8_t)(n >> 16), o[1] = (uint8_t)(n >> 8), o[2] = (uint8_t)n;
    o[3] = type, o[4] = flags;
    o[5] = (uint8_t)(sid >> 24), o[6] = (uint8_t)(sid >> 16), o[7] = (uint8_t)(sid >> 8),
    o[8] = (uint8_t)sid;
    memcpy(o + 9, p, n);
    return 9 + n;
}

/* A header block for these fields (nghttp2's deflater, no dynamic table). */
static size_t block(uint8_t *out, const char *const *kv, int n)
{
    nghttp2_hd_deflater *d;
    nghttp2_hd_deflate_new(&d, 0);
    nghttp2_nv nv[16];
    for (int i = 0; i < n; i++)
        nv[i] = (nghttp2_nv){(uint8_t *)kv[2 * i], (uint8_t *)kv[2 * i + 1], strlen(kv[2 * i]),
                             strlen(kv[2 * i + 1]), NGHTTP2_NV_FLAG_NONE};
    ssize_t r = nghttp2_hd_deflate_hd(d, out, 60000, nv, (size_t)n);
    nghttp2_hd_deflate_del(d);
    return r < 0 ? 0 : (size_t)r;
}

static const char *const GOOD[] = {":method", "POST", ":scheme", "http", ":path",
                                   "/v1/completions", ":authority", "gw"};

TEST(h2c_hand_ups_and_frame_shapes)
{
    static uint8_t b[200000];
    uint8_t hb[70000];
    size_t n, h;
    const uint8_t data[] = "{\"model\":\"m\",\"prompt\":\"x\"}";
#define START() (n = 24, memcpy(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24), \
                 n += frame(b + n, 4, 0, 0, "", 0))
    /* padded, prioritised HEADERS then a CONTINUATION; padded DATA */
    START();
    h = block(hb, GOOD, 4);
    uint8_t hp[600];
    hp[0] = 3; /* pad length */
    memset(hp + 1, 0, 5); /* priority */
    memcpy(hp + 6, hb, 10);
    memset(hp + 16, 0, 3);
    n += frame(b + n, 1, 0x8 | 0x20, 1, hp, 19);
    n += frame(b + n, 9, 0x4, 1, hb + 10, h - 10);
    uint8_t dp[64];
    dp[0] = 2;
    memcpy(dp + 1, data, sizeof(data) - 1);
    dp[sizeof(data)] = dp[sizeof(data) + 1] = 0;
    n += frame(b + n, 0, 0x8 | 0x1, 1, dp, sizeof(data) + 2);
    CHECK_EQ(h2_cause(b, n), FF_C_MAX); /* done, not handed up */
    /* another method or path: kvgated's */
    const char *get[] = {":method", "GET", ":scheme", "http", ":path", "/v1/models"};
    START();
    h = block(hb, get, 3);
    n += frame(b + n, 1, 0x5, 1, hb, h);
    CHECK_EQ(h2_cause(b, n), FF_C_NOT_INFERENCE);
    /* a connection-specific field; an uppercase name; pseudo after regular */
    const char *conn[] = {":method", "POST", ":path", "/v1/completions", "connection", "close"};
    START();
    n += frame(b + n, 1, 0x5, 1, hb, block(hb, conn, 3));
    CHECK_EQ(h2_cause(b, n), FF_C_MALFORMED);
    const char *upper[] = {":method", "POST", ":path", "/v1/completions", "X-Session-Id", "s"};
    START();
    n += frame(b + n, 1, 0x5, 1, hb, block(hb, upper, 3));
    CHECK_EQ(h2_cause(b, n), FF_C_MALFORMED);
    const char *late[] = {":method", "POST", "x-a", "1", ":path", "/v1/completions"};
    START();
    n += frame(b + n, 1, 0x5, 1, hb, block(hb, late, 3));
    CHECK_EQ(h2_cause(b, n), FF_C_MALFORMED);
    /* content-length against the DATA */
    const char *cl[] = {":method", "POST", ":path", "/v1/completions", "content-length", "5"};
    START();
    n += frame(b + n, 1, 0x4, 1, hb, block(hb, cl, 3));
    n += frame(b + n, 0, 0x1, 1, data, 4);
    CHECK_EQ(h2_cause(b, n), FF_C_MALFORMED);
    /* the body limit crossed; the header list limit crossed */
    START();
    n += frame(b + n, 1, 0x4, 1, hb, block(hb, GOOD, 4));
    static uint8_t zeros[16384];
    for (int i = 0; i < 7; i++)
        n += frame(b + n, 0, 0, 1, zeros, 16384); /* 114,688 > 100,000 */
    CHECK_EQ(h2_cause(b, n), FF_C_BODY_TOO_LARGE);
    char pad[5000];
    memset(pad, 'v', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = 0;
    const char *bigh[] = {":method", "POST", ":path", "/v1/completions", "x-pad", pad};
    START();
    h = block(hb, bigh, 3);
    n += frame(b + n, 1, 0x5, 1, hb, h);
    CHECK_EQ(h2_cause(b, n), FF_C_HEAD_TOO_LARGE);
    /* framing: a bad preface, no SETTINGS first, an oversized frame,
     * something between HEADERS and its CONTINUATION, RST_STREAM, PUSH */
    memcpy(b, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", 24);
    CHECK_EQ(h2_cause(b, 24), FF_C_H2_PROTOCOL);
    n = 24, memcpy(b, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    n += frame(b + n, 1, 0x5, 1, hb, block(hb, GOOD, 4));
    CHECK_EQ(h2_cause(b, n), FF_C_H2_PROTOCOL);
    START();
    b[n] = 0, b[n + 1] = 0x40, b[n + 2] = 0x01; /* 16,385 */
    memset(b + n + 3, 0, 6);
    CHECK_EQ(h2_cause(b, n + 9), FF_C_H2_PROTOCOL);
    START();
    h = block(hb, GOOD, 4);
    n += frame(b + n, 1, 0, 1, hb, 5);
    n += frame(b + n, 6, 0, 0, "12345678", 8);
    CHECK_EQ(h2_cause(b, n), FF_C_H2_PROTOCOL);
    START();
    n += frame(b + n, 1, 0x4, 1, hb, block(hb, GOOD, 4));
    n += frame(b + n, 3, 0, 1, "\0\0\0\x8", 4);
    CHECK_EQ(h2_cause(b, n), FF_C_H2_RESET);
    START();
    n += frame(b + n, 5, 0x4, 1, "\0\0\0\x2", 4);
    CHECK_EQ(h2_cause(b, n), FF_C_H2_PROTOCOL);
    /* not yet complete: FF_MORE (FF_C_MAX here), never a hand-up */
    START();
    CHECK_EQ(h2_cause(b, n), FF_C_MAX);
    CHECK_EQ(h2_cause(b, 10), FF_C_MAX);
    CHECK_EQ(h2_cause((const uint8_t *)"PR", 2), FF_C_MAX);
}

int main(void)
{
    RUN(h1_every_split_equals_whole_and_the_socket_parser);
    RUN(h1_hand_ups);
    RUN(h2c_every_split_equals_whole_and_an_nghttp2_server);
    RUN(h2c_hand_ups_and_frame_shapes);
    return harness_done();
}
