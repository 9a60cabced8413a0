/* libFuzzer target for user/core/kvev_decode.c, and through it
 * user/core/kvindex.c: KV-event batches as a pod (or anyone who can reach
 * the gateway's subscriber) sends them.
 *
 * The first input byte picks the pod (of 4) and whether the batch comes in
 * sequence, as a gap, or replayed; the rest is the payload. Besides the
 * sanitizers, it checks what the decoder promises: a batch it accepts has
 * every hash and token inside its scratch arrays and within the caps, every
 * string inside the input, opaque_from <= nblocks; and what the index
 * promises: a lookup never reports more blocks than it was asked about,
 * and a pod never holds more than its limit. A broken invariant aborts.
 * Seeds: tests/fuzz/kvev_seeds.py. */
#include "core/kvev_decode.h"
#include "core/blockkey.h"
#include "core/kvindex.h"

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

#define NPODS 4

static struct kvev_decoder D;
static struct kvindex *X;
static uint64_t seq[NPODS];

static int str_inside(struct kvev_str s, const uint8_t *buf, size_t len)
{
    if (!s.p)
        return s.len == 0;
    const uint8_t *p = (const uint8_t *)s.p;
    return p >= buf && s.len <= len && (size_t)(p - buf) <= len - s.len;
}

static void check_batch(const struct kvev_batch *b, const uint8_t *buf, size_t len)
{
    uint64_t hashes = 0, tokens = 0;
    REQUIRE(b->nevents <= KVEV_MAX_EVENTS);
    for (uint32_t i = 0; i < b->nevents; i++) {
        const struct kvev_event *e = &b->ev[i];
        REQUIRE(e->kind >= KVEV_STORED && e->kind <= KVEV_CLEARED);
        hashes += e->nblocks;
        if (e->kind == KVEV_CLEARED)
            continue;
        REQUIRE(e->nblocks == 0 || e->hashes != NULL);
        volatile uint64_t sink = 0;
        for (uint32_t k = 0; k < e->nblocks; k++)
            sink ^= e->hashes[k]; /* ASan: inside the scratch */
        (void)sink;
        REQUIRE(str_inside(e->medium, buf, len));
        if (e->kind != KVEV_STORED)
            continue;
        tokens += e->ntokens;
        REQUIRE(e->block_size >= 1 && e->block_size <= 4096);
        REQUIRE(e->opaque_from <= e->nblocks);
        if (e->opaque_from)
            REQUIRE((uint64_t)e->nblocks * e->block_size == e->ntokens);
        REQUIRE(str_inside(e->lora_name, buf, len));
        REQUIRE(str_inside(e->cache_salt, buf, len));
        REQUIRE(str_inside(e->spec_kind, buf, len));
    }
    REQUIRE(hashes <= KVEV_MAX_HASHES && tokens <= KVEV_MAX_TOKENS);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!X) {
        kvev_decoder_init(&D);
        X = kvx_new(NPODS, 4096, 256);
        for (uint32_t p = 0; p < NPODS; p++)
            kvx_pod_enable(X, p, bk_model_root("m", 1));
    }
    if (size < 1)
        return 0;
    uint32_t pod = data[0] & 3, mode = (data[0] >> 2) & 3;
    const uint8_t *buf = data + 1;
    size_t len = size - 1;
    const struct kvev_batch *b;
    int rc = kvev_decode(&D, buf, len, &b);
    uint64_t s = mode == 1 ? seq[pod] + 2 : mode == 2 && seq[pod] ? seq[pod] - 1 : seq[pod];
    enum kvx_seq r = kvx_seq_check(X, pod, s);
    if (r == KVX_SEQ_GAP)
        kvx_gap_lost(X, pod, s), r = kvx_seq_check(X, pod, s);
    seq[pod] = s + 1;
    if (rc) {
        kvx_batch_bad(X, pod, s);
        return 0;
    }
    check_batch(b, buf, len);
    if (r == KVX_SEQ_APPLY || r == KVX_SEQ_RESTART)
        REQUIRE(kvx_apply(X, pod, b) == 0);
    /* look up what was stored, as a router would */
    uint16_t match[NPODS];
    for (uint32_t i = 0; i < b->nevents; i++) {
        const struct kvev_event *e = &b->ev[i];
        if (e->kind != KVEV_STORED || e->has_parent || !e->block_size)
            continue;
        uint64_t keys[64];
        size_t n = bk_chain(bk_model_root("m", 1), e->tokens, e->ntokens, e->block_size,
                            NULL, keys, 64);
        if (n > 64)
            n = 64;
        REQUIRE(kvx_lookup(X, keys, n, match, 0) <= n);
        kvx_predict(X, pod, keys, n);
    }
    for (uint32_t p = 0; p < NPODS; p++) {
        struct kvx_pod_stats st;
        kvx_pod_stats(X, p, &st);
        REQUIRE(st.held <= st.limit);
    }
    return 0;
}
