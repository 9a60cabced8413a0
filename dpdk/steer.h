/* steer: one worker per NIC queue (kvg-bypassd --queues N).
 *
 * The af_xdp port opens one AF_XDP socket per queue (start_queue 0,
 * queue_count N, one xsks_map in the driver's entry program), and worker
 * w, on lcore w, polls queue w and transmits on it. Each worker owns its
 * flows alone: its flow table, its decision channel and adopt channel to
 * kvgated, its counters (worker.h's state is per thread). Nothing is
 * locked; a frame is handed to the worker that owns its flow:
 *
 *   - towards the worker's source ports (the pod's side): port p belongs
 *     to worker (p - LO) mod N, and a worker replays only from its own
 *     ports;
 *   - towards the bypass port (the client's side): the flow belongs to
 *     worker siphash(tuple) mod N, with the process's key.
 *
 * The NIC's RSS spreads a flow's packets over one queue, but which one
 * neither side chooses (a client's kernel may even move its flow to another
 * queue after a timeout: veth picks the queue from the sender's hash), so
 * ownership is a function of the tuple, never of the queue a packet came
 * on. A frame that arrives on another worker's queue goes to the owner
 * through its inbox (an rte_ring, many producers, one consumer) and the
 * owner is woken if it sleeps (an eventfd in its poll set). Only first
 * flights and the few packets around a hand-off reach user space (the
 * flows' later packets stay in XDP on whatever queue they come), so the
 * cost is one ring pass for (N-1)/N of those. A full inbox drops the
 * frame (counted: steer_dropped); TCP sends it again. */
#ifndef KVGATE_DPDK_STEER_H
#define KVGATE_DPDK_STEER_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;

#define STEER_MAX 8 /* workers (queues) at most */

extern unsigned NW;          /* the workers; 1: no steering */
extern __thread unsigned W;  /* this worker (its queue) */

/* The inboxes and wake-ups of nw workers. 0 or -1 (out of memory, no
 * eventfd). */
int steer_init(unsigned nw);
/* The worker whose flow the frame is (W for what is not TCP over IPv4:
 * the worker that got it counts it). */
unsigned steer_owner(const uint8_t *frame, size_t len);
/* m (a frame of the flow of worker to) into that worker's inbox: 1 queued
 * (the owner frees it), 0 full (m freed, counted). */
int steer_pass(struct rte_mbuf *m, unsigned to);
/* Wakes the workers steer_pass queued for since the last call, if they
 * sleep. */
void steer_kick(void);
/* Up to n frames from this worker's inbox. */
unsigned steer_take(struct rte_mbuf **m, unsigned n);
/* Before this worker blocks: 1 it may (its inbox is empty and a pass from
 * now on wakes it through steer_wake_fd), 0 frames wait. steer_awake()
 * after the wait. */
int steer_sleep(void);
void steer_awake(void);
/* The eventfd a pass writes to wake this worker (-1 with one worker). */
int steer_wake_fd(void);
/* Every inbox emptied (its frames freed), once no worker runs. */
void steer_drain(void);
/* Whether source port LO + i is this worker's ((i mod NW) = W). */
static inline int steer_port_mine(uint32_t i) { return NW <= 1 || i % NW == W; }

#endif
