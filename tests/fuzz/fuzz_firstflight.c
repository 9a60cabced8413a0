/* libFuzzer target for user/bypass/firstflight.c (issue 12): a bypass
 * worker's parse of a connection's first request, HTTP/1.1 or h2c.
 *
 * The first input byte picks a step; the rest is parsed whole and as
 * prefixes grown by that step (as TCP segments arrive), and both runs must
 * agree: the same status, cause, end and body (the callback's bytes), the
 * body never longer than the flight, a request that is done ending inside
 * it. Invariants abort(). */
#include "bypass/firstflight.h"

#include <stdlib.h>
#include <string.h>

struct sink {
    uint8_t *b;
    size_t n, cap;
};

static void sink_cb(void *ctx, const uint8_t *p, size_t n)
{
    struct sink *s = ctx;
    if (s->n + n > s->cap) {
        s->cap = (s->n + n) * 2;
        s->b = realloc(s->b, s->cap);
        if (!s->b)
            abort();
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static enum ff_status run(const uint8_t *d, size_t len, size_t step, struct sink *s,
                          struct ff_request *out)
{
    struct ff_cfg c = {.max_head = 4096, .max_body = 1u << 20, .body = sink_cb, .ctx = s};
    struct ff *f = ff_new(&c);
    if (!f)
        abort();
    enum ff_status st = FF_MORE;
    for (size_t i = step < len ? step : len; st == FF_MORE; i += step) {
        if (i > len)
            i = len;
        st = ff_parse(f, d, i);
        if (i == len)
            break;
    }
    if (ff_parse(f, d, len) != st)
        abort(); /* answers the same again */
    *out = *ff_request(f);
    ff_free(f);
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 97;
    data++, size--;
    struct sink a = {0}, b = {0};
    struct ff_request ra, rb;
    enum ff_status sa = run(data, size, size ? size : 1, &a, &ra);
    enum ff_status sb = run(data, size, step, &b, &rb);
    if (sa != sb || ra.cause != rb.cause || ra.proto != rb.proto)
        abort();
    if (sa == FF_DONE) {
        if (ra.end != rb.end || ra.end > size || a.n != b.n || a.n > size ||
            (a.n && memcmp(a.b, b.b, a.n)) || ra.body_bytes != a.n)
            abort();
        if (strcmp(ra.method, "POST") || strcmp(ra.path, rb.path))
            abort();
    }
    if (sa == FF_HAND_UP && (ra.cause == FF_C_NONE || ra.cause >= FF_C_MAX))
        abort();
    free(a.b);
    free(b.b);
    return 0;
}
