/* bench_bp_forward: established-flow forwarding through bp_entry (the
 * bypass path's XDP program, bpf/bp_entry.bpf.c) with live frames, for
 * `make bench-bypass` (bench/bypass/run, issue 12).
 *
 * A veth pair between two network namespaces the caller made: GEN (the
 * generator's side, standing for the pod and the client) and GW (the
 * gateway's). bp_entry is attached natively to GW's end with one flow
 * entry in its kvg_bp_flows, pod -> client (the streaming direction: one
 * small segment per SSE event), its pod's slot in kvg_pods present and
 * healthy unless --no-pod-check, and a second entry that takes the
 * rewritten frame back to the first key (live frames keep the program's
 * writes to the data between repetitions: see main). The generator is xdp_livegen's method:
 * tests/bpf/xdp_tx.bpf.c run with BPF_F_TEST_XDP_LIVE_FRAMES on GEN's end
 * transmits COUNT copies of one frame of that flow (ACK+PSH, PAYLOAD bytes,
 * valid checksums); bp_entry rewrites each and sends it back out (XDP_TX),
 * and tests/bpf/xdp_drop.bpf.c on GEN's end takes and counts it.
 *
 *   bench_bp_forward --gen-ns NS --gen-if IF --gw-ns NS --gw-if IF
 *                    [--count N] [--runs R] [--payload BYTES] [--batch B]
 *                    [--no-pod-check]
 *
 * Each run is done twice. First with the kernel's BPF run-time statistics
 * off (they add two clock reads to every program run): frames received by
 * the sink (its own per-CPU counter), lost = sent - received, the wall
 * time of the test run and Mpps received over it. Then with them on: the
 * same counts plus bp_entry's runs, the frames it forwarded (kvg_bp_stats)
 * and its entries counted, and ns per packet of bp_entry, the sink and the
 * generator (run_time_ns / run_cnt, what bpftool prog show prints). The
 * statistics are switched on with BPF_ENABLE_STATS, which holds them on
 * only while this process keeps the returned fd: nothing to restore, even
 * after kill -9 (kernel.bpf_stats_enabled is left as it was). One JSON line
 * per run on stdout. Run it under `taskset -c N`: the live-frames loop,
 * both veth NAPI polls, bp_entry and the sink then all run on that core.
 *
 * Before the runs, one frame goes through bp_entry with BPF_PROG_TEST_RUN
 * and must come out rewritten towards the client with XDP_TX (else exit 1).
 * Needs root; exits 77 with the reason when live frames or BPF statistics
 * are not available. Everything attached is a bpf_link: gone with the
 * process. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kvgate.h"
#include "bp_entry.skel.h"
#include "tests/xdp_drop.skel.h"
#include "tests/xdp_tx.skel.h"

/* the flow: the pod 10.250.0.3:8000 answers the worker's pod-side
 * connection from the gateway 10.250.0.2:61000; the client is
 * 10.250.0.1:40000 and connected to the bypass port 8000 */
#define POD_IP 0x0afa0003u
#define GW_IP 0x0afa0002u
#define CLIENT_IP 0x0afa0001u
#define POD_PORT 8000
#define GW_PORT 61000
#define BYPASS_PORT 8000
#define CLIENT_PORT 40000
#define SLOT 0

static int enter_ns(const char *name)
{
    char p[256];
    snprintf(p, sizeof(p), "/run/netns/%s", name);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET)) {
        fprintf(stderr, "bench_bp_forward: network namespace %s: %s\n", name, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

/* ifindex and MAC of IF in the current network namespace; 0 or -1 */
static int if_info(const char *name, int *ifindex, uint8_t mac[6])
{
    struct ifreq r;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&r, 0, sizeof(r));
    snprintf(r.ifr_name, sizeof(r.ifr_name), "%s", name);
    *ifindex = (int)if_nametoindex(name);
    int rc = fd < 0 || !*ifindex || ioctl(fd, SIOCGIFHWADDR, &r) ? -1 : 0;
    if (!rc)
        memcpy(mac, r.ifr_hwaddr.sa_data, 6);
    else
        fprintf(stderr, "bench_bp_forward: interface %s: %s\n", name, strerror(errno));
    if (fd >= 0)
        close(fd);
    return rc;
}

static uint32_t csum_add(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    return s;
}

static uint16_t csum_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8), p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)), put16(p + 2, (uint16_t)v); }

/* One pod -> gateway segment of the flow: ACK+PSH with `payload` bytes of
 * an SSE event (repeated text), full checksums. Its length. */
static size_t build_frame(uint8_t *p, size_t payload, const uint8_t dmac[6], const uint8_t smac[6])
{
    static const char ev[] = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" token\"}}]}\n\n";
    size_t len = 14 + 20 + 20 + payload;
    memset(p, 0, len);
    memcpy(p, dmac, 6);
    memcpy(p + 6, smac, 6);
    p[12] = 0x08, p[13] = 0x00;
    uint8_t *ip = p + 14, *tcp = ip + 20;
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(len - 14));
    put16(ip + 4, 1);
    ip[6] = 0x40; /* DF */
    ip[8] = 64, ip[9] = 6;
    put32(ip + 12, POD_IP);
    put32(ip + 16, GW_IP);
    put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    put16(tcp, POD_PORT);
    put16(tcp + 2, GW_PORT);
    put32(tcp + 4, 1000000);
    put32(tcp + 8, 2000000);
    tcp[12] = 5 << 4, tcp[13] = 0x18; /* ACK PSH */
    put16(tcp + 14, 502);
    for (size_t i = 0; i < payload; i++)
        tcp[20 + i] = (uint8_t)ev[i % (sizeof(ev) - 1)];
    uint8_t pseudo[12];
    memcpy(pseudo, ip + 12, 8);
    pseudo[8] = 0, pseudo[9] = 6;
    put16(pseudo + 10, (uint16_t)(20 + payload));
    put16(tcp + 16, csum_fold(csum_add(csum_add(0, pseudo, 12), tcp, 20 + payload)));
    return len;
}

struct prog_stat {
    uint64_t cnt, ns;
};

static struct prog_stat prog_stat(int fd)
{
    struct bpf_prog_info info;
    uint32_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    struct prog_stat s = {0, 0};
    if (!bpf_obj_get_info_by_fd(fd, &info, &len))
        s.cnt = info.run_cnt, s.ns = info.run_time_ns;
    return s;
}

static int ncpus;

static uint64_t bp_stat(int fd, uint32_t reason)
{
    struct kvg_bp_stat v[ncpus];
    uint64_t n = 0;
    if (bpf_map_lookup_elem(fd, &reason, v))
        return 0;
    for (int i = 0; i < ncpus; i++)
        n += v[i].packets;
    return n;
}

static uint64_t sink_count(int fd)
{
    uint64_t v[ncpus], n = 0;
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(fd, &zero, v))
        return 0;
    for (int i = 0; i < ncpus; i++)
        n += v[i];
    return n;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"gen-ns", 1, 0, 'a'}, {"gen-if", 1, 0, 'A'}, {"gw-ns", 1, 0, 'b'}, {"gw-if", 1, 0, 'B'},
        {"count", 1, 0, 'n'}, {"runs", 1, 0, 'r'}, {"payload", 1, 0, 'p'}, {"batch", 1, 0, 'k'},
        {"no-pod-check", 0, 0, 'N'}, {0, 0, 0, 0},
    };
    const char *gen_ns = NULL, *gen_if = NULL, *gw_ns = NULL, *gw_if = NULL;
    long count = 2000000, runs = 3, payload = 200, batch = 64;
    int pod_check = 1;
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'a': gen_ns = optarg; break;
        case 'A': gen_if = optarg; break;
        case 'b': gw_ns = optarg; break;
        case 'B': gw_if = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'r': runs = atol(optarg); break;
        case 'p': payload = atol(optarg); break;
        case 'k': batch = atol(optarg); break;
        case 'N': pod_check = 0; break;
        default: return 2;
        }
    }
    if (!gen_ns || !gen_if || !gw_ns || !gw_if || count < 1 || count > 0xffffffffL || runs < 1 ||
        payload < 0 || payload > 1400 || batch < 1 || batch > 256) {
        fprintf(stderr, "usage: bench_bp_forward --gen-ns NS --gen-if IF --gw-ns NS --gw-if IF "
                        "[--count N] [--runs R] [--payload 0..1400] [--batch 1..256] "
                        "[--no-pod-check]\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "bench_bp_forward: needs root\n");
        return 77;
    }
    ncpus = libbpf_num_possible_cpus();
    int rc = 1, gen_idx, gw_idx, stats_fd = -1;
    uint8_t gen_mac[6], gw_mac[6];
    struct bp_entry_bpf *bp = NULL;
    struct xdp_drop_bpf *sink = NULL;
    struct xdp_tx_bpf *tx = NULL;
    struct bpf_link *bp_link = NULL, *sink_link = NULL;

    /* the gateway's side: bp_entry with the flow */
    if (enter_ns(gw_ns) || if_info(gw_if, &gw_idx, gw_mac))
        return 1;
    if (enter_ns(gen_ns) || if_info(gen_if, &gen_idx, gen_mac))
        return 1;
    bp = bp_entry_bpf__open_and_load();
    sink = xdp_drop_bpf__open_and_load();
    tx = xdp_tx_bpf__open_and_load();
    if (!bp || !sink || !tx) {
        fprintf(stderr, "bench_bp_forward: cannot load the programs: %s\n", strerror(errno));
        goto out;
    }
    struct kvg_bp_key key = {.saddr = htonl(POD_IP), .daddr = htonl(GW_IP),
                             .sport = htons(POD_PORT), .dport = htons(GW_PORT),
                             .family = KVG_AF_INET};
    struct kvg_bp_flow fl;
    memset(&fl, 0, sizeof(fl));
    fl.saddr = htonl(GW_IP);
    fl.daddr = htonl(CLIENT_IP);
    fl.sport = htons(BYPASS_PORT);
    fl.dport = htons(CLIENT_PORT);
    memcpy(fl.smac, gw_mac, 6);
    memcpy(fl.dmac, gen_mac, 6); /* the client stands on the generator's side */
    fl.seq_delta = 0x12345678u;
    fl.ack_delta = 0x9abcdef0u;
    fl.action = KVG_BP_ACT_REWRITE;
    fl.pod_slot = pod_check ? SLOT : KVG_POD_MAX;
    struct kvg_pod pod;
    memset(&pod, 0, sizeof(pod));
    pod.addr[0] = htonl(POD_IP);
    pod.port = htons(POD_PORT);
    pod.family = KVG_AF_INET;
    pod.flags = KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_METRICS_OK |
                KVG_POD_F_METRICS_FRESH;
    uint32_t slot = SLOT;
    int flows_fd = bpf_map__fd(bp->maps.kvg_bp_flows), st_fd = bpf_map__fd(bp->maps.kvg_bp_stats);
    /* Live frames keep what the program wrote into them: a frame's page
     * comes back to the generator as bp_entry left it (the kernel resets
     * the context, not the data). So a second entry takes the rewritten
     * frame back to the first one's key (inverse deltas): every repetition
     * meets an established flow, the two entries in turn, each doing the
     * whole per-packet work of one. */
    struct kvg_bp_key back_key = {.saddr = fl.saddr, .daddr = fl.daddr, .sport = fl.sport,
                                  .dport = fl.dport, .family = KVG_AF_INET};
    struct kvg_bp_flow back = fl;
    back.saddr = key.saddr, back.daddr = key.daddr;
    back.sport = key.sport, back.dport = key.dport;
    memcpy(back.smac, gen_mac, 6);
    memcpy(back.dmac, gw_mac, 6);
    back.seq_delta = 0u - fl.seq_delta;
    back.ack_delta = 0u - fl.ack_delta;
    if (bpf_map_update_elem(flows_fd, &key, &fl, BPF_ANY) ||
        bpf_map_update_elem(flows_fd, &back_key, &back, BPF_ANY) ||
        bpf_map_update_elem(bpf_map__fd(bp->maps.kvg_pods), &slot, &pod, BPF_ANY)) {
        fprintf(stderr, "bench_bp_forward: the flow entry: %s\n", strerror(errno));
        goto out;
    }

    uint8_t frame[1600], out[1600];
    size_t len = build_frame(frame, (size_t)payload, gw_mac, gen_mac);

    /* one frame through bp_entry first: rewritten towards the client */
    struct xdp_md cx = {.data_end = (uint32_t)len, .ingress_ifindex = 1};
    LIBBPF_OPTS(bpf_test_run_opts, one, .data_in = frame, .data_size_in = (uint32_t)len,
                .data_out = out, .data_size_out = sizeof(out), .ctx_in = &cx,
                .ctx_size_in = sizeof(cx));
    if (bpf_prog_test_run_opts(bpf_program__fd(bp->progs.bp_entry), &one)) {
        fprintf(stderr, "bench_bp_forward: test run of bp_entry: %s\n", strerror(errno));
        goto out;
    }
    uint32_t d;
    memcpy(&d, out + 14 + 16, 4);
    if (one.retval != XDP_TX || d != htonl(CLIENT_IP) || memcmp(out, gen_mac, 6)) {
        fprintf(stderr, "bench_bp_forward: bp_entry did not forward the flow's frame "
                        "(verdict %u)\n", one.retval);
        goto out;
    }
    bpf_map_update_elem(flows_fd, &key, &fl, BPF_ANY); /* its counters back to 0 */

    sink_link = bpf_program__attach_xdp(sink->progs.xdp_drop, gen_idx);
    if (!sink_link) {
        fprintf(stderr, "bench_bp_forward: xdp_drop on %s: %s\n", gen_if, strerror(errno));
        goto out;
    }
    if (enter_ns(gw_ns))
        goto out;
    bp_link = bpf_program__attach_xdp(bp->progs.bp_entry, gw_idx);
    if (!bp_link) {
        fprintf(stderr, "bench_bp_forward: bp_entry on %s: %s\n", gw_if, strerror(errno));
        goto out;
    }
    if (enter_ns(gen_ns))
        goto out;
    int bp_fd = bpf_program__fd(bp->progs.bp_entry), sk_fd = bpf_program__fd(sink->progs.xdp_drop);
    int tx_fd = bpf_program__fd(tx->progs.xdp_tx), cnt_fd = bpf_map__fd(sink->maps.xdp_drop_count);
    /* each run twice: the rate with the BPF statistics off (they cost two
     * clock reads per program run), then the same with them on for ns per
     * packet */
    for (long r = 1; r <= runs; r++) {
        double mpps_off = -1, wall_off = -1;
        long long lost_off = -1;
        int stats_were_on = 0;
        for (int pass = 0; pass < 2; pass++) {
            if (pass == 1) {
                stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
                if (stats_fd < 0) {
                    fprintf(stderr, "bench_bp_forward: BPF run-time statistics: %s\n",
                            strerror(errno));
                    rc = 77;
                    goto out;
                }
            }
            struct prog_stat b0 = prog_stat(bp_fd), s0 = prog_stat(sk_fd), g0 = prog_stat(tx_fd);
            uint64_t f0 = bp_stat(st_fd, KVG_BP_FORWARDED), m0 = bp_stat(st_fd, KVG_BP_MISS);
            uint64_t c0 = sink_count(cnt_fd);
            struct kvg_bp_flow e0, e1, r0, r1;
            bpf_map_lookup_elem(flows_fd, &key, &e0);
            bpf_map_lookup_elem(flows_fd, &back_key, &r0);
            struct xdp_md ctx = {.data_end = (uint32_t)len, .ingress_ifindex = (uint32_t)gen_idx};
            LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame, .data_size_in = (uint32_t)len,
                        .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = (uint32_t)count,
                        .batch_size = (uint32_t)batch, .flags = BPF_F_TEST_XDP_LIVE_FRAMES);
            double t0 = now_s();
            int e = bpf_prog_test_run_opts(tx_fd, &o) ? errno : 0;
            double t1 = now_s();
            if (e) {
                fprintf(stderr, "bench_bp_forward: live frames on %s: %s\n", gen_if, strerror(e));
                rc = e == EINVAL || e == EOPNOTSUPP || e == 524 ? 77 : 1;
                goto out;
            }
            usleep(20000); /* anything still in a veth ring (NAPI runs at once, on this core) */
            struct prog_stat b1 = prog_stat(bp_fd), s1 = prog_stat(sk_fd), g1 = prog_stat(tx_fd);
            uint64_t f1 = bp_stat(st_fd, KVG_BP_FORWARDED), m1 = bp_stat(st_fd, KVG_BP_MISS);
            uint64_t got = sink_count(cnt_fd) - c0, bn = b1.cnt - b0.cnt, sn = s1.cnt - s0.cnt;
            bpf_map_lookup_elem(flows_fd, &key, &e1);
            bpf_map_lookup_elem(flows_fd, &back_key, &r1);
            double wall = t1 - t0, mpps = wall > 0 ? (double)got / wall / 1e6 : 0;
            if (pass == 0) {
                mpps_off = mpps, wall_off = wall, lost_off = (long long)count - (long long)got;
                stats_were_on = bn > 0; /* someone else had them on */
                continue;
            }
            close(stats_fd);
            stats_fd = -1;
            printf("{\"run\": %ld, \"sent\": %ld, \"payload\": %ld, \"frame_bytes\": %zu, "
                   "\"pod_check\": %s, \"mpps\": %.4f, \"wall_s\": %.6f, \"lost\": %lld, "
                   "\"stats_on_in_rate_pass\": %s, \"stats_pass\": {\"bp_entry_runs\": %llu, "
                   "\"forwarded\": %llu, \"misses\": %llu, \"entry_packets\": %llu, \"received\": %llu, "
                   "\"lost\": %lld, \"wall_s\": %.6f, \"mpps\": %.4f}, \"bp_entry_ns\": %.1f, "
                   "\"sink_ns\": %.1f, \"generator_ns\": %.1f}\n",
                   r, count, payload, len, pod_check ? "true" : "false", mpps_off, wall_off, lost_off,
                   stats_were_on ? "true" : "false", (unsigned long long)bn,
                   (unsigned long long)(f1 - f0), (unsigned long long)(m1 - m0),
                   (unsigned long long)(e1.packets - e0.packets + r1.packets - r0.packets),
                   (unsigned long long)got, (long long)count - (long long)got, wall, mpps,
                   bn ? (double)(b1.ns - b0.ns) / (double)bn : -1,
                   sn ? (double)(s1.ns - s0.ns) / (double)sn : -1,
                   g1.cnt > g0.cnt ? (double)(g1.ns - g0.ns) / (double)(g1.cnt - g0.cnt) : -1);
            fflush(stdout);
        }
    }
    rc = 0;
out:
    if (stats_fd >= 0)
        close(stats_fd); /* run-time statistics back off (unless someone else holds them) */
    bpf_link__destroy(bp_link);
    bpf_link__destroy(sink_link);
    bp_entry_bpf__destroy(bp);
    xdp_drop_bpf__destroy(sink);
    xdp_tx_bpf__destroy(tx);
    return rc;
}
