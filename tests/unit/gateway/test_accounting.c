/* Unit tests for user/gateway/accounting.c: the workload class (header,
 * rules, default), the request_usage rewrite (every shape of
 * stream_options, checked by scanning the result again), and an answer's
 * tokens (reported in a JSON body or an SSE event, estimated, the
 * usage-only event dropped only when asked). */
#include "gateway/accounting.h"

#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "core/bodyscan.h"
#include "gateway/config.h"
#include "gateway/gateway.h"
#include "harness.h"

static struct gw_request R;

/* Scans body into R as gw_scan_finish would; 0 or -1. */
static int scan(const char *body)
{
    struct bodyscan bs;
    memset(&R, 0, sizeof(R));
    bodyscan_init(&bs, NULL, NULL);
    if (bodyscan_feed(&bs, body, strlen(body)) || bodyscan_finish(&bs))
        return -1;
    snprintf(R.model, sizeof(R.model), "%s", bs.model);
    R.stream = bs.stream == 1;
    R.include_usage = bs.include_usage;
    R.so_seen = bs.so_seen;
    R.iu_seen = bs.iu_seen;
    R.so_start = bs.so_start;
    R.iu_start = bs.iu_start;
    return 0;
}

/* rewrite(in) -> out (static buffer) or NULL when left alone */
static const char *rewrite(const char *in)
{
    static char out[512];
    if (scan(in))
        return "(input does not scan)";
    struct sbuf b;
    sbuf_init(&b);
    int rc = acct_request_rewrite(&R, in, strlen(in), &b);
    if (rc != 1) {
        sbuf_free(&b);
        return NULL;
    }
    snprintf(out, sizeof(out), "%.*s", (int)b.len, b.data);
    sbuf_free(&b);
    return out;
}

TEST(rewrite_asks_for_usage)
{
    static const struct { const char *in, *out; } T[] = {
        { "{\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}",
          "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}" },
        { "  \n{ \"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}",
          "  \n{\"stream_options\":{\"include_usage\":true}, \"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}" },
        { "{\"model\":\"m\",\"stream\":true,\"stream_options\":null,\"prompt\":\"x\"}",
          "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},\"prompt\":\"x\"}" },
        { "{\"model\":\"m\",\"stream\":true,\"stream_options\":{ },\"prompt\":\"x\"}",
          "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true },\"prompt\":\"x\"}" },
        { "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"continuous_usage_stats\":false},\"prompt\":\"x\"}",
          "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true,\"continuous_usage_stats\":false},\"prompt\":\"x\"}" },
        { "{\"stream_options\":{\"include_usage\":false},\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}",
          "{\"stream_options\":{\"include_usage\":true },\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}" },
        { "{\"stream_options\":{\"a\":1,\"include_usage\":null},\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}",
          "{\"stream_options\":{\"a\":1,\"include_usage\":true},\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}" },
        /* left alone: the client asked, or no stream */
        { "{\"stream_options\":{\"include_usage\":true},\"model\":\"m\",\"stream\":true,\"prompt\":\"x\"}", NULL },
        { "{\"model\":\"m\",\"stream\":false,\"prompt\":\"x\"}", NULL },
        { "{\"model\":\"m\",\"prompt\":\"x\"}", NULL },
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        const char *got = rewrite(T[i].in);
        if (!T[i].out) {
            CHECK(got == NULL);
            continue;
        }
        CHECK_STR(got, T[i].out);
        /* the result is valid and asks for usage */
        if (got) {
            char copy[512];
            snprintf(copy, sizeof(copy), "%s", got);
            CHECK_EQ(scan(copy), 0);
            CHECK_EQ(R.include_usage, 1);
        }
    }
}

TEST(workload_class)
{
    static struct gw_config c;
    gw_config_defaults(&c);
    const char *cfg = "{\"classes\":[{\"class\":\"batch\",\"path\":\"/v1/completions\"},"
                      "{\"class\":\"tuned\",\"model\":\"lora-a\"},"
                      "{\"class\":\"both\",\"model\":\"m2\",\"path\":\"/v1/chat/completions\"}]}";
    char err[256];
    CHECK_EQ(gw_config_parse(cfg, strlen(cfg), &c, err, sizeof(err)), 0);
    CHECK_EQ(c.nclasses, 3);
    struct gw_request *r = calloc(1, sizeof(*r));
    const char *p = "/v1/completions?x=1";
    acct_class(&c, r, p, strlen(p));
    CHECK_STR(r->wclass, "batch");
    memset(r, 0, sizeof(*r));
    strcpy(r->model, "lora-a");
    p = "/v1/chat/completions";
    acct_class(&c, r, p, strlen(p));
    CHECK_STR(r->wclass, "tuned");
    memset(r, 0, sizeof(*r));
    strcpy(r->model, "m2");
    acct_class(&c, r, p, strlen(p));
    CHECK_STR(r->wclass, "both");
    memset(r, 0, sizeof(*r));
    strcpy(r->model, "m3");
    acct_class(&c, r, p, strlen(p));
    CHECK_STR(r->wclass, "default");
    strcpy(r->wclass, "from-header"); /* a header's class stays */
    acct_class(&c, r, "/v1/completions", 15);
    CHECK_STR(r->wclass, "from-header");
    free(r);
    /* errors name the rule */
    static const char *const bad[] = {
        "{\"classes\":[{\"model\":\"m\"}]}",
        "{\"classes\":[{\"class\":\"x\"}]}",
        "{\"classes\":[{\"class\":\"x\",\"path\":\"v1\"}]}",
        "{\"classes\":[{\"class\":\"a b\\\"\",\"path\":\"/v1\"}]}",
        "{\"classes\":[{\"class\":\"x\",\"path\":\"/v1\",\"color\":1}]}",
        "{\"classes\":{}}",
        "{\"accounting\":{\"request_usage\":1}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_EQ(gw_config_parse(bad[i], strlen(bad[i]), &c, err, sizeof(err)), -1);
        CHECK(strstr(err, i < 5 ? "classes[0]" : i == 5 ? "classes" : "accounting.request_usage"));
    }
    const char *ok = "{\"accounting\":{\"request_usage\":true}}";
    CHECK_EQ(gw_config_parse(ok, strlen(ok), &c, err, sizeof(err)), 0);
    CHECK_EQ(c.request_usage, 1);
    /* both wait for a restart, and a reload says so */
    static struct gw_config a, b;
    gw_config_defaults(&a);
    const char *nb = "{\"accounting\":{\"request_usage\":true},"
                     "\"classes\":[{\"class\":\"x\",\"path\":\"/v1/completions\"}]}";
    CHECK_EQ(gw_config_parse(nb, strlen(nb), &b, err, sizeof(err)), 0);
    char keys[256];
    CHECK_EQ(gw_config_restart_keys(&a, &b, keys, sizeof(keys)), 2);
    CHECK_STR(keys, "accounting.request_usage, classes");
    CHECK_EQ(gw_config_restart_keys(&b, &b, keys, sizeof(keys)), 0);
}

TEST(answer_tokens)
{
    struct acct_answer a;
    struct gw_request *r = calloc(1, sizeof(*r));
    /* a JSON body in pieces */
    const char *body = "{\"choices\":[],\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":3,"
                       "\"prompt_tokens_details\":{\"cached_tokens\":8}}}";
    acct_answer_init(&a);
    acct_answer_head(&a, 200, 0, 0);
    for (size_t i = 0; i < strlen(body); i += 7)
        acct_answer_body(&a, body + i, strlen(body) - i < 7 ? strlen(body) - i : 7);
    acct_finish(&a, r);
    CHECK_EQ(r->tokens.src, GW_USAGE_REPORTED);
    CHECK_EQ(r->tokens.prompt, 11);
    CHECK_EQ(r->tokens.cached, 8);
    CHECK_EQ(r->tokens.completion, 3);
    /* not 2xx: nothing */
    acct_answer_head(&a, 400, 0, 0);
    acct_answer_body(&a, body, strlen(body));
    acct_finish(&a, r);
    CHECK_EQ(r->tokens.src, GW_USAGE_NONE);
    /* a stream without usage: estimated */
    r->prompt_tokens = 40;
    r->content_events = 6;
    acct_answer_head(&a, 200, 1, 0);
    CHECK_EQ(acct_answer_event(&a, "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\"\"}}]}", 51), 0);
    acct_finish(&a, r);
    CHECK_EQ(r->tokens.src, GW_USAGE_ESTIMATED);
    CHECK_EQ(r->tokens.prompt, 40);
    CHECK_EQ(r->tokens.cached, 0);
    CHECK_EQ(r->tokens.completion, 6);
    /* the usage-only event: read, dropped only with strip */
    const char *ev = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":6}}";
    acct_answer_head(&a, 200, 1, 0);
    CHECK_EQ(acct_answer_event(&a, ev, strlen(ev)), 0);
    acct_finish(&a, r);
    CHECK_EQ(r->tokens.src, GW_USAGE_REPORTED);
    CHECK_EQ(r->tokens.prompt, 5);
    acct_answer_head(&a, 200, 1, 1);
    CHECK_EQ(acct_answer_event(&a, ev, strlen(ev)), 1);
    /* continuous usage (choices not empty) is never dropped */
    const char *cont = "data: {\"choices\":[{\"delta\":{}}],\"usage\":{\"completion_tokens\":6}}";
    CHECK_EQ(acct_answer_event(&a, cont, strlen(cont)), 0);
    free(r);
}

int main(void)
{
    RUN(rewrite_asks_for_usage);
    RUN(workload_class);
    RUN(answer_tokens);
    return harness_done();
}
