/* gateway/bpf: kvgated's side of the kernel fast path (issue 5).
 *
 * Loads bpf/xdp_guard.bpf.c through its generated skeleton (or opens what
 * an operator loaded with bpftool), keeps the BPF pod table (kvg_pods) in
 * step with the pod snapshots the control thread publishes, attaches the
 * XDP guard to an interface on request, and reads the guard's per-reason
 * counters for /metrics. The map layouts are bpf/kvgate.h.
 *
 * Pins (the same layout bpftool makes, scripts/bpf-load.sh):
 *   <dir>/xdp_guard          the XDP program
 *   <dir>/maps/<map name>    every map (kvg_pods, kvg_xdp_stats, ...)
 * Loading reuses compatible pinned maps (so token buckets, limits an
 * operator set, and tail-call slots survive a restart) and re-pins the
 * program. An exclusive flock on <dir> keeps a second kvgated on the same
 * node off the table. Pins outlive kvgated; scripts/bpf-unload.sh removes
 * them. On close the pod table is zeroed (nobody keeps it fresh any more)
 * and an XDP attachment made by kvgated is removed.
 *
 * Threads: gwbpf_open / gwbpf_close on the main thread, before the control
 * thread starts and after it stopped; everything else on the control thread
 * (the admin API and /metrics run there too). Functions return 0 or -errno;
 * gwbpf_open and gwbpf_xdp_attach also write one sentence into `why`. */
#ifndef KVGATE_GATEWAY_BPF_H
#define KVGATE_GATEWAY_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "kvgate.h" /* bpf/kvgate.h: struct kvg_xdp_stat, KVG_XDP_REASON_MAX */

struct gwbpf;
struct gw;
struct pod_snapshot;
struct pod_counters;
struct policy_cfg;

struct gwbpf_opts {
    /* Load mode: pin under this directory (KVG_PIN_DIR_DEFAULT, on bpffs);
     * NULL or "": load without pins (tests). */
    const char *pin_dir;
    /* Pinned mode: open <pinned_dir>/maps/... and <pinned_dir>/xdp_guard as
     * an operator loaded them (`bpftool prog loadall`); nothing is loaded.
     * Overrides pin_dir. */
    const char *pinned_dir;
    /* The gateway's client port (host order): the guard's compiled default
     * for kvg_xdp_cfg.gw_port (the steering tail call). 0: none. */
    uint16_t gw_port;
    /* Do not load or attach the splice verdict (--no-splice). */
    int no_splice;
};

enum gwbpf_xdp_mode {
    GWBPF_XDP_AUTO,     /* native (driver), else generic */
    GWBPF_XDP_NATIVE,
    GWBPF_XDP_GENERIC,
};

/* 0 and *out, or -errno with `why` ("not running as root", "no bpffs at
 * /sys/fs/bpf", "pinned map ... does not match this build", ...). */
int gwbpf_open(const struct gwbpf_opts *o, struct gwbpf **out, char *why, size_t whylen);
void gwbpf_close(struct gwbpf *b);

/* Writes every slot of kvg_pods from the snapshot: pods present, the rest
 * zeroed (removed pods). Only slots whose content changed are written, in
 * one batch. Saturation and freshness use pol (queue_sat, kv_sat,
 * stale_ms) at now_ns (CLOCK_MONOTONIC). */
int gwbpf_update_pods(struct gwbpf *b, const struct pod_snapshot *s,
                      const struct pod_counters *c, uint64_t now_ns,
                      const struct policy_cfg *pol);
/* Zeroes every slot. */
int gwbpf_clear_pods(struct gwbpf *b);

/* Attaches the guard to ifname (replacing an earlier xdp_guard there, never
 * another program). One interface per handle; detach undoes it. */
int gwbpf_xdp_attach(struct gwbpf *b, const char *ifname, enum gwbpf_xdp_mode mode,
                     char *why, size_t whylen);
int gwbpf_xdp_detach(struct gwbpf *b);
/* "native" / "generic" while attached, else NULL. */
const char *gwbpf_xdp_mode_name(const struct gwbpf *b);

/* The guard's counters summed over CPUs: out[r] for reason r < n (at most
 * KVG_XDP_REASON_MAX are meaningful). 0 or -errno. */
int gwbpf_xdp_stats(struct gwbpf *b, struct kvg_xdp_stat *out, unsigned n);
/* "pass_tcp", "drop_syn_ratelimit", ... (label values); NULL past the end. */
const char *gwbpf_xdp_reason_name(unsigned reason);

/* The splice verdict's counters summed over CPUs, as gwbpf_xdp_stats. */
int gwbpf_splice_stats(struct gwbpf *b, struct kvg_spl_stat *out, unsigned n);
/* "c2p", "budget", ... (label values); NULL past the end. */
const char *gwbpf_splice_reason_name(unsigned reason);
/* 1 when the splice verdict is attached to kvg_sock (the sockmap splice
 * can run); else 0 and *why (a phrase) says why not. The XDP guard and the
 * pod table work either way: the splice is optional. */
int gwbpf_splice_ok(const struct gwbpf *b, const char **why);

/* Map fds for tests and tools (-1 when absent). */
int gwbpf_map_fd(const struct gwbpf *b, const char *map_name);
int gwbpf_prog_fd(const struct gwbpf *b);

/* ---- the process-wide handle (kvgated has at most one) ---- */

/* main.c sets it after gwbpf_open, clears it (NULL) before gwbpf_close. */
void gwbpf_set_global(struct gwbpf *b);
struct gwbpf *gwbpf_global(void);
/* 1 when kvgated runs with the fast path (for kvgate_bpf_enabled in /metrics). */
int kvgate_bpf_enabled(void);
/* The control thread, after each snapshot publish: gwbpf_update_pods on the
 * global handle with g's counters and global policy (per-model overrides
 * do not apply to the map). No-op without one; a write error goes to
 * stderr when it differs from the previous call's outcome. */
void gwbpf_publish(struct gw *g, const struct pod_snapshot *s, uint64_t now_ns);
/* The global handle's counters, as gwbpf_xdp_stats; -ENODEV without one. */
int kvgate_bpf_xdp_stats(struct kvg_xdp_stat *out, unsigned n);
/* The global handle's splice counters; -ENODEV without one or without the splice. */
int kvgate_bpf_splice_stats(struct kvg_spl_stat *out, unsigned n);

#endif
