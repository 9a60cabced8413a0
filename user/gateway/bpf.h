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
 * (the admin API and /metrics run there too). main.c keeps the handle in
 * struct gw (g->bpf, NULL without the fast path). Functions return 0 or
 * -errno; gwbpf_open and gwbpf_xdp_attach also write one sentence into
 * `why`.
 *
 *   bpf.c       loading or opening, pins, attachment, counters, /metrics
 *   bpf_pods.c  the pod table mirror (bpf_priv.h: what they share) */
#ifndef KVGATE_GATEWAY_BPF_H
#define KVGATE_GATEWAY_BPF_H

#include <stddef.h>
#include <stdint.h>

#include "kvgate.h" /* bpf/kvgate.h: struct kvg_xdp_stat, KVG_XDP_REASON_MAX */

struct gwbpf;
struct pod_snapshot;
struct pod_counters;
struct policy_cfg;
struct sbuf;

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

/* bpf_pods.c: writes every slot of kvg_pods from the snapshot: pods
 * present, the rest zeroed (removed pods). Only slots whose content
 * changed are written, in one batch. Freshness and saturation are
 * core/policy.h's pod_fitness under pol at now_ns (CLOCK_MONOTONIC) with
 * c's in-flight counts, as the policy judges a session's own pod (the
 * only flows the splice carries). */
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
/* For the guard's keeper (guardkeep.h), on the control thread: puts the
 * guard on ifindex in mode_flags (XDP_FLAGS_DRV_MODE / SKB_MODE) in place
 * of the program old_fd names, in one step (XDP_FLAGS_REPLACE), or, with
 * old_fd -1, where nothing is attached; then it is ours to detach. 0 or
 * -errno (-EALREADY: attached by us already). */
int gwbpf_xdp_take(struct gwbpf *b, int ifindex, int old_fd, uint32_t mode_flags);
/* Another program holds the hook now (the bypass worker detached the
 * guard): nothing of ours to detach any more. */
void gwbpf_xdp_forget(struct gwbpf *b);
/* The interface the guard is attached to by us, 0 none. */
int gwbpf_xdp_ifindex(const struct gwbpf *b);
/* bpf_guard.c: keeps the guard on ifname while a bypass worker comes and
 * goes (its entry program holds the hook while it runs, with the guard
 * chained behind it; the guard is attached again when the worker stops,
 * at once after a clean exit, once the entry's flows are quiet after a
 * kill). gwbpf_guard_keep on the main thread before the control thread
 * starts; gwbpf_guard_tick on the control thread, once a second. */
enum gwbpf_guard_state {
    GWBPF_GUARD_OFF,          /* not kept (no --xdp-iface), or not looked yet */
    GWBPF_GUARD_ATTACHED,     /* ours on the interface */
    GWBPF_GUARD_BEHIND_ENTRY, /* a bypass worker's entry holds the hook */
    GWBPF_GUARD_ORPHANED,     /* a gone worker's entry, its flows draining */
    GWBPF_GUARD_FOREIGN,      /* another program: left alone */
};
int gwbpf_guard_keep(struct gwbpf *b, const char *ifname, enum gwbpf_xdp_mode mode);
void gwbpf_guard_tick(struct gwbpf *b, uint64_t now_ns);
/* "off", "attached", "behind_entry", "orphaned_entry", "foreign". */
const char *gwbpf_guard_state_name(const struct gwbpf *b);
/* Times the keeper put the guard back. */
uint64_t gwbpf_guard_reattached(const struct gwbpf *b);

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
/* kvg_pod_load as read-only memory (what the kernel sent each pod slot
 * itself), NULL when there is none (no BPF, or an operator's older pins). */
const struct kvg_pod_load *gwbpf_pod_load(const struct gwbpf *b);

/* /metrics: kvgate_bpf_enabled (0 when b is NULL), and the XDP guard's
 * kvgate_xdp_packets_total{reason} / kvgate_xdp_bytes_total{reason}. */
void gwbpf_metrics_render(struct gwbpf *b, struct sbuf *out);

#endif
