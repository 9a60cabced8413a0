/* libFuzzer target for the SSE relay parser (user/gateway/sse.c): what
 * kvgated runs on every byte of a pod's streamed answer.
 *
 * The input is split into events once whole, and once fed in pieces the
 * way relay.c does (append to a hold buffer, take the complete events,
 * keep the rest); the first byte picks the piece size. Both must yield the
 * same events; every event must end at a blank line inside the input; and
 * sse_kind must classify each without reading past it (ASan). */
#include "../../user/gateway/sse.c"

#include <stdint.h>
#include <stdlib.h>

struct rec {
    uint64_t h;   /* a hash of the events in order */
    size_t n, bytes;
};

static void on_ev(void *arg, const char *e, size_t n)
{
    struct rec *r = arg;
    for (size_t i = 0; i < n; i++)
        r->h = (r->h ^ (unsigned char)e[i]) * 0x100000001b3ull;
    r->h = (r->h ^ 0xff) * 0x100000001b3ull; /* event separator */
    r->n++;
    r->bytes += n;
    enum sse_kind k = sse_kind(e, n);
    if (k != SSE_NO_DATA && k != SSE_DATA && k != SSE_CONTENT)
        abort();
    if (k != SSE_NO_DATA && !memmem(e, n, "data:", 5))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = 1 + data[0] % 97;
    const char *d = (const char *)data + 1;
    size_t len = size - 1;

    struct rec whole = { 0xcbf29ce484222325ull, 0, 0 };
    size_t done = sse_split(d, len, on_ev, &whole);
    if (done > len)
        abort();
    if (done) {
        if (d[done - 1] != '\n' || done < 2)
            abort();
        if (!(d[done - 2] == '\n' || (d[done - 2] == '\r' && done >= 3 && d[done - 3] == '\n')))
            abort();
    }
    if (whole.bytes > done)
        abort();

    /* in pieces, through a hold buffer */
    char *hold = malloc(len + 1);
    if (!hold)
        return 0;
    size_t hl = 0;
    struct rec inc = { 0xcbf29ce484222325ull, 0, 0 };
    for (size_t off = 0; off < len; off += step) {
        size_t k = len - off < step ? len - off : step;
        memcpy(hold + hl, d + off, k);
        hl += k;
        size_t took = sse_split(hold, hl, on_ev, &inc);
        if (took > hl)
            abort();
        memmove(hold, hold + took, hl - took);
        hl -= took;
    }
    if (inc.h != whole.h || inc.n != whole.n || hl != len - done)
        abort();
    free(hold);
    return 0;
}
