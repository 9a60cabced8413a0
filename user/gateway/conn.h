/* conn: a client connection (struct cconn) on a worker: its socket
 * (common/netconn.c), its deadlines, its output and teardown, and the
 * protocol that reads it, behind a table of operations (struct
 * cconn_ops) so that nothing here or in worker.c names a protocol.
 *
 * The protocol is chosen by worker.c from the first bytes (client_h1.c,
 * client_h2.c, which may replace themselves: an HTTP/1.1 Upgrade to h2c).
 * An optional layer (the kernel splice) may stand in front of the
 * protocol for a while (cconn_push_ops / cconn_pop_ops): it then sees the
 * socket's events first. */
#ifndef KVGATE_GATEWAY_CONN_H
#define KVGATE_GATEWAY_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "common/netconn.h"
#include "gateway/exchange.h"
#include "gateway/graveyard.h"
#include "gateway/wctx.h"

struct cconn;

enum { CT_NONE, CT_REQ, CT_IDLE }; /* cconn_set_timer */

struct cconn_ops {
    /* Bytes are in c->nc.in. */
    void (*input)(struct cconn *c);
    /* A deadline set with cconn_set_timer passed (CT_REQ: the request's
     * head and body did not arrive in time; CT_IDLE: nothing for
     * limits.idle_timeout_ms). */
    void (*timeout)(struct cconn *c, int kind);
    /* Optional: after output was flushed (an answer's pod may resume). */
    void (*flushed)(struct cconn *c);
    /* Graceful drain: at its start (cut 0), finish what is under way and
     * take nothing new; at its deadline (cut 1), end what is left now
     * (an SSE error event and [DONE], or a 503) and close. */
    void (*drain)(struct cconn *c, int cut);
    /* The connection is being torn down: abort its exchanges (they are
     * accounted as the client's), drop the protocol's state. */
    void (*gone)(struct cconn *c);
    /* Optional: the socket's events, before the usual handling; 1 when
     * they were taken care of (a layer that moves the bytes itself). */
    int (*io)(struct cconn *c, uint32_t events);
    /* Optional, netconn's: see common/netconn.h (holding, direct read). */
    int (*holding)(const struct cconn *c);
    char *(*direct)(struct cconn *c, size_t *room);
    void (*direct_got)(struct cconn *c, size_t n);
};

struct cconn {
    struct netconn nc;          /* fd, in/out, dead, closing, lingering */
    struct xconn xc;            /* what its exchanges share (wctx, peer, bodies) */
    struct wctx *wc;
    const struct cconn_ops *ops;
    void *proto;                /* the protocol's state */
    void *layer;                /* the layer's state, while one stands in front */
    const struct cconn_ops *under; /* the protocol's ops while a layer is in front */
    struct cconn *prev, *next;  /* wc->conns */
    struct grave grave;
    uint64_t timer;             /* CT_REQ / CT_IDLE */
    int timer_kind;
    uint64_t kick_timer;
    uint64_t send_timer;        /* output waiting: limits.send_timeout_ms */
    uint64_t t_first;           /* first byte of the request being read */
    const char *fail_cause;     /* why cconn_fail ended it, for its exchanges' log */
};

static inline struct cconn *cconn_of(struct netconn *nc)
{
    return (struct cconn *)((char *)nc - offsetof(struct cconn, nc));
}

/* The connection an exchange came on (every xconn is a cconn's). */
static inline struct cconn *cconn_of_x(const struct xreq *x)
{
    return (struct cconn *)((char *)x->xc - offsetof(struct cconn, xc));
}

extern const struct netconn_ops cconn_netconn_ops;

/* A connection on fd (accepted, counted in g->conns), with ops, in
 * wc->conns; NULL when out of memory (fd closed, the count undone). */
struct cconn *cconn_new(struct wctx *wc, int fd, const char *peer,
                        const struct cconn_ops *ops);
void cconn_flush(struct cconn *c);       /* may kill c: check c->nc.dead after */
void cconn_fail(struct cconn *c);        /* tear down now, abort its exchanges */
/* The protocol's `gone`, for each exchange still there: the client went
 * away (c->fail_cause, if set, says why), x is accounted and ended. */
void cconn_abort_x(struct cconn *c, struct xreq *x);
void cconn_set_timer(struct cconn *c, int kind); /* CT_* ; CT_NONE cancels */
void cconn_kick(struct cconn *c);        /* process buffered input soon */
/* The protocol is replaced (HTTP/1.1 -> h2c upgrade, or detection). */
void cconn_set_ops(struct cconn *c, const struct cconn_ops *ops, void *proto);
/* A layer stands in front of the protocol / steps back. */
void cconn_push_ops(struct cconn *c, const struct cconn_ops *ops, void *layer);
void cconn_pop_ops(struct cconn *c);
/* The socket's events (the worker's epoll callback). */
void cconn_io(struct ev_loop *l, int fd, uint32_t events, void *arg);

#endif
