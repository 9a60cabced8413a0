/* kvg-bypassd: the bypass worker's first running form (issue 12): DPDK's
 * EAL and its af_xdp driver on the gateway's interface, the loop, the
 * client side of a connection (handshake, first flight, first request
 * parsed) and delayed binding: the first request replayed to a pod
 * (user/bypass/replay), the flow then handed to XDP (user/bypass/handoff:
 * two kvg_bp_flows entries that bp_entry forwards with). The pod is
 * kvgated's pick with --decide (its decision channel, user/bypass/decide.h:
 * the worker stays a process of its own, its EAL and polling loop apart
 * from kvgated's threads, but the policy, prefix index, session table,
 * in-flight counts, metrics and access log are kvgated's; a DONE tells
 * kvgated when the spliced flow ended), or the one --pod (tests without
 * kvgated). Without either, a connection whose first request is whole is
 * counted and reset, so a client is never left waiting. Not yet: the
 * hand-up to kvgated. A spliced flow is forgotten (slot, source port,
 * XDP's entries) once closed both ways or reset and quiet for a second,
 * or idle for ten minutes.
 *
 * With --decide and kvgated's pod table pinned (--pods-pin, entry.h), XDP
 * checks each spliced flow's pod on every packet, and the worker every
 * 250 ms: when kvgated's table says the pod is removed, unhealthy or down,
 * the worker takes the flow back from XDP, resets both sides and reports
 * DONE pod_down (an error at kvgated, its in-flight count released).
 *
 *   kvg-bypassd --iface IF --port N --xdp-obj build/bpf/bp_entry.bpf.o
 *               [--stats FILE] [--max-body BYTES]
 *               [--pod IP:PORT --pod-mac MAC --gw-ip IP [--src-ports LO-HI]]
 *               [--decide SOCKET --gw-ip IP [--pod-mac MAC] [--src-ports LO-HI]
 *                [--pods-pin PATH]]
 *
 * EAL: --no-huge -m 256 --no-pci, one lcore, the af_xdp vdev on IF with
 * the entry program (bpf/bp_entry.bpf.c) that sends TCP to port N to the
 * worker and everything else to the kernel. The worker sleeps after
 * empty polls, so it never spins a core the machine needs. SIGINT /
 * SIGTERM stop it; the driver detaches its program on the way out.
 * Counters go to FILE (JSON, rewritten every 100 ms) and to stdout at the
 * end. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "bp_rewrite.h"
#include "entry.h"
#include "common/netaddr.h"
#include "bypass/decide_cli.h"
#include "bypass/firstflight.h"
#include "bypass/handoff.h"
#include "bypass/neigh.h"
#include "common/httpstatus.h"
#include "common/sbuf.h"
#include "bypass/pkt.h"
#include "bypass/replay.h"
#include "bypass/tcpep.h"

#define BURST 32
#define NFLOWS 4096 /* a power of two */
#define IDLE_POLLS 64
/* a spliced flow closed both ways (or reset) is forgotten after this long
 * without a packet; one nobody closed, after IDLE_MS (handoff_check) */
#define WATCH_EVERY_MS 250
#define LINGER_MS 1000
#define IDLE_MS (600u * 1000)

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s, stop = 1; }

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The worker's counters, in the stats file under these names. */
#define BP_COUNTERS(X)                                                                  \
    X(rx) X(tx) X(tx_dropped) X(not_ours) X(bad_frames) X(no_flow) X(syn) X(synack)       \
    X(established) X(cookies) X(table_full) X(bytes_in) X(first_requests) X(hand_ups)     \
    X(resets) X(timeouts) X(flows_now) X(replays) X(connected) X(refused) X(handed_off)   \
    X(pod_frames) X(pod_data_relayed) X(late_client) X(late_pod) X(unknown_pod)          \
    X(closed) X(idle_closed) X(reinstalled) X(decisions) X(routed) X(gw_refused)           \
    X(decide_unavailable) X(decide_timeouts) X(stale_answers) X(done_sent) X(gw_downs)     \
    X(mac_waits) X(mac_failed) X(error_answers) X(pods_shared) X(pod_unchecked) X(pod_down)   \
    X(pod_down_frames) X(pod_probes) X(pod_resets_client) X(pod_resets_pod)
static struct {
#define BP_FIELD(n) uint64_t n;
    BP_COUNTERS(BP_FIELD)
#undef BP_FIELD
    char last[512];
} S;

struct slot {
    int used;
    struct tcpseq_tuple t;
    struct tcpep_flow f;
    struct ff *ff;
    uint8_t smac[6], dmac[6];
    /* towards the pod: 0 none, 1 replaying, 2 handed off to XDP, 3 taken
     * back from XDP to reset both sides (its pod went down) */
    int pstate;
    uint8_t checked;       /* XDP and the worker check the pod (kvg_pods slot in the entries) */
    uint8_t reset_done;    /* pstate 3: 1 the client, 2 the pod reset (or it reset) */
    uint64_t reset_until_ms, probe_at_ms;
    uint16_t gwport;      /* host order */
    struct replay rp;
    struct handoff h;
    int have_h;
    struct handoff_watch hw; /* handed off: when to forget it */
    uint64_t watch_at_ms;
    /* the pod: --pod's, or kvgated's answer (--decide) */
    uint32_t pod_ip;       /* network order */
    uint16_t pod_port;     /* network order */
    uint8_t pod_mac[6];
    /* --decide: the decision channel (user/bypass/decide_cli) */
    int dstate;            /* enum dstate */
    uint32_t did, dgen;    /* the decision's id, on which connection */
    uint32_t pod_slot;     /* kvgated's slot for the pod */
    uint8_t outcome;       /* DONE's outcome if the flow ended now (enum decide_outcome) */
    uint8_t *body;         /* the first request's body, for DECIDE */
    size_t blen, bcap;
    int body_oom;
    uint64_t asked_ms, first_data_ms, mac_until_ms;
    uint8_t *resp;         /* D_ERR: the error answer sent to the client */
    uint32_t resp_len;
    uint8_t resp_tries;
    uint64_t resp_at_ms;
};
/* Where a flow stands with kvgated (--decide). */
enum dstate {
    D_NONE = 0,  /* not asked (or no --decide) */
    D_WAIT,      /* DECIDE sent, no answer yet */
    D_ROUTED,    /* answered 200: counted in flight at kvgated until our DONE */
    D_MAC,       /* routed, waiting for the pod's MAC */
    D_ERR,       /* the client is being answered an error, then closed */
};
static struct slot flows[NFLOWS];
static struct tcpep_cfg C;
static struct ff_cfg FC;
static struct replay_cfg RC;
/* --pod: where first requests are replayed (one pod: the bring-up's) */
static int have_pod;
static uint32_t POD_IP, GW_IP; /* network order */
static uint16_t POD_PORT;      /* network order */
static uint8_t POD_MAC[6];
static int have_pod_mac;       /* --pod-mac: the next hop for every pod */
static struct dcli *DC;        /* --decide: kvgated's decision channel */
static const char *IFNAME;
#define DECIDE_WAIT_MS 5000    /* no answer from kvgated in this long: 503 */
#define MAC_WAIT_MS 1000       /* the pod's MAC not resolved in this long: 503 */
#define ERR_RTO_MS 200         /* an error answer is sent again after this long */
#define ERR_TRIES 5
static uint16_t LO = 61000, HI = 61999;
static struct slot **by_port;  /* index: source port - LO */
static int FLOWS_FD = -1;      /* the entry program's kvg_bp_flows */
static struct bpe E = {.flows_fd = -1, .pods_fd = -1}; /* the entry program (entry.h) */
#define RESET_MS 600           /* pstate 3: both sides reset, or forgotten after this long */
#define PROBE_EVERY_MS 200     /* pstate 3: a side not heard from is probed again */

static uint32_t thash(const struct tcpseq_tuple *t)
{
    uint64_t h = tcpseq_siphash(&C.key, t, sizeof(*t));
    return (uint32_t)h & (NFLOWS - 1);
}

static int same(const struct tcpseq_tuple *a, const struct tcpseq_tuple *b)
{
    return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport &&
           a->dport == b->dport;
}

/* The flow's slot, or a free one for it (create), or NULL. */
static struct slot *lookup(const struct tcpseq_tuple *t, int create)
{
    uint32_t h = thash(t);
    for (uint32_t i = 0; i < 64; i++) {
        struct slot *s = &flows[(h + i) & (NFLOWS - 1)];
        if (s->used && same(&s->t, t))
            return s;
        if (!s->used && create) {
            memset(s, 0, sizeof(*s));
            s->used = 1;
            s->t = *t;
            S.flows_now++;
            return s;
        }
    }
    return NULL;
}

static void send_done(struct slot *s, unsigned http_status);

static void drop_flow(struct slot *s)
{
    send_done(s, 0);
    free(s->body);
    s->body = NULL;
    free(s->resp);
    s->resp = NULL;
    s->dstate = D_NONE;
    if (s->pstate && by_port && by_port[s->gwport - LO] == s)
        by_port[s->gwport - LO] = NULL;
    if (s->pstate >= 2 && FLOWS_FD >= 0) { /* XDP forgets the flow too */
        bpf_map_delete_elem(FLOWS_FD, &s->h.c2p_key);
        bpf_map_delete_elem(FLOWS_FD, &s->h.p2c_key);
    }
    s->pstate = 0;
    tcpep_free(&C, &s->f);
    ff_free(s->ff);
    s->ff = NULL;
    s->used = 0;
    S.flows_now--;
}

static struct rte_mempool *MP;
static uint16_t PORT;
static struct rte_mbuf *txq[BURST * 4];
static unsigned ntx;

static void tx_flush(void)
{
    if (!ntx)
        return;
    uint16_t n = rte_eth_tx_burst(PORT, 0, txq, (uint16_t)ntx);
    S.tx += n;
    for (unsigned i = n; i < ntx; i++) {
        rte_pktmbuf_free(txq[i]);
        S.tx_dropped++;
    }
    ntx = 0;
}

/* m holds a frame of n bytes: onto the transmit queue. */
static void queue(struct rte_mbuf *m, size_t n)
{
    m->data_len = (uint16_t)n;
    m->pkt_len = (uint32_t)n;
    txq[ntx++] = m;
    if (ntx == sizeof(txq) / sizeof(txq[0]))
        tx_flush();
}

/* A segment the worker makes (to the client or the pod), built and queued. */
static void send_out(const struct pkt_out *o)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(MP);
    size_t n = m ? pkt_build(o, rte_pktmbuf_mtod(m, uint8_t *), rte_pktmbuf_tailroom(m)) : 0;
    if (!n) {
        if (m)
            rte_pktmbuf_free(m);
        S.tx_dropped++;
        return;
    }
    queue(m, n);
}

static void send_reply(const struct pkt_tcp *in, const struct tcpep_reply *r)
{
    if (!r->send)
        return;
    if (r->flags == (TCPF_SYN | TCPF_ACK))
        S.synack++;
    struct pkt_out o;
    pkt_reply(in, r, &o);
    send_out(&o);
}

/* A frame as it came, rewritten as XDP would (bp_rewrite.h) and sent:
 * the packets of a flow that reach the worker around the hand-off. */
static void relay_rewritten(const uint8_t *data, size_t len, const struct kvg_bp_flow *f)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(MP);
    if (!m || len > rte_pktmbuf_tailroom(m)) {
        if (m)
            rte_pktmbuf_free(m);
        S.tx_dropped++;
        return;
    }
    uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
    memcpy(p, data, len);
    unsigned ihl = (p[14] & 0x0F) * 4u;
    kvg_bp_rewrite(p, p + 14, p + 14 + ihl, f);
    queue(m, len);
}

/* The replay's segments to the pod, as frames. */
static void send_pod(struct slot *s, const struct replay_out *o, int n)
{
    for (int i = 0; i < n; i++) {
        struct pkt_out po;
        memset(&po, 0, sizeof(po));
        memcpy(po.smac, s->dmac, 6); /* our port's MAC: where the client's frames came to */
        memcpy(po.dmac, s->pod_mac, 6);
        po.saddr = GW_IP;
        po.daddr = s->pod_ip;
        po.sport = htons(s->gwport);
        po.dport = s->pod_port;
        po.seq = o[i].seq;
        po.ack = o[i].ack;
        po.flags = o[i].flags;
        po.win = o[i].win;
        po.mss = o[i].mss;
        po.wscale = o[i].wscale;
        po.data = s->rp.data + o[i].off;
        po.len = o[i].len;
        send_out(&po);
    }
}

static void reset_client(struct slot *s, const struct pkt_tcp *in)
{
    struct tcpep_reply r = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = s->f.iss + 1,
                            .ack = s->f.rcv_nxt, .wscale = -1};
    if (in) {
        send_reply(in, &r);
    } else { /* from the flow's own addresses */
        struct pkt_tcp p;
        memset(&p, 0, sizeof(p));
        memcpy(p.smac, s->smac, 6);
        memcpy(p.dmac, s->dmac, 6);
        p.t = s->t;
        send_reply(&p, &r);
    }
    S.resets++;
}

/* The first request is whole: replay it to the pod. 0, or -1 (no source
 * port free). */
static int start_replay(struct slot *s)
{
    static uint16_t next;
    uint32_t span = (uint32_t)(HI - LO) + 1;
    if (!DC) { /* --pod: the one pod */
        s->pod_ip = POD_IP;
        s->pod_port = POD_PORT;
        memcpy(s->pod_mac, POD_MAC, 6);
    }
    for (uint32_t k = 0; k < span; k++) {
        uint16_t port = (uint16_t)(LO + (next + k) % span);
        if (!by_port[port - LO]) {
            next = (uint16_t)((next + k + 1) % span);
            by_port[port - LO] = s;
            s->gwport = port;
            s->pstate = 1;
            struct replay_out o[REPLAY_OUT_MAX];
            int n = replay_start(&RC, &s->rp, &s->f, s->f.len, now_ms(), o);
            send_pod(s, o, n);
            S.replays++;
            return 0;
        }
    }
    return -1;
}

static void hand_off(struct slot *s)
{
    /* XDP checks the pod on every packet when kvgated's table is shared,
     * the kvgated that routed the flow is the one still connected (a
     * kvgated that stops zeroes its table), and the table has this pod in
     * the slot it gave, fit, now; else the flow runs unchecked */
    s->checked = 0;
    if (DC && E.pods_fd >= 0) {
        if (dcli_up(DC) && s->dgen == dcli_gen(DC) &&
            bpe_pod_fit(&E, s->pod_slot, s->pod_ip, s->pod_port) == 1)
            s->checked = 1;
        else
            S.pod_unchecked++;
    }
    s->h.c2p.pod_slot = s->h.p2c.pod_slot = s->checked ? s->pod_slot : KVG_POD_MAX;
    /* pod -> client first: an answer that overtakes the hand-off is still
     * translated (BYPASS.md) */
    if (FLOWS_FD < 0 || bpf_map_update_elem(FLOWS_FD, &s->h.p2c_key, &s->h.p2c, BPF_ANY) ||
        bpf_map_update_elem(FLOWS_FD, &s->h.c2p_key, &s->h.c2p, BPF_ANY)) {
        s->outcome = DECIDE_REJECTED;
        reset_client(s, NULL);
        drop_flow(s);
        return;
    }
    s->pstate = 2;
    s->outcome = DECIDE_OK; /* the pod has the request; the rest is XDP's */
    S.handed_off++;
    handoff_watch_start(&s->hw, now_ms());
    s->watch_at_ms = now_ms() + WATCH_EVERY_MS;
    tcpep_free(&C, &s->f); /* the first flight is the pod's now */
    s->f.st = TE_ESTABLISHED;
}

/* ---- a spliced flow whose pod went down (kvgated's table) ---- */

static void on_answer(void *ctx, const struct decide_msg *a);
static void decide_down(uint32_t gen);

/* Both entries of s with this action and pod slot (their counters as XDP
 * left them); the worker's copies too, for a reinstall. */
static void entries_set(struct slot *s, uint8_t action, uint32_t pod_slot)
{
    const struct kvg_bp_key *k[2] = {&s->h.p2c_key, &s->h.c2p_key};
    struct kvg_bp_flow *v[2] = {&s->h.p2c, &s->h.c2p};
    for (int i = 0; i < 2; i++) {
        v[i]->action = action;
        v[i]->pod_slot = pod_slot;
        struct kvg_bp_flow e;
        if (FLOWS_FD < 0)
            continue;
        if (bpf_map_lookup_elem(FLOWS_FD, k[i], &e))
            e = *v[i];
        e.action = action;
        e.pod_slot = pod_slot;
        bpf_map_update_elem(FLOWS_FD, k[i], &e, BPF_ANY);
    }
}

/* Is the pod of s down by kvgated's table? Only while the kvgated that
 * routed s keeps the table: a kvgated that stops closes the decision
 * channel, then zeroes the table, and a close not read yet would make
 * every pod look gone; so the channel is read first. */
static int pod_down_now(struct slot *s)
{
    if (!s->checked || bpe_pod_fit(&E, s->pod_slot, s->pod_ip, s->pod_port) != 0)
        return 0;
    uint32_t gen = dcli_gen(DC);
    if (dcli_poll(DC, now_ms(), on_answer, NULL) & DCLI_EV_DOWN)
        decide_down(gen); /* unchecks the flows it routed, s among them */
    return s->checked;
}

/* The pod of s went down: the worker takes the flow back from XDP (both
 * entries: action worker, so every packet of it comes here whatever the
 * pod's state does next), resets each side with the numbers that side's
 * next packet carries (the one that came, or its answer to a probe), and
 * reports DONE pod_down when both are reset or after RESET_MS. */
static void start_reset(struct slot *s, uint64_t now)
{
    S.pod_down++;
    s->pstate = 3;
    s->outcome = DECIDE_POD_DOWN;
    s->reset_done = 0;
    s->reset_until_ms = now + RESET_MS;
    s->probe_at_ms = now; /* the next timer tick probes a side not heard from */
    entries_set(s, KVG_BP_ACT_WORKER, s->pod_slot);
}

/* A segment of s (pstate 3) from the client or the pod: a RST ends that
 * side; any other with an ACK says what the side expects next, and gets
 * a RST with exactly that sequence number (RFC 5961: a RST elsewhere in
 * the window only draws a challenge ACK). */
static void reset_input(struct slot *s, const struct pkt_tcp *p, int from_pod)
{
    S.pod_down_frames++;
    uint8_t side = from_pod ? 2 : 1;
    if (s->reset_done & side)
        return;
    if (p->seg.flags & TCPF_RST) {
        s->reset_done |= side;
    } else if (p->seg.flags & TCPF_ACK) {
        uint32_t end = p->seg.seq + p->seg.len + ((p->seg.flags & (TCPF_SYN | TCPF_FIN)) ? 1 : 0);
        struct tcpep_reply r = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = p->seg.ack,
                                .ack = end, .wscale = -1};
        send_reply(p, &r);
        S.resets++;
        if (from_pod)
            S.pod_resets_pod++;
        else
            S.pod_resets_client++;
        s->reset_done |= side;
    }
    if (s->reset_done == 3)
        drop_flow(s); /* DONE pod_down, both entries deleted */
}

/* One byte far behind anything the side can still expect (2^30 before
 * the least it has received: what was sent before the hand-off plus what
 * XDP counted since, headers included, is an upper bound). Out of its
 * window, so its TCP answers with an ACK carrying where it stands (RFC
 * 793), which XDP hands to the worker (action worker); a segment with data,
 * so Linux's rate limit on out-of-window ACKs does not hold that back. */
static void probe(struct slot *s, int to_pod)
{
    static const uint8_t junk;
    struct kvg_bp_flow e;
    struct pkt_out o;
    memset(&o, 0, sizeof(o));
    memcpy(o.smac, s->dmac, 6); /* our port's MAC */
    o.flags = TCPF_ACK;
    o.wscale = -1;
    o.data = &junk;
    o.len = 1;
    if (to_pod) {
        uint64_t sent = !bpf_map_lookup_elem(FLOWS_FD, &s->h.c2p_key, &e) ? e.bytes : 0;
        memcpy(o.dmac, s->pod_mac, 6);
        o.saddr = GW_IP;
        o.daddr = s->pod_ip;
        o.sport = htons(s->gwport);
        o.dport = s->pod_port;
        o.seq = s->rp.snd_nxt + (uint32_t)sent - (1u << 30);
        o.ack = s->rp.irs + 1;
    } else {
        uint64_t sent = !bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &e) ? e.bytes : 0;
        memcpy(o.dmac, s->smac, 6);
        o.saddr = s->t.daddr;
        o.daddr = s->t.saddr;
        o.sport = s->t.dport;
        o.dport = s->t.sport;
        o.seq = s->f.iss + 1 + (uint32_t)sent - (1u << 30);
        o.ack = s->f.rcv_nxt;
    }
    send_out(&o);
}

static void reset_timer(struct slot *s, uint64_t now)
{
    if (now >= s->reset_until_ms) { /* a side that never answered (a pod host gone) */
        drop_flow(s);
        return;
    }
    if (now < s->probe_at_ms)
        return;
    s->probe_at_ms = now + PROBE_EVERY_MS;
    if (!(s->reset_done & 1))
        probe(s, 0);
    if (!(s->reset_done & 2))
        probe(s, 1);
    S.pod_probes++;
}

/* A frame from the pod to one of the worker's source ports. */
static void pod_frame(const uint8_t *data, size_t len, const struct pkt_tcp *p)
{
    S.pod_frames++;
    uint16_t port = ntohs(p->t.dport);
    struct slot *s = by_port ? by_port[port - LO] : NULL;
    if (!s || p->t.saddr != s->pod_ip || p->t.sport != s->pod_port) {
        S.unknown_pod++;
        return;
    }
    if (s->pstate == 3) {
        reset_input(s, p, 1);
        return;
    }
    if (s->pstate == 2 && pod_down_now(s)) { /* XDP: POD_DOWN */
        start_reset(s, now_ms());
        reset_input(s, p, 1);
        return;
    }
    if (s->pstate == 2) { /* XDP should have taken it: a late one */
        S.late_pod++;
        relay_rewritten(data, len, &s->h.p2c);
        return;
    }
    struct replay_out o[REPLAY_OUT_MAX];
    int n = 0;
    unsigned ev = replay_input(&RC, &s->rp, &p->seg, now_ms(), o, &n);
    send_pod(s, o, n);
    if (ev & RP_EV_CONNECTED) {
        S.connected++;
        struct handoff_ends e;
        memset(&e, 0, sizeof(e));
        memcpy(e.client_mac, s->smac, 6);
        memcpy(e.gw_client_mac, s->dmac, 6);
        e.client_addr = s->t.saddr;
        e.vip = s->t.daddr;
        e.client_port = s->t.sport;
        e.vport = s->t.dport;
        memcpy(e.pod_mac, s->pod_mac, 6);
        memcpy(e.gw_pod_mac, s->dmac, 6);
        e.gw_addr = GW_IP;
        e.pod_addr = s->pod_ip;
        e.gw_port = htons(s->gwport);
        e.pod_port = s->pod_port;
        handoff_entries(&e, &s->f, &s->rp, KVG_POD_MAX, &s->h);
        s->have_h = 1;
    }
    if (ev & (RP_EV_REFUSED | RP_EV_RESET | RP_EV_FAILED)) {
        if (ev & RP_EV_REFUSED)
            S.refused++;
        s->outcome = DECIDE_POD_ERROR;
        reset_client(s, NULL);
        drop_flow(s);
        return;
    }
    if ((ev & RP_EV_POD_DATA) && s->have_h) { /* the answer began before the hand-off */
        S.pod_data_relayed++;
        if (!s->first_data_ms)
            s->first_data_ms = now_ms();
        relay_rewritten(data, len, &s->h.p2c);
    }
    if (ev & RP_EV_DONE)
        hand_off(s);
}

/* ---- --decide: kvgated picks the pod ---- */

/* The flow's DONE to kvgated, once, if kvgated holds it in flight (routed
 * on the connection that is still up). Bytes: the first flight, then what
 * XDP's two entries counted; TTFT only when the answer began before the
 * hand-off. */
static void send_done(struct slot *s, unsigned http_status)
{
    if (!DC || (s->dstate != D_ROUTED && s->dstate != D_MAC) || s->dgen != dcli_gen(DC))
        return;
    uint64_t in = s->f.len, out = 0;
    if (s->pstate >= 2 && FLOWS_FD >= 0) {
        struct kvg_bp_flow e;
        if (!bpf_map_lookup_elem(FLOWS_FD, &s->h.c2p_key, &e))
            in += e.bytes;
        if (!bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &e))
            out = e.bytes;
    }
    uint64_t ttft = s->first_data_ms > s->asked_ms ? (s->first_data_ms - s->asked_ms) * 1000 : 0;
    if (!dcli_done(DC, s->did, s->pod_slot, s->outcome, http_status, in, out,
                   ttft > UINT32_MAX ? UINT32_MAX : (uint32_t)ttft))
        S.done_sent++;
    s->dstate = D_NONE;
}

/* Answers the client status with the OpenAI error JSON (as kvgated's
 * socket path would) and closes: the answer and a FIN in one segment,
 * sent again until the client closes too (err_input), at most ERR_TRIES
 * times, then a reset. An h2c client is reset: this path does not speak
 * HTTP/2 back. */
static void answer_error(struct slot *s, unsigned status, const char *msg)
{
    S.error_answers++;
    send_done(s, status); /* routed but not replayed: kvgated ends it */
    struct sbuf b, r;
    sbuf_init(&b);
    sbuf_init(&r);
    http_error_json(&b, (int)status, msg && *msg ? msg : "the bypass cannot serve this request");
    http1_closing_response(&r, (int)status, "application/json", b.data ? b.data : "", b.len);
    const struct ff_request *rq = s->ff ? ff_request(s->ff) : NULL;
    if (b.oom || r.oom || !r.data || r.len > s->f.peer_mss || (rq && rq->proto == FF_PROTO_H2C) ||
        !(s->resp = malloc(r.len))) {
        sbuf_free(&b);
        sbuf_free(&r);
        reset_client(s, NULL);
        drop_flow(s);
        return;
    }
    memcpy(s->resp, r.data, r.len);
    s->resp_len = (uint32_t)r.len;
    sbuf_free(&b);
    sbuf_free(&r);
    s->dstate = D_ERR;
    s->resp_tries = 0;
    s->resp_at_ms = 0; /* at the next timer tick */
}

static void send_error_answer(struct slot *s)
{
    struct pkt_out o;
    memset(&o, 0, sizeof(o));
    memcpy(o.smac, s->dmac, 6);
    memcpy(o.dmac, s->smac, 6);
    o.saddr = s->t.daddr;
    o.daddr = s->t.saddr;
    o.sport = s->t.dport;
    o.dport = s->t.sport;
    o.seq = s->f.iss + 1;
    o.ack = s->f.rcv_nxt;
    o.flags = TCPF_ACK | TCPF_PSH | TCPF_FIN;
    o.win = tcpep_window(&C, &s->f);
    o.wscale = -1;
    o.data = s->resp;
    o.len = s->resp_len;
    send_out(&o);
    s->resp_tries++;
    s->resp_at_ms = now_ms() + ERR_RTO_MS;
}

/* A client segment while it is answered an error: its FIN (it read the
 * answer) is acknowledged and the flow forgotten; a reset forgets it. */
static void err_input(struct slot *s, const struct pkt_tcp *p)
{
    if (p->seg.flags & TCPF_RST) {
        drop_flow(s);
        return;
    }
    if (p->seg.flags & TCPF_FIN) {
        struct tcpep_reply r = {.send = 1, .flags = TCPF_ACK, .seq = s->f.iss + 2 + s->resp_len,
                                .ack = p->seg.seq + p->seg.len + 1, .wscale = -1};
        send_reply(p, &r);
        drop_flow(s);
    }
}

/* The pod's MAC: --pod-mac (the next hop for every pod), else the kernel's
 * neighbour table. 1 found, 0 not yet (the kernel is asked to resolve it). */
static int resolve_mac(struct slot *s)
{
    if (have_pod_mac) {
        memcpy(s->pod_mac, POD_MAC, 6);
        return 1;
    }
    if (!neigh_lookup(s->pod_ip, IFNAME, s->pod_mac))
        return 1;
    if (s->dstate != D_MAC)
        neigh_poke(s->pod_ip);
    return 0;
}

static void go_replay(struct slot *s)
{
    s->dstate = D_ROUTED;
    s->outcome = DECIDE_CLIENT_ABORT; /* until the pod has it all */
    if (start_replay(s)) {
        s->outcome = DECIDE_REJECTED;
        answer_error(s, 503, "the bypass has no source port free");
    }
}

static void on_answer(void *ctx, const struct decide_msg *a)
{
    struct slot *s = &flows[a->id & (NFLOWS - 1)];
    if (!s->used || s->did != a->id || s->dstate != D_WAIT) {
        /* its flow is gone: kvgated holds a routed one until told */
        S.stale_answers++;
        if (a->status == 200 && !dcli_done(DC, a->id, a->slot, DECIDE_CLIENT_ABORT, 0, 0, 0, 0))
            S.done_sent++;
        return;
    }
    if (a->status != 200) {
        S.gw_refused++;
        s->dstate = D_NONE;
        answer_error(s, a->status, a->err);
        return;
    }
    S.routed++;
    s->dstate = D_ROUTED;
    s->outcome = DECIDE_CLIENT_ABORT;
    s->pod_slot = a->slot;
    memcpy(&s->pod_ip, a->addr, 4);
    s->pod_port = htons(a->port);
    if (resolve_mac(s)) {
        go_replay(s);
        return;
    }
    S.mac_waits++;
    s->dstate = D_MAC;
    s->mac_until_ms = now_ms() + MAC_WAIT_MS;
}

/* The first request is whole: kvgated is asked where it goes. */
static void ask(struct slot *s)
{
    static uint32_t seq;
    const struct ff_request *rq = ff_request(s->ff);
    s->did = (++seq << 12) | (uint32_t)(s - flows); /* NFLOWS = 4096: the slot in the low bits */
    int rc = s->body_oom ? -ENOMEM
                         : dcli_decide(DC, s->did, rq->proto == FF_PROTO_H2C ? DECIDE_PROTO_H2C
                                                                               : DECIDE_PROTO_H1,
                                       rq->tenant, rq->session, s->body, s->blen);
    if (rc) {
        S.decide_unavailable++;
        answer_error(s, 503, "no routing decision available (kvgated unreachable)");
        return;
    }
    S.decisions++;
    s->dstate = D_WAIT;
    s->dgen = dcli_gen(DC);
    s->asked_ms = now_ms();
}

/* The first request's body bytes, kept for DECIDE (kvgated scans them). */
static void on_body(void *ctx, const uint8_t *p, size_t n)
{
    struct slot *s = ctx;
    if (s->body_oom)
        return;
    if (s->blen + n > s->bcap) {
        size_t cap = s->bcap ? s->bcap : 4096;
        while (cap < s->blen + n)
            cap *= 2;
        uint8_t *b = realloc(s->body, cap);
        if (!b) {
            s->body_oom = 1;
            return;
        }
        s->body = b;
        s->bcap = cap;
    }
    memcpy(s->body + s->blen, p, n);
    s->blen += n;
}

static struct ff *new_ff(struct slot *s)
{
    struct ff_cfg c = FC;
    if (DC) {
        c.body = on_body;
        c.ctx = s;
    }
    return ff_new(&c);
}

/* kvgated's connection went away: it released what that connection
 * held; the flows still waiting for an answer are answered 503. */
static void decide_down(uint32_t gen)
{
    S.gw_downs++;
    for (uint32_t i = 0; i < NFLOWS; i++) {
        struct slot *s = &flows[i];
        if (s->used && s->dstate == D_WAIT && s->dgen == gen) {
            s->dstate = D_NONE;
            answer_error(s, 503, "no routing decision available (kvgated went away)");
        } else if (s->used && s->pstate == 2 && s->checked && s->dgen == gen) {
            /* its pod table is nobody's now (a kvgated that stops zeroes
             * it; the next one numbers pods afresh): the flow runs on
             * unchecked, as it runs on without a DONE */
            s->checked = 0;
            entries_set(s, KVG_BP_ACT_REWRITE, KVG_POD_MAX);
        }
    }
}

/* The first request is whole (or not for the bypass): counted; with
 * --decide kvgated is asked for the pod; replayed to the pod with --pod;
 * else the connection is reset. */
static void first_request(struct slot *s, const struct pkt_tcp *in, enum ff_status st)
{
    const struct ff_request *rq = ff_request(s->ff);
    if (st == FF_DONE) {
        S.first_requests++;
        snprintf(S.last, sizeof(S.last),
                 "{\"proto\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"session\":\"%s\","
                 "\"body_bytes\":%llu,\"flight_bytes\":%u}",
                 rq->proto == FF_PROTO_H2C ? "h2c" : "http/1.1", rq->method, rq->path,
                 rq->session, (unsigned long long)rq->body_bytes, s->f.len);
    } else {
        S.hand_ups++;
        snprintf(S.last, sizeof(S.last), "{\"hand_up\":\"%s\"}", ff_cause_name(rq->cause));
    }
    if (st == FF_DONE && DC) {
        ask(s);
        return;
    }
    if (st == FF_DONE && have_pod && start_replay(s) == 0)
        return;
    reset_client(s, in);
    drop_flow(s);
}

static void frame(const uint8_t *data, size_t len)
{
    struct pkt_tcp p;
    int rc = pkt_parse(data, len, 1, &p);
    if (rc == PKT_NOT_IPV4 || rc == PKT_NOT_TCP) {
        S.not_ours++;
        return;
    }
    if (rc != PKT_OK) {
        S.bad_frames++;
        return;
    }
    if (by_port && ntohs(p.t.dport) >= LO && ntohs(p.t.dport) <= HI && p.t.daddr == GW_IP) {
        pod_frame(data, len, &p);
        return;
    }
    uint64_t now = now_ms();
    struct tcpep_reply r;
    struct slot *s = lookup(&p.t, 0);
    if (s && s->dstate == D_ERR) {
        err_input(s, &p);
        return;
    }
    if (s && s->pstate == 3) {
        reset_input(s, &p, 0);
        return;
    }
    if (s && s->pstate == 2 && pod_down_now(s)) { /* XDP: POD_DOWN */
        start_reset(s, now);
        reset_input(s, &p, 0);
        return;
    }
    if (s && s->pstate) { /* the client's side of a flow being handed off */
        if (s->pstate == 2)
            S.late_client++;
        if (s->have_h)
            relay_rewritten(data, len, &s->h.c2p);
        return;
    }
    if (!s) {
        if ((p.seg.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) == TCPF_SYN) {
            S.syn++;
            s = lookup(&p.t, 1);
            if (!s) { /* the table is full: a cookie */
                S.table_full++;
                tcpep_syn_cookie(&C, &p.t, &p.seg, now / 1000, &r);
                send_reply(&p, &r);
                return;
            }
            s->ff = new_ff(s);
            if (!s->ff) {
                drop_flow(s);
                return;
            }
            memcpy(s->smac, p.smac, 6);
            memcpy(s->dmac, p.dmac, 6);
            tcpep_syn(&C, &p.t, &p.seg, now, &s->f, &r);
            send_reply(&p, &r);
            return;
        }
        struct tcpep_flow f;
        memset(&f, 0, sizeof(f));
        if (!(p.seg.flags & TCPF_RST) && tcpep_cookie_flow(&C, &p.t, &p.seg, now / 1000, now, &f)) {
            S.cookies++;
            s = lookup(&p.t, 1);
            if (!s)
                return;
            s->f = f;
            s->ff = new_ff(s);
            if (!s->ff) {
                drop_flow(s);
                return;
            }
        } else {
            S.no_flow++;
            return;
        }
    }
    if (s->dstate && (p.seg.flags & TCPF_FIN) && !(p.seg.flags & TCPF_RST)) {
        /* asked kvgated, not replayed yet: a FIN taken now would never
         * reach the pod (the replay carries bytes only); left unacknowledged,
         * the client sends it again and XDP forwards it after the hand-off */
        S.late_client++;
        return;
    }
    unsigned ev = tcpep_input(&C, &p.t, &s->f, &p.seg, now, &r);
    send_reply(&p, &r);
    if (ev & TE_EV_ESTABLISHED)
        S.established++;
    if (ev & (TE_EV_RESET | TE_EV_TIMEOUT)) {
        drop_flow(s);
        return;
    }
    if (ev & TE_EV_DATA)
        S.bytes_in += p.seg.len;
    if (s->dstate) /* asked kvgated: what comes meanwhile is replayed with the rest */
        return;
    if (ev & TE_EV_DATA) {
        enum ff_status st = ff_parse(s->ff, s->f.buf, s->f.len);
        if (st != FF_MORE)
            first_request(s, &p, st);
        return;
    }
    if (ev & TE_EV_FIN) { /* the client gave up before its request was whole */
        struct tcpep_reply rr = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = s->f.iss + 1,
                                 .ack = s->f.rcv_nxt, .wscale = -1};
        send_reply(&p, &rr);
        S.resets++;
        drop_flow(s);
    }
}

/* A flow handed off: forgotten once closed and quiet (its source port
 * goes back to the range, XDP's entries are deleted); an entry that went
 * missing from the map meanwhile is put back. */
static void watch(struct slot *s, uint64_t now)
{
    if (now < s->watch_at_ms || FLOWS_FD < 0)
        return;
    s->watch_at_ms = now + WATCH_EVERY_MS;
    struct kvg_bp_flow c, p;
    int hc = !bpf_map_lookup_elem(FLOWS_FD, &s->h.c2p_key, &c);
    int hp = !bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &p);
    if (pod_down_now(s)) { /* a quiet flow whose pod went down: no packet told XDP */
        start_reset(s, now);
        return;
    }
    enum handoff_verdict v =
        handoff_check(&s->hw, hc ? &c : NULL, hp ? &p : NULL, now, LINGER_MS, IDLE_MS);
    if (v != HANDOFF_KEEP) {
        if (v == HANDOFF_FORGET_CLOSED) {
            S.closed++;
        } else {
            S.idle_closed++;
            s->outcome = DECIDE_TIMEOUT;
        }
        drop_flow(s);
        return;
    }
    if (!hp && !bpf_map_update_elem(FLOWS_FD, &s->h.p2c_key, &s->h.p2c, BPF_NOEXIST))
        S.reinstalled++;
    if (!hc && !bpf_map_update_elem(FLOWS_FD, &s->h.c2p_key, &s->h.c2p, BPF_NOEXIST))
        S.reinstalled++;
}

static void timers(void)
{
    uint64_t now = now_ms();
    for (uint32_t i = 0; i < NFLOWS; i++) {
        struct slot *s = &flows[i];
        if (s->used && s->pstate == 2) {
            watch(s, now);
            continue;
        }
        if (s->used && s->pstate == 3) {
            reset_timer(s, now);
            continue;
        }
        if (s->used && s->pstate == 1) {
            struct replay_out o[REPLAY_OUT_MAX];
            int n = 0;
            unsigned ev = replay_timer(&RC, &s->rp, now, o, &n);
            send_pod(s, o, n);
            if (ev & RP_EV_FAILED) {
                s->outcome = DECIDE_POD_ERROR;
                reset_client(s, NULL);
                drop_flow(s);
            }
            continue;
        }
        if (s->used && s->dstate == D_ERR) {
            if (now < s->resp_at_ms)
                continue;
            if (s->resp_tries < ERR_TRIES) {
                send_error_answer(s);
            } else {
                reset_client(s, NULL);
                drop_flow(s);
            }
            continue;
        }
        if (s->used && s->dstate == D_WAIT && now > s->asked_ms + DECIDE_WAIT_MS) {
            S.decide_timeouts++;
            s->dstate = D_NONE; /* a late answer finds it gone (stale) */
            answer_error(s, 503, "no routing decision in time");
            continue;
        }
        if (s->used && s->dstate == D_MAC) {
            if (resolve_mac(s)) {
                go_replay(s);
            } else if (now > s->mac_until_ms) {
                S.mac_failed++;
                s->outcome = DECIDE_REJECTED;
                answer_error(s, 503, "the bypass cannot reach the pod kvgated chose (no MAC)");
            }
            continue;
        }
        if (!s->used || s->f.st != TE_SYN_RCVD)
            continue;
        struct tcpep_reply r;
        unsigned ev = tcpep_timer(&C, &s->f, now, &r);
        if (r.send) { /* the SYN-ACK again, to where the SYN came from */
            struct pkt_tcp p;
            memset(&p, 0, sizeof(p));
            memcpy(p.smac, s->smac, 6);
            memcpy(p.dmac, s->dmac, 6);
            p.t = s->t;
            send_reply(&p, &r);
        }
        if (ev & TE_EV_TIMEOUT) {
            S.timeouts++;
            drop_flow(s);
        }
    }
}

static void write_stats(const char *path)
{
    if (!path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputc('{', f);
#define BP_JSON(n) fprintf(f, "\"" #n "\":%llu,", (unsigned long long)S.n);
    BP_COUNTERS(BP_JSON)
#undef BP_JSON
    fprintf(f, "\"last\":%s}\n", S.last[0] ? S.last : "null");
    fclose(f);
    rename(tmp, path);
}

int main(int argc, char **argv)
{
    const char *iface = NULL, *obj = NULL, *stats = NULL;
    int port = 0;
    unsigned long long max_body = 32ull << 20;
    const char *pod = NULL, *pod_mac = NULL, *gw_ip = NULL, *decide = NULL;
    const char *pods_pin = KVG_PIN_DIR_DEFAULT "/" KVG_PIN_MAPS_SUBDIR "/" KVG_MAP_PODS;
    static const struct option opts[] = {{"iface", 1, 0, 'i'}, {"port", 1, 0, 'p'},
                                         {"xdp-obj", 1, 0, 'x'}, {"stats", 1, 0, 's'},
                                         {"max-body", 1, 0, 'b'}, {"pod", 1, 0, 'P'},
                                         {"pod-mac", 1, 0, 'M'}, {"gw-ip", 1, 0, 'G'},
                                         {"src-ports", 1, 0, 'R'}, {"decide", 1, 0, 'D'},
                                         {"pods-pin", 1, 0, 'T'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'i': iface = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'x': obj = optarg; break;
        case 's': stats = optarg; break;
        case 'b': max_body = strtoull(optarg, NULL, 10); break;
        case 'P': pod = optarg; break;
        case 'M': pod_mac = optarg; break;
        case 'G': gw_ip = optarg; break;
        case 'D': decide = optarg; break;
        case 'T': pods_pin = *optarg ? optarg : NULL; break;
        case 'R': {
            unsigned lo, hi;
            if (sscanf(optarg, "%u-%u", &lo, &hi) != 2 || !lo || lo > hi || hi > 65535)
                goto usage;
            LO = (uint16_t)lo, HI = (uint16_t)hi;
            break;
        }
        default: goto usage;
        }
    }
    if (!iface || !obj || port <= 0 || port > 65535 || (pod && (!pod_mac || !gw_ip)) ||
        (decide && (pod || !gw_ip))) {
    usage:
        fprintf(stderr, "usage: kvg-bypassd --iface IF --port N --xdp-obj FILE [--stats FILE] "
                        "[--max-body BYTES]\n"
                        "         [--pod IP:PORT --pod-mac MAC --gw-ip IP [--src-ports LO-HI]]\n"
                        "         [--decide SOCKET --gw-ip IP [--pod-mac MAC] [--src-ports LO-HI]\n"
                        "          [--pods-pin PATH]]\n");
        return 2;
    }
    if (pod) {
        char host[64];
        unsigned pport;
        struct in_addr a, g;
        if (sscanf(pod, "%63[^:]:%u", host, &pport) != 2 || !pport || pport > 65535 ||
            inet_pton(AF_INET, host, &a) != 1 || inet_pton(AF_INET, gw_ip, &g) != 1 ||
            netaddr_parse_mac(pod_mac, POD_MAC))
            goto usage;
        POD_IP = a.s_addr;
        GW_IP = g.s_addr;
        POD_PORT = htons((uint16_t)pport);
        have_pod = 1;
        by_port = calloc((size_t)(HI - LO) + 1, sizeof(*by_port));
        if (!by_port)
            return 1;
    }
    if (decide) { /* kvgated picks each pod; its MAC from --pod-mac or the kernel */
        struct in_addr g;
        if (inet_pton(AF_INET, gw_ip, &g) != 1 || (pod_mac && netaddr_parse_mac(pod_mac, POD_MAC)))
            goto usage;
        GW_IP = g.s_addr;
        have_pod_mac = pod_mac != NULL;
        DC = dcli_new(decide, 64u << 20);
        by_port = calloc((size_t)(HI - LO) + 1, sizeof(*by_port));
        if (!DC || !by_port) {
            fprintf(stderr, "kvg-bypassd: --decide %s: path too long or out of memory\n", decide);
            return 1;
        }
    }
    IFNAME = iface;
    replay_cfg_default(&RC);
    if (access(obj, R_OK)) {
        fprintf(stderr, "kvg-bypassd: %s: %s\n", obj, strerror(errno));
        return 1;
    }
    if (tcpep_cfg_default(&C)) {
        fprintf(stderr, "kvg-bypassd: no random key: %s\n", strerror(errno));
        return 1;
    }
    FC.max_head = 65536;
    FC.max_body = max_body;
    char prefix[64], vdev[512];
    snprintf(prefix, sizeof(prefix), "kvgbp%d", (int)getpid());
    snprintf(vdev, sizeof(vdev), "net_af_xdp0,iface=%s,xdp_prog=%s", iface, obj);
    char *eal[] = {argv[0], "-l", "0", "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
                   "--file-prefix", prefix, "--vdev", vdev, "--log-level", "*:warning", NULL};
    int eargc = (int)(sizeof(eal) / sizeof(eal[0])) - 1;
    if (rte_eal_init(eargc, eal) < 0) {
        fprintf(stderr, "kvg-bypassd: EAL did not start: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    int rc = 1;
    if (rte_eth_dev_count_avail() != 1) {
        fprintf(stderr, "kvg-bypassd: the af_xdp port did not come up on %s\n", iface);
        goto out;
    }
    RTE_ETH_FOREACH_DEV(PORT) break;
    MP = rte_pktmbuf_pool_create("kvgbp", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 (int)rte_socket_id());
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (!MP || rte_eth_dev_configure(PORT, 1, 1, &conf) ||
        rte_eth_rx_queue_setup(PORT, 0, 1024, (unsigned)rte_eth_dev_socket_id(PORT), NULL, MP) ||
        rte_eth_tx_queue_setup(PORT, 0, 1024, (unsigned)rte_eth_dev_socket_id(PORT), NULL) ||
        rte_eth_dev_start(PORT)) {
        fprintf(stderr, "kvg-bypassd: port set-up failed on %s: %s\n", iface,
                rte_strerror(rte_errno));
        goto out;
    }
    /* kvgated's pod table: only its slots (--decide) name entries in it */
    if ((rc = bpe_open(&E, iface, obj, DC ? pods_pin : NULL, (uint16_t)port, by_port ? LO : 0,
                       by_port ? HI : 0))) {
        fprintf(stderr, "kvg-bypassd: no entry program on %s to configure: %s\n", iface,
                strerror(-rc));
        rc = 1;
        goto stop_port;
    }
    FLOWS_FD = E.flows_fd;
    S.pods_shared = E.pods_fd >= 0;
    if (E.pods_fd >= 0)
        printf("kvg-bypassd: XDP checks each spliced flow's pod in kvgated's table (%s)\n",
               pods_pin);
    else if (DC)
        printf("kvg-bypassd: spliced flows are not checked against their pod: %s\n", E.why);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("kvg-bypassd: on %s, TCP port %d to the worker, the rest to the kernel\n", iface, port);
    fflush(stdout);
    uint64_t next_timer = now_ms() + 10, next_stats = 0;
    unsigned idle = 0;
    while (!stop) {
        struct rte_mbuf *rx[BURST];
        uint16_t n = rte_eth_rx_burst(PORT, 0, rx, BURST);
        S.rx += n;
        for (uint16_t i = 0; i < n; i++) {
            if (rx[i]->nb_segs == 1)
                frame(rte_pktmbuf_mtod(rx[i], const uint8_t *), rte_pktmbuf_data_len(rx[i]));
            else
                S.bad_frames++; /* jumbo chains: not on this path */
            rte_pktmbuf_free(rx[i]);
        }
        tx_flush();
        uint64_t now = now_ms();
        if (DC) { /* kvgated's answers; never blocks */
            uint32_t gen = dcli_gen(DC);
            if (dcli_poll(DC, now, on_answer, NULL) & DCLI_EV_DOWN)
                decide_down(gen);
            tx_flush();
        }
        if (now >= next_timer) {
            timers();
            tx_flush();
            next_timer = now + 10;
        }
        if (now >= next_stats) {
            write_stats(stats);
            next_stats = now + 100;
        }
        if (n) {
            idle = 0;
        } else if (++idle > IDLE_POLLS) {
            struct timespec ts = {0, 200000}; /* never spin a shared core */
            nanosleep(&ts, NULL);
        }
    }
    write_stats(stats);
    printf("kvg-bypassd: rx %llu tx %llu syn %llu established %llu first requests %llu "
           "hand-ups %llu resets %llu\n",
           (unsigned long long)S.rx, (unsigned long long)S.tx, (unsigned long long)S.syn,
           (unsigned long long)S.established, (unsigned long long)S.first_requests,
           (unsigned long long)S.hand_ups, (unsigned long long)S.resets);
    rc = 0;
stop_port:
    rte_eth_dev_stop(PORT);
    rte_eth_dev_close(PORT); /* detaches the entry program, ours or the driver's */
out:
    for (uint32_t i = 0; i < NFLOWS; i++)
        if (flows[i].used) {
            flows[i].outcome = DECIDE_SHUTDOWN;
            drop_flow(&flows[i]);
        }
    if (DC) { /* the DONEs out, best effort; kvgated releases the rest when we close */
        dcli_poll(DC, now_ms(), on_answer, NULL);
        dcli_free(DC);
    }
    bpe_close(&E);
    rte_eal_cleanup();
    return rc;
}
