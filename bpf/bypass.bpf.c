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
 *       its pod down or gone        -> XDP_PASS (the worker resets both sides)
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
#include "bp_maps.h"

#define KVG_BP_CSUM_DIFF(from, to, n, seed)                                    \
    bpf_csum_diff((__be32 *)(from), (n) * 4, (__be32 *)(to), (n) * 4, (seed))
#include "bp_rewrite.h"

#define ETH_P_IP 0x0800
#define IPPROTO_TCP_ 6

static __always_inline int done(struct xdp_md *ctx, __u32 reason, int verdict)
{
    struct kvg_bp_stat *st = bpf_map_lookup_elem(&kvg_bp_stats, &reason);

    if (st) { /* per-CPU: no atomics */
        st->packets++;
        st->bytes += ctx->data_end - ctx->data;
    }
    return verdict;
}

/* Is the pod the entry forwards to still there and not down? */
static __always_inline int pod_ok(__u32 slot)
{
    if (slot >= KVG_POD_MAX)
        return 1; /* no pod to check (a test, or a flow without one) */
    struct kvg_pod *p = bpf_map_lookup_elem(&kvg_pods, &slot);

    return p && (p->flags & KVG_POD_F_PRESENT) && !(p->flags & KVG_POD_F_DOWN);
}

SEC("xdp")
int bp_forward(struct xdp_md *ctx)
{
    __u8 *data = (__u8 *)(long)ctx->data;
    __u8 *end = (__u8 *)(long)ctx->data_end;
    struct kvg_bp_key key = {.family = KVG_AF_INET};

    if (data + 14 > end)
        return done(ctx, KVG_BP_MALFORMED, XDP_PASS);
    if ((__u16)(data[12] << 8 | data[13]) != ETH_P_IP)
        return done(ctx, KVG_BP_NOT_IPV4_TCP, XDP_PASS);
    __u8 *ip = data + 14;

    if (ip + 20 > end)
        return done(ctx, KVG_BP_MALFORMED, XDP_PASS);
    if (ip[9] != IPPROTO_TCP_)
        return done(ctx, KVG_BP_NOT_IPV4_TCP, XDP_PASS);
    __u32 ihl = (ip[0] & 15) * 4;

    if ((ip[0] >> 4) != 4 || ihl < 20 || (ip[6] & 0x3f) || ip[7])
        return done(ctx, KVG_BP_MALFORMED, XDP_PASS); /* fragments too */
    __u8 *tcp = ip + ihl;

    if (tcp + 20 > end)
        return done(ctx, KVG_BP_MALFORMED, XDP_PASS);
    __builtin_memcpy(&key.saddr, ip + 12, 8);
    __builtin_memcpy(&key.sport, tcp, 4);

    struct kvg_bp_flow *f = bpf_map_lookup_elem(&kvg_bp_flows, &key);

    if (!f)
        return done(ctx, KVG_BP_MISS, XDP_PASS);
    if (f->action != KVG_BP_ACT_REWRITE)
        return done(ctx, KVG_BP_HANDED_UP, XDP_PASS);
    if (!pod_ok(f->pod_slot))
        return done(ctx, KVG_BP_POD_DOWN, XDP_PASS);

    struct kvg_bp_flow fl;

    __builtin_memcpy(&fl, f, sizeof(fl)); /* one consistent copy */
    __u8 flags = kvg_bp_rewrite(data, ip, tcp, &fl);

    if (flags & (KVG_TCP_FIN | KVG_TCP_RST))
        __sync_fetch_and_or(&f->flags, flags & KVG_TCP_RST ? KVG_BP_F_RST : KVG_BP_F_FIN);
    __sync_fetch_and_add(&f->packets, 1);
    __sync_fetch_and_add(&f->bytes, end - data);
    return done(ctx, KVG_BP_FORWARDED, XDP_TX);
}

char LICENSE[] SEC("license") = "GPL";
