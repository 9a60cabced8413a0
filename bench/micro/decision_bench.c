/* decision_bench: the cost of kvgated's per-request routing decision
 * (prefix-index lookup + policy_pick) on a synthetic fleet, as gw_route
 * (user/gateway/route.c) makes it, with the routing core linked as is.
 *
 * Build (from the repository root; bench/overhead/overhead.mk does the same):
 *   gcc -O2 -g -std=gnu11 -D_GNU_SOURCE -Iuser bench/micro/decision_bench.c \
 *       user/core/policy.c user/core/prefix_index.c user/core/podtable.c \
 *       user/core/fingerprint.c user/core/bodyscan.c \
 *       -o build/decision_bench -lxxhash -lpthread
 * Run:
 *   build/decision_bench [--pods 8,64,512] [--requests N] [--repeats R]
 *                        [--groups G] [--json FILE] [--quick]
 *
 * The fleet: N pods serving one base model (half of them also four LoRA
 * adapters), healthy, fresh metrics, varied load: queue 0-6 waiting (some
 * at or above the saturation threshold of 5), KV usage 0.05-0.9 (some at or
 * above 0.8), 0-24 requests in flight at the gateway. The prefix index is
 * built as kvgated builds it: pidx_new(POD_MAX, 2,000,000 entries, 27,000
 * blocks a pod), then populated by routing 30,000 earlier requests through
 * the same lookup + policy_pick + pidx_insert, so which pods hold which
 * prefixes is what prefix-aware routing itself produces.
 *
 * Requests: real chat-completion bodies run through bodyscan + fingerprint
 * (64-byte blocks, 256 blocks at most), as gw_scan does. 90% reuse one of
 * G = 150 system prompts (2-15 KB, so 32-240 shared blocks) followed by a
 * unique question, padded past 16 KB so that every request has the full 256
 * fingerprint blocks; 10% share nothing; 10% name an adapter.
 *
 * Timed per request (CLOCK_MONOTONIC, vDSO): pidx_lookup (including the
 * memset of the POD_MAX-entry match array, as route.c), policy_pick, and
 * pidx_insert of the request's keys into the chosen pod's LRU, which
 * gw_route does on the request path right after the pick. "decision" =
 * lookup + pick (the target: p99 <= 5 us at 64 pods); "route" adds the
 * insert and the snapshot reference (snapshot_get / snapshot_put).
 * In-flight counters and the random bits change between requests (not
 * timed). Each fleet is measured `repeats` times (fresh index each time);
 * the report gives the median of each percentile over the repeats.
 *
 * "hot" runs the requests back to back (the index's hot part stays in the
 * CPU caches); "polluted" writes a 2 MiB buffer between requests (a quarter
 * as many requests), as the gateway's own work between two decisions
 * (reading and scanning a body, relaying answers) would, so the lookup's
 * bucket and entry reads miss L1/L2.
 *
 * Also measured: bodyscan + fingerprint + fp_keys per body (1 KiB and
 * 220 KiB), the per-request work that comes before the decision. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bodyscan.h"
#include "core/fingerprint.h"
#include "core/podtable.h"
#include "core/policy.h"
#include "core/prefix_index.h"

#define MODEL "meta-llama/Llama-3.1-8B-Instruct"
#define BLOCK_BYTES 64
#define MAX_BLOCKS 256
#define INDEX_ENTRIES 2000000u
#define POD_CAPACITY 27000u /* kvgated's default: 27,000 x 16 tokens x 4 B / 64 B */
#define WARM_REQUESTS 30000
#define POLLUTE_BYTES (2u << 20)

/* ---- small helpers ---- */

static uint64_t rng_s = 0x243F6A8885A308D3ull;
static uint64_t rnd(void)
{
    uint64_t z = (rng_s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rnd01(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }

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

struct pct { double mean, p50, p90, p99, p999, max; };

/* closest-rank interpolation, as loadgen (numpy's default) */
static double at(const uint64_t *v, size_t n, double p)
{
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)h;
    double f = h - (double)lo;
    return lo + 1 < n ? (double)v[lo] + f * (double)(v[lo + 1] - v[lo]) : (double)v[lo];
}

static struct pct percentiles(uint64_t *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_u64);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)v[i];
    return (struct pct){sum / (double)n / 1e3, at(v, n, 50) / 1e3, at(v, n, 90) / 1e3,
                        at(v, n, 99) / 1e3, at(v, n, 99.9) / 1e3, (double)v[n - 1] / 1e3};
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_d);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- bodies ---- */

static void words(char *out, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(s >> 33) % 32;
        out[i] = r < 26 ? (char)('a' + r) : ' ';
    }
}

/* {"model":..., "messages":[{"role":"system","content":SYS},
 *  {"role":"user","content":Q}], "max_tokens":16} */
static size_t make_body(char *buf, size_t cap, const char *model, const char *sys,
                        size_t syslen, const char *q, size_t qlen)
{
    size_t n = (size_t)snprintf(buf, cap,
                                "{\"model\":\"%s\",\"messages\":[{\"role\":\"system\",\"content\":\"",
                                model);
    memcpy(buf + n, sys, syslen);
    n += syslen;
    n += (size_t)snprintf(buf + n, cap - n, "\"},{\"role\":\"user\",\"content\":\"");
    memcpy(buf + n, q, qlen);
    n += qlen;
    n += (size_t)snprintf(buf + n, cap - n, "\"}],\"max_tokens\":16,\"ignore_eos\":true}");
    return n;
}

/* as gw_scan_new + gw_scan_feed + gw_scan_finish: keys of one body */
struct scan { struct bodyscan bs; struct fingerprint fp; };

static int scan_keys(struct scan *s, const char *body, size_t len, uint64_t *keys,
                     uint32_t *nkeys)
{
    fp_init(&s->fp, BLOCK_BYTES, MAX_BLOCKS);
    bodyscan_init(&s->bs, fp_feed_cb, &s->fp);
    if (bodyscan_feed(&s->bs, body, len) || bodyscan_finish(&s->bs))
        return -1;
    uint64_t mk = fp_model_key(s->bs.model, s->bs.model_len, s->bs.cache_salt,
                               s->bs.has_cache_salt ? s->bs.cache_salt_len : 0);
    *nkeys = (uint32_t)fp_keys(&s->fp, mk, keys);
    return 0;
}

/* ---- the workload: prefix groups, requests as key lists ---- */

struct group { char *sys; size_t len; };

struct req {
    uint32_t nkeys;
    const char *model;
    uint64_t keys[MAX_BLOCKS];
};

static const char *ADAPTERS[4] = {"sql-lora", "chat-lora", "code-lora", "summ-lora"};

static struct group *make_groups(int g)
{
    struct group *gs = calloc((size_t)g, sizeof(*gs));
    for (int i = 0; i < g; i++) {
        gs[i].len = (size_t)(32 + rnd() % 209) * BLOCK_BYTES; /* 32..240 blocks */
        gs[i].sys = malloc(gs[i].len);
        words(gs[i].sys, gs[i].len, 1000 + (uint64_t)i);
    }
    return gs;
}

static uint64_t qseed = 1;

static void make_req(struct req *r, struct group *gs, int ng, char *body, struct scan *sc)
{
    static char q[20000], sys[1];
    int shared = rnd01() < 0.9;
    const char *model = rnd01() < 0.1 ? ADAPTERS[rnd() % 4] : MODEL;
    const struct group *g = shared ? &gs[rnd() % (uint64_t)ng] : NULL;
    size_t qlen = 17000; /* past 16 KiB of prompt: all 256 blocks */
    words(q, qlen, 0xABCDEF00ull + qseed++);
    size_t n = make_body(body, 40000, model, g ? g->sys : sys, g ? g->len : 0, q, qlen);
    if (scan_keys(sc, body, n, r->keys, &r->nkeys)) {
        fprintf(stderr, "decision_bench: bodyscan rejected a generated body\n");
        exit(1);
    }
    r->model = model;
}

/* ---- the fleet ---- */

static struct pod_snapshot *make_fleet(uint32_t npods, uint64_t now)
{
    struct pod_snapshot *s = snapshot_new(npods);
    for (uint32_t i = 0; i < npods; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = i;
        snprintf(p->name, sizeof(p->name), "pod-%u", i);
        snprintf(p->host, sizeof(p->host), "10.%u.%u.%u", i >> 16 & 255, i >> 8 & 255, i & 255);
        p->port = 8000;
        p->healthy = 1;
        p->metrics_ok = 1;
        p->nmodels = 1;
        snprintf(p->models[0], POD_MODEL_MAX, "%s", MODEL);
        if (i % 2) {
            p->nadapters = 4;
            for (int a = 0; a < 4; a++)
                snprintf(p->adapters[a], POD_MODEL_MAX, "%s", ADAPTERS[a]);
            p->running_loras = rnd() & 15;
        }
        p->waiting = (double)(rnd() % 7);       /* 5 and 6: saturated */
        p->running = (double)(rnd() % 64);
        p->kv_usage = 0.05 + 0.85 * rnd01();    /* >= 0.8: saturated */
        p->scraped_ns = now - rnd() % 100000000ull; /* fresh (stale_ms 200) */
        p->cache_tokens = 27000 * 16;
    }
    return s;
}

static void jitter_load(struct pod_counters *cnt, uint32_t npods)
{
    /* a few pods' in-flight counts move between two requests */
    for (int k = 0; k < 4; k++)
        atomic_store(&cnt->inflight[rnd() % npods], (unsigned)(rnd() % 25));
}

/* ---- one measurement ---- */

struct result {
    uint32_t npods;
    const char *mode;
    struct pct lookup, pick, decision, insert, route;
    double index_entries, hit_share, mean_match;
};

static volatile uint64_t sink;

static void pollute(uint8_t *buf)
{
    uint64_t x = 0;
    for (size_t i = 0; i < POLLUTE_BYTES; i += 64) {
        buf[i]++;
        x += buf[i];
    }
    sink += x;
}

static struct result run_fleet(uint32_t npods, int ngroups, int nreq, int polluted,
                               struct req *reqs, struct group *gs, uint8_t *pbuf)
{
    struct result res = {.npods = npods, .mode = polluted ? "polluted" : "hot"};
    uint64_t now = now_ns();
    struct pod_snapshot *s = make_fleet(npods, now);
    snapshot_publish(s);
    struct prefix_index *x = pidx_new(POD_MAX, INDEX_ENTRIES, POD_CAPACITY);
    if (!x) {
        fprintf(stderr, "decision_bench: pidx_new: %s\n", strerror(errno));
        exit(1);
    }
    static struct pod_counters cnt;
    memset(&cnt, 0, sizeof(cnt));
    for (uint32_t i = 0; i < npods; i++)
        atomic_store(&cnt.inflight[i], (unsigned)(rnd() % 25));
    struct policy_cfg cfg;
    policy_defaults(&cfg);
    struct policy_state st;
    atomic_init(&st.rr, 0);
    static uint16_t match[POD_MAX];

    /* history: route the warm-up requests through the same path */
    for (int i = 0; i < WARM_REQUESTS; i++) {
        struct req *r = &reqs[i];
        struct route_decision d;
        struct route_input in = {.model = r->model, .nkeys = r->nkeys, .match = match,
                                 .session_slot = -1, .rand = rnd(), .now_ns = now,
                                 .exclude_slot = UINT32_MAX};
        pidx_lookup(x, r->keys, r->nkeys, match);
        policy_pick(&cfg, s, &cnt, &st, &in, &d);
        if (d.status == ROUTE_OK)
            pidx_insert(x, s->pods[d.idx].slot, r->keys, r->nkeys);
        jitter_load(&cnt, npods);
    }
    uint64_t entries = 0;
    for (uint32_t p = 0; p < npods; p++)
        entries += pidx_pod_blocks(x, p);
    res.index_entries = (double)entries;

    uint64_t *tl = malloc(sizeof(uint64_t) * (size_t)nreq), *tp = malloc(sizeof(uint64_t) * (size_t)nreq),
             *td = malloc(sizeof(uint64_t) * (size_t)nreq), *ti = malloc(sizeof(uint64_t) * (size_t)nreq),
             *tr = malloc(sizeof(uint64_t) * (size_t)nreq);
    uint64_t hits = 0, matched = 0;
    if (polluted)
        nreq /= 4;
    for (int i = 0; i < nreq; i++) {
        /* measured requests are the later part of the same stream */
        struct req *r = &reqs[WARM_REQUESTS + i];
        jitter_load(&cnt, npods);
        uint64_t rbits = rnd();
        if (polluted)
            pollute(pbuf);
        struct route_decision d;
        uint64_t t0 = now_ns();
        struct pod_snapshot *snap = snapshot_get();
        uint64_t t1 = now_ns();
        memset(match, 0, sizeof(match)); /* route.c's match[POD_MAX] */
        uint32_t best = pidx_lookup(x, r->keys, r->nkeys, match);
        uint64_t t2 = now_ns();
        struct route_input in = {.model = r->model, .nkeys = r->nkeys, .match = match,
                                 .session_slot = -1, .rand = rbits, .now_ns = now,
                                 .exclude_slot = UINT32_MAX};
        policy_pick(&cfg, snap, &cnt, &st, &in, &d);
        uint64_t t3 = now_ns();
        uint32_t slot = d.status == ROUTE_OK ? snap->pods[d.idx].slot : 0;
        snapshot_put(snap);
        if (d.status == ROUTE_OK)
            pidx_insert(x, slot, r->keys, r->nkeys);
        uint64_t t4 = now_ns();
        tl[i] = t2 - t1;
        tp[i] = t3 - t2;
        td[i] = t3 - t1;
        ti[i] = t4 - t3;
        tr[i] = t4 - t0;
        hits += best > 0;
        matched += d.prefix_blocks;
    }
    res.lookup = percentiles(tl, (size_t)nreq);
    res.pick = percentiles(tp, (size_t)nreq);
    res.decision = percentiles(td, (size_t)nreq);
    res.insert = percentiles(ti, (size_t)nreq);
    res.route = percentiles(tr, (size_t)nreq);
    res.hit_share = (double)hits / nreq;
    res.mean_match = (double)matched / nreq;
    free(tl), free(tp), free(td), free(ti), free(tr);
    pidx_free(x);
    snapshot_publish(snapshot_new(0)); /* drops s */
    (void)ngroups;
    return res;
}

/* ---- bodyscan + fingerprint cost ---- */

struct scanres { size_t bytes; double us_p50, us_p99, mb_s; };

static struct scanres scan_cost(size_t size, int reps)
{
    char *sys = malloc(size), *body = malloc(size + 512);
    words(sys, size, 77);
    size_t n = make_body(body, size + 512, MODEL, sys, size - 200, "why?", 4);
    struct scan *sc = malloc(sizeof(*sc));
    uint64_t keys[MAX_BLOCKS], *t = malloc(sizeof(uint64_t) * (size_t)reps);
    uint32_t nk;
    for (int i = 0; i < reps; i++) {
        uint64_t t0 = now_ns();
        if (scan_keys(sc, body, n, keys, &nk))
            exit(1);
        t[i] = now_ns() - t0;
    }
    struct pct p = percentiles(t, (size_t)reps);
    struct scanres r = {n, p.p50, p.p99, (double)n / p.p50};
    free(sys), free(body), free(sc), free(t);
    return r;
}

/* ---- main ---- */

static void print_pct_json(FILE *f, const char *name, const struct pct *p, int last)
{
    fprintf(f, "\"%s\":{\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p99.9\":%.3f,\"max\":%.3f}%s",
            name, p->mean, p->p50, p->p90, p->p99, p->p999, p->max, last ? "" : ",");
}

/* median of each field over the repeats */
static struct pct med_pct(struct pct *v, int n)
{
    double a[64];
    struct pct m;
#define MED(f) do { for (int i = 0; i < n; i++) a[i] = v[i].f; m.f = median(a, n); } while (0)
    MED(mean); MED(p50); MED(p90); MED(p99); MED(p999); MED(max);
#undef MED
    return m;
}

int main(int argc, char **argv)
{
    char pods_arg[128] = "8,64,512";
    int nreq = 50000, repeats = 3, ngroups = 150;
    const char *json = NULL;
    static const struct option opts[] = {
        {"pods", 1, 0, 'p'}, {"requests", 1, 0, 'n'}, {"repeats", 1, 0, 'r'},
        {"groups", 1, 0, 'g'}, {"json", 1, 0, 'j'}, {"quick", 0, 0, 'q'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'p': snprintf(pods_arg, sizeof(pods_arg), "%s", optarg); break;
        case 'n': nreq = atoi(optarg); break;
        case 'r': repeats = atoi(optarg); break;
        case 'g': ngroups = atoi(optarg); break;
        case 'j': json = optarg; break;
        case 'q': nreq = 20000; repeats = 3; break;
        default:
            fprintf(stderr, "usage: decision_bench [--pods 8,64,512] [--requests N] "
                            "[--repeats R] [--groups G] [--json FILE] [--quick]\n");
            return 2;
        }
    }
    if (nreq < 1000 || repeats < 1 || repeats > 64 || ngroups < 1) {
        fprintf(stderr, "decision_bench: need --requests >= 1000, 1 <= --repeats <= 64, --groups >= 1\n");
        return 2;
    }
    uint32_t fleet[16];
    int nf = 0;
    for (char *save, *t = strtok_r(pods_arg, ",", &save); t && nf < 16; t = strtok_r(NULL, ",", &save)) {
        long v = atol(t);
        if (v < 1 || v > POD_MAX) {
            fprintf(stderr, "decision_bench: --pods: 1..%d\n", POD_MAX);
            return 2;
        }
        fleet[nf++] = (uint32_t)v;
    }

    /* the request stream: enough distinct requests for warm-up + measurement */
    int nstream = nreq + WARM_REQUESTS;
    struct req *reqs = malloc(sizeof(struct req) * (size_t)nstream);
    struct group *gs = make_groups(ngroups);
    char *body = malloc(40000);
    struct scan *sc = malloc(sizeof(*sc));
    for (int i = 0; i < nstream; i++)
        make_req(&reqs[i], gs, ngroups, body, sc);
    uint8_t *pbuf = calloc(1, POLLUTE_BYTES);

    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        fprintf(stderr, "decision_bench: %s: %s\n", json, strerror(errno));
        return 1;
    }
    if (jf)
        fprintf(jf, "{\"requests\":%d,\"repeats\":%d,\"groups\":%d,\"block_bytes\":%d,"
                    "\"max_blocks\":%d,\"index_entries_max\":%u,\"pod_capacity_blocks\":%u,"
                    "\"fleets\":[", nreq, repeats, ngroups, BLOCK_BYTES, MAX_BLOCKS,
                INDEX_ENTRIES, POD_CAPACITY);
    printf("decision time (us), median over %d repeats of %d requests; 256-block fingerprints, %d prefix groups\n",
           repeats, nreq, ngroups);
    printf("%-5s %-9s %9s %9s %9s %9s | %9s %9s | %9s %9s | %8s %6s %6s\n", "pods", "caches",
           "dec p50", "dec p99", "dec p99.9", "dec mean", "lookup99", "pick p99", "insert50",
           "route p99", "entries", "hit%", "match");
    int first = 1;
    for (int f = 0; f < nf; f++) {
        for (int polluted = 0; polluted <= 1; polluted++) {
            struct result rs[64];
            for (int r = 0; r < repeats; r++)
                rs[r] = run_fleet(fleet[f], ngroups, nreq, polluted, reqs, gs, pbuf);
            struct pct v[64];
            struct result m = rs[0];
#define MEDF(field) do { for (int r = 0; r < repeats; r++) v[r] = rs[r].field; m.field = med_pct(v, repeats); } while (0)
            MEDF(lookup); MEDF(pick); MEDF(decision); MEDF(insert); MEDF(route);
#undef MEDF
            printf("%-5u %-9s %9.2f %9.2f %9.2f %9.2f | %9.2f %9.2f | %9.2f %9.2f | %8.0f %5.0f%% %6.1f\n",
                   m.npods, m.mode, m.decision.p50, m.decision.p99, m.decision.p999,
                   m.decision.mean, m.lookup.p99, m.pick.p99, m.insert.p50, m.route.p99,
                   m.index_entries, m.hit_share * 100, m.mean_match);
            fflush(stdout);
            if (jf) {
                fprintf(jf, "%s{\"pods\":%u,\"caches\":\"%s\",\"index_entries\":%.0f,"
                            "\"hit_share\":%.4f,\"mean_match_blocks\":%.2f,",
                        first ? "" : ",", m.npods, m.mode, m.index_entries, m.hit_share,
                        m.mean_match);
                print_pct_json(jf, "decision_us", &m.decision, 0);
                print_pct_json(jf, "lookup_us", &m.lookup, 0);
                print_pct_json(jf, "pick_us", &m.pick, 0);
                print_pct_json(jf, "insert_us", &m.insert, 0);
                print_pct_json(jf, "route_us", &m.route, 1);
                fprintf(jf, ",\"decision_p99_per_repeat\":[");
                for (int r = 0; r < repeats; r++)
                    fprintf(jf, "%s%.3f", r ? "," : "", rs[r].decision.p99);
                fprintf(jf, "]}");
                first = 0;
            }
        }
    }
    printf("\nbody scan + fingerprint (bodyscan_feed/finish, fp_feed, fp_keys), per body:\n");
    if (jf)
        fprintf(jf, "],\"scan\":[");
    size_t sizes[2] = {1024, 225280};
    for (int i = 0; i < 2; i++) {
        struct scanres s = scan_cost(sizes[i], sizes[i] > 10000 ? 2000 : 20000);
        printf("  %7zu bytes: p50 %8.2f us, p99 %8.2f us, %6.0f MB/s\n", s.bytes, s.us_p50,
               s.us_p99, s.mb_s);
        if (jf)
            fprintf(jf, "%s{\"bytes\":%zu,\"p50_us\":%.3f,\"p99_us\":%.3f,\"mb_per_s\":%.1f}",
                    i ? "," : "", s.bytes, s.us_p50, s.us_p99, s.mb_s);
    }
    if (jf) {
        fprintf(jf, "]}\n");
        fclose(jf);
    }
    return 0;
}
