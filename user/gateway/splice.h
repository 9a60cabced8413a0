/* splice: kvgated's side of the kernel splice of session flows (issue 5;
 * the verdict is bpf/splice.bpf.c, the maps bpf/kvgate.h).
 *
 * A client's HTTP/1.1 keep-alive connection whose request carried
 * x-session-id (pinned to a pod by the session table) keeps the upstream
 * connection of its first complete exchange as a dedicated one. Once the
 * answer is out and the client is idle, both sockets go into kvg_sock and
 * the kernel moves later requests and answers between them; kvgated reads
 * none of those bytes. It watches both sockets for what the kernel hands
 * up:
 *   - a request the verdict would not send to the pod (draining,
 *     unhealthy, saturated, unparsable, budget at a request head): the
 *     flow is unspliced (the pod connection closed) and the request is
 *     served on the socket path like any other (routed afresh);
 *   - a request body over the budget: kvgated relays the rest of that
 *     body with its bounded buffers (TCP backpressure again), the answer
 *     stays spliced, and the next request is spliced again;
 *   - bytes handed up elsewhere inside a request or an answer (framing
 *     lost, peer gone, the answer over the budget): kvgated relays the
 *     rest of the connection as plain bytes; neither ever re-orders what
 *     the kernel already redirected;
 *   - a half-close: the FIN is passed on only once the other socket's TCP
 *     acknowledged every redirected byte; a close tears both down.
 * All of it runs on the worker that owns the client connection.
 *
 * Functions return nothing the caller must act on unless said; teardown of
 * the client goes through cconn_fail. */
#ifndef KVGATE_GATEWAY_SPLICE_H
#define KVGATE_GATEWAY_SPLICE_H

#include <stdint.h>

struct gw;
struct gwbpf;
struct cconn;
struct xreq;
struct upconn;
struct sbuf;

/* main.c, after the BPF handle is set (or not): splicing needs b with the
 * splice verdict attached and not turned off. Prints nothing. */
void splice_init(struct gw *g, struct gwbpf *b);
/* 1 when connections of `model` may be spliced (config, policy, BPF). */
int splice_enabled_for(struct gw *g, const char *model);

/* relay.c, when a request was routed: a session's HTTP/1.1 connection
 * enters kvg_sock (PASS mode) while its client waits for the answer. */
void splice_prepare(struct xreq *x);
/* relay.c, as an HTTP/1.1 exchange ends with its upstream conn u: 1 when
 * splice.c keeps u as the connection's dedicated pod conn (the caller then
 * must not pool it) and splices the flow, 0 to pool it as usual. Called
 * before the answer's last bytes are flushed to the client. */
int splice_hold(struct xreq *x, struct upconn *u);
/* worker.c, after flushing c: settles a new splice once the answer's
 * last bytes are out. */
void splice_client_idle(struct cconn *c);
/* worker.c, the client socket's events: 1 when splice.c handled them
 * (the flow is spliced or relayed as bytes), 0 for the normal path. */
int splice_client_io(struct cconn *c, uint32_t events);
/* worker.c cconn_fail: the client connection is going away; closes the
 * pod conn, deletes the map entries, frees c->sp. */
void splice_conn_gone(struct cconn *c);

/* worker.c, graceful drain (called again every tick until the connection
 * ends): the spliced answer under way finishes, then the flow ends. */
void splice_drain(struct cconn *c);

/* /metrics: kvgate_splice_flows, kvgate_spliced_flows_total,
 * kvgate_spliced_bytes_total{direction}, kvgate_unsplices_total{cause}. */
void splice_metrics_render(struct sbuf *o);

#endif
