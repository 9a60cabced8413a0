/* ideal: longest-shared-prefix accounting over block-hash chains, with an
 * unbounded set (infinite-cache ideal) and one LRU (finite-cache ideal).
 * See ideal.h for the definitions and why they bound a router. */
#include "ideal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "prompt.h"

#define NIL UINT32_MAX

void lg_ideal_init(struct lg_ideal *d)
{
    memset(d, 0, sizeof(*d));
    d->lru.head = d->lru.tail = NIL;
}

static void lru_free(struct lg_lru *l)
{
    free(l->key);
    free(l->prev);
    free(l->next);
    free(l->chain);
    free(l->bucket);
}

void lg_ideal_free(struct lg_ideal *d)
{
    free(d->tab);
    lru_free(&d->lru);
    lg_ideal_init(d);
}

int lg_ideal_set_capacity(struct lg_ideal *d, uint64_t blocks)
{
    if (blocks > LG_IDEAL_MAX_CAPACITY)
        return -EINVAL;
    d->lru.capacity = blocks;
    return 0;
}

/* ---- the unbounded set ---- */

static size_t slot_of(const struct lg_ideal *d, uint64_t h)
{
    size_t mask = d->cap - 1, i = (size_t)(h * 0x9E3779B97F4A7C15ull) & mask;
    while (d->tab[i] && d->tab[i] != h)
        i = (i + 1) & mask;
    return i;
}

static int contains(const struct lg_ideal *d, uint64_t h)
{
    return d->cap && d->tab[slot_of(d, h)] == h;
}

static int grow(struct lg_ideal *d)
{
    size_t ncap = d->cap ? d->cap * 2 : 1024;
    uint64_t *old = d->tab;
    size_t ocap = d->cap;
    d->tab = calloc(ncap, sizeof(*d->tab));
    if (!d->tab) {
        d->tab = old;
        return -1;
    }
    d->cap = ncap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i])
            d->tab[slot_of(d, old[i])] = old[i];
    free(old);
    return 0;
}

static void insert(struct lg_ideal *d, uint64_t h)
{
    if ((d->n + 1) * 2 > d->cap && grow(d) < 0)
        return; /* out of memory: the ideal is then a lower bound */
    size_t i = slot_of(d, h);
    if (!d->tab[i]) {
        d->tab[i] = h;
        d->n++;
    }
}

/* ---- the LRU ---- */

static size_t bucket_of(const struct lg_lru *l, uint64_t key)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (l->nbucket - 1);
}

static uint32_t lru_find(const struct lg_lru *l, uint64_t key)
{
    if (!l->nbucket)
        return NIL;
    for (uint32_t i = l->bucket[bucket_of(l, key)]; i != NIL; i = l->chain[i])
        if (l->key[i] == key)
            return i;
    return NIL;
}

int lg_lru_contains(const struct lg_lru *l, uint64_t key)
{
    return lru_find(l, key) != NIL;
}

static void unlink_node(struct lg_lru *l, uint32_t i)
{
    if (l->prev[i] != NIL)
        l->next[l->prev[i]] = l->next[i];
    else
        l->head = l->next[i];
    if (l->next[i] != NIL)
        l->prev[l->next[i]] = l->prev[i];
    else
        l->tail = l->prev[i];
}

static void push_head(struct lg_lru *l, uint32_t i)
{
    l->prev[i] = NIL;
    l->next[i] = l->head;
    if (l->head != NIL)
        l->prev[l->head] = i;
    l->head = i;
    if (l->tail == NIL)
        l->tail = i;
}

static void unchain(struct lg_lru *l, uint32_t i)
{
    uint32_t *p = &l->bucket[bucket_of(l, l->key[i])];
    while (*p != i)
        p = &l->chain[*p];
    *p = l->chain[i];
}

static int rehash(struct lg_lru *l, size_t nb)
{
    uint32_t *b = malloc(nb * sizeof(*b));
    if (!b)
        return -1;
    for (size_t k = 0; k < nb; k++)
        b[k] = NIL;
    free(l->bucket);
    l->bucket = b;
    l->nbucket = nb;
    for (uint32_t i = 0; i < l->n; i++) {
        size_t k = bucket_of(l, l->key[i]);
        l->chain[i] = b[k];
        b[k] = i;
    }
    return 0;
}

static int lru_reserve(struct lg_lru *l)
{
    if (l->n < l->alloc)
        return 0;
    size_t na = l->alloc ? l->alloc * 2 : 1024;
    if (na > l->capacity)
        na = (size_t)l->capacity;
    uint64_t *k = realloc(l->key, na * sizeof(*k));
    if (k)
        l->key = k;
    uint32_t *p = realloc(l->prev, na * sizeof(*p));
    if (p)
        l->prev = p;
    uint32_t *x = realloc(l->next, na * sizeof(*x));
    if (x)
        l->next = x;
    uint32_t *c = realloc(l->chain, na * sizeof(*c));
    if (c)
        l->chain = c;
    if (!k || !p || !x || !c)
        return -1;
    l->alloc = na;
    size_t nb = l->nbucket ? l->nbucket : 1024;
    while (nb < na)
        nb *= 2;
    return nb != l->nbucket ? rehash(l, nb) : 0;
}

/* Makes key the most recent entry, inserting it (and evicting the least
 * recent when full) if absent. */
static void lru_touch(struct lg_lru *l, uint64_t key)
{
    uint32_t i = lru_find(l, key);
    if (i != NIL) {
        unlink_node(l, i);
    } else if (l->n < l->capacity && !l->oom) {
        if (lru_reserve(l)) {
            l->oom = 1;
            return;
        }
        i = (uint32_t)l->n++;
        l->key[i] = key;
        size_t b = bucket_of(l, key);
        l->chain[i] = l->bucket[b];
        l->bucket[b] = i;
    } else {
        if (l->tail == NIL)
            return;
        i = l->tail; /* evict the least recent; its node takes the new key */
        unlink_node(l, i);
        unchain(l, i);
        l->evictions++;
        l->key[i] = key;
        size_t b = bucket_of(l, key);
        l->chain[i] = l->bucket[b];
        l->bucket[b] = i;
    }
    push_head(l, i);
}

size_t lg_lru_access(struct lg_lru *l, const uint64_t *k, size_t n)
{
    if (!l->capacity)
        return 0;
    size_t matched = 0;
    while (matched < n && lru_find(l, k[matched]) != NIL)
        matched++;
    for (size_t j = n; j-- > 0;) /* the tail first: the head ends most recent */
        lru_touch(l, k[j]);
    return matched;
}

/* ---- a request ---- */

uint32_t lg_ideal_add(struct lg_ideal *d, const char *model, const char *p, size_t n)
{
    uint32_t ntok = lg_ntokens(n);
    size_t nblocks = ntok / LG_BLOCK_TOKENS;
    uint64_t h = XXH3_64bits(model, strlen(model));
    uint64_t stackkeys[2048], *keys = stackkeys;
    if (d->lru.capacity && nblocks > sizeof(stackkeys) / sizeof(stackkeys[0])) {
        keys = malloc(nblocks * sizeof(*keys));
        if (!keys)
            d->lru.oom = 1;
    }
    size_t matched = 0;
    int matching = 1;
    for (size_t b = 0; b < nblocks; b++) {
        uint8_t blk[LG_BLOCK_BYTES];
        size_t off = b * LG_BLOCK_BYTES;
        size_t have = n - off < LG_BLOCK_BYTES ? n - off : LG_BLOCK_BYTES;
        memcpy(blk, p + off, have);
        memset(blk + have, 0, LG_BLOCK_BYTES - have); /* last token zero-padded */
        h = XXH3_64bits_withSeed(blk, LG_BLOCK_BYTES, h);
        uint64_t key = h ? h : 1;
        if (keys)
            keys[b] = key;
        if (matching && contains(d, key))
            matched++;
        else
            matching = 0;
        insert(d, key);
    }
    uint32_t cap = ntok ? (ntok - 1) / LG_BLOCK_TOKENS * LG_BLOCK_TOKENS : 0;
    uint32_t hit = (uint32_t)matched * LG_BLOCK_TOKENS;
    if (hit > cap)
        hit = cap;
    uint32_t fhit = 0;
    if (d->lru.capacity && keys) {
        fhit = (uint32_t)lg_lru_access(&d->lru, keys, nblocks) * LG_BLOCK_TOKENS;
        if (fhit > cap)
            fhit = cap;
    }
    if (keys != stackkeys)
        free(keys);
    d->hit_tokens += hit;
    d->finite_hit_tokens += fhit;
    d->last_finite_hit = fhit;
    d->prompt_tokens += ntok;
    d->requests++;
    return hit;
}

double lg_ideal_rate(const struct lg_ideal *d)
{
    return d->prompt_tokens ? (double)d->hit_tokens / (double)d->prompt_tokens : 0.0;
}

double lg_ideal_finite_rate(const struct lg_ideal *d)
{
    if (!d->lru.capacity)
        return -1;
    return d->prompt_tokens ? (double)d->finite_hit_tokens / (double)d->prompt_tokens : 0.0;
}
