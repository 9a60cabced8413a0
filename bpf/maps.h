/* maps.h: every BPF map kvgate's kernel programs use, in one place.
 *
 * BTF-style definitions (libbpf), types from kvgate.h, sizes from the
 * overridable macros there. Included by each bpf/<name>.bpf.c; libbpf creates
 * every map an object defines, used or not, so each object gets all of
 * them, and objects share one map through its pin (the sockmap splice will
 * include this file too and see the XDP guard's pod table).
 *
 * Pinning: kvgated pins every map at <pin dir>/maps/<name> and reuses a
 * compatible pin; `bpftool prog loadall ... pinmaps <dir>/maps` makes the
 * same layout (see scripts/bpf-load.sh). */
#ifndef KVGATE_BPF_MAPS_H
#define KVGATE_BPF_MAPS_H

#include "kvgate.h"

/* kvg_pods: the live pod table.
 *   key   __u32 pod slot (< KVG_POD_MAX, the slot of struct pod_info)
 *   value struct kvg_pod (flags, address, scraped load, in-flight, metrics age)
 *   writer: kvgated's control thread after each snapshot publish
 *           (user/gateway/bpf.c gwbpf_update_pods): every slot, removed
 *           pods zeroed; zeroed again when kvgated stops
 *   reader: the sockmap splice (stops splicing to a pod that is not
 *           healthy), the future bypass steering; operators with bpftool */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, KVG_POD_MAX);
    __type(key, __u32);
    __type(value, struct kvg_pod);
} kvg_pods SEC(".maps");

/* kvg_xdp_stats: what the XDP guard did, by reason.
 *   key   __u32 enum kvg_xdp_reason
 *   value struct kvg_xdp_stat (packets, bytes), one per CPU
 *   writer: xdp_guard (and programs it tail-calls), every exit
 *   reader: kvgated /metrics (gwbpf_xdp_stats sums the CPUs), tests, bpftool */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, KVG_XDP_STATS_MAX);
    __type(key, __u32);
    __type(value, struct kvg_xdp_stat);
} kvg_xdp_stats SEC(".maps");

/* kvg_xdp_cfg: the guard's limits, read on every packet.
 *   key   __u32 0
 *   value struct kvg_xdp_cfg (version 0: the program's compiled defaults)
 *   writer: an operator (scripts/bpf-config.sh, bpftool map update), tests
 *   reader: xdp_guard */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kvg_xdp_cfg);
} kvg_xdp_cfg SEC(".maps");

/* kvg_syn_bkt: one token bucket per source (prefix) that sent a SYN.
 *   key   struct kvg_src (masked source address)
 *   value struct kvg_bucket (GCRA arrival time, drops)
 *   writer: xdp_guard (creates on a source's first SYN; LRU evicts the
 *           least recently seen when full, which resets that source's
 *           bucket to full: fail open under a spoofed-source flood, where
 *           SYN cookies are the defence)
 *   reader: xdp_guard; operators (who is being limited) */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, KVG_SYN_BUCKETS_MAX);
    __type(key, struct kvg_src);
    __type(value, struct kvg_bucket);
} kvg_syn_bkt SEC(".maps");

/* kvg_xdp_progs: tail-call targets of the guard.
 *   key   __u32 enum kvg_xdp_prog_slot (slot 0: bypass steering, reserved)
 *   value XDP program fd (user space) / program (kernel)
 *   writer: the loader of a steering program (none yet); tests
 *   reader: xdp_guard, for TCP to kvg_xdp_cfg.gw_port that it passes */
struct {
    __uint(type, BPF_MAP_TYPE_PROG_ARRAY);
    __uint(max_entries, KVG_XDP_PROG_SLOTS);
    __type(key, __u32);
    __type(value, __u32);
} kvg_xdp_progs SEC(".maps");

#endif
