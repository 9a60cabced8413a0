/* tcpseq: the bypass worker's TCP sequence numbers (issue 12): initial
 * sequence numbers from a keyed hash (RFC 6528) and SYN cookies for when a
 * SYN flood fills the worker's table of half-open connections. No I/O;
 * the key is the worker's, drawn at start (getrandom) and never sent.
 *
 * The hash is SipHash-2-4 (a PRF with a 128-bit key, which RFC 6528 asks
 * for: the hash must not be computable without the key), over the
 * connection's four-tuple in network order.
 *
 * ISN = F(key, tuple) + a clock of 4 us ticks (RFC 6528: M), so a new
 * connection on a reused tuple starts ahead of the old one.
 *
 * SYN cookie (the worker answers the SYN and keeps nothing; the client's
 * ACK brings it back in its acknowledgement number - 1):
 *   cookie = F(key, tuple) + client_isn
 *          + (count << 24) + ((F(key, tuple, count) + (mss_index << 22)) mod 2^24)
 * so that, the count aside, 22 bits must match the keyed hash exactly (a
 * forged or altered ACK passes with odds 2^-22 per fresh minute; adding the
 * index in the low bits, as some stacks do, lets an off-by-one seq pass)
 * with count the minute counter (2^8 wrap). A cookie is accepted while its
 * count is the current minute or up to TCPSEQ_COOKIE_MINUTES before; it
 * restores the MSS from a small table (the largest entry <= what the
 * client offered). Window scaling and SACK are not encoded (the worker
 * negotiates no timestamps to carry them): a connection made by cookie
 * runs without window scaling. */
#ifndef KVGATE_BYPASS_TCPSEQ_H
#define KVGATE_BYPASS_TCPSEQ_H

#include <stdint.h>

#define TCPSEQ_COOKIE_MINUTES 2 /* a cookie is good for this many minutes back */

struct tcpseq_key {
    uint64_t k0, k1;
};

/* A connection's four-tuple as it sits in the packet (network order). */
struct tcpseq_tuple {
    uint32_t saddr, daddr;
    uint16_t sport, dport;
};

/* From getrandom; 0 or -errno. */
int tcpseq_key_init(struct tcpseq_key *k);

uint64_t tcpseq_siphash(const struct tcpseq_key *k, const void *data, uint32_t len);

/* The ISN for the worker's side of the connection; now_us: a monotonic
 * clock in microseconds. */
uint32_t tcpseq_isn(const struct tcpseq_key *k, const struct tcpseq_tuple *t, uint64_t now_us);

/* The MSS values a cookie can carry, ascending. */
#define TCPSEQ_NMSS 4
extern const uint16_t tcpseq_mss_table[TCPSEQ_NMSS];

/* The cookie to send as the SYN-ACK's sequence number; *mss_out: the MSS
 * it encodes (what the worker then uses). now_s: monotonic seconds. */
uint32_t tcpseq_cookie(const struct tcpseq_key *k, const struct tcpseq_tuple *t,
                       uint32_t client_isn, uint16_t client_mss, uint64_t now_s,
                       uint16_t *mss_out);

/* The client's ACK: its sequence number (client_isn + 1) and
 * acknowledgement number (cookie + 1). The MSS (> 0) when the cookie is
 * ours and fresh, 0 when not. */
uint16_t tcpseq_cookie_check(const struct tcpseq_key *k, const struct tcpseq_tuple *t,
                             uint32_t seq, uint32_t ack, uint64_t now_s);

#endif
