/* Unit tests for user/common/h2srv.c: a real nghttp2 client session talks
 * to it through the netconn's buffers (no socket: the client's bytes are
 * put into nc.in, the server's frames taken from nc.out). */
#include "common/h2srv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/ev.h"
#include "common/netconn.h"
#include "common/sbuf.h"
#include "harness.h"

/* ---- the server-side owner ---- */

struct stream {
    int32_t id;
    char method[16], path[64];
    struct sbuf body;
    int heads, requests;
    int answered;
};

struct owner {
    struct netconn nc;
    struct h2srv h2;
    struct stream st[8];
    int nst, opens, closes, fails;
    uint32_t last_err;
    int in_ng_seen;       /* in_ng was set inside a callback */
    int refuse_open;      /* open answers NULL */
    int bad_header;       /* header answers -1 */
    int bad_data;         /* data answers -1 */
    int bad_request;      /* request answers -1 */
};

static void o_fail(struct netconn *nc)
{
    ((struct owner *)nc)->fails++;
    netconn_close(nc);
}

static void o_input(struct netconn *nc) {}

static const struct netconn_ops ops = { .input = o_input, .fail = o_fail };

static void *st_open(void *ud, int32_t id)
{
    struct owner *o = ud;
    o->opens++;
    o->in_ng_seen |= o->h2.in_ng > 0;
    if (o->refuse_open || o->nst == 8)
        return NULL;
    struct stream *s = &o->st[o->nst++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    sbuf_init(&s->body);
    return s;
}

static int st_header(void *ud, void *st, const char *n, size_t nl, const char *v,
                     size_t vl)
{
    struct stream *s = st;
    if (((struct owner *)ud)->bad_header)
        return -1;
    if (nl == 7 && !memcmp(n, ":method", 7) && vl < sizeof(s->method))
        memcpy(s->method, v, vl);
    if (nl == 5 && !memcmp(n, ":path", 5) && vl < sizeof(s->path))
        memcpy(s->path, v, vl);
    return 0;
}

static int st_data(void *ud, void *st, const char *p, size_t n)
{
    struct owner *o = ud;
    struct stream *s = st;
    if (o->bad_data)
        return -1;
    return sbuf_append(&s->body, p, n) ? -1 : 0;
}

static void st_head(void *ud, void *st)
{
    ((struct stream *)st)->heads++;
}

/* Answers 204 at once. */
static int st_request(void *ud, void *st)
{
    struct owner *o = ud;
    struct stream *s = st;
    s->requests++;
    if (o->bad_request)
        return -1;
    nghttp2_nv nv[] = { { (uint8_t *)":status", (uint8_t *)"204", 7, 3,
                          NGHTTP2_NV_FLAG_NONE } };
    if (nghttp2_submit_response(o->h2.ng, s->id, nv, 1, NULL) == 0)
        s->answered = 1;
    return 0;
}

static void st_close(void *ud, void *st, uint32_t err)
{
    struct owner *o = ud;
    o->closes++;
    o->last_err = err;
    sbuf_free(&((struct stream *)st)->body);
}

static const struct h2srv_callbacks cbs = {
    st_open, st_header, st_data, st_head, st_request, st_close, NULL,
};

static const struct h2srv_settings settings = {
    .max_streams = 100, .max_header_list = 65536, .out_soft = 256u << 10,
};

/* ---- the client ---- */

struct client {
    nghttp2_session *ng;
    int settings_seen, status, stream_closed, rst;
};

static int c_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct client *c = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK))
        c->settings_seen = 1;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        c->rst = 1;
    return 0;
}

static int c_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *n,
                    size_t nl, const uint8_t *v, size_t vl, uint8_t fl, void *ud)
{
    struct client *c = ud;
    if (nl == 7 && !memcmp(n, ":status", 7))
        c->status = atoi((const char *)v);
    return 0;
}

static int c_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    ((struct client *)ud)->stream_closed++;
    return 0;
}

static void client_init(struct client *c)
{
    memset(c, 0, sizeof(*c));
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, c_frame);
    nghttp2_session_callbacks_set_on_header_callback(cb, c_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, c_close);
    nghttp2_session_client_new(&c->ng, cb, c);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, NULL, 0);
}

/* Client -> server: everything the client has to say goes into nc.in. */
static void to_server(struct client *c, struct owner *o)
{
    const uint8_t *d;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(c->ng, &d)) > 0)
        sbuf_append(&o->nc.in, d, (size_t)n);
}

/* Server -> client: the source serialises frames into nc.out. */
static int to_client(struct owner *o, struct client *c)
{
    int rc = o->nc.src ? o->nc.src->fill(o->nc.src_self, &o->nc) : 0;
    if (o->nc.out.len)
        nghttp2_session_mem_recv(c->ng, (const uint8_t *)o->nc.out.data, o->nc.out.len);
    sbuf_reset(&o->nc.out);
    return rc;
}

static struct ev_loop *g_l;

static void owner_init(struct owner *o)
{
    memset(o, 0, sizeof(*o));
    netconn_init(&o->nc, g_l, -1, &ops);
}

static void owner_free(struct owner *o)
{
    h2srv_free(&o->h2);
    netconn_free(&o->nc);
}

static int32_t get(struct client *c, const char *path, int with_body)
{
    nghttp2_nv nv[] = {
        { (uint8_t *)":method", (uint8_t *)(with_body ? "POST" : "GET"), 7,
          with_body ? 4 : 3, NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)":authority", (uint8_t *)"x", 10, 1, NGHTTP2_NV_FLAG_NONE },
        { (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NONE },
    };
    if (!with_body)
        return nghttp2_submit_request(c->ng, NULL, nv, 4, NULL, NULL);
    /* HEADERS without END_STREAM, then DATA with it */
    int32_t id = nghttp2_submit_headers(c->ng, NGHTTP2_FLAG_NONE, -1, NULL, nv, 4,
                                        NULL);
    return id;
}

/* ---- tests ---- */

/* A DATA frame with END_STREAM, by hand, into nc.in. */
static void data_frame(struct owner *o, int32_t id, const char *p, uint8_t n)
{
    uint8_t hd[9] = { 0, 0, n, NGHTTP2_DATA, NGHTTP2_FLAG_END_STREAM,
                      (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8),
                      (uint8_t)id };
    sbuf_append(&o->nc.in, hd, sizeof(hd));
    sbuf_append(&o->nc.in, p, n);
}

TEST(sniff)
{
    static const char pre[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    CHECK_EQ(h2srv_sniff(NULL, 0), H2SRV_MORE);
    CHECK_EQ(h2srv_sniff(pre, 1), H2SRV_MORE);
    CHECK_EQ(h2srv_sniff(pre, 23), H2SRV_MORE);
    CHECK_EQ(h2srv_sniff(pre, 24), H2SRV_PREFACE);
    CHECK_EQ(h2srv_sniff("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12", 27), H2SRV_PREFACE);
    CHECK_EQ(h2srv_sniff("GET / HTTP/1.1\r\n", 16), H2SRV_NOT_H2);
    CHECK_EQ(h2srv_sniff("PRX", 3), H2SRV_NOT_H2);
    CHECK_EQ(h2srv_sniff("P", 1), H2SRV_MORE);
}

TEST(request_and_response)
{
    struct owner o;
    struct client c;
    owner_init(&o);
    client_init(&c);
    CHECK_EQ(h2srv_init(&o.h2, &o.nc, &cbs, &o, &settings), 0);
    CHECK(o.nc.src != NULL); /* the session is the connection's source */
    CHECK_EQ(to_client(&o, &c), 0);
    CHECK(c.settings_seen);
    int32_t id = get(&c, "/v1/models", 0);
    to_server(&c, &o);
    CHECK_EQ(h2srv_recv(&o.h2), 0);
    CHECK_EQ(o.nc.in.len, 0); /* all consumed */
    CHECK_EQ(o.opens, 1);
    CHECK(o.in_ng_seen);
    CHECK_EQ(o.h2.in_ng, 0);
    CHECK_STR(o.st[0].method, "GET");
    CHECK_STR(o.st[0].path, "/v1/models");
    CHECK_EQ(o.st[0].id, id);
    CHECK_EQ(o.st[0].heads, 0); /* END_STREAM on HEADERS: no body follows */
    CHECK_EQ(o.st[0].requests, 1);
    CHECK_EQ(to_client(&o, &c), 0);
    CHECK_EQ(c.status, 204);
    CHECK_EQ(c.stream_closed, 1);
    CHECK_EQ(o.closes, 1); /* closed on the server once the answer went */
    CHECK_EQ(o.last_err, NGHTTP2_NO_ERROR);
    CHECK_EQ(o.fails, 0);
    nghttp2_session_del(c.ng);
    owner_free(&o);
    CHECK(o.nc.src == NULL); /* detached */
}

TEST(request_with_body)
{
    struct owner o;
    struct client c;
    owner_init(&o);
    client_init(&c);
    h2srv_init(&o.h2, &o.nc, &cbs, &o, &settings);
    int32_t id = get(&c, "/v1/completions", 1);
    to_server(&c, &o);
    h2srv_recv(&o.h2);
    CHECK_EQ(o.st[0].heads, 1);
    CHECK_EQ(o.st[0].requests, 0);
    data_frame(&o, id, "hello", 5); /* DATA with END_STREAM */
    CHECK_EQ(h2srv_recv(&o.h2), 0);
    CHECK_EQ(o.st[0].body.len, 5);
    CHECK(o.st[0].body.data && memcmp(o.st[0].body.data, "hello", 5) == 0);
    CHECK_EQ(o.st[0].requests, 1);
    to_client(&o, &c);
    CHECK_EQ(c.status, 204);
    nghttp2_session_del(c.ng);
    owner_free(&o);
}

/* What -1 (or NULL from open) does, callback by callback. */
TEST(callback_errors)
{
    struct owner o;
    struct client c;
    owner_init(&o);
    client_init(&c);
    h2srv_init(&o.h2, &o.nc, &cbs, &o, &settings);

    o.refuse_open = 1; /* open: the stream is reset */
    get(&c, "/a", 0);
    to_server(&c, &o);
    CHECK_EQ(h2srv_recv(&o.h2), 0);
    CHECK_EQ(o.opens, 1);
    CHECK_EQ(o.nst, 0);
    to_client(&o, &c);
    CHECK(c.rst);
    CHECK_EQ(o.closes, 0); /* nothing of the owner's to close */
    o.refuse_open = 0;

    o.bad_header = 1; /* header: the stream is reset */
    c.rst = 0;
    get(&c, "/b", 0);
    to_server(&c, &o);
    CHECK_EQ(h2srv_recv(&o.h2), 0);
    CHECK_EQ(o.st[0].requests, 0);
    to_client(&o, &c);
    CHECK(c.rst);
    CHECK_EQ(o.closes, 1);
    CHECK(o.last_err != NGHTTP2_NO_ERROR);
    o.bad_header = 0;

    o.bad_data = 1; /* data: nghttp2 1.52 goes on (the owner keeps state) */
    int32_t id = get(&c, "/c", 1);
    to_server(&c, &o);
    h2srv_recv(&o.h2);
    data_frame(&o, id, "x", 1);
    CHECK_EQ(h2srv_recv(&o.h2), 0);
    CHECK_EQ(o.st[1].requests, 1);
    o.bad_data = 0;

    o.bad_request = 1; /* request: a session error */
    get(&c, "/d", 0);
    to_server(&c, &o);
    CHECK_EQ(h2srv_recv(&o.h2), -1);

    nghttp2_session_del(c.ng);
    owner_free(&o);
}

TEST(protocol_error)
{
    struct owner o;
    owner_init(&o);
    h2srv_init(&o.h2, &o.nc, &cbs, &o, &settings);
    sbuf_puts(&o.nc.in, "GET / HTTP/1.1\r\n\r\n"); /* not a preface */
    CHECK_EQ(h2srv_recv(&o.h2), -1);
    owner_free(&o);
}

TEST(goaway_finishes)
{
    struct owner o;
    struct client c;
    owner_init(&o);
    client_init(&c);
    h2srv_init(&o.h2, &o.nc, &cbs, &o, &settings);
    to_server(&c, &o);
    h2srv_recv(&o.h2);
    to_client(&o, &c);
    CHECK(!o.nc.src->finished(o.nc.src_self));
    nghttp2_session_terminate_session(o.h2.ng, NGHTTP2_NO_ERROR);
    to_client(&o, &c); /* GOAWAY out */
    CHECK(o.nc.src->finished(o.nc.src_self));
    nghttp2_session_del(c.ng);
    owner_free(&o);
}

TEST(dead_connection_stops_callbacks)
{
    struct owner o;
    struct client c;
    owner_init(&o);
    client_init(&c);
    h2srv_init(&o.h2, &o.nc, &cbs, &o, &settings);
    get(&c, "/x", 0);
    to_server(&c, &o);
    o.nc.dead = 1; /* as if torn down: nothing reaches the owner */
    h2srv_recv(&o.h2);
    CHECK_EQ(o.opens, 0);
    o.nc.dead = 0;
    nghttp2_session_del(c.ng);
    owner_free(&o);
}

TEST(soft_cap_on_frames)
{
    struct owner o;
    owner_init(&o);
    struct h2srv_settings tiny = settings;
    tiny.out_soft = 1; /* one serialisation, then stop */
    h2srv_init(&o.h2, &o.nc, &cbs, &o, &tiny);
    sbuf_puts(&o.nc.out, "x"); /* already at the cap: nothing serialised */
    CHECK_EQ(o.nc.src->fill(o.nc.src_self, &o.nc), 0);
    CHECK_EQ(o.nc.out.len, 1);
    sbuf_reset(&o.nc.out);
    CHECK_EQ(o.nc.src->fill(o.nc.src_self, &o.nc), 0);
    CHECK(o.nc.out.len > 0); /* SETTINGS */
    owner_free(&o);
}

int main(void)
{
    g_l = ev_new();
    RUN(sniff);
    RUN(request_and_response);
    RUN(request_with_body);
    RUN(callback_errors);
    RUN(protocol_error);
    RUN(goaway_finishes);
    RUN(dead_connection_stops_callbacks);
    RUN(soft_cap_on_frames);
    ev_free(g_l);
    return harness_done();
}
