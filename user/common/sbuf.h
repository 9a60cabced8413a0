/* sbuf: a growable byte buffer with printf, used to build responses. */
#ifndef KVGATE_SBUF_H
#define KVGATE_SBUF_H

#include <stdarg.h>
#include <stddef.h>

struct sbuf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* set once an allocation failed; later appends are dropped */
};

void sbuf_init(struct sbuf *b);
void sbuf_free(struct sbuf *b);
void sbuf_reset(struct sbuf *b);              /* len = 0, keeps memory */
int sbuf_reserve(struct sbuf *b, size_t extra); /* 0 or -ENOMEM */
int sbuf_append(struct sbuf *b, const void *p, size_t n);
int sbuf_puts(struct sbuf *b, const char *s);
int sbuf_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap);
/* Appends s as the body of a JSON string (no quotes), escaping as needed. */
int sbuf_json_escape(struct sbuf *b, const char *s, size_t n);
/* Drops the first n bytes. */
void sbuf_consume(struct sbuf *b, size_t n);

#endif
