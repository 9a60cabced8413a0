/* Unit tests for user/podsim/engine.c: the step-time model, continuous
 * batching, chunked prefill, prefix-cache hits, preemption and LoRA slots,
 * driven on a virtual clock. */
#include "harness.h"
#include "podsim/engine.h"

#include <errno.h>
#include <stdlib.h>

struct tracker {
    int tokens, finished;
    double first_token_at;
};

static double clock_s; /* virtual time, simulated seconds */

static void t_token(struct sim_req *r, uint32_t tok)
{
    struct tracker *t = r->user;
    if (t->tokens++ == 0)
        t->first_token_at = clock_s;
}
static void t_finish(struct sim_req *r)
{
    ((struct tracker *)r->user)->finished++;
}

/* A request of n prompt tokens; tokens are distinct per `salt` so prompts
 * with different salts share nothing. */
static struct sim_req *mkreq(uint32_t n, uint32_t out, uint32_t salt,
                             struct tracker *t)
{
    struct sim_req *r = calloc(1, sizeof(*r));
    engine_req_prepare(r, n, out);
    for (uint32_t i = 0; i < n; i++)
        r->tokens[i] = salt * 1000003u + i;
    r->seed = salt;
    r->on_token = t_token;
    r->on_finish = t_finish;
    r->user = t;
    return r;
}

static void freereq(struct sim_req *r)
{
    engine_req_release(r);
    free(r);
}

/* Runs one step; returns its duration in ms (0 if idle). */
static double step(struct engine *e)
{
    double ms = engine_step_begin(e, clock_s);
    if (ms > 0) {
        clock_s += ms / 1000.0;
        engine_step_end(e, clock_s);
    }
    return ms;
}

static void run_until_idle(struct engine *e, int max_steps)
{
    while (engine_busy(e) && max_steps-- > 0)
        step(e);
}

static void init(struct engine *e, uint32_t kv_blocks, uint32_t max_seqs)
{
    struct engine_cfg cfg = {.kv_blocks = kv_blocks, .max_num_seqs = max_seqs,
                             .lora_load_ms = 20};
    clock_s = 0;
    engine_init(e, &cfg);
}

/* TTFT with no load and no cache, at time scale 1 */
static double ttft_ms(uint32_t n)
{
    struct engine e;
    struct tracker t = {0};
    init(&e, 0, 0);
    struct sim_req *r = mkreq(n, 4, 1, &t);
    engine_submit(&e, r, clock_s);
    run_until_idle(&e, 100);
    double v = t.first_token_at * 1000.0;
    freereq(r);
    engine_destroy(&e);
    return v;
}

TEST(ttft_matches_design_within_10pct)
{
    CHECK_NEAR(ttft_ms(1024), 25.0, 2.5);
    CHECK_NEAR(ttft_ms(4096), 104.0, 10.4);
    CHECK_NEAR(ttft_ms(8192), 227.0, 22.7);
}

TEST(decode_step_batch_1_and_128)
{
    struct engine e;
    init(&e, 0, 0);
    struct tracker t = {0};
    struct sim_req *r = mkreq(16, 10, 1, &t);
    engine_submit(&e, r, 0);
    step(&e);                    /* prefill */
    CHECK_NEAR(step(&e), 7.5, 0.75); /* one decode */
    run_until_idle(&e, 100);
    freereq(r);
    engine_destroy(&e);

    init(&e, 0, 0);
    struct sim_req *rs[128];
    struct tracker ts[128] = {{0}};
    for (int i = 0; i < 128; i++) {
        rs[i] = mkreq(2048, 200, 10 + i, &ts[i]);
        engine_submit(&e, rs[i], 0);
    }
    /* prefill 128 x 2048 tokens in 8192-token chunks, then all decode */
    int guard = 200;
    while (guard-- && !(e.nrunning == 128 && ts[127].tokens >= 1))
        step(&e);
    CHECK_EQ(e.nrunning, 128);
    double ms = step(&e);
    CHECK_EQ(e.nbatch, 0); /* step_end cleared it */
    CHECK_NEAR(ms, 20.7, 2.07);
    run_until_idle(&e, 1000);
    int done = 0;
    for (int i = 0; i < 128; i++) {
        done += ts[i].finished == 1 && ts[i].tokens == 200;
        freereq(rs[i]);
    }
    CHECK_EQ(done, 128);
    engine_destroy(&e);
}

TEST(chunked_prefill_splits_long_prompt)
{
    struct engine e;
    init(&e, 0, 0);
    struct tracker t = {0};
    struct sim_req *r = mkreq(10000, 2, 1, &t);
    engine_submit(&e, r, 0);
    step(&e);
    CHECK_EQ(t.tokens, 0);
    CHECK_EQ(r->num_computed, 8192);
    step(&e);
    CHECK_EQ(t.tokens, 1);
    run_until_idle(&e, 10);
    CHECK_EQ(t.finished, 1);
    freereq(r);
    engine_destroy(&e);
}

TEST(prefix_hit_caps_at_full_blocks_before_last_token)
{
    struct engine e;
    init(&e, 0, 0);
    struct tracker t1 = {0}, t2 = {0}, t3 = {0}, t4 = {0};
    struct sim_req *a = mkreq(1000, 4, 1, &t1);
    engine_submit(&e, a, 0);
    run_until_idle(&e, 100);
    CHECK_EQ(a->num_cached, 0);
    double ttft_cold = t1.first_token_at;

    double t0 = clock_s;
    struct sim_req *b = mkreq(1000, 4, 1, &t2);
    engine_submit(&e, b, clock_s);
    run_until_idle(&e, 100);
    CHECK_EQ(b->num_cached, (1000 - 1) / 16 * 16); /* 992 */
    CHECK(t2.first_token_at - t0 < ttft_cold / 2);

    /* exactly two blocks: the last token must be computed -> one block */
    struct sim_req *c = mkreq(32, 2, 2, &t3);
    engine_submit(&e, c, clock_s);
    run_until_idle(&e, 100);
    struct sim_req *d = mkreq(32, 2, 2, &t4);
    engine_submit(&e, d, clock_s);
    run_until_idle(&e, 100);
    CHECK_EQ(d->num_cached, 16);
    CHECK_EQ(e.st.prefix_hits, 992 + 16);
    CHECK_EQ(e.st.prefix_queries, 1000 + 1000 + 32 + 32);
    freereq(a); freereq(b); freereq(c); freereq(d);
    engine_destroy(&e);
}

TEST(preempts_newest_when_blocks_run_out)
{
    struct engine e;
    init(&e, 1 + 10, 0); /* 10 usable blocks = 160 tokens */
    struct tracker ta = {0}, tb = {0};
    struct sim_req *a = mkreq(48, 60, 1, &ta); /* grows to 7 blocks */
    struct sim_req *b = mkreq(48, 60, 2, &tb);
    engine_submit(&e, a, 0);
    engine_submit(&e, b, 0);
    run_until_idle(&e, 1000);
    CHECK(e.st.preemptions >= 1);
    CHECK_EQ(a->npreempt, 0); /* the older request keeps running */
    CHECK(b->npreempt >= 1);
    CHECK_EQ(ta.finished, 1);
    CHECK_EQ(tb.finished, 1);
    CHECK_EQ(ta.tokens, 60);
    CHECK_EQ(tb.tokens, 60);
    CHECK_EQ(e.kv.nfree, 10); /* everything returned */
    freereq(a); freereq(b);
    engine_destroy(&e);
}

TEST(continuous_batching_and_max_num_seqs)
{
    struct engine e;
    init(&e, 0, 2);
    struct tracker t[3] = {{0}};
    struct sim_req *r[3];
    for (int i = 0; i < 3; i++) {
        r[i] = mkreq(64, 20, 1 + i, &t[i]);
        engine_submit(&e, r[i], 0);
    }
    engine_step_begin(&e, 0);
    CHECK_EQ(e.nbatch, 2); /* two fit max_num_seqs, one waits */
    CHECK_EQ(e.nwaiting, 1);
    clock_s += 0.01;
    engine_step_end(&e, clock_s);
    /* a late arrival joins the running batch at the next step */
    run_until_idle(&e, 1000);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(t[i].finished, 1);
        freereq(r[i]);
    }
    engine_destroy(&e);
}

TEST(lora_slots_limit_adapters_per_batch)
{
    struct engine e;
    struct engine_cfg cfg = {.max_loras = 1, .lora_load_ms = 20};
    clock_s = 0;
    engine_init(&e, &cfg);
    int a = engine_lora_add(&e, "sql");
    int b = engine_lora_add(&e, "chat");
    CHECK(a == 1 && b == 2);
    CHECK_EQ(engine_lora_add(&e, "sql"), -EEXIST);
    struct tracker t1 = {0}, t2 = {0};
    struct sim_req *r1 = mkreq(64, 5, 1, &t1), *r2 = mkreq(64, 5, 2, &t2);
    r1->lora = a;
    r2->lora = b;
    engine_submit(&e, r1, 0);
    engine_submit(&e, r2, 0);
    double ms = engine_step_begin(&e, 0);
    CHECK_EQ(e.nbatch, 1);       /* one adapter slot */
    CHECK(ms >= 20.0);           /* the load is part of the step */
    CHECK_EQ(e.st.lora_loads, 1);
    CHECK_EQ(engine_lora_remove(&e, "chat"), -EBUSY);
    clock_s += ms / 1000;
    engine_step_end(&e, clock_s);
    run_until_idle(&e, 100);
    CHECK_EQ(t1.finished, 1);
    CHECK_EQ(t2.finished, 1);
    CHECK_EQ(e.st.lora_loads, 2);
    CHECK_EQ(engine_lora_remove(&e, "chat"), 0);
    CHECK_EQ(engine_lora_find(&e, "chat"), 0);
    freereq(r1); freereq(r2);
    engine_destroy(&e);
}

static struct engine *abort_eng;
static void abort_on_token(struct sim_req *r, uint32_t tok)
{
    struct tracker *t = r->user;
    t->tokens++;
    engine_abort(abort_eng, r);
}

TEST(abort_inside_callback_is_safe)
{
    struct engine e;
    init(&e, 0, 0);
    abort_eng = &e;
    struct tracker t = {0};
    struct sim_req *r = mkreq(64, 50, 1, &t);
    r->on_token = abort_on_token;
    engine_submit(&e, r, 0);
    run_until_idle(&e, 100);
    CHECK_EQ(t.tokens, 1);
    CHECK_EQ(t.finished, 0);
    CHECK_EQ(e.st.finished_abort, 1);
    CHECK_EQ(e.kv.nfree, e.kv.nblocks - 1);
    freereq(r);
    engine_destroy(&e);
}

TEST(output_tokens_are_printable_and_deterministic)
{
    for (uint32_t i = 0; i < 1000; i++) {
        uint32_t t = engine_output_token(42, i);
        CHECK_EQ(t, engine_output_token(42, i));
        CHECK((t & 0xff) == ' ');
        for (int k = 1; k < 4; k++) {
            char ch = (char)(t >> (8 * k));
            CHECK(ch >= 'a' && ch <= 'z');
        }
    }
    CHECK(engine_output_token(1, 0) != engine_output_token(2, 0) ||
          engine_output_token(1, 1) != engine_output_token(2, 1));
}

TEST(profiles)
{
    const struct profile *p = profile_find("llama3-70b-h100-tp4");
    CHECK(p != NULL);
    CHECK(profile_find("nope") == NULL);
    if (p) {
        CHECK_NEAR(profile_step_ms(p, 1, 0, 0), 15.5, 1e-9); /* floor + overhead */
        CHECK_EQ(p->kv_blocks * 16 / 1000, 461);
    }
}

int main(void)
{
    RUN(ttft_matches_design_within_10pct);
    RUN(decode_step_batch_1_and_128);
    RUN(chunked_prefill_splits_long_prompt);
    RUN(prefix_hit_caps_at_full_blocks_before_last_token);
    RUN(preempts_newest_when_blocks_run_out);
    RUN(continuous_batching_and_max_num_seqs);
    RUN(lora_slots_limit_adapters_per_batch);
    RUN(abort_inside_callback_is_safe);
    RUN(output_tokens_are_printable_and_deterministic);
    RUN(profiles);
    return harness_done();
}
