/* libFuzzer target for the usage reader (user/core/usage.c): what kvgated
 * runs on every byte of a pod's answer to count its tokens.
 *
 * The first byte picks the form (bit 0: JSON document or SSE stream) and
 * the piece size (the rest); the input is read whole, then in pieces of
 * that size, then a byte at a time. All three must agree; counts never
 * exceed USAGE_MAX_TOKENS; and for SSE, reading each complete event alone
 * (as relay.c does, through sse_split and usage_sse_event) must find the
 * same last usage as the stream reader. A JSON document whose usage is
 * read is also given to cJSON (when it has no backslash, so no key can be
 * spelled two ways): cJSON must parse it too and find the same counts. */
#include "../../user/core/usage.c"
#include "../../user/gateway/sse.c"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>

struct res {
    int ok, only;
    struct usage u;
};

static void check_counts(const struct res *r)
{
    if (!r->ok)
        return;
    if (r->u.prompt > USAGE_MAX_TOKENS || r->u.cached > USAGE_MAX_TOKENS ||
        r->u.completion > USAGE_MAX_TOKENS)
        abort();
    if ((!r->u.has_prompt && r->u.prompt) || (!r->u.has_cached && r->u.cached) ||
        (!r->u.has_completion && r->u.completion))
        abort();
}

static int same(const struct res *a, const struct res *b)
{
    if (a->ok != b->ok || a->only != b->only)
        return 0;
    return !a->ok || !memcmp(&a->u, &b->u, sizeof(a->u));
}

static struct res run(int sse, const char *d, size_t len, size_t step)
{
    struct res r;
    memset(&r, 0, sizeof(r));
    if (sse) {
        struct usage_sse s;
        usage_sse_init(&s);
        for (size_t off = 0; off < len; off += step)
            usage_sse_feed(&s, d + off, len - off < step ? len - off : step);
        usage_sse_finish(&s);
        r.ok = usage_sse_result(&s, &r.u);
        r.only = r.ok && s.last_usage_only;
    } else {
        struct usage_json j;
        usage_json_init(&j);
        for (size_t off = 0; off < len; off += step)
            usage_json_feed(&j, d + off, len - off < step ? len - off : step);
        r.ok = usage_json_result(&j, &r.u, &r.only);
    }
    return r;
}

static void same_count(const cJSON *o, const char *key, int has, uint64_t v)
{
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!has) {
        if (k && !cJSON_IsNull(k))
            abort();
        return;
    }
    if (!cJSON_IsNumber(k) || k->valuedouble != (double)v)
        abort();
}

/* The usage read from a JSON document is what cJSON finds there. */
static void oracle(const char *d, size_t len, const struct res *r)
{
    if (!r->ok || memchr(d, '\\', len))
        return;
    cJSON *root = cJSON_ParseWithLengthOpts(d, len, NULL, 0);
    if (!root)
        return; /* stricter than ours somewhere (numbers): nothing to compare */
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
    if (!cJSON_IsObject(u))
        abort();
    same_count(u, "prompt_tokens", r->u.has_prompt, r->u.prompt);
    same_count(u, "completion_tokens", r->u.has_completion, r->u.completion);
    const cJSON *det = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens_details");
    if (r->u.has_cached)
        same_count(det, "cached_tokens", 1, r->u.cached);
    else if (cJSON_IsObject(det))
        same_count(det, "cached_tokens", 0, 0);
    cJSON_Delete(root);
}

/* relay.c's way: whole events from sse_split, each read alone */
static void on_event(void *arg, const char *e, size_t n)
{
    struct res *r = arg;
    struct res one;
    memset(&one, 0, sizeof(one));
    one.ok = usage_sse_event(e, n, &one.u, &one.only);
    if (one.ok)
        *r = one;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int sse = data[0] & 1;
    size_t step = 1 + (data[0] >> 1) % 61;
    const char *d = (const char *)data + 1;
    size_t len = size - 1;

    struct res whole = run(sse, d, len, len ? len : 1);
    struct res pieces = run(sse, d, len, step);
    struct res bytes = run(sse, d, len, 1);
    check_counts(&whole);
    if (!same(&whole, &pieces) || !same(&whole, &bytes))
        abort();
    if (!sse)
        oracle(d, len, &whole);
    if (sse) {
        struct res ev;
        memset(&ev, 0, sizeof(ev));
        size_t done = sse_split(d, len, on_event, &ev);
        if (done < len)
            on_event(&ev, d + done, len - done); /* the end: a last event */
        if (!same(&whole, &ev))
            abort();
    }
    return 0;
}
