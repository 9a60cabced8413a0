/* control_policy: the routing policies in force and the kill switch, on
 * the control thread (admin API and reloads). Workers copy g->policies
 * under g->policy_mu for each request. */
#include <pthread.h>
#include <string.h>

#include "gateway/control_priv.h"
#include "gateway/gateway.h"

/* kill switch: `saved` is the policy set as it would be without it */
static struct {
    int on;
    struct gw_policies saved;
} K;

void ctl_killswitch_reset(void)
{
    K.on = 0;
}

static void force_rr(struct policy_cfg *p)
{
    p->mode = POLICY_ROUND_ROBIN;
    p->shadow = 0;
    p->canary_pct = 100;
}

static void install(const struct gw_policies *p)
{
    pthread_mutex_lock(&ctl_gw()->policy_mu);
    ctl_gw()->policies = *p;
    pthread_mutex_unlock(&ctl_gw()->policy_mu);
}

void ctl_set_policies(const struct gw_policies *p)
{
    if (!K.on) {
        install(p);
        return;
    }
    K.saved = *p; /* restored when the switch goes off */
    static struct gw_policies forced;
    forced = *p;
    force_rr(&forced.global);
    for (uint32_t i = 0; i < forced.noverrides; i++)
        force_rr(&forced.overrides[i].policy);
    install(&forced);
}

/* The policy set an admin change applies to: without the kill switch's
 * forcing. */
void ctl_base_policies(struct gw_policies *out)
{
    if (K.on) {
        *out = K.saved;
        return;
    }
    pthread_mutex_lock(&ctl_gw()->policy_mu);
    *out = ctl_gw()->policies;
    pthread_mutex_unlock(&ctl_gw()->policy_mu);
}

void ctl_killswitch(int on)
{
    static struct gw_policies base;
    on = !!on;
    if (on == K.on)
        return;
    if (on) {
        ctl_base_policies(&base);
        K.on = 1;
        ctl_set_policies(&base);
    } else {
        K.on = 0;
        install(&K.saved);
    }
}

int ctl_killswitch_on(void)
{
    return K.on;
}

