/* maps.h: every BPF map kvgate's kernel programs use, in one place.
 *
 * BTF-style definitions (libbpf), types from kvgate.h, sizes from the
 * overridable macros there. Included by each bpf/<name>.bpf.c; libbpf creates
 * every map an object defines, used or not, so each object gets all of
 * them, and objects share one map through its pin (splice.bpf.c sees the
 * pod table the XDP guard's object created, through kvgated's reuse of the
 * pin, or through the fd it hands over before loading).
 *
 * Pinning: kvgated pins every map at <pin dir>/maps/<name> and reuses a
 * compatible pin; `bpftool prog loadall ... pinmaps <dir>/maps` makes the
 * same layout (see scripts/bpf-load.sh). */
#ifndef KVGATE_BPF_MAPS_H
#define KVGATE_BPF_MAPS_H

#include "kvgate.h"
#include "splice_scan.h"

/* kvg_pods: the live pod table.
 *   key   __u32 pod slot (< KVG_POD_MAX, the slot of struct pod_info)
 *   value struct kvg_pod (flags, address, scraped load, in-flight, metrics age)
 *   writer: kvgated's control thread after each snapshot publish
 *           (user/gateway/bpf.c gwbpf_update_pods): every slot, removed
 *           pods zeroed; zeroed again when kvgated stops
 *   reader: splice_verdict (hands a request up when its pod is not fit),
 *           the future bypass steering; operators with bpftool */
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

/* kvg_sock: the sockets of spliced flows (client and dedicated pod
 * connection), with splice_verdict attached as their stream verdict.
 *   key   __u64 socket cookie (SO_COOKIE)
 *   value socket (fd from user space)
 *   writer: kvgated's workers (user/gateway/splice.c): a client socket on its
 *           first eligible exchange, a pod socket when the flow is spliced;
 *           the kernel removes a socket when it closes
 *   reader: splice_verdict (bpf_sk_redirect_hash, peer lookups) */
struct {
    __uint(type, BPF_MAP_TYPE_SOCKHASH);
    __uint(max_entries, KVG_FLOWS_MAX);
    __type(key, __u64);
    __type(value, __u64);
} kvg_sock SEC(".maps");

/* kvg_flow_cfg: what kvgated asks of each socket in kvg_sock.
 *   key   __u64 socket cookie
 *   value struct kvg_flow_cfg (peer, direction, mode, budget, epoch)
 *   writer: kvgated's workers only; deleted when the connection closes
 *   reader: splice_verdict, every skb; operators */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, KVG_FLOWS_MAX);
    __type(key, __u64);
    __type(value, struct kvg_flow_cfg);
} kvg_flow_cfg SEC(".maps");

/* kvg_flow_st: what the verdict did with each socket's bytes.
 *   key   __u64 socket cookie
 *   value struct kvg_flow_st (state, hand-up cause, framing, byte counters)
 *   writer: splice_verdict only (kvgated creates the entry zeroed before the
 *           socket enters kvg_sock, and deletes it when the connection closes)
 *   reader: kvgated (hand-ups, request / answer counts, half-close
 *           accounting); operators */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, KVG_FLOWS_MAX);
    __type(key, __u64);
    __type(value, struct kvg_flow_st);
} kvg_flow_st SEC(".maps");

/* kvg_spl_stats: what the splice verdict did, by reason.
 *   key   __u32 enum kvg_spl_reason
 *   value struct kvg_spl_stat (skbs, bytes), one per CPU
 *   writer: splice_verdict, every skb
 *   reader: kvgated /metrics (spliced bytes by direction), tests, bpftool */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, KVG_SPLICE_STATS_MAX);
    __type(key, __u32);
    __type(value, struct kvg_spl_stat);
} kvg_spl_stats SEC(".maps");

/* kvg_pod_load: requests the kernel sent each pod itself, and their answers.
 *   key   __u32 pod slot (as kvg_pods)
 *   value struct kvg_pod_load (sent, done, body bytes)
 *   writer: splice_verdict (client side: each request head it forwards;
 *           pod side: each answer it frames complete); atomic adds
 *   reader: kvgated, mmapped, on every routing decision (the pod's
 *           in-flight count: user/core/podtable.h pod_inflight) and in
 *           /metrics and /admin/pods; operators */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, KVG_POD_MAX);
    __type(key, __u32);
    __type(value, struct kvg_pod_load);
} kvg_pod_load SEC(".maps");

/* kvg_head_buf: per-CPU scratch of the splice verdict: the bytes it
 * parses (bpf_skb_load_bytes copies them here: the stack is too small) and
 * the parsers' working state, kept here rather than on the stack so that
 * the verifier reads it back as unknown values in each bpf_loop iteration
 * and the callbacks converge (state on the stack is tracked exactly, and a
 * new value per byte makes it walk every iteration: over a million insns).
 * Per-CPU is not exclusive here: see `owner`.
 *   key   __u32 0
 *   value struct kvg_head_buf (parser state, splice_scan.h, + KVG_HEAD_MAX bytes)
 *   writer, reader: splice_verdict only */
struct kvg_head_buf {
    __u64 owner;                /* cookie of the socket whose verdict run uses it now: the
                                 * verdict can run in process context (TCP's backlog in
                                 * release_sock), preemptible and with BHs on, so another
                                 * run on this CPU may take the scratch over; a run checks
                                 * it still owns it before trusting what it parsed */
    struct kvg_head_scan h;
    struct kvg_ans_scan a;
    __u8 b[KVG_HEAD_MAX];
};
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kvg_head_buf);
} kvg_head_buf SEC(".maps");

#endif
