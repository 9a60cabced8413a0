/* replay: see replay.h. */
#include "bypass/replay.h"

#include <string.h>

static int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static int seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

void replay_cfg_default(struct replay_cfg *c)
{
    c->rto_ms = 200;
    c->tries = 6;
}

static uint32_t end_seq(const struct replay *rp) { return rp->iss + 1 + rp->len; }

static struct replay_out *emit(struct replay_out *out, int *nout, const struct replay *rp,
                               uint8_t flags, uint32_t seq, uint32_t off, uint32_t len)
{
    if (*nout >= REPLAY_OUT_MAX)
        return NULL;
    struct replay_out *o = &out[(*nout)++];
    memset(o, 0, sizeof(*o));
    o->seq = seq;
    o->ack = rp->st == RP_SYN_SENT ? 0 : rp->irs + 1; /* only the pod's SYN */
    o->flags = flags;
    o->win = rp->client_win;
    o->wscale = -1;
    o->off = off;
    o->len = len;
    return o;
}

static void arm(const struct replay_cfg *c, struct replay *rp, uint64_t now_ms)
{
    if (!rp->rto_at_ms)
        rp->rto_at_ms = now_ms + rp->rto_ms;
    (void)c;
}

/* New segments within the pod's window and the congestion window. */
static void send_more(const struct replay_cfg *c, struct replay *rp, uint64_t now_ms,
                      struct replay_out *out, int *nout)
{
    uint32_t end = end_seq(rp);
    uint32_t lim = rp->pod_wnd < rp->cwnd ? rp->pod_wnd : rp->cwnd;
    while (seq_lt(rp->snd_nxt, end)) {
        uint32_t inflight = rp->snd_nxt - rp->snd_una;
        if (inflight >= lim)
            break;
        uint32_t n = end - rp->snd_nxt;
        if (n > rp->mss)
            n = rp->mss;
        if (n > lim - inflight)
            n = lim - inflight;
        uint32_t off = rp->snd_nxt - (rp->iss + 1);
        uint8_t fl = TCPF_ACK | (rp->snd_nxt + n == end ? TCPF_PSH : 0);
        if (!emit(out, nout, rp, fl, rp->snd_nxt, off, n))
            break;
        rp->snd_nxt += n;
        arm(c, rp, now_ms);
    }
    if (seq_lt(rp->snd_nxt, end) && rp->pod_wnd == 0)
        arm(c, rp, now_ms); /* the window probe */
}

int replay_start(const struct replay_cfg *c, struct replay *rp, const struct tcpep_flow *cf,
                 uint32_t len, uint64_t now_ms, struct replay_out *out)
{
    memset(rp, 0, sizeof(*rp));
    rp->st = RP_SYN_SENT;
    rp->iss = cf->irs;
    rp->snd_una = rp->iss;
    rp->snd_nxt = rp->iss + 1;
    rp->client_mss = cf->peer_mss ? cf->peer_mss : 536;
    rp->client_ws = cf->peer_ws;
    uint32_t w = cf->peer_ws > 0 ? cf->peer_wnd >> cf->peer_ws : cf->peer_wnd;
    rp->client_win = w > 65535 ? 65535 : (uint16_t)w;
    rp->pod_ws = -1;
    rp->data = cf->buf;
    rp->len = len <= cf->len ? len : cf->len;
    rp->rto_ms = c->rto_ms > 1000 ? c->rto_ms : 1000; /* the SYN: RFC 6298's 1 s */
    rp->rto_at_ms = now_ms + rp->rto_ms;
    rp->tries = 1;
    int n = 0;
    struct replay_out *o = emit(out, &n, rp, TCPF_SYN, rp->iss, 0, 0);
    o->win = cf->peer_wnd > 65535 ? 65535 : (uint16_t)cf->peer_wnd; /* a SYN's is unscaled */
    o->mss = rp->client_mss;
    o->wscale = rp->client_ws;
    return n;
}

void replay_client_window(struct replay *rp, uint16_t win)
{
    rp->client_win = win;
}

static unsigned connected(const struct replay_cfg *c, struct replay *rp,
                          const struct tcpep_seg *s, uint64_t now_ms, struct replay_out *out,
                          int *nout)
{
    rp->irs = s->seq;
    rp->pod_ws = rp->client_ws >= 0 && s->wscale >= 0 ? s->wscale : -1;
    uint16_t pm = s->mss ? s->mss : 536;
    rp->mss = pm < rp->client_mss ? pm : rp->client_mss;
    rp->pod_wnd = s->win; /* a SYN-ACK's window is never scaled */
    rp->st = RP_SENDING;
    rp->snd_una = rp->iss + 1;
    rp->cwnd = 10u * rp->mss;
    rp->tries = 0;
    rp->dupacks = 0;
    rp->rto_ms = c->rto_ms ? c->rto_ms : 200;
    rp->rto_at_ms = 0;
    unsigned ev = RP_EV_CONNECTED;
    if (!rp->len) {
        emit(out, nout, rp, TCPF_ACK, rp->snd_nxt, 0, 0);
        rp->st = RP_DONE;
        return ev | RP_EV_DONE;
    }
    send_more(c, rp, now_ms, out, nout);
    if (!*nout) /* a zero window: the handshake's ACK on its own */
        emit(out, nout, rp, TCPF_ACK, rp->snd_nxt, 0, 0);
    return ev;
}

unsigned replay_input(const struct replay_cfg *c, struct replay *rp, const struct tcpep_seg *s,
                      uint64_t now_ms, struct replay_out *out, int *nout)
{
    *nout = 0;
    if (rp->st == RP_NONE || rp->st == RP_FAILED)
        return 0;
    if (rp->st == RP_SYN_SENT) {
        if (s->flags & TCPF_RST) {
            if ((s->flags & TCPF_ACK) && s->ack == rp->iss + 1) {
                rp->st = RP_FAILED;
                return RP_EV_REFUSED;
            }
            return 0; /* not about our SYN */
        }
        if ((s->flags & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK))
            return 0;
        if (s->ack != rp->iss + 1) { /* not our SYN's answer: reset it, try elsewhere */
            emit(out, nout, rp, TCPF_RST, s->ack, 0, 0);
            rp->st = RP_FAILED;
            return RP_EV_REFUSED;
        }
        return connected(c, rp, s, now_ms, out, nout);
    }
    /* after the SYN-ACK */
    if (s->flags & TCPF_RST) {
        if (seq_le(rp->irs + 1, s->seq) && seq_lt(s->seq, rp->irs + 1 + (1u << 30))) {
            rp->st = RP_FAILED;
            return RP_EV_RESET;
        }
        return 0;
    }
    unsigned ev = 0;
    if ((s->flags & TCPF_SYN) && s->seq == rp->irs) {
        /* our ACK of its SYN-ACK got lost: it again */
        if (rp->st == RP_SENDING && rp->snd_una == rp->iss + 1 && rp->snd_nxt == rp->snd_una)
            emit(out, nout, rp, TCPF_ACK, rp->snd_nxt, 0, 0);
        return 0;
    }
    if (s->len || (s->flags & TCPF_FIN))
        ev |= RP_EV_POD_DATA; /* the answer began: the worker passes it on */
    if (!(s->flags & TCPF_ACK) || rp->st != RP_SENDING)
        return ev;
    uint32_t end = end_seq(rp);
    uint32_t a = s->ack;
    uint32_t wnd = (uint32_t)s->win << (rp->pod_ws > 0 ? rp->pod_ws : 0);
    if (seq_lt(rp->snd_una, a) && seq_le(a, rp->snd_nxt)) { /* new bytes acknowledged */
        rp->snd_una = a;
        rp->dupacks = 0;
        rp->tries = 0;
        rp->cwnd += rp->mss;
        rp->rto_ms = c->rto_ms ? c->rto_ms : 200;
        rp->rto_at_ms = rp->snd_una != rp->snd_nxt ? now_ms + rp->rto_ms : 0;
    } else if (a == rp->snd_una && rp->snd_una != rp->snd_nxt && !s->len &&
               wnd == rp->pod_wnd && !(s->flags & TCPF_FIN)) {
        if (++rp->dupacks == 3) { /* fast retransmit: the first unacknowledged segment */
            uint32_t n = rp->snd_nxt - rp->snd_una;
            if (n > rp->mss)
                n = rp->mss;
            emit(out, nout, rp, TCPF_ACK, rp->snd_una, rp->snd_una - (rp->iss + 1), n);
            rp->cwnd = rp->cwnd / 2 > 2u * rp->mss ? rp->cwnd / 2 : 2u * rp->mss;
        }
    }
    rp->pod_wnd = wnd;
    if (rp->snd_una == end) {
        rp->st = RP_DONE;
        rp->rto_at_ms = 0;
        return ev | RP_EV_DONE;
    }
    send_more(c, rp, now_ms, out, nout);
    return ev;
}

unsigned replay_timer(const struct replay_cfg *c, struct replay *rp, uint64_t now_ms,
                      struct replay_out *out, int *nout)
{
    *nout = 0;
    if ((rp->st != RP_SYN_SENT && rp->st != RP_SENDING) || !rp->rto_at_ms ||
        now_ms < rp->rto_at_ms)
        return 0;
    if (rp->tries >= (c->tries ? c->tries : 6)) {
        rp->st = RP_FAILED;
        return RP_EV_FAILED;
    }
    rp->tries++;
    rp->rto_ms = rp->rto_ms >= 30000 ? 60000 : rp->rto_ms * 2;
    rp->rto_at_ms = now_ms + rp->rto_ms;
    if (rp->st == RP_SYN_SENT) {
        struct replay_out *o = emit(out, nout, rp, TCPF_SYN, rp->iss, 0, 0);
        o->mss = rp->client_mss;
        o->wscale = rp->client_ws;
        return 0;
    }
    uint32_t end = end_seq(rp);
    if (rp->snd_una == rp->snd_nxt && rp->pod_wnd == 0 && seq_lt(rp->snd_nxt, end)) {
        /* a zero window: probe with one byte */
        emit(out, nout, rp, TCPF_ACK, rp->snd_nxt, rp->snd_nxt - (rp->iss + 1), 1);
        rp->snd_nxt++;
        return 0;
    }
    /* a timeout: back to the first unacknowledged byte, one segment */
    rp->snd_nxt = rp->snd_una;
    rp->cwnd = rp->mss;
    rp->dupacks = 0;
    uint32_t n = end - rp->snd_una;
    if (n > rp->mss)
        n = rp->mss;
    if (n) {
        emit(out, nout, rp, TCPF_ACK, rp->snd_una, rp->snd_una - (rp->iss + 1), n);
        rp->snd_nxt += n;
    }
    return 0;
}
