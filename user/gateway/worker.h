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
/* Graceful drain (SIGTERM), asynchronous: every worker closes its
 * listener, closes idle connections, sends GOAWAY on HTTP/2 and
 * `connection: close` on HTTP/1.1, and lets in-flight requests finish;
 * at limits.drain_timeout_ms what is left ends with the SSE error event
 * and [DONE] (or a 503). Callable from any thread, once. */
void workers_drain(void);
/* 1 once every worker has no connection left (the drain is done). */
int workers_drained(void);
/* An established client connection that did not come through our
 * listeners (a bypass worker's hand-up, gateway/adopt_srv.h): served on
 * the next worker (round robin) exactly as an accepted one (the
 * max_connections limit, protocol detection, every request), its
 * requests logged and counted with path `path` (static text). Any
 * thread. fd is the callee's: 0 queued, or -EAGAIN (that worker's queue
 * is full) / -ESHUTDOWN (no workers) with fd closed. */
int workers_adopt(int fd, const char *path);
/* Stops accepting, closes connections, joins the threads. */
void workers_stop(void);

#endif
