/* bpf_guard: the XDP guard kept on its interface while a bypass worker
 * comes and goes (bpf.h: gwbpf_guard_keep, gwbpf_guard_tick).
 *
 * The guard and the bypass worker's entry program cannot both hold an
 * interface's XDP hook (../shared/BYPASS.md): DPDK's af_xdp driver attaches
 * only where nothing is, so a starting worker detaches kvgated's guard and
 * chains it behind its entry program instead (dpdk/entry.h: what the entry
 * leaves to the kernel goes through the guard). When the worker stops, the
 * guard must come back. The control thread looks at the hook once a
 * second:
 *
 *   our guard                  attached; nothing to do
 *   nothing                    (a worker's clean exit: its driver detached
 *                              the entry) seen on two looks in a row: the
 *                              guard is attached again (two looks, so a
 *                              worker between its detach of the guard and
 *                              its driver's attach is not raced)
 *   the entry (bp_entry), its  a worker runs: the guard waits behind it
 *   worker's heartbeat fresh
 *   the entry, its worker      the worker is gone without detaching (kill
 *   silent for GUARD_SILENT_S
 *                              -9): the entry stays because it still
 *                              forwards the flows it spliced (their streams
 *                              run to completion) while new connections
 *                              fall to the kernel, where kvgated serves the
 *                              bypass port. Once its flows forwarded no
 *                              packet on two looks in a row (or after
 *                              GUARD_DRAIN_MAX_S), the guard replaces it in
 *                              one step (XDP_FLAGS_REPLACE)
 *   any other program          left alone, said once
 *
 * Whether the worker lives is its heartbeat: it writes CLOCK_MONOTONIC into
 * the entry's kvg_bpe_cfg every 100 ms (dpdk/entry.h). (The kernel's AF_XDP
 * socket diagnostics, what `ss --xdp` reads, would say whether a socket is
 * bound, but kernels built without CONFIG_XDP_SOCKETS_DIAG, as these
 * machines', answer nothing; a heartbeat also catches a hung worker, whose
 * new connections are better served by kvgated.) An entry without a
 * heartbeat to read is never taken for left behind. */
#include "gateway/bpf_priv.h"

#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/log.h"

#define GUARD_LOOKS 2             /* looks in a row before acting */
#define GUARD_SILENT_S 2          /* a worker silent this long (heartbeat: 100 ms) is gone */
#define GUARD_DRAIN_MAX_S 600     /* an orphaned entry is replaced after this long anyway */

int gwbpf_guard_keep(struct gwbpf *b, const char *ifname, enum gwbpf_xdp_mode mode)
{
    if (!b || !ifname || strlen(ifname) >= sizeof(b->gk.ifname))
        return -EINVAL;
    memset(&b->gk, 0, sizeof(b->gk));
    snprintf(b->gk.ifname, sizeof(b->gk.ifname), "%s", ifname);
    b->gk.mode = mode;
    b->gk.wanted = 1;
    return 0;
}

/* The entry program's map named name with values of vsize bytes: an fd,
 * or -errno. */
static int entry_map(int pfd, const char *name, uint32_t vsize)
{
    uint32_t ids[32];
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    pi.nr_map_ids = 32;
    pi.map_ids = (uint64_t)(uintptr_t)ids;
    uint32_t len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(pfd, &pi, &len))
        return -errno;
    for (uint32_t i = 0; i < pi.nr_map_ids && i < 32; i++) {
        int fd = bpf_map_get_fd_by_id(ids[i]);
        if (fd < 0)
            continue;
        struct bpf_map_info mi;
        memset(&mi, 0, sizeof(mi));
        uint32_t ml = sizeof(mi);
        if (!bpf_obj_get_info_by_fd(fd, &mi, &ml) && !strcmp(mi.name, name) &&
            mi.value_size == vsize)
            return fd;
        close(fd);
    }
    return -ENOENT;
}

/* How long ago (ns) the entry's worker wrote its heartbeat; -errno when
 * the entry has none to read (an older bp_entry). A worker writes its
 * first once the driver has attached the entry (dpdk/entry.h): until then
 * the entry's own age counts (load_time: CLOCK_BOOTTIME ns), so a worker
 * starting up is not taken for gone, and one that died before its first
 * heartbeat is, once the entry is GUARD_SILENT_S old. */
static int64_t worker_silent_ns(int pfd, uint64_t now_ns, uint64_t load_time)
{
    int fd = entry_map(pfd, KVG_MAP_BPE_CFG, sizeof(struct kvg_bpe_cfg));
    if (fd < 0)
        return fd;
    uint32_t k = 0;
    struct kvg_bpe_cfg c;
    int rc = bpf_map_lookup_elem(fd, &k, &c) ? -errno : 0;
    close(fd);
    if (rc)
        return rc;
    if (!c.alive_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        uint64_t boot = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        return boot > load_time ? (int64_t)(boot - load_time) : 0;
    }
    return c.alive_ns >= now_ns ? 0 : (int64_t)(now_ns - c.alive_ns);
}

/* The packets the entry's flows forwarded, summed, and how many flows
 * (-errno: its flow table not found). */
static int64_t entry_packets(int pfd, uint32_t *nflows)
{
    int mfd = entry_map(pfd, KVG_MAP_BP_FLOWS, sizeof(struct kvg_bp_flow));
    if (mfd < 0)
        return mfd;
    int64_t sum = 0;
    uint32_t n = 0;
    struct kvg_bp_key k, next;
    struct kvg_bp_flow f;
    const void *prev = NULL;
    while (n < KVG_BP_FLOWS_MAX && !bpf_map_get_next_key(mfd, prev, &next)) {
        if (!bpf_map_lookup_elem(mfd, &next, &f)) {
            sum += (int64_t)f.packets;
            n++;
        }
        k = next;
        prev = &k;
    }
    close(mfd);
    *nflows = n;
    return sum;
}

static void say_once(struct gwbpf_guardkeep *k, int state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say_once(struct gwbpf_guardkeep *k, int state, const char *fmt, ...)
{
    if (k->said == state)
        return;
    k->said = state;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    LOG_INFO("XDP guard: %s", line);
}

enum { SAID_OURS = 1, SAID_BEHIND, SAID_ORPHAN, SAID_FOREIGN, SAID_NOBEAT, SAID_GONE };

void gwbpf_guard_tick(struct gwbpf *b, uint64_t now_ns)
{
    if (!b || !b->gk.wanted || b->prog_fd < 0)
        return;
    struct gwbpf_guardkeep *k = &b->gk;
    int ifindex = (int)if_nametoindex(k->ifname);
    if (!ifindex) {
        say_once(k, SAID_GONE, "no interface %s", k->ifname);
        k->empty_looks = k->quiet_looks = 0;
        return;
    }
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q))
        return;
    uint32_t id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id;
    struct bpf_prog_info mine;
    memset(&mine, 0, sizeof(mine));
    uint32_t len = sizeof(mine);
    if (bpf_obj_get_info_by_fd(b->prog_fd, &mine, &len))
        return;
    if (id && id == mine.id) {
        k->state = GWBPF_GUARD_ATTACHED;
        k->empty_looks = k->quiet_looks = 0;
        return;
    }
    if (gwbpf_xdp_ifindex(b) == ifindex) /* ours was there, another program is now */
        gwbpf_xdp_forget(b);
    if (!id && !q.hw_prog_id) {
        k->quiet_looks = 0;
        if (++k->empty_looks < GUARD_LOOKS)
            return;
        static const uint32_t flags[] = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
        int first = k->mode == GWBPF_XDP_GENERIC ? 1 : 0, last = k->mode == GWBPF_XDP_NATIVE ? 0 : 1;
        for (int i = first; i <= last; i++)
            if (gwbpf_xdp_take(b, ifindex, -1, flags[i]) == 0) {
                k->state = GWBPF_GUARD_ATTACHED;
                k->reattached++;
                k->empty_looks = 0;
                k->said = SAID_OURS;
                LOG_INFO("XDP guard attached again to %s (%s): nothing held the hook any more",
                         k->ifname, gwbpf_xdp_mode_name(b));
                return;
            }
        return;
    }
    k->empty_looks = 0;
    int pfd = bpf_prog_get_fd_by_id(id);
    if (pfd < 0)
        return;
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(pfd, &pi, &len) || strcmp(pi.name, KVG_PROG_BP_ENTRY)) {
        k->state = GWBPF_GUARD_FOREIGN;
        say_once(k, SAID_FOREIGN, "%s runs XDP program %u (%s), not ours to replace", k->ifname,
                 id, pi.name);
        close(pfd);
        return;
    }
    int64_t silent = worker_silent_ns(pfd, now_ns, pi.load_time);
    if (silent < 0 || silent < (int64_t)GUARD_SILENT_S * 1000000000ll) {
        k->state = GWBPF_GUARD_BEHIND_ENTRY;
        k->quiet_looks = 0;
        k->orphan_since_ns = 0;
        if (silent < 0)
            say_once(k, SAID_NOBEAT, "%s runs the bypass entry (program %u) without a heartbeat "
                     "to read (%s: an older bp_entry?), so it is never taken for left behind",
                     k->ifname, id, strerror((int)-silent));
        else
            say_once(k, SAID_BEHIND, "%s runs the bypass worker's entry (program %u); the guard "
                     "runs behind it until the worker stops", k->ifname, id);
        close(pfd);
        return;
    }
    /* the worker is gone and left its entry attached */
    uint32_t nflows = 0;
    int64_t pk = entry_packets(pfd, &nflows);
    if (k->state != GWBPF_GUARD_ORPHANED || k->entry_id != id) {
        k->state = GWBPF_GUARD_ORPHANED;
        k->entry_id = id;
        k->orphan_since_ns = now_ns;
        k->quiet_looks = 0;
        k->entry_pkts = pk;
        say_once(k, SAID_ORPHAN, "the bypass worker on %s is gone and left its entry (program "
                 "%u) attached: it still forwards the %u flows it spliced; new connections are "
                 "the kernel's; the guard replaces it once they are quiet", k->ifname, id, nflows);
        close(pfd);
        return;
    }
    if (pk < 0 || pk == k->entry_pkts)
        k->quiet_looks++;
    else
        k->quiet_looks = 0;
    k->entry_pkts = pk;
    int overdue = now_ns - k->orphan_since_ns > (uint64_t)GUARD_DRAIN_MAX_S * 1000000000ull;
    if (k->quiet_looks < GUARD_LOOKS && !overdue) {
        close(pfd);
        return;
    }
    uint32_t mode = q.drv_prog_id ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
    int rc = gwbpf_xdp_take(b, ifindex, pfd, mode);
    if (rc == 0) {
        k->state = GWBPF_GUARD_ATTACHED;
        k->reattached++;
        k->said = SAID_OURS;
        LOG_INFO("XDP guard attached to %s (%s) in place of the gone worker's entry (program "
                 "%u): %s; its %u flows are the kernel's now", k->ifname,
                 gwbpf_xdp_mode_name(b), id,
                 overdue ? "still busy after the drain limit" : "its flows were quiet", nflows);
    } else {
        LOG_WARN("XDP guard: replacing the gone worker's entry on %s failed: %s", k->ifname,
                 strerror(-rc));
    }
    close(pfd);
}

const char *gwbpf_guard_state_name(const struct gwbpf *b)
{
    static const char *const names[] = {"off", "attached", "behind_entry", "orphaned_entry",
                                        "foreign"};
    if (!b || !b->gk.wanted)
        return names[0];
    return names[b->gk.state < 5 ? b->gk.state : 0];
}

uint64_t gwbpf_guard_reattached(const struct gwbpf *b) { return b ? b->gk.reattached : 0; }
