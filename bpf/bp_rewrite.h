/* bp_rewrite.h: the bypass path's rewrite of one IPv4/TCP packet (issue 12),
 * written once for both places that forward a spliced flow's packets:
 * bp_forward (bpf/bypass.bpf.c, every packet once the flow is handed off)
 * and the DPDK worker (the late packets that still reach it during the
 * hand-off). tests/bpf/test_bp_rewrite.c runs both on the same random
 * packets and checks them against each other and against the packet built
 * from scratch with its checksums computed in full.
 *
 * What changes (struct kvg_bp_flow, kvgate.h): both MACs, both addresses,
 * both ports, the sequence number (+ seq_delta), the acknowledgement number
 * (+ ack_delta, when ACK is set), the window field (rescaled), and the two
 * checksums, updated incrementally (RFC 1624: HC' = ~(~HC + ~m + m') over
 * the 32-bit words that changed, the TCP pseudo-header's addresses
 * included). Nothing else: TTL, options and payload stay as they are (the
 * worker negotiated no timestamps or SACK, so no option needs translating).
 *
 * The includer provides KVG_BP_CSUM_DIFF(from, to, nwords, seed): the
 * 32-bit ones' complement sum seed + sum(~from[i]) + sum(to[i]) (the BPF
 * side: bpf_csum_diff; user space: kvg_bp_csum_diff below).
 *
 * The caller has checked that eth[0..14), ip[0..20) and tcp[0..20) lie in
 * the packet (the verifier's bounds); the IPv4 header may have options
 * (ip points at its start, tcp past them). */
#ifndef KVGATE_BPF_BP_REWRITE_H
#define KVGATE_BPF_BP_REWRITE_H

#include "kvgate.h"

#ifndef __bpf__
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
/* The ones' complement sum of seed, the complement of each from[i] and
 * each to[i], folded to 32 bits (what bpf_csum_diff returns). */
static inline __u64 kvg_bp_csum_diff(const __u32 *from, const __u32 *to, int n, __u32 seed)
{
    __u64 s = seed;
    for (int i = 0; i < n; i++)
        s += (__u32)~from[i] + (__u64)to[i];
    while (s >> 32)
        s = (s & 0xffffffffu) + (s >> 32);
    return s;
}
#define KVG_BP_CSUM_DIFF(from, to, n, seed) kvg_bp_csum_diff((from), (to), (n), (seed))
#endif

#define KVG_TCP_FIN 0x01
#define KVG_TCP_RST 0x04
#define KVG_TCP_ACK 0x10

static __always_inline __u32 kvg_bp_bswap32(__u32 x)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_bswap32(x);
#else
    return x;
#endif
}

/* A 32-bit ones' complement sum folded to the 16-bit checksum field. */
static __always_inline __u16 kvg_bp_fold(__u64 s)
{
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    return (__u16)~s;
}

/* The window field the receiver should see: the sender's scale undone,
 * the scale announced to the receiver applied, at most 65535. */
static __always_inline __u16 kvg_bp_window(__u16 w, __u8 shl, __u8 shr)
{
    __u64 v = ((__u64)w << (shl & 15)) >> (shr & 15);
    return v > 0xffff ? 0xffff : (__u16)v;
}

/* Rewrites the packet as f says; returns its TCP flags byte. */
static __always_inline __u8 kvg_bp_rewrite(__u8 *eth, __u8 *ip, __u8 *tcp,
                                           const struct kvg_bp_flow *f)
{
    __u32 from[6], to[6];
    __u16 ic, tc;
    __u8 flags = tcp[13];

    __builtin_memcpy(&from[0], ip + 12, 8);  /* saddr, daddr */
    __builtin_memcpy(&from[2], tcp, 16);     /* ports, seq, ack, doff/flags/window */
    to[0] = f->saddr;
    to[1] = f->daddr;
    __builtin_memcpy(&to[2], &f->sport, 2);
    __builtin_memcpy((__u8 *)&to[2] + 2, &f->dport, 2);
    to[3] = kvg_bp_bswap32(kvg_bp_bswap32(from[3]) + f->seq_delta);
    to[4] = flags & KVG_TCP_ACK ? kvg_bp_bswap32(kvg_bp_bswap32(from[4]) + f->ack_delta)
                                : from[4];
    __u16 w = (__u16)(tcp[14] << 8 | tcp[15]);
    w = kvg_bp_window(w, f->win_shl, f->win_shr);
    to[5] = from[5];
    ((__u8 *)&to[5])[2] = (__u8)(w >> 8);
    ((__u8 *)&to[5])[3] = (__u8)w;

    __builtin_memcpy(&ic, ip + 10, 2);
    __builtin_memcpy(&tc, tcp + 16, 2);
    ic = kvg_bp_fold(KVG_BP_CSUM_DIFF(from, to, 2, (__u32)(__u16)~ic));
    tc = kvg_bp_fold(KVG_BP_CSUM_DIFF(from, to, 6, (__u32)(__u16)~tc));

    __builtin_memcpy(ip + 12, &to[0], 8);
    __builtin_memcpy(ip + 10, &ic, 2);
    __builtin_memcpy(tcp, &to[2], 16);
    __builtin_memcpy(tcp + 16, &tc, 2);
    __builtin_memcpy(eth, f->dmac, 6);
    __builtin_memcpy(eth + 6, f->smac, 6);
    return flags;
}

#endif
