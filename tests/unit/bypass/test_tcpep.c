/* Unit tests for user/bypass/tcpep.c and pkt.c: the bypass worker's TCP
 * endpoint fed scripted segments as real frames (built with pkt_build,
 * parsed back with checksums verified, the replies likewise): the
 * handshake and its options, a lost SYN-ACK (the SYN again, the timer),
 * a client that starts over, a wrong ACK, the first flight in order, out
 * of order, duplicated and overlapping, a zero window and its probe, the
 * FIN, RSTs in and out of place, a SYN on an established flow, the global
 * budget shared by flows, SYN cookies, running out of memory, and frames
 * that are not ours or not well formed. */
#include "bypass/pkt.h"
#include "bypass/tcpep.h"
#include "common/alloc.h"
#include "harness.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

static struct tcpep_cfg C;
static const uint8_t CMAC[6] = {2, 0, 0, 0, 0, 1}, GMAC[6] = {2, 0, 0, 0, 0, 2};

/* One client connection's frames. */
struct cli {
    uint32_t addr;
    uint16_t port;
    uint32_t isn;
};

static struct cli client(uint16_t port)
{
    struct cli c = {htonl(0x0A000001), htons(port), 1000000u * port};
    return c;
}

/* client -> gateway segment through a real frame, parsed back (verified) */
static struct pkt_tcp seg(const struct cli *c, uint8_t flags, uint32_t seq, uint32_t ack,
                          const void *data, uint32_t len, uint16_t mss, int8_t ws)
{
    static uint8_t frame[1 << 17];
    struct pkt_out o = {.saddr = c->addr, .daddr = htonl(0x0A000002), .sport = c->port,
                        .dport = htons(8000), .seq = seq, .ack = ack, .flags = flags,
                        .win = 65535, .mss = mss, .wscale = ws, .data = data, .len = len};
    memcpy(o.smac, CMAC, 6);
    memcpy(o.dmac, GMAC, 6);
    size_t n = pkt_build(&o, frame, sizeof(frame));
    CHECK(n > 0);
    struct pkt_tcp p;
    CHECK_EQ(pkt_parse(frame, n, 1, &p), PKT_OK);
    return p;
}

/* the reply as it would go on the wire, parsed back (verified) */
static struct pkt_tcp wire(const struct pkt_tcp *in, const struct tcpep_reply *r)
{
    uint8_t frame[256];
    struct pkt_out o;
    CHECK(r->send);
    pkt_reply(in, r, &o);
    size_t n = pkt_build(&o, frame, sizeof(frame));
    CHECK(n > 0);
    struct pkt_tcp p;
    CHECK_EQ(pkt_parse(frame, n, 1, &p), PKT_OK);
    CHECK(memcmp(p.dmac, CMAC, 6) == 0 && memcmp(p.smac, GMAC, 6) == 0);
    CHECK(p.t.daddr == in->t.saddr && p.t.dport == in->t.sport && p.t.sport == in->t.dport);
    return p;
}

/* a flow through its handshake; returns our ISN */
static uint32_t open_flow(const struct cli *c, struct tcpep_flow *f, int ws)
{
    memset(f, 0, sizeof(*f));
    struct pkt_tcp s = seg(c, TCPF_SYN, c->isn, 0, NULL, 0, 1400, (int8_t)(ws ? 7 : -1));
    struct tcpep_reply r;
    tcpep_syn(&C, &s.t, &s.seg, 0, f, &r);
    struct pkt_tcp a = wire(&s, &r);
    CHECK_EQ(a.seg.flags, TCPF_SYN | TCPF_ACK);
    CHECK_EQ(a.seg.ack, c->isn + 1);
    s = seg(c, TCPF_ACK, c->isn + 1, a.seg.seq + 1, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, f, &s.seg, 1, &r), TE_EV_ESTABLISHED);
    CHECK(!r.send); /* a bare ACK is not answered */
    return a.seg.seq;
}

static uint8_t *bytes(size_t n, int tag)
{
    uint8_t *b = malloc(n);
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(i * 7 + (size_t)tag);
    return b;
}

TEST(handshake_options_and_isn)
{
    struct cli c = client(40001);
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    struct pkt_tcp s = seg(&c, TCPF_SYN, c.isn, 0, NULL, 0, 1400, 7);
    CHECK_EQ(s.seg.mss, 1400);
    CHECK_EQ(s.seg.wscale, 7);
    struct tcpep_reply r;
    CHECK_EQ(tcpep_syn(&C, &s.t, &s.seg, 0, &f, &r), 0);
    struct pkt_tcp a = wire(&s, &r);
    CHECK_EQ(a.seg.flags, TCPF_SYN | TCPF_ACK);
    CHECK_EQ(a.seg.ack, c.isn + 1);
    CHECK_EQ(a.seg.mss, 1460);   /* ours */
    CHECK_EQ(a.seg.wscale, 7);   /* offered back: the client offered */
    CHECK_EQ(a.seg.win, 65535);  /* a SYN's window is never scaled */
    CHECK_EQ(a.seg.seq, tcpseq_isn(&C.key, &s.t, 0));
    CHECK_EQ(f.st, TE_SYN_RCVD);
    CHECK_EQ(f.peer_mss, 1400);
    /* another tuple, another ISN */
    struct cli c2 = client(40002);
    struct tcpep_flow f2;
    memset(&f2, 0, sizeof(f2));
    struct pkt_tcp s2 = seg(&c2, TCPF_SYN, c2.isn, 0, NULL, 0, 0, -1);
    tcpep_syn(&C, &s2.t, &s2.seg, 0, &f2, &r);
    struct pkt_tcp a2 = wire(&s2, &r);
    CHECK(a2.seg.seq != a.seg.seq);
    CHECK_EQ(a2.seg.wscale, -1); /* no scaling without the client's offer */
    CHECK_EQ(f2.peer_mss, 536);  /* no MSS option: the default */
    /* the ACK: established, and the window now scaled by 2^7 */
    s = seg(&c, TCPF_ACK, c.isn + 1, a.seg.seq + 1, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 1, &r), TE_EV_ESTABLISHED);
    CHECK_EQ(tcpep_window(&C, &f), (1u << 20) >> 7);
    /* not a SYN: tcpep_syn does nothing */
    struct tcpep_flow f3;
    memset(&f3, 0, sizeof(f3));
    CHECK_EQ(tcpep_syn(&C, &s.t, &s.seg, 0, &f3, &r), 0);
    CHECK(!r.send);
    CHECK_EQ(f3.st, TE_NONE);
    tcpep_free(&C, &f);
    tcpep_free(&C, &f2);
}

TEST(lost_synack_and_a_client_that_starts_over)
{
    struct cli c = client(40003);
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    struct pkt_tcp s = seg(&c, TCPF_SYN, c.isn, 0, NULL, 0, 1460, 7);
    struct tcpep_reply r;
    tcpep_syn(&C, &s.t, &s.seg, 0, &f, &r);
    uint32_t iss = r.seq;
    /* the SYN-ACK was lost: the client's SYN again gets the same one */
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 500, &r), 0);
    CHECK_EQ(wire(&s, &r).seg.seq, iss);
    CHECK_EQ(r.ack, c.isn + 1);
    /* the timer: nothing before 1 s, then the SYN-ACK, backing off */
    CHECK_EQ(tcpep_timer(&C, &f, 999, &r), 0);
    CHECK(!r.send);
    CHECK_EQ(tcpep_timer(&C, &f, 1000, &r), 0);
    CHECK(r.send && r.flags == (TCPF_SYN | TCPF_ACK) && r.seq == iss);
    CHECK_EQ(f.rto_at_ms, 3000); /* 2 s later */
    CHECK_EQ(tcpep_timer(&C, &f, 2999, &r), 0);
    CHECK(!r.send);
    uint64_t t = 3000;
    unsigned ev = 0;
    int sent = 0;
    while (!(ev & TE_EV_TIMEOUT) && sent < 10) {
        ev = tcpep_timer(&C, &f, t, &r);
        sent += r.send;
        t = f.rto_at_ms;
    }
    CHECK(ev & TE_EV_TIMEOUT);
    CHECK_EQ(f.st, TE_CLOSED);
    CHECK_EQ(sent + 3, C.synack_tries); /* 5 SYN-ACKs in all, the answers to SYNs included */
    /* a client that starts over with a new ISN while SYN-RCVD */
    memset(&f, 0, sizeof(f));
    s = seg(&c, TCPF_SYN, c.isn, 0, NULL, 0, 1460, 7);
    tcpep_syn(&C, &s.t, &s.seg, 0, &f, &r);
    s = seg(&c, TCPF_SYN, c.isn + 5000, 0, NULL, 0, 1460, 7);
    tcpep_input(&C, &s.t, &f, &s.seg, 10, &r);
    CHECK_EQ(r.ack, c.isn + 5001);
    CHECK_EQ(f.irs, c.isn + 5000);
    /* an ACK of something else while SYN-RCVD: a RST at what it acknowledged */
    s = seg(&c, TCPF_ACK, c.isn + 5001, 12345, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 11, &r), 0);
    CHECK_EQ(wire(&s, &r).seg.flags, TCPF_RST);
    CHECK_EQ(r.seq, 12345);
    CHECK_EQ(f.st, TE_SYN_RCVD);
    tcpep_free(&C, &f);
}

TEST(first_flight_in_order_out_of_order_duplicated_overlapping)
{
    struct cli c = client(40004);
    struct tcpep_flow f;
    uint32_t iss = open_flow(&c, &f, 1);
    uint8_t *b = bytes(4000, 1);
    uint32_t base = c.isn + 1;
    struct tcpep_reply r;
    /* 0..1000 in order */
    struct pkt_tcp s = seg(&c, TCPF_ACK, base, iss + 1, b, 1000, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 2, &r), TE_EV_DATA);
    struct pkt_tcp a = wire(&s, &r);
    CHECK_EQ(a.seg.flags, TCPF_ACK);
    CHECK_EQ(a.seg.ack, base + 1000);
    CHECK_EQ(a.seg.seq, iss + 1);
    CHECK_EQ(a.seg.win, ((1u << 20) - 1000) >> 7);
    /* 2000..3000 before 1000..2000: dropped, a duplicate ACK */
    s = seg(&c, TCPF_ACK, base + 2000, iss + 1, b + 2000, 1000, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 3, &r), 0);
    CHECK_EQ(wire(&s, &r).seg.ack, base + 1000);
    CHECK_EQ(f.len, 1000);
    /* 0..1000 again: a duplicate, acknowledged, nothing added */
    s = seg(&c, TCPF_ACK, base, iss + 1, b, 1000, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 4, &r), 0);
    CHECK_EQ(r.ack, base + 1000);
    CHECK_EQ(f.len, 1000);
    /* 500..2000 overlaps: only 1000..2000 is new */
    s = seg(&c, TCPF_ACK | TCPF_PSH, base + 500, iss + 1, b + 500, 1500, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 5, &r), TE_EV_DATA);
    CHECK_EQ(r.ack, base + 2000);
    /* the rest, then the FIN on its own */
    s = seg(&c, TCPF_ACK, base + 2000, iss + 1, b + 2000, 2000, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 6, &r), TE_EV_DATA);
    CHECK_EQ(f.len, 4000);
    CHECK(memcmp(f.buf, b, 4000) == 0);
    s = seg(&c, TCPF_ACK | TCPF_FIN, base + 4000, iss + 1, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 7, &r), TE_EV_FIN);
    CHECK_EQ(r.ack, base + 4001);
    /* nothing after the FIN; the FIN again is a duplicate */
    s = seg(&c, TCPF_ACK | TCPF_FIN, base + 4000, iss + 1, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 8, &r), 0);
    CHECK_EQ(r.ack, base + 4001);
    CHECK_EQ(f.len, 4000);
    /* an ACK of data we never sent: answered, ignored */
    s = seg(&c, TCPF_ACK, base + 4001, iss + 100, b, 10, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 9, &r), 0);
    CHECK(r.send && r.flags == TCPF_ACK && r.ack == base + 4001);
    CHECK_EQ(f.len, 4000);
    tcpep_free(&C, &f);
    free(b);
}

TEST(zero_window_and_its_probe)
{
    struct tcpep_cfg c2 = C;
    c2.flow_budget = 3000;
    struct cli c = client(40005);
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    struct pkt_tcp s = seg(&c, TCPF_SYN, c.isn, 0, NULL, 0, 1460, -1); /* no scaling */
    struct tcpep_reply r;
    tcpep_syn(&c2, &s.t, &s.seg, 0, &f, &r);
    CHECK_EQ(r.win, 3000);
    uint32_t iss = r.seq, base = c.isn + 1;
    uint8_t *b = bytes(4000, 2);
    /* 4000 bytes with the handshake's ACK: 3000 taken, window 0, FIN refused */
    s = seg(&c, TCPF_ACK | TCPF_FIN, base, iss + 1, b, 4000, 0, -1);
    CHECK_EQ(tcpep_input(&c2, &s.t, &f, &s.seg, 1, &r), TE_EV_ESTABLISHED | TE_EV_DATA);
    CHECK_EQ(r.ack, base + 3000);
    CHECK_EQ(r.win, 0);
    CHECK(!f.fin);
    /* a one-byte probe: nothing taken, the window as it is */
    s = seg(&c, TCPF_ACK, base + 3000, iss + 1, b + 3000, 1, 0, -1);
    CHECK_EQ(tcpep_input(&c2, &s.t, &f, &s.seg, 2, &r), 0);
    CHECK(r.send && r.ack == base + 3000 && r.win == 0);
    CHECK_EQ(f.len, 3000);
    CHECK(memcmp(f.buf, b, 3000) == 0);
    tcpep_free(&c2, &f);
    free(b);
}

TEST(resets_and_syns_in_and_out_of_place)
{
    struct cli c = client(40006);
    struct tcpep_flow f;
    uint32_t iss = open_flow(&c, &f, 1);
    uint32_t base = c.isn + 1;
    uint8_t *b = bytes(100, 3);
    struct tcpep_reply r;
    struct pkt_tcp s = seg(&c, TCPF_ACK, base, iss + 1, b, 100, 0, -1);
    tcpep_input(&C, &s.t, &f, &s.seg, 1, &r);
    /* a SYN on the established flow: a challenge ACK, nothing else */
    s = seg(&c, TCPF_SYN, c.isn + 77, 0, NULL, 0, 1460, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 2, &r), 0);
    CHECK(r.send && r.flags == TCPF_ACK && r.ack == base + 100);
    CHECK_EQ(f.st, TE_ESTABLISHED);
    /* a RST in the window but not at rcv_nxt: a challenge ACK */
    s = seg(&c, TCPF_RST, base + 150, 0, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 3, &r), 0);
    CHECK(r.send && r.flags == TCPF_ACK);
    CHECK_EQ(f.st, TE_ESTABLISHED);
    /* out of the window: ignored */
    s = seg(&c, TCPF_RST, base - 5000, 0, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 4, &r), 0);
    CHECK(!r.send);
    /* at rcv_nxt: the flow is closed and its buffer given back */
    struct tcpep_budget g = {0, 1 << 30};
    struct tcpep_cfg cg = C;
    cg.global = &g;
    g.used = f.len; /* as if it had been counted there */
    s = seg(&c, TCPF_RST, base + 100, 0, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_input(&cg, &s.t, &f, &s.seg, 5, &r), TE_EV_RESET);
    CHECK_EQ(f.st, TE_CLOSED);
    CHECK(f.buf == NULL);
    CHECK_EQ(g.used, 0);
    /* a closed flow takes nothing more */
    s = seg(&c, TCPF_ACK, base + 100, iss + 1, b, 10, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 6, &r), 0);
    CHECK(!r.send);
    /* a segment without ACK after the handshake: dropped */
    uint32_t iss2 = open_flow(&c, &f, 0);
    s = seg(&c, 0, base, 0, b, 10, 0, -1);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 7, &r), 0);
    CHECK(!r.send);
    CHECK_EQ(f.len, 0);
    (void)iss2;
    tcpep_free(&C, &f);
    free(b);
}

TEST(the_global_budget_is_shared)
{
    struct tcpep_budget g = {0, 5000};
    struct tcpep_cfg cg = C;
    cg.global = &g;
    struct cli ca = client(40007), cb = client(40008);
    struct tcpep_flow fa, fb;
    uint32_t ia = open_flow(&ca, &fa, 0), ib = open_flow(&cb, &fb, 0);
    uint8_t *b = bytes(4000, 4);
    struct tcpep_reply r;
    struct pkt_tcp s = seg(&ca, TCPF_ACK, ca.isn + 1, ia + 1, b, 4000, 0, -1);
    CHECK_EQ(tcpep_input(&cg, &s.t, &fa, &s.seg, 1, &r), TE_EV_DATA);
    CHECK_EQ(g.used, 4000);
    CHECK_EQ(tcpep_window(&cg, &fb), 1000); /* what is left of the global budget */
    s = seg(&cb, TCPF_ACK, cb.isn + 1, ib + 1, b, 4000, 0, -1);
    CHECK_EQ(tcpep_input(&cg, &s.t, &fb, &s.seg, 2, &r), TE_EV_DATA);
    CHECK_EQ(fb.len, 1000);
    CHECK_EQ(r.win, 0);
    CHECK_EQ(g.used, 5000);
    tcpep_free(&cg, &fa);
    CHECK_EQ(g.used, 1000);
    CHECK_EQ(tcpep_window(&cg, &fb), 4000);
    tcpep_free(&cg, &fb);
    CHECK_EQ(g.used, 0);
    free(b);
}

TEST(syn_cookies)
{
    struct cli c = client(40009);
    struct pkt_tcp s = seg(&c, TCPF_SYN, c.isn, 0, NULL, 0, 1400, 7);
    struct tcpep_reply r;
    tcpep_syn_cookie(&C, &s.t, &s.seg, 100, &r);
    struct pkt_tcp a = wire(&s, &r);
    CHECK_EQ(a.seg.flags, TCPF_SYN | TCPF_ACK);
    CHECK_EQ(a.seg.wscale, -1); /* a cookie cannot carry scaling */
    CHECK_EQ(a.seg.mss, 1300);  /* the table's entry at most what the client offered */
    /* the client's ACK with its first bytes: the flow is made, then fed */
    uint8_t *b = bytes(500, 5);
    s = seg(&c, TCPF_ACK, c.isn + 1, a.seg.seq + 1, b, 500, 0, -1);
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    CHECK_EQ(tcpep_cookie_flow(&C, &s.t, &s.seg, 100, 5, &f), 1);
    CHECK(f.cookie);
    CHECK_EQ(f.peer_mss, 1300);
    CHECK_EQ(tcpep_input(&C, &s.t, &f, &s.seg, 5, &r), TE_EV_ESTABLISHED | TE_EV_DATA);
    CHECK_EQ(r.ack, c.isn + 501);
    CHECK_EQ(f.len, 500);
    tcpep_free(&C, &f);
    /* a forged or altered ACK, and a cookie past its minutes: refused */
    memset(&f, 0, sizeof(f));
    s = seg(&c, TCPF_ACK, c.isn + 1, a.seg.seq + 2, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_cookie_flow(&C, &s.t, &s.seg, 100, 5, &f), 0);
    s = seg(&c, TCPF_ACK, c.isn + 1, a.seg.seq + 1, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_cookie_flow(&C, &s.t, &s.seg, 100 + 60 * (TCPSEQ_COOKIE_MINUTES + 2), 5, &f), 0);
    CHECK_EQ(f.st, TE_NONE);
    /* a SYN-ACK or RST is not a cookie's ACK */
    s = seg(&c, TCPF_ACK | TCPF_RST, c.isn + 1, a.seg.seq + 1, NULL, 0, 0, -1);
    CHECK_EQ(tcpep_cookie_flow(&C, &s.t, &s.seg, 100, 5, &f), 0);
    free(b);
}

TEST(out_of_memory_resets_the_flow)
{
    struct cli c = client(40010);
    struct tcpep_flow f;
    uint32_t iss = open_flow(&c, &f, 1);
    uint8_t *b = bytes(100, 6);
    struct tcpep_reply r;
    struct pkt_tcp s = seg(&c, TCPF_ACK, c.isn + 1, iss + 1, b, 100, 0, -1);
    alloc_fail_after(0);
    unsigned ev = tcpep_input(&C, &s.t, &f, &s.seg, 1, &r);
    alloc_fail_never();
    CHECK_EQ(ev, TE_EV_RESET);
    CHECK(r.send && (r.flags & TCPF_RST));
    CHECK_EQ(f.st, TE_CLOSED);
    free(b);
}

/* The steering peek (dpdk/steer.c): the tuple pkt_parse reads, from the
 * same checks up to the ports; a bad checksum or option does not stop it
 * (the owner's full parse refuses the frame), a frame that is not TCP or
 * is cut short does. */
TEST(frame_tuple_for_steering)
{
    struct cli c = client(40012);
    uint8_t f[256], g[256];
    struct pkt_out o = {.saddr = c.addr, .daddr = htonl(0x0A000002), .sport = c.port,
                        .dport = htons(8000), .seq = 1, .flags = TCPF_SYN, .win = 100,
                        .mss = 1460, .wscale = 3};
    size_t n = pkt_build(&o, f, sizeof(f));
    struct pkt_tcp p;
    struct tcpseq_tuple t;
    CHECK_EQ(pkt_parse(f, n, 1, &p), PKT_OK);
    CHECK_EQ(pkt_tuple(f, n, &t), PKT_OK);
    CHECK(t.saddr == c.addr && t.daddr == htonl(0x0A000002) && t.sport == c.port &&
          t.dport == htons(8000));
    CHECK(!memcmp(&t, &p.t, sizeof(t)));
    memcpy(g, f, n);
    g[n - 1] ^= 1; /* a bad checksum: still steered, refused by the owner */
    CHECK_EQ(pkt_tuple(g, n, &t), PKT_OK);
    CHECK_EQ(pkt_parse(g, n, 1, &p), PKT_BAD_CSUM);
    g[14 + 9] = 17;
    CHECK_EQ(pkt_tuple(g, n, &t), PKT_NOT_TCP);
    memcpy(g, f, n);
    g[12] = 0x86, g[13] = 0xDD;
    CHECK_EQ(pkt_tuple(g, n, &t), PKT_NOT_IPV4);
    memcpy(g, f, n);
    g[14 + 6] |= 0x20;
    CHECK_EQ(pkt_tuple(g, n, &t), PKT_FRAGMENT);
    for (size_t k = 0; k < 14 + 20 + 20; k++) /* cut before the TCP header's end */
        CHECK(pkt_tuple(f, k, &t) != PKT_OK);
}

TEST(frames_not_ours_or_not_well_formed)
{
    struct cli c = client(40011);
    uint8_t f[256];
    struct pkt_out o = {.saddr = c.addr, .daddr = htonl(0x0A000002), .sport = c.port,
                        .dport = htons(8000), .seq = 1, .flags = TCPF_SYN, .win = 100,
                        .mss = 1460, .wscale = 3};
    size_t n = pkt_build(&o, f, sizeof(f));
    struct pkt_tcp p;
    CHECK_EQ(pkt_parse(f, n, 1, &p), PKT_OK);
    CHECK_EQ(pkt_build(&o, f, 40), 0); /* too small a buffer */
    uint8_t g[256];
    memcpy(g, f, n);
    g[12] = 0x08, g[13] = 0x06; /* ARP */
    CHECK_EQ(pkt_parse(g, n, 1, &p), PKT_NOT_IPV4);
    g[12] = 0x86, g[13] = 0xDD; /* IPv6 */
    CHECK_EQ(pkt_parse(g, n, 1, &p), PKT_NOT_IPV4);
    memcpy(g, f, n);
    g[14 + 9] = 17; /* UDP */
    CHECK_EQ(pkt_parse(g, n, 0, &p), PKT_NOT_TCP);
    memcpy(g, f, n);
    g[14 + 6] |= 0x20; /* more fragments */
    CHECK_EQ(pkt_parse(g, n, 0, &p), PKT_FRAGMENT);
    memcpy(g, f, n);
    g[n - 1] ^= 1; /* a flipped bit in the TCP options */
    CHECK_EQ(pkt_parse(g, n, 1, &p), PKT_BAD_CSUM);
    CHECK(pkt_parse(g, n, 0, &p) != PKT_BAD_CSUM); /* not checked unless asked */
    memcpy(g, f, n);
    g[14 + 10] ^= 1; /* the IPv4 header checksum */
    CHECK_EQ(pkt_parse(g, n, 1, &p), PKT_BAD_CSUM);
    memcpy(g, f, n);
    g[14 + 3] += 200; /* total length past the frame */
    CHECK_EQ(pkt_parse(g, n, 0, &p), PKT_MALFORMED);
    memcpy(g, f, n);
    g[14 + 20 + 12] = 0xF0; /* data offset 60 past the packet */
    CHECK_EQ(pkt_parse(g, n, 0, &p), PKT_MALFORMED);
    memcpy(g, f, n);
    g[14 + 20 + 21] = 0; /* an option of length 0 */
    CHECK_EQ(pkt_parse(g, n, 0, &p), PKT_MALFORMED);
    memcpy(g, f, n);
    g[14 + 20 + 21] = 3; /* an MSS option of length 3 */
    CHECK_EQ(pkt_parse(g, n, 0, &p), PKT_MALFORMED);
    for (size_t k = 0; k < n; k++) /* every truncation: an error, never a read past it */
        CHECK(pkt_parse(f, k, 1, &p) != PKT_OK);
    /* Ethernet padding after the IP packet is ignored */
    memcpy(g, f, n);
    memset(g + n, 0, 20);
    CHECK_EQ(pkt_parse(g, n + 20, 1, &p), PKT_OK);
    CHECK_EQ(p.seg.len, 0);
}

int main(void)
{
    CHECK_EQ(tcpep_cfg_default(&C), 0);
    RUN(handshake_options_and_isn);
    RUN(lost_synack_and_a_client_that_starts_over);
    RUN(first_flight_in_order_out_of_order_duplicated_overlapping);
    RUN(zero_window_and_its_probe);
    RUN(resets_and_syns_in_and_out_of_place);
    RUN(the_global_budget_is_shared);
    RUN(syn_cookies);
    RUN(out_of_memory_resets_the_flow);
    RUN(frame_tuple_for_steering);
    RUN(frames_not_ours_or_not_well_formed);
    return harness_done();
}
