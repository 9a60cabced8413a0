/* kvsub: ZMQ SUB per pod -> kvev_decode -> kvindex, with vLLM's replay on
 * gaps and the silence rule. See kvsub.h. */
#include "gateway/kvsub.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <zmq.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/log.h"
#include "core/blockkey.h"
#include "core/kvev_decode.h"

#define DRAIN_MAX 256                 /* messages per socket per round: fairness */
#define MAX_MSG_BYTES (64ll << 20)    /* ZMQ_MAXMSGSIZE: an untrusted payload's cap */
#define SILENCE_CHECK_NS (250ull * 1000 * 1000)

struct kept {
    uint64_t seq;
    void *data;
    size_t len;
};

/* Counters other threads read: relaxed atomics, one writer. */
struct spod_cnt {
    _Atomic uint64_t frames, bad_frames, live, replayed, kept, kept_overflow;
    _Atomic uint64_t replay_requests, replay_timeouts, silent_episodes, resubscribes;
    _Atomic uint64_t decode_errors;
};

struct spod {
    int active;                       /* subscribed, index enabled */
    struct kvsub_pod_cfg cfg;
    void *sub, *dealer;
    /* a replay under way */
    int replaying, replay_failed;
    uint32_t replay_rounds;        /* replays in a row that left a gap (finish_replay) */
    uint64_t replay_deadline;
    struct kept *kept;
    uint32_t nkept;
    size_t kept_bytes;
    /* silence */
    uint64_t misses_at_batch, advance_seen_ns;
    int silent, have_misses;
    uint64_t capacity;
    /* from the control thread */
    _Atomic uint64_t n_queries, n_hits, n_blocks;
    _Atomic int n_seen;
    struct spod_cnt c;
};

struct kvsub {
    struct kvindex *x;
    struct kvsub_cfg cfg;
    void *ctx;
    struct kvev_decoder dec;
    struct spod *pods;
    uint64_t next_silence_check;
    /* configuration handed over by other threads */
    pthread_mutex_t mu;
    struct kvsub_pod_cfg *pending;
    uint32_t npending;
    int have_pending;
    /* the thread */
    pthread_t th;
    int running;
    atomic_int stop;
};

#define INC(f) atomic_fetch_add_explicit(&(f), 1, memory_order_relaxed)

struct kvsub *kvsub_new(struct kvindex *x, const struct kvsub_cfg *cfg)
{
    if (!x || !cfg || !cfg->max_pods || cfg->max_pods > KVX_MAX_PODS) {
        errno = EINVAL;
        return NULL;
    }
    struct kvsub *s = kv_calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->x = x;
    s->cfg = *cfg;
    if (!s->cfg.replay_timeout_ms)
        s->cfg.replay_timeout_ms = 2000;
    if (!s->cfg.silence_ms)
        s->cfg.silence_ms = 3000;
    if (!s->cfg.silence_tokens)
        s->cfg.silence_tokens = 4096;
    pthread_mutex_init(&s->mu, NULL);
    kvev_decoder_init(&s->dec);
    s->pods = kv_calloc(cfg->max_pods, sizeof(*s->pods));
    s->ctx = zmq_ctx_new();
    if (!s->pods || !s->ctx) {
        kvsub_free(s);
        errno = ENOMEM;
        return NULL;
    }
    return s;
}

/* ---- sockets ---- */

static void *open_sock(struct kvsub *s, int type, const char *ep, const char *topic)
{
    void *k = zmq_socket(s->ctx, type);
    int linger = 0, hwm = 100000;
    int64_t maxmsg = MAX_MSG_BYTES;
    if (!k)
        return NULL;
    zmq_setsockopt(k, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(k, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(k, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
    if (type == ZMQ_SUB)
        zmq_setsockopt(k, ZMQ_SUBSCRIBE, topic, strlen(topic));
    if (zmq_connect(k, ep)) {
        LOG_WARN("kv events: cannot connect to %s: %s", ep, zmq_strerror(zmq_errno()));
        zmq_close(k);
        return NULL;
    }
    return k;
}

static void close_sock(void **k)
{
    if (*k)
        zmq_close(*k);
    *k = NULL;
}

static void drop_kept(struct spod *p)
{
    for (uint32_t i = 0; i < p->nkept; i++)
        kv_free(p->kept[i].data);
    p->nkept = 0;
    p->kept_bytes = 0;
}

static void pod_close(struct kvsub *s, uint32_t slot)
{
    struct spod *p = &s->pods[slot];
    close_sock(&p->sub);
    close_sock(&p->dealer);
    drop_kept(p);
    kv_free(p->kept);
    p->kept = NULL;
    p->replaying = 0;
    p->silent = 0;
    if (p->active)
        kvx_pod_disable(s->x, slot);
    __atomic_store_n(&p->active, 0, __ATOMIC_RELAXED);
}

void kvsub_free(struct kvsub *s)
{
    if (!s)
        return;
    kvsub_stop(s);
    for (uint32_t i = 0; s->pods && i < s->cfg.max_pods; i++)
        pod_close(s, i);
    kv_free(s->pods);
    kv_free(s->pending);
    kvev_decoder_free(&s->dec);
    if (s->ctx)
        zmq_ctx_term(s->ctx);
    pthread_mutex_destroy(&s->mu);
    kv_free(s);
}

/* ---- configuration ---- */

int kvsub_set_pods(struct kvsub *s, const struct kvsub_pod_cfg *pods, uint32_t n)
{
    if (!s || (n && !pods))
        return -EINVAL;
    struct kvsub_pod_cfg *c = n ? kv_malloc(n * sizeof(*c)) : NULL;
    if (n && !c)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (pods[i].slot >= s->cfg.max_pods) {
            kv_free(c);
            return -EINVAL;
        }
        c[i] = pods[i];
    }
    pthread_mutex_lock(&s->mu);
    kv_free(s->pending);
    s->pending = c;
    s->npending = n;
    s->have_pending = 1;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int same_cfg(const struct kvsub_pod_cfg *a, const struct kvsub_pod_cfg *b)
{
    return !strcmp(a->events, b->events) && !strcmp(a->replay, b->replay) &&
           !strcmp(a->topic, b->topic) && !strcmp(a->model, b->model) &&
           a->untrusted == b->untrusted;
}

static void start_replay(struct kvsub *s, uint32_t slot);

static void pod_open(struct kvsub *s, const struct kvsub_pod_cfg *c)
{
    struct spod *p = &s->pods[c->slot];
    p->cfg = *c;
    if (!c->events[0] || !c->model[0])
        return; /* nothing to subscribe to yet */
    p->sub = open_sock(s, ZMQ_SUB, c->events, c->topic);
    if (!p->sub)
        return;
    __atomic_store_n(&p->active, 1, __ATOMIC_RELAXED);
    p->have_misses = 0;
    kvx_pod_enable(s->x, c->slot, bk_model_root(c->model, strlen(c->model)));
    kvx_set_untrusted(s->x, c->slot, c->untrusted);
    if (c->replay[0]) {
        /* what came before we joined can be asked for: at once, so that a
         * pod that is idle now is known (exact) before its next batch */
        kvx_expect_from(s->x, c->slot, 0);
        start_replay(s, c->slot);
    }
    if (p->capacity)
        kvx_set_capacity(s->x, c->slot, (uint32_t)p->capacity);
}

static void apply_pending(struct kvsub *s)
{
    pthread_mutex_lock(&s->mu);
    if (!s->have_pending) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    struct kvsub_pod_cfg *c = s->pending;
    uint32_t n = s->npending;
    s->pending = NULL;
    s->npending = 0;
    s->have_pending = 0;
    pthread_mutex_unlock(&s->mu);

    uint8_t *named = kv_calloc(s->cfg.max_pods, 1);
    for (uint32_t i = 0; i < n; i++) {
        struct spod *p = &s->pods[c[i].slot];
        if (named)
            named[c[i].slot] = 1;
        if (p->active && same_cfg(&p->cfg, &c[i]))
            continue;
        pod_close(s, c[i].slot);
        pod_open(s, &c[i]);
    }
    for (uint32_t i = 0; named && i < s->cfg.max_pods; i++)
        if (!named[i] && (s->pods[i].active || s->pods[i].cfg.events[0])) {
            pod_close(s, i);
            memset(&s->pods[i].cfg, 0, sizeof(s->pods[i].cfg));
        }
    kv_free(named);
    kv_free(c);
}

void kvsub_note_scrape(struct kvsub *s, uint32_t slot, uint64_t prefix_queries,
                       uint64_t prefix_hits, uint64_t cache_blocks)
{
    if (!s || slot >= s->cfg.max_pods)
        return;
    struct spod *p = &s->pods[slot];
    atomic_store_explicit(&p->n_queries, prefix_queries, memory_order_relaxed);
    atomic_store_explicit(&p->n_hits, prefix_hits, memory_order_relaxed);
    atomic_store_explicit(&p->n_blocks, cache_blocks, memory_order_relaxed);
    atomic_store_explicit(&p->n_seen, 1, memory_order_release);
}

/* ---- batches ---- */

static void apply_payload(struct kvsub *s, uint32_t slot, uint64_t seq, const void *d,
                          size_t n)
{
    const struct kvev_batch *b;
    if (kvev_decode(&s->dec, d, n, &b)) {
        INC(s->pods[slot].c.decode_errors);
        kvx_batch_bad(s->x, slot, seq);
        return;
    }
    kvx_apply(s->x, slot, b);
}

/* One batch in sequence order terms. Returns the index's verdict. */
static enum kvx_seq offer(struct kvsub *s, uint32_t slot, uint64_t seq, const void *d, size_t n)
{
    enum kvx_seq r = kvx_seq_check(s->x, slot, seq);
    if (r == KVX_SEQ_APPLY || r == KVX_SEQ_RESTART)
        apply_payload(s, slot, seq, d, n);
    return r;
}

static int keep(struct spod *p, uint64_t seq, const void *d, size_t n)
{
    if (p->nkept >= KVSUB_MAX_KEPT || p->kept_bytes + n > KVSUB_MAX_KEPT_BYTES) {
        INC(p->c.kept_overflow);
        return -ENOSPC;
    }
    if (!p->kept && !(p->kept = kv_malloc(KVSUB_MAX_KEPT * sizeof(*p->kept))))
        return -ENOMEM;
    void *c = kv_malloc(n ? n : 1);
    if (!c)
        return -ENOMEM;
    memcpy(c, d, n);
    p->kept[p->nkept++] = (struct kept){seq, c, n};
    p->kept_bytes += n;
    INC(p->c.kept);
    return 0;
}

static void start_replay(struct kvsub *s, uint32_t slot)
{
    struct spod *p = &s->pods[slot];
    struct kvx_pod_stats st;
    kvx_pod_stats(s->x, slot, &st);
    if (!p->dealer)
        p->dealer = open_sock(s, ZMQ_DEALER, p->cfg.replay, "");
    p->replaying = 1;
    p->replay_failed = 0;
    p->replay_deadline = ev_now_ns() + (uint64_t)s->cfg.replay_timeout_ms * 1000000ull;
    INC(p->c.replay_requests);
    uint8_t q[8];
    for (int i = 0; i < 8; i++)
        q[i] = (uint8_t)(st.next_seq >> (56 - 8 * i));
    /* DEALER: the empty delimiter a REQ would add, then the start seq */
    if (!p->dealer || zmq_send(p->dealer, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(p->dealer, q, 8, ZMQ_DONTWAIT) < 0)
        p->replay_failed = 1; /* finished at the deadline */
}

/* The replay ended (its end mark, or the deadline): the kept batches in
 * order, then the verdict. */
static void finish_replay(struct kvsub *s, uint32_t slot)
{
    struct spod *p = &s->pods[slot];
    p->replaying = 0;
    if (!p->nkept) { /* the probe at subscription: nothing live came meanwhile */
        p->replay_rounds = 0;
        if (p->replay_failed)
            kvx_gap_lost(s->x, slot, KVX_SEQ_UNKNOWN);
        else
            kvx_gap_filled(s->x, slot);
        return;
    }
    uint32_t i = 0;
    for (; i < p->nkept; i++) {
        struct kept *k = &p->kept[i];
        enum kvx_seq r = offer(s, slot, k->seq, k->data, k->len);
        if (r == KVX_SEQ_GAP)
            break; /* something before it is still missing */
    }
    if (i < p->nkept && !p->replay_failed && p->replay_rounds < KVSUB_REPLAY_ROUNDS) {
        /* The replay answered, but from what the pod's ring held when it
         * answered: a batch published after that and before our SUB
         * connection took it (a subscription's first moments) is in
         * neither. It is in the ring now: ask again from where we are,
         * keeping the batches not applied yet. */
        for (uint32_t k = 0; k < i; k++) {
            p->kept_bytes -= p->kept[k].len;
            kv_free(p->kept[k].data);
        }
        memmove(p->kept, p->kept + i, (p->nkept - i) * sizeof(*p->kept));
        p->nkept -= i;
        p->replay_rounds++;
        start_replay(s, slot);
        return;
    }
    p->replay_rounds = 0;
    if (i == p->nkept) {
        kvx_gap_filled(s->x, slot);
    } else {
        /* lost for good: start over from the first batch we have */
        kvx_gap_lost(s->x, slot, p->kept[i].seq);
        for (; i < p->nkept; i++) {
            struct kept *k = &p->kept[i];
            offer(s, slot, k->seq, k->data, k->len);
        }
    }
    drop_kept(p);
}

static void on_live(struct kvsub *s, uint32_t slot, uint64_t seq, const void *d, size_t n)
{
    struct spod *p = &s->pods[slot];
    INC(p->c.live);
    p->misses_at_batch = atomic_load_explicit(&p->n_queries, memory_order_relaxed) -
                         atomic_load_explicit(&p->n_hits, memory_order_relaxed);
    p->advance_seen_ns = 0;
    if (p->silent) {
        p->silent = 0;
        kvx_set_silent(s->x, slot, 0);
    }
    if (p->replaying) {
        keep(p, seq, d, n);
        return;
    }
    enum kvx_seq r = offer(s, slot, seq, d, n);
    if (r != KVX_SEQ_GAP)
        return;
    if (p->cfg.replay[0] && keep(p, seq, d, n) == 0) {
        start_replay(s, slot);
        return;
    }
    /* no replay: the missing batches are gone */
    kvx_gap_lost(s->x, slot, seq);
    offer(s, slot, seq, d, n);
}

static void on_replayed(struct kvsub *s, uint32_t slot, uint64_t seq, const void *d, size_t n)
{
    struct spod *p = &s->pods[slot];
    if (seq == UINT64_MAX) { /* vLLM's end mark, -1 */
        finish_replay(s, slot);
        return;
    }
    INC(p->c.replayed);
    if (offer(s, slot, seq, d, n) == KVX_SEQ_GAP)
        p->replay_failed = 1; /* the ring no longer has what we miss */
}

/* ---- receiving ---- */

static uint64_t be64(const uint8_t *q)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | q[i];
    return v;
}

/* One multipart message into parts[0..want); returns the number of parts
 * (more are read and dropped), 0 when nothing waits, -1 on error. */
static int recv_parts(void *k, zmq_msg_t *parts, int want)
{
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, k, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (n == 0 && zmq_errno() == EAGAIN)
                return 0;
            for (int i = 0; i < n && i < want; i++)
                zmq_msg_close(&parts[i]);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (n < want)
            parts[n] = m;
        else
            zmq_msg_close(&m);
        n++;
    }
    return n;
}

static void drain_sub(struct kvsub *s, uint32_t slot)
{
    struct spod *p = &s->pods[slot];
    for (int k = 0; k < DRAIN_MAX && p->sub; k++) {
        zmq_msg_t m[3];
        int n = recv_parts(p->sub, m, 3);
        if (n <= 0)
            return;
        INC(p->c.frames);
        if (n == 3 && zmq_msg_size(&m[1]) == 8)
            on_live(s, slot, be64(zmq_msg_data(&m[1])), zmq_msg_data(&m[2]),
                    zmq_msg_size(&m[2]));
        else
            INC(p->c.bad_frames);
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&m[i]);
    }
}

static void drain_dealer(struct kvsub *s, uint32_t slot)
{
    struct spod *p = &s->pods[slot];
    for (int k = 0; k < DRAIN_MAX && p->dealer && p->replaying; k++) {
        zmq_msg_t m[3];
        int n = recv_parts(p->dealer, m, 3);
        if (n <= 0)
            return;
        /* ["", seq, payload] */
        if (n == 3 && zmq_msg_size(&m[0]) == 0 && zmq_msg_size(&m[1]) == 8)
            on_replayed(s, slot, be64(zmq_msg_data(&m[1])), zmq_msg_data(&m[2]),
                        zmq_msg_size(&m[2]));
        else
            INC(p->c.bad_frames);
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&m[i]);
    }
}

/* ---- timers ---- */

static void check_timers(struct kvsub *s, uint64_t now)
{
    for (uint32_t i = 0; i < s->cfg.max_pods; i++) {
        struct spod *p = &s->pods[i];
        if (!p->active)
            continue;
        if (p->replaying && now >= p->replay_deadline) {
            /* no end mark in time: a fresh socket, so late answers to this
             * request cannot be read as answers to the next */
            INC(p->c.replay_timeouts);
            close_sock(&p->dealer);
            p->replay_failed = 1;
            finish_replay(s, i);
        }
        /* the scraped cache size: the index's limit and settle count */
        uint64_t blocks = atomic_load_explicit(&p->n_blocks, memory_order_relaxed);
        if (blocks && blocks != p->capacity) {
            p->capacity = blocks;
            kvx_set_capacity(s->x, i, blocks > UINT32_MAX ? UINT32_MAX : (uint32_t)blocks);
        }
    }
    if (now < s->next_silence_check)
        return;
    s->next_silence_check = now + SILENCE_CHECK_NS;
    for (uint32_t i = 0; i < s->cfg.max_pods; i++) {
        struct spod *p = &s->pods[i];
        if (!p->active || p->silent ||
            !atomic_load_explicit(&p->n_seen, memory_order_acquire))
            continue;
        uint64_t q = atomic_load_explicit(&p->n_queries, memory_order_relaxed);
        uint64_t h = atomic_load_explicit(&p->n_hits, memory_order_relaxed);
        uint64_t misses = q - h;
        if (!p->have_misses || misses < p->misses_at_batch) {
            /* first scrape, or the counters restarted with the pod */
            p->have_misses = 1;
            p->misses_at_batch = misses;
            p->advance_seen_ns = 0;
            continue;
        }
        if (misses - p->misses_at_batch < s->cfg.silence_tokens)
            continue;
        if (!p->advance_seen_ns) {
            p->advance_seen_ns = now;
            continue;
        }
        if (now - p->advance_seen_ns < (uint64_t)s->cfg.silence_ms * 1000000ull)
            continue;
        /* computed tokens without a stored block: events are not reaching us */
        p->silent = 1;
        INC(p->c.silent_episodes);
        kvx_set_silent(s->x, i, 1);
        LOG_WARN("kv events: pod slot %u computed %llu prompt tokens with no event for "
                 "%u ms: its index is approximate until events arrive",
                 i, (unsigned long long)(misses - p->misses_at_batch), s->cfg.silence_ms);
        close_sock(&p->sub); /* the connection may be what broke */
        p->sub = open_sock(s, ZMQ_SUB, p->cfg.events, p->cfg.topic);
        INC(p->c.resubscribes);
    }
}

/* ---- the loop ---- */

void kvsub_poll(struct kvsub *s, int timeout_ms)
{
    apply_pending(s);
    zmq_pollitem_t items[2 * KVX_MAX_PODS];
    uint32_t who[2 * KVX_MAX_PODS];
    int n = 0;
    for (uint32_t i = 0; i < s->cfg.max_pods; i++) {
        struct spod *p = &s->pods[i];
        if (p->sub) {
            items[n] = (zmq_pollitem_t){p->sub, 0, ZMQ_POLLIN, 0};
            who[n++] = i;
        }
        if (p->dealer && p->replaying) {
            items[n] = (zmq_pollitem_t){p->dealer, 0, ZMQ_POLLIN, 0};
            who[n++] = i | 0x80000000u;
        }
    }
    int rc = n ? zmq_poll(items, n, timeout_ms)
               : (nanosleep(&(struct timespec){0, (long)timeout_ms * 1000000L}, NULL), 0);
    for (int k = 0; rc > 0 && k < n; k++) {
        if (!(items[k].revents & ZMQ_POLLIN))
            continue;
        uint32_t slot = who[k] & 0x7fffffffu;
        if (who[k] & 0x80000000u)
            drain_dealer(s, slot);
        else
            drain_sub(s, slot);
    }
    check_timers(s, ev_now_ns());
}

static void *thread_main(void *arg)
{
    struct kvsub *s = arg;
    while (!atomic_load(&s->stop))
        kvsub_poll(s, 100);
    return NULL;
}

int kvsub_start(struct kvsub *s)
{
    if (!s || s->running)
        return -EINVAL;
    atomic_store(&s->stop, 0);
    int rc = pthread_create(&s->th, NULL, thread_main, s);
    if (rc)
        return -rc;
    s->running = 1;
    return 0;
}

void kvsub_stop(struct kvsub *s)
{
    if (!s || !s->running)
        return;
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    s->running = 0;
}

int kvsub_pod_stats(struct kvsub *s, uint32_t slot, struct kvsub_pod_stats *out)
{
    if (!s || slot >= s->cfg.max_pods || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    kvx_pod_stats(s->x, slot, &out->index);
    struct spod *p = &s->pods[slot];
#define RD(f) atomic_load_explicit(&p->c.f, memory_order_relaxed)
    out->configured = __atomic_load_n(&p->active, __ATOMIC_RELAXED);
    out->frames = RD(frames);
    out->bad_frames = RD(bad_frames);
    out->live_batches = RD(live);
    out->replayed_batches = RD(replayed);
    out->kept_batches = RD(kept);
    out->kept_overflow = RD(kept_overflow);
    out->replay_requests = RD(replay_requests);
    out->replay_timeouts = RD(replay_timeouts);
    out->silent_episodes = RD(silent_episodes);
    out->resubscribes = RD(resubscribes);
    out->decode_errors = RD(decode_errors);
#undef RD
    return 0;
}
