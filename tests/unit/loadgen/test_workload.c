/* Unit tests for bench/loadgen/workload.c, prompt.c and ideal.c: the ideal
 * prefix hit rate on hand-computed workloads, deterministic generation,
 * Mooncake trace synthesis, multi-turn history. */
#include "harness.h"

#include <stdlib.h>
#include <unistd.h>

#include "../../../bench/loadgen/ideal.c"
#include "../../../bench/loadgen/prompt.c"
#include "../../../bench/loadgen/schedule.c"
#include "../../../bench/loadgen/workload.c"

static struct lg_wl_spec base_spec(enum lg_wl_kind kind)
{
    struct lg_wl_spec s = {
        .kind = kind, .seed = 1, .groups = 2, .prompts_per_group = 3, .system_len = 100,
        .question_len = 10, .output_len = 8, .prompt_len = 100, .sessions = 3, .turns = 3,
        .think_ms = 0, .hot_share = 0.5, .skew = 1, .trace_speedup = 1,
        .sched = { .kind = LG_ARR_POISSON, .rate = 10, .burstiness = 1, .seed = 1 },
    };
    return s;
}

TEST(ideal_two_groups_three_prompts_exact)
{
    /* Rendered prompt: "<|begin_of_text|>" (17)
     *   + "<|start_header_id|>system<|end_header_id|>\n\n" (44) + 400 + "<|eot_id|>" (10)
     *   + "<|start_header_id|>user<|end_header_id|>\n\n" (42) + 40 + 10
     *   + "<|start_header_id|>assistant<|end_header_id|>\n\n" (47)
     * = 610 bytes = 153 tokens. Within a group, requests share 17+454+42 =
     * 513 bytes (the questions differ from their first byte), i.e. 8 full
     * 64-byte blocks = 128 tokens (cap floor(152/16)*16 = 144 does not
     * bite). The first of each group hits nothing: 4 x 128 of 6 x 153. */
    struct lg_wl_spec s = base_spec(LG_WL_SHARED_PREFIX);
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.n, 6);
    int per_group[2] = { 0, 0 };
    for (size_t i = 0; i < w.n; i++)
        per_group[w.items[i].a]++;
    CHECK(per_group[0] == 3 && per_group[1] == 3);
    uint64_t hit = 0, prompt = 0;
    double rate = lg_wl_ideal(&w, &hit, &prompt);
    CHECK_EQ(prompt, 918);
    CHECK_EQ(hit, 512);
    CHECK_NEAR(rate, 512.0 / 918.0, 1e-12);
    lg_wl_free(&w);
}

TEST(ideal_cap_and_adapter_key)
{
    struct lg_ideal d;
    lg_ideal_init(&d);
    char p[256];
    memset(p, 'x', sizeof(p)); /* exactly 64 tokens = 4 blocks */
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 0);
    /* all 4 blocks match, but vLLM computes the last token: cap 48 */
    CHECK_EQ(lg_ideal_add(&d, "m", p, 256), 48);
    /* the same text for another adapter shares nothing */
    CHECK_EQ(lg_ideal_add(&d, "lora-a", p, 256), 0);
    /* 100 tokens with the same first 64: the 4 shared blocks count */
    char q[400];
    memset(q, 'x', sizeof(q));
    q[300] = 'y';
    CHECK_EQ(lg_ideal_add(&d, "m", q, 400), 64);
    /* a prefix shorter than a block shares nothing */
    char r[400];
    memset(r, 'z', sizeof(r));
    memcpy(r, p, 60);
    CHECK_EQ(lg_ideal_add(&d, "m", r, 400), 0);
    CHECK_EQ(d.prompt_tokens, 64 * 3 + 100 * 2);
    CHECK_EQ(d.hit_tokens, 48 + 64);
    lg_ideal_free(&d);
}

TEST(no_sharing_ideal_is_zero)
{
    struct lg_wl_spec s = base_spec(LG_WL_NO_SHARING);
    s.requests = 500;
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    uint64_t hit = 1, prompt = 0;
    CHECK_NEAR(lg_wl_ideal(&w, &hit, &prompt), 0, 1e-12);
    CHECK_EQ(hit, 0);
    CHECK_EQ(prompt, 500 * 129); /* 17 + 42 + 400 + 10 + 47 = 516 bytes = 129 tokens */
    lg_wl_free(&w);
}

/* All bodies of a workload, concatenated. */
static void all_bodies(struct lg_workload *w, struct sbuf *out)
{
    struct lg_wl_meta m;
    for (size_t i = 0; i < w->n; i++) {
        lg_wl_build(w, i, out, NULL, &m, 1);
        sbuf_printf(out, "|%.6f|%s\n", w->items[i].sched_s, m.model);
    }
}

TEST(deterministic_per_seed)
{
    const enum lg_wl_kind kinds[] = { LG_WL_SHARED_PREFIX, LG_WL_NO_SHARING, LG_WL_HOT_PREFIX,
                                      LG_WL_LORA_MIX, LG_WL_MULTI_TURN, LG_WL_PREFIX_POOL };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        struct lg_wl_spec s = base_spec(kinds[k]);
        s.requests = 40;
        s.adapters = "a,b,c";
        struct sbuf a, b, c;
        sbuf_init(&a);
        sbuf_init(&b);
        sbuf_init(&c);
        struct lg_workload w;
        char err[256];
        CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
        all_bodies(&w, &a);
        lg_wl_free(&w);
        CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
        all_bodies(&w, &b);
        lg_wl_free(&w);
        s.seed = 2;
        s.sched.seed = 2;
        CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
        all_bodies(&w, &c);
        lg_wl_free(&w);
        CHECK(a.len > 0 && a.len == b.len && !memcmp(a.data, b.data, a.len));
        CHECK(a.len != c.len || memcmp(a.data, c.data, a.len));
        sbuf_free(&a);
        sbuf_free(&b);
        sbuf_free(&c);
    }
}

TEST(body_is_a_streaming_chat_request)
{
    struct lg_wl_spec s = base_spec(LG_WL_SHARED_PREFIX);
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    struct sbuf body, rend;
    sbuf_init(&body);
    sbuf_init(&rend);
    struct lg_wl_meta m;
    CHECK_EQ(lg_wl_build(&w, 0, &body, &rend, &m, 0), 0);
    cJSON *j = cJSON_Parse(body.data);
    CHECK(j != NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "stream")));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(j, "ignore_eos")));
    CHECK_EQ(cJSON_GetObjectItem(j, "max_tokens")->valueint, 8);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "stream_options"),
                                           "include_usage")));
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    CHECK_EQ(cJSON_GetArraySize(msgs), 2);
    CHECK_EQ(strlen(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring), 400);
    CHECK_EQ(strlen(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring), 40);
    CHECK_EQ(rend.len, 610);
    CHECK_EQ(m.prompt_tokens, 153);
    CHECK_STR(m.model, "meta-llama/Llama-3.1-8B-Instruct");
    cJSON_Delete(j);
    sbuf_free(&body);
    sbuf_free(&rend);
    lg_wl_free(&w);
}

static const char *write_trace(char *path, size_t n)
{
    snprintf(path, n, "/tmp/kvgate-test-trace-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    /* out of order on purpose: replay sorts by timestamp */
    fputs("{\"timestamp\": 500, \"input_length\": 1536, \"output_length\": 4, \"hash_ids\": [1, 2, 4]}\n"
          "{\"timestamp\": 0, \"input_length\": 1536, \"output_length\": 7, \"hash_ids\": [1, 2, 3]}\n"
          "\n"
          "{\"timestamp\": 900, \"input_length\": 600, \"output_length\": 0, \"hash_ids\": [5, 6]}\n",
          f);
    fclose(f);
    return path;
}

/* user content of item i */
static char *content_of(struct lg_workload *w, size_t i)
{
    struct sbuf body;
    sbuf_init(&body);
    struct lg_wl_meta m;
    lg_wl_build(w, i, &body, NULL, &m, 0);
    cJSON *j = cJSON_Parse(body.data);
    char *c = strdup(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "messages"), 0),
                                         "content")->valuestring);
    cJSON_Delete(j);
    sbuf_free(&body);
    return c;
}

TEST(trace_equal_hash_ids_equal_blocks)
{
    char path[128];
    struct lg_wl_spec s = base_spec(LG_WL_TRACE);
    s.trace_path = write_trace(path, sizeof(path));
    s.sched.rate = 0;
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.n, 3);
    CHECK_NEAR(w.items[0].sched_s, 0.0, 1e-12);
    CHECK_NEAR(w.items[1].sched_s, 0.5, 1e-12);
    CHECK_NEAR(w.items[2].sched_s, 0.9, 1e-12);
    CHECK_EQ(w.items[0].out_len, 7);
    CHECK_EQ(w.items[2].out_len, 1); /* 0 -> 1 */
    char *a = content_of(&w, 0), *b = content_of(&w, 1), *c = content_of(&w, 2);
    const size_t B = LG_TRACE_BLOCK_TOKENS * 4;
    /* hash ids 1, 2 shared: equal first two blocks; 3 vs 4: different */
    CHECK(!memcmp(a, b, 2 * B));
    CHECK(memcmp(a + 2 * B, b + 2 * B, 8) != 0);
    /* the block text is a function of the hash id alone */
    struct sbuf blk;
    sbuf_init(&blk);
    lg_trace_block(&blk, 2, LG_TRACE_BLOCK_TOKENS);
    CHECK(!memcmp(a + B, blk.data, B));
    sbuf_reset(&blk);
    lg_trace_block(&blk, 5, LG_TRACE_BLOCK_TOKENS);
    CHECK(!memcmp(c, blk.data, B));
    sbuf_free(&blk);
    /* sized to input_length tokens once rendered */
    struct sbuf body, rend;
    sbuf_init(&body);
    sbuf_init(&rend);
    struct lg_wl_meta m;
    lg_wl_build(&w, 0, &body, &rend, &m, 0);
    CHECK_EQ(m.prompt_tokens, 1536);
    sbuf_reset(&rend);
    lg_wl_build(&w, 2, &body, &rend, &m, 0);
    CHECK_EQ(m.prompt_tokens, 600);
    sbuf_free(&body);
    sbuf_free(&rend);
    /* ideal: the second shares header (59 bytes) + 2 blocks (4096): 64 full
     * 64-byte blocks = 1024 tokens; the third shares only the header */
    uint64_t hit, prompt;
    lg_wl_ideal(&w, &hit, &prompt);
    CHECK_EQ(prompt, 1536 + 1536 + 600);
    CHECK_EQ(hit, 1024);
    free(a);
    free(b);
    free(c);
    lg_wl_free(&w);
    unlink(path);
}

TEST(trace_bad_line_is_reported)
{
    char path[128];
    snprintf(path, sizeof(path), "/tmp/kvgate-test-trace-bad-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    fputs("{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n"
          "{\"timestamp\": 1, \"input_length\": \"x\"}\n", f);
    fclose(f);
    struct lg_wl_spec s = base_spec(LG_WL_TRACE);
    s.trace_path = path;
    struct lg_workload w;
    char err[256] = "";
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), -1);
    CHECK(strstr(err, ":2:") != NULL);
    unlink(path);
}

TEST(trace_scaled_blocks_and_cut)
{
    /* a hash id stands for 128 tokens: input 1536 -> 384 tokens, output
     * 7 -> round(1.75) = 2, 4 -> 1, 0 -> 1; the shared ids 1, 2 still give
     * equal 512-byte blocks. --trace-max-input 200 cuts the first two. */
    char path[128];
    struct lg_wl_spec s = base_spec(LG_WL_TRACE);
    s.trace_path = write_trace(path, sizeof(path));
    s.trace_block_tokens = 128;
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.items[0].out_len, 2);
    CHECK_EQ(w.items[1].out_len, 1);
    char *a = content_of(&w, 0), *b = content_of(&w, 1);
    CHECK(!memcmp(a, b, 2 * 512));
    CHECK(memcmp(a + 1024, b + 1024, 8) != 0);
    struct sbuf blk, body, rend;
    sbuf_init(&blk);
    sbuf_init(&body);
    sbuf_init(&rend);
    lg_trace_block(&blk, 2, 128);
    CHECK(!memcmp(a + 512, blk.data, 512));
    struct lg_wl_meta m;
    lg_wl_build(&w, 0, &body, &rend, &m, 0);
    CHECK_EQ(m.prompt_tokens, 384);
    sbuf_reset(&rend);
    lg_wl_build(&w, 2, &body, &rend, &m, 0);
    CHECK_EQ(m.prompt_tokens, 150); /* ceil(600 / 4) */
    free(a);
    free(b);
    lg_wl_free(&w);
    s.trace_max_input = 200;
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.trace_cut, 2);
    CHECK_EQ(w.trace_lines, 3);
    sbuf_reset(&rend);
    lg_wl_build(&w, 1, &body, &rend, &m, 0);
    CHECK_EQ(m.prompt_tokens, 200);
    lg_wl_free(&w);
    sbuf_free(&blk);
    sbuf_free(&body);
    sbuf_free(&rend);
    unlink(path);
}

/* lg_wl_init on a trace file made of `text` (n bytes): 0 or -1 with err. */
static int trace_of(const char *text, size_t n, char *err, size_t errlen)
{
    char path[128];
    snprintf(path, sizeof(path), "/tmp/kvgate-test-trace-h-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    fwrite(text, 1, n, f);
    fclose(f);
    struct lg_wl_spec s = base_spec(LG_WL_TRACE);
    s.trace_path = path;
    struct lg_workload w;
    err[0] = 0;
    int rc = lg_wl_init(&w, &s, err, errlen);
    if (!rc)
        lg_wl_free(&w);
    unlink(path);
    return rc;
}

TEST(trace_hostile_lines_are_refused)
{
    static const char ok[] = "{\"timestamp\": 0, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [1]}\n";
    char err[256];
    char buf[512];
    static const struct {
        const char *line, *why;
    } bad[] = {
        { "[1, 2]", "not a JSON object" },
        { "{\"timestamp\": -1, \"input_length\": 10, \"output_length\": 1}", "timestamp" },
        { "{\"timestamp\": 0, \"input_length\": 1.5, \"output_length\": 1}", "input_length" },
        { "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 1}", "input_length" },
        { "{\"timestamp\": 0, \"input_length\": 1e9, \"output_length\": 1}", "input_length" },
        { "{\"timestamp\": 0, \"input_length\": 9, \"output_length\": -2}", "output_length" },
        { "{\"timestamp\": 0, \"input_length\": 9, \"output_length\": 1, \"hash_ids\": 3}", "hash_ids" },
        { "{\"timestamp\": 0, \"input_length\": 9, \"output_length\": 1, \"hash_ids\": [1, \"x\"]}", "hash_ids" },
        { "{\"timestamp\": 0, \"input_length\": 9, \"output_length\": 1, \"hash_ids\": [-1]}", "hash_ids" },
        { "{\"timestamp\": 0, \"input_length\": 9, \"output_length\": 1, \"hash_ids\": [1e300]}", "hash_ids" },
        { "{\"timestamp\": 0, \"input_length\": 9, \"output_length\": 1", "not a JSON object" },
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        int n = snprintf(buf, sizeof(buf), "%s%s\n", ok, bad[k].line);
        CHECK_EQ(trace_of(buf, (size_t)n, err, sizeof(err)), -1);
        CHECK(strstr(err, ":2:") != NULL);
        CHECK(strstr(err, bad[k].why) != NULL);
    }
    /* a NUL byte; a line over 1 MiB (never read whole into memory) */
    memcpy(buf, ok, sizeof(ok) - 1);
    memcpy(buf + sizeof(ok) - 1, "{\"a\0\"}\n", 7);
    CHECK_EQ(trace_of(buf, sizeof(ok) - 1 + 7, err, sizeof(err)), -1);
    CHECK(strstr(err, "NUL") != NULL);
    size_t big = LG_TRACE_MAX_LINE + 100;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[big - 1] = '\n';
    CHECK_EQ(trace_of(huge, big, err, sizeof(err)), -1);
    CHECK(strstr(err, ":1: line longer than 1 MiB") != NULL);
    free(huge);
    /* an empty trace, comments and blank lines only */
    CHECK_EQ(trace_of("# nothing\n\n  \n", 14, err, sizeof(err)), -1);
    CHECK(strstr(err, "no requests") != NULL);
    /* the good line alone, without a final newline, is fine */
    CHECK_EQ(trace_of(ok, sizeof(ok) - 2, err, sizeof(err)), 0);
}

TEST(prefix_pool_cycles_through_a_shuffled_pool)
{
    /* 3 groups x 2 prompts = a pool of 6; 14 requests: every prompt once
     * in each pass, the same order every pass, equal bodies for equal
     * prompts; a group's prompts share the system prompt only */
    struct lg_wl_spec s = base_spec(LG_WL_PREFIX_POOL);
    s.groups = 3;
    s.prompts_per_group = 2;
    s.requests = 14;
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.n, 14);
    int seen[6] = { 0 };
    for (size_t i = 0; i < 6; i++) {
        CHECK(w.items[i].a < 3 && w.items[i].b < 2);
        seen[w.items[i].a * 2 + w.items[i].b]++;
        CHECK_EQ(w.items[i + 6].a, w.items[i].a);
        CHECK_EQ(w.items[i + 6].b, w.items[i].b);
    }
    for (int k = 0; k < 6; k++)
        CHECK_EQ(seen[k], 1);
    struct sbuf x, y;
    sbuf_init(&x);
    sbuf_init(&y);
    struct lg_wl_meta m;
    lg_wl_build(&w, 1, &x, NULL, &m, 0);
    lg_wl_build(&w, 7, &y, NULL, &m, 0);
    CHECK(x.len == y.len && !memcmp(x.data, y.data, x.len));
    /* ideal: the second pass hits every prompt up to its cap (9 blocks of
     * 153 tokens: 144); the first pass hits 128 on the second prompt of
     * each group (see ideal_two_groups_three_prompts_exact) */
    uint64_t hit, prompt;
    lg_wl_ideal(&w, &hit, &prompt);
    CHECK_EQ(prompt, 14 * 153);
    CHECK_EQ(hit, 3 * 128 + 8 * 144);
    /* with --duration instead: still cycling, deterministic */
    sbuf_free(&x);
    sbuf_free(&y);
    lg_wl_free(&w);
    s.requests = 0;
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.n, 6); /* natural size: one pass */
    lg_wl_free(&w);
}

TEST(multi_turn_history_carries_answers)
{
    struct lg_wl_spec s = base_spec(LG_WL_MULTI_TURN);
    s.groups = 0;
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK_EQ(w.n, 9);
    CHECK_EQ(w.norder, 3);
    CHECK(w.items[0].sched_s >= 0 && w.items[1].sched_s < 0);
    CHECK_EQ(lg_wl_next_turn(&w, 0), 1);
    CHECK_EQ(lg_wl_next_turn(&w, 1), 2);
    CHECK_EQ(lg_wl_next_turn(&w, 2), -1);
    lg_wl_set_answer(&w, 0, " the answer", 11);
    struct sbuf body, rend0, rend1;
    sbuf_init(&body);
    sbuf_init(&rend0);
    sbuf_init(&rend1);
    struct lg_wl_meta m;
    CHECK_EQ(lg_wl_build(&w, 0, &body, &rend0, &m, 0), 0);
    CHECK(m.session_id[0] != 0);
    char sid[48];
    snprintf(sid, sizeof(sid), "%s", m.session_id);
    sbuf_reset(&body);
    CHECK_EQ(lg_wl_build(&w, 1, &body, &rend1, &m, 0), 0);
    CHECK_STR(m.session_id, sid);
    cJSON *j = cJSON_Parse(body.data);
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    CHECK_EQ(cJSON_GetArraySize(msgs), 4); /* system, user, assistant, user */
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "role")->valuestring, "assistant");
    CHECK_STR(cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 2), "content")->valuestring,
              " the answer");
    cJSON_Delete(j);
    /* turn 0's whole prompt (minus the generation prompt) prefixes turn 1's */
    size_t gen = strlen("<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK(rend1.len > rend0.len && !memcmp(rend0.data, rend1.data, rend0.len - gen));
    /* other sessions: other id, other system prompt */
    sbuf_reset(&body);
    lg_wl_build(&w, 3, &body, NULL, &m, 0);
    CHECK(strcmp(m.session_id, sid) != 0);
    sbuf_free(&body);
    sbuf_free(&rend0);
    sbuf_free(&rend1);
    lg_wl_free(&w);
}

TEST(lora_mix_zipf_and_hot_share)
{
    struct lg_wl_spec s = base_spec(LG_WL_LORA_MIX);
    s.requests = 30000;
    s.adapters = "a,b,c";
    s.skew = 1;
    struct lg_workload w;
    char err[256];
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    size_t cnt[3] = { 0, 0, 0 };
    for (size_t i = 0; i < w.n; i++)
        cnt[w.items[i].model]++;
    /* 1 : 1/2 : 1/3 -> 6/11, 3/11, 2/11 */
    CHECK_NEAR((double)cnt[0] / (double)w.n, 6.0 / 11, 0.015);
    CHECK_NEAR((double)cnt[1] / (double)w.n, 3.0 / 11, 0.015);
    CHECK_NEAR((double)cnt[2] / (double)w.n, 2.0 / 11, 0.015);
    CHECK_STR(w.models[2], "c");
    lg_wl_free(&w);

    s = base_spec(LG_WL_HOT_PREFIX);
    s.requests = 10000;
    s.hot_share = 0.3;
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    size_t hot = 0;
    for (size_t i = 0; i < w.n; i++)
        hot += w.items[i].a;
    CHECK_NEAR((double)hot / (double)w.n, 0.3, 0.015);
    lg_wl_free(&w);
}

TEST(bad_specs_say_why)
{
    struct lg_workload w;
    char err[256] = "";
    struct lg_wl_spec s = base_spec(LG_WL_NO_SHARING); /* no --requests, no --duration */
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), -1);
    CHECK(strstr(err, "--requests") != NULL);
    s = base_spec(LG_WL_LORA_MIX);
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), -1);
    CHECK(strstr(err, "--adapters") != NULL);
    s = base_spec(LG_WL_SHARED_PREFIX);
    s.duration = 2;
    s.sched.rate = 50; /* duration-bound: ~100 requests */
    CHECK_EQ(lg_wl_init(&w, &s, err, sizeof(err)), 0);
    CHECK(w.n > 60 && w.n < 140);
    lg_wl_free(&w);
}

int main(void)
{
    RUN(ideal_two_groups_three_prompts_exact);
    RUN(ideal_cap_and_adapter_key);
    RUN(no_sharing_ideal_is_zero);
    RUN(deterministic_per_seed);
    RUN(body_is_a_streaming_chat_request);
    RUN(trace_equal_hash_ids_equal_blocks);
    RUN(trace_bad_line_is_reported);
    RUN(trace_scaled_blocks_and_cut);
    RUN(trace_hostile_lines_are_refused);
    RUN(prefix_pool_cycles_through_a_shuffled_pool);
    RUN(multi_turn_history_carries_answers);
    RUN(lora_mix_zipf_and_hot_share);
    RUN(bad_specs_say_why);
    return harness_done();
}
