/* bp_frame.h: request boundaries on the bypass path's spliced HTTP/1.1
 * flows, counted in XDP (issue 12: every path counts). The worker saw the
 * first request; every later one on the connection goes to the same pod
 * through XDP, so XDP frames them: on each client -> pod segment of a
 * flow whose entry says KVG_BP_RQ_ON, the bytes from rq_seq on are the
 * rest of the current request's body (rq_body_left, from its
 * Content-Length), then request heads, each parsed whole within the
 * segment by splice_req.h's byte machine (kvg_head_scan.any: any method
 * and path; no Content-Length is no body), each counted (requests + 1,
 * KVG_BP_REQUEST) and its body skipped in O(1), up to
 * KVG_BP_HEADS_PER_SEG heads in one segment (pipelined requests count
 * each). What it cannot frame stops the framing for good (KVG_BP_RQ_OFF,
 * rq_why, counted under its reason) and later heads go uncounted:
 *   Transfer-Encoding (chunked), Upgrade, Expect, two Content-Lengths
 *                                       -> KVG_BP_UF_BODY
 *   a head that goes on in the next segment    -> KVG_BP_UF_SPLIT
 *   HTTP/1.0, bad syntax, a head over KVG_HEAD_MAX -> KVG_BP_UF_PARSE
 *   a segment that starts past rq_seq (one before it lost or reordered:
 *   without SACK the pod never makes the client resend what it queued)
 *                                       -> KVG_BP_UF_ORDER
 *   more heads in one segment than KVG_BP_HEADS_PER_SEG -> KVG_BP_UF_MANY
 * A segment wholly before rq_seq (a retransmission) is framed already and
 * skipped; one that overlaps rq_seq is framed from rq_seq on.
 *
 * One writer per entry: a flow's client -> pod packets arrive on one
 * receive queue (RSS hashes the 4-tuple), so on one CPU at a time; the
 * worker reads the entry (bpf_map_lookup_elem copies it) every 250 ms.
 *
 * Include after kvgate.h, maps.h, splice_http.h, splice_scan.h,
 * splice_req.h and bp_maps.h. */
#ifndef KVGATE_BPF_BP_FRAME_H
#define KVGATE_BPF_BP_FRAME_H

/* a Content-Length bound that only keeps the arithmetic from wrapping */
#define KVG_BP_BODY_MAX (1ull << 40)

static long bp_head_step(__u32 i, void *arg)
{
    __u32 zero = 0;
    struct kvg_bp_scan *sc = bpf_map_lookup_elem(&kvg_bp_scan, &zero);

    if (!sc || i >= sc->h.n)
        return 1;
    i &= KVG_HEAD_MAX - 1;
    return req_byte(&sc->h, i, sc->b[i]);
}

/* Frames the request head at frame offset off, n bytes to the segment's
 * end: 0 when it is whole there (kvg_bp_scan.h holds hlen and clen), else
 * the splice's hand-up reason. Global: the verifier checks it once. */
__noinline int bp_frame_head(struct xdp_md *ctx, __u32 off, __u32 n)
{
    __u32 zero = 0;
    struct kvg_bp_scan *sc = bpf_map_lookup_elem(&kvg_bp_scan, &zero);

    if (!sc || !ctx)
        return KVG_SPL_UP_UNPARSABLE;
    if (n > KVG_HEAD_MAX)
        n = KVG_HEAD_MAX;
    if (n < 1 || n > KVG_HEAD_MAX)
        return KVG_SPL_UP_UNPARSABLE;
    if (bpf_xdp_load_bytes(ctx, off, sc->b, n) < 0)
        return KVG_SPL_UP_UNPARSABLE;
    struct kvg_head_scan *h = &sc->h;

    __builtin_memset(h, 0, sizeof(*h));
    h->n = n;
    h->max_body = KVG_BP_BODY_MAX;
    h->any = 1;
    bpf_loop(n, bp_head_step, NULL, 0);
    return req_verdict(h, n, KVG_HEAD_MAX);
}

static __always_inline void bp_rq_stat(__u32 reason)
{
    struct kvg_bp_stat *st = bpf_map_lookup_elem(&kvg_bp_stats, &reason);

    if (st)
        st->packets++;
}

static __always_inline void bp_rq_stop(struct kvg_bp_flow *f, __u32 reason)
{
    f->rq_state = KVG_BP_RQ_OFF;
    f->rq_why = (__u8)reason;
    bp_rq_stat(reason);
}

static __always_inline __u32 bp_uf_reason(int why)
{
    if (why == KVG_SPL_UP_INCOMPLETE)
        return KVG_BP_UF_SPLIT;
    if (why == KVG_SPL_UP_UNFRAMED)
        return KVG_BP_UF_BODY;
    return KVG_BP_UF_PARSE;
}

/* The request c just framed waits for its answer's first event: marked
 * in the flow's pod -> client entry (whose key is c's rewrite reversed),
 * where bp_events.h times it. A mark whose answer has not begun (no
 * answer byte since: KVG_BP_TTFT_BEGAN clear) is kept: a pipelined
 * request behind it, the first one's time counts. One whose answer began
 * without an event (not a stream) is replaced: that answer is not timed,
 * and this request is timed from its own head. */
static __always_inline void bp_ttft_mark(const struct kvg_bp_flow *c)
{
    struct kvg_bp_key k = {.saddr = c->daddr, .daddr = c->saddr, .sport = c->dport,
                           .dport = c->sport, .family = KVG_AF_INET};
    struct kvg_bp_flow *p = bpf_map_lookup_elem(&kvg_bp_flows, &k);

    if (!p || p->rq_state != KVG_BP_RQ_EVENTS)
        return;
    __u64 m = p->an_wait_ns;

    if (!m || (m & KVG_BP_TTFT_BEGAN))
        __sync_val_compare_and_swap(&p->an_wait_ns, m, bpf_ktime_get_ns() & ~KVG_BP_TTFT_BITS);
}

/* One client -> pod segment of f: seq (host order) and plen payload bytes
 * at frame offset poff. */
static __always_inline void bp_frame_requests(struct xdp_md *ctx, struct kvg_bp_flow *f,
                                              __u32 seq, __u32 poff, __u32 plen)
{
    if (f->rq_state != KVG_BP_RQ_ON || !plen || plen > 0xffff)
        return;
    __s32 d = (__s32)(seq - f->rq_seq);

    if (d > 0) {
        bp_rq_stop(f, KVG_BP_UF_ORDER);
        return;
    }
    if ((__s64)d + plen <= 0)
        return; /* a retransmission: framed already */
    __u32 off = (__u32)-d; /* the bytes of it framed before */
    __u64 left = f->rq_body_left;

    for (int k = 0; k <= KVG_BP_HEADS_PER_SEG; k++) {
        __u32 rest = plen - off;

        if (left >= rest) {
            left -= rest;
            break;
        }
        off += (__u32)left;
        left = 0;
        if (k == KVG_BP_HEADS_PER_SEG) {
            bp_rq_stop(f, KVG_BP_UF_MANY);
            return;
        }
        int why = bp_frame_head(ctx, poff + off, plen - off);
        __u32 zero = 0;
        struct kvg_bp_scan *sc = bpf_map_lookup_elem(&kvg_bp_scan, &zero);

        if (!sc) {
            bp_rq_stop(f, KVG_BP_UF_PARSE);
            return;
        }
        if (why) {
            bp_rq_stop(f, bp_uf_reason(why));
            return;
        }
        __sync_fetch_and_add(&f->requests, 1);
        __sync_fetch_and_add(&f->rq_body_bytes, sc->h.clen);
        bp_rq_stat(KVG_BP_REQUEST);
        bp_ttft_mark(f);
        left = sc->h.clen;
        off += sc->h.hlen;
        if (off > plen) { /* cannot be: the head lies within the segment */
            bp_rq_stop(f, KVG_BP_UF_PARSE);
            return;
        }
    }
    f->rq_body_left = left;
    f->rq_seq = seq + plen;
}

#endif
