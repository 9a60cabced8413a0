/* tok_load: tokenizer.json (+ tokenizer_config.json) into a struct tok.
 * See tok.h for what is supported. */
#include "tok/tok_priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/alloc.h"

uint64_t tok_hash(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- the byte-level alphabet (GPT-2's bytes_to_unicode) ---- */

static int byte_is_printable(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* code point -> byte; -1 if the code point is not in the alphabet */
static int cp_to_byte(uint32_t cp)
{
    if (cp < 256 && byte_is_printable((int)cp))
        return (int)cp;
    if (cp < 256 || cp >= 256 + 68)
        return -1;
    int k = (int)cp - 256, n = 0;
    for (int b = 0; b < 256; b++)
        if (!byte_is_printable(b) && n++ == k)
            return b;
    return -1;
}

/* Decodes a byte-level token string into raw bytes (into out, at most n
 * bytes since each char gives one byte). Returns the length or -1. */
static long bytelevel_decode(const char *s, char *out)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + strlen(s);
    long n = 0;
    while (p < end) {
        uint32_t cp;
        size_t l = tok_utf8_next_n(p, (size_t)(end - p), &cp);
        int b;
        if (cp == 0xFFFD || (b = cp_to_byte(cp)) < 0)
            return -1;
        out[n++] = (char)b;
        p += l;
    }
    return n;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* ---- tables ---- */

static uint32_t pow2_at_least(size_t n)
{
    uint32_t c = 16;
    while (c < n)
        c <<= 1;
    return c;
}

static long arena_put(struct tok *t, const char *s, size_t n)
{
    if (t->arena_len + n > t->arena_cap) {
        size_t cap = t->arena_cap ? t->arena_cap * 2 : 1 << 20;
        while (cap < t->arena_len + n)
            cap *= 2;
        char *a = kv_realloc(t->arena, cap);
        if (!a)
            return -1;
        t->arena = a;
        t->arena_cap = cap;
    }
    memcpy(t->arena + t->arena_len, s, n);
    t->arena_len += n;
    return (long)(t->arena_len - n);
}

const struct tok_vslot *tok_vocab_slot(const struct tok *t, const char *s, size_t n)
{
    if (!t->vhash || !n)
        return NULL;
    uint32_t i = (uint32_t)tok_hash(s, n) & t->vmask;
    for (;;) {
        const struct tok_vslot *v = &t->vhash[i];
        if (!v->len)
            return NULL;
        if (v->len == n && !memcmp(t->arena + v->off, s, n))
            return v;
        i = (i + 1) & t->vmask;
    }
}

int64_t tok_vocab_find(const struct tok *t, const char *s, size_t n)
{
    const struct tok_vslot *v = tok_vocab_slot(t, s, n);
    return v ? (int64_t)v->id : -1;
}

/* Marks the vocab entries that BPE rebuilds whole from their bytes: a
 * piece equal to one of them is that one token, found by one lookup
 * (exact, unlike a cache: the merges were run once at load). */
static int mark_whole(struct tok *t)
{
    struct tok_ids ids = {0};
    for (uint32_t i = 0; i <= t->vmask; i++) {
        struct tok_vslot *v = &t->vhash[i];
        if (v->len < 2)
            continue;
        ids.n = 0;
        if (tok_bpe_merges(t, t->arena + v->off, v->len, &ids)) {
            tok_ids_free(&ids);
            return -ENOMEM;
        }
        v->whole = ids.n == 1 && ids.v[0] == v->id;
    }
    tok_ids_free(&ids);
    return 0;
}

static int vocab_add(struct tok *t, const char *s, size_t n, uint32_t id)
{
    uint32_t i = (uint32_t)tok_hash(s, n) & t->vmask;
    for (;;) {
        struct tok_vslot *v = &t->vhash[i];
        if (!v->len)
            break;
        if (v->len == n && !memcmp(t->arena + v->off, s, n))
            return 0; /* first wins */
        i = (i + 1) & t->vmask;
    }
    long off = arena_put(t, s, n);
    if (off < 0)
        return -ENOMEM;
    t->vhash[i] = (struct tok_vslot){(uint32_t)off, (uint32_t)n, id, 0};
    if (id + 1 > t->nids)
        t->nids = id + 1;
    return 0;
}

static void merge_add(struct tok *t, uint32_t a, uint32_t b, uint32_t rank, uint32_t id)
{
    uint64_t key = (uint64_t)a << 32 | b;
    uint32_t i = tok_merge_slot(key, t->mmask);
    while (t->mhash[i].key != UINT64_MAX) {
        if (t->mhash[i].key == key)
            return; /* the lower rank stays */
        i = (i + 1) & t->mmask;
    }
    t->mhash[i] = (struct tok_mslot){key, rank, id};
}

/* ---- parts of tokenizer.json ---- */

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jtrue(const cJSON *o, const char *k)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static int load_vocab(struct tok *t, const cJSON *vocab, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(vocab);
    t->vmask = pow2_at_least((size_t)n * 2 + 1024) - 1;
    t->vhash = kv_calloc((size_t)t->vmask + 1, sizeof(*t->vhash));
    if (!t->vhash)
        return -ENOMEM;
    char tmp[TOK_MAX_TOKEN_CHARS + 1]; /* one byte a byte-level character */
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 4e9) {
            seterr(err, errlen, "model.vocab: \"%s\" has no valid id", e->string);
            return -EINVAL;
        }
        if (utf8_chars(e->string) > TOK_MAX_TOKEN_CHARS) {
            seterr(err, errlen, "model.vocab: an entry over %d characters", TOK_MAX_TOKEN_CHARS);
            return -EINVAL;
        }
        long l = bytelevel_decode(e->string, tmp);
        if (l <= 0)
            continue; /* not byte-level text: unreachable by BPE */
        if (vocab_add(t, tmp, (size_t)l, (uint32_t)e->valuedouble))
            return -ENOMEM;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        int64_t id = tok_vocab_find(t, &c, 1);
        if (id < 0) {
            seterr(err, errlen, "model.vocab: no token for byte 0x%02x (not byte-level BPE?)", b);
            return -EINVAL;
        }
        t->byte_id[b] = (uint32_t)id;
    }
    return 0;
}

static int load_merges(struct tok *t, const cJSON *merges, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(merges);
    t->mmask = pow2_at_least((size_t)n * 2 + 16) - 1;
    t->mhash = kv_malloc(((size_t)t->mmask + 1) * sizeof(*t->mhash));
    if (!t->mhash)
        return -ENOMEM;
    memset(t->mhash, 0xff, ((size_t)t->mmask + 1) * sizeof(*t->mhash));
    char a[TOK_MAX_TOKEN_CHARS + 1], b[sizeof(a)], ab[2 * sizeof(a)];
    uint32_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *sa, *sb;
        char pair[8 * TOK_MAX_TOKEN_CHARS + 2];
        if (cJSON_IsString(m)) { /* "a b" */
            const char *sp = strchr(m->valuestring, ' ');
            size_t la = sp ? (size_t)(sp - m->valuestring) : 0;
            if (!sp) {
                seterr(err, errlen, "model.merges[%u]: not \"a b\"", rank);
                return -EINVAL;
            }
            if (la + strlen(sp + 1) + 2 > sizeof(pair)) {
                seterr(err, errlen, "model.merges[%u]: an entry over %d characters", rank,
                       TOK_MAX_TOKEN_CHARS);
                return -EINVAL;
            }
            memcpy(pair, m->valuestring, la);
            pair[la] = 0;
            strcpy(pair + la + 1, sp + 1);
            sa = pair;
            sb = pair + la + 1;
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) { /* [a, b] */
            sa = cJSON_GetArrayItem(m, 0)->valuestring;
            sb = cJSON_GetArrayItem(m, 1)->valuestring;
        } else {
            seterr(err, errlen, "model.merges[%u]: neither \"a b\" nor [a, b]", rank);
            return -EINVAL;
        }
        rank++;
        if (utf8_chars(sa) > TOK_MAX_TOKEN_CHARS || utf8_chars(sb) > TOK_MAX_TOKEN_CHARS) {
            seterr(err, errlen, "model.merges[%u]: an entry over %d characters", rank - 1,
                   TOK_MAX_TOKEN_CHARS);
            return -EINVAL;
        }
        long la = bytelevel_decode(sa, a), lb = bytelevel_decode(sb, b);
        if (la <= 0 || lb <= 0)
            continue;
        int64_t ia = tok_vocab_find(t, a, (size_t)la), ib = tok_vocab_find(t, b, (size_t)lb);
        memcpy(ab, a, (size_t)la);
        memcpy(ab + la, b, (size_t)lb);
        int64_t iab = tok_vocab_find(t, ab, (size_t)(la + lb));
        if (ia < 0 || ib < 0 || iab < 0)
            continue; /* HF refuses such a file; a merge that can't apply is inert */
        merge_add(t, (uint32_t)ia, (uint32_t)ib, rank - 1, (uint32_t)iab);
    }
    return 0;
}

static int added_cmp(const void *pa, const void *pb)
{
    const struct tok_added *a = pa, *b = pb;
    unsigned char fa = (unsigned char)a->s[0], fb = (unsigned char)b->s[0];
    if (fa != fb)
        return fa < fb ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1; /* longest first */
    return memcmp(a->s, b->s, a->len);
}

static int load_added(struct tok *t, const cJSON *arr, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(arr);
    if (n <= 0)
        return 0;
    if (n > TOK_MAX_ADDED) {
        seterr(err, errlen, "added_tokens: more than %d", TOK_MAX_ADDED);
        return -EINVAL;
    }
    t->added = kv_calloc((size_t)n, sizeof(*t->added));
    if (!t->added)
        return -ENOMEM;
    const cJSON *a;
    cJSON_ArrayForEach(a, arr) {
        const char *c = jstr(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!c || !*c || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 4e9) {
            seterr(err, errlen, "added_tokens[%zu]: needs content and id", t->nadded);
            return -EINVAL;
        }
        if (jtrue(a, "single_word")) {
            seterr(err, errlen, "added_tokens[%zu]: single_word is not supported", t->nadded);
            return -EINVAL;
        }
        struct tok_added *x = &t->added[t->nadded];
        x->normalized = (uint8_t)jtrue(a, "normalized");
        if (!(x->s = kv_strdup(c)))
            return -ENOMEM;
        t->nadded++;
        x->len = (uint32_t)strlen(c);
        x->id = (uint32_t)id->valuedouble;
        x->special = (uint8_t)jtrue(a, "special");
        x->lstrip = (uint8_t)jtrue(a, "lstrip");
        x->rstrip = (uint8_t)jtrue(a, "rstrip");
        if (x->len > t->added_maxlen)
            t->added_maxlen = x->len;
        if (x->id + 1 > t->nids)
            t->nids = x->id + 1;
    }
    qsort(t->added, t->nadded, sizeof(*t->added), added_cmp);
    for (size_t i = t->nadded; i-- > 0;)
        t->added_first[(unsigned char)t->added[i].s[0]] = (uint16_t)(i + 1);
    return 0;
}

static void *gctx_malloc(size_t n, void *u)
{
    return kv_malloc(n);
}
static void gctx_free(void *p, void *u)
{
    kv_free(p);
}

#define CONTRACTIONS_HF "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
#define CONTRACTIONS_ASCII "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

static int load_regex(struct tok *t, const char *pat, char *err, size_t errlen)
{
    char buf[TOK_MAX_REGEX + sizeof(CONTRACTIONS_ASCII) + 1];
    if (strlen(pat) > TOK_MAX_REGEX) {
        seterr(err, errlen, "pre_tokenizer: regex over %d bytes", TOK_MAX_REGEX);
        return -EINVAL;
    }
    const char *c = strstr(pat, CONTRACTIONS_HF);
    if (c) {
        size_t pre = (size_t)(c - pat);
        memcpy(buf, pat, pre);
        strcpy(buf + pre, CONTRACTIONS_ASCII);
        strcat(buf, c + strlen(CONTRACTIONS_HF));
        pat = buf;
    }
    t->gctx = pcre2_general_context_create(gctx_malloc, gctx_free, NULL);
    pcre2_compile_context *cc = t->gctx ? pcre2_compile_context_create(t->gctx) : NULL;
    if (!cc)
        return -ENOMEM;
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                          &ec, &eo, cc);
    pcre2_compile_context_free(cc);
    if (!t->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        seterr(err, errlen, "pre_tokenizer: regex at %zu: %s", (size_t)eo, (char *)msg);
        return -EINVAL;
    }
    /* without JIT (a kernel refusing executable memory) pcre2_match interprets */
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD);
    return 0;
}

/* Sequence[Split(Regex, Isolated), ByteLevel(no prefix space, no regex)] */
static int load_pretok(struct tok *t, const cJSON *pt, char *err, size_t errlen)
{
    const char *type = jstr(pt, "type");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers");
    const cJSON *split = NULL, *bl = NULL;
    if (type && !strcmp(type, "Sequence") && cJSON_GetArraySize(seq) == 2) {
        split = cJSON_GetArrayItem(seq, 0);
        bl = cJSON_GetArrayItem(seq, 1);
    }
    const char *st = split ? jstr(split, "type") : NULL, *bt = bl ? jstr(bl, "type") : NULL;
    const cJSON *pat = split ? cJSON_GetObjectItemCaseSensitive(split, "pattern") : NULL;
    const char *re = pat ? jstr(pat, "Regex") : NULL;
    const char *beh = split ? jstr(split, "behavior") : NULL;
    if (!st || strcmp(st, "Split") || !re || !beh || strcmp(beh, "Isolated") ||
        jtrue(split, "invert") || !bt || strcmp(bt, "ByteLevel") ||
        jtrue(bl, "add_prefix_space") || jtrue(bl, "use_regex")) {
        seterr(err, errlen, "pre_tokenizer: only Sequence[Split(Regex, Isolated), "
                            "ByteLevel(add_prefix_space=false, use_regex=false)] is supported");
        return -EINVAL;
    }
    return load_regex(t, re, err, errlen);
}

static int load_normalizer(struct tok *t, const cJSON *n, char *err, size_t errlen)
{
    if (!n || cJSON_IsNull(n))
        return 0;
    const char *type = jstr(n, "type");
    if (type && !strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (type && !strcmp(type, "Sequence") &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(n, "normalizers")) == 0)
        return 0;
    seterr(err, errlen, "normalizer: only null or NFC is supported (got %s)",
           type ? type : "?");
    return -EINVAL;
}

/* The leading special token of the post-processor's "single" template. */
static void load_bos(struct tok *t, const cJSON *pp)
{
    if (!pp)
        return;
    const char *type = jstr(pp, "type");
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
            load_bos(t, p);
        return;
    }
    if (!type || strcmp(type, "TemplateProcessing"))
        return;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(pp, "single"), 0);
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(first, "SpecialToken");
    const char *id = sp ? jstr(sp, "id") : NULL;
    for (size_t i = 0; id && i < t->nadded; i++)
        if (!strcmp(t->added[i].s, id))
            t->bos_id = t->added[i].id;
}

static int load_model(struct tok *t, const cJSON *root, char *err, size_t errlen)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *type = jstr(m, "type");
    const char *cp = jstr(m, "continuing_subword_prefix"), *ew = jstr(m, "end_of_word_suffix");
    if (!type || strcmp(type, "BPE") || jtrue(m, "byte_fallback") || (cp && *cp) ||
        (ew && *ew)) {
        seterr(err, errlen, "model: only byte-level BPE without byte_fallback or "
                            "subword affixes is supported");
        return -EINVAL;
    }
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        seterr(err, errlen, "model: vocab (object) and merges (array) required");
        return -EINVAL;
    }
    t->ignore_merges = jtrue(m, "ignore_merges");
    int rc = load_vocab(t, vocab, err, errlen);
    if (!rc)
        rc = load_merges(t, merges, err, errlen);
    if (!rc)
        rc = mark_whole(t);
    return rc;
}

static void load_config(struct tok *t, const cJSON *cfg)
{
    const cJSON *bos = cJSON_GetObjectItemCaseSensitive(cfg, "bos_token");
    const char *b = cJSON_IsString(bos) ? bos->valuestring : jstr(bos, "content");
    if (b)
        t->bos_token = kv_strdup(b);
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *tmpl = cJSON_IsString(ct) ? ct->valuestring : NULL;
    if (cJSON_IsArray(ct)) { /* [{name, template}]: the "default" one */
        const cJSON *e;
        cJSON_ArrayForEach(e, ct) {
            const char *name = jstr(e, "name");
            if (name && !strcmp(name, "default"))
                tmpl = jstr(e, "template");
        }
    }
    tok_chat_detect(t, tmpl);
}

struct tok *tok_load_mem(const char *tokenizer_json, const char *config_json, char *err,
                         size_t errlen)
{
    struct tok *t = kv_calloc(1, sizeof(*t));
    cJSON *root = NULL, *cfg = NULL;
    if (!t) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    t->max_bytes = TOK_MAX_BYTES_DEFAULT;
    t->bos_id = -1;
    root = cJSON_Parse(tokenizer_json);
    if (!root) {
        seterr(err, errlen, "tokenizer.json: not JSON");
        goto fail;
    }
    if (config_json && !(cfg = cJSON_Parse(config_json))) {
        seterr(err, errlen, "tokenizer_config.json: not JSON");
        goto fail;
    }
    int rc = load_model(t, root, err, errlen);
    if (!rc)
        rc = load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err,
                             errlen);
    if (!rc)
        rc = load_pretok(t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err,
                         errlen);
    if (!rc)
        rc = load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err,
                        errlen);
    for (size_t i = 0; !rc && t->nfc && i < t->nadded; i++)
        if (t->added[i].normalized) { /* HF would look for it in the NFC text */
            seterr(err, errlen, "added_tokens: \"%s\" is normalized: not supported with a "
                                "normalizer", t->added[i].s);
            rc = -EINVAL;
        }
    if (rc == -ENOMEM)
        seterr(err, errlen, "out of memory");
    if (rc)
        goto fail;
    load_bos(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (cfg)
        load_config(t, cfg);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return t;
fail:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    tok_free(t);
    return NULL;
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = kv_realloc(buf, cap);
            if (!nb) {
                kv_free(buf);
                fclose(f);
                seterr(err, errlen, "%s: out of memory", path);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        kv_free(buf);
        seterr(err, errlen, "%s: read error", path);
        return NULL;
    }
    buf[len] = 0;
    return buf;
}

struct tok *tok_load(const char *tokenizer_json, const char *tokenizer_config_json,
                     char *err, size_t errlen)
{
    char *j = read_file(tokenizer_json, err, errlen);
    if (!j)
        return NULL;
    char *c = NULL;
    if (tokenizer_config_json && !(c = read_file(tokenizer_config_json, err, errlen))) {
        kv_free(j);
        return NULL;
    }
    struct tok *t = tok_load_mem(j, c, err, errlen);
    kv_free(j);
    kv_free(c);
    return t;
}

struct tok *tok_pseudo(void)
{
    struct tok *t = kv_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->pseudo = 1;
    t->max_bytes = TOK_MAX_BYTES_DEFAULT;
    t->bos_id = -1;
    t->tmpl = TOK_TEMPLATE_PSEUDO;
    return t;
}

void tok_free(struct tok *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nadded; i++)
        kv_free(t->added[i].s);
    kv_free(t->added);
    kv_free(t->vhash);
    kv_free(t->mhash);
    kv_free(t->arena);
    kv_free(t->bos_token);
    kv_free(t->sys_default);
    if (t->re)
        pcre2_code_free(t->re);
    if (t->gctx)
        pcre2_general_context_free(t->gctx);
    kv_free(t);
}

void tok_set_max_bytes(struct tok *t, size_t max_bytes)
{
    t->max_bytes = max_bytes;
}

size_t tok_vocab_size(const struct tok *t)
{
    return t->pseudo ? (size_t)1 << 32 : t->nids;
}

int tok_is_pseudo(const struct tok *t)
{
    return t->pseudo;
}

enum tok_template tok_template(const struct tok *t)
{
    return t->tmpl;
}
