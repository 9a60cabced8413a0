/* splice_priv.h: what splice.c (the state machine), splice_maps.c (map
 * plumbing) and splice_pump.c (kvgated's bounded byte pumps) share. Not
 * included outside those three; splice.h is the rest of kvgated's view.
 *
 * A flow (struct splice, one per client connection, SP(c)) has one state
 * per direction while `on` (both sockets in kvg_sock, the pod conn
 * dedicated to the client):
 *   client -> pod   CD_KERNEL  the verdict frames requests and sends the
 *                              eligible ones
 *                   CD_BODY    the verdict handed up inside a request body
 *                              (budget, or an ineligible request behind
 *                              it): kvgated relays exactly the rest of that
 *                              body to the pod, then splices again or holds
 *                   CD_HELD    client bytes at a request boundary wait in
 *                              the socket until the pod has answered every
 *                              request the kernel sent it; then the
 *                              connection goes back to the socket path
 *   pod -> client   PD_KERNEL  answers redirected (and framed) by the verdict
 *                   PD_RELAY   answers handed up (budget, the splice not yet
 *                              settled, an invalid answer): kvgated relays
 *                              them, still framed by the verdict, and
 *                              splices again once the pod is quiet
 * kvgated never writes a client byte to a pod that the verdict did not
 * frame as part of an eligible request. */
#ifndef KVGATE_GATEWAY_SPLICE_PRIV_H
#define KVGATE_GATEWAY_SPLICE_PRIV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "common/sbuf.h"
#include "kvgate.h"

struct cconn;
struct upconn;

/* The flow of c: the splice is the only layer (conn.h) there is. */
#define SP(c) ((struct splice *)(c)->layer)

#define SP_TICK_NS 1000000ull            /* ordering / half-close waits poll at 1 ms */
#define SP_QUIET_TICK_MAX_NS 16000000ull /* the quiet wait backs off to 16 ms */
#define SP_WAIT_MAX_NS (60ull * 1000000000) /* an ordering or FIN wait gives up after a minute */
#define SP_SETTLE_NS 2000000ull          /* a verdict still running on the old cfg */
#define SP_LINGER_NS 2000000000ull       /* after our FIN to the client, until it closes */

enum { CD_KERNEL, CD_BODY, CD_HELD };
enum { PD_KERNEL, PD_RELAY };

struct splice {
    struct cconn *c;
    int pfd;                    /* the dedicated pod conn's socket, while on (-1: none) */
    struct sockaddr_storage paddr; /* its pod, to hand it back to the pool */
    socklen_t paddrlen;
    int on;                     /* a flow: the client's requests go through the verdict */
    int spliced;                /* counted in kvgate_splice_flows */
    int cdir, pdir;             /* CD_*, PD_* */
    unsigned relay_cause;       /* PD_RELAY: the hand-up cause it counted (UC_NONE: none) */
    uint32_t slot;              /* pod slot */
    uint64_t ck_c, ck_p;        /* socket cookies (keys in the maps) */
    int c_in_map, p_in_map;
    struct kvg_flow_cfg cc, pc; /* what kvg_flow_cfg holds for the client / the pod socket */
    uint64_t rd_base;           /* c->nc.rd_bytes when the client socket entered kvg_sock */
    uint64_t c_own;             /* client bytes splice.c read itself (request bodies) */
    uint64_t p_read;            /* pod bytes kvgated read since the pod socket entered */
    uint32_t req_base;          /* the client's st.requests when the flow was spliced */
    int settled;                /* kvgated's own last answer bytes are out */
    int c_eof, p_eof;           /* read side ended */
    int c_shut, p_shut;         /* we shut its write side */
    int ending;                 /* the pod ended the flow: the client gets its FIN */
    int p_watched;              /* the pod socket is on the loop (pod_io) */
    int p_gone;                 /* the pod's end was handled (pod_eof ran) */
    int draining;               /* splice_drain: end once quiet */
    uint64_t timer;
    uint64_t wait_since;        /* a half-close waiting for acknowledgements */
    uint64_t quiet_tick;        /* the quiet wait's current poll interval */
    uint64_t held_at;           /* held without a hand-up by the verdict: a verdict run
                                 * on the old cfg may still be under way until then */
    uint64_t shut_at;           /* our FIN went to the client (the pod ended the flow) */
    uint64_t idle_at, idle_mark;/* idleness: next check, bytes moved at the last one */
    /* pumps (splice_pump.c) */
    uint64_t body_left;         /* CD_BODY: request body bytes still to relay */
    int ordered_c2p, ordered_p2c; /* the kernel's redirected bytes reached the destination */
    int p_stop;                 /* PD_RELAY read up to an invalid answer: no further */
    uint64_t since_c2p, since_p2c;
    uint64_t moved;             /* bytes kvgated relayed on this flow */
    struct sbuf c2p, p2c;
    size_t c2p_off, p2c_off;
};

/* ---- splice.c ---- */

extern const struct xlayer splice_layer; /* relay's hooks (exchange.h) */

/* ---- splice_maps.c: maps, sockets, counters ---- */

extern int sp_on;                      /* verdict attached, not turned off */
extern int sp_fd_pods;
extern uint64_t sp_budget;

/* unsplice causes: the verdict's hand-up reasons, then kvgated's own */
enum { UC_CLIENT_DATA = KVG_SPL_REASON_MAX, UC_CLIENT_CLOSED, UC_POD_CLOSED, UC_IDLE,
       UC_ERROR, UC_SHUTDOWN, UC__END, UC_NONE = UC__END /* counted already */ };
void sp_count_unsplice(unsigned cause);
void sp_count_relayed(int c2p, uint64_t n);
void sp_flows_add(int d);              /* kvgate_splice_flows (and _total when d > 0) */

int sp_cookie(int fd, uint64_t *out);
/* Bytes the socket's TCP acknowledged (acked) and took (acked + queued). */
int sp_tcp_counts(int fd, uint64_t *acked, uint64_t *taken);
int sp_inq(int fd);                    /* only for sockets outside kvg_sock */
int sp_st_get(uint64_t ck, struct kvg_flow_st *st);

/* The flow cfg of the client or the pod socket, built in one place. */
void sp_cfg_client(struct splice *sp, int mode, uint64_t peer_base);
void sp_cfg_pod(struct splice *sp, int mode, uint64_t peer_base);
/* Writes sp->cc / sp->pc (exist: the entry is there already). */
int sp_cfg_put(struct splice *sp, int client, int exist);
/* Puts fd into kvg_sock with zeroed state and the cfg; 0 or -errno. */
int sp_map_in(int fd, uint64_t ck, const struct kvg_flow_cfg *cfg);
void sp_map_out(uint64_t ck, int sock_too);
/* The socket leaves kvg_sock only (its cfg and state stay to be read). */
void sp_sock_out(uint64_t ck);

/* Client bytes kvgated consumed since the client socket entered kvg_sock
 * (compared with what the verdict handed up: st.passed). */
uint64_t sp_consumed(const struct splice *sp);
/* Redirected bytes not yet acknowledged (ack) or not yet taken by the
 * destination's TCP (!ack), client -> pod (c2p) or pod -> client. */
int64_t sp_behind(struct splice *sp, int c2p, int ack);

/* ---- splice_pump.c: kvgated's own bytes on a flow ---- */

/* Moves what CD_BODY / PD_RELAY have to move, then lets splice.c go on
 * (sp_body_done, sp_relay_idle). May free sp (check SP(c) after). */
void sp_pump(struct splice *sp);
/* The socket events the flow's state needs (both sockets). */
void sp_set_events(struct splice *sp);
/* The pod socket leaves the loop (its read side ended). */
void sp_unwatch_pod(struct splice *sp);
void sp_pump_free(struct splice *sp);

/* ---- splice.c, called by the pumps ---- */

void sp_teardown(struct splice *sp, unsigned cause);
/* CD_BODY's body is all at the pod. */
void sp_body_done(struct splice *sp);
/* PD_RELAY caught up with what the pod handed up (buffer flushed); st is
 * the pod socket's state. */
void sp_relay_idle(struct splice *sp, const struct kvg_flow_st *st);
/* The flow wants the timer soon (an ordering wait). */
void sp_schedule(struct splice *sp);

#endif
