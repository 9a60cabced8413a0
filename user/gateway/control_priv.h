/* control_priv: what config.c, control.c and admin.c share inside kvgated's
 * control plane. Not for the data path (workers read snapshots, gateway.h).
 *
 *   config.c   JSON -> gw_config (config.h); the admin API reuses
 *              config_pod.c (one pod object) and config_policy.c (the
 *              policy object both ways, a merge patch over it)
 *   control.c  the control thread: pod table, snapshots, reload, requests
 *              from other threads (control_policy.c: policies, kill switch;
 *              resolver.c: host names, off the thread)
 *   probe.c    the periodic /metrics, /health, /v1/models probes
 *   scrape.c   the non-blocking HTTP/1.1 GET client (scrape.h)
 *   admin.c    the admin listener, served on the control thread's loop
 *              (admin_api.c: its endpoints; admin_priv.h) */
#ifndef KVGATE_GATEWAY_CONTROL_PRIV_H
#define KVGATE_GATEWAY_CONTROL_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "gateway/config.h"
#include "gateway/gateway.h"
#include "gateway/scrape.h"

struct cJSON;
struct ev_loop;
struct sbuf;

/* ---- control.c: the pod table (control thread only) ---- */

/* One pod. Allocated on add, freed on remove; its slot is stable. */
struct cpod {
    struct pod_info info;        /* what snapshots publish */
    struct gw_pod_cfg cfg;       /* as configured */
    struct hget mc, hc, vc;      /* probe connections: /metrics, /health, /v1/models */
    uint32_t health_fails;       /* failed health checks in a row */
    uint64_t models_at;          /* last /v1/models request (ev_now_ns) */
    uint64_t scrape_cost_ns;     /* reading + parsing its last /metrics page */
    int64_t scrape_credit_ns;    /* parse budget: scraped while >= 0 (probe.c) */
};

struct gw *ctl_gw(void);
struct ev_loop *ctl_loop(void);
struct cpod *ctl_pod(uint32_t slot);   /* NULL: free slot */
const struct gw_config *ctl_cfg(void); /* probe periods (reloads change them) */
/* The table changed: a snapshot is published at the end of this loop
 * iteration (at most one a millisecond). */
void ctl_mark_dirty(void);

/* ---- probe.c ---- */

/* (Re)starts the periodic probes of every pod; the first round goes out at
 * once. */
void probes_arm(struct ev_loop *l);
void probes_disarm(void);
/* A new pod: health, models and metrics now. */
void probe_now(struct cpod *p);
/* GET /v1/models now, unless one is in flight. */
void probe_models(struct cpod *p);

/* ---- control.c / control_policy.c: called by admin.c on the control
 * thread ---- */

/* A pod whose host is a name was added (rc 0) or not (rc < 0, err says
 * why) once the resolver answered; runs on the control thread. */
typedef void (*ctl_added_cb)(uint64_t cookie, int rc, const char *err);
/* Adds a pod: 0, or -errno with err (-EEXIST, -ENOSPC, -EINVAL cannot
 * resolve, -ENOMEM). A numeric host is added at once; so is a name before
 * the thread runs (start-up). At run time a name goes to the resolver
 * thread: -EINPROGRESS, and done(cookie, ...) later (done may be NULL:
 * then a failure is logged). */
int ctl_add_pod(const struct gw_pod_cfg *p, char *err, size_t errlen, ctl_added_cb done,
                uint64_t cookie);
/* The names of pods waiting for their host to resolve, as a JSON array. */
void ctl_resolving_json(struct sbuf *out);
/* Same results as the public control_* calls, run in place. */
int ctl_remove_pod(const char *name);
int ctl_drain_pod(const char *name, int drain);
int ctl_reload(char *err, size_t errlen);
/* Replaces the routing policies (under g->policy_mu), keeping the kill
 * switch in force if it is on. */
void ctl_set_policies(const struct gw_policies *p);
/* The policies an admin change starts from (without the kill switch). */
void ctl_base_policies(struct gw_policies *out);
/* Kill switch: on = every policy (global and overrides) round-robin, no
 * shadow, no canary; off = their previous mode, shadow and canary back. */
void ctl_killswitch(int on);
int ctl_killswitch_on(void);
/* Off, without touching the policies (control_start). */
void ctl_killswitch_reset(void);

/* ---- admin.c ---- */

/* Binds cfg.admin_listen ("" = no admin listener). 0, or -errno with a
 * sentence on stderr. */
int admin_start(struct gw *g, struct ev_loop *l);
void admin_stop(void);
/* The bearer token /admin/ requires from now on ("" = none); reloads call
 * it. */
void admin_set_token(const char *token);

#endif
