/* tcpep: see tcpep.h. */
#include "bypass/tcpep.h"

#include <string.h>

#include "common/alloc.h"

/* modulo 2^32 */
static int seq_lt(uint32_t a, uint32_t b) { return (int32_t)(a - b) < 0; }
static int seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

int tcpep_cfg_default(struct tcpep_cfg *c)
{
    memset(c, 0, sizeof(*c));
    c->flow_budget = 1u << 20;
    c->mss = 1460;
    c->wscale = 7;
    c->synack_tries = 5;
    c->rto_ms = 1000;
    return tcpseq_key_init(&c->key);
}

/* What the flow may still buffer. */
static uint32_t room(const struct tcpep_cfg *c, const struct tcpep_flow *f)
{
    uint32_t r = f->len < c->flow_budget ? c->flow_budget - f->len : 0;
    if (c->global) {
        uint64_t g = c->global->used < c->global->max ? c->global->max - c->global->used : 0;
        if (g < r)
            r = (uint32_t)g;
    }
    return r;
}

uint16_t tcpep_window(const struct tcpep_cfg *c, const struct tcpep_flow *f)
{
    uint32_t w = room(c, f);
    if (f->st == TE_SYN_RCVD) /* never scaled in a SYN segment (RFC 7323) */
        return w > 65535 ? 65535 : (uint16_t)w;
    w >>= f->our_ws; /* rounds down: never announce more than there is room for */
    return w > 65535 ? 65535 : (uint16_t)w;
}

static void reply(struct tcpep_reply *r, uint8_t flags, uint32_t seq, uint32_t ack,
                  uint16_t win)
{
    memset(r, 0, sizeof(*r));
    r->send = 1;
    r->flags = flags;
    r->seq = seq;
    r->ack = ack;
    r->win = win;
    r->wscale = -1;
}

static void ack_now(const struct tcpep_cfg *c, const struct tcpep_flow *f, struct tcpep_reply *r)
{
    reply(r, TCPF_ACK, f->iss + 1, f->rcv_nxt, tcpep_window(c, f));
}

static void synack(const struct tcpep_cfg *c, struct tcpep_flow *f, struct tcpep_reply *r)
{
    reply(r, TCPF_SYN | TCPF_ACK, f->iss, f->irs + 1, tcpep_window(c, f));
    r->mss = c->mss;
    if (f->peer_ws >= 0)
        r->wscale = (int8_t)f->our_ws;
    f->tries++;
}

static void syn_state(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                      const struct tcpep_seg *s, uint64_t now_ms, struct tcpep_flow *f)
{
    f->st = TE_SYN_RCVD;
    f->irs = s->seq;
    f->rcv_nxt = s->seq + 1;
    f->iss = tcpseq_isn(&c->key, t, now_ms * 1000);
    f->peer_mss = s->mss ? s->mss : 536; /* RFC 9293 3.7.1 */
    f->peer_ws = s->wscale > 14 ? 14 : s->wscale;
    f->our_ws = f->peer_ws >= 0 ? (c->wscale > 14 ? 14 : c->wscale) : 0;
    f->peer_wnd = s->win; /* a SYN's window is never scaled */
    f->tries = 0;
    f->rto_ms = c->rto_ms ? c->rto_ms : 1000;
    f->rto_at_ms = now_ms + f->rto_ms;
}

unsigned tcpep_syn(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                   const struct tcpep_seg *s, uint64_t now_ms, struct tcpep_flow *f,
                   struct tcpep_reply *r)
{
    memset(r, 0, sizeof(*r));
    if ((s->flags & (TCPF_SYN | TCPF_ACK | TCPF_RST | TCPF_FIN)) != TCPF_SYN)
        return 0;
    syn_state(c, t, s, now_ms, f);
    synack(c, f, r);
    return 0;
}

/* Appends the new bytes of an in-order segment (front already trimmed),
 * within the room: how many were taken, or -1 out of memory. */
static int64_t take(const struct tcpep_cfg *c, struct tcpep_flow *f, const uint8_t *p, uint32_t n)
{
    uint32_t w = room(c, f);
    if (n > w)
        n = w;
    if (!n)
        return 0;
    if (f->len + n > f->cap) {
        uint32_t cap = f->cap ? f->cap : 4096;
        while (cap < f->len + n)
            cap = cap > UINT32_MAX / 2 ? f->len + n : cap * 2;
        if (cap > c->flow_budget && c->flow_budget >= f->len + n)
            cap = c->flow_budget;
        uint8_t *b = kv_realloc(f->buf, cap);
        if (!b)
            return -1;
        f->buf = b;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, p, n);
    f->len += n;
    if (c->global)
        c->global->used += n;
    return n;
}

static unsigned reset_flow(const struct tcpep_cfg *c, struct tcpep_flow *f)
{
    tcpep_free(c, f);
    return TE_EV_RESET;
}

unsigned tcpep_input(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                     struct tcpep_flow *f, const struct tcpep_seg *s, uint64_t now_ms,
                     struct tcpep_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (f->st != TE_SYN_RCVD && f->st != TE_ESTABLISHED)
        return 0;
    uint32_t wnd = room(c, f);
    uint32_t wnd_edge = f->rcv_nxt + (wnd ? wnd : 1);

    /* RST: only at exactly rcv_nxt; elsewhere in the window, a challenge */
    if (s->flags & TCPF_RST) {
        if (s->seq == f->rcv_nxt)
            return reset_flow(c, f);
        if (seq_le(f->rcv_nxt, s->seq) && seq_lt(s->seq, wnd_edge) && f->st == TE_ESTABLISHED)
            ack_now(c, f, r);
        return 0;
    }
    if (s->flags & TCPF_SYN) {
        if (f->st == TE_SYN_RCVD && !(s->flags & TCPF_ACK)) {
            if (s->seq != f->irs) /* the client started over with a new ISN */
                syn_state(c, t, s, now_ms, f);
            synack(c, f, r); /* ours got lost: the same again */
            return 0;
        }
        ack_now(c, f, r); /* RFC 5961 4.2: a challenge ACK, the segment dropped */
        return 0;
    }
    if (!(s->flags & TCPF_ACK))
        return 0; /* every segment after the SYN carries an ACK */

    unsigned ev = 0;
    if (f->st == TE_SYN_RCVD) {
        if (s->ack != f->iss + 1) { /* not our SYN-ACK: a RST at what it acknowledged */
            reply(r, TCPF_RST, s->ack, 0, 0);
            return 0;
        }
        f->st = TE_ESTABLISHED;
        ev |= TE_EV_ESTABLISHED;
    } else if (seq_lt(f->iss + 1, s->ack)) { /* acknowledges data we never sent */
        ack_now(c, f, r);
        return 0;
    }
    f->peer_wnd = (uint32_t)s->win << (f->peer_ws > 0 ? f->peer_ws : 0);

    /* the data: trim what is held already, drop what is beyond rcv_nxt */
    uint32_t seq = s->seq, n = s->len;
    const uint8_t *p = s->data;
    int fin = !!(s->flags & TCPF_FIN);
    if (seq_lt(seq, f->rcv_nxt)) {
        uint32_t old = f->rcv_nxt - seq;
        if (old >= n + (uint32_t)fin) { /* all of it held: a duplicate */
            if (n || fin)
                ack_now(c, f, r);
            return ev;
        }
        if (old > n) { /* the data is held, the FIN is not */
            p += n;
            n = 0;
        } else {
            p += old;
            n -= old;
        }
        seq = f->rcv_nxt;
    }
    if (seq != f->rcv_nxt) { /* a gap before it: the client sends it again */
        ack_now(c, f, r);
        return ev;
    }
    if (f->fin) { /* nothing comes after the FIN */
        if (n)
            ack_now(c, f, r);
        return ev;
    }
    int64_t took = take(c, f, p, n);
    if (took < 0) {
        reply(r, TCPF_RST | TCPF_ACK, f->iss + 1, f->rcv_nxt, 0);
        return ev | reset_flow(c, f);
    }
    if (took) {
        f->rcv_nxt += (uint32_t)took;
        ev |= TE_EV_DATA;
    }
    if (fin && (uint32_t)took == n) { /* the FIN only when all before it is in */
        f->fin = 1;
        f->rcv_nxt++;
        ev |= TE_EV_FIN;
    }
    if (n || fin)
        ack_now(c, f, r); /* zero-window probes included: the window as it is */
    return ev;
}

unsigned tcpep_timer(const struct tcpep_cfg *c, struct tcpep_flow *f, uint64_t now_ms,
                     struct tcpep_reply *r)
{
    memset(r, 0, sizeof(*r));
    if (f->st != TE_SYN_RCVD || now_ms < f->rto_at_ms)
        return 0;
    if (f->tries >= (c->synack_tries ? c->synack_tries : 5)) {
        tcpep_free(c, f);
        return TE_EV_TIMEOUT;
    }
    synack(c, f, r);
    f->rto_ms = f->rto_ms >= 30000 ? 60000 : f->rto_ms * 2;
    f->rto_at_ms = now_ms + f->rto_ms;
    return 0;
}

void tcpep_syn_cookie(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                      const struct tcpep_seg *s, uint64_t now_s, struct tcpep_reply *r)
{
    memset(r, 0, sizeof(*r));
    if ((s->flags & (TCPF_SYN | TCPF_ACK | TCPF_RST | TCPF_FIN)) != TCPF_SYN)
        return;
    uint16_t mss = 0;
    uint32_t cookie = tcpseq_cookie(&c->key, t, s->seq, s->mss ? s->mss : 536, now_s, &mss);
    uint32_t w = c->flow_budget;
    if (c->global) {
        uint64_t g = c->global->used < c->global->max ? c->global->max - c->global->used : 0;
        if (g < w)
            w = (uint32_t)g;
    }
    reply(r, TCPF_SYN | TCPF_ACK, cookie, s->seq + 1, w > 65535 ? 65535 : (uint16_t)w);
    r->mss = mss < c->mss ? mss : c->mss; /* no window scale: a cookie cannot carry it */
}

int tcpep_cookie_flow(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                      const struct tcpep_seg *s, uint64_t now_s, uint64_t now_ms,
                      struct tcpep_flow *f)
{
    if ((s->flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) != TCPF_ACK)
        return 0;
    uint16_t mss = tcpseq_cookie_check(&c->key, t, s->seq, s->ack, now_s);
    if (!mss)
        return 0;
    f->st = TE_SYN_RCVD; /* tcpep_input completes it with this very ACK */
    f->irs = s->seq - 1;
    f->rcv_nxt = s->seq;
    f->iss = s->ack - 1;
    f->peer_mss = mss;
    f->peer_ws = -1;
    f->our_ws = 0;
    f->peer_wnd = s->win;
    f->cookie = 1;
    f->tries = 1;
    f->rto_ms = c->rto_ms ? c->rto_ms : 1000;
    f->rto_at_ms = now_ms + f->rto_ms;
    return 1;
}

void tcpep_free(const struct tcpep_cfg *c, struct tcpep_flow *f)
{
    if (c->global && f->len) {
        c->global->used = c->global->used > f->len ? c->global->used - f->len : 0;
    }
    kv_free(f->buf);
    f->buf = NULL;
    f->len = f->cap = 0;
    f->st = TE_CLOSED;
}
