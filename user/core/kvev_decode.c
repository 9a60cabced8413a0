/* kvev_decode: vLLM / SGLang KV-event batches out of msgpack. See
 * kvev_decode.h for the forms accepted.
 *
 * Why not msgpack-c's unpacker: it builds a tree of every object in a zone
 * (a token id is one object; a 512-block batch is 8k of them), which costs
 * more than the index update it feeds, and its limits are not ours. The
 * strict reader of mpack_rd.h walks the bytes once; this file knows the
 * schema, writes hashes and token ids straight into flat scratch arrays,
 * and skips what it does not need (unknown fields, a newer event kind). */
#include "core/kvev_decode.h"
#include "common/alloc.h"
#include "core/mpack_rd.h"

#include <errno.h>
#include <string.h>


/* The decoder's own reasons ride on the reader's error, after its own. */
static int reject(struct rd *r, enum kvev_reject why)
{
    return fail(r, MPR_USER + (int)why);
}

static enum kvev_reject reason_of(int err)
{
    switch (err) {
    case MPR_TRUNCATED: return KVEV_R_TRUNCATED;
    case MPR_TYPE: return KVEV_R_TYPE;
    case MPR_VALUE: return KVEV_R_VALUE;
    default: return err >= MPR_USER ? (enum kvev_reject)(err - MPR_USER) : KVEV_R_TYPE;
    }
}

/* kvev_str and mpr_str are the same view; the public type stays the
 * decoder's. */
_Static_assert(sizeof(struct kvev_str) == sizeof(struct mpr_str), "string views");
static int rd_s(struct rd *r, struct kvev_str *s)
{
    struct mpr_str m;
    if (rd_str(r, &m))
        return -1;
    s->p = m.p;
    s->len = m.len;
    return 0;
}

static int s_is(const struct kvev_str *s, const char *lit)
{
    size_t n = strlen(lit);
    return s->p && s->len == n && !memcmp(s->p, lit, n);
}

/* ---- scratch ---- */

static int grow(void **arr, uint32_t *cap, uint64_t need_n, size_t sz, uint32_t max)
{
    if (need_n <= *cap)
        return 0;
    if (need_n > max)
        return -E2BIG;
    uint64_t c = *cap ? *cap : 64;
    while (c < need_n)
        c *= 2;
    if (c > max)
        c = max;
    void *a = kv_realloc(*arr, (size_t)c * sz);
    if (!a)
        return -ENOMEM;
    *arr = a;
    *cap = (uint32_t)c;
    return 0;
}

struct ctx {
    struct kvev_decoder *d;
    struct rd r;
    uint32_t nev, nhashes, ntokens;
    int nomem;
};

static int scratch_fail(struct ctx *c, int rc)
{
    if (rc == -ENOMEM)
        c->nomem = 1;
    return reject(&c->r, rc == -ENOMEM ? KVEV_R_NOMEM : KVEV_R_LIMIT);
}

/* ---- fields ---- */

static int rd_hash(struct rd *r, uint64_t *h)
{
    int c = peek(r);
    if (c >= 0xc4 && c <= 0xc6) {
        /* vLLM's own bytes -> int conversion (maybe_convert_block_hash):
         * the digest's last 8 bytes, big-endian, so a pod gets the same
         * ids whichever form VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES picks */
        struct mpr_str s;
        if (rd_bytes(r, &s, 1))
            return -1;
        uint32_t n = s.len < 8 ? s.len : 8;
        *h = be((const uint8_t *)s.p + s.len - n, (int)n);
        return 0;
    }
    int neg;
    return rd_int(r, h, &neg);
}

/* A list of hashes appended to the scratch; ev->hashes is fixed up later
 * (the scratch may move while it grows). */
static int rd_hashes(struct ctx *c, uint32_t *first, uint32_t *n)
{
    struct rd *r = &c->r;
    uint32_t cnt;
    if (rd_array(r, &cnt))
        return -1;
    int rc = grow((void **)&c->d->hashes, &c->d->hashes_cap, (uint64_t)c->nhashes + cnt,
                  sizeof(uint64_t), KVEV_MAX_HASHES);
    if (rc)
        return scratch_fail(c, rc);
    *first = c->nhashes;
    for (uint32_t i = 0; i < cnt; i++)
        if (rd_hash(r, &c->d->hashes[c->nhashes + i]))
            return -1;
    c->nhashes += cnt;
    *n = cnt;
    return 0;
}

static int rd_tokens(struct ctx *c, uint32_t *first, uint32_t *n)
{
    struct rd *r = &c->r;
    uint32_t cnt;
    if (rd_array(r, &cnt))
        return -1;
    int rc = grow((void **)&c->d->tokens, &c->d->tokens_cap, (uint64_t)c->ntokens + cnt,
                  sizeof(uint32_t), KVEV_MAX_TOKENS);
    if (rc)
        return scratch_fail(c, rc);
    *first = c->ntokens;
    uint32_t *t = c->d->tokens + c->ntokens;
    for (uint32_t i = 0; i < cnt; i++) {
        /* fast paths: every token id of a real vocabulary (< 2^32) is a
         * positive fixint, uint8, uint16 or uint32 */
        size_t left = (size_t)(r->end - r->p);
        if (left >= 5) {
            uint8_t c = r->p[0];
            if (c <= 0x7f) {
                t[i] = c;
                r->p++;
                continue;
            }
            if (c == 0xce) {
                t[i] = (uint32_t)be(r->p + 1, 4);
                r->p += 5;
                continue;
            }
            if (c == 0xcd) {
                t[i] = (uint32_t)be(r->p + 1, 2);
                r->p += 3;
                continue;
            }
            if (c == 0xcc) {
                t[i] = r->p[1];
                r->p += 2;
                continue;
            }
        } else if (left && r->p[0] <= 0x7f) {
            t[i] = *r->p++;
            continue;
        }
        uint64_t v;
        int neg;
        if (rd_int(r, &v, &neg))
            return -1;
        if (neg || v > UINT32_MAX)
            return reject(r, KVEV_R_VALUE);
        t[i] = (uint32_t)v;
    }
    c->ntokens += cnt;
    *n = cnt;
    return 0;
}

static int rd_opt_str(struct rd *r, struct kvev_str *s)
{
    if (rd_nil(r)) {
        s->p = NULL;
        s->len = 0;
        return 0;
    }
    return rd_s(r, s);
}

static int rd_opt_i64(struct rd *r, int *has, int64_t *v)
{
    if (rd_nil(r)) {
        *has = 0;
        return 0;
    }
    *has = 1;
    return rd_i64(r, v);
}

/* One block's extra-key tuple (vLLM order: lora name, multimodal ids,
 * cache_salt on block 0, prompt-embeds hashes). Sets *opaque when it holds
 * more than the adapter name and (block 0) the salt. */
static int rd_extra_tuple(struct rd *r, const struct kvev_str *lora, int chain_head,
                          struct kvev_str *salt, int *opaque)
{
    uint32_t n;
    if (rd_nil(r))
        return 0;
    if (rd_array(r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (is_str(r)) {
            struct kvev_str s;
            if (rd_s(r, &s))
                return -1;
            if (i == 0 && lora->p && s.len == lora->len && !memcmp(s.p, lora->p, s.len))
                continue; /* the adapter name */
            if (chain_head && i == n - 1) {
                *salt = s; /* the salt: last, on the chain's first block */
                continue;
            }
            *opaque = 1;
        } else {
            if (rd_skip(r))
                return -1;
            *opaque = 1;
        }
    }
    return 0;
}

enum field {
    F_NONE, F_HASHES, F_PARENT, F_TOKENS, F_BS, F_LORA_ID, F_MEDIUM, F_LORA_NAME,
    F_EXTRA, F_GROUP, F_SPEC_KIND, F_SPEC_SW, F_META, F_N
};

/* Positions in the array form (index 0 is the tag). */
static const enum field STORED_POS[] = {F_NONE, F_HASHES, F_PARENT, F_TOKENS, F_BS,
                                        F_LORA_ID, F_MEDIUM, F_LORA_NAME, F_EXTRA,
                                        F_GROUP, F_SPEC_KIND, F_SPEC_SW};
static const enum field REMOVED_POS[] = {F_NONE, F_HASHES, F_MEDIUM, F_GROUP};

static const struct { const char *name; enum field f; } FIELD_NAMES[] = {
    {"block_hashes", F_HASHES}, {"parent_block_hash", F_PARENT}, {"token_ids", F_TOKENS},
    {"block_size", F_BS}, {"lora_id", F_LORA_ID}, {"medium", F_MEDIUM},
    {"lora_name", F_LORA_NAME}, {"extra_keys", F_EXTRA}, {"group_idx", F_GROUP},
    {"kv_cache_spec_kind", F_SPEC_KIND}, {"kv_cache_spec_sliding_window", F_SPEC_SW},
    {"metadata", F_META},
};

static enum field field_by_name(const struct kvev_str *s)
{
    for (size_t i = 0; i < sizeof(FIELD_NAMES) / sizeof(FIELD_NAMES[0]); i++)
        if (s_is(s, FIELD_NAMES[i].name))
            return FIELD_NAMES[i].f;
    return F_NONE;
}

/* Where extra_keys sit while the other fields arrive: in the map form they
 * may come before lora_name and block_hashes, so they are read last, from
 * their saved position. */
struct pending {
    uint32_t hfirst, tfirst;
    const uint8_t *extra_at, *meta_at;
    uint32_t seen; /* bit per field */
};

static int rd_field(struct ctx *c, struct kvev_event *e, struct pending *pd, enum field f)
{
    struct rd *r = &c->r;
    if (f != F_NONE && (pd->seen & (1u << f)))
        return reject(r, KVEV_R_SHAPE); /* a duplicate map key */
    pd->seen |= 1u << f;
    uint64_t v;
    int neg;
    switch (f) {
    case F_HASHES:
        return rd_hashes(c, &pd->hfirst, &e->nblocks);
    case F_PARENT:
        if (rd_nil(r))
            return 0;
        e->has_parent = 1;
        return rd_hash(r, &e->parent);
    case F_TOKENS:
        return rd_tokens(c, &pd->tfirst, &e->ntokens);
    case F_BS:
        if (rd_int(r, &v, &neg))
            return -1;
        if (neg || v == 0 || v > 4096)
            return reject(r, KVEV_R_VALUE);
        e->block_size = (uint32_t)v;
        return 0;
    case F_LORA_ID:
        return rd_opt_i64(r, &e->has_lora_id, &e->lora_id);
    case F_MEDIUM:
        return rd_opt_str(r, &e->medium);
    case F_LORA_NAME:
        if (is_map(r)) { /* SGLang's position 7: metadata */
            pd->seen |= 1u << F_META;
            pd->meta_at = r->p;
            return rd_skip(r);
        }
        return rd_opt_str(r, &e->lora_name);
    case F_EXTRA:
        pd->extra_at = r->p;
        return rd_skip(r);
    case F_META:
        pd->meta_at = r->p;
        return rd_skip(r);
    case F_GROUP:
        return rd_opt_i64(r, &e->has_group, &e->group_idx);
    case F_SPEC_KIND:
        return rd_opt_str(r, &e->spec_kind);
    default:
        return rd_skip(r);
    }
}

static int sub_fail(struct ctx *c, const struct rd *sub)
{
    return fail(&c->r, sub->err ? sub->err : MPR_TYPE); /* the same codes */
}

/* SGLang metadata: {"cache_salt": str, ...}. */
static int finish_meta(struct ctx *c, struct kvev_event *e, const uint8_t *at)
{
    struct rd m = {at, c->r.end, 0};
    uint32_t n;
    if (rd_map(&m, &n))
        return sub_fail(c, &m);
    for (uint32_t i = 0; i < n; i++) {
        struct kvev_str k;
        if (rd_s(&m, &k))
            return sub_fail(c, &m);
        if (s_is(&k, "cache_salt") && is_str(&m)) {
            if (rd_s(&m, &e->cache_salt))
                return sub_fail(c, &m);
        } else if (rd_skip(&m)) {
            return sub_fail(c, &m);
        }
    }
    return 0;
}

/* extra_keys, once lora_name and the block count are known. */
static int finish_extra(struct ctx *c, struct kvev_event *e, const struct pending *pd)
{
    e->opaque_from = e->nblocks;
    if (pd->meta_at && finish_meta(c, e, pd->meta_at))
        return -1;
    if (!pd->extra_at)
        return 0;
    struct rd r = {pd->extra_at, c->r.end, 0};
    uint32_t n;
    if (rd_nil(&r))
        return 0;
    e->has_extra_keys = 1;
    if (rd_array(&r, &n))
        return sub_fail(c, &r);
    if (n != e->nblocks)
        return reject(&c->r, KVEV_R_SHAPE); /* one entry per block */
    for (uint32_t i = 0; i < n; i++) {
        int opaque = 0;
        struct kvev_str salt = {NULL, 0};
        if (rd_extra_tuple(&r, &e->lora_name, i == 0 && !e->has_parent, &salt, &opaque))
            return sub_fail(c, &r);
        if (salt.p)
            e->cache_salt = salt;
        if (opaque && e->opaque_from == e->nblocks)
            e->opaque_from = i;
    }
    return 0;
}

static struct kvev_event *new_event(struct ctx *c)
{
    if (c->nev >= KVEV_MAX_EVENTS) {
        reject(&c->r, KVEV_R_LIMIT);
        return NULL;
    }
    int rc = grow((void **)&c->d->ev, &c->d->ev_cap, (uint64_t)c->nev + 1,
                  sizeof(struct kvev_event), KVEV_MAX_EVENTS);
    if (rc) {
        scratch_fail(c, rc);
        return NULL;
    }
    struct kvev_event *e = &c->d->ev[c->nev];
    memset(e, 0, sizeof(*e));
    return e;
}

static int kind_of(const struct kvev_str *tag)
{
    if (s_is(tag, "BlockStored"))
        return KVEV_STORED;
    if (s_is(tag, "BlockRemoved"))
        return KVEV_REMOVED;
    if (s_is(tag, "AllBlocksCleared"))
        return KVEV_CLEARED;
    return 0;
}

/* Checks what every form must hold, and stashes the scratch offsets in the
 * event (pointers are fixed once the batch is complete). */
static int finish_event(struct ctx *c, struct kvev_event *e, const struct pending *pd)
{
    if (e->kind == KVEV_CLEARED)
        goto done;
    if (!(pd->seen & (1u << F_HASHES)))
        return reject(&c->r, KVEV_R_SHAPE);
    e->hashes = (const uint64_t *)(uintptr_t)pd->hfirst;
    if (e->kind == KVEV_REMOVED)
        goto done;
    if (!(pd->seen & (1u << F_TOKENS)) || !(pd->seen & (1u << F_BS)))
        return reject(&c->r, KVEV_R_SHAPE);
    e->tokens = (const uint32_t *)(uintptr_t)pd->tfirst;
    if (finish_extra(c, e, pd))
        return -1;
    if ((uint64_t)e->nblocks * e->block_size != e->ntokens)
        e->opaque_from = 0; /* cannot cut its tokens into its blocks */
done:
    c->nev++;
    return 0;
}

/* ["Tag", field, ...] */
static int rd_event_array(struct ctx *c, uint32_t n)
{
    struct rd *r = &c->r;
    struct kvev_str tag;
    if (n == 0)
        return reject(r, KVEV_R_SHAPE);
    if (rd_s(r, &tag))
        return -1;
    int kind = kind_of(&tag);
    if (!kind) {
        c->d->unknown_events++;
        for (uint32_t i = 1; i < n; i++)
            if (rd_skip(r))
                return -1;
        return 0;
    }
    struct kvev_event *e = new_event(c);
    if (!e)
        return -1;
    e->kind = (enum kvev_kind)kind;
    struct pending pd = {0};
    const enum field *pos = kind == KVEV_STORED ? STORED_POS : REMOVED_POS;
    uint32_t npos = kind == KVEV_STORED ? sizeof(STORED_POS) / sizeof(STORED_POS[0])
                  : kind == KVEV_REMOVED ? sizeof(REMOVED_POS) / sizeof(REMOVED_POS[0]) : 1;
    for (uint32_t i = 1; i < n; i++)
        if (rd_field(c, e, &pd, i < npos ? pos[i] : F_NONE))
            return -1;
    return finish_event(c, e, &pd);
}

/* {"type": "Tag", "field": ..., ...} */
static int rd_event_map(struct ctx *c, uint32_t n)
{
    struct rd *r = &c->r;
    struct kvev_event *e = new_event(c);
    if (!e)
        return -1;
    struct pending pd = {0};
    int kind = 0, have_type = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct kvev_str k;
        if (rd_s(r, &k))
            return -1;
        if (s_is(&k, "type")) {
            struct kvev_str tag;
            if (have_type)
                return reject(r, KVEV_R_SHAPE);
            have_type = 1;
            if (rd_s(r, &tag))
                return -1;
            kind = kind_of(&tag);
            continue;
        }
        if (rd_field(c, e, &pd, field_by_name(&k)))
            return -1;
    }
    if (!have_type)
        return reject(r, KVEV_R_SHAPE);
    if (!kind) { /* a newer kind: forget what it wrote to the scratch */
        c->d->unknown_events++;
        return 0;
    }
    e->kind = (enum kvev_kind)kind;
    if (kind == KVEV_CLEARED)
        e->nblocks = 0;
    return finish_event(c, e, &pd);
}

static int rd_events(struct ctx *c)
{
    struct rd *r = &c->r;
    uint32_t n;
    if (rd_array(r, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t m;
        if (is_array(r)) {
            if (rd_array(r, &m) || rd_event_array(c, m))
                return -1;
        } else if (is_map(r)) {
            if (rd_map(r, &m) || rd_event_map(c, m))
                return -1;
        } else {
            return reject(r, KVEV_R_TYPE);
        }
    }
    return 0;
}

static int rd_batch(struct ctx *c, struct kvev_batch *b)
{
    struct rd *r = &c->r;
    uint32_t n;
    if (is_array(r)) {
        if (rd_array(r, &n))
            return -1;
        if (n < 2)
            return reject(r, KVEV_R_SHAPE);
        if (rd_float(r, &b->ts) || rd_events(c))
            return -1;
        if (n >= 3 && rd_opt_i64(r, &b->has_dp_rank, &b->dp_rank))
            return -1;
        for (uint32_t i = 3; i < n; i++)
            if (rd_skip(r))
                return -1;
        return 0;
    }
    if (rd_map(r, &n))
        return -1;
    int have_ts = 0, have_ev = 0, have_dp = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct kvev_str k;
        if (rd_s(r, &k))
            return -1;
        if (s_is(&k, "ts")) {
            if (have_ts++ || rd_float(r, &b->ts))
                return r->err ? -1 : reject(r, KVEV_R_SHAPE);
        } else if (s_is(&k, "events")) {
            if (have_ev++ || rd_events(c))
                return r->err ? -1 : reject(r, KVEV_R_SHAPE);
        } else if (s_is(&k, "data_parallel_rank")) {
            if (have_dp++ || rd_opt_i64(r, &b->has_dp_rank, &b->dp_rank))
                return r->err ? -1 : reject(r, KVEV_R_SHAPE);
        } else if (rd_skip(r)) {
            return -1;
        }
    }
    if (!have_ts || !have_ev)
        return reject(r, KVEV_R_SHAPE);
    return 0;
}

void kvev_decoder_init(struct kvev_decoder *d)
{
    memset(d, 0, sizeof(*d));
}

void kvev_decoder_free(struct kvev_decoder *d)
{
    kv_free(d->ev);
    kv_free(d->hashes);
    kv_free(d->tokens);
    memset(d, 0, sizeof(*d));
}

int kvev_decode(struct kvev_decoder *d, const void *buf, size_t len,
                const struct kvev_batch **out)
{
    static const uint8_t none[1];
    const uint8_t *p = buf ? (const uint8_t *)buf : none;
    struct ctx c = {.d = d, .r = {p, p + (buf ? len : 0), 0}};
    struct kvev_batch *b = &d->b;
    memset(b, 0, sizeof(*b));
    if (rd_batch(&c, b) == 0 && c.r.p != c.r.end)
        reject(&c.r, KVEV_R_TRAILING);
    if (c.r.err) {
        d->rejected[reason_of(c.r.err)]++;
        return c.nomem ? -ENOMEM : -EBADMSG;
    }
    /* offsets into the scratch become pointers now that it stopped moving */
    for (uint32_t i = 0; i < c.nev; i++) {
        struct kvev_event *e = &d->ev[i];
        e->hashes = e->kind == KVEV_CLEARED ? NULL : d->hashes + (uintptr_t)e->hashes;
        e->tokens = e->kind == KVEV_STORED ? d->tokens + (uintptr_t)e->tokens : NULL;
    }
    b->nevents = c.nev;
    b->ev = d->ev;
    d->batches++;
    d->events += c.nev;
    *out = b;
    return 0;
}

const char *kvev_reject_name(enum kvev_reject r)
{
    static const char *names[KVEV_R_MAX] = {"truncated", "type", "shape", "limit",
                                            "value", "trailing", "nomem"};
    return (unsigned)r < KVEV_R_MAX ? names[r] : "?";
}
