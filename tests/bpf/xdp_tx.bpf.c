// SPDX-License-Identifier: GPL-2.0
/* xdp_tx: a test-only XDP program that sends every frame back out.
 *
 *   - test_xdp_guard puts it in the guard's tail-call slot 0 (steering): a
 *     tail call that happened shows as verdict XDP_TX;
 *   - xdp_livegen runs it with BPF_F_TEST_XDP_LIVE_FRAMES on a veth, which
 *     turns each repetition into a frame transmitted to the peer (where the
 *     guard runs: a veth peer needs an XDP program to accept XDP frames). */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
    return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
