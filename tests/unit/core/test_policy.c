/* Unit tests for user/core/policy.c: filters, scorers, modes, wrappers. */
#include "harness.h"
#include "core/policy.h"
#include "core/tokload.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 10000000000ull /* 10 s */

static struct pod_snapshot *fleet(int n)
{
    struct pod_snapshot *s = snapshot_new((uint32_t)n);
    for (int i = 0; i < n; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = (uint32_t)i;
        snprintf(p->name, sizeof(p->name), "pod%d", i);
        p->healthy = 1;
        p->metrics_ok = 1;
        p->scraped_ns = NOW - 10000000; /* 10 ms old */
        p->nmodels = 1;
        strcpy(p->models[0], "llama");
    }
    return s;
}

static struct pod_counters cnt;
static struct policy_state st;
static uint16_t match[POD_MAX];

static int pick(const struct policy_cfg *cfg, struct pod_snapshot *s, const char *model,
                uint32_t nkeys, uint64_t rnd, struct route_decision *d)
{
    struct route_input in = {.model = model, .nkeys = nkeys, .match = match,
                             .session_slot = -1, .rand = rnd, .now_ns = NOW,
                             .exclude_slot = UINT32_MAX};
    policy_pick(cfg, s, &cnt, &st, &in, d);
    return d->idx;
}

static void reset(void)
{
    memset(&cnt, 0, sizeof(cnt));
    memset(match, 0, sizeof(match));
}

TEST(prefix_match_wins_when_load_is_equal)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(4);
    match[2] = 10;
    match[1] = 3;
    for (uint64_t r = 0; r < 50; r++) {
        CHECK_EQ(pick(&c, s, "llama", 10, r, &d), 2);
        CHECK_EQ(d.reason, REASON_PREFIX);
        CHECK_EQ(d.prefix_blocks, 10);
    }
    snapshot_put(s);
}

TEST(filters_model_adapter_health)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(4);
    strcpy(s->pods[3].adapters[0], "sql-lora");
    s->pods[3].nadapters = 1;
    for (uint64_t r = 0; r < 20; r++)
        CHECK_EQ(pick(&c, s, "sql-lora", 0, r, &d), 3);
    pick(&c, s, "gpt-9", 0, 1, &d);
    CHECK_EQ(d.status, ROUTE_UNKNOWN_MODEL);
    CHECK_EQ(d.idx, -1);
    s->pods[3].healthy = 0;
    pick(&c, s, "sql-lora", 0, 1, &d);
    CHECK_EQ(d.status, ROUTE_NO_POD);
    s->pods[3].healthy = 1;
    s->pods[3].draining = 1;
    pick(&c, s, "sql-lora", 0, 1, &d);
    CHECK_EQ(d.status, ROUTE_NO_POD);
    snapshot_put(s);
}

TEST(saturated_warm_pod_loses_to_idle_cold_pod)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(2);
    match[0] = 20;
    s->pods[0].waiting = 8; /* >= 5 */
    CHECK_EQ(pick(&c, s, "llama", 20, 7, &d), 1);
    s->pods[0].waiting = 0;
    s->pods[0].kv_usage = 0.9; /* >= 0.8 */
    CHECK_EQ(pick(&c, s, "llama", 20, 7, &d), 1);
    s->pods[0].kv_usage = 0.5;
    CHECK_EQ(pick(&c, s, "llama", 20, 7, &d), 0);
    /* both saturated: the filter lets both through, prefix decides */
    s->pods[0].waiting = 9;
    s->pods[1].waiting = 9;
    CHECK_EQ(pick(&c, s, "llama", 20, 7, &d), 0);
    CHECK_EQ(d.all_saturated, 1);
    snapshot_put(s);
}

TEST(a_sessions_own_pod_saturates_later)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c); /* queue 5; session pods x 2 / 1.25 = 8 */
    reset();
    struct pod_snapshot *s = fleet(2);
    match[0] = 20;
    s->pods[0].waiting = 7;
    struct route_input in = {.model = "llama", .nkeys = 20, .match = match, .session_slot = -1,
                             .rand = 7, .now_ns = NOW, .exclude_slot = UINT32_MAX};
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1); /* 7 >= 5: saturated for a request without a session */
    in.session_slot = 0;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0); /* 7 < 8 for the session whose history it holds */
    s->pods[0].waiting = 8;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    s->pods[0].waiting = 0;
    s->pods[0].kv_usage = 0.9; /* KV saturation is not relaxed */
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    snapshot_put(s);
}

TEST(gateway_inflight_raises_the_queue_estimate)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    c.bounded_load = 0;
    reset();
    struct pod_snapshot *s = fleet(2);
    /* scraped idle, but the gateway has sent 6 since: saturated */
    atomic_store(&cnt.inflight[0], 6);
    match[0] = 20;
    CHECK_EQ(pick(&c, s, "llama", 20, 1, &d), 1);
    snapshot_put(s);
}

TEST(stale_metrics_count_as_saturated_then_degraded)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(3);
    match[0] = 8;
    s->pods[0].scraped_ns = NOW - 500000000ull; /* 500 ms > 200 */
    CHECK(pick(&c, s, "llama", 8, 3, &d) != 0);
    CHECK_EQ(d.stale, 1);
    CHECK_EQ(d.degraded, 0);
    /* nobody fresh: degraded, still routes, prefix affinity still counts */
    for (int i = 0; i < 3; i++)
        s->pods[i].metrics_ok = 0;
    CHECK_EQ(pick(&c, s, "llama", 8, 3, &d), 0);
    CHECK_EQ(d.status, ROUTE_OK);
    CHECK_EQ(d.degraded, 1);
    CHECK_EQ(d.reason, REASON_DEGRADED);
    /* ... and in-flight counts replace the queue: a loaded pod loses */
    memset(match, 0, sizeof(match));
    atomic_store(&cnt.inflight[0], 3);
    atomic_store(&cnt.inflight[1], 3);
    CHECK_EQ(pick(&c, s, "llama", 8, 3, &d), 2);
    snapshot_put(s);
}

TEST(bounded_load_stops_a_hot_prefix_piling_up)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    c.queue_sat = 1000; /* isolate the guard from the saturation filter */
    reset();
    struct pod_snapshot *s = fleet(4);
    match[0] = 30;
    atomic_store(&cnt.inflight[0], 12); /* limit max(1.25 x 13/4, 8) = 8 */
    CHECK(pick(&c, s, "llama", 30, 5, &d) != 0);
    CHECK_EQ(d.bounded, 1);
    atomic_store(&cnt.inflight[0], 7); /* 8 <= 8: the floor lets it batch */
    CHECK_EQ(pick(&c, s, "llama", 30, 5, &d), 0);
    /* at high load the mean sets the limit */
    for (int i = 1; i < 4; i++)
        atomic_store(&cnt.inflight[i], 10);
    atomic_store(&cnt.inflight[0], 16); /* 17 > 1.25 x 47/4 = 14.7 */
    /* pod 0 holds the prefix alone: moving re-pays all of it, and its
     * bound grows to bounded_session's (2 x 47/4 = 23.5) */
    CHECK_EQ(pick(&c, s, "llama", 30, 5, &d), 0);
    CHECK_EQ(d.bounded, 0);
    atomic_store(&cnt.inflight[0], 30); /* 31 > 2 x 61/4 = 30.5 */
    CHECK(pick(&c, s, "llama", 30, 5, &d) != 0);
    CHECK_EQ(d.bounded, 1);
    /* pod 1 holds it too: pod 0's advantage is gone, the plain bound */
    atomic_store(&cnt.inflight[0], 16);
    match[1] = 30;
    CHECK_EQ(pick(&c, s, "llama", 30, 5, &d), 1);
    CHECK_EQ(d.bounded, 1);
    /* pod 1 holds two thirds: pod 0's advantage is a third, its bound
     * 14.7 + (23.5 - 14.7) / 3 = 17.6 >= 17: nobody is removed (the
     * scores then pick) */
    match[1] = 20;
    pick(&c, s, "llama", 30, 5, &d);
    CHECK_EQ(d.bounded, 0);
    atomic_store(&cnt.inflight[0], 18); /* 19 > 15.3 + (24.5 - 15.3) / 3 = 18.4 */
    CHECK(pick(&c, s, "llama", 30, 5, &d) != 0);
    CHECK_EQ(d.bounded, 1);
    match[1] = 0;
    c.bounded_load = 0;
    CHECK_EQ(pick(&c, s, "llama", 30, 5, &d), 0);
    snapshot_put(s);
}

TEST(bounded_load_is_looser_for_a_sessions_own_pod)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    c.queue_sat = 1000;
    reset();
    struct pod_snapshot *s = fleet(4);
    match[0] = 30;
    for (int i = 1; i < 4; i++)
        atomic_store(&cnt.inflight[i], 10);
    atomic_store(&cnt.inflight[0], 16); /* 17 > 1.25 x 47/4 = 14.7, <= 2 x 47/4 = 23.5 */
    struct route_input in = {.model = "llama", .nkeys = 30, .match = match, .session_slot = 0,
                             .rand = 5, .now_ns = NOW, .exclude_slot = UINT32_MAX};
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0);
    CHECK_EQ(d.bounded, 0);
    /* another pod's session does not loosen pod 0's bound (pod 1 holds
     * the prefix too, so pod 0 has no advantage of its own either) */
    in.session_slot = 1;
    match[1] = 30;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK(d.idx != 0);
    CHECK_EQ(d.bounded, 1);
    /* past 2 x the mean even the session's pod is skipped */
    in.session_slot = 0;
    match[1] = 0;
    atomic_store(&cnt.inflight[0], 25); /* 26 <= 2 x 56/4 = 28 */
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0);
    atomic_store(&cnt.inflight[0], 40); /* 41 > 2 x 71/4 = 35.5 */
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK(d.idx != 0);
    /* bounded_session below bounded_load: the plain bound */
    c.bounded_session = 0;
    atomic_store(&cnt.inflight[0], 16);
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK(d.idx != 0);
    snapshot_put(s);
}

TEST(ties_are_broken_at_random)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(4);
    int seen[4] = {0};
    for (uint64_t r = 0; r < 400; r++)
        seen[pick(&c, s, "llama", 0, r * 7919, &d)]++;
    for (int i = 0; i < 4; i++)
        CHECK(seen[i] > 40);
    snapshot_put(s);
}

TEST(simple_modes)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(3);
    match[1] = 10;
    c.mode = POLICY_ROUND_ROBIN;
    atomic_store(&st.rr, 0);
    CHECK_EQ(pick(&c, s, "llama", 10, 0, &d), 0);
    CHECK_EQ(pick(&c, s, "llama", 10, 0, &d), 1);
    CHECK_EQ(pick(&c, s, "llama", 10, 0, &d), 2);
    CHECK_EQ(pick(&c, s, "llama", 10, 0, &d), 0);
    CHECK_EQ(d.reason, REASON_ROUND_ROBIN);
    c.mode = POLICY_LEAST_REQUEST;
    atomic_store(&cnt.inflight[0], 2);
    atomic_store(&cnt.inflight[1], 1);
    atomic_store(&cnt.inflight[2], 3);
    CHECK_EQ(pick(&c, s, "llama", 10, 0, &d), 1);
    c.mode = POLICY_RANDOM;
    int seen[3] = {0};
    for (uint64_t r = 0; r < 300; r++)
        seen[pick(&c, s, "llama", 10, r * 2654435761u, &d)]++;
    CHECK(seen[0] > 30 && seen[1] > 30 && seen[2] > 30);
    enum policy_mode m;
    CHECK_EQ(policy_mode_parse("least-request", &m), 0);
    CHECK_EQ(m, POLICY_LEAST_REQUEST);
    CHECK(policy_mode_parse("fastest", &m) < 0);
    snapshot_put(s);
}

TEST(shadow_routes_by_baseline_and_records_the_pick)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    c.shadow = 1;
    struct pod_snapshot *s = fleet(3);
    match[2] = 10;
    atomic_store(&st.rr, 0);
    CHECK_EQ(pick(&c, s, "llama", 10, 0, &d), 0); /* round-robin */
    CHECK_EQ(d.mode, POLICY_ROUND_ROBIN);
    CHECK_EQ(d.shadow_idx, 2);                   /* prefix-aware's choice */
    CHECK_EQ(d.prefix_blocks, 0);                /* what the actual pick held */
    CHECK_EQ(d.shadow_prefix_blocks, 10);        /* ... and the shadow pick would have */
    CHECK_EQ(d.arm, ARM_BASELINE);
    snapshot_put(s);
}

TEST(canary_share)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(2);
    int pa = 0;
    c.canary_pct = 25;
    for (uint64_t r = 0; r < 2000; r++) {
        pick(&c, s, "llama", 0, r * 0x9E3779B97F4A7C15ull, &d);
        pa += d.mode == POLICY_PREFIX_AWARE;
    }
    CHECK(pa > 400 && pa < 600);
    c.canary_pct = 0;
    pick(&c, s, "llama", 0, 99, &d);
    CHECK_EQ(d.mode, POLICY_ROUND_ROBIN);
    CHECK_EQ(d.arm, ARM_BASELINE);
    CHECK_STR(route_arm_name(d.arm, d.mode), "baseline");
    /* each request is labelled by the arm whose mode routed it */
    c.canary_pct = 25;
    for (uint64_t r = 0; r < 200; r++) {
        pick(&c, s, "llama", 0, r * 0x9E3779B97F4A7C15ull, &d);
        CHECK_EQ(d.arm, d.mode == POLICY_PREFIX_AWARE ? ARM_CANARY : ARM_BASELINE);
    }
    c.canary_pct = 100;
    pick(&c, s, "llama", 0, 5, &d);
    CHECK_EQ(d.arm, ARM_ONLY);
    CHECK_STR(route_arm_name(d.arm, d.mode), "prefix-aware");
    /* a guarded rollout's share overrides the policy's */
    int canary = 0;
    for (uint64_t r = 0; r < 2000; r++) {
        struct route_input in = {.model = "llama", .match = match, .session_slot = -1,
                                 .rand = r * 0x9E3779B97F4A7C15ull, .now_ns = NOW,
                                 .exclude_slot = UINT32_MAX, .canary_set = 1, .canary_pct = 5};
        policy_pick(&c, s, &cnt, &st, &in, &d);
        canary += d.arm == ARM_CANARY;
    }
    CHECK(canary > 60 && canary < 140); /* 5% of 2000 = 100 */
    struct route_input in0 = {.model = "llama", .match = match, .session_slot = -1, .rand = 7,
                              .now_ns = NOW, .exclude_slot = UINT32_MAX, .canary_set = 1,
                              .canary_pct = 0};
    policy_pick(&c, s, &cnt, &st, &in0, &d); /* rolled back: share 0 */
    CHECK_EQ(d.arm, ARM_BASELINE);
    CHECK_EQ(d.mode, POLICY_ROUND_ROBIN);
    snapshot_put(s);
}

TEST(retry_excludes_the_failed_pod)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(2);
    match[0] = 10;
    struct route_input in = {.model = "llama", .nkeys = 10, .match = match, .session_slot = -1,
                             .rand = 1, .now_ns = NOW, .exclude_slot = 0};
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    snapshot_put(s);
}

TEST(failed_pods_are_left_out_unless_none_would_remain)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(3);
    match[0] = 20; /* pod 0 would win on its prefix */
    atomic_store(&cnt.ejected_until_ns[0], NOW + 1);
    for (uint64_t r = 0; r < 20; r++) {
        CHECK(pick(&c, s, "llama", 20, r, &d) != 0);
        CHECK_EQ(d.ejected, 1);
        CHECK_EQ(d.fail_open, 0);
    }
    atomic_store(&cnt.ejected_until_ns[0], NOW); /* expired */
    CHECK_EQ(pick(&c, s, "llama", 20, 1, &d), 0);
    CHECK_EQ(d.ejected, 0);
    /* a connect failure's down mark and ejections alike: every pod out */
    atomic_store(&cnt.ejected_until_ns[0], NOW + 1);
    atomic_store(&cnt.ejected_until_ns[1], NOW + 1);
    atomic_store(&cnt.down_until_ns[2], NOW + 1);
    CHECK_EQ(pick(&c, s, "llama", 20, 1, &d), 0); /* fail open: all kept, prefix wins */
    CHECK_EQ(d.status, ROUTE_OK);
    CHECK_EQ(d.fail_open, 1);
    CHECK_EQ(d.candidates, 3);
    /* a health check that fails is not failed open: unhealthy stays out */
    s->pods[0].healthy = 0;
    s->pods[1].healthy = 0;
    s->pods[2].healthy = 0;
    pick(&c, s, "llama", 20, 1, &d);
    CHECK_EQ(d.status, ROUTE_NO_POD);
    snapshot_put(s);
}

TEST(a_retry_avoids_pods_that_just_failed)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(3);
    atomic_store(&cnt.last_fail_ns[1], NOW - 1000);
    struct route_input in = {.model = "llama", .nkeys = 0, .match = match, .session_slot = -1,
                             .now_ns = NOW, .exclude_slot = 0,
                             .avoid_failed_since_ns = NOW - 5000};
    for (uint64_t r = 0; r < 20; r++) {
        in.rand = r;
        policy_pick(&c, s, &cnt, &st, &in, &d);
        CHECK_EQ(d.idx, 2); /* 0 is the one it left, 1 failed 1 us ago */
    }
    in.avoid_failed_since_ns = NOW - 500; /* 1 failed before that: allowed again */
    int seen1 = 0;
    for (uint64_t r = 0; r < 40; r++) {
        in.rand = r * 7919;
        policy_pick(&c, s, &cnt, &st, &in, &d);
        seen1 |= d.idx == 1;
        CHECK(d.idx != 0);
    }
    CHECK(seen1);
    /* the only other pod failed recently: still tried (fail open) */
    atomic_store(&cnt.last_fail_ns[2], NOW - 100);
    in.avoid_failed_since_ns = NOW - 5000;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.status, ROUTE_OK);
    CHECK_EQ(d.fail_open, 1);
    CHECK(d.idx == 1 || d.idx == 2);
    snapshot_put(s);
}

TEST(session_affinity_and_lora_affinity)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    struct pod_snapshot *s = fleet(3);
    struct route_input in = {.model = "llama", .nkeys = 0, .match = match, .session_slot = 2,
                             .rand = 5, .now_ns = NOW, .exclude_slot = UINT32_MAX};
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 2);
    CHECK_EQ(d.reason, REASON_SESSION);
    for (int i = 0; i < 3; i++) {
        strcpy(s->pods[i].adapters[0], "a");
        s->pods[i].nadapters = 1;
    }
    s->pods[1].running_loras = 1;
    in.model = "a";
    in.session_slot = -1;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    snapshot_put(s);
}

/* pod_fitness, the one judgment of a pod's load (the kernel's pod table
 * uses it too): freshness at the stale_ms edge and for a scrape stamped
 * after "now", the in-flight estimate, the session relaxation, KV. */
TEST(pod_fitness_rules)
{
    struct policy_cfg cfg;
    policy_defaults(&cfg);
    struct pod_info p;
    memset(&p, 0, sizeof(p));
    p.metrics_ok = 1;
    p.scraped_ns = NOW - 200000000ull; /* exactly stale_ms */
    struct pod_fitness f;
    pod_fitness(&cfg, &p, 0, NOW, 0, &f);
    CHECK_EQ(f.fresh, 1);
    CHECK_EQ(f.saturated, 0);
    pod_fitness(&cfg, &p, 0, NOW + 1, 0, &f);
    CHECK_EQ(f.fresh, 0);
    CHECK_EQ(f.saturated, 1);
    p.scraped_ns = NOW + 5000000; /* scraped after the caller read its clock */
    pod_fitness(&cfg, &p, 0, NOW, 0, &f);
    CHECK_EQ(f.fresh, 1);
    p.metrics_ok = 0;
    pod_fitness(&cfg, &p, 0, NOW, 0, &f);
    CHECK_EQ(f.fresh, 0);
    CHECK_EQ(f.saturated, 1);
    p.metrics_ok = 1;
    p.scraped_ns = NOW;
    /* queue: scraped 2 waiting + 3 running; 9 in flight at the gateway */
    p.waiting = 2, p.running = 3;
    pod_fitness(&cfg, &p, 9, NOW, 0, &f);
    CHECK_NEAR(f.est_waiting, 6, 0);
    CHECK_EQ(f.saturated, 1);
    pod_fitness(&cfg, &p, 4, NOW, 0, &f);
    CHECK_NEAR(f.est_waiting, 2, 0);
    CHECK_EQ(f.saturated, 0);
    /* a session's own pod: saturated at 5 x 2.0 / 1.25 = 8 waiting */
    p.waiting = 7, p.running = 0;
    pod_fitness(&cfg, &p, 0, NOW, 0, &f);
    CHECK_EQ(f.saturated, 1);
    pod_fitness(&cfg, &p, 0, NOW, 1, &f);
    CHECK_EQ(f.saturated, 0);
    p.waiting = 8;
    pod_fitness(&cfg, &p, 0, NOW, 1, &f);
    CHECK_EQ(f.saturated, 1);
    /* no relaxation without the bounded-load guard, nor for KV */
    p.waiting = 7;
    cfg.bounded_load = 0;
    pod_fitness(&cfg, &p, 0, NOW, 1, &f);
    CHECK_EQ(f.saturated, 1);
    policy_defaults(&cfg);
    p.waiting = 0, p.kv_usage = 0.8;
    pod_fitness(&cfg, &p, 0, NOW, 1, &f);
    CHECK_EQ(f.saturated, 1);
}

/* token-load: the request goes where its first token should come
 * soonest: the prefix-holding pod while its queue is short, elsewhere once
 * the queue there costs more than re-paying the prefill. */
static struct tokload tl;

static int pick_tl(const struct policy_cfg *cfg, struct pod_snapshot *s, uint32_t nkeys,
                   uint32_t prompt, double tpk, uint64_t rnd, struct route_decision *d)
{
    struct route_input in = {.model = "llama", .nkeys = nkeys, .match = match,
                             .session_slot = -1, .rand = rnd, .now_ns = NOW,
                             .exclude_slot = UINT32_MAX, .prompt_tokens = prompt,
                             .tokens_per_key = tpk, .tl = &tl};
    policy_pick(cfg, s, &cnt, &st, &in, d);
    return d->idx;
}

/* Sets a pod's measured rate by one serial prefill sample. */
static void measure(uint32_t slot, uint32_t tokens, uint64_t ms)
{
    struct tokload_req r = {0};
    tokload_route(&tl, &r, slot, tokens, tokens);
    r.sent_ns = NOW;
    tokload_first_token(&tl, &r, NOW + ms * 1000000ull);
    tokload_release(&tl, &r);
}

TEST(token_load_sticks_to_the_prefix_until_its_queue_costs_more)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    c.mode = POLICY_TOKEN_LOAD;
    CHECK(!strcmp(policy_mode_name(POLICY_TOKEN_LOAD), "token-load"));
    enum policy_mode m;
    CHECK_EQ(policy_mode_parse("token-load", &m), 0);
    CHECK_EQ(m, POLICY_TOKEN_LOAD);
    reset();
    tokload_init(&tl);
    struct pod_snapshot *s = fleet(3);
    /* 6,000-token prompt, 100 keys of 48 tokens: pod 1 holds 4,800 of it */
    match[1] = 100;
    CHECK_EQ(pick_tl(&c, s, 125, 6000, 48, 1, &d), 1);
    CHECK_EQ(d.reason, REASON_PREFIX);
    /* rates unknown: compared in tokens. Pod 1 has 4,000 uncached tokens
     * queued: 4,000 + 1,200 < 6,000 there, so it still wins */
    struct tokload_req q = {0};
    tokload_route(&tl, &q, 1, 4000, 4000);
    CHECK_EQ(pick_tl(&c, s, 125, 6000, 48, 2, &d), 1);
    /* 5,000 queued: 6,200 > 6,000 on an idle pod: released */
    struct tokload_req q2 = {0};
    tokload_route(&tl, &q2, 1, 1000, 1000);
    int p = pick_tl(&c, s, 125, 6000, 48, 3, &d);
    CHECK(p == 0 || p == 2);
    CHECK_EQ(d.reason, REASON_LOAD);
    /* measured: pod 1 prefills 5x faster than the others (50,000 vs
     * 10,000 tokens/s): its 6,200 tokens take 124 ms, 6,000 elsewhere 600 */
    measure(1, 50000, 1000);
    measure(0, 10000, 1000);
    measure(2, 10000, 1000);
    CHECK_EQ(pick_tl(&c, s, 125, 6000, 48, 4, &d), 1);
    CHECK(d.eta_ms > 123 && d.eta_ms < 125);
    tokload_release(&tl, &q);
    tokload_release(&tl, &q2);
    snapshot_put(s);
    tokload_fini(&tl);
}

TEST(token_load_spreads_equal_work_and_keeps_the_filters)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    c.mode = POLICY_TOKEN_LOAD;
    reset();
    tokload_init(&tl);
    struct pod_snapshot *s = fleet(4);
    /* no prefix anywhere: each request goes to the pod with the least
     * queued prefill, so four of them land on four pods */
    struct tokload_req r[4];
    memset(r, 0, sizeof(r));
    int used[4] = {0};
    for (int i = 0; i < 4; i++) {
        int p = pick_tl(&c, s, 10, 2000, 48, (uint64_t)i * 7919, &d);
        CHECK(p >= 0 && p < 4);
        used[p]++;
        tokload_route(&tl, &r[i], (uint32_t)p, 2000, 2000);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(used[i], 1);
    /* a saturated pod is filtered out even with the best prefix */
    for (int i = 0; i < 4; i++)
        tokload_release(&tl, &r[i]);
    match[3] = 10;
    s->pods[3].waiting = 50;
    CHECK(pick_tl(&c, s, 10, 2000, 48, 5, &d) != 3);
    /* equal queues: less decode load wins */
    s->pods[3].waiting = 0;
    match[3] = 0;
    struct tokload_req dec[3];
    memset(dec, 0, sizeof(dec));
    for (int i = 0; i < 3; i++) {
        tokload_route(&tl, &dec[i], (uint32_t)i, 100, 0);
        tokload_first_token(&tl, &dec[i], NOW);
    }
    CHECK_EQ(pick_tl(&c, s, 10, 2000, 48, 6, &d), 3);
    for (int i = 0; i < 3; i++)
        tokload_release(&tl, &dec[i]);
    snapshot_put(s);
    tokload_fini(&tl);
}

/* Requests the kernel sent a pod (spliced flows: struct pod_kload, the
 * mmapped kvg_pod_load) count in its load as the gateway's own do. */
TEST(kernel_sent_requests_count_in_the_load)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c);
    reset();
    static struct pod_kload kl[POD_MAX];
    memset(kl, 0, sizeof(kl));
    cnt.kload = kl;
    struct pod_snapshot *s = fleet(2);
    /* pod 0: 5 sent, 1 answered, 1 written off (its flow ended): 3 there */
    kl[0].sent = 5;
    kl[0].done = 1;
    kl[0].sent_body = 5 * 4000;
    atomic_store(&cnt.kload_lost[0], 1);
    CHECK_EQ(pod_kernel_inflight(&cnt, 0), 3);
    CHECK_EQ(pod_inflight(&cnt, 0), 3);
    atomic_store(&cnt.inflight[0], 2);
    CHECK_EQ(pod_inflight(&cnt, 0), 5);
    atomic_store(&cnt.inflight[0], 0);
    CHECK_EQ(pod_kernel_mean_body(&cnt, 0), 4000.0);
    /* least-request goes to the other pod, every time */
    c.mode = POLICY_LEAST_REQUEST;
    for (uint64_t r = 0; r < 16; r++)
        CHECK_EQ(pick(&c, s, "llama", 10, r * 2654435761u, &d), 1);
    /* prefix-aware: 3 at a pod scraped idle make its queue estimate 3 */
    c.mode = POLICY_PREFIX_AWARE;
    c.queue_sat = 3;
    c.bounded_load = 0;
    match[0] = 10;
    CHECK_EQ(pick(&c, s, "llama", 10, 1, &d), 1);
    /* token-load: equal queues, the kernel's requests are decode load
     * (4000 body bytes at 4 bytes a token: 3 x 1000 tokens) */
    c.mode = POLICY_TOKEN_LOAD;
    c.queue_sat = 100;
    match[0] = 0;
    tokload_init(&tl);
    struct route_input in = {.model = "llama", .nkeys = 10, .match = match,
                             .session_slot = -1, .rand = 3, .now_ns = NOW,
                             .exclude_slot = UINT32_MAX, .prompt_tokens = 100,
                             .tokens_per_key = 10, .tl = &tl, .bytes_per_token = 0};
    struct tokload_req dec;
    memset(&dec, 0, sizeof(dec));
    tokload_route(&tl, &dec, 1, 2000, 0); /* pod 1: 2000 decode tokens of its own */
    tokload_first_token(&tl, &dec, NOW);
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0); /* bytes_per_token 0: they count in requests only */
    in.bytes_per_token = 4; /* 3000 decode tokens against pod 1's 2000 */
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    tokload_release(&tl, &dec);
    tokload_fini(&tl);
    /* never below zero (a write-off racing an answer) */
    atomic_store(&cnt.kload_lost[0], 9);
    CHECK_EQ(pod_kernel_inflight(&cnt, 0), 0);
    /* a rebase writes off everything outstanding */
    atomic_store(&cnt.kload_lost[0], 0);
    pod_kload_rebase(&cnt);
    CHECK_EQ(pod_kernel_inflight(&cnt, 0), 0);
    kl[0].sent++;
    CHECK_EQ(pod_kernel_inflight(&cnt, 0), 1);
    cnt.kload = NULL;
    CHECK_EQ(pod_kernel_inflight(&cnt, 0), 0);
    snapshot_put(s);
}

/* Replicas: a gateway that sees a third of the traffic judges each pod
 * by every sender's load (pod_load_estimate): the others' from the scrape,
 * their sends since extrapolated from its own by its share. */
TEST(replicas_see_the_load_other_gateways_put_on_a_pod)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c); /* queue_sat 5 */
    c.bounded_load = 0;
    reset();
    struct pod_snapshot *s = fleet(2);
    struct pod_info *p0 = &s->pods[0];
    match[0] = 30; /* pod 0 holds the prefix */
    /* pod 0 reported 2 running + 4 waiting when 1 of them was ours */
    p0->running = 2;
    p0->waiting = 4;
    p0->own_at_scrape = 1;
    atomic_store(&cnt.inflight[0], 1);
    CHECK_EQ(pod_load_estimate(&c, p0, 1, 1, NOW), 6.0);
    struct pod_fitness f;
    pod_fitness(&c, p0, 6.0, NOW, 0, &f);
    CHECK_EQ(f.est_waiting, 4.0);
    CHECK_EQ(f.saturated, 0);
    /* we sent 1 more since the scrape, at a share of 1/3: the others
     * likely sent 2: 6 + 1 + 2 = 9 requests, 7 beyond running: saturated */
    atomic_store(&cnt.inflight[0], 2);
    CHECK_EQ(pod_load_estimate(&c, p0, 2, 1.0 / 3, NOW), 9.0);
    struct route_input in = {.model = "llama", .nkeys = 30, .match = match,
                             .session_slot = -1, .rand = 5, .now_ns = NOW,
                             .exclude_slot = UINT32_MAX, .load_share = 1.0 / 3};
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    /* alone (share 1) the same sends make 7 requests, 5 beyond running:
     * saturated as well (queue_sat 5) ... */
    in.load_share = 1;
    CHECK_EQ(pod_load_estimate(&c, p0, 2, 1, NOW), 7.0);
    /* ... while before our send it kept the prefix */
    atomic_store(&cnt.inflight[0], 1);
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0);
    /* a pod that reported only ours: the estimate is our count */
    p0->running = 1;
    p0->waiting = 0;
    CHECK_EQ(pod_load_estimate(&c, p0, 1, 1.0 / 3, NOW), 1.0);
    /* a stale scrape says nothing of the others */
    p0->running = 50;
    CHECK_EQ(pod_load_estimate(&c, p0, 1, 1.0 / 3, NOW + (uint64_t)c.stale_ms * 2000000ull), 1.0);
    snapshot_put(s);
}

/* Replicas with the pods' KV events: the others' sends since the scrape
 * are read (route_input.others_since), not extrapolated from our share. */
TEST(replicas_read_the_others_sends_from_kv_events)
{
    struct policy_cfg c;
    struct route_decision d;
    policy_defaults(&c); /* queue_sat 5 */
    c.bounded_load = 0;
    reset();
    struct pod_snapshot *s = fleet(2);
    struct pod_info *p0 = &s->pods[0];
    match[0] = 30; /* pod 0 holds the prefix */
    p0->running = 2;
    p0->waiting = 0;
    p0->own_at_scrape = 1;
    atomic_store(&cnt.inflight[0], 2); /* one of ours sent since the scrape */
    double since[POD_MAX] = {0};
    struct route_input in = {.model = "llama", .nkeys = 30, .match = match,
                             .session_slot = -1, .rand = 5, .now_ns = NOW,
                             .exclude_slot = UINT32_MAX, .load_share = 1.0 / 3,
                             .others_since = since};
    /* the events say nobody else sent there: 2 + 1 others = 3, not the
     * extrapolation's 2 + 1 + 2 = 5: the prefix is kept */
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0);
    /* the events say others placed 4 requests' worth of prefill there since:
     * 2 + 1 + 4 = 7, 5 beyond running: saturated, the other pod */
    since[0] = 4;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    /* a pod whose events are not exact (< 0): its others are extrapolated
     * from our share as before. Two of ours since the scrape: 2 + 2 + 4 =
     * 8, saturated (read as 0 from the events it would be 4: kept) */
    since[0] = -1;
    atomic_store(&cnt.inflight[0], 3);
    CHECK_EQ(pod_load_estimate(&c, p0, 3, 1.0 / 3, NOW), 8.0);
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 1);
    since[0] = 0;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK_EQ(d.idx, 0);
    atomic_store(&cnt.inflight[0], 2);
    /* a stale scrape: the others' terms count for nothing, ours alone */
    in.now_ns = NOW + (uint64_t)c.stale_ms * 2000000ull;
    p0->running = 50;
    policy_pick(&c, s, &cnt, &st, &in, &d);
    CHECK(d.degraded || d.idx == 0);
    snapshot_put(s);
}

TEST(load_share_is_a_ratio_of_moving_averages)
{
    struct load_share ls;
    memset(&ls, 0, sizeof(ls));
    CHECK_EQ(load_share_value(&ls), 1.0); /* nothing seen: alone */
    load_share_update(&ls, 10, 30, 1000);
    CHECK(fabs(load_share_value(&ls) - 1.0 / 3) < 1e-9);
    /* a lone gateway running ahead of the scrape is still 1, not more */
    memset(&ls, 0, sizeof(ls));
    load_share_update(&ls, 12, 10, 1000);
    CHECK_EQ(load_share_value(&ls), 1.0);
    /* moves toward a new ratio with the time constant */
    memset(&ls, 0, sizeof(ls));
    load_share_update(&ls, 30, 30, 1000);
    load_share_update(&ls, 10, 30, 1000 + LOAD_SHARE_TAU_NS);
    double v = load_share_value(&ls); /* own 30 - 20 x 0.632 = 17.4 of 30 */
    CHECK(v > 0.55 && v < 0.6);
    for (int i = 2; i < 40; i++)
        load_share_update(&ls, 10, 30, 1000 + (uint64_t)i * LOAD_SHARE_TAU_NS);
    CHECK(fabs(load_share_value(&ls) - 1.0 / 3) < 1e-3);
    /* never below 1/POD_MAX */
    load_share_update(&ls, 0, 1e9, 1000 + 400 * LOAD_SHARE_TAU_NS);
    CHECK_EQ(load_share_value(&ls), 1.0 / POD_MAX);
}

int main(void)
{
    RUN(pod_fitness_rules);
    RUN(prefix_match_wins_when_load_is_equal);
    RUN(filters_model_adapter_health);
    RUN(saturated_warm_pod_loses_to_idle_cold_pod);
    RUN(a_sessions_own_pod_saturates_later);
    RUN(gateway_inflight_raises_the_queue_estimate);
    RUN(stale_metrics_count_as_saturated_then_degraded);
    RUN(bounded_load_stops_a_hot_prefix_piling_up);
    RUN(bounded_load_is_looser_for_a_sessions_own_pod);
    RUN(ties_are_broken_at_random);
    RUN(simple_modes);
    RUN(shadow_routes_by_baseline_and_records_the_pick);
    RUN(canary_share);
    RUN(retry_excludes_the_failed_pod);
    RUN(session_affinity_and_lora_affinity);
    RUN(failed_pods_are_left_out_unless_none_would_remain);
    RUN(a_retry_avoids_pods_that_just_failed);
    RUN(token_load_sticks_to_the_prefix_until_its_queue_costs_more);
    RUN(token_load_spreads_equal_work_and_keeps_the_filters);
    RUN(kernel_sent_requests_count_in_the_load);
    RUN(replicas_see_the_load_other_gateways_put_on_a_pod);
    RUN(replicas_read_the_others_sends_from_kv_events);
    RUN(load_share_is_a_ratio_of_moving_averages);
    return harness_done();
}
