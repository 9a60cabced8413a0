/* splice: session flows spliced client <-> pod in the kernel. See splice.h;
 * the verdict and its reasoning are in bpf/splice.bpf.c.
 *
 * Life of a flow (struct splice, one per client connection, c->sp):
 *
 *   (none) --an eligible request is routed--> NONE, in the map
 *       the client socket enters kvg_sock in PASS mode (its bytes still come
 *       up to kvgated, through the psock)
 *   --its answer is complete--> SPLICED
 *       the exchange's upstream conn is kept as the dedicated one, watched
 *       by pod_io; before the answer's last bytes go out,
 *       the pod socket enters kvg_sock (SPLICE), the client's cfg gets a new
 *       epoch in SPLICE mode: the verdict adopts it with the next skb, the
 *       first of the next request (kvgated consumed all the client sent).
 *   SPLICED --client bytes come up at a request boundary--> NONE
 *       (the verdict handed a request up, or the client was quicker than
 *       the splice): the pod socket leaves the map and is closed, the client
 *       cfg goes back to PASS, the bytes are served on the socket path
 *       (routed afresh). The client socket stays in kvg_sock in PASS mode
 *       (deleting a socket from a sockmap drops whatever its psock queued
 *       for us: sk_psock_drop() purges its ingress queue), and
 *       the next eligible exchange may splice it again.
 *   SPLICED --over the budget inside a request body--> BODY
 *       kvgated relays exactly the rest of that body to the pod (bounded
 *       buffer, after the kernel's redirected bytes reached the pod's TCP),
 *       the answer stays spliced; then SPLICED again (a new SPLICE epoch).
 *   SPLICED / BODY --bytes come up otherwise inside a request or answer,
 *       or more than the body (pipelining), or an EOF in BODY--> RAW
 *       both cfgs go RAW; kvgated relays both directions as bytes with
 *       bounded buffers, after the kernel's redirected bytes reached the
 *       destination's TCP (so nothing is re-ordered), to the end.
 *   SPLICED / RAW --close, error, idle--> gone (cconn_fail, splice_conn_gone)
 *
 * Half-close while SPLICED: a client FIN is passed to the pod (shutdown
 * SHUT_WR) only once the pod's TCP acknowledged every byte redirected to it
 * (tcpi_bytes_acked against the verdict's counter); an EOF from the pod
 * likewise. A 1 ms timer polls while such a wait runs; otherwise the timer
 * checks idleness every limits.idle_timeout_ms. */
#include "gateway/splice.h"

#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked (glibc's is older) */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "common/ev.h"
#include "common/sbuf.h"
#include "gateway/bpf.h"
#include "gateway/dataplane.h"
#include "kvgate.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define WAIT_TICK_NS 1000000ull          /* half-close / ordering waits poll at 1 ms */
#define WAIT_MAX_NS (60ull * 1000000000) /* ... and give up after a minute */
#define RAW_SETTLE_NS 2000000ull         /* a verdict still running on the old cfg */
#define IDLE_CLOSE_NS 1000000000ull      /* a pod quiet this long then closing: idle close */

enum { SP_NONE, SP_HELD, SP_SPLICED, SP_BODY, SP_RAW };

struct splice {
    struct cconn *c;
    struct upconn *up;          /* dedicated pod conn (HELD, SPLICED, RAW) */
    int state;
    uint32_t slot;              /* pod slot */
    uint64_t ck_c, ck_p;        /* socket cookies (keys in the maps) */
    int c_in_map, p_in_map;
    uint32_t epoch_c, epoch_p;
    uint64_t base_c2p, base_p2c;/* cfg.peer_base written for the client / the pod */
    int settled;                /* SPLICED and kvgated's last answer bytes are out */
    int c_eof, p_eof;           /* read side ended */
    int c_shut, p_shut;         /* we shut its write side */
    uint64_t timer;
    uint64_t wait_since;
    uint64_t idle_mark;
    /* RAW */
    uint64_t raw_since;
    uint64_t raw_moved;         /* bytes relayed (idleness) */
    uint64_t body_left;         /* BODY: request bytes still to relay to the pod */
    int ordered_c2p, ordered_p2c; /* the kernel's redirected bytes reached TCP */
    int idle_armed;             /* RAW: the timer watches idleness */
    struct sbuf c2p, p2c;
    size_t c2p_off, p2c_off;
};

/* ---- process-wide state ---- */

static int g_on;                 /* splice verdict attached, not turned off */
static int fd_sock = -1, fd_cfg = -1, fd_st = -1, fd_pods = -1;
static uint64_t g_budget = KVG_SPLICE_BUDGET_DEFAULT;

/* unsplice causes: the verdict's hand-up reasons, then kvgated's own */
static const char *const USER_CAUSES[] = {
    "client_data",   /* the client sent before the splice took effect */
    "client_closed", /* the client closed (or reset) a spliced connection */
    "pod_closed",    /* the pod closed or reset the dedicated connection */
    "idle_timeout",  /* no byte either way for limits.idle_timeout_ms */
    "error",         /* a map update or socket call failed */
    "shutdown",      /* kvgated stopping */
};
enum { UC_CLIENT_DATA = KVG_SPL_REASON_MAX, UC_CLIENT_CLOSED, UC_POD_CLOSED, UC_IDLE,
       UC_ERROR, UC_SHUTDOWN, UC__END };
static atomic_uint_fast64_t g_unsplices[UC__END];
static atomic_int_fast64_t g_active;
static atomic_uint_fast64_t g_total;

static const char *cause_name(unsigned c)
{
    if (c < KVG_SPL_REASON_MAX)
        return gwbpf_splice_reason_name(c);
    if (c < UC__END)
        return USER_CAUSES[c - KVG_SPL_REASON_MAX];
    return "other";
}

void splice_init(struct gw *g, struct gwbpf *b)
{
    g_on = 0;
    if (!b || g->cfg.splice_mode == GW_SPLICE_OFF || !gwbpf_splice_ok(b, NULL))
        return;
    fd_sock = gwbpf_map_fd(b, KVG_MAP_SOCK);
    fd_cfg = gwbpf_map_fd(b, KVG_MAP_FLOW_CFG);
    fd_st = gwbpf_map_fd(b, KVG_MAP_FLOW_ST);
    fd_pods = gwbpf_map_fd(b, KVG_MAP_PODS);
    g_budget = g->cfg.splice_budget;
    g_on = fd_sock >= 0 && fd_cfg >= 0 && fd_st >= 0;
}

int splice_enabled_for(struct gw *g, const char *model)
{
    if (!g_on)
        return 0;
    int mode = g->cfg.splice_mode;
    for (uint32_t i = 0; i < g->cfg.nsplice_models; i++)
        if (!strcmp(g->cfg.splice_models[i].model, model)) {
            mode = g->cfg.splice_models[i].mode;
            break;
        }
    if (mode != GW_SPLICE_AUTO)
        return mode == GW_SPLICE_ON;
    /* auto: only where nothing needs to see each request. Shadow and
     * canary compare policies per request; round-robin, least-request and
     * random do not pin sessions to a pod. */
    struct policy_cfg p;
    pthread_mutex_lock(&g->policy_mu);
    p = g->policies.global;
    for (uint32_t i = 0; i < g->policies.noverrides; i++)
        if (!strcmp(g->policies.overrides[i].model, model)) {
            p = g->policies.overrides[i].policy;
            break;
        }
    pthread_mutex_unlock(&g->policy_mu);
    return p.mode == POLICY_PREFIX_AWARE && !p.shadow && p.canary_pct >= 100;
}

/* ---- sockets ---- */

static int cookie(int fd, uint64_t *out)
{
    socklen_t l = sizeof(*out);
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, &l) ? -errno : 0;
}

/* Bytes the socket's TCP acknowledged (acked) and took (acked + queued). */
static int tcp_counts(int fd, uint64_t *acked, uint64_t *taken)
{
    struct tcp_info ti;
    socklen_t l = sizeof(ti);
    int q = 0;
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0 || ioctl(fd, SIOCOUTQ, &q) < 0)
        return -errno;
    if (acked)
        *acked = ti.tcpi_bytes_acked;
    if (taken)
        *taken = ti.tcpi_bytes_acked + (uint64_t)(q > 0 ? q : 0);
    return 0;
}

static int inq(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCINQ, &n) < 0 ? -1 : n;
}

static int st_get(uint64_t ck, struct kvg_flow_st *st)
{
    memset(st, 0, sizeof(*st));
    return bpf_map_lookup_elem(fd_st, &ck, st) ? -errno : 0;
}

static int cfg_put(uint64_t ck, const struct kvg_flow_cfg *cfg, uint64_t flags)
{
    return bpf_map_update_elem(fd_cfg, &ck, cfg, flags) ? -errno : 0;
}

/* Puts fd into kvg_sock with zeroed state and the given cfg. */
static int map_in(int fd, uint64_t ck, const struct kvg_flow_cfg *cfg)
{
    struct kvg_flow_st zero;
    memset(&zero, 0, sizeof(zero));
    zero.epoch = cfg->epoch;
    zero.state = cfg->mode == KVG_MODE_SPLICE ? KVG_FST_SPLICED : KVG_FST_PASS;
    uint64_t v = (uint64_t)fd;
    if (bpf_map_update_elem(fd_st, &ck, &zero, BPF_ANY) || cfg_put(ck, cfg, BPF_ANY))
        goto fail;
    if (bpf_map_update_elem(fd_sock, &ck, &v, BPF_NOEXIST))
        goto fail;
    return 0;
fail:;
    int e = errno;
    bpf_map_delete_elem(fd_cfg, &ck);
    bpf_map_delete_elem(fd_st, &ck);
    return -e;
}

static void map_out(uint64_t ck, int sock_too)
{
    if (sock_too)
        bpf_map_delete_elem(fd_sock, &ck);
    bpf_map_delete_elem(fd_cfg, &ck);
    bpf_map_delete_elem(fd_st, &ck);
}

/* ---- lifetime ---- */

static void timer_cb(struct ev_loop *l, void *arg);
static void pod_io(struct ev_loop *l, int fd, uint32_t ev, void *arg);

static void arm(struct splice *sp, uint64_t in_ns)
{
    struct ev_loop *l = sp->c->w->l;
    ev_timer_cancel(l, sp->timer);
    sp->timer = ev_timer_at(l, ev_now_ns() + in_ns, timer_cb, sp);
}

static uint64_t idle_ns(struct cconn *c)
{
    uint32_t ms = c->w->g->cfg.idle_timeout_ms ? c->w->g->cfg.idle_timeout_ms : 60000;
    return (uint64_t)ms * 1000000ull;
}

static void count_unsplice(unsigned cause)
{
    if (cause < UC__END)
        atomic_fetch_add(&g_unsplices[cause], 1);
}

/* The pod conn leaves the map and goes back to the pool (idle, clean:
 * at a request boundary nothing of the flow is under way on it). */
static void repool_pod(struct splice *sp)
{
    if (!sp->up)
        return;
    if (sp->p_in_map)
        map_out(sp->ck_p, 1); /* a normal TCP socket again */
    sp->p_in_map = 0;
    up_repool(sp->up);
    sp->up = NULL;
}

static void drop_pod(struct splice *sp)
{
    if (!sp->up)
        return;
    if (sp->p_in_map)
        map_out(sp->ck_p, 1);
    sp->p_in_map = 0;
    up_kill(sp->up); /* closes the fd: the kernel also drops it from kvg_sock */
    sp->up = NULL;
}

void splice_conn_gone(struct cconn *c)
{
    struct splice *sp = c->sp;
    if (!sp)
        return;
    c->sp = NULL;
    if (sp->state == SP_SPLICED || sp->state == SP_BODY) {
        atomic_fetch_sub(&g_active, 1);
        count_unsplice(c->w->stopping ? UC_SHUTDOWN : UC_CLIENT_CLOSED);
    }
    ev_timer_cancel(c->w->l, sp->timer);
    drop_pod(sp);
    if (sp->c_in_map)
        map_out(sp->ck_c, 0); /* the socket leaves kvg_sock when cconn_fail closes it */
    sbuf_free(&sp->c2p);
    sbuf_free(&sp->p2c);
    free(sp);
}

/* Ends the connection (both sockets). sp is freed: return at once. */
static void teardown(struct splice *sp, unsigned cause)
{
    struct cconn *c = sp->c;
    if (sp->state == SP_SPLICED || sp->state == SP_BODY) {
        atomic_fetch_sub(&g_active, 1);
        count_unsplice(cause);
        sp->state = SP_NONE; /* counted once */
    }
    cconn_fail(c); /* -> splice_conn_gone */
}

/* ---- entering the map, holding, splicing ---- */

static int eligible(struct xreq *x)
{
    struct cconn *c = x->c;
    return g_on && !x->sid && c->proto == CP_H1 && x->keep_alive && x->r.session[0] &&
           !c->nc.dead && !c->nc.closing && !c->nc.in.len && !x->w->stopping &&
           (!c->sp || c->sp->state == SP_NONE) && splice_enabled_for(x->w->g, x->r.model);
}

/* The client socket enters kvg_sock in PASS mode: its bytes still come up
 * to kvgated, but the verdict frames its requests from the next byte on.
 * Done while the client waits for an answer (nothing of it unread:
 * checked), so that byte is the first of its next request. */
static struct splice *enter_map(struct cconn *c)
{
    uint64_t ck;
    if (c->sp)
        return c->sp;
    if (inq(c->nc.fd) != 0 || cookie(c->nc.fd, &ck) < 0)
        return NULL;
    struct splice *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->c = c;
    sp->ck_c = ck;
    sbuf_init(&sp->c2p);
    sbuf_init(&sp->p2c);
    struct kvg_flow_cfg cfg = {.dir = KVG_DIR_C2P, .mode = KVG_MODE_PASS, .epoch = 1};
    if (map_in(c->nc.fd, ck, &cfg) < 0) {
        free(sp);
        return NULL;
    }
    sp->epoch_c = 1;
    sp->c_in_map = 1;
    c->sp = sp;
    return sp;
}

void splice_prepare(struct xreq *x)
{
    if (eligible(x))
        enter_map(x->c);
}

/* Both sockets spliced: the pod socket enters kvg_sock, the client's cfg
 * goes to SPLICE (adopted by the verdict with the client's next skb). Done
 * when the pod's answer is complete but before its last bytes reach the
 * client (relay.c holds them back): a client that sends its next request
 * the moment it has the answer still finds the splice in place. 0 or -1
 * (nothing changed but the pod conn dropped). */
static int activate(struct splice *sp)
{
    struct cconn *c = sp->c;
    struct upconn *u = sp->up;
    uint64_t taken_c, taken_p, ck_p;
    struct kvg_flow_st stc;
    if (inq(c->nc.fd) != 0 || inq(u->fd) != 0 || cookie(u->fd, &ck_p) < 0 ||
        tcp_counts(c->nc.fd, NULL, &taken_c) < 0 || tcp_counts(u->fd, NULL, &taken_p) < 0 ||
        st_get(sp->ck_c, &stc) < 0)
        return -1; /* bytes already came up, or a socket call failed */
    /* pod -> client: the pod socket's counter starts at 0; the base is
     * written again once kvgated's own last bytes to the client are out */
    sp->ck_p = ck_p;
    sp->epoch_p = 1;
    sp->base_p2c = taken_c;
    struct kvg_flow_cfg pc = {.peer = sp->ck_c, .peer_base = sp->base_p2c, .budget = g_budget,
                              .pod_slot = sp->slot, .epoch = 1, .dir = KVG_DIR_P2C,
                              .mode = KVG_MODE_SPLICE};
    if (map_in(u->fd, ck_p, &pc) < 0) {
        count_unsplice(UC_ERROR);
        return -1;
    }
    sp->p_in_map = 1;
    /* client -> pod: in flight = client bytes - (pod acked - base) */
    sp->base_c2p = taken_p - stc.bytes;
    struct kvg_flow_cfg cc = {.peer = ck_p, .peer_base = sp->base_c2p, .budget = g_budget,
                              .pod_slot = sp->slot, .epoch = sp->epoch_c + 1,
                              .dir = KVG_DIR_C2P, .mode = KVG_MODE_SPLICE};
    if (cfg_put(sp->ck_c, &cc, BPF_EXIST) < 0) {
        count_unsplice(UC_ERROR);
        return -1;
    }
    sp->epoch_c = cc.epoch;
    sp->state = SP_SPLICED;
    sp->settled = 0;
    sp->c_eof = sp->p_eof = sp->c_shut = sp->p_shut = 0;
    sp->wait_since = 0;
    sp->idle_mark = UINT64_MAX;
    atomic_fetch_add(&g_active, 1);
    atomic_fetch_add(&g_total, 1);
    return 0;
}

int splice_hold(struct xreq *x, struct upconn *u)
{
    struct cconn *c = x->c;
    struct worker *w = x->w;
    if (x->r.status < 200 || x->r.status > 299 || !u->resp_ka || !u->req_sent ||
        u->wr_failed || u->in.len || u->framing == UF_CLOSE || u->dead || u->fd < 0 ||
        !eligible(x))
        return 0;
    /* a pod the verdict would hand the next request up from anyway (say,
     * saturated under load): no splice, no conn churn */
    struct kvg_pod kp;
    uint32_t slot = x->up_slot;
    if (fd_pods < 0 || bpf_map_lookup_elem(fd_pods, &slot, &kp) ||
        (kp.flags & (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY)) !=
            (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY) ||
        (kp.flags & (KVG_POD_F_DRAINING | KVG_POD_F_DOWN | KVG_POD_F_SATURATED)))
        return 0;
    struct splice *sp = enter_map(c); /* normally done at dispatch already */
    if (!sp)
        return 0;
    /* take u: no exchange owns it, no pool holds it, pod_io watches it */
    ev_timer_cancel(w->l, u->timer);
    u->timer = 0;
    u->x = NULL;
    ev_del(w->l, u->fd);
    if (ev_add(w->l, u->fd, EPOLLIN | EPOLLRDHUP, pod_io, sp) < 0) {
        up_kill(u);
        return 1; /* u is gone either way */
    }
    sp->up = u;
    sp->slot = x->up_slot;
    sp->state = SP_HELD;
    if (activate(sp) < 0) {
        drop_pod(sp);
        sp->state = SP_NONE;
    }
    return 1;
}

/* ---- SPLICED ---- */

static void unsplice_to_socket_path(struct splice *sp, unsigned cause);

/* After each flush of the client: once kvgated's last bytes of the answer
 * are out, the flow is settled (the pod's base is final, kvgated stops
 * watching output, idleness is judged from the verdict's counters). */
void splice_client_idle(struct cconn *c)
{
    struct splice *sp = c->sp;
    if (!sp || sp->state != SP_SPLICED || sp->settled || c->nc.dead || c->cur ||
        netconn_pending(&c->nc))
        return;
    uint64_t taken_c;
    struct kvg_flow_st stp;
    if (tcp_counts(c->nc.fd, NULL, &taken_c) == 0 && st_get(sp->ck_p, &stp) == 0) {
        sp->base_p2c = taken_c - stp.bytes;
        struct kvg_flow_cfg pc = {.peer = sp->ck_c, .peer_base = sp->base_p2c,
                                  .budget = g_budget, .pod_slot = sp->slot, .epoch = sp->epoch_p,
                                  .dir = KVG_DIR_P2C, .mode = KVG_MODE_SPLICE};
        cfg_put(sp->ck_p, &pc, BPF_EXIST); /* the pod is idle: no verdict runs on it */
    }
    sp->settled = 1;
    cconn_set_timer(c, CT_NONE); /* idleness is judged from the verdict's counters */
    ev_mod(c->w->l, c->nc.fd, EPOLLIN | EPOLLRDHUP);
    uint32_t ms = c->w->g->cfg.idle_timeout_ms ? c->w->g->cfg.idle_timeout_ms : 60000;
    arm(sp, (uint64_t)ms * 1000000ull);
}

/* The flow goes back to the socket path at a request boundary: the pod
 * conn is closed, the client keeps its kvg_sock entry in PASS mode. */
static void unsplice_to_socket_path(struct splice *sp, unsigned cause)
{
    struct cconn *c = sp->c;
    if (sp->state == SP_SPLICED) {
        atomic_fetch_sub(&g_active, 1);
        count_unsplice(cause);
    }
    struct kvg_flow_cfg cc = {.dir = KVG_DIR_C2P, .mode = KVG_MODE_PASS, .epoch = sp->epoch_c + 1};
    if (cfg_put(sp->ck_c, &cc, BPF_EXIST) == 0)
        sp->epoch_c = cc.epoch;
    if (cause == UC_POD_CLOSED || cause == KVG_SPL_UP_PEER)
        drop_pod(sp);
    else
        repool_pod(sp); /* a saturated pod's conn serves the socket path on */
    ev_timer_cancel(c->w->l, sp->timer);
    sp->timer = 0;
    sp->state = SP_NONE;
}

/* Redirected bytes not yet acknowledged (ack) or not yet taken by the
 * destination's TCP (!ack), client -> pod (c2p) or pod -> client. */
static int64_t behind(struct splice *sp, int c2p, int ack)
{
    struct kvg_flow_st st;
    uint64_t acked, taken;
    int fd = c2p ? sp->up->fd : sp->c->nc.fd;
    if (st_get(c2p ? sp->ck_c : sp->ck_p, &st) < 0 || tcp_counts(fd, &acked, &taken) < 0)
        return -1; /* cannot tell: the socket is gone, nothing to wait for */
    uint64_t base = c2p ? sp->base_c2p : sp->base_p2c;
    return (int64_t)(st.bytes + base - (ack ? acked : taken));
}

static void go_raw(struct splice *sp, unsigned cause);
static void go_body(struct splice *sp, uint64_t body_left);

/* 1 while a half-close waits for acknowledgements. */
static int half_close_step(struct splice *sp)
{
    struct cconn *c = sp->c;
    if (sp->c_eof && !sp->p_shut && behind(sp, 1, 1) <= 0) {
        shutdown(sp->up->fd, SHUT_WR);
        sp->p_shut = 1;
    }
    if (sp->p_eof && !sp->c_shut && behind(sp, 0, 1) <= 0) {
        shutdown(c->nc.fd, SHUT_WR);
        sp->c_shut = 1;
    }
    return (sp->c_eof && !sp->p_shut) || (sp->p_eof && !sp->c_shut);
}

static void spliced_timer(struct splice *sp)
{
    struct cconn *c = sp->c;
    uint64_t now = ev_now_ns();
    if (sp->c_eof || sp->p_eof) {
        int waiting = half_close_step(sp);
        if (sp->c_eof && sp->p_eof && !waiting) {
            teardown(sp, UC_CLIENT_CLOSED); /* both sides finished */
            return;
        }
        if (waiting) {
            if (!sp->wait_since)
                sp->wait_since = now;
            if (now - sp->wait_since > WAIT_MAX_NS) {
                teardown(sp, UC_ERROR);
                return;
            }
            arm(sp, WAIT_TICK_NS);
            return;
        }
        sp->wait_since = 0; /* one side is done; the other streams on */
    }
    /* idle: no byte moved either way since the last tick */
    struct kvg_flow_st a, b;
    uint64_t moved = 0;
    if (st_get(sp->ck_c, &a) == 0 && st_get(sp->ck_p, &b) == 0)
        moved = a.bytes + a.passed + b.bytes + b.passed;
    if (moved == sp->idle_mark) {
        teardown(sp, UC_IDLE);
        return;
    }
    sp->idle_mark = moved;
    uint32_t ms = c->w->g->cfg.idle_timeout_ms ? c->w->g->cfg.idle_timeout_ms : 60000;
    arm(sp, (uint64_t)ms * 1000000ull);
}

/* A read side ended (or bytes came up) on a spliced socket: what now? */
static void spliced_event(struct splice *sp, int client, uint32_t ev)
{
    struct cconn *c = sp->c;
    int fd = client ? c->nc.fd : sp->up->fd;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        struct kvg_flow_st st;
        if (st_get(client ? sp->ck_c : sp->ck_p, &st) < 0) {
            teardown(sp, UC_ERROR);
            return;
        }
        if (client && (st.epoch != sp->epoch_c || st.state == KVG_FST_PASS)) {
            /* the client was quicker than the splice: its request came up
             * whole, in PASS mode */
            unsplice_to_socket_path(sp, UC_CLIENT_DATA);
        } else if (client && st.state == KVG_FST_HANDED_UP && !st.mid) {
            unsplice_to_socket_path(sp, st.cause); /* draining, unhealthy, ... */
        } else if (client && st.state == KVG_FST_HANDED_UP && st.cause == KVG_SPL_UP_BUDGET &&
                   st.phase == KVG_PH_BODY && st.body_left) {
            go_body(sp, st.body_left);
            return;
        } else {
            go_raw(sp, st.state == KVG_FST_HANDED_UP ? st.cause : KVG_SPL_UP_PEER);
            return;
        }
        /* the request is the socket path's: read it now */
        netconn_read(&c->nc, ev | EPOLLIN);
        if (!c->nc.dead)
            netconn_update_events(&c->nc);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0 || (ev & EPOLLERR)) {
        teardown(sp, client ? UC_CLIENT_CLOSED : UC_POD_CLOSED);
        return;
    }
    /* The pod closed. An idle keep-alive close (vLLM's server drops idle
     * connections after 5 s) is no reason to close the client: if the
     * client's last request went out before the pod's last bytes, nothing
     * of a request is under way, and the pod has been quiet for a second,
     * the flow is unspliced and the client served on the socket path. */
    if (!client) {
        struct kvg_flow_st a, b;
        uint64_t now = ev_now_ns();
        if (st_get(sp->ck_c, &a) == 0 && st_get(sp->ck_p, &b) == 0 && sp->settled &&
            now > b.last_ns + IDLE_CLOSE_NS &&
            (a.epoch != sp->epoch_c || /* the client sent nothing since the splice */
             (a.phase == KVG_PH_HEAD && a.state == KVG_FST_SPLICED && a.last_ns <= b.last_ns))) {
            unsplice_to_socket_path(sp, UC_POD_CLOSED);
            netconn_update_events(&c->nc);
            return;
        }
    }
    /* EOF: pass the FIN on once the other side has acknowledged everything */
    if (client)
        sp->c_eof = 1;
    else
        sp->p_eof = 1;
    ev_mod(c->w->l, fd, 0);
    sp->wait_since = 0;
    arm(sp, 0);
}

/* ---- RAW: the rest of the connection relayed as bytes ---- */

static void raw_pump(struct splice *sp);

static void go_raw(struct splice *sp, unsigned cause)
{
    if (sp->state == SP_SPLICED || sp->state == SP_BODY) {
        atomic_fetch_sub(&g_active, 1);
        if (sp->state == SP_SPLICED)
            count_unsplice(cause); /* BODY counted its budget hand-up already */
    }
    sp->state = SP_RAW;
    struct kvg_flow_cfg cc = {.peer = sp->ck_p, .peer_base = sp->base_c2p, .dir = KVG_DIR_C2P,
                              .mode = KVG_MODE_RAW, .epoch = sp->epoch_c + 1,
                              .pod_slot = sp->slot};
    struct kvg_flow_cfg pc = {.peer = sp->ck_c, .peer_base = sp->base_p2c, .dir = KVG_DIR_P2C,
                              .mode = KVG_MODE_RAW, .epoch = sp->epoch_p + 1,
                              .pod_slot = sp->slot};
    if (cfg_put(sp->ck_c, &cc, BPF_EXIST) < 0 || cfg_put(sp->ck_p, &pc, BPF_EXIST) < 0) {
        teardown(sp, UC_ERROR);
        return;
    }
    sp->epoch_c = cc.epoch;
    sp->epoch_p = pc.epoch;
    sp->raw_since = ev_now_ns();
    sp->ordered_c2p = sp->ordered_p2c = 0;
    sp->idle_armed = 0;
    raw_pump(sp);
}

static int raw_read(int fd, struct sbuf *b, size_t cap, int *eof, uint64_t *moved)
{
    while (b->len < cap) {
        if (sbuf_reserve(b, 65536))
            return -ENOMEM;
        size_t room = b->cap - b->len - 1;
        if (room > cap - b->len)
            room = cap - b->len;
        ssize_t n = read(fd, b->data + b->len, room);
        if (n > 0) {
            b->len += (size_t)n;
            *moved += (uint64_t)n;
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

static int raw_write(int fd, struct sbuf *b, size_t *off)
{
    while (*off < b->len) {
        ssize_t n = send(fd, b->data + *off, b->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            *off += (size_t)n;
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

/* Moves what can move, passes FINs on, sets both sockets' events. */
static void raw_pump(struct splice *sp)
{
    struct cconn *c = sp->c;
    struct ev_loop *l = c->w->l;
    int cfd = c->nc.fd, pfd = sp->up->fd;
    size_t cap = c->w->g->cfg.max_buffered_bytes ? c->w->g->cfg.max_buffered_bytes : (1u << 20);
    uint64_t now = ev_now_ns();
    int settled = now - sp->raw_since >= RAW_SETTLE_NS;

    /* before writing into a socket ourselves, every byte the kernel
     * redirected into it must have reached its TCP (else ours overtake) */
    if (!sp->ordered_c2p && settled && behind(sp, 1, 0) <= 0)
        sp->ordered_c2p = 1;
    if (!sp->ordered_p2c && settled && behind(sp, 0, 0) <= 0)
        sp->ordered_p2c = 1;
    if (!sp->c_eof && raw_read(cfd, &sp->c2p, cap, &sp->c_eof, &sp->raw_moved) < 0)
        goto fail;
    if (!sp->p_eof && raw_read(pfd, &sp->p2c, cap, &sp->p_eof, &sp->raw_moved) < 0)
        goto fail;
    if (sp->ordered_c2p && raw_write(pfd, &sp->c2p, &sp->c2p_off) < 0)
        goto fail;
    if (sp->ordered_p2c && raw_write(cfd, &sp->p2c, &sp->p2c_off) < 0)
        goto fail;
    if (sp->c_eof && sp->ordered_c2p && !sp->c2p.len && !sp->p_shut) {
        shutdown(pfd, SHUT_WR);
        sp->p_shut = 1;
    }
    if (sp->p_eof && sp->ordered_p2c && !sp->p2c.len && !sp->c_shut) {
        shutdown(cfd, SHUT_WR);
        sp->c_shut = 1;
    }
    if (sp->p_shut && sp->c_shut) {
        teardown(sp, UC_CLIENT_CLOSED); /* both directions done */
        return;
    }
    ev_mod(l, cfd, (!sp->c_eof && sp->c2p.len < cap ? EPOLLIN | EPOLLRDHUP : 0) |
                       (sp->p2c.len && sp->ordered_p2c ? EPOLLOUT : 0));
    ev_mod(l, pfd, (!sp->p_eof && sp->p2c.len < cap ? EPOLLIN | EPOLLRDHUP : 0) |
                       (sp->c2p.len && sp->ordered_c2p ? EPOLLOUT : 0));
    if (!sp->ordered_c2p || !sp->ordered_p2c) {
        if (now - sp->raw_since > WAIT_MAX_NS)
            goto fail;
        arm(sp, WAIT_TICK_NS);
    } else if (!sp->idle_armed) { /* ordered: from now on the timer judges idleness */
        sp->idle_armed = 1;
        sp->idle_mark = sp->raw_moved;
        arm(sp, idle_ns(c));
    }
    return;
fail:
    teardown(sp, UC_ERROR);
}

/* ---- BODY: the rest of one request body relayed, the answer spliced ---- */

static void body_pump(struct splice *sp);

static void go_body(struct splice *sp, uint64_t body_left)
{
    count_unsplice(KVG_SPL_UP_BUDGET); /* the flow stays counted as spliced */
    sp->state = SP_BODY;
    sp->body_left = body_left;
    sp->raw_since = ev_now_ns();
    sp->ordered_c2p = 0;
    body_pump(sp);
}

/* Back to SPLICED once the body is all at the pod: the client's cfg gets
 * a new SPLICE epoch, its base counting what kvgated wrote. */
static void body_done(struct splice *sp)
{
    struct cconn *c = sp->c;
    struct kvg_flow_st st;
    uint64_t taken_p;
    if (inq(c->nc.fd) != 0) { /* more than the body: a pipelined request */
        go_raw(sp, KVG_SPL_PIPELINED);
        return;
    }
    if (st_get(sp->ck_c, &st) < 0 || tcp_counts(sp->up->fd, NULL, &taken_p) < 0) {
        teardown(sp, UC_ERROR);
        return;
    }
    sp->base_c2p = taken_p - st.bytes;
    struct kvg_flow_cfg cc = {.peer = sp->ck_p, .peer_base = sp->base_c2p, .budget = g_budget,
                              .pod_slot = sp->slot, .epoch = sp->epoch_c + 1,
                              .dir = KVG_DIR_C2P, .mode = KVG_MODE_SPLICE};
    if (cfg_put(sp->ck_c, &cc, BPF_EXIST) < 0) {
        teardown(sp, UC_ERROR);
        return;
    }
    sp->epoch_c = cc.epoch;
    sp->state = SP_SPLICED;
    sbuf_free(&sp->c2p);
    sp->c2p_off = 0;
    ev_mod(c->w->l, c->nc.fd, EPOLLIN | EPOLLRDHUP);
    ev_mod(c->w->l, sp->up->fd, EPOLLIN | EPOLLRDHUP);
    sp->idle_mark = UINT64_MAX;
    arm(sp, idle_ns(c));
}

static void body_pump(struct splice *sp)
{
    struct cconn *c = sp->c;
    struct ev_loop *l = c->w->l;
    int cfd = c->nc.fd, pfd = sp->up->fd;
    size_t cap = c->w->g->cfg.max_buffered_bytes ? c->w->g->cfg.max_buffered_bytes : (1u << 20);
    uint64_t now = ev_now_ns();
    if (!sp->ordered_c2p && now - sp->raw_since >= RAW_SETTLE_NS && behind(sp, 1, 0) <= 0)
        sp->ordered_c2p = 1;
    /* read at most the body's rest: what follows is the next request's */
    size_t room = sp->c2p.len < cap ? cap - sp->c2p.len : 0;
    if (room > sp->body_left)
        room = (size_t)sp->body_left;
    if (room) {
        int eof = 0;
        uint64_t before = sp->raw_moved;
        if (raw_read(cfd, &sp->c2p, sp->c2p.len + room, &eof, &sp->raw_moved) < 0) {
            teardown(sp, UC_ERROR);
            return;
        }
        sp->body_left -= sp->raw_moved - before;
        if (eof) { /* a half-close in the middle: the plain relay handles it */
            sp->c_eof = 1;
            go_raw(sp, UC_CLIENT_CLOSED);
            return;
        }
    }
    if (sp->ordered_c2p && raw_write(pfd, &sp->c2p, &sp->c2p_off) < 0) {
        teardown(sp, UC_POD_CLOSED);
        return;
    }
    if (sp->ordered_c2p && !sp->body_left && !sp->c2p.len) {
        body_done(sp);
        return;
    }
    ev_mod(l, cfd, sp->body_left && sp->c2p.len < cap ? EPOLLIN | EPOLLRDHUP : 0);
    ev_mod(l, pfd, EPOLLIN | EPOLLRDHUP | (sp->c2p.len && sp->ordered_c2p ? EPOLLOUT : 0));
    if (!sp->ordered_c2p) {
        if (now - sp->raw_since > WAIT_MAX_NS) {
            teardown(sp, UC_ERROR);
            return;
        }
        arm(sp, WAIT_TICK_NS);
    } else {
        arm(sp, idle_ns(c)); /* a body that stops coming: idle timeout */
    }
}

/* ---- events ---- */

static void timer_cb(struct ev_loop *l, void *arg)
{
    struct splice *sp = arg;
    sp->timer = 0;
    if (sp->state == SP_SPLICED)
        spliced_timer(sp);
    else if (sp->state == SP_BODY && sp->ordered_c2p)
        teardown(sp, UC_IDLE); /* the rest of the body never came */
    else if (sp->state == SP_BODY)
        body_pump(sp);
    else if (sp->state == SP_RAW && sp->idle_armed) {
        if (sp->raw_moved == sp->idle_mark) {
            teardown(sp, UC_IDLE); /* no byte either way for idle_timeout_ms */
            return;
        }
        sp->idle_mark = sp->raw_moved;
        arm(sp, idle_ns(sp->c));
    } else if (sp->state == SP_RAW) {
        raw_pump(sp);
    }
}

int splice_client_io(struct cconn *c, uint32_t ev)
{
    struct splice *sp = c->sp;
    if (sp->state == SP_BODY) {
        if (ev & EPOLLERR)
            teardown(sp, UC_CLIENT_CLOSED);
        else
            body_pump(sp);
        return 1;
    }
    if (sp->state == SP_RAW) {
        if (ev & EPOLLERR) {
            teardown(sp, UC_CLIENT_CLOSED);
            return 1;
        }
        raw_pump(sp);
        return 1;
    }
    if (sp->state != SP_SPLICED)
        return 0;
    if ((ev & EPOLLOUT) && !sp->settled) {
        cconn_flush(c); /* the rest of the last relayed answer; settles when out */
        if (c->nc.dead || c->sp != sp)
            return 1;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        spliced_event(sp, 1, ev);
    return 1;
}

static void pod_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct splice *sp = arg;
    if (sp->state == SP_HELD) { /* an idle pod conn spoke or closed: not ours to keep */
        drop_pod(sp);
        sp->state = SP_NONE;
        return;
    }
    if (sp->state == SP_RAW) {
        if (ev & EPOLLERR) {
            teardown(sp, UC_POD_CLOSED);
            return;
        }
        raw_pump(sp);
        return;
    }
    if (sp->state == SP_BODY) {
        if (ev & EPOLLERR) {
            teardown(sp, UC_POD_CLOSED);
            return;
        }
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
            /* the pod's answer came up (its budget) or the pod closed:
             * everything as plain bytes from here */
            struct kvg_flow_st st;
            go_raw(sp, st_get(sp->ck_p, &st) == 0 && st.state == KVG_FST_HANDED_UP
                           ? st.cause : UC_POD_CLOSED);
            return;
        }
        body_pump(sp);
        return;
    }
    if (sp->state == SP_SPLICED)
        spliced_event(sp, 0, ev);
}

/* ---- graceful drain ---- */

void splice_drain(struct cconn *c)
{
    (void)c; /* spliced flows run on until the drain deadline cuts them */
}

/* ---- metrics ---- */

static void head(struct sbuf *o, const char *name, const char *type, const char *help)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void splice_metrics_render(struct sbuf *o)
{
    head(o, "kvgate_splice_flows", "gauge", "Session flows spliced in the kernel now.");
    sbuf_printf(o, "kvgate_splice_flows %lld\n", (long long)atomic_load(&g_active));
    head(o, "kvgate_spliced_flows_total", "counter", "Session flows spliced in the kernel.");
    sbuf_printf(o, "kvgate_spliced_flows_total %llu\n", (unsigned long long)atomic_load(&g_total));
    struct kvg_spl_stat st[KVG_SPL_REASON_MAX];
    memset(st, 0, sizeof(st));
    kvgate_bpf_splice_stats(st, KVG_SPL_REASON_MAX); /* zeros without the splice */
    head(o, "kvgate_spliced_bytes_total", "counter",
         "Bytes the kernel moved between spliced sockets (kvgated never read them).");
    sbuf_printf(o, "kvgate_spliced_bytes_total{direction=\"client_to_pod\"} %llu\n",
                (unsigned long long)st[KVG_SPL_C2P].bytes);
    sbuf_printf(o, "kvgate_spliced_bytes_total{direction=\"pod_to_client\"} %llu\n",
                (unsigned long long)st[KVG_SPL_P2C].bytes);
    /* the requests kvgated never saw: with kvgate_requests_total, every
     * request the gateway carried (they have no model, pod or status
     * labels: the kernel framed them but did not read them further) */
    head(o, "kvgate_spliced_requests_total", "counter",
         "Requests the kernel sent to their pod on a spliced flow (not in kvgate_requests_total).");
    sbuf_printf(o, "kvgate_spliced_requests_total %llu\n",
                (unsigned long long)(st[KVG_SPL_REQUEST].skbs + st[KVG_SPL_PIPELINED].skbs));
    head(o, "kvgate_unsplices_total", "counter",
         "Spliced flows given back to kvgated or ended, by cause.");
    for (unsigned i = KVG_SPL_UP_DRAINING; i < UC__END; i++) {
        if (i > KVG_SPL_UP_USER && i < KVG_SPL_REASON_MAX)
            continue; /* not hand-up reasons */
        sbuf_printf(o, "kvgate_unsplices_total{cause=\"%s\"} %llu\n", cause_name(i),
                    (unsigned long long)atomic_load(&g_unsplices[i]));
    }
}
