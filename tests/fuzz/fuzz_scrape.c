/* libFuzzer target for the control thread's HTTP/1.1 response parser
 * (user/gateway/scrape.c: status line, headers, Content-Length / chunked /
 * close framing, interim 1xx answers, the body cap): what a pod, friendly
 * or not, sends back to a /metrics, /health or /v1/models probe.
 *
 * The first two input bytes pick the body cap (max_page_bytes, 1 byte to
 * 64 KiB) and the size of the pieces the rest arrives in. The same bytes
 * are parsed whole and piece by piece, then as if the pod closed after the
 * last byte (unframed bodies end there). Checks: the verdict (complete,
 * incomplete, failed) and the body are the same whichever way the bytes
 * arrived; a complete response has a
 * status in 200-999, a body inside the buffer and never past the cap; a
 * Content-Length body is exactly that long; errors are only -EPROTO (not
 * HTTP) or -EMSGSIZE (over the cap). */
#include "common/ev.c"
#include "common/http1.c"
#include "common/sbuf.c"
#include "gateway/scrape.c"

#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(c)                                                               \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__,       \
                    __LINE__);                                                   \
            abort();                                                             \
        }                                                                        \
    } while (0)

struct verdict {
    int rc, status;
    char *body;
    size_t len;
};

/* Feeds data in pieces of `step` as recv would, then EOF. */
static struct verdict run(const uint8_t *data, size_t size, size_t step, size_t cap)
{
    struct hget h;
    struct verdict v = {0, 0, NULL, 0};
    hget_init(&h, NULL);
    hget_set_max_body(&h, cap);
    reset_resp(&h);
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += step) {
        size_t n = size - off < step ? size - off : step;
        REQUIRE(sbuf_reserve(&h.in, n + 1) == 0);
        memcpy(h.in.data + h.in.len, data + off, n);
        h.in.len += n;
        rc = parse(&h);
        if (rc == 0 && h.in.len > h.max_body + 2 * HGET_MAX_HEAD)
            rc = -EMSGSIZE; /* do_read's guard */
    }
    if (rc == 0 && h.head_done && !h.chunked && h.clen < 0) { /* the pod closed */
        h.body_len = h.in.len - h.body_off;
        rc = h.body_len > h.max_body ? -EMSGSIZE : 1;
    }
    v.rc = rc;
    if (rc == 1) {
        REQUIRE(h.status >= 200 && h.status <= 999);
        REQUIRE(h.body_off <= h.in.len);
        REQUIRE(h.body_len <= h.in.len - h.body_off);
        REQUIRE(h.body_len <= cap);
        if (h.clen >= 0 && !h.chunked)
            REQUIRE(h.body_len == (size_t)h.clen);
        v.status = h.status;
        v.len = h.body_len;
        v.body = malloc(v.len + 1);
        memcpy(v.body, h.in.data + h.body_off, v.len);
    } else if (rc < 0) {
        REQUIRE(rc == -EPROTO || rc == -EMSGSIZE);
    }
    hget_free(&h);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t cap = 1 + (size_t)data[0] * 257;  /* 1 .. 65,536 */
    size_t step = 1 + (size_t)(data[1] % 64);
    data += 2;
    size -= 2;
    struct verdict whole = run(data, size, size ? size : 1, cap);
    struct verdict parts = run(data, size, step, cap);
    /* a bad response may fail for another reason first when it comes in
     * pieces (over the cap before the framing error): failing is what must
     * agree; success and incompleteness must agree exactly */
    REQUIRE((whole.rc < 0) == (parts.rc < 0));
    if (whole.rc >= 0)
        REQUIRE(whole.rc == parts.rc);
    if (whole.rc == 1) {
        REQUIRE(whole.status == parts.status);
        REQUIRE(whole.len == parts.len);
        REQUIRE(!memcmp(whole.body, parts.body, whole.len));
    }
    free(whole.body);
    free(parts.body);
    return 0;
}
