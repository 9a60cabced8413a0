/* wctx: what every part of one worker thread's data path shares: its
 * event loop, the gateway (config, routing, metrics), its pools of pod
 * connections, its graveyard and its drain state. worker.c owns and fills
 * it; the modules below worker read it. */
#ifndef KVGATE_GATEWAY_WCTX_H
#define KVGATE_GATEWAY_WCTX_H

#include <stdint.h>

#include "gateway/graveyard.h"

struct cconn;
struct ev_loop;
struct gw;
struct upstream;

struct wctx {
    struct ev_loop *l;
    struct gw *g;
    struct upstream *ups;       /* upstream.h: this worker's pod connections */
    struct graveyard gy;
    struct cconn *conns;        /* its client connections (conn.c) */
    uint32_t id;
    int draining;               /* SIGTERM: finishing what is under way */
    int stopping;               /* the loop is ending: what is left is cut */
};

#endif
