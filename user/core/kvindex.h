/* kvindex: the exact index: which pod holds which KV block, from the pods'
 * own KV events (issue 11; DESIGN.md "Token-exact routing").
 *
 * Keys are blockkey.h keys: the same chain the router computes from a
 * tokenized request. A BlockStored event names each block by the engine's
 * hash and carries its token ids and its parent's engine hash, so each pod
 * keeps a map engine hash -> own key, and a stored block's own key is
 * chained from its parent's own key (or the pod's model root for a chain's
 * first block). BlockRemoved goes through the same map. A shared table
 * holds (own key, pod) pairs, so a lookup answers for every pod at once how
 * many leading blocks of a request it holds: the shape of pidx_lookup().
 *
 * Per-pod mode (what the router may conclude from a pod's matches):
 *   EXACT        events arrive in sequence and everything the pod holds is
 *                known: a match is a hit, a miss is a miss.
 *   GAPPED       a sequence gap was seen; replay was asked for; entries are
 *                kept (they may miss what the lost batches stored or keep
 *                what they removed) until the replay fills the gap.
 *   SYNCING      rebuilding from the live stream after a loss that replay
 *                could not fill (entries were dropped), after subscribing
 *                mid-stream, after an unknown parent or a capped pod: what
 *                the index holds the pod holds (no false hits), but not all
 *                of it. Combine with the approximate index.
 *   APPROXIMATE  no events to trust: none configured, the stream is silent
 *                while the pod is working (kvx_set_silent), or the caller
 *                marked it (e.g. its chat template is not recognised).
 * SYNCING becomes EXACT on a fact that makes the index equal to the pod's
 * cache: AllBlocksCleared, or the publisher starting over (sequence 0, a
 * new process with an empty cache); or, as a heuristic, once `settle`
 * blocks in a row (default: the pod's capacity) were stored with known
 * parents, i.e. nothing the pod extended was missing here.
 *
 * Predicted entries: what the gateway just routed (kvx_predict), until an
 * event confirms it or its TTL passes. A lookup counts them unless asked
 * not to; they live in their own bounded table and never replace or
 * remove a confirmed entry; a confirmed store clears the matching
 * prediction.
 *
 * Bounds: max_entries (own key, pod) pairs in all; each pod's limit is
 * min(its capacity, its max-min fair share of max_entries), as in the
 * approximate index, so a pod claiming absurd numbers of blocks cannot
 * starve the others: blocks past its limit are refused and counted (the
 * pod goes SYNCING: its index is then a subset).
 *
 * Concurrency: ONE writer thread (the KV-event subscriber) calls every
 * function that changes confirmed state; any thread may call kvx_lookup,
 * kvx_predict, kvx_pod_mode and kvx_pod_stats. The shared tables are
 * fixed-size open-addressing arrays in 64 shards, each under a sequence
 * lock: readers never write shared memory (no lock cache line bouncing
 * between worker cores) and retry a key's probe if the shard changed under
 * them; the writer never waits for readers. Per-pod maps are the writer's
 * alone. Predictions are written by workers: one mutex per shard for the
 * writers, the same sequence lock for readers. A lookup is not a snapshot
 * across keys (a batch may be half applied): routing does not need one. */
#ifndef KVGATE_CORE_KVINDEX_H
#define KVGATE_CORE_KVINDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/kvev_decode.h"

#define KVX_MAX_PODS 1024

enum kvx_mode { KVX_APPROXIMATE = 0, KVX_SYNCING = 1, KVX_GAPPED = 2, KVX_EXACT = 3,
                KVX_NMODES };

/* Why a pod is not EXACT (the last reason that applied). */
enum kvx_why {
    KVX_WHY_NONE, KVX_WHY_NOT_CONFIGURED, KVX_WHY_FIRST_BATCH, KVX_WHY_GAP,
    KVX_WHY_GAP_UNFILLED, KVX_WHY_UNKNOWN_PARENT, KVX_WHY_CAPPED, KVX_WHY_SILENT,
    KVX_WHY_BAD_BATCH, KVX_WHY_TEMPLATE, KVX_WHY_MAX
};

struct kvx_pod_stats {
    enum kvx_mode mode;
    enum kvx_why why;
    uint64_t transitions;            /* mode changes, all */
    uint64_t entered[KVX_NMODES];    /* changes into each mode */
    uint64_t batches, events;        /* applied */
    uint64_t blocks_stored, blocks_removed, clears;
    uint64_t gaps, replays_filled, replays_failed;
    uint64_t dup_batches, restarts, bad_batches;
    uint64_t unknown_parents;        /* BlockStored events whose parent was unknown */
    uint64_t unknown_removed;        /* removed hashes not in the map */
    uint64_t capped;                 /* blocks refused: pod at its limit or table full */
    uint64_t skipped;                /* events of another medium or KV group */
    uint64_t held;                   /* blocks in the pod's map now */
    uint64_t limit;                  /* what it may hold */
    uint64_t next_seq;               /* expected next batch sequence */
    uint32_t block_size;             /* as its events say, 0 before any */
};

struct kvindex;

/* max_entries bounds (own key, pod) pairs across pods (about 60 bytes each
 * with the per-pod map); default_capacity is a pod's limit in blocks until
 * kvx_set_capacity. NULL with errno EINVAL / ENOMEM. */
struct kvindex *kvx_new(uint32_t max_pods, uint32_t max_entries, uint32_t default_capacity);
void kvx_free(struct kvindex *x);

/* Prediction lifetime (default 2 s) and the clock (tests; default
 * CLOCK_MONOTONIC), both before use. */
void kvx_set_predict_ttl_ms(struct kvindex *x, uint32_t ms);
void kvx_set_clock(struct kvindex *x, uint64_t (*now_ns)(void));

/* ---- the writer thread ---- */

/* The pod publishes events: its chains start at root (bk_model_root of its
 * model). Mode APPROXIMATE until its first batch. */
void kvx_pod_enable(struct kvindex *x, uint32_t pod, uint64_t root);
/* No events any more (pod removed, kv_events unset): entries dropped, mode
 * APPROXIMATE (not configured). */
void kvx_pod_disable(struct kvindex *x, uint32_t pod);
/* The pod's cache size in blocks (num_gpu_blocks): its limit and settle
 * count. */
void kvx_set_capacity(struct kvindex *x, uint32_t pod, uint32_t blocks);
/* Old engines name an adapter by lora_id only: the name it stands for, so
 * its blocks key as the router keys that adapter. Unnamed ids key apart
 * (never matching a request). */
int kvx_pod_lora(struct kvindex *x, uint32_t pod, int64_t lora_id, const char *name);

enum kvx_seq {
    KVX_SEQ_APPLY,   /* in sequence: apply the batch (kvx_apply) */
    KVX_SEQ_GAP,     /* ahead of the expected one: keep it, ask for replay
                      * from kvx_pod_stats().next_seq; the pod is GAPPED */
    KVX_SEQ_DUP,     /* already applied (replay overlap): drop it */
    KVX_SEQ_RESTART  /* lower than expected on the live stream: the
                      * publisher restarted; entries were dropped; apply
                      * the batch. (When the pod can replay, kvx_expect_from,
                      * a restart seen past seq 0 answers GAP instead: ask
                      * for everything from 0.) */
};
enum kvx_seq kvx_seq_check(struct kvindex *x, uint32_t pod, uint64_t seq);

/* Before the first batch: the subscriber can replay from `seq` (0: from
 * the publisher's start), so the first live batch past it is a gap to
 * fill, not a mid-stream start; a replay that fills a gap from 0 makes the
 * pod EXACT at once. Also marks the pod replayable (a restart seen past
 * seq 0 is then a gap from 0). */
void kvx_expect_from(struct kvindex *x, uint32_t pod, uint64_t seq);

/* Applies a decoded batch (after KVX_SEQ_APPLY / RESTART). 0 or -EINVAL. */
int kvx_apply(struct kvindex *x, uint32_t pod, const struct kvev_batch *b);

/* Replay brought the pod back in sequence (GAPPED -> previous mode, EXACT
 * when it was, or when the replay reached back to seq 0); or, asked before
 * the first batch (kvx_expect_from 0), it showed the publisher has not
 * published anything yet: its cache is empty, EXACT. */
void kvx_gap_filled(struct kvindex *x, uint32_t pod);
/* Replay could not fill the gap: entries dropped, SYNCING, the stream
 * continues at next_seq (KVX_SEQ_UNKNOWN: the next batch is taken as a
 * first one). */
#define KVX_SEQ_UNKNOWN UINT64_MAX
void kvx_gap_lost(struct kvindex *x, uint32_t pod, uint64_t next_seq);
/* A batch that does not decode: the same as a lost one. */
void kvx_batch_bad(struct kvindex *x, uint32_t pod, uint64_t seq);
/* The stream is silent while the pod works (APPROXIMATE; entries kept), or
 * no longer (back to what it was). */
void kvx_set_silent(struct kvindex *x, uint32_t pod, int silent);
/* Forced APPROXIMATE (e.g. unrecognised chat template) or released. */
void kvx_set_untrusted(struct kvindex *x, uint32_t pod, int untrusted);

/* ---- any thread ---- */

#define KVX_LOOKUP_CONFIRMED 1u /* leave predictions out */

/* match[p] = leading blocks of keys[0..n) pod p holds, for every p <
 * max_pods; returns the best. n is capped at 65535. */
uint32_t kvx_lookup(struct kvindex *x, const uint64_t *keys, size_t n, uint16_t *match,
                    unsigned flags);

/* The gateway routed keys[0..n) to pod: predicted entries until an event
 * confirms them or the TTL passes. Keys already confirmed are left alone.
 * Returns the number of predictions refused for lack of room. */
uint32_t kvx_predict(struct kvindex *x, uint32_t pod, const uint64_t *keys, size_t n);

/* Takes predictions back (the attempt failed before the pod stored
 * anything): keys[0..n) are no longer predicted at pod. Confirmed entries
 * are left alone. */
void kvx_unpredict(struct kvindex *x, uint32_t pod, const uint64_t *keys, size_t n);

enum kvx_mode kvx_pod_mode(struct kvindex *x, uint32_t pod);
/* Tokens of the new blocks the pod stored that no prediction of ours
 * announced, a running total: what other gateways' requests made it
 * prefill (a lone gateway predicts what it routes, so it counts only what
 * its predictions missed: expired ones, blocks its decode filled). The
 * control thread notes it at each scrape (pod_info.foreign_at_scrape);
 * the difference since is what the scrape does not show yet. */
uint64_t kvx_pod_foreign_tokens(struct kvindex *x, uint32_t pod);
/* The block size (tokens) the pod's events carry; 0 before its first
 * BlockStored. The router cuts a request's chain at it. */
uint32_t kvx_pod_block_size(struct kvindex *x, uint32_t pod);
int kvx_pod_stats(struct kvindex *x, uint32_t pod, struct kvx_pod_stats *out);
const char *kvx_mode_name(enum kvx_mode m);
const char *kvx_why_name(enum kvx_why w);

#endif
