/* h2srv: the server side of an HTTP/2 session (nghttp2 1.52) over a
 * netconn. One job: move bytes between the connection and the session.
 * Frames come in through h2srv_recv; going out they are serialised just
 * before the connection writes (the session is the netconn's output
 * source), so flow control sees the socket's pace and at most `out_soft`
 * bytes of frames wait in nc->out. The nghttp2 receive callbacks are
 * here: they filter frames down to requests and hand the owner one stream
 * object per request (struct h2srv_callbacks). What a request means and
 * how it is answered (nghttp2_submit_response, data providers, resets)
 * stay with the owner. Shared by kvgate-podsim (server_h2.c) and kvgated
 * (client_h2.c).
 *
 * nghttp2 forbids nghttp2_session_mem_send from inside its callbacks, and
 * owners answer requests from on_frame_recv: `in_ng` is nonzero while
 * nghttp2 runs (receiving, and serialising, whose data providers call out
 * too). The owner's flush must return at once while it is set; whoever
 * called h2srv_recv flushes after it returns. */
#ifndef KVGATE_H2SRV_H
#define KVGATE_H2SRV_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

struct netconn;

struct h2srv_callbacks;

struct h2srv {
    nghttp2_session *ng;  /* NULL: no session */
    struct netconn *nc;
    const struct h2srv_callbacks *cb;
    void *ud;             /* the owner's, passed to every callback */
    size_t out_soft;      /* serialise frames while less waits in nc->out */
    int in_ng;            /* inside nghttp2: no mem_send, no flush */
    /* abuse limits (h2srv_settings), enforced here so that they do not
     * depend on what a distribution patched into its nghttp2 */
    double reset_rate, reset_burst, reset_tokens;
    uint64_t reset_ns;    /* last refill */
    uint32_t max_continuations, continuations;
    int calmed;           /* GOAWAY ENHANCE_YOUR_CALM sent: the owner closes */
};

/* Where the first bytes of a connection stand against the 24-byte client
 * preface ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"): */
enum {
    H2SRV_NOT_H2 = -1,    /* they differ: not HTTP/2 by prior knowledge */
    H2SRV_MORE = 0,       /* a prefix of it so far: wait for more */
    H2SRV_PREFACE = 1,    /* it is all there */
};
int h2srv_sniff(const char *p, size_t n);

/* The owner's side, per request stream. `st` is what `open` returned;
 * nothing is called once the connection is dead. A -1 (or NULL) goes to
 * nghttp2 as NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE, whose effect depends
 * on the callback (nghttp2 1.52, tests/unit/test_h2srv.c checks each). */
struct h2srv_callbacks {
    /* A request's HEADERS began on stream id: the owner's stream object
     * (it becomes the stream's user data), or NULL: the stream is reset. */
    void *(*open)(void *ud, int32_t id);
    /* One request header, pseudo-headers (":method") included; trailers
     * are not passed on. 0, or -1: the stream is reset. */
    int (*header)(void *ud, void *st, const char *name, size_t nl,
                  const char *value, size_t vl);
    /* Request body bytes. 0, or -1, which nghttp2 does not act on: the
     * owner must remember the failure itself. */
    int (*data)(void *ud, void *st, const char *p, size_t n);
    /* Optional: the request head is complete and a body follows. */
    void (*head)(void *ud, void *st);
    /* The request is complete (END_STREAM). 0, or -1: a session error
     * (h2srv_recv fails). */
    int (*request)(void *ud, void *st);
    /* nghttp2 closed the stream (err: its RST_STREAM code, 0 for a clean
     * end); st is no longer reachable from the session. */
    void (*close)(void *ud, void *st, uint32_t err);
    /* Optional: the peer crossed an abuse limit ("h2_reset_flood",
     * "h2_continuation_flood"); the session has queued GOAWAY
     * ENHANCE_YOUR_CALM and h2srv_recv fails. */
    void (*limit)(void *ud, const char *which);
};

struct h2srv_settings {
    uint32_t max_streams;     /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t max_header_list; /* SETTINGS_MAX_HEADER_LIST_SIZE (advertised; the
                               * owner bounds what it keeps of decoded headers) */
    size_t out_soft;          /* frames waiting in nc->out, at most */
    /* RST_STREAM from the peer: a token bucket of reset_burst refilled at
     * reset_rate a second; past it GOAWAY ENHANCE_YOUR_CALM (rapid reset,
     * CVE-2023-44487). 0: the defaults (burst 200, 50/s). */
    double reset_rate, reset_burst;
    /* CONTINUATION frames per header block, at most (0: 8, as nghttp2 1.61) */
    uint32_t max_continuations;
    /* Nonzero: no automatic WINDOW_UPDATE; the owner calls h2srv_consume
     * for every DATA byte it took in or threw away (flow control follows
     * what it can buffer). */
    int manual_window;
};

/* Creates the server session on nc, queues our SETTINGS (with a 1 MiB
 * stream and a 16 MiB connection window) and makes the session nc's output
 * source. 0, or -ENOMEM with h->ng left NULL and nc untouched. */
int h2srv_init(struct h2srv *h, struct netconn *nc,
               const struct h2srv_callbacks *cb, void *ud,
               const struct h2srv_settings *set);
/* Frees the session (nghttp2 calls no callbacks from here) and detaches it
 * from the connection. */
void h2srv_free(struct h2srv *h);

/* manual_window: n bytes of stream id's DATA were taken in or thrown away;
 * the window may open again by that much (the connection's too). */
void h2srv_consume(struct h2srv *h, int32_t id, size_t n);

/* Feeds nc->in to the session and consumes what it took. The callbacks may
 * kill the connection. 0, or -1 on a protocol error (nghttp2 may have
 * queued a GOAWAY: flush, then fail the connection). */
int h2srv_recv(struct h2srv *h);

#endif
