/* kvevents: vLLM's KV-cache event stream over ZMQ PUB.
 *
 * Each publish sends three frames: [topic, seq (u64 big-endian), payload],
 * payload = msgpack of vLLM's KVEventBatch in msgspec array_like form:
 *   [ts (float64), [event, ...]]
 * events (tagged arrays):
 *   ["BlockStored", [hash, ...], parent_hash|nil, [token_id, ...],
 *    block_size, lora_id|nil]
 *   ["BlockRemoved", [hash, ...]]
 *   ["AllBlocksCleared"]
 * topic: "kv@<host:port>@<model>". Events of one engine step are batched;
 * consecutive stored blocks of one chain share one BlockStored event.
 * With adapter names known (kvev_batch_set_names), BlockStored takes the
 * newer 8-field form: [..., lora_id|nil, "GPU", lora_name|nil].
 *
 * Replay (vLLM's ZmqEventPublisher replay_endpoint): a ROUTER socket per
 * pod answers [identity, "", start_seq (8 bytes BE)] with one
 * [identity, "", seq, payload] per batch it still holds from start_seq on,
 * then [identity, "", -1 (8 bytes BE), ""]. The ring keeps the last
 * `ring` published batches (and at most KVEV_RING_BYTES).
 *
 * Faults (issue 11): a share of batches is dropped on the way out (they
 * still get a sequence number and stay in the ring, as a batch lost in the
 * network does), or every batch leaves delay_ms late (order kept). */
#ifndef KVGATE_PODSIM_KVEVENTS_H
#define KVGATE_PODSIM_KVEVENTS_H

#include <stddef.h>
#include <stdint.h>

struct kvev_pub;   /* one ZMQ PUB socket, shared by all pods of a process */
struct kvev_batch; /* one pod's pending events */

/* endpoint like "tcp://127.0.0.1:5557" (bound). NULL and errno on failure. */
struct kvev_pub *kvev_pub_open(const char *endpoint);
void kvev_pub_close(struct kvev_pub *p);

/* topic is copied. NULL on ENOMEM. */
struct kvev_batch *kvev_batch_new(const char *topic, uint32_t block_size);
void kvev_batch_free(struct kvev_batch *b);

/* Suitable as kv_observer callbacks (ctx = the batch). */
void kvev_stored(void *ctx, uint64_t hash, uint64_t parent,
                 const uint32_t *tokens, uint32_t lora_id);
void kvev_removed(void *ctx, uint64_t hash);
void kvev_cleared(void *ctx);

/* Sends the pending events (if any) as one batch with timestamp ts (unix
 * seconds) and clears them. 0 or -errno; a full socket drops (ZMQ PUB). */
int kvev_flush(struct kvev_pub *p, struct kvev_batch *b, double ts);
/* Adapter names for BlockStored's lora_name field (name(ctx, id) returns
 * NULL for none). */
void kvev_batch_set_names(struct kvev_batch *b,
                          const char *(*name)(void *ctx, uint32_t lora_id), void *ctx);

/* The replay endpoint (bound, e.g. "tcp://127.0.0.1:5600") and a ring of
 * `ring` batches. 0 or -errno. */
int kvev_batch_set_replay(struct kvev_pub *p, struct kvev_batch *b,
                          const char *endpoint, uint32_t ring);
/* Faults: drop_rate in [0,1], delay_ms; seed for the drop draws. Turning
 * either on gives the batch a ring (without a replay socket) if it has
 * none. 0 or -ENOMEM. */
int kvev_set_faults(struct kvev_batch *b, double drop_rate, uint32_t delay_ms,
                    uint64_t seed);
/* Sends delayed batches whose time came and answers replay requests; call
 * it every few ms while the batch has a ring. Returns the monotonic time
 * (ns) of the next delayed batch, or 0 when none waits. */
uint64_t kvev_tick(struct kvev_pub *p, struct kvev_batch *b, uint64_t now_ns);
/* The batch has a ring (replay or faults): kvev_tick must run. */
int kvev_needs_tick(const struct kvev_batch *b);

struct kvev_counters {
    uint64_t published, fault_dropped, ring_lost, replays, replayed;
};
void kvev_counters(const struct kvev_batch *b, struct kvev_counters *c);

/* Events pending in b (for tests). */
size_t kvev_pending(const struct kvev_batch *b);

#endif
