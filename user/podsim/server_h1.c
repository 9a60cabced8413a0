/* server_h1: HTTP/1.1 for podsim's front end (see server_priv.h for the
 * split): request heads and bodies (Content-Length or chunked, 100-continue),
 * errors the server answers itself, response framing (content-length,
 * chunked, or close-delimited on HTTP/1.0), keep-alive and pipelining.
 * server.c reaches it through srv_h1_proto (the connection) and h1_sink
 * (a response).
 *
 * One request at a time per connection: h->st goes HEAD -> BODY ->
 * HANDLING, and back to HEAD at resp_end on a keep-alive connection. */
#include "podsim/server_priv.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/httpstatus.h"
#include "common/sbuf.h"

static const struct srv_sink_ops h1_sink;

/* An error the server answers itself; the connection closes behind it. */
static void h1_error(struct conn *c, int code, const char *msg)
{
    struct sbuf body;
    sbuf_init(&body);
    http_error_json(&body, code, msg);
    http1_closing_response(&c->nc.out, code, "application/json", body.data, body.len);
    sbuf_free(&body);
    c->nc.closing = 1;
    sbuf_reset(&c->nc.in);
    srv_conn_flush(c);
}

/* The request whose head (and, unless chunked, body) is in c->nc.in goes
 * to the handler. */
static void h1_dispatch(struct conn *c)
{
    struct srv_h1 *h = &c->h1;
    struct http1_request hr;
    /* Re-parse: c->nc.in may have moved since the head was first parsed. */
    http1_parse_request(c->nc.in.data, h->head_len, h->head_len, &hr);
    struct reqdata *rd = &h->rd;
    int bad = 0;
    rd->m_off = srv_rd_str(rd, hr.method, hr.method_len, 0);
    rd->p_off = srv_rd_str(rd, hr.target, hr.target_len, 0);
    bad |= rd->m_off < 0 || rd->p_off < 0;
    for (size_t k = 0; k < hr.nheaders && !bad; k++)
        bad |= srv_rd_header(rd, hr.headers[k].name, hr.headers[k].name_len,
                             hr.headers[k].value, hr.headers[k].value_len) != 0;
    size_t used = h->head_len;
    if (!h->chunked) {
        bad |= sbuf_append(&rd->body, c->nc.in.data + h->head_len,
                           (size_t)h->body_need) != 0;
        used += (size_t)h->body_need;
    }
    struct http_resp *r = bad ? NULL : srv_resp_new(c, &h1_sink, NULL, rd);
    if (!r) {
        srv_rd_free(rd);
        srv_conn_fail(c);
        return;
    }
    sbuf_consume(&c->nc.in, used);
    r->keep_alive = hr.keep_alive;
    r->minor = hr.minor;
    h->active = r;
    h->st = H1_HANDLING;
    srv_dispatch(c, r);
}

/* H1_HEAD: parses a request head. 1: go on to the body; 0: wait or
 * answered with an error. */
static int h1_head(struct conn *c)
{
    struct srv_h1 *h = &c->h1;
    struct server *s = c->s;
    if (c->nc.in.len == 0)
        return 0;
    struct http1_request hr;
    int rc = http1_parse_request(c->nc.in.data, c->nc.in.len, s->cfg.max_head, &hr);
    if (rc == HTTP1_INCOMPLETE)
        return 0;
    if (rc < 0) {
        h1_error(c, rc == HTTP1_ERR_TOO_LARGE ? 431 : rc == HTTP1_ERR_VERSION ? 505 : 400,
                 rc == HTTP1_ERR_TOO_LARGE  ? "request head too large"
                 : rc == HTTP1_ERR_VERSION ? "HTTP version not supported"
                                           : "malformed HTTP request");
        return 0;
    }
    h->head_len = (size_t)rc;
    h->chunked = hr.chunked;
    h->body_need = hr.content_length > 0 ? hr.content_length : 0;
    memset(&h->ck, 0, sizeof(h->ck));
    srv_rd_free(&h->rd);
    if ((uint64_t)h->body_need > s->cfg.max_body) {
        h1_error(c, 413, "request body too large");
        return 0;
    }
    if (hr.expect_continue && hr.minor >= 1 && (h->chunked || h->body_need > 0) &&
        c->nc.in.len == h->head_len) {
        sbuf_puts(&c->nc.out, "HTTP/1.1 100 Continue\r\n\r\n");
        srv_conn_flush(c);
    }
    h->st = H1_BODY;
    return 1;
}

/* H1_BODY, chunked: decodes what arrived into the request body. 1: the
 * body is complete; 0: wait or answered with an error. */
static int h1_chunked_body(struct conn *c)
{
    struct srv_h1 *h = &c->h1;
    struct sbuf *b = &h->rd.body;
    size_t avail = c->nc.in.len - h->head_len, n;
    if (!h->ck.done && avail == 0)
        return 0;
    if (sbuf_reserve(b, avail)) {
        srv_conn_fail(c);
        return 0;
    }
    char *raw = c->nc.in.data + h->head_len;
    long used = http1_chunked_decode(&h->ck, raw, avail, b->data + b->len, &n);
    if (used < 0) {
        h1_error(c, 400, "malformed chunked body");
        return 0;
    }
    b->len += n;
    b->data[b->len] = '\0';
    memmove(raw, raw + used, avail - (size_t)used);
    c->nc.in.len -= (size_t)used;
    if (b->len > c->s->cfg.max_body) {
        h1_error(c, 413, "request body too large");
        return 0;
    }
    return h->ck.done;
}

/* Parses and dispatches as many requests as the buffer holds, one at a
 * time (srv_proto.process). */
static void h1_process(struct conn *c)
{
    struct srv_h1 *h = &c->h1;
    while (!c->nc.dead && !c->nc.closing) {
        if (h->st == H1_HANDLING)
            return;
        if (h->st == H1_HEAD && !h1_head(c))
            return;
        /* H1_BODY */
        if (h->chunked ? !h1_chunked_body(c)
                       : c->nc.in.len - h->head_len < (size_t)h->body_need)
            return;
        h1_dispatch(c);
    }
}

/* ---- the connection (srv_proto) ---- */

static int h1_start(struct conn *c)
{
    srv_rd_init(&c->h1.rd);
    return 0;
}

/* No request open, nothing buffered. */
static int h1_idle(const struct conn *c)
{
    return !c->h1.active && !c->nc.in.len;
}

static void h1_timeout(struct conn *c)
{
    if (h1_idle(c) && c->h1.st == H1_HEAD)
        srv_conn_fail(c);
}

static int h1_holding(const struct conn *c)
{
    return c->h1.st == H1_HANDLING;
}

static void h1_fail(struct conn *c)
{
    ev_timer_cancel(c->s->l, c->h1.resume_timer);
    c->h1.resume_timer = 0;
    if (c->h1.active) {
        srv_resp_gone(c->h1.active);
        c->h1.active = NULL;
    }
}

static void h1_free(struct conn *c)
{
    srv_rd_free(&c->h1.rd);
}

const struct srv_proto srv_h1_proto = {
    .name = "http/1.1",
    .start = h1_start,
    .process = h1_process,
    .timeout = h1_timeout,
    .idle = h1_idle,
    .holding = h1_holding,
    .fail = h1_fail,
    .free = h1_free,
};

/* ---- a response (srv_sink_ops) ---- */

static void h1_resp_head(struct http_resp *r, int status, const char *ctype,
                         long long clen, const char *extra)
{
    struct conn *c = r->c;
    struct sbuf *o = &c->nc.out;
    int bodyless_status = status < 200 || status == 204 || status == 304;
    r->chunked = clen < 0 && !bodyless_status;
    if (r->chunked && r->minor == 0) {
        r->chunked = 0; /* HTTP/1.0 has no chunked: delimit by closing */
        r->keep_alive = 0;
    }
    if (bodyless_status)
        r->no_body = 1;
    r->clen = clen;
    http1_status_line(o, status);
    if (ctype)
        sbuf_printf(o, "content-type: %s\r\n", ctype);
    if (clen >= 0 && !bodyless_status)
        sbuf_printf(o, "content-length: %lld\r\n", clen);
    else if (r->chunked)
        sbuf_puts(o, "transfer-encoding: chunked\r\n");
    if (extra)
        sbuf_puts(o, extra);
    if (!r->keep_alive)
        sbuf_puts(o, "connection: close\r\n");
    else if (r->minor == 0)
        sbuf_puts(o, "connection: keep-alive\r\n");
    sbuf_puts(o, "\r\n");
    srv_conn_flush(c);
}

static int h1_resp_body(struct http_resp *r, const void *data, size_t len)
{
    struct conn *c = r->c;
    int rc = 0;
    if (r->clen >= 0 && (long long)len > r->clen - r->written) {
        len = (size_t)(r->clen - r->written); /* never break the framing */
        rc = -EMSGSIZE;
    }
    if (len == 0)
        return rc;
    if (r->chunked)
        sbuf_printf(&c->nc.out, "%zx\r\n", len);
    sbuf_append(&c->nc.out, data, len);
    if (r->chunked)
        sbuf_puts(&c->nc.out, "\r\n");
    r->written += (long long)len;
    srv_conn_flush(c);
    return r->c ? rc : -EPIPE;
}

/* Parses pipelined requests left in c->nc.in by a resp_end made outside the
 * conn's own read path. */
static void resume_cb(struct ev_loop *l, void *arg)
{
    struct conn *c = arg;
    c->h1.resume_timer = 0;
    c->busy++;
    h1_process(c);
    srv_conn_release(c);
}

/* Finishes (abort: cuts off) the exchange; h->active is cleared. */
static void h1_resp_finish(struct http_resp *r, int abort)
{
    struct conn *c = r->c;
    struct srv_h1 *h = &c->h1;
    if (!abort && r->chunked && !r->no_body)
        sbuf_puts(&c->nc.out, "0\r\n\r\n");
    if (!r->no_body && !r->chunked && r->clen >= 0 && r->written < r->clen)
        r->keep_alive = 0; /* short body: the client cannot find the end */
    h->active = NULL;
    if (abort || !r->keep_alive)
        c->nc.closing = 1;
    else
        h->st = H1_HEAD;
    srv_conn_flush(c);
    /* Pipelined requests already buffered: when we are inside this conn's
     * own parsing loop (busy > 1) it picks them up; otherwise parse them
     * from a zero-delay timer, so the handler is never re-entered from
     * inside the caller's resp_end (which may be iterating its own lists). */
    if (!c->nc.dead && c->busy == 1 && h->st == H1_HEAD && !c->nc.closing &&
        c->nc.in.len && !h->resume_timer)
        h->resume_timer = ev_timer_at(c->s->l, ev_now_ns(), resume_cb, c);
    else if (!c->nc.dead && h->st == H1_HEAD && !c->nc.in.len)
        srv_conn_idle(c);
}

static void h1_resp_end(struct http_resp *r)
{
    h1_resp_finish(r, 0);
}

static void h1_resp_abort(struct http_resp *r)
{
    h1_resp_finish(r, 1);
}

/* One response at a time: the connection's output is r's. */
static size_t h1_resp_pending(const struct http_resp *r)
{
    return netconn_pending(&r->c->nc);
}

static const struct srv_sink_ops h1_sink = {
    .head = h1_resp_head,
    .body = h1_resp_body,
    .end = h1_resp_end,
    .abort = h1_resp_abort,
    .pending = h1_resp_pending,
};
