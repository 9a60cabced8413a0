/* fairshare: max-min fair shares of a bounded pool (water filling), the cap
 * both indexes put on each pod's entries so that one pod announcing a huge
 * cache cannot starve the others (prefix_index.c, kvindex.c). */
#ifndef KVGATE_CORE_FAIRSHARE_H
#define KVGATE_CORE_FAIRSHARE_H

#include <stdint.h>

/* caps[0..n): what each active pod would like (sorted in place). Returns
 * the level every pod is capped at: walking the capacities upwards, a pod
 * that fits in an equal split of what is left keeps its capacity; the
 * first that does not sets the level for it and every larger one.
 * UINT32_MAX when all fit. The caps min(cap, level) never sum past pool.
 * O(n log n). */
uint32_t fairshare_level(uint32_t *caps, uint32_t n, uint64_t pool);

#endif
