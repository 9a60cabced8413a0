/* Unit tests for user/podsim/kvcache.c: vLLM v1 block-pool semantics. */
#include "harness.h"
#include "podsim/kvcache.h"

#include <errno.h>

static uint32_t toks[4][KV_BLOCK_TOKENS];

static void fill_tokens(void)
{
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < KV_BLOCK_TOKENS; i++)
            toks[b][i] = (uint32_t)(b * 100 + i);
}

/* hashes of a 3-block chain over toks[0..2] */
static void chain(uint64_t *h, uint64_t extra)
{
    h[0] = kv_block_hash(0, toks[0], extra);
    h[1] = kv_block_hash(h[0], toks[1], extra);
    h[2] = kv_block_hash(h[1], toks[2], extra);
}

struct obs_log {
    int stored, removed, cleared;
    uint64_t last_removed, last_parent;
};
static void o_stored(void *c, uint64_t h, uint64_t p, const uint32_t *t, uint32_t l)
{
    ((struct obs_log *)c)->stored++;
    ((struct obs_log *)c)->last_parent = p;
}
static void o_removed(void *c, uint64_t h)
{
    ((struct obs_log *)c)->removed++;
    ((struct obs_log *)c)->last_removed = h;
}
static void o_cleared(void *c) { ((struct obs_log *)c)->cleared++; }

TEST(usage_formula_counts_null_block_out)
{
    struct kv_cache c;
    CHECK_EQ(kv_init(&c, 101), 0);
    CHECK_EQ(c.nfree, 100);
    CHECK_NEAR(kv_usage(&c), 0.0, 1e-12);
    uint32_t ids[100];
    CHECK_EQ(kv_alloc(&c, 25, ids), 0);
    CHECK_NEAR(kv_usage(&c), 0.25, 1e-12); /* 1 - 75/(101-1) */
    CHECK_EQ(kv_alloc(&c, 75, ids + 25), 0);
    CHECK_NEAR(kv_usage(&c), 1.0, 1e-12);
    int zero = 0;
    for (int i = 0; i < 100; i++)
        zero += ids[i] == 0;
    CHECK_EQ(zero, 0); /* the null block is never handed out */
    CHECK_EQ(kv_alloc(&c, 1, ids), -ENOSPC);
    kv_destroy(&c);
    CHECK_EQ(kv_init(&c, 1), -EINVAL);
}

TEST(alloc_fails_whole_when_short)
{
    struct kv_cache c;
    kv_init(&c, 5);
    uint32_t ids[8];
    CHECK_EQ(kv_alloc(&c, 5, ids), -ENOSPC);
    CHECK_EQ(c.nfree, 4); /* nothing taken */
    kv_destroy(&c);
}

TEST(lookup_counts_leading_hits_only)
{
    struct kv_cache c;
    kv_init(&c, 10);
    uint64_t h[3];
    chain(h, 0);
    uint32_t ids[3];
    kv_alloc(&c, 3, ids);
    kv_commit(&c, ids[0], h[0], 0, toks[0], 0);
    kv_commit(&c, ids[2], h[2], h[1], toks[2], 0); /* a hole at block 1 */
    CHECK_EQ(kv_lookup(&c, h, 3), 1);
    kv_commit(&c, ids[1], h[1], h[0], toks[1], 0);
    CHECK_EQ(kv_lookup(&c, h, 3), 3);
    kv_destroy(&c);
}

TEST(hash_chains_parent_and_extra_key)
{
    uint64_t a[3], b[3];
    chain(a, 0);
    chain(b, 7); /* same text under an adapter */
    CHECK(a[0] != b[0]);
    CHECK(kv_block_hash(0, toks[1], 0) != a[1]); /* parent enters the hash */
    CHECK(kv_block_hash(a[0], toks[1], 0) == a[1]);
    CHECK(a[0] != 0 && a[1] != 0);
}

TEST(free_returns_reverse_order_tail_evicted_first)
{
    struct kv_cache c;
    struct obs_log log = {0};
    kv_init(&c, 5); /* 4 usable: 1..4 */
    c.obs = (struct kv_observer){&log, o_stored, o_removed, o_cleared};
    uint64_t h[3];
    chain(h, 0);
    uint32_t ids[3];
    kv_alloc(&c, 3, ids);
    CHECK_EQ(ids[0], 1);
    CHECK_EQ(ids[1], 2);
    CHECK_EQ(ids[2], 3);
    for (int i = 0; i < 3; i++)
        kv_commit(&c, ids[i], h[i], i ? h[i - 1] : 0, toks[i], 0);
    CHECK_EQ(log.stored, 3);
    CHECK_EQ(log.last_parent, h[1]);
    kv_free(&c, ids, 3);
    CHECK_EQ(c.nfree, 4);
    CHECK_NEAR(kv_usage(&c), 0.0, 1e-12); /* cached but free blocks count as free */
    CHECK_EQ(kv_lookup(&c, h, 3), 3);
    /* queue: 4 (never used), then 3, 2, 1 (reverse of the table) */
    uint32_t x;
    kv_alloc(&c, 1, &x);
    CHECK_EQ(x, 4);
    CHECK_EQ(kv_lookup(&c, h, 3), 3);
    kv_alloc(&c, 1, &x);
    CHECK_EQ(x, 3); /* the chain's tail goes first */
    CHECK_EQ(log.removed, 1);
    CHECK_EQ(log.last_removed, h[2]);
    CHECK_EQ(kv_lookup(&c, h, 3), 2);
    kv_alloc(&c, 1, &x);
    CHECK_EQ(x, 2);
    CHECK_EQ(kv_lookup(&c, h, 3), 1);
    CHECK_EQ(c.evictions, 2);
    kv_destroy(&c);
}

TEST(hit_takes_block_off_free_queue)
{
    struct kv_cache c;
    kv_init(&c, 5);
    uint64_t h[3];
    chain(h, 0);
    uint32_t ids[3], got[2];
    kv_alloc(&c, 3, ids);
    for (int i = 0; i < 3; i++)
        kv_commit(&c, ids[i], h[i], 0, toks[i], 0);
    kv_free(&c, ids, 3);
    CHECK_EQ(kv_count_free_hits(&c, h, 2), 2);
    kv_touch(&c, h, 2, got);
    CHECK_EQ(got[0], ids[0]);
    CHECK_EQ(got[1], ids[1]);
    CHECK_EQ(c.nfree, 2);
    CHECK_NEAR(kv_usage(&c), 0.5, 1e-12);
    CHECK_EQ(kv_count_free_hits(&c, h, 2), 0);
    /* shared by a second request: ref 2, freed once -> still held */
    kv_touch(&c, h, 1, got);
    CHECK_EQ(c.blocks[ids[0]].ref, 2);
    kv_free(&c, got, 1);
    CHECK_EQ(c.nfree, 2);
    kv_free(&c, ids, 2);
    CHECK_EQ(c.nfree, 4);
    kv_destroy(&c);
}

TEST(duplicate_commit_keeps_first_copy)
{
    struct kv_cache c;
    struct obs_log log = {0};
    kv_init(&c, 5);
    c.obs = (struct kv_observer){&log, o_stored, o_removed, o_cleared};
    uint64_t h[3];
    chain(h, 0);
    uint32_t a, b;
    kv_alloc(&c, 1, &a);
    kv_alloc(&c, 1, &b);
    kv_commit(&c, a, h[0], 0, toks[0], 0);
    kv_commit(&c, b, h[0], 0, toks[0], 0);
    CHECK_EQ(kv_find(&c, h[0]), a);
    CHECK_EQ(log.stored, 1);
    CHECK(!c.blocks[b].hashed);
    kv_destroy(&c);
}

TEST(reset_refuses_while_in_use)
{
    struct kv_cache c;
    struct obs_log log = {0};
    kv_init(&c, 5);
    c.obs = (struct kv_observer){&log, o_stored, o_removed, o_cleared};
    uint64_t h[3];
    chain(h, 0);
    uint32_t ids[3];
    kv_alloc(&c, 3, ids);
    for (int i = 0; i < 3; i++)
        kv_commit(&c, ids[i], h[i], 0, toks[i], 0);
    CHECK_EQ(kv_reset(&c), -EBUSY);
    kv_free(&c, ids, 3);
    CHECK_EQ(kv_reset(&c), 0);
    CHECK_EQ(log.cleared, 1);
    CHECK_EQ(kv_lookup(&c, h, 3), 0);
    CHECK_EQ(c.nfree, 4);
    kv_destroy(&c);
}

int main(void)
{
    fill_tokens();
    RUN(usage_formula_counts_null_block_out);
    RUN(alloc_fails_whole_when_short);
    RUN(lookup_counts_leading_hits_only);
    RUN(hash_chains_parent_and_extra_key);
    RUN(free_returns_reverse_order_tail_evicted_first);
    RUN(hit_takes_block_off_free_queue);
    RUN(duplicate_commit_keeps_first_copy);
    RUN(reset_refuses_while_in_use);
    return harness_done();
}
