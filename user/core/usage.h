/* usage: the token counts a model server reports in its answer (OpenAI's
 * "usage" object), read from the bytes as they pass. No I/O, no
 * allocation; parses untrusted bytes (tests/fuzz/fuzz_usage.c). Any split
 * of the input, down to one byte, gives the same result.
 *
 * Two forms:
 *   - a JSON document (a non-streamed answer's body): usage_json_*;
 *   - an SSE stream (a streamed answer): usage_sse_*, each event's "data:"
 *     lines one JSON document; the last event that carries a well-formed
 *     usage object wins (vLLM sends one, just before [DONE]; with
 *     continuous_usage_stats every chunk carries the running total).
 *
 * What is read, from the TOP-LEVEL object only (a "usage" key inside a
 * string, e.g. generated content, or inside another object is nothing):
 *   "usage": {"prompt_tokens": N, "completion_tokens": N,
 *             "prompt_tokens_details": {"cached_tokens": N} | null} | null
 *   "choices": whether it is the empty array (the usage-only chunk a
 *              stream_options.include_usage request ends with)
 * Each N must be a plain non-negative integer of at most USAGE_MAX_TOKENS
 * (no sign, fraction or exponent); null is absent. Anything else in those
 * fields, a key of them twice, a malformed document, nesting deeper than
 * USAGE_MAX_DEPTH, or anything but white space after the top-level object
 * voids the document's usage (the caller falls back to its own estimate).
 * Keys are compared as raw bytes: a key spelled with escapes is not
 * matched (a model server writes plain ASCII keys). */
#ifndef KVGATE_CORE_USAGE_H
#define KVGATE_CORE_USAGE_H

#include <stddef.h>
#include <stdint.h>

#define USAGE_MAX_TOKENS (1ull << 40) /* larger counts void the usage */
#define USAGE_MAX_DEPTH 64
#define USAGE_KEY_MAX 24              /* longest key compared */

struct usage {
    uint64_t prompt, cached, completion;
    uint8_t has_prompt, has_cached, has_completion;
};

/* One JSON document. */
struct usage_json {
    /* ---- private ---- */
    struct usage u;
    uint64_t stack;         /* bit d-1 set: the container at depth d is an object */
    uint64_t num;           /* the integer being read */
    uint8_t st, depth;
    uint8_t bad;            /* malformed document: no result */
    uint8_t ubad;           /* malformed usage object: no usage */
    uint8_t has_usage;      /* a top-level "usage" object was seen */
    uint8_t choices_empty;  /* top-level "choices" is [] */
    uint8_t choices_open;   /* just after the '[' of top-level "choices" */
    uint8_t in_usage;       /* the depth-2 container is "usage" */
    uint8_t in_details;     /* the depth-3 container is "prompt_tokens_details" */
    uint8_t field;          /* the key the next value belongs to */
    uint8_t num_field;      /* the field the number being read goes to */
    uint8_t seen;           /* bits: fields already given */
    uint8_t str_key, lit, lit_i, klen;
    char kbuf[USAGE_KEY_MAX];
};

void usage_json_init(struct usage_json *j);
void usage_json_feed(struct usage_json *j, const char *p, size_t n);
/* At the document's end: 1 and *out when it was one complete object with
 * a well-formed "usage" object; else 0. usage_only (may be NULL): its
 * "choices" was []. */
int usage_json_result(const struct usage_json *j, struct usage *out, int *usage_only);

/* An SSE stream. */
struct usage_sse {
    struct usage_json doc;  /* the current event's data */
    struct usage last;      /* the last event's usage, valid when have */
    uint8_t have;
    uint8_t last_usage_only;/* that event's "choices" was [] */
    uint32_t events;        /* events whose data carried a usage object */
    /* ---- private: line state ---- */
    uint8_t ln, name_i, data_lines;
};

void usage_sse_init(struct usage_sse *s);
void usage_sse_feed(struct usage_sse *s, const char *p, size_t n);
/* The stream ended: a last event without its blank line counts. */
void usage_sse_finish(struct usage_sse *s);
/* 1 and *out (the last event's usage) when any event carried one. */
int usage_sse_result(const struct usage_sse *s, struct usage *out);

/* Whether the 7 bytes "usage" (quotes included) occur in p[0, n): what
 * memmem would say, by memchr for the rare 'g' then a compare around it
 * (an event's JSON has few: "logprobs"); the relay asks it of every SSE
 * event before parsing one (accounting.c). Inside a JSON string the
 * quotes would be escaped, so a hit is a key or the string value "usage". */
int usage_key_in(const char *p, size_t n);

/* One whole SSE event, as sse_split hands it over: 1 and *out when its
 * data carries a well-formed usage object; *usage_only (may be NULL) says
 * that its "choices" is [] (the chunk include_usage adds). */
int usage_sse_event(const char *e, size_t n, struct usage *out, int *usage_only);

#endif
