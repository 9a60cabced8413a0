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
#include "common/log.h"

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

#define KV_TICK_NS (10ull * 1000 * 1000)

/* Replay requests are polled (the ROUTER's descriptor is edge-triggered
 * and shared with ZMQ's own thread): every 10 ms while the ring exists. */
static void on_kv_tick(struct ev_loop *l, void *arg)
{
    struct pod *p = arg;
    uint64_t now = ev_now_ns();
    uint64_t due = kvev_tick(p->kvpub, p->kvb, now);
    uint64_t next = now + KV_TICK_NS;
    if (due && due < next)
        next = due > now ? due : now + 1;
    p->kv_timer = ev_timer_at(l, next, on_kv_tick, p);
}

static const char *lora_name(void *ctx, uint32_t id)
{
    const struct engine *e = ctx;
    return id >= 1 && id <= e->nloras ? e->loras[id - 1].name : NULL;
}

int pod_kv_faults(struct pod *p)
{
    if (!p->kvb)
        return 0;
    int rc = kvev_set_faults(p->kvb, p->faults.kv_drop_rate, p->faults.kv_delay_ms,
                             p->rng ^ 0x6b76);
    if (!rc)
        pod_kv_arm(p);
    return rc;
}

int pod_kv_setup(struct pod *p, const char *host, uint32_t replay_port)
{
    kvev_batch_set_names(p->kvb, lora_name, &p->eng);
    if (replay_port) {
        char ep[300];
        snprintf(ep, sizeof(ep), strchr(host, ':') ? "tcp://[%s]:%u" : "tcp://%s:%u", host,
                 replay_port);
        int rc = kvev_batch_set_replay(p->kvpub, p->kvb, ep, 0);
        if (rc) {
            LOG_ERR("pod %d: KV-event replay on %s: %s", p->index, ep, strerror(-rc));
            return -1;
        }
    }
    if (pod_kv_faults(p)) {
        LOG_ERR("pod %d: out of memory for the KV-event ring", p->index);
        return -1;
    }
    pod_kv_arm(p);
    return 0;
}

void pod_kv_arm(struct pod *p)
{
    if (p->kv_timer || !p->kvpub || !kvev_needs_tick(p->kvb))
        return;
    p->kv_timer = ev_timer_at(p->loop, ev_now_ns() + KV_TICK_NS, on_kv_tick, p);
}

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

int pod_reset_prefix_cache(struct pod *p)
{
    int rc = engine_reset_prefix_cache(&p->eng);
    if (!rc && p->kvpub && p->kvb)
        kvev_flush(p->kvpub, p->kvb, pod_unix_now());
    return rc;
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
