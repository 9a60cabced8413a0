/* control_policy: the routing policies in force and the kill switch, on
 * the control thread (admin API and reloads). Workers copy g->policies
 * under g->policy_mu for each request. See control_priv.h. */
#include <pthread.h>
#include <string.h>

#include "gateway/control_priv.h"

static void force_rr(struct policy_cfg *p)
{
    p->mode = POLICY_ROUND_ROBIN;
    p->baseline = POLICY_ROUND_ROBIN; /* both arms, whatever a rollout's share */
    p->shadow = 0;
    p->canary_pct = 100;
}

static void install(struct ctl *c, const struct gw_policies *p)
{
    pthread_mutex_lock(&c->g->policy_mu);
    c->g->policies = *p;
    pthread_mutex_unlock(&c->g->policy_mu);
}

void ctl_set_policies(struct ctl *c, const struct gw_policies *p)
{
    if (!c->ks_on) {
        install(c, p);
        return;
    }
    if (p != &c->ks_saved)
        c->ks_saved = *p; /* restored when the switch goes off */
    struct gw_policies *forced = &c->ks_scratch; /* too big for the stack */
    *forced = *p;
    force_rr(&forced->global);
    for (uint32_t i = 0; i < forced->noverrides; i++)
        force_rr(&forced->overrides[i].policy);
    install(c, forced);
}

void ctl_base_policies(struct ctl *c, struct gw_policies *out)
{
    if (c->ks_on) {
        *out = c->ks_saved;
        return;
    }
    pthread_mutex_lock(&c->g->policy_mu);
    *out = c->g->policies;
    pthread_mutex_unlock(&c->g->policy_mu);
}

void ctl_killswitch(struct ctl *c, int on)
{
    on = !!on;
    if (on == c->ks_on)
        return;
    if (on) {
        ctl_rollout_killswitch(c);
        ctl_base_policies(c, &c->ks_saved);
        c->ks_on = 1;
        ctl_set_policies(c, &c->ks_saved);
    } else {
        c->ks_on = 0;
        install(c, &c->ks_saved);
    }
}

int ctl_killswitch_on(const struct ctl *c)
{
    return c->ks_on;
}
