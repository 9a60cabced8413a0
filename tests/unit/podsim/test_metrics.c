/* Unit tests for user/podsim/metrics.c: the rendered /metrics page in
 * vLLM's names (labels, escaping, counters' _total and _created, cumulative
 * buckets), checked by promtool when it is installed. Numbers, histograms
 * and the text writers are common/promtext.c's (test_promtext.c).
 *
 * metrics.c is included to reach its statics; kv_usage() comes from kvcache.c
 * (libpodsim.a), so the pod's KV numbers are set through kv.nblocks and
 * kv.nfree. */
#include "podsim/metrics.c"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

/* the labels every series starts with, for model "m" */
#define L "{engine=\"0\",model_name=\"m\""

/* ---- helpers ---- */

static void pod_setup(struct pod *p, const char *model)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->model, sizeof(p->model), "%s", model);
    hist_init(&p->eng.st.ttft, VLLM_TTFT_BUCKETS, VLLM_TTFT_NBUCKETS);
    hist_init(&p->eng.st.itl, VLLM_ITL_BUCKETS, VLLM_ITL_NBUCKETS);
    hist_init(&p->eng.st.e2e, VLLM_E2E_BUCKETS, VLLM_E2E_NBUCKETS);
    hist_init(&p->eng.st.queue, VLLM_E2E_BUCKETS, VLLM_E2E_NBUCKETS);
    p->eng.cfg.max_loras = 4;
    p->eng.kv.nblocks = 101; /* 100 usable */
    p->eng.kv.nfree = 100;
}

/* Renders p into a NUL-terminated heap string (caller frees). */
static char *render(const struct pod *p)
{
    struct sbuf b;
    sbuf_init(&b);
    int rc = metrics_render(p, &b);
    CHECK_EQ(rc, 0);
    sbuf_append(&b, "", 1);
    char *s = strndup(b.data ? b.data : "", b.len);
    sbuf_free(&b);
    return s;
}

static const char *next_line(const char *l)
{
    const char *n = strchr(l, '\n');
    return n ? n + 1 : NULL;
}

/* Value of the sample whose line starts with series + ' ', copied to val;
 * 0 if found, -1 if not. series = name{labels} exactly as rendered. */
static int sample(const char *text, const char *series, char *val, size_t n)
{
    size_t sl = strlen(series);
    for (const char *l = text; l && *l; l = next_line(l)) {
        if (strncmp(l, series, sl) || l[sl] != ' ')
            continue;
        const char *v = l + sl + 1, *end = strchr(v, '\n');
        size_t vl = end ? (size_t)(end - v) : strlen(v);
        snprintf(val, n, "%.*s", (int)vl, v);
        return 0;
    }
    return -1;
}

static int has_line(const char *text, const char *line)
{
    size_t ll = strlen(line);
    for (const char *l = text; l && *l; l = next_line(l))
        if (!strncmp(l, line, ll) && (l[ll] == '\n' || l[ll] == '\0'))
            return 1;
    return 0;
}

/* Lines starting with prefix. */
static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t pl = strlen(prefix);
    for (const char *l = text; l && *l; l = next_line(l))
        n += !strncmp(l, prefix, pl);
    return n;
}

#define CHECK_SAMPLE(text, series, want)                                      \
    do {                                                                      \
        char _v[64] = "(missing)";                                            \
        sample((text), (series), _v, sizeof(_v));                             \
        CHECK_STR(_v, (want));                                                \
    } while (0)

/* ---- the page ---- */

TEST(gauges_and_info)
{
    struct pod p;
    pod_setup(&p, "m");
    p.eng.nrunning = 3;
    p.eng.nwaiting = 5;
    p.eng.kv.nfree = 25; /* usage 0.75 */
    char *t = render(&p);

    CHECK(has_line(t, "# HELP vllm:num_requests_running Number of requests "
                      "in model execution batches."));
    CHECK(has_line(t, "# TYPE vllm:num_requests_running gauge"));
    CHECK_SAMPLE(t, "vllm:num_requests_running" L "}", "3.0");
    CHECK_SAMPLE(t, "vllm:num_requests_waiting" L "}", "5.0");
    CHECK(has_line(t, "# TYPE vllm:kv_cache_usage_perc gauge"));
    CHECK_SAMPLE(t, "vllm:kv_cache_usage_perc" L "}", "0.75");
    CHECK_EQ(count_lines(t, "vllm:gpu_cache_usage_perc"), 0);
    CHECK(has_line(t, "# TYPE vllm:cache_config_info gauge"));
    CHECK_SAMPLE(t, "vllm:cache_config_info" L ",block_size=\"16\","
                 "num_gpu_blocks=\"101\",cache_dtype=\"auto\","
                 "enable_prefix_caching=\"True\"}", "1.0");
    /* no adapters seen yet: the family is announced, with no series */
    CHECK(has_line(t, "# TYPE vllm:lora_requests_info gauge"));
    CHECK_EQ(count_lines(t, "vllm:lora_requests_info{"), 0);
    free(t);

    p.legacy_metrics = 1;
    t = render(&p);
    CHECK(has_line(t, "# TYPE vllm:gpu_cache_usage_perc gauge"));
    CHECK_SAMPLE(t, "vllm:gpu_cache_usage_perc" L "}", "0.75");
    CHECK_EQ(count_lines(t, "vllm:kv_cache_usage_perc"), 0);
    CHECK_EQ(count_lines(t, "# HELP vllm:kv_cache_usage_perc"), 0);
    free(t);
}

TEST(label_escaping)
{
    struct pod p;
    pod_setup(&p, "a\"b\\c\nd");
    p.eng.nrunning = 1;
    char *t = render(&p);
    CHECK_SAMPLE(t, "vllm:num_requests_running{engine=\"0\","
                 "model_name=\"a\\\"b\\\\c\\nd\"}", "1.0");
    /* the raw newline never reaches the page: every line is a comment or
     * starts with a metric name */
    CHECK_EQ(count_lines(t, "d\""), 0);
    free(t);
}

TEST(counters_total_and_created)
{
    struct pod p;
    pod_setup(&p, "m");
    p.eng.st.prefix_queries = 1000;
    p.eng.st.prefix_hits = 7;
    p.eng.st.preemptions = 2;
    p.eng.st.prompt_tokens = 1234567;
    p.eng.st.generation_tokens = 42;
    p.eng.st.finished_stop = 4;
    p.eng.st.finished_length = 5;
    p.eng.st.finished_abort = 6;
    char *t = render(&p);

    static const char *names[] = {
        "vllm:prefix_cache_queries", "vllm:prefix_cache_hits",
        "vllm:num_preemptions", "vllm:prompt_tokens",
        "vllm:generation_tokens", "vllm:request_success",
    };
    char line[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(line, sizeof(line), "# TYPE %s_total counter", names[i]);
        CHECK(has_line(t, line));
        snprintf(line, sizeof(line), "# HELP %s_total ", names[i]);
        CHECK_EQ(count_lines(t, line), 1);
        snprintf(line, sizeof(line), "# TYPE %s_created gauge", names[i]);
        CHECK(has_line(t, line));
        snprintf(line, sizeof(line), "%s{", names[i]); /* unmunged name */
        CHECK_EQ(count_lines(t, line), 0);
        snprintf(line, sizeof(line), "# TYPE %s ", names[i]);
        CHECK_EQ(count_lines(t, line), 0);
    }
    CHECK_SAMPLE(t, "vllm:prefix_cache_queries_total" L "}", "1000.0");
    CHECK_SAMPLE(t, "vllm:prefix_cache_hits_total" L "}", "7.0");
    CHECK_SAMPLE(t, "vllm:num_preemptions_total" L "}", "2.0");
    CHECK_SAMPLE(t, "vllm:prompt_tokens_total" L "}", "1.234567e+06");
    CHECK_SAMPLE(t, "vllm:generation_tokens_total" L "}", "42.0");
    CHECK_EQ(count_lines(t, "vllm:request_success_total{"), 3);
    CHECK_EQ(count_lines(t, "vllm:request_success_created{"), 3);
    CHECK_SAMPLE(t, "vllm:request_success_total" L ",finished_reason=\"stop\"}",
                 "4.0");
    CHECK_SAMPLE(t, "vllm:request_success_total" L
                 ",finished_reason=\"length\"}", "5.0");
    CHECK_SAMPLE(t, "vllm:request_success_total" L
                 ",finished_reason=\"abort\"}", "6.0");

    /* _created is the process start, a recent unix time, the same on all */
    char v[64] = "";
    CHECK_EQ(sample(t, "vllm:num_preemptions_created" L "}", v, sizeof(v)), 0);
    double created = strtod(v, NULL);
    CHECK(created > 1.6e9 && created <= unix_now());
    CHECK_NEAR(created, metrics_process_start, 1e-3);
    free(t);
}

TEST(histogram_page)
{
    struct pod p;
    pod_setup(&p, "m");
    struct hist *h = &p.eng.st.ttft;
    hist_observe(h, 0.001);
    hist_observe(h, 0.003);
    hist_observe(h, 0.003);
    hist_observe(h, 0.5);
    hist_observe(h, 3000.0);
    hist_observe(&p.eng.st.queue, 0.3);
    char *t = render(&p);

    static const char *le[] = {
        "0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1",
        "0.25", "0.5", "0.75", "1.0", "2.5", "5.0", "7.5", "10.0", "20.0",
        "40.0", "80.0", "160.0", "640.0", "2560.0", "+Inf",
    };
    static const char *want[] = {
        "1.0", "3.0", "3.0", "3.0", "3.0", "3.0", "3.0", "3.0", "3.0",
        "4.0", "4.0", "4.0", "4.0", "4.0", "4.0", "4.0", "4.0", "4.0",
        "4.0", "4.0", "4.0", "4.0", "5.0",
    };
    const char *name = "vllm:time_to_first_token_seconds";
    char series[256];
    CHECK(has_line(t, "# TYPE vllm:time_to_first_token_seconds histogram"));
    CHECK_EQ(count_lines(t, "vllm:time_to_first_token_seconds_bucket{"), 23);
    for (size_t i = 0; i < sizeof(le) / sizeof(le[0]); i++) {
        snprintf(series, sizeof(series), "%s_bucket" L ",le=\"%s\"}", name,
                 le[i]);
        CHECK_SAMPLE(t, series, want[i]);
    }
    CHECK_SAMPLE(t, "vllm:time_to_first_token_seconds_count" L "}", "5.0");
    char v[64] = "";
    CHECK_EQ(sample(t, "vllm:time_to_first_token_seconds_sum" L "}", v,
                    sizeof(v)), 0);
    CHECK_NEAR(strtod(v, NULL), 3000.507, 1e-9);
    CHECK(has_line(t, "# TYPE vllm:time_to_first_token_seconds_created "
                      "gauge"));

    /* the other three, and +Inf == _count on each */
    static const struct {
        const char *name;
        int nb;
        const char *first_le, *last_le;
    } hs[] = {
        {"vllm:inter_token_latency_seconds", 19, "0.01", "80.0"},
        {"vllm:e2e_request_latency_seconds", 21, "0.3", "7680.0"},
        {"vllm:request_queue_time_seconds", 21, "0.3", "7680.0"},
    };
    for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        snprintf(series, sizeof(series), "# TYPE %s histogram", hs[i].name);
        CHECK(has_line(t, series));
        snprintf(series, sizeof(series), "%s_bucket{", hs[i].name);
        CHECK_EQ(count_lines(t, series), hs[i].nb + 1);
        snprintf(series, sizeof(series), "%s_bucket" L ",le=\"%s\"}",
                 hs[i].name, hs[i].first_le);
        CHECK_EQ(sample(t, series, v, sizeof(v)), 0);
        snprintf(series, sizeof(series), "%s_bucket" L ",le=\"%s\"}",
                 hs[i].name, hs[i].last_le);
        CHECK_EQ(sample(t, series, v, sizeof(v)), 0);
        char inf[64] = "a", cnt[64] = "b";
        snprintf(series, sizeof(series), "%s_bucket" L ",le=\"+Inf\"}",
                 hs[i].name);
        sample(t, series, inf, sizeof(inf));
        snprintf(series, sizeof(series), "%s_count" L "}", hs[i].name);
        sample(t, series, cnt, sizeof(cnt));
        CHECK_STR(inf, cnt);
    }
    CHECK_SAMPLE(t, "vllm:request_queue_time_seconds_bucket" L ",le=\"0.3\"}",
                 "1.0");
    CHECK_SAMPLE(t, "vllm:request_queue_time_seconds_count" L "}", "1.0");
    free(t);
}

TEST(uninitialised_histogram_has_only_inf)
{
    struct pod p;
    pod_setup(&p, "m");
    memset(&p.eng.st.itl, 0, sizeof(p.eng.st.itl));
    char *t = render(&p);
    CHECK_EQ(count_lines(t, "vllm:inter_token_latency_seconds_bucket{"), 1);
    CHECK_SAMPLE(t, "vllm:inter_token_latency_seconds_bucket" L
                 ",le=\"+Inf\"}", "0.0");
    CHECK_SAMPLE(t, "vllm:inter_token_latency_seconds_sum" L "}", "0.0");
    free(t);
}

TEST(lora_requests_info_series)
{
    struct pod p;
    pod_setup(&p, "m");
    p.eng.cfg.max_loras = 2;
    p.nlora_info = 2;
    snprintf(p.lora_info[0].running, sizeof(p.lora_info[0].running), "a,b");
    snprintf(p.lora_info[0].waiting, sizeof(p.lora_info[0].waiting), "c");
    p.lora_info[0].ts = 1712345678.25;
    p.lora_info[1].ts = 1712345600.0; /* older, empty sets */
    char *t = render(&p);

    CHECK(has_line(t, "# HELP vllm:lora_requests_info Running stats on lora "
                      "requests."));
    CHECK(has_line(t, "# TYPE vllm:lora_requests_info gauge"));
    CHECK_EQ(count_lines(t, "vllm:lora_requests_info{"), 2);
    CHECK_SAMPLE(t, "vllm:lora_requests_info" L ",max_lora=\"2\","
                 "running_lora_adapters=\"a,b\",waiting_lora_adapters=\"c\"}",
                 "1.71234567825e+09");
    CHECK_SAMPLE(t, "vllm:lora_requests_info" L ",max_lora=\"2\","
                 "running_lora_adapters=\"\",waiting_lora_adapters=\"\"}",
                 "1.7123456e+09");
    free(t);

    p.nlora_info = 99; /* corrupt count: clamped to the array */
    t = render(&p);
    CHECK_EQ(count_lines(t, "vllm:lora_requests_info{"), 8);
    free(t);
}

/* Every sample belongs to a family announced by HELP and TYPE before it;
 * histogram samples through their _bucket/_sum/_count suffixes. */
TEST(every_sample_has_help_and_type)
{
    struct pod p;
    pod_setup(&p, "m");
    p.nlora_info = 1;
    char *t = render(&p);
    char fam[128] = "", type[16] = "";
    int samples = 0, bad = 0;
    for (char *l = t; *l; ) {
        char *end = strchr(l, '\n');
        if (!end)
            break;
        *end = '\0';
        if (!strncmp(l, "# HELP ", 7)) {
            sscanf(l + 7, "%127s", fam);
            type[0] = '\0';
        } else if (!strncmp(l, "# TYPE ", 7)) {
            char n[128];
            sscanf(l + 7, "%127s %15s", n, type);
            if (strcmp(n, fam))
                bad++;
        } else {
            size_t nl = strcspn(l, "{ ");
            char n[128];
            snprintf(n, sizeof(n), "%.*s", (int)nl, l);
            size_t fl = strlen(fam);
            int ok = !strcmp(n, fam) && strcmp(type, "histogram");
            if (!strcmp(type, "histogram") && !strncmp(n, fam, fl))
                ok = !strcmp(n + fl, "_bucket") || !strcmp(n + fl, "_sum") ||
                     !strcmp(n + fl, "_count");
            if (!ok || !type[0]) {
                bad++;
                fprintf(stderr, "  stray sample: %s\n", l);
            }
            samples++;
        }
        l = end + 1;
    }
    CHECK_EQ(bad, 0);
    CHECK(samples > 100);
    free(t);
}

/* promtool parses the page: exit 0 (clean) or 3 (lint problems only), and
 * the only lint it may report is the colon in vLLM's names. Exit 1 is a
 * parse error. Skipped (with a note) where promtool is not installed. */
TEST(promtool_parses_page)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("  promtool not installed: promtool check skipped\n");
        return;
    }
    struct pod p;
    pod_setup(&p, "meta-llama/Llama-3.1-8B \"x\"\\");
    p.legacy_metrics = 0;
    p.nlora_info = 2;
    snprintf(p.lora_info[0].running, sizeof(p.lora_info[0].running), "a,b");
    p.lora_info[0].ts = 1712345678.25;
    p.lora_info[1].ts = 1712345600.0;
    hist_observe(&p.eng.st.ttft, 0.02);
    hist_observe(&p.eng.st.e2e, 12.0);
    p.eng.st.prompt_tokens = 99;
    char *t = render(&p);

    char path[] = "/tmp/test_metrics_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        free(t);
        return;
    }
    size_t len = strlen(t);
    CHECK_EQ(write(fd, t, len), (long long)len);
    close(fd);

    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    int other = 0;
    char line[512];
    while (f && fgets(line, sizeof(line), f)) {
        if (!strstr(line, "metric names should not contain ':'")) {
            other++;
            fprintf(stderr, "  promtool: %s", line);
        }
    }
    int st = f ? pclose(f) : -1;
    CHECK(WIFEXITED(st));
    int rc = WEXITSTATUS(st);
    CHECK(rc == 0 || rc == 3);
    CHECK_EQ(other, 0);
    unlink(path);

    /* and promtool does catch a broken page (the test is not vacuous) */
    snprintf(cmd, sizeof(cmd),
             "printf '# TYPE x gauge\\nx{a=\"b} 1\\n' | "
             "promtool check metrics >/dev/null 2>&1");
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    free(t);
}

TEST(render_reports_oom)
{
    struct pod p;
    pod_setup(&p, "m");
    struct sbuf b;
    sbuf_init(&b);
    b.oom = 1;
    CHECK_EQ(metrics_render(&p, &b), -ENOMEM);
    sbuf_free(&b);
}

int main(void)
{
    RUN(gauges_and_info);
    RUN(label_escaping);
    RUN(counters_total_and_created);
    RUN(histogram_page);
    RUN(uninitialised_histogram_has_only_inf);
    RUN(lora_requests_info_series);
    RUN(every_sample_has_help_and_type);
    RUN(promtool_parses_page);
    RUN(render_reports_oom);
    return harness_done();
}
