/* scan_bench: per-request cost of the body scan plus the prompt
 * fingerprint, on a synthetic ~220 KB chat body (system prompt, 40 turns,
 * English-like text with \n and \" escapes and some non-ASCII UTF-8).
 *
 *   gcc -O2 -std=gnu11 -D_GNU_SOURCE -Iuser bench/scan_bench.c \
 *       user/core/bodyscan.c user/core/fingerprint.c -o /tmp/scan_bench -lxxhash
 *   /tmp/scan_bench [iterations (2000)] [feed chunk bytes (0: whole body)]
 *
 * Prints MB/s for scan+fingerprint (the number that matters), and, side by
 * side in the same run, scan alone and memchr over the body (a floor: the
 * cost of touching every byte once). Rates are medians over 10 rounds. */
#include "core/bodyscan.h"
#include "core/fingerprint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const words[] = {
    "the", "cache", "request", "model", "token", "gateway", "prefix", "pod",
    "latency", "streaming", "a", "of", "to", "and", "is", "in", "that",
    "scheduler", "attention", "kernel", "batch", "throughput", "memory",
    "r\xc3\xa9sum\xc3\xa9", "na\xc3\xafve", "\xe2\x82\xac" "42",
};

static size_t put(char *b, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(b + at, s, n);
    return at + n;
}

static size_t text(char *b, size_t at, size_t n, unsigned *seed)
{
    size_t end = at + n;
    while (at < end) {
        *seed = *seed * 1103515245u + 12345u;
        unsigned r = *seed >> 16;
        at = put(b, at, words[r % (sizeof(words) / sizeof(words[0]))]);
        if (r % 97 == 0)
            at = put(b, at, "\\n\\n");
        else if (r % 89 == 0)
            at = put(b, at, " \\\"quoted\\\"");
        else if (r % 13 == 0)
            at = put(b, at, ". ");
        else
            at = put(b, at, " ");
    }
    return at;
}

static size_t make_body(char *b)
{
    unsigned seed = 42;
    size_t at = put(b, 0, "{\"model\":\"meta-llama/Llama-3.1-8B-Instruct\","
                          "\"messages\":[{\"role\":\"system\",\"content\":\"");
    at = text(b, at, 8000, &seed);
    at = put(b, at, "\"}");
    for (int turn = 0; turn < 40; turn++) {
        at = put(b, at, turn % 2 ? ",{\"role\":\"assistant\",\"content\":\""
                                  : ",{\"role\":\"user\",\"content\":\"");
        at = text(b, at, 5270, &seed);
        at = put(b, at, "\"}");
    }
    at = put(b, at, "],\"stream\":true,\"stream_options\":{\"include_usage\":"
                    "true},\"max_tokens\":256,\"temperature\":0.7}");
    return at;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static struct fingerprint fp;
static volatile size_t sink;

enum mode { SCAN_FP, SCAN_ONLY, MEMCHR };

static int run_once(enum mode m, const char *b, size_t len, size_t chunk)
{
    if (m == MEMCHR) {
        const char *p = memchr(b, 0, len); /* not there: touches all bytes */
        sink += p != NULL;
        return 0;
    }
    struct bodyscan s;
    if (m == SCAN_FP) {
        fp_init(&fp, FP_DEFAULT_BLOCK_BYTES, FP_DEFAULT_MAX_BLOCKS);
        bodyscan_init(&s, fp_feed_cb, &fp);
    } else {
        bodyscan_init(&s, NULL, NULL);
    }
    for (size_t at = 0; at < len; at += chunk)
        if (bodyscan_feed(&s, b + at, len - at < chunk ? len - at : chunk) < 0)
            return -1;
    if (bodyscan_finish(&s) < 0)
        return -1;
    if (m == SCAN_FP) {
        uint64_t keys[FP_MAX_BLOCKS];
        uint64_t mk = fp_model_key(s.model, s.model_len, s.cache_salt,
                                   s.cache_salt_len);
        sink += fp_keys(&fp, mk, keys);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    size_t chunk = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
    char *b = malloc(1 << 20);
    size_t len = make_body(b);
    if (!chunk)
        chunk = len;
    struct bodyscan s;
    bodyscan_init(&s, NULL, NULL);
    if (bodyscan_feed(&s, b, len) < 0 || bodyscan_finish(&s) < 0) {
        fprintf(stderr, "synthetic body invalid: %s at %zu\n", s.err_msg,
                s.err_offset);
        return 1;
    }
    printf("body %zu bytes (prompt span %zu), %d iterations, feed chunk %zu\n",
           len, s.prompt_end - s.prompt_start, iters, chunk);

    enum { ROUNDS = 10 };
    static const char *const names[] = { "bodyscan+fingerprint", "bodyscan only",
                                         "memchr floor" };
    double rate[3][ROUNDS];
    int per = iters / ROUNDS > 0 ? iters / ROUNDS : 1;
    for (int r = 0; r < ROUNDS; r++)     /* interleaved: same conditions */
        for (int m = 0; m < 3; m++) {
            double t0 = now();
            for (int i = 0; i < per; i++)
                if (run_once((enum mode)m, b, len, chunk) < 0)
                    return 1;
            rate[m][r] = (double)len * per / (now() - t0) / 1e6;
        }
    for (int m = 0; m < 3; m++) {
        qsort(rate[m], ROUNDS, sizeof(double), cmp_d);
        double med = (rate[m][ROUNDS / 2 - 1] + rate[m][ROUNDS / 2]) / 2;
        printf("%-22s %8.0f MB/s  (%.1f us per body; min %.0f, max %.0f)\n",
               names[m], med, len / med, rate[m][0], rate[m][ROUNDS - 1]);
    }
    free(b);
    return 0;
}
