/* api: a simulated vLLM pod's HTTP endpoints (the router, models, LoRA
 * adapters, metrics, health, the prefix cache) and the fault-injection
 * admin endpoints. Completions and chat completions are api_infer.c.
 *
 * Errors are OpenAI's {"error":{"message","type","param","code"}} through
 * common/httpstatus's one writer and vocabulary; an unknown path is
 * FastAPI's {"detail":"Not Found"}, as vLLM answers it. */
#include "podsim/api.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/httpstatus.h"
#include "common/sbuf.h"
#include "podsim/api_priv.h"
#include "podsim/kvevents.h"
#include "podsim/metrics.h"
#include "podsim/pod.h"

/* ---- answers ---- */

void api_send_error(struct http_resp *resp, int status, const char *param,
                    const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct sbuf b;
    sbuf_init(&b);
    http_error_json_param(&b, status, param, msg);
    resp_send(resp, status, "application/json", b.data, b.len);
    sbuf_free(&b);
}

void api_send_json(struct http_resp *resp, int status, struct sbuf *b)
{
    if (b->oom) {
        api_send_error(resp, 500, NULL, "out of memory");
        return;
    }
    resp_send(resp, status, "application/json", b->data, b->len);
}

static void not_found(struct http_resp *resp)
{
    static const char body[] = "{\"detail\":\"Not Found\"}";
    resp_send(resp, 404, "application/json", body, sizeof(body) - 1);
}

cJSON *api_parse_body(const struct http_req *req, struct http_resp *resp)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= req->body && at <= req->body + req->body_len
                       ? (long)(at - req->body) : 0;
        api_send_error(resp, 400, NULL, "Invalid JSON in request body at byte %ld", off);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        api_send_error(resp, 400, NULL, "Request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* ---- other endpoints ---- */

static void models(struct pod *p, struct http_resp *resp)
{
    struct sbuf b;
    sbuf_init(&b);
    long now = (long)pod_unix_now();
    sbuf_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (int i = -1; i < (int)p->eng.nloras; i++) {
        const char *id = i < 0 ? p->model : p->eng.loras[i].name;
        if (i >= 0 && !p->eng.loras[i].loaded)
            continue;
        if (i >= 0)
            sbuf_puts(&b, ",");
        sbuf_puts(&b, "{\"id\":\"");
        sbuf_json_escape(&b, id, strlen(id));
        sbuf_printf(&b, "\",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"vllm\",\"root\":\"", now);
        sbuf_json_escape(&b, id, strlen(id));
        sbuf_puts(&b, "\",\"parent\":");
        if (i < 0) {
            sbuf_printf(&b, "null,\"max_model_len\":%u", p->max_model_len);
        } else {
            sbuf_puts(&b, "\"");
            sbuf_json_escape(&b, p->model, strlen(p->model));
            sbuf_puts(&b, "\",\"max_model_len\":null");
        }
        sbuf_printf(&b, ",\"permission\":[{\"id\":\"modelperm-%d\",\"object\":\"model_permission\","
                        "\"created\":%ld,\"allow_create_engine\":false,\"allow_sampling\":true,"
                        "\"allow_logprobs\":true,\"allow_search_indices\":false,\"allow_view\":true,"
                        "\"allow_fine_tuning\":false,\"organization\":\"*\",\"group\":null,"
                        "\"is_blocking\":false}]}", i + 1, now);
    }
    sbuf_puts(&b, "]}");
    api_send_json(resp, 200, &b);
    sbuf_free(&b);
}

static void lora_admin(struct pod *p, const struct http_req *req,
                       struct http_resp *resp, int load)
{
    cJSON *j = api_parse_body(req, resp);
    if (!j)
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "lora_name");
    if (!cJSON_IsString(name) || !*name->valuestring) {
        api_send_error(resp, 400, "lora_name", "lora_name: Field required");
    } else if (load) {
        int rc = engine_lora_add(&p->eng, name->valuestring);
        if (rc == -EEXIST)
            api_send_error(resp, 400, NULL,
                       "The lora adapter '%s' has already been loaded.", name->valuestring);
        else if (rc < 0)
            api_send_error(resp, 400, NULL,
                       "The lora adapter '%s' could not be loaded: %s", name->valuestring,
                       rc == -ENOSPC ? "too many adapters" : "invalid name");
        else {
            char msg[160];
            int len = snprintf(msg, sizeof(msg), "Success: LoRA adapter '%s' added successfully.",
                               name->valuestring);
            resp_send(resp, 200, "text/plain; charset=utf-8", msg, (size_t)len);
        }
    } else {
        int rc = engine_lora_remove(&p->eng, name->valuestring);
        if (rc == -ENOENT)
            api_send_error(resp, 404, NULL,
                       "The lora adapter '%s' cannot be found.", name->valuestring);
        else if (rc == -EBUSY)
            api_send_error(resp, 400, NULL,
                       "The lora adapter '%s' has requests in flight.", name->valuestring);
        else {
            char msg[160];
            int len = snprintf(msg, sizeof(msg), "Success: LoRA adapter '%s' removed successfully.",
                               name->valuestring);
            resp_send(resp, 200, "text/plain; charset=utf-8", msg, (size_t)len);
        }
    }
    cJSON_Delete(j);
}

static void metrics_stalled(void *arg) { (void)arg; }

static void metrics(struct pod *p, struct http_resp *resp)
{
    if (p->faults.metrics_mode == METRICS_STALL) {
        resp_on_cancel(resp, metrics_stalled, NULL); /* never answered */
        return;
    }
    if (p->faults.metrics_mode == METRICS_DROP) {
        resp_abort(resp);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    if (metrics_render(p, &b) || b.oom)
        api_send_error(resp, 500, NULL, "out of memory");
    else
        resp_send(resp, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    sbuf_free(&b);
}

static void faults_json(const struct pod *p, struct sbuf *b)
{
    static const char *modes[] = {"ok", "stall", "drop"};
    sbuf_printf(b, "{\"pod\":%d,\"port\":%d,\"model\":\"", p->index, p->port);
    sbuf_json_escape(b, p->model, strlen(p->model));
    sbuf_printf(b, "\",\"faults\":{\"fail_rate\":%g,\"refuse\":%s,\"metrics\":\"%s\","
                   "\"close_after\":%u,\"slowdown\":%g,\"kv_event_drop_rate\":%g,"
                   "\"kv_event_delay_ms\":%u},\"waiting\":%u,\"running\":%u,"
                   "\"kv_usage\":%.6f,\"inflight\":%llu",
                p->faults.fail_rate, p->faults.refuse ? "true" : "false",
                modes[p->faults.metrics_mode], p->faults.close_after, p->faults.slowdown,
                p->faults.kv_drop_rate, p->faults.kv_delay_ms,
                p->eng.nwaiting, p->eng.nrunning, kv_usage(&p->eng.kv),
                (unsigned long long)p->inflight);
    if (p->kvb) { /* what the KV-event faults and the replay endpoint did */
        struct kvev_counters c;
        kvev_counters(p->kvb, &c);
        sbuf_printf(b, ",\"kv_events\":{\"published\":%llu,\"fault_dropped\":%llu,"
                       "\"ring_lost\":%llu,\"replays\":%llu,\"replayed\":%llu}",
                    (unsigned long long)c.published, (unsigned long long)c.fault_dropped,
                    (unsigned long long)c.ring_lost, (unsigned long long)c.replays,
                    (unsigned long long)c.replayed);
    }
    sbuf_puts(b, "}");
}

int api_apply_faults(struct pod *p, const char *json, const char **err)
{
    cJSON *j = cJSON_Parse(json);
    int rc = -EINVAL;
    struct faults f = p->faults;
    *err = "body must be a JSON object";
    if (!cJSON_IsObject(j))
        goto out;
    const cJSON *v;
    cJSON_ArrayForEach(v, j) {
        const char *k = v->string;
        if (!strcmp(k, "fail_rate")) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1) {
                *err = "fail_rate must be a number in [0,1]";
                goto out;
            }
            f.fail_rate = v->valuedouble;
        } else if (!strcmp(k, "refuse")) {
            if (!cJSON_IsBool(v)) { *err = "refuse must be a boolean"; goto out; }
            f.refuse = cJSON_IsTrue(v);
        } else if (!strcmp(k, "metrics")) {
            if (!cJSON_IsString(v)) { *err = "metrics must be \"ok\", \"stall\" or \"drop\""; goto out; }
            if (!strcmp(v->valuestring, "ok")) f.metrics_mode = METRICS_OK;
            else if (!strcmp(v->valuestring, "stall")) f.metrics_mode = METRICS_STALL;
            else if (!strcmp(v->valuestring, "drop")) f.metrics_mode = METRICS_DROP;
            else { *err = "metrics must be \"ok\", \"stall\" or \"drop\""; goto out; }
        } else if (!strcmp(k, "close_after")) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0) { *err = "close_after must be a count >= 0"; goto out; }
            f.close_after = (uint32_t)v->valuedouble;
        } else if (!strcmp(k, "slowdown")) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 1) { *err = "slowdown must be a number >= 1"; goto out; }
            f.slowdown = v->valuedouble;
        } else if (!strcmp(k, "kv_event_drop_rate")) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1) {
                *err = "kv_event_drop_rate must be a number in [0,1]";
                goto out;
            }
            f.kv_drop_rate = v->valuedouble;
        } else if (!strcmp(k, "kv_event_delay_ms")) {
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 600000) {
                *err = "kv_event_delay_ms must be a number in [0,600000]";
                goto out;
            }
            f.kv_delay_ms = (uint32_t)v->valuedouble;
        } else {
            *err = "unknown key (known: fail_rate, refuse, metrics, close_after, slowdown, "
                   "kv_event_drop_rate, kv_event_delay_ms)";
            goto out;
        }
    }
    if (f.refuse != p->faults.refuse && server_set_refuse(p->srv, f.refuse)) {
        *err = "could not change the listener";
        goto out;
    }
    p->faults = f;
    p->eng.slowdown = f.slowdown;
    if (pod_kv_faults(p)) {
        *err = "out of memory for the KV-event ring";
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

static void faults_endpoint(struct pod *p, const struct http_req *req,
                            struct http_resp *resp)
{
    if (!strcmp(req->method, "POST")) {
        const char *err;
        if (api_apply_faults(p, req->body, &err)) {
            api_send_error(resp, 400, NULL, "%s", err);
            return;
        }
    }
    struct sbuf b;
    sbuf_init(&b);
    faults_json(p, &b);
    api_send_json(resp, 200, &b);
    sbuf_free(&b);
}

static void reset_cache(struct pod *p, struct http_resp *resp)
{
    if (pod_reset_prefix_cache(p))
        api_send_error(resp, 503, NULL,
                   "requests are running; the prefix cache was not reset");
    else
        resp_send(resp, 200, "application/json", "{}", 2);
}

static int is(const struct http_req *req, const char *method, const char *path)
{
    size_t n = strlen(path);
    return !strcmp(req->method, method) && !strncmp(req->path, path, n) &&
           (req->path[n] == 0 || req->path[n] == '?');
}

void api_handle(void *ctx, const struct http_req *req, struct http_resp *resp)
{
    struct pod *p = ctx;
    if (is(req, "POST", "/v1/chat/completions"))
        api_inference(p, req, resp, 1);
    else if (is(req, "POST", "/v1/completions"))
        api_inference(p, req, resp, 0);
    else if (is(req, "GET", "/metrics"))
        metrics(p, resp);
    else if (is(req, "GET", "/health"))
        resp_send(resp, 200, "application/json", "", 0);
    else if (is(req, "GET", "/v1/models"))
        models(p, resp);
    else if (is(req, "GET", "/version"))
        resp_send(resp, 200, "application/json", "{\"version\":\"podsim\"}", 20);
    else if (is(req, "POST", "/v1/load_lora_adapter"))
        lora_admin(p, req, resp, 1);
    else if (is(req, "POST", "/v1/unload_lora_adapter"))
        lora_admin(p, req, resp, 0);
    else if (is(req, "POST", "/reset_prefix_cache"))
        reset_cache(p, resp);
    else if (is(req, "GET", "/admin/faults") || is(req, "POST", "/admin/faults"))
        faults_endpoint(p, req, resp);
    else
        not_found(resp);
}

void api_admin_handle(void *ctx, const struct http_req *req,
                      struct http_resp *resp)
{
    struct podsim_admin *a = ctx;
    if (is(req, "GET", "/pods")) {
        struct sbuf b;
        sbuf_init(&b);
        sbuf_puts(&b, "[");
        for (int i = 0; i < a->npods; i++) {
            if (i)
                sbuf_puts(&b, ",");
            faults_json(a->pods[i], &b);
        }
        sbuf_puts(&b, "]");
        api_send_json(resp, 200, &b);
        sbuf_free(&b);
        return;
    }
    /* /pods/<i|all>/<action> */
    char which[16], action[64];
    if (sscanf(req->path, "/pods/%15[^/]/%63[a-z_]", which, action) != 2 ||
        strcmp(req->method, "POST")) {
        not_found(resp);
        return;
    }
    int lo = 0, hi = a->npods - 1;
    if (strcmp(which, "all")) {
        char *end;
        long i = strtol(which, &end, 10);
        if (*end || i < 0 || i >= a->npods) {
            api_send_error(resp, 404, NULL, "no pod %s", which);
            return;
        }
        lo = hi = (int)i;
    }
    for (int i = lo; i <= hi; i++) {
        const char *err;
        if (!strcmp(action, "faults")) {
            if (api_apply_faults(a->pods[i], req->body, &err)) {
                api_send_error(resp, 400, NULL, "%s", err);
                return;
            }
        } else if (!strcmp(action, "reset_prefix_cache")) {
            if (pod_reset_prefix_cache(a->pods[i])) {
                api_send_error(resp, 503, NULL,
                           "pod %d has requests running; the prefix cache was not reset", i);
                return;
            }
        } else {
            not_found(resp);
            return;
        }
    }
    resp_send(resp, 200, "application/json", "{\"ok\":true}", 11);
}
