/* handoff: the two kvg_bp_flows entries (bpf/kvgate.h) with which XDP
 * takes over a flow the worker spliced (issue 12, ../shared/BYPASS.md):
 * client->pod and pod->client, from what the two TCP endpoints agreed
 * (bypass/tcpep.h towards the client, bypass/replay.h towards the pod).
 *
 *   client->pod  the client's packets to the gateway's address leave from
 *                the gateway's pod-side address and port to the pod; the
 *                sequence number stays (the pod-side connection began at
 *                the client's ISN); the acknowledgement moves from the
 *                worker's sequence space towards the client into the
 *                pod's (+ pod ISN - worker ISN); the window field stays,
 *                unless the pod declined window scaling while the client
 *                scales (then it is unscaled for the pod).
 *   pod->client  the pod's packets leave from the gateway's address and
 *                port to the client; the sequence number moves into the
 *                worker's space (+ worker ISN - pod ISN); the window is
 *                rescaled from the pod's scale to the one the worker
 *                announced to the client.
 *
 * The worker inserts pod->client first, then client->pod (BYPASS.md): a
 * pod answer that overtakes the hand-off is still translated. */
#ifndef KVGATE_BYPASS_HANDOFF_H
#define KVGATE_BYPASS_HANDOFF_H

#include <stdint.h>

#include "bypass/replay.h"
#include "bypass/tcpep.h"
#include "kvgate.h"

/* Where the flow's two connections run (addresses and ports in network
 * order, as in the packets). */
struct handoff_ends {
    uint8_t client_mac[6], gw_client_mac[6]; /* the client's next hop, our port's */
    uint32_t client_addr, vip;               /* the client, the address it connected to */
    uint16_t client_port, vport;
    uint8_t pod_mac[6], gw_pod_mac[6];
    uint32_t gw_addr, pod_addr;              /* our source towards the pod, the pod */
    uint16_t gw_port, pod_port;              /* our reserved source port, the pod's */
};

struct handoff {
    struct kvg_bp_key c2p_key, p2c_key;
    struct kvg_bp_flow c2p, p2c;
};

/* The entries for client flow cf replayed as rp (RP_DONE) to the pod in
 * kvg_pods slot pod_slot. */
void handoff_entries(const struct handoff_ends *e, const struct tcpep_flow *cf,
                     const struct replay *rp, uint32_t pod_slot, struct handoff *h);

/* When the worker forgets a flow it handed off (its slot, its source
 * port towards the pod, both entries): XDP marks the FIN and RST it
 * forwards in the entry of that direction (KVG_BP_F_FIN, KVG_BP_F_RST) and
 * counts packets; the worker looks at both entries now and then.
 *
 *   a RST either way, or a FIN each way, then linger_ms without a packet
 *       -> forget (the last ACK and any retransmitted FIN have passed)
 *   idle_ms without a packet                  -> forget (nobody closed it)
 *   else                                      -> keep
 *
 * An entry missing from the map (evicted, or deleted by someone else)
 * counts as no packets and no flags: the caller puts it back while the
 * verdict is keep. */
struct handoff_watch {
    uint64_t packets;          /* both entries' packets when last looked at */
    uint64_t quiet_since_ms;   /* since when that count has not moved */
};

enum handoff_verdict { HANDOFF_KEEP = 0, HANDOFF_FORGET_CLOSED, HANDOFF_FORGET_IDLE };

/* Starts watching at the hand-off. */
void handoff_watch_start(struct handoff_watch *w, uint64_t now_ms);

/* The verdict for the entries as read now (c2p, p2c: NULL when missing). */
enum handoff_verdict handoff_check(struct handoff_watch *w, const struct kvg_bp_flow *c2p,
                                   const struct kvg_bp_flow *p2c, uint64_t now_ms,
                                   uint32_t linger_ms, uint32_t idle_ms);

#endif
