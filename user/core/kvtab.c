/* kvtab: sequence-locked (key, pod) tables and the per-pod engine-hash map
 * under the exact index. See kvtab.h. */
#include "core/kvtab.h"
#include "common/alloc.h"

#include <errno.h>
#include <string.h>

#define USED (1ull << 63)
#define LD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define ST(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

static uint32_t meta_pod(uint64_t m) { return (uint32_t)(m & 0xffff); }
static uint32_t meta_aux(uint64_t m) { return (uint32_t)((m >> 16) & 0xffff); }
static uint32_t meta_h(uint64_t m) { return (uint32_t)((m >> 32) & 0x7fffffff); }
static uint64_t mk_meta(uint32_t h, uint32_t aux, uint32_t pod)
{
    return USED | ((uint64_t)(h & 0x7fffffff) << 32) | ((uint64_t)(aux & 0xffff) << 16) |
           (pod & 0xffff);
}

int kvtab_init(struct kvtab *t, uint64_t total_slots)
{
    uint64_t per = total_slots / KVTAB_SHARDS;
    uint32_t n = 64;
    while (n < per && n < (1u << 30))
        n <<= 1;
    for (int i = 0; i < KVTAB_SHARDS; i++) {
        struct kvtab_shard *sh = &t->sh[i];
        atomic_init(&sh->seq, 0);
        pthread_mutex_init(&sh->mu, NULL);
        sh->mask = n - 1;
        sh->limit = n - n / 4; /* load factor 3/4 at most */
        sh->s = kv_calloc(n, sizeof(struct kvtab_slot));
        if (!sh->s)
            return -ENOMEM;
    }
    return 0;
}

void kvtab_free(struct kvtab *t)
{
    for (int i = 0; i < KVTAB_SHARDS; i++) {
        kv_free(t->sh[i].s);
        pthread_mutex_destroy(&t->sh[i].mu);
    }
}

void kvtab_wbegin(struct kvtab_shard *sh)
{
    uint32_t q = atomic_load_explicit(&sh->seq, memory_order_relaxed);
    atomic_store_explicit(&sh->seq, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

void kvtab_wend(struct kvtab_shard *sh)
{
    uint32_t q = atomic_load_explicit(&sh->seq, memory_order_relaxed);
    atomic_store_explicit(&sh->seq, q + 1, memory_order_release);
}

/* Slot of (key, pod) or -1 (writer side). */
int64_t kvtab_find(const struct kvtab_shard *sh, uint64_t key, uint32_t h, uint32_t pod)
{
    for (uint32_t i = h & sh->mask, n = 0; n <= sh->mask; n++, i = (i + 1) & sh->mask) {
        uint64_t m = LD(&sh->s[i].meta);
        if (!m)
            return -1;
        if (LD(&sh->s[i].key) == key && meta_pod(m) == pod)
            return i;
    }
    return -1;
}

/* Inserts (key, pod) known to be absent. Slot or -1 when the shard is full. */
int64_t kvtab_insert(struct kvtab_shard *sh, uint64_t key, uint32_t h, uint32_t pod, uint32_t aux)
{
    if (sh->count >= sh->limit)
        return -1;
    uint32_t i = h & sh->mask;
    while (LD(&sh->s[i].meta))
        i = (i + 1) & sh->mask;
    ST(&sh->s[i].key, key);
    ST(&sh->s[i].meta, mk_meta(h, aux, pod));
    sh->count++;
    return i;
}

void kvtab_set_aux(struct kvtab_shard *sh, uint32_t i, uint32_t aux)
{
    uint64_t m = LD(&sh->s[i].meta);
    ST(&sh->s[i].meta, mk_meta(meta_h(m), aux, meta_pod(m)));
}

/* Backward-shift deletion: later entries of the run whose home is not in
 * (i, j] move up, so probes never need tombstones. */
void kvtab_del(struct kvtab_shard *sh, uint32_t i)
{
    uint32_t m = sh->mask, j = i;
    for (;;) {
        j = (j + 1) & m;
        uint64_t mj = LD(&sh->s[j].meta);
        if (!mj)
            break;
        uint32_t k = meta_h(mj) & m;
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        ST(&sh->s[i].key, LD(&sh->s[j].key));
        ST(&sh->s[i].meta, mj);
        i = j;
    }
    ST(&sh->s[i].meta, 0);
    sh->count--;
}

/* Reader: pods holding key (and their aux) in one consistent view of its
 * shard. Returns how many (at most max). */
uint32_t kvtab_read(struct kvtab_shard *sh, uint64_t key, uint32_t h, uint16_t *pods,
                         uint16_t *aux, uint32_t max)
{
    uint32_t n;
    for (;;) {
        uint32_t q1 = atomic_load_explicit(&sh->seq, memory_order_acquire);
        if (q1 & 1) {
            __builtin_ia32_pause();
            continue;
        }
        n = 0;
        uint32_t mask = sh->mask;
        for (uint32_t i = h & mask, k = 0; k <= mask; k++, i = (i + 1) & mask) {
            uint64_t m = LD(&sh->s[i].meta);
            if (!m)
                break;
            if (LD(&sh->s[i].key) == key && n < max) {
                pods[n] = (uint16_t)meta_pod(m);
                aux[n] = (uint16_t)meta_aux(m);
                n++;
            }
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&sh->seq, memory_order_relaxed) == q1)
            return n;
    }
}

/* ---- the per-pod map ---- */

int64_t kvemap_find(const struct kvemap *m, uint64_t eh, uint32_t h)
{
    if (!m->s)
        return -1;
    for (uint32_t i = h & m->mask;; i = (i + 1) & m->mask) {
        if (!m->s[i].used)
            return -1;
        if (m->s[i].ehash == eh)
            return i;
    }
}

static int kvemap_grow(struct kvemap *m)
{
    uint32_t n = m->s ? (m->mask + 1) * 2 : 256;
    struct kvemap_slot *s = kv_calloc(n, sizeof(*s));
    if (!s)
        return -ENOMEM;
    for (uint32_t i = 0; m->s && i <= m->mask; i++) {
        if (!m->s[i].used)
            continue;
        uint32_t j = m->s[i].h & (n - 1);
        while (s[j].used)
            j = (j + 1) & (n - 1);
        s[j] = m->s[i];
    }
    kv_free(m->s);
    m->s = s;
    m->mask = n - 1;
    return 0;
}

int64_t kvemap_add(struct kvemap *m, uint64_t eh, uint32_t h, uint64_t okey)
{
    if (!m->s || (uint64_t)(m->count + 1) * 2 > (uint64_t)m->mask + 1)
        if (kvemap_grow(m))
            return -1;
    uint32_t i = h & m->mask;
    while (m->s[i].used)
        i = (i + 1) & m->mask;
    m->s[i] = (struct kvemap_slot){eh, okey, KVEMAP_USED, h};
    m->count++;
    return i;
}

void kvemap_del(struct kvemap *m, uint32_t i)
{
    uint32_t mask = m->mask, j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!m->s[j].used)
            break;
        uint32_t k = m->s[j].h & mask;
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        m->s[i] = m->s[j];
        i = j;
    }
    m->s[i].used = 0;
    m->count--;
}


uint32_t kvtab_aux(const struct kvtab_shard *sh, uint32_t i)
{
    return meta_aux(LD(&sh->s[i].meta));
}

uint32_t kvtab_sweep(struct kvtab_shard *sh, int (*dead)(uint32_t aux, void *ctx), void *ctx)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i <= sh->mask;) {
        uint64_t m = LD(&sh->s[i].meta);
        if (m && dead(meta_aux(m), ctx)) {
            kvtab_del(sh, i); /* slot i may now hold a shifted entry: look again */
            n++;
        } else {
            i++;
        }
    }
    return n;
}

void kvemap_clear(struct kvemap *m)
{
    if (m->s)
        memset(m->s, 0, ((size_t)m->mask + 1) * sizeof(*m->s));
    m->count = 0;
}

void kvemap_free(struct kvemap *m)
{
    kv_free(m->s);
    m->s = NULL;
    m->mask = m->count = 0;
}
