/* relay: one exchange (xreq) from a complete request to its last response
 * byte: classify the path, scan and route the body, drive the upstream
 * attempts (one retry on another pod), and relay the pod's answer to the
 * client's protocol (client_h1.c / client_h2.c), watching SSE events.
 *
 * Retry rules (before any byte reached the client):
 *  - a reused keep-alive conn that fails before any response byte: once
 *    more on a fresh conn to the same pod, not counted as the retry;
 *  - connect failure (refused, timeout), reset / EOF before a response
 *    byte, or a 5xx head: one retry on another pod (gw_route excluding
 *    the failed slot); connect failures also mark the pod down;
 *  - the retry's failure is final: a 5xx is relayed as is, anything else
 *    is a 502 (504 for a first-byte timeout, which is never retried: the
 *    pod may well be working on it).
 * After the first byte went to the client, a pod failure ends an SSE
 * stream with one error event and [DONE]; other bodies are cut (close or
 * RST_STREAM) since their framing cannot carry an error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ev.h"
#include "common/httpstatus.h"
#include "gateway/dataplane.h"
#include "gateway/gwmetrics.h"
#include "gateway/splice.h"
#include "gateway/sse.h"

/* ---- small helpers ---- */

static int lc_eq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != lit[i])
            return 0;
    }
    return 1;
}

static int lc_prefix(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n >= m && lc_eq(a, m, lit);
}

/* Connection-specific fields: never forwarded in either direction. */
static int hop_by_hop(const char *n, size_t nl)
{
    static const char *const hop[] = { "connection", "keep-alive",
        "transfer-encoding", "te", "trailer", "upgrade", "http2-settings",
        "host", "content-length", NULL };
    for (int k = 0; hop[k]; k++)
        if (lc_eq(n, nl, hop[k]))
            return 1;
    return lc_prefix(n, nl, "proxy-");
}

/* Is field name n[0..nl) a token of the Connection list in opts? */
static int named_in(const struct sbuf *opts, const char *n, size_t nl)
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

static uint64_t now_ns(void)
{
    return ev_now_ns();
}

/* ---- lifetime ---- */

struct xreq *x_new(struct cconn *c, int32_t sid)
{
    struct xreq *x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->c = c;
    x->w = c->w;
    x->sid = sid;
    x->kind = XK_NOTFOUND;
    x->req_clen = -1;
    x->minor = 1;
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
    sbuf_init(&x->h2out);
    x->r.t_start = now_ns();
    x->r.h2 = sid != 0;
    return x;
}

void x_free(struct xreq *x)
{
    sbuf_free(&x->path);
    sbuf_free(&x->fwd);
    sbuf_free(&x->xff);
    sbuf_free(&x->conn_opts);
    sbuf_free(&x->ctype);
    sbuf_free(&x->body);
    sbuf_free(&x->hold);
    sbuf_free(&x->h2out);
    if (x->scan)
        gw_scan_free(x->scan);
    free(x);
}

/* ---- request bodies: what they hold counts against two limits ---- */

/* n more body bytes: within the connection's share (2 x max_body_bytes)
 * and limits.max_buffered_total_bytes for the whole gateway? 0, or
 * -ENOSPC (nothing charged). */
int x_charge(struct xreq *x, uint64_t n)
{
    struct gw *g = x->w->g;
    struct cconn *c = x->c;
    if (c->body_bytes + n > 2 * g->cfg.max_body_bytes)
        return -ENOSPC;
    uint64_t before = atomic_fetch_add(&g->body_bytes, n);
    if (g->cfg.max_buffered_total_bytes && before + n > g->cfg.max_buffered_total_bytes) {
        atomic_fetch_sub(&g->body_bytes, n);
        return -ENOSPC;
    }
    c->body_bytes += n;
    x->charged += n;
    return 0;
}

/* The body is no longer needed (the exchange ended, or the pod took all of
 * it and answered, so no retry can come): its memory and its charge go. */
static void x_body_drop(struct xreq *x)
{
    if (x->charged) {
        atomic_fetch_sub(&x->w->g->body_bytes, x->charged);
        x->c->body_bytes -= x->charged;
        x->charged = 0;
    }
    sbuf_free(&x->body);
}

void x_kill(struct xreq *x)
{
    if (x->dead)
        return;
    struct cconn *c = x->c;
    struct worker *w = x->w;
    x->dead = 1;
    x_body_drop(x);
    ev_timer_cancel(w->l, x->timer);
    ev_timer_cancel(w->l, x->stall_timer);
    x->timer = x->stall_timer = 0;
    if (x->up) { /* not expected: finishing and aborting detach it */
        struct upconn *u = x->up;
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
    }
    if (c->cur == x) {
        c->cur = NULL;
    } else if (x->sid) {
        if (x->prev)
            x->prev->next = x->next;
        else if (c->streams == x)
            c->streams = x->next;
        if (x->next)
            x->next->prev = x->prev;
        x->prev = x->next = NULL;
        if (c->nstreams && --c->nstreams == 0 && !c->nc.dead)
            cconn_set_timer(c, CT_IDLE);
    }
    x->gnext = w->dead_xs;
    w->dead_xs = x;
    w_reap_later(w);
}

void x_account(struct xreq *x)
{
    if (x->done)
        return;
    struct gw *g = x->w->g;
    x->done = 1;
    ev_timer_cancel(x->w->l, x->timer);
    x->timer = 0;
    x->r.t_end = now_ns();
    if (x->r.routed)
        gw_route_release(g, &x->r);
    gw_request_done(g, &x->r);
}

void x_abort_client(struct xreq *x)
{
    if (x->done)
        return;
    if (x->up) {
        struct upconn *u = x->up; /* closing it makes vLLM abort the request */
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
    }
    if (!x->r.error)
        x->r.error = x->w->stopping ? "shutdown" : "client_closed";
    if (!x->resp_started)
        x->r.status = 499; /* nginx's "client closed request" */
    x_account(x);
}

/* ---- request head ---- */

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
    if (lc_eq(n, nl, "x-session-id")) {
        copy_trunc(x->r.session, sizeof(x->r.session), v, vl);
    } else if (lc_eq(n, nl, "x-gateway-inference-fairness-id")) {
        copy_trunc(x->r.tenant, sizeof(x->r.tenant), v, vl); /* wins over llm-d's */
    } else if (lc_eq(n, nl, "x-llm-d-inference-fairness-id")) {
        if (!x->r.tenant[0]) /* llm-d's newer name for the same header */
            copy_trunc(x->r.tenant, sizeof(x->r.tenant), v, vl);
    } else if (lc_eq(n, nl, "content-type")) {
        sbuf_reset(&x->ctype);
        sbuf_append(&x->ctype, v, vl);
        return;
    } else if (lc_eq(n, nl, "x-forwarded-for")) {
        if (x->xff.len)
            sbuf_puts(&x->xff, ", ");
        sbuf_append(&x->xff, v, vl);
        return;
    } else if (lc_eq(n, nl, "content-length")) {
        int64_t cl = 0;
        for (size_t i = 0; i < vl && cl >= 0; i++)
            cl = v[i] >= '0' && v[i] <= '9' && cl < INT64_MAX / 10 ? cl * 10 + (v[i] - '0')
                                                                    : -1;
        x->req_clen = vl ? cl : -1;
        return;
    } else if (lc_eq(n, nl, "expect")) {
        return; /* answered by the gateway (100-continue) */
    } else if (lc_eq(n, nl, "connection")) {
        if (x->conn_opts.len)
            sbuf_puts(&x->conn_opts, ",");
        sbuf_append(&x->conn_opts, v, vl);
        return;
    }
    if (hop_by_hop(n, nl))
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
        if (!colon || !named_in(&x->conn_opts, d + r, (size_t)(colon - (d + r)))) {
            memmove(d + w, d + r, le - r);
            w += le - r;
        }
        r = le;
    }
    x->fwd.len = w;
    d[w] = '\0';
}

static int path_is(const struct xreq *x, const char *p)
{
    size_t n = x->path.len;
    const char *q = x->path.data ? memchr(x->path.data, '?', n) : NULL;
    if (q)
        n = (size_t)(q - x->path.data);
    return n == strlen(p) && memcmp(x->path.data, p, n) == 0;
}

static void x_classify(struct xreq *x)
{
    if (x->classified)
        return;
    x->classified = 1;
    int post = strcmp(x->method, "POST") == 0;
    int get = strcmp(x->method, "GET") == 0 || x->is_head; /* HEAD wherever GET */
    if (path_is(x, "/v1/chat/completions") || path_is(x, "/v1/completions"))
        x->kind = post ? XK_ROUTED : XK_BADMETHOD;
    else if (path_is(x, "/v1/models"))
        x->kind = get ? XK_MODELS : XK_BADMETHOD;
    else if (path_is(x, "/health"))
        x->kind = get ? XK_HEALTH : XK_BADMETHOD;
    else
        x->kind = XK_NOTFOUND;
    if (x->kind == XK_ROUTED)
        x->scan = gw_scan_new(x->w->g); /* NULL: answered 500 at dispatch */
    drop_connection_named(x);
}

int x_body_feed(struct xreq *x, const char *p, size_t n)
{
    x_classify(x);
    if (n == 0)
        return 0;
    if (x->body.len + n > x->w->g->cfg.max_body_bytes)
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

/* ---- the client side, by protocol ---- */

/* Output waiting for the client on x's behalf. h2: the stream's queue only
 * (the connection's frame buffer is capped by DP_H2_OUT_SOFT, and the data
 * provider that drains the queue is where resuming is decided). */
size_t x_pending(const struct xreq *x)
{
    if (x->sid)
        return x->h2out.len - x->h2off;
    return netconn_pending(&x->c->nc);
}

static void sink_head(struct xreq *x, int status, const char *h, size_t hl,
                      int64_t clen)
{
    x->resp_started = 1;
    x->resp_clen = clen;
    x->r.status = status;
    if (x->sid)
        h2_resp_head(x, status, h, hl, clen);
    else
        h1_resp_head(x, status, h, hl, clen);
}

static void sink_body(struct xreq *x, const char *p, size_t n)
{
    if (n == 0)
        return;
    x->r.bytes_out += n;
    if (x->sid)
        h2_resp_body(x, p, n);
    else
        h1_resp_body(x, p, n);
}

/* Ends the response (abort: cannot be completed, cut it). The xreq must
 * be accounted already; on HTTP/1.1 it is gone afterwards. */
static void sink_end(struct xreq *x, int abort)
{
    if (x->sid)
        h2_resp_end(x, abort);
    else
        h1_resp_end(x, abort);
}

void x_local_body(struct xreq *x, int status, const char *ctype, const char *body,
                  size_t len, const char *extra_hdrs)
{
    if (x->resp_started || x->done || x->dead)
        return;
    if (x->up) {
        struct upconn *u = x->up;
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
    }
    struct sbuf h;
    sbuf_init(&h);
    sbuf_printf(&h, "content-type: %s\r\n", ctype);
    if (extra_hdrs)
        sbuf_puts(&h, extra_hdrs);
    sink_head(x, status, h.data ? h.data : "", h.len, (int64_t)len);
    sbuf_free(&h);
    if (!x->is_head)
        sink_body(x, body, len);
    x_account(x); /* before sink_end: HTTP/1.1 frees x there */
    sink_end(x, 0);
}

void x_local(struct xreq *x, int status, const char *msg,
             const char *error_cause)
{
    struct sbuf b;
    sbuf_init(&b);
    http_error_json(&b, status, msg);
    if (error_cause && !x->r.error)
        x->r.error = error_cause;
    x_local_body(x, status, "application/json", b.data ? b.data : "", b.len, NULL);
    sbuf_free(&b);
}

/* ---- dispatch ---- */

static void x_route_and_go(struct xreq *x)
{
    struct gw *g = x->w->g;
    struct gw_request *r = &x->r;
    if (!x->scan) {
        x_local(x, 500, "out of memory", "internal");
        return;
    }
    const char *err = NULL;
    size_t off = 0;
    if (gw_scan_finish(x->scan, r, &err, &off) < 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s at byte %zu", err ? err : "malformed body", off);
        x_local(x, 400, msg, "bad_request");
        return;
    }
    enum route_status st = gw_route(g, r, UINT32_MAX);
    if (st == ROUTE_UNKNOWN_MODEL) {
        char msg[sizeof(r->model) + 64];
        snprintf(msg, sizeof(msg), "The model `%s` does not exist.", r->model);
        x_local(x, 404, msg, "unknown_model");
        return;
    }
    if (st != ROUTE_OK) {
        char msg[sizeof(r->model) + 64];
        snprintf(msg, sizeof(msg), "no pod can serve model %s now", r->model);
        x_local(x, 503, msg, "no_pod");
        return;
    }
    r->t_routed = now_ns();
    x->fresh_tried = 0;
    splice_prepare(x); /* a session's connection enters kvg_sock (PASS) */
    if (up_start(x, 0) < 0)
        x_local(x, 502, "upstream pod failed: out of memory",
                "upstream_failed");
}

void x_dispatch(struct xreq *x)
{
    if (x->dispatched || x->done || x->dead)
        return;
    x->dispatched = 1;
    x_classify(x);
    if (!x->r.t_body)
        x->r.t_body = now_ns();
    switch (x->kind) {
    case XK_ROUTED:
        x_route_and_go(x);
        break;
    case XK_HEALTH: {
        /* draining: 503, so a load balancer stops sending here */
        static const char ok[] = "{\"status\":\"ok\"}", dr[] = "{\"status\":\"draining\"}";
        if (x->w->draining)
            x_local_body(x, 503, "application/json", dr, sizeof(dr) - 1, NULL);
        else
            x_local_body(x, 200, "application/json", ok, sizeof(ok) - 1, NULL);
        break;
    }
    case XK_MODELS: {
        struct sbuf b;
        sbuf_init(&b);
        gw_models_json(x->w->g, &b);
        if (b.oom)
            x_local(x, 500, "out of memory", "internal");
        else
            x_local_body(x, 200, "application/json", b.data ? b.data : "", b.len, NULL);
        sbuf_free(&b);
        break;
    }
    case XK_BADMETHOD: {
        struct sbuf b;
        sbuf_init(&b);
        http_error_json(&b, 405, "Method Not Allowed");
        x->r.error = "bad_method";
        const char *allow = path_is(x, "/v1/chat/completions") ||
                                    path_is(x, "/v1/completions")
                                ? "allow: POST\r\n"
                                : "allow: GET, HEAD\r\n";
        x_local_body(x, 405, "application/json", b.data ? b.data : "", b.len, allow);
        sbuf_free(&b);
        break;
    }
    default:
        x_local(x, 404, "Not Found", "not_found");
        break;
    }
}

/* ---- retries ---- */

static const char *retry_metric(int kind)
{
    switch (kind) {
    case FK_CONNECT: return "connect";
    case FK_CONNECT_TIMEOUT: return "timeout";
    default: return "reset";
    }
}

/* Routes x once more, avoiding failed_slot and every pod that failed in
 * the last retry.avoid_failed_ms (x->r.retries becomes 1), within the
 * retry budget. 1 when another pod was chosen (the retry is counted), 0
 * when none is left or the budget is spent: x is unrouted then. */
static int x_route_again(struct xreq *x, uint32_t failed_slot, const char *metric)
{
    struct gw *g = x->w->g;
    if (x->r.retries || !gw_retry_allowed(g))
        return 0;
    gw_route_release(g, &x->r);
    x->r.retries = 1;
    if (gw_route(g, &x->r, failed_slot) != ROUTE_OK)
        return 0;
    gw_metrics_retry(g->metrics, metric);
    x->r.t_routed = now_ns();
    x->r.t_upstream_sent = x->r.t_first_byte = 0;
    x->fresh_tried = 0;
    return 1;
}

/* The answer began and cannot be completed: the client's stream ends
 * with one error event and [DONE] where SSE can carry it, else it is cut
 * (RST_STREAM, or the HTTP/1.1 connection closed). */
void x_end_with_error(struct xreq *x, const char *cause, int code, const char *msg)
{
    if (x->done || x->dead)
        return;
    x->r.error = cause;
    if (x->up) { /* the pod's request is aborted with its connection */
        struct upconn *u = x->up;
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
    }
    if (x->sse && x->resp_clen < 0) {
        struct sbuf ev;
        sbuf_init(&ev);
        sbuf_puts(&ev, x->sse_at_boundary ? "data: " : "\n\ndata: ");
        http_error_json(&ev, code, msg);
        sbuf_puts(&ev, "\n\ndata: [DONE]\n\n");
        sbuf_reset(&x->hold); /* a partial event is dropped, never relayed */
        sink_body(x, ev.data ? ev.data : "", ev.len);
        sbuf_free(&ev);
        x_account(x);
        sink_end(x, 0);
    } else {
        x_account(x);
        sink_end(x, 1); /* the framing cannot carry an error: cut it */
    }
}

/* The pod failed after the answer began. It feeds outlier detection; it
 * is not marked down (it may serve short answers well, and health checks
 * still pass). */
static void x_midstream_fail(struct xreq *x, int kind)
{
    gw_attempt_done(x->w->g, x->up_slot, 0);
    if (kind == FK_STREAM_IDLE)
        x_end_with_error(x, "stream_idle_timeout", 504, "upstream pod sent nothing for stream_idle_timeout_ms");
    else
        x_end_with_error(x, "upstream_midstream", 502, "upstream pod failed mid-stream");
}

void relay_up_fail(struct xreq *x, int kind, int reused, const char *cause)
{
    if (x->done || x->dead)
        return;
    struct gw *g = x->w->g;
    if (kind == FK_LOCAL) {
        /* out of file descriptors or local ports (counted where it
         * happened: kvgate_local_errors_total): no pod is to blame, and
         * another pod would fail the same way */
        char msg[160];
        snprintf(msg, sizeof(msg), "the gateway is out of resources (%s); try again",
                 cause ? cause : "local error");
        if (x->resp_started) {
            x_end_with_error(x, "local_error", 503, msg);
            return;
        }
        x_local(x, 503, msg, "local_error");
        return;
    }
    if (x->resp_started) {
        x_midstream_fail(x, kind);
        return;
    }
    uint32_t slot = x->up_slot;
    if (kind == FK_RESET && reused && !x->fresh_tried) {
        x->fresh_tried = 1; /* the pod probably closed an idle conn */
        x->r.t_upstream_sent = 0;
        if (up_start(x, 1) == 0)
            return;
    }
    if (kind == FK_CONNECT || kind == FK_CONNECT_TIMEOUT)
        gw_pod_failed(g, slot);
    gw_attempt_done(g, slot, 0);
    /* a malformed head (FK_PROTO) is the pod failing like a reset: nothing
     * of it reached the client. A first-byte timeout is not retried: the
     * pod may well be working on it. */
    int retriable = kind == FK_CONNECT || kind == FK_CONNECT_TIMEOUT || kind == FK_RESET ||
                    kind == FK_PROTO;
    if (retriable && x_route_again(x, slot, retry_metric(kind))) {
        if (up_start(x, 0) == 0)
            return;
        cause = "out of memory";
    }
    if (kind == FK_FB_TIMEOUT || kind == FK_STREAM_IDLE) {
        x_local(x, 504, kind == FK_FB_TIMEOUT ? "upstream pod did not answer within first_byte_timeout_ms"
                                      : "upstream pod stopped sending its answer's head",
                "upstream_timeout");
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "upstream pod failed: %s", cause ? cause : "error");
    x_local(x, 502, msg, "upstream_failed");
}

/* ---- relaying the response ---- */

static int ci_prefix(const char *v, size_t vl, const char *lit)
{
    return lc_prefix(v, vl, lit);
}

int relay_up_head(struct xreq *x, struct upconn *u, int status,
                  const struct http1_header *h, size_t nh, int64_t clen,
                  int has_body)
{
    /* A 5xx before anything reached the client: another pod, if there is
     * one; else this answer is relayed as is. */
    if (status >= 500) /* a failed attempt; success is counted at the answer's end */
        gw_attempt_done(x->w->g, u->slot, 0);
    if (status >= 500 && x_route_again(x, u->slot, "5xx")) {
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
        if (up_start(x, 0) < 0)
            x_local(x, 502, "upstream pod failed: out of memory",
                    "upstream_failed");
        return -1;
    }
    struct sbuf hb, conn;
    sbuf_init(&hb);
    sbuf_init(&conn); /* the pod's Connection values: the fields they name stay here */
    for (size_t i = 0; i < nh; i++)
        if (lc_eq(h[i].name, h[i].name_len, "connection")) {
            sbuf_append(&conn, h[i].value, h[i].value_len);
            sbuf_puts(&conn, ",");
        }
    for (size_t i = 0; i < nh; i++) {
        const struct http1_header *f = &h[i];
        if (hop_by_hop(f->name, f->name_len))
            continue;
        if (conn.len && named_in(&conn, f->name, f->name_len))
            continue;
        if (lc_eq(f->name, f->name_len, "content-type") &&
            ci_prefix(f->value, f->value_len, "text/event-stream"))
            x->sse = 1;
        if (lc_eq(f->name, f->name_len, "x-gateway-destination-endpoint"))
            continue;
        size_t at = hb.len;
        sbuf_append(&hb, f->name, f->name_len);
        for (size_t k = at; k < hb.len && hb.data; k++)
            if (hb.data[k] >= 'A' && hb.data[k] <= 'Z')
                hb.data[k] += 32;
        sbuf_puts(&hb, ": ");
        sbuf_append(&hb, f->value, f->value_len);
        sbuf_puts(&hb, "\r\n");
    }
    sbuf_free(&conn);
    sbuf_printf(&hb, "x-gateway-destination-endpoint: %s\r\n", x->dest);
    int bodyless = status < 200 || status == 204 || status == 304;
    int64_t cl = has_body ? clen : (bodyless ? -1 : 0);
    if (hb.oom) {
        sbuf_free(&hb);
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
        x_local(x, 500, "out of memory", "internal");
        return -1;
    }
    sink_head(x, status, hb.data, hb.len, cl);
    sbuf_free(&hb);
    if (u->req_sent)
        x_body_drop(x); /* no retry from here: the body need not wait for the answer's end */
    /* not flushed here: up_parse flushes the head alone only when no body
     * bytes came with it, so a response read in one piece leaves in one
     * send */
    return x->dead || x->done || u->x != x ? -1 : 0;
}

/* One complete SSE event (without its blank line): counted, and timed
 * when it carries generated text. */
static void sse_event(void *arg, const char *e, size_t n)
{
    struct xreq *x = arg;
    enum sse_kind k = sse_kind(e, n);
    if (k == SSE_NO_DATA)
        return;
    x->r.events++;
    if (k != SSE_CONTENT)
        return;
    uint64_t t = now_ns();
    if (!x->r.t_first_token)
        x->r.t_first_token = t;
    /* The hook sees the previous content event's time in t_last_token. */
    gw_request_event(x->w->g, &x->r, t);
    x->r.t_last_token = t;
}

/* Relays the complete events in x->hold, keeps a partial one back. */
static void sse_relay(struct xreq *x)
{
    const char *d = x->hold.data;
    size_t len = x->hold.len;
    size_t done = sse_split(d, len, sse_event, x);
    if (done == 0 && len > DP_SSE_HOLD_MAX) {
        done = len; /* not SSE after all, or a giant event: pass it on */
        x->sse_at_boundary = 0;
    } else if (done) {
        x->sse_at_boundary = 1;
    }
    if (done) {
        sink_body(x, d, done);
        sbuf_consume(&x->hold, done);
    }
}

/* The stream's client did not take its output down to max_buffered_bytes
 * / 2 within send_timeout_ms (an HTTP/2 client can hold one stream's
 * window shut while it reads the others): the stream is dropped, its pod
 * request aborted if it still runs, so it holds no pod slot and, even
 * when the pod has finished, no buffer. */
static void x_stall_cb(struct ev_loop *l, void *arg)
{
    struct xreq *x = arg;
    x->stall_timer = 0;
    if (x->dead || x_pending(x) <= x->w->g->cfg.max_buffered_bytes / 2)
        return;
    struct cconn *c = x->c;
    gw_metrics_limit(x->w->g->metrics, "send_timeout");
    if (!x->done) {
        x->r.error = "send_timeout";
        if (x->up) {
            struct upconn *u = x->up;
            x->up = NULL;
            u->x = NULL;
            up_kill(u);
        }
        x_account(x);
    }
    if (x->sid) {
        sink_end(x, 1); /* RST_STREAM: the connection's other streams go on */
    } else {
        cconn_fail(c); /* HTTP/1.1: the rest of the answer can never be framed */
    }
}

static void x_backpressure(struct xreq *x)
{
    size_t max = x->w->g->cfg.max_buffered_bytes;
    if (x->up && !x->up_paused && max && x_pending(x) > max) {
        x->up_paused = 1;
        up_pause(x->up);
        uint32_t ms = x->w->g->cfg.send_timeout_ms;
        if (ms && !x->stall_timer)
            x->stall_timer = ev_timer_at(x->w->l, now_ns() + ms * 1000000ull, x_stall_cb, x);
    }
}

void x_client_drained(struct xreq *x)
{
    size_t max = x->w->g->cfg.max_buffered_bytes;
    if (x->up_paused && x_pending(x) <= max / 2) {
        x->up_paused = 0;
        ev_timer_cancel(x->w->l, x->stall_timer);
        x->stall_timer = 0;
        if (x->up)
            up_resume(x->up);
    }
}

void relay_up_body(struct xreq *x, const char *p, size_t n)
{
    if (x->done || x->dead)
        return;
    if (x->sse) {
        if (sbuf_append(&x->hold, p, n)) {
            cconn_fail(x->c);
            return;
        }
        sse_relay(x);
    } else {
        sink_body(x, p, n);
    }
    if (!x->last_body) /* else relay_up_end flushes, after splice_hold */
        cconn_flush(x->c);
    if (!x->dead && !x->done)
        x_backpressure(x);
}

void relay_up_end(struct xreq *x)
{
    if (x->done || x->dead)
        return;
    if (x->hold.len) { /* a last event without its blank line */
        sse_event(x, x->hold.data, x->hold.len);
        sink_body(x, x->hold.data, x->hold.len);
        sbuf_reset(&x->hold);
    }
    if (x->r.status < 500) /* a 4xx is the client's doing, not the pod's */
        gw_attempt_done(x->w->g, x->up_slot, 1);
    struct upconn *u = x->up;
    x->up = NULL;
    if (u && !splice_hold(x, u)) /* a session's conn may be kept for the kernel splice */
        up_done(u);
    x->up_paused = 0;
    x_account(x);
    sink_end(x, 0);
}
