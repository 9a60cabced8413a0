/* schedule: seeded arrival processes. See schedule.h. */
#include "schedule.h"

#include <math.h>
#include <string.h>

double lg_gamma(struct lg_rng *r, double shape)
{
    if (shape < 1.0) {
        double u = lg_rng_uniform(r);
        return lg_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = lg_rng_normal(r);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = lg_rng_uniform(r);
        if (u < 1.0 - 0.0331 * x * x * x * x)
            return d * v;
        if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return d * v;
    }
}

double lg_sched_gap(struct lg_rng *r, const struct lg_sched_cfg *c)
{
    if (c->rate <= 0.0)
        return 0.0;
    double mean = 1.0 / c->rate;
    if (c->kind == LG_ARR_GAMMA && c->burstiness > 0.0 && c->burstiness != 1.0)
        return lg_gamma(r, c->burstiness) * (mean / c->burstiness);
    return lg_rng_exp(r, mean);
}

size_t lg_schedule(const struct lg_sched_cfg *c, double horizon_s, size_t max,
                   double *out)
{
    struct lg_rng r;
    lg_rng_seed(&r, lg_mix(c->seed, 0x5c4ed01e));
    double t = 0.0;
    size_t n = 0;
    while (n < max) {
        t += lg_sched_gap(&r, c);
        if (horizon_s > 0.0 && t >= horizon_s)
            break;
        out[n++] = t;
    }
    return n;
}

int lg_arrival_parse(const char *s, enum lg_arrival *out)
{
    if (!strcmp(s, "poisson"))
        *out = LG_ARR_POISSON;
    else if (!strcmp(s, "gamma"))
        *out = LG_ARR_GAMMA;
    else
        return -1;
    return 0;
}
