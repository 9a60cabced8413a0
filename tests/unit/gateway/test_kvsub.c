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

/* Pump the subscriber until the publisher hears a subscription (the first
 * byte 1 of an XPUB message), ms at most; 1 when one came. */
static int rig_subscribed(struct rig *r, int ms)
{
    for (int t = 0; t < ms; t += 10) {
        uint8_t m[64];
        int n;
        while ((n = zmq_recv(r->pub, m, sizeof(m), ZMQ_DONTWAIT)) > 0)
            if (m[0] == 1)
                return 1;
        kvsub_poll(r->s, 10);
    }
    return 0;
}

static uint32_t rig_replay_timeout_ms = 200;

static int rig_up(struct rig *r, int with_replay, uint32_t silence_ms)
{
    memset(r, 0, sizeof(*r));
    r->x = kvx_new(4, 4096, 1024);
    struct kvsub_cfg c = {.replay_timeout_ms = rig_replay_timeout_ms, .silence_ms = silence_ms,
                          .silence_tokens = 4096, .max_pods = 4};
    r->s = r->x ? kvsub_new(r->x, &c) : NULL;
    /* XPUB: a publisher that also hears who subscribes, so a test can wait
     * for a subscription instead of publishing into a slow joiner */
    r->pub = bound(ZMQ_XPUB, r->ep, sizeof(r->ep));
    int verbose = 1;
    if (r->pub)
        zmq_setsockopt(r->pub, ZMQ_XPUB_VERBOSE, &verbose, sizeof(verbose));
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
    return rig_subscribed(r, 10000) ? 0 : -1; /* which the publisher has heard */
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
    /* the probe at subscription got no answer either */
    pump(r.s, 300);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.replay_requests, 1);
    CHECK_EQ(v.replay_timeouts, 1);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    empty_batch(&k);
    publish(r.pub, 0, k.sb.data, k.sb.size); /* a publisher that starts now */
    pump(r.s, 100);
    CHECK_EQ(st(r.s, 1).index.mode, KVX_EXACT);
    publish(r.pub, 2, k.sb.data, k.sb.size); /* 1 is lost */
    pump(r.s, 100);
    v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_GAPPED);
    CHECK_EQ(v.replay_requests, 2);
    CHECK_EQ(v.kept_batches, 1);
    pump(r.s, 400); /* past replay_timeout_ms */
    v = st(r.s, 1);
    CHECK_EQ(v.replay_timeouts, 2);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    CHECK_EQ(v.index.why, KVX_WHY_GAP_UNFILLED);
    CHECK_EQ(v.index.next_seq, 3); /* the kept batch was applied */
    CHECK_EQ(v.index.batches, 2);
    kp_free(&k);
    rig_down(&r);
}

/* Plays vLLM's replay ROUTER for one request: the batches from the asked
 * seq on (seqs[i] with payload pl), then the end mark. 1 when it answered. */
static int serve_replay(void *router, const uint64_t *seqs, int n, const struct kp *pl)
{
    zmq_msg_t id, m;
    zmq_msg_init(&id);
    if (zmq_msg_recv(&id, router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&id);
        return 0;
    }
    uint8_t start[8] = {0};
    int more = zmq_msg_more(&id);
    while (more) { /* "", start seq */
        zmq_msg_init(&m);
        zmq_msg_recv(&m, router, 0);
        if (zmq_msg_size(&m) == 8)
            memcpy(start, zmq_msg_data(&m), 8);
        more = zmq_msg_more(&m);
        zmq_msg_close(&m);
    }
    uint64_t from = 0;
    for (int i = 0; i < 8; i++)
        from = from << 8 | start[i];
    for (int i = 0; i < n; i++) {
        if (seqs[i] < from)
            continue;
        uint8_t q[8];
        for (int b = 0; b < 8; b++)
            q[b] = (uint8_t)(seqs[i] >> (56 - 8 * b));
        zmq_send(router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
        zmq_send(router, "", 0, ZMQ_SNDMORE);
        zmq_send(router, q, 8, ZMQ_SNDMORE);
        zmq_send(router, pl->sb.data, pl->sb.size, 0);
    }
    static const uint8_t end[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    zmq_send(router, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE);
    zmq_send(router, "", 0, ZMQ_SNDMORE);
    zmq_send(router, end, 8, ZMQ_SNDMORE);
    zmq_send(router, "", 0, 0);
    zmq_msg_close(&id);
    return 1;
}

static int pump_serving(struct rig *r, const uint64_t *seqs, int n, const struct kp *pl, int ms)
{
    int served = 0;
    for (int t = 0; t < ms; t += 10) {
        served += serve_replay(r->router, seqs, n, pl);
        kvsub_poll(r->s, 10);
    }
    return served;
}

TEST(replay_probe_at_subscription)
{
    struct kp k;
    kp_init(&k);
    empty_batch(&k);
    /* an idle pod that never published: exact before any batch */
    struct rig r;
    rig_replay_timeout_ms = 3000; /* the probe waits in the ROUTER meanwhile */
    CHECK_EQ(rig_up(&r, 1, 3000), 0);
    CHECK_EQ(pump_serving(&r, NULL, 0, &k, 100), 1);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_EXACT);
    CHECK_EQ(v.replay_timeouts, 0);
    rig_down(&r);
    /* joined late, the ring reaches back to 0: exact, history applied */
    uint64_t all[3] = {0, 1, 2};
    CHECK_EQ(rig_up(&r, 1, 3000), 0);
    CHECK_EQ(pump_serving(&r, all, 3, &k, 100), 1);
    v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_EXACT);
    CHECK_EQ(v.index.next_seq, 3);
    CHECK_EQ(v.replayed_batches, 3);
    rig_down(&r);
    /* the ring moved on (from 5): syncing, the next live batch starts it */
    uint64_t late[2] = {5, 6};
    CHECK_EQ(rig_up(&r, 1, 3000), 0);
    CHECK_EQ(pump_serving(&r, late, 2, &k, 100), 1);
    v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    CHECK_EQ(v.index.why, KVX_WHY_GAP_UNFILLED);
    publish(r.pub, 7, k.sb.data, k.sb.size);
    pump(r.s, 100);
    v = st(r.s, 1);
    CHECK_EQ(v.index.next_seq, 8);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    rig_down(&r);
    kp_free(&k);
    rig_replay_timeout_ms = 200;
}

/* Serves the one replay request waiting (if any) with seqs, then pumps. */
static int serve_once(struct rig *r, const uint64_t *seqs, int n, const struct kp *pl)
{
    int served = 0;
    for (int t = 0; t < 300 && !served; t += 10) {
        served = serve_replay(r->router, seqs, n, pl);
        kvsub_poll(r->s, 10);
    }
    pump(r->s, 50);
    return served;
}

TEST(replay_asked_again_when_the_ring_moved_on)
{
    struct kp k;
    kp_init(&k);
    empty_batch(&k);
    struct rig r;
    rig_replay_timeout_ms = 3000;
    CHECK_EQ(rig_up(&r, 1, 3000), 0);
    /* while the probe at subscription waits, live batch 3 arrives (kept);
     * the ring answers 0 and 1 only: batch 2 was published after it
     * answered and before our subscription took it */
    publish(r.pub, 3, k.sb.data, k.sb.size);
    pump(r.s, 50);
    uint64_t early[2] = {0, 1}, later[4] = {0, 1, 2, 3};
    CHECK_EQ(serve_once(&r, early, 2, &k), 1);
    struct kvsub_pod_stats v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_GAPPED); /* asked again, from 2 */
    CHECK_EQ(v.replay_requests, 2);
    CHECK_EQ(serve_once(&r, later, 4, &k), 1);
    v = st(r.s, 1);
    CHECK_EQ(v.index.mode, KVX_EXACT); /* nothing lost after all */
    CHECK_EQ(v.index.next_seq, 4);
    CHECK_EQ(v.index.replays_failed, 0);
    rig_down(&r);
    /* a batch that is truly gone: asked again KVSUB_REPLAY_ROUNDS times,
     * then lost (syncing), and the kept batch applied */
    CHECK_EQ(rig_up(&r, 1, 3000), 0);
    publish(r.pub, 3, k.sb.data, k.sb.size);
    pump(r.s, 50);
    for (int i = 0; i <= KVSUB_REPLAY_ROUNDS; i++)
        CHECK_EQ(serve_once(&r, early, 2, &k), 1);
    v = st(r.s, 1);
    CHECK_EQ(v.replay_requests, 1 + KVSUB_REPLAY_ROUNDS);
    CHECK_EQ(v.index.mode, KVX_SYNCING);
    CHECK_EQ(v.index.why, KVX_WHY_GAP_UNFILLED);
    CHECK_EQ(v.index.next_seq, 4);
    rig_down(&r);
    kp_free(&k);
    rig_replay_timeout_ms = 200;
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
    /* events again, once the new socket has joined: a batch published
     * before that is lost, which is a gap this rig (no replay endpoint)
     * can never fill; 10 s at most on a loaded machine */
    CHECK_EQ(rig_subscribed(&r, 10000), 1);
    publish(r.pub, 1, k.sb.data, k.sb.size);
    for (int t = 0; t < 5000 && st(r.s, 1).index.mode != KVX_EXACT; t += 50)
        pump(r.s, 50);
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
    RUN(replay_probe_at_subscription);
    RUN(replay_asked_again_when_the_ring_moved_on);
    RUN(silence_rule);
    RUN(pods_removed);
    zmq_ctx_term(CTX);
    return harness_done();
}
