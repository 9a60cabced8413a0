/* kvtab: the two tables under the exact index (kvindex.c), each a thing of
 * its own:
 *
 *   struct kvtab   (key, pod) -> 16-bit aux, fixed-size open addressing
 *                  (linear probing, backward-shift deletion, no
 *                  tombstones) in KVTAB_SHARDS shards, each behind a
 *                  sequence lock: ONE writer per shard at a time (the
 *                  caller's business: a single writer thread, or a mutex,
 *                  kvtab_shard.mu) changes it between kvtab_wbegin and
 *                  kvtab_wend; readers (kvtab_read) never write shared
 *                  memory and retry when a write overlapped their probe.
 *                  A slot keeps 31 bits of its pair's hash, so deletion
 *                  finds each entry's home without hashing again. The
 *                  caller hashes keys (seeded: keys may be chosen by
 *                  others) and picks the shard with kvtab_shard().
 *   struct kvemap  u64 -> (u64, flags), one writer, no readers: the
 *                  per-pod engine-hash map. Grown by doubling (load 1/2).
 *
 * Slot fields are read and written with relaxed atomics; the sequence
 * counter's release/acquire orders them. */
#ifndef KVGATE_CORE_KVTAB_H
#define KVGATE_CORE_KVTAB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define KVTAB_SHARDS 64
#define KVTAB_SHARD_BITS 6

struct kvtab_slot {
    uint64_t key;
    uint64_t meta; /* USED | hash bits 32..62 | aux 16..31 | pod 0..15; 0 = empty */
};

struct kvtab_shard {
    _Atomic uint32_t seq;  /* odd while the writer changes the shard */
    uint32_t mask, count, limit;
    struct kvtab_slot *s;
    pthread_mutex_t mu;    /* for callers with several writers */
} __attribute__((aligned(64)));

struct kvtab {
    struct kvtab_shard sh[KVTAB_SHARDS];
};

/* total_slots split over the shards (powers of two, 64 at least; load
 * factor 3/4 at most). Every shard's mutex is initialised first, so
 * kvtab_free is always safe. 0 or -ENOMEM. */
int kvtab_init(struct kvtab *t, uint64_t total_slots);
void kvtab_free(struct kvtab *t);

static inline struct kvtab_shard *kvtab_shard(struct kvtab *t, uint64_t h)
{
    return &t->sh[h >> (64 - KVTAB_SHARD_BITS)];
}

/* ---- writer side (h = the pair's key hash, low 31 bits used) ---- */
void kvtab_wbegin(struct kvtab_shard *sh);
void kvtab_wend(struct kvtab_shard *sh);
/* Slot of (key, pod), or -1. */
int64_t kvtab_find(const struct kvtab_shard *sh, uint64_t key, uint32_t h, uint32_t pod);
/* Inserts (key, pod) known to be absent: slot, or -1 when the shard is full. */
int64_t kvtab_insert(struct kvtab_shard *sh, uint64_t key, uint32_t h, uint32_t pod,
                     uint32_t aux);
uint32_t kvtab_aux(const struct kvtab_shard *sh, uint32_t i);
void kvtab_set_aux(struct kvtab_shard *sh, uint32_t i, uint32_t aux);
void kvtab_del(struct kvtab_shard *sh, uint32_t i);
/* Deletes every entry dead(aux, ctx) says is dead (inside wbegin/wend).
 * Returns how many. */
uint32_t kvtab_sweep(struct kvtab_shard *sh, int (*dead)(uint32_t aux, void *ctx), void *ctx);

/* ---- reader side ---- */
/* Starts fetching the home slot of hash h (a lookup walking a chain asks
 * for the next keys' slots while it reads this one's). */
static inline void kvtab_prefetch(const struct kvtab_shard *sh, uint32_t h)
{
    __builtin_prefetch(&sh->s[h & sh->mask]);
}
/* The pods holding key (and their aux), from one consistent view of its
 * shard: how many (at most max). */
uint32_t kvtab_read(struct kvtab_shard *sh, uint64_t key, uint32_t h, uint16_t *pods,
                    uint16_t *aux, uint32_t max);

/* ---- the per-pod map ---- */

#define KVEMAP_USED 1u
#define KVEMAP_INDEXED 2u /* kvindex: the own key has a confirmed reference */

struct kvemap_slot {
    uint64_t ehash, okey;
    uint32_t used;        /* KVEMAP_* bits; 0 = empty */
    uint32_t h;
};

struct kvemap {
    struct kvemap_slot *s;
    uint32_t mask, count;
};

/* Slot of eh (h = its hash), or -1. */
int64_t kvemap_find(const struct kvemap *m, uint64_t eh, uint32_t h);
/* Adds eh (absent) -> okey: slot, or -1 on ENOMEM. */
int64_t kvemap_add(struct kvemap *m, uint64_t eh, uint32_t h, uint64_t okey);
void kvemap_del(struct kvemap *m, uint32_t i);
/* Empties the map, keeping its memory. */
void kvemap_clear(struct kvemap *m);
void kvemap_free(struct kvemap *m);

#endif
