/* Unit tests for user/bypass/repair.c: the hand-up's kernel socket.
 *
 * In a network namespace of its own (unshare: root only, else skipped
 * with 77), with timestamps and SACK off as the worker's SYN-ACK leaves
 * them: a real kernel handshake on loopback, the server's side read the
 * first flight (as the worker buffers it), its state taken (sequence
 * numbers, scales, MSS, the client's window) and the socket dropped
 * without a packet; repair_build then makes a new socket from that state
 * and the buffered bytes, bound over a listener on the same port. The
 * client never notices: the restored bytes are read first, then what it
 * sends next; answers flow back; a second request on the connection too.
 * Also: 300 KB and 1 MiB restored, no window scaling, a FIN already taken,
 * the sock_diag lookup, a refused build, and the tcpep conversion. */
#include "bypass/repair.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

static int sysctl_set(const char *name, const char *v)
{
    char p[128];
    snprintf(p, sizeof(p), "/proc/sys/net/ipv4/%s", name);
    int fd = open(p, O_WRONLY);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, v, strlen(v));
    close(fd);
    return n == (ssize_t)strlen(v) ? 0 : -1;
}

static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq r;
    memset(&r, 0, sizeof(r));
    snprintf(r.ifr_name, sizeof(r.ifr_name), "lo");
    int rc = s < 0 || ioctl(s, SIOCGIFFLAGS, &r) ? -1 : 0;
    r.ifr_flags |= IFF_UP;
    if (!rc)
        rc = ioctl(s, SIOCSIFFLAGS, &r);
    if (s >= 0)
        close(s);
    return rc;
}

static void blocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

static int recv_all(int fd, uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return -1;
        p += k, n -= (size_t)k;
    }
    return 0;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* A connection on loopback whose server side became a repaired socket.
 * first: the first flight the client sends (and the server reads, as the
 * worker would); fin: the client half-closes after it. */
struct conn {
    int ls, cl, sv;       /* listener (kept: the repaired socket binds over it), client, server */
    struct repair_conn rc;
    int build_rc;
};

static struct conn make(const uint8_t *first, size_t n, int fin, int big)
{
    struct conn c = {.ls = -1, .cl = -1, .sv = -1, .build_rc = -1};
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    c.ls = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1, buf = 8 << 20;
    setsockopt(c.ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(c.ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)); /* as kvgated's */
    if (big) /* a window that takes the whole first flight */
        setsockopt(c.ls, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
    if (bind(c.ls, (struct sockaddr *)&a, sizeof(a)) || listen(c.ls, 8) ||
        getsockname(c.ls, (struct sockaddr *)&a, &al))
        return c;
    c.cl = socket(AF_INET, SOCK_STREAM, 0);
    if (big)
        setsockopt(c.cl, SOL_SOCKET, SO_SNDBUFFORCE, &buf, sizeof(buf));
    blocking(c.cl);
    if (connect(c.cl, (struct sockaddr *)&a, sizeof(a)))
        return c;
    c.sv = accept(c.ls, NULL, NULL);
    if (c.sv < 0)
        return c;
    blocking(c.sv);
    uint8_t *got = malloc(n ? n : 1);
    if (send_all(c.cl, first, n) || (fin && shutdown(c.cl, SHUT_WR)) || recv_all(c.sv, got, n)) {
        free(got);
        return c;
    }
    if (fin) { /* the server saw the FIN: rcv_nxt counts it */
        char x;
        if (recv(c.sv, &x, 1, 0) != 0) {
            free(got);
            return c;
        }
    }
    /* the server's state, as the worker holds it */
    struct repair_conn *r = &c.rc;
    struct sockaddr_in sa, ca;
    socklen_t sl = sizeof(sa), cl = sizeof(ca);
    getsockname(c.sv, (struct sockaddr *)&sa, &sl);
    getpeername(c.sv, (struct sockaddr *)&ca, &cl);
    r->laddr = sa.sin_addr.s_addr, r->lport = sa.sin_port;
    r->raddr = ca.sin_addr.s_addr, r->rport = ca.sin_port;
    int on = 1, q;
    setsockopt(c.sv, IPPROTO_TCP, TCP_REPAIR, &on, sizeof(on));
    socklen_t l = sizeof(uint32_t);
    q = TCP_SEND_QUEUE;
    setsockopt(c.sv, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
    getsockopt(c.sv, IPPROTO_TCP, TCP_QUEUE_SEQ, &r->snd_nxt, &l);
    q = TCP_RECV_QUEUE;
    setsockopt(c.sv, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
    l = sizeof(uint32_t);
    getsockopt(c.sv, IPPROTO_TCP, TCP_QUEUE_SEQ, &r->rcv_nxt, &l);
    struct tcp_info ti;
    l = sizeof(ti);
    getsockopt(c.sv, IPPROTO_TCP, TCP_INFO, &ti, &l);
    r->peer_ws = (ti.tcpi_options & TCPI_OPT_WSCALE) ? (int8_t)ti.tcpi_snd_wscale : -1;
    r->our_ws = (ti.tcpi_options & TCPI_OPT_WSCALE) ? ti.tcpi_rcv_wscale : 0;
    r->peer_mss = (uint16_t)ti.tcpi_snd_mss;
    struct tcp_repair_window w;
    l = sizeof(w);
    getsockopt(c.sv, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &l);
    r->peer_wnd = w.snd_wnd;
    r->data = got;
    r->len = (uint32_t)n;
    r->fin = (uint8_t)fin;
    repair_abort(c.sv); /* gone without a packet, as if it had never been the kernel's */
    c.sv = repair_build(r);
    c.build_rc = c.sv < 0 ? c.sv : repair_finish(c.sv);
    free(got);
    r->data = NULL;
    if (c.sv >= 0)
        blocking(c.sv);
    return c;
}

static void done(struct conn *c)
{
    if (c->cl >= 0)
        close(c->cl);
    if (c->sv >= 0)
        close(c->sv);
    if (c->ls >= 0)
        close(c->ls);
}

/* The restored flight first, then n2 more bytes; an answer of n3 bytes
 * back; then a second request and answer on the same connection. */
static void exchange_checks(size_t n1, int big)
{
    size_t n2 = 5000, n3 = 200000;
    uint8_t *a = malloc(n1), *b = malloc(n2), *ans = malloc(n3), *got = malloc(n1 + n3);
    fill(a, n1, 1), fill(b, n2, 2), fill(ans, n3, 3);
    struct conn c = make(a, n1, 0, big);
    CHECK_EQ(c.build_rc, 0);
    if (c.build_rc) {
        fprintf(stderr, "  build: %s\n", strerror(-c.build_rc));
        goto out;
    }
    CHECK_EQ(send_all(c.cl, b, n2), 0);
    CHECK_EQ(recv_all(c.sv, got, n1), 0);
    CHECK(!memcmp(got, a, n1)); /* the restored bytes first */
    CHECK_EQ(recv_all(c.sv, got, n2), 0);
    CHECK(!memcmp(got, b, n2)); /* then what came after the hand-up */
    CHECK_EQ(send_all(c.sv, ans, n3), 0);
    CHECK_EQ(recv_all(c.cl, got, n3), 0);
    CHECK(!memcmp(got, ans, n3));
    /* a second request and its answer */
    CHECK_EQ(send_all(c.cl, a, n1 < 20000 ? n1 : 20000), 0);
    CHECK_EQ(recv_all(c.sv, got, n1 < 20000 ? n1 : 20000), 0);
    CHECK(!memcmp(got, a, n1 < 20000 ? n1 : 20000));
    CHECK_EQ(send_all(c.sv, ans, 1000), 0);
    CHECK_EQ(recv_all(c.cl, got, 1000), 0);
    /* the client closes: the adopted socket sees its FIN */
    shutdown(c.cl, SHUT_WR);
    char x;
    CHECK_EQ(recv(c.sv, &x, 1, 0), 0);
    struct tcp_info ti;
    socklen_t l = sizeof(ti);
    getsockopt(c.cl, IPPROTO_TCP, TCP_INFO, &ti, &l);
    CHECK_EQ(ti.tcpi_retransmits, 0);
out:
    done(&c);
    free(a), free(b), free(ans), free(got);
}

TEST(small_flight_both_ways) { exchange_checks(3000, 0); }
TEST(flight_300k) { exchange_checks(300 * 1024, 1); }
TEST(flight_1m) { exchange_checks(1 << 20, 1); }

TEST(no_window_scaling)
{
    sysctl_set("tcp_window_scaling", "0");
    uint8_t a[700];
    fill(a, sizeof(a), 4);
    struct conn c = make(a, sizeof(a), 0, 0);
    CHECK_EQ(c.build_rc, 0);
    CHECK_EQ(c.rc.peer_ws, -1);
    if (!c.build_rc) {
        uint8_t got[sizeof(a)];
        CHECK_EQ(send_all(c.cl, (const uint8_t *)"xy", 2), 0);
        CHECK_EQ(recv_all(c.sv, got, sizeof(a)), 0);
        CHECK(!memcmp(got, a, sizeof(a)));
        CHECK_EQ(recv_all(c.sv, got, 2), 0);
        CHECK(!memcmp(got, "xy", 2));
        CHECK_EQ(send_all(c.sv, a, sizeof(a)), 0);
        CHECK_EQ(recv_all(c.cl, got, sizeof(a)), 0);
    }
    done(&c);
    sysctl_set("tcp_window_scaling", "1");
}

/* The client half-closed after its request and the worker took the FIN:
 * the adopted socket still reads the request and its answer reaches the
 * client, and closing ends the connection for the client. */
TEST(fin_taken)
{
    uint8_t a[1200];
    fill(a, sizeof(a), 5);
    struct conn c = make(a, sizeof(a), 1, 0);
    CHECK_EQ(c.build_rc, 0);
    if (!c.build_rc) {
        uint8_t got[sizeof(a)];
        CHECK_EQ(recv_all(c.sv, got, sizeof(a)), 0);
        CHECK(!memcmp(got, a, sizeof(a)));
        CHECK_EQ(send_all(c.sv, a, 500), 0);
        CHECK_EQ(recv_all(c.cl, got, 500), 0);
        close(c.sv);
        c.sv = -1;
        char x;
        CHECK_EQ(recv(c.cl, &x, 1, 0), 0); /* the client sees the end */
    }
    done(&c);
}

TEST(diag_lookup)
{
    uint8_t a[100];
    fill(a, sizeof(a), 6);
    struct conn c = make(a, sizeof(a), 0, 0);
    CHECK_EQ(c.build_rc, 0);
    int nl = repair_diag_open();
    CHECK(nl >= 0);
    CHECK_EQ(repair_sock_exists(nl, c.rc.laddr, c.rc.lport, c.rc.raddr, c.rc.rport), 1);
    /* the listener on the same port does not count as the connection */
    CHECK_EQ(repair_sock_exists(nl, c.rc.laddr, c.rc.lport, c.rc.raddr, htons(1)), 0);
    CHECK_EQ(repair_sock_exists(nl, htonl(0x7f000002), htons(9), c.rc.raddr, htons(2)), 0);
    /* both closed: the client's reset removes everything */
    struct linger lg = {1, 0};
    setsockopt(c.sv, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c.sv);
    c.sv = -1;
    usleep(20000);
    CHECK_EQ(repair_sock_exists(nl, c.rc.laddr, c.rc.lport, c.rc.raddr, c.rc.rport), 0);
    close(nl);
    done(&c);
}

TEST(refused_builds)
{
    struct repair_conn r;
    memset(&r, 0, sizeof(r));
    r.laddr = htonl(0x0AFFFF01); /* not an address of this namespace */
    r.raddr = htonl(INADDR_LOOPBACK);
    r.lport = htons(8000), r.rport = htons(40000);
    r.peer_mss = 1460, r.peer_ws = 7, r.our_ws = 7;
    CHECK_EQ(repair_build(&r), -EADDRNOTAVAIL);
    r.laddr = htonl(INADDR_LOOPBACK);
    r.peer_ws = 15;
    CHECK_EQ(repair_build(&r), -EINVAL);
    r.peer_ws = -1; /* a scale of ours without the client's */
    CHECK_EQ(repair_build(&r), -EINVAL);
    r.our_ws = 0;
    r.len = 10; /* bytes without a buffer */
    CHECK_EQ(repair_build(&r), -EINVAL);
}

TEST(from_tcpep)
{
    struct tcpseq_tuple t = {.saddr = htonl(0x0A000001), .daddr = htonl(0x0A000002),
                             .sport = htons(40100), .dport = htons(8000)};
    uint8_t buf[3] = {1, 2, 3};
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    f.iss = 0xFFFFFFFFu; /* wraps */
    f.irs = 1000;
    f.rcv_nxt = 1004;
    f.peer_mss = 1400;
    f.peer_ws = 9;
    f.our_ws = 7;
    f.peer_wnd = 64000 << 9;
    f.buf = buf;
    f.len = 3;
    struct repair_conn r;
    repair_conn_from_tcpep(&r, &t, &f);
    CHECK_EQ(r.laddr, t.daddr);
    CHECK_EQ(r.lport, t.dport);
    CHECK_EQ(r.raddr, t.saddr);
    CHECK_EQ(r.rport, t.sport);
    CHECK_EQ(r.snd_nxt, 0);
    CHECK_EQ(r.rcv_nxt, 1004);
    CHECK_EQ(r.rcv_nxt - r.len, f.irs + 1); /* the flight starts right after the SYN */
    CHECK_EQ(r.peer_mss, 1400);
    CHECK_EQ(r.peer_ws, 9);
    CHECK_EQ(r.our_ws, 7);
    CHECK_EQ(r.peer_wnd, 64000u << 9);
    CHECK(r.data == buf);
    f.peer_ws = -1; /* no scaling: none of ours either */
    repair_conn_from_tcpep(&r, &t, &f);
    CHECK_EQ(r.our_ws, 0);
}

int main(void)
{
    RUN(from_tcpep);
    if (geteuid() != 0 || unshare(CLONE_NEWNET) || lo_up()) {
        harness_done();
        printf("skipped: TCP_REPAIR tests need root and a network namespace (%s)\n",
               strerror(errno));
        return 77;
    }
    /* as the worker's SYN-ACK: no timestamps, no SACK */
    if (sysctl_set("tcp_timestamps", "0") || sysctl_set("tcp_sack", "0")) {
        printf("skipped: cannot set tcp_timestamps / tcp_sack in the namespace\n");
        return 77;
    }
    RUN(small_flight_both_ways);
    RUN(flight_300k);
    RUN(flight_1m);
    RUN(no_window_scaling);
    RUN(fin_taken);
    RUN(diag_lookup);
    RUN(refused_builds);
    return harness_done();
}
