/* libFuzzer target for user/bypass/pkt.c and tcpep.c: the bypass worker's
 * frame parser and TCP endpoint on hostile frames.
 *
 * The input is a run of frames, each preceded by its length (2 bytes, big
 * endian). Each frame goes through pkt_parse (with and without checksum
 * verification); every segment that parses is fed to one flow (the first
 * SYN opens it; SYN cookies are tried on the others); the timer runs
 * between frames (an acknowledgement number of 0 stands for the right
 * one, so that flows get past the handshake). Checked after every step: the flow never buffers more
 * than its budget, the global budget counts exactly what the flow holds,
 * rcv_nxt - irs - 1 = the bytes held (+1 after the FIN), and every reply
 * builds into a frame that parses back with valid checksums. abort() on
 * any violation. */
#include "bypass/pkt.h"
#include "bypass/tcpep.h"

#include <stdlib.h>
#include <string.h>

#include "frames.h"

static void check_reply(const struct pkt_tcp *in, const struct tcpep_reply *r)
{
    if (!r->send)
        return;
    uint8_t f[256];
    struct pkt_out o;
    pkt_reply(in, r, &o);
    size_t n = pkt_build(&o, f, sizeof(f));
    struct pkt_tcp back;
    if (!n || pkt_parse(f, n, 1, &back) != PKT_OK || back.seg.seq != r->seq ||
        back.seg.ack != r->ack || back.seg.flags != r->flags || back.seg.win != r->win)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    struct tcpep_budget g = {0, 6000};
    struct tcpep_cfg c;
    memset(&c, 0, sizeof(c));
    c.key.k0 = 1, c.key.k1 = 2;
    c.flow_budget = 4096;
    c.global = &g;
    c.mss = 1460;
    c.wscale = 2;
    c.synack_tries = 3;
    c.rto_ms = 10;
    struct tcpep_flow f;
    memset(&f, 0, sizeof(f));
    uint64_t now = 0;
    size_t i = 0, n;
    const uint8_t *fr;
    while (fuzz_next_frame(d, len, &i, &fr, &n)) {
        now += 3;
        struct pkt_tcp p, pv;
        int rc = pkt_parse(fr, n, 0, &p);
        int rv = pkt_parse(fr, n, 1, &pv);
        if (rv == PKT_OK && rc != PKT_OK)
            abort(); /* verifying can only refuse more */
        struct tcpseq_tuple tt; /* the steering peek (dpdk/steer.c) agrees */
        int rt = pkt_tuple(fr, n, &tt);
        if (rc == PKT_OK && (rt != PKT_OK || memcmp(&tt, &p.t, sizeof(tt))))
            abort();
        if (rt != PKT_OK && rc != rt) /* refused at the same check */
            abort();
        if (rc != PKT_OK)
            continue;
        if (p.seg.len > n)
            abort();
        struct tcpep_reply r;
        if (f.st == TE_NONE || f.st == TE_CLOSED) {
            if (f.st == TE_CLOSED)
                memset(&f, 0, sizeof(f));
            tcpep_syn(&c, &p.t, &p.seg, now, &f, &r);
            check_reply(&p, &r);
            if (f.st == TE_NONE) {
                tcpep_syn_cookie(&c, &p.t, &p.seg, now / 1000, &r);
                check_reply(&p, &r);
                if (tcpep_cookie_flow(&c, &p.t, &p.seg, now / 1000, now, &f)) {
                    tcpep_input(&c, &p.t, &f, &p.seg, now, &r);
                    check_reply(&p, &r);
                }
            }
        } else {
            /* ack 0 stands for the right one (the ISN is keyed and timed:
             * the fuzzer could not guess it), so flows get established */
            if (p.seg.ack == 0)
                p.seg.ack = f.iss + 1;
            tcpep_input(&c, &p.t, &f, &p.seg, now, &r);
            check_reply(&p, &r);
        }
        tcpep_timer(&c, &f, now, &r);
        if (f.st == TE_SYN_RCVD || f.st == TE_ESTABLISHED) {
            if (f.len > c.flow_budget || g.used != f.len || f.len > f.cap)
                abort();
            if (f.st == TE_ESTABLISHED && f.rcv_nxt - f.irs - 1 != f.len + f.fin)
                abort();
            (void)tcpep_window(&c, &f);
        } else if (f.st == TE_CLOSED && (g.used != 0 || f.buf)) {
            abort();
        }
    }
    tcpep_free(&c, &f);
    if (g.used)
        abort();
    return 0;
}
