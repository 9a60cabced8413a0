/* Test helper: KV-event batches in vLLM's wire forms, packed with
 * msgpack-c (the library podsim publishes with), for the decoder's and the
 * index's tests and the ingestion benchmark.
 *
 *   struct kp k; kp_init(&k);
 *   kp_batch(&k, ts, nevents);            array form [ts, [events]]
 *   kp_stored(&k, &(struct kp_stored){...});
 *   kp_removed(&k, hashes, n);  kp_cleared(&k);
 *   ... k.sb.data, k.sb.size ...;  kp_free(&k);
 */
#ifndef KVGATE_TESTS_KVEV_PACK_H
#define KVGATE_TESTS_KVEV_PACK_H

#include <msgpack.h>
#include <stdint.h>
#include <string.h>

struct kp {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static inline void kp_init(struct kp *k)
{
    msgpack_sbuffer_init(&k->sb);
    msgpack_packer_init(&k->pk, &k->sb, msgpack_sbuffer_write);
}

static inline void kp_reset(struct kp *k) { msgpack_sbuffer_clear(&k->sb); }
static inline void kp_free(struct kp *k) { msgpack_sbuffer_destroy(&k->sb); }

static inline void kp_str(struct kp *k, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(&k->pk, n);
    msgpack_pack_str_body(&k->pk, s, n);
}

/* [ts, [ (nevents follow) */
static inline void kp_batch(struct kp *k, double ts, uint32_t nevents)
{
    msgpack_pack_array(&k->pk, 2);
    msgpack_pack_double(&k->pk, ts);
    msgpack_pack_array(&k->pk, nevents);
}

struct kp_stored {
    const uint64_t *hashes;
    uint32_t n;
    int has_parent;
    uint64_t parent;
    const uint32_t *tokens;
    uint32_t ntokens, block_size;
    int64_t lora_id;         /* 0: nil */
    int fields;              /* array length incl. the tag: 6 (oldest) .. 12; 0 = 6 */
    const char *medium;      /* fields >= 7; NULL: nil */
    const char *lora_name;   /* fields >= 8 */
    const char *salt;        /* fields >= 9: extra_keys with the salt on block 0 */
    int64_t group_idx;       /* fields >= 10 */
    int map;                 /* map form instead (every field present) */
};

static inline void kp_hashes(struct kp *k, const uint64_t *h, uint32_t n)
{
    msgpack_pack_array(&k->pk, n);
    for (uint32_t i = 0; i < n; i++)
        msgpack_pack_uint64(&k->pk, h[i]);
}

static inline void kp_extra(struct kp *k, const struct kp_stored *s)
{
    msgpack_pack_array(&k->pk, s->n);
    for (uint32_t i = 0; i < s->n; i++) {
        int lora = s->lora_name != NULL, salt = s->salt && i == 0 && !s->has_parent;
        if (!lora && !salt) {
            msgpack_pack_nil(&k->pk);
            continue;
        }
        msgpack_pack_array(&k->pk, lora + salt);
        if (lora)
            kp_str(k, s->lora_name);
        if (salt)
            kp_str(k, s->salt);
    }
}

static inline void kp_opt_str(struct kp *k, const char *s)
{
    if (s)
        kp_str(k, s);
    else
        msgpack_pack_nil(&k->pk);
}

static inline void kp_stored(struct kp *k, const struct kp_stored *s)
{
    int f = s->fields ? s->fields : 6;
    msgpack_packer *pk = &k->pk;
    if (s->map) {
        msgpack_pack_map(pk, 11);
        kp_str(k, "type"), kp_str(k, "BlockStored");
        kp_str(k, "block_hashes"), kp_hashes(k, s->hashes, s->n);
        kp_str(k, "parent_block_hash");
        s->has_parent ? msgpack_pack_uint64(pk, s->parent) : msgpack_pack_nil(pk);
        kp_str(k, "token_ids");
        msgpack_pack_array(pk, s->ntokens);
        for (uint32_t i = 0; i < s->ntokens; i++)
            msgpack_pack_uint32(pk, s->tokens[i]);
        kp_str(k, "block_size"), msgpack_pack_uint32(pk, s->block_size);
        kp_str(k, "lora_id");
        s->lora_id ? msgpack_pack_int64(pk, s->lora_id) : msgpack_pack_nil(pk);
        kp_str(k, "medium"), kp_opt_str(k, s->medium);
        kp_str(k, "lora_name"), kp_opt_str(k, s->lora_name);
        kp_str(k, "extra_keys"), kp_extra(k, s);
        kp_str(k, "group_idx"), msgpack_pack_int64(pk, s->group_idx);
        kp_str(k, "kv_cache_spec_kind"), kp_str(k, "full_attention");
        return;
    }
    msgpack_pack_array(pk, (size_t)f);
    kp_str(k, "BlockStored");
    kp_hashes(k, s->hashes, s->n);
    s->has_parent ? msgpack_pack_uint64(pk, s->parent) : msgpack_pack_nil(pk);
    msgpack_pack_array(pk, s->ntokens);
    for (uint32_t i = 0; i < s->ntokens; i++)
        msgpack_pack_uint32(pk, s->tokens[i]);
    msgpack_pack_uint32(pk, s->block_size);
    s->lora_id ? msgpack_pack_int64(pk, s->lora_id) : msgpack_pack_nil(pk);
    if (f >= 7)
        kp_opt_str(k, s->medium);
    if (f >= 8)
        kp_opt_str(k, s->lora_name);
    if (f >= 9)
        kp_extra(k, s);
    if (f >= 10)
        msgpack_pack_int64(pk, s->group_idx);
    if (f >= 11)
        kp_str(k, "full_attention");
    if (f >= 12)
        msgpack_pack_nil(pk);
}

static inline void kp_removed(struct kp *k, const uint64_t *h, uint32_t n)
{
    msgpack_pack_array(&k->pk, 2);
    kp_str(k, "BlockRemoved");
    kp_hashes(k, h, n);
}

static inline void kp_cleared(struct kp *k)
{
    msgpack_pack_array(&k->pk, 1);
    kp_str(k, "AllBlocksCleared");
}

#endif
