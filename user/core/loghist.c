/* loghist: see loghist.h. Bucket b holds [LO x G^b, LO x G^(b+1)) ms. */
#include "core/loghist.h"

#include <math.h>

#define LO 0.01
#define G 1.025

void loghist_add(struct loghist *h, double ms)
{
    int b = 0;
    if (ms > LO) {
        b = (int)(log(ms / LO) / log(G));
        if (b >= LOGHIST_N)
            b = LOGHIST_N - 1;
    }
    h->b[b]++;
    h->n++;
}

double loghist_quantile(const struct loghist *h, double q)
{
    if (!h->n)
        return -1;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n);
    if (rank < 1)
        rank = 1;
    uint64_t cum = 0;
    for (int i = 0; i < LOGHIST_N; i++) {
        cum += h->b[i];
        if (cum >= rank)
            return LO * pow(G, i + 0.5);
    }
    return LO * pow(G, LOGHIST_N - 0.5);
}
