/* Tests for user/gateway/kvsub.c on real ZMQ sockets (loopback TCP, the
 * publisher played by the test): malformed frames and batches counted, a
 * replay that never answers (timeout -> the gap is lost -> SYNCING), the
 * silence rule (scraped computed tokens with no event -> APPROXIMATE, then
 * back when a batch arrives), and pods removed from the configuration.
 * kvsub_poll drives the subscriber in this thread. */
#include "gateway/kvsub.h"
#include "harness.h"
#include "kvev_pack.h"

#include <zmq.h>

static void *CTX;

static void pump(struct kvsub *s, int ms)
{
    for (int t = 0; t < ms; t += 10)
        kvsub_poll(s, 10);
}

/* A bound socket on an ephemeral loopback port; its endpoint into ep. */
static void *bound(int type, char *ep, size_t n)
{
    void *k = zmq_socket(CTX, type);
    int linger = 0;
    zmq_setsockopt(k, ZMQ_LINGER, &linger, sizeof(linger));
    if (zmq_bind(k, "tcp://127.0.0.1:*")) {
        zmq_close(k);
        return NULL;
    }
    zmq_getsockopt(k, ZMQ_LAST_ENDPOINT, ep, &n);
    return k;
}

static void publish(void *pub, uint64_t seq, const void *d, size_t n)
{
    uint8_t q[8];
    for (int i = 0; i < 8; i++)
        q[i] = (uint8_t)(seq >> (56 - 8 * i));
    zmq_send(pub, "kv@t", 4, ZMQ_SNDMORE);
    zmq_send(pub, q, 8, ZMQ_SNDMORE);
    zmq_send(pub, d, n, 0);
}

static void empty_batch(struct kp *k)
{
    kp_reset(k);
    kp_batch(k, 1.0, 0);
}

static struct kvsub_pod_stats st(struct kvsub *s, uint32_t slot)
{
    struct kvsub_pod_stats v;
    kvsub_pod_stats(s, slot, &v);
    return v;
}

struct rig {
    struct kvindex *x;
    struct kvsub *s;
    void *pub, *router;
    char ep[KVSUB_EP_MAX], rep[KVSUB_EP_MAX];
};

static int rig_up(struct rig *r, int with_replay, uint32_t silence_ms)
{
    memset(r, 0, sizeof(*r));
    r->x = kvx_new(4, 4096, 1024);
    struct kvsub_cfg c = {.replay_timeout_ms = 200, .silence_ms = silence_ms,
                          .silence_tokens = 4096, .max_pods = 4};
    r->s = r->x ? kvsub_new(r->x, &c) : NULL;
    r->pub = bound(ZMQ_PUB, r->ep, sizeof(r->ep));
    if (with_replay)
        r->router = bound(ZMQ_ROUTER, r->rep, sizeof(r->rep)); /* never answers */
    if (!r->s || !r->pub || (with_replay && !r->router))
        return -1;
    struct kvsub_pod_cfg pc = {.slot = 1, .model = "m"};
    snprintf(pc.events, sizeof(pc.events), "%s", r->ep);
    if (with_replay)
        snprintf(pc.replay, sizeof(pc.replay), "%s", r->rep);
    snprintf(pc.topic, sizeof(pc.topic), "kv@");
    if (kvsub_set_pods(r->s, &pc, 1))
        return -1;
    pump(r->s, 300); /* connect, and the slow joiner's subscription */
    return 0;
}

static void rig_down(struct rig *r)
{
    kvsub_free(r->s);
    kvx_free(r->x);
    if (r->pub)
        zmq_close(r->pub);
    if (r->router)
        zmq_close(r->router);
}

TEST(bad_frames_and_batches)
{
    struct rig r;
    CHECK_EQ(rig_up(&r, 0, 3000), 0);
    struct kp k;
    kp_init(&k);
    CHECK_EQ(st(r.s, 1).configured, 1);
    zmq_send(r.pub, "kv@t", 4, ZMQ_SNDMORE); /* two frames only */
    zmq_send(r.pub, "x", 1, 0);
    publish(r.pub, 0, "\xc1", 1); /* 0xc1: never valid msgpack */
    empty_batch(&k);
    publish(r.pub, 1, k.sb.data, k.sb.size);
    pump(r.s, 300);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.frames, 3);
    CHECK_EQ(v.bad_frames, 1);
    CHECK_EQ(v.decode_errors, 1);
    CHECK_EQ(v.index.bad_batches, 1);
    CHECK_EQ(v.index.batches, 1);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    CHECK_EQ(v.index.why, KVX_WHY_BAD_BATCH);
    kp_free(&k);
    rig_down(&r);
}

TEST(replay_without_answer)
{
    struct rig r;
    CHECK_EQ(rig_up(&r, 1, 3000), 0);
    struct kp k;
    kp_init(&k);
    empty_batch(&k);
    publish(r.pub, 0, k.sb.data, k.sb.size);
    pump(r.s, 100);
    CHECK_EQ(st(r.s, 1).index.mode, KVX_EXACT);
    publish(r.pub, 2, k.sb.data, k.sb.size); /* 1 is lost */
    pump(r.s, 100);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_GAPPED);
    CHECK_EQ(v.replay_requests, 1);
    CHECK_EQ(v.kept_batches, 1);
    pump(r.s, 400); /* past replay_timeout_ms */
    v = st(r.s, 1);
    CHECK_EQ(v.replay_timeouts, 1);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    CHECK_EQ(v.index.why, KVX_WHY_GAP_UNFILLED);
    CHECK_EQ(v.index.next_seq, 3); /* the kept batch was applied */
    CHECK_EQ(v.index.batches, 2);
    kp_free(&k);
    rig_down(&r);
}

TEST(silence_rule)
{
    struct rig r;
    CHECK_EQ(rig_up(&r, 0, 200), 0);
    struct kp k;
    kp_init(&k);
    empty_batch(&k);
    publish(r.pub, 0, k.sb.data, k.sb.size);
    kvsub_note_scrape(r.s, 1, 1000, 500, 2048);
    pump(r.s, 400);
    CHECK_EQ(st(r.s, 1).index.mode, KVX_EXACT);
    CHECK_EQ(st(r.s, 1).index.limit, 2048); /* the scraped cache size */
    /* hits alone: no event expected, none came, nothing said */
    kvsub_note_scrape(r.s, 1, 100000, 99500, 2048);
    pump(r.s, 800);
    CHECK_EQ(st(r.s, 1).index.mode, KVX_EXACT);
    /* 10k computed tokens and no batch: silent */
    kvsub_note_scrape(r.s, 1, 110000, 99500, 2048);
    for (int t = 0; t < 2000 && st(r.s, 1).index.mode != KVX_APPROXIMATE; t += 50)
        pump(r.s, 50);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_APPROXIMATE);
    CHECK_EQ(v.index.why, KVX_WHY_SILENT);
    CHECK_EQ(v.silent_episodes, 1);
    CHECK_EQ(v.resubscribes, 1);
    /* events again (the new socket joins slowly: publish until one lands) */
    for (int i = 1; i < 40 && st(r.s, 1).index.mode != KVX_EXACT; i++) {
        publish(r.pub, (uint64_t)i, k.sb.data, k.sb.size);
        pump(r.s, 50);
    }
    v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_EXACT);
    CHECK(v.index.transitions >= 3);
    kp_free(&k);
    rig_down(&r);
}

TEST(pods_removed)
{
    struct rig r;
    CHECK_EQ(rig_up(&r, 0, 3000), 0);
    CHECK_EQ(st(r.s, 1).configured, 1);
    CHECK_EQ(kvsub_set_pods(r.s, NULL, 0), 0);
    pump(r.s, 50);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.configured, 0);
    CHECK_EQ(v.index.why, KVX_WHY_NOT_CONFIGURED);
    struct kvsub_pod_cfg bad = {.slot = 9};
    CHECK_EQ(kvsub_set_pods(r.s, &bad, 1), -EINVAL);
    /* a pod whose model is not known yet is not subscribed */
    struct kvsub_pod_cfg nomodel = {.slot = 2};
    snprintf(nomodel.events, sizeof(nomodel.events), "%s", r.ep);
    CHECK_EQ(kvsub_set_pods(r.s, &nomodel, 1), 0);
    pump(r.s, 50);
    CHECK_EQ(st(r.s, 2).configured, 0);
    /* the thread starts and stops */
    CHECK_EQ(kvsub_start(r.s), 0);
    CHECK_EQ(kvsub_start(r.s), -EINVAL);
    kvsub_stop(r.s);
    rig_down(&r);
}

int main(void)
{
    CTX = zmq_ctx_new();
    RUN(bad_frames_and_batches);
    RUN(replay_without_answer);
    RUN(silence_rule);
    RUN(pods_removed);
    zmq_ctx_term(CTX);
    return harness_done();
}
