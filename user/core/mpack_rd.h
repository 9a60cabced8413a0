/* mpack_rd: a strict msgpack reader over a byte range, for parsers of
 * untrusted input (kvev_decode.c). Every length is checked against the
 * range before use; a count that claims more elements than bytes remain is
 * refused at once; rd_skip walks any nesting with a counter, never by
 * recursion. The first failure sticks in r->err (MPR_*, or a user code
 * from MPR_USER on, set through fail()) and every later call fails.
 * Strings and bins are returned as views into the range. Header-only: the
 * calls sit in the decoder's innermost loops. */
#ifndef KVGATE_CORE_MPACK_RD_H
#define KVGATE_CORE_MPACK_RD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct mpr_str {
    const char *p;
    uint32_t len;
};

/* The reader's own failures; a user of it adds its own from MPR_USER on. */
enum { MPR_OK = 0, MPR_TRUNCATED = 1, MPR_TYPE = 2, MPR_VALUE = 3, MPR_USER = 16 };

struct rd {
    const uint8_t *p, *end;
    int err; /* the first failure (MPR_*), 0 = none: every later call fails */
};

static inline int fail(struct rd *r, int why)
{
    if (!r->err)
        r->err = why;
    return -1;
}

static inline int need(struct rd *r, size_t n)
{
    if (r->err)
        return -1;
    if ((size_t)(r->end - r->p) < n)
        return fail(r, MPR_TRUNCATED);
    return 0;
}

static inline uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline int peek(struct rd *r)
{
    if (need(r, 1))
        return -1;
    return r->p[0];
}

static inline int rd_nil(struct rd *r)
{
    if (peek(r) == 0xc0) {
        r->p++;
        return 1;
    }
    return 0;
}

/* A header whose count is in 0 (fix, mask), 2 or 4 following bytes. */
static inline int rd_count(struct rd *r, uint32_t *n, int fix_lo, int fix_hi, int fix_mask,
                    int c16, int c32)
{
    int c = peek(r);
    if (c < 0)
        return -1;
    if (c >= fix_lo && c <= fix_hi) {
        *n = (uint32_t)(c & fix_mask);
        r->p++;
        return 0;
    }
    int w = c == c16 ? 2 : c == c32 ? 4 : 0;
    if (!w)
        return fail(r, MPR_TYPE);
    if (need(r, 1 + (size_t)w))
        return -1;
    *n = (uint32_t)be(r->p + 1, w);
    r->p += 1 + w;
    return 0;
}

static inline int rd_array(struct rd *r, uint32_t *n)
{
    if (rd_count(r, n, 0x90, 0x9f, 0x0f, 0xdc, 0xdd))
        return -1;
    /* every element takes at least a byte: a count past the buffer is a lie */
    if (*n > (size_t)(r->end - r->p))
        return fail(r, MPR_TRUNCATED);
    return 0;
}

static inline int rd_map(struct rd *r, uint32_t *n)
{
    if (rd_count(r, n, 0x80, 0x8f, 0x0f, 0xde, 0xdf))
        return -1;
    if ((uint64_t)*n * 2 > (size_t)(r->end - r->p))
        return fail(r, MPR_TRUNCATED);
    return 0;
}

static inline int is_array(struct rd *r)
{
    int c = peek(r);
    return (c >= 0x90 && c <= 0x9f) || c == 0xdc || c == 0xdd;
}

static inline int is_map(struct rd *r)
{
    int c = peek(r);
    return (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
}

static inline int is_str(struct rd *r)
{
    int c = peek(r);
    return (c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb;
}

/* Strings and bins: a length, then the bytes. */
static inline int rd_bytes(struct rd *r, struct mpr_str *s, int bin)
{
    int c = peek(r), w;
    uint32_t n;
    if (c < 0)
        return -1;
    if (!bin && c >= 0xa0 && c <= 0xbf) {
        n = (uint32_t)(c & 0x1f);
        w = 0;
    } else {
        w = c == (bin ? 0xc4 : 0xd9) ? 1 : c == (bin ? 0xc5 : 0xda) ? 2
          : c == (bin ? 0xc6 : 0xdb) ? 4 : -1;
        if (w < 0)
            return fail(r, MPR_TYPE);
        if (need(r, 1 + (size_t)w))
            return -1;
        n = (uint32_t)be(r->p + 1, w);
    }
    if (need(r, 1 + (size_t)w + n))
        return -1;
    s->p = (const char *)r->p + 1 + w;
    s->len = n;
    r->p += 1 + w + n;
    return 0;
}

static inline int rd_str(struct rd *r, struct mpr_str *s) { return rd_bytes(r, s, 0); }

/* An integer: its 64-bit pattern, *neg set for a negative value. */
static inline int rd_int(struct rd *r, uint64_t *v, int *neg)
{
    int c = peek(r);
    if (c < 0)
        return -1;
    *neg = 0;
    if (c <= 0x7f) {
        *v = (uint64_t)c;
        r->p++;
        return 0;
    }
    if (c >= 0xe0) {
        *v = (uint64_t)(int64_t)(int8_t)c;
        *neg = 1;
        r->p++;
        return 0;
    }
    int w, sgn;
    switch (c) {
    case 0xcc: w = 1; sgn = 0; break;
    case 0xcd: w = 2; sgn = 0; break;
    case 0xce: w = 4; sgn = 0; break;
    case 0xcf: w = 8; sgn = 0; break;
    case 0xd0: w = 1; sgn = 1; break;
    case 0xd1: w = 2; sgn = 1; break;
    case 0xd2: w = 4; sgn = 1; break;
    case 0xd3: w = 8; sgn = 1; break;
    default: return fail(r, MPR_TYPE);
    }
    if (need(r, 1 + (size_t)w))
        return -1;
    uint64_t u = be(r->p + 1, w);
    if (sgn && w < 8 && (u >> (8 * w - 1)) & 1)
        u |= ~0ull << (8 * w); /* sign-extend */
    *v = u;
    *neg = sgn && (int64_t)u < 0;
    r->p += 1 + w;
    return 0;
}

static inline int rd_i64(struct rd *r, int64_t *out)
{
    uint64_t v;
    int neg;
    if (rd_int(r, &v, &neg))
        return -1;
    if (!neg && v > INT64_MAX)
        return fail(r, MPR_VALUE);
    *out = (int64_t)v;
    return 0;
}

static inline int rd_float(struct rd *r, double *d)
{
    int c = peek(r);
    if (c == 0xcb || c == 0xca) {
        int w = c == 0xcb ? 8 : 4;
        if (need(r, 1 + (size_t)w))
            return -1;
        uint64_t u = be(r->p + 1, w);
        if (w == 8) {
            memcpy(d, &u, 8);
        } else {
            uint32_t u32 = (uint32_t)u;
            float f;
            memcpy(&f, &u32, 4);
            *d = f;
        }
        r->p += 1 + w;
        return 0;
    }
    uint64_t v;
    int neg;
    if (c >= 0 && rd_int(r, &v, &neg) == 0) { /* an integral timestamp */
        *d = neg ? (double)(int64_t)v : (double)v;
        return 0;
    }
    return fail(r, MPR_TYPE);
}

/* Skips one object of any type (counting loop, no recursion). */
static inline int rd_skip(struct rd *r)
{
    uint64_t left = 1;
    while (left) {
        int c = peek(r);
        if (c < 0)
            return -1;
        left--;
        uint32_t n;
        struct mpr_str s;
        uint64_t v;
        int neg;
        double d;
        if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3)) {
            if (rd_int(r, &v, &neg))
                return -1;
        } else if (is_map(r)) {
            if (rd_map(r, &n))
                return -1;
            left += 2ull * n;
        } else if (is_array(r)) {
            if (rd_array(r, &n))
                return -1;
            left += n;
        } else if (is_str(r)) {
            if (rd_str(r, &s))
                return -1;
        } else if (c >= 0xc4 && c <= 0xc6) {
            if (rd_bytes(r, &s, 1))
                return -1;
        } else if (c == 0xca || c == 0xcb) {
            if (rd_float(r, &d))
                return -1;
        } else if (c == 0xc0 || c == 0xc2 || c == 0xc3) {
            r->p++;
        } else if (c >= 0xd4 && c <= 0xd8) { /* fixext 1..16 */
            size_t w = (size_t)1 << (c - 0xd4);
            if (need(r, 2 + w))
                return -1;
            r->p += 2 + w;
        } else if (c >= 0xc7 && c <= 0xc9) { /* ext 8/16/32 */
            int w = c == 0xc7 ? 1 : c == 0xc8 ? 2 : 4;
            if (need(r, 1 + (size_t)w))
                return -1;
            uint64_t len = be(r->p + 1, w);
            if (need(r, 2 + (size_t)w + len))
                return -1;
            r->p += 2 + w + len;
        } else {
            return fail(r, MPR_TYPE); /* 0xc1: never used */
        }
        /* each pending object needs a byte at least */
        if (left > (size_t)(r->end - r->p))
            return fail(r, MPR_TRUNCATED);
    }
    return 0;
}

static inline int str_is(const struct mpr_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->p && s->len == n && !memcmp(s->p, lit, n);
}

#endif
