/* sbuf: growable byte buffer. See sbuf.h.
 *
 * The data is kept NUL-terminated whenever memory is allocated (one spare
 * byte is always reserved), so a buffer built with sbuf_printf can be used
 * as a C string. Once an allocation fails, `oom` sticks and every later
 * append is dropped with -ENOMEM, so builders may append unchecked and test
 * `oom` once at the end. */
#include "common/sbuf.h"
#include "common/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sbuf_init(struct sbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

void sbuf_free(struct sbuf *b)
{
    kv_free(b->data);
    sbuf_init(b);
}

/* Also clears `oom`: a reset buffer starts a new message. */
void sbuf_reset(struct sbuf *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->data)
        b->data[0] = '\0';
}

int sbuf_reserve(struct sbuf *b, size_t extra)
{
    if (b->oom)
        return -ENOMEM;
    /* +1 keeps room for the terminating NUL. */
    if (extra > (size_t)-1 - b->len - 1) {
        b->oom = 1;
        return -ENOMEM;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    char *p = kv_realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return -ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int sbuf_append(struct sbuf *b, const void *p, size_t n)
{
    int rc = sbuf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int sbuf_puts(struct sbuf *b, const char *s)
{
    return sbuf_append(b, s, strlen(s));
}

int sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
    if (b->oom)
        return -ENOMEM;
    /* First try into the spare capacity; format again if it was short. */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= room) {
        int rc = sbuf_reserve(b, (size_t)n);
        if (rc)
            return rc;
        va_copy(ap2, ap);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        va_end(ap2);
    }
    b->len += (size_t)n;
    return 0;
}

int sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sbuf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sbuf_json_escape(struct sbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Worst case every byte becomes \u00XX: reserve once. */
    if (n > ((size_t)-1) / 6 - 1) {
        b->oom = 1;
        return -ENOMEM;
    }
    int rc = sbuf_reserve(b, n * 6);
    if (rc)
        return rc;
    char *o = b->data + b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':  *o++ = '\\'; *o++ = '"';  break;
        case '\\': *o++ = '\\'; *o++ = '\\'; break;
        case '\n': *o++ = '\\'; *o++ = 'n';  break;
        case '\r': *o++ = '\\'; *o++ = 'r';  break;
        case '\t': *o++ = '\\'; *o++ = 't';  break;
        case '\b': *o++ = '\\'; *o++ = 'b';  break;
        case '\f': *o++ = '\\'; *o++ = 'f';  break;
        default:
            if (c < 0x20 || c == 0x7f) {
                /* DEL is legal in JSON but escaping it is harmless and keeps
                 * logs and terminals clean. */
                *o++ = '\\'; *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 15];
            } else {
                *o++ = (char)c; /* includes UTF-8 bytes >= 0x80 */
            }
        }
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

void sbuf_consume(struct sbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = '\0';
}
