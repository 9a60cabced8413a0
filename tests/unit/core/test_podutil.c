/* Unit tests for user/core/podutil.c: busy time, occupancy, token deltas
 * across a counter reset, cost accrual and the attribution rate. */
#include "harness.h"
#include "core/engine_metrics.h"
#include "core/podutil.h"

#include <math.h>
#include <string.h>

#define S 1000000000ull

static struct engine_load el(double running, uint64_t prompt, uint64_t hits, uint64_t gen)
{
    struct engine_load l;
    memset(&l, 0, sizeof(l));
    l.running = running;
    l.prompt_tokens = prompt;
    l.prefix_hits = hits;
    l.prefix_queries = prompt;
    l.generation_tokens = gen;
    l.have = HAVE_RUNNING | HAVE_TOKENS | HAVE_PREFIX;
    return l;
}

TEST(busy_time_is_the_trapezoid)
{
    struct podutil u;
    podutil_init(&u, -1, 128, 0);
    struct engine_load a = el(0, 0, 0, 0), b = el(4, 0, 0, 0);
    podutil_scrape(&u, &a, 1 * S);   /* first: no interval yet */
    podutil_scrape(&u, &a, 2 * S);   /* idle - idle: 0 of 1 s */
    podutil_scrape(&u, &b, 3 * S);   /* idle - busy: half of 1 s */
    podutil_scrape(&u, &b, 5 * S);   /* busy - busy: 2 s */
    CHECK_NEAR(u.seconds, 4, 1e-9);
    CHECK_NEAR(u.busy_seconds, 2.5, 1e-9);
    CHECK_NEAR(u.occupancy, 4.0 / 128, 1e-12);
    CHECK(u.busy_ratio > 0.5 && u.busy_ratio < 0.75); /* recent time weighs more */
    CHECK_NEAR(podutil_rate(&u), -1, 0); /* unpriced */
}

TEST(tokens_computed_and_cached_and_a_restart)
{
    struct podutil u;
    podutil_init(&u, -1, 0, 0);
    CHECK_EQ(u.max_num_seqs, 256);
    struct engine_load a = el(1, 1000, 400, 50);
    podutil_scrape(&u, &a, 1 * S); /* the baseline: nothing counted */
    CHECK_NEAR(u.prefill_computed + u.prefill_cached + u.decoded, 0, 0);
    a = el(1, 3000, 1400, 150);
    podutil_scrape(&u, &a, 2 * S);
    CHECK_NEAR(u.prefill_computed, 1000, 1e-9); /* 2000 prompt, 1000 of them hits */
    CHECK_NEAR(u.prefill_cached, 1000, 1e-9);
    CHECK_NEAR(u.decoded, 100, 1e-9);
    a = el(1, 500, 100, 20); /* the engine restarted: counters from 0 */
    podutil_scrape(&u, &a, 3 * S);
    CHECK_NEAR(u.prefill_computed, 1400, 1e-9);
    CHECK_NEAR(u.prefill_cached, 1100, 1e-9);
    CHECK_NEAR(u.decoded, 120, 1e-9);
    /* a page without the token counters leaves them alone */
    a = el(1, 0, 0, 0);
    a.have = HAVE_RUNNING;
    podutil_scrape(&u, &a, 4 * S);
    CHECK_NEAR(u.prefill_computed, 1400, 1e-9);
}

TEST(a_first_page_without_tokens_is_no_baseline)
{
    struct podutil u;
    podutil_init(&u, -1, 8, 0);
    struct engine_load a = el(1, 0, 0, 0);
    a.have = HAVE_RUNNING;
    podutil_scrape(&u, &a, 1 * S);
    a = el(1, 1000000, 0, 5000); /* the engine's whole history: not ours */
    podutil_scrape(&u, &a, 2 * S);
    CHECK_NEAR(u.prefill_computed, 0, 0);
    a = el(1, 1000100, 0, 5010);
    podutil_scrape(&u, &a, 3 * S);
    CHECK_NEAR(u.prefill_computed, 100, 1e-9);
    CHECK_NEAR(u.decoded, 10, 1e-9);
}

TEST(busy_cost_is_split_over_computed_tokens)
{
    struct podutil u;
    podutil_init(&u, 3.6, 256, 0); /* 3.6 an hour: 0.001 a second */
    struct engine_load a = el(1, 0, 0, 0);
    podutil_scrape(&u, &a, 0);
    CHECK_NEAR(podutil_rate(&u), -1, 0);
    /* 10 s busy (running at both ends), 1000 tokens computed: 1500 prompt,
     * 600 of them cached, 100 decoded */
    a = el(1, 1500, 600, 100);
    podutil_scrape(&u, &a, 10 * S);
    CHECK_NEAR(u.cost, 0.01, 1e-12);
    CHECK_NEAR(u.busy_cost, 0.01, 1e-12);
    CHECK_NEAR(u.idle_cost, 0, 1e-12);
    CHECK_NEAR(podutil_rate(&u), 0.01 / 1000, 1e-12);
    /* idle at the next scrape: half the interval busy; no tokens */
    a = el(0, 1500, 600, 100);
    podutil_scrape(&u, &a, 20 * S);
    CHECK_NEAR(u.cost, 0.02, 1e-12);
    CHECK_NEAR(u.busy_cost, 0.015, 1e-12);
    CHECK_NEAR(u.idle_cost, 0.005, 1e-12);
    double k = exp(-10.0 / 10);
    CHECK_NEAR(podutil_rate(&u), (0.01 * k + 0.005) / (1000 * k), 1e-12);
    /* time passes with no scrape: it is paid, and idle */
    podutil_accrue(&u, 30 * S);
    CHECK_NEAR(u.cost, 0.03, 1e-12);
    CHECK_NEAR(u.idle_cost, 0.015, 1e-12);
    /* the same busy time over twice the tokens: half the rate (batching) */
    struct podutil v;
    podutil_init(&v, 3.6, 256, 0);
    a = el(1, 0, 0, 0);
    podutil_scrape(&v, &a, 0);
    a = el(1, 2100, 0, 100);
    podutil_scrape(&v, &a, 10 * S);
    CHECK_NEAR(podutil_rate(&v), 0.01 / 2200, 1e-12);
    /* cached tokens cost nothing: 2000 prompt all cached, 100 decoded */
    struct podutil w;
    podutil_init(&w, 3.6, 256, 0);
    a = el(1, 0, 0, 0);
    podutil_scrape(&w, &a, 0);
    a = el(1, 2000, 2000, 100);
    podutil_scrape(&w, &a, 10 * S);
    CHECK_NEAR(w.prefill_computed, 0, 0);
    CHECK_NEAR(podutil_rate(&w), 0.01 / 100, 1e-12);
}

TEST(accrual_is_monotone_in_time)
{
    struct podutil u;
    podutil_init(&u, 36, 256, 5 * S);
    podutil_accrue(&u, 4 * S); /* a clock going back accrues nothing */
    CHECK_NEAR(u.cost, 0, 0);
    podutil_accrue(&u, 6 * S);
    CHECK_NEAR(u.cost, 0.01, 1e-12);
    podutil_accrue(&u, 6 * S);
    CHECK_NEAR(u.cost, 0.01, 1e-12);
}

int main(void)
{
    RUN(busy_time_is_the_trapezoid);
    RUN(tokens_computed_and_cached_and_a_restart);
    RUN(a_first_page_without_tokens_is_no_baseline);
    RUN(busy_cost_is_split_over_computed_tokens);
    RUN(accrual_is_monotone_in_time);
    return harness_done();
}
