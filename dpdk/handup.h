/* handup: a connection kvg-bypassd must not splice goes to kvgated as an
 * ordinary kernel socket instead of being reset (issue 12, --adopt).
 *
 * For a flow whose first flight says "not for the bypass" (firstflight.h's
 * causes: not an inference request, chunked, Upgrade, Expect, HTTP/1.0, a
 * body over max_body, h2 framing...), whose first request does not fit its
 * buffer (over_budget), or whose client sends nothing for HANDUP_QUIET_MS
 * after the handshake (quiet: a client that waits for the server to speak
 * first):
 *   1. the worker's endpoint state (tcpep.h) becomes a kernel TCP socket
 *      in repair mode (bypass/repair.h), bound to the bypass address and
 *      port next to kvgated's listener (SO_REUSEPORT, created under
 *      kvgated's uid, read from the channel's SO_PEERCRED), the buffered
 *      bytes restored into its receive queue;
 *   2. the flow's kvg_bp_flows entry (the client's packets as received)
 *      says pass: XDP hands every later packet of it to the kernel;
 *   3. repair mode off (the socket announces its window), and the
 *      descriptor goes to kvgated over bypass.adopt_socket
 *      (bypass/adopt.h), which serves it per request;
 *   4. the worker forgets the flow; it keeps only the entry's key, and
 *      deletes the entry once the kernel no longer holds a socket with
 *      those ends (sock_diag, HANDUP_SWEEP_SLICE entries checked every
 *      HANDUP_SWEEP_MS, in turn; TIME_WAIT counts as held).
 * When any step fails the client is reset, as before the hand-up existed
 * (before step 3: by the worker, nothing having been sent; after it: by
 * the kernel, the socket closed with SO_LINGER 0). Each outcome is
 * counted by cause in the stats file ("handup"). Without --adopt every
 * such flow is reset and counted the same way, and a quiet client is left
 * alone (as before). */
#ifndef KVGATE_DPDK_HANDUP_H
#define KVGATE_DPDK_HANDUP_H

#include <stdint.h>
#include <stdio.h>

#include "bypass/adopt.h"
#include "worker.h"

#define HANDUP_QUIET_MS 1000   /* connected and silent this long: handed up (quiet) */
#define HANDUP_SWEEP_MS 1000   /* how often the pass entries are checked against the kernel */
#define HANDUP_MAX 8192        /* flows handed up whose entries the worker still watches */
#define HANDUP_SWEEP_SLICE 256 /* pass entries checked per sweep, at most: each is a sock_diag
                                * round trip on the packet loop (up to 100 ms when an answer
                                * is lost), so a full table is checked over HANDUP_MAX /
                                * HANDUP_SWEEP_SLICE sweeps, not in one stall */

/* --adopt PATH: kvgated's socket, connected now if it is there and again
 * at most once a second while it is not. 0, or -ENAMETOOLONG / -ENOMEM. */
int handup_open(const char *path);
int handup_on(void);
/* The adopt cause of a firstflight cause. */
unsigned handup_cause_ff(unsigned ff_cause);
/* s's first flight is not for the bypass (cause, enum adopt_cause): it is
 * handed up, or else its client is reset (in: the segment that told,
 * NULL: from the flow's own addresses). s is forgotten either way. */
void handup_or_reset(struct slot *s, const struct pkt_tcp *in, unsigned cause);
/* A connection already spliced, from a request boundary on (rc: its state
 * there, the request's first bytes to restore; dpdk/boundary.h): handed up
 * to kvgated as above, counted by cause. 0 handed up (the client's entry
 * says pass); 1 failed after the socket went live (the kernel reset the
 * client); -1 nothing sent, nothing changed (no --adopt, no channel...). */
struct repair_conn;
int handup_mid(const struct repair_conn *rc, unsigned cause);
/* After a segment of a flow whose first request is not whole yet: no room
 * left for the rest (the flow's budget or the worker's)? Then it is
 * handed up (over_budget) or reset, s forgotten, and 1. */
int handup_no_room(struct slot *s, const struct pkt_tcp *in);
/* On the timer, for every used slot: a connection silent since its
 * handshake for HANDUP_QUIET_MS is handed up (quiet), s forgotten, 1.
 * Only with --adopt. */
int handup_quiet(struct slot *s, uint64_t now);
/* The channel (reconnects) and the sweep of pass entries. */
void handup_timer(uint64_t now);
/* This worker's counters into the stats file's sums (its start, and each
 * timer). */
void handup_register(void);
void handup_close(void);
/* The "handup" object of the stats file (stats.c). */
void handup_stats_json(FILE *f);

#endif
