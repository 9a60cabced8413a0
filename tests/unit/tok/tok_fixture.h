/* A small tokenizer.json built in memory for the user/tok unit tests (and
 * the fuzz target): the 256 byte-level tokens, a few merges, added tokens,
 * the Llama 3 or Qwen 2/3 pre-tokenizer regex. Ids: byte b -> b (in the
 * byte-level alphabet's order of bytes), merged tokens from 256, added
 * tokens from 1000. */
#ifndef KVGATE_TESTS_TOK_FIXTURE_H
#define KVGATE_TESTS_TOK_FIXTURE_H

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "tok/tok.h"

#define FIX_RE_LLAMA3                                                                     \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "           \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define FIX_RE_QWEN                                                                       \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

/* GPT-2's bytes_to_unicode, as UTF-8 */
static inline void fix_byte_char(int b, char out[4])
{
    int cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
        cp = b;
    else {
        int n = 0;
        for (int x = 0; x < b; x++)
            if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
                n++;
        cp = 256 + n;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* a token's text in the byte-level alphabet */
static inline void fix_bl(const char *raw, char *out)
{
    out[0] = 0;
    for (const unsigned char *p = (const unsigned char *)raw; *p; p++) {
        char c[4];
        fix_byte_char(*p, c);
        strcat(out, c);
    }
}

struct fix_opts {
    int qwen;          /* Qwen regex (single digits) and NFC normalizer */
    int ignore_merges; /* Llama 3 sets it */
    int array_merges;  /* merges as [a, b] */
    int lstrip_rstrip; /* an added token "<ws>" with lstrip and rstrip */
};

/* merges, in rank order; each pair's result gets the next id from 256 */
static const char *const FIX_MERGES[][2] = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {" ", "w"}, {"o", "r"},
    {" w", "or"}, {"l", "d"}, {" wor", "ld"}, {"a", "a"}, {"aa", "aa"}, {"b", "c"},
    {"a", "b"}, {"1", "2"}, {"12", "3"}, {"\n", "\n"}, {" ", " "}, {"\xc3", "\xa9"},
};
#define FIX_NMERGES (sizeof(FIX_MERGES) / sizeof(FIX_MERGES[0]))

static inline char *fix_json(struct fix_opts o)
{
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject(), *merges = cJSON_CreateArray();
    char a[64], b[64], ab[128], raw[64];
    for (int x = 0; x < 256; x++) {
        char c[4];
        fix_byte_char(x, c);
        cJSON_AddNumberToObject(vocab, c, x);
    }
    for (size_t i = 0; i < FIX_NMERGES; i++) {
        fix_bl(FIX_MERGES[i][0], a);
        fix_bl(FIX_MERGES[i][1], b);
        snprintf(raw, sizeof(raw), "%s%s", FIX_MERGES[i][0], FIX_MERGES[i][1]);
        fix_bl(raw, ab);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, ab))
            cJSON_AddNumberToObject(vocab, ab, 256 + (int)i);
        if (o.array_merges) {
            cJSON *p = cJSON_CreateArray();
            cJSON_AddItemToArray(p, cJSON_CreateString(a));
            cJSON_AddItemToArray(p, cJSON_CreateString(b));
            cJSON_AddItemToArray(merges, p);
        } else {
            snprintf(ab, sizeof(ab), "%s %s", a, b);
            cJSON_AddItemToArray(merges, cJSON_CreateString(ab));
        }
    }
    /* in the vocab, no merge leads there: only ignore_merges reaches it */
    fix_bl("xyz", ab);
    cJSON_AddNumberToObject(vocab, ab, 500);
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", merges);
    cJSON_AddBoolToObject(model, "ignore_merges", o.ignore_merges);
    cJSON_AddItemToObject(root, "model", model);
    if (o.qwen) {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "type", "NFC");
        cJSON_AddItemToObject(root, "normalizer", n);
    } else
        cJSON_AddNullToObject(root, "normalizer");
    cJSON *pt = cJSON_CreateObject(), *seq = cJSON_CreateArray();
    cJSON *split = cJSON_CreateObject(), *pat = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(pt, "type", "Sequence");
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(pat, "Regex", o.qwen ? FIX_RE_QWEN : FIX_RE_LLAMA3);
    cJSON_AddItemToObject(split, "pattern", pat);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddFalseToObject(bl, "add_prefix_space");
    cJSON_AddFalseToObject(bl, "use_regex");
    cJSON_AddItemToArray(seq, split);
    cJSON_AddItemToArray(seq, bl);
    cJSON_AddItemToObject(pt, "pretokenizers", seq);
    cJSON_AddItemToObject(root, "pre_tokenizer", pt);
    struct { const char *s; int id, special, lstrip, rstrip; } added[] = {
        {"<|begin_of_text|>", 1000, 1, 0, 0}, {"<|eot_id|>", 1001, 1, 0, 0},
        {"<think>", 1002, 0, 0, 0}, {"<|a|>", 1003, 1, 0, 0}, {"<|a|>b", 1004, 1, 0, 0},
        {"<ws>", 1005, 0, 1, 1},
    };
    cJSON *at = cJSON_CreateArray();
    for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++) {
        if (added[i].lstrip && !o.lstrip_rstrip)
            continue;
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "id", added[i].id);
        cJSON_AddStringToObject(x, "content", added[i].s);
        cJSON_AddBoolToObject(x, "special", added[i].special);
        cJSON_AddBoolToObject(x, "lstrip", added[i].lstrip);
        cJSON_AddBoolToObject(x, "rstrip", added[i].rstrip);
        cJSON_AddItemToArray(at, x);
    }
    cJSON_AddItemToObject(root, "added_tokens", at);
    cJSON *pp = cJSON_Parse("{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
                            "{\"id\":\"<|begin_of_text|>\",\"type_id\":0}},{\"Sequence\":"
                            "{\"id\":\"A\",\"type_id\":0}}]}");
    cJSON_AddItemToObject(root, "post_processor", pp);
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static inline struct tok *fix_tok(struct fix_opts o, const char *config_json)
{
    char *j = fix_json(o);
    char err[256] = "";
    struct tok *t = tok_load_mem(j, config_json, err, sizeof(err));
    if (!t)
        fprintf(stderr, "fix_tok: %s\n", err);
    free(j);
    return t;
}

#endif
