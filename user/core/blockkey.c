/* blockkey: chained XXH3 keys over full blocks of token ids. See blockkey.h. */
#include "core/blockkey.h"

#include <string.h>
#include <xxhash.h>

/* Domain tags: a model name, an adapter name and a salt with equal bytes
 * must give different words. */
#define TAG_ROOT 0x6b76672d726f6f74ull /* "kvg-root" */
#define TAG_LORA 0x6b76672d6c6f7261ull /* "kvg-lora" */
#define TAG_SALT 0x6b76672d73616c74ull /* "kvg-salt" */

uint64_t bk_model_root(const char *model, size_t len)
{
    return XXH3_64bits_withSeed(model, model ? len : 0, TAG_ROOT);
}

uint64_t bk_lora_word(const char *lora, size_t len)
{
    if (!lora || !len)
        return 0;
    uint64_t w = XXH3_64bits_withSeed(lora, len, TAG_LORA);
    return w ? w : 1;
}

uint64_t bk_salt_word(const char *salt, size_t len)
{
    if (!salt || !len)
        return 0;
    uint64_t w = XXH3_64bits_withSeed(salt, len, TAG_SALT);
    return w ? w : 1;
}

/* The seed for a block: the parent key with the extra words folded in.
 * Without extra words the seed is the parent itself; with them, each word
 * goes through XXH3 with the parent so that (parent, extra) pairs cannot be
 * aimed at each other by xor. */
static uint64_t seed_of(uint64_t parent, uint64_t lora_w, uint64_t salt_w)
{
    if (!lora_w && !salt_w)
        return parent;
    uint64_t v[3] = {parent, lora_w, salt_w};
    return XXH3_64bits(v, sizeof(v));
}

uint64_t bk_block(uint64_t parent, const uint32_t *tokens, uint32_t block_size,
                  uint64_t lora_w, uint64_t salt_w, int first)
{
    uint64_t seed = seed_of(parent, lora_w, first ? salt_w : 0);
    return XXH3_64bits_withSeed(tokens, (size_t)block_size * sizeof(*tokens), seed);
}

size_t bk_chain(uint64_t root, const uint32_t *tokens, size_t ntokens,
                uint32_t block_size, const struct bk_extra *x, uint64_t *keys,
                size_t max_keys)
{
    if (!block_size || block_size > BK_MAX_BLOCK_SIZE)
        return 0;
    size_t n = ntokens / block_size;
    uint64_t lw = x ? bk_lora_word(x->lora, x->lora_len) : 0;
    uint64_t sw = x ? bk_salt_word(x->salt, x->salt_len) : 0;
    uint64_t k = root;
    size_t m = n < max_keys ? n : max_keys;
    for (size_t i = 0; i < m; i++) {
        k = bk_block(k, tokens + i * block_size, block_size, lw, sw, i == 0);
        keys[i] = k;
    }
    return n;
}
