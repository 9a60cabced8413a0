/* kvgate-podsim: one process, N simulated vLLM pods on one event loop.
 * Flags are documented in README.md and by --help. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/ev.h"
#include "podsim/api.h"
#include "podsim/kvevents.h"
#include "podsim/pod.h"
#include "podsim/server.h"

static const char USAGE[] =
    "usage: kvgate-podsim [options]\n"
    "  --pods N                 simulated pods in this process (1)\n"
    "  --base-port P            first pod's port; pod i listens on P+i (8000)\n"
    "  --host ADDR              listen address (127.0.0.1)\n"
    "  --model NAME             served model name (meta-llama/Llama-3.1-8B-Instruct)\n"
    "  --profile NAME           step-time profile: llama3-8b-h100 | llama3-70b-h100-tp4\n"
    "  --kv-blocks N            KV-cache blocks of 16 tokens (profile: 27000 / 28813)\n"
    "  --max-num-seqs N         max running requests per step (256)\n"
    "  --max-batched-tokens N   token budget per step (8192)\n"
    "  --max-model-len N        context length limit (32768)\n"
    "  --time-scale F           wall time = simulated time x F (1.0)\n"
    "  --lora a,b,...           LoRA adapters every pod serves\n"
    "  --pod-lora I=a,b         adapters for pod I only (repeatable; overrides --lora)\n"
    "  --max-loras N            adapters resident at once (GPU slots) (4)\n"
    "  --lora-load-ms MS        simulated time to load an adapter into a slot (20)\n"
    "  --output-len-mean N      mean natural output length without ignore_eos (128)\n"
    "  --kv-events ENDPOINT     publish KV events on ZMQ PUB, e.g. tcp://127.0.0.1:5557\n"
    "  --admin-port P           process admin API (GET /pods, POST /pods/<i|all>/faults)\n"
    "  --legacy-metrics         vllm:gpu_cache_usage_perc instead of kv_cache_usage_perc\n"
    "  --fail-rate F            fault: answer this fraction of requests with 500\n"
    "  --refuse                 fault: start with listeners closed (connects refused)\n"
    "  --stall-metrics          fault: /metrics never answers\n"
    "  --drop-metrics           fault: /metrics closes the connection\n"
    "  --close-after N          fault: close each response after N tokens\n"
    "  --slowdown F             fault: multiply step time by F (>= 1)\n"
    "  --seed N                 fault RNG seed (1)\n"
    "  --keep-alive-timeout S   close an HTTP/1.1 connection idle S wall seconds, as\n"
    "                           vLLM (uvicorn) does; 0 = never (5)\n"
    "  -h, --help\n";

static int parse_u32(const char *flag, const char *s, uint32_t *out, uint32_t min)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < min || v > UINT32_MAX) {
        fprintf(stderr, "kvgate-podsim: %s: expected an integer >= %u, got '%s'\n", flag, min, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_double(const char *flag, const char *s, double *out, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || v < min || v > max) {
        fprintf(stderr, "kvgate-podsim: %s: expected a number in [%g, %g], got '%s'\n", flag,
                min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int add_loras(struct pod *p, const char *list)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int rc = engine_lora_add(&p->eng, tok);
        if (rc < 0 && rc != -EEXIST) {
            fprintf(stderr, "kvgate-podsim: --lora: cannot add adapter '%s': %s\n", tok,
                    strerror(-rc));
            return -1;
        }
    }
    return 0;
}

static void on_signal(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si))
        ;
    ev_stop(l);
}

enum {
    O_PODS = 256, O_BASE_PORT, O_HOST, O_MODEL, O_PROFILE, O_KV_BLOCKS, O_MAX_SEQS,
    O_MAX_BATCHED, O_MAX_LEN, O_SCALE, O_LORA, O_POD_LORA, O_MAX_LORAS, O_LORA_MS,
    O_OUT_MEAN, O_KV_EVENTS, O_ADMIN, O_LEGACY, O_FAIL, O_REFUSE, O_STALL, O_DROP,
    O_CLOSE_AFTER, O_SLOWDOWN, O_SEED, O_KEEPALIVE,
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"pods", 1, 0, O_PODS}, {"base-port", 1, 0, O_BASE_PORT}, {"host", 1, 0, O_HOST},
        {"model", 1, 0, O_MODEL}, {"profile", 1, 0, O_PROFILE},
        {"kv-blocks", 1, 0, O_KV_BLOCKS}, {"max-num-seqs", 1, 0, O_MAX_SEQS},
        {"max-batched-tokens", 1, 0, O_MAX_BATCHED}, {"max-model-len", 1, 0, O_MAX_LEN},
        {"time-scale", 1, 0, O_SCALE}, {"lora", 1, 0, O_LORA}, {"pod-lora", 1, 0, O_POD_LORA},
        {"max-loras", 1, 0, O_MAX_LORAS}, {"lora-load-ms", 1, 0, O_LORA_MS},
        {"output-len-mean", 1, 0, O_OUT_MEAN}, {"kv-events", 1, 0, O_KV_EVENTS},
        {"admin-port", 1, 0, O_ADMIN}, {"legacy-metrics", 0, 0, O_LEGACY},
        {"fail-rate", 1, 0, O_FAIL}, {"refuse", 0, 0, O_REFUSE},
        {"stall-metrics", 0, 0, O_STALL}, {"drop-metrics", 0, 0, O_DROP},
        {"close-after", 1, 0, O_CLOSE_AFTER}, {"slowdown", 1, 0, O_SLOWDOWN},
        {"seed", 1, 0, O_SEED}, {"keep-alive-timeout", 1, 0, O_KEEPALIVE},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0},
    };
    uint32_t npods = 1, base_port = 8000, max_len = 32768, admin_port = 0, seed = 1;
    uint32_t out_mean = 128;
    const char *host = "127.0.0.1", *model = "meta-llama/Llama-3.1-8B-Instruct";
    const char *lora = NULL, *kv_events = NULL;
    const char *pod_lora[64] = {0};
    int npod_lora = 0, legacy = 0;
    double scale = 1.0, keepalive_s = 5.0;
    struct engine_cfg ecfg = {.lora_load_ms = 20.0};
    struct faults f0 = {.slowdown = 1.0};

    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_PODS: bad = parse_u32("--pods", optarg, &npods, 1); break;
        case O_KEEPALIVE:
            bad = parse_double("--keep-alive-timeout", optarg, &keepalive_s, 0, 86400);
            break;
        case O_BASE_PORT: bad = parse_u32("--base-port", optarg, &base_port, 1); break;
        case O_HOST: host = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_PROFILE:
            ecfg.profile = profile_find(optarg);
            if (!ecfg.profile) {
                fprintf(stderr, "kvgate-podsim: --profile: unknown '%s' (llama3-8b-h100, "
                                "llama3-70b-h100-tp4)\n", optarg);
                return 2;
            }
            break;
        case O_KV_BLOCKS: bad = parse_u32("--kv-blocks", optarg, &ecfg.kv_blocks, 2); break;
        case O_MAX_SEQS: bad = parse_u32("--max-num-seqs", optarg, &ecfg.max_num_seqs, 1); break;
        case O_MAX_BATCHED:
            bad = parse_u32("--max-batched-tokens", optarg, &ecfg.max_batched_tokens, 1);
            break;
        case O_MAX_LEN: bad = parse_u32("--max-model-len", optarg, &max_len, 2); break;
        case O_SCALE: bad = parse_double("--time-scale", optarg, &scale, 1e-3, 1e6); break;
        case O_LORA: lora = optarg; break;
        case O_POD_LORA:
            if (npod_lora == 64 || !strchr(optarg, '=')) {
                fprintf(stderr, "kvgate-podsim: --pod-lora: expected I=a,b\n");
                return 2;
            }
            pod_lora[npod_lora++] = optarg;
            break;
        case O_MAX_LORAS: bad = parse_u32("--max-loras", optarg, &ecfg.max_loras, 1); break;
        case O_LORA_MS: bad = parse_double("--lora-load-ms", optarg, &ecfg.lora_load_ms, 0, 1e6); break;
        case O_OUT_MEAN: bad = parse_u32("--output-len-mean", optarg, &out_mean, 1); break;
        case O_KV_EVENTS: kv_events = optarg; break;
        case O_ADMIN: bad = parse_u32("--admin-port", optarg, &admin_port, 1); break;
        case O_LEGACY: legacy = 1; break;
        case O_FAIL: bad = parse_double("--fail-rate", optarg, &f0.fail_rate, 0, 1); break;
        case O_REFUSE: f0.refuse = 1; break;
        case O_STALL: f0.metrics_mode = METRICS_STALL; break;
        case O_DROP: f0.metrics_mode = METRICS_DROP; break;
        case O_CLOSE_AFTER: bad = parse_u32("--close-after", optarg, &f0.close_after, 1); break;
        case O_SLOWDOWN: bad = parse_double("--slowdown", optarg, &f0.slowdown, 1, 1e6); break;
        case O_SEED: bad = parse_u32("--seed", optarg, &seed, 0); break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return 2;
        }
        if (bad)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "kvgate-podsim: unexpected argument '%s'\n%s", argv[optind], USAGE);
        return 2;
    }
    if (base_port + npods - 1 > 65535) {
        fprintf(stderr, "kvgate-podsim: --base-port %u + --pods %u exceeds port 65535\n",
                base_port, npods);
        return 2;
    }
    api_output_len_mean = out_mean;

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    struct ev_loop *loop = ev_new();
    struct pod **pods = calloc(npods, sizeof(*pods));
    struct kvev_pub *pub = NULL;
    struct server *admin = NULL;
    int rc = 1;
    if (!loop || !pods || sfd < 0) {
        perror("kvgate-podsim: setup");
        return 1;
    }
    if (kv_events) {
        pub = kvev_pub_open(kv_events);
        if (!pub) {
            fprintf(stderr, "kvgate-podsim: --kv-events %s: %s\n", kv_events, strerror(errno));
            goto out;
        }
    }
    uint64_t t0 = ev_now_ns();
    for (uint32_t i = 0; i < npods; i++) {
        struct pod *p = calloc(1, sizeof(*p));
        if (!p || engine_init(&p->eng, &ecfg)) {
            fprintf(stderr, "kvgate-podsim: out of memory for pod %u\n", i);
            free(p);
            goto out;
        }
        pods[i] = p;
        p->index = (int)i;
        p->port = (int)(base_port + i);
        snprintf(p->model, sizeof(p->model), "%s", model);
        p->max_model_len = max_len;
        p->time_scale = scale;
        p->legacy_metrics = legacy;
        p->loop = loop;
        p->t0_ns = t0;
        p->rng = 0x9E3779B97F4A7C15ull * (seed + i + 1);
        p->faults = f0;
        p->faults.refuse = 0; /* applied below, once the listener exists */
        p->eng.slowdown = f0.slowdown;
        uint32_t need = (max_len + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
        if (need > p->eng.kv.nblocks - 1) {
            fprintf(stderr, "kvgate-podsim: --max-model-len %u needs %u KV blocks but the "
                            "cache has %u (--kv-blocks)\n", max_len, need, p->eng.kv.nblocks - 1);
            goto out;
        }
        const char *mine = lora;
        char prefix[16];
        int plen = snprintf(prefix, sizeof(prefix), "%u=", i);
        for (int k = 0; k < npod_lora; k++)
            if (!strncmp(pod_lora[k], prefix, (size_t)plen))
                mine = pod_lora[k] + plen;
        if (mine && add_loras(p, mine))
            goto out;
        if (pub) {
            char topic[256];
            snprintf(topic, sizeof(topic), "kv@%s:%d@%s", host, p->port, model);
            p->kvpub = pub;
            p->kvb = kvev_batch_new(topic, KV_BLOCK_TOKENS);
            if (!p->kvb)
                goto out;
            p->eng.kv.obs = (struct kv_observer){p->kvb, kvev_stored, kvev_removed, kvev_cleared};
        }
        struct server_cfg scfg = {.bind_addr = host, .port = p->port, .max_body = 32u << 20,
                                  .max_head = 64u << 10, .handler = api_handle, .ctx = p,
                                  .keepalive_ms = (uint32_t)(keepalive_s * 1000 + 0.5)};
        p->srv = server_start(loop, &scfg);
        if (!p->srv) {
            fprintf(stderr, "kvgate-podsim: pod %u: cannot listen on %s:%d: %s\n", i, host,
                    p->port, strerror(errno));
            goto out;
        }
        if (f0.refuse) {
            server_set_refuse(p->srv, 1);
            p->faults.refuse = 1;
        }
    }
    struct podsim_admin adm = {pods, (int)npods};
    if (admin_port) {
        struct server_cfg acfg = {.bind_addr = host, .port = (int)admin_port,
                                  .max_body = 1u << 20, .max_head = 64u << 10,
                                  .handler = api_admin_handle, .ctx = &adm};
        admin = server_start(loop, &acfg);
        if (!admin) {
            fprintf(stderr, "kvgate-podsim: admin: cannot listen on %s:%u: %s\n", host,
                    admin_port, strerror(errno));
            goto out;
        }
    }
    fprintf(stderr, "kvgate-podsim: %u pod(s) on %s:%u-%u, model %s, profile %s, "
                    "%u KV blocks, time scale %g%s\n",
            npods, host, base_port, base_port + npods - 1, model,
            pods[0]->eng.cfg.profile->name, pods[0]->eng.kv.nblocks, scale,
            admin ? ", admin on" : "");
    ev_add(loop, sfd, EPOLLIN, on_signal, NULL);
    ev_run(loop);
    rc = 0;
out:
    if (admin)
        server_stop(admin);
    for (uint32_t i = 0; i < npods; i++) {
        struct pod *p = pods[i];
        if (!p)
            continue;
        if (p->srv)
            server_stop(p->srv); /* cancels open responses: requests freed */
        if (p->kvb)
            kvev_batch_free(p->kvb);
        engine_destroy(&p->eng);
        free(p);
    }
    free(pods);
    if (pub)
        kvev_pub_close(pub);
    ev_free(loop);
    close(sfd);
    return rc;
}
