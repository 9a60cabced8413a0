/* kvev_bench: how many KV events per second one thread absorbs, from the
 * payload bytes of a ZMQ frame to the exact index (issue 11, "Event
 * ingestion"): kvev_decode + kvx_seq_check + kvx_apply, as the subscriber
 * thread runs them (the ZMQ receive itself is not timed).
 *
 * An event is one block (a BlockStored of 1 block = 1 event, of 8 blocks =
 * 8, a BlockRemoved of n hashes = n), as the issue counts them. The stream
 * is pre-encoded with msgpack-c (what podsim publishes with) so only the
 * gateway's side is timed: `pods` pods, batches as an engine step makes
 * them (a few BlockStored chains of 16-token blocks, some chained to an
 * earlier batch's block through parent_block_hash, and the removals that
 * keep each pod's cache at its capacity), in each shape:
 *   chains8   BlockStored of 8 blocks, BlockRemoved of 8 hashes
 *   single    BlockStored of 1 block each (every one chained to the last)
 *   newest    chains8 in vLLM's newest map form (medium, lora_name,
 *             extra_keys, group_idx, kv_cache_spec_kind per event)
 * Medians over repeats.
 *
 * Then the reader's side: kvx_lookup of a request's chain (what the router
 * will call per request) against pods that hold a shared prefix of it and
 * their own continuations, for chains of 64 and 2048 blocks (1k and 32k
 * tokens): confirmed entries only, with predictions, and in a table sized
 * for 4M entries (its slots spread over 128 MB: cache misses).
 *
 *   build/kvev_bench [--pods 8] [--events 2000000] [--repeats 5] [--json FILE]
 */
#include "core/blockkey.h"
#include "core/kvev_decode.h"
#include "core/kvindex.h"
#include "kvev_pack.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BS 16
#define CAPACITY 20000 /* blocks a pod holds: removals keep it there */

struct frame {
    uint32_t pod;
    uint64_t seq;
    size_t off, len;
};

struct stream {
    char *buf;
    size_t len, cap;
    struct frame *f;
    size_t nf, fcap;
    uint64_t events;
};

static void put_frame(struct stream *s, uint32_t pod, uint64_t seq, const struct kp *k)
{
    if (s->len + k->sb.size > s->cap) {
        s->cap = (s->cap + k->sb.size) * 2;
        s->buf = realloc(s->buf, s->cap);
    }
    if (s->nf == s->fcap) {
        s->fcap = s->fcap ? s->fcap * 2 : 1024;
        s->f = realloc(s->f, s->fcap * sizeof(*s->f));
    }
    memcpy(s->buf + s->len, k->sb.data, k->sb.size);
    s->f[s->nf++] = (struct frame){pod, seq, s->len, k->sb.size};
    s->len += k->sb.size;
}

enum shape { CHAINS8, SINGLE, NEWEST };
static const char *SHAPE[] = {"chains8", "single", "newest"};

/* Per pod: the chain being extended and the FIFO of stored hashes. */
struct podgen {
    uint64_t next_hash, seq, last;
    uint64_t *fifo;
    size_t head, n;
};

static void build(struct stream *s, enum shape sh, uint32_t pods, uint64_t target)
{
    struct podgen *g = calloc(pods, sizeof(*g));
    uint32_t tok[8 * BS];
    struct kp k;
    kp_init(&k);
    for (uint32_t p = 0; p < pods; p++) {
        g[p].next_hash = ((uint64_t)p << 40) + 1;
        g[p].fifo = malloc(CAPACITY * 2 * sizeof(uint64_t));
    }
    uint64_t r = 88172645463325252ull;
    while (s->events < target) {
        uint32_t p = (uint32_t)(s->nf % pods);
        struct podgen *q = &g[p];
        kp_reset(&k);
        uint32_t per = sh == SINGLE ? 1 : 8;
        uint32_t nstore = sh == SINGLE ? 16 : 4; /* events stored per batch */
        uint32_t nrem = q->n + nstore * per > CAPACITY ? nstore : 0;
        kp_batch(&k, 1.0, nstore + nrem);
        for (uint32_t e = 0; e < nstore; e++) {
            uint64_t h[8];
            for (uint32_t i = 0; i < per * BS; i++) {
                r ^= r << 13, r ^= r >> 7, r ^= r << 17;
                tok[i] = (uint32_t)(r % 128000);
            }
            for (uint32_t i = 0; i < per; i++) {
                h[i] = q->next_hash++;
                q->fifo[(q->head + q->n++) % (CAPACITY * 2)] = h[i];
            }
            /* single: each block extends the previous one; chains: half
             * start at the root, half extend the last chain */
            int chained = sh == SINGLE ? q->last != 0 : (e & 1) && q->last;
            struct kp_stored st = {.hashes = h, .n = per, .has_parent = chained,
                                   .parent = q->last, .tokens = tok, .ntokens = per * BS,
                                   .block_size = BS};
            if (sh == NEWEST) {
                st.medium = "GPU";
                st.map = 1;
            }
            kp_stored(&k, &st);
            q->last = h[per - 1];
            if (sh == SINGLE && q->n % 64 == 0)
                q->last = 0; /* a new chain now and then */
        }
        for (uint32_t e = 0; e < nrem; e++) {
            uint64_t h[8];
            for (uint32_t i = 0; i < per; i++) {
                h[i] = q->fifo[q->head];
                q->head = (q->head + 1) % (CAPACITY * 2);
                q->n--;
            }
            kp_removed(&k, h, per);
        }
        s->events += (uint64_t)(nstore + nrem) * per;
        put_frame(s, p, q->seq++, &k);
    }
    for (uint32_t p = 0; p < pods; p++)
        free(g[p].fifo);
    free(g);
    kp_free(&k);
}

static double now_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One pass over the stream into a fresh index: events/s (wall), CPU s. */
static void run(const struct stream *s, uint32_t pods, double *eps, double *cpu)
{
    struct kvindex *x = kvx_new(pods, pods * (CAPACITY + 1024), CAPACITY + 1024);
    struct kvev_decoder d;
    kvev_decoder_init(&d);
    for (uint32_t p = 0; p < pods; p++)
        kvx_pod_enable(x, p, bk_model_root("meta-llama/Llama-3.1-8B-Instruct", 32));
    double t0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t bad = 0;
    for (size_t i = 0; i < s->nf; i++) {
        const struct frame *f = &s->f[i];
        const struct kvev_batch *b;
        enum kvx_seq r = kvx_seq_check(x, f->pod, f->seq);
        if (r != KVX_SEQ_APPLY && r != KVX_SEQ_RESTART)
            continue;
        if (kvev_decode(&d, s->buf + f->off, f->len, &b)) {
            bad++;
            continue;
        }
        kvx_apply(x, f->pod, b);
    }
    double t1 = now_s(CLOCK_MONOTONIC), c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    struct kvx_pod_stats st;
    kvx_pod_stats(x, 0, &st);
    if (bad || st.unknown_parents || st.capped || st.mode != KVX_EXACT)
        fprintf(stderr, "kvev_bench: bad %llu unknown_parents %llu capped %llu mode %s\n",
                (unsigned long long)bad, (unsigned long long)st.unknown_parents,
                (unsigned long long)st.capped, kvx_mode_name(st.mode));
    *eps = (double)s->events / (t1 - t0);
    *cpu = c1 - c0;
    kvev_decoder_free(&d);
    kvx_free(x);
}

/* Per-lookup time (ns, median of repeats) for a chain of n blocks: pod p
 * holds the first n * (p + 1) / (pods + 1) blocks of it. */
static double lookup_ns(uint32_t pods, uint32_t n, uint32_t repeats, int preds, int big)
{
    struct kvindex *x = kvx_new(pods, big ? 1u << 22 : pods * n + 1024, n + 1024);
    struct kvev_decoder d;
    struct kp k;
    kvev_decoder_init(&d);
    kp_init(&k);
    uint64_t root = bk_model_root("m", 1);
    uint32_t *tok = malloc((size_t)n * BS * sizeof(*tok));
    uint64_t *keys = malloc((size_t)n * sizeof(*keys)), *h = malloc((size_t)n * 8);
    for (uint32_t i = 0; i < n * BS; i++)
        tok[i] = i * 2654435761u % 128000;
    bk_chain(root, tok, (size_t)n * BS, BS, NULL, keys, n);
    for (uint32_t p = 0; p < pods; p++) {
        kvx_pod_enable(x, p, root);
        uint32_t held = (uint32_t)((uint64_t)n * (p + 1) / (pods + 1));
        for (uint32_t i = 0; i < held; i++)
            h[i] = ((uint64_t)p << 32) | (i + 1);
        kp_reset(&k);
        kp_batch(&k, 1.0, 1);
        kp_stored(&k, &(struct kp_stored){.hashes = h, .n = held, .tokens = tok,
                                          .ntokens = held * BS, .block_size = BS});
        const struct kvev_batch *b;
        kvx_seq_check(x, p, 0);
        if (kvev_decode(&d, k.sb.data, k.sb.size, &b) == 0)
            kvx_apply(x, p, b);
        if (preds)
            kvx_predict(x, p, keys, n); /* predicted past what it holds */
    }
    uint16_t match[KVX_MAX_PODS];
    double v[99];
    uint32_t iters = n > 256 ? 2000 : 50000;
    for (uint32_t r = 0; r < repeats; r++) {
        double t0 = now_s(CLOCK_MONOTONIC);
        uint32_t best = 0;
        for (uint32_t i = 0; i < iters; i++)
            best += kvx_lookup(x, keys, n, match, preds ? 0 : KVX_LOOKUP_CONFIRMED);
        double t1 = now_s(CLOCK_MONOTONIC);
        if (best != iters * (preds ? n : (uint32_t)((uint64_t)n * pods / (pods + 1))))
            fprintf(stderr, "kvev_bench: lookup found %u\n", best / iters);
        v[r] = (t1 - t0) / iters * 1e9;
    }
    qsort(v, repeats, sizeof(double), cmp_d);
    free(tok), free(keys), free(h);
    kp_free(&k);
    kvev_decoder_free(&d);
    kvx_free(x);
    return v[repeats / 2];
}

int main(int argc, char **argv)
{
    uint32_t pods = 8, repeats = 5;
    uint64_t events = 2000000;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--pods") && i + 1 < argc)
            pods = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--events") && i + 1 < argc)
            events = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = (uint32_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc)
            json = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--pods N] [--events N] [--repeats N] [--json FILE]\n",
                    argv[0]);
            return 2;
        }
    }
    if (!pods || pods > KVX_MAX_PODS || !repeats || repeats > 99)
        return 2;
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (jf)
        fprintf(jf, "{\"pods\":%u,\"repeats\":%u,\"shapes\":{", pods, repeats);
    printf("KV-event ingestion, one thread: decode + kvindex (%u pods, median of %u)\n", pods,
           repeats);
    printf("%-8s %12s %10s %10s %12s\n", "shape", "events", "batches", "MB", "events/s");
    for (int sh = 0; sh < 3; sh++) {
        struct stream s = {0};
        build(&s, (enum shape)sh, pods, events);
        double eps[99], cpu[99];
        for (uint32_t r = 0; r < repeats; r++)
            run(&s, pods, &eps[r], &cpu[r]);
        qsort(eps, repeats, sizeof(double), cmp_d);
        double med = eps[repeats / 2];
        printf("%-8s %12llu %10zu %10.1f %12.0f\n", SHAPE[sh], (unsigned long long)s.events,
               s.nf, s.len / 1e6, med);
        if (jf)
            fprintf(jf, "%s\"%s\":{\"events\":%llu,\"batches\":%zu,\"bytes\":%zu,"
                        "\"events_per_s\":%.0f,\"min\":%.0f,\"max\":%.0f}",
                    sh ? "," : "", SHAPE[sh], (unsigned long long)s.events, s.nf, s.len, med,
                    eps[0], eps[repeats - 1]);
        free(s.buf);
        free(s.f);
    }
    printf("\nkvx_lookup, %u pods holding 1/%u .. %u/%u of the chain (median of %u)\n", pods,
           pods + 1, pods, pods + 1, repeats);
    printf("%-8s %14s %16s %18s\n", "blocks", "confirmed ns", "with predictions",
           "4M-entry table ns");
    if (jf)
        fprintf(jf, "},\"lookup_ns\":{");
    static const uint32_t lens[] = {64, 2048};
    for (int i = 0; i < 2; i++) {
        double c = lookup_ns(pods, lens[i], repeats, 0, 0);
        double p = lookup_ns(pods, lens[i], repeats, 1, 0);
        double b = lookup_ns(pods, lens[i], repeats, 0, 1);
        printf("%-8u %14.0f %16.0f %18.0f\n", lens[i], c, p, b);
        if (jf)
            fprintf(jf, "%s\"%u\":{\"confirmed\":%.0f,\"predicted\":%.0f,\"big_table\":%.0f}",
                    i ? "," : "", lens[i], c, p, b);
    }
    if (jf) {
        fprintf(jf, "}}\n");
        fclose(jf);
    }
    return 0;
}
