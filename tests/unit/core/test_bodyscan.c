/* Unit tests for user/core/bodyscan.c: extraction, strict JSON validation
 * with exact error offsets, split invariance, the on_prompt stream, and a
 * cross-check of validity against cJSON on random mutations. */
#include "core/bodyscan.h"
#include "harness.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* ---- scanning helpers ---- */

struct res {
    int rc;
    struct bodyscan s;
    char *pbytes; /* what on_prompt delivered */
    size_t plen, pcap;
    int pcalls;
};

static void collect(void *ctx, const char *p, size_t n)
{
    struct res *r = ctx;
    if (r->plen + n > r->pcap) {
        r->pcap = (r->plen + n) * 2 + 16;
        r->pbytes = realloc(r->pbytes, r->pcap);
    }
    memcpy(r->pbytes + r->plen, p, n);
    r->plen += n;
    r->pcalls++;
}

/* Scans body in pieces: cuts[] are increasing split offsets (ncuts of
 * them). Feeding goes on after an error (it must be sticky); finish is
 * always called. */
static void scan_cuts(struct res *r, const char *b, size_t len,
                      const size_t *cuts, int ncuts)
{
    memset(r, 0, sizeof(*r));
    bodyscan_init(&r->s, collect, r);
    size_t at = 0;
    int rc = 0;
    for (int i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        int frc = bodyscan_feed(&r->s, b + at, to - at);
        if (frc && frc != -EBADMSG)
            rc = -3; /* only 0 or -EBADMSG allowed */
        else if (frc && !rc)
            rc = frc;
        at = to;
    }
    int frc = bodyscan_finish(&r->s);
    r->rc = rc ? rc : frc;
    if (rc && frc != -EBADMSG)
        r->rc = -2; /* finish must stay failed after a feed error */
}

static void scan1(struct res *r, const char *b, size_t len)
{
    scan_cuts(r, b, len, NULL, 0);
}

static void res_free(struct res *r)
{
    free(r->pbytes);
    r->pbytes = NULL;
}

/* Results identical (valid and invalid alike). */
static int same(const struct res *a, const struct res *b)
{
    const struct bodyscan *x = &a->s, *y = &b->s;
    if (a->rc != b->rc || x->err_offset != y->err_offset ||
        (x->err_msg == NULL) != (y->err_msg == NULL) ||
        (x->err_msg && strcmp(x->err_msg, y->err_msg)))
        return 0;
    if (a->rc)
        return 1;
    return x->has_model == y->has_model && x->model_len == y->model_len &&
           !memcmp(x->model, y->model, x->model_len + 1) &&
           x->has_user == y->has_user && !strcmp(x->user, y->user) &&
           x->has_cache_salt == y->has_cache_salt &&
           !strcmp(x->cache_salt, y->cache_salt) && x->stream == y->stream &&
           x->include_usage == y->include_usage && x->so_seen == y->so_seen &&
           x->iu_seen == y->iu_seen && (!x->so_seen || x->so_start == y->so_start) &&
           (!x->iu_seen || x->iu_start == y->iu_start) &&
           x->prompt_kind == y->prompt_kind &&
           x->prompt_start == y->prompt_start &&
           x->prompt_end == y->prompt_end && x->max_tokens == y->max_tokens &&
           x->max_completion_tokens == y->max_completion_tokens &&
           a->plen == b->plen && (!a->plen || !memcmp(a->pbytes, b->pbytes, a->plen));
}

/* The prompt bytes delivered are exactly body[start, end). */
static int span_ok(const struct res *r, const char *b)
{
    if (r->s.prompt_kind == BODYSCAN_NONE)
        return r->plen == 0;
    size_t n = r->s.prompt_end - r->s.prompt_start;
    return r->plen == n && !memcmp(r->pbytes, b + r->s.prompt_start, n);
}

/* ---- valid bodies ---- */

struct vcase {
    const char *name, *body;
    const char *model; /* NULL: absent */
    int stream, include_usage, kind;
    const char *span;  /* raw value of messages / prompt, NULL: none */
    const char *user, *salt;
    long long max_tokens, mct;
};

static const struct vcase valid[] = {
    { "chat", "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stream\":true}",
      "llama", 1, -1, BODYSCAN_CHAT, "[{\"role\":\"user\",\"content\":\"hi\"}]", NULL, NULL, -1, -1 },
    { "model after messages", " {\"messages\":[],\"stream\":false,\"model\":\"m\"}\n",
      "m", 0, -1, BODYSCAN_CHAT, "[]", NULL, NULL, -1, -1 },
    { "completion string", "{\"prompt\":\"Once upon\",\"model\":\"gpt\",\"max_tokens\":128}",
      "gpt", -1, -1, BODYSCAN_COMPLETION, "\"Once upon\"", NULL, NULL, 128, -1 },
    { "completion array", "{\"prompt\":[1,2,3] ,\"max_completion_tokens\":0}",
      NULL, -1, -1, BODYSCAN_COMPLETION, "[1,2,3]", NULL, NULL, -1, 0 },
    { "nested decoys", "{\"x\":{\"model\":\"bad\",\"stream\":1,\"messages\":5},\"model\":\"good\","
      "\"y\":[\"prompt\",{\"prompt\":[]}],\"messages\":[{\"model\":\"bad2\",\"stream\":\"x\"}]}",
      "good", -1, -1, BODYSCAN_CHAT, "[{\"model\":\"bad2\",\"stream\":\"x\"}]", NULL, NULL, -1, -1 },
    { "decoy include_usage", "{\"include_usage\":3,\"x\":{\"stream_options\":{\"include_usage\":1}},"
      "\"stream_options\":{\"a\":{\"include_usage\":\"no\"},\"include_usage\":false},\"model\":\"\","
      "\"z\":{\"include_usage\":\"after\"}}",
      "", -1, 0, BODYSCAN_NONE, NULL, NULL, NULL, -1, -1 },
    { "escaped keys", "{\"mod\\u0065l\":\"a\\\"b\\\\c\\/d\",\"\\u0073tream\":true,\"m\\u0065ssages\":[]}",
      "a\"b\\c/d", 1, -1, BODYSCAN_CHAT, "[]", NULL, NULL, -1, -1 },
    { "escapes in model", "{\"model\":\"\\b\\f\\n\\r\\t\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"}",
      "\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", -1, -1, BODYSCAN_NONE, NULL, NULL, NULL, -1, -1 },
    { "raw utf8", "{\"model\":\"caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80\",\"prompt\":\"\xe4\xbd\xa0\xe5\xa5\xbd \xf4\x8f\xbf\xbf\"}",
      "caf\xc3\xa9-\xe2\x82\xac-\xf0\x9f\x98\x80", -1, -1, BODYSCAN_COMPLETION,
      "\"\xe4\xbd\xa0\xe5\xa5\xbd \xf4\x8f\xbf\xbf\"", NULL, NULL, -1, -1 },
    { "user salt usage", "{\"user\":\"u-1\",\"cache_salt\":\"s\\u00e9\",\"stream_options\":{\"include_usage\":true},"
      "\"stream\":true,\"model\":\"x\",\"messages\":[]}",
      "x", 1, 1, BODYSCAN_CHAT, "[]", "u-1", "s\xc3\xa9", -1, -1 },
    { "nulls are absent", "{\"model\":null,\"stream\":null,\"stream_options\":null,\"user\":null,"
      "\"cache_salt\":null,\"max_tokens\":null,\"messages\":[null]}",
      NULL, -1, -1, BODYSCAN_CHAT, "[null]", NULL, NULL, -1, -1 },
    { "numbers", "{\"a\":[0,-0,1.5,-2e10,3E+2,4.25e-3,123456789],\"temperature\":0.7,\"max_tokens\":9223372036854775807}",
      NULL, -1, -1, BODYSCAN_NONE, NULL, NULL, NULL, INT64_MAX, -1 },
    { "whitespace", " \t\r\n{ \"model\" : \"m\" , \"messages\" : [ 1 , { } , [ ] , \"s\" ] } \n\t ",
      "m", -1, -1, BODYSCAN_CHAT, "[ 1 , { } , [ ] , \"s\" ]", NULL, NULL, -1, -1 },
    { "empty object", "{}", NULL, -1, -1, BODYSCAN_NONE, NULL, NULL, NULL, -1, -1 },
    { "literals", "{\"a\":true,\"b\":false,\"c\":null,\"d\":[true,false,null],\"stream\":false}",
      NULL, 0, -1, BODYSCAN_NONE, NULL, NULL, NULL, -1, -1 },
    { "prompt escapes", "{\"prompt\":\"a\\n\\u00e9\\ud83d\\ude00\\\"\"}",
      NULL, -1, -1, BODYSCAN_COMPLETION, "\"a\\n\\u00e9\\ud83d\\ude00\\\"\"", NULL, NULL, -1, -1 },
    { "long unknown key", "{\"this_key_is_much_longer_than_any_known_key\":1,\"model\":\"m\"}",
      "m", -1, -1, BODYSCAN_NONE, NULL, NULL, NULL, -1, -1 },
    { "key prefix of known", "{\"mode\":\"a\",\"models\":\"b\",\"stream_\":1,\"max_token\":-1}",
      NULL, -1, -1, BODYSCAN_NONE, NULL, NULL, NULL, -1, -1 },
    { "nul in prompt ok", "{\"prompt\":\"a\\u0000b\",\"user\":\"\"}",
      NULL, -1, -1, BODYSCAN_COMPLETION, "\"a\\u0000b\"", "", NULL, -1, -1 },
};

static void check_valid(const struct vcase *c, const struct res *r)
{
    const struct bodyscan *s = &r->s;
    if (r->rc != 0) {
        fprintf(stderr, "  case \"%s\": rc %d: %s at %zu\n", c->name, r->rc,
                s->err_msg, s->err_offset);
        CHECK(0);
        return;
    }
    CHECK(bodyscan_complete(s));
    CHECK_EQ(s->has_model, c->model != NULL);
    if (c->model) {
        CHECK_STR(s->model, c->model);
        CHECK_EQ(s->model_len, strlen(c->model));
    }
    CHECK_EQ(s->has_user, c->user != NULL);
    if (c->user)
        CHECK_STR(s->user, c->user);
    CHECK_EQ(s->has_cache_salt, c->salt != NULL);
    if (c->salt)
        CHECK_STR(s->cache_salt, c->salt);
    CHECK_EQ(s->stream, c->stream);
    CHECK_EQ(s->include_usage, c->include_usage);
    CHECK_EQ(s->prompt_kind, c->kind);
    CHECK_EQ(s->max_tokens, c->max_tokens);
    CHECK_EQ(s->max_completion_tokens, c->mct);
    if (c->span) {
        size_t n = strlen(c->span);
        CHECK_EQ(s->prompt_end - s->prompt_start, n);
        CHECK(s->prompt_end - s->prompt_start == n &&
              !memcmp(c->body + s->prompt_start, c->span, n));
    }
    CHECK(span_ok(r, c->body));
}

TEST(valid_bodies)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        struct res r;
        scan1(&r, valid[i].body, strlen(valid[i].body));
        check_valid(&valid[i], &r);
        res_free(&r);
    }
}

/* Every split position, and byte at a time, gives the one-shot results. */
static void check_splits(const char *b, size_t len)
{
    struct res one, r;
    scan1(&one, b, len);
    for (size_t k = 0; k <= len; k++) {
        scan_cuts(&r, b, len, &k, 1);
        if (!same(&one, &r)) {
            fprintf(stderr, "  split at %zu differs: %.60s\n", k, b);
            CHECK(0);
        }
        res_free(&r);
    }
    size_t *cuts = malloc(len * sizeof(*cuts) + 1);
    for (size_t k = 0; k < len; k++)
        cuts[k] = k;
    scan_cuts(&r, b, len, cuts, (int)len);
    CHECK(same(&one, &r));
    res_free(&r);
    free(cuts);
    res_free(&one);
}

TEST(valid_split_everywhere)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        check_splits(valid[i].body, strlen(valid[i].body));
}

/* Every strict prefix of a valid body (short of its closing brace) is
 * "unexpected end of body" at its own length: no error is ever reported
 * before the byte that is wrong. */
TEST(truncations)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const char *b = valid[i].body;
        size_t close = strrchr(b, '}') - b;
        for (size_t k = 0; k <= close; k++) {
            struct res r;
            scan1(&r, b, k);
            CHECK_EQ(r.rc, -EBADMSG);
            CHECK_STR(r.s.err_msg, "unexpected end of body");
            CHECK_EQ(r.s.err_offset, k);
            res_free(&r);
        }
    }
}

/* ---- errors, with exact offsets ---- */

struct ecase {
    const char *body;
    size_t len; /* 0: strlen */
    const char *msg;
    size_t off;
};

static const struct ecase errors[] = {
    { "", 0, "unexpected end of body", 0 },
    { "   ", 0, "unexpected end of body", 3 },
    { "[1]", 0, "top-level value must be an object", 0 },
    { " \"x\"", 0, "top-level value must be an object", 1 },
    { "\xef\xbb\xbf{}", 0, "top-level value must be an object", 0 },
    { "{} x", 0, "trailing characters after the top-level object", 3 },
    { "{}{}", 0, "trailing characters after the top-level object", 2 },
    { "{\"a\" 1}", 0, "expected ':' after object key", 5 },
    { "{\"a\":1 \"b\":2}", 0, "expected ',' or '}' after object member", 7 },
    { "{\"a\":[1 2]}", 0, "expected ',' or ']' after array element", 8 },
    { "{\"a\":[1}", 0, "expected ',' or ']' after array element", 7 },
    { "{\"a\":1,}", 0, "expected a string key after ','", 7 },
    { "{\"a\":[1,]}", 0, "expected a value", 8 },
    { "{,}", 0, "expected a string key or '}'", 1 },
    { "{'a':1}", 0, "expected a string key or '}'", 1 },
    { "{\"a\":}", 0, "expected a value", 5 },
    { "{\"a\":+1}", 0, "expected a value", 5 },
    { "{\"a\":01}", 0, "leading zero in number", 6 },
    { "{\"a\":-x}", 0, "expected a digit after '-'", 6 },
    { "{\"a\":1.}", 0, "expected a digit after '.'", 7 },
    { "{\"a\":.5}", 0, "expected a value", 5 },
    { "{\"a\":1e}", 0, "expected a digit in exponent", 7 },
    { "{\"a\":1e+}", 0, "expected a digit in exponent", 8 },
    { "{\"a\":1x}", 0, "expected ',' or '}' after object member", 6 },
    { "{\"a\":tru}", 0, "invalid literal", 8 },
    { "{\"a\":nul1}", 0, "invalid literal", 8 },
    { "{\"a\":True}", 0, "expected a value", 5 },
    { "{\"a\":truex}", 0, "expected ',' or '}' after object member", 9 },
    { "{\"a\":\"x\x01\"}", 0, "control character in string", 7 },
    { "{\"a\":\"\t\"}", 0, "control character in string", 6 },
    { "{\"a\":\"\0\"}", 9, "control character in string", 6 },
    { "{\"a\":\"\\q\"}", 0, "invalid escape in string", 7 },
    { "{\"a\":\"\\u12g4\"}", 0, "invalid \\u escape in string", 10 },
    { "{\"a\":\"\\uD800\"}", 0, "unpaired surrogate in \\u escape", 12 },
    { "{\"a\":\"\\uD800x\"}", 0, "unpaired surrogate in \\u escape", 12 },
    { "{\"a\":\"\\uD800\\n\"}", 0, "unpaired surrogate in \\u escape", 13 },
    { "{\"a\":\"\\uD800\\u0041\"}", 0, "unpaired surrogate in \\u escape", 17 },
    { "{\"a\":\"\\uDC00\"}", 0, "unpaired surrogate in \\u escape", 11 },
    { "{\"a\":\"\xc0\x80\"}", 0, "invalid UTF-8 in string", 6 },     /* overlong */
    { "{\"a\":\"\xc1\xbf\"}", 0, "invalid UTF-8 in string", 6 },
    { "{\"a\":\"\xe0\x80\x80\"}", 0, "invalid UTF-8 in string", 7 }, /* overlong */
    { "{\"a\":\"\xf0\x8f\xbf\xbf\"}", 0, "invalid UTF-8 in string", 7 },
    { "{\"a\":\"\xed\xa0\x80\"}", 0, "invalid UTF-8 in string", 7 }, /* surrogate */
    { "{\"a\":\"\xf4\x90\x80\x80\"}", 0, "invalid UTF-8 in string", 7 }, /* > 10FFFF */
    { "{\"a\":\"\xf5\x80\x80\x80\"}", 0, "invalid UTF-8 in string", 6 },
    { "{\"a\":\"\x80\"}", 0, "invalid UTF-8 in string", 6 },
    { "{\"a\":\"\xc3\"}", 0, "invalid UTF-8 in string", 7 },         /* truncated */
    { "{\"a\":\"\xe2\x82\"}", 0, "invalid UTF-8 in string", 8 },
    { "{\xc3\xa9:1}", 0, "expected a string key or '}'", 1 },
    { "{\"model\":1}", 0, "\"model\" must be a string", 9 },
    { "{\"model\":[\"a\"]}", 0, "\"model\" must be a string", 9 },
    { "{\"stream\":\"yes\"}", 0, "\"stream\" must be a boolean", 10 },
    { "{\"stream\":0}", 0, "\"stream\" must be a boolean", 10 },
    { "{\"stream_options\":true}", 0, "\"stream_options\" must be an object", 18 },
    { "{\"stream_options\":{\"include_usage\":1}}", 0,
      "\"stream_options.include_usage\" must be a boolean", 35 },
    { "{\"messages\":\"hi\"}", 0, "\"messages\" must be an array", 12 },
    { "{\"messages\":null}", 0, "\"messages\" must be an array", 12 },
    { "{\"prompt\":{}}", 0, "\"prompt\" must be a string or an array", 10 },
    { "{\"user\":5}", 0, "\"user\" must be a string", 8 },
    { "{\"cache_salt\":false}", 0, "\"cache_salt\" must be a string", 14 },
    { "{\"max_tokens\":-1}", 0, "\"max_tokens\" must be a non-negative integer", 14 },
    { "{\"max_tokens\":1.5}", 0, "\"max_tokens\" must be a non-negative integer", 15 },
    { "{\"max_tokens\":1e3}", 0, "\"max_tokens\" must be a non-negative integer", 15 },
    { "{\"max_tokens\":\"5\"}", 0, "\"max_tokens\" must be a non-negative integer", 14 },
    { "{\"max_tokens\":9223372036854775808}", 0, "\"max_tokens\" out of range", 32 },
    { "{\"max_completion_tokens\":99999999999999999999}", 0,
      "\"max_completion_tokens\" out of range", 43 },
    { "{\"model\":\"a\",\"model\":\"b\"}", 0, "duplicate \"model\" key", 13 },
    { "{\"model\":\"a\",\"mod\\u0065l\":\"b\"}", 0, "duplicate \"model\" key", 13 },
    { "{\"model\":null,\"model\":\"b\"}", 0, "duplicate \"model\" key", 14 },
    { "{\"messages\":[],\"prompt\":\"x\"}", 0, "both \"messages\" and \"prompt\" present", 15 },
    { "{\"prompt\":\"x\",\"messages\":[]}", 0, "both \"messages\" and \"prompt\" present", 14 },
    { "{\"messages\":[],\"messages\":[]}", 0, "duplicate \"messages\" key", 15 },
    { "{\"prompt\":\"a\",\"prompt\":\"b\"}", 0, "duplicate \"prompt\" key", 14 },
    { "{\"stream\":true,\"stream\":true}", 0, "duplicate \"stream\" key", 15 },
    { "{\"stream_options\":{\"include_usage\":true,\"include_usage\":true}}", 0,
      "duplicate \"include_usage\" key", 40 },
    { "{\"model\":\"a\\u0000\"}", 0, "\"model\" must not contain U+0000", 16 },
    { "{\"model\":\"a\"", 0, "unexpected end of body", 12 },
    { "{\"a\":\"b", 0, "unexpected end of body", 7 },
};

TEST(error_offsets)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        const struct ecase *e = &errors[i];
        size_t len = e->len ? e->len : strlen(e->body);
        struct res r;
        scan1(&r, e->body, len);
        if (r.rc != -EBADMSG || !r.s.err_msg || strcmp(r.s.err_msg, e->msg) ||
            r.s.err_offset != e->off) {
            fprintf(stderr, "  case %zu \"%.40s\": got rc %d \"%s\" at %zu, "
                    "want \"%s\" at %zu\n", i, e->body, r.rc,
                    r.s.err_msg ? r.s.err_msg : "(none)", r.s.err_offset,
                    e->msg, e->off);
            CHECK(0);
        }
        CHECK(!bodyscan_complete(&r.s));
        res_free(&r);
        check_splits(e->body, len);
    }
}

TEST(errors_are_sticky)
{
    struct bodyscan s;
    bodyscan_init(&s, NULL, NULL);
    CHECK_EQ(bodyscan_feed(&s, "{\"a\":x", 6), -EBADMSG);
    CHECK_EQ(bodyscan_feed(&s, "}", 1), -EBADMSG);
    CHECK_EQ(bodyscan_finish(&s), -EBADMSG);
    CHECK_STR(s.err_msg, "expected a value");
    CHECK_EQ(s.err_offset, 5);
}

static char *nest(int levels, const char *inner)
{
    size_t n = strlen(inner);
    char *b = malloc(2 * (size_t)levels + n + 16);
    size_t k = 0;
    b[k++] = '{';
    memcpy(b + k, "\"a\":", 4);
    k += 4;
    for (int i = 1; i < levels; i++)
        b[k++] = '[';
    memcpy(b + k, inner, n);
    k += n;
    for (int i = 1; i < levels; i++)
        b[k++] = ']';
    b[k++] = '}';
    b[k] = '\0';
    return b;
}

TEST(depth_limit)
{
    struct res r;
    char *b = nest(64, "1");
    scan1(&r, b, strlen(b));
    CHECK_EQ(r.rc, 0);
    res_free(&r);
    free(b);
    b = nest(65, "1");
    scan1(&r, b, strlen(b));
    CHECK_EQ(r.rc, -EBADMSG);
    CHECK_STR(r.s.err_msg, "nesting deeper than 64 levels");
    CHECK_EQ(r.s.err_offset, 5 + 63); /* the 65th opener */
    res_free(&r);
    free(b);
    b = nest(64, "{}");
    scan1(&r, b, strlen(b));
    CHECK_EQ(r.rc, -EBADMSG);
    CHECK_EQ(r.s.err_offset, 5 + 63);
    res_free(&r);
    free(b);
}

TEST(string_limits)
{
    char b[1024];
    char v[300];
    memset(v, 'm', sizeof(v));
    struct res r;
    /* 255 bytes fit */
    int n = snprintf(b, sizeof(b), "{\"model\":\"%.*s\",\"user\":\"%.*s\"}",
                     255, v, 255, v);
    scan1(&r, b, (size_t)n);
    CHECK_EQ(r.rc, 0);
    CHECK_EQ(r.s.model_len, 255);
    CHECK_EQ(strlen(r.s.model), 255);
    CHECK_EQ(r.s.user_len, 255);
    res_free(&r);
    /* 256: the error points at the 256th byte */
    n = snprintf(b, sizeof(b), "{\"model\":\"%.*s\"}", 256, v);
    scan1(&r, b, (size_t)n);
    CHECK_EQ(r.rc, -EBADMSG);
    CHECK_STR(r.s.err_msg, "\"model\" too long (max 255 bytes)");
    CHECK_EQ(r.s.err_offset, 10 + 255);
    res_free(&r);
    check_splits(b, (size_t)n);
    /* an escape that overflows: error at the escape's last byte */
    n = snprintf(b, sizeof(b), "{\"cache_salt\":\"%.*s\\u00e9\"}", 254, v);
    scan1(&r, b, (size_t)n);
    CHECK_EQ(r.rc, -EBADMSG);
    CHECK_STR(r.s.err_msg, "\"cache_salt\" too long (max 255 bytes)");
    CHECK_EQ(r.s.err_offset, 15 + 254 + 5);
    res_free(&r);
    /* raw UTF-8 that overflows: error at the first byte that does not fit */
    n = snprintf(b, sizeof(b), "{\"user\":\"%.*s\xe2\x82\xac\"}", 253, v);
    scan1(&r, b, (size_t)n);
    CHECK_EQ(r.rc, -EBADMSG);
    CHECK_EQ(r.s.err_offset, 9 + 253 + 2);
    res_free(&r);
    check_splits(b, (size_t)n);
    /* long strings elsewhere are fine */
    n = snprintf(b, sizeof(b), "{\"%.*s\":\"%.*s\"}", 299, v, 299, v);
    scan1(&r, b, (size_t)n);
    CHECK_EQ(r.rc, 0);
    res_free(&r);
}

/* UTF-8 inside long strings, where the SIMD scan validates whole blocks:
 * every sequence (good or bad) at every position relative to the 16-byte
 * blocks, with ASCII or multi-byte neighbours, in prompt text (no copy) and
 * in "model" (copied). One-shot (SIMD) must agree with byte-at-a-time
 * feeding (byte-wise path), and errors must point at the bad byte. */
TEST(utf8_long_strings)
{
    static const struct { const char *seq; int bad_at; } seqs[] = {
        { "\xc3\xa9", -1 }, { "\xe2\x82\xac", -1 }, { "\xf0\x9f\x98\x80", -1 },
        { "\xe0\xa0\x80", -1 }, { "\xed\x9f\xbf", -1 }, { "\xf4\x8f\xbf\xbf", -1 },
        { "\xee\x80\x80", -1 }, { "\xf0\x90\x80\x80", -1 }, { "\xdf\xbf", -1 },
        { "\xc0\x80", 0 }, { "\xc1\xbf", 0 }, { "\xe0\x9f\xbf", 1 },
        { "\xed\xa0\x80", 1 }, { "\xed\xbf\xbf", 1 }, { "\xf0\x8f\xbf\xbf", 1 },
        { "\xf4\x90\x80\x80", 1 }, { "\xf5\x80\x80\x80", 0 }, { "\xff", 0 },
        { "\x80", 0 }, { "\xbf\x80", 0 }, { "\xc3", 1 }, { "\xe2\x82", 2 },
        { "\xf0\x9f\x98", 3 }, { "\xc3\xc3\xa9", 1 }, { "\xe2\x28\xa1", 1 },
        { "\xc3\x01", 1 }, { "\xc3\\n", 1 },
    };
    static const char *const pads[] = { "abcdefgh", "\xc3\xa9\xc3\xa9",
                                        "\xe4\xbd\xa0\xe5\xa5\xbd", "a\\nb" };
    char b[512];
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++)
        for (int key = 0; key < 2; key++)
            for (size_t pi = 0; pi < 4; pi++)
                for (int k = 0; k < 40; k++) {
                    const char *head = key ? "{\"model\":\"" : "{\"prompt\":\"";
                    size_t n = strlen(head);
                    memcpy(b, head, n);
                    for (int j = 0; j < k; j++)
                        b[n++] = "0123456789"[j % 10];
                    size_t at = n;
                    n += (size_t)snprintf(b + n, sizeof(b) - n, "%s%s%s%s%s\"}",
                                          seqs[i].seq, pads[pi], pads[pi],
                                          pads[pi], pads[pi]);
                    struct res r;
                    scan1(&r, b, n);
                    if (seqs[i].bad_at < 0) {
                        CHECK_EQ(r.rc, 0);
                    } else {
                        CHECK_EQ(r.rc, -EBADMSG);
                        CHECK_EQ(r.s.err_offset, at + (size_t)seqs[i].bad_at);
                    }
                    if (k % 5 == 0 || seqs[i].bad_at >= 0) {
                        size_t cuts[512];
                        for (size_t c = 0; c < n; c++)
                            cuts[c] = c;
                        struct res r1;
                        scan_cuts(&r1, b, n, cuts, (int)n);
                        CHECK(same(&r, &r1));
                        res_free(&r1);
                    }
                    res_free(&r);
                }
}

/* The prompt callback sees exactly the value span, however the body is
 * split, and nothing outside it. */
TEST(prompt_stream)
{
    const char *b = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":"
                    "\"You are \\\"helpful\\\" \xc3\xa9\"},{\"role\":\"user\","
                    "\"content\":\"q\"}],\"stream\":true}";
    size_t len = strlen(b);
    for (size_t a = 0; a <= len; a += 3)
        for (size_t c = a; c <= len; c += 5) {
            size_t cuts[2] = { a, c };
            struct res r;
            scan_cuts(&r, b, len, cuts, 2);
            CHECK_EQ(r.rc, 0);
            CHECK(span_ok(&r, b));
            CHECK_EQ(b[r.s.prompt_start], '[');
            CHECK_EQ(b[r.s.prompt_end - 1], ']');
            res_free(&r);
        }
}

/* ---- cross-check with cJSON ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static const char interesting[] = "{}[]\",:\\ u0123456789eE+-.tfnrl\x01\x7f"
                                  "\x80\xc3\xa9\xed\xf0\xf4";

static size_t mutate(char *b, size_t len, size_t cap)
{
    int ops = 1 + (int)(rnd() % 3);
    for (int i = 0; i < ops; i++) {
        size_t at = len ? rnd() % len : 0;
        char ch = interesting[rnd() % (sizeof(interesting) - 1)];
        switch (rnd() % 4) {
        case 0: /* replace */
            if (len)
                b[at] = ch;
            break;
        case 1: /* insert */
            if (len + 1 < cap) {
                memmove(b + at + 1, b + at, len - at);
                b[at] = ch;
                len++;
            }
            break;
        case 2: /* delete */
            if (len) {
                memmove(b + at, b + at + 1, len - at - 1);
                len--;
            }
            break;
        default: /* duplicate a slice */
            if (len) {
                size_t from = rnd() % len, n = 1 + rnd() % 8;
                if (from + n > len)
                    n = len - from;
                if (len + n < cap) {
                    memmove(b + at + n, b + at, len - at);
                    memmove(b + at, b + (from >= at ? from + n : from), n);
                    len += n;
                }
            }
        }
    }
    return len;
}

/* Valid per bodyscan => cJSON (more lenient) parses it, and agrees on the
 * extracted strings. */
static int cross_check(const char *b, size_t len, int *valid)
{
    struct res r;
    scan1(&r, b, len);
    *valid = r.rc == 0;
    int ok = 1;
    if (r.rc == 0) {
        char *z = malloc(len + 1);
        memcpy(z, b, len);
        z[len] = '\0';
        /* length includes the NUL: with require_null_terminated, cJSON
         * insists on seeing it */
        cJSON *j = cJSON_ParseWithLengthOpts(z, len + 1, NULL, 1);
        if (!j) {
            fprintf(stderr, "  cJSON rejects what bodyscan accepted: %.*s\n",
                    (int)len, b);
            ok = 0;
        } else {
            cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "model");
            if (r.s.has_model)
                ok &= cJSON_IsString(m) && !strcmp(m->valuestring, r.s.model);
            cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "stream");
            if (r.s.stream >= 0)
                ok &= cJSON_IsBool(st) && cJSON_IsTrue(st) == r.s.stream;
            if (!ok)
                fprintf(stderr, "  cJSON disagrees on fields: %.*s\n",
                        (int)len, b);
            cJSON_Delete(j);
        }
        free(z);
        ok &= span_ok(&r, b);
    }
    res_free(&r);
    return ok;
}

TEST(cjson_cross_check)
{
    int nvalid = 0, total = 0;
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        int v;
        CHECK(cross_check(valid[i].body, strlen(valid[i].body), &v));
        CHECK(v);
    }
    char buf[1024];
    for (int iter = 0; iter < 200000; iter++) {
        const char *seed = valid[rnd() % (sizeof(valid) / sizeof(valid[0]))].body;
        size_t len = strlen(seed);
        memcpy(buf, seed, len);
        len = mutate(buf, len, sizeof(buf));
        int v;
        if (!cross_check(buf, len, &v)) {
            CHECK(0);
            break;
        }
        nvalid += v;
        total++;
    }
    printf("     cjson cross-check: %d of %d mutants valid\n", nvalid, total);
    CHECK(nvalid > 1000); /* the check must not be vacuous */
}

int main(void)
{
    RUN(valid_bodies);
    RUN(valid_split_everywhere);
    RUN(truncations);
    RUN(error_offsets);
    RUN(errors_are_sticky);
    RUN(depth_limit);
    RUN(string_limits);
    RUN(utf8_long_strings);
    RUN(prompt_stream);
    RUN(cjson_cross_check);
    return harness_done();
}
