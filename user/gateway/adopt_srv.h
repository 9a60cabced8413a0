/* adopt_srv: kvgated's end of the hand-up channel (issue 12; the contract
 * is user/bypass/adopt.h).
 *
 * A bypass worker (kvg-bypassd) hands up a connection it must not splice
 * as a kernel TCP socket (TCP_REPAIR, its first flight restored in the
 * receive queue) and sends the descriptor here. Each one is checked, then
 * served on one of kvgated's worker loops exactly as an accepted
 * connection (worker.h, workers_adopt: max_connections, protocol
 * detection, every request routed or answered as on the socket path),
 * its requests logged with "path":"handup" and counted in
 * kvgate_requests_by_path_total{path="handup"}; the connection itself in
 * kvgate_bypass_handups_total{cause}.
 *
 * The worker is untrusted: a packet that does not decode (or is cut)
 * closes its connection; a descriptor that is missing, one too many, not a
 * socket, not a connected IPv4 TCP socket, or whose ends are not the ones
 * the message announced, is closed; every refusal is counted under its
 * reason (kvgate_bypass_handups_refused_total{reason}). One thread of its
 * own (kvgate-adopt), at most 16 workers connected; the socket file is
 * mode 0600. */
#ifndef KVGATE_GATEWAY_ADOPT_SRV_H
#define KVGATE_GATEWAY_ADOPT_SRV_H

struct gw;
struct sbuf;

/* Listens on g->cfg.bypass_adopt_socket (a stale socket file there is
 * replaced) and starts the thread. 0 (also when the key is ""), or -errno
 * after a sentence naming bypass.adopt_socket. Call after workers_start. */
int adopt_srv_start(struct gw *g);
/* Stops the thread, closes the workers' connections, removes the socket
 * file. Safe when never started. Call before workers_stop. */
void adopt_srv_stop(void);
/* kvgate_bypass_handup* families for /metrics (any thread). */
void adopt_srv_metrics_render(struct sbuf *o);

#endif
