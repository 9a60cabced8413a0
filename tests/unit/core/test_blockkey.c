/* Tests for user/core/blockkey.c: full blocks only, chaining, the model
 * root, and where LoRA and cache_salt enter (as vLLM applies them). */
#include "core/blockkey.h"
#include "harness.h"

#include <string.h>

#define BS 16

static void fill(uint32_t *t, size_t n, uint32_t base)
{
    for (size_t i = 0; i < n; i++)
        t[i] = base + (uint32_t)i * 7;
}

static uint64_t root(void) { return bk_model_root("m", 1); }

TEST(full_blocks_only)
{
    uint32_t t[100];
    uint64_t k[16];
    fill(t, 100, 1);
    CHECK_EQ(bk_chain(root(), t, 100, BS, NULL, k, 16), 6); /* 96 of 100 tokens */
    CHECK_EQ(bk_chain(root(), t, 15, BS, NULL, k, 16), 0);
    CHECK_EQ(bk_chain(root(), t, 16, BS, NULL, k, 16), 1);
    CHECK_EQ(bk_chain(root(), t, 100, 0, NULL, k, 16), 0);
    CHECK_EQ(bk_chain(root(), t, 100, BK_MAX_BLOCK_SIZE + 1, NULL, k, 16), 0);
    /* max_keys bounds what is written, not what is counted */
    uint64_t k2[3] = {0, 0, 0xdead};
    CHECK_EQ(bk_chain(root(), t, 100, BS, NULL, k2, 2), 6);
    CHECK(k2[0] == k[0] && k2[1] == k[1] && k2[2] == 0xdead);
}

TEST(chain_is_prefix_stable)
{
    uint32_t a[64], b[64];
    uint64_t ka[4], kb[4];
    fill(a, 64, 1);
    memcpy(b, a, sizeof(a));
    b[40] ^= 1; /* differs in block 2 */
    bk_chain(root(), a, 64, BS, NULL, ka, 4);
    bk_chain(root(), b, 64, BS, NULL, kb, 4);
    CHECK(ka[0] == kb[0] && ka[1] == kb[1]);
    CHECK(ka[2] != kb[2] && ka[3] != kb[3]); /* and everything after */
    /* block by block gives the same chain */
    uint64_t k = root();
    for (int i = 0; i < 4; i++) {
        k = bk_block(k, a + i * BS, BS, 0, 0, i == 0);
        CHECK(k == ka[i]);
    }
}

TEST(model_root_separates)
{
    uint32_t t[32];
    uint64_t k1[2], k2[2];
    fill(t, 32, 5);
    bk_chain(bk_model_root("llama", 5), t, 32, BS, NULL, k1, 2);
    bk_chain(bk_model_root("qwen", 4), t, 32, BS, NULL, k2, 2);
    CHECK(k1[0] != k2[0] && k1[1] != k2[1]);
}

TEST(lora_every_block_salt_first_only)
{
    uint32_t t[48];
    uint64_t plain[3], lora[3], salt[3];
    fill(t, 48, 9);
    struct bk_extra xl = {"sql", 3, NULL, 0}, xs = {NULL, 0, "tenant", 6};
    bk_chain(root(), t, 48, BS, NULL, plain, 3);
    bk_chain(root(), t, 48, BS, &xl, lora, 3);
    bk_chain(root(), t, 48, BS, &xs, salt, 3);
    for (int i = 0; i < 3; i++)
        CHECK(lora[i] != plain[i] && salt[i] != plain[i]);
    /* the salt enters block 0 only: block 1 is block 1 of the plain chain
     * keyed from the salted block 0 */
    CHECK(salt[1] == bk_block(salt[0], t + BS, BS, 0, 0, 0));
    /* the adapter enters every block */
    uint64_t lw = bk_lora_word("sql", 3);
    CHECK(lora[1] == bk_block(lora[0], t + BS, BS, lw, 0, 0));
    CHECK(lora[1] != bk_block(lora[0], t + BS, BS, 0, 0, 0));
    /* a salt word passed for a later block is ignored (first == 0) */
    uint64_t sw = bk_salt_word("tenant", 6);
    CHECK(bk_block(salt[0], t + BS, BS, 0, sw, 0) == salt[1]);
}

TEST(lora_and_salt_domains_apart)
{
    /* vLLM hashes adapter "x" without salt like salt "x" without adapter;
     * here they differ (a miss, never a false hit) */
    uint32_t t[16];
    uint64_t a[1], b[1];
    fill(t, 16, 3);
    struct bk_extra xl = {"x", 1, NULL, 0}, xs = {NULL, 0, "x", 1};
    bk_chain(root(), t, 16, BS, &xl, a, 1);
    bk_chain(root(), t, 16, BS, &xs, b, 1);
    CHECK(a[0] != b[0]);
    CHECK(bk_lora_word(NULL, 0) == 0 && bk_salt_word("", 0) == 0);
}

int main(void)
{
    RUN(full_blocks_only);
    RUN(chain_is_prefix_stable);
    RUN(model_root_separates);
    RUN(lora_every_block_salt_first_only);
    RUN(lora_and_salt_domains_apart);
    return harness_done();
}
