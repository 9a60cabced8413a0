/* decide_srv: kvgated's end of the decision channel (decide_srv.h). */
#include "gateway/decide_srv.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "bypass/decide.h"
#include "common/alloc.h"
#include "common/ev.h"
#include "common/log.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "gateway/accounting.h"
#include "gateway/gateway.h"
#include "gateway/gwmetrics.h"
#include "gateway/useqsrv.h"

#define PEERS_MAX 16
#define BUCKETS 256     /* a power of two */
#define RECV_BURST 64   /* packets read per readiness, then the loop turns */
/* REQS plausibility: a connection's later requests are counted up to
 * REQS_BURST plus REQS_PER_S a second of its life. Each needs an answer
 * from a model server before the next (HTTP/1.1 without pipelining), so
 * no honest flow comes near; a worker (or an XDP program) that reports
 * more is not believed, and the excess is counted apart. */
#define REQS_BURST 64
#define REQS_PER_S 1000

/* One decision a worker holds: its body arriving, then routed until DONE. */
struct dpend {
    struct dpend *next;          /* bucket chain */
    uint32_t id;
    int routed;                  /* answered 200: in flight until DONE */
    int can_handup;              /* its DECIDE said DECIDE_F_HANDUP (version 3) */
    uint32_t reqs;               /* later requests the worker reported (REQS) */
    uint32_t reqs_counted;       /* of those, counted (at most what the flow's age allows) */
    uint32_t reqs_body;          /* their body bytes as last reported (version 5, mod 2^32) */
    uint32_t ttft_n, ttft_us;    /* their times to first token as last reported (version 7,
                                  * mod 2^32) */
    uint32_t ttft_counted;       /* of those, observed (at most one per request counted) */
    uint8_t unframed;            /* enum decide_unframed, as last reported */
    uint64_t got;                /* body bytes received */
    struct gw_scan *scan;
    struct sbuf body;            /* kept only for the exact index (gw->toks) */
    struct gw_request r;
};

struct outmsg {
    uint16_t len;
    uint8_t b[DECIDE_FIXED_ANSWER + DECIDE_ERR_MAX];
};

struct dpeer {
    int fd;
    int slot;                    /* in D.peers */
    uint32_t n;                  /* decisions held */
    uint8_t version;             /* the codec version it speaks (its first packet's);
                                  * answered in it; 0 until it sent one */
    struct dpend *tab[BUCKETS];
    struct outmsg *outq;         /* answers the socket did not take yet (a ring) */
    uint32_t oh, on, ocap;
    int want_out;
};

enum { ST_200, ST_400, ST_404, ST_413, ST_503, ST_N };
static const unsigned st_code[ST_N] = {200, 400, 404, 413, 503};

static struct {
    struct gw *g;
    struct useqsrv s;     /* the listener and the thread */
    struct dpeer *peers[PEERS_MAX];
} D = {.s = {.lfd = -1}};

/* counters for /metrics (read by the admin thread) */
static atomic_uint_fast64_t c_peers_now, c_peers_total, c_peers_refused, c_answers[ST_N],
    c_done[DECIDE_OUTCOME_MAX + 1], c_released, c_protocol, c_stray, c_over_limit, c_reqs,
    c_reqs_implausible, c_idle, c_busy, c_ttft, c_ttft_implausible,
    c_unframed[DECIDE_UF_MAX + 1], c_handup[DECIDE_HU_MAX + 1];

static inline void inc(atomic_uint_fast64_t *c) { atomic_fetch_add_explicit(c, 1, memory_order_relaxed); }

/* ---- the peer's decisions ---- */

static struct dpend **bucket(struct dpeer *p, uint32_t id)
{
    return &p->tab[(id * 2654435761u) >> 24 & (BUCKETS - 1)];
}

static struct dpend *find(struct dpeer *p, uint32_t id)
{
    for (struct dpend *d = *bucket(p, id); d; d = d->next)
        if (d->id == id)
            return d;
    return NULL;
}

static void unlink_free(struct dpeer *p, struct dpend *d)
{
    for (struct dpend **pp = bucket(p, d->id); *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    p->n--;
    gw_scan_free(d->scan);
    sbuf_free(&d->body);
    kv_free(d);
}

/* ---- answers out ---- */

static void peer_events(struct dpeer *p, int want_out)
{
    if (p->want_out != want_out && !ev_mod(D.s.l, p->fd, EPOLLIN | (want_out ? EPOLLOUT : 0)))
        p->want_out = want_out;
}

/* 0, or -1: the socket failed (the peer is closed by the caller). */
static int flush_out(struct dpeer *p)
{
    while (p->on) {
        struct outmsg *m = &p->outq[p->oh];
        ssize_t n = send(p->fd, m->b, m->len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            peer_events(p, 1);
            return 0;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)m->len)
            return -1;
        p->oh = (p->oh + 1) % p->ocap;
        p->on--;
    }
    peer_events(p, 0);
    return 0;
}

/* An ANSWER queued and sent when the socket takes it. 0, or -1 (a worker
 * that does not read its answers: closed by the caller). */
static int answer(struct dpeer *p, const struct decide_msg *a)
{
    if (p->on == p->ocap)
        return -1;
    struct outmsg *m = &p->outq[(p->oh + p->on) % p->ocap];
    struct decide_msg v = *a;
    v.version = p->version; /* the worker's own (0 never: it sent a packet first) */
    int n = decide_encode(&v, m->b, sizeof(m->b));
    if (n < 0)
        return -1; /* not ours to send: a bug, but never a bad packet */
    m->len = (uint16_t)n;
    p->on++;
    for (int i = 0; i < ST_N; i++)
        if (st_code[i] == a->status)
            inc(&c_answers[i]);
    return flush_out(p);
}

static int refuse(struct dpeer *p, uint32_t id, unsigned status, const char *msg)
{
    struct decide_msg a;
    memset(&a, 0, sizeof(a));
    a.type = DECIDE_T_ANSWER;
    a.id = id;
    a.status = (uint16_t)status;
    /* the text goes to the client in the OpenAI error JSON: printable only */
    size_t k = 0;
    for (const char *s = msg; *s && k < DECIDE_ERR_MAX; s++)
        a.err[k++] = (unsigned char)*s >= 0x20 && (unsigned char)*s <= 0x7e ? *s : '?';
    return answer(p, &a);
}

/* d ends here, answered by kvgated itself (400, 404, 413, 503): counted
 * and logged as the socket path counts its own answers. */
static int end_local(struct dpeer *p, struct dpend *d, unsigned status, const char *msg,
                     const char *cause)
{
    int rc = refuse(p, d->id, status, msg);
    d->r.status = (int)status;
    if (!d->r.error)
        d->r.error = cause;
    gw_request_done(D.g, &d->r);
    unlink_free(p, d);
    return rc;
}

/* ---- the decision ---- */

/* Why r is not for the bypass by kvgated's rules, for a worker that can
 * hand it up (enum decide_handup), or 0: routed. The rules are those of
 * kvgated's own splice (splice.c eligible): a session that pins the
 * connection's requests to one pod, and a model splice.mode /
 * splice.models let out of kvgated's per-request view. The third cause,
 * h2c towards a pod that does not speak it, depends on the pod the policy
 * picks: decide_now asks it after routing. */
static unsigned handup_cause(struct gw *g, const struct gw_request *r)
{
    if (!r->session[0])
        return DECIDE_HU_SESSION;
    if (!gw_splice_model_ok(g, r->model))
        return DECIDE_HU_MODEL;
    return 0;
}

/* d goes back to its worker to be handed up (ANSWER HANDUP): nothing was
 * routed, nothing is in flight, and the request is not counted here (the
 * adopted connection's requests are, path "handup", when kvgated serves
 * them). */
static int end_handup(struct dpeer *p, struct dpend *d, unsigned cause)
{
    struct decide_msg a;
    memset(&a, 0, sizeof(a));
    a.type = DECIDE_T_ANSWER;
    a.id = d->id;
    a.status = DECIDE_STATUS_HANDUP;
    snprintf(a.err, sizeof(a.err), "%s", decide_handup_name(cause));
    inc(&c_handup[cause]);
    unlink_free(p, d);
    return answer(p, &a);
}

static int decide_now(struct dpeer *p, struct dpend *d)
{
    struct gw *g = D.g;
    struct gw_request *r = &d->r;
    r->t_body = ev_now_ns();
    const char *err = NULL;
    size_t off = 0;
    if (gw_scan_finish(d->scan, r, &err, &off) < 0) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s at byte %zu", err ? err : "malformed body", off);
        return end_local(p, d, 400, msg, "bad_request");
    }
    gw_scan_free(d->scan);
    d->scan = NULL;
    unsigned hu = d->can_handup ? handup_cause(g, r) : 0;
    if (hu)
        return end_handup(p, d, hu);
    r->body = d->body.data;
    r->body_len = d->body.len;
    enum route_status st = gw_route(g, r, UINT32_MAX);
    r->body = NULL, r->body_len = 0;
    sbuf_free(&d->body);
    if (st != ROUTE_OK) {
        char msg[sizeof(r->model) + 64];
        if (st == ROUTE_UNKNOWN_MODEL)
            snprintf(msg, sizeof(msg), "The model `%s` does not exist.", r->model);
        else
            snprintf(msg, sizeof(msg), "no pod can serve model %s now", r->model);
        return end_local(p, d, st == ROUTE_UNKNOWN_MODEL ? 404 : 503, msg,
                         st == ROUTE_UNKNOWN_MODEL ? "unknown_model" : "no_pod");
    }
    if (r->h2 && !r->pod.h2c) {
        /* the worker would replay the client's HTTP/2 bytes to a pod that
         * speaks HTTP/1.1 only: kvgated serves the connection instead (it
         * speaks h2c to clients and HTTP/1.1 to pods), or, with no way up,
         * the client hears why */
        gw_route_withdraw(g, r);
        gw_route_release(g, r);
        if (d->can_handup)
            return end_handup(p, d, DECIDE_HU_H2C);
        char msg[POD_NAME_MAX + 160];
        snprintf(msg, sizeof(msg), "pod %s does not speak h2c (pods[].h2c) and this worker "
                 "cannot hand the connection up (kvg-bypassd --adopt)", r->pod.name);
        return end_local(p, d, 503, msg, "no_pod");
    }
    if (r->pod.addr.ss_family != AF_INET) { /* the worker replays over IPv4 only */
        gw_route_withdraw(g, r);
        gw_route_release(g, r);
        char msg[POD_NAME_MAX + 64];
        snprintf(msg, sizeof(msg), "pod %s is not reachable by the bypass (not IPv4)",
                 r->pod.name);
        return end_local(p, d, 503, msg, "no_pod");
    }
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&r->pod.addr;
    struct decide_msg a;
    memset(&a, 0, sizeof(a));
    a.type = DECIDE_T_ANSWER;
    a.id = d->id;
    a.status = 200;
    a.slot = r->pod.slot;
    a.port = ntohs(sin->sin_port);
    memcpy(a.addr, &sin->sin_addr.s_addr, 4);
    d->routed = 1;
    r->status = 200;
    r->t_upstream_sent = ev_now_ns(); /* the worker replays it as soon as it reads this */
    gw_request_sent(g, r, r->t_upstream_sent);
    return answer(p, &a);
}

/* n more body bytes of d. 0; 1: d ended (out of memory, answered 503
 * and freed); -1: that answer failed too (close the peer). */
static int feed(struct dpeer *p, struct dpend *d, const uint8_t *b, uint32_t n)
{
    if (!n)
        return 0;
    gw_scan_feed(d->scan, (const char *)b, n); /* errors are sticky: seen at finish */
    if (D.g->toks && sbuf_append(&d->body, (const char *)b, n))
        return end_local(p, d, 503, "out of memory", "internal") ? -1 : 1;
    d->got += n;
    return 0;
}

/* Each handler: 0, or -1 when the peer must be closed. */
static int on_decide(struct dpeer *p, const struct decide_msg *m)
{
    struct gw *g = D.g;
    if (find(p, m->id))
        return -1; /* an id in use: the worker lost track */
    if (p->n >= g->cfg.bypass_max_outstanding) {
        inc(&c_over_limit);
        gw_metrics_limit(g->metrics, "bypass_outstanding");
        return refuse(p, m->id, 503, "too many requests in flight on this bypass worker");
    }
    struct dpend *d = kv_calloc(1, sizeof(*d));
    if (!d)
        return refuse(p, m->id, 503, "out of memory");
    d->id = m->id;
    d->can_handup = (m->flags & DECIDE_F_HANDUP) != 0; /* version 3 only (the codec's rule) */
    sbuf_init(&d->body);
    struct gw_request *r = &d->r;
    r->t_start = ev_now_ns();
    r->d.idx = -1;
    r->d.shadow_idx = -1;
    r->path = "bypass";
    r->h2 = m->proto == DECIDE_PROTO_H2C;
    snprintf(r->tenant, sizeof(r->tenant), "%s", m->tenant);
    snprintf(r->session, sizeof(r->session), "%s", m->session);
    r->body_bytes = m->body_len;
    d->next = *bucket(p, d->id);
    *bucket(p, d->id) = d;
    p->n++;
    if (m->body_len > g->cfg.max_body_bytes)
        return end_local(p, d, 413, "request body too large", "body_too_large");
    d->scan = gw_scan_new(g);
    if (!d->scan)
        return end_local(p, d, 503, "out of memory", "internal");
    int f = feed(p, d, m->chunk, m->chunk_len);
    if (f)
        return f < 0 ? -1 : 0;
    return d->got == m->body_len ? decide_now(p, d) : 0;
}

static int on_body(struct dpeer *p, const struct decide_msg *m)
{
    struct dpend *d = find(p, m->id);
    if (!d) { /* the worker sent on before it read a refusal: dropped */
        inc(&c_stray);
        return 0;
    }
    if (d->routed || m->offset != d->got || m->chunk_len > d->r.body_bytes - d->got)
        return -1; /* out of order, or past the length it announced */
    int f = feed(p, d, m->chunk, m->chunk_len);
    if (f)
        return f < 0 ? -1 : 0;
    return d->got == d->r.body_bytes ? decide_now(p, d) : 0;
}

/* A spliced connection's tokens (version 6), from the SSE events of its
 * answers that the worker and XDP counted (bpf/bp_events.h: lines that
 * start "data: {"), estimated as the relay estimates a stream it got no
 * usage for (accounting.h): one completion token per event with
 * generated text, the prompt and its cached share as kvgated counted and
 * matched the first request. An OpenAI-style chat stream opens each
 * answer with one event without text (the role), and include_usage adds
 * one (the usage chunk; "[DONE]" is not counted); the connection's later
 * answers are taken to be shaped like its first, and counted as XDP
 * framed their requests (where it stopped framing, the answers after are
 * not deducted for: an overcount of one or two tokens each). Their prompts are not
 * counted: only their body bytes reach kvgated, and the share of them the
 * pod had cached is unknown. Nothing when the first request was not a
 * stream (a non-streamed answer's usage passes in a body only the pod and
 * the client see), no event passed (an answer that is not a stream, such
 * as an error, is not told apart from none), or for h2c (not counted:
 * an event there begins behind a frame header). */
static void bypass_tokens(struct dpend *d, uint32_t events)
{
    struct gw_request *r = &d->r;
    if (!r->stream || !events || r->h2) /* h2c: the worker counts none */
        return;
    uint64_t answers = 1 + d->reqs_counted;
    uint64_t per = (r->chat ? 1 : 0) + (r->include_usage == 1 ? 1 : 0);
    uint64_t bare = answers * per;
    acct_estimate(r, events > bare ? events - bare : 0);
}

static int on_done(struct dpeer *p, const struct decide_msg *m)
{
    struct gw *g = D.g;
    struct dpend *d = find(p, m->id);
    if (!d) { /* ended by kvgated already (a refusal crossing the DONE) */
        inc(&c_stray);
        return 0;
    }
    struct gw_request *r = &d->r;
    inc(&c_done[m->outcome]);
    r->t_end = ev_now_ns();
    if (!d->routed) { /* the client left before its body was whole */
        r->status = 499;
        r->error = "client_closed";
        gw_request_done(g, r);
        unlink_free(p, d);
        return 0;
    }
    if (m->slot != r->pod.slot)
        return -1;
    r->bytes_out = m->bytes_out;
    if (m->ttft_us)
        r->t_first_token = r->t_start + (uint64_t)m->ttft_us * 1000;
    int st = m->http_status;
    switch (m->outcome) {
    case DECIDE_OK:
        gw_attempt_done(g, r->pod.slot, 1);
        break;
    case DECIDE_CLIENT_ABORT:
        r->error = "client_closed";
        st = st ? st : 499;
        break;
    case DECIDE_POD_ERROR: /* refused or reset before it could prefill */
        r->error = "upstream_reset";
        st = st ? st : 502;
        gw_attempt_done(g, r->pod.slot, 0);
        gw_route_withdraw(g, r);
        break;
    case DECIDE_TIMEOUT:
        r->error = "stream_idle_timeout";
        break;
    case DECIDE_POD_DOWN: /* mid-answer: the client was reset (an error, outcome
                           * pod_error); the pod's state is known already (the
                           * table said so), so no attempt is recorded against it */
        r->error = "upstream_pod_down";
        st = st ? st : 502;
        break;
    case DECIDE_SHUTDOWN:
        r->error = "shutdown";
        break;
    default: /* DECIDE_REJECTED: the worker answered it itself */
        r->error = "bypass_rejected";
        st = st ? st : 503;
        gw_route_withdraw(g, r);
        break;
    }
    if (st)
        r->status = st;
    if (p->version >= 6) /* each event took at least 7 answer bytes ("\ndata:{") */
        bypass_tokens(d, m->events < m->bytes_out / 7 ? m->events : (uint32_t)(m->bytes_out / 7));
    gw_route_release(g, r);
    gw_request_done(g, r);
    unlink_free(p, d);
    return 0;
}

/* A spliced flow's later requests (version 2): counted where the first
 * was, as they are reported (kvgate_requests_by_path_total{path="bypass"},
 * kvgate_bypass_requests_total with the first request's model and
 * tenant), and in its access-log line at DONE (conn_requests); version 5
 * adds their body bytes (kvgate_bypass_request_body_bytes_total,
 * conn_body_bytes). The pod's
 * in-flight count is not raised: the flow holds the one its first request
 * took until DONE, and an HTTP/1.1 connection has one request at the pod
 * at a time unless it pipelines. A total that goes down, or a REQS for a
 * decision not routed or naming another pod, breaks the contract; a total
 * beyond what the flow's age allows (REQS_BURST, REQS_PER_S) is clamped. */
static int on_reqs(struct dpeer *p, const struct decide_msg *m)
{
    struct dpend *d = find(p, m->id);
    if (!d) { /* ended by kvgated already */
        inc(&c_stray);
        return 0;
    }
    if (!d->routed || m->slot != d->r.pod.slot || m->requests < d->reqs)
        return -1;
    uint64_t now = ev_now_ns(), age_ms = now > d->r.t_start ? (now - d->r.t_start) / 1000000 : 0;
    uint64_t cap = REQS_BURST + age_ms * REQS_PER_S / 1000;
    uint64_t room = cap > d->reqs_counted ? cap - d->reqs_counted : 0;
    uint32_t inc_by = m->requests - d->reqs;
    uint32_t n = inc_by < room ? inc_by : (uint32_t)room;
    if (inc_by > n) /* this report's excess: never counted, not even later */
        atomic_fetch_add_explicit(&c_reqs_implausible, inc_by - n, memory_order_relaxed);
    d->reqs = m->requests;
    d->reqs_counted += n;
    d->r.conn_requests = d->reqs_counted;
    /* version 5: their body bytes, a total modulo 2^32 (the difference is
     * what came since the last report); at most max_body_bytes for each
     * request counted, the excess dropped as the requests' is */
    uint64_t body = (uint32_t)(m->body - d->reqs_body);
    uint64_t bcap = (uint64_t)d->reqs_counted * D.g->cfg.max_body_bytes;
    if (d->r.conn_body_bytes + body > bcap)
        body = bcap > d->r.conn_body_bytes ? bcap - d->r.conn_body_bytes : 0;
    d->reqs_body = m->body;
    d->r.conn_body_bytes += body;
    if (n)
        atomic_fetch_add_explicit(&c_reqs, n, memory_order_relaxed);
    gw_metrics_bypass_requests(D.g->metrics, &d->r, n, body);
    if (m->unframed && !d->unframed) { /* counted once per flow */
        inc(&c_unframed[m->unframed]);
        d->r.unframed = decide_unframed_name(m->unframed);
    }
    if (m->unframed)
        d->unframed = m->unframed;
    /* version 4: idle between requests, the connection is not counted in
     * flight at its pod until it moves again (a keep-alive session that
     * idles is no load; counted, it made its pod look saturated) */
    if (m->idle != d->r.idle) {
        gw_route_idle(D.g, &d->r, m->idle);
        inc(m->idle ? &c_idle : &c_busy);
    }
    /* version 7: how many requests XDP timed to their answer's first
     * event and the times summed (running totals modulo 2^32): the later
     * ones', and the first one's when its answer had not begun at the
     * hand-off (then its DONE carries no TTFT). Each observed in the TTFT
     * histogram at the mean of those that came together; at most one per
     * request counted (the first included), none longer than the
     * connection is old */
    uint32_t tn = m->rq_ttft_n - d->ttft_n, tus = m->rq_ttft_us - d->ttft_us;
    d->ttft_n = m->rq_ttft_n;
    d->ttft_us = m->rq_ttft_us;
    double mean = tn ? (double)tus / tn / 1e6 : 0, age = (double)age_ms / 1e3;
    uint32_t troom = d->reqs_counted + 1 > d->ttft_counted ? d->reqs_counted + 1 - d->ttft_counted : 0;
    if (tn > troom) {
        atomic_fetch_add_explicit(&c_ttft_implausible, tn - troom, memory_order_relaxed);
        tn = troom;
    }
    if (tn) {
        d->ttft_counted += tn;
        atomic_fetch_add_explicit(&c_ttft, tn, memory_order_relaxed);
        gw_metrics_bypass_ttft(D.g->metrics, &d->r, tn, mean < age ? mean : age);
    }
    return 0;
}

/* ---- peers ---- */

/* Everything p held ends now (its worker is gone, or kvgated stops). */
static void peer_close(struct dpeer *p, const char *why)
{
    for (uint32_t b = 0; b < BUCKETS; b++)
        while (p->tab[b]) {
            struct dpend *d = p->tab[b];
            struct gw_request *r = &d->r;
            r->t_end = ev_now_ns();
            r->error = why;
            if (!d->routed)
                r->status = 499;
            gw_route_release(D.g, r);
            gw_request_done(D.g, r);
            inc(&c_released);
            unlink_free(p, d);
        }
    ev_del(D.s.l, p->fd);
    close(p->fd);
    D.peers[p->slot] = NULL;
    kv_free(p->outq);
    kv_free(p);
    atomic_fetch_sub(&c_peers_now, 1);
}

/* One packet from p, as it came: decoded in the version p speaks (its
 * first packet's) and handled. 0, or -1 when p must be closed (counted). */
static int dispatch(struct dpeer *p, const uint8_t *b, size_t n)
{
    struct decide_msg m;
    int rc = n > DECIDE_MSG_MAX ? -EBADMSG : decide_decode(b, n, &m);
    if (!rc && !p->version)
        p->version = m.version; /* answered in it from now on */
    else if (!rc && m.version != p->version)
        rc = -EBADMSG; /* one connection, one version */
    if (!rc) {
        switch (m.type) {
        case DECIDE_T_DECIDE: rc = on_decide(p, &m); break;
        case DECIDE_T_BODY: rc = on_body(p, &m); break;
        case DECIDE_T_DONE: rc = on_done(p, &m); break;
        case DECIDE_T_REQS: rc = on_reqs(p, &m); break;
        default: rc = -1; break; /* an ANSWER is ours to send */
        }
    }
    if (rc) /* a broken promise: a bad packet, a worker that does not read, or lost track */
        inc(&c_protocol);
    return rc ? -1 : 0;
}

static void on_peer(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct dpeer *p = arg;
    static uint8_t buf[DECIDE_MSG_MAX + 1]; /* this thread's only */
    if ((events & EPOLLOUT) && flush_out(p)) {
        peer_close(p, "bypass_worker_gone");
        return;
    }
    for (int i = 0; i < RECV_BURST; i++) {
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) { /* the worker closed (or a 0-length packet, which is no message) */
            peer_close(p, "bypass_worker_gone");
            return;
        }
        int rc = dispatch(p, buf, (size_t)n);
        if (rc) {
            peer_close(p, "bypass_worker_gone");
            return;
        }
    }
}

static void on_accept(struct ev_loop *l, int lfd, uint32_t events, void *arg)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int k = 0;
        while (k < PEERS_MAX && D.peers[k])
            k++;
        struct dpeer *p = k < PEERS_MAX ? kv_calloc(1, sizeof(*p)) : NULL;
        if (p) {
            p->ocap = D.g->cfg.bypass_max_outstanding + 64;
            p->outq = kv_calloc(p->ocap, sizeof(*p->outq));
        }
        if (!p || !p->outq || ev_add(l, fd, EPOLLIN, on_peer, p)) {
            if (p)
                kv_free(p->outq);
            kv_free(p);
            close(fd);
            inc(&c_peers_refused);
            continue;
        }
        p->fd = fd;
        p->slot = k;
        D.peers[k] = p;
        inc(&c_peers_total);
        inc(&c_peers_now);
    }
}

/* ---- the thread ---- */

static void decide_exit(void)
{
    for (int k = 0; k < PEERS_MAX; k++)
        if (D.peers[k])
            peer_close(D.peers[k], "shutdown");
}

int decide_srv_start(struct gw *g)
{
    if (!g->cfg.bypass_decide_socket[0])
        return 0;
    if (D.s.started)
        return -EBUSY;
    D.g = g;
    snprintf(D.s.path, sizeof(D.s.path), "%s", g->cfg.bypass_decide_socket);
    D.s.what = "bypass.decide_socket";
    D.s.thread_name = "kvgate-decide";
    D.s.on_exit = decide_exit;
    int rc = useqsrv_start(&D.s, PEERS_MAX, on_accept);
    if (rc)
        return rc;
    LOG_INFO("bypass decisions on %s (at most %u outstanding per worker)", D.s.path,
             g->cfg.bypass_max_outstanding);
    return 0;
}

void decide_srv_stop(void)
{
    useqsrv_stop(&D.s);
}

void decide_srv_metrics_render(struct sbuf *o)
{
    if (!D.s.started)
        return;
    prom_head(o, "kvgate_bypass_workers", "gauge",
              "Bypass workers (kvg-bypassd) connected to the decision channel.");
    sbuf_puts(o, "kvgate_bypass_workers");
    prom_value(o, (double)atomic_load(&c_peers_now));
    prom_head(o, "kvgate_bypass_worker_connections_total", "counter",
              "Decision-channel connections accepted, and refused (16 at most, or memory).");
    sbuf_puts(o, "kvgate_bypass_worker_connections_total{result=\"accepted\"}");
    prom_value(o, (double)atomic_load(&c_peers_total));
    sbuf_puts(o, "kvgate_bypass_worker_connections_total{result=\"refused\"}");
    prom_value(o, (double)atomic_load(&c_peers_refused));
    prom_head(o, "kvgate_bypass_decisions_total", "counter",
              "Decisions answered to bypass workers, by status (200 routed; 400, 404, 413, "
              "503 answered by kvgated).");
    for (int i = 0; i < ST_N; i++) {
        sbuf_printf(o, "kvgate_bypass_decisions_total{status=\"%u\"}", st_code[i]);
        prom_value(o, (double)atomic_load(&c_answers[i]));
    }
    prom_head(o, "kvgate_bypass_done_total", "counter",
              "Requests the bypass workers reported ended (DONE), by outcome.");
    for (unsigned i = 0; i <= DECIDE_OUTCOME_MAX; i++) {
        sbuf_printf(o, "kvgate_bypass_done_total{outcome=\"%s\"}", decide_outcome_name(i));
        prom_value(o, (double)atomic_load(&c_done[i]));
    }
    prom_head(o, "kvgate_bypass_later_requests_total", "counter",
              "Requests after the first on spliced bypass connections, as the workers "
              "reported them (XDP frames HTTP/1.1 request heads by Content-Length).");
    sbuf_puts(o, "kvgate_bypass_later_requests_total");
    prom_value(o, (double)atomic_load(&c_reqs));
    prom_head(o, "kvgate_bypass_later_requests_implausible_total", "counter",
              "Later requests a worker reported beyond what a connection's age allows (64 "
              "plus 1,000 a second of its life): not counted anywhere else.");
    sbuf_puts(o, "kvgate_bypass_later_requests_implausible_total");
    prom_value(o, (double)atomic_load(&c_reqs_implausible));
    prom_head(o, "kvgate_bypass_xdp_ttft_total", "counter",
              "Requests on spliced bypass connections whose time to first token XDP took "
              "(request head to the answer's first SSE event; the first request's when its "
              "answer had not begun at the hand-off; decide version 7), each observed in "
              "kvgate_time_to_first_token_seconds; and those reported beyond one per request "
              "counted (not observed).");
    sbuf_puts(o, "kvgate_bypass_xdp_ttft_total{result=\"observed\"}");
    prom_value(o, (double)atomic_load(&c_ttft));
    sbuf_puts(o, "kvgate_bypass_xdp_ttft_total{result=\"implausible\"}");
    prom_value(o, (double)atomic_load(&c_ttft_implausible));
    prom_head(o, "kvgate_bypass_idle_transitions_total", "counter",
              "Spliced bypass connections reported idle between requests (not counted in "
              "flight at their pod meanwhile), and busy again, by a worker (decide version 4).");
    sbuf_puts(o, "kvgate_bypass_idle_transitions_total{to=\"idle\"}");
    prom_value(o, (double)atomic_load(&c_idle));
    sbuf_puts(o, "kvgate_bypass_idle_transitions_total{to=\"busy\"}");
    prom_value(o, (double)atomic_load(&c_busy));
    prom_head(o, "kvgate_bypass_unframed_total", "counter",
              "Spliced bypass connections whose later requests XDP stopped counting, by why "
              "(a body not framed by Content-Length, a head split across segments, ...).");
    for (unsigned i = 1; i <= DECIDE_UF_MAX; i++) {
        sbuf_printf(o, "kvgate_bypass_unframed_total{reason=\"%s\"}", decide_unframed_name(i));
        prom_value(o, (double)atomic_load(&c_unframed[i]));
    }
    prom_head(o, "kvgate_bypass_handup_answers_total", "counter",
              "Decisions answered HANDUP: the request is not for the bypass by kvgated's "
              "rules, and its worker hands the connection up to kvgated (path handup).");
    for (unsigned i = 1; i <= DECIDE_HU_MAX; i++) {
        sbuf_printf(o, "kvgate_bypass_handup_answers_total{cause=\"%s\"}", decide_handup_name(i));
        prom_value(o, (double)atomic_load(&c_handup[i]));
    }
    prom_head(o, "kvgate_bypass_released_total", "counter",
              "Requests released because their bypass worker's connection closed before DONE.");
    sbuf_puts(o, "kvgate_bypass_released_total");
    prom_value(o, (double)atomic_load(&c_released));
    prom_head(o, "kvgate_bypass_protocol_errors_total", "counter",
              "Decision-channel packets refused (malformed, out of order, unknown type); each "
              "closes its worker's connection.");
    sbuf_puts(o, "kvgate_bypass_protocol_errors_total");
    prom_value(o, (double)atomic_load(&c_protocol));
    prom_head(o, "kvgate_bypass_stray_total", "counter",
              "BODY or DONE packets for a decision kvgated had already ended (dropped).");
    sbuf_puts(o, "kvgate_bypass_stray_total");
    prom_value(o, (double)atomic_load(&c_stray));
    prom_head(o, "kvgate_bypass_over_limit_total", "counter",
              "DECIDEs refused with 503: the worker held bypass.max_outstanding already.");
    sbuf_puts(o, "kvgate_bypass_over_limit_total");
    prom_value(o, (double)atomic_load(&c_over_limit));
}
