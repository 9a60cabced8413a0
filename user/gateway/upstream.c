/* upstream: HTTP/1.1 connections from a worker to pods. See upstream.h. */
#include "gateway/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/dlist.h"
#include "common/ev.h"
#include "common/http1.h"
#include "common/netaddr.h"
#include "common/sbuf.h"
#include "gateway/gateway.h"
#include "gateway/graveyard.h"
#include "gateway/gwmetrics.h"

#define UP_IDLE_MAX 64       /* idle keep-alive conns per pod per worker */
#define UP_READ_CHUNK 16384

enum { UP_CONNECTING, UP_ACTIVE, UP_IDLE };
enum { UF_NONE, UF_CLEN, UF_CHUNKED, UF_CLOSE };

struct upool {
    struct upconn *head;
    uint32_t n;
};

struct upstream {
    struct ev_loop *l;
    struct gw *g;
    struct graveyard *gy;
    int no_pool;
    struct upool pools[POD_MAX];
};

struct upconn {
    struct upstream *us;
    int fd;
    uint32_t slot;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct upconn *pprev, *pnext; /* pool, while idle */
    struct grave grave;
    const struct up_events *ev;   /* the owner's, while active */
    void *owner;
    int state, dead, reused, paused;
    uint64_t timer;               /* connect / head / idle / deferred failure */
    int fail_kind;                /* deferred failure (sync connect error) */
    const char *fail_cause;
    struct up_request rq;
    size_t sent;                  /* bytes of head + body written */
    int req_sent, wr_failed;
    struct sbuf in;               /* response bytes not yet processed */
    int got_byte, head_done, resp_ka, framing;
    uint64_t rx_ns;               /* last response bytes */
    uint64_t clen_left;
    struct http1_chunked ck;
};

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

/* ---- the per-worker state ---- */

struct upstream *up_new(struct ev_loop *l, struct gw *g, struct graveyard *gy)
{
    struct upstream *us = kv_calloc(1, sizeof(*us));
    if (us) {
        us->l = l;
        us->g = g;
        us->gy = gy;
    }
    return us;
}

void up_close_idle(struct upstream *us)
{
    for (uint32_t s = 0; s < POD_MAX; s++)
        while (us->pools[s].head)
            up_kill(us->pools[s].head);
}

void up_stop_pooling(struct upstream *us)
{
    us->no_pool = 1;
}

void up_free(struct upstream *us)
{
    kv_free(us);
}

uint32_t up_slot(const struct upconn *u)
{
    return u->slot;
}

int up_fd(const struct upconn *u)
{
    return u->fd;
}

/* ---- pool ---- */

static void pool_unlink(struct upconn *u)
{
    struct upool *p = &u->us->pools[u->slot];
    DLIST_REMOVE(p->head, u, pprev, pnext);
    p->n--;
}

static void pool_push(struct upconn *u)
{
    struct upool *p = &u->us->pools[u->slot];
    DLIST_PUSH(p->head, u, pprev, pnext);
    p->n++;
}

static void destroy(struct grave *g)
{
    struct upconn *u = GRAVE_OWNER(g, struct upconn, grave);
    sbuf_free(&u->in);
    kv_free(u);
}

/* Unlinks and closes u; it is freed after the current callback. */
static void bury(struct upconn *u, int close_fd)
{
    if (u->dead)
        return;
    u->dead = 1;
    if (u->state == UP_IDLE)
        pool_unlink(u);
    if (u->fd >= 0) {
        ev_del(u->us->l, u->fd);
        if (close_fd)
            close(u->fd);
        u->fd = -1;
    }
    ev_timer_cancel(u->us->l, u->timer);
    u->timer = 0;
    u->ev = NULL;
    u->owner = NULL;
    gy_bury(u->us->gy, &u->grave, destroy);
}

void up_kill(struct upconn *u)
{
    bury(u, 1);
}

int up_detach_fd(struct upconn *u)
{
    int fd = u->fd;
    bury(u, 0);
    return fd;
}

static void set_events(struct upconn *u)
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
    ev_mod(u->us->l, u->fd, m);
}

void up_pause(struct upconn *u)
{
    u->paused = 1;
    set_events(u);
}

void up_resume(struct upconn *u)
{
    u->paused = 0;
    u->rx_ns = ev_now_ns(); /* the pod's idle clock restarts */
    set_events(u);
}

/* Kills u, then tells its owner (once). */
static void up_fail(struct upconn *u, int kind, const char *cause)
{
    const struct up_events *ev = u->ev;
    void *owner = u->owner;
    int reused = u->reused;
    up_kill(u);
    if (ev)
        ev->fail(owner, kind, reused, cause);
}

int up_reusable(const struct upconn *u)
{
    return u->resp_ka && u->req_sent && !u->wr_failed && !u->in.len &&
           u->framing != UF_CLOSE && !u->dead && u->fd >= 0;
}

void up_release(struct upconn *u)
{
    struct upstream *us = u->us;
    u->ev = NULL;
    u->owner = NULL;
    if (!up_reusable(u) || us->no_pool || us->pools[u->slot].n >= UP_IDLE_MAX) {
        up_kill(u);
        return;
    }
    ev_timer_cancel(us->l, u->timer);
    u->timer = 0;
    u->state = UP_IDLE;
    u->paused = 0;
    sbuf_reset(&u->in);
    pool_push(u);
    set_events(u);
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
        uint64_t limit = (uint64_t)u->us->g->cfg.stream_idle_timeout_ms * 1000000ull;
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
    ev_timer_cancel(u->us->l, u->timer);
    u->timer = ms ? ev_timer_at(u->us->l, ev_now_ns() + (uint64_t)ms * 1000000ull,
                                up_timer_cb, u)
                  : 0;
}

/* Reports a connect error from the event loop, not from inside up_start,
 * so the owner's retry logic never runs nested in its own call. */
static void defer_fail(struct upconn *u, int kind, const char *cause)
{
    u->fail_kind = kind;
    u->fail_cause = cause;
    ev_timer_cancel(u->us->l, u->timer);
    u->timer = ev_timer_at(u->us->l, ev_now_ns(), up_timer_cb, u);
}

/* ---- I/O ---- */

/* Gone from its owner since `owner` was read? */
static int lost(const struct upconn *u, const void *owner)
{
    return u->dead || u->owner != owner;
}

/* report: 0 when called from up_start (a reused connection, written at
 * once instead of after an EPOLLOUT round trip): a write error is not
 * reported there but left for the event loop, where the next write meets
 * it again (up_start's callers expect no event inside it). */
static void up_write(struct upconn *u, int report)
{
    size_t hl = u->rq.head_len, bl = u->rq.body_len, total = hl + bl;
    while (u->sent < total) {
        struct iovec iov[2];
        int n = 0;
        if (u->sent < hl) {
            iov[n++] = (struct iovec){ (char *)u->rq.head + u->sent, hl - u->sent };
            if (bl)
                iov[n++] = (struct iovec){ (char *)u->rq.body, bl };
        } else {
            iov[n++] = (struct iovec){ (char *)u->rq.body + (u->sent - hl), total - u->sent };
        }
        ssize_t w = writev(u->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK || !report)
                return;
            if (u->got_byte) {
                u->wr_failed = 1; /* the pod answered early: read on */
                set_events(u);
                return;
            }
            up_fail(u, FK_RESET, err_text(errno));
            return;
        }
        u->sent += (size_t)w;
    }
    u->req_sent = 1;
    u->rq = (struct up_request){ 0 }; /* the owner's buffers are its own again */
    set_events(u);
    if (u->ev && report >= 0)
        u->ev->sent(u->owner);
}

/* The answer's head, once complete: 1 on, 0 incomplete, -1 u is lost. */
static int parse_head(struct upconn *u)
{
    void *owner = u->owner;
    struct gw *g = u->us->g;
    for (;;) {
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
        if (u->framing == UF_CLEN && u->clen_left == 0)
            u->framing = UF_NONE;
        u->resp_ka = rh.keep_alive;
        memset(&u->ck, 0, sizeof(u->ck));
        u->head_done = 1;
        /* header pointers are into u->in, which stays put until consumed */
        u->ev->head(owner, u, &rh, has_body, u->in.len > (size_t)hl);
        if (lost(u, owner))
            return -1;
        sbuf_consume(&u->in, (size_t)hl);
        return 1;
    }
}

/* Processes u->in. 0 to keep reading, -1 when u no longer belongs to its
 * owner (the answer ended, or failed). */
static int up_parse(struct upconn *u)
{
    void *owner = u->owner;
    if (!u->head_done) {
        int rc = parse_head(u);
        if (rc <= 0)
            return rc;
    }
    switch (u->framing) {
    case UF_CLEN: {
        size_t n = u->in.len < u->clen_left ? u->in.len : (size_t)u->clen_left;
        if (n) {
            u->ev->body(owner, u->in.data, n, n == u->clen_left);
            if (lost(u, owner))
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
            u->ev->body(owner, u->in.data, outn, u->ck.done);
            if (lost(u, owner))
                return -1;
        }
        sbuf_consume(&u->in, (size_t)used);
        if (!u->ck.done)
            return 0;
        break;
    }
    case UF_CLOSE:
        if (u->in.len) {
            u->ev->body(owner, u->in.data, u->in.len, 0);
            if (lost(u, owner))
                return -1;
            sbuf_reset(&u->in);
        }
        return 0;
    default:
        break;
    }
    u->ev->end(owner, u); /* the owner releases, detaches or kills u */
    return -1;
}

static void up_eof(struct upconn *u, int err)
{
    if (!u->got_byte) {
        up_fail(u, FK_RESET, err ? err_text(err) : "connection closed");
    } else if (!u->head_done) {
        up_fail(u, FK_PROTO, "truncated response head");
    } else if (u->framing == UF_CLOSE) {
        u->resp_ka = 0;
        u->ev->end(u->owner, u);
    } else {
        up_fail(u, FK_RESET, "connection closed mid-body");
    }
}

static void up_read(struct upconn *u, int force)
{
    void *owner = u->owner;
    for (int iter = 0; iter < 16; iter++) {
        if (u->paused && !force)
            return;
        if (sbuf_reserve(&u->in, UP_READ_CHUNK)) {
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
                u->ev->first_byte(owner);
            }
            if (up_parse(u) < 0)
                return;
            if (u->head_done && !had_head) /* head deadline off, idle deadline on */
                arm(u, u->us->g->cfg.stream_idle_timeout_ms);
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
    arm(u, u->us->g->cfg.first_byte_timeout_ms);
    set_events(u);
}

static void up_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct upconn *u = arg;
    if (u->state == UP_IDLE || !u->ev) { /* idle: the pod closed it, or sent junk */
        up_kill(u);
        return;
    }
    void *owner = u->owner;
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
        if (lost(u, owner))
            return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        up_read(u, (ev & (EPOLLHUP | EPOLLERR)) != 0);
        if (lost(u, owner))
            return;
    }
    set_events(u);
}

/* ---- start ---- */

static struct upconn *conn_new(struct upstream *us, uint32_t slot,
                               const struct sockaddr_storage *a, socklen_t alen)
{
    struct upconn *u = kv_calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->us = us;
    u->fd = -1;
    u->slot = slot;
    u->addr = *a;
    u->addrlen = alen;
    u->state = UP_CONNECTING;
    sbuf_init(&u->in);
    return u;
}

void up_adopt_fd(struct upstream *us, uint32_t slot, const struct sockaddr_storage *a,
                 socklen_t alen, int fd)
{
    struct upconn *u = slot < POD_MAX ? conn_new(us, slot, a, alen) : NULL;
    if (!u || ev_add(us->l, fd, EPOLLIN | EPOLLRDHUP, up_io, u) < 0) {
        close(fd);
        kv_free(u);
        return;
    }
    u->fd = fd;
    u->state = UP_ACTIVE;
    u->req_sent = u->resp_ka = 1; /* idle between requests */
    up_release(u);                /* pooled, or closed when it cannot be */
}

static struct upconn *pool_take(struct upstream *us, const struct pod_target *pod)
{
    struct upool *p = &us->pools[pod->slot];
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

/* A new connection's connect: 0 (under way or failed, reported later). */
static int connect_new(struct upconn *u)
{
    struct upstream *us = u->us;
    int in_progress = 0;
    int fd = netaddr_connect(&u->addr, u->addrlen, &in_progress);
    if (fd < 0) {
        int err = -fd;
        if (gw_errno_is_local(err)) /* the gateway ran out, not the pod */
            gw_metrics_local_error(us->g->metrics, "upstream", err);
        defer_fail(u, gw_errno_is_local(err) ? FK_LOCAL : FK_CONNECT, err_text(err));
        return 0;
    }
    tune_socket(fd);
    gw_metrics_pod_connect(us->g->metrics);
    if (ev_add(us->l, fd, EPOLLOUT, up_io, u) < 0) {
        close(fd);
        defer_fail(u, FK_CONNECT, "out of memory");
        return 0;
    }
    u->fd = fd;
    if (!in_progress)
        up_connected(u);
    else
        arm(u, us->g->cfg.connect_timeout_ms);
    return 0;
}

int up_start(struct upstream *us, const struct pod_target *pod, int fresh_only,
             const struct up_request *rq, const struct up_events *ev, void *owner,
             struct upconn **out)
{
    if (pod->slot >= POD_MAX)
        return -EINVAL;
    struct upconn *u = fresh_only ? NULL : pool_take(us, pod);
    if (u) {
        u->reused = 1;
    } else {
        u = conn_new(us, pod->slot, &pod->addr, pod->addrlen);
        if (!u)
            return -ENOMEM;
    }
    u->ev = ev;
    u->owner = owner;
    u->rq = *rq;
    u->sent = 0;
    u->req_sent = u->wr_failed = u->got_byte = u->head_done = 0;
    u->paused = 0;
    u->framing = UF_NONE;
    *out = u;
    if (!u->reused)
        return connect_new(u);
    /* an idle keep-alive connection is writable: write now, and wait for
     * EPOLLOUT only for what the socket did not take (no event from in
     * here: `sent` is told from the loop) */
    u->state = UP_ACTIVE;
    arm(u, us->g->cfg.first_byte_timeout_ms);
    up_write(u, 0);
    set_events(u);
    return 0;
}
