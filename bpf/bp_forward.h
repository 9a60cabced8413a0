/* bp_forward.h: the bypass path's per-packet forwarding (issue 12), shared
 * by bp_forward (bpf/bypass.bpf.c: behind the XDP guard) and bp_entry
 * (bpf/bp_entry.bpf.c: the program DPDK's af_xdp driver attaches, which
 * sends misses to the worker). Include after kvgate.h, maps.h, bp_maps.h,
 * bp_rewrite.h (with KVG_BP_CSUM_DIFF defined), bp_frame.h (with its
 * own includes) and bp_events.h.
 *
 *   Ethernet (no VLAN tag) -> IPv4 (options skipped) -> TCP
 *     entry in kvg_bp_flows for (saddr, daddr, sport, dport)?
 *       no                          -> BP_MISS (the caller decides: pass, or the worker)
 *       action pass                 -> XDP_PASS (handed up)
 *       action worker, or held      -> BP_WORKER (the worker took it back)
 *       its pod down, unhealthy or gone
 *                                   -> BP_WORKER (the worker resets both sides)
 *       a request's first segment (framed flow) while its pod is draining
 *       or saturated, and a worker to take it (BP_WORKER_THERE)
 *                                   -> held, BP_WORKER (the worker hands the
 *                                      connection up to kvgated from that
 *                                      request on: dpdk/boundary.h)
 *       else rewrite, count, FIN / RST noted in the entry, request heads
 *       framed and counted (client -> pod, bp_frame.h), answer events
 *       counted (pod -> client, bp_events.h) -> XDP_TX
 *   anything else (not IPv4 TCP, malformed, fragments) -> XDP_PASS
 *
 * Every exit is counted under its reason in kvg_bp_stats. */
#ifndef KVGATE_BPF_BP_FORWARD_H
#define KVGATE_BPF_BP_FORWARD_H

#define BP_MISS (-1)
/* The frame, untouched, is the worker's: bp_entry redirects it to the
 * worker's AF_XDP socket; bp_forward (no worker behind it) passes it. */
#define BP_WORKER (-2)
/* Whether the worker has a socket on receive queue qid (bp_entry: its
 * xsks_map); a flow is held at a request boundary only then, since a held
 * segment nobody takes would be lost for good. bp_forward has no worker. */
#ifndef BP_WORKER_THERE
#define BP_WORKER_THERE(qid) 0
#endif
#define ETH_P_IP 0x0800
#define IPPROTO_TCP_ 6

static __always_inline int done(__u64 bytes, __u32 reason, int verdict)
{
    struct kvg_bp_stat *st = bpf_map_lookup_elem(&kvg_bp_stats, &reason);

    if (st) { /* per-CPU: no atomics */
        st->packets++;
        st->bytes += bytes;
    }
    return verdict;
}

/* Is the pod the entry forwards to still there, healthy and not down?
 * (kvgated's pod table: a pod removed is zeroed; unhealthy after two
 * failed health checks in a row or one refused; down when its data path
 * saw it fail or it was ejected. Draining and saturated are judged per
 * request, not here: a flow already on the pod carries on.) */
static __always_inline int pod_ok(__u32 slot)
{
    if (slot >= KVG_POD_MAX)
        return 1; /* no pod to check (a test, or a flow without one) */
    struct kvg_pod *p = bpf_map_lookup_elem(&kvg_pods, &slot);

    return p && (p->flags & (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY | KVG_POD_F_DOWN)) ==
                    (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY);
}

/* Should a request starting now leave the pod? Draining (admin), or
 * saturated by its own fresh report (its queue or KV cache past the
 * policy's bars: KVG_POD_F_SATURATED_OWN), as kvgated's table says. Not
 * kvgated's SATURATED: that one also counts kvgated's in-flight requests,
 * and a spliced keep-alive connection stays in flight there while it
 * idles between requests, so a pod holding many idle sessions would look
 * saturated; nor saturated only because a scrape is late, which says
 * nothing about the pod. A connection that leaves is kvgated's for the
 * rest of its life; a pod that stopped answering is caught per packet
 * (unhealthy, down). */
static __always_inline int pod_busy(__u32 slot)
{
    if (slot >= KVG_POD_MAX)
        return 0;
    struct kvg_pod *p = bpf_map_lookup_elem(&kvg_pods, &slot);

    return p && (p->flags & (KVG_POD_F_DRAINING | KVG_POD_F_SATURATED_OWN));
}

/* The verdict for the packet data[0..end) of ctx, or BP_MISS, or BP_WORKER. The caller reads
 * ctx->data and ctx->data_end once and passes them (the verifier refuses
 * a context pointer the compiler has moved, which a second read in the
 * caller after this inlined body can become); ctx itself only serves the
 * request framing's bpf_xdp_load_bytes, after every packet access. */
static __always_inline int bp_forward_frame(struct xdp_md *ctx, __u8 *data, __u8 *end,
                                            __u32 qid)
{
    __u64 len = end - data;
    struct kvg_bp_key key = {.family = KVG_AF_INET};

    if (data + 14 > end)
        return done(len, KVG_BP_MALFORMED, XDP_PASS);
    if ((__u16)(data[12] << 8 | data[13]) != ETH_P_IP)
        return done(len, KVG_BP_NOT_IPV4_TCP, XDP_PASS);
    __u8 *ip = data + 14;

    if (ip + 20 > end)
        return done(len, KVG_BP_MALFORMED, XDP_PASS);
    if (ip[9] != IPPROTO_TCP_)
        return done(len, KVG_BP_NOT_IPV4_TCP, XDP_PASS);
    __u32 ihl = (ip[0] & 15) * 4;

    if ((ip[0] >> 4) != 4 || ihl < 20 || (ip[6] & 0x3f) || ip[7])
        return done(len, KVG_BP_MALFORMED, XDP_PASS); /* fragments too */
    __u8 *tcp = ip + ihl;

    if (tcp + 20 > end)
        return done(len, KVG_BP_MALFORMED, XDP_PASS);
    __builtin_memcpy(&key.saddr, ip + 12, 8);
    __builtin_memcpy(&key.sport, tcp, 4);

    struct kvg_bp_flow *f = bpf_map_lookup_elem(&kvg_bp_flows, &key);

    if (!f) {
        done(len, KVG_BP_MISS, XDP_PASS);
        return BP_MISS;
    }
    if (f->action == KVG_BP_ACT_WORKER || (f->flags & KVG_BP_F_HELD))
        return done(len, KVG_BP_TO_WORKER, BP_WORKER);
    if (f->action != KVG_BP_ACT_REWRITE)
        return done(len, KVG_BP_HANDED_UP, XDP_PASS);
    if (!pod_ok(f->pod_slot))
        return done(len, KVG_BP_POD_DOWN, BP_WORKER);

    /* the segment as received, for the request framing: its sequence
     * number and payload (IP total length: a frame may carry padding) */
    __u32 seq = 0, poff = 0, plen = 0;

    if (f->rq_state == KVG_BP_RQ_ON || f->rq_state == KVG_BP_RQ_EVENTS) {
        __u32 tot = (__u32)ip[2] << 8 | ip[3], doff = (tcp[12] >> 4) * 4;

        __builtin_memcpy(&seq, tcp + 4, 4);
        seq = bpf_ntohl(seq);
        poff = 14 + ihl + doff;
        if (doff >= 20 && tot >= ihl + doff && 14 + tot <= len)
            plen = tot - ihl - doff;
        /* the next request's first byte, its pod no longer one to send a
         * request to: the worker takes the connection from here */
        if (plen && f->rq_state == KVG_BP_RQ_ON && seq == f->rq_seq && !f->rq_body_left &&
            pod_busy(f->pod_slot) && BP_WORKER_THERE(qid)) {
            __sync_fetch_and_or(&f->flags, KVG_BP_F_HELD);
            return done(len, KVG_BP_BOUNDARY, BP_WORKER);
        }
    }

    struct kvg_bp_flow fl;

    __builtin_memcpy(&fl, f, sizeof(fl)); /* one consistent copy */
    __u8 flags = kvg_bp_rewrite(data, ip, tcp, &fl);

    if (flags & (KVG_TCP_FIN | KVG_TCP_RST))
        __sync_fetch_and_or(&f->flags, flags & KVG_TCP_RST ? KVG_BP_F_RST : KVG_BP_F_FIN);
    __sync_fetch_and_add(&f->packets, 1);
    __sync_fetch_and_add(&f->bytes, len);
    if (plen) { /* after the last packet access: both call helpers */
        if (f->rq_state == KVG_BP_RQ_EVENTS)
            bp_events_count(ctx, f, seq, poff, plen);
        else
            bp_frame_requests(ctx, f, seq, poff, plen);
    }
    return done(len, KVG_BP_FORWARDED, XDP_TX);
}

#endif
