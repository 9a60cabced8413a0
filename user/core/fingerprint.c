/* fingerprint: chained block hashes of the prompt. See fingerprint.h. */
#include "core/fingerprint.h"

#include <errno.h>
#include <string.h>
#include <xxhash.h>

/* Seed of the model key: any constant apart from FP_SEED_CONST. */
#define FP_MODEL_SEED 0x6b76676174652d6dull /* "kvgate-m" */

int fp_init(struct fingerprint *fp, uint32_t block_bytes, uint32_t max_blocks)
{
    if (block_bytes < FP_MIN_BLOCK_BYTES || block_bytes > FP_MAX_BLOCK_BYTES ||
        max_blocks < 1 || max_blocks > FP_MAX_BLOCKS)
        return -EINVAL;
    fp->block_bytes = block_bytes;
    fp->max_blocks = max_blocks;
    fp->n_blocks = 0;
    fp->fill = 0;
    fp->total = 0;
    return 0;
}

static inline void hash_block(struct fingerprint *fp, const uint8_t *b)
{
    uint64_t seed = fp->n_blocks ? fp->h[fp->n_blocks - 1] : FP_SEED_CONST;
    fp->h[fp->n_blocks++] = XXH3_64bits_withSeed(b, fp->block_bytes, seed);
}

void fp_feed(struct fingerprint *fp, const void *data, size_t n)
{
    const uint8_t *p = data;
    size_t bb = fp->block_bytes;
    fp->total += n;
    while (n && fp->n_blocks < fp->max_blocks) {
        if (fp->fill == 0 && n >= bb) { /* whole block in place: no copy */
            hash_block(fp, p);
            p += bb;
            n -= bb;
            continue;
        }
        size_t take = bb - fp->fill < n ? bb - fp->fill : n;
        memcpy(fp->buf + fp->fill, p, take);
        fp->fill += (uint32_t)take;
        p += take;
        n -= take;
        if (fp->fill == bb) {
            hash_block(fp, fp->buf);
            fp->fill = 0;
        }
    }
}

void fp_feed_cb(void *ctx, const char *p, size_t n)
{
    fp_feed(ctx, p, n);
}

/* XXH3(salt, seed = XXH3(model, seed = FP_MODEL_SEED)): the salt hash is
 * keyed by the model hash, so ("ab", "c") and ("a", "bc") differ. */
uint64_t fp_model_key(const char *model, size_t len, const char *cache_salt,
                      size_t salt_len)
{
    uint64_t k = XXH3_64bits_withSeed(model, len, FP_MODEL_SEED);
    if (salt_len)
        k = XXH3_64bits_withSeed(cache_salt, salt_len, k);
    return k;
}

uint64_t fp_key(uint64_t chain_hash, uint64_t model_key)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++) /* fixed byte order: same key on any host */
        b[i] = (uint8_t)(chain_hash >> (8 * i));
    return XXH3_64bits_withSeed(b, sizeof(b), model_key);
}

size_t fp_keys(const struct fingerprint *fp, uint64_t model_key, uint64_t *out)
{
    for (uint32_t i = 0; i < fp->n_blocks; i++)
        out[i] = fp_key(fp->h[i], model_key);
    return fp->n_blocks;
}
