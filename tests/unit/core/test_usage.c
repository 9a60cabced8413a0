/* Unit tests for user/core/usage.c: a model server's "usage" read from a
 * JSON answer and from an SSE stream, split at every byte position and fed
 * a byte at a time (same result); missing and malformed usage; "usage"
 * inside generated text or a nested object; huge numbers; SSE framing
 * (CRLF, several data lines, comments, [DONE], a last event without its
 * blank line). */
#include "harness.h"
#include "core/usage.h"

#include <stdio.h>
#include <string.h>

/* vLLM's (and kvgate-podsim's) non-streamed chat answer */
static const char BODY[] =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"reasoning_content\":null,"
    "\"content\":\"the \\\"usage\\\": {\\\"prompt_tokens\\\": 1} is text\",\"tool_calls\":[]},"
    "\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null}],"
    "\"usage\":{\"prompt_tokens\":37,\"total_tokens\":45,\"completion_tokens\":8,"
    "\"prompt_tokens_details\":{\"cached_tokens\":32}},\"prompt_logprobs\":null}\n";

/* a stream with include_usage: role chunk, content, the usage-only chunk */
static const char STREAM[] =
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    ": a comment\n\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"usage\"},"
    "\"finish_reason\":null}]}\r\n\r\n"
    "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\\\"usage\\\":{}\"},"
    "\"finish_reason\":\"length\"}]}\n\n"
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":"
    "{\"prompt_tokens\":100,\"total_tokens\":103,\"completion_tokens\":3,"
    "\"prompt_tokens_details\":{\"cached_tokens\":96}}}\n\n"
    "data: [DONE]\n\n";

static int json_whole(const char *d, size_t n, struct usage *u, int *only)
{
    struct usage_json j;
    usage_json_init(&j);
    usage_json_feed(&j, d, n);
    return usage_json_result(&j, u, only);
}

static int json(const char *d, struct usage *u)
{
    return json_whole(d, strlen(d), u, NULL);
}

static int same(const struct usage *a, const struct usage *b)
{
    return a->prompt == b->prompt && a->cached == b->cached && a->completion == b->completion &&
           a->has_prompt == b->has_prompt && a->has_cached == b->has_cached &&
           a->has_completion == b->has_completion;
}

TEST(json_body_at_every_split)
{
    size_t n = strlen(BODY);
    struct usage want;
    CHECK_EQ(json_whole(BODY, n, &want, NULL), 1);
    CHECK_EQ(want.prompt, 37);
    CHECK_EQ(want.completion, 8);
    CHECK_EQ(want.cached, 32);
    CHECK(want.has_prompt && want.has_completion && want.has_cached);
    for (size_t cut = 0; cut <= n; cut++) {
        struct usage_json j;
        struct usage u;
        usage_json_init(&j);
        usage_json_feed(&j, BODY, cut);
        usage_json_feed(&j, BODY + cut, n - cut);
        CHECK_EQ(usage_json_result(&j, &u, NULL), 1);
        CHECK(same(&u, &want));
    }
    struct usage_json j;
    struct usage u;
    usage_json_init(&j);
    for (size_t i = 0; i < n; i++)
        usage_json_feed(&j, BODY + i, 1);
    CHECK_EQ(usage_json_result(&j, &u, NULL), 1);
    CHECK(same(&u, &want));
    /* not finished: no result */
    CHECK_EQ(json_whole(BODY, n - 3, &u, NULL), 0);
}

TEST(sse_stream_at_every_split)
{
    size_t n = strlen(STREAM);
    for (size_t cut = 0; cut <= n; cut++) {
        struct usage_sse s;
        struct usage u;
        usage_sse_init(&s);
        usage_sse_feed(&s, STREAM, cut);
        usage_sse_feed(&s, STREAM + cut, n - cut);
        usage_sse_finish(&s);
        CHECK_EQ(usage_sse_result(&s, &u), 1);
        CHECK_EQ(u.prompt, 100);
        CHECK_EQ(u.completion, 3);
        CHECK_EQ(u.cached, 96);
        CHECK_EQ(s.events, 1);
        CHECK_EQ(s.last_usage_only, 1);
    }
    struct usage_sse s;
    struct usage u;
    usage_sse_init(&s);
    for (size_t i = 0; i < n; i++)
        usage_sse_feed(&s, STREAM + i, 1);
    CHECK_EQ(usage_sse_result(&s, &u), 1); /* complete before finish */
    CHECK_EQ(u.prompt, 100);
    /* three pieces at every pair of cuts, over the last two events */
    const char *tail = strstr(STREAM, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[]");
    size_t tn = strlen(tail);
    for (size_t a = 0; a <= tn; a += 3)
        for (size_t b = a; b <= tn; b += 5) {
            usage_sse_init(&s);
            usage_sse_feed(&s, tail, a);
            usage_sse_feed(&s, tail + a, b - a);
            usage_sse_feed(&s, tail + b, tn - b);
            CHECK_EQ(usage_sse_result(&s, &u), 1);
            CHECK_EQ(u.completion, 3);
        }
}

TEST(sse_framing)
{
    struct usage_sse s;
    struct usage u;
    /* the object over two data lines, CRLF endings, a comment in the event */
    const char *two = "data: {\"choices\":[],\r\n: note\r\ndata:\"usage\":{\"prompt_tokens\":5,"
                      "\"completion_tokens\":2}}\r\n\r\n";
    usage_sse_init(&s);
    usage_sse_feed(&s, two, strlen(two));
    CHECK_EQ(usage_sse_result(&s, &u), 1);
    CHECK_EQ(u.prompt, 5);
    CHECK_EQ(u.completion, 2);
    CHECK_EQ(u.has_cached, 0);
    CHECK_EQ(s.last_usage_only, 1);
    /* continuous usage: the last event wins */
    const char *cont = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n"
                       "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n";
    usage_sse_init(&s);
    usage_sse_feed(&s, cont, strlen(cont));
    CHECK_EQ(usage_sse_result(&s, &u), 1);
    CHECK_EQ(u.completion, 2);
    CHECK_EQ(s.events, 2);
    CHECK_EQ(s.last_usage_only, 0);
    /* a last event without its blank line counts at finish only */
    const char *open = "data: {\"usage\":{\"prompt_tokens\":9}}";
    usage_sse_init(&s);
    usage_sse_feed(&s, open, strlen(open));
    CHECK_EQ(usage_sse_result(&s, &u), 0);
    usage_sse_finish(&s);
    CHECK_EQ(usage_sse_result(&s, &u), 1);
    CHECK_EQ(u.prompt, 9);
    /* other fields named like data are not data */
    const char *other = "database: {\"usage\":{\"prompt_tokens\":9}}\n\nid: 1\n\n";
    usage_sse_init(&s);
    usage_sse_feed(&s, other, strlen(other));
    usage_sse_finish(&s);
    CHECK_EQ(usage_sse_result(&s, &u), 0);
    /* one event as relay.c sees it */
    int only = 0;
    CHECK_EQ(usage_sse_event("data: {\"choices\":[],\"usage\":{\"completion_tokens\":4}}", 52,
                             &u, &only), 1);
    CHECK_EQ(u.completion, 4);
    CHECK_EQ(only, 1);
    CHECK_EQ(usage_sse_event("data: [DONE]", 12, &u, &only), 0);
    CHECK_EQ(only, 0);
}

TEST(missing_usage)
{
    struct usage u;
    CHECK_EQ(json("{\"choices\":[{\"text\":\"x\"}]}", &u), 0);
    CHECK_EQ(json("{\"usage\":null}", &u), 0);
    CHECK_EQ(json("{}", &u), 0);
    /* an empty usage object is a usage with nothing in it */
    CHECK_EQ(json("{\"usage\":{}}", &u), 1);
    CHECK(!u.has_prompt && !u.has_completion && !u.has_cached);
    /* details null: cached is absent */
    CHECK_EQ(json("{\"usage\":{\"prompt_tokens\":3,\"prompt_tokens_details\":null,"
                  "\"completion_tokens\":null}}", &u), 1);
    CHECK_EQ(u.prompt, 3);
    CHECK(!u.has_cached && !u.has_completion);
    const char *no = "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n";
    struct usage_sse s;
    usage_sse_init(&s);
    usage_sse_feed(&s, no, strlen(no));
    usage_sse_finish(&s);
    CHECK_EQ(usage_sse_result(&s, &u), 0);
}

TEST(malformed_usage_is_void)
{
    static const char *const bad[] = {
        "{\"usage\":{\"prompt_tokens\":\"12\"}}",
        "{\"usage\":{\"prompt_tokens\":-1}}",
        "{\"usage\":{\"prompt_tokens\":1.5}}",
        "{\"usage\":{\"prompt_tokens\":1e3}}",
        "{\"usage\":{\"prompt_tokens\":true}}",
        "{\"usage\":{\"prompt_tokens\":{}}}",
        "{\"usage\":{\"prompt_tokens\":[1]}}",
        "{\"usage\":{\"prompt_tokens\":1,\"prompt_tokens\":2}}",
        "{\"usage\":{\"prompt_tokens_details\":{\"cached_tokens\":\"x\"}}}",
        "{\"usage\":{\"prompt_tokens_details\":5}}",
        "{\"usage\":[1,2]}",
        "{\"usage\":\"lots\"}",
        "{\"usage\":7}",
        "{\"usage\":{\"prompt_tokens\":1},\"usage\":{\"prompt_tokens\":2}}",
        "{\"usage\":null,\"usage\":{\"prompt_tokens\":2}}",
        /* the document itself broken */
        "{\"usage\":{\"prompt_tokens\":1}",
        "{\"usage\":{\"prompt_tokens\":1}}}",
        "{\"usage\":{\"prompt_tokens\":1}} x",
        "{\"usage\":{\"prompt_tokens\":1},}",
        "{\"usage\" {\"prompt_tokens\":1}}",
        "{\"usage\":{\"prompt_tokens\":1 2}}",
        "{\"a\":tru,\"usage\":{\"prompt_tokens\":1}}",
        "{\"a\":\"x\ny\",\"usage\":{\"prompt_tokens\":1}}",
        "[{\"usage\":{\"prompt_tokens\":1}}]",
        "\"usage\"",
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct usage u;
        if (json(bad[i], &u) != 0) {
            CHECK(!"void");
            fprintf(stderr, "    accepted: %s\n", bad[i]);
        }
    }
    /* nesting past the limit */
    char deep[200];
    size_t k = 0;
    deep[k++] = '{';
    deep[k++] = '"';
    deep[k++] = 'a';
    deep[k++] = '"';
    deep[k++] = ':';
    for (int i = 0; i < USAGE_MAX_DEPTH; i++)
        deep[k++] = '[';
    for (int i = 0; i < USAGE_MAX_DEPTH; i++)
        deep[k++] = ']';
    deep[k++] = '}';
    struct usage u;
    CHECK_EQ(json_whole(deep, k, &u, NULL), 0);
    /* at the limit it is fine */
    const char *ok = "{\"a\":[[[]]],\"usage\":{\"prompt_tokens\":1}}";
    CHECK_EQ(json(ok, &u), 1);
}

TEST(usage_inside_strings_and_objects_is_nothing)
{
    struct usage u;
    /* generated text that looks like usage */
    CHECK_EQ(json("{\"choices\":[{\"message\":{\"content\":\"{\\\"usage\\\":{\\\"prompt_tokens\\\":5}}\"}}]}", &u), 0);
    CHECK_EQ(json("{\"text\":\"\\\"usage\\\":{\\\"prompt_tokens\\\":5}\",\"usage\":{\"prompt_tokens\":2}}", &u), 1);
    CHECK_EQ(u.prompt, 2);
    /* a nested "usage" key, and usage's own keys outside it */
    CHECK_EQ(json("{\"x\":{\"usage\":{\"prompt_tokens\":5}},\"prompt_tokens\":4}", &u), 0);
    CHECK_EQ(json("{\"x\":[{\"usage\":{\"prompt_tokens\":5}}],\"usage\":{\"completion_tokens\":1}}", &u), 1);
    CHECK(!u.has_prompt);
    CHECK_EQ(u.completion, 1);
    /* cached_tokens outside prompt_tokens_details, and details outside usage */
    CHECK_EQ(json("{\"usage\":{\"cached_tokens\":5,\"x\":{\"prompt_tokens\":9}},"
                  "\"prompt_tokens_details\":{\"cached_tokens\":6}}", &u), 1);
    CHECK(!u.has_cached && !u.has_prompt);
    /* a key spelled with an escape is not matched */
    CHECK_EQ(json("{\"usag\\u0065\":{\"prompt_tokens\":5}}", &u), 0);
    /* a string value of the key name */
    CHECK_EQ(json("{\"a\":\"usage\",\"b\":{\"usage\":1}}", &u), 0);
}

TEST(huge_numbers)
{
    struct usage u;
    char b[160];
    snprintf(b, sizeof(b), "{\"usage\":{\"prompt_tokens\":%llu}}", USAGE_MAX_TOKENS);
    CHECK_EQ(json(b, &u), 1);
    CHECK_EQ(u.prompt, (long long)USAGE_MAX_TOKENS);
    snprintf(b, sizeof(b), "{\"usage\":{\"prompt_tokens\":%llu}}", USAGE_MAX_TOKENS + 1);
    CHECK_EQ(json(b, &u), 0);
    CHECK_EQ(json("{\"usage\":{\"completion_tokens\":18446744073709551616}}", &u), 0);
    CHECK_EQ(json("{\"usage\":{\"completion_tokens\":"
                  "99999999999999999999999999999999999999999999999999999999}}", &u), 0);
    /* huge numbers elsewhere are nothing to us */
    CHECK_EQ(json("{\"created\":99999999999999999999999999,\"usage\":{\"prompt_tokens\":1}}", &u), 1);
    CHECK_EQ(json("{\"usage\":{\"total_tokens\":1e999,\"prompt_tokens\":0}}", &u), 1);
    CHECK_EQ(u.prompt, 0);
    CHECK(u.has_prompt);
}

/* The string scan goes eight bytes at a time: a quote, a backslash or a
 * control byte at every offset of a long string value (and of a key) is
 * still found, whatever the split. */
TEST(string_ends_found_at_every_offset)
{
    static const char *const END[] = {"\\\"", "\x01", "\xc3\xa9\xff", "\\n"};
    char doc[512], val[128];
    for (int k = 0; k < 4; k++)
        for (int at = 0; at < 40; at++) {
            memset(val, 'a', sizeof(val));
            snprintf(val + at, sizeof(val) - (size_t)at, "%s%s", END[k], "bcdefghijklmnopq");
            snprintf(doc, sizeof(doc), "{\"choices\":[{\"text\":\"%s\"}],\"usage\":{"
                                       "\"prompt_tokens\":%d,\"completion_tokens\":2}}", val, at);
            size_t n = strlen(doc);
            for (size_t cut = 0; cut <= n; cut += 7) {
                struct usage_json j;
                struct usage u;
                usage_json_init(&j);
                usage_json_feed(&j, doc, cut);
                usage_json_feed(&j, doc + cut, n - cut);
                int ok = usage_json_result(&j, &u, NULL);
                CHECK_EQ(ok, k == 1 ? 0 : 1); /* a raw control byte voids the document */
                if (ok)
                    CHECK_EQ(u.prompt, at);
            }
        }
    /* a key longer than a word, split anywhere */
    const char *d = "{\"usage\":{\"prompt_tokens_details\":{\"cached_tokens\":5},"
                    "\"prompt_tokens\":9,\"completion_tokens\":1}}";
    struct usage u;
    CHECK_EQ(json_whole(d, strlen(d), &u, NULL), 1);
    CHECK_EQ(u.cached, 5);
}

/* usage_key_in says what memmem says, at every position and length */
TEST(usage_key_in_is_memmem)
{
    char b[64];
    static const char *const FILL[] = {"xxxxxxxx", "gggggggg", "\"usage\"g", "usag\"gee"};
    for (int f = 0; f < 4; f++)
        for (int at = -1; at < 40; at++)
            for (size_t n = 0; n <= 48; n += 3) {
                for (size_t i = 0; i < sizeof(b); i++)
                    b[i] = FILL[f][i % 8];
                if (at >= 0)
                    memcpy(b + at, "\"usage\"", 7);
                int want = memmem(b, n, "\"usage\"", 7) != NULL;
                CHECK_EQ(usage_key_in(b, n), want);
            }
    CHECK_EQ(usage_key_in("\"usage\"", 7), 1);
    CHECK_EQ(usage_key_in("\"usage", 6), 0);
    CHECK_EQ(usage_key_in("\\\"usage\\\"", 9), 0);
}

int main(void)
{
    RUN(json_body_at_every_split);
    RUN(sse_stream_at_every_split);
    RUN(sse_framing);
    RUN(missing_usage);
    RUN(malformed_usage_is_void);
    RUN(usage_inside_strings_and_objects_is_nothing);
    RUN(huge_numbers);
    RUN(string_ends_found_at_every_offset);
    RUN(usage_key_in_is_memmem);
    return harness_done();
}
