/* kvcache: the block pool and prefix cache of a vLLM v1 pod, block for block.
 *
 * - nblocks blocks of KV_BLOCK_TOKENS tokens; block 0 is the null block and
 *   never handed out, so nblocks-1 are usable and
 *   usage = 1 - free / (nblocks - 1)  (vllm:kv_cache_usage_perc).
 * - A block that becomes full of computed tokens gets a chained hash
 *   h = XXH3-64(tokens, seed = parent hash ^ extra key) and is entered in the
 *   hash -> block map, so later requests with the same prefix hit it.
 * - Free blocks sit on one LRU queue; allocation pops from the head and, if
 *   the popped block still has a hash, evicts it from the map. Freeing a
 *   request returns its blocks in reverse order, so a chain's tail is
 *   evicted before its head. A hit on a free block takes it off the queue.
 *
 * Observers (KV events) are told of every block stored and removed. */
#ifndef KVGATE_PODSIM_KVCACHE_H
#define KVGATE_PODSIM_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#define KV_BLOCK_TOKENS 16
#define KV_NONE UINT32_MAX

struct kv_block {
    uint64_t hash;
    uint32_t ref;     /* requests holding it */
    uint32_t prev;    /* free-queue links (KV_NONE at the ends) */
    uint32_t next;
    uint32_t hnext;   /* hash-bucket chain */
    uint8_t hashed;   /* entered in the map */
    uint8_t queued;   /* on the free queue */
};

struct kv_observer {
    void *ctx;
    /* a full block entered the map: its hash, its parent's (0 for the first
     * block), its tokens, the adapter id (0 = base model) */
    void (*stored)(void *ctx, uint64_t hash, uint64_t parent,
                   const uint32_t *tokens, uint32_t lora_id);
    void (*removed)(void *ctx, uint64_t hash);
    void (*cleared)(void *ctx);
};

struct kv_cache {
    uint32_t nblocks;     /* total, null block included */
    uint32_t nfree;
    uint32_t free_head, free_tail;
    struct kv_block *blocks;
    uint32_t *buckets;    /* hash map heads, KV_NONE = empty */
    uint32_t bucket_mask;
    uint64_t evictions;   /* hashed blocks reused for new data */
    struct kv_observer obs;
};

/* 0 or -ENOMEM / -EINVAL (nblocks < 2). All blocks but the null one free. */
int kv_init(struct kv_cache *c, uint32_t nblocks);
void kv_destroy(struct kv_cache *c);

double kv_usage(const struct kv_cache *c);

/* Hash of one full block given its parent's hash and an extra key (the
 * adapter's id, or 0). */
uint64_t kv_block_hash(uint64_t parent, const uint32_t *tokens, uint64_t extra);

/* Number of leading hashes present in the map (no side effects). */
size_t kv_lookup(const struct kv_cache *c, const uint64_t *hashes, size_t n);
/* Block id cached under hash, or KV_NONE. */
uint32_t kv_find(const struct kv_cache *c, uint64_t hash);
/* Of the first n hashes (all present), how many sit on the free queue. */
size_t kv_count_free_hits(const struct kv_cache *c, const uint64_t *hashes,
                          size_t n);

/* Takes the blocks cached under hashes[0..n) (all present): ref++, off the
 * free queue; writes their ids to out. */
void kv_touch(struct kv_cache *c, const uint64_t *hashes, size_t n,
              uint32_t *out);

/* Pops n blocks from the free-queue head (evicting hashed ones) with ref=1.
 * 0, or -ENOSPC if fewer than n are free (nothing taken). */
int kv_alloc(struct kv_cache *c, uint32_t n, uint32_t *out);

/* Enters a full block in the map under hash (no-op if the hash is already
 * mapped, as vLLM keeps the first copy). */
void kv_commit(struct kv_cache *c, uint32_t id, uint64_t hash, uint64_t parent,
               const uint32_t *tokens, uint32_t lora_id);

/* Releases a request's blocks, ids in table order; they are returned to the
 * free queue tail in reverse order when their ref drops to 0. */
void kv_free(struct kv_cache *c, const uint32_t *ids, size_t n);

/* vLLM's reset_prefix_cache: drops every hash. -EBUSY if any block is in
 * use (as vLLM refuses while requests run). */
int kv_reset(struct kv_cache *c);

#endif
