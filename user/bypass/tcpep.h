/* tcpep: the bypass worker's TCP endpoint towards a client, for the
 * handshake and the first flight only (issue 12, ../shared/BYPASS.md).
 * Pure logic: segments in (parsed by bypass/pkt.h), replies and events
 * out; no I/O, no clock of its own, no DPDK. The worker answers a SYN,
 * takes the client's bytes in order into the flow's buffer until the
 * first request is whole (bypass/firstflight.h says when), then replays
 * them to the pod and hands the flow to XDP; this endpoint never sends
 * data, only SYN-ACK, ACK and RST.
 *
 * What it does, and what it leaves out on purpose:
 *   - ISN from a keyed hash (bypass/tcpseq.h); SYN cookies when the
 *     worker's table of flows is full (tcpep_syn_cookie /
 *     tcpep_cookie_flow: nothing kept until the client's ACK; such a flow
 *     runs without window scaling).
 *   - Options: MSS, and window scaling when the client offers it. No
 *     timestamps and no SACK, so that the XDP rewrite after the hand-off
 *     never has to translate them.
 *   - The receive window is the flow control: what the flow may still
 *     buffer, the least of its own budget and the worker's global one
 *     (struct tcpep_budget); a zero window holds the client back, and a
 *     probe is answered with the window as it is.
 *   - In order only: a segment beyond rcv_nxt is dropped and answered
 *     with a duplicate ACK (the client retransmits); overlap with what is
 *     held is trimmed; bytes past the window are cut off.
 *   - RST accepted only at exactly rcv_nxt; in the window but not exact,
 *     or a SYN on an established flow, gets a challenge ACK (RFC 5961).
 *     An ACK of something never sent is answered with a RST (SYN-RCVD)
 *     or an ACK (established), as RFC 9293 says.
 *   - A retransmitted SYN (same ISN) gets the same SYN-ACK again; the
 *     SYN-ACK is also resent on a timer (tcpep_timer) with a doubling
 *     timeout, tries bounded.
 *   - Every data segment is acknowledged at once (no delayed ACK: the
 *     worker wants the rest of the flight as soon as it can get it).
 * Sequence comparisons are modulo 2^32 (RFC 1982 style). */
#ifndef KVGATE_BYPASS_TCPEP_H
#define KVGATE_BYPASS_TCPEP_H

#include <stdint.h>

#include "bypass/tcpseq.h"

/* TCP header flags */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

/* Bytes buffered by all of a worker's flows, against a limit. */
struct tcpep_budget {
    uint64_t used, max;
};

struct tcpep_cfg {
    struct tcpseq_key key;
    uint32_t flow_budget;       /* bytes one flow may buffer (its first flight) */
    struct tcpep_budget *global; /* NULL: no global limit */
    uint16_t mss;               /* ours, in the SYN-ACK (interface MTU - 40) */
    uint8_t wscale;             /* ours, when the client offers scaling (<= 14) */
    uint8_t synack_tries;       /* SYN-ACKs sent before a half-open flow is dropped */
    uint32_t rto_ms;            /* first SYN-ACK retransmission timeout */
};

/* tcpep_cfg with the defaults: 1 MiB per flow, MSS 1460, window scale 7,
 * 5 SYN-ACKs, 1 s (RFC 6298). The key is drawn (getrandom): 0 or -errno. */
int tcpep_cfg_default(struct tcpep_cfg *c);

/* A segment from the client, as parsed (host byte order). */
struct tcpep_seg {
    uint32_t seq, ack;
    uint16_t win;          /* the window field as sent */
    uint8_t flags;         /* TCPF_* */
    uint16_t mss;          /* SYN: its MSS option, 0 none */
    int8_t wscale;         /* SYN: its window scale option, -1 none */
    const uint8_t *data;
    uint32_t len;
};

/* What to send back (when send is set): a segment without data. */
struct tcpep_reply {
    uint8_t send;
    uint8_t flags;
    uint16_t win;          /* the window field */
    uint32_t seq, ack;
    uint16_t mss;          /* SYN-ACK: the MSS option, 0 none */
    int8_t wscale;         /* SYN-ACK: the window scale option, -1 none */
};

enum tcpep_state { TE_NONE = 0, TE_SYN_RCVD, TE_ESTABLISHED, TE_CLOSED };

/* Events of one call, a bit mask. */
enum {
    TE_EV_ESTABLISHED = 1, /* the handshake completed */
    TE_EV_DATA = 2,        /* bytes were appended to the buffer */
    TE_EV_FIN = 4,         /* the client's FIN, after everything buffered */
    TE_EV_RESET = 8,       /* the flow is closed: an accepted RST, or out of memory */
    TE_EV_TIMEOUT = 16,    /* the handshake never completed: the flow is closed */
};

struct tcpep_flow {
    enum tcpep_state st;
    uint32_t iss, irs;     /* our initial sequence number, the client's */
    uint32_t rcv_nxt;      /* the next byte expected from the client */
    uint16_t peer_mss;     /* the client's MSS (536 when it sent none) */
    int8_t peer_ws;        /* the client's window scale, -1 none (then ours is 0) */
    uint8_t our_ws;        /* ours as announced (0 without scaling) */
    uint32_t peer_wnd;     /* the client's window in bytes, last seen */
    uint8_t *buf;          /* the bytes received in order (the first flight) */
    uint32_t len, cap;
    uint8_t fin;           /* the client's FIN was received (after buf) */
    uint8_t cookie;        /* made from a SYN cookie */
    uint8_t tries;         /* SYN-ACKs sent */
    uint32_t rto_ms;
    uint64_t rto_at_ms;    /* SYN-RCVD: when to send the SYN-ACK again */
};

/* A SYN for a new flow: f (zeroed by the caller) becomes SYN-RCVD; r is
 * the SYN-ACK. now_ms / now_us: a monotonic clock. Returns the events
 * (none). A segment that is not a SYN leaves f alone and r unset. */
unsigned tcpep_syn(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                   const struct tcpep_seg *s, uint64_t now_ms, struct tcpep_flow *f,
                   struct tcpep_reply *r);

/* Every later segment of the flow. Returns the events; r what to send. */
unsigned tcpep_input(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                     struct tcpep_flow *f, const struct tcpep_seg *s, uint64_t now_ms,
                     struct tcpep_reply *r);

/* SYN-RCVD past its timeout: the SYN-ACK again (r), or TE_EV_TIMEOUT once
 * synack_tries were sent. Nothing before rto_at_ms. */
unsigned tcpep_timer(const struct tcpep_cfg *c, struct tcpep_flow *f, uint64_t now_ms,
                     struct tcpep_reply *r);

/* The window to announce now (the field's value, scaled). */
uint16_t tcpep_window(const struct tcpep_cfg *c, const struct tcpep_flow *f);

/* Stateless SYN-ACK for a SYN when the worker keeps no more flows. */
void tcpep_syn_cookie(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                      const struct tcpep_seg *s, uint64_t now_s, struct tcpep_reply *r);

/* The client's ACK of a cookie: 1 and f established (zeroed by the caller,
 * then pass the same segment to tcpep_input for its data), or 0 when the
 * cookie is not ours or too old (drop the segment). */
int tcpep_cookie_flow(const struct tcpep_cfg *c, const struct tcpseq_tuple *t,
                      const struct tcpep_seg *s, uint64_t now_s, uint64_t now_ms,
                      struct tcpep_flow *f);

/* Frees the buffer and gives its bytes back to the global budget; the
 * flow is TE_CLOSED. Idempotent. */
void tcpep_free(const struct tcpep_cfg *c, struct tcpep_flow *f);

#endif
