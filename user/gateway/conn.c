/* conn: a client connection's plumbing. See conn.h. */
#include "gateway/conn.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/dlist.h"
#include "common/ev.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"

/* ---- deadlines ---- */

static void timer_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    int kind = c->timer_kind;
    c->timer = 0;
    c->timer_kind = CT_NONE;
    gw_metrics_limit(c->wc->g->metrics, kind == CT_IDLE ? "idle_timeout" : "header_timeout");
    c->ops->timeout(c, kind);
}

void cconn_set_timer(struct cconn *c, int kind)
{
    if (c->timer_kind == kind && c->timer)
        return;
    ev_timer_cancel(c->wc->l, c->timer);
    c->timer = 0;
    c->timer_kind = CT_NONE;
    if (kind == CT_NONE || c->nc.dead)
        return;
    const struct gw_config *cfg = &c->wc->g->cfg;
    uint64_t ms = kind == CT_REQ ? cfg->header_timeout_ms : cfg->idle_timeout_ms;
    if (!ms)
        return;
    c->timer = ev_timer_at(c->wc->l, ev_now_ns() + ms * 1000000ull, timer_cb, c);
    c->timer_kind = c->timer ? kind : CT_NONE;
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
    uint64_t limit = (uint64_t)c->wc->g->cfg.send_timeout_ms * 1000000ull;
    if (ev_now_ns() - c->nc.out_progress_ns < limit) {
        c->send_timer = ev_timer_at(l, c->nc.out_progress_ns + limit, send_timer_cb, c);
        return;
    }
    gw_metrics_limit(c->wc->g->metrics, "send_timeout");
    c->fail_cause = "send_timeout";
    cconn_fail(c);
}

static void watch_send(struct cconn *c)
{
    uint32_t ms = c->wc->g->cfg.send_timeout_ms;
    if (!c->send_timer && ms && netconn_pending(&c->nc))
        c->send_timer = ev_timer_at(c->wc->l, c->nc.out_progress_ns + ms * 1000000ull,
                                    send_timer_cb, c);
}

/* ---- input ---- */

static void kick_cb(struct ev_loop *l, void *arg)
{
    struct cconn *c = arg;
    c->kick_timer = 0;
    if (!c->nc.dead && !c->nc.closing) {
        c->ops->input(c);
        netconn_update_events(&c->nc);
    }
}

void cconn_kick(struct cconn *c)
{
    if (!c->nc.dead && !c->kick_timer)
        c->kick_timer = ev_timer_at(c->wc->l, ev_now_ns(), kick_cb, c);
}

static void nc_input(struct netconn *nc)
{
    struct cconn *c = cconn_of(nc);
    c->ops->input(c);
}

static void nc_fail(struct netconn *nc)
{
    cconn_fail(cconn_of(nc));
}

static int nc_holding(const struct netconn *nc)
{
    const struct cconn *c = cconn_of((struct netconn *)nc);
    return c->ops->holding && c->ops->holding(c);
}

static char *nc_direct(struct netconn *nc, size_t *room)
{
    struct cconn *c = cconn_of(nc);
    return c->ops->direct ? c->ops->direct(c, room) : NULL;
}

static void nc_direct_got(struct netconn *nc, size_t n)
{
    struct cconn *c = cconn_of(nc);
    c->ops->direct_got(c, n);
}

const struct netconn_ops cconn_netconn_ops = { nc_input, nc_fail, nc_holding, nc_direct,
                                               nc_direct_got };

void cconn_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct cconn *c = arg;
    if (c->ops->io && c->ops->io(c, ev))
        return; /* a layer moves this socket's bytes itself */
    if (ev & EPOLLOUT)
        cconn_flush(c);
    netconn_read(&c->nc, ev);
    netconn_update_events(&c->nc);
}

/* ---- life ---- */

static void destroy(struct grave *g)
{
    struct cconn *c = GRAVE_OWNER(g, struct cconn, grave);
    netconn_free(&c->nc);
    kv_free(c);
}

struct cconn *cconn_new(struct wctx *wc, int fd, const char *peer,
                        const struct cconn_ops *ops)
{
    struct cconn *c = kv_calloc(1, sizeof(*c));
    if (!c || ev_add(wc->l, fd, EPOLLIN | EPOLLRDHUP, cconn_io, c) < 0) {
        atomic_fetch_sub(&wc->g->conns, 1);
        close(fd);
        kv_free(c);
        return NULL;
    }
    c->wc = wc;
    c->xc.wc = wc;
    snprintf(c->xc.peer, sizeof(c->xc.peer), "%s", peer);
    c->ops = ops;
    netconn_init(&c->nc, wc->l, fd, &cconn_netconn_ops);
    DLIST_PUSH(wc->conns, c, prev, next);
    c->t_first = ev_now_ns();
    cconn_set_timer(c, CT_REQ); /* slowloris: the first request's deadline */
    return c;
}

void cconn_abort_x(struct cconn *c, struct xreq *x)
{
    if (c->fail_cause && !x->r.error)
        x->r.error = c->fail_cause;
    x_abort_client(x);
    x_kill(x);
}

void cconn_fail(struct cconn *c)
{
    if (c->nc.dead)
        return;
    struct wctx *wc = c->wc;
    netconn_close(&c->nc);
    ev_timer_cancel(wc->l, c->timer);
    ev_timer_cancel(wc->l, c->kick_timer);
    ev_timer_cancel(wc->l, c->send_timer);
    c->timer = c->kick_timer = c->send_timer = 0;
    DLIST_REMOVE(wc->conns, c, prev, next);
    atomic_fetch_sub(&wc->g->conns, 1);
    /* a layer first (the splice's pod socket and map entries), then the
     * protocol's exchanges and state */
    if (c->under) {
        c->ops->gone(c);
        c->ops = c->under;
        c->under = NULL;
    }
    c->ops->gone(c);
    gy_bury(&wc->gy, &c->grave, destroy);
}

/* Writes as much as the socket takes (netconn_flush: closes a finished or
 * closing connection), then tells the protocol (an answer's pod may
 * resume) and the layer. */
void cconn_flush(struct cconn *c)
{
    if (c->nc.dead)
        return;
    int was_shut = c->nc.shut;
    netconn_flush(&c->nc);
    if (c->nc.dead)
        return;
    if (c->nc.shut && !was_shut)
        cconn_set_timer(c, CT_NONE); /* lingering: the linger timer ends it */
    if (c->ops->flushed)
        c->ops->flushed(c);
    if (c->nc.dead)
        return;
    netconn_update_events(&c->nc); /* EPOLLOUT while output is left */
    watch_send(c);
}

/* ---- who reads it ---- */

void cconn_set_ops(struct cconn *c, const struct cconn_ops *ops, void *proto)
{
    if (c->under)
        c->under = ops; /* a layer stays in front */
    else
        c->ops = ops;
    c->proto = proto;
}

void cconn_push_ops(struct cconn *c, const struct cconn_ops *ops, void *layer)
{
    if (c->under)
        return; /* one layer at a time */
    c->under = c->ops;
    c->ops = ops;
    c->layer = layer;
}

void cconn_pop_ops(struct cconn *c)
{
    if (!c->under)
        return;
    c->ops = c->under;
    c->under = NULL;
    c->layer = NULL;
}
