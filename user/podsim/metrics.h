/* metrics: podsim's Prometheus exposition, in vLLM v1's names and buckets.
 *
 * The engine keeps counters, gauges and histograms in struct pod_stats
 * (engine.h); metrics_render() writes them as Prometheus text format 0.0.4,
 * the way vLLM's prometheus_client registry does: counters as <name>_total
 * with # TYPE on the _total name, histograms with cumulative _bucket{le=..},
 * _sum and _count, labels engine="0" and model_name="<served model>". */
#ifndef KVGATE_PODSIM_METRICS_H
#define KVGATE_PODSIM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define HIST_MAX_BUCKETS 24

struct hist {
    const double *bounds; /* upper bounds, ascending; +Inf implied */
    int nbounds;
    uint64_t counts[HIST_MAX_BUCKETS + 1]; /* per bucket, not cumulative */
    uint64_t count;
    double sum;
};

/* vLLM's bucket bounds (seconds) */
extern const double VLLM_TTFT_BUCKETS[];
extern const int VLLM_TTFT_NBUCKETS;
extern const double VLLM_ITL_BUCKETS[];
extern const int VLLM_ITL_NBUCKETS;
extern const double VLLM_E2E_BUCKETS[];
extern const int VLLM_E2E_NBUCKETS;

void hist_init(struct hist *h, const double *bounds, int nbounds);
void hist_observe(struct hist *h, double v);

struct pod;
struct sbuf;

/* Appends the full /metrics page of one pod to out. 0 or -ENOMEM. */
int metrics_render(const struct pod *p, struct sbuf *out);

#endif
