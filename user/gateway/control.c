/* control: kvgated's control thread. See control.h; control_priv.h lists
 * the files of the control plane.
 *
 * One thread, one ev_loop, one struct ctl. It owns the mutable pod table
 * (control_pods.c) and is the only writer of snapshots, of g->policies and
 * of the prefix index's per-pod capacities. probe.c probes every pod over
 * three kept-alive connections (scrape.h), one per kind, so that a stalled
 * /metrics never delays /health:
 *
 *   /metrics    every scrape.interval_ms, skipped while the previous one is
 *               in flight (a stalled pod just ages); parsed by the pod's
 *               engine (engine_metrics.h)
 *   /health     every scrape.health_interval_ms; healthy after one success,
 *               unhealthy after two failures in a row or one refused
 *               connection (by any probe); a success also clears the data
 *               path's down mark (counters.down_until_ns)
 *   /v1/models  at start, every scrape.models_interval_ms, when a pod
 *               recovers, and when it reports a running adapter we do not
 *               know
 *
 * Nothing reaches the table from other threads: the admin API (admin.c)
 * runs on this loop, and main's SIGHUP only sets a flag and writes an
 * eventfd (control_request_reload). */
#include "gateway/control.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/log.h"
#include "gateway/bpf.h"
#include "gateway/control_priv.h"
#include "gateway/resolver.h"

static void on_wake(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct ctl *c = arg;
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
    if (!atomic_exchange(&c->reload_req, 0))
        return;
    char err[512];
    if (ctl_reload(c, err, sizeof(err), NULL, 0))
        LOG_ERR("reload failed: %s", err);
    else
        LOG_INFO("reloaded %s", c->g->config_path);
}

void control_request_reload(struct ctl *c)
{
    /* async-signal-safe: an atomic store and a write */
    if (!c)
        return;
    atomic_store(&c->reload_req, 1);
    if (c->efd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(c->efd, &one, sizeof(one));
        (void)n; /* EAGAIN: a wake-up is pending anyway */
    }
}

/* The XDP guard back on its interface when a bypass worker stopped
 * (gateway/bpf.h: gwbpf_guard_tick); armed only with the fast path on. */
static void on_guard_tick(struct ev_loop *l, void *arg)
{
    struct ctl *c = arg;
    gwbpf_guard_tick(c->g->bpf, ev_now_ns());
    c->guard_timer = ev_timer_at(l, ev_now_ns() + 1000000000ull, on_guard_tick, c);
}

static void *thread_main(void *arg)
{
    struct ctl *c = arg;
    ev_run(c->l);
    return NULL;
}

/* Undoes control_start, in the reverse order (the thread is not running). */
static void teardown(struct ctl *c)
{
    admin_stop(c->admin);
    c->admin = NULL;
    ctl_kv_stop(c);
    resolver_stop(); /* undelivered answers are dropped: free their pods */
    ctl_pods_free(c);
    probes_disarm(c); /* before the loop (and its timers) goes */
    if (c->guard_timer && c->l)
        ev_timer_cancel(c->l, c->guard_timer);
    c->guard_timer = 0;
    ctl_rollout_disarm(c);
    if (c->l)
        ev_free(c->l);
    if (c->efd >= 0)
        close(c->efd);
    kv_free(c);
}

/* The loop, its wake-up, the pods of the config and the first snapshot. */
static int assemble(struct ctl *c)
{
    char err[512];
    int rc;
    c->l = ev_new();
    c->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!c->l || c->efd < 0) {
        rc = c->l ? -errno : -ENOMEM;
        LOG_ERR("control thread: %s", strerror(-rc));
        return rc;
    }
    if ((rc = ev_add(c->l, c->efd, EPOLLIN, on_wake, c)) < 0) {
        LOG_ERR("control thread: %s", strerror(-rc));
        return rc;
    }
    for (uint32_t i = 0; i < c->cfg.npods; i++) {
        const struct gw_pod_cfg *p = &c->cfg.pods[i];
        if ((rc = ctl_add_pod(c, p, err, sizeof(err), NULL, NULL, 0)) < 0) {
            LOG_ERR("pods[%u] (%s): %s", i, p->name, err);
            return rc;
        }
    }
    /* the first snapshot now, so workers never route without one */
    ctl_publish_now(c);
    if ((rc = admin_start(c, &c->admin)) < 0)
        return rc;
    if ((rc = resolver_start(c->l)) < 0) {
        LOG_ERR("resolver thread: %s", strerror(-rc));
        return rc;
    }
    probes_arm(c);
    ctl_rollout_arm(c);
    if (c->g->bpf)
        c->guard_timer = ev_timer_at(c->l, ev_now_ns() + 1000000000ull, on_guard_tick, c);
    return 0;
}

int control_start(struct gw *g, struct ctl **out)
{
    *out = NULL;
    struct ctl *c = kv_calloc(1, sizeof(*c));
    if (!c) {
        LOG_ERR("control thread: out of memory");
        return -ENOMEM;
    }
    c->g = g;
    c->efd = -1;
    memcpy(&c->cfg, &g->cfg, sizeof(c->cfg));
    int rc = assemble(c);
    if (rc < 0) {
        teardown(c);
        return rc;
    }
    c->running = 1; /* from now on a host name goes to the resolver */
    if ((rc = -pthread_create(&c->th, NULL, thread_main, c)) < 0) {
        LOG_ERR("control thread: %s", strerror(-rc));
        c->running = 0;
        teardown(c);
        return rc;
    }
    *out = c;
    return 0;
}

void control_stop(struct ctl *c)
{
    if (!c)
        return;
    ev_stop(c->l);
    pthread_join(c->th, NULL);
    c->running = 0;
    teardown(c);
}
