/* bodyscan: a push state machine over JSON bytes. See bodyscan.h.
 *
 * Layout: the feed loop dispatches on the state; each handler consumes as
 * many bytes as it can and returns the new position (NULL after an error).
 * No handler looks ahead past the byte it decides on, so any split of the
 * input gives the same results and the same error offset; the only byte
 * that is looked at twice is the one that ends a number (it is left
 * unconsumed and scanned again as a structural byte).
 *
 * Speed: on a chat body almost every byte is plain string content. Runs of
 * it are skipped 16 bytes at a time with SSE2 (baseline on x86-64),
 * well-formed UTF-8 included (checked with bit masks, see scan_plain);
 * anything else, and the last bytes of each feed, go byte by byte. */
#include "core/bodyscan.h"

#include <errno.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef unsigned char uchar;

enum st {
    ST_VALUE,     /* a value (top level; after ':'; after ',' in an array) */
    ST_ARR_FIRST, /* after '[': a value or ']' */
    ST_OBJ_FIRST, /* after '{': a key or '}' */
    ST_OBJ_KEY,   /* after ',' in an object: a key */
    ST_COLON,     /* after a key */
    ST_AFTER,     /* after a value in a container: ',' or the closer */
    ST_DONE,      /* top-level object closed: whitespace only */
    ST_STR,       /* inside a string */
    ST_ESC,       /* after '\' */
    ST_UHEX,      /* inside \uXXXX (u_n digits read) */
    ST_SURR_BS,   /* after a high surrogate escape: '\' must follow */
    ST_SURR_U,    /* ... then 'u' */
    ST_UTF8,      /* inside a multi-byte UTF-8 sequence (u8_need left) */
    ST_NUM,       /* inside a number (num_st) */
    ST_LIT,       /* inside true / false / null */
    ST_ERR,
};

/* Number grammar (RFC 8259 section 6). "T" marks states where the number
 * may end. */
enum num_st {
    N_MINUS,  /* "-"          : digit */
    N_ZERO,   /* "0"       T  : '.', 'e' */
    N_INT,    /* "12"      T  : digit, '.', 'e' */
    N_DOT,    /* "1."         : digit */
    N_FRAC,   /* "1.5"     T  : digit, 'e' */
    N_E,      /* "1e"         : sign, digit */
    N_ESIGN,  /* "1e-"        : digit */
    N_EXP,    /* "1e5"     T  : digit */
};

/* Fields we extract. Values index fields[]; bit (1 << f) in seen. The
 * three string fields double as string sinks (where decoded bytes go). */
enum field {
    F_NONE,
    F_MODEL,
    F_USER,
    F_CACHE_SALT,
    F_STREAM,
    F_STREAM_OPTIONS,
    F_MESSAGES,
    F_PROMPT,
    F_MAX_TOKENS,
    F_MAX_COMPLETION_TOKENS,
    F_INCLUDE_USAGE, /* inside stream_options only */
    F_COUNT,
};
#define TOP_FIRST F_MODEL /* top-level keys: F_MODEL..F_MAX_COMPLETION_TOKENS */
#define TOP_LAST  F_MAX_COMPLETION_TOKENS

enum sink { SINK_NONE = F_NONE, SINK_KEY = F_COUNT }; /* or F_MODEL..SALT */

#define Q(n) "\"" n "\""
#define FIELD(n, type, extra) { n, Q(n) " must be " type, "duplicate " Q(n) " key", extra }
#define STRF(n) FIELD(n, "a string", Q(n) " too long (max 255 bytes)")
#define INTF(n) FIELD(n, "a non-negative integer", Q(n) " out of range")

static const struct {
    const char *name, *type_err, *dup_err;
    const char *extra_err; /* strings: too long; integers: out of range */
} fields[F_COUNT] = {
    [F_MODEL] = STRF("model"),
    [F_USER] = STRF("user"),
    [F_CACHE_SALT] = STRF("cache_salt"),
    [F_STREAM] = FIELD("stream", "a boolean", NULL),
    [F_STREAM_OPTIONS] = FIELD("stream_options", "an object", NULL),
    [F_MESSAGES] = FIELD("messages", "an array", NULL),
    [F_PROMPT] = FIELD("prompt", "a string or an array", NULL),
    [F_MAX_TOKENS] = INTF("max_tokens"),
    [F_MAX_COMPLETION_TOKENS] = INTF("max_completion_tokens"),
    [F_INCLUDE_USAGE] = { "include_usage",
                          "\"stream_options.include_usage\" must be a boolean",
                          "duplicate \"include_usage\" key", NULL },
};

/* Decoded U+0000 in a result string: it would truncate it as a C string. */
static const char *const nul_err[] = {
    [F_MODEL] = "\"model\" must not contain U+0000",
    [F_USER] = "\"user\" must not contain U+0000",
    [F_CACHE_SALT] = "\"cache_salt\" must not contain U+0000",
};

static const char lit_text[3][6] = { "true", "false", "null" };
static const uint8_t lit_len[3] = { 4, 5, 4 };

#define IS_WS(c) ((c) == ' ' || (c) == '\n' || (c) == '\r' || (c) == '\t')

static inline size_t pos(const struct bodyscan *s, const uchar *p)
{
    return s->off + (size_t)(p - s->chunk);
}

static const uchar *fail(struct bodyscan *s, size_t off, const char *msg)
{
    s->err_msg = msg;
    s->err_offset = off;
    s->st = ST_ERR;
    return NULL;
}

static const uchar *failp(struct bodyscan *s, const uchar *p, const char *msg)
{
    return fail(s, pos(s, p), msg);
}

_Static_assert(offsetof(struct bodyscan, model_len) == 3 * BODYSCAN_STR_MAX,
               "bodyscan_init clears everything after the three buffers");

void bodyscan_init(struct bodyscan *s, bodyscan_prompt_fn on_prompt, void *ctx)
{
    /* Only the scalars: the result buffers are written before use (each
     * starts as an empty string). */
    memset(&s->model_len, 0, sizeof(*s) - offsetof(struct bodyscan, model_len));
    s->model[0] = s->user[0] = s->cache_salt[0] = '\0';
    s->stream = s->include_usage = -1;
    s->max_tokens = s->max_completion_tokens = -1;
    s->on_prompt = on_prompt;
    s->ctx = ctx;
    s->st = ST_VALUE;
}

int bodyscan_complete(const struct bodyscan *s)
{
    return s->st == ST_DONE;
}

/* ---- string sinks ---- */

static inline char *sink_buf(struct bodyscan *s, uint16_t **len)
{
    switch (s->sink) {
    case F_MODEL: *len = &s->model_len; return s->model;
    case F_USER: *len = &s->user_len; return s->user;
    default: *len = &s->cache_salt_len; return s->cache_salt;
    }
}

/* Appends n decoded bytes. at: offset of b[0] when the bytes are raw body
 * bytes (run = 1: the error points at the first byte that does not fit);
 * the offset of the escape's last byte otherwise. */
static int sink_put(struct bodyscan *s, const uchar *b, size_t n, size_t at,
                    int run)
{
    if (s->sink == SINK_KEY) {
        if (s->klen <= BODYSCAN_KEY_MAX) {
            if (s->klen + n > BODYSCAN_KEY_MAX)
                s->klen = BODYSCAN_KEY_MAX + 1; /* cannot match any key */
            else {
                memcpy(s->kbuf + s->klen, b, n);
                s->klen += (uint8_t)n;
            }
        }
        return 0;
    }
    uint16_t *len;
    char *buf = sink_buf(s, &len);
    size_t room = BODYSCAN_STR_MAX - 1 - *len;
    if (n > room) {
        fail(s, run ? at + room : at, fields[s->sink].extra_err);
        return -EBADMSG;
    }
    memcpy(buf + *len, b, n);
    *len += (uint16_t)n;
    return 0;
}

/* ---- values ---- */

/* Which extracted field the value starting now belongs to. */
static inline unsigned field_here(const struct bodyscan *s)
{
    if (s->depth == 1)
        return s->field;
    if (s->depth == 2 && s->in_so)
        return s->field2;
    return F_NONE;
}

static int type_ok(unsigned f, uchar c)
{
    switch (f) {
    case F_MODEL: case F_USER: case F_CACHE_SALT:
        return c == '"' || c == 'n';
    case F_STREAM: case F_INCLUDE_USAGE:
        return c == 't' || c == 'f' || c == 'n';
    case F_STREAM_OPTIONS:
        return c == '{' || c == 'n';
    case F_MESSAGES:
        return c == '[';
    case F_PROMPT:
        return c == '"' || c == '[';
    case F_MAX_TOKENS: case F_MAX_COMPLETION_TOKENS:
        return (c >= '0' && c <= '9') || c == 'n';
    }
    return 1;
}

static void deliver(struct bodyscan *s, const uchar *to)
{
    if (s->on_prompt && to > s->pr_from)
        s->on_prompt(s->ctx, (const char *)s->pr_from,
                     (size_t)(to - s->pr_from));
    s->pr_from = to;
}

/* A value ended just before p_after: pick the next state, close the prompt
 * span, forget the field. */
static void value_done(struct bodyscan *s, const uchar *p_after)
{
    if (s->depth == 1) {
        if (s->in_prompt) {
            deliver(s, p_after);
            s->prompt_end = pos(s, p_after);
            s->in_prompt = 0;
        }
        s->field = F_NONE;
        s->st = ST_AFTER;
    } else if (s->depth == 0) {
        s->st = ST_DONE;
    } else {
        if (s->depth == 2 && s->in_so)
            s->field2 = F_NONE;
        s->st = ST_AFTER;
    }
}

static const uchar *begin_value(struct bodyscan *s, const uchar *p)
{
    uchar c = *p;
    if (s->depth == 0 && c != '{')
        return failp(s, p, "top-level value must be an object");
    unsigned f = field_here(s);
    switch (c) {
    case '{': case '[': case '"': case 't': case 'f': case 'n': case '-':
    case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        break;
    default:
        return failp(s, p, "expected a value");
    }
    if (f && !type_ok(f, c))
        return failp(s, p, fields[f].type_err);
    if (f == F_STREAM_OPTIONS) {
        s->so_seen = 1;
        s->so_start = pos(s, p);
    } else if (f == F_INCLUDE_USAGE) {
        s->iu_seen = 1;
        s->iu_start = pos(s, p);
    }
    if (f == F_MESSAGES || f == F_PROMPT) {
        s->prompt_kind = f == F_MESSAGES ? BODYSCAN_CHAT : BODYSCAN_COMPLETION;
        s->prompt_start = pos(s, p);
        s->pr_from = p;
        s->in_prompt = 1;
    }
    switch (c) {
    case '{': case '[':
        if (s->depth == BODYSCAN_MAX_DEPTH)
            return failp(s, p, "nesting deeper than 64 levels");
        if (c == '{')
            s->stack |= 1ull << s->depth;
        else
            s->stack &= ~(1ull << s->depth);
        s->depth++;
        if (f == F_STREAM_OPTIONS)
            s->in_so = 1;
        s->st = c == '{' ? ST_OBJ_FIRST : ST_ARR_FIRST;
        return p + 1;
    case '"':
        s->str_key = 0;
        s->sink = f >= F_MODEL && f <= F_CACHE_SALT ? (uint8_t)f : SINK_NONE;
        s->st = ST_STR;
        return p + 1;
    case 't': case 'f': case 'n':
        s->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        s->lit_i = 1;
        /* Set now; an invalid literal is an error anyway. */
        if (c != 'n' && f == F_STREAM)
            s->stream = c == 't';
        else if (c != 'n' && f == F_INCLUDE_USAGE)
            s->include_usage = c == 't';
        s->st = ST_LIT;
        return p + 1;
    default:
        s->num_st = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
        s->num_cap = f == F_MAX_TOKENS || f == F_MAX_COMPLETION_TOKENS;
        s->num = c - '0';
        s->st = ST_NUM;
        return p + 1;
    }
}

static const uchar *do_literal(struct bodyscan *s, const uchar *p,
                               const uchar *end)
{
    const char *t = lit_text[s->lit];
    while (p < end) {
        if (*p != (uchar)t[s->lit_i])
            return failp(s, p, "invalid literal");
        p++;
        if (++s->lit_i == lit_len[s->lit]) {
            value_done(s, p);
            return p;
        }
    }
    return p;
}

static const uchar *do_number(struct bodyscan *s, const uchar *p,
                              const uchar *end)
{
    for (; p < end; p++) {
        uchar c = *p;
        int digit = c >= '0' && c <= '9';
        switch (s->num_st) {
        case N_MINUS:
            if (!digit)
                return failp(s, p, "expected a digit after '-'");
            s->num_st = c == '0' ? N_ZERO : N_INT;
            continue;
        case N_ZERO:
            if (digit)
                return failp(s, p, "leading zero in number");
            break;
        case N_INT:
            if (digit) {
                if (s->num_cap) {
                    /* only max_tokens-like fields get here, never negative */
                    if (s->num > (INT64_MAX - (c - '0')) / 10)
                        return failp(s, p, fields[field_here(s)].extra_err);
                    s->num = s->num * 10 + (c - '0');
                }
                continue;
            }
            break;
        case N_DOT:
            if (!digit)
                return failp(s, p, "expected a digit after '.'");
            s->num_st = N_FRAC;
            continue;
        case N_FRAC:
            if (digit)
                continue;
            if (c == 'e' || c == 'E') {
                s->num_st = N_E;
                continue;
            }
            goto end_number;
        case N_E:
            if (c == '+' || c == '-') {
                s->num_st = N_ESIGN;
                continue;
            }
            /* fall through */
        case N_ESIGN:
            if (!digit)
                return failp(s, p, "expected a digit in exponent");
            s->num_st = N_EXP;
            continue;
        case N_EXP:
            if (digit)
                continue;
            goto end_number;
        }
        /* N_ZERO or N_INT, not a digit */
        if (c == '.' || c == 'e' || c == 'E') {
            if (s->num_cap)
                return failp(s, p, fields[field_here(s)].type_err);
            s->num_st = c == '.' ? N_DOT : N_E;
            continue;
        }
    end_number:
        if (s->num_cap) {
            if (field_here(s) == F_MAX_TOKENS)
                s->max_tokens = s->num;
            else
                s->max_completion_tokens = s->num;
            s->num_cap = 0;
        }
        value_done(s, p);
        return p; /* c is scanned again as a structural byte */
    }
    return p;
}

/* ---- strings ---- */

#ifdef __SSE2__
#define V8(x) _mm_set1_epi8((char)(x))
#define MASK(x) ((uint32_t)_mm_movemask_epi8(x))
#define IN(v, lo, hi) /* signed bytes in [lo, hi] */ \
    _mm_and_si128(_mm_cmpgt_epi8(v, V8((lo) - 1)), _mm_cmplt_epi8(v, V8((hi) + 1)))
#endif

/* First byte in [p,end) that is not plain string content. Plain: ASCII
 * other than '"', '\\' and controls, and, on the SIMD path, complete
 * well-formed UTF-8 sequences. Whatever is returned is handled byte by
 * byte, so the SIMD path may stop early (it does on anything odd) but must
 * never step over a byte the byte-wise path would reject. p is always at a
 * sequence boundary. */
static inline const uchar *scan_plain(const uchar *p, const uchar *end)
{
#ifdef __SSE2__
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed compare: "< 0x20" also flags the bytes >= 0x80 */
        uint32_t odd = MASK(_mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, V8('"')), _mm_cmpeq_epi8(v, V8('\\'))),
            _mm_cmplt_epi8(v, V8(0x20))));
        if (!odd) {
            p += 16;
            continue;
        }
        uint32_t hi = MASK(v); /* bytes >= 0x80 */
        uint32_t stop = odd & ~hi;
        if (!hi)
            return p + __builtin_ctz(stop);
        /* UTF-8 by bit masks, one bit per byte (signed byte values:
         * 0x80 = -128, 0xc0 = -64, 0xe0 = -32, 0xf0 = -16). */
        uint32_t cont = MASK(_mm_cmplt_epi8(v, V8(0xc0)));     /* 80..bf */
        uint32_t lead2 = MASK(IN(v, -62, -33));                 /* c2..df */
        uint32_t lead3 = MASK(IN(v, -32, -17));                 /* e0..ef */
        uint32_t lead4 = MASK(IN(v, -16, -12));                 /* f0..f4 */
        uint32_t lt_a0 = MASK(_mm_cmplt_epi8(v, V8(0xa0)));    /* 80..9f */
        uint32_t lt_90 = MASK(_mm_cmplt_epi8(v, V8(0x90)));    /* 80..8f */
        uint32_t e0 = MASK(_mm_cmpeq_epi8(v, V8(0xe0)));
        uint32_t ed = MASK(_mm_cmpeq_epi8(v, V8(0xed)));
        uint32_t f0 = MASK(_mm_cmpeq_epi8(v, V8(0xf0)));
        uint32_t f4 = MASK(_mm_cmpeq_epi8(v, V8(0xf4)));
        uint32_t leads = lead2 | lead3 | lead4;
        /* where continuation bytes must be */
        uint32_t need = leads << 1 | (lead3 | lead4) << 2 | lead4 << 3;
        uint32_t bad = (hi & ~(cont | leads)) |       /* c0, c1, f5..ff */
                       (e0 << 1 & lt_a0) |            /* overlong */
                       (ed << 1 & cont & ~lt_a0) |    /* surrogate */
                       (f0 << 1 & lt_90) |            /* overlong */
                       (f4 << 1 & cont & ~lt_90);     /* > U+10FFFF */
        unsigned len = stop ? (unsigned)__builtin_ctz(stop) : 16;
        uint32_t in = (1u << len) - 1;
        if (((cont ^ need) | bad) & in || (len < 16 && need >> len))
            return p + __builtin_ctz(stop | hi); /* let the slow path judge */
        if (len < 16)
            return p + len;
        if (need >> 16) /* a sequence runs past the block: resume at it */
            p += 31 - __builtin_clz(leads);
        else
            p += 16;
    }
#endif
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
        p++;
    return p;
}

/* Sets up the continuation-byte expectations for a UTF-8 lead byte. The
 * narrowed ranges for the first continuation byte reject overlong forms
 * (E0, F0), UTF-16 surrogates (ED) and code points above U+10FFFF (F4). */
static int utf8_lead(struct bodyscan *s, uchar c)
{
    s->u8_lo = 0x80;
    s->u8_hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        s->u8_need = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        s->u8_need = 2;
        if (c == 0xe0)
            s->u8_lo = 0xa0;
        else if (c == 0xed)
            s->u8_hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        s->u8_need = 3;
        if (c == 0xf0)
            s->u8_lo = 0x90;
        else if (c == 0xf4)
            s->u8_hi = 0x8f;
    } else {
        return -1; /* continuation byte, C0/C1 (overlong), F5.. */
    }
    return 0;
}

static const uchar *do_utf8_cont(struct bodyscan *s, const uchar *p,
                                 const uchar *end)
{
    while (s->u8_need) {
        if (p == end) {
            s->st = ST_UTF8;
            return p;
        }
        if (*p < s->u8_lo || *p > s->u8_hi)
            return failp(s, p, "invalid UTF-8 in string");
        s->u8_lo = 0x80;
        s->u8_hi = 0xbf;
        s->u8_need--;
        if (s->sink && sink_put(s, p, 1, pos(s, p), 1) < 0)
            return NULL;
        p++;
    }
    s->st = ST_STR;
    return p;
}

static int key_is(const struct bodyscan *s, unsigned f)
{
    size_t n = strlen(fields[f].name);
    return s->klen == n && memcmp(s->kbuf, fields[f].name, n) == 0;
}

/* A key ended: match it, check for duplicates. */
static const uchar *key_done(struct bodyscan *s, const uchar *p_after)
{
    unsigned f = F_NONE;
    if (s->sink == SINK_KEY) {
        if (s->depth == 1) {
            for (unsigned i = TOP_FIRST; i <= TOP_LAST; i++)
                if (key_is(s, i)) {
                    f = i;
                    break;
                }
        } else if (key_is(s, F_INCLUDE_USAGE)) {
            f = F_INCLUDE_USAGE;
        }
    }
    if (f) {
        if (s->seen & (1u << f))
            return fail(s, s->key_off, fields[f].dup_err);
        if ((f == F_MESSAGES && (s->seen & (1u << F_PROMPT))) ||
            (f == F_PROMPT && (s->seen & (1u << F_MESSAGES))))
            return fail(s, s->key_off,
                        "both \"messages\" and \"prompt\" present");
        s->seen |= 1u << f;
    }
    if (s->depth == 1)
        s->field = (uint8_t)f;
    else if (s->depth == 2)
        s->field2 = (uint8_t)f; /* only read when in_so */
    s->sink = SINK_NONE;
    s->st = ST_COLON;
    return p_after;
}

static const uchar *string_done(struct bodyscan *s, const uchar *p_after)
{
    if (s->str_key)
        return key_done(s, p_after);
    if (s->sink) {
        uint16_t *len;
        char *buf = sink_buf(s, &len);
        buf[*len] = '\0';
        if (s->sink == F_MODEL)
            s->has_model = 1;
        else if (s->sink == F_USER)
            s->has_user = 1;
        else
            s->has_cache_salt = 1;
        s->sink = SINK_NONE;
    }
    value_done(s, p_after);
    return p_after;
}

static const uchar *do_string(struct bodyscan *s, const uchar *p,
                              const uchar *end)
{
    for (;;) {
        const uchar *q = scan_plain(p, end);
        if (q != p && s->sink && sink_put(s, p, (size_t)(q - p), pos(s, p), 1))
            return NULL;
        p = q;
        if (p == end)
            return p;
        uchar c = *p;
        if (c == '"')
            return string_done(s, p + 1);
        if (c == '\\') {
            s->st = ST_ESC;
            return p + 1;
        }
        if (c < 0x20)
            return failp(s, p, "control character in string");
        if (utf8_lead(s, c) < 0)
            return failp(s, p, "invalid UTF-8 in string");
        if (s->sink && sink_put(s, p, 1, pos(s, p), 1) < 0)
            return NULL;
        p = do_utf8_cont(s, p + 1, end);
        if (!p || s->st != ST_STR)
            return p;
    }
}

/* Emits a decoded code point (from an escape ending at p) to the sink. */
static const uchar *emit_cp(struct bodyscan *s, const uchar *p, uint32_t cp)
{
    s->st = ST_STR;
    if (!s->sink)
        return p + 1;
    if (cp == 0 && s->sink != SINK_KEY)
        return failp(s, p, nul_err[s->sink]);
    uchar u[4];
    size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    static const uchar lead[5] = { 0, 0x00, 0xc0, 0xe0, 0xf0 };
    for (size_t i = n - 1; i > 0; i--, cp >>= 6)
        u[i] = (uchar)(0x80 | (cp & 0x3f));
    u[0] = (uchar)(lead[n] | cp);
    if (sink_put(s, u, n, pos(s, p), 0) < 0)
        return NULL;
    return p + 1;
}

static const uchar *do_escape(struct bodyscan *s, const uchar *p)
{
    uchar c = *p;
    switch (c) {
    case '"': case '\\': case '/': return emit_cp(s, p, c);
    case 'b': return emit_cp(s, p, '\b');
    case 'f': return emit_cp(s, p, '\f');
    case 'n': return emit_cp(s, p, '\n');
    case 'r': return emit_cp(s, p, '\r');
    case 't': return emit_cp(s, p, '\t');
    case 'u':
        s->st = ST_UHEX;
        s->u_n = 0;
        s->u_val &= 0xffff0000u; /* keep a pending high surrogate */
        return p + 1;
    }
    return failp(s, p, "invalid escape in string");
}

/* u_val: low 16 bits the digits being read; high 16 bits a pending high
 * surrogate (0 if none: a high surrogate is never 0). */
static const uchar *do_uhex(struct bodyscan *s, const uchar *p,
                            const uchar *end)
{
    for (; p < end; p++) {
        uchar c = *p;
        unsigned d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
        else
            return failp(s, p, "invalid \\u escape in string");
        s->u_val = (s->u_val & 0xffff0000u) | ((s->u_val & 0xfff) << 4) | d;
        if (++s->u_n < 4)
            continue;
        uint32_t hi = s->u_val >> 16, cu = s->u_val & 0xffff;
        s->u_val = 0;
        if (hi) {
            if (cu < 0xdc00 || cu > 0xdfff)
                return failp(s, p, "unpaired surrogate in \\u escape");
            return emit_cp(s, p, 0x10000 + ((hi - 0xd800) << 10) +
                                     (cu - 0xdc00));
        }
        if (cu >= 0xdc00 && cu <= 0xdfff)
            return failp(s, p, "unpaired surrogate in \\u escape");
        if (cu >= 0xd800 && cu <= 0xdbff) {
            s->u_val = cu << 16;
            s->st = ST_SURR_BS;
            return p + 1;
        }
        return emit_cp(s, p, cu);
    }
    return p;
}

/* ---- structure ---- */

static const uchar *pop(struct bodyscan *s, const uchar *p)
{
    s->depth--;
    if (s->depth == 1)
        s->in_so = 0; /* the container at depth 2 is closed */
    value_done(s, p + 1);
    return p + 1;
}

static const uchar *begin_key(struct bodyscan *s, const uchar *p)
{
    s->str_key = 1;
    s->key_off = pos(s, p);
    s->klen = 0;
    s->sink = s->depth == 1 || (s->depth == 2 && s->in_so) ? SINK_KEY
                                                           : SINK_NONE;
    s->st = ST_STR;
    return p + 1;
}

static const uchar *do_struct(struct bodyscan *s, const uchar *p,
                              const uchar *end)
{
    while (p < end && IS_WS(*p))
        p++;
    if (p == end)
        return p;
    uchar c = *p;
    int obj = s->depth && (s->stack >> (s->depth - 1) & 1);
    switch (s->st) {
    case ST_VALUE:
        return begin_value(s, p);
    case ST_ARR_FIRST:
        return c == ']' ? pop(s, p) : begin_value(s, p);
    case ST_OBJ_FIRST:
        if (c == '}')
            return pop(s, p);
        if (c != '"')
            return failp(s, p, "expected a string key or '}'");
        return begin_key(s, p);
    case ST_OBJ_KEY:
        if (c != '"')
            return failp(s, p, "expected a string key after ','");
        return begin_key(s, p);
    case ST_COLON:
        if (c != ':')
            return failp(s, p, "expected ':' after object key");
        s->st = ST_VALUE;
        return p + 1;
    case ST_AFTER:
        if (c == ',') {
            s->st = obj ? ST_OBJ_KEY : ST_VALUE;
            return p + 1;
        }
        if (c == (obj ? '}' : ']'))
            return pop(s, p);
        return failp(s, p, obj ? "expected ',' or '}' after object member"
                               : "expected ',' or ']' after array element");
    case ST_DONE:
        return failp(s, p, "trailing characters after the top-level object");
    }
    return failp(s, p, "internal error: bad state");
}

int bodyscan_feed(struct bodyscan *s, const char *buf, size_t n)
{
    if (s->st == ST_ERR)
        return -EBADMSG;
    const uchar *p = (const uchar *)buf, *end = p + n;
    s->chunk = p;
    s->pr_from = p;
    while (p < end) {
        switch (s->st) {
        case ST_STR:
            p = do_string(s, p, end);
            break;
        case ST_ESC:
            p = do_escape(s, p);
            break;
        case ST_UHEX:
            p = do_uhex(s, p, end);
            break;
        case ST_SURR_BS: /* a high surrogate must be followed by \uDCxx */
        case ST_SURR_U:
            if (*p != (s->st == ST_SURR_BS ? '\\' : 'u')) {
                failp(s, p, "unpaired surrogate in \\u escape");
                return -EBADMSG;
            }
            s->st = s->st == ST_SURR_BS ? ST_SURR_U : ST_UHEX;
            s->u_n = 0;
            p++;
            break;
        case ST_UTF8:
            p = do_utf8_cont(s, p, end);
            break;
        case ST_NUM:
            p = do_number(s, p, end);
            break;
        case ST_LIT:
            p = do_literal(s, p, end);
            break;
        default:
            p = do_struct(s, p, end);
            break;
        }
        if (!p)
            return -EBADMSG;
    }
    if (s->in_prompt)
        deliver(s, end);
    s->chunk = NULL;
    s->pr_from = NULL;
    s->off += n;
    return 0;
}

int bodyscan_finish(struct bodyscan *s)
{
    if (s->st == ST_ERR)
        return -EBADMSG;
    if (s->st != ST_DONE) {
        fail(s, s->off, "unexpected end of body");
        return -EBADMSG;
    }
    return 0;
}
