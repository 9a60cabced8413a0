/* splice: session flows spliced client <-> pod in the kernel; kvgated's
 * state machine. See splice.h; the verdict and its reasoning are in
 * bpf/splice.bpf.c, the per-direction states in splice_priv.h, the map
 * plumbing in splice_maps.c, kvgated's own byte pumps in splice_pump.c.
 *
 * Life of a flow (struct splice, one per client connection, SP(c)):
 *
 *   (none) --an eligible request is routed--> in the map, not on
 *       the client socket enters kvg_sock in PASS mode (its bytes still come
 *       up to kvgated, through the psock)
 *   --its answer is complete--> on (CD_KERNEL, PD_KERNEL)
 *       the exchange's upstream conn is kept as the dedicated one, watched
 *       by pod_io; the pod socket enters kvg_sock, the client's cfg gets a
 *       SPLICE epoch (adopted with the client's next skb, once kvgated has
 *       read every byte the client socket handed up). The pod's cfg is
 *       PASS until kvgated's own last answer bytes are out (settled), so
 *       that a pipelined request's answer cannot overtake them.
 *   on --the verdict hands client bytes up--> CD_BODY and/or CD_HELD
 *       inside a request body (budget, or an ineligible request behind
 *       it): kvgated relays exactly the rest of that body, then splices
 *       the client again (nothing more came up) or holds. At a request
 *       boundary: held. Held bytes stay in the socket until the pod has
 *       answered every request the kernel sent it (its answers are framed
 *       by the verdict) and those answers are out; then the flow is off:
 *       the pod conn goes back to the pool (or is closed), the client
 *       socket stays in kvg_sock in PASS mode (deleting a socket from a
 *       sockmap drops whatever its psock queued for us), and kvgated's
 *       HTTP/1.1 path parses and answers the held bytes (404, 405, 413,
 *       400, or routed afresh), in order after the spliced answers. The
 *       next eligible exchange may splice the connection again.
 *   on --the verdict hands the pod's bytes up--> PD_RELAY
 *       (budget, not settled yet, an invalid answer): kvgated relays them,
 *       still framed by the verdict, and splices the pod direction again
 *       once it is quiet; an invalid answer ends the connection (502 if
 *       none of it reached the client).
 *   on --the pod closes--> an idle keep-alive close when every request was
 *       answered and neither side said "connection: close": off, the client
 *       keeps its connection; else the client gets what the pod sent, then
 *       our FIN.
 *   on --close, error, idle--> gone (cconn_fail, splice_conn_gone)
 *
 * Half-close while on: a client FIN is passed to the pod (shutdown
 * SHUT_WR) only once the pod's TCP acknowledged every byte redirected to it
 * (tcpi_bytes_acked against the verdict's counter); an EOF from the pod
 * likewise. One timer per flow: 1 ms ticks while an ordering or FIN wait
 * runs, 1-16 ms while held bytes wait for the pod to be quiet, else an
 * idleness check every limits.idle_timeout_ms. */
#include "gateway/splice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <unistd.h>

#include <bpf/bpf.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "gateway/client_h1.h"
#include "gateway/conn.h"
#include "gateway/upstream.h"
#include "gateway/splice_priv.h"

static void timer_cb(struct ev_loop *l, void *arg);
static void pod_io(struct ev_loop *l, int fd, uint32_t ev, void *arg);
static void finish(struct splice *sp);

static uint64_t idle_ns(struct cconn *c)
{
    uint32_t ms = c->wc->g->cfg.idle_timeout_ms ? c->wc->g->cfg.idle_timeout_ms : 60000;
    return (uint64_t)ms * 1000000ull;
}

/* ---- lifetime ---- */

/* The flow no longer splices requests: counted once, under cause (UC_NONE:
 * the cause was counted when it happened). */
static void unspliced(struct splice *sp, unsigned cause)
{
    if (!sp->spliced)
        return;
    sp->spliced = 0;
    sp_flows_add(-1);
    if (cause != UC_NONE)
        sp_count_unsplice(cause);
}

/* The pod socket leaves kvg_sock. Requests the kernel sent on this flow
 * that the pod did not answer (the client, the pod or an invalid answer
 * ended the flow first) are written off the pod's kernel-sent load
 * (kvg_pod_load): counted when the kernel forwarded them, they would
 * otherwise stay "in flight" there for good. Read once the socket is out:
 * no verdict run forwards to it or frames its answers any more. */
static void pod_out(struct splice *sp)
{
    struct kvg_flow_st stc, stp;
    sp_sock_out(sp->ck_p);
    if (sp_st_get(sp->ck_c, &stc) == 0 && sp_st_get(sp->ck_p, &stp) == 0) {
        int32_t owed = (int32_t)(stc.requests - sp->req_base - stp.requests);
        if (owed > 0 && sp->slot < POD_MAX)
            atomic_fetch_add(&sp->c->wc->g->counters.kload_lost[sp->slot], (uint64_t)owed);
    }
    sp_map_out(sp->ck_p, 0);
    sp->p_in_map = 0;
}

/* The pod conn leaves the map and goes back to the pool (idle, clean: the
 * flow is quiet, nothing of an exchange is under way on it). */
static void repool_pod(struct splice *sp)
{
    if (sp->pfd < 0)
        return;
    if (sp->p_in_map)
        pod_out(sp); /* a normal TCP socket again */
    sp->p_in_map = 0;
    if (sp->p_watched)
        ev_del(sp->c->wc->l, sp->pfd);
    sp->p_watched = 0;
    up_adopt_fd(sp->c->wc->ups, sp->slot, &sp->paddr, sp->paddrlen, sp->pfd);
    sp->pfd = -1;
}

static void drop_pod(struct splice *sp)
{
    if (sp->pfd < 0)
        return;
    if (sp->p_in_map)
        pod_out(sp);
    sp->p_in_map = 0;
    if (sp->p_watched)
        ev_del(sp->c->wc->l, sp->pfd);
    sp->p_watched = 0;
    close(sp->pfd);
    sp->pfd = -1;
}

/* The connection is torn down (conn.c calls the layer's gone first). */
static void splice_conn_gone(struct cconn *c)
{
    struct splice *sp = SP(c);
    if (!sp)
        return;
    c->layer = NULL;
    unspliced(sp, c->wc->stopping ? UC_SHUTDOWN : UC_CLIENT_CLOSED);
    ev_timer_cancel(c->wc->l, sp->timer);
    drop_pod(sp);
    if (sp->c_in_map)
        sp_map_out(sp->ck_c, 0); /* the socket leaves kvg_sock when cconn_fail closes it */
    sp_pump_free(sp);
    kv_free(sp);
}

/* Ends the connection (both sockets). sp is freed: return at once. */
void sp_teardown(struct splice *sp, unsigned cause)
{
    unspliced(sp, cause);
    cconn_fail(sp->c); /* -> splice_conn_gone */
}

/* ---- entering the map, splicing ---- */

static int eligible(struct xreq *x)
{
    struct cconn *c = cconn_of_x(x);
    return sp_on && h1_is(c) && x->keep_alive && x->r.session[0] && !c->nc.dead &&
           !c->nc.closing && !c->nc.in.len && !c->wc->stopping && !c->wc->draining &&
           (!SP(c) || !SP(c)->on) && splice_enabled_for(c->wc->g, x->r.model);
}

static const struct cconn_ops splice_conn_ops;

/* The client socket enters kvg_sock in PASS mode: its bytes still come
 * up to kvgated. Done while the client waits for an answer (nothing
 * unread), so that the socket is in the map before its next request. */
static struct splice *enter_map(struct cconn *c)
{
    uint64_t ck;
    if (SP(c))
        return SP(c);
    if (sp_inq(c->nc.fd) != 0 || sp_cookie(c->nc.fd, &ck) < 0)
        return NULL;
    struct splice *sp = kv_calloc(1, sizeof(*sp));
    if (!sp)
        return NULL;
    sp->c = c;
    sp->ck_c = ck;
    sp->rd_base = c->nc.rd_bytes;
    sbuf_init(&sp->c2p);
    sbuf_init(&sp->p2c);
    sp_cfg_client(sp, KVG_MODE_PASS, 0);
    if (sp_map_in(c->nc.fd, ck, &sp->cc) < 0) {
        kv_free(sp);
        return NULL;
    }
    sp->c_in_map = 1;
    sp->pfd = -1;
    cconn_push_ops(c, &splice_conn_ops, sp); /* the layer sees the socket first */
    return sp;
}

static void splice_prepare(struct xreq *x)
{
    if (eligible(x))
        enter_map(cconn_of_x(x));
}

/* Both sockets spliced: the pod socket enters kvg_sock (PASS until
 * settled), the client's cfg goes to SPLICE. Done when the pod's answer is
 * complete but before its last bytes reach the client (relay.c holds them
 * back): a client that sends its next request the moment it has the
 * answer still finds the splice in place. 0 or -1 (the pod conn must go). */
static int activate(struct splice *sp)
{
    struct cconn *c = sp->c;
    uint64_t taken_c, taken_p, ck_p;
    struct kvg_flow_st stc;
    if (sp_inq(sp->pfd) != 0 || sp_cookie(sp->pfd, &ck_p) < 0 ||
        sp_tcp_counts(c->nc.fd, NULL, &taken_c) < 0 || sp_tcp_counts(sp->pfd, NULL, &taken_p) < 0 ||
        sp_st_get(sp->ck_c, &stc) < 0)
        return -1;
    if (sp_consumed(sp) < stc.passed)
        return -1; /* the client's bytes came up and are not read yet */
    sp->ck_p = ck_p;
    sp->p_read = 0;
    sp->req_base = stc.requests;
    memset(&sp->pc, 0, sizeof(sp->pc));
    sp_cfg_pod(sp, KVG_MODE_PASS, taken_c); /* SPLICE once settled */
    if (sp_map_in(sp->pfd, ck_p, &sp->pc) < 0) {
        sp_count_unsplice(UC_ERROR);
        return -1;
    }
    sp->p_in_map = 1;
    /* client -> pod: in flight = client bytes - (pod acked - base) */
    sp_cfg_client(sp, KVG_MODE_SPLICE, taken_p - stc.bytes);
    if (sp_cfg_put(sp, 1, 1) < 0) {
        sp_count_unsplice(UC_ERROR);
        return -1;
    }
    sp->on = sp->spliced = 1;
    sp->cdir = CD_KERNEL;
    sp->pdir = PD_KERNEL;
    sp->settled = sp->draining = 0;
    sp->c_eof = sp->p_eof = sp->c_shut = sp->p_shut = sp->p_stop = 0;
    sp->ending = sp->p_gone = 0;
    sp->wait_since = sp->shut_at = 0;
    sp->body_left = sp->moved = 0;
    sp->ordered_c2p = sp->ordered_p2c = 0;
    sp->idle_at = ev_now_ns() + idle_ns(c);
    sp->idle_mark = UINT64_MAX;
    sp_flows_add(1);
    return 0;
}

/* relay's layer hook: the answer is complete on u, before its last bytes
 * reach the client. 1 when the splice took u's socket over as the
 * session's dedicated pod conn (and splices the flow), 0 to pool u. */
static int splice_hold(struct xreq *x, struct upconn *u)
{
    struct cconn *c = cconn_of_x(x);
    if (x->r.status < 200 || x->r.status > 299 || !up_reusable(u) || !eligible(x))
        return 0;
    /* a pod the verdict would hand the next request up from anyway (say,
     * saturated under load): no splice, no conn churn */
    struct kvg_pod kp;
    uint32_t slot = x->up_slot;
    if (sp_fd_pods < 0 || bpf_map_lookup_elem(sp_fd_pods, &slot, &kp) ||
        (kp.flags & (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY)) !=
            (KVG_POD_F_PRESENT | KVG_POD_F_HEALTHY) ||
        (kp.flags & (KVG_POD_F_DRAINING | KVG_POD_F_DOWN | KVG_POD_F_SATURATED)))
        return 0;
    struct splice *sp = enter_map(c); /* normally done at dispatch already */
    if (!sp)
        return 0;
    /* take u's socket: no exchange owns it, no pool holds it, pod_io watches it */
    sp->paddr = x->r.pod.addr;
    sp->paddrlen = x->r.pod.addrlen;
    int fd = up_detach_fd(u);
    if (ev_add(c->wc->l, fd, EPOLLIN | EPOLLRDHUP, pod_io, sp) < 0) {
        close(fd);
        return 1; /* u is gone either way */
    }
    sp->pfd = fd;
    sp->p_watched = 1;
    sp->slot = slot;
    if (activate(sp) < 0)
        drop_pod(sp);
    return 1;
}

/* After each flush of the client: once kvgated's last bytes of the answer
 * are out, the flow is settled: the pod's answers may now go straight to
 * the client, and idleness is judged from the verdict's counters. */
static void splice_client_idle(struct cconn *c)
{
    struct splice *sp = SP(c);
    if (!sp || !sp->on || sp->settled || c->nc.dead || !h1_idle(c) || netconn_pending(&c->nc))
        return;
    sp->settled = 1;
    struct kvg_flow_st st;
    uint64_t taken_c;
    if (sp->pdir == PD_KERNEL && sp->pc.mode == KVG_MODE_PASS &&
        sp_st_get(sp->ck_p, &st) == 0 && st.passed <= sp->p_read &&
        sp_tcp_counts(c->nc.fd, NULL, &taken_c) == 0) { /* else pod_io relays what came up */
        sp_cfg_pod(sp, KVG_MODE_SPLICE, taken_c - st.bytes);
        if (sp_cfg_put(sp, 0, 1) < 0) {
            sp_teardown(sp, UC_ERROR);
            return;
        }
    }
    cconn_set_timer(c, CT_NONE); /* idleness is judged from the verdict's counters */
    sp->idle_at = ev_now_ns() + idle_ns(c);
    sp_set_events(sp);
    sp_schedule(sp);
}

/* ---- quiet: the pod answered every request the kernel sent it ---- */

static int answered(const struct splice *sp, const struct kvg_flow_st *stc,
                    const struct kvg_flow_st *stp)
{
    return (int32_t)(stp->requests - (stc->requests - sp->req_base)) >= 0 &&
           stp->phase == KVG_AN_IDLE;
}

/* 1 when nothing of an exchange is under way and everything the pod sent
 * is out: held client bytes may be served, the pod conn pooled. (The
 * verdict counts a request after redirecting it, an answer after its last
 * bytes went on; a second look catches a run in progress.) */
static int quiet(struct splice *sp)
{
    struct kvg_flow_st c1, p1, c2, p2;
    if (sp->cdir == CD_BODY || (sp->held_at && ev_now_ns() - sp->held_at < SP_SETTLE_NS) ||
        sp_st_get(sp->ck_c, &c1) < 0 || sp_st_get(sp->ck_p, &p1) < 0)
        return 0;
    if (!answered(sp, &c1, &p1) || (sp->cdir == CD_KERNEL && c1.phase != KVG_PH_HEAD))
        return 0;
    if (sp->pdir == PD_KERNEL && (p1.passed > sp->p_read || sp_behind(sp, 0, 0) > 0))
        return 0; /* bytes came up (pod_io relays them), or some are not out yet */
    if (sp->pdir == PD_RELAY && (sp->p2c.len || !sp->ordered_p2c || sp->p_read < p1.passed))
        return 0;
    /* a verdict run still under way shows in a second look */
    if (sp_st_get(sp->ck_c, &c2) < 0 || sp_st_get(sp->ck_p, &p2) < 0)
        return 0;
    return c2.requests == c1.requests && p2.requests == p1.requests && c2.bytes == c1.bytes &&
           p2.bytes == p1.bytes && p2.passed == p1.passed && p2.phase == p1.phase;
}

/* Client bytes (or none, after an idle pod close) wait at a request
 * boundary until the flow is quiet. handed: the verdict handed them up
 * (it sends the pod nothing more): quiet may be judged at once. */
static void to_held(struct splice *sp, unsigned cause, int handed)
{
    unspliced(sp, cause);
    if (sp->cc.mode != KVG_MODE_PASS) { /* whatever comes next comes up, in order */
        sp_cfg_client(sp, KVG_MODE_PASS, sp->cc.peer_base);
        if (sp_cfg_put(sp, 1, 1) < 0) {
            sp_teardown(sp, UC_ERROR);
            return;
        }
    }
    sp->cdir = CD_HELD;
    sp->quiet_tick = SP_TICK_NS;
    sp->held_at = handed ? 0 : ev_now_ns();
    if (handed && quiet(sp)) { /* the usual case: the client waited for its answers */
        finish(sp);
        return;
    }
    sp_set_events(sp);
    sp_schedule(sp);
}

/* The rest of a request body goes through kvgated. */
static void to_body(struct splice *sp, uint64_t owed, unsigned cause)
{
    sp_count_unsplice(cause); /* the flow stays counted as spliced */
    sp->cdir = CD_BODY;
    sp->body_left = owed;
    sp->ordered_c2p = 0;
    sp->since_c2p = ev_now_ns();
    sp_pump(sp);
}

void sp_body_done(struct splice *sp)
{
    struct kvg_flow_st st;
    uint64_t taken_p;
    if (sp_st_get(sp->ck_c, &st) < 0 || sp_tcp_counts(sp->pfd, NULL, &taken_p) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    sp_pump_free(sp);
    if (sp_consumed(sp) < st.passed || sp->c_eof) { /* the next request came up already */
        to_held(sp, UC_NONE, 1);
        return;
    }
    /* splice again: its base counts what kvgated wrote */
    sp_cfg_client(sp, KVG_MODE_SPLICE, taken_p - st.bytes);
    if (sp_cfg_put(sp, 1, 1) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    sp->cdir = CD_KERNEL;
}

/* The pod's bytes go through kvgated (still framed by the verdict). */
static void to_relay(struct splice *sp, unsigned cause)
{
    if (cause != UC_NONE)
        sp_count_unsplice(cause); /* the flow stays counted as spliced */
    sp_cfg_pod(sp, KVG_MODE_PASS, sp->pc.peer_base);
    if (sp_cfg_put(sp, 0, 1) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    sp->pdir = PD_RELAY;
    sp->relay_cause = cause;
    sp->ordered_p2c = 0;
    sp->since_p2c = ev_now_ns();
    sp_pump(sp);
}

/* The flow is off: the pod conn pooled (or closed), held bytes served on
 * the socket path, or (draining) the connection closed gracefully. */
static void finish(struct splice *sp)
{
    struct cconn *c = sp->c;
    struct kvg_flow_st stp;
    int keep = !sp->p_eof && sp_st_get(sp->ck_p, &stp) == 0 &&
               !(stp.flags & KVG_ST_F_CLOSE) && stp.phase == KVG_AN_IDLE;
    unspliced(sp, UC_NONE);
    if (keep)
        repool_pod(sp); /* a drained or saturated pod's conn serves the socket path on */
    else
        drop_pod(sp);
    ev_timer_cancel(c->wc->l, sp->timer);
    sp->timer = 0;
    sp->on = 0;
    sp->cdir = CD_KERNEL;
    sp->pdir = PD_KERNEL;
    sp_pump_free(sp);
    int draining = sp->draining;
    sp->draining = 0;
    cconn_set_timer(c, CT_IDLE); /* a held request's first byte makes it CT_REQ */
    ev_mod(c->wc->l, c->nc.fd, EPOLLIN | EPOLLRDHUP);
    netconn_read(&c->nc, EPOLLIN); /* may splice the connection again, or end it */
    if (c->nc.dead)
        return;
    if (draining && h1_idle(c) && !c->nc.in.len) {
        c->nc.closing = 1; /* nothing held: the connection ends here */
        cconn_flush(c);
        return;
    }
    netconn_update_events(&c->nc);
}

/* An answer the verdict found invalid: what came before it is out; the
 * connection ends, with a 502 in its place when none of it went out. */
static void bad_answer(struct splice *sp, const struct kvg_flow_st *stp)
{
    struct cconn *c = sp->c;
    gw_attempt_done(c->wc->g, sp->slot, 0); /* outlier detection sees spliced failures too */
    /* An invalid answer the verdict handed up was counted by to_relay,
     * under the verdict's cause; one that came while kvgated already
     * relayed (the pod direction in PASS: not settled yet, or relaying
     * after an earlier hand-up) is counted here. */
    if (sp->pdir != PD_RELAY || sp->relay_cause != KVG_SPL_UP_BAD_ANSWER)
        sp_count_unsplice(KVG_SPL_UP_BAD_ANSWER);
    if (stp->flags & KVG_ST_F_BAD_SENT) {
        sp_teardown(sp, UC_NONE);
        return;
    }
    unspliced(sp, UC_NONE);
    drop_pod(sp);
    ev_timer_cancel(c->wc->l, sp->timer);
    sp->timer = 0;
    sp->on = 0;
    sp->cdir = CD_KERNEL;
    sp->pdir = PD_KERNEL;
    sp_pump_free(sp);
    ev_mod(c->wc->l, c->nc.fd, EPOLLIN | EPOLLRDHUP);
    h1_reject(c, 502, "the model server sent an invalid answer");
}

/* The pod closed (or reset) the dedicated connection. */
static void pod_eof(struct splice *sp, int reset)
{
    struct kvg_flow_st stc, stp;
    sp->p_eof = sp->p_gone = 1;
    sp_unwatch_pod(sp); /* nothing more to read; HUP would fire on and on */
    if (sp_st_get(sp->ck_c, &stc) < 0 || sp_st_get(sp->ck_p, &stp) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    /* an idle keep-alive close (vLLM's server drops idle connections after
     * 5 s): every request answered, nobody said close: the client keeps
     * its connection */
    int boundary = sp->cdir == CD_HELD ||
                   (sp->cdir == CD_KERNEL && (stc.epoch != sp->cc.epoch || /* not adopted yet:
                                                                   * kvgated writes at one */
                                              (stc.phase == KVG_PH_HEAD && !stc.mid)));
    int idle = sp->settled && !sp->c_eof && boundary && answered(sp, &stc, &stp) &&
               !((stc.flags | stp.flags) & KVG_ST_F_CLOSE);
    if (idle) {
        if (sp->cdir == CD_KERNEL)
            to_held(sp, UC_POD_CLOSED, 0); /* the quiet wait serves the client on */
        else
            sp_schedule(sp);
        return;
    }
    if (reset || !answered(sp, &stc, &stp)) /* a request left unanswered */
        gw_attempt_done(sp->c->wc->g, sp->slot, 0);
    if (reset) {
        sp_teardown(sp, UC_POD_CLOSED);
        return;
    }
    /* the pod ended it (its answer said so, or was cut): the client gets
     * what was sent, then our FIN */
    sp->ending = 1;
    sp->wait_since = 0;
    sp_schedule(sp);
}

void sp_relay_idle(struct splice *sp, const struct kvg_flow_st *stp)
{
    struct cconn *c = sp->c;
    if (stp->phase == KVG_AN_BAD && sp->p_read >= stp->bad_pos) {
        bad_answer(sp, stp);
        return;
    }
    if (sp->p_eof) {
        if (!sp->p_gone)
            pod_eof(sp, 0);
        return;
    }
    if (sp->p_read < stp->passed)
        return; /* more came up: the pod socket is watched */
    struct kvg_flow_st stc;
    if (sp_st_get(sp->ck_c, &stc) < 0 || !answered(sp, &stc, stp))
        return; /* an answer is under way: relay on */
    if (sp->cdir == CD_HELD) {
        if (quiet(sp))
            finish(sp);
        return;
    }
    if (sp->cdir != CD_KERNEL || !sp->settled)
        return;
    uint64_t taken_c; /* quiet: the kernel may have the answers again */
    if (sp_tcp_counts(c->nc.fd, NULL, &taken_c) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    sp_cfg_pod(sp, KVG_MODE_SPLICE, taken_c - stp->bytes);
    if (sp_cfg_put(sp, 0, 1) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    sp->pdir = PD_KERNEL;
    sp_pump_free(sp);
}

/* ---- events ---- */

/* Client bytes came up (or its read side ended) while CD_KERNEL. */
static void client_event(struct splice *sp, uint32_t ev)
{
    struct cconn *c = sp->c;
    char b;
    ssize_t n = recv(c->nc.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        struct kvg_flow_st st;
        if (sp_st_get(sp->ck_c, &st) < 0) {
            sp_teardown(sp, UC_ERROR);
        } else if (st.epoch != sp->cc.epoch || st.state == KVG_FST_PASS) {
            to_held(sp, UC_CLIENT_DATA, 1); /* sent before the SPLICE epoch took effect */
        } else if (st.state == KVG_FST_HANDED_UP) {
            if (st.mid && st.phase == KVG_PH_BODY && st.body_left)
                to_body(sp, st.body_left, st.cause);
            else
                to_held(sp, st.cause, 1); /* filtered, draining, unhealthy, ... */
        } else {
            sp_teardown(sp, UC_ERROR); /* spliced, yet bytes came up: order unknown */
        }
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0 || (ev & (EPOLLERR | EPOLLHUP))) {
        sp_teardown(sp, UC_CLIENT_CLOSED);
        return;
    }
    sp->c_eof = 1; /* the FIN goes to the pod once it has every byte */
    sp->wait_since = 0;
    sp_set_events(sp);
    sp_schedule(sp);
}

/* The pod's bytes came up (or its read side ended) while PD_KERNEL. */
static void pod_event(struct splice *sp, uint32_t ev)
{
    char b;
    ssize_t n = recv(sp->pfd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) {
        struct kvg_flow_st st;
        if (sp_st_get(sp->ck_p, &st) < 0)
            sp_teardown(sp, UC_ERROR);
        else if (st.state == KVG_FST_HANDED_UP)
            to_relay(sp, st.cause); /* budget, an invalid answer, ... */
        else if (st.epoch != sp->pc.epoch || st.state == KVG_FST_PASS)
            to_relay(sp, UC_NONE); /* not settled yet, or before the SPLICE epoch */
        else
            sp_teardown(sp, UC_ERROR);
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    pod_eof(sp, n < 0 || (ev & EPOLLERR));
}

static int splice_client_io(struct cconn *c, uint32_t ev)
{
    struct splice *sp = SP(c);
    if (!sp->on)
        return 0;
    if (ev & EPOLLERR) {
        sp_teardown(sp, UC_CLIENT_CLOSED);
        return 1;
    }
    if ((ev & EPOLLHUP) && (sp->cdir != CD_KERNEL || sp->c_eof)) {
        sp_teardown(sp, UC_CLIENT_CLOSED); /* gone both ways: nothing to wait for */
        return 1;
    }
    if ((ev & EPOLLOUT) && !sp->settled) {
        cconn_flush(c); /* the rest of the last relayed answer; settles when out */
        if (c->nc.dead || SP(c) != sp || !sp->on)
            return 1;
    }
    if (sp->cdir == CD_KERNEL && !sp->c_eof && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
        client_event(sp, ev);
        if (c->nc.dead || SP(c) != sp || !sp->on)
            return 1;
    }
    sp_pump(sp);
    return 1;
}

static void pod_io(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    struct splice *sp = arg;
    struct cconn *c = sp->c;
    (void)l;
    (void)fd;
    if (!sp->on || sp->p_gone)
        return;
    if (sp->pdir == PD_KERNEL) {
        pod_event(sp, ev);
        if (SP(c) != sp || !sp->on)
            return;
    } else if (ev & EPOLLERR) {
        sp_teardown(sp, UC_POD_CLOSED);
        return;
    }
    sp_pump(sp);
}

/* ---- the timer ---- */

/* 1 while a FIN waits for the other side to acknowledge what it got. */
static int half_close_step(struct splice *sp)
{
    struct cconn *c = sp->c;
    if (sp->c_eof && !sp->p_shut && sp->pfd >= 0 && sp->cdir == CD_KERNEL && sp_behind(sp, 1, 1) <= 0) {
        shutdown(sp->pfd, SHUT_WR);
        sp->p_shut = 1;
    }
    if (sp->ending && !sp->c_shut &&
        (sp->pdir == PD_KERNEL ? sp_behind(sp, 0, 1) <= 0 : !sp->p2c.len)) {
        shutdown(c->nc.fd, SHUT_WR);
        sp->c_shut = 1;
        sp->shut_at = ev_now_ns();
    }
    return (sp->c_eof && !sp->p_shut) || (sp->ending && !sp->c_shut);
}

void sp_schedule(struct splice *sp)
{
    struct ev_loop *l = sp->c->wc->l;
    uint64_t now = ev_now_ns(), at = sp->idle_at;
    int fast = (sp->cdir == CD_BODY && !sp->ordered_c2p) ||
               (sp->pdir == PD_RELAY && !sp->ordered_p2c) ||
               (sp->c_eof && !sp->p_shut) || (sp->ending && !sp->c_shut);
    if (fast && at > now + SP_TICK_NS)
        at = now + SP_TICK_NS;
    if ((sp->cdir == CD_HELD || sp->draining) && at > now + sp->quiet_tick)
        at = now + sp->quiet_tick;
    if (sp->shut_at && at > sp->shut_at + SP_LINGER_NS)
        at = sp->shut_at + SP_LINGER_NS;
    ev_timer_cancel(l, sp->timer);
    sp->timer = ev_timer_at(l, at, timer_cb, sp);
}

static void tick(struct splice *sp)
{
    struct cconn *c = sp->c;
    uint64_t now = ev_now_ns();
    if ((sp->cdir == CD_BODY && !sp->ordered_c2p) || (sp->pdir == PD_RELAY && !sp->ordered_p2c)) {
        if (now - (sp->cdir == CD_BODY ? sp->since_c2p : sp->since_p2c) > SP_WAIT_MAX_NS) {
            sp_teardown(sp, UC_ERROR); /* the kernel never delivered what it redirected */
            return;
        }
        sp_pump(sp);
        if (SP(c) != sp || !sp->on)
            return;
    }
    if (sp->c_eof || sp->p_eof) {
        int waiting = half_close_step(sp);
        if ((sp->c_eof && sp->p_eof && !waiting) || (sp->shut_at && now >= sp->shut_at + SP_LINGER_NS)) {
            sp_teardown(sp, UC_CLIENT_CLOSED); /* both sides finished */
            return;
        }
        if (waiting && !sp->wait_since)
            sp->wait_since = now;
        if (waiting && now - sp->wait_since > SP_WAIT_MAX_NS) {
            sp_teardown(sp, UC_ERROR);
            return;
        }
    }
    if (sp->draining && sp->cdir == CD_KERNEL && !sp->c_eof && quiet(sp)) {
        to_held(sp, KVG_SPL_UP_GW_DRAIN, 0); /* no request in flight: stop taking any */
        return;
    }
    if (sp->cdir == CD_HELD && quiet(sp)) {
        finish(sp);
        return;
    }
    if (sp->cdir == CD_HELD && sp->p_eof && !sp->ending) {
        struct kvg_flow_st a, b; /* the pod went away owing answers: it never will */
        if (sp_st_get(sp->ck_c, &a) == 0 && sp_st_get(sp->ck_p, &b) == 0 &&
            !answered(sp, &a, &b) && now - sp->held_at >= SP_SETTLE_NS) {
            sp->ending = 1; /* what it sent, then our FIN */
            sp->wait_since = 0;
        }
    }
    if (sp->cdir == CD_HELD || sp->draining)
        sp->quiet_tick = sp->quiet_tick * 2 > SP_QUIET_TICK_MAX_NS ? SP_QUIET_TICK_MAX_NS
                                                                   : sp->quiet_tick * 2;
    if (now >= sp->idle_at) { /* no byte either way since the last check: idle */
        struct kvg_flow_st a, b;
        uint64_t moved = sp->moved;
        if (sp_st_get(sp->ck_c, &a) == 0 && sp_st_get(sp->ck_p, &b) == 0)
            moved += a.bytes + a.passed + b.bytes + b.passed;
        if (moved == sp->idle_mark) {
            sp_teardown(sp, UC_IDLE);
            return;
        }
        sp->idle_mark = moved;
        sp->idle_at = now + idle_ns(c);
    }
    sp_schedule(sp);
}

static void timer_cb(struct ev_loop *l, void *arg)
{
    struct splice *sp = arg;
    (void)l;
    sp->timer = 0;
    if (sp->on)
        tick(sp);
}

/* ---- graceful drain ---- */

static void splice_drain(struct cconn *c)
{
    struct splice *sp = SP(c);
    if (!sp || !sp->on || sp->draining)
        return;
    sp->draining = 1;
    sp->quiet_tick = SP_TICK_NS;
    sp->cc.flags |= KVG_CFG_F_DRAIN; /* no new epoch: read at each request head */
    if (sp_cfg_put(sp, 1, 1) < 0) {
        sp_teardown(sp, UC_ERROR);
        return;
    }
    sp_schedule(sp);
}

/* ---- the layer (conn.h): in front of the HTTP/1.1 protocol ---- */

static void l_input(struct cconn *c)
{
    c->under->input(c);
}

static void l_timeout(struct cconn *c, int kind)
{
    c->under->timeout(c, kind);
}

static void l_flushed(struct cconn *c)
{
    if (c->under->flushed)
        c->under->flushed(c);
    if (!c->nc.dead && SP(c))
        splice_client_idle(c); /* the answer is out: splice a held session flow */
}

/* Drain: a flow under way finishes its answer, then ends (splice_drain);
 * a connection not spliced now drains as its protocol does; at the
 * deadline what is left ends. */
static void l_drain(struct cconn *c, int cut)
{
    struct splice *sp = SP(c);
    if (sp && sp->on) {
        if (cut)
            sp_teardown(sp, UC_SHUTDOWN);
        else
            splice_drain(c);
        return;
    }
    c->under->drain(c, cut);
}

static int l_io(struct cconn *c, uint32_t ev)
{
    return SP(c) ? splice_client_io(c, ev) : 0;
}

static int l_holding(const struct cconn *c)
{
    return c->under->holding && c->under->holding(c);
}

static char *l_direct(struct cconn *c, size_t *room)
{
    return c->under->direct ? c->under->direct(c, room) : NULL;
}

static void l_direct_got(struct cconn *c, size_t n)
{
    c->under->direct_got(c, n);
}

static const struct cconn_ops splice_conn_ops = {
    .input = l_input, .timeout = l_timeout, .flushed = l_flushed, .drain = l_drain,
    .gone = splice_conn_gone, .io = l_io, .holding = l_holding, .direct = l_direct,
    .direct_got = l_direct_got,
};

const struct xlayer splice_layer = { splice_prepare, splice_hold };
