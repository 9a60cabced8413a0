/* policy: picks the pod for one request. No I/O, no allocation.
 *
 * Prefix-aware (default): filters (serves the model or adapter; healthy and
 * not draining; not saturated unless every candidate is; bounded load), then
 * a weighted sum of scorers (prefix match ratio, queue, KV usage, LoRA
 * affinity, session affinity), max score wins, ties broken at random.
 * Token-load: the same filters up to saturation, then the pod where this
 * request's first token should come soonest by the gateway's own books in
 * tokens (core/tokload.h): (uncached prompt tokens queued there + this
 * request's uncached tokens there) / the pod's measured prefill rate. A
 * pod holding the prefix keeps the request until its queue costs more
 * than re-paying the prefill elsewhere, with no weight or threshold to
 * tune: the measured rates set it.
 * Other modes: least-request, round-robin, random. Wrappers: shadow (route
 * by the baseline, report what prefix-aware would have picked) and canary
 * (a percentage of requests prefix-aware, the rest by the baseline).
 *
 * Pods the data path saw fail (a connect failure's down mark, an outlier
 * ejection, or, for a retry, any failure in the last seconds) are left out
 * only while other candidates remain: when none would remain, all are kept
 * (fail open), since those pods still pass their health checks.
 *
 * Replicas (several gateways in front of the same pods): the saturation
 * filter and the queue score judge each pod by every sender's load
 * (pod_load_estimate: the pod's scrape, what this gateway sent since, and
 * its share of the traffic), so a replica that sees a third of the
 * traffic does not take a busy pod for an idle one.
 *
 * Metrics older than stale_ms make a pod count as saturated; when no
 * candidate has fresh metrics the decision is "degraded": the gateway's own
 * in-flight counts replace the scraped queue, prefix affinity still counts,
 * and traffic is never refused for want of metrics. */
#ifndef KVGATE_CORE_POLICY_H
#define KVGATE_CORE_POLICY_H

#include <stdatomic.h>
#include <stdint.h>

#include "core/podtable.h"

struct tokload;

enum policy_mode {
    POLICY_PREFIX_AWARE,
    POLICY_LEAST_REQUEST,
    POLICY_ROUND_ROBIN,
    POLICY_RANDOM,
    POLICY_TOKEN_LOAD,
    POLICY__COUNT
};

struct policy_cfg {
    enum policy_mode mode;
    enum policy_mode baseline;  /* for shadow and canary (round-robin) */
    int shadow;                 /* route by baseline, record `mode`'s pick */
    double canary_pct;          /* share routed by `mode`, rest by baseline; 100 = all */
    double w_prefix, w_queue, w_kv, w_lora, w_session;
    double queue_sat;           /* waiting >= this: saturated (5) */
    double kv_sat;              /* KV usage >= this: saturated (0.8) */
    uint32_t stale_ms;          /* metrics older than this: saturated (200) */
    double bounded_load;        /* a pod takes at most c x mean in-flight ... (1.25); 0 off */
    double bounded_floor;       /* ... but is never limited below this many (8) */
    double bounded_session;     /* the pod a request's session (x-session-id) last
                                 * used takes up to this x mean in-flight (2.0),
                                 * and is saturated only at queue_sat x
                                 * bounded_session / bounded_load waiting;
                                 * below bounded_load: no difference */
};

void policy_defaults(struct policy_cfg *c);
const char *policy_mode_name(enum policy_mode m);
/* "prefix-aware", "least-request", "round-robin", "random", "token-load":
 * 0 or -EINVAL */
int policy_mode_parse(const char *s, enum policy_mode *m);

enum route_reason {
    REASON_PREFIX,        /* the best prefix match won */
    REASON_LOAD,          /* queue / KV scores decided */
    REASON_SESSION,       /* session affinity decided */
    REASON_LEAST_REQUEST,
    REASON_ROUND_ROBIN,
    REASON_RANDOM,
    REASON_DEGRADED,      /* no fresh metrics: in-flight + prefix */
    REASON__COUNT
};
const char *route_reason_name(enum route_reason r);

enum route_status {
    ROUTE_OK,
    ROUTE_UNKNOWN_MODEL,  /* no pod serves it: 404 */
    ROUTE_NO_POD,         /* pods serve it, none usable now: 503 */
};

struct route_input {
    const char *model;      /* base model or adapter name */
    uint32_t nkeys;         /* fingerprint blocks of the prompt */
    const uint16_t *match;  /* per slot: leading blocks held (prefix index) */
    int session_slot;       /* slot the session last used, -1 none */
    /* token-load: the prompt in tokens, how many tokens one match unit
     * covers, and the per-pod books (NULL: the mode ranks by match alone) */
    uint32_t prompt_tokens;
    double tokens_per_key;
    const struct tokload *tl;
    /* request body bytes per token, to count the requests the kernel sent
     * a pod in its decode load (it knows their bodies' length only); 0:
     * they count in requests only */
    double bytes_per_token;
    /* this gateway's share of the load at the pods (struct load_share):
     * below 1 when other gateway replicas send to the same pods
     * (pod_load_estimate). 0: 1 */
    double load_share;
    /* Per slot (NULL: none): the other gateways' requests placed at the
     * pod since its last scrape, as the pod's KV events show them (the
     * new blocks no prediction of ours announced, in tokens, over our mean
     * uncached prompt; route.c). Where it is >= 0 it replaces load_share's
     * extrapolation in the pod's load (pod_load_estimate with share 1);
     * < 0 (a pod whose events are not exact) keeps the extrapolation. */
    const double *others_since;
    uint64_t rand;          /* random bits for tie-breaks, canary, random */
    /* the canary's share in percent over the policy's canary_pct, when
     * canary_set: while a guarded rollout runs (core/rollout.h) */
    uint8_t canary_set;
    double canary_pct;
    uint64_t now_ns;
    uint32_t exclude_slot;  /* a retry avoids the pod that failed; UINT32_MAX none */
    uint64_t avoid_failed_since_ns; /* a retry also avoids pods that failed at or
                                     * after this (core/outlier.h); 0: none */
};

/* The arm that routed a request: the only one when the policy's mode
 * takes all traffic (canary 100%, no shadow), else the canary (`mode`) or
 * the baseline (`baseline`, which also routes everything in shadow). */
enum route_arm { ARM_ONLY = 0, ARM_CANARY, ARM_BASELINE };
const char *route_arm_name(enum route_arm a, enum policy_mode mode);

struct route_decision {
    enum route_status status;
    int idx;                /* index into snapshot->pods, -1 on failure */
    int shadow_idx;         /* shadow mode: mode's pick; -1 otherwise */
    enum policy_mode mode;  /* the mode that routed this request */
    enum route_arm arm;     /* which arm routed it */
    enum route_reason reason;
    uint8_t degraded;       /* no candidate had fresh metrics */
    uint8_t all_saturated;  /* the saturation filter let everyone through */
    uint8_t bounded;        /* the bounded-load guard removed a pod */
    uint8_t fail_open;      /* every candidate was ejected, marked down or had just
                             * failed: they were all kept (the model is never left
                             * without a pod while its pods pass health checks) */
    uint32_t ejected;       /* candidates left out as ejected / down / just failed */
    uint32_t candidates;
    uint32_t stale;         /* candidates with stale metrics */
    uint32_t prefix_blocks; /* chosen pod's match */
    uint32_t shadow_prefix_blocks; /* shadow mode: the shadow pick's match */
    uint32_t blocks;        /* ... out of this many (route_input.nkeys) */
    double score;
    double eta_ms;          /* token-load: the chosen pod's estimated wait for the
                             * first token (ms; measured rate), 0 otherwise */
};

struct policy_state {
    atomic_uint_fast64_t rr; /* round-robin cursor */
};

/* How the policy judges one pod's load; the kernel's pod table carries the
 * same judgment (gateway/bpf_pods.c), so both sides agree on a pod.
 *   fresh        metrics_ok, and scraped at most stale_ms before now_ns (a
 *                scrape stamped after now_ns counts as age 0)
 *   est_waiting  the scraped queue, or more when the gateway has sent more
 *                since the scrape than the pod reported running + waiting
 *   saturated    not fresh, est_waiting >= queue_saturation, or KV usage
 *                >= kv_saturation. For the pod a request's session is
 *                pinned to (own_session), the queue bound is relaxed to
 *                queue_saturation x bounded_session / bounded_load (when
 *                bounded_session > bounded_load > 0); KV is not relaxed. */
struct pod_fitness {
    uint8_t fresh, saturated;
    double est_waiting;
};
/* load: the pod's requests as pod_load_estimate counts them */
void pod_fitness(const struct policy_cfg *cfg, const struct pod_info *p, double load,
                 uint64_t now_ns, int own_session, struct pod_fitness *out);

/* A pod's load in requests, in the whole fleet's terms, from one
 * gateway's view: its own requests there now (own, exact), plus the
 * others' as the pod reported them at its last scrape (running + waiting
 * beyond own_at_scrape), plus what the others have likely sent since:
 * this gateway's own sends since the scrape x (1/share - 1). The others'
 * terms count only while the scrape is fresh (stale_ms). Alone (share 1,
 * and the pod serving nobody else) it is own: a lone gateway judges by
 * its exact count as before; replicas (share < 1) see the load their
 * peers put on a pod instead of a third of it. With the pods' KV events
 * the others' sends since the scrape are read, not guessed
 * (route_input.others_since): then share is passed as 1 and they are
 * added to this. */
double pod_load_estimate(const struct policy_cfg *cfg, const struct pod_info *p, uint32_t own,
                         double share, uint64_t now_ns);

/* This gateway's share of the load at the pods. Replicas (several
 * gateways in front of the same pods, each sent a part of the traffic by
 * an L4 balancer) each see only their own requests in flight, yet a pod's
 * queue holds everybody's. After each scrape the control thread offers
 * the sum of its own in-flight requests at the pods with fresh metrics and
 * the sum those pods report running + waiting; the share is the ratio of
 * the two sums' moving averages (time constant LOAD_SHARE_TAU_NS), at most
 * 1 (the scrape lags: a lone gateway's own count can run ahead of it) and
 * at least 1/POD_MAX. With no load seen yet it is 1. */
#define LOAD_SHARE_TAU_NS (2ull * 1000000000ull)
/* A share at or above this is a lone gateway (the scrape's lag and the
 * moving average keep a lone gateway's measured share a little under 1). */
#define LOAD_SHARE_ALONE 0.95
struct load_share {
    double own, pods;   /* moving averages */
    uint64_t at_ns;     /* last update, 0 never */
};
void load_share_update(struct load_share *ls, double own, double pods, uint64_t now_ns);
double load_share_value(const struct load_share *ls);

void policy_pick(const struct policy_cfg *cfg, const struct pod_snapshot *s,
                 const struct pod_counters *cnt, struct policy_state *st,
                 const struct route_input *in, struct route_decision *out);

#endif
