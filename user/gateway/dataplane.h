/* dataplane: the private model of kvgated's data path (worker.c,
 * client_h1.c, client_h2.c, relay.c, upstream.c). Not included outside
 * user/gateway/.
 *
 * Shape: worker -> client connection (cconn) -> exchange (xreq, one per
 * HTTP/1.1 request or h2 stream) -> upstream connection (upconn, HTTP/1.1
 * to one pod, kept alive in a per-worker, per-pod-slot pool).
 *
 * Ownership, one owner and one free path per object:
 *  - the worker owns its cconns (list) and its idle upconns (pools);
 *  - a cconn owns its xreqs (h1: `cur`; h2: the `streams` list);
 *  - an xreq owns its upconn while the exchange uses it (`up`); finishing
 *    hands it back to the pool or kills it.
 * Tearing down (cconn_fail, x_kill, up_kill) closes the fd, cancels timers,
 * unlinks the object and puts it on the worker's graveyard; the memory is
 * freed by a zero-delay timer after the current callback has returned, so
 * a callback never has an object freed under its feet. Code that calls out
 * (to the client sink, to routing) re-checks `dead` / ownership after.
 *
 * Accounting: every xreq ends with exactly one x_account() (sets t_end,
 * releases the route, calls gw_request_done). */
#ifndef KVGATE_GATEWAY_DATAPLANE_H
#define KVGATE_GATEWAY_DATAPLANE_H

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/h2srv.h"
#include "common/http1.h"
#include "common/listener.h"
#include "common/netconn.h"
#include "common/sbuf.h"
#include "gateway/gateway.h"

struct ev_loop;
struct splice;
struct cconn;
struct xreq;
struct upconn;

/* From route.c (declared in gateway.h): gw_route, gw_route_release,
 * gw_pod_failed, gw_request_done, gw_scan_*, gw_models_json (GET
 * /v1/models) and gw_request_event (called for every relayed SSE event
 * with content, after r->t_first_token is set and before r->t_last_token
 * moves to now_ns). */

/* ---- tunables ---- */
/* Client sockets' read-ahead pause, output cap and lingering close are
 * common/netconn.h's NETCONN_*. */

#define DP_UP_IDLE_MAX 64          /* idle keep-alive conns per pod per worker */
#define DP_READ_CHUNK 16384        /* upstream reads */
#define DP_H2_OUT_SOFT (256u << 10)/* h2: stop serialising frames above this */
#define DP_H2_MAX_STREAMS 256
#define DP_SSE_HOLD_MAX (64u << 10)/* partial SSE event held back at most */

/* ---- worker ---- */

struct upool {
    struct upconn *head;
    uint32_t n;
};

struct worker {
    struct gw *g;
    struct ev_loop *l;
    uint32_t id;
    struct listener ls;         /* SO_REUSEPORT, cfg.listen */
    pthread_t th;
    int thread_started;
    struct cconn *conns;
    struct upool pools[POD_MAX];
    /* graveyard (see above) */
    struct cconn *dead_conns;
    struct xreq *dead_xs;
    struct upconn *dead_ups;
    uint64_t reap_timer;
    int stopping;
    /* graceful drain (worker.c): started by workers_drain via drain_efd */
    int draining;
    int drain_efd;
    uint64_t drain_timer, drain_deadline_ns;
    atomic_int drained;         /* no connection left (read by main) */
};

void w_reap_later(struct worker *w);

/* ---- client connections ---- */

enum { CP_DETECT, CP_H1, CP_H2 };
enum { H1_HEAD, H1_BODY, H1_WAIT };
enum { CT_NONE, CT_REQ, CT_IDLE };

struct cconn {
    struct netconn nc;          /* fd, in/out, dead, closing, lingering */
    struct worker *w;
    struct cconn *prev, *next;  /* worker's list */
    struct cconn *gnext;        /* graveyard */
    int proto;
    char peer[64];              /* client IP, for x-forwarded-for */
    uint64_t timer;             /* CT_REQ: head+body deadline; CT_IDLE */
    int timer_kind;
    uint64_t kick_timer;
    uint64_t send_timer;        /* output waiting: limits.send_timeout_ms */
    uint64_t t_first;           /* first byte of the request being read */
    /* HTTP/1.1 */
    int h1st;
    struct xreq *cur;           /* the request being read or served */
    struct http1_chunked ck;
    uint64_t body_left;         /* Content-Length bytes still to read */
    int chunked;
    int upgrade;                /* Upgrade: h2c once the body is in */
    struct sbuf h2c_settings;   /* its HTTP2-Settings value (base64url) */
    /* kernel splice (splice.c): non-NULL once the connection is in kvg_sock */
    struct splice *sp;
    /* HTTP/2 */
    struct h2srv h2;            /* session; in_ng: inside nghttp2, no mem_send */
    struct xreq *streams;
    uint32_t nstreams;
    uint32_t nready;            /* streams complete, dispatched after the read */
    uint64_t body_bytes;        /* request bodies buffered on this connection */
};

static inline struct cconn *cconn_of(struct netconn *nc)
{
    return (struct cconn *)((char *)nc - offsetof(struct cconn, nc));
}

/* worker.c */
void cconn_flush(struct cconn *c);       /* may kill c: check c->nc.dead after */
void cconn_fail(struct cconn *c);        /* tear down now, abort its xreqs */
void cconn_set_timer(struct cconn *c, int kind); /* CT_* ; CT_NONE cancels */
void cconn_kick(struct cconn *c);        /* process buffered input soon */

/* client_h1.c */
void h1_process(struct cconn *c);
/* netconn_ops.direct / direct_got: a Content-Length body is read straight
 * into the exchange's body buffer (one copy fewer per body byte). */
char *h1_body_direct(struct netconn *nc, size_t *room);
void h1_body_direct_got(struct netconn *nc, size_t n);
void h1_timeout(struct cconn *c);        /* CT_REQ fired */
void h1_resp_head(struct xreq *x, int status, const char *hdrs, size_t hlen,
                  int64_t clen);
void h1_resp_body(struct xreq *x, const char *p, size_t n);
void h1_resp_end(struct xreq *x, int abort);
void h1_reject(struct cconn *c, int status, const char *msg);

/* client_h2.c */
int h2_start(struct cconn *c, struct xreq *upgraded, const char *settings_b64,
             size_t settings_len);
void h2_process(struct cconn *c);
void h2_resp_head(struct xreq *x, int status, const char *hdrs, size_t hlen,
                  int64_t clen);
void h2_resp_body(struct xreq *x, const char *p, size_t n);
void h2_resp_end(struct xreq *x, int abort);
void h2_idle_timeout(struct cconn *c);

/* ---- exchanges ---- */

enum { XK_ROUTED, XK_MODELS, XK_HEALTH, XK_NOTFOUND, XK_BADMETHOD };

struct xreq {
    struct cconn *c;
    struct worker *w;
    struct xreq *prev, *next;   /* h2: c->streams */
    struct xreq *gnext;         /* graveyard */
    int32_t sid;                /* h2 stream id; 0 on HTTP/1.1 */
    int kind;
    int classified;             /* kind decided (needs method and path) */
    int dead, done, dispatched;
    int ready;                  /* h2: complete, to dispatch after this read */
    uint64_t charged;           /* body bytes counted against the buffering limits */
    size_t hdr_bytes;           /* h2: decoded header bytes (RFC 9113 sizes) */
    int hdr_overflow;           /* h2: more than limits.max_header_bytes: 431 */
    int64_t req_clen;           /* h2: announced content-length, -1 none */
    int minor, keep_alive;      /* HTTP/1.1 client */
    char method[16];
    int is_head;                /* HEAD: every answer goes without a body */
    struct sbuf path;           /* request-target as received */
    struct sbuf fwd;            /* end-to-end headers to forward, "n: v\r\n" */
    struct sbuf xff;            /* client's x-forwarded-for, if any */
    struct sbuf conn_opts;      /* client's Connection values: the fields they name
                                 * are not forwarded (RFC 9110 7.6.1) */
    struct sbuf ctype;          /* client's content-type, if any */
    struct sbuf body;           /* decoded request body, forwarded as is */
    struct gw_scan *scan;
    uint64_t timer;             /* h2: head+body deadline */
    struct gw_request r;
    /* upstream */
    struct upconn *up;
    uint32_t up_slot;           /* pod slot of the current attempt */
    int fresh_tried;            /* reused conn failed: one fresh try done */
    char dest[72];              /* "ip:port" of the pod that answered */
    /* response to the client */
    int resp_started;           /* status / HEADERS handed to the client */
    int64_t resp_clen;          /* content-length announced, -1 none */
    int resp_chunked;           /* h1: chunked framing */
    int sse;                    /* text/event-stream: relay whole events */
    int sse_at_boundary;        /* everything relayed ended an event */
    struct sbuf hold;           /* SSE bytes of an event not yet complete */
    int up_paused;
    uint64_t stall_timer;       /* paused for the client: limits.send_timeout_ms */
    int last_body;              /* h1: the answer's last body bytes are being relayed */
    /* h2 body queue, drained by the data provider */
    struct sbuf h2out;
    size_t h2off;
    int h2eof;
};

/* relay.c */
struct xreq *x_new(struct cconn *c, int32_t sid);
void x_kill(struct xreq *x);             /* unlink from c, graveyard */
void x_free(struct xreq *x);             /* reaper only */
void x_set_method(struct xreq *x, const char *m, size_t n);
void x_set_path(struct xreq *x, const char *p, size_t n);
void x_add_header(struct xreq *x, const char *n, size_t nl, const char *v, size_t vl);
/* -E2BIG: over max_body_bytes (413); -ENOSPC: over the buffering limits (503) */
int x_body_feed(struct xreq *x, const char *p, size_t n);
/* Charges n body bytes announced up front (Content-Length) to the
 * buffering limits: 0 or -ENOSPC. */
int x_charge(struct xreq *x, uint64_t n);
/* n body bytes already written at x->body.data + x->body.len (read there
 * directly): accounted and scanned like x_body_feed's. */
void x_body_got(struct xreq *x, size_t n);
void x_dispatch(struct xreq *x);         /* head and body complete */
void x_local(struct xreq *x, int status, const char *msg,
             const char *error_cause);
void x_local_body(struct xreq *x, int status, const char *ctype,
                  const char *body, size_t len, const char *extra_hdrs);
void x_abort_client(struct xreq *x);     /* the client went away */
/* The answer began and cannot be completed (cause for the log): an SSE
 * stream gets one error event in OpenAI's format and [DONE], anything
 * else is cut. Accounts x. */
void x_end_with_error(struct xreq *x, const char *cause, int code, const char *msg);
void x_account(struct xreq *x);          /* exactly once per xreq */
void x_client_drained(struct xreq *x);   /* output fell: resume upstream */
size_t x_pending(const struct xreq *x);

/* upstream -> relay */
enum { FK_CONNECT, FK_CONNECT_TIMEOUT, FK_RESET, FK_FB_TIMEOUT, FK_PROTO,
       FK_STREAM_IDLE, /* the answer began, then no byte for stream_idle_timeout_ms */
       FK_LOCAL,       /* the gateway's own resources (fds, ports): not the pod's fault */
};
/* The response head arrived; 0 to go on with the body, -1 when the relay
 * took the upconn away (retry on 5xx). */
int relay_up_head(struct xreq *x, struct upconn *u, int status,
                  const struct http1_header *h, size_t nh, int64_t clen,
                  int has_body);
void relay_up_body(struct xreq *x, const char *p, size_t n);
void relay_up_end(struct xreq *x);
/* The upconn failed and was already detached and killed. */
void relay_up_fail(struct xreq *x, int kind, int reused, const char *cause);

/* ---- upstream connections ---- */

enum { UP_CONNECTING, UP_ACTIVE, UP_IDLE };
enum { UF_NONE, UF_CLEN, UF_CHUNKED, UF_CLOSE };

struct upconn {
    struct worker *w;
    int fd;
    uint32_t slot;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct upconn *pprev, *pnext; /* pool, while idle */
    struct upconn *gnext;         /* graveyard */
    struct xreq *x;               /* owner while active */
    int state, dead, reused, paused;
    uint64_t timer;               /* connect / first byte / deferred failure */
    int fail_kind;                /* deferred failure (sync connect error) */
    const char *fail_cause;
    struct sbuf head;             /* request head; body is x->body */
    size_t sent;                  /* bytes of head + body written */
    int req_sent, wr_failed;
    struct sbuf in;               /* response bytes not yet processed */
    int got_byte, head_done, resp_ka, framing;
    uint64_t rx_ns;               /* last response bytes (stream_idle_timeout_ms) */
    uint64_t clen_left;
    struct http1_chunked ck;
};

/* upstream.c */
/* Starts x's request on r.pod: an idle pooled conn unless fresh_only, else
 * a new connect. 0, or -ENOMEM (nothing started). Connect errors are
 * reported later through relay_up_fail. */
int up_start(struct xreq *x, int fresh_only);
void up_kill(struct upconn *u);
/* Exchange finished: back to the pool when the conn can carry another
 * request, else closed. Detaches from x. */
void up_done(struct upconn *u);
void up_repool(struct upconn *u);       /* splice.c: its kept conn, pooled again */
void up_pause(struct upconn *u);
void up_resume(struct upconn *u);
void up_free(struct upconn *u);          /* reaper only */
void up_pool_close_all(struct worker *w);

#endif
