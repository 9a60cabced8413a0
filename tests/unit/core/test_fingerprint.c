/* Unit tests for user/core/fingerprint.c: split invariance, block counts,
 * the max_blocks cap, shared prefixes, model / salt keying, and a
 * known-answer check against XXH3 called directly. */
#include "core/bodyscan.h"
#include "core/fingerprint.h"
#include "harness.h"

#include <errno.h>
#include <stdlib.h>
#include <xxhash.h>

static struct fingerprint fa, fb; /* 12 KiB each: keep them off the stack */

static void fill_text(uint8_t *b, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        b[i] = (uint8_t)(' ' + (seed >> 16) % 95);
    }
}

TEST(init_validates)
{
    CHECK_EQ(fp_init(&fa, 64, 256), 0);
    CHECK_EQ(fp_init(&fa, 16, 1), 0);
    CHECK_EQ(fp_init(&fa, 4096, 1024), 0);
    CHECK_EQ(fp_init(&fa, 15, 256), -EINVAL);
    CHECK_EQ(fp_init(&fa, 4097, 256), -EINVAL);
    CHECK_EQ(fp_init(&fa, 64, 0), -EINVAL);
    CHECK_EQ(fp_init(&fa, 64, 1025), -EINVAL);
}

TEST(known_answer)
{
    uint8_t b[200];
    fill_text(b, sizeof(b), 7);
    fp_init(&fa, 64, 256);
    fp_feed(&fa, b, sizeof(b));
    CHECK_EQ(fa.n_blocks, 3);
    uint64_t h0 = XXH3_64bits_withSeed(b, 64, FP_SEED_CONST);
    uint64_t h1 = XXH3_64bits_withSeed(b + 64, 64, h0);
    uint64_t h2 = XXH3_64bits_withSeed(b + 128, 64, h1);
    CHECK(fa.h[0] == h0);
    CHECK(fa.h[1] == h1);
    CHECK(fa.h[2] == h2);
    CHECK(h0 != XXH3_64bits(b, 64)); /* the seed is really used */
}

TEST(split_invariance)
{
    uint8_t b[5000];
    fill_text(b, sizeof(b), 1);
    fp_init(&fa, 64, 256);
    fp_feed(&fa, b, sizeof(b));
    CHECK_EQ(fa.n_blocks, sizeof(b) / 64);
    uint32_t seed = 99;
    for (int round = 0; round < 200; round++) {
        fp_init(&fb, 64, 256);
        size_t at = 0;
        while (at < sizeof(b)) {
            seed = seed * 1103515245u + 12345u;
            size_t n = round == 0 ? 1 : (seed >> 16) % (round < 100 ? 70 : 700);
            if (n > sizeof(b) - at)
                n = sizeof(b) - at;
            fp_feed(&fb, b + at, n);
            at += n;
        }
        CHECK_EQ(fb.n_blocks, fa.n_blocks);
        CHECK(!memcmp(fa.h, fb.h, fa.n_blocks * sizeof(uint64_t)));
    }
}

TEST(block_counts)
{
    uint8_t b[64 * 10 + 63];
    fill_text(b, sizeof(b), 3);
    for (size_t k = 0; k <= 10; k++)
        for (size_t r = 0; r < 64; r += 21) {
            fp_init(&fa, 64, 256);
            fp_feed(&fa, b, 64 * k + r);
            CHECK_EQ(fa.n_blocks, k);
            CHECK_EQ(fa.fill, r);
        }
    /* other block sizes */
    fp_init(&fa, 16, 256);
    fp_feed(&fa, b, 100);
    CHECK_EQ(fa.n_blocks, 6);
    fp_init(&fa, 4096, 4);
    fp_feed(&fa, b, sizeof(b));
    CHECK_EQ(fa.n_blocks, 0);
}

TEST(max_blocks_cap)
{
    static uint8_t b[64 * 300];
    fill_text(b, sizeof(b), 5);
    fp_init(&fa, 64, 256);
    fp_feed(&fa, b, sizeof(b));
    CHECK_EQ(fa.n_blocks, 256);
    CHECK_EQ(fa.total, sizeof(b));
    fp_init(&fb, 64, 256);
    fp_feed(&fb, b, 64 * 256); /* the rest is ignored */
    CHECK(!memcmp(fa.h, fb.h, 256 * sizeof(uint64_t)));
    fp_init(&fa, 64, 3);
    for (size_t i = 0; i < sizeof(b); i += 7)
        fp_feed(&fa, b + i, sizeof(b) - i < 7 ? sizeof(b) - i : 7);
    CHECK_EQ(fa.n_blocks, 3);
    CHECK(!memcmp(fa.h, fb.h, 3 * sizeof(uint64_t)));
}

TEST(shared_prefix)
{
    uint8_t a[64 * 6], c[64 * 6];
    fill_text(a, sizeof(a), 11);
    memcpy(c, a, sizeof(c));
    c[64 * 3 + 40] ^= 1; /* differ inside block 3 */
    fp_init(&fa, 64, 256);
    fp_feed(&fa, a, sizeof(a));
    fp_init(&fb, 64, 256);
    fp_feed(&fb, c, sizeof(c));
    for (int i = 0; i < 3; i++)
        CHECK(fa.h[i] == fb.h[i]);
    for (int i = 3; i < 6; i++) /* the chain carries the difference on */
        CHECK(fa.h[i] != fb.h[i]);
    /* same block content at a different position hashes differently */
    fp_init(&fb, 64, 256);
    fp_feed(&fb, a + 64, 64);
    CHECK(fb.h[0] != fa.h[1]);
}

TEST(model_keys)
{
    uint8_t b[64 * 4];
    fill_text(b, sizeof(b), 13);
    fp_init(&fa, 64, 256);
    fp_feed(&fa, b, sizeof(b));
    uint64_t m1 = fp_model_key("llama-8b", 8, NULL, 0);
    uint64_t m2 = fp_model_key("llama-8b-lora1", 14, NULL, 0);
    uint64_t m3 = fp_model_key("llama-8b", 8, "tenant-a", 8);
    uint64_t m4 = fp_model_key("llama-8b", 8, "tenant-b", 8);
    uint64_t m5 = fp_model_key("llama-8", 7, "btenant-a", 9);
    CHECK(m1 != m2 && m1 != m3 && m3 != m4 && m3 != m5 && m2 != m3);
    CHECK(m1 == fp_model_key("llama-8b", 8, "", 0));
    uint64_t k1[4], k2[4], k3[4];
    CHECK_EQ(fp_keys(&fa, m1, k1), 4);
    CHECK_EQ(fp_keys(&fa, m2, k2), 4);
    CHECK_EQ(fp_keys(&fa, m3, k3), 4);
    for (int i = 0; i < 4; i++) {
        CHECK(k1[i] == fp_key(fa.h[i], m1));
        CHECK(k1[i] != k2[i] && k1[i] != k3[i] && k2[i] != k3[i]);
        CHECK(k1[i] != fa.h[i]);
    }
    /* deterministic */
    CHECK(fp_key(fa.h[0], m1) == k1[0]);
    CHECK(fp_key(1, 2) != fp_key(2, 1));
}

/* Wired to bodyscan: the fingerprint of a body equals that of its raw
 * messages value, whatever the split. */
TEST(with_bodyscan)
{
    char body[4096];
    int n = snprintf(body, sizeof(body),
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    uint8_t t[3000];
    fill_text(t, sizeof(t), 17);
    for (size_t i = 0; i < sizeof(t); i++)
        if (t[i] == '"' || t[i] == '\\')
            t[i] = '.';
    memcpy(body + n, t, sizeof(t));
    n += (int)sizeof(t);
    n += snprintf(body + n, sizeof(body) - (size_t)n, "\"}]}");
    struct bodyscan s;
    fp_init(&fa, 64, 256);
    bodyscan_init(&s, fp_feed_cb, &fa);
    for (int i = 0; i < n; i += 100)
        CHECK_EQ(bodyscan_feed(&s, body + i, n - i < 100 ? (size_t)(n - i) : 100), 0);
    CHECK_EQ(bodyscan_finish(&s), 0);
    fp_init(&fb, 64, 256);
    fp_feed(&fb, body + s.prompt_start, s.prompt_end - s.prompt_start);
    CHECK_EQ(fa.n_blocks, (s.prompt_end - s.prompt_start) / 64);
    CHECK_EQ(fa.n_blocks, fb.n_blocks);
    CHECK(!memcmp(fa.h, fb.h, fa.n_blocks * sizeof(uint64_t)));
}

int main(void)
{
    RUN(init_validates);
    RUN(known_answer);
    RUN(split_invariance);
    RUN(block_counts);
    RUN(max_blocks_cap);
    RUN(shared_prefix);
    RUN(model_keys);
    RUN(with_bodyscan);
    return harness_done();
}
