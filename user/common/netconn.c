/* netconn: a server connection's buffered I/O and orderly close. See
 * netconn.h. */
#include "common/netconn.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"

#define READS_PER_EVENT 16
#define OUT_COMPACT (64u << 10) /* sent bytes kept in `out` at most */

void netconn_init(struct netconn *nc, struct ev_loop *l, int fd,
                  const struct netconn_ops *ops)
{
    *nc = (struct netconn){ .l = l, .ops = ops, .fd = fd };
    sbuf_init(&nc->in);
    sbuf_init(&nc->out);
}

void netconn_free(struct netconn *nc)
{
    sbuf_free(&nc->in);
    sbuf_free(&nc->out);
}

void netconn_set_source(struct netconn *nc, const struct netconn_source *src,
                        void *self)
{
    nc->src = src;
    nc->src_self = src ? self : NULL;
}

void netconn_close(struct netconn *nc)
{
    if (nc->dead)
        return;
    nc->dead = 1;
    ev_del(nc->l, nc->fd);
    close(nc->fd);
    nc->fd = -1;
    ev_timer_cancel(nc->l, nc->linger_timer);
    nc->linger_timer = 0;
}

static int paused(const struct netconn *nc)
{
    return nc->ops->holding && nc->in.len >= NETCONN_IN_PAUSE &&
           nc->ops->holding(nc);
}

void netconn_update_events(struct netconn *nc)
{
    if (nc->dead)
        return;
    uint32_t m;
    if (nc->rd_eof)
        m = 0;
    else if (!nc->closing && paused(nc))
        m = EPOLLRDHUP; /* paused, but still notice the peer leaving */
    else
        m = EPOLLIN | EPOLLRDHUP;
    if (netconn_pending(nc))
        m |= EPOLLOUT;
    ev_mod(nc->l, nc->fd, m);
}

static void linger_cb(struct ev_loop *l, void *arg)
{
    struct netconn *nc = arg;
    nc->linger_timer = 0;
    nc->ops->fail(nc);
}

void netconn_flush(struct netconn *nc)
{
    if (nc->dead)
        return;
    if (nc->out.oom) {
        /* an append was dropped: what is queued has a hole in its framing,
         * so it must not be sent (checked before sending: a reset of the
         * buffer after a full write would clear the flag) */
        nc->ops->fail(nc);
        return;
    }
    int was_idle = netconn_pending(nc) == 0;
    for (;;) {
        if (nc->src && nc->src->fill(nc->src_self, nc) < 0) {
            nc->ops->fail(nc);
            return;
        }
        if (nc->dead)
            return;
        size_t pending = netconn_pending(nc);
        if (pending == 0)
            break;
        ssize_t n = send(nc->fd, nc->out.data + nc->out_off, pending, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            nc->ops->fail(nc); /* EPIPE, ECONNRESET, ... */
            return;
        }
        nc->out_off += (size_t)n;
        if (n > 0)
            was_idle = 1; /* progress: the stall clock restarts */
        if (nc->out_off == nc->out.len) {
            sbuf_reset(&nc->out);
            nc->out_off = 0;
        } else if ((size_t)n < pending) {
            break; /* socket buffer full */
        }
    }
    if (nc->out_off > OUT_COMPACT && nc->out_off > nc->out.len / 2) {
        sbuf_consume(&nc->out, nc->out_off);
        nc->out_off = 0;
    }
    size_t pending = netconn_pending(nc);
    if (pending && was_idle)
        nc->out_progress_ns = ev_now_ns();
    if (pending > NETCONN_OUT_HARD || nc->out.oom) {
        nc->ops->fail(nc); /* peer not reading, or bytes were dropped */
        return;
    }
    if (pending)
        return;
    if (nc->src && nc->src->finished(nc->src_self)) {
        nc->ops->fail(nc); /* nothing left to say either way */
        return;
    }
    if (nc->closing && !nc->shut) {
        if (nc->rd_eof) {
            nc->ops->fail(nc);
            return;
        }
        /* Lingering close: FIN now, keep draining input for a while so a
         * peer still sending does not get an RST that eats our reply. */
        shutdown(nc->fd, SHUT_WR);
        nc->shut = 1;
        nc->linger_timer = ev_timer_at(nc->l, ev_now_ns() + NETCONN_LINGER_NS,
                                       linger_cb, nc);
    }
}

void netconn_read(struct netconn *nc, uint32_t events)
{
    if (nc->dead || !(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    if (!(events & EPOLLIN)) {
        nc->ops->fail(nc); /* HUP/ERR/RDHUP while reading is paused */
        return;
    }
    int got = 0, eof = 0;
    for (int iter = 0; iter < READS_PER_EVENT; iter++) {
        if (nc->closing || nc->shut) { /* discard whatever the peer sends */
            char tmp[NETCONN_READ_CHUNK];
            ssize_t n = read(nc->fd, tmp, sizeof(tmp));
            if (n > 0) {
                nc->rd_bytes += (uint64_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            break;
        }
        if (paused(nc))
            break;
        size_t droom = 0;
        char *dp = nc->in.len == 0 && nc->ops->direct ? nc->ops->direct(nc, &droom) : NULL;
        if (dp && droom) {
            ssize_t n = read(nc->fd, dp, droom);
            if (n > 0) {
                nc->rd_bytes += (uint64_t)n;
                nc->ops->direct_got(nc, (size_t)n);
                got = 1;
                if ((size_t)n < droom && !(events & (EPOLLRDHUP | EPOLLHUP)))
                    break;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
            break;
        }
        if (sbuf_reserve(&nc->in, NETCONN_READ_CHUNK)) {
            nc->ops->fail(nc);
            return;
        }
        size_t room = nc->in.cap - nc->in.len - 1;
        ssize_t n = read(nc->fd, nc->in.data + nc->in.len, room);
        if (n > 0) {
            nc->rd_bytes += (uint64_t)n;
            nc->in.len += (size_t)n;
            nc->in.data[nc->in.len] = '\0';
            got = 1;
            if (nc->ops->direct) {
                /* let the owner consume now, so that a body behind this
                 * head is read straight into place, not through nc->in */
                got = 0;
                nc->ops->input(nc);
                if (nc->dead)
                    return;
            }
            if ((size_t)n < room && !(events & (EPOLLRDHUP | EPOLLHUP)))
                break; /* drained: level-triggered epoll reports more data or EOF
                        * again, so a read that would say EAGAIN is saved (with
                        * RDHUP the next read sees the FIN: take it now) */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        eof = n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
        break;
    }
    /* Requests that arrived together with a FIN are still served. */
    if (got && !nc->closing)
        nc->ops->input(nc);
    if (!eof || nc->dead)
        return;
    if (nc->closing && netconn_pending(nc))
        nc->rd_eof = 1; /* finish sending the reply, then close */
    else
        nc->ops->fail(nc); /* aborts what is in flight */
}
