/* ideal: longest-shared-prefix accounting over block-hash chains. */
#include "ideal.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "prompt.h"

void lg_ideal_init(struct lg_ideal *d)
{
    memset(d, 0, sizeof(*d));
}

void lg_ideal_free(struct lg_ideal *d)
{
    free(d->tab);
    memset(d, 0, sizeof(*d));
}

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

uint32_t lg_ideal_add(struct lg_ideal *d, const char *model, const char *p, size_t n)
{
    uint32_t ntok = lg_ntokens(n);
    size_t nblocks = ntok / LG_BLOCK_TOKENS;
    uint64_t h = XXH3_64bits(model, strlen(model));
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
        if (matching && contains(d, key))
            matched++;
        else
            matching = 0;
        insert(d, key);
    }
    uint32_t hit = (uint32_t)matched * LG_BLOCK_TOKENS;
    uint32_t cap = ntok ? (ntok - 1) / LG_BLOCK_TOKENS * LG_BLOCK_TOKENS : 0;
    if (hit > cap)
        hit = cap;
    d->hit_tokens += hit;
    d->prompt_tokens += ntok;
    d->requests++;
    return hit;
}

double lg_ideal_rate(const struct lg_ideal *d)
{
    return d->prompt_tokens ? (double)d->hit_tokens / (double)d->prompt_tokens : 0.0;
}
