/* control: kvgated's control thread. Owns the mutable pod table: scrapes
 * every pod's /metrics every scrape_ms without blocking on a slow pod,
 * checks /health, discovers served models and adapters from /v1/models,
 * and publishes an immutable snapshot after each change (podtable.h).
 * Also serves the admin listener (admin.c) and reloads the config on
 * SIGHUP / POST /admin/reload. */
#ifndef KVGATE_GATEWAY_CONTROL_H
#define KVGATE_GATEWAY_CONTROL_H

#include "gateway/config.h"

struct gw;
struct sbuf;

/* Publishes the first snapshot (pods from cfg, unhealthy until their first
 * health check passes... see control.c), binds the admin listener, starts
 * the thread. 0, or -errno with a sentence on stderr. */
int control_start(struct gw *g);
void control_stop(void);

/* Thread-safe requests from any thread (the admin API runs on the control
 * thread itself). 0 or -errno (-EEXIST, -ENOENT, -ENOSPC); adding a pod
 * whose host is a DNS name answers -EINPROGRESS: the resolver thread looks
 * it up and the pod joins when it resolves (a failure is logged). */
int control_add_pod(const struct gw_pod_cfg *p);
int control_remove_pod(const char *name);
int control_drain_pod(const char *name, int drain);
/* Re-reads g->config_path: pods added / removed, policies swapped,
 * connections kept. 0, or -1 with err. */
int control_reload(char *err, size_t errlen);
/* Asks the control thread to reload at its next wake-up (signal-safe). */
void control_request_reload(void);

#endif
