/* outlier: passive outlier detection and the retry budget. See outlier.h. */
#include "core/outlier.h"

#include <string.h>

#define MS 1000000ull

void outlier_defaults(struct outlier_cfg *c)
{
    *c = (struct outlier_cfg){
        .consecutive = 5, .ratio = 0.5, .min_requests = 10, .window_ms = 10000,
        .base_ms = 5000, .max_ms = 300000, .recent_ms = 10000,
        .budget_percent = 20, .min_per_second = 5,
    };
}

static int64_t burst_milli(const struct outlier_cfg *c)
{
    int64_t b = (int64_t)(c->min_per_second * 10 * 1000); /* 10 s of the minimum */
    return b < 1000 ? 1000 : b;
}

void outlier_init(struct outlier *o, const struct outlier_cfg *cfg)
{
    memset(o, 0, sizeof(*o));
    if (cfg)
        o->cfg = *cfg;
    else
        outlier_defaults(&o->cfg);
    atomic_store(&o->budget, burst_milli(&o->cfg));
}

void outlier_reset(struct outlier *o, struct pod_counters *cnt, uint32_t slot)
{
    if (slot >= POD_MAX)
        return;
    atomic_store(&o->s[slot].consec, 0);
    atomic_store(&o->s[slot].win_req, 0);
    atomic_store(&o->s[slot].win_fail, 0);
    atomic_store(&o->s[slot].win_start, 0);
    atomic_store(&o->s[slot].times, 0);
    atomic_store(&cnt->ejected_until_ns[slot], 0);
    atomic_store(&cnt->last_fail_ns[slot], 0);
}

int outlier_ejected(const struct pod_counters *cnt, uint32_t slot, uint64_t now_ns)
{
    return slot < POD_MAX &&
           atomic_load_explicit(&cnt->ejected_until_ns[slot], memory_order_relaxed) > now_ns;
}

int outlier_record(struct outlier *o, struct pod_counters *cnt, uint32_t slot, int ok,
                   uint64_t now_ns)
{
    if (slot >= POD_MAX)
        return 0;
    const struct outlier_cfg *c = &o->cfg;
    __typeof__(o->s[0]) *s = &o->s[slot];

    /* a fixed window; whoever sees it expire starts the next one */
    uint64_t ws = atomic_load(&s->win_start);
    if (now_ns - ws > (uint64_t)c->window_ms * MS &&
        atomic_compare_exchange_strong(&s->win_start, &ws, now_ns)) {
        atomic_store(&s->win_req, 0);
        atomic_store(&s->win_fail, 0);
    }
    unsigned req = atomic_fetch_add(&s->win_req, 1) + 1;
    if (ok) {
        atomic_store(&s->consec, 0);
        return 0;
    }
    atomic_store(&cnt->last_fail_ns[slot], now_ns);
    unsigned fail = atomic_fetch_add(&s->win_fail, 1) + 1;
    unsigned consec = atomic_fetch_add(&s->consec, 1) + 1;
    if (outlier_ejected(cnt, slot, now_ns))
        return 0; /* failures of requests sent before the ejection */
    int eject = (c->consecutive && consec >= c->consecutive) ||
                (c->ratio > 0 && req >= c->min_requests && (double)fail >= c->ratio * req);
    if (!eject)
        return 0;
    /* one worker ejects; the others see it ejected above */
    uint64_t until = atomic_load(&cnt->ejected_until_ns[slot]);
    if (until > now_ns)
        return 0;
    unsigned times = atomic_load(&s->times);
    if (until && now_ns - until > (uint64_t)c->max_ms * MS)
        times = 0; /* not ejected for max_ms: the backoff starts over */
    uint64_t dur = (uint64_t)c->base_ms * MS << (times < 16 ? times : 16);
    if (dur > (uint64_t)c->max_ms * MS)
        dur = (uint64_t)c->max_ms * MS;
    if (!atomic_compare_exchange_strong(&cnt->ejected_until_ns[slot], &until, now_ns + dur))
        return 0;
    atomic_store(&s->times, times + 1);
    atomic_store(&s->consec, 0);
    atomic_store(&s->win_req, 0);
    atomic_store(&s->win_fail, 0);
    atomic_store(&s->win_start, now_ns);
    atomic_fetch_add(&cnt->ejections[slot], 1);
    return 1;
}

void retry_budget_deposit(struct outlier *o)
{
    int64_t add = (int64_t)(o->cfg.budget_percent * 10); /* percent -> thousandths */
    int64_t cap = burst_milli(&o->cfg) + add * 100;      /* ... and 100 requests' worth */
    if (atomic_fetch_add(&o->budget, add) + add > cap)
        atomic_fetch_sub(&o->budget, add);
}

int retry_budget_take(struct outlier *o, uint64_t now_ns)
{
    /* credit the minimum rate for the time since the last credit */
    uint64_t last = atomic_load(&o->budget_ns);
    if (now_ns > last && atomic_compare_exchange_strong(&o->budget_ns, &last, now_ns)) {
        int64_t add = last ? (int64_t)((double)(now_ns - last) / 1e6 * o->cfg.min_per_second) : 0;
        int64_t cap = burst_milli(&o->cfg);
        int64_t cur = atomic_load(&o->budget);
        if (add > 0 && cur < cap)
            atomic_fetch_add(&o->budget, cur + add > cap ? cap - cur : add);
    }
    if (atomic_fetch_sub(&o->budget, 1000) >= 1000)
        return 1;
    atomic_fetch_add(&o->budget, 1000);
    return 0;
}
