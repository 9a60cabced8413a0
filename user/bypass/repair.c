/* repair: a connection taken in user space made a kernel socket (repair.h). */
#include "bypass/repair.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

/* The most one receive-queue write is asked to take: the kernel takes a
 * skb of at most MAX_SKB_FRAGS pages per call and says how much. */
#define RESTORE_CHUNK 65536
/* Past this many restored bytes the socket's receive buffer is raised to
 * hold them (the default, tcp_rmem[1], holds about 64 KB of data). */
#define RCVBUF_AT 32768

static int sopt(int fd, int level, int name, const void *v, socklen_t len)
{
    return setsockopt(fd, level, name, v, len) ? -errno : 0;
}

static int iopt(int fd, int level, int name, int v)
{
    return sopt(fd, level, name, &v, sizeof(v));
}

void repair_abort(int fd)
{
    if (fd >= 0)
        close(fd); /* in repair mode: no FIN, no RST */
}

/* The buffered bytes into the receive queue (the socket in repair mode,
 * TCP_RECV_QUEUE selected). 0 or -errno. */
static int restore_rcvq(int fd, const uint8_t *p, uint32_t len)
{
    while (len) {
        size_t n = len > RESTORE_CHUNK ? RESTORE_CHUNK : len;
        ssize_t k = send(fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? -errno : -EIO;
        p += k;
        len -= (uint32_t)k;
    }
    return 0;
}

/* The client's window (we can send at once) and ours as the kernel keeps
 * it, the edge moved past the restored bytes. 0 or -errno. */
static int restore_window(int fd, const struct repair_conn *c)
{
    struct tcp_repair_window w;
    socklen_t l = sizeof(w);
    if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &l))
        return -errno;
    w.snd_wl1 = c->rcv_nxt - (c->fin ? 1 : 0); /* the segment that set it: the latest */
    w.snd_wnd = c->peer_wnd;
    if (w.max_window < w.snd_wnd)
        w.max_window = w.snd_wnd;
    w.rcv_wup = w.snd_wl1; /* the kernel's rcv_nxt after the restore */
    return sopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w));
}

void repair_conn_from_tcpep(struct repair_conn *c, const struct tcpseq_tuple *t,
                            const struct tcpep_flow *f)
{
    memset(c, 0, sizeof(*c));
    c->laddr = t->daddr;
    c->lport = t->dport;
    c->raddr = t->saddr;
    c->rport = t->sport;
    c->snd_nxt = f->iss + 1; /* the worker sends no data: SYN-ACK, ACKs, RSTs */
    c->rcv_nxt = f->rcv_nxt;
    c->peer_mss = f->peer_mss;
    c->peer_ws = f->peer_ws;
    c->our_ws = f->peer_ws >= 0 ? f->our_ws : 0;
    c->peer_wnd = f->peer_wnd;
    c->data = f->buf;
    c->len = f->len;
    c->fin = f->fin;
}

int repair_build(const struct repair_conn *c)
{
    if (c->peer_ws > 14 || c->our_ws > 14 || (c->peer_ws < 0 && c->our_ws) ||
        (c->len && !c->data) || !c->lport || !c->rport)
        return -EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return -errno;
    int rc;
    /* repair mode first: the socket closes without a packet if anything
     * below fails. Binding next to kvgated's listener on the same port
     * takes SO_REUSEPORT on both, and the same owner (repair mode's own
     * forced reuse no longer passes a listener, kernel 6.18) */
    if ((rc = iopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON)) ||
        (rc = iopt(fd, SOL_SOCKET, SO_REUSEADDR, 1)) ||
        (rc = iopt(fd, SOL_SOCKET, SO_REUSEPORT, 1)))
        goto fail;
    if (c->len > RCVBUF_AT) { /* room for what is restored, beyond tcp_rmem's default */
        int want = c->len > (1u << 28) ? 1 << 29 : (int)c->len * 2 + (1 << 17);
        if ((rc = iopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, want)) &&
            (rc = iopt(fd, SOL_SOCKET, SO_RCVBUF, want)))
            goto fail;
    }
    struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = c->lport,
                             .sin_addr.s_addr = c->laddr};
    struct sockaddr_in ra = {.sin_family = AF_INET, .sin_port = c->rport,
                             .sin_addr.s_addr = c->raddr};
    if (bind(fd, (struct sockaddr *)&la, sizeof(la))) {
        rc = -errno;
        goto fail;
    }
    /* the sequence numbers, before connect: ours at iss + 1, the client's
     * where the buffered bytes begin (the restore moves it on) */
    uint32_t rcv_start = c->rcv_nxt - c->len - (c->fin ? 1 : 0);
    if ((rc = iopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE)) ||
        (rc = sopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &c->snd_nxt, sizeof(c->snd_nxt))) ||
        (rc = iopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) ||
        (rc = sopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &rcv_start, sizeof(rcv_start))))
        goto fail;
    /* in repair mode connect sends nothing: the socket is ESTABLISHED */
    if (connect(fd, (struct sockaddr *)&ra, sizeof(ra))) {
        rc = -errno;
        goto fail;
    }
    /* what the handshake agreed: MSS and window scale, nothing else (the
     * worker's SYN-ACK offered neither timestamps nor SACK) */
    struct tcp_repair_opt o[2];
    int no = 0;
    o[no].opt_code = TCPOPT_MAXSEG;
    o[no++].opt_val = c->peer_mss ? c->peer_mss : 536;
    if (c->peer_ws >= 0) {
        o[no].opt_code = TCPOPT_WINDOW;
        o[no++].opt_val = (uint32_t)c->peer_ws | (uint32_t)c->our_ws << 16;
    }
    if ((rc = sopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, o, (socklen_t)(no * sizeof(o[0])))))
        goto fail;
    if ((rc = iopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE)) ||
        (rc = restore_rcvq(fd, c->data, c->len)) ||
        (rc = iopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE)) ||
        (rc = restore_window(fd, c)))
        goto fail;
    return fd;
fail:
    repair_abort(fd);
    return rc;
}

int repair_finish(int fd)
{
    if (iopt(fd, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF))
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as kvgated's listener's */
    return 0;
}

/* ---- is the socket still there: NETLINK_SOCK_DIAG ---- */

int repair_diag_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    struct timeval tv = {0, 100000}; /* the answer is queued before sendto returns */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

int repair_sock_exists(int nlfd, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport)
{
    static __thread uint32_t seq;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    memset(&req, 0, sizeof(req));
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST; /* one socket, looked up exactly */
    req.nlh.nlmsg_seq = ++seq;
    req.r.sdiag_family = AF_INET;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_sport = lport;
    req.r.id.idiag_dport = rport;
    req.r.id.idiag_src[0] = laddr;
    req.r.id.idiag_dst[0] = raddr;
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    struct sockaddr_nl k = {.nl_family = AF_NETLINK};
    if (sendto(nlfd, &req, sizeof(req), 0, (struct sockaddr *)&k, sizeof(k)) < 0)
        return -errno;
    for (int tries = 0; tries < 8; tries++) {
        union {
            struct nlmsghdr h;
            uint8_t b[4096];
        } buf;
        ssize_t n = recv(nlfd, &buf, sizeof(buf), 0);
        if (n < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        for (struct nlmsghdr *h = &buf.h; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != seq)
                continue; /* an answer to an earlier question that timed out */
            if (h->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(h);
                if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                    return -EBADMSG;
                return e->error == -ENOENT ? 0 : e->error ? e->error : -EBADMSG;
            }
            if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
                h->nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
                return -EBADMSG;
            /* the exact lookup falls back to a listener on the port: only
             * a socket with these very ends counts */
            const struct inet_diag_msg *m = NLMSG_DATA(h);
            return m->idiag_state != 10 /* TCP_LISTEN */ && m->id.idiag_dst[0] == raddr &&
                   m->id.idiag_dport == rport;
        }
    }
    return -EBADMSG;
}
