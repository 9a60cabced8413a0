/* kvgated: the kvgate inference gateway (socket path).
 *   kvgated --config FILE
 *   kvgated --listen 0.0.0.0:8080 --admin 127.0.0.1:9090 --pod http://10.0.0.5:8000 ...
 * Flags override the file. README.md documents both. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/log.h"
#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/accesslog.h"
#include "gateway/bpf.h"
#include "gateway/config.h"
#include "gateway/control.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"
#include "gateway/splice.h"
#include "gateway/worker.h"

static const char USAGE[] =
    "usage: kvgated [--config FILE] [options]\n"
    "  --config FILE        JSON configuration (README: \"kvgated configuration\")\n"
    "  --listen ADDR:PORT   client listener (0.0.0.0:8080)\n"
    "  --admin ADDR:PORT    admin listener: /metrics, /admin/... (127.0.0.1:9090)\n"
    "  --pod URL            a model-server pod, http://host:port (repeatable)\n"
    "  --policy MODE        prefix-aware | least-request | round-robin | random\n"
    "  --workers N          worker threads (0 = one per core)\n"
    "  --access-log PATH    JSON-lines access log (\"-\" = stdout)\n"
    "  --no-bpf             no kernel fast path (socket path only)\n"
    "  --no-splice          no sockmap splice of session flows (pod table and XDP guard stay)\n"
    "  --bpf-pinned DIR     use the BPF maps and XDP guard an operator loaded under DIR\n"
    "                       (scripts/bpf-load.sh) instead of loading them\n"
    "  --xdp-iface IF       attach the XDP guard to interface IF\n"
    "  --xdp-mode MODE      auto (native, else generic) | native | generic\n"
    "  -h, --help\n";

/* RLIMIT_NOFILE: each client connection may hold a pod connection too,
 * and every pod has three probe connections; raise the soft limit to what
 * limits.max_connections needs, and say so plainly when the hard limit
 * does not allow it (past it, accepts and pod connects fail with EMFILE,
 * which kvgated counts as local errors, never as pod failures). */
static void raise_nofile(const struct gw_config *c, uint32_t nworkers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    uint64_t pods = c->npods > 64 ? c->npods : 64;
    uint64_t need = 2ull * c->max_connections + 3 * pods + 64 /* admin */ +
                    8ull * nworkers /* listeners, loops, wake-ups */ + 64 /* log, BPF, slack */;
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= need)
        return;
    rlim_t want = (rlim_t)need;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    rlim_t was = rl.rlim_cur;
    if (want > rl.rlim_cur) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl))
            rl.rlim_cur = was;
    }
    if (rl.rlim_cur < need) {
        uint64_t fit = rl.rlim_cur > need - 2ull * c->max_connections
                           ? (rl.rlim_cur - (need - 2ull * c->max_connections)) / 2
                           : 0;
        fprintf(stderr,
                "kvgated: limits.max_connections %u needs about %llu file descriptors, but "
                "RLIMIT_NOFILE allows %llu (hard limit %llu): past about %llu connections, "
                "accepts and pod connections will fail with EMFILE; raise the hard limit "
                "(ulimit -Hn, systemd LimitNOFILE=) or lower limits.max_connections\n",
                c->max_connections, (unsigned long long)need,
                (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                (unsigned long long)fit);
    } else if (rl.rlim_cur != was) {
        fprintf(stderr, "kvgated: RLIMIT_NOFILE raised from %llu to %llu for "
                        "limits.max_connections %u\n",
                (unsigned long long)was, (unsigned long long)rl.rlim_cur, c->max_connections);
    }
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", 1, 0, 'c'}, {"listen", 1, 0, 'l'}, {"admin", 1, 0, 'a'},
        {"pod", 1, 0, 'p'}, {"policy", 1, 0, 'P'}, {"workers", 1, 0, 'w'},
        {"access-log", 1, 0, 'L'}, {"help", 0, 0, 'h'},
        /* issue 5: the BPF fast path */
        {"no-bpf", 0, 0, 'B'}, {"bpf-pinned", 1, 0, 'D'}, {"xdp-iface", 1, 0, 'X'},
        {"xdp-mode", 1, 0, 'M'}, {"no-splice", 0, 0, 'S'}, {0, 0, 0, 0},
    };
    static struct gw g; /* large (pod config array): not on the stack */
    struct ctl *ctl = NULL;
    char err[512];
    const char *config = NULL, *listen = NULL, *admin = NULL, *policy = NULL, *alog = NULL;
    const char *pods[POD_MAX];
    int npods = 0, workers = -1, c;
    int no_bpf = 0, no_splice = 0;
    const char *bpf_pinned = NULL, *xdp_iface = NULL;
    enum gwbpf_xdp_mode xdp_mode = GWBPF_XDP_AUTO;

    log_init("kvgated"); /* the prefix of what the control plane says */
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'l': listen = optarg; break;
        case 'a': admin = optarg; break;
        case 'p':
            if (npods == POD_MAX) {
                fprintf(stderr, "kvgated: --pod: at most %d pods\n", POD_MAX);
                return 2;
            }
            pods[npods++] = optarg;
            break;
        case 'P': policy = optarg; break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 0 || v > 64) {
                fprintf(stderr, "kvgated: --workers: expected 0..64, got '%s'\n", optarg);
                return 2;
            }
            workers = (int)v;
            break;
        }
        case 'L': alog = optarg; break;
        case 'B': no_bpf = 1; break;
        case 'S': no_splice = 1; break;
        case 'D': bpf_pinned = optarg; break;
        case 'X': xdp_iface = optarg; break;
        case 'M':
            if (!strcmp(optarg, "auto")) xdp_mode = GWBPF_XDP_AUTO;
            else if (!strcmp(optarg, "native")) xdp_mode = GWBPF_XDP_NATIVE;
            else if (!strcmp(optarg, "generic")) xdp_mode = GWBPF_XDP_GENERIC;
            else {
                fprintf(stderr, "kvgated: --xdp-mode: expected auto, native or generic, got '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'h': fputs(USAGE, stdout); return 0;
        default: fputs(USAGE, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kvgated: unexpected argument '%s'\n%s", argv[optind], USAGE);
        return 2;
    }

    gw_config_defaults(&g.cfg);
    if (config && gw_config_load(config, &g.cfg, err, sizeof(err))) {
        fprintf(stderr, "kvgated: %s\n", err);
        return 2;
    }
    g.config_path = config;
    if (listen)
        snprintf(g.cfg.listen, sizeof(g.cfg.listen), "%s", listen);
    if (admin)
        snprintf(g.cfg.admin_listen, sizeof(g.cfg.admin_listen), "%s", admin);
    if (alog)
        snprintf(g.cfg.access_log, sizeof(g.cfg.access_log), "%s", alog);
    if (workers >= 0)
        g.cfg.workers = (uint32_t)workers;
    if (no_splice)
        g.cfg.splice_mode = GW_SPLICE_OFF;
    if (policy && policy_mode_parse(policy, &g.cfg.policies.global.mode)) {
        fprintf(stderr, "kvgated: --policy: unknown mode '%s' (prefix-aware, least-request, "
                        "round-robin, random)\n", policy);
        return 2;
    }
    for (int i = 0; i < npods; i++) {
        if (g.cfg.npods == POD_MAX) {
            fprintf(stderr, "kvgated: --pod: at most %d pods\n", POD_MAX);
            return 2;
        }
        if (gw_pod_from_url(pods[i], &g.cfg.pods[g.cfg.npods], err, sizeof(err))) {
            fprintf(stderr, "kvgated: --pod %s: %s\n", pods[i], err);
            return 2;
        }
        g.cfg.npods++;
    }
    if (gw_config_check_admin(&g.cfg, NULL, err, sizeof(err))) {
        fprintf(stderr, "kvgated: %s\n", err);
        return 2;
    }
    if (g.cfg.npods == 0)
        fprintf(stderr, "kvgated: no pods configured yet (add with --pod, the config file, "
                        "or POST /admin/pods); requests get 503 until then\n");

    uint32_t nw = g.cfg.workers ? g.cfg.workers : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (nw < 1)
        nw = 1;
    raise_nofile(&g.cfg, nw);
    uint32_t def_blocks = g.cfg.index_default_blocks;
    if (!def_blocks) /* vLLM on an H100 with an 8B model: 27,000 x 16 tokens */
        def_blocks = (uint32_t)(27000.0 * 16 * g.cfg.bytes_per_token / g.cfg.block_bytes);

    pthread_mutex_init(&g.policy_mu, NULL);
    g.policies = g.cfg.policies;
    g.pidx = pidx_new(POD_MAX, g.cfg.index_max_entries, def_blocks);
    g.sessions = session_new(1u << 16);
    g.metrics = gw_metrics_new();
    outlier_init(&g.outlier, &g.cfg.outlier);
    gw_set_tenant_from_user(g.cfg.tenant_from_user);
    atomic_store(&g.rng, (uint64_t)getpid() * 0x9E3779B97F4A7C15ull);
    if (!g.pidx || !g.sessions || !g.metrics) {
        fprintf(stderr, "kvgated: out of memory (index.max_entries %u)\n", g.cfg.index_max_entries);
        return 1;
    }
    if (g.cfg.access_log[0]) {
        g.alog = accesslog_open(g.cfg.access_log, g.cfg.access_log_buffer);
        if (!g.alog) {
            fprintf(stderr, "kvgated: access_log: cannot open '%s': %s\n", g.cfg.access_log,
                    strerror(errno));
            return 2;
        }
    }

    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    /* blocked before any thread starts, so only the signalfd sees them */
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);

    /* issue 5: the kernel fast path, before the control thread's first
     * snapshot so the pod table is written from the start. Any failure
     * leaves kvgated on the socket path with one sentence saying why. */
    struct gwbpf *bpf = NULL;
    if (!no_bpf) {
        const char *port = strrchr(g.cfg.listen, ':');
        struct gwbpf_opts bo = {.pin_dir = KVG_PIN_DIR_DEFAULT, .pinned_dir = bpf_pinned,
                                .gw_port = port ? (uint16_t)atoi(port + 1) : 0,
                                .no_splice = g.cfg.splice_mode == GW_SPLICE_OFF};
        if (gwbpf_open(&bo, &bpf, err, sizeof(err)) < 0) {
            fprintf(stderr, "kvgated: BPF fast path off: %s; serving on the socket path\n", err);
        } else {
            g.bpf = bpf;
            fprintf(stderr, "kvgated: BPF fast path on: pod table and XDP guard %s %s\n",
                    bpf_pinned ? "opened from" : "pinned under",
                    bpf_pinned ? bpf_pinned : KVG_PIN_DIR_DEFAULT);
            const char *swhy = NULL;
            if (gwbpf_splice_ok(bpf, &swhy))
                fprintf(stderr, "kvgated: sockmap splice of session flows on (mode %s, budget %llu "
                                "bytes per flow and direction)\n",
                        g.cfg.splice_mode == GW_SPLICE_ON ? "on" : "auto",
                        (unsigned long long)g.cfg.splice_budget);
            else
                fprintf(stderr, "kvgated: sockmap splice off: %s\n", swhy);
            if (xdp_iface && gwbpf_xdp_attach(bpf, xdp_iface, xdp_mode, err, sizeof(err)) < 0)
                fprintf(stderr, "kvgated: XDP guard not attached: %s\n", err);
            else if (xdp_iface)
                fprintf(stderr, "kvgated: XDP guard attached to %s (%s)\n", xdp_iface,
                        gwbpf_xdp_mode_name(bpf));
        }
    } else if (xdp_iface || bpf_pinned) {
        fprintf(stderr, "kvgated: --no-bpf: ignoring --xdp-iface and --bpf-pinned\n");
    }

    splice_init(&g, bpf); /* off without the BPF handle */
    int rc = control_start(&g, &ctl);
    if (rc == 0)
        rc = workers_start(&g, nw);
    if (rc) {
        control_stop(ctl);
        gwbpf_close(bpf);
        return 1;
    }
    fprintf(stderr, "kvgated: listening on %s (%u workers), admin on %s, %u pods, policy %s\n",
            g.cfg.listen, nw, g.cfg.admin_listen, g.cfg.npods,
            policy_mode_name(g.cfg.policies.global.mode));

    /* SIGTERM / SIGINT: a graceful drain (worker.h: workers_drain) until
     * every connection is done or limits.drain_timeout_ms passed (then the
     * workers end what is left, and a moment later we stop); a second one
     * stops at once. */
    int draining = 0;
    uint64_t give_up_ns = 0;
    for (;;) {
        struct pollfd pfd = {.fd = sfd, .events = POLLIN};
        int pr = poll(&pfd, 1, draining ? 50 : -1);
        if (pr < 0 && errno != EINTR)
            break;
        if (draining && (workers_drained() || ev_now_ns() > give_up_ns))
            break;
        if (pr <= 0)
            continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (si.ssi_signo == SIGHUP) {
            fprintf(stderr, "kvgated: SIGHUP: reloading %s\n", config ? config : "(no file)");
            control_request_reload(ctl);
            continue;
        }
        if (draining) {
            fprintf(stderr, "kvgated: second signal: stopping now\n");
            break;
        }
        draining = 1;
        atomic_store(&g.draining, 1);
        /* the workers cut what is left at the deadline; one more second
         * lets those last answers go out */
        give_up_ns = ev_now_ns() + (uint64_t)g.cfg.drain_timeout_ms * 1000000ull + 1000000000ull;
        fprintf(stderr, "kvgated: %s: draining (up to %u ms; a second signal stops at once)\n",
                strsignal((int)si.ssi_signo), g.cfg.drain_timeout_ms);
        workers_drain();
    }
    fprintf(stderr, "kvgated: shutting down\n");
    atomic_store(&g.stopping, 1);
    workers_stop();
    control_stop(ctl);
    gwbpf_close(bpf); /* the control thread, its only user, is gone */
    accesslog_close(g.alog);
    gw_metrics_free(g.metrics);
    session_free(g.sessions);
    pidx_free(g.pidx);
    snapshot_publish(NULL);
    close(sfd);
    return 0;
}
