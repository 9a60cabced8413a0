/* decide_cli: a bypass worker's end of the decision channel (decide.h):
 * the unix SOCK_SEQPACKET connection to kvgated, a queue of packets
 * waiting for the socket, and the answers read back. It never blocks:
 * the worker's polling loop calls dcli_poll each turn (connects when
 * down, at most once a second; sends what is queued while the socket
 * takes it; reads the answers there are). No DPDK here: tests use it
 * against a real kvgated.
 *
 * A decision is queued whole (DECIDE and every BODY packet) or not at
 * all, so kvgated always sees complete requests and answers each one.
 * When the connection is lost, what was queued is dropped and
 * dcli_poll says so (DCLI_EV_DOWN): kvgated released everything this
 * connection held, so the worker must neither wait for those answers nor
 * send DONE for them (dcli_gen tells connections apart). */
#ifndef KVGATE_BYPASS_DECIDE_CLI_H
#define KVGATE_BYPASS_DECIDE_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "bypass/decide.h"

struct dcli;

/* path: kvgated's bypass.decide_socket; max_queued: bytes of packets
 * waiting for the socket (a decision that does not fit is refused). NULL
 * on ENOMEM or a path too long. Connects on the first dcli_poll. */
struct dcli *dcli_new(const char *path, size_t max_queued);
void dcli_free(struct dcli *c);

/* Connected now, and which connection (it changes on each reconnect). */
int dcli_up(const struct dcli *c);
uint32_t dcli_gen(const struct dcli *c);
/* The socket to wait on between turns and what for (POLLIN, and POLLOUT
 * while packets wait for it); -1 when not connected (dcli_poll retries
 * the connection at most once a second). */
int dcli_pollfd(const struct dcli *c, short *events);

/* The DECIDE flags (enum decide_flags) sent with every DECIDE from now
 * on: DECIDE_F_HANDUP when the worker can hand connections up. */
void dcli_set_flags(struct dcli *c, unsigned flags);

/* Queues a DECIDE for body[0..len) (copied) in as many packets as it
 * takes. 0, -ENOTCONN (no connection to kvgated), -ENOBUFS (queue full),
 * -EINVAL (a field out of the contract's bounds). */
int dcli_decide(struct dcli *c, uint32_t id, int proto, const char *tenant,
                const char *session, const uint8_t *body, size_t len);
/* Queues a DONE (events: the connection's answer events, version 6).
 * Same returns. */
int dcli_done(struct dcli *c, uint32_t id, uint32_t slot, unsigned outcome,
              unsigned http_status, uint64_t bytes_in, uint64_t bytes_out, uint32_t ttft_us,
              uint32_t events);

/* Queues a REQS: the flow's requests after the first (a running total),
 * why XDP stopped framing it (enum decide_unframed) and whether the
 * connection is idle now (version 4), and those requests' body bytes (a
 * running total modulo 2^32, version 5), and how many of them XDP timed
 * to their first event with those times summed (us; running totals
 * modulo 2^32, version 7). Same returns. */
int dcli_reqs(struct dcli *c, uint32_t id, uint32_t slot, uint32_t requests, unsigned unframed,
              int idle, uint32_t body, uint32_t ttft_n, uint32_t ttft_us);

enum { DCLI_EV_UP = 1, DCLI_EV_DOWN = 2 };
/* One turn: (re)connect, send, read. on_answer is called for each
 * ANSWER. Returns DCLI_EV_* bits for what happened to the connection. */
unsigned dcli_poll(struct dcli *c, uint64_t now_ms,
                   void (*on_answer)(void *ctx, const struct decide_msg *a), void *ctx);

/* Counters: packets sent, answers read, packets that did not decode
 * (the connection is dropped then), connections lost. */
struct dcli_stats {
    uint64_t sent, answers, bad, downs, refused_full;
};
void dcli_stats(const struct dcli *c, struct dcli_stats *s);

#endif
