/* boundary: a spliced HTTP/1.1 connection whose next request must not go to
 * its pod (issue 12: "draining, saturated: the worker re-splices that
 * request to another pod").
 *
 * XDP frames the requests of a spliced flow (bpf/bp_frame.h). When a
 * segment starts the next request (at rq_seq, no body left) while the
 * flow's pod is draining, or saturated by its own fresh report, in
 * kvgated's table (bpf/bp_forward.h pod_busy), XDP holds the
 * flow (KVG_BP_F_HELD, counted "boundary") and sends that segment, and
 * every later packet from the client, here untouched. The worker then
 * hands the connection up to kvgated from that request on, with the
 * hand-up's machinery (handup.h):
 *   1. a kernel socket in repair mode with the connection's state at the
 *      boundary: our send sequence where the client's acknowledgement says
 *      it stands (the client sends its next request once it has read the
 *      answer: HTTP/1.1 without pipelining), its receive sequence at the
 *      request's first byte, the segment's bytes restored, MSS and window
 *      scales as the handshake set them;
 *   2. the client's entry says pass, repair off, the socket to kvgated
 *      (cause draining or saturated), which routes this request, and every
 *      later one, on its own socket path: another pod when this one drains;
 *   3. DONE for what the pod served (the requests XDP framed, their bytes),
 *      a reset to the old pod at exactly the byte it expects next, its
 *      entry deleted, the flow forgotten.
 * Why a hand-up rather than a second splice: a connection that has to
 * leave its pod once tends to again (a pod drains for good; saturation
 * comes back), kvgated's socket path routes each later request on its own,
 * and the splice's per-connection state (one pod) stays simple. The cost is
 * kvgated's relay for the rest of that connection.
 *
 * When the hand-up cannot start (no --adopt, kvgated's channel down, the
 * socket not built) nothing has been sent: the flow is let go again (the
 * hold cleared, the segment forwarded to the pod it was on, which still
 * answers: draining only stops new requests being sent to it), and its
 * requests are no longer framed (XDP sees the next segment past rq_seq).
 * A segment of a held flow other than the request's first (one that came
 * in the same burst) is dropped: the client sends it again, to the kernel
 * socket once the entry says pass. */
#ifndef KVGATE_DPDK_BOUNDARY_H
#define KVGATE_DPDK_BOUNDARY_H

#include <stddef.h>
#include <stdint.h>

#include "worker.h"

/* A client frame of s (pstate 2, handed off): 1 when XDP held the flow and
 * this took the frame (handed up, let go or dropped), 0 when the flow is
 * not held (the caller goes on as before). */
int boundary_input(struct slot *s, const uint8_t *data, size_t len, const struct pkt_tcp *p);

#endif
