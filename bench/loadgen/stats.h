/* stats: percentiles and the run's summary.
 *
 * Percentiles use linear interpolation between closest ranks (the
 * definition numpy uses by default, "method=linear"): for sorted x[0..n),
 * p in [0, 100], h = (n - 1) * p / 100, result = x[floor h] +
 * (h - floor h) * (x[floor h + 1] - x[floor h]). So p0 is the minimum,
 * p100 the maximum, and p50 of an even count is the mean of the middle two.
 *
 * All latencies in the summary are simulated milliseconds (wall / time
 * scale); rates are per simulated second. */
#ifndef KVGATE_BENCH_STATS_H
#define KVGATE_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "lg.h"

struct lg_run;

struct lg_dist {
    size_t n;
    double mean, min, p50, p90, p99, p999, max;
};

/* x sorted ascending, n > 0. */
double lg_percentile(const double *x, size_t n, double p);

/* Sorts v in place and fills d (all zero when n == 0). */
void lg_dist_of(double *v, size_t n, struct lg_dist *d);

struct lg_pod_stat {
    char name[LG_POD_MAX];
    size_t n, ok;
    uint64_t prompt, cached;
    double ttft_sum_ms;
};

#define LG_MAX_HTTP_STATUSES 16

struct lg_summary {
    double time_scale;
    double duration_s;    /* simulated: start -> last request finished */
    double wall_s;
    size_t total, sent, ok, failed, not_sent;
    struct lg_dist ttft, itl, tpot, e2e, lag;
    double req_per_s, out_tok_per_s;
    double slo_ttft_ms, slo_tpot_ms; /* <= 0: none */
    size_t slo_met;
    double goodput;       /* requests/s meeting both SLOs */
    uint64_t prompt_tokens, cached_tokens, output_tokens;
    uint64_t est_prompt_tokens, ideal_hit_tokens; /* over the same requests */
    size_t prompt_mismatch; /* usage.prompt_tokens != our count */
    uint64_t finite_hit_tokens;       /* finite-cache ideal, over the same requests */
    uint64_t fleet_kv_blocks;         /* its capacity; 0 = not computed */
    double hit_rate, ideal_hit_rate;
    double finite_hit_rate;           /* finite-cache ideal; < 0: not computed */
    double hit_of_finite;             /* hit_rate / finite_hit_rate; < 0: n/a */
    double workload_ideal;  /* predicted over the whole workload (< 0: unknown) */
    double workload_finite; /* the same for the finite-cache ideal (< 0: unknown) */
    size_t errors[LG_E__N];
    const char *error_example[LG_E__N];
    struct {
        int status;
        size_t n;
    } http[LG_MAX_HTTP_STATUSES];
    size_t nhttp;
    struct lg_pod_stat *pods;
    size_t npods;
};

/* 0 or -ENOMEM. */
/* workload_ideal / workload_finite: lg_wl_ideals' predictions (< 0: unknown). */
int lg_summarize(const struct lg_run *run, double workload_ideal, double workload_finite,
                 struct lg_summary *s);
void lg_summary_free(struct lg_summary *s);

/* Per-request values in simulated ms (NAN when not applicable). */
double lg_req_ttft_ms(const struct lg_run *run, const struct lg_req *r);
double lg_req_e2e_ms(const struct lg_run *run, const struct lg_req *r);
double lg_req_tpot_ms(const struct lg_run *run, const struct lg_req *r);
double lg_req_lag_ms(const struct lg_run *run, const struct lg_req *r);

#endif
