/* control_kv: the control plane's side of the exact index (issue 11): the
 * exact index (g->kvx) and the KV-event subscriber thread (kvsub.h) are
 * made when the first pod with `kv_events` appears, told about the pods
 * with events after each snapshot publish (pods added, removed, models
 * discovered), and given each scrape's prefix counters and cache size (the
 * silence rule, the index's caps). Routing on the index is not wired here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "core/engine_metrics.h"
#include "core/kvindex.h"
#include "gateway/control_priv.h"
#include "gateway/kvsub.h"

#include <xxhash.h>

static int wants_events(const struct ctl *c)
{
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i] && c->pods[i]->cfg.kv_events[0])
            return 1;
    return 0;
}

/* The index and the thread, once. 0 or -errno (said why). */
static int kv_start(struct ctl *c)
{
    struct gw *g = c->g;
    struct kvindex *x = kvx_new(POD_MAX, g->cfg.kv_max_entries, 1u << 20);
    if (!x) {
        LOG_ERR("kv events: cannot make the exact index: %s", strerror(errno));
        return -ENOMEM;
    }
    struct kvsub_cfg kc = {.replay_timeout_ms = g->cfg.kv_replay_timeout_ms,
                           .silence_ms = g->cfg.kv_silence_ms,
                           .silence_tokens = g->cfg.kv_silence_tokens,
                           .max_pods = POD_MAX};
    struct kvsub *s = kvsub_new(x, &kc);
    int rc = s ? kvsub_start(s) : -ENOMEM;
    if (rc) {
        LOG_ERR("kv events: cannot start the subscriber: %s", strerror(-rc));
        kvsub_free(s);
        kvx_free(x);
        return rc;
    }
    c->kvsub = s;
    __atomic_store_n(&g->kvx, x, __ATOMIC_RELEASE); /* readers: acquire */
    LOG_INFO("kv events: exact index (%u entries) and subscriber started",
             g->cfg.kv_max_entries);
    return 0;
}

/* The model a pod's chains start from: the base model it serves
 * (configured or discovered); "" while unknown (not subscribed until it
 * is). */
static const char *root_model(const struct cpod *p)
{
    return p->info.nmodels ? p->info.models[0] : p->cfg.nmodels ? p->cfg.models[0] : "";
}

/* A signature of what the subscriber must know, so that the publishes
 * that only carry load figures (every scrape) cost it nothing. */
static uint64_t kv_signature(const struct ctl *c)
{
    uint64_t h = 0;
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct cpod *p = c->pods[i];
        if (!p || !p->cfg.kv_events[0])
            continue;
        const char *m = root_model(p);
        h = XXH3_64bits_withSeed(&p->info.slot, sizeof(p->info.slot), h);
        h = XXH3_64bits_withSeed(p->cfg.kv_events, strlen(p->cfg.kv_events) + 1, h);
        h = XXH3_64bits_withSeed(p->cfg.kv_replay, strlen(p->cfg.kv_replay) + 1, h);
        h = XXH3_64bits_withSeed(p->cfg.kv_topic, strlen(p->cfg.kv_topic) + 1, h);
        h = XXH3_64bits_withSeed(m, strlen(m) + 1, h);
    }
    return h | 1; /* 0: never told */
}

void ctl_kv_sync(struct ctl *c)
{
    if (!c->kvsub && (!wants_events(c) || kv_start(c)))
        return;
    uint64_t sig = kv_signature(c);
    if (sig == c->kv_sig)
        return;
    struct kvsub_pod_cfg *v = kv_calloc(POD_MAX, sizeof(*v));
    if (!v)
        return; /* the next publish tries again */
    uint32_t n = 0;
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct cpod *p = c->pods[i];
        if (!p || !p->cfg.kv_events[0])
            continue;
        struct kvsub_pod_cfg *k = &v[n++];
        k->slot = p->info.slot;
        snprintf(k->events, sizeof(k->events), "%s", p->cfg.kv_events);
        snprintf(k->replay, sizeof(k->replay), "%s", p->cfg.kv_replay);
        snprintf(k->topic, sizeof(k->topic), "%s", p->cfg.kv_topic);
        snprintf(k->model, sizeof(k->model), "%s", root_model(p));
    }
    if (kvsub_set_pods(c->kvsub, v, n) == 0)
        c->kv_sig = sig;
    kv_free(v);
}

void ctl_kv_scraped(struct ctl *c, uint32_t slot, const struct engine_load *el)
{
    if (!c->kvsub)
        return;
    int prefix = (el->have & HAVE_PREFIX) != 0;
    kvsub_note_scrape(c->kvsub, slot, prefix ? el->prefix_queries : 0,
                      prefix ? el->prefix_hits : 0,
                      (el->have & HAVE_CACHE_CFG) && el->cache_blocks > 0
                          ? (uint64_t)el->cache_blocks : 0);
}

void ctl_kv_stop(struct ctl *c)
{
    /* the thread goes; the index stays until exit (workers may hold it) */
    kvsub_free(c->kvsub);
    c->kvsub = NULL;
}

int ctl_kv_pod_stats(struct ctl *c, uint32_t slot, struct kvsub_pod_stats *out)
{
    return c->kvsub ? kvsub_pod_stats(c->kvsub, slot, out) : -ENOENT;
}
