/* Tests for user/core/kvindex.c: events in (through the real decoder),
 * lookups out with the keys a router computes (bk_chain). Engine-key
 * mapping, unknown parents, removals, AllBlocksCleared, sequence gaps and
 * replay, loss -> SYNCING -> EXACT, restarts, predicted vs confirmed, the
 * caps, adapters and salts, modes and their counts, readers racing the
 * writer, and out-of-memory at creation. */
#include "core/kvindex.h"
#include "common/alloc.h"
#include "core/blockkey.h"
#include "harness.h"
#include "kvev_pack.h"

#include <pthread.h>
#include <stdatomic.h>

#define BS 16
#define NP 8

static struct kvev_decoder D;
static uint64_t ROOT;
static uint64_t fake_now = 1000000000ull;
static uint64_t fake_clock(void) { return fake_now; }

/* Prompt p's tokens: blocks differ by prompt from block `share` on. */
static void prompt(uint32_t *t, size_t nblocks, uint32_t p, size_t share)
{
    for (size_t i = 0; i < nblocks * BS; i++)
        t[i] = (uint32_t)(i / BS < share ? 7 + i : p * 100000 + i);
}

/* Engine hashes for pod-side blocks: anything unique. */
static uint64_t eh(uint32_t p, size_t i) { return ((uint64_t)p << 32) | (i + 1); }

static struct kvindex *mk(uint32_t max_entries, uint32_t cap)
{
    struct kvindex *x = kvx_new(NP, max_entries, cap);
    kvx_set_clock(x, fake_clock);
    for (uint32_t p = 0; p < NP; p++)
        kvx_pod_enable(x, p, ROOT);
    return x;
}

/* seq check + decode + apply, as the subscriber does */
static enum kvx_seq feed(struct kvindex *x, uint32_t pod, uint64_t seq, struct kp *k)
{
    enum kvx_seq s = kvx_seq_check(x, pod, seq);
    if (s == KVX_SEQ_APPLY || s == KVX_SEQ_RESTART) {
        const struct kvev_batch *b;
        if (kvev_decode(&D, k->sb.data, k->sb.size, &b) == 0)
            kvx_apply(x, pod, b);
        else
            kvx_batch_bad(x, pod, seq);
    }
    return s;
}

/* One BlockStored of blocks [from, to) of tokens t, engine hashes eh(p, i). */
static void stored(struct kp *k, uint32_t p, const uint32_t *t, size_t from, size_t to)
{
    uint64_t h[256];
    for (size_t i = from; i < to; i++)
        h[i - from] = eh(p, i);
    kp_stored(k, &(struct kp_stored){.hashes = h, .n = (uint32_t)(to - from),
                                     .has_parent = from > 0, .parent = from ? eh(p, from - 1) : 0,
                                     .tokens = t + from * BS,
                                     .ntokens = (uint32_t)((to - from) * BS), .block_size = BS});
}

static void batch_stored(struct kp *k, uint32_t p, const uint32_t *t, size_t from, size_t to)
{
    kp_reset(k);
    kp_batch(k, 0, 1);
    stored(k, p, t, from, to);
}

static uint32_t look(struct kvindex *x, const uint64_t *keys, size_t n, uint32_t pod,
                     unsigned flags)
{
    uint16_t m[NP];
    kvx_lookup(x, keys, n, m, flags);
    return m[pod];
}

static struct kvx_pod_stats stats(struct kvindex *x, uint32_t pod)
{
    struct kvx_pod_stats s;
    kvx_pod_stats(x, pod, &s);
    return s;
}

TEST(stored_chain_matches_router_keys)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k;
    kp_init(&k);
    uint32_t t[10 * BS];
    uint64_t keys[10];
    prompt(t, 10, 1, 0);
    bk_chain(ROOT, t, 10 * BS, BS, NULL, keys, 10);
    CHECK_EQ(kvx_pod_mode(x, 2), KVX_APPROXIMATE); /* before any batch */
    /* two events: blocks 0..6, then 6..10 chained through the parent */
    kp_batch(&k, 0, 2);
    stored(&k, 2, t, 0, 6);
    stored(&k, 2, t, 6, 10);
    CHECK_EQ(feed(x, 2, 0, &k), KVX_SEQ_APPLY);
    CHECK_EQ(kvx_pod_mode(x, 2), KVX_EXACT); /* seq 0: saw the publisher start */
    uint16_t m[NP];
    CHECK_EQ(kvx_lookup(x, keys, 10, m, 0), 10);
    CHECK_EQ(m[2], 10);
    for (int p = 0; p < NP; p++)
        if (p != 2)
            CHECK_EQ(m[p], 0);
    /* a request sharing 4 blocks then diverging matches 4 */
    uint32_t t2[10 * BS];
    uint64_t k2[10];
    memcpy(t2, t, sizeof(t));
    for (size_t i = 4 * BS; i < 10 * BS; i++)
        t2[i] += 1;
    bk_chain(ROOT, t2, 10 * BS, BS, NULL, k2, 10);
    CHECK_EQ(look(x, k2, 10, 2, 0), 4);
    /* another model's root never matches */
    uint64_t k3[10];
    bk_chain(bk_model_root("other", 5), t, 10 * BS, BS, NULL, k3, 10);
    CHECK_EQ(look(x, k3, 10, 2, 0), 0);
    struct kvx_pod_stats s = stats(x, 2);
    CHECK_EQ(s.blocks_stored, 10);
    CHECK_EQ(s.held, 10);
    CHECK_EQ(s.events, 2);
    CHECK_EQ(s.batches, 1);
    CHECK_EQ(s.block_size, BS);
    CHECK_EQ(s.next_seq, 1);
    kp_free(&k);
    kvx_free(x);
}

TEST(unknown_parent_counted_and_syncing)
{
    struct kvindex *x = mk(1 << 16, 64);
    struct kp k;
    kp_init(&k);
    uint32_t t[8 * BS];
    uint64_t keys[8];
    prompt(t, 8, 1, 0);
    bk_chain(ROOT, t, 8 * BS, BS, NULL, keys, 8);
    batch_stored(&k, 0, t, 0, 2);
    feed(x, 0, 0, &k);
    batch_stored(&k, 0, t, 4, 8); /* parent eh(0, 3) never stored */
    feed(x, 0, 1, &k);
    struct kvx_pod_stats s = stats(x, 0);
    CHECK_EQ(s.unknown_parents, 1);
    CHECK_EQ(s.mode, KVX_SYNCING);
    CHECK_EQ(s.why, KVX_WHY_UNKNOWN_PARENT);
    CHECK_EQ(look(x, keys, 8, 0, 0), 2);
    CHECK_EQ(s.held, 2);
    kp_free(&k);
    kvx_free(x);
}

TEST(removed_and_refs)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k;
    kp_init(&k);
    uint32_t t[6 * BS];
    uint64_t keys[6];
    prompt(t, 6, 1, 0);
    bk_chain(ROOT, t, 6 * BS, BS, NULL, keys, 6);
    batch_stored(&k, 1, t, 0, 6);
    feed(x, 1, 0, &k);
    /* the tail goes first, as vLLM evicts */
    uint64_t r[3] = {eh(1, 5), eh(1, 4), 0xabc /* unknown */};
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_removed(&k, r, 3);
    feed(x, 1, 1, &k);
    CHECK_EQ(look(x, keys, 6, 1, 0), 4);
    struct kvx_pod_stats s = stats(x, 1);
    CHECK_EQ(s.blocks_removed, 2);
    CHECK_EQ(s.unknown_removed, 1);
    CHECK_EQ(s.held, 4);
    /* a hole in the middle ends the match there, as the pod's own lookup */
    r[0] = eh(1, 1);
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_removed(&k, r, 1);
    feed(x, 1, 2, &k);
    CHECK_EQ(look(x, keys, 6, 1, 0), 1);
    /* one own key under two engine hashes of one pod: both must go */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    uint64_t h2[1] = {0x5555};
    kp_stored(&k, &(struct kp_stored){.hashes = h2, .n = 1, .tokens = t, .ntokens = BS,
                                      .block_size = BS});
    feed(x, 1, 3, &k);
    r[0] = eh(1, 0);
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_removed(&k, r, 1);
    feed(x, 1, 4, &k);
    CHECK_EQ(look(x, keys, 1, 1, 0), 1); /* 0x5555 still holds block 0 */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_removed(&k, h2, 1);
    feed(x, 1, 5, &k);
    CHECK_EQ(look(x, keys, 1, 1, 0), 0);
    CHECK_EQ(kvx_pod_mode(x, 1), KVX_EXACT);
    kp_free(&k);
    kvx_free(x);
}

TEST(all_blocks_cleared)
{
    struct kvindex *x = mk(1 << 16, 1 << 20);
    struct kp k;
    kp_init(&k);
    uint32_t t[4 * BS];
    uint64_t keys[4];
    prompt(t, 4, 1, 0);
    bk_chain(ROOT, t, 4 * BS, BS, NULL, keys, 4);
    batch_stored(&k, 3, t, 0, 4);
    feed(x, 3, 5, &k); /* mid-stream: SYNCING */
    CHECK_EQ(kvx_pod_mode(x, 3), KVX_SYNCING);
    CHECK_EQ(look(x, keys, 4, 3, 0), 4);
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_cleared(&k);
    feed(x, 3, 6, &k);
    CHECK_EQ(look(x, keys, 4, 3, 0), 0);
    struct kvx_pod_stats s = stats(x, 3);
    CHECK_EQ(s.clears, 1);
    CHECK_EQ(s.held, 0);
    CHECK_EQ(s.mode, KVX_EXACT); /* the pod is empty and so are we */
    CHECK_EQ(s.why, KVX_WHY_NONE);
    kp_free(&k);
    kvx_free(x);
}

TEST(gap_and_replay_fill)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k0, k1, k2;
    kp_init(&k0), kp_init(&k1), kp_init(&k2);
    uint32_t t[6 * BS];
    uint64_t keys[6];
    prompt(t, 6, 1, 0);
    bk_chain(ROOT, t, 6 * BS, BS, NULL, keys, 6);
    batch_stored(&k0, 4, t, 0, 2);
    batch_stored(&k1, 4, t, 2, 4);
    batch_stored(&k2, 4, t, 4, 6);
    CHECK_EQ(feed(x, 4, 0, &k0), KVX_SEQ_APPLY);
    /* batch 1 lost: 2 arrives; the subscriber keeps it and asks for replay */
    CHECK_EQ(feed(x, 4, 2, &k2), KVX_SEQ_GAP);
    struct kvx_pod_stats s = stats(x, 4);
    CHECK_EQ(s.mode, KVX_GAPPED);
    CHECK_EQ(s.gaps, 1);
    CHECK_EQ(s.next_seq, 1); /* replay from here */
    CHECK_EQ(look(x, keys, 6, 4, 0), 2);
    /* replay: 1, then 2 again (the ring has it too), then the kept 2 */
    CHECK_EQ(feed(x, 4, 1, &k1), KVX_SEQ_APPLY);
    CHECK_EQ(feed(x, 4, 2, &k2), KVX_SEQ_APPLY);
    CHECK_EQ(feed(x, 4, 2, &k2), KVX_SEQ_DUP);
    kvx_gap_filled(x, 4);
    s = stats(x, 4);
    CHECK_EQ(s.mode, KVX_EXACT);
    CHECK_EQ(s.replays_filled, 1);
    CHECK_EQ(s.dup_batches, 1);
    CHECK_EQ(s.entered[KVX_GAPPED], 1);
    CHECK_EQ(look(x, keys, 6, 4, 0), 6);
    kp_free(&k0), kp_free(&k1), kp_free(&k2);
    kvx_free(x);
}

TEST(replay_from_start)
{
    /* expected from 0 and it comes: exact */
    struct kvindex *y = mk(1 << 16, 1 << 20);
    struct kp e;
    kp_init(&e);
    kp_batch(&e, 0, 0);
    kvx_expect_from(y, 0, 0);
    CHECK_EQ(feed(y, 0, 0, &e), KVX_SEQ_APPLY);
    CHECK_EQ(kvx_pod_mode(y, 0), KVX_EXACT);
    /* asked from 0 before any batch and nothing came: nothing published */
    kvx_expect_from(y, 1, 0);
    CHECK_EQ(kvx_pod_mode(y, 1), KVX_APPROXIMATE);
    kvx_gap_filled(y, 1);
    CHECK_EQ(kvx_pod_mode(y, 1), KVX_EXACT);
    /* the probe failed: the next batch starts the stream (seq 0: exact) */
    kvx_expect_from(y, 2, 0);
    kvx_gap_lost(y, 2, KVX_SEQ_UNKNOWN);
    CHECK_EQ(kvx_pod_mode(y, 2), KVX_SYNCING);
    CHECK_EQ(feed(y, 2, 9, &e), KVX_SEQ_APPLY);
    CHECK_EQ(kvx_pod_mode(y, 2), KVX_SYNCING);
    CHECK_EQ(stats(y, 2).next_seq, 10);
    kp_free(&e);
    kvx_free(y);
    /* joined late, but the pod's ring reaches back to seq 0: exact at once */
    struct kvindex *x = mk(1 << 16, 1 << 20);
    struct kp k;
    kp_init(&k);
    uint32_t t[2 * BS];
    uint64_t keys[2];
    prompt(t, 2, 1, 0);
    bk_chain(ROOT, t, 2 * BS, BS, NULL, keys, 2);
    kvx_expect_from(x, 7, 0);
    batch_stored(&k, 7, t, 1, 2);
    CHECK_EQ(feed(x, 7, 1, &k), KVX_SEQ_GAP);
    struct kp k0;
    kp_init(&k0);
    batch_stored(&k0, 7, t, 0, 1);
    CHECK_EQ(feed(x, 7, 0, &k0), KVX_SEQ_APPLY); /* replayed */
    CHECK_EQ(feed(x, 7, 1, &k), KVX_SEQ_APPLY);  /* replayed */
    CHECK_EQ(feed(x, 7, 1, &k), KVX_SEQ_DUP);    /* the kept live one */
    kvx_gap_filled(x, 7);
    CHECK_EQ(kvx_pod_mode(x, 7), KVX_EXACT);
    CHECK_EQ(look(x, keys, 2, 7, 0), 2);
    /* the pod restarts and its batch 0 is lost to the reconnect: batch 1
     * (lower than expected) is a restart, and a gap from 0 to replay */
    CHECK_EQ(feed(x, 7, 1, &k), KVX_SEQ_GAP);
    struct kvx_pod_stats s = stats(x, 7);
    CHECK_EQ(s.restarts, 1);
    CHECK_EQ(s.mode, KVX_GAPPED);
    CHECK_EQ(s.next_seq, 0);
    CHECK_EQ(s.held, 0);
    CHECK_EQ(feed(x, 7, 0, &k0), KVX_SEQ_APPLY);
    CHECK_EQ(feed(x, 7, 1, &k), KVX_SEQ_APPLY);
    kvx_gap_filled(x, 7);
    CHECK_EQ(kvx_pod_mode(x, 7), KVX_EXACT);
    CHECK_EQ(look(x, keys, 2, 7, 0), 2);
    kp_free(&k), kp_free(&k0);
    kvx_free(x);
}

TEST(loss_to_syncing_and_back)
{
    struct kvindex *x = mk(1 << 16, 4); /* capacity 4: settles after 4 blocks */
    struct kp k;
    kp_init(&k);
    uint32_t a[4 * BS], b[4 * BS];
    uint64_t ka[4], kb[4];
    prompt(a, 4, 1, 0);
    prompt(b, 4, 2, 0);
    bk_chain(ROOT, a, 4 * BS, BS, NULL, ka, 4);
    bk_chain(ROOT, b, 4 * BS, BS, NULL, kb, 4);
    batch_stored(&k, 5, a, 0, 4);
    feed(x, 5, 0, &k);
    batch_stored(&k, 5, b, 0, 2);
    CHECK_EQ(feed(x, 5, 9, &k), KVX_SEQ_GAP);
    /* replay could not fill it (ring too short, or no replay endpoint) */
    kvx_gap_lost(x, 5, 9);
    struct kvx_pod_stats s = stats(x, 5);
    CHECK_EQ(s.mode, KVX_SYNCING);
    CHECK_EQ(s.why, KVX_WHY_GAP_UNFILLED);
    CHECK_EQ(s.replays_failed, 1);
    CHECK_EQ(s.held, 0); /* dropped: whatever is here, the pod holds */
    CHECK_EQ(look(x, ka, 4, 5, 0), 0);
    CHECK_EQ(feed(x, 5, 9, &k), KVX_SEQ_APPLY);
    CHECK_EQ(look(x, kb, 4, 5, 0), 2);
    CHECK_EQ(kvx_pod_mode(x, 5), KVX_SYNCING);
    batch_stored(&k, 5, b, 2, 4);
    feed(x, 5, 10, &k); /* 4 blocks with known parents = capacity: settled */
    s = stats(x, 5);
    CHECK_EQ(s.mode, KVX_EXACT);
    CHECK_EQ(look(x, kb, 4, 5, 0), 4);
    CHECK(s.transitions >= 4); /* approx -> exact -> gapped -> syncing -> exact */
    CHECK_EQ(s.entered[KVX_SYNCING], 1);
    /* an undecodable batch is a loss too */
    kp_reset(&k);
    msgpack_pack_int(&k.pk, 1);
    feed(x, 5, 11, &k);
    s = stats(x, 5);
    CHECK_EQ(s.bad_batches, 1);
    CHECK_EQ(s.mode, KVX_SYNCING);
    CHECK_EQ(s.why, KVX_WHY_BAD_BATCH);
    CHECK_EQ(s.next_seq, 12);
    kp_free(&k);
    kvx_free(x);
}

TEST(restart_detected)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k;
    kp_init(&k);
    uint32_t t[4 * BS];
    uint64_t keys[4];
    prompt(t, 4, 1, 0);
    bk_chain(ROOT, t, 4 * BS, BS, NULL, keys, 4);
    batch_stored(&k, 6, t, 0, 4);
    for (uint64_t q = 0; q < 50; q++)
        feed(x, 6, q, &k); /* same blocks again: no change */
    CHECK_EQ(stats(x, 6).held, 4);
    /* a new process: sequence 0 again, its cache empty */
    kp_reset(&k);
    kp_batch(&k, 0, 0);
    CHECK_EQ(feed(x, 6, 0, &k), KVX_SEQ_RESTART);
    CHECK_EQ(look(x, keys, 4, 6, 0), 0);
    CHECK_EQ(kvx_pod_mode(x, 6), KVX_EXACT);
    /* a new process whose first batches the slow join lost */
    batch_stored(&k, 6, t, 0, 4);
    feed(x, 6, 1, &k);
    CHECK_EQ(feed(x, 6, 3, &k), KVX_SEQ_GAP);
    kvx_gap_filled(x, 6); /* say replay had it */
    CHECK_EQ(feed(x, 6, 4, &k), KVX_SEQ_GAP); /* still 2 missing: gapped again */
    kvx_gap_lost(x, 6, 5);
    CHECK_EQ(feed(x, 6, 2, &k), KVX_SEQ_RESTART);
    struct kvx_pod_stats s = stats(x, 6);
    CHECK_EQ(s.restarts, 2);
    CHECK_EQ(s.mode, KVX_SYNCING); /* from 2, not 0: batches 0-1 unseen */
    kp_free(&k);
    kvx_free(x);
}

TEST(predicted_vs_confirmed)
{
    struct kvindex *x = mk(1 << 16, 4096);
    kvx_set_predict_ttl_ms(x, 500);
    struct kp k;
    kp_init(&k);
    uint32_t t[6 * BS];
    uint64_t keys[6];
    prompt(t, 6, 1, 0);
    bk_chain(ROOT, t, 6 * BS, BS, NULL, keys, 6);
    /* pod 0 confirmed 3 blocks; the gateway routes 6 to pod 0 and to pod 1 */
    batch_stored(&k, 0, t, 0, 3);
    feed(x, 0, 0, &k);
    CHECK_EQ(kvx_predict(x, 0, keys, 6), 0);
    CHECK_EQ(kvx_predict(x, 1, keys, 6), 0);
    CHECK_EQ(look(x, keys, 6, 0, 0), 6);
    CHECK_EQ(look(x, keys, 6, 1, 0), 6);
    CHECK_EQ(look(x, keys, 6, 0, KVX_LOOKUP_CONFIRMED), 3);
    CHECK_EQ(look(x, keys, 6, 1, KVX_LOOKUP_CONFIRMED), 0);
    /* the pod confirms: predictions cleared, confirmed stays after TTL */
    batch_stored(&k, 0, t, 3, 6);
    feed(x, 0, 1, &k);
    fake_now += 600ull * 1000 * 1000;
    CHECK_EQ(look(x, keys, 6, 0, 0), 6);
    CHECK_EQ(look(x, keys, 6, 1, 0), 0); /* pod 1's predictions expired */
    /* a prediction never removes a confirmed entry: the pod evicts block 5,
     * a stale prediction for it was cleared when it was confirmed */
    uint64_t r[1] = {eh(0, 5)};
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_removed(&k, r, 1);
    feed(x, 0, 2, &k);
    CHECK_EQ(look(x, keys, 6, 0, 0), 5);
    /* predicting confirmed keys adds nothing; predicting past them does */
    kvx_predict(x, 0, keys, 6);
    CHECK_EQ(look(x, keys, 6, 0, 0), 6);
    fake_now += 600ull * 1000 * 1000;
    CHECK_EQ(look(x, keys, 6, 0, 0), 5);
    kp_free(&k);
    kvx_free(x);
}

/* issue 11, replicas: the blocks a pod stores that no prediction of ours
 * announced are the other gateways' requests, counted in tokens */
TEST(foreign_tokens)
{
    struct kvindex *x = mk(1 << 16, 4096);
    kvx_set_predict_ttl_ms(x, 500);
    struct kp k;
    kp_init(&k);
    uint32_t t[6 * BS], u[4 * BS];
    uint64_t keys[6];
    prompt(t, 6, 1, 0);
    prompt(u, 4, 2, 0);
    bk_chain(ROOT, t, 6 * BS, BS, NULL, keys, 6);
    CHECK_EQ(kvx_pod_foreign_tokens(x, 0), 0);
    /* ours: predicted at pod 0, then stored there: nothing foreign */
    kvx_predict(x, 0, keys, 6);
    batch_stored(&k, 0, t, 0, 6);
    feed(x, 0, 0, &k);
    CHECK_EQ(kvx_pod_foreign_tokens(x, 0), 0);
    /* another gateway's 4 blocks at pod 0 (engine hashes of their own): 4 x BS */
    batch_stored(&k, 2, u, 0, 4);
    feed(x, 0, 1, &k);
    CHECK_EQ(kvx_pod_foreign_tokens(x, 0), 4 * BS);
    /* the same blocks stored again are not new */
    batch_stored(&k, 2, u, 0, 4);
    feed(x, 0, 2, &k);
    CHECK_EQ(kvx_pod_foreign_tokens(x, 0), 4 * BS);
    /* predicted at pod 1 and stored there: ours */
    uint64_t ukeys[4];
    bk_chain(ROOT, u, 4 * BS, BS, NULL, ukeys, 4);
    kvx_predict(x, 1, ukeys, 4);
    batch_stored(&k, 3, u, 0, 4);
    feed(x, 1, 0, &k);
    CHECK_EQ(kvx_pod_foreign_tokens(x, 1), 0);
    CHECK_EQ(kvx_pod_foreign_tokens(x, 7), 0);
    CHECK_EQ(kvx_pod_foreign_tokens(NULL, 0), 0);
    kp_free(&k);
    kvx_free(x);
}

TEST(predictions_bounded)
{
    struct kvindex *x = mk(1 << 10, 4096);
    static uint64_t keys[16384];
    for (int i = 0; i < 16384; i++)
        keys[i] = 0x1234567ull * (uint64_t)(i + 1);
    uint32_t refused = 0;
    for (uint32_t p = 0; p < NP; p++)
        refused += kvx_predict(x, p, keys, 16384);
    CHECK(refused > 0); /* 131k predictions into a bounded table */
    fake_now += 3000ull * 1000 * 1000; /* all expire; a sweep makes room */
    CHECK_EQ(kvx_predict(x, 0, keys, 100), 0);
    kvx_free(x);
}

TEST(caps_keep_pods_apart)
{
    /* 64 entries for 8 pods: 8 each; pod 0 floods, pod 1 still stores */
    struct kvindex *x = mk(64, 1000);
    struct kp k;
    kp_init(&k);
    uint32_t t[40 * BS], u[4 * BS];
    uint64_t ku[4];
    prompt(t, 40, 1, 0);
    prompt(u, 4, 2, 0);
    bk_chain(ROOT, u, 4 * BS, BS, NULL, ku, 4);
    batch_stored(&k, 0, t, 0, 40);
    feed(x, 0, 0, &k);
    struct kvx_pod_stats s = stats(x, 0);
    CHECK_EQ(s.limit, 8);
    CHECK_EQ(s.held, 8);
    CHECK_EQ(s.capped, 32);
    CHECK_EQ(s.mode, KVX_SYNCING);
    CHECK_EQ(s.why, KVX_WHY_CAPPED);
    batch_stored(&k, 1, u, 0, 4);
    feed(x, 1, 0, &k);
    CHECK_EQ(look(x, ku, 4, 1, 0), 4);
    CHECK_EQ(stats(x, 1).capped, 0);
    /* a pod with a small cache leaves the rest to the others */
    for (uint32_t p = 2; p < NP; p++)
        kvx_set_capacity(x, p, 2);
    kvx_set_capacity(x, 1, 2);
    CHECK_EQ(stats(x, 0).limit, 64 - 7 * 2);
    kp_free(&k);
    kvx_free(x);
}

TEST(adapters_and_salt)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k;
    kp_init(&k);
    uint32_t t[3 * BS];
    uint64_t kl[3], ks[3], kplain[3], h[3] = {1, 2, 3};
    prompt(t, 3, 1, 0);
    struct bk_extra xl = {"sql", 3, NULL, 0}, xs = {NULL, 0, "tenant", 6};
    bk_chain(ROOT, t, 3 * BS, BS, &xl, kl, 3);
    bk_chain(ROOT, t, 3 * BS, BS, &xs, ks, 3);
    bk_chain(ROOT, t, 3 * BS, BS, NULL, kplain, 3);
    /* newest vLLM: lora_name, and the salt in block 0's extra keys */
    kp_batch(&k, 0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 3, .tokens = t, .ntokens = 3 * BS,
                                      .block_size = BS, .lora_id = 1, .fields = 12,
                                      .medium = "GPU", .lora_name = "sql"});
    feed(x, 0, 0, &k);
    CHECK_EQ(look(x, kl, 3, 0, 0), 3);
    CHECK_EQ(look(x, kplain, 3, 0, 0), 0);
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 3, .tokens = t, .ntokens = 3 * BS,
                                      .block_size = BS, .fields = 9, .medium = "GPU",
                                      .salt = "tenant"});
    feed(x, 1, 0, &k);
    CHECK_EQ(look(x, ks, 3, 1, 0), 3);
    CHECK_EQ(look(x, kplain, 3, 1, 0), 0);
    /* old engines: lora_id only; named through kvx_pod_lora, else apart */
    kvx_pod_lora(x, 2, 7, "sql");
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 3, .tokens = t, .ntokens = 3 * BS,
                                      .block_size = BS, .lora_id = 7});
    feed(x, 2, 0, &k);
    feed(x, 3, 0, &k);
    CHECK_EQ(look(x, kl, 3, 2, 0), 3);
    CHECK_EQ(look(x, kl, 3, 3, 0), 0);
    CHECK_EQ(look(x, kplain, 3, 3, 0), 0);
    kp_free(&k);
    kvx_free(x);
}

TEST(other_tiers_and_groups_skipped)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k;
    kp_init(&k);
    uint32_t t[2 * BS];
    uint64_t keys[2], h[2] = {1, 2};
    prompt(t, 2, 1, 0);
    bk_chain(ROOT, t, 2 * BS, BS, NULL, keys, 2);
    kp_batch(&k, 0, 2);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 2, .tokens = t, .ntokens = 2 * BS,
                                      .block_size = BS, .fields = 7, .medium = "CPU"});
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 2, .tokens = t, .ntokens = 2 * BS,
                                      .block_size = BS, .fields = 10, .medium = "GPU",
                                      .group_idx = 1});
    feed(x, 0, 0, &k);
    CHECK_EQ(look(x, keys, 2, 0, 0), 0);
    CHECK_EQ(stats(x, 0).skipped, 2);
    kp_free(&k);
    kvx_free(x);
}

TEST(silent_and_untrusted)
{
    struct kvindex *x = mk(1 << 16, 4096);
    struct kp k;
    kp_init(&k);
    kp_batch(&k, 0, 0);
    feed(x, 0, 0, &k);
    CHECK_EQ(kvx_pod_mode(x, 0), KVX_EXACT);
    kvx_set_silent(x, 0, 1);
    CHECK_EQ(kvx_pod_mode(x, 0), KVX_APPROXIMATE);
    CHECK_EQ(stats(x, 0).why, KVX_WHY_SILENT);
    kvx_set_silent(x, 0, 0);
    CHECK_EQ(kvx_pod_mode(x, 0), KVX_EXACT);
    kvx_set_untrusted(x, 0, 1);
    CHECK_EQ(kvx_pod_mode(x, 0), KVX_APPROXIMATE);
    CHECK_EQ(stats(x, 0).why, KVX_WHY_TEMPLATE);
    kvx_set_untrusted(x, 0, 0);
    CHECK_EQ(kvx_pod_mode(x, 0), KVX_EXACT);
    kvx_pod_disable(x, 0);
    CHECK_EQ(kvx_pod_mode(x, 0), KVX_APPROXIMATE);
    CHECK_EQ(stats(x, 0).why, KVX_WHY_NOT_CONFIGURED);
    CHECK_EQ(kvx_seq_check(x, 0, 1), KVX_SEQ_DUP); /* ignored while disabled */
    CHECK_EQ(stats(x, 0).transitions, 6);
    CHECK_STR(kvx_mode_name(KVX_SYNCING), "syncing");
    CHECK_STR(kvx_why_name(KVX_WHY_GAP_UNFILLED), "gap_unfilled");
    kp_free(&k);
    kvx_free(x);
}

/* Readers race the writer: a chain of 32 blocks is stored and removed
 * again and again; every lookup must see a prefix (0..32), never garbage. */
static struct kvindex *RX;
static uint64_t RKEYS[32];
static atomic_int stop_readers;
static atomic_long bad_reads, reads;

static void *reader(void *arg)
{
    uint16_t m[NP];
    while (!atomic_load(&stop_readers)) {
        uint32_t best = kvx_lookup(RX, RKEYS, 32, m, 0);
        if (best > 32 || m[1] > 32 || m[0] != 0)
            atomic_fetch_add(&bad_reads, 1);
        struct kvx_pod_stats s;
        kvx_pod_stats(RX, 1, &s);
        if (s.held > 32)
            atomic_fetch_add(&bad_reads, 1);
        atomic_fetch_add(&reads, 1);
    }
    return NULL;
}

TEST(readers_race_writer)
{
    RX = mk(1 << 12, 4096);
    struct kp st, rm;
    kp_init(&st), kp_init(&rm);
    uint32_t t[32 * BS];
    prompt(t, 32, 1, 0);
    bk_chain(ROOT, t, 32 * BS, BS, NULL, RKEYS, 32);
    batch_stored(&st, 1, t, 0, 32);
    uint64_t r[32];
    for (int i = 0; i < 32; i++)
        r[i] = eh(1, 31 - (size_t)i);
    kp_batch(&rm, 0, 1);
    kp_removed(&rm, r, 32);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, reader, NULL);
    uint64_t seq = 0;
    for (int i = 0; i < 3000; i++) {
        feed(RX, 1, seq++, &st);
        feed(RX, 1, seq++, &rm);
    }
    atomic_store(&stop_readers, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    CHECK_EQ(atomic_load(&bad_reads), 0);
    CHECK(atomic_load(&reads) > 0);
    CHECK_EQ(stats(RX, 1).held, 0);
    CHECK_EQ(kvx_pod_mode(RX, 1), KVX_EXACT);
    kp_free(&st), kp_free(&rm);
    kvx_free(RX);
}

TEST(oom_at_creation)
{
    for (long n = 0;; n++) {
        alloc_fail_after(n);
        struct kvindex *x = kvx_new(NP, 1024, 64);
        if (x) {
            kvx_free(x);
            break;
        }
        CHECK_EQ(alloc_live(), 0);
        if (n > 1000)
            break;
    }
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
    CHECK(kvx_new(0, 10, 10) == NULL);
    CHECK(kvx_new(KVX_MAX_PODS + 1, 10, 10) == NULL);
}

int main(void)
{
    kvev_decoder_init(&D);
    ROOT = bk_model_root("meta-llama/Llama-3.1-8B-Instruct", 32);
    RUN(stored_chain_matches_router_keys);
    RUN(unknown_parent_counted_and_syncing);
    RUN(removed_and_refs);
    RUN(all_blocks_cleared);
    RUN(gap_and_replay_fill);
    RUN(replay_from_start);
    RUN(loss_to_syncing_and_back);
    RUN(restart_detected);
    RUN(predicted_vs_confirmed);
    RUN(foreign_tokens);
    RUN(predictions_bounded);
    RUN(caps_keep_pods_apart);
    RUN(adapters_and_salt);
    RUN(other_tiers_and_groups_skipped);
    RUN(silent_and_untrusted);
    RUN(readers_race_writer);
    RUN(oom_at_creation);
    kvev_decoder_free(&D);
    return harness_done();
}
