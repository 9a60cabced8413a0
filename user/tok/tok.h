/* tok: the model's tokenizer and chat template, as the model server applies
 * them, so that the gateway cuts the same KV blocks as the pod (DESIGN.md,
 * "Token-exact routing").
 *
 * Two tokenizers behind one interface:
 *   - byte-level BPE loaded from a Hugging Face tokenizer.json (Llama 3.x
 *     and Qwen 2 / 2.5 / 3 families): added / special tokens, the optional NFC
 *     normalizer, the Split pre-tokenizer regex (PCRE2, UTF + UCP, JIT),
 *     ByteLevel, the BPE model with ranked merges ("a b" strings or [a, b]
 *     arrays) and ignore_merges;
 *   - the pseudo-tokenizer of kvgate-podsim (podsim/prompt.h): one token per
 *     4 bytes, id = the 4 bytes little-endian, the last padded with zeros.
 *
 * Thread safety: a struct tok is read-only after tok_load / tok_pseudo (and
 * tok_set_max_bytes, which belongs to set-up) and may be shared by any number
 * of threads; every call keeps its scratch on the stack or in what the caller
 * passes (struct tok_ids, struct tok_stream, struct sbuf). No global mutable
 * state.
 *
 * What vLLM sends to the engine, and what this module reproduces:
 *   chat:        text = render(chat_template, messages, add_generation_prompt)
 *                ids  = tokenize(text, add_special_tokens=False)
 *   completions: ids  = tokenize(prompt, add_special_tokens=True)
 * so: the rendered chat text INCLUDES the BOS token where the template emits
 * it (Llama 3: "<|begin_of_text|>" first; Qwen: none), and tok_encode never
 * adds BOS unless TOK_ADD_BOS is passed (the completions case: the
 * tokenizer.json post-processor's leading special token, Llama 3's
 * <|begin_of_text|>; Qwen has none). Special tokens written in the text are
 * parsed as tokens with TOK_PARSE_SPECIAL (what vLLM does for both rendered
 * chats and completion prompts); without it only non-special added tokens
 * are (HF split_special_tokens=True).
 *
 * Bytes that are not UTF-8: each maximal invalid subsequence becomes U+FFFD
 * (Unicode's "maximal subpart" rule, as the WHATWG decoder, and so the
 * JavaScript reference, sees the text). vLLM itself refuses such a body, so
 * any deterministic choice keeps routing correct; this one keeps equality
 * with the reference testable.
 *
 * Pre-tokenizer regex: compiled as written with one rewrite, the
 * case-insensitive contraction group "(?i:'s|'t|...)" becomes explicit
 * ASCII classes ("[sS]"...), as the JavaScript reference does (PCRE2's
 * caseless UCP matching would also take U+017F, long s, for 's').
 * \s is PCRE2's Unicode White_Space (as Oniguruma in HF tokenizers): it
 * includes U+0085 and not U+FEFF, where a JavaScript regex does the
 * opposite; see tests/tok/README.md for that known reference difference.
 */
#ifndef KVGATE_TOK_TOK_H
#define KVGATE_TOK_TOK_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct sbuf;
struct tok;

/* Growable id array the caller owns; zero-initialise, free with
 * tok_ids_free. Calls append to it. */
struct tok_ids {
    uint32_t *v;
    size_t n, cap;
};
void tok_ids_free(struct tok_ids *ids);
int tok_ids_push(struct tok_ids *ids, uint32_t id); /* 0 or -ENOMEM */

enum tok_template {
    TOK_TEMPLATE_UNKNOWN = 0, /* no template, or not one recognised: render refuses */
    TOK_TEMPLATE_LLAMA3,      /* Llama 3 / 3.x header-id template (no tools, no dates) */
    TOK_TEMPLATE_LLAMA31,     /* Llama 3.1's: system block with the knowledge and
                                 today dates (date_string "26 Jul 2024"), ipython turns */
    TOK_TEMPLATE_QWEN3,       /* ChatML with Qwen3's <think> handling */
    TOK_TEMPLATE_QWEN2,       /* Qwen2's plain ChatML: every turn alike, a default
                                 system turn when the first is not one */
    TOK_TEMPLATE_QWEN25,      /* Qwen2.5's ChatML: default system turn, tool
                                 responses grouped in a user turn */
    TOK_TEMPLATE_PSEUDO,      /* podsim's Llama-3-shaped rendering, untrimmed */
};
const char *tok_template_name(enum tok_template t);

/* Flags of tok_encode and tok_stream_init. */
#define TOK_PARSE_SPECIAL 0x1u /* special added tokens in the text are tokens */
#define TOK_ADD_BOS       0x2u /* prepend the post-processor's BOS, if any */

/* Default limit on the bytes one encode (or one stream) takes: past it
 * tok_encode / tok_stream_feed return -E2BIG and leave out untouched
 * beyond what was emitted before. */
#define TOK_MAX_BYTES_DEFAULT ((size_t)64 << 20)

/* Limits of a tokenizer.json that tok_load refuses (with a sentence)
 * rather than tokenize differently: a vocab or merge entry longer than
 * TOK_MAX_TOKEN_CHARS characters (Llama 3 and Qwen: 128), more than
 * TOK_MAX_ADDED added tokens (256 and 26), a pre-tokenizer regex longer than
 * TOK_MAX_REGEX bytes. */
#define TOK_MAX_TOKEN_CHARS 1000
#define TOK_MAX_ADDED 65535
#define TOK_MAX_REGEX 2000

/* Loads tokenizer.json and (optionally, may be NULL) tokenizer_config.json,
 * the files' paths. NULL on failure with a sentence in err. Unsupported
 * parts (another model type, normalizer or pre-tokenizer, an added token
 * with single_word, or with normalized: true next to a normalizer) are
 * refused. Added tokens are found in the raw text, before NFC (as HF does
 * for normalized: false, which all of Llama 3's and Qwen's are); lstrip /
 * rstrip take the Unicode White_Space next to the token with it. */
struct tok *tok_load(const char *tokenizer_json, const char *tokenizer_config_json,
                     char *err, size_t errlen);
/* The same from memory (the JSON texts, NUL-terminated; config may be NULL). */
struct tok *tok_load_mem(const char *tokenizer_json, const char *config_json,
                         char *err, size_t errlen);
/* podsim's pseudo-tokenizer. NULL only on ENOMEM. */
struct tok *tok_pseudo(void);
void tok_free(struct tok *t);

void tok_set_max_bytes(struct tok *t, size_t max_bytes); /* set-up only */
size_t tok_vocab_size(const struct tok *t);              /* largest id + 1 */
int tok_is_pseudo(const struct tok *t);

/* Appends the ids of s[0..n) to out. 0, -ENOMEM (out keeps what was
 * appended), -E2BIG (n over the limit; nothing appended). */
int tok_encode(const struct tok *t, const char *s, size_t n, unsigned flags,
               struct tok_ids *out);

/* Incremental tokenizing: feed text in pieces as it arrives; each feed
 * appends the ids that no later byte can change (pre-tokens followed by a
 * later pre-token boundary, added tokens that are complete); finish appends
 * the rest. The concatenation equals tok_encode of the whole text with the
 * same flags. What is held back: the last pre-token of the current text, an
 * incomplete UTF-8 sequence, up to (longest added token - 1) bytes that may
 * begin one, and for NFC tokenizers (Qwen) the text from the last code
 * point >= U+0300 that is not NFC-inert on (a long run of such text is held
 * until a boundary, then handled at once).
 *
 * Cost: a feed runs the pre-tokenizer again over what is pending (the
 * unfinished pre-token and any added-token prefix); once that is over
 * TOK_STREAM_EAGER bytes it waits until the pending text has doubled, so a
 * long pre-token fed in small pieces costs O(n) in all, not O(n^2).
 * Errors are sticky: after one, feed and finish return it.
 *
 * The stream holds pointers to t; t must outlive it. */
struct tok_stream {
    const struct tok *t;
    unsigned flags;
    int started, failed, skip_ws;
    size_t total;             /* bytes fed */
    char *buf;                /* pending text (valid UTF-8), not yet sure */
    size_t len, cap;
    unsigned char carry[4];   /* an incomplete UTF-8 sequence at the end */
    unsigned ncarry;
    size_t next_run;          /* pending length at which to look again */
};
#define TOK_STREAM_EAGER 256
void tok_stream_init(struct tok_stream *st, const struct tok *t, unsigned flags);
int tok_stream_feed(struct tok_stream *st, const char *s, size_t n, struct tok_ids *out);
int tok_stream_finish(struct tok_stream *st, struct tok_ids *out); /* also frees */
void tok_stream_free(struct tok_stream *st);

/* The chat template recognised at load (tokenizer_config.json's
 * chat_template); TOK_TEMPLATE_UNKNOWN when absent or unrecognised.
 *
 * Dates: Llama 3.1's template writes "Today Date: " + date_string, and
 * date_string is "26 Jul 2024" unless the request passes it
 * (chat_template_kwargs, the caller's to refuse); vLLM passes nothing, so
 * the text is fixed. The 3.2 / 3.3 templates take strftime_now("%d %b
 * %Y") when defined (transformers defines it: the model server's local
 * date, changing at its midnight): the gateway cannot know that date for
 * sure, so those templates are not recognised (the pod stays approximate). */
enum tok_template tok_template(const struct tok *t);

/* Renders OpenAI `messages` (an array of objects: string "role"; "content"
 * a string, an array of {"type":"text","text":...} parts joined with "\n",
 * or null / absent = "", as vLLM's chat utils pass them to the template)
 * into out, as the template would, with the assistant header appended when
 * add_generation_prompt. 0; -EINVAL with *err set (malformed messages,
 * or what the renderer does not handle: tool calls); -ENOTSUP for
 * TOK_TEMPLATE_UNKNOWN; -ENOMEM. The request's "tools" and
 * "chat_template_kwargs" (Qwen3's enable_thinking, a date_string) are not
 * inputs here: a request that has them is the caller's to treat as not
 * token-exact. */
int tok_render_chat(const struct tok *t, const struct cJSON *messages,
                    int add_generation_prompt, struct sbuf *out, const char **err);

#endif
