/* scrape: a non-blocking HTTP/1.1 GET client for the control thread's probes
 * (/metrics, /health, /v1/models), on an ev_loop.
 *
 * One struct hget is one kept-alive connection to one pod carrying at most
 * one request at a time; the caller keeps one per probe kind so that a
 * stalled /metrics never delays a health check. A request on a reused
 * connection that the pod closed while idle is retried once on a fresh one.
 * Response heads are parsed as the data path parses pods' answers
 * (http1_parse_response: a coding other than chunked last runs to the
 * close, a head it refuses is -EPROTO). Responses are framed by
 * Content-Length, chunked encoding or close; bodies
 * are capped per connection (hget_set_max_body, default HGET_MAX_BODY): a
 * Content-Length over the cap fails at the head, before any body byte is
 * read; a chunked or unframed body fails as soon as it passes the cap.
 * Every request ends with exactly one callback, never from inside hget_get
 * itself. */
#ifndef KVGATE_GATEWAY_SCRAPE_H
#define KVGATE_GATEWAY_SCRAPE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/http1.h"
#include "common/sbuf.h"

#define HGET_MAX_BODY (16u << 20)
#define HGET_MAX_HEAD (64u << 10)

struct ev_loop;
struct hget;

/* err: 0 (status and body valid: body[0..len), NUL-terminated, valid until
 * the callback returns), or -ETIMEDOUT, -ECONNREFUSED, -ECONNRESET (closed
 * before a whole response), -EPROTO (not HTTP/1.x), -EMSGSIZE (too large),
 * another -errno from connect / read / write. h->io_ns is the time the
 * loop spent reading and framing this response (the caller's parse cost
 * comes on top). h->connect_failed tells a
 * failure to connect from a later one. A failure of socket() or connect()
 * for want of local resources (EMFILE, EADDRNOTAVAIL...: gw_errno_is_local)
 * comes back as that errno; callers must not blame the pod for it. The callback may start the next
 * request on h; it must not free h. */
typedef void (*hget_cb)(struct hget *h, int err, int status, const char *body,
                        size_t len, void *arg);

enum { HG_CLOSED, HG_IDLE, HG_CONNECTING, HG_SENDING, HG_READING };

struct hget {
    struct ev_loop *l;
    int fd;
    int state;                   /* HG_* */
    int registered;              /* fd is in the loop */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char host[80];               /* Host header: "host:port" */
    char path[96];
    uint64_t timer;              /* deadline, or a deferred failure */
    int pend_err;                /* failure to report from the timer */
    int reused, retried, connect_failed;
    size_t max_body;             /* -EMSGSIZE past this many body bytes */
    uint64_t io_ns;              /* time spent reading and framing this response */
    hget_cb cb;
    void *arg;
    struct sbuf out;             /* request bytes */
    size_t out_off;
    struct sbuf in;              /* response bytes */
    /* response framing */
    int head_done, status, chunked, close_after;
    int64_t clen;                /* -1: none */
    size_t body_off;             /* where the body starts in `in` */
    size_t raw_off;              /* chunked: raw bytes consumed so far */
    size_t body_len;             /* decoded body bytes (in place) */
    struct http1_chunked ck;
};

void hget_init(struct hget *h, struct ev_loop *l);
/* Sets the pod's address and Host header; a change drops the connection. */
void hget_target(struct hget *h, const struct sockaddr_storage *a, socklen_t alen,
                 const char *hostport);
/* Caps response bodies on h (at most HGET_MAX_BODY). */
void hget_set_max_body(struct hget *h, size_t bytes);
/* Starts GET path. 0, -EBUSY (a request is in flight), or -ENOMEM. */
int hget_get(struct hget *h, const char *path, uint32_t timeout_ms, hget_cb cb,
             void *arg);
static inline int hget_busy(const struct hget *h)
{
    return h->cb != 0;
}
/* Drops the connection and any request in flight (no callback), and
 * frees the buffers. */
void hget_free(struct hget *h);

#endif
