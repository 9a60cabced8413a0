/* server_h1: HTTP/1.1 for podsim's front end (see server_priv.h for the
 * split): request heads and bodies (Content-Length or chunked, 100-continue),
 * errors the server answers itself, response framing (content-length,
 * chunked, or close-delimited on HTTP/1.0), keep-alive and pipelining.
 *
 * One request at a time per connection: c->st goes HEAD -> BODY ->
 * HANDLING, and back to HEAD at resp_end on a keep-alive connection. */
#include "podsim/server_priv.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/httpstatus.h"
#include "common/sbuf.h"

static void h1_error(struct conn *c, int code, const char *msg)
{
    struct sbuf body;
    sbuf_init(&body);
    srv_error_json(&body, code, msg);
    http1_closing_response(&c->nc.out, code, "application/json", body.data, body.len);
    sbuf_free(&body);
    c->nc.closing = 1;
    sbuf_reset(&c->nc.in);
    srv_conn_flush(c);
}

static void h1_dispatch(struct conn *c)
{
    struct http1_request hr;
    /* Re-parse: c->nc.in may have moved since the head was first parsed. */
    http1_parse_request(c->nc.in.data, c->head_len, c->head_len, &hr);
    struct reqdata *rd = &c->rd;
    int bad = 0;
    rd->m_off = srv_rd_str(rd, hr.method, hr.method_len, 0);
    rd->p_off = srv_rd_str(rd, hr.target, hr.target_len, 0);
    bad |= rd->m_off < 0 || rd->p_off < 0;
    for (size_t k = 0; k < hr.nheaders && !bad; k++)
        bad |= srv_rd_header(rd, hr.headers[k].name, hr.headers[k].name_len,
                             hr.headers[k].value, hr.headers[k].value_len) != 0;
    size_t used = c->head_len;
    if (!c->chunked) {
        bad |= sbuf_append(&rd->body, c->nc.in.data + c->head_len,
                           (size_t)c->body_need) != 0;
        used += (size_t)c->body_need;
    }
    struct http_resp *r = bad ? NULL : srv_resp_new(c, NULL, rd);
    if (!r) {
        srv_rd_free(rd);
        srv_conn_fail(c);
        return;
    }
    sbuf_consume(&c->nc.in, used);
    r->keep_alive = hr.keep_alive;
    r->minor = hr.minor;
    c->active = r;
    c->st = H1_HANDLING;
    srv_dispatch(c, r);
}

/* Parses and dispatches as many requests as the buffer holds, one at a
 * time. Called with c->busy held. */
void srv_h1_process(struct conn *c)
{
    struct server *s = c->s;
    while (!c->nc.dead && !c->nc.closing) {
        if (c->st == H1_HANDLING)
            return;
        if (c->st == H1_HEAD) {
            if (c->nc.in.len == 0)
                return;
            struct http1_request hr;
            int rc = http1_parse_request(c->nc.in.data, c->nc.in.len, s->cfg.max_head,
                                         &hr);
            if (rc == HTTP1_INCOMPLETE)
                return;
            if (rc == HTTP1_ERR_TOO_LARGE) {
                h1_error(c, 431, "request head too large");
                return;
            }
            if (rc == HTTP1_ERR_VERSION) {
                h1_error(c, 505, "HTTP version not supported");
                return;
            }
            if (rc < 0) {
                h1_error(c, 400, "malformed HTTP request");
                return;
            }
            c->head_len = (size_t)rc;
            c->chunked = hr.chunked;
            c->body_need = hr.content_length > 0 ? hr.content_length : 0;
            memset(&c->ck, 0, sizeof(c->ck));
            srv_rd_free(&c->rd);
            if ((uint64_t)c->body_need > s->cfg.max_body) {
                h1_error(c, 413, "request body too large");
                return;
            }
            if (hr.expect_continue && hr.minor >= 1 &&
                (c->chunked || c->body_need > 0) && c->nc.in.len == c->head_len) {
                sbuf_puts(&c->nc.out, "HTTP/1.1 100 Continue\r\n\r\n");
                srv_conn_flush(c);
            }
            c->st = H1_BODY;
        }
        /* H1_BODY */
        if (c->chunked) {
            struct sbuf *b = &c->rd.body;
            size_t avail = c->nc.in.len - c->head_len, n;
            if (!c->ck.done && avail == 0)
                return;
            if (sbuf_reserve(b, avail)) {
                srv_conn_fail(c);
                return;
            }
            char *raw = c->nc.in.data + c->head_len;
            long used = http1_chunked_decode(&c->ck, raw, avail, b->data + b->len, &n);
            if (used < 0) {
                h1_error(c, 400, "malformed chunked body");
                return;
            }
            b->len += n;
            b->data[b->len] = '\0';
            memmove(raw, raw + used, avail - (size_t)used);
            c->nc.in.len -= (size_t)used;
            if (b->len > s->cfg.max_body) {
                h1_error(c, 413, "request body too large");
                return;
            }
            if (!c->ck.done)
                return;
        } else if (c->nc.in.len - c->head_len < (size_t)c->body_need) {
            return;
        }
        h1_dispatch(c);
    }
}

void srv_h1_resp_start(struct http_resp *r, int status, const char *ctype,
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

int srv_h1_resp_write(struct http_resp *r, const void *data, size_t len)
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
    c->resume_timer = 0;
    c->busy++;
    srv_h1_process(c);
    srv_conn_release(c);
}

void srv_h1_resp_end(struct http_resp *r, int abort)
{
    struct conn *c = r->c;
    if (!abort && r->chunked && !r->no_body)
        sbuf_puts(&c->nc.out, "0\r\n\r\n");
    if (!r->no_body && !r->chunked && r->clen >= 0 && r->written < r->clen)
        r->keep_alive = 0; /* short body: the client cannot find the end */
    c->active = NULL;
    if (abort || !r->keep_alive)
        c->nc.closing = 1;
    else
        c->st = H1_HEAD;
    srv_conn_flush(c);
    /* Pipelined requests already buffered: when we are inside this conn's
     * own parsing loop (busy > 1) it picks them up; otherwise parse them
     * from a zero-delay timer, so the handler is never re-entered from
     * inside the caller's resp_end (which may be iterating its own lists). */
    if (!c->nc.dead && c->busy == 1 && c->st == H1_HEAD && !c->nc.closing &&
        c->nc.in.len && !c->resume_timer)
        c->resume_timer = ev_timer_at(c->s->l, ev_now_ns(), resume_cb, c);
    else if (!c->nc.dead && c->st == H1_HEAD && !c->nc.in.len)
        srv_conn_idle(c);
}

