/* gwmetrics: kvgated's own Prometheus metrics (what it decided and why,
 * and the latency its clients saw), rendered on the admin listener's
 * GET /metrics. Thread-safe; per-request updates take one short mutex.
 * Label cardinality is bounded and not the clients' to choose: a model
 * gets its own label only while a pod in the current snapshot serves it (a
 * base model or an adapter; gw_metrics_served), at most 64 of them;
 * everything else, 404s included, is "other". Tenants (from the fairness
 * headers, or the body's "user" only with metrics.tenant_from_user) are
 * bounded at 256, then "other"; workload classes (accounting.h) at 32,
 * then "other"; arms are mode names, "canary" or "baseline". The token
 * counters (kvgate_{prompt,cached_prompt,completion}_tokens_total by model,
 * tenant, class, arm, estimated) keep at most 4095 label sets; later ones
 * count in one series whose labels are all "other". */
#ifndef KVGATE_GATEWAY_GWMETRICS_H
#define KVGATE_GATEWAY_GWMETRICS_H

#include <stdint.h>

struct tokload;

struct gw;
struct gw_request;
struct gw_metrics;
struct pod_snapshot;
struct pod_counters;
struct sbuf;

struct gw_metrics *gw_metrics_new(void);
void gw_metrics_free(struct gw_metrics *m);

/* The models the pods serve now: the model label set's admission list.
 * Called by the control thread (only) with each snapshot it publishes;
 * cheap when the names did not change. */
void gw_metrics_served(struct gw_metrics *m, const struct pod_snapshot *s);

/* metrics.tenant_from_user: whether the body's "user" field may become the
 * tenant when no fairness header names one (off by default: it is often an
 * e-mail address, and /metrics is unauthenticated). Process-wide; main
 * and reloads set it, the data path's body scan reads it. */
void gw_set_tenant_from_user(int on);
int gw_tenant_from_user(void);

/* r's model, tenant and class labels as the metrics bound them (the
 * report uses the same, so its rows match the series). Each points into
 * m (a slot of a bounded label set, written once) or at static text: valid
 * and unchanged until gw_metrics_free, so no copy is needed. */
struct gw_labels {
    const char *model, *tenant, *wclass;
};

/* One finished request (called from gw_request_done). */
void gw_metrics_request(struct gw_metrics *m, const struct gw_request *r);
/* The same, and r's labels into *out, under the one lock (the report's
 * rows need them: with accounting on this is every request, and a second
 * trip through the lock the workers share showed up as futex wake-ups in
 * issue 13's profile; pointers, not copies: three snprintf of them were a
 * fifth of this call's time). */
void gw_metrics_request_labeled(struct gw_metrics *m, const struct gw_request *r,
                                struct gw_labels *out);
/* n more requests after r on r's spliced bypass connection (the worker's
 * REQS): kvgate_bypass_requests_total{model, tenant, pod} (r's labels)
 * and kvgate_requests_by_path_total{path="bypass"}; body more of their
 * body bytes in kvgate_bypass_request_body_bytes_total (REQS version 5). */
void gw_metrics_bypass_requests(struct gw_metrics *m, const struct gw_request *r, uint64_t n,
                                uint64_t body);
/* n more times to first token of requests after r on r's spliced bypass
 * connection (the worker's REQS, version 7), each of seconds (the mean of
 * those reported together), in r's TTFT series (model, tenant, class,
 * arm). */
void gw_metrics_bypass_ttft(struct gw_metrics *m, const struct gw_request *r, uint32_t n,
                            double seconds);
/* One inter-token gap seen by the client of r. */
void gw_metrics_itl(struct gw_metrics *m, const struct gw_request *r, double seconds);
/* One scrape of a pod: ok or failed (with a cause: "timeout", "connect",
 * "http", "parse"). */
void gw_metrics_scrape(struct gw_metrics *m, const char *pod, const char *cause);
/* A retry on another pod, by cause ("connect", "reset", "5xx", "timeout"). */
void gw_metrics_retry(struct gw_metrics *m, const char *cause);
/* The data path opened a connection to a pod (not one from the pool). */
void gw_metrics_pod_connect(struct gw_metrics *m);
/* Connections refused by a limit ("max_connections", "header_timeout",
 * "idle_timeout", "header_too_large", "body_too_large"). */
void gw_metrics_limit(struct gw_metrics *m, const char *which);

/* A failure that is this host's own, not a pod's: socket(), connect() or
 * accept() refused for want of descriptors, memory or local ports. Counted
 * as kvgate_local_errors_total{where,errno} (errno by name, "EMFILE");
 * whoever sees one must not mark a pod down or unhealthy for it.
 * where: "scrape", "health", "models" (the control thread's probes),
 * "upstream" (the data path's pod connects). err: errno, either sign. */
void gw_metrics_local_error(struct gw_metrics *m, const char *where, int err);
/* 1 if err (either sign) is a local resource error: EMFILE, ENFILE,
 * ENOBUFS, ENOMEM, EADDRNOTAVAIL (no free local port), EAGAIN from
 * connect() on a full port range. */
int gw_errno_is_local(int err);

/* Appends kvgated's own families (this module's counters and histograms,
 * then per-pod gauges from the snapshot and the shared counters; now_ns
 * gives the metrics age). The admin API composes the page: this, then the
 * fast path's, the splice's and the access log's renders. */
void gw_metrics_render(struct gw_metrics *m, const struct pod_snapshot *s,
                       const struct pod_counters *c, const struct tokload *tl,
                       uint64_t now_ns, struct sbuf *out);

#endif
