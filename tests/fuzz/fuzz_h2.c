/* libFuzzer target for kvgated's client connections: bytes from an
 * untrusted client into a worker's connection, which sniffs the HTTP/2
 * preface and then runs common/h2srv.c (nghttp2 server session) with the
 * client_h2.c stream callbacks, or client_h1.c (HTTP/1.1, which may
 * upgrade to h2c). The harness goes through the worker's own entry points
 * only: on_accept() on one end of a socketpair, the event loop, and the
 * worker's teardown, so it follows changes to the connection code.
 *
 * No pods are configured and the pod snapshot is empty, as in a kvgated
 * started without --pod: routed requests are answered by kvgated itself
 * (503), GET /health and /v1/models locally, others 404 / 405.
 *
 * Input: byte 0 is a set of flags, the rest is what the client sends.
 *   0x01  the HTTP/2 client preface is sent first
 *   0x02  framed: the rest is records [len:2 BE][type][flags][stream],
 *         each followed by up to len payload bytes, sent as HTTP/2 frames
 *         whose length field matches the payload (so mutations keep the
 *         framing and reach the frame handlers)
 *   0x04  the client half-closes (FIN) after its last byte
 *   0x08  header and idle timeouts of 1 ms, and time for them to fire
 *   0x70  write in pieces of 2^(k+1) bytes, k = (flags >> 4) & 7, each
 *         processed before the next (0: all at once)
 *   0x80  small limits: 64-byte bodies, 512-byte header lists
 * The event loop runs until the connection is quiet (nothing more comes
 * back, everything sent was read), then the worker is torn down as at
 * shutdown and everything is freed: a leak is a finding.
 * Seeds: tests/fuzz/corpus/h2/ (tests/fuzz/h2_seeds.py writes them). */
#include "gateway/worker.c"

#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <time.h>

#include "core/prefix_index.h"
#include "core/session.h"

enum {
    F_PREFACE = 0x01,
    F_FRAMED = 0x02,
    F_FIN = 0x04,
    F_TIMEOUTS = 0x08,
    F_SMALL = 0x80,
};

/* Loop passes per quiet wait. The seeds and what grew from them need at
 * most 5; a connection still busy after this many is a livelock (kvgated
 * spinning on its own timers or output without the client doing
 * anything): reported as a crash. */
#define MAX_SPINS 2000

static struct gw g_gw;
static int g_echo; /* FUZZ_H2_ECHO set: kvgated's answers go to stderr */
static struct gw_config g_defaults;

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    g_echo = getenv("FUZZ_H2_ECHO") != NULL;
    signal(SIGPIPE, SIG_IGN);
    gw_config_defaults(&g_defaults);
    g_defaults.index_max_entries = 4096; /* no pods: nothing is inserted */
    g_gw.cfg = g_defaults;
    pthread_mutex_init(&g_gw.policy_mu, NULL);
    g_gw.policies = g_gw.cfg.policies;
    g_gw.pidx = pidx_new(POD_MAX, g_gw.cfg.index_max_entries, 1024);
    g_gw.sessions = session_new(1u << 10);
    g_gw.metrics = gw_metrics_new();
    g_gw.rollout = rollout_new(&g_gw.cfg.rollout); /* as main.c: never NULL */
    g_gw.report = report_new();
    atomic_store(&g_gw.rng, 0x9E3779B97F4A7C15ull);
    if (!g_gw.pidx || !g_gw.sessions || !g_gw.metrics || !g_gw.rollout || !g_gw.report)
        abort();
    /* what control_start publishes when no pods are configured */
    struct pod_snapshot *s = snapshot_new(0);
    if (!s)
        abort();
    snapshot_publish(s);
}

/* ---- driving the loop ---- */

static void stop_cb(struct ev_loop *l, void *arg)
{
    ev_stop(l);
}

/* One pass of the loop: ready fds, then due timers (a timer at "now" set
 * before the pass fires in it and stops the loop). */
static void spin_once(struct ev_loop *l)
{
    uint64_t t = ev_timer_at(l, ev_now_ns(), stop_cb, NULL);
    ev_run(l);
    ev_timer_cancel(l, t);
}

/* Reads and drops what kvgated sent; 1 if anything came, -1 on EOF. */
static int drain_peer(int fd)
{
    char buf[65536];
    int got = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0) {
            got = 1;
            if (g_echo)
                fwrite(buf, 1, (size_t)n, stderr);
            continue;
        }
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? got : -1;
    }
}

/* Bytes we sent that kvgated has not read yet (0 once it closed). */
static int unread_by_gateway(int fd)
{
    int q = 0;
    if (ioctl(fd, SIOCOUTQ, &q) < 0)
        return 0;
    return q;
}

/* Runs the loop until the connection is quiet: three passes in a row with
 * nothing new from kvgated and nothing of ours left unread (zero-delay
 * timers, such as a kick or the reaper, run in those passes). */
static void run_until_quiet(struct ev_loop *l, int fd, int *peer_gone)
{
    int quiet = 0, i;
    for (i = 0; i < MAX_SPINS && quiet < 3; i++) {
        spin_once(l);
        int r = *peer_gone ? 0 : drain_peer(fd);
        if (r < 0) {
            *peer_gone = 1;
            r = 0;
        }
        if (r || unread_by_gateway(fd))
            quiet = 0;
        else
            quiet++;
    }
    if (quiet < 3) {
        fprintf(stderr, "fuzz_h2: the connection is still busy after %d loop passes\n", i);
        abort();
    }
}

/* Writes all of p (the socket may fill: the loop runs in between). */
static void send_all(struct ev_loop *l, int fd, const uint8_t *p, size_t n,
                     int *peer_gone)
{
    while (n && !*peer_gone) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
            *peer_gone = 1; /* kvgated closed: what is left goes nowhere */
        }
        run_until_quiet(l, fd, peer_gone);
    }
}

/* framed input -> HTTP/2 frames with consistent lengths */
static size_t build_frames(const uint8_t *in, size_t n, uint8_t *out)
{
    size_t o = 0;
    while (n >= 5) {
        size_t len = (size_t)in[0] << 8 | in[1];
        uint8_t type = in[2], flags = in[3], sid = in[4];
        in += 5;
        n -= 5;
        if (len > n)
            len = n;
        out[o++] = (uint8_t)(len >> 16);
        out[o++] = (uint8_t)(len >> 8);
        out[o++] = (uint8_t)len;
        out[o++] = type;
        out[o++] = flags;
        out[o++] = 0;
        out[o++] = 0;
        out[o++] = 0;
        out[o++] = sid;
        memcpy(out + o, in, len);
        o += len;
        in += len;
        n -= len;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    if (size < 1)
        return 0;
    init_once();
    uint8_t fl = data[0];
    data++;
    size--;

    g_gw.cfg = g_defaults;
    if (fl & F_TIMEOUTS)
        g_gw.cfg.header_timeout_ms = g_gw.cfg.idle_timeout_ms = 1;
    if (fl & F_SMALL) {
        g_gw.cfg.max_body_bytes = 64;
        g_gw.cfg.max_header_bytes = 512;
    }

    /* what the client sends */
    uint8_t *msg = malloc(24 + size + (size / 5 + 1) * 9);
    if (!msg)
        return 0;
    size_t mlen = 0;
    if (fl & F_PREFACE) {
        memcpy(msg, preface, 24);
        mlen = 24;
    }
    if (fl & F_FRAMED) {
        mlen += build_frames(data, size, msg + mlen);
    } else {
        memcpy(msg + mlen, data, size);
        mlen += size;
    }

    struct worker w;
    memset(&w, 0, sizeof(w));
    w.ls.arg = &w;
    int sv[2];
    if (worker_init(&w, &g_gw, 0) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof(sa));
    struct sockaddr_in *sin = (struct sockaddr_in *)&sa;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(40000);
    sin->sin_addr.s_addr = htonl(0x7f000001);
    on_accept(&w.ls, sv[0], &sa, sizeof(*sin)); /* the worker owns sv[0] now */

    int gone = 0;
    size_t piece = (fl >> 4) & 7 ? (size_t)1 << (((fl >> 4) & 7) + 1) : mlen;
    for (size_t off = 0; off < mlen && !gone; off += piece) {
        size_t k = mlen - off < piece ? mlen - off : piece;
        send_all(w.wc.l, sv[1], msg + off, k, &gone);
    }
    run_until_quiet(w.wc.l, sv[1], &gone);
    if ((fl & F_FIN) && !gone) {
        shutdown(sv[1], SHUT_WR);
        run_until_quiet(w.wc.l, sv[1], &gone);
    }
    if (fl & F_TIMEOUTS) {
        /* the 1 ms deadlines, and those armed when they fire */
        for (int i = 0; i < 2; i++) {
            struct timespec ts = { 0, 2 * 1000 * 1000 };
            nanosleep(&ts, NULL);
            run_until_quiet(w.wc.l, sv[1], &gone);
        }
    }

    worker_teardown(&w); /* as at shutdown: every connection failed, reaped */
    if (w.wc.conns || w.wc.gy.head || atomic_load(&g_gw.conns) != 0 ||
        atomic_load(&g_gw.body_bytes) != 0)
        abort(); /* teardown left something behind */
    worker_free(&w);
    close(sv[1]);
    free(msg);
    return 0;
}
