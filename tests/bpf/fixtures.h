/* fixtures.h: packets for the XDP guard, shared by test_xdp_guard (table
 * of expected verdicts and reasons), bench_xdp_guard (the same table with a
 * repeat count) and xdp_livegen (SYNs on a veth).
 *
 * A fixture is a shape (TCP over IPv4, IPv6 with extension headers, ARP,
 * ...) plus at most one mutation that breaks it in one way (truncate, bad
 * ihl, total length past the end, doff < 5, ...). Packets are built byte
 * by byte so that malformed ones are as easy to write as good ones. */
#ifndef KVGATE_TESTS_BPF_FIXTURES_H
#define KVGATE_TESTS_BPF_FIXTURES_H

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kvgate.h"

enum fx_shape {
    FX_TCP4,        /* Ethernet, IPv4 (20), TCP (20) */
    FX_TCP4_OPTS,   /* IPv4 with 4 bytes of options (ihl 6), TCP with 12 (doff 8) */
    FX_TCP4_FRAG,   /* TCP in an IPv4 fragment (MF) */
    FX_UDP4,
    FX_UDP4_FRAG,
    FX_ICMP4,
    FX_TCP6,        /* Ethernet, IPv6 (40), TCP (20) */
    FX_TCP6_DSTOPT, /* IPv6, destination options (8), TCP */
    FX_TCP6_HOP_AH, /* IPv6, hop-by-hop (8), AH (16), TCP */
    FX_TCP6_FRAG,   /* IPv6, fragment header (offset 0, M), TCP */
    FX_TCP6_FRAG2,  /* IPv6, fragment header (offset 8): no TCP header */
    FX_TCP6_CHAIN,  /* IPv6, KVG_IP6_EXT_MAX + 1 destination options, TCP */
    FX_ICMP6,
    FX_ARP,
    FX_QINQ,        /* two VLAN tags, then IPv4 TCP */
};

enum fx_mut {
    MUT_NONE,
    MUT_TRUNC,      /* the frame cut to val bytes */
    MUT_L4LEN,      /* L4 cut to val bytes, IP lengths made to agree */
    MUT_IHL,        /* IPv4 ihl = val */
    MUT_VERSION,    /* IP version nibble = val */
    MUT_TOTLEN_ADD, /* IPv4 total length += val (past the end of the packet) */
    MUT_TOTLEN_SET, /* IPv4 total length = val */
    MUT_PLEN_ADD,   /* IPv6 payload length += val */
    MUT_EXTLEN,     /* first IPv6 extension header's length field = val */
    MUT_DOFF,       /* TCP doff = val */
    MUT_DOFF_PADDED,/* TCP doff = val, and 16 bytes of Ethernet padding */
    MUT_PAD,        /* val bytes of Ethernet padding after the IP datagram */
};

#define TCP_F_FIN 0x01
#define TCP_F_SYN 0x02
#define TCP_F_RST 0x04
#define TCP_F_PSH 0x08
#define TCP_F_ACK 0x10

struct fx {
    const char *what;
    enum fx_shape shape;
    int vlan;           /* one 802.1Q tag */
    uint8_t flags;      /* TCP flags */
    uint16_t dport;     /* 0: 80 */
    enum fx_mut mut;
    int val;
    uint32_t verdict;   /* XDP_PASS, XDP_DROP */
    uint32_t reason;    /* enum kvg_xdp_reason */
};

struct pkt {
    uint8_t b[512];
    size_t len;
    size_t l3, l4;      /* offsets of the IP and L4 headers */
    int v6;
    size_t ext;         /* offset of the first IPv6 extension header, 0 none */
};

static inline void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* Sources: IPv4 10.0.<a>.<b> as a 32-bit host-order number; IPv6
 * 2001:db8:0:<hi>::<lo>. */
struct fx_src {
    uint32_t v4;
    uint16_t v6_hi, v6_lo;
};
#define FX_SRC_DEFAULT ((struct fx_src){.v4 = 0x0a000001, .v6_hi = 1, .v6_lo = 1})

static inline size_t fx_eth(uint8_t *p, int vlan, int qinq, uint16_t type)
{
    static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x02}, src[6] = {0x02, 0, 0, 0, 0, 0x01};
    size_t o = 12;
    memcpy(p, dst, 6);
    memcpy(p + 6, src, 6);
    if (qinq) {
        put16(p + o, 0x88a8), put16(p + o + 2, 100), o += 4;
        put16(p + o, 0x8100), put16(p + o + 2, 200), o += 4;
    } else if (vlan) {
        put16(p + o, 0x8100), put16(p + o + 2, 100), o += 4;
    }
    put16(p + o, type);
    return o + 2;
}

static inline void fx_tcp(uint8_t *p, uint16_t dport, uint8_t flags, int doff)
{
    memset(p, 0, (size_t)doff * 4);
    put16(p, 40000);
    put16(p + 2, dport);
    p[4] = 0x12, p[7] = 0x34; /* seq */
    if (flags & TCP_F_ACK)
        p[11] = 1;
    p[12] = (uint8_t)(doff << 4);
    p[13] = flags;
    put16(p + 14, 65535);
    for (int i = 20; i < doff * 4; i++)
        p[i] = 1; /* NOP options */
}

/* Builds f from src into pk. */
static inline void fx_build(const struct fx *f, struct fx_src src, struct pkt *pk)
{
    uint8_t *p = pk->b;
    uint16_t dport = f->dport ? f->dport : 80;
    memset(pk, 0, sizeof(*pk));
    int v6 = f->shape >= FX_TCP6 && f->shape <= FX_ICMP6;
    uint16_t type = f->shape == FX_ARP ? 0x0806 : v6 ? 0x86dd : 0x0800;
    size_t o = fx_eth(p, f->vlan, f->shape == FX_QINQ, type);
    pk->l3 = o;
    pk->v6 = v6;
    if (f->shape == FX_ARP) {
        put16(p + o, 1), put16(p + o + 2, 0x0800), p[o + 4] = 6, p[o + 5] = 4;
        put16(p + o + 6, 1); /* request */
        pk->len = o + 28;
        return;
    }
    if (!v6) {
        int ihl = f->shape == FX_TCP4_OPTS ? 6 : 5;
        uint8_t proto = f->shape == FX_UDP4 || f->shape == FX_UDP4_FRAG ? 17
                        : f->shape == FX_ICMP4                        ? 1
                                                                      : 6;
        int doff = f->shape == FX_TCP4_OPTS ? 8 : 5;
        size_t l4len = proto == 6 ? (size_t)doff * 4 : 8;
        p[o] = (uint8_t)(0x40 | ihl);
        put16(p + o + 2, (uint16_t)(ihl * 4 + l4len));
        put16(p + o + 4, 1);
        if (f->shape == FX_TCP4_FRAG || f->shape == FX_UDP4_FRAG)
            put16(p + o + 6, 0x2000); /* MF */
        else
            put16(p + o + 6, 0x4000); /* DF */
        p[o + 8] = 64;
        p[o + 9] = proto;
        uint32_t s = htonl(src.v4), d = htonl(0x0a000002);
        memcpy(p + o + 12, &s, 4);
        memcpy(p + o + 16, &d, 4);
        if (ihl == 6)
            p[o + 20] = 1, p[o + 21] = 1, p[o + 22] = 1, p[o + 23] = 0; /* NOP NOP NOP EOL */
        pk->l4 = o + (size_t)ihl * 4;
        if (proto == 6) {
            fx_tcp(p + pk->l4, dport, f->flags, doff);
        } else if (proto == 17) {
            put16(p + pk->l4, 5353), put16(p + pk->l4 + 2, 53), put16(p + pk->l4 + 4, 8);
        } else {
            p[pk->l4] = 8; /* echo request */
        }
        pk->len = pk->l4 + l4len;
        return;
    }
    /* IPv6 */
    p[o] = 0x60;
    p[o + 7] = 64;
    p[o + 8] = 0x20, p[o + 9] = 0x01, p[o + 10] = 0x0d, p[o + 11] = 0xb8;
    put16(p + o + 14, src.v6_hi);
    put16(p + o + 22, src.v6_lo);
    p[o + 24] = 0x20, p[o + 25] = 0x01, p[o + 26] = 0x0d, p[o + 27] = 0xb8;
    p[o + 39] = 2;
    size_t h = o + 40;
    uint8_t *nh = p + o + 6;
    switch (f->shape) {
    case FX_TCP6_DSTOPT:
        pk->ext = h;
        *nh = 60, nh = p + h, p[h + 1] = 0, p[h + 2] = 1, p[h + 3] = 4; /* PadN */
        h += 8;
        break;
    case FX_TCP6_HOP_AH:
        pk->ext = h;
        *nh = 0, nh = p + h, p[h + 2] = 1, p[h + 3] = 4;
        h += 8;
        *nh = 51, nh = p + h, p[h + 1] = 2; /* AH: (2 + 2) * 4 = 16 bytes */
        h += 16;
        break;
    case FX_TCP6_FRAG:
    case FX_TCP6_FRAG2:
        pk->ext = h;
        *nh = 44, nh = p + h;
        put16(p + h + 2, f->shape == FX_TCP6_FRAG ? 0x0001 : 0x0008); /* M / offset 8 */
        h += 8;
        break;
    case FX_TCP6_CHAIN:
        pk->ext = h;
        for (int i = 0; i <= KVG_IP6_EXT_MAX; i++) {
            *nh = 60, nh = p + h, p[h + 2] = 1, p[h + 3] = 4;
            h += 8;
        }
        break;
    default:
        break;
    }
    pk->l4 = h;
    if (f->shape == FX_ICMP6) {
        *nh = 58;
        p[h] = 128; /* echo request */
        pk->len = h + 8;
    } else {
        *nh = 6;
        fx_tcp(p + h, dport, f->flags, 5);
        pk->len = h + 20;
    }
    put16(p + o + 4, (uint16_t)(pk->len - o - 40));
}

/* Applies f's mutation to pk. */
static inline void fx_mutate(const struct fx *f, struct pkt *pk)
{
    uint8_t *ip = pk->b + pk->l3;
    switch (f->mut) {
    case MUT_NONE:
        break;
    case MUT_TRUNC:
        pk->len = (size_t)f->val;
        break;
    case MUT_L4LEN:
        pk->len = pk->l4 + (size_t)f->val;
        if (pk->v6)
            put16(ip + 4, (uint16_t)(pk->len - pk->l3 - 40));
        else
            put16(ip + 2, (uint16_t)(pk->len - pk->l3));
        break;
    case MUT_IHL:
        ip[0] = (uint8_t)((ip[0] & 0xf0) | f->val);
        break;
    case MUT_VERSION:
        ip[0] = (uint8_t)((ip[0] & 0x0f) | (f->val << 4));
        break;
    case MUT_TOTLEN_ADD:
        put16(ip + 2, (uint16_t)(((ip[2] << 8) | ip[3]) + f->val));
        break;
    case MUT_TOTLEN_SET:
        put16(ip + 2, (uint16_t)f->val);
        break;
    case MUT_PLEN_ADD:
        put16(ip + 4, (uint16_t)(((ip[4] << 8) | ip[5]) + f->val));
        break;
    case MUT_EXTLEN:
        pk->b[pk->ext + 1] = (uint8_t)f->val;
        break;
    case MUT_DOFF:
        pk->b[pk->l4 + 12] = (uint8_t)(f->val << 4);
        break;
    case MUT_DOFF_PADDED:
        pk->b[pk->l4 + 12] = (uint8_t)(f->val << 4);
        memset(pk->b + pk->len, 0, 16);
        pk->len += 16;
        break;
    case MUT_PAD:
        memset(pk->b + pk->len, 0, (size_t)f->val);
        pk->len += (size_t)f->val;
        break;
    }
}

#define V(x) XDP_##x
#define R(x) KVG_XDP_##x
/* The table: one row per exit path, and the edges of each check. SYNs here
 * assume a limiter with room (the caller configures it). */
static const struct fx FIXTURES[] = {
    /* what                          shape           vlan flags                    dport mutation           verdict    reason */
    {"tcp4 ack",                     FX_TCP4,        0, TCP_F_ACK,                 0, MUT_NONE, 0,         V(PASS), R(PASS_TCP)},
    {"tcp4 syn",                     FX_TCP4,        0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(PASS), R(PASS_SYN)},
    {"tcp4 syn-ack",                 FX_TCP4,        0, TCP_F_SYN | TCP_F_ACK,     0, MUT_NONE, 0,         V(PASS), R(PASS_TCP)},
    {"tcp4 ip+tcp options syn",      FX_TCP4_OPTS,   0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(PASS), R(PASS_SYN)},
    {"tcp4 ethernet padding",        FX_TCP4,        0, TCP_F_ACK,                 0, MUT_PAD, 6,          V(PASS), R(PASS_TCP)},
    {"tcp6 ack",                     FX_TCP6,        0, TCP_F_ACK | TCP_F_PSH,     0, MUT_NONE, 0,         V(PASS), R(PASS_TCP)},
    {"tcp6 syn",                     FX_TCP6,        0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(PASS), R(PASS_SYN)},
    {"tcp6 dstopts syn",             FX_TCP6_DSTOPT, 0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(PASS), R(PASS_SYN)},
    {"tcp6 hop-by-hop+ah ack",       FX_TCP6_HOP_AH, 0, TCP_F_ACK,                 0, MUT_NONE, 0,         V(PASS), R(PASS_TCP)},
    {"vlan tcp4 ack",                FX_TCP4,        1, TCP_F_ACK,                 0, MUT_NONE, 0,         V(PASS), R(PASS_TCP)},
    {"vlan tcp6 syn",                FX_TCP6,        1, TCP_F_SYN,                 0, MUT_NONE, 0,         V(PASS), R(PASS_SYN)},
    {"qinq (second tag) non-ip",     FX_QINQ,        0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(PASS), R(PASS_NON_IP)},
    {"arp",                          FX_ARP,         0, 0,                         0, MUT_NONE, 0,         V(PASS), R(PASS_NON_IP)},
    {"udp4",                         FX_UDP4,        0, 0,                         0, MUT_NONE, 0,         V(PASS), R(PASS_NON_TCP)},
    {"icmp4",                        FX_ICMP4,       0, 0,                         0, MUT_NONE, 0,         V(PASS), R(PASS_NON_TCP)},
    {"icmp6",                        FX_ICMP6,       0, 0,                         0, MUT_NONE, 0,         V(PASS), R(PASS_NON_TCP)},
    {"udp4 fragment",                FX_UDP4_FRAG,   0, 0,                         0, MUT_NONE, 0,         V(PASS), R(PASS_NON_TCP)},
    {"truncated ethernet (10 B)",    FX_TCP4,        0, TCP_F_ACK,                 0, MUT_TRUNC, 10,       V(DROP), R(DROP_MALFORMED_ETH)},
    {"truncated ethernet (13 B)",    FX_TCP4,        0, TCP_F_ACK,                 0, MUT_TRUNC, 13,       V(DROP), R(DROP_MALFORMED_ETH)},
    {"truncated vlan tag",           FX_TCP4,        1, TCP_F_ACK,                 0, MUT_TRUNC, 16,       V(DROP), R(DROP_MALFORMED_ETH)},
    {"ethernet only, ipv4 type",     FX_TCP4,        0, TCP_F_ACK,                 0, MUT_TRUNC, 14,       V(DROP), R(DROP_MALFORMED_IP)},
    {"truncated ipv4 (10 B)",        FX_TCP4,        0, TCP_F_ACK,                 0, MUT_TRUNC, 24,       V(DROP), R(DROP_MALFORMED_IP)},
    {"ipv4 ihl 4",                   FX_TCP4,        0, TCP_F_ACK,                 0, MUT_IHL, 4,          V(DROP), R(DROP_MALFORMED_IP)},
    {"ipv4 ihl 0",                   FX_TCP4,        0, TCP_F_ACK,                 0, MUT_IHL, 0,          V(DROP), R(DROP_MALFORMED_IP)},
    {"ipv4 ihl 15 past the end",     FX_TCP4,        0, TCP_F_ACK,                 0, MUT_IHL, 15,         V(DROP), R(DROP_MALFORMED_IP)},
    {"ipv4 version 6 in an ipv4 frame", FX_TCP4,     0, TCP_F_ACK,                 0, MUT_VERSION, 6,      V(DROP), R(DROP_MALFORMED_IP)},
    {"ipv4 total length > packet",   FX_TCP4,        0, TCP_F_ACK,                 0, MUT_TOTLEN_ADD, 1,   V(DROP), R(DROP_MALFORMED_IP)},
    {"ipv4 total length < header",   FX_TCP4,        0, TCP_F_ACK,                 0, MUT_TOTLEN_SET, 19,  V(DROP), R(DROP_MALFORMED_IP)},
    {"tcp4 fragment",                FX_TCP4_FRAG,   0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(DROP), R(DROP_FRAGMENT)},
    {"truncated tcp4 (19 B)",        FX_TCP4,        0, TCP_F_ACK,                 0, MUT_L4LEN, 19,       V(DROP), R(DROP_MALFORMED_TCP)},
    {"tcp4 no tcp bytes",            FX_TCP4,        0, TCP_F_ACK,                 0, MUT_L4LEN, 0,        V(DROP), R(DROP_MALFORMED_TCP)},
    {"tcp4 doff 4",                  FX_TCP4,        0, TCP_F_ACK,                 0, MUT_DOFF, 4,         V(DROP), R(DROP_MALFORMED_TCP)},
    {"tcp4 doff 6 past ip end",      FX_TCP4,        0, TCP_F_ACK,                 0, MUT_DOFF, 6,         V(DROP), R(DROP_MALFORMED_TCP)},
    {"tcp4 doff 6 in padding",       FX_TCP4,        0, TCP_F_ACK,                 0, MUT_DOFF_PADDED, 6,  V(DROP), R(DROP_MALFORMED_TCP)},
    {"truncated ipv6 (30 B)",        FX_TCP6,        0, TCP_F_ACK,                 0, MUT_TRUNC, 44,       V(DROP), R(DROP_MALFORMED_IP6)},
    {"ipv6 version 4 in an ipv6 frame", FX_TCP6,     0, TCP_F_ACK,                 0, MUT_VERSION, 4,      V(DROP), R(DROP_MALFORMED_IP6)},
    {"ipv6 payload length > packet", FX_TCP6,        0, TCP_F_ACK,                 0, MUT_PLEN_ADD, 1,     V(DROP), R(DROP_MALFORMED_IP6)},
    {"ipv6 ext header past payload", FX_TCP6_DSTOPT, 0, TCP_F_SYN,                 0, MUT_EXTLEN, 3,       V(DROP), R(DROP_MALFORMED_IP6)},
    {"ipv6 ext header truncated",    FX_TCP6_DSTOPT, 0, TCP_F_SYN,                 0, MUT_L4LEN, -4,       V(DROP), R(DROP_MALFORMED_IP6)},
    {"ipv6 ext chain too long",      FX_TCP6_CHAIN,  0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(DROP), R(DROP_IP6_EXT_CHAIN)},
    {"tcp6 first fragment",          FX_TCP6_FRAG,   0, TCP_F_SYN,                 0, MUT_NONE, 0,         V(DROP), R(DROP_FRAGMENT)},
    {"tcp6 later fragment",          FX_TCP6_FRAG2,  0, TCP_F_ACK,                 0, MUT_NONE, 0,         V(DROP), R(DROP_FRAGMENT)},
    {"truncated tcp6 (12 B)",        FX_TCP6,        0, TCP_F_ACK,                 0, MUT_L4LEN, 12,       V(DROP), R(DROP_MALFORMED_TCP)},
    {"tcp6 doff 2",                  FX_TCP6,        0, TCP_F_SYN,                 0, MUT_DOFF, 2,         V(DROP), R(DROP_MALFORMED_TCP)},
};
#undef V
#undef R
#define NFIXTURES (sizeof(FIXTURES) / sizeof(FIXTURES[0]))

/* Runs prog once (or `repeat` times) on pkt through BPF_PROG_TEST_RUN.
 * 0 or -errno; *retval the verdict, *ns the mean run time.
 *
 * The hook wants at least 14 bytes of input. A shorter frame is passed as
 * 14 bytes with ctx.data_end = its length (6.x kernels take that as the
 * frame's linear end); older kernels insist on data_end = input size, so
 * then the frame goes behind ctx.data bytes of metadata instead. */
static inline int fx_run(int prog_fd, const uint8_t *pkt, size_t len, int repeat,
                         uint32_t *retval, uint32_t *ns)
{
    uint8_t in[600];
    if (len > sizeof(in) - 16)
        return -E2BIG;
    memset(in, 0, sizeof(in));
    for (int how = 0; how < 2; how++) {
        uint32_t meta = len < 14 && how ? (uint32_t)((14 - len + 3) & ~3u) : 0;
        uint32_t size = meta + (uint32_t)len < 14 ? 14 : meta + (uint32_t)len;
        struct xdp_md ctx = {.data = meta, .data_end = meta + (uint32_t)len};
        memcpy(in + meta, pkt, len);
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = size,
                    .repeat = repeat > 1 ? repeat : 1);
        if (len < 14) {
            o.ctx_in = &ctx;
            o.ctx_size_in = sizeof(ctx);
        }
        if (bpf_prog_test_run_opts(prog_fd, &o) == 0) {
            if (retval)
                *retval = o.retval;
            if (ns)
                *ns = o.duration;
            return 0;
        }
        if (errno != EINVAL || len >= 14)
            return -errno;
        memset(in, 0, sizeof(in));
    }
    return -EINVAL;
}

#endif
