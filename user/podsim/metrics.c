/* metrics: podsim's /metrics page in vLLM v1's names. See metrics.h.
 *
 * The page mimics what Python's prometheus_client writes for vLLM, because
 * gateways (ours included) are written against that text:
 *   - numbers are printed like prometheus_client's floatToGoString: Python's
 *     shortest round-trip repr ("3.0", "0.25", "1e-05"), except that a
 *     positive number with more than 6 integer digits switches to an
 *     exponent ("1234567.0" -> "1.234567e+06");
 *   - a counter family is named <name>_total in HELP/TYPE and samples;
 *   - counters and histograms carry a <name>_created sample, which the text
 *     format cannot attach to the family, so it is written after the family
 *     as a gauge family of its own (as prometheus_client does). */
#include "podsim/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/promtext.h"
#include "common/sbuf.h"
#include "podsim/kvcache.h"
#include "podsim/pod.h"

/* ---- text exposition helpers ---- */

/* The start time every _created sample reports: set at the first render,
 * which happens shortly after the process started serving. */
static double metrics_process_start;

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "# HELP <name><suffix> ..." and its TYPE line. */
static void put_header(struct sbuf *out, const char *name, const char *suffix,
                       const char *type, const char *help)
{
    char full[160];
    snprintf(full, sizeof(full), "%s%s", name, suffix);
    prom_head(out, full, type, help);
}

/* The labels every series starts with: engine="0",model_name="<m>". */
static void put_pod_labels(struct sbuf *out, const struct pod *p)
{
    prom_label(out, "engine", "0", 1);
    prom_label(out, "model_name", p->model, 0);
}

/* "<name><suffix>{engine="0",model_name="<m>"" - the caller adds any other
 * labels with prom_label and closes with put_value. */
static void put_series(struct sbuf *out, const struct pod *p,
                       const char *name, const char *suffix)
{
    sbuf_printf(out, "%s%s{", name, suffix);
    put_pod_labels(out, p);
}

static void put_value(struct sbuf *out, double v)
{
    sbuf_puts(out, "}");
    prom_value(out, v);
}

static void put_gauge(struct sbuf *out, const struct pod *p, const char *name,
                      const char *help, double v)
{
    put_header(out, name, "", "gauge", help);
    put_series(out, p, name, "");
    put_value(out, v);
}

/* ---- families ---- */

struct counter_def {
    const char *name; /* without _total */
    const char *help;
    size_t off;       /* uint64_t in struct pod_stats */
};

static const struct counter_def counters[] = {
    {"vllm:prefix_cache_queries",
     "Prefix cache queries, in terms of number of queried tokens.",
     offsetof(struct pod_stats, prefix_queries)},
    {"vllm:prefix_cache_hits",
     "Prefix cache hits, in terms of number of cached tokens.",
     offsetof(struct pod_stats, prefix_hits)},
    {"vllm:num_preemptions", "Cumulative number of preemption from the engine.",
     offsetof(struct pod_stats, preemptions)},
    {"vllm:prompt_tokens", "Number of prefill tokens processed.",
     offsetof(struct pod_stats, prompt_tokens)},
    {"vllm:generation_tokens", "Number of generation tokens processed.",
     offsetof(struct pod_stats, generation_tokens)},
};

static uint64_t stat_u64(const struct pod_stats *st, size_t off)
{
    uint64_t v;
    memcpy(&v, (const char *)st + off, sizeof(v));
    return v;
}

static void put_counter(struct sbuf *out, const struct pod *p,
                        const struct counter_def *c)
{
    put_header(out, c->name, "_total", "counter", c->help);
    put_series(out, p, c->name, "_total");
    put_value(out, (double)stat_u64(&p->eng.st, c->off));
    put_header(out, c->name, "_created", "gauge", c->help);
    put_series(out, p, c->name, "_created");
    put_value(out, metrics_process_start);
}

static void put_request_success(struct sbuf *out, const struct pod *p)
{
    static const char name[] = "vllm:request_success";
    static const char help[] = "Count of successfully processed requests.";
    const struct pod_stats *st = &p->eng.st;
    const struct {
        const char *reason;
        uint64_t n;
    } rows[] = {
        {"stop", st->finished_stop},
        {"length", st->finished_length},
        {"abort", st->finished_abort},
    };
    const int nrows = (int)(sizeof(rows) / sizeof(rows[0]));

    put_header(out, name, "_total", "counter", help);
    for (int i = 0; i < nrows; i++) {
        put_series(out, p, name, "_total");
        prom_label(out, "finished_reason", rows[i].reason, 0);
        put_value(out, (double)rows[i].n);
    }
    put_header(out, name, "_created", "gauge", help);
    for (int i = 0; i < nrows; i++) {
        put_series(out, p, name, "_created");
        prom_label(out, "finished_reason", rows[i].reason, 0);
        put_value(out, metrics_process_start);
    }
}

static void put_histogram(struct sbuf *out, const struct pod *p,
                          const char *name, const char *help,
                          const struct hist *h)
{
    struct sbuf labels;
    sbuf_init(&labels);
    put_pod_labels(&labels, p);
    sbuf_append(&labels, "", 1); /* NUL-terminated */
    if (labels.oom)
        out->oom = 1;
    put_header(out, name, "", "histogram", help);
    prom_hist(out, name, labels.oom ? "" : labels.data, h);
    put_header(out, name, "_created", "gauge", help);
    put_series(out, p, name, "_created");
    put_value(out, metrics_process_start);
    sbuf_free(&labels);
}

static void put_cache_config(struct sbuf *out, const struct pod *p)
{
    static const char name[] = "vllm:cache_config_info";
    char v[24];

    put_header(out, name, "", "gauge",
               "Information of the LLMEngine CacheConfig");
    put_series(out, p, name, "");
    snprintf(v, sizeof(v), "%d", KV_BLOCK_TOKENS);
    prom_label(out, "block_size", v, 0);
    snprintf(v, sizeof(v), "%u", p->eng.kv.nblocks);
    prom_label(out, "num_gpu_blocks", v, 0);
    prom_label(out, "cache_dtype", "auto", 0);
    prom_label(out, "enable_prefix_caching", "True", 0);
    put_value(out, 1.0);
}

/* One series per remembered label set, valued with the unix time it was
 * last current: vLLM's registry keeps stale label sets, so a reader must
 * take the series with the newest value. */
static void put_lora_info(struct sbuf *out, const struct pod *p)
{
    static const char name[] = "vllm:lora_requests_info";
    char v[24];
    int n = p->nlora_info;
    const int cap = (int)(sizeof(p->lora_info) / sizeof(p->lora_info[0]));

    if (n < 0)
        n = 0;
    if (n > cap)
        n = cap;
    put_header(out, name, "", "gauge", "Running stats on lora requests.");
    snprintf(v, sizeof(v), "%u", p->eng.cfg.max_loras);
    for (int i = 0; i < n; i++) {
        char running[sizeof(p->lora_info[i].running) + 1];
        char waiting[sizeof(p->lora_info[i].waiting) + 1];
        /* the fields are fixed arrays: do not trust a terminator */
        snprintf(running, sizeof(running), "%.*s",
                 (int)sizeof(p->lora_info[i].running), p->lora_info[i].running);
        snprintf(waiting, sizeof(waiting), "%.*s",
                 (int)sizeof(p->lora_info[i].waiting), p->lora_info[i].waiting);
        put_series(out, p, name, "");
        prom_label(out, "max_lora", v, 0);
        prom_label(out, "running_lora_adapters", running, 0);
        prom_label(out, "waiting_lora_adapters", waiting, 0);
        put_value(out, p->lora_info[i].ts);
    }
}

int metrics_render(const struct pod *p, struct sbuf *out)
{
    const struct engine *e = &p->eng;
    const struct pod_stats *st = &e->st;

    if (metrics_process_start == 0.0)
        metrics_process_start = unix_now();

    put_gauge(out, p, "vllm:num_requests_running",
              "Number of requests in model execution batches.",
              (double)e->nrunning);
    put_gauge(out, p, "vllm:num_requests_waiting",
              "Number of requests waiting to be processed.",
              (double)e->nwaiting);
    if (p->legacy_metrics)
        put_gauge(out, p, "vllm:gpu_cache_usage_perc",
                  "GPU KV-cache usage. 1 means 100 percent usage.",
                  kv_usage(&e->kv));
    else
        put_gauge(out, p, "vllm:kv_cache_usage_perc",
                  "KV-cache usage. 1 means 100 percent usage.",
                  kv_usage(&e->kv));
    put_cache_config(out, p);
    put_lora_info(out, p);

    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        put_counter(out, p, &counters[i]);
    put_request_success(out, p);

    put_histogram(out, p, "vllm:time_to_first_token_seconds",
                  "Histogram of time to first token in seconds.", &st->ttft);
    put_histogram(out, p, "vllm:inter_token_latency_seconds",
                  "Histogram of inter-token latency in seconds.", &st->itl);
    put_histogram(out, p, "vllm:e2e_request_latency_seconds",
                  "Histogram of e2e request latency in seconds.", &st->e2e);
    put_histogram(out, p, "vllm:request_queue_time_seconds",
                  "Histogram of time spent in WAITING phase for request.",
                  &st->queue);

    return out->oom ? -ENOMEM : 0;
}
