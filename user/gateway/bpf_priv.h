/* bpf_priv: the BPF handle, shared by gateway/bpf's two halves:
 *
 *   bpf.c       loading (skeleton) or opening (an operator's pins), pins
 *               and their lock, the splice verdict, the XDP attachment,
 *               the per-reason counters and their /metrics render
 *   bpf_pods.c  the pod table mirror: kvg_pods written from each pod
 *               snapshot, a pod judged as the policy judges it
 *   bpf_guard.c the XDP guard kept on its interface while a bypass worker
 *               comes and goes
 *
 * Not for anyone else: the rest of kvgated uses bpf.h. */
#ifndef KVGATE_GATEWAY_BPF_PRIV_H
#define KVGATE_GATEWAY_BPF_PRIV_H

#include <limits.h>
#include <stdint.h>

#include "gateway/bpf.h"
#include "kvgate.h"

struct xdp_guard_bpf;
struct splice_bpf;

/* The maps kvgated uses, as bpf/maps.h declares them (bpf.c's MAPS[]
 * checks them against a pin before reuse and when opening an operator's
 * pins). */
enum { M_PODS, M_STATS, M_CFG, M_BUCKETS, M_PROGS,
       M_SOCK, M_FLOW_CFG, M_FLOW_ST, M_SPL_STATS, M_POD_LOAD, M__COUNT };
#define M_SPLICE_FIRST M_SOCK /* the splice's maps: optional under --bpf-pinned */

/* What kvg_pods holds (valid once written, shadow_ok) and the next write. */
struct gwbpf_podmap {
    int shadow_ok;
    struct kvg_pod shadow[KVG_POD_MAX];
    struct kvg_pod want[KVG_POD_MAX];
    uint32_t keys[KVG_POD_MAX];
    struct kvg_pod vals[KVG_POD_MAX];
};

/* bpf_guard.c's keeper: what it wants and saw at its last look. */
struct gwbpf_guardkeep {
    int wanted;                  /* gwbpf_guard_keep called */
    char ifname[16];             /* IF_NAMESIZE */
    enum gwbpf_xdp_mode mode;
    enum gwbpf_guard_state state;
    int empty_looks, quiet_looks, said;
    uint32_t entry_id;           /* the orphaned entry program */
    int64_t entry_pkts;          /* its flows' packets at the last look */
    uint64_t orphan_since_ns;
    uint64_t reattached;
};

struct gwbpf {
    struct xdp_guard_bpf *skel;  /* load mode; NULL when opened from pins */
    struct splice_bpf *sskel;    /* load mode, when the splice loaded */
    int splice_ok;               /* kvg_sock has the verdict attached */
    char splice_why[PATH_MAX + 128]; /* why not, when !splice_ok */
    int own_splice_prog_fd;      /* pinned mode: ours to close */
    int fd[M__COUNT];
    int prog_fd;                 /* -1: none (pinned mode without the program) */
    int own_prog_fd;             /* pinned mode: ours to close */
    int lock_fd;                 /* flock on the pin directory, -1 none */
    int ncpus;
    struct kvg_xdp_stat *percpu; /* ncpus values, lookup scratch */
    int xdp_ifindex;             /* 0: not attached by us */
    uint32_t xdp_flags;
    struct gwbpf_podmap pods;    /* bpf_pods.c */
    struct gwbpf_guardkeep gk;   /* bpf_guard.c */
    struct kvg_pod_load *pod_load; /* kvg_pod_load mmapped read-only; NULL: none */
    size_t pod_load_len;
};

#endif
