// SPDX-License-Identifier: GPL-2.0
/* xdp_guard: the XDP program on the gateway node's ingress interface.
 *
 *   Ethernet (one 802.1Q / 802.1ad tag) -> IPv4 | IPv6 -> TCP
 *
 * Drops what cannot be parsed, rate-limits new TCP connections (SYN without
 * ACK) per source, passes everything else. Every exit is counted under its
 * reason (enum kvg_xdp_reason in kvgate.h) in kvg_xdp_stats, so an operator
 * can tell "malformed" from "rate-limited" from "not our business".
 *
 * Policies (documented in kvgate.h too):
 *   - IPv4: version 4, ihl >= 5, the header inside the packet, total length
 *     >= the header and <= the bytes received (Ethernet padding after it is
 *     fine). Options are allowed and skipped. The checksum is the kernel's
 *     job. Fragments: non-TCP fragments pass; TCP in a fragment is dropped
 *     (KVG_XDP_CFG_F_DROP_FRAGMENTS, the default) or passed uninspected:
 *     Linux sends TCP with DF and path-MTU discovery, so a fragmented
 *     segment is an evasion attempt (RFC 1858 tiny fragments) rather than
 *     traffic a gateway must serve.
 *   - IPv6: version 6, the fixed header inside the packet, payload length
 *     <= the bytes received. Extension headers (hop-by-hop, routing,
 *     destination options, AH, fragment) are walked, up to KVG_IP6_EXT_MAX,
 *     so options cannot hide a SYN from the limiter; a longer chain is
 *     dropped; a truncated one is malformed. A fragment header with a
 *     non-zero offset or the M bit makes the segment a fragment (same
 *     policy as IPv4); ESP and "no next header" pass as non-TCP.
 *   - TCP: the 20-byte header inside the packet and the IP payload, doff >= 5,
 *     the header with its options inside the IP payload.
 *   - SYN without ACK: one token bucket per source address (IPv4 /v4_prefix,
 *     IPv6 /v6_prefix) in kvg_syn_bkt; over budget -> drop.
 *   - Passing TCP to kvg_xdp_cfg.gw_port tail-calls kvg_xdp_progs[0] (bypass
 *     steering, reserved; an empty slot makes it a no-op). The guard counts
 *     its pass before the call; the callee counts its own verdicts.
 *
 * Limits come from kvg_xdp_cfg on every packet (so bpftool map update takes
 * effect at once); while that entry's version is 0 the defaults below hold.
 * No loop runs over packet data except the bounded IPv6 header walk. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kvgate.h"
#include "maps.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10
/* IPv6 next-header values (linux/ipv6.h macros, absent from vmlinux.h) */
#define NH_HOP 0
#define NH_TCP 6
#define NH_ROUTING 43
#define NH_FRAGMENT 44
#define NH_AUTH 51
#define NH_DEST 60

/* Compiled-in limits, used while kvg_xdp_cfg holds version 0. A skeleton
 * loader may change them before load (kvgated sets gw_port from its
 * listener); `bpftool prog loadall` gets these. */
const volatile struct kvg_xdp_cfg kvg_xdp_defaults = KVG_XDP_CFG_DEFAULT;

struct vlan_tag {
    __be16 tci;
    __be16 proto;
};

/* Counts one exit and returns its verdict. */
static __always_inline int done(struct xdp_md *ctx, __u32 reason, int verdict)
{
    struct kvg_xdp_stat *st = bpf_map_lookup_elem(&kvg_xdp_stats, &reason);

    if (st) { /* per-CPU: no atomics */
        st->packets++;
        /* the linear frame (the guard is not frags-aware; a frame it
         * sees has no fragments outside the test-run hook) */
        st->bytes += ctx->data_end - ctx->data;
    }
    return verdict;
}
#define PASS(r) done(ctx, KVG_XDP_##r, XDP_PASS)
#define DROP(r) done(ctx, KVG_XDP_##r, XDP_DROP)

static __always_inline void load_cfg(struct kvg_xdp_cfg *out)
{
    __u32 zero = 0;
    struct kvg_xdp_cfg *c = bpf_map_lookup_elem(&kvg_xdp_cfg, &zero);

    if (c && c->version) {
        __builtin_memcpy(out, c, sizeof(*out));
        return;
    }
    out->version = kvg_xdp_defaults.version;
    out->flags = kvg_xdp_defaults.flags;
    out->syn_rate = kvg_xdp_defaults.syn_rate;
    out->syn_burst = kvg_xdp_defaults.syn_burst;
    out->gw_port = kvg_xdp_defaults.gw_port;
    out->v4_prefix = kvg_xdp_defaults.v4_prefix;
    out->v6_prefix = kvg_xdp_defaults.v6_prefix;
}

/* Network-order mask of the first `bits` bits of a 32-bit word. */
static __always_inline __u32 mask32(int bits)
{
    if (bits <= 0)
        return 0;
    if (bits >= 32)
        return 0xffffffff;
    return bpf_htonl(0xffffffffu << (32 - bits));
}

/* A new connection from src: 1 admitted, 0 over budget, -1 no bucket. */
static __always_inline int syn_admit(const struct kvg_src *src, const struct kvg_xdp_cfg *cfg)
{
    __u64 now = bpf_ktime_get_ns();
    __u64 t = 1000000000ull / cfg->syn_rate; /* emission interval; rate >= 1 */
    __u64 burst = cfg->syn_burst ? cfg->syn_burst : 1;
    struct kvg_bucket *b;

    if (!t)
        t = 1;
    __u64 tau = (burst - 1) * t;

    b = bpf_map_lookup_elem(&kvg_syn_bkt, src);
    if (!b) {
        struct kvg_bucket nb = {.tat = now + t};

        if (!bpf_map_update_elem(&kvg_syn_bkt, src, &nb, BPF_NOEXIST))
            return 1;
        b = bpf_map_lookup_elem(&kvg_syn_bkt, src); /* another CPU made it */
        if (!b)
            return -1;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __u64 old = *(volatile __u64 *)&b->tat;
        __u64 tat = old > now ? old : now;

        /* Under the current limits tat never passes now + tau + t; beyond
         * that it was earned under slower ones an operator just raised.
         * Cut it (and store the cut) so the new limits apply within t. */
        if (tat - now > tau + t)
            tat = now + tau + t;
        if (tat - now > tau) {
            if (tat != old)
                __sync_val_compare_and_swap(&b->tat, old, tat);
            break;
        }
        if (__sync_val_compare_and_swap(&b->tat, old, tat + t) == old)
            return 1;
    }
    /* over budget, or lost four races for this source's bucket (a flood) */
    __sync_fetch_and_add(&b->dropped, 1);
    return 0;
}

/* TCP inside an IP fragment: the fragment policy. */
static __always_inline int guard_fragment(struct xdp_md *ctx)
{
    struct kvg_xdp_cfg cfg;

    load_cfg(&cfg);
    if (cfg.flags & KVG_XDP_CFG_F_DROP_FRAGMENTS)
        return DROP(DROP_FRAGMENT);
    return PASS(PASS_FRAGMENT);
}

/* A TCP header, known to lie inside the packet and the IP payload, of an
 * unfragmented datagram. */
static __always_inline int guard_tcp(struct xdp_md *ctx, const __u8 *th, struct kvg_src *src,
                                     int v6)
{
    struct kvg_xdp_cfg cfg;
    __u32 reason = KVG_XDP_PASS_TCP;

    load_cfg(&cfg);
    if ((th[13] & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN) {
        reason = KVG_XDP_PASS_SYN;
        if ((cfg.flags & KVG_XDP_CFG_F_SYN_LIMIT) && cfg.syn_rate) {
            if (v6) {
                int p = cfg.v6_prefix;

                src->addr[0] &= mask32(p);
                src->addr[1] &= mask32(p - 32);
                src->addr[2] &= mask32(p - 64);
                src->addr[3] &= mask32(p - 96);
            } else {
                src->addr[3] &= mask32(cfg.v4_prefix);
            }
            int r = syn_admit(src, &cfg);

            if (r == 0)
                return DROP(DROP_SYN_RATELIMIT);
            if (r < 0)
                reason = KVG_XDP_PASS_SYN_UNTRACKED;
        }
    }
    done(ctx, reason, XDP_PASS);
    if (cfg.gw_port && *(const __be16 *)(th + 2) == cfg.gw_port)
        bpf_tail_call(ctx, &kvg_xdp_progs, KVG_XDP_SLOT_STEER);
    return XDP_PASS;
}

static __always_inline int guard_ip4(struct xdp_md *ctx, void *l3, void *end)
{
    struct iphdr *ip = l3;
    struct kvg_src src = {};

    if ((void *)(ip + 1) > end)
        return DROP(DROP_MALFORMED_IP);
    __u8 vihl = *(__u8 *)ip;
    __u32 hlen = (vihl & 0x0f) * 4;
    __u32 tot = bpf_ntohs(ip->tot_len);

    if ((vihl >> 4) != 4 || hlen < sizeof(*ip) || tot < hlen || l3 + tot > end)
        return DROP(DROP_MALFORMED_IP);
    if (ip->protocol != IPPROTO_TCP)
        return PASS(PASS_NON_TCP);
    if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
        return guard_fragment(ctx);

    __u8 *th = l3 + hlen;

    if ((void *)(th + 20) > end || hlen + 20 > tot)
        return DROP(DROP_MALFORMED_TCP);
    __u32 thlen = (th[12] >> 4) * 4;

    if (thlen < 20 || hlen + thlen > tot)
        return DROP(DROP_MALFORMED_TCP);
    src.addr[2] = bpf_htonl(0x0000ffff); /* ::ffff:a.b.c.d */
    src.addr[3] = ip->saddr;
    return guard_tcp(ctx, th, &src, 0);
}

static __always_inline int ip6_ext(__u8 nh)
{
    return nh == NH_HOP || nh == NH_ROUTING || nh == NH_FRAGMENT || nh == NH_AUTH ||
           nh == NH_DEST;
}

static __always_inline int guard_ip6(struct xdp_md *ctx, void *l3, void *end)
{
    struct ipv6hdr *ip6 = l3;
    struct kvg_src src;
    int fragment = 0;

    if ((void *)(ip6 + 1) > end)
        return DROP(DROP_MALFORMED_IP6);
    __u32 tot = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);

    if ((*(__u8 *)ip6 >> 4) != 6 || l3 + tot > end)
        return DROP(DROP_MALFORMED_IP6);
    __u8 nh = ip6->nexthdr;
    __u32 off = sizeof(*ip6);

#pragma unroll
    for (int i = 0; i < KVG_IP6_EXT_MAX; i++) {
        if (!ip6_ext(nh))
            break;
        __u8 *h = l3 + off;
        __u32 len;

        if ((void *)(h + 8) > end)
            return DROP(DROP_MALFORMED_IP6);
        if (nh == NH_FRAGMENT) {
            __u16 fo = bpf_ntohs(*(__be16 *)(h + 2));

            len = 8;
            if (fo & 0xfff9) { /* offset or M: a real fragment */
                fragment = 1;
                if (fo & 0xfff8) /* not the first: no header to walk */
                    return h[0] == NH_TCP ? guard_fragment(ctx) : PASS(PASS_NON_TCP);
            }
        } else if (nh == NH_AUTH) {
            len = ((__u32)h[1] + 2) * 4;
        } else {
            len = ((__u32)h[1] + 1) * 8;
        }
        nh = h[0];
        off += len;
        if (off > tot)
            return DROP(DROP_MALFORMED_IP6);
    }
    if (nh != NH_TCP)
        return ip6_ext(nh) ? DROP(DROP_IP6_EXT_CHAIN) : PASS(PASS_NON_TCP);
    if (fragment) /* the first fragment: TCP header present, policy applies */
        return guard_fragment(ctx);

    __u8 *th = l3 + off;

    if ((void *)(th + 20) > end || off + 20 > tot)
        return DROP(DROP_MALFORMED_TCP);
    __u32 thlen = (th[12] >> 4) * 4;

    if (thlen < 20 || off + thlen > tot)
        return DROP(DROP_MALFORMED_TCP);
    __builtin_memcpy(src.addr, &ip6->saddr, sizeof(src.addr));
    return guard_tcp(ctx, th, &src, 1);
}

SEC("xdp")
int xdp_guard(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    void *l3 = data + sizeof(*eth);

    if (l3 > end)
        return DROP(DROP_MALFORMED_ETH);
    __be16 proto = eth->h_proto;

    if (proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD)) {
        struct vlan_tag *v = l3;

        if ((void *)(v + 1) > end)
            return DROP(DROP_MALFORMED_ETH);
        proto = v->proto; /* a second tag is not ours to parse: non-IP */
        l3 = v + 1;
    }
    if (proto == bpf_htons(ETH_P_IP))
        return guard_ip4(ctx, l3, end);
    if (proto == bpf_htons(ETH_P_IPV6))
        return guard_ip6(ctx, l3, end);
    return PASS(PASS_NON_IP);
}

char LICENSE[] SEC("license") = "GPL";
