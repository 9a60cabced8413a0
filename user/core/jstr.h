/* jstr: decodes one JSON string value, given as its raw bytes (opening
 * quote first) in pieces as they arrive, into the UTF-8 text it stands
 * for. Used to tokenize a completions prompt while the body is still
 * arriving (gateway/route.c): bodyscan hands over the prompt's raw bytes,
 * jstr turns them into text, the tokenizer's stream takes the text.
 *
 * Escapes: \" \\ \/ \b \f \n \r \t and \uXXXX, a surrogate pair as one
 * code point (written as 4-byte UTF-8). The raw bytes between escapes are
 * passed on as they are: their UTF-8 is bodyscan's to check. Anything that
 * is not a well-formed string (no opening quote, an unknown escape, a bad
 * hex digit, a lone or reversed surrogate, a control byte, bytes after the
 * closing quote) makes the decoder fail for good (jstr.failed) and emit
 * nothing more: the caller falls back to decoding the whole body. No
 * allocation; the state is a few bytes. */
#ifndef KVGATE_CORE_JSTR_H
#define KVGATE_CORE_JSTR_H

#include <stddef.h>
#include <stdint.h>

/* Receives decoded text; nonzero stops the decoder (failed). */
typedef int (*jstr_out_fn)(void *ctx, const char *p, size_t n);

struct jstr {
    uint8_t st;     /* private: where in the string */
    uint8_t nhex;   /* hex digits of \uXXXX read */
    uint16_t hi;    /* a high surrogate waiting for its low half */
    uint32_t u;     /* the \uXXXX being read */
    uint8_t done;   /* the closing quote was read */
    uint8_t failed; /* not a well-formed string, or out said stop */
};

void jstr_init(struct jstr *j);
/* Decodes raw[0..n). 0, or -1 once failed (sticky). */
int jstr_feed(struct jstr *j, const char *raw, size_t n, jstr_out_fn out, void *ctx);

#endif
