/* control_rollout: the guarded canary (core/rollout.h) on the control
 * thread: its clock (a tick every 250 ms judges a step whose hold is
 * over), the operator's actions (POST /admin/rollout), its status (GET
 * /admin/rollout) and its families on /metrics. The workers route by
 * rollout_share() and record every finished request (route.c); nothing
 * here is on the data path.
 *
 * A rollback is the kill switch's answer for the canary alone: its share
 * goes to 0, every request takes the baseline, and it stays so until the
 * operator starts a new rollout or resets to the configured share. The
 * kill switch itself aborts a rollout in progress. */
#include <errno.h>
#include <string.h>

#include "common/ev.h"
#include "common/log.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "gateway/control_priv.h"

#define RO_TICK_NS (250 * 1000000ull)

static void log_event(struct ctl *c, enum ro_event ev)
{
    struct rollout_status st;
    rollout_status(c->g->rollout, ev_now_ns(), &st);
    if (ev == RO_EV_ROLLED_BACK) {
        const struct ro_verdict *v = &st.verdict;
        int lat = v->measure == RO_M_TTFT_P99 || v->measure == RO_M_ITL_P50;
        LOG_WARN("rollout: rolled back to the baseline: %s %s, %s canary %.4g%s against "
                 "baseline %.4g%s (limit %.4g%s; %llu canary and %llu baseline requests; "
                 "%d groups failed, this the worst)",
                 v->kind, v->name, rollout_measure_name(v->measure), v->canary, lat ? " ms" : "",
                 v->baseline, lat ? " ms" : "", v->limit, lat ? " ms" : "",
                 (unsigned long long)v->n_canary, (unsigned long long)v->n_baseline,
                 v->failed_checks);
    } else if (ev == RO_EV_ADVANCED) {
        LOG_INFO("rollout: %s; canary now %g%%", st.last_step_result, st.share);
    } else if (ev == RO_EV_COMPLETED) {
        LOG_INFO("rollout: %s; complete, canary 100%%", st.last_step_result);
    }
}

static void on_tick(struct ev_loop *l, void *arg)
{
    struct ctl *c = arg;
    enum ro_event ev = rollout_tick(c->g->rollout, ev_now_ns());
    if (ev != RO_EV_NONE)
        log_event(c, ev);
    c->ro_timer = ev_timer_at(l, ev_now_ns() + RO_TICK_NS, on_tick, c);
}

void ctl_rollout_arm(struct ctl *c)
{
    if (c->g->rollout && !c->ro_timer)
        c->ro_timer = ev_timer_at(c->l, ev_now_ns() + RO_TICK_NS, on_tick, c);
}

void ctl_rollout_disarm(struct ctl *c)
{
    if (c->ro_timer && c->l)
        ev_timer_cancel(c->l, c->ro_timer);
    c->ro_timer = 0;
}

int ctl_rollout_action(struct ctl *c, const char *action)
{
    struct rollout *r = c->g->rollout;
    uint64_t now = ev_now_ns();
    int rc;
    if (!strcmp(action, "start") && !c->g->cfg.accounting)
        return -EOPNOTSUPP; /* accounting.enabled off: no book to judge a step by */
    if (!strcmp(action, "start"))
        rc = rollout_start(r, now);
    else if (!strcmp(action, "pause"))
        rc = rollout_pause(r, now);
    else if (!strcmp(action, "resume"))
        rc = rollout_resume(r, now);
    else if (!strcmp(action, "abort"))
        rc = rollout_abort(r, now);
    else if (!strcmp(action, "reset"))
        rc = rollout_reset(r);
    else
        return -ENOENT;
    if (rc == 0)
        LOG_INFO("rollout: %s by the operator", action);
    return rc;
}

void ctl_rollout_killswitch(struct ctl *c)
{
    if (rollout_abort(c->g->rollout, ev_now_ns()) == 0)
        LOG_WARN("rollout: aborted by the kill switch");
}

static void jstr(struct sbuf *o, const char *s, size_t n)
{
    sbuf_puts(o, "\"");
    sbuf_json_escape(o, s, n);
    sbuf_puts(o, "\"");
}

static void fig_json(struct sbuf *o, const struct ro_figures *f)
{
    sbuf_printf(o, "{\"requests\":%llu,\"errors\":%llu,\"prompt_tokens\":%llu,"
                   "\"cached_tokens\":%llu",
                (unsigned long long)f->n, (unsigned long long)f->errors,
                (unsigned long long)f->prompt_tokens, (unsigned long long)f->cached_tokens);
    if (f->prompt_tokens)
        sbuf_printf(o, ",\"hit_rate\":%.4f", (double)f->cached_tokens / (double)f->prompt_tokens);
    if (f->ttft_p99 >= 0)
        sbuf_printf(o, ",\"ttft_p99_ms\":%.3f", f->ttft_p99);
    if (f->itl_p50 >= 0)
        sbuf_printf(o, ",\"itl_p50_ms\":%.3f", f->itl_p50);
    sbuf_puts(o, "}");
}

void ctl_rollout_json(struct ctl *c, struct sbuf *o)
{
    struct rollout *r = c->g->rollout;
    const struct rollout_cfg *rc = &c->cfg.rollout;
    struct rollout_status st;
    rollout_status(r, ev_now_ns(), &st);
    sbuf_printf(o, "{\"state\":\"%s\",\"step\":%d,\"steps\":[", rollout_state_name(st.state),
                st.step);
    for (int i = 0; i < rc->nsteps; i++)
        sbuf_printf(o, "%s%g", i ? "," : "", rc->steps[i]);
    sbuf_printf(o, "],\"canary_percent\":");
    if (st.share >= 0)
        sbuf_printf(o, "%g", st.share);
    else
        sbuf_puts(o, "null");
    sbuf_printf(o, ",\"step_age_ms\":%llu,\"hold_ms\":%u,\"waiting_for_samples\":%s,"
                   "\"rollbacks\":%llu,\"completions\":%llu,\"last_step\":",
                (unsigned long long)st.step_age_ms, rc->hold_ms,
                st.waiting_samples ? "true" : "false", (unsigned long long)st.rollbacks,
                (unsigned long long)st.completions);
    jstr(o, st.last_step_result, strlen(st.last_step_result));
    if (st.has_verdict) {
        const struct ro_verdict *v = &st.verdict;
        sbuf_printf(o, ",\"verdict\":{\"kind\":\"%s\",\"name\":", v->kind);
        jstr(o, v->name, strlen(v->name));
        sbuf_printf(o, ",\"measure\":\"%s\",\"canary\":%.6g,\"baseline\":%.6g,\"limit\":%.6g,"
                       "\"severity\":%.4g,\"groups_failed\":%d,"
                       "\"canary_requests\":%llu,\"baseline_requests\":%llu}",
                    rollout_measure_name(v->measure), v->canary, v->baseline, v->limit,
                    v->severity, v->failed_checks, (unsigned long long)v->n_canary,
                    (unsigned long long)v->n_baseline);
    }
    sbuf_puts(o, ",\"groups\":[");
    char kind[8], name[RO_NAME_MAX];
    struct ro_figures f[2];
    int n = rollout_group(r, 0, kind, name, f);
    for (int i = 0; i < n; i++) {
        if (rollout_group(r, i, kind, name, f) <= i)
            break; /* a step began meanwhile */
        sbuf_printf(o, "%s{\"kind\":\"%s\",\"name\":", i ? "," : "", kind);
        jstr(o, name, strlen(name));
        sbuf_puts(o, ",\"canary\":");
        fig_json(o, &f[RO_CANARY]);
        sbuf_puts(o, ",\"baseline\":");
        fig_json(o, &f[RO_BASELINE]);
        sbuf_puts(o, "}");
    }
    sbuf_puts(o, "]}");
}

void ctl_rollout_metrics(struct ctl *c, struct sbuf *o)
{
    struct rollout_status st;
    rollout_status(c->g->rollout, ev_now_ns(), &st);
    prom_head(o, "kvgate_rollout_state", "gauge",
              "The guarded rollout's state: 1 on the state it is in.");
    for (int s = RO_IDLE; s <= RO_ABORTED; s++) {
        sbuf_printf(o, "kvgate_rollout_state{state=\"%s\"}", rollout_state_name(s));
        prom_value(o, st.state == (enum rollout_state)s);
    }
    prom_head(o, "kvgate_rollout_canary_percent", "gauge",
              "The canary's share of requests the rollout routes by (-1: no rollout, the "
              "policy's canary_percent applies).");
    sbuf_puts(o, "kvgate_rollout_canary_percent");
    prom_value(o, st.share);
    prom_head(o, "kvgate_rollout_step", "gauge", "The rollout's step (-1: none).");
    sbuf_puts(o, "kvgate_rollout_step");
    prom_value(o, st.step);
    prom_head(o, "kvgate_rollout_rollbacks_total", "counter",
              "Rollouts rolled back to the baseline by a failed check.");
    sbuf_puts(o, "kvgate_rollout_rollbacks_total");
    prom_value(o, (double)st.rollbacks);
    prom_head(o, "kvgate_rollout_completions_total", "counter",
              "Rollouts that reached 100% with every check passing.");
    sbuf_puts(o, "kvgate_rollout_completions_total");
    prom_value(o, (double)st.completions);
}
