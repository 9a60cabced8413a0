/* txq: kvg-bypassd's frames out (worker.h): the worker's transmit queue
 * (its queue's, steer.h) drained
 * once per turn of the loop (tx_flush), unsent mbufs freed and counted;
 * segments the worker builds (to the client or the pod) and frames it
 * rewrites as XDP would (the packets of a flow that reach it around the
 * hand-off). */
#ifndef KVGATE_DPDK_TXQ_H
#define KVGATE_DPDK_TXQ_H

#include <stddef.h>
#include <stdint.h>

#include "worker.h"

struct rte_mempool;
struct rte_mbuf;

extern struct rte_mempool *MP; /* the port's pool, set by main */
extern uint16_t PORT;          /* the af_xdp port */

void tx_flush(void);
/* m holds a frame of n bytes: onto the transmit queue. */
void tx_frame(struct rte_mbuf *m, size_t n);
/* A segment the worker makes (to the client or the pod), built and queued. */
void tx_out(const struct pkt_out *o);
/* The reply tcpep computed to the segment in, if any. */
void tx_reply(const struct pkt_tcp *in, const struct tcpep_reply *r);
/* The same, to s's client from the flow's own addresses (no segment in
 * hand: a timer's retransmission, a reset). */
void tx_reply_flow(const struct slot *s, const struct tcpep_reply *r);
/* A frame as it came, rewritten with f (bp_rewrite.h) and sent. */
void tx_relay(const uint8_t *data, size_t len, const struct kvg_bp_flow *f);
/* The replay's segments to the pod, as frames. */
void tx_pod(struct slot *s, const struct replay_out *o, int n);
/* A RST to the client of s: in answer to in, or (NULL) from the flow's
 * own addresses. */
void tx_reset_client(struct slot *s, const struct pkt_tcp *in);

#endif
