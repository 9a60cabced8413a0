/* kvsub: the KV-event subscriber. Feeds the exact index (core/kvindex.h)
 * from every pod that has `kv_events` configured.
 *
 * One thread of its own (not the control thread's event loop): ZMQ sockets
 * are not file descriptors one can put in epoll as they are (ZMQ_FD is
 * edge-triggered and must be drained after every socket operation), and
 * the index wants a single writer anyway; the thread blocks in zmq_poll
 * over one SUB socket per pod (subscribed to the pod's topic prefix, "" for
 * all) and the DEALER of any replay under way, with a 100 ms timeout for
 * its timers and for configuration changes, which other threads hand over
 * under a mutex (kvsub_set_pods, kvsub_note_scrape).
 *
 * At subscription, a pod with a replay endpoint is asked for everything
 * from seq 0: if the answer reaches back to 0 (or is empty: nothing
 * published yet) the pod is exact at once, even while idle; otherwise it
 * rebuilds from the live stream (kvindex.h, SYNCING).
 *
 * Frames are vLLM's [topic, seq (u64 BE), payload]. Sequence handling:
 *   in order      decoded and applied;
 *   a gap         the batch is kept and replay is asked for on the pod's
 *                 `kv_replay` endpoint (DEALER; sends ["", start seq as 8
 *                 bytes BE]; reads ["", seq, payload] until seq = -1, as
 *                 vLLM's ROUTER answers); live batches arriving meanwhile
 *                 are kept too (KVSUB_MAX_KEPT / _BYTES; one past them
 *                 is lost, a gap the next replay sees), then applied in
 *                 order; if replay could not bring every missing batch
 *                 (no endpoint, the ring moved on, no answer within
 *                 replay_timeout_ms) the pod's entries are dropped and it
 *                 rebuilds from the live stream (SYNCING, see kvindex.h);
 *   lower         a restarted publisher (kvindex.h).
 *
 * Silence: vLLM publishes nothing while a pod is idle, or while every
 * request hits its cache, so silence alone proves nothing. The rule: when
 * the scraped prefix-cache counters (vllm:prefix_cache_queries_total -
 * hits_total: prompt tokens the pod had to compute) have grown by at least
 * silence_tokens since the last batch arrived, and silence_ms more pass
 * with no batch, the pod must have stored blocks we did not hear about:
 * its index goes APPROXIMATE and the SUB socket is opened again. The next
 * batch ends it (a gap there is then handled as any gap). silence_tokens
 * defaults to 4096: only full blocks are stored, and one request leaves at
 * most block_size - 1 computed tokens unstored, so 4096 computed tokens
 * without a single stored block needs hundreds of requests shorter than a
 * block.
 *
 * The pod's model name gives its chains' root (bk_model_root); a pod whose
 * model is not known yet (discovered from /v1/models later) is not
 * subscribed until it is. */
#ifndef KVGATE_GATEWAY_KVSUB_H
#define KVGATE_GATEWAY_KVSUB_H

#include <stdint.h>

#include "core/kvindex.h"

#define KVSUB_EP_MAX 128
#define KVSUB_MAX_KEPT 4096            /* batches kept per pod while a replay runs */
#define KVSUB_MAX_KEPT_BYTES (64u << 20) /* ... and their bytes */
#define KVSUB_REPLAY_ROUNDS 3          /* replays asked again while kept batches still
                                        * leave a gap (the ring moved on meanwhile) */

struct kvsub_pod_cfg {
    uint32_t slot;                 /* the pod's slot (index into kvindex) */
    char events[KVSUB_EP_MAX];     /* "tcp://host:port" (PUB side) */
    char replay[KVSUB_EP_MAX];     /* "" none */
    char topic[KVSUB_EP_MAX];      /* subscription prefix, "" all */
    char model[128];               /* served base model, "" not known yet */
    int untrusted;                 /* no usable tokenizer or chat template for it:
                                    * approximate (kvx_set_untrusted) */
};

struct kvsub_cfg {
    uint32_t replay_timeout_ms;    /* 2000 */
    uint32_t silence_ms;           /* 3000 */
    uint64_t silence_tokens;       /* 4096 */
    uint32_t max_pods;             /* slots, <= KVX_MAX_PODS */
};

/* What the subscriber saw of a pod, next to its index stats. */
struct kvsub_pod_stats {
    struct kvx_pod_stats index;
    int configured;                /* subscribed */
    uint64_t frames, bad_frames;   /* messages; those not [topic, 8-byte seq, payload] */
    uint64_t live_batches, replayed_batches, kept_batches, kept_overflow;
    uint64_t replay_requests, replay_timeouts, silent_episodes, resubscribes;
    uint64_t decode_errors;
};

struct kvsub;

/* x must outlive the subscriber. NULL on ENOMEM / EINVAL. */
struct kvsub *kvsub_new(struct kvindex *x, const struct kvsub_cfg *cfg);
/* Stops the thread if running; frees. */
void kvsub_free(struct kvsub *s);
/* The thread. 0 or -errno. */
int kvsub_start(struct kvsub *s);
void kvsub_stop(struct kvsub *s);
/* Without the thread (tests, tools): one round of polling, at most
 * timeout_ms. */
void kvsub_poll(struct kvsub *s, int timeout_ms);

/* Any thread: the pods with events now (copied; pods not named are
 * unsubscribed and their entries dropped). 0 or -EINVAL / -ENOSPC. */
int kvsub_set_pods(struct kvsub *s, const struct kvsub_pod_cfg *pods, uint32_t n);
/* Any thread (the control thread after each scrape): the pod's prefix
 * counters (0, 0 when it has none) and cache size in blocks (0 unknown). */
void kvsub_note_scrape(struct kvsub *s, uint32_t slot, uint64_t prefix_queries,
                       uint64_t prefix_hits, uint64_t cache_blocks);
/* Any thread. 0 or -EINVAL. */
int kvsub_pod_stats(struct kvsub *s, uint32_t slot, struct kvsub_pod_stats *out);

#endif
