/* kvindex: the exact index from KV events. See kvindex.h for the model,
 * the modes and the threading contract.
 *
 * Two kvtab tables (kvtab.h) hold (own key, pod) pairs: confirmed entries
 * (aux = references: one own key may stand for several engine hashes of
 * one pod) and predictions (aux = expiry tick; workers write them, so each
 * shard's mutex orders those writers). Each pod has a kvemap, engine hash
 * -> own key, the writer's alone. Key hashing is keyed by a random seed:
 * engine hashes come from pods and own keys from prompts, neither of which
 * may aim entries at one probe run. */
#include "core/kvindex.h"
#include "common/alloc.h"
#include "core/blockkey.h"
#include "core/fairshare.h"
#include "core/kvtab.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define OPAQUE_TAG 0x6b76672d6f706171ull /* "kvg-opaq" */
#define LORA_ID_TAG 0x6b76672d6c6f6964ull /* "kvg-loid" */
#define TICK_NS (8ull * 1000 * 1000)      /* prediction expiry unit: 8 ms */
#define MAX_LORAS 32

/* ---- the index ---- */

struct pod {
    struct kvemap map;
    uint64_t root;
    uint32_t capacity;
    uint8_t enabled, silent, untrusted;
    enum kvx_mode base, before_gap;
    int have_seq, gap_from_start, replayable;
    uint64_t settle_run;
    struct { int64_t id; uint64_t word; } loras[MAX_LORAS];
    int nloras;
    _Atomic uint32_t stseq;      /* sequence lock over st */
    struct kvx_pod_stats st;
    _Atomic int mode;            /* effective mode, for readers */
    _Atomic uint32_t bs;         /* block size its events carry, for readers */
    _Atomic uint64_t foreign_tok;/* tokens of the new blocks no prediction of ours announced:
                                  * other gateways' requests (kvx_pod_foreign_tokens) */
};

struct kvindex {
    struct kvtab conf, pred;
    uint64_t seed;
    uint32_t max_pods, max_entries, default_capacity;
    uint32_t level;              /* fair-share cap (UINT32_MAX: none) */
    uint32_t ttl_ticks;
    _Atomic uint64_t npred;      /* predictions held: 0 skips the check per store */
    uint64_t (*now_ns)(void);
    struct pod *pods;
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t random_seed(const void *salt)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
        s = XXH3_64bits_withSeed(&salt, sizeof(salt), mono_ns() ^ (uint64_t)getpid());
    return s;
}

static uint64_t hkey(const struct kvindex *x, uint64_t key)
{
    return XXH3_64bits_withSeed(&key, sizeof(key), x->seed);
}


struct kvindex *kvx_new(uint32_t max_pods, uint32_t max_entries, uint32_t default_capacity)
{
    if (!max_pods || max_pods > KVX_MAX_PODS || !max_entries) {
        errno = EINVAL;
        return NULL;
    }
    struct kvindex *x = kv_calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->max_pods = max_pods;
    x->max_entries = max_entries;
    x->default_capacity = default_capacity;
    x->level = UINT32_MAX;
    x->ttl_ticks = 2000000000ull / TICK_NS;
    x->now_ns = mono_ns;
    x->seed = random_seed(x);
    uint64_t pred_slots = max_entries / 4 < 65536 ? 65536 : max_entries / 4;
    x->pods = kv_calloc(max_pods, sizeof(*x->pods));
    /* kvtab_init initialises every shard's mutex before allocating, so
     * kvx_free can always destroy them */
    int rc1 = kvtab_init(&x->conf, (uint64_t)max_entries * 2);
    int rc2 = kvtab_init(&x->pred, pred_slots);
    if (!x->pods || rc1 || rc2) {
        kvx_free(x);
        errno = ENOMEM;
        return NULL;
    }
    for (uint32_t p = 0; p < max_pods; p++) {
        x->pods[p].capacity = default_capacity;
        x->pods[p].st.why = KVX_WHY_NOT_CONFIGURED;
    }
    return x;
}

void kvx_free(struct kvindex *x)
{
    if (!x)
        return;
    kvtab_free(&x->conf);
    kvtab_free(&x->pred);
    for (uint32_t p = 0; x->pods && p < x->max_pods; p++)
        kvemap_free(&x->pods[p].map);
    kv_free(x->pods);
    kv_free(x);
}

void kvx_set_predict_ttl_ms(struct kvindex *x, uint32_t ms)
{
    uint64_t t = (uint64_t)ms * 1000000ull / TICK_NS;
    x->ttl_ticks = t < 1 ? 1 : t > 30000 ? 30000 : (uint32_t)t;
}

void kvx_set_clock(struct kvindex *x, uint64_t (*now_ns)(void))
{
    x->now_ns = now_ns ? now_ns : mono_ns;
}

/* ---- per-pod stats under a sequence lock (writer brackets changes) ---- */

static void st_begin(struct pod *p)
{
    uint32_t q = atomic_load_explicit(&p->stseq, memory_order_relaxed);
    atomic_store_explicit(&p->stseq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

static void st_end(struct pod *p)
{
    p->st.held = p->map.count;
    uint32_t q = atomic_load_explicit(&p->stseq, memory_order_relaxed);
    atomic_store_explicit(&p->stseq, q + 1, memory_order_release);
}

/* The effective mode from the base mode and the flags; counts changes. */
static void publish_mode(struct pod *p)
{
    enum kvx_mode m = p->base;
    if (p->enabled && (p->silent || p->untrusted))
        m = KVX_APPROXIMATE;
    if (m != p->st.mode) {
        p->st.transitions++;
        p->st.entered[m]++;
        p->st.mode = m;
    }
    atomic_store_explicit(&p->mode, (int)m, memory_order_release);
}

static void set_base(struct pod *p, enum kvx_mode m, enum kvx_why why)
{
    p->base = m;
    if (m != KVX_EXACT)
        p->st.why = why;
    else if (!p->silent && !p->untrusted)
        p->st.why = KVX_WHY_NONE;
    if (m == KVX_SYNCING)
        p->settle_run = 0;
    publish_mode(p);
}

static struct pod *pod_of(struct kvindex *x, uint32_t pod)
{
    return pod < x->max_pods ? &x->pods[pod] : NULL;
}

static uint32_t pod_limit(const struct kvindex *x, const struct pod *p)
{
    return p->capacity < x->level ? p->capacity : x->level;
}

/* Max-min fair shares of max_entries among the enabled pods (fairshare.h,
 * as the approximate index). A pod already above its new limit keeps what
 * it holds (the pod has it) but gets nothing more. */
static void reshare(struct kvindex *x)
{
    uint32_t caps[KVX_MAX_PODS], n = 0;
    for (uint32_t p = 0; p < x->max_pods; p++)
        if (x->pods[p].enabled)
            caps[n++] = x->pods[p].capacity;
    x->level = fairshare_level(caps, n, x->max_entries);
    for (uint32_t p = 0; p < x->max_pods; p++) {
        struct pod *q = &x->pods[p];
        st_begin(q);
        q->st.limit = q->enabled ? pod_limit(x, q) : 0;
        st_end(q);
    }
}

/* ---- confirmed entries ---- */

static int conf_add(struct kvindex *x, uint64_t key, uint64_t h, uint32_t pod)
{
    struct kvtab_shard *sh = kvtab_shard(&x->conf, h);
    int64_t i = kvtab_find(sh, key, (uint32_t)h, pod);
    int rc = 0;
    kvtab_wbegin(sh);
    if (i >= 0) {
        uint32_t refs = kvtab_aux(sh, (uint32_t)i);
        if (refs < 0xffff)
            kvtab_set_aux(sh, (uint32_t)i, refs + 1);
    } else if (kvtab_insert(sh, key, (uint32_t)h, pod, 1) < 0) {
        rc = -ENOSPC;
    }
    kvtab_wend(sh);
    return rc;
}

static void conf_drop(struct kvindex *x, uint64_t key, uint32_t pod)
{
    uint64_t h = hkey(x, key);
    struct kvtab_shard *sh = kvtab_shard(&x->conf, h);
    int64_t i = kvtab_find(sh, key, (uint32_t)h, pod);
    if (i < 0)
        return;
    kvtab_wbegin(sh);
    uint32_t refs = kvtab_aux(sh, (uint32_t)i);
    if (refs > 1)
        kvtab_set_aux(sh, (uint32_t)i, refs - 1);
    else
        kvtab_del(sh, (uint32_t)i);
    kvtab_wend(sh);
}

/* ---- predictions ---- */

static uint16_t now_tick(struct kvindex *x)
{
    return (uint16_t)(x->now_ns() / TICK_NS);
}

static int live(uint16_t expiry, uint16_t now)
{
    return (int16_t)(uint16_t)(expiry - now) > 0;
}

/* A confirmed store of (key, pod) ends its prediction. */
static int pred_clear(struct kvindex *x, uint64_t key, uint64_t h, uint32_t pod)
{
    if (!atomic_load_explicit(&x->npred, memory_order_relaxed))
        return 0; /* nothing predicted anywhere: no probe */
    struct kvtab_shard *sh = kvtab_shard(&x->pred, h);
    uint16_t pods[KVX_MAX_PODS], aux[KVX_MAX_PODS];
    uint32_t n = kvtab_read(sh, key, (uint32_t)h, pods, aux, KVX_MAX_PODS), k;
    for (k = 0; k < n && pods[k] != pod; k++)
        ;
    if (k == n)
        return 0; /* the common case: nothing predicted, no lock taken */
    pthread_mutex_lock(&sh->mu);
    int64_t i = kvtab_find(sh, key, (uint32_t)h, pod);
    if (i >= 0) {
        kvtab_wbegin(sh);
        kvtab_del(sh, (uint32_t)i);
        kvtab_wend(sh);
        atomic_fetch_sub_explicit(&x->npred, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&sh->mu);
    return i >= 0;
}

static int expired(uint32_t aux, void *ctx)
{
    return !live((uint16_t)aux, *(const uint16_t *)ctx);
}

/* Drops expired predictions of a full shard (its mutex held). */
static void pred_sweep(struct kvindex *x, struct kvtab_shard *sh, uint16_t now)
{
    kvtab_wbegin(sh);
    uint32_t n = kvtab_sweep(sh, expired, &now);
    kvtab_wend(sh);
    atomic_fetch_sub_explicit(&x->npred, n, memory_order_relaxed);
}

uint32_t kvx_predict(struct kvindex *x, uint32_t pod, const uint64_t *keys, size_t n)
{
    if (pod >= x->max_pods)
        return 0;
    uint16_t now = now_tick(x), exp = (uint16_t)(now + x->ttl_ticks);
    uint16_t pods[KVX_MAX_PODS], aux[KVX_MAX_PODS];
    uint32_t refused = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t h = hkey(x, keys[k]);
        uint32_t c = kvtab_read(kvtab_shard(&x->conf, h), keys[k], (uint32_t)h, pods, aux,
                              KVX_MAX_PODS), j;
        for (j = 0; j < c && pods[j] != pod; j++)
            ;
        if (j < c)
            continue; /* confirmed already */
        struct kvtab_shard *sh = kvtab_shard(&x->pred, h);
        pthread_mutex_lock(&sh->mu);
        int64_t i = kvtab_find(sh, keys[k], (uint32_t)h, pod);
        if (i < 0 && sh->count >= sh->limit)
            pred_sweep(x, sh, now);
        kvtab_wbegin(sh);
        if (i >= 0)
            kvtab_set_aux(sh, (uint32_t)i, exp);
        else if (kvtab_insert(sh, keys[k], (uint32_t)h, pod, exp) < 0)
            refused++;
        else
            atomic_fetch_add_explicit(&x->npred, 1, memory_order_relaxed);
        kvtab_wend(sh);
        pthread_mutex_unlock(&sh->mu);
    }
    return refused;
}

void kvx_unpredict(struct kvindex *x, uint32_t pod, const uint64_t *keys, size_t n)
{
    if (pod >= x->max_pods)
        return;
    for (size_t k = 0; k < n; k++)
        pred_clear(x, keys[k], hkey(x, keys[k]), pod);
}

/* ---- lookup ---- */

uint32_t kvx_lookup(struct kvindex *x, const uint64_t *keys, size_t n, uint16_t *match,
                    unsigned flags)
{
    memset(match, 0, x->max_pods * sizeof(*match));
    if (n > UINT16_MAX)
        n = UINT16_MAX;
    int preds = !(flags & KVX_LOOKUP_CONFIRMED) &&
                atomic_load_explicit(&x->npred, memory_order_relaxed) > 0;
    uint16_t now = preds ? now_tick(x) : 0;
    uint16_t pods[KVX_MAX_PODS], aux[KVX_MAX_PODS];
    uint32_t best = 0;
    /* walk the chain while some pod still matches every block so far:
     * match[p] == k means pod p holds blocks 0..k-1. Each probe is a cache
     * miss or two in a large table: the home slot of the key PREFETCH
     * blocks ahead is fetched while this one is read. */
    enum { PREFETCH = 8 };
    uint64_t hs[PREFETCH];
    for (size_t k = 0; k < n && k < PREFETCH; k++) {
        hs[k] = hkey(x, keys[k]);
        kvtab_prefetch(kvtab_shard(&x->conf, hs[k]), (uint32_t)hs[k]);
    }
    for (size_t k = 0; k < n; k++) {
        uint64_t h = hs[k % PREFETCH];
        if (k + PREFETCH < n) {
            uint64_t ha = hkey(x, keys[k + PREFETCH]);
            hs[k % PREFETCH] = ha;
            kvtab_prefetch(kvtab_shard(&x->conf, ha), (uint32_t)ha);
        }
        uint32_t grew = 0;
        uint32_t c = kvtab_read(kvtab_shard(&x->conf, h), keys[k], (uint32_t)h, pods, aux,
                              KVX_MAX_PODS);
        for (uint32_t j = 0; j < c; j++)
            if (pods[j] < x->max_pods && match[pods[j]] == k) {
                match[pods[j]] = (uint16_t)(k + 1);
                grew++;
            }
        if (preds) {
            c = kvtab_read(kvtab_shard(&x->pred, h), keys[k], (uint32_t)h, pods, aux,
                         KVX_MAX_PODS);
            for (uint32_t j = 0; j < c; j++)
                if (pods[j] < x->max_pods && match[pods[j]] == k && live(aux[j], now)) {
                    match[pods[j]] = (uint16_t)(k + 1);
                    grew++;
                }
        }
        if (!grew)
            break;
        best = (uint32_t)(k + 1);
    }
    return best;
}

/* ---- the writer: pods ---- */

/* Forgets everything the pod holds (its references, its map). */
static void drop_entries(struct kvindex *x, struct pod *p, uint32_t pod)
{
    for (uint32_t i = 0; p->map.s && i <= p->map.mask; i++)
        if ((p->map.s[i].used & KVEMAP_INDEXED))
            conf_drop(x, p->map.s[i].okey, pod);
    kvemap_clear(&p->map);
}

void kvx_pod_enable(struct kvindex *x, uint32_t pod, uint64_t root)
{
    struct pod *p = pod_of(x, pod);
    if (!p)
        return;
    st_begin(p);
    if (p->enabled && p->root != root) /* another model: its keys differ */
        drop_entries(x, p, pod);
    p->root = root;
    int was = p->enabled;
    p->enabled = 1;
    if (!was) {
        p->have_seq = 0;
        set_base(p, KVX_APPROXIMATE, KVX_WHY_FIRST_BATCH);
    }
    st_end(p);
    if (!was)
        reshare(x);
}

void kvx_pod_disable(struct kvindex *x, uint32_t pod)
{
    struct pod *p = pod_of(x, pod);
    if (!p)
        return;
    st_begin(p);
    drop_entries(x, p, pod);
    kvemap_free(&p->map);
    int was = p->enabled;
    p->enabled = 0;
    p->have_seq = 0;
    p->replayable = 0;
    p->nloras = 0;
    p->silent = p->untrusted = 0;
    set_base(p, KVX_APPROXIMATE, KVX_WHY_NOT_CONFIGURED);
    st_end(p);
    if (was)
        reshare(x);
}

void kvx_set_capacity(struct kvindex *x, uint32_t pod, uint32_t blocks)
{
    struct pod *p = pod_of(x, pod);
    if (!p || p->capacity == blocks)
        return;
    p->capacity = blocks;
    reshare(x);
}

int kvx_pod_lora(struct kvindex *x, uint32_t pod, int64_t lora_id, const char *name)
{
    struct pod *p = pod_of(x, pod);
    if (!p || !name)
        return -EINVAL;
    int i;
    for (i = 0; i < p->nloras && p->loras[i].id != lora_id; i++)
        ;
    if (i == MAX_LORAS)
        return -ENOSPC;
    p->loras[i].id = lora_id;
    p->loras[i].word = bk_lora_word(name, strlen(name));
    if (i == p->nloras)
        p->nloras++;
    return 0;
}

enum kvx_seq kvx_seq_check(struct kvindex *x, uint32_t pod, uint64_t seq)
{
    struct pod *p = pod_of(x, pod);
    enum kvx_seq r;
    if (!p || !p->enabled)
        return KVX_SEQ_DUP;
    st_begin(p);
    if (!p->have_seq) {
        /* the first batch: from a publisher that just started (seq 0),
         * everything it holds will be seen; mid-stream, not what came before */
        p->have_seq = 1;
        p->st.next_seq = seq + 1;
        set_base(p, seq == 0 ? KVX_EXACT : KVX_SYNCING, KVX_WHY_FIRST_BATCH);
        r = KVX_SEQ_APPLY;
    } else if (seq == p->st.next_seq) {
        p->st.next_seq++;
        if (p->base == KVX_APPROXIMATE) /* the first batch, where expected */
            set_base(p, seq == 0 ? KVX_EXACT : KVX_SYNCING, KVX_WHY_FIRST_BATCH);
        r = KVX_SEQ_APPLY;
    } else if (seq < p->st.next_seq && p->base == KVX_GAPPED) {
        p->st.dup_batches++; /* replay overlap, or a live batch the replay had */
        r = KVX_SEQ_DUP;
    } else if (seq < p->st.next_seq) {
        /* PUB never sends a batch twice: a lower number on the live stream
         * is a new publisher (pod restarted; its first batches may have
         * been lost to the subscription's slow join) */
        p->st.restarts++;
        drop_entries(x, p, pod);
        if (seq > 0 && p->replayable) {
            /* ask the new publisher for everything from its start */
            p->st.next_seq = 0;
            p->st.gaps++;
            p->gap_from_start = 1;
            p->before_gap = KVX_SYNCING;
            set_base(p, KVX_GAPPED, KVX_WHY_GAP);
            r = KVX_SEQ_GAP;
        } else {
            p->st.next_seq = seq + 1;
            set_base(p, seq == 0 ? KVX_EXACT : KVX_SYNCING, KVX_WHY_FIRST_BATCH);
            r = KVX_SEQ_RESTART;
        }
    } else {
        if (p->base != KVX_GAPPED) {
            p->st.gaps++;
            p->gap_from_start = p->st.next_seq == 0;
            p->before_gap = p->gap_from_start ? KVX_SYNCING : p->base;
            set_base(p, KVX_GAPPED, KVX_WHY_GAP);
        }
        r = KVX_SEQ_GAP;
    }
    st_end(p);
    return r;
}

void kvx_gap_filled(struct kvindex *x, uint32_t pod)
{
    struct pod *p = pod_of(x, pod);
    if (p && p->enabled && p->base == KVX_APPROXIMATE && p->replayable && p->have_seq &&
        p->st.next_seq == 0) {
        /* asked from 0 before any batch, and nothing came: it published
         * nothing yet (vLLM's ring keeps its last batches for good) */
        st_begin(p);
        p->st.replays_filled++;
        set_base(p, KVX_EXACT, KVX_WHY_NONE);
        st_end(p);
        return;
    }
    if (!p || p->base != KVX_GAPPED)
        return;
    st_begin(p);
    p->st.replays_filled++;
    if (p->gap_from_start) /* every batch since the publisher's first: all known */
        p->before_gap = KVX_EXACT;
    p->gap_from_start = 0;
    set_base(p, p->before_gap, p->before_gap == KVX_SYNCING ? p->st.why : KVX_WHY_NONE);
    st_end(p);
}

void kvx_expect_from(struct kvindex *x, uint32_t pod, uint64_t seq)
{
    struct pod *p = pod_of(x, pod);
    if (!p || !p->enabled || p->have_seq)
        return;
    st_begin(p);
    p->replayable = 1;
    p->have_seq = 1;
    p->st.next_seq = seq;
    st_end(p);
}

void kvx_gap_lost(struct kvindex *x, uint32_t pod, uint64_t next_seq)
{
    struct pod *p = pod_of(x, pod);
    if (!p || !p->enabled)
        return;
    st_begin(p);
    p->st.replays_failed++;
    p->gap_from_start = 0;
    drop_entries(x, p, pod);
    if (next_seq == KVX_SEQ_UNKNOWN)
        p->have_seq = 0; /* the next batch starts the stream again */
    else
        p->st.next_seq = next_seq;
    set_base(p, KVX_SYNCING, KVX_WHY_GAP_UNFILLED);
    st_end(p);
}

void kvx_batch_bad(struct kvindex *x, uint32_t pod, uint64_t seq)
{
    struct pod *p = pod_of(x, pod);
    if (!p || !p->enabled)
        return;
    st_begin(p);
    p->st.bad_batches++;
    drop_entries(x, p, pod);
    if (p->have_seq && seq >= p->st.next_seq)
        p->st.next_seq = seq + 1;
    set_base(p, KVX_SYNCING, KVX_WHY_BAD_BATCH);
    st_end(p);
}

void kvx_set_silent(struct kvindex *x, uint32_t pod, int silent)
{
    struct pod *p = pod_of(x, pod);
    if (!p || p->silent == !!silent)
        return;
    st_begin(p);
    p->silent = !!silent;
    if (silent)
        p->st.why = KVX_WHY_SILENT;
    publish_mode(p);
    st_end(p);
}

void kvx_set_untrusted(struct kvindex *x, uint32_t pod, int untrusted)
{
    struct pod *p = pod_of(x, pod);
    if (!p || p->untrusted == !!untrusted)
        return;
    st_begin(p);
    p->untrusted = !!untrusted;
    if (untrusted)
        p->st.why = KVX_WHY_TEMPLATE;
    publish_mode(p);
    st_end(p);
}

/* ---- the writer: events ---- */

static uint64_t lora_word(const struct pod *p, const struct kvev_event *e)
{
    if (e->lora_name.p && e->lora_name.len)
        return bk_lora_word(e->lora_name.p, e->lora_name.len);
    if (!e->has_lora_id || e->lora_id == 0)
        return 0;
    for (int i = 0; i < p->nloras; i++)
        if (p->loras[i].id == e->lora_id)
            return p->loras[i].word;
    /* an adapter known by number only: its own domain, never a request's */
    return XXH3_64bits_withSeed(&e->lora_id, sizeof(e->lora_id), LORA_ID_TAG) | 1;
}

/* Events the index keeps: the GPU tier (or engines that do not say) and
 * the first KV-cache group (hybrid models send one event per group; the
 * full-attention group 0 is the one whose prefix decides a hit). */
static int relevant(const struct kvev_event *e)
{
    if (e->medium.p && !(e->medium.len == 3 && !memcmp(e->medium.p, "GPU", 3)))
        return 0;
    return !e->has_group || e->group_idx == 0;
}

static void enter_syncing(struct pod *p, enum kvx_why why)
{
    if (p->base == KVX_GAPPED) {
        p->before_gap = KVX_SYNCING;
        p->st.why = why;
    } else if (p->base != KVX_SYNCING) {
        set_base(p, KVX_SYNCING, why);
    }
    p->settle_run = 0;
}

static void store_block(struct kvindex *x, struct pod *p, uint32_t pod, uint64_t eh,
                        uint64_t okey)
{
    uint32_t h = (uint32_t)hkey(x, eh);
    int64_t i = kvemap_find(&p->map, eh, h);
    if (i >= 0) {
        struct kvemap_slot *s = &p->map.s[i];
        if (s->okey == okey)
            return; /* stored twice: nothing new */
        if (s->used & KVEMAP_INDEXED)
            conf_drop(x, s->okey, pod);
        kvemap_del(&p->map, (uint32_t)i);
    }
    if (p->map.count >= pod_limit(x, p) ||
        (i = kvemap_add(&p->map, eh, h, okey)) < 0) {
        p->st.capped++;
        enter_syncing(p, KVX_WHY_CAPPED);
        return;
    }
    uint64_t hk = hkey(x, okey);
    if (conf_add(x, okey, hk, pod)) {
        kvemap_del(&p->map, (uint32_t)i); /* table full: as if capped */
        p->st.capped++;
        enter_syncing(p, KVX_WHY_CAPPED);
        return;
    }
    p->map.s[i].used |= KVEMAP_INDEXED;
    if (!pred_clear(x, okey, hk, pod)) /* a block someone else's request made */
        atomic_fetch_add_explicit(&p->foreign_tok, atomic_load_explicit(&p->bs, memory_order_relaxed),
                                  memory_order_relaxed);
    p->st.blocks_stored++;
}

static void apply_stored(struct kvindex *x, struct pod *p, uint32_t pod,
                         const struct kvev_event *e)
{
    uint64_t prev = p->root;
    if (e->has_parent) {
        int64_t i = kvemap_find(&p->map, e->parent, (uint32_t)hkey(x, e->parent));
        if (i < 0) {
            /* its chain cannot be keyed: the blocks stay unknown here */
            p->st.unknown_parents++;
            enter_syncing(p, KVX_WHY_UNKNOWN_PARENT);
            return;
        }
        prev = p->map.s[i].okey;
    }
    if (e->block_size) {
        p->st.block_size = e->block_size;
        atomic_store_explicit(&p->bs, e->block_size, memory_order_relaxed);
    }
    uint64_t lw = lora_word(p, e);
    uint64_t sw = bk_salt_word(e->cache_salt.p, e->cache_salt.len);
    for (uint32_t i = 0; i < e->nblocks; i++) {
        int first = i == 0 && !e->has_parent;
        uint64_t okey;
        if (i >= e->opaque_from) {
            /* not reproducible from tokens: a key no request can have */
            uint64_t v[2] = {prev, e->hashes[i]};
            okey = XXH3_64bits_withSeed(v, sizeof(v), OPAQUE_TAG);
        } else {
            okey = bk_block(prev, e->tokens + (size_t)i * e->block_size, e->block_size, lw,
                            sw, first);
        }
        store_block(x, p, pod, e->hashes[i], okey);
        prev = okey;
    }
    if (p->base == KVX_SYNCING) {
        p->settle_run += e->nblocks;
        uint64_t settle = p->capacity ? p->capacity : 1;
        if (p->settle_run >= settle)
            set_base(p, KVX_EXACT, KVX_WHY_NONE);
    }
}

static void apply_removed(struct kvindex *x, struct pod *p, uint32_t pod,
                          const struct kvev_event *e)
{
    for (uint32_t i = 0; i < e->nblocks; i++) {
        int64_t j = kvemap_find(&p->map, e->hashes[i], (uint32_t)hkey(x, e->hashes[i]));
        if (j < 0) {
            p->st.unknown_removed++;
            continue;
        }
        if (p->map.s[j].used & KVEMAP_INDEXED)
            conf_drop(x, p->map.s[j].okey, pod);
        kvemap_del(&p->map, (uint32_t)j);
        p->st.blocks_removed++;
    }
}

int kvx_apply(struct kvindex *x, uint32_t pod, const struct kvev_batch *b)
{
    struct pod *p = pod_of(x, pod);
    if (!p || !p->enabled || !b)
        return -EINVAL;
    st_begin(p);
    for (uint32_t k = 0; k < b->nevents; k++) {
        const struct kvev_event *e = &b->ev[k];
        if (e->kind != KVEV_CLEARED && !relevant(e)) {
            p->st.skipped++;
            continue;
        }
        switch (e->kind) {
        case KVEV_STORED:
            apply_stored(x, p, pod, e);
            break;
        case KVEV_REMOVED:
            apply_removed(x, p, pod, e);
            break;
        case KVEV_CLEARED:
            /* the pod's cache is empty now: so is ours, and they agree */
            drop_entries(x, p, pod);
            p->st.clears++;
            if (p->base == KVX_GAPPED)
                p->before_gap = KVX_EXACT;
            else
                set_base(p, KVX_EXACT, KVX_WHY_NONE);
            break;
        }
        p->st.events++;
    }
    p->st.batches++;
    st_end(p);
    return 0;
}

/* ---- any thread ---- */

enum kvx_mode kvx_pod_mode(struct kvindex *x, uint32_t pod)
{
    if (pod >= x->max_pods)
        return KVX_APPROXIMATE;
    return (enum kvx_mode)atomic_load_explicit(&x->pods[pod].mode, memory_order_acquire);
}

uint32_t kvx_pod_block_size(struct kvindex *x, uint32_t pod)
{
    if (pod >= x->max_pods)
        return 0;
    return atomic_load_explicit(&x->pods[pod].bs, memory_order_relaxed);
}

int kvx_pod_stats(struct kvindex *x, uint32_t pod, struct kvx_pod_stats *out)
{
    struct pod *p = pod_of(x, pod);
    if (!p)
        return -EINVAL;
    for (;;) {
        uint32_t q1 = atomic_load_explicit(&p->stseq, memory_order_acquire);
        if (q1 & 1) {
            __builtin_ia32_pause();
            continue;
        }
        /* a racy copy, kept only if no write overlapped it */
        const volatile unsigned char *src = (const volatile unsigned char *)&p->st;
        unsigned char *dst = (unsigned char *)out;
        for (size_t i = 0; i < sizeof(*out); i++)
            dst[i] = src[i];
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&p->stseq, memory_order_relaxed) == q1)
            return 0;
    }
}

const char *kvx_mode_name(enum kvx_mode m)
{
    static const char *n[KVX_NMODES] = {"approximate", "syncing", "gapped", "exact"};
    return (unsigned)m < KVX_NMODES ? n[m] : "?";
}

const char *kvx_why_name(enum kvx_why w)
{
    static const char *n[KVX_WHY_MAX] = {"none", "not_configured", "first_batch", "gap",
                                          "gap_unfilled", "unknown_parent", "capped",
                                          "silent", "bad_batch", "no_tokenizer"};
    return (unsigned)w < KVX_WHY_MAX ? n[w] : "?";
}

uint64_t kvx_pod_foreign_tokens(struct kvindex *x, uint32_t pod)
{
    struct pod *p = x ? pod_of(x, pod) : NULL;
    return p ? atomic_load_explicit(&p->foreign_tok, memory_order_relaxed) : 0;
}
