/* admin: kvgated's admin listener (cfg.admin_listen), HTTP/1.1 with
 * keep-alive, served on the control thread's loop (control.c). This file
 * holds the connections (struct admin, admin_priv.h); admin_api.c the
 * endpoints (listed there).
 *
 * A hostile client must not lock the operator out (issue 9):
 *
 *   - each request must arrive whole (head and body) within ADMIN_REQ_NS of
 *     its first byte; later bytes never extend that (a slowloris trickling
 *     one byte a second is answered 408 and closed);
 *   - an idle keep-alive connection is closed after ADMIN_IDLE_NS, and so is
 *     one whose answer the client does not read;
 *   - at ADMIN_MAX_CONNS open connections, a new one evicts the connection
 *     that has waited longest for its client (idle, or a head still
 *     arriving), else the oldest: the newest client is always served;
 *   - handlers never block the loop (a pod named by DNS is resolved on the
 *     resolver thread and answered when known).
 *
 * With admin.token set, everything under /admin/ needs "Authorization:
 * Bearer <token>"; the comparison takes the same time whatever the lengths
 * of the token and the guess. A reload swaps the token at once
 * (admin_set_token). Bodies: Content-Length only, at most 1 MiB. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/httpstatus.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "common/sbuf.h"
#include "gateway/admin_priv.h"
#include "gateway/control_priv.h"
#include "gateway/gwmetrics.h"

#define ADMIN_MAX_CONNS 64
#define ADMIN_MAX_HEAD 16384
#define ADMIN_MAX_BODY (1u << 20)
#define ADMIN_REQ_NS (5ull * 1000000000ull)   /* a whole request, from its first byte */
#define ADMIN_IDLE_NS (30ull * 1000000000ull) /* keep-alive idle; an unread answer */
static void count_limit(struct admin *a, const char *which)
{
    if (a->ctl && a->ctl->g->metrics)
        gw_metrics_limit(a->ctl->g->metrics, which);
}

/* ---- the token ---- */

void admin_set_token(struct admin *a, const char *token)
{
    if (!a)
        return;
    memset(a->token, 0, sizeof(a->token));
    size_t n = strlen(token);
    if (n >= sizeof(a->token))
        n = sizeof(a->token) - 1; /* config.c caps it at 127 bytes */
    memcpy(a->token, token, n);
    a->token_len = n;
}

/* given[0..glen) == the token, in time independent of both lengths and of
 * where they differ: ADMIN_TOKEN_WIN bytes are always compared, the guess
 * zero-padded, and the lengths folded into the result. */
static int token_equal(const struct admin *a, const char *given, size_t glen)
{
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < ADMIN_TOKEN_WIN; i++) {
        unsigned char g = i < glen ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)a->token[i]);
    }
    diff |= (unsigned char)(glen != a->token_len);
    diff |= (unsigned char)(glen >= ADMIN_TOKEN_WIN);
    return diff == 0;
}

int adm_token_ok(const struct admin *a, const struct http1_request *rq)
{
    if (!a->token_len)
        return 1;
    const struct http1_header *h = http1_find(rq, "authorization");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7))
        return 0;
    return token_equal(a, h->value + 7, h->value_len - 7);
}

/* ---- connections ---- */

static void conn_close(struct aconn *c)
{
    struct admin *a = c->a;
    if (c->fd >= 0) {
        ev_del(a->l, c->fd);
        close(c->fd);
    }
    ev_timer_cancel(a->l, c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    sbuf_free(&c->in);
    sbuf_free(&c->out);
    free(c);
}

static void on_deadline(struct ev_loop *l, void *arg);

/* The one deadline of c's current state. */
static void conn_arm(struct aconn *c)
{
    uint64_t at;
    if (c->out.len || c->pending)
        at = c->since + ADMIN_IDLE_NS;   /* an answer on its way or unread */
    else if (c->req_t0)
        at = c->req_t0 + ADMIN_REQ_NS;   /* a request arriving */
    else
        at = c->since + ADMIN_IDLE_NS;   /* keep-alive idle */
    if (c->timer && at == c->timer_at)
        return;
    ev_timer_cancel(c->a->l, c->timer);
    c->timer_at = at;
    c->timer = ev_timer_at(c->a->l, at, on_deadline, c);
}

static void on_deadline(struct ev_loop *l, void *arg)
{
    struct aconn *c = arg;
    c->timer = 0;
    if (c->req_t0 && !c->out.len && !c->pending) {
        /* a request that did not arrive whole in time: say so, once */
        count_limit(c->a, "admin_request_timeout");
        c->close_after = 1;
        adm_respond_error(c, 408, "the request did not arrive within 5 s of its first byte",
                          NULL);
        ssize_t n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    conn_close(c);
}

/* Reading pauses while a late answer is due and the buffer behind it is
 * full (level-triggered EPOLLIN would spin); writing while output waits. */
static uint32_t want_events(const struct aconn *c, int out_waiting)
{
    int paused = c->pending && c->in.len > ADMIN_MAX_HEAD + ADMIN_MAX_BODY + 4096;
    return (paused ? 0 : EPOLLIN) | (out_waiting ? EPOLLOUT : 0);
}

/* Sends what is queued. 0, or -1 when c was closed. */
static int conn_flush(struct aconn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                ev_mod(c->a->l, c->fd, want_events(c, 1));
                return 0;
            }
            conn_close(c);
            return -1;
        }
        c->out_off += (size_t)n;
    }
    sbuf_reset(&c->out);
    c->out_off = 0;
    if (c->close_after) {
        conn_close(c);
        return -1;
    }
    c->since = ev_now_ns(); /* waiting for the client again */
    ev_mod(c->a->l, c->fd, want_events(c, 0));
    return 0;
}

/* ---- answers ---- */

void adm_respond(struct aconn *c, int code, const char *ctype, const char *body, size_t len,
                 const char *extra)
{
    http1_status_line(&c->out, code);
    sbuf_printf(&c->out, "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n", ctype, len,
                extra ? extra : "", c->close_after ? "Connection: close\r\n" : "");
    sbuf_append(&c->out, body, len);
}

void adm_respond_json(struct aconn *c, int code, struct sbuf *b)
{
    if (b->oom) {
        code = 500;
        sbuf_reset(b);
        http_error_json(b, 500, "out of memory");
    }
    adm_respond(c, code, "application/json", b->data ? b->data : "", b->len, NULL);
}

void adm_respond_error(struct aconn *c, int code, const char *msg, const char *extra)
{
    struct sbuf b;
    sbuf_init(&b);
    http_error_json(&b, code, msg);
    adm_respond(c, code, "application/json", b.data ? b.data : "", b.len, extra);
    sbuf_free(&b);
}

void adm_respond_cjson(struct aconn *c, int code, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    if (!s) {
        adm_respond_error(c, 500, "out of memory", NULL);
        return;
    }
    adm_respond(c, code, "application/json", s, strlen(s), NULL);
    free(s);
}

/* ---- requests ---- */

void adm_process(struct aconn *c)
{
    while (!c->close_after && !c->pending && c->in.len) {
        struct http1_request rq;
        int rc = http1_parse_request(c->in.data, c->in.len, ADMIN_MAX_HEAD, &rq);
        if (rc == HTTP1_INCOMPLETE)
            return;
        if (rc < 0) {
            c->close_after = 1;
            int code = rc == HTTP1_ERR_TOO_LARGE ? 431 : rc == HTTP1_ERR_VERSION ? 505 : 400;
            adm_respond_error(c, code, "malformed request", NULL);
            return;
        }
        if (rq.chunked) {
            c->close_after = 1;
            adm_respond_error(c, 411, "send the body with a Content-Length", NULL);
            return;
        }
        size_t blen = rq.content_length > 0 ? (size_t)rq.content_length : 0;
        if (rq.content_length > (int64_t)ADMIN_MAX_BODY) {
            c->close_after = 1;
            adm_respond_error(c, 413, "admin bodies are at most 1 MiB", NULL);
            return;
        }
        if (c->in.len < (size_t)rc + blen) {
            if (rq.expect_continue && !c->continued) {
                c->continued = 1;
                sbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            }
            return;
        }
        if (!rq.keep_alive)
            c->close_after = 1;
        adm_handle(c, &rq, c->in.data + rc, blen);
        if (c->pending)
            c->since = ev_now_ns(); /* the late answer's deadline runs from here */
        sbuf_consume(&c->in, (size_t)rc + blen);
        c->continued = 0;
        c->req_t0 = 0; /* the next request's clock starts with its own bytes */
    }
}

/* After process(): the clock of a request whose first bytes are in. */
static void start_clock(struct aconn *c)
{
    if (c->in.len && !c->req_t0 && !c->pending)
        c->req_t0 = ev_now_ns();
}

/* Sends what process() queued, then re-arms. 0, or -1 when c was closed. */
static int conn_done(struct aconn *c)
{
    if (c->out.len) {
        if (conn_flush(c))
            return -1;
    } else if (c->close_after && !c->pending) {
        conn_close(c);
        return -1;
    }
    conn_arm(c);
    return 0;
}

struct aconn *adm_find(struct admin *a, uint64_t id)
{
    for (struct aconn *c = a->conns; c; c = c->next)
        if (c->id == id)
            return c;
    return NULL;
}

void adm_finish(struct aconn *c)
{
    c->pending = 0;
    c->since = ev_now_ns();
    if (c->fd >= 0)
        ev_mod(c->a->l, c->fd, EPOLLIN); /* reading may have paused meanwhile */
    adm_process(c);
    start_clock(c);
    if (c->fd >= 0)
        conn_done(c);
}

static void on_conn(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct aconn *c = arg;
    if (events & EPOLLIN) {
        for (;;) {
            if (c->in.len > ADMIN_MAX_HEAD + ADMIN_MAX_BODY + 4096)
                break; /* process() answers 413 or 431; stop reading */
            if (sbuf_reserve(&c->in, 16384)) {
                conn_close(c);
                return;
            }
            ssize_t n = recv(fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
            if (n > 0) {
                if (!c->req_t0 && !c->pending && !c->close_after)
                    c->req_t0 = ev_now_ns(); /* this request's clock starts now */
                c->in.len += (size_t)n;
                c->in.data[c->in.len] = 0;
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                conn_close(c);
                return;
            }
            if (errno == EAGAIN)
                break;
        }
        adm_process(c);
        start_clock(c);
        if (!want_events(c, 0)) { /* paused until the late answer */
            ev_mod(l, fd, c->out.len ? EPOLLOUT : 0);
            conn_arm(c);
            return;
        }
    }
    conn_done(c);
}

/* The table is full: the connection that has waited longest for its
 * client (idle, or its request still arriving) goes; failing that, the
 * oldest. */
static void evict_one(struct admin *a)
{
    struct aconn *victim = NULL, *oldest = NULL;
    for (struct aconn *c = a->conns; c; c = c->next) {
        if (!oldest || c->since < oldest->since)
            oldest = c;
        if (!c->out.len && !c->pending && (!victim || c->since < victim->since))
            victim = c;
    }
    if (!victim)
        victim = oldest;
    if (victim) {
        count_limit(a, "admin_connections");
        conn_close(victim);
    }
}

static void on_accept(struct listener *ls, int cfd, const struct sockaddr_storage *peer,
                      socklen_t peerlen)
{
    struct admin *a = ls->arg;
    if (a->nconns >= ADMIN_MAX_CONNS)
        evict_one(a);
    struct aconn *c = calloc(1, sizeof(*c));
    if (!c || ev_add(a->l, cfd, EPOLLIN, on_conn, c) < 0) {
        free(c);
        close(cfd);
        return;
    }
    c->a = a;
    c->fd = cfd;
    c->id = ++a->next_id;
    c->since = ev_now_ns();
    sbuf_init(&c->in);
    sbuf_init(&c->out);
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    conn_arm(c);
}

/* The listening socket of spec, on a's loop. 0 or -errno (logged). */
static int listen_on(struct admin *a, const char *spec)
{
    char err[256];
    struct sockaddr_storage ss;
    socklen_t sl;
    if (netaddr_listen_addr(spec, &ss, &sl, err, sizeof(err))) {
        LOG_ERR("admin.listen \"%s\": %s", spec, err);
        return -EINVAL;
    }
    /* the shared listener: accept loop with the EMFILE back-off */
    int fd = listener_socket((struct sockaddr *)&ss, sl, 64, 0);
    if (fd < 0) {
        LOG_ERR("admin.listen \"%s\": %s", spec, strerror(-fd));
        return fd;
    }
    int rc = listener_start(&a->ls, a->l, fd, on_accept, a);
    if (rc < 0)
        LOG_ERR("admin listener: %s", strerror(-rc));
    return rc < 0 ? rc : 0;
}

int admin_start(struct ctl *ctl, struct admin **out)
{
    const char *spec = ctl->cfg.admin_listen;
    *out = NULL;
    if (!spec[0])
        return 0;
    struct admin *a = calloc(1, sizeof(*a));
    if (!a) {
        LOG_ERR("admin listener: out of memory");
        return -ENOMEM;
    }
    a->ctl = ctl;
    a->l = ctl->l;
    admin_set_token(a, ctl->cfg.admin_token);
    int rc = listen_on(a, spec);
    if (rc < 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    while (a->conns)
        conn_close(a->conns);
    listener_stop(&a->ls);
    free(a);
}
