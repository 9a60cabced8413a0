// SPDX-License-Identifier: GPL-2.0
/* bp_entry: the XDP program DPDK's af_xdp driver loads on the gateway's
 * interface for the bypass workers (issue 12, ../shared/BYPASS.md: the
 * driver takes `xdp_prog=FILE`, looks for a map named xsks_map and
 * attaches the program itself). It decides which frames the worker's
 * AF_XDP socket gets; the kernel keeps the rest:
 *
 *   a packet of a flow handed off (kvg_bp_flows)       -> rewritten, XDP_TX
 *                                                       (bp_forward.h)
 *   ... whose pod is down, unhealthy or gone (kvg_pods),
 *   or which the worker took back (action worker)      -> the XSK, untouched:
 *                                                       the worker resets
 *                                                       both sides
 *   ... at a request's first byte while its pod is
 *   draining or saturated (held)                       -> the XSK, untouched:
 *                                                       the worker hands
 *                                                       it up to kvgated
 *   IPv4 TCP to the bypass port (kvg_bpe_cfg.port), or
 *   to the worker's source ports towards pods (lo-hi)  -> the XSK of the
 *                                                       frame's queue
 *   anything else (ARP, IPv6, other ports, malformed)  -> the kernel, through
 *                                                       kvgated's guard
 *                                                       (kvg_bpe_next)
 *
 * The worker writes kvg_bpe_cfg after the driver loaded the object (it
 * finds the map through the program attached to the interface); until
 * then the port is 0 and every frame goes to the kernel. When kvgated has
 * pinned its pod table, the worker then swaps in a second instance of
 * this object that reads it, sharing every other map with the driver's
 * (dpdk/entry.h): the driver's own instance reads a kvg_pods nobody
 * writes. What goes to the kernel goes through kvgated's XDP guard first
 * when the worker chained it (kvg_bpe_next, below): the guard and the
 * entry cannot both hold the interface's hook (BYPASS.md). */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kvgate.h"
#include "maps.h"
#include "splice_http.h"
#include "splice_scan.h"
#include "splice_req.h"
#include "bp_maps.h"

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

/* a flow is held at a request boundary only for a worker that is there */
static __always_inline int worker_there(__u32 qid)
{
    return bpf_map_lookup_elem(&xsks_map, &qid) != NULL;
}
#define BP_WORKER_THERE(qid) worker_there(qid)

#define KVG_BP_CSUM_DIFF(from, to, n, seed)                                    \
    bpf_csum_diff((__be32 *)(from), (n) * 4, (__be32 *)(to), (n) * 4, (seed))
#include "bp_rewrite.h"
#include "bp_frame.h"
#include "bp_events.h"
#include "bp_forward.h"

/* kvg_bpe_cfg: key 0 -> what goes to the worker (struct kvg_bpe_cfg, bpf/kvgate.h) */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kvg_bpe_cfg);
} kvg_bpe_cfg SEC(".maps");

/* kvg_bpe_next: key 0 -> kvgated's XDP guard (xdp_guard.bpf.c), which the
 * worker puts here from its pin (dpdk/entry.h). Every frame bp_entry
 * leaves to the kernel goes through it, as it would with the guard alone
 * on the interface; with the slot empty (no kvgated, no pin) they pass. */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} kvg_bpe_next SEC(".maps");

static __always_inline int to_kernel(struct xdp_md *ctx)
{
    bpf_tail_call(ctx, &kvg_bpe_next, 0);
    return XDP_PASS;
}

/* To the worker's socket on this queue; with none there (the worker gone,
 * `kill -9` leaves this program attached) the frame is the kernel's, so
 * kvgated listening on the bypass port serves new connections. */
static __always_inline int to_worker(struct xdp_md *ctx)
{
    long r = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);

    return r == XDP_PASS ? to_kernel(ctx) : (int)r;
}

SEC("xdp")
int bp_entry(struct xdp_md *ctx)
{
    __u8 *data = (__u8 *)(long)ctx->data;
    __u8 *end = (__u8 *)(long)ctx->data_end;
    /* a flow handed off: rewritten and sent back out */
    int v = bp_forward_frame(ctx, data, end, ctx->rx_queue_index);

    if (v == BP_WORKER)
        return to_worker(ctx);
    if (v == XDP_PASS)
        return to_kernel(ctx);
    if (v != BP_MISS)
        return v;
    __u32 zero = 0;
    struct kvg_bpe_cfg *c = bpf_map_lookup_elem(&kvg_bpe_cfg, &zero);

    /* a miss is IPv4 TCP with its headers in the frame (bp_forward_frame) */
    if (!c || !c->port || data + 14 + 20 > end)
        return to_kernel(ctx);
    __u8 *ip = data + 14;
    __u32 ihl = (ip[0] & 0x0F) * 4;
    if (ihl < 20 || ihl > 60)
        return to_kernel(ctx);
    __u8 *tcp = ip + ihl;
    if (tcp + 20 > end)
        return to_kernel(ctx);
    __u16 dport;
    __builtin_memcpy(&dport, tcp + 2, 2);
    __u16 hport = bpf_ntohs(dport);
    if (dport != c->port && (hport < c->lo || hport > c->hi || !c->lo))
        return to_kernel(ctx);
    return to_worker(ctx);
}

char LICENSE[] SEC("license") = "GPL";
