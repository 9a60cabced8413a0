/* Unit tests for user/core/prefix_index.c. */
#include "harness.h"
#include "core/prefix_index.h"

static uint64_t K(int chain, int i) { return (uint64_t)chain << 32 | (uint64_t)(i + 1) * 2654435761u; }

static void keys(uint64_t *out, int chain, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = K(chain, i);
}

TEST(lookup_counts_leading_blocks_per_pod)
{
    struct prefix_index *x = pidx_new(8, 1000, 100);
    uint64_t a[10], b[10];
    uint16_t m[8];
    keys(a, 1, 10);
    keys(b, 1, 10);
    b[6] = K(2, 6); /* diverges at block 6 */
    pidx_insert(x, 3, a, 10);
    pidx_insert(x, 5, a, 4);
    CHECK_EQ(pidx_lookup(x, b, 10, m), 6);
    CHECK_EQ(m[3], 6);
    CHECK_EQ(m[5], 4);
    CHECK_EQ(m[0], 0);
    CHECK_EQ(pidx_lookup(x, a, 10, m), 10);
    CHECK_EQ(m[3], 10);
    pidx_free(x);
}

TEST(holes_stop_the_match)
{
    struct prefix_index *x = pidx_new(4, 1000, 100);
    uint64_t a[6], m2[6];
    uint16_t m[4];
    keys(a, 7, 6);
    /* pod 1 holds blocks 1..5 but not 0: it matches nothing */
    pidx_insert(x, 1, a + 1, 5);
    CHECK_EQ(pidx_lookup(x, a, 6, m), 0);
    CHECK_EQ(m[1], 0);
    keys(m2, 7, 6);
    pidx_insert(x, 2, m2, 2);
    CHECK_EQ(pidx_lookup(x, a, 6, m), 2);
    CHECK_EQ(m[1], 0); /* still not contiguous from block 0 */
    pidx_free(x);
}

TEST(lru_capacity_evicts_oldest_chain_tail_first)
{
    struct prefix_index *x = pidx_new(2, 1000, 8);
    uint64_t a[6], b[6];
    uint16_t m[2];
    keys(a, 1, 6);
    keys(b, 2, 6);
    pidx_insert(x, 0, a, 6);
    CHECK_EQ(pidx_pod_blocks(x, 0), 6);
    pidx_insert(x, 0, b, 6); /* 12 > 8: four of a's blocks go, tail first */
    CHECK_EQ(pidx_pod_blocks(x, 0), 8);
    pidx_lookup(x, a, 6, m);
    CHECK_EQ(m[0], 2);
    pidx_lookup(x, b, 6, m);
    CHECK_EQ(m[0], 6);
    pidx_set_capacity(x, 0, 3);
    CHECK_EQ(pidx_pod_blocks(x, 0), 3);
    pidx_lookup(x, b, 6, m);
    CHECK_EQ(m[0], 3);
    pidx_free(x);
}

TEST(reinsert_refreshes_recency)
{
    struct prefix_index *x = pidx_new(1, 100, 6);
    uint64_t a[3], b[3], c[3];
    uint16_t m[1];
    keys(a, 1, 3); keys(b, 2, 3); keys(c, 3, 3);
    pidx_insert(x, 0, a, 3);
    pidx_insert(x, 0, b, 3);
    pidx_insert(x, 0, a, 3); /* a is fresh again */
    pidx_insert(x, 0, c, 3); /* evicts b */
    pidx_lookup(x, a, 3, m); CHECK_EQ(m[0], 3);
    pidx_lookup(x, b, 3, m); CHECK_EQ(m[0], 0);
    pidx_lookup(x, c, 3, m); CHECK_EQ(m[0], 3);
    pidx_free(x);
}

TEST(shared_pool_bounded_and_purge)
{
    struct prefix_index *x = pidx_new(4, 10, 100);
    uint64_t a[8], b[8];
    uint16_t m[4];
    keys(a, 1, 8); keys(b, 2, 8);
    pidx_insert(x, 0, a, 8);
    pidx_insert(x, 1, b, 8); /* pool of 10: pod 1 recycles its own */
    CHECK(pidx_pod_blocks(x, 0) + pidx_pod_blocks(x, 1) <= 10);
    pidx_lookup(x, a, 8, m);
    CHECK_EQ(m[0], 8); /* pod 0 untouched by pod 1's pressure */
    pidx_purge_pod(x, 0);
    CHECK_EQ(pidx_pod_blocks(x, 0), 0);
    CHECK_EQ(pidx_lookup(x, a, 8, m), 0);
    pidx_insert(x, 2, a, 8);
    pidx_lookup(x, a, 8, m);
    CHECK_EQ(m[2], 8);
    pidx_free(x);
}

TEST(bad_arguments)
{
    CHECK(pidx_new(0, 10, 10) == NULL);
    CHECK(pidx_new(PIDX_MAX_PODS + 1, 10, 10) == NULL);
    struct prefix_index *x = pidx_new(2, 10, 10);
    uint64_t a[1] = {1};
    pidx_insert(x, 9, a, 1); /* out of range: ignored */
    CHECK_EQ(pidx_pod_blocks(x, 9), 0);
    pidx_free(x);
}

int main(void)
{
    RUN(lookup_counts_leading_blocks_per_pod);
    RUN(holes_stop_the_match);
    RUN(lru_capacity_evicts_oldest_chain_tail_first);
    RUN(reinsert_refreshes_recency);
    RUN(shared_pool_bounded_and_purge);
    RUN(bad_arguments);
    return harness_done();
}
