/* promtext: the pieces of Prometheus text exposition that podsim and
 * kvgated share: histograms with fixed bucket bounds (vLLM's among them),
 * numbers printed the way Python's prometheus_client prints them, and
 * label-value escaping. */
#ifndef KVGATE_PROMTEXT_H
#define KVGATE_PROMTEXT_H

#include <stdint.h>

struct sbuf;

#define HIST_MAX_BUCKETS 24
#define PROM_NUM_MAX 40

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

/* prometheus_client's floatToGoString: buf has PROM_NUM_MAX bytes. */
void prom_fmt_num(char *buf, double v);
/* Appends s escaped for a label value (\ \" and newline). */
void prom_label_value(struct sbuf *out, const char *s);

#endif
