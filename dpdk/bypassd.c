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
 * counted and reset, so a client is never left waiting. A connection that
 * is not for the bypass (firstflight's hand-up causes, a first request
 * over the flow's budget, a client silent after the handshake) goes to
 * kvgated as a kernel socket with --adopt (dpdk/handup.h: TCP_REPAIR,
 * the flight restored, XDP passing its packets to the kernel), else is
 * reset. A spliced flow is forgotten (slot, source port,
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
 *               [--adopt SOCKET] [--queues N]
 *
 * EAL: --no-huge --no-pci, one lcore per queue (--queues, 1 by default:
 * worker w on lcore w drives queue w, steer.h), the af_xdp vdev on IF
 * with the entry program (bpf/bp_entry.bpf.c) that sends TCP to port N to
 * the workers and everything else to the kernel. The worker sleeps after
 * empty polls, so it never spins a core the machine needs. SIGINT /
 * SIGTERM stop it; the driver detaches its program on the way out.
 * Counters go to FILE (JSON, rewritten every 100 ms) and to stdout at the
 * end.
 *
 * This file: EAL and the port, the loop, the flow table, frames from the
 * client and the pod, the replay and the hand-off, the timers; the rest
 * in the modules dpdk/worker.h lists. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "common/netaddr.h"
#include "boundary.h"
#include "handup.h"
#include "idle.h"
#include "podreset.h"
#include "session.h"
#include "stats.h"
#include "steer.h"
#include "txq.h"
#include "worker.h"

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s, stop = 1; }

/* each worker's own (steer.h): its flow table (allocated as it starts) */
__thread struct slot *flows;
/* which slots are used, a bit each: the timer walks these, not all NFLOWS
 * slots (a walk of the whole table 100 times a second was most of an idle
 * worker's CPU) */
static __thread uint64_t used_bits[NFLOWS / 64];
__thread struct tcpep_cfg C;
/* what each worker copies into its C (the key is the process's: SYN
 * cookies and steering agree), and the bytes all workers together may
 * buffer in first flights (--max-buffered), split evenly: over its share,
 * a worker's flows get a zero window, and one whose request then cannot
 * complete is handed up to kvgated (over_budget) with what it holds */
static struct tcpep_cfg C_all;
static uint64_t max_buffered = 256ull << 20;
static __thread struct tcpep_budget budget;
struct ff_cfg FC;
struct replay_cfg RC;
int have_pod;
uint32_t POD_IP, GW_IP;
uint16_t POD_PORT;
uint8_t POD_MAC[6];
int have_pod_mac;
__thread struct dcli *DC;
const char *IFNAME;
uint16_t LO = 61000, HI = 61999;
struct slot **by_port;
int FLOWS_FD = -1;
struct bpe E = {.flows_fd = -1, .pods_fd = -1};

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
            used_bits[(s - flows) / 64] |= 1ull << ((s - flows) % 64);
            return s;
        }
    }
    return NULL;
}

void drop_flow(struct slot *s)
{
    sess_done(s, 0);
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
    used_bits[(s - flows) / 64] &= ~(1ull << ((s - flows) % 64));
}

/* The first request is whole: replay it to the pod. */
int start_replay(struct slot *s)
{
    static __thread uint16_t next;
    uint32_t span = (uint32_t)(HI - LO) + 1;
    if (!DC) { /* --pod: the one pod */
        s->pod_ip = POD_IP;
        s->pod_port = POD_PORT;
        memcpy(s->pod_mac, POD_MAC, 6);
    }
    for (uint32_t k = 0; k < span; k++) {
        uint16_t port = (uint16_t)(LO + (next + k) % span);
        if (steer_port_mine(port - LO) && !by_port[port - LO]) { /* this worker's ports only */
            next = (uint16_t)((next + k + 1) % span);
            by_port[port - LO] = s;
            s->gwport = port;
            s->pstate = 1;
            struct replay_out o[REPLAY_OUT_MAX];
            int n = replay_start(&RC, &s->rp, &s->f, s->f.len, now_ms(), o);
            tx_pod(s, o, n);
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
    /* XDP counts the requests after the first (bpf/bp_frame.h) from the
     * byte after the flight: if the flight ended with the first request,
     * and the worker relayed no client bytes itself; HTTP/1.1 only */
    const struct ff_request *rq = s->ff ? ff_request(s->ff) : NULL;
    s->h.c2p.rq_seq = s->f.rcv_nxt;
    s->h.c2p.rq_state = KVG_BP_RQ_NONE;
    if (!rq || rq->proto != FF_PROTO_H1)
        s->uf = DECIDE_UF_H2C;
    else if (rq->end != s->f.len || s->c2p_relayed)
        s->uf = DECIDE_UF_FIRST;
    else
        s->h.c2p.rq_state = KVG_BP_RQ_ON;
    if (s->uf)
        S.unframed++;
    /* XDP counts the answers' events from where the worker's count ends
     * (bpf/bp_events.h); HTTP/1.1 only: an h2c answer's events begin
     * behind a frame header, not at a line's start */
    s->h.p2c.rq_state = s->ev_on ? KVG_BP_RQ_EVENTS : KVG_BP_RQ_NONE;
    s->h.p2c.rq_seq = s->ev_seq;
    s->h.p2c.an_match = (uint16_t)s->ev_st;
    s->h.p2c.events = s->events_seen;
    /* the first request's time to first token: XDP takes it at the
     * answer's first event when that has not come yet (bp_events.h; the
     * mark is when kvgated was asked, where kvgated's clock starts; it
     * goes to kvgated with the later requests' times, REQS) */
    s->h.p2c.an_wait_ns = 0;
    if (s->ev_on && !s->first_data_ms && s->asked_ms)
        s->h.p2c.an_wait_ns = s->asked_ms * 1000000ull; /* even: no KVG_BP_TTFT_BITS */
    /* pod -> client first: an answer that overtakes the hand-off is still
     * translated (BYPASS.md) */
    if (FLOWS_FD < 0 || bpf_map_update_elem(FLOWS_FD, &s->h.p2c_key, &s->h.p2c, BPF_ANY) ||
        bpf_map_update_elem(FLOWS_FD, &s->h.c2p_key, &s->h.c2p, BPF_ANY)) {
        s->outcome = DECIDE_REJECTED;
        tx_reset_client(s, NULL);
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

/* ---- frames ---- */

/* The answer events in a pod segment the worker relays itself (before
 * the hand-off, or a late one after it), in order with what it scanned
 * before (bpf/bp_events.h); HTTP/1.1 flows only (ev_on). */
static uint32_t answer_events(struct slot *s, const struct pkt_tcp *p)
{
    if (!s->ev_on)
        return 0;
    __u64 gaps = 0;
    uint32_t k = bp_ev_feed(&s->ev_seq, &s->ev_st, p->seg.seq, p->seg.data, p->seg.len, &gaps);
    S.answer_event_gaps += gaps;
    S.answer_events += k;
    return k;
}

/* A frame from the pod to one of the worker's source ports. */
static void pod_frame(const uint8_t *data, size_t len, const struct pkt_tcp *p)
{
    S.pod_frames++;
    uint16_t port = ntohs(p->t.dport);
    /* only this worker's ports: another's slot is never touched here
     * (steer.h hands their frames over before this) */
    struct slot *s = by_port && steer_port_mine(port - LO) ? by_port[port - LO] : NULL;
    if (!s || p->t.saddr != s->pod_ip || p->t.sport != s->pod_port) {
        S.unknown_pod++;
        return;
    }
    if (s->pstate == 3) {
        podreset_input(s, p, 1);
        return;
    }
    if (s->pstate == 2 && podreset_pod_down(s)) { /* XDP: POD_DOWN */
        podreset_start(s, now_ms());
        podreset_input(s, p, 1);
        return;
    }
    if (s->pstate == 2) { /* XDP should have taken it: a late one */
        S.late_pod++;
        s->events_late += answer_events(s, p); /* XDP's count goes on past it */
        tx_relay(data, len, &s->h.p2c);
        return;
    }
    struct replay_out o[REPLAY_OUT_MAX];
    int n = 0;
    unsigned ev = replay_input(&RC, &s->rp, &p->seg, now_ms(), o, &n);
    tx_pod(s, o, n);
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
        s->ev_seq = s->rp.irs + 1; /* the answer's first byte */
        const struct ff_request *rq = s->ff ? ff_request(s->ff) : NULL;
        s->ev_on = rq && rq->proto == FF_PROTO_H1;
    }
    if (ev & (RP_EV_REFUSED | RP_EV_RESET | RP_EV_FAILED)) {
        if (ev & RP_EV_REFUSED)
            S.refused++;
        s->outcome = DECIDE_POD_ERROR;
        tx_reset_client(s, NULL);
        drop_flow(s);
        return;
    }
    if ((ev & RP_EV_POD_DATA) && s->have_h) { /* the answer began before the hand-off */
        S.pod_data_relayed++;
        if (!s->first_data_ms)
            s->first_data_ms = now_ms();
        s->events_seen += answer_events(s, p);
        tx_relay(data, len, &s->h.p2c);
    }
    if (ev & RP_EV_DONE)
        hand_off(s);
}


/* The first request is whole (or not for the bypass): counted; with
 * --decide kvgated is asked for the pod; replayed to the pod with --pod;
 * else the connection is reset. */
static void first_request(struct slot *s, const struct pkt_tcp *in, enum ff_status st)
{
    const struct ff_request *rq = ff_request(s->ff);
    stats_last_begin();
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
    stats_last_end(now_ms());
    if (st == FF_DONE && DC) {
        sess_ask(s);
        return;
    }
    if (st == FF_DONE && have_pod && start_replay(s) == 0)
        return;
    if (st == FF_HAND_UP) { /* to kvgated as a kernel socket, else reset (handup.h) */
        handup_or_reset(s, in, handup_cause_ff(rq->cause));
        return;
    }
    tx_reset_client(s, in);
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
        sess_err_input(s, &p);
        return;
    }
    if (s && s->pstate == 3) {
        podreset_input(s, &p, 0);
        return;
    }
    if (s && s->pstate == 2 && podreset_pod_down(s)) { /* XDP: POD_DOWN */
        podreset_start(s, now);
        podreset_input(s, &p, 0);
        return;
    }
    if (s && s->pstate == 2 && boundary_input(s, data, len, &p)) /* XDP held it */
        return;
    if (s && s->pstate) { /* the client's side of a flow being handed off */
        if (s->pstate == 2)
            S.late_client++;
        if (s->have_h) {
            tx_relay(data, len, &s->h.c2p);
            if (p.seg.len)
                s->c2p_relayed = 1; /* bytes XDP's framing will not see */
        }
        return;
    }
    if (!s) {
        if ((p.seg.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) == TCPF_SYN) {
            S.syn++;
            s = lookup(&p.t, 1);
            if (!s) { /* the table is full: a cookie */
                S.table_full++;
                tcpep_syn_cookie(&C, &p.t, &p.seg, now / 1000, &r);
                tx_reply(&p, &r);
                return;
            }
            s->ff = sess_new_ff(s);
            if (!s->ff) {
                drop_flow(s);
                return;
            }
            memcpy(s->smac, p.smac, 6);
            memcpy(s->dmac, p.dmac, 6);
            tcpep_syn(&C, &p.t, &p.seg, now, &s->f, &r);
            tx_reply(&p, &r);
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
            s->ff = sess_new_ff(s);
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
    tx_reply(&p, &r);
    if (ev & TE_EV_ESTABLISHED) {
        S.established++;
        s->est_ms = now;
    }
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
        else
            handup_no_room(s, &p); /* the rest cannot fit: kvgated reads it (handup.h) */
        return;
    }
    if (ev & TE_EV_FIN) { /* the client gave up before its request was whole */
        struct tcpep_reply rr = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = s->f.iss + 1,
                                 .ack = s->f.rcv_nxt, .wscale = -1};
        tx_reply(&p, &rr);
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
    /* idle: neither side sent a packet for IDLE_LOOKS looks (a pod still
     * prefilling looks idle too: kvgated then sees it in the pod's own
     * running count at the next scrape, never a connection that idles
     * counted as a request) */
    uint64_t pk = (hc ? c.packets : 0) + (hp ? p.packets : 0);
    if (pk != s->last_pk) {
        s->last_pk = pk;
        s->quiet_looks = 0;
    } else if (s->quiet_looks < IDLE_LOOKS) {
        s->quiet_looks++;
    }
    s->idle = s->quiet_looks >= IDLE_LOOKS;
    sess_ttft(s, hp ? &p : NULL); /* their times to first token, then */
    sess_reqs(s, hc ? &c : NULL); /* the requests XDP framed since the last look */
    if (podreset_pod_down(s)) { /* a quiet flow whose pod went down: no packet told XDP */
        podreset_start(s, now);
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
    if (hp && p.events > s->events_seen)
        s->events_seen = p.events;
    if (!hp) { /* put back from the worker's copy: where XDP's scan was is lost with it */
        s->h.p2c.events = s->events_seen;
        s->h.p2c.an_wait_ns = 0;
        s->h.p2c.ttft_n = s->ttft_n_seen;
        s->h.p2c.ttft_sum_us = s->ttft_us_seen;
        s->h.p2c.rq_state = KVG_BP_RQ_NONE;
        if (!bpf_map_update_elem(FLOWS_FD, &s->h.p2c_key, &s->h.p2c, BPF_NOEXIST))
            S.reinstalled++;
    }
    if (!hc) { /* put back from the worker's copy: what XDP framed is lost with it */
        s->h.c2p.requests = s->reqs_seen;
        s->h.c2p.rq_body_bytes = s->body_seen;
        s->h.c2p.rq_state = KVG_BP_RQ_NONE;
        if (!s->uf) {
            s->uf = DECIDE_UF_LOST;
            S.unframed++;
        }
        if (!bpf_map_update_elem(FLOWS_FD, &s->h.c2p_key, &s->h.c2p, BPF_NOEXIST))
            S.reinstalled++;
    }
}

/* One used slot's timers (s may be forgotten here: its bit is cleared,
 * the walk above goes on with the bits it read). */
static void timer_slot(struct slot *s, uint64_t now)
{
    if (s->used && s->pstate == 2) {
        watch(s, now);
        return;
    }
    if (s->used && s->pstate == 3) {
        podreset_timer(s, now);
        return;
    }
    if (s->used && s->pstate == 1) {
        struct replay_out o[REPLAY_OUT_MAX];
        int n = 0;
        unsigned ev = replay_timer(&RC, &s->rp, now, o, &n);
        tx_pod(s, o, n);
        if (ev & RP_EV_FAILED) {
            s->outcome = DECIDE_POD_ERROR;
            tx_reset_client(s, NULL);
            drop_flow(s);
        }
        return;
    }
    if (s->used && s->dstate == D_ERR) {
        if (now < s->resp_at_ms)
            return;
        if (s->resp_tries < ERR_TRIES) {
            sess_send_error_answer(s);
        } else {
            tx_reset_client(s, NULL);
            drop_flow(s);
        }
        return;
    }
    if (s->used && s->dstate == D_WAIT && now > s->asked_ms + DECIDE_WAIT_MS) {
        S.decide_timeouts++;
        s->dstate = D_NONE; /* a late answer finds it gone (stale) */
        sess_answer_error(s, 503, "no routing decision in time");
        return;
    }
    if (s->used && s->dstate == D_MAC) {
        if (sess_resolve_mac(s)) {
            sess_go_replay(s);
        } else if (now > s->mac_until_ms) {
            S.mac_failed++;
            s->outcome = DECIDE_REJECTED;
            sess_answer_error(s, 503, "the bypass cannot reach the pod kvgated chose (no MAC)");
        }
        return;
    }
    if (s->used && handup_quiet(s, now)) /* silent since the handshake: to kvgated */
        return;
    if (!s->used || s->f.st != TE_SYN_RCVD)
        return;
    struct tcpep_reply r;
    unsigned ev = tcpep_timer(&C, &s->f, now, &r);
    if (r.send) /* the SYN-ACK again, to where the SYN came from */
        tx_reply_flow(s, &r);
    if (ev & TE_EV_TIMEOUT) {
        S.timeouts++;
        drop_flow(s);
    }
}

static void timers(void)
{
    uint64_t now = now_ms();
    for (uint32_t w = 0; w < NFLOWS / 64; w++)
        for (uint64_t bits = used_bits[w]; bits; bits &= bits - 1)
            timer_slot(&flows[w * 64 + (uint32_t)__builtin_ctzll(bits)], now);
}


/* What each worker sets up in its own thread (worker 0: main, before
 * EAL): its flow table, its channels to kvgated. 0, or -1 after a line. */
static const char *decide_path, *adopt_path;
static int xsk_of[STEER_MAX] = {-1, -1, -1, -1, -1, -1, -1, -1}; /* each queue's socket */

static int worker_init(void)
{
    C = C_all;
    budget.used = 0;
    budget.max = max_buffered / NW;
    C.global = &budget;
    flows = calloc(NFLOWS, sizeof(*flows));
    if (!flows) {
        fprintf(stderr, "kvg-bypassd: worker %u: no memory for its flow table\n", W);
        return -1;
    }
    stats_register();
    if (decide_path) {
        DC = dcli_new(decide_path, 64u << 20);
        if (!DC) {
            fprintf(stderr, "kvg-bypassd: --decide %s: path too long or out of memory\n",
                    decide_path);
            return -1;
        }
    }
    if (adopt_path && handup_open(adopt_path)) { /* kvgated's bypass.adopt_socket (handup.h) */
        fprintf(stderr, "kvg-bypassd: --adopt %s: path too long\n", adopt_path);
        return -1;
    }
    if (adopt_path && DC) /* kvgated may answer HANDUP: what is not for the bypass goes up */
        dcli_set_flags(DC, DECIDE_F_HANDUP);
    handup_register();
    return 0;
}

/* At the worker's end, in its thread: its flows forgotten (DONE shutdown
 * to kvgated), its channels closed. */
static void worker_fini(void)
{
    for (uint32_t i = 0; flows && i < NFLOWS; i++)
        if (flows[i].used) {
            flows[i].outcome = DECIDE_SHUTDOWN;
            drop_flow(&flows[i]);
        }
    if (DC) { /* the DONEs out, best effort; kvgated releases the rest when we close */
        dcli_poll(DC, now_ms(), sess_on_answer, NULL);
        dcli_free(DC);
        DC = NULL;
    }
    handup_close();
}

/* A frame this worker owns (steer.h), or one handed to its owner. */
static void frame_in(struct rte_mbuf *m, int steer)
{
    if (m->nb_segs != 1) {
        S.bad_frames++; /* jumbo chains: not on this path */
    } else {
        const uint8_t *d = rte_pktmbuf_mtod(m, const uint8_t *);
        uint16_t len = rte_pktmbuf_data_len(m);
        unsigned o = steer ? steer_owner(d, len) : W;
        if (o != W) {
            steer_pass(m, o); /* the owner frees it */
            return;
        }
        frame(d, len);
    }
    rte_pktmbuf_free(m);
}

/* The loop of worker W (lcore W, queue W); worker 0 also beats the
 * entry's heartbeat and writes the stats file. */
static const char *stats_path;

static int worker_loop(void *arg)
{
    W = (unsigned)(uintptr_t)arg;
    if (W && worker_init()) {
        stop = 1;
        return -1;
    }
    idle_use(&xsk_of[W], xsk_of[W] >= 0);
    S.idle_socks = xsk_of[W] >= 0;
    uint64_t next_timer = now_ms() + 10, next_stats = W ? UINT64_MAX : 0;
    unsigned idle = 0;
    while (!stop) {
        struct rte_mbuf *rx[BURST];
        uint16_t n = rte_eth_rx_burst(PORT, (uint16_t)W, rx, BURST);
        S.rx += n;
        for (uint16_t i = 0; i < n; i++)
            frame_in(rx[i], 1);
        steer_kick();
        unsigned k = steer_take(rx, BURST); /* frames other workers got for our flows */
        for (unsigned i = 0; i < k; i++)
            frame_in(rx[i], 0);
        tx_flush();
        uint64_t now = now_ms();
        if (DC) { /* kvgated's answers; never blocks */
            uint32_t gen = dcli_gen(DC);
            if (dcli_poll(DC, now, sess_on_answer, NULL) & DCLI_EV_DOWN)
                sess_decide_down(gen);
            tx_flush();
        }
        /* the flows' timers every 10 ms while there are flows; with none,
         * only the channel's (kvgated reconnects, the pass-entry sweep),
         * every 100 ms: an idle worker wakes ~10 times a second */
        if (S.flows_now && next_timer > now + 10)
            next_timer = now + 10;
        if (now >= next_timer) {
            S.buffered = budget.used; /* a gauge: first-flight bytes held now */
            timers();
            handup_timer(now);
            tx_flush();
            /* no flow: at the stats' next tick (one wake-up for both) */
            next_timer = S.flows_now ? now + 10 : next_stats > now && next_stats < now + 100
                                                      ? next_stats
                                                      : now + 100;
        }
        if (now >= next_stats) {
            bpe_heartbeat(&E, now * 1000000ull);
            stats_write(stats_path);
            next_stats = now + 100;
        }
        if (n || k) {
            idle = 0;
        } else if (++idle > IDLE_POLLS && steer_sleep()) {
            /* never spin a shared core: block until a frame, kvgated's
             * answer, a frame another worker passed, or the next timer
             * (idle.h) */
            short ev = 0;
            int fd = DC ? dcli_pollfd(DC, &ev) : -1;
            uint64_t due = next_timer < next_stats ? next_timer : next_stats;
            now = now_ms();
            if (idle_wait(fd, ev, steer_wake_fd(), due > now ? (int)(due - now) : 0))
                S.idle_waits++;
            else
                S.idle_sleeps++;
            steer_awake();
        }
    }
    if (W) /* worker 0's end: main's, once the others are done */
        worker_fini();
    return 0;
}

/* The port with nq queues, each with a pool of its own; the AF_XDP socket
 * the driver opens for each queue into xsk_of (idle.h). 0 or -1. */
static int port_setup(unsigned nq)
{
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (rte_eth_dev_configure(PORT, (uint16_t)nq, (uint16_t)nq, &conf))
        return -1;
    for (unsigned q = 0; q < nq; q++) {
        char name[32];
        snprintf(name, sizeof(name), "kvgbp%u", q);
        struct rte_mempool *mp = rte_pktmbuf_pool_create(
            name, 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
        if (!mp)
            return -1;
        if (!q)
            MP = mp; /* what the workers build their own segments in */
        int before[IDLE_MAX_SOCKS * 2], after[IDLE_MAX_SOCKS * 2];
        int nb = idle_scan(before, IDLE_MAX_SOCKS * 2);
        if (rte_eth_rx_queue_setup(PORT, (uint16_t)q, 1024, (unsigned)rte_eth_dev_socket_id(PORT),
                                   NULL, mp) ||
            rte_eth_tx_queue_setup(PORT, (uint16_t)q, 1024, (unsigned)rte_eth_dev_socket_id(PORT),
                                   NULL))
            return -1;
        int na = idle_scan(after, IDLE_MAX_SOCKS * 2), fresh = 0;
        for (int a = 0; a < na; a++) { /* the one socket that was not there before */
            int old = 0;
            for (int b = 0; b < nb; b++)
                old |= after[a] == before[b];
            if (!old)
                xsk_of[q] = after[a], fresh++;
        }
        if (fresh != 1)
            xsk_of[q] = -1;
    }
    return rte_eth_dev_start(PORT) ? -1 : 0;
}

int main(int argc, char **argv)
{
    const char *iface = NULL, *obj = NULL, *stats = NULL;
    int port = 0;
    unsigned nq = 1;
    unsigned long long max_body = 32ull << 20;
    const char *pod = NULL, *pod_mac = NULL, *gw_ip = NULL, *decide = NULL, *adopt = NULL;
    const char *pods_pin = KVG_PIN_DIR_DEFAULT "/" KVG_PIN_MAPS_SUBDIR "/" KVG_MAP_PODS;
    const char *guard_pin = KVG_PIN_DIR_DEFAULT "/" KVG_PROG_XDP_GUARD;
    static const struct option opts[] = {{"iface", 1, 0, 'i'}, {"port", 1, 0, 'p'},
                                         {"xdp-obj", 1, 0, 'x'}, {"stats", 1, 0, 's'},
                                         {"max-body", 1, 0, 'b'}, {"pod", 1, 0, 'P'},
                                         {"pod-mac", 1, 0, 'M'}, {"gw-ip", 1, 0, 'G'},
                                         {"src-ports", 1, 0, 'R'}, {"decide", 1, 0, 'D'},
                                         {"pods-pin", 1, 0, 'T'}, {"adopt", 1, 0, 'A'},
                                         {"guard-pin", 1, 0, 'g'}, {"queues", 1, 0, 'q'},
                                         {"max-buffered", 1, 0, 'B'}, {0, 0, 0, 0}};
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
        case 'A': adopt = optarg; break;
        case 'T': pods_pin = *optarg ? optarg : NULL; break;
        case 'g': guard_pin = *optarg ? optarg : NULL; break;
        case 'B': {
            char *end;
            max_buffered = strtoull(optarg, &end, 10);
            if (*end || max_buffered < 65536)
                goto usage;
            break;
        }
        case 'q': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || !v || v > STEER_MAX)
                goto usage;
            nq = (unsigned)v;
            break;
        }
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
        (decide && (pod || !gw_ip)) || (uint32_t)(HI - LO) + 1 < nq) {
    usage:
        fprintf(stderr, "usage: kvg-bypassd --iface IF --port N --xdp-obj FILE [--stats FILE] "
                        "[--max-body BYTES] [--max-buffered BYTES] [--queues N]\n"
                        "         [--pod IP:PORT --pod-mac MAC --gw-ip IP [--src-ports LO-HI]]\n"
                        "         [--decide SOCKET --gw-ip IP [--pod-mac MAC] [--src-ports LO-HI]\n"
                        "          [--pods-pin PATH]]\n"
                        "         [--adopt SOCKET] [--guard-pin PATH]\n"
                        "  --queues N: one worker per queue, queues 0..N-1 (N <= %d, and no more\n"
                        "              than the source ports)\n"
                        "  --max-buffered BYTES: first-flight bytes all workers may hold (>= 65536;\n"
                        "              256 MiB), split evenly between them\n",
                STEER_MAX);
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
    }
    if (decide) { /* kvgated picks each pod; its MAC from --pod-mac or the kernel */
        struct in_addr g;
        if (inet_pton(AF_INET, gw_ip, &g) != 1 || (pod_mac && netaddr_parse_mac(pod_mac, POD_MAC)))
            goto usage;
        GW_IP = g.s_addr;
        have_pod_mac = pod_mac != NULL;
    }
    if (pod || decide) { /* the source ports: shared, each worker uses its own (steer.h) */
        by_port = calloc((size_t)(HI - LO) + 1, sizeof(*by_port));
        if (!by_port) {
            fprintf(stderr, "kvg-bypassd: out of memory\n");
            return 1;
        }
    }
    decide_path = decide;
    adopt_path = adopt;
    stats_path = stats;
    NW = nq; /* the budget's share (steer_init sets it again) */
    if (tcpep_cfg_default(&C_all)) {
        fprintf(stderr, "kvg-bypassd: no random key: %s\n", strerror(errno));
        return 1;
    }
    if (worker_init()) /* worker 0's, here: its errors before anything starts */
        return 1;
    IFNAME = iface;
    replay_cfg_default(&RC);
    if (access(obj, R_OK)) {
        fprintf(stderr, "kvg-bypassd: %s: %s\n", obj, strerror(errno));
        return 1;
    }
    FC.max_head = 65536;
    FC.max_body = max_body;
    char prefix[64], vdev[512], msg[512], lcores[16], mem[16];
    if (bpe_release_guard(iface, msg, sizeof(msg)))
        printf("kvg-bypassd: %s\n", msg);
    snprintf(prefix, sizeof(prefix), "kvgbp%d", (int)getpid());
    snprintf(vdev, sizeof(vdev), "net_af_xdp0,iface=%s,start_queue=0,queue_count=%u,xdp_prog=%s",
             iface, nq, obj);
    snprintf(lcores, sizeof(lcores), nq > 1 ? "0-%u" : "0", nq - 1);
    snprintf(mem, sizeof(mem), "%u", nq > 2 ? 128 + 64 * nq : 256); /* 256 MB as before, or more */
    char *eal[] = {argv[0], "-l", lcores, "--no-huge", "-m", mem, "--no-pci", "--no-shconf",
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
    if (rte_lcore_count() != nq) {
        fprintf(stderr, "kvg-bypassd: --queues %u needs %u cores (lcores 0-%u); EAL has %u\n", nq,
                nq, nq - 1, rte_lcore_count());
        goto out;
    }
    RTE_ETH_FOREACH_DEV(PORT) break;
    if (port_setup(nq) || steer_init(nq)) {
        fprintf(stderr, "kvg-bypassd: port set-up failed on %s (%u queue%s): %s\n", iface, nq,
                nq > 1 ? "s" : "", rte_strerror(rte_errno));
        goto stop_port;
    }
    /* kvgated's pod table: only its slots (--decide) name entries in it */
    if ((rc = bpe_open(&E, iface, obj, DC ? pods_pin : NULL, guard_pin, (uint16_t)port, by_port ? LO : 0,
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
    S.guard_chained = (uint64_t)E.guard;
    if (E.guard)
        printf("kvg-bypassd: what the entry leaves to the kernel goes through kvgated's XDP guard "
               "(%s)\n", guard_pin);
    else
        printf("kvg-bypassd: no XDP guard behind the entry: %s\n", E.guard_why);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    unsigned found = 0;
    for (unsigned q = 0; q < nq; q++)
        found += xsk_of[q] >= 0;
    if (found < nq)
        printf("kvg-bypassd: no AF_XDP socket found to wait on for %u of %u queues: their idle "
               "polls sleep 200 us\n", nq - found, nq);
    if (nq > 1)
        printf("kvg-bypassd: %u workers, one per queue (lcores 0-%u, queues 0-%u)\n", nq, nq - 1,
               nq - 1);
    printf("kvg-bypassd: on %s, TCP port %d to the worker, the rest to the kernel\n", iface, port);
    fflush(stdout);
    unsigned w = 1, lc;
    RTE_LCORE_FOREACH_WORKER(lc) {
        if (rte_eal_remote_launch(worker_loop, (void *)(uintptr_t)w, lc)) {
            fprintf(stderr, "kvg-bypassd: worker %u (lcore %u) did not start: queue %u goes "
                            "unpolled; stopping\n", w, lc, w);
            stop = 1;
        }
        w++;
    }
    worker_loop((void *)(uintptr_t)0);
    stop = 1;
    rte_eal_mp_wait_lcore(); /* the others finish their flows in their own threads */
    worker_fini(); /* then worker 0's: nothing passes it frames any more */
    steer_drain();
    stats_write(stats);
    struct bp_stats t;
    stats_total(&t);
    printf("kvg-bypassd: rx %llu tx %llu syn %llu established %llu first requests %llu "
           "hand-ups %llu resets %llu\n",
           (unsigned long long)t.rx, (unsigned long long)t.tx, (unsigned long long)t.syn,
           (unsigned long long)t.established, (unsigned long long)t.first_requests,
           (unsigned long long)t.hand_ups, (unsigned long long)t.resets);
    rc = 0;
stop_port:
    rte_eth_dev_stop(PORT);
    rte_eth_dev_close(PORT); /* detaches the entry program, ours or the driver's */
out:
    worker_fini(); /* worker 0's (what the loop did not already) */
    bpe_close(&E);
    rte_eal_cleanup();
    return rc;
}
