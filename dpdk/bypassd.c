/* kvg-bypassd: the bypass worker's first running form (issue 12): DPDK's
 * EAL and its af_xdp driver on the gateway's interface, the loop, and the
 * client side of a connection: handshake, first flight, first request
 * parsed. What it does not do yet: pick a pod, replay, hand off to XDP, hand
 * up to kvgated. A connection whose first request is whole is counted and
 * then reset, so a client is never left waiting. It is a bring-up tool for
 * the pieces in user/bypass on a real AF_XDP path, and the skeleton the
 * workers inside kvgated grow from (../shared/BYPASS.md: lcores inside
 * kvgated, sharing its tables).
 *
 *   kvg-bypassd --iface IF --port N --xdp-obj build/bpf/bp_entry.bpf.o
 *               [--stats FILE] [--max-body BYTES]
 *
 * EAL: --no-huge -m 256 --no-pci, one lcore, the af_xdp vdev on IF with
 * the entry program (bpf/bp_entry.bpf.c) that sends TCP to port N to the
 * worker and everything else to the kernel. The worker sleeps after
 * empty polls, so it never spins a core the machine needs. SIGINT /
 * SIGTERM stop it; the driver detaches its program on the way out.
 * Counters go to FILE (JSON, rewritten every 100 ms) and to stdout at the
 * end. */
#include <errno.h>
#include <getopt.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "bypass/firstflight.h"
#include "bypass/pkt.h"
#include "bypass/tcpep.h"

#define BURST 32
#define NFLOWS 4096 /* a power of two */
#define IDLE_POLLS 64

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s, stop = 1; }

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct {
    uint64_t rx, tx, tx_dropped, not_ours, bad_frames, no_flow, syn, synack, established;
    uint64_t cookies, table_full, bytes_in, first_requests, hand_ups, resets, timeouts;
    uint64_t flows_now;
    char last[512];
} S;

struct slot {
    int used;
    struct tcpseq_tuple t;
    struct tcpep_flow f;
    struct ff *ff;
    uint8_t smac[6], dmac[6];
};
static struct slot flows[NFLOWS];
static struct tcpep_cfg C;
static struct ff_cfg FC;

static uint32_t thash(const struct tcpseq_tuple *t)
{
    uint64_t h = tcpseq_siphash(&C.key, t, sizeof(*t));
    return (uint32_t)h & (NFLOWS - 1);
}

static int same(const struct tcpseq_tuple *a, const struct tcpseq_tuple *b)
{
    return a->saddr == b->saddr && a->daddr == b->daddr && a->sport == b->sport &&
           a->dport == b->dport;
}

/* The flow's slot, or a free one for it (create), or NULL. */
static struct slot *lookup(const struct tcpseq_tuple *t, int create)
{
    uint32_t h = thash(t);
    for (uint32_t i = 0; i < 64; i++) {
        struct slot *s = &flows[(h + i) & (NFLOWS - 1)];
        if (s->used && same(&s->t, t))
            return s;
        if (!s->used && create) {
            memset(s, 0, sizeof(*s));
            s->used = 1;
            s->t = *t;
            S.flows_now++;
            return s;
        }
    }
    return NULL;
}

static void drop_flow(struct slot *s)
{
    tcpep_free(&C, &s->f);
    ff_free(s->ff);
    s->ff = NULL;
    s->used = 0;
    S.flows_now--;
}

static struct rte_mempool *MP;
static uint16_t PORT;
static struct rte_mbuf *txq[BURST * 4];
static unsigned ntx;

static void tx_flush(void)
{
    if (!ntx)
        return;
    uint16_t n = rte_eth_tx_burst(PORT, 0, txq, (uint16_t)ntx);
    S.tx += n;
    for (unsigned i = n; i < ntx; i++) {
        rte_pktmbuf_free(txq[i]);
        S.tx_dropped++;
    }
    ntx = 0;
}

static void send_reply(const struct pkt_tcp *in, const struct tcpep_reply *r)
{
    if (!r->send)
        return;
    if (r->flags == (TCPF_SYN | TCPF_ACK))
        S.synack++;
    struct pkt_out o;
    pkt_reply(in, r, &o);
    struct rte_mbuf *m = rte_pktmbuf_alloc(MP);
    if (!m) {
        S.tx_dropped++;
        return;
    }
    uint8_t *p = rte_pktmbuf_mtod(m, uint8_t *);
    size_t n = pkt_build(&o, p, rte_pktmbuf_tailroom(m));
    if (!n) {
        rte_pktmbuf_free(m);
        S.tx_dropped++;
        return;
    }
    m->data_len = (uint16_t)n;
    m->pkt_len = (uint32_t)n;
    txq[ntx++] = m;
    if (ntx == sizeof(txq) / sizeof(txq[0]))
        tx_flush();
}

/* The first request is whole (or not for the bypass): counted, then the
 * connection reset (no pod behind this worker yet). */
static void first_request(struct slot *s, const struct pkt_tcp *in, enum ff_status st)
{
    const struct ff_request *rq = ff_request(s->ff);
    if (st == FF_DONE) {
        S.first_requests++;
        snprintf(S.last, sizeof(S.last),
                 "{\"proto\":\"%s\",\"method\":\"%s\",\"path\":\"%s\",\"session\":\"%s\","
                 "\"body_bytes\":%llu,\"flight_bytes\":%u}",
                 rq->proto == FF_PROTO_H2C ? "h2c" : "http/1.1", rq->method, rq->path,
                 rq->session, (unsigned long long)rq->body_bytes, s->f.len);
    } else {
        S.hand_ups++;
        snprintf(S.last, sizeof(S.last), "{\"hand_up\":\"%s\"}", ff_cause_name(rq->cause));
    }
    struct tcpep_reply r = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = s->f.iss + 1,
                            .ack = s->f.rcv_nxt, .wscale = -1};
    send_reply(in, &r);
    S.resets++;
    drop_flow(s);
}

static void frame(const uint8_t *data, size_t len)
{
    struct pkt_tcp p;
    int rc = pkt_parse(data, len, 1, &p);
    if (rc == PKT_NOT_IPV4 || rc == PKT_NOT_TCP) {
        S.not_ours++;
        return;
    }
    if (rc != PKT_OK) {
        S.bad_frames++;
        return;
    }
    uint64_t now = now_ms();
    struct tcpep_reply r;
    struct slot *s = lookup(&p.t, 0);
    if (!s) {
        if ((p.seg.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) == TCPF_SYN) {
            S.syn++;
            s = lookup(&p.t, 1);
            if (!s) { /* the table is full: a cookie */
                S.table_full++;
                tcpep_syn_cookie(&C, &p.t, &p.seg, now / 1000, &r);
                send_reply(&p, &r);
                return;
            }
            s->ff = ff_new(&FC);
            if (!s->ff) {
                drop_flow(s);
                return;
            }
            memcpy(s->smac, p.smac, 6);
            memcpy(s->dmac, p.dmac, 6);
            tcpep_syn(&C, &p.t, &p.seg, now, &s->f, &r);
            send_reply(&p, &r);
            return;
        }
        struct tcpep_flow f;
        memset(&f, 0, sizeof(f));
        if (!(p.seg.flags & TCPF_RST) && tcpep_cookie_flow(&C, &p.t, &p.seg, now / 1000, now, &f)) {
            S.cookies++;
            s = lookup(&p.t, 1);
            if (!s)
                return;
            s->f = f;
            s->ff = ff_new(&FC);
            if (!s->ff) {
                drop_flow(s);
                return;
            }
        } else {
            S.no_flow++;
            return;
        }
    }
    unsigned ev = tcpep_input(&C, &p.t, &s->f, &p.seg, now, &r);
    send_reply(&p, &r);
    if (ev & TE_EV_ESTABLISHED)
        S.established++;
    if (ev & (TE_EV_RESET | TE_EV_TIMEOUT)) {
        drop_flow(s);
        return;
    }
    if (ev & TE_EV_DATA) {
        S.bytes_in += p.seg.len;
        enum ff_status st = ff_parse(s->ff, s->f.buf, s->f.len);
        if (st != FF_MORE)
            first_request(s, &p, st);
        return;
    }
    if (ev & TE_EV_FIN) { /* the client gave up before its request was whole */
        struct tcpep_reply rr = {.send = 1, .flags = TCPF_RST | TCPF_ACK, .seq = s->f.iss + 1,
                                 .ack = s->f.rcv_nxt, .wscale = -1};
        send_reply(&p, &rr);
        S.resets++;
        drop_flow(s);
    }
}

static void timers(void)
{
    uint64_t now = now_ms();
    for (uint32_t i = 0; i < NFLOWS; i++) {
        struct slot *s = &flows[i];
        if (!s->used || s->f.st != TE_SYN_RCVD)
            continue;
        struct tcpep_reply r;
        unsigned ev = tcpep_timer(&C, &s->f, now, &r);
        if (r.send) { /* the SYN-ACK again, to where the SYN came from */
            struct pkt_tcp p;
            memset(&p, 0, sizeof(p));
            memcpy(p.smac, s->smac, 6);
            memcpy(p.dmac, s->dmac, 6);
            p.t = s->t;
            send_reply(&p, &r);
        }
        if (ev & TE_EV_TIMEOUT) {
            S.timeouts++;
            drop_flow(s);
        }
    }
}

static void write_stats(const char *path)
{
    if (!path)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f,
            "{\"rx\":%llu,\"tx\":%llu,\"tx_dropped\":%llu,\"not_ours\":%llu,\"bad_frames\":%llu,"
            "\"no_flow\":%llu,\"syn\":%llu,\"synack\":%llu,\"established\":%llu,\"cookies\":%llu,"
            "\"table_full\":%llu,\"bytes_in\":%llu,\"first_requests\":%llu,\"hand_ups\":%llu,"
            "\"resets\":%llu,\"timeouts\":%llu,\"flows\":%llu,\"last\":%s}\n",
            (unsigned long long)S.rx, (unsigned long long)S.tx,
            (unsigned long long)S.tx_dropped, (unsigned long long)S.not_ours,
            (unsigned long long)S.bad_frames, (unsigned long long)S.no_flow,
            (unsigned long long)S.syn, (unsigned long long)S.synack,
            (unsigned long long)S.established, (unsigned long long)S.cookies,
            (unsigned long long)S.table_full, (unsigned long long)S.bytes_in,
            (unsigned long long)S.first_requests, (unsigned long long)S.hand_ups,
            (unsigned long long)S.resets, (unsigned long long)S.timeouts,
            (unsigned long long)S.flows_now, S.last[0] ? S.last : "null");
    fclose(f);
    rename(tmp, path);
}

/* The entry program the driver attached: its kvg_bpe_cfg gets the port. */
static int set_port(const char *ifname, uint16_t port)
{
    unsigned ifindex = if_nametoindex(ifname);
    uint32_t prog_id = 0;
    if (!ifindex || bpf_xdp_query_id((int)ifindex, 0, &prog_id) || !prog_id)
        return -ENOENT;
    int pfd = bpf_prog_get_fd_by_id(prog_id);
    if (pfd < 0)
        return -errno;
    uint32_t ids[16];
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    pi.nr_map_ids = 16;
    pi.map_ids = (uint64_t)(uintptr_t)ids;
    uint32_t len = sizeof(pi);
    int rc = bpf_obj_get_info_by_fd(pfd, &pi, &len) ? -errno : -ENOENT;
    close(pfd);
    for (uint32_t i = 0; rc == -ENOENT && i < pi.nr_map_ids && i < 16; i++) {
        int mfd = bpf_map_get_fd_by_id(ids[i]);
        if (mfd < 0)
            continue;
        struct bpf_map_info mi;
        memset(&mi, 0, sizeof(mi));
        uint32_t ml = sizeof(mi);
        if (!bpf_obj_get_info_by_fd(mfd, &mi, &ml) && !strcmp(mi.name, "kvg_bpe_cfg")) {
            uint32_t k = 0, v = htons(port);
            rc = bpf_map_update_elem(mfd, &k, &v, BPF_ANY) ? -errno : 0;
        }
        close(mfd);
    }
    return rc;
}

int main(int argc, char **argv)
{
    const char *iface = NULL, *obj = NULL, *stats = NULL;
    int port = 0;
    unsigned long long max_body = 32ull << 20;
    static const struct option opts[] = {{"iface", 1, 0, 'i'}, {"port", 1, 0, 'p'},
                                         {"xdp-obj", 1, 0, 'x'}, {"stats", 1, 0, 's'},
                                         {"max-body", 1, 0, 'b'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'i': iface = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'x': obj = optarg; break;
        case 's': stats = optarg; break;
        case 'b': max_body = strtoull(optarg, NULL, 10); break;
        default: goto usage;
        }
    }
    if (!iface || !obj || port <= 0 || port > 65535) {
    usage:
        fprintf(stderr, "usage: kvg-bypassd --iface IF --port N --xdp-obj FILE [--stats FILE] "
                        "[--max-body BYTES]\n");
        return 2;
    }
    if (access(obj, R_OK)) {
        fprintf(stderr, "kvg-bypassd: %s: %s\n", obj, strerror(errno));
        return 1;
    }
    if (tcpep_cfg_default(&C)) {
        fprintf(stderr, "kvg-bypassd: no random key: %s\n", strerror(errno));
        return 1;
    }
    FC.max_head = 65536;
    FC.max_body = max_body;
    char prefix[64], vdev[512];
    snprintf(prefix, sizeof(prefix), "kvgbp%d", (int)getpid());
    snprintf(vdev, sizeof(vdev), "net_af_xdp0,iface=%s,xdp_prog=%s", iface, obj);
    char *eal[] = {argv[0], "-l", "0", "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
                   "--file-prefix", prefix, "--vdev", vdev, "--log-level", "*:warning", NULL};
    int eargc = (int)(sizeof(eal) / sizeof(eal[0])) - 1;
    if (rte_eal_init(eargc, eal) < 0) {
        fprintf(stderr, "kvg-bypassd: EAL did not start: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    int rc = 1;
    if (rte_eth_dev_count_avail() != 1) {
        fprintf(stderr, "kvg-bypassd: the af_xdp port did not come up on %s\n", iface);
        goto out;
    }
    RTE_ETH_FOREACH_DEV(PORT) break;
    MP = rte_pktmbuf_pool_create("kvgbp", 8191, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 (int)rte_socket_id());
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof(conf));
    if (!MP || rte_eth_dev_configure(PORT, 1, 1, &conf) ||
        rte_eth_rx_queue_setup(PORT, 0, 1024, (unsigned)rte_eth_dev_socket_id(PORT), NULL, MP) ||
        rte_eth_tx_queue_setup(PORT, 0, 1024, (unsigned)rte_eth_dev_socket_id(PORT), NULL) ||
        rte_eth_dev_start(PORT)) {
        fprintf(stderr, "kvg-bypassd: port set-up failed on %s: %s\n", iface,
                rte_strerror(rte_errno));
        goto out;
    }
    if ((rc = set_port(iface, (uint16_t)port))) {
        fprintf(stderr, "kvg-bypassd: no entry program on %s to configure: %s\n", iface,
                strerror(-rc));
        rc = 1;
        goto stop_port;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("kvg-bypassd: on %s, TCP port %d to the worker, the rest to the kernel\n", iface, port);
    fflush(stdout);
    uint64_t next_timer = now_ms() + 10, next_stats = 0;
    unsigned idle = 0;
    while (!stop) {
        struct rte_mbuf *rx[BURST];
        uint16_t n = rte_eth_rx_burst(PORT, 0, rx, BURST);
        S.rx += n;
        for (uint16_t i = 0; i < n; i++) {
            if (rx[i]->nb_segs == 1)
                frame(rte_pktmbuf_mtod(rx[i], const uint8_t *), rte_pktmbuf_data_len(rx[i]));
            else
                S.bad_frames++; /* jumbo chains: not on this path */
            rte_pktmbuf_free(rx[i]);
        }
        tx_flush();
        uint64_t now = now_ms();
        if (now >= next_timer) {
            timers();
            tx_flush();
            next_timer = now + 10;
        }
        if (now >= next_stats) {
            write_stats(stats);
            next_stats = now + 100;
        }
        if (n) {
            idle = 0;
        } else if (++idle > IDLE_POLLS) {
            struct timespec ts = {0, 200000}; /* never spin a shared core */
            nanosleep(&ts, NULL);
        }
    }
    write_stats(stats);
    printf("kvg-bypassd: rx %llu tx %llu syn %llu established %llu first requests %llu "
           "hand-ups %llu resets %llu\n",
           (unsigned long long)S.rx, (unsigned long long)S.tx, (unsigned long long)S.syn,
           (unsigned long long)S.established, (unsigned long long)S.first_requests,
           (unsigned long long)S.hand_ups, (unsigned long long)S.resets);
    rc = 0;
stop_port:
    rte_eth_dev_stop(PORT);
    rte_eth_dev_close(PORT);
out:
    for (uint32_t i = 0; i < NFLOWS; i++)
        if (flows[i].used)
            drop_flow(&flows[i]);
    rte_eal_cleanup();
    return rc;
}
