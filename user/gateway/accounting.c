/* accounting: tokens per answer, workload classes, the request_usage
 * rewrite. See accounting.h. */
#include "gateway/accounting.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/sbuf.h"
#include "gateway/config.h"
#include "gateway/gateway.h"

/* ---- workload class ---- */

void acct_class(const struct gw_config *c, struct gw_request *r, const char *path, size_t plen)
{
    if (r->wclass[0])
        return; /* a header named it */
    const char *q = path ? memchr(path, '?', plen) : NULL;
    if (q)
        plen = (size_t)(q - path);
    for (uint32_t i = 0; c && i < c->nclasses; i++) {
        const struct gw_class_rule *k = &c->classes[i];
        if (k->model[0] && strcmp(k->model, r->model))
            continue;
        if (k->path[0] && (!path || strlen(k->path) != plen || memcmp(k->path, path, plen)))
            continue;
        snprintf(r->wclass, sizeof(r->wclass), "%s", k->name);
        return;
    }
    snprintf(r->wclass, sizeof(r->wclass), "default");
}

/* ---- request_usage ---- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* out = body[0, at) + ins + body[at + cut, len) */
static int splice_in(struct sbuf *out, const char *body, size_t len, size_t at, size_t cut,
                     const char *ins)
{
    sbuf_reset(out);
    sbuf_append(out, body, at);
    sbuf_puts(out, ins);
    sbuf_append(out, body + at + cut, len - at - cut);
    return out->oom ? -ENOMEM : 1;
}

int acct_request_rewrite(const struct gw_request *r, const char *body, size_t len,
                         struct sbuf *out)
{
    if (!r->stream || r->include_usage == 1 || !body)
        return 0;
    if (!r->so_seen) { /* after the top-level '{' (the object holds "model": never empty) */
        size_t at = 0;
        while (at < len && is_ws(body[at]))
            at++;
        if (at >= len || body[at] != '{')
            return 0;
        return splice_in(out, body, len, at + 1, 0, "\"stream_options\":{\"include_usage\":true},");
    }
    size_t so = r->so_start;
    if (so >= len)
        return 0;
    if (body[so] == 'n') /* "stream_options": null */
        return so + 4 <= len ? splice_in(out, body, len, so, 4, "{\"include_usage\":true}") : 0;
    if (body[so] != '{')
        return 0;
    if (!r->iu_seen) {
        size_t k = so + 1;
        while (k < len && is_ws(body[k]))
            k++;
        return splice_in(out, body, len, so + 1, 0,
                         k < len && body[k] == '}' ? "\"include_usage\":true"
                                                   : "\"include_usage\":true,");
    }
    size_t iu = r->iu_start;
    if (iu >= len)
        return 0;
    if (body[iu] == 'f' && iu + 5 <= len) /* false: same length, so nothing else moves */
        return splice_in(out, body, len, iu, 5, "true ");
    if (body[iu] == 'n' && iu + 4 <= len)
        return splice_in(out, body, len, iu, 4, "true");
    return 0;
}

/* ---- the answer ---- */

void acct_answer_init(struct acct_answer *a)
{
    memset(a, 0, sizeof(*a));
}

void acct_answer_head(struct acct_answer *a, int status, int sse, int strip)
{
    acct_answer_init(a); /* a retried attempt's answer replaces nothing: none was read */
    a->read = status >= 200 && status < 300;
    a->sse = (uint8_t)!!sse;
    a->strip = (uint8_t)(a->read && sse && strip);
    if (a->read && !sse)
        usage_json_init(&a->json);
}

void acct_answer_body(struct acct_answer *a, const char *p, size_t n)
{
    if (a->read && !a->sse)
        usage_json_feed(&a->json, p, n);
}

int acct_answer_event(struct acct_answer *a, const char *e, size_t n)
{
    if (!a->read || !usage_key_in(e, n))
        return 0; /* most events: a memchr or two */
    struct usage u;
    int only = 0;
    if (!usage_sse_event(e, n, &u, &only))
        return 0;
    a->u = u;
    a->have = 1;
    return a->strip && only;
}

void acct_finish(struct acct_answer *a, struct gw_request *r)
{
    struct gw_tokens *t = &r->tokens;
    memset(t, 0, sizeof(*t));
    if (!a->read)
        return;
    if (!a->sse && !a->have)
        a->have = (uint8_t)usage_json_result(&a->json, &a->u, NULL);
    if (a->have) {
        t->prompt = a->u.prompt;
        t->cached = a->u.cached;
        t->completion = a->u.completion;
        t->src = GW_USAGE_REPORTED;
        return;
    }
    acct_estimate(r, r->content_events);
}

void acct_estimate(struct gw_request *r, uint64_t completion)
{
    struct gw_tokens *t = &r->tokens;
    memset(t, 0, sizeof(*t));
    t->prompt = r->prompt_tokens;
    t->completion = completion;
    /* cached: what the gateway's index said the chosen pod held of the
     * prompt (the exact index's match where the pod's events are trusted) */
    if (r->d.blocks && r->d.prefix_blocks <= r->d.blocks)
        t->cached = (uint64_t)((double)t->prompt * r->d.prefix_blocks / r->d.blocks);
    t->src = GW_USAGE_ESTIMATED;
}
