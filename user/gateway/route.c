/* route: the per-request routing calls the data path makes (gateway.h):
 * body scan and fingerprint, the decision (prefix index lookup + policy on
 * the current pod snapshot), crediting the index and session table, and the
 * accounting when the request ends. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/sbuf.h"
#include "core/bodyscan.h"
#include "core/fingerprint.h"
#include "core/kvindex.h"
#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/accesslog.h"
#include "gateway/exact.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"

/* How long the data path keeps a pod it saw fail out of routing, unless a
 * health check passes sooner (control.c clears the mark). */
#define POD_DOWN_NS (5ull * 1000000000ull)

struct gw_scan {
    struct bodyscan bs;
    struct fingerprint fp;
    uint32_t bytes_per_token;
    struct gw *g;
    struct gw_exact_stream *es; /* the prompt tokenized as it arrives (exact.h) */
    int es_tried;
};

/* The prompt's raw bytes as the scan meets them: the fingerprint, and the
 * exact index's tokens where they can be made while the body arrives. */
static void on_prompt(void *ctx, const char *p, size_t n)
{
    struct gw_scan *s = ctx;
    fp_feed_cb(&s->fp, p, n);
    if (!s->es_tried) {
        s->es_tried = 1;
        s->es = gw_exact_stream_start(s->g, &s->bs, p, n);
    }
    if (s->es)
        gw_exact_stream_feed(s->es, p, n);
}

struct gw_scan *gw_scan_new(struct gw *g)
{
    struct gw_scan *s = kv_malloc(sizeof(*s));
    if (!s)
        return NULL;
    if (fp_init(&s->fp, g->cfg.block_bytes, g->cfg.max_blocks)) {
        fp_init(&s->fp, FP_DEFAULT_BLOCK_BYTES, FP_DEFAULT_MAX_BLOCKS);
    }
    bodyscan_init(&s->bs, on_prompt, s);
    s->bytes_per_token = g->cfg.bytes_per_token ? (uint32_t)g->cfg.bytes_per_token : 4;
    s->g = g;
    s->es = NULL;
    s->es_tried = 0;
    return s;
}

void gw_scan_free(struct gw_scan *s)
{
    if (!s)
        return;
    gw_exact_stream_free(s->es);
    kv_free(s);
}

int gw_scan_feed(struct gw_scan *s, const char *p, size_t n)
{
    return bodyscan_feed(&s->bs, p, n);
}

int gw_scan_finish(struct gw_scan *s, struct gw_request *r, const char **err,
                   size_t *err_offset)
{
    struct bodyscan *bs = &s->bs;
    if (bodyscan_finish(bs)) {
        *err = bs->err_msg;
        *err_offset = bs->err_offset;
        return -1;
    }
    if (!bs->has_model) {
        *err = "\"model\" is required to route the request";
        *err_offset = 0;
        return -1;
    }
    if (bs->prompt_kind == BODYSCAN_NONE) {
        *err = "the body has neither \"messages\" nor \"prompt\"";
        *err_offset = 0;
        return -1;
    }
    snprintf(r->model, sizeof(r->model), "%s", bs->model);
    r->stream = bs->stream == 1;
    r->chat = bs->prompt_kind == BODYSCAN_CHAT;
    r->include_usage = bs->include_usage;
    r->so_seen = bs->so_seen;
    r->iu_seen = bs->iu_seen;
    r->so_start = bs->so_start;
    r->iu_start = bs->iu_start;
    if (!r->tenant[0] && bs->has_user && gw_tenant_from_user()) /* metrics.tenant_from_user */
        snprintf(r->tenant, sizeof(r->tenant), "%.127s", bs->user);
    uint64_t mk = fp_model_key(bs->model, bs->model_len, bs->cache_salt,
                               bs->has_cache_salt ? bs->cache_salt_len : 0);
    r->nkeys = (uint32_t)fp_keys(&s->fp, mk, r->keys);
    uint64_t pt = (s->fp.total + s->bytes_per_token - 1) / s->bytes_per_token;
    r->prompt_tokens = pt > UINT32_MAX ? UINT32_MAX : (uint32_t)pt;
    if (s->es) {
        gw_exact_stream_end(s->es, bs, r);
        gw_exact_stream_free(s->es);
        s->es = NULL;
    }
    return 0;
}

uint64_t gw_rand(struct gw *g)
{
    static __thread uint64_t x;
    if (!x) {
        x = atomic_fetch_add(&g->rng, 0x9E3779B97F4A7C15ull) ^ (uint64_t)time(NULL);
        if (!x)
            x = 1;
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

/* Prompt tokens one prefix-index key covers. */
static double tokens_per_key(const struct gw *g)
{
    double bpt = g->cfg.bytes_per_token > 0 ? (double)g->cfg.bytes_per_token : 4.0;
    return (double)(g->cfg.block_bytes ? g->cfg.block_bytes : FP_DEFAULT_BLOCK_BYTES) / bpt;
}

static void policy_for(struct gw *g, const char *model, struct policy_cfg *out)
{
    pthread_mutex_lock(&g->policy_mu);
    *out = *gw_policies_for(&g->policies, model);
    pthread_mutex_unlock(&g->policy_mu);
}

int gw_splice_model_ok(struct gw *g, const char *model)
{
    int mode = g->cfg.splice_mode;
    for (uint32_t i = 0; i < g->cfg.nsplice_models; i++)
        if (!strcmp(g->cfg.splice_models[i].model, model)) {
            mode = g->cfg.splice_models[i].mode;
            break;
        }
    if (mode != GW_SPLICE_AUTO)
        return mode == GW_SPLICE_ON;
    /* auto: only where nothing needs to see each request. Shadow and
     * canary compare policies per request; round-robin, least-request and
     * random do not pin sessions to a pod. */
    struct policy_cfg p;
    policy_for(g, model, &p);
    return p.mode == POLICY_PREFIX_AWARE && !p.shadow && p.canary_pct >= 100;
}

/* A guarded rollout with a candidate policy (rollout.candidate): the
 * request's arm is drawn here at the rollout's share; the canary routes
 * by the candidate, the baseline by the policy in force (its mode), each
 * as a policy of its own (no shadow, no canary inside it). Returns the
 * arm, or ARM_ONLY when no candidate rollout is under way (cfg as is). */
static enum route_arm candidate_arm(struct gw *g, const char *model, double share,
                                    uint64_t rnd, struct policy_cfg *cfg)
{
    if (share < 0)
        return ARM_ONLY;
    pthread_mutex_lock(&g->policy_mu);
    int has = g->has_candidate;
    double draw = (double)((rnd >> 17) % 10000) / 100.0;
    enum route_arm arm = draw < share ? ARM_CANARY : ARM_BASELINE;
    if (has && arm == ARM_CANARY)
        *cfg = *gw_policies_for(&g->candidate, model);
    pthread_mutex_unlock(&g->policy_mu);
    if (!has)
        return ARM_ONLY;
    cfg->shadow = 0;
    cfg->canary_pct = 100;
    return arm;
}

enum route_status gw_route(struct gw *g, struct gw_request *r, uint32_t exclude_slot)
{
    r->t_decide = ev_now_ns();
    struct pod_snapshot *s = snapshot_get();
    if (!s) {
        r->d.status = ROUTE_NO_POD;
        r->d.idx = -1;
        return ROUTE_NO_POD;
    }
    struct policy_cfg cfg;
    policy_for(g, r->model, &cfg);
    uint64_t rnd = gw_rand(g);
    double ro_share = rollout_share(g->rollout);
    enum route_arm cand = candidate_arm(g, r->model, ro_share, rnd, &cfg);

    /* the prefix each pod holds: the approximate index's guess, replaced
     * by the exact index's match where a pod's KV events are trusted */
    uint16_t match[POD_MAX];
    uint32_t nkeys = r->nkeys;
    double tpk = tokens_per_key(g);
    int by_prefix = cfg.mode == POLICY_PREFIX_AWARE || cfg.mode == POLICY_TOKEN_LOAD ||
                    cfg.shadow || cfg.canary_pct < 100;
    int exact = 0;
    uint16_t approx[POD_MAX]; /* the approximate match, before any conversion */
    if (by_prefix) {
        if (r->nkeys)
            pidx_lookup(g->pidx, r->keys, r->nkeys, match);
        else
            memset(match, 0, sizeof(match));
        memcpy(approx, match, sizeof(approx));
        exact = gw_exact_match(g, r, s, match, &nkeys, &tpk);
    } else {
        memset(match, 0, sizeof(match));
        memset(approx, 0, sizeof(approx));
    }

    uint64_t sh = 0;
    int session_slot = -1;
    if (r->session[0]) {
        sh = session_hash(r->session, strlen(r->session));
        session_slot = session_get(g->sessions, sh);
    }
    struct route_input in = {
        .model = r->model, .nkeys = nkeys, .match = match,
        .session_slot = session_slot, .rand = rnd, .now_ns = r->t_decide,
        .exclude_slot = exclude_slot, .prompt_tokens = r->prompt_tokens,
        .tokens_per_key = tpk, .tl = &g->tl, .bytes_per_token = g->cfg.bytes_per_token,
        .load_share = (double)atomic_load_explicit(&g->load_share_micro, memory_order_relaxed) / 1e6,
    };
    /* Replicas (share < 1) on the exact index: the other gateways' sends
     * since each pod's last scrape, from the blocks its KV events stored
     * that no prediction of ours announced. Prefill stores a request's
     * blocks a step after it starts, where a scrape shows it up to
     * scrape.interval_ms later and as one request whatever its length:
     * bench/ trace-mooncake 15x, 3 replicas against 1, TTFT p50 1.27x ->
     * 1.11x (bench/results/2026-12-03-replicas-mooncake-tries). A lone
     * gateway predicts every block it causes: it keeps its exact count. */
    double others_since[POD_MAX];
    struct kvindex *kx = __atomic_load_n(&g->kvx, __ATOMIC_ACQUIRE);
    double mu = atomic_load_explicit(&g->mean_uncached, memory_order_relaxed);
    if (exact && kx && mu > 0 && in.load_share < LOAD_SHARE_ALONE) {
        for (uint32_t i = 0; i < POD_MAX; i++)
            others_since[i] = -1; /* not read: extrapolated (approximate pods) */
        for (uint32_t i = 0; i < s->npods; i++) {
            const struct pod_info *p = &s->pods[i];
            if (kvx_pod_mode(kx, p->slot) != KVX_EXACT)
                continue;
            uint64_t tok = kvx_pod_foreign_tokens(kx, p->slot);
            others_since[p->slot] =
                tok > p->foreign_at_scrape ? (double)(tok - p->foreign_at_scrape) / mu : 0.0;
        }
        in.others_since = others_since;
    }
    if (cand == ARM_ONLY && ro_share >= 0) { /* a guarded rollout sets the canary's share */
        in.canary_set = 1;
        in.canary_pct = ro_share;
    }
    if (exclude_slot == UINT32_MAX) /* a first attempt: the retry budget grows */
        retry_budget_deposit(&g->outlier);
    else if (g->outlier.cfg.recent_ms) /* a retry avoids every pod that just failed */
        in.avoid_failed_since_ns = r->t_decide - (uint64_t)g->outlier.cfg.recent_ms * 1000000ull;
    policy_pick(&cfg, s, &g->counters, &g->pstate, &in, &r->d);
    if (cand != ARM_ONLY)
        r->d.arm = cand;
    if (r->d.status != ROUTE_OK) {
        snapshot_put(s);
        r->t_routed = ev_now_ns();
        return r->d.status;
    }
    /* the arm, as the token counters and the log name it: the mode when
     * it takes all traffic, else "canary" / "baseline" (a rollout's share
     * included) */
    r->arm = route_arm_name(r->d.arm, r->d.mode);
    const struct pod_info *p = &s->pods[r->d.idx];
    r->pod.slot = p->slot;
    memcpy(r->pod.name, p->name, sizeof(r->pod.name));
    memcpy(r->pod.host, p->host, sizeof(r->pod.host));
    r->pod.port = p->port;
    r->pod.addr = p->addr;
    r->pod.addrlen = p->addrlen;
    r->pod.h2c = p->h2c;
    snapshot_put(s);
    atomic_fetch_add(&g->counters.inflight[r->pod.slot], 1);
    r->routed = 1;
    double cached = match[r->pod.slot] * in.tokens_per_key;
    uint32_t uncached = cached >= r->prompt_tokens ? 0 : r->prompt_tokens - (uint32_t)cached;
    tokload_route(&g->tl, &r->tlr, r->pod.slot, r->prompt_tokens, uncached);
    if (uncached) { /* racy between workers: a mean, not a count */
        double m = atomic_load_explicit(&g->mean_uncached, memory_order_relaxed);
        atomic_store_explicit(&g->mean_uncached,
                              m > 0 ? m + ((double)uncached - m) / 64.0 : (double)uncached,
                              memory_order_relaxed);
    }
    /* the chosen pod will hold this prefix once it has prefilled it
     * (gw_route_withdraw takes the new part back if the attempt fails
     * before that) */
    r->credit_from = approx[r->pod.slot] < r->nkeys ? approx[r->pod.slot] : r->nkeys;
    if (r->nkeys)
        pidx_insert(g->pidx, r->pod.slot, r->keys, r->nkeys);
    if (exact)
        gw_exact_routed(g, r, r->pod.slot, match[r->pod.slot]);
    else
        r->index_mode = by_prefix ? "approximate" : NULL;
    if (sh)
        session_put(g->sessions, sh, r->pod.slot);
    if (r->d.fail_open)
        r->fallback = "fail_open";
    else if (r->d.degraded)
        r->fallback = "degraded";
    else if (r->d.all_saturated)
        r->fallback = "all_saturated";
    else if (r->d.bounded)
        r->fallback = "bounded_load";
    else if (r->d.stale)
        r->fallback = "stale_metrics";
    r->t_routed = ev_now_ns();
    return ROUTE_OK;
}

void gw_route_release(struct gw *g, struct gw_request *r)
{
    if (r->routed) {
        if (!r->idle)
            atomic_fetch_sub(&g->counters.inflight[r->pod.slot], 1);
        tokload_release(&g->tl, &r->tlr);
        r->routed = 0;
        r->idle = 0;
    }
}

void gw_route_idle(struct gw *g, struct gw_request *r, int idle)
{
    if (!r->routed || !!idle == r->idle)
        return;
    r->idle = !!idle;
    if (r->idle) {
        atomic_fetch_sub(&g->counters.inflight[r->pod.slot], 1);
        tokload_release(&g->tl, &r->tlr); /* the first request's tokens are done */
    } else {
        atomic_fetch_add(&g->counters.inflight[r->pod.slot], 1);
    }
}

void gw_route_withdraw(struct gw *g, struct gw_request *r)
{
    if (r->nkeys > r->credit_from)
        pidx_withdraw(g->pidx, r->pod.slot, r->keys + r->credit_from,
                      r->nkeys - r->credit_from);
    r->credit_from = r->nkeys; /* once */
    gw_exact_withdraw(g, r);
}

void gw_pod_failed(struct gw *g, uint32_t slot)
{
    if (slot < POD_MAX)
        atomic_store(&g->counters.down_until_ns[slot], ev_now_ns() + POD_DOWN_NS);
}

void gw_attempt_done(struct gw *g, uint32_t slot, int ok)
{
    /* an ejection shows as kvgate_pod_ejected / kvgate_pod_ejections_total */
    outlier_record(&g->outlier, &g->counters, slot, ok, ev_now_ns());
}

int gw_retry_allowed(struct gw *g)
{
    if (retry_budget_take(&g->outlier, ev_now_ns()))
        return 1;
    gw_metrics_limit(g->metrics, "retry_budget");
    return 0;
}

/* How a request ended, from the gateway's side (the status says what the
 * client got): one label value for kvgate_requests_total and the log. */
static const char *outcome_of(const struct gw_request *r)
{
    const char *e = r->error;
    if (!e)
        return r->status >= 500 && r->d.idx >= 0 ? "pod_error" : "ok";
    if (!strcmp(e, "client_closed"))
        return "client_abort";
    if (!strcmp(e, "shutdown") || !strcmp(e, "bypass_worker_gone"))
        return "shutdown";
    if (!strcmp(e, "upstream_timeout") || !strcmp(e, "stream_idle_timeout") ||
        !strcmp(e, "send_timeout") || !strcmp(e, "header_timeout"))
        return "timeout";
    if (!strncmp(e, "upstream_", 9))
        return "pod_error";
    return "rejected"; /* answered by the gateway itself: 4xx, no pod, a local limit */
}

void gw_request_event(struct gw *g, struct gw_request *r, uint64_t now_ns)
{
    if (r->t_prev_event && now_ns >= r->t_prev_event)
        gw_metrics_itl(g->metrics, r, (double)(now_ns - r->t_prev_event) / 1e9);
    r->t_prev_event = now_ns;
    if (r->tlr.phase == TL_PREFILL)
        tokload_first_token(&g->tl, &r->tlr, now_ns);
    else
        tokload_output(&g->tl, &r->tlr, 1);
}

void gw_request_sent(struct gw *g, struct gw_request *r, uint64_t now_ns)
{
    (void)g;
    if (r->tlr.phase == TL_PREFILL)
        r->tlr.sent_ns = now_ns;
}

void gw_request_answered(struct gw *g, struct gw_request *r, uint64_t now_ns)
{
    if (r->stream || r->tlr.phase != TL_PREFILL)
        return;
    r->tlr.sent_ns = 0; /* the head comes after the whole answer: no rate sample */
    tokload_first_token(&g->tl, &r->tlr, now_ns);
}

/* A routed request's figures for the guarded rollout's arm (core/rollout.h).
 * An error is what the pod or the gateway's path to it did (pod_error,
 * timeout), not a client leaving or a request refused. ITL is the
 * request's mean gap between content events, so the rollout's ITL p50 is
 * the median request's. Hit: the pods' own count where the answer carried
 * one, else the prefix the policy matched on the chosen pod. */
static void rollout_sample(const struct gw_request *r, struct ro_sample *s)
{
    *s = (struct ro_sample){.ttft_ms = -1, .itl_ms = -1};
    s->error = !strcmp(r->outcome, "pod_error") || !strcmp(r->outcome, "timeout");
    if (r->t_first_token && r->t_first_token >= r->t_start)
        s->ttft_ms = (double)(r->t_first_token - r->t_start) / 1e6;
    if (r->events > 1 && r->t_last_token > r->t_first_token)
        s->itl_ms = (double)(r->t_last_token - r->t_first_token) / 1e6 / (double)(r->events - 1);
    if (r->tokens.src == GW_USAGE_REPORTED) { /* the pod's own count (accounting.h) */
        s->prompt_tokens = r->tokens.prompt;
        s->cached_tokens = r->tokens.cached;
        return;
    }
    s->prompt_tokens = r->prompt_tokens;
    if (r->d.blocks)
        s->cached_tokens = (uint64_t)((double)r->prompt_tokens * r->d.prefix_blocks / r->d.blocks);
}

/* What the request cost: its computed tokens (uncached prompt + completion,
 * as counted for it) at its pod's rate (core/podutil.h); -1 when the pod
 * is unpriced. */
static double request_cost(struct gw *g, const struct gw_request *r)
{
    if (r->d.idx < 0 || r->pod.slot >= POD_MAX)
        return -1;
    uint64_t bits = atomic_load_explicit(&g->cost_rate[r->pod.slot], memory_order_relaxed);
    double rate;
    memcpy(&rate, &bits, sizeof(rate));
    if (rate < 0)
        return -1;
    const struct gw_tokens *t = &r->tokens;
    uint64_t cached = t->cached < t->prompt ? t->cached : t->prompt;
    return rate * (double)(t->prompt - cached + t->completion);
}

void gw_request_done(struct gw *g, struct gw_request *r)
{
    if (!r->t_end)
        r->t_end = ev_now_ns();
    r->outcome = outcome_of(r);
    if (!g->cfg.accounting) /* accounting.enabled off (config.c): no tokens, cost or books */
        r->tokens.src = GW_USAGE_NONE;
    r->cost = g->cfg.accounting ? request_cost(g, r) : -1;
    struct gw_labels lb;
    if (!g->cfg.accounting) {
        gw_metrics_request(g->metrics, r);
        accesslog_write(g->alog, r);
        return;
    }
    /* the report's labels come with the metrics' (one trip through their lock) */
    gw_metrics_request_labeled(g->metrics, r, &lb);
    accesslog_write(g->alog, r);
    if (r->d.status != ROUTE_OK || r->d.idx < 0 || !r->pod.name[0])
        return; /* never reached a pod: the report and the rollout judge pods' work */
    struct ro_sample s;
    rollout_sample(r, &s);
    if (r->d.arm != ARM_ONLY && rollout_share(g->rollout) >= 0)
        rollout_record(g->rollout, r->tenant, r->wclass,
                       r->d.arm == ARM_CANARY ? RO_CANARY : RO_BASELINE, &s);
    /* the report counts tokens exactly as the token counters do (the
     * pod's usage, else the gateway's estimate, none for a non-2xx) so
     * that Prometheus's rules over them agree with it */
    struct report_key k = {lb.model, lb.tenant, lb.wclass, route_arm_name(r->d.arm, r->d.mode)};
    struct report_sample rs = {
        .error = s.error, .ttft_ms = s.ttft_ms, .itl_ms = s.itl_ms,
        .prompt_tokens = r->tokens.prompt, .cached_tokens = r->tokens.cached,
        .completion_tokens = r->tokens.completion,
        .estimated = r->tokens.src == GW_USAGE_ESTIMATED,
        .cost = r->cost,
    };
    report_record(g->report, &k, &rs, r->t_end);
}

void gw_models_json(struct gw *g, struct sbuf *out)
{
    struct pod_snapshot *s = snapshot_get();
    sbuf_puts(out, "{\"object\":\"list\",\"data\":[");
    int first = 1;
    long now = (long)time(NULL);
    for (uint32_t i = 0; s && i < s->npods; i++) {
        const struct pod_info *p = &s->pods[i];
        for (uint32_t k = 0; k < p->nmodels + p->nadapters; k++) {
            const char *id = k < p->nmodels ? p->models[k] : p->adapters[k - p->nmodels];
            /* skip names an earlier pod (or this one) already listed */
            int dup = 0;
            for (uint32_t j = 0; j <= i && !dup; j++) {
                const struct pod_info *q = &s->pods[j];
                uint32_t lim = j == i ? k : q->nmodels + q->nadapters;
                for (uint32_t m = 0; m < lim && !dup; m++)
                    dup = !strcmp(id, m < q->nmodels ? q->models[m] : q->adapters[m - q->nmodels]);
            }
            if (dup)
                continue;
            sbuf_puts(out, first ? "{\"id\":\"" : ",{\"id\":\"");
            sbuf_json_escape(out, id, strlen(id));
            sbuf_printf(out, "\",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"kvgate\"", now);
            if (k >= p->nmodels && p->nmodels) {
                sbuf_puts(out, ",\"parent\":\"");
                sbuf_json_escape(out, p->models[0], strlen(p->models[0]));
                sbuf_puts(out, "\"");
            }
            sbuf_puts(out, "}");
            first = 0;
        }
    }
    sbuf_puts(out, "]}");
    snapshot_put(s);
}
