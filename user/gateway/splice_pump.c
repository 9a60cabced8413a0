/* splice_pump: the bytes kvgated moves itself on a spliced flow, each
 * direction bounded by limits.max_buffered_bytes and TCP's backpressure:
 *   CD_BODY   the rest of a request body the verdict framed (it handed up
 *             inside that body): exactly body_left bytes, client -> pod,
 *             and never a byte more (what follows is the next request's,
 *             for kvgated's HTTP/1.1 parser);
 *   PD_RELAY  the pod's answers the verdict handed up, pod -> client (the
 *             verdict still frames them: splice.c learns from it when the
 *             pod is quiet); never past the start of an invalid answer.
 * Neither writes into a socket before every byte the kernel redirected
 * into it has reached its TCP (and, towards the client, before kvgated's
 * own buffered output is out): ours would overtake them. See splice_priv.h. */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "gateway/client_h1.h"
#include "gateway/conn.h"
#include "gateway/upstream.h"
#include "gateway/splice_priv.h"

static size_t cap_of(const struct splice *sp)
{
    size_t cap = sp->c->wc->g->cfg.max_buffered_bytes;
    return cap ? cap : (1u << 20);
}

/* Reads at most `want` bytes more into b: 0, or -errno; *eof at the end. */
static int rd(int fd, struct sbuf *b, size_t want, int *eof, uint64_t *got)
{
    while (want) {
        if (sbuf_reserve(b, want < 65536 ? want : 65536))
            return -ENOMEM;
        size_t room = b->cap - b->len - 1;
        if (room > want)
            room = want;
        ssize_t n = read(fd, b->data + b->len, room);
        if (n > 0) {
            b->len += (size_t)n;
            *got += (uint64_t)n;
            want -= (size_t)n;
            continue;
        }
        if (n == 0) {
            *eof = 1;
            return 0;
        }
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
    }
    return 0;
}

/* Writes b from *off as far as the socket takes: 0, or -EPIPE. */
static int wr(int fd, struct sbuf *b, size_t *off, uint64_t *put)
{
    while (*off < b->len) {
        ssize_t n = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            *off += (size_t)n;
            *put += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -EPIPE;
    }
    sbuf_reset(b);
    *off = 0;
    return 0;
}

/* 0 to go on, -1 when the flow changed under us (freed, or not on). */
static int body_pump(struct splice *sp, uint64_t now)
{
    struct cconn *c = sp->c;
    size_t cap = cap_of(sp);
    if (!sp->ordered_c2p && now - sp->since_c2p >= SP_SETTLE_NS && sp_behind(sp, 1, 0) <= 0)
        sp->ordered_c2p = 1;
    size_t want = sp->c2p.len < cap ? cap - sp->c2p.len : 0;
    if (want > sp->body_left)
        want = (size_t)sp->body_left;
    if (want) {
        int eof = 0;
        uint64_t got = 0;
        if (rd(c->nc.fd, &sp->c2p, want, &eof, &got) < 0) {
            sp_teardown(sp, UC_ERROR);
            return -1;
        }
        sp->c_own += got;
        sp->body_left -= got;
        sp->moved += got;
        if (eof && sp->body_left) { /* the body was cut short */
            sp_teardown(sp, UC_CLIENT_CLOSED);
            return -1;
        }
    }
    if (sp->ordered_c2p) {
        uint64_t put = 0;
        int rc = wr(sp->pfd, &sp->c2p, &sp->c2p_off, &put);
        sp_count_relayed(1, put);
        if (rc < 0) {
            sp_teardown(sp, UC_POD_CLOSED);
            return -1;
        }
        if (!sp->body_left && !sp->c2p.len) {
            sp_body_done(sp);
            return SP(c) == sp && sp->on ? 0 : -1;
        }
    }
    return 0;
}

static int relay_pump(struct splice *sp, uint64_t now)
{
    struct cconn *c = sp->c;
    size_t cap = cap_of(sp);
    struct kvg_flow_st st;
    if (!sp->ordered_p2c && now - sp->since_p2c >= SP_SETTLE_NS && !netconn_pending(&c->nc) &&
        sp_behind(sp, 0, 0) <= 0)
        sp->ordered_p2c = 1;
    if (sp_st_get(sp->ck_p, &st) < 0) {
        sp_teardown(sp, UC_ERROR);
        return -1;
    }
    size_t want = sp->p2c.len < cap ? cap - sp->p2c.len : 0;
    if (st.phase == KVG_AN_BAD) { /* up to the invalid answer, no further */
        uint64_t left = st.bad_pos > sp->p_read ? st.bad_pos - sp->p_read : 0;
        if (want > left)
            want = (size_t)left;
    }
    if (want && !sp->p_eof) {
        uint64_t got = 0;
        if (rd(sp->pfd, &sp->p2c, want, &sp->p_eof, &got) < 0) {
            sp_teardown(sp, UC_POD_CLOSED);
            return -1;
        }
        sp->p_read += got;
        sp->moved += got;
        /* the verdict framed what we read before we could read it */
        if (got && sp_st_get(sp->ck_p, &st) < 0) {
            sp_teardown(sp, UC_ERROR);
            return -1;
        }
        if (st.phase == KVG_AN_BAD && sp->p_read > st.bad_pos) { /* read past it: drop that */
            uint64_t over = sp->p_read - st.bad_pos;
            size_t unsent = sp->p2c.len - sp->p2c_off;
            sp->p2c.len -= over < unsent ? (size_t)over : unsent;
            sp->p_read = st.bad_pos;
        }
    }
    sp->p_stop = st.phase == KVG_AN_BAD && sp->p_read >= st.bad_pos;
    if (!sp->ordered_p2c)
        return 0;
    uint64_t put = 0;
    int rc = wr(c->nc.fd, &sp->p2c, &sp->p2c_off, &put);
    sp_count_relayed(0, put);
    if (rc < 0) {
        sp_teardown(sp, UC_CLIENT_CLOSED);
        return -1;
    }
    if (!sp->p2c.len) {
        sp_relay_idle(sp, &st);
        return SP(c) == sp && sp->on ? 0 : -1;
    }
    return 0;
}

void sp_pump(struct splice *sp)
{
    struct cconn *c = sp->c;
    uint64_t now = ev_now_ns();
    if (sp->cdir == CD_BODY && body_pump(sp, now) < 0)
        return;
    if (sp->pdir == PD_RELAY && relay_pump(sp, now) < 0)
        return;
    if (SP(c) == sp && sp->on) {
        sp_set_events(sp);
        sp_schedule(sp);
    }
}

void sp_set_events(struct splice *sp)
{
    struct cconn *c = sp->c;
    struct ev_loop *l = c->wc->l;
    size_t cap = cap_of(sp);
    uint32_t ce = 0, pe = 0;
    if (!sp->settled && netconn_pending(&c->nc))
        ce |= EPOLLOUT; /* kvgated's own last answer bytes */
    if (!sp->c_eof && (sp->cdir == CD_KERNEL ||
                       (sp->cdir == CD_BODY && sp->body_left && sp->c2p.len < cap)))
        ce |= EPOLLIN | EPOLLRDHUP;
    if (sp->pdir == PD_RELAY && sp->ordered_p2c && sp->p2c.len)
        ce |= EPOLLOUT;
    ev_mod(l, c->nc.fd, ce);
    if (sp->p_eof)
        sp_unwatch_pod(sp); /* level-triggered EOF would fire on and on */
    if (sp->pfd < 0 || !sp->p_watched)
        return;
    if (sp->pdir == PD_KERNEL || (sp->p2c.len < cap && !sp->p_stop))
        pe |= EPOLLIN | EPOLLRDHUP;
    if (sp->cdir == CD_BODY && sp->ordered_c2p && sp->c2p.len)
        pe |= EPOLLOUT;
    ev_mod(l, sp->pfd, pe);
}

void sp_unwatch_pod(struct splice *sp)
{
    if (sp->pfd >= 0 && sp->p_watched)
        ev_del(sp->c->wc->l, sp->pfd);
    sp->p_watched = 0;
}

void sp_pump_free(struct splice *sp)
{
    sbuf_free(&sp->c2p);
    sbuf_free(&sp->p2c);
    sp->c2p_off = sp->p2c_off = 0;
}
