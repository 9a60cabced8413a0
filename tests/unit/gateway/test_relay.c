/* Unit tests for user/gateway/relay.c and exchange.c: an exchange driven
 * through a fake sink (what a protocol would put on the wire) and a fake
 * upstream (this file defines up_start and the rest, so upstream.c is not
 * linked): local answers, the request the pod gets, the answer's fields,
 * SSE events held until whole, backpressure, pod failures before and
 * after the first byte, retries, client aborts. Routing is real (route.c,
 * core/policy.c) over a published snapshot of two pods. */
#include "harness.h"
#include "gw_fixture.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/http1.h"
#include "core/prefix_index.h"
#include "core/report.h"
#include "core/session.h"
#include "gateway/exchange.h"
#include "gateway/gwmetrics.h"
#include "gateway/upstream.h"

/* ---- the fake upstream ---- */

struct upconn {
    int n;                       /* which attempt (1, 2, ...) */
    uint32_t slot;
    int killed, released, paused, resumed, detached;
    const struct up_events *ev;
    void *owner;
    char head[4096];
    size_t body_len;
};

static struct upconn g_ups[8];
static int g_nups;
static int g_fail_start; /* up_start answers -ENOMEM */

int up_start(struct upstream *us, const struct pod_target *pod, int fresh_only,
             const struct up_request *rq, const struct up_events *ev, void *owner,
             struct upconn **out)
{
    if (g_fail_start || g_nups == 8)
        return -ENOMEM;
    struct upconn *u = &g_ups[g_nups++];
    memset(u, 0, sizeof(*u));
    u->n = g_nups;
    u->slot = pod->slot;
    u->ev = ev;
    u->owner = owner;
    size_t hl = rq->head_len < sizeof(u->head) - 1 ? rq->head_len : sizeof(u->head) - 1;
    memcpy(u->head, rq->head, hl);
    u->body_len = rq->body_len;
    *out = u;
    return 0;
}
void up_pause(struct upconn *u) { u->paused++; }
void up_resume(struct upconn *u) { u->resumed++; }
void up_kill(struct upconn *u) { u->killed++; }
void up_release(struct upconn *u) { u->released++; }
int up_reusable(const struct upconn *u) { return 1; }
int up_detach_fd(struct upconn *u) { u->detached++; return -1; }
uint32_t up_slot(const struct upconn *u) { return u->slot; }

/* ---- the fake sink ---- */

struct fx {
    struct xreq x;
    int status, ended, aborted, detached, flushes;
    int64_t clen;
    struct sbuf hdrs, body;
    size_t pending;              /* what the client has not taken */
};

static struct fx *fx_of(struct xreq *x) { return (struct fx *)x; }
static void s_head(struct xreq *x, int st, const char *h, size_t hl, int64_t clen)
{
    fx_of(x)->status = st;
    fx_of(x)->clen = clen;
    sbuf_append(&fx_of(x)->hdrs, h, hl);
}
static void s_body(struct xreq *x, const char *p, size_t n)
{
    sbuf_append(&fx_of(x)->body, p, n);
    fx_of(x)->pending += n;
}
static void s_end(struct xreq *x) { fx_of(x)->ended++; }
static void s_abort(struct xreq *x) { fx_of(x)->aborted++; }
static size_t s_pending(const struct xreq *x) { return fx_of((struct xreq *)x)->pending; }
static void s_flush(struct xreq *x) { fx_of(x)->flushes++; }
static void s_detach(struct xreq *x) { fx_of(x)->detached++; }
static const struct xsink_ops sink = { s_head, s_body, s_end, s_abort, s_pending, s_flush,
                                       s_detach };

/* ---- the gateway around it ---- */

#define MODEL "llama"
static struct gw g;
static struct wctx wc;
static struct xconn xc;

static void setup_once(void)
{
    gw_fixture_init(&g);
    struct pod_snapshot *s = snapshot_new(2);
    for (int i = 0; i < 2; i++) {
        struct pod_info *p = &s->pods[i];
        p->slot = (uint32_t)i;
        snprintf(p->name, sizeof(p->name), "pod%d", i);
        snprintf(p->host, sizeof(p->host), "10.0.0.%d", i + 1);
        p->port = 8000;
        struct sockaddr_in *a = (struct sockaddr_in *)&p->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons(8000);
        a->sin_addr.s_addr = htonl(0x0a000001 + (uint32_t)i);
        p->addrlen = sizeof(*a);
        p->healthy = p->metrics_ok = 1;
        p->nmodels = 1;
        strcpy(p->models[0], MODEL);
    }
    snapshot_publish(s);
    wc.l = ev_new();
    wc.g = &g;
    gy_init(&wc.gy, wc.l);
    xc.wc = &wc;
    strcpy(xc.peer, "192.0.2.7");
}

static void reset(void)
{
    g_nups = 0;
    g_fail_start = 0;
    g.cfg.max_buffered_bytes = 1 << 20;
    memset(&g.counters, 0, sizeof(g.counters));
    outlier_init(&g.outlier, &g.cfg.outlier);
}

static struct fx *request(const char *method, const char *path, const char *body)
{
    struct fx *f = calloc(1, sizeof(*f));
    x_init(&f->x, &xc, &sink);
    sbuf_init(&f->hdrs);
    sbuf_init(&f->body);
    x_set_method(&f->x, method, strlen(method));
    x_set_path(&f->x, path, strlen(path));
    x_add_header(&f->x, "Content-Type", 12, "application/json", 16);
    if (body)
        CHECK_EQ(x_body_feed(&f->x, body, strlen(body)), 0);
    return f;
}

static void done(struct fx *f)
{
    x_kill(&f->x);
    x_fini(&f->x);
    sbuf_free(&f->hdrs);
    sbuf_free(&f->body);
    free(f);
}

static const char *CHAT = "{\"model\":\"" MODEL "\",\"stream\":true,"
                          "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

/* a parsed answer head for the fake upstream's `head` event */
static void head(struct upconn *u, const char *raw)
{
    struct http1_response rh;
    int n = http1_parse_response(raw, strlen(raw), 65536, &rh);
    CHECK(n > 0);
    u->ev->head(u->owner, u, &rh, rh.status != 204, 0);
}

static const char *SSE_HEAD = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                              "Transfer-Encoding: chunked\r\nX-Pod: a\r\nConnection: x-pod\r\n\r\n";

/* ---- tests ---- */

TEST(local_answers)
{
    reset();
    struct fx *f = request("GET", "/health", NULL);
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 200);
    CHECK(strstr(f->body.data, "\"ok\"") != NULL);
    CHECK_EQ(f->ended, 1);
    CHECK_EQ(f->detached, 1);
    CHECK(f->x.done && f->x.dead);
    done(f);
    f = request("HEAD", "/health", NULL);
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 200);
    CHECK_EQ(f->clen, 15); /* GET's length, no body */
    CHECK_EQ(f->body.len, 0);
    done(f);
    f = request("GET", "/v1/chat/completions", NULL);
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 405);
    CHECK(strstr(f->hdrs.data, "allow: POST") != NULL);
    CHECK(strstr(f->body.data, "\"type\":\"MethodNotAllowedError\"") != NULL);
    done(f);
    f = request("POST", "/admin/faults", "{}");
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 404);
    CHECK_EQ(g_nups, 0); /* no pod was asked */
    done(f);
    wc.draining = 1;
    f = request("GET", "/health", NULL);
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 503);
    wc.draining = 0;
    done(f);
}

TEST(bad_bodies_and_unknown_models)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", "{\"model\":");
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 400);
    CHECK(strstr(f->body.data, "at byte") != NULL);
    done(f);
    f = request("POST", "/v1/chat/completions", "{\"model\":\"gpt-9\",\"prompt\":\"x\"}");
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 404);
    CHECK(strstr(f->body.data, "gpt-9") != NULL);
    CHECK_EQ(g_nups, 0);
    done(f);
}

TEST(the_request_the_pod_gets)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions?x=1", NULL);
    x_add_header(&f->x, "X-Secret", 8, "s", 1);
    x_add_header(&f->x, "Connection", 10, "keep-alive, x-secret", 20);
    x_add_header(&f->x, "X-Forwarded-For", 15, "203.0.113.1", 11);
    x_add_header(&f->x, "Keep-Alive", 10, "timeout=5", 9);
    x_add_header(&f->x, "X-Keep", 6, "k", 1);
    CHECK_EQ(x_body_feed(&f->x, CHAT, strlen(CHAT)), 0);
    x_dispatch(&f->x);
    CHECK_EQ(g_nups, 1);
    const char *h = g_ups[0].head;
    CHECK(strncmp(h, "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: 10.0.0.", 53) == 0);
    CHECK(strstr(h, "X-Keep: k\r\n") != NULL);
    CHECK(strstr(h, "X-Secret") == NULL);   /* named in Connection */
    CHECK(strstr(h, "Keep-Alive") == NULL); /* hop-by-hop */
    CHECK(strstr(h, "X-Forwarded-For: 203.0.113.1, 192.0.2.7\r\n") != NULL);
    char cl[64];
    snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", strlen(CHAT));
    CHECK(strstr(h, cl) != NULL);
    CHECK_EQ(g_ups[0].body_len, strlen(CHAT));
    CHECK(f->x.r.routed);
    done(f);
    CHECK_EQ(g_ups[0].killed, 1); /* ended with the attempt under way: aborted */
}

TEST(sse_answer_relayed_whole_events)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    struct upconn *u = &g_ups[0];
    head(u, SSE_HEAD);
    CHECK_EQ(f->status, 200);
    CHECK_EQ(f->clen, -1);
    CHECK(strstr(f->hdrs.data, "x-gateway-destination-endpoint: 10.0.0.") != NULL);
    CHECK(strstr(f->hdrs.data, "transfer-encoding") == NULL);
    CHECK(strstr(f->hdrs.data, "x-pod") == NULL); /* named in the pod's Connection */
    CHECK(f->flushes >= 1);                     /* the head goes out before a token */
    u->ev->body(u->owner, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\nda", 49, 0);
    CHECK_EQ(f->body.len, 47); /* the partial event is held */
    CHECK_EQ(f->x.r.events, 1);
    CHECK(f->x.r.t_first_token != 0);
    u->ev->body(u->owner, "ta: [DONE]\n\n", 12, 1);
    CHECK_EQ(f->body.len, 47 + 14);
    u->ev->end(u->owner, u);
    CHECK_EQ(u->released, 1);
    CHECK_EQ(f->ended, 1);
    CHECK_EQ(f->aborted, 0);
    CHECK(f->x.done && f->x.dead);
    CHECK_EQ(f->x.r.status, 200);
    CHECK(f->x.r.outcome && !strcmp(f->x.r.outcome, "ok"));
    done(f);
}

/* accounting.request_usage: the pod is asked for usage, the client's
 * stream loses exactly the usage event, wherever the pod's reads split it
 * (and when it comes last without its blank line); the tokens are the
 * pod's. */
TEST(request_usage_drops_only_the_usage_event_at_any_split)
{
    static const char ROLE[] = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
    static const char TOK[] = "data: {\"choices\":[{\"delta\":{\"content\":\"usage\"}}]}\n\n";
    static const char USAGE[] = "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
                                "\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":4}}}";
    static const char DONE[] = "data: [DONE]\n\n";
    char stream[1024], want[1024];
    for (int last = 0; last < 2; last++) {
        /* last: the usage event ends the answer without its blank line */
        snprintf(stream, sizeof(stream), "%s%s%s%s", ROLE, TOK, USAGE, last ? "" : "\n\n");
        if (!last)
            strcat(stream, DONE);
        snprintf(want, sizeof(want), "%s%s%s", ROLE, TOK, last ? "" : DONE);
        size_t n = strlen(stream);
        for (size_t cut = 0; cut <= n; cut++) {
            reset();
            g.cfg.request_usage = 1;
            struct fx *f = request("POST", "/v1/chat/completions", CHAT);
            x_dispatch(&f->x);
            struct upconn *u = &g_ups[0];
            CHECK_EQ(u->body_len, strlen(CHAT) + strlen("\"stream_options\":{\"include_usage\":true},"));
            CHECK(strstr(u->head, "Content-Length: 115\r\n") != NULL);
            head(u, SSE_HEAD);
            if (cut)
                u->ev->body(u->owner, stream, cut, 0);
            u->ev->body(u->owner, stream + cut, n - cut, 1);
            u->ev->end(u->owner, u);
            CHECK_EQ(f->body.len, strlen(want));
            CHECK(f->body.data && !memcmp(f->body.data, want, strlen(want)));
            CHECK_EQ(f->x.r.tokens.src, GW_USAGE_REPORTED);
            CHECK_EQ(f->x.r.tokens.prompt, 12);
            CHECK_EQ(f->x.r.tokens.cached, 4);
            CHECK_EQ(f->x.r.events, last ? 2 : 3); /* [DONE] is a data event */
            CHECK_EQ(f->x.r.content_events, 1);
            done(f);
        }
    }
    /* without request_usage the same stream goes through whole */
    reset();
    g.cfg.request_usage = 0;
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    CHECK_EQ(g_ups[0].body_len, strlen(CHAT));
    head(&g_ups[0], SSE_HEAD);
    snprintf(stream, sizeof(stream), "%s%s%s\n\n%s", ROLE, TOK, USAGE, DONE);
    g_ups[0].ev->body(g_ups[0].owner, stream, strlen(stream), 1);
    g_ups[0].ev->end(g_ups[0].owner, &g_ups[0]);
    CHECK_EQ(f->body.len, strlen(stream));
    CHECK_EQ(f->x.r.tokens.src, GW_USAGE_REPORTED);
    done(f);
}

/* Lines of /metrics that are samples of family `fam` ("name{"). */
static int samples_of(const char *fam)
{
    struct sbuf o;
    sbuf_init(&o);
    gw_metrics_render(g.metrics, NULL, &g.counters, &g.tl, ev_now_ns(), &o);
    int n = 0;
    for (const char *p = o.data; p && (p = strstr(p, fam)); p += strlen(fam))
        n += p == o.data || p[-1] == '\n';
    sbuf_free(&o);
    return n;
}

/* One streamed answer with the pod's usage, one non-streamed one, one
 * stream without usage (estimated): the request's tokens as accounting
 * left them, in order. */
static void three_answers(enum gw_usage_src src[3], int content[3])
{
    static const char SSE[] = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                              "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,"
                              "\"completion_tokens\":1}}\n\ndata: [DONE]\n\n";
    static const char NOUSE[] = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                                "data: [DONE]\n\n";
    static const char JSON[] = "{\"choices\":[{\"message\":{\"content\":\"a\"}}],"
                               "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":1}}";
    static const char *const PLAIN = "{\"model\":\"" MODEL "\","
                                     "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    for (int i = 0; i < 3; i++) {
        reset();
        struct fx *f = request("POST", "/v1/chat/completions", i == 1 ? PLAIN : CHAT);
        x_dispatch(&f->x);
        struct upconn *u = &g_ups[0];
        const char *body = i == 0 ? SSE : i == 1 ? JSON : NOUSE;
        if (i == 1) {
            char h[256];
            snprintf(h, sizeof(h), "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                   "Content-Length: %zu\r\n\r\n", strlen(JSON));
            head(u, h);
        } else {
            head(u, SSE_HEAD);
        }
        u->ev->body(u->owner, body, strlen(body), 1);
        u->ev->end(u->owner, u);
        CHECK_EQ(f->status, 200);
        CHECK_EQ(f->body.len, strlen(body)); /* relayed whole either way */
        src[i] = f->x.r.tokens.src;
        content[i] = (int)f->x.r.content_events;
        done(f);
    }
}

/* accounting.enabled: on, the answers' tokens reach the token counters
 * and the report book; off, no token or cost counter moves, the report
 * gains no row and a rollout will not start, while requests are still
 * counted and content events timed. */
TEST(accounting_off_moves_no_token_counter)
{
    gw_metrics_free(g.metrics);
    g.metrics = gw_metrics_new();
    report_free(g.report);
    g.report = report_new();
    struct report_row rows[4];
    enum gw_usage_src src[3];
    int content[3];

    CHECK_EQ(g.cfg.accounting, 1); /* the default */
    three_answers(src, content);
    CHECK_EQ(src[0], GW_USAGE_REPORTED);
    CHECK_EQ(src[1], GW_USAGE_REPORTED);
    CHECK_EQ(src[2], GW_USAGE_ESTIMATED);
    CHECK(samples_of("kvgate_prompt_tokens_total{") >= 2); /* reported and estimated */
    CHECK_EQ(report_rows(g.report, rows, 4), 1);
    CHECK_EQ(rows[0].requests, 3);
    CHECK_EQ(rows[0].completion_tokens, 3);

    gw_metrics_free(g.metrics);
    g.metrics = gw_metrics_new();
    report_free(g.report);
    g.report = report_new();
    g.cfg.accounting = 0;
    three_answers(src, content);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(src[i], GW_USAGE_NONE);
        CHECK_EQ(content[i], i == 1 ? 0 : 1); /* the stream is still read for its events */
    }
    static const char *const fams[] = {
        "kvgate_prompt_tokens_total{", "kvgate_cached_prompt_tokens_total{",
        "kvgate_completion_tokens_total{", "kvgate_cost_tokens_total{", "kvgate_cost_total{",
    };
    for (size_t i = 0; i < sizeof(fams) / sizeof(fams[0]); i++)
        CHECK_EQ(samples_of(fams[i]), 0);
    CHECK(samples_of("kvgate_requests_total{") >= 1); /* requests still count */
    CHECK_EQ(report_rows(g.report, rows, 4), 0);
    g.cfg.accounting = 1;
}

TEST(backpressure_pauses_and_resumes_the_pod)
{
    reset();
    g.cfg.max_buffered_bytes = 100;
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    struct upconn *u = &g_ups[0];
    head(u, "HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n");
    char big[300];
    memset(big, 'x', sizeof(big));
    u->ev->body(u->owner, big, sizeof(big), 0);
    CHECK_EQ(u->paused, 1);
    CHECK(f->x.up_paused);
    f->pending = 60; /* the client took some: still above half */
    x_client_drained(&f->x);
    CHECK_EQ(u->resumed, 0);
    f->pending = 50;
    x_client_drained(&f->x);
    CHECK_EQ(u->resumed, 1);
    CHECK(!f->x.up_paused);
    done(f);
}

TEST(failure_before_the_first_byte_is_retried_elsewhere)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    struct upconn *u1 = &g_ups[0];
    u1->ev->fail(u1->owner, FK_CONNECT, 0, "connection refused");
    CHECK_EQ(g_nups, 2);
    if (g_nups < 2) {
        done(f);
        return;
    }
    CHECK(g_ups[1].slot != u1->slot); /* another pod */
    CHECK_EQ(f->x.r.retries, 1);
    CHECK_EQ(f->status, 0); /* nothing went to the client */
    /* the retry fails too: 502, final */
    struct upconn *u2 = &g_ups[1];
    u2->ev->fail(u2->owner, FK_RESET, 0, "connection reset");
    CHECK_EQ(g_nups, 2);
    CHECK_EQ(f->status, 502);
    CHECK(strstr(f->body.data, "\"type\":\"BadGatewayError\"") != NULL);
    CHECK(!strcmp(f->x.r.outcome, "pod_error"));
    done(f);
}

TEST(a_stale_keepalive_conn_is_retried_fresh_on_the_same_pod)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    uint32_t slot = g_ups[0].slot;
    g_ups[0].ev->fail(g_ups[0].owner, FK_RESET, 1 /* reused */, "connection closed");
    CHECK_EQ(g_nups, 2);
    CHECK_EQ(g_ups[1].slot, slot);
    CHECK_EQ(f->x.r.retries, 0); /* not the retry */
    done(f);
}

TEST(a_5xx_head_is_retried_then_relayed)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    head(&g_ups[0], "HTTP/1.1 503 Busy\r\ncontent-length: 2\r\n\r\n");
    CHECK_EQ(g_ups[0].killed, 1);
    CHECK_EQ(g_nups, 2);
    CHECK_EQ(f->status, 0);
    if (g_nups < 2) {
        done(f);
        return;
    }
    head(&g_ups[1], "HTTP/1.1 500 Oops\r\ncontent-length: 2\r\n\r\n");
    CHECK_EQ(f->status, 500); /* the retry's answer goes out as is */
    g_ups[1].ev->body(g_ups[1].owner, "{}", 2, 1);
    g_ups[1].ev->end(g_ups[1].owner, &g_ups[1]);
    CHECK_EQ(f->ended, 1);
    CHECK(!strcmp(f->x.r.outcome, "pod_error"));
    done(f);
}

TEST(a_head_timeout_is_not_retried)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    g_ups[0].ev->fail(g_ups[0].owner, FK_FB_TIMEOUT, 0, "no response head in time");
    CHECK_EQ(g_nups, 1);
    CHECK_EQ(f->status, 504);
    CHECK(!strcmp(f->x.r.outcome, "timeout"));
    done(f);
}

TEST(failure_after_the_first_byte)
{
    reset();
    /* SSE: one error event and [DONE], the stream ends (not cut) */
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    head(&g_ups[0], SSE_HEAD);
    g_ups[0].ev->body(g_ups[0].owner, "data: {\"x\":1}\n\n", 15, 0);
    g_ups[0].ev->fail(g_ups[0].owner, FK_STREAM_IDLE, 0, "idle");
    CHECK_EQ(g_nups, 1); /* never retried once the client has bytes */
    CHECK(strstr(f->body.data, "\"code\":504") != NULL);
    CHECK(strstr(f->body.data, "data: [DONE]\n\n") != NULL);
    CHECK_EQ(f->ended, 1);
    CHECK_EQ(f->aborted, 0);
    CHECK(!strcmp(f->x.r.error, "stream_idle_timeout"));
    done(f);
    /* a framed body cannot carry an error: cut */
    reset();
    f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    head(&g_ups[0], "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n");
    g_ups[0].ev->body(g_ups[0].owner, "{\"a\":", 5, 0);
    g_ups[0].ev->fail(g_ups[0].owner, FK_RESET, 0, "connection closed mid-body");
    CHECK_EQ(f->aborted, 1);
    CHECK_EQ(f->ended, 0);
    CHECK(!strcmp(f->x.r.outcome, "pod_error"));
    done(f);
}

TEST(local_resource_errors_blame_no_pod)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    uint32_t slot = g_ups[0].slot;
    g_ups[0].ev->fail(g_ups[0].owner, FK_LOCAL, 0, "out of file descriptors");
    CHECK_EQ(g_nups, 1);
    CHECK_EQ(f->status, 503);
    CHECK(strstr(f->body.data, "out of resources") != NULL);
    CHECK_EQ(atomic_load(&g.counters.down_until_ns[slot]), 0);
    CHECK_EQ(atomic_load(&g.counters.last_fail_ns[slot]), 0);
    done(f);
}

TEST(client_abort_drops_the_attempt)
{
    reset();
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    x_abort_client(&f->x);
    CHECK_EQ(g_ups[0].killed, 1);
    CHECK_EQ(f->x.r.status, 499);
    CHECK(!strcmp(f->x.r.outcome, "client_abort"));
    CHECK_EQ(atomic_load(&g.counters.inflight[g_ups[0].slot]), 0); /* released */
    done(f);
}

TEST(out_of_memory_starting_an_attempt)
{
    reset();
    g_fail_start = 1;
    struct fx *f = request("POST", "/v1/chat/completions", CHAT);
    x_dispatch(&f->x);
    CHECK_EQ(f->status, 502);
    CHECK(strstr(f->body.data, "out of memory") != NULL);
    CHECK_EQ(atomic_load(&g.counters.inflight[0]) + atomic_load(&g.counters.inflight[1]), 0);
    done(f);
}

/* Every allocation of a routed exchange's life failed in turn: each time
 * the exchange still ends one way (answered, or cut), the route is
 * released, and nothing it allocated is left. */
TEST(out_of_memory_anywhere_in_an_exchange)
{
    int ended_ok = 0, ended_err = 0;
    for (long n = 0; n < 400; n++) {
        reset();
        alloc_fail_never();
        long base = alloc_live();
        struct fx *f = request("POST", "/v1/chat/completions", CHAT);
        alloc_fail_after(n);
        x_dispatch(&f->x);
        if (g_nups == 1 && !f->x.done) {
            struct upconn *u = &g_ups[0];
            head(u, SSE_HEAD);
            static const char ev[] = "data: {\"choices\":[{\"text\":\"a\"}]}\n\n";
            if (!f->x.done)
                u->ev->body(u->owner, ev, sizeof(ev) - 1, 1);
            if (!f->x.done)
                u->ev->end(u->owner, u);
        }
        long failures = alloc_failures();
        alloc_fail_never();
        CHECK(f->x.done);                         /* ended, one way or another */
        CHECK_EQ(f->ended + f->aborted, 1);
        CHECK_EQ(atomic_load(&g.counters.inflight[0]) + atomic_load(&g.counters.inflight[1]), 0);
        if (f->status == 200 && f->ended)
            ended_ok++;
        else
            ended_err++;
        x_kill(&f->x);
        x_fini(&f->x);
        sbuf_free(&f->hdrs);
        sbuf_free(&f->body);
        CHECK_EQ(alloc_live(), base); /* everything the exchange allocated is back */
        alloc_unhook();
        free(f);
        if (failures == 0)
            break; /* n allocations were all it needed */
    }
    CHECK(ended_ok >= 1);  /* the last round succeeds */
    CHECK(ended_err >= 3); /* and several failed ones were answered */
}

int main(void)
{
    setup_once();
    RUN(local_answers);
    RUN(bad_bodies_and_unknown_models);
    RUN(the_request_the_pod_gets);
    RUN(sse_answer_relayed_whole_events);
    RUN(request_usage_drops_only_the_usage_event_at_any_split);
    RUN(accounting_off_moves_no_token_counter);
    RUN(backpressure_pauses_and_resumes_the_pod);
    RUN(failure_before_the_first_byte_is_retried_elsewhere);
    RUN(a_stale_keepalive_conn_is_retried_fresh_on_the_same_pod);
    RUN(a_5xx_head_is_retried_then_relayed);
    RUN(a_head_timeout_is_not_retried);
    RUN(failure_after_the_first_byte);
    RUN(local_resource_errors_blame_no_pod);
    RUN(client_abort_drops_the_attempt);
    RUN(out_of_memory_starting_an_attempt);
    RUN(out_of_memory_anywhere_in_an_exchange);
    return harness_done();
}
