/* server: podsim's HTTP/1.1 + h2c (prior knowledge) front end. See server.h.
 * This file: listener, connections, protocol detection, responses'
 * ownership and the writer API; HTTP/1.1 is in server_h1.c, HTTP/2 in
 * server_h2.c (server_priv.h says who owns what).
 *
 * Shape: server -> conn -> (h1: one active request | h2: streams) -> resp.
 *
 * Lifetimes, the part that is easy to get wrong:
 *  - A conn is only freed when no code is running on it: every entry point
 *    (I/O callback, timer, resp_* call) holds c->busy, and srv_conn_fail() only
 *    marks it dead, closes the socket and detaches its responses; the last
 *    srv_conn_release() frees it.
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
 *    srv_conn_flush() skips frame generation there; the caller of
 *    nghttp2_session_mem_recv flushes once it returns. */
#include "podsim/server_priv.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/sbuf.h"

#define IN_PAUSE (64u << 10)    /* h1: stop reading this far ahead */
#define LINGER_NS 2000000000ull /* lingering close after shutdown(WR) */
#define ACCEPT_RETRY_NS 100000000ull

static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

/* ---- request copies, error bodies ---- */

void srv_error_json(struct sbuf *b, int code, const char *msg)
{
    sbuf_puts(b, "{\"error\":{\"message\":\"");
    sbuf_json_escape(b, msg, strlen(msg));
    sbuf_printf(b, "\",\"type\":\"BadRequestError\",\"param\":null,\"code\":%d}}",
                code);
}

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
    r->st = NULL;
    r->where = R_PENDING;
    list_push(&r->s->pending, r);
    schedule_reap(r->s);
}

/* The transport completed r before resp_end: parked until the handler ends
 * it; resp_on_cancel on it delivers nothing. */
void srv_resp_done(struct http_resp *r)
{
    r->c = NULL;
    r->st = NULL;
    r->completed = 1;
    r->where = R_ZOMBIE;
    list_push(&r->s->zombies, r);
}

struct http_resp *srv_resp_new(struct conn *c, struct h2stream *st,
                                  struct reqdata *rd)
{
    struct http_resp *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->s = c->s;
    r->c = c;
    r->st = st;
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
    q->h2 = st != NULL;
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
    srv_h2_conn_free(c);
    srv_rd_free(&c->rd);
    sbuf_free(&c->in);
    sbuf_free(&c->out);
    free(c);
}

void srv_conn_release(struct conn *c)
{
    if (--c->busy > 0)
        return;
    if (c->dead)
        conn_free(c);
    else
        update_events(c);
}

void srv_conn_fail(struct conn *c)
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
        srv_resp_gone(c->active);
        c->active = NULL;
    }
    srv_h2_conn_fail(c);
    if (c->busy == 0)
        conn_free(c);
}

static void linger_cb(struct ev_loop *l, void *arg)
{
    struct conn *c = arg;
    c->linger_timer = 0;
    c->busy++;
    srv_conn_fail(c);
    srv_conn_release(c);
}

void srv_conn_flush(struct conn *c)
{
    if (c->dead || c->in_ng)
        return; /* inside nghttp2: the mem_recv caller flushes afterwards */
    if (c->out.oom) {
        srv_conn_fail(c); /* bytes were dropped: the framing is broken */
        return;
    }
    for (;;) {
        if (c->ng && srv_h2_pump(c) < 0) {
            srv_conn_fail(c);
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
            srv_conn_fail(c); /* EPIPE, ECONNRESET, ... */
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
        srv_conn_fail(c); /* client not reading */
        return;
    }
    if (pending)
        return;
    if (c->ng && srv_h2_finished(c)) {
        srv_conn_fail(c); /* GOAWAY exchanged, nothing left */
        return;
    }
    if (c->closing && !c->shut) {
        if (c->rd_eof) {
            srv_conn_fail(c);
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

/* ---- input ---- */

static void process_input(struct conn *c)
{
    if (c->proto == P_DETECT) {
        size_t n = c->in.len < H2_PREFACE_LEN ? c->in.len : H2_PREFACE_LEN;
        if (memcmp(c->in.data ? c->in.data : "", H2_PREFACE, n) != 0) {
            c->proto = P_H1;
        } else if (c->in.len >= H2_PREFACE_LEN) {
            c->proto = P_H2;
            if (srv_h2_init(c)) {
                srv_conn_fail(c);
                return;
            }
        } else {
            return; /* a prefix of the preface: wait */
        }
    }
    if (c->proto == P_H1)
        srv_h1_process(c);
    else
        srv_h2_process(c);
}

static void conn_read(struct conn *c, uint32_t ev)
{
    if (!(ev & EPOLLIN)) {
        srv_conn_fail(c); /* HUP/ERR/RDHUP while reading is paused */
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
            srv_conn_fail(c);
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
        srv_conn_fail(c); /* cancels the active response, if any */
}

static void conn_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct conn *c = arg;
    c->busy++;
    if (ev & EPOLLOUT)
        srv_conn_flush(c);
    if (!c->dead && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        conn_read(c, ev);
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
    if (r->st)
        srv_h2_resp_start(r, status, content_type, content_length, extra_headers);
    else
        srv_h1_resp_start(r, status, content_type, content_length, extra_headers);
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
    int rc = 0;
    c->busy++;
    if (r->st)
        rc = srv_h2_resp_write(r, data, len);
    else
        rc = srv_h1_resp_write(r, data, len);
    srv_conn_release(c);
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
    if (r->st)
        srv_h2_resp_end(r, 0);
    else
        srv_h1_resp_end(r, 0);
    resp_free(r);
    srv_conn_release(c);
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
    if (r->st)
        srv_h2_resp_end(r, 1);
    else
        srv_h1_resp_end(r, 1);
    resp_free(r);
    srv_conn_release(c);
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
        srv_rd_init(&c->rd);
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
        listen_close(s);
        for (struct conn *c = s->conns, *next; c; c = next) {
            next = c->next;
            if (!c->active && !c->streams && c->in.len == 0)
                srv_conn_fail(c);
        }
        return 0;
    }
    return s->lfd >= 0 ? 0 : listen_open(s);
}

size_t server_nconns(const struct server *s)
{
    return s->nconns;
}
