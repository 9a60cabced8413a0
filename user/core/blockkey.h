/* blockkey: the gateway's own key for a KV-cache block, computed from token
 * ids, so that a request's prompt (tokenized by the gateway) and a pod's
 * BlockStored event (which carries the block's token ids) land on the same
 * key without the gateway ever knowing the engine's hash function.
 *
 *   key(block 0) = H(tokens[0..bs), seed = mix(root,        extra(0)))
 *   key(block i) = H(tokens[i*bs..), seed = mix(key(i - 1), extra(i)))
 *
 * H is XXH3-64 over the block's token ids as little-endian uint32 (the
 * in-memory layout on every machine kvgate runs on: keys are compared only
 * inside one process, never sent anywhere). root is per model
 * (bk_model_root): equal tokens under two models never share a key.
 *
 * Extra keys follow vLLM's generate_block_hash_extra_keys() exactly in
 * where they apply: the LoRA adapter's name enters EVERY block of the chain
 * (vLLM: lora_extra_keys on each block), cache_salt only the FIRST block
 * (vLLM: `[cache_salt] if start_token_idx == 0`), and through the chain
 * every later block. Unlike vLLM, where the name and the salt are bare
 * strings in one flat tuple (adapter "x" with no salt and salt "x" with no
 * adapter hash alike), the two are kept apart here by a domain tag; that
 * only ever turns such a collision into a miss.
 *
 * Only full blocks get keys (vLLM caches only full blocks). Token-array
 * based: the router calls this on tokenized requests, the exact index
 * (kvindex) on events' token ids. */
#ifndef KVGATE_CORE_BLOCKKEY_H
#define KVGATE_CORE_BLOCKKEY_H

#include <stddef.h>
#include <stdint.h>

#define BK_MAX_BLOCK_SIZE 4096 /* tokens; vLLM uses 16 (up to 256 on some backends) */

/* What enters a chain besides its tokens. lora / salt: NULL (or length 0)
 * for none. */
struct bk_extra {
    const char *lora;
    size_t lora_len;
    const char *salt;
    size_t salt_len;
};

/* The chain's root for a served model name (the base model: an adapter is
 * an extra key, so an adapter and its base still differ). */
uint64_t bk_model_root(const char *model, size_t len);

/* The 64-bit extra-key words: 0 when absent. Precompute once per request /
 * event and pass to bk_block(). */
uint64_t bk_lora_word(const char *lora, size_t len);
uint64_t bk_salt_word(const char *salt, size_t len);

/* One block's key: parent = the previous block's key, or the root for block
 * 0; lora_w applies to every block, salt_w only when first is set. */
uint64_t bk_block(uint64_t parent, const uint32_t *tokens, uint32_t block_size,
                  uint64_t lora_w, uint64_t salt_w, int first);

/* Cuts tokens[0..ntokens) into full blocks of block_size and writes the
 * chain of keys into keys[0..max_keys). Returns the number of full blocks
 * (which may exceed max_keys: only max_keys were written), 0 when
 * block_size is 0 or above BK_MAX_BLOCK_SIZE. */
size_t bk_chain(uint64_t root, const uint32_t *tokens, size_t ntokens,
                uint32_t block_size, const struct bk_extra *x, uint64_t *keys,
                size_t max_keys);

#endif
