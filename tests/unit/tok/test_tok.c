/* Unit tests for user/tok/tok_load.c + tok_encode.c: the pre-tokenizer's
 * rules, merges, added and special tokens, bytes that are not UTF-8, NFC,
 * ignore_merges, BOS, the limits, stream == whole at every split point, the
 * pseudo-tokenizer, out of memory. The tokenizer is the small one of
 * tok_fixture.h; tests/tok/test_reference.sh checks the real ones. */
#include "harness.h"
#include "unit/tok/tok_fixture.h"

#include "tok/tok_encode.c"

#include <errno.h>
#include <pthread.h>

#include "podsim/prompt.h"

static struct tok *L, *Q; /* Llama-3-like, Qwen-like */

/* the pre-tokens of s joined with '|' (the regex as pretok runs it) */
static const char *pieces(const struct tok *t, const char *s)
{
    static char out[4096];
    out[0] = 0;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t n = strlen(s), pos = 0;
    while (pos < n && pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, 0, md, NULL) >= 0) {
        if (ov[0] > pos) /* a gap: none expected */
            strcat(out, "<gap>");
        if (out[0])
            strcat(out, "|");
        strncat(out, s + ov[0], ov[1] - ov[0]);
        pos = ov[1];
    }
    pcre2_match_data_free(md);
    return out;
}

TEST(pretok_contractions_any_case)
{
    CHECK_STR(pieces(L, "I'm"), "I|'m");
    CHECK_STR(pieces(L, "DON'T"), "DON|'T");
    CHECK_STR(pieces(L, "we'Re they'LL you'Ve it's he'd"),
              "we|'Re| they|'LL| you|'Ve| it|'s| he|'d");
    CHECK_STR(pieces(L, "x'S"), "x|'S");
    /* not a contraction: the quote leads the letters, or with a space
     * before it, is punctuation of its own */
    CHECK_STR(pieces(L, "'x 'hello"), "'x| '|hello");
    /* U+017F (long s) is no 's' here (explicit ASCII classes, as the
     * reference does; PCRE2's caseless UCP match would take it) */
    CHECK_STR(pieces(L, "a'\xc5\xbf"), "a|'\xc5\xbf");
}

TEST(pretok_letters_with_one_leading_non_letter)
{
    CHECK_STR(pieces(L, "hello world"), "hello| world");
    CHECK_STR(pieces(L, "$hello  __init"), "$hello| | __|init");
    CHECK_STR(pieces(L, "caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87"), "caf\xc3\xa9| \xe4\xb8\xad\xe6\x96\x87");
    /* a newline never leads letters */
    CHECK_STR(pieces(L, "a\nb"), "a|\n|b");
}

TEST(pretok_digits_three_for_llama_one_for_qwen)
{
    CHECK_STR(pieces(L, "1234567"), "123|456|7");
    CHECK_STR(pieces(Q, "1234"), "1|2|3|4");
    CHECK_STR(pieces(L, "x12"), "x|12");
    /* \p{N} is more than ASCII: Arabic-Indic digits, superscripts */
    CHECK_STR(pieces(L, "\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4"), "\xd9\xa1\xd9\xa2\xd9\xa3|\xd9\xa4");
    CHECK_STR(pieces(L, " 42"), " |42");
}

TEST(pretok_punctuation_runs_with_a_leading_space_and_newlines)
{
    CHECK_STR(pieces(L, "a ... b"), "a| ...| b");
    CHECK_STR(pieces(L, "x!!!\n\ny"), "x|!!!\n\n|y");
    CHECK_STR(pieces(L, "f(x);"), "f|(x|);");
    CHECK_STR(pieces(L, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80 \xf0\x9f\x91\x8d"),
              "\xf0\x9f\x98\x80\xf0\x9f\x98\x80| \xf0\x9f\x91\x8d");
}

TEST(pretok_whitespace_and_newline_runs)
{
    CHECK_STR(pieces(L, "a\n\n\nb"), "a|\n\n\n|b");
    CHECK_STR(pieces(L, "a  \n\n  b"), "a|  \n\n| | b");
    /* whitespace not followed by non-space: the last space joins the word */
    CHECK_STR(pieces(L, "a   b"), "a|  | b");
    CHECK_STR(pieces(L, "a   "), "a|   ");
    CHECK_STR(pieces(L, "\t\tx"), "\t|\tx");
    CHECK_STR(pieces(L, " \r\n"), " \r\n");
    /* U+0085 is White_Space for PCRE2 (and Oniguruma, HF's engine), not for
     * a JavaScript regex; U+FEFF the other way round (tests/tok/README.md) */
    CHECK_STR(pieces(L, "a\xc2\x85 b"), "a|\xc2\x85| b");
    CHECK_STR(pieces(L, "a \xef\xbb\xbf" "b"), "a| \xef\xbb\xbf|b");
}

static int enc(const struct tok *t, const char *s, unsigned flags, uint32_t *want, size_t nwant)
{
    struct tok_ids ids = {0};
    int rc = tok_encode(t, s, strlen(s), flags, &ids);
    int ok = rc == 0 && ids.n == nwant && (!nwant || !memcmp(ids.v, want, nwant * 4));
    if (!ok) {
        fprintf(stderr, "  encode(\"%s\") rc %d:", s, rc);
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %u", ids.v[i]);
        fprintf(stderr, "\n");
    }
    tok_ids_free(&ids);
    return ok;
}
#define ENC(t, s, flags, ...)                                                             \
    do {                                                                                  \
        uint32_t _w[] = {__VA_ARGS__};                                                    \
        CHECK(enc(t, s, flags, _w, sizeof(_w) / 4));                                      \
    } while (0)

TEST(merges_by_rank_leftmost_first)
{
    ENC(L, "hello world", 0, 259, 264);
    ENC(L, "abc", 0, 'a', 267);       /* "b c" (rank 11) before "a b" (rank 12) */
    ENC(L, "ab", 0, 268);
    ENC(L, "aaa", 0, 265, 'a');       /* leftmost pair first */
    ENC(L, "aaaaaa", 0, 266, 265);
    ENC(L, "1234", 0, 270, '4');
    ENC(Q, "1234", 0, '1', '2', '3', '4');
    ENC(L, "caf\xc3\xa9", 0, 'c', 'a', 'f', 273);
    ENC(L, "", 0);
}

TEST(merges_array_form_same_as_string_form)
{
    struct tok *a = fix_tok((struct fix_opts){.array_merges = 1}, NULL);
    CHECK(a != NULL);
    if (!a)
        return;
    ENC(a, "hello world aaaaaa abc 1234", 0, 259, 264, 32, 266, 265, 32, 'a', 267, 32, 270, '4');
    ENC(L, "hello world aaaaaa abc 1234", 0, 259, 264, 32, 266, 265, 32, 'a', 267, 32, 270, '4');
    tok_free(a);
}

TEST(long_piece_takes_the_heap_path_with_the_same_result)
{
    /* 1001 'a' > BPE_STACK: heap; 6 'a': scan. Both: "aaaa" runs then the rest */
    char s[1002];
    memset(s, 'a', 1001);
    s[1001] = 0;
    struct tok_ids ids = {0};
    CHECK_EQ(tok_encode(L, s, 1001, 0, &ids), 0);
    CHECK_EQ(ids.n, 251);
    CHECK_EQ(ids.v[0], 266);
    CHECK_EQ(ids.v[249], 266);
    CHECK_EQ(ids.v[250], 'a');
    tok_ids_free(&ids);
    s[BPE_STACK + 1] = 0; /* 129 = 32 x aaaa + a */
    CHECK_EQ(tok_encode(L, s, BPE_STACK + 1, 0, &ids), 0);
    CHECK_EQ(ids.n, 33);
    CHECK_EQ(ids.v[32], 'a');
    tok_ids_free(&ids);
}

TEST(ignore_merges_takes_a_whole_vocab_word)
{
    struct tok *im = fix_tok((struct fix_opts){.ignore_merges = 1}, NULL);
    CHECK(im != NULL);
    if (!im)
        return;
    ENC(im, "xyz", 0, 500);
    ENC(L, "xyz", 0, 'x', 'y', 'z'); /* no merge reaches it */
    ENC(im, "hello", 0, 259);
    tok_free(im);
}

TEST(added_and_special_tokens)
{
    ENC(L, "a<|eot_id|>b", TOK_PARSE_SPECIAL, 'a', 1001, 'b');
    /* special tokens are text unless asked for (split_special_tokens) */
    struct tok_ids ids = {0};
    CHECK_EQ(tok_encode(L, "a<|eot_id|>", 11, 0, &ids), 0);
    CHECK(ids.n > 2);
    for (size_t i = 0; i < ids.n; i++)
        CHECK(ids.v[i] < 1000);
    tok_ids_free(&ids);
    /* non-special added tokens always */
    ENC(L, "x<think>y", 0, 'x', 1002, 'y');
    /* leftmost, then longest: "<|a|>b" over "<|a|>" */
    ENC(L, "<|a|>b<|a|>c", TOK_PARSE_SPECIAL, 1004, 1003, 'c');
    /* look-alikes stay text */
    ENC(L, "<|eot_id|", TOK_PARSE_SPECIAL, '<', '|', 'e', 'o', 't', '_', 'i', 'd', '|');
    /* the text around a token is pre-tokenized apart: " " before it alone */
    ENC(L, "hello <|eot_id|> world", TOK_PARSE_SPECIAL, 259, ' ', 1001, 264);
}

TEST(added_token_lstrip_rstrip)
{
    struct tok *s = fix_tok((struct fix_opts){.lstrip_rstrip = 1}, NULL);
    CHECK(s != NULL);
    if (!s)
        return;
    ENC(s, "a  <ws>  b", 0, 'a', 1005, 'b');
    ENC(s, "a<ws>b", 0, 'a', 1005, 'b');
    tok_free(s);
}

TEST(bos_only_when_asked)
{
    ENC(L, "hello", TOK_ADD_BOS, 1000, 259);
    ENC(L, "hello", 0, 259);
    /* in the text, with special parsing, it is a token like any other */
    ENC(L, "<|begin_of_text|>hello", TOK_PARSE_SPECIAL, 1000, 259);
}

TEST(invalid_utf8_becomes_replacement_characters)
{
    /* each maximal invalid subsequence: one U+FFFD (EF BF BD) */
    uint32_t fffd[] = {0xEF, 0xBF, 0xBD};
    struct tok_ids a = {0}, b = {0};
    CHECK_EQ(tok_encode(L, "\xff", 1, 0, &a), 0);
    CHECK_EQ(a.n, 3);
    CHECK(a.n == 3 && !memcmp(a.v, fffd, sizeof(fffd)));
    tok_ids_free(&a);
    /* E0 80: E0 needs A0..BF next, so two */
    CHECK_EQ(tok_encode(L, "\xe0\x80", 2, 0, &a), 0);
    CHECK_EQ(tok_encode(L, "\xef\xbf\xbd\xef\xbf\xbd", 6, 0, &b), 0);
    CHECK(a.n == b.n && !memcmp(a.v, b.v, a.n * 4));
    tok_ids_free(&a);
    tok_ids_free(&b);
    /* a truncated 4-byte sequence at the end: one; surrogates (ED A0 80): three */
    CHECK_EQ(tok_encode(L, "x\xf0\x9f\x98", 4, 0, &a), 0);
    CHECK_EQ(a.n, 4);
    tok_ids_free(&a);
    CHECK_EQ(tok_encode(L, "\xed\xa0\x80", 3, 0, &a), 0);
    CHECK_EQ(tok_encode(L, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 9, 0, &b), 0);
    CHECK(a.n == b.n && !memcmp(a.v, b.v, a.n * 4));
    tok_ids_free(&a);
    tok_ids_free(&b);
    /* NUL is a byte like any other */
    CHECK_EQ(tok_encode(L, "a\0b", 3, 0, &a), 0);
    CHECK_EQ(a.n, 3);
    CHECK(a.n == 3 && a.v[1] == 0);
    tok_ids_free(&a);
}

TEST(nfc_for_qwen_only)
{
    /* e + combining acute -> U+00E9 under NFC (Qwen), left alone without */
    ENC(Q, "cafe\xcc\x81", 0, 'c', 'a', 'f', 273);
    ENC(L, "cafe\xcc\x81", 0, 'c', 'a', 'f', 'e', 0xCC, 0x81);
    /* normalized per section: '>' + U+0338 would compose to U+226F, but the
     * '>' belongs to an added token found first */
    ENC(Q, "<think>\xcc\xb8", 0, 1002, 0xCC, 0xB8);
}

TEST(limit_max_bytes_crossed)
{
    struct tok *t = fix_tok((struct fix_opts){0}, NULL);
    CHECK(t != NULL);
    if (!t)
        return;
    tok_set_max_bytes(t, 10);
    struct tok_ids ids = {0};
    CHECK_EQ(tok_encode(t, "0123456789", 10, 0, &ids), 0);
    size_t n = ids.n;
    CHECK_EQ(tok_encode(t, "0123456789a", 11, 0, &ids), -E2BIG);
    CHECK_EQ(ids.n, n); /* nothing appended */
    struct tok_stream st;
    tok_stream_init(&st, t, 0);
    CHECK_EQ(tok_stream_feed(&st, "01234", 5, &ids), 0);
    CHECK_EQ(tok_stream_feed(&st, "56789", 5, &ids), 0);
    CHECK_EQ(tok_stream_feed(&st, "a", 1, &ids), -E2BIG);
    CHECK_EQ(tok_stream_finish(&st, &ids), -E2BIG); /* sticky */
    tok_ids_free(&ids);
    tok_free(t);
    CHECK_EQ(TOK_MAX_BYTES_DEFAULT, 64u << 20);
}

static int same(const struct tok_ids *a, const struct tok_ids *b)
{
    return a->n == b->n && (!a->n || !memcmp(a->v, b->v, a->n * 4));
}

/* every split point into two pieces, then byte by byte */
static int stream_matches(const struct tok *t, const char *s, size_t n, unsigned flags)
{
    struct tok_ids whole = {0};
    if (tok_encode(t, s, n, flags, &whole))
        return 0;
    int ok = 1;
    for (size_t cut = 0; cut <= n + 1 && ok; cut++) {
        struct tok_ids ids = {0};
        struct tok_stream st;
        tok_stream_init(&st, t, flags);
        if (cut <= n) {
            ok &= tok_stream_feed(&st, s, cut, &ids) == 0;
            ok &= tok_stream_feed(&st, s + cut, n - cut, &ids) == 0;
        } else {
            for (size_t i = 0; i < n; i++)
                ok &= tok_stream_feed(&st, s + i, 1, &ids) == 0;
        }
        ok &= tok_stream_finish(&st, &ids) == 0;
        if (!same(&ids, &whole)) {
            fprintf(stderr, "  stream differs at cut %zu of \"%.*s\"\n", cut, (int)n, s);
            ok = 0;
        }
        tok_ids_free(&ids);
    }
    tok_ids_free(&whole);
    return ok;
}

static const char *const SAMPLES[] = {
    "Hello world, I'm here: 1234567 apples!!\n\n  and   spaces   \t\tx",
    "<|begin_of_text|><|start_header|>user\n\nhi there<|eot_id|><think>\n\n",
    "caf\xc3\xa9 cafe\xcc\x81 \xe4\xb8\xad\xe6\x96\x87 \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 "
    "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 >\xcc\xb8 e\xcc\x81\xcc\x81",
    "bad \xff\xfe bytes \xe0\x80 and \xf0\x9f\x98 cut \xed\xa0\x80 end\xe2\x82",
    "int main(void) {\n    return 0;\n}\n\n\n   <|a|>b<|a|><|eot_id",
    "aaaaaaaaaaaaaaaaaaaa a's 'll DON'T \r\n\r\n \xc2\x85 \xef\xbb\xbf",
};

TEST(stream_equals_whole_at_every_split_point)
{
    for (size_t i = 0; i < sizeof(SAMPLES) / sizeof(SAMPLES[0]); i++) {
        size_t n = strlen(SAMPLES[i]);
        CHECK(stream_matches(L, SAMPLES[i], n, TOK_PARSE_SPECIAL));
        CHECK(stream_matches(L, SAMPLES[i], n, TOK_ADD_BOS));
        CHECK(stream_matches(Q, SAMPLES[i], n, TOK_PARSE_SPECIAL));
    }
    struct tok *s = fix_tok((struct fix_opts){.lstrip_rstrip = 1}, NULL);
    CHECK(s && stream_matches(s, "a  <ws>  b <ws>\n<ws>", 20, 0));
    tok_free(s);
}

/* a long pre-token fed a byte at a time: linear, not quadratic (200 KB
 * would be 2e10 byte scans the other way) */
TEST(stream_long_piece_byte_by_byte)
{
    size_t n = 200000;
    char *s = malloc(n);
    for (size_t i = 0; i < n; i++)
        s[i] = "abcdefgh"[i % 8];
    struct tok_ids whole = {0}, ids = {0};
    CHECK_EQ(tok_encode(L, s, n, 0, &whole), 0);
    struct tok_stream st;
    tok_stream_init(&st, L, 0);
    for (size_t i = 0; i < n; i++)
        tok_stream_feed(&st, s + i, 1, &ids);
    CHECK_EQ(ids.n, 0); /* one piece: nothing is sure before the end */
    CHECK_EQ(tok_stream_finish(&st, &ids), 0);
    CHECK(same(&ids, &whole));
    tok_ids_free(&ids);
    tok_ids_free(&whole);
    free(s);
}

TEST(stream_emits_before_the_end)
{
    struct tok_ids ids = {0};
    struct tok_stream st;
    tok_stream_init(&st, L, TOK_PARSE_SPECIAL);
    CHECK_EQ(tok_stream_feed(&st, "hello world and", 15, &ids), 0);
    CHECK(ids.n >= 2); /* "hello", " world" are sure; " and" may grow */
    CHECK_EQ(ids.v[0], 259);
    size_t n = ids.n;
    /* "<|eot" may begin a token: " and" waits (its letters ran to the
     * end of what is certain) */
    CHECK_EQ(tok_stream_feed(&st, "<|eot", 5, &ids), 0);
    CHECK_EQ(ids.n, n);
    CHECK_EQ(tok_stream_feed(&st, "_id|> x", 7, &ids), 0);
    CHECK_EQ(ids.n, n + 5); /* " and" (3 bytes, no merges) and the token */
    CHECK_EQ(ids.v[ids.n - 1], 1001);
    CHECK_EQ(tok_stream_finish(&st, &ids), 0);
    tok_ids_free(&ids);
}

struct mt_arg {
    const struct tok *t;
    int bad;
};

static void *mt_worker(void *p)
{
    struct mt_arg *a = p;
    size_t ns = sizeof(SAMPLES) / sizeof(SAMPLES[0]);
    for (int r = 0; r < 200; r++) {
        const char *s = SAMPLES[r % ns];
        struct tok_ids x = {0}, y = {0};
        struct tok_stream st;
        tok_encode(a->t, s, strlen(s), TOK_PARSE_SPECIAL, &x);
        tok_stream_init(&st, a->t, TOK_PARSE_SPECIAL);
        tok_stream_feed(&st, s, strlen(s) / 2, &y);
        tok_stream_feed(&st, s + strlen(s) / 2, strlen(s) - strlen(s) / 2, &y);
        tok_stream_finish(&st, &y);
        a->bad += !same(&x, &y);
        tok_ids_free(&x);
        tok_ids_free(&y);
    }
    return NULL;
}

/* one tokenizer, four threads: no shared scratch (tok.h) */
TEST(shared_by_threads)
{
    pthread_t th[4];
    struct mt_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i] = (struct mt_arg){i % 2 ? Q : L, 0};
        CHECK_EQ(pthread_create(&th[i], NULL, mt_worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ(a[i].bad, 0);
    }
}

TEST(pseudo_tokenizer_is_podsims)
{
    struct tok *p = tok_pseudo();
    CHECK(p != NULL);
    if (!p)
        return;
    const char *s = "<|begin_of_text|>hi\xff\x00z";
    size_t n = 23;
    uint32_t want[6];
    prompt_tokenize(s, n, want);
    struct tok_ids ids = {0};
    CHECK_EQ(tok_encode(p, s, n, TOK_PARSE_SPECIAL | TOK_ADD_BOS, &ids), 0);
    CHECK_EQ(ids.n, prompt_ntokens(n));
    CHECK(ids.n == 6 && !memcmp(ids.v, want, sizeof(want)));
    tok_ids_free(&ids);
    CHECK(stream_matches(p, s, n, 0));
    CHECK_EQ(tok_template(p), TOK_TEMPLATE_PSEUDO);
    CHECK(tok_is_pseudo(p));
    tok_free(p);
}

TEST(load_refuses_what_it_does_not_support)
{
    char err[200];
    CHECK(tok_load_mem("not json", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "not JSON") != NULL);
    CHECK(tok_load_mem("{\"model\":{\"type\":\"Unigram\"}}", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "BPE") != NULL);
    CHECK(tok_load_mem("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", NULL,
                       err, sizeof(err)) == NULL);
    CHECK(strstr(err, "byte 0x00") != NULL);
    CHECK(tok_load("/nonexistent/tokenizer.json", NULL, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "No such file") != NULL);
    /* another normalizer */
    char *j = fix_json((struct fix_opts){0});
    char *k = strstr(j, "\"normalizer\":null");
    CHECK(k != NULL);
    if (k) {
        memcpy(k, "\"normalizer\":1234", 17);
        CHECK(tok_load_mem(j, NULL, err, sizeof(err)) == NULL);
        CHECK(strstr(err, "normalizer") != NULL);
    }
    free(j);
}

/* the fixture's JSON, changed by fn, loaded: NULL or the tokenizer */
static struct tok *load_changed(void (*fn)(cJSON *root, long k), long k, char *err, size_t n)
{
    char *j = fix_json((struct fix_opts){0});
    cJSON *root = cJSON_Parse(j);
    free(j);
    fn(root, k);
    j = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    struct tok *t = tok_load_mem(j, NULL, err, n);
    free(j);
    return t;
}

static void long_vocab_entry(cJSON *root, long k)
{
    char *s = malloc((size_t)k + 1);
    memset(s, 'q', (size_t)k);
    s[k] = 0;
    cJSON_AddNumberToObject(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "vocab"), s, 600);
    free(s);
}

static void many_added(cJSON *root, long k)
{
    cJSON *at = cJSON_GetObjectItem(root, "added_tokens");
    char c[32];
    for (long i = cJSON_GetArraySize(at); i < k; i++) {
        cJSON *x = cJSON_CreateObject();
        snprintf(c, sizeof(c), "<x%ld>", i);
        cJSON_AddNumberToObject(x, "id", 2000 + (double)i);
        cJSON_AddStringToObject(x, "content", c);
        cJSON_AddItemToArray(at, x);
    }
}

static void long_regex(cJSON *root, long k)
{
    cJSON *split = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(root, "pre_tokenizer"), "pretokenizers"), 0);
    char *s = malloc((size_t)k + 1);
    memset(s, 'a', (size_t)k);
    memcpy(s, "\\s+|", 4); /* "\s+|aaaa..." */
    s[k] = 0;
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(split, "pattern"), "Regex", cJSON_CreateString(s));
    free(s);
}

static void single_word(cJSON *root, long k)
{
    cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "added_tokens"), 0);
    cJSON_AddBoolToObject(x, k ? "single_word" : "normalized", 1);
    if (!k) {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "type", "NFC");
        cJSON_ReplaceItemInObject(root, "normalizer", n);
    }
}

TEST(added_token_options_not_reproduced_are_refused)
{
    char err[200];
    CHECK(load_changed(single_word, 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "single_word") != NULL);
    CHECK(load_changed(single_word, 0, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "is normalized") != NULL);
}

TEST(limits_of_a_tokenizer_file_crossed)
{
    char err[200];
    struct tok *t = load_changed(long_vocab_entry, TOK_MAX_TOKEN_CHARS, err, sizeof(err));
    CHECK(t != NULL);
    if (t)
        ENC(t, "qqqq", 0, 'q', 'q', 'q', 'q'); /* loaded, unreachable without merges */
    tok_free(t);
    CHECK(load_changed(long_vocab_entry, TOK_MAX_TOKEN_CHARS + 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "over 1000 characters") != NULL);
    t = load_changed(many_added, TOK_MAX_ADDED, err, sizeof(err));
    CHECK(t != NULL);
    if (t)
        ENC(t, "a<x65534>", 0, 'a', 2000 + 65534);
    tok_free(t);
    CHECK(load_changed(many_added, TOK_MAX_ADDED + 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "added_tokens: more than 65535") != NULL);
    t = load_changed(long_regex, TOK_MAX_REGEX, err, sizeof(err));
    CHECK(t != NULL);
    tok_free(t);
    CHECK(load_changed(long_regex, TOK_MAX_REGEX + 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "regex over 2000 bytes") != NULL);
}

TEST(out_of_memory_anywhere_in_load_and_encode)
{
    char *j = fix_json((struct fix_opts){.qwen = 1});
    char err[100];
    int loaded = 0;
    for (long n = 0; n < 2000 && !loaded; n += 7) {
        alloc_fail_after(n);
        struct tok *t = tok_load_mem(j, NULL, err, sizeof(err));
        alloc_fail_never();
        if (t) {
            loaded = 1;
            tok_free(t);
        } else
            CHECK(strstr(err, "memory") != NULL);
        CHECK_EQ(alloc_live(), 0);
    }
    CHECK(loaded);
    free(j);
    const char *s = SAMPLES[2];
    for (long n = 0; n < 40; n++) {
        struct tok_ids ids = {0};
        alloc_fail_after(n);
        int rc = tok_encode(Q, s, strlen(s), TOK_PARSE_SPECIAL, &ids);
        struct tok_stream st;
        tok_stream_init(&st, Q, 0);
        int rs = tok_stream_feed(&st, s, 9, &ids);
        if (!rs)
            rs = tok_stream_finish(&st, &ids);
        else
            tok_stream_free(&st);
        alloc_fail_never();
        CHECK(rc == 0 || rc == -ENOMEM);
        CHECK(rs == 0 || rs == -ENOMEM);
        tok_ids_free(&ids);
        CHECK_EQ(alloc_live(), 0);
    }
}

int main(void)
{
    L = fix_tok((struct fix_opts){0}, NULL);
    Q = fix_tok((struct fix_opts){.qwen = 1}, NULL);
    if (!L || !Q) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN(pretok_contractions_any_case);
    RUN(pretok_letters_with_one_leading_non_letter);
    RUN(pretok_digits_three_for_llama_one_for_qwen);
    RUN(pretok_punctuation_runs_with_a_leading_space_and_newlines);
    RUN(pretok_whitespace_and_newline_runs);
    RUN(merges_by_rank_leftmost_first);
    RUN(merges_array_form_same_as_string_form);
    RUN(long_piece_takes_the_heap_path_with_the_same_result);
    RUN(ignore_merges_takes_a_whole_vocab_word);
    RUN(added_and_special_tokens);
    RUN(added_token_lstrip_rstrip);
    RUN(bos_only_when_asked);
    RUN(invalid_utf8_becomes_replacement_characters);
    RUN(nfc_for_qwen_only);
    RUN(limit_max_bytes_crossed);
    RUN(stream_equals_whole_at_every_split_point);
    RUN(stream_long_piece_byte_by_byte);
    RUN(stream_emits_before_the_end);
    RUN(shared_by_threads);
    RUN(pseudo_tokenizer_is_podsims);
    RUN(load_refuses_what_it_does_not_support);
    RUN(limits_of_a_tokenizer_file_crossed);
    RUN(added_token_options_not_reproduced_are_refused);
    RUN(out_of_memory_anywhere_in_load_and_encode);
    tok_free(L);
    tok_free(Q);
    return harness_done();
}
