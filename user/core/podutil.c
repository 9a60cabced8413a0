/* podutil: one pod's utilisation and cost. See podutil.h. */
#include "core/podutil.h"

#include <math.h>
#include <string.h>

#include "core/engine_metrics.h"

void podutil_init(struct podutil *u, double cost_per_hour, uint32_t max_num_seqs,
                  uint64_t now_ns)
{
    memset(u, 0, sizeof(*u));
    u->cost_per_hour = cost_per_hour;
    u->max_num_seqs = max_num_seqs ? max_num_seqs : 256;
    u->window_s = 10;
    u->rate = -1;
    u->last_ns = u->accrued_ns = now_ns;
}

/* the moving sums decay over dt seconds */
static void decay(struct podutil *u, double dt)
{
    double k = exp(-dt / u->window_s);
    u->w_cost *= k;
    u->w_tokens *= k;
    u->w_seconds *= k;
    u->w_busy *= k;
}

static void update_rate(struct podutil *u)
{
    u->rate = u->cost_per_hour >= 0 && u->w_tokens >= 1 ? u->w_cost / u->w_tokens : -1;
    u->busy_ratio = u->w_seconds > 0 ? u->w_busy / u->w_seconds : 0;
}

/* The pod's price accrues over wall time (cost); what was paid while it
 * had running requests (busy_cost, from the scrapes) goes to the tokens it
 * computed, the rest is idle_cost. The sums decay before the interval's
 * busy cost and tokens are added. */
static void accrue(struct podutil *u, uint64_t now_ns, double busy_s, double tokens)
{
    double dt = now_ns > u->accrued_ns ? (double)(now_ns - u->accrued_ns) / 1e9 : 0;
    if (now_ns > u->accrued_ns)
        u->accrued_ns = now_ns;
    decay(u, dt);
    u->w_tokens += tokens;
    if (u->cost_per_hour > 0) {
        u->cost += u->cost_per_hour * dt / 3600.0;
        double b = u->cost_per_hour * busy_s / 3600.0;
        u->busy_cost += b;
        u->w_cost += b;
        u->idle_cost = u->cost > u->busy_cost ? u->cost - u->busy_cost : 0;
    }
    update_rate(u);
}

void podutil_accrue(struct podutil *u, uint64_t now_ns)
{
    accrue(u, now_ns, 0, 0);
}

static double counter_delta(uint64_t now, uint64_t prev)
{
    return now >= prev ? (double)(now - prev) : (double)now; /* a reset: from 0 */
}

void podutil_scrape(struct podutil *u, const struct engine_load *el, uint64_t now_ns)
{
    double tokens = 0, busy = 0;
    double dt = now_ns > u->last_ns ? (double)(now_ns - u->last_ns) / 1e9 : 0;
    u->last_ns = now_ns;
    if (el->have & HAVE_RUNNING) {
        double busy_now = el->running > 0;
        u->occupancy = el->running / (double)u->max_num_seqs;
        if (u->have_prev & 1) {
            busy = dt * (busy_now + (u->prev_running > 0)) / 2;
            u->seconds += dt;
            u->busy_seconds += busy;
            u->w_seconds += dt;
            u->w_busy += busy;
        }
        u->prev_running = el->running;
        u->have_prev |= 1;
    }
    if ((el->have & HAVE_TOKENS) && (u->have_prev & 2)) {
        double prompt = counter_delta(el->prompt_tokens, u->prev_prompt);
        double hits = (el->have & HAVE_PREFIX) ? counter_delta(el->prefix_hits, u->prev_hits) : 0;
        if (hits > prompt)
            hits = prompt;
        double gen = counter_delta(el->generation_tokens, u->prev_gen);
        u->prefill_computed += prompt - hits;
        u->prefill_cached += hits;
        u->decoded += gen;
        tokens = prompt - hits + gen;
    }
    if (el->have & HAVE_TOKENS) {
        u->prev_prompt = el->prompt_tokens;
        u->prev_gen = el->generation_tokens;
        u->prev_hits = (el->have & HAVE_PREFIX) ? el->prefix_hits : 0;
        u->have_prev |= 2;
    }
    accrue(u, now_ns, busy, tokens);
}

double podutil_rate(const struct podutil *u)
{
    return u->rate;
}
