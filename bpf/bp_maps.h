/* bp_maps.h: the bypass path's maps (issue 12), apart from maps.h so that
 * only the programs that forward flows create the flow table (every object
 * that includes a map header creates its maps when loaded).
 * Include after kvgate.h and maps.h (bp_forward reads kvg_pods). */
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

#endif
