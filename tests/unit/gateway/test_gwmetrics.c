/* Unit tests for user/gateway/gwmetrics.c: kvgated's own metrics page, and
 * what goes into its labels (issue 9): only models a pod serves get a
 * model label, tenants are bounded, local resource errors are counted
 * apart from pods. */
#include "gateway/gwmetrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "core/podtable.h"
#include "gateway/gateway.h"
#include "harness.h"

/* The rendered page as a NUL-terminated heap string (caller frees). */
static char *render(struct gw_metrics *m, const struct pod_snapshot *s)
{
    static struct pod_counters c;
    struct sbuf b;
    sbuf_init(&b);
    gw_metrics_render(m, s, &c, NULL, 1000000000ull, &b);
    sbuf_append(&b, "", 1);
    char *t = strdup(b.data ? b.data : "");
    sbuf_free(&b);
    return t;
}

/* The line after l (end when none). memchr, not strchr: under ASan every
 * strchr measures the rest of the page first, and the bounded-label tests'
 * pages of 50,000 lines took minutes. */
static const char *next_line(const char *l, const char *end)
{
    const char *eol = memchr(l, '\n', (size_t)(end - l));
    return eol ? eol + 1 : end;
}

/* Value of the sample "series value" (series exactly as rendered), or -1. */
static double sample(const char *page, const char *series)
{
    size_t n = strlen(series);
    const char *end = page + strlen(page);
    for (const char *l = page; l < end; l = next_line(l, end))
        if ((size_t)(end - l) > n && !strncmp(l, series, n) && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

/* A snapshot of one pod serving models[] and adapters[] (caller frees). */
static struct pod_snapshot *snap(const char **models, int nm, const char **ads, int na)
{
    struct pod_snapshot *s = calloc(1, sizeof(*s) + sizeof(struct pod_info));
    s->npods = 1;
    struct pod_info *p = &s->pods[0];
    snprintf(p->name, sizeof(p->name), "pod-a");
    for (int i = 0; i < nm; i++)
        snprintf(p->models[p->nmodels++], POD_MODEL_MAX, "%s", models[i]);
    for (int i = 0; i < na; i++)
        snprintf(p->adapters[p->nadapters++], POD_MODEL_MAX, "%s", ads[i]);
    return s;
}

static void request(struct gw_metrics *m, const char *model, const char *tenant, int status)
{
    static struct gw_request r;
    memset(&r, 0, sizeof(r));
    snprintf(r.model, sizeof(r.model), "%s", model);
    snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
    r.d.idx = -1;
    r.d.shadow_idx = -1;
    r.status = status;
    if (status == 200)
        r.arm = "round-robin"; /* routed: it gets latency series */
    r.t_start = 1;
    r.t_end = 2;
    gw_metrics_request(m, &r);
}

static double req_count(const char *page, const char *model, int status)
{
    char series[256];
    snprintf(series, sizeof(series),
             "kvgate_requests_total{model=\"%s\",pod=\"none\",status=\"%d\",outcome=\"ok\"}", model,
             status);
    return sample(page, series);
}

TEST(bogus_models_get_no_label)
{
    struct gw_metrics *m = gw_metrics_new();
    const char *models[] = {"llama"}, *ads[] = {"sql-lora"};
    struct pod_snapshot *s = snap(models, 1, ads, 1);
    gw_metrics_served(m, s);
    for (int i = 0; i < 200; i++) {
        char b[32];
        snprintf(b, sizeof(b), "bogus-%d", i);
        request(m, b, "", 404);
    }
    request(m, "llama", "", 200);
    request(m, "sql-lora", "", 200);
    char *p = render(m, s);
    CHECK(strstr(p, "bogus-") == NULL);
    CHECK_NEAR(req_count(p, "other", 404), 200, 0);
    CHECK_NEAR(req_count(p, "llama", 200), 1, 0);    /* not pushed into "other" */
    CHECK_NEAR(req_count(p, "sql-lora", 200), 1, 0); /* adapters too */
    free(p);
    /* a model no pod serves any more: "other" from then on */
    const char *m2[] = {"mistral"};
    struct pod_snapshot *s2 = snap(m2, 1, NULL, 0);
    gw_metrics_served(m, s2);
    request(m, "llama", "", 200);
    request(m, "mistral", "", 200);
    p = render(m, s2);
    CHECK_NEAR(req_count(p, "other", 200), 1, 0);
    CHECK_NEAR(req_count(p, "mistral", 200), 1, 0);
    free(p);
    free(s);
    free(s2);
    gw_metrics_free(m);
}

TEST(model_and_tenant_sets_bounded)
{
    struct gw_metrics *m = gw_metrics_new();
    static const char *names[100];
    static char buf[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(buf[i], sizeof(buf[i]), "model-%d", i);
        names[i] = buf[i];
    }
    struct pod_snapshot *s = calloc(1, sizeof(*s) + 13 * sizeof(struct pod_info));
    s->npods = 13; /* 8 models a pod */
    for (int i = 0; i < 100; i++)
        snprintf(s->pods[i / 8].models[s->pods[i / 8].nmodels++], POD_MODEL_MAX, "%s", names[i]);
    gw_metrics_served(m, s);
    for (int i = 0; i < 100; i++)
        request(m, names[i], "", 200);
    for (int i = 0; i < 300; i++) {
        char t[32];
        snprintf(t, sizeof(t), "tenant-%d", i);
        request(m, "model-0", t, 200);
    }
    char *p = render(m, s);
    CHECK_NEAR(req_count(p, "model-63", 200), 1, 0);
    CHECK_NEAR(req_count(p, "model-64", 200), -1, 0); /* past 64 served: "other" */
    CHECK_NEAR(req_count(p, "other", 200), 36, 0);
    CHECK(strstr(p, "tenant=\"tenant-255\"") != NULL);
    CHECK(strstr(p, "tenant=\"tenant-256\"") == NULL);
    CHECK(strstr(p, "tenant=\"other\"") != NULL);
    free(p);
    free(s);
    gw_metrics_free(m);
}

TEST(tenant_from_user_switch)
{
    CHECK_EQ(gw_tenant_from_user(), 0); /* off by default */
    gw_set_tenant_from_user(1);
    CHECK_EQ(gw_tenant_from_user(), 1);
    gw_set_tenant_from_user(0);
    CHECK_EQ(gw_tenant_from_user(), 0);
}

TEST(local_errors_by_where_and_errno)
{
    struct gw_metrics *m = gw_metrics_new();
    gw_metrics_local_error(m, "scrape", -EMFILE);
    gw_metrics_local_error(m, "scrape", EMFILE);
    gw_metrics_local_error(m, "health", -EADDRNOTAVAIL);
    char *p = render(m, NULL);
    CHECK(strstr(p, "# TYPE kvgate_local_errors_total counter") != NULL);
    CHECK_NEAR(sample(p, "kvgate_local_errors_total{where=\"scrape\",errno=\"EMFILE\"}"), 2, 0);
    CHECK_NEAR(sample(p, "kvgate_local_errors_total{where=\"health\",errno=\"EADDRNOTAVAIL\"}"),
               1, 0);
    free(p);
    gw_metrics_free(m);
}

TEST(local_errno_classes)
{
    CHECK(gw_errno_is_local(-EMFILE));
    CHECK(gw_errno_is_local(ENFILE));
    CHECK(gw_errno_is_local(-EADDRNOTAVAIL));
    CHECK(gw_errno_is_local(-ENOBUFS));
    CHECK(!gw_errno_is_local(-ECONNREFUSED));
    CHECK(!gw_errno_is_local(-ETIMEDOUT));
    CHECK(!gw_errno_is_local(-ECONNRESET));
    CHECK(!gw_errno_is_local(-EHOSTUNREACH));
}

/* Every mode's decisions under its own label (token-load's were counted as
 * prefix-aware: the table had room for four modes), and the index that
 * judged each pick. */
TEST(decisions_by_mode_and_index)
{
    struct gw_metrics *m = gw_metrics_new();
    static struct gw_request r;
    const enum policy_mode modes[] = {POLICY_TOKEN_LOAD, POLICY_TOKEN_LOAD, POLICY_PREFIX_AWARE,
                                      POLICY_ROUND_ROBIN};
    const char *idx[] = {"exact", "approximate", "exact", NULL};
    for (int i = 0; i < 4; i++) {
        memset(&r, 0, sizeof(r));
        strcpy(r.model, "m");
        strcpy(r.pod.name, "pod-a");
        r.d.status = ROUTE_OK;
        r.d.idx = 0;
        r.d.shadow_idx = -1;
        r.d.mode = modes[i];
        r.d.reason = modes[i] == POLICY_ROUND_ROBIN ? REASON_ROUND_ROBIN : REASON_LOAD;
        r.index_mode = idx[i];
        r.status = 200;
        r.t_start = 1, r.t_end = 2;
        gw_metrics_request(m, &r);
    }
    const char *served[] = {"m"};
    struct pod_snapshot *sn = snap(served, 1, NULL, 0);
    char *page = render(m, sn);
    free(sn);
    CHECK_EQ(sample(page, "kvgate_decisions_total{mode=\"token-load\",reason=\"load\"}"), 2);
    CHECK_EQ(sample(page, "kvgate_decisions_total{mode=\"prefix-aware\",reason=\"load\"}"), 1);
    CHECK_EQ(sample(page, "kvgate_decisions_total{mode=\"round-robin\",reason=\"round-robin\"}"), 1);
    CHECK_EQ(sample(page, "kvgate_index_decisions_total{index=\"exact\"}"), 2);
    CHECK_EQ(sample(page, "kvgate_index_decisions_total{index=\"approximate\"}"), 1);
    free(page);
    gw_metrics_free(m);
}

static void tok_request(struct gw_metrics *m, const char *tenant, const char *wclass,
                        const char *arm, int src, uint64_t p, uint64_t c, uint64_t k)
{
    static struct gw_request r;
    memset(&r, 0, sizeof(r));
    strcpy(r.model, "m");
    snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
    snprintf(r.wclass, sizeof(r.wclass), "%s", wclass);
    r.arm = arm;
    r.d.idx = -1;
    r.d.shadow_idx = -1;
    r.status = 200;
    r.t_start = 1, r.t_end = 2;
    r.tokens.src = src;
    r.tokens.prompt = p;
    r.tokens.cached = k;
    r.tokens.completion = c;
    gw_metrics_request(m, &r);
}

/* The sum of a family's samples (every series). */
static double family_sum(const char *page, const char *fam)
{
    double s = 0;
    size_t n = strlen(fam);
    const char *end = page + strlen(page);
    for (const char *l = page; l < end; l = next_line(l, end)) {
        const char *eol = next_line(l, end);
        if ((size_t)(eol - l) > n && !strncmp(l, fam, n) && l[n] == '{') {
            const char *sp = memchr(l, ' ', (size_t)(eol - l));
            if (sp)
                s += strtod(sp + 1, NULL);
        }
    }
    return s;
}

TEST(token_counters_by_class_and_arm_bounded)
{
    struct gw_metrics *m = gw_metrics_new();
    const char *served[] = {"m"};
    struct pod_snapshot *sn = snap(served, 1, NULL, 0);
    gw_metrics_served(m, sn);
    for (int i = 0; i < 3; i++)
        tok_request(m, "t", "c1", "prefix-aware", GW_USAGE_REPORTED, 10, 2, 4);
    tok_request(m, "t", "c1", "prefix-aware", GW_USAGE_ESTIMATED, 7, 5, 0);
    tok_request(m, "t", "c1", "canary", GW_USAGE_NONE, 99, 99, 99); /* not counted */
    char *page = render(m, sn);
    CHECK_EQ(sample(page, "kvgate_prompt_tokens_total{model=\"m\",tenant=\"t\",class=\"c1\","
                          "arm=\"prefix-aware\",estimated=\"false\"}"), 30);
    CHECK_EQ(sample(page, "kvgate_cached_prompt_tokens_total{model=\"m\",tenant=\"t\",class=\"c1\","
                          "arm=\"prefix-aware\",estimated=\"false\"}"), 12);
    CHECK_EQ(sample(page, "kvgate_completion_tokens_total{model=\"m\",tenant=\"t\",class=\"c1\","
                          "arm=\"prefix-aware\",estimated=\"true\"}"), 5);
    /* no token series for it (its latency series has one: it was answered) */
    CHECK(strstr(page, "_tokens_total{model=\"m\",tenant=\"t\",class=\"c1\",arm=\"canary\"") == NULL);
    free(page);
    /* 40 classes: 32 named, then "other" */
    for (int i = 0; i < 40; i++) {
        char c[16];
        snprintf(c, sizeof(c), "class-%d", i);
        tok_request(m, "t", c, "prefix-aware", GW_USAGE_REPORTED, 1, 1, 0);
    }
    page = render(m, sn);
    CHECK(strstr(page, "class=\"class-30\"") != NULL); /* c1 took one of the 32 */
    CHECK(strstr(page, "class=\"class-31\"") == NULL);
    CHECK_EQ(sample(page, "kvgate_completion_tokens_total{model=\"m\",tenant=\"t\",class=\"other\","
                          "arm=\"prefix-aware\",estimated=\"false\"}"), 9);
    free(page);
    /* more label sets than series: the rest in one series, all "other",
     * and the totals whole */
    double want = 6 + 5 + 40;
    for (int t = 0; t < 256; t++)
        for (int c = 0; c < 20; c++) {
            char tn[16], cn[16];
            snprintf(tn, sizeof(tn), "T%d", t);
            snprintf(cn, sizeof(cn), "class-%d", c);
            tok_request(m, tn, cn, "round-robin", GW_USAGE_REPORTED, 1, 1, 0);
            want += 1;
        }
    page = render(m, sn);
    CHECK_EQ(family_sum(page, "kvgate_completion_tokens_total"), want);
    CHECK(sample(page, "kvgate_completion_tokens_total{model=\"other\",tenant=\"other\",class=\"other\","
                       "arm=\"other\",estimated=\"false\"}") > 0);
    size_t series = 0;
    for (const char *l = page; (l = strstr(l, "\nkvgate_completion_tokens_total{")); l++)
        series++;
    CHECK_EQ(series, 4096);
    free(page);
    free(sn);
    gw_metrics_free(m);
}

static void ttft_request(struct gw_metrics *m, const char *tenant, const char *wclass,
                         const char *arm, int status, double ttft_s)
{
    static struct gw_request r;
    memset(&r, 0, sizeof(r));
    strcpy(r.model, "m");
    snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
    snprintf(r.wclass, sizeof(r.wclass), "%s", wclass);
    r.arm = arm;
    r.d.idx = -1;
    r.d.shadow_idx = -1;
    r.status = status;
    r.t_start = 1000;
    r.t_first_token = 1000 + (uint64_t)(ttft_s * 1e9);
    r.t_end = r.t_first_token + 1;
    gw_metrics_request(m, &r);
}

/* The latency histograms carry the token counters' labels (less
 * estimated), so a TTFT quantile per tenant and arm can be recorded next to
 * the hit rate and cost (scripts/prometheus/kvgate.rules.yml); a 404 mints
 * no series; past the bound, one overflow series keeps the totals whole. */
TEST(latency_by_class_and_arm_bounded)
{
    struct gw_metrics *m = gw_metrics_new();
    const char *served[] = {"m"};
    struct pod_snapshot *sn = snap(served, 1, NULL, 0);
    gw_metrics_served(m, sn);
    ttft_request(m, "t1", "chat", "canary", 200, 0.03);
    ttft_request(m, "t1", "chat", "canary", 200, 0.07);
    ttft_request(m, "t1", "chat", "baseline", 200, 0.3);
    ttft_request(m, "t1", "", "baseline", 200, 0.3);  /* class "default" */
    ttft_request(m, "t2", "chat", "canary", 404, 0.01); /* no series */
    ttft_request(m, "t3", "chat", NULL, 200, 0.01);     /* not routed: none */
    static struct gw_request r; /* an inter-token gap, on its request's series */
    memset(&r, 0, sizeof(r));
    strcpy(r.model, "m");
    strcpy(r.tenant, "t1");
    strcpy(r.wclass, "chat");
    r.arm = "canary";
    gw_metrics_itl(m, &r, 0.02);
    char *page = render(m, sn);
    const char *L = "model=\"m\",tenant=\"t1\",class=\"chat\",arm=\"canary\"";
    char k[256];
    snprintf(k, sizeof(k), "kvgate_time_to_first_token_seconds_bucket{%s,le=\"0.04\"}", L);
    CHECK_EQ(sample(page, k), 1);
    snprintf(k, sizeof(k), "kvgate_time_to_first_token_seconds_bucket{%s,le=\"0.08\"}", L);
    CHECK_EQ(sample(page, k), 2);
    snprintf(k, sizeof(k), "kvgate_time_to_first_token_seconds_count{%s}", L);
    CHECK_EQ(sample(page, k), 2);
    snprintf(k, sizeof(k), "kvgate_inter_token_latency_seconds_count{%s}", L);
    CHECK_EQ(sample(page, k), 1);
    snprintf(k, sizeof(k), "kvgate_e2e_request_latency_seconds_count{%s}", L);
    CHECK_EQ(sample(page, k), 2);
    CHECK_EQ(sample(page, "kvgate_time_to_first_token_seconds_count{model=\"m\",tenant=\"t1\","
                          "class=\"chat\",arm=\"baseline\"}"), 1);
    CHECK_EQ(sample(page, "kvgate_time_to_first_token_seconds_count{model=\"m\",tenant=\"t1\","
                          "class=\"default\",arm=\"baseline\"}"), 1);
    CHECK(strstr(page, "tenant=\"t2\"") == NULL);
    CHECK(strstr(page, "tenant=\"t3\"") == NULL);
    free(page);
    /* 256 tenants x 8 classes x 2 arms: far more label sets than 1024 */
    double want = 4;
    for (int t = 0; t < 256; t++)
        for (int c = 0; c < 8; c++)
            for (int a = 0; a < 2; a++) {
                char tn[16], cn[16];
                snprintf(tn, sizeof(tn), "T%d", t);
                snprintf(cn, sizeof(cn), "class-%d", c);
                ttft_request(m, tn, cn, a ? "canary" : "baseline", 200, 0.05);
                want += 1;
            }
    page = render(m, sn);
    CHECK_EQ(family_sum(page, "kvgate_time_to_first_token_seconds_count"), want);
    CHECK(sample(page, "kvgate_time_to_first_token_seconds_count{model=\"other\",tenant=\"other\","
                       "class=\"other\",arm=\"other\"}") > 0);
    size_t series = 0;
    for (const char *l = page; (l = strstr(l, "\nkvgate_time_to_first_token_seconds_count{")); l++)
        series++;
    CHECK_EQ(series, 1024);
    free(page);
    free(sn);
    gw_metrics_free(m);
}

/* The cached-prompt counter never exceeds the prompt counter (a pod that
 * reports more cached than prompt tokens is clamped, as the report does). */
TEST(cached_clamped_to_prompt)
{
    struct gw_metrics *m = gw_metrics_new();
    const char *served[] = {"m"};
    struct pod_snapshot *sn = snap(served, 1, NULL, 0);
    gw_metrics_served(m, sn);
    tok_request(m, "t", "c", "prefix-aware", GW_USAGE_REPORTED, 10, 1, 25);
    char *page = render(m, sn);
    CHECK_EQ(sample(page, "kvgate_cached_prompt_tokens_total{model=\"m\",tenant=\"t\",class=\"c\","
                          "arm=\"prefix-aware\",estimated=\"false\"}"), 10);
    free(page);
    free(sn);
    gw_metrics_free(m);
}

/* issue 13: shadow mode estimates the hit-rate gain before traffic moves */
TEST(shadow_prefix_blocks)
{
    struct gw_metrics *m = gw_metrics_new();
    const char *models[] = {"llama"};
    struct pod_snapshot *s = snap(models, 1, NULL, 0);
    gw_metrics_served(m, s);
    static struct gw_request r;
    for (int i = 0; i < 4; i++) {
        memset(&r, 0, sizeof(r));
        snprintf(r.model, sizeof(r.model), "llama");
        snprintf(r.pod.name, sizeof(r.pod.name), "pod-a");
        r.status = 200;
        r.d.status = ROUTE_OK;
        r.d.idx = 0;
        r.d.shadow_idx = i < 3 ? 1 : 0; /* disagrees 3 times */
        r.d.blocks = 10;
        r.d.prefix_blocks = 2;
        r.d.shadow_prefix_blocks = i < 3 ? 9 : 2;
        gw_metrics_request(m, &r);
    }
    /* a request without shadow counts nowhere here */
    r.d.shadow_idx = -1;
    gw_metrics_request(m, &r);
    char *p = render(m, s);
    CHECK_NEAR(sample(p, "kvgate_shadow_prefix_blocks_total{pick=\"actual\"}"), 8, 0);
    CHECK_NEAR(sample(p, "kvgate_shadow_prefix_blocks_total{pick=\"shadow\"}"), 29, 0);
    CHECK_NEAR(sample(p, "kvgate_shadow_prefix_blocks_total{pick=\"all\"}"), 40, 0);
    CHECK_NEAR(sample(p, "kvgate_shadow_decisions_total{agree=\"false\"}"), 3, 0);
    free(p);
    free(s);
    gw_metrics_free(m);
}

/* The lines of page that begin with prefix. */
static int count_lines(const char *page, const char *prefix)
{
    int n = 0;
    size_t k = strlen(prefix);
    const char *end = page + strlen(page);
    for (const char *l = page; l < end; l = next_line(l, end))
        n += !strncmp(l, prefix, k);
    return n;
}

/* The series are found first by the label texts' pointers (gwmetrics.c
 * label_ptrs_match); one text behind two pointers must still be one
 * series: a tenant named "other" (a slot of the tenant set) and the
 * "other" of a full set (static text); an arm's name from two places. */
TEST(one_series_per_text_whatever_the_pointer)
{
    struct gw_metrics *m = gw_metrics_new();
    const char *served[] = {"m"};
    struct pod_snapshot *sn = snap(served, 1, NULL, 0);
    gw_metrics_served(m, sn);
    tok_request(m, "other", "c", "prefix-aware", GW_USAGE_REPORTED, 1, 1, 0);
    for (int i = 0; i < 300; i++) { /* fills the 256 tenants */
        char t[16];
        snprintf(t, sizeof(t), "tenant-%d", i);
        tok_request(m, t, "c", "prefix-aware", GW_USAGE_REPORTED, 1, 1, 0);
    }
    char arm[16];
    strcpy(arm, "prefix-aware"); /* not the literal's pointer */
    tok_request(m, "other", "c", arm, GW_USAGE_REPORTED, 1, 1, 0);
    char *page = render(m, sn);
    const char *L = "kvgate_completion_tokens_total{model=\"m\",tenant=\"other\",class=\"c\","
                    "arm=\"prefix-aware\",estimated=\"false\"}";
    CHECK_EQ(count_lines(page, L), 1);
    /* the first, the 45 past the set's 256 (255 after "other"), the last */
    CHECK_EQ(sample(page, L), 1 + 45 + 1);
    CHECK_EQ(count_lines(page, "kvgate_time_to_first_token_seconds_count{model=\"m\","
                               "tenant=\"other\",class=\"c\",arm=\"prefix-aware\"}"), 1);
    free(page);
    free(sn);
    gw_metrics_free(m);
}

int main(void)
{
    RUN(bogus_models_get_no_label);
    RUN(model_and_tenant_sets_bounded);
    RUN(tenant_from_user_switch);
    RUN(local_errors_by_where_and_errno);
    RUN(local_errno_classes);
    RUN(decisions_by_mode_and_index);
    RUN(token_counters_by_class_and_arm_bounded);
    RUN(latency_by_class_and_arm_bounded);
    RUN(cached_clamped_to_prompt);
    RUN(shadow_prefix_blocks);
    RUN(one_series_per_text_whatever_the_pointer);
    return harness_done();
}
