/* prefix_index: per-pod LRU sets of block keys with one shared hash map.
 * See prefix_index.h. */
#include "core/prefix_index.h"
#include "common/alloc.h"
#include "core/fairshare.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <time.h>
#include <xxhash.h>

#define NIL UINT32_MAX

struct entry {
    uint64_t key;
    uint32_t hnext;       /* bucket chain, or free-list link */
    uint32_t prev, next;  /* the pod's LRU list: head = most recent */
    uint16_t pod;
};

struct pod_lru {
    uint32_t head, tail, count, capacity;
    uint8_t active;       /* counts in the fair shares */
};

struct prefix_index {
    pthread_mutex_t mu;
    uint32_t max_pods, max_entries, nused;
    struct entry *e;
    uint32_t free_head;
    uint32_t *buckets;
    uint32_t mask;
    uint64_t seed;        /* bucket hashing key, random per index */
    uint32_t level;       /* fair-share cap of the larger pods (UINT32_MAX: none) */
    struct pod_lru *pods;
};

/* Keys are public (anyone can fingerprint a prompt), so the bucket is a
 * keyed hash of the key: without the seed, nobody can aim at a bucket. */
static uint32_t bucket(const struct prefix_index *x, uint64_t key)
{
    return (uint32_t)XXH3_64bits_withSeed(&key, sizeof(key), x->seed) & x->mask;
}

static uint64_t random_seed(const void *salt)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
        /* no entropy yet (early boot): time and addresses, still per process */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = XXH3_64bits_withSeed(&ts, sizeof(ts), (uint64_t)(uintptr_t)salt ^ (uint64_t)getpid());
    }
    return s;
}

static uint32_t pod_limit(const struct prefix_index *x, uint32_t pod)
{
    uint32_t c = x->pods[pod].capacity;
    return c < x->level ? c : x->level;
}

struct prefix_index *pidx_new(uint32_t max_pods, uint32_t max_entries,
                              uint32_t default_capacity)
{
    if (!max_pods || max_pods > PIDX_MAX_PODS || !max_entries) {
        errno = EINVAL;
        return NULL;
    }
    struct prefix_index *x = kv_calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    pthread_mutex_init(&x->mu, NULL); /* first: pidx_free destroys it */
    uint32_t nb = 1;
    while (nb < max_entries && nb < (1u << 30))
        nb <<= 1;
    x->e = kv_malloc((size_t)max_entries * sizeof(*x->e));
    x->buckets = kv_malloc((size_t)nb * sizeof(*x->buckets));
    x->pods = kv_calloc(max_pods, sizeof(*x->pods));
    if (!x->e || !x->buckets || !x->pods) {
        pidx_free(x);
        errno = ENOMEM;
        return NULL;
    }
    memset(x->buckets, 0xff, (size_t)nb * sizeof(*x->buckets));
    x->mask = nb - 1;
    x->max_pods = max_pods;
    x->max_entries = max_entries;
    for (uint32_t i = 0; i < max_entries; i++)
        x->e[i].hnext = i + 1 < max_entries ? i + 1 : NIL;
    x->free_head = 0;
    for (uint32_t p = 0; p < max_pods; p++)
        x->pods[p] = (struct pod_lru){NIL, NIL, 0, default_capacity, 0};
    x->seed = random_seed(x);
    x->level = UINT32_MAX;
    return x;
}

void pidx_free(struct prefix_index *x)
{
    if (!x)
        return;
    pthread_mutex_destroy(&x->mu);
    kv_free(x->e);
    kv_free(x->buckets);
    kv_free(x->pods);
    kv_free(x);
}

static void lru_unlink(struct prefix_index *x, uint32_t i)
{
    struct entry *en = &x->e[i];
    struct pod_lru *p = &x->pods[en->pod];
    if (en->prev != NIL) x->e[en->prev].next = en->next; else p->head = en->next;
    if (en->next != NIL) x->e[en->next].prev = en->prev; else p->tail = en->prev;
    p->count--;
}

static void lru_push_head(struct prefix_index *x, uint32_t i)
{
    struct entry *en = &x->e[i];
    struct pod_lru *p = &x->pods[en->pod];
    en->prev = NIL;
    en->next = p->head;
    if (p->head != NIL) x->e[p->head].prev = i; else p->tail = i;
    p->head = i;
    p->count++;
}

static void map_unlink(struct prefix_index *x, uint32_t i)
{
    uint32_t *pp = &x->buckets[bucket(x, x->e[i].key)];
    while (*pp != i)
        pp = &x->e[*pp].hnext;
    *pp = x->e[i].hnext;
}

static void release(struct prefix_index *x, uint32_t i)
{
    lru_unlink(x, i);
    map_unlink(x, i);
    x->e[i].hnext = x->free_head;
    x->free_head = i;
    x->nused--;
}

static uint32_t find(const struct prefix_index *x, uint64_t key, uint32_t pod)
{
    for (uint32_t i = x->buckets[bucket(x, key)]; i != NIL; i = x->e[i].hnext)
        if (x->e[i].key == key && x->e[i].pod == pod)
            return i;
    return NIL;
}

static void shrink(struct prefix_index *x, uint32_t pod, uint32_t to)
{
    while (x->pods[pod].count > to && x->pods[pod].tail != NIL)
        release(x, x->pods[pod].tail);
}

/* Max-min fair shares of the pool among the active pods (fairshare.h),
 * then every pod over its new limit is trimmed (tail first, as any
 * eviction). Runs when a pod joins, leaves or changes capacity: O(n log n)
 * in the active pods. */
static void reshare(struct prefix_index *x)
{
    uint32_t caps[PIDX_MAX_PODS], n = 0;
    for (uint32_t p = 0; p < x->max_pods; p++)
        if (x->pods[p].active)
            caps[n++] = x->pods[p].capacity;
    x->level = fairshare_level(caps, n, x->max_entries);
    for (uint32_t p = 0; p < x->max_pods; p++)
        if (x->pods[p].active)
            shrink(x, p, pod_limit(x, p));
}

void pidx_set_capacity(struct prefix_index *x, uint32_t pod, uint32_t blocks)
{
    if (pod >= x->max_pods)
        return;
    pthread_mutex_lock(&x->mu);
    x->pods[pod].capacity = blocks;
    x->pods[pod].active = 1;
    reshare(x);
    pthread_mutex_unlock(&x->mu);
}

uint32_t pidx_pod_limit(struct prefix_index *x, uint32_t pod)
{
    if (pod >= x->max_pods)
        return 0;
    pthread_mutex_lock(&x->mu);
    uint32_t n = pod_limit(x, pod);
    pthread_mutex_unlock(&x->mu);
    return n;
}

void pidx_insert(struct prefix_index *x, uint32_t pod, const uint64_t *keys,
                 size_t n)
{
    if (pod >= x->max_pods || x->pods[pod].capacity == 0)
        return;
    pthread_mutex_lock(&x->mu);
    if (!x->pods[pod].active) {
        x->pods[pod].active = 1;
        reshare(x);
    }
    uint32_t limit = pod_limit(x, pod);
    if (limit == 0) {
        pthread_mutex_unlock(&x->mu);
        return;
    }
    /* tail first, so the chain's head ends up most recently used */
    for (size_t k = n; k-- > 0;) {
        uint32_t i = find(x, keys[k], pod);
        if (i != NIL) {
            lru_unlink(x, i);
            lru_push_head(x, i);
            continue;
        }
        if (x->pods[pod].count >= limit)
            release(x, x->pods[pod].tail);
        if (x->free_head == NIL) {
            /* the shared pool is full (fair shares round down, so only
             * if a share is 0): this pod recycles its own oldest */
            if (x->pods[pod].tail == NIL)
                break;
            release(x, x->pods[pod].tail);
        }
        i = x->free_head;
        x->free_head = x->e[i].hnext;
        x->nused++;
        x->e[i].key = keys[k];
        x->e[i].pod = (uint16_t)pod;
        uint32_t b = bucket(x, keys[k]);
        x->e[i].hnext = x->buckets[b];
        x->buckets[b] = i;
        lru_push_head(x, i);
    }
    pthread_mutex_unlock(&x->mu);
}

void pidx_withdraw(struct prefix_index *x, uint32_t pod, const uint64_t *keys, size_t n)
{
    if (pod >= x->max_pods || !n)
        return;
    pthread_mutex_lock(&x->mu);
    for (size_t k = 0; k < n; k++) {
        uint32_t i = find(x, keys[k], pod);
        if (i != NIL)
            release(x, i);
    }
    pthread_mutex_unlock(&x->mu);
}

/* What one probe of key k saw among the pods that hold block 0: how many
 * hold key k and a signature of which (equal sets give equal counts and
 * signatures). */
struct probe {
    uint32_t count;
    uint64_t sig;
};

static struct probe probe(const struct prefix_index *x, const uint64_t *keys,
                          size_t k, uint16_t *match)
{
    struct probe r = {0, 0};
    for (uint32_t i = x->buckets[bucket(x, keys[k])]; i != NIL; i = x->e[i].hnext) {
        const struct entry *en = &x->e[i];
        if (en->key != keys[k] || !match[en->pod])
            continue;
        if (match[en->pod] < k + 1)
            match[en->pod] = (uint16_t)(k + 1);
        r.count++;
        r.sig ^= ((uint64_t)en->pod + 1) * 0x9E3779B97F4A7C15ull;
    }
    return r;
}

/* Refines (lo, hi): both probed; a pod whose match ends strictly between
 * them makes their sets differ, so only such intervals are split. */
static void refine(const struct prefix_index *x, const uint64_t *keys,
                   size_t lo, size_t hi, struct probe plo, struct probe phi,
                   uint16_t *match)
{
    while (hi - lo > 1 && (plo.count != phi.count || plo.sig != phi.sig)) {
        size_t mid = lo + (hi - lo) / 2;
        struct probe pm = probe(x, keys, mid, match);
        refine(x, keys, lo, mid, plo, pm, match);
        lo = mid;
        plo = pm;
    }
}

/* Every pod's holdings are prefix-closed: pidx_insert credits whole chains
 * (block k's key encodes blocks 0..k) and touches block j after block k for
 * j < k, so LRU eviction, capacity shrink and pool recycling all drop a
 * chain's tail before its head. The pods holding key k therefore shrink as
 * k grows, and each pod's match is found by bisection where that set
 * changes: O(d log n) probes for d distinct match lengths (typically 1-3)
 * instead of one probe per matched block, each probe a cache miss or two
 * in an index of millions of entries. Pods must hold block 0 to match at
 * all (a hole there is caught; a hole inside a chain, which the insert
 * order above rules out, would be bridged). match[p] doubles as the
 * "holds block 0" mark while probing. */
uint32_t pidx_lookup(struct prefix_index *x, const uint64_t *keys, size_t n,
                     uint16_t *match)
{
    memset(match, 0, x->max_pods * sizeof(*match));
    if (n > UINT16_MAX)
        n = UINT16_MAX;
    if (n == 0)
        return 0;
    pthread_mutex_lock(&x->mu);
    struct probe p0 = {0, 0};
    for (uint32_t i = x->buckets[bucket(x, keys[0])]; i != NIL; i = x->e[i].hnext) {
        const struct entry *en = &x->e[i];
        if (en->key == keys[0] && !match[en->pod]) {
            match[en->pod] = 1;
            p0.count++;
            p0.sig ^= ((uint64_t)en->pod + 1) * 0x9E3779B97F4A7C15ull;
        }
    }
    if (p0.count && n > 1) {
        struct probe pn = probe(x, keys, n - 1, match);
        refine(x, keys, 0, n - 1, p0, pn, match);
    }
    pthread_mutex_unlock(&x->mu);
    uint32_t best = 0;
    for (uint32_t p = 0; p < x->max_pods; p++)
        if (match[p] > best)
            best = match[p];
    return best;
}

void pidx_purge_pod(struct prefix_index *x, uint32_t pod)
{
    if (pod >= x->max_pods)
        return;
    pthread_mutex_lock(&x->mu);
    shrink(x, pod, 0);
    pthread_mutex_unlock(&x->mu);
}

void pidx_remove_pod(struct prefix_index *x, uint32_t pod)
{
    if (pod >= x->max_pods)
        return;
    pthread_mutex_lock(&x->mu);
    shrink(x, pod, 0);
    if (x->pods[pod].active) {
        x->pods[pod].active = 0;
        reshare(x);
    }
    pthread_mutex_unlock(&x->mu);
}

uint32_t pidx_pod_blocks(struct prefix_index *x, uint32_t pod)
{
    if (pod >= x->max_pods)
        return 0;
    pthread_mutex_lock(&x->mu);
    uint32_t n = x->pods[pod].count;
    pthread_mutex_unlock(&x->mu);
    return n;
}
