/* tok_encode: text -> ids, whole or as a stream. See tok.h.
 *
 * The pipeline, as Hugging Face tokenizers runs it for these families:
 *   UTF-8 (invalid bytes -> U+FFFD)
 *   -> added tokens found in the raw text (leftmost, longest)
 *   -> each section between them: NFC (if the normalizer says so)
 *   -> pre-tokens: the Split regex's matches (and any gaps between them)
 *   -> each pre-token: whole if ignore_merges and it is in the vocab, else
 *      BPE over its bytes, lowest merge rank first, leftmost on ties.
 * The stream runs the same functions on what is certain so far. */
#include "tok/tok_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "common/alloc.h"

/* ---- ids ---- */

void tok_ids_free(struct tok_ids *ids)
{
    kv_free(ids->v);
    ids->v = NULL;
    ids->n = ids->cap = 0;
}

static int ids_reserve(struct tok_ids *o, size_t extra)
{
    if (o->n + extra <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 64;
    while (cap < o->n + extra)
        cap *= 2;
    uint32_t *v = kv_realloc(o->v, cap * sizeof(*v));
    if (!v)
        return -ENOMEM;
    o->v = v;
    o->cap = cap;
    return 0;
}

static inline int ids_push(struct tok_ids *o, uint32_t id)
{
    if (o->n == o->cap && ids_reserve(o, 1))
        return -ENOMEM;
    o->v[o->n++] = id;
    return 0;
}

int tok_ids_push(struct tok_ids *ids, uint32_t id)
{
    return ids_push(ids, id);
}

/* ---- UTF-8 ---- */

size_t tok_utf8_next(const unsigned char *s, uint32_t *cp)
{
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xE0) {
        *cp = (c & 0x1Fu) << 6 | (s[1] & 0x3Fu);
        return 2;
    }
    if (c < 0xF0) {
        *cp = (c & 0x0Fu) << 12 | (s[1] & 0x3Fu) << 6 | (s[2] & 0x3Fu);
        return 3;
    }
    *cp = (c & 0x07u) << 18 | (s[1] & 0x3Fu) << 12 | (s[2] & 0x3Fu) << 6 | (s[3] & 0x3Fu);
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 if invalid at its lead
 * byte, or -(k) if the k bytes up to n are a valid but incomplete start.
 * On an invalid continuation at offset k, returns -(k) - 1000 (the maximal
 * subpart that must become one U+FFFD is s[0..k)). */
static long utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    for (size_t k = 1; k < need; k++) {
        if (k >= n)
            return -(long)k;
        unsigned b = s[k];
        if (b < lo || b > hi)
            return -(long)k - 1000;
        lo = 0x80;
        hi = 0xBF;
    }
    return (long)need;
}

size_t tok_utf8_next_n(const unsigned char *s, size_t n, uint32_t *cp)
{
    long l = utf8_seq(s, n);
    if (l <= 0) {
        *cp = 0xFFFD;
        return 1;
    }
    return tok_utf8_next(s, cp);
}

static size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i + 8 <= n) { /* ASCII 8 at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        long l = utf8_seq(s + i, n - i);
        if (l <= 0)
            return i;
        i += (size_t)l;
    }
    return n;
}

struct bytes {
    char *p;
    size_t len, cap;
};

static int bytes_append(struct bytes *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *np = kv_realloc(b->p, cap);
        if (!np)
            return -ENOMEM;
        b->p = np;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    return 0;
}

/* Appends s[0..n) to out with invalid sequences replaced by U+FFFD. When
 * !final, an incomplete sequence at the end is not taken: *taken says how
 * much of s was. */
static int utf8_sanitize(const unsigned char *s, size_t n, int final, struct bytes *out,
                         size_t *taken)
{
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0;
    while (i < n) {
        size_t v = utf8_valid_prefix(s + i, n - i);
        if (bytes_append(out, s + i, v))
            return -ENOMEM;
        i += v;
        if (i >= n)
            break;
        long l = utf8_seq(s + i, n - i);
        if (l < 0 && l > -1000 && !final)
            break; /* incomplete at the end: wait for more */
        size_t skip = l == 0 ? 1 : l > -1000 ? (size_t)-l : (size_t)(-l - 1000);
        if (bytes_append(out, fffd, 3))
            return -ENOMEM;
        i += skip;
    }
    *taken = i;
    return 0;
}

/* ---- whitespace sets ---- */

/* Unicode White_Space (Rust's char::is_whitespace: added tokens' strips) */
static int uni_space(uint32_t c)
{
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Python str.isspace(): White_Space plus U+001C..U+001F */
int tok_py_space(uint32_t c)
{
    return uni_space(c) || (c >= 0x1C && c <= 0x1F);
}

/* start of the trailing White_Space run of s[0..n) (valid UTF-8) */
static size_t trailing_space(const char *s, size_t n)
{
    size_t e = n;
    while (e > 0) {
        size_t b = e - 1;
        while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80)
            b--;
        uint32_t cp;
        tok_utf8_next((const unsigned char *)s + b, &cp);
        if (!uni_space(cp))
            break;
        e = b;
    }
    return e;
}

static size_t leading_space(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t l = tok_utf8_next((const unsigned char *)s + i, &cp);
        if (!uni_space(cp))
            break;
        i += l;
    }
    return i;
}

/* ---- NFC ---- */

/* a code point that NFC leaves alone whatever surrounds it, and that
 * nothing before it composes with: a safe place to cut */
static int nfc_inert(uint32_t cp)
{
    if (cp < 0x300)
        return 1;
    if ((cp >= 0x1100 && cp <= 0x11FF) || (cp >= 0xAC00 && cp <= 0xD7A3))
        return 0; /* Hangul composes algorithmically */
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    return p->combining_class == 0 && p->decomp_seqindex == UINT16_MAX &&
           p->comb_index == UINT16_MAX && !p->comp_exclusion;
}

/* last offset in s[0..n) at which a code point begins that is a safe cut
 * (inert), or 0 */
static size_t nfc_last_cut(const char *s, size_t n)
{
    size_t e = n;
    while (e > 0) {
        size_t b = e - 1;
        while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80)
            b--;
        uint32_t cp;
        tok_utf8_next((const unsigned char *)s + b, &cp);
        if (nfc_inert(cp))
            return b;
        e = b;
    }
    return 0;
}

/* utf8proc_map allocates with libc's malloc (2.8 has no utf8proc_free):
 * what it returns goes back through libc's free, named here so that it is
 * the one raw call of the module (tests/unit/common/test_alloc.c) */
static void (*const utf8proc_release)(void *) = free;

/* NFC of s[0..n) into *out (kv_malloc'd) unless it is already NFC; then
 * *out = NULL. Only the stretches around code points that are not inert
 * go through utf8proc, each from the inert code point before it to the
 * next inert one (both safe cuts), so text that is mostly inert (ASCII,
 * CJK) costs a scan. */
static int nfc(const char *s, size_t n, char **out, size_t *outn)
{
    *out = NULL;
    const unsigned char *u = (const unsigned char *)s;
    struct bytes b = {0};
    size_t done = 0, last_inert = 0, i = 0;
    while (i < n) {
        if (u[i] < 0xCC) { /* below U+0300 */
            if (u[i] < 0x80 || u[i] >= 0xC0)
                last_inert = i;
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_next(u + i, &cp);
        if (nfc_inert(cp)) {
            last_inert = i;
            i += l;
            continue;
        }
        /* the stretch [from, to): from the inert code point before (or
         * where the last stretch ended) to the next inert one */
        size_t from = last_inert > done ? last_inert : done, to = i + l;
        while (to < n) {
            uint32_t c2;
            size_t l2 = tok_utf8_next(u + to, &c2);
            if (nfc_inert(c2))
                break;
            to += l2;
        }
        utf8proc_uint8_t *r = NULL;
        utf8proc_ssize_t rl = utf8proc_map(u + from, (utf8proc_ssize_t)(to - from), &r,
                                           UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (rl < 0 || bytes_append(&b, s + done, from - done) ||
            bytes_append(&b, r, (size_t)rl)) {
            utf8proc_release(r);
            kv_free(b.p);
            return rl == UTF8PROC_ERROR_NOMEM || rl >= 0 ? -ENOMEM : -EINVAL;
        }
        utf8proc_release(r);
        done = i = to;
        last_inert = to;
    }
    if (!b.p && done == 0)
        return 0; /* nothing to do */
    if (bytes_append(&b, s + done, n - done)) {
        kv_free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *outn = b.len;
    return 0;
}

/* ---- BPE ---- */

static inline uint32_t merge_find(const struct tok *t, uint32_t a, uint32_t b, uint32_t *id)
{
    uint64_t key = (uint64_t)a << 32 | b;
    uint32_t i = tok_merge_slot(key, t->mmask);
    for (;;) {
        const struct tok_mslot *m = &t->mhash[i];
        if (m->key == key) {
            *id = m->id;
            return m->rank;
        }
        if (m->key == UINT64_MAX)
            return UINT32_MAX;
        i = (i + 1) & t->mmask;
    }
}

struct heapent {
    uint32_t rank, pos;
};

static inline int he_less(struct heapent a, struct heapent b)
{
    return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos);
}

static void heap_push(struct heapent *h, size_t *n, struct heapent e)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!he_less(e, h[p]))
            break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static void sift_down(struct heapent *h, size_t n, size_t i)
{
    struct heapent e = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && he_less(h[c + 1], h[c]))
            c++;
        if (!he_less(h[c], e))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
}

static void heapify(struct heapent *h, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(h, n, i);
}

static struct heapent heap_pop(struct heapent *h, size_t *n)
{
    struct heapent top = h[0], e = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n)
            break;
        if (c + 1 < *n && he_less(h[c + 1], h[c]))
            c++;
        if (!he_less(h[c], e))
            break;
        h[i] = h[c];
        i = c;
    }
    if (*n)
        h[i] = e;
    return top;
}

#define BPE_STACK 128 /* pieces up to this many bytes use stack scratch */

/* BPE over n bytes whose initial ids are in id[]; nxt/prv links; result
 * appended in order. Small pieces: scan for the lowest rank; large: heap. */
static int bpe_merge(const struct tok *t, uint32_t *id, int32_t *nxt, int32_t *prv,
                     uint32_t *rk, size_t n, struct tok_ids *out)
{
    for (size_t i = 0; i < n; i++) {
        nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        prv[i] = (int32_t)i - 1;
    }
    if (n <= BPE_STACK) {
        uint32_t mid[BPE_STACK];
        for (size_t i = 0; i + 1 < n; i++)
            rk[i] = merge_find(t, id[i], id[i + 1], &mid[i]);
        rk[n - 1] = UINT32_MAX;
        for (;;) {
            uint32_t best = UINT32_MAX;
            int32_t bi = -1;
            for (int32_t i = 0; i >= 0; i = nxt[i])
                if (rk[i] < best) {
                    best = rk[i];
                    bi = i;
                }
            if (bi < 0)
                break;
            int32_t j = nxt[bi];
            id[bi] = mid[bi];
            nxt[bi] = nxt[j];
            if (nxt[j] >= 0)
                prv[nxt[j]] = bi;
            rk[bi] = nxt[bi] >= 0 ? merge_find(t, id[bi], id[nxt[bi]], &mid[bi]) : UINT32_MAX;
            if (prv[bi] >= 0)
                rk[prv[bi]] = merge_find(t, id[prv[bi]], id[bi], &mid[prv[bi]]);
        }
    } else {
        struct heapent *h = kv_malloc(3 * n * sizeof(*h));
        if (!h)
            return -ENOMEM;
        size_t hn = 0;
        uint32_t m = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            uint32_t r = merge_find(t, id[i], id[i + 1], &m);
            if (r != UINT32_MAX)
                h[hn++] = (struct heapent){r, (uint32_t)i};
        }
        heapify(h, hn);
        /* rk[i] = 1 while symbol i is alive */
        for (size_t i = 0; i < n; i++)
            rk[i] = 1;
        while (hn) {
            struct heapent e = heap_pop(h, &hn);
            int32_t i = (int32_t)e.pos, j = nxt[i];
            if (!rk[i] || j < 0 || merge_find(t, id[i], id[j], &m) != e.rank)
                continue; /* stale */
            id[i] = m;
            rk[j] = 0;
            nxt[i] = nxt[j];
            if (nxt[j] >= 0)
                prv[nxt[j]] = i;
            if (nxt[i] >= 0) {
                uint32_t r = merge_find(t, id[i], id[nxt[i]], &m);
                if (r != UINT32_MAX)
                    heap_push(h, &hn, (struct heapent){r, (uint32_t)i});
            }
            if (prv[i] >= 0) {
                uint32_t r = merge_find(t, id[prv[i]], id[i], &m);
                if (r != UINT32_MAX)
                    heap_push(h, &hn, (struct heapent){r, (uint32_t)prv[i]});
            }
        }
        kv_free(h);
    }
    for (int32_t i = 0; i >= 0; i = nxt[i])
        if (ids_push(out, id[i]))
            return -ENOMEM;
    return 0;
}

static int bpe_piece(const struct tok *t, const char *s, size_t n, struct tok_ids *out)
{
    if (n == 1)
        return ids_push(out, t->byte_id[(unsigned char)s[0]]);
    const struct tok_vslot *v = tok_vocab_slot(t, s, n);
    if (v && (t->ignore_merges || v->whole))
        return ids_push(out, v->id);
    return tok_bpe_merges(t, s, n, out);
}

int tok_bpe_merges(const struct tok *t, const char *s, size_t n, struct tok_ids *out)
{
    if (n == 1)
        return ids_push(out, t->byte_id[(unsigned char)s[0]]);
    if (n <= BPE_STACK) {
        uint32_t id[BPE_STACK], rk[BPE_STACK];
        int32_t nxt[BPE_STACK], prv[BPE_STACK];
        for (size_t i = 0; i < n; i++)
            id[i] = t->byte_id[(unsigned char)s[i]];
        return bpe_merge(t, id, nxt, prv, rk, n, out);
    }
    uint32_t *id = kv_malloc(n * (sizeof(uint32_t) * 2 + sizeof(int32_t) * 2));
    if (!id)
        return -ENOMEM;
    uint32_t *rk = id + n;
    int32_t *nxt = (int32_t *)(rk + n), *prv = nxt + n;
    for (size_t i = 0; i < n; i++)
        id[i] = t->byte_id[(unsigned char)s[i]];
    int rc = bpe_merge(t, id, nxt, prv, rk, n, out);
    kv_free(id);
    return rc;
}

/* ---- pre-tokens ---- */

/* Pre-tokenizes s[0..n) (valid UTF-8, normalized) and BPEs each piece.
 * final: all of it. Else s is a prefix of what will come: the regex runs
 * in PCRE2's hard partial mode, and the first attempt that reached the end
 * of s (a piece more text could change: a greedy run, a lookahead, an
 * alternative that needed one more character) stops it; *consumed = where
 * that attempt began. Pieces before it were decided without looking past
 * them, so they are what the whole text gives. */
static int pretok(const struct tok *t, pcre2_match_data *md, const char *s, size_t n,
                  int final, struct tok_ids *out, size_t *consumed)
{
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    uint32_t opt = PCRE2_NO_UTF_CHECK | (final ? 0 : PCRE2_PARTIAL_HARD);
    size_t pos = 0;
    int rc;
    while (pos < n) {
        int m = pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, opt, md, NULL);
        size_t ms, me;
        if (m >= 0) {
            ms = ov[0];
            me = ov[1];
            if (me <= ms) { /* empty match: step one code point */
                uint32_t cp;
                me = ms + tok_utf8_next((const unsigned char *)s + ms, &cp);
            }
        } else if (m == PCRE2_ERROR_PARTIAL) {
            ms = ov[0];
            if (ms > pos && (rc = bpe_piece(t, s + pos, ms - pos, out))) /* the gap */
                return rc;
            *consumed = ms;
            return 0;
        } else if (m == PCRE2_ERROR_NOMATCH) {
            ms = me = n;
        } else
            return m == PCRE2_ERROR_NOMEMORY ? -ENOMEM : -EIO;
        /* Isolated: the gap [pos, ms) is a piece too */
        if (ms > pos && (rc = bpe_piece(t, s + pos, ms - pos, out)))
            return rc;
        if (me > ms && (rc = bpe_piece(t, s + ms, me - ms, out)))
            return rc;
        pos = me;
    }
    *consumed = n;
    return 0;
}

/* A section between added tokens: NFC, then pre-tokens. */
static int section(const struct tok *t, pcre2_match_data *md, const char *s, size_t n,
                   struct tok_ids *out)
{
    if (!n)
        return 0;
    char *norm = NULL;
    size_t nn = 0, c;
    if (t->nfc) {
        int rc = nfc(s, n, &norm, &nn);
        if (rc)
            return rc;
        if (norm) {
            s = norm;
            n = nn;
        }
    }
    int rc = pretok(t, md, s, n, 1, out, &c);
    kv_free(norm);
    return rc;
}

/* The first added token in s[from..n) (leftmost, then longest). Only
 * non-special ones unless TOK_PARSE_SPECIAL. */
static const struct tok_added *find_added(const struct tok *t, const char *s, size_t from,
                                          size_t n, unsigned flags, size_t *at)
{
    if (!t->nadded)
        return NULL;
    for (size_t i = from; i < n; i++) {
        unsigned k = t->added_first[(unsigned char)s[i]];
        if (!k)
            continue;
        for (size_t j = k - 1; j < t->nadded && t->added[j].s[0] == s[i]; j++) {
            const struct tok_added *a = &t->added[j];
            if (a->len <= n - i && !memcmp(s + i, a->s, a->len) &&
                (a->special ? (flags & TOK_PARSE_SPECIAL) != 0 : 1)) {
                *at = i;
                return a;
            }
        }
    }
    return NULL;
}

/* earliest offset >= from where s[j..n) is a proper prefix of an added
 * token that may match under flags: n if none */
static size_t added_partial(const struct tok *t, const char *s, size_t from, size_t n,
                            unsigned flags)
{
    if (!t->nadded)
        return n;
    size_t j = n > t->added_maxlen ? n - t->added_maxlen + 1 : 0;
    if (j < from)
        j = from;
    for (; j < n; j++) {
        unsigned k = t->added_first[(unsigned char)s[j]];
        if (!k)
            continue;
        for (size_t i = k - 1; i < t->nadded && t->added[i].s[0] == s[j]; i++) {
            const struct tok_added *a = &t->added[i];
            if (a->len > n - j && !memcmp(s + j, a->s, n - j) &&
                (!a->special || (flags & TOK_PARSE_SPECIAL)))
                return j;
        }
    }
    return n;
}

/* ---- whole ---- */

static int encode_pseudo(const char *s, size_t n, struct tok_ids *out)
{
    if (ids_reserve(out, (n + 3) / 4))
        return -ENOMEM;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        out->v[out->n++] = (uint32_t)p[i] | (uint32_t)p[i + 1] << 8 |
                           (uint32_t)p[i + 2] << 16 | (uint32_t)p[i + 3] << 24;
    if (i < n) {
        uint32_t v = 0;
        for (size_t j = 0; i + j < n; j++)
            v |= (uint32_t)p[i + j] << (8 * j);
        out->v[out->n++] = v;
    }
    return 0;
}

/* Sections and added tokens of valid UTF-8 s[0..n). */
static int encode_valid(const struct tok *t, pcre2_match_data *md, const char *s, size_t n,
                        unsigned flags, struct tok_ids *out)
{
    size_t pos = 0, at;
    const struct tok_added *a;
    int rc;
    while ((a = find_added(t, s, pos, n, flags, &at))) {
        size_t end = at;
        if (a->lstrip)
            end = pos + trailing_space(s + pos, at - pos);
        if ((rc = section(t, md, s + pos, end - pos, out)) || (rc = ids_push(out, a->id)))
            return rc;
        pos = at + a->len;
        if (a->rstrip)
            pos += leading_space(s + pos, n - pos);
    }
    return section(t, md, s + pos, n - pos, out);
}

int tok_encode(const struct tok *t, const char *s, size_t n, unsigned flags,
               struct tok_ids *out)
{
    if (n > t->max_bytes)
        return -E2BIG;
    if (t->pseudo)
        return encode_pseudo(s, n, out);
    size_t n0 = out->n;
    if ((flags & TOK_ADD_BOS) && t->bos_id >= 0 && ids_push(out, (uint32_t)t->bos_id))
        return -ENOMEM;
    struct bytes clean = {0};
    if (utf8_valid_prefix((const unsigned char *)s, n) < n) {
        size_t taken;
        if (utf8_sanitize((const unsigned char *)s, n, 1, &clean, &taken)) {
            kv_free(clean.p);
            return -ENOMEM;
        }
        s = clean.p;
        n = clean.len;
    }
    pcre2_match_data *md = pcre2_match_data_create(1, t->gctx);
    int rc = md ? encode_valid(t, md, s, n, flags, out) : -ENOMEM;
    if (md)
        pcre2_match_data_free(md);
    kv_free(clean.p);
    if (rc == -EIO || rc == -EINVAL) /* regex engine limits: not expected */
        out->n = n0;
    return rc;
}

/* ---- stream ---- */

void tok_stream_init(struct tok_stream *st, const struct tok *t, unsigned flags)
{
    memset(st, 0, sizeof(*st));
    st->t = t;
    st->flags = flags;
}

void tok_stream_free(struct tok_stream *st)
{
    kv_free(st->buf);
    st->buf = NULL;
    st->len = st->cap = 0;
}

/* Processes st->buf; final: all of it. */
static int stream_run(struct tok_stream *st, int final, struct tok_ids *out)
{
    const struct tok *t = st->t;
    char *s = st->buf;
    size_t n = st->len, pos = 0, at;
    if (!n)
        return 0;
    pcre2_match_data *md = pcre2_match_data_create(1, t->gctx);
    if (!md)
        return -ENOMEM;
    int rc = 0;
    if (st->skip_ws) { /* an rstrip token ended the last feed */
        pos = leading_space(s, n);
        if (pos < n || final)
            st->skip_ws = 0;
    }
    size_t u = final ? n : added_partial(t, s, pos, n, st->flags);
    const struct tok_added *a;
    while ((a = find_added(t, s, pos, n, st->flags, &at)) && at < u) {
        size_t end = at;
        if (a->lstrip)
            end = pos + trailing_space(s + pos, at - pos);
        if ((rc = section(t, md, s + pos, end - pos, out)) || (rc = ids_push(out, a->id)))
            goto done;
        pos = at + a->len;
        if (a->rstrip) {
            pos += leading_space(s + pos, n - pos);
            if (pos == n && !final)
                st->skip_ws = 1;
        }
        if (pos > u)
            u = pos;
    }
    if (final) {
        rc = section(t, md, s + pos, n - pos, out);
        pos = n;
        goto done;
    }
    /* the undecided section s[pos..u): what is sure of it */
    size_t end = u;
    int any_lstrip = 0;
    for (size_t i = 0; i < t->nadded; i++)
        any_lstrip |= t->added[i].lstrip;
    if (any_lstrip)
        end = pos + trailing_space(s + pos, end - pos);
    if (t->nfc) {
        end = pos + nfc_last_cut(s + pos, end - pos);
        char *norm = NULL;
        size_t nn = 0;
        if ((rc = nfc(s + pos, end - pos, &norm, &nn)))
            goto done;
        if (norm) { /* splice the normalized text in (NFC is idempotent) */
            size_t old = end - pos, tail = n - end;
            if (nn > old && nn - old > st->cap - st->len) {
                char *nb = kv_realloc(st->buf, st->len + (nn - old));
                if (!nb) {
                    kv_free(norm);
                    rc = -ENOMEM;
                    goto done;
                }
                st->buf = s = nb;
                st->cap = st->len + (nn - old);
            }
            memmove(s + pos + nn, s + end, tail);
            memcpy(s + pos, norm, nn);
            kv_free(norm);
            st->len = n = pos + nn + tail;
            end = pos + nn;
        }
    }
    size_t c = 0;
    rc = pretok(t, md, s + pos, end - pos, 0, out, &c);
    pos += c;
done:
    pcre2_match_data_free(md);
    memmove(st->buf, st->buf + pos, st->len - pos);
    st->len -= pos;
    return rc;
}

static int buf_room(struct tok_stream *st, size_t need)
{
    if (need <= st->cap)
        return 0;
    size_t cap = st->cap ? st->cap : 256;
    while (cap < need)
        cap *= 2;
    char *nb = kv_realloc(st->buf, cap);
    if (!nb)
        return -ENOMEM;
    st->buf = nb;
    st->cap = cap;
    return 0;
}

static int stream_pseudo(struct tok_stream *st, const char *s, size_t n, int final,
                         struct tok_ids *out)
{
    /* 4 bytes a token: buf holds the < 4 bytes of an unfinished one */
    if (buf_room(st, 4))
        return -ENOMEM;
    while (n && st->len) {
        st->buf[st->len++] = *s++;
        n--;
        if (st->len == 4) {
            if (encode_pseudo(st->buf, 4, out))
                return -ENOMEM;
            st->len = 0;
        }
    }
    size_t whole = n & ~(size_t)3;
    if (encode_pseudo(s, whole, out))
        return -ENOMEM;
    memcpy(st->buf + st->len, s + whole, n - whole);
    st->len += n - whole;
    if (final && st->len) {
        if (encode_pseudo(st->buf, st->len, out))
            return -ENOMEM;
        st->len = 0;
    }
    return 0;
}

static int stream_feed(struct tok_stream *st, const char *s, size_t n, int final,
                       struct tok_ids *out)
{
    const struct tok *t = st->t;
    if (st->failed)
        return st->failed;
    if (n > t->max_bytes - st->total)
        return st->failed = -E2BIG;
    st->total += n;
    if (!st->started) {
        st->started = 1;
        if ((st->flags & TOK_ADD_BOS) && t->bos_id >= 0 && ids_push(out, (uint32_t)t->bos_id))
            return st->failed = -ENOMEM;
    }
    if (t->pseudo) {
        int rc = stream_pseudo(st, s, n, final, out);
        return rc ? (st->failed = rc) : 0;
    }
    /* the carried incomplete sequence goes in front of s */
    char *joined = NULL;
    if (st->ncarry) {
        if (!(joined = kv_malloc(st->ncarry + n + 1)))
            return st->failed = -ENOMEM;
        memcpy(joined, st->carry, st->ncarry);
        memcpy(joined + st->ncarry, s, n);
        s = joined;
        n += st->ncarry;
        st->ncarry = 0;
    }
    struct bytes b = {st->buf, st->len, st->cap};
    size_t taken = 0;
    int rc = utf8_sanitize((const unsigned char *)s, n, final, &b, &taken);
    st->buf = b.p;
    st->len = b.len;
    st->cap = b.cap;
    if (!rc) {
        st->ncarry = (unsigned)(n - taken); /* < 4: an incomplete valid start */
        memcpy(st->carry, s + taken, st->ncarry);
    }
    kv_free(joined);
    if (!rc && (final || st->len >= st->next_run)) {
        rc = stream_run(st, final, out);
        st->next_run = st->len < TOK_STREAM_EAGER ? 0 : 2 * st->len;
    }
    if (rc)
        st->failed = rc;
    return rc;
}

int tok_stream_feed(struct tok_stream *st, const char *s, size_t n, struct tok_ids *out)
{
    return stream_feed(st, s, n, 0, out);
}

int tok_stream_finish(struct tok_stream *st, struct tok_ids *out)
{
    int rc = stream_feed(st, "", 0, 1, out);
    tok_stream_free(st);
    return rc;
}
