/* prompt: turns an OpenAI request's messages or prompt into the bytes a
 * model would see, and those bytes into pseudo-tokens.
 *
 * Tokens: one per 4 bytes of the rendered prompt (the last one padded with
 * zero bytes), token id = the 4 bytes read little-endian. Byte-level prefix
 * sharing is therefore token-level sharing, block for block, which is what
 * a prefix-aware router can see from the raw request. */
#ifndef KVGATE_PODSIM_PROMPT_H
#define KVGATE_PODSIM_PROMPT_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct sbuf;

static inline uint32_t prompt_ntokens(size_t nbytes)
{
    return (uint32_t)((nbytes + 3) / 4);
}

/* Writes prompt_ntokens(n) tokens to out. */
void prompt_tokenize(const char *s, size_t n, uint32_t *out);

/* Renders chat messages with the Llama-3 template (generation prompt
 * appended). 0, or -EINVAL with *err set to a static message naming the
 * offending field (messages must be a non-empty array of objects with a
 * string role and string / text-part-array / null content). */
int prompt_render_chat(const struct cJSON *messages, struct sbuf *out,
                       const char **err);

/* A completions prompt: a string, or an array of integer token ids (each
 * becomes 4 bytes). Arrays of strings (batches) are refused. */
int prompt_render_completion(const struct cJSON *prompt, struct sbuf *out,
                             const char **err);

#endif
