/* Unit tests for user/core/outlier.c: ejection, backoff, retry budget. */
#include "harness.h"
#include "core/outlier.h"

#include <string.h>

#define S 1000000000ull
#define MSEC 1000000ull

static struct outlier o;
static struct pod_counters cnt;

static void setup(void)
{
    memset(&cnt, 0, sizeof(cnt));
    outlier_init(&o, NULL);
}

TEST(consecutive_failures_eject)
{
    setup();
    uint64_t t = 100 * S;
    for (int i = 0; i < 4; i++)
        CHECK_EQ(outlier_record(&o, &cnt, 3, 0, t + (uint64_t)i), 0);
    CHECK(!outlier_ejected(&cnt, 3, t + 10));
    CHECK_EQ(outlier_record(&o, &cnt, 3, 0, t + 10), 1); /* the 5th in a row */
    CHECK(outlier_ejected(&cnt, 3, t + 11));
    CHECK(outlier_ejected(&cnt, 3, t + 5 * S - 1));
    CHECK(!outlier_ejected(&cnt, 3, t + 10 + 5 * S)); /* base 5 s */
    CHECK_EQ(atomic_load(&cnt.ejections[3]), 1);
    CHECK_EQ(atomic_load(&cnt.last_fail_ns[3]), t + 10);
    /* failures of requests already under way do not eject again */
    for (int i = 0; i < 10; i++)
        CHECK_EQ(outlier_record(&o, &cnt, 3, 0, t + 20), 0);
    CHECK_EQ(atomic_load(&cnt.ejections[3]), 1);
    /* other slots untouched */
    CHECK(!outlier_ejected(&cnt, 2, t + 11));
}

TEST(a_success_breaks_the_run)
{
    setup();
    uint64_t t = 100 * S;
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < 4; i++)
            outlier_record(&o, &cnt, 1, 0, t);
        outlier_record(&o, &cnt, 1, 1, t);
    }
    /* 20 of 25 failed: the ratio (0.5 over >= 10) ejects even so */
    CHECK(outlier_ejected(&cnt, 1, t + 1));
    setup();
    o.cfg.ratio = 0; /* the run alone never reaches 5 */
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < 4; i++)
            outlier_record(&o, &cnt, 1, 0, t);
        outlier_record(&o, &cnt, 1, 1, t);
    }
    CHECK(!outlier_ejected(&cnt, 1, t + 1));
}

TEST(failure_ratio_over_a_window)
{
    setup();
    o.cfg.consecutive = 0;
    uint64_t t = 100 * S;
    /* alternate: 50% failures, never two in a row */
    for (int i = 0; i < 9; i++)
        CHECK_EQ(outlier_record(&o, &cnt, 0, i % 2, t), 0);
    CHECK(!outlier_ejected(&cnt, 0, t)); /* 9 < min_requests */
    CHECK_EQ(outlier_record(&o, &cnt, 0, 0, t), 1); /* 10th: 5 of 10 failed */
    /* a low share never ejects */
    setup();
    o.cfg.consecutive = 0;
    for (int i = 0; i < 100; i++)
        outlier_record(&o, &cnt, 0, i % 5 != 0, t);
    CHECK(!outlier_ejected(&cnt, 0, t));
    /* windows do not add up: 4 failures in each of many windows */
    setup();
    o.cfg.consecutive = 0;
    for (int w = 0; w < 10; w++) {
        uint64_t tw = t + (uint64_t)w * 11 * S;
        for (int i = 0; i < 6; i++)
            outlier_record(&o, &cnt, 0, 1, tw);
        for (int i = 0; i < 5; i++)
            outlier_record(&o, &cnt, 0, 0, tw);
    }
    CHECK(!outlier_ejected(&cnt, 0, t + 200 * S) && atomic_load(&cnt.ejections[0]) == 0);
}

TEST(backoff_doubles_then_resets)
{
    setup();
    uint64_t t = 100 * S;
    uint64_t durs[4];
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 5; i++)
            outlier_record(&o, &cnt, 7, 0, t);
        durs[k] = atomic_load(&cnt.ejected_until_ns[7]) - t;
        t += durs[k] + 1;
    }
    CHECK_EQ(durs[0], 5 * S);
    CHECK_EQ(durs[1], 10 * S);
    CHECK_EQ(durs[2], 20 * S);
    CHECK_EQ(durs[3], 40 * S);
    /* capped */
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < 5; i++)
            outlier_record(&o, &cnt, 7, 0, t);
        t = atomic_load(&cnt.ejected_until_ns[7]) + 1;
    }
    for (int i = 0; i < 5; i++)
        outlier_record(&o, &cnt, 7, 0, t);
    CHECK_EQ(atomic_load(&cnt.ejected_until_ns[7]) - t, 300 * S);
    /* well-behaved for longer than max_ms: back to the base */
    t = atomic_load(&cnt.ejected_until_ns[7]) + 301 * S;
    for (int i = 0; i < 5; i++)
        outlier_record(&o, &cnt, 7, 0, t);
    CHECK_EQ(atomic_load(&cnt.ejected_until_ns[7]) - t, 5 * S);
    /* a new pod in the slot starts clean */
    outlier_reset(&o, &cnt, 7);
    CHECK(!outlier_ejected(&cnt, 7, t));
    CHECK_EQ(atomic_load(&cnt.last_fail_ns[7]), 0);
}

TEST(retry_budget_is_a_share_of_requests)
{
    setup();
    struct outlier_cfg c = o.cfg;
    c.min_per_second = 0; /* the burst's floor is one retry */
    outlier_init(&o, &c);
    uint64_t t = 100 * S;
    int got = 0;
    while (retry_budget_take(&o, t))
        got++;
    CHECK_EQ(got, 1); /* the burst */
    for (int i = 0; i < 1000; i++)
        retry_budget_deposit(&o);
    got = 0;
    while (retry_budget_take(&o, t))
        got++;
    /* 20% of 1000 = 200, capped at 100 requests' worth + the burst */
    CHECK(got >= 20 && got <= 21);
    /* steady state: 100 requests allow 20 retries */
    got = 0;
    for (int i = 0; i < 100; i++) {
        retry_budget_deposit(&o);
        got += retry_budget_take(&o, t);
    }
    CHECK(got >= 19 && got <= 21);
}

TEST(retry_budget_minimum_rate)
{
    setup(); /* 5 per second, burst 50 */
    uint64_t t = 100 * S;
    int got = 0;
    while (retry_budget_take(&o, t))
        got++;
    CHECK_EQ(got, 50);
    CHECK_EQ(retry_budget_take(&o, t + 100 * MSEC), 0); /* 0.5 retries credited */
    CHECK_EQ(retry_budget_take(&o, t + 200 * MSEC), 1); /* 1.0 */
    got = 0;
    for (uint64_t k = 1; k <= 100; k++) /* 10 s more, polled every 100 ms */
        got += retry_budget_take(&o, t + 200 * MSEC + k * 100 * MSEC);
    CHECK(got >= 49 && got <= 51);
}

int main(void)
{
    RUN(consecutive_failures_eject);
    RUN(a_success_breaks_the_run);
    RUN(failure_ratio_over_a_window);
    RUN(backoff_doubles_then_resets);
    RUN(retry_budget_is_a_share_of_requests);
    RUN(retry_budget_minimum_rate);
    return harness_done();
}
