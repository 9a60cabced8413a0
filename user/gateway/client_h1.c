/* client_h1: the HTTP/1.1 client side of a connection. One request at a
 * time: the head is parsed (http1_parse_request), the body (Content-Length
 * or chunked) is buffered into the exchange, then the exchange is
 * dispatched (relay.c); pipelined bytes wait in c->nc.in (reading pauses
 * at NETCONN_IN_PAUSE, but EOF and resets are still noticed) until the
 * answer has been queued. `Upgrade: h2c` hands the connection to
 * client_h2.c once the body is in, the request becoming stream 1.
 *
 * Deadlines: CT_REQ from the first byte of a request until its body is
 * complete (header_timeout_ms, 408), CT_IDLE between requests
 * (idle_timeout_ms, silent close). */
#include "gateway/client_h1.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/http1.h"
#include "common/httpstatus.h"
#include "gateway/client_h2.h"
#include "gateway/conn.h"
#include "gateway/gwmetrics.h"

enum { H1_HEAD, H1_BODY, H1_WAIT };

/* One request and its answer: the exchange, and HTTP/1.1's framing. */
struct h1x {
    struct xreq x;
    struct cconn *c;
    int minor;                  /* HTTP/1.<minor> */
    int chunked_resp;           /* the answer goes out chunked */
    struct grave grave;
};

struct h1conn {
    int st;                     /* H1_HEAD, H1_BODY, H1_WAIT */
    struct h1x *cur;            /* the request being read or served */
    struct http1_chunked ck;
    uint64_t body_left;         /* Content-Length bytes still to read */
    int chunked;
    int upgrade;                /* Upgrade: h2c once the body is in */
    struct sbuf h2c_settings;   /* its HTTP2-Settings value (base64url) */
    struct grave grave;         /* freed after the callback that ended it */
};

static const struct xsink_ops h1_sink;
static const struct cconn_ops h1_ops;

static void h1conn_destroy(struct grave *g)
{
    struct h1conn *h = GRAVE_OWNER(g, struct h1conn, grave);
    sbuf_free(&h->h2c_settings);
    kv_free(h);
}

static struct h1x *h1x_of(struct xreq *x)
{
    return (struct h1x *)((char *)x - offsetof(struct h1x, x));
}

static struct h1conn *H(struct cconn *c)
{
    return c->proto;
}

void h1_reject(struct cconn *c, int status, const char *msg)
{
    struct sbuf body;
    sbuf_init(&body);
    http_error_json(&body, status, msg);
    http1_closing_response(&c->nc.out, status, "application/json", body.data, body.len);
    sbuf_free(&body);
    c->nc.closing = 1;
    sbuf_reset(&c->nc.in);
    cconn_flush(c);
}

/* ---- the answer (the exchange's sink) ---- */

static void s_head(struct xreq *x, int status, const char *hdrs, size_t hlen, int64_t clen)
{
    struct h1x *hx = h1x_of(x);
    struct sbuf *o = &hx->c->nc.out;
    int bodyless = status < 200 || status == 204 || status == 304;
    hx->chunked_resp = 0;
    if (hx->c->wc->draining)
        x->keep_alive = 0; /* graceful drain: the client reconnects elsewhere */
    http1_status_line(o, status);
    sbuf_append(o, hdrs, hlen);
    if (bodyless) {
        /* no framing */
    } else if (x->is_head) {
        /* the length GET would have (RFC 9110 9.3.2), never a body */
        if (clen >= 0)
            sbuf_printf(o, "content-length: %lld\r\n", (long long)clen);
    } else if (clen >= 0) {
        sbuf_printf(o, "content-length: %lld\r\n", (long long)clen);
    } else if (hx->minor >= 1) {
        hx->chunked_resp = 1;
        sbuf_puts(o, "transfer-encoding: chunked\r\n");
    } else {
        x->keep_alive = 0; /* HTTP/1.0: delimited by closing */
    }
    if (!x->keep_alive)
        sbuf_puts(o, "connection: close\r\n");
    else if (hx->minor == 0)
        sbuf_puts(o, "connection: keep-alive\r\n");
    sbuf_puts(o, "\r\n");
}

static void s_body(struct xreq *x, const char *p, size_t n)
{
    struct h1x *hx = h1x_of(x);
    struct sbuf *o = &hx->c->nc.out;
    if (hx->chunked_resp)
        sbuf_printf(o, "%zx\r\n", n);
    sbuf_append(o, p, n);
    if (hx->chunked_resp)
        sbuf_puts(o, "\r\n");
}

static void s_end(struct xreq *x)
{
    struct h1x *hx = h1x_of(x);
    if (hx->chunked_resp)
        sbuf_puts(&hx->c->nc.out, "0\r\n\r\n");
}

static void s_abort(struct xreq *x)
{
    struct h1x *hx = h1x_of(x);
    x->keep_alive = 0;
    cconn_fail(hx->c); /* the framing cannot say "cut": the connection ends */
}

static size_t s_pending(const struct xreq *x)
{
    return netconn_pending(&h1x_of((struct xreq *)x)->c->nc);
}

static void s_flush(struct xreq *x)
{
    cconn_flush(h1x_of(x)->c);
}

static void h1x_destroy(struct grave *g)
{
    struct h1x *hx = GRAVE_OWNER(g, struct h1x, grave);
    x_fini(&hx->x);
    kv_free(hx);
}

/* The exchange is over: the connection goes on to the next request, or
 * closes (not keep-alive; or draining with nothing pipelined behind an
 * answer that promised keep-alive). */
static void s_detach(struct xreq *x)
{
    struct h1x *hx = h1x_of(x);
    struct cconn *c = hx->c;
    int keep = x->keep_alive && !c->nc.dead && !(c->wc->draining && !c->nc.in.len);
    if (!c->nc.dead && H(c)->cur == hx)
        H(c)->cur = NULL;
    gy_bury(&c->wc->gy, &hx->grave, h1x_destroy);
    if (c->nc.dead || H(c)->cur)
        return; /* torn down, or an upgrade handed the connection on */
    if (!keep) {
        c->nc.closing = 1;
        sbuf_reset(&c->nc.in);
    } else {
        H(c)->st = H1_HEAD;
        if (c->nc.in.len) { /* a pipelined request is already arriving */
            c->t_first = ev_now_ns();
            cconn_set_timer(c, CT_REQ);
            cconn_kick(c);
        } else {
            cconn_set_timer(c, CT_IDLE);
            /* An idle keep-alive connection holds no buffers: the read
             * buffer grows to NETCONN_READ_CHUNK on the first read, and
             * 10,000 idle clients would otherwise keep ~8 KB each resident
             * (bench/overhead measures it). Both are allocated again by the
             * next read or reply. */
            sbuf_free(&c->nc.in);
            cconn_flush(c);
            if (!c->nc.dead && !c->nc.out.len)
                sbuf_free(&c->nc.out);
            return;
        }
    }
    cconn_flush(c);
}

static const struct xsink_ops h1_sink = {
    s_head, s_body, s_end, s_abort, s_pending, s_flush, s_detach,
};

/* ---- the request ---- */

/* The request head is complete: builds the exchange. 0, or -1 when the
 * connection was answered / failed. */
static int begin(struct cconn *c, const struct http1_request *hr)
{
    struct gw *g = c->wc->g;
    struct h1conn *h = H(c);
    struct h1x *hx = kv_calloc(1, sizeof(*hx));
    if (!hx) {
        cconn_fail(c);
        return -1;
    }
    struct xreq *x = &hx->x;
    x_init(x, &c->xc, &h1_sink);
    hx->c = c;
    h->cur = hx;
    x->r.t_start = c->t_first;
    hx->minor = hr->minor;
    x->keep_alive = hr->keep_alive;
    x_set_method(x, hr->method, hr->method_len);
    x_set_path(x, hr->target, hr->target_len);
    sbuf_reset(&h->h2c_settings);
    for (size_t k = 0; k < hr->nheaders; k++) {
        const struct http1_header *f = &hr->headers[k];
        x_add_header(x, f->name, f->name_len, f->value, f->value_len);
        if (hr->upgrade_h2c && http1_name_eq(f->name, f->name_len, "http2-settings"))
            sbuf_append(&h->h2c_settings, f->value, f->value_len);
    }
    h->upgrade = hr->upgrade_h2c && hr->minor >= 1;
    h->chunked = hr->chunked;
    h->body_left = hr->content_length > 0 ? (uint64_t)hr->content_length : 0;
    memset(&h->ck, 0, sizeof(h->ck));
    int expect = hr->expect_continue;
    sbuf_consume(&c->nc.in, hr->head_len);
    h->st = H1_BODY;
    if (x->fwd.oom || x->path.oom) {
        cconn_fail(c);
        return -1;
    }
    if (h->body_left > g->cfg.max_body_bytes) {
        gw_metrics_limit(g->metrics, "body_too_large");
        x->keep_alive = 0;
        x_local(x, 413, "request body too large", "body_too_large");
        return -1;
    }
    if (h->body_left && x_charge(x, h->body_left)) {
        gw_metrics_limit(g->metrics, "buffered_total");
        x->keep_alive = 0; /* the body is not read */
        x_local(x, 503, "the gateway is holding too many request bodies; try again",
                "buffered_total");
        return -1;
    }
    /* Bodies up to 1 MiB (a 220 KB prompt) get their announced length at
     * once: growing by doubling copied the body again (~190 KB of memmove
     * for 220 KB). Above that, grow with what arrives: an announced length
     * alone pins at most 1 MiB a connection. */
    if (h->body_left &&
        sbuf_reserve(&x->body, h->body_left < (1u << 20) ? h->body_left : (1u << 20))) {
        cconn_fail(c);
        return -1;
    }
    if (expect && hx->minor >= 1 && (h->chunked || h->body_left) && c->nc.in.len == 0) {
        sbuf_puts(&c->nc.out, "HTTP/1.1 100 Continue\r\n\r\n");
        cconn_flush(c);
        if (c->nc.dead)
            return -1;
    }
    return 0;
}

/* netconn's direct read: a Content-Length body is read straight into the
 * exchange's body buffer (one copy fewer per body byte). */
static char *h1_direct(struct cconn *c, size_t *room)
{
    struct h1conn *h = H(c);
    struct xreq *x = h->cur ? &h->cur->x : NULL;
    if (h->st != H1_BODY || h->chunked || !x || !h->body_left || x->body.oom)
        return NULL;
    /* the length was checked against max_body_bytes when the head came */
    size_t want = h->body_left < (64u << 10) ? (size_t)h->body_left : (64u << 10);
    if (x->body.cap - x->body.len <= 1 && sbuf_reserve(&x->body, want))
        return NULL; /* out of memory: the nc->in path reports it */
    size_t r = x->body.cap - x->body.len - 1; /* sbuf keeps a NUL */
    *room = r < h->body_left ? r : (size_t)h->body_left;
    return x->body.data + x->body.len;
}

static void h1_direct_got(struct cconn *c, size_t n)
{
    x_body_got(&H(c)->cur->x, n);
    H(c)->body_left -= n;
}

/* Answers x early (the request is not read to its end): the connection
 * closes behind the answer. */
static void refuse(struct xreq *x, int status, const char *msg, const char *cause)
{
    x->keep_alive = 0;
    x_local(x, status, msg, cause);
}

/* Moves body bytes from c->nc.in into the exchange. 1 when the body is
 * complete, 0 when more is needed, -1 when the connection was answered. */
static int read_body(struct cconn *c)
{
    struct gw *g = c->wc->g;
    struct h1conn *h = H(c);
    struct xreq *x = &h->cur->x;
    int rc = 0;
    if (h->chunked) {
        if (c->nc.in.len == 0 && !h->ck.done)
            return 0;
        size_t outn = 0;
        long used = http1_chunked_decode(&h->ck, c->nc.in.data, c->nc.in.len,
                                         c->nc.in.data, &outn);
        if (used < 0) {
            refuse(x, 400, "malformed chunked body", "bad_request");
            return -1;
        }
        rc = x_body_feed(x, c->nc.in.data, outn);
        sbuf_consume(&c->nc.in, (size_t)used);
        if (rc == 0 && !h->ck.done)
            return 0;
    } else {
        size_t n = c->nc.in.len < h->body_left ? c->nc.in.len : (size_t)h->body_left;
        rc = x_body_feed(x, c->nc.in.data, n);
        sbuf_consume(&c->nc.in, n);
        h->body_left -= n;
        if (rc == 0 && h->body_left)
            return 0;
    }
    if (rc == -E2BIG || rc == -ENOSPC) {
        gw_metrics_limit(g->metrics, rc == -E2BIG ? "body_too_large" : "buffered_total");
        if (rc == -E2BIG)
            refuse(x, 413, "request body too large", "body_too_large");
        else
            refuse(x, 503, "the gateway is holding too many request bodies; try again",
                   "buffered_total");
        return -1;
    }
    if (rc < 0) {
        cconn_fail(c);
        return -1;
    }
    return 1;
}

/* The next request's head: 1 when it is in (the exchange begun), 0 when
 * more is needed, -1 when the connection was answered. */
static int read_head(struct cconn *c)
{
    struct gw *g = c->wc->g;
    if (c->nc.in.len == 0)
        return 0;
    if (c->timer_kind != CT_REQ) {
        c->t_first = ev_now_ns();
        cconn_set_timer(c, CT_REQ);
    }
    struct http1_request hr;
    int rc = http1_parse_request(c->nc.in.data, c->nc.in.len, g->cfg.max_header_bytes, &hr);
    if (rc == HTTP1_INCOMPLETE)
        return 0;
    if (rc == HTTP1_ERR_TOO_LARGE) {
        gw_metrics_limit(g->metrics, "header_too_large");
        h1_reject(c, 431, "request header too large");
        return -1;
    }
    if (rc < 0) {
        h1_reject(c, rc == HTTP1_ERR_VERSION ? 505 : 400,
                  rc == HTTP1_ERR_VERSION ? "HTTP version not supported"
                                          : "malformed HTTP request");
        return -1;
    }
    return begin(c, &hr) < 0 ? -1 : 1;
}

/* The upgrade request is complete: 101, then h2 with it as stream 1. An
 * upgrade that cannot be done (bad HTTP2-Settings) is ignored, as RFC 9113
 * allows: the request is served over HTTP/1.1. */
static void upgrade(struct cconn *c, struct h1x *hx)
{
    struct h1conn *h = H(c);
    size_t mark = c->nc.out.len;
    sbuf_puts(&c->nc.out, "HTTP/1.1 101 Switching Protocols\r\n"
                          "connection: Upgrade\r\nupgrade: h2c\r\n\r\n");
    struct sbuf settings = h->h2c_settings;
    sbuf_init(&h->h2c_settings);
    struct xreq *x = &hx->x;
    if (h2_upgrade(c, x, settings.data, settings.len) < 0) {
        c->nc.out.len = mark; /* not sent yet: nothing is flushed in between */
        if (c->nc.out.data)
            c->nc.out.data[mark] = '\0';
        sbuf_free(&settings);
        x_dispatch(x);
        return;
    }
    /* the connection is h2's now; the h1 exchange object lives on as
     * stream 1's (h2_upgrade copied it) */
    sbuf_free(&settings);
    gy_bury(&c->wc->gy, &h->grave, h1conn_destroy);
    gy_bury(&c->wc->gy, &hx->grave, h1x_destroy);
    if (!c->nc.dead)
        cconn_flush(c);
    if (!c->nc.dead && c->nc.in.len)
        cconn_kick(c); /* the client preface may already be here */
}

static void h1_input(struct cconn *c)
{
    struct h1conn *h = H(c);
    while (!c->nc.dead && !c->nc.closing && h1_is(c) && c->proto == h) {
        if (h->st == H1_WAIT)
            return;
        if (h->st == H1_HEAD) {
            int rc = read_head(c);
            if (rc == 0)
                return;
            if (rc < 0)
                continue; /* answered: closing, or dead */
        }
        int rc = read_body(c); /* H1_BODY */
        if (rc <= 0)
            return;
        struct h1x *hx = h->cur;
        cconn_set_timer(c, CT_NONE);
        hx->x.r.t_body = ev_now_ns();
        h->st = H1_WAIT;
        if (h->upgrade) {
            h->upgrade = 0;
            upgrade(c, hx);
            return;
        }
        x_dispatch(&hx->x); /* a local answer ends it now (back to H1_HEAD) */
    }
}

/* ---- the connection's ops ---- */

static void h1_timeout(struct cconn *c, int kind)
{
    struct h1conn *h = H(c);
    if (kind == CT_IDLE) {
        cconn_fail(c);
    } else if (h->st == H1_BODY && h->cur) {
        refuse(&h->cur->x, 408, "request not received in time", "header_timeout");
    } else if (h->st == H1_HEAD) {
        h1_reject(c, 408, "request not received in time");
    }
}

/* After a flush: the answer being streamed may resume its pod. */
static void h1_flushed(struct cconn *c)
{
    struct h1conn *h = H(c);
    if (h->cur && h->cur->x.up_paused)
        x_client_drained(&h->cur->x);
}

/* Drain (conn.h): a connection with nothing under way closes now; an
 * answer not yet begun will say close; at the deadline what is left ends. */
static void h1_drain(struct cconn *c, int cut)
{
    struct h1conn *h = H(c);
    struct xreq *x = h->cur ? &h->cur->x : NULL;
    if (cut) {
        if (x && !x->done) {
            x->keep_alive = 0;
            if (x->resp_started)
                x_end_with_error(x, "shutdown", 503, "the gateway is shutting down");
            else
                x_local(x, 503, "the gateway is shutting down", "shutdown");
        }
        if (!c->nc.dead) {
            c->nc.closing = 1;
            cconn_flush(c);
        }
        return;
    }
    if (x) {
        if (!x->resp_started)
            x->keep_alive = 0; /* its head will say close */
    } else if (!c->nc.in.len) { /* between requests */
        c->nc.closing = 1;
        cconn_flush(c);
    }
}

static void h1_gone(struct cconn *c)
{
    struct h1conn *h = H(c);
    if (h->cur)
        cconn_abort_x(c, &h->cur->x); /* x_kill -> s_detach clears cur */
    /* freed after this callback: code up the stack may still read it */
    gy_bury(&c->wc->gy, &h->grave, h1conn_destroy);
}

/* One request in service: pipelined bytes wait. */
static int h1_holding(const struct cconn *c)
{
    return ((struct h1conn *)c->proto)->st == H1_WAIT;
}

static const struct cconn_ops h1_ops = {
    .input = h1_input, .timeout = h1_timeout, .flushed = h1_flushed, .drain = h1_drain,
    .gone = h1_gone, .holding = h1_holding, .direct = h1_direct,
    .direct_got = h1_direct_got,
};

int h1_attach(struct cconn *c)
{
    struct h1conn *h = kv_calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    sbuf_init(&h->h2c_settings);
    cconn_set_ops(c, &h1_ops, h);
    return 0;
}

int h1_is(const struct cconn *c)
{
    return c->ops == &h1_ops || c->under == &h1_ops;
}

int h1_idle(const struct cconn *c)
{
    const struct h1conn *h = c->proto;
    return h1_is(c) && h && !h->cur && h->st == H1_HEAD;
}
