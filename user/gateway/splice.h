/* splice: kvgated's side of the kernel splice of session flows (issue 5;
 * the verdict is bpf/splice.bpf.c, the maps bpf/kvgate.h; the state
 * machine splice.c, its map plumbing splice_maps.c, its byte pumps
 * splice_pump.c, what they share splice_priv.h).
 *
 * A client's HTTP/1.1 keep-alive connection whose request carried
 * x-session-id (pinned to a pod by the session table) keeps the upstream
 * connection of its first complete exchange as a dedicated one. Once the
 * answer is out and the client is idle, both sockets go into kvg_sock and
 * the kernel moves later requests and answers between them; kvgated reads
 * none of those bytes. The kernel sends the pod only requests kvgated
 * itself would send it (POST to an inference path, Content-Length framed,
 * within limits.max_body_bytes and limits.max_header_bytes, valid field
 * syntax); it hands everything else up, and kvgated then:
 *   - at a request boundary: holds those bytes until the pod has answered
 *     every request the kernel sent it (the verdict frames the pod's
 *     answers too) and the answers are out, then takes the connection back
 *     to its socket path, which answers them as always (404, 405, 413,
 *     400, 431, or routes them afresh); the pod conn goes back to the pool;
 *   - inside a request body (budget, or an ineligible request behind the
 *     body in the same skb): relays exactly the rest of that body to the
 *     pod with its bounded buffers (TCP backpressure again), then splices
 *     again or holds as above;
 *   - the pod's answers over the budget (or an invalid one): relays them
 *     as the verdict frames them, splices again once the pod is quiet; an
 *     invalid answer ends the connection (502 when none of it went out);
 *   - a half-close: the FIN is passed on only once the other socket's TCP
 *     acknowledged every redirected byte; a pod's idle keep-alive close
 *     leaves the client its connection.
 * kvgated never relays a client byte the verdict did not frame as part of
 * an eligible request. All of it runs on the worker that owns the client
 * connection.
 *
 * Functions return nothing the caller must act on unless said; teardown of
 * the client goes through cconn_fail. */
#ifndef KVGATE_GATEWAY_SPLICE_H
#define KVGATE_GATEWAY_SPLICE_H

#include <stdint.h>

struct gw;
struct gwbpf;
struct cconn;
struct sbuf;

/* main.c, after the BPF handle is set (or not): splicing needs b with the
 * splice verdict attached and not turned off. Prints nothing. */
void splice_init(struct gw *g, struct gwbpf *b);
/* 1 when connections of `model` may be spliced (config, policy, BPF). */
int splice_enabled_for(struct gw *g, const char *model);

/* Everything else reaches the splice through hooks: relay's layer
 * (exchange.h: a request routed, an answer complete) and the client
 * connection's ops while the splice stands in front of its HTTP/1.1
 * protocol (conn.h: the socket's events, flushes, the graceful drain --
 * the answer under way finishes, then the flow ends -- and teardown). */

/* /metrics: kvgate_splice_flows, kvgate_spliced_flows_total,
 * kvgate_spliced_bytes_total{direction}, kvgate_splice_relayed_bytes_total
 * {direction}, kvgate_spliced_requests_total, kvgate_spliced_answers_total,
 * kvgate_unsplices_total{cause}. */
void splice_metrics_render(struct sbuf *o);

#endif
