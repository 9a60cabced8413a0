/* worker: kvgated's worker threads, listeners and client connections
 * (accept, read, write, timers, teardown). See worker.h and dataplane.h.
 *
 * Each worker is one thread running one ev_loop with its own SO_REUSEPORT
 * listener, so the kernel spreads connections across workers and nothing
 * on the data path is shared between workers except struct gw (routing,
 * metrics; thread-safe) and the connection count. A client connection
 * starts in CP_DETECT: the 24-byte HTTP/2 preface selects h2c by prior
 * knowledge, anything else is HTTP/1.1 (client_h1.c), which may upgrade to
 * h2c (client_h2.c). Accepting is common/listener.c; a client socket's
 * reads, flushing and lingering close are common/netconn.c, with the
 * callbacks below. */
#include "gateway/worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/dlist.h"
#include "common/ev.h"
#include "common/netaddr.h"
#include "common/httpstatus.h"
#include "gateway/dataplane.h"
#include "gateway/gwmetrics.h"
#include "gateway/splice.h"

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
        h2srv_free(&c->h2);
        netconn_free(&c->nc);
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

/* ---- client connections: timers, teardown, output ---- */

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
    if (kind == CT_NONE || c->nc.dead)
        return;
    const struct gw_config *cfg = &c->w->g->cfg;
    uint64_t ms = kind == CT_REQ ? cfg->header_timeout_ms : cfg->idle_timeout_ms;
    if (!ms)
        return;
    c->timer = ev_timer_at(c->w->l, ev_now_ns() + ms * 1000000ull, timer_cb, c);
    c->timer_kind = c->timer ? kind : CT_NONE;
}

static void conn_input(struct netconn *nc);

static void kick_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    c->kick_timer = 0;
    if (!c->nc.dead && !c->nc.closing) {
        conn_input(&c->nc);
        netconn_update_events(&c->nc);
    }
}

void cconn_kick(struct cconn *c)
{
    if (!c->nc.dead && !c->kick_timer)
        c->kick_timer = ev_timer_at(c->w->l, ev_now_ns(), kick_cb, c);
}

/* A client whose socket took none of its output for send_timeout_ms is
 * dropped with whatever it has in flight (the pods' requests aborted): it
 * would otherwise hold its streams, their pod slots and our buffers. */
static void send_timer_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    c->send_timer = 0;
    if (c->nc.dead || !netconn_pending(&c->nc))
        return;
    uint64_t limit = (uint64_t)c->w->g->cfg.send_timeout_ms * 1000000ull;
    uint64_t now = ev_now_ns();
    if (now - c->nc.out_progress_ns < limit) {
        c->send_timer = ev_timer_at(l, c->nc.out_progress_ns + limit, send_timer_cb, c);
        return;
    }
    gw_metrics_limit(c->w->g->metrics, "send_timeout");
    if (c->cur && !c->cur->r.error)
        c->cur->r.error = "send_timeout";
    for (struct xreq *x = c->streams; x; x = x->next)
        if (!x->r.error)
            x->r.error = "send_timeout";
    cconn_fail(c);
}

static void watch_send(struct cconn *c)
{
    uint32_t ms = c->w->g->cfg.send_timeout_ms;
    if (!c->send_timer && ms && netconn_pending(&c->nc))
        c->send_timer = ev_timer_at(c->w->l, c->nc.out_progress_ns + ms * 1000000ull,
                                    send_timer_cb, c);
}

void cconn_fail(struct cconn *c)
{
    if (c->nc.dead)
        return;
    struct worker *w = c->w;
    netconn_close(&c->nc);
    ev_timer_cancel(w->l, c->timer);
    ev_timer_cancel(w->l, c->kick_timer);
    ev_timer_cancel(w->l, c->send_timer);
    c->timer = c->kick_timer = c->send_timer = 0;
    DLIST_REMOVE(w->conns, c, prev, next);
    atomic_fetch_sub(&w->g->conns, 1);
    splice_conn_gone(c); /* its pod connection and map entries, if spliced */
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

/* Writes as much as the socket takes (netconn_flush: closes a finished or
 * closing connection), then lets a paused upstream resume. */
void cconn_flush(struct cconn *c)
{
    if (c->nc.dead || c->h2.in_ng)
        return; /* inside nghttp2: the mem_recv caller flushes afterwards */
    int was_shut = c->nc.shut;
    netconn_flush(&c->nc);
    if (c->nc.dead)
        return;
    if (c->nc.shut && !was_shut)
        cconn_set_timer(c, CT_NONE); /* lingering: the linger timer ends it */
    /* HTTP/1.1: the response being streamed may resume its upstream. */
    if (c->proto == CP_H1 && c->cur && c->cur->up_paused)
        x_client_drained(c->cur);
    netconn_update_events(&c->nc); /* EPOLLOUT while output is left */
    watch_send(c);
    if (c->sp)
        splice_client_idle(c); /* the answer is out: splice a held session flow */
}

/* ---- client input (netconn callbacks) ---- */

static void conn_input(struct netconn *nc)
{
    struct cconn *c = cconn_of(nc);
    if (c->proto == CP_DETECT) {
        int k = h2srv_sniff(c->nc.in.data, c->nc.in.len);
        if (k == H2SRV_MORE)
            return; /* a prefix of the preface: wait */
        if (k == H2SRV_NOT_H2) {
            c->proto = CP_H1;
        } else if (h2_start(c, NULL, NULL, 0) < 0) {
            cconn_fail(c);
            return;
        }
    }
    if (c->proto == CP_H1)
        h1_process(c);
    else
        h2_process(c);
}

static void conn_fail_cb(struct netconn *nc)
{
    cconn_fail(cconn_of(nc));
}

/* HTTP/1.1: one request in service, pipelined bytes wait */
static int h1_waiting(const struct netconn *nc)
{
    const struct cconn *c = cconn_of((struct netconn *)nc);
    return c->proto == CP_H1 && c->h1st == H1_WAIT;
}

static const struct netconn_ops cconn_ops = { conn_input, conn_fail_cb, h1_waiting,
                                              h1_body_direct, h1_body_direct_got };

static void conn_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct cconn *c = arg;
    if (c->sp && splice_client_io(c, ev))
        return; /* spliced: the kernel moves its bytes, splice.c watches it */
    if (ev & EPOLLOUT)
        cconn_flush(c);
    netconn_read(&c->nc, ev);
    netconn_update_events(&c->nc);
}

/* ---- accept ---- */

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
    gw_metrics_limit(w->g->metrics, "max_connections");
}

static void on_accept(struct listener *ls, int fd,
                      const struct sockaddr_storage *sa, socklen_t salen)
{
    struct worker *w = ls->arg;
    struct gw *g = w->g;
    unsigned prev = atomic_fetch_add(&g->conns, 1);
    if (g->cfg.max_connections && prev >= g->cfg.max_connections) {
        atomic_fetch_sub(&g->conns, 1);
        refuse_conn(w, fd);
        return;
    }
    struct cconn *c = calloc(1, sizeof(*c));
    if (!c) {
        atomic_fetch_sub(&g->conns, 1);
        close(fd);
        return;
    }
    c->w = w;
    netconn_init(&c->nc, w->l, fd, &cconn_ops);
    netaddr_text(sa, c->peer, sizeof(c->peer), 0);
    if (ev_add(w->l, fd, EPOLLIN | EPOLLRDHUP, conn_io, c) < 0) {
        atomic_fetch_sub(&g->conns, 1);
        close(fd);
        free(c);
        return;
    }
    DLIST_PUSH(w->conns, c, prev, next);
    c->t_first = ev_now_ns();
    cconn_set_timer(c, CT_REQ); /* slowloris: the first request's deadline */
}

/* ---- graceful drain ---- */

#define DRAIN_TICK_NS 50000000ull /* how often a draining worker looks again */

/* At the deadline: every request still under way ends now, its client told
 * why (an SSE error event and [DONE] where its answer already began). */
static void drain_cut(struct worker *w)
{
    for (struct cconn *c = w->conns, *next; c; c = next) {
        next = c->next;
        if (c->cur && !c->cur->done) {
            struct xreq *x = c->cur;
            x->keep_alive = 0;
            if (x->resp_started)
                x_end_with_error(x, "shutdown", 503, "the gateway is shutting down");
            else
                x_local(x, 503, "the gateway is shutting down",
                        "shutdown");
        }
        for (struct xreq *x = c->streams; x && !c->nc.dead; x = x->next) {
            if (x->done)
                continue;
            if (x->resp_started)
                x_end_with_error(x, "shutdown", 503, "the gateway is shutting down");
            else
                x_local(x, 503, "the gateway is shutting down",
                        "shutdown");
        }
        if (!c->nc.dead) {
            c->nc.closing = 1;
            cconn_flush(c);
        }
    }
}

/* At the drain's start: a connection with nothing under way closes now;
 * the others close after what they carry: h2 by GOAWAY (new streams are
 * refused; the session ends once its streams are done), h1 by
 * `connection: close` on its answer (h1_resp_head). */
static void drain_conn(struct cconn *c)
{
    if (c->nc.dead || c->nc.closing)
        return;
    if (c->sp) {
        splice_drain(c); /* the spliced answer under way finishes, then it ends */
        return;
    }
    if (c->proto == CP_H2) {
        nghttp2_submit_goaway(c->h2.ng, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(c->h2.ng),
                              NGHTTP2_NO_ERROR, NULL, 0);
        cconn_flush(c);
        return;
    }
    if (c->cur) {
        if (!c->cur->resp_started)
            c->cur->keep_alive = 0; /* its head will say close */
    } else if (!c->nc.in.len) { /* between requests (or none yet) */
        c->nc.closing = 1;
        cconn_flush(c);
    }
}

static void drain_tick(struct ev_loop *l, void *arg)
{
    struct worker *w = arg;
    w->drain_timer = 0;
    if (w->conns && ev_now_ns() >= w->drain_deadline_ns) {
        drain_cut(w);
        w->drain_deadline_ns = UINT64_MAX; /* once */
    }
    if (!w->conns) {
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
    if (w->draining)
        return;
    w->draining = 1;
    ev_del(l, fd);
    listener_stop(&w->ls); /* new connections go to the replicas behind the LB */
    w->drain_deadline_ns = ev_now_ns() + (uint64_t)w->g->cfg.drain_timeout_ms * 1000000ull;
    for (struct cconn *c = w->conns, *next; c; c = next) {
        next = c->next;
        drain_conn(c);
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

/* ---- listeners, threads ---- */

static void worker_teardown(struct worker *w)
{
    w->stopping = 1;
    listener_stop(&w->ls);
    while (w->conns)
        cconn_fail(w->conns);
    up_pool_close_all(w);
    ev_timer_cancel(w->l, w->reap_timer);
    ev_timer_cancel(w->l, w->drain_timer);
    w->reap_timer = w->drain_timer = 0;
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
        listener_stop(&w->ls); /* only when its thread never ran */
        if (w->drain_efd > 0)
            close(w->drain_efd);
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
    struct sockaddr_storage sa;
    socklen_t salen;
    char err[256];
    if (netaddr_listen_addr(g->cfg.listen, &sa, &salen, err, sizeof(err)) < 0) {
        fprintf(stderr, "kvgated: listen: %s\n", err);
        return -EINVAL;
    }

    g_workers = calloc(n, sizeof(*g_workers));
    if (!g_workers)
        return -ENOMEM;
    g_nworkers = n;
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
        w->drain_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->drain_efd < 0 || ev_add(w->l, w->drain_efd, EPOLLIN, drain_start, w) < 0) {
            rc = -errno;
            break;
        }
        int fd = listener_socket((struct sockaddr *)&sa, salen, 4096,
                                 LISTENER_REUSEPORT);
        if (fd < 0) {
            rc = fd;
            fprintf(stderr, "kvgated: listen: cannot listen on %s: %s\n",
                    g->cfg.listen, strerror(-rc));
            break;
        }
        if (i == 0) {
            /* Port 0: every worker must share the port the kernel chose. */
            socklen_t l = sizeof(sa);
            getsockname(fd, (struct sockaddr *)&sa, &l);
            salen = l;
        }
        rc = listener_start(&w->ls, w->l, fd, on_accept, w);
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
