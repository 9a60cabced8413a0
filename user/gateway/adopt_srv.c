/* adopt_srv: kvgated's end of the hand-up channel (adopt_srv.h). */
#include "gateway/adopt_srv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "bypass/adopt.h"
#include "common/alloc.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "gateway/gateway.h"
#include "gateway/useqsrv.h"
#include "gateway/worker.h"

#define PEERS_MAX 16
#define RECV_BURST 64 /* packets read per readiness, then the loop turns */

/* Why a hand-up was refused (its descriptors closed). */
enum refusal {
    RF_BAD_MESSAGE,  /* does not decode, cut, or another version: the peer is closed too */
    RF_FDS,          /* no descriptor, or more than one */
    RF_NOT_TCP,      /* not a socket, or not an IPv4 TCP stream socket */
    RF_NOT_CONNECTED,/* listening, or not established / close-wait */
    RF_MISMATCH,     /* its ends are not the ones the message announced */
    RF_OVER_LIMIT,   /* kvgated's workers take no more now (queue full, stopping) */
    RF_N
};
static const char *const RF_NAMES[RF_N] = {"bad_message", "fds", "not_tcp", "not_connected",
                                           "mismatch", "over_limit"};

static struct {
    struct gw *g;
    struct useqsrv s;     /* the listener and the thread */
    int peers[PEERS_MAX]; /* connected workers' sockets, -1 free */
} A = {.s = {.lfd = -1}};

static atomic_uint_fast64_t c_peers_now, c_handups[ADOPT_C_MAX], c_refused[RF_N];

static inline void inc(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* Is fd the connected TCP socket m announced? RF_N when it is. */
static int check_socket(int fd, const struct adopt_msg *m)
{
    struct stat st;
    int v = 0;
    socklen_t l = sizeof(v);
    if (fstat(fd, &st) || !S_ISSOCK(st.st_mode))
        return RF_NOT_TCP;
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) || v != AF_INET)
        return RF_NOT_TCP;
    l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &l) || v != SOCK_STREAM)
        return RF_NOT_TCP;
    l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &l) || v != IPPROTO_TCP)
        return RF_NOT_TCP;
    l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &l) || v)
        return RF_NOT_CONNECTED;
    /* still in repair mode, the socket would take kvgated's writes into
     * its queues without sending them (reading it needs no privilege) */
    l = sizeof(v);
    if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &v, &l) || v)
        return RF_NOT_CONNECTED;
    struct tcp_info ti;
    l = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) ||
        (ti.tcpi_state != TCP_ESTABLISHED && ti.tcpi_state != TCP_CLOSE_WAIT))
        return RF_NOT_CONNECTED;
    struct sockaddr_in la, ra;
    socklen_t ll = sizeof(la), rl = sizeof(ra);
    if (getsockname(fd, (struct sockaddr *)&la, &ll) ||
        getpeername(fd, (struct sockaddr *)&ra, &rl) || ll != sizeof(la) || rl != sizeof(ra))
        return RF_NOT_CONNECTED;
    if (memcmp(&la.sin_addr, m->local_addr, 4) || ntohs(la.sin_port) != m->local_port ||
        memcmp(&ra.sin_addr, m->client_addr, 4) || ntohs(ra.sin_port) != m->client_port)
        return RF_MISMATCH;
    return RF_N;
}

static void close_fds(const int *fds, int n)
{
    for (int i = 0; i < n; i++)
        close(fds[i]);
}

static void peer_close(int k)
{
    ev_del(A.s.l, A.peers[k]);
    close(A.peers[k]);
    A.peers[k] = -1;
    atomic_fetch_sub(&c_peers_now, 1);
}

/* One hand-up: 0, or -1 when the peer must be closed (it broke the framing). */
static int on_handup(const uint8_t *buf, ssize_t n, int *fds, int nfds, int cut)
{
    struct adopt_msg m;
    if (cut == ADOPT_CUT_PACKET || n != ADOPT_MSG_LEN || adopt_decode(buf, (size_t)n, &m)) {
        close_fds(fds, nfds);
        inc(&c_refused[RF_BAD_MESSAGE]);
        return -1;
    }
    /* descriptors cut (more than one sent, or kvgated at its descriptor
     * limit): this hand-up fails, the channel is fine */
    if (nfds != 1 || cut == ADOPT_CUT_FDS) {
        close_fds(fds, nfds);
        inc(&c_refused[RF_FDS]);
        return 0;
    }
    int why = check_socket(fds[0], &m);
    if (why != RF_N) {
        close(fds[0]); /* a connection we refuse: the kernel ends it (RST if bytes are unread) */
        inc(&c_refused[why]);
        return 0;
    }
    int fl = fcntl(fds[0], F_GETFL);
    int one = 1;
    if (fl < 0 || fcntl(fds[0], F_SETFL, fl | O_NONBLOCK)) {
        close(fds[0]);
        inc(&c_refused[RF_NOT_TCP]);
        return 0;
    }
    setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (workers_adopt(fds[0], "handup")) { /* fd closed */
        inc(&c_refused[RF_OVER_LIMIT]);
        return 0;
    }
    inc(&c_handups[m.cause]);
    return 0;
}

static void on_peer(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    int k = (int)(intptr_t)arg;
    for (int i = 0; i < RECV_BURST; i++) {
        uint8_t buf[ADOPT_MSG_LEN + 1];
        int fds[ADOPT_FDS_MAX], nfds, cut;
        ssize_t n = adopt_recv(fd, buf, sizeof(buf), fds, &nfds, &cut);
        if (n == -EAGAIN)
            return;
        if (n <= 0 && !nfds) { /* the worker closed (or its socket failed) */
            peer_close(k);
            return;
        }
        if (on_handup(buf, n, fds, nfds, cut)) {
            peer_close(k);
            return;
        }
    }
}

static void on_accept(struct ev_loop *l, int lfd, uint32_t events, void *arg)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int k = 0;
        while (k < PEERS_MAX && A.peers[k] >= 0)
            k++;
        if (k == PEERS_MAX || ev_add(l, fd, EPOLLIN, on_peer, (void *)(intptr_t)k)) {
            close(fd);
            continue;
        }
        A.peers[k] = fd;
        atomic_fetch_add(&c_peers_now, 1);
    }
}

static void adopt_exit(void)
{
    for (int k = 0; k < PEERS_MAX; k++)
        if (A.peers[k] >= 0)
            peer_close(k); /* hand-ups still queued in them: the kernel closes those */
}

int adopt_srv_start(struct gw *g)
{
    if (!g->cfg.bypass_adopt_socket[0])
        return 0;
    if (A.s.started)
        return -EBUSY;
    A.g = g;
    for (int k = 0; k < PEERS_MAX; k++)
        A.peers[k] = -1;
    snprintf(A.s.path, sizeof(A.s.path), "%s", g->cfg.bypass_adopt_socket);
    A.s.what = "bypass.adopt_socket";
    A.s.thread_name = "kvgate-adopt";
    A.s.on_exit = adopt_exit;
    int rc = useqsrv_start(&A.s, PEERS_MAX, on_accept);
    if (rc)
        return rc;
    LOG_INFO("bypass hand-ups on %s", A.s.path);
    return 0;
}

void adopt_srv_stop(void)
{
    useqsrv_stop(&A.s);
}

void adopt_srv_metrics_render(struct sbuf *o)
{
    if (!A.s.started)
        return;
    prom_head(o, "kvgate_bypass_adopt_workers", "gauge",
              "Bypass workers (kvg-bypassd) connected to the hand-up channel.");
    sbuf_puts(o, "kvgate_bypass_adopt_workers");
    prom_value(o, (double)atomic_load(&c_peers_now));
    prom_head(o, "kvgate_bypass_handups_total", "counter",
              "Connections a bypass worker handed up (TCP_REPAIR) that kvgated adopted and "
              "serves per request, by the worker's cause.");
    for (unsigned i = 1; i < ADOPT_C_MAX; i++) {
        sbuf_printf(o, "kvgate_bypass_handups_total{cause=\"%s\"}", adopt_cause_name(i));
        prom_value(o, (double)atomic_load(&c_handups[i]));
    }
    prom_head(o, "kvgate_bypass_handups_refused_total", "counter",
              "Hand-ups refused, by reason (the descriptors closed; bad_message also closes "
              "the worker's connection).");
    for (int i = 0; i < RF_N; i++) {
        sbuf_printf(o, "kvgate_bypass_handups_refused_total{reason=\"%s\"}", RF_NAMES[i]);
        prom_value(o, (double)atomic_load(&c_refused[i]));
    }
}
