/* Unit tests for bench/loadgen/ideal.c: the finite-cache ideal (one LRU of
 * the fleet's blocks) next to the infinite-cache one, on cases computed by
 * hand: recency order, a chain's tail evicted before its head, requests
 * longer than the cache, the per-request cap, adapters as part of the key,
 * and a whole workload whose answer follows from its interleaving. */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "../../../bench/loadgen/ideal.c"
#include "../../../bench/loadgen/prompt.c"
#include "../../../bench/loadgen/schedule.c"
#include "../../../bench/loadgen/workload.c"

static struct lg_lru lru_of(uint64_t capacity)
{
    struct lg_lru l;
    memset(&l, 0, sizeof(l));
    l.capacity = capacity;
    l.head = l.tail = NIL;
    return l;
}

TEST(lru_recency_order)
{
    /* capacity 3: A, B, C (MRU..LRU: C B A); A hits and becomes MRU
     * (A C B); D evicts B, the least recent (D A C) */
    struct lg_lru l = lru_of(3);
    const uint64_t A = 11, B = 12, C = 13, D = 14;
    CHECK_EQ(lg_lru_access(&l, &A, 1), 0);
    CHECK_EQ(lg_lru_access(&l, &B, 1), 0);
    CHECK_EQ(lg_lru_access(&l, &C, 1), 0);
    CHECK_EQ(lg_lru_access(&l, &A, 1), 1);
    CHECK_EQ(lg_lru_access(&l, &D, 1), 0);
    CHECK(!lg_lru_contains(&l, B));
    CHECK(lg_lru_contains(&l, A) && lg_lru_contains(&l, C) && lg_lru_contains(&l, D));
    CHECK_EQ(l.n, 3);
    CHECK_EQ(l.evictions, 1);
    /* E evicts C now (D A C -> E D A) */
    const uint64_t E = 15;
    lg_lru_access(&l, &E, 1);
    CHECK(!lg_lru_contains(&l, C));
    CHECK(lg_lru_contains(&l, A));
    lru_free(&l);
}

TEST(lru_evicts_a_chains_tail_first)
{
    /* capacity 4. Request a = [a1 a2 a3]: MRU..LRU a1 a2 a3 (head last
     * touched). Request b = [b1 b2]: b2 fills the 4th slot, b1 evicts a3.
     * a again: a1 a2 still there, a3 not: 2 leading blocks hit. */
    struct lg_lru l = lru_of(4);
    const uint64_t a[3] = { 101, 102, 103 }, b[2] = { 201, 202 };
    CHECK_EQ(lg_lru_access(&l, a, 3), 0);
    CHECK_EQ(lg_lru_access(&l, b, 2), 0);
    CHECK(!lg_lru_contains(&l, 103));
    CHECK(lg_lru_contains(&l, 101) && lg_lru_contains(&l, 102));
    CHECK_EQ(lg_lru_access(&l, a, 3), 2);
    /* that access re-inserted a3 (evicting b2, the tail of b: b1 stays) */
    CHECK(lg_lru_contains(&l, 103) && lg_lru_contains(&l, 201) && !lg_lru_contains(&l, 202));
    /* only LEADING blocks count: b = [b1 b2] now hits 1, not a gap-jumping 2 */
    CHECK_EQ(lg_lru_access(&l, b, 2), 1);
    lru_free(&l);
}

TEST(lru_request_longer_than_the_cache)
{
    /* capacity 2, x = [x1 x2 x3]: touched x3, x2, x1: x1 evicts x3.
     * x again: x1 x2 hit (2), x3 missing. */
    struct lg_lru l = lru_of(2);
    const uint64_t x[3] = { 1, 2, 3 };
    CHECK_EQ(lg_lru_access(&l, x, 3), 0);
    CHECK(lg_lru_contains(&l, 1) && lg_lru_contains(&l, 2) && !lg_lru_contains(&l, 3));
    CHECK_EQ(lg_lru_access(&l, x, 3), 2);
    CHECK_EQ(l.n, 2);
    lru_free(&l);
}

TEST(lru_grows_past_its_first_allocation)
{
    /* more blocks than one allocation step (1024) and than the first bucket
     * table: every key stays findable, the oldest are evicted */
    struct lg_lru l = lru_of(5000);
    for (uint64_t k = 1; k <= 6000; k++)
        lg_lru_access(&l, &k, 1);
    CHECK_EQ(l.n, 5000);
    CHECK_EQ(l.evictions, 1000);
    CHECK(!lg_lru_contains(&l, 1000));
    CHECK(lg_lru_contains(&l, 1001));
    CHECK(lg_lru_contains(&l, 6000));
    CHECK(!l.oom);
    lru_free(&l);
}

TEST(ideal_finite_by_hand)
{
    /* p = 256 bytes 'x' = 64 tokens = 4 blocks p1..p4; q = 256 bytes 'q'.
     * Capacity 4 blocks:
     *   p: finite 0, infinite 0
     *   p: all 4 blocks held, capped at floor(63/16)*16 = 48: finite 48, infinite 48
     *   q: 4 new blocks evict p1..p4: 0, 0
     *   p: infinite 48; finite 0 (gone)
     * Capacity 6 instead: q's blocks (touched q4..q1) evict p4 then p3
     * (p's order was p1 p2 p3 p4, tail first), so the last p keeps p1 p2:
     * finite 32. */
    char p[256], q[256];
    memset(p, 'x', sizeof(p));
    memset(q, 'q', sizeof(q));
    struct lg_ideal d;
    lg_ideal_init(&d);
    CHECK_EQ(lg_ideal_set_capacity(&d, 4), 0);
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 0);
    CHECK_EQ(d.last_finite_hit, 0);
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 48);
    CHECK_EQ(d.last_finite_hit, 48);
    CHECK_EQ(lg_ideal_add(&d, "m", q, 256), 0);
    CHECK_EQ(d.last_finite_hit, 0);
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 48);
    CHECK_EQ(d.last_finite_hit, 0);
    CHECK_EQ(d.prompt_tokens, 256);
    CHECK_EQ(d.hit_tokens, 96);
    CHECK_EQ(d.finite_hit_tokens, 48);
    CHECK_NEAR(lg_ideal_rate(&d), 96.0 / 256, 1e-12);
    CHECK_NEAR(lg_ideal_finite_rate(&d), 48.0 / 256, 1e-12);
    lg_ideal_free(&d);

    lg_ideal_init(&d);
    lg_ideal_set_capacity(&d, 6);
    lg_ideal_add(&d, "m", p, 256);
    lg_ideal_add(&d, "m", p, 256);
    lg_ideal_add(&d, "m", q, 256);
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 48);
    CHECK_EQ(d.last_finite_hit, 32);
    CHECK_EQ(d.finite_hit_tokens, 48 + 32);
    lg_ideal_free(&d);
}

TEST(ideal_finite_adapter_key_and_off)
{
    /* the same text under another adapter is other blocks: with room for
     * 4 blocks, "lora-a" evicts all of "m"'s */
    char p[256];
    memset(p, 'x', sizeof(p));
    struct lg_ideal d;
    lg_ideal_init(&d);
    lg_ideal_set_capacity(&d, 4);
    lg_ideal_add(&d, "m", p, 256);
    lg_ideal_add(&d, "lora-a", p, 256);
    CHECK_EQ(d.last_finite_hit, 0);
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 48); /* infinite: still there */
    CHECK_EQ(d.last_finite_hit, 0);
    lg_ideal_free(&d);
    /* no capacity: no finite ceiling */
    lg_ideal_init(&d);
    lg_ideal_add(&d, "m", p, 256);
    lg_ideal_add(&d, "m", p, 256);
    CHECK_EQ(d.finite_hit_tokens, 0);
    CHECK_NEAR(lg_ideal_finite_rate(&d), -1, 0);
    CHECK_EQ(lg_ideal_set_capacity(&d, LG_IDEAL_MAX_CAPACITY + 1), -EINVAL);
    lg_ideal_free(&d);
}

TEST(ideal_finite_short_prompt_and_partial_block)
{
    /* 70 bytes = 18 tokens: one full block (16 tokens) and a partial one
     * that is never cached; the cap floor(17/16)*16 = 16 does not bite */
    char s[70];
    memset(s, 's', sizeof(s));
    struct lg_ideal d;
    lg_ideal_init(&d);
    lg_ideal_set_capacity(&d, 1);
    lg_ideal_add(&d, "m", s, 70);
    CHECK_EQ(lg_ideal_add(&d, "m", s, 70), 16);
    CHECK_EQ(d.last_finite_hit, 16);
    CHECK_EQ(d.lru.n, 1);
    lg_ideal_free(&d);
}

static struct lg_wl_spec grouped(void)
{
    struct lg_wl_spec s = {
        .kind = LG_WL_SHARED_PREFIX, .seed = 1, .groups = 2, .prompts_per_group = 3,
        .system_len = 100, .question_len = 10, .output_len = 8,
        .sched = { .kind = LG_ARR_POISSON, .rate = 10, .burstiness = 1, .seed = 1 },
    };
    return s;
}

TEST(workload_finite_ideal_by_hand)
{
    /* 2 groups x 3 prompts of 153 tokens (test_workload.c shows the sum):
     * 9 full blocks each, the first 8 (128 tokens) shared in a group, the
     * 9th unique. Distinct blocks: 2 x 8 + 6 = 22.
     * - capacity >= 22: nothing is evicted, finite = infinite = 4 x 128.
     * - capacity 9 (one request): after a request the LRU holds exactly
     *   its 9 blocks, so a request hits 128 tokens iff the one before it
     *   was of the same group. */
    struct lg_wl_spec s = grouped();
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    struct lg_wl_ideals big, one;
    lg_wl_ideals(&w, 22, &big);
    CHECK_EQ(big.prompt, 918);
    CHECK_EQ(big.hit, 512);
    CHECK_EQ(big.finite_hit, 512);
    CHECK_EQ(big.distinct_blocks, 22);
    CHECK_NEAR(big.finite, big.infinite, 1e-12);
    lg_wl_ideals(&w, 9, &one);
    uint64_t adjacent = 0;
    for (size_t k = 1; k < w.norder; k++)
        adjacent += w.items[w.order[k]].a == w.items[w.order[k - 1]].a;
    CHECK_EQ(one.finite_hit, 128 * adjacent);
    CHECK_EQ(one.hit, 512);
    CHECK(one.finite <= one.infinite);
    /* capacity 8: the 9th (unique) block is touched first and evicted by
     * the 8th, so the shared 8 blocks survive: same answer as 9 */
    struct lg_wl_ideals eight;
    lg_wl_ideals(&w, 8, &eight);
    CHECK_EQ(eight.finite_hit, 128 * adjacent);
    /* capacity 0: off */
    struct lg_wl_ideals off;
    lg_wl_ideals(&w, 0, &off);
    CHECK_NEAR(off.finite, -1, 0);
    lg_wl_free(&w);
}

int main(void)
{
    RUN(lru_recency_order);
    RUN(lru_evicts_a_chains_tail_first);
    RUN(lru_request_longer_than_the_cache);
    RUN(lru_grows_past_its_first_allocation);
    RUN(ideal_finite_by_hand);
    RUN(ideal_finite_adapter_key_and_off);
    RUN(ideal_finite_short_prompt_and_partial_block);
    RUN(workload_finite_ideal_by_hand);
    return harness_done();
}
