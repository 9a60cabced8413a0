/* h1: the HTTP/1.1 transport. Keep-alive connections per target, opened on
 * demand up to --max-conns in all; a due request takes an idle connection
 * (the most recently used), else opens one, else waits in its target's
 * queue. One request per connection at a time (no pipelining). A request
 * that finds its reused connection closed by the server before any byte of
 * the answer is resent once on another connection.
 *
 * --session-conns (multi-turn): a session's turns all go on the connection
 * its first turn opened, which carries nothing else and is closed when the
 * session ends, as a chat client per user would do (kvgated's kernel
 * splice applies to exactly such connections).
 *
 * Reads go to one scratch buffer; only an incomplete response head is
 * copied into the connection, so idle and streaming connections hold no
 * large buffers. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpresp.h"
#include "common/dlist.h"
#include "reqq.h"
#include "run.h"
#include "stream.h"

#define READ_BUF (256u << 10)
#define READS_PER_EVENT 8

enum { C_CONNECTING, C_BUSY, C_IDLE, C_HELD };

struct h1_conn {
    int fd;
    int state;
    struct lg_run *run;
    struct lg_target *t;
    struct lg_req *req;
    struct sbuf out;
    size_t out_off;
    struct sbuf head; /* an incomplete response head */
    struct lg_hresp hr;
    int head_done;
    int got_bytes;    /* any byte of the current response */
    uint32_t served;  /* responses completed on this connection */
    long held_for;    /* C_HELD: the request (next turn) it waits for */
    struct h1_conn *inext, *iprev; /* idle list */
};

struct h1_target {
    struct h1_conn *idle; /* LIFO */
    struct lg_reqq q;      /* requests waiting for a connection */
};

struct h1_state {
    struct h1_target *tg;
    size_t nconns;
    uint64_t opened;
    uint64_t kick_timer;
    char *rbuf;
    struct h1_conn **held; /* --session-conns: by request id, its session's connection */
};

#define ST(run) ((struct h1_state *)(run)->tpd)
#define TG(run, t) ((struct h1_target *)(t)->tp)

static void conn_close(struct h1_conn *c);
static void conn_io(struct ev_loop *l, int fd, uint32_t events, void *arg);
static void h1_submit(struct lg_run *run, struct lg_req *r);

/* ---- idle connections (queues: reqq.h) ---- */

static void idle_push(struct h1_target *ht, struct h1_conn *c)
{
    c->state = C_IDLE;
    DLIST_PUSH(ht->idle, c, iprev, inext);
}

static void idle_remove(struct h1_target *ht, struct h1_conn *c)
{
    DLIST_REMOVE(ht->idle, c, iprev, inext);
}

/* ---- sending ---- */

static void fail_req(struct h1_conn *c, enum lg_err e, const char *msg)
{
    struct lg_req *r = c->req;
    if (!r)
        return;
    c->req = NULL;
    r->conn = NULL;
    lg_req_fail(r, e, msg);
    lg_run_done(c->run, r, ev_now_ns(), 0);
}

static void conn_write(struct h1_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = write(c->fd, c->out.data + c->out_off, c->out.len - c->out_off);
        if (n > 0) {
            if (c->req)
                lg_run_sent(c->run, c->req, ev_now_ns());
            c->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            ev_mod(c->run->loop, c->fd, EPOLLIN | EPOLLOUT);
            return;
        }
        char msg[384];
        snprintf(msg, sizeof(msg), "write: %s", strerror(n < 0 ? errno : EPIPE));
        fail_req(c, LG_E_CLOSED, msg);
        conn_close(c);
        return;
    }
    sbuf_reset(&c->out);
    c->out_off = 0;
    ev_mod(c->run->loop, c->fd, EPOLLIN);
}

/* Puts r's bytes on connection c (connected) and starts writing. */
static void conn_start(struct h1_conn *c, struct lg_req *r)
{
    struct lg_run *run = c->run;
    c->req = r;
    r->conn = c;
    c->state = C_BUSY;
    c->head_done = c->got_bytes = 0;
    sbuf_reset(&c->head);
    if (lg_run_build(run, r)) {
        c->req = NULL;
        r->conn = NULL;
        lg_run_done(run, r, ev_now_ns(), 0);
        idle_push(TG(run, c->t), c);
        return;
    }
    sbuf_reset(&c->out);
    c->out_off = 0;
    sbuf_printf(&c->out,
                "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                "Accept: text/event-stream\r\nContent-Length: %zu\r\n",
                run->cfg->path, c->t->authority, run->body.len);
    if (run->meta.session_id[0])
        sbuf_printf(&c->out, "x-session-id: %s\r\n", run->meta.session_id);
    if (run->meta.tenant[0])
        sbuf_printf(&c->out, "x-gateway-inference-fairness-id: %s\r\n", run->meta.tenant);
    sbuf_puts(&c->out, "\r\n");
    sbuf_append(&c->out, run->body.data, run->body.len);
    if (c->out.oom) {
        fail_req(c, LG_E_BUILD, "out of memory");
        conn_close(c);
        return;
    }
    conn_write(c);
}

/* c is free: the next queued request of its target, or the idle list. */
static void conn_free_up(struct h1_conn *c)
{
    struct h1_target *ht = TG(c->run, c->t);
    c->req = NULL;
    if (ht->q.head) {
        struct lg_req *r = ht->q.head;
        lg_reqq_remove(&ht->q, r);
        conn_start(c, r);
    } else {
        idle_push(ht, c);
    }
}

static int conn_open(struct lg_run *run, struct lg_target *t, struct lg_req *r)
{
    struct h1_state *s = ST(run);
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    struct h1_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    c->run = run;
    c->t = t;
    c->state = C_CONNECTING;
    c->req = r;
    r->conn = c;
    sbuf_init(&c->out);
    sbuf_init(&c->head);
    int rc = ev_add(run->loop, fd, EPOLLIN | EPOLLOUT, conn_io, c);
    if (rc) {
        r->conn = NULL;
        close(fd);
        free(c);
        return rc;
    }
    s->nconns++;
    s->opened++;
    return 0;
}

/* Requests wait in queues while the connection cap is reached; when a
 * connection closes, the oldest waiting targets get new ones. Deferred to a
 * timer so closes inside callbacks never recurse. */
static void on_kick(struct ev_loop *l, void *arg)
{
    struct lg_run *run = arg;
    struct h1_state *s = ST(run);
    s->kick_timer = 0;
    int progress = 1;
    while (progress && s->nconns < run->cfg->max_conns) {
        progress = 0;
        for (size_t k = 0; k < run->ntargets && s->nconns < run->cfg->max_conns; k++) {
            struct h1_target *ht = TG(run, &run->targets[k]);
            if (!ht->q.head)
                continue;
            struct lg_req *r = ht->q.head;
            lg_reqq_remove(&ht->q, r);
            h1_submit(run, r);
            progress = 1;
        }
    }
}

static void kick(struct lg_run *run)
{
    struct h1_state *s = ST(run);
    if (!s->kick_timer)
        s->kick_timer = ev_timer_at(run->loop, ev_now_ns(), on_kick, run);
}

static void conn_close(struct h1_conn *c)
{
    struct lg_run *run = c->run;
    if (c->state == C_IDLE)
        idle_remove(TG(run, c->t), c);
    if (c->state == C_HELD)
        ST(run)->held[c->held_for] = NULL; /* the next turn opens another */
    if (c->req) {
        c->req->conn = NULL;
        c->req = NULL;
    }
    ev_del(run->loop, c->fd);
    close(c->fd);
    sbuf_free(&c->out);
    sbuf_free(&c->head);
    ST(run)->nconns--;
    free(c);
    for (size_t k = 0; k < run->ntargets; k++)
        if (TG(run, &run->targets[k])->q.head) {
            kick(run);
            break;
        }
}

static void h1_submit(struct lg_run *run, struct lg_req *r)
{
    struct h1_state *s = ST(run);
    struct lg_target *t = &run->targets[r->target];
    struct h1_target *ht = TG(run, t);
    if (s->held && s->held[r->id]) {
        struct h1_conn *c = s->held[r->id];
        s->held[r->id] = NULL;
        uint16_t k = (uint16_t)(c->t - run->targets); /* the session's target, not the next in turn */
        if (k != r->target) {
            run->targets[r->target].dispatched--;
            c->t->dispatched++;
            r->target = k;
        }
        conn_start(c, r);
        return;
    }
    if (ht->idle && !s->held) {
        struct h1_conn *c = ht->idle;
        idle_remove(ht, c);
        conn_start(c, r);
        return;
    }
    if (s->nconns >= run->cfg->max_conns) {
        /* at the cap: an idle connection to another target makes room */
        for (size_t k = 0; k < run->ntargets; k++) {
            struct h1_target *o = TG(run, &run->targets[k]);
            if (o->idle) {
                conn_close(o->idle);
                break;
            }
        }
    }
    if (s->nconns >= run->cfg->max_conns) {
        lg_reqq_push(&ht->q, r, 0);
        return;
    }
    int rc = conn_open(run, t, r);
    if (rc) {
        char msg[384];
        snprintf(msg, sizeof(msg), "connect %s: %s", t->authority, strerror(-rc));
        lg_req_fail(r, LG_E_CONNECT, msg);
        lg_run_done(run, r, ev_now_ns(), 0);
    }
}

static void h1_cancel(struct lg_run *run, struct lg_req *r)
{
    struct h1_conn *c = r->conn;
    if (c) {
        c->req = NULL;
        r->conn = NULL;
        conn_close(c); /* the answer is abandoned with its connection */
        return;
    }
    struct h1_target *ht = TG(run, &run->targets[r->target]);
    for (struct lg_req *q = ht->q.head; q; q = q->qnext)
        if (q == r) {
            lg_reqq_remove(&ht->q, r);
            break;
        }
}

/* ---- receiving ---- */

/* The response on c is complete. */
static void conn_complete(struct h1_conn *c, int reusable)
{
    struct lg_req *r = c->req;
    c->req = NULL;
    r->conn = NULL;
    c->served++;
    int keep = reusable && c->hr.keep_alive && c->out_off >= c->out.len;
    struct lg_run *run = c->run;
    lg_run_done(run, r, ev_now_ns(), 1);
    if (ST(run)->held) { /* the connection belongs to r's session */
        long next = lg_wl_next_turn(run->wl, r->id);
        if (keep && next >= 0 && run->reqs[next].state != LG_R_DONE) {
            c->state = C_HELD;
            c->held_for = next;
            ST(run)->held[next] = c;
        } else {
            conn_close(c); /* the session ended (or cannot go on here) */
        }
        return;
    }
    if (keep)
        conn_free_up(c);
    else
        conn_close(c);
}

/* Body bytes p[0..n) (decoded in place). 0 = go on, -1 = c is gone. */
static int conn_body(struct h1_conn *c, char *p, size_t n, uint64_t now)
{
    size_t out = 0;
    long used = lg_hresp_body(&c->hr, p, n, &out);
    if (used < 0) {
        fail_req(c, LG_E_PROTOCOL, "malformed chunked encoding");
        conn_close(c);
        return -1;
    }
    if (lg_stream_body(c->req, p, out, now) < 0) {
        fail_req(c, LG_E_PROTOCOL, NULL);
        conn_close(c);
        return -1;
    }
    if (c->hr.done) {
        conn_complete(c, (size_t)used == n); /* bytes past the end: do not reuse */
        return -1;
    }
    return 0;
}

/* Bytes p[0..n) arrived on c at now. 0 = go on, -1 = c is gone or done. */
static int conn_feed(struct h1_conn *c, char *p, size_t n, uint64_t now)
{
    if (!c->req) { /* nothing was asked */
        conn_close(c);
        return -1;
    }
    c->got_bytes = 1;
    if (c->head_done)
        return conn_body(c, p, n, now);
    if (sbuf_append(&c->head, p, n) < 0) {
        fail_req(c, LG_E_PROTOCOL, "out of memory");
        conn_close(c);
        return -1;
    }
    for (;;) {
        int rc = lg_hresp_head(&c->hr, c->head.data, c->head.len);
        if (rc == LG_HRESP_INCOMPLETE)
            return 0;
        if (rc < 0) {
            fail_req(c, LG_E_PROTOCOL,
                     rc == LG_HRESP_TOO_LARGE ? "response head too large" : "malformed response head");
            conn_close(c);
            return -1;
        }
        sbuf_consume(&c->head, (size_t)rc);
        if (c->hr.status >= 100 && c->hr.status < 200 && c->hr.status != 101)
            continue; /* 100 Continue and friends */
        break;
    }
    c->head_done = 1;
    lg_stream_head(c->req, c->hr.status, c->hr.event_stream, c->hr.dest, c->hr.dest_len);
    if (c->hr.done) { /* no body */
        conn_complete(c, c->head.len == 0);
        return -1;
    }
    /* the body's first bytes came with the head; decode them from a copy */
    size_t left = c->head.len;
    if (!left)
        return 0;
    char *rb = ST(c->run)->rbuf; /* free: the caller's bytes were copied to head */
    memcpy(rb, c->head.data, left);
    sbuf_reset(&c->head);
    return conn_body(c, rb, left, now);
}

static void conn_eof(struct h1_conn *c, int err)
{
    struct lg_req *r = c->req;
    if (r) {
        if (!c->got_bytes && c->served > 0 && !r->retried && c->state == C_BUSY) {
            /* the server closed a kept-alive connection as we reused it */
            r->retried = 1;
            c->req = NULL;
            r->conn = NULL;
            conn_close(c);
            h1_submit(r->run, r);
            return;
        }
        if (c->head_done && !err && lg_hresp_eof(&c->hr)) {
            conn_complete(c, 0);
            return;
        }
        char msg[384];
        snprintf(msg, sizeof(msg), "%s %s", err ? strerror(err) : "closed by server",
                 !c->got_bytes ? "before the response" : "mid-response");
        fail_req(c, LG_E_CLOSED, msg);
    }
    conn_close(c);
}

static void conn_connected(struct h1_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err) {
        char msg[384];
        snprintf(msg, sizeof(msg), "connect %s: %s", c->t->authority, strerror(err));
        fail_req(c, LG_E_CONNECT, msg);
        conn_close(c);
        return;
    }
    ev_mod(c->run->loop, c->fd, EPOLLIN);
    struct lg_req *r = c->req;
    if (!r) { /* its request was cancelled meanwhile */
        conn_free_up(c);
        return;
    }
    conn_start(c, r);
}

static void conn_io(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct h1_conn *c = arg;
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            conn_connected(c);
        return; /* c may be gone; level-triggered events come again */
    }
    if ((events & EPOLLOUT) && c->out_off < c->out.len) {
        conn_write(c);
        return; /* c may be gone */
    }
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
        return;
    char *rb = ST(c->run)->rbuf;
    for (int k = 0; k < READS_PER_EVENT; k++) {
        ssize_t n = read(fd, rb, READ_BUF);
        if (n > 0) {
            if (conn_feed(c, rb, (size_t)n, ev_now_ns()) < 0)
                return;
            if ((size_t)n < READ_BUF)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        conn_eof(c, n < 0 ? errno : 0);
        return;
    }
}

/* ---- transport ---- */

static int h1_init(struct lg_run *run, char *err, size_t errlen)
{
    struct h1_state *s = calloc(1, sizeof(*s));
    if (s)
        s->tg = calloc(run->ntargets, sizeof(*s->tg));
    if (s)
        s->rbuf = malloc(READ_BUF);
    if (s && run->cfg->session_conns)
        s->held = calloc(run->nreqs ? run->nreqs : 1, sizeof(*s->held));
    if (!s || !s->tg || !s->rbuf || (run->cfg->session_conns && !s->held)) {
        if (s) {
            free(s->tg);
            free(s->rbuf);
            free(s->held);
        }
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t k = 0; k < run->ntargets; k++)
        run->targets[k].tp = &s->tg[k];
    run->tpd = s;
    return 0;
}

static void h1_fini(struct lg_run *run)
{
    struct h1_state *s = ST(run);
    if (!s)
        return;
    for (size_t k = 0; k < run->ntargets; k++) {
        struct h1_target *ht = &s->tg[k];
        while (ht->idle)
            conn_close(ht->idle);
        while (ht->q.head)
            lg_reqq_remove(&ht->q, ht->q.head);
    }
    for (size_t i = 0; s->held && i < run->nreqs; i++)
        if (s->held[i])
            conn_close(s->held[i]);
    if (s->kick_timer)
        ev_timer_cancel(run->loop, s->kick_timer);
    free(s->held);
    free(s->tg);
    free(s->rbuf);
    free(s);
    run->tpd = NULL;
}

static void h1_gauges(struct lg_run *run, size_t *conns, size_t *queued)
{
    struct h1_state *s = ST(run);
    *conns = s->nconns;
    *queued = 0;
    for (size_t k = 0; k < run->ntargets; k++)
        *queued += s->tg[k].q.n;
}

const struct lg_transport lg_h1_transport = {
    .name = "http1",
    .init = h1_init,
    .fini = h1_fini,
    .submit = h1_submit,
    .cancel = h1_cancel,
    .gauges = h1_gauges,
};
