/* netconn: the byte-moving half of a server-side connection on an ev_loop:
 * buffered input and output, readiness, and an orderly close. Shared by
 * kvgate-podsim (server.c) and kvgated (worker.c). What the bytes mean
 * (HTTP/1.1, HTTP/2) and what owns what stay with the owner, which embeds a
 * struct netconn and supplies a few callbacks (struct netconn_ops).
 *
 *   reading  up to 16 reads of NETCONN_READ_CHUNK per readiness event into
 *            `in` (kept NUL-terminated), then one `input` call. Paused
 *            while the owner holds a request and NETCONN_IN_PAUSE bytes
 *            wait behind it; EOF and resets are still noticed. Once
 *            `closing`, whatever the peer sends is read and dropped. Bytes
 *            that arrive together with a FIN are still handed over.
 *   writing  `out` from `out_off`, as much as the socket takes; an
 *            attached source (HTTP/2: common/h2srv.c) tops `out` up first.
 *            A peer more than NETCONN_OUT_HARD behind is dropped, and so
 *            is one whose pending output lost bytes (out.oom; a buffer
 *            sent whole is reset, which clears the flag).
 *   closing  the owner sets `closing` and flushes: once `out` is empty the
 *            write side is shut down (FIN) and input is drained for
 *            NETCONN_LINGER_NS before the socket is closed, so that a peer
 *            still sending does not get an RST that eats the reply
 *            (lingering close). A peer that half-closed first (`rd_eof`)
 *            is closed as soon as its reply is out.
 *
 * Teardown is the owner's `fail` callback, which must call netconn_close().
 * netconn frees nothing: the owner keeps the memory valid until the netconn
 * call that led to `fail` has returned (podsim: a busy count; kvgated: a
 * graveyard reaped from a zero-delay timer), and netconn checks `dead`
 * after every callback.
 *
 * Readiness: the owner registers fd itself (ev_add with EPOLLIN |
 * EPOLLRDHUP and its own callback, which calls netconn_flush on EPOLLOUT
 * and netconn_read), and calls netconn_update_events once it is done with
 * the connection for now. */
#ifndef KVGATE_NETCONN_H
#define KVGATE_NETCONN_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"

struct ev_loop;
struct netconn;

#define NETCONN_READ_CHUNK 16384
#define NETCONN_IN_PAUSE (64u << 10)    /* held: read this far ahead at most */
#define NETCONN_OUT_HARD (64u << 20)    /* a peer this far behind is dropped */
#define NETCONN_LINGER_NS 2000000000ull /* lingering close after shutdown(WR) */

/* The owner's side. */
struct netconn_ops {
    /* New bytes are in nc->in (never called once `closing`). */
    void (*input)(struct netconn *nc);
    /* Tear the connection down; must call netconn_close(nc). */
    void (*fail)(struct netconn *nc);
    /* Optional: nonzero while the owner is not consuming nc->in (an
     * HTTP/1.1 request in service): reading pauses at NETCONN_IN_PAUSE. */
    int (*holding)(const struct netconn *nc);
    /* Optional, both or neither: while nc->in is empty, `direct` may name
     * where the next bytes belong (a request body of known length) and
     * how many it takes; they are read there, without passing through
     * nc->in, and reported with `direct_got` before `input` is called. */
    char *(*direct)(struct netconn *nc, size_t *room);
    void (*direct_got)(struct netconn *nc, size_t n);
};

/* Output generated just before it is written (HTTP/2 frames, so that the
 * session sees the socket's pace), attached with netconn_set_source. */
struct netconn_source {
    /* Tops up nc->out; < 0 fails the connection. */
    int (*fill)(void *self, struct netconn *nc);
    /* Nonzero when nothing is left to read or write (HTTP/2: GOAWAY
     * exchanged); asked once `out` is empty, and the connection is then
     * failed. */
    int (*finished)(const void *self);
};

struct netconn {
    struct ev_loop *l;
    const struct netconn_ops *ops;
    int fd;                /* -1 once closed */
    int dead;              /* netconn_close() done */
    int closing;           /* close once `out` is flushed (owner sets it) */
    int shut;              /* shutdown(WR) done, lingering */
    int rd_eof;            /* peer half-closed while we still flush */
    uint64_t rd_bytes;     /* bytes read from fd, ever (kvgated's splice: what it consumed) */
    struct sbuf in, out;
    size_t out_off;        /* bytes of `out` already sent */
    uint64_t out_progress_ns; /* last time the socket took output, or output
                               * began waiting (the owner's send timeout) */
    uint64_t linger_timer;
    const struct netconn_source *src; /* NULL: `out` is all there is */
    void *src_self;
};

void netconn_init(struct netconn *nc, struct ev_loop *l, int fd,
                  const struct netconn_ops *ops);
/* Frees the buffers (after netconn_close). */
void netconn_free(struct netconn *nc);
/* Attaches (src NULL: detaches) an output source. */
void netconn_set_source(struct netconn *nc, const struct netconn_source *src,
                        void *self);
/* Marks nc dead, deregisters and closes the socket, cancels the linger
 * timer. The owner's `fail` calls it first thing. Idempotent. */
void netconn_close(struct netconn *nc);

/* Handles EPOLLIN / EPOLLRDHUP / EPOLLHUP / EPOLLERR in events (nothing
 * else, nothing when dead): reads, calls `input`, notices EOF and resets. */
void netconn_read(struct netconn *nc, uint32_t events);
/* Writes as much as the socket takes; finishes a closing connection. May
 * call `fail`: check nc->dead after. */
void netconn_flush(struct netconn *nc);
/* Polls for input unless paused or half-closed, and for output while some
 * waits. */
void netconn_update_events(struct netconn *nc);

static inline size_t netconn_pending(const struct netconn *nc)
{
    return nc->out.len - nc->out_off;
}

#endif
