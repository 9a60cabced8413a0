/* control_reload: the config file read again (SIGHUP, POST /admin/reload),
 * on the control thread. See control_priv.h.
 *
 * Applied at once: pods (added, removed, engines and model lists),
 * policy (the kill switch stays in force), rollout (a running one keeps
 * its step and samples), scrape periods and bounds,
 * admin.token, metrics.tenant_from_user. What the workers, the index and
 * the listeners were built with keeps its running value until a restart;
 * which keys those are is config.c's key table, and a reload names every
 * one of them whose value changed (flags given at start count as running
 * values). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/log.h"
#include "gateway/control_priv.h"
#include "gateway/gwmetrics.h"

/* The probe periods and bounds (probe.c reads c->cfg). */
static void apply_scrape(struct ctl *c, const struct gw_config *nc)
{
    int periods = nc->scrape_ms != c->cfg.scrape_ms || nc->health_ms != c->cfg.health_ms ||
                  nc->models_ms != c->cfg.models_ms;
    memcpy(&c->cfg, nc, sizeof(*nc));
    if (periods && c->probes.armed)
        probes_arm(c);
}

int ctl_reload(struct ctl *c, char *err, size_t errlen, char *restart, size_t rlen)
{
    char keep[512];
    if (restart && rlen)
        restart[0] = 0;
    if (!c->g->config_path) {
        snprintf(err, errlen, "kvgated was started without a config file (--config)");
        return -1;
    }
    struct gw_config *nc = kv_malloc(sizeof(*nc));
    if (!nc) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    gw_config_defaults(nc);
    if (gw_config_load(c->g->config_path, nc, err, errlen) ||
        gw_config_check_admin(nc, c->g->cfg.admin_listen, err, errlen)) {
        kv_free(nc);
        return -1;
    }
    int rc = ctl_pods_sync(c, nc, err, errlen);
    apply_scrape(c, nc);
    ctl_set_policies(c, &nc->policies);
    rollout_set_cfg(c->g->rollout, &nc->rollout); /* checked by the load */
    pthread_mutex_lock(&c->g->policy_mu);
    c->g->has_candidate = nc->has_candidate;
    c->g->candidate = nc->candidate;
    pthread_mutex_unlock(&c->g->policy_mu);
    admin_set_token(c->admin, nc->admin_token); /* the listener itself stays */
    gw_set_tenant_from_user(nc->tenant_from_user);
    if (gw_config_restart_keys(&c->g->cfg, nc, keep, sizeof(keep)) > 0)
        LOG_WARN("reload: %s keep their running values until a restart (the rest applied)",
                 keep);
    else
        keep[0] = 0;
    if (restart && rlen)
        snprintf(restart, rlen, "%s", keep);
    kv_free(nc);
    return rc;
}
