/* fairshare: see fairshare.h. */
#include "core/fairshare.h"

#include <stdlib.h>

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

uint32_t fairshare_level(uint32_t *caps, uint32_t n, uint64_t pool)
{
    qsort(caps, n, sizeof(caps[0]), cmp_u32);
    uint64_t left = pool;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t share = left / (n - i);
        if (caps[i] > share)
            return (uint32_t)share;
        left -= caps[i];
    }
    return UINT32_MAX;
}
