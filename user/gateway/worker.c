/* worker: kvgated's worker threads, listeners and client connections
 * (accept, read, write, timers, teardown). See worker.h and dataplane.h.
 *
 * Each worker is one thread running one ev_loop with its own SO_REUSEPORT
 * listener, so the kernel spreads connections across workers and nothing
 * on the data path is shared between workers except struct gw (routing,
 * metrics; thread-safe) and the connection count. A client connection
 * starts in CP_DETECT: the 24-byte HTTP/2 preface selects h2c by prior
 * knowledge, anything else is HTTP/1.1 (client_h1.c), which may upgrade to
 * h2c (client_h2.c). */
#include "gateway/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "gateway/dataplane.h"
#include "gateway/gwmetrics.h"

#define ACCEPT_RETRY_NS 100000000ull
#define OUT_HARD (64u << 20) /* a client this far behind is dropped */

static const char H2_PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN 24

static struct worker *g_workers;
static uint32_t g_nworkers;

/* ---- graveyard ---- */

static void reap_now(struct worker *w)
{
    /* Connections first: their nghttp2 sessions still name stream xreqs as
     * user data (nghttp2_session_del calls no callbacks). */
    while (w->dead_conns) {
        struct cconn *c = w->dead_conns;
        w->dead_conns = c->gnext;
        if (c->ng)
            nghttp2_session_del(c->ng);
        sbuf_free(&c->in);
        sbuf_free(&c->out);
        sbuf_free(&c->h2c_settings);
        free(c);
    }
    while (w->dead_xs) {
        struct xreq *x = w->dead_xs;
        w->dead_xs = x->gnext;
        x_free(x);
    }
    while (w->dead_ups) {
        struct upconn *u = w->dead_ups;
        w->dead_ups = u->gnext;
        up_free(u);
    }
}

static void reap_cb(struct ev_loop *l, void *arg)
{
    struct worker *w = arg;
    w->reap_timer = 0;
    reap_now(w);
}

void w_reap_later(struct worker *w)
{
    if (!w->reap_timer && !w->stopping)
        w->reap_timer = ev_timer_at(w->l, ev_now_ns(), reap_cb, w);
}

/* ---- client connections: output, timers, teardown ---- */

size_t cconn_pending(const struct cconn *c)
{
    return c->out.len - c->out_off;
}

void cconn_update_events(struct cconn *c)
{
    if (c->dead)
        return;
    uint32_t m;
    if (c->rd_eof)
        m = 0;
    else if (c->proto == CP_H1 && c->h1st == H1_WAIT && !c->closing &&
             c->in.len >= DP_IN_PAUSE)
        m = EPOLLRDHUP; /* paused, but still notice the client leaving */
    else
        m = EPOLLIN | EPOLLRDHUP;
    if (cconn_pending(c))
        m |= EPOLLOUT;
    ev_mod(c->w->l, c->fd, m);
}

static void timer_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    int kind = c->timer_kind;
    c->timer = 0;
    c->timer_kind = CT_NONE;
    struct gw *g = c->w->g;
    if (kind == CT_IDLE) {
        gw_metrics_limit(g->metrics, "idle_timeout");
        if (c->proto == CP_H2)
            h2_idle_timeout(c);
        else
            cconn_fail(c);
        return;
    }
    gw_metrics_limit(g->metrics, "header_timeout");
    if (c->proto == CP_H1)
        h1_timeout(c);
    else
        cconn_fail(c); /* no complete preface in time */
}

void cconn_set_timer(struct cconn *c, int kind)
{
    if (c->timer_kind == kind && c->timer)
        return;
    ev_timer_cancel(c->w->l, c->timer);
    c->timer = 0;
    c->timer_kind = CT_NONE;
    if (kind == CT_NONE || c->dead)
        return;
    const struct gw_config *cfg = &c->w->g->cfg;
    uint64_t ms = kind == CT_REQ ? cfg->header_timeout_ms : cfg->idle_timeout_ms;
    if (!ms)
        return;
    c->timer = ev_timer_at(c->w->l, ev_now_ns() + ms * 1000000ull, timer_cb, c);
    c->timer_kind = c->timer ? kind : CT_NONE;
}

static void linger_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    c->linger_timer = 0;
    cconn_fail(c);
}

static void process_input(struct cconn *c);

static void kick_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    c->kick_timer = 0;
    if (!c->dead && !c->closing) {
        process_input(c);
        if (!c->dead)
            cconn_update_events(c);
    }
}

void cconn_kick(struct cconn *c)
{
    if (!c->dead && !c->kick_timer)
        c->kick_timer = ev_timer_at(c->w->l, ev_now_ns(), kick_cb, c);
}

void cconn_fail(struct cconn *c)
{
    if (c->dead)
        return;
    struct worker *w = c->w;
    c->dead = 1;
    ev_del(w->l, c->fd);
    close(c->fd);
    c->fd = -1;
    ev_timer_cancel(w->l, c->timer);
    ev_timer_cancel(w->l, c->linger_timer);
    ev_timer_cancel(w->l, c->kick_timer);
    c->timer = c->linger_timer = c->kick_timer = 0;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    atomic_fetch_sub(&w->g->conns, 1);
    if (c->cur) {
        struct xreq *x = c->cur;
        x_abort_client(x);
        x_kill(x);
    }
    while (c->streams) {
        struct xreq *x = c->streams;
        x_abort_client(x);
        x_kill(x); /* unlinks it from c->streams */
    }
    c->gnext = w->dead_conns;
    w->dead_conns = c;
    w_reap_later(w);
}

/* Writes as much as the socket takes; finishes a closing connection. */
static void flush_inner(struct cconn *c)
{
    for (;;) {
        if (c->ng && h2_pump(c) < 0) {
            cconn_fail(c);
            return;
        }
        if (c->dead)
            return;
        size_t pending = cconn_pending(c);
        if (pending == 0)
            break;
        ssize_t n = send(c->fd, c->out.data + c->out_off, pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            cconn_fail(c); /* EPIPE, ECONNRESET, ... */
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
    size_t pending = cconn_pending(c);
    if (pending > OUT_HARD || c->out.oom) {
        cconn_fail(c);
        return;
    }
    /* HTTP/1.1: the response being streamed may resume its upstream. */
    if (c->proto == CP_H1 && c->cur && c->cur->up_paused)
        x_client_drained(c->cur);
    if (c->dead || pending)
        return;
    if (c->ng && !nghttp2_session_want_read(c->ng) &&
        !nghttp2_session_want_write(c->ng)) {
        cconn_fail(c); /* GOAWAY exchanged, nothing left */
        return;
    }
    if (c->closing && !c->shut) {
        if (c->rd_eof) {
            cconn_fail(c);
            return;
        }
        /* Lingering close: FIN now, drain input for a while so a client
         * still sending does not get an RST that eats our reply. */
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
        cconn_set_timer(c, CT_NONE);
        c->linger_timer = ev_timer_at(c->w->l, ev_now_ns() + DP_LINGER_NS,
                                      linger_cb, c);
    }
}

void cconn_flush(struct cconn *c)
{
    if (c->dead || c->in_ng)
        return; /* inside nghttp2: the mem_recv caller flushes afterwards */
    flush_inner(c);
    if (!c->dead) /* EPOLLOUT while output is left, from any caller */
        cconn_update_events(c);
}

/* ---- client input ---- */

static void process_input(struct cconn *c)
{
    if (c->proto == CP_DETECT) {
        size_t n = c->in.len < H2_PREFACE_LEN ? c->in.len : H2_PREFACE_LEN;
        if (memcmp(c->in.data ? c->in.data : "", H2_PREFACE, n) != 0) {
            c->proto = CP_H1;
        } else if (c->in.len >= H2_PREFACE_LEN) {
            if (h2_start(c, NULL, NULL, 0) < 0) {
                cconn_fail(c);
                return;
            }
        } else {
            return; /* a prefix of the preface: wait */
        }
    }
    if (c->proto == CP_H1)
        h1_process(c);
    else
        h2_process(c);
}

static void conn_read(struct cconn *c, uint32_t ev)
{
    if (!(ev & EPOLLIN)) {
        cconn_fail(c); /* HUP/ERR/RDHUP while reading is paused */
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
        if (c->proto == CP_H1 && c->h1st == H1_WAIT && c->in.len >= DP_IN_PAUSE)
            break;
        if (sbuf_reserve(&c->in, DP_READ_CHUNK)) {
            cconn_fail(c);
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
    if (got && !c->closing)
        process_input(c);
    if (!eof || c->dead)
        return;
    if (c->closing && cconn_pending(c))
        c->rd_eof = 1; /* finish sending the reply, then close */
    else
        cconn_fail(c); /* aborts the requests in flight */
}

static void conn_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct cconn *c = arg;
    if (ev & EPOLLOUT)
        cconn_flush(c);
    if (!c->dead && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        conn_read(c, ev);
    if (!c->dead)
        cconn_update_events(c);
}

/* ---- accept ---- */

static void accept_resume(struct ev_loop *l, void *arg)
{
    struct worker *w = arg;
    w->accept_timer = 0;
    if (w->lfd >= 0)
        ev_mod(l, w->lfd, EPOLLIN);
}

/* Over max_connections: answer 503 without keeping any state. */
static void refuse_conn(struct worker *w, int fd)
{
    struct sbuf b;
    sbuf_init(&b);
    error_json(&b, 503, "ServiceUnavailableError", "too many connections");
    char head[256];
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 503 Service Unavailable\r\n"
                      "content-type: application/json\r\n"
                      "content-length: %zu\r\nconnection: close\r\n\r\n",
                      b.len);
    struct iovec iov[2] = { { head, (size_t)hl }, { b.data, b.len } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = b.data ? 2 : 1 };
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n; /* best effort */
    sbuf_free(&b);
    shutdown(fd, SHUT_WR);
    close(fd);
    gw_metrics_limit(w->g->metrics, "max_connections");
}

static void accept_cb(struct ev_loop *l, int lfd, uint32_t ev, void *arg)
{
    struct worker *w = arg;
    struct gw *g = w->g;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(lfd, (struct sockaddr *)&sa, &salen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of fds: stop polling the listener for a moment
                 * instead of spinning on a level-triggered event. */
                ev_mod(l, lfd, 0);
                if (!w->accept_timer)
                    w->accept_timer = ev_timer_at(l, ev_now_ns() + ACCEPT_RETRY_NS,
                                                  accept_resume, w);
            }
            return;
        }
        unsigned prev = atomic_fetch_add(&g->conns, 1);
        if (g->cfg.max_connections && prev >= g->cfg.max_connections) {
            atomic_fetch_sub(&g->conns, 1);
            refuse_conn(w, fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct cconn *c = calloc(1, sizeof(*c));
        if (!c) {
            atomic_fetch_sub(&g->conns, 1);
            close(fd);
            continue;
        }
        c->w = w;
        c->fd = fd;
        sbuf_init(&c->in);
        sbuf_init(&c->out);
        addr_to_text(&sa, c->peer, sizeof(c->peer), 0);
        if (ev_add(l, fd, EPOLLIN | EPOLLRDHUP, conn_io, c) < 0) {
            atomic_fetch_sub(&g->conns, 1);
            close(fd);
            free(c);
            continue;
        }
        c->next = w->conns;
        if (w->conns)
            w->conns->prev = c;
        w->conns = c;
        c->t_first = ev_now_ns();
        cconn_set_timer(c, CT_REQ); /* slowloris: the first request's deadline */
    }
}

/* ---- listeners, threads ---- */

/* "host:port", "[v6]:port", ":port" -> host (empty = any) and port. */
static int split_listen(const char *s, char *host, size_t hlen, char *port,
                        size_t plen)
{
    const char *colon;
    if (s[0] == '[') {
        const char *rb = strchr(s, ']');
        if (!rb || rb[1] != ':')
            return -EINVAL;
        if ((size_t)(rb - s - 1) >= hlen)
            return -EINVAL;
        memcpy(host, s + 1, (size_t)(rb - s - 1));
        host[rb - s - 1] = '\0';
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= hlen)
            return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
    }
    if (!colon[1] || strlen(colon + 1) >= plen)
        return -EINVAL;
    long v = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (*p - '0');
        if (v > 65535)
            return -EINVAL;
    }
    strcpy(port, colon + 1);
    return 0;
}

static int open_listener(const struct sockaddr *sa, socklen_t salen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
        bind(fd, sa, salen) < 0 || listen(fd, 4096) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static void worker_teardown(struct worker *w)
{
    w->stopping = 1;
    if (w->lfd >= 0) {
        ev_del(w->l, w->lfd);
        close(w->lfd);
        w->lfd = -1;
    }
    ev_timer_cancel(w->l, w->accept_timer);
    w->accept_timer = 0;
    while (w->conns)
        cconn_fail(w->conns);
    up_pool_close_all(w);
    ev_timer_cancel(w->l, w->reap_timer);
    w->reap_timer = 0;
    reap_now(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "kvgate-w%u", w->id);
    pthread_setname_np(pthread_self(), name);
    ev_run(w->l);
    worker_teardown(w);
    return NULL;
}

static void free_workers(void)
{
    for (uint32_t i = 0; i < g_nworkers; i++) {
        struct worker *w = &g_workers[i];
        if (w->lfd >= 0)
            close(w->lfd);
        if (w->l)
            ev_free(w->l);
    }
    free(g_workers);
    g_workers = NULL;
    g_nworkers = 0;
}

int workers_start(struct gw *g, uint32_t n)
{
    if (g_workers)
        return -EBUSY;
    if (n == 0)
        n = 1;
    char host[128], port[16];
    if (split_listen(g->cfg.listen, host, sizeof(host), port, sizeof(port)) < 0) {
        fprintf(stderr, "kvgated: listen: expected \"host:port\" or \"[v6addr]:port\", got \"%s\"\n",
                g->cfg.listen);
        return -EINVAL;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] && strcmp(host, "*") ? host : NULL, port, &hints, &ai);
    if (gai || !ai) {
        fprintf(stderr, "kvgated: listen: cannot resolve \"%s\": %s\n", g->cfg.listen,
                gai ? gai_strerror(gai) : "no address");
        if (ai)
            freeaddrinfo(ai);
        return -EINVAL;
    }
    struct sockaddr_storage sa;
    socklen_t salen = ai->ai_addrlen <= sizeof(sa) ? ai->ai_addrlen : sizeof(sa);
    memcpy(&sa, ai->ai_addr, salen);
    freeaddrinfo(ai);

    g_workers = calloc(n, sizeof(*g_workers));
    if (!g_workers)
        return -ENOMEM;
    g_nworkers = n;
    for (uint32_t i = 0; i < n; i++)
        g_workers[i].lfd = -1;
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        struct worker *w = &g_workers[i];
        w->g = g;
        w->id = i;
        w->l = ev_new();
        if (!w->l) {
            rc = -ENOMEM;
            break;
        }
        int fd = open_listener((struct sockaddr *)&sa, salen);
        if (fd < 0) {
            rc = fd;
            fprintf(stderr, "kvgated: listen: cannot listen on %s: %s\n",
                    g->cfg.listen, strerror(-rc));
            break;
        }
        w->lfd = fd;
        if (i == 0) {
            /* Port 0: every worker must share the port the kernel chose. */
            socklen_t l = sizeof(sa);
            getsockname(fd, (struct sockaddr *)&sa, &l);
            salen = l;
        }
        rc = ev_add(w->l, fd, EPOLLIN, accept_cb, w);
    }
    /* Workers take no process signals: SIGHUP / SIGTERM belong to the main
     * thread (the mask is inherited by the threads, then restored). */
    sigset_t all, old;
    sigfillset(&all);
    for (int sig = 0, i = 0; (sig = (int[]){ SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, 0 }[i]); i++)
        sigdelset(&all, sig); /* faults stay with the faulting thread */
    pthread_sigmask(SIG_BLOCK, &all, &old);
    for (uint32_t i = 0; i < n && !rc; i++) {
        struct worker *w = &g_workers[i];
        rc = -pthread_create(&w->th, NULL, worker_main, w);
        if (rc) {
            fprintf(stderr, "kvgated: listen: cannot start worker thread: %s\n",
                    strerror(-rc));
            break;
        }
        w->thread_started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        for (uint32_t i = 0; i < n; i++)
            if (g_workers[i].thread_started) {
                ev_stop(g_workers[i].l);
                pthread_join(g_workers[i].th, NULL);
            }
        free_workers();
    }
    return rc;
}

void workers_stop(void)
{
    if (!g_workers)
        return;
    for (uint32_t i = 0; i < g_nworkers; i++)
        if (g_workers[i].thread_started)
            ev_stop(g_workers[i].l); /* flag + eventfd wake-up */
    for (uint32_t i = 0; i < g_nworkers; i++)
        if (g_workers[i].thread_started)
            pthread_join(g_workers[i].th, NULL);
    free_workers();
}
