/* engine_metrics: load figures from a model server's /metrics page. See
 * engine_metrics.h for the aggregation rules. */
#include "core/engine_metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* Sanity bounds: a value outside them makes its field missing. */
#define MAX_REQUESTS 1e9               /* waiting / running, per page */
#define MAX_KV_USAGE 1.5               /* above 1 (rounding): clamped */
#define MAX_BLOCKS ((int64_t)1 << 40)  /* KV blocks of one series */
#define MAX_BLOCK_SIZE ((int64_t)1 << 20)
#define MAX_COUNTER 9.2e18             /* below 2^63: converts to uint64 */
#define MAX_LORA 1000000

/* ---- which metric a sample is ---- */

enum field {
    F_WAITING,
    F_RUNNING,
    F_KV,
    F_KV_LEGACY,
    F_CACHE_INFO,       /* vLLM / SGLang info gauge: sizes in labels */
    F_BLOCK_SIZE,       /* TRT-LLM: tokens per block, as the value */
    F_MAX_BLOCKS,       /* TRT-LLM: blocks, as the value */
    F_LORA_INFO,
    F_PREFIX_QUERIES,
    F_PREFIX_HITS,
    F_PROMPT_TOKENS,    /* counters of tokens prefilled (cached ones included) */
    F_GEN_TOKENS,       /* ... and generated */
    F_NONE,
};

struct name_entry {
    const char *name;
    unsigned char len;
    unsigned char field;
};

#define NAME(s, f) {s, sizeof(s) - 1, f}

static const struct name_entry vllm_names[] = {
    NAME("vllm:num_requests_waiting", F_WAITING),
    NAME("vllm:num_requests_running", F_RUNNING),
    NAME("vllm:kv_cache_usage_perc", F_KV),
    NAME("vllm:gpu_cache_usage_perc", F_KV_LEGACY),
    NAME("vllm:cache_config_info", F_CACHE_INFO),
    NAME("vllm:lora_requests_info", F_LORA_INFO),
    NAME("vllm:prefix_cache_queries_total", F_PREFIX_QUERIES),
    NAME("vllm:prefix_cache_hits_total", F_PREFIX_HITS),
    NAME("vllm:prompt_tokens_total", F_PROMPT_TOKENS),
    NAME("vllm:generation_tokens_total", F_GEN_TOKENS),
};

static const struct name_entry sglang_names[] = {
    NAME("sglang:num_queue_reqs", F_WAITING),
    NAME("sglang:num_running_reqs", F_RUNNING),
    NAME("sglang:token_usage", F_KV),
    NAME("sglang:cache_config_info", F_CACHE_INFO),
    NAME("sglang:prompt_tokens_total", F_PROMPT_TOKENS),
    NAME("sglang:generation_tokens_total", F_GEN_TOKENS),
};

static const struct name_entry trtllm_names[] = {
    NAME("trtllm_num_requests_waiting", F_WAITING),
    NAME("trtllm_num_requests_running", F_RUNNING),
    NAME("trtllm_kv_cache_utilization", F_KV),
    NAME("trtllm_kv_cache_tokens_per_block", F_BLOCK_SIZE),
    NAME("trtllm_kv_cache_max_blocks", F_MAX_BLOCKS),
};

struct engine_def {
    const char *prefix;
    size_t prefix_len;
    const struct name_entry *names;
    size_t nnames;
    const char *size_label;   /* tokens per block, in F_CACHE_INFO */
    const char *blocks_label; /* blocks, in F_CACHE_INFO */
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct engine_def engines[] = {
    [ENGINE_VLLM] = {"vllm:", 5, vllm_names, NELEM(vllm_names), "block_size",
                     "num_gpu_blocks"},
    [ENGINE_SGLANG] = {"sglang:", 7, sglang_names, NELEM(sglang_names),
                       "page_size", "num_pages"},
    [ENGINE_TRTLLM] = {"trtllm_", 7, trtllm_names, NELEM(trtllm_names), NULL,
                       NULL},
};

static enum field lookup(const struct engine_def *e, struct prom_str name)
{
    /* Most lines of a page are histogram buckets: the prefix and length
     * tests reject them before any full compare. */
    if (name.len < e->prefix_len || memcmp(name.ptr, e->prefix, e->prefix_len))
        return F_NONE;
    for (size_t i = 0; i < e->nnames; i++)
        if (e->names[i].len == name.len &&
            memcmp(e->names[i].name, name.ptr, name.len) == 0)
            return (enum field)e->names[i].field;
    return F_NONE;
}

/* ---- summing with mirrored series counted once ---- */

#define MIRROR_GROUPS 32

/* A sum over series, where series with the same mirror key (their labels
 * minus tp_rank / pp_rank) contribute once, at their maximum. */
struct gsum {
    double plain;     /* series without rank labels */
    unsigned n;       /* series added */
    int bad;          /* an insane series was seen: the field is missing */
    unsigned ngroups;
    uint64_t key[MIRROR_GROUPS];
    double max[MIRROR_GROUPS];
};

static void gsum_add(struct gsum *g, double v, uint64_t key)
{
    g->n++;
    if (key) {
        for (unsigned i = 0; i < g->ngroups; i++) {
            if (g->key[i] == key) {
                if (v > g->max[i])
                    g->max[i] = v;
                return;
            }
        }
        if (g->ngroups < MIRROR_GROUPS) {
            g->key[g->ngroups] = key;
            g->max[g->ngroups++] = v;
            return;
        }
        /* table full: overstating the load beats dropping it */
    }
    g->plain += v;
}

static double gsum_total(const struct gsum *g)
{
    double t = g->plain;
    for (unsigned i = 0; i < g->ngroups; i++)
        t += g->max[i];
    return t;
}

static int is_rank_label(struct prom_str n)
{
    return n.len == 7 && (memcmp(n.ptr, "tp_rank", 7) == 0 ||
                          memcmp(n.ptr, "pp_rank", 7) == 0);
}

static uint64_t fnv1a(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x100000001b3ull;
    return h;
}

/* 0 when the sample has no rank label (it mirrors nothing), else a hash of
 * its other labels, in page order (one family writes them in one order). */
static uint64_t mirror_key(const struct prom_sample *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    int ranked = 0;

    for (unsigned i = 0; i < s->nlabels; i++) {
        const struct prom_label *l = &s->labels[i];
        if (is_rank_label(l->name)) {
            ranked = 1;
            continue;
        }
        h = fnv1a(h, l->name.ptr, l->name.len);
        h = fnv1a(h, "=", 1);
        h = fnv1a(h, l->value.ptr, l->value.len);
        h = fnv1a(h, ",", 1);
    }
    if (!ranked)
        return 0;
    return h ? h : 1;
}

/* ---- per-page state ---- */

struct maxval {
    double v;
    unsigned n;
    int bad;
};

struct ectx {
    enum engine_kind kind;
    const char *filter;
    struct gsum waiting, running, blocks, prefix_q, prefix_h, prompt_t, gen_t;
    struct maxval kv, kv_legacy;
    int64_t block_size;   /* first sane one; 0 none */
    int block_size_bad;
    /* the newest vllm:lora_requests_info series (pointers into the page) */
    unsigned nlora;
    double lora_ts;
    struct prom_str lora_running, lora_waiting, lora_max;
};

static int sane_count(double v)
{
    return v >= 0 && v <= MAX_REQUESTS; /* false for NaN */
}

static void add_count(struct gsum *g, const struct prom_sample *s)
{
    if (sane_count(s->value))
        gsum_add(g, s->value, mirror_key(s));
    else
        g->bad = 1;
}

static void add_max(struct maxval *m, double v)
{
    if (!(v >= 0 && v <= MAX_KV_USAGE)) {
        m->bad = 1;
        return;
    }
    if (!m->n++ || v > m->v)
        m->v = v;
}

/* A decimal integer label value in [1, max]: 0 and *out set; -ENOENT for
 * "None" or "" (vLLM before its memory profile ran); -EINVAL otherwise. */
static int label_int(struct prom_str raw, int64_t max, int64_t *out)
{
    int64_t v = 0;

    if (raw.len == 0 || prom_str_eq(raw, "None"))
        return -ENOENT;
    if (raw.len > 18)
        return -EINVAL;
    for (size_t i = 0; i < raw.len; i++) {
        unsigned d = (unsigned)(raw.ptr[i] - '0');
        if (d > 9)
            return -EINVAL;
        v = v * 10 + d;
    }
    if (v < 1 || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static void set_block_size(struct ectx *c, int64_t v)
{
    if (!c->block_size)
        c->block_size = v;
}

/* An info gauge (vLLM / SGLang cache_config_info): sizes in labels. */
static void cache_info(struct ectx *c, const struct engine_def *e,
                       const struct prom_sample *s)
{
    const struct prom_label *lb = prom_find_label(s, e->blocks_label);
    const struct prom_label *ls = prom_find_label(s, e->size_label);
    int64_t v;
    int rc;

    if (lb) {
        rc = label_int(lb->value, MAX_BLOCKS, &v);
        if (rc == 0)
            gsum_add(&c->blocks, (double)v, mirror_key(s));
        else if (rc == -EINVAL)
            c->blocks.bad = 1;
    }
    if (ls) {
        rc = label_int(ls->value, MAX_BLOCK_SIZE, &v);
        if (rc == 0)
            set_block_size(c, v);
        else if (rc == -EINVAL)
            c->block_size_bad = 1;
    }
}

/* A size given as a gauge value (TRT-LLM). */
static int value_int(double v, int64_t max, int64_t *out)
{
    if (!(v >= 1 && v <= (double)max) || v != floor(v))
        return -EINVAL;
    *out = (int64_t)v;
    return 0;
}

static void lora_info(struct ectx *c, const struct prom_sample *s)
{
    const struct prom_label *l;

    if (!(s->value >= 0 && isfinite(s->value)))
        return; /* not a timestamp: this series cannot win */
    /* ">=": of equal stamps the later series, the newer label set, wins */
    if (c->nlora++ && s->value < c->lora_ts)
        return;
    c->lora_ts = s->value;
    l = prom_find_label(s, "running_lora_adapters");
    c->lora_running = l ? l->value : (struct prom_str){NULL, 0};
    l = prom_find_label(s, "waiting_lora_adapters");
    c->lora_waiting = l ? l->value : (struct prom_str){NULL, 0};
    l = prom_find_label(s, "max_lora");
    c->lora_max = l ? l->value : (struct prom_str){NULL, 0};
}

static void add_counter(struct gsum *g, const struct prom_sample *s)
{
    if (s->value >= 0 && s->value <= MAX_COUNTER)
        gsum_add(g, s->value, mirror_key(s));
    else
        g->bad = 1;
}

static enum engine_kind detect(struct prom_str name)
{
    for (int k = ENGINE_VLLM; k <= ENGINE_TRTLLM; k++)
        if (name.len > engines[k].prefix_len &&
            memcmp(name.ptr, engines[k].prefix, engines[k].prefix_len) == 0)
            return (enum engine_kind)k;
    return ENGINE_AUTO;
}

static int on_sample(void *vctx, const struct prom_sample *s)
{
    struct ectx *c = vctx;
    const struct engine_def *e;
    enum field f;
    int64_t v;

    if (c->kind == ENGINE_AUTO && (c->kind = detect(s->name)) == ENGINE_AUTO)
        return 0;
    e = &engines[c->kind];
    f = lookup(e, s->name);
    if (f == F_NONE)
        return 0;
    if (c->filter) {
        const struct prom_label *m = prom_find_label(s, "model_name");
        if (m && !prom_label_eq(m->value, c->filter))
            return 0;
    }

    switch (f) {
    case F_WAITING:
        add_count(&c->waiting, s);
        break;
    case F_RUNNING:
        add_count(&c->running, s);
        break;
    case F_KV:
        add_max(&c->kv, s->value);
        break;
    case F_KV_LEGACY:
        add_max(&c->kv_legacy, s->value);
        break;
    case F_CACHE_INFO:
        cache_info(c, e, s);
        break;
    case F_BLOCK_SIZE:
        if (value_int(s->value, MAX_BLOCK_SIZE, &v) == 0)
            set_block_size(c, v);
        else
            c->block_size_bad = 1;
        break;
    case F_MAX_BLOCKS:
        if (value_int(s->value, MAX_BLOCKS, &v) == 0)
            gsum_add(&c->blocks, (double)v, mirror_key(s));
        else
            c->blocks.bad = 1;
        break;
    case F_LORA_INFO:
        lora_info(c, s);
        break;
    case F_PREFIX_QUERIES:
        add_counter(&c->prefix_q, s);
        break;
    case F_PREFIX_HITS:
        add_counter(&c->prefix_h, s);
        break;
    case F_PROMPT_TOKENS:
        add_counter(&c->prompt_t, s);
        break;
    case F_GEN_TOKENS:
        add_counter(&c->gen_t, s);
        break;
    case F_NONE:
        break;
    }
    return 0;
}

/* ---- results ---- */

/* Unescapes an adapter list; one that does not fit loses its last names
 * whole (a cut name would be a different adapter). Returns 1 if cut. */
static int copy_list(struct prom_str raw, char *dst, size_t dstsz)
{
    int rc;
    char *comma;

    if (!raw.ptr) {
        dst[0] = '\0';
        return 0;
    }
    rc = prom_unescape(raw, dst, dstsz);
    if (rc >= 0)
        return 0;
    if (rc == -ENOSPC && (comma = strrchr(dst, ',')) != NULL)
        *comma = '\0';
    else
        dst[0] = '\0';
    return 1;
}

static void finish(const struct ectx *c, struct engine_load *out)
{
    int64_t v;

    out->kind_detected = c->kind;
    if (c->waiting.n && !c->waiting.bad) {
        out->waiting = gsum_total(&c->waiting);
        out->have |= HAVE_WAITING;
    }
    if (c->running.n && !c->running.bad) {
        out->running = gsum_total(&c->running);
        out->have |= HAVE_RUNNING;
    }
    /* the current name wins whenever it is on the page, even if insane */
    if (c->kv.n || c->kv.bad) {
        if (!c->kv.bad) {
            out->kv_usage = c->kv.v > 1 ? 1 : c->kv.v;
            out->have |= HAVE_KV;
        }
    } else if (c->kv_legacy.n && !c->kv_legacy.bad) {
        out->kv_usage = c->kv_legacy.v > 1 ? 1 : c->kv_legacy.v;
        out->have |= HAVE_KV | HAVE_KV_LEGACY;
    }
    if (c->blocks.n && !c->blocks.bad) {
        double t = gsum_total(&c->blocks);
        out->cache_blocks = t > (double)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)t;
        out->have |= HAVE_CACHE_CFG;
        if (!c->block_size_bad)
            out->block_size = c->block_size;
    }
    if (c->prefix_q.n && !c->prefix_q.bad && c->prefix_h.n &&
        !c->prefix_h.bad) {
        out->prefix_queries = (uint64_t)gsum_total(&c->prefix_q);
        out->prefix_hits = (uint64_t)gsum_total(&c->prefix_h);
        out->have |= HAVE_PREFIX;
    }
    if (c->prompt_t.n && !c->prompt_t.bad && c->gen_t.n && !c->gen_t.bad) {
        out->prompt_tokens = (uint64_t)gsum_total(&c->prompt_t);
        out->generation_tokens = (uint64_t)gsum_total(&c->gen_t);
        out->have |= HAVE_TOKENS;
    }
    if (c->nlora) {
        out->have |= HAVE_LORA;
        out->lora_info_ts = c->lora_ts;
        if (copy_list(c->lora_running, out->running_loras,
                      sizeof(out->running_loras)) |
            copy_list(c->lora_waiting, out->waiting_loras,
                      sizeof(out->waiting_loras)))
            out->have |= HAVE_LORA_TRUNC;
        if (c->lora_max.ptr && label_int(c->lora_max, MAX_LORA, &v) == 0)
            out->max_lora = (int)v;
    }
}

int engine_load_parse(const char *buf, size_t len, enum engine_kind kind,
                      const char *model_filter, struct engine_load *out)
{
    struct ectx c;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((unsigned)kind > ENGINE_TRTLLM)
        return -EINVAL;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    c.filter = model_filter;

    rc = prom_parse_stats(buf, len, on_sample, &c, &out->stats);
    if (rc)
        return rc; /* -EINVAL: what the callback gathered is discarded */
    finish(&c, out);
    return out->have & (HAVE_WAITING | HAVE_RUNNING | HAVE_KV) ? 0 : -ENODATA;
}

const char *engine_kind_name(enum engine_kind kind)
{
    switch (kind) {
    case ENGINE_AUTO:
        return "auto";
    case ENGINE_VLLM:
        return "vllm";
    case ENGINE_SGLANG:
        return "sglang";
    case ENGINE_TRTLLM:
        return "trtllm";
    }
    return "?";
}
