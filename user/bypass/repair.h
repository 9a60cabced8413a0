/* repair: the hand-up's kernel half (issue 12, ../shared/BYPASS.md): a
 * connection whose handshake and first flight a bypass worker took in user
 * space (bypass/tcpep.h) becomes an ordinary kernel TCP socket through
 * TCP_REPAIR, its buffered bytes restored into the socket's receive queue,
 * so kvgated can adopt it and serve it as if it had accepted it. No DPDK:
 * plain sockets and netlink (the worker in dpdk/handup.c calls it, and so
 * does tests/unit/bypass/test_repair.c). Needs CAP_NET_ADMIN, in the
 * network namespace that holds the connection's local address.
 *
 * The socket is built the way the worker's SYN-ACK set the connection up:
 * MSS and window scale only, no timestamps, no SACK (so the TCP_REPAIR
 * options carry exactly those two), our send sequence at iss + 1 (the
 * worker never sent data), the receive sequence where the buffered bytes
 * begin; those bytes then go into the receive queue, which moves rcv_nxt
 * to where the client's next byte is expected. The client's window is
 * restored too (TCP_REPAIR_WINDOW), so the socket can send at once.
 *
 * A FIN the worker already acknowledged cannot be put back (no repair
 * call queues one): the socket then expects one byte less than the
 * client will send next. It still serves what was asked; the kernel sees
 * no FIN and ends the socket after kvgated closes it (FIN_WAIT_2 time-out).
 * The worker passes the FIN along as a flag; callers may refuse such a
 * flow instead. */
#ifndef KVGATE_BYPASS_REPAIR_H
#define KVGATE_BYPASS_REPAIR_H

#include <stdint.h>

#include "bypass/tcpep.h"

/* A connection's state, IPv4 (addresses and ports in network order). */
struct repair_conn {
    uint32_t laddr, raddr;   /* ours (the bypass address), the client's */
    uint16_t lport, rport;
    uint32_t snd_nxt;        /* our next sequence number (iss + 1: nothing sent) */
    uint32_t rcv_nxt;        /* the next sequence number expected from the client,
                              * after the buffered bytes (and its FIN, if fin) */
    uint16_t peer_mss;       /* the client's MSS option (536 when it sent none) */
    int8_t peer_ws;          /* the client's window scale, -1 none (then no scaling) */
    uint8_t our_ws;          /* the scale we announced (0 without scaling) */
    uint32_t peer_wnd;       /* the client's window in bytes, as last seen */
    const uint8_t *data;     /* bytes received and not yet read, in order */
    uint32_t len;
    uint8_t fin;             /* the client's FIN came after data (see above) */
};

/* c from the worker's endpoint of the flow t (as received: the client is
 * t's source) and its buffered first flight: our send sequence at iss + 1,
 * the client's MSS, scales and window, f's bytes to restore. */
void repair_conn_from_tcpep(struct repair_conn *c, const struct tcpseq_tuple *t,
                            const struct tcpep_flow *f);

/* A TCP socket in repair mode holding c: bound to (laddr, lport) with
 * SO_REUSEADDR and SO_REUSEPORT (so next to kvgated's SO_REUSEPORT
 * listener on that port, when the caller's fsuid is kvgated's uid: the
 * kernel lets sockets share a port only within one owner), connected to (raddr, rport)
 * without a packet sent, options, window and receive queue restored. It
 * stays in repair mode (nothing is sent, nothing received is answered)
 * until repair_finish: the caller first makes the client's packets reach
 * the kernel. The fd (non-blocking, close-on-exec), or -errno (nothing
 * sent on the wire). */
int repair_build(const struct repair_conn *c);
/* Leaves repair mode: the socket is an ordinary established connection
 * and announces its window to the client (a window probe). 0 or -errno. */
int repair_finish(int fd);
/* Closes a socket still in repair mode without a packet (no RST). */
void repair_abort(int fd);

/* Does the kernel of this network namespace hold a TCP socket with these
 * ends (any state, TIME_WAIT included)? Asked through NETLINK_SOCK_DIAG
 * (an exact lookup, not a dump). 1 yes, 0 no, -errno when it cannot tell.
 * nlfd: a NETLINK_SOCK_DIAG socket (repair_diag_open), kept by the
 * caller. */
int repair_diag_open(void);
int repair_sock_exists(int nlfd, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport);

#endif
