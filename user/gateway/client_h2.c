/* client_h2: the HTTP/2 (h2c) client side, on nghttp2 1.52. Shaped as
 * connection (session) -> stream (xreq): a stream's xreq is created at its
 * first HEADERS, collects headers and DATA, is dispatched at END_STREAM,
 * and is freed when nghttp2 closes the stream. The response body goes
 * through a per-stream queue (x->h2out) drained by a deferred data
 * provider that upstream bytes resume; the queue's size is what the
 * upstream backpressure looks at.
 *
 * common/h2srv.c moves the bytes and filters nghttp2's callbacks down to
 * the st_* stream callbacks here. nghttp2 forbids
 * nghttp2_session_mem_send from inside its callbacks, and dispatch runs
 * inside them (st_request): c->h2.in_ng marks those sections and
 * cconn_flush() skips frame generation there; h2_process flushes after
 * h2srv_recv returns, and dispatches the requests completed in that read
 * then (a stream reset in the same read is never dispatched). Flow control
 * is manual: DATA is given back to the windows as it is buffered (or
 * thrown away), and buffering is bounded per connection and in all. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dlist.h"
#include "common/ev.h"
#include "gateway/dataplane.h"
#include "gateway/gwmetrics.h"

static void link_stream(struct cconn *c, struct xreq *x)
{
    DLIST_PUSH(c->streams, x, prev, next);
    c->nstreams++;
    if (c->timer_kind == CT_IDLE)
        cconn_set_timer(c, CT_NONE);
}

/* ---- per-stream request deadline ---- */

static void stream_timeout(struct ev_loop *l, void *arg)
{
    struct xreq *x = arg;
    x->timer = 0;
    if (x->dispatched || x->done || x->dead)
        return;
    struct cconn *c = x->c;
    gw_metrics_limit(x->w->g->metrics, "header_timeout");
    x_local(x, 408, "request not received in time",
            "header_timeout");
    if (!c->nc.dead)
        cconn_flush(c);
}

/* ---- h2srv callbacks ---- */

static void *st_open(void *ud, int32_t id)
{
    struct cconn *c = ud;
    struct xreq *x = x_new(c, id);
    if (!x)
        return NULL; /* resets the stream */
    link_stream(c, x);
    uint32_t ms = c->w->g->cfg.header_timeout_ms;
    if (ms)
        x->timer = ev_timer_at(c->w->l, ev_now_ns() + (uint64_t)ms * 1000000ull,
                               stream_timeout, x);
    return x;
}

static int st_header(void *ud, void *st, const char *n, size_t nl,
                     const char *v, size_t vl)
{
    struct xreq *x = st;
    struct cconn *c = ud;
    /* what HPACK decodes is bounded by what we keep, not by the wire: a
     * few bytes of indexed references can name a 4 KB table entry again
     * and again (RFC 9113 10.5.1 counts 32 bytes a field on top) */
    x->hdr_bytes += nl + vl + 32;
    if (x->hdr_bytes > c->w->g->cfg.max_header_bytes) {
        x->hdr_overflow = 1;
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

static void stream_413(struct cconn *c, struct xreq *x)
{
    gw_metrics_limit(c->w->g->metrics, "body_too_large");
    x_local(x, 413, "request body too large", "body_too_large");
    sbuf_free(&x->body);
}

static void stream_431(struct cconn *c, struct xreq *x)
{
    gw_metrics_limit(c->w->g->metrics, "header_too_large");
    x_local(x, 431, "request header too large", "header_too_large");
}

/* Flow control follows what we buffer: every DATA byte is given back to
 * the window once it is in a request body, or thrown away (a stream
 * already answered). A body that would take the connection past its
 * share, or the gateway past limits.max_buffered_total_bytes, is answered
 * 503 instead of buffered (x_body_feed says which). */
static int st_data(void *ud, void *st, const char *p, size_t n)
{
    struct cconn *c = ud;
    struct xreq *x = st;
    int rc = 0;
    if (!x->dispatched && !x->done) {
        rc = x_body_feed(x, p, n);
        if (rc == -E2BIG) {
            stream_413(c, x);
        } else if (rc == -ENOSPC) {
            gw_metrics_limit(c->w->g->metrics, "buffered_total");
            x_local(x, 503, "the gateway is holding too many request bodies; try again", "buffered_total");
            sbuf_free(&x->body);
        }
    }
    h2srv_consume(&c->h2, x->sid, n);
    return rc < 0 && rc != -E2BIG && rc != -ENOSPC ? -1 : 0;
}

/* The head is in, a body follows: refuse early when the head was too large
 * or the announced length is. */
static void st_head(void *ud, void *st)
{
    struct cconn *c = ud;
    struct xreq *x = st;
    if (x->dispatched || x->done)
        return;
    if (x->hdr_overflow)
        stream_431(c, x);
    else if (x->req_clen >= 0 && (uint64_t)x->req_clen > c->w->g->cfg.max_body_bytes)
        stream_413(c, x);
}

/* The request is complete. It is dispatched once nghttp2 has handed over
 * everything it read (h2_process): a stream the client resets in the same
 * read (rapid reset) is gone by then and never costs a pod connection. */
static int st_request(void *ud, void *st)
{
    struct cconn *c = ud;
    struct xreq *x = st;
    if (x->dispatched || x->done)
        return 0;
    ev_timer_cancel(c->w->l, x->timer);
    x->timer = 0;
    x->r.t_body = ev_now_ns();
    if (x->hdr_overflow) {
        stream_431(c, x);
        return 0;
    }
    x->ready = 1;
    c->nready++;
    return 0;
}

static void st_limit(void *ud, const char *which)
{
    struct cconn *c = ud;
    gw_metrics_limit(c->w->g->metrics, which);
}

static void st_close(void *ud, void *st, uint32_t err)
{
    struct xreq *x = st;
    if (!x->done)
        x_abort_client(x); /* RST_STREAM (or GOAWAY) before the end */
    x_kill(x);
}

static const struct h2srv_callbacks h2_callbacks = {
    st_open, st_header, st_data, st_head, st_request, st_close, st_limit,
};

/* ---- session ---- */

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

/* Starts the h2 session on c (prior knowledge, or upgraded: the upgrade
 * request becomes stream 1). 0, or -errno with c left as it was. */
int h2_start(struct cconn *c, struct xreq *upgraded, const char *settings_b64,
             size_t settings_len)
{
    struct gw *g = c->w->g;
    struct h2srv_settings set = {
        .max_streams = DP_H2_MAX_STREAMS,
        .max_header_list = g->cfg.max_header_bytes ? g->cfg.max_header_bytes : 65536,
        .out_soft = DP_H2_OUT_SOFT,
        .manual_window = 1,
    };
    int err = h2srv_init(&c->h2, &c->nc, &h2_callbacks, c, &set);
    if (err)
        return err;
    if (upgraded) {
        uint8_t buf[512];
        long n = b64url_decode(settings_b64 ? settings_b64 : "", settings_len, buf,
                               sizeof(buf));
        if (n < 0 || nghttp2_session_upgrade2(c->h2.ng, buf, (size_t)n, 0, NULL)) {
            h2srv_free(&c->h2);
            return -EINVAL;
        }
    }
    c->proto = CP_H2;
    if (upgraded) {
        /* Server side: upgrade2 ignores stream_user_data. */
        nghttp2_session_set_stream_user_data(c->h2.ng, 1, upgraded);
        upgraded->sid = 1;
        upgraded->r.h2 = 1;
        link_stream(c, upgraded);
    } else {
        cconn_set_timer(c, CT_IDLE); /* preface in: no stream yet */
    }
    return 0;
}

void h2_idle_timeout(struct cconn *c)
{
    nghttp2_session_terminate_session(c->h2.ng, NGHTTP2_NO_ERROR); /* GOAWAY */
    cconn_flush(c); /* closes once nothing is left to say */
    if (!c->nc.dead)
        c->nc.closing = 1;
}

/* Dispatches the streams completed in the last read that are still there. */
static void dispatch_ready(struct cconn *c)
{
    while (c->nready && !c->nc.dead) {
        struct xreq *x = c->streams;
        while (x && !x->ready)
            x = x->next;
        if (!x) {
            c->nready = 0;
            break;
        }
        x->ready = 0;
        c->nready--;
        x_dispatch(x); /* may end x (a local answer): the list is walked afresh */
    }
}

void h2_process(struct cconn *c)
{
    int rc = h2srv_recv(&c->h2);
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
        if (!c->h2.calmed)
            gw_metrics_limit(c->w->g->metrics, "h2_protocol_error");
        nghttp2_session_terminate_session(c->h2.ng, NGHTTP2_PROTOCOL_ERROR);
        c->nc.closing = 1;
    }
    cconn_flush(c);
}

/* ---- response ---- */

static ssize_t read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                       uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct xreq *x = src->ptr;
    size_t avail = x->h2out.len - x->h2off;
    size_t n = avail < length ? avail : length;
    if (n)
        memcpy(buf, x->h2out.data + x->h2off, n);
    x->h2off += n;
    if (x->h2off == x->h2out.len) {
        sbuf_reset(&x->h2out);
        x->h2off = 0;
        if (x->h2eof) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            /* Answered before the request ended (408, 413): ask the client
             * to stop sending (RFC 9113 8.1); queued after this frame. */
            if (!nghttp2_session_get_stream_remote_close(ng, id))
                nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR);
        } else if (n == 0)
            return NGHTTP2_ERR_DEFERRED;
    } else if (x->h2off > (64u << 10) && x->h2off > x->h2out.len / 2) {
        sbuf_consume(&x->h2out, x->h2off);
        x->h2off = 0;
    }
    if (x->up_paused)
        x_client_drained(x); /* only re-arms the upstream fd */
    return (ssize_t)n;
}

void h2_resp_head(struct xreq *x, int status, const char *hdrs, size_t hlen,
                  int64_t clen)
{
    struct cconn *c = x->c;
    if (c->nc.dead)
        return;
    char st[8], lenbuf[24];
    snprintf(st, sizeof(st), "%03d", status % 1000);
    size_t nlines = 2;
    for (size_t i = 0; i < hlen; i++)
        nlines += hdrs[i] == '\n';
    nghttp2_nv *nva = calloc(nlines, sizeof(*nva));
    if (!nva) {
        nghttp2_submit_rst_stream(c->h2.ng, NGHTTP2_FLAG_NONE, x->sid,
                                  NGHTTP2_INTERNAL_ERROR);
        return;
    }
    size_t n = 0;
#define NV(N, NL, V, VL)                                                      \
    nva[n++] = (nghttp2_nv){ (uint8_t *)(N), (uint8_t *)(V), (NL), (VL),      \
                             NGHTTP2_NV_FLAG_NONE }
    NV(":status", 7, st, 3);
    if (clen >= 0) {
        snprintf(lenbuf, sizeof(lenbuf), "%lld", (long long)clen);
        NV("content-length", 14, lenbuf, strlen(lenbuf));
    }
    /* "name: value\r\n" lines, names already lower-case and filtered */
    const char *p = hdrs, *end = hdrs + hlen;
    while (p < end && n < nlines) {
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
    int bodyless = status < 200 || status == 204 || status == 304 || x->is_head;
    nghttp2_data_provider prd = { .source.ptr = x, .read_callback = read_cb };
    int rv = nghttp2_submit_response(c->h2.ng, x->sid, nva, n, bodyless ? NULL : &prd);
    free(nva);
    if (rv)
        nghttp2_submit_rst_stream(c->h2.ng, NGHTTP2_FLAG_NONE, x->sid,
                                  NGHTTP2_INTERNAL_ERROR);
}

void h2_resp_body(struct xreq *x, const char *p, size_t n)
{
    struct cconn *c = x->c;
    if (c->nc.dead)
        return;
    if (sbuf_append(&x->h2out, p, n)) {
        nghttp2_submit_rst_stream(c->h2.ng, NGHTTP2_FLAG_NONE, x->sid,
                                  NGHTTP2_INTERNAL_ERROR);
        return;
    }
    nghttp2_session_resume_data(c->h2.ng, x->sid);
}

void h2_resp_end(struct xreq *x, int abort)
{
    struct cconn *c = x->c;
    if (c->nc.dead)
        return;
    if (abort) {
        nghttp2_submit_rst_stream(c->h2.ng, NGHTTP2_FLAG_NONE, x->sid,
                                  NGHTTP2_INTERNAL_ERROR);
    } else {
        x->h2eof = 1;
        nghttp2_session_resume_data(c->h2.ng, x->sid);
    }
    cconn_flush(c);
}
