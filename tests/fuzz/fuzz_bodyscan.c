/* libFuzzer target for user/core/bodyscan.c.
 *
 * Scans the input once in one piece and once in chunks whose sizes come
 * from a small PRNG seeded by the input's length; every result must be the
 * same (valid or not, error message and offset, extracted fields, prompt
 * span, prompt bytes). When valid, the on_prompt bytes must be exactly the
 * span. abort() on any difference.
 *
 * With -DFUZZ_CJSON (link -lcjson), a body bodyscan accepts must also parse
 * with cJSON, which is more lenient. */
#include "../../user/core/bodyscan.c"

#include <stdio.h>
#include <stdlib.h>
#ifdef FUZZ_CJSON
#include <cjson/cJSON.h>
#endif

struct run {
    struct bodyscan s;
    int rc;
    uint8_t *pb; /* prompt bytes (at most the input's length) */
    size_t plen, cap;
};

static void on_prompt(void *ctx, const char *p, size_t n)
{
    struct run *r = ctx;
    if (n == 0 || r->plen + n > r->cap)
        abort(); /* empty calls are wasted; more bytes than the body: bug */
    memcpy(r->pb + r->plen, p, n);
    r->plen += n;
}

static void scan(struct run *r, const uint8_t *d, size_t len, int chunked)
{
    bodyscan_init(&r->s, on_prompt, r);
    r->plen = 0;
    r->rc = 0;
    uint32_t x = (uint32_t)len * 2654435761u + 1;
    size_t at = 0;
    while (at < len) {
        size_t n = len - at;
        if (chunked) {
            x ^= x << 13; /* xorshift32 */
            x ^= x >> 17;
            x ^= x << 5;
            /* mostly tiny chunks (state carried across), sometimes big */
            size_t c = (x & 3) == 0 ? 1 + (x >> 8) % 256 : 1 + (x >> 8) % 4;
            if (c < n)
                n = c;
        }
        if (bodyscan_feed(&r->s, (const char *)d + at, n) < 0)
            r->rc = -1;
        at += n;
    }
    if (bodyscan_finish(&r->s) < 0)
        r->rc = -1;
    else if (r->rc)
        abort(); /* finish succeeded after a feed error */
}

#define SAME(f) (a->s.f == b->s.f)

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    static struct run ra, rb;
    uint8_t *buf = malloc(2 * len + 2);
    struct run *a = &ra, *b = &rb;
    a->pb = buf;
    b->pb = buf + len + 1;
    a->cap = b->cap = len;
    scan(a, d, len, 0);
    scan(b, d, len, 1);

    if (a->rc != b->rc || !SAME(err_offset) ||
        (a->s.err_msg == NULL) != (b->s.err_msg == NULL) ||
        (a->s.err_msg && strcmp(a->s.err_msg, b->s.err_msg)))
        abort();
    if (a->rc) {
        if (!a->s.err_msg || a->s.err_offset > len)
            abort();
        free(buf);
        return 0;
    }
    if (!SAME(has_model) || !SAME(model_len) ||
        memcmp(a->s.model, b->s.model, a->s.model_len + 1) ||
        !SAME(user_len) || strcmp(a->s.user, b->s.user) ||
        !SAME(cache_salt_len) || strcmp(a->s.cache_salt, b->s.cache_salt) ||
        !SAME(has_user) || !SAME(has_cache_salt) || !SAME(stream) ||
        !SAME(include_usage) || !SAME(prompt_kind) ||
        !SAME(prompt_start) || !SAME(prompt_end) || !SAME(max_tokens) ||
        !SAME(max_completion_tokens) || !SAME(so_seen) || !SAME(iu_seen) ||
        (a->s.so_seen && !SAME(so_start)) || (a->s.iu_seen && !SAME(iu_start)))
        abort();
    /* where stream_options and include_usage begin: their values' first
     * bytes (kvgated's request_usage rewrite edits there) */
    if (a->s.so_seen && (a->s.so_start >= len || (d[a->s.so_start] != '{' && d[a->s.so_start] != 'n')))
        abort();
    if (a->s.iu_seen && (a->s.iu_start >= len || !strchr("tfn", d[a->s.iu_start])))
        abort();
    if (strlen(a->s.model) != a->s.model_len || a->s.model_len > 255)
        abort();
    /* the prompt bytes are the span, in both runs */
    if (a->s.prompt_kind) {
        size_t n = a->s.prompt_end - a->s.prompt_start;
        if (a->s.prompt_end > len || a->s.prompt_start >= a->s.prompt_end ||
            a->plen != n || b->plen != n ||
            memcmp(a->pb, d + a->s.prompt_start, n) ||
            memcmp(b->pb, d + a->s.prompt_start, n))
            abort();
    } else if (a->plen || b->plen) {
        abort();
    }
#ifdef FUZZ_CJSON
    char *z = malloc(len + 1);
    memcpy(z, d, len);
    z[len] = '\0';
    cJSON *j = cJSON_ParseWithLengthOpts(z, len + 1, NULL, 1);
    if (!j) {
        fprintf(stderr, "cJSON rejects a body bodyscan accepted\n");
        abort();
    }
    cJSON_Delete(j);
    free(z);
#endif
    free(buf);
    return 0;
}
