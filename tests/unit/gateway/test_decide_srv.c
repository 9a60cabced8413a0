/* Unit tests for user/gateway/decide_srv.c, kvgated's end of the bypass
 * decision channel, over a real gateway state (gw_fixture.h: pods 0 and 1
 * serve "m" over IPv4, pod 2 serves "v6" over IPv6):
 *   - handler level (the statics, a socketpair as the worker): a routed
 *     request counts in flight until DONE and in the metrics with path
 *     bypass; a repeated prefix goes where the first went; a body in
 *     chunks; 404, 400, 413, an IPv6 pod (503), the outstanding bound;
 *     protocol breaches (BODY out of order, DONE for another pod, an id
 *     in use) close; a closing peer releases what it held;
 *   - version 3: a worker that can hand up is answered HANDUP (cause
 *     session, model) for what kvgated's splice rules keep, with nothing
 *     in flight, held or counted as a bypass request; the same request
 *     from a worker that cannot (no flag, version 2) is routed;
 *   - end to end in one process: decide_srv_start's thread and listener,
 *     user/bypass/decide_cli as the worker. */
#include "gateway/decide_srv.c"
#include "harness.h"
#include "gw_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "bypass/decide_cli.h"
#include "common/sbuf.h"

static struct gw g;

#define BODY(model, text) "{\"model\":\"" model "\",\"messages\":[{\"role\":\"user\",\"content\":\"" text "\"}]}"
#define LONGP "a long shared system prompt that spans several of the fingerprint's 64-byte blocks, so that the prefix index has something to credit and to find again"

static void setup_once(void)
{
    gw_fixture_init(&g);
    g.cfg.bypass_max_outstanding = 3;
    g.cfg.max_body_bytes = 4096;
    struct pod_snapshot *s = snapshot_new(3);
    for (int i = 0; i < 3; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = (uint32_t)i;
        snprintf(p->name, sizeof(p->name), "pod%d", i);
        p->healthy = p->metrics_ok = 1;
        p->nmodels = 1;
        p->port = 8000;
        if (i < 2) {
            strcpy(p->models[0], "m");
            struct sockaddr_in *sin = (struct sockaddr_in *)&p->addr;
            sin->sin_family = AF_INET;
            sin->sin_port = htons(8000);
            sin->sin_addr.s_addr = htonl(0x0A000001u + (uint32_t)i);
            p->addrlen = sizeof(*sin);
        } else {
            strcpy(p->models[0], "v6");
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&p->addr;
            s6->sin6_family = AF_INET6;
            s6->sin6_port = htons(8000);
            p->addrlen = sizeof(*s6);
        }
    }
    snapshot_publish(s);
    D.g = &g;
    D.s.l = ev_new();
}

static int sv[2];

static struct dpeer *peer(void)
{
    CHECK_EQ(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
    struct dpeer *p = kv_calloc(1, sizeof(*p));
    p->ocap = g.cfg.bypass_max_outstanding + 64;
    p->outq = kv_calloc(p->ocap, sizeof(*p->outq));
    p->fd = sv[0];
    D.peers[0] = p;
    atomic_fetch_add(&c_peers_now, 1);
    return p;
}

/* The next answer the worker reads (type 0 when none). */
static struct decide_msg read_answer(void)
{
    static uint8_t b[512];
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    ssize_t n = recv(sv[1], b, sizeof(b), MSG_DONTWAIT);
    if (n > 0)
        CHECK_EQ(decide_decode(b, (size_t)n, &m), 0);
    return m;
}

static struct decide_msg decide(uint32_t id, const char *body, uint32_t first, const char *session)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_DECIDE;
    m.id = id;
    m.proto = DECIDE_PROTO_H1;
    strcpy(m.tenant, "chat");
    snprintf(m.session, sizeof(m.session), "%s", session ? session : "");
    m.body_len = strlen(body);
    m.chunk = (const uint8_t *)body;
    m.chunk_len = first;
    return m;
}

static struct decide_msg done(uint32_t id, uint32_t slot, unsigned outcome)
{
    struct decide_msg m;
    memset(&m, 0, sizeof(m));
    m.type = DECIDE_T_DONE;
    m.id = id;
    m.slot = slot;
    m.outcome = (uint8_t)outcome;
    m.http_status = 200;
    return m;
}

static unsigned inflight(uint32_t slot) { return atomic_load(&g.counters.inflight[slot]); }

static int metrics_have(const char *line)
{
    struct sbuf o;
    sbuf_init(&o);
    gw_metrics_render(g.metrics, NULL, &g.counters, &g.tl, ev_now_ns(), &o);
    int ok = o.data && strstr(o.data, line) != NULL;
    sbuf_free(&o);
    return ok;
}

/* A REQS for decision id on slot (its totals 0, as the caller sets them). */
static struct decide_msg reqs(uint32_t id, uint32_t slot)
{
    struct decide_msg q;
    memset(&q, 0, sizeof(q));
    q.type = DECIDE_T_REQS;
    q.id = id;
    q.slot = slot;
    return q;
}

/* A DECIDE of body b in one packet, handled; the answer the worker reads. */
static struct decide_msg decided(struct dpeer *p, uint32_t id, const char *b)
{
    struct decide_msg m = decide(id, b, (uint32_t)strlen(b), NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    return read_answer();
}

/* A DECIDE of body b answered 200 (*a), and kvgated's decision for it. */
static struct dpend *routed(struct dpeer *p, uint32_t id, const char *b, struct decide_msg *a)
{
    *a = decided(p, id, b);
    CHECK_EQ(a->status, 200);
    struct dpend *d = find(p, id);
    CHECK(d != NULL);
    return d;
}

TEST(routed_until_done_and_counted)
{
    struct dpeer *p = peer();
    struct decide_msg m, a = decided(p, 1, BODY("m", LONGP " one"));
    CHECK_EQ(a.type, DECIDE_T_ANSWER);
    CHECK_EQ(a.status, 200);
    CHECK(a.slot < 2);
    CHECK_EQ(a.port, 8000);
    CHECK_EQ(a.addr[0], 10);
    CHECK_EQ(a.addr[3], a.slot + 1);
    CHECK_EQ(inflight(a.slot), 1);
    CHECK_EQ(p->n, 1);
    /* version 4: the connection idle between requests is not in flight,
     * busy again it is; its DONE while idle releases nothing twice */
    struct decide_msg q = reqs(1, a.slot);
    q.idle = 1;
    CHECK_EQ(on_reqs(p, &q), 0);
    CHECK_EQ(inflight(a.slot), 0);
    CHECK_EQ(on_reqs(p, &q), 0); /* said twice: once */
    CHECK_EQ(inflight(a.slot), 0);
    q.idle = 0;
    CHECK_EQ(on_reqs(p, &q), 0);
    CHECK_EQ(inflight(a.slot), 1);
    q.idle = 1;
    CHECK_EQ(on_reqs(p, &q), 0);
    CHECK_EQ(inflight(a.slot), 0);
    CHECK_EQ(atomic_load(&c_idle), 2);
    CHECK_EQ(atomic_load(&c_busy), 1);
    m = done(1, a.slot, DECIDE_OK);
    CHECK_EQ(on_done(p, &m), 0);
    CHECK_EQ(inflight(a.slot), 0);
    CHECK_EQ(p->n, 0);
    CHECK(metrics_have("kvgate_requests_by_path_total{path=\"bypass\"} 1"));
    /* the same prefix again: the same pod, for its prefix */
    const char *b2 = BODY("m", LONGP " two");
    m = decide(2, b2, 10, NULL); /* and in chunks */
    CHECK_EQ(on_decide(p, &m), 0);
    CHECK_EQ(read_answer().type, 0); /* nothing until the body is whole */
    struct decide_msg c;
    memset(&c, 0, sizeof(c));
    c.type = DECIDE_T_BODY;
    c.id = 2;
    c.offset = 10;
    c.chunk = (const uint8_t *)b2 + 10;
    c.chunk_len = (uint32_t)strlen(b2) - 10;
    CHECK_EQ(on_body(p, &c), 0);
    struct decide_msg a2 = read_answer();
    CHECK_EQ(a2.status, 200);
    CHECK_EQ(a2.slot, a.slot);
    struct dpend *d = find(p, 2);
    /* the fixture's pods have no scraped metrics (the policy runs
     * degraded), but the index matched the whole prefix on that pod */
    CHECK(d && d->r.d.blocks >= 2 && d->r.d.prefix_blocks == d->r.d.blocks);
    /* a DONE naming another pod breaks the contract */
    m = done(2, 1 - a.slot, DECIDE_OK);
    CHECK_EQ(on_done(p, &m), -1);
    /* a closing peer releases what it held */
    uint64_t rel = atomic_load(&c_released);
    peer_close(p, "bypass_worker_gone");
    CHECK_EQ(inflight(a.slot), 0);
    CHECK_EQ(atomic_load(&c_released), rel + 1);
    close(sv[1]);
}

/* Version 5: the later requests' body bytes, a total modulo 2^32 from
 * the worker, become kvgate_bypass_request_body_bytes_total and the
 * connection's conn_body_bytes: the difference counts (across the wrap),
 * at most max_body_bytes (4096 here) for each request counted. */
TEST(reqs_body_bytes_counted_across_the_wrap_and_capped)
{
    struct dpeer *p = peer();
    struct decide_msg m, a;
    struct dpend *d = routed(p, 7, BODY("m", LONGP " body"), &a);
    if (!d)
        return;
    struct decide_msg q = reqs(7, a.slot);
    q.requests = 2;
    q.body = 5000;
    CHECK_EQ(on_reqs(p, &q), 0);
    CHECK_EQ(d->r.conn_requests, 2);
    CHECK_EQ(d->r.conn_body_bytes, 5000);
    char line[256]; /* the flow's series: its first request's labels, its pod */
    snprintf(line, sizeof(line),
             "kvgate_bypass_request_body_bytes_total{model=\"other\",tenant=\"chat\",pod=\"%s\"} 5000.0\n",
             d->r.pod.name);
    CHECK(metrics_have(line));
    CHECK_EQ(on_reqs(p, &q), 0); /* the same total again: nothing more */
    CHECK_EQ(d->r.conn_body_bytes, 5000);
    /* a total that wrapped past 2^32 since the last report */
    d->reqs_body = 0xFFFFF000u;
    q.requests = 4;
    q.body = 0x800;
    CHECK_EQ(on_reqs(p, &q), 0);
    CHECK_EQ(d->r.conn_body_bytes, 5000 + 0x1000 + 0x800);
    /* more than 4 requests' worth: capped at 4 x 4096 */
    q.body = 0x800 + 100000;
    CHECK_EQ(on_reqs(p, &q), 0);
    CHECK_EQ(d->r.conn_body_bytes, 4 * 4096);
    snprintf(line, sizeof(line),
             "kvgate_bypass_request_body_bytes_total{model=\"other\",tenant=\"chat\",pod=\"%s\"} 16384.0\n",
             d->r.pod.name);
    CHECK(metrics_have(line));
    m = done(7, a.slot, DECIDE_OK);
    CHECK_EQ(on_done(p, &m), 0);
    peer_close(p, "test_end");
    close(sv[1]);
}

/* kvgate_completion_tokens_total of tenant "chat", estimated, summed
 * over its series. */
static double chat_completion_estimated(void)
{
    struct sbuf o;
    sbuf_init(&o);
    gw_metrics_render(g.metrics, NULL, &g.counters, &g.tl, ev_now_ns(), &o);
    double sum = 0;
    char *save = NULL;
    for (char *l = o.data ? strtok_r(o.data, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        char *v = strstr(l, "} ");
        if (!strncmp(l, "kvgate_completion_tokens_total{", 31) && v &&
            strstr(l, "tenant=\"chat\"") && strstr(l, "estimated=\"true\""))
            sum += strtod(v + 2, NULL);
    }
    sbuf_free(&o);
    return sum;
}

/* kvgate_time_to_first_token_seconds of tenant "chat": observations and
 * their sum, over its series. */
static void chat_ttft(double *count, double *sum)
{
    struct sbuf o;
    sbuf_init(&o);
    gw_metrics_render(g.metrics, NULL, &g.counters, &g.tl, ev_now_ns(), &o);
    *count = *sum = 0;
    char *save = NULL;
    for (char *l = o.data ? strtok_r(o.data, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        char *v = strstr(l, "} ");
        if (!v || !strstr(l, "tenant=\"chat\""))
            continue;
        if (!strncmp(l, "kvgate_time_to_first_token_seconds_count{", 41))
            *count += strtod(v + 2, NULL);
        if (!strncmp(l, "kvgate_time_to_first_token_seconds_sum{", 39))
            *sum += strtod(v + 2, NULL);
    }
    sbuf_free(&o);
}

/* Version 7: the times to first token XDP took (running totals modulo
 * 2^32) are observed in the TTFT histogram at the mean of those reported
 * together, at most one per request counted (the first included: its
 * time comes this way when its answer had not begun at the hand-off),
 * none longer than the connection is old. */
TEST(v7_reqs_ttft_observed)
{
    struct dpeer *p = peer();
    struct decide_msg m, a;
    struct dpend *d = routed(p, 12, BODY("m", LONGP " ttft"), &a);
    if (!d)
        return;
    d->r.t_start = ev_now_ns() - 10ull * 1000000000; /* a connection 10 s old */
    double c0, s0, c1, s1;
    chat_ttft(&c0, &s0);
    struct decide_msg q = reqs(12, a.slot);
    q.requests = 2;
    q.rq_ttft_n = 2;
    q.rq_ttft_us = 300000; /* 0.15 s each */
    CHECK_EQ(on_reqs(p, &q), 0);
    chat_ttft(&c1, &s1);
    CHECK_EQ(c1 - c0, 2);
    CHECK(s1 - s0 > 0.299 && s1 - s0 < 0.301);
    CHECK_EQ(on_reqs(p, &q), 0); /* the same totals again: nothing more */
    chat_ttft(&c1, &s1);
    CHECK_EQ(c1 - c0, 2);
    /* totals that wrapped past 2^32; more timed than requests: only up to
     * one per request (the first and 3 later counted, 2 observed before),
     * each at the mean of all 3 reported (0.5 s) */
    d->ttft_us = 0xFFFFFF00u;
    q.requests = 3;
    q.rq_ttft_n = 5;
    q.rq_ttft_us = 1500000 - 0x100; /* 1.5 s in all since the last */
    double before = s1;
    CHECK_EQ(on_reqs(p, &q), 0);
    chat_ttft(&c1, &s1);
    CHECK_EQ(c1 - c0, 4);
    CHECK(s1 - before > 0.999 && s1 - before < 1.001);
    CHECK_EQ(atomic_load(&c_ttft_implausible), 1);
    /* a time longer than the connection's age is cut to it */
    q.requests = 4;
    q.rq_ttft_n = 6;
    q.rq_ttft_us += 60u * 1000000; /* one of 60 s on a 10 s connection */
    before = s1;
    CHECK_EQ(on_reqs(p, &q), 0);
    chat_ttft(&c1, &s1);
    CHECK_EQ(c1 - c0, 5);
    CHECK(s1 - before > 9.9 && s1 - before < 10.1);
    m = done(12, a.slot, DECIDE_OK);
    CHECK_EQ(on_done(p, &m), 0);
    peer_close(p, "test_end");
    close(sv[1]);
}

#define SBODY(text) "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"" text "\"}]}"

/* Version 6: the connection's answer events in DONE become its estimated
 * tokens: completion = events less one per answer for a chat stream's
 * role event (and one more for include_usage's chunk), the answers being
 * the first and the later ones counted; prompt and cached are the first
 * request's. Not for a request that is not a stream, no events, or a
 * worker below version 6. */
TEST(v6_done_events_become_estimated_tokens)
{
    struct dpeer *p = peer();
    p->version = 6;
    struct decide_msg m, a = decided(p, 11, SBODY(LONGP " stream"));
    CHECK_EQ(a.status, 200);
    struct dpend *d = find(p, 11);
    CHECK(d != NULL);
    if (!d)
        return;
    CHECK(d->r.stream && d->r.chat && d->r.prompt_tokens > 0);
    bypass_tokens(d, 0);
    CHECK_EQ(d->r.tokens.src, GW_USAGE_NONE);
    struct decide_msg q = reqs(11, a.slot);
    q.requests = 2; /* three answers */
    CHECK_EQ(on_reqs(p, &q), 0);
    bypass_tokens(d, 3 + 30);
    CHECK_EQ(d->r.tokens.src, GW_USAGE_ESTIMATED);
    CHECK_EQ(d->r.tokens.completion, 30);
    CHECK_EQ(d->r.tokens.prompt, d->r.prompt_tokens);
    CHECK(d->r.d.blocks > 0);
    CHECK_EQ(d->r.tokens.cached,
             (uint64_t)((double)d->r.prompt_tokens * d->r.d.prefix_blocks / d->r.d.blocks));
    d->r.include_usage = 1; /* a usage chunk in each answer too */
    bypass_tokens(d, 6 + 30);
    CHECK_EQ(d->r.tokens.completion, 30);
    bypass_tokens(d, 2); /* fewer than the answers' bare events: none */
    CHECK_EQ(d->r.tokens.completion, 0);
    d->r.include_usage = -1;
    double c0 = chat_completion_estimated();
    m = done(11, a.slot, DECIDE_OK);
    m.events = 3 + 30;
    m.bytes_out = 100000;
    CHECK_EQ(on_done(p, &m), 0);
    CHECK_EQ(chat_completion_estimated() - c0, 30);
    /* more events than the answer bytes could hold (7 a piece): bounded */
    a = decided(p, 14, SBODY(LONGP " bounded"));
    m = done(14, a.slot, DECIDE_OK);
    m.events = 1000000;
    m.bytes_out = 7 * 13; /* 13 events at most, 1 of them the role's */
    CHECK_EQ(on_done(p, &m), 0);
    CHECK_EQ(chat_completion_estimated() - c0, 30 + 12);
    c0 += 12;
    /* not a stream: nothing, whatever the events */
    a = decided(p, 12, BODY("m", LONGP " whole"));
    m = done(12, a.slot, DECIDE_OK);
    m.events = 40;
    m.bytes_out = 100000;
    CHECK_EQ(on_done(p, &m), 0);
    CHECK_EQ(chat_completion_estimated() - c0, 30);
    /* a worker below version 6 carries no events (the codec refuses them) */
    p->version = 5;
    a = decided(p, 13, SBODY(LONGP " older"));
    m = done(13, a.slot, DECIDE_OK);
    m.events = 40;
    m.bytes_out = 100000;
    CHECK_EQ(on_done(p, &m), 0);
    CHECK_EQ(chat_completion_estimated() - c0, 30);
    peer_close(p, "test_end");
    close(sv[1]);
}

TEST(refusals_answered_and_nothing_held)
{
    struct dpeer *p = peer();
    const char *nm = BODY("nope", "x");
    struct decide_msg m = decide(1, nm, (uint32_t)strlen(nm), NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    struct decide_msg a = read_answer();
    CHECK_EQ(a.status, 404);
    CHECK_STR(a.err, "The model `nope` does not exist.");
    const char *bad = "{\"messages\":[]}";
    m = decide(2, bad, (uint32_t)strlen(bad), NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    CHECK_EQ(read_answer().status, 400);
    m = decide(3, nm, 1, NULL);
    m.body_len = 5000; /* over limits.max_body_bytes (4096 here) */
    CHECK_EQ(on_decide(p, &m), 0);
    CHECK_EQ(read_answer().status, 413);
    const char *v6 = BODY("v6", "x");
    m = decide(4, v6, (uint32_t)strlen(v6), NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    a = read_answer();
    CHECK_EQ(a.status, 503);
    CHECK(strstr(a.err, "not IPv4") != NULL);
    CHECK_EQ(inflight(2), 0);
    CHECK_EQ(p->n, 0);
    /* a BODY for a decision already ended is dropped, not a breach */
    struct decide_msg c;
    memset(&c, 0, sizeof(c));
    c.type = DECIDE_T_BODY;
    c.id = 3;
    c.offset = 1;
    c.chunk = (const uint8_t *)"x";
    c.chunk_len = 1;
    CHECK_EQ(on_body(p, &c), 0);
    peer_close(p, "bypass_worker_gone");
    close(sv[1]);
}

TEST(bounds_and_breaches)
{
    struct dpeer *p = peer();
    const char *b = BODY("m", "bounded");
    struct decide_msg m;
    for (uint32_t id = 1; id <= 4; id++) {
        m = decide(id, b, (uint32_t)strlen(b), NULL);
        CHECK_EQ(on_decide(p, &m), 0);
        CHECK_EQ(read_answer().status, id <= 3 ? 200 : 503);
    }
    CHECK_EQ(p->n, 3);
    CHECK_EQ(inflight(0) + inflight(1), 3);
    m = decide(2, b, (uint32_t)strlen(b), NULL); /* an id in use */
    CHECK_EQ(on_decide(p, &m), -1);
    peer_close(p, "bypass_worker_gone");
    CHECK_EQ(inflight(0) + inflight(1), 0);
    close(sv[1]);

    p = peer();
    m = decide(9, b, 5, NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    struct decide_msg c;
    memset(&c, 0, sizeof(c));
    c.type = DECIDE_T_BODY;
    c.id = 9;
    c.offset = 6; /* a gap */
    c.chunk = (const uint8_t *)b + 6;
    c.chunk_len = 3;
    CHECK_EQ(on_body(p, &c), -1);
    c.offset = 5;
    c.chunk_len = (uint32_t)strlen(b); /* past the announced length */
    CHECK_EQ(on_body(p, &c), -1);
    peer_close(p, "bypass_worker_gone");
    close(sv[1]);
}

static uint64_t handups(unsigned cause) { return atomic_load(&c_handup[cause]); }

TEST(v3_handup_for_what_kvgated_keeps)
{
    struct dpeer *p = peer();
    p->version = 3;
    const char *b = BODY("m", "handed up");
    uint64_t s0 = handups(DECIDE_HU_SESSION), m0 = handups(DECIDE_HU_MODEL);
    uint64_t r0 = atomic_load(&c_answers[ST_200]);
    /* no session: handed up */
    struct decide_msg m = decide(1, b, (uint32_t)strlen(b), NULL);
    m.version = 3;
    m.flags = DECIDE_F_HANDUP;
    CHECK_EQ(on_decide(p, &m), 0);
    struct decide_msg a = read_answer();
    CHECK_EQ(a.version, 3);
    CHECK_EQ(a.status, DECIDE_STATUS_HANDUP);
    CHECK_STR(a.err, "session");
    CHECK_EQ(p->n, 0);
    CHECK_EQ(inflight(0) + inflight(1), 0);
    CHECK_EQ(handups(DECIDE_HU_SESSION), s0 + 1);
    /* a session, and splice.mode off for the model: handed up (model) */
    g.cfg.splice_mode = GW_SPLICE_OFF;
    m = decide(2, b, 5, "s-1"); /* the answer waits for the whole body */
    m.flags = DECIDE_F_HANDUP;
    CHECK_EQ(on_decide(p, &m), 0);
    CHECK_EQ(read_answer().type, 0);
    struct decide_msg c;
    memset(&c, 0, sizeof(c));
    c.type = DECIDE_T_BODY;
    c.id = 2;
    c.offset = 5;
    c.chunk = (const uint8_t *)b + 5;
    c.chunk_len = (uint32_t)strlen(b) - 5;
    CHECK_EQ(on_body(p, &c), 0);
    a = read_answer();
    CHECK_EQ(a.status, DECIDE_STATUS_HANDUP);
    CHECK_STR(a.err, "model");
    CHECK_EQ(handups(DECIDE_HU_MODEL), m0 + 1);
    /* splice.models overrides the mode: "m" on, so routed */
    g.cfg.nsplice_models = 1;
    snprintf(g.cfg.splice_models[0].model, sizeof(g.cfg.splice_models[0].model), "m");
    g.cfg.splice_models[0].mode = GW_SPLICE_ON;
    m = decide(3, b, (uint32_t)strlen(b), "s-1");
    m.flags = DECIDE_F_HANDUP;
    CHECK_EQ(on_decide(p, &m), 0);
    a = read_answer();
    CHECK_EQ(a.status, 200);
    CHECK_EQ(inflight(a.slot), 1);
    m = done(3, a.slot, DECIDE_OK);
    CHECK_EQ(on_done(p, &m), 0);
    g.cfg.nsplice_models = 0;
    g.cfg.splice_mode = GW_SPLICE_AUTO;
    /* auto: a policy that does not pin sessions, or shadows, keeps it too */
    struct policy_cfg keep = g.policies.global;
    for (int k = 0; k < 2; k++) {
        g.policies.global = keep;
        if (k == 0)
            g.policies.global.mode = POLICY_ROUND_ROBIN;
        else
            g.policies.global.shadow = 1;
        m = decide(10 + (uint32_t)k, b, (uint32_t)strlen(b), "s-1");
        m.flags = DECIDE_F_HANDUP;
        CHECK_EQ(on_decide(p, &m), 0);
        a = read_answer();
        CHECK_EQ(a.status, DECIDE_STATUS_HANDUP);
        CHECK_STR(a.err, "model");
    }
    g.policies.global = keep;
    CHECK_EQ(handups(DECIDE_HU_MODEL), m0 + 3);
    /* without the flag: routed as before, session or not */
    m = decide(4, b, (uint32_t)strlen(b), NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    a = read_answer();
    CHECK_EQ(a.status, 200);
    m = done(4, a.slot, DECIDE_OK);
    CHECK_EQ(on_done(p, &m), 0);
    CHECK_EQ(atomic_load(&c_answers[ST_200]), r0 + 2);
    /* rendered with the channel's metrics (as if its thread ran) */
    struct sbuf o;
    sbuf_init(&o);
    D.s.started = 1;
    decide_srv_metrics_render(&o);
    D.s.started = 0;
    char line[128];
    snprintf(line, sizeof(line), "kvgate_bypass_handup_answers_total{cause=\"model\"} %llu",
             (unsigned long long)handups(DECIDE_HU_MODEL));
    CHECK(o.data && strstr(o.data, line));
    CHECK(o.data && strstr(o.data, "kvgate_bypass_idle_transitions_total{to=\"idle\"} 2"));
    sbuf_free(&o);
    peer_close(p, "bypass_worker_gone");
    close(sv[1]);

    /* a version 2 worker: routed, answered in version 2 */
    p = peer();
    p->version = 2;
    m = decide(5, b, (uint32_t)strlen(b), NULL);
    CHECK_EQ(on_decide(p, &m), 0);
    a = read_answer();
    CHECK_EQ(a.version, 2);
    CHECK_EQ(a.status, 200);
    CHECK_EQ(inflight(a.slot), 1);
    peer_close(p, "bypass_worker_gone");
    CHECK_EQ(inflight(0) + inflight(1), 0);
    close(sv[1]);
}

static struct decide_msg got;
static int ngot;
static void on_ans(void *ctx, const struct decide_msg *a)
{
    got = *a;
    ngot++;
}

/* The real listener and thread, the worker's client library against it. */
TEST(thread_and_client_end_to_end)
{
    ev_free(D.s.l);
    D.s.l = NULL;
    snprintf(g.cfg.bypass_decide_socket, sizeof(g.cfg.bypass_decide_socket),
             "/tmp/test_decide_srv.%d.sock", (int)getpid());
    CHECK_EQ(decide_srv_start(&g), 0);
    struct dcli *c = dcli_new(g.cfg.bypass_decide_socket, 1 << 20);
    CHECK_EQ(dcli_poll(c, 1, on_ans, NULL), DCLI_EV_UP);
    const char *b = BODY("m", "through the thread");
    CHECK_EQ(dcli_decide(c, 42, DECIDE_PROTO_H1, "t", "", (const uint8_t *)b, strlen(b)), 0);
    for (int i = 0; i < 200 && !ngot; i++) {
        dcli_poll(c, 2, on_ans, NULL);
        usleep(5000);
    }
    CHECK_EQ(ngot, 1);
    CHECK_EQ(got.id, 42);
    CHECK_EQ(got.status, 200);
    CHECK_EQ(inflight(got.slot), 1);
    /* the worker goes away: released */
    dcli_free(c);
    for (int i = 0; i < 200 && inflight(got.slot); i++)
        usleep(5000);
    CHECK_EQ(inflight(got.slot), 0);
    decide_srv_stop();
    CHECK(access(g.cfg.bypass_decide_socket, F_OK) != 0);
}

int main(void)
{
    setup_once();
    RUN(routed_until_done_and_counted);
    RUN(reqs_body_bytes_counted_across_the_wrap_and_capped);
    RUN(v6_done_events_become_estimated_tokens);
    RUN(v7_reqs_ttft_observed);
    RUN(refusals_answered_and_nothing_held);
    RUN(bounds_and_breaches);
    RUN(v3_handup_for_what_kvgated_keeps);
    RUN(thread_and_client_end_to_end);
    return harness_done();
}
