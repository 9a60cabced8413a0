/* relay: an exchange from a complete request to its answer's last byte:
 * answer the gateway's own paths, scan and route the body, drive the pod
 * attempts (one retry on another pod), and relay the pod's answer through
 * the exchange's sink, watching SSE events. It never names a protocol
 * (exchange.h) and tells the optional layer (the splice) through its
 * hooks.
 *
 * Retry rules (before any byte reached the client):
 *  - a reused keep-alive conn that fails before any response byte: once
 *    more on a fresh conn to the same pod, not counted as the retry;
 *  - connect failure (refused, timeout), reset / EOF before a response
 *    byte, a malformed head, or a 5xx head: one retry on another pod
 *    (gw_route avoiding the failed slot and pods that just failed),
 *    within the retry budget; connect failures also mark the pod down;
 *  - the retry's failure is final: a 5xx is relayed as is, anything else
 *    is a 502 (504 for a head timeout, which is never retried: the pod
 *    may well be working on it).
 * After the first byte went to the client, a pod failure ends an SSE
 * stream with one error event and [DONE]; other bodies are cut (close or
 * RST_STREAM) since their framing cannot carry an error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/httpstatus.h"
#include "common/netaddr.h"
#include "gateway/exchange.h"
#include "gateway/gwmetrics.h"
#include "gateway/sse.h"
#include "gateway/upstream.h"

#define SSE_HOLD_MAX (64u << 10) /* partial SSE event held back at most */

static const struct xlayer *g_layer; /* the splice, when on */

void relay_set_layer(const struct xlayer *l)
{
    g_layer = l;
}

static const struct up_events relay_up_events;

/* ---- the request to the pod ---- */

/* x's request as the pod gets it: re-framed, end-to-end fields only. */
static int build_head(struct xreq *x)
{
    const struct pod_target *p = &x->r.pod;
    struct sbuf *h = &x->up_head;
    sbuf_reset(h);
    sbuf_printf(h, "%s ", x->method[0] ? x->method : "POST");
    sbuf_append(h, x->path.data ? x->path.data : "/", x->path.data ? x->path.len : 1);
    if (strchr(p->host, ':'))
        sbuf_printf(h, " HTTP/1.1\r\nHost: [%s]:%u\r\n", p->host, p->port);
    else
        sbuf_printf(h, " HTTP/1.1\r\nHost: %s:%u\r\n", p->host, p->port);
    sbuf_puts(h, "Content-Type: ");
    if (x->ctype.len)
        sbuf_append(h, x->ctype.data, x->ctype.len);
    else
        sbuf_puts(h, "application/json");
    sbuf_printf(h, "\r\nContent-Length: %zu\r\n", x->body.len);
    sbuf_append(h, x->fwd.data ? x->fwd.data : "", x->fwd.len);
    sbuf_puts(h, "X-Forwarded-For: ");
    if (x->xff.len) {
        sbuf_append(h, x->xff.data, x->xff.len);
        sbuf_puts(h, ", ");
    }
    sbuf_printf(h, "%s\r\n\r\n", x->xc->peer);
    return h->oom ? -ENOMEM : 0;
}

/* One attempt at x->r.pod (fresh_only: a new connection). 0 or -ENOMEM. */
static int attempt(struct xreq *x, int fresh_only)
{
    if (build_head(x) < 0)
        return -ENOMEM;
    struct up_request rq = { x->up_head.data, x->up_head.len, x->body.data, x->body.len };
    x->up_slot = x->r.pod.slot;
    x->up_paused = 0;
    netaddr_text(&x->r.pod.addr, x->dest, sizeof(x->dest), 1);
    return up_start(x_wc(x)->ups, &x->r.pod, fresh_only, &rq, &relay_up_events, x, &x->up);
}

/* ---- dispatch ---- */

/* accounting.request_usage: a streamed request that did not ask for usage
 * goes to the pod with stream_options.include_usage (accounting.h says
 * what changes on the wire), and its answer's usage-only event is dropped.
 * The body's growth is charged like the rest of it; where it cannot be,
 * the request goes as it came (its tokens are then estimated). */
static void ask_for_usage(struct xreq *x)
{
    struct sbuf nb;
    sbuf_init(&nb);
    if (acct_request_rewrite(&x->r, x->body.data, x->body.len, &nb) == 1 &&
        (nb.len <= x->charged || x_charge(x, nb.len - x->charged) == 0)) {
        sbuf_free(&x->body);
        x->body = nb;
        x->strip_usage = 1;
        return;
    }
    sbuf_free(&nb);
}

static void route_and_go(struct xreq *x)
{
    struct gw *g = x_wc(x)->g;
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
    acct_class(&g->cfg, r, x->path.data, x->path.len);
    if (g->cfg.request_usage)
        ask_for_usage(x);
    r->body = x->body.data;
    r->body_len = x->body.len;
    enum route_status st = gw_route(g, r, UINT32_MAX);
    if (st != ROUTE_OK) {
        char msg[sizeof(r->model) + 64];
        if (st == ROUTE_UNKNOWN_MODEL)
            snprintf(msg, sizeof(msg), "The model `%s` does not exist.", r->model);
        else
            snprintf(msg, sizeof(msg), "no pod can serve model %s now", r->model);
        x_local(x, st == ROUTE_UNKNOWN_MODEL ? 404 : 503, msg,
                st == ROUTE_UNKNOWN_MODEL ? "unknown_model" : "no_pod");
        return;
    }
    r->t_routed = ev_now_ns();
    x->fresh_tried = 0;
    if (g_layer)
        g_layer->routed(x); /* a session's connection enters kvg_sock (PASS) */
    if (attempt(x, 0) < 0)
        x_local(x, 502, "upstream pod failed: out of memory", "upstream_failed");
}

/* The gateway's own paths: /health, /v1/models, 404, 405. */
static void answer_locally(struct xreq *x)
{
    struct sbuf b;
    sbuf_init(&b);
    switch (x->kind) {
    case XK_HEALTH:
        /* draining: 503, so a load balancer stops sending here */
        sbuf_puts(&b, x_wc(x)->draining ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}");
        x_local_body(x, x_wc(x)->draining ? 503 : 200, "application/json", b.data, b.len, NULL);
        break;
    case XK_MODELS:
        gw_models_json(x_wc(x)->g, &b);
        if (b.oom)
            x_local(x, 500, "out of memory", "internal");
        else
            x_local_body(x, 200, "application/json", b.data ? b.data : "", b.len, NULL);
        break;
    case XK_BADMETHOD: {
        http_error_json(&b, 405, "Method Not Allowed");
        x->r.error = "bad_method";
        int post = x_path_is(x, "/v1/chat/completions") || x_path_is(x, "/v1/completions");
        x_local_body(x, 405, "application/json", b.data ? b.data : "", b.len,
                     post ? "allow: POST\r\n" : "allow: GET, HEAD\r\n");
        break;
    }
    default:
        x_local(x, 404, "Not Found", "not_found");
        break;
    }
    sbuf_free(&b);
}

void x_dispatch(struct xreq *x)
{
    if (x->dispatched || x->done || x->dead)
        return;
    x->dispatched = 1;
    x_classify(x);
    if (!x->r.t_body)
        x->r.t_body = ev_now_ns();
    if (x->kind == XK_ROUTED)
        route_and_go(x);
    else
        answer_locally(x);
}

/* ---- failures and retries ---- */

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
 * retry budget, and starts the attempt. 1 when it is under way, 0 when no
 * pod is left or the budget is spent (x is unrouted then), -ENOMEM. */
static int retry_elsewhere(struct xreq *x, uint32_t failed_slot, const char *metric)
{
    struct gw *g = x_wc(x)->g;
    if (x->r.retries || !gw_retry_allowed(g))
        return 0;
    gw_route_release(g, &x->r);
    x->r.retries = 1;
    if (gw_route(g, &x->r, failed_slot) != ROUTE_OK)
        return 0;
    gw_metrics_retry(g->metrics, metric);
    x->r.t_routed = ev_now_ns();
    x->r.t_upstream_sent = x->r.t_first_byte = 0;
    x->fresh_tried = 0;
    return attempt(x, 0) < 0 ? -ENOMEM : 1;
}

/* The pod failed after the answer began. It feeds outlier detection; it
 * is not marked down (it may serve short answers well, and health checks
 * still pass). */
static void midstream_fail(struct xreq *x, int kind)
{
    gw_attempt_done(x_wc(x)->g, x->up_slot, 0);
    if (kind == FK_STREAM_IDLE)
        x_end_with_error(x, "stream_idle_timeout", 504,
                         "upstream pod sent nothing for stream_idle_timeout_ms");
    else
        x_end_with_error(x, "upstream_midstream", 502, "upstream pod failed mid-stream");
}

static void local_fail(struct xreq *x, const char *cause)
{
    /* out of file descriptors or local ports (counted where it happened:
     * kvgate_local_errors_total): no pod is to blame, and another pod
     * would fail the same way */
    char msg[160];
    snprintf(msg, sizeof(msg), "the gateway is out of resources (%s); try again",
             cause ? cause : "local error");
    if (x->resp_started)
        x_end_with_error(x, "local_error", 503, msg);
    else
        x_local(x, 503, msg, "local_error");
}

static void up_fail_ev(void *owner, int kind, int reused, const char *cause)
{
    struct xreq *x = owner;
    x->up = NULL; /* gone already */
    if (x->done || x->dead)
        return;
    struct gw *g = x_wc(x)->g;
    if (kind == FK_LOCAL) {
        local_fail(x, cause);
        return;
    }
    if (x->resp_started) {
        midstream_fail(x, kind);
        return;
    }
    uint32_t slot = x->up_slot;
    if (kind == FK_RESET && reused && !x->fresh_tried) {
        x->fresh_tried = 1; /* the pod probably closed an idle conn */
        x->r.t_upstream_sent = 0;
        if (attempt(x, 1) == 0)
            return;
    }
    if (kind == FK_CONNECT || kind == FK_CONNECT_TIMEOUT)
        gw_pod_failed(g, slot);
    gw_attempt_done(g, slot, 0);
    if (kind != FK_FB_TIMEOUT && kind != FK_STREAM_IDLE)
        gw_route_withdraw(g, &x->r); /* it never prefilled: no credit (a pod that
                                      * is slow to answer may be prefilling) */
    /* a malformed head (FK_PROTO) is the pod failing like a reset: nothing
     * of it reached the client. A head timeout is not retried: the pod may
     * well be working on it. */
    int retriable = kind == FK_CONNECT || kind == FK_CONNECT_TIMEOUT || kind == FK_RESET ||
                    kind == FK_PROTO;
    int rc = retriable ? retry_elsewhere(x, slot, retry_metric(kind)) : 0;
    if (rc == 1)
        return;
    if (rc < 0)
        cause = "out of memory";
    if (kind == FK_FB_TIMEOUT || kind == FK_STREAM_IDLE) {
        x_local(x, 504, kind == FK_FB_TIMEOUT
                            ? "upstream pod did not answer within first_byte_timeout_ms"
                            : "upstream pod stopped sending its answer's head",
                "upstream_timeout");
        return;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "upstream pod failed: %s", cause ? cause : "error");
    x_local(x, 502, msg, "upstream_failed");
}

/* ---- the answer ---- */

static void up_sent_ev(void *owner)
{
    struct xreq *x = owner;
    x->r.t_upstream_sent = ev_now_ns();
    gw_request_sent(x_wc(x)->g, &x->r, x->r.t_upstream_sent);
}

static void up_first_byte_ev(void *owner)
{
    struct xreq *x = owner;
    x->r.t_first_byte = ev_now_ns();
    gw_request_answered(x_wc(x)->g, &x->r, x->r.t_first_byte);
}

/* The pod's fields as the client gets them: end-to-end ones only, names
 * lower-case, our destination header instead of any the pod sent. */
static int relay_fields(struct xreq *x, const struct http1_response *h, struct sbuf *hb)
{
    struct sbuf conn;
    sbuf_init(&conn); /* the pod's Connection values: the fields they name stay here */
    for (size_t i = 0; i < h->nheaders; i++)
        if (http1_name_eq(h->headers[i].name, h->headers[i].name_len, "connection")) {
            sbuf_append(&conn, h->headers[i].value, h->headers[i].value_len);
            sbuf_puts(&conn, ",");
        }
    for (size_t i = 0; i < h->nheaders; i++) {
        const struct http1_header *f = &h->headers[i];
        if (x_hop_by_hop(f->name, f->name_len) ||
            (conn.len && x_named_in(&conn, f->name, f->name_len)) ||
            http1_name_eq(f->name, f->name_len, "x-gateway-destination-endpoint"))
            continue;
        if (http1_name_eq(f->name, f->name_len, "content-type") &&
            http1_media_type_is(f->value, f->value_len, "text/event-stream"))
            x->sse = 1;
        size_t at = hb->len;
        sbuf_append(hb, f->name, f->name_len);
        for (size_t k = at; k < hb->len && hb->data; k++)
            if (hb->data[k] >= 'A' && hb->data[k] <= 'Z')
                hb->data[k] += 32;
        sbuf_puts(hb, ": ");
        sbuf_append(hb, f->value, f->value_len);
        sbuf_puts(hb, "\r\n");
    }
    sbuf_free(&conn);
    sbuf_printf(hb, "x-gateway-destination-endpoint: %s\r\n", x->dest);
    return hb->oom ? -ENOMEM : 0;
}

static void up_head_ev(void *owner, struct upconn *u, const struct http1_response *h,
                       int has_body, int more)
{
    struct xreq *x = owner;
    int status = h->status;
    /* A 5xx before anything reached the client: another pod, if there is
     * one; else this answer is relayed as is. */
    if (status >= 500) { /* a failed attempt; success is counted at the answer's end */
        gw_attempt_done(x_wc(x)->g, x->up_slot, 0);
        gw_route_withdraw(x_wc(x)->g, &x->r);
        x->up = NULL;
        int rc = retry_elsewhere(x, up_slot(u), "5xx");
        if (rc != 0) {
            up_kill(u);
            if (rc < 0)
                x_local(x, 502, "upstream pod failed: out of memory", "upstream_failed");
            return;
        }
        x->up = u;
    }
    struct sbuf hb;
    sbuf_init(&hb);
    if (relay_fields(x, h, &hb) < 0) {
        sbuf_free(&hb);
        x_local(x, 500, "out of memory", "internal"); /* drops u */
        return;
    }
    int bodyless = status < 200 || status == 204 || status == 304;
    int64_t clen = !h->chunked && !h->until_close ? h->content_length : -1;
    /* an answer framed by its length cannot lose an event; with
     * accounting.enabled off the answer is never read (acct stays unread:
     * each body chunk and SSE event costs one branch) */
    if (x_wc(x)->g->cfg.accounting)
        acct_answer_head(&x->acct, status, x->sse, x->strip_usage && clen < 0);
    x_sink_head(x, status, hb.data, hb.len, has_body ? clen : (bodyless ? -1 : 0));
    sbuf_free(&hb);
    if (x->r.t_upstream_sent)
        x_body_drop(x); /* no retry from here: the body need not wait for the answer's end */
    /* the client sees the head before the first token; a head read with
     * body bytes leaves with them, in one send */
    if (!more && !x->dead)
        x->sink->flush(x);
}

/* Relaying the events of one sse_split pass: the bytes from `from` on
 * are still to go; `skip`: the last event is dropped (from moves to the
 * next event's start, past its blank line). */
struct sse_pass {
    struct xreq *x;
    const char *from;
    int skip;
};

/* One complete SSE event (without its blank line): read for usage,
 * dropped when it is the usage-only event the client did not ask for,
 * counted, and timed when it carries generated text. */
static void sse_event(void *arg, const char *e, size_t n)
{
    struct sse_pass *sp = arg;
    struct xreq *x = sp->x;
    if (sp->skip) {
        sp->from = e;
        sp->skip = 0;
    }
    if (acct_answer_event(&x->acct, e, n)) {
        x_sink_body(x, sp->from, (size_t)(e - sp->from));
        sp->skip = 1;
        return;
    }
    enum sse_kind k = sse_kind(e, n);
    if (k == SSE_NO_DATA)
        return;
    x->r.events++;
    if (k != SSE_CONTENT)
        return;
    x->r.content_events++;
    uint64_t t = ev_now_ns();
    if (!x->r.t_first_token)
        x->r.t_first_token = t;
    /* The hook sees the previous content event's time in t_last_token. */
    gw_request_event(x_wc(x)->g, &x->r, t);
    x->r.t_last_token = t;
}

/* Relays the complete events in x->hold, keeps a partial one back. */
static void sse_relay(struct xreq *x)
{
    const char *d = x->hold.data;
    size_t len = x->hold.len;
    struct sse_pass sp = { x, d, 0 };
    size_t done = sse_split(d, len, sse_event, &sp);
    if (done == 0 && len > SSE_HOLD_MAX) {
        done = len; /* not SSE after all, or a giant event: pass it on */
        x->sse_at_boundary = 0;
    } else if (done) {
        x->sse_at_boundary = 1;
    }
    if (done) {
        if (!sp.skip)
            x_sink_body(x, sp.from, (size_t)(d + done - sp.from));
        sbuf_consume(&x->hold, done);
    }
}

/* ---- backpressure ---- */

/* The client did not take x's output down to max_buffered_bytes / 2
 * within send_timeout_ms (an HTTP/2 client can hold one stream's window
 * shut while it reads the others): x is cut and its pod request aborted,
 * so it holds no pod slot and no buffer. */
static void stall_cb(struct ev_loop *l, void *arg)
{
    struct xreq *x = arg;
    x->stall_timer = 0;
    if (x->dead || x->done || x->sink->pending(x) <= x_wc(x)->g->cfg.max_buffered_bytes / 2)
        return;
    gw_metrics_limit(x_wc(x)->g->metrics, "send_timeout");
    x->r.error = "send_timeout";
    x_finish(x, 1);
}

static void backpressure(struct xreq *x)
{
    struct gw *g = x_wc(x)->g;
    size_t max = g->cfg.max_buffered_bytes;
    if (x->up && !x->up_paused && max && x->sink->pending(x) > max) {
        x->up_paused = 1;
        up_pause(x->up);
        uint32_t ms = g->cfg.send_timeout_ms;
        if (ms && !x->stall_timer)
            x->stall_timer = ev_timer_at(x_wc(x)->l, ev_now_ns() + ms * 1000000ull, stall_cb, x);
    }
}

void x_client_drained(struct xreq *x)
{
    size_t max = x_wc(x)->g->cfg.max_buffered_bytes;
    if (x->up_paused && x->sink->pending(x) <= max / 2) {
        x->up_paused = 0;
        ev_timer_cancel(x_wc(x)->l, x->stall_timer);
        x->stall_timer = 0;
        if (x->up)
            up_resume(x->up);
    }
}

static void up_body_ev(void *owner, const char *p, size_t n, int last)
{
    struct xreq *x = owner;
    if (x->done || x->dead)
        return;
    if (x->sse) {
        if (sbuf_append(&x->hold, p, n)) {
            x->r.error = "internal";
            x_finish(x, 1);
            return;
        }
        sse_relay(x);
    } else {
        acct_answer_body(&x->acct, p, n);
        x_sink_body(x, p, n);
    }
    if (last) /* the end follows at once and flushes, after the layer's turn */
        return;
    x->sink->flush(x);
    if (!x->dead && !x->done)
        backpressure(x);
}

static void up_end_ev(void *owner, struct upconn *u)
{
    struct xreq *x = owner;
    x->up = NULL;
    if (x->hold.len) { /* a last event without its blank line */
        struct sse_pass sp = { x, x->hold.data, 0 };
        sse_event(&sp, x->hold.data, x->hold.len);
        if (!sp.skip)
            x_sink_body(x, x->hold.data, x->hold.len);
        sbuf_reset(&x->hold);
    }
    if (x->r.status < 500) /* a 4xx is the client's doing, not the pod's */
        gw_attempt_done(x_wc(x)->g, x->up_slot, 1);
    /* a session's conn may be kept for the kernel splice, before the
     * answer's last bytes reach the client */
    if (!g_layer || !g_layer->answer_end(x, u))
        up_release(u);
    x->up_paused = 0;
    x_finish(x, 0);
}

static const struct up_events relay_up_events = {
    up_sent_ev, up_first_byte_ev, up_head_ev, up_body_ev, up_end_ev, up_fail_ev,
};
