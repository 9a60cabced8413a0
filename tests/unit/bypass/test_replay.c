/* Unit tests for user/bypass/replay.c: the bypass worker's connection to
 * the pod, fed scripted pod segments: the SYN as the client made it (its
 * ISN, MSS and window scale), the replay within the pod's window and the
 * congestion window, new ACKs opening more, fast retransmit on three
 * duplicate ACKs, the retransmission timer going back and giving up, a
 * refused connect (RST, or a SYN-ACK of something else), answer bytes
 * before the hand-off, a zero window probed, an empty replay; and a
 * simulated pod on a lossy path that must end up with exactly the client's
 * bytes. */
#include "bypass/replay.h"
#include "harness.h"

#include <stdlib.h>
#include <string.h>

#define POD_ISN 777000u

static struct replay_cfg RC;

/* An established client flow holding n bytes (as tcpep leaves it). */
static struct tcpep_flow client_flow(uint32_t n, int ws)
{
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    f.st = TE_ESTABLISHED;
    f.irs = 5000;
    f.iss = 90000;
    f.rcv_nxt = f.irs + 1 + n;
    f.peer_mss = 1400;
    f.peer_ws = (int8_t)(ws ? 7 : -1);
    f.peer_wnd = ws ? 1000u << 7 : 60000;
    f.buf = malloc(n ? n : 1);
    for (uint32_t i = 0; i < n; i++)
        f.buf[i] = (uint8_t)(i * 13 + 1);
    f.len = f.cap = n;
    return f;
}

static struct tcpep_seg pod(uint8_t flags, uint32_t seq, uint32_t ack, uint16_t win)
{
    struct tcpep_seg s;
    memset(&s, 0, sizeof(s));
    s.flags = flags;
    s.seq = seq;
    s.ack = ack;
    s.win = win;
    s.wscale = -1;
    return s;
}

static struct tcpep_seg synack(uint32_t ack, uint16_t mss, int8_t ws, uint16_t win)
{
    struct tcpep_seg s = pod(TCPF_SYN | TCPF_ACK, POD_ISN, ack, win);
    s.mss = mss;
    s.wscale = ws;
    return s;
}

TEST(syn_as_the_client_made_it_then_the_window_and_cwnd)
{
    struct tcpep_flow cf = client_flow(30000, 1);
    struct replay rp;
    struct replay_out out[REPLAY_OUT_MAX];
    CHECK_EQ(replay_start(&RC, &rp, &cf, cf.len, 0, out), 1);
    CHECK_EQ(out[0].flags, TCPF_SYN);
    CHECK_EQ(out[0].seq, cf.irs); /* the client's ISN: its sequence numbers pass unchanged */
    CHECK_EQ(out[0].mss, 1400);
    CHECK_EQ(out[0].wscale, 7);
    CHECK_EQ(out[0].win, 65535); /* a SYN's window is unscaled */
    int n;
    struct tcpep_seg s = synack(cf.irs + 1, 1460, 9, 65535);
    CHECK_EQ(replay_input(&RC, &rp, &s, 5, out, &n), RP_EV_CONNECTED);
    CHECK_EQ(rp.mss, 1400);     /* the smaller of the two */
    CHECK_EQ(rp.pod_ws, 9);
    CHECK_EQ(n, 10);            /* 10 segments: the initial congestion window */
    for (int i = 0; i < n; i++) {
        CHECK_EQ(out[i].seq, cf.irs + 1 + (uint32_t)i * 1400);
        CHECK_EQ(out[i].off, (uint32_t)i * 1400);
        CHECK_EQ(out[i].len, 1400);
        CHECK_EQ(out[i].ack, POD_ISN + 1); /* only the pod's SYN */
        CHECK_EQ(out[i].win, 1000);        /* the client's window field, passed on */
    }
    /* 5 segments acknowledged, the window now 2 x 512 bytes (scale 9):
     * only 1,024 - 7,000 in flight: nothing more */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 1 + 7000, 2);
    CHECK_EQ(replay_input(&RC, &rp, &s, 6, out, &n), 0);
    CHECK_EQ(n, 0);
    /* all 10 acknowledged, the window wide: 11 x 1400 (cwnd 12 segments) - 0 */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 1 + 14000, 1000);
    CHECK_EQ(replay_input(&RC, &rp, &s, 7, out, &n), 0);
    CHECK_EQ(n, 12); /* the last 16,000 bytes: 11 x 1,400 + 600 */
    CHECK_EQ(out[0].seq, cf.irs + 1 + 14000);
    CHECK_EQ(out[11].len, 600);
    CHECK(out[11].flags & TCPF_PSH);
    /* an ACK past what was sent is not taken */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 1 + 30001, 1000);
    CHECK_EQ(replay_input(&RC, &rp, &s, 8, out, &n), 0);
    CHECK_EQ(rp.snd_una, cf.irs + 1 + 14000);
    /* part, then the rest: done, hand off */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 1 + 20000, 1000);
    CHECK_EQ(replay_input(&RC, &rp, &s, 8, out, &n), 0);
    CHECK_EQ(n, 0); /* everything is out already */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 1 + 30000, 1000);
    CHECK_EQ(replay_input(&RC, &rp, &s, 9, out, &n), RP_EV_DONE);
    CHECK_EQ(rp.st, RP_DONE);
    CHECK_EQ(rp.rto_at_ms, 0);
    free(cf.buf);
}

TEST(fast_retransmit_timeout_and_giving_up)
{
    struct tcpep_flow cf = client_flow(10000, 0);
    struct replay rp;
    struct replay_out out[REPLAY_OUT_MAX];
    replay_start(&RC, &rp, &cf, cf.len, 0, out);
    CHECK_EQ(out[0].wscale, -1);
    int n;
    struct tcpep_seg s = synack(cf.irs + 1, 1460, 7, 65535);
    replay_input(&RC, &rp, &s, 1, out, &n);
    CHECK_EQ(rp.pod_ws, -1); /* the client offered none: neither side scales */
    CHECK_EQ(n, 8);          /* 10,000 bytes in 8 segments of 1,400 */
    CHECK(out[7].flags & TCPF_PSH);
    /* the first segment lost: three duplicate ACKs */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 1, 65535);
    CHECK_EQ(replay_input(&RC, &rp, &s, 2, out, &n), 0);
    CHECK_EQ(n, 0);
    replay_input(&RC, &rp, &s, 3, out, &n);
    CHECK_EQ(n, 0);
    replay_input(&RC, &rp, &s, 4, out, &n);
    CHECK_EQ(n, 1);
    CHECK_EQ(out[0].seq, cf.irs + 1);
    CHECK_EQ(out[0].len, 1400);
    /* nothing acknowledged since: the timer goes back to the first byte */
    CHECK_EQ(replay_timer(&RC, &rp, 1 + 199, out, &n), 0);
    CHECK_EQ(n, 0);
    CHECK_EQ(replay_timer(&RC, &rp, 1 + 200, out, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(out[0].seq, cf.irs + 1);
    CHECK_EQ(rp.snd_nxt, cf.irs + 1 + 1400);
    /* and gives up after its tries, doubling */
    uint64_t t = rp.rto_at_ms;
    unsigned ev = 0;
    for (int i = 0; i < 10 && !(ev & RP_EV_FAILED); i++) {
        ev = replay_timer(&RC, &rp, t, out, &n);
        t = rp.rto_at_ms;
    }
    CHECK(ev & RP_EV_FAILED);
    CHECK_EQ(rp.st, RP_FAILED);
    free(cf.buf);
}

TEST(refused_connects_and_answers_before_the_hand_off)
{
    struct tcpep_flow cf = client_flow(3000, 1);
    struct replay rp;
    struct replay_out out[REPLAY_OUT_MAX];
    int n;
    /* a RST answering the SYN: refused (the next pod is tried) */
    replay_start(&RC, &rp, &cf, cf.len, 0, out);
    struct tcpep_seg s = pod(TCPF_RST, 0, cf.irs + 7, 0);
    s.flags |= TCPF_ACK;
    CHECK_EQ(replay_input(&RC, &rp, &s, 1, out, &n), 0); /* not about our SYN */
    s.ack = cf.irs + 1;
    CHECK_EQ(replay_input(&RC, &rp, &s, 1, out, &n), RP_EV_REFUSED);
    CHECK_EQ(rp.st, RP_FAILED);
    /* a SYN-ACK of something else: reset, refused */
    replay_start(&RC, &rp, &cf, cf.len, 0, out);
    s = synack(cf.irs + 99, 1460, 7, 65535);
    CHECK_EQ(replay_input(&RC, &rp, &s, 1, out, &n), RP_EV_REFUSED);
    CHECK_EQ(n, 1);
    CHECK_EQ(out[0].flags, TCPF_RST);
    CHECK_EQ(out[0].seq, cf.irs + 99);
    /* the SYN lost: sent again on the timer (1 s for a SYN) */
    replay_start(&RC, &rp, &cf, cf.len, 0, out);
    CHECK_EQ(replay_timer(&RC, &rp, 999, out, &n), 0);
    CHECK_EQ(n, 0);
    replay_timer(&RC, &rp, 1000, out, &n);
    CHECK(n == 1 && out[0].flags == TCPF_SYN && out[0].seq == cf.irs);
    /* connected; the pod answers before acknowledging everything */
    s = synack(cf.irs + 1, 1460, 7, 65535);
    CHECK_EQ(replay_input(&RC, &rp, &s, 1001, out, &n), RP_EV_CONNECTED);
    CHECK_EQ(n, 3);
    s = pod(TCPF_ACK | TCPF_PSH, POD_ISN + 1, cf.irs + 1 + 1400, 1000);
    s.len = 100;
    CHECK_EQ(replay_input(&RC, &rp, &s, 1002, out, &n), RP_EV_POD_DATA);
    s = pod(TCPF_ACK, POD_ISN + 101, cf.irs + 1 + 3000, 1000);
    CHECK_EQ(replay_input(&RC, &rp, &s, 1003, out, &n), RP_EV_DONE);
    /* a RST later is a reset, not a refusal */
    replay_start(&RC, &rp, &cf, cf.len, 0, out);
    s = synack(cf.irs + 1, 1460, 7, 65535);
    replay_input(&RC, &rp, &s, 1, out, &n);
    s = pod(TCPF_RST, POD_ISN + 1, 0, 0);
    CHECK_EQ(replay_input(&RC, &rp, &s, 2, out, &n), RP_EV_RESET);
    free(cf.buf);
}

TEST(zero_window_probe_and_an_empty_replay)
{
    struct tcpep_flow cf = client_flow(2000, 1);
    struct replay rp;
    struct replay_out out[REPLAY_OUT_MAX];
    int n;
    replay_start(&RC, &rp, &cf, cf.len, 0, out);
    struct tcpep_seg s = synack(cf.irs + 1, 1460, 7, 0); /* a zero window */
    CHECK_EQ(replay_input(&RC, &rp, &s, 1, out, &n), RP_EV_CONNECTED);
    CHECK_EQ(n, 1); /* the handshake's ACK, no data */
    CHECK_EQ(out[0].len, 0);
    replay_timer(&RC, &rp, 1 + 200, out, &n);
    CHECK_EQ(n, 1);
    CHECK_EQ(out[0].len, 1); /* the probe */
    /* the window opens with the probe's ACK: the rest goes */
    s = pod(TCPF_ACK, POD_ISN + 1, cf.irs + 2, 100);
    replay_input(&RC, &rp, &s, 300, out, &n);
    CHECK_EQ(n, 2);
    CHECK_EQ(out[0].seq, cf.irs + 2);
    CHECK_EQ(out[0].len + out[1].len, 1999);
    free(cf.buf);
    /* nothing to replay: done with the handshake */
    cf = client_flow(0, 1);
    replay_start(&RC, &rp, &cf, 0, 0, out);
    s = synack(cf.irs + 1, 1460, 7, 65535);
    CHECK_EQ(replay_input(&RC, &rp, &s, 1, out, &n), RP_EV_CONNECTED | RP_EV_DONE);
    CHECK(n == 1 && out[0].flags == TCPF_ACK);
    free(cf.buf);
}

/* A pod on a lossy path: drops every 5th segment it is sent and every 7th
 * ACK, acknowledges cumulatively; the replay must deliver every byte. */
TEST(a_lossy_path_delivers_every_byte)
{
    uint32_t len = 300000;
    struct tcpep_flow cf = client_flow(len, 1);
    uint8_t *got = calloc(1, len);
    uint32_t rcv = cf.irs + 1; /* the pod's next expected byte */
    struct replay rp;
    struct replay_out out[REPLAY_OUT_MAX];
    int n = replay_start(&RC, &rp, &cf, len, 0, out);
    struct tcpep_seg s = synack(cf.irs + 1, 1460, 7, 65535);
    uint64_t now = 1;
    unsigned ev = replay_input(&RC, &rp, &s, now, out, &n);
    int sent = 0, acks = 0, rounds = 0;
    while (!(ev & (RP_EV_DONE | RP_EV_FAILED)) && rounds++ < 100000) {
        struct tcpep_seg pending[REPLAY_OUT_MAX];
        int np = 0;
        for (int i = 0; i < n; i++) {
            if (++sent % 5 == 0)
                continue; /* lost */
            if (out[i].seq == rcv && out[i].len) {
                memcpy(got + (rcv - cf.irs - 1), cf.buf + out[i].off, out[i].len);
                CHECK(memcmp(cf.buf + out[i].off, cf.buf + (out[i].seq - cf.irs - 1),
                             out[i].len) == 0); /* off and seq agree */
                rcv += out[i].len;
            }
            if (++acks % 7 == 0)
                continue; /* the ACK lost */
            pending[np++] = pod(TCPF_ACK, POD_ISN + 1, rcv, 200); /* 200 << 7 = 25,600 */
        }
        n = 0;
        ev = 0;
        for (int i = 0; i < np && !(ev & RP_EV_DONE); i++) {
            struct replay_out o2[REPLAY_OUT_MAX];
            int n2;
            ev |= replay_input(&RC, &rp, &pending[i], now, o2, &n2);
            for (int k = 0; k < n2 && n < REPLAY_OUT_MAX; k++)
                out[n++] = o2[k];
        }
        if (!n && !(ev & RP_EV_DONE)) { /* all lost: the timer */
            now = rp.rto_at_ms ? rp.rto_at_ms : now + 1;
            ev |= replay_timer(&RC, &rp, now, out, &n);
        }
        now++;
    }
    CHECK(ev & RP_EV_DONE);
    CHECK_EQ(rcv, cf.irs + 1 + len);
    CHECK(memcmp(got, cf.buf, len) == 0);
    free(got);
    free(cf.buf);
}

int main(void)
{
    replay_cfg_default(&RC);
    RUN(syn_as_the_client_made_it_then_the_window_and_cwnd);
    RUN(fast_retransmit_timeout_and_giving_up);
    RUN(refused_connects_and_answers_before_the_hand_off);
    RUN(zero_window_probe_and_an_empty_replay);
    RUN(a_lossy_path_delivers_every_byte);
    return harness_done();
}
