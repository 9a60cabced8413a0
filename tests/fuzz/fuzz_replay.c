/* libFuzzer target for user/bypass/replay.c: the bypass worker's
 * connection to the pod, fed hostile pod frames.
 *
 * A client flow of 20,000 bytes is replayed; the input is a run of frames
 * (2-byte big-endian length, then the frame) parsed by pkt_parse and fed
 * to replay_input, with the timer run between them. An acknowledgement
 * number of 0 stands for "everything sent so far" and a SYN-ACK's of 0
 * for the right one, so that the fuzzer gets past the handshake. Checked:
 * snd_una <= snd_nxt <= the end of the data, every segment to send lies
 * within the data and its sequence number matches its offset, and a
 * finished replay stays finished. abort() on any violation. */
#include "bypass/pkt.h"
#include "bypass/replay.h"

#include <stdlib.h>
#include <string.h>

#include "frames.h"

static void check_out(const struct replay *rp, const struct replay_out *o, int n)
{
    for (int i = 0; i < n; i++) {
        if (o[i].len > rp->len || o[i].off > rp->len - o[i].len)
            abort();
        if ((o[i].flags & TCPF_SYN) || (o[i].flags & TCPF_RST))
            continue;
        if (o[i].len && o[i].seq != rp->iss + 1 + o[i].off)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    static uint8_t data[20000];
    struct tcpep_flow cf;
    memset(&cf, 0, sizeof(cf));
    cf.st = TE_ESTABLISHED;
    cf.irs = 0xFFFFF000u; /* wraps during the replay */
    cf.peer_mss = 1000;
    cf.peer_ws = 3;
    cf.peer_wnd = 8000;
    cf.buf = data;
    cf.len = cf.cap = sizeof(data);
    struct replay_cfg c;
    replay_cfg_default(&c);
    struct replay rp;
    struct replay_out out[REPLAY_OUT_MAX];
    replay_start(&c, &rp, &cf, cf.len, 0, out);
    uint64_t now = 0;
    int done = 0;
    size_t i = 0, n;
    const uint8_t *fr;
    while (fuzz_next_frame(d, len, &i, &fr, &n)) {
        struct pkt_tcp p;
        int rc = pkt_parse(fr, n, 0, &p);
        now += 37;
        int nout = 0;
        if (rc == PKT_OK) {
            if (p.seg.ack == 0)
                p.seg.ack = rp.st == RP_SYN_SENT ? rp.iss + 1 : rp.snd_nxt;
            unsigned ev = replay_input(&c, &rp, &p.seg, now, out, &nout);
            check_out(&rp, out, nout);
            if (ev & RP_EV_DONE)
                done = 1;
        }
        replay_timer(&c, &rp, now, out, &nout);
        check_out(&rp, out, nout);
        if (rp.st == RP_SENDING || rp.st == RP_DONE) {
            uint32_t end = rp.iss + 1 + rp.len;
            if ((int32_t)(rp.snd_una - rp.snd_nxt) > 0 || (int32_t)(rp.snd_nxt - end) > 0 ||
                (int32_t)(rp.iss + 1 - rp.snd_una) > 0)
                abort();
        }
        if (done && rp.st != RP_DONE && rp.st != RP_FAILED)
            abort();
    }
    return 0;
}
