/* rollout: the guarded canary's state machine and its per-step book. See
 * rollout.h. */
#include "core/rollout.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "core/loghist.h"

struct arm_book {
    uint64_t n, errors, prompt, cached;
    struct loghist ttft, itl;
};

struct group {
    char kind[8];
    char name[RO_NAME_MAX];
    struct arm_book arm[2];
};

struct rollout {
    pthread_mutex_t mu;
    struct rollout_cfg cfg;
    enum rollout_state state;
    int step;
    uint64_t step_start_ns;   /* running: when the step's clock started */
    uint64_t paused_age_ns;   /* paused: how far the step had run */
    _Atomic double share;     /* read per request without the lock */
    uint64_t rollbacks, completions;
    int has_verdict;
    struct ro_verdict verdict;
    char last[160];
    int ngroups;
    struct group *groups[RO_GROUPS_MAX + 3];
};

static const char *STATE_NAMES[] = {"idle", "running", "paused", "complete", "rolled_back",
                                    "aborted"};
static const char *MEASURE_NAMES[] = {"ttft_p99", "itl_p50", "error_share", "hit_rate"};

const char *rollout_state_name(enum rollout_state s)
{
    return (unsigned)s <= RO_ABORTED ? STATE_NAMES[s] : "?";
}

const char *rollout_measure_name(enum ro_measure m)
{
    return (unsigned)m < RO_M__COUNT ? MEASURE_NAMES[m] : "?";
}

void rollout_defaults(struct rollout_cfg *c)
{
    *c = (struct rollout_cfg){
        .steps = {1, 5, 25, 50, 100}, .nsteps = 5, .hold_ms = 60000, .min_samples = 50,
        .tol_ttft_p99 = 0.25, .tol_itl_p50 = 0.25, .tol_error = 0.01, .tol_hit = 0.05,
        .slack_ms = 5,
    };
}

int rollout_cfg_check(const struct rollout_cfg *c, const char **why)
{
    const char *w = NULL;
    if (c->nsteps < 2 || c->nsteps > RO_STEPS_MAX)
        w = "steps: between 2 and 16 of them";
    for (int i = 0; !w && i < c->nsteps; i++) {
        if (!(c->steps[i] > 0 && c->steps[i] <= 100))
            w = "steps: each in (0, 100]";
        else if (i && c->steps[i] <= c->steps[i - 1])
            w = "steps: increasing";
    }
    if (!w && c->steps[c->nsteps - 1] != 100)
        w = "steps: the last is 100";
    if (!w && c->hold_ms == 0)
        w = "hold_ms: > 0";
    if (!w && c->min_samples == 0)
        w = "min_samples: > 0";
    if (!w && !(c->tol_ttft_p99 >= 0 && c->tol_itl_p50 >= 0 && c->tol_error >= 0 &&
                c->tol_hit >= 0 && c->slack_ms >= 0))
        w = "tolerances: >= 0";
    if (why)
        *why = w;
    return w ? -EINVAL : 0;
}

/* ---- the book ---- */

static void book_clear(struct rollout *r)
{
    for (int i = 0; i < r->ngroups; i++)
        kv_free(r->groups[i]);
    r->ngroups = 0;
}

/* "all", up to RO_GROUPS_MAX tenant and class names, then each kind's
 * "other" (two slots kept for them): the book is bounded whatever names
 * the clients send. */
static struct group *group_get(struct rollout *r, const char *kind, const char *name)
{
    int named = 0;
    for (int i = 0; i < r->ngroups; i++) {
        struct group *g = r->groups[i];
        if (!strcmp(g->kind, kind) && !strcmp(g->name, name))
            return g;
        named += strcmp(g->kind, "all") && strcmp(g->name, "other");
    }
    int special = !strcmp(kind, "all") || !strcmp(name, "other");
    if (!special && named >= RO_GROUPS_MAX)
        return group_get(r, kind, "other");
    if (r->ngroups >= RO_GROUPS_MAX + 3)
        return NULL;
    struct group *g = kv_calloc(1, sizeof(*g));
    if (!g)
        return NULL; /* the sample goes uncounted in this group */
    snprintf(g->kind, sizeof(g->kind), "%s", kind);
    snprintf(g->name, sizeof(g->name), "%s", name);
    r->groups[r->ngroups++] = g;
    return g;
}

static void arm_add(struct arm_book *a, const struct ro_sample *s)
{
    a->n++;
    a->errors += s->error != 0;
    a->prompt += s->prompt_tokens;
    a->cached += s->cached_tokens < s->prompt_tokens ? s->cached_tokens : s->prompt_tokens;
    if (s->ttft_ms >= 0)
        loghist_add(&a->ttft, s->ttft_ms);
    if (s->itl_ms >= 0)
        loghist_add(&a->itl, s->itl_ms);
}

static void figures(const struct arm_book *a, struct ro_figures *f)
{
    f->n = a->n;
    f->errors = a->errors;
    f->prompt_tokens = a->prompt;
    f->cached_tokens = a->cached;
    f->ttft_p99 = loghist_quantile(&a->ttft, 0.99);
    f->itl_p50 = loghist_quantile(&a->itl, 0.50);
}

/* ---- state ---- */

static void set_share(struct rollout *r, double s)
{
    atomic_store_explicit(&r->share, s, memory_order_relaxed);
}

struct rollout *rollout_new(const struct rollout_cfg *cfg)
{
    struct rollout *r = kv_calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (cfg) {
        if (rollout_cfg_check(cfg, NULL)) {
            kv_free(r);
            errno = EINVAL;
            return NULL;
        }
        r->cfg = *cfg;
    } else {
        rollout_defaults(&r->cfg);
    }
    pthread_mutex_init(&r->mu, NULL);
    r->state = RO_IDLE;
    r->step = -1;
    set_share(r, -1);
    return r;
}

void rollout_free(struct rollout *r)
{
    if (!r)
        return;
    book_clear(r);
    pthread_mutex_destroy(&r->mu);
    kv_free(r);
}

int rollout_set_cfg(struct rollout *r, const struct rollout_cfg *cfg)
{
    if (rollout_cfg_check(cfg, NULL))
        return -EINVAL;
    pthread_mutex_lock(&r->mu);
    r->cfg = *cfg;
    if (r->step >= r->cfg.nsteps)
        r->step = r->cfg.nsteps - 1;
    if (r->state == RO_RUNNING || r->state == RO_PAUSED)
        set_share(r, r->cfg.steps[r->step]);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static void enter_step(struct rollout *r, int step, uint64_t now_ns)
{
    r->step = step;
    r->step_start_ns = now_ns;
    r->paused_age_ns = 0;
    book_clear(r);
    set_share(r, r->cfg.steps[step]);
}

int rollout_start(struct rollout *r, uint64_t now_ns)
{
    pthread_mutex_lock(&r->mu);
    r->state = RO_RUNNING;
    r->has_verdict = 0;
    r->last[0] = 0;
    enter_step(r, 0, now_ns);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

int rollout_pause(struct rollout *r, uint64_t now_ns)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->state == RO_PAUSED)
        rc = -EALREADY;
    else if (r->state != RO_RUNNING)
        rc = -EINVAL;
    else {
        r->state = RO_PAUSED;
        r->paused_age_ns = now_ns > r->step_start_ns ? now_ns - r->step_start_ns : 0;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rollout_resume(struct rollout *r, uint64_t now_ns)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->state == RO_RUNNING)
        rc = -EALREADY;
    else if (r->state != RO_PAUSED)
        rc = -EINVAL;
    else {
        r->state = RO_RUNNING;
        r->step_start_ns = now_ns - r->paused_age_ns;
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rollout_abort(struct rollout *r, uint64_t now_ns)
{
    (void)now_ns;
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->state == RO_ABORTED)
        rc = -EALREADY;
    else if (r->state != RO_RUNNING && r->state != RO_PAUSED)
        rc = -EINVAL;
    else {
        r->state = RO_ABORTED;
        set_share(r, 0);
        snprintf(r->last, sizeof(r->last), "step %d (%g%%) aborted by the operator", r->step,
                 r->cfg.steps[r->step]);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

int rollout_reset(struct rollout *r)
{
    int rc = 0;
    pthread_mutex_lock(&r->mu);
    if (r->state == RO_RUNNING || r->state == RO_PAUSED)
        rc = -EINVAL;
    else {
        r->state = RO_IDLE;
        r->step = -1;
        book_clear(r);
        set_share(r, -1);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

double rollout_share(const struct rollout *r)
{
    return atomic_load_explicit(&((struct rollout *)r)->share, memory_order_relaxed);
}

void rollout_record(struct rollout *r, const char *tenant, const char *cls, enum ro_arm arm,
                    const struct ro_sample *s)
{
    if ((unsigned)arm > RO_CANARY)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->state == RO_RUNNING || r->state == RO_PAUSED) {
        struct group *g[3] = {
            group_get(r, "all", "all"),
            group_get(r, "tenant", tenant && *tenant ? tenant : "default"),
            group_get(r, "class", cls && *cls ? cls : "default"),
        };
        for (int i = 0; i < 3; i++)
            if (g[i])
                arm_add(&g[i]->arm[arm], s);
    }
    pthread_mutex_unlock(&r->mu);
}

/* Judges one group: 0 when it passes (or is not judged), 1 with *v filled
 * when a measure fails. *judged is set when both arms had enough samples. */
static int judge(const struct rollout_cfg *c, const struct group *g, struct ro_verdict *v,
                 int *judged)
{
    const struct arm_book *ca = &g->arm[RO_CANARY], *ba = &g->arm[RO_BASELINE];
    *judged = ca->n >= c->min_samples && ba->n >= c->min_samples;
    if (!*judged)
        return 0;
    double cv[RO_M__COUNT], bv[RO_M__COUNT], lim[RO_M__COUNT];
    int have[RO_M__COUNT], worse[RO_M__COUNT];
    cv[RO_M_TTFT_P99] = loghist_quantile(&ca->ttft, 0.99);
    bv[RO_M_TTFT_P99] = loghist_quantile(&ba->ttft, 0.99);
    cv[RO_M_ITL_P50] = loghist_quantile(&ca->itl, 0.50);
    bv[RO_M_ITL_P50] = loghist_quantile(&ba->itl, 0.50);
    cv[RO_M_ERRORS] = (double)ca->errors / (double)ca->n;
    bv[RO_M_ERRORS] = (double)ba->errors / (double)ba->n;
    cv[RO_M_HIT] = ca->prompt ? (double)ca->cached / (double)ca->prompt : -1;
    bv[RO_M_HIT] = ba->prompt ? (double)ba->cached / (double)ba->prompt : -1;
    /* latency needs enough timed samples on both sides, not only requests */
    have[RO_M_TTFT_P99] = ca->ttft.n >= c->min_samples && ba->ttft.n >= c->min_samples;
    have[RO_M_ITL_P50] = ca->itl.n >= c->min_samples && ba->itl.n >= c->min_samples;
    have[RO_M_ERRORS] = 1;
    have[RO_M_HIT] = cv[RO_M_HIT] >= 0 && bv[RO_M_HIT] >= 0;
    lim[RO_M_TTFT_P99] = bv[RO_M_TTFT_P99] * (1 + c->tol_ttft_p99) + c->slack_ms;
    lim[RO_M_ITL_P50] = bv[RO_M_ITL_P50] * (1 + c->tol_itl_p50) + c->slack_ms;
    lim[RO_M_ERRORS] = bv[RO_M_ERRORS] + c->tol_error;
    lim[RO_M_HIT] = bv[RO_M_HIT] - c->tol_hit;
    worse[RO_M_TTFT_P99] = cv[RO_M_TTFT_P99] > lim[RO_M_TTFT_P99];
    worse[RO_M_ITL_P50] = cv[RO_M_ITL_P50] > lim[RO_M_ITL_P50];
    worse[RO_M_ERRORS] = cv[RO_M_ERRORS] > lim[RO_M_ERRORS];
    worse[RO_M_HIT] = cv[RO_M_HIT] < lim[RO_M_HIT];
    /* how far past its limit, in units of the tolerance's own margin, so
     * that measures and groups compare: the worst failure is named */
    double margin[RO_M__COUNT] = {
        lim[RO_M_TTFT_P99] - bv[RO_M_TTFT_P99], lim[RO_M_ITL_P50] - bv[RO_M_ITL_P50],
        c->tol_error, c->tol_hit,
    };
    int worst = -1;
    double sev = 0;
    for (int m = 0; m < RO_M__COUNT; m++) {
        if (!have[m] || !worse[m])
            continue;
        double excess = m == RO_M_HIT ? lim[m] - cv[m] : cv[m] - lim[m];
        double x = excess / (margin[m] > 1e-9 ? margin[m] : 1e-9);
        if (worst < 0 || x > sev) {
            worst = m;
            sev = x;
        }
    }
    if (worst < 0)
        return 0;
    memset(v, 0, sizeof(*v));
    snprintf(v->kind, sizeof(v->kind), "%s", g->kind);
    snprintf(v->name, sizeof(v->name), "%s", g->name);
    v->measure = (enum ro_measure)worst;
    v->canary = cv[worst];
    v->baseline = bv[worst];
    v->limit = lim[worst];
    v->severity = sev;
    v->n_canary = ca->n;
    v->n_baseline = ba->n;
    return 1;
}

enum ro_event rollout_tick(struct rollout *r, uint64_t now_ns)
{
    enum ro_event ev = RO_EV_NONE;
    pthread_mutex_lock(&r->mu);
    if (r->state != RO_RUNNING || now_ns < r->step_start_ns ||
        now_ns - r->step_start_ns < (uint64_t)r->cfg.hold_ms * 1000000ull)
        goto out;
    /* the overall traffic must be judged; until then the step holds on */
    struct group *all = NULL;
    for (int i = 0; i < r->ngroups && !all; i++)
        if (!strcmp(r->groups[i]->kind, "all"))
            all = r->groups[i];
    if (!all || all->arm[RO_CANARY].n < r->cfg.min_samples ||
        all->arm[RO_BASELINE].n < r->cfg.min_samples)
        goto out;
    /* every group judged; the verdict names the most specific kind of
     * group that failed (a tenant, else a class, else all traffic: an
     * aggregate fails because a part of it did), and among those the worst
     * failure (furthest past its limit for its tolerance) */
    int judged_n = 0, nfailed = 0, best_rank = 3;
    struct ro_verdict best = {0};
    for (int i = 0; i < r->ngroups; i++) {
        int judged;
        struct ro_verdict v;
        if (judge(&r->cfg, r->groups[i], &v, &judged)) {
            int rank = !strcmp(v.kind, "tenant") ? 0 : !strcmp(v.kind, "class") ? 1 : 2;
            if (!nfailed || rank < best_rank ||
                (rank == best_rank && v.severity > best.severity)) {
                best = v;
                best_rank = rank;
            }
            nfailed++;
        }
        judged_n += judged;
    }
    if (nfailed) {
        best.failed_checks = nfailed;
        r->state = RO_ROLLED_BACK;
        r->verdict = best;
        r->has_verdict = 1;
        r->rollbacks++;
        set_share(r, 0);
        snprintf(r->last, sizeof(r->last), "step %d (%g%%) failed: %s %s %s (%d of %d groups)",
                 r->step, r->cfg.steps[r->step], best.kind, best.name,
                 rollout_measure_name(best.measure), nfailed, judged_n);
        ev = RO_EV_ROLLED_BACK;
        goto out;
    }
    snprintf(r->last, sizeof(r->last), "step %d (%g%%) passed: %d groups judged", r->step,
             r->cfg.steps[r->step], judged_n);
    if (r->step + 1 >= r->cfg.nsteps - 1) {
        /* the next step is 100 %: nothing left to compare with there */
        r->state = RO_COMPLETE;
        r->step = r->cfg.nsteps - 1;
        r->completions++;
        set_share(r, 100);
        ev = RO_EV_COMPLETED;
    } else {
        enter_step(r, r->step + 1, now_ns);
        ev = RO_EV_ADVANCED;
    }
out:
    pthread_mutex_unlock(&r->mu);
    return ev;
}

void rollout_status(struct rollout *r, uint64_t now_ns, struct rollout_status *o)
{
    pthread_mutex_lock(&r->mu);
    memset(o, 0, sizeof(*o));
    o->state = r->state;
    o->step = r->step;
    o->share = rollout_share(r);
    if (r->state == RO_RUNNING)
        o->step_age_ms = now_ns > r->step_start_ns ? (now_ns - r->step_start_ns) / 1000000ull : 0;
    else if (r->state == RO_PAUSED)
        o->step_age_ms = r->paused_age_ns / 1000000ull;
    o->waiting_samples = r->state == RO_RUNNING && o->step_age_ms >= r->cfg.hold_ms;
    o->rollbacks = r->rollbacks;
    o->completions = r->completions;
    o->has_verdict = r->has_verdict;
    o->verdict = r->verdict;
    snprintf(o->last_step_result, sizeof(o->last_step_result), "%s", r->last);
    pthread_mutex_unlock(&r->mu);
}

int rollout_group(struct rollout *r, int i, char kind[8], char name[RO_NAME_MAX],
                  struct ro_figures arm[2])
{
    pthread_mutex_lock(&r->mu);
    int n = r->ngroups;
    if (i >= 0 && i < n) {
        const struct group *g = r->groups[i];
        memcpy(kind, g->kind, 8);
        memcpy(name, g->name, RO_NAME_MAX);
        figures(&g->arm[RO_BASELINE], &arm[RO_BASELINE]);
        figures(&g->arm[RO_CANARY], &arm[RO_CANARY]);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}
