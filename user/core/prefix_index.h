/* prefix_index: the gateway's approximate picture of which pod holds which
 * prompt prefix in its KV cache.
 *
 * Keys are fingerprint block keys (fingerprint.h: chained over the raw
 * prompt bytes, then keyed by model / adapter / cache_salt). After each pick
 * the chosen pod is credited with the request's keys; each pod keeps an LRU
 * of keys bounded by its capacity (from the pod's scraped cache size, else
 * a default), so what a pod would have evicted ages out here too.
 * Lookup answers, for every pod at once, how many leading blocks of the
 * request it holds. Thread-safe (one mutex; lookups and inserts are short).
 *
 * Hostile input (issue 9): keys are computable offline (the fingerprint is
 * public), so bucket hashing is keyed by a per-index random seed
 * (getrandom): crafted prompts cannot pile up in one bucket chain that
 * every worker scans under the lock. And one pod cannot take the shared
 * entry pool from the others: each active pod's capacity is capped at its
 * max-min fair share of max_entries (pods that need less than an equal
 * split keep all of theirs; what is left is split equally among the
 * larger ones), so the caps never sum past the pool. */
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

/* LRU capacity of one pod, in fingerprint blocks (shrinking evicts); also
 * makes the pod active (it counts in the fair shares). */
void pidx_set_capacity(struct prefix_index *x, uint32_t pod, uint32_t blocks);
/* What the pod may hold now: min(its capacity, its fair share). */
uint32_t pidx_pod_limit(struct prefix_index *x, uint32_t pod);

/* Credits pod with keys[0..n) (most recently used; the head of the chain
 * is touched last so it outlives its tail, as in the pod's own cache).
 * Makes the pod active. */
void pidx_insert(struct prefix_index *x, uint32_t pod, const uint64_t *keys,
                 size_t n);

/* Takes back what pidx_insert credited: the pod no longer holds
 * keys[0..n) (an attempt that failed before its pod prefilled anything).
 * Keys it does not hold are ignored. */
void pidx_withdraw(struct prefix_index *x, uint32_t pod, const uint64_t *keys, size_t n);

/* match[p] = leading blocks of keys[0..n) that pod p holds, for every
 * p < max_pods (match has max_pods entries). Returns the best match. */
uint32_t pidx_lookup(struct prefix_index *x, const uint64_t *keys, size_t n,
                     uint16_t *match);

/* Forgets everything a pod holds (its cache was reset); it stays active. */
void pidx_purge_pod(struct prefix_index *x, uint32_t pod);
/* The pod left: purged, and out of the fair shares until it is given a
 * capacity or credited again. */
void pidx_remove_pod(struct prefix_index *x, uint32_t pod);

/* Blocks currently credited to a pod. */
uint32_t pidx_pod_blocks(struct prefix_index *x, uint32_t pod);

#endif
