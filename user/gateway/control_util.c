/* control_util: each pod's utilisation and cost (core/podutil.h) on the
 * control thread: fed by every scrape (probe.c), shown in /admin/pods and
 * on /metrics, and published as a cost rate per slot for the workers,
 * which charge each finished request at its pod's rate (route.c). */
#include <math.h>
#include <string.h>

#include "common/ev.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "core/engine_metrics.h"
#include "gateway/control_priv.h"

/* the pod's price and batch limit as the config says now (reloads) */
static void refresh(const struct ctl *c, struct cpod *p)
{
    p->util.cost_per_hour = gw_pod_cost_per_hour(&c->cfg, &p->cfg);
    p->util.max_num_seqs = p->cfg.max_num_seqs ? p->cfg.max_num_seqs : 256;
}

static void publish(struct cpod *p)
{
    double r = podutil_rate(&p->util);
    uint64_t bits;
    memcpy(&bits, &r, sizeof(bits));
    atomic_store_explicit(&p->ctl->g->cost_rate[p->info.slot], bits, memory_order_relaxed);
}

void ctl_util_added(struct cpod *p)
{
    podutil_init(&p->util, gw_pod_cost_per_hour(&p->ctl->cfg, &p->cfg), p->cfg.max_num_seqs,
                 ev_now_ns());
    publish(p);
}

void ctl_util_scraped(struct cpod *p, const struct engine_load *el)
{
    refresh(p->ctl, p);
    if (el)
        podutil_scrape(&p->util, el, ev_now_ns());
    else
        podutil_accrue(&p->util, ev_now_ns());
    publish(p);
}

void ctl_util_pod_json(struct ctl *c, uint32_t slot, struct sbuf *o)
{
    struct cpod *p = slot < POD_MAX ? c->pods[slot] : NULL;
    if (!p) {
        sbuf_puts(o, "null");
        return;
    }
    refresh(c, p);
    podutil_accrue(&p->util, ev_now_ns());
    const struct podutil *u = &p->util;
    sbuf_printf(o, "{\"busy_ratio\":%.4f,\"batch_occupancy\":%.4f,\"busy_seconds\":%.3f,"
                   "\"seconds\":%.3f,\"prefill_tokens_computed\":%.0f,"
                   "\"prefill_tokens_cached\":%.0f,\"decode_tokens\":%.0f",
                u->busy_ratio, u->occupancy, u->busy_seconds, u->seconds, u->prefill_computed,
                u->prefill_cached, u->decoded);
    if (u->cost_per_hour >= 0) {
        sbuf_printf(o, ",\"cost_per_hour\":%g,\"cost\":%.6f,\"busy_cost\":%.6f,\"idle_cost\":%.6f",
                    u->cost_per_hour, u->cost, u->busy_cost, u->idle_cost);
        if (u->rate >= 0)
            sbuf_printf(o, ",\"cost_per_million_computed_tokens\":%.6g", u->rate * 1e6);
    } else {
        sbuf_puts(o, ",\"cost_per_hour\":null");
    }
    sbuf_puts(o, "}");
}

struct fam {
    const char *name, *type, *help;
    int priced; /* only for pods with a price */
};

static double fam_value(int i, const struct podutil *u)
{
    switch (i) {
    case 0: return u->busy_seconds;
    case 1: return u->seconds;
    case 2: return u->busy_ratio;
    case 3: return u->occupancy;
    case 4: return u->prefill_computed;
    case 5: return u->prefill_cached;
    case 6: return u->decoded;
    case 7: return u->cost_per_hour;
    case 8: return u->cost;
    case 9: return u->busy_cost;
    default: return u->idle_cost;
    }
}

void ctl_util_metrics_render(struct ctl *c, struct sbuf *o)
{
    static const struct fam fams[] = {
        {"kvgate_pod_busy_seconds_total", "counter",
         "Seconds the pod had running requests (from its scrapes).", 0},
        {"kvgate_pod_observed_seconds_total", "counter",
         "Seconds the pod was observed by scrapes (busy_seconds' denominator).", 0},
        {"kvgate_pod_busy_ratio", "gauge",
         "Share of the last minute (moving) the pod had running requests.", 0},
        {"kvgate_pod_batch_occupancy", "gauge",
         "Running requests over the pod's batch limit (pods[].max_num_seqs).", 0},
        {"kvgate_pod_prefill_tokens_computed_total", "counter",
         "Prompt tokens the pod prefilled (its prompt-token counter minus its prefix-cache hits).",
         0},
        {"kvgate_pod_prefill_tokens_cached_total", "counter",
         "Prompt tokens the pod served from its prefix cache (its prefix-cache hit counter).", 0},
        {"kvgate_pod_decode_tokens_total", "counter",
         "Tokens the pod generated (its generation-token counter).", 0},
        {"kvgate_pod_cost_per_hour", "gauge", "The pod's price per hour (config).", 1},
        {"kvgate_pod_cost_total", "counter",
         "What the pod cost since it was added (price x wall time, busy or not).", 1},
        {"kvgate_pod_busy_cost_total", "counter",
         "Cost accrued while the pod had running requests: what its computed tokens are "
         "charged.", 1},
        {"kvgate_pod_idle_cost_total", "counter",
         "Cost accrued while the pod had no running request: capacity paid for and not used, "
         "charged to no request.", 1},
    };
    uint64_t now = ev_now_ns();
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (c->pods[i]) {
            refresh(c, c->pods[i]);
            podutil_accrue(&c->pods[i]->util, now);
        }
    /* the pool: every pod the table holds */
    double busy = 0, running = 0, seqs = 0, cost = 0, idle = 0;
    uint32_t n = 0;
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct cpod *p = c->pods[i];
        if (!p)
            continue;
        n++;
        busy += p->util.busy_ratio;
        running += p->util.occupancy * p->util.max_num_seqs;
        seqs += p->util.max_num_seqs;
        if (p->util.cost_per_hour >= 0) {
            cost += p->util.cost;
            idle += p->util.idle_cost;
        }
    }
    prom_head(o, "kvgate_pool_busy_ratio", "gauge",
              "Mean over the pods of kvgate_pod_busy_ratio.");
    sbuf_puts(o, "kvgate_pool_busy_ratio");
    prom_value(o, n ? busy / n : 0);
    prom_head(o, "kvgate_pool_batch_occupancy", "gauge",
              "Running requests over the batch limits, all pods together.");
    sbuf_puts(o, "kvgate_pool_batch_occupancy");
    prom_value(o, seqs > 0 ? running / seqs : 0);
    prom_head(o, "kvgate_pool_cost_total", "counter", "What the priced pods cost, together.");
    sbuf_puts(o, "kvgate_pool_cost_total");
    prom_value(o, cost);
    prom_head(o, "kvgate_pool_idle_cost_total", "counter",
              "Cost of the priced pods accrued while they had no running request.");
    sbuf_puts(o, "kvgate_pool_idle_cost_total");
    prom_value(o, idle);
    for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
        prom_head(o, fams[f].name, fams[f].type, fams[f].help);
        for (uint32_t i = 0; i < POD_MAX; i++) {
            const struct cpod *p = c->pods[i];
            if (!p || (fams[f].priced && p->util.cost_per_hour < 0))
                continue;
            sbuf_printf(o, "%s{", fams[f].name);
            prom_label(o, "pod", p->info.name, 1);
            sbuf_puts(o, "}");
            prom_value(o, fam_value((int)f, &p->util));
        }
    }
}
