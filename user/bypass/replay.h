/* replay: the bypass worker's TCP endpoint towards the pod (issue 12,
 * ../shared/BYPASS.md, delayed binding). Once the first request is whole
 * (bypass/tcpep.h holds the client's bytes) and a pod is picked, the
 * worker opens a connection to the pod as if it were the client, sends it
 * the bytes it buffered, and hands the flow to XDP once the pod has
 * acknowledged all of them. Pure logic, as tcpep: segments in, segments
 * to send and events out.
 *
 * The pod-side connection is made so that XDP has little to translate:
 *   - its initial sequence number is the client's (irs), so client->pod
 *     sequence numbers pass unchanged; pod->client needs one sequence
 *     delta (the worker's ISN towards the client - the pod's) and
 *     client->pod one acknowledgement delta (its negative);
 *   - the SYN carries the client's MSS and window scale (and no
 *     timestamps or SACK, as towards the client), so the client's window
 *     fields pass unchanged; the pod's scale may differ from the worker's
 *     towards the client (the rewrite rescales the pod's window field).
 *
 * Sending: segments of at most min(pod MSS, client MSS) bytes, within the
 * pod's window and a congestion window (10 segments to start, RFC 6928;
 * one more per ACK of new data; halved on a loss, never below 2); 3
 * duplicate ACKs resend the first unacknowledged segment (fast
 * retransmit); a timeout (RFC 6298 style, doubling, tries bounded) goes
 * back to the first unacknowledged byte; a zero window is probed on the
 * timer with one byte. The segments to the pod acknowledge only the pod's
 * SYN: answer bytes the pod sends before the hand-off are reported
 * (RP_EV_POD_DATA) for the worker to pass to the client, which
 * acknowledges them itself. A RST while connecting is RP_EV_REFUSED: the
 * worker tries the next pod before any byte reached the client. */
#ifndef KVGATE_BYPASS_REPLAY_H
#define KVGATE_BYPASS_REPLAY_H

#include <stdint.h>

#include "bypass/tcpep.h"

struct replay_cfg {
    uint32_t rto_ms;       /* first retransmission timeout (200: pods sit in the
                            * same data centre; SYN 1,000 as RFC 6298) */
    uint8_t tries;         /* sends of one segment (SYN included) before RP_EV_FAILED */
};
void replay_cfg_default(struct replay_cfg *c);

enum replay_state { RP_NONE = 0, RP_SYN_SENT, RP_SENDING, RP_DONE, RP_FAILED };

/* Events of one call, a bit mask. */
enum {
    RP_EV_CONNECTED = 1,   /* the pod's SYN-ACK came */
    RP_EV_DONE = 2,        /* the pod acknowledged every replayed byte: hand off */
    RP_EV_REFUSED = 4,     /* a RST (or a wrong SYN-ACK) while connecting: next pod */
    RP_EV_RESET = 8,       /* a RST after the SYN-ACK */
    RP_EV_POD_DATA = 16,   /* the segment carries answer bytes for the client */
    RP_EV_FAILED = 32,     /* retransmissions exhausted */
};

/* A segment to send to the pod; its data is replay.data[off .. off + len). */
struct replay_out {
    uint32_t seq, ack;
    uint8_t flags;
    uint16_t win;
    uint16_t mss;          /* SYN: MSS option, 0 none */
    int8_t wscale;         /* SYN: window scale option, -1 none */
    uint32_t off, len;
};
#define REPLAY_OUT_MAX 64  /* segments one call may ask to send */

struct replay {
    enum replay_state st;
    uint32_t iss;          /* = the client's ISN */
    uint32_t snd_una, snd_nxt;
    uint32_t irs;          /* the pod's ISN */
    uint16_t mss;          /* the segment size used */
    uint16_t client_mss;
    int8_t client_ws;      /* announced to the pod: the client's (-1 none) */
    int8_t pod_ws;         /* the pod's, -1 none (then neither side scales) */
    uint32_t pod_wnd;      /* the pod's window in bytes */
    uint16_t client_win;   /* the window field the client last sent (passed on) */
    uint32_t cwnd;         /* bytes */
    uint8_t dupacks, tries;
    uint32_t rto_ms;
    uint64_t rto_at_ms;    /* 0: no timer */
    const uint8_t *data;   /* the client's bytes from irs + 1 (tcpep_flow.buf) */
    uint32_t len;
};

/* Starts the connection for client flow cf (established, its first flight
 * in cf->buf[0 .. len)); out[0] is the SYN. Returns how many in out. */
int replay_start(const struct replay_cfg *c, struct replay *rp, const struct tcpep_flow *cf,
                 uint32_t len, uint64_t now_ms, struct replay_out *out);

/* A segment from the pod (seg parsed by bypass/pkt.h). Returns the events;
 * *nout segments to send are written to out (REPLAY_OUT_MAX at most). */
unsigned replay_input(const struct replay_cfg *c, struct replay *rp, const struct tcpep_seg *s,
                      uint64_t now_ms, struct replay_out *out, int *nout);

/* The retransmission / probe timer; the same outputs. */
unsigned replay_timer(const struct replay_cfg *c, struct replay *rp, uint64_t now_ms,
                      struct replay_out *out, int *nout);

/* The client's window field changed (passed on in later segments). */
void replay_client_window(struct replay *rp, uint16_t win);

#endif
