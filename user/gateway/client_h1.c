/* client_h1: the HTTP/1.1 client side of a connection. One request at a
 * time: the head is parsed (http1_parse_request), the body (Content-Length
 * or chunked) is buffered into the xreq, then the exchange is dispatched;
 * pipelined bytes wait in c->nc.in (reading pauses at NETCONN_IN_PAUSE, but EOF
 * and resets are still noticed) until the response has been queued.
 * `Upgrade: h2c` hands the connection to client_h2.c once the body is in,
 * the request becoming stream 1.
 *
 * Deadlines: CT_REQ from the first byte of a request until its body is
 * complete (header_timeout_ms, 408), CT_IDLE between requests
 * (idle_timeout_ms, silent close). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/ev.h"
#include "common/httpstatus.h"
#include "gateway/dataplane.h"
#include "gateway/gwmetrics.h"

/* A response without an exchange (the head could not be parsed, or never
 * came): answered and the connection closed. */
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

void h1_timeout(struct cconn *c)
{
    if (c->h1st == H1_BODY && c->cur) {
        struct xreq *x = c->cur;
        x->keep_alive = 0;
        x_local(x, 408, "request not received in time",
                "header_timeout");
    } else if (c->h1st == H1_HEAD) {
        h1_reject(c, 408, "request not received in time");
    }
}

/* The request head is complete: builds the exchange. 0, or -1 when the
 * connection was answered / failed. */
static int h1_begin(struct cconn *c, const struct http1_request *hr)
{
    struct gw *g = c->w->g;
    struct xreq *x = x_new(c, 0);
    if (!x) {
        cconn_fail(c);
        return -1;
    }
    c->cur = x;
    x->r.t_start = c->t_first;
    x->minor = hr->minor;
    x->keep_alive = hr->keep_alive;
    x_set_method(x, hr->method, hr->method_len);
    x_set_path(x, hr->target, hr->target_len);
    sbuf_reset(&c->h2c_settings);
    for (size_t k = 0; k < hr->nheaders; k++) {
        const struct http1_header *h = &hr->headers[k];
        x_add_header(x, h->name, h->name_len, h->value, h->value_len);
        if (hr->upgrade_h2c && h->name_len == 14 &&
            strncasecmp(h->name, "http2-settings", 14) == 0)
            sbuf_append(&c->h2c_settings, h->value, h->value_len);
    }
    c->upgrade = hr->upgrade_h2c && hr->minor >= 1;
    c->chunked = hr->chunked;
    c->body_left = hr->content_length > 0 ? (uint64_t)hr->content_length : 0;
    memset(&c->ck, 0, sizeof(c->ck));
    int expect = hr->expect_continue;
    sbuf_consume(&c->nc.in, hr->head_len);
    c->h1st = H1_BODY;
    if (x->fwd.oom || x->path.oom) {
        cconn_fail(c);
        return -1;
    }
    if (c->body_left > g->cfg.max_body_bytes) {
        gw_metrics_limit(g->metrics, "body_too_large");
        x->keep_alive = 0;
        x_local(x, 413, "request body too large", "body_too_large");
        return -1;
    }
    if (c->body_left && x_charge(x, c->body_left)) {
        gw_metrics_limit(g->metrics, "buffered_total");
        x->keep_alive = 0; /* the body is not read */
        x_local(x, 503, "the gateway is holding too many request bodies; try again", "buffered_total");
        return -1;
    }
    /* Bodies up to 1 MiB (a 220 KB prompt) get their announced length at
     * once: growing by doubling copied the body again (~190 KB of memmove
     * for 220 KB). Above that, grow with what arrives: an announced length
     * alone pins at most 1 MiB a connection. */
    if (c->body_left &&
        sbuf_reserve(&x->body, c->body_left < (1u << 20) ? c->body_left : (1u << 20))) {
        cconn_fail(c);
        return -1;
    }
    if (expect && x->minor >= 1 && (c->chunked || c->body_left) && c->nc.in.len == 0) {
        sbuf_puts(&c->nc.out, "HTTP/1.1 100 Continue\r\n\r\n");
        cconn_flush(c);
        if (c->nc.dead)
            return -1;
    }
    return 0;
}

char *h1_body_direct(struct netconn *nc, size_t *room)
{
    struct cconn *c = cconn_of(nc);
    struct xreq *x = c->cur;
    if (c->proto != CP_H1 || c->h1st != H1_BODY || c->chunked || !x || !c->body_left ||
        x->body.oom)
        return NULL;
    /* the length was checked against max_body_bytes when the head came */
    size_t want = c->body_left < (64u << 10) ? (size_t)c->body_left : (64u << 10);
    if (x->body.cap - x->body.len <= 1 && sbuf_reserve(&x->body, want))
        return NULL; /* out of memory: the nc->in path reports it */
    size_t r = x->body.cap - x->body.len - 1; /* sbuf keeps a NUL */
    *room = r < c->body_left ? r : (size_t)c->body_left;
    return x->body.data + x->body.len;
}

void h1_body_direct_got(struct netconn *nc, size_t n)
{
    struct cconn *c = cconn_of(nc);
    x_body_got(c->cur, n);
    c->body_left -= n;
}

/* Moves body bytes from c->nc.in into the exchange. 1 when the body is
 * complete, 0 when more is needed, -1 when the connection was answered. */
static int h1_body(struct cconn *c)
{
    struct gw *g = c->w->g;
    struct xreq *x = c->cur;
    int rc = 0;
    if (c->chunked) {
        if (c->nc.in.len == 0 && !c->ck.done)
            return 0;
        size_t outn = 0;
        long used = http1_chunked_decode(&c->ck, c->nc.in.data, c->nc.in.len,
                                         c->nc.in.data, &outn);
        if (used < 0) {
            x->keep_alive = 0;
            x_local(x, 400, "malformed chunked body", "bad_request");
            return -1;
        }
        rc = x_body_feed(x, c->nc.in.data, outn);
        sbuf_consume(&c->nc.in, (size_t)used);
        if (rc == 0 && !c->ck.done)
            return 0;
    } else {
        size_t n = c->nc.in.len < c->body_left ? c->nc.in.len : (size_t)c->body_left;
        rc = x_body_feed(x, c->nc.in.data, n);
        sbuf_consume(&c->nc.in, n);
        c->body_left -= n;
        if (rc == 0 && c->body_left)
            return 0;
    }
    if (rc == -E2BIG) {
        gw_metrics_limit(g->metrics, "body_too_large");
        x->keep_alive = 0;
        x_local(x, 413, "request body too large", "body_too_large");
        return -1;
    }
    if (rc == -ENOSPC) {
        gw_metrics_limit(g->metrics, "buffered_total");
        x->keep_alive = 0;
        x_local(x, 503, "the gateway is holding too many request bodies; try again", "buffered_total");
        return -1;
    }
    if (rc < 0) {
        cconn_fail(c);
        return -1;
    }
    return 1;
}

/* The upgrade request is complete: 101, then h2 with it as stream 1. An
 * upgrade that cannot be done (bad HTTP2-Settings) is ignored, as RFC 9113
 * allows: the request is served over HTTP/1.1. */
static void h1_upgrade(struct cconn *c, struct xreq *x)
{
    size_t mark = c->nc.out.len;
    sbuf_puts(&c->nc.out, "HTTP/1.1 101 Switching Protocols\r\n"
                       "connection: Upgrade\r\nupgrade: h2c\r\n\r\n");
    if (h2_start(c, x, c->h2c_settings.data, c->h2c_settings.len) < 0) {
        c->nc.out.len = mark; /* not sent yet: nothing is flushed in between */
        if (c->nc.out.data)
            c->nc.out.data[mark] = '\0';
        sbuf_free(&c->h2c_settings);
        x_dispatch(x);
        return;
    }
    c->cur = NULL;
    sbuf_free(&c->h2c_settings);
    x_dispatch(x);
    if (!c->nc.dead)
        cconn_flush(c);
    if (!c->nc.dead && c->nc.in.len)
        cconn_kick(c); /* the client preface may already be here */
}

void h1_process(struct cconn *c)
{
    struct gw *g = c->w->g;
    while (!c->nc.dead && !c->nc.closing && c->proto == CP_H1) {
        if (c->h1st == H1_WAIT)
            return;
        if (c->h1st == H1_HEAD) {
            if (c->nc.in.len == 0)
                return;
            if (c->timer_kind != CT_REQ) {
                c->t_first = ev_now_ns();
                cconn_set_timer(c, CT_REQ);
            }
            struct http1_request hr;
            int rc = http1_parse_request(c->nc.in.data, c->nc.in.len,
                                         g->cfg.max_header_bytes, &hr);
            if (rc == HTTP1_INCOMPLETE)
                return;
            if (rc == HTTP1_ERR_TOO_LARGE) {
                gw_metrics_limit(g->metrics, "header_too_large");
                h1_reject(c, 431, "request header too large");
                return;
            }
            if (rc == HTTP1_ERR_VERSION) {
                h1_reject(c, 505, "HTTP version not supported");
                return;
            }
            if (rc < 0) {
                h1_reject(c, 400, "malformed HTTP request");
                return;
            }
            if (h1_begin(c, &hr) < 0)
                continue; /* answered: closing, or dead */
        }
        /* H1_BODY */
        int rc = h1_body(c);
        if (rc <= 0)
            return;
        struct xreq *x = c->cur;
        cconn_set_timer(c, CT_NONE);
        x->r.t_body = ev_now_ns();
        c->h1st = H1_WAIT;
        if (c->upgrade) {
            c->upgrade = 0;
            h1_upgrade(c, x);
            return;
        }
        x_dispatch(x); /* a local answer ends it now (state back to H1_HEAD) */
    }
}

/* ---- response ---- */

void h1_resp_head(struct xreq *x, int status, const char *hdrs, size_t hlen,
                  int64_t clen)
{
    struct cconn *c = x->c;
    struct sbuf *o = &c->nc.out;
    int bodyless = status < 200 || status == 204 || status == 304;
    x->resp_chunked = 0;
    if (c->w->draining)
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
    } else if (x->minor >= 1) {
        x->resp_chunked = 1;
        sbuf_puts(o, "transfer-encoding: chunked\r\n");
    } else {
        x->keep_alive = 0; /* HTTP/1.0: delimited by closing */
    }
    if (!x->keep_alive)
        sbuf_puts(o, "connection: close\r\n");
    else if (x->minor == 0)
        sbuf_puts(o, "connection: keep-alive\r\n");
    sbuf_puts(o, "\r\n");
}

void h1_resp_body(struct xreq *x, const char *p, size_t n)
{
    struct sbuf *o = &x->c->nc.out;
    if (x->is_head)
        return; /* a HEAD answer ends with its head */
    if (x->resp_chunked)
        sbuf_printf(o, "%zx\r\n", n);
    sbuf_append(o, p, n);
    if (x->resp_chunked)
        sbuf_puts(o, "\r\n");
}

void h1_resp_end(struct xreq *x, int abort)
{
    struct cconn *c = x->c;
    if (!abort && x->resp_chunked)
        sbuf_puts(&c->nc.out, "0\r\n\r\n");
    /* draining: an answer whose head promised keep-alive still serves the
     * requests already pipelined behind it (their answers say close);
     * without any, the connection closes now */
    int keep = x->keep_alive && !abort && !c->nc.dead &&
               !(c->w->draining && !c->nc.in.len);
    x_kill(x); /* c->cur = NULL */
    if (c->nc.dead)
        return;
    if (!keep) {
        c->nc.closing = 1;
        sbuf_reset(&c->nc.in);
    } else {
        c->h1st = H1_HEAD;
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
