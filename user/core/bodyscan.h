/* bodyscan: incremental scanner over an OpenAI request body (JSON) as its
 * bytes arrive.
 *
 * Validates the whole document as strict RFC 8259 JSON (UTF-8 checked,
 * surrogate pairs in \u escapes checked, no trailing garbage, the top-level
 * value must be an object, nesting at most BODYSCAN_MAX_DEPTH) without ever
 * building a tree, and pulls out of the TOP-LEVEL object only:
 *
 *   "model", "user", "cache_salt"   string, escapes decoded, <= 255 bytes
 *   "stream"                        boolean
 *   "stream_options.include_usage"  boolean (and where both values begin)
 *   "max_tokens",
 *   "max_completion_tokens"         non-negative integer (int64)
 *   "messages" (chat, an array) or
 *   "prompt" (completions, a string or an array)
 *                                   the byte span of the raw value, and its
 *                                   raw bytes handed to on_prompt as they
 *                                   are scanned (so a fingerprint can be
 *                                   computed without keeping the body)
 *
 * Keys are matched after decoding ("mod\u0065l" is "model"). A JSON null for
 * any of these except messages / prompt counts as absent (the OpenAI schema
 * makes them optional). A wrong type is an error naming the field. Any of
 * these keys twice, or both "messages" and "prompt", is an error: the model
 * server would take one of the values and the gateway must not route on a
 * different one.
 *
 * One scanner per request; no globals, no allocation, re-entrant. The state
 * is a fixed-size struct (mostly the three 256-byte result buffers). */
#ifndef KVGATE_CORE_BODYSCAN_H
#define KVGATE_CORE_BODYSCAN_H

#include <stddef.h>
#include <stdint.h>

#define BODYSCAN_STR_MAX   256 /* result buffers: at most 255 bytes + NUL */
#define BODYSCAN_MAX_DEPTH 64  /* nested objects/arrays, top object included */
#define BODYSCAN_KEY_MAX   24  /* longest key worth decoding (keys we match) */

enum bodyscan_kind {
    BODYSCAN_NONE = 0,       /* neither "messages" nor "prompt" seen */
    BODYSCAN_CHAT = 1,       /* "messages" */
    BODYSCAN_COMPLETION = 2, /* "prompt" */
};

typedef void (*bodyscan_prompt_fn)(void *ctx, const char *p, size_t n);

struct bodyscan {
    /* ---- results (final once bodyscan_finish() returned 0) ---- */
    char model[BODYSCAN_STR_MAX];      /* NUL-terminated; U+0000 rejected */
    char user[BODYSCAN_STR_MAX];
    char cache_salt[BODYSCAN_STR_MAX];
    uint16_t model_len, user_len, cache_salt_len;
    uint8_t has_model, has_user, has_cache_salt; /* 0: absent or null */
    int8_t stream;          /* 1 true, 0 false, -1 absent or null */
    int8_t include_usage;   /* stream_options.include_usage, same coding */
    uint8_t prompt_kind;    /* enum bodyscan_kind */
    int64_t max_tokens;             /* -1: absent or null */
    int64_t max_completion_tokens;  /* -1: absent or null */
    size_t prompt_start, prompt_end; /* [start,end) of the raw value */
    /* where stream_options sits, for a rewrite that asks for usage
     * (kvgated's accounting.request_usage): the offset of each value's
     * first byte, valid when the key was present (null included) */
    size_t so_start, iu_start;
    uint8_t so_seen, iu_seen;
    /* error (sticky): err_msg is NULL while the body is fine so far */
    const char *err_msg;    /* static string */
    size_t err_offset;      /* absolute offset of the byte that was wrong */

    /* ---- scanner state: private ---- */
    bodyscan_prompt_fn on_prompt;
    void *ctx;
    size_t off;             /* bytes consumed by earlier feeds */
    const unsigned char *chunk;   /* current feed's buffer (during feed) */
    const unsigned char *pr_from; /* on_prompt bytes not yet delivered */
    size_t key_off;         /* offset of the current key's opening quote */
    uint64_t stack;         /* bit d-1 set: container at depth d is object */
    int64_t num;            /* integer being captured (max_tokens) */
    uint32_t seen;          /* bit per field: key already present */
    uint32_t u_val;         /* \uXXXX being read; high surrogate pending */
    uint8_t st;             /* enum st in bodyscan.c */
    uint8_t depth;          /* open containers */
    uint8_t field;          /* field of the top-level value being scanned */
    uint8_t field2;         /* field inside stream_options */
    uint8_t in_so;          /* the depth-2 container is stream_options */
    uint8_t in_prompt;      /* inside the messages / prompt value */
    uint8_t str_key;        /* current string is an object key */
    uint8_t sink;           /* where decoded string bytes go */
    uint8_t num_st;         /* number grammar state */
    uint8_t num_cap;        /* capture the number as an integer */
    uint8_t lit, lit_i;     /* literal (true/false/null) and chars matched */
    uint8_t u_n;            /* hex digits read in \uXXXX */
    uint8_t u8_need, u8_lo, u8_hi; /* UTF-8: bytes left, next byte's range */
    uint8_t klen;           /* decoded key bytes; KEY_MAX+1: too long */
    char kbuf[BODYSCAN_KEY_MAX];
};

/* on_prompt may be NULL. */
void bodyscan_init(struct bodyscan *s, bodyscan_prompt_fn on_prompt, void *ctx);

/* Scans the next n bytes of the body (any split, down to one byte).
 * 0: fine so far; -EBADMSG: malformed (sticky: err_msg, err_offset; later
 * feeds and finish return -EBADMSG and change nothing). on_prompt is called
 * from inside. */
int bodyscan_feed(struct bodyscan *s, const char *p, size_t n);

/* End of body: 0 if exactly one complete, valid object was seen (trailing
 * whitespace allowed); else -EBADMSG ("unexpected end of body" at the
 * body's length, unless an earlier error stands). */
int bodyscan_finish(struct bodyscan *s);

/* 1 once the top-level object has been closed (only whitespace may
 * follow), 0 before that or after an error. */
int bodyscan_complete(const struct bodyscan *s);

#endif
