/* stats: percentiles, per-request metrics, summary. See stats.h. */
#include "stats.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

double lg_percentile(const double *x, size_t n, double p)
{
    if (!n)
        return NAN;
    if (p <= 0)
        return x[0];
    if (p >= 100)
        return x[n - 1];
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)h;
    if (lo + 1 >= n)
        return x[n - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

void lg_dist_of(double *v, size_t n, struct lg_dist *d)
{
    memset(d, 0, sizeof(*d));
    if (!n)
        return;
    qsort(v, n, sizeof(*v), cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    d->n = n;
    d->mean = sum / (double)n;
    d->min = v[0];
    d->max = v[n - 1];
    d->p50 = lg_percentile(v, n, 50);
    d->p90 = lg_percentile(v, n, 90);
    d->p99 = lg_percentile(v, n, 99);
    d->p999 = lg_percentile(v, n, 99.9);
}

static double ms(const struct lg_run *run, uint64_t ns)
{
    return (double)ns / run->ns_per_sim_s * 1000.0;
}

double lg_req_ttft_ms(const struct lg_run *run, const struct lg_req *r)
{
    if (!r->send_ns || !r->n_content || r->first_ns < r->send_ns)
        return NAN;
    return ms(run, r->first_ns - r->send_ns);
}

double lg_req_e2e_ms(const struct lg_run *run, const struct lg_req *r)
{
    if (!r->send_ns || r->state != LG_R_DONE || r->end_ns < r->send_ns)
        return NAN;
    return ms(run, r->end_ns - r->send_ns);
}

double lg_req_tpot_ms(const struct lg_run *run, const struct lg_req *r)
{
    uint32_t tok = r->completion_tokens ? r->completion_tokens : r->n_content;
    double ttft = lg_req_ttft_ms(run, r), e2e = lg_req_e2e_ms(run, r);
    if (tok < 2 || isnan(ttft) || isnan(e2e))
        return NAN;
    return (e2e - ttft) / (double)(tok - 1);
}

double lg_req_lag_ms(const struct lg_run *run, const struct lg_req *r)
{
    if (!r->send_ns || r->sched_ns == UINT64_MAX)
        return NAN;
    return r->send_ns > r->sched_ns ? ms(run, r->send_ns - r->sched_ns) : 0.0;
}

static struct lg_pod_stat *pod_of(struct lg_summary *s, const char *name)
{
    for (size_t k = 0; k < s->npods; k++)
        if (!strcmp(s->pods[k].name, name))
            return &s->pods[k];
    struct lg_pod_stat *p = realloc(s->pods, (s->npods + 1) * sizeof(*p));
    if (!p)
        return NULL;
    s->pods = p;
    p = &s->pods[s->npods++];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    return p;
}

static int cmp_pod(const void *a, const void *b)
{
    return strcmp(((const struct lg_pod_stat *)a)->name, ((const struct lg_pod_stat *)b)->name);
}

int lg_summarize(const struct lg_run *run, double workload_ideal, double workload_finite,
                 struct lg_summary *s)
{
    memset(s, 0, sizeof(*s));
    size_t n = run->nreqs, nitl = 0;
    for (size_t i = 0; i < n; i++)
        if (run->reqs[i].err == LG_OK)
            nitl += run->reqs[i].n_itl;
    double *ttft = malloc((n + 1) * sizeof(double)), *tpot = malloc((n + 1) * sizeof(double));
    double *e2e = malloc((n + 1) * sizeof(double)), *lag = malloc((n + 1) * sizeof(double));
    double *itl = malloc((nitl + 1) * sizeof(double));
    if (!ttft || !tpot || !e2e || !lag || !itl) {
        free(ttft), free(tpot), free(e2e), free(lag), free(itl);
        return -ENOMEM;
    }
    size_t nt = 0, np = 0, ne = 0, nl = 0, ni = 0;
    double scale_us = 1.0 / 1000.0 / run->cfg->time_scale; /* wall us -> sim ms */
    s->time_scale = run->cfg->time_scale;
    s->slo_ttft_ms = run->cfg->slo_ttft_ms;
    s->slo_tpot_ms = run->cfg->slo_tpot_ms;
    s->workload_ideal = workload_ideal;
    s->workload_finite = workload_finite;
    s->fleet_kv_blocks = run->cfg->fleet_kv_blocks;
    s->total = n;
    for (size_t i = 0; i < n; i++) {
        const struct lg_req *r = &run->reqs[i];
        if (r->send_ns)
            s->sent++;
        if (r->err == LG_E_NOT_SENT)
            s->not_sent++;
        double l = lg_req_lag_ms(run, r);
        if (!isnan(l))
            lag[nl++] = l;
        if (r->err != LG_OK && r->err != LG_E_NOT_SENT) {
            s->failed++;
        }
        if (r->err != LG_OK) {
            s->errors[r->err]++;
            if (!s->error_example[r->err] && r->errmsg)
                s->error_example[r->err] = r->errmsg;
            if (r->err == LG_E_HTTP) {
                size_t k = 0;
                while (k < s->nhttp && s->http[k].status != r->status)
                    k++;
                if (k == s->nhttp && k < LG_MAX_HTTP_STATUSES)
                    s->http[s->nhttp++].status = r->status;
                if (k < s->nhttp)
                    s->http[k].n++;
            }
        }
        const char *pname = r->pod[0] ? r->pod : run->targets[r->target].authority;
        struct lg_pod_stat *pod = r->send_ns ? pod_of(s, pname) : NULL;
        if (pod)
            pod->n++;
        if (r->err != LG_OK)
            continue;
        s->ok++;
        double t = lg_req_ttft_ms(run, r), e = lg_req_e2e_ms(run, r), p = lg_req_tpot_ms(run, r);
        if (!isnan(t))
            ttft[nt++] = t;
        if (!isnan(e))
            e2e[ne++] = e;
        if (!isnan(p))
            tpot[np++] = p;
        for (uint32_t k = 0; k < r->n_itl; k++)
            itl[ni++] = (double)r->itl_us[k] * scale_us;
        s->output_tokens += r->completion_tokens;
        if (r->has_usage) {
            s->prompt_tokens += r->prompt_tokens;
            s->cached_tokens += r->cached_tokens;
            s->est_prompt_tokens += r->est_prompt;
            s->ideal_hit_tokens += r->ideal_hit;
            s->finite_hit_tokens += r->ideal_finite_hit;
            if (r->prompt_tokens != r->est_prompt)
                s->prompt_mismatch++;
        }
        int met = !isnan(t) && (s->slo_ttft_ms <= 0 || t <= s->slo_ttft_ms) &&
                  (s->slo_tpot_ms <= 0 || isnan(p) || p <= s->slo_tpot_ms);
        s->slo_met += met;
        if (pod) {
            pod->ok++;
            pod->prompt += r->prompt_tokens;
            pod->cached += r->cached_tokens;
            if (!isnan(t))
                pod->ttft_sum_ms += t;
        }
    }
    if (s->npods > 1)
        qsort(s->pods, s->npods, sizeof(*s->pods), cmp_pod);
    lg_dist_of(ttft, nt, &s->ttft);
    lg_dist_of(tpot, np, &s->tpot);
    lg_dist_of(e2e, ne, &s->e2e);
    lg_dist_of(lag, nl, &s->lag);
    lg_dist_of(itl, ni, &s->itl);
    free(ttft), free(tpot), free(e2e), free(lag), free(itl);
    uint64_t span = run->t_end > run->t0 ? run->t_end - run->t0 : 0;
    s->wall_s = (double)span / 1e9;
    s->duration_s = (double)span / run->ns_per_sim_s;
    if (s->duration_s > 0) {
        s->req_per_s = (double)s->ok / s->duration_s;
        s->out_tok_per_s = (double)s->output_tokens / s->duration_s;
        s->goodput = (double)s->slo_met / s->duration_s;
    }
    s->hit_rate = s->prompt_tokens ? (double)s->cached_tokens / (double)s->prompt_tokens : 0;
    s->ideal_hit_rate = s->est_prompt_tokens
                            ? (double)s->ideal_hit_tokens / (double)s->est_prompt_tokens : 0;
    s->finite_hit_rate = -1;
    s->hit_of_finite = -1;
    if (s->fleet_kv_blocks) {
        s->finite_hit_rate = s->est_prompt_tokens
                                 ? (double)s->finite_hit_tokens / (double)s->est_prompt_tokens : 0;
        if (s->finite_hit_rate > 0)
            s->hit_of_finite = s->hit_rate / s->finite_hit_rate;
    }
    return 0;
}

void lg_summary_free(struct lg_summary *s)
{
    free(s->pods);
    memset(s, 0, sizeof(*s));
}
