/* podreset: a spliced flow whose pod went down (kvgated's pod table,
 * shared through entry.h). The worker takes the flow back from XDP (both
 * entries: action worker, so every packet of it comes to the worker
 * whatever the pod's state does next), resets each side with the
 * sequence number that side's next segment says it expects (the one that
 * came, or its answer to a probe placed far out of its window: RFC 5961
 * ignores a RST elsewhere), and reports DONE pod_down once both are reset
 * or after RESET_MS (a pod whose host is gone answers nothing). */
#ifndef KVGATE_DPDK_PODRESET_H
#define KVGATE_DPDK_PODRESET_H

#include <stdint.h>

#include "worker.h"

/* Both entries of s with this action and pod slot (their counters as XDP
 * left them); the worker's copies too, for a reinstall. */
void podreset_entries_set(struct slot *s, uint8_t action, uint32_t pod_slot);
/* Is the pod of s down by kvgated's table (and s still checked, after the
 * decision channel was read, and not already closed both ways: a flow
 * that ended and lingers is forgotten as closed, not reset)? 1 or 0. */
int podreset_pod_down(struct slot *s);
/* s (pstate 2) goes to pstate 3: taken back, the resets begin. */
void podreset_start(struct slot *s, uint64_t now);
/* A segment of s (pstate 3) from the client or the pod. */
void podreset_input(struct slot *s, const struct pkt_tcp *p, int from_pod);
/* s (pstate 3) on the timer: probes a side not heard from, gives up after
 * RESET_MS. */
void podreset_timer(struct slot *s, uint64_t now);

#endif
