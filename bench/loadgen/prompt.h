/* prompt: synthetic prompt text, the chat template the server applies, and
 * the JSON request body.
 *
 * Text is pseudo-words of lowercase letters, fully determined by a 64-bit
 * seed and a byte length (4 bytes ~ 1 token for kvgate-podsim's
 * tokenizer). The template is Llama-3's, byte for byte as kvgate-podsim
 * renders it, so the loadgen knows each request's prompt tokens and can
 * compute the ideal prefix hit rate on what the server actually sees. */
#ifndef KVGATE_BENCH_PROMPT_H
#define KVGATE_BENCH_PROMPT_H

#include <stddef.h>
#include <stdint.h>

struct sbuf;

struct lg_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *text;
    size_t len;
};

/* Appends exactly nbytes of text determined by seed. The first word has 8
 * letters, so texts from different seeds differ within their first 8 bytes
 * (with probability 1 - 26^-8). */
void lg_text(struct sbuf *b, uint64_t seed, size_t nbytes);

/* Appends the rendered prompt (Llama-3 chat template with the generation
 * prompt), as the server tokenizes it. */
void lg_render_chat(struct sbuf *out, const struct lg_msg *m, size_t n);

/* Bytes the template adds around n messages with the given roles (for
 * sizing a prompt to an exact token count). */
size_t lg_render_overhead(const char *const *roles, size_t n);

/* Appends a streaming chat-completion body: model, messages, max_tokens,
 * stream with include_usage, ignore_eos. */
void lg_body_chat(struct sbuf *out, const char *model, const struct lg_msg *m,
                  size_t n, uint32_t max_tokens);

/* Server-side token count of a rendered prompt: one token per 4 bytes, the
 * last one partial. */
static inline uint32_t lg_ntokens(size_t nbytes)
{
    return (uint32_t)((nbytes + 3) / 4);
}

#endif
