/* bp_events.h: the answer events of a spliced bypass flow, counted where
 * its bytes pass (issue 12: every path counts, tokens included). Written
 * once for both places that see a bypass answer: the DPDK worker (answer
 * bytes that reach it before the hand-off) and bp_forward (every later pod
 * -> client segment, bp_events_count below).
 *
 * What is counted: SSE events whose data is a JSON object, i.e. a line
 * that starts "data:" (one optional space) then '{'. "data: [DONE]" is
 * not; nor is anything inside an event: JSON escapes a newline inside a
 * string, so '\n' in the stream is always a line end (HTTP/1.1 chunk-size
 * lines end in "\r\n" too, so chunked framing is no obstacle as long as
 * an event starts a chunk, as vLLM's and kvgate-podsim's do; a chunk
 * boundary inside "data: {" loses that event). kvgated
 * turns the count into completion tokens as its relay estimates a stream
 * it did not get usage for (accounting.h): one token per event with
 * generated text, and an OpenAI-style chat stream has one event without
 * (the role chunk) per answer (user/gateway/decide_srv.c).
 *
 * The state between bytes, and between segments, is a number 0..7: how
 * much of "\ndata:" and its optional ' ' has been seen. The first event of
 * an answer follows the head's "\r\n\r\n" or a chunk-size line, both of
 * which end in '\n'.
 *
 * Time to first token: a request XDP frames marks the pod -> client
 * entry (an_wait_ns, bp_frame.h); the segment that completes the next
 * event takes now - mark into ttft_sum_us and ttft_n (the event's last
 * byte: "data: {" within one segment). Answer bytes before that event
 * set the mark's KVG_BP_TTFT_BEGAN bit: an answer that ends without an
 * event (not a stream) is not timed, and the next request's head
 * replaces its mark. The worker reports the two to kvgated, which
 * observes each request's share in its TTFT histogram.
 *
 * Segments in order only: bp_events_count scans from the entry's rq_seq
 * on; a retransmission is skipped, the new part of an overlapping one
 * scanned; a segment past a gap restarts the count there (the gap's bytes
 * were forwarded unseen and are acknowledged whole once they arrive, so
 * waiting for them would stop the count for good). */
#ifndef KVGATE_BPF_BP_EVENTS_H
#define KVGATE_BPF_BP_EVENTS_H

#include "kvgate.h"

#ifndef __bpf__
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#endif

#define KVG_EV_COUNTED 0x100 /* bp_ev_step's flag: this byte ended an event's "data: {" */

/* One byte c in state st (0..7): the next state, with KVG_EV_COUNTED
 * when c completed an event's start. */
static __always_inline __u32 bp_ev_step(__u32 st, __u8 c)
{
    if (c == '\n')
        return 1;
    switch (st) {
    case 1: return c == 'd' ? 2 : 0;
    case 2: return c == 'a' ? 3 : 0;
    case 3: return c == 't' ? 4 : 0;
    case 4: return c == 'a' ? 5 : 0;
    case 5: return c == ':' ? 6 : 0;
    case 6:
        if (c == ' ')
            return 7;
        return c == '{' ? KVG_EV_COUNTED : 0;
    case 7: return c == '{' ? KVG_EV_COUNTED : 0;
    default: return 0;
    }
}

/* bytes p[0..n) in *st: the events they complete. */
static __always_inline __u32 bp_ev_scan(__u32 *st, const __u8 *p, __u32 n)
{
    __u32 s = *st, k = 0;

    for (__u32 i = 0; i < n; i++) {
        s = bp_ev_step(s, p[i]);
        if (s & KVG_EV_COUNTED) {
            k++;
            s = 0;
        }
    }
    *st = s;
    return k;
}

/* Where a segment [seq, seq + plen) starts to be scanned when next is
 * the first byte not scanned yet: the offset into its payload (plen:
 * nothing new, a retransmission); *gap is set when it starts past next
 * (the count goes on from its first byte, the pattern's state reset). */
static __always_inline __u32 bp_ev_from(__u32 next, __u32 seq, __u32 plen, int *gap)
{
    __s32 d = (__s32)(seq - next);

    *gap = d > 0;
    if (d > 0)
        return 0;
    if ((__s64)d + plen <= 0)
        return plen;
    return (__u32)-d;
}

#ifndef __bpf__
/* The worker's side: one segment's payload p[0..plen) at sequence seq,
 * in order with *next and *st (both updated). The events it completes;
 * *gaps + 1 when it started past *next. */
static inline __u32 bp_ev_feed(__u32 *next, __u32 *st, __u32 seq, const __u8 *p, __u32 plen,
                               __u64 *gaps)
{
    int gap;
    __u32 off = bp_ev_from(*next, seq, plen, &gap);

    if (gap) {
        ++*gaps;
        *st = 0;
    }
    if (off >= plen)
        return 0;
    *next = seq + plen;
    return bp_ev_scan(st, p + off, plen - off);
}
#endif

#ifdef __bpf__
/* The scan in XDP: the segment's payload is copied into the per-CPU
 * kvg_bp_scan buffer (bpf_xdp_load_bytes, up to KVG_HEAD_MAX bytes) and
 * read 8 bytes at a time; a word with no '\n' while no match is under way
 * (state 0) is skipped whole, so an SSE event of ~200 bytes costs ~25
 * steps and its two newlines. */
struct bp_ev_ctx {
    __u32 n;     /* bytes in the buffer */
    __u32 st;    /* the pattern's state */
    __u32 found; /* events completed */
};

static __always_inline int bp_ev_has_nl(__u64 w)
{
    __u64 x = w ^ 0x0a0a0a0a0a0a0a0aull; /* a zero byte where w has '\n' */

    return ((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull) != 0;
}

static long bp_ev_word(__u32 i, void *arg)
{
    struct bp_ev_ctx *c = arg;
    __u32 zero = 0;
    struct kvg_bp_scan *sc = bpf_map_lookup_elem(&kvg_bp_scan, &zero);

    if (!sc)
        return 1;
    __u32 at = i * 8;

    if (at >= c->n || at > KVG_HEAD_MAX - 8)
        return 1;
    __u32 m = c->n - at; /* bytes of this word that are the payload's */

    if (m > 8)
        m = 8;
    __u64 w;

    __builtin_memcpy(&w, &sc->b[at], 8);
    if (c->st == 0 && m == 8 && !bp_ev_has_nl(w))
        return 0;
    for (__u32 j = 0; j < 8; j++) { /* w's bytes in memory order: little-endian hosts */
        if (j >= m)
            break;
        __u32 s = bp_ev_step(c->st, (__u8)(w >> (8 * j)));

        if (s & KVG_EV_COUNTED) {
            c->found++;
            s = 0;
        }
        c->st = s;
    }
    return 0;
}

static __always_inline void bp_ev_stat(__u32 reason, __u32 n)
{
    struct kvg_bp_stat *st = bpf_map_lookup_elem(&kvg_bp_stats, &reason);

    if (st)
        st->packets += n;
}

/* Scans payload bytes [off, off + n) of the frame (n <= KVG_HEAD_MAX) in
 * *st: the events they complete, or -1 when they could not be read.
 * Global: the verifier checks it once. */
__noinline int bp_ev_segment(struct xdp_md *ctx, __u32 off, __u32 n, __u32 st_in)
{
    __u32 zero = 0;
    struct kvg_bp_scan *sc = bpf_map_lookup_elem(&kvg_bp_scan, &zero);

    if (!sc || !ctx || n < 1 || n > KVG_HEAD_MAX)
        return -1;
    if (bpf_xdp_load_bytes(ctx, off, sc->b, n) < 0)
        return -1;
    struct bp_ev_ctx c = {.n = n, .st = st_in & 7, .found = 0};

    bpf_loop((n + 7) / 8, bp_ev_word, &c, 0);
    return (int)(c.found << 3 | (c.st & 7));
}

/* One pod -> client segment of f: seq (host order) and plen payload bytes
 * at frame offset poff. */
static __always_inline void bp_events_count(struct xdp_md *ctx, struct kvg_bp_flow *f,
                                            __u32 seq, __u32 poff, __u32 plen)
{
    if (f->rq_state != KVG_BP_RQ_EVENTS || !plen || plen > 0xffff)
        return;
    int gap;
    __u32 off = bp_ev_from(f->rq_seq, seq, plen, &gap), st = f->an_match;

    if (gap) { /* count on from here */
        bp_ev_stat(KVG_BP_EV_GAP, 1);
        st = 0;
    }
    if (off >= plen)
        return; /* a retransmission: scanned already */
    /* a segment larger than the buffer (jumbo frames) is scanned up to it;
     * the pattern's state starts again after it */
    __u32 n = plen - off;

    if (n > KVG_HEAD_MAX)
        n = KVG_HEAD_MAX;
    int r = bp_ev_segment(ctx, poff + off, n, st);

    if (r < 0)
        return;
    __u32 k = (__u32)r >> 3;

    f->an_match = n == plen - off ? (__u16)(r & 7) : 0;
    f->rq_seq = seq + plen;
    __u64 t0 = f->an_wait_ns;

    if (k) {
        __sync_fetch_and_add(&f->events, k);
        bp_ev_stat(KVG_BP_EVENT, k);
        /* the first event of the answer a request waits for (bp_frame.h
         * marked it): its time to first token, taken once */
        __u64 now = bpf_ktime_get_ns(), at = t0 & ~KVG_BP_TTFT_BITS;

        if (t0 && now > at && __sync_val_compare_and_swap(&f->an_wait_ns, t0, 0) == t0) {
            __sync_fetch_and_add(&f->ttft_sum_us, (now - at) / 1000);
            __sync_fetch_and_add(&f->ttft_n, 1);
        }
    } else if (t0 && !(t0 & KVG_BP_TTFT_BEGAN)) {
        /* answer bytes with no event yet (its head; or a whole answer that
         * is not a stream): the next request's head may replace the mark */
        __sync_val_compare_and_swap(&f->an_wait_ns, t0, t0 | KVG_BP_TTFT_BEGAN);
    }
}
#endif

#endif
