/* entry: kvg-bypassd's hold on bp_entry (bpf/bp_entry.bpf.c), the XDP
 * program DPDK's af_xdp driver loads from --xdp-obj and attaches to the
 * interface (issue 12, ../shared/BYPASS.md).
 *
 * After the driver attached it: its kvg_bpe_cfg gets the bypass port and
 * the worker's source-port range, and its kvg_bp_flows is where hand-offs
 * go. Then kvgated's pod table: the driver loads the object with libbpf's
 * defaults, so the program it attached reads a kvg_pods of its own, all
 * zero. When kvgated pinned its table (load mode pins every map under
 * KVG_PIN_DIR_DEFAULT, bpf/README.md; the XDP guard need not be attached),
 * a second instance of the same object is loaded here with every map
 * shared (bpf_map__reuse_fd): kvg_pods from kvgated's pin, the rest
 * (xsks_map with the driver's sockets in it, kvg_bpe_cfg, kvg_bp_flows,
 * kvg_bp_stats) from the driver's instance, and swapped onto the interface
 * in one step (XDP_FLAGS_REPLACE naming the driver's program, the same
 * attach mode). The driver's own close detaches whatever is attached then,
 * so the worker's exit is as before. Without the pin, or when any step
 * fails, the driver's program stays and flows carry no pod slot (XDP does
 * not check their pod): one line says why.
 *
 * Why a swap rather than a tail call from the driver's program into ours:
 * one program per packet and no program array to manage, and the verdicts
 * are the same object's. kvgated's XDP guard is chained behind the entry
 * (BYPASS.md): its program from kvgated's pin goes into the entry's
 * kvg_bpe_next, which bp_entry tail-calls for every frame it leaves to the
 * kernel. */
#ifndef KVGATE_DPDK_ENTRY_H
#define KVGATE_DPDK_ENTRY_H

#include <stddef.h>
#include <stdint.h>

struct bpf_object;

#include "kvgate.h" /* struct kvg_bpe_cfg */

struct bpe {
    int flows_fd;           /* kvg_bp_flows (-1 none) */
    int cfg_fd;             /* kvg_bpe_cfg (-1 none) */
    struct kvg_bpe_cfg cfg; /* as last written */
    int pods_fd;            /* kvgated's kvg_pods, read by the attached program; -1: not shared */
    struct bpf_object *obj; /* our instance, once swapped in */
    char why[384];          /* pods_fd -1: why (one sentence) */
    int guard;              /* kvgated's guard chained (kvg_bpe_next) */
    char guard_why[384];    /* guard 0: why */
};

/* Finds the program the driver attached to ifname, configures it (port:
 * host order; lo-hi: the source ports towards pods, 0-0 none) and opens
 * its flow table; then shares kvgated's table pinned at pods_pin (NULL:
 * none), as above. 0 or -errno (-ENOENT: no program on ifname, or no
 * kvg_bpe_cfg / kvg_bp_flows in it); not sharing the table is not an
 * error (pods_fd -1, why says why). */
int bpe_open(struct bpe *e, const char *ifname, const char *obj_path, const char *pods_pin,
             const char *guard_pin, uint16_t port, uint16_t lo, uint16_t hi);

/* Before the driver attaches the entry: kvgated's XDP guard (program
 * KVG_PROG_XDP_GUARD) holding ifname's hook is detached, for the driver
 * attaches only where nothing is, and bpe_open chains the guard behind the
 * entry (guard_pin: kvgated's pin of it, NULL none) so that what goes to the
 * kernel is still guarded. kvgated attaches the guard again once the
 * worker is gone (user/gateway/guardkeep.h). 1 detached (msg says so), 0
 * nothing to do. Any other program is left alone (the driver then refuses
 * to start, and says so). */
int bpe_release_guard(const char *ifname, char *msg, size_t msglen);
void bpe_close(struct bpe *e);

/* The worker's heartbeat into kvg_bpe_cfg.alive_ns (now_ns CLOCK_MONOTONIC;
 * 0: read the clock), every 100 ms from the loop: kvgated takes an entry
 * whose heartbeat stopped for the one a killed worker left attached
 * (user/gateway/bpf_guard.c). 0 or -errno. */
int bpe_heartbeat(struct bpe *e, uint64_t now_ns);

/* The pod in slot as kvgated's table says now, for a flow spliced to
 * addr:port (network order): 1 fit (present, healthy, not down, that
 * address), 0 not (removed, unhealthy, down, or the slot holds another
 * pod now), -1 unknown (no shared table, slot out of range, lookup failed). */
int bpe_pod_fit(const struct bpe *e, uint32_t slot, uint32_t addr, uint16_t port);

#endif
