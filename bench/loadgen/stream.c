/* stream: SSE events -> request record. See stream.h. */
#include "stream.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const ERR_NAMES[LG_E__N] = {
    [LG_OK] = "ok",
    [LG_E_CONNECT] = "connect",
    [LG_E_HTTP] = "http",
    [LG_E_TIMEOUT] = "timeout",
    [LG_E_CLOSED] = "closed",
    [LG_E_STREAM] = "stream_error",
    [LG_E_PROTOCOL] = "protocol",
    [LG_E_INCOMPLETE] = "incomplete",
    [LG_E_INTERRUPTED] = "interrupted",
    [LG_E_NOT_SENT] = "not_sent",
    [LG_E_BUILD] = "build",
};

const char *lg_err_name(enum lg_err e)
{
    return (unsigned)e < LG_E__N ? ERR_NAMES[e] : "?";
}

void lg_req_fail(struct lg_req *r, enum lg_err e, const char *msg)
{
    if (r->err != LG_OK)
        return;
    r->err = (uint8_t)e;
    free(r->errmsg);
    r->errmsg = NULL;
    if (msg) {
        size_t n = strnlen(msg, LG_ERRMSG_MAX);
        r->errmsg = malloc(n + 1);
        if (r->errmsg) {
            memcpy(r->errmsg, msg, n);
            r->errmsg[n] = 0;
        }
    }
}

int lg_stream_open(struct lg_req *r, int keep_text)
{
    if (r->st)
        lg_stream_close(r);
    r->st = calloc(1, sizeof(*r->st));
    if (!r->st)
        return -ENOMEM;
    lg_sse_init(&r->st->sse);
    sbuf_init(&r->st->text);
    r->st->keep_text = keep_text;
    return 0;
}

void lg_stream_close(struct lg_req *r)
{
    if (!r->st)
        return;
    lg_sse_free(&r->st->sse);
    sbuf_free(&r->st->text);
    free(r->st);
    r->st = NULL;
}

void lg_stream_head(struct lg_req *r, int status, int event_stream,
                    const char *pod, size_t pod_len)
{
    r->status = status;
    if (r->st)
        r->st->event_stream = event_stream;
    if (pod && pod_len) {
        if (pod_len >= sizeof(r->pod))
            pod_len = sizeof(r->pod) - 1;
        memcpy(r->pod, pod, pod_len);
        r->pod[pod_len] = 0;
    }
}

static void content_event(struct lg_req *r, const char *text, size_t n, uint64_t now)
{
    if (!r->n_content) {
        r->first_ns = now;
    } else {
        if (r->n_itl == r->cap_itl) {
            uint32_t ncap = r->cap_itl ? 2 * r->cap_itl : 64;
            uint32_t *p = realloc(r->itl_us, ncap * sizeof(*p));
            if (p) {
                r->itl_us = p;
                r->cap_itl = ncap;
            }
        }
        if (r->n_itl < r->cap_itl) {
            uint64_t us = (now - r->last_ns) / 1000;
            r->itl_us[r->n_itl++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
        }
    }
    r->last_ns = now;
    r->n_content++;
    if (r->st->keep_text)
        sbuf_append(&r->st->text, text, n);
}

static uint32_t num_u32(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint32_t)v->valuedouble : 0;
}

static void take_usage(struct lg_req *r, const cJSON *u)
{
    if (!cJSON_IsObject(u))
        return;
    r->has_usage = 1;
    r->prompt_tokens = num_u32(u, "prompt_tokens");
    r->completion_tokens = num_u32(u, "completion_tokens");
    r->cached_tokens = num_u32(cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details"),
                               "cached_tokens");
}

static void take_error(struct lg_req *r, const cJSON *e, enum lg_err kind)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    lg_req_fail(r, kind, cJSON_IsString(m) ? m->valuestring
                         : cJSON_IsString(e) ? e->valuestring : "error");
}

/* A choice's text: chat delta.content, chat message.content, or completion text. */
static const cJSON *choice_text(const cJSON *c)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(c, "delta");
    if (!d)
        d = cJSON_GetObjectItemCaseSensitive(c, "message");
    const cJSON *t = d ? cJSON_GetObjectItemCaseSensitive(d, "content")
                       : cJSON_GetObjectItemCaseSensitive(c, "text");
    return cJSON_IsString(t) ? t : NULL;
}

static int on_event(void *arg, const char *data, size_t len)
{
    struct lg_req *r = arg;
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        r->st->done = 1;
        return 0;
    }
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!j) {
        r->st->bad_events++;
        return 0;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (e && !cJSON_IsNull(e))
        take_error(r, e, LG_E_STREAM);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *c0 = cJSON_IsArray(ch) ? cJSON_GetArrayItem(ch, 0) : NULL;
    const cJSON *t = c0 ? choice_text(c0) : NULL;
    if (t && t->valuestring[0])
        content_event(r, t->valuestring, strlen(t->valuestring), r->st->now);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usage");
    if (u && !cJSON_IsNull(u))
        take_usage(r, u);
    cJSON_Delete(j);
    return 0;
}

int lg_stream_body(struct lg_req *r, const char *p, size_t n, uint64_t now)
{
    struct lg_stream *st = r->st;
    if (!st || !n)
        return 0;
    st->now = now;
    if (r->status != 200 || !st->event_stream) {
        size_t max = r->status == 200 ? LG_JSON_BODY_MAX : LG_ERR_BODY_MAX;
        size_t room = st->text.len < max ? max - st->text.len : 0;
        sbuf_append(&st->text, p, n < room ? n : room);
        return 0;
    }
    int rc = lg_sse_feed(&st->sse, p, n, on_event, r);
    if (rc < 0) {
        lg_req_fail(r, LG_E_PROTOCOL, rc == -E2BIG ? "SSE line too long" : "out of memory");
        return -1;
    }
    return 0;
}

/* A whole JSON body: a non-streaming answer, or an error. */
static void whole_body(struct lg_req *r, uint64_t now)
{
    struct lg_stream *st = r->st;
    cJSON *j = cJSON_ParseWithLength(st->text.data ? st->text.data : "", st->text.len);
    if (r->status != 200) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        char msg[96];
        if (e) {
            take_error(r, e, LG_E_HTTP);
        } else {
            /* not OpenAI-shaped: keep the start of the body */
            size_t k = st->text.len < sizeof(msg) - 1 ? st->text.len : sizeof(msg) - 1;
            memcpy(msg, st->text.data ? st->text.data : "", k);
            msg[k] = 0;
            for (size_t q = 0; q < k; q++)
                if ((unsigned char)msg[q] < 0x20)
                    msg[q] = ' ';
            lg_req_fail(r, LG_E_HTTP, k ? msg : "no body");
        }
    } else if (!j) {
        lg_req_fail(r, LG_E_PROTOCOL, "200 response neither SSE nor JSON");
    } else {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
        if (e && !cJSON_IsNull(e))
            take_error(r, e, LG_E_STREAM);
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
        const cJSON *t = cJSON_IsArray(ch) ? choice_text(cJSON_GetArrayItem(ch, 0)) : NULL;
        if (t && t->valuestring[0]) {
            sbuf_reset(&st->text); /* the text now holds the answer, not the body */
            content_event(r, t->valuestring, strlen(t->valuestring), now);
        }
        take_usage(r, cJSON_GetObjectItemCaseSensitive(j, "usage"));
        st->done = 1;
    }
    cJSON_Delete(j);
}

int lg_stream_end(struct lg_req *r, uint64_t now)
{
    struct lg_stream *st = r->st;
    if (st)
        st->now = now;
    if (st && (r->status != 200 || !st->event_stream)) {
        whole_body(r, now);
    } else if (st && r->err == LG_OK) {
        /* a last event without its blank line still counts */
        if (st->sse.line.len)
            lg_sse_feed(&st->sse, "\n\n", 2, on_event, r);
        else if (st->sse.has_data)
            lg_sse_feed(&st->sse, "\n", 1, on_event, r);
        if (!st->done)
            lg_req_fail(r, LG_E_INCOMPLETE, "stream ended without data: [DONE]");
    }
    if (r->err == LG_OK && !r->status)
        lg_req_fail(r, LG_E_PROTOCOL, "no response");
    if (r->err == LG_OK && !r->has_usage)
        r->completion_tokens = r->n_content;
    return r->err;
}
