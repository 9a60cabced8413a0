// SPDX-License-Identifier: GPL-2.0
/* bypass: bp_forward, the XDP program that forwards the established flows
 * of the bypass path (issue 12, ../shared/BYPASS.md): a DPDK worker did the
 * connection's handshake and first request and spliced it to a pod; from
 * then on every packet of the flow, both directions, is rewritten here
 * (bp_rewrite.h) and sent back out of the interface it came in on (one-
 * armed, XDP_TX), never reaching a socket, a kworker or user space.
 *
 *   Ethernet (no VLAN tag) -> IPv4 (options skipped) -> TCP
 *     entry in kvg_bp_flows for (saddr, daddr, sport, dport)?
 *       no                          -> XDP_PASS (miss: the worker's or the kernel's)
 *       action pass                 -> XDP_PASS (handed up)
 *       action worker, or its pod down, unhealthy or gone
 *                                   -> XDP_PASS (bp_entry sends these to the
 *                                      worker, which resets both sides)
 *       else rewrite, count, FIN / RST noted in the entry -> XDP_TX
 *
 * Meant to run behind the XDP guard (a tail call: the guard has checked
 * the frame's shape and dropped what is malformed); alone it passes
 * whatever it does not forward. Every exit is counted under its reason in
 * kvg_bp_stats. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kvgate.h"
#include "maps.h"
#include "splice_http.h"
#include "splice_scan.h"
#include "splice_req.h"
#include "bp_maps.h"

#define KVG_BP_CSUM_DIFF(from, to, n, seed)                                    \
    bpf_csum_diff((__be32 *)(from), (n) * 4, (__be32 *)(to), (n) * 4, (seed))
#include "bp_rewrite.h"

#include "bp_frame.h"
#include "bp_events.h"
#include "bp_forward.h"

SEC("xdp")
int bp_forward(struct xdp_md *ctx)
{
    int v = bp_forward_frame(ctx, (__u8 *)(long)ctx->data, (__u8 *)(long)ctx->data_end, 0);

    return v < 0 ? XDP_PASS : v; /* a miss or the worker's: no worker behind this one */
}

char LICENSE[] SEC("license") = "GPL";
