/* pkt: Ethernet / IPv4 / TCP frames for the bypass worker (issue 12):
 * parse what the client sent into a tcpep segment, build what the worker
 * sends (the endpoint's replies; the replay to the pod later). No I/O, no
 * DPDK: frames are byte buffers. IPv6 is not handled yet (the XDP side
 * passes it to the kernel).
 *
 * Parsing is strict: Ethernet II with IPv4 (no VLAN tag), IHL >= 5 within
 * the frame, total length within the frame (Ethernet padding ignored),
 * not a fragment, TCP with a data offset >= 5 within the packet, options
 * well formed (EOL, NOP, MSS, window scale read; others skipped by their
 * length). With verify, the IPv4 header and TCP checksums must be right. */
#ifndef KVGATE_BYPASS_PKT_H
#define KVGATE_BYPASS_PKT_H

#include <stddef.h>
#include <stdint.h>

#include "bypass/tcpep.h"

#define PKT_ETH_LEN 14
#define PKT_HDR_MAX (PKT_ETH_LEN + 20 + 60) /* Ethernet, IPv4 without options, TCP */

enum pkt_err {
    PKT_OK = 0,
    PKT_NOT_IPV4 = -1,   /* another ethertype (ARP, IPv6, VLAN): the kernel's */
    PKT_NOT_TCP = -2,
    PKT_FRAGMENT = -3,
    PKT_MALFORMED = -4,  /* lengths or options that do not add up */
    PKT_BAD_CSUM = -5,
};

/* A received TCP segment: its addresses as they came, and the segment. */
struct pkt_tcp {
    uint8_t smac[6], dmac[6];
    struct tcpseq_tuple t; /* network order, as in the packet */
    uint8_t ttl;
    struct tcpep_seg seg;  /* host order; data points into the frame */
};

int pkt_parse(const uint8_t *frame, size_t len, int verify, struct pkt_tcp *out);

/* Only the addresses and ports of a TCP frame (network order), for
 * steering it to the worker that owns its flow (dpdk/steer.h) before that
 * worker parses it in full: the same structure checks as pkt_parse up to
 * the TCP ports (no checksum, no options). PKT_OK or pkt_parse's error,
 * and PKT_OK whenever pkt_parse would say PKT_OK (with the same tuple). */
int pkt_tuple(const uint8_t *frame, size_t len, struct tcpseq_tuple *t);

/* A segment to send. Addresses and ports in network order. */
struct pkt_out {
    uint8_t smac[6], dmac[6];
    uint32_t saddr, daddr;
    uint16_t sport, dport;
    uint32_t seq, ack;     /* host order */
    uint8_t flags;
    uint16_t win;
    uint16_t mss;          /* 0: no MSS option */
    int8_t wscale;         /* -1: no window scale option */
    const uint8_t *data;
    uint32_t len;
};

/* Writes the frame into buf: its length, or 0 when cap is too small. IPv4
 * with DF, TTL 64, both checksums computed. */
size_t pkt_build(const struct pkt_out *o, uint8_t *buf, size_t cap);

/* The reply to in, as tcpep said (addresses, ports and MACs swapped). */
void pkt_reply(const struct pkt_tcp *in, const struct tcpep_reply *r, struct pkt_out *o);

/* RFC 1071 checksum of buf folded into sum (host order partial sums). */
uint16_t pkt_csum(const void *buf, size_t len, uint32_t sum);

#endif
