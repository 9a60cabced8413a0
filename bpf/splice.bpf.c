// SPDX-License-Identifier: GPL-2.0
/* splice: the sk_skb stream verdict that splices session flows client <->
 * pod inside the kernel (issue 5), and lets through only what kvgated
 * itself would send to a pod (issue 9). kvgate.h describes the maps'
 * contents; user/gateway/splice*.c is kvgated's side.
 *
 * Every socket of a flow sits in kvg_sock with this program as its stream
 * verdict and NO stream parser. Why not strparser (the usual sockmap
 * framing): it assembles each message in clones before the verdict sees
 * it (extra work and latency on every byte), aborts a message larger than
 * sk_rcvbuf, and a parser program sees the skb from its start, not from
 * the message's offset inside it, so it cannot read a second request that
 * begins in the middle of an skb. Without a parser the verdict gets whole
 * TCP skbs straight from the receive queue (tcp_read_skb), in order, each
 * once, starting where the previous one ended, and frames both directions
 * itself with a little per-socket state (kvg_flow_st).
 *
 * Client direction (KVG_DIR_C2P). The verdict cannot split an skb: it
 * redirects one whole or hands it up whole (SK_PASS: kvgated reads it). So
 * it decides per skb, after framing every request head that starts in it:
 *   - an skb that is all body of the current request goes where its head
 *     went (body_left counts down; a 100 MB body is never one message);
 *   - otherwise requests start in it (after the rest of the current body,
 *     if any). The skb is redirected only if kvgated is not draining, the
 *     pod's kvg_pods entry is fit (not draining, unhealthy, down, gone or
 *     saturated), and every head in it is complete within the skb and
 *     eligible (KVG_SPLICE_PATHS in kvgate.h: POST to an inference path,
 *     HTTP/1.1, one Content-Length within cfg.max_body, no Transfer-Encoding,
 *     Upgrade or Expect, field syntax as user/common/http1.c checks it, at
 *     most KVG_HEADS_PER_SKB heads). Else the whole skb is handed up and the
 *     flow with it: at a request boundary when the skb began with a head
 *     (kvgated's HTTP/1.1 parser then reads every byte of it), or "mid"
 *     with body_left = the body bytes of the current request it began with
 *     (kvgated writes exactly those to the pod, then parses the rest). No
 *     byte that is not part of an eligible request ever goes to the pod,
 *     and kvgated never has to relay bytes it has not framed.
 * Pod direction (KVG_DIR_P2C): every skb is framed, whatever the mode
 * (status line, fields, Content-Length or chunked body, or a body that
 * runs to the pod's close); completed answers are counted, so that kvgated
 * knows when the pod has answered every request the kernel sent it (the
 * flow is quiet) and can take the connection back to its socket path. An
 * answer with invalid syntax (RFC 9110/9112: tchar names, no CTL but HTAB
 * in values, digits-only Content-Length, chunked framing) is handed up with
 * where it began (bad_pos): kvgated relays what came before it and answers
 * 502 in its place, or closes when some of it had gone out.
 *
 * Budget (sockmap has no backpressure: a redirected skb is orphaned from
 * the sending socket's receive memory, so a stalled peer lets the other
 * side push without bound): before each redirect the verdict looks the
 * peer up in kvg_sock and reads its tcp_sock (bpf_skc_to_tcp_sock):
 * in flight = bytes redirected - (peer bytes_acked - cfg.peer_base). Over
 * cfg.budget the flow is handed up (kvgated then relays the rest of that
 * request's body, or of the answers, with its bounded buffers and TCP's
 * own backpressure). The kernel thus holds at most about the budget plus
 * one skb per direction and flow beyond what TCP's buffers hold anyway.
 *
 * Every exit is counted under its reason in kvg_spl_stats. The framing
 * lives in splice_req.h (requests) and splice_ans.h (answers), over the
 * byte classes of splice_http.h. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "kvgate.h"
#include "maps.h"
#include "splice_http.h"
#include "splice_req.h"
#include "splice_ans.h"

#define BPF_TCP_ESTABLISHED_ 1 /* enum in vmlinux.h under another name on some kernels */

static __always_inline void count_n(__u32 reason, __u64 skbs, __u64 bytes)
{
    struct kvg_spl_stat *s = bpf_map_lookup_elem(&kvg_spl_stats, &reason);

    if (s) { /* per-CPU: no atomics */
        s->skbs += skbs;
        s->bytes += bytes;
    }
}

static __always_inline void count(__u32 reason, __u64 bytes)
{
    count_n(reason, 1, bytes);
}

/* The pod's load in kvg_pod_load: sent requests (and their body bytes) or
 * completed answers. Atomic: the two sides of many flows run on any CPU. */
static __always_inline void pod_load(__u32 slot, __u64 sent, __u64 body, __u64 done)
{
    struct kvg_pod_load *l = bpf_map_lookup_elem(&kvg_pod_load, &slot);

    if (!l)
        return;
    if (sent) {
        __sync_fetch_and_add(&l->sent_body, body);
        __sync_fetch_and_add(&l->sent, sent);
    }
    if (done)
        __sync_fetch_and_add(&l->done, done);
}

/* ---- the pod table ---- */

/* 0 when the pod may take a request, else the hand-up reason. */
static __always_inline __u32 pod_unfit(__u32 slot)
{
    struct kvg_pod *p = bpf_map_lookup_elem(&kvg_pods, &slot);

    if (!p || !(p->flags & KVG_POD_F_PRESENT))
        return KVG_SPL_UP_UNHEALTHY;
    if (p->flags & KVG_POD_F_DRAINING)
        return KVG_SPL_UP_DRAINING;
    if (!(p->flags & KVG_POD_F_HEALTHY) || (p->flags & KVG_POD_F_DOWN))
        return KVG_SPL_UP_UNHEALTHY;
    if (p->flags & KVG_POD_F_SATURATED)
        return KVG_SPL_UP_SATURATED;
    return 0;
}

/* ---- the peer: alive, and how much of what we sent it has acknowledged ---- */

/* 0 and *acked = the peer's tcp bytes_acked; -1 when the peer is not in
 * kvg_sock, or (need_est) not established. */
static __always_inline int peer_acked(__u64 *peer, int need_est, __u64 *acked)
{
    struct bpf_sock *sk = bpf_map_lookup_elem(&kvg_sock, peer);
    int rc = 0;

    if (!sk)
        return -1;
    if (need_est && sk->state != BPF_TCP_ESTABLISHED_) {
        rc = -1;
    } else {
        struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

        if (tp)
            *acked = tp->bytes_acked;
        else
            rc = -1;
    }
    bpf_sk_release(sk);
    return rc;
}

/* ---- state ---- */

static __always_inline void adopt(struct kvg_flow_st *st, const struct kvg_flow_cfg *cfg)
{
    /* bytes handed up that kvgated has not read yet must reach it before
     * anything after them is redirected: stay as we are, it will see them */
    if (cfg->mode == KVG_MODE_SPLICE && st->passed > cfg->passed_mark)
        return;
    st->epoch = cfg->epoch;
    st->state = cfg->mode == KVG_MODE_SPLICE ? KVG_FST_SPLICED : KVG_FST_PASS;
    st->cause = 0;
    st->mid = 0;
    if (cfg->mode != KVG_MODE_SPLICE)
        return;
    st->max_out = 0;
    if (cfg->dir == KVG_DIR_C2P) { /* kvgated splices at a request boundary */
        st->phase = KVG_PH_HEAD;
        st->body_left = 0;
    }
    /* a pod socket keeps its answer framing: it runs on every byte */
}

static __always_inline void hand_up(struct kvg_flow_st *st, __u32 reason, int mid)
{
    st->state = KVG_FST_HANDED_UP;
    st->cause = (__u8)reason;
    st->mid = (__u8)mid;
    count(reason, 0);
}

static __always_inline int pass(struct kvg_flow_st *st, __u32 len)
{
    st->passed += len;
    count(KVG_SPL_PASS, len);
    return SK_PASS;
}

/* Redirects the skb to the peer, within the budget: 0 done, else the
 * hand-up reason (nothing redirected). */
static __always_inline __u32 forward(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                     struct kvg_flow_st *st, __u32 len, int need_est, __u32 reason)
{
    __u64 peer = cfg->peer, acked = 0;

    if (peer_acked(&peer, need_est, &acked) < 0)
        return KVG_SPL_UP_PEER;
    __s64 out = (__s64)(st->bytes + len + cfg->peer_base - acked); /* wraps: see kvgate.h */

    if (cfg->budget && out > (__s64)cfg->budget)
        return KVG_SPL_UP_BUDGET;
    if (bpf_sk_redirect_hash(skb, &kvg_sock, &peer, 0) != SK_PASS)
        return KVG_SPL_UP_PEER;
    st->bytes += len;
    st->last_ns = bpf_ktime_get_ns();
    if (out > 0 && (__u64)out > st->max_out)
        st->max_out = (__u64)out;
    count(reason, len);
    return 0;
}

/* ---- the framing's glue: bytes out of the skb, loops ---- */

#define WIN 256 /* answer bytes copied out of the skb at a time */
_Static_assert(WIN <= KVG_HEAD_MAX && (WIN & (WIN - 1)) == 0, "the window lives in kvg_head_buf.b");

/* One bpf_loop iteration per head byte (an unrolled loop over the bytes
 * multiplies the verifier's states past its limit). */
static long req_step(__u32 i, void *arg)
{
    __u32 zero = 0;
    struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);

    if (!buf || i >= buf->h.n || buf->owner != *(__u64 *)arg)
        return 1; /* done, or another run took the scratch over */
    i &= KVG_HEAD_MAX - 1;
    return req_byte(&buf->h, i, buf->b[i]);
}

/* Frames the request head that starts at off: 0 when it is complete in
 * this skb and eligible (kvg_head_buf.h then holds hlen, clen, close, valid
 * while kvg_head_buf.owner is still ck), else the hand-up reason. Global:
 * the verifier checks it once, not once per head of the caller's loop. */
__noinline int parse_head(struct __sk_buff *skb, __u32 off, __u32 len, __u32 max_head,
                          __u64 max_body)
{
    __u32 zero = 0;
    struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);
    __u64 ck = bpf_get_socket_cookie(skb); /* this run's mark on the scratch */

    if (!buf || off >= len)
        return KVG_SPL_UP_UNPARSABLE;
    buf->owner = ck;
    if (!max_head || max_head > KVG_HEAD_MAX)
        max_head = KVG_HEAD_MAX;
    __u32 n = len - off;

    if (n > max_head)
        n = max_head;
    if (n < 1 || n > KVG_HEAD_MAX)
        return KVG_SPL_UP_UNPARSABLE;
    if (bpf_skb_load_bytes(skb, off, buf->b, n) < 0)
        return KVG_SPL_UP_UNPARSABLE;

    struct kvg_head_scan *h = &buf->h;

    __builtin_memset(h, 0, sizeof(*h));
    h->n = n;
    h->max_body = max_body;
    bpf_loop(n, req_step, &ck, 0);
    return req_verdict(h, n, max_head);
}

/* parse_head with its results copied out while the scratch is still this
 * run's (retried once when another run took it over). */
static __always_inline __u32 head_at(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                     __u32 off, __u32 len, __u64 ck, __u32 *hlen, __u64 *clen,
                                     __u32 *close)
{
    __u32 zero = 0;

    for (int t = 0; t < 2; t++) {
        __u32 why = parse_head(skb, off, len, cfg->max_head, cfg->max_body);
        struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);

        if (!buf)
            return KVG_SPL_UP_UNPARSABLE;
        *hlen = buf->h.hlen;
        *clen = buf->h.clen;
        *close = buf->h.close;
        if (buf->owner == ck)
            return why;
    }
    return KVG_SPL_UP_CONTENDED;
}

struct ans_ctx {
    struct __sk_buff *skb;
    struct kvg_flow_st *st;
    __u64 ck;
};

/* what frame_answers found in one skb */
struct ans_out {
    __u32 done;       /* answers completed */
    __s32 start;      /* where the answer open now began, -1 before this skb */
    __s32 bad_start;  /* where an invalid one began, -1 before this skb */
};

/* the socket's answer parser state, to start an skb over with */
struct ans_snap {
    __u64 body_left;
    __u32 head_bytes;
    __u16 status;
    __u8 phase, flags, hv, pos;
    __s8 m_cl, m_te, m_co;
};

/* One bpf_loop iteration: a run of body bytes skipped at once, or one
 * byte of a head or chunk line (copied out WIN bytes at a time). */
static long ans_step(__u32 i, void *arg)
{
    struct ans_ctx *x = arg;
    struct kvg_flow_st *st = x->st;
    __u32 zero = 0;
    struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);

    if (!buf || !st || buf->owner != x->ck)
        return 1; /* another run took the scratch over */
    struct kvg_ans_scan *a = &buf->a;
    __u32 off = a->off, len = a->len;
    __u8 p = st->phase;

    if (off >= len || p == KVG_AN_BAD)
        return 1;
    if (ans_data(a, st))
        return 0;
    if (off < a->wstart || off - a->wstart >= a->wlen) {
        __u32 n = len - off;

        if (n > WIN)
            n = WIN;
        if (n < 1 || bpf_skb_load_bytes(x->skb, off, buf->b, n) < 0)
            return ans_bad(a, st);
        a->wstart = off;
        a->wlen = n;
    }
    __u8 c = buf->b[(off - a->wstart) & (WIN - 1)];

    a->off = off + 1;
    return ans_byte(a, st, off, c);
}

/* Frames the pod's bytes in this skb: 0, or -1 when the scratch was taken
 * over twice (st's framing is then lost: phase BAD). */
static __noinline int frame_answers(struct __sk_buff *skb, struct kvg_flow_st *st, __u32 len,
                                    __u64 ck, struct ans_out *out)
{
    __u32 zero = 0;
    struct ans_ctx x = {.skb = skb, .st = st, .ck = ck};
    struct ans_snap s = {.body_left = st->body_left, .head_bytes = st->head_bytes,
                         .status = st->status, .phase = st->phase, .flags = st->flags,
                         .hv = st->hv, .pos = st->pos, .m_cl = st->m_cl, .m_te = st->m_te,
                         .m_co = st->m_co};

    for (int t = 0; t < 2; t++) {
        struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);

        if (!buf)
            break;
        if (t) { /* start the skb over from the state it found */
            st->body_left = s.body_left;
            st->head_bytes = s.head_bytes;
            st->status = s.status;
            st->phase = s.phase;
            st->flags = s.flags;
            st->hv = s.hv;
            st->pos = s.pos;
            st->m_cl = s.m_cl;
            st->m_te = s.m_te;
            st->m_co = s.m_co;
        }
        buf->owner = ck;
        __builtin_memset(&buf->a, 0, sizeof(buf->a));
        buf->a.len = len;
        buf->a.start = -1;
        buf->a.bad_start = -1;
        bpf_loop(len, ans_step, &x, 0);
        out->done = buf->a.done;
        out->start = buf->a.start;
        out->bad_start = buf->a.bad_start;
        if (buf->owner == ck)
            return 0;
    }
    out->done = 0;
    out->start = out->bad_start = -1;
    st->phase = KVG_AN_BAD;
    return -1;
}

/* ---- the two directions ---- */

static __always_inline int client_side(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                       struct kvg_flow_st *st, __u32 len, __u64 ck)
{
    if (st->epoch != cfg->epoch)
        adopt(st, cfg);
    if (st->state != KVG_FST_SPLICED)
        return pass(st, len); /* PASS, handed up: kvgated frames what it reads */

    __u64 owed = 0; /* body bytes of the current request this skb begins with */
    __u32 why;

    if (st->phase == KVG_PH_BODY) {
        if (len <= st->body_left) { /* all body of the current request */
            why = forward(skb, cfg, st, len, 0, KVG_SPL_C2P);
            if (why) { /* body_left, this skb included, is what kvgated relays */
                hand_up(st, why, 1);
                return pass(st, len);
            }
            st->body_left -= len;
            if (!st->body_left)
                st->phase = KVG_PH_HEAD; /* the request is all out */
            return SK_PASS;
        }
        owed = st->body_left;
    }
    /* one request or more starts in this skb: every one must be the pod's */
    __u32 off = (__u32)owed, n = 0, first = 0, close = 0;
    __u64 left = 0, body = 0;

    why = (cfg->flags & KVG_CFG_F_DRAIN) ? KVG_SPL_UP_GW_DRAIN : pod_unfit(cfg->pod_slot);
    for (int k = 0; k < KVG_HEADS_PER_SKB && !why; k++) {
        __u32 hlen = 0, cl = 0;
        __u64 clen = 0;

        why = head_at(skb, cfg, off, len, ck, &hlen, &clen, &cl);
        if (why)
            break;
        if (hlen > len - off) { /* cannot happen: the head is within the skb */
            why = KVG_SPL_UP_UNPARSABLE;
            break;
        }
        __u64 rest = len - off - hlen;

        close |= cl;
        if (!n)
            first = hlen;
        n++;
        body += clen;
        if (clen >= rest) { /* its body ends in this skb or goes on */
            left = clen - rest;
            break;
        }
        off += hlen + (__u32)clen;
        if (k == KVG_HEADS_PER_SKB - 1)
            why = KVG_SPL_UP_TOO_MANY;
    }
    if (!why)
        why = forward(skb, cfg, st, len, 1, KVG_SPL_C2P); /* a new request: the pod must be up */
    if (why) {
        /* nothing of this skb went to the pod: kvgated relays the `owed`
         * body bytes, then parses the rest itself */
        hand_up(st, why, owed != 0);
        st->body_left = owed;
        st->phase = owed ? KVG_PH_BODY : KVG_PH_HEAD;
        return pass(st, len);
    }
    st->requests += n;
    pod_load(cfg->pod_slot, n, body, 0); /* in the pod's load as kvgated's own are */
    if (close)
        st->flags |= KVG_ST_F_CLOSE;
    count(owed ? KVG_SPL_PIPELINED : KVG_SPL_REQUEST, first);
    if (n > 1)
        count_n(KVG_SPL_PIPELINED, n - 1, 0);
    st->body_left = left;
    st->phase = left ? KVG_PH_BODY : KVG_PH_HEAD;
    return SK_PASS;
}

static __always_inline int pod_side(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                    struct kvg_flow_st *st, __u32 len, __u64 ck)
{
    __u64 passed0 = st->passed;
    int was_bad = st->phase == KVG_AN_BAD;
    struct ans_out o = {.start = -1, .bad_start = -1};
    __u32 why = 0;

    if (st->epoch != cfg->epoch)
        adopt(st, cfg);
    /* in every mode: kvgated counts on it */
    if (frame_answers(skb, st, len, ck, &o) < 0)
        why = KVG_SPL_UP_CONTENDED;
    if (o.done) {
        count_n(KVG_SPL_ANSWER, o.done, 0);
        pod_load(cfg->pod_slot, 0, 0, o.done);
    }
    if (st->phase == KVG_AN_BAD) {
        if (!why)
            why = KVG_SPL_UP_BAD_ANSWER;
        if (!was_bad) { /* where the invalid answer began, on the handed-up count */
            if (o.bad_start >= 0) {
                st->bad_pos = passed0 + (__u32)o.bad_start;
                st->flags &= ~KVG_ST_F_BAD_SENT;
            } else if (st->flags & KVG_ST_F_SENT) {
                st->bad_pos = passed0;
                st->flags |= KVG_ST_F_BAD_SENT;
            } else {
                st->bad_pos = st->ans_pos;
                st->flags &= ~KVG_ST_F_BAD_SENT;
            }
        }
    } else if (st->state == KVG_FST_SPLICED) {
        why = forward(skb, cfg, st, len, 0, KVG_SPL_P2C);
    }
    int sent = st->state == KVG_FST_SPLICED && !why;

    st->requests += o.done; /* after st->bytes: see ans_done */

    /* the answer open at the skb's end: did any of it reach the client? */
    if (st->phase != KVG_AN_IDLE && st->phase != KVG_AN_BAD) {
        if (o.start >= 0) {
            st->ans_pos = passed0 + (__u32)o.start;
            if (sent)
                st->flags |= KVG_ST_F_SENT;
            else
                st->flags &= ~KVG_ST_F_SENT;
        } else if (sent) {
            st->flags |= KVG_ST_F_SENT;
        }
    }
    if (sent)
        return SK_PASS;
    if (why && st->state == KVG_FST_SPLICED)
        hand_up(st, why, 1);
    else if (why == KVG_SPL_UP_CONTENDED)
        count(why, 0);
    return pass(st, len);
}

SEC("sk_skb/stream_verdict")
int splice_verdict(struct __sk_buff *skb)
{
    __u64 ck = bpf_get_socket_cookie(skb);
    __u32 len = skb->len;
    struct kvg_flow_cfg *cfg = bpf_map_lookup_elem(&kvg_flow_cfg, &ck);
    struct kvg_flow_st *st = bpf_map_lookup_elem(&kvg_flow_st, &ck);

    if (!cfg || !st) {
        count(KVG_SPL_NO_FLOW, len);
        return SK_PASS;
    }
    if (len == 0) {
        count(KVG_SPL_EMPTY, 0);
        return SK_DROP;
    }
    if (cfg->dir == KVG_DIR_P2C)
        return pod_side(skb, cfg, st, len, ck);
    return client_side(skb, cfg, st, len, ck);
}

char LICENSE[] SEC("license") = "GPL";
