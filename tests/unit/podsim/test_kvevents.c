/* Unit tests for user/podsim/kvevents.c: coalescing and the pending cap
 * (through the batch's internals, hence the include), then the wire format
 * end to end: a real PUB bound on loopback, a SUB receiving the three
 * frames, the msgpack payload decoded and checked field by field. */
#include "podsim/kvevents.c"

#include <time.h>

#include "harness.h"

#define BS 16

static void toks(uint32_t *t, uint32_t base)
{
    for (uint32_t i = 0; i < BS; i++)
        t[i] = base + i;
}

/* ---- batching, no sockets ---- */

TEST(coalescing)
{
    struct kvev_batch *b = kvev_batch_new("kv@x@m", BS);
    uint32_t t[BS];
    CHECK(b != NULL);
    if (!b)
        return;
    toks(t, 0);
    CHECK_EQ(kvev_pending(b), 0);

    kvev_stored(b, 11, 0, t, 0);  /* chain 1 */
    kvev_stored(b, 12, 11, t, 0);
    kvev_stored(b, 13, 12, t, 0);
    CHECK_EQ(kvev_pending(b), 1);
    CHECK_EQ(b->ev[0].n, 3);
    kvev_stored(b, 21, 0, t, 0);  /* a new chain's first block */
    CHECK_EQ(kvev_pending(b), 2);
    kvev_stored(b, 22, 21, t, 5); /* same chain, other adapter: new event */
    CHECK_EQ(kvev_pending(b), 3);
    kvev_stored(b, 23, 99, t, 5); /* parent is not the previous block */
    CHECK_EQ(kvev_pending(b), 4);
    CHECK_EQ(b->ev[3].parent, 99);
    CHECK_EQ(b->ev[3].lora, 5);
    kvev_removed(b, 13);
    kvev_removed(b, 12);
    CHECK_EQ(kvev_pending(b), 5);
    CHECK_EQ(b->ev[4].n, 2);
    kvev_stored(b, 24, 23, t, 5); /* a removal in between: new event */
    CHECK_EQ(kvev_pending(b), 6);
    kvev_cleared(b);
    kvev_cleared(b);              /* a clear right after a clear: nothing */
    CHECK_EQ(kvev_pending(b), 7);
    kvev_removed(b, 24);
    kvev_cleared(b);
    CHECK_EQ(kvev_pending(b), 9);
    CHECK_EQ(b->nhashes, 10); /* 7 stored + 3 removed */
    CHECK_EQ(b->ntokens, 7 * BS);
    CHECK_EQ(b->dropped, 0);
    /* parent 0 means "first block", even after a block whose hash is 0 */
    kvev_stored(b, 0, 0, t, 0);
    kvev_stored(b, 31, 0, t, 0);
    CHECK_EQ(kvev_pending(b), 11);
    kvev_batch_free(b);
}

TEST(pending_cap_drops_and_counts)
{
    struct kvev_batch *b = kvev_batch_new("kv@x@m", BS);
    uint32_t t[BS];
    CHECK(b != NULL);
    if (!b)
        return;
    toks(t, 7);
    uint64_t parent = 0;
    for (uint64_t h = 1; h <= KVEV_MAX_PENDING + 5; h++) {
        kvev_stored(b, h, parent, t, 0);
        parent = h;
    }
    CHECK_EQ(kvev_pending(b), 1);
    CHECK_EQ(b->nhashes, KVEV_MAX_PENDING);
    CHECK_EQ(b->dropped, 5);
    kvev_removed(b, 1);           /* no room either */
    CHECK_EQ(b->dropped, 6);
    kvev_cleared(b);              /* a clear is always kept */
    CHECK_EQ(kvev_pending(b), 2);
    kvev_batch_free(b);

    CHECK(kvev_batch_new("t", 0) == NULL);
    CHECK_EQ(errno, EINVAL);
}

TEST(open_errors)
{
    errno = 0;
    CHECK(kvev_pub_open("bogus://nowhere") == NULL);
    CHECK(errno != 0);

    struct kvev_pub *a = kvev_pub_open("tcp://127.0.0.1:*");
    CHECK(a != NULL);
    if (!a)
        return;
    char ep[256];
    size_t sz = sizeof(ep);
    CHECK_EQ(zmq_getsockopt(a->sock, ZMQ_LAST_ENDPOINT, ep, &sz), 0);
    errno = 0;
    CHECK(kvev_pub_open(ep) == NULL); /* the same port again */
    CHECK_EQ(errno, EADDRINUSE);
    CHECK_EQ(kvev_flush(NULL, NULL, 0.0), -EINVAL);
    kvev_pub_close(a);
    kvev_pub_close(NULL);
}

/* ---- on the wire ---- */

struct wire {
    struct kvev_pub *pub;
    void *ctx, *sub;
    char ep[256];
};

/* PUB on an ephemeral loopback port, SUB to everything, then the slow
 * joiner's pause so the subscription reaches the publisher. */
static int wire_open(struct wire *w)
{
    memset(w, 0, sizeof(*w));
    w->pub = kvev_pub_open("tcp://127.0.0.1:*");
    if (!w->pub)
        return -1;
    size_t sz = sizeof(w->ep);
    if (zmq_getsockopt(w->pub->sock, ZMQ_LAST_ENDPOINT, w->ep, &sz))
        return -1;
    w->ctx = zmq_ctx_new();
    w->sub = zmq_socket(w->ctx, ZMQ_SUB);
    int tmo = 2000, linger = 0;
    zmq_setsockopt(w->sub, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(w->sub, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(w->sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(w->sub, w->ep))
        return -1;
    nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    return 0;
}

static void wire_close(struct wire *w)
{
    if (w->sub)
        zmq_close(w->sub);
    if (w->ctx)
        zmq_ctx_term(w->ctx);
    kvev_pub_close(w->pub);
}

/* One frame into a malloc'd buffer; returns its size or -1. *more is set
 * from ZMQ_RCVMORE. */
static int recv_frame(void *sock, char **data, int *more)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    int n = (int)zmq_msg_size(&m);
    *data = malloc(n + 1);
    memcpy(*data, zmq_msg_data(&m), n);
    (*data)[n] = '\0';
    *more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    return n;
}

struct frames {
    char *topic, *seq, *payload;
    int ntopic, nseq, npayload;
};

static int recv_batch(void *sock, struct frames *f)
{
    int more = 0;
    memset(f, 0, sizeof(*f));
    f->ntopic = recv_frame(sock, &f->topic, &more);
    CHECK(f->ntopic >= 0 && more);
    if (f->ntopic < 0 || !more)
        return -1;
    f->nseq = recv_frame(sock, &f->seq, &more);
    CHECK(f->nseq == 8 && more);
    if (f->nseq < 0 || !more)
        return -1;
    f->npayload = recv_frame(sock, &f->payload, &more);
    CHECK(f->npayload > 0 && !more);
    return f->npayload > 0 && !more ? 0 : -1;
}

static void frames_free(struct frames *f)
{
    free(f->topic);
    free(f->seq);
    free(f->payload);
}

static uint64_t be64(const char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (uint8_t)p[i];
    return v;
}

/* ---- msgpack object checks ---- */

static int is_str(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static int is_u64(const msgpack_object *o, uint64_t v)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 == v;
}

static const msgpack_object *arr(const msgpack_object *o, uint32_t n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != n)
        return NULL;
    return o->via.array.ptr;
}

#define H1 0xfedcba9876543210ull /* high bit set: must stay unsigned */
#define H2 0x0000000000000002ull
#define H3 0x1234567890abcdefull

TEST(batch_on_the_wire)
{
    struct wire w;
    struct kvev_batch *b = kvev_batch_new("kv@127.0.0.1:8000@llama", BS);
    int ok = wire_open(&w) == 0 && b;
    CHECK(ok);
    if (!ok) {
        wire_close(&w);
        kvev_batch_free(b);
        return;
    }

    uint32_t t1[BS], t2[BS], t3[BS];
    toks(t1, 100);
    toks(t2, 200);
    toks(t3, 300);
    CHECK_EQ(kvev_flush(w.pub, b, 1.0), 0); /* nothing pending: no send */
    kvev_stored(b, H1, 0, t1, 0);
    kvev_stored(b, H2, H1, t2, 0);
    kvev_stored(b, H3, H2, t3, 0);
    kvev_removed(b, 77);
    kvev_cleared(b);
    CHECK_EQ(kvev_pending(b), 3);
    CHECK_EQ(kvev_flush(w.pub, b, 1712345678.5), 0);
    CHECK_EQ(kvev_pending(b), 0);

    struct frames f;
    if (recv_batch(w.sub, &f) == 0) {
        CHECK_STR(f.topic, "kv@127.0.0.1:8000@llama");
        CHECK_EQ(be64(f.seq), 0);

        msgpack_unpacked up;
        size_t off = 0;
        msgpack_unpacked_init(&up);
        int rc = msgpack_unpack_next(&up, f.payload, f.npayload, &off);
        CHECK_EQ(rc, MSGPACK_UNPACK_SUCCESS);
        CHECK_EQ(off, f.npayload); /* one object, nothing after it */
        const msgpack_object *top = arr(&up.data, 2), *ev = NULL;
        CHECK(top != NULL);
        if (top) {
            CHECK(top[0].type == MSGPACK_OBJECT_FLOAT64);
            CHECK(top[0].via.f64 == 1712345678.5);
            ev = arr(&top[1], 3);
            CHECK(ev != NULL);
        }
        if (ev) {
            /* ["BlockStored", [h1,h2,h3], nil, [48 tokens], 16, nil] */
            const msgpack_object *s = arr(&ev[0], 6);
            CHECK(s != NULL);
            if (s) {
                CHECK(is_str(&s[0], "BlockStored"));
                const msgpack_object *hs = arr(&s[1], 3);
                CHECK(hs && is_u64(&hs[0], H1) && is_u64(&hs[1], H2) &&
                      is_u64(&hs[2], H3));
                CHECK(s[2].type == MSGPACK_OBJECT_NIL);
                const msgpack_object *tk = arr(&s[3], 3 * BS);
                CHECK(tk != NULL);
                for (uint32_t i = 0; tk && i < 3 * BS; i++)
                    CHECK(is_u64(&tk[i], 100 * (i / BS + 1) + i % BS));
                CHECK(is_u64(&s[4], 16));
                CHECK(s[5].type == MSGPACK_OBJECT_NIL);
            }
            /* ["BlockRemoved", [77]] */
            const msgpack_object *r = arr(&ev[1], 2);
            CHECK(r != NULL);
            if (r) {
                CHECK(is_str(&r[0], "BlockRemoved"));
                const msgpack_object *hs = arr(&r[1], 1);
                CHECK(hs && is_u64(&hs[0], 77));
            }
            /* ["AllBlocksCleared"] */
            const msgpack_object *c = arr(&ev[2], 1);
            CHECK(c && is_str(&c[0], "AllBlocksCleared"));
        }
        msgpack_unpacked_destroy(&up);
    }
    frames_free(&f);

    /* the next batch: seq 1, a parent from an earlier batch, an adapter */
    kvev_stored(b, 500, H3, t1, 7);
    CHECK_EQ(kvev_flush(w.pub, b, 2.25), 0);
    if (recv_batch(w.sub, &f) == 0) {
        CHECK_EQ(be64(f.seq), 1);
        msgpack_unpacked up;
        size_t off = 0;
        msgpack_unpacked_init(&up);
        CHECK_EQ(msgpack_unpack_next(&up, f.payload, f.npayload, &off),
                 MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *top = arr(&up.data, 2), *ev = NULL, *s = NULL;
        if (top) {
            CHECK(top[0].type == MSGPACK_OBJECT_FLOAT64 &&
                  top[0].via.f64 == 2.25);
            ev = arr(&top[1], 1);
        }
        if (ev)
            s = arr(&ev[0], 6);
        CHECK(s != NULL);
        if (s) {
            CHECK(is_str(&s[0], "BlockStored"));
            const msgpack_object *hs = arr(&s[1], 1);
            CHECK(hs && is_u64(&hs[0], 500));
            CHECK(is_u64(&s[2], H3));
            CHECK(arr(&s[3], BS) != NULL);
            CHECK(is_u64(&s[4], 16));
            CHECK(is_u64(&s[5], 7));
        }
        msgpack_unpacked_destroy(&up);
    }
    frames_free(&f);

    /* an empty flush in between does not use up a sequence number */
    CHECK_EQ(kvev_flush(w.pub, b, 3.0), 0);
    kvev_removed(b, 1);
    CHECK_EQ(kvev_flush(w.pub, b, 4.0), 0);
    if (recv_batch(w.sub, &f) == 0)
        CHECK_EQ(be64(f.seq), 2);
    frames_free(&f);

    kvev_batch_free(b);
    wire_close(&w);
}

/* Two pods on one PUB: each batch has its own topic and sequence. */
TEST(two_batches_one_socket)
{
    struct wire w;
    struct kvev_batch *a = kvev_batch_new("kv@h:1@m", BS);
    struct kvev_batch *b = kvev_batch_new("kv@h:2@m", BS);
    int ok = wire_open(&w) == 0 && a && b;
    CHECK(ok);
    if (ok) {
        kvev_removed(a, 1);
        kvev_removed(b, 2);
        CHECK_EQ(kvev_flush(w.pub, a, 1.0), 0);
        CHECK_EQ(kvev_flush(w.pub, b, 1.0), 0);
        kvev_removed(a, 3);
        CHECK_EQ(kvev_flush(w.pub, a, 2.0), 0);
        static const struct {
            const char *topic;
            uint64_t seq;
        } want[] = {{"kv@h:1@m", 0}, {"kv@h:2@m", 0}, {"kv@h:1@m", 1}};
        for (int i = 0; i < 3; i++) {
            struct frames f;
            if (recv_batch(w.sub, &f) == 0) {
                CHECK_STR(f.topic, want[i].topic);
                CHECK_EQ(be64(f.seq), want[i].seq);
            }
            frames_free(&f);
        }
    }
    kvev_batch_free(a);
    kvev_batch_free(b);
    wire_close(&w);
}

/* Replay (as vLLM's ROUTER answers a DEALER/REQ) and the loss fault: every
 * batch dropped on the way out is still numbered and replayable. */
TEST(replay_and_drop_fault)
{
    struct wire w;
    struct kvev_batch *b = kvev_batch_new("kv@h:1@m", BS);
    int ok = wire_open(&w) == 0 && b;
    CHECK(ok);
    if (!ok) {
        wire_close(&w);
        kvev_batch_free(b);
        return;
    }
    CHECK_EQ(kvev_batch_set_replay(w.pub, b, "tcp://127.0.0.1:*", 2), 0);
    char rep[256];
    size_t sz = sizeof(rep);
    zmq_getsockopt(b->router, ZMQ_LAST_ENDPOINT, rep, &sz);
    CHECK_EQ(kvev_set_faults(b, 1.0, 0, 7), 0);
    CHECK(kvev_needs_tick(b));
    for (int i = 0; i < 3; i++) {
        kvev_removed(b, 100 + (uint64_t)i);
        CHECK_EQ(kvev_flush(w.pub, b, 1.0), 0);
    }
    struct kvev_counters c;
    kvev_counters(b, &c);
    CHECK_EQ(c.fault_dropped, 3);
    CHECK_EQ(c.published, 3);
    /* nothing reached the subscriber */
    CHECK_EQ(zmq_poll(&(zmq_pollitem_t){w.sub, 0, ZMQ_POLLIN, 0}, 1, 100), 0);
    /* ask from seq 0: the ring holds 2 batches (1, 2), then the end mark */
    void *d = zmq_socket(w.ctx, ZMQ_DEALER);
    int tmo = 2000, linger = 0;
    zmq_setsockopt(d, ZMQ_RCVTIMEO, &tmo, sizeof(tmo));
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof(linger));
    CHECK_EQ(zmq_connect(d, rep), 0);
    uint8_t start[8] = {0};
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, start, 8, 0);
    uint64_t got[4];
    int n = 0, end = 0;
    for (int spin = 0; spin < 400 && !end; spin++) {
        kvev_tick(w.pub, b, ev_now_ns());
        if (zmq_poll(&(zmq_pollitem_t){d, 0, ZMQ_POLLIN, 0}, 1, 5) <= 0)
            continue;
        char *f0, *f1, *f2;
        int more;
        recv_frame(d, &f0, &more);
        int ns = recv_frame(d, &f1, &more);
        int np = recv_frame(d, &f2, &more);
        CHECK_EQ(ns, 8);
        if (ns == 8 && be64(f1) == UINT64_MAX) {
            end = 1;
            CHECK_EQ(np, 0);
        } else if (ns == 8 && n < 4) {
            got[n++] = be64(f1);
            CHECK(np > 0);
        }
        free(f0), free(f1), free(f2);
    }
    CHECK(end);
    CHECK_EQ(n, 2);
    CHECK(n == 2 && got[0] == 1 && got[1] == 2);
    kvev_counters(b, &c);
    CHECK_EQ(c.replays, 1);
    CHECK_EQ(c.replayed, 2);
    /* delay: a batch is due later and not replayable before it is out */
    CHECK_EQ(kvev_set_faults(b, 0, 50, 7), 0);
    kvev_removed(b, 9);
    kvev_flush(w.pub, b, 1.0);
    uint64_t due = kvev_tick(w.pub, b, ev_now_ns());
    CHECK(due > ev_now_ns());
    CHECK(kvev_tick(w.pub, b, due) == 0);
    struct frames f;
    if (recv_batch(w.sub, &f) == 0)
        CHECK_EQ(be64(f.seq), 3);
    frames_free(&f);
    zmq_close(d);
    kvev_batch_free(b);
    wire_close(&w);
}

int main(void)
{
    RUN(coalescing);
    RUN(pending_cap_drops_and_counts);
    RUN(open_errors);
    RUN(batch_on_the_wire);
    RUN(two_batches_one_socket);
    RUN(replay_and_drop_fault);
    return harness_done();
}
