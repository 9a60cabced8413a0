/* Unit tests for user/core/report.c: per-group figures, defaults, the
 * bound, sorting, and out-of-memory. */
#include "harness.h"
#include "common/alloc.h"
#include "core/report.h"

#include <stdio.h>
#include <string.h>

#define S 1000000000ull

static struct report_row rows[REPORT_GROUPS_MAX + 1];

TEST(figures_per_group)
{
    struct report *r = report_new();
    struct report_key a = {"m", "t1", "chat", "canary"}, b = {"m", "t0", NULL, "baseline"};
    for (int i = 0; i < 100; i++) {
        struct report_sample s = {.error = i < 3, .ttft_ms = 10 + i, .itl_ms = 5,
                                  .prompt_tokens = 1000, .cached_tokens = 600,
                                  .completion_tokens = 10, .estimated = i % 2, .cost = 0.0011};
        report_record(r, &a, &s, (uint64_t)i * S / 10); /* 100 over 9.9 s */
    }
    struct report_sample u = {.ttft_ms = -1, .itl_ms = -1, .prompt_tokens = 50,
                              .cached_tokens = 80, .completion_tokens = 5, .cost = -1};
    report_record(r, &b, &u, 3 * S);
    CHECK_EQ(report_rows(r, rows, REPORT_GROUPS_MAX + 1), 2);
    /* sorted: t0 before t1 */
    CHECK_STR(rows[0].tenant, "t0");
    CHECK_STR(rows[0].cls, "default"); /* no class: default */
    CHECK_STR(rows[1].arm, "canary");
    const struct report_row *x = &rows[1];
    CHECK_EQ(x->requests, 100);
    CHECK_EQ(x->errors, 3);
    CHECK_EQ(x->estimated, 50);
    CHECK_NEAR(x->hit_rate, 0.6, 1e-12);
    CHECK(x->ttft_p50 >= 59 * 0.975 && x->ttft_p50 <= 59 * 1.025);
    CHECK(x->ttft_p99 >= 108 * 0.975 && x->ttft_p99 <= 108 * 1.025);
    CHECK(x->itl_p50 >= 5 * 0.975 && x->itl_p50 <= 5 * 1.025);
    CHECK_NEAR(x->tokens_per_s, 1000 / 9.9, 1e-9);
    CHECK_NEAR(x->cost, 0.11, 1e-12);
    CHECK_NEAR(x->cost_per_mtok, 0.11 / (100 * 1010.0) * 1e6, 1e-9);
    const struct report_row *y = &rows[0];
    CHECK_EQ(y->cached_tokens, 50); /* cached capped at prompt */
    CHECK_NEAR(y->cost_per_mtok, -1, 0); /* never charged */
    CHECK_NEAR(y->ttft_p50, -1, 0);
    CHECK_NEAR(y->tokens_per_s, 0, 0); /* one request: no span */
    report_free(r);
}

TEST(bounded)
{
    struct report *r = report_new();
    char t[32];
    for (int i = 0; i < REPORT_GROUPS_MAX + 100; i++) {
        snprintf(t, sizeof(t), "t%04d", i);
        struct report_key k = {"m", t, "c", "a"};
        struct report_sample s = {.ttft_ms = 1, .itl_ms = -1, .cost = -1};
        report_record(r, &k, &s, 1);
    }
    int n = report_rows(r, rows, REPORT_GROUPS_MAX + 1);
    CHECK_EQ(n, REPORT_GROUPS_MAX + 1);
    uint64_t other = 0, all = 0;
    for (int i = 0; i < n; i++) {
        all += rows[i].requests;
        if (!strcmp(rows[i].model, "other"))
            other = rows[i].requests;
    }
    CHECK_EQ(all, REPORT_GROUPS_MAX + 100);
    CHECK_EQ(other, 100);
    report_free(r);
}

TEST(out_of_memory_loses_the_sample_only)
{
    struct report *r = report_new();
    struct report_key k = {"m", "t", "c", "a"};
    struct report_sample s = {.ttft_ms = 1, .itl_ms = -1, .cost = -1};
    alloc_fail_after(0);
    report_record(r, &k, &s, 1);
    alloc_unhook();
    CHECK_EQ(report_rows(r, rows, 4), 0);
    report_record(r, &k, &s, 1);
    CHECK_EQ(report_rows(r, rows, 4), 1);
    report_free(r);
}

int main(void)
{
    RUN(figures_per_group);
    RUN(bounded);
    RUN(out_of_memory_loses_the_sample_only);
    return harness_done();
}
