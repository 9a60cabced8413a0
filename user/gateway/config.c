/* config: kvgated's JSON configuration. See config.h.
 *
 * The file is one JSON object. Every key is optional; a key that is not
 * listed here is an error, and so is a key given twice. Defaults in [].
 * A reload (SIGHUP, POST /admin/reload) applies pods, policy, scrape,
 * admin.token, admin.insecure and metrics at once; every other key keeps
 * its running value until a restart, and the reload names the ones that
 * changed (KEYS[].reload below, gw_config_restart_keys).
 *
 *   listen            "host:port" the data-path listener      ["0.0.0.0:8080"]
 *   workers           worker threads, 0 = one per core, <= 64 [0]
 *   admin.listen      "host:port" of the admin API, "" = off   ["127.0.0.1:9090"]
 *   admin.token       bearer token required under /admin/, "" = none [""]
 *   admin.insecure    allow a non-loopback admin.listen without a token:
 *                     refused otherwise (gw_config_check_admin)  [false]
 *   access_log        file path, "-" = stdout, "" = off        ["-"]
 *   access_log_buffer_bytes  lines queued for the log's writer thread;
 *                     full: lines dropped and counted, [4096, 1073741824] [1048576]
 *   pods              array (at most 512) of:
 *     url             required, "http://host:port" (optional trailing "/");
 *                     host: IPv4, [IPv6], "localhost" or a DNS name (IPv4
 *                     preferred), resolved when the pod is added: at start
 *                     before serving, at run time on the resolver thread
 *     name            unique, 1-63 bytes of printable ASCII, none of
 *                     space / " \ % ? #                        ["host:port"]
 *     engine          "vllm" | "sglang" | "trtllm"             ["vllm"]
 *     models          at most 8 names (1-127 bytes; base models and
 *                     adapters) the pod serves, sorted into models and
 *                     adapters by its GET /v1/models; absent = everything
 *                     /v1/models lists                          [absent]
 *                     (two pods may not share a url)
 *     cost_per_hour   what the pod costs an hour (any currency), >= 0:
 *                     over costs[accelerator]              [unpriced]
 *     accelerator     its accelerator type, a key of "costs"   [""]
 *     max_num_seqs    the engine's batch limit, for batch occupancy [256]
 *   costs             {"<accelerator>": cost per hour of one pod}, at most
 *                     32; a pod naming an accelerator not listed (and no
 *                     cost_per_hour of its own) is an error       [{}]
 *   policy:
 *     mode            "prefix-aware" | "least-request" | "round-robin" |
 *                     "random"                                  ["prefix-aware"]
 *     baseline        mode used by shadow and canary            ["round-robin"]
 *     shadow          route by baseline, record mode's pick     [false]
 *     canary_percent  [0, 100] share routed by mode, the rest by baseline [100]
 *     weights.prefix / .queue / .kv / .lora / .session  >= 0    [3, 2, 2, 1, 1]
 *     queue_saturation   waiting >= this: saturated, > 0        [5]
 *     kv_saturation      KV usage >= this: saturated, > 0       [0.8]
 *     stale_ms           metrics older: saturated, [1, 3600000] [200]
 *     bounded_load       0 (off) or >= 1: at most this x mean in-flight [1.25]
 *     bounded_floor      ... but never limited below this, >= 0 [8]
 *     bounded_session    a session's own pod: up to this x mean, >= 0 [2.0]
 *     overrides          {"<model>": {same keys but overrides}}, at most 32;
 *                        an override inherits what it does not set from
 *                        the global policy                       [{}]
 *   fingerprint.block_bytes   prompt bytes per block, [16, 4096]   [64]
 *   fingerprint.max_blocks    blocks per prompt, [1, 1024]         [256]
 *   index.max_entries         prefix-index entries, all pods,
 *                             [1024, 268435456]                    [2000000]
 *   index.default_capacity_blocks  per pod until its cache size is
 *                             scraped, [0, 268435456]; 0 = what 27,000
 *                             16-token blocks hold (vLLM, 8B, one H100) [0]
 *   index.bytes_per_token     prompt bytes per model token, (0, 1024] [4]
 *   scrape.interval_ms        /metrics period, [1, 60000]          [50]
 *   scrape.timeout_ms         any probe's timeout, [1, 600000]     [1000]
 *   scrape.health_interval_ms /health period, [1, 3600000]         [1000]
 *   scrape.models_interval_ms /v1/models period, 0 = only at start and
 *                             when a pod recovers, [0, 86400000]   [5000]
 *   scrape.max_page_bytes     a pod's /metrics or /v1/models body past
 *                             this fails (too_large), [65536, 16777216] [4194304]
 *   limits.max_header_bytes   [1024, 1048576]                      [65536]
 *   limits.max_body_bytes     [1024, 1073741824]                   [33554432]
 *   limits.max_connections    all workers, [1, 1000000]            [10000]
 *   limits.header_timeout_ms  whole head + body, [1, 3600000]      [10000]
 *   limits.idle_timeout_ms    keep-alive idle, [1, 3600000]        [60000]
 *   limits.connect_timeout_ms to a pod, [1, 600000]                [1000]
 *   limits.first_byte_timeout_ms  pod's whole response head, [1, 3600000] [120000]
 *   limits.max_buffered_bytes per stream, [4096, 1073741824]       [1048576]
 *   limits.max_buffered_total_bytes  request bodies held, all
 *                             connections; past it 503, [65536, 2^40] [1073741824]
 *   limits.stream_idle_timeout_ms  an answer under way with no byte
 *                             from its pod, [1, 3600000]           [60000]
 *   limits.send_timeout_ms    a client taking none of its answer,
 *                             [1, 3600000]                         [60000]
 *   limits.drain_timeout_ms   SIGTERM: in-flight requests finish
 *                             within it, [0, 3600000]              [30000]
 *   outlier.consecutive_failures  failures in a row that eject a pod,
 *                             0 = off, [0, 1000000]                [5]
 *   outlier.failure_ratio     failure share over a window that ejects,
 *                             0 = off, [0, 1]                      [0.5]
 *   outlier.min_requests      ... once the window saw this many    [10]
 *   outlier.window_ms         [1, 3600000]                         [10000]
 *   outlier.base_ejection_ms  first ejection, doubled on repeats   [5000]
 *   outlier.max_ejection_ms   longest ejection                     [300000]
 *   retry.budget_percent      retries on another pod per 100 requests,
 *                             [0, 100]                             [20]
 *   retry.min_per_second      retries always allowed per second    [5]
 *   retry.avoid_failed_ms     a retry avoids pods that failed this
 *                             recently, 0 = only the one it left   [10000]
 *   rollout.steps             the guarded canary's shares in percent,
 *                             increasing, 2-16 of them, the last 100
 *                                                      [[1, 5, 25, 50, 100]]
 *   rollout.hold_ms           each step's hold before it is judged,
 *                             [1000, 86400000]                     [60000]
 *   rollout.min_samples       requests per arm for a tenant or class to
 *                             be judged, [1, 1000000]              [50]
 *   rollout.ttft_p99_tolerance  canary TTFT p99 <= baseline's x (1 + this)
 *                             + latency_slack_ms, [0, 100]          [0.25]
 *   rollout.itl_p50_tolerance   the same for ITL p50, [0, 100]      [0.25]
 *   rollout.error_tolerance   canary error share <= baseline's + this,
 *                             [0, 1]                               [0.01]
 *   rollout.hit_rate_tolerance  canary hit rate >= baseline's - this,
 *                             [0, 1]                               [0.05]
 *   rollout.latency_slack_ms  [0, 600000]                          [5]
 *   rollout.candidate  a "policy" object (same keys, overrides too): the
 *                      canary routes by it and the baseline by "policy"'s
 *                      mode; absent: the canary is "policy".mode and the
 *                      baseline "policy".baseline                 [absent]
 *   metrics.tenant_from_user  the body's "user" names the tenant when no
 *                      x-gateway-inference-fairness-id /
 *                      x-llm-d-inference-fairness-id header does (it
 *                      lands in /metrics labels and the access log) [false]
 *   accounting.enabled  what each answer cost, for operators who would
 *                      rather not pay for it (issue 13). false skips, per
 *                      request: the usage scan of every 2xx answer (the
 *                      non-streamed body's JSON scan, each SSE event's
 *                      look for "usage"), the token counts and their
 *                      estimate, the token and cost counters
 *                      (kvgate_*tokens_total, kvgate_cost_*), the request's
 *                      cost, the access log's token fields, the report
 *                      book (GET /admin/report has no rows) and the
 *                      guarded rollout's book (POST /admin/rollout
 *                      "start" is refused: it would have nothing to
 *                      judge). Kept: workload classes, request counts,
 *                      TTFT / ITL / E2E, the token load (routing).
 *                      accounting.request_usage needs it on      [true]
 *   accounting.request_usage  streamed requests without
 *                      stream_options.include_usage get it added, and the
 *                      usage-only chunk that brings is taken out of the
 *                      client's stream (accounting.h)              [false]
 *   classes            at most 32 rules {"class": name, "model": m,
 *                      "path": "/v1/..."} (class and one of model / path
 *                      required; class 1-63 bytes of printable ASCII): the
 *                      workload class of a request whose headers name none;
 *                      the first match wins, else "default"        [[]]
 *   splice.mode        "auto" | "on" | "off": kernel splice of session
 *                      flows (auto: models whose policy is prefix-aware
 *                      without shadow or canary)                   ["auto"]
 *   splice.budget_bytes  in flight per direction per spliced flow,
 *                      [65536, 1073741824]                          [4194304]
 *   splice.models      {"<model>": "auto" | "on" | "off"}, at most 32 [{}]
 *   bypass.decide_socket  a unix SOCK_SEQPACKET path where kvg-bypassd asks
 *                      kvgated to pick the pod for each first request
 *                      (user/bypass/decide.h), at most 107 bytes; "" off [""]
 *   bypass.max_outstanding  decisions one bypass worker may hold open
 *                      (routed, not yet DONE), [1, 65536]           [4096]
 *   bypass.adopt_socket  a unix SOCK_SEQPACKET path where kvg-bypassd hands
 *                      up the connections it does not splice, as kernel
 *                      sockets (user/bypass/adopt.h); at most 107 bytes;
 *                      "" off                                           [""]
 *
 * Errors name the key path: `pods[2].url: expected "http://host:port", got
 * "ftp://x"`, `policy.overrides.m1.mode: unknown mode "fast" (...)`,
 * `unknown key "polcy" at top level`, `line 3, column 9: JSON syntax
 * error`. A model name that is not [A-Za-z0-9_-]+ is written
 * policy.overrides["org/model"] in paths. */
#include "gateway/config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/netaddr.h"
#include "gateway/jsonpath.h"

/* ---- the key table ---- */

enum key_kind {
    K_SECTION,       /* an object: its keys are the entries naming it as section */
    K_U32, K_U64, K_SIZE, /* integers in [lo, hi] */
    K_POSNUM,        /* a number in (lo, hi] */
    K_NUM,           /* a number in [lo, hi] */
    K_BOOL,          /* int */
    K_STR,           /* char[size], at most size - 1 bytes */
    K_LISTEN,        /* char[size], "host:port" */
    K_LISTEN_OFF,    /* ... or "" (off) */
    K_TOKEN,         /* char[size], printable ASCII without spaces */
    K_SPLICE_MODE,   /* int, enum gw_splice_mode */
    K_SPLICE_MODELS, /* {"<model>": mode}: nsplice_models, splice_models[] */
    K_TOKENIZERS,    /* {"<model>": "pseudo" | {...}}: ntokenizers, tokenizers[] */
    K_CLASSES,       /* [{"class","model","path"}]: nclasses, classes[] */
    K_STEPS,         /* [percent, ...]: struct rollout_cfg steps and nsteps */
    K_COSTS,         /* {"<accelerator>": per hour}: ncosts, costs[] */
    K_CANDIDATE,     /* a "policy" object: has_candidate, candidate */
    K_PODS,          /* config_pod.c */
    K_POLICY,        /* config_policy.c */
};

/* What a reload does with a key whose value changed. */
enum key_reload {
    RL_LIVE,         /* applied at once (control_reload.c) */
    RL_RESTART,      /* keeps its running value until a restart, and the reload says so */
};

struct key_spec {
    const char *section; /* "" top level */
    const char *name;
    enum key_kind kind;
    double lo, hi;
    size_t off, size;    /* the field in struct gw_config */
    enum key_reload reload;
};

#define F(f) offsetof(struct gw_config, f), sizeof(((struct gw_config *)0)->f)
#define SECTION(name) {"", name, K_SECTION, 0, 0, 0, 0, RL_LIVE}
static const struct key_spec KEYS[] = {
    {"", "listen", K_LISTEN, 0, 0, F(listen), RL_RESTART},
    {"", "workers", K_U32, 0, 64, F(workers), RL_RESTART},
    SECTION("admin"),
    {"admin", "listen", K_LISTEN_OFF, 0, 0, F(admin_listen), RL_RESTART},
    {"admin", "token", K_TOKEN, 0, 0, F(admin_token), RL_LIVE},
    {"admin", "insecure", K_BOOL, 0, 0, F(admin_insecure), RL_LIVE},
    {"", "access_log", K_STR, 0, 0, F(access_log), RL_RESTART},
    {"", "access_log_buffer_bytes", K_SIZE, 4096, 1073741824, F(access_log_buffer), RL_RESTART},
    {"", "pods", K_PODS, 0, 0, F(pods), RL_LIVE},
    {"", "policy", K_POLICY, 0, 0, F(policies), RL_LIVE},
    {"", "costs", K_COSTS, 0, 0, F(costs), RL_LIVE},
    SECTION("fingerprint"),
    {"fingerprint", "block_bytes", K_U32, 16, 4096, F(block_bytes), RL_RESTART},
    {"fingerprint", "max_blocks", K_U32, 1, 1024, F(max_blocks), RL_RESTART},
    SECTION("index"),
    {"index", "max_entries", K_U32, 1024, 268435456, F(index_max_entries), RL_RESTART},
    {"index", "default_capacity_blocks", K_U32, 0, 268435456, F(index_default_blocks),
     RL_RESTART},
    {"index", "bytes_per_token", K_POSNUM, 0, 1024, F(bytes_per_token), RL_RESTART},
    SECTION("kv_events"),
    {"kv_events", "max_entries", K_U32, 1024, 268435456, F(kv_max_entries), RL_RESTART},
    {"kv_events", "replay_timeout_ms", K_U32, 1, 600000, F(kv_replay_timeout_ms), RL_RESTART},
    {"kv_events", "silence_ms", K_U32, 1, 3600000, F(kv_silence_ms), RL_RESTART},
    {"kv_events", "silence_tokens", K_U64, 1, 1e12, F(kv_silence_tokens), RL_RESTART},
    {"", "tokenizers", K_TOKENIZERS, 0, 0, F(tokenizers), RL_RESTART},
    SECTION("scrape"),
    {"scrape", "interval_ms", K_U32, 1, 60000, F(scrape_ms), RL_LIVE},
    {"scrape", "timeout_ms", K_U32, 1, 600000, F(scrape_timeout_ms), RL_LIVE},
    {"scrape", "health_interval_ms", K_U32, 1, 3600000, F(health_ms), RL_LIVE},
    {"scrape", "models_interval_ms", K_U32, 0, 86400000, F(models_ms), RL_LIVE},
    {"scrape", "max_page_bytes", K_SIZE, 65536, 16777216, F(scrape_max_page), RL_LIVE},
    SECTION("limits"),
    {"limits", "max_header_bytes", K_U32, 1024, 1048576, F(max_header_bytes), RL_RESTART},
    {"limits", "max_body_bytes", K_U64, 1024, 1073741824, F(max_body_bytes), RL_RESTART},
    {"limits", "max_connections", K_U32, 1, 1000000, F(max_connections), RL_RESTART},
    {"limits", "header_timeout_ms", K_U32, 1, 3600000, F(header_timeout_ms), RL_RESTART},
    {"limits", "idle_timeout_ms", K_U32, 1, 3600000, F(idle_timeout_ms), RL_RESTART},
    {"limits", "connect_timeout_ms", K_U32, 1, 600000, F(connect_timeout_ms), RL_RESTART},
    {"limits", "first_byte_timeout_ms", K_U32, 1, 3600000, F(first_byte_timeout_ms),
     RL_RESTART},
    {"limits", "max_buffered_bytes", K_SIZE, 4096, 1073741824, F(max_buffered_bytes),
     RL_RESTART},
    {"limits", "max_buffered_total_bytes", K_U64, 65536, 1099511627776.0,
     F(max_buffered_total_bytes), RL_RESTART},
    {"limits", "stream_idle_timeout_ms", K_U32, 1, 3600000, F(stream_idle_timeout_ms),
     RL_RESTART},
    {"limits", "send_timeout_ms", K_U32, 1, 3600000, F(send_timeout_ms), RL_RESTART},
    {"limits", "drain_timeout_ms", K_U32, 0, 3600000, F(drain_timeout_ms), RL_RESTART},
    SECTION("outlier"),
    {"outlier", "consecutive_failures", K_U32, 0, 1000000, F(outlier.consecutive), RL_RESTART},
    {"outlier", "failure_ratio", K_NUM, 0, 1, F(outlier.ratio), RL_RESTART},
    {"outlier", "min_requests", K_U32, 1, 1000000, F(outlier.min_requests), RL_RESTART},
    {"outlier", "window_ms", K_U32, 1, 3600000, F(outlier.window_ms), RL_RESTART},
    {"outlier", "base_ejection_ms", K_U32, 1, 3600000, F(outlier.base_ms), RL_RESTART},
    {"outlier", "max_ejection_ms", K_U32, 1, 86400000, F(outlier.max_ms), RL_RESTART},
    SECTION("retry"),
    {"retry", "budget_percent", K_NUM, 0, 100, F(outlier.budget_percent), RL_RESTART},
    {"retry", "min_per_second", K_NUM, 0, 1000000, F(outlier.min_per_second), RL_RESTART},
    {"retry", "avoid_failed_ms", K_U32, 0, 3600000, F(outlier.recent_ms), RL_RESTART},
    SECTION("rollout"),
    {"rollout", "steps", K_STEPS, 0, 0, F(rollout), RL_LIVE},
    {"rollout", "candidate", K_CANDIDATE, 0, 0, F(candidate), RL_LIVE},
    {"rollout", "hold_ms", K_U32, 1000, 86400000, F(rollout.hold_ms), RL_LIVE},
    {"rollout", "min_samples", K_U32, 1, 1000000, F(rollout.min_samples), RL_LIVE},
    {"rollout", "ttft_p99_tolerance", K_NUM, 0, 100, F(rollout.tol_ttft_p99), RL_LIVE},
    {"rollout", "itl_p50_tolerance", K_NUM, 0, 100, F(rollout.tol_itl_p50), RL_LIVE},
    {"rollout", "error_tolerance", K_NUM, 0, 1, F(rollout.tol_error), RL_LIVE},
    {"rollout", "hit_rate_tolerance", K_NUM, 0, 1, F(rollout.tol_hit), RL_LIVE},
    {"rollout", "latency_slack_ms", K_NUM, 0, 600000, F(rollout.slack_ms), RL_LIVE},
    SECTION("splice"),
    {"splice", "mode", K_SPLICE_MODE, 0, 0, F(splice_mode), RL_RESTART},
    {"splice", "budget_bytes", K_U64, 65536, 1073741824, F(splice_budget), RL_RESTART},
    {"splice", "models", K_SPLICE_MODELS, 0, 0, F(splice_models), RL_RESTART},
    SECTION("accounting"),
    {"accounting", "enabled", K_BOOL, 0, 0, F(accounting), RL_RESTART},
    {"accounting", "request_usage", K_BOOL, 0, 0, F(request_usage), RL_RESTART},
    {"", "classes", K_CLASSES, 0, 0, F(classes), RL_RESTART},
    SECTION("bypass"),
    {"bypass", "decide_socket", K_STR, 0, 0, F(bypass_decide_socket), RL_RESTART},
    {"bypass", "max_outstanding", K_U32, 1, 65536, F(bypass_max_outstanding), RL_RESTART},
    {"bypass", "adopt_socket", K_STR, 0, 0, F(bypass_adopt_socket), RL_RESTART},
    SECTION("metrics"),
    {"metrics", "tenant_from_user", K_BOOL, 0, 0, F(tenant_from_user), RL_LIVE},
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

/* ---- listen addresses ---- */

int gw_config_check_listen(const char *s, int allow_off, char *err, size_t errlen)
{
    char host[64], q[96];
    uint16_t port;
    const char *why = NULL;
    size_t n = strlen(s);
    if (n == 0 && allow_off)
        return 0;
    if (n >= 128 || hostport_split(s, n, 1, host, sizeof(host), &port, &why)) {
        snprintf(err, errlen, "expected \"host:port\", got \"%s\" (%s)",
                 jp_shown(s, q, sizeof(q)), why ? why : "too long");
        return -1;
    }
    return 0;
}

/* ---- splice ---- */

static int splice_mode_of(struct jp_err *e, const char *path, const cJSON *v, int *out)
{
    char q[64];
    if (!cJSON_IsString(v))
        return jp_fail(e, path, "expected \"auto\", \"on\" or \"off\"");
    if (!strcmp(v->valuestring, "auto"))
        *out = GW_SPLICE_AUTO;
    else if (!strcmp(v->valuestring, "on"))
        *out = GW_SPLICE_ON;
    else if (!strcmp(v->valuestring, "off"))
        *out = GW_SPLICE_OFF;
    else
        return jp_fail(e, path, "unknown mode \"%s\" (auto, on, off)",
                       jp_shown(v->valuestring, q, sizeof(q)));
    return 0;
}

/* Walks a {"<model>": value} object of at most GW_MAX_OVERRIDES entries:
 * duplicate keys, the count and the name's length (1..POD_MODEL_MAX - 1)
 * checked here, then one(e, path of the entry, the entry, its index, ctx).
 * Sets *n to the entries taken. */
static int model_map(struct jp_err *e, const char *kp, const cJSON *k, uint32_t *n,
                     int (*one)(struct jp_err *, const char *, const cJSON *, uint32_t, void *),
                     void *ctx)
{
    char mp[JP_PATH_MAX];
    if (jp_obj(e, kp, k))
        return -1;
    *n = 0;
    for (const cJSON *m = k->child; m; m = m->next) {
        if (jp_dup_key(e, kp, k, m))
            return -1;
        jp_join(mp, kp, m->string);
        if (*n == GW_MAX_OVERRIDES)
            return jp_fail(e, kp, "at most %d models", GW_MAX_OVERRIDES);
        if (!m->string || !m->string[0] || strlen(m->string) >= POD_MODEL_MAX)
            return jp_fail(e, mp, "model names are 1-%d bytes", POD_MODEL_MAX - 1);
        if (one(e, mp, m, *n, ctx))
            return -1;
        (*n)++;
    }
    return 0;
}

static int splice_model(struct jp_err *e, const char *mp, const cJSON *m, uint32_t i, void *ctx)
{
    struct gw_splice_model *sm = &((struct gw_config *)ctx)->splice_models[i];
    snprintf(sm->model, sizeof(sm->model), "%s", m->string);
    return splice_mode_of(e, mp, m, &sm->mode);
}

static int splice_models(struct jp_err *e, const char *kp, const cJSON *k, struct gw_config *c)
{
    memset(c->splice_models, 0, sizeof(c->splice_models));
    return model_map(e, kp, k, &c->nsplice_models, splice_model, c);
}

/* ---- tokenizers ---- */

static int tok_path(struct jp_err *e, const char *path, const cJSON *v, char *dst, size_t size)
{
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= size)
        return jp_fail(e, path, "expected a file path of 1-%zu bytes", size - 1);
    snprintf(dst, size, "%s", v->valuestring);
    return 0;
}

static int tokenizer_of(struct jp_err *e, const char *path, const cJSON *v, struct gw_tok_cfg *t)
{
    char kp[JP_PATH_MAX];
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "pseudo")) {
        t->pseudo = 1;
        return 0;
    }
    if (!cJSON_IsObject(v))
        return jp_fail(e, path, "expected \"pseudo\" or {\"file\": ..., \"config\": ...}");
    for (const cJSON *k = v->child; k; k = k->next) {
        if (jp_dup_key(e, path, v, k))
            return -1;
        jp_join(kp, path, k->string);
        if (!strcmp(k->string, "file")) {
            if (tok_path(e, kp, k, t->file, sizeof(t->file)))
                return -1;
        } else if (!strcmp(k->string, "config")) {
            if (tok_path(e, kp, k, t->config, sizeof(t->config)))
                return -1;
        } else {
            return jp_fail(e, kp, "unknown key (file, config)");
        }
    }
    if (!t->file[0])
        return jp_fail(e, path, "\"file\" (tokenizer.json) is required");
    return 0;
}

static int tokenizer_entry(struct jp_err *e, const char *mp, const cJSON *m, uint32_t i,
                           void *ctx)
{
    struct gw_tok_cfg *t = &((struct gw_config *)ctx)->tokenizers[i];
    snprintf(t->model, sizeof(t->model), "%s", m->string);
    return tokenizer_of(e, mp, m, t);
}

static int tokenizers(struct jp_err *e, const char *kp, const cJSON *k, struct gw_config *c)
{
    memset(c->tokenizers, 0, sizeof(c->tokenizers));
    return model_map(e, kp, k, &c->ntokenizers, tokenizer_entry, c);
}

/* ---- workload classes ---- */

static int class_rule(struct jp_err *e, const char *path, const cJSON *v, struct gw_class_rule *r)
{
    char kp[JP_PATH_MAX];
    if (!cJSON_IsObject(v))
        return jp_fail(e, path, "expected {\"class\": ..., \"model\": ..., \"path\": ...}");
    for (const cJSON *k = v->child; k; k = k->next) {
        if (jp_dup_key(e, path, v, k))
            return -1;
        jp_join(kp, path, k->string);
        if (!strcmp(k->string, "class")) {
            if (jp_str(e, kp, k, r->name, sizeof(r->name), 1))
                return -1;
            for (const char *t = r->name; *t; t++)
                if ((unsigned char)*t < 0x20 || (unsigned char)*t >= 0x7f || *t == '"' ||
                    *t == '\\')
                    return jp_fail(e, kp, "expected printable ASCII without quotes");
        } else if (!strcmp(k->string, "model")) {
            if (jp_str(e, kp, k, r->model, sizeof(r->model), 1))
                return -1;
        } else if (!strcmp(k->string, "path")) {
            if (jp_str(e, kp, k, r->path, sizeof(r->path), 1))
                return -1;
            if (r->path[0] != '/' || strchr(r->path, '?'))
                return jp_fail(e, kp, "expected a path such as \"/v1/completions\"");
        } else {
            return jp_fail(e, kp, "unknown key (class, model, path)");
        }
    }
    if (!r->name[0])
        return jp_fail(e, path, "\"class\" is required");
    if (!r->model[0] && !r->path[0])
        return jp_fail(e, path, "\"model\" or \"path\" is required");
    return 0;
}

static int classes(struct jp_err *e, const char *kp, const cJSON *k, struct gw_config *c)
{
    char ip[JP_PATH_MAX];
    memset(c->classes, 0, sizeof(c->classes));
    c->nclasses = 0;
    if (!cJSON_IsArray(k))
        return jp_fail(e, kp, "expected an array of rules");
    for (const cJSON *v = k->child; v; v = v->next) {
        if (c->nclasses == GW_MAX_CLASS_RULES)
            return jp_fail(e, kp, "at most %d rules", GW_MAX_CLASS_RULES);
        snprintf(ip, sizeof(ip), "classes[%u]", c->nclasses); /* a top-level key */
        if (class_rule(e, ip, v, &c->classes[c->nclasses]))
            return -1;
        c->nclasses++;
    }
    return 0;
}

/* ---- table-driven parsing ---- */

static int parse_object(struct jp_err *e, const char *section, const cJSON *o,
                        struct gw_config *c);

/* A "policy" object at path into *dst (through a heap copy: the struct is
 * large), *dst untouched on error. */
static int policies_at(struct jp_err *e, const cJSON *k, const char *path,
                       struct gw_policies *dst)
{
    struct gw_policies *p = malloc(sizeof(*p));
    if (!p)
        return jp_fail(e, path, "out of memory");
    int rc = gwc_policies_parse(k, path, p, e->buf, e->len);
    if (!rc)
        *dst = *p;
    free(p);
    return rc;
}

static int parse_policy(struct jp_err *e, const cJSON *k, struct gw_config *c)
{
    return policies_at(e, k, "policy", &c->policies);
}

static int parse_candidate(struct jp_err *e, const cJSON *k, struct gw_config *c)
{
    int rc = policies_at(e, k, "rollout.candidate", &c->candidate);
    if (!rc)
        c->has_candidate = 1;
    return rc;
}

static int parse_text(struct jp_err *e, const struct key_spec *s, const char *kp,
                      const cJSON *k, char *dst)
{
    char why[256];
    if (s->kind == K_STR)
        return jp_str(e, kp, k, dst, s->size, 0);
    if (s->kind == K_TOKEN) {
        if (jp_str(e, kp, k, dst, s->size, 0))
            return -1;
        for (const char *t = dst; *t; t++)
            if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
                return jp_fail(e, kp, "expected printable ASCII without spaces");
        return 0;
    }
    /* K_LISTEN, K_LISTEN_OFF */
    if (!cJSON_IsString(k) || !k->valuestring)
        return jp_fail(e, kp, "expected a string \"host:port\"");
    if (gw_config_check_listen(k->valuestring, s->kind == K_LISTEN_OFF, why, sizeof(why)))
        return jp_fail(e, kp, "%s", why);
    snprintf(dst, s->size, "%s", k->valuestring); /* fits: checked above */
    return 0;
}

/* ---- costs ---- */

static int costs(struct jp_err *e, const char *kp, const cJSON *v, struct gw_config *c)
{
    char p[JP_PATH_MAX + GW_ACCEL_MAX];
    if (!cJSON_IsObject(v))
        return jp_fail(e, kp, "expected {\"<accelerator>\": cost per hour}");
    c->ncosts = 0;
    for (const cJSON *x = v->child; x; x = x->next) {
        if (jp_dup_key(e, kp, v, x))
            return -1;
        snprintf(p, sizeof(p), "%s.%s", kp, x->string ? x->string : "");
        size_t n = x->string ? strlen(x->string) : 0;
        if (n == 0 || n >= GW_ACCEL_MAX)
            return jp_fail(e, p, "an accelerator name of 1 to %d bytes", GW_ACCEL_MAX - 1);
        if (c->ncosts >= GW_MAX_COSTS)
            return jp_fail(e, kp, "at most %d accelerator types", GW_MAX_COSTS);
        struct gw_cost *k = &c->costs[c->ncosts];
        if (jp_num(e, p, x, 0, 0, 1e6, &k->per_hour))
            return -1;
        memcpy(k->accelerator, x->string, n + 1);
        c->ncosts++;
    }
    return 0;
}

double gw_pod_cost_per_hour(const struct gw_config *c, const struct gw_pod_cfg *p)
{
    if (p->cost_per_hour >= 0)
        return p->cost_per_hour;
    for (uint32_t i = 0; p->accelerator[0] && i < c->ncosts; i++)
        if (!strcmp(c->costs[i].accelerator, p->accelerator))
            return c->costs[i].per_hour;
    return -1;
}

/* ---- rollout ---- */

static int rollout_steps(struct jp_err *e, const char *kp, const cJSON *v, struct rollout_cfg *r)
{
    char p[JP_PATH_MAX + 16];
    if (!cJSON_IsArray(v))
        return jp_fail(e, kp, "expected an array of percents, e.g. [1, 5, 25, 50, 100]");
    int n = cJSON_GetArraySize(v);
    if (n < 2 || n > RO_STEPS_MAX)
        return jp_fail(e, kp, "expected 2 to %d steps, got %d", RO_STEPS_MAX, n);
    int i = 0;
    for (const cJSON *x = v->child; x; x = x->next, i++) {
        snprintf(p, sizeof(p), "%s[%d]", kp, i);
        if (jp_num(e, p, x, 0, 1, 100, &r->steps[i]))
            return -1;
        if (i && r->steps[i] <= r->steps[i - 1])
            return jp_fail(e, p, "steps must increase (%g after %g)", r->steps[i], r->steps[i - 1]);
    }
    if (r->steps[n - 1] != 100)
        return jp_fail(e, kp, "the last step must be 100");
    r->nsteps = n;
    return 0;
}

/* One key k (path kp) as its spec says, into c. */
static int parse_value(struct jp_err *e, const struct key_spec *s, const char *kp,
                       const cJSON *k, struct gw_config *c)
{
    char *dst = (char *)c + s->off;
    double d = 0;
    switch (s->kind) {
    case K_SECTION: return parse_object(e, s->name, k, c);
    case K_PODS: return gwc_pods_parse(k, c, e->buf, e->len);
    case K_POLICY: return parse_policy(e, k, c);
    case K_CANDIDATE: return parse_candidate(e, k, c);
    case K_SPLICE_MODE: return splice_mode_of(e, kp, k, (int *)dst);
    case K_SPLICE_MODELS: return splice_models(e, kp, k, c);
    case K_TOKENIZERS: return tokenizers(e, kp, k, c);
    case K_CLASSES: return classes(e, kp, k, c);
    case K_STEPS: return rollout_steps(e, kp, k, (struct rollout_cfg *)dst);
    case K_COSTS: return costs(e, kp, k, c);
    case K_BOOL: return jp_bool(e, kp, k, (int *)dst);
    case K_STR: case K_TOKEN: case K_LISTEN: case K_LISTEN_OFF:
        return parse_text(e, s, kp, k, dst);
    case K_POSNUM: case K_NUM:
        if (jp_num(e, kp, k, s->lo, s->kind == K_POSNUM, s->hi, &d))
            return -1;
        *(double *)dst = d;
        return 0;
    default:
        break;
    }
    if (jp_int(e, kp, k, s->lo, s->hi, &d))
        return -1;
    if (s->kind == K_U32)
        *(uint32_t *)dst = (uint32_t)d;
    else if (s->kind == K_U64)
        *(uint64_t *)dst = (uint64_t)d;
    else
        *(size_t *)dst = (size_t)d;
    return 0;
}

/* The object o of `section` ("" top level): each key by its spec. */
static int parse_object(struct jp_err *e, const char *section, const cJSON *o,
                        struct gw_config *c)
{
    char kp[JP_PATH_MAX];
    if (!section[0] && !cJSON_IsObject(o))
        return jp_fail(e, NULL, "top level: expected an object");
    if (jp_obj(e, section, o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, section, o, k))
            return -1;
        const struct key_spec *s = NULL;
        for (size_t i = 0; i < NKEYS && !s; i++)
            if (!strcmp(KEYS[i].section, section) && k->string &&
                !strcmp(KEYS[i].name, k->string))
                s = &KEYS[i];
        if (!s)
            return jp_unknown_key(e, section, k);
        jp_join(kp, section, k->string);
        if (parse_value(e, s, kp, k, c))
            return -1;
    }
    return 0;
}

/* ---- what a reload leaves for a restart ---- */

static int is_text(enum key_kind k)
{
    return k == K_STR || k == K_TOKEN || k == K_LISTEN || k == K_LISTEN_OFF;
}

int gw_config_restart_keys(const struct gw_config *a, const struct gw_config *b, char *out,
                           size_t cap)
{
    int n = 0;
    size_t len = 0;
    if (cap)
        out[0] = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_spec *s = &KEYS[i];
        if (s->kind == K_SECTION || s->reload != RL_RESTART)
            continue;
        const char *x = (const char *)a + s->off, *y = (const char *)b + s->off;
        int same = is_text(s->kind) ? !strncmp(x, y, s->size) : !memcmp(x, y, s->size);
        if (s->kind == K_SPLICE_MODELS)
            same = same && a->nsplice_models == b->nsplice_models;
        if (s->kind == K_TOKENIZERS)
            same = same && a->ntokenizers == b->ntokenizers;
        if (s->kind == K_CLASSES)
            same = same && a->nclasses == b->nclasses;
        if (same)
            continue;
        int w = snprintf(out + len, cap > len ? cap - len : 0, "%s%s%s%s", n ? ", " : "",
                         s->section, s->section[0] ? "." : "", s->name);
        if (w > 0 && len + (size_t)w < cap)
            len += (size_t)w;
        n++;
    }
    return n;
}

/* ---- the document ---- */

void gw_config_defaults(struct gw_config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->listen, "0.0.0.0:8080");
    strcpy(c->admin_listen, "127.0.0.1:9090");
    c->workers = 0;
    policy_defaults(&c->policies.global);
    c->block_bytes = 64;
    c->max_blocks = 256;
    c->index_max_entries = 2000000;
    c->index_default_blocks = 0;
    c->bytes_per_token = 4;
    c->kv_max_entries = 1u << 20;
    c->kv_replay_timeout_ms = 2000;
    c->kv_silence_ms = 3000;
    c->kv_silence_tokens = 4096;
    c->scrape_ms = 50;
    c->scrape_timeout_ms = 1000;
    c->health_ms = 1000;
    c->models_ms = 5000;
    c->scrape_max_page = 4u << 20;
    c->max_header_bytes = 65536;
    c->max_body_bytes = 32ull << 20;
    c->max_connections = 10000;
    c->header_timeout_ms = 10000;
    c->idle_timeout_ms = 60000;
    c->connect_timeout_ms = 1000;
    c->first_byte_timeout_ms = 120000;
    c->max_buffered_bytes = 1 << 20;
    c->max_buffered_total_bytes = 1ull << 30;
    c->stream_idle_timeout_ms = 60000;
    c->send_timeout_ms = 60000;
    c->drain_timeout_ms = 30000;
    outlier_defaults(&c->outlier);
    rollout_defaults(&c->rollout);
    strcpy(c->access_log, "-");
    c->access_log_buffer = 1u << 20; /* = ACCESSLOG_BUFFER_DEFAULT */
    c->splice_mode = GW_SPLICE_AUTO;
    c->splice_budget = 4u << 20; /* = KVG_SPLICE_BUDGET_DEFAULT */
    /* a worker's whole flow table (kvg-bypassd NFLOWS): a routed decision
     * stays open until the connection's DONE (closed, then a quiet second),
     * so a lower bound caps new connections/s at bound / (life + 1 s):
     * 256 capped them at ~250/s in make bench-bypass */
    c->bypass_max_outstanding = 4096;
    c->accounting = 1;
}

/* host (brackets stripped) is a loopback address: 127.0.0.0/8, ::1,
 * ::ffff:127.x.y.z, or "localhost". */
static int is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (!strcmp(host, "localhost"))
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return 0;
}

int gw_config_check_admin(const struct gw_config *c, const char *admin_listen, char *err,
                          size_t errlen)
{
    const char *spec = admin_listen ? admin_listen : c->admin_listen;
    char host[64];
    uint16_t port;
    const char *why = NULL;
    if (!spec[0] || c->admin_token[0] || c->admin_insecure)
        return 0; /* off, guarded, or accepted as open */
    if (!hostport_split(spec, strlen(spec), 1, host, sizeof(host), &port, &why) && host[0] &&
        is_loopback(host))
        return 0;
    snprintf(err, errlen,
             "admin.listen \"%.100s\" is not a loopback address and admin.token is empty: "
             "anyone who reaches it could change routing and pods; set admin.token, or "
             "admin.insecure: true to serve it open anyway",
             spec);
    return -1;
}

/* 1-based line and column (in bytes) of offset off. */
static void line_col(const char *s, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

int gw_config_parse(const char *json, size_t len, struct gw_config *c, char *err,
                    size_t errlen)
{
    struct jp_err e = {err, errlen};
    const char *end = NULL;
    unsigned line, col;
    if (err && errlen)
        err[0] = 0;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
    if (!root) {
        line_col(json, off, &line, &col);
        return jp_fail(&e, NULL, "line %u, column %u: JSON syntax error", line, col);
    }
    /* cJSON stops after the value; anything but white space after it is an
     * error too */
    for (size_t i = off; i < len; i++)
        if (json[i] != ' ' && json[i] != '\t' && json[i] != '\n' && json[i] != '\r') {
            cJSON_Delete(root);
            line_col(json, i, &line, &col);
            return jp_fail(&e, NULL, "line %u, column %u: JSON syntax error "
                                     "(text after the top-level object)", line, col);
        }
    struct gw_config *tmp = malloc(sizeof(*tmp));
    if (!tmp) {
        cJSON_Delete(root);
        return jp_fail(&e, NULL, "out of memory");
    }
    gw_config_defaults(tmp);
    int rc = parse_object(&e, "", root, tmp);
    cJSON_Delete(root);
    for (uint32_t i = 0; rc == 0 && i < tmp->npods; i++) {
        const struct gw_pod_cfg *pc = &tmp->pods[i];
        if (pc->accelerator[0] && gw_pod_cost_per_hour(tmp, pc) < 0)
            rc = jp_fail(&e, NULL, "pods[%u].accelerator: \"%s\" is not in \"costs\"", i,
                         pc->accelerator);
    }
    if (rc == 0 && tmp->request_usage && !tmp->accounting)
        rc = jp_fail(&e, "accounting.request_usage", "needs accounting.enabled: true (it asks "
                                                     "pods for the usage accounting reads)");
    if (rc == 0)
        memcpy(c, tmp, sizeof(*c));
    free(tmp);
    return rc ? -1 : 0;
}

int gw_config_load(const char *path, struct gw_config *c, char *err, size_t errlen)
{
    struct jp_err e = {err, errlen};
    FILE *f = fopen(path, "rb");
    if (!f)
        return jp_fail(&e, path, "%s", strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (16 << 20)) {
        fclose(f);
        return jp_fail(&e, path, "not a regular file of at most 16 MiB");
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return jp_fail(&e, path, "out of memory");
    }
    size_t got = fread(buf, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr || got != n) {
        free(buf);
        return jp_fail(&e, path, "read error");
    }
    buf[n] = 0;
    char msg[512];
    int rc = gw_config_parse(buf, n, c, msg, sizeof(msg));
    free(buf);
    if (rc)
        return jp_fail(&e, path, "%s", msg);
    return 0;
}
