/* control_kv: the control plane's side of the exact index (issue 11): the
 * exact index (g->kvx) and the KV-event subscriber thread (kvsub.h) are
 * made when the first pod with `kv_events` appears, told about the pods
 * with events after each snapshot publish (pods added, removed, models
 * discovered), and given each scrape's prefix counters and cache size (the
 * silence rule, the index's caps). Each pod's index mode and event counts
 * go to /metrics and /admin/pods (ctl_kv_metrics_render, ctl_kv_pod_json).
 * Routing on the index is not wired here. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "core/engine_metrics.h"
#include "core/kvindex.h"
#include "gateway/control_priv.h"
#include "gateway/exact.h"
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
        k->untrusted = k->model[0] && !gw_exact_model_ok(c->g, k->model);
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

/* A pod's index stats; a pod without events (or before the subscriber
 * exists) is APPROXIMATE, "not_configured". */
static void pod_index(struct ctl *c, uint32_t slot, struct kvsub_pod_stats *st)
{
    if (ctl_kv_pod_stats(c, slot, st) || !st->configured) {
        memset(st, 0, sizeof(*st));
        st->index.mode = KVX_APPROXIMATE;
        st->index.why = KVX_WHY_NOT_CONFIGURED;
    }
}

void ctl_kv_pod_json(struct ctl *c, uint32_t slot, struct sbuf *o)
{
    struct kvsub_pod_stats st;
    pod_index(c, slot, &st);
    const struct kvx_pod_stats *x = &st.index;
    sbuf_printf(o, "{\"mode\":\"%s\",\"why\":\"%s\",\"transitions\":%llu,\"blocks\":%llu,"
                   "\"batches\":%llu,\"events\":%llu,\"gaps\":%llu,\"replays_filled\":%llu,"
                   "\"replays_failed\":%llu}",
                kvx_mode_name(x->mode), x->mode == KVX_EXACT ? "none" : kvx_why_name(x->why),
                (unsigned long long)x->transitions, (unsigned long long)x->held,
                (unsigned long long)x->batches, (unsigned long long)x->events,
                (unsigned long long)x->gaps, (unsigned long long)x->replays_filled,
                (unsigned long long)x->replays_failed);
}

void ctl_kv_metrics_render(struct ctl *c, const struct pod_snapshot *s, struct sbuf *o)
{
    if (!s)
        return;
    static const struct {
        const char *name, *type, *help;
    } F[] = {
        {"kvgate_pod_index_mode", "gauge",
         "1 for the mode of the pod's cache index: exact (its KV events, in sequence), "
         "gapped (a replay under way), syncing (rebuilding after a loss), approximate "
         "(no events, silent, or lost: the gateway's own guess)."},
        {"kvgate_pod_index_transitions_total", "counter",
         "Changes of the pod's index mode, by the mode entered."},
        {"kvgate_pod_kv_events_total", "counter", "KV-cache events applied from the pod."},
        {"kvgate_pod_kv_event_gaps_total", "counter", "Gaps in the pod's event sequence."},
        {"kvgate_pod_kv_replays_total", "counter",
         "Replays asked of the pod after a gap, by result (filled, failed)."},
        {"kvgate_pod_index_blocks", "gauge", "Blocks the exact index holds for the pod."},
    };
    struct kvsub_pod_stats *st = kv_calloc(s->npods ? s->npods : 1, sizeof(*st));
    if (!st)
        return;
    for (uint32_t i = 0; i < s->npods; i++)
        pod_index(c, s->pods[i].slot, &st[i]);
    for (size_t f = 0; f < sizeof(F) / sizeof(F[0]); f++) {
        prom_head(o, F[f].name, F[f].type, F[f].help);
        for (uint32_t i = 0; i < s->npods; i++) {
            const struct kvx_pod_stats *x = &st[i].index;
            const char *pod = s->pods[i].name;
            int per_mode = f <= 1, per_result = f == 4;
            for (int k = 0; k < (per_mode ? KVX_NMODES : per_result ? 2 : 1); k++) {
                sbuf_printf(o, "%s{", F[f].name);
                prom_label(o, "pod", pod, 1);
                double v;
                if (f == 0 || f == 1) {
                    prom_label(o, "mode", kvx_mode_name((enum kvx_mode)k), 0);
                    v = f == 0 ? (double)(x->mode == (enum kvx_mode)k) : (double)x->entered[k];
                } else if (f == 4) {
                    prom_label(o, "result", k ? "failed" : "filled", 0);
                    v = (double)(k ? x->replays_failed : x->replays_filled);
                } else {
                    v = f == 2 ? (double)x->events : f == 3 ? (double)x->gaps : (double)x->held;
                }
                sbuf_puts(o, "}");
                prom_value(o, v);
            }
        }
    }
    kv_free(st);
}
