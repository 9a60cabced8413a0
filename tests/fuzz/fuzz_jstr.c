/* libFuzzer target for user/core/jstr.c.
 *
 * The input is a JSON string's raw bytes. Decoded once whole and once in
 * pieces whose sizes come from a PRNG seeded by the input's length: the
 * outcome (done, failed) and the text must be the same. When bodyscan
 * accepts {"model":"m","prompt":<input>} (strict JSON) with a string
 * prompt, jstr must decode it to its end, and to what cJSON makes of it
 * (compared where the text has no NUL: cJSON's strings end there).
 * abort() on any difference. */
#include "core/bodyscan.h"
#include "core/jstr.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *buf;
    size_t len, cap;
};

static int collect(void *ctx, const char *p, size_t n)
{
    struct out *o = ctx;
    if (n == 0 || o->len + n > o->cap)
        abort(); /* empty runs are wasted; more text than raw bytes: bug */
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static void nop(void *ctx, const char *p, size_t n)
{
    (void)ctx, (void)p, (void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    struct out a = {malloc(len + 1), 0, len}, b = {malloc(len + 1), 0, len};
    struct jstr ja, jb;
    jstr_init(&ja);
    jstr_init(&jb);
    int ra = jstr_feed(&ja, (const char *)d, len, collect, &a);
    uint32_t x = (uint32_t)len * 2654435761u + 1;
    int rb = 0;
    for (size_t i = 0; i < len && rb == 0;) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t k = 1 + x % 7;
        if (k > len - i)
            k = len - i;
        rb = jstr_feed(&jb, (const char *)d + i, k, collect, &b);
        i += k;
    }
    if (ra != rb || ja.done != jb.done || ja.failed != jb.failed)
        abort();
    if (!ja.failed && (a.len != b.len || memcmp(a.buf, b.buf, a.len)))
        abort();

    /* strict JSON says it is a string: jstr decodes it, as cJSON does */
    static const char pre[] = "{\"model\":\"m\",\"prompt\":", post[] = "}";
    size_t dn = sizeof(pre) - 1 + len + 1;
    char *doc = malloc(dn);
    memcpy(doc, pre, sizeof(pre) - 1);
    memcpy(doc + sizeof(pre) - 1, d, len);
    memcpy(doc + sizeof(pre) - 1 + len, post, 1);
    struct bodyscan bs;
    bodyscan_init(&bs, nop, NULL);
    bodyscan_feed(&bs, doc, dn);
    if (bodyscan_finish(&bs) == 0 && bs.prompt_end > bs.prompt_start &&
        doc[bs.prompt_start] == '"') {
        /* the value's own bytes, as the data path hands them over */
        struct out c = {malloc(len + 1), 0, len};
        struct jstr jc;
        jstr_init(&jc);
        if (jstr_feed(&jc, doc + bs.prompt_start, bs.prompt_end - bs.prompt_start, collect, &c) ||
            !jc.done)
            abort();
        cJSON *j = cJSON_ParseWithLength(doc, dn);
        const cJSON *p = j ? cJSON_GetObjectItemCaseSensitive(j, "prompt") : NULL;
        if (!cJSON_IsString(p))
            abort();
        if (!memchr(c.buf, 0, c.len) &&
            (strlen(p->valuestring) != c.len || memcmp(p->valuestring, c.buf, c.len)))
            abort();
        cJSON_Delete(j);
        free(c.buf);
    }
    free(doc);
    free(a.buf);
    free(b.buf);
    return 0;
}
