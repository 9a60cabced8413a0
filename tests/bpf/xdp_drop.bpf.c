// SPDX-License-Identifier: GPL-2.0
/* xdp_drop: a test-only XDP program that counts and drops every frame.
 *
 * The sink of bench_bp_forward (bench/bypass/run): attached natively to
 * the generator's veth, it takes the frames bp_entry rewrote and sent
 * back out (XDP_TX on a veth needs an XDP program on the peer, and
 * XDP_PASS there would hand each frame to a TCP stack that answers with
 * resets). xdp_drop_count (per CPU, key 0) is the number of frames
 * delivered, counted whether or not the kernel's BPF statistics are on. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} xdp_drop_count SEC(".maps");

SEC("xdp")
int xdp_drop(struct xdp_md *ctx)
{
    __u32 zero = 0;
    __u64 *n = bpf_map_lookup_elem(&xdp_drop_count, &zero);

    if (n)
        (*n)++;
    return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
