/* podutil: one pod's utilisation and cost, from its scrapes. No I/O, no
 * locks: the control thread owns it (one per pod), and publishes the cost
 * rate the workers charge requests at (podutil_rate).
 *
 * What is measured, all from what the engine itself exposes:
 *   busy seconds     time with running requests: an interval between two
 *                    scrapes counts whole when both ends saw running > 0,
 *                    half when one did (the trapezoid; scrapes are 10-100
 *                    ms apart, so the error is one interval at each edge)
 *   batch occupancy  running / the engine's batch limit (max_num_seqs)
 *   prefill tokens   computed and served from the prefix cache: deltas of
 *                    vLLM's prompt-token and prefix-cache-hit counters
 *   decode tokens    deltas of the generation-token counter
 * Counter resets (an engine restart) are taken as a restart from 0: the
 * delta is the new value.
 *
 * Cost: the pod's price per hour accrues over wall time, busy or not
 * (cost). Attribution rule: what the pod cost while it had running
 * requests (busy_cost: price x busy seconds) is split over the tokens it
 * computed meanwhile (prefill of uncached tokens plus decode, from its own
 * counters: every sender's tokens, other gateway replicas' included), so a
 * computed token costs rate = busy cost / computed tokens, both as moving
 * sums over `window` seconds (10); a request is charged (its uncached
 * prompt tokens + its completion tokens) x its pod's rate when it ends.
 * What the pod cost while idle (idle_cost = cost - busy_cost) is charged
 * to no request: it is capacity paid for and not used, reported apart.
 * So a policy that makes the pods compute less for the same answers (cache
 * hits) or batch more tokens into each busy second costs less per token,
 * while the fleet's bill (cost) is what it is; at a fixed load the saving
 * shows as idle cost, the headroom to serve more. */
#ifndef KVGATE_CORE_PODUTIL_H
#define KVGATE_CORE_PODUTIL_H

#include <stdint.h>

struct engine_load;

struct podutil {
    double cost_per_hour;      /* < 0: unpriced */
    uint32_t max_num_seqs;
    double window_s;           /* the rate's window (10 s) */
    /* totals since the pod was added (exported as counters) */
    double seconds, busy_seconds;
    double prefill_computed, prefill_cached, decoded;
    double cost, busy_cost, idle_cost;
    /* now */
    double occupancy;          /* running / max_num_seqs, last scrape */
    double busy_ratio;         /* busy seconds / seconds over the window */
    double rate;               /* cost per computed token, -1 none */
    /* state */
    uint64_t last_ns, accrued_ns;
    int have_prev;             /* 1: a running count seen, 2: token counters seen */
    double prev_running;
    uint64_t prev_prompt, prev_gen, prev_hits;
    double w_cost, w_tokens, w_seconds, w_busy; /* moving sums (exponential) */
};

void podutil_init(struct podutil *u, double cost_per_hour, uint32_t max_num_seqs,
                  uint64_t now_ns);
/* Cost accrues to now (called at every scrape, failed ones too, and before
 * reading the totals). */
void podutil_accrue(struct podutil *u, uint64_t now_ns);
/* One good scrape: el's running count and token counters (HAVE_RUNNING,
 * HAVE_TOKENS, HAVE_PREFIX; absent fields leave their figures alone). */
void podutil_scrape(struct podutil *u, const struct engine_load *el, uint64_t now_ns);
/* What computed tokens cost on this pod now: -1 unpriced or no tokens in
 * the window. */
double podutil_rate(const struct podutil *u);

#endif
