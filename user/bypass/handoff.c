/* handoff: see handoff.h. */
#include "bypass/handoff.h"

#include <string.h>

void handoff_entries(const struct handoff_ends *e, const struct tcpep_flow *cf,
                     const struct replay *rp, uint32_t pod_slot, struct handoff *h)
{
    memset(h, 0, sizeof(*h));
    h->c2p_key = (struct kvg_bp_key){.saddr = e->client_addr, .daddr = e->vip,
                                     .sport = e->client_port, .dport = e->vport,
                                     .family = KVG_AF_INET};
    struct kvg_bp_flow *c = &h->c2p;
    c->saddr = e->gw_addr;
    c->daddr = e->pod_addr;
    c->sport = e->gw_port;
    c->dport = e->pod_port;
    memcpy(c->smac, e->gw_pod_mac, 6);
    memcpy(c->dmac, e->pod_mac, 6);
    c->seq_delta = 0;                /* the pod-side connection began at the client's ISN */
    c->ack_delta = rp->irs - cf->iss; /* the worker's sequence space -> the pod's */
    /* the pod agreed to the client's scale, or declined scaling altogether */
    c->win_shl = rp->pod_ws < 0 && cf->peer_ws > 0 ? (uint8_t)cf->peer_ws : 0;
    c->win_shr = 0;
    c->action = KVG_BP_ACT_REWRITE;
    c->pod_slot = pod_slot;

    h->p2c_key = (struct kvg_bp_key){.saddr = e->pod_addr, .daddr = e->gw_addr,
                                     .sport = e->pod_port, .dport = e->gw_port,
                                     .family = KVG_AF_INET};
    struct kvg_bp_flow *p = &h->p2c;
    p->saddr = e->vip;
    p->daddr = e->client_addr;
    p->sport = e->vport;
    p->dport = e->client_port;
    memcpy(p->smac, e->gw_client_mac, 6);
    memcpy(p->dmac, e->client_mac, 6);
    p->seq_delta = cf->iss - rp->irs;
    p->ack_delta = 0;
    p->win_shl = rp->pod_ws > 0 ? (uint8_t)rp->pod_ws : 0;
    p->win_shr = cf->our_ws;
    p->action = KVG_BP_ACT_REWRITE;
    p->pod_slot = pod_slot;
}

void handoff_watch_start(struct handoff_watch *w, uint64_t now_ms)
{
    w->packets = 0;
    w->quiet_since_ms = now_ms;
}

enum handoff_verdict handoff_check(struct handoff_watch *w, const struct kvg_bp_flow *c2p,
                                   const struct kvg_bp_flow *p2c, uint64_t now_ms,
                                   uint32_t linger_ms, uint32_t idle_ms)
{
    uint64_t pk = (c2p ? c2p->packets : 0) + (p2c ? p2c->packets : 0);
    uint32_t fc = c2p ? c2p->flags : 0, fp = p2c ? p2c->flags : 0;
    if (pk != w->packets) {
        w->packets = pk;
        w->quiet_since_ms = now_ms;
    }
    uint64_t quiet = now_ms - w->quiet_since_ms;
    int closed = ((fc | fp) & KVG_BP_F_RST) || ((fc & KVG_BP_F_FIN) && (fp & KVG_BP_F_FIN));
    if (closed && quiet >= linger_ms)
        return HANDOFF_FORGET_CLOSED;
    if (quiet >= idle_ms)
        return HANDOFF_FORGET_IDLE;
    return HANDOFF_KEEP;
}
