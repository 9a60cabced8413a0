/* worker: kvgated's worker threads: their listeners, accepting, choosing
 * each connection's protocol, the graceful drain, and teardown. See
 * worker.h.
 *
 * Each worker is one thread running one ev_loop with its own SO_REUSEPORT
 * listener, so the kernel spreads connections across workers and nothing
 * on the data path is shared between workers except struct gw (routing,
 * metrics; thread-safe) and the connection count. A connection starts
 * undecided: the 24-byte HTTP/2 preface selects h2c by prior knowledge
 * (client_h2.c), anything else is HTTP/1.1 (client_h1.c). From then on
 * the connection's plumbing (conn.c) calls its protocol through its ops
 * table; this file names the protocols only to start them. */
#include "gateway/worker.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/h2srv.h"
#include "common/httpstatus.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "gateway/client_h1.h"
#include "gateway/client_h2.h"
#include "gateway/conn.h"
#include "gateway/gwmetrics.h"
#include "gateway/upstream.h"
#include "gateway/wctx.h"

#define DRAIN_TICK_NS 50000000ull /* how often a draining worker looks again */
#define ADOPT_QUEUE 256           /* adopted connections waiting for one worker's loop */

struct worker {
    struct wctx wc;
    struct listener ls;         /* SO_REUSEPORT, cfg.listen */
    pthread_t th;
    int inited;                 /* worker_init ran (its descriptors and lock are set) */
    int thread_started;
    int drain_efd;              /* workers_drain wakes the loop */
    uint64_t drain_timer, drain_deadline_ns;
    atomic_int drained;         /* no connection left (read by main) */
    /* connections adopted from elsewhere (workers_adopt), handed over by
     * another thread: a ring under a lock, an eventfd to wake the loop */
    int adopt_efd;
    pthread_mutex_t adopt_mu;
    int adopt_fd[ADOPT_QUEUE];
    const char *adopt_path[ADOPT_QUEUE];
    uint32_t adopt_head, adopt_n;
};

static struct worker *g_workers;
static uint32_t g_nworkers;

/* ---- a new connection: which protocol ---- */

static void detect_input(struct cconn *c)
{
    int k = h2srv_sniff(c->nc.in.data, c->nc.in.len);
    if (k == H2SRV_MORE)
        return; /* a prefix of the preface: wait */
    if ((k == H2SRV_NOT_H2 ? h1_attach(c) : h2_attach(c)) < 0) {
        cconn_fail(c);
        return;
    }
    c->ops->input(c);
}

static void detect_timeout(struct cconn *c, int kind)
{
    cconn_fail(c); /* no request (or preface) in time */
}

static void detect_drain(struct cconn *c, int cut)
{
    if (!c->nc.in.len || cut) { /* nothing of a request yet */
        c->nc.closing = 1;
        cconn_flush(c);
    }
}

static void detect_gone(struct cconn *c)
{
}

static const struct cconn_ops detect_ops = {
    .input = detect_input, .timeout = detect_timeout, .drain = detect_drain,
    .gone = detect_gone,
};

/* Over max_connections: answer 503 without keeping any state. */
static void refuse_conn(struct worker *w, int fd)
{
    struct sbuf body, resp;
    sbuf_init(&body);
    sbuf_init(&resp);
    http_error_json(&body, 503, "too many connections");
    http1_closing_response(&resp, 503, "application/json", body.data, body.len);
    ssize_t n = send(fd, resp.data ? resp.data : "", resp.len,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n; /* best effort */
    sbuf_free(&body);
    sbuf_free(&resp);
    shutdown(fd, SHUT_WR);
    close(fd);
    gw_metrics_limit(w->wc.g->metrics, "max_connections");
}

static void on_accept(struct listener *ls, int fd,
                      const struct sockaddr_storage *sa, socklen_t salen)
{
    struct worker *w = ls->arg;
    struct gw *g = w->wc.g;
    unsigned prev = atomic_fetch_add(&g->conns, 1);
    if (g->cfg.max_connections && prev >= g->cfg.max_connections) {
        atomic_fetch_sub(&g->conns, 1);
        refuse_conn(w, fd);
        return;
    }
    char peer[64];
    netaddr_text(sa, peer, sizeof(peer), 0);
    cconn_new(&w->wc, fd, peer, &detect_ops); /* NULL: closed and uncounted */
}

/* ---- adopted connections (workers_adopt) ---- */

static void on_adopt(struct ev_loop *l, int efd, uint32_t events, void *arg)
{
    struct worker *w = arg;
    uint64_t v;
    ssize_t n = read(efd, &v, sizeof(v));
    (void)n;
    for (;;) {
        pthread_mutex_lock(&w->adopt_mu);
        if (!w->adopt_n) {
            pthread_mutex_unlock(&w->adopt_mu);
            return;
        }
        int fd = w->adopt_fd[w->adopt_head];
        const char *path = w->adopt_path[w->adopt_head];
        w->adopt_head = (w->adopt_head + 1) % ADOPT_QUEUE;
        w->adopt_n--;
        pthread_mutex_unlock(&w->adopt_mu);
        struct gw *g = w->wc.g;
        if (w->wc.draining || w->wc.stopping) { /* as a listener closed for the drain */
            close(fd);
            continue;
        }
        unsigned prev = atomic_fetch_add(&g->conns, 1);
        if (g->cfg.max_connections && prev >= g->cfg.max_connections) {
            atomic_fetch_sub(&g->conns, 1);
            refuse_conn(w, fd);
            continue;
        }
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        char peer[64] = "";
        if (!getpeername(fd, (struct sockaddr *)&sa, &sl))
            netaddr_text(&sa, peer, sizeof(peer), 0);
        struct cconn *c = cconn_new(&w->wc, fd, peer, &detect_ops);
        if (!c)
            continue; /* closed and uncounted */
        c->xc.path = path; /* the restored first flight: level-triggered epoll reports it */
    }
}

int workers_adopt(int fd, const char *path)
{
    static atomic_uint next;
    if (!g_nworkers) {
        close(fd);
        return -ESHUTDOWN;
    }
    struct worker *w = &g_workers[atomic_fetch_add(&next, 1) % g_nworkers];
    pthread_mutex_lock(&w->adopt_mu);
    int full = w->adopt_n == ADOPT_QUEUE;
    if (!full) {
        uint32_t i = (w->adopt_head + w->adopt_n) % ADOPT_QUEUE;
        w->adopt_fd[i] = fd;
        w->adopt_path[i] = path;
        w->adopt_n++;
    }
    pthread_mutex_unlock(&w->adopt_mu);
    if (full) {
        close(fd);
        return -EAGAIN;
    }
    uint64_t one = 1;
    ssize_t n = write(w->adopt_efd, &one, sizeof(one));
    (void)n;
    return 0;
}

/* ---- graceful drain ---- */

static void drain_tick(struct ev_loop *l, void *arg)
{
    struct worker *w = arg;
    w->drain_timer = 0;
    if (w->wc.conns && ev_now_ns() >= w->drain_deadline_ns) {
        /* the deadline: what is under way ends now, its client told why */
        for (struct cconn *c = w->wc.conns, *next; c; c = next) {
            next = c->next;
            c->ops->drain(c, 1);
        }
        w->drain_deadline_ns = UINT64_MAX; /* once */
    }
    if (!w->wc.conns) {
        atomic_store(&w->drained, 1);
        return;
    }
    w->drain_timer = ev_timer_at(l, ev_now_ns() + DRAIN_TICK_NS, drain_tick, w);
}

static void drain_start(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct worker *w = arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
    if (w->wc.draining)
        return;
    w->wc.draining = 1;
    ev_del(l, fd);
    listener_stop(&w->ls); /* new connections go to the replicas behind the LB */
    w->drain_deadline_ns = ev_now_ns() + (uint64_t)w->wc.g->cfg.drain_timeout_ms * 1000000ull;
    for (struct cconn *c = w->wc.conns, *next; c; c = next) {
        next = c->next;
        if (!c->nc.dead && !c->nc.closing)
            c->ops->drain(c, 0);
    }
    drain_tick(l, w);
}

void workers_drain(void)
{
    for (uint32_t i = 0; i < g_nworkers; i++) {
        uint64_t one = 1;
        ssize_t n = write(g_workers[i].drain_efd, &one, sizeof(one));
        (void)n;
    }
}

int workers_drained(void)
{
    for (uint32_t i = 0; i < g_nworkers; i++)
        if (g_workers[i].thread_started && !atomic_load(&g_workers[i].drained))
            return 0;
    return 1;
}

/* ---- one worker ---- */

/* The loop, its graveyard and pools. 0 or -ENOMEM. */
static int worker_init(struct worker *w, struct gw *g, uint32_t id)
{
    w->wc.g = g;
    w->wc.id = id;
    w->ls.fd = -1;
    w->drain_efd = -1;
    w->adopt_efd = -1;
    pthread_mutex_init(&w->adopt_mu, NULL);
    w->inited = 1;
    w->wc.l = ev_new();
    if (!w->wc.l)
        return -ENOMEM;
    gy_init(&w->wc.gy, w->wc.l);
    w->wc.ups = up_new(w->wc.l, g, &w->wc.gy);
    return w->wc.ups ? 0 : -ENOMEM;
}

/* As the loop ends: every connection failed, the pools closed, all freed. */
static void worker_teardown(struct worker *w)
{
    w->wc.stopping = 1;
    listener_stop(&w->ls);
    up_stop_pooling(w->wc.ups);
    while (w->wc.conns)
        cconn_fail(w->wc.conns);
    up_close_idle(w->wc.ups);
    ev_timer_cancel(w->wc.l, w->drain_timer);
    w->drain_timer = 0;
    gy_close(&w->wc.gy);
    pthread_mutex_lock(&w->adopt_mu); /* adopted, never served */
    for (; w->adopt_n; w->adopt_n--, w->adopt_head = (w->adopt_head + 1) % ADOPT_QUEUE)
        close(w->adopt_fd[w->adopt_head]);
    pthread_mutex_unlock(&w->adopt_mu);
}

static void worker_free(struct worker *w)
{
    if (!w->inited)
        return; /* workers_start stopped before it: all zero, fd 0 is not ours */
    listener_stop(&w->ls); /* only when its thread never ran */
    if (w->drain_efd >= 0)
        close(w->drain_efd);
    if (w->adopt_efd >= 0)
        close(w->adopt_efd);
    for (; w->adopt_n; w->adopt_n--, w->adopt_head = (w->adopt_head + 1) % ADOPT_QUEUE)
        close(w->adopt_fd[w->adopt_head]);
    pthread_mutex_destroy(&w->adopt_mu);
    up_free(w->wc.ups);
    if (w->wc.l)
        ev_free(w->wc.l);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    snprintf(name, sizeof(name), "kvgate-w%u", w->wc.id);
    pthread_setname_np(pthread_self(), name);
    ev_run(w->wc.l);
    worker_teardown(w);
    return NULL;
}

/* ---- all workers ---- */

static void free_workers(void)
{
    for (uint32_t i = 0; i < g_nworkers; i++)
        worker_free(&g_workers[i]);
    kv_free(g_workers);
    g_workers = NULL;
    g_nworkers = 0;
}

/* Worker i's loop, drain wake-up and listener on sa (the port the first
 * one got, when sa asks for port 0). 0 or -errno, said once. */
static int worker_listen(struct worker *w, struct gw *g, uint32_t i,
                         struct sockaddr_storage *sa, socklen_t *salen)
{
    int rc = worker_init(w, g, i);
    if (rc)
        return rc;
    w->drain_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->drain_efd < 0 || ev_add(w->wc.l, w->drain_efd, EPOLLIN, drain_start, w) < 0)
        return -errno;
    w->adopt_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->adopt_efd < 0 || ev_add(w->wc.l, w->adopt_efd, EPOLLIN, on_adopt, w) < 0)
        return -errno;
    int fd = listener_socket((struct sockaddr *)sa, *salen, 4096, LISTENER_REUSEPORT);
    if (fd < 0) {
        LOG_ERR("listen: cannot listen on %s: %s", g->cfg.listen, strerror(-fd));
        return fd;
    }
    if (i == 0) { /* port 0: every worker shares the port the kernel chose */
        socklen_t l = sizeof(*sa);
        getsockname(fd, (struct sockaddr *)sa, &l);
        *salen = l;
    }
    return listener_start(&w->ls, w->wc.l, fd, on_accept, w);
}

/* Starts the threads with every signal blocked (SIGHUP / SIGTERM belong
 * to the main thread; faults stay with the faulting thread). */
static int start_threads(uint32_t n)
{
    sigset_t all, old;
    sigfillset(&all);
    for (int sig = 0, i = 0; (sig = (int[]){ SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, 0 }[i]); i++)
        sigdelset(&all, sig);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++) {
        struct worker *w = &g_workers[i];
        rc = -pthread_create(&w->th, NULL, worker_main, w);
        if (rc)
            LOG_ERR("listen: cannot start worker thread: %s", strerror(-rc));
        else
            w->thread_started = 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int workers_start(struct gw *g, uint32_t n)
{
    if (g_workers)
        return -EBUSY;
    if (n == 0)
        n = 1;
    struct sockaddr_storage sa;
    socklen_t salen;
    char err[256];
    if (netaddr_listen_addr(g->cfg.listen, &sa, &salen, err, sizeof(err)) < 0) {
        LOG_ERR("listen: %s", err);
        return -EINVAL;
    }
    g_workers = kv_calloc(n, sizeof(*g_workers));
    if (!g_workers)
        return -ENOMEM;
    g_nworkers = n;
    int rc = 0;
    for (uint32_t i = 0; i < n && !rc; i++)
        rc = worker_listen(&g_workers[i], g, i, &sa, &salen);
    if (!rc)
        rc = start_threads(n);
    if (rc) {
        for (uint32_t i = 0; i < n; i++)
            if (g_workers[i].thread_started) {
                ev_stop(g_workers[i].wc.l);
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
            ev_stop(g_workers[i].wc.l); /* flag + eventfd wake-up */
    for (uint32_t i = 0; i < g_nworkers; i++)
        if (g_workers[i].thread_started)
            pthread_join(g_workers[i].th, NULL);
    free_workers();
}
