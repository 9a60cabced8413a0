/* gateway/bpf: loading the kernel fast path (or opening an operator's
 * pins), the XDP guard's attachment, the counters and their /metrics
 * render. The pod table mirror is bpf_pods.c. See bpf.h; the maps are
 * bpf/maps.h. */
#include "gateway/bpf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "core/podtable.h"
#include "gateway/bpf_priv.h"
#include "kvgate.h"
#include "splice.skel.h"    /* build/bpf/, generated from bpf/splice.bpf.c */
#include "xdp_guard.skel.h" /* build/bpf/, generated from bpf/xdp_guard.bpf.c */

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

_Static_assert(KVG_POD_MAX >= POD_MAX, "the BPF pod table must hold every pod slot");

/* The maps kvgated uses (enum in bpf_priv.h), as bpf/maps.h declares
 * them. */
static const struct mapspec {
    const char *name;
    uint32_t type, key, value, max, flags;
} MAPS[M__COUNT] = {
    [M_PODS] = {KVG_MAP_PODS, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct kvg_pod), KVG_POD_MAX, 0},
    [M_STATS] = {KVG_MAP_XDP_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, 4, sizeof(struct kvg_xdp_stat),
                 KVG_XDP_STATS_MAX, 0},
    [M_CFG] = {KVG_MAP_XDP_CFG, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct kvg_xdp_cfg), 1, 0},
    [M_BUCKETS] = {KVG_MAP_SYN_BUCKETS, BPF_MAP_TYPE_LRU_HASH, sizeof(struct kvg_src),
                   sizeof(struct kvg_bucket), KVG_SYN_BUCKETS_MAX, 0},
    [M_PROGS] = {KVG_MAP_XDP_PROGS, BPF_MAP_TYPE_PROG_ARRAY, 4, 4, KVG_XDP_PROG_SLOTS, 0},
    [M_SOCK] = {KVG_MAP_SOCK, BPF_MAP_TYPE_SOCKHASH, 8, 8, KVG_FLOWS_MAX, 0},
    [M_FLOW_CFG] = {KVG_MAP_FLOW_CFG, BPF_MAP_TYPE_HASH, 8, sizeof(struct kvg_flow_cfg),
                    KVG_FLOWS_MAX, 0},
    [M_FLOW_ST] = {KVG_MAP_FLOW_ST, BPF_MAP_TYPE_HASH, 8, sizeof(struct kvg_flow_st),
                   KVG_FLOWS_MAX, 0},
    [M_SPL_STATS] = {KVG_MAP_SPLICE_STATS, BPF_MAP_TYPE_PERCPU_ARRAY, 4,
                     sizeof(struct kvg_spl_stat), KVG_SPLICE_STATS_MAX, 0},
    [M_POD_LOAD] = {KVG_MAP_POD_LOAD, BPF_MAP_TYPE_ARRAY, 4, sizeof(struct kvg_pod_load),
                    KVG_POD_MAX, BPF_F_MMAPABLE},
};

/* kvgated reads kvg_pod_load as core's struct pod_kload */
_Static_assert(sizeof(struct kvg_pod_load) == sizeof(struct pod_kload) &&
                   offsetof(struct kvg_pod_load, sent) == offsetof(struct pod_kload, sent) &&
                   offsetof(struct kvg_pod_load, done) == offsetof(struct pod_kload, done) &&
                   offsetof(struct kvg_pod_load, sent_body) ==
                       offsetof(struct pod_kload, sent_body),
               "struct pod_kload must have struct kvg_pod_load's layout");

static const char *const REASONS[] = KVG_XDP_REASON_NAMES;
_Static_assert(sizeof(REASONS) / sizeof(REASONS[0]) == KVG_XDP_REASON_MAX,
               "KVG_XDP_REASON_NAMES must name every enum kvg_xdp_reason");


static void say(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    if (!why || !whylen)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

/* libbpf's log into ours: warnings and errors always (its lines start with
 * "libbpf: "), debug with KVGATE_BPF_DEBUG=1 or at log level debug
 * (verifier logs of successful loads and the like). `quiet`: a failure we
 * expect and handle (native XDP tried first on a device without it) is not
 * worth a warning. */
static _Atomic int libbpf_quiet;
static int libbpf_log(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    static int debug = -1;
    char line[960];
    if (debug < 0) {
        const char *e = getenv("KVGATE_BPF_DEBUG");
        debug = e && *e && *e != '0';
    }
    int warn = level <= LIBBPF_WARN && !atomic_load(&libbpf_quiet);
    if (!warn && !debug && log_level_now < LOG_LVL_DEBUG)
        return 0;
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    if (n < 0)
        return 0;
    size_t len = strlen(line);
    while (len && line[len - 1] == '\n')
        line[--len] = 0; /* one line per message: log_write ends it */
    if (warn)
        LOG_WARN("%s", line);
    else if (debug)
        LOG_INFO("%s", line);
    else
        LOG_DEBUG("%s", line);
    return n;
}

static int have_cap(int cap)
{
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof(d));
    if (syscall(SYS_capget, &h, d))
        return 0;
    return (d[cap / 32].effective >> (cap % 32)) & 1;
}

static int on_bpffs(const char *path)
{
    struct statfs st;
    return statfs(path, &st) == 0 && (uint32_t)st.f_type == BPF_FS_MAGIC;
}

/* 0 when fd is a map as spec says; else -EINVAL and a sentence. */
static int check_map(int fd, const struct mapspec *m, const char *path, char *why, size_t wl)
{
    struct bpf_map_info info;
    uint32_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
        int e = errno;
        say(why, wl, "cannot inspect %s: %s", path, strerror(e));
        return -e;
    }
    if (info.type != m->type || info.key_size != m->key || info.value_size != m->value ||
        info.max_entries != m->max || (info.map_flags & m->flags) != m->flags) {
        say(why, wl,
            "pinned map %s does not match this build (type %u key %u value %u entries %u "
            "flags %#x, expected %u %u %u %u %#x; bpf/kvgate.h changed?): remove the pins with "
            "scripts/bpf-unload.sh",
            path, info.type, info.key_size, info.value_size, info.max_entries, info.map_flags,
            m->type, m->key, m->value, m->max, m->flags);
        return -EINVAL;
    }
    return 0;
}

static int map_path(char *buf, size_t n, const char *dir, const char *name)
{
    int k = snprintf(buf, n, "%s/" KVG_PIN_MAPS_SUBDIR "/%s", dir, name);
    return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

/* Takes the pin directory for this process (a second kvgated runs without
 * the fast path rather than fight over the pod table). */
static int lock_dir(struct gwbpf *b, const char *dir, char *why, size_t wl)
{
    b->lock_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (b->lock_fd < 0) {
        int e = errno;
        say(why, wl, "cannot open %s: %s", dir, strerror(e));
        return -e;
    }
    if (flock(b->lock_fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        if (e == EWOULDBLOCK)
            say(why, wl, "another kvgated is using %s", dir);
        else
            say(why, wl, "cannot lock %s: %s", dir, strerror(e));
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    return 0;
}

/* The splice verdict (bpf/splice.bpf.c): its object shares every map with
 * the XDP guard's (bpf_map__reuse_fd: the pinned maps when pinning, the
 * same maps otherwise), is attached to kvg_sock as its stream verdict (no
 * stream parser: see splice.bpf.c) and pinned at <dir>/splice_verdict. A
 * failure leaves splice_ok 0 and says why in splice_why. */
static void load_splice(struct gwbpf *b, const char *dir)
{
    char path[PATH_MAX];
    int rc;
    const char *step = "open";

    b->sskel = splice_bpf__open();
    if (!b->sskel) {
        rc = -errno;
        goto fail;
    }
    struct bpf_map *m;
    step = "share maps";
    bpf_object__for_each_map(m, b->sskel->obj) {
        for (int i = 0; i < M__COUNT; i++)
            if (!strcmp(bpf_map__name(m), MAPS[i].name) &&
                (rc = bpf_map__reuse_fd(m, b->fd[i])) < 0)
                goto fail;
    }
    step = "load";
    if ((rc = splice_bpf__load(b->sskel)) < 0)
        goto fail;
    step = "attach";
    int pfd = bpf_program__fd(b->sskel->progs.splice_verdict);
    if (bpf_prog_attach(pfd, b->fd[M_SOCK], BPF_SK_SKB_STREAM_VERDICT, 0)) {
        rc = -errno;
        goto fail;
    }
    if (dir) {
        step = "pin";
        snprintf(path, sizeof(path), "%s/" KVG_PROG_SPLICE, dir);
        if (unlink(path) && errno != ENOENT) {
            rc = -errno;
            goto fail;
        }
        if ((rc = bpf_program__pin(b->sskel->progs.splice_verdict, path)) < 0)
            goto fail;
    }
    b->splice_ok = 1;
    return;
fail:
    snprintf(b->splice_why, sizeof(b->splice_why), "the splice verdict did not %s: %s", step,
             strerror(rc < 0 ? -rc : EINVAL));
    splice_bpf__destroy(b->sskel);
    b->sskel = NULL;
}

/* Load mode's pin directory: on bpffs, <dir> and <dir>/maps made, locked
 * for this process, and no incompatible pin in it. */
static int prepare_pins(struct gwbpf *b, const char *dir, char *why, size_t wl)
{
    char path[PATH_MAX], parent[PATH_MAX];
    int rc;
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = 0;
    if (!on_bpffs(dir) && !on_bpffs(parent)) {
        say(why, wl, "no bpffs at %s (mount -t bpf bpf %s)", parent, parent);
        return -ENOENT;
    }
    if (mkdir(dir, 0700) && errno != EEXIST) {
        rc = -errno;
        say(why, wl, "cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    if ((rc = map_path(path, sizeof(path), dir, "")) < 0) {
        say(why, wl, "pin directory name too long: %s", dir);
        return rc;
    }
    path[strlen(path) - 1] = 0; /* <dir>/maps */
    if (mkdir(path, 0700) && errno != EEXIST) {
        rc = -errno;
        say(why, wl, "cannot create %s: %s", path, strerror(-rc));
        return rc;
    }
    if ((rc = lock_dir(b, dir, why, wl)) < 0)
        return rc;
    /* an incompatible pin: say which, rather than libbpf's generic error */
    for (int i = 0; i < M__COUNT; i++) {
        map_path(path, sizeof(path), dir, MAPS[i].name);
        int fd = bpf_obj_get(path);
        if (fd < 0)
            continue;
        rc = check_map(fd, &MAPS[i], path, why, wl);
        close(fd);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Every map of the skeleton pinned (or reused) under <dir>/maps. */
static int set_pin_paths(struct gwbpf *b, const char *dir, char *why, size_t wl)
{
    char path[PATH_MAX];
    struct bpf_map *m;
    bpf_object__for_each_map(m, b->skel->obj) {
        for (int i = 0; i < M__COUNT; i++) {
            if (strcmp(bpf_map__name(m), MAPS[i].name))
                continue;
            map_path(path, sizeof(path), dir, MAPS[i].name);
            int rc = bpf_map__set_pin_path(m, path);
            if (rc < 0) {
                say(why, wl, "cannot set the pin path %s: %s", path, strerror(-rc));
                return rc;
            }
        }
    }
    return 0;
}

/* The program at <dir>/xdp_guard, replacing an earlier pin. */
static int pin_prog(struct gwbpf *b, const char *dir, char *why, size_t wl)
{
    char path[PATH_MAX];
    int rc;
    snprintf(path, sizeof(path), "%s/" KVG_PROG_XDP_GUARD, dir);
    if (unlink(path) && errno != ENOENT) {
        rc = -errno;
        say(why, wl, "cannot replace %s: %s", path, strerror(-rc));
        return rc;
    }
    if ((rc = bpf_program__pin(b->skel->progs.xdp_guard, path)) < 0) {
        say(why, wl, "cannot pin %s: %s", path, strerror(-rc));
        return rc;
    }
    return 0;
}

/* Load mode: skeleton, maps pinned (reused when compatible), program pinned. */
static int load(struct gwbpf *b, const struct gwbpf_opts *o, char *why, size_t wl)
{
    const char *dir = o->pin_dir && *o->pin_dir ? o->pin_dir : NULL;
    int rc;
    if (dir && (rc = prepare_pins(b, dir, why, wl)) < 0)
        return rc;
    b->skel = xdp_guard_bpf__open();
    if (!b->skel) {
        rc = -errno;
        say(why, wl, "cannot open the XDP guard's BPF object: %s", strerror(-rc));
        return rc;
    }
    struct kvg_xdp_cfg *def = &b->skel->rodata->kvg_xdp_defaults;
    def->gw_port = htons(o->gw_port);
    if (dir && (rc = set_pin_paths(b, dir, why, wl)) < 0)
        return rc;
    if ((rc = xdp_guard_bpf__load(b->skel)) < 0) {
        say(why, wl, "loading the XDP guard failed: %s", strerror(-rc));
        return rc;
    }
    if (dir && (rc = pin_prog(b, dir, why, wl)) < 0)
        return rc;
    b->fd[M_PODS] = bpf_map__fd(b->skel->maps.kvg_pods);
    b->fd[M_STATS] = bpf_map__fd(b->skel->maps.kvg_xdp_stats);
    b->fd[M_CFG] = bpf_map__fd(b->skel->maps.kvg_xdp_cfg);
    b->fd[M_BUCKETS] = bpf_map__fd(b->skel->maps.kvg_syn_bkt);
    b->fd[M_PROGS] = bpf_map__fd(b->skel->maps.kvg_xdp_progs);
    b->fd[M_SOCK] = bpf_map__fd(b->skel->maps.kvg_sock);
    b->fd[M_FLOW_CFG] = bpf_map__fd(b->skel->maps.kvg_flow_cfg);
    b->fd[M_FLOW_ST] = bpf_map__fd(b->skel->maps.kvg_flow_st);
    b->fd[M_SPL_STATS] = bpf_map__fd(b->skel->maps.kvg_spl_stats);
    b->fd[M_POD_LOAD] = bpf_map__fd(b->skel->maps.kvg_pod_load);
    b->prog_fd = bpf_program__fd(b->skel->progs.xdp_guard);
    if (o->no_splice)
        snprintf(b->splice_why, sizeof(b->splice_why), "turned off (--no-splice)");
    else
        load_splice(b, dir); /* optional: the XDP guard and pod table work without it */
    return 0;
}

/* Pinned mode: what an operator loaded with bpftool. */
static int open_pinned(struct gwbpf *b, const char *dir, int no_splice, char *why, size_t wl)
{
    char path[PATH_MAX];
    int rc;

    if (!on_bpffs(dir)) {
        say(why, wl, "%s is not a directory on bpffs (load with scripts/bpf-load.sh first)", dir);
        return -ENOENT;
    }
    if ((rc = lock_dir(b, dir, why, wl)) < 0)
        return rc;
    for (int i = 0; i < M__COUNT; i++) {
        if ((rc = map_path(path, sizeof(path), dir, MAPS[i].name)) < 0) {
            say(why, wl, "pin directory name too long: %s", dir);
            return rc;
        }
        b->fd[i] = bpf_obj_get(path);
        if (b->fd[i] < 0 && i >= M_SPLICE_FIRST) { /* an operator without the splice */
            snprintf(b->splice_why, sizeof(b->splice_why), "no pinned %s (load bpf/splice.bpf.o "
                     "too: scripts/bpf-load.sh)", path);
            continue;
        }
        if (b->fd[i] < 0) {
            rc = -errno;
            say(why, wl, "cannot open pinned map %s: %s", path, strerror(-rc));
            return rc;
        }
        if ((rc = check_map(b->fd[i], &MAPS[i], path, why, wl)) < 0)
            return rc;
    }
    snprintf(path, sizeof(path), "%s/" KVG_PROG_XDP_GUARD, dir);
    b->own_prog_fd = b->prog_fd = bpf_obj_get(path); /* optional: only to attach */
    /* the operator's splice: its maps and the verdict pinned at
     * <dir>/splice_verdict, which we attach to their kvg_sock (attaching
     * again is harmless) */
    int have = 1;
    for (int i = M_SPLICE_FIRST; i < M__COUNT; i++)
        have &= b->fd[i] >= 0;
    if (have && !no_splice) {
        snprintf(path, sizeof(path), "%s/" KVG_PROG_SPLICE, dir);
        b->own_splice_prog_fd = bpf_obj_get(path);
        if (b->own_splice_prog_fd < 0)
            snprintf(b->splice_why, sizeof(b->splice_why), "no pinned %s", path);
        else if (bpf_prog_attach(b->own_splice_prog_fd, b->fd[M_SOCK],
                                 BPF_SK_SKB_STREAM_VERDICT, 0))
            snprintf(b->splice_why, sizeof(b->splice_why), "cannot attach %s: %s", path,
                     strerror(errno));
        else
            b->splice_ok = 1;
    } else if (no_splice) {
        snprintf(b->splice_why, sizeof(b->splice_why), "turned off (--no-splice)");
    }
    return 0;
}

int gwbpf_open(const struct gwbpf_opts *o, struct gwbpf **out, char *why, size_t whylen)
{
    struct gwbpf *b;
    int rc;

    *out = NULL;
    /* root, or: loading needs CAP_BPF + CAP_PERFMON (the verifier allows
     * variable packet offsets only with it) + CAP_NET_ADMIN (XDP);
     * opening an operator's pins needs CAP_BPF */
    int pinned = o->pinned_dir && *o->pinned_dir;
    if (!have_cap(CAP_SYS_ADMIN) &&
        !(have_cap(CAP_BPF) && (pinned || (have_cap(CAP_PERFMON) && have_cap(CAP_NET_ADMIN))))) {
        say(why, whylen, "not running as root (%s needs CAP_BPF%s)",
            pinned ? "opening pinned maps" : "loading the XDP guard",
            pinned ? "" : ", CAP_PERFMON and CAP_NET_ADMIN");
        return -EPERM;
    }
    b = kv_calloc(1, sizeof(*b));
    if (!b) {
        say(why, whylen, "out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < M__COUNT; i++)
        b->fd[i] = -1;
    b->prog_fd = b->own_prog_fd = b->lock_fd = b->own_splice_prog_fd = -1;
    libbpf_set_print(libbpf_log);

    b->ncpus = libbpf_num_possible_cpus();
    if (b->ncpus <= 0) {
        rc = b->ncpus ? b->ncpus : -EINVAL;
        say(why, whylen, "cannot count the possible CPUs: %s", strerror(-rc));
        goto cleanup;
    }
    b->percpu = kv_calloc((size_t)b->ncpus, sizeof(*b->percpu));
    if (!b->percpu) {
        rc = -ENOMEM;
        say(why, whylen, "out of memory");
        goto cleanup;
    }
    if (pinned)
        rc = open_pinned(b, o->pinned_dir, o->no_splice, why, whylen);
    else
        rc = load(b, o, why, whylen);
    if (rc < 0)
        goto cleanup;
    /* a table left by an earlier run is stale until our first publish */
    if ((rc = gwbpf_clear_pods(b)) < 0) {
        say(why, whylen, "cannot write the pod table: %s", strerror(-rc));
        goto cleanup;
    }
    if (b->fd[M_POD_LOAD] >= 0) { /* without it (old pins), kernel-sent requests go uncounted */
        size_t len = (size_t)KVG_POD_MAX * sizeof(struct kvg_pod_load);
        long pg = sysconf(_SC_PAGESIZE);
        len = (len + (size_t)pg - 1) / (size_t)pg * (size_t)pg;
        void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, b->fd[M_POD_LOAD], 0);
        if (m == MAP_FAILED) {
            rc = -errno;
            say(why, whylen, "cannot map %s: %s", KVG_MAP_POD_LOAD, strerror(-rc));
            goto cleanup;
        }
        b->pod_load = m;
        b->pod_load_len = len;
    }
    *out = b;
    return 0;
cleanup:
    gwbpf_close(b);
    return rc;
}

void gwbpf_close(struct gwbpf *b)
{
    if (!b)
        return;
    gwbpf_xdp_detach(b);
    if (b->fd[M_PODS] >= 0 && b->pods.shadow_ok)
        gwbpf_clear_pods(b); /* nobody keeps it fresh after us */
    if (b->pod_load)
        munmap(b->pod_load, b->pod_load_len);
    splice_bpf__destroy(b->sskel); /* the attachment stays with kvg_sock (pinned) */
    if (b->own_splice_prog_fd >= 0)
        close(b->own_splice_prog_fd);
    if (b->skel) {
        xdp_guard_bpf__destroy(b->skel); /* closes its fds; pins stay */
    } else {
        for (int i = 0; i < M__COUNT; i++)
            if (b->fd[i] >= 0)
                close(b->fd[i]);
        if (b->own_prog_fd >= 0)
            close(b->own_prog_fd);
    }
    if (b->lock_fd >= 0)
        close(b->lock_fd); /* releases the flock */
    kv_free(b->percpu);
    kv_free(b);
}

/* ---- XDP attachment ---- */

static int prog_name_by_id(uint32_t id, char *name, size_t n)
{
    int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0)
        return -errno;
    struct bpf_prog_info info;
    uint32_t len = sizeof(info);
    memset(&info, 0, sizeof(info));
    int rc = bpf_obj_get_info_by_fd(fd, &info, &len) ? -errno : 0;
    close(fd);
    if (!rc)
        snprintf(name, n, "%s", info.name);
    return rc;
}

int gwbpf_xdp_attach(struct gwbpf *b, const char *ifname, enum gwbpf_xdp_mode mode,
                     char *why, size_t whylen)
{
    if (!b || b->prog_fd < 0) {
        say(why, whylen, "no XDP guard program (pin %s missing?)", KVG_PROG_XDP_GUARD);
        return -ENOENT;
    }
    if (b->xdp_ifindex) {
        say(why, whylen, "the guard is already attached by this process");
        return -EALREADY;
    }
    int ifindex = (int)if_nametoindex(ifname);
    if (!ifindex) {
        int e = errno;
        say(why, whylen, "no interface %s: %s", ifname, strerror(e));
        return -e;
    }
    /* something there already: replace our own guard, never another program */
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(ifindex, 0, &q) == 0 && (q.drv_prog_id || q.skb_prog_id || q.hw_prog_id)) {
        char name[64] = "?";
        uint32_t id = q.drv_prog_id ? q.drv_prog_id : q.skb_prog_id ? q.skb_prog_id : q.hw_prog_id;
        prog_name_by_id(id, name, sizeof(name));
        if (strcmp(name, KVG_PROG_XDP_GUARD) || q.hw_prog_id) {
            say(why, whylen, "%s already runs XDP program %u (%s); detach it first", ifname, id,
                name);
            return -EBUSY;
        }
        uint32_t old = q.drv_prog_id ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
        bpf_xdp_detach(ifindex, old, NULL);
    }
    static const uint32_t flags[] = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE};
    int first = mode == GWBPF_XDP_GENERIC ? 1 : 0;
    int last = mode == GWBPF_XDP_NATIVE ? 0 : 1;
    int rc = -EINVAL;
    for (int i = first; i <= last; i++) {
        atomic_store(&libbpf_quiet, i < last); /* auto: native may be missing */
        rc = bpf_xdp_attach(ifindex, b->prog_fd, flags[i] | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
        atomic_store(&libbpf_quiet, 0);
        if (rc == 0) {
            b->xdp_ifindex = ifindex;
            b->xdp_flags = flags[i];
            return 0;
        }
    }
    say(why, whylen, "attaching XDP to %s failed: %s", ifname, strerror(-rc));
    return rc;
}

int gwbpf_xdp_detach(struct gwbpf *b)
{
    if (!b || !b->xdp_ifindex)
        return 0;
    /* only our program: XDP_FLAGS_REPLACE with old_prog_fd */
    LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = b->prog_fd);
    int rc = bpf_xdp_detach(b->xdp_ifindex, b->xdp_flags | XDP_FLAGS_REPLACE, &ao);
    b->xdp_ifindex = 0;
    return rc;
}

int gwbpf_xdp_take(struct gwbpf *b, int ifindex, int old_fd, uint32_t mode_flags)
{
    if (!b || b->prog_fd < 0)
        return -ENOENT;
    if (b->xdp_ifindex)
        return -EALREADY;
    LIBBPF_OPTS(bpf_xdp_attach_opts, ao, .old_prog_fd = old_fd);
    int rc = old_fd >= 0
                 ? bpf_xdp_attach(ifindex, b->prog_fd, mode_flags | XDP_FLAGS_REPLACE, &ao)
                 : bpf_xdp_attach(ifindex, b->prog_fd, mode_flags | XDP_FLAGS_UPDATE_IF_NOEXIST,
                                  NULL);
    if (rc == 0) {
        b->xdp_ifindex = ifindex;
        b->xdp_flags = mode_flags;
    }
    return rc;
}

void gwbpf_xdp_forget(struct gwbpf *b)
{
    if (b)
        b->xdp_ifindex = 0;
}

int gwbpf_xdp_ifindex(const struct gwbpf *b) { return b ? b->xdp_ifindex : 0; }

const char *gwbpf_xdp_mode_name(const struct gwbpf *b)
{
    if (!b || !b->xdp_ifindex)
        return NULL;
    return b->xdp_flags == XDP_FLAGS_DRV_MODE ? "native" : "generic";
}

/* ---- counters ---- */

int gwbpf_xdp_stats(struct gwbpf *b, struct kvg_xdp_stat *out, unsigned n)
{
    if (!b || b->fd[M_STATS] < 0)
        return -EBADF;
    for (unsigned r = 0; r < n; r++) {
        uint32_t key = r;
        out[r].packets = out[r].bytes = 0;
        if (r >= KVG_XDP_STATS_MAX)
            continue;
        if (bpf_map_lookup_elem(b->fd[M_STATS], &key, b->percpu))
            return -errno;
        for (int c = 0; c < b->ncpus; c++) {
            out[r].packets += b->percpu[c].packets;
            out[r].bytes += b->percpu[c].bytes;
        }
    }
    return 0;
}

int gwbpf_splice_stats(struct gwbpf *b, struct kvg_spl_stat *out, unsigned n)
{
    if (!b || b->fd[M_SPL_STATS] < 0)
        return -EBADF;
    /* struct kvg_spl_stat and struct kvg_xdp_stat have one layout */
    _Static_assert(sizeof(struct kvg_spl_stat) == sizeof(struct kvg_xdp_stat), "percpu scratch");
    for (unsigned r = 0; r < n; r++) {
        uint32_t key = r;
        out[r].skbs = out[r].bytes = 0;
        if (r >= KVG_SPLICE_STATS_MAX)
            continue;
        if (bpf_map_lookup_elem(b->fd[M_SPL_STATS], &key, b->percpu))
            return -errno;
        for (int c = 0; c < b->ncpus; c++) {
            out[r].skbs += b->percpu[c].packets;
            out[r].bytes += b->percpu[c].bytes;
        }
    }
    return 0;
}

static const char *const SPL_REASONS[] = KVG_SPL_REASON_NAMES;
_Static_assert(sizeof(SPL_REASONS) / sizeof(SPL_REASONS[0]) == KVG_SPL_REASON_MAX,
               "KVG_SPL_REASON_NAMES must name every enum kvg_spl_reason");

const char *gwbpf_splice_reason_name(unsigned reason)
{
    return reason < KVG_SPL_REASON_MAX ? SPL_REASONS[reason] : NULL;
}

int gwbpf_splice_ok(const struct gwbpf *b, const char **why)
{
    if (why)
        *why = b ? b->splice_why : "no BPF fast path";
    return b && b->splice_ok;
}

const char *gwbpf_xdp_reason_name(unsigned reason)
{
    return reason < KVG_XDP_REASON_MAX ? REASONS[reason] : NULL;
}

int gwbpf_map_fd(const struct gwbpf *b, const char *map_name)
{
    for (int i = 0; b && i < M__COUNT; i++)
        if (!strcmp(MAPS[i].name, map_name))
            return b->fd[i];
    return -1;
}

const struct kvg_pod_load *gwbpf_pod_load(const struct gwbpf *b)
{
    return b ? b->pod_load : NULL;
}

int gwbpf_prog_fd(const struct gwbpf *b)
{
    return b ? b->prog_fd : -1;
}

/* ---- /metrics ---- */

static void counter_head(struct sbuf *o, const char *name, const char *help)
{
    sbuf_printf(o, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

/* "<name>{reason="<reason>"} <v>", v as prometheus_client prints it */
static void sample(struct sbuf *o, const char *name, const char *reason, double v)
{
    char num[PROM_NUM_MAX];
    prom_fmt_num(num, v);
    if (reason)
        sbuf_printf(o, "%s{reason=\"%s\"} %s\n", name, reason, num);
    else
        sbuf_printf(o, "%s %s\n", name, num);
}

void gwbpf_metrics_render(struct gwbpf *b, struct sbuf *o)
{
    struct kvg_xdp_stat xs[KVG_XDP_REASON_MAX];
    sbuf_puts(o, "# HELP kvgate_bpf_enabled 1 if the BPF fast path (pod table, XDP guard) is "
                 "loaded.\n# TYPE kvgate_bpf_enabled gauge\n");
    sample(o, "kvgate_bpf_enabled", NULL, b != NULL);
    if (b && b->gk.wanted) {
        sbuf_printf(o, "# HELP kvgate_xdp_guard_state The XDP guard's hold on %s (--xdp-iface): "
                       "attached, behind_entry (a bypass worker's entry program holds the hook "
                       "and runs the guard behind it), orphaned_entry (a gone worker's entry, "
                       "its flows draining), foreign (another program).\n"
                       "# TYPE kvgate_xdp_guard_state gauge\n", b->gk.ifname);
        static const char *const st[] = {"attached", "behind_entry", "orphaned_entry", "foreign"};
        const char *now = gwbpf_guard_state_name(b);
        for (unsigned i = 0; i < 4; i++)
            sbuf_printf(o, "kvgate_xdp_guard_state{state=\"%s\"} %d\n", st[i], !strcmp(now, st[i]));
        counter_head(o, "kvgate_xdp_guard_reattached_total",
                     "Times kvgated put the XDP guard back after a bypass worker stopped.");
        sample(o, "kvgate_xdp_guard_reattached_total", NULL, (double)b->gk.reattached);
    }
    if (!b || gwbpf_xdp_stats(b, xs, KVG_XDP_REASON_MAX) < 0)
        return;
    counter_head(o, "kvgate_xdp_packets_total", "Packets seen by the XDP guard, by verdict reason.");
    for (unsigned i = 0; i < KVG_XDP_REASON_MAX; i++)
        sample(o, "kvgate_xdp_packets_total", REASONS[i], (double)xs[i].packets);
    counter_head(o, "kvgate_xdp_bytes_total", "Bytes seen by the XDP guard, by verdict reason.");
    for (unsigned i = 0; i < KVG_XDP_REASON_MAX; i++)
        sample(o, "kvgate_xdp_bytes_total", REASONS[i], (double)xs[i].bytes);
}
