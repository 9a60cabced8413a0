/* ideal: the workload's ideal prefix hit rate.
 *
 * Infinite cache, perfect routing: a request's hit is the longest prefix it
 * shares with ANY earlier request, counted in whole 16-token blocks and
 * capped at floor((N-1)/16)*16 of its N prompt tokens (vLLM always computes
 * the last token). No router can pass this ceiling. Tokens are 4 bytes of
 * the rendered prompt (kvgate-podsim's tokenizer). Block hashes are chained
 * XXH3-64 seeded by the model / adapter name, so equal text for different
 * adapters never matches, as in the server's cache. */
#ifndef KVGATE_BENCH_IDEAL_H
#define KVGATE_BENCH_IDEAL_H

#include <stddef.h>
#include <stdint.h>

#define LG_BLOCK_TOKENS 16
#define LG_BLOCK_BYTES (4 * LG_BLOCK_TOKENS)

struct lg_ideal {
    uint64_t *tab; /* open addressing; 0 = empty (a hash of 0 is stored as 1) */
    size_t cap, n;
    uint64_t hit_tokens, prompt_tokens;
    uint64_t requests;
};

void lg_ideal_init(struct lg_ideal *d);
void lg_ideal_free(struct lg_ideal *d);

/* Accounts one request (rendered prompt p[0..n), cache key = model name)
 * after all earlier ones; returns its ideal hit in tokens. */
uint32_t lg_ideal_add(struct lg_ideal *d, const char *model, const char *p, size_t n);

/* hit_tokens / prompt_tokens (0 when empty). */
double lg_ideal_rate(const struct lg_ideal *d);

#endif
