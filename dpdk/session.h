/* session: kvg-bypassd's side of the decision channel (--decide,
 * user/bypass/decide.h through decide_cli): the first request's body kept
 * for DECIDE, kvgated's ANSWER (the pod, or an error the worker answers
 * the client with, as kvgated's socket path would), the flow's DONE, and
 * what happens to waiting and checked flows when kvgated goes away. */
#ifndef KVGATE_DPDK_SESSION_H
#define KVGATE_DPDK_SESSION_H

#include <stdint.h>

#include "worker.h"

struct decide_msg;

/* The flow's DONE to kvgated, once, if kvgated holds it in flight (routed
 * on the connection that is still up). */
void sess_done(struct slot *s, unsigned http_status);
/* The same with XDP's two entries as read earlier (NULL: none), for a flow
 * whose entries were rewritten since (dpdk/boundary.h). */
void sess_done_entries(struct slot *s, unsigned http_status, const struct kvg_bp_flow *c2p,
                       const struct kvg_bp_flow *p2c);
/* The times to first token XDP took on s, from its pod -> client entry p
 * (NULL: not readable now), for the next REQS: later requests', and the
 * first request's when its answer had not begun at the hand-off (the
 * worker marked it then; else DONE carries the worker's own time). */
void sess_ttft(struct slot *s, const struct kvg_bp_flow *p);
/* The requests after the first on s (handed off), from its client -> pod
 * entry c as XDP left it (NULL: not readable now): counted, and reported
 * to kvgated (REQS) when the count or the reason it stopped changed. */
void sess_reqs(struct slot *s, const struct kvg_bp_flow *c);
/* Answers the client status with the OpenAI error JSON and closes (an h2c
 * client is reset). */
void sess_answer_error(struct slot *s, unsigned status, const char *msg);
/* D_ERR on the timer: the error answer (again). */
void sess_send_error_answer(struct slot *s);
/* A client segment while it is answered an error. */
void sess_err_input(struct slot *s, const struct pkt_tcp *p);
/* The pod's MAC: 1 found, 0 not yet (the kernel is asked to resolve it). */
int sess_resolve_mac(struct slot *s);
/* Routed and the pod's MAC known: the replay starts (or 503). */
void sess_go_replay(struct slot *s);
/* dcli_poll's callback: kvgated's ANSWER. */
void sess_on_answer(void *ctx, const struct decide_msg *a);
/* The first request is whole: kvgated is asked where it goes. */
void sess_ask(struct slot *s);
/* The first-flight parser of a new flow (with --decide it keeps the body). */
struct ff *sess_new_ff(struct slot *s);
/* kvgated's connection gen went away: waiting flows answered 503, the
 * flows it routed run on unchecked. */
void sess_decide_down(uint32_t gen);

#endif
