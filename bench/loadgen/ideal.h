/* ideal: the two ceilings next to every measured prefix hit rate.
 *
 * Both are computed on the prompts as the server sees them (rendered, 4
 * bytes a token: kvgate-podsim's tokenizer), over the same requests the run
 * sends, in the order it sends them, from cold caches. Block hashes are
 * chained XXH3-64 over 16-token blocks seeded by the model / adapter name,
 * so equal text for different adapters never matches, as in the server's
 * cache. A request's hit is counted in whole blocks and capped at
 * floor((N-1)/16)*16 of its N prompt tokens (vLLM always computes the last
 * token).
 *
 * Infinite-cache ideal: perfect routing, unbounded KV. A request's hit is
 * the longest prefix it shares with ANY earlier request. No router can pass
 * it on cold pods.
 *
 * Finite-cache ideal (capacity C blocks, the sum of the pods' --kv-blocks):
 * perfect routing into the fleet's real KV capacity, modelled as ONE LRU of
 * C blocks shared by the whole fleet. A request hits the longest prefix of
 * its blocks still in that LRU; then all its full blocks become most
 * recently used, first block last, so that a chain's tail is evicted before
 * its head (vLLM frees a finished request's blocks in reverse order).
 *
 * Why this is a fair ceiling: whatever a router does, the fleet cannot hold
 * more than C blocks, and the single LRU is the most favourable way to
 * hold them: a prefix is stored once for the whole fleet (a real fleet
 * stores it again on every pod that serves it: fragmentation), blocks held
 * by running requests and by generated tokens take no room, and the pods'
 * null blocks (1 per pod) are not subtracted. So on the workloads here a
 * router reaches it only by placing each prefix on one pod and that pod
 * having room. Where it is not exactly an upper bound: LRU is not the
 * optimal replacement policy, and a router changes each pod's reference
 * stream. On a stream that cycles through more blocks than C, one LRU
 * evicts every block just before its reuse, while a router that pins part
 * of the working set to pods where it fits (and sends the rest to a pod it
 * sacrifices) keeps hitting on that part. vLLM also orders its free queue
 * by when a request ends, not when it arrives, and the ideal counts a hit
 * on a prefix a concurrent request is still computing (as the infinite
 * ideal does). Read hit rates above ~100% of the finite ideal as that. */
#ifndef KVGATE_BENCH_IDEAL_H
#define KVGATE_BENCH_IDEAL_H

#include <stddef.h>
#include <stdint.h>

#define LG_BLOCK_TOKENS 16
#define LG_BLOCK_BYTES (4 * LG_BLOCK_TOKENS)
#define LG_IDEAL_MAX_CAPACITY (1ull << 31) /* finite-cache blocks: 32 Ti tokens */

/* One LRU of block hashes (the finite-cache ideal). Nodes are allocated as
 * blocks arrive, up to the capacity; chained hash buckets index them. */
struct lg_lru {
    uint64_t capacity;     /* blocks; 0 = no finite ceiling */
    uint64_t *key;
    uint32_t *prev, *next; /* recency list: head = most recent */
    uint32_t *chain;       /* next node in the same bucket */
    uint32_t *bucket;
    size_t n, alloc, nbucket;
    uint32_t head, tail;
    uint64_t evictions;
    int oom;               /* out of memory: the finite ideal is then a lower bound */
};

struct lg_ideal {
    uint64_t *tab; /* open addressing; 0 = empty (a hash of 0 is stored as 1) */
    size_t cap, n;
    uint64_t hit_tokens, prompt_tokens;
    uint64_t requests;
    struct lg_lru lru;
    uint64_t finite_hit_tokens;
    uint32_t last_finite_hit; /* of the last lg_ideal_add */
};

void lg_ideal_init(struct lg_ideal *d);
void lg_ideal_free(struct lg_ideal *d);

/* Turns on the finite-cache ideal with the fleet's capacity in 16-token
 * blocks (before the first add). 0, or -EINVAL above LG_IDEAL_MAX_CAPACITY. */
int lg_ideal_set_capacity(struct lg_ideal *d, uint64_t blocks);

/* Accounts one request (rendered prompt p[0..n), cache key = model name)
 * after all earlier ones; returns its infinite-cache ideal hit in tokens,
 * and leaves its finite-cache ideal hit in d->last_finite_hit (0 when no
 * capacity is set). */
uint32_t lg_ideal_add(struct lg_ideal *d, const char *model, const char *p, size_t n);

/* hit_tokens / prompt_tokens (0 when empty). */
double lg_ideal_rate(const struct lg_ideal *d);

/* finite_hit_tokens / prompt_tokens; -1 when no capacity is set. */
double lg_ideal_finite_rate(const struct lg_ideal *d);

/* The LRU alone (exposed for tests): the number of leading keys k[0..n)
 * present, then all of them made most recent (k[0] last). */
size_t lg_lru_access(struct lg_lru *l, const uint64_t *k, size_t n);
int lg_lru_contains(const struct lg_lru *l, uint64_t key);

#endif
