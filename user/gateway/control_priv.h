/* control_priv: what kvgated's control plane shares inside itself. One
 * struct ctl (control.c makes it) is handed to every part; none keeps a
 * file-scope singleton. Not for the data path (workers read snapshots,
 * gateway.h).
 *
 *   control.c         the thread: start, stop, the wake-up for SIGHUP
 *   control_pods.c    the pod table: add (host names through resolver.c),
 *                     remove, drain, sync with a reloaded config, publish
 *                     (snapshot, model labels, the BPF pod table)
 *   control_reload.c  the config file read again
 *   control_policy.c  the policies in force and the kill switch
 *   control_rollout.c the guarded canary's clock, actions and status
 *   control_util.c    each pod's utilisation and cost, from its scrapes
 *   probe.c           the periodic /metrics, /health, /v1/models probes,
 *                     over scrape.c (the non-blocking HTTP/1.1 GET client)
 *   admin.c           the admin listener on the thread's loop (admin_api.c:
 *                     its endpoints; admin_priv.h)
 *
 * Everything here runs on the control thread, except control_start /
 * control_stop (main thread, the thread not running) and the reload
 * request (control.h). */
#ifndef KVGATE_GATEWAY_CONTROL_PRIV_H
#define KVGATE_GATEWAY_CONTROL_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/gateway.h"
#include "core/podutil.h"
#include "gateway/scrape.h"

struct admin;
struct ctl;
struct ctl_pending;
struct ev_loop;
struct sbuf;

/* One pod. Allocated on add, freed on remove; its slot is stable. */
struct cpod {
    struct ctl *ctl;
    struct pod_info info;        /* what snapshots publish */
    struct gw_pod_cfg cfg;       /* as configured */
    struct hget mc, hc, vc;      /* probe connections: /metrics, /health, /v1/models */
    uint32_t health_fails;       /* failed health checks in a row */
    uint64_t models_at;          /* last /v1/models request (ev_now_ns) */
    uint64_t scrape_cost_ns;     /* reading + parsing its last /metrics page */
    int64_t scrape_credit_ns;    /* parse budget: scraped while >= 0 (probe.c) */
    struct podutil util;         /* utilisation and cost (control_util.c) */
};

/* probe.c's timers. */
struct ctl_probes {
    uint64_t scrape_next, health_next, models_next;
    uint64_t t_scrape, t_health, t_models;
    int armed;
};

struct ctl {
    struct gw *g;
    struct ev_loop *l;
    struct gw_config cfg;        /* private copy: pods and probe periods (reloads) */
    /* the pod table (control_pods.c) */
    struct cpod *pods[POD_MAX];  /* by slot; NULL: free */
    struct load_share share;     /* this gateway's share of the pods' load */
    uint32_t npods, next_slot;
    struct ctl_pending *pending; /* pods whose host is resolving */
    uint64_t gen, pub_timer, last_pub;
    int dirty;
    int bpf_err;                 /* the BPF pod table's last write result */
    /* the thread (control.c) */
    pthread_t th;
    int running;                 /* serving: a host name goes to the resolver */
    int efd;                     /* wake-up (reload requests), -1 none */
    atomic_int reload_req;
    struct ctl_probes probes;
    /* the kill switch (control_policy.c): `saved` is the policy set as it
     * would be without it */
    int ks_on;
    struct gw_policies ks_saved, ks_scratch;
    struct admin *admin;         /* NULL: no admin listener */
    struct kvsub *kvsub;         /* KV-event subscriber, NULL until a pod has events */
    uint64_t kv_sig;             /* of what it was last told (control_kv.c) */
    uint64_t ro_timer;           /* the rollout's tick (control_rollout.c) */
    uint64_t guard_timer;        /* the XDP guard's keeper (gateway/bpf.h), each second */
};

/* ---- control_pods.c ---- */

/* The table changed: a snapshot is published at the end of this loop
 * iteration (at most one a millisecond). */
void ctl_mark_dirty(struct ctl *c);
/* Publishes now (the first snapshot, before anything is served). */
void ctl_publish_now(struct ctl *c);
/* A pod whose host is a name was added (rc 0) or not (rc < 0, err says
 * why) once the resolver answered; runs on the control thread. */
typedef void (*ctl_added_cb)(void *arg, uint64_t cookie, int rc, const char *err);
/* Adds a pod: 0, or -errno with err (-EEXIST, -ENOSPC, -EINVAL cannot
 * resolve, -ENOMEM). A numeric host is added at once; so is a name before
 * the thread runs (start-up). At run time a name goes to the resolver
 * thread: -EINPROGRESS, and done(arg, cookie, ...) later (done may be
 * NULL: then a failure is logged). */
int ctl_add_pod(struct ctl *c, const struct gw_pod_cfg *p, char *err, size_t errlen,
                ctl_added_cb done, void *arg, uint64_t cookie);
/* The names of pods waiting for their host to resolve, as a JSON array. */
void ctl_resolving_json(struct ctl *c, struct sbuf *out);
/* 0 or -ENOENT. Removing a pod forgets its prefix-index entries and the
 * sessions pinned to it; one still resolving is not added. */
int ctl_remove_pod(struct ctl *c, const char *name);
int ctl_drain_pod(struct ctl *c, const char *name, int drain);
/* The table to nc's pods: removed pods (and pods whose address changed)
 * go, new ones are added, engines and model lists updated. 0, or -1 with
 * err naming the first pod that could not be added (the rest applies). */
int ctl_pods_sync(struct ctl *c, const struct gw_config *nc, char *err, size_t errlen);
/* Frees every pod and pending add (the thread stopped). */
void ctl_pods_free(struct ctl *c);

/* ---- control_reload.c ---- */

/* Re-reads g->config_path: pods added / removed, policies swapped,
 * connections kept. 0, or -1 with err. restart (may be NULL) gets the
 * changed keys that keep their running value until a restart
 * (gw_config_restart_keys), "" when none. */
int ctl_reload(struct ctl *c, char *err, size_t errlen, char *restart, size_t rlen);

/* ---- control_policy.c ---- */

/* Replaces the routing policies (under g->policy_mu), keeping the kill
 * switch in force if it is on. */
void ctl_set_policies(struct ctl *c, const struct gw_policies *p);
/* The policies an admin change starts from (without the kill switch). */
void ctl_base_policies(struct ctl *c, struct gw_policies *out);
/* Kill switch: on = every policy (global and overrides) round-robin, no
 * shadow, no canary; off = their previous mode, shadow and canary back. */
void ctl_killswitch(struct ctl *c, int on);
int ctl_killswitch_on(const struct ctl *c);

/* ---- control_rollout.c (issue 13) ---- */

/* The rollout's clock: a tick every 250 ms judges a step whose hold is over. */
void ctl_rollout_arm(struct ctl *c);
void ctl_rollout_disarm(struct ctl *c);
/* "start", "pause", "resume", "abort", "reset": 0, -ENOENT (no such
 * action), -EOPNOTSUPP ("start" with accounting.enabled off: nothing
 * would be recorded to judge by), or what core/rollout.h's call returned
 * (-EINVAL, -EALREADY). */
int ctl_rollout_action(struct ctl *c, const char *action);
/* The kill switch went on: a rollout in progress is aborted. */
void ctl_rollout_killswitch(struct ctl *c);
/* GET /admin/rollout's body; the rollout_* families of /metrics. */
void ctl_rollout_json(struct ctl *c, struct sbuf *o);
void ctl_rollout_metrics(struct ctl *c, struct sbuf *o);

/* ---- control_util.c (issue 13) ---- */

struct engine_load;
/* A pod was added: its utilisation starts now. */
void ctl_util_added(struct cpod *p);
/* A scrape of p: el its page (NULL: failed; cost still accrues). Publishes
 * the pod's cost rate for the workers (g->cost_rate). */
void ctl_util_scraped(struct cpod *p, const struct engine_load *el);
/* /admin/pods' "utilisation" object; the kvgate_pod_* utilisation and cost
 * families of /metrics. */
void ctl_util_pod_json(struct ctl *c, uint32_t slot, struct sbuf *o);
void ctl_util_metrics_render(struct ctl *c, struct sbuf *o);

/* ---- probe.c ---- */

/* (Re)starts the periodic probes of every pod; the first round goes out at
 * once. */
void probes_arm(struct ctl *c);
void probes_disarm(struct ctl *c);
/* A new pod: health, models and metrics now. */
void probe_now(struct cpod *p);
/* GET /v1/models now, unless one is in flight. */
void probe_models(struct cpod *p);

/* ---- control_kv.c (issue 11) ---- */

struct engine_load;
struct kvsub_pod_stats;
/* The pods with KV events to the subscriber (started with the exact index,
 * g->kvx, when the first such pod appears). Called after each publish. */
void ctl_kv_sync(struct ctl *c);
/* A scrape's prefix counters and cache size, for the subscriber. */
void ctl_kv_scraped(struct ctl *c, uint32_t slot, const struct engine_load *el);
/* Stops the subscriber thread (teardown). */
void ctl_kv_stop(struct ctl *c);
/* What the index and the subscriber know of a pod (metrics, /admin/pods
 * later). 0, -ENOENT (no subscriber) or -EINVAL. */
int ctl_kv_pod_stats(struct ctl *c, uint32_t slot, struct kvsub_pod_stats *out);
/* The pod's index mode and event counts as a JSON object (/admin/pods). */
void ctl_kv_pod_json(struct ctl *c, uint32_t slot, struct sbuf *o);
/* kvgate_pod_index_mode and the event families for the pods of s (/metrics). */
void ctl_kv_metrics_render(struct ctl *c, const struct pod_snapshot *s, struct sbuf *o);

/* ---- admin.c ---- */

/* Binds c->cfg.admin_listen on c->l (*out NULL: "" = no admin listener).
 * 0, or -errno with a sentence logged. */
int admin_start(struct ctl *c, struct admin **out);
void admin_stop(struct admin *a);
/* The bearer token /admin/ requires from now on ("" = none); reloads call
 * it. a may be NULL. */
void admin_set_token(struct admin *a, const char *token);

#endif
