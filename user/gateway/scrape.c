/* scrape: non-blocking HTTP/1.1 GET client. See scrape.h.
 *
 * States: CLOSED -> CONNECTING -> SENDING -> READING -> IDLE (kept alive,
 * watched for EOF) -> SENDING ... Any failure closes the fd. The connect
 * is common/netaddr's; the response head is read by common/http1's
 * http1_parse_response, the rules the data path applies to pods' answers
 * (one set of Content-Length / Transfer-Encoding rules). The deadline
 * timer covers connect, send and the whole response. A failure found while
 * starting (socket(), a synchronous connect error) is reported from a
 * zero-delay timer, so hget_get never calls back into its caller. */
#include "gateway/scrape.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/netaddr.h"

#define READ_CHUNK 16384

static void on_io(struct ev_loop *l, int fd, uint32_t events, void *arg);
static void on_timer(struct ev_loop *l, void *arg);
static void hget_close(struct hget *h);

void hget_init(struct hget *h, struct ev_loop *l)
{
    memset(h, 0, sizeof(*h));
    h->l = l;
    h->fd = -1;
    h->clen = -1;
    h->max_body = HGET_MAX_BODY;
    sbuf_init(&h->out);
    sbuf_init(&h->in);
}

static void drop_conn(struct hget *h)
{
    if (h->fd >= 0) {
        if (h->registered)
            ev_del(h->l, h->fd);
        close(h->fd);
    }
    h->fd = -1;
    h->registered = 0;
    h->state = HG_CLOSED;
}

static int set_events(struct hget *h, uint32_t ev)
{
    if (h->registered)
        return ev_mod(h->l, h->fd, ev);
    int rc = ev_add(h->l, h->fd, ev, on_io, h);
    if (rc == 0)
        h->registered = 1;
    return rc;
}

void hget_target(struct hget *h, const struct sockaddr_storage *a, socklen_t alen,
                 const char *hostport)
{
    if (alen != h->addrlen || memcmp(a, &h->addr, alen) != 0) {
        hget_close(h);
        memcpy(&h->addr, a, alen);
        h->addrlen = alen;
    }
    snprintf(h->host, sizeof(h->host), "%s", hostport);
}

void hget_set_max_body(struct hget *h, size_t bytes)
{
    h->max_body = bytes && bytes < HGET_MAX_BODY ? bytes : HGET_MAX_BODY;
}

/* Drops the connection and any request in flight (no callback). */
static void hget_close(struct hget *h)
{
    if (h->timer)
        ev_timer_cancel(h->l, h->timer);
    h->timer = 0;
    h->pend_err = 0;
    h->cb = NULL;
    h->arg = NULL;
    drop_conn(h);
}

void hget_free(struct hget *h)
{
    hget_close(h);
    sbuf_free(&h->out);
    sbuf_free(&h->in);
}

/* Clears the response state. `in` keeps its bytes (len = 0 only): a body
 * handed to the previous callback stays readable while it runs. */
static void reset_resp(struct hget *h)
{
    h->in.len = 0;
    h->head_done = h->status = h->chunked = h->close_after = 0;
    h->clen = -1;
    h->body_off = h->raw_off = h->body_len = 0;
    memset(&h->ck, 0, sizeof(h->ck));
}

/* Ends the request in flight: exactly one callback, as the last action. */
static void finish(struct hget *h, int err)
{
    if (h->timer)
        ev_timer_cancel(h->l, h->timer);
    h->timer = 0;
    hget_cb cb = h->cb;
    void *arg = h->arg;
    h->cb = NULL;
    h->arg = NULL;
    if (err || h->close_after) {
        drop_conn(h);
    } else {
        h->state = HG_IDLE; /* watch for the pod closing it while idle */
        if (set_events(h, EPOLLIN))
            drop_conn(h);
    }
    const char *body = NULL;
    size_t len = 0;
    if (!err) {
        body = h->in.data + h->body_off; /* recv left a spare byte */
        len = h->body_len;
        h->in.data[h->body_off + len] = 0;
    }
    if (cb)
        cb(h, err, err ? 0 : h->status, body, len, arg);
}

static int do_connect(struct hget *h)
{
    int in_progress;
    int fd = netaddr_connect(&h->addr, h->addrlen, &in_progress);
    if (fd < 0) { /* socket() or a synchronous connect() error (a local one, too:
                   * the caller tells them apart with gw_errno_is_local) */
        h->connect_failed = 1;
        return fd;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    h->fd = fd;
    h->state = HG_CONNECTING;
    /* connected or in progress: writable once the handshake is done */
    int rc = set_events(h, EPOLLOUT);
    if (rc) {
        drop_conn(h);
        return rc;
    }
    return 0;
}

/* Opens a connection (or reuses the idle one) and sends. A failure is
 * reported from a zero-delay timer. */
static void start(struct hget *h)
{
    if (h->state == HG_IDLE && h->fd >= 0) {
        h->reused = 1;
        h->state = HG_SENDING;
        if (set_events(h, EPOLLOUT) == 0)
            return;
        drop_conn(h);
    }
    h->reused = 0;
    int rc = do_connect(h);
    if (rc == 0)
        return;
    if (h->timer)
        ev_timer_cancel(h->l, h->timer);
    h->pend_err = rc;
    h->timer = ev_timer_at(h->l, 0, on_timer, h);
    if (!h->timer)
        finish(h, rc);
}

int hget_get(struct hget *h, const char *path, uint32_t timeout_ms, hget_cb cb,
             void *arg)
{
    if (h->cb)
        return -EBUSY;
    if (!h->addrlen || strlen(path) >= sizeof(h->path))
        return -EINVAL;
    snprintf(h->path, sizeof(h->path), "%s", path);
    sbuf_reset(&h->out);
    h->out_off = 0;
    sbuf_printf(&h->out,
                "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kvgated\r\n"
                "Accept: */*\r\n\r\n",
                path, h->host);
    if (h->out.oom)
        return -ENOMEM;
    reset_resp(h);
    h->retried = h->connect_failed = h->pend_err = 0;
    h->io_ns = 0;
    h->timer = ev_timer_at(h->l, ev_now_ns() + (uint64_t)timeout_ms * 1000000ull,
                           on_timer, h);
    if (!h->timer)
        return -ENOMEM;
    h->cb = cb;
    h->arg = arg;
    start(h);
    return 0;
}

/* A failure on the socket. A reused connection that the pod had closed
 * while idle fails before any byte of the answer: one fresh retry. */
static void fail_io(struct hget *h, int err)
{
    if (err == -EPIPE)
        err = -ECONNRESET;
    if (h->reused && !h->retried && h->in.len == 0 && err == -ECONNRESET) {
        h->retried = 1;
        drop_conn(h);
        h->out_off = 0;
        reset_resp(h);
        start(h);
        return;
    }
    finish(h, err);
}

static void do_send(struct hget *h)
{
    while (h->out_off < h->out.len) {
        ssize_t n = send(h->fd, h->out.data + h->out_off, h->out.len - h->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return; /* EPOLLOUT is armed */
            fail_io(h, -errno);
            return;
        }
        h->out_off += (size_t)n;
    }
    h->state = HG_READING;
    if (set_events(h, EPOLLIN))
        finish(h, -ENOMEM);
}

/* The response head in `in`, by common/http1.c's rules (the data path's
 * upstream.c reads pods' answers with the same function): 0 with the
 * framing set and *head_len, 1 when more bytes are needed, or -EPROTO. */
static int parse_head(struct hget *h, size_t *head_len)
{
    struct http1_response r;
    int rc = http1_parse_response(h->in.data, h->in.len, HGET_MAX_HEAD, &r);
    if (rc == HTTP1_INCOMPLETE)
        return 1;
    if (rc < 0)
        return -EPROTO;
    *head_len = (size_t)rc;
    h->status = r.status;
    h->close_after = !r.keep_alive;
    h->chunked = r.chunked;
    h->clen = r.content_length; /* -1: chunked, or until the close */
    if (r.status == 204 || r.status == 304) {
        h->clen = 0;
        h->chunked = 0;
    }
    return 0;
}

/* 0: need more bytes; 1: response complete; < 0: error. */
static int parse(struct hget *h)
{
    while (!h->head_done) {
        size_t head_len = 0;
        int rc = parse_head(h, &head_len);
        if (rc)
            return rc > 0 ? 0 : rc;
        if (h->status < 200) { /* interim answer: skip it */
            sbuf_consume(&h->in, head_len);
            continue;
        }
        h->head_done = 1;
        h->body_off = h->raw_off = head_len;
        h->body_len = 0;
    }
    size_t avail = h->in.len - h->body_off;
    if (h->chunked) {
        size_t outn = 0;
        long c = http1_chunked_decode(&h->ck, h->in.data + h->raw_off,
                                      h->in.len - h->raw_off,
                                      h->in.data + h->body_off + h->body_len, &outn);
        if (c < 0)
            return -EPROTO;
        h->raw_off += (size_t)c;
        h->body_len += outn;
        if (h->body_len > h->max_body)
            return -EMSGSIZE;
        if (!h->ck.done)
            return 0;
        if (h->raw_off < h->in.len)
            h->close_after = 1; /* bytes nobody asked for */
        return 1;
    }
    if (h->clen >= 0) {
        if (h->clen > (int64_t)h->max_body)
            return -EMSGSIZE; /* at the head: no body byte read */
        if (avail < (size_t)h->clen)
            return 0;
        if (avail > (size_t)h->clen)
            h->close_after = 1;
        h->body_len = (size_t)h->clen;
        return 1;
    }
    /* no framing: the body ends when the pod closes */
    h->close_after = 1;
    return avail > h->max_body ? -EMSGSIZE : 0;
}

/* Reads what is there; 0: wait for more, else the request ended
 * (finish() or a retry is due, with *err). */
static int read_some(struct hget *h, int *err, int *retry)
{
    for (;;) {
        if (sbuf_reserve(&h->in, READ_CHUNK))
            return *err = -ENOMEM, 1;
        /* keep a spare byte: finish() NUL-terminates the body */
        ssize_t n = recv(h->fd, h->in.data + h->in.len, h->in.cap - h->in.len - 1, 0);
        if (n > 0) {
            h->in.len += (size_t)n;
            int rc = parse(h);
            if (rc)
                return *err = rc < 0 ? rc : 0, 1;
            if (h->in.len > h->max_body + 2 * HGET_MAX_HEAD)
                return *err = -EMSGSIZE, 1; /* chunk framing overhead gone wild */
            continue;
        }
        if (n == 0) {
            if (h->head_done && !h->chunked && h->clen < 0) {
                h->body_len = h->in.len - h->body_off;
                return *err = 0, 1;
            }
            return *err = -ECONNRESET, *retry = 1, 1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return *err = -errno, *retry = 1, 1;
        return 0;
    }
}

static void do_read(struct hget *h)
{
    uint64_t t0 = ev_now_ns();
    int err = 0, retry = 0;
    int done = read_some(h, &err, &retry);
    h->io_ns += ev_now_ns() - t0;
    if (!done)
        return;
    if (retry)
        fail_io(h, err);
    else
        finish(h, err);
}

static void on_io(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct hget *h = arg;
    switch (h->state) {
    case HG_CONNECTING: {
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
        if (soerr) {
            h->connect_failed = 1;
            finish(h, -soerr);
            return;
        }
        h->state = HG_SENDING;
        do_send(h);
        return;
    }
    case HG_SENDING:
        do_send(h);
        return;
    case HG_READING:
        do_read(h);
        return;
    case HG_IDLE: {
        /* EOF, an error, or bytes nobody asked for: the connection is done */
        char b[256];
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        drop_conn(h);
        return;
    }
    default:
        drop_conn(h);
    }
}

static void on_timer(struct ev_loop *l, void *arg)
{
    struct hget *h = arg;
    h->timer = 0;
    int err = h->pend_err ? h->pend_err : -ETIMEDOUT;
    h->pend_err = 0;
    drop_conn(h);
    finish(h, err);
}
