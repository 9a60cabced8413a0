/* exchange: one request and its answer (struct xreq), whatever protocol
 * the client spoke. The protocol that read the request (client_h1.c,
 * client_h2.c) creates the exchange with its sink, the table through which
 * the answer goes back; from then on relay.c drives it (route, pod
 * attempts, the answer) and never names a protocol.
 *
 * Life: the protocol embeds a struct xreq in its own per-request object,
 * calls x_init, feeds the head (x_set_method, x_set_path, x_add_header)
 * and the body (x_body_feed), then x_dispatch. The answer goes out through
 * x->sink; exactly one x_account per exchange (time, route release,
 * metrics, access log); x_kill ends it: the pod connection is dropped and
 * the sink detaches it from its connection (the protocol frees its object
 * through the graveyard once nothing refers to it).
 *
 * Ownership: the client connection owns its exchanges (through the
 * protocol); an exchange owns its pod connection (`up`) while an attempt
 * runs. Code that calls out re-checks `dead` / `done` after. */
#ifndef KVGATE_GATEWAY_EXCHANGE_H
#define KVGATE_GATEWAY_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "gateway/accounting.h"
#include "gateway/gateway.h"
#include "gateway/graveyard.h"
#include "gateway/wctx.h"

struct xreq;
struct upconn;

/* What an exchange shares with the others on its client connection. */
struct xconn {
    struct wctx *wc;
    char peer[64];              /* client IP, for x-forwarded-for */
    uint64_t body_bytes;        /* request bodies held (2 x max_body_bytes at most) */
    const char *path;           /* its requests' gw_request.path: "handup" for a
                                 * connection a bypass worker handed up; NULL accepted */
};

/* The protocol's side of an answer. */
struct xsink_ops {
    /* Status and headers ("name: value\r\n", lower-case, end-to-end only)
     * and the length (-1: unknown, the body ends with `end`). */
    void (*head)(struct xreq *x, int status, const char *hdrs, size_t hlen, int64_t clen);
    void (*body)(struct xreq *x, const char *p, size_t n);
    /* The answer is complete. */
    void (*end)(struct xreq *x);
    /* The answer cannot be completed: cut it (RST_STREAM, or close). */
    void (*abort)(struct xreq *x);
    /* Bytes queued for the client on x's behalf (backpressure). */
    size_t (*pending)(const struct xreq *x);
    /* Send what is queued now (may end the connection: x->dead after). */
    void (*flush)(struct xreq *x);
    /* x_kill: the exchange is over; the protocol lets go of x (unlinks
     * it, moves its connection on) and frees its container through the
     * graveyard once nothing refers to it (an h2 stream: once nghttp2 has
     * closed it). */
    void (*detach)(struct xreq *x);
};

/* An optional layer (the kernel splice) that watches exchanges end. */
struct xlayer {
    void (*routed)(struct xreq *x);           /* a pod was chosen */
    /* the answer is complete on u: 1 when the layer took u over (its
     * socket), 0 to pool it as usual */
    int (*answer_end)(struct xreq *x, struct upconn *u);
};
void relay_set_layer(const struct xlayer *l);

enum { XK_ROUTED, XK_MODELS, XK_HEALTH, XK_NOTFOUND, XK_BADMETHOD };

struct xreq {
    struct xconn *xc;
    const struct xsink_ops *sink;
    int kind;
    int classified;             /* kind decided (needs method and path) */
    int dead, done, dispatched;
    uint64_t charged;           /* body bytes counted against the buffering limits */
    int64_t req_clen;           /* announced content-length, -1 none */
    char method[16];
    int is_head;                /* HEAD: every answer goes without a body */
    int keep_alive;             /* the client may send another request after
                                 * this one (HTTP/1.1; the layer reads it) */
    struct sbuf path;           /* request-target as received */
    struct sbuf fwd;            /* end-to-end headers to forward, "n: v\r\n" */
    struct sbuf xff;            /* client's x-forwarded-for, if any */
    struct sbuf conn_opts;      /* client's Connection values: the fields they name
                                 * are not forwarded (RFC 9110 7.6.1) */
    struct sbuf ctype;          /* client's content-type, if any */
    struct sbuf body;           /* decoded request body, forwarded as is */
    struct gw_scan *scan;
    struct gw_request r;
    /* pod attempts (relay.c) */
    struct upconn *up;
    uint32_t up_slot;           /* pod slot of the current attempt */
    int fresh_tried;            /* reused conn failed: one fresh try done */
    char dest[72];              /* "ip:port" of the pod that answered */
    struct sbuf up_head;        /* the request head as sent to the pod */
    /* the answer */
    int resp_started;           /* status / HEADERS handed to the sink */
    int64_t resp_clen;          /* content-length announced, -1 none */
    int sse;                    /* text/event-stream: relay whole events */
    int sse_at_boundary;        /* everything relayed ended an event */
    struct sbuf hold;           /* SSE bytes of an event not yet complete */
    int strip_usage;            /* accounting.request_usage asked the pod for usage the
                                 * client did not: its usage-only event is dropped */
    struct acct_answer acct;    /* the answer's tokens (accounting.h) */
    int up_paused;
    uint64_t stall_timer;       /* paused for the client: limits.send_timeout_ms */
};

static inline struct wctx *x_wc(const struct xreq *x)
{
    return x->xc->wc;
}

/* ---- exchange.c ---- */
void x_init(struct xreq *x, struct xconn *xc, const struct xsink_ops *sink);
void x_fini(struct xreq *x);             /* frees x's buffers (the protocol's destructor) */
void x_kill(struct xreq *x);             /* ends x (see above); idempotent */
void x_set_method(struct xreq *x, const char *m, size_t n);
void x_set_path(struct xreq *x, const char *p, size_t n);
void x_add_header(struct xreq *x, const char *n, size_t nl, const char *v, size_t vl);
/* -E2BIG: over max_body_bytes (413); -ENOSPC: over the buffering limits (503) */
int x_body_feed(struct xreq *x, const char *p, size_t n);
/* n body bytes already written at x->body.data + x->body.len (read there
 * directly): accounted and scanned like x_body_feed's. */
void x_body_got(struct xreq *x, size_t n);
/* Charges n body bytes announced up front (Content-Length) to the
 * buffering limits: 0 or -ENOSPC. */
int x_charge(struct xreq *x, uint64_t n);
void x_body_drop(struct xreq *x);        /* the body is no longer needed */
void x_classify(struct xreq *x);         /* kind from method and path (once) */
/* Answers locally: the sink gets head, body, end; x is accounted and
 * ended. A JSON error in OpenAI's format for x_local. */
void x_local(struct xreq *x, int status, const char *msg, const char *error_cause);
void x_local_body(struct xreq *x, int status, const char *ctype, const char *body,
                  size_t len, const char *extra_hdrs);
void x_account(struct xreq *x);          /* exactly once per xreq */
/* The client went away (its connection, or a stream reset): the pod's
 * request is aborted, x accounted. */
void x_abort_client(struct xreq *x);
/* The answer began and cannot be completed (cause for the log): an SSE
 * stream gets one error event in OpenAI's format and [DONE], anything
 * else is cut. Accounts and ends x. */
void x_end_with_error(struct xreq *x, const char *cause, int code, const char *msg);

/* for relay.c: the sink's side of an answer, with the bookkeeping */
void x_sink_head(struct xreq *x, int status, const char *h, size_t hl, int64_t clen);
void x_sink_body(struct xreq *x, const char *p, size_t n);  /* none for HEAD */
void x_finish(struct xreq *x, int cut);  /* account, end (or cut), x_kill */
int x_hop_by_hop(const char *name, size_t nl);
int x_named_in(const struct sbuf *conn_opts, const char *name, size_t nl);
int x_path_is(const struct xreq *x, const char *path);

/* ---- relay.c ---- */
void x_dispatch(struct xreq *x);         /* head and body complete */
void x_client_drained(struct xreq *x);   /* output fell: resume the pod */

#endif
