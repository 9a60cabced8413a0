/* server: podsim's HTTP/1.1 + h2c (prior knowledge) front end. See server.h.
 * This file: listener, connections, protocol detection, responses'
 * ownership and the writer API; HTTP/1.1 is in server_h1.c, HTTP/2 in
 * server_h2.c (server_priv.h says who owns what). Accepting is
 * common/listener.c, the socket I/O of a connection (reads, flushing,
 * lingering close) common/netconn.c.
 *
 * Shape: server -> conn -> (h1: one active request | h2: streams) -> resp.
 * This file names no protocol: a conn's first bytes choose its c->proto
 * (srv_h1_proto or srv_h2_proto), which parses, times out and tears down;
 * a resp is written through its r->sink, which the protocol set.
 *
 * Lifetimes, the part that is easy to get wrong:
 *  - A conn is only freed when no code is running on it: every entry point
 *    (I/O callback, timer, resp_* call) holds c->busy, and srv_conn_fail() only
 *    marks it dead, closes the socket and detaches its responses; the last
 *    srv_conn_release() frees it. (netconn's linger timer calls
 *    srv_conn_fail with busy 0, which frees at once: nothing else runs.)
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
 *    handlers run inside them: the protocol's no_flush says so and
 *    srv_conn_flush() skips frame generation there; the caller of
 *    h2srv_recv flushes once it returns. */
#include "podsim/server_priv.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/dlist.h"
#include "common/ev.h"
#include "common/h2srv.h"
#include "common/listener.h"
#include "common/netconn.h"
#include "common/sbuf.h"

/* ---- request copies ---- */

void srv_rd_init(struct reqdata *rd)
{
    sbuf_init(&rd->store);
    sbuf_init(&rd->body);
    rd->m_off = rd->p_off = -1;
    rd->nh = 0;
}

void srv_rd_free(struct reqdata *rd)
{
    sbuf_free(&rd->store);
    sbuf_free(&rd->body);
    srv_rd_init(rd);
}

/* Appends a NUL-terminated copy; returns its offset or -ENOMEM. */
long srv_rd_str(struct reqdata *rd, const void *p, size_t n, int lower)
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
int srv_rd_header(struct reqdata *rd, const void *n, size_t nl,
                     const void *v, size_t vl)
{
    if (rd->nh >= MAX_HDRS)
        return -E2BIG;
    long a = srv_rd_str(rd, n, nl, 1), b = srv_rd_str(rd, v, vl, 0);
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
    DLIST_PUSH(*head, r, prev, next);
}

static void list_unlink(struct server *s, struct http_resp *r)
{
    struct http_resp **head = r->where == R_PENDING ? &s->pending : &s->zombies;
    DLIST_REMOVE(*head, r, prev, next);
}

static void resp_free(struct http_resp *r)
{
    if (r->where != R_LIVE)
        list_unlink(r->s, r);
    srv_rd_free(&r->rd);
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
void srv_resp_gone(struct http_resp *r)
{
    r->c = NULL;
    r->tx = NULL;
    r->where = R_PENDING;
    list_push(&r->s->pending, r);
    schedule_reap(r->s);
}

/* The transport completed r before resp_end: parked until the handler ends
 * it; resp_on_cancel on it delivers nothing. */
void srv_resp_done(struct http_resp *r)
{
    r->c = NULL;
    r->tx = NULL;
    r->completed = 1;
    r->where = R_ZOMBIE;
    list_push(&r->s->zombies, r);
}

struct http_resp *srv_resp_new(struct conn *c, const struct srv_sink_ops *sink,
                               void *tx, struct reqdata *rd)
{
    struct http_resp *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->s = c->s;
    r->c = c;
    r->sink = sink;
    r->tx = tx;
    r->rd = *rd; /* take ownership */
    srv_rd_init(rd);
    r->clen = -1;
    r->keep_alive = 1;
    struct http_req *q = &r->req;
    const char *base = r->rd.store.data;
    q->method = r->rd.m_off >= 0 ? base + r->rd.m_off : "";
    q->path = r->rd.p_off >= 0 ? base + r->rd.p_off : "";
    q->body = r->rd.body.data ? r->rd.body.data : "";
    q->body_len = r->rd.body.len;
    q->nheaders = r->rd.nh;
    for (size_t k = 0; k < r->rd.nh; k++) {
        q->hname[k] = base + r->rd.hn[k];
        q->hvalue[k] = base + r->rd.hv[k];
    }
    r->no_body = strcmp(q->method, "HEAD") == 0;
    return r;
}

void srv_dispatch(struct conn *c, struct http_resp *r)
{
    c->s->cfg.handler(c->s->cfg.ctx, &r->req, r);
}

/* ---- connections: lifetime, output ---- */

static void conn_free(struct conn *c)
{
    if (c->proto)
        c->proto->free(c);
    netconn_free(&c->nc);
    free(c);
}

void srv_conn_release(struct conn *c)
{
    if (--c->busy > 0)
        return;
    if (c->nc.dead)
        conn_free(c);
    else
        netconn_update_events(&c->nc);
}

static void idle_cb(struct ev_loop *l, void *arg)
{
    struct conn *c = arg;
    c->idle_timer = 0;
    /* as uvicorn: a connection with no request open for the keep-alive
     * timeout is closed (a client must notice and reconnect) */
    if (c->nc.dead)
        return;
    if (!c->proto) {
        if (!c->nc.in.len)
            srv_conn_fail(c); /* connected, never spoke */
    } else if (c->proto->timeout) {
        c->proto->timeout(c);
    }
}

void srv_conn_idle(struct conn *c)
{
    ev_timer_cancel(c->s->l, c->idle_timer);
    c->idle_timer = 0;
    if (c->s->cfg.keepalive_ms && !c->nc.dead && !c->nc.closing)
        c->idle_timer = ev_timer_at(c->s->l, ev_now_ns() + c->s->cfg.keepalive_ms * 1000000ull,
                                    idle_cb, c);
}

void srv_conn_fail(struct conn *c)
{
    if (c->nc.dead)
        return;
    struct server *s = c->s;
    netconn_close(&c->nc);
    ev_timer_cancel(s->l, c->idle_timer);
    c->idle_timer = 0;
    DLIST_REMOVE(s->conns, c, prev, next);
    s->nconns--;
    if (c->proto)
        c->proto->fail(c); /* its responses become gone */
    if (c->busy == 0)
        conn_free(c); /* linger timer, server_stop: nothing runs on c */
}

void srv_conn_flush(struct conn *c)
{
    if (c->nc.dead || (c->proto && c->proto->no_flush && c->proto->no_flush(c)))
        return; /* inside nghttp2: the mem_recv caller flushes afterwards */
    netconn_flush(&c->nc); /* fails the connection if an append was dropped */
}

/* ---- input (netconn callbacks) ---- */

/* The first bytes choose the protocol: the HTTP/2 client preface, or
 * anything else (HTTP/1.1). */
static int choose_proto(struct conn *c)
{
    int k = h2srv_sniff(c->nc.in.data, c->nc.in.len);
    if (k == H2SRV_MORE)
        return 0; /* a prefix of the preface: wait */
    c->proto = k == H2SRV_NOT_H2 ? &srv_h1_proto : &srv_h2_proto;
    int rc = c->proto->start(c);
    if (rc < 0)
        srv_conn_fail(c);
    return rc;
}

static void conn_input(struct netconn *nc)
{
    struct conn *c = conn_of(nc);
    if (c->idle_timer) { /* a request is arriving */
        ev_timer_cancel(c->s->l, c->idle_timer);
        c->idle_timer = 0;
    }
    if (!c->proto && (choose_proto(c) < 0 || !c->proto))
        return;
    c->proto->process(c);
}

static void conn_fail_cb(struct netconn *nc)
{
    srv_conn_fail(conn_of(nc));
}

static int conn_holding(const struct netconn *nc)
{
    const struct conn *c = conn_of((struct netconn *)nc);
    return c->proto && c->proto->holding && c->proto->holding(c);
}

static const struct netconn_ops conn_ops = { .input = conn_input, .fail = conn_fail_cb,
                                             .holding = conn_holding };

static void conn_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct conn *c = arg;
    c->busy++;
    if (ev & EPOLLOUT)
        srv_conn_flush(c);
    netconn_read(&c->nc, ev);
    srv_conn_release(c);
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
    r->sink->head(r, status, content_type, content_length, extra_headers);
    srv_conn_release(c);
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
    c->busy++;
    int rc = r->sink->body(r, data, len);
    srv_conn_release(c);
    return rc;
}

/* Ends r through its sink (abort: cut off) and frees it. */
static void resp_finish(struct http_resp *r, int abort)
{
    if (!r->c) {
        resp_free(r); /* gone: the cancel callback will not be called */
        return;
    }
    struct conn *c = r->c;
    c->busy++;
    if (abort)
        r->sink->abort(r);
    else
        r->sink->end(r);
    resp_free(r);
    srv_conn_release(c);
}

void resp_end(struct http_resp *r)
{
    if (!r)
        return;
    if (r->c && !r->started)
        resp_start(r, 200, NULL, 0, NULL);
    resp_finish(r, 0);
}

void resp_abort(struct http_resp *r)
{
    if (r)
        resp_finish(r, 1);
}

size_t resp_pending(const struct http_resp *r)
{
    return r && r->c && r->started ? r->sink->pending(r) : 0;
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

static void on_accept(struct listener *ls, int fd,
                      const struct sockaddr_storage *peer, socklen_t peerlen)
{
    struct server *s = ls->arg;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->s = s;
    netconn_init(&c->nc, s->l, fd, &conn_ops);
    if (ev_add(s->l, fd, EPOLLIN | EPOLLRDHUP, conn_io, c) < 0) {
        close(fd);
        free(c);
        return;
    }
    DLIST_PUSH(s->conns, c, prev, next);
    s->nconns++;
    srv_conn_idle(c);
}

static int listen_open(struct server *s)
{
    int fd = listener_socket((struct sockaddr *)&s->addr, s->addrlen, 1024, 0);
    if (fd < 0)
        return fd;
    /* Remember the port actually bound (cfg port 0) so that
     * server_set_refuse(0) comes back on the same one. */
    socklen_t len = sizeof(s->addr);
    getsockname(fd, (struct sockaddr *)&s->addr, &len);
    s->addrlen = len;
    return listener_start(&s->ls, s->l, fd, on_accept, s);
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
    listener_stop(&s->ls);
    ev_timer_cancel(s->l, s->reap_timer);
    s->reap_timer = 0;
    while (s->conns)
        srv_conn_fail(s->conns); /* unlinks (and frees) it; resps become pending */
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
        listener_stop(&s->ls);
        for (struct conn *c = s->conns, *next; c; c = next) {
            next = c->next;
            if (c->nc.in.len == 0 && (!c->proto || c->proto->idle(c)))
                srv_conn_fail(c);
        }
        return 0;
    }
    return listener_running(&s->ls) ? 0 : listen_open(s);
}

size_t server_nconns(const struct server *s)
{
    return s->nconns;
}
