/* api: vLLM's OpenAI-compatible endpoints on a simulated pod.
 *
 * Output is byte-for-byte what vLLM's pydantic models serialize to (field
 * order included): chunk objects, SSE framing, usage with
 * prompt_tokens_details.cached_tokens, and errors as
 * {"error":{"message","type","param","code"}}. */
#include "podsim/api.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/sbuf.h"
#include "podsim/metrics.h"
#include "podsim/pod.h"
#include "podsim/prompt.h"

unsigned api_output_len_mean = 128;

/* ---- errors ---- */

static void send_error(struct http_resp *resp, int status, const char *type,
                       const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void send_error(struct http_resp *resp, int status, const char *type,
                       const char *param, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":{\"message\":\"");
    sbuf_json_escape(&b, msg, strlen(msg));
    sbuf_printf(&b, "\",\"type\":\"%s\",\"param\":", type);
    if (param) {
        sbuf_puts(&b, "\"");
        sbuf_json_escape(&b, param, strlen(param));
        sbuf_puts(&b, "\"");
    } else {
        sbuf_puts(&b, "null");
    }
    sbuf_printf(&b, ",\"code\":%d}}", status);
    resp_send(resp, status, "application/json", b.data, b.len);
    sbuf_free(&b);
}

static void send_json(struct http_resp *resp, int status, struct sbuf *b)
{
    if (b->oom) {
        send_error(resp, 500, "InternalServerError", NULL, "out of memory");
        return;
    }
    resp_send(resp, status, "application/json", b->data, b->len);
}

/* ---- one inference request ---- */

struct api_req {
    struct sim_req sr;
    struct pod *pod;
    struct http_resp *resp;
    int chat, stream, include_usage;
    int busy, cancelled; /* cancel arrived while we were writing */
    long created;
    char id[48];
    char model[128];
    struct sbuf text;    /* non-streaming: the generated text */
    struct sbuf out;     /* scratch for one chunk */
};

static void ar_free(struct api_req *ar)
{
    ar->pod->inflight--;
    engine_req_release(&ar->sr);
    sbuf_free(&ar->text);
    sbuf_free(&ar->out);
    free(ar);
}

/* Client went away: stop generating (vLLM aborts on disconnect). */
static void ar_cancel(void *arg)
{
    struct api_req *ar = arg;
    ar->resp = NULL;
    if (ar->busy) {
        ar->cancelled = 1;
        return;
    }
    pod_abort(ar->pod, &ar->sr);
    ar_free(ar);
}

static const char *finish_str(enum finish_reason f)
{
    return f == FINISH_STOP ? "stop" : f == FINISH_ABORT ? "abort" : "length";
}

static void chunk_head(struct api_req *ar, struct sbuf *b)
{
    sbuf_printf(b, "data: {\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"",
                ar->id, ar->chat ? "chat.completion.chunk" : "text_completion",
                ar->created);
    sbuf_json_escape(b, ar->model, strlen(ar->model));
    sbuf_puts(b, "\",");
}

static void usage_json(struct api_req *ar, struct sbuf *b)
{
    const struct sim_req *r = &ar->sr;
    sbuf_printf(b,
                "\"usage\":{\"prompt_tokens\":%u,\"total_tokens\":%u,"
                "\"completion_tokens\":%u,\"prompt_tokens_details\":"
                "{\"cached_tokens\":%d}}",
                r->num_prompt, r->num_prompt + r->num_output, r->num_output,
                r->num_cached < 0 ? 0 : r->num_cached);
}

static void on_token(struct sim_req *r, uint32_t tok)
{
    struct api_req *ar = r->user;
    char text[4] = {(char)tok, (char)(tok >> 8), (char)(tok >> 16), (char)(tok >> 24)};
    int last = r->num_output >= r->max_output;

    if (!ar->stream) {
        sbuf_append(&ar->text, text, 4);
        goto fault;
    }
    struct sbuf *b = &ar->out;
    sbuf_reset(b);
    if (ar->chat && r->num_output == 1) {
        /* vLLM sends the role with the first output, not on receipt */
        chunk_head(ar, b);
        sbuf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                     "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n");
    }
    chunk_head(ar, b);
    if (ar->chat) {
        sbuf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{\"content\":\"");
        sbuf_json_escape(b, text, 4);
        sbuf_puts(b, "\"},\"logprobs\":null,\"finish_reason\":");
    } else {
        sbuf_puts(b, "\"choices\":[{\"index\":0,\"text\":\"");
        sbuf_json_escape(b, text, 4);
        sbuf_puts(b, "\",\"logprobs\":null,\"finish_reason\":");
    }
    if (last)
        sbuf_printf(b, "\"%s\",\"stop_reason\":null}]}\n\n",
                    r->eos_early ? "stop" : "length");
    else
        sbuf_puts(b, ar->chat ? "null}]}\n\n" : "null,\"stop_reason\":null}]}\n\n");

    ar->busy = 1;
    resp_write(ar->resp, b->data, b->len);
    ar->busy = 0;
    if (ar->cancelled) {
        pod_abort(ar->pod, r);
        ar_free(ar);
        return;
    }
fault:;
    uint32_t ca = ar->pod->faults.close_after;
    if (ca && r->num_output >= ca && !last) {
        /* fault: the server dies mid-stream */
        resp_abort(ar->resp);
        pod_abort(ar->pod, r);
        ar_free(ar);
    }
}

static void on_finish(struct sim_req *r)
{
    struct api_req *ar = r->user;
    struct sbuf *b = &ar->out;
    sbuf_reset(b);
    ar->busy = 1; /* a cancel arriving while we write must not free ar */
    if (ar->stream) {
        if (ar->include_usage) {
            chunk_head(ar, b);
            sbuf_puts(b, "\"choices\":[],");
            usage_json(ar, b);
            sbuf_puts(b, "}\n\n");
        }
        sbuf_puts(b, "data: [DONE]\n\n");
        resp_write(ar->resp, b->data, b->len);
        if (!ar->cancelled)
            resp_end(ar->resp);
    } else {
        sbuf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"",
                    ar->id, ar->chat ? "chat.completion" : "text_completion",
                    ar->created);
        sbuf_json_escape(b, ar->model, strlen(ar->model));
        if (ar->chat) {
            sbuf_puts(b, "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                         "\"reasoning_content\":null,\"content\":\"");
            sbuf_json_escape(b, ar->text.data, ar->text.len);
            sbuf_printf(b, "\",\"tool_calls\":[]},\"logprobs\":null,\"finish_reason\":\"%s\","
                           "\"stop_reason\":null}],",
                        finish_str(r->finish));
            usage_json(ar, b);
            sbuf_puts(b, ",\"prompt_logprobs\":null}");
        } else {
            sbuf_puts(b, "\",\"choices\":[{\"index\":0,\"text\":\"");
            sbuf_json_escape(b, ar->text.data, ar->text.len);
            sbuf_printf(b, "\",\"logprobs\":null,\"finish_reason\":\"%s\","
                           "\"stop_reason\":null,\"prompt_logprobs\":null}],",
                        finish_str(r->finish));
            usage_json(ar, b);
            sbuf_puts(b, "}");
        }
        send_json(ar->resp, 200, b);
    }
    ar_free(ar);
}

/* ---- request parsing ---- */

static cJSON *parse_body(const struct http_req *req, struct http_resp *resp)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(req->body, req->body_len, &end, 0);
    if (!j) {
        const char *at = cJSON_GetErrorPtr();
        long off = at && at >= req->body && at <= req->body + req->body_len
                       ? (long)(at - req->body) : 0;
        send_error(resp, 400, "BadRequestError", NULL,
                   "Invalid JSON in request body at byte %ld", off);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        send_error(resp, 400, "BadRequestError", NULL,
                   "Request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Optional boolean field: 0 ok, -1 error sent. */
static int get_bool(const cJSON *j, const char *key, int *out,
                    struct http_resp *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v)) {
        send_error(resp, 400, "BadRequestError", key,
                   "%s: Input should be a valid boolean", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

static void inference(struct pod *p, const struct http_req *req,
                      struct http_resp *resp, int chat)
{
    cJSON *j = parse_body(req, resp);
    if (!j)
        return;
    struct api_req *ar = NULL;
    struct sbuf prompt;
    sbuf_init(&prompt);

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const char *mname = p->model;
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) {
            send_error(resp, 400, "BadRequestError", "model", "model: Input should be a valid string");
            goto out;
        }
        mname = model->valuestring;
    }
    int lora = 0;
    if (strcmp(mname, p->model) != 0) {
        lora = engine_lora_find(&p->eng, mname);
        if (!lora) {
            send_error(resp, 404, "NotFoundError", "model",
                       "The model `%s` does not exist.", mname);
            goto out;
        }
    }

    const char *err = NULL;
    const char *field = chat ? "messages" : "prompt";
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, field);
    if (!src) {
        send_error(resp, 400, "BadRequestError", field, "%s: Field required", field);
        goto out;
    }
    int rc = chat ? prompt_render_chat(src, &prompt, &err)
                  : prompt_render_completion(src, &prompt, &err);
    if (rc) {
        send_error(resp, 400, "BadRequestError", field, "%s", err ? err : "invalid prompt");
        goto out;
    }

    int stream = 0, ignore_eos = 0, include_usage = 0;
    if (get_bool(j, "stream", &stream, resp) || get_bool(j, "ignore_eos", &ignore_eos, resp))
        goto out;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so) || get_bool(so, "include_usage", &include_usage, resp)) {
            if (!cJSON_IsObject(so))
                send_error(resp, 400, "BadRequestError", "stream_options",
                           "stream_options: Input should be an object");
            goto out;
        }
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n");
    if (n && !cJSON_IsNull(n) && (!cJSON_IsNumber(n) || n->valuedouble != 1)) {
        send_error(resp, 400, "BadRequestError", "n", "n: only n=1 is supported by podsim");
        goto out;
    }

    uint32_t nprompt = prompt_ntokens(prompt.len);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "max_completion_tokens");
    if (!mt || cJSON_IsNull(mt))
        mt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    long long max_tokens = -1;
    if (mt && !cJSON_IsNull(mt)) {
        if (!cJSON_IsNumber(mt) || mt->valuedouble != (double)(long long)mt->valuedouble) {
            send_error(resp, 400, "BadRequestError", "max_tokens",
                       "max_tokens: Input should be a valid integer");
            goto out;
        }
        max_tokens = (long long)mt->valuedouble;
        if (max_tokens < 1) {
            send_error(resp, 400, "BadRequestError", "max_tokens",
                       "max_tokens must be at least 1, got %lld.", max_tokens);
            goto out;
        }
    }
    if (nprompt >= p->max_model_len ||
        (max_tokens > 0 && nprompt + max_tokens > p->max_model_len)) {
        if (max_tokens > 0)
            send_error(resp, 400, "BadRequestError", NULL,
                       "This model's maximum context length is %u tokens. However, you "
                       "requested %lld tokens (%u in the messages, %lld in the completion). "
                       "Please reduce the length of the messages or completion.",
                       p->max_model_len, nprompt + max_tokens, nprompt, max_tokens);
        else
            send_error(resp, 400, "BadRequestError", NULL,
                       "This model's maximum context length is %u tokens. However, your "
                       "request has %u input tokens. Please reduce the length of the "
                       "input messages.", p->max_model_len, nprompt);
        goto out;
    }
    if (max_tokens < 0)
        max_tokens = p->max_model_len - nprompt;

    if (p->faults.fail_rate > 0 && pod_rand(p) < p->faults.fail_rate) {
        send_error(resp, 500, "InternalServerError", NULL, "podsim: injected failure");
        goto out;
    }

    ar = calloc(1, sizeof(*ar));
    if (!ar || engine_req_prepare(&ar->sr, nprompt, (uint32_t)max_tokens)) {
        free(ar);
        ar = NULL;
        send_error(resp, 500, "InternalServerError", NULL, "out of memory");
        goto out;
    }
    prompt_tokenize(prompt.data, prompt.len, ar->sr.tokens);

    /* Output: deterministic from the prompt (or "seed"), so equal requests
     * get equal answers. Without ignore_eos the model "stops" at a natural
     * length drawn around api_output_len_mean. */
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    uint64_t s = cJSON_IsNumber(seed) ? (uint64_t)seed->valuedouble
                                      : XXH3_64bits(prompt.data, prompt.len);
    ar->sr.seed = s;
    ar->sr.max_output = (uint32_t)max_tokens;
    if (!ignore_eos) {
        uint32_t natural = 1 + (uint32_t)((s >> 17) % (2 * api_output_len_mean));
        if (natural < ar->sr.max_output) {
            ar->sr.max_output = natural;
            ar->sr.eos_early = 1;
        }
    }
    ar->sr.lora = lora;
    ar->sr.on_token = on_token;
    ar->sr.on_finish = on_finish;
    ar->sr.user = ar;
    ar->pod = p;
    ar->resp = resp;
    ar->chat = chat;
    ar->stream = stream;
    ar->include_usage = include_usage;
    ar->created = (long)pod_unix_now();
    snprintf(ar->model, sizeof(ar->model), "%s", mname);
    uint64_t idv = XXH3_64bits_withSeed(&p->next_id, sizeof(p->next_id), p->t0_ns ^ (uint64_t)p->port);
    p->next_id++;
    snprintf(ar->id, sizeof(ar->id), "%s%016llx%016llx", chat ? "chatcmpl-" : "cmpl-",
             (unsigned long long)idv, (unsigned long long)(idv * 0x9E3779B97F4A7C15ull));
    sbuf_init(&ar->text);
    sbuf_init(&ar->out);
    p->inflight++;
    resp_on_cancel(resp, ar_cancel, ar);
    if (stream) /* headers now; the first event when the first token is ready */
        resp_start(resp, 200, "text/event-stream; charset=utf-8", -1, NULL);
    pod_submit(p, &ar->sr);
out:
    sbuf_free(&prompt);
    cJSON_Delete(j);
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
    send_json(resp, 200, &b);
    sbuf_free(&b);
}

static void lora_admin(struct pod *p, const struct http_req *req,
                       struct http_resp *resp, int load)
{
    cJSON *j = parse_body(req, resp);
    if (!j)
        return;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "lora_name");
    if (!cJSON_IsString(name) || !*name->valuestring) {
        send_error(resp, 400, "BadRequestError", "lora_name", "lora_name: Field required");
    } else if (load) {
        int rc = engine_lora_add(&p->eng, name->valuestring);
        if (rc == -EEXIST)
            send_error(resp, 400, "InvalidUserInput", NULL,
                       "The lora adapter '%s' has already been loaded.", name->valuestring);
        else if (rc < 0)
            send_error(resp, 400, "InvalidUserInput", NULL,
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
            send_error(resp, 404, "NotFoundError", NULL,
                       "The lora adapter '%s' cannot be found.", name->valuestring);
        else if (rc == -EBUSY)
            send_error(resp, 400, "InvalidUserInput", NULL,
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
        send_error(resp, 500, "InternalServerError", NULL, "out of memory");
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
                   "\"close_after\":%u,\"slowdown\":%g},\"waiting\":%u,\"running\":%u,"
                   "\"kv_usage\":%.6f,\"inflight\":%llu}",
                p->faults.fail_rate, p->faults.refuse ? "true" : "false",
                modes[p->faults.metrics_mode], p->faults.close_after, p->faults.slowdown,
                p->eng.nwaiting, p->eng.nrunning, kv_usage(&p->eng.kv),
                (unsigned long long)p->inflight);
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
        } else {
            *err = "unknown key (known: fail_rate, refuse, metrics, close_after, slowdown)";
            goto out;
        }
    }
    if (f.refuse != p->faults.refuse && server_set_refuse(p->srv, f.refuse)) {
        *err = "could not change the listener";
        goto out;
    }
    p->faults = f;
    p->eng.slowdown = f.slowdown;
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
            send_error(resp, 400, "BadRequestError", NULL, "%s", err);
            return;
        }
    }
    struct sbuf b;
    sbuf_init(&b);
    faults_json(p, &b);
    send_json(resp, 200, &b);
    sbuf_free(&b);
}

static void reset_cache(struct pod *p, struct http_resp *resp)
{
    if (engine_reset_prefix_cache(&p->eng))
        send_error(resp, 503, "ServiceUnavailableError", NULL,
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
        inference(p, req, resp, 1);
    else if (is(req, "POST", "/v1/completions"))
        inference(p, req, resp, 0);
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
        resp_send(resp, 404, "application/json", "{\"detail\":\"Not Found\"}", 22);
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
        send_json(resp, 200, &b);
        sbuf_free(&b);
        return;
    }
    /* /pods/<i|all>/<action> */
    char which[16], action[64];
    if (sscanf(req->path, "/pods/%15[^/]/%63[a-z_]", which, action) != 2 ||
        strcmp(req->method, "POST")) {
        resp_send(resp, 404, "application/json", "{\"detail\":\"Not Found\"}", 22);
        return;
    }
    int lo = 0, hi = a->npods - 1;
    if (strcmp(which, "all")) {
        char *end;
        long i = strtol(which, &end, 10);
        if (*end || i < 0 || i >= a->npods) {
            send_error(resp, 404, "NotFoundError", NULL, "no pod %s", which);
            return;
        }
        lo = hi = (int)i;
    }
    for (int i = lo; i <= hi; i++) {
        const char *err;
        if (!strcmp(action, "faults")) {
            if (api_apply_faults(a->pods[i], req->body, &err)) {
                send_error(resp, 400, "BadRequestError", NULL, "%s", err);
                return;
            }
        } else if (!strcmp(action, "reset_prefix_cache")) {
            if (engine_reset_prefix_cache(&a->pods[i]->eng)) {
                send_error(resp, 503, "ServiceUnavailableError", NULL,
                           "pod %d has requests running; the prefix cache was not reset", i);
                return;
            }
        } else {
            resp_send(resp, 404, "application/json", "{\"detail\":\"Not Found\"}", 22);
            return;
        }
    }
    resp_send(resp, 200, "application/json", "{\"ok\":true}", 11);
}
