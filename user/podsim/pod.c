/* pod: drives one engine from the event loop. Each step is planned, a timer
 * is armed for its duration x time scale, and at the timer the step is
 * applied (tokens reach clients), KV events are published and the next step
 * is planned at once, as vLLM's engine core loop does. */
#include "podsim/pod.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/ev.h"
#include "podsim/kvevents.h"

double pod_now(const struct pod *p)
{
    return (double)(ev_now_ns() - p->t0_ns) / 1e9 / p->time_scale;
}

double pod_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double pod_rand(struct pod *p)
{
    /* xorshift64*: fault draws only, not the token stream */
    p->rng ^= p->rng >> 12;
    p->rng ^= p->rng << 25;
    p->rng ^= p->rng >> 27;
    return (double)((p->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static void lora_names(const struct engine *e, uint64_t mask, char *out,
                       size_t cap)
{
    size_t len = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < e->nloras && i < 64; i++) {
        if (!(mask & (1ull << i)))
            continue;
        int n = snprintf(out + len, cap - len, "%s%s", len ? "," : "",
                         e->loras[i].name);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

void pod_note_lora(struct pod *p)
{
    const struct engine *e = &p->eng;
    uint64_t run = 0, wait = 0;
    for (uint32_t i = 0; i < e->nrunning; i++)
        if (e->running[i]->lora)
            run |= 1ull << (e->running[i]->lora - 1);
    for (const struct sim_req *r = e->wait_head; r; r = r->next)
        if (r->lora)
            wait |= 1ull << (r->lora - 1);
    char rs[256], ws[256];
    lora_names(e, run, rs, sizeof(rs));
    lora_names(e, wait, ws, sizeof(ws));
    /* vLLM sets the gauge to time.time() under the current label set; old
     * label sets stay in the registry, so keep the recent ones, newest first */
    int n = p->nlora_info, i;
    for (i = 0; i < n; i++)
        if (!strcmp(p->lora_info[i].running, rs) &&
            !strcmp(p->lora_info[i].waiting, ws))
            break;
    if (i == n) {
        if (n < (int)(sizeof(p->lora_info) / sizeof(p->lora_info[0])))
            p->nlora_info = ++n;
        i = n - 1; /* oldest slot is overwritten when full */
    }
    for (; i > 0; i--)
        p->lora_info[i] = p->lora_info[i - 1];
    snprintf(p->lora_info[0].running, sizeof(p->lora_info[0].running), "%s", rs);
    snprintf(p->lora_info[0].waiting, sizeof(p->lora_info[0].waiting), "%s", ws);
    p->lora_info[0].ts = pod_unix_now();
}

static void pod_kick(struct pod *p);

static void on_step_done(struct ev_loop *l, void *arg)
{
    struct pod *p = arg;
    p->step_timer = 0;
    engine_step_end(&p->eng, pod_now(p));
    if (p->kvpub && p->kvb)
        kvev_flush(p->kvpub, p->kvb, pod_unix_now());
    if (p->eng.nloras)
        pod_note_lora(p);
    pod_kick(p);
}

static void pod_kick(struct pod *p)
{
    if (p->step_timer || p->eng.in_step || !engine_busy(&p->eng))
        return;
    double ms = engine_step_begin(&p->eng, pod_now(p));
    if (p->kvpub && p->kvb) /* evictions and stores happen while planning */
        kvev_flush(p->kvpub, p->kvb, pod_unix_now());
    if (ms <= 0)
        return;
    uint64_t wall_ns = (uint64_t)(ms * 1e6 * p->time_scale);
    p->step_timer = ev_timer_at(p->loop, ev_now_ns() + wall_ns, on_step_done, p);
}

void pod_submit(struct pod *p, struct sim_req *r)
{
    engine_submit(&p->eng, r, pod_now(p));
    pod_kick(p);
}

void pod_abort(struct pod *p, struct sim_req *r)
{
    engine_abort(&p->eng, r);
}
