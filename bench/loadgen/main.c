/* loadgen: open-loop load generator for OpenAI-style streaming servers.
 * Flags are listed by --help and in bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "report.h"
#include "run.h"
#include "stats.h"
#include "workload.h"

static const char USAGE[] =
    "usage: loadgen --target http://host:port [--target ...] [options]\n"
    "targets (several: requests go round-robin across them)\n"
    "  --target URL             http://host:port (repeatable)\n"
    "  --path P                 request path (/v1/chat/completions)\n"
    "  --max-conns N            connections in all, opened on demand (2048)\n"
    "  --timeout S              per request, simulated seconds (120)\n"
    "  --time-scale F           the pods' time scale: wall = simulated x F; rates,\n"
    "                           durations and latencies are all simulated (1)\n"
    "arrivals (open loop, precomputed)\n"
    "  --rate R                 requests/s (multi-turn: sessions/s); 0 = all at once (10)\n"
    "  --arrival poisson|gamma  (poisson)\n"
    "  --burstiness B           gamma shape: gaps have CV 1/sqrt(B); 1 = Poisson (1)\n"
    "  --duration S             send for S simulated seconds\n"
    "  --requests N             at most N requests (default: the workload's size)\n"
    "  --seed N                 workload and schedule seed (1)\n"
    "workload\n"
    "  --workload KIND          shared-prefix | prefix-pool | multi-turn | no-sharing |\n"
    "                           hot-prefix | lora-mix | trace (shared-prefix)\n"
    "  --model NAME             (meta-llama/Llama-3.1-8B-Instruct)\n"
    "  --groups G               distinct system prompts (4; multi-turn: one per session)\n"
    "  --prompts-per-group P    shared-prefix size G x P; prefix-pool: the pool (16)\n"
    "  --tenants N              name N tenants (x-gateway-inference-fairness-id: tenant-K):\n"
    "                           a request's tenant follows its system prompt (group mod N;\n"
    "                           multi-turn: session mod N; others: request mod N) (0: none)\n"
    "  --system-len S           system prompt tokens (1024)\n"
    "  --question-len Q         question / user turn tokens (64)\n"
    "  --output-len O           output tokens, max_tokens with ignore_eos (128)\n"
    "  --prompt-len L           no-sharing prompt tokens (1024)\n"
    "  --sessions N --turns T   multi-turn (16, 4)\n"
    "  --think-ms K             multi-turn think time, simulated ms (1000)\n"
    "  --hot-share H            hot-prefix: share using the hot system prompt (0.5)\n"
    "  --adapters a,b,c         lora-mix: model names to draw from\n"
    "  --skew Z                 lora-mix: Zipf exponent (1)\n"
    "  --trace FILE.jsonl       Mooncake trace (timestamp ms, input_length,\n"
    "                           output_length, hash_ids)\n"
    "  --trace-speedup X        replay X times faster (1)\n"
    "  --trace-block-tokens B   tokens a hash id stands for (512): input and output\n"
    "                           lengths scale by B/512, the sharing stays exact\n"
    "  --trace-max-input N      cut (scaled) prompts longer than N tokens (none)\n"
    "  --trace-start S          skip the trace's first S seconds (0)\n"
    "  --trace-window S         replay S seconds of trace time from there (to the end)\n"
    "output\n"
    "  --out FILE.json          every request and the summary\n"
    "  --summary-json FILE      the summary only\n"
    "  --slo TTFT_MS,TPOT_MS    goodput: requests/s meeting both (simulated ms)\n"
    "  --fleet-kv-blocks N      the pods' KV capacity in all (16-token blocks): adds\n"
    "                           the finite-cache ideal hit rate (one LRU of N blocks)\n"
    "  --quiet                  print only the summary table\n"
    "  --dry-run                describe the workload (size, ideal hit rate) and exit\n"
    "  --transport http1|h2c    HTTP/1.1, or HTTP/2 cleartext by prior knowledge (http1)\n"
    "  --h2-streams N           h2c: concurrent streams per connection (100)\n"
    "  --session-conns          multi-turn, http1: each session's turns on its own\n"
    "                           connection, closed when the session ends\n"
    "  -h, --help\n"
    "exit status: 0 run done, 1 bad usage or set-up, 2 no request succeeded\n";

enum {
    O_TARGET = 256, O_PATH, O_MAXCONNS, O_TIMEOUT, O_SCALE, O_RATE, O_ARRIVAL, O_BURST,
    O_DURATION, O_REQUESTS, O_SEED, O_WORKLOAD, O_MODEL, O_GROUPS, O_PPG, O_SYSLEN,
    O_QLEN, O_OLEN, O_PLEN, O_SESSIONS, O_TURNS, O_THINK, O_HOT, O_ADAPTERS, O_SKEW,
    O_TRACE, O_TSPEED, O_OUT, O_SUMMARY, O_SLO, O_QUIET, O_DRY, O_TRANSPORT,
    O_H2STREAMS, O_SESSCONNS, O_FLEETKV, O_TBLOCK, O_TMAXIN, O_TSTART, O_TWINDOW, O_TENANTS,
};

static const struct option OPTS[] = {
    { "target", 1, 0, O_TARGET },         { "path", 1, 0, O_PATH },
    { "max-conns", 1, 0, O_MAXCONNS },    { "timeout", 1, 0, O_TIMEOUT },
    { "time-scale", 1, 0, O_SCALE },      { "rate", 1, 0, O_RATE },
    { "arrival", 1, 0, O_ARRIVAL },       { "burstiness", 1, 0, O_BURST },
    { "duration", 1, 0, O_DURATION },     { "requests", 1, 0, O_REQUESTS },
    { "seed", 1, 0, O_SEED },             { "workload", 1, 0, O_WORKLOAD },
    { "model", 1, 0, O_MODEL },           { "groups", 1, 0, O_GROUPS },
    { "prompts-per-group", 1, 0, O_PPG }, { "system-len", 1, 0, O_SYSLEN },
    { "question-len", 1, 0, O_QLEN },     { "output-len", 1, 0, O_OLEN },
    { "prompt-len", 1, 0, O_PLEN },       { "sessions", 1, 0, O_SESSIONS },
    { "turns", 1, 0, O_TURNS },           { "think-ms", 1, 0, O_THINK },
    { "hot-share", 1, 0, O_HOT },         { "adapters", 1, 0, O_ADAPTERS },
    { "skew", 1, 0, O_SKEW },             { "trace", 1, 0, O_TRACE },
    { "trace-speedup", 1, 0, O_TSPEED },  { "out", 1, 0, O_OUT },
    { "summary-json", 1, 0, O_SUMMARY },  { "slo", 1, 0, O_SLO },
    { "quiet", 0, 0, O_QUIET },           { "dry-run", 0, 0, O_DRY },
    { "transport", 1, 0, O_TRANSPORT },   { "h2-streams", 1, 0, O_H2STREAMS },
    { "help", 0, 0, 'h' },
    { "session-conns", 0, 0, O_SESSCONNS }, { "fleet-kv-blocks", 1, 0, O_FLEETKV },
    { "trace-block-tokens", 1, 0, O_TBLOCK }, { "trace-max-input", 1, 0, O_TMAXIN },
    { "trace-start", 1, 0, O_TSTART },    { "trace-window", 1, 0, O_TWINDOW },
    { "tenants", 1, 0, O_TENANTS },
    { 0, 0, 0, 0 },
};

static int num(const char *flag, const char *s, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr, "loadgen: --%s: expected a number in [%g, %g], got '%s'\n", flag, min,
                max, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int u32(const char *flag, const char *s, uint32_t min, uint32_t *out)
{
    double v;
    if (num(flag, s, min, 4294967295.0, &v))
        return -1;
    if (v != floor(v)) {
        fprintf(stderr, "loadgen: --%s: expected an integer, got '%s'\n", flag, s);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Makes room for max_conns sockets, or lowers max_conns to what fits. */
static void raise_nofile(uint32_t *max_conns, int quiet)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    rlim_t need = (rlim_t)*max_conns + 64;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) || getrlimit(RLIMIT_NOFILE, &rl))
            return;
    }
    if (rl.rlim_cur < need && rl.rlim_cur > 128) {
        *max_conns = (uint32_t)(rl.rlim_cur - 64);
        if (!quiet)
            fprintf(stderr, "loadgen: open-file limit %llu: --max-conns lowered to %u\n",
                    (unsigned long long)rl.rlim_cur, *max_conns);
    }
}

int main(int argc, char **argv)
{
    struct lg_cfg cfg = {
        .path = "/v1/chat/completions", .time_scale = 1.0, .timeout_s = 120,
        .max_conns = 2048, .h2_streams = 100,
    };
    struct lg_wl_spec spec = {
        .kind = LG_WL_SHARED_PREFIX, .seed = 1, .groups = 4, .prompts_per_group = 16,
        .system_len = 1024, .question_len = 64, .output_len = 128, .prompt_len = 1024,
        .sessions = 16, .turns = 4, .think_ms = 1000, .hot_share = 0.5, .skew = 1.0,
        .trace_speedup = 1.0,
        .sched = { .kind = LG_ARR_POISSON, .rate = 10, .burstiness = 1 },
    };
    const char *out = NULL, *summary = NULL;
    int dry = 0, groups_set = 0;
    double v;
    int o;
    while ((o = getopt_long(argc, argv, "h", OPTS, NULL)) != -1) {
        const char *name = "";
        for (const struct option *p = OPTS; p->name; p++)
            if (p->val == o)
                name = p->name;
        int bad = 0;
        switch (o) {
        case O_TARGET:
            if (cfg.ntargets >= LG_MAX_TARGETS) {
                fprintf(stderr, "loadgen: at most %d targets\n", LG_MAX_TARGETS);
                return 1;
            }
            cfg.targets[cfg.ntargets++] = optarg;
            break;
        case O_PATH: cfg.path = optarg; break;
        case O_MAXCONNS: bad = u32(name, optarg, 1, &cfg.max_conns); break;
        case O_TIMEOUT: bad = num(name, optarg, 1e-3, 1e6, &cfg.timeout_s); break;
        case O_SCALE: bad = num(name, optarg, 1e-3, 1e4, &cfg.time_scale); break;
        case O_RATE: bad = num(name, optarg, 0, 1e7, &spec.sched.rate); break;
        case O_ARRIVAL:
            if (lg_arrival_parse(optarg, &spec.sched.kind)) {
                fprintf(stderr, "loadgen: --arrival: poisson or gamma, got '%s'\n", optarg);
                return 1;
            }
            break;
        case O_BURST: bad = num(name, optarg, 1e-3, 1e3, &spec.sched.burstiness); break;
        case O_DURATION: bad = num(name, optarg, 1e-3, 1e7, &spec.duration); break;
        case O_REQUESTS: bad = u32(name, optarg, 1, &spec.requests); break;
        case O_SEED:
            bad = num(name, optarg, 0, 1.8e19, &v);
            spec.seed = (uint64_t)v;
            break;
        case O_WORKLOAD:
            if (lg_wl_kind_parse(optarg, &spec.kind)) {
                fprintf(stderr, "loadgen: --workload: unknown '%s' (see --help)\n", optarg);
                return 1;
            }
            break;
        case O_MODEL: spec.model = optarg; break;
        case O_GROUPS: bad = u32(name, optarg, 1, &spec.groups); groups_set = 1; break;
        case O_TENANTS: bad = u32(name, optarg, 0, &spec.tenants); break;
        case O_PPG: bad = u32(name, optarg, 1, &spec.prompts_per_group); break;
        case O_SYSLEN: bad = u32(name, optarg, 0, &spec.system_len); break;
        case O_QLEN: bad = u32(name, optarg, 1, &spec.question_len); break;
        case O_OLEN: bad = u32(name, optarg, 1, &spec.output_len); break;
        case O_PLEN: bad = u32(name, optarg, 1, &spec.prompt_len); break;
        case O_SESSIONS: bad = u32(name, optarg, 1, &spec.sessions); break;
        case O_TURNS: bad = u32(name, optarg, 1, &spec.turns); break;
        case O_THINK: bad = num(name, optarg, 0, 1e9, &spec.think_ms); break;
        case O_HOT: bad = num(name, optarg, 0, 1, &spec.hot_share); break;
        case O_ADAPTERS: spec.adapters = optarg; break;
        case O_SKEW: bad = num(name, optarg, 0, 100, &spec.skew); break;
        case O_TRACE: spec.trace_path = optarg; break;
        case O_TSPEED: bad = num(name, optarg, 1e-6, 1e6, &spec.trace_speedup); break;
        case O_TBLOCK:
            bad = u32(name, optarg, 1, &spec.trace_block_tokens);
            if (!bad && spec.trace_block_tokens > 65536) {
                fprintf(stderr, "loadgen: --trace-block-tokens: at most 65536\n");
                bad = 1;
            }
            break;
        case O_TMAXIN: bad = u32(name, optarg, 1, &spec.trace_max_input); break;
        case O_TSTART: bad = num(name, optarg, 0, 1e12, &spec.trace_start); break;
        case O_TWINDOW: bad = num(name, optarg, 1e-3, 1e12, &spec.trace_window); break;
        case O_OUT: out = optarg; break;
        case O_SUMMARY: summary = optarg; break;
        case O_SLO:
            if (sscanf(optarg, "%lf,%lf", &cfg.slo_ttft_ms, &cfg.slo_tpot_ms) != 2 ||
                cfg.slo_ttft_ms <= 0 || cfg.slo_tpot_ms <= 0) {
                fprintf(stderr, "loadgen: --slo: expected TTFT_MS,TPOT_MS (positive), got '%s'\n",
                        optarg);
                return 1;
            }
            break;
        case O_QUIET: cfg.quiet = 1; break;
        case O_DRY: dry = 1; break;
        case O_TRANSPORT: cfg.transport = optarg; break;
        case O_H2STREAMS: bad = u32(name, optarg, 1, &cfg.h2_streams); break;
        case O_SESSCONNS: cfg.session_conns = 1; break;
        case O_FLEETKV:
            bad = num(name, optarg, 1, (double)LG_IDEAL_MAX_CAPACITY, &v);
            if (!bad && v != floor(v)) {
                fprintf(stderr, "loadgen: --fleet-kv-blocks: expected an integer, got '%s'\n", optarg);
                bad = 1;
            }
            cfg.fleet_kv_blocks = (uint64_t)v;
            break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return 1;
        }
        if (bad)
            return 1;
    }
    if (optind < argc) {
        fprintf(stderr, "loadgen: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    if (spec.kind == LG_WL_MULTI_TURN && !groups_set)
        spec.groups = 0; /* one system prompt per session */
    if (cfg.session_conns && (spec.kind != LG_WL_MULTI_TURN ||
                              (cfg.transport && strcmp(cfg.transport, "http1") != 0))) {
        fprintf(stderr, "loadgen: --session-conns: multi-turn over http1 only\n");
        return 1;
    }
    if (spec.kind == LG_WL_MULTI_TURN && spec.turns > 1000) {
        fprintf(stderr, "loadgen: --turns: at most 1000\n");
        return 1;
    }
    spec.sched.seed = spec.seed;

    char err[512];
    struct lg_workload wl;
    if (lg_wl_init(&wl, &spec, err, sizeof(err))) {
        fprintf(stderr, "loadgen: %s\n", err);
        return 1;
    }
    struct lg_wl_ideals ideals;
    lg_wl_ideals(&wl, cfg.fleet_kv_blocks, &ideals);
    double ideal = ideals.infinite;
    uint64_t ip = ideals.prompt;
    if (!cfg.quiet || dry) {
        double last = 0;
        for (size_t k = 0; k < wl.norder; k++)
            if (wl.items[wl.order[k]].sched_s > last)
                last = wl.items[wl.order[k]].sched_s;
        fprintf(stderr,
                "loadgen: workload %s: %zu requests (%zu on the schedule, last at %.2f s), "
                "%llu prompt tokens; ideal prefix hit rate %.2f%% (infinite cache, perfect "
                "routing%s)\n",
                lg_wl_kind_name(spec.kind), wl.n, wl.norder, last, (unsigned long long)ip,
                100 * ideal,
                spec.kind == LG_WL_MULTI_TURN ? "; answers stand-ins of --output-len" : "");
        if (spec.kind == LG_WL_TRACE)
            fprintf(stderr, "loadgen: trace %s: %zu requests read, %zu replayed (trace time from %g s%s, "
                            "x%g speed); a hash id stands for %u tokens (lengths x %g); %zu prompts "
                            "cut to %u tokens\n",
                    spec.trace_path, wl.trace_lines, wl.n, spec.trace_start,
                    spec.trace_window > 0 ? " for --trace-window" : " to the end", spec.trace_speedup,
                    spec.trace_block_tokens ? spec.trace_block_tokens : LG_TRACE_BLOCK_TOKENS,
                    (double)(spec.trace_block_tokens ? spec.trace_block_tokens : LG_TRACE_BLOCK_TOKENS) /
                        LG_TRACE_BLOCK_TOKENS,
                    wl.trace_cut, spec.trace_max_input);
        fprintf(stderr, "loadgen: cacheable set %llu blocks of 16 tokens (%llu tokens)",
                (unsigned long long)ideals.distinct_blocks,
                (unsigned long long)ideals.distinct_blocks * LG_BLOCK_TOKENS);
        if (cfg.fleet_kv_blocks)
            fprintf(stderr, " = %.1f%% of the fleet's %llu blocks; finite-cache ideal %.2f%% "
                            "(one LRU of the fleet's blocks, perfect routing) = %.1f%% of the "
                            "infinite-cache ideal",
                    100.0 * (double)ideals.distinct_blocks / (double)cfg.fleet_kv_blocks,
                    (unsigned long long)cfg.fleet_kv_blocks, 100 * ideals.finite,
                    ideal > 0 ? 100 * ideals.finite / ideal : 100.0);
        fprintf(stderr, "\n");
    }
    if (dry) {
        printf("%.6f\n", ideal);
        lg_wl_free(&wl);
        return 0;
    }
    raise_nofile(&cfg.max_conns, cfg.quiet);

    struct lg_run run;
    if (lg_run_init(&run, &cfg, &wl, err, sizeof(err))) {
        fprintf(stderr, "loadgen: %s\n", err);
        lg_run_free(&run);
        lg_wl_free(&wl);
        return 1;
    }
    int rc = lg_run_go(&run);
    if (rc)
        fprintf(stderr, "loadgen: event loop: %s\n", strerror(-rc));

    struct lg_summary s;
    struct lg_report_info info = {
        .workload = lg_wl_kind_name(spec.kind),
        .arrival = spec.sched.kind == LG_ARR_GAMMA ? "gamma" : "poisson",
        .rate = spec.sched.rate, .burstiness = spec.sched.burstiness,
        .seed = (unsigned long long)spec.seed,
    };
    int status = 1;
    if (lg_summarize(&run, ideal, ideals.finite, &s)) {
        fprintf(stderr, "loadgen: out of memory summarising\n");
    } else {
        status = s.ok ? 0 : 2;
        if (out && (rc = lg_report_json(out, &run, &s, &info, 1)) < 0) {
            fprintf(stderr, "loadgen: --out %s: %s\n", out, strerror(-rc));
            status = 1;
        }
        if (summary && (rc = lg_report_json(summary, &run, &s, &info, 0)) < 0) {
            fprintf(stderr, "loadgen: --summary-json %s: %s\n", summary, strerror(-rc));
            status = 1;
        }
        lg_report_table(stdout, &run, &s, &info);
        lg_summary_free(&s);
    }
    lg_run_free(&run);
    lg_wl_free(&wl);
    return status;
}
