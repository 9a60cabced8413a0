/* outlier: passive outlier detection and the retry budget. No I/O.
 *
 * Health checks see a pod that answers /health; they do not see one that
 * fails every request fast (an engine error, a broken adapter, a full disk).
 * Such a pod looks idle, so load-aware routing sends it *more* traffic. The
 * data path therefore reports every attempt's end here, per pod slot:
 *
 *   - `consecutive` failures in a row, or a failure share of at least
 *     `ratio` over a window of `window_ms` once it saw `min_requests`,
 *     eject the pod for `base_ms`, doubled on each repeat (up to `max_ms`);
 *     a pod not ejected for `max_ms` starts from `base_ms` again;
 *   - the last failure's time is kept, so a retry can avoid every pod that
 *     failed in the last `recent_ms`, not only the one it just left.
 *
 * A failure is what the pod did: a 5xx, a refused or timed-out connect, a
 * reset, a malformed answer, a stream cut or stalled mid-way. A client that
 * goes away, a 4xx, or the gateway's own lack of resources is not.
 *
 * Ejection only ranks: the policy drops ejected (and recently failed) pods
 * only while others remain, so a model is never left without a pod while
 * its pods pass health checks (core/policy.c: fail open).
 *
 * The retry budget bounds retries on another pod to a share of recent
 * requests (`budget_percent`), plus `min_per_second` so that a quiet
 * gateway can still retry, with a burst of 10 s of that minimum: an outage
 * cannot multiply the load the pods see.
 *
 * All state is atomics, updated by every worker; races at a window's edge
 * can miscount one request, never corrupt. */
#ifndef KVGATE_CORE_OUTLIER_H
#define KVGATE_CORE_OUTLIER_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/podtable.h"

struct outlier_cfg {
    uint32_t consecutive;   /* failures in a row that eject (5); 0: off */
    double ratio;           /* failure share over a window that ejects (0.5); 0: off */
    uint32_t min_requests;  /* ... once the window saw this many (10) */
    uint32_t window_ms;     /* (10000) */
    uint32_t base_ms;       /* first ejection (5000) */
    uint32_t max_ms;        /* longest ejection (300000) */
    uint32_t recent_ms;     /* a retry avoids pods that failed this recently (10000) */
    double budget_percent;  /* retries per 100 requests (20) */
    double min_per_second;  /* retries always allowed per second (5) */
};

void outlier_defaults(struct outlier_cfg *c);

struct outlier {
    struct outlier_cfg cfg;
    struct {
        atomic_uint consec;
        atomic_uint win_req, win_fail;
        atomic_uint_fast64_t win_start;
        atomic_uint times;              /* ejections since the backoff last reset */
    } s[POD_MAX];
    /* retry budget, in thousandths of a retry */
    atomic_int_fast64_t budget;
    atomic_uint_fast64_t budget_ns;     /* when the minimum rate was last credited */
};

/* cfg may be NULL (defaults). The pod_counters' ejected_until_ns,
 * last_fail_ns and ejections fields are written by outlier_record. */
void outlier_init(struct outlier *o, const struct outlier_cfg *cfg);
/* The slot now holds another pod (or none): forget its history. */
void outlier_reset(struct outlier *o, struct pod_counters *cnt, uint32_t slot);

/* One attempt at slot ended: ok or failed. Returns 1 when this failure
 * ejected the pod (it was not ejected before), else 0. */
int outlier_record(struct outlier *o, struct pod_counters *cnt, uint32_t slot, int ok,
                   uint64_t now_ns);
/* Is slot ejected at now_ns? */
int outlier_ejected(const struct pod_counters *cnt, uint32_t slot, uint64_t now_ns);

/* The retry budget: every first attempt deposits; a retry withdraws one.
 * 1 when the retry may go, 0 when the budget is spent. */
void retry_budget_deposit(struct outlier *o);
int retry_budget_take(struct outlier *o, uint64_t now_ns);

#endif
