/* upstream: HTTP/1.1 connections from a worker to pods, with a keep-alive
 * pool per pod slot (idle conns are watched: a pod closing one drops it).
 *
 * One request per conn at a time: connect (non-blocking, connect_timeout_ms)
 * or reuse, write the re-framed request (head + buffered body, writev),
 * parse the response head (status line, headers, framing: Content-Length,
 * chunked or until close), then hand decoded body bytes to the relay as
 * they arrive. first_byte_timeout_ms runs until the first response byte.
 * Failures are reported once through relay_up_fail() after the conn was
 * detached and killed, so the relay can retry with a clean slate. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/dlist.h"
#include "common/ev.h"
#include "common/netaddr.h"
#include "gateway/dataplane.h"
#include "gateway/gwmetrics.h"

static const char *err_text(int err)
{
    switch (err) {
    case ECONNREFUSED: return "connection refused";
    case ECONNRESET: return "connection reset";
    case ETIMEDOUT: return "connection timed out";
    case EHOSTUNREACH: return "host unreachable";
    case ENETUNREACH: return "network unreachable";
    case EPIPE: return "connection closed";
    case EMFILE: case ENFILE: return "out of file descriptors";
    case EADDRNOTAVAIL: case EAGAIN: return "out of local ports";
    case ENOBUFS: case ENOMEM: return "out of kernel memory";
    default: return "connection error";
    }
}

/* Pod connections: no Nagle; keep-alive probes find a pod that vanished
 * while a long prefill (or an idle pooled conn) sends nothing; unacked
 * data gives up after TCP_USER_TIMEOUT. */
#define UP_KEEPIDLE_S 30
#define UP_KEEPINTVL_S 10
#define UP_KEEPCNT 3
#define UP_USER_TIMEOUT_MS 30000
static void tune_socket(int fd)
{
    int one = 1, idle = UP_KEEPIDLE_S, intvl = UP_KEEPINTVL_S, cnt = UP_KEEPCNT;
    unsigned ut = UP_USER_TIMEOUT_MS;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
}

/* ---- pool ---- */

static void pool_unlink(struct upconn *u)
{
    struct upool *p = &u->w->pools[u->slot];
    DLIST_REMOVE(p->head, u, pprev, pnext);
    p->n--;
}

static void pool_push(struct upconn *u)
{
    struct upool *p = &u->w->pools[u->slot];
    DLIST_PUSH(p->head, u, pprev, pnext);
    p->n++;
}

void up_free(struct upconn *u)
{
    sbuf_free(&u->head);
    sbuf_free(&u->in);
    free(u);
}

void up_kill(struct upconn *u)
{
    if (u->dead)
        return;
    struct worker *w = u->w;
    u->dead = 1;
    if (u->state == UP_IDLE)
        pool_unlink(u);
    if (u->fd >= 0) {
        ev_del(w->l, u->fd);
        close(u->fd);
        u->fd = -1;
    }
    ev_timer_cancel(w->l, u->timer);
    u->timer = 0;
    if (u->x && u->x->up == u)
        u->x->up = NULL;
    u->x = NULL;
    u->gnext = w->dead_ups;
    w->dead_ups = u;
    w_reap_later(w);
}

void up_pool_close_all(struct worker *w)
{
    for (uint32_t s = 0; s < POD_MAX; s++)
        while (w->pools[s].head)
            up_kill(w->pools[s].head);
}

static void up_events(struct upconn *u)
{
    if (u->dead || u->fd < 0)
        return;
    uint32_t m;
    if (u->state == UP_IDLE)
        m = EPOLLIN | EPOLLRDHUP;
    else if (u->state == UP_CONNECTING)
        m = EPOLLOUT;
    else
        m = (u->paused ? 0 : EPOLLIN | EPOLLRDHUP) |
            (!u->req_sent && !u->wr_failed ? EPOLLOUT : 0);
    ev_mod(u->w->l, u->fd, m);
}

void up_pause(struct upconn *u)
{
    u->paused = 1;
    up_events(u);
}

void up_resume(struct upconn *u)
{
    u->paused = 0;
    u->rx_ns = ev_now_ns(); /* the pod's idle clock restarts */
    up_events(u);
}

/* Detaches u from its exchange, kills it, reports the failure. */
static void up_fail(struct upconn *u, int kind, const char *cause)
{
    struct xreq *x = u->x;
    int reused = u->reused;
    if (x)
        x->up = NULL;
    u->x = NULL;
    up_kill(u);
    if (x)
        relay_up_fail(x, kind, reused, cause);
}

void up_done(struct upconn *u)
{
    struct worker *w = u->w;
    if (u->x && u->x->up == u)
        u->x->up = NULL;
    u->x = NULL;
    if (!u->resp_ka || !u->req_sent || u->wr_failed || u->in.len ||
        u->framing == UF_CLOSE || w->stopping || u->dead ||
        w->pools[u->slot].n >= DP_UP_IDLE_MAX) {
        up_kill(u);
        return;
    }
    ev_timer_cancel(w->l, u->timer);
    u->timer = 0;
    u->state = UP_IDLE;
    u->paused = 0;
    sbuf_reset(&u->in);
    pool_push(u);
    up_events(u);
}

/* ---- timers ---- */

static void up_timer_cb(struct ev_loop *l, void *arg)
{
    struct upconn *u = arg;
    u->timer = 0;
    if (u->fail_cause) { /* deferred synchronous connect error */
        up_fail(u, u->fail_kind, u->fail_cause);
    } else if (u->state == UP_CONNECTING) {
        up_fail(u, FK_CONNECT_TIMEOUT, "connect timeout");
    } else if (u->state == UP_ACTIVE && !u->head_done) {
        /* the whole head, not only its first byte: a pod trickling a
         * head must not hold the request for ever */
        up_fail(u, FK_FB_TIMEOUT, "no response head in time");
    } else if (u->state == UP_ACTIVE) {
        /* the answer is under way: the pod must keep sending, except
         * while we stopped reading it for a slow client */
        uint64_t limit = (uint64_t)u->w->g->cfg.stream_idle_timeout_ms * 1000000ull;
        uint64_t now = ev_now_ns();
        if (u->paused)
            u->rx_ns = now;
        if (now - u->rx_ns >= limit)
            up_fail(u, FK_STREAM_IDLE, "no bytes from the pod within stream_idle_timeout_ms");
        else
            u->timer = ev_timer_at(l, u->rx_ns + limit, up_timer_cb, u);
    }
}

static void arm(struct upconn *u, uint32_t ms)
{
    ev_timer_cancel(u->w->l, u->timer);
    u->timer = ms ? ev_timer_at(u->w->l, ev_now_ns() + (uint64_t)ms * 1000000ull,
                                up_timer_cb, u)
                  : 0;
}

/* Reports a connect error from the event loop, not from inside up_start,
 * so the retry logic never runs nested in the caller. */
static void defer_fail(struct upconn *u, int kind, const char *cause)
{
    u->fail_kind = kind;
    u->fail_cause = cause;
    ev_timer_cancel(u->w->l, u->timer);
    u->timer = ev_timer_at(u->w->l, ev_now_ns(), up_timer_cb, u);
}

/* ---- I/O ---- */

/* report: 0 when called from up_start (a reused connection, written at
 * once instead of after an EPOLLOUT round trip): a write error is not
 * reported there but left for the event loop, where the next write meets
 * it again (up_start's callers expect no failure callback inside it). */
static void up_write(struct upconn *u, int report)
{
    struct xreq *x = u->x;
    size_t hl = u->head.len, bl = x->body.len, total = hl + bl;
    while (u->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (u->sent < hl) {
            iov[n++] = (struct iovec){ u->head.data + u->sent, hl - u->sent };
            if (bl)
                iov[n++] = (struct iovec){ x->body.data, bl };
        } else {
            iov[n++] = (struct iovec){ x->body.data + (u->sent - hl), total - u->sent };
        }
        ssize_t w = writev(u->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || !report)
                return;
            if (u->got_byte) {
                u->wr_failed = 1; /* the pod answered early: read on */
                up_events(u);
                return;
            }
            up_fail(u, FK_RESET, err_text(errno));
            return;
        }
        u->sent += (size_t)w;
    }
    u->req_sent = 1;
    x->r.t_upstream_sent = ev_now_ns();
    up_events(u);
}

/* Processes u->in. 0 to keep reading, -1 when u no longer belongs to x. */
static int up_parse(struct upconn *u)
{
    struct xreq *x = u->x;
    struct gw *g = u->w->g;
    while (!u->head_done) {
        struct http1_response rh;
        size_t max = g->cfg.max_header_bytes ? g->cfg.max_header_bytes : 65536;
        int hl = http1_parse_response(u->in.data, u->in.len, max, &rh);
        if (hl == HTTP1_INCOMPLETE)
            return 0;
        if (hl < 0) {
            up_fail(u, FK_PROTO, hl == HTTP1_ERR_TOO_LARGE ? "response head too large"
                                                            : "malformed response head");
            return -1;
        }
        if (rh.status < 200 && rh.status != 101) { /* 100 Continue & co */
            sbuf_consume(&u->in, (size_t)hl);
            continue;
        }
        if (rh.status == 101) {
            up_fail(u, FK_PROTO, "unexpected protocol switch");
            return -1;
        }
        int has_body = !(rh.status == 204 || rh.status == 304);
        u->framing = !has_body ? UF_NONE
                     : rh.chunked ? UF_CHUNKED
                     : rh.until_close ? UF_CLOSE
                                      : UF_CLEN;
        u->clen_left = rh.content_length > 0 ? (uint64_t)rh.content_length : 0;
        u->resp_ka = rh.keep_alive;
        memset(&u->ck, 0, sizeof(u->ck));
        u->head_done = 1;
        int64_t clen = u->framing == UF_CLEN ? rh.content_length : -1;
        /* Header pointers are into u->in, which stays put until consumed. */
        int rc = relay_up_head(x, u, rh.status, rh.headers, rh.nheaders, clen, has_body);
        if (rc < 0 || u->dead || u->x != x)
            return -1;
        sbuf_consume(&u->in, (size_t)hl);
        if (!u->in.len) { /* the client sees the head before the first token */
            cconn_flush(x->c);
            if (u->dead || u->x != x || x->dead || x->done)
                return -1;
        }
        if (u->framing == UF_CLEN && u->clen_left == 0)
            u->framing = UF_NONE;
    }
    switch (u->framing) {
    case UF_CLEN: {
        size_t n = u->in.len < u->clen_left ? u->in.len : (size_t)u->clen_left;
        if (n) {
            /* HTTP/1.1: the last bytes reach the client with relay_up_end's
             * flush, after splice.c had its chance to splice the flow */
            x->last_body = !x->sid && n == u->clen_left;
            relay_up_body(x, u->in.data, n);
            if (u->dead || u->x != x)
                return -1;
            sbuf_consume(&u->in, n);
            u->clen_left -= n;
        }
        if (u->clen_left)
            return 0;
        break;
    }
    case UF_CHUNKED: {
        if (u->in.len == 0)
            return 0;
        size_t outn = 0;
        long used = http1_chunked_decode(&u->ck, u->in.data, u->in.len, u->in.data, &outn);
        if (used < 0) {
            up_fail(u, FK_PROTO, "malformed chunked body");
            return -1;
        }
        if (outn) {
            relay_up_body(x, u->in.data, outn);
            if (u->dead || u->x != x)
                return -1;
        }
        sbuf_consume(&u->in, (size_t)used);
        if (!u->ck.done)
            return 0;
        break;
    }
    case UF_CLOSE:
        if (u->in.len) {
            relay_up_body(x, u->in.data, u->in.len);
            if (u->dead || u->x != x)
                return -1;
            sbuf_reset(&u->in);
        }
        return 0;
    default:
        break;
    }
    relay_up_end(x); /* up_done: pooled or killed (extra bytes: killed) */
    return -1;
}

static void up_eof(struct upconn *u, int err)
{
    struct xreq *x = u->x;
    if (!u->got_byte) {
        up_fail(u, FK_RESET, err ? err_text(err) : "connection closed");
    } else if (!u->head_done) {
        up_fail(u, FK_PROTO, "truncated response head");
    } else if (u->framing == UF_CLOSE) {
        u->resp_ka = 0;
        relay_up_end(x);
    } else {
        up_fail(u, FK_RESET, "connection closed mid-body");
    }
}

static void up_read(struct upconn *u, int force)
{
    struct xreq *x = u->x;
    for (int iter = 0; iter < 16; iter++) {
        if (u->paused && !force)
            return;
        if (sbuf_reserve(&u->in, DP_READ_CHUNK)) {
            up_fail(u, FK_PROTO, "out of memory");
            return;
        }
        size_t room = u->in.cap - u->in.len - 1;
        ssize_t n = read(u->fd, u->in.data + u->in.len, room);
        if (n > 0) {
            u->in.len += (size_t)n;
            int drained = (size_t)n < room && !force;
            u->rx_ns = ev_now_ns();
            int had_head = u->head_done;
            if (!u->got_byte) {
                u->got_byte = 1;
                x->r.t_first_byte = u->rx_ns;
            }
            if (up_parse(u) < 0)
                return;
            if (u->head_done && !had_head) /* head timeout off, stream idle timeout on */
                arm(u, u->w->g->cfg.stream_idle_timeout_ms);
            /* A short read emptied the socket: epoll is level-triggered,
             * so another read would only say EAGAIN (one syscall a
             * response saved); more data or EOF wakes us again. */
            if (drained)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        up_eof(u, n < 0 ? errno : 0);
        return;
    }
}

static void up_connected(struct upconn *u)
{
    u->state = UP_ACTIVE;
    arm(u, u->w->g->cfg.first_byte_timeout_ms);
    up_events(u);
}

static void up_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct upconn *u = arg;
    if (u->state == UP_IDLE) { /* the pod closed it, or sent junk */
        up_kill(u);
        return;
    }
    struct xreq *x = u->x;
    if (!x) { /* cannot happen: active conns have an owner */
        up_kill(u);
        return;
    }
    if (u->state == UP_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
            err = errno;
        if (!err && (ev & (EPOLLERR | EPOLLHUP)))
            err = ECONNREFUSED;
        if (err) {
            up_fail(u, FK_CONNECT, err_text(err));
            return;
        }
        up_connected(u);
        ev |= EPOLLOUT;
    }
    if ((ev & EPOLLOUT) && !u->req_sent && !u->wr_failed) {
        up_write(u, 1);
        if (u->dead || u->x != x)
            return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        up_read(u, (ev & (EPOLLHUP | EPOLLERR)) != 0);
        if (u->dead || u->x != x)
            return;
    }
    up_events(u);
}

/* A conn splice.c kept as a session's dedicated one, idle and out of the
 * sockmap again: back to up_io and the pool. */
void up_repool(struct upconn *u)
{
    struct worker *w = u->w;
    ev_del(w->l, u->fd);
    if (ev_add(w->l, u->fd, EPOLLIN | EPOLLRDHUP, up_io, u) < 0) {
        up_kill(u);
        return;
    }
    u->x = NULL;
    up_done(u); /* pooled, or closed when it cannot carry another request */
}

/* ---- start ---- */

static int build_head(struct upconn *u, struct xreq *x)
{
    const struct pod_target *p = &x->r.pod;
    struct sbuf *h = &u->head;
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
    sbuf_printf(h, "%s\r\n\r\n", x->c->peer);
    return h->oom ? -ENOMEM : 0;
}

static struct upconn *pool_take(struct worker *w, const struct pod_target *pod)
{
    struct upool *p = &w->pools[pod->slot];
    while (p->head) {
        struct upconn *u = p->head;
        pool_unlink(u);
        u->state = UP_ACTIVE;
        if (u->addrlen == pod->addrlen && memcmp(&u->addr, &pod->addr, u->addrlen) == 0)
            return u;
        up_kill(u); /* the slot now names another pod */
    }
    return NULL;
}

int up_start(struct xreq *x, int fresh_only)
{
    struct worker *w = x->w;
    const struct pod_target *pod = &x->r.pod;
    if (pod->slot >= POD_MAX)
        return -EINVAL;
    struct upconn *u = fresh_only ? NULL : pool_take(w, pod);
    if (u) {
        u->reused = 1;
    } else {
        u = calloc(1, sizeof(*u));
        if (!u)
            return -ENOMEM;
        u->w = w;
        u->fd = -1;
        u->slot = pod->slot;
        u->addr = pod->addr;
        u->addrlen = pod->addrlen;
        u->state = UP_CONNECTING;
        sbuf_init(&u->head);
        sbuf_init(&u->in);
    }
    u->x = x;
    u->sent = 0;
    u->req_sent = u->wr_failed = u->got_byte = u->head_done = 0;
    u->paused = 0;
    u->framing = UF_NONE;
    x->up = u;
    x->up_slot = pod->slot;
    x->up_paused = 0;
    netaddr_text(&u->addr, x->dest, sizeof(x->dest), 1);
    if (build_head(u, x) < 0) {
        x->up = NULL;
        u->x = NULL;
        up_kill(u);
        return -ENOMEM;
    }
    if (u->reused) {
        /* an idle keep-alive connection is writable: write now, and wait
         * for EPOLLOUT only for what the socket did not take */
        u->state = UP_ACTIVE;
        arm(u, w->g->cfg.first_byte_timeout_ms);
        up_write(u, 0);
        up_events(u);
        return 0;
    }
    int in_progress = 0;
    int fd = netaddr_connect(&u->addr, u->addrlen, &in_progress);
    if (fd < 0) {
        int err = -fd;
        if (gw_errno_is_local(err)) /* the gateway ran out, not the pod */
            gw_metrics_local_error(w->g->metrics, "upstream", err);
        defer_fail(u, gw_errno_is_local(err) ? FK_LOCAL : FK_CONNECT, err_text(err));
        return 0;
    }
    tune_socket(fd);
    gw_metrics_pod_connect(w->g->metrics);
    if (ev_add(w->l, fd, EPOLLOUT, up_io, u) < 0) {
        close(fd);
        defer_fail(u, FK_CONNECT, "out of memory");
        return 0;
    }
    u->fd = fd;
    if (!in_progress)
        up_connected(u);
    else
        arm(u, w->g->cfg.connect_timeout_ms);
    return 0;
}
