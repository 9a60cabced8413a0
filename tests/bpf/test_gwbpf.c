/* test_gwbpf: user/gateway/bpf.c, kvgated's BPF loader.
 *
 * Pod table writes from synthetic snapshots (flags, addresses, rounding,
 * removed slots cleared, unchanged slots left alone), the per-reason
 * counters summed over CPUs, pinning under a private directory (pins made,
 * a second opener refused, maps reused with what they hold, an operator's
 * pins opened, an incompatible pin named), the sentences for "not root"
 * and "no bpffs", the /metrics render, the pod fitness the kernel and the
 * policy share (core/policy.c pod_fitness), XDP attach / detach on a veth
 * pair in a network namespace of its own, and the splice verdict loaded
 * alongside, sharing the maps (or left out with --no-splice).
 *
 * Needs root; exits 77 without BPF. Removes its pin directory
 * (/sys/fs/bpf/kvg-test-<pid>) and its namespace goes with the process. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../user/gateway/bpf.c"
#include "../../user/gateway/bpf_pods.c"
#include "../../user/gateway/bpf_guard.c"

#include "harness.h"
#include "fixtures.h"
#include "tests/xdp_tx.skel.h"

static char why[512];
static char pindir[128];

static void rm_pins(void)
{
    char cmd[256];
    if (pindir[0]) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", pindir);
        if (system(cmd)) {
        }
    }
}

static struct pod_snapshot *snap(uint32_t n, uint64_t gen)
{
    struct pod_snapshot *s = snapshot_new(n);
    s->generation = gen;
    return s;
}

static void pod4(struct pod_info *p, uint32_t slot, const char *ip, uint16_t port)
{
    struct sockaddr_in *a = (struct sockaddr_in *)&p->addr;
    memset(p, 0, sizeof(*p));
    p->slot = slot;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    inet_pton(AF_INET, ip, &a->sin_addr);
    p->port = port;
}

static int get_pod(struct gwbpf *b, uint32_t slot, struct kvg_pod *out)
{
    return bpf_map_lookup_elem(gwbpf_map_fd(b, KVG_MAP_PODS), &slot, out);
}

static struct policy_cfg POL;
static struct pod_counters CNT;
#define MS 1000000ull

TEST(pod_table_written_from_snapshots)
{
    struct gwbpf *b = NULL;
    struct gwbpf_opts o = {0};
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (!b)
        return;
    uint64_t now = 10000 * MS;
    struct pod_snapshot *s = snap(3, 7);
    pod4(&s->pods[0], 0, "10.0.0.5", 8000);
    s->pods[0].healthy = 1, s->pods[0].metrics_ok = 1, s->pods[0].scraped_ns = now - 10 * MS;
    s->pods[0].waiting = 2.4, s->pods[0].running = 7.6, s->pods[0].kv_usage = 0.4567;
    atomic_store(&CNT.inflight[0], 3);
    /* IPv6, draining, saturated by KV */
    struct pod_info *p = &s->pods[1];
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&p->addr;
    memset(p, 0, sizeof(*p));
    p->slot = 9, p->engine = POD_ENGINE_SGLANG;
    a6->sin6_family = AF_INET6, a6->sin6_port = htons(9000);
    inet_pton(AF_INET6, "2001:db8::7", &a6->sin6_addr);
    p->healthy = 1, p->draining = 1, p->metrics_ok = 1, p->scraped_ns = now, p->kv_usage = 0.95;
    /* never scraped, unhealthy, seen failing by the data path */
    pod4(&s->pods[2], 511, "10.0.0.6", 8001);
    atomic_store(&CNT.down_until_ns[511], now + 1000 * MS);
    CHECK_EQ(gwbpf_update_pods(b, s, &CNT, now, &POL), 0);

    struct kvg_pod k;
    CHECK_EQ(get_pod(b, 0, &k), 0);
    CHECK_EQ(k.family, KVG_AF_INET);
    CHECK_EQ(k.addr[0], htonl(0x0a000005));
    CHECK_EQ(k.port, htons(8000));
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_METRICS_OK |
                          KVG_POD_F_METRICS_FRESH);
    CHECK_EQ(k.waiting, 2);
    CHECK_EQ(k.running, 8);
    CHECK_EQ(k.kv_permille, 457);
    CHECK_EQ(k.inflight, 3);
    CHECK_EQ(k.metrics_ns, now - 10 * MS);
    CHECK_EQ(k.generation, 7);
    CHECK_EQ(get_pod(b, 9, &k), 0);
    CHECK_EQ(k.family, KVG_AF_INET6);
    CHECK_EQ(k.addr[0], htonl(0x20010db8));
    CHECK_EQ(k.addr[3], htonl(7));
    CHECK_EQ(k.port, htons(9000));
    CHECK_EQ(k.engine, POD_ENGINE_SGLANG);
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_DRAINING |
                          KVG_POD_F_METRICS_OK | KVG_POD_F_METRICS_FRESH | KVG_POD_F_SATURATED |
                          KVG_POD_F_SATURATED_OWN); /* its own KV report: 0.95 */
    CHECK_EQ(k.kv_permille, 950);
    CHECK_EQ(get_pod(b, 511, &k), 0);
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_SATURATED | KVG_POD_F_DOWN);
    CHECK_EQ(k.metrics_ns, 0);
    CHECK_EQ(get_pod(b, 1, &k), 0);
    CHECK_EQ(k.flags, 0);

    /* next publish: pod 0 ages past stale_ms, pod 9 removed, 511 unchanged */
    struct pod_snapshot *s2 = snap(2, 8);
    s2->pods[0] = s->pods[0];
    s2->pods[1] = s->pods[2];
    CHECK_EQ(gwbpf_update_pods(b, s2, &CNT, now + POL.stale_ms * MS, &POL), 0);
    CHECK_EQ(get_pod(b, 0, &k), 0);
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_METRICS_OK |
                          KVG_POD_F_SATURATED);
    CHECK_EQ(k.generation, 8);
    CHECK_EQ(get_pod(b, 9, &k), 0);
    CHECK_EQ(k.flags, 0);
    CHECK_EQ(k.family, 0);
    CHECK_EQ(get_pod(b, 511, &k), 0);
    CHECK_EQ(k.generation, 7); /* not rewritten */
    snapshot_put(s);
    snapshot_put(s2);
    atomic_store(&CNT.down_until_ns[511], 0);
    atomic_store(&CNT.inflight[0], 0);

    /* close zeroes the table: check through a second fd that outlives it */
    int fd = dup(gwbpf_map_fd(b, KVG_MAP_PODS));
    gwbpf_close(b);
    uint32_t slot = 0;
    CHECK_EQ(bpf_map_lookup_elem(fd, &slot, &k), 0);
    CHECK_EQ(k.flags, 0);
    close(fd);
}

/* The kernel judges a pod as the policy does: for each pod state (queue,
 * running, the gateway's in-flight count, KV usage, metrics age) the map's
 * saturated flag is set exactly when policy_pick leaves the pod out as
 * saturated for a request of a session pinned to it (the only requests
 * the splice carries). Pod A (slot 0) holds the request's whole prefix;
 * pod B (slot 1) is fresh, idle and never saturated, so the policy picks
 * A unless it judges A saturated. */
TEST(pod_fitness_as_the_policy_judges)
{
    struct gwbpf *b = NULL;
    struct gwbpf_opts o = {0};
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (!b)
        return;
    static const double waiting[] = {0, 4, 5, 7, 9, 11}, running[] = {0, 3}, kv[] = {0.1, 0.85};
    static const uint32_t inflight[] = {0, 6, 12};
    static const uint64_t age_ms[] = {10, 300};
    uint64_t now = 100000 * MS;
    uint16_t match[POD_MAX] = {0};
    match[0] = 4;
    struct policy_state st = {0};
    int cases = 0, disagree = 0;
    for (size_t w = 0; w < 6; w++)
        for (size_t r = 0; r < 2; r++)
            for (size_t f = 0; f < 3; f++)
                for (size_t k = 0; k < 2; k++)
                    for (size_t a = 0; a < 4; a++) {
                        struct pod_snapshot *s = snap(2, 1);
                        pod4(&s->pods[0], 0, "10.0.0.1", 8000);
                        pod4(&s->pods[1], 1, "10.0.0.2", 8000);
                        for (int i = 0; i < 2; i++) {
                            struct pod_info *p = &s->pods[i];
                            p->healthy = p->metrics_ok = 1;
                            p->nmodels = 1;
                            strcpy(p->models[0], "m");
                            atomic_store(&CNT.inflight[i], inflight[f]);
                            /* as just after a scrape: ours then = ours now, the
                             * rest of running + waiting another sender's */
                            p->own_at_scrape = inflight[f];
                        }
                        s->pods[0].waiting = waiting[w];
                        s->pods[0].running = running[r];
                        s->pods[0].kv_usage = kv[k];
                        s->pods[0].scraped_ns = now - age_ms[a & 1] * MS;
                        if (a & 2) /* running + waiting all another gateway's */
                            s->pods[0].own_at_scrape = 0;
                        s->pods[1].running = 1000;
                        s->pods[1].kv_usage = 0.5;
                        s->pods[1].scraped_ns = now;
                        struct route_input in = {.model = "m", .nkeys = 4, .match = match,
                                                 .session_slot = 0, .rand = 1, .now_ns = now,
                                                 .exclude_slot = UINT32_MAX};
                        struct route_decision d;
                        policy_pick(&POL, s, &CNT, &st, &in, &d);
                        int user_sat = d.status != ROUTE_OK || d.idx != 0;
                        CHECK_EQ(gwbpf_update_pods(b, s, &CNT, now, &POL), 0);
                        struct kvg_pod kp;
                        CHECK_EQ(get_pod(b, 0, &kp), 0);
                        int kern_sat = !!(kp.flags & KVG_POD_F_SATURATED);
                        cases++;
                        if (user_sat != kern_sat) {
                            disagree++;
                            fprintf(stderr, "  waiting %g running %g inflight %u kv %g age %llu ms:"
                                    " policy %s, kernel %s\n", waiting[w], running[r], inflight[f],
                                    kv[k], (unsigned long long)age_ms[a & 1],
                                    user_sat ? "saturated" : "fit", kern_sat ? "saturated" : "fit");
                        }
                        snapshot_put(s);
                    }
    printf("  %d pod states, %d judged differently\n", cases, disagree);
    CHECK_EQ(disagree, 0);
    atomic_store(&CNT.inflight[0], 0);
    atomic_store(&CNT.inflight[1], 0);
    gwbpf_close(b);
}

TEST(xdp_stats_summed)
{
    struct gwbpf *b = NULL;
    struct gwbpf_opts o = {0};
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (!b)
        return;
    struct kvg_xdp_stat st[KVG_XDP_REASON_MAX];
    CHECK_EQ(gwbpf_xdp_stats(b, st, KVG_XDP_REASON_MAX), 0);
    CHECK_EQ(st[KVG_XDP_PASS_TCP].packets, 0);
    struct fx f = {.shape = FX_TCP4, .flags = TCP_F_ACK};
    struct fx bad = {.shape = FX_TCP4, .flags = TCP_F_ACK, .mut = MUT_IHL, .val = 3};
    struct pkt pk, pb;
    fx_build(&f, FX_SRC_DEFAULT, &pk);
    fx_build(&bad, FX_SRC_DEFAULT, &pb);
    fx_mutate(&bad, &pb);
    CHECK_EQ(fx_run(gwbpf_prog_fd(b), pk.b, pk.len, 25, NULL, NULL), 0);
    CHECK_EQ(fx_run(gwbpf_prog_fd(b), pb.b, pb.len, 4, NULL, NULL), 0);
    CHECK_EQ(gwbpf_xdp_stats(b, st, KVG_XDP_REASON_MAX), 0);
    CHECK_EQ(st[KVG_XDP_PASS_TCP].packets, 25);
    CHECK_EQ(st[KVG_XDP_PASS_TCP].bytes, 25 * pk.len);
    CHECK_EQ(st[KVG_XDP_DROP_MALFORMED_IP].packets, 4);
    CHECK_STR(gwbpf_xdp_reason_name(KVG_XDP_DROP_SYN_RATELIMIT), "drop_syn_ratelimit");
    CHECK(gwbpf_xdp_reason_name(KVG_XDP_REASON_MAX) == NULL);
    /* the /metrics render: on, with the guard's counters; off without a handle */
    struct sbuf m;
    sbuf_init(&m);
    gwbpf_metrics_render(b, &m);
    CHECK(m.data && strstr(m.data, "\nkvgate_bpf_enabled 1.0\n"));
    CHECK(m.data && strstr(m.data, "\nkvgate_xdp_packets_total{reason=\"pass_tcp\"} 25.0\n"));
    CHECK(m.data && strstr(m.data, "\nkvgate_xdp_packets_total{reason=\"drop_malformed_ip\"} 4.0\n"));
    sbuf_reset(&m);
    gwbpf_metrics_render(NULL, &m);
    CHECK(m.data && strstr(m.data, "\nkvgate_bpf_enabled 0.0\n"));
    CHECK(m.data && !strstr(m.data, "kvgate_xdp_packets_total"));
    sbuf_free(&m);
    /* the gateway's in-flight count goes into the table */
    struct pod_snapshot *s = snap(1, 3);
    pod4(&s->pods[0], 4, "127.0.0.1", 8000);
    s->pods[0].healthy = 1;
    atomic_store(&CNT.inflight[4], 11);
    CHECK_EQ(gwbpf_update_pods(b, s, &CNT, 1, &POL), 0);
    struct kvg_pod k;
    CHECK_EQ(get_pod(b, 4, &k), 0);
    CHECK_EQ(k.inflight, 11);
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_SATURATED);
    /* scraped fresh, a short queue of its own, but 40 in flight at the
     * gateway (idle bypass keep-alive connections count): saturated by
     * kvgated's estimate, not by the pod's own report */
    s->pods[0].metrics_ok = 1, s->pods[0].scraped_ns = 1000 * MS, s->pods[0].running = 2;
    atomic_store(&CNT.inflight[4], 40);
    CHECK_EQ(gwbpf_update_pods(b, s, &CNT, 1000 * MS, &POL), 0);
    CHECK_EQ(get_pod(b, 4, &k), 0);
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_METRICS_OK |
                          KVG_POD_F_METRICS_FRESH | KVG_POD_F_SATURATED);
    /* its own queue past queue_saturation: both */
    s->pods[0].waiting = POL.queue_sat * 4;
    CHECK_EQ(gwbpf_update_pods(b, s, &CNT, 1000 * MS, &POL), 0);
    CHECK_EQ(get_pod(b, 4, &k), 0);
    CHECK_EQ(k.flags, KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_METRICS_OK |
                          KVG_POD_F_METRICS_FRESH | KVG_POD_F_SATURATED | KVG_POD_F_SATURATED_OWN);
    atomic_store(&CNT.inflight[4], 0);
    snapshot_put(s);
    gwbpf_close(b);
}

TEST(pins_reuse_and_lock)
{
    struct gwbpf *a = NULL, *b = NULL;
    struct gwbpf_opts o = {.pin_dir = pindir, .gw_port = 8080};
    char path[256];
    CHECK_EQ(gwbpf_open(&o, &a, why, sizeof(why)), 0);
    if (!a) {
        fprintf(stderr, "  open: %s\n", why);
        return;
    }
    snprintf(path, sizeof(path), "%s/xdp_guard", pindir);
    CHECK_EQ(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/maps/kvg_pods", pindir);
    CHECK_EQ(access(path, F_OK), 0);
    /* a second kvgated on the same directory */
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), -EBUSY);
    CHECK(strstr(why, "another kvgated is using") != NULL);
    /* what an operator wrote survives a restart */
    uint32_t k0 = 0;
    struct kvg_xdp_cfg c = {.version = KVG_XDP_CFG_VERSION, .syn_rate = 7, .syn_burst = 9};
    CHECK_EQ(bpf_map_update_elem(gwbpf_map_fd(a, KVG_MAP_XDP_CFG), &k0, &c, BPF_ANY), 0);
    struct bpf_map_info i1 = {0}, i2 = {0};
    uint32_t l = sizeof(i1);
    bpf_obj_get_info_by_fd(gwbpf_map_fd(a, KVG_MAP_XDP_CFG), &i1, &l);
    /* the compiled default port went into the guard's rodata */
    CHECK_EQ(a->skel->rodata->kvg_xdp_defaults.gw_port, htons(8080));
    gwbpf_close(a);
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (b) {
        struct kvg_xdp_cfg r = {0};
        CHECK_EQ(bpf_map_lookup_elem(gwbpf_map_fd(b, KVG_MAP_XDP_CFG), &k0, &r), 0);
        CHECK_EQ(r.syn_rate, 7);
        l = sizeof(i2);
        bpf_obj_get_info_by_fd(gwbpf_map_fd(b, KVG_MAP_XDP_CFG), &i2, &l);
        CHECK_EQ(i1.id, i2.id);
        gwbpf_close(b);
        b = NULL;
    }
    /* opened as an operator's pins: same maps, nothing loaded */
    struct gwbpf_opts po = {.pinned_dir = pindir};
    CHECK_EQ(gwbpf_open(&po, &b, why, sizeof(why)), 0);
    if (b) {
        CHECK(b->skel == NULL);
        CHECK(gwbpf_prog_fd(b) >= 0);
        l = sizeof(i2);
        bpf_obj_get_info_by_fd(gwbpf_map_fd(b, KVG_MAP_XDP_CFG), &i2, &l);
        CHECK_EQ(i1.id, i2.id);
        gwbpf_close(b);
        b = NULL;
    }
    /* an incompatible pin (as after a kvgate.h change) is named */
    snprintf(path, sizeof(path), "%s/maps/kvg_pods", pindir);
    unlink(path);
    int bad = bpf_map_create(BPF_MAP_TYPE_ARRAY, "kvg_pods", 4, 32, KVG_POD_MAX, NULL);
    CHECK(bad >= 0);
    CHECK_EQ(bpf_obj_pin(bad, path), 0);
    close(bad);
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "does not match this build") != NULL);
    CHECK(strstr(why, path) != NULL);
    CHECK_EQ(gwbpf_open(&po, &b, why, sizeof(why)), -EINVAL);
    CHECK(strstr(why, "does not match this build") != NULL);
    /* a directory without pins */
    snprintf(path, sizeof(path), "%s/empty", pindir);
    mkdir(path, 0700);
    struct gwbpf_opts eo = {.pinned_dir = path};
    CHECK(gwbpf_open(&eo, &b, why, sizeof(why)) < 0);
    CHECK(strstr(why, "cannot open pinned map") != NULL);
    CHECK(b == NULL);
}

TEST(sentences_for_no_bpffs_and_not_root)
{
    struct gwbpf *b = NULL;
    struct gwbpf_opts o = {.pin_dir = "/tmp/kvg-no-bpffs-here/kvgate"};
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), -ENOENT);
    CHECK(strstr(why, "no bpffs at /tmp/kvg-no-bpffs-here") != NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (setresuid(65534, 65534, 65534))
            _exit(2);
        struct gwbpf_opts o2 = {0};
        int rc = gwbpf_open(&o2, &b, why, sizeof(why));
        _exit(rc == -EPERM && strstr(why, "not running as root") ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

TEST(xdp_attach_detach)
{
    /* a network namespace of our own: the veth pair dies with us */
    if (unshare(CLONE_NEWNET)) {
        printf("  (no network namespace: %s; attach not tested)\n", strerror(errno));
        return;
    }
    CHECK_EQ(system("ip link add kvgt0 type veth peer name kvgt1 && ip link set kvgt0 up && "
                    "ip link set kvgt1 up"), 0);
    struct gwbpf *b = NULL;
    struct gwbpf_opts o = {0};
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (!b)
        return;
    CHECK(gwbpf_xdp_attach(b, "nope0", GWBPF_XDP_AUTO, why, sizeof(why)) < 0);
    CHECK(strstr(why, "no interface nope0") != NULL);
    /* veth has native XDP: auto takes it */
    CHECK_EQ(gwbpf_xdp_attach(b, "kvgt0", GWBPF_XDP_AUTO, why, sizeof(why)), 0);
    CHECK_STR(gwbpf_xdp_mode_name(b), "native");
    int ifindex = (int)if_nametoindex("kvgt0");
    uint32_t id = 0;
    CHECK_EQ(bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &id), 0);
    CHECK(id != 0);
    CHECK(gwbpf_xdp_attach(b, "kvgt0", GWBPF_XDP_AUTO, why, sizeof(why)) < 0);
    CHECK_EQ(gwbpf_xdp_detach(b), 0);
    CHECK_EQ(bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &id), 0);
    CHECK_EQ(id, 0);
    CHECK_EQ(gwbpf_xdp_attach(b, "kvgt0", GWBPF_XDP_GENERIC, why, sizeof(why)), 0);
    CHECK_STR(gwbpf_xdp_mode_name(b), "generic");
    CHECK_EQ(bpf_xdp_query_id(ifindex, XDP_FLAGS_SKB_MODE, &id), 0);
    CHECK(id != 0);
    CHECK_EQ(gwbpf_xdp_detach(b), 0);
    /* a guard left attached (an earlier run, an operator) is replaced */
    struct gwbpf *b2 = NULL;
    CHECK_EQ(gwbpf_open(&o, &b2, why, sizeof(why)), 0);
    if (b2) {
        CHECK_EQ(gwbpf_xdp_attach(b2, "kvgt0", GWBPF_XDP_NATIVE, why, sizeof(why)), 0);
        b2->xdp_ifindex = 0; /* as if b2's process had died */
        gwbpf_close(b2);
        CHECK_EQ(gwbpf_xdp_attach(b, "kvgt0", GWBPF_XDP_GENERIC, why, sizeof(why)), 0);
        CHECK_EQ(bpf_xdp_query_id(ifindex, XDP_FLAGS_DRV_MODE, &id), 0);
        CHECK_EQ(id, 0);
        CHECK_EQ(gwbpf_xdp_detach(b), 0);
    }
    /* another program there: left alone */
    struct xdp_tx_bpf *tx = xdp_tx_bpf__open_and_load();
    CHECK(tx != NULL);
    if (tx) {
        CHECK_EQ(bpf_xdp_attach(ifindex, bpf_program__fd(tx->progs.xdp_tx), XDP_FLAGS_SKB_MODE,
                                NULL), 0);
        CHECK_EQ(gwbpf_xdp_attach(b, "kvgt0", GWBPF_XDP_GENERIC, why, sizeof(why)), -EBUSY);
        CHECK(strstr(why, "xdp_tx") != NULL);
        bpf_xdp_detach(ifindex, XDP_FLAGS_SKB_MODE, NULL);
        xdp_tx_bpf__destroy(tx);
    }
    /* close detaches what it attached */
    CHECK_EQ(gwbpf_xdp_attach(b, "kvgt0", GWBPF_XDP_GENERIC, why, sizeof(why)), 0);
    gwbpf_close(b);
    CHECK_EQ(bpf_xdp_query_id(ifindex, XDP_FLAGS_SKB_MODE, &id), 0);
    CHECK_EQ(id, 0);
    if (system("ip link del kvgt0")) {
    }
}

/* The splice verdict loads with the XDP guard (optional, but this kernel
 * has what it needs), shares its maps (the pod table it checks is the one
 * gwbpf_update_pods writes), and --no-splice leaves it out with a reason. */
TEST(splice_loaded_sharing_maps)
{
    struct gwbpf *b = NULL;
    struct gwbpf_opts o = {0};
    const char *w = NULL;
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (!b)
        return;
    CHECK_EQ(gwbpf_splice_ok(b, &w), 1);
    const char *names[] = {KVG_MAP_SOCK, KVG_MAP_FLOW_CFG, KVG_MAP_FLOW_ST,
                           KVG_MAP_SPLICE_STATS};
    for (int i = 0; i < 4; i++)
        CHECK(gwbpf_map_fd(b, names[i]) >= 0);
    /* the verdict's maps include the guard's kvg_pods and kvg_sock */
    struct bpf_prog_info pi;
    uint32_t ids[16], len = sizeof(pi);
    memset(ids, 0, sizeof(ids)); /* the kernel fills it (valgrind cannot see that) */
    memset(&pi, 0, sizeof(pi));
    pi.nr_map_ids = 16;
    pi.map_ids = (uint64_t)(uintptr_t)ids;
    CHECK_EQ(bpf_obj_get_info_by_fd(bpf_program__fd(b->sskel->progs.splice_verdict), &pi, &len), 0);
    int found = 0;
    const char *shared[] = {KVG_MAP_PODS, KVG_MAP_SOCK};
    for (int k = 0; k < 2; k++) {
        struct bpf_map_info mi;
        uint32_t ml = sizeof(mi);
        memset(&mi, 0, sizeof(mi));
        if (bpf_obj_get_info_by_fd(gwbpf_map_fd(b, shared[k]), &mi, &ml))
            continue;
        for (uint32_t i = 0; i < pi.nr_map_ids && i < 16; i++)
            found += ids[i] == mi.id;
    }
    CHECK_EQ(found, 2);
    struct kvg_spl_stat st[KVG_SPL_REASON_MAX];
    CHECK_EQ(gwbpf_splice_stats(b, st, KVG_SPL_REASON_MAX), 0);
    CHECK_EQ(st[KVG_SPL_C2P].bytes, 0);
    CHECK(!strcmp(gwbpf_splice_reason_name(KVG_SPL_UP_BUDGET), "budget"));
    CHECK(gwbpf_splice_reason_name(KVG_SPL_REASON_MAX) == NULL);
    gwbpf_close(b);

    o.no_splice = 1;
    CHECK_EQ(gwbpf_open(&o, &b, why, sizeof(why)), 0);
    if (!b)
        return;
    CHECK_EQ(gwbpf_splice_ok(b, &w), 0);
    CHECK(strstr(w, "--no-splice") != NULL);
    gwbpf_close(b);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root to load BPF programs\n");
        return 77;
    }
    policy_defaults(&POL);
    struct gwbpf *probe = NULL;
    struct gwbpf_opts o = {0};
    if (gwbpf_open(&o, &probe, why, sizeof(why)) < 0) {
        printf("skipped: cannot load the fast path: %s\n", why);
        return 77;
    }
    gwbpf_close(probe);
    RUN(pod_table_written_from_snapshots);
    RUN(pod_fitness_as_the_policy_judges);
    RUN(xdp_stats_summed);
    RUN(splice_loaded_sharing_maps);
    if (on_bpffs("/sys/fs/bpf")) {
        snprintf(pindir, sizeof(pindir), "/sys/fs/bpf/kvg-test-%d", (int)getpid());
        atexit(rm_pins);
        RUN(pins_reuse_and_lock);
    } else {
        printf("skip pins_reuse_and_lock: bpffs not mounted at /sys/fs/bpf\n");
    }
    RUN(sentences_for_no_bpffs_and_not_root);
    RUN(xdp_attach_detach);
    return harness_done();
}
