/* control: kvgated's control thread. See control.h.
 *
 * One thread, one ev_loop. It owns the mutable pod table (struct cpod by
 * slot) and is the only writer of snapshots, of g->policies and of the
 * prefix index's per-pod capacities. probe.c probes every pod over three
 * kept-alive connections (scrape.h), one per kind, so that a stalled
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
 * New pods start unhealthy; their first probes go out at once, so a pod
 * that answers is routable within a few milliseconds.
 *
 * No DNS on this thread once it runs (issue 9): a pod whose host is a name
 * (POST /admin/pods, a reload) waits in `pending` while the resolver
 * thread (resolver.h) looks it up, and joins the table when the answer
 * comes back; a reload that drops it meanwhile cancels it. At start-up,
 * before anything is served, names are resolved in place.
 *
 * Snapshots: every change marks the table dirty; a timer publishes it at the
 * end of the loop iteration, at most once a millisecond (a snapshot copies
 * every pod_info, ~5 KiB each, and a scrape round makes one change per pod).
 *
 * Other threads reach the table through a mutex-protected queue and an
 * eventfd; control_add_pod / control_remove_pod / control_drain_pod /
 * control_reload block until the control thread has done the work and
 * return its result (called on the control thread itself, they run in
 * place). The admin API (admin.c) runs on this loop and calls ctl_*. */
#include "gateway/control.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/sbuf.h"
#include "core/prefix_index.h"
#include "gateway/bpf.h" /* issue 5: the BPF pod table mirrors each snapshot */
#include "gateway/control_priv.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"
#include "common/netaddr.h"
#include "gateway/resolver.h"
#include "gateway/scrape.h"

#define PUBLISH_GAP_NS 1000000ull /* at most one snapshot a millisecond */

enum { OP_ADD, OP_REMOVE, OP_DRAIN, OP_RELOAD };

/* A pod waiting for its host name (resolver.h). */
struct pending {
    struct gw_pod_cfg cfg;
    ctl_added_cb done;
    uint64_t cookie;
    int cancelled;               /* a reload dropped it: not added when it resolves */
    struct pending *next;
};

struct creq {
    int op;
    struct gw_pod_cfg pod;
    char name[POD_NAME_MAX];
    int drain;
    char *err;
    size_t errlen;
    int done, rc;
    struct creq *next;
};

static struct ctl {
    struct gw *g;
    struct ev_loop *l;
    pthread_t th;
    int started, thread_running;
    int efd;
    struct gw_config cfg;        /* private copy: pods and probe periods */
    struct cpod *pods[POD_MAX];
    uint32_t npods, next_slot;
    struct pending *pending;     /* pods whose host is resolving */
    uint64_t gen;
    uint64_t pub_timer, last_pub;
    int dirty;
    pthread_mutex_t mu;          /* guards the queue and accepting */
    pthread_cond_t cv;
    struct creq *q_head, *q_tail;
    int accepting;
    atomic_int reload_req;
} C = {.efd = -1, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

struct gw *ctl_gw(void)
{
    return C.g;
}

struct ev_loop *ctl_loop(void)
{
    return C.l;
}

struct cpod *ctl_pod(uint32_t slot)
{
    return slot < POD_MAX ? C.pods[slot] : NULL;
}

const struct gw_config *ctl_cfg(void)
{
    return &C.cfg;
}

/* ---- snapshots ---- */

/* The BPF pod table from snapshot s (the global policy's thresholds:
 * per-model overrides do not apply to the map). A write error is said
 * once, when it differs from the last outcome. */
static void mirror_bpf(const struct pod_snapshot *s)
{
    static int last_err;
    struct gw *g = C.g;
    struct policy_cfg pol;
    pthread_mutex_lock(&g->policy_mu);
    pol = g->policies.global;
    pthread_mutex_unlock(&g->policy_mu);
    int rc = gwbpf_update_pods(g->bpf, s, &g->counters, ev_now_ns(), &pol);
    if (rc < 0 && rc != last_err)
        fprintf(stderr, "kvgated: BPF pod table: write failed: %s\n", strerror(-rc));
    last_err = rc;
}

static void on_publish(struct ev_loop *l, void *arg)
{
    C.pub_timer = 0;
    if (!C.dirty)
        return;
    struct pod_snapshot *s = snapshot_new(C.npods);
    if (!s) { /* try again shortly; the workers keep the old one */
        C.pub_timer = ev_timer_at(l, ev_now_ns() + 10 * PUBLISH_GAP_NS, on_publish, NULL);
        return;
    }
    s->generation = ++C.gen;
    uint32_t n = 0;
    for (uint32_t i = 0; i < POD_MAX && n < C.npods; i++)
        if (C.pods[i])
            s->pods[n++] = C.pods[i]->info;
    s->npods = n;
    snapshot_publish(s);
    if (C.g->metrics) /* model labels: only what the pods serve */
        gw_metrics_served(C.g->metrics, s);
    /* issue 5: write the BPF pod table (kvg_pods) from this snapshot. s
     * stays valid: only this thread publishes, and the current snapshot
     * holds a reference until the next publish. */
    if (C.g->bpf)
        mirror_bpf(s);
    C.dirty = 0;
    C.last_pub = ev_now_ns();
}

void ctl_mark_dirty(void)
{
    C.dirty = 1;
    if (C.pub_timer || !C.l)
        return;
    /* a timer due now fires at the end of this loop iteration */
    uint64_t at = C.last_pub ? C.last_pub + PUBLISH_GAP_NS : 0;
    C.pub_timer = ev_timer_at(C.l, at, on_publish, NULL);
}

/* ---- pod table ---- */

static struct cpod *find_pod(const char *name)
{
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (C.pods[i] && !strcmp(C.pods[i]->info.name, name))
            return C.pods[i];
    return NULL;
}

/* The prefix index's capacity for a pod whose cache size is unknown, as
 * main.c computes it for pidx_new. */
static uint32_t default_capacity(void)
{
    const struct gw_config *c = &C.g->cfg;
    if (c->index_default_blocks)
        return c->index_default_blocks;
    return (uint32_t)(27000.0 * 16 * c->bytes_per_token / c->block_bytes);
}

/* Explicitly configured names: all base models until /v1/models says
 * which are adapters. */
static void seed_models(struct cpod *p)
{
    p->info.nmodels = p->info.nadapters = 0;
    p->info.running_loras = 0;
    for (uint32_t i = 0; i < p->cfg.nmodels && i < POD_MAX_MODELS; i++)
        memcpy(p->info.models[p->info.nmodels++], p->cfg.models[i], POD_MODEL_MAX);
}

/* Whether pc may join the table: a new name, a new address, room. Pods
 * waiting for their name to resolve count. 0 or -EEXIST / -ENOSPC + err. */
static int check_new(const struct gw_pod_cfg *pc, char *err, size_t errlen)
{
    if (find_pod(pc->name)) {
        snprintf(err, errlen, "a pod named \"%s\" exists", pc->name);
        return -EEXIST;
    }
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (C.pods[i] && !strcmp(C.pods[i]->cfg.host, pc->host) &&
            C.pods[i]->cfg.port == pc->port) {
            snprintf(err, errlen, "pod \"%s\" has the same address", C.pods[i]->info.name);
            return -EEXIST;
        }
    uint32_t waiting = 0;
    for (struct pending *q = C.pending; q; q = q->next) {
        if (q->cancelled)
            continue;
        waiting++;
        if (!strcmp(q->cfg.name, pc->name) ||
            (!strcmp(q->cfg.host, pc->host) && q->cfg.port == pc->port)) {
            snprintf(err, errlen, "pod \"%s\" (same name or address) is being added",
                     q->cfg.name);
            return -EEXIST;
        }
    }
    if (C.npods + waiting >= POD_MAX) {
        snprintf(err, errlen, "the pod table is full (%d pods)", POD_MAX);
        return -ENOSPC;
    }
    return 0;
}

/* Adds pc at the address its host resolved to. 0 or -ENOMEM + err. */
static int add_resolved(const struct gw_pod_cfg *pc, const struct sockaddr_storage *ss,
                        socklen_t sl, char *err, size_t errlen)
{
    struct cpod *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* slots go round-robin, so a freed slot is reused as late as possible
     * (workers may still hold requests counted under it) */
    uint32_t slot = C.next_slot % POD_MAX;
    while (C.pods[slot])
        slot = (slot + 1) % POD_MAX;
    C.next_slot = slot + 1;
    p->cfg = *pc;
    struct pod_info *in = &p->info;
    in->slot = slot;
    memcpy(in->name, pc->name, sizeof(in->name));
    memcpy(in->host, pc->host, sizeof(in->host));
    in->port = pc->port;
    in->addr = *ss;
    in->addrlen = sl;
    in->engine = pc->engine;
    seed_models(p);
    char hostport[POD_NAME_MAX + 8];
    snprintf(hostport, sizeof(hostport), strchr(pc->host, ':') ? "[%s]:%u" : "%s:%u",
             pc->host, pc->port);
    struct hget *hs[3] = {&p->mc, &p->hc, &p->vc};
    for (int i = 0; i < 3; i++) {
        hget_init(hs[i], C.l);
        hget_target(hs[i], ss, sl, hostport);
    }
    atomic_store(&C.g->counters.down_until_ns[slot], 0);
    outlier_reset(&C.g->outlier, &C.g->counters, slot); /* the slot's history was another pod's */
    if (C.g->pidx) {
        pidx_purge_pod(C.g->pidx, slot);
        pidx_set_capacity(C.g->pidx, slot, default_capacity());
    }
    C.pods[slot] = p;
    C.npods++;
    ctl_mark_dirty();
    if (C.l)
        probe_now(p);
    return 0;
}

static void unlink_pending(struct pending *q)
{
    for (struct pending **pp = &C.pending; *pp; pp = &(*pp)->next)
        if (*pp == q) {
            *pp = q->next;
            return;
        }
}

/* The resolver answered for q (on this thread). */
static void on_resolved(void *arg, int rc, const struct sockaddr_storage *ss, socklen_t sl,
                        const char *rerr)
{
    struct pending *q = arg;
    char err[320];
    int res;
    unlink_pending(q);
    if (q->cancelled) {
        res = -ECANCELED;
        snprintf(err, sizeof(err), "a reload removed the pod while its host was resolving");
    } else if (rc) {
        res = -EINVAL;
        snprintf(err, sizeof(err), "url: %s", rerr ? rerr : "cannot resolve host");
    } else if (!(res = check_new(&q->cfg, err, sizeof(err)))) {
        res = add_resolved(&q->cfg, ss, sl, err, sizeof(err));
    }
    if (q->done)
        q->done(q->cookie, res, err);
    else if (res && res != -ECANCELED)
        fprintf(stderr, "kvgated: pod \"%s\" not added: %s\n", q->cfg.name, err);
    free(q);
}

int ctl_add_pod(const struct gw_pod_cfg *pc, char *err, size_t errlen, ctl_added_cb done,
                uint64_t cookie)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    int rc = check_new(pc, err, errlen);
    if (rc)
        return rc;
    if (hostport_is_numeric(pc->host) || !C.thread_running) {
        /* no DNS, or start-up (before serving: a name may block here) */
        if (hostport_resolve(pc->host, pc->port, &ss, &sl, err, errlen))
            return -EINVAL;
        return add_resolved(pc, &ss, sl, err, errlen);
    }
    struct pending *q = calloc(1, sizeof(*q));
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    q->cfg = *pc;
    q->done = done;
    q->cookie = cookie;
    q->next = C.pending;
    C.pending = q;
    if ((rc = resolver_submit(pc->host, pc->port, on_resolved, q))) {
        unlink_pending(q);
        free(q);
        snprintf(err, errlen, "cannot resolve host \"%s\": %s", pc->host, strerror(-rc));
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    return -EINPROGRESS;
}

void ctl_resolving_json(struct sbuf *o)
{
    int n = 0;
    sbuf_puts(o, "[");
    for (struct pending *q = C.pending; q; q = q->next) {
        if (q->cancelled)
            continue;
        sbuf_puts(o, n++ ? ",\"" : "\"");
        sbuf_json_escape(o, q->cfg.name, strlen(q->cfg.name));
        sbuf_puts(o, "\"");
    }
    sbuf_puts(o, "]");
}

static struct pending *find_pending(const char *name)
{
    for (struct pending *q = C.pending; q; q = q->next)
        if (!q->cancelled && !strcmp(q->cfg.name, name))
            return q;
    return NULL;
}

static void free_pod(struct cpod *p)
{
    hget_free(&p->mc);
    hget_free(&p->hc);
    hget_free(&p->vc);
    free(p);
}

int ctl_remove_pod(const char *name)
{
    struct cpod *p = find_pod(name);
    struct pending *q = p ? NULL : find_pending(name);
    if (q) { /* not there yet: it will not be */
        q->cancelled = 1;
        return 0;
    }
    if (!p)
        return -ENOENT;
    uint32_t slot = p->info.slot;
    C.pods[slot] = NULL;
    C.npods--;
    if (C.g->pidx) /* its entries go, its fair share back to the others */
        pidx_remove_pod(C.g->pidx, slot);
    free_pod(p);
    ctl_mark_dirty();
    return 0;
}

int ctl_drain_pod(const char *name, int drain)
{
    struct cpod *p = find_pod(name);
    if (!p)
        return -ENOENT;
    if (p->info.draining != !!drain) {
        p->info.draining = (uint8_t)!!drain;
        ctl_mark_dirty();
    }
    return 0;
}

/* ---- reload ---- */

static int same_models(const struct gw_pod_cfg *a, const struct gw_pod_cfg *b)
{
    if (a->nmodels != b->nmodels)
        return 0;
    for (uint32_t i = 0; i < a->nmodels; i++)
        if (strcmp(a->models[i], b->models[i]))
            return 0;
    return 1;
}

int ctl_reload(char *err, size_t errlen)
{
    if (!C.g->config_path) {
        snprintf(err, errlen, "kvgated was started without a config file (--config)");
        return -1;
    }
    struct gw_config *nc = malloc(sizeof(*nc));
    if (!nc) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gw_config_defaults(nc);
    if (gw_config_load(C.g->config_path, nc, err, errlen) ||
        gw_config_check_admin(nc, C.g->cfg.admin_listen, err, errlen)) {
        free(nc);
        return -1;
    }
    /* removed pods, and pods whose address changed (they come back as new
     * pods: another slot, an empty prefix index) */
    for (uint32_t i = 0; i < POD_MAX; i++) {
        struct cpod *p = C.pods[i];
        if (!p)
            continue;
        uint32_t j = 0;
        while (j < nc->npods && strcmp(nc->pods[j].name, p->info.name))
            j++;
        if (j == nc->npods || strcmp(nc->pods[j].host, p->cfg.host) ||
            nc->pods[j].port != p->cfg.port)
            ctl_remove_pod(p->info.name);
    }
    /* the same for pods still waiting for their name to resolve */
    for (struct pending *q = C.pending; q; q = q->next) {
        uint32_t j = 0;
        while (j < nc->npods && strcmp(nc->pods[j].name, q->cfg.name))
            j++;
        if (j == nc->npods || strcmp(nc->pods[j].host, q->cfg.host) ||
            nc->pods[j].port != q->cfg.port)
            q->cancelled = 1;
    }
    int rc = 0;
    for (uint32_t j = 0; j < nc->npods; j++) {
        const struct gw_pod_cfg *pc = &nc->pods[j];
        struct cpod *p = find_pod(pc->name);
        if (!p) {
            char e[256];
            if (find_pending(pc->name))
                continue; /* on its way */
            int arc = ctl_add_pod(pc, e, sizeof(e), NULL, 0);
            if (arc == -EINPROGRESS)
                continue; /* added when its name resolves (or logged) */
            if (arc && !rc) { /* the rest still applies */
                snprintf(err, errlen, "pods[%u]: %s", j, e);
                rc = -1;
            }
            continue;
        }
        int changed = 0;
        if (p->cfg.engine != pc->engine) {
            p->info.engine = pc->engine;
            p->info.metrics_ok = 0;
            changed = 1;
        }
        if (!same_models(&p->cfg, pc)) {
            p->cfg = *pc;
            seed_models(p);
            changed = 1;
        }
        p->cfg = *pc;
        if (changed) {
            ctl_mark_dirty();
            probe_models(p);
        }
    }
    int periods = nc->scrape_ms != C.cfg.scrape_ms || nc->health_ms != C.cfg.health_ms ||
                  nc->models_ms != C.cfg.models_ms;
    memcpy(&C.cfg, nc, sizeof(*nc));
    if (periods && C.l)
        probes_arm(C.l);
    ctl_set_policies(&nc->policies);
    /* the admin token applies at once (the listener itself stays) */
    admin_set_token(nc->admin_token);
    gw_set_tenant_from_user(nc->tenant_from_user);
    /* what the workers and the index were built with stays until a restart
     * (config.c's key table says which keys; flags given at start count as
     * running values) */
    char keep[512];
    if (gw_config_restart_keys(&C.g->cfg, nc, keep, sizeof(keep)) > 0)
        fprintf(stderr, "kvgated: reload: %s keep their running values until a restart "
                        "(the rest applied)\n", keep);
    free(nc);
    return rc;
}

/* ---- requests from other threads ---- */

static int run_req(struct creq *r)
{
    switch (r->op) {
    case OP_ADD: {
        char e[256];
        return ctl_add_pod(&r->pod, e, sizeof(e), NULL, 0);
    }
    case OP_REMOVE:
        return ctl_remove_pod(r->name);
    case OP_DRAIN:
        return ctl_drain_pod(r->name, r->drain);
    default:
        return ctl_reload(r->err, r->errlen);
    }
}

static int submit(struct creq *r)
{
    if (C.thread_running && pthread_equal(pthread_self(), C.th))
        return run_req(r);
    pthread_mutex_lock(&C.mu);
    if (!C.accepting) {
        pthread_mutex_unlock(&C.mu);
        if (r->op == OP_RELOAD)
            snprintf(r->err, r->errlen, "the control thread is not running");
        return -ESRCH;
    }
    if (C.q_tail)
        C.q_tail->next = r;
    else
        C.q_head = r;
    C.q_tail = r;
    pthread_mutex_unlock(&C.mu);
    uint64_t one = 1;
    ssize_t n = write(C.efd, &one, sizeof(one));
    (void)n; /* EAGAIN: a wake-up is pending anyway */
    pthread_mutex_lock(&C.mu);
    while (!r->done)
        pthread_cond_wait(&C.cv, &C.mu);
    pthread_mutex_unlock(&C.mu);
    return r->rc;
}

/* Ends every queued request with rc (the loop is gone) or runs them. */
static void drain_queue(int run, int rc)
{
    for (;;) {
        pthread_mutex_lock(&C.mu);
        struct creq *r = C.q_head;
        if (r) {
            C.q_head = r->next;
            if (!C.q_head)
                C.q_tail = NULL;
        }
        pthread_mutex_unlock(&C.mu);
        if (!r)
            return;
        int res = run ? run_req(r) : rc;
        if (!run && r->op == OP_RELOAD)
            snprintf(r->err, r->errlen, "kvgated is stopping");
        pthread_mutex_lock(&C.mu);
        r->rc = res;
        r->done = 1;
        pthread_cond_broadcast(&C.cv);
        pthread_mutex_unlock(&C.mu);
    }
}

static void on_wake(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
    if (atomic_exchange(&C.reload_req, 0)) {
        char err[512];
        if (ctl_reload(err, sizeof(err)))
            fprintf(stderr, "kvgated: reload failed: %s\n", err);
        else
            fprintf(stderr, "kvgated: reloaded %s\n", C.g->config_path);
    }
    drain_queue(1, 0);
}

int control_add_pod(const struct gw_pod_cfg *p)
{
    struct creq r = {.op = OP_ADD, .pod = *p};
    return submit(&r);
}

int control_remove_pod(const char *name)
{
    struct creq r = {.op = OP_REMOVE};
    snprintf(r.name, sizeof(r.name), "%s", name);
    return submit(&r);
}

int control_drain_pod(const char *name, int drain)
{
    struct creq r = {.op = OP_DRAIN, .drain = drain};
    snprintf(r.name, sizeof(r.name), "%s", name);
    return submit(&r);
}

int control_reload(char *err, size_t errlen)
{
    struct creq r = {.op = OP_RELOAD, .err = err, .errlen = errlen};
    return submit(&r) ? -1 : 0;
}

void control_request_reload(void)
{
    /* async-signal-safe: an atomic store and a write */
    atomic_store(&C.reload_req, 1);
    if (C.efd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(C.efd, &one, sizeof(one));
        (void)n;
    }
}

/* ---- thread ---- */

static void *thread_main(void *arg)
{
    ev_run(C.l);
    return NULL;
}

static void teardown(void)
{
    admin_stop();
    resolver_stop(); /* undelivered answers are dropped: free their pods */
    while (C.pending) {
        struct pending *q = C.pending;
        C.pending = q->next;
        free(q);
    }
    for (uint32_t i = 0; i < POD_MAX; i++)
        if (C.pods[i]) {
            free_pod(C.pods[i]);
            C.pods[i] = NULL;
        }
    C.npods = 0;
    probes_disarm(); /* before the loop (and its timers) goes */
    if (C.l)
        ev_free(C.l);
    C.l = NULL;
    C.pub_timer = 0;
    C.dirty = 0;
    if (C.efd >= 0)
        close(C.efd);
    C.efd = -1;
}

int control_start(struct gw *g)
{
    char err[512];
    int rc;
    C.g = g;
    ctl_killswitch_reset();
    memcpy(&C.cfg, &g->cfg, sizeof(C.cfg));
    C.l = ev_new();
    C.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!C.l || C.efd < 0) {
        rc = -errno;
        fprintf(stderr, "kvgated: control thread: %s\n", strerror(errno));
        goto fail;
    }
    if ((rc = ev_add(C.l, C.efd, EPOLLIN, on_wake, NULL)) < 0) {
        fprintf(stderr, "kvgated: control thread: %s\n", strerror(-rc));
        goto fail;
    }
    for (uint32_t i = 0; i < g->cfg.npods; i++) {
        if ((rc = ctl_add_pod(&g->cfg.pods[i], err, sizeof(err), NULL, 0)) < 0) {
            fprintf(stderr, "kvgated: pods[%u] (%s): %s\n", i, g->cfg.pods[i].name, err);
            goto fail;
        }
    }
    /* the first snapshot now, so workers never route without one */
    C.dirty = 1;
    ev_timer_cancel(C.l, C.pub_timer);
    on_publish(C.l, NULL);
    if ((rc = admin_start(g, C.l)) < 0)
        goto fail;
    if ((rc = resolver_start(C.l)) < 0) {
        fprintf(stderr, "kvgated: resolver thread: %s\n", strerror(-rc));
        goto fail;
    }
    probes_arm(C.l);
    pthread_mutex_lock(&C.mu);
    C.accepting = 1;
    pthread_mutex_unlock(&C.mu);
    if ((rc = -pthread_create(&C.th, NULL, thread_main, NULL)) < 0) {
        fprintf(stderr, "kvgated: control thread: %s\n", strerror(-rc));
        pthread_mutex_lock(&C.mu);
        C.accepting = 0;
        pthread_mutex_unlock(&C.mu);
        goto fail;
    }
    C.thread_running = 1;
    C.started = 1;
    return 0;
fail:
    teardown();
    return rc ? rc : -EINVAL;
}

void control_stop(void)
{
    if (!C.started)
        return;
    pthread_mutex_lock(&C.mu);
    C.accepting = 0;
    pthread_mutex_unlock(&C.mu);
    ev_stop(C.l);
    pthread_join(C.th, NULL);
    C.thread_running = 0;
    drain_queue(0, -ECANCELED);
    teardown();
    C.started = 0;
}
