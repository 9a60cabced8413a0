/* tok internals shared by tok_load.c, tok_encode.c, tok_chat.c. */
#ifndef KVGATE_TOK_PRIV_H
#define KVGATE_TOK_PRIV_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tok/tok.h"

/* vocab: raw bytes of a token -> id (open addressing, key in arena) */
struct tok_vslot {
    uint32_t off, len; /* len 0: empty */
    uint32_t id;
    uint32_t whole;    /* BPE of these bytes gives this one token */
};

/* merges: (left id, right id) -> rank, merged id */
struct tok_mslot {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    uint32_t rank, id;
};

struct tok_added {
    char *s;
    uint32_t len, id;
    uint8_t special, lstrip, rstrip, normalized;
};

struct tok {
    int pseudo;
    size_t max_bytes;
    char *arena;
    size_t arena_len, arena_cap;
    struct tok_vslot *vhash;
    uint32_t vmask;
    struct tok_mslot *mhash;
    uint32_t mmask;
    uint32_t byte_id[256];
    uint32_t nids; /* largest id + 1 */
    int ignore_merges;
    int nfc;
    pcre2_code *re;
    pcre2_general_context *gctx;
    struct tok_added *added; /* sorted by first byte, then longest first */
    size_t nadded;
    uint16_t added_first[256]; /* index+1 of the first added token with that first byte */
    size_t added_maxlen;
    int64_t bos_id; /* -1: none */
    enum tok_template tmpl;
    char *bos_token; /* template's bos_token string, or NULL */
    char *sys_default; /* ChatML families: the default system message */
};

uint64_t tok_hash(const void *p, size_t n);
/* slot of a merge key (left << 32 | right): multiplicative, inline (the BPE
 * loop's hot path) */
static inline uint32_t tok_merge_slot(uint64_t key, uint32_t mask)
{
    key ^= key >> 29;
    return (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}
/* id of raw bytes, or -1 */
int64_t tok_vocab_find(const struct tok *t, const char *s, size_t n);
const struct tok_vslot *tok_vocab_slot(const struct tok *t, const char *s, size_t n);
/* BPE of one piece by the merges alone (no vocab short cut) */
int tok_bpe_merges(const struct tok *t, const char *s, size_t n, struct tok_ids *out);
/* recognises the template text; sets t->tmpl */
void tok_chat_detect(struct tok *t, const char *template_text);

/* UTF-8 helpers (tok_encode.c) */
/* decodes one code point at s (valid UTF-8 assumed), returns its length */
size_t tok_utf8_next(const unsigned char *s, uint32_t *cp);
/* the same on bytes that may not be UTF-8: an invalid or cut sequence
 * gives U+FFFD and length 1 */
size_t tok_utf8_next_n(const unsigned char *s, size_t n, uint32_t *cp);
/* Python str.strip() whitespace, for the templates' trim */
int tok_py_space(uint32_t cp);

#endif
