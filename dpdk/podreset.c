/* podreset: a spliced flow whose pod went down (podreset.h). */
#include "podreset.h"

#include <string.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "session.h"
#include "stats.h"
#include "txq.h"


/* Both entries of s with this action and pod slot (their counters as XDP
 * left them); the worker's copies too, for a reinstall.
 *
 * The write is not atomic with XDP's updates on another CPU: what XDP adds
 * between the lookup and the update is lost, and the lookup may read a
 * half-written entry (a new rq_seq with an old rq_body_left), which XDP
 * would then take as where a head starts. So the client -> pod entry goes
 * back not framing (KVG_BP_RQ_NONE, its count what the worker has seen),
 * as the watch path puts back an evicted one: the requests the flow
 * counted stop there (uf lost) and the total the worker reports never
 * goes backwards. */
void podreset_entries_set(struct slot *s, uint8_t action, uint32_t pod_slot)
{
    const struct kvg_bp_key *k[2] = {&s->h.p2c_key, &s->h.c2p_key};
    struct kvg_bp_flow *v[2] = {&s->h.p2c, &s->h.c2p};
    for (int i = 0; i < 2; i++) {
        v[i]->action = action;
        v[i]->pod_slot = pod_slot;
        struct kvg_bp_flow e;
        if (FLOWS_FD < 0)
            continue;
        int found = !bpf_map_lookup_elem(FLOWS_FD, k[i], &e);
        if (!found)
            e = *v[i];
        if (v[i] == &s->h.c2p) {
            if (found)
                sess_reqs(s, &e); /* what XDP counted so far, its stop reason */
            if (e.rq_state == KVG_BP_RQ_ON && !s->uf) {
                s->uf = DECIDE_UF_LOST;
                S.unframed++;
            }
            e.rq_state = v[i]->rq_state = KVG_BP_RQ_NONE;
            e.requests = v[i]->requests = s->reqs_seen;
            e.rq_body_bytes = v[i]->rq_body_bytes = s->body_seen;
        } else { /* the answers' events so far (DONE reports them), their times */
            if (found && e.events > s->events_seen)
                s->events_seen = e.events;
            if (found)
                sess_ttft(s, &e);
            else /* the hand-off's copy: its mark is long gone */
                e.an_wait_ns = v[i]->an_wait_ns = 0;
            e.events = v[i]->events = s->events_seen;
            e.ttft_n = v[i]->ttft_n = s->ttft_n_seen;
            e.ttft_sum_us = v[i]->ttft_sum_us = s->ttft_us_seen;
        }
        e.action = action;
        e.pod_slot = pod_slot;
        bpf_map_update_elem(FLOWS_FD, k[i], &e, BPF_ANY);
    }
}

/* Is the pod of s down by kvgated's table? Only while the kvgated that
 * routed s keeps the table: a kvgated that stops closes the decision
 * channel, then zeroes the table, and a close not read yet would make
 * every pod look gone; so the channel is read first. */
/* Has XDP forwarded a FIN or a RST both ways (the connection is over,
 * lingering until the watch forgets it: nothing to reset)? */
static int closed_both_ways(const struct slot *s)
{
    struct kvg_bp_flow c, p;
    const uint32_t end = KVG_BP_F_FIN | KVG_BP_F_RST;
    return FLOWS_FD >= 0 && !bpf_map_lookup_elem(FLOWS_FD, &s->h.c2p_key, &c) &&
           !bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &p) && (c.flags & end) &&
           (p.flags & end);
}

int podreset_pod_down(struct slot *s)
{
    if (!s->checked || bpe_pod_fit(&E, s->pod_slot, s->pod_ip, s->pod_port) != 0 ||
        closed_both_ways(s))
        return 0;
    uint32_t gen = dcli_gen(DC);
    if (dcli_poll(DC, now_ms(), sess_on_answer, NULL) & DCLI_EV_DOWN)
        sess_decide_down(gen); /* unchecks the flows it routed, s among them */
    return s->checked;
}

/* The pod of s went down: the worker takes the flow back from XDP (both
 * entries: action worker, so every packet of it comes here whatever the
 * pod's state does next), resets each side with the numbers that side's
 * next packet carries (the one that came, or its answer to a probe), and
 * reports DONE pod_down when both are reset or after RESET_MS. */
void podreset_start(struct slot *s, uint64_t now)
{
    S.pod_down++;
    s->pstate = 3;
    s->outcome = DECIDE_POD_DOWN;
    s->reset_done = 0;
    s->reset_until_ms = now + RESET_MS;
    s->probe_at_ms = now; /* the next timer tick probes a side not heard from */
    podreset_entries_set(s, KVG_BP_ACT_WORKER, s->pod_slot);
}

/* A segment of s (pstate 3) from the client or the pod: a RST ends that
 * side; any other with an ACK says what the side expects next, and gets
 * a RST with exactly that sequence number (RFC 5961: a RST elsewhere in
 * the window only draws a challenge ACK). */
void podreset_input(struct slot *s, const struct pkt_tcp *p, int from_pod)
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
        tx_reply(p, &r);
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
    tx_out(&o);
}

void podreset_timer(struct slot *s, uint64_t now)
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
