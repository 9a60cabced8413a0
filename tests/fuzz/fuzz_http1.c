/* libFuzzer target for user/common/http1.c.
 *
 * The first input byte picks a split size; the rest is fed to
 * http1_parse_request (whole, then growing prefixes in split-size steps) and
 * to http1_chunked_decode in split-size pieces, in place and into a separate
 * buffer. Invariants are checked with abort() so ASan/UBSan builds and plain
 * builds both stop on a violation. */
#include "../../user/common/http1.c"

#include <stdlib.h>

#define FUZZ_MAX_HEAD 8192

static void check_head(const char *buf, size_t len, int rc,
                       const struct http1_request *req)
{
    if (rc <= 0)
        return;
    if ((size_t)rc != req->head_len || req->head_len > len ||
        req->head_len > FUZZ_MAX_HEAD || req->nheaders > HTTP1_MAX_HEADERS)
        abort();
    const char *end = buf + req->head_len;
    if (req->method < buf || req->method + req->method_len > end ||
        req->method_len == 0 || req->target < buf ||
        req->target + req->target_len > end || req->target_len == 0)
        abort();
    for (size_t k = 0; k < req->nheaders; k++) {
        const struct http1_header *h = &req->headers[k];
        if (h->name < buf || h->name + h->name_len > end || h->name_len == 0 ||
            h->value < buf || h->value + h->value_len > end)
            abort();
        /* values are trimmed */
        if (h->value_len && (h->value[0] == ' ' || h->value[h->value_len - 1] == '\t'))
            abort();
    }
    if (req->chunked && req->content_length >= 0)
        abort(); /* CL + TE must have been rejected */
    if (req->minor != 0 && req->minor != 1)
        abort();
}

static void fuzz_head(const char *buf, size_t len, size_t step)
{
    struct http1_request req;
    int full = http1_parse_request(buf, len, FUZZ_MAX_HEAD, &req);
    check_head(buf, len, full, &req);
    /* Prefixes: INCOMPLETE until the verdict, then the same verdict. */
    for (size_t k = 0; k < len; k += step) {
        int rc = http1_parse_request(buf, k, FUZZ_MAX_HEAD, &req);
        check_head(buf, k, rc, &req);
        if (rc == HTTP1_INCOMPLETE)
            continue;
        if (rc != full)
            abort();
        break;
    }
}

static void fuzz_chunked(const char *in, size_t len, size_t step, int inplace)
{
    char *work = malloc(len + 1), *out = malloc(len + 1);
    if (!work || !out)
        goto done;
    memcpy(work, in, len);
    struct http1_chunked c = { 0 };
    size_t pos = 0, pending = 0, total_out = 0, total_in = 0;
    while (pos < len && !c.done) {
        size_t n = step < len - pos ? step : len - pos;
        pending += n;
        pos += n;
        char *src = work + total_in;
        size_t got = 0;
        long rc = http1_chunked_decode(&c, src, pending,
                                       inplace ? src : out + total_out, &got);
        if (rc < 0)
            break;
        if ((size_t)rc > pending || got > (size_t)rc)
            abort();
        total_in += (size_t)rc;
        total_out += got;
        pending -= (size_t)rc;
        if (total_out > total_in)
            abort();
    }
done:
    free(work);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    fuzz_head(buf, len, step);
    fuzz_chunked(buf, len, step, 0);
    fuzz_chunked(buf, len, step, 1);
    return 0;
}
