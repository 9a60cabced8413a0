/* control: kvgated's control thread. Owns the mutable pod table: scrapes
 * every pod's /metrics every scrape_ms without blocking on a slow pod,
 * checks /health, discovers served models and adapters from /v1/models,
 * and publishes an immutable snapshot after each change (podtable.h).
 * Also serves the admin listener (admin.c) and reloads the config on
 * SIGHUP / POST /admin/reload. control_priv.h says which file does what. */
#ifndef KVGATE_GATEWAY_CONTROL_H
#define KVGATE_GATEWAY_CONTROL_H

struct gw;
struct ctl;

/* Publishes the first snapshot (pods from g->cfg, unhealthy until their
 * first health check passes; a host name is resolved here, before
 * anything is served), binds the admin listener, starts the thread.
 * 0 and *out, or -errno with a sentence logged. */
int control_start(struct gw *g, struct ctl **out);
/* Stops the thread and frees what control_start made (c may be NULL). */
void control_stop(struct ctl *c);
/* Asks the control thread to reload g->config_path at its next wake-up
 * (an atomic store and a write: safe from any thread). */
void control_request_reload(struct ctl *c);

#endif
