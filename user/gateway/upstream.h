/* upstream: HTTP/1.1 connections from one worker to its pods, with a
 * keep-alive pool per pod slot. It moves bytes and frames answers; what
 * an answer means, retries and where the bytes go are its owner's
 * (relay.c), which it tells through a table of events. It knows nothing
 * of exchanges or clients.
 *
 * One request per connection at a time: connect (non-blocking, limits.
 * connect_timeout_ms) or reuse a pooled one, write the request (head +
 * body, writev), parse the answer's head (common/http1.c), then hand the
 * decoded body over as it arrives (Content-Length, chunked, or until
 * close). Deadlines: the whole head within limits.first_byte_timeout_ms,
 * then no silence longer than limits.stream_idle_timeout_ms (time paused
 * for a slow client does not count). A failure is reported once, after
 * the connection is gone, so the owner can retry with a clean slate. */
#ifndef KVGATE_GATEWAY_UPSTREAM_H
#define KVGATE_GATEWAY_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;
struct gw;
struct graveyard;
struct http1_response;
struct pod_target;
struct upconn;
struct upstream;

/* Why an attempt failed. */
enum up_fail_kind {
    FK_CONNECT,         /* refused, unreachable */
    FK_CONNECT_TIMEOUT,
    FK_RESET,           /* reset or closed before the answer's head */
    FK_FB_TIMEOUT,      /* no complete head within first_byte_timeout_ms */
    FK_PROTO,           /* a malformed answer */
    FK_STREAM_IDLE,     /* the answer began, then nothing for stream_idle_timeout_ms */
    FK_LOCAL,           /* the gateway's own resources (fds, ports): not the pod's fault */
};

/* What a connection tells its owner, in this order. Every call but
 * `fail` may make the owner let go of the connection (up_release,
 * up_kill, up_detach_fd); upstream checks and stops. */
struct up_events {
    void (*sent)(void *owner);       /* the whole request is written */
    void (*first_byte)(void *owner);
    /* The answer's head (its header pointers live until this returns);
     * `more`: body bytes came with it (the owner may flush later). */
    void (*head)(void *owner, struct upconn *u, const struct http1_response *h,
                 int has_body, int more);
    /* Decoded body bytes; `last`: the answer ends with them (its `end`
     * follows at once). */
    void (*body)(void *owner, const char *p, size_t n, int last);
    /* The answer is complete: the owner must up_release(u) (pool it),
     * up_detach_fd(u) or up_kill(u). */
    void (*end)(void *owner, struct upconn *u);
    /* The attempt failed (u is already gone); `reused`: it was a pooled
     * connection, which a pod may have closed while idle. */
    void (*fail)(void *owner, int kind, int reused, const char *cause);
};

struct up_request {
    const char *head;
    size_t head_len;
    const char *body;   /* must stay put until `sent` (or the end) */
    size_t body_len;
};

struct pod_target;

/* One worker's pools. */
struct upstream *up_new(struct ev_loop *l, struct gw *g, struct graveyard *gy);
/* Closes the pool's connections; active ones belong to their owners. */
void up_close_idle(struct upstream *us);
void up_free(struct upstream *us);
/* No more pooling (the worker is stopping). */
void up_stop_pooling(struct upstream *us);

/* Starts a request to pod: a pooled connection unless fresh_only, else a
 * new connect. 0 with *out set, or -ENOMEM (nothing started). A failed
 * connect is reported later, from the loop, through ev->fail. */
int up_start(struct upstream *us, const struct pod_target *pod, int fresh_only,
             const struct up_request *rq, const struct up_events *ev, void *owner,
             struct upconn **out);
void up_pause(struct upconn *u);   /* stop reading (the client is slow) */
void up_resume(struct upconn *u);
/* Aborts (closing the connection makes vLLM abort the request). */
void up_kill(struct upconn *u);
/* The answer is complete: back to the pool when the connection can carry
 * another request, else closed. */
void up_release(struct upconn *u);
/* Could u carry another request (a keep-alive answer, fully read, no
 * bytes beyond it)? */
int up_reusable(const struct upconn *u);
/* Hands u's socket over (the splice keeps it as a session's dedicated
 * connection): returns the fd, out of the event loop; u is gone. */
int up_detach_fd(struct upconn *u);
/* An idle connection to slot's pod at a handed back to the pool (or
 * closed when it cannot be pooled). */
void up_adopt_fd(struct upstream *us, uint32_t slot, const struct sockaddr_storage *a,
                 socklen_t alen, int fd);
uint32_t up_slot(const struct upconn *u);
int up_fd(const struct upconn *u);

#endif
