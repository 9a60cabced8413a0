/* api_infer: one inference request on a simulated pod, as vLLM's
 * OpenAI server answers it: the body's fields checked in vLLM's order and
 * words, the request handed to the engine, and each token streamed back
 * as a chunk (SSE) or gathered into one answer.
 *
 * Output is byte-for-byte what vLLM's pydantic models serialize to (field
 * order included): chunk objects, SSE framing, usage with
 * prompt_tokens_details.cached_tokens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/sbuf.h"
#include "podsim/api.h"
#include "podsim/api_priv.h"
#include "podsim/pod.h"
#include "podsim/prompt.h"
#include "tok/tok.h"

unsigned api_output_len_mean = 128;
const struct tok *api_tokenizer;

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

/* ---- what is written back ---- */

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

/* The SSE event(s) for one token into b: the role chunk first (vLLM sends
 * the role with the first output, not on receipt), then the token's. */
static void token_chunk(struct api_req *ar, struct sbuf *b, const char text[4], int last)
{
    const struct sim_req *r = &ar->sr;
    if (ar->chat && r->num_output == 1) {
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
}

/* The whole non-streaming answer into b. */
static void final_answer(struct api_req *ar, struct sbuf *b)
{
    const struct sim_req *r = &ar->sr;
    sbuf_printf(b, "{\"id\":\"%s\",\"object\":\"%s\",\"created\":%ld,\"model\":\"",
                ar->id, ar->chat ? "chat.completion" : "text_completion", ar->created);
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
}

/* ---- engine callbacks ---- */

static void on_token(struct sim_req *r, uint32_t tok)
{
    struct api_req *ar = r->user;
    char text[4] = {(char)tok, (char)(tok >> 8), (char)(tok >> 16), (char)(tok >> 24)};
    int last = r->num_output >= r->max_output;

    if (!ar->stream) {
        sbuf_append(&ar->text, text, 4);
    } else {
        sbuf_reset(&ar->out);
        token_chunk(ar, &ar->out, text, last);
        ar->busy = 1; /* a cancel arriving while we write must not free ar */
        resp_write(ar->resp, ar->out.data, ar->out.len);
        ar->busy = 0;
        if (ar->cancelled) {
            pod_abort(ar->pod, r);
            ar_free(ar);
            return;
        }
    }
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
        final_answer(ar, b);
        api_send_json(ar->resp, 200, b);
    }
    ar_free(ar);
}

/* ---- the request's fields, in vLLM's order ---- */

struct infer_opts {
    const char *model;   /* the name asked for */
    int lora;            /* its adapter, 0: the base model */
    int stream, ignore_eos, include_usage;
    uint32_t nprompt;
    long long max_tokens; /* -1: up to max_model_len */
};

/* Optional boolean field: 0 ok, -1 error sent. */
static int get_bool(const cJSON *j, const char *key, int *out, struct http_resp *resp)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v)) {
        api_send_error(resp, 400, key, "%s: Input should be a valid boolean", key);
        return -1;
    }
    *out = cJSON_IsTrue(v);
    return 0;
}

/* "model": the base model or a loaded adapter. 0, or -1 with the error sent. */
static int opt_model(struct pod *p, const cJSON *j, struct infer_opts *o,
                     struct http_resp *resp)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    o->model = p->model;
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) {
            api_send_error(resp, 400, "model", "model: Input should be a valid string");
            return -1;
        }
        o->model = model->valuestring;
    }
    if (strcmp(o->model, p->model) != 0) {
        o->lora = engine_lora_find(&p->eng, o->model);
        if (!o->lora) {
            api_send_error(resp, 404, "model", "The model `%s` does not exist.", o->model);
            return -1;
        }
    }
    return 0;
}

/* "messages" (chat) or "prompt", rendered into *prompt. */
static int opt_prompt(const cJSON *j, int chat, struct sbuf *prompt, struct http_resp *resp)
{
    const char *err = NULL;
    const char *field = chat ? "messages" : "prompt";
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, field);
    if (!src) {
        api_send_error(resp, 400, field, "%s: Field required", field);
        return -1;
    }
    int rc;
    if (chat && api_tokenizer && tok_template(api_tokenizer) != TOK_TEMPLATE_UNKNOWN)
        rc = tok_render_chat(api_tokenizer, src, 1, prompt, &err);
    else
        rc = chat ? prompt_render_chat(src, prompt, &err)
                  : prompt_render_completion(src, prompt, &err);
    if (rc) {
        api_send_error(resp, 400, field, "%s", err ? err : "invalid prompt");
        return -1;
    }
    return 0;
}

/* With --tokenizer: the prompt's token ids. A chat's rendered text with
 * special tokens parsed and no BOS added (the template wrote it); a
 * completion's string with BOS added (vLLM: add_special_tokens=True); a
 * completion's id list as given (rendered 4 bytes an id). */
static int prompt_ids(const cJSON *j, int chat, const struct sbuf *prompt, struct tok_ids *ids,
                      struct http_resp *resp)
{
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(j, "prompt");
    int rc;
    if (!chat && cJSON_IsArray(src)) {
        rc = 0;
        for (size_t i = 0; i + 4 <= prompt->len && !rc; i += 4) {
            uint32_t id;
            memcpy(&id, prompt->data + i, 4);
            rc = tok_ids_push(ids, id);
        }
    } else
        rc = tok_encode(api_tokenizer, prompt->data, prompt->len,
                        TOK_PARSE_SPECIAL | (chat ? 0 : TOK_ADD_BOS), ids);
    if (rc == -E2BIG)
        api_send_error(resp, 400, chat ? "messages" : "prompt", "prompt too long to tokenize");
    else if (rc)
        api_send_error(resp, 500, NULL, "tokenizer: %s", strerror(-rc));
    return rc ? -1 : 0;
}

/* "stream", "ignore_eos", "stream_options.include_usage", "n". */
static int opt_flags(const cJSON *j, struct infer_opts *o, struct http_resp *resp)
{
    if (get_bool(j, "stream", &o->stream, resp) ||
        get_bool(j, "ignore_eos", &o->ignore_eos, resp))
        return -1;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(j, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            api_send_error(resp, 400, "stream_options",
                           "stream_options: Input should be an object");
            return -1;
        }
        if (get_bool(so, "include_usage", &o->include_usage, resp))
            return -1;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(j, "n");
    if (n && !cJSON_IsNull(n) && (!cJSON_IsNumber(n) || n->valuedouble != 1)) {
        api_send_error(resp, 400, "n", "n: only n=1 is supported by podsim");
        return -1;
    }
    return 0;
}

/* "max_completion_tokens" or "max_tokens", and the context length. */
static int opt_length(struct pod *p, const cJSON *j, struct infer_opts *o,
                      struct http_resp *resp)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(j, "max_completion_tokens");
    if (!mt || cJSON_IsNull(mt))
        mt = cJSON_GetObjectItemCaseSensitive(j, "max_tokens");
    o->max_tokens = -1;
    if (mt && !cJSON_IsNull(mt)) {
        if (!cJSON_IsNumber(mt) || mt->valuedouble != (double)(long long)mt->valuedouble) {
            api_send_error(resp, 400, "max_tokens", "max_tokens: Input should be a valid integer");
            return -1;
        }
        o->max_tokens = (long long)mt->valuedouble;
        if (o->max_tokens < 1) {
            api_send_error(resp, 400, "max_tokens", "max_tokens must be at least 1, got %lld.",
                           o->max_tokens);
            return -1;
        }
    }
    uint32_t np = o->nprompt;
    if (np == 0) { /* vLLM refuses it too; the engine needs one token to compute */
        api_send_error(resp, 400, "prompt", "The decoder prompt cannot be empty");
        return -1;
    }
    if (np >= p->max_model_len || (o->max_tokens > 0 && np + o->max_tokens > p->max_model_len)) {
        if (o->max_tokens > 0)
            api_send_error(resp, 400, NULL,
                           "This model's maximum context length is %u tokens. However, you "
                           "requested %lld tokens (%u in the messages, %lld in the completion). "
                           "Please reduce the length of the messages or completion.",
                           p->max_model_len, np + o->max_tokens, np, o->max_tokens);
        else
            api_send_error(resp, 400, NULL,
                           "This model's maximum context length is %u tokens. However, your "
                           "request has %u input tokens. Please reduce the length of the "
                           "input messages.", p->max_model_len, np);
        return -1;
    }
    if (o->max_tokens < 0)
        o->max_tokens = p->max_model_len - np;
    return 0;
}

/* ---- starting it ---- */

/* The engine request for a checked body: tokens, output length, id. NULL
 * on ENOMEM. */
static struct api_req *ar_new(struct pod *p, const cJSON *j, const struct infer_opts *o,
                              const struct sbuf *prompt, const struct tok_ids *ids, int chat)
{
    struct api_req *ar = calloc(1, sizeof(*ar));
    if (!ar || engine_req_prepare(&ar->sr, o->nprompt, (uint32_t)o->max_tokens)) {
        free(ar);
        return NULL;
    }
    if (api_tokenizer)
        memcpy(ar->sr.tokens, ids->v, ids->n * sizeof(uint32_t));
    else
        prompt_tokenize(prompt->data, prompt->len, ar->sr.tokens);
    /* Output: deterministic from the prompt (or "seed"), so equal requests
     * get equal answers. Without ignore_eos the model "stops" at a natural
     * length drawn around api_output_len_mean. */
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    uint64_t s = cJSON_IsNumber(seed) ? (uint64_t)seed->valuedouble
                                      : XXH3_64bits(prompt->data, prompt->len);
    ar->sr.seed = s;
    ar->sr.max_output = (uint32_t)o->max_tokens;
    if (!o->ignore_eos) {
        uint32_t natural = 1 + (uint32_t)((s >> 17) % (2 * api_output_len_mean));
        if (natural < ar->sr.max_output) {
            ar->sr.max_output = natural;
            ar->sr.eos_early = 1;
        }
    }
    ar->sr.lora = o->lora;
    ar->sr.on_token = on_token;
    ar->sr.on_finish = on_finish;
    ar->sr.user = ar;
    ar->pod = p;
    ar->chat = chat;
    ar->stream = o->stream;
    ar->include_usage = o->include_usage;
    ar->created = (long)pod_unix_now();
    snprintf(ar->model, sizeof(ar->model), "%s", o->model);
    uint64_t idv = XXH3_64bits_withSeed(&p->next_id, sizeof(p->next_id),
                                        p->t0_ns ^ (uint64_t)p->port);
    p->next_id++;
    snprintf(ar->id, sizeof(ar->id), "%s%016llx%016llx", chat ? "chatcmpl-" : "cmpl-",
             (unsigned long long)idv, (unsigned long long)(idv * 0x9E3779B97F4A7C15ull));
    sbuf_init(&ar->text);
    sbuf_init(&ar->out);
    return ar;
}

void api_inference(struct pod *p, const struct http_req *req, struct http_resp *resp,
                   int chat)
{
    cJSON *j = api_parse_body(req, resp);
    if (!j)
        return;
    struct infer_opts o = {0};
    struct sbuf prompt;
    struct tok_ids ids = {0};
    sbuf_init(&prompt);
    if (opt_model(p, j, &o, resp) || opt_prompt(j, chat, &prompt, resp) ||
        opt_flags(j, &o, resp))
        goto out;
    if (api_tokenizer) {
        if (prompt_ids(j, chat, &prompt, &ids, resp))
            goto out;
        o.nprompt = (uint32_t)ids.n;
    } else
        o.nprompt = prompt_ntokens(prompt.len);
    if (opt_length(p, j, &o, resp))
        goto out;
    if (p->faults.fail_rate > 0 && pod_rand(p) < p->faults.fail_rate) {
        api_send_error(resp, 500, NULL, "podsim: injected failure");
        goto out;
    }
    struct api_req *ar = ar_new(p, j, &o, &prompt, &ids, chat);
    if (!ar) {
        api_send_error(resp, 500, NULL, "out of memory");
        goto out;
    }
    ar->resp = resp;
    p->inflight++;
    resp_on_cancel(resp, ar_cancel, ar);
    if (o.stream) /* headers now; the first event when the first token is ready */
        resp_start(resp, 200, "text/event-stream; charset=utf-8", -1, NULL);
    pod_submit(p, &ar->sr);
out:
    tok_ids_free(&ids);
    sbuf_free(&prompt);
    cJSON_Delete(j);
}
