/* probe: the control thread's periodic probes of every pod
 * (control_pods.c owns the table; scrape.c carries the requests; the
 * timers live in struct ctl). See control.c for the rules:
 *
 *   /metrics    every scrape.interval_ms unless the last one is in flight;
 *               parsed by the pod's engine; sets load, LoRA bits, cache size
 *               (and the prefix index's capacity for the pod)
 *   /health     every scrape.health_interval_ms: healthy after one success,
 *               unhealthy after two failures in a row or one refused
 *               connection (seen by any probe)
 *   /v1/models  at start, every scrape.models_interval_ms, on recovery, and
 *               when a running adapter is not known yet
 *
 * Each scrape outcome is counted with gw_metrics_scrape (cause "timeout",
 * "connect", "http", "parse" or "local").
 *
 * Bounded work per pod (issue 9): a /metrics or /v1/models body past
 * scrape.max_page_bytes fails (cause "too_large": the pod's metrics go
 * stale, its health is untouched), and reading plus parsing pages may take
 * at most half of each scrape interval (PARSE_SHARE). When the pods' pages
 * together need more, each gets a max-min fair share of that budget: pods
 * whose pages cost less than an equal split are scraped every interval;
 * the costliest ones run up a debt and are scraped again once it is paid
 * (counted as result "throttled" meanwhile). So one pod's page cannot
 * make the others stale.
 *
 * A probe that fails for a reason of this host's own (out of descriptors,
 * memory or local ports: gw_errno_is_local) says nothing about the pod: it
 * is counted in kvgate_local_errors_total{where="scrape"|"health"|"models"}
 * and never counts towards marking the pod unhealthy. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/ev.h"
#include "core/blockkey.h"
#include "core/engine_metrics.h"
#include "core/prefix_index.h"
#include "core/kvindex.h"
#include "gateway/control_priv.h"
#include "gateway/gwmetrics.h"
#include "gateway/scrape.h"

#define MODELS_RETRY_NS 1000000000ull /* unknown running adapter: refresh after 1 s */
#define PARSE_SHARE 0.5                /* of each scrape interval, for reading + parsing */
#define HEALTH_MAX_BODY 65536

static void probe_health(struct cpod *p);
static void probe_metrics(struct cpod *p);

static void set_healthy(struct cpod *p, int v)
{
    if (p->info.healthy != v) {
        p->info.healthy = (uint8_t)v;
        ctl_mark_dirty(p->ctl);
    }
}

static enum engine_kind kind_of(enum pod_engine e)
{
    switch (e) {
    case POD_ENGINE_SGLANG: return ENGINE_SGLANG;
    case POD_ENGINE_TRTLLM: return ENGINE_TRTLLM;
    default: return ENGINE_VLLM;
    }
}

static const char *fail_cause(const struct hget *h, int err)
{
    if (err == -ETIMEDOUT)
        return "timeout";
    if (err == -EMSGSIZE)
        return "too_large";
    if (gw_errno_is_local(err))
        return "local";
    return h->connect_failed ? "connect" : "http";
}

/* A failure of this host's own: counted, and the pod is not blamed. */
static int local_failure(struct ctl *c, const char *where, int err)
{
    if (!err || !gw_errno_is_local(err))
        return 0;
    gw_metrics_local_error(c->g->metrics, where, err);
    return 1;
}

/* running_loras "a,b" -> bits over adapters[]; 1 if a name is unknown */
static int lora_bits(struct cpod *p, const char *list, uint64_t *bits)
{
    int unknown = 0;
    *bits = 0;
    while (*list) {
        const char *e = strchr(list, ',');
        size_t n = e ? (size_t)(e - list) : strlen(list);
        if (n) {
            uint32_t i = 0;
            for (; i < p->info.nadapters; i++)
                if (strlen(p->info.adapters[i]) == n && !memcmp(p->info.adapters[i], list, n))
                    break;
            if (i < p->info.nadapters && i < 64)
                *bits |= 1ull << i;
            else if (i == p->info.nadapters)
                unknown = 1;
        }
        list += n + (e ? 1 : 0);
    }
    return unknown;
}

static void on_metrics(struct hget *h, int err, int status, const char *body, size_t len,
                       void *arg)
{
    struct cpod *p = arg;
    struct gw *g = p->ctl->g;
    uint64_t t0 = ev_now_ns();
    /* what this page cost the loop: reading now, parsing below */
    p->scrape_cost_ns = h->io_ns;
    p->scrape_credit_ns -= (int64_t)h->io_ns;
    if (err || status != 200) {
        gw_metrics_scrape(g->metrics, p->info.name, err ? fail_cause(h, err) : "http");
        if (local_failure(p->ctl, "scrape", err))
            return;
        if (err == -ECONNREFUSED)
            set_healthy(p, 0);
        return;
    }
    struct engine_load el;
    int prc = engine_load_parse(body, len, kind_of(p->info.engine), NULL, &el);
    uint64_t parse_ns = ev_now_ns() - t0;
    p->scrape_cost_ns += parse_ns;
    p->scrape_credit_ns -= (int64_t)parse_ns;
    if (prc != 0) {
        gw_metrics_scrape(g->metrics, p->info.name, "parse");
        ctl_util_scraped(p, NULL);
        return;
    }
    struct pod_info *in = &p->info;
    if (el.have & HAVE_WAITING)
        in->waiting = el.waiting;
    if (el.have & HAVE_RUNNING)
        in->running = el.running;
    if (el.have & HAVE_KV)
        in->kv_usage = el.kv_usage;
    if (el.have & HAVE_LORA) {
        uint64_t bits;
        if (lora_bits(p, el.running_loras, &bits) && !hget_busy(&p->vc) &&
            ev_now_ns() - p->models_at > MODELS_RETRY_NS)
            probe_models(p); /* an adapter loaded since the last discovery */
        in->running_loras = bits;
    }
    if ((el.have & HAVE_CACHE_CFG) && el.cache_blocks > 0 && el.block_size > 0) {
        double t = (double)el.cache_blocks * (double)el.block_size;
        uint32_t tokens = t > 4e9 ? 4000000000u : (uint32_t)t;
        if (tokens != in->cache_tokens && g->pidx) {
            double blocks = (double)tokens * g->cfg.bytes_per_token / g->cfg.block_bytes;
            pidx_set_capacity(g->pidx, in->slot, blocks > 4e9 ? 4000000000u : (uint32_t)blocks);
        }
        in->cache_tokens = tokens;
        in->block_size = el.block_size > BK_MAX_BLOCK_SIZE ? 0 : (uint32_t)el.block_size;
    }
    ctl_kv_scraped(p->ctl, in->slot, &el);
    ctl_util_scraped(p, &el);
    in->own_at_scrape = pod_inflight(&g->counters, in->slot);
    {
        struct kvindex *x = __atomic_load_n(&g->kvx, __ATOMIC_ACQUIRE);
        in->foreign_at_scrape = x ? kvx_pod_foreign_tokens(x, in->slot) : 0;
    }
    in->scraped_ns = ev_now_ns();
    in->metrics_ok = 1;
    ctl_mark_dirty(p->ctl);
    gw_metrics_scrape(g->metrics, in->name, NULL);
}

static void probe_metrics(struct cpod *p)
{
    if (hget_busy(&p->mc))
        return;
    const struct gw_config *cfg = &p->ctl->cfg;
    hget_set_max_body(&p->mc, cfg->scrape_max_page);
    int rc = hget_get(&p->mc, "/metrics", cfg->scrape_timeout_ms, on_metrics, p);
    if (rc) {
        gw_metrics_scrape(p->ctl->g->metrics, p->info.name, fail_cause(&p->mc, rc));
        local_failure(p->ctl, "scrape", rc);
    }
}

static void on_health(struct hget *h, int err, int status, const char *body, size_t len,
                      void *arg)
{
    struct cpod *p = arg;
    if (!err && status == 200) {
        p->health_fails = 0;
        atomic_store(&p->ctl->g->counters.down_until_ns[p->info.slot], 0);
        if (!p->info.healthy) {
            set_healthy(p, 1);
            probe_models(p); /* it may have restarted with other adapters */
        }
        return;
    }
    if (local_failure(p->ctl, "health", err))
        return; /* says nothing about the pod */
    if (p->health_fails < UINT32_MAX)
        p->health_fails++;
    if (err == -ECONNREFUSED || p->health_fails >= 2)
        set_healthy(p, 0);
}

static void probe_health(struct cpod *p)
{
    hget_set_max_body(&p->hc, HEALTH_MAX_BODY);
    if (!hget_busy(&p->hc))
        local_failure(p->ctl, "health",
                      hget_get(&p->hc, "/health", p->ctl->cfg.scrape_timeout_ms, on_health, p));
}

static int in_list(const char (*list)[POD_MODEL_MAX], uint32_t n, const char *s)
{
    for (uint32_t i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

/* The lists of a /v1/models answer. */
struct listed {
    uint32_t nb, na;
    char bases[POD_MAX_MODELS][POD_MODEL_MAX], ads[POD_MAX_ADAPTERS][POD_MODEL_MAX];
};

/* Base models: "parent" null or absent (for SGLang / TRT-LLM also an entry
 * that is its own "root"); adapters: a non-null "parent". */
static void classify(const cJSON *data, enum pod_engine engine, struct listed *ls)
{
    const cJSON *m;
    ls->nb = ls->na = 0;
    cJSON_ArrayForEach(m, data) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "id");
        const cJSON *par = cJSON_GetObjectItemCaseSensitive(m, "parent");
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(m, "root");
        if (!cJSON_IsString(id) || !id->valuestring[0] ||
            strlen(id->valuestring) >= POD_MODEL_MAX)
            continue;
        int adapter = cJSON_IsString(par) && strcmp(par->valuestring, id->valuestring);
        if (adapter && engine != POD_ENGINE_VLLM && cJSON_IsString(rt) &&
            !strcmp(rt->valuestring, id->valuestring))
            adapter = 0;
        if (adapter && ls->na < POD_MAX_ADAPTERS && !in_list(ls->ads, ls->na, id->valuestring))
            strcpy(ls->ads[ls->na++], id->valuestring);
        else if (!adapter && ls->nb < POD_MAX_MODELS && !in_list(ls->bases, ls->nb, id->valuestring))
            strcpy(ls->bases[ls->nb++], id->valuestring);
    }
}

/* ni's models and adapters from what the pod listed: the configured names,
 * classified, or everything it listed. */
static void served_lists(const struct cpod *p, const struct listed *ls, struct pod_info *ni)
{
    ni->nmodels = ni->nadapters = 0;
    if (p->cfg.nmodels) {
        for (uint32_t i = 0; i < p->cfg.nmodels; i++) {
            if (in_list(ls->ads, ls->na, p->cfg.models[i]))
                strcpy(ni->adapters[ni->nadapters++], p->cfg.models[i]);
            else
                strcpy(ni->models[ni->nmodels++], p->cfg.models[i]);
        }
        return;
    }
    memcpy(ni->models, ls->bases, sizeof(ls->bases[0]) * ls->nb);
    memcpy(ni->adapters, ls->ads, sizeof(ls->ads[0]) * ls->na);
    ni->nmodels = ls->nb;
    ni->nadapters = ls->na;
}

static void on_models(struct hget *h, int err, int status, const char *body, size_t len,
                      void *arg)
{
    struct cpod *p = arg;
    local_failure(p->ctl, "models", err);
    if (err || status != 200)
        return; /* keep what we had */
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *data = root ? cJSON_GetObjectItemCaseSensitive(root, "data") : NULL;
    if (!cJSON_IsArray(data)) {
        cJSON_Delete(root);
        return;
    }
    static struct listed ls;   /* one at a time; too big for the stack */
    static struct pod_info ni;
    classify(data, p->info.engine, &ls);
    cJSON_Delete(root);
    served_lists(p, &ls, &ni);
    int changed = ni.nmodels != p->info.nmodels || ni.nadapters != p->info.nadapters;
    for (uint32_t i = 0; !changed && i < ni.nmodels; i++)
        changed = strcmp(ni.models[i], p->info.models[i]) != 0;
    for (uint32_t i = 0; !changed && i < ni.nadapters; i++)
        changed = strcmp(ni.adapters[i], p->info.adapters[i]) != 0;
    if (!changed)
        return;
    p->info.nmodels = ni.nmodels;
    p->info.nadapters = ni.nadapters;
    memcpy(p->info.models, ni.models, sizeof(ni.models));
    memcpy(p->info.adapters, ni.adapters, sizeof(ni.adapters));
    p->info.running_loras = 0; /* indexes moved; the next scrape sets them */
    ctl_mark_dirty(p->ctl);
}

void probe_models(struct cpod *p)
{
    if (hget_busy(&p->vc))
        return;
    p->models_at = ev_now_ns();
    hget_set_max_body(&p->vc, p->ctl->cfg.scrape_max_page);
    local_failure(p->ctl, "models",
                  hget_get(&p->vc, "/v1/models", p->ctl->cfg.scrape_timeout_ms, on_models, p));
}

/* ---- periodic ticks ---- */

static uint64_t next_tick(uint64_t *next, uint32_t period_ms)
{
    uint64_t now = ev_now_ns(), per = (uint64_t)period_ms * 1000000ull;
    *next += per;
    if (*next <= now) /* fell behind (or first tick): restart from now */
        *next = now + per;
    return *next;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The parse budget's water level: the largest per-round share L such that
 * sum over pods of min(cost, L) fits the budget; UINT64_MAX when every
 * page fits as it is. */
static uint64_t parse_level(struct ctl *c, uint64_t budget)
{
    static uint64_t cost[POD_MAX];
    uint32_t n = 0;
    uint64_t total = 0;
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i]) {
            cost[n] = c->pods[i]->scrape_cost_ns;
            total += cost[n++];
        }
    if (total <= budget)
        return UINT64_MAX;
    qsort(cost, n, sizeof(cost[0]), cmp_u64);
    for (uint32_t i = 0; i < n; i++) {
        uint64_t share = budget / (n - i);
        if (cost[i] > share)
            return share;
        budget -= cost[i];
    }
    return UINT64_MAX;
}

static void on_scrape_tick(struct ev_loop *l, void *arg)
{
    struct ctl *c = arg;
    uint64_t budget = (uint64_t)(c->cfg.scrape_ms * 1e6 * PARSE_SHARE);
    uint64_t level = parse_level(c, budget);
    for (uint32_t i = 0; i < POD_MAX; i++) {
        struct cpod *p = c->pods[i];
        if (!p)
            continue;
        /* each round pays `level` off the pod's debt, and a pod cannot save
         * more than one round's share */
        if (level == UINT64_MAX)
            p->scrape_credit_ns = 0;
        else if (p->scrape_credit_ns + (int64_t)level > (int64_t)level)
            p->scrape_credit_ns = (int64_t)level;
        else
            p->scrape_credit_ns += (int64_t)level;
        if (p->scrape_credit_ns < 0 && !hget_busy(&p->mc)) {
            gw_metrics_scrape(c->g->metrics, p->info.name, "throttled");
            continue;
        }
        probe_metrics(p);
    }
    struct ctl_probes *t = &c->probes;
    t->t_scrape = ev_timer_at(l, next_tick(&t->scrape_next, c->cfg.scrape_ms), on_scrape_tick, c);
}

static void on_health_tick(struct ev_loop *l, void *arg)
{
    struct ctl *c = arg;
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i])
            probe_health(c->pods[i]);
    struct ctl_probes *t = &c->probes;
    t->t_health = ev_timer_at(l, next_tick(&t->health_next, c->cfg.health_ms), on_health_tick, c);
}

static void on_models_tick(struct ev_loop *l, void *arg)
{
    struct ctl *c = arg;
    struct ctl_probes *t = &c->probes;
    t->t_models = 0;
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i])
            probe_models(c->pods[i]);
    if (c->cfg.models_ms)
        t->t_models = ev_timer_at(l, next_tick(&t->models_next, c->cfg.models_ms),
                                  on_models_tick, c);
}

void probes_arm(struct ctl *c)
{
    probes_disarm(c);
    struct ctl_probes *t = &c->probes;
    t->armed = 1;
    t->t_scrape = ev_timer_at(c->l, 0, on_scrape_tick, c);
    t->t_health = ev_timer_at(c->l, 0, on_health_tick, c);
    t->t_models = ev_timer_at(c->l, 0, on_models_tick, c);
}

void probes_disarm(struct ctl *c)
{
    struct ctl_probes *t = &c->probes;
    if (t->armed && c->l) {
        ev_timer_cancel(c->l, t->t_scrape);
        ev_timer_cancel(c->l, t->t_health);
        ev_timer_cancel(c->l, t->t_models);
    }
    memset(t, 0, sizeof(*t));
}

void probe_now(struct cpod *p)
{
    probe_health(p);
    probe_models(p);
    probe_metrics(p);
}
