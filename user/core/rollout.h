/* rollout: the guarded canary. No I/O; one mutex inside, so that the data
 * path's workers record and the control thread ticks and the admin API
 * starts, pauses and aborts concurrently.
 *
 * Two arms route requests: the canary (the policy's `mode`) and the
 * baseline (its `baseline`). A rollout moves the canary's share of the
 * traffic up a ladder of steps (default 1, 5, 25, 50, 100 %), holding each
 * for `hold_ms`. Every finished request is recorded against its arm, its
 * tenant and its workload class. At the end of each step's hold, each
 * group (every tenant, every class, and all traffic) that has at least
 * `min_samples` requests on *both* arms in this step is judged, canary
 * against baseline, on four measures:
 *
 *   TTFT p99     canary <= baseline x (1 + tol_ttft_p99) + slack_ms
 *   ITL p50      canary <= baseline x (1 + tol_itl_p50) + slack_ms
 *   error share  canary <= baseline + tol_error        (shares, 0..1)
 *   hit rate     canary >= baseline - tol_hit          (cached / prompt tokens)
 *
 * One group failing one measure rolls the rollout back: the canary's share
 * goes to 0 (every request on the baseline, which is what the kill switch
 * does to a canary) and the verdict names the group, the measure and both
 * figures. Passing every judged group moves to the next step with a fresh
 * sample (each step is judged on its own traffic: a step's canary share is
 * what it is, and mixing steps would let the 1 % step's few samples hide in
 * the 25 % step's). A step whose overall traffic has too few samples on
 * either arm is not judged yet: it holds on, and the status says it is
 * waiting for samples. When several groups fail, the verdict names the
 * most specific kind that failed (a tenant, else a class, else all
 * traffic: an aggregate fails because some part of it did) and among
 * those the worst failure: furthest past its limit in units of its
 * tolerance's margin ((canary - limit) / (limit - baseline) for the
 * latencies, the excess over tol_error / tol_hit for the shares); it also
 * says how many groups failed.
 * Passing the step before the one at 100 % completes
 * the rollout (at 100 % there is no baseline left to compare with).
 *
 * Quantiles come from core/loghist (buckets 2.5 % wide): a p99 is within
 * 2.5 % of the exact order statistic, well inside any sensible tolerance.
 *
 * Group names are bounded: at most RO_GROUPS_MAX tenant and class names per
 * step (past that, "other"), so a client cannot grow the book. */
#ifndef KVGATE_CORE_ROLLOUT_H
#define KVGATE_CORE_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>

#define RO_STEPS_MAX 16
#define RO_GROUPS_MAX 128
#define RO_NAME_MAX 64

struct rollout_cfg {
    double steps[RO_STEPS_MAX]; /* canary percent per step, increasing, last 100 */
    int nsteps;
    uint32_t hold_ms;           /* each step's hold (60000) */
    uint32_t min_samples;       /* per arm, for a group to be judged (50) */
    double tol_ttft_p99;        /* relative (0.25) */
    double tol_itl_p50;         /* relative (0.25) */
    double tol_error;           /* absolute share (0.01) */
    double tol_hit;             /* absolute share (0.05) */
    double slack_ms;            /* absolute slack on latency measures (5) */
};

void rollout_defaults(struct rollout_cfg *c);
/* 0, or -EINVAL with *why set to what is wrong (steps not increasing, not
 * ending at 100, out of range, a tolerance negative). */
int rollout_cfg_check(const struct rollout_cfg *c, const char **why);

enum rollout_state {
    RO_IDLE = 0,     /* none started: the configured canary share applies */
    RO_RUNNING,
    RO_PAUSED,       /* the current step's share holds; its clock stops */
    RO_COMPLETE,     /* share 100 */
    RO_ROLLED_BACK,  /* a check failed: share 0 */
    RO_ABORTED,      /* the operator aborted: share 0 */
};
const char *rollout_state_name(enum rollout_state s);

enum ro_arm { RO_BASELINE = 0, RO_CANARY = 1 };

enum ro_measure { RO_M_TTFT_P99 = 0, RO_M_ITL_P50, RO_M_ERRORS, RO_M_HIT, RO_M__COUNT };
const char *rollout_measure_name(enum ro_measure m);

/* One finished request. ttft_ms / itl_ms < 0: none (an error before the
 * first token, a one-token answer). */
struct ro_sample {
    int error;
    double ttft_ms, itl_ms;
    uint64_t prompt_tokens, cached_tokens;
};

/* A failed check: which group, which measure, the figures. */
struct ro_verdict {
    char kind[8];              /* "tenant", "class", "all" */
    char name[RO_NAME_MAX];
    enum ro_measure measure;
    double canary, baseline, limit;
    double severity;           /* (canary past its limit) / the tolerance's margin */
    int failed_checks;         /* groups that failed in this step, this one included */
    uint64_t n_canary, n_baseline;
};

/* What one group measured in a step, per arm (for status and reports). */
struct ro_figures {
    uint64_t n, errors, prompt_tokens, cached_tokens;
    double ttft_p99, itl_p50; /* ms; < 0: no sample */
};

struct rollout_status {
    enum rollout_state state;
    int step;                  /* index into cfg.steps (-1: idle) */
    double share;              /* canary percent now */
    uint64_t step_age_ms;
    int waiting_samples;       /* the hold is over, too few samples yet */
    uint64_t rollbacks, completions;
    int has_verdict;           /* after a rollback: the failed check */
    struct ro_verdict verdict;
    char last_step_result[160]; /* e.g. "step 2 (25%) passed: 3 groups judged" */
};

struct rollout;

struct rollout *rollout_new(const struct rollout_cfg *cfg); /* NULL: defaults */
void rollout_free(struct rollout *r);
/* A reload: new steps and tolerances; a running rollout keeps its step
 * index (clamped) and its samples. -EINVAL when cfg fails the check. */
int rollout_set_cfg(struct rollout *r, const struct rollout_cfg *cfg);

/* Operator actions. start: from any state, step 0 with a fresh sample.
 * pause: only while running. resume: only while paused (the step's clock
 * goes on from where it stopped). abort: while running or paused.
 * 0, or -EALREADY / -EINVAL when the state does not allow it. */
int rollout_start(struct rollout *r, uint64_t now_ns);
int rollout_pause(struct rollout *r, uint64_t now_ns);
int rollout_resume(struct rollout *r, uint64_t now_ns);
int rollout_abort(struct rollout *r, uint64_t now_ns);
/* Back to idle from any state but running or paused (-EINVAL: abort
 * first): the configured canary share applies again. The counts and the
 * last verdict stay. */
int rollout_reset(struct rollout *r);

/* The canary percent to route by, or -1 when idle (the configured
 * canary_percent applies). Cheap; called per request. */
double rollout_share(const struct rollout *r);

/* One finished request routed by arm. tenant / cls may be NULL or "":
 * "default". Ignored unless running or paused. */
void rollout_record(struct rollout *r, const char *tenant, const char *cls, enum ro_arm arm,
                    const struct ro_sample *s);

enum ro_event { RO_EV_NONE = 0, RO_EV_ADVANCED, RO_EV_ROLLED_BACK, RO_EV_COMPLETED };
/* The control thread, about once a second: ends the step when its hold is
 * over and judges it. */
enum ro_event rollout_tick(struct rollout *r, uint64_t now_ns);

void rollout_status(struct rollout *r, uint64_t now_ns, struct rollout_status *out);
/* The current step's figures for group i (0 <= i < count): kind, name and
 * both arms. Returns the number of groups; fills nothing when i is out of
 * range. */
int rollout_group(struct rollout *r, int i, char kind[8], char name[RO_NAME_MAX],
                  struct ro_figures arm[2]);

#endif
