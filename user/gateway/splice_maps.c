/* splice_maps: the splice's plumbing: its maps (kvg_sock, kvg_flow_cfg,
 * kvg_flow_st), socket cookies and TCP counters, the one builder of flow
 * cfgs, the process-wide counters and their /metrics. The state machine is
 * splice.c; see splice_priv.h. */
#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked (glibc's is older) */
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <bpf/bpf.h>

#include "common/http1.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "gateway/bpf.h"
#include "gateway/client_h1.h"
#include "gateway/conn.h"
#include "gateway/exchange.h"
#include "gateway/upstream.h"
#include "gateway/splice.h"
#include "gateway/splice_priv.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

_Static_assert(KVG_REQ_FIELDS_MAX == HTTP1_MAX_HEADERS,
               "the verdict hands up heads with more fields than kvgated's parser takes");

int sp_on;
int sp_fd_pods = -1;
uint64_t sp_budget = KVG_SPLICE_BUDGET_DEFAULT;
static int fd_sock = -1, fd_cfg = -1, fd_st = -1;
static struct gwbpf *sp_bpf; /* its splice counters, for /metrics; NULL: none */
static uint64_t g_max_body = 32ull << 20;
static uint32_t g_max_head = KVG_HEAD_MAX;

/* ---- counters ---- */

static const char *const USER_CAUSES[] = {
    "client_data",   /* the client sent before the splice took effect */
    "client_closed", /* the client closed (or reset) a spliced connection */
    "pod_closed",    /* the pod closed or reset the dedicated connection */
    "idle_timeout",  /* no byte either way for limits.idle_timeout_ms */
    "error",         /* a map update or socket call failed */
    "shutdown",      /* kvgated stopping */
};
_Static_assert(sizeof(USER_CAUSES) / sizeof(USER_CAUSES[0]) == UC__END - KVG_SPL_REASON_MAX,
               "USER_CAUSES must name every kvgated cause");
/* the verdict's reasons that are hand-ups (kvg_flow_st.cause values) */
static const unsigned HANDUPS[] = {
    KVG_SPL_UP_DRAINING, KVG_SPL_UP_UNHEALTHY, KVG_SPL_UP_SATURATED, KVG_SPL_UP_BUDGET,
    KVG_SPL_UP_UNPARSABLE, KVG_SPL_UP_UNFRAMED, KVG_SPL_UP_PEER, KVG_SPL_UP_FILTERED,
    KVG_SPL_UP_TOO_LARGE, KVG_SPL_UP_INCOMPLETE, KVG_SPL_UP_TOO_MANY, KVG_SPL_UP_BAD_ANSWER,
    KVG_SPL_UP_GW_DRAIN, KVG_SPL_UP_CONTENDED,
};
static atomic_uint_fast64_t g_unsplices[UC__END];
static atomic_uint_fast64_t g_relayed[2]; /* [1] client -> pod, [0] pod -> client */
static atomic_int_fast64_t g_active;
static atomic_uint_fast64_t g_total;

void sp_count_unsplice(unsigned cause)
{
    if (cause < UC__END)
        atomic_fetch_add(&g_unsplices[cause], 1);
}

void sp_count_relayed(int c2p, uint64_t n)
{
    atomic_fetch_add(&g_relayed[c2p ? 1 : 0], n);
}

void sp_flows_add(int d)
{
    atomic_fetch_add(&g_active, d);
    if (d > 0)
        atomic_fetch_add(&g_total, (uint64_t)d);
}

static const char *cause_name(unsigned c)
{
    if (c < KVG_SPL_REASON_MAX)
        return gwbpf_splice_reason_name(c);
    if (c < UC__END)
        return USER_CAUSES[c - KVG_SPL_REASON_MAX];
    return "other";
}

void splice_metrics_render(struct sbuf *o)
{
    prom_head(o, "kvgate_splice_flows", "gauge", "Session flows spliced in the kernel now.");
    sbuf_printf(o, "kvgate_splice_flows %lld\n", (long long)atomic_load(&g_active));
    prom_head(o, "kvgate_spliced_flows_total", "counter", "Session flows spliced in the kernel.");
    sbuf_printf(o, "kvgate_spliced_flows_total %llu\n", (unsigned long long)atomic_load(&g_total));
    struct kvg_spl_stat st[KVG_SPL_REASON_MAX];
    memset(st, 0, sizeof(st));
    if (sp_bpf) /* zeros without the splice */
        gwbpf_splice_stats(sp_bpf, st, KVG_SPL_REASON_MAX);
    prom_head(o, "kvgate_spliced_bytes_total", "counter",
         "Bytes the kernel moved between spliced sockets (kvgated never read them).");
    sbuf_printf(o, "kvgate_spliced_bytes_total{direction=\"client_to_pod\"} %llu\n",
                (unsigned long long)st[KVG_SPL_C2P].bytes);
    sbuf_printf(o, "kvgate_spliced_bytes_total{direction=\"pod_to_client\"} %llu\n",
                (unsigned long long)st[KVG_SPL_P2C].bytes);
    prom_head(o, "kvgate_splice_relayed_bytes_total", "counter",
         "Bytes kvgated relayed itself on spliced flows after a hand-up (client_to_pod: the "
         "rest of a request body the kernel framed; never unframed client bytes).");
    sbuf_printf(o, "kvgate_splice_relayed_bytes_total{direction=\"client_to_pod\"} %llu\n",
                (unsigned long long)atomic_load(&g_relayed[1]));
    sbuf_printf(o, "kvgate_splice_relayed_bytes_total{direction=\"pod_to_client\"} %llu\n",
                (unsigned long long)atomic_load(&g_relayed[0]));
    /* the requests kvgated never saw: with kvgate_requests_total, every
     * request the gateway carried (they have no model, pod or status
     * labels: the kernel framed them but did not read them further) */
    prom_head(o, "kvgate_spliced_requests_total", "counter",
         "Requests the kernel sent to their pod on a spliced flow (not in kvgate_requests_total).");
    sbuf_printf(o, "kvgate_spliced_requests_total %llu\n",
                (unsigned long long)(st[KVG_SPL_REQUEST].skbs + st[KVG_SPL_PIPELINED].skbs));
    prom_head(o, "kvgate_spliced_answers_total", "counter",
         "Answers the kernel framed to their end on spliced flows (redirected or handed up).");
    sbuf_printf(o, "kvgate_spliced_answers_total %llu\n",
                (unsigned long long)st[KVG_SPL_ANSWER].skbs);
    prom_head(o, "kvgate_unsplices_total", "counter",
         "Spliced flows handed back to kvgated or ended, by cause.");
    for (size_t i = 0; i < sizeof(HANDUPS) / sizeof(HANDUPS[0]); i++)
        sbuf_printf(o, "kvgate_unsplices_total{cause=\"%s\"} %llu\n", cause_name(HANDUPS[i]),
                    (unsigned long long)atomic_load(&g_unsplices[HANDUPS[i]]));
    for (unsigned i = KVG_SPL_REASON_MAX; i < UC__END; i++)
        sbuf_printf(o, "kvgate_unsplices_total{cause=\"%s\"} %llu\n", cause_name(i),
                    (unsigned long long)atomic_load(&g_unsplices[i]));
}

/* ---- set-up ---- */

void splice_init(struct gw *g, struct gwbpf *b)
{
    sp_on = 0;
    sp_bpf = b && gwbpf_splice_ok(b, NULL) ? b : NULL;
    if (!b || g->cfg.splice_mode == GW_SPLICE_OFF || !gwbpf_splice_ok(b, NULL))
        return;
    fd_sock = gwbpf_map_fd(b, KVG_MAP_SOCK);
    fd_cfg = gwbpf_map_fd(b, KVG_MAP_FLOW_CFG);
    fd_st = gwbpf_map_fd(b, KVG_MAP_FLOW_ST);
    sp_fd_pods = gwbpf_map_fd(b, KVG_MAP_PODS);
    sp_budget = g->cfg.splice_budget;
    g_max_body = g->cfg.max_body_bytes;
    g_max_head = g->cfg.max_header_bytes < KVG_HEAD_MAX ? (uint32_t)g->cfg.max_header_bytes
                                                        : KVG_HEAD_MAX;
    sp_on = fd_sock >= 0 && fd_cfg >= 0 && fd_st >= 0;
    relay_set_layer(sp_on ? &splice_layer : NULL);
}

int splice_enabled_for(struct gw *g, const char *model)
{
    return sp_on && gw_splice_model_ok(g, model); /* the rule by model: route.c */
}

/* ---- sockets ---- */

int sp_cookie(int fd, uint64_t *out)
{
    socklen_t l = sizeof(*out);
    return getsockopt(fd, SOL_SOCKET, SO_COOKIE, out, &l) ? -errno : 0;
}

int sp_tcp_counts(int fd, uint64_t *acked, uint64_t *taken)
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

/* SIOCINQ counts the TCP receive queue: reliable for a socket outside
 * kvg_sock only (6.18 does not count a psock's queue) */
int sp_inq(int fd)
{
    int n = 0;
    return ioctl(fd, SIOCINQ, &n) < 0 ? -1 : n;
}

int sp_st_get(uint64_t ck, struct kvg_flow_st *st)
{
    memset(st, 0, sizeof(*st));
    return bpf_map_lookup_elem(fd_st, &ck, st) ? -errno : 0;
}

/* ---- flow cfgs ---- */

static void cfg_build(struct kvg_flow_cfg *f, const struct splice *sp, int client, int mode,
                      uint64_t peer_base)
{
    uint32_t epoch = f->epoch;
    uint8_t flags = f->flags;
    memset(f, 0, sizeof(*f));
    f->peer = client ? sp->ck_p : sp->ck_c;
    f->peer_base = peer_base;
    f->budget = sp_budget;
    f->pod_slot = sp->slot;
    f->epoch = epoch + 1; /* every build is a new mode or base: a new epoch */
    f->dir = client ? KVG_DIR_C2P : KVG_DIR_P2C;
    f->mode = (uint8_t)mode;
    f->flags = flags; /* the drain flag outlives every change */
    if (client) {
        f->max_body = g_max_body;
        f->max_head = g_max_head;
        f->passed_mark = sp_consumed(sp);
    } else {
        f->passed_mark = sp->p_read;
    }
}

void sp_cfg_client(struct splice *sp, int mode, uint64_t peer_base)
{
    cfg_build(&sp->cc, sp, 1, mode, peer_base);
}

void sp_cfg_pod(struct splice *sp, int mode, uint64_t peer_base)
{
    cfg_build(&sp->pc, sp, 0, mode, peer_base);
}

int sp_cfg_put(struct splice *sp, int client, int exist)
{
    uint64_t ck = client ? sp->ck_c : sp->ck_p;
    const struct kvg_flow_cfg *f = client ? &sp->cc : &sp->pc;
    return bpf_map_update_elem(fd_cfg, &ck, f, exist ? BPF_EXIST : BPF_ANY) ? -errno : 0;
}

int sp_map_in(int fd, uint64_t ck, const struct kvg_flow_cfg *cfg)
{
    struct kvg_flow_st zero;
    memset(&zero, 0, sizeof(zero));
    zero.epoch = cfg->epoch;
    zero.state = cfg->mode == KVG_MODE_SPLICE ? KVG_FST_SPLICED : KVG_FST_PASS;
    uint64_t v = (uint64_t)fd;
    if (bpf_map_update_elem(fd_st, &ck, &zero, BPF_ANY) ||
        bpf_map_update_elem(fd_cfg, &ck, cfg, BPF_ANY))
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

void sp_sock_out(uint64_t ck)
{
    bpf_map_delete_elem(fd_sock, &ck);
}

void sp_map_out(uint64_t ck, int sock_too)
{
    if (sock_too)
        bpf_map_delete_elem(fd_sock, &ck);
    bpf_map_delete_elem(fd_cfg, &ck);
    bpf_map_delete_elem(fd_st, &ck);
}

uint64_t sp_consumed(const struct splice *sp)
{
    return sp->c->nc.rd_bytes - sp->rd_base + sp->c_own;
}

int64_t sp_behind(struct splice *sp, int c2p, int ack)
{
    struct kvg_flow_st st;
    uint64_t acked, taken;
    int fd = c2p ? sp->pfd : sp->c->nc.fd;
    if (sp_st_get(c2p ? sp->ck_c : sp->ck_p, &st) < 0 || sp_tcp_counts(fd, &acked, &taken) < 0)
        return -1; /* cannot tell: the socket is gone, nothing to wait for */
    uint64_t base = c2p ? sp->cc.peer_base : sp->pc.peer_base;
    return (int64_t)(st.bytes + base - (ack ? acked : taken));
}
