/* kvevents: vLLM's KV-cache event stream over ZMQ PUB. See kvevents.h.
 *
 * A batch accumulates one pod's events between flushes (one engine step) as
 * a small array of event records over two flat arrays: block hashes (all
 * events) and token ids (stored blocks only). Coalescing follows vLLM,
 * which emits one BlockStored per request and step:
 *   - a stored block whose parent is the last hash of the pending
 *     BlockStored event, with the same adapter, extends that event;
 *   - removed hashes in a row share one BlockRemoved;
 *   - AllBlocksCleared is appended after whatever is pending (a clear right
 *     after a clear adds nothing).
 *
 * Bound: at most KVEV_MAX_PENDING blocks (hashes) wait in one batch. A
 * block past the cap (or one that meets an allocation failure) is dropped
 * and counted in b->dropped; a later flush starts afresh. The engine
 * flushes every step, which stores and evicts at most a step's worth of
 * blocks (8192 tokens = 512 blocks each way), so the cap is only reached
 * when no flush happens for a long time. Clears are never dropped: they
 * take no hash space, and a consumer that misses one keeps stale blocks
 * forever.
 *
 * Sequence numbers count flush attempts per batch (per pod), from 0, so a
 * batch lost to a send error shows up as a gap.
 *
 * The ring (replay and faults): every encoded batch is copied into a ring
 * of the last `ring_cap` batches (bytes capped too) with the time it is due
 * on the wire (now, or now + delay) and whether the drop fault ate it.
 * kvev_tick() sends what is due, in order, and answers replay requests
 * from the entries already published (a delayed batch is not yet published,
 * as in vLLM, whose buffer holds sent batches only). A batch that falls out
 * of the ring before it was sent is lost (counted). */
#include "podsim/kvevents.h"

#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "common/ev.h"

#ifndef KVEV_MAX_PENDING
#define KVEV_MAX_PENDING 65536u /* blocks per batch */
#endif
#define KVEV_SNDHWM 10000 /* batches queued per subscriber before PUB drops */
#ifndef KVEV_RING_BYTES
#define KVEV_RING_BYTES (32u << 20) /* payload bytes the ring may hold */
#endif
#define KVEV_RING_DEFAULT 1024      /* batches, when faults alone need a ring */

enum kvev_kind { KVEV_STORED, KVEV_REMOVED, KVEV_CLEARED };

struct kvev_event {
    enum kvev_kind kind;
    uint32_t first;     /* index of the first hash in b->hashes */
    uint32_t n;         /* hashes */
    uint32_t tok_first; /* STORED: index of the first token in b->tokens */
    uint64_t parent;    /* STORED: parent of the first block, 0 = none */
    uint32_t lora;      /* STORED: adapter id, 0 = none */
};

struct kvev_batch {
    char *topic;
    size_t topic_len;
    uint32_t block_size;
    uint64_t seq;       /* of the next flush */
    uint64_t dropped;   /* blocks lost to the cap or to ENOMEM */

    struct kvev_event *ev;
    uint32_t nev, ev_cap;
    uint64_t *hashes;
    uint32_t nhashes, hashes_cap;
    uint32_t *tokens;
    uint32_t ntokens, tokens_cap;

    msgpack_sbuffer sb; /* payload, reused across flushes */

    const char *(*name)(void *ctx, uint32_t lora_id);
    void *name_ctx;

    struct ring_ent {
        uint64_t seq, due_ns;
        void *data;
        size_t len;
        uint8_t sent, drop;
    } *ring;
    uint32_t ring_cap, ring_head, ring_n, ring_sent; /* sent: first ring_sent are out */
    size_t ring_bytes;
    void *router;          /* replay socket, or NULL */
    double drop_rate;
    uint64_t delay_ns, rng;
    struct kvev_counters cnt;
};

struct kvev_pub {
    void *ctx;
    void *sock;
};

/* ---- publisher ---- */

struct kvev_pub *kvev_pub_open(const char *endpoint)
{
    struct kvev_pub *p = calloc(1, sizeof(*p));
    int err = ENOMEM, hwm = KVEV_SNDHWM, linger = 0;

    if (!p)
        goto fail;
    p->ctx = zmq_ctx_new();
    if (!p->ctx)
        goto fail_errno;
    p->sock = zmq_socket(p->ctx, ZMQ_PUB);
    if (!p->sock)
        goto fail_errno;
    /* linger 0: closing never waits on a slow subscriber */
    if (zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof(hwm)) ||
        zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof(linger)) ||
        zmq_bind(p->sock, endpoint))
        goto fail_errno;
    return p;

fail_errno:
    err = zmq_errno();
fail:
    kvev_pub_close(p);
    errno = err;
    return NULL;
}

void kvev_pub_close(struct kvev_pub *p)
{
    if (!p)
        return;
    if (p->sock)
        zmq_close(p->sock);
    if (p->ctx)
        while (zmq_ctx_term(p->ctx) && zmq_errno() == EINTR)
            ;
    free(p);
}

/* ---- batch ---- */

struct kvev_batch *kvev_batch_new(const char *topic, uint32_t block_size)
{
    if (!topic || !block_size) {
        errno = EINVAL;
        return NULL;
    }
    struct kvev_batch *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->topic = strdup(topic);
    if (!b->topic) {
        free(b);
        errno = ENOMEM;
        return NULL;
    }
    b->topic_len = strlen(topic);
    b->block_size = block_size;
    msgpack_sbuffer_init(&b->sb);
    return b;
}

static void ring_pop(struct kvev_batch *b);

void kvev_batch_free(struct kvev_batch *b)
{
    if (!b)
        return;
    while (b->ring_n)
        ring_pop(b);
    free(b->ring);
    if (b->router)
        zmq_close(b->router);
    msgpack_sbuffer_destroy(&b->sb);
    free(b->ev);
    free(b->hashes);
    free(b->tokens);
    free(b->topic);
    free(b);
}

size_t kvev_pending(const struct kvev_batch *b)
{
    return b ? b->nev : 0;
}

/* Makes room for need more elements of size sz in *arr (cap *cap, n in
 * use), doubling. 0 or -ENOMEM. */
static int grow(void **arr, uint32_t *cap, uint32_t n, uint32_t need,
                size_t sz)
{
    if ((uint64_t)n + need <= *cap)
        return 0;
    uint64_t c = *cap ? *cap : 16;
    while (c < (uint64_t)n + need)
        c *= 2;
    if (c > UINT32_MAX)
        return -ENOMEM;
    void *a = realloc(*arr, (size_t)c * sz);
    if (!a)
        return -ENOMEM;
    *arr = a;
    *cap = (uint32_t)c;
    return 0;
}

static struct kvev_event *new_event(struct kvev_batch *b, enum kvev_kind k)
{
    if (grow((void **)&b->ev, &b->ev_cap, b->nev, 1, sizeof(*b->ev)))
        return NULL;
    struct kvev_event *e = &b->ev[b->nev++];
    memset(e, 0, sizeof(*e));
    e->kind = k;
    e->first = b->nhashes;
    e->tok_first = b->ntokens;
    return e;
}

static struct kvev_event *last_event(struct kvev_batch *b)
{
    return b->nev ? &b->ev[b->nev - 1] : NULL;
}

/* Room for one more hash (and, for a stored block, its tokens)? */
static int reserve_block(struct kvev_batch *b, int with_tokens)
{
    if (b->nhashes >= KVEV_MAX_PENDING)
        return -ENOSPC;
    if (grow((void **)&b->hashes, &b->hashes_cap, b->nhashes, 1,
             sizeof(*b->hashes)))
        return -ENOMEM;
    if (with_tokens && grow((void **)&b->tokens, &b->tokens_cap, b->ntokens,
                            b->block_size, sizeof(*b->tokens)))
        return -ENOMEM;
    return 0;
}

void kvev_stored(void *ctx, uint64_t hash, uint64_t parent,
                 const uint32_t *tokens, uint32_t lora_id)
{
    struct kvev_batch *b = ctx;
    if (reserve_block(b, 1)) {
        b->dropped++;
        return;
    }
    struct kvev_event *e = last_event(b);
    /* parent 0 is "no parent": a chain's first block always starts anew */
    if (!e || e->kind != KVEV_STORED || e->lora != lora_id || parent == 0 ||
        b->hashes[e->first + e->n - 1] != parent) {
        e = new_event(b, KVEV_STORED);
        if (!e) {
            b->dropped++;
            return;
        }
        e->parent = parent;
        e->lora = lora_id;
    }
    b->hashes[b->nhashes++] = hash;
    if (tokens)
        memcpy(b->tokens + b->ntokens, tokens, b->block_size * sizeof(*tokens));
    else
        memset(b->tokens + b->ntokens, 0, b->block_size * sizeof(*tokens));
    b->ntokens += b->block_size;
    e->n++;
}

void kvev_removed(void *ctx, uint64_t hash)
{
    struct kvev_batch *b = ctx;
    if (reserve_block(b, 0)) {
        b->dropped++;
        return;
    }
    struct kvev_event *e = last_event(b);
    if (!e || e->kind != KVEV_REMOVED) {
        e = new_event(b, KVEV_REMOVED);
        if (!e) {
            b->dropped++;
            return;
        }
    }
    b->hashes[b->nhashes++] = hash;
    e->n++;
}

void kvev_cleared(void *ctx)
{
    struct kvev_batch *b = ctx;
    struct kvev_event *e = last_event(b);
    if (e && e->kind == KVEV_CLEARED)
        return;
    /* without room for one record the clear is lost: count it */
    if (!new_event(b, KVEV_CLEARED))
        b->dropped++;
}

/* ---- encoding and sending ---- */

static int pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, s, n);
}

static int pack_event(msgpack_packer *pk, const struct kvev_batch *b,
                      const struct kvev_event *e)
{
    const uint64_t *h = b->hashes + e->first;
    int rc = 0;

    switch (e->kind) {
    case KVEV_STORED: {
        const uint32_t *t = b->tokens + e->tok_first;
        size_t nt = (size_t)e->n * b->block_size;
        const char *lname = b->name && e->lora ? b->name(b->name_ctx, e->lora) : NULL;
        rc |= msgpack_pack_array(pk, b->name ? 8 : 6) | pack_str(pk, "BlockStored");
        rc |= msgpack_pack_array(pk, e->n);
        for (uint32_t i = 0; i < e->n; i++)
            rc |= msgpack_pack_uint64(pk, h[i]);
        rc |= e->parent ? msgpack_pack_uint64(pk, e->parent)
                        : msgpack_pack_nil(pk);
        rc |= msgpack_pack_array(pk, nt);
        for (size_t i = 0; i < nt; i++)
            rc |= msgpack_pack_uint32(pk, t[i]);
        rc |= msgpack_pack_uint32(pk, b->block_size);
        rc |= e->lora ? msgpack_pack_uint32(pk, e->lora)
                      : msgpack_pack_nil(pk);
        if (b->name) { /* vLLM >= 0.11: medium, lora_name */
            rc |= pack_str(pk, "GPU");
            rc |= lname ? pack_str(pk, lname) : msgpack_pack_nil(pk);
        }
        break;
    }
    case KVEV_REMOVED:
        rc |= msgpack_pack_array(pk, 2) | pack_str(pk, "BlockRemoved");
        rc |= msgpack_pack_array(pk, e->n);
        for (uint32_t i = 0; i < e->n; i++)
            rc |= msgpack_pack_uint64(pk, h[i]);
        break;
    case KVEV_CLEARED:
        rc |= msgpack_pack_array(pk, 1) | pack_str(pk, "AllBlocksCleared");
        break;
    }
    return rc;
}

static void batch_clear(struct kvev_batch *b)
{
    b->nev = b->nhashes = b->ntokens = 0;
}

/* [ts, [event, ...]] into b->sb. 0 or -ENOMEM (the sbuffer's realloc). */
static int encode(struct kvev_batch *b, double ts)
{
    msgpack_packer pk;
    int rc;

    msgpack_sbuffer_clear(&b->sb);
    msgpack_packer_init(&pk, &b->sb, msgpack_sbuffer_write);
    rc = msgpack_pack_array(&pk, 2) | msgpack_pack_double(&pk, ts) |
         msgpack_pack_array(&pk, b->nev);
    for (uint32_t i = 0; i < b->nev && !rc; i++)
        rc |= pack_event(&pk, b, &b->ev[i]);
    return rc ? -ENOMEM : 0;
}

static int send_frames(struct kvev_pub *p, const struct kvev_batch *b, uint64_t seq,
                       const void *data, size_t len)
{
    uint8_t sq[8];
    for (int i = 0; i < 8; i++)
        sq[i] = (uint8_t)(seq >> (56 - 8 * i));
    /* zmq_send copies. PUB never blocks: a subscriber past its HWM loses
     * the whole message, and the send still succeeds. */
    if (zmq_send(p->sock, b->topic, b->topic_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(p->sock, sq, sizeof(sq), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(p->sock, data, len, ZMQ_DONTWAIT) < 0) {
        int err = zmq_errno();
        return err == EAGAIN ? 0 : -err; /* EAGAIN: dropped, as PUB does */
    }
    return 0;
}

/* ---- the ring ---- */

static struct ring_ent *ring_at(struct kvev_batch *b, uint32_t i)
{
    return &b->ring[(b->ring_head + i) % b->ring_cap];
}

static void ring_pop(struct kvev_batch *b)
{
    struct ring_ent *e = ring_at(b, 0);
    if (!e->sent)
        b->cnt.ring_lost++; /* never made it out */
    b->ring_bytes -= e->len;
    free(e->data);
    e->data = NULL;
    b->ring_head = (b->ring_head + 1) % b->ring_cap;
    b->ring_n--;
    if (b->ring_sent)
        b->ring_sent--;
}

static int ring_alloc(struct kvev_batch *b, uint32_t cap)
{
    if (b->ring)
        return 0;
    b->ring = calloc(cap ? cap : 1, sizeof(*b->ring));
    if (!b->ring)
        return -ENOMEM;
    b->ring_cap = cap ? cap : 1;
    return 0;
}

static int ring_push(struct kvev_batch *b, uint64_t seq, uint64_t due)
{
    void *d = malloc(b->sb.size ? b->sb.size : 1);
    if (!d)
        return -ENOMEM;
    memcpy(d, b->sb.data, b->sb.size);
    while (b->ring_n && (b->ring_n == b->ring_cap ||
                         b->ring_bytes + b->sb.size > KVEV_RING_BYTES))
        ring_pop(b);
    struct ring_ent *e = ring_at(b, b->ring_n++);
    *e = (struct ring_ent){seq, due, d, b->sb.size, 0, 0};
    b->ring_bytes += b->sb.size;
    if (b->drop_rate > 0) { /* xorshift64*: the fault's own draws */
        b->rng ^= b->rng >> 12, b->rng ^= b->rng << 25, b->rng ^= b->rng >> 27;
        double u = (double)((b->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
        e->drop = u < b->drop_rate;
    }
    return 0;
}

/* Sends what is due, in order. */
static void ring_release(struct kvev_pub *p, struct kvev_batch *b, uint64_t now)
{
    while (b->ring_sent < b->ring_n) {
        struct ring_ent *e = ring_at(b, b->ring_sent);
        if (e->due_ns > now)
            break;
        if (e->drop)
            b->cnt.fault_dropped++;
        else
            send_frames(p, b, e->seq, e->data, e->len);
        e->sent = 1;
        b->cnt.published++;
        b->ring_sent++;
    }
}

static void replay_serve(struct kvev_batch *b)
{
    for (;;) {
        zmq_msg_t part[3];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, b->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                for (int i = 0; i < n && i < 3; i++)
                    zmq_msg_close(&part[i]);
                return; /* nothing (more) waiting */
            }
            more = zmq_msg_more(&m);
            if (n < 3)
                part[n] = m;
            else
                zmq_msg_close(&m);
            n++;
        }
        /* [identity, "", start_seq]: anything else is ignored, as vLLM does */
        if (n == 3 && zmq_msg_size(&part[1]) == 0 && zmq_msg_size(&part[2]) == 8) {
            const uint8_t *q = zmq_msg_data(&part[2]);
            uint64_t start = 0;
            for (int i = 0; i < 8; i++)
                start = (start << 8) | q[i];
            const void *id = zmq_msg_data(&part[0]);
            size_t idn = zmq_msg_size(&part[0]);
            b->cnt.replays++;
            for (uint32_t i = 0; i < b->ring_sent; i++) {
                struct ring_ent *e = ring_at(b, i);
                if (e->seq < start)
                    continue;
                uint8_t sq[8];
                for (int k = 0; k < 8; k++)
                    sq[k] = (uint8_t)(e->seq >> (56 - 8 * k));
                zmq_send(b->router, id, idn, ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(b->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(b->router, sq, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
                zmq_send(b->router, e->data, e->len, ZMQ_DONTWAIT);
                b->cnt.replayed++;
            }
            static const uint8_t end[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
            zmq_send(b->router, id, idn, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(b->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(b->router, end, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(b->router, "", 0, ZMQ_DONTWAIT);
        }
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&part[i]);
    }
}

void kvev_batch_set_names(struct kvev_batch *b,
                          const char *(*name)(void *ctx, uint32_t lora_id), void *ctx)
{
    b->name = name;
    b->name_ctx = ctx;
}

int kvev_batch_set_replay(struct kvev_pub *p, struct kvev_batch *b,
                          const char *endpoint, uint32_t ring)
{
    if (!p || !b || !endpoint || b->router)
        return -EINVAL;
    if (!b->ring && ring_alloc(b, ring ? ring : KVEV_RING_DEFAULT))
        return -ENOMEM;
    void *r = zmq_socket(p->ctx, ZMQ_ROUTER);
    int linger = 0, hwm = 100000;
    if (!r)
        return -zmq_errno();
    if (zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof(linger)) ||
        zmq_setsockopt(r, ZMQ_SNDHWM, &hwm, sizeof(hwm)) || zmq_bind(r, endpoint)) {
        int err = zmq_errno();
        zmq_close(r);
        return -err;
    }
    b->router = r;
    return 0;
}

int kvev_set_faults(struct kvev_batch *b, double drop_rate, uint32_t delay_ms, uint64_t seed)
{
    if ((drop_rate > 0 || delay_ms) && ring_alloc(b, KVEV_RING_DEFAULT))
        return -ENOMEM;
    b->drop_rate = drop_rate;
    b->delay_ns = (uint64_t)delay_ms * 1000000ull;
    if (!b->rng)
        b->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
    return 0;
}

int kvev_needs_tick(const struct kvev_batch *b)
{
    return b && b->ring;
}

uint64_t kvev_tick(struct kvev_pub *p, struct kvev_batch *b, uint64_t now_ns)
{
    if (!p || !b || !b->ring)
        return 0;
    ring_release(p, b, now_ns);
    if (b->router)
        replay_serve(b);
    return b->ring_sent < b->ring_n ? ring_at(b, b->ring_sent)->due_ns : 0;
}

void kvev_counters(const struct kvev_batch *b, struct kvev_counters *c)
{
    *c = b->cnt;
}

int kvev_flush(struct kvev_pub *p, struct kvev_batch *b, double ts)
{
    if (!p || !b)
        return -EINVAL;
    if (!b->nev)
        return 0;

    uint64_t seq = b->seq++;
    int rc = encode(b, ts);
    batch_clear(b);
    if (rc)
        return rc;
    if (!b->ring) {
        b->cnt.published++;
        return send_frames(p, b, seq, b->sb.data, b->sb.size);
    }
    uint64_t now = ev_now_ns();
    if (ring_push(b, seq, now + b->delay_ns))
        return -ENOMEM; /* the batch is lost: a gap the consumer sees */
    ring_release(p, b, now);
    return 0;
}
