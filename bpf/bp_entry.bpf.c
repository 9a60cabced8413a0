// SPDX-License-Identifier: GPL-2.0
/* bp_entry: the XDP program DPDK's af_xdp driver loads on the gateway's
 * interface for the bypass workers (issue 12, ../shared/BYPASS.md: the
 * driver takes `xdp_prog=FILE`, looks for a map named xsks_map and
 * attaches the program itself). It decides which frames the worker's
 * AF_XDP socket gets; the kernel keeps the rest:
 *
 *   IPv4 TCP to the bypass port (kvg_bpe_cfg.port)   -> the XSK of the
 *                                                       frame's queue
 *   anything else (ARP, IPv6, other ports, malformed) -> XDP_PASS
 *
 * The worker writes kvg_bpe_cfg after the driver loaded the object (it
 * finds the map through the program attached to the interface); until
 * then the port is 0 and every frame goes to the kernel. Later steps chain
 * the guard and bp_forward from here (a program array), as BYPASS.md
 * says. */
#include "vmlinux.h"

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "kvgate.h"

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, 64);
    __type(key, __u32);
    __type(value, __u32);
} xsks_map SEC(".maps");

/* kvg_bpe_cfg: key 0 -> the bypass port (network order), 0: none */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u32);
} kvg_bpe_cfg SEC(".maps");

SEC("xdp")
int bp_entry(struct xdp_md *ctx)
{
    __u8 *data = (__u8 *)(long)ctx->data;
    __u8 *end = (__u8 *)(long)ctx->data_end;
    __u32 zero = 0;
    __u32 *port = bpf_map_lookup_elem(&kvg_bpe_cfg, &zero);

    if (!port || !*port || data + 14 + 20 > end)
        return XDP_PASS;
    if (data[12] != 0x08 || data[13] != 0x00)
        return XDP_PASS;
    __u8 *ip = data + 14;
    __u32 ihl = (ip[0] & 0x0F) * 4;
    if ((ip[0] >> 4) != 4 || ip[9] != 6 || ihl < 20 || ihl > 60)
        return XDP_PASS;
    __u8 *tcp = ip + ihl;
    if (tcp + 20 > end)
        return XDP_PASS;
    __u16 dport;
    __builtin_memcpy(&dport, tcp + 2, 2);
    if (dport != (__u16)*port)
        return XDP_PASS;
    return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
