/* prom_bench: time to parse one /metrics page, in microseconds.
 *
 *   gcc -O2 -std=gnu11 -D_GNU_SOURCE -Iuser bench/prom_bench.c \
 *       user/core/promparse.c user/core/engine_metrics.c -o /tmp/prom_bench -lm
 *   /tmp/prom_bench [page-file] [-w out-file]
 *
 * Without a file it builds a vLLM v1 page of about 30 KB the way vLLM's
 * prometheus_client writes it: process metrics, the load gauges, counters
 * with their _created samples, info gauges, and enough histograms (vLLM's
 * bucket bounds) to reach the size. Side by side in one run it times
 *   scan     memchr over the lines: the floor any parser pays;
 *   parse    prom_parse with an empty callback;
 *   load     engine_load_parse (AUTO, no filter): what the scraper runs;
 *   filter   engine_load_parse with a model filter;
 * each as the median over repeats of a batch, so ratios are meaningful even
 * where absolute times drift between runs. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine_metrics.h"
#include "core/promparse.h"

#define MODEL "meta-llama/Llama-3.1-8B-Instruct"
#define LBL "engine=\"0\",model_name=\"" MODEL "\""
#define TARGET 30000

struct page {
    char *buf;
    size_t len, cap;
};

static void put(struct page *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void put(struct page *p, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if ((size_t)n < p->cap - p->len) {
            p->len += (size_t)n;
            return;
        }
        p->cap = p->cap * 2 + (size_t)n;
        p->buf = realloc(p->buf, p->cap);
        if (!p->buf)
            abort();
    }
}

static void gauge(struct page *p, const char *name, const char *help,
                  const char *val)
{
    put(p, "# HELP %s %s\n# TYPE %s gauge\n%s{" LBL "} %s\n", name, help,
        name, name, val);
}

static void counter(struct page *p, const char *name, const char *help,
                    const char *val)
{
    put(p, "# HELP %s_total %s\n# TYPE %s_total counter\n%s_total{" LBL
           "} %s\n",
        name, help, name, name, val);
    put(p, "# HELP %s_created %s\n# TYPE %s_created gauge\n%s_created{" LBL
           "} 1.7234567891234e+09\n",
        name, help, name, name);
}

static const char *const sec_le[] = {
    "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1",
    "0.25", "0.5", "0.75", "1.0", "2.5", "5.0", "7.5", "10.0",
    "20.0", "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf",
};
static const char *const tok_le[] = {
    "1.0", "2.0", "5.0", "10.0", "20.0", "50.0", "100.0", "200.0",
    "500.0", "1000.0", "2000.0", "5000.0", "10000.0", "+Inf",
};

static void histogram(struct page *p, const char *name, const char *help,
                      const char *const *le, int nle)
{
    unsigned long acc = 0;
    put(p, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    put(p, "%s_sum{" LBL "} %.6f\n", name, 3141.592653 + nle);
    for (int i = 0; i < nle; i++) {
        acc += (unsigned long)(i * 37 % 101);
        put(p, "%s_bucket{" LBL ",le=\"%s\"} %lu.0\n", name, le[i], acc);
    }
    put(p, "%s_count{" LBL "} %lu.0\n", name, acc);
    put(p, "# HELP %s_created %s\n# TYPE %s_created gauge\n%s_created{" LBL
           "} 1.7234567891234e+09\n",
        name, help, name, name);
}

static void build_vllm_page(struct page *p)
{
    static const char *const hists[] = {
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:request_queue_time_seconds",
        "vllm:request_inference_time_seconds",
        "vllm:request_prefill_time_seconds",
        "vllm:request_decode_time_seconds",
        "vllm:time_per_output_token_seconds",
        "vllm:request_prompt_tokens",
        "vllm:request_generation_tokens",
        "vllm:iteration_tokens_total",
        "vllm:request_max_num_generation_tokens",
        "vllm:request_params_max_tokens",
        "vllm:request_params_n",
    };

    put(p, "# HELP python_gc_objects_collected_total Objects collected "
           "during gc\n# TYPE python_gc_objects_collected_total counter\n");
    for (int g = 0; g < 3; g++)
        put(p, "python_gc_objects_collected_total{generation=\"%d\"} %d.0\n",
            g, 12034 / (g + 1));
    put(p, "# HELP process_virtual_memory_bytes Virtual memory size in "
           "bytes.\n# TYPE process_virtual_memory_bytes gauge\n"
           "process_virtual_memory_bytes 4.2717224448e+010\n"
           "# HELP process_resident_memory_bytes Resident memory size in "
           "bytes.\n# TYPE process_resident_memory_bytes gauge\n"
           "process_resident_memory_bytes 3.981230080e+09\n"
           "# HELP process_open_fds Number of open file descriptors.\n"
           "# TYPE process_open_fds gauge\nprocess_open_fds 187.0\n");
    gauge(p, "vllm:num_requests_running",
          "Number of requests in model execution batches.", "7.0");
    gauge(p, "vllm:num_requests_waiting",
          "Number of requests waiting to be processed.", "12.0");
    gauge(p, "vllm:kv_cache_usage_perc",
          "KV-cache usage. 1 means 100 percent usage.", "0.42137096774193544");
    counter(p, "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            "1.234567e+06");
    counter(p, "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            "654320.0");
    counter(p, "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.", "3.0");
    counter(p, "vllm:prompt_tokens", "Number of prefill tokens processed.",
            "8.128902e+06");
    counter(p, "vllm:generation_tokens",
            "Number of generation tokens processed.", "7.557572e+06");
    put(p, "# HELP vllm:lora_requests_info Running stats on lora requests.\n"
           "# TYPE vllm:lora_requests_info gauge\n"
           "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters="
           "\"sql-lora\",waiting_lora_adapters=\"\"} 1.7234568e+09\n"
           "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters="
           "\"sql-lora,chat-lora\",waiting_lora_adapters=\"tool-lora\"} "
           "1.7234569005e+09\n");
    put(p, "# HELP vllm:cache_config_info Information of the LLMEngine "
           "CacheConfig\n# TYPE vllm:cache_config_info gauge\n"
           "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\","
           "calculate_kv_scales=\"False\",cpu_offload_gb=\"0\","
           "enable_prefix_caching=\"True\",engine=\"0\","
           "gpu_memory_utilization=\"0.9\",is_attention_free=\"False\","
           "num_cpu_blocks=\"None\",num_gpu_blocks=\"27153\","
           "num_gpu_blocks_override=\"None\",prefix_caching_hash_algo="
           "\"sha256\",sliding_window=\"None\",swap_space=\"4\","
           "swap_space_bytes=\"4294967296\"} 1.0\n");
    put(p, "# HELP vllm:request_success_total Count of successfully "
           "processed requests.\n# TYPE vllm:request_success_total counter\n");
    static const char *const reasons[] = {"stop", "length", "abort"};
    for (int i = 0; i < 3; i++)
        put(p, "vllm:request_success_total{" LBL ",finished_reason=\"%s\"} "
               "%d.0\n",
            reasons[i], 950 / (i * 10 + 1));
    for (size_t i = 0; p->len < TARGET; i++) {
        const char *name = hists[i % (sizeof(hists) / sizeof(hists[0]))];
        int is_tok = strstr(name, "tokens") || strstr(name, "params");
        histogram(p, name, "Histogram of something vLLM measures.",
                  is_tok ? tok_le : sec_le, is_tok ? 14 : 23);
    }
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int noop(void *ctx, const struct prom_sample *s)
{
    (void)s;
    ++*(unsigned long *)ctx;
    return 0;
}

enum what { W_SCAN, W_PARSE, W_LOAD, W_FILTER, W_N };
static const char *const what_name[] = {"scan", "parse", "load", "filter"};

static unsigned long run_once(enum what w, const char *buf, size_t len)
{
    unsigned long n = 0;
    struct engine_load l;

    switch (w) {
    case W_SCAN:
        for (const char *p = buf, *e = buf + len;
             p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL; p++)
            n++;
        break;
    case W_PARSE:
        prom_parse(buf, len, noop, &n);
        break;
    case W_LOAD:
        n = (unsigned long)engine_load_parse(buf, len, ENGINE_AUTO, NULL, &l) +
            (unsigned long)l.waiting;
        break;
    case W_FILTER:
        n = (unsigned long)engine_load_parse(buf, len, ENGINE_AUTO, MODEL,
                                             &l) +
            (unsigned long)l.waiting;
        break;
    case W_N:
        break;
    }
    return n;
}

int main(int argc, char **argv)
{
    struct page pg = {malloc(4096), 0, 4096};
    const char *in = NULL, *out = NULL;
    enum { REPEATS = 15, BATCH = 400 };
    double med[W_N], samples[REPEATS];
    volatile unsigned long sink = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-w") && i + 1 < argc)
            out = argv[++i];
        else
            in = argv[i];
    }
    if (in) {
        FILE *f = fopen(in, "rb");
        if (!f) {
            perror(in);
            return 1;
        }
        for (;;) {
            if (pg.cap - pg.len < 4096)
                pg.buf = realloc(pg.buf, pg.cap *= 2);
            size_t n = fread(pg.buf + pg.len, 1, pg.cap - pg.len, f);
            if (!n)
                break;
            pg.len += n;
        }
        fclose(f);
    } else {
        build_vllm_page(&pg);
    }
    if (out) {
        FILE *f = fopen(out, "wb");
        if (!f || fwrite(pg.buf, 1, pg.len, f) != pg.len || fclose(f)) {
            perror(out);
            return 1;
        }
    }

    struct engine_load l;
    int rc = engine_load_parse(pg.buf, pg.len, ENGINE_AUTO, NULL, &l);
    printf("page: %zu bytes, %u lines, %u samples, %u malformed; load rc %d "
           "(%s) waiting %.0f running %.0f kv %.3f blocks %lld\n",
           pg.len, l.stats.lines, l.stats.samples, l.stats.malformed, rc,
           engine_kind_name((enum engine_kind)l.kind_detected), l.waiting,
           l.running, l.kv_usage, (long long)l.cache_blocks);

    /* warm up, then interleave the variants repeat by repeat so drift
     * affects all of them alike */
    for (int w = 0; w < W_N; w++)
        for (int i = 0; i < BATCH; i++)
            sink += run_once((enum what)w, pg.buf, pg.len);
    double all[W_N][REPEATS];
    for (int r = 0; r < REPEATS; r++) {
        for (int w = 0; w < W_N; w++) {
            double t0 = now_ns();
            for (int i = 0; i < BATCH; i++)
                sink += run_once((enum what)w, pg.buf, pg.len);
            all[w][r] = (now_ns() - t0) / BATCH / 1e3;
        }
    }
    for (int w = 0; w < W_N; w++) {
        memcpy(samples, all[w], sizeof(samples));
        qsort(samples, REPEATS, sizeof(double), cmp_double);
        med[w] = samples[REPEATS / 2];
    }
    printf("%-7s %10s %10s %9s\n", "what", "us/page", "MB/s", "x scan");
    for (int w = 0; w < W_N; w++)
        printf("%-7s %10.2f %10.0f %9.1f\n", what_name[w], med[w],
               (double)pg.len / med[w], med[w] / med[W_SCAN]);
    printf("(median of %d repeats x %d pages)\n", REPEATS, BATCH);
    free(pg.buf);
    return sink == 42 ? 2 : 0;
}
