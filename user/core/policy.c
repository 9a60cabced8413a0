/* policy: filters, scorers, picker. See policy.h. */
#include "core/policy.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "core/tokload.h"

static const char *MODE_NAMES[] = {"prefix-aware", "least-request", "round-robin", "random",
                                   "token-load"};
static const char *REASON_NAMES[] = {"prefix", "load", "session", "least-request",
                                     "round-robin", "random", "degraded"};

void policy_defaults(struct policy_cfg *c)
{
    /* defaults from the Gateway API Inference Extension endpoint picker */
    *c = (struct policy_cfg){
        .mode = POLICY_PREFIX_AWARE, .baseline = POLICY_ROUND_ROBIN,
        .canary_pct = 100, .w_prefix = 3, .w_queue = 2, .w_kv = 2,
        .w_lora = 1, .w_session = 1, .queue_sat = 5, .kv_sat = 0.8,
        .stale_ms = 200, .bounded_load = 1.25, .bounded_floor = 8,
        .bounded_session = 2.0,
    };
}

const char *policy_mode_name(enum policy_mode m)
{
    return (unsigned)m < POLICY__COUNT ? MODE_NAMES[m] : "?";
}

int policy_mode_parse(const char *s, enum policy_mode *m)
{
    for (int i = 0; i < POLICY__COUNT; i++)
        if (!strcmp(s, MODE_NAMES[i])) {
            *m = (enum policy_mode)i;
            return 0;
        }
    return -EINVAL;
}

const char *route_arm_name(enum route_arm a, enum policy_mode mode)
{
    return a == ARM_CANARY ? "canary" : a == ARM_BASELINE ? "baseline" : policy_mode_name(mode);
}

const char *route_reason_name(enum route_reason r)
{
    return (unsigned)r < REASON__COUNT ? REASON_NAMES[r] : "?";
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

struct cand {
    int idx;
    uint32_t slot, inflight; /* inflight: ours (both paths) */
    double est_waiting;
    double ktok; /* tokens of the requests the kernel sent the pod (estimated) */
    uint8_t fresh, sat, adapter_hot;
    uint8_t out; /* down, ejected, or (a retry) just failed */
};

static int scrape_fresh(const struct policy_cfg *cfg, const struct pod_info *p, uint64_t now_ns)
{
    uint64_t age = now_ns > p->scraped_ns ? now_ns - p->scraped_ns : 0;
    return p->metrics_ok && age <= (uint64_t)cfg->stale_ms * 1000000ull;
}

double pod_load_estimate(const struct policy_cfg *cfg, const struct pod_info *p, uint32_t own,
                         double share, uint64_t now_ns)
{
    double load = own;
    if (!scrape_fresh(cfg, p, now_ns))
        return load;
    double others = p->running + p->waiting - (double)p->own_at_scrape;
    if (others > 0)
        load += others;
    double sh = share > 0 && share < 1 ? share : 1;
    double since = (double)own - (double)p->own_at_scrape;
    if (since > 0)
        load += since * (1.0 / sh - 1.0);
    return load;
}

void pod_fitness(const struct policy_cfg *cfg, const struct pod_info *p, double load,
                 uint64_t now_ns, int own_session, struct pod_fitness *out)
{
    double extra = load - p->running;
    out->est_waiting = extra > p->waiting ? extra : p->waiting;
    out->fresh = scrape_fresh(cfg, p, now_ns);
    /* a session's own pod holds its whole history: a queue that would
     * send a fresh request elsewhere is worth waiting in longer than
     * re-paying the history's prefill on another pod (bench/ multi-turn
     * at 22 sessions/s: hit rate 59% -> 67% of an ideal 71%, output
     * tokens/s +4%). KV saturation is not relaxed. */
    double qsat = cfg->queue_sat;
    if (own_session && cfg->bounded_load > 0 && cfg->bounded_session > cfg->bounded_load)
        qsat *= cfg->bounded_session / cfg->bounded_load;
    out->saturated = !out->fresh || out->est_waiting >= qsat || p->kv_usage >= cfg->kv_sat;
}

static int pick_simple(enum policy_mode m, struct cand *c, int n,
                       struct policy_state *st, uint64_t rnd)
{
    if (m == POLICY_ROUND_ROBIN)
        return (int)(atomic_fetch_add(&st->rr, 1) % (uint64_t)n);
    if (m == POLICY_RANDOM)
        return (int)(rnd % (uint64_t)n);
    /* least-request: fewest in flight at the gateway, random among equals */
    int best = -1, ties = 0;
    for (int i = 0; i < n; i++) {
        if (best < 0 || c[i].inflight < c[best].inflight) {
            best = i;
            ties = 1;
        } else if (c[i].inflight == c[best].inflight) {
            ties++; /* reservoir: each equal pod wins with 1/ties */
            if (mix(rnd + (uint64_t)ties) % (uint64_t)ties == 0)
                best = i;
        }
    }
    return best;
}

/* The saturation filter, unless it would leave nobody: positions into c
 * in keep[], returns how many. With no fresh metrics at all the decision is
 * degraded and nobody is filtered. */
static int keep_unsaturated(const struct cand *c, int n, struct route_decision *out, int *keep)
{
    int nfresh = 0, nk = 0;
    for (int i = 0; i < n; i++)
        nfresh += c[i].fresh;
    out->degraded = nfresh == 0;
    for (int i = 0; i < n; i++)
        if (out->degraded || !c[i].sat)
            keep[nk++] = i;
    if (nk == 0) {
        out->all_saturated = 1;
        for (int i = 0; i < n; i++)
            keep[nk++] = i;
    }
    return nk;
}

/* Prefix-aware over candidates c[0..n); returns the chosen position. */
static int pick_scored(const struct policy_cfg *cfg, const struct pod_snapshot *s,
                       struct cand *c, int n, const struct route_input *in,
                       struct route_decision *out)
{
    int keep[POD_MAX];
    int nk = keep_unsaturated(c, n, out, keep);

    /* bounded load (consistent hashing with bounded loads): no pod above
     * c x the mean in-flight, counting this request. The floor keeps the
     * guard from scattering a shared prefix at low load, where one pod
     * batching it costs nothing; the saturation filter covers queueing.
     * A session's own pod gets a looser bound (bounded_session): the guard
     * exists for prefixes many requests share at once, while a session's
     * history is one request at a time, and moving it re-pays its whole
     * prefill elsewhere (in bench/'s multi-turn run at 22 sessions/s the
     * 1.25 bound moved half the turns off their pod and hit rate fell from
     * 71% to 52%).
     * The guard counts this gateway's own requests, also among replicas:
     * each bounds how it spreads what it sends, while the saturation
     * filter and the queue score see every sender's load (pod_fitness on
     * pod_load_estimate). Judging the guard in the fleet's terms too was
     * measured worse: bench/ trace-mooncake at 15x, 3 replicas against 1,
     * 4-5 repeats: TTFT p50 1.3-1.8x of one replica's and 3-8 points of
     * hit rate lost (the fleet estimate is noisy at a replica's small
     * counts, and the guard fired on 80-90% of decisions instead of
     * 50-60%), against 1.08x and no hit rate lost this way. */
    if (cfg->bounded_load > 0 && nk > 1) {
        double total = 0;
        for (int k = 0; k < nk; k++)
            total += c[keep[k]].inflight;
        double limit = cfg->bounded_load * (total + 1) / nk;
        if (limit < cfg->bounded_floor)
            limit = cfg->bounded_floor;
        double slimit = cfg->bounded_session * (total + 1) / nk;
        if (slimit < limit)
            slimit = limit;
        /* A pod's bound grows with what moving off it would re-pay: the
         * share of the request it holds that no other candidate holds
         * (held - the best other's held). A session's own pod holds the
         * whole history: slimit. A prefix every pod holds (a common
         * system prompt) earns nothing, so balance is kept there; a hot
         * prefix one pod holds alone may pile up to slimit before it is
         * copied elsewhere. bench/ trace-mooncake at 15x: hit rate 83.5%
         * -> 95.5% of the finite ceiling, TTFT p50 122 -> 109 ms. */
        double held[POD_MAX], best1 = 0, best2 = 0;
        for (int k = 0; k < nk; k++) {
            const struct cand *x = &c[keep[k]];
            held[k] = in->nkeys ? (double)in->match[x->slot] / in->nkeys : 0.0;
            if (held[k] > best1) {
                best2 = best1;
                best1 = held[k];
            } else if (held[k] > best2) {
                best2 = held[k];
            }
        }
        int nk2 = 0, tmp[POD_MAX];
        for (int k = 0; k < nk; k++) {
            const struct cand *x = &c[keep[k]];
            double adv = 1.0;
            if ((int)x->slot != in->session_slot) {
                double other = held[k] >= best1 ? best2 : best1;
                adv = held[k] > other ? held[k] - other : 0.0;
            }
            if (x->inflight + 1 <= limit + (slimit - limit) * adv)
                tmp[nk2++] = keep[k];
        }
        if (nk2 > 0 && nk2 < nk) {
            out->bounded = 1;
            memcpy(keep, tmp, (size_t)nk2 * sizeof(int));
            nk = nk2;
        }
    }

    double qmin = 1e300, qmax = -1e300, fmax = 0;
    for (int k = 0; k < nk; k++) {
        struct cand *x = &c[keep[k]];
        double q = out->degraded ? (double)x->inflight : x->est_waiting;
        if (q < qmin) qmin = q;
        if (q > qmax) qmax = q;
    }
    int best = -1, ties = 0;
    double best_score = -1e300, best_prefix = 0, best_session = 0;
    for (int k = 0; k < nk; k++) {
        struct cand *x = &c[keep[k]];
        const struct pod_info *p = &s->pods[x->idx];
        double q = out->degraded ? (double)x->inflight : x->est_waiting;
        double qs = qmax > qmin ? (qmax - q) / (qmax - qmin) : 1.0;
        double ps = in->nkeys ? (double)in->match[x->slot] / in->nkeys : 0.0;
        double ks = out->degraded ? 0.0 : 1.0 - (p->kv_usage > 1 ? 1 : p->kv_usage);
        double ls = x->adapter_hot ? 1.0 : 0.0;
        double ss = (int)x->slot == in->session_slot ? 1.0 : 0.0;
        double score = cfg->w_prefix * ps + cfg->w_queue * qs + cfg->w_kv * ks +
                       cfg->w_lora * ls + cfg->w_session * ss;
        if (ps > fmax)
            fmax = ps;
        if (score > best_score + 1e-12) {
            best = keep[k];
            best_score = score;
            best_prefix = ps;
            best_session = ss;
            ties = 1;
        } else if (score > best_score - 1e-12) {
            ties++; /* reservoir: each equal pod wins with 1/ties */
            if (mix(in->rand ^ (uint64_t)(k + 1) * 0x9E3779B97F4A7C15ull) % (uint64_t)ties == 0) {
                best = keep[k];
                best_prefix = ps;
                best_session = ss;
            }
        }
    }
    out->score = best_score;
    if (out->degraded)
        out->reason = REASON_DEGRADED;
    else if (best_prefix > 0 && best_prefix >= fmax)
        out->reason = REASON_PREFIX;
    else if (best_session > 0)
        out->reason = REASON_SESSION;
    else
        out->reason = REASON_LOAD;
    return best;
}

/* Token-load over candidates c[0..n): the least estimated time to the
 * first token (see policy.h). Pods with no measured rate yet take the mean
 * of the measured ones; with none measured every rate is 1 and the
 * comparison is in tokens alone. Ties: less decode load, then at random. */
static int pick_token_load(const struct cand *c, int n, const struct route_input *in,
                           struct route_decision *out)
{
    int keep[POD_MAX];
    int nk = keep_unsaturated(c, n, out, keep);
    double rsum = 0;
    int rn = 0;
    for (int k = 0; in->tl && k < nk; k++) {
        double r = tokload_rate(in->tl, c[keep[k]].slot);
        if (r > 0) {
            rsum += r;
            rn++;
        }
    }
    double rdef = rn ? rsum / rn : 1.0;
    int best = -1, ties = 0;
    double best_eta = 0, best_dec = 0, best_cached = 0, max_cached = 0;
    for (int k = 0; k < nk; k++) {
        const struct cand *x = &c[keep[k]];
        double cached = in->match ? in->match[x->slot] * in->tokens_per_key : 0;
        if (cached > in->prompt_tokens)
            cached = in->prompt_tokens;
        double queued = in->tl ? (double)tokload_prefill(in->tl, x->slot) : 0;
        double dec = in->tl ? (double)tokload_decode(in->tl, x->slot) + x->ktok : x->inflight;
        double r = in->tl ? tokload_rate(in->tl, x->slot) : 0;
        double eta = (queued + in->prompt_tokens - cached) / (r > 0 ? r : rdef);
        if (cached > max_cached)
            max_cached = cached;
        int better = best < 0 || eta < best_eta * (1 - 1e-9) ||
                     (eta <= best_eta * (1 + 1e-9) && dec < best_dec);
        int equal = !better && eta <= best_eta * (1 + 1e-9) && dec == best_dec;
        if (better) {
            ties = 1;
        } else if (equal) {
            ties++; /* reservoir: each equal pod wins with 1/ties */
            if (mix(in->rand ^ (uint64_t)(k + 1) * 0x9E3779B97F4A7C15ull) % (uint64_t)ties)
                continue;
        } else {
            continue;
        }
        best = keep[k];
        best_eta = eta;
        best_dec = dec;
        best_cached = cached;
    }
    out->eta_ms = rn ? best_eta * 1000.0 : 0;
    out->score = -best_eta;
    out->reason = out->degraded                                 ? REASON_DEGRADED
                  : best_cached > 0 && best_cached >= max_cached ? REASON_PREFIX
                                                                 : REASON_LOAD;
    return best;
}

/* The candidates: pods serving the model, healthy, not draining, not the
 * one a retry left; each judged by pod_fitness. Returns how many; *serving
 * counts the pods serving the model at all. */
static int gather(const struct policy_cfg *cfg, const struct pod_snapshot *s,
                  const struct pod_counters *cnt, const struct route_input *in,
                  struct cand *c, int *serving, struct route_decision *out)
{
    int n = 0;
    *serving = 0;
    for (uint32_t i = 0; i < s->npods && n < POD_MAX; i++) {
        const struct pod_info *p = &s->pods[i];
        int aidx = -1;
        int kind = pod_serves(p, in->model, &aidx);
        if (!kind)
            continue;
        ++*serving;
        if (!p->healthy || p->draining || p->slot == in->exclude_slot)
            continue;
        struct cand *x = &c[n++];
        x->out = atomic_load_explicit(&cnt->down_until_ns[p->slot], memory_order_relaxed) > in->now_ns ||
                 atomic_load_explicit(&cnt->ejected_until_ns[p->slot], memory_order_relaxed) > in->now_ns ||
                 (in->avoid_failed_since_ns &&
                  atomic_load_explicit(&cnt->last_fail_ns[p->slot], memory_order_relaxed) >=
                      in->avoid_failed_since_ns);
        x->idx = (int)i;
        x->slot = p->slot;
        x->inflight = pod_inflight(cnt, p->slot); /* every path counts */
        x->ktok = in->bytes_per_token > 0 ? pod_kernel_inflight(cnt, p->slot) *
                                                pod_kernel_mean_body(cnt, p->slot) /
                                                in->bytes_per_token
                                          : 0;
        struct pod_fitness fit;
        /* the others' sends since the scrape: read from the pod's KV events
         * where a replica has them, else extrapolated from its share */
        double since = in->others_since ? in->others_since[p->slot] : -1.0;
        double load = since >= 0
                          ? pod_load_estimate(cfg, p, x->inflight, 1.0, in->now_ns) +
                                (scrape_fresh(cfg, p, in->now_ns) ? since : 0.0)
                          : pod_load_estimate(cfg, p, x->inflight, in->load_share, in->now_ns);
        pod_fitness(cfg, p, load, in->now_ns, (int)p->slot == in->session_slot, &fit);
        x->est_waiting = fit.est_waiting;
        x->fresh = fit.fresh;
        x->sat = fit.saturated;
        x->adapter_hot = kind == 2 && aidx >= 0 && aidx < 64 && (p->running_loras >> aidx & 1);
        out->stale += !x->fresh;
    }
    return n;
}

void policy_pick(const struct policy_cfg *cfg, const struct pod_snapshot *s,
                 const struct pod_counters *cnt, struct policy_state *st,
                 const struct route_input *in, struct route_decision *out)
{
    struct cand c[POD_MAX];
    int serving;
    memset(out, 0, sizeof(*out));
    out->idx = out->shadow_idx = -1;
    int n = gather(cfg, s, cnt, in, c, &serving, out);
    /* leave out the pods the data path saw fail, unless that leaves none */
    int nin = 0;
    for (int i = 0; i < n; i++)
        nin += !c[i].out;
    if (nin == 0 && n > 0) {
        out->fail_open = 1;
        out->ejected = (uint32_t)n;
    } else if (nin < n) {
        int k = 0;
        out->stale = 0;
        for (int i = 0; i < n; i++)
            if (!c[i].out) {
                c[k++] = c[i];
                out->stale += !c[i].fresh;
            }
        out->ejected = (uint32_t)(n - nin);
        n = k;
    }
    out->candidates = (uint32_t)n;
    if (n == 0) {
        out->status = serving ? ROUTE_NO_POD : ROUTE_UNKNOWN_MODEL;
        return;
    }

    /* which mode routes this request */
    enum policy_mode mode = cfg->mode;
    double canary = in->canary_set ? in->canary_pct : cfg->canary_pct;
    out->arm = ARM_ONLY;
    if (cfg->shadow) {
        mode = cfg->baseline;
        out->arm = ARM_BASELINE;
    } else if (canary < 100) {
        double draw = (double)(mix(in->rand ^ 0xC0FFEE) % 10000) / 100.0;
        out->arm = draw >= canary ? ARM_BASELINE : ARM_CANARY;
        if (out->arm == ARM_BASELINE)
            mode = cfg->baseline;
    }
    out->mode = mode;

    int pos;
    if (mode == POLICY_PREFIX_AWARE) {
        pos = pick_scored(cfg, s, c, n, in, out);
    } else if (mode == POLICY_TOKEN_LOAD) {
        pos = pick_token_load(c, n, in, out);
    } else {
        pos = pick_simple(mode, c, n, st, in->rand);
        out->reason = mode == POLICY_ROUND_ROBIN ? REASON_ROUND_ROBIN
                      : mode == POLICY_RANDOM    ? REASON_RANDOM
                                                 : REASON_LEAST_REQUEST;
    }
    if (cfg->shadow && cfg->mode != mode) {
        struct route_decision shadow;
        memset(&shadow, 0, sizeof(shadow));
        int sp = cfg->mode == POLICY_PREFIX_AWARE ? pick_scored(cfg, s, c, n, in, &shadow)
                 : cfg->mode == POLICY_TOKEN_LOAD ? pick_token_load(c, n, in, &shadow)
                                                  : pick_simple(cfg->mode, c, n, st, in->rand);
        out->shadow_idx = c[sp].idx;
        out->shadow_prefix_blocks = in->match ? in->match[c[sp].slot] : 0;
    }
    out->status = ROUTE_OK;
    out->idx = c[pos].idx;
    out->prefix_blocks = in->match ? in->match[c[pos].slot] : 0;
    out->blocks = in->nkeys;
}

void load_share_update(struct load_share *ls, double own, double pods, uint64_t now_ns)
{
    if (own < 0)
        own = 0;
    if (pods < 0)
        pods = 0;
    if (!ls->at_ns || now_ns <= ls->at_ns) {
        if (!ls->at_ns) {
            ls->own = own;
            ls->pods = pods;
        }
        ls->at_ns = now_ns ? now_ns : 1;
        return;
    }
    double a = 1.0 - exp(-(double)(now_ns - ls->at_ns) / (double)LOAD_SHARE_TAU_NS);
    ls->own += a * (own - ls->own);
    ls->pods += a * (pods - ls->pods);
    ls->at_ns = now_ns;
}

double load_share_value(const struct load_share *ls)
{
    if (ls->pods <= 0 || ls->own >= ls->pods)
        return 1.0;
    double v = ls->own / ls->pods;
    return v < 1.0 / POD_MAX ? 1.0 / POD_MAX : v;
}
