/* tok_ref: prints what user/tok makes of a corpus, in the format
 * tests/tok/ref.js prints the reference's, so that the two can be compared
 * line by line (tests/tok/test_reference.sh).
 *
 *   build/tok_ref TOKENIZER_JSON CONFIG_JSON CORPUS_JSONL [--stream]
 *
 * Corpus lines (tests/tok/gen_corpus.js):
 *   {"t": "text"}                 encode, special tokens parsed
 *   {"b": "base64", "bos": true}  raw bytes (maybe not UTF-8); bos: add BOS
 *   {"m": [messages], "g": true}  render (g: add_generation_prompt), encode
 * Output, one line each: "E <ids>" for text; "R <hex of rendered bytes>"
 * then "C <ids>" for a conversation; "X <reason>" when refused.
 * --stream: every encode goes through the stream API instead, cut at
 * pseudo-random points (seeded by the line number), to compare with the
 * whole-text results of a plain run. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "tok/tok.h"

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

static size_t b64dec(const char *s, unsigned char *out)
{
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *s; s++) {
        int v = b64val((unsigned char)*s);
        if (v < 0)
            continue;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
        }
    }
    return n;
}

static unsigned long long rng;
static unsigned next_rand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (unsigned)(rng >> 33);
}

static int encode(const struct tok *t, const char *s, size_t n, unsigned flags, int stream,
                  struct tok_ids *ids)
{
    if (!stream)
        return tok_encode(t, s, n, flags, ids);
    struct tok_stream st;
    tok_stream_init(&st, t, flags);
    size_t pos = 0;
    while (pos < n) {
        size_t k = 1 + next_rand() % (next_rand() % 4 == 0 ? 64 : 7);
        if (k > n - pos)
            k = n - pos;
        int rc = tok_stream_feed(&st, s + pos, k, ids);
        if (rc) {
            tok_stream_free(&st);
            return rc;
        }
        pos += k;
    }
    return tok_stream_finish(&st, ids);
}

static void print_ids(char tag, const struct tok_ids *ids)
{
    putchar(tag);
    for (size_t i = 0; i < ids->n; i++)
        printf(" %u", ids->v[i]);
    putchar('\n');
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON CONFIG_JSON CORPUS_JSONL [--stream]\n", argv[0]);
        return 2;
    }
    int stream = argc > 4 && !strcmp(argv[4], "--stream");
    char err[256];
    struct tok *t = tok_load(argv[1], argv[2], err, sizeof(err));
    if (!t) {
        fprintf(stderr, "tok_ref: %s\n", err);
        return 1;
    }
    FILE *f = fopen(argv[3], "r");
    if (!f) {
        perror(argv[3]);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    unsigned char *bytes = NULL;
    while ((len = getline(&line, &cap, f)) > 0) {
        rng = ++lineno * 0x9E3779B97F4A7C15ull;
        cJSON *j = cJSON_Parse(line);
        struct tok_ids ids = {0};
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "t");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "b");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "m");
        unsigned flags = TOK_PARSE_SPECIAL |
            (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "bos")) ? TOK_ADD_BOS : 0);
        if (cJSON_IsString(tx) || cJSON_IsString(b)) {
            const char *s;
            size_t n;
            if (cJSON_IsString(tx)) {
                s = tx->valuestring;
                n = strlen(s);
            } else {
                bytes = realloc(bytes, strlen(b->valuestring) + 4);
                n = b64dec(b->valuestring, bytes);
                s = (const char *)bytes;
            }
            int rc = encode(t, s, n, flags, stream, &ids);
            if (rc)
                printf("X encode %d\n", rc);
            else
                print_ids('E', &ids);
        } else if (m) {
            struct sbuf r;
            sbuf_init(&r);
            const char *e = NULL;
            int g = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "g"));
            int rc = tok_render_chat(t, m, g, &r, &e);
            if (rc) {
                printf("X render %s\n", e ? e : "?");
            } else {
                putchar('R');
                putchar(' ');
                for (size_t i = 0; i < r.len; i++)
                    printf("%02x", (unsigned char)r.data[i]);
                putchar('\n');
                rc = encode(t, r.data, r.len, TOK_PARSE_SPECIAL, stream, &ids);
                if (rc)
                    printf("X encode %d\n", rc);
                else
                    print_ids('C', &ids);
            }
            sbuf_free(&r);
        } else {
            printf("X bad line %lu\n", lineno);
        }
        tok_ids_free(&ids);
        cJSON_Delete(j);
    }
    free(line);
    free(bytes);
    fclose(f);
    tok_free(t);
    return 0;
}
