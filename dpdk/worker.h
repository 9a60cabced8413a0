/* worker: what kvg-bypassd's modules share (dpdk/bypassd.c owns it): the
 * flow table's slots, the configuration main() parsed, and the calls the
 * modules make into each other.
 *
 *   bypassd.c   EAL and the port, the loop, the flow table, frames from the
 *               client and the pod, replay, hand-off, the timers
 *   txq.c       frames out: the transmit queue, segments built or rewritten
 *   session.c   the decision channel (--decide): DECIDE, ANSWER, DONE, the
 *               error answers the worker sends in kvgated's name
 *   podreset.c  a spliced flow whose pod went down: taken back from XDP,
 *               both sides reset, DONE pod_down
 *   boundary.c  a spliced flow's next request whose pod is draining or
 *               saturated: held by XDP, handed up to kvgated from there
 *   stats.c     the counters and the stats file
 *   handup.c    a flow not for the bypass: a kernel socket (TCP_REPAIR)
 *               handed to kvgated (--adopt), else reset
 *   steer.c     one worker per queue (--queues N): which worker owns a
 *               frame's flow, the inboxes between them
 *   idle.c      the wait when idle
 *
 * One process, one lcore per queue (steer.h). What a worker changes is its
 * own (__thread: the flow table, the channels to kvgated, the counters);
 * what all share is set before they start and only read after (the
 * configuration, the entry program's maps), except by_port, where each
 * worker touches only its own source ports. */
#ifndef KVGATE_DPDK_WORKER_H
#define KVGATE_DPDK_WORKER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bp_rewrite.h"
#include "bp_events.h"
#include "entry.h"
#include "bypass/decide_cli.h"
#include "bypass/firstflight.h"
#include "bypass/handoff.h"
#include "bypass/pkt.h"
#include "bypass/replay.h"
#include "bypass/tcpep.h"

#define BURST 32
#define NFLOWS 4096 /* a power of two */
#define IDLE_POLLS 64
/* a spliced flow closed both ways (or reset) is forgotten after this long
 * without a packet; one nobody closed, after IDLE_MS (handoff_check) */
#define WATCH_EVERY_MS 250
#define IDLE_LOOKS 2           /* quiet this many looks in a row (>= 500 ms): idle */
#define LINGER_MS 1000
#define IDLE_MS (600u * 1000)
#define DECIDE_WAIT_MS 5000    /* no answer from kvgated in this long: 503 */
#define MAC_WAIT_MS 1000       /* the pod's MAC not resolved in this long: 503 */
#define ERR_RTO_MS 200         /* an error answer is sent again after this long */
#define ERR_TRIES 5
#define RESET_MS 600           /* pstate 3: both sides reset, or forgotten after this long */
#define PROBE_EVERY_MS 200     /* pstate 3: a side not heard from is probed again */

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct slot {
    int used;
    struct tcpseq_tuple t;
    struct tcpep_flow f;
    struct ff *ff;
    uint8_t smac[6], dmac[6];
    /* towards the pod: 0 none, 1 replaying, 2 handed off to XDP, 3 taken
     * back from XDP to reset both sides (its pod went down) */
    int pstate;
    uint8_t checked;       /* XDP and the worker check the pod (kvg_pods slot in the entries) */
    uint8_t reset_done;    /* pstate 3: 1 the client, 2 the pod reset (or it reset) */
    uint64_t reset_until_ms, probe_at_ms;
    uint16_t gwport;      /* host order */
    struct replay rp;
    struct handoff h;
    int have_h;
    struct handoff_watch hw; /* handed off: when to forget it */
    uint64_t watch_at_ms;
    /* the pod: --pod's, or kvgated's answer (--decide) */
    uint32_t pod_ip;       /* network order */
    uint16_t pod_port;     /* network order */
    uint8_t pod_mac[6];
    /* --decide: the decision channel (user/bypass/decide_cli) */
    int dstate;            /* enum dstate */
    uint32_t did, dgen;    /* the decision's id, on which connection */
    uint32_t pod_slot;     /* kvgated's slot for the pod */
    uint8_t outcome;       /* DONE's outcome if the flow ended now (enum decide_outcome) */
    uint8_t *body;         /* the first request's body, for DECIDE */
    size_t blen, bcap;
    int body_oom;
    uint64_t asked_ms, first_data_ms, mac_until_ms;
    /* the requests after the first, as XDP frames them (bpf/bp_frame.h) */
    uint8_t c2p_relayed;   /* the worker relayed client bytes itself (XDP did not frame them) */
    uint8_t uf;            /* enum decide_unframed: why they are not (all) counted, 0 none */
    uint8_t uf_sent;       /* ... as last reported to kvgated */
    uint32_t reqs_seen;    /* the c2p entry's count, last read */
    uint32_t reqs_sent;    /* ... as last reported to kvgated (REQS) */
    uint64_t body_seen;    /* their body bytes (the entry's rq_body_bytes), last read */
    uint32_t body_sent;    /* ... as last reported (REQS version 5: modulo 2^32) */
    /* the answers' events (bpf/bp_events.h), for kvgated's token estimate
     * (DONE, version 6): the worker counts those in answer bytes it
     * relays before the hand-off, XDP the rest (the p2c entry's events,
     * from ev_seq on) */
    uint8_t ev_on;         /* counted: the first request is HTTP/1.1 (h2c's events
                            * begin behind frame headers) */
    uint32_t ev_seq;       /* the pod's sequence number of the next byte to scan */
    uint32_t ev_st;        /* the pattern's state (bp_ev_step) */
    uint64_t events_seen;  /* the worker's count, then the entry's, last read */
    /* the times to first token XDP took (bpf/bp_events.h; the first
     * request's too when the worker marked it at the hand-off), reported
     * in REQS version 7 */
    uint32_t ttft_n_seen;  /* the p2c entry's ttft_n and ttft_sum_us, last read */
    uint64_t ttft_us_seen;
    uint32_t ttft_n_sent;  /* ... as last reported */
    uint64_t events_late;  /* in late pod frames the worker relayed after the
                            * hand-off (XDP never saw them: it counts on past
                            * them, a gap); added at DONE */
    /* idle between requests: nothing moved either way (XDP's packet counts
     * of both entries) for IDLE_LOOKS looks in a row; kvgated does not
     * count the flow in flight meanwhile (REQS idle, version 4) */
    uint64_t last_pk;
    uint8_t quiet_looks;
    uint8_t idle, idle_sent;
    uint8_t *resp;         /* D_ERR: the error answer sent to the client */
    uint32_t resp_len;
    uint8_t resp_tries;
    uint64_t resp_at_ms;
    uint64_t est_ms;       /* when the handshake completed (handup.h: a quiet client) */
};
/* Where a flow stands with kvgated (--decide). */
enum dstate {
    D_NONE = 0,  /* not asked (or no --decide) */
    D_WAIT,      /* DECIDE sent, no answer yet */
    D_ROUTED,    /* answered 200: counted in flight at kvgated until our DONE */
    D_MAC,       /* routed, waiting for the pod's MAC */
    D_ERR,       /* the client is being answered an error, then closed */
};

/* ---- bypassd.c: the configuration and the flow table ---- */
extern __thread struct slot *flows; /* NFLOWS slots, the worker's own */
extern __thread struct tcpep_cfg C; /* the worker's copy: its own global budget */
extern struct ff_cfg FC;
extern struct replay_cfg RC;
extern int have_pod;           /* --pod: where first requests are replayed */
extern uint32_t POD_IP, GW_IP; /* network order */
extern uint16_t POD_PORT;      /* network order */
extern uint8_t POD_MAC[6];
extern int have_pod_mac;       /* --pod-mac: the next hop for every pod */
extern __thread struct dcli *DC; /* --decide: the worker's decision channel to kvgated */
extern const char *IFNAME;
extern uint16_t LO, HI;        /* the source ports towards pods */
extern struct slot **by_port;  /* index: source port - LO (steer.h: whose) */
extern int FLOWS_FD;           /* the entry program's kvg_bp_flows */
extern struct bpe E;           /* the entry program (entry.h) */

/* Forgets s: DONE to kvgated if it holds s, XDP's entries deleted, its
 * source port and slot freed. */
void drop_flow(struct slot *s);
/* The first request is whole (and kvgated routed it): replayed to the
 * pod. 0, or -1 (no source port free). */
int start_replay(struct slot *s);

#endif
