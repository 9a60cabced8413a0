/* loghist: a latency histogram with log-scale buckets 2.5% wide, from
 * 10 us to about 40 min, whose quantiles are within 2.5% of the exact
 * order statistic: what the guarded rollout judges and the report shows.
 * Plain counters, no locks (the owner's lock guards it). 3.2 KB. */
#ifndef KVGATE_CORE_LOGHIST_H
#define KVGATE_CORE_LOGHIST_H

#include <stdint.h>

#define LOGHIST_N 800

struct loghist {
    uint32_t b[LOGHIST_N];
    uint64_t n;
};

/* One value in milliseconds (<= 0.01 lands in the first bucket). */
void loghist_add(struct loghist *h, double ms);
/* The q-quantile (nearest rank) in milliseconds, as its bucket's geometric
 * middle; -1 when empty. */
double loghist_quantile(const struct loghist *h, double q);

#endif
