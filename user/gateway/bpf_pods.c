/* bpf_pods: the BPF pod table (kvg_pods) mirrors the pod snapshots the
 * control thread publishes. See bpf.h; the layout is bpf/kvgate.h.
 *
 * A pod's flags are the policy's own judgment (core/policy.h,
 * pod_fitness): fresh within stale_ms, saturated by the queue estimate
 * that counts the gateway's in-flight requests, or by KV usage. The only
 * readers of the saturated flag are the splice verdict and splice_hold,
 * and every spliced flow is a session pinned to its pod: the flag is the
 * judgment for a session's own pod (the relaxed queue bound), so the
 * kernel hands a request up exactly when kvgated itself would move that
 * session elsewhere. */
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include <bpf/bpf.h>

#include "core/podtable.h"
#include "core/policy.h"
#include "gateway/bpf_priv.h"

static uint32_t clamp_u32(double v, double max)
{
    if (!(v > 0)) /* also NaN */
        return 0;
    if (v >= max)
        return (uint32_t)max;
    return (uint32_t)(v + 0.5);
}

static void fill_addr(struct kvg_pod *k, const struct pod_info *in)
{
    if (in->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&in->addr;
        k->family = KVG_AF_INET;
        k->addr[0] = a->sin_addr.s_addr;
        k->port = a->sin_port;
    } else if (in->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&in->addr;
        k->family = KVG_AF_INET6;
        memcpy(k->addr, &a->sin6_addr, sizeof(k->addr));
        k->port = a->sin6_port;
    }
}

static void fill_pod(struct kvg_pod *k, const struct pod_info *in, const struct pod_counters *c,
                     uint64_t now_ns, const struct policy_cfg *pol)
{
    memset(k, 0, sizeof(*k));
    fill_addr(k, in);
    k->engine = (uint8_t)in->engine;
    k->waiting = clamp_u32(in->waiting, 4294967295.0);
    k->running = clamp_u32(in->running, 4294967295.0);
    k->kv_permille = clamp_u32(in->kv_usage * 1000.0, 1000.0);
    k->inflight = c ? pod_inflight(c, in->slot) : 0;
    k->metrics_ns = in->metrics_ok ? in->scraped_ns : 0;

    struct pod_fitness fit;
    /* written at a publish, just after scrapes: the others' load is what
     * the scrape said (no sends since to extrapolate from, share 1) */
    pod_fitness(pol, in, pod_load_estimate(pol, in, k->inflight, 1, now_ns), now_ns,
                1 /* a session's own pod */, &fit);
    uint32_t f = KVG_POD_F_PRESENT;
    if (in->healthy)
        f |= KVG_POD_F_HEALTHY;
    if (in->draining)
        f |= KVG_POD_F_DRAINING;
    if (in->metrics_ok)
        f |= KVG_POD_F_METRICS_OK;
    if (fit.fresh)
        f |= KVG_POD_F_METRICS_FRESH;
    if (fit.saturated)
        f |= KVG_POD_F_SATURATED;
    /* the pod's own numbers alone: the bypass's boundary test */
    struct pod_fitness own;
    pod_fitness(pol, in, in->running + in->waiting, now_ns, 1, &own);
    if (own.fresh && own.saturated)
        f |= KVG_POD_F_SATURATED_OWN;
    if (c && (atomic_load_explicit(&c->down_until_ns[in->slot], memory_order_relaxed) > now_ns ||
              atomic_load_explicit(&c->ejected_until_ns[in->slot], memory_order_relaxed) > now_ns))
        f |= KVG_POD_F_DOWN; /* the splice hands its next request up to kvgated */
    k->flags = f;
}

/* Writes n (key, value) pairs: one batch, or one by one where the kernel
 * has no batch update for arrays. */
static int write_slots(int fd, struct gwbpf_podmap *m, uint32_t n)
{
    if (!n)
        return 0;
    uint32_t count = n;
    DECLARE_LIBBPF_OPTS(bpf_map_batch_opts, bo, .elem_flags = BPF_ANY);
    if (bpf_map_update_batch(fd, m->keys, m->vals, &count, &bo) == 0)
        return 0;
    int e = errno;
    if (e != EINVAL && e != ENOTSUP && e != EOPNOTSUPP && e != ENOTTY)
        return -e;
    for (uint32_t i = 0; i < n; i++)
        if (bpf_map_update_elem(fd, &m->keys[i], &m->vals[i], BPF_ANY))
            return -errno;
    return 0;
}

/* Writes the slots of m->want that differ from what the map holds. */
static int sync_slots(int fd, struct gwbpf_podmap *m, uint64_t generation)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < KVG_POD_MAX; i++) {
        struct kvg_pod *w = &m->want[i];
        if (m->shadow_ok) {
            w->generation = m->shadow[i].generation; /* not a change by itself */
            if (!memcmp(w, &m->shadow[i], sizeof(*w)))
                continue;
        }
        w->generation = w->flags ? generation : 0;
        m->keys[n] = i;
        m->vals[n++] = *w;
    }
    int rc = write_slots(fd, m, n);
    if (rc < 0) {
        m->shadow_ok = 0; /* unknown state: rewrite everything next time */
        return rc;
    }
    memcpy(m->shadow, m->want, sizeof(m->shadow));
    m->shadow_ok = 1;
    return 0;
}

int gwbpf_update_pods(struct gwbpf *b, const struct pod_snapshot *s,
                      const struct pod_counters *c, uint64_t now_ns,
                      const struct policy_cfg *pol)
{
    if (!b || b->fd[M_PODS] < 0)
        return -EBADF;
    memset(b->pods.want, 0, sizeof(b->pods.want));
    for (uint32_t i = 0; s && i < s->npods; i++) {
        const struct pod_info *in = &s->pods[i];
        if (in->slot < KVG_POD_MAX)
            fill_pod(&b->pods.want[in->slot], in, c, now_ns, pol);
    }
    return sync_slots(b->fd[M_PODS], &b->pods, s ? s->generation : 0);
}

int gwbpf_clear_pods(struct gwbpf *b)
{
    if (!b || b->fd[M_PODS] < 0)
        return -EBADF;
    memset(b->pods.want, 0, sizeof(b->pods.want));
    b->pods.shadow_ok = 0; /* write every slot */
    return sync_slots(b->fd[M_PODS], &b->pods, 0);
}
