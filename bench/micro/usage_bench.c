/* usage_bench: what token accounting costs per answer, one thread, no
 * I/O (issue 13's overhead: bench/overhead measures it end to end; this
 * says where the time goes).
 *
 * Answers as kvgate-podsim writes them (vLLM's shapes, user/podsim/
 * api_infer.c), N output tokens (16, as bench/overhead asks):
 *   json     a non-streamed chat completion: usage_json_feed over the body
 *            in one piece + usage_json_result (the relay's acct_answer_body
 *            and acct_finish);
 *   stream   a streamed one with include_usage: per event the look for
 *            "usage" (memmem) and, for the one event that has it,
 *            usage_sse_event (the relay's acct_answer_event);
 *   nousage  the same stream without the usage event: memmem per event;
 *   report   report_record of one request into a book of one group
 *            (uncontended lock; gw_request_done's report book).
 * Prints ns per answer (median of 7 runs of 200,000 answers each).
 *
 *   make usage-bench   (bench/bench.mk) */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/report.h"
#include "core/usage.h"

#define REPS 7
#define ITERS 200000

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile uint64_t sink;

static const char HEAD[] = "{\"id\":\"chatcmpl-0123456789abcdef\",\"object\":\"%s\","
                           "\"created\":1764720000,\"model\":\"meta-llama/Llama-3.1-8B-Instruct\",";
static const char USAGE[] = "\"usage\":{\"prompt_tokens\":260,\"total_tokens\":276,"
                            "\"completion_tokens\":16,\"prompt_tokens_details\":"
                            "{\"cached_tokens\":240}}";

static size_t build_json(char *b, size_t cap, int ntok)
{
    size_t n = (size_t)snprintf(b, cap, HEAD, "chat.completion");
    n += (size_t)snprintf(b + n, cap - n, "\"choices\":[{\"index\":0,\"message\":{\"role\":"
                          "\"assistant\",\"reasoning_content\":null,\"content\":\"");
    for (int i = 0; i < ntok; i++)
        n += (size_t)snprintf(b + n, cap - n, "abcd");
    n += (size_t)snprintf(b + n, cap - n, "\",\"tool_calls\":[]},\"logprobs\":null,"
                          "\"finish_reason\":\"length\",\"stop_reason\":null}],%s}", USAGE);
    return n;
}

/* events[i] = [off, len) of each event (without its blank line) in b */
static int build_stream(char *b, size_t cap, int ntok, int with_usage, size_t *off, size_t *len)
{
    size_t n = 0;
    int ne = 0;
    char head[512];
    snprintf(head, sizeof(head), HEAD, "chat.completion.chunk");
    for (int i = 0; i <= ntok + with_usage; i++) {
        off[ne] = n;
        n += (size_t)snprintf(b + n, cap - n, "data: %s", head);
        if (i == 0)
            n += (size_t)snprintf(b + n, cap - n, "\"choices\":[{\"index\":0,\"delta\":{\"role\":"
                                  "\"assistant\",\"content\":\"\"},\"logprobs\":null,"
                                  "\"finish_reason\":null}]}");
        else if (i <= ntok)
            n += (size_t)snprintf(b + n, cap - n, "\"choices\":[{\"index\":0,\"delta\":"
                                  "{\"content\":\"abcd\"},\"logprobs\":null,\"finish_reason\":%s}]}",
                                  i == ntok ? "\"length\",\"stop_reason\":null" : "null");
        else
            n += (size_t)snprintf(b + n, cap - n, "\"choices\":[],%s}", USAGE);
        len[ne] = n - off[ne];
        ne++;
        n += (size_t)snprintf(b + n, cap - n, "\n\n");
    }
    return ne;
}

/* the relay's acct_answer_event, as accounting.c has it */
static int answer_event(const char *e, size_t n, struct usage *u)
{
    if (!usage_key_in(e, n))
        return 0;
    int only = 0;
    return usage_sse_event(e, n, u, &only);
}

int main(int argc, char **argv)
{
    int ntok = argc > 1 ? atoi(argv[1]) : 16;
    static char json[1 << 16], st[1 << 18], nu[1 << 18];
    static size_t soff[4096], slen[4096], noff[4096], nlen[4096];
    size_t jn = build_json(json, sizeof(json), ntok);
    int sne = build_stream(st, sizeof(st), ntok, 1, soff, slen);
    int nne = build_stream(nu, sizeof(nu), ntok, 0, noff, nlen);
    struct report *rep = report_new();
    struct report_key key = {"meta-llama/Llama-3.1-8B-Instruct", "default", "default",
                             "prefix-aware"};
    struct report_sample rs = {.ttft_ms = 1.5, .itl_ms = 0.2, .prompt_tokens = 260,
                               .cached_tokens = 240, .completion_tokens = 16, .cost = -1};
    static const char *const NAME[] = {"json", "stream", "nousage", "report"};
    printf("usage_bench: %d output tokens; non-streamed body %zu B; stream %d events; "
           "ns per answer, median of %d x %d\n", ntok, jn, sne, REPS, ITERS);
    for (int k = 0; k < 4; k++) {
        double ns[REPS];
        for (int r = 0; r < REPS; r++) {
            uint64_t t0 = now_ns(), acc = 0;
            for (int i = 0; i < ITERS; i++) {
                struct usage u = {0};
                if (k == 0) {
                    struct usage_json j;
                    usage_json_init(&j);
                    usage_json_feed(&j, json, jn);
                    acc += (uint64_t)usage_json_result(&j, &u, NULL) + u.prompt;
                } else if (k == 1) {
                    for (int e = 0; e < sne; e++)
                        acc += (uint64_t)answer_event(st + soff[e], slen[e], &u);
                    acc += u.prompt;
                } else if (k == 2) {
                    for (int e = 0; e < nne; e++)
                        acc += (uint64_t)answer_event(nu + noff[e], nlen[e], &u);
                } else {
                    report_record(rep, &key, &rs, (uint64_t)i);
                }
            }
            sink += acc;
            ns[r] = (double)(now_ns() - t0) / ITERS;
        }
        qsort(ns, REPS, sizeof(ns[0]), cmp_d);
        printf("  %-8s %8.1f ns  (min %.1f, max %.1f)\n", NAME[k], ns[REPS / 2], ns[0],
               ns[REPS - 1]);
    }
    report_free(rep);
    return 0;
}
