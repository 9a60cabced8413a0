/* schedule: open-loop arrival times, precomputed and seeded (as wrk2 does).
 *
 * Inter-arrival gaps are exponential (Poisson process) or gamma with shape
 * B = burstiness and mean 1/rate, so the coefficient of variation of the
 * gaps is 1/sqrt(B): B = 1 is Poisson, B < 1 burstier, B > 1 smoother.
 * Times are simulated seconds from the start of the run; the runner turns
 * them into wall-clock deadlines (x time scale). */
#ifndef KVGATE_BENCH_SCHEDULE_H
#define KVGATE_BENCH_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

enum lg_arrival {
    LG_ARR_POISSON = 0,
    LG_ARR_GAMMA,
};

struct lg_sched_cfg {
    enum lg_arrival kind;
    double rate;       /* arrivals per (simulated) second; <= 0: all at t = 0 */
    double burstiness; /* gamma shape, > 0 (ignored for Poisson) */
    uint64_t seed;
};

/* Gamma(shape, scale 1) variate, shape > 0 (Marsaglia-Tsang; shape < 1 by
 * the boost Gamma(a) = Gamma(a + 1) * U^(1/a)). */
double lg_gamma(struct lg_rng *r, double shape);

/* One inter-arrival gap in seconds. */
double lg_sched_gap(struct lg_rng *r, const struct lg_sched_cfg *c);

/* Writes arrival times t_1 < t_2 < ... (t_i = sum of the first i gaps) to
 * out while t < horizon_s (horizon_s <= 0: no time bound) and at most max of
 * them. Returns how many were written. Same cfg -> same schedule. */
size_t lg_schedule(const struct lg_sched_cfg *c, double horizon_s, size_t max,
                   double *out);

/* Parses "poisson" / "gamma"; 0 or -1. */
int lg_arrival_parse(const char *s, enum lg_arrival *out);

#endif
