/* decide_srv: kvgated's end of the bypass workers' decision channel
 * (issue 12; the contract is user/bypass/decide.h).
 *
 * kvg-bypassd stays a process of its own (DPDK's EAL, its af_xdp port and
 * mempool, a polling loop that must never block, none of which belongs
 * in kvgated's epoll threads), but the pod it replays a first request to
 * is kvgated's pick: for each DECIDE (and its BODY chunks) this module
 * builds a struct gw_request as the socket path does (the body scanned by
 * gw_scan: model, "user", fingerprint, prompt tokens; tenant and session
 * from the worker's parse of the headers) and calls gw_route, so the
 * policy, the prefix index's credit, the session pin and the pod's
 * in-flight count are the socket path's own. The request stays routed
 * (counted in flight) until the worker's DONE, or until the worker's
 * connection closes: then everything it held is released (outcome
 * "shutdown", error "bypass_worker_gone"), so nothing stays counted
 * forever. Either way it ends through gw_route_release and
 * gw_request_done: /metrics and the access log count it like any other,
 * with "path":"bypass" and kvgate_requests_by_path_total{path="bypass"}.
 *
 * What is estimated: a spliced connection is one routed request to
 * kvgated (its first); later requests on it go to the same pod through
 * XDP, which frames their heads, and the worker reports them (REQS, codec
 * version 2): counted by path and in kvgate_bypass_requests_total with
 * the first request's model and tenant, and in the first request's
 * access-log line (conn_requests); the connection keeps the one in-flight
 * count its first request took (dpdk/README.md says why). Its end is the
 * connection's end (the worker's DONE when XDP saw it closed),
 * so its E2E is the connection's life, and TTFT only when the worker saw
 * the answer begin before the hand-off.
 *
 * One thread of its own (kvgate-decide) with its own ev_loop serves every
 * worker's connection (at most 16); each may hold bypass.max_outstanding
 * decisions (a DECIDE past that is answered 503). The peer is untrusted:
 * a packet that does not decode, a duplicate id, a BODY out of order, a
 * DONE naming another pod, or a worker that does not read its answers
 * closes its connection (and releases what it held). */
#ifndef KVGATE_GATEWAY_DECIDE_SRV_H
#define KVGATE_GATEWAY_DECIDE_SRV_H

struct gw;
struct sbuf;

/* Listens on g->cfg.bypass_decide_socket (a stale socket file there is
 * replaced; mode 0600) and starts the thread. 0 (also when the key is
 * ""), or -errno after a sentence naming bypass.decide_socket. */
int decide_srv_start(struct gw *g);
/* Stops the thread; every decision still held is released ("shutdown");
 * the socket file is removed. Safe when never started. */
void decide_srv_stop(void);
/* kvgate_bypass_* families for /metrics (any thread). */
void decide_srv_metrics_render(struct sbuf *o);

#endif
