/* workload: generators, trace loading, multi-turn history. See workload.h. */
#include "workload.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ideal.h"
#include "prompt.h"
#include "rng.h"

/* sub-seed tags: each kind of text has its own stream */
enum {
    TAG_SYS = 1,   /* system prompt of group g */
    TAG_Q,         /* question (group, index) or unique prompt i */
    TAG_HOT,       /* the hot system prompt */
    TAG_COLD,      /* a unique system prompt */
    TAG_MT_SYS,    /* multi-turn system prompt */
    TAG_MT_USER,   /* multi-turn user turn */
    TAG_MT_ANS,    /* placeholder answer */
    TAG_PAD,       /* trace padding */
    TAG_GROUPS,    /* group interleaving permutation */
    TAG_PICK,      /* per-request choices (hot/cold, adapter) */
    TAG_POOL,      /* prefix-pool shuffle */
};

#define TRACE_BLOCK_SEED 0x6d6f6f6e63616b65ull /* "mooncake": independent of --seed */

static const char *const KIND_NAMES[] = {
    [LG_WL_SHARED_PREFIX] = "shared-prefix", [LG_WL_MULTI_TURN] = "multi-turn",
    [LG_WL_NO_SHARING] = "no-sharing",       [LG_WL_HOT_PREFIX] = "hot-prefix",
    [LG_WL_LORA_MIX] = "lora-mix",           [LG_WL_TRACE] = "trace",
    [LG_WL_PREFIX_POOL] = "prefix-pool",
};

int lg_wl_kind_parse(const char *s, enum lg_wl_kind *out)
{
    for (size_t k = 0; k < sizeof(KIND_NAMES) / sizeof(KIND_NAMES[0]); k++)
        if (!strcmp(s, KIND_NAMES[k])) {
            *out = (enum lg_wl_kind)k;
            return 0;
        }
    return -1;
}

const char *lg_wl_kind_name(enum lg_wl_kind k)
{
    return (size_t)k < sizeof(KIND_NAMES) / sizeof(KIND_NAMES[0]) ? KIND_NAMES[k] : "?";
}

static uint64_t sub(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b)
{
    return lg_mix(lg_mix(lg_mix(seed, tag), a), b);
}

void lg_trace_block(struct sbuf *b, uint64_t hash_id, uint32_t tokens)
{
    lg_text(b, lg_mix(TRACE_BLOCK_SEED, hash_id), (size_t)tokens * 4);
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- arrivals ---- */

/* Arrival times for at most max requests within the duration. */
static int arrivals(const struct lg_wl_spec *s, size_t max, double **out, size_t *n,
                    char *err, size_t errlen)
{
    if (!max) {
        if (s->duration <= 0 || s->sched.rate <= 0)
            return fail(err, errlen, "%s needs --requests (or --duration with a --rate)",
                        lg_wl_kind_name(s->kind));
        double expect = s->sched.rate * s->duration;
        /* generous: 1.5x the mean + 10 sigma (gamma: CV^2 = 1/B) */
        double b = s->sched.kind == LG_ARR_GAMMA && s->sched.burstiness > 0 ? s->sched.burstiness : 1;
        double cap = expect * 1.5 + 10 * sqrt(expect / b) + 100;
        max = cap > LG_MAX_ITEMS ? LG_MAX_ITEMS : (size_t)cap;
    }
    if (max > LG_MAX_ITEMS)
        return fail(err, errlen, "at most %u requests", LG_MAX_ITEMS);
    double *t = malloc((max ? max : 1) * sizeof(*t));
    if (!t)
        return fail(err, errlen, "out of memory for %zu arrivals", max);
    *n = lg_schedule(&s->sched, s->duration, max, t);
    *out = t;
    return 0;
}

static int alloc_items(struct lg_workload *w, size_t n, char *err, size_t errlen)
{
    w->items = calloc(n ? n : 1, sizeof(*w->items));
    w->order = calloc(n ? n : 1, sizeof(*w->order));
    if (!w->items || !w->order)
        return fail(err, errlen, "out of memory for %zu requests", n);
    w->n = n;
    return 0;
}

static int set_models(struct lg_workload *w, char *err, size_t errlen)
{
    const struct lg_wl_spec *s = &w->spec;
    w->models = calloc(LG_MAX_ADAPTERS + 1, sizeof(*w->models));
    if (!w->models)
        return fail(err, errlen, "out of memory");
    if (s->kind != LG_WL_LORA_MIX) {
        w->models[w->nmodels++] = strdup(s->model);
        return 0;
    }
    if (!s->adapters || !*s->adapters)
        return fail(err, errlen, "lora-mix needs --adapters a,b,...");
    char *list = strdup(s->adapters), *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (w->nmodels >= LG_MAX_ADAPTERS) {
            free(list);
            return fail(err, errlen, "--adapters: at most %d", LG_MAX_ADAPTERS);
        }
        w->models[w->nmodels++] = strdup(tok);
    }
    free(list);
    if (!w->nmodels)
        return fail(err, errlen, "--adapters: empty list");
    return 0;
}

/* Zipf(skew) over nmodels: index k with probability ~ 1/(k+1)^skew. */
static uint16_t zipf_pick(struct lg_rng *r, const double *cdf, uint32_t n)
{
    double u = lg_rng_uniform(r) * cdf[n - 1];
    for (uint32_t k = 0; k < n; k++)
        if (u < cdf[k])
            return (uint16_t)k;
    return (uint16_t)(n - 1);
}

/* ---- generators ---- */

static int gen_grouped(struct lg_workload *w, char *err, size_t errlen)
{
    const struct lg_wl_spec *s = &w->spec;
    if (!s->groups)
        return fail(err, errlen, "--groups must be >= 1");
    size_t natural = (size_t)s->groups * s->prompts_per_group;
    size_t max = s->requests ? s->requests : (s->duration > 0 ? 0 : natural);
    if (!max && s->duration <= 0)
        return fail(err, errlen, "--prompts-per-group must be >= 1");
    double *t;
    size_t n;
    if (arrivals(s, max, &t, &n, err, errlen) || alloc_items(w, n, err, errlen)) {
        return -1;
    }
    /* interleave: a random permutation of ceil(n/G) slots per group */
    size_t per = (n + s->groups - 1) / s->groups, nslots = per * s->groups;
    uint32_t *slot = malloc((nslots ? nslots : 1) * sizeof(*slot));
    if (!slot) {
        free(t);
        return fail(err, errlen, "out of memory");
    }
    for (size_t k = 0; k < nslots; k++)
        slot[k] = (uint32_t)k;
    struct lg_rng r;
    lg_rng_seed(&r, sub(s->seed, TAG_GROUPS, 0, 0));
    for (size_t k = nslots; k > 1; k--) {
        size_t j = (size_t)(lg_rng_next(&r) % k);
        uint32_t x = slot[k - 1];
        slot[k - 1] = slot[j];
        slot[j] = x;
    }
    double cdf[LG_MAX_ADAPTERS];
    for (uint32_t k = 0; k < w->nmodels; k++)
        cdf[k] = (k ? cdf[k - 1] : 0) + pow(k + 1.0, -s->skew);
    struct lg_rng pick;
    lg_rng_seed(&pick, sub(s->seed, TAG_PICK, 0, 0));
    for (size_t i = 0; i < n; i++) {
        struct lg_wl_item *it = &w->items[i];
        it->sched_s = t[i];
        it->a = slot[i] % s->groups;      /* group */
        it->b = slot[i] / s->groups;      /* index within the group */
        it->out_len = s->output_len;
        it->model = s->kind == LG_WL_LORA_MIX ? zipf_pick(&pick, cdf, w->nmodels) : 0;
        w->order[i] = (uint32_t)i;
    }
    w->norder = n;
    free(slot);
    free(t);
    return 0;
}

/* prefix-pool: request i sends pool prompt perm[i mod G*P], where perm is
 * one seeded shuffle of the pool (group-major: prompt p of group g is
 * g * P + p). */
static int gen_pool(struct lg_workload *w, char *err, size_t errlen)
{
    const struct lg_wl_spec *s = &w->spec;
    if (!s->groups || !s->prompts_per_group)
        return fail(err, errlen, "prefix-pool needs --groups and --prompts-per-group >= 1");
    uint64_t pool = (uint64_t)s->groups * s->prompts_per_group;
    if (pool > LG_MAX_ITEMS)
        return fail(err, errlen, "prefix-pool: groups x prompts-per-group at most %u", LG_MAX_ITEMS);
    size_t max = s->requests ? s->requests : (s->duration > 0 ? 0 : (size_t)pool);
    double *t;
    size_t n;
    if (arrivals(s, max, &t, &n, err, errlen))
        return -1;
    uint32_t *perm = malloc((size_t)pool * sizeof(*perm));
    if (!perm || alloc_items(w, n, err, errlen)) {
        free(perm);
        free(t);
        return perm ? -1 : fail(err, errlen, "out of memory");
    }
    for (uint32_t k = 0; k < pool; k++)
        perm[k] = k;
    struct lg_rng r;
    lg_rng_seed(&r, sub(s->seed, TAG_POOL, 0, 0));
    for (size_t k = (size_t)pool; k > 1; k--) {
        size_t j = (size_t)(lg_rng_next(&r) % k);
        uint32_t x = perm[k - 1];
        perm[k - 1] = perm[j];
        perm[j] = x;
    }
    for (size_t i = 0; i < n; i++) {
        struct lg_wl_item *it = &w->items[i];
        uint32_t slot = perm[i % pool];
        it->sched_s = t[i];
        it->a = slot / s->prompts_per_group; /* group */
        it->b = slot % s->prompts_per_group; /* prompt (question) of the group */
        it->out_len = s->output_len;
        w->order[i] = (uint32_t)i;
    }
    w->norder = n;
    free(perm);
    free(t);
    return 0;
}

static int gen_simple(struct lg_workload *w, char *err, size_t errlen)
{
    const struct lg_wl_spec *s = &w->spec;
    double *t;
    size_t n;
    if (arrivals(s, s->requests, &t, &n, err, errlen) || alloc_items(w, n, err, errlen))
        return -1;
    struct lg_rng pick;
    lg_rng_seed(&pick, sub(s->seed, TAG_PICK, 0, 0));
    for (size_t i = 0; i < n; i++) {
        struct lg_wl_item *it = &w->items[i];
        it->sched_s = t[i];
        it->a = s->kind == LG_WL_HOT_PREFIX && lg_rng_uniform(&pick) < s->hot_share;
        it->b = (uint32_t)i;
        it->out_len = s->output_len;
        w->order[i] = (uint32_t)i;
    }
    w->norder = n;
    free(t);
    return 0;
}

static int gen_multi_turn(struct lg_workload *w, char *err, size_t errlen)
{
    const struct lg_wl_spec *s = &w->spec;
    if (!s->sessions || !s->turns)
        return fail(err, errlen, "multi-turn needs --sessions and --turns >= 1");
    size_t max = s->sessions;
    if (s->requests && s->requests / s->turns < max)
        max = s->requests / s->turns ? s->requests / s->turns : 1;
    double *t;
    size_t ns;
    if (arrivals(s, max, &t, &ns, err, errlen))
        return -1;
    if ((uint64_t)ns * s->turns > LG_MAX_ITEMS) {
        free(t);
        return fail(err, errlen, "sessions x turns: at most %u requests", LG_MAX_ITEMS);
    }
    if (alloc_items(w, ns * s->turns, err, errlen)) {
        free(t);
        return -1;
    }
    w->answers = calloc(w->n ? w->n : 1, sizeof(*w->answers));
    if (!w->answers) {
        free(t);
        return fail(err, errlen, "out of memory");
    }
    for (size_t k = 0; k < ns; k++) {
        for (uint32_t turn = 0; turn < s->turns; turn++) {
            size_t i = k * s->turns + turn;
            struct lg_wl_item *it = &w->items[i];
            it->sched_s = turn ? -1.0 : t[k];
            it->a = (uint32_t)k;
            it->b = turn;
            it->out_len = s->output_len;
            sbuf_init(&w->answers[i]);
        }
        w->order[k] = (uint32_t)(k * s->turns);
    }
    w->norder = ns;
    free(t);
    return 0;
}

/* ---- trace ---- */

static int cmp_trace(const void *a, const void *b, void *arg)
{
    const double *ts = arg;
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (ts[x] != ts[y])
        return ts[x] < ts[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Reads one line of at most LG_TRACE_MAX_LINE bytes into buf (NUL
 * terminated, newline dropped). 1 = a line, 0 = end of file, -1 = too long,
 * -2 = a NUL byte in it, -3 = read error. */
static int trace_line(FILE *f, char *buf, size_t *len)
{
    size_t n = 0;
    int ch, got = 0;
    while ((ch = getc_unlocked(f)) != EOF) {
        got = 1;
        if (ch == '\n')
            break;
        if (ch == 0)
            return -2;
        if (n == LG_TRACE_MAX_LINE)
            return -1;
        buf[n++] = (char)ch;
    }
    if (ferror(f))
        return -3;
    buf[n] = 0;
    *len = n;
    return got;
}

/* An integer-valued JSON number in [lo, hi]. */
static int int_in(const cJSON *j, double lo, double hi)
{
    return cJSON_IsNumber(j) && isfinite(j->valuedouble) && j->valuedouble >= lo &&
           j->valuedouble <= hi && j->valuedouble == floor(j->valuedouble);
}

/* The trace is untrusted input: every line is bounded (LG_TRACE_MAX_LINE
 * bytes, LG_TRACE_MAX_HASHES_LINE ids), every field checked (integers in
 * range, hash ids exact in a double: < 2^53), the whole trace bounded
 * (LG_MAX_ITEMS requests, LG_TRACE_MAX_HASHES ids), and the first bad line
 * is reported with its number and what was expected. */
static int gen_trace(struct lg_workload *w, char *err, size_t errlen)
{
    const struct lg_wl_spec *s = &w->spec;
    if (!s->trace_path)
        return fail(err, errlen, "trace needs --trace FILE.jsonl");
    uint32_t bt = s->trace_block_tokens ? s->trace_block_tokens : LG_TRACE_BLOCK_TOKENS;
    double scale = (double)bt / LG_TRACE_BLOCK_TOKENS;
    FILE *f = fopen(s->trace_path, "r");
    if (!f)
        return fail(err, errlen, "--trace %s: %s", s->trace_path, strerror(errno));
    size_t cap = 1024, n = 0, hcap = 4096;
    double *ts = malloc(cap * sizeof(*ts));
    w->trace = malloc(cap * sizeof(*w->trace));
    w->hashes = malloc(hcap * sizeof(*w->hashes));
    char *line = malloc(LG_TRACE_MAX_LINE + 1);
    size_t len;
    long lineno = 0;
    int rc = 0, got;
    const char *P = s->trace_path;
    size_t limit = s->requests ? s->requests : LG_MAX_ITEMS;
    if (!ts || !w->trace || !w->hashes || !line)
        rc = fail(err, errlen, "out of memory reading the trace");
    while (!rc && n < limit && (got = trace_line(f, line, &len)) != 0) {
        lineno++;
        if (got < 0) {
            rc = fail(err, errlen, "--trace %s:%ld: %s", P, lineno,
                      got == -1 ? "line longer than 1 MiB" :
                      got == -2 ? "NUL byte in the line" : strerror(errno));
            break;
        }
        size_t k0 = 0;
        while (k0 < len && (line[k0] == ' ' || line[k0] == '\t' || line[k0] == '\r'))
            k0++;
        if (k0 == len || line[k0] == '#')
            continue;
        cJSON *j = cJSON_ParseWithLength(line, len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "timestamp");
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, "input_length");
        const cJSON *out = cJSON_GetObjectItemCaseSensitive(j, "output_length");
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "hash_ids");
        const char *why = NULL;
        if (!cJSON_IsObject(j))
            why = "not a JSON object";
        else if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble) || t->valuedouble < 0 ||
                 t->valuedouble > 1e15)
            why = "\"timestamp\": a number of ms in [0, 1e15]";
        else if (!int_in(in, 1, LG_TRACE_MAX_LEN))
            why = "\"input_length\": an integer in [1, 10000000]";
        else if (!int_in(out, 0, LG_TRACE_MAX_LEN))
            why = "\"output_length\": an integer in [0, 10000000]";
        else if (h && !cJSON_IsArray(h))
            why = "\"hash_ids\": an array of integers";
        else if (cJSON_GetArraySize(h) > (int)LG_TRACE_MAX_HASHES_LINE)
            why = "\"hash_ids\": at most 65536 per request";
        if (!why) {
            const cJSON *e;
            cJSON_ArrayForEach(e, h) {
                if (!int_in(e, 0, 9007199254740991.0)) {
                    why = "\"hash_ids\": integers in [0, 2^53)";
                    break;
                }
            }
        }
        if (!why && w->nhashes + (size_t)cJSON_GetArraySize(h) > LG_TRACE_MAX_HASHES)
            why = "more than 2^25 hash ids in the trace";
        if (why) {
            cJSON_Delete(j);
            rc = fail(err, errlen, "--trace %s:%ld: %s (expected {\"timestamp\", \"input_length\", "
                      "\"output_length\", \"hash_ids\": [...]} per line)", P, lineno, why);
            break;
        }
        if (n == cap) {
            cap *= 2;
            double *nts = realloc(ts, cap * sizeof(*ts));
            struct lg_trace_req *ntr = realloc(w->trace, cap * sizeof(*w->trace));
            if (nts)
                ts = nts;
            if (ntr)
                w->trace = ntr;
            if (!nts || !ntr) {
                cJSON_Delete(j);
                rc = fail(err, errlen, "out of memory reading the trace");
                break;
            }
        }
        size_t nh = (size_t)cJSON_GetArraySize(h);
        if (w->nhashes + nh > hcap) {
            size_t ncap = hcap;
            while (w->nhashes + nh > ncap)
                ncap *= 2;
            uint64_t *nhs = realloc(w->hashes, ncap * sizeof(*nhs));
            if (!nhs) {
                cJSON_Delete(j);
                rc = fail(err, errlen, "out of memory reading the trace");
                break;
            }
            w->hashes = nhs;
            hcap = ncap;
        }
        struct lg_trace_req *tr = &w->trace[n];
        /* scaled lengths: a hash id stands for bt tokens instead of 512 */
        double il = ceil(in->valuedouble * scale), ol = floor(out->valuedouble * scale + 0.5);
        tr->in_len = il < 1 ? 1 : (uint32_t)il;
        tr->out_len = ol < 1 ? 1 : (uint32_t)ol;
        if (s->trace_max_input && tr->in_len > s->trace_max_input) {
            tr->in_len = s->trace_max_input;
            w->trace_cut++;
        }
        tr->hash_off = w->nhashes;
        tr->nhash = (uint32_t)nh;
        const cJSON *e;
        cJSON_ArrayForEach(e, h)
            w->hashes[w->nhashes++] = (uint64_t)e->valuedouble;
        ts[n++] = t->valuedouble;
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    w->trace_lines = n;
    if (!rc && !n)
        rc = fail(err, errlen, "--trace %s: no requests", P);
    uint32_t *idx = NULL;
    if (!rc && !(idx = malloc(n * sizeof(*idx))))
        rc = fail(err, errlen, "out of memory");
    if (!rc) {
        for (size_t k = 0; k < n; k++)
            idx[k] = (uint32_t)k;
        qsort_r(idx, n, sizeof(*idx), cmp_trace, ts);
        /* the window [start, start + window) of trace time, replayed from
         * its first request on, speed times faster */
        double from = s->trace_start * 1000.0;
        double to = s->trace_window > 0 ? from + s->trace_window * 1000.0 : INFINITY;
        size_t k0 = 0;
        while (k0 < n && ts[idx[k0]] < from)
            k0++;
        double t0 = k0 < n ? ts[idx[k0]] : 0, speed = s->trace_speedup > 0 ? s->trace_speedup : 1.0;
        size_t m = 0;
        rc = alloc_items(w, n, err, errlen);
        if (!rc && (k0 == n || ts[idx[k0]] >= to))
            rc = fail(err, errlen, "--trace %s: no request in the window of trace time [%g s, %g s)",
                      s->trace_path, s->trace_start, to / 1000.0);
        for (size_t k = k0; !rc && k < n && ts[idx[k]] < to; k++) {
            double at = (ts[idx[k]] - t0) / 1000.0 / speed;
            if (s->duration > 0 && at >= s->duration)
                break;
            struct lg_wl_item *it = &w->items[m];
            it->sched_s = at;
            it->a = idx[k];
            it->b = (uint32_t)k;
            it->out_len = w->trace[idx[k]].out_len;
            w->order[m] = (uint32_t)m;
            m++;
        }
        w->n = w->norder = m;
    }
    free(idx);
    free(ts);
    return rc;
}

int lg_wl_init(struct lg_workload *w, const struct lg_wl_spec *spec, char *err,
               size_t errlen)
{
    memset(w, 0, sizeof(*w));
    w->spec = *spec;
    if (!w->spec.model)
        w->spec.model = "meta-llama/Llama-3.1-8B-Instruct";
    sbuf_init(&w->scratch);
    int rc = set_models(w, err, errlen);
    if (!rc) {
        switch (spec->kind) {
        case LG_WL_SHARED_PREFIX:
        case LG_WL_LORA_MIX:
            rc = gen_grouped(w, err, errlen);
            break;
        case LG_WL_MULTI_TURN:
            rc = gen_multi_turn(w, err, errlen);
            break;
        case LG_WL_NO_SHARING:
        case LG_WL_HOT_PREFIX:
            rc = gen_simple(w, err, errlen);
            break;
        case LG_WL_TRACE:
            rc = gen_trace(w, err, errlen);
            break;
        case LG_WL_PREFIX_POOL:
            rc = gen_pool(w, err, errlen);
            break;
        default:
            rc = fail(err, errlen, "unknown workload");
        }
    }
    if (rc)
        lg_wl_free(w);
    return rc;
}

void lg_wl_free(struct lg_workload *w)
{
    if (w->answers)
        for (size_t i = 0; i < w->n; i++)
            sbuf_free(&w->answers[i]);
    free(w->answers);
    if (w->models)
        for (uint32_t k = 0; k < w->nmodels; k++)
            free(w->models[k]);
    free(w->models);
    free(w->items);
    free(w->order);
    free(w->trace);
    free(w->hashes);
    sbuf_free(&w->scratch);
    memset(w, 0, sizeof(*w));
}

/* ---- building requests ---- */

#define MAX_MSGS 2048 /* multi-turn: 2 per turn + system */

struct piece {
    const char *role;
    size_t off, len; /* in scratch */
};

static void text_piece(struct lg_workload *w, struct piece *p, const char *role,
                       uint64_t seed, size_t nbytes)
{
    p->role = role;
    p->off = w->scratch.len;
    lg_text(&w->scratch, seed, nbytes);
    p->len = w->scratch.len - p->off;
}

static void copy_piece(struct lg_workload *w, struct piece *p, const char *role,
                       const char *src, size_t n)
{
    p->role = role;
    p->off = w->scratch.len;
    sbuf_append(&w->scratch, src, n);
    p->len = w->scratch.len - p->off;
}

static size_t trace_content(struct lg_workload *w, const struct lg_wl_item *it,
                            struct piece *p)
{
    const struct lg_trace_req *tr = &w->trace[it->a];
    static const char *const user[] = { "user" };
    size_t ovh = lg_render_overhead(user, 1);
    size_t want = 4 * (size_t)tr->in_len > ovh + 4 ? 4 * (size_t)tr->in_len - ovh : 4;
    p->role = "user";
    p->off = w->scratch.len;
    uint32_t bt = w->spec.trace_block_tokens ? w->spec.trace_block_tokens : LG_TRACE_BLOCK_TOKENS;
    for (uint32_t k = 0; k < tr->nhash && w->scratch.len - p->off < want; k++)
        lg_trace_block(&w->scratch, w->hashes[tr->hash_off + k], bt);
    size_t have = w->scratch.len - p->off;
    if (have > want) { /* the last block is partial */
        w->scratch.len = p->off + want;
        w->scratch.data[w->scratch.len] = '\0';
    } else if (have < want) { /* padding unique to this request */
        lg_text(&w->scratch, sub(w->spec.seed, TAG_PAD, it->a, 0), want - have);
    }
    p->len = w->scratch.len - p->off;
    return 1;
}

int lg_wl_build(struct lg_workload *w, size_t i, struct sbuf *body,
                struct sbuf *rendered, struct lg_wl_meta *meta, int placeholder)
{
    if (i >= w->n)
        return -EINVAL;
    const struct lg_wl_spec *s = &w->spec;
    const struct lg_wl_item *it = &w->items[i];
    struct piece pc[MAX_MSGS];
    size_t np = 0;
    size_t S = 4 * (size_t)s->system_len, Q = 4 * (size_t)s->question_len;
    sbuf_reset(&w->scratch);
    meta->session_id[0] = 0;
    meta->tenant[0] = 0;
    if (s->tenants) { /* the tenant follows the system prompt where there is one */
        uint32_t k = s->kind == LG_WL_SHARED_PREFIX || s->kind == LG_WL_LORA_MIX ||
                             s->kind == LG_WL_PREFIX_POOL || s->kind == LG_WL_MULTI_TURN
                         ? it->a
                         : (uint32_t)i;
        snprintf(meta->tenant, sizeof(meta->tenant), "tenant-%u", k % s->tenants);
    }
    switch (s->kind) {
    case LG_WL_SHARED_PREFIX:
    case LG_WL_LORA_MIX:
    case LG_WL_PREFIX_POOL:
        if (S)
            text_piece(w, &pc[np++], "system", sub(s->seed, TAG_SYS, it->a, 0), S);
        text_piece(w, &pc[np++], "user", sub(s->seed, TAG_Q, it->a, it->b), Q ? Q : 4);
        break;
    case LG_WL_NO_SHARING: {
        size_t L = 4 * (size_t)(s->prompt_len ? s->prompt_len : s->question_len);
        text_piece(w, &pc[np++], "user", sub(s->seed, TAG_Q, it->b, ~0ull), L ? L : 4);
        break;
    }
    case LG_WL_HOT_PREFIX:
        if (S)
            text_piece(w, &pc[np++], "system",
                       it->a ? sub(s->seed, TAG_HOT, 0, 0) : sub(s->seed, TAG_COLD, it->b, 0), S);
        text_piece(w, &pc[np++], "user", sub(s->seed, TAG_Q, it->b, ~1ull), Q ? Q : 4);
        break;
    case LG_WL_MULTI_TURN: {
        uint32_t sess = it->a, turn = it->b;
        uint32_t g = s->groups ? sess % s->groups : sess;
        snprintf(meta->session_id, sizeof(meta->session_id), "s%llx-%u",
                 (unsigned long long)(s->seed & 0xffffffffu), sess);
        if (S)
            text_piece(w, &pc[np++], "system", sub(s->seed, TAG_MT_SYS, g, 0), S);
        for (uint32_t k = 0; k <= turn && np + 2 < MAX_MSGS; k++) {
            text_piece(w, &pc[np++], "user", sub(s->seed, TAG_MT_USER, sess, k), Q ? Q : 4);
            if (k == turn)
                break;
            const struct sbuf *ans = &w->answers[i - turn + k];
            if (ans->len || !placeholder)
                copy_piece(w, &pc[np++], "assistant", ans->data ? ans->data : "", ans->len);
            else
                text_piece(w, &pc[np++], "assistant", sub(s->seed, TAG_MT_ANS, sess, k),
                           4 * (size_t)it->out_len);
        }
        break;
    }
    case LG_WL_TRACE:
        np = trace_content(w, it, &pc[0]);
        break;
    }
    if (w->scratch.oom)
        return -ENOMEM;
    struct lg_msg m[MAX_MSGS];
    for (size_t k = 0; k < np; k++) {
        m[k].role = pc[k].role;
        m[k].text = w->scratch.data + pc[k].off;
        m[k].len = pc[k].len;
    }
    meta->model = w->models[it->model < w->nmodels ? it->model : 0];
    lg_body_chat(body, meta->model, m, np, it->out_len);
    size_t before = rendered ? rendered->len : 0;
    if (rendered)
        lg_render_chat(rendered, m, np);
    meta->prompt_tokens = rendered ? lg_ntokens(rendered->len - before) : 0;
    if (body->oom || (rendered && rendered->oom))
        return -ENOMEM;
    return 0;
}

void lg_wl_set_answer(struct lg_workload *w, size_t i, const char *text, size_t n)
{
    if (!w->answers || i >= w->n)
        return;
    sbuf_reset(&w->answers[i]);
    sbuf_append(&w->answers[i], text, n);
}

long lg_wl_next_turn(const struct lg_workload *w, size_t i)
{
    if (w->spec.kind != LG_WL_MULTI_TURN || i + 1 >= w->n)
        return -1;
    return w->items[i].b + 1 < w->spec.turns ? (long)(i + 1) : -1;
}

double lg_wl_ideal(struct lg_workload *w, uint64_t *hit, uint64_t *prompt)
{
    struct lg_wl_ideals out;
    lg_wl_ideals(w, 0, &out);
    if (hit)
        *hit = out.hit;
    if (prompt)
        *prompt = out.prompt;
    return out.infinite;
}

void lg_wl_ideals(struct lg_workload *w, uint64_t fleet_kv_blocks, struct lg_wl_ideals *out)
{
    struct lg_ideal d;
    struct sbuf body, rend;
    struct lg_wl_meta meta;
    lg_ideal_init(&d);
    lg_ideal_set_capacity(&d, fleet_kv_blocks);
    sbuf_init(&body);
    sbuf_init(&rend);
    /* schedule order; multi-turn: turn by turn across sessions in start order */
    uint32_t turns = w->spec.kind == LG_WL_MULTI_TURN ? w->spec.turns : 1;
    for (uint32_t t = 0; t < turns; t++) {
        for (size_t k = 0; k < w->norder; k++) {
            size_t i = w->order[k] + t;
            sbuf_reset(&body);
            sbuf_reset(&rend);
            if (lg_wl_build(w, i, &body, &rend, &meta, 1) == 0)
                lg_ideal_add(&d, meta.model, rend.data, rend.len);
        }
    }
    out->infinite = lg_ideal_rate(&d);
    out->finite = lg_ideal_finite_rate(&d);
    out->hit = d.hit_tokens;
    out->finite_hit = d.finite_hit_tokens;
    out->prompt = d.prompt_tokens;
    out->distinct_blocks = d.n;
    sbuf_free(&body);
    sbuf_free(&rend);
    lg_ideal_free(&d);
}
