/* jstr: see jstr.h. */
#include "core/jstr.h"

#include <string.h>

enum { S_START, S_CHR, S_ESC, S_HEX, S_LOW_BS, S_LOW_U, S_DONE };

void jstr_init(struct jstr *j)
{
    memset(j, 0, sizeof(*j));
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static size_t utf8(uint32_t cp, char *o)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decoded text goes out in runs: raw spans as they are, escapes through a
 * small buffer. */
struct emit {
    jstr_out_fn out;
    void *ctx;
    char buf[256];
    size_t len;
    int stop;
};

static void flush(struct emit *e)
{
    if (e->len && !e->stop && e->out(e->ctx, e->buf, e->len))
        e->stop = 1;
    e->len = 0;
}

static void put(struct emit *e, const char *p, size_t n)
{
    if (e->len + n > sizeof(e->buf))
        flush(e);
    if (n > sizeof(e->buf)) {
        if (!e->stop && e->out(e->ctx, p, n))
            e->stop = 1;
        return;
    }
    memcpy(e->buf + e->len, p, n);
    e->len += n;
}

int jstr_feed(struct jstr *j, const char *raw, size_t n, jstr_out_fn out, void *ctx)
{
    struct emit e = {.out = out, .ctx = ctx};
    const unsigned char *p = (const unsigned char *)raw;
    size_t i = 0;
    if (j->failed)
        return -1;
    while (i < n && !j->failed && !e.stop) {
        unsigned char c = p[i];
        switch (j->st) {
        case S_START:
            if (c != '"')
                j->failed = 1;
            j->st = S_CHR;
            i++;
            break;
        case S_CHR: {
            size_t k = i;
            while (k < n && p[k] != '"' && p[k] != '\\' && p[k] >= 0x20)
                k++;
            if (k > i)
                put(&e, raw + i, k - i);
            i = k;
            if (i == n)
                break;
            c = p[i++];
            if (c == '"')
                j->st = S_DONE, j->done = 1;
            else if (c == '\\')
                j->st = S_ESC;
            else
                j->failed = 1; /* a control byte */
            break;
        }
        case S_ESC: {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *f = c ? strchr(from, c) : NULL;
            i++;
            if (c == 'u') {
                j->st = S_HEX;
                j->nhex = 0;
                j->u = 0;
            } else if (f) {
                put(&e, &to[f - from], 1);
                j->st = S_CHR;
            } else {
                j->failed = 1;
            }
            break;
        }
        case S_HEX: {
            int v = hexval(c);
            i++;
            if (v < 0) {
                j->failed = 1;
                break;
            }
            j->u = j->u << 4 | (uint32_t)v;
            if (++j->nhex < 4)
                break;
            uint32_t u = j->u;
            if (j->hi) { /* the low half of a pair */
                if (u < 0xDC00 || u > 0xDFFF) {
                    j->failed = 1;
                    break;
                }
                char o[4];
                put(&e, o, utf8(0x10000 + ((uint32_t)(j->hi - 0xD800) << 10) + (u - 0xDC00), o));
                j->hi = 0;
                j->st = S_CHR;
            } else if (u >= 0xD800 && u <= 0xDBFF) {
                j->hi = (uint16_t)u;
                j->st = S_LOW_BS;
            } else if (u >= 0xDC00 && u <= 0xDFFF) {
                j->failed = 1; /* a low half first */
            } else {
                char o[4];
                put(&e, o, utf8(u, o));
                j->st = S_CHR;
            }
            break;
        }
        case S_LOW_BS:
            i++;
            if (c == '\\')
                j->st = S_LOW_U;
            else
                j->failed = 1;
            break;
        case S_LOW_U:
            i++;
            if (c == 'u') {
                j->st = S_HEX;
                j->nhex = 0;
                j->u = 0;
            } else {
                j->failed = 1;
            }
            break;
        default: /* S_DONE: nothing may follow */
            j->failed = 1;
            break;
        }
    }
    if (!j->failed)
        flush(&e);
    if (e.stop)
        j->failed = 1;
    return j->failed ? -1 : 0;
}
