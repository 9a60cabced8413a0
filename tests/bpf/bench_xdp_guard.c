/* bench_xdp_guard: ns per packet of the XDP guard on each fixture of
 * fixtures.h, through BPF_PROG_TEST_RUN with a repeat count (the kernel
 * times the loop; no syscall per packet). Median of 5 runs per fixture.
 *
 *   build/tests/bpf/bench_xdp_guard [repeat]      (default 200000)
 *
 * SYNs are measured twice: admitted by a bucket with room, and dropped by
 * an empty one. An empty XDP program (tests/bpf/xdp_tx.bpf.c) gives the
 * hook's own cost, to subtract. Needs root; exits 77 without BPF. Absolute
 * figures vary from run to run and machine to machine: compare ratios. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixtures.h"
#include "xdp_guard.skel.h"
#include "tests/xdp_tx.skel.h"

static const char *const REASON[] = KVG_XDP_REASON_NAMES;

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* median ns/packet over 5 runs of `repeat`, or -1 */
static double bench(int prog, const struct pkt *pk, int repeat, uint32_t *verdict)
{
    uint32_t ns[5];
    for (int i = 0; i < 5; i++)
        if (fx_run(prog, pk->b, pk->len, repeat, verdict, &ns[i]))
            return -1;
    qsort(ns, 5, sizeof(ns[0]), cmp_u32);
    return ns[2];
}

static void set_cfg(int fd, uint32_t rate, uint32_t burst)
{
    uint32_t k = 0;
    struct kvg_xdp_cfg c = {.version = KVG_XDP_CFG_VERSION,
                            .flags = KVG_XDP_CFG_F_SYN_LIMIT | KVG_XDP_CFG_F_DROP_FRAGMENTS,
                            .syn_rate = rate, .syn_burst = burst, .v4_prefix = 32,
                            .v6_prefix = 64};
    bpf_map_update_elem(fd, &k, &c, BPF_ANY);
}

static const char *verdict_name(uint32_t v)
{
    return v == XDP_PASS ? "pass" : v == XDP_DROP ? "drop" : v == XDP_TX ? "tx" : "?";
}

int main(int argc, char **argv)
{
    int repeat = argc > 1 ? atoi(argv[1]) : 200000;
    if (repeat < 1)
        repeat = 1;
    if (geteuid() != 0) {
        printf("skipped: needs root to load BPF programs\n");
        return 77;
    }
    struct xdp_guard_bpf *g = xdp_guard_bpf__open_and_load();
    struct xdp_tx_bpf *tx = xdp_tx_bpf__open_and_load();
    if (!g || !tx) {
        printf("skipped: cannot load the BPF programs: %s\n", strerror(errno));
        xdp_guard_bpf__destroy(g);
        xdp_tx_bpf__destroy(tx);
        return 77;
    }
    int prog = bpf_program__fd(g->progs.xdp_guard);
    int cfg = bpf_map__fd(g->maps.kvg_xdp_cfg);
    struct pkt pk;
    uint32_t v = 0;

    printf("XDP guard, BPF_PROG_TEST_RUN, repeat %d, median of 5 (ns/packet)\n", repeat);
    printf("%9s  %-5s %-20s %s\n", "ns/pkt", "verd", "reason", "fixture");
    struct fx base = {.shape = FX_TCP4, .flags = TCP_F_ACK};
    fx_build(&base, FX_SRC_DEFAULT, &pk);
    double b = bench(bpf_program__fd(tx->progs.xdp_tx), &pk, repeat, &v);
    printf("%9.1f  %-5s %-20s %s\n", b, verdict_name(v), "-", "(empty XDP program: the hook)");

    set_cfg(cfg, 0xffffffffu, 0xffffffffu); /* every SYN admitted */
    for (size_t i = 0; i < NFIXTURES; i++) {
        const struct fx *f = &FIXTURES[i];
        fx_build(f, FX_SRC_DEFAULT, &pk);
        fx_mutate(f, &pk);
        double ns = bench(prog, &pk, repeat, &v);
        printf("%9.1f  %-5s %-20s %s\n", ns, verdict_name(v), REASON[f->reason], f->what);
    }
    set_cfg(cfg, 1, 1); /* every SYN over budget */
    struct fx syn4 = {.shape = FX_TCP4, .flags = TCP_F_SYN};
    struct fx syn6 = {.shape = FX_TCP6_DSTOPT, .flags = TCP_F_SYN};
    fx_build(&syn4, (struct fx_src){.v4 = 0x0a090001}, &pk);
    double ns = bench(prog, &pk, repeat, &v);
    printf("%9.1f  %-5s %-20s %s\n", ns, verdict_name(v), REASON[KVG_XDP_DROP_SYN_RATELIMIT],
           "tcp4 syn over budget");
    fx_build(&syn6, (struct fx_src){.v6_hi = 9, .v6_lo = 1}, &pk);
    ns = bench(prog, &pk, repeat, &v);
    printf("%9.1f  %-5s %-20s %s\n", ns, verdict_name(v), REASON[KVG_XDP_DROP_SYN_RATELIMIT],
           "tcp6 dstopts syn over budget");
    xdp_tx_bpf__destroy(tx);
    xdp_guard_bpf__destroy(g);
    return 0;
}
