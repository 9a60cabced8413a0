/* Unit tests for user/core/prefix_index.c. The .c is included to walk the
 * bucket chains (issue 9: hashing seeded per process) . */
#include "core/prefix_index.c"
#include "common/alloc.h"

#include "harness.h"

/* Block i of chain `chain`: distinct (chain, i) give distinct keys (a
 * splitmix64 finaliser of a unique input), like fingerprint keys. */
static uint64_t K(int chain, int i)
{
    uint64_t z = ((uint64_t)(uint32_t)chain << 32 | (uint32_t)i) + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

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
    for (int i = 6; i < 10; i++)
        b[i] = K(2, i); /* diverges at block 6; chained keys differ from there on */
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

TEST(withdraw_takes_back_a_credit)
{
    struct prefix_index *x = pidx_new(8, 1000, 100);
    uint64_t a[10];
    uint16_t m[8];
    keys(a, 3, 10);
    pidx_insert(x, 2, a, 4);  /* pod 2 held 4 blocks */
    pidx_insert(x, 2, a, 10); /* credited with all 10 at a route */
    pidx_insert(x, 6, a, 10);
    CHECK_EQ(pidx_pod_blocks(x, 2), 10);
    pidx_withdraw(x, 2, a + 4, 6); /* the attempt failed: the 6 new ones back */
    pidx_lookup(x, a, 10, m);
    CHECK_EQ(m[2], 4);
    CHECK_EQ(m[6], 10); /* another pod's credit is its own */
    CHECK_EQ(pidx_pod_blocks(x, 2), 4);
    pidx_withdraw(x, 2, a + 4, 6); /* twice, and keys not held: no change */
    pidx_withdraw(x, 9, a, 10);    /* no such pod */
    CHECK_EQ(pidx_pod_blocks(x, 2), 4);
    /* the entries went back to the shared pool */
    CHECK_EQ(x->nused, 4 + 10);
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
    CHECK_EQ(pidx_pod_blocks(x, 0), 8); /* alone: the whole pool is its share */
    pidx_insert(x, 1, b, 8); /* two pods wanting 100 each share 10: 5 each */
    CHECK_EQ(pidx_pod_blocks(x, 0), 5);
    CHECK_EQ(pidx_pod_blocks(x, 1), 5);
    CHECK_EQ(pidx_pod_limit(x, 0), 5);
    pidx_lookup(x, a, 8, m);
    CHECK_EQ(m[0], 5); /* the chain's head survived, its tail went */
    pidx_purge_pod(x, 0);
    CHECK_EQ(pidx_pod_blocks(x, 0), 0);
    CHECK_EQ(pidx_lookup(x, a, 8, m), 0);
    pidx_insert(x, 2, a, 8); /* three pods now: 3 each */
    pidx_lookup(x, a, 8, m);
    CHECK_EQ(m[2], 3);
    pidx_remove_pod(x, 0); /* gone: its share goes back to the others */
    pidx_insert(x, 2, a, 8);
    CHECK_EQ(pidx_pod_limit(x, 2), 5);
    pidx_lookup(x, a, 8, m);
    CHECK_EQ(m[2], 5);
    pidx_free(x);
}

/* issue 9: a pod announcing 4e9 blocks (scraped num_gpu_blocks) may not
 * take the whole shared pool: pods that need less than an equal split keep
 * their capacity, the big one gets what is left. */
TEST(one_pod_cannot_starve_the_others)
{
    struct prefix_index *x = pidx_new(8, 1024, 100);
    static uint64_t big[2000], small[100];
    uint16_t m[8];
    keys(big, 1, 2000);
    pidx_set_capacity(x, 0, 4000000000u);
    for (int i = 0; i < 2000; i += 100)
        pidx_insert(x, 0, big + i, 100);
    CHECK_EQ(pidx_pod_blocks(x, 0), 1024); /* alone, it may use all of it */
    for (int p = 1; p <= 3; p++) {
        keys(small, 100 + p, 100);
        pidx_set_capacity(x, (uint32_t)p, 100);
        pidx_insert(x, (uint32_t)p, small, 100);
    }
    for (int p = 1; p <= 3; p++) {
        CHECK_EQ(pidx_pod_blocks(x, (uint32_t)p), 100);
        keys(small, 100 + p, 100);
        pidx_lookup(x, small, 100, m);
        CHECK_EQ(m[p], 100);
    }
    CHECK_EQ(pidx_pod_limit(x, 0), 1024 - 300);
    CHECK_EQ(pidx_pod_blocks(x, 0), 1024 - 300);
    /* more small pods than the pool holds: an equal split */
    for (int p = 4; p < 8; p++)
        pidx_set_capacity(x, (uint32_t)p, 1000);
    for (int p = 0; p < 8; p++)
        CHECK_EQ(pidx_pod_limit(x, (uint32_t)p), p >= 1 && p <= 3 ? 100 : (1024 - 300) / 5);
    pidx_free(x);
}

/* issue 9: bucket hashing is seeded per index (per process), so keys an
 * attacker computed offline to share a bucket do not: 2048 keys that all
 * fell into bucket 0 under the old fixed fold (key ^ key >> 29) & mask. */
static uint32_t longest_chain(const struct prefix_index *x)
{
    uint32_t best = 0;
    for (uint32_t b = 0; b <= x->mask; b++) {
        uint32_t n = 0;
        for (uint32_t i = x->buckets[b]; i != NIL; i = x->e[i].hnext)
            n++;
        if (n > best)
            best = n;
    }
    return best;
}

TEST(bucket_hashing_is_seeded)
{
    struct prefix_index *x = pidx_new(1, 4096, 4096);
    static uint64_t k[2048];
    for (uint32_t i = 0; i < 2048; i++) {
        k[i] = (uint64_t)(i + 1) << 41; /* bits 0-11 and 29-40 clear */
        uint64_t f = k[i] ^ k[i] >> 29;
        CHECK_EQ(f & 4095, 0);          /* the crafted collision */
    }
    for (uint32_t i = 0; i < 2048; i += 64)
        pidx_insert(x, 0, k + i, 64);
    CHECK_EQ(pidx_pod_blocks(x, 0), 2048);
    uint32_t chain = longest_chain(x);
    printf("  longest bucket chain for 2048 crafted keys: %u\n", chain);
    CHECK(chain <= 16);
    /* two indexes (two processes) hash differently */
    struct prefix_index *y = pidx_new(1, 4096, 4096);
    int differ = 0;
    for (uint32_t i = 0; i < 64; i++)
        differ += bucket(x, k[i]) != bucket(y, k[i]);
    CHECK(differ > 32);
    pidx_free(y);
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

/* An independent model of the index (per-pod LRU by timestamp, linear
 * scans) against the real one over random shared-prefix traffic with
 * evictions: every pod's match must agree, which checks the bisecting
 * lookup and the prefix-closed invariant it rests on. */
#define MP 16
#define MCAP 60
struct model_pod {
    uint64_t key[MCAP];
    uint64_t ts[MCAP];
    int n;
};
static uint64_t model_clock;

static int model_find(struct model_pod *p, uint64_t k)
{
    for (int i = 0; i < p->n; i++)
        if (p->key[i] == k)
            return i;
    return -1;
}

static void model_insert(struct model_pod *p, const uint64_t *keys, int n)
{
    for (int k = n - 1; k >= 0; k--) {
        int i = model_find(p, keys[k]);
        if (i < 0) {
            if (p->n == MCAP) {
                int old = 0;
                for (int j = 1; j < p->n; j++)
                    if (p->ts[j] < p->ts[old])
                        old = j;
                i = old;
            } else {
                i = p->n++;
            }
            p->key[i] = keys[k];
        }
        p->ts[i] = ++model_clock;
    }
}

static uint64_t rnd_state = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (uint32_t)(rnd_state % n);
}

TEST(bisecting_lookup_matches_a_linear_model)
{
    static struct model_pod mp[MP];
    struct prefix_index *x = pidx_new(MP, 100000, MCAP);
    uint64_t q[48];
    uint16_t m[MP];
    int mismatches = 0, nonzero = 0, multi = 0;
    for (int op = 0; op < 4000; op++) {
        /* a prompt: one of 12 groups' chains, diverging at a random block
         * into a request-unique tail (chained keys: the tail differs from
         * the divergence point on) */
        int g = (int)rnd(12), len = 1 + (int)rnd(48), div = (int)rnd((uint32_t)len + 1);
        for (int i = 0; i < len; i++)
            q[i] = i < div ? K(g + 1, i) : K(1000 + op, i);
        uint32_t best = pidx_lookup(x, q, (size_t)len, m);
        uint32_t want_best = 0;
        int holders = 0;
        for (int p = 0; p < MP; p++) {
            int w = 0;
            while (w < len && model_find(&mp[p], q[w]) >= 0)
                w++;
            if (m[p] != w)
                mismatches++;
            if ((uint32_t)w > want_best)
                want_best = (uint32_t)w;
            holders += w > 0;
        }
        CHECK_EQ(best, want_best);
        nonzero += want_best > 0;
        multi += holders > 1;
        int pod = (int)rnd(MP);
        pidx_insert(x, (uint32_t)pod, q, (size_t)len);
        model_insert(&mp[pod], q, len);
    }
    CHECK_EQ(mismatches, 0);
    /* the traffic exercised what it should: hits, several holders */
    CHECK(nonzero > 1000);
    CHECK(multi > 500);
    pidx_free(x);
}

/* Each allocation of pidx_new failed in turn: NULL with ENOMEM and what
 * was allocated before it freed. Then an index that works. */
TEST(oom_new_fails_each_allocation_in_turn)
{
    long n;
    for (n = 0; n < 32; n++) {
        alloc_fail_after(n);
        errno = 0;
        struct prefix_index *x = pidx_new(4, 256, 64);
        if (x) {
            CHECK_EQ(alloc_failures(), 0);
            uint64_t keys[3] = {11, 12, 13};
            uint16_t match[4];
            pidx_insert(x, 1, keys, 3);
            CHECK_EQ(pidx_lookup(x, keys, 3, match), 3);
            pidx_free(x);
            break;
        }
        CHECK_EQ(errno, ENOMEM);
        CHECK_EQ(alloc_live(), 0);
    }
    printf("  pidx_new: %ld allocations, each failed once\n", n);
    CHECK(n > 1 && n < 32);
    CHECK_EQ(alloc_live(), 0);
    /* one allocation failing while those after it succeed */
    for (long k = 2; k <= n; k++) {
        alloc_fail_every(k);
        struct prefix_index *x = pidx_new(4, 256, 64);
        CHECK(x == NULL);
        CHECK_EQ(alloc_live(), 0);
        pidx_free(x);
    }
    alloc_unhook();
}

/* Inserting and looking up never allocate: they work with every
 * allocation failing. */
TEST(oom_insert_lookup_do_not_allocate)
{
    alloc_fail_never();
    struct prefix_index *x = pidx_new(4, 256, 64);
    CHECK(x != NULL);
    alloc_fail_after(0);
    uint64_t keys[4] = {21, 22, 23, 24};
    uint16_t match[4];
    pidx_set_capacity(x, 2, 100);
    pidx_insert(x, 2, keys, 4);
    CHECK_EQ(pidx_lookup(x, keys, 4, match), 4);
    CHECK_EQ(match[2], 4);
    pidx_purge_pod(x, 2);
    CHECK_EQ(pidx_lookup(x, keys, 4, match), 0);
    CHECK_EQ(alloc_calls(), 0);
    pidx_free(x);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

int main(void)
{
    RUN(lookup_counts_leading_blocks_per_pod);
    RUN(withdraw_takes_back_a_credit);
    RUN(holes_stop_the_match);
    RUN(lru_capacity_evicts_oldest_chain_tail_first);
    RUN(reinsert_refreshes_recency);
    RUN(shared_pool_bounded_and_purge);
    RUN(one_pod_cannot_starve_the_others);
    RUN(bucket_hashing_is_seeded);
    RUN(bad_arguments);
    RUN(bisecting_lookup_matches_a_linear_model);
    RUN(oom_new_fails_each_allocation_in_turn);
    RUN(oom_insert_lookup_do_not_allocate);
    return harness_done();
}
