/* control_pods: the control thread's pod table (struct cpod by slot) and
 * what it publishes. See control_priv.h.
 *
 * New pods start unhealthy; their first probes go out at once, so a pod
 * that answers is routable within a few milliseconds.
 *
 * No DNS on the control thread once it runs (issue 9): a pod whose host is
 * a name (POST /admin/pods, a reload) waits in `pending` while the
 * resolver thread (resolver.h) looks it up, and joins the table when the
 * answer comes back; a reload that drops it meanwhile cancels it. At
 * start-up, before anything is served, names are resolved in place.
 *
 * Snapshots: every change marks the table dirty; a timer publishes it at
 * the end of the loop iteration, at most once a millisecond (a snapshot
 * copies every pod_info, ~5 KiB each, and a scrape round makes one change
 * per pod). Each publish also gives the metrics their model labels and
 * writes the BPF pod table (issue 5) when the fast path is on. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/netaddr.h"
#include "common/sbuf.h"
#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/bpf.h"
#include "gateway/control_priv.h"
#include "gateway/gwmetrics.h"
#include "gateway/resolver.h"

#define PUBLISH_GAP_NS 1000000ull /* at most one snapshot a millisecond */

/* A pod waiting for its host name (resolver.h). */
struct ctl_pending {
    struct ctl *ctl;
    struct gw_pod_cfg cfg;
    ctl_added_cb done;
    void *arg;
    uint64_t cookie;
    int cancelled;               /* removed meanwhile: not added when it resolves */
    struct ctl_pending *next;
};

/* ---- snapshots ---- */

/* The BPF pod table from snapshot s (the global policy's thresholds:
 * per-model overrides do not apply to the map). A write error is said
 * once, when it differs from the last outcome. */
static void mirror_bpf(struct ctl *c, const struct pod_snapshot *s)
{
    struct gw *g = c->g;
    struct policy_cfg pol;
    pthread_mutex_lock(&g->policy_mu);
    pol = g->policies.global;
    pthread_mutex_unlock(&g->policy_mu);
    int rc = gwbpf_update_pods(g->bpf, s, &g->counters, ev_now_ns(), &pol);
    if (rc < 0 && rc != c->bpf_err)
        LOG_WARN("BPF pod table: write failed: %s", strerror(-rc));
    c->bpf_err = rc;
}

/* This gateway's share of the load at the pods (core/policy.h struct
 * load_share): its in-flight requests (both paths) at the pods with fresh
 * metrics when each was scraped, against what those pods reported
 * running + waiting then. (Ours now against their scrape made a lone
 * gateway's share 0.98: it counts a request before the pod sees it.) */
static void update_load_share(struct ctl *c)
{
    struct gw *g = c->g;
    uint64_t now = ev_now_ns();
    pthread_mutex_lock(&g->policy_mu);
    uint64_t stale = (uint64_t)g->policies.global.stale_ms * 1000000ull;
    pthread_mutex_unlock(&g->policy_mu);
    double own = 0, pods = 0;
    int n = 0;
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct pod_info *p = c->pods[i] ? &c->pods[i]->info : NULL;
        if (!p || !p->metrics_ok || (now > p->scraped_ns && now - p->scraped_ns > stale))
            continue;
        own += p->own_at_scrape; /* ours at the same instant as the pod's figures */
        pods += p->running + p->waiting;
        n++;
    }
    if (!n)
        return; /* nothing fresh to compare with: the share stays */
    load_share_update(&c->share, own, pods, now);
    atomic_store_explicit(&g->load_share_micro,
                          (uint64_t)(load_share_value(&c->share) * 1e6), memory_order_relaxed);
}

static void on_publish(struct ev_loop *l, void *arg)
{
    struct ctl *c = arg;
    c->pub_timer = 0;
    if (!c->dirty)
        return;
    struct pod_snapshot *s = snapshot_new(c->npods);
    if (!s) { /* try again shortly; the workers keep the old one */
        c->pub_timer = ev_timer_at(l, ev_now_ns() + 10 * PUBLISH_GAP_NS, on_publish, c);
        return;
    }
    s->generation = ++c->gen;
    uint32_t n = 0;
    for (uint32_t i = 0; i < POD_MAX && n < c->npods; i++)
        if (c->pods[i])
            s->pods[n++] = c->pods[i]->info;
    s->npods = n;
    snapshot_publish(s);
    if (c->g->metrics) /* model labels: only what the pods serve */
        gw_metrics_served(c->g->metrics, s);
    /* s stays valid: only this thread publishes, and the current snapshot
     * holds a reference until the next publish */
    if (c->g->bpf)
        mirror_bpf(c, s);
    c->dirty = 0;
    c->last_pub = ev_now_ns();
    update_load_share(c);
    ctl_kv_sync(c); /* pods with KV events, their models */
}

void ctl_mark_dirty(struct ctl *c)
{
    c->dirty = 1;
    if (c->pub_timer || !c->l)
        return;
    /* a timer due now fires at the end of this loop iteration */
    uint64_t at = c->last_pub ? c->last_pub + PUBLISH_GAP_NS : 0;
    c->pub_timer = ev_timer_at(c->l, at, on_publish, c);
}

void ctl_publish_now(struct ctl *c)
{
    c->dirty = 1;
    if (c->pub_timer)
        ev_timer_cancel(c->l, c->pub_timer);
    on_publish(c->l, c);
}

/* ---- lookups ---- */

static struct cpod *find_pod(struct ctl *c, const char *name)
{
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i] && !strcmp(c->pods[i]->info.name, name))
            return c->pods[i];
    return NULL;
}

static struct ctl_pending *find_pending(struct ctl *c, const char *name)
{
    for (struct ctl_pending *q = c->pending; q; q = q->next)
        if (!q->cancelled && !strcmp(q->cfg.name, name))
            return q;
    return NULL;
}

static int same_addr(const struct gw_pod_cfg *a, const struct gw_pod_cfg *b)
{
    return !strcmp(a->host, b->host) && a->port == b->port;
}

/* Whether pc may join the table: a new name, a new address, room. Pods
 * waiting for their name to resolve count. 0 or -EEXIST / -ENOSPC + err. */
static int check_new(struct ctl *c, const struct gw_pod_cfg *pc, char *err, size_t errlen)
{
    if (find_pod(c, pc->name)) {
        snprintf(err, errlen, "a pod named \"%s\" exists", pc->name);
        return -EEXIST;
    }
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i] && same_addr(&c->pods[i]->cfg, pc)) {
            snprintf(err, errlen, "pod \"%s\" has the same address", c->pods[i]->info.name);
            return -EEXIST;
        }
    uint32_t waiting = 0;
    for (struct ctl_pending *q = c->pending; q; q = q->next) {
        if (q->cancelled)
            continue;
        waiting++;
        if (!strcmp(q->cfg.name, pc->name) || same_addr(&q->cfg, pc)) {
            snprintf(err, errlen, "pod \"%s\" (same name or address) is being added",
                     q->cfg.name);
            return -EEXIST;
        }
    }
    if (c->npods + waiting >= POD_MAX) {
        snprintf(err, errlen, "the pod table is full (%d pods)", POD_MAX);
        return -ENOSPC;
    }
    return 0;
}

/* ---- adding ---- */

/* Explicitly configured names: all base models until /v1/models says
 * which are adapters. */
static void seed_models(struct cpod *p)
{
    p->info.nmodels = p->info.nadapters = 0;
    p->info.running_loras = 0;
    for (uint32_t i = 0; i < p->cfg.nmodels && i < POD_MAX_MODELS; i++)
        memcpy(p->info.models[p->info.nmodels++], p->cfg.models[i], POD_MODEL_MAX);
}

/* The prefix index's capacity for a pod whose cache size is unknown, as
 * main.c computes it for pidx_new. */
static uint32_t default_capacity(const struct gw_config *cfg)
{
    if (cfg->index_default_blocks)
        return cfg->index_default_blocks;
    return (uint32_t)(27000.0 * 16 * cfg->bytes_per_token / cfg->block_bytes);
}

/* Slots go round-robin, so a freed slot is reused as late as possible
 * (workers may still hold requests counted under it). */
static uint32_t next_free_slot(struct ctl *c)
{
    uint32_t slot = c->next_slot % POD_MAX;
    while (c->pods[slot])
        slot = (slot + 1) % POD_MAX;
    c->next_slot = slot + 1;
    return slot;
}

/* Adds pc at the address its host resolved to. 0 or -ENOMEM + err. */
static int add_resolved(struct ctl *c, const struct gw_pod_cfg *pc,
                        const struct sockaddr_storage *ss, socklen_t sl, char *err, size_t errlen)
{
    struct gw *g = c->g;
    char hostport[POD_NAME_MAX + 8];
    struct cpod *p = kv_calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    uint32_t slot = next_free_slot(c);
    p->ctl = c;
    p->cfg = *pc;
    struct pod_info *in = &p->info;
    in->slot = slot;
    memcpy(in->name, pc->name, sizeof(in->name));
    memcpy(in->host, pc->host, sizeof(in->host));
    in->port = pc->port;
    in->addr = *ss;
    in->addrlen = sl;
    in->engine = pc->engine;
    in->h2c = pc->h2c;
    ctl_util_added(p);
    seed_models(p);
    gw_hostport_text(pc->host, pc->port, hostport, sizeof(hostport));
    struct hget *hs[3] = {&p->mc, &p->hc, &p->vc};
    for (int i = 0; i < 3; i++) {
        hget_init(hs[i], c->l);
        hget_target(hs[i], ss, sl, hostport);
    }
    atomic_store(&g->counters.down_until_ns[slot], 0);
    outlier_reset(&g->outlier, &g->counters, slot); /* the slot's history was another pod's */
    if (g->pidx) {
        pidx_purge_pod(g->pidx, slot);
        pidx_set_capacity(g->pidx, slot, default_capacity(&g->cfg));
    }
    c->pods[slot] = p;
    c->npods++;
    ctl_mark_dirty(c);
    if (c->l)
        probe_now(p);
    return 0;
}

static void unlink_pending(struct ctl *c, struct ctl_pending *q)
{
    for (struct ctl_pending **pp = &c->pending; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            return;
        }
}

/* The resolver answered for q (on this thread). */
static void on_resolved(void *arg, int rc, const struct sockaddr_storage *ss, socklen_t sl,
                        const char *rerr)
{
    struct ctl_pending *q = arg;
    struct ctl *c = q->ctl;
    char err[320];
    int res;
    unlink_pending(c, q);
    if (q->cancelled) {
        res = -ECANCELED;
        snprintf(err, sizeof(err), "a reload removed the pod while its host was resolving");
    } else if (rc) {
        res = -EINVAL;
        snprintf(err, sizeof(err), "url: %s", rerr ? rerr : "cannot resolve host");
    } else if (!(res = check_new(c, &q->cfg, err, sizeof(err)))) {
        res = add_resolved(c, &q->cfg, ss, sl, err, sizeof(err));
    }
    if (q->done)
        q->done(q->arg, q->cookie, res, err);
    else if (res && res != -ECANCELED)
        LOG_WARN("pod \"%s\" not added: %s", q->cfg.name, err);
    kv_free(q);
}

/* A name at run time: to the resolver thread. -EINPROGRESS or -errno. */
static int add_pending(struct ctl *c, const struct gw_pod_cfg *pc, char *err, size_t errlen,
                       ctl_added_cb done, void *arg, uint64_t cookie)
{
    struct ctl_pending *q = kv_calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    *q = (struct ctl_pending){.ctl = c, .cfg = *pc, .done = done, .arg = arg, .cookie = cookie,
                              .next = c->pending};
    c->pending = q;
    int rc = resolver_submit(pc->host, pc->port, on_resolved, q);
    if (rc) {
        unlink_pending(c, q);
        kv_free(q);
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", pc->host, strerror(-rc));
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    return -EINPROGRESS;
}

int ctl_add_pod(struct ctl *c, const struct gw_pod_cfg *pc, char *err, size_t errlen,
                ctl_added_cb done, void *arg, uint64_t cookie)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = check_new(c, pc, err, errlen);
    if (rc)
        return rc;
    if (c->running && !hostport_is_numeric(pc->host))
        return add_pending(c, pc, err, errlen, done, arg, cookie);
    /* no DNS, or start-up (before serving: a name may block here) */
    if (hostport_resolve(pc->host, pc->port, &ss, &sl, err, errlen))
        return -EINVAL;
    return add_resolved(c, pc, &ss, sl, err, errlen);
}

void ctl_resolving_json(struct ctl *c, struct sbuf *o)
{
    int n = 0;
    sbuf_puts(o, "[");
    for (struct ctl_pending *q = c->pending; q; q = q->next) {
        if (q->cancelled)
            continue;
        sbuf_puts(o, n++ ? ",\"" : "\"");
        sbuf_json_escape(o, q->cfg.name, strlen(q->cfg.name));
        sbuf_puts(o, "\"");
    }
    sbuf_puts(o, "]");
}

/* ---- removing, draining ---- */

static void free_pod(struct cpod *p)
{
    hget_free(&p->mc);
    hget_free(&p->hc);
    hget_free(&p->vc);
    kv_free(p);
}

int ctl_remove_pod(struct ctl *c, const char *name)
{
    struct cpod *p = find_pod(c, name);
    struct ctl_pending *q = p ? NULL : find_pending(c, name);
    if (q) { /* not there yet: it will not be */
        q->cancelled = 1;
        return 0;
    }
    if (!p)
        return -ENOENT;
    uint32_t slot = p->info.slot;
    c->pods[slot] = NULL;
    c->npods--;
    if (c->g->pidx) /* its entries go, its fair share back to the others */
        pidx_remove_pod(c->g->pidx, slot);
    if (c->g->sessions) /* a later pod in this slot is not theirs */
        session_forget_slot(c->g->sessions, slot);
    tokload_forget_rate(&c->g->tl, slot); /* a later pod in this slot is measured afresh */
    free_pod(p);
    ctl_mark_dirty(c);
    return 0;
}

int ctl_drain_pod(struct ctl *c, const char *name, int drain)
{
    struct cpod *p = find_pod(c, name);
    if (!p)
        return -ENOENT;
    if (p->info.draining != !!drain) {
        p->info.draining = (uint8_t)!!drain;
        ctl_mark_dirty(c);
    }
    return 0;
}

/* ---- a reloaded config ---- */

static const struct gw_pod_cfg *find_cfg(const struct gw_config *nc, const char *name)
{
    for (uint32_t j = 0; j < nc->npods; j++)
        if (!strcmp(nc->pods[j].name, name))
            return &nc->pods[j];
    return NULL;
}

static int same_models(const struct gw_pod_cfg *a, const struct gw_pod_cfg *b)
{
    if (a->nmodels != b->nmodels)
        return 0;
    for (uint32_t i = 0; i < a->nmodels; i++)
        if (strcmp(a->models[i], b->models[i]))
            return 0;
    return 1;
}

/* A pod that stays: its engine and model list as configured now. */
static void update_pod(struct cpod *p, const struct gw_pod_cfg *pc)
{
    int changed = 0;
    if (p->cfg.engine != pc->engine) {
        p->info.engine = pc->engine;
        p->info.metrics_ok = 0;
        changed = 1;
    }
    if (p->info.h2c != pc->h2c) {
        p->info.h2c = pc->h2c;
        changed = 1;
    }
    int models = !same_models(&p->cfg, pc);
    if (strcmp(p->cfg.kv_events, pc->kv_events) || strcmp(p->cfg.kv_replay, pc->kv_replay) ||
        strcmp(p->cfg.kv_topic, pc->kv_topic))
        changed = 1; /* the subscriber hears of it at the publish */
    p->cfg = *pc;
    if (models) {
        seed_models(p);
        changed = 1;
    }
    if (changed) {
        ctl_mark_dirty(p->ctl);
        if (p->ctl->l)
            probe_models(p);
    }
}

int ctl_pods_sync(struct ctl *c, const struct gw_config *nc, char *err, size_t errlen)
{
    /* removed pods, and pods whose address changed (they come back as new
     * pods: another slot, an empty prefix index); the same for pods still
     * waiting for their name to resolve */
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct gw_pod_cfg *pc = c->pods[i] ? find_cfg(nc, c->pods[i]->info.name) : NULL;
        if (c->pods[i] && (!pc || !same_addr(pc, &c->pods[i]->cfg)))
            ctl_remove_pod(c, c->pods[i]->info.name);
    }
    for (struct ctl_pending *q = c->pending; q; q = q->next) {
        const struct gw_pod_cfg *pc = find_cfg(nc, q->cfg.name);
        if (!pc || !same_addr(pc, &q->cfg))
            q->cancelled = 1;
    }
    int rc = 0;
    for (uint32_t j = 0; j < nc->npods; j++) {
        const struct gw_pod_cfg *pc = &nc->pods[j];
        struct cpod *p = find_pod(c, pc->name);
        if (p) {
            update_pod(p, pc);
            continue;
        }
        if (find_pending(c, pc->name))
            continue; /* on its way */
        char e[256];
        int arc = ctl_add_pod(c, pc, e, sizeof(e), NULL, NULL, 0);
        if (arc && arc != -EINPROGRESS && !rc) { /* the rest still applies */
            snprintf(err, errlen, "pods[%u]: %s", j, e);
            rc = -1;
        }
    }
    return rc;
}

void ctl_pods_free(struct ctl *c)
{
    while (c->pending) {
        struct ctl_pending *q = c->pending;
        c->pending = q->next;
        kv_free(q);
    }
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i]) {
            free_pod(c->pods[i]);
            c->pods[i] = NULL;
        }
    c->npods = 0;
    if (c->pub_timer && c->l)
        ev_timer_cancel(c->l, c->pub_timer);
    c->pub_timer = 0;
    c->dirty = 0;
}
