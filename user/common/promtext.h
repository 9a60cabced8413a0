/* promtext: the pieces of Prometheus text exposition that podsim and
 * kvgated share: histograms with fixed bucket bounds (vLLM's among them),
 * numbers printed the way Python's prometheus_client prints them, label
 * escaping, and the writers every /metrics page here is composed of:
 *
 *   prom_head(o, "kvgate_x_total", "counter", "Things, by kind.");
 *   sbuf_puts(o, "kvgate_x_total{");
 *   prom_label(o, "kind", kind, 1);
 *   prom_label(o, "pod", pod, 0);
 *   sbuf_puts(o, "}");
 *   prom_value(o, (double)n);                  -> kvgate_x_total{kind="a",pod="p"} 3.0
 *   prom_hist(o, "kvgate_lat_seconds", "model=\"m\"", &h);
 *
 * Writers append to an sbuf and never fail on their own: the sbuf's oom
 * flag says whether the page is whole. */
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

/* A family's head: "# HELP <name> <help>\n# TYPE <name> <type>\n". */
void prom_head(struct sbuf *out, const char *name, const char *type, const char *help);
/* One label pair, key="value" with the value escaped; preceded by a comma
 * unless first. The caller writes the braces. */
void prom_label(struct sbuf *out, const char *key, const char *value, int first);
/* A sample's value and the end of its line: " <v>\n", v as prom_fmt_num. */
void prom_value(struct sbuf *out, double v);
/* A histogram's samples (the caller writes its head): <name>_bucket, one
 * per bound then +Inf, cumulative; <name>_count (the +Inf bucket, so the
 * two never disagree); <name>_sum; prometheus_client's order. labels: ""
 * or the series' pairs as written by prom_label ("a=\"b\",c=\"d\"");
 * le comes last. A histogram never initialised has only +Inf. */
void prom_hist(struct sbuf *out, const char *name, const char *labels, const struct hist *h);

#endif
