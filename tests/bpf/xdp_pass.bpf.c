// SPDX-License-Identifier: GPL-2.0
/* xdp_pass: a test-only XDP program that passes every frame to the kernel.
 *
 * Attached (native mode) to the veth peer of an interface whose XDP
 * program answers with XDP_TX (the bypass worker's bp_entry in
 * tests/dpdk/test_splice.sh). veth moves an XDP_TX frame into its peer's NAPI
 * ring, and veth_xdp_flush() schedules that NAPI only when the peer has
 * an XDP program of its own: with GRO alone the peer takes the frames
 * (NAPI is on) but nobody polls them, and they wait until some ordinary
 * packet the interface sends (an ARP, an IPv6 MLD report) happens to
 * schedule it, hundreds of milliseconds to seconds later. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
