/* kvcache: vLLM v1's block pool and prefix cache. See kvcache.h. */
#include "podsim/kvcache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

static uint32_t bucket_of(const struct kv_cache *c, uint64_t h)
{
    return (uint32_t)(h ^ (h >> 32)) & c->bucket_mask;
}

/* ---- free queue: doubly linked through blocks[], head = evicted first ---- */

static void fq_remove(struct kv_cache *c, uint32_t id)
{
    struct kv_block *b = &c->blocks[id];
    if (b->prev != KV_NONE)
        c->blocks[b->prev].next = b->next;
    else
        c->free_head = b->next;
    if (b->next != KV_NONE)
        c->blocks[b->next].prev = b->prev;
    else
        c->free_tail = b->prev;
    b->prev = b->next = KV_NONE;
    b->queued = 0;
    c->nfree--;
}

static void fq_push_tail(struct kv_cache *c, uint32_t id)
{
    struct kv_block *b = &c->blocks[id];
    b->next = KV_NONE;
    b->prev = c->free_tail;
    if (c->free_tail != KV_NONE)
        c->blocks[c->free_tail].next = id;
    else
        c->free_head = id;
    c->free_tail = id;
    b->queued = 1;
    c->nfree++;
}

/* ---- hash map: chained buckets through blocks[].hnext ---- */

static void map_insert(struct kv_cache *c, uint32_t id)
{
    uint32_t k = bucket_of(c, c->blocks[id].hash);
    c->blocks[id].hnext = c->buckets[k];
    c->buckets[k] = id;
    c->blocks[id].hashed = 1;
}

static void map_remove(struct kv_cache *c, uint32_t id)
{
    uint32_t k = bucket_of(c, c->blocks[id].hash);
    uint32_t *pp = &c->buckets[k];
    while (*pp != KV_NONE) {
        if (*pp == id) {
            *pp = c->blocks[id].hnext;
            break;
        }
        pp = &c->blocks[*pp].hnext;
    }
    c->blocks[id].hnext = KV_NONE;
    c->blocks[id].hashed = 0;
}

uint32_t kv_find(const struct kv_cache *c, uint64_t hash)
{
    for (uint32_t id = c->buckets[bucket_of(c, hash)]; id != KV_NONE;
         id = c->blocks[id].hnext)
        if (c->blocks[id].hash == hash)
            return id;
    return KV_NONE;
}

int kv_init(struct kv_cache *c, uint32_t nblocks)
{
    memset(c, 0, sizeof(*c));
    if (nblocks < 2)
        return -EINVAL;
    uint32_t nb = 1;
    while (nb < nblocks)
        nb <<= 1;
    c->blocks = calloc(nblocks, sizeof(*c->blocks));
    c->buckets = malloc((size_t)nb * sizeof(*c->buckets));
    if (!c->blocks || !c->buckets) {
        kv_destroy(c);
        return -ENOMEM;
    }
    memset(c->buckets, 0xff, (size_t)nb * sizeof(*c->buckets));
    c->bucket_mask = nb - 1;
    c->nblocks = nblocks;
    c->free_head = c->free_tail = KV_NONE;
    for (uint32_t i = 0; i < nblocks; i++) {
        c->blocks[i].prev = c->blocks[i].next = c->blocks[i].hnext = KV_NONE;
    }
    /* block 0 is vLLM's null block: never free, never handed out */
    c->blocks[0].ref = 1;
    for (uint32_t i = 1; i < nblocks; i++)
        fq_push_tail(c, i);
    return 0;
}

void kv_destroy(struct kv_cache *c)
{
    free(c->blocks);
    free(c->buckets);
    c->blocks = NULL;
    c->buckets = NULL;
}

double kv_usage(const struct kv_cache *c)
{
    if (c->nblocks < 2)
        return 0.0;
    return 1.0 - (double)c->nfree / (double)(c->nblocks - 1);
}

uint64_t kv_block_hash(uint64_t parent, const uint32_t *tokens, uint64_t extra)
{
    /* The parent chains the prefix; the extra key (adapter) keeps equal text
     * under different adapters apart, as vLLM's extra_keys do. */
    uint64_t h = XXH3_64bits_withSeed(tokens, KV_BLOCK_TOKENS * sizeof(uint32_t),
                                      parent ^ (extra * 0x9E3779B97F4A7C15ull));
    return h ? h : 1; /* 0 means "no parent" */
}

size_t kv_lookup(const struct kv_cache *c, const uint64_t *hashes, size_t n)
{
    size_t i = 0;
    while (i < n && kv_find(c, hashes[i]) != KV_NONE)
        i++;
    return i;
}

size_t kv_count_free_hits(const struct kv_cache *c, const uint64_t *hashes,
                          size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = kv_find(c, hashes[i]);
        if (id != KV_NONE && c->blocks[id].queued)
            k++;
    }
    return k;
}

void kv_touch(struct kv_cache *c, const uint64_t *hashes, size_t n,
              uint32_t *out)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t id = kv_find(c, hashes[i]);
        if (id == KV_NONE) /* caller checked with kv_lookup */
            abort();
        if (c->blocks[id].queued)
            fq_remove(c, id);
        c->blocks[id].ref++;
        out[i] = id;
    }
}

int kv_alloc(struct kv_cache *c, uint32_t n, uint32_t *out)
{
    if (n > c->nfree)
        return -ENOSPC;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = c->free_head;
        fq_remove(c, id);
        struct kv_block *b = &c->blocks[id];
        if (b->hashed) {
            map_remove(c, id);
            c->evictions++;
            if (c->obs.removed)
                c->obs.removed(c->obs.ctx, b->hash);
        }
        b->hash = 0;
        b->ref = 1;
        out[i] = id;
    }
    return 0;
}

void kv_commit(struct kv_cache *c, uint32_t id, uint64_t hash, uint64_t parent,
               const uint32_t *tokens, uint32_t lora_id)
{
    struct kv_block *b = &c->blocks[id];
    if (b->hashed || kv_find(c, hash) != KV_NONE)
        return; /* a duplicate computed concurrently: vLLM keeps the first */
    b->hash = hash;
    map_insert(c, id);
    if (c->obs.stored)
        c->obs.stored(c->obs.ctx, hash, parent, tokens, lora_id);
}

void kv_free(struct kv_cache *c, const uint32_t *ids, size_t n)
{
    /* reverse order: the chain's tail lands nearer the head of the queue
     * and is evicted first, keeping the shared head cached longest */
    for (size_t i = n; i-- > 0;) {
        struct kv_block *b = &c->blocks[ids[i]];
        if (b->ref > 0 && --b->ref == 0)
            fq_push_tail(c, ids[i]);
    }
}

int kv_reset(struct kv_cache *c)
{
    if (c->nfree != c->nblocks - 1)
        return -EBUSY;
    for (uint32_t i = 1; i < c->nblocks; i++) {
        if (c->blocks[i].hashed) {
            c->blocks[i].hashed = 0;
            c->blocks[i].hash = 0;
            c->blocks[i].hnext = KV_NONE;
        }
    }
    memset(c->buckets, 0xff, ((size_t)c->bucket_mask + 1) * sizeof(*c->buckets));
    if (c->obs.cleared)
        c->obs.cleared(c->obs.ctx);
    return 0;
}
