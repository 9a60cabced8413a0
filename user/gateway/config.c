/* config: kvgated's JSON configuration. See config.h.
 *
 * The file is one JSON object. Every key is optional; a key that is not
 * listed here is an error, and so is a key given twice. Defaults in [].
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
 *   metrics.tenant_from_user  the body's "user" names the tenant when no
 *                      x-gateway-inference-fairness-id /
 *                      x-llm-d-inference-fairness-id header does (it
 *                      lands in /metrics labels and the access log) [false]
 *   splice.mode        "auto" | "on" | "off": kernel splice of session
 *                      flows (auto: models whose policy is prefix-aware
 *                      without shadow or canary)                   ["auto"]
 *   splice.budget_bytes  in flight per direction per spliced flow,
 *                      [65536, 1073741824]                          [4194304]
 *   splice.models      {"<model>": "auto" | "on" | "off"}, at most 32 [{}]
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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gateway/control_priv.h"
#include "common/netaddr.h"
#include "gateway/jsonpath.h"

/* ---- pod URLs and listen addresses ---- */

int gw_pod_from_url(const char *url, struct gw_pod_cfg *p, char *err, size_t errlen)
{
    struct jp_err e = {err, errlen};
    char q[128];
    const char *why = NULL;
    static const char scheme[] = "http://";
    size_t n = url ? strlen(url) : 0;
    memset(p, 0, sizeof(*p));
    if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        why = NULL;
        goto fail;
    }
    const char *hp = url + sizeof(scheme) - 1;
    size_t hn = n - (sizeof(scheme) - 1);
    if (hn && hp[hn - 1] == '/')
        hn--; /* one trailing slash, nothing else after the authority */
    if (memchr(hp, '/', hn) || memchr(hp, '@', hn) || memchr(hp, '?', hn) ||
        memchr(hp, '#', hn)) {
        why = "no path, user or query allowed";
        goto fail;
    }
    if (hostport_split(hp, hn, 0, p->host, sizeof(p->host), &p->port, &why))
        goto fail;
    int w = strchr(p->host, ':')
                ? snprintf(p->name, sizeof(p->name), "[%s]:%u", p->host, p->port)
                : snprintf(p->name, sizeof(p->name), "%s:%u", p->host, p->port);
    if (w < 0 || (size_t)w >= sizeof(p->name)) {
        why = "host too long";
        goto fail;
    }
    p->engine = POD_ENGINE_VLLM;
    return 0;
fail:
    memset(p, 0, sizeof(*p));
    if (why)
        return jp_fail(&e, NULL, "expected \"http://host:port\", got \"%s\" (%s)",
                   jp_shown(url, q, sizeof(q)), why);
    return jp_fail(&e, NULL, "expected \"http://host:port\", got \"%s\"",
               jp_shown(url, q, sizeof(q)));
}

static int want_listen(struct jp_err *e, const char *path, const cJSON *v, char *out,
                       size_t cap, int allow_off)
{
    char host[64], q[96];
    uint16_t port;
    const char *why = NULL;
    if (!cJSON_IsString(v) || !v->valuestring)
        return jp_fail(e, path, "expected a string \"host:port\"");
    const char *s = v->valuestring;
    size_t n = strlen(s);
    if (n == 0 && allow_off) {
        out[0] = 0;
        return 0;
    }
    if (n >= cap || hostport_split(s, n, 1, host, sizeof(host), &port, &why))
        return jp_fail(e, path, "expected \"host:port\", got \"%s\" (%s)",
                   jp_shown(s, q, sizeof(q)), why ? why : "too long");
    memcpy(out, s, n + 1);
    return 0;
}

/* ---- pods ---- */

static const char *ENGINE_NAMES[] = {"vllm", "sglang", "trtllm"};

const char *gwc_engine_name(enum pod_engine e)
{
    return (unsigned)e < 3 ? ENGINE_NAMES[e] : "?";
}

static int want_engine(struct jp_err *e, const char *path, const cJSON *v,
                       enum pod_engine *out)
{
    char q[96];
    if (!cJSON_IsString(v) || !v->valuestring)
        return jp_fail(e, path, "expected a string (vllm, sglang, trtllm)");
    for (int i = 0; i < 3; i++)
        if (!strcmp(v->valuestring, ENGINE_NAMES[i])) {
            *out = (enum pod_engine)i;
            return 0;
        }
    return jp_fail(e, path, "unknown engine \"%s\" (vllm, sglang, trtllm)",
               jp_shown(v->valuestring, q, sizeof(q)));
}

static int valid_pod_name(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == '/' ||
            *s == '"' || *s == '\\' || *s == '%' || *s == '?' || *s == '#')
            return 0;
    return 1;
}

int gwc_pod_parse(const cJSON *o, const char *path, struct gw_pod_cfg *p, char *err,
                  size_t errlen)
{
    struct jp_err e = {err, errlen};
    char kp[JP_PATH_MAX], q[96], name[POD_NAME_MAX] = "";
    const cJSON *url = NULL, *models = NULL;
    enum pod_engine engine = POD_ENGINE_VLLM;
    if (jp_obj(&e, path, o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(&e, path, o, k))
            return -1;
        jp_join(kp, path, k->string);
        const char *ks = k->string ? k->string : "";
        if (!strcmp(ks, "url")) {
            url = k;
        } else if (!strcmp(ks, "name")) {
            if (jp_str(&e, kp, k, name, sizeof(name), 1))
                return -1;
            if (!valid_pod_name(name))
                return jp_fail(&e, kp, "\"%s\": no spaces, control bytes, or / \" \\ %% ? #",
                           jp_shown(name, q, sizeof(q)));
        } else if (!strcmp(ks, "engine")) {
            if (want_engine(&e, kp, k, &engine))
                return -1;
        } else if (!strcmp(ks, "models")) {
            models = k;
        } else {
            return jp_unknown_key(&e, path, k);
        }
    }
    if (!url)
        return jp_fail(&e, path, "missing key \"url\"");
    jp_join(kp, path, "url");
    if (!cJSON_IsString(url) || !url->valuestring)
        return jp_fail(&e, kp, "expected a string \"http://host:port\"");
    char why[256];
    if (gw_pod_from_url(url->valuestring, p, why, sizeof(why)))
        return jp_fail(&e, kp, "%s", why);
    /* no DNS here: reloads and the admin API parse on the control thread;
     * names are resolved when the pod is added (control.c) */
    if (name[0])
        memcpy(p->name, name, sizeof(name));
    p->engine = engine;
    if (models) {
        jp_join(kp, path, "models");
        if (!cJSON_IsArray(models))
            return jp_fail(&e, kp, "expected an array of model names");
        uint32_t i = 0;
        for (const cJSON *m = models->child; m; m = m->next, i++) {
            char mp[JP_PATH_MAX + 16];
            snprintf(mp, sizeof(mp), "%s[%u]", kp, i);
            if (i >= POD_MAX_MODELS)
                return jp_fail(&e, kp, "at most %d names", POD_MAX_MODELS);
            if (jp_str(&e, mp, m, p->models[i], POD_MODEL_MAX, 1))
                return -1;
            for (uint32_t j = 0; j < i; j++)
                if (!strcmp(p->models[j], p->models[i]))
                    return jp_fail(&e, mp, "duplicate name \"%s\"",
                               jp_shown(p->models[i], q, sizeof(q)));
        }
        if (i == 0)
            return jp_fail(&e, kp, "expected at least one name (or leave \"models\" out)");
        p->nmodels = i;
    }
    return 0;
}

static int parse_pods(struct jp_err *e, const cJSON *arr, struct gw_config *c)
{
    char path[32], q[96];
    if (!cJSON_IsArray(arr))
        return jp_fail(e, "pods", "expected an array");
    uint32_t i = 0;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        if (i >= POD_MAX)
            return jp_fail(e, "pods", "at most %d pods", POD_MAX);
        snprintf(path, sizeof(path), "pods[%u]", i);
        struct gw_pod_cfg *p = &c->pods[i];
        if (gwc_pod_parse(o, path, p, e->buf, e->len))
            return -1;
        for (uint32_t j = 0; j < i; j++) {
            if (!strcmp(c->pods[j].name, p->name)) {
                snprintf(path, sizeof(path), "pods[%u].name", i);
                return jp_fail(e, path, "duplicate pod name \"%s\" (also pods[%u])",
                           jp_shown(p->name, q, sizeof(q)), j);
            }
            if (!strcmp(c->pods[j].host, p->host) && c->pods[j].port == p->port) {
                snprintf(path, sizeof(path), "pods[%u].url", i);
                return jp_fail(e, path, "same address as pods[%u]", j);
            }
        }
    }
    c->npods = i;
    return 0;
}

const struct policy_cfg *gw_policy_for(const struct gw_config *c, const char *model)
{
    for (uint32_t i = 0; model && i < c->noverrides && i < GW_MAX_OVERRIDES; i++)
        if (!strcmp(c->overrides[i].model, model))
            return &c->overrides[i].policy;
    return &c->policy;
}

/* ---- numeric sections (fingerprint, index, scrape, limits) ---- */

enum { K_U32, K_U64, K_SIZE, K_POSNUM, K_NUM /* a number >= lo */ };

struct key_spec {
    const char *name;
    int kind;
    double lo, hi;
    size_t off;
};

#define CFG_OFF(f) offsetof(struct gw_config, f)
static const struct key_spec FINGERPRINT_KEYS[] = {
    {"block_bytes", K_U32, 16, 4096, CFG_OFF(block_bytes)},
    {"max_blocks", K_U32, 1, 1024, CFG_OFF(max_blocks)},
    {NULL, 0, 0, 0, 0},
};
static const struct key_spec INDEX_KEYS[] = {
    {"max_entries", K_U32, 1024, 268435456, CFG_OFF(index_max_entries)},
    {"default_capacity_blocks", K_U32, 0, 268435456, CFG_OFF(index_default_blocks)},
    {"bytes_per_token", K_POSNUM, 0, 1024, CFG_OFF(bytes_per_token)},
    {NULL, 0, 0, 0, 0},
};
static const struct key_spec SCRAPE_KEYS[] = {
    {"interval_ms", K_U32, 1, 60000, CFG_OFF(scrape_ms)},
    {"timeout_ms", K_U32, 1, 600000, CFG_OFF(scrape_timeout_ms)},
    {"health_interval_ms", K_U32, 1, 3600000, CFG_OFF(health_ms)},
    {"models_interval_ms", K_U32, 0, 86400000, CFG_OFF(models_ms)},
    {"max_page_bytes", K_SIZE, 65536, 16777216, CFG_OFF(scrape_max_page)},
    {NULL, 0, 0, 0, 0},
};
static const struct key_spec LIMITS_KEYS[] = {
    {"max_header_bytes", K_U32, 1024, 1048576, CFG_OFF(max_header_bytes)},
    {"max_body_bytes", K_U64, 1024, 1073741824, CFG_OFF(max_body_bytes)},
    {"max_connections", K_U32, 1, 1000000, CFG_OFF(max_connections)},
    {"header_timeout_ms", K_U32, 1, 3600000, CFG_OFF(header_timeout_ms)},
    {"idle_timeout_ms", K_U32, 1, 3600000, CFG_OFF(idle_timeout_ms)},
    {"connect_timeout_ms", K_U32, 1, 600000, CFG_OFF(connect_timeout_ms)},
    {"first_byte_timeout_ms", K_U32, 1, 3600000, CFG_OFF(first_byte_timeout_ms)},
    {"max_buffered_bytes", K_SIZE, 4096, 1073741824, CFG_OFF(max_buffered_bytes)},
    {"max_buffered_total_bytes", K_U64, 65536, 1099511627776.0, CFG_OFF(max_buffered_total_bytes)},
    {"stream_idle_timeout_ms", K_U32, 1, 3600000, CFG_OFF(stream_idle_timeout_ms)},
    {"send_timeout_ms", K_U32, 1, 3600000, CFG_OFF(send_timeout_ms)},
    {"drain_timeout_ms", K_U32, 0, 3600000, CFG_OFF(drain_timeout_ms)},
    {NULL, 0, 0, 0, 0},
};
static const struct key_spec OUTLIER_KEYS[] = {
    {"consecutive_failures", K_U32, 0, 1000000, CFG_OFF(outlier.consecutive)},
    {"failure_ratio", K_NUM, 0, 1, CFG_OFF(outlier.ratio)},
    {"min_requests", K_U32, 1, 1000000, CFG_OFF(outlier.min_requests)},
    {"window_ms", K_U32, 1, 3600000, CFG_OFF(outlier.window_ms)},
    {"base_ejection_ms", K_U32, 1, 3600000, CFG_OFF(outlier.base_ms)},
    {"max_ejection_ms", K_U32, 1, 86400000, CFG_OFF(outlier.max_ms)},
    {NULL, 0, 0, 0, 0},
};
static const struct key_spec RETRY_KEYS[] = {
    {"budget_percent", K_NUM, 0, 100, CFG_OFF(outlier.budget_percent)},
    {"min_per_second", K_NUM, 0, 1000000, CFG_OFF(outlier.min_per_second)},
    {"avoid_failed_ms", K_U32, 0, 3600000, CFG_OFF(outlier.recent_ms)},
    {NULL, 0, 0, 0, 0},
};

static int parse_section(struct jp_err *e, const char *path, const cJSON *o,
                         const struct key_spec *spec, struct gw_config *c)
{
    char kp[JP_PATH_MAX];
    if (jp_obj(e, path, o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, path, o, k))
            return -1;
        jp_join(kp, path, k->string);
        const struct key_spec *s = spec;
        while (s->name && (!k->string || strcmp(s->name, k->string)))
            s++;
        if (!s->name)
            return jp_unknown_key(e, path, k);
        char *dst = (char *)c + s->off;
        double d = 0;
        if (s->kind == K_POSNUM || s->kind == K_NUM) {
            if (jp_num(e, kp, k, s->lo, s->kind == K_POSNUM, s->hi, &d))
                return -1;
            *(double *)dst = d;
            continue;
        }
        if (jp_int(e, kp, k, s->lo, s->hi, &d))
            return -1;
        if (s->kind == K_U32)
            *(uint32_t *)dst = (uint32_t)d;
        else if (s->kind == K_U64)
            *(uint64_t *)dst = (uint64_t)d;
        else
            *(size_t *)dst = (size_t)d;
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

static int parse_splice(struct jp_err *e, const cJSON *o, struct gw_config *c)
{
    char kp[JP_PATH_MAX], mp[JP_PATH_MAX];
    if (jp_obj(e, "splice", o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, "splice", o, k))
            return -1;
        jp_join(kp, "splice", k->string);
        const char *ks = k->string ? k->string : "";
        if (!strcmp(ks, "mode")) {
            if (splice_mode_of(e, kp, k, &c->splice_mode))
                return -1;
        } else if (!strcmp(ks, "budget_bytes")) {
            double d = 0;
            if (jp_int(e, kp, k, 65536, 1073741824, &d))
                return -1;
            c->splice_budget = (uint64_t)d;
        } else if (!strcmp(ks, "models")) {
            if (jp_obj(e, kp, k))
                return -1;
            c->nsplice_models = 0;
            for (const cJSON *m = k->child; m; m = m->next) {
                if (jp_dup_key(e, kp, k, m))
                    return -1;
                jp_join(mp, kp, m->string);
                if (c->nsplice_models == GW_MAX_OVERRIDES)
                    return jp_fail(e, kp, "at most %d models", GW_MAX_OVERRIDES);
                struct gw_splice_model *sm = &c->splice_models[c->nsplice_models];
                if (!m->string || !m->string[0] || strlen(m->string) >= sizeof(sm->model))
                    return jp_fail(e, mp, "model names are 1-%zu bytes", sizeof(sm->model) - 1);
                if (splice_mode_of(e, mp, m, &sm->mode))
                    return -1;
                snprintf(sm->model, sizeof(sm->model), "%s", m->string);
                c->nsplice_models++;
            }
        } else {
            return jp_unknown_key(e, "splice", k);
        }
    }
    return 0;
}

/* ---- the document ---- */

void gw_config_defaults(struct gw_config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->listen, "0.0.0.0:8080");
    strcpy(c->admin_listen, "127.0.0.1:9090");
    c->workers = 0;
    policy_defaults(&c->policy);
    c->block_bytes = 64;
    c->max_blocks = 256;
    c->index_max_entries = 2000000;
    c->index_default_blocks = 0;
    c->bytes_per_token = 4;
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
    strcpy(c->access_log, "-");
    c->access_log_buffer = 1u << 20; /* = ACCESSLOG_BUFFER_DEFAULT */
    c->splice_mode = GW_SPLICE_AUTO;
    c->splice_budget = 4u << 20; /* = KVG_SPLICE_BUDGET_DEFAULT */
}

static int parse_admin(struct jp_err *e, const cJSON *o, struct gw_config *c)
{
    char kp[JP_PATH_MAX];
    if (jp_obj(e, "admin", o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, "admin", o, k))
            return -1;
        jp_join(kp, "admin", k->string);
        const char *ks = k->string ? k->string : "";
        if (!strcmp(ks, "listen")) {
            if (want_listen(e, kp, k, c->admin_listen, sizeof(c->admin_listen), 1))
                return -1;
        } else if (!strcmp(ks, "insecure")) {
            if (jp_bool(e, kp, k, &c->admin_insecure))
                return -1;
        } else if (!strcmp(ks, "token")) {
            if (jp_str(e, kp, k, c->admin_token, sizeof(c->admin_token), 0))
                return -1;
            for (const char *t = c->admin_token; *t; t++)
                if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
                    return jp_fail(e, kp, "expected printable ASCII without spaces");
        } else {
            return jp_unknown_key(e, "admin", k);
        }
    }
    return 0;
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

static int parse_metrics(struct jp_err *e, const cJSON *o, struct gw_config *c)
{
    char kp[JP_PATH_MAX];
    if (jp_obj(e, "metrics", o))
        return -1;
    for (const cJSON *k = o->child; k; k = k->next) {
        if (jp_dup_key(e, "metrics", o, k))
            return -1;
        jp_join(kp, "metrics", k->string);
        if (k->string && !strcmp(k->string, "tenant_from_user")) {
            if (jp_bool(e, kp, k, &c->tenant_from_user))
                return -1;
        } else {
            return jp_unknown_key(e, "metrics", k);
        }
    }
    return 0;
}

static int parse_root(struct jp_err *e, const cJSON *root, struct gw_config *c)
{
    if (!cJSON_IsObject(root))
        return jp_fail(e, NULL, "top level: expected an object");
    for (const cJSON *k = root->child; k; k = k->next) {
        if (jp_dup_key(e, "", root, k))
            return -1;
        const char *ks = k->string ? k->string : "";
        int rc;
        if (!strcmp(ks, "listen"))
            rc = want_listen(e, "listen", k, c->listen, sizeof(c->listen), 0);
        else if (!strcmp(ks, "workers"))
            rc = jp_u32(e, "workers", k, 0, 64, &c->workers);
        else if (!strcmp(ks, "admin"))
            rc = parse_admin(e, k, c);
        else if (!strcmp(ks, "pods"))
            rc = parse_pods(e, k, c);
        else if (!strcmp(ks, "policy")) {
            struct gw_policies *p = malloc(sizeof(*p));
            if (!p)
                return jp_fail(e, "policy", "out of memory");
            rc = gwc_policies_parse(k, "policy", p, e->buf, e->len);
            if (!rc) {
                c->policy = p->global;
                c->noverrides = p->noverrides;
                memcpy(c->overrides, p->overrides, sizeof(c->overrides));
            }
            free(p);
        } else if (!strcmp(ks, "fingerprint"))
            rc = parse_section(e, "fingerprint", k, FINGERPRINT_KEYS, c);
        else if (!strcmp(ks, "index"))
            rc = parse_section(e, "index", k, INDEX_KEYS, c);
        else if (!strcmp(ks, "scrape"))
            rc = parse_section(e, "scrape", k, SCRAPE_KEYS, c);
        else if (!strcmp(ks, "limits"))
            rc = parse_section(e, "limits", k, LIMITS_KEYS, c);
        else if (!strcmp(ks, "outlier"))
            rc = parse_section(e, "outlier", k, OUTLIER_KEYS, c);
        else if (!strcmp(ks, "retry"))
            rc = parse_section(e, "retry", k, RETRY_KEYS, c);
        else if (!strcmp(ks, "access_log"))
            rc = jp_str(e, "access_log", k, c->access_log, sizeof(c->access_log), 0);
        else if (!strcmp(ks, "access_log_buffer_bytes")) {
            double d = 0;
            rc = jp_int(e, "access_log_buffer_bytes", k, 4096, 1073741824, &d);
            c->access_log_buffer = (size_t)d;
        }
        else if (!strcmp(ks, "splice"))
            rc = parse_splice(e, k, c);
        else if (!strcmp(ks, "metrics"))
            rc = parse_metrics(e, k, c);
        else
            rc = jp_unknown_key(e, "", k);
        if (rc)
            return -1;
    }
    return 0;
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
    if (!root) {
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
        line_col(json, off, &line, &col);
        return jp_fail(&e, NULL, "line %u, column %u: JSON syntax error", line, col);
    }
    /* cJSON stops after the value; anything but white space after it is an
     * error too */
    size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : len;
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
    int rc = parse_root(&e, root, tmp);
    cJSON_Delete(root);
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
