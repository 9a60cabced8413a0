/* kvev_decode: one KV-event batch, as vLLM (and SGLang) publish it over
 * ZMQ, decoded from msgpack into a flat, bounded struct.
 *
 * Wire forms accepted (all seen in the field, see DESIGN.md "KV events"):
 *   batch   [ts, [event...]]                        vLLM <= 0.10, SGLang, podsim
 *           [ts, [event...], data_parallel_rank]    vLLM with DP
 *           {"ts":..,"events":[..],"data_parallel_rank":..}
 *   event   tagged array (msgspec array_like, vLLM until #42892, SGLang):
 *             ["BlockStored", hashes, parent|nil, token_ids, block_size,
 *              lora_id|nil, medium, lora_name, extra_keys, group_idx,
 *              kv_cache_spec_kind, kv_cache_spec_sliding_window]
 *             (trailing fields may be omitted; more are ignored)
 *             ["BlockRemoved", hashes, medium, group_idx]
 *             ["AllBlocksCleared"]
 *           tagged map (vLLM after #42892): {"type":"BlockStored",
 *             "block_hashes":..., ...}: fields by name, any order, unknown
 *             names ignored, a duplicate name rejected.
 *   SGLang: the same classes and framing as vLLM's array form (BlockStored
 *   with its first five fields); position 7 may be a map {"cache_salt":..}
 *   ("metadata", in SGLang's map-encoding work), read as the salt.
 *
 * Block hashes (and the parent) are normalised to 64-bit ids: an integer
 * (u64, or a negative i64 as SGLang's Python hash() gives) is taken as its
 * 64-bit two's-complement pattern; bytes (vLLM's ExternalBlockHash when
 * VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES is off: the whole digest) become
 * their last 8 bytes read big-endian, which is exactly how vLLM makes its
 * int form, so a pod's ids are the same either way. Ids only need to be
 * unique per pod (the index keys its maps with a seeded hash of them, so
 * chosen ids cannot pile up in one probe run); the gateway never needs
 * them to mean anything but "the same block".
 *
 * extra_keys (vLLM: per block, the tuple lora_name + multimodal ids +
 * cache_salt (first block only) + prompt-embeds hashes) is read so that:
 *   - cache_salt: the salt of the chain's first block (parent nil, block 0,
 *     the last string of its tuple once the adapter name is taken off);
 *   - opaque_from: the first block whose extra keys hold anything the
 *     gateway cannot reproduce from token ids (images, embeddings); that
 *     block and its descendants can never match a text request.
 * A BlockStored whose token count is not blocks x block_size has
 * opaque_from = 0 (its tokens cannot be cut into its blocks).
 *
 * Untrusted bytes: every length is checked against the buffer before use,
 * nesting is walked without recursion, totals are capped (KVEV_MAX_*), a
 * malformed batch is rejected whole (nothing of it is returned) and counted
 * by reason. Unknown event tags are skipped and counted (a newer engine's
 * event kind must not cost the whole batch). */
#ifndef KVGATE_CORE_KVEV_DECODE_H
#define KVGATE_CORE_KVEV_DECODE_H

#include <stddef.h>
#include <stdint.h>

#define KVEV_MAX_EVENTS 65536u     /* per batch */
#define KVEV_MAX_HASHES (1u << 20) /* block hashes per batch, all events */
#define KVEV_MAX_TOKENS (1u << 24) /* token ids per batch */

enum kvev_kind { KVEV_STORED = 1, KVEV_REMOVED = 2, KVEV_CLEARED = 3 };

/* A string inside the decoded buffer (not NUL-terminated); p NULL: absent
 * or nil. Valid until the next decode or the buffer's release. */
struct kvev_str {
    const char *p;
    uint32_t len;
};

struct kvev_event {
    enum kvev_kind kind;
    uint32_t nblocks;
    const uint64_t *hashes;       /* normalised (see above) */
    /* KVEV_STORED only: */
    int has_parent;
    uint64_t parent;
    uint32_t ntokens, block_size;
    const uint32_t *tokens;
    int has_lora_id;
    int64_t lora_id;              /* deprecated by vLLM for lora_name */
    struct kvev_str lora_name, cache_salt, spec_kind;
    uint32_t opaque_from;         /* nblocks when every block is plain text */
    int has_extra_keys;
    /* STORED and REMOVED: */
    struct kvev_str medium;       /* "GPU", "CPU", ...; absent on old engines */
    int has_group;
    int64_t group_idx;
};

struct kvev_batch {
    double ts;
    int has_dp_rank;
    int64_t dp_rank;
    uint32_t nevents;
    const struct kvev_event *ev;
};

enum kvev_reject {
    KVEV_R_TRUNCATED,  /* a length ran past the buffer */
    KVEV_R_TYPE,       /* a field of the wrong msgpack type */
    KVEV_R_SHAPE,      /* wrong element count, missing or duplicate field */
    KVEV_R_LIMIT,      /* over KVEV_MAX_* */
    KVEV_R_VALUE,      /* block size 0 or too large, token id out of range */
    KVEV_R_TRAILING,   /* bytes after the batch */
    KVEV_R_NOMEM,
    KVEV_R_MAX
};

struct kvev_decoder {
    /* counters (read by the owner thread; copy out for stats) */
    uint64_t batches, events, unknown_events;
    uint64_t rejected[KVEV_R_MAX];
    /* scratch, grown on demand up to the caps, reused across batches */
    struct kvev_event *ev;
    uint32_t ev_cap;
    uint64_t *hashes;
    uint32_t hashes_cap;
    uint32_t *tokens;
    uint32_t tokens_cap;
    struct kvev_batch b;
};

void kvev_decoder_init(struct kvev_decoder *d);
void kvev_decoder_free(struct kvev_decoder *d);

/* Decodes buf[0..len) (one ZMQ payload frame). 0 and *out set (valid until
 * the next call; strings point into buf), or -EBADMSG (counted in
 * rejected[]) / -ENOMEM. */
int kvev_decode(struct kvev_decoder *d, const void *buf, size_t len,
                const struct kvev_batch **out);

const char *kvev_reject_name(enum kvev_reject r);

#endif
