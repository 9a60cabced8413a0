/* kvgated: the kvgate inference gateway (socket path).
 *   kvgated --config FILE
 *   kvgated --listen 0.0.0.0:8080 --admin 127.0.0.1:9090 --pod http://10.0.0.5:8000 ...
 * Flags override the file. README.md documents both.
 *
 * main() reads the flags (parse_flags), assembles struct gw from the
 * config and the flags (assemble: index, sessions, metrics, access log,
 * then the kernel fast path), starts the control thread and the workers,
 * and runs the signal loop (run) until SIGTERM / SIGINT. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/log.h"
#include "core/kvindex.h"
#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/accesslog.h"
#include "gateway/bpf.h"
#include "gateway/config.h"
#include "gateway/control.h"
#include "gateway/adopt_srv.h"
#include "gateway/decide_srv.h"
#include "gateway/exact.h"
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
    "  --policy MODE        prefix-aware | least-request | round-robin | random | token-load\n"
    "  --workers N          worker threads (0 = one per core)\n"
    "  --access-log PATH    JSON-lines access log (\"-\" = stdout)\n"
    "  --decide-socket PATH where kvg-bypassd asks for pods (bypass.decide_socket)\n"
    "  --adopt-socket PATH  where kvg-bypassd hands up connections (bypass.adopt_socket)\n"
    "  --log-level LEVEL    error | warn | info | debug (info; also KVGATE_LOG)\n"
    "  --no-bpf             no kernel fast path (socket path only)\n"
    "  --no-splice          no sockmap splice of session flows (pod table and XDP guard stay)\n"
    "  --bpf-pinned DIR     use the BPF maps and XDP guard an operator loaded under DIR\n"
    "                       (scripts/bpf-load.sh) instead of loading them\n"
    "  --xdp-iface IF       attach the XDP guard to interface IF\n"
    "  --xdp-mode MODE      auto (native, else generic) | native | generic\n"
    "  -h, --help\n";

/* What the command line asked for. */
struct flags {
    const char *config, *listen, *admin, *policy, *alog, *decide, *adopt;
    const char *pods[POD_MAX];
    int npods, workers;                /* workers: -1 = from the config */
    int no_bpf, no_splice;
    const char *bpf_pinned, *xdp_iface;
    enum gwbpf_xdp_mode xdp_mode;
};

/* ---- flags ---- */

/* One option with its argument. 0, or 2 (exit status) after a sentence. */
static int take_flag(int c, const char *arg, struct flags *f)
{
    char *end;
    enum log_level lvl;
    switch (c) {
    case 'c': f->config = arg; return 0;
    case 'l': f->listen = arg; return 0;
    case 'a': f->admin = arg; return 0;
    case 'P': f->policy = arg; return 0;
    case 'L': f->alog = arg; return 0;
    case 'd':
        if (strlen(arg) >= sizeof(((struct gw_config *)0)->bypass_decide_socket)) {
            LOG_ERR("--decide-socket: a unix socket path is at most 107 bytes");
            return 2;
        }
        f->decide = arg;
        return 0;
    case 'A':
        if (strlen(arg) >= sizeof(((struct gw_config *)0)->bypass_adopt_socket)) {
            LOG_ERR("--adopt-socket: a unix socket path is at most 107 bytes");
            return 2;
        }
        f->adopt = arg;
        return 0;
    case 'B': f->no_bpf = 1; return 0;
    case 'S': f->no_splice = 1; return 0;
    case 'D': f->bpf_pinned = arg; return 0;
    case 'X': f->xdp_iface = arg; return 0;
    case 'p':
        if (f->npods == POD_MAX) {
            LOG_ERR("--pod: at most %d pods", POD_MAX);
            return 2;
        }
        f->pods[f->npods++] = arg;
        return 0;
    case 'w': {
        long v = strtol(arg, &end, 10);
        if (*end || v < 0 || v > 64) {
            LOG_ERR("--workers: expected 0..64, got '%s'", arg);
            return 2;
        }
        f->workers = (int)v;
        return 0;
    }
    case 'V':
        if (log_level_parse(arg, &lvl)) {
            LOG_ERR("--log-level: expected error, warn, info or debug, got '%s'", arg);
            return 2;
        }
        log_set_level(lvl);
        return 0;
    case 'M':
        if (!strcmp(arg, "auto")) f->xdp_mode = GWBPF_XDP_AUTO;
        else if (!strcmp(arg, "native")) f->xdp_mode = GWBPF_XDP_NATIVE;
        else if (!strcmp(arg, "generic")) f->xdp_mode = GWBPF_XDP_GENERIC;
        else {
            LOG_ERR("--xdp-mode: expected auto, native or generic, got '%s'", arg);
            return 2;
        }
        return 0;
    }
    return 2;
}

/* -1: go on; else the exit status (0 after --help). */
static int parse_flags(int argc, char **argv, struct flags *f)
{
    static const struct option opts[] = {
        {"config", 1, 0, 'c'}, {"listen", 1, 0, 'l'}, {"admin", 1, 0, 'a'},
        {"pod", 1, 0, 'p'}, {"policy", 1, 0, 'P'}, {"workers", 1, 0, 'w'},
        {"access-log", 1, 0, 'L'}, {"decide-socket", 1, 0, 'd'}, {"adopt-socket", 1, 0, 'A'},
        {"log-level", 1, 0, 'V'}, {"help", 0, 0, 'h'},
        /* issue 5: the BPF fast path */
        {"no-bpf", 0, 0, 'B'}, {"bpf-pinned", 1, 0, 'D'}, {"xdp-iface", 1, 0, 'X'},
        {"xdp-mode", 1, 0, 'M'}, {"no-splice", 0, 0, 'S'}, {0, 0, 0, 0},
    };
    int c;
    memset(f, 0, sizeof(*f));
    f->workers = -1;
    f->xdp_mode = GWBPF_XDP_AUTO;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(USAGE, stdout);
            return 0;
        }
        if (c == '?') {
            fputs(USAGE, stderr);
            return 2;
        }
        if (take_flag(c, optarg, f))
            return 2;
    }
    if (optind < argc) {
        LOG_ERR("unexpected argument '%s'", argv[optind]);
        fputs(USAGE, stderr);
        return 2;
    }
    return -1;
}

/* The flags over the config (flags win). 0, or 2 after a sentence. */
static int apply_flags(const struct flags *f, struct gw_config *cfg)
{
    char err[512];
    if (f->listen && gw_config_check_listen(f->listen, 0, err, sizeof(err))) {
        LOG_ERR("--listen: %s", err);
        return 2;
    }
    if (f->admin && gw_config_check_listen(f->admin, 1, err, sizeof(err))) {
        LOG_ERR("--admin: %s", err);
        return 2;
    }
    if (f->listen)
        snprintf(cfg->listen, sizeof(cfg->listen), "%s", f->listen);
    if (f->admin)
        snprintf(cfg->admin_listen, sizeof(cfg->admin_listen), "%s", f->admin);
    if (f->alog)
        snprintf(cfg->access_log, sizeof(cfg->access_log), "%s", f->alog);
    if (f->decide)
        snprintf(cfg->bypass_decide_socket, sizeof(cfg->bypass_decide_socket), "%s", f->decide);
    if (f->adopt)
        snprintf(cfg->bypass_adopt_socket, sizeof(cfg->bypass_adopt_socket), "%s", f->adopt);
    if (f->workers >= 0)
        cfg->workers = (uint32_t)f->workers;
    /* --no-splice is the sockmap splice's switch alone (gwbpf_opts below):
     * it leaves splice.mode as configured, which also says what a bypass
     * worker may splice (decide_srv.c handup_cause) */
    if (f->policy && policy_mode_parse(f->policy, &cfg->policies.global.mode)) {
        LOG_ERR("--policy: unknown mode '%s' (prefix-aware, least-request, round-robin, "
                "random)", f->policy);
        return 2;
    }
    for (int i = 0; i < f->npods; i++) {
        if (cfg->npods == POD_MAX) {
            LOG_ERR("--pod: at most %d pods", POD_MAX);
            return 2;
        }
        if (gw_pod_from_url(f->pods[i], &cfg->pods[cfg->npods], err, sizeof(err))) {
            LOG_ERR("--pod %s: %s", f->pods[i], err);
            return 2;
        }
        cfg->npods++;
    }
    if (gw_config_check_admin(cfg, NULL, err, sizeof(err))) {
        LOG_ERR("%s", err);
        return 2;
    }
    return 0;
}

/* ---- assembly ---- */

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
        LOG_WARN("limits.max_connections %u needs about %llu file descriptors, but "
                 "RLIMIT_NOFILE allows %llu (hard limit %llu): past about %llu connections, "
                 "accepts and pod connections will fail with EMFILE; raise the hard limit "
                 "(ulimit -Hn, systemd LimitNOFILE=) or lower limits.max_connections",
                 c->max_connections, (unsigned long long)need,
                 (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                 (unsigned long long)fit);
    } else if (rl.rlim_cur != was) {
        LOG_INFO("RLIMIT_NOFILE raised from %llu to %llu for limits.max_connections %u",
                 (unsigned long long)was, (unsigned long long)rl.rlim_cur, c->max_connections);
    }
}

/* The kernel fast path, before the control thread's first snapshot so the
 * pod table is written from the start. Any failure leaves kvgated on the
 * socket path (g->bpf NULL) with one sentence saying why. */
static void start_bpf(struct gw *g, const struct flags *f)
{
    char err[512];
    if (f->no_bpf) {
        if (f->xdp_iface || f->bpf_pinned)
            LOG_WARN("--no-bpf: ignoring --xdp-iface and --bpf-pinned");
        return;
    }
    const char *port = strrchr(g->cfg.listen, ':');
    struct gwbpf_opts bo = {.pin_dir = KVG_PIN_DIR_DEFAULT, .pinned_dir = f->bpf_pinned,
                            .gw_port = port ? (uint16_t)atoi(port + 1) : 0,
                            .no_splice = f->no_splice || g->cfg.splice_mode == GW_SPLICE_OFF};
    if (gwbpf_open(&bo, &g->bpf, err, sizeof(err)) < 0) {
        LOG_WARN("BPF fast path off: %s; serving on the socket path", err);
        return;
    }
    /* requests the kernel sends pods itself count in their load; what an
     * earlier run left in the map is not ours */
    g->counters.kload = (const volatile struct pod_kload *)gwbpf_pod_load(g->bpf);
    pod_kload_rebase(&g->counters);
    LOG_INFO("BPF fast path on: pod table and XDP guard %s %s",
             f->bpf_pinned ? "opened from" : "pinned under",
             f->bpf_pinned ? f->bpf_pinned : KVG_PIN_DIR_DEFAULT);
    const char *swhy = NULL;
    if (gwbpf_splice_ok(g->bpf, &swhy))
        LOG_INFO("sockmap splice of session flows on (mode %s, budget %llu bytes per flow and "
                 "direction)", g->cfg.splice_mode == GW_SPLICE_ON ? "on" : "auto",
                 (unsigned long long)g->cfg.splice_budget);
    else
        LOG_INFO("sockmap splice off: %s", swhy);
    if (f->xdp_iface && gwbpf_xdp_attach(g->bpf, f->xdp_iface, f->xdp_mode, err, sizeof(err)) < 0)
        LOG_WARN("XDP guard not attached now: %s (looked at again every second: a bypass "
                 "worker's entry program runs it behind itself, and it comes back when the worker "
                 "stops)", err);
    else if (f->xdp_iface)
        LOG_INFO("XDP guard attached to %s (%s)", f->xdp_iface, gwbpf_xdp_mode_name(g->bpf));
    if (f->xdp_iface)
        gwbpf_guard_keep(g->bpf, f->xdp_iface, f->xdp_mode);
}

/* struct gw from the config and the flags: the shared tables, metrics,
 * access log, fast path. 0, or the exit status after a sentence. */
static int assemble(struct gw *g, const struct flags *f, uint32_t *nworkers)
{
    char err[512];
    gw_config_defaults(&g->cfg);
    if (f->config && gw_config_load(f->config, &g->cfg, err, sizeof(err))) {
        LOG_ERR("%s", err);
        return 2;
    }
    g->config_path = f->config;
    int rc = apply_flags(f, &g->cfg);
    if (rc)
        return rc;
    if (g->cfg.npods == 0)
        LOG_WARN("no pods configured yet (add with --pod, the config file, or POST "
                 "/admin/pods); requests get 503 until then");
    uint32_t nw = g->cfg.workers ? g->cfg.workers : (uint32_t)sysconf(_SC_NPROCESSORS_ONLN);
    *nworkers = nw < 1 ? 1 : nw;
    raise_nofile(&g->cfg, *nworkers);
    uint32_t def_blocks = g->cfg.index_default_blocks;
    if (!def_blocks) /* vLLM on an H100 with an 8B model: 27,000 x 16 tokens */
        def_blocks = (uint32_t)(27000.0 * 16 * g->cfg.bytes_per_token / g->cfg.block_bytes);

    pthread_mutex_init(&g->policy_mu, NULL);
    atomic_store(&g->load_share_micro, 1000000); /* alone until the pods say otherwise */
    g->policies = g->cfg.policies;
    g->has_candidate = g->cfg.has_candidate;
    g->candidate = g->cfg.candidate;
    g->pidx = pidx_new(POD_MAX, g->cfg.index_max_entries, def_blocks);
    g->sessions = session_new(1u << 16);
    g->metrics = gw_metrics_new();
    outlier_init(&g->outlier, &g->cfg.outlier);
    g->rollout = rollout_new(&g->cfg.rollout); /* the config load checked it */
    g->report = report_new();
    tokload_init(&g->tl);
    gw_set_tenant_from_user(g->cfg.tenant_from_user);
    atomic_store(&g->rng, (uint64_t)getpid() * 0x9E3779B97F4A7C15ull);
    if (!g->pidx || !g->sessions || !g->metrics || !g->rollout || !g->report) {
        LOG_ERR("out of memory (index.max_entries %u)", g->cfg.index_max_entries);
        return 1;
    }
    if (g->cfg.access_log[0]) {
        g->alog = accesslog_open(g->cfg.access_log, g->cfg.access_log_buffer);
        if (!g->alog) {
            LOG_ERR("access_log: cannot open '%s': %s", g->cfg.access_log, strerror(errno));
            return 2;
        }
    }
    if (gw_exact_init(g, err, sizeof(err))) {
        LOG_ERR("%s", err);
        return 2;
    }
    start_bpf(g, f);
    splice_init(g, g->bpf); /* off without the BPF handle */
    return 0;
}

static void disassemble(struct gw *g)
{
    gwbpf_close(g->bpf); /* the control thread, its only user, is gone */
    g->bpf = NULL;
    accesslog_close(g->alog);
    gw_metrics_free(g->metrics);
    rollout_free(g->rollout);
    report_free(g->report);
    session_free(g->sessions);
    pidx_free(g->pidx);
    tokload_fini(&g->tl);
    kvx_free(g->kvx); /* the control thread that wrote it is gone */
    g->kvx = NULL;
    gw_exact_fini(g);
    snapshot_publish(NULL);
}

/* ---- the run loop ---- */

/* SIGTERM / SIGINT: a graceful drain (worker.h: workers_drain) until
 * every connection is done or limits.drain_timeout_ms passed (then the
 * workers end what is left, and a moment later we stop); a second one
 * stops at once. SIGHUP: a reload on the control thread. */
static void run(struct gw *g, struct ctl *ctl, int sfd)
{
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
            LOG_INFO("SIGHUP: reloading %s", g->config_path ? g->config_path : "(no file)");
            control_request_reload(ctl);
            continue;
        }
        if (draining) {
            LOG_INFO("second signal: stopping now");
            break;
        }
        draining = 1;
        atomic_store(&g->draining, 1);
        /* the workers cut what is left at the deadline; one more second
         * lets those last answers go out */
        give_up_ns = ev_now_ns() + (uint64_t)g->cfg.drain_timeout_ms * 1000000ull + 1000000000ull;
        LOG_INFO("%s: draining (up to %u ms; a second signal stops at once)",
                 strsignal((int)si.ssi_signo), g->cfg.drain_timeout_ms);
        workers_drain();
    }
}

/* SIGINT, SIGTERM and SIGHUP through a signalfd: blocked before any thread
 * starts, so only the signalfd sees them. */
static int signals_fd(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    return signalfd(-1, &mask, SFD_CLOEXEC);
}

int main(int argc, char **argv)
{
    static struct gw g; /* large (pod config array): not on the stack */
    static struct flags f;
    struct ctl *ctl = NULL;
    uint32_t nw = 1;
    log_init("kvgated");
    int rc = parse_flags(argc, argv, &f);
    if (rc >= 0)
        return rc;
    int sfd = signals_fd(); /* before any thread starts */
    if ((rc = assemble(&g, &f, &nw)))
        return rc;
    rc = control_start(&g, &ctl);
    if (rc == 0)
        rc = workers_start(&g, nw);
    if (rc == 0 && (rc = decide_srv_start(&g)))
        workers_stop();
    if (rc == 0 && (rc = adopt_srv_start(&g))) {
        decide_srv_stop();
        workers_stop();
    }
    if (rc) {
        control_stop(ctl);
        gwbpf_close(g.bpf);
        return 1;
    }
    LOG_INFO("listening on %s (%u workers), admin on %s, %u pods, policy %s", g.cfg.listen, nw,
             g.cfg.admin_listen, g.cfg.npods, policy_mode_name(g.cfg.policies.global.mode));
    run(&g, ctl, sfd);
    LOG_INFO("shutting down");
    atomic_store(&g.stopping, 1);
    adopt_srv_stop(); /* before the workers: it queues connections to them */
    decide_srv_stop(); /* what the bypass workers held is released and logged */
    workers_stop();
    control_stop(ctl);
    disassemble(&g);
    close(sfd);
    return 0;
}
