/* exact_bench: kvgated's routing decision WITH tokenizing (issue 11), as
 * the data path makes it: gw_route() itself (user/gateway/route.c), on a
 * struct gw assembled as main.c does, with a tokenizer configured and
 * every pod exact in a real exact index (fed KV-event batches through the
 * decoder). What one call does for a request the gateway has not seen:
 * cJSON parse of the body, chat rendering (or the prompt), tokenizing,
 * the block chain, kvx_lookup, the approximate lookup, the unit
 * conversion per pod, policy_pick, the credits and kvx_predict. Timed per
 * request, whole (CLOCK_MONOTONIC); the body scan before it (bodyscan +
 * fingerprint, as gw_scan does while the body arrives) is timed apart.
 * Requests run first untimed (20,000 small ones, or as many large ones as
 * are timed): they touch the tables' pages as a running gateway's are
 * (otherwise first-touch page faults dominate the small requests).
 *
 *   build/exact_bench [--pods 8,64] [--sizes 1024,225280] [--requests N]
 *                     [--tokenizer tokenizer.json --config tokenizer_config.json]
 *                     [--completions] [--json FILE]
 *
 * --completions: completions requests (the text as "prompt"), their bodies
 * fed to the scan in 16 KiB pieces as they would arrive, and the time from
 * the last piece to the decision measured both ways, request by request
 * alternately: with the prompt tokenized while the body arrived (exact.h's
 * stream, the data path's way) and with those tokens dropped so that
 * gw_route tokenizes the whole body at the end (the way before it).
 *
 * Requests: chat completions whose one user message is text of the given
 * size (words, digits, punctuation: what BPE pre-tokenizes into many
 * pieces); half of them repeat a prefix a pod holds (its events stored
 * it), so the lookup walks a long chain. Without --tokenizer: podsim's
 * pseudo-tokenizer (what the bench's pods use); with it, the real BPE. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../tests/kvev_pack.h"
#include "common/sbuf.h"
#include "core/blockkey.h"
#include "core/kvev_decode.h"
#include "core/kvindex.h"
#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/exact.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"
#include "tok/tok.h"

#define MODEL "meta-llama/Llama-3.1-8B-Instruct"
#define BS 16

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(uint64_t *v, size_t n, double p)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i < n ? i : n - 1] / 1e3;
}

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

/* Text of n bytes: words, numbers, punctuation, newlines (JSON-safe). */
static void text(char *out, size_t n, uint64_t seed)
{
    static const char *w[] = {"the", "gateway", "routes", "each", "request", "to", "a",
                              "pod", "that", "holds", "its", "prefix", "cache,", "and",
                              "tokens", "2048", "blocks.", "KV", "(exact)", "index:"};
    uint64_t s = seed | 1;
    size_t i = 0;
    while (i < n) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        const char *x = w[s % 20];
        size_t l = strlen(x);
        for (size_t k = 0; k < l && i < n; k++)
            out[i++] = x[k];
        if (i < n)
            out[i++] = s % 17 == 0 ? '.' : ' ';
    }
    out[n] = 0;
}

static int g_compl; /* --completions */

static char *compl_body(const char *content)
{
    size_t n = strlen(content) + 256;
    char *b = malloc(n);
    snprintf(b, n, "{\"model\":\"%s\",\"prompt\":\"%s\",\"max_tokens\":16}", MODEL, content);
    return b;
}

static char *chat_body(const char *content)
{
    if (g_compl)
        return compl_body(content);
    size_t n = strlen(content) + 256;
    char *b = malloc(n);
    snprintf(b, n, "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
             MODEL, content);
    return b;
}

/* The ids the pod would hold for this body (as exact.c tokenizes it). */
static void body_ids(const struct tok *t, const char *body, struct tok_ids *ids)
{
    cJSON *j = cJSON_Parse(body);
    struct sbuf s;
    sbuf_init(&s);
    const char *err;
    if (g_compl) {
        const char *pr = cJSON_GetObjectItem(j, "prompt")->valuestring;
        tok_encode(t, pr, strlen(pr), TOK_PARSE_SPECIAL | TOK_ADD_BOS, ids);
        cJSON_Delete(j);
        return;
    }
    tok_render_chat(t, cJSON_GetObjectItem(j, "messages"), 1, &s, &err);
    tok_encode(t, s.data, s.len, TOK_PARSE_SPECIAL, ids);
    sbuf_free(&s);
    cJSON_Delete(j);
}

static struct kvev_decoder D;
static uint64_t seqs[POD_MAX];

/* Pod stores blocks [0, n) of ids: its next batch(es), 256 blocks each. */
static void pod_stores(struct kvindex *x, uint32_t pod, const uint32_t *ids, size_t nblocks,
                       uint64_t tag)
{
    for (size_t from = 0; from < nblocks; from += 256) {
        size_t to = from + 256 < nblocks ? from + 256 : nblocks;
        uint64_t h[256];
        for (size_t i = from; i < to; i++)
            h[i - from] = (tag << 24) ^ ((uint64_t)pod << 48) ^ (i + 1);
        struct kp k;
        kp_init(&k);
        kp_batch(&k, 0, 1);
        kp_stored(&k, &(struct kp_stored){
                          .hashes = h, .n = (uint32_t)(to - from), .has_parent = from > 0,
                          .parent = from ? ((tag << 24) ^ ((uint64_t)pod << 48) ^ from) : 0,
                          .tokens = ids + from * BS, .ntokens = (uint32_t)((to - from) * BS),
                          .block_size = BS});
        const struct kvev_batch *b;
        kvx_seq_check(x, pod, seqs[pod]++);
        if (kvev_decode(&D, k.sb.data, k.sb.size, &b) == 0)
            kvx_apply(x, pod, b);
        kp_free(&k);
    }
}

struct row {
    uint32_t pods;
    size_t size;
    double scan_p50, scan_p99, route_p50, route_p99, route_max, tokens, exact_share;
    /* --completions: last piece to decision, streamed / tokenized at the end */
    double last_s50, last_s99, last_e50, last_e99;
};

static struct row run(uint32_t npods, size_t size, int nreq, const char *tjson,
                      const char *tcfg)
{
    struct gw g;
    memset(&g, 0, sizeof(g));
    gw_config_defaults(&g.cfg);
    g.cfg.ntokenizers = 1;
    strcpy(g.cfg.tokenizers[0].model, "*");
    if (tjson) {
        snprintf(g.cfg.tokenizers[0].file, sizeof(g.cfg.tokenizers[0].file), "%s", tjson);
        if (tcfg)
            snprintf(g.cfg.tokenizers[0].config, sizeof(g.cfg.tokenizers[0].config), "%s", tcfg);
    } else {
        g.cfg.tokenizers[0].pseudo = 1;
    }
    char err[512];
    if (gw_exact_init(&g, err, sizeof(err))) {
        fprintf(stderr, "exact_bench: %s\n", err);
        exit(1);
    }
    pthread_mutex_init(&g.policy_mu, NULL);
    g.policies = g.cfg.policies;
    g.pidx = pidx_new(POD_MAX, 2000000, 27000 * 16 / 16);
    g.sessions = session_new(1u << 16);
    g.metrics = gw_metrics_new();
    outlier_init(&g.outlier, &g.cfg.outlier);
    tokload_init(&g.tl);
    g.kvx = kvx_new(POD_MAX, 1u << 22, 27000);
    kvev_decoder_init(&D);
    memset(seqs, 0, sizeof(seqs));
    uint64_t now = now_ns();
    struct pod_snapshot *s = snapshot_new(npods);
    for (uint32_t i = 0; i < npods; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = i;
        snprintf(p->name, sizeof(p->name), "pod-%u", i);
        p->healthy = p->metrics_ok = 1;
        p->nmodels = 1;
        snprintf(p->models[0], POD_MODEL_MAX, "%s", MODEL);
        p->waiting = (double)(rnd() % 5);
        p->kv_usage = 0.1 + 0.6 * (double)(rnd() % 100) / 100;
        p->scraped_ns = now;
        p->block_size = BS;
        kvx_pod_enable(g.kvx, i, bk_model_root(MODEL, strlen(MODEL)));
    }
    snapshot_publish(s);
    const struct tok *t = gw_exact_tokenizer(&g, MODEL);
    /* every pod has published (exact, its block size known): one block each */
    uint32_t one[BS];
    for (uint32_t i = 0; i < npods; i++) {
        for (int k = 0; k < BS; k++)
            one[k] = 7 + i * BS + (uint32_t)k;
        pod_stores(g.kvx, i, one, 1, 9999);
    }
    /* 16 prefixes the pods hold (each on two pods) */
    char *buf = malloc(size + 1);
    char *pre[16];
    for (int k = 0; k < 16; k++) {
        text(buf, size, 1000 + (uint64_t)k);
        pre[k] = chat_body(buf);
        struct tok_ids ids = {0};
        body_ids(t, pre[k], &ids);
        pod_stores(g.kvx, (uint32_t)(k % npods), ids.v, ids.n / BS, (uint64_t)k);
        pod_stores(g.kvx, (uint32_t)((k + 1) % npods), ids.v, ids.n / BS, (uint64_t)k + 100);
        tok_ids_free(&ids);
    }
    uint64_t *scan = malloc(sizeof(uint64_t) * (size_t)nreq);
    uint64_t *route = malloc(sizeof(uint64_t) * (size_t)nreq);
    uint64_t *last_s = malloc(sizeof(uint64_t) * (size_t)nreq);
    uint64_t *last_e = malloc(sizeof(uint64_t) * (size_t)nreq);
    size_t ns = 0, ne = 0;
    double tokens = 0;
    int exact = 0;
    /* the first half warms the tables' pages (a running gateway's are
     * touched); the second is timed */
    int warm = size <= 65536 ? 20000 : nreq; /* as many keys touched either way */
    for (int w = 0; w < warm + nreq; w++) {
        int i = w - warm, timed = i >= 0;
        char *body;
        if (i % 2) {
            body = strdup(pre[rnd() % 16]); /* a held prefix, whole */
        } else {
            text(buf, size, 5000 + (uint64_t)w);
            body = chat_body(buf);
        }
        struct gw_request r;
        memset(&r, 0, sizeof(r));
        size_t bl = strlen(body);
        uint64_t t0 = now_ns(), tl = t0;
        struct gw_scan *sc = gw_scan_new(&g);
        if (g_compl) { /* as it arrives: 16 KiB at a time */
            for (size_t o = 0; o < bl; o += 16384) {
                tl = now_ns();
                gw_scan_feed(sc, body + o, bl - o < 16384 ? bl - o : 16384);
            }
        } else {
            gw_scan_feed(sc, body, bl);
        }
        const char *e;
        size_t off;
        gw_scan_finish(sc, &r, &e, &off);
        gw_scan_free(sc);
        int at_end = g_compl && (i / 2) % 2; /* the way before: tokenize it all now */
        if (at_end)
            gw_exact_release(&r);
        uint64_t t1 = now_ns();
        r.body = body;
        r.body_len = bl;
        gw_route(&g, &r, UINT32_MAX);
        uint64_t t2 = now_ns();
        if (timed && g_compl) {
            if (at_end)
                last_e[ne++] = t2 - tl;
            else
                last_s[ns++] = t2 - tl;
        }
        if (timed) {
            scan[i] = t1 - t0;
            route[i] = t2 - t1;
            tokens += r.prompt_tokens;
            exact += r.index_mode && !strcmp(r.index_mode, "exact");
        }
        gw_route_release(&g, &r);
        gw_exact_release(&r);
        free(body);
    }
    struct row row = {npods, size, pct(scan, (size_t)nreq, 0.5), pct(scan, (size_t)nreq, 0.99),
                      pct(route, (size_t)nreq, 0.5), pct(route, (size_t)nreq, 0.99),
                      pct(route, (size_t)nreq, 1.0), tokens / nreq, (double)exact / nreq,
                      ns ? pct(last_s, ns, 0.5) : 0, ns ? pct(last_s, ns, 0.99) : 0,
                      ne ? pct(last_e, ne, 0.5) : 0, ne ? pct(last_e, ne, 0.99) : 0};
    free(last_s);
    free(last_e);
    for (int k = 0; k < 16; k++)
        free(pre[k]);
    free(buf);
    free(scan);
    free(route);
    snapshot_publish(NULL);
    kvx_free(g.kvx);
    kvev_decoder_free(&D);
    pidx_free(g.pidx);
    session_free(g.sessions);
    gw_metrics_free(g.metrics);
    tokload_fini(&g.tl);
    gw_exact_fini(&g);
    return row;
}

int main(int argc, char **argv)
{
    const char *pods = "8,64", *sizes = "1024,225280", *tjson = NULL, *tcfg = NULL,
               *json = NULL;
    int nreq = 400;
    static const struct option opts[] = {
        {"pods", 1, 0, 'p'}, {"sizes", 1, 0, 's'}, {"requests", 1, 0, 'n'},
        {"tokenizer", 1, 0, 't'}, {"config", 1, 0, 'c'}, {"json", 1, 0, 'j'},
        {"completions", 0, 0, 'C'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'p': pods = optarg; break;
        case 's': sizes = optarg; break;
        case 'n': nreq = atoi(optarg); break;
        case 't': tjson = optarg; break;
        case 'c': tcfg = optarg; break;
        case 'j': json = optarg; break;
        case 'C': g_compl = 1; break;
        default:
            fprintf(stderr, "usage: exact_bench [--pods 8,64] [--sizes 1024,225280] "
                            "[--requests N] [--tokenizer F --config F] [--json FILE]\n");
            return 2;
        }
    }
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (jf)
        fprintf(jf, "{\"tokenizer\":\"%s\",\"rows\":[", tjson ? tjson : "pseudo");
    printf("tokenizer: %s\n%6s %8s %8s | %10s %10s | %10s %10s %10s | %8s %6s\n",
           tjson ? tjson : "podsim pseudo", "pods", "bytes", "requests", "scan p50", "scan p99",
           "route p50", "route p99", "route max", "tokens", "exact");
    int first = 1;
    char *pl = strdup(pods);
    for (char *pp = strtok(pl, ","); pp; pp = strtok(NULL, ",")) {
        char *sl = strdup(sizes), *save = NULL;
        for (char *ss = strtok_r(sl, ",", &save); ss; ss = strtok_r(NULL, ",", &save)) {
            size_t size = (size_t)atol(ss);
            int n = size > 65536 ? nreq / 4 : nreq;
            struct row r = run((uint32_t)atoi(pp), size, n, tjson, tcfg);
            printf("%6u %8zu %8d | %8.1fus %8.1fus | %8.1fus %8.1fus %8.1fus | %8.0f %5.0f%%\n",
                   r.pods, r.size, n, r.scan_p50, r.scan_p99, r.route_p50, r.route_p99,
                   r.route_max, r.tokens, r.exact_share * 100);
            if (g_compl)
                printf("       last 16 KiB piece to decision: tokenized as it arrived p50 %.1fus "
                       "p99 %.1fus | at the end p50 %.1fus p99 %.1fus\n",
                       r.last_s50, r.last_s99, r.last_e50, r.last_e99);
            if (jf)
                fprintf(jf,
                        "%s{\"pods\":%u,\"bytes\":%zu,\"requests\":%d,\"scan_us\":{\"p50\":%.2f,"
                        "\"p99\":%.2f},\"route_us\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f},"
                        "\"tokens\":%.0f,\"exact_share\":%.3f,\"completions\":%s,"
                        "\"last_piece_us\":{\"streamed\":{\"p50\":%.2f,\"p99\":%.2f},"
                        "\"at_end\":{\"p50\":%.2f,\"p99\":%.2f}}}",
                        first ? "" : ",", r.pods, r.size, n, r.scan_p50, r.scan_p99, r.route_p50,
                        r.route_p99, r.route_max, r.tokens, r.exact_share,
                        g_compl ? "true" : "false", r.last_s50, r.last_s99, r.last_e50,
                        r.last_e99);
            first = 0;
        }
        free(sl);
    }
    free(pl);
    if (jf) {
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    return 0;
}
