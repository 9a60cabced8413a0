/* entry: the worker's hold on the entry program (entry.h). */
#include "entry.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "kvgate.h"

#define MAPS_MAX 32

/* The maps of the program attached now, by name. */
struct progmaps {
    int n;
    int fd[MAPS_MAX];
    uint32_t id[MAPS_MAX];
    char name[MAPS_MAX][BPF_OBJ_NAME_LEN];
};

static void progmaps_close(struct progmaps *pm)
{
    for (int i = 0; i < pm->n; i++)
        if (pm->fd[i] >= 0)
            close(pm->fd[i]);
    pm->n = 0;
}

static int progmaps_find(const struct progmaps *pm, const char *name)
{
    for (int i = 0; i < pm->n; i++)
        if (!strcmp(pm->name[i], name))
            return i;
    return -1;
}

static int progmaps_read(int pfd, struct progmaps *pm)
{
    uint32_t ids[MAPS_MAX];
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    pi.nr_map_ids = MAPS_MAX;
    pi.map_ids = (uint64_t)(uintptr_t)ids;
    uint32_t len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(pfd, &pi, &len))
        return -errno;
    pm->n = 0;
    for (uint32_t i = 0; i < pi.nr_map_ids && i < MAPS_MAX; i++) {
        int mfd = bpf_map_get_fd_by_id(ids[i]);
        if (mfd < 0)
            continue;
        struct bpf_map_info mi;
        memset(&mi, 0, sizeof(mi));
        uint32_t ml = sizeof(mi);
        if (bpf_obj_get_info_by_fd(mfd, &mi, &ml)) {
            close(mfd);
            continue;
        }
        pm->fd[pm->n] = mfd;
        pm->id[pm->n] = mi.id;
        snprintf(pm->name[pm->n], sizeof(pm->name[0]), "%s", mi.name);
        pm->n++;
    }
    return 0;
}

/* kvgated's pinned table, checked against this build's layout: its fd, or
 * -1 with e->why set. */
static int open_pods(struct bpe *e, const char *pin, uint32_t *id)
{
    int fd = bpf_obj_get(pin);
    if (fd < 0) {
        snprintf(e->why, sizeof(e->why),
                 "no pod table pinned at %s (%s; kvgated runs without its BPF fast path?)", pin,
                 strerror(errno));
        return -1;
    }
    struct bpf_map_info mi;
    memset(&mi, 0, sizeof(mi));
    uint32_t ml = sizeof(mi);
    if (bpf_obj_get_info_by_fd(fd, &mi, &ml) || mi.type != BPF_MAP_TYPE_ARRAY ||
        mi.key_size != 4 || mi.value_size != sizeof(struct kvg_pod) ||
        mi.max_entries != KVG_POD_MAX) {
        snprintf(e->why, sizeof(e->why),
                 "the map pinned at %s is not this build's kvg_pods (bpf/kvgate.h changed?)", pin);
        close(fd);
        return -1;
    }
    *id = mi.id;
    return fd;
}

/* Our instance of obj_path with kvgated's table and the driver's maps,
 * swapped for the driver's program. 0 or -1 with e->why set. */
static int swap_in(struct bpe *e, const char *obj_path, int ifindex, int old_fd, uint32_t mode,
                   const struct progmaps *pm, int pods_fd)
{
    const char *step = "open";
    int rc;
    struct bpf_object *obj = bpf_object__open_file(obj_path, NULL);
    if (!obj) {
        rc = -errno;
        goto fail;
    }
    struct bpf_map *m;
    step = "share its maps";
    bpf_object__for_each_map(m, obj) {
        const char *name = bpf_map__name(m);
        int i = progmaps_find(pm, name);
        if (!strcmp(name, KVG_MAP_PODS))
            rc = bpf_map__reuse_fd(m, pods_fd);
        else if (i >= 0 && !bpf_map__is_internal(m))
            rc = bpf_map__reuse_fd(m, pm->fd[i]);
        else if (i < 0 && !bpf_map__is_internal(m))
            rc = bpf_map__set_autocreate(m, false); /* the program does not use it */
        else
            rc = 0;
        if (rc < 0)
            goto fail;
    }
    step = "load";
    if ((rc = bpf_object__load(obj)) < 0)
        goto fail;
    struct bpf_program *p = bpf_object__next_program(obj, NULL);
    step = "attach";
    if (!p) {
        rc = -ENOENT;
        goto fail;
    }
    LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = old_fd);
    if ((rc = bpf_xdp_attach(ifindex, bpf_program__fd(p), mode | XDP_FLAGS_REPLACE, &ao)) < 0)
        goto fail;
    e->obj = obj;
    return 0;
fail:
    snprintf(e->why, sizeof(e->why),
             "kvgated's pod table is pinned, but the entry program reading it did not %s: %s",
             step, strerror(rc < 0 ? -rc : EINVAL));
    bpf_object__close(obj);
    return -1;
}

/* kvgated's guard from its pin into the entry's kvg_bpe_next (both
 * instances share the map: swap_in reuses it by name). */
static void chain_guard(struct bpe *e, const struct progmaps *pm, const char *pin)
{
    int next = progmaps_find(pm, KVG_MAP_BPE_NEXT);
    if (!pin) {
        snprintf(e->guard_why, sizeof(e->guard_why), "no guard pin given");
        return;
    }
    if (next < 0) {
        snprintf(e->guard_why, sizeof(e->guard_why),
                 "the entry program has no kvg_bpe_next (an older bp_entry.bpf.o?)");
        return;
    }
    int g = bpf_obj_get(pin);
    if (g < 0) {
        snprintf(e->guard_why, sizeof(e->guard_why),
                 "no guard pinned at %s (%s; kvgated runs without its BPF fast path?)", pin,
                 strerror(errno));
        return;
    }
    uint32_t k = 0;
    if (bpf_map_update_elem(pm->fd[next], &k, &g, BPF_ANY))
        snprintf(e->guard_why, sizeof(e->guard_why), "the guard at %s cannot be chained: %s", pin,
                 strerror(errno));
    else
        e->guard = 1;
    close(g); /* the program array holds it */
}

int bpe_release_guard(const char *ifname, char *msg, size_t msglen)
{
    msg[0] = 0;
    int ifindex = (int)if_nametoindex(ifname);
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (!ifindex || bpf_xdp_query(ifindex, 0, &q) || !q.prog_id ||
        (q.attach_mode != XDP_ATTACHED_SKB && q.attach_mode != XDP_ATTACHED_DRV))
        return 0;
    int fd = bpf_prog_get_fd_by_id(q.prog_id);
    if (fd < 0)
        return 0;
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    uint32_t len = sizeof(pi);
    int rc = 0;
    if (!bpf_obj_get_info_by_fd(fd, &pi, &len) && !strcmp(pi.name, KVG_PROG_XDP_GUARD)) {
        uint32_t mode = q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
        LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = fd);
        if (bpf_xdp_detach(ifindex, mode | XDP_FLAGS_REPLACE, &ao) == 0) {
            snprintf(msg, msglen, "kvgated's XDP guard (program %u) detached from %s for the "
                     "entry program, which runs it on what it leaves to the kernel; kvgated "
                     "attaches it again when the worker stops", q.prog_id, ifname);
            rc = 1;
        }
    }
    close(fd);
    return rc;
}

int bpe_open(struct bpe *e, const char *ifname, const char *obj_path, const char *pods_pin,
             const char *guard_pin, uint16_t port, uint16_t lo, uint16_t hi)
{
    memset(e, 0, sizeof(*e));
    e->flows_fd = e->pods_fd = e->cfg_fd = -1;
    snprintf(e->why, sizeof(e->why), "no pod table to read (none given)");
    int ifindex = (int)if_nametoindex(ifname);
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (!ifindex || bpf_xdp_query(ifindex, 0, &q) || !q.prog_id)
        return -ENOENT;
    int pfd = bpf_prog_get_fd_by_id(q.prog_id);
    if (pfd < 0)
        return -errno;
    struct progmaps pm;
    int rc = progmaps_read(pfd, &pm);
    if (rc < 0) {
        close(pfd);
        return rc;
    }
    int cfg = progmaps_find(&pm, KVG_MAP_BPE_CFG), flows = progmaps_find(&pm, KVG_MAP_BP_FLOWS);
    if (cfg < 0 || flows < 0) {
        rc = -ENOENT;
        goto out;
    }
    e->cfg = (struct kvg_bpe_cfg){.port = htons(port), .lo = lo, .hi = hi};
    e->cfg_fd = dup(pm.fd[cfg]);
    if (e->cfg_fd < 0 || bpe_heartbeat(e, 0)) {
        rc = -errno;
        goto out;
    }
    chain_guard(e, &pm, guard_pin);
    e->flows_fd = dup(pm.fd[flows]);
    if (e->flows_fd < 0) {
        rc = -errno;
        goto out;
    }
    rc = 0;
    uint32_t pods_id = 0;
    int pods_fd = pods_pin ? open_pods(e, pods_pin, &pods_id) : -1;
    if (pods_fd < 0)
        goto out;
    int have = progmaps_find(&pm, KVG_MAP_PODS);
    if (have >= 0 && pm.id[have] == pods_id) { /* it reads kvgated's already */
        e->pods_fd = pods_fd;
        goto out;
    }
    uint32_t mode = q.attach_mode == XDP_ATTACHED_SKB ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
    if (q.attach_mode != XDP_ATTACHED_SKB && q.attach_mode != XDP_ATTACHED_DRV) {
        snprintf(e->why, sizeof(e->why), "the entry program is attached in mode %u (neither "
                 "driver nor generic): kvgated's pod table not shared", q.attach_mode);
        close(pods_fd);
        goto out;
    }
    if (swap_in(e, obj_path, ifindex, pfd, mode, &pm, pods_fd) < 0) {
        close(pods_fd);
        goto out;
    }
    e->pods_fd = pods_fd;
out:
    progmaps_close(&pm);
    close(pfd);
    if (rc < 0 && e->flows_fd >= 0) {
        close(e->flows_fd);
        e->flows_fd = -1;
    }
    if (rc < 0 && e->cfg_fd >= 0) {
        close(e->cfg_fd);
        e->cfg_fd = -1;
    }
    return rc;
}

int bpe_heartbeat(struct bpe *e, uint64_t now_ns)
{
    if (e->cfg_fd < 0)
        return -EBADF;
    if (!now_ns) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now_ns = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    }
    e->cfg.alive_ns = now_ns;
    uint32_t k = 0;
    return bpf_map_update_elem(e->cfg_fd, &k, &e->cfg, BPF_ANY) ? -errno : 0;
}

void bpe_close(struct bpe *e)
{
    if (e->flows_fd >= 0)
        close(e->flows_fd);
    if (e->pods_fd >= 0)
        close(e->pods_fd);
    if (e->cfg_fd >= 0)
        close(e->cfg_fd);
    e->cfg_fd = -1;
    bpf_object__close(e->obj); /* the attachment, if still there, keeps the program */
    e->flows_fd = e->pods_fd = -1;
    e->obj = NULL;
}

int bpe_pod_fit(const struct bpe *e, uint32_t slot, uint32_t addr, uint16_t port)
{
    struct kvg_pod p;
    if (e->pods_fd < 0 || slot >= KVG_POD_MAX || bpf_map_lookup_elem(e->pods_fd, &slot, &p))
        return -1;
    const uint32_t want = KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY;
    if ((p.flags & (want | KVG_POD_F_DOWN)) != want)
        return 0;
    return p.family == KVG_AF_INET && p.addr[0] == addr && p.port == port;
}
