/* The shared state of kvgated (struct gw) as main.c assembles it, for the
 * gateway's unit tests: default configuration and policies, a prefix
 * index of 4,096 entries, sessions, metrics, outlier detection, the
 * guarded rollout (idle) and the token books. The tests then publish the pod snapshot they need. */
#ifndef KVGATE_TESTS_GW_FIXTURE_H
#define KVGATE_TESTS_GW_FIXTURE_H

#include <pthread.h>

#include "core/prefix_index.h"
#include "core/session.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"

static inline void gw_fixture_init(struct gw *g)
{
    gw_config_defaults(&g->cfg);
    g->cfg.index_max_entries = 4096;
    pthread_mutex_init(&g->policy_mu, NULL);
    g->policies = g->cfg.policies;
    g->pidx = pidx_new(POD_MAX, g->cfg.index_max_entries, 1024);
    g->sessions = session_new(1024);
    g->metrics = gw_metrics_new();
    outlier_init(&g->outlier, &g->cfg.outlier);
    tokload_init(&g->tl);
    g->rollout = rollout_new(&g->cfg.rollout); /* gw_route reads its share */
}

#endif
