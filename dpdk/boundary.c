/* boundary: a spliced connection's next request leaves its pod (boundary.h). */
#include "boundary.h"

#include <string.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "bypass/adopt.h"
#include "bypass/repair.h"
#include "handup.h"
#include "session.h"
#include "stats.h"
#include "txq.h"

/* Why, as kvgated's table says now: draining (an operator's word) before
 * saturated. */
static unsigned cause_of(const struct slot *s)
{
    struct kvg_pod p;
    uint32_t slot = s->pod_slot;
    if (E.pods_fd >= 0 && slot < KVG_POD_MAX && !bpf_map_lookup_elem(E.pods_fd, &slot, &p) &&
        (p.flags & KVG_POD_F_DRAINING))
        return ADOPT_C_DRAINING;
    return ADOPT_C_SATURATED;
}

/* A RST to the old pod at seq (its numbering: the client's next byte as
 * the pod counts it, which is exactly what it expects: RFC 5961), with
 * ack when ack_ok. */
static void reset_pod(const struct slot *s, uint32_t seq, uint32_t ack, int ack_ok)
{
    struct pkt_out o;
    memset(&o, 0, sizeof(o));
    memcpy(o.smac, s->dmac, 6); /* our port's MAC */
    memcpy(o.dmac, s->pod_mac, 6);
    o.saddr = GW_IP;
    o.daddr = s->pod_ip;
    o.sport = htons(s->gwport);
    o.dport = s->pod_port;
    o.seq = seq;
    o.ack = ack_ok ? ack : 0;
    o.flags = ack_ok ? TCPF_RST | TCPF_ACK : TCPF_RST;
    o.wscale = -1;
    tx_out(&o);
    S.resets++;
}

/* s is over here: the pod's entry deleted; the client's entry stays when
 * the hand-up made it a pass entry (handup.h sweeps it), else it goes. */
static void forget(struct slot *s, int keep_c2p)
{
    if (FLOWS_FD >= 0) {
        bpf_map_delete_elem(FLOWS_FD, &s->h.p2c_key);
        if (!keep_c2p)
            bpf_map_delete_elem(FLOWS_FD, &s->h.c2p_key);
    }
    if (by_port && by_port[s->gwport - LO] == s)
        by_port[s->gwport - LO] = NULL;
    s->pstate = 0; /* drop_flow: nothing of XDP's left to delete */
    drop_flow(s);
}

int boundary_input(struct slot *s, const uint8_t *data, size_t len, const struct pkt_tcp *p)
{
    struct kvg_bp_flow c2p, p2c;
    if (FLOWS_FD < 0 || bpf_map_lookup_elem(FLOWS_FD, &s->h.c2p_key, &c2p) ||
        !(c2p.flags & KVG_BP_F_HELD))
        return 0;
    S.boundary_frames++;
    uint32_t pod_seq = c2p.rq_seq + c2p.seq_delta; /* the byte the pod expects next */
    if (p->seg.flags & TCPF_RST) { /* the client gave up while held: so does the pod */
        int have_p = !bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &p2c);
        s->outcome = DECIDE_CLIENT_ABORT;
        sess_done_entries(s, 0, &c2p, have_p ? &p2c : NULL);
        reset_pod(s, pod_seq, 0, 0);
        forget(s, 0);
        return 1;
    }
    if (p->seg.seq != c2p.rq_seq || !p->seg.len || !(p->seg.flags & TCPF_ACK) ||
        (p->seg.flags & TCPF_SYN))
        return 1; /* not the request's first segment: the client sends it again */
    S.boundary_held++;
    int8_t ws = s->f.peer_ws;
    /* a FIN with the request is left out: unacknowledged, the client sends
     * it again, and the kernel socket takes it then */
    struct repair_conn rc = {
        .laddr = s->t.daddr, .lport = s->t.dport, .raddr = s->t.saddr, .rport = s->t.sport,
        .snd_nxt = p->seg.ack, .rcv_nxt = p->seg.seq + p->seg.len,
        .peer_mss = s->f.peer_mss, .peer_ws = ws, .our_ws = ws >= 0 ? s->f.our_ws : 0,
        .peer_wnd = (uint32_t)p->seg.win << (ws > 0 ? ws : 0),
        .data = p->seg.data, .len = p->seg.len};
    int r = handup_mid(&rc, cause_of(s));
    if (r < 0) {
        /* nothing sent: the flow goes on where it was, unframed from here
         * (XDP sees the next segment past rq_seq) */
        struct kvg_bp_flow v = c2p;
        v.flags &= ~(uint32_t)KVG_BP_F_HELD;
        bpf_map_update_elem(FLOWS_FD, &s->h.c2p_key, &v, BPF_EXIST);
        tx_relay(data, len, &s->h.c2p);
        S.boundary_released++;
        return 1;
    }
    /* handed up (0), or the socket went live and the kernel reset the
     * client (1): the old pod's part is over either way. Its DONE counts
     * what XDP counted before the hand-up rewrote the client's entry. */
    int have_p = !bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &p2c);
    s->outcome = DECIDE_OK;
    sess_done_entries(s, 0, &c2p, have_p ? &p2c : NULL);
    reset_pod(s, pod_seq, p->seg.ack + c2p.ack_delta, 1);
    if (r == 0)
        S.boundary_handed_up++;
    else
        S.boundary_failed++;
    forget(s, r == 0);
    return 1;
}
