/* config_pod: one pod of the configuration: "http://host:port" URLs
 * (--pod, the config's pods[].url, POST /admin/pods) and the pod object
 * {"url","name","engine","models",...} (config.c's "pods" array and the admin
 * API's body). No DNS here: the host is checked for syntax; names are
 * resolved when the pod is added (control_pods.c). See config.h. */
#include "gateway/config.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "common/netaddr.h"
#include "gateway/jsonpath.h"

static const char *ENGINE_NAMES[] = {"vllm", "sglang", "trtllm"};

const char *gwc_engine_name(enum pod_engine e)
{
    return (unsigned)e < 3 ? ENGINE_NAMES[e] : "?";
}

int gw_hostport_text(const char *host, uint16_t port, char *out, size_t n)
{
    int w = snprintf(out, n, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host, port);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

int gw_pod_from_url(const char *url, struct gw_pod_cfg *p, char *err, size_t errlen)
{
    struct jp_err e = {err, errlen};
    char q[128];
    const char *why = NULL;
    static const char scheme[] = "http://";
    size_t n = url ? strlen(url) : 0;
    memset(p, 0, sizeof(*p));
    p->cost_per_hour = -1; /* unpriced unless the config says */
    p->max_num_seqs = 256; /* vLLM's default */
    if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        goto fail;
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
    if (gw_hostport_text(p->host, p->port, p->name, sizeof(p->name))) {
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

/* "models": 1 to POD_MAX_MODELS distinct names. */
static int want_models(struct jp_err *e, const char *kp, const cJSON *models,
                       struct gw_pod_cfg *p)
{
    char q[96];
    if (!cJSON_IsArray(models))
        return jp_fail(e, kp, "expected an array of model names");
    uint32_t i = 0;
    for (const cJSON *m = models->child; m; m = m->next, i++) {
        char mp[JP_PATH_MAX + 16];
        snprintf(mp, sizeof(mp), "%s[%u]", kp, i);
        if (i >= POD_MAX_MODELS)
            return jp_fail(e, kp, "at most %d names", POD_MAX_MODELS);
        if (jp_str(e, mp, m, p->models[i], POD_MODEL_MAX, 1))
            return -1;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(p->models[j], p->models[i]))
                return jp_fail(e, mp, "duplicate name \"%s\"",
                               jp_shown(p->models[i], q, sizeof(q)));
    }
    if (i == 0)
        return jp_fail(e, kp, "expected at least one name (or leave \"models\" out)");
    p->nmodels = i;
    return 0;
}

/* A ZMQ endpoint the subscriber connects to: "tcp://host:port" or
 * "ipc://path". */
static int want_zmq_ep(struct jp_err *e, const char *kp, const cJSON *v, char *out)
{
    char q[96];
    const char *why = NULL;
    if (jp_str(e, kp, v, out, POD_KV_EP_MAX, 1))
        return -1;
    if (!strncmp(out, "ipc://", 6)) {
        if (!out[6])
            why = "empty path";
    } else if (!strncmp(out, "tcp://", 6)) {
        char host[POD_NAME_MAX];
        uint16_t port;
        if (hostport_split(out + 6, strlen(out + 6), 0, host, sizeof(host), &port, &why) &&
            !why)
            why = "expected host:port";
    } else {
        why = "expected tcp://host:port or ipc://path";
    }
    if (why)
        return jp_fail(e, kp, "\"%s\": %s", jp_shown(out, q, sizeof(q)), why);
    return 0;
}

int gwc_pod_parse(const cJSON *o, const char *path, struct gw_pod_cfg *p, char *err,
                  size_t errlen)
{
    struct jp_err e = {err, errlen};
    char kp[JP_PATH_MAX], q[96], name[POD_NAME_MAX] = "";
    char kv_ev[POD_KV_EP_MAX] = "", kv_rp[POD_KV_EP_MAX] = "", kv_tp[POD_KV_EP_MAX] = "";
    const cJSON *url = NULL, *models = NULL;
    enum pod_engine engine = POD_ENGINE_VLLM;
    char accel[GW_ACCEL_MAX] = "";
    double cost = -1, seqs = 256;
    int h2c = 0;
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
        } else if (!strcmp(ks, "kv_events")) {
            if (want_zmq_ep(&e, kp, k, kv_ev))
                return -1;
        } else if (!strcmp(ks, "kv_replay")) {
            if (want_zmq_ep(&e, kp, k, kv_rp))
                return -1;
        } else if (!strcmp(ks, "kv_topic")) {
            if (jp_str(&e, kp, k, kv_tp, sizeof(kv_tp), 0))
                return -1;
        } else if (!strcmp(ks, "cost_per_hour")) {
            if (jp_num(&e, kp, k, 0, 0, 1e6, &cost))
                return -1;
        } else if (!strcmp(ks, "accelerator")) {
            if (jp_str(&e, kp, k, accel, sizeof(accel), 1))
                return -1;
        } else if (!strcmp(ks, "max_num_seqs")) {
            if (jp_int(&e, kp, k, 1, 1000000, &seqs))
                return -1;
        } else if (!strcmp(ks, "h2c")) {
            if (jp_bool(&e, kp, k, &h2c))
                return -1;
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
    if (name[0])
        memcpy(p->name, name, sizeof(name));
    p->engine = engine;
    if (kv_rp[0] && !kv_ev[0])
        return jp_fail(&e, path, "\"kv_replay\" needs \"kv_events\"");
    memcpy(p->kv_events, kv_ev, sizeof(kv_ev));
    memcpy(p->kv_replay, kv_rp, sizeof(kv_rp));
    memcpy(p->kv_topic, kv_tp, sizeof(kv_tp));
    p->cost_per_hour = cost;
    memcpy(p->accelerator, accel, sizeof(accel));
    p->max_num_seqs = (uint32_t)seqs;
    p->h2c = (uint8_t)h2c;
    if (!models)
        return 0;
    jp_join(kp, path, "models");
    return want_models(&e, kp, models, p);
}

int gwc_pods_parse(const cJSON *arr, struct gw_config *c, char *err, size_t errlen)
{
    struct jp_err e = {err, errlen};
    char path[32], q[96];
    if (!cJSON_IsArray(arr))
        return jp_fail(&e, "pods", "expected an array");
    uint32_t i = 0;
    for (const cJSON *o = arr->child; o; o = o->next, i++) {
        if (i >= POD_MAX)
            return jp_fail(&e, "pods", "at most %d pods", POD_MAX);
        snprintf(path, sizeof(path), "pods[%u]", i);
        struct gw_pod_cfg *p = &c->pods[i];
        if (gwc_pod_parse(o, path, p, err, errlen))
            return -1;
        for (uint32_t j = 0; j < i; j++) {
            if (!strcmp(c->pods[j].name, p->name)) {
                snprintf(path, sizeof(path), "pods[%u].name", i);
                return jp_fail(&e, path, "duplicate pod name \"%s\" (also pods[%u])",
                               jp_shown(p->name, q, sizeof(q)), j);
            }
            if (!strcmp(c->pods[j].host, p->host) && c->pods[j].port == p->port) {
                snprintf(path, sizeof(path), "pods[%u].url", i);
                return jp_fail(&e, path, "same address as pods[%u]", j);
            }
        }
    }
    c->npods = i;
    return 0;
}
