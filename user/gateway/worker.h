/* worker: kvgated's data path. N threads, each an ev_loop with its own
 * SO_REUSEPORT listener on cfg.listen, its client connections (HTTP/1.1
 * and h2c) and its own keep-alive upstream pools (HTTP/1.1 to pods). */
#ifndef KVGATE_GATEWAY_WORKER_H
#define KVGATE_GATEWAY_WORKER_H

#include <stdint.h>

struct gw;

/* Binds every worker's listener, then starts the threads. 0, or -errno with
 * a sentence on stderr naming cfg key "listen". */
int workers_start(struct gw *g, uint32_t nworkers);
/* Stops accepting, closes connections, joins the threads. */
void workers_stop(void);

#endif
