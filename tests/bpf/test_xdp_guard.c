/* test_xdp_guard: bpf/xdp_guard.bpf.c through BPF_PROG_TEST_RUN.
 *
 * Table-driven (fixtures.h): each row is a packet, the verdict it must get
 * and the one reason counter that must move (by one packet and the frame's
 * bytes; every other reason must stay still). Then the SYN limiter: a burst
 * from one source beyond its bucket, a second source unaffected, prefixes
 * sharing a bucket, limits changed through kvg_xdp_cfg at run time, the
 * limiter off, the compiled defaults while the map is unset; the fragment
 * policy; the tail call into slot 0.
 *
 * Needs root (loading BPF); exits 77 with the reason when BPF or the XDP
 * test-run hook is not available. Loads without pinning: leaves nothing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "fixtures.h"
#include "xdp_guard.skel.h"
#include "tests/xdp_tx.skel.h"

static const char *const REASON[] = KVG_XDP_REASON_NAMES;
static struct xdp_guard_bpf *skel;
static int prog, stats_fd, cfg_fd, bkt_fd, progs_fd, ncpus;

struct counts {
    struct kvg_xdp_stat r[KVG_XDP_REASON_MAX];
};

static void read_counts(struct counts *c)
{
    struct kvg_xdp_stat v[ncpus];
    memset(c, 0, sizeof(*c));
    for (uint32_t r = 0; r < KVG_XDP_REASON_MAX; r++) {
        if (bpf_map_lookup_elem(stats_fd, &r, v)) {
            fprintf(stderr, "stats lookup %u: %s\n", r, strerror(errno));
            continue;
        }
        for (int i = 0; i < ncpus; i++) {
            c->r[r].packets += v[i].packets;
            c->r[r].bytes += v[i].bytes;
        }
    }
}

static uint64_t delta(const struct counts *a, const struct counts *b, int reason)
{
    return b->r[reason].packets - a->r[reason].packets;
}

static void set_cfg(uint32_t flags, uint32_t rate, uint32_t burst, uint16_t gw_port,
                    uint8_t v4_prefix, uint8_t v6_prefix)
{
    uint32_t k = 0;
    struct kvg_xdp_cfg c = {.version = KVG_XDP_CFG_VERSION, .flags = flags, .syn_rate = rate,
                            .syn_burst = burst, .gw_port = htons(gw_port),
                            .v4_prefix = v4_prefix, .v6_prefix = v6_prefix};
    if (bpf_map_update_elem(cfg_fd, &k, &c, BPF_ANY))
        fprintf(stderr, "config update: %s\n", strerror(errno));
}
#define LIMIT (KVG_XDP_CFG_F_SYN_LIMIT | KVG_XDP_CFG_F_DROP_FRAGMENTS)

/* One SYN (v4 from 10.a.b.c, or v6 from 2001:db8:0:hi::lo); the verdict. */
static uint32_t syn_from(struct fx_src src, int v6, uint16_t dport, uint8_t flags)
{
    struct fx f = {.shape = v6 ? FX_TCP6 : FX_TCP4, .flags = flags ? flags : TCP_F_SYN,
                   .dport = dport};
    struct pkt pk;
    uint32_t ret = 0;
    fx_build(&f, src, &pk);
    if (fx_run(prog, pk.b, pk.len, 1, &ret, NULL))
        return 0xdead;
    return ret;
}
#define V4(a) ((struct fx_src){.v4 = (a)})
#define V6(hi, lo) ((struct fx_src){.v6_hi = (hi), .v6_lo = (lo)})

/* per-row pass/fail lines in the harness's format */
static void row_begin(const char *what)
{
    h_cur_name = what;
    h_cur_failed = 0;
}
static void row_end(void)
{
    if (h_cur_failed) {
        h_failed++;
        printf("FAIL %s\n", h_cur_name);
    } else {
        h_passed++;
        printf("ok   %s\n", h_cur_name);
    }
    fflush(stdout);
}

/* Runs first, on the fresh map: version 0 means the compiled defaults
 * (limiter on, burst KVG_XDP_SYN_BURST_DEFAULT). */
TEST(defaults_while_cfg_unset)
{
    struct fx f = {.shape = FX_TCP4, .flags = TCP_F_SYN};
    struct pkt pk;
    struct counts a, b, c;
    fx_build(&f, V4(0x0a010001), &pk);
    read_counts(&a);
    CHECK_EQ(fx_run(prog, pk.b, pk.len, KVG_XDP_SYN_BURST_DEFAULT, NULL, NULL), 0);
    read_counts(&b);
    CHECK_EQ(delta(&a, &b, KVG_XDP_PASS_SYN), KVG_XDP_SYN_BURST_DEFAULT);
    CHECK_EQ(fx_run(prog, pk.b, pk.len, 50, NULL, NULL), 0);
    read_counts(&c);
    /* 100/s refills one every 10 ms: a preempted run may see one or two */
    CHECK(delta(&b, &c, KVG_XDP_DROP_SYN_RATELIMIT) >= 45);
}

static void run_table(void)
{
    /* room for every SYN in the table */
    set_cfg(LIMIT, 1000000, 1000000, 0, 32, 64);
    for (size_t i = 0; i < NFIXTURES; i++) {
        const struct fx *f = &FIXTURES[i];
        struct pkt pk;
        struct counts a, b;
        uint32_t ret = 0;
        row_begin(f->what);
        fx_build(f, FX_SRC_DEFAULT, &pk);
        fx_mutate(f, &pk);
        read_counts(&a);
        int rc = fx_run(prog, pk.b, pk.len, 1, &ret, NULL);
        read_counts(&b);
        CHECK_EQ(rc, 0);
        CHECK_EQ(ret, f->verdict);
        for (int r = 0; r < KVG_XDP_REASON_MAX; r++) {
            uint64_t want = r == (int)f->reason;
            if (delta(&a, &b, r) != want) {
                h_cur_failed++;
                fprintf(stderr, "  %s: reason %s moved by %llu, expected %llu\n", f->what,
                        REASON[r], (unsigned long long)delta(&a, &b, r),
                        (unsigned long long)want);
            }
        }
        /* bytes = the whole frame (bpf_xdp_get_buff_len); a frame under 14
         * bytes is run as 14 bytes of input with the linear part cut short
         * (fx_run), so the rest counts as a fragment */
        uint64_t bytes = b.r[f->reason].bytes - a.r[f->reason].bytes;
        CHECK(bytes == pk.len || (pk.len < 14 && bytes == 14));
        row_end();
    }
}

TEST(syn_burst_one_source)
{
    struct counts a, b;
    set_cfg(LIMIT, 1, 5, 0, 32, 64); /* 1/s: no refill within the test */
    read_counts(&a);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(syn_from(V4(0x0a020001), 0, 80, 0), i < 5 ? XDP_PASS : XDP_DROP);
    read_counts(&b);
    CHECK_EQ(delta(&a, &b, KVG_XDP_PASS_SYN), 5);
    CHECK_EQ(delta(&a, &b, KVG_XDP_DROP_SYN_RATELIMIT), 3);
    /* the bucket, as an operator's dump shows it */
    struct kvg_src k = {.addr = {0, 0, htonl(0xffff), htonl(0x0a020001)}};
    struct kvg_bucket v;
    CHECK_EQ(bpf_map_lookup_elem(bkt_fd, &k, &v), 0);
    CHECK_EQ(v.dropped, 3);
    /* a second source has its own bucket; non-SYN traffic is not limited */
    CHECK_EQ(syn_from(V4(0x0a020002), 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(V4(0x0a020001), 0, 80, TCP_F_ACK), XDP_PASS);
    CHECK_EQ(syn_from(V4(0x0a020001), 0, 80, TCP_F_SYN | TCP_F_ACK), XDP_PASS);
    CHECK_EQ(syn_from(V4(0x0a020001), 0, 80, 0), XDP_DROP);
}

TEST(syn_burst_ipv6_shares_a_64)
{
    set_cfg(LIMIT, 1, 2, 0, 32, 64);
    CHECK_EQ(syn_from(V6(7, 1), 1, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(V6(7, 2), 1, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(V6(7, 3), 1, 80, 0), XDP_DROP); /* same /64 */
    CHECK_EQ(syn_from(V6(8, 1), 1, 80, 0), XDP_PASS); /* another /64 */
    set_cfg(LIMIT, 1, 2, 0, 32, 128); /* per address */
    CHECK_EQ(syn_from(V6(7, 4), 1, 80, 0), XDP_PASS);
}

TEST(syn_burst_ipv4_prefix)
{
    set_cfg(LIMIT, 1, 2, 0, 24, 64);
    CHECK_EQ(syn_from(V4(0x0a030001), 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(V4(0x0a030002), 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(V4(0x0a0300fe), 0, 80, 0), XDP_DROP); /* same /24 */
    CHECK_EQ(syn_from(V4(0x0a030101), 0, 80, 0), XDP_PASS);
}

TEST(limits_changed_at_run_time)
{
    struct fx_src s = V4(0x0a040001);
    set_cfg(LIMIT, 1, 3, 0, 32, 64);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(syn_from(s, 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(s, 0, 80, 0), XDP_DROP);
    /* raised: the throttled source is cut back to the new limits' backlog
     * and admitted again within one new interval (1 us) */
    set_cfg(LIMIT, 1000000, 3, 0, 32, 64);
    syn_from(s, 0, 80, 0); /* the cut happens here (dropped or not) */
    usleep(1000);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(syn_from(s, 0, 80, 0), XDP_PASS);
    /* lowered: a burst of 2 at 1/s */
    set_cfg(LIMIT, 1, 2, 0, 32, 64);
    struct fx_src s2 = V4(0x0a040002);
    CHECK_EQ(syn_from(s2, 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(s2, 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(s2, 0, 80, 0), XDP_DROP);
    CHECK_EQ(syn_from(s2, 0, 80, 0), XDP_DROP);
}

TEST(limiter_off)
{
    struct fx_src s = V4(0x0a050001);
    struct counts a, b;
    set_cfg(LIMIT, 1, 1, 0, 32, 64);
    CHECK_EQ(syn_from(s, 0, 80, 0), XDP_PASS);
    CHECK_EQ(syn_from(s, 0, 80, 0), XDP_DROP);
    set_cfg(KVG_XDP_CFG_F_DROP_FRAGMENTS, 1, 1, 0, 32, 64); /* flag off */
    read_counts(&a);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(syn_from(s, 0, 80, 0), XDP_PASS);
    read_counts(&b);
    CHECK_EQ(delta(&a, &b, KVG_XDP_PASS_SYN), 10);
    set_cfg(LIMIT, 0, 1, 0, 32, 64); /* rate 0 is off too */
    CHECK_EQ(syn_from(s, 0, 80, 0), XDP_PASS);
    set_cfg(LIMIT, 1, 1, 0, 32, 64); /* on again: still over budget */
    CHECK_EQ(syn_from(s, 0, 80, 0), XDP_DROP);
}

TEST(fragment_policy_pass)
{
    struct fx f = {.shape = FX_TCP4_FRAG, .flags = TCP_F_ACK};
    struct fx f6 = {.shape = FX_TCP6_FRAG2, .flags = TCP_F_ACK};
    struct pkt pk;
    struct counts a, b;
    uint32_t ret = 0;
    set_cfg(KVG_XDP_CFG_F_SYN_LIMIT, 1000, 1000, 0, 32, 64);
    read_counts(&a);
    fx_build(&f, FX_SRC_DEFAULT, &pk);
    CHECK_EQ(fx_run(prog, pk.b, pk.len, 1, &ret, NULL), 0);
    CHECK_EQ(ret, XDP_PASS);
    fx_build(&f6, FX_SRC_DEFAULT, &pk);
    CHECK_EQ(fx_run(prog, pk.b, pk.len, 1, &ret, NULL), 0);
    CHECK_EQ(ret, XDP_PASS);
    read_counts(&b);
    CHECK_EQ(delta(&a, &b, KVG_XDP_PASS_FRAGMENT), 2);
}

TEST(tail_call_slot0)
{
    struct xdp_tx_bpf *tx = xdp_tx_bpf__open_and_load();
    struct counts a, b;
    uint32_t slot = KVG_XDP_SLOT_STEER;
    CHECK(tx != NULL);
    if (!tx)
        return;
    int fd = bpf_program__fd(tx->progs.xdp_tx);
    set_cfg(LIMIT, 1000, 1000, 8080, 32, 64);
    /* empty slot: a no-op */
    CHECK_EQ(syn_from(V4(0x0a060001), 0, 8080, TCP_F_ACK), XDP_PASS);
    CHECK_EQ(bpf_map_update_elem(progs_fd, &slot, &fd, BPF_ANY), 0);
    read_counts(&a);
    CHECK_EQ(syn_from(V4(0x0a060001), 0, 8080, TCP_F_ACK), XDP_TX); /* steered */
    CHECK_EQ(syn_from(V6(9, 1), 1, 8080, TCP_F_SYN), XDP_TX);
    CHECK_EQ(syn_from(V4(0x0a060001), 0, 80, TCP_F_ACK), XDP_PASS); /* other port */
    read_counts(&b);
    /* the guard counted its pass before the call */
    CHECK_EQ(delta(&a, &b, KVG_XDP_PASS_TCP), 2);
    CHECK_EQ(delta(&a, &b, KVG_XDP_PASS_SYN), 1);
    /* dropped packets never reach the steering program */
    set_cfg(LIMIT, 1, 1, 8080, 32, 64);
    CHECK_EQ(syn_from(V4(0x0a060002), 0, 8080, TCP_F_SYN), XDP_TX);
    CHECK_EQ(syn_from(V4(0x0a060002), 0, 8080, TCP_F_SYN), XDP_DROP);
    set_cfg(LIMIT, 1000, 1000, 0, 32, 64); /* gw_port 0: no tail call */
    CHECK_EQ(syn_from(V4(0x0a060001), 0, 8080, TCP_F_ACK), XDP_PASS);
    CHECK_EQ(bpf_map_delete_elem(progs_fd, &slot), 0);
    xdp_tx_bpf__destroy(tx);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root to load BPF programs\n");
        return 77;
    }
    libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
    skel = xdp_guard_bpf__open_and_load();
    if (!skel) {
        printf("skipped: cannot load the XDP guard: %s\n", strerror(errno));
        return 77;
    }
    prog = bpf_program__fd(skel->progs.xdp_guard);
    stats_fd = bpf_map__fd(skel->maps.kvg_xdp_stats);
    cfg_fd = bpf_map__fd(skel->maps.kvg_xdp_cfg);
    bkt_fd = bpf_map__fd(skel->maps.kvg_syn_bkt);
    progs_fd = bpf_map__fd(skel->maps.kvg_xdp_progs);
    ncpus = libbpf_num_possible_cpus();
    uint8_t probe[64] = {0};
    int rc = fx_run(prog, probe, sizeof(probe), 1, NULL, NULL);
    if (rc == -ENOTSUP || rc == -EOPNOTSUPP || rc == -524 /* ENOTSUPP */ || rc == -EINVAL) {
        printf("skipped: BPF_PROG_TEST_RUN for XDP not available: %s\n", strerror(-rc));
        xdp_guard_bpf__destroy(skel);
        return 77;
    }
    RUN(defaults_while_cfg_unset);
    run_table();
    RUN(syn_burst_one_source);
    RUN(syn_burst_ipv6_shares_a_64);
    RUN(syn_burst_ipv4_prefix);
    RUN(limits_changed_at_run_time);
    RUN(limiter_off);
    RUN(fragment_policy_pass);
    RUN(tail_call_slot0);
    xdp_guard_bpf__destroy(skel);
    return harness_done();
}
