/* Unit tests for user/bypass/handoff.c, through the whole pure path of a
 * spliced connection: the client's handshake and first flight
 * (bypass/tcpep), the replay to a scripted pod (bypass/replay), the two
 * kvg_bp_flows entries, and then packets of both sides rewritten by the
 * very code XDP runs (bpf/bp_rewrite.h) and parsed back with their
 * checksums verified: each side sees addresses, ports, sequence and
 * acknowledgement numbers and windows consistent with its own connection,
 * as if the other end were directly behind the gateway. */
#include "bypass/handoff.h"
#include "bypass/pkt.h"
#include "harness.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "bp_rewrite.h"

#define POD_ISN 0xFFFFFF00u /* wraps within the answer */

static struct tcpep_cfg C;
static struct replay_cfg RC;

static const struct handoff_ends E = {
    .client_mac = {2, 0, 0, 0, 0, 1}, .gw_client_mac = {2, 0, 0, 0, 0, 2},
    .pod_mac = {2, 0, 0, 0, 0, 3}, .gw_pod_mac = {2, 0, 0, 0, 0, 4},
};

static struct handoff_ends ends(void)
{
    struct handoff_ends e = E;
    e.client_addr = htonl(0x0A000001);
    e.vip = htonl(0x0A000002);
    e.client_port = htons(40100);
    e.vport = htons(8000);
    e.gw_addr = htonl(0x0A010002);
    e.pod_addr = htonl(0x0A010003);
    e.gw_port = htons(61000);
    e.pod_port = htons(8001);
    return e;
}

/* a frame from (s -> d), rewritten with f, parsed back (verified) */
static struct pkt_tcp through(const struct handoff_ends *e, int from_client,
                              const struct kvg_bp_flow *f, uint8_t flags, uint32_t seq,
                              uint32_t ack, uint16_t win, const void *data, uint32_t len)
{
    static uint8_t fr[4096];
    struct pkt_out o = {.seq = seq, .ack = ack, .flags = flags, .win = win, .wscale = -1,
                        .data = data, .len = len};
    if (from_client) {
        memcpy(o.smac, e->client_mac, 6), memcpy(o.dmac, e->gw_client_mac, 6);
        o.saddr = e->client_addr, o.daddr = e->vip, o.sport = e->client_port, o.dport = e->vport;
    } else {
        memcpy(o.smac, e->pod_mac, 6), memcpy(o.dmac, e->gw_pod_mac, 6);
        o.saddr = e->pod_addr, o.daddr = e->gw_addr, o.sport = e->pod_port, o.dport = e->gw_port;
    }
    size_t n = pkt_build(&o, fr, sizeof(fr));
    CHECK(n > 0);
    kvg_bp_rewrite(fr, fr + 14, fr + 34, f);
    struct pkt_tcp p;
    CHECK_EQ(pkt_parse(fr, n, 1, &p), PKT_OK); /* the incremental checksums are right */
    return p;
}

/* client flow with its first flight, replayed to the pod: both done */
static void splice(const struct handoff_ends *e, int pod_ws, struct tcpep_flow *cf,
                   struct replay *rp, uint32_t nbytes)
{
    struct tcpseq_tuple t = {e->client_addr, e->vip, e->client_port, e->vport};
    struct tcpep_seg s = {.seq = 3000000000u, .flags = TCPF_SYN, .win = 65535, .mss = 1460,
                          .wscale = 7};
    struct tcpep_reply r;
    memset(cf, 0, sizeof(*cf));
    tcpep_syn(&C, &t, &s, 0, cf, &r);
    uint8_t *body = malloc(nbytes);
    for (uint32_t i = 0; i < nbytes; i++)
        body[i] = (uint8_t)i;
    s = (struct tcpep_seg){.seq = cf->irs + 1, .ack = cf->iss + 1, .flags = TCPF_ACK,
                           .win = 500, .wscale = -1, .data = body, .len = nbytes};
    CHECK(tcpep_input(&C, &t, cf, &s, 1, &r) & TE_EV_DATA);
    CHECK_EQ(cf->len, nbytes);
    free(body);
    struct replay_out out[REPLAY_OUT_MAX];
    replay_start(&RC, rp, cf, cf->len, 2, out);
    struct tcpep_seg sa = {.seq = POD_ISN, .ack = cf->irs + 1, .flags = TCPF_SYN | TCPF_ACK,
                           .win = 65535, .mss = 1460, .wscale = (int8_t)pod_ws};
    int n;
    CHECK(replay_input(&RC, rp, &sa, 3, out, &n) & RP_EV_CONNECTED);
    struct tcpep_seg ack = {.seq = POD_ISN + 1, .ack = cf->irs + 1 + nbytes, .flags = TCPF_ACK,
                            .win = 1000, .wscale = -1};
    CHECK(replay_input(&RC, rp, &ack, 4, out, &n) & RP_EV_DONE);
}

TEST(both_sides_see_their_own_connection)
{
    struct handoff_ends e = ends();
    struct tcpep_flow cf;
    struct replay rp;
    splice(&e, 9, &cf, &rp, 5000);
    struct handoff h;
    handoff_entries(&e, &cf, &rp, 3, &h);
    CHECK(h.c2p_key.saddr == e.client_addr && h.c2p_key.dport == e.vport);
    CHECK(h.p2c_key.saddr == e.pod_addr && h.p2c_key.dport == e.gw_port);
    CHECK_EQ(h.c2p.pod_slot, 3);
    CHECK_EQ(h.p2c.action, KVG_BP_ACT_REWRITE);

    /* the pod's answer, 1,200 bytes: to the client, in the worker's sequence
     * space, its window rescaled from 2^9 to the 2^7 announced to the client */
    uint8_t ans[1200];
    memset(ans, 'a', sizeof(ans));
    struct pkt_tcp p = through(&e, 0, &h.p2c, TCPF_ACK | TCPF_PSH, POD_ISN + 1,
                               cf.irs + 1 + 5000, 100, ans, sizeof(ans));
    CHECK(p.t.saddr == e.vip && p.t.daddr == e.client_addr);
    CHECK(p.t.sport == e.vport && p.t.dport == e.client_port);
    CHECK(memcmp(p.smac, e.gw_client_mac, 6) == 0 && memcmp(p.dmac, e.client_mac, 6) == 0);
    CHECK_EQ(p.seg.seq, cf.iss + 1);          /* where the client expects our first byte */
    CHECK_EQ(p.seg.ack, cf.rcv_nxt);          /* everything the client sent */
    CHECK_EQ(p.seg.win, (100u << 9) >> 7);
    CHECK_EQ(p.seg.len, 1200);
    CHECK(memcmp(p.seg.data, ans, 1200) == 0);
    /* past the pod's sequence wrap */
    p = through(&e, 0, &h.p2c, TCPF_ACK, POD_ISN + 1 + 1200, cf.irs + 1 + 5000, 100, ans, 10);
    CHECK_EQ(p.seg.seq, cf.iss + 1 + 1200);

    /* the client acknowledges it and sends its next request: to the pod,
     * its sequence number unchanged, its acknowledgement in the pod's space */
    static const char req[] = "POST /v1/completions HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}";
    p = through(&e, 1, &h.c2p, TCPF_ACK | TCPF_PSH, cf.rcv_nxt, cf.iss + 1 + 1210, 300, req,
                sizeof(req) - 1);
    CHECK(p.t.saddr == e.gw_addr && p.t.daddr == e.pod_addr);
    CHECK(p.t.sport == e.gw_port && p.t.dport == e.pod_port);
    CHECK(memcmp(p.smac, e.gw_pod_mac, 6) == 0 && memcmp(p.dmac, e.pod_mac, 6) == 0);
    CHECK_EQ(p.seg.seq, rp.snd_nxt);            /* right after the replay */
    CHECK_EQ(p.seg.ack, POD_ISN + 1 + 1210);    /* the pod's bytes, wrapped */
    CHECK_EQ(p.seg.win, 300);                   /* the pod was told the client's scale */
    /* the client's FIN and a RST keep their numbers translated too */
    p = through(&e, 1, &h.c2p, TCPF_ACK | TCPF_FIN, cf.rcv_nxt + 40, cf.iss + 1 + 1210, 300,
                NULL, 0);
    CHECK_EQ(p.seg.flags, TCPF_ACK | TCPF_FIN);
    CHECK_EQ(p.seg.seq, rp.snd_nxt + 40);
    p = through(&e, 0, &h.p2c, TCPF_RST, POD_ISN + 1 + 1210, 0, 0, NULL, 0);
    CHECK_EQ(p.seg.seq, cf.iss + 1 + 1210);
    CHECK_EQ(p.seg.ack, 0); /* no ACK flag: left alone */
    tcpep_free(&C, &cf);
}

TEST(a_pod_that_declines_window_scaling)
{
    struct handoff_ends e = ends();
    struct tcpep_flow cf;
    struct replay rp;
    splice(&e, -1, &cf, &rp, 100);
    CHECK_EQ(rp.pod_ws, -1);
    struct handoff h;
    handoff_entries(&e, &cf, &rp, 0, &h);
    /* the client's window (scale 2^7) unscaled for the pod, at most 65535 */
    struct pkt_tcp p = through(&e, 1, &h.c2p, TCPF_ACK, cf.rcv_nxt, cf.iss + 1, 600, NULL, 0);
    CHECK_EQ(p.seg.win, 65535); /* 600 << 7 = 76,800 */
    p = through(&e, 1, &h.c2p, TCPF_ACK, cf.rcv_nxt, cf.iss + 1, 100, NULL, 0);
    CHECK_EQ(p.seg.win, 100u << 7);
    /* the pod's window (unscaled) scaled by what the client was told */
    p = through(&e, 0, &h.p2c, TCPF_ACK, POD_ISN + 1, cf.rcv_nxt, 64000, NULL, 0);
    CHECK_EQ(p.seg.win, 64000u >> 7);
    tcpep_free(&C, &cf);
}

/* When the worker forgets a handed-off flow (handoff_check): never while
 * packets move or only one side has closed, after linger_ms of quiet once
 * both sides sent a FIN or either a RST, after idle_ms of quiet anyway. */
TEST(a_flow_is_forgotten_once_closed_and_quiet)
{
    struct handoff_watch w;
    struct kvg_bp_flow c2p, p2c;
    memset(&c2p, 0, sizeof(c2p));
    memset(&p2c, 0, sizeof(p2c));
    const uint32_t LINGER = 1000, IDLE = 600000;
    handoff_watch_start(&w, 5000);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 5000, LINGER, IDLE), HANDOFF_KEEP);
    /* the answer streams; a quiet second between requests is no reason */
    c2p.packets = 10, p2c.packets = 40;
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 6000, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 9000, LINGER, IDLE), HANDOFF_KEEP);
    /* the client half-closes and still reads the answer: kept, however quiet */
    c2p.flags = KVG_BP_F_FIN, c2p.packets = 11;
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 10000, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 10000 + IDLE - 1, LINGER, IDLE), HANDOFF_KEEP);
    /* the pod's FIN: forgotten only after linger_ms without a packet */
    p2c.flags = KVG_BP_F_FIN, p2c.packets = 41;
    uint64_t t = 10000 + IDLE;
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, t, LINGER, IDLE), HANDOFF_KEEP);
    c2p.packets = 12; /* the last ACK */
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, t + LINGER - 1, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, t + 2 * LINGER - 2, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, t + 2 * LINGER - 1, LINGER, IDLE),
             HANDOFF_FORGET_CLOSED);

    /* a RST either way is enough */
    memset(&c2p, 0, sizeof(c2p));
    memset(&p2c, 0, sizeof(p2c));
    handoff_watch_start(&w, 0);
    p2c.flags = KVG_BP_F_RST, p2c.packets = 3;
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 100, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 100 + LINGER, LINGER, IDLE), HANDOFF_FORGET_CLOSED);

    /* nobody closed it: idle_ms */
    memset(&p2c, 0, sizeof(p2c));
    handoff_watch_start(&w, 0);
    p2c.packets = 3;
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 100, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 100 + IDLE - 1, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, &p2c, 100 + IDLE, LINGER, IDLE), HANDOFF_FORGET_IDLE);

    /* an entry missing from the map (evicted) closes nothing: kept while
     * the other still moves, so the caller puts it back */
    handoff_watch_start(&w, 0);
    c2p.packets = 5, c2p.flags = KVG_BP_F_FIN;
    CHECK_EQ(handoff_check(&w, &c2p, NULL, 10, LINGER, IDLE), HANDOFF_KEEP);
    CHECK_EQ(handoff_check(&w, &c2p, NULL, 10 + LINGER, LINGER, IDLE), HANDOFF_KEEP);
}

int main(void)
{
    CHECK_EQ(tcpep_cfg_default(&C), 0);
    replay_cfg_default(&RC);
    RUN(both_sides_see_their_own_connection);
    RUN(a_pod_that_declines_window_scaling);
    RUN(a_flow_is_forgotten_once_closed_and_quiet);
    return harness_done();
}
