/* Unit tests for user/gateway/route.c: the per-request routing calls of
 * the data path over a real snapshot: a pick counts one in-flight request
 * at the pod and credits the prefix index and the session, release undoes
 * the count once, a model's own policy is the one applied, a retry avoids
 * the pod it left, and the body scan fills the request. */
#include "harness.h"
#include "gw_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"

/* Longer than a few of the fingerprint's 64-byte blocks. */
#define LONG "a long shared system prompt that spans several of the fingerprint's 64-byte blocks, so that the prefix index has something to credit and to find again on the next request ..."

static struct gw g;

static void setup_once(void)
{
    gw_fixture_init(&g);
    struct pod_snapshot *s = snapshot_new(3);
    for (int i = 0; i < 3; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = (uint32_t)i;
        snprintf(p->name, sizeof(p->name), "pod%d", i);
        p->healthy = p->metrics_ok = 1;
        p->nmodels = 1;
        strcpy(p->models[0], i < 2 ? "llama" : "qwen");
    }
    snapshot_publish(s);
}

/* A request as the body scan leaves it. */
static void scanned(struct gw_request *r, const char *body)
{
    memset(r, 0, sizeof(*r));
    struct gw_scan *sc = gw_scan_new(&g);
    CHECK(sc != NULL);
    CHECK_EQ(gw_scan_feed(sc, body, strlen(body)), 0);
    const char *err = NULL;
    size_t off = 0;
    CHECK_EQ(gw_scan_finish(sc, r, &err, &off), 0);
    gw_scan_free(sc);
}

static unsigned inflight(int slot)
{
    return atomic_load(&g.counters.inflight[slot]);
}

TEST(scan_fills_the_request)
{
    struct gw_request r;
    scanned(&r, "{\"prompt\":\"" LONG "\",\"stream\":true,\"model\":\"llama\",\"user\":\"a@b\"}");
    CHECK(!strcmp(r.model, "llama"));
    CHECK_EQ(r.stream, 1);
    CHECK(r.nkeys >= 1);
    CHECK(!strcmp(r.tenant, "")); /* "user" is not a tenant unless asked for */
    struct gw_request r2;
    scanned(&r2, "{\"prompt\":\"" LONG "\",\"model\":\"qwen\"}");
    CHECK(r.keys[0] != r2.keys[0]); /* the model enters the key */
}

TEST(pick_counts_and_release_undoes_once)
{
    struct gw_request r;
    scanned(&r, "{\"model\":\"llama\",\"prompt\":\"" LONG "\"}");
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK(r.routed);
    CHECK(r.pod.slot < 2); /* a pod that serves llama */
    CHECK_EQ(inflight((int)r.pod.slot), 1);
    uint16_t match[POD_MAX];
    pidx_lookup(g.pidx, r.keys, r.nkeys, match);
    CHECK_EQ(match[r.pod.slot], r.nkeys); /* credited: the pod will hold the prefix */
    gw_route_release(&g, &r);
    gw_route_release(&g, &r);
    CHECK_EQ(inflight((int)r.pod.slot), 0);
    /* the same prompt again: the pod that holds it */
    struct gw_request r2;
    scanned(&r2, "{\"model\":\"llama\",\"prompt\":\"" LONG "\"}");
    CHECK_EQ(gw_route(&g, &r2, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r2.pod.slot, r.pod.slot);
    gw_route_release(&g, &r2);
}

TEST(a_failed_attempt_withdraws_its_credit)
{
    /* pod X held the first blocks of P (an earlier, shorter prompt) */
    const char *shortp = "{\"model\":\"llama\",\"prompt\":\"withdraw: " LONG "\"}";
    const char *longp = "{\"model\":\"llama\",\"prompt\":\"withdraw: " LONG LONG "\"}";
    struct gw_request a, r;
    scanned(&a, shortp);
    CHECK_EQ(gw_route(&g, &a, UINT32_MAX), ROUTE_OK);
    gw_route_release(&g, &a);
    scanned(&r, longp);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.pod.slot, a.pod.slot); /* the pod holding its prefix */
    CHECK(r.nkeys > a.nkeys);
    uint16_t m[POD_MAX];
    pidx_lookup(g.pidx, r.keys, r.nkeys, m);
    CHECK_EQ(m[r.pod.slot], r.nkeys); /* credited whole */
    /* the attempt failed before the pod prefilled: the new part goes back,
     * what it held before stays */
    gw_route_withdraw(&g, &r);
    pidx_lookup(g.pidx, r.keys, r.nkeys, m);
    CHECK_EQ(m[r.pod.slot], a.nkeys);
    gw_route_withdraw(&g, &r); /* once */
    pidx_lookup(g.pidx, r.keys, r.nkeys, m);
    CHECK_EQ(m[r.pod.slot], a.nkeys);
    gw_route_release(&g, &r);
}

TEST(unknown_model_and_retry_exclusion)
{
    struct gw_request r;
    scanned(&r, "{\"model\":\"gpt-9\",\"prompt\":\"x\"}");
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_UNKNOWN_MODEL);
    CHECK(!r.routed);
    scanned(&r, "{\"model\":\"llama\",\"prompt\":\"y\"}");
    CHECK_EQ(gw_route(&g, &r, 0), ROUTE_OK);
    CHECK_EQ(r.pod.slot, 1); /* the retry avoids slot 0 */
    gw_route_release(&g, &r);
    scanned(&r, "{\"model\":\"qwen\",\"prompt\":\"z\"}");
    CHECK_EQ(gw_route(&g, &r, 2), ROUTE_NO_POD); /* its only pod is the one it left */
}

TEST(a_models_own_policy_applies)
{
    pthread_mutex_lock(&g.policy_mu);
    g.policies.noverrides = 1;
    strcpy(g.policies.overrides[0].model, "qwen");
    g.policies.overrides[0].policy = g.policies.global;
    g.policies.overrides[0].policy.mode = POLICY_ROUND_ROBIN;
    pthread_mutex_unlock(&g.policy_mu);
    struct gw_request r;
    scanned(&r, "{\"model\":\"qwen\",\"prompt\":\"z\"}");
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.d.mode, POLICY_ROUND_ROBIN);
    gw_route_release(&g, &r);
    scanned(&r, "{\"model\":\"llama\",\"prompt\":\"z\"}");
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.d.mode, POLICY_PREFIX_AWARE);
    gw_route_release(&g, &r);
    g.policies.noverrides = 0;
}

TEST(a_session_sticks_to_its_pod)
{
    struct gw_request r;
    scanned(&r, "{\"model\":\"llama\",\"prompt\":\"turn one\"}");
    strcpy(r.session, "s-42");
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    uint32_t first = r.pod.slot;
    gw_route_release(&g, &r);
    for (int i = 0; i < 10; i++) {
        char body[96];
        snprintf(body, sizeof(body), "{\"model\":\"llama\",\"prompt\":\"turn %d\"}", i + 2);
        scanned(&r, body);
        strcpy(r.session, "s-42");
        CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
        CHECK_EQ(r.pod.slot, first);
        gw_route_release(&g, &r);
    }
}

int main(void)
{
    setup_once();
    RUN(scan_fills_the_request);
    RUN(pick_counts_and_release_undoes_once);
    RUN(a_failed_attempt_withdraws_its_credit);
    RUN(unknown_model_and_retry_exclusion);
    RUN(a_models_own_policy_applies);
    RUN(a_session_sticks_to_its_pod);
    return harness_done();
}
