// SPDX-License-Identifier: GPL-2.0
/* splice: the sk_skb stream verdict that splices session flows client <->
 * pod inside the kernel (issue 5). kvgate.h describes the maps' contents;
 * user/gateway/splice.c is kvgated's side.
 *
 * Every socket of a flow sits in kvg_sock with this program as its stream
 * verdict and NO stream parser. Why not strparser (the usual sockmap
 * framing): it assembles each message in clones before the verdict sees
 * it (extra work and latency on every byte), aborts a message larger than
 * sk_rcvbuf, and a parser program sees the skb from its start, not from
 * the message's offset inside it, so it cannot read a second request that
 * begins in the middle of an skb. Without a parser the verdict gets whole
 * TCP skbs straight from the receive queue (tcp_read_skb), in order, each
 * once, starting where the previous one ended; it frames requests itself
 * with a little per-socket state (kvg_flow_st: phase, body bytes left).
 * The decision that must be exact, redirect a request to its pod or hand
 * it up to kvgated, is made where a request starts at the start of an skb,
 * which is where every request of a client that waits for each answer
 * starts (HTTP/1.1 clients do not pipeline in practice).
 *
 * Client direction (KVG_DIR_C2P), per skb:
 *   - in a request body: the skb (or its first body_left bytes) belongs to
 *     the current request and goes where its head went;
 *   - at a request head: the pod's kvg_pods entry decides: draining,
 *     unhealthy / down / gone, saturated -> SK_PASS (handed up: kvgated
 *     reads the request through the socket and routes it afresh) and the
 *     flow stays handed up (every later skb too, order kept). Then the
 *     head is framed: "POST ", head end (CRLF CRLF) within KVG_HEAD_MAX and
 *     within this skb, Content-Length (none: no body). Chunked bodies,
 *     Upgrade, anything else -> handed up (cause unparsable / unframed);
 *   - a 100 MB body is never one message: the head is framed, then every
 *     skb of the body just lowers body_left;
 *   - more heads in the same skb (pipelining): framed and sent along with
 *     it (counted "pipelined"); past 4, or a head that continues into the
 *     next skb, the framing is lost: this skb still goes to the pod and the
 *     flow is handed up "mid" (kvgated relays the rest as plain bytes).
 * Pod direction (KVG_DIR_P2C): every skb goes to the client, unframed.
 *
 * Budget (sockmap has no backpressure: a redirected skb is orphaned from
 * the sending socket's receive memory, so a stalled peer lets the other
 * side push without bound): before each redirect the verdict looks the
 * peer up in kvg_sock and reads its tcp_sock (bpf_skc_to_tcp_sock):
 * in flight = bytes redirected - (peer bytes_acked - cfg.peer_base). Over cfg.budget the flow is handed up, at a request head
 * cleanly, elsewhere "mid"; kvgated then relays with its bounded buffers
 * and TCP's own backpressure. The kernel thus holds at most about the
 * budget plus one skb per direction and flow beyond what TCP's buffers
 * hold anyway.
 *
 * Handing up is SK_PASS: the skb goes to the socket's own receive side
 * (the psock's ingress queue), where kvgated's read() finds it and epoll
 * reports it. Every exit is counted under its reason in kvg_spl_stats. */
#include "vmlinux.h"

#include <bpf/bpf_helpers.h>

#include "kvgate.h"
#include "maps.h"

#define BPF_TCP_ESTABLISHED_ 1 /* enum in vmlinux.h under another name on some kernels */
#define HEADS_PER_SKB 4        /* pipelined heads framed in one skb at most */
_Static_assert((KVG_HEAD_MAX & (KVG_HEAD_MAX - 1)) == 0, "KVG_HEAD_MAX: a power of two");

static __always_inline void count(__u32 reason, __u64 bytes)
{
    struct kvg_spl_stat *s = bpf_map_lookup_elem(&kvg_spl_stats, &reason);

    if (s) { /* per-CPU: no atomics */
        s->skbs++;
        s->bytes += bytes;
    }
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
    st->epoch = cfg->epoch;
    st->state = cfg->mode == KVG_MODE_SPLICE ? KVG_FST_SPLICED : KVG_FST_PASS;
    st->cause = 0;
    st->mid = 0;
    if (cfg->mode == KVG_MODE_SPLICE) {
        st->phase = KVG_PH_HEAD;
        st->body_left = 0;
        st->max_out = 0;
    }
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

/* Redirects the skb to the peer, within the budget. 1 redirected, 0 not
 * (the flow was handed up: pass the skb); clean = at a request boundary. */
static __always_inline int forward(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                   struct kvg_flow_st *st, __u32 len, int clean, __u32 reason)
{
    __u64 peer = cfg->peer, acked = 0;

    if (peer_acked(&peer, clean && cfg->dir == KVG_DIR_C2P, &acked) < 0) {
        hand_up(st, KVG_SPL_UP_PEER, !clean);
        return 0;
    }
    __s64 out = (__s64)(st->bytes + len + cfg->peer_base - acked); /* wraps: see kvgate.h */

    if (cfg->budget && out > (__s64)cfg->budget) {
        hand_up(st, KVG_SPL_UP_BUDGET, !clean);
        return 0;
    }
    if (bpf_sk_redirect_hash(skb, &kvg_sock, &peer, 0) != SK_PASS) {
        hand_up(st, KVG_SPL_UP_PEER, !clean);
        return 0;
    }
    st->bytes += len;
    st->last_ns = bpf_ktime_get_ns();
    if (out > 0 && (__u64)out > st->max_out)
        st->max_out = (__u64)out;
    count(reason, len);
    return 1;
}

/* ---- request heads ---- */

enum { H_OK = 0, H_INCOMPLETE = 1, H_BAD = 2, H_UNFRAMED = 3 };

/* header names, lower case, in .rodata (const volatile: libbpf gives the
 * section BTF; a plain string constant would land in .rodata.str, which it
 * cannot load) */
const volatile char CL_NAME[16] = "content-length:";
const volatile char TE_NAME[20] = "transfer-encoding:";
const volatile char UP_NAME[12] = "upgrade:";
#define CL_LEN 15
#define TE_LEN 18
#define UP_LEN 8

static __always_inline __s32 name_step(__s32 m, __u8 lc, const volatile char *name, __s32 len)
{
    if (m < 0 || m >= len)
        return -1;
    return name[m] == lc ? m + 1 : -1;
}

/* One byte of a head; 1 stops the scan. */
static __always_inline int scan_byte(struct kvg_head_scan *h, __u32 i, __u8 c)
{
    if (c == '\n') {
        if (h->line_empty && !h->first_line) {
            h->hlen = i + 1;
            return 1;
        }
        if (h->in_cl && !h->cl_digits)
            h->bad = 1;
        h->first_line = 0;
        h->line_empty = 1;
        h->in_cl = 0;
        h->cl_m = h->te_m = h->up_m = 0;
        return 0;
    }
    if (c == '\r')
        return 0;
    h->line_empty = 0;
    if (h->first_line)
        return 0;
    if (h->in_cl) {
        if (c >= '0' && c <= '9') {
            if (h->clen > 100000000000000ull) /* 10^14: nobody uploads that */
                h->bad = 1;
            h->clen = h->clen * 10 + (c - '0');
            h->cl_digits = 1;
        } else if (c != ' ' && c != '\t') {
            h->bad = 1; /* "1, 1", junk: the pod might frame it differently */
        }
        return 0;
    }
    __u8 lc = c >= 'A' && c <= 'Z' ? c + 32 : c;

    h->cl_m = name_step(h->cl_m, lc, CL_NAME, CL_LEN);
    h->te_m = name_step(h->te_m, lc, TE_NAME, TE_LEN);
    h->up_m = name_step(h->up_m, lc, UP_NAME, UP_LEN);
    if (h->cl_m == CL_LEN) {
        if (h->have_cl)
            h->bad = 1; /* two Content-Length fields: refuse to guess */
        h->have_cl = h->in_cl = 1;
        h->cl_m = -1;
    }
    if (h->te_m == TE_LEN || h->up_m == UP_LEN)
        h->unframed = 1;
    return 0;
}

/* One bpf_loop iteration per head byte (an unrolled loop over the bytes
 * multiplies the verifier's states past its limit). */
static long scan_step(__u32 i, void *arg)
{
    __u32 zero = 0;
    struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);

    if (!buf || i >= buf->h.n)
        return 1;
    i &= KVG_HEAD_MAX - 1;
    return scan_byte(&buf->h, i, buf->b[i]);
}

/* Frames the head that starts at off: H_OK with *hlen and *clen, or why not. */
static __noinline int parse_head(struct __sk_buff *skb, __u32 off, __u32 len, __u32 *hlen,
                                 __u64 *clen)
{
    __u32 zero = 0;
    struct kvg_head_buf *buf = bpf_map_lookup_elem(&kvg_head_buf, &zero);

    if (!buf || off >= len)
        return H_BAD;
    __u32 n = len - off;

    if (n > KVG_HEAD_MAX)
        n = KVG_HEAD_MAX;
    if (n < 5)
        return H_INCOMPLETE;
    if (bpf_skb_load_bytes(skb, off, buf->b, n) < 0)
        return H_BAD;
    if (buf->b[0] != 'P' || buf->b[1] != 'O' || buf->b[2] != 'S' || buf->b[3] != 'T' ||
        buf->b[4] != ' ')
        return H_BAD; /* only POSTs are the pod's business (GET /v1/models, /health: kvgated's) */

    struct kvg_head_scan *h = &buf->h;

    __builtin_memset(h, 0, sizeof(*h));
    h->n = n;
    h->first_line = 1;
    bpf_loop(n, scan_step, NULL, 0);
    if (h->bad)
        return H_BAD;
    if (h->unframed)
        return H_UNFRAMED;
    if (!h->hlen)
        return n == KVG_HEAD_MAX ? H_BAD : H_INCOMPLETE;
    *hlen = h->hlen;
    *clen = h->clen;
    return H_OK;
}

/* ---- the two directions ---- */

static __always_inline int client_side(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                       struct kvg_flow_st *st, __u32 len)
{
    /* a new cfg epoch takes effect with this skb. kvgated raises a SPLICE
     * epoch only when it has consumed every byte the client sent (its
     * answer is complete, nothing unread), so this skb starts a request */
    if (st->epoch != cfg->epoch)
        adopt(st, cfg);
    if (st->state != KVG_FST_SPLICED)
        return pass(st, len); /* PASS, RAW, handed up: kvgated frames what it reads */

    __u32 off = 0;

    if (st->phase == KVG_PH_BODY) {
        if (len <= st->body_left) { /* all body of the current request */
            st->body_left -= len;
            if (!st->body_left)
                st->phase = KVG_PH_HEAD; /* the request is all out */
            if (forward(skb, cfg, st, len, 0, KVG_SPL_C2P))
                return SK_PASS;
            /* handed up inside a body: body_left then counts the bytes of
             * it still to come, this skb included (framing stops here), so
             * that kvgated can relay exactly the rest and splice again */
            st->body_left += len;
            st->phase = KVG_PH_BODY;
            return pass(st, len);
        }
        off = (__u32)st->body_left; /* the next request starts inside this skb */
        st->body_left = 0;
        st->phase = KVG_PH_HEAD;
    }
    int clean = off == 0; /* a request starts at this skb's first byte */

    if (clean) {
        __u32 why = pod_unfit(cfg->pod_slot);

        if (why) {
            hand_up(st, why, 0);
            return pass(st, len);
        }
    }
    /* frame the heads in this skb */
    int lost = 0;

    for (int k = 0; k < HEADS_PER_SKB; k++) {
        __u32 hlen = 0;
        __u64 clen = 0;
        int r = parse_head(skb, off, len, &hlen, &clen);

        if (r != H_OK) {
            __u32 why = r == H_UNFRAMED ? KVG_SPL_UP_UNFRAMED : KVG_SPL_UP_UNPARSABLE;

            if (clean && k == 0) { /* nothing of it went to the pod: kvgated serves it */
                hand_up(st, why, 0);
                return pass(st, len);
            }
            lost = 1;
            break;
        }
        st->requests++;
        count(clean && k == 0 ? KVG_SPL_REQUEST : KVG_SPL_PIPELINED, hlen);
        __u64 rest = len - off - hlen;

        if (clen >= rest) {
            st->body_left = clen - rest;
            st->phase = st->body_left ? KVG_PH_BODY : KVG_PH_HEAD;
            break;
        }
        off += hlen + (__u32)clen;
        if (off >= len) {
            st->phase = KVG_PH_HEAD;
            break;
        }
        if (k == HEADS_PER_SKB - 1)
            lost = 1; /* more pipelined requests than we frame */
    }
    if (lost) {
        /* part of this skb already belongs to the pod: send it along, then
         * give the flow back to kvgated as plain bytes */
        st->phase = KVG_PH_LOST;
        int ok = forward(skb, cfg, st, len, 0, KVG_SPL_C2P);

        if (st->state == KVG_FST_SPLICED)
            hand_up(st, KVG_SPL_UP_UNPARSABLE, 1);
        return ok ? SK_PASS : pass(st, len);
    }
    if (forward(skb, cfg, st, len, clean, KVG_SPL_C2P))
        return SK_PASS;
    return pass(st, len);
}

static __always_inline int pod_side(struct __sk_buff *skb, const struct kvg_flow_cfg *cfg,
                                    struct kvg_flow_st *st, __u32 len)
{
    if (st->epoch != cfg->epoch) {
        if (cfg->mode == KVG_MODE_RAW && st->state == KVG_FST_SPLICED)
            count(KVG_SPL_UP_USER, 0);
        adopt(st, cfg);
    }
    /* the answer's framing is not tracked: any hand-up here is "mid" */
    if (st->state == KVG_FST_SPLICED && forward(skb, cfg, st, len, 0, KVG_SPL_P2C))
        return SK_PASS;
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
        return pod_side(skb, cfg, st, len);
    return client_side(skb, cfg, st, len);
}

char LICENSE[] SEC("license") = "GPL";
