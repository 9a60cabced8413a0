/* report: JSON and table output. See report.h. */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "run.h"

/* ---- JSON ---- */

static void jnum(struct sbuf *b, double v)
{
    if (isnan(v) || isinf(v))
        sbuf_puts(b, "null");
    else
        sbuf_printf(b, "%.6g", v);
}

static void jms(struct sbuf *b, double v) /* milliseconds: 3 decimals */
{
    if (isnan(v) || isinf(v))
        sbuf_puts(b, "null");
    else
        sbuf_printf(b, "%.3f", v);
}

static void jstr(struct sbuf *b, const char *s)
{
    if (!s) {
        sbuf_puts(b, "null");
        return;
    }
    sbuf_puts(b, "\"");
    sbuf_json_escape(b, s, strlen(s));
    sbuf_puts(b, "\"");
}

static void jdist(struct sbuf *b, const char *name, const struct lg_dist *d)
{
    sbuf_printf(b, "\"%s\":{\"n\":%zu,\"mean\":", name, d->n);
    jms(b, d->n ? d->mean : NAN);
    const double v[] = { d->min, d->p50, d->p90, d->p99, d->p999, d->max };
    const char *k[] = { "min", "p50", "p90", "p99", "p99.9", "max" };
    for (size_t i = 0; i < 6; i++) {
        sbuf_printf(b, ",\"%s\":", k[i]);
        jms(b, d->n ? v[i] : NAN);
    }
    sbuf_puts(b, "}");
}

static void summary_json(struct sbuf *b, const struct lg_summary *s)
{
    sbuf_printf(b, "{\"time_scale\":");
    jnum(b, s->time_scale);
    sbuf_puts(b, ",\"duration_s\":");
    jnum(b, s->duration_s);
    sbuf_puts(b, ",\"wall_s\":");
    jnum(b, s->wall_s);
    sbuf_printf(b, ",\"requests\":{\"total\":%zu,\"sent\":%zu,\"ok\":%zu,\"failed\":%zu,"
                   "\"not_sent\":%zu},",
                s->total, s->sent, s->ok, s->failed, s->not_sent);
    jdist(b, "ttft_ms", &s->ttft);
    sbuf_puts(b, ",");
    jdist(b, "itl_ms", &s->itl);
    sbuf_puts(b, ",");
    jdist(b, "tpot_ms", &s->tpot);
    sbuf_puts(b, ",");
    jdist(b, "e2e_ms", &s->e2e);
    sbuf_puts(b, ",");
    jdist(b, "send_lag_ms", &s->lag);
    sbuf_puts(b, ",\"requests_per_s\":");
    jnum(b, s->req_per_s);
    sbuf_puts(b, ",\"output_tokens_per_s\":");
    jnum(b, s->out_tok_per_s);
    sbuf_puts(b, ",\"goodput\":{\"slo_ttft_ms\":");
    jnum(b, s->slo_ttft_ms > 0 ? s->slo_ttft_ms : NAN);
    sbuf_puts(b, ",\"slo_tpot_ms\":");
    jnum(b, s->slo_tpot_ms > 0 ? s->slo_tpot_ms : NAN);
    sbuf_printf(b, ",\"met\":%zu,\"requests_per_s\":", s->slo_met);
    jnum(b, s->goodput);
    sbuf_printf(b, "},\"output_tokens\":%llu,\"prefix\":{\"prompt_tokens\":%llu,"
                   "\"cached_tokens\":%llu,\"hit_rate\":",
                (unsigned long long)s->output_tokens, (unsigned long long)s->prompt_tokens,
                (unsigned long long)s->cached_tokens);
    jnum(b, s->hit_rate);
    sbuf_puts(b, ",\"ideal_hit_rate\":");
    jnum(b, s->ideal_hit_rate);
    sbuf_puts(b, ",\"finite_ideal_hit_rate\":");
    jnum(b, s->finite_hit_rate >= 0 ? s->finite_hit_rate : NAN);
    sbuf_puts(b, ",\"hit_of_finite_ideal\":");
    jnum(b, s->hit_of_finite >= 0 ? s->hit_of_finite : NAN);
    sbuf_puts(b, ",\"workload_ideal_hit_rate\":");
    jnum(b, s->workload_ideal >= 0 ? s->workload_ideal : NAN);
    sbuf_puts(b, ",\"workload_finite_ideal_hit_rate\":");
    jnum(b, s->workload_finite >= 0 ? s->workload_finite : NAN);
    sbuf_printf(b, ",\"ideal_cached_tokens\":%llu,\"finite_ideal_cached_tokens\":",
                (unsigned long long)s->ideal_hit_tokens);
    if (s->fleet_kv_blocks)
        sbuf_printf(b, "%llu", (unsigned long long)s->finite_hit_tokens);
    else
        sbuf_puts(b, "null");
    sbuf_puts(b, ",\"fleet_kv_blocks\":");
    if (s->fleet_kv_blocks)
        sbuf_printf(b, "%llu", (unsigned long long)s->fleet_kv_blocks);
    else
        sbuf_puts(b, "null");
    sbuf_printf(b, ",\"prompt_token_mismatches\":%zu},", s->prompt_mismatch);
    sbuf_puts(b, "\"errors\":{");
    int first = 1;
    for (int e = 1; e < LG_E__N; e++) {
        if (!s->errors[e] || e == LG_E_HTTP)
            continue;
        sbuf_printf(b, "%s\"%s\":%zu", first ? "" : ",", lg_err_name(e), s->errors[e]);
        first = 0;
    }
    for (size_t k = 0; k < s->nhttp; k++) {
        sbuf_printf(b, "%s\"http_%d\":%zu", first ? "" : ",", s->http[k].status, s->http[k].n);
        first = 0;
    }
    sbuf_puts(b, "},\"error_examples\":{");
    first = 1;
    for (int e = 1; e < LG_E__N; e++) {
        if (!s->error_example[e])
            continue;
        sbuf_printf(b, "%s\"%s\":", first ? "" : ",", lg_err_name(e));
        jstr(b, s->error_example[e]);
        first = 0;
    }
    sbuf_puts(b, "},\"pods\":[");
    for (size_t k = 0; k < s->npods; k++) {
        const struct lg_pod_stat *p = &s->pods[k];
        sbuf_printf(b, "%s{\"pod\":", k ? "," : "");
        jstr(b, p->name);
        sbuf_printf(b, ",\"requests\":%zu,\"ok\":%zu,\"prompt_tokens\":%llu,\"cached_tokens\":%llu,"
                       "\"hit_rate\":",
                    p->n, p->ok, (unsigned long long)p->prompt, (unsigned long long)p->cached);
        jnum(b, p->prompt ? (double)p->cached / (double)p->prompt : NAN);
        sbuf_puts(b, ",\"ttft_mean_ms\":");
        jms(b, p->ok ? p->ttft_sum_ms / (double)p->ok : NAN);
        sbuf_puts(b, "}");
    }
    sbuf_puts(b, "]}");
}

static void request_json(struct sbuf *b, const struct lg_run *run, const struct lg_req *r)
{
    const struct lg_wl_item *it = &run->wl->items[r->id];
    double scale_us = 1.0 / 1000.0 / run->cfg->time_scale;
    sbuf_printf(b, "{\"id\":%u", r->id);
    if (run->wl->spec.kind == LG_WL_MULTI_TURN)
        sbuf_printf(b, ",\"session\":%u,\"turn\":%u", it->a, it->b);
    sbuf_puts(b, ",\"model\":");
    jstr(b, run->wl->models[r->model < run->wl->nmodels ? r->model : 0]);
    sbuf_puts(b, ",\"target\":");
    jstr(b, r->send_ns || r->state != LG_R_WAITING ? run->targets[r->target].authority : NULL);
    sbuf_puts(b, ",\"pod\":");
    jstr(b, r->pod[0] ? r->pod : NULL);
    sbuf_puts(b, ",\"sched_ms\":");
    jms(b, r->sched_ns == UINT64_MAX ? NAN
                                     : (double)(r->sched_ns - run->t0) / run->ns_per_sim_s * 1e3);
    sbuf_puts(b, ",\"lag_ms\":");
    jms(b, lg_req_lag_ms(run, r));
    sbuf_puts(b, ",\"ttft_ms\":");
    jms(b, lg_req_ttft_ms(run, r));
    sbuf_puts(b, ",\"tpot_ms\":");
    jms(b, lg_req_tpot_ms(run, r));
    sbuf_puts(b, ",\"e2e_ms\":");
    jms(b, lg_req_e2e_ms(run, r));
    sbuf_printf(b, ",\"output_tokens\":%u,\"content_events\":%u,\"prompt_tokens\":%u,"
                   "\"cached_tokens\":%u,\"expected_prompt_tokens\":%u,\"ideal_cached_tokens\":%u,"
                   "\"finite_ideal_cached_tokens\":",
                r->completion_tokens, r->n_content, r->prompt_tokens, r->cached_tokens,
                r->est_prompt, r->ideal_hit);
    if (run->cfg->fleet_kv_blocks)
        sbuf_printf(b, "%u", r->ideal_finite_hit);
    else
        sbuf_puts(b, "null");
    sbuf_printf(b, ",\"status\":%d,\"error\":", r->status);
    jstr(b, r->err == LG_OK ? NULL : lg_err_name(r->err));
    sbuf_puts(b, ",\"error_text\":");
    jstr(b, r->errmsg);
    sbuf_puts(b, ",\"itl_ms\":[");
    for (uint32_t k = 0; k < r->n_itl; k++)
        sbuf_printf(b, "%s%.3f", k ? "," : "", (double)r->itl_us[k] * scale_us);
    sbuf_puts(b, "]}");
}

int lg_report_json(const char *path, const struct lg_run *run, const struct lg_summary *s,
                   const struct lg_report_info *info, int with_requests)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    struct sbuf b;
    sbuf_init(&b);
    const struct lg_cfg *c = run->cfg;
    sbuf_puts(&b, "{\"config\":{\"workload\":");
    jstr(&b, info->workload);
    sbuf_puts(&b, ",\"arrival\":");
    jstr(&b, info->arrival);
    sbuf_puts(&b, ",\"rate\":");
    jnum(&b, info->rate);
    sbuf_puts(&b, ",\"burstiness\":");
    jnum(&b, info->burstiness);
    sbuf_printf(&b, ",\"seed\":%llu,\"time_scale\":", info->seed);
    jnum(&b, c->time_scale);
    sbuf_puts(&b, ",\"timeout_s\":");
    jnum(&b, c->timeout_s);
    sbuf_printf(&b, ",\"max_conns\":%u,\"transport\":", c->max_conns);
    jstr(&b, run->tp->name);
    sbuf_puts(&b, ",\"targets\":[");
    for (size_t k = 0; k < run->ntargets; k++) {
        sbuf_puts(&b, k ? "," : "");
        jstr(&b, run->targets[k].url);
    }
    sbuf_puts(&b, "]},\"summary\":");
    summary_json(&b, s);
    if (with_requests)
        sbuf_puts(&b, ",\"requests\":[\n");
    fwrite(b.data, 1, b.len, f);
    for (size_t i = 0; with_requests && i < run->nreqs; i++) {
        sbuf_reset(&b);
        request_json(&b, run, &run->reqs[i]);
        sbuf_puts(&b, i + 1 < run->nreqs ? ",\n" : "\n");
        fwrite(b.data, 1, b.len, f);
    }
    fputs(with_requests ? "]}\n" : "}\n", f);
    int oom = b.oom;
    sbuf_free(&b);
    int rc = ferror(f) ? -EIO : 0;
    if (fclose(f) && !rc)
        rc = -errno;
    return oom ? -ENOMEM : rc;
}

/* ---- table ---- */

static void row(FILE *f, const char *name, const struct lg_dist *d)
{
    if (!d->n) {
        fprintf(f, "  %-10s %9s\n", name, "-");
        return;
    }
    fprintf(f, "  %-10s %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, d->mean, d->min,
            d->p50, d->p90, d->p99, d->p999, d->max);
}

void lg_report_table(FILE *f, const struct lg_run *run, const struct lg_summary *s,
                     const struct lg_report_info *info)
{
    fprintf(f, "\nloadgen: %s, seed %llu, ", info->workload, info->seed);
    if (info->rate > 0)
        fprintf(f, "%g/s %s", info->rate, info->arrival);
    else
        fprintf(f, "all at once");
    if (!strcmp(info->arrival, "gamma"))
        fprintf(f, " (burstiness %g)", info->burstiness);
    fprintf(f, ", %zu target%s, time scale %g\n", run->ntargets, run->ntargets == 1 ? "" : "s",
            s->time_scale);
    fprintf(f, "  requests   %zu: %zu sent, %zu ok, %zu failed, %zu not sent; %.2f s simulated"
               " (%.2f s wall)\n",
            s->total, s->sent, s->ok, s->failed, s->not_sent, s->duration_s, s->wall_s);
    fprintf(f, "  %-10s %9s %9s %9s %9s %9s %9s %9s   (simulated ms)\n", "", "mean", "min",
            "p50", "p90", "p99", "p99.9", "max");
    row(f, "TTFT", &s->ttft);
    row(f, "ITL", &s->itl);
    row(f, "TPOT", &s->tpot);
    row(f, "E2E", &s->e2e);
    row(f, "send lag", &s->lag);
    fprintf(f, "  throughput %.2f req/s, %.1f output tok/s\n", s->req_per_s, s->out_tok_per_s);
    if (s->slo_ttft_ms > 0 || s->slo_tpot_ms > 0)
        fprintf(f, "  goodput    %.2f req/s meeting TTFT <= %g ms and TPOT <= %g ms (%zu of %zu ok)\n",
                s->goodput, s->slo_ttft_ms, s->slo_tpot_ms, s->slo_met, s->ok);
    fprintf(f, "  prefix     hit rate %.1f%% (%llu of %llu prompt tokens cached)\n",
            100 * s->hit_rate, (unsigned long long)s->cached_tokens,
            (unsigned long long)s->prompt_tokens);
    fprintf(f, "  ceilings   infinite-cache ideal %.1f%%", 100 * s->ideal_hit_rate);
    if (s->workload_ideal >= 0)
        fprintf(f, " (whole workload %.1f%%)", 100 * s->workload_ideal);
    if (s->finite_hit_rate >= 0) {
        fprintf(f, "; finite-cache ideal %.1f%% (%llu blocks", 100 * s->finite_hit_rate,
                (unsigned long long)s->fleet_kv_blocks);
        if (s->workload_finite >= 0)
            fprintf(f, "; whole workload %.1f%%", 100 * s->workload_finite);
        fprintf(f, ")");
        if (s->hit_of_finite >= 0)
            fprintf(f, "; hit rate = %.1f%% of the finite ideal", 100 * s->hit_of_finite);
    } else {
        fprintf(f, "; finite-cache ideal not computed (--fleet-kv-blocks)");
    }
    fprintf(f, "\n");
    if (s->prompt_mismatch)
        fprintf(f, "  note       %zu requests: server's prompt_tokens differ from ours\n",
                s->prompt_mismatch);
    fprintf(f, "  errors    ");
    int any = 0;
    for (int e = 1; e < LG_E__N; e++) {
        if (!s->errors[e])
            continue;
        if (e == LG_E_HTTP) {
            for (size_t k = 0; k < s->nhttp; k++)
                fprintf(f, " http_%d %zu", s->http[k].status, s->http[k].n);
        } else {
            fprintf(f, " %s %zu", lg_err_name(e), s->errors[e]);
        }
        if (s->error_example[e])
            fprintf(f, " (\"%.80s\")", s->error_example[e]);
        any = 1;
    }
    fprintf(f, "%s\n", any ? "" : " none");
    if (s->npods > 1 || (s->npods == 1 && run->ntargets == 1)) {
        fprintf(f, "  %-28s %8s %8s %9s %11s\n", "pod / target", "requests", "ok", "hit", "TTFT mean");
        for (size_t k = 0; k < s->npods; k++) {
            const struct lg_pod_stat *p = &s->pods[k];
            fprintf(f, "  %-28s %8zu %8zu %8.1f%% %11.2f\n", p->name, p->n, p->ok,
                    p->prompt ? 100.0 * (double)p->cached / (double)p->prompt : 0.0,
                    p->ok ? p->ttft_sum_ms / (double)p->ok : 0.0);
        }
    }
    fflush(f);
}
