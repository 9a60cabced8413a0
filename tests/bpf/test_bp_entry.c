/* test_bp_entry: bp_entry (bpf/bp_entry.bpf.c), the XDP program the af_xdp
 * driver attaches for the bypass worker, through BPF_PROG_TEST_RUN with a
 * real AF_XDP socket in its xsks_map (bound to lo, copy mode, nothing ever
 * received: the redirect's target only has to exist for the verdict to be
 * XDP_REDIRECT rather than the fallback XDP_PASS). Table-driven, each row
 * {what, flow entry, pod table slot, port, expected verdict, reason that
 * counts it, frame rewritten or not}:
 *   - a spliced flow whose pod is fit: rewritten, XDP_TX;
 *   - its pod down, unhealthy, removed (slot zeroed): the frame untouched to
 *     the worker's socket (XDP_REDIRECT), counted pod_down: the worker
 *     resets both sides (dpdk/README.md);
 *   - a flow with no pod to check (slot none): forwarded whatever the table;
 *   - an entry the worker took back (action worker): to the worker, untouched;
 *   - no entry: to the worker for the bypass port, to the kernel otherwise;
 *   - an entry that says pass: to the kernel;
 *   - a request boundary (a framed flow's segment at rq_seq, no body left)
 *     while its pod drains or is saturated: held (KVG_BP_F_HELD), untouched
 *     to the worker, and every later packet of the flow too; mid-body, off
 *     rq_seq, unframed or a fit pod: forwarded; no worker socket: forwarded;
 *   - with a program chained behind the entry (kvg_bpe_next: kvgated's guard
 *     in production, a dropping test program here), everything the entry
 *     leaves to the kernel goes through it, the bypass port too once the
 *     worker's socket is gone; spliced flows and the worker's frames not.
 * Needs root; exits 77 with the reason without BPF, the XDP test-run hook
 * or AF_XDP. Loads without pinning: leaves nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "harness.h"
#include "kvgate.h"
#include "bp_entry.skel.h"
#include "tests/xdp_drop.skel.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

enum { XDP_ABORTED_ = 0, XDP_DROP_, XDP_PASS_, XDP_TX_, XDP_REDIRECT_ };

static struct bp_entry_bpf *skel;
static int prog, flows_fd, stats_fd, pods_fd, ncpus, lo_ifindex;

#define BYPASS_PORT 8000
#define SLOT 9

/* A client's ACK with 100 bytes to the bypass port, checksums left zero
 * (the rewrite is incremental; test_bp_rewrite checks its arithmetic). */
static size_t make_frame(uint8_t *p, uint16_t dport)
{
    size_t len = 14 + 20 + 20 + 100;
    memset(p, 0, len);
    p[12] = 0x08, p[13] = 0x00;
    uint8_t *ip = p + 14;
    ip[0] = 0x45;
    ip[2] = (uint8_t)((len - 14) >> 8), ip[3] = (uint8_t)(len - 14);
    ip[6] = 0x40, ip[8] = 64, ip[9] = 6;
    uint32_t s = htonl(0x0a000001), d = htonl(0x0a000002);
    memcpy(ip + 12, &s, 4);
    memcpy(ip + 16, &d, 4);
    uint8_t *tcp = ip + 20;
    uint16_t sp = htons(40000), dp = htons(dport);
    memcpy(tcp, &sp, 2);
    memcpy(tcp + 2, &dp, 2);
    tcp[12] = 0x50, tcp[13] = 0x10; /* ACK */
    tcp[14] = 0xff, tcp[15] = 0xff;
    return len;
}

static struct kvg_bp_key key_of(uint16_t dport)
{
    struct kvg_bp_key k = {.saddr = htonl(0x0a000001), .daddr = htonl(0x0a000002),
                           .sport = htons(40000), .dport = htons(dport), .family = KVG_AF_INET};
    return k;
}

static struct kvg_bp_flow entry(uint8_t action, uint32_t slot)
{
    struct kvg_bp_flow f;
    memset(&f, 0, sizeof(f));
    f.saddr = htonl(0x0a000003); /* towards the pod */
    f.daddr = htonl(0x0a000004);
    f.sport = htons(61000);
    f.dport = htons(8000);
    memset(f.dmac, 0x44, 6);
    f.seq_delta = 12345;
    f.action = action;
    f.pod_slot = slot;
    return f;
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

/* The frame through bp_entry as if received on lo's queue 0. */
static int run(const uint8_t *in, size_t len, uint8_t *out, uint32_t *outlen, uint32_t *verdict)
{
    uint8_t buf[256];
    memcpy(buf, in, len);
    struct xdp_md ctx = {.data_end = (uint32_t)len, .ingress_ifindex = (uint32_t)lo_ifindex,
                         .rx_queue_index = 0};
    LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = buf, .data_size_in = (uint32_t)len,
                .data_out = out, .data_size_out = 256, .ctx_in = &ctx,
                .ctx_size_in = sizeof(ctx));
    if (bpf_prog_test_run_opts(prog, &o))
        return -errno;
    *verdict = o.retval;
    *outlen = o.data_size_out;
    return 0;
}

/* An AF_XDP socket bound to lo's queue 0 (copy mode), in xsks_map[0]. */
static int xsk_fd = -1;
static void *umem;
#define UMEM_LEN (4096 * 16)
static int make_xsk(char *why, size_t wl)
{
    xsk_fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (xsk_fd < 0) {
        snprintf(why, wl, "no AF_XDP socket: %s", strerror(errno));
        return -1;
    }
    umem = mmap(NULL, UMEM_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct xdp_umem_reg mr = {.addr = (uint64_t)(uintptr_t)umem, .len = UMEM_LEN,
                              .chunk_size = 4096};
    int n = 16;
    struct sockaddr_xdp sa = {.sxdp_family = AF_XDP, .sxdp_ifindex = (uint32_t)lo_ifindex,
                              .sxdp_queue_id = 0, .sxdp_flags = XDP_COPY};
    uint32_t k = 0, v;
    if (umem == MAP_FAILED || setsockopt(xsk_fd, SOL_XDP, XDP_UMEM_REG, &mr, sizeof(mr)) ||
        setsockopt(xsk_fd, SOL_XDP, XDP_UMEM_FILL_RING, &n, sizeof(n)) ||
        setsockopt(xsk_fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &n, sizeof(n)) ||
        setsockopt(xsk_fd, SOL_XDP, XDP_RX_RING, &n, sizeof(n)) ||
        bind(xsk_fd, (struct sockaddr *)&sa, sizeof(sa))) {
        snprintf(why, wl, "AF_XDP socket on lo: %s", strerror(errno));
        return -1;
    }
    v = (uint32_t)xsk_fd;
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.xsks_map), &k, &v, BPF_ANY)) {
        snprintf(why, wl, "xsks_map: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* A row or case ends: counted in the summary as a test of its own. */
static void row_done(const char *what)
{
    if (h_cur_failed)
        h_failed++;
    else
        h_passed++;
    printf("%s %s\n", h_cur_failed ? "FAIL" : "ok  ", what);
}

struct row {
    const char *what;
    int have_entry;
    uint8_t action;
    uint32_t slot;      /* the entry's pod slot */
    uint32_t pod_flags; /* kvg_pods[SLOT] */
    uint16_t dport;
    uint32_t verdict;
    uint32_t reason;    /* the kvg_bp_stats key that counts it */
    int rewritten;
};

#define FIT (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY)
static const struct row ROWS[] = {
    {"pod fit: rewritten, sent back out", 1, KVG_BP_ACT_REWRITE, SLOT, FIT, BYPASS_PORT, XDP_TX_,
     KVG_BP_FORWARDED, 1},
    {"pod fit, draining and saturated: still forwarded (judged per request)", 1,
     KVG_BP_ACT_REWRITE, SLOT, FIT | KVG_POD_F_DRAINING | KVG_POD_F_SATURATED, BYPASS_PORT,
     XDP_TX_, KVG_BP_FORWARDED, 1},
    {"pod down: untouched, to the worker", 1, KVG_BP_ACT_REWRITE, SLOT, FIT | KVG_POD_F_DOWN,
     BYPASS_PORT, XDP_REDIRECT_, KVG_BP_POD_DOWN, 0},
    {"pod unhealthy: untouched, to the worker", 1, KVG_BP_ACT_REWRITE, SLOT,
     KVG_POD_F_PRESENT | KVG_POD_F_METRICS_OK, BYPASS_PORT, XDP_REDIRECT_, KVG_BP_POD_DOWN, 0},
    {"pod removed (slot zeroed): untouched, to the worker", 1, KVG_BP_ACT_REWRITE, SLOT, 0,
     BYPASS_PORT, XDP_REDIRECT_, KVG_BP_POD_DOWN, 0},
    {"pod down, on another port (a pod-side entry): to the worker all the same", 1,
     KVG_BP_ACT_REWRITE, SLOT, FIT | KVG_POD_F_DOWN, 61000, XDP_REDIRECT_, KVG_BP_POD_DOWN, 0},
    {"no pod to check (slot none): forwarded whatever the table says", 1, KVG_BP_ACT_REWRITE,
     KVG_POD_MAX, 0, BYPASS_PORT, XDP_TX_, KVG_BP_FORWARDED, 1},
    {"taken back by the worker: untouched, to the worker", 1, KVG_BP_ACT_WORKER, SLOT, FIT,
     BYPASS_PORT, XDP_REDIRECT_, KVG_BP_TO_WORKER, 0},
    {"entry says pass: to the kernel", 1, KVG_BP_ACT_PASS, SLOT, FIT, BYPASS_PORT, XDP_PASS_,
     KVG_BP_HANDED_UP, 0},
    {"no entry, the bypass port: to the worker", 0, 0, 0, FIT, BYPASS_PORT, XDP_REDIRECT_,
     KVG_BP_MISS, 0},
    {"no entry, another port: to the kernel", 0, 0, 0, FIT, 22, XDP_PASS_, KVG_BP_MISS, 0},
};

/* One row: a test of its own in the summary. */
static void check_row(const struct row *r)
{
    uint8_t in[256], out[256];
    size_t len = make_frame(in, r->dport);
    struct kvg_bp_key k = key_of(r->dport);
    struct kvg_bp_flow f = entry(r->action, r->slot);
    bpf_map_delete_elem(flows_fd, &k);
    if (r->have_entry)
        CHECK_EQ(bpf_map_update_elem(flows_fd, &k, &f, BPF_ANY), 0);
    uint32_t slot = SLOT;
    struct kvg_pod pod;
    memset(&pod, 0, sizeof(pod));
    pod.flags = r->pod_flags;
    if (pod.flags)
        pod.family = KVG_AF_INET;
    CHECK_EQ(bpf_map_update_elem(pods_fd, &slot, &pod, BPF_ANY), 0);
    uint64_t before = stat_packets(r->reason);
    uint32_t olen = 0, v = 0xdead;
    CHECK_EQ(run(in, len, out, &olen, &v), 0);
    CHECK_EQ(v, r->verdict);
    CHECK_EQ(stat_packets(r->reason) - before, 1);
    CHECK_EQ(olen, len);
    int same = olen == len && !memcmp(in, out, len);
    CHECK_EQ(!same, r->rewritten);
    if (r->rewritten) /* where the entry sends it */
        CHECK(!memcmp(out, f.dmac, 6) && !memcmp(out + 14 + 16, &f.daddr, 4));
    if (r->have_entry && r->verdict == XDP_TX_) { /* counted in the entry */
        struct kvg_bp_flow e;
        CHECK_EQ(bpf_map_lookup_elem(flows_fd, &k, &e), 0);
        CHECK_EQ(e.packets, 1);
    }
    bpf_map_delete_elem(flows_fd, &k);
}

/* A request boundary (bp_forward.h, dpdk/boundary.h): the row's frame
 * (seq 0, 100 bytes) on a framed flow's client entry whose next request
 * starts at rq_seq with body_left bytes of the last body still to come,
 * its pod's flags as given. fresh 0: the entry as the row before left it. */
static void bnd(const char *what, int fresh, uint32_t pod_flags, uint8_t rq_state,
                uint32_t rq_seq, uint64_t body_left, uint32_t want, uint32_t reason, int held)
{
    h_cur_name = what;
    h_cur_failed = 0;
    uint8_t in[256], out[256];
    size_t len = make_frame(in, BYPASS_PORT);
    struct kvg_bp_key k = key_of(BYPASS_PORT);
    if (fresh) {
        struct kvg_bp_flow f = entry(KVG_BP_ACT_REWRITE, SLOT);
        f.rq_state = rq_state;
        f.rq_seq = rq_seq;
        f.rq_body_left = body_left;
        CHECK_EQ(bpf_map_update_elem(flows_fd, &k, &f, BPF_ANY), 0);
    }
    uint32_t slot = SLOT;
    struct kvg_pod pod = {.flags = pod_flags, .family = KVG_AF_INET};
    CHECK_EQ(bpf_map_update_elem(pods_fd, &slot, &pod, BPF_ANY), 0);
    uint64_t before = stat_packets(reason);
    uint32_t olen = 0, v = 0xdead;
    CHECK_EQ(run(in, len, out, &olen, &v), 0);
    CHECK_EQ(v, want);
    CHECK_EQ(stat_packets(reason) - before, 1);
    int same = olen == len && !memcmp(in, out, len);
    CHECK_EQ(same, want != XDP_TX_); /* held: untouched for the worker */
    struct kvg_bp_flow e;
    CHECK_EQ(bpf_map_lookup_elem(flows_fd, &k, &e), 0);
    CHECK_EQ(!!(e.flags & KVG_BP_F_HELD), held);
    if (want != XDP_TX_) /* the worker's: not counted as forwarded, nor framed */
        CHECK(e.rq_seq == rq_seq || !fresh);
    row_done(what);
}

static void boundaries(void)
{
    const uint32_t DR = FIT | KVG_POD_F_DRAINING,
                   SAT = FIT | KVG_POD_F_SATURATED | KVG_POD_F_METRICS_FRESH |
                         KVG_POD_F_SATURATED_OWN;
    bnd("boundary: a request's first segment, its pod draining: held, untouched, to the worker",
        1, DR, KVG_BP_RQ_ON, 0, 0, XDP_REDIRECT_, KVG_BP_BOUNDARY, 1);
    bnd("boundary: the held flow's next packet goes to the worker too (pod fit again)", 0, FIT,
        KVG_BP_RQ_ON, 0, 0, XDP_REDIRECT_, KVG_BP_TO_WORKER, 1);
    bnd("boundary: its pod saturated: held the same", 1, SAT, KVG_BP_RQ_ON, 0, 0, XDP_REDIRECT_,
        KVG_BP_BOUNDARY, 1);
    bnd("boundary: saturated only as its metrics are stale: forwarded, not held", 1,
        FIT | KVG_POD_F_SATURATED, KVG_BP_RQ_ON, 0, 0, XDP_TX_, KVG_BP_FORWARDED, 0);
    bnd("boundary: saturated by kvgated's in-flight count, not the pod's own report: forwarded",
        1, FIT | KVG_POD_F_SATURATED | KVG_POD_F_METRICS_FRESH, KVG_BP_RQ_ON, 0, 0, XDP_TX_,
        KVG_BP_FORWARDED, 0);
    bnd("boundary: pod draining, mid-body (body left): forwarded, not held", 1, DR,
        KVG_BP_RQ_ON, 0, 4096, XDP_TX_, KVG_BP_FORWARDED, 0);
    bnd("boundary: pod draining, a segment that does not start at rq_seq: forwarded", 1, DR,
        KVG_BP_RQ_ON, 40, 0, XDP_TX_, KVG_BP_FORWARDED, 0);
    bnd("boundary: pod draining, a flow not framed (h2c): forwarded, not held", 1, DR,
        KVG_BP_RQ_NONE, 0, 0, XDP_TX_, KVG_BP_FORWARDED, 0);
    bnd("boundary: pod fit at a request's first segment: forwarded, not held", 1, FIT,
        KVG_BP_RQ_ON, 0, 0, XDP_TX_, KVG_BP_FORWARDED, 0);
    struct kvg_bp_key k = key_of(BYPASS_PORT);
    bpf_map_delete_elem(flows_fd, &k);
}

/* kvgated's guard chained behind the entry (kvg_bpe_next, dpdk/entry.h):
 * a test program that drops everything stands in for it, so a verdict of
 * XDP_DROP shows the frame went through the chained program. */
static void one(const char *what, int have_entry, uint8_t action, uint16_t dport,
                uint32_t want)
{
    h_cur_name = what;
    h_cur_failed = 0;
    uint8_t in[256], out[256];
    size_t len = make_frame(in, dport);
    struct kvg_bp_key k = key_of(dport);
    struct kvg_bp_flow f = entry(action, KVG_POD_MAX);
    bpf_map_delete_elem(flows_fd, &k);
    if (have_entry)
        CHECK_EQ(bpf_map_update_elem(flows_fd, &k, &f, BPF_ANY), 0);
    uint32_t olen = 0, v = 0xdead;
    CHECK_EQ(run(in, len, out, &olen, &v), 0);
    CHECK_EQ(v, want);
    bpf_map_delete_elem(flows_fd, &k);
    row_done(what);
}

static void chained(void)
{
    struct xdp_drop_bpf *d = xdp_drop_bpf__open_and_load();
    uint32_t k = 0;
    int next = bpf_map__fd(skel->maps.kvg_bpe_next);
    if (!d || bpf_map_update_elem(next, &k, &(int){bpf_program__fd(d->progs.xdp_drop)}, BPF_ANY)) {
        h_cur_name = "chain a program behind the entry";
        h_cur_failed = 0;
        CHECK(0);
        h_failed++;
        printf("FAIL chain a program behind the entry: %s\n", strerror(errno));
        xdp_drop_bpf__destroy(d);
        return;
    }
    one("chained: another port goes through the chained program", 0, 0, 22, XDP_DROP_);
    one("chained: an entry that says pass goes through it", 1, KVG_BP_ACT_PASS, BYPASS_PORT,
        XDP_DROP_);
    one("chained: a spliced flow is still forwarded by the entry alone", 1, KVG_BP_ACT_REWRITE,
        BYPASS_PORT, XDP_TX_);
    one("chained: the bypass port still goes to the worker's socket", 0, 0, BYPASS_PORT,
        XDP_REDIRECT_);
    /* the worker gone (its socket out of xsks_map, as closing it does):
     * what it would have had is the kernel's, through the chained program */
    CHECK_EQ(bpf_map_delete_elem(bpf_map__fd(skel->maps.xsks_map), &k), 0);
    one("chained, no worker socket: the bypass port goes to the kernel through it", 0, 0,
        BYPASS_PORT, XDP_DROP_);
    /* with nobody to take a held segment, a boundary is not held */
    bnd("no worker socket: a request's first segment, its pod draining, is forwarded, not held",
        1, FIT | KVG_POD_F_DRAINING, KVG_BP_RQ_ON, 0, 0, XDP_TX_, KVG_BP_FORWARDED, 0);
    struct kvg_bp_key bk = key_of(BYPASS_PORT);
    bpf_map_delete_elem(flows_fd, &bk);
    CHECK_EQ(bpf_map_delete_elem(next, &k), 0);
    one("the chain emptied, no worker socket: the bypass port passes to the kernel", 0, 0,
        BYPASS_PORT, XDP_PASS_);
    xdp_drop_bpf__destroy(d);
}

int main(void)
{
    if (geteuid() != 0) {
        printf("skipped: needs root to load BPF programs\n");
        return 77;
    }
    libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
    skel = bp_entry_bpf__open_and_load();
    if (!skel) {
        printf("skipped: cannot load bp_entry: %s\n", strerror(errno));
        return 77;
    }
    prog = bpf_program__fd(skel->progs.bp_entry);
    flows_fd = bpf_map__fd(skel->maps.kvg_bp_flows);
    stats_fd = bpf_map__fd(skel->maps.kvg_bp_stats);
    pods_fd = bpf_map__fd(skel->maps.kvg_pods);
    ncpus = libbpf_num_possible_cpus();
    lo_ifindex = (int)if_nametoindex("lo");
    char why[256];
    int rc = 77;
    if (make_xsk(why, sizeof(why))) {
        printf("skipped: %s\n", why);
        goto out;
    }
    uint32_t k = 0;
    struct kvg_bpe_cfg cfg = {.port = htons(BYPASS_PORT)};
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.kvg_bpe_cfg), &k, &cfg, BPF_ANY)) {
        printf("skipped: kvg_bpe_cfg: %s\n", strerror(errno));
        goto out;
    }
    uint8_t probe[64] = {0}, out[256];
    uint32_t olen, v;
    rc = run(probe, sizeof(probe), out, &olen, &v);
    if (rc == -ENOTSUP || rc == -EOPNOTSUPP || rc == -524 || rc == -EINVAL) {
        printf("skipped: BPF_PROG_TEST_RUN for XDP not available: %s\n", strerror(-rc));
        rc = 77;
        goto out;
    }
    for (size_t i = 0; i < sizeof(ROWS) / sizeof(ROWS[0]); i++) {
        h_cur_name = ROWS[i].what;
        h_cur_failed = 0;
        check_row(&ROWS[i]);
        row_done(ROWS[i].what);
    }
    boundaries();
    chained();
    rc = harness_done();
out:
    if (xsk_fd >= 0)
        close(xsk_fd);
    bp_entry_bpf__destroy(skel);
    return rc;
}
