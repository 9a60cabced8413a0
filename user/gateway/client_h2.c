/* client_h2: the HTTP/2 (h2c) client side, on nghttp2 1.52. Shaped as
 * connection (session) -> stream (struct h2x, holding the exchange): a
 * stream is created at its first HEADERS, collects headers and DATA, and
 * is dispatched once the read that completed it has been handed over
 * (a stream reset in the same read never reaches a pod). The answer goes
 * through a per-stream queue drained by a deferred data provider that
 * the pod's bytes resume; the queue's size is what backpressure reads.
 *
 * A stream outlives its exchange when relay ends the exchange before
 * nghttp2 has sent all of it: it is freed when nghttp2 closes it (or the
 * connection ends), and reset if the client takes none of it for
 * limits.send_timeout_ms.
 *
 * common/h2srv.c moves the bytes and filters nghttp2's callbacks down to
 * the st_* stream callbacks here. nghttp2 forbids
 * nghttp2_session_mem_send from inside its callbacks, and answers are
 * queued inside them: h2.in_ng marks those sections, this file's flushes
 * wait for h2_input's, after h2srv_recv returns. Flow control is manual:
 * DATA is given back to the windows as it is buffered (or thrown away),
 * and buffering is bounded per connection and in all. */
#include "gateway/client_h2.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/dlist.h"
#include "common/ev.h"
#include "common/h2srv.h"
#include "gateway/conn.h"
#include "gateway/gwmetrics.h"

#define H2_OUT_SOFT (256u << 10) /* stop serialising frames above this */
#define H2_MAX_STREAMS 256

struct h2x {
    struct xreq x;
    struct cconn *c;
    int32_t id;
    struct h2x *prev, *next;    /* the connection's streams */
    int ready;                  /* complete, to dispatch after this read */
    int detached, closed;       /* relay ended the exchange; nghttp2 closed it */
    size_t hdr_bytes;           /* decoded header bytes (RFC 9113 sizes) */
    int hdr_overflow;           /* more than limits.max_header_bytes: 431 */
    uint64_t timer;             /* head+body deadline; after detach, the send stall */
    uint64_t out_ns;            /* the client last took some of the answer */
    struct sbuf out;            /* the answer's body, drained by read_cb */
    size_t off;
    int eof;
    struct grave grave;
};

struct h2conn {
    struct h2srv h2;            /* session; in_ng: inside nghttp2, no mem_send */
    struct grave grave;         /* freed after the callback that ended it */
    struct h2x *streams;
    uint32_t nstreams;
    uint32_t nready;            /* streams complete, dispatched after the read */
};

static const struct xsink_ops h2_sink;
static const struct cconn_ops h2_ops;

static struct h2x *h2x_of(struct xreq *x)
{
    return (struct h2x *)((char *)x - offsetof(struct h2x, x));
}

static struct h2conn *S(struct cconn *c)
{
    return c->proto;
}

/* Flushes c unless nghttp2 is running (h2_input flushes after it). */
static void flush(struct cconn *c)
{
    if (!c->nc.dead && !S(c)->h2.in_ng)
        cconn_flush(c);
}

/* ---- streams ---- */

static void h2x_destroy(struct grave *g)
{
    struct h2x *s = GRAVE_OWNER(g, struct h2x, grave);
    x_fini(&s->x);
    sbuf_free(&s->out);
    kv_free(s);
}

static void link_stream(struct cconn *c, struct h2x *s)
{
    DLIST_PUSH(S(c)->streams, s, prev, next);
    S(c)->nstreams++;
    if (c->timer_kind == CT_IDLE)
        cconn_set_timer(c, CT_NONE);
}

/* The stream is gone for good: off the list, freed after this callback. */
static void unlink_stream(struct h2x *s)
{
    struct cconn *c = s->c;
    struct h2conn *h = S(c);
    ev_timer_cancel(c->wc->l, s->timer);
    s->timer = 0;
    if (s->ready) {
        s->ready = 0;
        h->nready--;
    }
    DLIST_REMOVE(h->streams, s, prev, next);
    if (h->nstreams && --h->nstreams == 0 && !c->nc.dead)
        cconn_set_timer(c, CT_IDLE);
    gy_bury(&c->wc->gy, &s->grave, h2x_destroy);
}

static void stream_init(struct cconn *c, struct h2x *s, int32_t id)
{
    x_init(&s->x, &c->xc, &h2_sink);
    s->c = c;
    s->id = id;
    s->x.r.h2 = 1;
    s->x.keep_alive = 0; /* a stream has no keep-alive of its own */
    sbuf_init(&s->out);
    link_stream(c, s);
}

static struct h2x *stream_new(struct cconn *c, int32_t id)
{
    struct h2x *s = kv_calloc(1, sizeof(*s));
    if (s)
        stream_init(c, s, id);
    return s;
}

/* ---- per-stream deadlines ---- */

/* The request's head and body did not arrive in time. */
static void request_timeout(struct ev_loop *l, void *arg)
{
    struct h2x *s = arg;
    s->timer = 0;
    struct xreq *x = &s->x;
    if (x->dispatched || x->done || x->dead)
        return;
    gw_metrics_limit(x_wc(x)->g->metrics, "header_timeout");
    x_local(x, 408, "request not received in time", "header_timeout");
}

/* A finished exchange whose client takes none of its answer: reset. */
static void send_stall(struct ev_loop *l, void *arg)
{
    struct h2x *s = arg;
    s->timer = 0;
    struct cconn *c = s->c;
    uint64_t limit = (uint64_t)c->wc->g->cfg.send_timeout_ms * 1000000ull;
    if (c->nc.dead || s->closed || s->off == s->out.len)
        return;
    if (ev_now_ns() - s->out_ns < limit) {
        s->timer = ev_timer_at(l, s->out_ns + limit, send_stall, s);
        return;
    }
    gw_metrics_limit(c->wc->g->metrics, "send_timeout");
    nghttp2_submit_rst_stream(S(c)->h2.ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
    cconn_flush(c);
}

/* ---- h2srv callbacks (ud: the cconn; st: the stream) ---- */

static void *st_open(void *ud, int32_t id)
{
    struct cconn *c = ud;
    struct h2x *s = stream_new(c, id);
    if (!s)
        return NULL; /* resets the stream */
    uint32_t ms = c->wc->g->cfg.header_timeout_ms;
    if (ms)
        s->timer = ev_timer_at(c->wc->l, ev_now_ns() + (uint64_t)ms * 1000000ull,
                               request_timeout, s);
    return s;
}

static int st_header(void *ud, void *st, const char *n, size_t nl, const char *v, size_t vl)
{
    struct cconn *c = ud;
    struct h2x *s = st;
    struct xreq *x = &s->x;
    /* what HPACK decodes is bounded by what we keep, not by the wire: a
     * few bytes of indexed references can name a 4 KB table entry again
     * and again (RFC 9113 10.5.1 counts 32 bytes a field on top) */
    s->hdr_bytes += nl + vl + 32;
    if (s->hdr_bytes > c->wc->g->cfg.max_header_bytes) {
        s->hdr_overflow = 1;
        return 0; /* kept nothing more; answered 431 once the head is in */
    }
    if (nl == 7 && memcmp(n, ":method", 7) == 0)
        x_set_method(x, v, vl);
    else if (nl == 5 && memcmp(n, ":path", 5) == 0)
        x_set_path(x, v, vl);
    else if (nl > 0 && n[0] != ':')
        x_add_header(x, n, nl, v, vl);
    return x->fwd.oom || x->path.oom ? -1 : 0;
}

static void refuse(struct cconn *c, struct xreq *x, int status, const char *limit,
                   const char *msg)
{
    gw_metrics_limit(c->wc->g->metrics, limit);
    x_local(x, status, msg, limit);
}

/* Flow control follows what we buffer: every DATA byte is given back to
 * the window once it is in a request body, or thrown away (a stream
 * already answered). A body that would take the connection past its
 * share, or the gateway past limits.max_buffered_total_bytes, is answered
 * 503 instead of buffered (x_body_feed says which). */
static int st_data(void *ud, void *st, const char *p, size_t n)
{
    struct cconn *c = ud;
    struct h2x *s = st;
    struct xreq *x = &s->x;
    int rc = 0;
    if (!x->dispatched && !x->done && !x->dead) {
        rc = x_body_feed(x, p, n);
        if (rc == -E2BIG)
            refuse(c, x, 413, "body_too_large", "request body too large");
        else if (rc == -ENOSPC)
            refuse(c, x, 503, "buffered_total",
                   "the gateway is holding too many request bodies; try again");
    }
    h2srv_consume(&S(c)->h2, s->id, n);
    return rc < 0 && rc != -E2BIG && rc != -ENOSPC ? -1 : 0;
}

/* The head is in, a body follows: refuse early when the head was too large
 * or the announced length is. */
static void st_head(void *ud, void *st)
{
    struct cconn *c = ud;
    struct h2x *s = st;
    struct xreq *x = &s->x;
    if (x->dispatched || x->done || x->dead)
        return;
    if (s->hdr_overflow)
        refuse(c, x, 431, "header_too_large", "request header too large");
    else if (x->req_clen >= 0 && (uint64_t)x->req_clen > c->wc->g->cfg.max_body_bytes)
        refuse(c, x, 413, "body_too_large", "request body too large");
}

/* The request is complete. It is dispatched once nghttp2 has handed over
 * everything it read (h2_input): a stream the client resets in the same
 * read (rapid reset) is gone by then and never costs a pod connection. */
static int st_request(void *ud, void *st)
{
    struct cconn *c = ud;
    struct h2x *s = st;
    struct xreq *x = &s->x;
    if (x->dispatched || x->done || x->dead)
        return 0;
    ev_timer_cancel(c->wc->l, s->timer);
    s->timer = 0;
    x->r.t_body = ev_now_ns();
    if (s->hdr_overflow) {
        refuse(c, x, 431, "header_too_large", "request header too large");
        return 0;
    }
    s->ready = 1;
    S(c)->nready++;
    return 0;
}

static void st_limit(void *ud, const char *which)
{
    struct cconn *c = ud;
    gw_metrics_limit(c->wc->g->metrics, which);
}

static void st_close(void *ud, void *st, uint32_t err)
{
    struct cconn *c = ud;
    struct h2x *s = st;
    s->closed = 1;
    if (!s->x.dead)
        cconn_abort_x(c, &s->x); /* RST_STREAM (or GOAWAY) before its end; -> s_detach */
    else
        unlink_stream(s);
}

static const struct h2srv_callbacks h2_callbacks = {
    st_open, st_header, st_data, st_head, st_request, st_close, st_limit,
};

/* ---- the answer (the exchange's sink) ---- */

static ssize_t read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct h2x *s = src->ptr;
    size_t avail = s->out.len - s->off;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(buf, s->out.data + s->off, n);
        s->out_ns = ev_now_ns();
    }
    s->off += n;
    if (s->off == s->out.len) {
        sbuf_reset(&s->out);
        s->off = 0;
        if (s->eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            /* Answered before the request ended (408, 413): ask the client
             * to stop sending (RFC 9113 8.1); queued after this frame. */
            if (!nghttp2_session_get_stream_remote_close(ng, id))
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        } else if (n == 0) {
            return NGHTTP2_ERR_DEFERRED;
        }
    } else if (s->off > (64u << 10) && s->off > s->out.len / 2) {
        sbuf_consume(&s->out, s->off);
        s->off = 0;
    }
    if (!s->x.dead && s->x.up_paused)
        x_client_drained(&s->x); /* only re-arms the pod's fd */
    return (ssize_t)n;
}

/* "name: value\r\n" lines (names already lower-case and filtered) and
 * :status, content-length as nghttp2 name-value pairs; n or -1. */
static long head_nv(nghttp2_nv *nva, size_t cap, char *st, char *lenbuf, int status,
                    int64_t clen, const char *hdrs, size_t hlen)
{
    size_t n = 0;
#define NV(N, NL, V, VL)                                                      \
    nva[n++] = (nghttp2_nv){ (uint8_t *)(N), (uint8_t *)(V), (NL), (VL),      \
                             NGHTTP2_NV_FLAG_NONE }
    snprintf(st, 8, "%03d", status % 1000);
    NV(":status", 7, st, 3);
    if (clen >= 0) {
        snprintf(lenbuf, 24, "%lld", (long long)clen);
        NV("content-length", 14, lenbuf, strlen(lenbuf));
    }
    const char *p = hdrs, *end = hdrs + hlen;
    while (p < end && n < cap) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *le = eol ? eol : end;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon && colon > p) {
            const char *v = colon + 1, *ve = le;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            NV(p, (size_t)(colon - p), v, (size_t)(ve - v));
        }
        p = eol ? eol + 1 : end;
    }
#undef NV
    return (long)n;
}

static void s_head(struct xreq *x, int status, const char *hdrs, size_t hlen, int64_t clen)
{
    struct h2x *s = h2x_of(x);
    struct cconn *c = s->c;
    if (c->nc.dead)
        return;
    char st[8], lenbuf[24];
    size_t cap = 2;
    for (size_t i = 0; i < hlen; i++)
        cap += hdrs[i] == '\n';
    nghttp2_nv *nva = kv_calloc(cap, sizeof(*nva));
    long n = nva ? head_nv(nva, cap, st, lenbuf, status, clen, hdrs, hlen) : -1;
    int bodyless = status < 200 || status == 204 || status == 304 || x->is_head;
    nghttp2_data_provider prd = { .source.ptr = s, .read_callback = read_cb };
    if (n < 0 ||
        nghttp2_submit_response(S(c)->h2.ng, s->id, nva, (size_t)n, bodyless ? NULL : &prd))
        nghttp2_submit_rst_stream(S(c)->h2.ng, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
    kv_free(nva);
}

static void s_body(struct xreq *x, const char *p, size_t n)
{
    struct h2x *s = h2x_of(x);
    struct cconn *c = s->c;
    if (c->nc.dead)
        return;
    if (sbuf_append(&s->out, p, n)) {
        nghttp2_submit_rst_stream(S(c)->h2.ng, NGHTTP2_FLAG_NONE, s->id,
                                  NGHTTP2_INTERNAL_ERROR);
        return;
    }
    nghttp2_session_resume_data(S(c)->h2.ng, s->id);
}

static void s_end(struct xreq *x)
{
    struct h2x *s = h2x_of(x);
    if (s->c->nc.dead)
        return;
    s->eof = 1;
    nghttp2_session_resume_data(S(s->c)->h2.ng, s->id);
    flush(s->c);
}

static void s_abort(struct xreq *x)
{
    struct h2x *s = h2x_of(x);
    if (s->c->nc.dead)
        return;
    nghttp2_submit_rst_stream(S(s->c)->h2.ng, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_INTERNAL_ERROR);
    flush(s->c);
}

/* Output waiting for the client on x's behalf: the stream's queue only
 * (the connection's frame buffer is capped by H2_OUT_SOFT, and the data
 * provider that drains the queue is where resuming is decided). */
static size_t s_pending(const struct xreq *x)
{
    const struct h2x *s = h2x_of((struct xreq *)x);
    return s->out.len - s->off;
}

static void s_flush(struct xreq *x)
{
    flush(h2x_of(x)->c);
}

/* The exchange is over; the stream lives until nghttp2 closes it (its
 * answer may still be queued), watched for a client that takes none. */
static void s_detach(struct xreq *x)
{
    struct h2x *s = h2x_of(x);
    struct cconn *c = s->c;
    s->detached = 1;
    if (s->ready) {
        s->ready = 0;
        S(c)->nready--;
    }
    ev_timer_cancel(c->wc->l, s->timer);
    s->timer = 0;
    if (s->closed || c->nc.dead) {
        unlink_stream(s);
        return;
    }
    uint32_t ms = c->wc->g->cfg.send_timeout_ms;
    if (ms && s->off < s->out.len) {
        s->out_ns = ev_now_ns();
        s->timer = ev_timer_at(c->wc->l, s->out_ns + (uint64_t)ms * 1000000ull, send_stall, s);
    }
}

static const struct xsink_ops h2_sink = {
    s_head, s_body, s_end, s_abort, s_pending, s_flush, s_detach,
};

/* ---- the session ---- */

/* Dispatches the streams completed in the last read that are still there. */
static void dispatch_ready(struct cconn *c)
{
    struct h2conn *h = S(c);
    while (!c->nc.dead && h->nready) {
        struct h2x *s = h->streams;
        while (s && !s->ready)
            s = s->next;
        if (!s) {
            h->nready = 0;
            break;
        }
        s->ready = 0;
        h->nready--;
        x_dispatch(&s->x); /* may end x (a local answer): the list is walked afresh */
    }
}

static void h2_input(struct cconn *c)
{
    struct h2conn *h = S(c);
    int rc = h2srv_recv(&h->h2);
    if (c->nc.dead)
        return;
    if (rc == 0)
        dispatch_ready(c);
    if (c->nc.dead)
        return;
    if (rc < 0) {
        /* a protocol error or an abuse limit: GOAWAY (nghttp2's own, or
         * PROTOCOL_ERROR where it queued none) goes out before the close
         * (lingering: what the client still sends is read and dropped, so
         * no RST eats the GOAWAY) */
        if (!h->h2.calmed)
            gw_metrics_limit(c->wc->g->metrics, "h2_protocol_error");
        nghttp2_session_terminate_session(h->h2.ng, NGHTTP2_PROTOCOL_ERROR);
        c->nc.closing = 1;
    }
    cconn_flush(c);
}

/* CT_IDLE: no stream for idle_timeout_ms: GOAWAY, then close. CT_REQ: no
 * complete preface in time. */
static void h2_timeout(struct cconn *c, int kind)
{
    if (kind != CT_IDLE) {
        cconn_fail(c);
        return;
    }
    nghttp2_session_terminate_session(S(c)->h2.ng, NGHTTP2_NO_ERROR); /* GOAWAY */
    cconn_flush(c); /* closes once nothing is left to say */
    if (!c->nc.dead)
        c->nc.closing = 1;
}

/* Drain (conn.h): GOAWAY names the last stream served; the session ends
 * once its streams are done. At the deadline what is left ends now. */
static void h2_drain(struct cconn *c, int cut)
{
    struct h2conn *h = S(c);
    if (!cut) {
        nghttp2_submit_goaway(h->h2.ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(h->h2.ng),
                              NGHTTP2_NO_ERROR, NULL, 0);
        cconn_flush(c);
        return;
    }
    for (struct h2x *s = h->streams, *next; s && !c->nc.dead; s = next) {
        next = s->next;
        struct xreq *x = &s->x;
        if (x->done || x->dead)
            continue;
        if (x->resp_started)
            x_end_with_error(x, "shutdown", 503, "the gateway is shutting down");
        else
            x_local(x, 503, "the gateway is shutting down", "shutdown");
    }
    if (!c->nc.dead) {
        c->nc.closing = 1;
        cconn_flush(c);
    }
}

static void h2conn_destroy(struct grave *g)
{
    struct h2conn *h = GRAVE_OWNER(g, struct h2conn, grave);
    h2srv_free(&h->h2); /* nghttp2_session_del calls no callbacks */
    kv_free(h);
}

static void h2_gone(struct cconn *c)
{
    struct h2conn *h = S(c);
    while (h->streams) {
        struct h2x *s = h->streams;
        if (!s->x.dead)
            cconn_abort_x(c, &s->x); /* -> s_detach -> unlink (the connection is dead) */
        else
            unlink_stream(s);
    }
    /* freed after this callback: code up the stack may still read it */
    gy_bury(&c->wc->gy, &h->grave, h2conn_destroy);
}

static const struct cconn_ops h2_ops = {
    .input = h2_input, .timeout = h2_timeout, .drain = h2_drain, .gone = h2_gone,
};

/* base64url (padding optional) -> bytes; length or -1. */
static long b64url_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];
        int v;
        if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
        else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
        else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
        else if (ch == '-' || ch == '+') v = 62;
        else if (ch == '_' || ch == '/') v = 63;
        else if (ch == '=') break;
        else return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)o;
}

/* The session on c; 0 or -ENOMEM (c untouched). */
static int session_new(struct cconn *c, struct h2conn **out)
{
    struct gw *g = c->wc->g;
    struct h2conn *h = kv_calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    struct h2srv_settings set = {
        .max_streams = H2_MAX_STREAMS,
        .max_header_list = g->cfg.max_header_bytes ? g->cfg.max_header_bytes : 65536,
        .out_soft = H2_OUT_SOFT,
        .manual_window = 1,
    };
    int err = h2srv_init(&h->h2, &c->nc, &h2_callbacks, c, &set);
    if (err) {
        kv_free(h);
        return err;
    }
    *out = h;
    return 0;
}

int h2_attach(struct cconn *c)
{
    struct h2conn *h;
    int err = session_new(c, &h);
    if (err)
        return err;
    cconn_set_ops(c, &h2_ops, h);
    cconn_set_timer(c, CT_IDLE); /* preface in: no stream yet */
    return 0;
}

int h2_upgrade(struct cconn *c, struct xreq *x, const char *settings_b64, size_t len)
{
    uint8_t buf[512];
    long n = b64url_decode(settings_b64 ? settings_b64 : "", len, buf, sizeof(buf));
    struct h2conn *h;
    if (n < 0 || session_new(c, &h))
        return -EINVAL;
    if (nghttp2_session_upgrade2(h->h2.ng, buf, (size_t)n, 0, NULL)) {
        h2srv_free(&h->h2);
        kv_free(h);
        return -EINVAL;
    }
    struct h2x *s = kv_calloc(1, sizeof(*s));
    if (!s) {
        h2srv_free(&h->h2);
        kv_free(h);
        return -ENOMEM;
    }
    cconn_set_ops(c, &h2_ops, h);
    stream_init(c, s, 1);
    /* the request moves into stream 1; x is left empty for its owner */
    x_fini(&s->x); /* stream_init's empty buffers */
    s->x = *x;
    s->x.sink = &h2_sink;
    s->x.r.h2 = 1;
    s->x.keep_alive = 0;
    x_init(x, x->xc, x->sink);
    /* server side: upgrade2 ignores stream_user_data */
    nghttp2_session_set_stream_user_data(h->h2.ng, 1, s);
    x_dispatch(&s->x);
    return 0;
}
