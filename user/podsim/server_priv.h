/* server_priv: what server.c, server_h1.c and server_h2.c share inside
 * podsim's HTTP front end (server.h is the public side). The same shape
 * as kvgated's: the core never names a protocol.
 *
 *   server.c     listener (common/listener.c), connection lifecycle
 *                (busy, fail/free; the socket I/O is common/netconn.c),
 *                protocol detection, request copies (reqdata), responses'
 *                ownership and cancellation (pending/zombie lists, reaping)
 *                and the resp_* writer API. It reaches a connection's
 *                protocol through c->proto (struct srv_proto) and a
 *                response's transport through r->sink (struct
 *                srv_sink_ops), nothing else.
 *   server_h1.c  HTTP/1.1: request parsing, bodies (Content-Length,
 *                chunked), response framing, pipelined requests, the
 *                keep-alive timeout; srv_h1_proto and its sink
 *   server_h2.c  HTTP/2: streams (h2srv callbacks), the data provider,
 *                submit / reset; common/h2srv.c runs the nghttp2 session;
 *                srv_h2_proto and its sink
 *
 * Who owns what:
 *   - struct server owns its conns (s->conns) and every resp that has lost
 *     its transport (s->pending, s->zombies); only server.c touches those
 *     lists (srv_resp_gone, srv_resp_done are how a protocol hands a resp
 *     back).
 *   - struct conn: the fields above the union belong to server.c (a
 *     protocol appends to nc.out and consumes nc.in, then calls
 *     srv_conn_flush; h1 sets nc.closing); the union member of the
 *     protocol chosen (h1 or h2) belongs to that protocol's file, and
 *     server.c never reads it.
 *   - struct h2stream belongs to server_h2.c.
 *   - struct http_resp is allocated by srv_resp_new and freed by server.c
 *     (resp_end, resp_abort, reaping, server_stop); the protocol fills in
 *     its framing fields and r->tx. */
#ifndef KVGATE_PODSIM_SERVER_PRIV_H
#define KVGATE_PODSIM_SERVER_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/h2srv.h"
#include "common/http1.h"
#include "common/listener.h"
#include "common/netconn.h"
#include "common/sbuf.h"
#include "podsim/server.h"

#define MAX_HDRS 64

struct conn;
struct http_resp;

/* A connection's protocol, chosen by its first bytes. server.c calls these
 * with c->busy held, and never once c is dead (but fail and free). */
struct srv_proto {
    const char *name;
    /* The protocol was chosen: set up its state. 0, or -errno: c fails. */
    int (*start)(struct conn *c);
    /* New bytes are in c->nc.in. */
    void (*process)(struct conn *c);
    /* Nothing arrived for cfg.keepalive_ms: close c unless a request is
     * open (srv_conn_fail). NULL: the protocol keeps idle connections. */
    void (*timeout)(struct conn *c);
    /* No request open and no byte waiting: refusing resets such a
     * connection, as a restarted server would. */
    int (*idle)(const struct conn *c);
    /* Optional: the protocol is not consuming c->nc.in now (HTTP/1.1: a
     * request in service); reading pauses once enough waits. */
    int (*holding)(const struct conn *c);
    /* Optional: output must not be generated now (HTTP/2: inside
     * nghttp2); whoever called into the library flushes afterwards. */
    int (*no_flush)(const struct conn *c);
    /* c died: every response it carries becomes gone (srv_resp_gone). */
    void (*fail)(struct conn *c);
    /* Frees the protocol's state; calls nothing back. */
    void (*free)(struct conn *c);
};

/* A response's transport, for the resp_* writer API. Called with r->c set
 * (the response still has its transport) and r->c->busy held. */
struct srv_sink_ops {
    /* The status line / HEADERS; clen < 0: streamed. Sets r->no_body for
     * statuses without a body. */
    void (*head)(struct http_resp *r, int status, const char *ctype,
                 long long clen, const char *extra);
    /* Body bytes: 0, -EMSGSIZE (cut at content-length), -ENOMEM or
     * -EPIPE (the transport went away meanwhile). */
    int (*body)(struct http_resp *r, const void *data, size_t len);
    /* The body is complete. r is detached from the transport; the caller
     * frees it. */
    void (*end)(struct http_resp *r);
    /* Cut off without completing the body (HTTP/1.1: the connection is
     * closed behind what was written; HTTP/2: the stream is reset). r is
     * detached; the caller frees it. */
    void (*abort)(struct http_resp *r);
    /* Bytes written for r and not yet handed to the socket (HTTP/2: not
     * yet framed). */
    size_t (*pending)(const struct http_resp *r);
};

extern const struct srv_proto srv_h1_proto;
extern const struct srv_proto srv_h2_proto;

/* Owned copies of one request: "method\0path\0name\0value\0..." */
struct reqdata {
    struct sbuf store;
    long m_off, p_off; /* -1 until seen */
    size_t nh;
    uint32_t hn[MAX_HDRS], hv[MAX_HDRS];
    struct sbuf body;
};

enum { R_LIVE, R_PENDING, R_ZOMBIE };

struct http_resp {
    struct server *s;
    struct conn *c;        /* NULL once gone */
    const struct srv_sink_ops *sink;
    void *tx;              /* the protocol's object under r (h2: its stream) */
    int where;             /* R_*; lists below when gone */
    struct http_resp *prev, *next;
    int started, no_body;
    int completed;         /* transport finished it; no cancel owed */
    /* framing, the protocol's */
    int chunked, keep_alive, minor;
    long long clen, written;
    void (*cancel)(void *);
    void *cancel_arg;
    struct reqdata rd;
    struct http_req req;
};

/* HTTP/1.1 state of a connection (server_h1.c). One request at a time:
 * st goes HEAD -> BODY -> HANDLING, and back to HEAD at resp_end on a
 * keep-alive connection. */
enum { H1_HEAD, H1_BODY, H1_HANDLING };
struct srv_h1 {
    int st;
    size_t head_len;
    int64_t body_need;
    int chunked;
    struct http1_chunked ck;
    struct reqdata rd;
    struct http_resp *active;
    uint64_t resume_timer; /* parse pipelined input after a resp_end */
};

/* HTTP/2 state of a connection (server_h2.c). */
struct h2stream;
struct srv_h2 {
    struct h2srv sess;     /* in_ng: inside nghttp2 */
    struct h2stream *streams;
};

struct conn {
    struct netconn nc;     /* socket, in/out, dead, closing, lingering */
    struct server *s;
    struct conn *prev, *next;
    const struct srv_proto *proto; /* NULL until the first bytes chose one */
    int busy;
    uint64_t idle_timer;   /* keep-alive timeout while no request is open */
    union {                /* the protocol's, per c->proto */
        struct srv_h1 h1;
        struct srv_h2 h2;
    };
};

static inline struct conn *conn_of(struct netconn *nc)
{
    return (struct conn *)((char *)nc - offsetof(struct conn, nc));
}

struct server {
    struct ev_loop *l;
    struct server_cfg cfg;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct listener ls;    /* stopped while refusing */
    uint64_t reap_timer;
    struct conn *conns;
    size_t nconns;
    struct http_resp *pending, *zombies;
};

/* ---- server.c: request copies ---- */

void srv_rd_init(struct reqdata *rd);
void srv_rd_free(struct reqdata *rd);
/* Appends a NUL-terminated copy; returns its offset or -ENOMEM. */
long srv_rd_str(struct reqdata *rd, const void *p, size_t n, int lower);
/* 0, -ENOMEM, or -E2BIG past MAX_HDRS. */
int srv_rd_header(struct reqdata *rd, const void *n, size_t nl,
                  const void *v, size_t vl);

/* ---- server.c: responses ---- */

/* A resp for the request in *rd (taken over: *rd is left empty), written
 * through sink; tx is the protocol's object for it. NULL on ENOMEM. */
struct http_resp *srv_resp_new(struct conn *c, const struct srv_sink_ops *sink,
                               void *tx, struct reqdata *rd);
/* Calls the application's handler. */
void srv_dispatch(struct conn *c, struct http_resp *r);
/* The transport under r went away before resp_end/resp_abort: r is
 * detached and its cancel callback is called soon, from a timer. */
void srv_resp_gone(struct http_resp *r);
/* The transport finished r on its own (h2 body-less response) before the
 * handler's resp_end: r is detached and parked, no cancel owed. */
void srv_resp_done(struct http_resp *r);

/* ---- server.c: connections ---- */

/* Writes as much as the socket takes (generating h2 frames first); handles
 * close-after-flush. Must be called with c->busy held. */
void srv_conn_flush(struct conn *c);
/* Marks c dead, closes the socket, detaches its responses; frees it unless
 * busy. */
void srv_conn_fail(struct conn *c);
/* Drops a c->busy reference: frees a dead conn, else updates its events. */
void srv_conn_release(struct conn *c);
/* No request open: (re)arms the keep-alive timeout (c->proto->timeout). */
void srv_conn_idle(struct conn *c);

#endif
