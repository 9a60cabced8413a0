/* libFuzzer target for user/core/promparse.c and engine_metrics.c.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=gnu11 \
 *       -D_GNU_SOURCE -Iuser -Itests tests/fuzz/fuzz_promparse.c \
 *       -o /tmp/fuzz_promparse -lm
 *
 * Besides the sanitizers, it checks what the parser promises: every pointer
 * it hands out lies inside the input; no sample comes from an unterminated
 * last line; label values unescape cleanly and compare equal to their
 * unescaped form; a decimal value is the double strtod() reads; the engine
 * figures are in range whenever their HAVE_ bit is set, and absent when the
 * page is refused. A broken invariant aborts (a crash libFuzzer reports). */
#include "core/engine_metrics.c"
#include "core/promparse.c"

#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(c)                                                         \
    do {                                                                   \
        if (!(c)) {                                                        \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__, \
                    __LINE__);                                             \
            abort();                                                       \
        }                                                                  \
    } while (0)

struct fctx {
    const char *buf;
    size_t len;
    uint32_t samples;
    uint32_t last_line;
};

static char unesc[PROM_MAX_LINE + 1];

static int inside(const struct fctx *f, struct prom_str s)
{
    return s.ptr >= f->buf && s.len <= f->len &&
           (size_t)(s.ptr - f->buf) <= f->len - s.len;
}

static void check_value(const struct prom_sample *s)
{
    char tmp[PROM_MAX_NUMBER + 1];
    const char *t = s->value_text.ptr;
    size_t n = s->value_text.len;
    size_t i = t[0] == '+' || t[0] == '-';
    double ref;
    char *ep;

    REQUIRE(n >= 1 && n <= PROM_MAX_LINE);
    if (isnan(s->value) || isinf(s->value))
        return; /* the words, or a decimal past DBL_MAX: strtod agrees on
                 * neither spelling rule, checked below for decimals */
    REQUIRE(i < n && (t[i] == '.' || (t[i] >= '0' && t[i] <= '9')));
    REQUIRE(n <= PROM_MAX_NUMBER);
    memcpy(tmp, t, n);
    tmp[n] = '\0';
    ref = strtod(tmp, &ep);
    REQUIRE(ep == tmp + n);
    REQUIRE(memcmp(&ref, &s->value, sizeof(ref)) == 0);
}

static int on_fuzz_sample(void *ctx, const struct prom_sample *s)
{
    struct fctx *f = ctx;
    const char *after;

    f->samples++;
    REQUIRE(s->line > f->last_line);
    f->last_line = s->line;
    REQUIRE(s->name.len >= 1 && inside(f, s->name));
    REQUIRE(inside(f, s->value_text));
    REQUIRE(s->nlabels <= PROM_MAX_LABELS);
    /* a delivered sample's line was terminated */
    after = s->value_text.ptr + s->value_text.len;
    REQUIRE(memchr(after, '\n', (size_t)(f->buf + f->len - after)) != NULL);
    for (unsigned i = 0; i < s->nlabels; i++) {
        const struct prom_label *l = &s->labels[i];
        REQUIRE(l->name.len >= 1 && inside(f, l->name));
        REQUIRE(inside(f, l->value));
        int n = prom_unescape(l->value, unesc, sizeof(unesc));
        REQUIRE(n >= 0 && (size_t)n <= l->value.len);
        REQUIRE(prom_label_eq(l->value, unesc));
        REQUIRE(prom_find_label(s, "") == NULL);
    }
    check_value(s);
    return 0;
}

static void check_load(const struct engine_load *l, int rc, int kind)
{
    REQUIRE(rc == 0 || rc == -ENODATA || rc == -EINVAL);
    REQUIRE(l->kind_detected >= ENGINE_AUTO &&
            l->kind_detected <= ENGINE_TRTLLM);
    if (kind != ENGINE_AUTO && rc != -EINVAL)
        REQUIRE(l->kind_detected == kind);
    if (rc == -EINVAL)
        REQUIRE(l->have == 0);
    if (rc == 0)
        REQUIRE(l->have & (HAVE_WAITING | HAVE_RUNNING | HAVE_KV));
    if (rc == -ENODATA)
        REQUIRE(!(l->have & (HAVE_WAITING | HAVE_RUNNING | HAVE_KV)));
    if (l->have & HAVE_KV)
        REQUIRE(l->kv_usage >= 0 && l->kv_usage <= 1);
    else
        REQUIRE(l->kv_usage == 0);
    if (l->have & HAVE_WAITING)
        REQUIRE(l->waiting >= 0 && isfinite(l->waiting));
    if (l->have & HAVE_RUNNING)
        REQUIRE(l->running >= 0 && isfinite(l->running));
    REQUIRE(l->cache_blocks >= 0 && l->block_size >= 0);
    REQUIRE(l->block_size <= MAX_BLOCK_SIZE);
    if (l->have & HAVE_CACHE_CFG)
        REQUIRE(l->cache_blocks >= 1);
    REQUIRE(memchr(l->running_loras, 0, sizeof(l->running_loras)));
    REQUIRE(memchr(l->waiting_loras, 0, sizeof(l->waiting_loras)));
    if (!(l->have & HAVE_LORA))
        REQUIRE(!l->running_loras[0] && !l->waiting_loras[0]);
    REQUIRE(l->max_lora >= 0 && l->max_lora <= MAX_LORA);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    struct fctx f = {buf, size, 0, 0};
    struct prom_stats st, st2;
    struct engine_load l;
    static const char *filters[] = {NULL, "m", "meta-llama/Llama-3.1-8B-Instruct"};
    int rc;

    rc = prom_parse_stats(buf, size, on_fuzz_sample, &f, &st);
    REQUIRE(rc == 0 || rc == -EINVAL);
    REQUIRE(f.samples == st.samples);
    REQUIRE(st.samples + st.comments + st.malformed <= st.lines);
    REQUIRE(st.truncated <= 1);
    REQUIRE((st.malformed == 0) == (st.first_malformed == 0));
    if (rc == 0)
        REQUIRE((uint64_t)st.malformed * 2 <= st.lines);

    /* deterministic: a second run sees the same page */
    REQUIRE(prom_parse_stats(buf, size, NULL, NULL, &st2) == rc);
    REQUIRE(memcmp(&st, &st2, sizeof(st)) == 0);

    for (int k = ENGINE_AUTO; k <= ENGINE_TRTLLM; k++) {
        for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++) {
            rc = engine_load_parse(buf, size, (enum engine_kind)k, filters[i],
                                   &l);
            check_load(&l, rc, k);
            REQUIRE(memcmp(&l.stats, &st, sizeof(st)) == 0);
        }
    }
    return 0;
}
