/* report: the per-group book behind GET /admin/report, a group being one
 * (model, tenant, class, arm) as the metrics label them. No I/O; one mutex
 * (workers record, the admin API reads).
 *
 * Per group: requests, errors, TTFT (p50, p99) and ITL (p50) from
 * core/loghist, prompt / cached / completion tokens (and how many of the
 * completion counts were estimated), the cost charged to its requests, and
 * the time of its first and last request, for tokens per second.
 *
 *   hit rate              cached / prompt tokens
 *   tokens per second     completion tokens / (last - first request end);
 *                         0 until two requests ended
 *   cost per 1M tokens    cost / (prompt + completion tokens of the
 *                         requests that were charged) x 1e6; absent when
 *                         none was (unpriced pods)
 *
 * Bounded: at most REPORT_GROUPS_MAX groups; past that, requests count in
 * one overflow group labelled "other" on every key. */
#ifndef KVGATE_CORE_REPORT_H
#define KVGATE_CORE_REPORT_H

#include <stdint.h>

#define REPORT_GROUPS_MAX 1024
#define REPORT_LABEL_MAX 128

struct report_key {
    const char *model, *tenant, *cls, *arm;
};

struct report_sample {
    int error;                 /* the pod or the path to it failed it */
    double ttft_ms, itl_ms;    /* < 0: none */
    uint64_t prompt_tokens, cached_tokens, completion_tokens;
    int estimated;             /* completion_tokens counted from content events */
    double cost;               /* < 0: not charged (unpriced pod) */
};

struct report_row {
    char model[REPORT_LABEL_MAX], tenant[REPORT_LABEL_MAX], cls[REPORT_LABEL_MAX],
        arm[REPORT_LABEL_MAX];
    uint64_t requests, errors, estimated;
    uint64_t prompt_tokens, cached_tokens, completion_tokens;
    double ttft_p50, ttft_p99, itl_p50; /* ms, -1 none */
    double hit_rate;                    /* -1: no prompt tokens */
    double tokens_per_s;
    double cost, cost_per_mtok;         /* cost_per_mtok -1: none charged */
};

struct report;

struct report *report_new(void);
void report_free(struct report *r);
void report_record(struct report *r, const struct report_key *k, const struct report_sample *s,
                   uint64_t now_ns);
/* Fills up to max rows (sorted by model, tenant, class, arm); returns the
 * number of groups. */
int report_rows(struct report *r, struct report_row *out, int max);

#endif
