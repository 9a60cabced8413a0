/* server_priv: what server.c, server_h1.c and server_h2.c share inside
 * podsim's HTTP front end (server.h is the public side).
 *
 *   server.c     listener (common/listener.c), connection lifecycle
 *                (busy, fail/free; the socket I/O is common/netconn.c),
 *                protocol detection, request copies (reqdata), responses'
 *                ownership and cancellation (pending/zombie lists, reaping)
 *                and the resp_* writer API, which hands the
 *                protocol-specific part to h1 or h2
 *   server_h1.c  HTTP/1.1: request parsing, bodies (Content-Length,
 *                chunked), response framing, pipelined requests
 *   server_h2.c  HTTP/2: streams (h2srv callbacks), the data provider,
 *                submit / reset; common/h2srv.c runs the nghttp2 session
 *
 * Who owns what:
 *   - struct server owns its conns (s->conns) and every resp that has lost
 *     its transport (s->pending, s->zombies); only server.c touches those
 *     lists (srv_resp_gone, srv_resp_done are how h2 hands a resp back).
 *   - struct conn: the fields under "shared" belong to server.c (h1 and h2
 *     append to nc.out and consume nc.in, then call srv_conn_flush; h1
 *     sets nc.closing); those under "h1" to server_h1.c, those under "h2"
 *     to server_h2.c. server.c only reads c->st / c->streams (to pause
 *     reading, to tell idle connections apart) and detaches c->active when
 *     the conn fails.
 *   - struct h2stream belongs to server_h2.c (created in st_open, freed in
 *     st_close or srv_h2_conn_free).
 *   - struct http_resp is allocated by srv_resp_new and freed by server.c
 *     (resp_end, resp_abort, reaping, server_stop); h1/h2 only fill in its
 *     framing fields. */
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
#define OUT_HARD (64u << 20)    /* h2: a stream this far behind is reset */

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
    struct h2stream *st;   /* h2 only */
    int where;             /* R_*; lists below when gone */
    struct http_resp *prev, *next;
    int started, no_body, chunked, keep_alive, minor;
    int completed;         /* transport finished it; no cancel owed */
    long long clen, written;
    void (*cancel)(void *);
    void *cancel_arg;
    struct reqdata rd;
    struct http_req req;
};

struct h2stream {
    int32_t id;
    struct h2stream *prev, *next;
    struct reqdata rd;
    struct http_resp *resp;
    struct sbuf out;       /* body bytes the data provider drains */
    size_t out_off;
    int eof, responded;
};

enum { P_DETECT, P_H1, P_H2 };
enum { H1_HEAD, H1_BODY, H1_HANDLING };

struct conn {
    /* shared (server.c) */
    struct netconn nc;     /* socket, in/out, dead, closing, lingering */
    struct server *s;
    struct conn *prev, *next;
    int proto, busy;
    uint64_t resume_timer; /* h1: parse pipelined input after a resp_end */
    uint64_t idle_timer;   /* h1: keep-alive timeout while no request is open */
    /* h1 (server_h1.c) */
    int st;
    size_t head_len;
    int64_t body_need;
    int chunked;
    struct http1_chunked ck;
    struct reqdata rd;
    struct http_resp *active;
    /* h2 (server_h2.c) */
    struct h2srv h2;       /* session; in_ng: inside nghttp2 */
    struct h2stream *streams;
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

/* h1, no request open: (re)arms the keep-alive timeout (server.c). */
void srv_conn_idle(struct conn *c);

/* ---- server.c: request copies ---- */

void srv_rd_init(struct reqdata *rd);
void srv_rd_free(struct reqdata *rd);
/* Appends a NUL-terminated copy; returns its offset or -ENOMEM. */
long srv_rd_str(struct reqdata *rd, const void *p, size_t n, int lower);
/* 0, -ENOMEM, or -E2BIG past MAX_HDRS. */
int srv_rd_header(struct reqdata *rd, const void *n, size_t nl,
                  const void *v, size_t vl);
/* An OpenAI-style error body. */
void srv_error_json(struct sbuf *b, int code, const char *msg);

/* ---- server.c: responses ---- */

/* A resp for the request in *rd (taken over: *rd is left empty); st is
 * NULL on HTTP/1.1. NULL on ENOMEM. */
struct http_resp *srv_resp_new(struct conn *c, struct h2stream *st,
                               struct reqdata *rd);
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

/* ---- server_h1.c ---- */

/* Parses and dispatches as many requests as c->in holds, one at a time.
 * Called with c->busy held. */
void srv_h1_process(struct conn *c);
void srv_h1_resp_start(struct http_resp *r, int status, const char *ctype,
                       long long clen, const char *extra);
/* 0, -EMSGSIZE (cut at content-length) or -EPIPE. */
int srv_h1_resp_write(struct http_resp *r, const void *data, size_t len);
/* Finishes (abort: cuts off) the exchange; c->active is cleared. The
 * caller frees r. */
void srv_h1_resp_end(struct http_resp *r, int abort);

/* ---- server_h2.c ---- */

/* Creates c->h2.ng and queues the server SETTINGS. 0 or -ENOMEM. */
int srv_h2_init(struct conn *c);
/* Feeds c->nc.in to nghttp2, then flushes. Called with c->busy held. */
void srv_h2_process(struct conn *c);
/* c died: every stream's resp becomes gone. */
void srv_h2_conn_fail(struct conn *c);
/* Frees the session and the streams (no callbacks). */
void srv_h2_conn_free(struct conn *c);
void srv_h2_resp_start(struct http_resp *r, int status, const char *ctype,
                       long long clen, const char *extra);
/* 0, -EMSGSIZE, -ENOMEM or -EPIPE. */
int srv_h2_resp_write(struct http_resp *r, const void *data, size_t len);
/* Ends the stream's body (abort: resets the stream) and detaches r from
 * it. The caller frees r. */
void srv_h2_resp_end(struct http_resp *r, int abort);

#endif
