/* Tests for user/core/kvev_decode.c: every event kind in vLLM's array and
 * map forms, the optional fields old and new engines send, hash forms,
 * SGLang's variant, and malformed input (every prefix, wrong types, limits)
 * rejected whole and counted. */
#include "core/kvev_decode.h"
#include "harness.h"
#include "kvev_pack.h"

#include <errno.h>
#include <stdlib.h>

static struct kvev_decoder D;

static const struct kvev_batch *dec(struct kp *k)
{
    const struct kvev_batch *b = NULL;
    int rc = kvev_decode(&D, k->sb.data, k->sb.size, &b);
    return rc ? NULL : b;
}

static uint32_t TOK[64];

TEST(oldest_form_all_kinds)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[2] = {11, 12}, r[1] = {11};
    for (int i = 0; i < 64; i++)
        TOK[i] = 1000 + i;
    kp_batch(&k, 1.5, 3);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 2, .has_parent = 1, .parent = 10, .tokens = TOK, .ntokens = 32, .block_size = 16, .lora_id = 0, .fields = 6});
    kp_removed(&k, r, 1);
    kp_cleared(&k);
    const struct kvev_batch *b = dec(&k);
    CHECK(b != NULL);
    if (b) {
        CHECK_NEAR(b->ts, 1.5, 1e-9);
        CHECK_EQ(b->nevents, 3);
        CHECK(!b->has_dp_rank);
        const struct kvev_event *e = &b->ev[0];
        CHECK_EQ(e->kind, KVEV_STORED);
        CHECK_EQ(e->nblocks, 2);
        CHECK(e->hashes[0] == 11 && e->hashes[1] == 12);
        CHECK(e->has_parent && e->parent == 10);
        CHECK_EQ(e->ntokens, 32);
        CHECK_EQ(e->block_size, 16);
        CHECK(e->tokens[0] == 1000 && e->tokens[31] == 1031);
        CHECK(!e->has_lora_id && !e->medium.p && !e->lora_name.p && !e->cache_salt.p);
        CHECK_EQ(e->opaque_from, 2);
        CHECK(!e->has_group);
        CHECK_EQ(b->ev[1].kind, KVEV_REMOVED);
        CHECK(b->ev[1].nblocks == 1 && b->ev[1].hashes[0] == 11);
        CHECK_EQ(b->ev[2].kind, KVEV_CLEARED);
    }
    kp_free(&k);
}

TEST(newest_array_fields)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[2] = {21, 22};
    kp_batch(&k, 2.0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 2, .has_parent = 0, .parent = 0, .tokens = TOK, .ntokens = 32, .block_size = 16, .lora_id = 3, .fields = 12, .medium = "GPU", .lora_name = "sql-lora", .salt = "tenant-a", .group_idx = 0});
    const struct kvev_batch *b = dec(&k);
    CHECK(b != NULL);
    if (b) {
        const struct kvev_event *e = &b->ev[0];
        CHECK(!e->has_parent);
        CHECK(e->has_lora_id && e->lora_id == 3);
        CHECK(e->medium.len == 3 && !memcmp(e->medium.p, "GPU", 3));
        CHECK(e->lora_name.len == 8 && !memcmp(e->lora_name.p, "sql-lora", 8));
        CHECK(e->cache_salt.len == 8 && !memcmp(e->cache_salt.p, "tenant-a", 8));
        CHECK(e->has_extra_keys);
        CHECK_EQ(e->opaque_from, 2); /* adapter + salt: reproducible */
        CHECK(e->has_group && e->group_idx == 0);
        CHECK(e->spec_kind.len == 14);
    }
    /* 7 fields: medium only (vLLM 0.9-0.10) */
    kp_reset(&k);
    kp_batch(&k, 2.0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 2, .has_parent = 1, .parent = 5, .tokens = TOK, .ntokens = 32, .block_size = 16, .lora_id = 0, .fields = 7, .medium = "CPU"});
    b = dec(&k);
    CHECK(b && b->ev[0].medium.len == 3 && !b->ev[0].lora_name.p);
    kp_free(&k);
}

TEST(map_form_and_dp_rank)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[1] = {31}, r[1] = {31};
    /* {"ts":..,"events":[{...}, {...}, {...}],"data_parallel_rank":2} */
    msgpack_pack_map(&k.pk, 3);
    kp_str(&k, "data_parallel_rank"), msgpack_pack_int(&k.pk, 2);
    kp_str(&k, "ts"), msgpack_pack_double(&k.pk, 3.25);
    kp_str(&k, "events"), msgpack_pack_array(&k.pk, 3);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 1, .has_parent = 0, .parent = 0, .tokens = TOK, .ntokens = 16, .block_size = 16, .lora_id = 0, .fields = 0, .medium = "GPU", .lora_name = "a", .salt = "s", .group_idx = 0, .map = 1});
    msgpack_pack_map(&k.pk, 4);
    kp_str(&k, "medium"), kp_str(&k, "GPU");
    kp_str(&k, "block_hashes"), kp_hashes(&k, r, 1);
    kp_str(&k, "type"), kp_str(&k, "BlockRemoved");
    kp_str(&k, "group_idx"), msgpack_pack_int(&k.pk, 1);
    msgpack_pack_map(&k.pk, 1);
    kp_str(&k, "type"), kp_str(&k, "AllBlocksCleared");
    const struct kvev_batch *b = dec(&k);
    CHECK(b != NULL);
    if (b) {
        CHECK(b->has_dp_rank && b->dp_rank == 2);
        CHECK_NEAR(b->ts, 3.25, 1e-9);
        CHECK_EQ(b->nevents, 3);
        CHECK_EQ(b->ev[0].kind, KVEV_STORED);
        CHECK(b->ev[0].hashes[0] == 31 && b->ev[0].ntokens == 16);
        CHECK(b->ev[0].lora_name.len == 1 && b->ev[0].cache_salt.len == 1);
        CHECK_EQ(b->ev[1].kind, KVEV_REMOVED);
        CHECK(b->ev[1].has_group && b->ev[1].group_idx == 1);
        CHECK_EQ(b->ev[2].kind, KVEV_CLEARED);
    }
    /* array batch with the rank third (vLLM DP), nil rank */
    kp_reset(&k);
    msgpack_pack_array(&k.pk, 3);
    msgpack_pack_double(&k.pk, 1.0);
    msgpack_pack_array(&k.pk, 0);
    msgpack_pack_int(&k.pk, 7);
    b = dec(&k);
    CHECK(b && b->has_dp_rank && b->dp_rank == 7 && b->nevents == 0);
    kp_reset(&k);
    msgpack_pack_array(&k.pk, 3);
    msgpack_pack_int(&k.pk, 1); /* an integral timestamp */
    msgpack_pack_array(&k.pk, 0);
    msgpack_pack_nil(&k.pk);
    b = dec(&k);
    CHECK(b && !b->has_dp_rank && b->ts == 1.0);
    kp_free(&k);
}

TEST(hash_forms)
{
    struct kp k;
    kp_init(&k);
    /* signed (Python hash()) and bytes (newer vLLM) hashes */
    msgpack_pack_array(&k.pk, 2);
    msgpack_pack_double(&k.pk, 0);
    msgpack_pack_array(&k.pk, 2);
    msgpack_pack_array(&k.pk, 6);
    kp_str(&k, "BlockStored");
    msgpack_pack_array(&k.pk, 2);
    msgpack_pack_int64(&k.pk, -5);
    const char dig[32] = "0123456789abcdef0123456789abcdef";
    msgpack_pack_bin(&k.pk, 32);
    msgpack_pack_bin_body(&k.pk, dig, 32);
    msgpack_pack_bin(&k.pk, 32); /* parent, bytes too */
    msgpack_pack_bin_body(&k.pk, dig, 32);
    msgpack_pack_array(&k.pk, 32);
    for (int i = 0; i < 32; i++)
        msgpack_pack_uint32(&k.pk, (uint32_t)i);
    msgpack_pack_int(&k.pk, 16);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 2);
    kp_str(&k, "BlockRemoved");
    msgpack_pack_array(&k.pk, 1);
    msgpack_pack_bin(&k.pk, 32);
    msgpack_pack_bin_body(&k.pk, dig, 32);
    const struct kvev_batch *b = dec(&k);
    CHECK(b != NULL);
    if (b) {
        CHECK(b->ev[0].hashes[0] == (uint64_t)-5);
        CHECK(b->ev[0].hashes[1] == b->ev[0].parent); /* same bytes, same id */
        CHECK(b->ev[1].hashes[0] == b->ev[0].hashes[1]);
        /* as vLLM's maybe_convert_block_hash: the last 8 bytes, big-endian */
        CHECK(b->ev[0].hashes[1] == 0x3839616263646566ull); /* "89abcdef" */
    }
    kp_free(&k);
}

TEST(opaque_blocks)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[3] = {1, 2, 3};
    /* token count not blocks x block size: nothing reproducible */
    kp_batch(&k, 0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 3, .has_parent = 0, .parent = 0, .tokens = TOK, .ntokens = 40, .block_size = 16});
    const struct kvev_batch *b = dec(&k);
    CHECK(b && b->ev[0].opaque_from == 0);
    /* a multimodal key on block 1: blocks 1.. are opaque */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 9);
    kp_str(&k, "BlockStored");
    kp_hashes(&k, h, 3);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 48);
    for (int i = 0; i < 48; i++)
        msgpack_pack_uint32(&k.pk, (uint32_t)i);
    msgpack_pack_int(&k.pk, 16);
    msgpack_pack_nil(&k.pk);
    kp_str(&k, "GPU");
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 3);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 1); /* (("img-hash", 3),) */
    msgpack_pack_array(&k.pk, 2);
    kp_str(&k, "img-hash");
    msgpack_pack_int(&k.pk, 3);
    msgpack_pack_nil(&k.pk);
    b = dec(&k);
    CHECK(b && b->ev[0].opaque_from == 1 && !b->ev[0].cache_salt.p);
    /* extra_keys must have one entry per block */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 9);
    kp_str(&k, "BlockStored");
    kp_hashes(&k, h, 1);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 0);
    msgpack_pack_int(&k.pk, 16);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 2);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_nil(&k.pk);
    uint64_t before = D.rejected[KVEV_R_SHAPE];
    CHECK(dec(&k) == NULL);
    CHECK_EQ(D.rejected[KVEV_R_SHAPE], before + 1);
    kp_free(&k);
}

TEST(sglang_metadata_salt)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[1] = {9};
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 8);
    kp_str(&k, "BlockStored");
    kp_hashes(&k, h, 1);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 16);
    for (int i = 0; i < 16; i++)
        msgpack_pack_uint32(&k.pk, (uint32_t)i);
    msgpack_pack_int(&k.pk, 16);
    msgpack_pack_nil(&k.pk);
    kp_str(&k, "GPU");
    msgpack_pack_map(&k.pk, 1);
    kp_str(&k, "cache_salt");
    kp_str(&k, "tenant-b");
    const struct kvev_batch *b = dec(&k);
    CHECK(b && b->ev[0].cache_salt.len == 8 && !b->ev[0].lora_name.p);
    kp_free(&k);
}

TEST(unknown_kinds_skipped)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[1] = {5};
    kp_batch(&k, 0, 4);
    msgpack_pack_array(&k.pk, 3);
    kp_str(&k, "BlockPinned");
    msgpack_pack_array(&k.pk, 1);
    msgpack_pack_map(&k.pk, 1);
    kp_str(&k, "x");
    msgpack_pack_int(&k.pk, 1);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_map(&k.pk, 2);
    kp_str(&k, "type");
    kp_str(&k, "Future");
    kp_str(&k, "block_hashes");
    kp_hashes(&k, h, 1);
    kp_removed(&k, h, 1);
    kp_cleared(&k);
    uint64_t u = D.unknown_events;
    const struct kvev_batch *b = dec(&k);
    CHECK(b && b->nevents == 2 && b->ev[0].kind == KVEV_REMOVED && b->ev[0].hashes[0] == 5);
    CHECK_EQ(D.unknown_events, u + 2);
    kp_free(&k);
}

static int rejects(const void *buf, size_t n, enum kvev_reject why)
{
    const struct kvev_batch *b;
    uint64_t before = D.rejected[why];
    int rc = kvev_decode(&D, buf, n, &b);
    return rc == -EBADMSG && D.rejected[why] == before + 1;
}

TEST(every_prefix_rejected)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[2] = {1, 2};
    kp_batch(&k, 1, 3);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 2, .has_parent = 1, .parent = 7, .tokens = TOK, .ntokens = 32, .block_size = 16, .lora_id = 2, .fields = 12, .medium = "GPU", .lora_name = "l", .salt = "s", .group_idx = 0});
    kp_removed(&k, h, 2);
    kp_cleared(&k);
    size_t ok = 0;
    for (size_t n = 0; n < k.sb.size; n++) {
        const struct kvev_batch *b;
        /* a copy of exactly n bytes, so ASan sees any read past the end */
        char *cp = malloc(n ? n : 1);
        memcpy(cp, k.sb.data, n);
        if (kvev_decode(&D, cp, n, &b) == -EBADMSG)
            ok++;
        free(cp);
    }
    CHECK_EQ(ok, k.sb.size);
    /* and a byte too many */
    char *cp = malloc(k.sb.size + 1);
    memcpy(cp, k.sb.data, k.sb.size);
    cp[k.sb.size] = 0;
    CHECK(rejects(cp, k.sb.size + 1, KVEV_R_TRAILING));
    free(cp);
    CHECK(rejects(NULL, 0, KVEV_R_TRUNCATED));
    kp_free(&k);
}

TEST(bad_values_and_shapes)
{
    struct kp k;
    kp_init(&k);
    uint64_t h[1] = {1};
    uint32_t t[16] = {0};
    kp_batch(&k, 0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = 1, .has_parent = 0, .parent = 0, .tokens = t, .ntokens = 16, .block_size = 0}); /* block size 0 */
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_VALUE));
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 6);
    kp_str(&k, "BlockStored");
    kp_hashes(&k, h, 1);
    msgpack_pack_nil(&k.pk);
    msgpack_pack_array(&k.pk, 1);
    msgpack_pack_int(&k.pk, -1); /* negative token id */
    msgpack_pack_int(&k.pk, 1);
    msgpack_pack_nil(&k.pk);
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_VALUE));
    /* a string where the hashes go */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 2);
    kp_str(&k, "BlockRemoved");
    kp_str(&k, "oops");
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_TYPE));
    /* BlockStored without token ids */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 3);
    kp_str(&k, "BlockStored");
    kp_hashes(&k, h, 1);
    msgpack_pack_nil(&k.pk);
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_SHAPE));
    /* a duplicate map key */
    kp_reset(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_map(&k.pk, 3);
    kp_str(&k, "type"), kp_str(&k, "BlockRemoved");
    kp_str(&k, "block_hashes"), kp_hashes(&k, h, 1);
    kp_str(&k, "block_hashes"), kp_hashes(&k, h, 1);
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_SHAPE));
    /* a batch that is not an array or map */
    kp_reset(&k);
    msgpack_pack_int(&k.pk, 4);
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_TYPE));
    /* an array claiming 4 billion elements */
    const uint8_t lie[] = {0x92, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xdd, 0xff, 0xff, 0xff, 0xff};
    CHECK(rejects(lie, sizeof(lie), KVEV_R_TRUNCATED));
    kp_free(&k);
}

TEST(deep_nesting_is_skipped_flat)
{
    /* an unknown field nested 100k arrays deep: skipped without recursion */
    size_t depth = 100000;
    struct kp k;
    kp_init(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 2);
    kp_str(&k, "Deep");
    for (size_t i = 0; i < depth; i++)
        msgpack_pack_array(&k.pk, 1);
    msgpack_pack_nil(&k.pk);
    const struct kvev_batch *b = dec(&k);
    CHECK(b && b->nevents == 0);
    kp_free(&k);
}

TEST(limits)
{
    /* more hashes than KVEV_MAX_HASHES in one batch: rejected, not grown */
    struct kp k;
    kp_init(&k);
    kp_batch(&k, 0, 1);
    msgpack_pack_array(&k.pk, 2);
    kp_str(&k, "BlockRemoved");
    msgpack_pack_array(&k.pk, KVEV_MAX_HASHES + 1);
    for (uint32_t i = 0; i < KVEV_MAX_HASHES + 1; i++)
        msgpack_pack_uint8(&k.pk, 1);
    CHECK(rejects(k.sb.data, k.sb.size, KVEV_R_LIMIT));
    kp_free(&k);
}

int main(void)
{
    kvev_decoder_init(&D);
    RUN(oldest_form_all_kinds);
    RUN(newest_array_fields);
    RUN(map_form_and_dp_rank);
    RUN(hash_forms);
    RUN(opaque_blocks);
    RUN(sglang_metadata_salt);
    RUN(unknown_kinds_skipped);
    RUN(every_prefix_rejected);
    RUN(bad_values_and_shapes);
    RUN(deep_nesting_is_skipped_flat);
    RUN(limits);
    kvev_decoder_free(&D);
    return harness_done();
}
