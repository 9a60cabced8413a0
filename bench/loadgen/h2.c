/* h2: the HTTP/2 cleartext transport (prior knowledge), on nghttp2 1.52.
 * Shape: target -> connection (one nghttp2 client session) -> stream (one
 * request). A due request takes a stream on a connection of its target
 * with room (fewer than --h2-streams and the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS streams), else opens a connection (up to
 * --max-conns in all), else waits in its target's queue. Requests are
 * submitted as soon as they are due, even while the connection is still
 * connecting: nothing waits for a completion (open loop).
 *
 * Each stream feeds its request record through stream.h exactly as h1.c
 * does (head, decoded body with its arrival time, end), so TTFT, ITL, usage
 * and x-gateway-destination-endpoint read the same over both transports.
 * The first byte of a request counts as written when nghttp2 reports its
 * HEADERS frame sent: the send callback writes straight to the socket, so
 * that is when the kernel took the frame.
 *
 * Failures: RST_STREAM, GOAWAY and connection loss end the streams they hit
 * as request errors (closed, or protocol when the peer broke HTTP/2). A
 * stream the server refused unprocessed (REFUSED_STREAM, or past a GOAWAY's
 * last stream id), and a stream that got no answer byte when a connection
 * that already served answers is lost, is resent once on another
 * connection: the HTTP/2 form of h1.c's stale keep-alive resend.
 *
 * nghttp2 forbids nghttp2_session_send from its own callbacks: c->in_ng
 * marks those sections, conn_flush skips them, and nothing is submitted to
 * or torn down from inside a callback (resends go through the queue and
 * a deferred kick). */
#include <errno.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/dlist.h"
#include "common/http1.h"
#include "reqq.h"
#include "run.h"
#include "stream.h"

#define READ_BUF (256u << 10)
#define READS_PER_EVENT 8
#define STREAM_WINDOW (1u << 20) /* per stream, SSE answers are small */
#define CONN_WINDOW (16u << 20)

enum { C_CONNECTING, C_OPEN };

struct h2_conn;

struct h2_stream {
    struct h2_conn *c;
    struct lg_req *r;  /* NULL once the request was cancelled or finished */
    int32_t id;
    char *body;        /* the request body (run->body is reused) */
    size_t body_len, body_off;
    int status;        /* :status of the current header block */
    int event_stream;
    char dest[LG_POD_MAX]; /* x-gateway-destination-endpoint */
    size_t dest_len;
    uint8_t slot;      /* counts in c->nstreams */
    uint8_t head_done; /* final (non-1xx) head seen */
    uint8_t eos;       /* END_STREAM received: the answer is complete */
    uint8_t got_bytes; /* any frame of the answer */
    struct h2_stream *next, *prev; /* c->streams */
};

struct h2_conn {
    int fd;
    int state;
    int in_ng;         /* inside nghttp2 (its callbacks may run) */
    int want_out;      /* the socket was full: wait for EPOLLOUT */
    uint32_t events;   /* registered epoll mask */
    int io_err;        /* errno of a failed write */
    int goaway;        /* no new streams here */
    int goaway_recv;
    int32_t goaway_last;
    uint32_t goaway_code;
    uint32_t sent_goaway_code; /* we ended the session: the peer broke HTTP/2 */
    int sent_goaway;
    uint64_t now;      /* arrival time of the bytes being parsed */
    struct lg_run *run;
    struct lg_target *t;
    nghttp2_session *ng;
    struct h2_stream *streams;
    uint32_t nstreams; /* streams holding a slot */
    uint32_t served;   /* answers completed here */
    struct h2_conn *next, *prev; /* target's connections */
};

struct h2_target {
    struct h2_conn *conns; /* newest first */
    struct lg_reqq q;      /* requests waiting for a connection */
};

struct h2_state {
    struct h2_target *tg;
    size_t nconns;
    uint64_t kick_timer;
    char *rbuf;
    nghttp2_session_callbacks *cbs;
};

#define ST(run) ((struct h2_state *)(run)->tpd)
#define TG(run, t) ((struct h2_target *)(t)->tp)

static void submit(struct lg_run *run, struct lg_req *r, int front);
static int conn_flush(struct h2_conn *c);
static void conn_io(struct ev_loop *l, int fd, uint32_t events, void *arg);
static void kick(struct lg_run *run);

/* ---- queues (reqq.h) ---- */

static int any_queued(struct lg_run *run)
{
    for (size_t k = 0; k < run->ntargets; k++)
        if (TG(run, &run->targets[k])->q.head)
            return 1;
    return 0;
}

/* ---- streams ---- */

static struct h2_stream *stream_of(struct h2_conn *c, int32_t id)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(c->ng, id);
    if (st)
        return st;
    for (st = c->streams; st; st = st->next) /* not opened (yet) by nghttp2 */
        if (st->id == id)
            return st;
    return NULL;
}

static void stream_free(struct h2_stream *st)
{
    struct h2_conn *c = st->c;
    if (st->slot)
        c->nstreams--;
    DLIST_REMOVE(c->streams, st, prev, next);
    free(st->body);
    free(st);
}

/* The slot st held is free: the next queued request may take it. */
static void stream_release(struct h2_stream *st)
{
    if (!st->slot)
        return;
    st->slot = 0;
    st->c->nstreams--;
    if (any_queued(st->c->run))
        kick(st->c->run);
}

/* r's stream ended without an answer. Resend it once (queued, sent from the
 * kick timer) when the server cannot have processed it; else fail it. */
static void req_lost(struct lg_run *run, struct lg_req *r, int resend, enum lg_err e,
                     const char *msg)
{
    r->conn = NULL;
    if (resend && !r->retried && !run->interrupted) {
        r->retried = 1;
        lg_reqq_push(&TG(run, &run->targets[r->target])->q, r, 0);
        kick(run);
        return;
    }
    lg_req_fail(r, e, msg);
    lg_run_done(run, r, ev_now_ns(), 0);
}

static const char *goaway_text(struct h2_conn *c, char *buf, size_t len)
{
    if (!c->goaway_recv)
        return "";
    snprintf(buf, len, " after GOAWAY %s (last stream %d)",
             nghttp2_http2_strerror(c->goaway_code), (int)c->goaway_last);
    return buf;
}

/* ---- nghttp2 callbacks ---- */

static ssize_t cb_send(nghttp2_session *ng, const uint8_t *data, size_t len, int flags,
                       void *ud)
{
    struct h2_conn *c = ud;
    for (;;) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n >= 0)
            return n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            c->want_out = 1;
            return NGHTTP2_ERR_WOULDBLOCK;
        }
        c->io_err = errno;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
}

static ssize_t cb_read_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct h2_stream *st = src->ptr;
    size_t n = st->body_len - st->body_off;
    if (n > length)
        n = length;
    memcpy(buf, st->body + st->body_off, n);
    st->body_off += n;
    if (st->body_off == st->body_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int cb_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (f->hd.type != NGHTTP2_HEADERS || !st || st->head_done)
        return 0; /* trailers: nothing we read */
    st->got_bytes = 1;
    /* nghttp2 checks the messaging rules (one valid :status first, names
     * in lower case) and resets a stream that breaks them */
    if (nlen == 7 && !memcmp(name, ":status", 7)) {
        st->status = vlen == 3 ? (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0')
                               : 0;
    } else if (nlen == 12 && !memcmp(name, "content-type", 12)) {
        st->event_stream = http1_media_type_is((const char *)value, vlen, "text/event-stream");
    } else if (nlen == 30 && !memcmp(name, "x-gateway-destination-endpoint", 30)) {
        st->dest_len = vlen < sizeof(st->dest) - 1 ? vlen : sizeof(st->dest) - 1;
        memcpy(st->dest, value, st->dest_len);
        st->dest[st->dest_len] = 0;
    }
    return 0;
}

static int cb_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    struct h2_conn *c = ud;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st || !st->r)
        return 0;
    st->got_bytes = 1;
    struct lg_req *r = st->r;
    if (lg_stream_body(r, (const char *)data, len, c->now) < 0) {
        /* malformed SSE (r->err set): give up on the stream, not the connection */
        st->r = NULL;
        r->conn = NULL;
        lg_run_done(c->run, r, ev_now_ns(), 0);
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    }
    return 0;
}

static int cb_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *c = ud;
    switch (f->hd.type) {
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA: {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (!st)
            return 0;
        st->got_bytes = 1;
        if (f->hd.type == NGHTTP2_HEADERS && !st->head_done) {
            if (st->status >= 100 && st->status < 200) {
                /* an interim answer: the final head follows */
                st->status = st->event_stream = 0;
                st->dest_len = 0;
            } else {
                st->head_done = 1;
                if (st->r)
                    lg_stream_head(st->r, st->status, st->event_stream, st->dest,
                                   st->dest_len);
            }
        }
        if (f->hd.flags & NGHTTP2_FLAG_END_STREAM)
            st->eos = 1;
        return 0;
    }
    case NGHTTP2_GOAWAY:
        /* streams past last_stream_id are closed by nghttp2 with
         * REFUSED_STREAM right after this */
        c->goaway = c->goaway_recv = 1;
        c->goaway_last = f->goaway.last_stream_id;
        c->goaway_code = f->goaway.error_code;
        return 0;
    case NGHTTP2_SETTINGS:
        if (any_queued(c->run))
            kick(c->run); /* the server may allow more streams now */
        return 0;
    }
    return 0;
}

static int cb_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct h2_conn *c = ud;
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && st->r)
            lg_run_sent(c->run, st->r, ev_now_ns());
    } else if (f->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = c->sent_goaway = 1;
        c->sent_goaway_code = f->goaway.error_code;
    }
    return 0;
}

static int cb_frame_not_send(nghttp2_session *ng, const nghttp2_frame *f, int lib_err,
                             void *ud)
{
    struct h2_conn *c = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    /* a request HEADERS nghttp2 gave up on: cancelled by us before it left,
     * or no new stream is possible here (GOAWAY, ids used up); either way
     * the server never saw it */
    if (lib_err == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED ||
        lib_err == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE || lib_err == NGHTTP2_ERR_SESSION_CLOSING)
        c->goaway = 1;
    struct h2_stream *st = stream_of(c, f->hd.stream_id);
    if (!st)
        return 0;
    struct lg_req *r = st->r;
    st->r = NULL;
    stream_release(st);
    if (r) {
        char msg[128];
        snprintf(msg, sizeof(msg), "request not sent: %s", nghttp2_strerror(lib_err));
        req_lost(c->run, r, 1, LG_E_CLOSED, msg);
    }
    /* a stream nghttp2 never opened gets no on_stream_close */
    if (!nghttp2_session_get_stream_user_data(ng, f->hd.stream_id))
        stream_free(st);
    return 0;
}

static int cb_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct h2_conn *c = ud;
    struct h2_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (!st)
        return 0;
    struct lg_req *r = st->r;
    st->r = NULL;
    stream_release(st);
    if (r) {
        r->conn = NULL;
        if (st->eos) { /* the whole answer arrived (a reset after it is harmless) */
            c->served++;
            lg_run_done(c->run, r, ev_now_ns(), 1);
        } else {
            char msg[256], ga[96];
            int refused = code == NGHTTP2_REFUSED_STREAM && !st->got_bytes;
            if (c->goaway_recv && id > c->goaway_last)
                snprintf(msg, sizeof(msg), "GOAWAY %s: stream %d not processed (last %d)",
                         nghttp2_http2_strerror(c->goaway_code), (int)id, (int)c->goaway_last);
            else
                snprintf(msg, sizeof(msg), "RST_STREAM %s %s%s", nghttp2_http2_strerror(code),
                         st->got_bytes ? "mid-response" : "before the response",
                         goaway_text(c, ga, sizeof(ga)));
            req_lost(c->run, r, refused, code == NGHTTP2_PROTOCOL_ERROR ? LG_E_PROTOCOL
                                                                         : LG_E_CLOSED, msg);
        }
    }
    stream_free(st);
    return 0;
}

/* ---- connections ---- */

/* Free stream slots on c. Until the server's SETTINGS arrive nghttp2 takes
 * its limit to be 100: a burst then opens more connections rather than
 * sending streams a server with a lower limit would refuse. */
static uint32_t conn_room(struct h2_conn *c)
{
    if (c->goaway)
        return 0;
    uint32_t max = c->run->cfg->h2_streams;
    uint32_t peer = nghttp2_session_get_remote_settings(c->ng,
                                                        NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (peer < max)
        max = peer;
    return c->nstreams < max ? max - c->nstreams : 0;
}

/* Closes c. Requests still on it end: connect errors (kind LG_E_CONNECT),
 * else closed / protocol, some resent (see the top). */
static void conn_close(struct h2_conn *c, enum lg_err kind, const char *why)
{
    struct lg_run *run = c->run;
    struct h2_state *s = ST(run);
    struct h2_target *ht = TG(run, c->t);
    DLIST_REMOVE(ht->conns, c, prev, next); /* first: resends must not pick c */
    if (kind == LG_E_CLOSED && c->sent_goaway && c->sent_goaway_code != NGHTTP2_NO_ERROR)
        kind = LG_E_PROTOCOL;
    while (c->streams) {
        struct h2_stream *st = c->streams;
        struct lg_req *r = st->r;
        st->r = NULL;
        if (r) {
            char msg[384], ga[96];
            if (kind == LG_E_CONNECT)
                snprintf(msg, sizeof(msg), "%s", why);
            else
                snprintf(msg, sizeof(msg), "%s %s%s", why,
                         st->got_bytes ? "mid-response" : "before the response",
                         goaway_text(c, ga, sizeof(ga)));
            /* a kept connection lost before any byte of this answer, the
             * server having promised nothing (no GOAWAY covering it) */
            int resend = kind == LG_E_CLOSED && !st->got_bytes && c->served > 0 &&
                         !(c->goaway_recv && st->id <= c->goaway_last);
            req_lost(run, r, resend, kind, msg);
        }
        stream_free(st);
    }
    nghttp2_session_del(c->ng); /* calls no stream callbacks */
    ev_del(run->loop, c->fd);
    close(c->fd);
    s->nconns--;
    free(c);
    if (any_queued(run))
        kick(run);
}

static void conn_lost(struct h2_conn *c, int err)
{
    char why[160];
    if (c->sent_goaway && c->sent_goaway_code != NGHTTP2_NO_ERROR)
        snprintf(why, sizeof(why), "HTTP/2 %s: connection closed",
                 nghttp2_http2_strerror(c->sent_goaway_code));
    else
        snprintf(why, sizeof(why), "%s", err ? strerror(err) : "closed by server");
    conn_close(c, LG_E_CLOSED, why);
}

static void set_events(struct h2_conn *c, uint32_t ev)
{
    if (c->events != ev && !ev_mod(c->run->loop, c->fd, ev))
        c->events = ev;
}

/* Writes what nghttp2 has to say. 0, or -1 when c is gone. */
static int conn_flush(struct h2_conn *c)
{
    if (c->in_ng || c->state != C_OPEN)
        return 0;
    c->want_out = 0;
    c->in_ng = 1;
    int rv = nghttp2_session_send(c->ng);
    c->in_ng = 0;
    if (rv) {
        if (rv == NGHTTP2_ERR_CALLBACK_FAILURE && c->io_err) {
            char why[160];
            snprintf(why, sizeof(why), "write: %s", strerror(c->io_err));
            conn_close(c, LG_E_CLOSED, why);
        } else {
            conn_close(c, LG_E_PROTOCOL, nghttp2_strerror(rv));
        }
        return -1;
    }
    if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng)) {
        conn_lost(c, 0); /* GOAWAY either way and nothing left: done */
        return -1;
    }
    set_events(c, EPOLLIN | (c->want_out ? EPOLLOUT : 0));
    return 0;
}

/* Puts r on c as a new stream. 0, or -1 when r could not be submitted (r
 * is done, or back in the queue when c turned out to have no room). */
static int conn_start(struct h2_conn *c, struct lg_req *r)
{
    struct lg_run *run = c->run;
    if (lg_run_build(run, r)) {
        lg_run_done(run, r, ev_now_ns(), 0);
        return -1;
    }
    struct h2_stream *st = calloc(1, sizeof(*st));
    char *body = malloc(run->body.len ? run->body.len : 1);
    if (!st || !body) {
        free(st);
        free(body);
        lg_req_fail(r, LG_E_BUILD, "out of memory");
        lg_run_done(run, r, ev_now_ns(), 0);
        return -1;
    }
    memcpy(body, run->body.data, run->body.len);
    st->c = c;
    st->r = r;
    st->body = body;
    st->body_len = run->body.len;
    char clen[24];
    snprintf(clen, sizeof(clen), "%zu", run->body.len);
    const char *path = run->cfg->path, *auth = c->t->authority, *sid = run->meta.session_id;
    const char *ten = run->meta.tenant;
#define NV(N, V, VL)                                                                   \
    { (uint8_t *)(N), (uint8_t *)(V), sizeof(N) - 1, (VL), NGHTTP2_NV_FLAG_NO_COPY_NAME }
    nghttp2_nv nva[] = {
        NV(":method", "POST", 4),
        NV(":scheme", "http", 4),
        NV(":authority", auth, strlen(auth)),
        NV(":path", path, strlen(path)),
        NV("content-type", "application/json", 16),
        NV("accept", "text/event-stream", 17),
        NV("content-length", clen, strlen(clen)),
        NV("x-session-id", sid, strlen(sid)),
        NV("x-gateway-inference-fairness-id", ten, strlen(ten)),
    };
#undef NV
    size_t nnv = sizeof(nva) / sizeof(nva[0]) - 2;
    if (sid[0])
        nva[nnv++] = nva[sizeof(nva) / sizeof(nva[0]) - 2];
    if (ten[0])
        nva[nnv++] = nva[sizeof(nva) / sizeof(nva[0]) - 1];
    nghttp2_data_provider prd = { .source.ptr = st, .read_callback = cb_read_body };
    int32_t id = nghttp2_submit_request(c->ng, NULL, nva, nnv, &prd, st);
    if (id < 0) {
        free(body);
        free(st);
        if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) {
            c->goaway = 1; /* ids used up: new connections take over */
            lg_reqq_push(&TG(run, c->t)->q, r, 1);
            kick(run);
        } else {
            lg_req_fail(r, LG_E_BUILD, nghttp2_strerror(id));
            lg_run_done(run, r, ev_now_ns(), 0);
        }
        return -1;
    }
    st->id = id;
    st->slot = 1;
    c->nstreams++;
    DLIST_PUSH(c->streams, st, prev, next);
    r->conn = st;
    return 0;
}

static struct h2_conn *conn_open(struct lg_run *run, struct lg_target *t, int *err)
{
    struct h2_state *s = ST(run);
    struct h2_conn *c = NULL;
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
        *err = errno;
        goto fail;
    }
    *err = ENOMEM;
    c = calloc(1, sizeof(*c));
    if (!c || nghttp2_session_client_new(&c->ng, s->cbs, c))
        goto fail;
    nghttp2_settings_entry iv[] = {
        { NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
        { NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW },
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, 2) ||
        nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW))
        goto fail;
    c->fd = fd;
    c->run = run;
    c->t = t;
    c->state = C_CONNECTING;
    c->events = EPOLLOUT;
    int rc = ev_add(run->loop, fd, EPOLLOUT, conn_io, c);
    if (rc) {
        *err = -rc;
        goto fail;
    }
    struct h2_target *ht = TG(run, t);
    DLIST_PUSH(ht->conns, c, prev, next);
    s->nconns++;
    return c;
fail:
    if (c && c->ng)
        nghttp2_session_del(c->ng);
    free(c);
    close(fd);
    return NULL;
}

/* ---- I/O ---- */

static void conn_connected(struct h2_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        char why[384];
        snprintf(why, sizeof(why), "connect %s: %s", c->t->authority, strerror(err));
        conn_close(c, LG_E_CONNECT, why);
        return;
    }
    c->state = C_OPEN;
    conn_flush(c); /* preface, SETTINGS and every request submitted meanwhile */
}

static void conn_io(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct h2_conn *c = arg;
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(c);
        return; /* c may be gone; level-triggered events come again */
    }
    if ((events & EPOLLOUT) && c->want_out && conn_flush(c) < 0)
        return;
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char *rb = ST(c->run)->rbuf;
    for (int k = 0; k < READS_PER_EVENT; k++) {
        ssize_t n = read(fd, rb, READ_BUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_lost(c, n < 0 ? errno : 0);
            return;
        }
        c->now = ev_now_ns();
        c->in_ng = 1;
        ssize_t rv = nghttp2_session_mem_recv(c->ng, (const uint8_t *)rb, (size_t)n);
        c->in_ng = 0;
        if (rv < 0) {
            conn_close(c, LG_E_PROTOCOL, nghttp2_strerror((int)rv));
            return;
        }
        if ((size_t)n < READ_BUF)
            break;
    }
    conn_flush(c); /* SETTINGS ACK, WINDOW_UPDATE, RST_STREAM; may close c */
}

/* ---- transport ---- */

/* Every queued request that can go now: on a connection with room, or on a
 * new one under the cap. Deferred to a timer so that nothing is submitted
 * from inside nghttp2's callbacks and closes never recurse. */
static void on_kick(struct ev_loop *l, void *arg)
{
    struct lg_run *run = arg;
    ST(run)->kick_timer = 0;
    for (size_t k = 0; k < run->ntargets; k++) {
        struct h2_target *ht = TG(run, &run->targets[k]);
        while (ht->q.head) {
            struct lg_req *r = ht->q.head;
            lg_reqq_remove(&ht->q, r);
            submit(run, r, 1);
            if (ht->q.head == r)
                break; /* still no room: it keeps its place */
        }
    }
}

static void kick(struct lg_run *run)
{
    struct h2_state *s = ST(run);
    if (!s->kick_timer)
        s->kick_timer = ev_timer_at(run->loop, ev_now_ns(), on_kick, run);
}

/* r goes out on a connection with room or a new one, else waits in its
 * target's queue (at its head when it came from there). */
static void submit(struct lg_run *run, struct lg_req *r, int front)
{
    struct h2_state *s = ST(run);
    struct lg_target *t = &run->targets[r->target];
    struct h2_target *ht = TG(run, t);
    struct h2_conn *c;
    for (c = ht->conns; c; c = c->next)
        if (conn_room(c))
            break;
    if (!c && s->nconns >= run->cfg->max_conns) {
        /* at the cap: an idle connection to another target makes room */
        for (size_t k = 0; k < run->ntargets && s->nconns >= run->cfg->max_conns; k++)
            for (struct h2_conn *o = TG(run, &run->targets[k])->conns; o; o = o->next)
                if (!o->streams) {
                    conn_close(o, LG_E_CLOSED, "closed for room");
                    break;
                }
    }
    if (!c && s->nconns >= run->cfg->max_conns) {
        lg_reqq_push(&ht->q, r, front);
        return;
    }
    if (!c) {
        int err = 0;
        c = conn_open(run, t, &err);
        if (!c) {
            char msg[384];
            snprintf(msg, sizeof(msg), "connect %s: %s", t->authority, strerror(err));
            lg_req_fail(r, LG_E_CONNECT, msg);
            lg_run_done(run, r, ev_now_ns(), 0);
            return;
        }
    }
    if (!conn_start(c, r))
        conn_flush(c);
}

static void h2_submit(struct lg_run *run, struct lg_req *r)
{
    submit(run, r, 0);
}

static void h2_cancel(struct lg_run *run, struct lg_req *r)
{
    struct h2_stream *st = r->conn;
    if (st) {
        struct h2_conn *c = st->c;
        st->r = NULL;
        r->conn = NULL;
        /* the answer is abandoned with its stream; the connection stays,
         * unless it is still connecting for nobody */
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        if (c->state == C_CONNECTING) {
            struct h2_stream *o = c->streams;
            while (o && !o->r)
                o = o->next;
            if (!o)
                conn_close(c, LG_E_CLOSED, "abandoned");
            return;
        }
        conn_flush(c);
        return;
    }
    struct h2_target *ht = TG(run, &run->targets[r->target]);
    for (struct lg_req *q = ht->q.head; q; q = q->qnext)
        if (q == r) {
            lg_reqq_remove(&ht->q, r);
            break;
        }
}

static int h2_init(struct lg_run *run, char *err, size_t errlen)
{
    struct h2_state *s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    run->tpd = s;
    s->tg = calloc(run->ntargets, sizeof(*s->tg));
    s->rbuf = malloc(READ_BUF);
    if (!s->tg || !s->rbuf || nghttp2_session_callbacks_new(&s->cbs))
        goto oom;
    nghttp2_session_callbacks *cb = s->cbs;
    nghttp2_session_callbacks_set_send_callback(cb, cb_send);
    nghttp2_session_callbacks_set_on_header_callback(cb, cb_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, cb_data_chunk);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, cb_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, cb_frame_send);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(cb, cb_frame_not_send);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, cb_stream_close);
    for (size_t k = 0; k < run->ntargets; k++)
        run->targets[k].tp = &s->tg[k];
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
    return -1;
}

static void h2_fini(struct lg_run *run)
{
    struct h2_state *s = ST(run);
    if (!s)
        return;
    for (size_t k = 0; s->tg && k < run->ntargets; k++) {
        struct h2_target *ht = &s->tg[k];
        while (ht->q.head)
            lg_reqq_remove(&ht->q, ht->q.head);
        while (ht->conns) {
            for (struct h2_stream *st = ht->conns->streams; st; st = st->next)
                if (st->r) { /* every request is over by now; be safe */
                    st->r->conn = NULL;
                    st->r = NULL;
                }
            conn_close(ht->conns, LG_E_CLOSED, "run over");
        }
    }
    if (s->kick_timer)
        ev_timer_cancel(run->loop, s->kick_timer);
    if (s->cbs)
        nghttp2_session_callbacks_del(s->cbs);
    free(s->tg);
    free(s->rbuf);
    free(s);
    run->tpd = NULL;
}

static void h2_gauges(struct lg_run *run, size_t *conns, size_t *queued)
{
    struct h2_state *s = ST(run);
    *conns = s->nconns;
    *queued = 0;
    for (size_t k = 0; k < run->ntargets; k++)
        *queued += s->tg[k].q.n;
}

const struct lg_transport lg_h2c_transport = {
    .name = "h2c",
    .init = h2_init,
    .fini = h2_fini,
    .submit = h2_submit,
    .cancel = h2_cancel,
    .gauges = h2_gauges,
};
