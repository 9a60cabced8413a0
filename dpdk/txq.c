/* txq: frames out (txq.h). */
#include "txq.h"

#include <string.h>

#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "stats.h"
#include "steer.h"

struct rte_mempool *MP;
uint16_t PORT;
static __thread struct rte_mbuf *txq[BURST * 4]; /* this worker's (steer.h) */
static __thread unsigned ntx;

void tx_flush(void)
{
    if (!ntx)
        return;
    uint16_t n = rte_eth_tx_burst(PORT, (uint16_t)W, txq, (uint16_t)ntx);
    S.tx += n;
    for (unsigned i = n; i < ntx; i++) {
        rte_pktmbuf_free(txq[i]);
        S.tx_dropped++;
    }
    ntx = 0;
}

/* m holds a frame of n bytes: onto the transmit queue. */
void tx_frame(struct rte_mbuf *m, size_t n)
{
    m->data_len = (uint16_t)n;
    m->pkt_len = (uint32_t)n;
    txq[ntx++] = m;
    if (ntx == sizeof(txq) / sizeof(txq[0]))
        tx_flush();
}

/* A segment the worker makes (to the client or the pod), built and queued. */
void tx_out(const struct pkt_out *o)
{
    struct rte_mbuf *m = rte_pktmbuf_alloc(MP);
    size_t n = m ? pkt_build(o, rte_pktmbuf_mtod(m, uint8_t *), rte_pktmbuf_tailroom(m)) : 0;
    if (!n) {
        if (m)
            rte_pktmbuf_free(m);
        S.tx_dropped++;
        return;
    }
    tx_frame(m, n);
}

void tx_reply(const struct pkt_tcp *in, const struct tcpep_reply *r)
{
    if (!r->send)
        return;
    if (r->flags == (TCPF_SYN | TCPF_ACK))
        S.synack++;
    struct pkt_out o;
    pkt_reply(in, r, &o);
    tx_out(&o);
}

/* A frame as it came, rewritten as XDP would (bp_rewrite.h) and sent:
 * the packets of a flow that reach the worker around the hand-off. */
void tx_relay(const uint8_t *data, size_t len, const struct kvg_bp_flow *f)
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
    tx_frame(m, len);
}

/* The replay's segments to the pod, as frames. */
void tx_pod(struct slot *s, const struct replay_out *o, int n)
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
        tx_out(&po);
    }
}

void tx_reply_flow(const struct slot *s, const struct tcpep_reply *r)
{
    struct pkt_tcp p;
    memset(&p, 0, sizeof(p));
    memcpy(p.smac, s->smac, 6);
    memcpy(p.dmac, s->dmac, 6);
    p.t = s->t;
    tx_reply(&p, r);
}

void tx_reset_client(struct slot *s, const struct pkt_tcp *in)
{
    struct tcpep_reply r = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = s->f.iss + 1,
                            .ack = s->f.rcv_nxt, .wscale = -1};
    if (in)
        tx_reply(in, &r);
    else
        tx_reply_flow(s, &r);
    S.resets++;
}
