/* server: podsim's HTTP/1.1 + h2c (prior knowledge) front end. See server.h.
 *
 * Shape: server -> conn -> (h1: one active request | h2: streams) -> resp.
 *
 * Lifetimes, the part that is easy to get wrong:
 *  - A conn is only freed when no code is running on it: every entry point
 *    (I/O callback, timer, resp_* call) holds c->busy, and conn_fail() only
 *    marks it dead, closes the socket and detaches its responses; the last
 *    conn_release() frees it.
 *  - A resp is owned by the handler from on_request until resp_end /
 *    resp_abort, or until its cancel callback has been called. When the
 *    transport goes away the resp is detached ("gone": resp_write answers
 *    -EPIPE) and queued; the cancel callback is then called from a zero-delay
 *    timer, never from inside a resp_* call or a handler, so a handler can
 *    not have its resp freed under its feet. A gone resp without a cancel
 *    callback stays parked until the handler ends it (or server_stop).
 *  - Handlers are only ever called from the conn's own read path (or from a
 *    zero-delay "resume" timer for pipelined HTTP/1.1 requests), never from
 *    inside a resp_* call, so an application may end responses while it
 *    iterates over its own lists.
 *  - nghttp2 forbids nghttp2_session_mem_send from inside its callbacks, and
 *    handlers run inside on_frame_recv: c->in_ng marks those sections and
 *    conn_flush() skips frame generation there; the caller of
 *    nghttp2_session_mem_recv flushes once it returns. */
#include "podsim/server.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/sbuf.h"

#define MAX_HDRS 64
#define OUT_SOFT (256u << 10)   /* h2: stop generating frames above this */
#define OUT_HARD (64u << 20)    /* a client this far behind is dropped */
#define IN_PAUSE (64u << 10)    /* h1: stop reading this far ahead */
#define LINGER_NS 2000000000ull /* lingering close after shutdown(WR) */
#define ACCEPT_RETRY_NS 100000000ull

static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

/* Owned copies of one request: "method\0path\0name\0value\0..." */
struct reqdata {
    struct sbuf store;
    long m_off, p_off; /* -1 until seen */
    size_t nh;
    uint32_t hn[MAX_HDRS], hv[MAX_HDRS];
    struct sbuf body;
};

enum { R_LIVE, R_PENDING, R_ZOMBIE };

struct http_resp {
    struct server *s;
    struct conn *c;        /* NULL once gone */
    struct h2stream *st;   /* h2 only */
    int where;             /* R_*; lists below when gone */
    struct http_resp *prev, *next;
    int started, no_body, chunked, keep_alive, minor;
    int completed;         /* transport finished it; no cancel owed */
    long long clen, written;
    void (*cancel)(void *);
    void *cancel_arg;
    struct reqdata rd;
    struct http_req req;
};

struct h2stream {
    int32_t id;
    struct h2stream *prev, *next;
    struct reqdata rd;
    struct http_resp *resp;
    struct sbuf out;       /* body bytes the data provider drains */
    size_t out_off;
    int eof, responded;
};

enum { P_DETECT, P_H1, P_H2 };
enum { H1_HEAD, H1_BODY, H1_HANDLING };

struct conn {
    struct server *s;
    int fd;
    struct conn *prev, *next;
    int proto, dead, busy;
    int closing;  /* close once out is flushed (h1) */
    int shut;     /* shutdown(WR) done, lingering */
    int rd_eof;   /* peer half-closed while we still flush */
    struct sbuf in, out;
    size_t out_off;
    uint64_t linger_timer;
    uint64_t resume_timer; /* h1: parse pipelined input after a resp_end */
    /* h1 */
    int st;
    size_t head_len;
    int64_t body_need;
    int chunked;
    struct http1_chunked ck;
    struct reqdata rd;
    struct http_resp *active;
    /* h2 */
    nghttp2_session *ng;
    int in_ng;
    struct h2stream *streams;
};

struct server {
    struct ev_loop *l;
    struct server_cfg cfg;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int lfd;
    uint64_t accept_timer, reap_timer;
    struct conn *conns;
    size_t nconns;
    struct http_resp *pending, *zombies;
};

static void conn_flush(struct conn *c);
static void conn_fail(struct conn *c);
static void process_input(struct conn *c);

/* ---- small helpers ---- */

static const char *status_text(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}

static void error_json(struct sbuf *b, int code, const char *msg)
{
    sbuf_puts(b, "{\"error\":{\"message\":\"");
    sbuf_json_escape(b, msg, strlen(msg));
    sbuf_printf(b, "\",\"type\":\"BadRequestError\",\"param\":null,\"code\":%d}}",
                code);
}

static void rd_init(struct reqdata *rd)
{
    sbuf_init(&rd->store);
    sbuf_init(&rd->body);
    rd->m_off = rd->p_off = -1;
    rd->nh = 0;
}

static void rd_free(struct reqdata *rd)
{
    sbuf_free(&rd->store);
    sbuf_free(&rd->body);
    rd_init(rd);
}

/* Appends a NUL-terminated copy; returns its offset or -ENOMEM. */
static long rd_str(struct reqdata *rd, const void *p, size_t n, int lower)
{
    size_t off = rd->store.len;
    if (sbuf_append(&rd->store, p, n) || sbuf_append(&rd->store, "", 1))
        return -ENOMEM;
    if (lower)
        for (size_t i = off; i < off + n; i++)
            if (rd->store.data[i] >= 'A' && rd->store.data[i] <= 'Z')
                rd->store.data[i] += 32;
    return (long)off;
}

/* 0, -ENOMEM, or -E2BIG past MAX_HDRS. */
static int rd_header(struct reqdata *rd, const void *n, size_t nl,
                     const void *v, size_t vl)
{
    if (rd->nh >= MAX_HDRS)
        return -E2BIG;
    long a = rd_str(rd, n, nl, 1), b = rd_str(rd, v, vl, 0);
    if (a < 0 || b < 0)
        return -ENOMEM;
    rd->hn[rd->nh] = (uint32_t)a;
    rd->hv[rd->nh] = (uint32_t)b;
    rd->nh++;
    return 0;
}

/* ---- responses: ownership and cancellation ---- */

static void list_push(struct http_resp **head, struct http_resp *r)
{
    r->prev = NULL;
    r->next = *head;
    if (*head)
        (*head)->prev = r;
    *head = r;
}

static void list_unlink(struct server *s, struct http_resp *r)
{
    struct http_resp **head = r->where == R_PENDING ? &s->pending : &s->zombies;
    if (r->prev)
        r->prev->next = r->next;
    else
        *head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

static void resp_free(struct http_resp *r)
{
    if (r->where != R_LIVE)
        list_unlink(r->s, r);
    rd_free(&r->rd);
    free(r);
}

/* Delivers cancel callbacks of gone responses, outside any handler. */
static void reap_cb(struct ev_loop *l, void *arg)
{
    struct server *s = arg;
    s->reap_timer = 0;
    struct http_resp *r;
    while ((r = s->pending)) {
        list_unlink(s, r);
        if (r->cancel) {
            void (*cb)(void *) = r->cancel;
            void *cb_arg = r->cancel_arg;
            r->where = R_LIVE; /* unlinked */
            resp_free(r);
            cb(cb_arg);
        } else {
            r->where = R_ZOMBIE;
            list_push(&s->zombies, r);
        }
    }
}

static void schedule_reap(struct server *s)
{
    if (!s->reap_timer)
        s->reap_timer = ev_timer_at(s->l, ev_now_ns(), reap_cb, s);
}

/* The transport under r went away before resp_end/resp_abort. */
static void resp_gone(struct http_resp *r)
{
    r->c = NULL;
    r->st = NULL;
    r->where = R_PENDING;
    list_push(&r->s->pending, r);
    schedule_reap(r->s);
}

static struct http_resp *resp_new(struct conn *c, struct h2stream *st,
                                  struct reqdata *rd)
{
    struct http_resp *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->s = c->s;
    r->c = c;
    r->st = st;
    r->rd = *rd; /* take ownership */
    rd_init(rd);
    r->clen = -1;
    r->keep_alive = 1;
    struct http_req *q = &r->req;
    const char *base = r->rd.store.data;
    q->method = r->rd.m_off >= 0 ? base + r->rd.m_off : "";
    q->path = r->rd.p_off >= 0 ? base + r->rd.p_off : "";
    q->body = r->rd.body.data ? r->rd.body.data : "";
    q->body_len = r->rd.body.len;
    q->h2 = st != NULL;
    q->nheaders = r->rd.nh;
    for (size_t k = 0; k < r->rd.nh; k++) {
        q->hname[k] = base + r->rd.hn[k];
        q->hvalue[k] = base + r->rd.hv[k];
    }
    r->no_body = strcmp(q->method, "HEAD") == 0;
    return r;
}

static void dispatch(struct conn *c, struct http_resp *r)
{
    c->s->cfg.handler(c->s->cfg.ctx, &r->req, r);
}

/* ---- connections: lifetime, output ---- */

static void update_events(struct conn *c)
{
    uint32_t m = 0;
    if (c->rd_eof)
        m = 0;
    else if (c->proto == P_H1 && c->st == H1_HANDLING && !c->closing &&
             c->in.len >= IN_PAUSE)
        m = EPOLLRDHUP; /* paused, but still notice the client leaving */
    else
        m = EPOLLIN | EPOLLRDHUP;
    if (c->out.len > c->out_off)
        m |= EPOLLOUT;
    ev_mod(c->s->l, c->fd, m);
}

static void conn_free(struct conn *c)
{
    if (c->ng)
        nghttp2_session_del(c->ng); /* does not call on_stream_close */
    while (c->streams) {
        struct h2stream *st = c->streams;
        c->streams = st->next;
        rd_free(&st->rd);
        sbuf_free(&st->out);
        free(st);
    }
    rd_free(&c->rd);
    sbuf_free(&c->in);
    sbuf_free(&c->out);
    free(c);
}

static void conn_release(struct conn *c)
{
    if (--c->busy > 0)
        return;
    if (c->dead)
        conn_free(c);
    else
        update_events(c);
}

static void conn_fail(struct conn *c)
{
    if (c->dead)
        return;
    struct server *s = c->s;
    c->dead = 1;
    ev_del(s->l, c->fd);
    close(c->fd);
    c->fd = -1;
    ev_timer_cancel(s->l, c->linger_timer);
    ev_timer_cancel(s->l, c->resume_timer);
    c->linger_timer = c->resume_timer = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->active) {
        resp_gone(c->active);
        c->active = NULL;
    }
    for (struct h2stream *st = c->streams; st; st = st->next)
        if (st->resp) {
            resp_gone(st->resp);
            st->resp = NULL;
        }
    if (c->busy == 0)
        conn_free(c);
}

static void linger_cb(struct ev_loop *l, void *arg)
{
    struct conn *c = arg;
    c->linger_timer = 0;
    c->busy++;
    conn_fail(c);
    conn_release(c);
}

/* h2: serialise frames into c->out, up to OUT_SOFT. 0 or -1 (fatal). */
static int h2_pump(struct conn *c)
{
    int rc = 0;
    c->in_ng++;
    while (c->out.len - c->out_off < OUT_SOFT) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->ng, &d);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        if (sbuf_append(&c->out, d, (size_t)n)) {
            rc = -1;
            break;
        }
    }
    c->in_ng--;
    return rc;
}

/* Writes as much as the socket takes; handles close-after-flush. Must be
 * called with c->busy held. */
static void conn_flush(struct conn *c)
{
    if (c->dead || c->in_ng)
        return; /* inside nghttp2: the mem_recv caller flushes afterwards */
    if (c->out.oom) {
        conn_fail(c); /* bytes were dropped: the framing is broken */
        return;
    }
    for (;;) {
        if (c->ng && h2_pump(c) < 0) {
            conn_fail(c);
            return;
        }
        size_t pending = c->out.len - c->out_off;
        if (pending == 0)
            break;
        ssize_t n = send(c->fd, c->out.data + c->out_off, pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(c); /* EPIPE, ECONNRESET, ... */
            return;
        }
        c->out_off += (size_t)n;
        if (c->out_off == c->out.len) {
            sbuf_reset(&c->out);
            c->out_off = 0;
        } else if ((size_t)n < pending) {
            break; /* socket buffer full */
        }
    }
    if (c->out_off > (64u << 10) && c->out_off > c->out.len / 2) {
        sbuf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    size_t pending = c->out.len - c->out_off;
    if (pending > OUT_HARD) {
        conn_fail(c); /* client not reading */
        return;
    }
    if (pending)
        return;
    if (c->ng && !nghttp2_session_want_read(c->ng) &&
        !nghttp2_session_want_write(c->ng)) {
        conn_fail(c); /* GOAWAY exchanged, nothing left */
        return;
    }
    if (c->closing && !c->shut) {
        if (c->rd_eof) {
            conn_fail(c);
            return;
        }
        /* Lingering close: FIN now, keep draining input for a while so a
         * client still sending does not get an RST that eats our reply. */
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
        c->linger_timer = ev_timer_at(c->s->l, ev_now_ns() + LINGER_NS,
                                      linger_cb, c);
    }
}

/* ---- HTTP/1.1 ---- */

static void h1_error(struct conn *c, int code, const char *msg)
{
    struct sbuf body;
    sbuf_init(&body);
    error_json(&body, code, msg);
    sbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                "content-length: %zu\r\nconnection: close\r\n\r\n",
                code, status_text(code), body.len);
    sbuf_append(&c->out, body.data, body.len);
    sbuf_free(&body);
    c->closing = 1;
    sbuf_reset(&c->in);
    conn_flush(c);
}

static void h1_dispatch(struct conn *c)
{
    struct http1_request hr;
    /* Re-parse: c->in may have moved since the head was first parsed. */
    http1_parse_request(c->in.data, c->head_len, c->head_len, &hr);
    struct reqdata *rd = &c->rd;
    int bad = 0;
    rd->m_off = rd_str(rd, hr.method, hr.method_len, 0);
    rd->p_off = rd_str(rd, hr.target, hr.target_len, 0);
    bad |= rd->m_off < 0 || rd->p_off < 0;
    for (size_t k = 0; k < hr.nheaders && !bad; k++)
        bad |= rd_header(rd, hr.headers[k].name, hr.headers[k].name_len,
                         hr.headers[k].value, hr.headers[k].value_len) != 0;
    size_t used = c->head_len;
    if (!c->chunked) {
        bad |= sbuf_append(&rd->body, c->in.data + c->head_len,
                           (size_t)c->body_need) != 0;
        used += (size_t)c->body_need;
    }
    struct http_resp *r = bad ? NULL : resp_new(c, NULL, rd);
    if (!r) {
        rd_free(rd);
        conn_fail(c);
        return;
    }
    sbuf_consume(&c->in, used);
    r->keep_alive = hr.keep_alive;
    r->minor = hr.minor;
    c->active = r;
    c->st = H1_HANDLING;
    dispatch(c, r);
}

/* Parses and dispatches as many requests as the buffer holds, one at a
 * time. Called with c->busy held. */
static void h1_process(struct conn *c)
{
    struct server *s = c->s;
    while (!c->dead && !c->closing) {
        if (c->st == H1_HANDLING)
            return;
        if (c->st == H1_HEAD) {
            if (c->in.len == 0)
                return;
            struct http1_request hr;
            int rc = http1_parse_request(c->in.data, c->in.len, s->cfg.max_head, &hr);
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
            rd_free(&c->rd);
            if ((uint64_t)c->body_need > s->cfg.max_body) {
                h1_error(c, 413, "request body too large");
                return;
            }
            if (hr.expect_continue && hr.minor >= 1 &&
                (c->chunked || c->body_need > 0) && c->in.len == c->head_len) {
                sbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
                conn_flush(c);
            }
            c->st = H1_BODY;
        }
        /* H1_BODY */
        if (c->chunked) {
            struct sbuf *b = &c->rd.body;
            size_t avail = c->in.len - c->head_len, n;
            if (!c->ck.done && avail == 0)
                return;
            if (sbuf_reserve(b, avail)) {
                conn_fail(c);
                return;
            }
            char *raw = c->in.data + c->head_len;
            long used = http1_chunked_decode(&c->ck, raw, avail, b->data + b->len, &n);
            if (used < 0) {
                h1_error(c, 400, "malformed chunked body");
                return;
            }
            b->len += n;
            b->data[b->len] = '\0';
            memmove(raw, raw + used, avail - (size_t)used);
            c->in.len -= (size_t)used;
            if (b->len > s->cfg.max_body) {
                h1_error(c, 413, "request body too large");
                return;
            }
            if (!c->ck.done)
                return;
        } else if (c->in.len - c->head_len < (size_t)c->body_need) {
            return;
        }
        h1_dispatch(c);
    }
}

static void h1_resp_start(struct http_resp *r, int status, const char *ctype,
                          long long clen, const char *extra)
{
    struct conn *c = r->c;
    struct sbuf *o = &c->out;
    int bodyless_status = status < 200 || status == 204 || status == 304;
    r->chunked = clen < 0 && !bodyless_status;
    if (r->chunked && r->minor == 0) {
        r->chunked = 0; /* HTTP/1.0 has no chunked: delimit by closing */
        r->keep_alive = 0;
    }
    if (bodyless_status)
        r->no_body = 1;
    r->clen = clen;
    sbuf_printf(o, "HTTP/1.1 %d %s\r\n", status, status_text(status));
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
    conn_flush(c);
}

static int h1_resp_write(struct http_resp *r, const void *data, size_t len)
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
        sbuf_printf(&c->out, "%zx\r\n", len);
    sbuf_append(&c->out, data, len);
    if (r->chunked)
        sbuf_puts(&c->out, "\r\n");
    r->written += (long long)len;
    conn_flush(c);
    return r->c ? rc : -EPIPE;
}

static void resume_cb(struct ev_loop *l, void *arg)
{
    struct conn *c = arg;
    c->resume_timer = 0;
    c->busy++;
    process_input(c);
    conn_release(c);
}

static void h1_resp_end(struct http_resp *r, int abort)
{
    struct conn *c = r->c;
    if (!abort && r->chunked && !r->no_body)
        sbuf_puts(&c->out, "0\r\n\r\n");
    if (!r->no_body && !r->chunked && r->clen >= 0 && r->written < r->clen)
        r->keep_alive = 0; /* short body: the client cannot find the end */
    c->active = NULL;
    if (abort || !r->keep_alive)
        c->closing = 1;
    else
        c->st = H1_HEAD;
    conn_flush(c);
    /* Pipelined requests already buffered: when we are inside this conn's
     * own parsing loop (busy > 1) it picks them up; otherwise parse them
     * from a zero-delay timer, so the handler is never re-entered from
     * inside the caller's resp_end (which may be iterating its own lists). */
    if (!c->dead && c->busy == 1 && c->st == H1_HEAD && !c->closing &&
        c->in.len && !c->resume_timer)
        c->resume_timer = ev_timer_at(c->s->l, ev_now_ns(), resume_cb, c);
}

/* ---- HTTP/2 ---- */

static ssize_t h2_read_cb(nghttp2_session *ng, int32_t id, uint8_t *buf,
                          size_t length, uint32_t *flags,
                          nghttp2_data_source *src, void *ud)
{
    struct h2stream *st = src->ptr;
    size_t avail = st->out.len - st->out_off;
    size_t n = avail < length ? avail : length;
    if (n) {
        memcpy(buf, st->out.data + st->out_off, n);
        st->out_off += n;
    }
    if (st->out_off == st->out.len) {
        sbuf_reset(&st->out);
        st->out_off = 0;
        if (st->eof)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (n == 0)
            return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* Submits response headers; body (if any) comes from st->out. */
static int h2_submit(struct conn *c, struct h2stream *st, int status,
                     const char *ctype, long long clen, const char *extra,
                     int no_body)
{
    char status_str[8], lenbuf[24];
    snprintf(status_str, sizeof(status_str), "%03d", status % 1000);
    size_t nlines = 3;
    for (const char *p = extra; p && *p; p++)
        nlines += *p == '\n';
    nghttp2_nv *nva = calloc(nlines + 1, sizeof(*nva));
    char *copy = extra ? strdup(extra) : NULL;
    if (!nva || (extra && !copy)) {
        free(nva);
        free(copy);
        return -ENOMEM;
    }
    size_t n = 0;
#define NV(N, NL, V, VL)                                                      \
    nva[n++] = (nghttp2_nv){ (uint8_t *)(N), (uint8_t *)(V), (NL), (VL),      \
                             NGHTTP2_NV_FLAG_NONE }
    NV(":status", 7, status_str, 3);
    if (ctype)
        NV("content-type", 12, ctype, strlen(ctype));
    if (clen >= 0) {
        snprintf(lenbuf, sizeof(lenbuf), "%lld", clen);
        NV("content-length", 14, lenbuf, strlen(lenbuf));
    }
    /* "Name: value\r\n" lines -> lower-case name, trimmed value. HTTP/1
     * connection-specific fields are not allowed in h2 and are dropped. */
    for (char *line = copy; line && *line && n <= nlines;) {
        char *eol = strchr(line, '\n');
        char *next = eol ? eol + 1 : line + strlen(line);
        char *colon = memchr(line, ':', (size_t)(next - line));
        char *end = eol ? eol : next;
        if (colon && colon > line) {
            for (char *p = line; p < colon; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p += 32;
            char *v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
                end--;
            size_t nl = (size_t)(colon - line);
            static const char *const hop[] = { "connection", "keep-alive",
                "transfer-encoding", "upgrade", "proxy-connection", NULL };
            int drop = 0;
            for (int k = 0; hop[k]; k++)
                drop |= nl == strlen(hop[k]) && memcmp(line, hop[k], nl) == 0;
            if (!drop)
                NV(line, nl, v, (size_t)(end - v));
        }
        line = next;
    }
#undef NV
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = h2_read_cb };
    int rv = nghttp2_submit_response(c->ng, st->id, nva, n, no_body ? NULL : &prd);
    free(nva);
    free(copy);
    return rv == 0 ? 0 : -EIO;
}

/* A response generated by the server itself (413 and the like). */
static void h2_error(struct conn *c, struct h2stream *st, int code, const char *msg)
{
    if (st->responded)
        return;
    st->responded = 1;
    sbuf_reset(&st->out);
    error_json(&st->out, code, msg);
    st->eof = 1;
    if (h2_submit(c, st, code, "application/json", (long long)st->out.len,
                  NULL, 0) < 0)
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id,
                                  NGHTTP2_INTERNAL_ERROR);
}

static struct h2stream *h2_stream(struct conn *c, int32_t id)
{
    return c->dead ? NULL : nghttp2_session_get_stream_user_data(c->ng, id);
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (c->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct h2stream *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    st->id = f->hd.stream_id;
    rd_init(&st->rd);
    sbuf_init(&st->out);
    st->next = c->streams;
    if (c->streams)
        c->streams->prev = st;
    c->streams = st;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f,
                     const uint8_t *name, size_t nl, const uint8_t *value,
                     size_t vl, uint8_t flags, void *ud)
{
    struct conn *c = ud;
    struct h2stream *st = h2_stream(c, f->hd.stream_id);
    if (!st || f->hd.type != NGHTTP2_HEADERS ||
        f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* trailers are ignored */
    int rc = 0;
    if (nl == 7 && memcmp(name, ":method", 7) == 0)
        rc = (int)(st->rd.m_off = rd_str(&st->rd, value, vl, 0)) < 0 ? -1 : 0;
    else if (nl == 5 && memcmp(name, ":path", 5) == 0)
        rc = (int)(st->rd.p_off = rd_str(&st->rd, value, vl, 0)) < 0 ? -1 : 0;
    else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
        rc = rd_header(&st->rd, "host", 4, value, vl);
    else if (nl > 0 && name[0] != ':')
        rc = rd_header(&st->rd, name, nl, value, vl);
    return rc ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE : 0;
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                         const uint8_t *data, size_t len, void *ud)
{
    struct conn *c = ud;
    struct h2stream *st = h2_stream(c, id);
    if (!st || st->responded)
        return 0; /* discard: already answered (e.g. 413) */
    if (st->rd.body.len + len > c->s->cfg.max_body) {
        h2_error(c, st, 413, "request body too large");
        rd_free(&st->rd);
        return 0;
    }
    if (sbuf_append(&st->rd.body, data, len))
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct conn *c = ud;
    if (c->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA)
        return 0;
    struct h2stream *st = h2_stream(c, f->hd.stream_id);
    if (!st || st->responded)
        return 0;
    if (!(f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        /* Refuse early when the announced length is already too large. */
        for (size_t k = 0; f->hd.type == NGHTTP2_HEADERS && k < st->rd.nh; k++)
            if (strcmp(st->rd.store.data + st->rd.hn[k], "content-length") == 0 &&
                strtoull(st->rd.store.data + st->rd.hv[k], NULL, 10) >
                    c->s->cfg.max_body) {
                h2_error(c, st, 413, "request body too large");
                rd_free(&st->rd);
            }
        return 0;
    }
    struct http_resp *r = resp_new(c, st, &st->rd);
    if (!r)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->responded = 1;
    st->resp = r;
    dispatch(c, r);
    return c->dead ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t err, void *ud)
{
    struct conn *c = ud;
    struct h2stream *st = h2_stream(c, id);
    if (!st)
        return 0; /* dead conn: conn_free frees the streams */
    struct http_resp *r = st->resp;
    if (r && r->started && r->no_body && err == NGHTTP2_NO_ERROR) {
        /* A body-less response (HEAD, 204) completes the stream on its own,
         * before the handler's resp_end: not a cancellation. */
        r->c = NULL;
        r->st = NULL;
        r->completed = 1;
        r->where = R_ZOMBIE;
        list_push(&c->s->zombies, r);
    } else if (r) {
        resp_gone(r); /* reset by the client before resp_end */
    }
    nghttp2_session_set_stream_user_data(ng, id, NULL);
    if (st->prev)
        st->prev->next = st->next;
    else
        c->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    rd_free(&st->rd);
    sbuf_free(&st->out);
    free(st);
    return 0;
}

static int h2_init(struct conn *c)
{
    nghttp2_session_callbacks *cbs;
    if (nghttp2_session_callbacks_new(&cbs))
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
    int rv = nghttp2_session_server_new(&c->ng, cbs, c);
    nghttp2_session_callbacks_del(cbs);
    if (rv)
        return -ENOMEM;
    size_t mh = c->s->cfg.max_head;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1u << 20 },
        { NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, mh > UINT32_MAX ? UINT32_MAX : (uint32_t)mh },
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 3) ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, 16 << 20))
        return -ENOMEM;
    return 0;
}

static void h2_process(struct conn *c)
{
    c->in_ng++;
    ssize_t n = nghttp2_session_mem_recv(c->ng, (const uint8_t *)c->in.data,
                                         c->in.len);
    c->in_ng--;
    if (c->dead)
        return;
    if (n < 0) {
        conn_flush(c); /* best effort: nghttp2 may have queued a GOAWAY */
        conn_fail(c);
        return;
    }
    sbuf_consume(&c->in, (size_t)n);
    conn_flush(c);
}

/* ---- input ---- */

static void process_input(struct conn *c)
{
    if (c->proto == P_DETECT) {
        size_t n = c->in.len < H2_PREFACE_LEN ? c->in.len : H2_PREFACE_LEN;
        if (memcmp(c->in.data ? c->in.data : "", H2_PREFACE, n) != 0) {
            c->proto = P_H1;
        } else if (c->in.len >= H2_PREFACE_LEN) {
            c->proto = P_H2;
            if (h2_init(c)) {
                conn_fail(c);
                return;
            }
        } else {
            return; /* a prefix of the preface: wait */
        }
    }
    if (c->proto == P_H1)
        h1_process(c);
    else
        h2_process(c);
}

static void conn_read(struct conn *c, uint32_t ev)
{
    if (!(ev & EPOLLIN)) {
        conn_fail(c); /* HUP/ERR/RDHUP while reading is paused */
        return;
    }
    int got = 0, eof = 0;
    for (int iter = 0; iter < 16; iter++) {
        if (c->closing || c->shut) { /* discard whatever the client sends */
            char tmp[16384];
            ssize_t n = read(c->fd, tmp, sizeof(tmp));
            if (n > 0)
                continue;
            if (n < 0 && errno == EINTR)
                continue;
            eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            break;
        }
        if (c->proto == P_H1 && c->st == H1_HANDLING && c->in.len >= IN_PAUSE)
            break;
        if (sbuf_reserve(&c->in, 16384)) {
            conn_fail(c);
            return;
        }
        ssize_t n = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
            got = 1;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    /* Requests that arrived together with a FIN are still served. */
    if (got && !c->closing)
        process_input(c);
    if (!eof || c->dead)
        return;
    if (c->closing && c->out.len > c->out_off)
        c->rd_eof = 1; /* finish sending the reply, then close */
    else
        conn_fail(c); /* cancels the active response, if any */
}

static void conn_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct conn *c = arg;
    c->busy++;
    if (ev & EPOLLOUT)
        conn_flush(c);
    if (!c->dead && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        conn_read(c, ev);
    conn_release(c);
}

/* ---- writer API ---- */

void resp_start(struct http_resp *r, int status, const char *content_type,
                long long content_length, const char *extra_headers)
{
    if (!r || r->started)
        return;
    r->started = 1;
    if (!r->c)
        return;
    struct conn *c = r->c;
    c->busy++;
    if (r->st) {
        if (status < 200 || status == 204 || status == 304)
            r->no_body = 1;
        r->clen = content_length;
        if (h2_submit(c, r->st, status, content_type, content_length,
                      extra_headers, r->no_body) < 0)
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, r->st->id,
                                      NGHTTP2_INTERNAL_ERROR);
        conn_flush(c);
    } else {
        h1_resp_start(r, status, content_type, content_length, extra_headers);
    }
    conn_release(c);
}

int resp_write(struct http_resp *r, const void *data, size_t len)
{
    if (!r)
        return -EINVAL;
    if (!r->started)
        resp_start(r, 200, NULL, -1, NULL);
    if (!r->c)
        return -EPIPE;
    if (r->no_body)
        return 0;
    struct conn *c = r->c;
    int rc = 0;
    c->busy++;
    if (r->st) {
        struct h2stream *st = r->st;
        if (r->clen >= 0 && (long long)len > r->clen - r->written) {
            len = (size_t)(r->clen - r->written);
            rc = -EMSGSIZE;
        }
        if (st->out.len - st->out_off + len > OUT_HARD) {
            /* The client stopped reading this stream: reset it. */
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id,
                                      NGHTTP2_INTERNAL_ERROR);
            rc = -EPIPE;
        } else if (len && sbuf_append(&st->out, data, len)) {
            rc = -ENOMEM;
        } else {
            r->written += (long long)len;
            nghttp2_session_resume_data(c->ng, st->id);
        }
        conn_flush(c);
        if (!r->c)
            rc = -EPIPE;
    } else {
        rc = h1_resp_write(r, data, len);
    }
    conn_release(c);
    return rc;
}

void resp_end(struct http_resp *r)
{
    if (!r)
        return;
    if (r->c && !r->started)
        resp_start(r, 200, NULL, 0, NULL);
    if (!r->c) {
        resp_free(r); /* gone: the cancel callback will not be called */
        return;
    }
    struct conn *c = r->c;
    c->busy++;
    if (r->st) {
        r->st->eof = 1;
        r->st->resp = NULL;
        nghttp2_session_resume_data(c->ng, r->st->id);
        resp_free(r);
        conn_flush(c);
    } else {
        h1_resp_end(r, 0);
        resp_free(r);
    }
    conn_release(c);
}

void resp_abort(struct http_resp *r)
{
    if (!r)
        return;
    if (!r->c) {
        resp_free(r);
        return;
    }
    struct conn *c = r->c;
    c->busy++;
    if (r->st) {
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, r->st->id,
                                  NGHTTP2_INTERNAL_ERROR);
        r->st->resp = NULL;
        resp_free(r);
        conn_flush(c);
    } else {
        h1_resp_end(r, 1);
        resp_free(r);
    }
    conn_release(c);
}

void resp_on_cancel(struct http_resp *r, void (*cb)(void *arg), void *arg)
{
    if (!r)
        return;
    r->cancel = cb;
    r->cancel_arg = arg;
    if (cb && r->where == R_ZOMBIE && !r->completed) { /* gone: deliver soon */
        list_unlink(r->s, r);
        r->where = R_PENDING;
        list_push(&r->s->pending, r);
        schedule_reap(r->s);
    }
}

void resp_send(struct http_resp *r, int status, const char *content_type,
               const void *body, size_t len)
{
    resp_start(r, status, content_type, (long long)len, NULL);
    if (len)
        resp_write(r, body, len);
    resp_end(r);
}

/* ---- listener ---- */

static void accept_cb(struct ev_loop *l, int lfd, uint32_t ev, void *arg);

static void accept_resume(struct ev_loop *l, void *arg)
{
    struct server *s = arg;
    s->accept_timer = 0;
    if (s->lfd >= 0)
        ev_mod(l, s->lfd, EPOLLIN);
}

static void accept_cb(struct ev_loop *l, int lfd, uint32_t ev, void *arg)
{
    struct server *s = arg;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of fds: stop polling the listener for a moment
                 * instead of spinning on a level-triggered event. */
                ev_mod(l, lfd, 0);
                if (!s->accept_timer)
                    s->accept_timer = ev_timer_at(l, ev_now_ns() + ACCEPT_RETRY_NS,
                                                  accept_resume, s);
            }
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->s = s;
        c->fd = fd;
        sbuf_init(&c->in);
        sbuf_init(&c->out);
        rd_init(&c->rd);
        if (ev_add(l, fd, EPOLLIN | EPOLLRDHUP, conn_io, c) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
    }
}

static int listen_open(struct server *s)
{
    int fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, rc;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&s->addr, s->addrlen) < 0 ||
        listen(fd, 1024) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    /* Remember the port actually bound (cfg port 0) so that
     * server_set_refuse(0) comes back on the same one. */
    socklen_t len = sizeof(s->addr);
    getsockname(fd, (struct sockaddr *)&s->addr, &len);
    s->addrlen = len;
    rc = ev_add(s->l, fd, EPOLLIN, accept_cb, s);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    s->lfd = fd;
    return 0;
}

static void listen_close(struct server *s)
{
    if (s->lfd >= 0) {
        ev_del(s->l, s->lfd);
        close(s->lfd);
        s->lfd = -1;
    }
    ev_timer_cancel(s->l, s->accept_timer);
    s->accept_timer = 0;
}

struct server *server_start(struct ev_loop *l, const struct server_cfg *cfg)
{
    if (!l || !cfg || !cfg->handler || cfg->port < 0 || cfg->port > 65535) {
        errno = EINVAL;
        return NULL;
    }
    struct server *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->l = l;
    s->cfg = *cfg;
    s->cfg.bind_addr = NULL; /* not kept: the caller's string may go away */
    s->lfd = -1;
    if (!s->cfg.max_body)
        s->cfg.max_body = 32u << 20;
    if (!s->cfg.max_head)
        s->cfg.max_head = 64u << 10;

    char port[8];
    snprintf(port, sizeof(port), "%d", cfg->port);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    if (getaddrinfo(cfg->bind_addr ? cfg->bind_addr : "0.0.0.0", port, &hints, &ai) ||
        !ai || ai->ai_addrlen > sizeof(s->addr)) {
        if (ai)
            freeaddrinfo(ai);
        free(s);
        errno = EINVAL;
        return NULL;
    }
    memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
    s->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);

    int rc = listen_open(s);
    if (rc < 0) {
        free(s);
        errno = -rc;
        return NULL;
    }
    return s;
}

/* Must not be called from inside a handler or a cancel callback. */
void server_stop(struct server *s)
{
    if (!s)
        return;
    listen_close(s);
    ev_timer_cancel(s->l, s->reap_timer);
    s->reap_timer = 0;
    while (s->conns)
        conn_fail(s->conns); /* unlinks (and frees) it; resps become pending */
    struct http_resp *r;
    while ((r = s->pending)) {
        void (*cb)(void *) = r->cancel;
        void *arg = r->cancel_arg;
        resp_free(r);
        if (cb)
            cb(arg);
    }
    while ((r = s->zombies))
        resp_free(r);
    free(s);
}

int server_set_refuse(struct server *s, int refuse)
{
    if (refuse) {
        /* as a restarted server would: no listener, and idle keep-alive
         * connections reset, so clients must reconnect (and be refused);
         * connections with a response in progress are left to finish */
        listen_close(s);
        for (struct conn *c = s->conns, *next; c; c = next) {
            next = c->next;
            if (!c->active && !c->streams && c->in.len == 0)
                conn_fail(c);
        }
        return 0;
    }
    return s->lfd >= 0 ? 0 : listen_open(s);
}

size_t server_nconns(const struct server *s)
{
    return s->nconns;
}
