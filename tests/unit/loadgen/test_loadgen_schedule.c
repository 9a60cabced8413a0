/* Unit tests for bench/loadgen/schedule.c: open-loop arrival processes. */
#include "harness.h"

#include <stdlib.h>

#include "../../../bench/loadgen/schedule.c"

#define N 20000

/* mean rate n / t_n, and the coefficient of variation of the gaps */
static void moments(const double *t, size_t n, double *rate, double *cv)
{
    double sum = 0, sum2 = 0, prev = 0;
    for (size_t i = 0; i < n; i++) {
        double g = t[i] - prev;
        prev = t[i];
        sum += g;
        sum2 += g * g;
    }
    double mean = sum / (double)n, var = sum2 / (double)n - mean * mean;
    *rate = (double)n / t[n - 1];
    *cv = sqrt(var) / mean;
}

TEST(poisson_rate_and_cv)
{
    static double t[N];
    struct lg_sched_cfg c = { .kind = LG_ARR_POISSON, .rate = 50, .seed = 1 };
    CHECK_EQ(lg_schedule(&c, 0, N, t), N);
    double rate, cv;
    moments(t, N, &rate, &cv);
    CHECK_NEAR(rate, 50, 50 * 0.03);
    CHECK_NEAR(cv, 1.0, 0.05);
    for (size_t i = 1; i < N; i++)
        if (!(t[i] >= t[i - 1])) {
            CHECK(t[i] >= t[i - 1]);
            break;
        }
}

TEST(poisson_other_seeds)
{
    static double t[N];
    for (uint64_t seed = 2; seed < 6; seed++) {
        struct lg_sched_cfg c = { .kind = LG_ARR_POISSON, .rate = 7.5, .seed = seed };
        CHECK_EQ(lg_schedule(&c, 0, N, t), N);
        double rate, cv;
        moments(t, N, &rate, &cv);
        CHECK_NEAR(rate, 7.5, 7.5 * 0.03);
        CHECK_NEAR(cv, 1.0, 0.05);
    }
}

TEST(gamma_burstiness_quarter_cv_two)
{
    static double t[N];
    struct lg_sched_cfg c = { .kind = LG_ARR_GAMMA, .rate = 20, .burstiness = 0.25, .seed = 1 };
    CHECK_EQ(lg_schedule(&c, 0, N, t), N);
    double rate, cv;
    moments(t, N, &rate, &cv);
    CHECK_NEAR(cv, 2.0, 0.1); /* 1/sqrt(0.25) */
    CHECK_NEAR(rate, 20, 20 * 0.03);
}

TEST(gamma_shapes)
{
    static double t[N];
    const double shapes[] = { 0.5, 1.0, 4.0 };
    for (size_t k = 0; k < 3; k++) {
        struct lg_sched_cfg c = { .kind = LG_ARR_GAMMA, .rate = 10, .burstiness = shapes[k],
                                  .seed = 3 };
        CHECK_EQ(lg_schedule(&c, 0, N, t), N);
        double rate, cv;
        moments(t, N, &rate, &cv);
        CHECK_NEAR(cv, 1.0 / sqrt(shapes[k]), 0.05 / sqrt(shapes[k]));
        CHECK_NEAR(rate, 10, 10 * 0.03);
    }
}

TEST(same_seed_same_schedule)
{
    static double a[N], b[N], d[N];
    struct lg_sched_cfg c = { .kind = LG_ARR_GAMMA, .rate = 33, .burstiness = 0.3, .seed = 42 };
    CHECK_EQ(lg_schedule(&c, 0, N, a), N);
    CHECK_EQ(lg_schedule(&c, 0, N, b), N);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
    c.seed = 43;
    CHECK_EQ(lg_schedule(&c, 0, N, d), N);
    CHECK(memcmp(a, d, sizeof(a)) != 0);
    c.kind = LG_ARR_POISSON;
    c.seed = 42;
    CHECK_EQ(lg_schedule(&c, 0, N, a), N);
    CHECK_EQ(lg_schedule(&c, 0, N, b), N);
    CHECK(memcmp(a, b, sizeof(a)) == 0);
}

TEST(horizon_and_max_bound_the_schedule)
{
    static double t[N];
    struct lg_sched_cfg c = { .kind = LG_ARR_POISSON, .rate = 100, .seed = 9 };
    size_t n = lg_schedule(&c, 10.0, N, t);
    CHECK(n > 900 && n < 1100); /* ~1000 in 10 s */
    CHECK(t[n - 1] < 10.0);
    CHECK_EQ(lg_schedule(&c, 0, 17, t), 17);
    /* rate 0: everything at t = 0, bounded by max */
    c.rate = 0;
    CHECK_EQ(lg_schedule(&c, 5.0, 100, t), 100);
    CHECK(t[0] == 0.0 && t[99] == 0.0);
}

TEST(arrival_names)
{
    enum lg_arrival a;
    CHECK(lg_arrival_parse("poisson", &a) == 0 && a == LG_ARR_POISSON);
    CHECK(lg_arrival_parse("gamma", &a) == 0 && a == LG_ARR_GAMMA);
    CHECK(lg_arrival_parse("uniform", &a) == -1);
}

int main(void)
{
    RUN(poisson_rate_and_cv);
    RUN(poisson_other_seeds);
    RUN(gamma_burstiness_quarter_cv_two);
    RUN(gamma_shapes);
    RUN(same_seed_same_schedule);
    RUN(horizon_and_max_bound_the_schedule);
    RUN(arrival_names);
    return harness_done();
}
