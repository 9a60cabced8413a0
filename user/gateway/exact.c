/* exact: token-exact routing; see exact.h. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "core/blockkey.h"
#include "core/bodyscan.h"
#include "core/jstr.h"
#include "core/kvindex.h"
#include "gateway/exact.h"
#include "gateway/gateway.h"
#include "tok/tok.h"

#define SAID_MAX 64 /* distinct (model, reason) sentences logged once; then silent */
/* Tokenizing runs on the worker thread: bodies and prompts past these stay
 * on the approximate index, so that no request holds a worker for long
 * (Llama 3.1's BPE: ~50 MB/s, so at most ~20 ms). 1 MiB of text is ~250k
 * tokens, past the context window of the models served today. */
#define EXACT_MAX_BODY ((size_t)2 << 20)
#define EXACT_MAX_TEXT ((size_t)1 << 20)

struct gw_tokenizer {
    char model[POD_MODEL_MAX]; /* "*": the default */
    struct tok *t;
    int ok;                    /* a chat template recognised (or the pseudo one) */
};

struct gw_tokenizers {
    uint32_t n;
    struct gw_tokenizer v[GW_MAX_OVERRIDES];
    pthread_mutex_t said_mu;
    uint32_t nsaid;
    uint64_t said[SAID_MAX];
};

/* What one request keeps between its attempts. */
struct gw_exact_req {
    int state;                 /* 0 not tokenized yet, 1 tokens, -1 not exact */
    struct tok_ids ids;        /* freed once chained (the body is held already) */
    const struct tok *pre_tok; /* ids (and salt) came from the stream with this
                                * tokenizer, while the body arrived; NULL: no */
    size_t ntokens;
    int chained;
    char salt[256];
    size_t salt_len;
    /* the chain of the last call: cut at bs, rooted at base, adapter lora */
    uint64_t *keys;
    size_t nkeys, cap;
    uint32_t bs;
    uint64_t root, lora_w;
    uint32_t pred_slot, pred_from; /* predictions made: keys[pred_from..nkeys) at pred_slot */
    int predicted;
    uint8_t judged[POD_MAX];   /* per slot, the last call: the kvx_mode its match
                                * came from (KVX_APPROXIMATE: the approximate index) */
};

/* ---- the tokenizers ---- */

int gw_exact_init(struct gw *g, char *err, size_t errlen)
{
    const struct gw_config *c = &g->cfg;
    struct gw_tokenizers *ts = kv_calloc(1, sizeof(*ts));
    if (!ts) {
        snprintf(err, errlen, "tokenizers: out of memory");
        return -1;
    }
    pthread_mutex_init(&ts->said_mu, NULL);
    g->toks = ts;
    for (uint32_t i = 0; i < c->ntokenizers; i++) {
        const struct gw_tok_cfg *tc = &c->tokenizers[i];
        struct gw_tokenizer *t = &ts->v[ts->n];
        char why[256] = "";
        snprintf(t->model, sizeof(t->model), "%s", tc->model);
        t->t = tc->pseudo ? tok_pseudo()
                          : tok_load(tc->file, tc->config[0] ? tc->config : NULL, why,
                                     sizeof(why));
        if (!t->t) {
            snprintf(err, errlen, "tokenizers.%s: %s", tc->model,
                     why[0] ? why : "out of memory");
            return -1;
        }
        ts->n++;
        tok_set_max_bytes(t->t, EXACT_MAX_TEXT);
        t->ok = tok_template(t->t) != TOK_TEMPLATE_UNKNOWN;
        LOG_INFO("tokenizer for %s: %s, chat template %s%s", tc->model,
                 tc->pseudo ? "podsim's pseudo-tokenizer" : tc->file,
                 tok_template_name(tok_template(t->t)),
                 t->ok ? "" : " (not recognised: its pods stay on the approximate index)");
    }
    return 0;
}

void gw_exact_fini(struct gw *g)
{
    struct gw_tokenizers *ts = g->toks;
    if (!ts)
        return;
    for (uint32_t i = 0; i < ts->n; i++)
        tok_free(ts->v[i].t);
    pthread_mutex_destroy(&ts->said_mu);
    kv_free(ts);
    g->toks = NULL;
}

static const struct gw_tokenizer *entry_for(const struct gw *g, const char *model)
{
    const struct gw_tokenizers *ts = g->toks;
    const struct gw_tokenizer *any = NULL;
    for (uint32_t i = 0; ts && i < ts->n; i++) {
        if (!strcmp(ts->v[i].model, model))
            return &ts->v[i];
        if (!strcmp(ts->v[i].model, "*"))
            any = &ts->v[i];
    }
    return any;
}

const struct tok *gw_exact_tokenizer(const struct gw *g, const char *model)
{
    const struct gw_tokenizer *e = entry_for(g, model);
    return e ? e->t : NULL;
}

static void say_once(struct gw *g, const char *model, const char *what);

int gw_exact_model_ok(struct gw *g, const char *model)
{
    const struct gw_tokenizer *e = entry_for(g, model);
    if (e && e->ok)
        return 1;
    if (g->toks)
        say_once(g, model, e ? "chat template not recognised"
                             : "no tokenizer configured (\"tokenizers\")");
    return 0;
}

/* Logs a sentence about a model once per process (the first SAID_MAX). */
static void say_once(struct gw *g, const char *model, const char *what)
{
    struct gw_tokenizers *ts = g->toks;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = model; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (const char *p = what; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    int say = 0;
    pthread_mutex_lock(&ts->said_mu);
    uint32_t i = 0;
    while (i < ts->nsaid && ts->said[i] != h)
        i++;
    if (i == ts->nsaid && ts->nsaid < SAID_MAX) {
        ts->said[ts->nsaid++] = h;
        say = 1;
    }
    pthread_mutex_unlock(&ts->said_mu);
    if (say)
        LOG_WARN("model %s: %s; its requests route on the approximate index (said once)",
                 model, what);
}

/* ---- one request ---- */

/* What in a chat request the renderer does not reproduce (NULL: none). */
static const char *chat_unsupported(const cJSON *j)
{
    static const char *const absent[] = {"chat_template", "chat_template_kwargs", "tools", NULL};
    for (int i = 0; absent[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, absent[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsArray(v) && !v->child))
            return absent[i];
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "continue_final_message")))
        return "continue_final_message";
    if (cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "add_generation_prompt")))
        return "add_generation_prompt";
    return NULL;
}

/* A completions prompt: a string (BOS added, as vLLM's add_special_tokens)
 * or one list of token ids. 0, 1 not exact, < 0 error. */
static int prompt_ids(const struct tok *t, const cJSON *p, struct tok_ids *ids)
{
    if (cJSON_IsString(p))
        return tok_encode(t, p->valuestring, strlen(p->valuestring),
                          TOK_PARSE_SPECIAL | TOK_ADD_BOS, ids);
    if (!cJSON_IsArray(p) || !p->child || !cJSON_IsNumber(p->child))
        return 1; /* a batch, or nothing to key */
    for (const cJSON *e = p->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 4294967295.0 ||
            e->valuedouble != (double)(uint32_t)e->valuedouble)
            return 1;
        if (tok_ids_push(ids, (uint32_t)e->valuedouble))
            return -ENOMEM;
    }
    return 0;
}

/* Renders and tokenizes r's body as the model server will: 1 tokens in
 * ex->ids, 0 not exact (why said once where it is a configuration fact). */
static int tokenize(struct gw *g, struct gw_request *r, const char *base,
                    struct gw_exact_req *ex)
{
    const struct gw_tokenizer *te = entry_for(g, base);
    if (!te) {
        say_once(g, base, "no tokenizer configured (\"tokenizers\")");
        return 0;
    }
    if (!r->body || !r->body_len || r->body_len > EXACT_MAX_BODY)
        return 0;
    if (ex->pre_tok) { /* tokenized while the body arrived: with this model's tokenizer? */
        int same = ex->pre_tok == te->t;
        ex->pre_tok = NULL;
        if (same)
            return 1;
        tok_ids_free(&ex->ids);
        ex->salt_len = 0;
    }
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    if (!j)
        return 0;
    int rc = 1;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(j, "messages");
    const cJSON *salt = cJSON_GetObjectItemCaseSensitive(j, "cache_salt");
    if (cJSON_IsString(salt)) {
        ex->salt_len = strlen(salt->valuestring);
        if (ex->salt_len >= sizeof(ex->salt))
            rc = 0; /* longer than the body scan keys too: not exact */
        else
            memcpy(ex->salt, salt->valuestring, ex->salt_len);
    }
    if (rc && msgs) {
        if (!te->ok) {
            say_once(g, base, "chat template not recognised");
            rc = 0;
        } else if (chat_unsupported(j)) {
            rc = 0;
        } else {
            struct sbuf text;
            const char *why = NULL;
            sbuf_init(&text);
            rc = tok_render_chat(te->t, msgs, 1, &text, &why) == 0 &&
                 tok_encode(te->t, text.data ? text.data : "", text.len, TOK_PARSE_SPECIAL,
                            &ex->ids) == 0;
            sbuf_free(&text);
        }
    } else if (rc) {
        rc = prompt_ids(te->t, cJSON_GetObjectItemCaseSensitive(j, "prompt"), &ex->ids) == 0;
    }
    cJSON_Delete(j);
    return rc;
}

/* The chain of ex->ids cut at bs under root / lora (kept when unchanged). */
static int chain(struct gw_exact_req *ex, uint32_t bs, uint64_t root, const char *lora)
{
    uint64_t lw = lora ? bk_lora_word(lora, strlen(lora)) : 0;
    if (ex->chained && ex->bs == bs && ex->root == root && ex->lora_w == lw)
        return 0;
    if (ex->chained)
        return -ESTALE; /* another chain (a retry's pods cut elsewhere): not kept */
    size_t want = ex->ids.n / bs;
    if (want > 65535)
        want = 65535; /* kvx_lookup's bound */
    if (want > ex->cap) {
        uint64_t *k = kv_realloc(ex->keys, want * sizeof(*k));
        if (!k)
            return -ENOMEM;
        ex->keys = k;
        ex->cap = want;
    }
    struct bk_extra x = {lora, lora ? strlen(lora) : 0, ex->salt_len ? ex->salt : NULL,
                         ex->salt_len};
    size_t n = bk_chain(root, ex->ids.v, ex->ids.n, bs, &x, ex->keys, ex->cap);
    ex->nkeys = n < ex->cap ? n : ex->cap;
    ex->bs = bs;
    ex->root = root;
    ex->lora_w = lw;
    ex->ntokens = ex->ids.n;
    ex->chained = 1;
    tok_ids_free(&ex->ids);
    return 0;
}

/* The pod's block size: as its events carry it, else as it reports it. */
static uint32_t pod_bs(struct kvindex *x, const struct pod_info *p)
{
    uint32_t bs = kvx_pod_block_size(x, p->slot);
    return bs ? bs : p->block_size;
}

/* The block size and base model of the first pod serving r->model whose
 * events the exact index can judge now; 0 when there is none. */
static uint32_t judged_pod(struct kvindex *x, const struct gw_request *r,
                           const struct pod_snapshot *s, char *base, size_t baselen,
                           int *adapter)
{
    for (uint32_t i = 0; i < s->npods; i++) {
        const struct pod_info *p = &s->pods[i];
        int serves = pod_serves(p, r->model, NULL);
        if (!serves || !p->nmodels || kvx_pod_mode(x, p->slot) == KVX_APPROXIMATE)
            continue;
        uint32_t bs = pod_bs(x, p);
        if (!bs)
            continue;
        snprintf(base, baselen, "%s", serves == 1 ? r->model : p->models[0]);
        *adapter = serves == 2;
        return bs;
    }
    return 0;
}

int gw_exact_match(struct gw *g, struct gw_request *r, const struct pod_snapshot *s,
                   uint16_t *match, uint32_t *nkeys, double *tokens_per_key)
{
    struct kvindex *x = __atomic_load_n(&g->kvx, __ATOMIC_ACQUIRE);
    if (!x || !g->toks || !g->toks->n || (r->ex && r->ex->state < 0))
        return 0;
    char base[sizeof(r->model)];
    int adapter = 0;
    uint32_t bs = judged_pod(x, r, s, base, sizeof(base), &adapter);
    if (!bs)
        return 0;
    if (!r->ex && !(r->ex = kv_calloc(1, sizeof(*r->ex))))
        return 0;
    struct gw_exact_req *ex = r->ex;
    if (ex->state == 0)
        ex->state = tokenize(g, r, base, ex) ? 1 : -1;
    if (ex->state < 0 || chain(ex, bs, bk_model_root(base, strlen(base)),
                               adapter ? r->model : NULL))
        return 0;
    uint16_t xm[POD_MAX];
    kvx_lookup(x, ex->keys, ex->nkeys, xm, 0);
    double conv = *tokens_per_key / bs; /* approximate blocks -> these blocks */
    for (uint32_t i = 0; i < s->npods; i++) {
        uint32_t slot = s->pods[i].slot;
        double a = match[slot] * conv;
        uint32_t v = a >= (double)ex->nkeys ? (uint32_t)ex->nkeys : (uint32_t)a;
        enum kvx_mode m = kvx_pod_mode(x, slot);
        if (m != KVX_APPROXIMATE && pod_bs(x, &s->pods[i]) != bs)
            m = KVX_APPROXIMATE; /* its blocks are cut elsewhere */
        if (m != KVX_APPROXIMATE)
            v = m == KVX_EXACT ? xm[slot] : (xm[slot] > v ? xm[slot] : v);
        match[slot] = (uint16_t)v;
        ex->judged[slot] = (uint8_t)m;
    }
    *nkeys = (uint32_t)ex->nkeys;
    *tokens_per_key = bs;
    r->prompt_tokens = ex->ntokens > UINT32_MAX ? UINT32_MAX : (uint32_t)ex->ntokens;
    return 1;
}

void gw_exact_routed(struct gw *g, struct gw_request *r, uint32_t slot, uint32_t held)
{
    struct kvindex *x = __atomic_load_n(&g->kvx, __ATOMIC_ACQUIRE);
    struct gw_exact_req *ex = r->ex;
    enum kvx_mode m = KVX_APPROXIMATE;
    if (x && ex && ex->state > 0 && slot < POD_MAX)
        m = (enum kvx_mode)ex->judged[slot];
    r->index_mode = kvx_mode_name(m);
    if (m != KVX_APPROXIMATE && ex->nkeys) {
        kvx_predict(x, slot, ex->keys, ex->nkeys);
        ex->predicted = 1;
        ex->pred_slot = slot;
        ex->pred_from = held < ex->nkeys ? held : (uint32_t)ex->nkeys;
    }
}

void gw_exact_withdraw(struct gw *g, struct gw_request *r)
{
    struct kvindex *x = __atomic_load_n(&g->kvx, __ATOMIC_ACQUIRE);
    struct gw_exact_req *ex = r->ex;
    if (!x || !ex || !ex->predicted)
        return;
    kvx_unpredict(x, ex->pred_slot, ex->keys + ex->pred_from, ex->nkeys - ex->pred_from);
    ex->predicted = 0;
}

/* ---- a completions prompt tokenized while the body arrives ---- */

struct gw_exact_stream {
    const struct tok *t;
    struct jstr js;
    struct tok_stream ts;
    struct tok_ids ids;
    int off; /* given up: the whole body is tokenized at the end, as before */
};

static int stream_text(void *ctx, const char *p, size_t n)
{
    struct gw_exact_stream *es = ctx;
    return tok_stream_feed(&es->ts, p, n, &es->ids) ? -1 : 0;
}

static void stream_off(struct gw_exact_stream *es)
{
    if (es->off)
        return;
    es->off = 1;
    tok_stream_free(&es->ts);
    tok_ids_free(&es->ids);
}

struct gw_exact_stream *gw_exact_stream_start(struct gw *g, const struct bodyscan *bs,
                                              const char *raw, size_t n)
{
    if (!g->toks || !g->toks->n || !__atomic_load_n(&g->kvx, __ATOMIC_ACQUIRE) ||
        bs->prompt_kind != BODYSCAN_COMPLETION || !n || raw[0] != '"')
        return NULL; /* chat (rendered from every message) or an array: at the end */
    /* the model named so far (an adapter's base is known only at routing:
     * tokenize checks the tokenizer is the one it would use), else the
     * default entry, else the only one */
    const struct gw_tokenizer *te = entry_for(g, bs->has_model ? bs->model : "*");
    if (!te && !bs->has_model && g->toks->n == 1)
        te = &g->toks->v[0];
    if (!te)
        return NULL;
    struct gw_exact_stream *es = kv_calloc(1, sizeof(*es));
    if (!es)
        return NULL;
    es->t = te->t;
    jstr_init(&es->js);
    tok_stream_init(&es->ts, te->t, TOK_PARSE_SPECIAL | TOK_ADD_BOS); /* as prompt_ids */
    return es;
}

void gw_exact_stream_feed(struct gw_exact_stream *es, const char *raw, size_t n)
{
    if (!es->off && jstr_feed(&es->js, raw, n, stream_text, es) < 0)
        stream_off(es);
}

void gw_exact_stream_end(struct gw_exact_stream *es, const struct bodyscan *bs,
                         struct gw_request *r)
{
    if (!es->off && es->js.done && !r->ex && !bs->err_msg &&
        tok_stream_finish(&es->ts, &es->ids) == 0 && (r->ex = kv_calloc(1, sizeof(*r->ex)))) {
        r->ex->ids = es->ids;
        memset(&es->ids, 0, sizeof(es->ids));
        r->ex->pre_tok = es->t;
        if (bs->has_cache_salt) {
            memcpy(r->ex->salt, bs->cache_salt, bs->cache_salt_len);
            r->ex->salt_len = bs->cache_salt_len;
        }
        es->off = 1; /* tok_stream_finish freed the stream */
    }
    stream_off(es);
}

void gw_exact_stream_free(struct gw_exact_stream *es)
{
    if (!es)
        return;
    stream_off(es);
    kv_free(es);
}

void gw_exact_release(struct gw_request *r)
{
    struct gw_exact_req *ex = r->ex;
    if (!ex)
        return;
    tok_ids_free(&ex->ids);
    kv_free(ex->keys);
    kv_free(ex);
    r->ex = NULL;
}
