/* admin_report: GET /admin/report, the per (model, tenant, class, arm)
 * figures of core/report.h with the guarded rollout's last verdict, as
 * JSON or (?format=text) a table a person reads. On the control thread. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/sbuf.h"
#include "core/report.h"
#include "core/rollout.h"
#include "gateway/admin_priv.h"
#include "gateway/control_priv.h"

static void jstr(struct sbuf *o, const char *s)
{
    sbuf_puts(o, "\"");
    sbuf_json_escape(o, s, strlen(s));
    sbuf_puts(o, "\"");
}

/* The rollout's word on this row: its failed check if it names the row's
 * tenant or class (or all traffic), else the last step's result. */
static void row_verdict(const struct rollout_status *st, const struct report_row *w, char *out,
                        size_t n)
{
    const struct ro_verdict *v = &st->verdict;
    if (st->has_verdict &&
        (!strcmp(v->kind, "all") || (!strcmp(v->kind, "tenant") && !strcmp(v->name, w->tenant)) ||
         (!strcmp(v->kind, "class") && !strcmp(v->name, w->cls))))
        snprintf(out, n, "rolled back: %s %s %s", v->kind, v->name,
                 rollout_measure_name(v->measure));
    else
        snprintf(out, n, "%s", st->last_step_result);
}

static void num_or_null(struct sbuf *o, const char *key, double v, const char *fmt)
{
    sbuf_printf(o, ",\"%s\":", key);
    if (v < 0)
        sbuf_puts(o, "null");
    else
        sbuf_printf(o, fmt, v);
}

static void render_json(const struct report_row *rows, int n, const struct rollout_status *st,
                        struct sbuf *o)
{
    sbuf_printf(o, "{\"rollout\":{\"state\":\"%s\",\"last_step\":", rollout_state_name(st->state));
    jstr(o, st->last_step_result);
    if (st->has_verdict) {
        sbuf_printf(o, ",\"verdict\":{\"kind\":\"%s\",\"name\":", st->verdict.kind);
        jstr(o, st->verdict.name);
        sbuf_printf(o, ",\"measure\":\"%s\"}", rollout_measure_name(st->verdict.measure));
    }
    sbuf_puts(o, "},\"rows\":[");
    char verdict[256];
    for (int i = 0; i < n; i++) {
        const struct report_row *w = &rows[i];
        sbuf_puts(o, i ? ",{\"model\":" : "{\"model\":");
        jstr(o, w->model);
        sbuf_puts(o, ",\"tenant\":");
        jstr(o, w->tenant);
        sbuf_puts(o, ",\"class\":");
        jstr(o, w->cls);
        sbuf_puts(o, ",\"arm\":");
        jstr(o, w->arm);
        sbuf_printf(o, ",\"requests\":%llu,\"errors\":%llu,\"prompt_tokens\":%llu,"
                       "\"cached_tokens\":%llu,\"completion_tokens\":%llu,"
                       "\"completion_estimated_requests\":%llu",
                    (unsigned long long)w->requests, (unsigned long long)w->errors,
                    (unsigned long long)w->prompt_tokens, (unsigned long long)w->cached_tokens,
                    (unsigned long long)w->completion_tokens, (unsigned long long)w->estimated);
        num_or_null(o, "ttft_p50_ms", w->ttft_p50, "%.3f");
        num_or_null(o, "ttft_p99_ms", w->ttft_p99, "%.3f");
        num_or_null(o, "itl_p50_ms", w->itl_p50, "%.3f");
        /* ten significant digits: Prometheus's rules over the same
         * counters (scripts/prometheus/kvgate.rules.yml) are compared with
         * these to 1e-6 (tests/e2e/prometheus_rules.sh) */
        num_or_null(o, "hit_rate", w->hit_rate, "%.10g");
        sbuf_printf(o, ",\"tokens_per_s\":%.3f,\"cost\":%.10g", w->tokens_per_s, w->cost);
        num_or_null(o, "cost_per_million_tokens", w->cost_per_mtok, "%.10g");
        row_verdict(st, w, verdict, sizeof(verdict));
        sbuf_puts(o, ",\"rollout\":");
        jstr(o, verdict);
        sbuf_puts(o, "}");
    }
    sbuf_puts(o, "]}");
}

static void cell(struct sbuf *o, double v, const char *fmt, int width)
{
    if (v < 0)
        sbuf_printf(o, " %*s", width, "-");
    else
        sbuf_printf(o, fmt, width, v);
}

static void render_text(const struct report_row *rows, int n, const struct rollout_status *st,
                        struct sbuf *o)
{
    sbuf_printf(o, "%-28s %-16s %-10s %-13s %8s %6s %9s %9s %8s %6s %9s %10s  %s\n", "model",
                "tenant", "class", "arm", "requests", "errors", "ttft_p50", "ttft_p99",
                "itl_p50", "hit%", "tok/s", "cost/Mtok", "rollout");
    char verdict[256];
    for (int i = 0; i < n; i++) {
        const struct report_row *w = &rows[i];
        sbuf_printf(o, "%-28.28s %-16.16s %-10.10s %-13.13s %8llu %6llu", w->model, w->tenant,
                    w->cls, w->arm, (unsigned long long)w->requests,
                    (unsigned long long)w->errors);
        cell(o, w->ttft_p50, " %*.1f", 9);
        cell(o, w->ttft_p99, " %*.1f", 9);
        cell(o, w->itl_p50, " %*.2f", 8);
        cell(o, w->hit_rate >= 0 ? w->hit_rate * 100 : -1, " %*.1f", 6);
        cell(o, w->tokens_per_s, " %*.1f", 9);
        cell(o, w->cost_per_mtok, " %*.4g", 10);
        row_verdict(st, w, verdict, sizeof(verdict));
        sbuf_printf(o, "  %s\n", verdict);
    }
    sbuf_printf(o, "(latencies in ms; rollout: %s)\n", rollout_state_name(st->state));
}

void adm_report(struct aconn *c, int text)
{
    struct gw *g = c->a->ctl->g;
    struct report_row *rows = kv_calloc(REPORT_GROUPS_MAX + 1, sizeof(*rows));
    if (!rows) {
        adm_respond_error(c, 500, "out of memory", NULL);
        return;
    }
    int n = report_rows(g->report, rows, REPORT_GROUPS_MAX + 1);
    if (n > REPORT_GROUPS_MAX + 1)
        n = REPORT_GROUPS_MAX + 1;
    struct rollout_status st;
    rollout_status(g->rollout, ev_now_ns(), &st);
    struct sbuf b;
    sbuf_init(&b);
    if (text) {
        render_text(rows, n, &st, &b);
        adm_respond(c, 200, "text/plain; charset=utf-8", b.data, b.len, NULL);
    } else {
        render_json(rows, n, &st, &b);
        adm_respond_json(c, 200, &b);
    }
    sbuf_free(&b);
    kv_free(rows);
}
