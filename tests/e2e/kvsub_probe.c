/* kvsub_probe: the KV-event subscriber and the exact index, alone, for the
 * end-to-end test (tests/e2e/kv_events_index.sh): what kvgated's control
 * thread starts, without the rest of the gateway, driven line by line on
 * stdin so that a test can ask what the index holds.
 *
 *   kvsub_probe --model M [--block-size 16] \
 *       --pod SLOT EVENTS REPLAY|- TOPIC|- [--pod ...] [--replay-timeout-ms N]
 *
 * Commands (one answer line each):
 *   stats SLOT     {"mode":...,"why":...,"held":N,...} (the index and the
 *                  subscriber's counters for the pod)
 *   lookup FILE [ADAPTER]
 *                  "match N0 N1 ..." per slot: leading blocks of FILE's
 *                  bytes, tokenized as podsim does (4 bytes a token) and
 *                  keyed with blockkey (under the LoRA adapter if given),
 *                  that each pod holds (confirmed)
 *   quit
 * SIGTERM / SIGINT / end of input: stops. */
#include "core/blockkey.h"
#include "core/kvindex.h"
#include "gateway/kvsub.h"
#include "podsim/prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXP 16

static void stats(struct kvsub *s, uint32_t slot)
{
    struct kvsub_pod_stats st;
    if (kvsub_pod_stats(s, slot, &st)) {
        printf("{\"error\":\"bad slot\"}\n");
        return;
    }
    const struct kvx_pod_stats *x = &st.index;
    printf("{\"slot\":%u,\"configured\":%d,\"mode\":\"%s\",\"why\":\"%s\",\"held\":%llu,"
           "\"batches\":%llu,\"events\":%llu,\"stored\":%llu,\"removed\":%llu,"
           "\"clears\":%llu,\"gaps\":%llu,\"replays_filled\":%llu,\"replays_failed\":%llu,"
           "\"restarts\":%llu,\"dup_batches\":%llu,\"unknown_parents\":%llu,"
           "\"transitions\":%llu,\"next_seq\":%llu,\"frames\":%llu,\"live\":%llu,"
           "\"replayed\":%llu,\"replay_requests\":%llu,\"replay_timeouts\":%llu,"
           "\"decode_errors\":%llu,\"block_size\":%u}\n",
           slot, st.configured, kvx_mode_name(x->mode), kvx_why_name(x->why),
           (unsigned long long)x->held, (unsigned long long)x->batches,
           (unsigned long long)x->events, (unsigned long long)x->blocks_stored,
           (unsigned long long)x->blocks_removed, (unsigned long long)x->clears,
           (unsigned long long)x->gaps, (unsigned long long)x->replays_filled,
           (unsigned long long)x->replays_failed, (unsigned long long)x->restarts,
           (unsigned long long)x->dup_batches, (unsigned long long)x->unknown_parents,
           (unsigned long long)x->transitions, (unsigned long long)x->next_seq,
           (unsigned long long)st.frames, (unsigned long long)st.live_batches,
           (unsigned long long)st.replayed_batches, (unsigned long long)st.replay_requests,
           (unsigned long long)st.replay_timeouts, (unsigned long long)st.decode_errors,
           x->block_size);
}

static void lookup(struct kvindex *x, uint32_t npods, uint64_t root, uint32_t bs,
                   char *arg)
{
    char *path = arg, *lora = strchr(arg, ' ');
    if (lora)
        *lora++ = 0;
    struct bk_extra ex = {lora, lora ? strlen(lora) : 0, NULL, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("error cannot open %s\n", path);
        return;
    }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    static uint32_t tok[(1 << 18) + 1];
    prompt_tokenize(buf, n, tok);
    static uint64_t keys[1 << 14];
    size_t nk = bk_chain(root, tok, prompt_ntokens(n), bs, &ex, keys, 1 << 14);
    uint16_t match[MAXP];
    kvx_lookup(x, keys, nk > (1 << 14) ? (1 << 14) : nk, match, KVX_LOOKUP_CONFIRMED);
    printf("match");
    for (uint32_t p = 0; p < npods; p++)
        printf(" %u", match[p]);
    printf("\n");
}

int main(int argc, char **argv)
{
    const char *model = "meta-llama/Llama-3.1-8B-Instruct";
    uint32_t bs = 16, timeout = 1000, np = 0;
    struct kvsub_pod_cfg pods[MAXP];
    memset(pods, 0, sizeof(pods));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--block-size") && i + 1 < argc) {
            bs = (uint32_t)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--replay-timeout-ms") && i + 1 < argc) {
            timeout = (uint32_t)atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--pod") && i + 4 < argc && np < MAXP) {
            struct kvsub_pod_cfg *c = &pods[np++];
            c->slot = (uint32_t)atoi(argv[++i]);
            snprintf(c->events, sizeof(c->events), "%s", argv[++i]);
            const char *r = argv[++i], *t = argv[++i];
            snprintf(c->replay, sizeof(c->replay), "%s", strcmp(r, "-") ? r : "");
            snprintf(c->topic, sizeof(c->topic), "%s", strcmp(t, "-") ? t : "");
            if (c->slot >= MAXP)
                return 2;
        } else {
            fprintf(stderr, "usage: %s --model M --pod SLOT EVENTS REPLAY|- TOPIC|- ...\n",
                    argv[0]);
            return 2;
        }
    }
    for (uint32_t i = 0; i < np; i++)
        snprintf(pods[i].model, sizeof(pods[i].model), "%s", model);
    struct kvindex *x = kvx_new(MAXP, 1 << 20, 1 << 20);
    struct kvsub_cfg kc = {.replay_timeout_ms = timeout, .max_pods = MAXP};
    struct kvsub *s = x ? kvsub_new(x, &kc) : NULL;
    if (!s || kvsub_set_pods(s, pods, np) || kvsub_start(s)) {
        fprintf(stderr, "kvsub_probe: cannot start\n");
        return 1;
    }
    uint64_t root = bk_model_root(model, strlen(model));
    uint32_t npods = 0;
    for (uint32_t i = 0; i < np; i++)
        if (pods[i].slot + 1 > npods)
            npods = pods[i].slot + 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    char line[4096];
    while (fgets(line, sizeof(line), stdin)) {
        line[strcspn(line, "\r\n")] = 0;
        if (!strncmp(line, "stats ", 6))
            stats(s, (uint32_t)atoi(line + 6));
        else if (!strncmp(line, "lookup ", 7))
            lookup(x, npods, root, bs, line + 7);
        else if (!strcmp(line, "quit"))
            break;
        else
            printf("error unknown command\n");
    }
    kvsub_free(s);
    kvx_free(x);
    return 0;
}
