/* session: the decision channel, the worker's side (session.h). */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include "bypass/neigh.h"
#include "common/httpstatus.h"
#include "common/sbuf.h"
#include "handup.h"
#include "podreset.h"
#include "stats.h"
#include "txq.h"

/* XDP's reason for stopping (kvg_bp_flow.rq_why) in the channel's terms. */
static unsigned uf_of(const struct kvg_bp_flow *c)
{
    switch (c->rq_why) {
    case KVG_BP_UF_BODY: return DECIDE_UF_BODY;
    case KVG_BP_UF_SPLIT: return DECIDE_UF_SPLIT;
    case KVG_BP_UF_ORDER: return DECIDE_UF_ORDER;
    case KVG_BP_UF_MANY: return DECIDE_UF_MANY;
    default: return DECIDE_UF_PARSE;
    }
}

void sess_ttft(struct slot *s, const struct kvg_bp_flow *p)
{
    if (!p || p->ttft_n <= s->ttft_n_seen || p->ttft_sum_us < s->ttft_us_seen)
        return; /* nothing new (or an entry put back from an older copy) */
    S.ttft_timed += p->ttft_n - s->ttft_n_seen;
    s->ttft_n_seen = p->ttft_n;
    s->ttft_us_seen = p->ttft_sum_us;
}

void sess_reqs(struct slot *s, const struct kvg_bp_flow *c)
{
    if (c && c->requests > s->reqs_seen) {
        uint64_t n = c->requests > UINT32_MAX ? UINT32_MAX : c->requests;
        S.later_requests += n - s->reqs_seen;
        s->reqs_seen = (uint32_t)n;
    }
    if (c && c->rq_body_bytes > s->body_seen)
        s->body_seen = c->rq_body_bytes;
    if (c && !s->uf && c->rq_state == KVG_BP_RQ_OFF) {
        s->uf = (uint8_t)uf_of(c);
        S.unframed++;
    }
    if (!DC || (s->dstate != D_ROUTED && s->dstate != D_MAC) || s->dgen != dcli_gen(DC) ||
        (s->reqs_seen == s->reqs_sent && s->uf == s->uf_sent && s->idle == s->idle_sent &&
         (uint32_t)s->body_seen == s->body_sent && s->ttft_n_seen == s->ttft_n_sent))
        return;
    if (!dcli_reqs(DC, s->did, s->pod_slot, s->reqs_seen, s->uf, s->idle, (uint32_t)s->body_seen,
                   s->ttft_n_seen, (uint32_t)s->ttft_us_seen)) { /* else: the next look */
        S.reqs_sent++;
        if (s->idle != s->idle_sent)
            S.idle_reported++;
        s->reqs_sent = s->reqs_seen;
        s->uf_sent = s->uf;
        s->idle_sent = s->idle;
        s->body_sent = (uint32_t)s->body_seen;
        s->ttft_n_sent = s->ttft_n_seen;
    }
}

/* The flow's DONE to kvgated, once, if kvgated holds it in flight (routed
 * on the connection that is still up). Bytes: the first flight, then what
 * XDP's two entries counted; TTFT only when the answer began before the
 * hand-off; the answers' events: the worker's count before the hand-off,
 * then XDP's (version 6). */
void sess_done(struct slot *s, unsigned http_status)
{
    struct kvg_bp_flow c2p, p2c;
    int have_c = 0, have_p = 0;
    if (s->pstate >= 2 && FLOWS_FD >= 0) {
        have_c = !bpf_map_lookup_elem(FLOWS_FD, &s->h.c2p_key, &c2p);
        have_p = !bpf_map_lookup_elem(FLOWS_FD, &s->h.p2c_key, &p2c);
    }
    sess_done_entries(s, http_status, have_c ? &c2p : NULL, have_p ? &p2c : NULL);
}

void sess_done_entries(struct slot *s, unsigned http_status, const struct kvg_bp_flow *c2p,
                       const struct kvg_bp_flow *p2c)
{
    if (!DC || (s->dstate != D_ROUTED && s->dstate != D_MAC) || s->dgen != dcli_gen(DC))
        return;
    uint64_t in = s->f.len, out = 0;
    sess_ttft(s, p2c); /* before the last REQS: its times go with it */
    if (c2p) {
        in += c2p->bytes;
        sess_reqs(s, c2p); /* the last of its requests, before the DONE */
    }
    if (p2c) {
        out = p2c->bytes;
        if (p2c->events > s->events_seen)
            s->events_seen = p2c->events;
    }
    uint64_t ttft = s->first_data_ms > s->asked_ms ? (s->first_data_ms - s->asked_ms) * 1000 : 0;
    uint64_t ev = s->events_seen + s->events_late;
    if (!dcli_done(DC, s->did, s->pod_slot, s->outcome, http_status, in, out,
                   ttft > UINT32_MAX ? UINT32_MAX : (uint32_t)ttft,
                   ev > UINT32_MAX ? UINT32_MAX : (uint32_t)ev))
        S.done_sent++;
    s->dstate = D_NONE;
}

/* Answers the client status with the OpenAI error JSON (as kvgated's
 * socket path would) and closes: the answer and a FIN in one segment,
 * sent again until the client closes too (err_input), at most ERR_TRIES
 * times, then a reset. An h2c client is reset: this path does not speak
 * HTTP/2 back. */
void sess_answer_error(struct slot *s, unsigned status, const char *msg)
{
    S.error_answers++;
    sess_done(s, status); /* routed but not replayed: kvgated ends it */
    struct sbuf b, r;
    sbuf_init(&b);
    sbuf_init(&r);
    http_error_json(&b, (int)status, msg && *msg ? msg : "the bypass cannot serve this request");
    http1_closing_response(&r, (int)status, "application/json", b.data ? b.data : "", b.len);
    const struct ff_request *rq = s->ff ? ff_request(s->ff) : NULL;
    if (b.oom || r.oom || !r.data || r.len > s->f.peer_mss || (rq && rq->proto == FF_PROTO_H2C) ||
        !(s->resp = malloc(r.len))) {
        sbuf_free(&b);
        sbuf_free(&r);
        tx_reset_client(s, NULL);
        drop_flow(s);
        return;
    }
    memcpy(s->resp, r.data, r.len);
    s->resp_len = (uint32_t)r.len;
    sbuf_free(&b);
    sbuf_free(&r);
    s->dstate = D_ERR;
    s->resp_tries = 0;
    s->resp_at_ms = 0; /* at the next timer tick */
}

void sess_send_error_answer(struct slot *s)
{
    struct pkt_out o;
    memset(&o, 0, sizeof(o));
    memcpy(o.smac, s->dmac, 6);
    memcpy(o.dmac, s->smac, 6);
    o.saddr = s->t.daddr;
    o.daddr = s->t.saddr;
    o.sport = s->t.dport;
    o.dport = s->t.sport;
    o.seq = s->f.iss + 1;
    o.ack = s->f.rcv_nxt;
    o.flags = TCPF_ACK | TCPF_PSH | TCPF_FIN;
    o.win = tcpep_window(&C, &s->f);
    o.wscale = -1;
    o.data = s->resp;
    o.len = s->resp_len;
    tx_out(&o);
    s->resp_tries++;
    s->resp_at_ms = now_ms() + ERR_RTO_MS;
}

/* A client segment while it is answered an error: its FIN (it read the
 * answer) is acknowledged and the flow forgotten; a reset forgets it. */
void sess_err_input(struct slot *s, const struct pkt_tcp *p)
{
    if (p->seg.flags & TCPF_RST) {
        drop_flow(s);
        return;
    }
    if (p->seg.flags & TCPF_FIN) {
        struct tcpep_reply r = {.send = 1, .flags = TCPF_ACK, .seq = s->f.iss + 2 + s->resp_len,
                                .ack = p->seg.seq + p->seg.len + 1, .wscale = -1};
        tx_reply(p, &r);
        drop_flow(s);
    }
}

/* The pod's MAC: --pod-mac (the next hop for every pod), else the kernel's
 * neighbour table. 1 found, 0 not yet (the kernel is asked to resolve it). */
int sess_resolve_mac(struct slot *s)
{
    if (have_pod_mac) {
        memcpy(s->pod_mac, POD_MAC, 6);
        return 1;
    }
    if (!neigh_lookup(s->pod_ip, IFNAME, s->pod_mac))
        return 1;
    if (s->dstate != D_MAC)
        neigh_poke(s->pod_ip);
    return 0;
}

void sess_go_replay(struct slot *s)
{
    s->dstate = D_ROUTED;
    s->outcome = DECIDE_CLIENT_ABORT; /* until the pod has it all */
    if (start_replay(s)) {
        s->outcome = DECIDE_REJECTED;
        sess_answer_error(s, 503, "the bypass has no source port free");
    }
}

void sess_on_answer(void *ctx, const struct decide_msg *a)
{
    struct slot *s = &flows[a->id & (NFLOWS - 1)];
    if (!s->used || s->did != a->id || s->dstate != D_WAIT) {
        /* its flow is gone: kvgated holds a routed one until told */
        S.stale_answers++;
        if (a->status == 200 && !dcli_done(DC, a->id, a->slot, DECIDE_CLIENT_ABORT, 0, 0, 0, 0, 0))
            S.done_sent++;
        return;
    }
    if (a->status == DECIDE_STATUS_HANDUP) {
        /* not for the bypass by kvgated's rules (model, session): the
         * connection goes up as it stands, the first request still in its
         * buffer, and kvgated serves it (nothing routed, so no DONE) */
        unsigned hu = decide_handup_of(a->err);
        S.gw_handups++;
        s->dstate = D_NONE;
        handup_or_reset(s, NULL, hu == DECIDE_HU_MODEL     ? ADOPT_C_MODEL
                                 : hu == DECIDE_HU_SESSION ? ADOPT_C_SESSION
                                                           : ADOPT_C_H2C);
        return;
    }
    if (a->status != 200) {
        S.gw_refused++;
        s->dstate = D_NONE;
        sess_answer_error(s, a->status, a->err);
        return;
    }
    S.routed++;
    s->dstate = D_ROUTED;
    s->outcome = DECIDE_CLIENT_ABORT;
    s->pod_slot = a->slot;
    memcpy(&s->pod_ip, a->addr, 4);
    s->pod_port = htons(a->port);
    if (sess_resolve_mac(s)) {
        sess_go_replay(s);
        return;
    }
    S.mac_waits++;
    s->dstate = D_MAC;
    s->mac_until_ms = now_ms() + MAC_WAIT_MS;
}

/* The first request is whole: kvgated is asked where it goes. */
void sess_ask(struct slot *s)
{
    static __thread uint32_t seq;
    const struct ff_request *rq = ff_request(s->ff);
    s->did = (++seq << 12) | (uint32_t)(s - flows); /* NFLOWS = 4096: the slot in the low bits */
    int rc = s->body_oom ? -ENOMEM
                         : dcli_decide(DC, s->did, rq->proto == FF_PROTO_H2C ? DECIDE_PROTO_H2C
                                                                               : DECIDE_PROTO_H1,
                                       rq->tenant, rq->session, s->body, s->blen);
    if (rc) {
        S.decide_unavailable++;
        sess_answer_error(s, 503, "no routing decision available (kvgated unreachable)");
        return;
    }
    S.decisions++;
    s->dstate = D_WAIT;
    s->dgen = dcli_gen(DC);
    s->asked_ms = now_ms();
}

/* The first request's body bytes, kept for DECIDE (kvgated scans them). */
static void on_body(void *ctx, const uint8_t *p, size_t n)
{
    struct slot *s = ctx;
    if (s->body_oom)
        return;
    if (s->blen + n > s->bcap) {
        size_t cap = s->bcap ? s->bcap : 4096;
        while (cap < s->blen + n)
            cap *= 2;
        uint8_t *b = realloc(s->body, cap);
        if (!b) {
            s->body_oom = 1;
            return;
        }
        s->body = b;
        s->bcap = cap;
    }
    memcpy(s->body + s->blen, p, n);
    s->blen += n;
}

struct ff *sess_new_ff(struct slot *s)
{
    struct ff_cfg c = FC;
    if (DC) {
        c.body = on_body;
        c.ctx = s;
    }
    return ff_new(&c);
}

/* kvgated's connection went away: it released what that connection
 * held; the flows still waiting for an answer are answered 503. */
void sess_decide_down(uint32_t gen)
{
    S.gw_downs++;
    for (uint32_t i = 0; i < NFLOWS; i++) {
        struct slot *s = &flows[i];
        if (s->used && s->dstate == D_WAIT && s->dgen == gen) {
            s->dstate = D_NONE;
            sess_answer_error(s, 503, "no routing decision available (kvgated went away)");
        } else if (s->used && s->pstate == 2 && s->checked && s->dgen == gen) {
            /* its pod table is nobody's now (a kvgated that stops zeroes
             * it; the next one numbers pods afresh): the flow runs on
             * unchecked, as it runs on without a DONE */
            s->checked = 0;
            podreset_entries_set(s, KVG_BP_ACT_REWRITE, KVG_POD_MAX);
        }
    }
}
