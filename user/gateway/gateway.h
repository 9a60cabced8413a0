/* gateway: what kvgated's threads share, and the routing calls the data
 * path makes for each request (route.c).
 *
 * Threads: N workers (worker.c), each an ev_loop with its own SO_REUSEPORT
 * listener, client connections and upstream pools; one control thread
 * (control.h) scraping pods, checking health, discovering models, serving
 * the admin API and publishing pod snapshots. Workers never block on the
 * control thread: they read the current snapshot, the prefix index (short
 * mutex), and per-pod atomics. main.c assembles struct gw and owns it. */
#ifndef KVGATE_GATEWAY_GATEWAY_H
#define KVGATE_GATEWAY_GATEWAY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/outlier.h"
#include "core/report.h"
#include "core/rollout.h"
#include "core/podtable.h"
#include "core/policy.h"
#include "core/tokload.h"
#include "gateway/config.h"

struct prefix_index;
struct gw_metrics;
struct accesslog;
struct session_table;
struct gwbpf;
struct gw_tokenizers;
struct gw_exact_req;

struct gw {
    struct gw_config cfg;            /* as loaded; pods change via control */
    const char *config_path;         /* NULL when started from flags */
    struct prefix_index *pidx;
    struct kvindex *kvx;             /* exact index (issue 11): NULL until a pod has
                                      * kv_events; set once by the control thread
                                      * (release), read with __atomic_load_n acquire;
                                      * freed at exit */
    struct gw_tokenizers *toks;      /* per model, for token-exact keys (exact.h);
                                      * NULL when none is configured */
    struct session_table *sessions;
    struct gw_metrics *metrics;
    struct accesslog *alog;
    struct gwbpf *bpf;               /* the kernel fast path, NULL when off (bpf.h) */
    struct pod_counters counters;
    struct outlier outlier;          /* ejections and the retry budget */
    struct rollout *rollout;         /* the guarded canary (core/rollout.h) */
    struct report *report;           /* /admin/report's book (core/report.h) */
    /* what a computed token costs at each pod (core/podutil.h), a double's
     * bits by slot, -1 unpriced: written by the control thread at each
     * scrape, read as requests end */
    atomic_uint_fast64_t cost_rate[POD_MAX];
    struct tokload tl;               /* each pod's load in tokens (core/tokload.h) */
    struct policy_state pstate;
    /* this gateway's share of the pods' load (core/policy.h struct
     * load_share), x 1e6: written by the control thread after each
     * publish, read by every decision */
    atomic_uint_fast64_t load_share_micro;
    /* the mean uncached prompt of this gateway's requests, in tokens (an
     * EWMA over ~64 requests, route.c): turns the other gateways' new
     * blocks at a pod into requests (route_input.others_since) */
    _Atomic double mean_uncached;
    pthread_mutex_t policy_mu;       /* guards policies (copied per request) */
    struct gw_policies policies;     /* in force: the admin API and reloads swap them */
    int has_candidate;               /* a guarded rollout's candidate policy (under */
    struct gw_policies candidate;    /* policy_mu; rollout.candidate, reloads) */
    atomic_uint conns;               /* open client connections, all workers */
    atomic_uint_fast64_t body_bytes; /* request bodies buffered, all workers
                                      * (limits.max_buffered_total_bytes) */
    atomic_int stopping;
    atomic_int draining;             /* SIGTERM: finishing in-flight requests */
    atomic_uint_fast64_t rng;        /* seed source for per-request randomness */
};

/* Where a request goes: the few fields of the chosen pod the data path
 * needs (pod_info is ~5 KB with its model lists; not copied per request). */
struct pod_target {
    uint32_t slot;
    char name[POD_NAME_MAX];
    char host[POD_NAME_MAX];
    uint16_t port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint8_t h2c;                 /* it speaks h2c (pods[].h2c) */
};

/* A request's tokens, as the pod reported them in its answer's "usage"
 * (core/usage.h) or, when it did not, as the gateway estimated them
 * (accounting.h says how). */
enum gw_usage_src {
    GW_USAGE_NONE = 0,           /* not counted (no answer, or not a 2xx one) */
    GW_USAGE_REPORTED,           /* the pod's usage object */
    GW_USAGE_ESTIMATED,          /* the gateway's own count */
};
struct gw_tokens {
    uint64_t prompt, cached, completion;
    int src;                     /* enum gw_usage_src */
};

/* Per-request routing state, embedded in the worker's stream object. */
struct gw_request {
    /* filled by the worker from headers and the body scan */
    char model[256];             /* as the body names it (bodyscan caps 255) */
    char tenant[128];            /* x-gateway-inference-fairness-id, or "user" */
    char session[128];           /* x-session-id */
    char wclass[64];             /* workload class: x-gateway-inference-objective or
                                  * x-llm-d-inference-objective, else the config's
                                  * "classes", else "default" (accounting.h) */
    int stream;                  /* "stream": true */
    uint8_t chat;                /* "messages" (a chat completion), not "prompt" */
    int include_usage;           /* stream_options.include_usage: 1 true, 0 false, -1 absent */
    uint8_t so_seen, iu_seen;    /* stream_options / its include_usage present (null too), */
    size_t so_start, iu_start;   /* ... and where their values begin in the body */
    uint32_t nkeys;
    uint64_t keys[1024];         /* fingerprint keys (model-keyed) */
    uint64_t body_bytes;
    uint32_t prompt_tokens;      /* estimated from the prompt's bytes (cfg.bytes_per_token);
                                  * exact when the request was tokenized */
    int h2;                      /* client spoke HTTP/2 */
    const char *body;            /* the buffered body, for tokenizing (exact.h) */
    size_t body_len;
    struct gw_exact_req *ex;     /* its token chain, once gw_route needed it */
    const char *index_mode;      /* which index judged the chosen pod: "exact",
                                  * "syncing", "gapped", "approximate"; NULL when
                                  * the policy used none */
    /* filled by gw_route */
    struct route_decision d;
    struct pod_target pod;       /* the chosen pod */
    int routed;                  /* inflight counted, must be released */
    int idle;                    /* routed, but not in flight now: a spliced bypass
                                  * connection idle between requests (gw_route_idle) */
    uint32_t credit_from;        /* keys[credit_from..nkeys) were newly credited to the
                                  * pod (gw_route_withdraw takes them back) */
    struct tokload_req tlr;      /* its share of the pod's token load */
    int retries;
    const char *fallback;        /* why the decision left the happy path, or NULL */
    /* timing (CLOCK_MONOTONIC ns) and outcome, filled by the worker */
    uint64_t t_start, t_body, t_decide, t_routed, t_upstream_sent,
             t_first_byte, t_first_token, t_last_token, t_end;
    uint64_t t_prev_event;       /* gw_request_event's own clock */
    uint32_t events;             /* SSE data events relayed */
    uint32_t content_events;     /* of them, events with generated text */
    const char *arm;             /* which arm routed it, by name (route_arm_name: the
                                  * mode's, or "canary" / "baseline"); NULL unrouted */
    struct gw_tokens tokens;     /* what the answer cost, in tokens (accounting.h) */
    double cost;                 /* ... and in money at its pod's rate; < 0 unpriced
                                  * (gw_request_done sets it) */
    int status;                  /* HTTP status sent to the client */
    const char *error;           /* short cause when it failed */
    const char *outcome;         /* how it ended (gw_request_done sets it): ok,
                                  * rejected, pod_error, client_abort, timeout,
                                  * shutdown */
    uint64_t bytes_out;
    const char *path;            /* how it reached the pod, when not kvgated's socket
                                  * path: "bypass" (a kvg-bypassd worker asked over
                                  * the decision channel, decide_srv.h), "handup" (a
                                  * connection a worker handed up, adopt_srv.h);
                                  * NULL socket */
    uint32_t conn_requests;      /* bypass: requests after this one on its spliced
                                  * connection, as XDP framed them (the worker's REQS) */
    uint64_t conn_body_bytes;    /* bypass: their body bytes (Content-Lengths) */
    const char *unframed;        /* bypass: why XDP stopped framing them, NULL if it
                                  * did not (decide_unframed_name) */
};

/* Chooses a pod for r (exclude_slot: a retry avoids the pod that failed).
 * Returns ROUTE_OK, ROUTE_UNKNOWN_MODEL (answer 404) or ROUTE_NO_POD (503).
 * On ROUTE_OK the pod's in-flight count is raised, the prefix index and
 * session table are credited, and r->pod holds the target. */
enum route_status gw_route(struct gw *g, struct gw_request *r, uint32_t exclude_slot);
/* The attempt at r->pod failed before the pod could have prefilled the
 * prompt (refused, reset, a malformed head, a 5xx): the prefix credit and
 * the exact index's predictions gw_route gave it are taken back, so that
 * requests sharing the prefix do not keep preferring a pod that never
 * cached it. Call before routing the request again. */
void gw_route_withdraw(struct gw *g, struct gw_request *r);
/* 1 when requests for `model` may leave kvgated's per-request view (its
 * connection spliced, by kvgated's sockmap or a bypass worker) by
 * splice.mode / splice.models: on, or auto and a policy that pins
 * sessions with nothing to see per request (prefix-aware, no shadow, no
 * canary). Whether a splice can run at all is the caller's question. */
int gw_splice_model_ok(struct gw *g, const char *model);
/* Undoes gw_route's in-flight count (once; safe to call twice). */
void gw_route_release(struct gw *g, struct gw_request *r);
/* A routed request that holds a connection (a spliced bypass flow) is
 * idle (1: nothing moves either way between its requests; its in-flight
 * count and token load are released) or busy again (0: counted in flight
 * again; a later request's tokens are not known). Idempotent. */
void gw_route_idle(struct gw *g, struct gw_request *r, int idle);
/* The data path could not connect to the pod (refused, timed out): keep
 * it out of routing until the control thread's next health check passes
 * (at most 5 s), unless that leaves its model without a pod. */
void gw_pod_failed(struct gw *g, uint32_t slot);
/* One attempt at the pod ended: ok, or the pod failed it (5xx, reset,
 * malformed or cut answer, timeout). Feeds outlier detection. */
void gw_attempt_done(struct gw *g, uint32_t slot, int ok);
/* May this request be retried on another pod? Takes one from the retry
 * budget (1), or counts the refusal (0). */
int gw_retry_allowed(struct gw *g);
/* Request finished (any outcome): metrics and access log. */
void gw_request_done(struct gw *g, struct gw_request *r);

/* Body scan + prefix fingerprint of one request, fed as body bytes arrive
 * (route.c wraps core/bodyscan and core/fingerprint). */
struct gw_scan;
struct gw_scan *gw_scan_new(struct gw *g);
void gw_scan_free(struct gw_scan *s);
/* 0, or < 0 once the body is known to be malformed (sticky). */
int gw_scan_feed(struct gw_scan *s, const char *p, size_t n);
/* At the end of the body: fills r->model, r->stream, r->nkeys/keys (keyed
 * by model and cache_salt) and r->tenant from "user" when no header set it.
 * 0, or -1 with *err (static text) and *err_offset (byte offset) for a 400. */
int gw_scan_finish(struct gw_scan *s, struct gw_request *r, const char **err,
                   size_t *err_offset);

/* One SSE event with content was relayed at now_ns (inter-token latency
 * as the client sees it; the first one ends the request's prefill in the
 * pod's token load, each later one adds an output token). */
void gw_request_event(struct gw *g, struct gw_request *r, uint64_t now_ns);
/* The pod's request was written out (the token load's prefill clock). */
void gw_request_sent(struct gw *g, struct gw_request *r, uint64_t now_ns);
/* The answer's head arrived: for a non-streaming request the prefill is
 * over (its first token is not seen apart; no rate sample is taken). */
void gw_request_answered(struct gw *g, struct gw_request *r, uint64_t now_ns);
/* The union of models and adapters the pods serve, as GET /v1/models. */
struct sbuf;
void gw_models_json(struct gw *g, struct sbuf *out);

/* 64 random bits (xorshift on a shared atomic; good enough for tie-breaks). */
uint64_t gw_rand(struct gw *g);

#endif
