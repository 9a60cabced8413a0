/* libFuzzer target for the pod response head parser (http1_parse_response
 * in user/common/http1.c), what kvgated's upstream side runs on every
 * byte a pod sends before the body.
 *
 * The whole input is parsed, then growing prefixes: a prefix answers
 * INCOMPLETE until the verdict, then the same verdict. A head that parses
 * must be one kvgated can re-frame safely: every name tchar-only, every
 * value free of CR, LF, NUL and other controls but HTAB, trimmed, and
 * inside the head; at most one framing (chunked, a length, or until
 * close). What follows the head is fed to the chunked decoder when the
 * head says chunked. abort() on a violation. */
#include "../../user/common/http1.c"

#include <stdlib.h>

#define FUZZ_MAX_HEAD 8192

static void check(const char *buf, size_t len, int rc, const struct http1_response *r)
{
    if (rc <= 0)
        return;
    if ((size_t)rc != r->head_len || r->head_len > len || r->head_len > FUZZ_MAX_HEAD ||
        r->nheaders > HTTP1_MAX_HEADERS || r->status < 100 || r->status > 999)
        abort();
    const char *end = buf + r->head_len;
    for (size_t k = 0; k < r->nheaders; k++) {
        const struct http1_header *h = &r->headers[k];
        if (h->name < buf || h->name + h->name_len > end || h->name_len == 0 ||
            h->value < buf || h->value + h->value_len > end)
            abort();
        for (size_t i = 0; i < h->name_len; i++)
            if (!is_tchar((unsigned char)h->name[i]))
                abort();
        for (size_t i = 0; i < h->value_len; i++) {
            unsigned char c = (unsigned char)h->value[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                abort();
        }
        if (h->value_len && (h->value[0] == ' ' || h->value[0] == '\t' ||
                             h->value[h->value_len - 1] == ' ' ||
                             h->value[h->value_len - 1] == '\t'))
            abort();
    }
    if ((r->chunked != 0) + (r->until_close != 0) + (r->content_length >= 0) != 1)
        abort();
    if (r->until_close && r->keep_alive)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct http1_response r;
    int full = http1_parse_response(buf, size, FUZZ_MAX_HEAD, &r);
    check(buf, size, full, &r);
    int verdict_at = -1;
    for (size_t k = 0; k <= size; k += 1 + size / 64) {
        int rc = http1_parse_response(buf, k, FUZZ_MAX_HEAD, &r);
        check(buf, k, rc, &r);
        if (rc != HTTP1_INCOMPLETE && verdict_at < 0)
            verdict_at = (int)k;
        if (verdict_at >= 0 && k >= (size_t)verdict_at && rc == HTTP1_INCOMPLETE)
            abort(); /* once decided, more bytes never make it undecided */
    }
    if (full > 0 && r.chunked && (size_t)full < size) {
        size_t n = size - (size_t)full;
        char *body = malloc(n);
        if (!body)
            return 0;
        memcpy(body, buf + full, n);
        struct http1_chunked ck = { 0 };
        size_t outn = 0;
        long used = http1_chunked_decode(&ck, body, n, body, &outn);
        if (used > (long)n || outn > n)
            abort();
        free(body);
    }
    return 0;
}
