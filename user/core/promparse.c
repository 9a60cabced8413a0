/* promparse: Prometheus text format 0.0.4, whole buffer. See promparse.h. */
#include "core/promparse.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- character classes ---- */

#define C_NAME0 0x01  /* may start a metric name: [A-Za-z_:] */
#define C_NAME 0x02   /* may continue one: [A-Za-z0-9_:] */
#define C_LNAME0 0x04 /* may start a label name: [A-Za-z_] */
#define C_LNAME 0x08  /* may continue one: [A-Za-z0-9_] */
#define C_ALL (C_NAME0 | C_NAME | C_LNAME0 | C_LNAME)

static const unsigned char cls[256] = {
    ['a' ... 'z'] = C_ALL,
    ['A' ... 'Z'] = C_ALL,
    ['_'] = C_ALL,
    [':'] = C_NAME0 | C_NAME,
    ['0' ... '9'] = C_NAME | C_LNAME,
};

static inline int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static inline const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && is_blank(*p))
        p++;
    return p;
}

/* ---- numbers ---- */

/* Exact powers of ten: every one up to 1e22 is a double without rounding. */
static const double pow10_exact[] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/* Case-insensitive: does [p, end) spell lit (lower case) exactly? */
static int word_eq(const char *p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - p) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != lit[i])
            return 0;
    return 1;
}

/* The value token [p, end), as Go's ParseFloat reads it minus hex floats
 * and underscores: [+-]digits[.digits][(e|E)[+-]digits] with at least one
 * mantissa digit, or the words below.
 *
 * Fast path (Clinger): with at most 15 significant digits the mantissa m is
 * an exact double, and when the decimal exponent k is within +-22, 10^|k| is
 * exact too, so m * 10^k or m / 10^-k is one correctly rounded operation:
 * the same double strtod() would return. Everything else (long mantissas,
 * big exponents) is validated here and converted by strtod(). */
static int parse_double(const char *p, const char *end, double *out)
{
    const char *s = p;
    int neg = 0;

    /* one limit for both paths, so whether a token parses never depends
     * on how many of its digits are leading zeros */
    if ((size_t)(end - p) > PROM_MAX_NUMBER)
        return -EINVAL;
    if (s < end && (*s == '+' || *s == '-')) {
        neg = *s == '-';
        s++;
    }
    if (s == end)
        return -EINVAL;
    if (*s != '.' && (unsigned)(*s - '0') > 9) {
        /* Go: a sign may precede Inf / Infinity, not NaN */
        if (word_eq(s, end, "inf") || word_eq(s, end, "infinity")) {
            *out = neg ? -INFINITY : INFINITY;
            return 0;
        }
        if (s == p && word_eq(s, end, "nan")) {
            *out = NAN;
            return 0;
        }
        return -EINVAL;
    }

    uint64_t m = 0;
    int sig = 0;     /* significant digits seen (leading zeros excluded) */
    int k = 0;       /* decimal exponent applied to m */
    int digits = 0;  /* any mantissa digit at all */
    for (; s < end && (unsigned)(*s - '0') <= 9; s++) {
        digits = 1;
        if (m == 0 && *s == '0' && sig == 0)
            continue;
        if (sig < 19)
            m = m * 10 + (uint64_t)(*s - '0');
        else
            k++; /* dropped digit: slow path anyway (sig > 15) */
        sig++;
    }
    if (s < end && *s == '.') {
        for (s++; s < end && (unsigned)(*s - '0') <= 9; s++) {
            digits = 1;
            if (sig == 0 && *s == '0') {
                k--;
                continue;
            }
            if (sig < 19) {
                m = m * 10 + (uint64_t)(*s - '0');
                k--;
            }
            sig++;
        }
    }
    if (!digits)
        return -EINVAL;
    if (s < end && (*s == 'e' || *s == 'E')) {
        int eneg = 0, e = 0;
        s++;
        if (s < end && (*s == '+' || *s == '-')) {
            eneg = *s == '-';
            s++;
        }
        if (s == end || (unsigned)(*s - '0') > 9)
            return -EINVAL;
        for (; s < end && (unsigned)(*s - '0') <= 9; s++)
            if (e < 100000) /* clamp: the slow path saturates anyway */
                e = e * 10 + (*s - '0');
        k += eneg ? -e : e;
    }
    if (s != end)
        return -EINVAL;

    if (sig <= 15 && k >= -22 && k <= 22) {
        double v = (double)m;
        v = k < 0 ? v / pow10_exact[-k] : v * pow10_exact[k];
        *out = neg ? -v : v;
        return 0;
    }

    /* Slow path. The token is pure decimal syntax, so strtod consumes all
     * of it; it needs a terminator the page does not have. */
    char tmp[PROM_MAX_NUMBER + 1];
    size_t n = (size_t)(end - p);
    char *ep;
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    *out = strtod(tmp, &ep); /* overflow gives +-HUGE_VAL: Inf, kept */
    return ep == tmp + n ? 0 : -EINVAL;
}

/* int64 milliseconds, [+-]digits, no overflow. */
static int parse_int64(const char *p, const char *end, int64_t *out)
{
    int neg = 0;
    uint64_t v = 0, limit;

    if (p < end && (*p == '+' || *p == '-')) {
        neg = *p == '-';
        p++;
    }
    if (p == end)
        return -EINVAL;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (d > 9)
            return -EINVAL;
        if (v > (limit - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    if (!neg)
        *out = (int64_t)v;
    else
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    return 0;
}

/* ---- one sample line ---- */

/* Labels after the '{' at p. Returns the byte after the closing '}', or
 * NULL when malformed. Each label name gets a key (length, first and last
 * byte) so the duplicate check is mostly integer compares: 64 labels would
 * otherwise cost 2016 memcmp calls a line. */
static const char *parse_labels(const char *p, const char *end,
                                struct prom_sample *s)
{
    uint32_t key[PROM_MAX_LABELS];

    for (;;) {
        p = skip_blanks(p, end);
        if (p >= end)
            return NULL;
        if (*p == '}')
            return p + 1; /* "{}" or after a trailing comma */
        if (!(cls[(unsigned char)*p] & C_LNAME0))
            return NULL;
        if (s->nlabels == PROM_MAX_LABELS)
            return NULL;

        struct prom_label *l = &s->labels[s->nlabels];
        const char *n0 = p;
        for (p++; p < end && (cls[(unsigned char)*p] & C_LNAME); p++)
            ;
        l->name.ptr = n0;
        l->name.len = (size_t)(p - n0);
        uint32_t h = (uint32_t)l->name.len << 16 |
                     (uint32_t)(unsigned char)n0[0] << 8 |
                     (unsigned char)p[-1];

        p = skip_blanks(p, end);
        if (p >= end || *p != '=')
            return NULL;
        p = skip_blanks(p + 1, end);
        if (p >= end || *p != '"')
            return NULL;
        const char *v0 = ++p;
        /* memchr finds the closing quote in one vector pass; only a value
         * with a backslash before it needs the byte-wise escape walk */
        const char *qt = memchr(p, '"', (size_t)(end - p));
        if (!qt)
            return NULL; /* unterminated value */
        if (memchr(p, '\\', (size_t)(qt - p))) {
            while (p < end && *p != '"') {
                if (*p == '\\') {
                    if (end - p < 2 ||
                        (p[1] != '\\' && p[1] != '"' && p[1] != 'n'))
                        return NULL;
                    p += 2;
                } else {
                    p++;
                }
            }
            if (p >= end)
                return NULL;
        } else {
            p = qt;
        }
        l->value.ptr = v0;
        l->value.len = (size_t)(p - v0);
        p++;

        for (unsigned i = 0; i < s->nlabels; i++)
            if (key[i] == h && s->labels[i].name.len == l->name.len &&
                memcmp(s->labels[i].name.ptr, n0, l->name.len) == 0)
                return NULL;
        key[s->nlabels++] = h;

        p = skip_blanks(p, end);
        if (p >= end)
            return NULL;
        if (*p == ',')
            p++; /* the loop head accepts '}' next: trailing comma */
        else if (*p == '}')
            return p + 1;
        else
            return NULL;
    }
}

/* [p, end) is a line without its terminator or leading blanks, not a
 * comment. 0 and *s filled, or -EINVAL. */
static int parse_sample(const char *p, const char *end, struct prom_sample *s)
{
    const char *q = p, *r, *v;

    if (!(cls[(unsigned char)*q] & C_NAME0))
        return -EINVAL;
    for (q++; q < end && (cls[(unsigned char)*q] & C_NAME); q++)
        ;
    s->name.ptr = p;
    s->name.len = (size_t)(q - p);
    s->nlabels = 0;

    r = skip_blanks(q, end);
    if (r < end && *r == '{') {
        r = parse_labels(r + 1, end, s);
        if (!r)
            return -EINVAL;
        r = skip_blanks(r, end);
    } else if (r == q) {
        return -EINVAL; /* "foo-bar 1", "foo": no blank after the name */
    }

    for (v = r; r < end && !is_blank(*r); r++)
        ;
    if (r == v || parse_double(v, r, &s->value))
        return -EINVAL;
    s->value_text.ptr = v;
    s->value_text.len = (size_t)(r - v);

    s->has_timestamp = 0;
    s->timestamp = 0;
    r = skip_blanks(r, end);
    if (r < end) {
        const char *t = r;
        for (; r < end && !is_blank(*r); r++)
            ;
        if (parse_int64(t, r, &s->timestamp))
            return -EINVAL;
        s->has_timestamp = 1;
        if (skip_blanks(r, end) != end)
            return -EINVAL;
    }
    return 0;
}

/* ---- the page ---- */

static void count_malformed(struct prom_stats *st, uint32_t lineno)
{
    st->lines++;
    st->malformed++;
    if (!st->first_malformed)
        st->first_malformed = lineno;
}

int prom_parse_stats(const char *buf, size_t len, prom_sample_fn on_sample,
                     void *ctx, struct prom_stats *st_out)
{
    struct prom_stats st = {0};
    struct prom_sample s;
    const char *p, *end;
    uint32_t lineno = 0;
    int rc = 0;

    if (!buf) {
        if (st_out)
            *st_out = st;
        return len ? -EINVAL : 0;
    }
    p = buf;
    end = buf + len;
    /* A NUL never occurs in text; one means a binary or corrupt body. */
    if (len && memchr(buf, '\0', len)) {
        rc = -EINVAL;
        goto out;
    }

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        const char *q;

        lineno++;
        if (eol - p > PROM_MAX_LINE) {
            count_malformed(&st, lineno);
            st.truncated |= !nl;
            p = nl ? nl + 1 : end;
            continue;
        }
        if (eol > p && eol[-1] == '\r')
            eol--;
        q = skip_blanks(p, eol);
        p = nl ? nl + 1 : end;
        if (q == eol)
            continue; /* blank line */
        st.truncated |= !nl;
        if (*q == '#') {
            /* HELP / TYPE carry nothing kvgate routes on: counted only */
            st.lines++;
            st.comments++;
            continue;
        }
        if (parse_sample(q, eol, &s)) {
            count_malformed(&st, lineno);
            continue;
        }
        st.lines++;
        if (!nl)
            continue; /* looks complete, but may have been cut: dropped */
        s.line = lineno;
        st.samples++;
        if (on_sample && (rc = on_sample(ctx, &s)) != 0)
            goto out;
    }
    if ((uint64_t)st.malformed * 2 > st.lines)
        rc = -EINVAL;
out:
    if (st_out)
        *st_out = st;
    return rc;
}

int prom_parse(const char *buf, size_t len, prom_sample_fn on_sample,
               void *ctx)
{
    return prom_parse_stats(buf, len, on_sample, ctx, NULL);
}

/* ---- label helpers ---- */

/* The character an escape sequence stands for, 0 if invalid. */
static inline char unescape_char(char e)
{
    return e == 'n' ? '\n' : e == '\\' ? '\\' : e == '"' ? '"' : 0;
}

int prom_label_eq(struct prom_str raw, const char *s)
{
    size_t j = 0;

    for (size_t i = 0; i < raw.len; i++, j++) {
        char c = raw.ptr[i];
        if (c == '\\') {
            if (++i >= raw.len || !(c = unescape_char(raw.ptr[i])))
                return 0;
        }
        if (s[j] == '\0' || s[j] != c)
            return 0;
    }
    return s[j] == '\0';
}

int prom_unescape(struct prom_str raw, char *dst, size_t dstsz)
{
    size_t o = 0;

    if (raw.len > INT_MAX)
        return -EOVERFLOW;
    if (dstsz == 0)
        return raw.len ? -ENOSPC : 0;
    for (size_t i = 0; i < raw.len; i++) {
        char c = raw.ptr[i];
        if (c == '\\') {
            if (i + 1 >= raw.len || !(c = unescape_char(raw.ptr[i + 1]))) {
                dst[o] = '\0';
                return -EINVAL;
            }
            i++;
        }
        if (o + 1 >= dstsz) {
            dst[o] = '\0';
            return -ENOSPC;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (int)o;
}

int prom_str_eq(struct prom_str a, const char *s)
{
    size_t n = strlen(s);
    return a.len == n && memcmp(a.ptr, s, n) == 0;
}

const struct prom_label *prom_find_label(const struct prom_sample *s,
                                         const char *name)
{
    size_t n = strlen(name);

    for (unsigned i = 0; i < s->nlabels; i++)
        if (s->labels[i].name.len == n &&
            memcmp(s->labels[i].name.ptr, name, n) == 0)
            return &s->labels[i];
    return NULL;
}
