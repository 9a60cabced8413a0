/* test_bp_rewrite: the bypass path's packet rewrite (issue 12), in C
 * (bpf/bp_rewrite.h as the DPDK worker compiles it) and in BPF (bp_forward,
 * bpf/bypass.bpf.c, through BPF_PROG_TEST_RUN), on a random table of flows
 * and packets, each checked against the packet built from scratch: fields
 * set directly, both checksums computed in full. The table includes
 * sequence and acknowledgement numbers that wrap, window rescaling both
 * ways (and its cap), IP options, TCP options, payloads of 0..1400 bytes,
 * FIN and RST (noted in the entry), packets without ACK (the ack field
 * untouched). Then bp_forward's other exits, each under its counter: no
 * entry, an entry that says pass, one the worker took back, its pod down,
 * unhealthy or gone, not IPv4/TCP, a fragment, a truncated header
 * (test_bp_entry: the same through bp_entry, where the worker's exits go
 * to its AF_XDP socket).
 *
 * Needs root (loading BPF); exits 77 with the reason when BPF or the XDP
 * test-run hook is not available. Loads without pinning: leaves nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "harness.h"
#include "bp_rewrite.h"
#include "bypass.skel.h"

#define NFLOWS 2000
#define MAXPKT 1600

static struct bypass_bpf *skel;
static int prog, flows_fd, stats_fd, pods_fd, ncpus;

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* ---- packets built from scratch ---- */

static uint16_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* Both checksums of the IPv4/TCP packet in p, in full. */
static void full_checksums(uint8_t *p, size_t len)
{
    uint8_t *ip = p + 14;
    size_t ihl = (size_t)(ip[0] & 15) * 4;
    uint8_t *tcp = ip + ihl;
    size_t tlen = len - 14 - ihl;
    ip[10] = ip[11] = 0;
    uint16_t ic = (uint16_t)~sum16(ip, ihl, 0);
    ip[10] = (uint8_t)(ic >> 8), ip[11] = (uint8_t)ic;
    tcp[16] = tcp[17] = 0;
    uint8_t ph[12];
    memcpy(ph, ip + 12, 8);
    ph[8] = 0, ph[9] = 6, ph[10] = (uint8_t)(tlen >> 8), ph[11] = (uint8_t)tlen;
    uint16_t tc = (uint16_t)~sum16(tcp, tlen, sum16(ph, 12, 0));
    tcp[16] = (uint8_t)(tc >> 8), tcp[17] = (uint8_t)tc;
}

struct flowcase {
    struct kvg_bp_key key;
    struct kvg_bp_flow val;
};

/* A packet of the flow: random options, flags, numbers, payload. */
static size_t make_packet(const struct flowcase *fc, uint8_t *p, uint8_t flags)
{
    size_t ipopt = rnd() % 4 == 0 ? 4 : 0, tcpopt = rnd() % 3 == 0 ? 12 : 0;
    size_t pay = rnd() % 5 == 0 ? 0 : rnd() % 1400;
    size_t len = 14 + 20 + ipopt + 20 + tcpopt + pay;
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)rnd();
    p[12] = 0x08, p[13] = 0x00;
    uint8_t *ip = p + 14;
    ip[0] = (uint8_t)(0x40 | (5 + ipopt / 4));
    ip[1] = 0;
    uint16_t tot = (uint16_t)(len - 14);
    ip[2] = (uint8_t)(tot >> 8), ip[3] = (uint8_t)tot;
    ip[6] = 0x40, ip[7] = 0; /* DF, not a fragment */
    ip[8] = 64, ip[9] = 6;
    if (ipopt)
        memset(ip + 20, 1, ipopt); /* NOPs */
    memcpy(ip + 12, &fc->key.saddr, 4);
    memcpy(ip + 16, &fc->key.daddr, 4);
    uint8_t *tcp = ip + 20 + ipopt;
    memcpy(tcp, &fc->key.sport, 2);
    memcpy(tcp + 2, &fc->key.dport, 2);
    tcp[12] = (uint8_t)((5 + tcpopt / 4) << 4);
    tcp[13] = flags;
    if (tcpopt)
        memset(tcp + 20, 1, tcpopt);
    if (rnd() % 4 == 0) { /* numbers near the wrap */
        uint32_t s = 0xffffffffu - (uint32_t)(rnd() % 3000);
        s = htonl(s);
        memcpy(tcp + 4, &s, 4);
        memcpy(tcp + 8, &s, 4);
    }
    full_checksums(p, len);
    return len;
}

/* What the packet must become: fields set directly, checksums in full. */
static void expected(const struct flowcase *fc, const uint8_t *in, size_t len, uint8_t *out)
{
    memcpy(out, in, len);
    const struct kvg_bp_flow *f = &fc->val;
    memcpy(out, f->dmac, 6);
    memcpy(out + 6, f->smac, 6);
    uint8_t *ip = out + 14;
    uint8_t *tcp = ip + (ip[0] & 15) * 4;
    memcpy(ip + 12, &f->saddr, 4);
    memcpy(ip + 16, &f->daddr, 4);
    memcpy(tcp, &f->sport, 2);
    memcpy(tcp + 2, &f->dport, 2);
    uint32_t v;
    memcpy(&v, tcp + 4, 4);
    v = htonl(ntohl(v) + f->seq_delta);
    memcpy(tcp + 4, &v, 4);
    if (tcp[13] & 0x10) {
        memcpy(&v, tcp + 8, 4);
        v = htonl(ntohl(v) + f->ack_delta);
        memcpy(tcp + 8, &v, 4);
    }
    uint64_t w = (uint64_t)(tcp[14] << 8 | tcp[15]);
    w = (w << f->win_shl) >> f->win_shr;
    if (w > 65535)
        w = 65535;
    tcp[14] = (uint8_t)(w >> 8), tcp[15] = (uint8_t)w;
    full_checksums(out, len);
}

static void random_flow(struct flowcase *fc, uint32_t i)
{
    memset(fc, 0, sizeof(*fc));
    fc->key.family = KVG_AF_INET;
    fc->key.saddr = htonl(0x0a000000u | i);       /* unique per flow */
    fc->key.daddr = (uint32_t)rnd();
    fc->key.sport = (uint16_t)rnd();
    fc->key.dport = (uint16_t)rnd();
    struct kvg_bp_flow *f = &fc->val;
    f->saddr = (uint32_t)rnd();
    f->daddr = (uint32_t)rnd();
    f->sport = (uint16_t)rnd();
    f->dport = (uint16_t)rnd();
    for (int k = 0; k < 6; k++)
        f->smac[k] = (uint8_t)rnd(), f->dmac[k] = (uint8_t)rnd();
    f->seq_delta = (uint32_t)rnd();
    f->ack_delta = i % 7 == 0 ? 0 : (uint32_t)rnd();
    f->win_shl = (uint8_t)(rnd() % 15);
    f->win_shr = (uint8_t)(rnd() % 15);
    f->action = KVG_BP_ACT_REWRITE;
    f->pod_slot = KVG_POD_MAX; /* no pod check: pods are tested apart */
}

/* ---- BPF ---- */

static int run(const uint8_t *in, size_t len, uint8_t *out, uint32_t *outlen, uint32_t *verdict)
{
    uint8_t buf[MAXPKT];
    memcpy(buf, in, len);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = (uint32_t)len,
                .data_out = out, .data_size_out = MAXPKT);
    if (bpf_prog_test_run_opts(prog, &o))
        return -errno;
    *verdict = o.retval;
    *outlen = o.data_size_out;
    return 0;
}

static uint64_t stat_packets(uint32_t reason)
{
    struct kvg_bp_stat v[ncpus];
    uint64_t n = 0;
    if (bpf_map_lookup_elem(stats_fd, &reason, v))
        return 0;
    for (int i = 0; i < ncpus; i++)
        n += v[i].packets;
    return n;
}

static void dump_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            fprintf(stderr, "    first difference at byte %zu: %02x vs %02x\n", i, a[i], b[i]);
            return;
        }
}

static struct flowcase fcs[NFLOWS];

TEST(random_table_c_and_bpf_equal_a_full_recompute)
{
    uint64_t fwd0 = stat_packets(KVG_BP_FORWARDED);
    for (uint32_t i = 0; i < NFLOWS; i++) {
        random_flow(&fcs[i], i + 1);
        CHECK_EQ(bpf_map_update_elem(flows_fd, &fcs[i].key, &fcs[i].val, BPF_ANY), 0);
    }
    int c_bad = 0, bpf_bad = 0, verdict_bad = 0, npkts = 0, wraps = 0, capped = 0;
    for (uint32_t i = 0; i < NFLOWS; i++) {
        for (int k = 0; k < 3; k++) {
            uint8_t flags = (uint8_t)(rnd() % 8 == 0 ? 0x02 /* no ACK */ : 0x18);
            if (k == 2 && i % 10 == 0)
                flags |= i % 20 == 0 ? KVG_TCP_RST : KVG_TCP_FIN;
            uint8_t in[MAXPKT], want[MAXPKT], c[MAXPKT], out[MAXPKT];
            size_t len = make_packet(&fcs[i], in, flags);
            expected(&fcs[i], in, len, want);
            uint32_t s0, s1;
            memcpy(&s0, in + 14 + (in[14] & 15) * 4 + 4, 4);
            memcpy(&s1, want + 14 + (want[14] & 15) * 4 + 4, 4);
            wraps += ntohl(s1) < ntohl(s0);
            capped += want[14 + (want[14] & 15) * 4 + 14] == 0xff &&
                      want[14 + (want[14] & 15) * 4 + 15] == 0xff;
            /* C, as the worker runs it */
            memcpy(c, in, len);
            uint8_t *ip = c + 14;
            kvg_bp_rewrite(c, ip, ip + (ip[0] & 15) * 4, &fcs[i].val);
            if (memcmp(c, want, len)) {
                if (c_bad++ < 3) {
                    fprintf(stderr, "  C rewrite differs, flow %u\n", i);
                    dump_diff(c, want, len);
                }
            }
            /* BPF */
            uint32_t olen = 0, verdict = 0;
            CHECK_EQ(run(in, len, out, &olen, &verdict), 0);
            if (verdict != 3 /* XDP_TX */)
                verdict_bad++;
            if (olen != len || memcmp(out, want, len)) {
                if (bpf_bad++ < 3) {
                    fprintf(stderr, "  BPF rewrite differs, flow %u (len %u vs %zu)\n", i, olen,
                            len);
                    dump_diff(out, want, len);
                }
            }
            npkts++;
        }
    }
    printf("  %d packets over %d flows: %d sequence wraps, %d capped windows\n", npkts, NFLOWS,
           wraps, capped);
    CHECK_EQ(c_bad, 0);
    CHECK_EQ(bpf_bad, 0);
    CHECK_EQ(verdict_bad, 0);
    CHECK(wraps > 100);
    CHECK(capped > 10);
    CHECK_EQ(stat_packets(KVG_BP_FORWARDED) - fwd0, (uint64_t)npkts);
    /* the entries counted their packets and noted FIN / RST */
    struct kvg_bp_flow v;
    CHECK_EQ(bpf_map_lookup_elem(flows_fd, &fcs[10].key, &v), 0);
    CHECK_EQ(v.packets, 3);
    CHECK_EQ(v.flags, KVG_BP_F_FIN);
    CHECK_EQ(bpf_map_lookup_elem(flows_fd, &fcs[20].key, &v), 0);
    CHECK_EQ(v.flags, KVG_BP_F_RST);
    CHECK_EQ(bpf_map_lookup_elem(flows_fd, &fcs[11].key, &v), 0);
    CHECK_EQ(v.flags, 0);
}

/* Not a check (tests check behaviour, not time): what one forward costs
 * under the test-run hook, for the record next to the guard's. */
TEST(cost_per_packet_reported)
{
    /* repetitions run on the rewritten frame: a flow that maps onto
     * itself keeps every repetition on the forwarding path */
    struct flowcase id;
    random_flow(&id, 800000);
    id.val.saddr = id.key.saddr, id.val.daddr = id.key.daddr;
    id.val.sport = id.key.sport, id.val.dport = id.key.dport;
    id.val.seq_delta = id.val.ack_delta = 0;
    id.val.win_shl = id.val.win_shr = 3;
    CHECK_EQ(bpf_map_update_elem(flows_fd, &id.key, &id.val, BPF_ANY), 0);
    uint8_t in[MAXPKT];
    size_t len = make_packet(&id, in, 0x18);
    memcpy(in, id.val.dmac, 6);
    memcpy(in + 6, id.val.smac, 6);
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)len,
                .repeat = 200000);
    uint64_t f0 = stat_packets(KVG_BP_FORWARDED);
    CHECK_EQ(bpf_prog_test_run_opts(prog, &o), 0);
    CHECK_EQ(o.retval, 3);
    CHECK_EQ(stat_packets(KVG_BP_FORWARDED) - f0, 200000);
    CHECK_EQ(bpf_map_delete_elem(flows_fd, &id.key), 0);
    printf("  bp_forward: %u ns a packet (%zu-byte frame, BPF_PROG_TEST_RUN x 200000)\n",
           o.duration, len);
}

TEST(window_rescale_edges)
{
    CHECK_EQ(kvg_bp_window(1000, 7, 7), 1000);
    CHECK_EQ(kvg_bp_window(1000, 7, 0), 65535);     /* capped */
    CHECK_EQ(kvg_bp_window(65535, 14, 14), 65535);
    CHECK_EQ(kvg_bp_window(513, 2, 9), 513 * 4 / 512); /* floor: never announce more */
    CHECK_EQ(kvg_bp_window(0, 14, 0), 0);
}

/* One packet of flow fc through bp_forward: its verdict, and which counter moved. */
static uint32_t verdict_of(const uint8_t *pkt, size_t len, uint32_t reason, int *moved)
{
    uint64_t before = stat_packets(reason);
    uint8_t out[MAXPKT];
    uint32_t olen, v = 0xdead;
    if (run(pkt, len, out, &olen, &v))
        return 0xdead;
    *moved = (int)(stat_packets(reason) - before);
    return v;
}

TEST(other_exits_each_counted)
{
    struct flowcase fc;
    random_flow(&fc, 900000);
    uint8_t p[MAXPKT];
    size_t len = make_packet(&fc, p, 0x10);
    int moved = 0;
    /* no entry */
    CHECK_EQ(verdict_of(p, len, KVG_BP_MISS, &moved), 2 /* XDP_PASS */);
    CHECK_EQ(moved, 1);
    /* an entry that says pass */
    fc.val.action = KVG_BP_ACT_PASS;
    CHECK_EQ(bpf_map_update_elem(flows_fd, &fc.key, &fc.val, BPF_ANY), 0);
    CHECK_EQ(verdict_of(p, len, KVG_BP_HANDED_UP, &moved), 2);
    CHECK_EQ(moved, 1);
    /* one the worker took back: no worker behind bp_forward, passed */
    fc.val.action = KVG_BP_ACT_WORKER;
    CHECK_EQ(bpf_map_update_elem(flows_fd, &fc.key, &fc.val, BPF_ANY), 0);
    CHECK_EQ(verdict_of(p, len, KVG_BP_TO_WORKER, &moved), 2);
    CHECK_EQ(moved, 1);
    /* its pod: absent, down, then healthy */
    fc.val.action = KVG_BP_ACT_REWRITE;
    fc.val.pod_slot = 7;
    CHECK_EQ(bpf_map_update_elem(flows_fd, &fc.key, &fc.val, BPF_ANY), 0);
    uint32_t slot = 7;
    struct kvg_pod pod = {0};
    CHECK_EQ(bpf_map_update_elem(pods_fd, &slot, &pod, BPF_ANY), 0);
    CHECK_EQ(verdict_of(p, len, KVG_BP_POD_DOWN, &moved), 2);
    CHECK_EQ(moved, 1);
    pod.flags = KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_DOWN;
    CHECK_EQ(bpf_map_update_elem(pods_fd, &slot, &pod, BPF_ANY), 0);
    CHECK_EQ(verdict_of(p, len, KVG_BP_POD_DOWN, &moved), 2);
    CHECK_EQ(moved, 1);
    pod.flags = KVG_POD_F_PRESENT | KVG_POD_F_METRICS_OK; /* unhealthy */
    CHECK_EQ(bpf_map_update_elem(pods_fd, &slot, &pod, BPF_ANY), 0);
    CHECK_EQ(verdict_of(p, len, KVG_BP_POD_DOWN, &moved), 2);
    CHECK_EQ(moved, 1);
    pod.flags = KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_DRAINING;
    CHECK_EQ(bpf_map_update_elem(pods_fd, &slot, &pod, BPF_ANY), 0);
    CHECK_EQ(verdict_of(p, len, KVG_BP_FORWARDED, &moved), 3 /* XDP_TX: draining is
                                                                 judged per request */);
    CHECK_EQ(moved, 1);
    /* not IPv4 / TCP */
    uint8_t q[MAXPKT];
    memcpy(q, p, len);
    q[12] = 0x86, q[13] = 0xdd;
    CHECK_EQ(verdict_of(q, len, KVG_BP_NOT_IPV4_TCP, &moved), 2);
    CHECK_EQ(moved, 1);
    memcpy(q, p, len);
    q[14 + 9] = 17; /* UDP */
    CHECK_EQ(verdict_of(q, len, KVG_BP_NOT_IPV4_TCP, &moved), 2);
    CHECK_EQ(moved, 1);
    /* a fragment, a truncated TCP header, a short frame */
    memcpy(q, p, len);
    q[14 + 6] = 0x20; /* MF */
    CHECK_EQ(verdict_of(q, len, KVG_BP_MALFORMED, &moved), 2);
    CHECK_EQ(moved, 1);
    size_t ihl = (size_t)(p[14] & 15) * 4;
    CHECK_EQ(verdict_of(p, 14 + ihl + 19, KVG_BP_MALFORMED, &moved), 2);
    CHECK_EQ(moved, 1);
    CHECK_EQ(bpf_map_delete_elem(flows_fd, &fc.key), 0);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root to load BPF programs\n");
        return 77;
    }
    libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
    skel = bypass_bpf__open_and_load();
    if (!skel) {
        printf("skipped: cannot load bp_forward: %s\n", strerror(errno));
        return 77;
    }
    prog = bpf_program__fd(skel->progs.bp_forward);
    flows_fd = bpf_map__fd(skel->maps.kvg_bp_flows);
    stats_fd = bpf_map__fd(skel->maps.kvg_bp_stats);
    pods_fd = bpf_map__fd(skel->maps.kvg_pods);
    ncpus = libbpf_num_possible_cpus();
    uint8_t probe[64] = {0}, out[MAXPKT];
    uint32_t olen, v;
    int rc = run(probe, sizeof(probe), out, &olen, &v);
    if (rc == -ENOTSUP || rc == -EOPNOTSUPP || rc == -524 || rc == -EINVAL) {
        printf("skipped: BPF_PROG_TEST_RUN for XDP not available: %s\n", strerror(-rc));
        bypass_bpf__destroy(skel);
        return 77;
    }
    RUN(random_table_c_and_bpf_equal_a_full_recompute);
    RUN(cost_per_packet_reported);
    RUN(window_rescale_edges);
    RUN(other_exits_each_counted);
    bypass_bpf__destroy(skel);
    return harness_done();
}
