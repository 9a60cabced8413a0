/* prefix_index: the gateway's approximate picture of which pod holds which
 * prompt prefix in its KV cache.
 *
 * Keys are fingerprint block keys (fingerprint.h: chained over the raw
 * prompt bytes, then keyed by model / adapter / cache_salt). After each pick
 * the chosen pod is credited with the request's keys; each pod keeps an LRU
 * of keys bounded by its capacity (from the pod's scraped cache size, else
 * a default), so what a pod would have evicted ages out here too.
 * Lookup answers, for every pod at once, how many leading blocks of the
 * request it holds. Thread-safe (one mutex; lookups and inserts are short). */
#ifndef KVGATE_CORE_PREFIX_INDEX_H
#define KVGATE_CORE_PREFIX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define PIDX_MAX_PODS 1024

struct prefix_index;

/* max_entries bounds memory (about 32 bytes an entry) across all pods;
 * default_capacity is a pod's LRU size in blocks until set otherwise.
 * NULL on ENOMEM / EINVAL. */
struct prefix_index *pidx_new(uint32_t max_pods, uint32_t max_entries,
                              uint32_t default_capacity);
void pidx_free(struct prefix_index *x);

/* LRU capacity of one pod, in fingerprint blocks (shrinking evicts). */
void pidx_set_capacity(struct prefix_index *x, uint32_t pod, uint32_t blocks);

/* Credits pod with keys[0..n) (most recently used; the head of the chain
 * is touched last so it outlives its tail, as in the pod's own cache). */
void pidx_insert(struct prefix_index *x, uint32_t pod, const uint64_t *keys,
                 size_t n);

/* match[p] = leading blocks of keys[0..n) that pod p holds, for every
 * p < max_pods (match has max_pods entries). Returns the best match. */
uint32_t pidx_lookup(struct prefix_index *x, const uint64_t *keys, size_t n,
                     uint16_t *match);

/* Forgets everything about a pod (it left, or its cache was reset). */
void pidx_purge_pod(struct prefix_index *x, uint32_t pod);

/* Blocks currently credited to a pod. */
uint32_t pidx_pod_blocks(struct prefix_index *x, uint32_t pod);

#endif
