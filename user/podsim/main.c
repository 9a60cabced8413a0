/* kvgate-podsim: one process, N simulated vLLM pods on one event loop.
 * Flags are documented in README.md and by --help. main() is three steps:
 * parse_flags (struct opts), assemble (loop, pods, listeners, admin), run
 * (until SIGINT / SIGTERM); teardown frees whatever assembly made. */
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
#include "common/log.h"
#include "podsim/api.h"
#include "podsim/kvevents.h"
#include "podsim/pod.h"
#include "podsim/server.h"
#include "tok/tok.h"

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
    "  --kv-replay-port P       pod i answers KV-event replay requests on ZMQ ROUTER\n"
    "                           tcp://HOST:P+i (vLLM's replay_endpoint)\n"
    "  --kv-event-drop-rate F   fault: lose this share of KV-event batches (0)\n"
    "  --kv-event-delay-ms MS   fault: send every KV-event batch MS late (0)\n"
    "  --tokenizer FILE         a Hugging Face tokenizer.json (tokenizer_config.json next to\n"
    "                           it for the chat template): real token ids and template\n"
    "                           instead of 4-byte pseudo-tokens\n"
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
        LOG_ERR("%s: expected an integer >= %u, got '%s'", flag, min, s);
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
        LOG_ERR("%s: expected a number in [%g, %g], got '%s'", flag, min, max, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- flags ---- */

struct opts {
    uint32_t npods, base_port, max_len, admin_port, seed, out_mean, kv_replay_port;
    const char *host, *model, *lora, *kv_events;
    const char *pod_lora[64];
    int npod_lora, legacy;
    double scale, keepalive_s;
    struct engine_cfg ecfg;
    struct faults f0;
    const char *tokenizer; /* --tokenizer */
};

enum {
    O_PODS = 256, O_BASE_PORT, O_HOST, O_MODEL, O_PROFILE, O_KV_BLOCKS, O_MAX_SEQS,
    O_MAX_BATCHED, O_MAX_LEN, O_SCALE, O_LORA, O_POD_LORA, O_MAX_LORAS, O_LORA_MS,
    O_OUT_MEAN, O_KV_EVENTS, O_ADMIN, O_LEGACY, O_FAIL, O_REFUSE, O_STALL, O_DROP,
    O_CLOSE_AFTER, O_SLOWDOWN, O_SEED, O_KEEPALIVE, O_KV_REPLAY, O_KV_DROP, O_KV_DELAY,
    O_TOKENIZER,
};

static const struct option OPTS[] = {
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
    {"kv-replay-port", 1, 0, O_KV_REPLAY}, {"kv-event-drop-rate", 1, 0, O_KV_DROP},
    {"kv-event-delay-ms", 1, 0, O_KV_DELAY},
    {"tokenizer", 1, 0, O_TOKENIZER},
    {"help", 0, 0, 'h'}, {0, 0, 0, 0},
};

/* The engine's and the faults' flags. 0, or -1 (said why). */
static int engine_flag(int c, const char *arg, struct opts *o)
{
    switch (c) {
    case O_PROFILE:
        o->ecfg.profile = profile_find(arg);
        if (!o->ecfg.profile) {
            LOG_ERR("--profile: unknown '%s' (llama3-8b-h100, llama3-70b-h100-tp4)", arg);
            return -1;
        }
        return 0;
    case O_KV_BLOCKS: return parse_u32("--kv-blocks", arg, &o->ecfg.kv_blocks, 2);
    case O_MAX_SEQS: return parse_u32("--max-num-seqs", arg, &o->ecfg.max_num_seqs, 1);
    case O_MAX_BATCHED:
        return parse_u32("--max-batched-tokens", arg, &o->ecfg.max_batched_tokens, 1);
    case O_MAX_LORAS: return parse_u32("--max-loras", arg, &o->ecfg.max_loras, 1);
    case O_LORA_MS: return parse_double("--lora-load-ms", arg, &o->ecfg.lora_load_ms, 0, 1e6);
    case O_FAIL: return parse_double("--fail-rate", arg, &o->f0.fail_rate, 0, 1);
    case O_REFUSE: o->f0.refuse = 1; return 0;
    case O_STALL: o->f0.metrics_mode = METRICS_STALL; return 0;
    case O_DROP: o->f0.metrics_mode = METRICS_DROP; return 0;
    case O_CLOSE_AFTER: return parse_u32("--close-after", arg, &o->f0.close_after, 1);
    case O_SLOWDOWN: return parse_double("--slowdown", arg, &o->f0.slowdown, 1, 1e6);
    case O_SEED: return parse_u32("--seed", arg, &o->seed, 0);
    case O_KV_DROP:
        return parse_double("--kv-event-drop-rate", arg, &o->f0.kv_drop_rate, 0, 1);
    case O_KV_DELAY: return parse_u32("--kv-event-delay-ms", arg, &o->f0.kv_delay_ms, 0);
    case O_KV_REPLAY: return parse_u32("--kv-replay-port", arg, &o->kv_replay_port, 1);
    }
    return -1;
}

/* One flag. 0, or -1 (said why). */
static int flag(int c, const char *arg, struct opts *o)
{
    switch (c) {
    case O_PODS: return parse_u32("--pods", arg, &o->npods, 1);
    case O_KEEPALIVE:
        return parse_double("--keep-alive-timeout", arg, &o->keepalive_s, 0, 86400);
    case O_BASE_PORT: return parse_u32("--base-port", arg, &o->base_port, 1);
    case O_HOST: o->host = arg; return 0;
    case O_MODEL: o->model = arg; return 0;
    case O_MAX_LEN: return parse_u32("--max-model-len", arg, &o->max_len, 2);
    case O_SCALE: return parse_double("--time-scale", arg, &o->scale, 1e-3, 1e6);
    case O_LORA: o->lora = arg; return 0;
    case O_POD_LORA:
        if (o->npod_lora == 64 || !strchr(arg, '=')) {
            LOG_ERR("--pod-lora: expected I=a,b");
            return -1;
        }
        o->pod_lora[o->npod_lora++] = arg;
        return 0;
    case O_OUT_MEAN: return parse_u32("--output-len-mean", arg, &o->out_mean, 1);
    case O_KV_EVENTS: o->kv_events = arg; return 0;
    case O_ADMIN: return parse_u32("--admin-port", arg, &o->admin_port, 1);
    case O_LEGACY: o->legacy = 1; return 0;
    case O_TOKENIZER: o->tokenizer = arg; return 0;
    }
    return engine_flag(c, arg, o);
}

/* 0: run; 1: done (--help); 2: bad usage (said why). */
static int parse_flags(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){
        .npods = 1, .base_port = 8000, .max_len = 32768, .seed = 1, .out_mean = 128,
        .host = "127.0.0.1", .model = "meta-llama/Llama-3.1-8B-Instruct",
        .scale = 1.0, .keepalive_s = 5.0,
        .ecfg = {.lora_load_ms = 20.0}, .f0 = {.slowdown = 1.0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        if (c == 'h') {
            fputs(USAGE, stdout);
            return 1;
        }
        if (c == '?') {
            fputs(USAGE, stderr);
            return 2;
        }
        if (flag(c, optarg, o))
            return 2;
    }
    if (optind < argc) {
        LOG_ERR("unexpected argument '%s'", argv[optind]);
        fputs(USAGE, stderr);
        return 2;
    }
    if (o->base_port + o->npods - 1 > 65535) {
        LOG_ERR("--base-port %u + --pods %u exceeds port 65535", o->base_port, o->npods);
        return 2;
    }
    if (o->kv_replay_port && (!o->kv_events || o->kv_replay_port + o->npods - 1 > 65535)) {
        LOG_ERR(o->kv_events ? "--kv-replay-port %u + --pods exceeds port 65535"
                             : "--kv-replay-port %u needs --kv-events", o->kv_replay_port);
        return 2;
    }
    return 0;
}

/* ---- assembly ---- */

struct podsim {
    struct ev_loop *loop;
    int sfd;                /* SIGINT, SIGTERM */
    struct pod **pods;
    uint32_t npods;
    struct kvev_pub *pub;
    struct server *admin;
    struct podsim_admin adm;
};

static int add_loras(struct pod *p, const char *list)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", list);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int rc = engine_lora_add(&p->eng, tok);
        if (rc < 0 && rc != -EEXIST) {
            LOG_ERR("--lora: cannot add adapter '%s': %s", tok, strerror(-rc));
            return -1;
        }
    }
    return 0;
}

/* Pod i's adapters: its --pod-lora, else --lora, else none. */
static const char *pod_loras(const struct opts *o, uint32_t i)
{
    const char *mine = o->lora;
    char prefix[16];
    int plen = snprintf(prefix, sizeof(prefix), "%u=", i);
    for (int k = 0; k < o->npod_lora; k++)
        if (!strncmp(o->pod_lora[k], prefix, (size_t)plen))
            mine = o->pod_lora[k] + plen;
    return mine;
}

/* Pod i's engine, adapters and KV events (no listener yet). 0 or -1. */
static int pod_setup(struct podsim *ps, struct pod *p, const struct opts *o, uint32_t i,
                     uint64_t t0)
{
    p->index = (int)i;
    p->port = (int)(o->base_port + i);
    snprintf(p->model, sizeof(p->model), "%s", o->model);
    p->max_model_len = o->max_len;
    p->time_scale = o->scale;
    p->legacy_metrics = o->legacy;
    p->loop = ps->loop;
    p->t0_ns = t0;
    p->rng = 0x9E3779B97F4A7C15ull * (o->seed + i + 1);
    p->faults = o->f0;
    p->faults.refuse = 0; /* applied once the listener exists */
    p->eng.slowdown = o->f0.slowdown;
    uint32_t need = (o->max_len + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
    if (need > p->eng.kv.nblocks - 1) {
        LOG_ERR("--max-model-len %u needs %u KV blocks but the cache has %u (--kv-blocks)",
                o->max_len, need, p->eng.kv.nblocks - 1);
        return -1;
    }
    const char *mine = pod_loras(o, i);
    if (mine && add_loras(p, mine))
        return -1;
    if (ps->pub) {
        char topic[256];
        snprintf(topic, sizeof(topic), "kv@%s:%d@%s", o->host, p->port, o->model);
        p->kvpub = ps->pub;
        p->kvb = kvev_batch_new(topic, KV_BLOCK_TOKENS);
        if (!p->kvb)
            return -1;
        p->eng.kv.obs = (struct kv_observer){p->kvb, kvev_stored, kvev_removed, kvev_cleared};
        if (pod_kv_setup(p, o->host, o->kv_replay_port ? o->kv_replay_port + i : 0))
            return -1;
    }
    return 0;
}

/* Pod i, listening. 0 or -1 (said why). */
static int pod_start(struct podsim *ps, const struct opts *o, uint32_t i, uint64_t t0)
{
    struct pod *p = calloc(1, sizeof(*p));
    if (!p || engine_init(&p->eng, &o->ecfg)) {
        LOG_ERR("out of memory for pod %u", i);
        free(p);
        return -1;
    }
    ps->pods[i] = p;
    if (pod_setup(ps, p, o, i, t0))
        return -1;
    struct server_cfg scfg = {.bind_addr = o->host, .port = p->port, .max_body = 32u << 20,
                              .max_head = 64u << 10, .handler = api_handle, .ctx = p,
                              .keepalive_ms = (uint32_t)(o->keepalive_s * 1000 + 0.5)};
    p->srv = server_start(ps->loop, &scfg);
    if (!p->srv) {
        LOG_ERR("pod %u: cannot listen on %s:%d: %s", i, o->host, p->port, strerror(errno));
        return -1;
    }
    if (o->f0.refuse) {
        server_set_refuse(p->srv, 1);
        p->faults.refuse = 1;
    }
    return 0;
}

/* The event loop, signals, KV events, the pods and the admin port. 0, or
 * -1 (said why; teardown frees what was made). */
static int assemble(struct podsim *ps, const struct opts *o)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    ps->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    ps->loop = ev_new();
    ps->pods = calloc(o->npods, sizeof(*ps->pods));
    ps->npods = o->npods;
    if (!ps->loop || !ps->pods || ps->sfd < 0) {
        LOG_ERR("setup: %s", strerror(errno));
        return -1;
    }
    if (o->kv_events && !(ps->pub = kvev_pub_open(o->kv_events))) {
        LOG_ERR("--kv-events %s: %s", o->kv_events, strerror(errno));
        return -1;
    }
    uint64_t t0 = ev_now_ns();
    for (uint32_t i = 0; i < o->npods; i++)
        if (pod_start(ps, o, i, t0))
            return -1;
    ps->adm = (struct podsim_admin){ps->pods, (int)o->npods};
    if (o->admin_port) {
        struct server_cfg acfg = {.bind_addr = o->host, .port = (int)o->admin_port,
                                  .max_body = 1u << 20, .max_head = 64u << 10,
                                  .handler = api_admin_handle, .ctx = &ps->adm};
        ps->admin = server_start(ps->loop, &acfg);
        if (!ps->admin) {
            LOG_ERR("admin: cannot listen on %s:%u: %s", o->host, o->admin_port,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

static void teardown(struct podsim *ps)
{
    if (ps->admin)
        server_stop(ps->admin);
    for (uint32_t i = 0; ps->pods && i < ps->npods; i++) {
        struct pod *p = ps->pods[i];
        if (!p)
            continue;
        if (p->srv)
            server_stop(p->srv); /* cancels open responses: requests freed */
        if (p->kvb)
            kvev_batch_free(p->kvb);
        engine_destroy(&p->eng);
        free(p);
    }
    free(ps->pods);
    if (ps->pub)
        kvev_pub_close(ps->pub);
    if (ps->loop)
        ev_free(ps->loop);
    if (ps->sfd >= 0)
        close(ps->sfd);
}

/* ---- the run loop ---- */

static void on_signal(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == sizeof(si))
        ;
    ev_stop(l);
}

/* Serves until SIGINT or SIGTERM. */
static void run(struct podsim *ps, const struct opts *o)
{
    LOG_INFO("%u pod(s) on %s:%u-%u, model %s, profile %s, %u KV blocks, time scale %g%s",
             o->npods, o->host, o->base_port, o->base_port + o->npods - 1, o->model,
             ps->pods[0]->eng.cfg.profile->name, ps->pods[0]->eng.kv.nblocks, o->scale,
             ps->admin ? ", admin on" : "");
    ev_add(ps->loop, ps->sfd, EPOLLIN, on_signal, NULL);
    ev_run(ps->loop);
}

/* --tokenizer FILE: the BPE, and the chat template from
 * tokenizer_config.json next to FILE if there is one. 0 or -1 (said why). */
static struct tok *load_tokenizer(const char *path)
{
    char cfg[4096], err[256];
    const char *slash = strrchr(path, '/');
    int dl = slash ? (int)(slash - path + 1) : 0;
    snprintf(cfg, sizeof(cfg), "%.*stokenizer_config.json", dl, path);
    struct tok *t = tok_load(path, access(cfg, R_OK) == 0 ? cfg : NULL, err, sizeof(err));
    if (!t) {
        LOG_ERR("--tokenizer: %s", err);
        return NULL;
    }
    if (tok_template(t) == TOK_TEMPLATE_UNKNOWN)
        LOG_WARN("--tokenizer: no chat template recognised in %s: chats are rendered with "
                 "podsim's Llama-3 template", cfg);
    return t;
}

int main(int argc, char **argv)
{
    log_init("kvgate-podsim");
    struct opts o;
    int rc = parse_flags(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : 2;
    api_output_len_mean = o.out_mean;
    struct tok *tok = NULL;
    if (o.tokenizer && !(api_tokenizer = tok = load_tokenizer(o.tokenizer)))
        return 2;
    struct podsim ps = {.sfd = -1};
    rc = assemble(&ps, &o);
    if (rc == 0)
        run(&ps, &o);
    teardown(&ps);
    api_tokenizer = NULL;
    tok_free(tok);
    return rc == 0 ? 0 : 1;
}
