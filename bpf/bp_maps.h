/* bp_maps.h: the bypass path's maps (issue 12), apart from maps.h so that
 * only the programs that forward flows create the flow table (every object
 * that includes a map header creates its maps when loaded).
 * Include after kvgate.h, maps.h (bp_forward reads kvg_pods) and
 * splice_scan.h (the request framing's state). */
#ifndef KVGATE_BPF_BP_MAPS_H
#define KVGATE_BPF_BP_MAPS_H

/* kvg_bp_flows: established flows XDP forwards, one entry per direction.
 *   key   struct kvg_bp_key (the packet's addresses and ports as received)
 *   value struct kvg_bp_flow (what it leaves with, deltas, pod, counters)
 *   writer: the DPDK workers (whole entries: insert at hand-off, delete at
 *           the end); bp_forward (flags and counters only, atomically)
 *   reader: bp_forward, every packet; operators (bpftool map dump) */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, KVG_BP_FLOWS_MAX);
    __type(key, struct kvg_bp_key);
    __type(value, struct kvg_bp_flow);
} kvg_bp_flows SEC(".maps");

/* kvg_bp_stats: what bp_forward did, by reason (enum kvg_bp_reason).
 *   value struct kvg_bp_stat (packets, bytes), one per CPU
 *   writer: bp_forward; reader: kvgated /metrics, tests, bpftool */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, KVG_BP_STATS_MAX);
    __type(key, __u32);
    __type(value, struct kvg_bp_stat);
} kvg_bp_stats SEC(".maps");

/* kvg_bp_scan: per-CPU scratch of the request framing (bp_frame.h): the
 * bytes of a head copied out of the frame (bpf_xdp_load_bytes) and the
 * head parser's state (splice_req.h), kept in a map rather than on the
 * stack so that the bpf_loop callback converges (as kvg_head_buf does for
 * the splice verdict). XDP runs in NAPI with bottom halves off: one run
 * per CPU at a time. Never pinned.
 *   key   __u32 0
 *   writer, reader: bp_forward / bp_entry only */
struct kvg_bp_scan {
    struct kvg_head_scan h;
    __u8 b[KVG_HEAD_MAX];
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kvg_bp_scan);
} kvg_bp_scan SEC(".maps");

#endif
