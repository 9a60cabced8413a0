/* fingerprint: chained XXH3-64 over fixed blocks of the raw prompt bytes.
 *
 *   h_0 = XXH3_64(block_0, seed = FP_SEED_CONST)
 *   h_i = XXH3_64(block_i, seed = h_{i-1})
 *
 * Only full blocks count; bytes past max_blocks * block_bytes are ignored.
 * h_i names the whole prefix block_0..block_i, so two prompts share h_i
 * exactly when they share their first i+1 blocks (up to 64-bit collisions).
 *
 * The chain covers text only. The model / adapter / cache_salt enter
 * afterwards, per block: key_i = fp_key(h_i, fp_model_key(model, salt)).
 * Why after and not as the chain's seed: the body scanner feeds the prompt
 * bytes as they arrive, and "model" may come after "messages" in the body,
 * so the model is not known while the chain is computed; keying afterwards
 * costs one 8-byte hash per block (<= max_blocks) instead of keeping the
 * prompt or hashing it twice. It loses nothing: key_i depends on h_i, hence
 * on the whole prefix, and on the model key, so equal text for different
 * models, adapters (an adapter is a model name) or salts never matches,
 * while equal prefixes for the same model still match block for block.
 *
 * Re-entrant, no allocation: one struct per request (about 12 KiB). */
#ifndef KVGATE_CORE_FINGERPRINT_H
#define KVGATE_CORE_FINGERPRINT_H

#include <stddef.h>
#include <stdint.h>

#define FP_SEED_CONST         0x6b76676174652d31ull /* "kvgate-1" */
#define FP_MAX_BLOCKS         1024
#define FP_MIN_BLOCK_BYTES    16
#define FP_MAX_BLOCK_BYTES    4096
#define FP_DEFAULT_BLOCK_BYTES 64
#define FP_DEFAULT_MAX_BLOCKS 256

struct fingerprint {
    uint32_t block_bytes;
    uint32_t max_blocks;
    uint32_t n_blocks;      /* full blocks hashed so far: h[0..n_blocks) */
    uint32_t fill;          /* bytes waiting in buf (< block_bytes) */
    uint64_t total;         /* prompt bytes fed, capped ones included */
    uint64_t h[FP_MAX_BLOCKS];
    uint8_t buf[FP_MAX_BLOCK_BYTES];
};

/* 0, or -EINVAL unless block_bytes in [16, 4096] and max_blocks in
 * [1, 1024]. Cheap: only the counters are written. */
int fp_init(struct fingerprint *fp, uint32_t block_bytes, uint32_t max_blocks);

/* Adds prompt bytes; any split gives the same hashes. */
void fp_feed(struct fingerprint *fp, const void *p, size_t n);

/* bodyscan's on_prompt callback shape: ctx is a struct fingerprint. */
void fp_feed_cb(void *ctx, const char *p, size_t n);

/* Key of what a cached prefix is valid for: the model name as the request
 * names it (an adapter is selected by its name there) and the cache_salt
 * (salt_len 0: none). Distinct (model, salt) pairs give independent keys. */
uint64_t fp_model_key(const char *model, size_t len, const char *cache_salt,
                      size_t salt_len);

/* The block key the prefix index stores: XXH3-64 of the 8 little-endian
 * bytes of chain_hash, seeded with model_key. XXH3 on an 8-byte input is a
 * full-avalanche keyed mix, so keys of different models look unrelated;
 * it costs a few nanoseconds. */
uint64_t fp_key(uint64_t chain_hash, uint64_t model_key);

/* out[i] = fp_key(h_i, model_key) for every full block; returns how many
 * (fp->n_blocks). out has room for fp->n_blocks entries. */
size_t fp_keys(const struct fingerprint *fp, uint64_t model_key, uint64_t *out);

#endif
