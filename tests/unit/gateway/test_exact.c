/* Unit tests for user/gateway/exact.c through gw_route: a request is
 * tokenized (podsim's pseudo-tokenizer), keyed in blocks of the pods'
 * block size and judged per pod by the exact index (fed real KV-event
 * batches through the decoder) where the pod is exact, by the approximate
 * index where it is not, and by the larger of the two while it syncs. The
 * exact index overrules a stale approximate credit; a routed request
 * leaves predictions; what the renderer does not reproduce stays
 * approximate; the tokenizer table answers per model. */
#include "harness.h"
#include "gw_fixture.h"
#include "kvev_pack.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "core/blockkey.h"
#include "core/kvev_decode.h"
#include "core/kvindex.h"
#include "gateway/exact.h"
#include "tok/tok.h"

#define BS 16
#define NPODS 4

static struct gw g;
static struct kvindex *X;
static struct kvev_decoder D;
static uint64_t seqs[NPODS];

static void setup_once(void)
{
    gw_fixture_init(&g);
    g.cfg.ntokenizers = 1;
    strcpy(g.cfg.tokenizers[0].model, "llama");
    g.cfg.tokenizers[0].pseudo = 1;
    char err[256];
    CHECK_EQ(gw_exact_init(&g, err, sizeof(err)), 0);
    X = kvx_new(POD_MAX, 1 << 16, 4096);
    CHECK(X != NULL);
    g.kvx = X;
    kvev_decoder_init(&D);
    struct pod_snapshot *s = snapshot_new(NPODS + 1);
    for (int i = 0; i <= NPODS; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = (uint32_t)i;
        snprintf(p->name, sizeof(p->name), "pod%d", i);
        p->healthy = p->metrics_ok = 1;
        p->scraped_ns = UINT64_MAX / 2; /* fresh for the whole run */
        p->nmodels = 1;
        strcpy(p->models[0], i < NPODS ? "llama" : "qwen");
        p->nadapters = i == 1;
        if (i == 1)
            strcpy(p->adapters[0], "sql-lora");
    }
    snapshot_publish(s);
    /* pods 0..2 publish events (pod 3 does not: approximate) */
    for (uint32_t p = 0; p < 3; p++)
        kvx_pod_enable(X, p, bk_model_root("llama", 5));
}

/* A prompt of nblocks x BS pseudo-tokens (4 bytes each), unique per tag. */
static char *text(int tag, int nblocks)
{
    size_t n = (size_t)nblocks * BS * 4;
    char *t = malloc(n + 1);
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(tag + 1);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t[i] = (char)('a' + x % 26);
    }
    t[n] = 0;
    return t;
}

/* The pseudo-tokens of s, as the pod will see a completions prompt. */
static size_t ids_of(const char *s, uint32_t *out, size_t max)
{
    struct tok *t = tok_pseudo();
    struct tok_ids ids = {0};
    CHECK_EQ(tok_encode(t, s, strlen(s), TOK_PARSE_SPECIAL | TOK_ADD_BOS, &ids), 0);
    size_t n = ids.n < max ? ids.n : max;
    memcpy(out, ids.v, n * sizeof(*out));
    tok_ids_free(&ids);
    tok_free(t);
    return n;
}

/* The pod stores blocks [0, nblocks) of tokens t (engine hashes unique per
 * pod and tag) in its next batch. */
static void pod_stores(uint32_t pod, const uint32_t *t, uint32_t nblocks, int tag,
                       const char *lora)
{
    uint64_t h[64];
    for (uint32_t i = 0; i < nblocks; i++)
        h[i] = ((uint64_t)pod << 48) | ((uint64_t)tag << 24) | (i + 1);
    struct kp k;
    kp_init(&k);
    kp_batch(&k, 0, 1);
    kp_stored(&k, &(struct kp_stored){.hashes = h, .n = nblocks, .tokens = t,
                                      .ntokens = nblocks * BS, .block_size = BS,
                                      .fields = lora ? 8 : 6, .lora_name = lora});
    enum kvx_seq sq = kvx_seq_check(X, pod, seqs[pod]++);
    CHECK(sq == KVX_SEQ_APPLY || sq == KVX_SEQ_RESTART);
    const struct kvev_batch *b;
    CHECK_EQ(kvev_decode(&D, k.sb.data, k.sb.size, &b), 0);
    CHECK_EQ(kvx_apply(X, pod, b), 0);
    kp_free(&k);
}

static void scanned(struct gw_request *r, const char *body)
{
    memset(r, 0, sizeof(*r));
    struct gw_scan *sc = gw_scan_new(&g);
    CHECK_EQ(gw_scan_feed(sc, body, strlen(body)), 0);
    const char *err = NULL;
    size_t off = 0;
    CHECK_EQ(gw_scan_finish(sc, r, &err, &off), 0);
    gw_scan_free(sc);
    r->body = body;
    r->body_len = strlen(body);
}

static char *completion(const char *model, const char *prompt, const char *extra)
{
    size_t n = strlen(prompt) + 256;
    char *b = malloc(n);
    snprintf(b, n, "{\"model\":\"%s\",\"prompt\":\"%s\"%s}", model, prompt, extra ? extra : "");
    return b;
}

/* Routes body; returns the slot (and leaves r routed for the caller). */
static uint32_t route(struct gw_request *r, const char *body)
{
    scanned(r, body);
    CHECK_EQ(gw_route(&g, r, UINT32_MAX), ROUTE_OK);
    return r->pod.slot;
}

static void done(struct gw_request *r)
{
    gw_route_release(&g, r);
    gw_exact_release(r);
}

TEST(exact_index_overrules_a_stale_approximate_credit)
{
    /* every publishing pod has stored something (block size known) */
    char *other = text(9, 4);
    uint32_t ot[4 * BS];
    CHECK_EQ(ids_of(other, ot, 4 * BS), 4 * BS);
    pod_stores(0, ot, 4, 9, NULL);
    pod_stores(2, ot, 4, 9, NULL);
    CHECK_EQ(kvx_pod_mode(X, 0), KVX_EXACT);
    CHECK_EQ(kvx_pod_mode(X, 2), KVX_EXACT);
    /* pod 1 holds prompt P (10 blocks); the approximate index believes pod
     * 0 does (an earlier route whose blocks pod 0 has since evicted) */
    char *p = text(1, 10);
    uint32_t pt[10 * BS];
    CHECK_EQ(ids_of(p, pt, 10 * BS), 10 * BS);
    pod_stores(1, pt, 10, 1, NULL);
    CHECK_EQ(kvx_pod_mode(X, 1), KVX_EXACT);
    char *body = completion("llama", p, NULL);
    struct gw_request r;
    scanned(&r, body);
    pidx_insert(g.pidx, 0, r.keys, r.nkeys);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.pod.slot, 1);
    CHECK(r.index_mode && !strcmp(r.index_mode, "exact"));
    CHECK_EQ(r.d.blocks, 10);        /* blocks of the token chain, */
    CHECK_EQ(r.d.prefix_blocks, 10); /* all held by pod 1 */
    CHECK_EQ(r.prompt_tokens, 10 * BS); /* counted, not estimated */
    CHECK_EQ(r.d.reason, REASON_PREFIX);
    done(&r);
    free(body);
    free(p);
    free(other);
}

TEST(a_routed_request_leaves_predictions_not_confirmed_entries)
{
    /* 4 blocks pods 0 and 2 hold (the first test's `other`), then 2 new */
    char *head = text(9, 4), *tail = text(2, 2);
    char *p = malloc(strlen(head) + strlen(tail) + 1);
    strcat(strcpy(p, head), tail);
    free(head);
    free(tail);
    char *body = completion("llama", p, NULL);
    struct gw_request r;
    uint32_t slot = route(&r, body);
    CHECK(slot == 0 || slot == 2);
    CHECK_EQ(r.d.prefix_blocks, 4);
    uint32_t t[6 * BS];
    uint64_t keys[6];
    CHECK_EQ(ids_of(p, t, 6 * BS), 6 * BS);
    bk_chain(bk_model_root("llama", 5), t, 6 * BS, BS, NULL, keys, 6);
    uint16_t m[POD_MAX];
    kvx_lookup(X, keys, 6, m, 0);
    CHECK_EQ(m[slot], 6);
    kvx_lookup(X, keys, 6, m, KVX_LOOKUP_CONFIRMED);
    CHECK_EQ(m[slot], 4); /* its events confirmed the first 4 only */
    gw_route_release(&g, &r);
    /* the same prompt again follows the prediction */
    struct gw_request r2;
    CHECK_EQ(route(&r2, body), slot);
    CHECK_EQ(r2.d.prefix_blocks, 6);
    done(&r2);
    /* r's attempt fails before the pod stored anything: its predictions
     * are taken back (what the events confirmed stays), and so is the
     * approximate index's credit */
    gw_route_withdraw(&g, &r);
    kvx_lookup(X, keys, 6, m, 0);
    CHECK_EQ(m[slot], 4);
    uint16_t am[POD_MAX];
    pidx_lookup(g.pidx, r.keys, r.nkeys, am);
    CHECK_EQ(am[slot], 0);
    gw_exact_release(&r);
    free(body);
    free(p);
}

TEST(an_approximate_pod_is_judged_by_the_approximate_index_in_token_blocks)
{
    /* pod 3 publishes nothing; the approximate index credits it with Q */
    char *q = text(3, 8);
    char *body = completion("llama", q, NULL);
    struct gw_request r;
    scanned(&r, body);
    pidx_insert(g.pidx, 3, r.keys, r.nkeys);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.pod.slot, 3);
    CHECK(!strcmp(r.index_mode, "approximate"));
    CHECK_EQ(r.d.blocks, 8);
    /* 512 prompt bytes = 8 fingerprint blocks of 64 = 8 token blocks */
    CHECK_EQ(r.d.prefix_blocks, 8);
    done(&r);
    free(body);
    free(q);
}

TEST(a_syncing_pod_takes_the_larger_of_both)
{
    /* pod 2 loses a batch it cannot get back: SYNCING (a subset) */
    kvx_gap_lost(X, 2, KVX_SEQ_UNKNOWN);
    seqs[2] = 100;
    CHECK_EQ(kvx_pod_mode(X, 2), KVX_SYNCING);
    char *q = text(4, 5);
    char *body = completion("llama", q, NULL);
    struct gw_request r;
    scanned(&r, body);
    pidx_insert(g.pidx, 2, r.keys, r.nkeys);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.pod.slot, 2);
    CHECK(!strcmp(r.index_mode, "syncing"));
    CHECK_EQ(r.d.prefix_blocks, 5);
    done(&r);
    free(body);
    free(q);
}

TEST(chats_render_and_adapters_key_apart)
{
    /* a chat is keyed on its rendered text: pod 0 stores the rendering */
    const char *chat = "{\"model\":\"llama\",\"messages\":[{\"role\":\"system\",\"content\":"
                       "\"You are a careful assistant who answers in full sentences and "
                       "cites the documents it was given, always.\"},{\"role\":\"user\","
                       "\"content\":\"Summarise the attached report in three bullet points, "
                       "one line each, no more.\"}]}";
    cJSON *j = cJSON_Parse(chat);
    struct sbuf text_;
    sbuf_init(&text_);
    struct tok *t = tok_pseudo();
    const char *why = NULL;
    CHECK_EQ(tok_render_chat(t, cJSON_GetObjectItem(j, "messages"), 1, &text_, &why), 0);
    struct tok_ids ids = {0};
    CHECK_EQ(tok_encode(t, text_.data, text_.len, TOK_PARSE_SPECIAL, &ids), 0);
    uint32_t nb = (uint32_t)(ids.n / BS);
    CHECK(nb >= 3);
    pod_stores(0, ids.v, nb, 5, NULL);
    struct gw_request r;
    CHECK_EQ(route(&r, chat), 0);
    CHECK(!strcmp(r.index_mode, "exact"));
    CHECK_EQ(r.d.prefix_blocks, nb);
    done(&r);
    /* with "tools" the renderer is not trusted: approximate */
    char *tools = malloc(strlen(chat) + 64);
    strcpy(tools, chat);
    strcpy(tools + strlen(tools) - 1, ",\"tools\":[{\"type\":\"function\"}]}");
    route(&r, tools);
    CHECK(!strcmp(r.index_mode, "approximate"));
    done(&r);
    free(tools);
    /* the adapter's blocks (lora_name on the event) are not the base's */
    char *p = text(6, 4);
    uint32_t pt[4 * BS];
    ids_of(p, pt, 4 * BS);
    pod_stores(1, pt, 4, 6, "sql-lora");
    char *base = completion("llama", p, NULL), *lora = completion("sql-lora", p, NULL);
    CHECK_EQ(route(&r, lora), 1);
    CHECK_EQ(r.d.prefix_blocks, 4);
    CHECK(!strcmp(r.index_mode, "exact"));
    done(&r);
    route(&r, base);
    CHECK_EQ(r.d.prefix_blocks, 0); /* nobody holds the base model's chain */
    done(&r);
    free(base);
    free(lora);
    free(p);
    tok_ids_free(&ids);
    tok_free(t);
    sbuf_free(&text_);
    cJSON_Delete(j);
}

TEST(models_without_a_tokenizer_stay_approximate)
{
    CHECK(gw_exact_model_ok(&g, "llama"));
    CHECK(!gw_exact_model_ok(&g, "qwen")); /* no entry and no "*" */
    CHECK(gw_exact_tokenizer(&g, "qwen") == NULL);
    char *body = completion("qwen", "short prompt", NULL);
    struct gw_request r;
    CHECK_EQ(route(&r, body), NPODS);
    CHECK(!strcmp(r.index_mode, "approximate"));
    CHECK(r.ex == NULL); /* nothing tokenized: no pod of qwen publishes events */
    done(&r);
    free(body);
    /* a config "*" entry covers every model */
    struct gw h;
    memset(&h, 0, sizeof(h));
    gw_config_defaults(&h.cfg);
    h.cfg.ntokenizers = 1;
    strcpy(h.cfg.tokenizers[0].model, "*");
    h.cfg.tokenizers[0].pseudo = 1;
    char err[256];
    CHECK_EQ(gw_exact_init(&h, err, sizeof(err)), 0);
    CHECK(gw_exact_model_ok(&h, "qwen"));
    gw_exact_fini(&h);
    /* a tokenizer file that is not there: start refused, with its entry named */
    h.cfg.tokenizers[0].pseudo = 0;
    strcpy(h.cfg.tokenizers[0].file, "/nonexistent/tokenizer.json");
    CHECK_EQ(gw_exact_init(&h, err, sizeof(err)), -1);
    CHECK(strstr(err, "tokenizers.*") != NULL);
    gw_exact_fini(&h);
}

TEST(limits_and_retries)
{
    /* a body past 2 MiB is not tokenized on the worker: approximate */
    size_t n = ((size_t)2 << 20) + 1;
    char *big = malloc(n + 64);
    int k = snprintf(big, n + 64, "{\"model\":\"llama\",\"prompt\":\"");
    memset(big + k, 'q', n - (size_t)k - 2);
    strcpy(big + n - 2, "\"}");
    CHECK_EQ(strlen(big), n);
    struct gw_request r;
    route(&r, big);
    CHECK(!strcmp(r.index_mode, "approximate"));
    CHECK(r.d.blocks <= 256); /* fingerprint blocks */
    done(&r);
    /* a prompt of 1 MiB + 1 byte is not tokenized either; 1 MiB is */
    size_t m = ((size_t)1 << 20) + 1;
    strcpy(big + k + m, "\"}");
    route(&r, big);
    CHECK(!strcmp(r.index_mode, "approximate"));
    CHECK(r.d.blocks <= 256);
    done(&r);
    strcpy(big + k + m - 1, "\"}");
    route(&r, big);
    CHECK(r.ex != NULL); /* tokenized: the match is in token blocks (the pick */
    CHECK_EQ(r.d.blocks, ((size_t)1 << 20) / 4 / BS); /* may be pod 3, approximate) */
    done(&r);
    free(big);
    /* a prompt shorter than a block, routed again (a retry): its token
     * count is kept */
    char *body = completion("llama", "short", NULL);
    scanned(&r, body);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.prompt_tokens, 2);
    CHECK_EQ(r.d.blocks, 0);
    uint32_t first = r.pod.slot;
    gw_route_release(&g, &r);
    CHECK_EQ(gw_route(&g, &r, first), ROUTE_OK);
    CHECK(r.pod.slot != first);
    CHECK_EQ(r.prompt_tokens, 2);
    done(&r);
    free(body);
}

/* A completions prompt is tokenized while the body arrives (core/jstr
 * decodes the JSON string, the tokenizer's stream takes the text): the
 * tokens are there when the scan ends, before routing, and are exactly
 * what the whole body gives. */
TEST(a_completion_prompt_is_tokenized_while_it_arrives)
{
    char *t = text(21, 6);
    /* escapes: a newline, e-acute, an emoji as a surrogate pair, a quote */
    size_t n = strlen(t) + 128;
    char *prompt = malloc(n), *decoded = malloc(n);
    snprintf(prompt, n, "x\\n\\u00e9\\ud83d\\ude00\\\"%s", t);
    snprintf(decoded, n, "x\n\xc3\xa9\xf0\x9f\x98\x80\"%s", t);
    uint32_t want[512];
    size_t nwant = ids_of(decoded, want, 512);
    char *body = completion("llama", prompt, NULL);
    for (size_t chunk = 1; chunk <= 4096; chunk *= 8) {
        struct gw_request r;
        memset(&r, 0, sizeof(r));
        struct gw_scan *sc = gw_scan_new(&g);
        for (size_t o = 0; o < strlen(body); o += chunk) {
            size_t k = strlen(body) - o < chunk ? strlen(body) - o : chunk;
            CHECK_EQ(gw_scan_feed(sc, body + o, k), 0);
        }
        const char *err = NULL;
        size_t off = 0;
        CHECK_EQ(gw_scan_finish(sc, &r, &err, &off), 0);
        gw_scan_free(sc);
        CHECK(r.ex != NULL); /* tokenized during the scan, before routing */
        r.body = body;
        r.body_len = strlen(body);
        CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
        CHECK_EQ(r.prompt_tokens, nwant);
        CHECK_EQ(r.d.blocks, nwant / BS);
        done(&r);
    }
    free(body);
    /* the model named after the prompt: the only tokenizer streams, and
     * its tokens serve */
    size_t bn = strlen(prompt) + 128;
    body = malloc(bn);
    snprintf(body, bn, "{\"prompt\":\"%s\",\"model\":\"llama\"}", prompt);
    struct gw_request r;
    scanned(&r, body);
    CHECK(r.ex != NULL);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK_EQ(r.prompt_tokens, nwant);
    done(&r);
    /* ... and for a model it does not serve, they are dropped unused */
    snprintf(body, bn, "{\"prompt\":\"%s\",\"model\":\"qwen\"}", prompt);
    scanned(&r, body);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK(!strcmp(r.index_mode, "approximate"));
    done(&r);
    free(body);
    /* a chat is rendered from every message: tokenized at the end */
    body = malloc(bn);
    snprintf(body, bn, "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}", t);
    scanned(&r, body);
    CHECK(r.ex == NULL);
    CHECK_EQ(gw_route(&g, &r, UINT32_MAX), ROUTE_OK);
    CHECK(r.ex != NULL);
    done(&r);
    free(body);
    free(prompt);
    free(decoded);
    free(t);
}

int main(void)
{
    setup_once();
    RUN(exact_index_overrules_a_stale_approximate_credit);
    RUN(a_routed_request_leaves_predictions_not_confirmed_entries);
    RUN(an_approximate_pod_is_judged_by_the_approximate_index_in_token_blocks);
    RUN(a_syncing_pod_takes_the_larger_of_both);
    RUN(chats_render_and_adapters_key_apart);
    RUN(models_without_a_tokenizer_stay_approximate);
    RUN(limits_and_retries);
    RUN(a_completion_prompt_is_tokenized_while_it_arrives);
    gw_exact_fini(&g);
    kvx_free(X);
    kvev_decoder_free(&D);
    snapshot_publish(NULL);
    return harness_done();
}
