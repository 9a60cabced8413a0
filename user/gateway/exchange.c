/* exchange: one request and its answer, the protocol-free half: life,
 * the request head and body as they arrive, what they cost, and answers
 * the gateway gives itself. See exchange.h; relay.c drives the rest. */
#include "gateway/exchange.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/httpstatus.h"
#include "gateway/exact.h"
#include "gateway/upstream.h"

/* ---- small helpers ---- */

/* Connection-specific fields: never forwarded in either direction. */
int x_hop_by_hop(const char *n, size_t nl)
{
    static const char *const hop[] = { "connection", "keep-alive",
        "transfer-encoding", "te", "trailer", "upgrade", "http2-settings",
        "host", "content-length", NULL };
    for (int k = 0; hop[k]; k++)
        if (http1_name_eq(n, nl, hop[k]))
            return 1;
    return nl >= 6 && http1_name_eq(n, 6, "proxy-");
}

/* Is field name n[0..nl) a token of the Connection list in opts? */
int x_named_in(const struct sbuf *opts, const char *n, size_t nl)
{
    char name[128];
    if (nl >= sizeof(name))
        return 0; /* no Connection option is that long */
    memcpy(name, n, nl);
    name[nl] = '\0';
    return http1_has_token(opts->data, opts->len, name);
}

static void copy_trunc(char *dst, size_t cap, const char *v, size_t vl)
{
    if (vl >= cap)
        vl = cap - 1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
}

/* ---- life ---- */

void x_init(struct xreq *x, struct xconn *xc, const struct xsink_ops *sink)
{
    memset(x, 0, sizeof(*x));
    x->xc = xc;
    x->sink = sink;
    x->kind = XK_NOTFOUND;
    x->req_clen = -1;
    x->keep_alive = 1;
    x->resp_clen = -1;
    x->sse_at_boundary = 1;
    sbuf_init(&x->path);
    sbuf_init(&x->fwd);
    sbuf_init(&x->xff);
    sbuf_init(&x->conn_opts);
    sbuf_init(&x->ctype);
    sbuf_init(&x->body);
    sbuf_init(&x->hold);
    sbuf_init(&x->up_head);
    x->r.t_start = ev_now_ns();
    x->r.path = xc->path;
    x->r.d.idx = x->r.d.shadow_idx = -1; /* not routed (yet): no decision to count */
}

void x_fini(struct xreq *x)
{
    sbuf_free(&x->path);
    sbuf_free(&x->fwd);
    sbuf_free(&x->xff);
    sbuf_free(&x->conn_opts);
    sbuf_free(&x->ctype);
    sbuf_free(&x->body);
    sbuf_free(&x->hold);
    sbuf_free(&x->up_head);
    if (x->scan)
        gw_scan_free(x->scan);
    x->scan = NULL;
    gw_exact_release(&x->r);
    x->r.body = NULL;
}

/* Drops x's pod connection (closing it makes vLLM abort the request). */
static void drop_up(struct xreq *x)
{
    if (x->up) {
        struct upconn *u = x->up;
        x->up = NULL;
        up_kill(u);
    }
}

void x_kill(struct xreq *x)
{
    if (x->dead)
        return;
    x->dead = 1;
    x_body_drop(x);
    ev_timer_cancel(x_wc(x)->l, x->stall_timer);
    x->stall_timer = 0;
    drop_up(x);
    x->sink->detach(x);
}

void x_account(struct xreq *x)
{
    if (x->done)
        return;
    struct gw *g = x_wc(x)->g;
    x->done = 1;
    x->r.t_end = ev_now_ns();
    if (x->r.routed)
        gw_route_release(g, &x->r);
    acct_class(&g->cfg, &x->r, x->path.data, x->path.len); /* unless routing set it */
    acct_finish(&x->acct, &x->r);
    gw_request_done(g, &x->r);
}

void x_abort_client(struct xreq *x)
{
    if (x->done)
        return;
    drop_up(x);
    if (!x->r.error)
        x->r.error = x_wc(x)->stopping ? "shutdown" : "client_closed";
    if (!x->resp_started)
        x->r.status = 499; /* nginx's "client closed request" */
    x_account(x);
}

/* ---- the request head ---- */

void x_set_method(struct xreq *x, const char *m, size_t n)
{
    copy_trunc(x->method, sizeof(x->method), m, n);
    x->is_head = n == 4 && memcmp(m, "HEAD", 4) == 0;
}

void x_set_path(struct xreq *x, const char *p, size_t n)
{
    sbuf_reset(&x->path);
    sbuf_append(&x->path, p, n);
}

void x_add_header(struct xreq *x, const char *n, size_t nl, const char *v, size_t vl)
{
    if (http1_name_eq(n, nl, "x-gateway-inference-objective")) {
        copy_trunc(x->r.wclass, sizeof(x->r.wclass), v, vl); /* wins over llm-d's */
    } else if (http1_name_eq(n, nl, "x-llm-d-inference-objective")) {
        if (!x->r.wclass[0])
            copy_trunc(x->r.wclass, sizeof(x->r.wclass), v, vl);
    } else if (http1_name_eq(n, nl, "x-session-id")) {
        copy_trunc(x->r.session, sizeof(x->r.session), v, vl);
    } else if (http1_name_eq(n, nl, "x-gateway-inference-fairness-id")) {
        copy_trunc(x->r.tenant, sizeof(x->r.tenant), v, vl); /* wins over llm-d's */
    } else if (http1_name_eq(n, nl, "x-llm-d-inference-fairness-id")) {
        if (!x->r.tenant[0]) /* llm-d's newer name for the same header */
            copy_trunc(x->r.tenant, sizeof(x->r.tenant), v, vl);
    } else if (http1_name_eq(n, nl, "content-type")) {
        sbuf_reset(&x->ctype);
        sbuf_append(&x->ctype, v, vl);
        return;
    } else if (http1_name_eq(n, nl, "x-forwarded-for")) {
        if (x->xff.len)
            sbuf_puts(&x->xff, ", ");
        sbuf_append(&x->xff, v, vl);
        return;
    } else if (http1_name_eq(n, nl, "content-length")) {
        int64_t cl = 0;
        for (size_t i = 0; i < vl && cl >= 0; i++)
            cl = v[i] >= '0' && v[i] <= '9' && cl < INT64_MAX / 10 ? cl * 10 + (v[i] - '0')
                                                                    : -1;
        x->req_clen = vl ? cl : -1;
        return;
    } else if (http1_name_eq(n, nl, "expect")) {
        return; /* answered by the gateway (100-continue) */
    } else if (http1_name_eq(n, nl, "connection")) {
        if (x->conn_opts.len)
            sbuf_puts(&x->conn_opts, ",");
        sbuf_append(&x->conn_opts, v, vl);
        return;
    }
    if (x_hop_by_hop(n, nl))
        return;
    sbuf_append(&x->fwd, n, nl);
    sbuf_puts(&x->fwd, ": ");
    sbuf_append(&x->fwd, v, vl);
    sbuf_puts(&x->fwd, "\r\n");
}

/* Removes from x->fwd the fields the client's Connection header named
 * (RFC 9110 7.6.1: they are for this hop only). Called once the head is
 * complete, since Connection may come after the fields it names. */
static void drop_connection_named(struct xreq *x)
{
    if (!x->conn_opts.len || !x->fwd.len)
        return;
    char *d = x->fwd.data;
    size_t r = 0, w = 0, n = x->fwd.len;
    while (r < n) { /* lines "name: value\r\n" */
        const char *eol = memchr(d + r, '\n', n - r);
        size_t le = eol ? (size_t)(eol - d) + 1 : n;
        const char *colon = memchr(d + r, ':', le - r);
        if (!colon || !x_named_in(&x->conn_opts, d + r, (size_t)(colon - (d + r)))) {
            memmove(d + w, d + r, le - r);
            w += le - r;
        }
        r = le;
    }
    x->fwd.len = w;
    d[w] = '\0';
}

int x_path_is(const struct xreq *x, const char *p)
{
    size_t n = x->path.len;
    const char *q = x->path.data ? memchr(x->path.data, '?', n) : NULL;
    if (q)
        n = (size_t)(q - x->path.data);
    return n == strlen(p) && memcmp(x->path.data, p, n) == 0;
}

void x_classify(struct xreq *x)
{
    if (x->classified)
        return;
    x->classified = 1;
    int post = strcmp(x->method, "POST") == 0;
    int get = strcmp(x->method, "GET") == 0 || x->is_head; /* HEAD wherever GET */
    if (x_path_is(x, "/v1/chat/completions") || x_path_is(x, "/v1/completions"))
        x->kind = post ? XK_ROUTED : XK_BADMETHOD;
    else if (x_path_is(x, "/v1/models"))
        x->kind = get ? XK_MODELS : XK_BADMETHOD;
    else if (x_path_is(x, "/health"))
        x->kind = get ? XK_HEALTH : XK_BADMETHOD;
    else
        x->kind = XK_NOTFOUND;
    if (x->kind == XK_ROUTED)
        x->scan = gw_scan_new(x_wc(x)->g); /* NULL: answered 500 at dispatch */
    drop_connection_named(x);
}

/* ---- the request body: what it holds counts against two limits ---- */

/* n more body bytes: within the connection's share (2 x max_body_bytes)
 * and limits.max_buffered_total_bytes for the whole gateway? 0, or
 * -ENOSPC (nothing charged). */
int x_charge(struct xreq *x, uint64_t n)
{
    struct gw *g = x_wc(x)->g;
    if (x->xc->body_bytes + n > 2 * g->cfg.max_body_bytes)
        return -ENOSPC;
    uint64_t before = atomic_fetch_add(&g->body_bytes, n);
    if (g->cfg.max_buffered_total_bytes && before + n > g->cfg.max_buffered_total_bytes) {
        atomic_fetch_sub(&g->body_bytes, n);
        return -ENOSPC;
    }
    x->xc->body_bytes += n;
    x->charged += n;
    return 0;
}

void x_body_drop(struct xreq *x)
{
    if (x->charged) {
        atomic_fetch_sub(&x_wc(x)->g->body_bytes, x->charged);
        x->xc->body_bytes -= x->charged;
        x->charged = 0;
    }
    sbuf_free(&x->body);
    x->r.body = NULL; /* gw_route tokenizes it (exact.h) */
    x->r.body_len = 0;
}

int x_body_feed(struct xreq *x, const char *p, size_t n)
{
    x_classify(x);
    if (n == 0)
        return 0;
    if (x->body.len + n > x_wc(x)->g->cfg.max_body_bytes)
        return -E2BIG;
    if (x->body.len + n > x->charged && x_charge(x, x->body.len + n - x->charged))
        return -ENOSPC;
    if (sbuf_append(&x->body, p, n))
        return -ENOMEM;
    if (x->scan)
        gw_scan_feed(x->scan, p, n); /* errors are sticky: seen at finish */
    x->r.body_bytes += n;
    return 0;
}

void x_body_got(struct xreq *x, size_t n)
{
    x_classify(x);
    const char *p = x->body.data + x->body.len;
    x->body.len += n;
    x->body.data[x->body.len] = '\0';
    if (x->scan)
        gw_scan_feed(x->scan, p, n);
    x->r.body_bytes += n;
}

/* ---- answers ---- */

void x_sink_head(struct xreq *x, int status, const char *h, size_t hl, int64_t clen)
{
    x->resp_started = 1;
    x->resp_clen = clen;
    x->r.status = status;
    x->sink->head(x, status, h, hl, clen);
}

void x_sink_body(struct xreq *x, const char *p, size_t n)
{
    if (n == 0 || x->is_head)
        return;
    x->r.bytes_out += n;
    x->sink->body(x, p, n);
}

/* The answer is complete (or, cut, cannot be): accounted, then ended. */
void x_finish(struct xreq *x, int cut)
{
    x_account(x);
    if (cut)
        x->sink->abort(x);
    else
        x->sink->end(x);
    x_kill(x);
}

void x_local_body(struct xreq *x, int status, const char *ctype, const char *body,
                  size_t len, const char *extra_hdrs)
{
    if (x->resp_started || x->done || x->dead)
        return;
    drop_up(x);
    struct sbuf h;
    sbuf_init(&h);
    sbuf_printf(&h, "content-type: %s\r\n", ctype);
    if (extra_hdrs)
        sbuf_puts(&h, extra_hdrs);
    x_sink_head(x, status, h.data ? h.data : "", h.len, (int64_t)len);
    sbuf_free(&h);
    x_sink_body(x, body, len);
    x_finish(x, 0);
}

void x_local(struct xreq *x, int status, const char *msg, const char *error_cause)
{
    struct sbuf b;
    sbuf_init(&b);
    http_error_json(&b, status, msg);
    if (error_cause && !x->r.error)
        x->r.error = error_cause;
    x_local_body(x, status, "application/json", b.data ? b.data : "", b.len, NULL);
    sbuf_free(&b);
}

void x_end_with_error(struct xreq *x, const char *cause, int code, const char *msg)
{
    if (x->done || x->dead)
        return;
    x->r.error = cause;
    drop_up(x);
    if (!x->sse || x->resp_clen >= 0) {
        x_finish(x, 1); /* the framing cannot carry an error: cut it */
        return;
    }
    struct sbuf ev;
    sbuf_init(&ev);
    sbuf_puts(&ev, x->sse_at_boundary ? "data: " : "\n\ndata: ");
    http_error_json(&ev, code, msg);
    sbuf_puts(&ev, "\n\ndata: [DONE]\n\n");
    sbuf_reset(&x->hold); /* a partial event is dropped, never relayed */
    x_sink_body(x, ev.data ? ev.data : "", ev.len);
    sbuf_free(&ev);
    x_finish(x, 0);
}
