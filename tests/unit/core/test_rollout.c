/* Unit tests for user/core/rollout.c: the guarded canary's state machine
 * (each step, pass, fail on one tenant, abort, restart, pause), its
 * judgement arithmetic and its bounded book. */
#include "harness.h"
#include "core/rollout.h"
#include "common/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MS 1000000ull

static struct rollout_cfg cfg(void)
{
    struct rollout_cfg c;
    rollout_defaults(&c);
    c.hold_ms = 1000;
    c.min_samples = 20;
    return c;
}

/* n requests per arm for tenant t, class k, with the given TTFT / ITL /
 * error share / hit rate (prompt 1000 tokens each) */
static void feed(struct rollout *r, const char *t, const char *k, enum ro_arm arm, int n,
                 double ttft, double itl, double err, double hit)
{
    for (int i = 0; i < n; i++) {
        struct ro_sample s = {
            .error = i < (int)(err * n + 0.5), .ttft_ms = ttft * (1 + 0.01 * (i % 7)),
            .itl_ms = itl, .prompt_tokens = 1000, .cached_tokens = (uint64_t)(hit * 1000),
        };
        rollout_record(r, t, k, arm, &s);
    }
}

static void both(struct rollout *r, const char *t, const char *k, int n, double ttft)
{
    feed(r, t, k, RO_BASELINE, n, ttft, 10, 0, 0.5);
    feed(r, t, k, RO_CANARY, n, ttft, 10, 0, 0.5);
}

TEST(defaults_and_cfg_check)
{
    struct rollout_cfg c;
    rollout_defaults(&c);
    const char *why = NULL;
    CHECK_EQ(rollout_cfg_check(&c, &why), 0);
    CHECK_EQ(c.nsteps, 5);
    CHECK_NEAR(c.steps[0], 1, 1e-9);
    CHECK_NEAR(c.steps[4], 100, 1e-9);
    c.steps[2] = 4; /* 1, 5, 4: not increasing */
    CHECK_EQ(rollout_cfg_check(&c, &why), -EINVAL);
    CHECK(why && strstr(why, "increasing"));
    rollout_defaults(&c);
    c.steps[4] = 90;
    CHECK_EQ(rollout_cfg_check(&c, &why), -EINVAL);
    CHECK(strstr(why, "100"));
    rollout_defaults(&c);
    c.tol_hit = -0.1;
    CHECK_EQ(rollout_cfg_check(&c, &why), -EINVAL);
    rollout_defaults(&c);
    c.nsteps = 1;
    CHECK_EQ(rollout_cfg_check(&c, &why), -EINVAL);
    CHECK(rollout_new(&c) == NULL);
}

TEST(idle_until_started)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    CHECK(r != NULL);
    CHECK_NEAR(rollout_share(r), -1, 1e-9);
    both(r, "a", "x", 100, 50); /* ignored while idle */
    CHECK_EQ(rollout_group(r, 0, (char[8]){0}, (char[RO_NAME_MAX]){0}, (struct ro_figures[2]){0}), 0);
    CHECK_EQ(rollout_tick(r, 10000 * MS), RO_EV_NONE);
    CHECK_EQ(rollout_pause(r, 0), -EINVAL);
    CHECK_EQ(rollout_resume(r, 0), -EINVAL);
    CHECK_EQ(rollout_abort(r, 0), -EINVAL);
    rollout_free(r);
}

TEST(every_step_passes_to_completion)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    uint64_t t = 5000 * MS;
    CHECK_EQ(rollout_start(r, t), 0);
    double want[] = {1, 5, 25, 50};
    for (int step = 0; step < 4; step++) {
        struct rollout_status st;
        rollout_status(r, t, &st);
        CHECK_EQ(st.state, RO_RUNNING);
        CHECK_EQ(st.step, step);
        CHECK_NEAR(rollout_share(r), want[step], 1e-9);
        both(r, "a", "x", 30, 50);
        both(r, "b", "y", 30, 80);
        /* before the hold is over nothing moves */
        CHECK_EQ(rollout_tick(r, t + 999 * MS), RO_EV_NONE);
        enum ro_event ev = rollout_tick(r, t + 1000 * MS);
        CHECK_EQ(ev, step < 3 ? RO_EV_ADVANCED : RO_EV_COMPLETED);
        rollout_status(r, t + 1000 * MS, &st);
        CHECK(strstr(st.last_step_result, "passed: 5 groups judged")); /* all, 2 tenants, 2 classes */
        t += 1000 * MS;
        /* each step starts with a fresh book */
        if (step < 3)
            CHECK_EQ(rollout_group(r, 0, (char[8]){0}, (char[RO_NAME_MAX]){0},
                                   (struct ro_figures[2]){0}), 0);
    }
    struct rollout_status st;
    rollout_status(r, t, &st);
    CHECK_EQ(st.state, RO_COMPLETE);
    CHECK_NEAR(rollout_share(r), 100, 1e-9);
    CHECK_EQ(st.completions, 1);
    CHECK_EQ(st.rollbacks, 0);
    CHECK(!st.has_verdict);
    rollout_free(r);
}

TEST(one_tenant_worse_rolls_back_and_names_it)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    uint64_t t = 0;
    rollout_start(r, t);
    /* step 0 passes */
    both(r, "a", "x", 40, 50);
    CHECK_EQ(rollout_tick(r, t + 1000 * MS), RO_EV_ADVANCED);
    t += 1000 * MS;
    /* step 1: tenant a gains, tenant b's canary TTFT p99 is 2x: the
     * average over both would pass (a's gain hides b's loss in "all"
     * for the mean, not for the p99 per tenant) */
    feed(r, "a", "x", RO_BASELINE, 200, 100, 10, 0, 0.5);
    feed(r, "a", "x", RO_CANARY, 200, 40, 10, 0, 0.5);
    feed(r, "b", "x", RO_BASELINE, 30, 60, 10, 0, 0.5);
    feed(r, "b", "x", RO_CANARY, 30, 120, 10, 0, 0.5);
    CHECK_EQ(rollout_tick(r, t + 1000 * MS), RO_EV_ROLLED_BACK);
    struct rollout_status st;
    rollout_status(r, t + 1000 * MS, &st);
    CHECK_EQ(st.state, RO_ROLLED_BACK);
    CHECK_NEAR(rollout_share(r), 0, 1e-9);
    CHECK(st.has_verdict);
    CHECK_STR(st.verdict.kind, "tenant");
    CHECK_STR(st.verdict.name, "b");
    CHECK_EQ(st.verdict.measure, RO_M_TTFT_P99);
    CHECK(st.verdict.canary > 120 * 1.04 && st.verdict.canary < 120 * 1.1); /* p99 of 120..126 */
    CHECK(st.verdict.baseline > 60 && st.verdict.baseline < 60 * 1.1);
    CHECK_NEAR(st.verdict.limit, st.verdict.baseline * 1.25 + 5, 1e-9);
    CHECK_EQ(st.verdict.n_canary, 30);
    CHECK_EQ(st.rollbacks, 1);
    CHECK(strstr(st.last_step_result, "step 1 (5%) failed: tenant b ttft_p99"));
    /* nothing moves after a rollback, samples are ignored */
    feed(r, "a", "x", RO_CANARY, 50, 40, 10, 0, 0.5);
    CHECK_EQ(rollout_tick(r, t + 5000 * MS), RO_EV_NONE);
    CHECK_NEAR(rollout_share(r), 0, 1e-9);
    /* restart: from step 0, the verdict cleared */
    CHECK_EQ(rollout_start(r, t + 6000 * MS), 0);
    rollout_status(r, t + 6000 * MS, &st);
    CHECK_EQ(st.state, RO_RUNNING);
    CHECK_EQ(st.step, 0);
    CHECK(!st.has_verdict);
    CHECK_NEAR(rollout_share(r), 1, 1e-9);
    rollout_free(r);
}

TEST(the_worst_failure_is_named)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    /* tenant a: canary TTFT p99 1.6x (limit 1.25x + 5 ms); tenant b: 10x */
    feed(r, "a", "x", RO_BASELINE, 100, 100, 10, 0, 0.5);
    feed(r, "a", "x", RO_CANARY, 100, 160, 10, 0, 0.5);
    feed(r, "b", "y", RO_BASELINE, 30, 100, 10, 0, 0.5);
    feed(r, "b", "y", RO_CANARY, 30, 1000, 10, 0, 0.5);
    CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_ROLLED_BACK);
    struct rollout_status st;
    rollout_status(r, 1000 * MS, &st);
    CHECK_STR(st.verdict.name, "b");
    CHECK(st.verdict.severity > 20); /* (1000 - 135) / 30 or so */
    /* a, b, class x, class y and all failed */
    CHECK_EQ(st.verdict.failed_checks, 5);
    CHECK(strstr(st.last_step_result, "tenant b ttft_p99 (5 of 5 groups)"));
    rollout_free(r);
}

TEST(each_measure_fails_on_its_own)
{
    struct rollout_cfg c = cfg();
    for (int m = 0; m < RO_M__COUNT; m++) {
        struct rollout *r = rollout_new(&c);
        rollout_start(r, 0);
        feed(r, "t", "k", RO_BASELINE, 100, 50, 10, 0.02, 0.6);
        double ttft = m == RO_M_TTFT_P99 ? 50 * 1.4 : 50 * 1.1;  /* 1.1x: inside 1.25 */
        double itl = m == RO_M_ITL_P50 ? 10 * 1.8 : 10 * 1.2;    /* 12 <= 12.5 + 5 */
        double err = m == RO_M_ERRORS ? 0.05 : 0.03;              /* +1 point passes */
        double hit = m == RO_M_HIT ? 0.5 : 0.56;                  /* -4 points passes */
        feed(r, "t", "k", RO_CANARY, 100, ttft, itl, err, hit);
        CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_ROLLED_BACK);
        struct rollout_status st;
        rollout_status(r, 1000 * MS, &st);
        CHECK_EQ(st.verdict.measure, m);
        CHECK_STR(st.verdict.kind, "tenant"); /* the most specific group is named */
        CHECK_STR(st.verdict.name, "t");
        rollout_free(r);
    }
    /* the same figures with every measure inside its tolerance pass */
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    feed(r, "t", "k", RO_BASELINE, 100, 50, 10, 0.02, 0.6);
    feed(r, "t", "k", RO_CANARY, 100, 55, 12, 0.03, 0.56);
    CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_ADVANCED);
    rollout_free(r);
}

TEST(too_few_samples_holds_the_step)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    feed(r, "a", "x", RO_BASELINE, 100, 50, 10, 0, 0.5);
    feed(r, "a", "x", RO_CANARY, 19, 500, 10, 0, 0.5); /* one short of min_samples */
    CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_NONE);
    struct rollout_status st;
    rollout_status(r, 1500 * MS, &st);
    CHECK(st.waiting_samples);
    CHECK_EQ(st.step, 0);
    feed(r, "a", "x", RO_CANARY, 1, 500, 10, 0, 0.5);
    CHECK_EQ(rollout_tick(r, 1600 * MS), RO_EV_ROLLED_BACK);
    rollout_free(r);

    /* a small tenant below min_samples is not judged; the others are */
    r = rollout_new(&c);
    rollout_start(r, 0);
    both(r, "big", "x", 50, 50);
    /* small's canary hits nothing (baseline 50%): judged alone it would
     * fail, but 5 requests per arm are below min_samples; in "all" and
     * class x the loss is 4.5 points, inside the 5-point tolerance */
    feed(r, "small", "x", RO_BASELINE, 5, 50, 10, 0, 0.5);
    feed(r, "small", "x", RO_CANARY, 5, 50, 10, 0, 0.0);
    CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_ADVANCED);
    rollout_status(r, 1000 * MS, &st);
    CHECK(strstr(st.last_step_result, "passed: 3 groups judged")); /* all, big, x */
    /* and with min_samples at 5 the same traffic fails on small */
    c.min_samples = 5;
    rollout_free(r);
    r = rollout_new(&c);
    rollout_start(r, 0);
    both(r, "big", "x", 50, 50);
    feed(r, "small", "x", RO_BASELINE, 5, 50, 10, 0, 0.5);
    feed(r, "small", "x", RO_CANARY, 5, 50, 10, 0, 0.0);
    CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_ROLLED_BACK);
    rollout_status(r, 1000 * MS, &st);
    CHECK_STR(st.verdict.name, "small");
    CHECK_EQ(st.verdict.measure, RO_M_HIT);
    rollout_free(r);
}

TEST(pause_stops_the_clock_and_abort_zeroes_the_share)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    both(r, "a", "x", 30, 50);
    CHECK_EQ(rollout_pause(r, 600 * MS), 0);
    CHECK_EQ(rollout_pause(r, 600 * MS), -EALREADY);
    CHECK_EQ(rollout_tick(r, 5000 * MS), RO_EV_NONE); /* paused: no judgement */
    CHECK_NEAR(rollout_share(r), 1, 1e-9);           /* the step's share holds */
    CHECK_EQ(rollout_resume(r, 10000 * MS), 0);
    CHECK_EQ(rollout_resume(r, 10000 * MS), -EALREADY);
    CHECK_EQ(rollout_tick(r, 10399 * MS), RO_EV_NONE); /* 600 + 399 ms run */
    CHECK_EQ(rollout_tick(r, 10400 * MS), RO_EV_ADVANCED);
    CHECK_EQ(rollout_abort(r, 10500 * MS), 0);
    CHECK_EQ(rollout_abort(r, 10500 * MS), -EALREADY);
    struct rollout_status st;
    rollout_status(r, 10500 * MS, &st);
    CHECK_EQ(st.state, RO_ABORTED);
    CHECK_NEAR(rollout_share(r), 0, 1e-9);
    CHECK(strstr(st.last_step_result, "aborted"));
    CHECK_EQ(rollout_pause(r, 0), -EINVAL);
    CHECK_EQ(rollout_reset(r), 0); /* back to the configured share */
    CHECK_NEAR(rollout_share(r), -1, 1e-9);
    rollout_status(r, 10600 * MS, &st);
    CHECK_EQ(st.state, RO_IDLE);
    CHECK_EQ(rollout_start(r, 20000 * MS), 0);
    CHECK_EQ(rollout_reset(r), -EINVAL); /* running: abort first */
    CHECK_NEAR(rollout_share(r), 1, 1e-9);
    rollout_free(r);
}

TEST(quantiles_are_within_a_bucket)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    for (int i = 1; i <= 1000; i++) {
        struct ro_sample s = {.ttft_ms = i, .itl_ms = i * 0.1, .prompt_tokens = 10, .cached_tokens = 20};
        rollout_record(r, "a", "x", RO_CANARY, &s);
    }
    char kind[8], name[RO_NAME_MAX];
    struct ro_figures f[2];
    CHECK_EQ(rollout_group(r, 0, kind, name, f), 3);
    CHECK_STR(kind, "all");
    CHECK_EQ(f[RO_CANARY].n, 1000);
    CHECK(f[RO_CANARY].ttft_p99 >= 990 * 0.975 && f[RO_CANARY].ttft_p99 <= 990 * 1.025);
    CHECK(f[RO_CANARY].itl_p50 >= 50 * 0.975 && f[RO_CANARY].itl_p50 <= 50 * 1.025);
    CHECK_EQ(f[RO_CANARY].cached_tokens, 10000); /* cached is capped at prompt */
    CHECK(f[RO_BASELINE].ttft_p99 < 0);         /* no sample */
    rollout_free(r);
}

TEST(the_book_is_bounded)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    char t[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(t, sizeof(t), "tenant-%d", i);
        struct ro_sample s = {.ttft_ms = 1};
        rollout_record(r, t, "x", RO_CANARY, &s);
    }
    int n = rollout_group(r, 0, (char[8]){0}, (char[RO_NAME_MAX]){0}, (struct ro_figures[2]){0});
    CHECK(n <= RO_GROUPS_MAX + 3);
    /* the overflow went to the tenants' "other", and "all" counted each */
    uint64_t other = 0, all = 0;
    for (int i = 0; i < n; i++) {
        char kind[8], name[RO_NAME_MAX];
        struct ro_figures f[2];
        rollout_group(r, i, kind, name, f);
        if (!strcmp(kind, "tenant") && !strcmp(name, "other"))
            other = f[RO_CANARY].n;
        if (!strcmp(kind, "all"))
            all = f[RO_CANARY].n;
    }
    CHECK_EQ(all, 1000);
    CHECK(other >= 1000 - RO_GROUPS_MAX);
    rollout_free(r);
}

TEST(out_of_memory_loses_samples_not_state)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    alloc_fail_after(0);
    both(r, "a", "x", 30, 50);
    alloc_unhook();
    CHECK_EQ(rollout_group(r, 0, (char[8]){0}, (char[RO_NAME_MAX]){0}, (struct ro_figures[2]){0}), 0);
    CHECK_EQ(rollout_tick(r, 1000 * MS), RO_EV_NONE); /* nothing to judge: holds */
    both(r, "a", "x", 30, 50);
    CHECK_EQ(rollout_tick(r, 1001 * MS), RO_EV_ADVANCED);
    rollout_free(r);
}

TEST(reload_keeps_the_step)
{
    struct rollout_cfg c = cfg();
    struct rollout *r = rollout_new(&c);
    rollout_start(r, 0);
    both(r, "a", "x", 30, 50);
    rollout_tick(r, 1000 * MS);
    both(r, "a", "x", 30, 50);
    rollout_tick(r, 2000 * MS);
    CHECK_NEAR(rollout_share(r), 25, 1e-9);
    struct rollout_cfg c2 = c;
    c2.nsteps = 2;
    c2.steps[0] = 10;
    c2.steps[1] = 100;
    CHECK_EQ(rollout_set_cfg(r, &c2), 0);
    CHECK_NEAR(rollout_share(r), 100, 1e-9); /* step 2 clamped to the last */
    c2.steps[1] = 50;
    CHECK_EQ(rollout_set_cfg(r, &c2), -EINVAL);
    rollout_free(r);
}

int main(void)
{
    RUN(defaults_and_cfg_check);
    RUN(idle_until_started);
    RUN(every_step_passes_to_completion);
    RUN(one_tenant_worse_rolls_back_and_names_it);
    RUN(the_worst_failure_is_named);
    RUN(each_measure_fails_on_its_own);
    RUN(too_few_samples_holds_the_step);
    RUN(pause_stops_the_clock_and_abort_zeroes_the_share);
    RUN(quantiles_are_within_a_bucket);
    RUN(the_book_is_bounded);
    RUN(out_of_memory_loses_samples_not_state);
    RUN(reload_keeps_the_step);
    return harness_done();
}
