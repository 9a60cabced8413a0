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
 * consecutive stored blocks of one chain share one BlockStored event. */
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
/* Events pending in b (for tests). */
size_t kvev_pending(const struct kvev_batch *b);

#endif
