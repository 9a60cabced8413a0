/* Unit tests for bench/loadgen/h2.c: the h2c transport driven by the real
 * runner against a scripted nghttp2 server on loopback, in the runner's own
 * event loop. The server answers each request with an SSE stream, or
 * misbehaves on its first connection (RST_STREAM mid-response, GOAWAY, a
 * dropped connection, silence), and counts connections, concurrent streams
 * and the RST_STREAMs it receives. */
#include "harness.h"

#include <arpa/inet.h>
#include <nghttp2/nghttp2.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "../../../bench/loadgen/h2.c"
#include "../../../bench/loadgen/ideal.c"
#include "../../../bench/loadgen/prompt.c"
#include "../../../bench/loadgen/run.c"
#include "../../../bench/loadgen/schedule.c"
#include "../../../bench/loadgen/sse.c"
#include "../../../bench/loadgen/stream.c"
#include "../../../bench/loadgen/workload.c"

/* run.c lists both transports; h1.c is not under test here */
const struct lg_transport lg_h1_transport = { .name = "http1" };

/* ---- the scripted server ---- */

enum srv_mode {
    M_OK,             /* every stream answered in full */
    M_RST,            /* first connection: head + one event, then RST_STREAM */
    M_GOAWAY_REFUSE,  /* first connection: GOAWAY last 0 (nothing processed) */
    M_GOAWAY_PARTIAL, /* first connection: stream 1 half answered, GOAWAY last 1, close */
    M_DROP,           /* first connection: head + one event each, then close */
    M_SILENT,         /* no answer ever */
};

/* the role event and the first content event: what a misbehaving answer sends */
#define SSE_FIRST                                                                          \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n" \
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\n\n"
static const char SSE_BODY[] =
    SSE_FIRST
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n"
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"}}]}\n\n"
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":3,"
    "\"prompt_tokens_details\":{\"cached_tokens\":16}}}\n\n"
    "data: [DONE]\n\n";
#define FIRST_EVENTS (sizeof(SSE_FIRST) - 1)

struct srv {
    int lfd;
    uint16_t port;
    enum srv_mode mode;
    int accepted;
    int max_streams;  /* most streams open at once on one connection */
    int rst_recv;
    struct ev_loop *loop;
    struct sconn *conns[64];
};

struct sconn {
    struct srv *s;
    int fd, idx, open_streams, closing;
    nghttp2_session *ng;
    struct sstream *ss[16]; /* answers, freed with the connection */
    int nss;
};

struct sstream {
    const char *body;
    size_t len, off;
    int eof;
};

static int bad_conn(struct sconn *sc)
{
    return sc->idx == 0 && sc->s->mode != M_OK && sc->s->mode != M_SILENT;
}

static ssize_t srv_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
                        uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct sstream *ss = src->ptr;
    size_t n = ss->len - ss->off < length ? ss->len - ss->off : length;
    memcpy(buf, ss->body + ss->off, n);
    ss->off += n;
    if (ss->off == ss->len) {
        if (ss->eof)
            *flags |= NGHTTP2_DATA_FLAG_EOF;
        else if (!n)
            return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

static void srv_answer(struct sconn *sc, int32_t id)
{
    struct srv *s = sc->s;
    if (s->mode == M_SILENT)
        return;
    if (bad_conn(sc) && s->mode == M_GOAWAY_REFUSE) {
        nghttp2_submit_goaway(sc->ng, NGHTTP2_FLAG_NONE, 0, NGHTTP2_NO_ERROR, NULL, 0);
        return;
    }
    if (bad_conn(sc) && s->mode == M_GOAWAY_PARTIAL && id != 1)
        return; /* past the GOAWAY's last stream */
    if (sc->nss == 16)
        return;
    struct sstream *ss = calloc(1, sizeof(*ss));
    sc->ss[sc->nss++] = ss;
    ss->body = SSE_BODY;
    ss->len = bad_conn(sc) ? FIRST_EVENTS : sizeof(SSE_BODY) - 1;
    ss->eof = !bad_conn(sc);
    nghttp2_nv nva[] = {
        { (uint8_t *)":status", (uint8_t *)"200", 7, 3, 0 },
        { (uint8_t *)"content-type", (uint8_t *)"text/event-stream", 12, 17, 0 },
        { (uint8_t *)"x-gateway-destination-endpoint", (uint8_t *)"pod-a", 30, 5, 0 },
    };
    nghttp2_data_provider prd = { .source.ptr = ss, .read_callback = srv_read };
    nghttp2_submit_response(sc->ng, id, nva, 3, &prd);
}

static int srv_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct sconn *sc = ud;
    if (f->hd.type == NGHTTP2_RST_STREAM)
        sc->s->rst_recv++;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        srv_answer(sc, f->hd.stream_id);
    return 0;
}

static int srv_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct sconn *sc = ud;
    if (!bad_conn(sc) || f->hd.type != NGHTTP2_DATA)
        return 0;
    /* the first events of a misbehaving answer are out */
    switch (sc->s->mode) {
    case M_RST:
        nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, f->hd.stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
        break;
    case M_GOAWAY_PARTIAL:
        nghttp2_submit_goaway(ng, NGHTTP2_FLAG_NONE, 1, NGHTTP2_INTERNAL_ERROR, NULL, 0);
        sc->closing = 1;
        break;
    case M_DROP:
        sc->closing = 1;
        break;
    default:
        break;
    }
    return 0;
}

static int srv_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    struct sconn *sc = ud;
    if (++sc->open_streams > sc->s->max_streams)
        sc->s->max_streams = sc->open_streams;
    return 0;
}

static int srv_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    struct sconn *sc = ud;
    sc->open_streams--;
    return 0;
}

static void srv_conn_free(struct sconn *sc)
{
    ev_del(sc->s->loop, sc->fd);
    close(sc->fd);
    nghttp2_session_del(sc->ng);
    for (int i = 0; i < sc->nss; i++)
        free(sc->ss[i]);
    sc->s->conns[sc->idx] = NULL;
    free(sc);
}

static void srv_flush(struct sconn *sc)
{
    const uint8_t *p;
    ssize_t n;
    while ((n = nghttp2_session_mem_send(sc->ng, &p)) > 0)
        for (ssize_t off = 0; off < n;) { /* blocking socket: small writes */
            ssize_t w = write(sc->fd, p + off, (size_t)(n - off));
            if (w <= 0)
                return;
            off += w;
        }
    if (sc->closing)
        srv_conn_free(sc);
}

static void srv_io(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct sconn *sc = arg;
    char buf[65536];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT); /* writes block, reads do not */
    if (n < 0 && errno == EAGAIN)
        return;
    if (n <= 0 || nghttp2_session_mem_recv(sc->ng, (uint8_t *)buf, (size_t)n) < 0) {
        srv_conn_free(sc);
        return;
    }
    srv_flush(sc);
}

static void srv_accept(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct srv *s = arg;
    int cfd = accept(fd, NULL, NULL);
    if (cfd < 0 || s->accepted >= 64) {
        if (cfd >= 0)
            close(cfd);
        return;
    }
    struct sconn *sc = calloc(1, sizeof(*sc));
    sc->s = s;
    sc->fd = cfd;
    sc->idx = s->accepted++;
    s->conns[sc->idx] = sc;
    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, srv_frame_recv);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, srv_frame_send);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, srv_begin_headers);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, srv_stream_close);
    nghttp2_session_server_new(&sc->ng, cb, sc);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = { { NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000 } };
    nghttp2_submit_settings(sc->ng, NGHTTP2_FLAG_NONE, iv, 1);
    ev_add(l, cfd, EPOLLIN, srv_io, sc);
    srv_flush(sc);
}

static int srv_start(struct srv *s, struct ev_loop *loop, enum srv_mode mode)
{
    memset(s, 0, sizeof(*s));
    s->mode = mode;
    s->loop = loop;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)&a, sizeof(a)) ||
        listen(s->lfd, 64) || getsockname(s->lfd, (struct sockaddr *)&a, &al))
        return -1;
    s->port = ntohs(a.sin_port);
    return ev_add(loop, s->lfd, EPOLLIN, srv_accept, s);
}

static void srv_stop(struct srv *s)
{
    for (int i = 0; i < 64; i++)
        if (s->conns[i])
            srv_conn_free(s->conns[i]);
    ev_del(s->loop, s->lfd);
    close(s->lfd);
}

/* ---- a run: n requests due at once over h2c ---- */

struct fixture {
    struct lg_cfg cfg;
    struct lg_workload wl;
    struct lg_run run;
    struct srv srv;
    char url[64];
};

static int run_h2(struct fixture *f, enum srv_mode mode, uint32_t n, uint32_t streams,
                  double timeout_s)
{
    struct lg_wl_spec spec = {
        .kind = LG_WL_SHARED_PREFIX, .seed = 1, .groups = 2, .prompts_per_group = 8,
        .system_len = 32, .question_len = 8, .output_len = 3, .requests = n, .skew = 1,
        .trace_speedup = 1, .sched = { .kind = LG_ARR_POISSON, .rate = 0, .burstiness = 1 },
    };
    char err[256];
    memset(f, 0, sizeof(*f));
    f->cfg = (struct lg_cfg){ .ntargets = 1, .path = "/v1/chat/completions", .transport = "h2c",
                              .time_scale = 1, .timeout_s = timeout_s, .max_conns = 16,
                              .h2_streams = streams, .quiet = 1 };
    f->cfg.targets[0] = f->url;
    /* the port is known once the server listens on the run's loop */
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:1");
    if (lg_wl_init(&f->wl, &spec, err, sizeof(err)) ||
        lg_run_init(&f->run, &f->cfg, &f->wl, err, sizeof(err))) {
        fprintf(stderr, "set-up: %s\n", err);
        return -1;
    }
    if (srv_start(&f->srv, f->run.loop, mode))
        return -1;
    struct sockaddr_in *a = (struct sockaddr_in *)&f->run.targets[0].addr;
    a->sin_port = htons(f->srv.port);
    snprintf(f->run.targets[0].authority, sizeof(f->run.targets[0].authority),
             "127.0.0.1:%u", f->srv.port);
    return lg_run_go(&f->run);
}

static void fixture_free(struct fixture *f)
{
    srv_stop(&f->srv);
    lg_run_free(&f->run);
    lg_wl_free(&f->wl);
}

static size_t count_err(struct fixture *f, enum lg_err e)
{
    size_t k = 0;
    for (size_t i = 0; i < f->run.nreqs; i++)
        k += f->run.reqs[i].err == e;
    return k;
}

/* ---- tests ---- */

TEST(answers_parse_as_over_http1_and_streams_multiplex)
{
    struct fixture f;
    CHECK_EQ(run_h2(&f, M_OK, 10, 4, 10), 0);
    CHECK_EQ(f.run.n_ok, 10);
    CHECK_EQ(f.srv.accepted, 3);     /* 10 due at once, 4 streams a connection */
    CHECK_EQ(f.srv.max_streams, 4);
    for (size_t i = 0; i < f.run.nreqs; i++) {
        struct lg_req *r = &f.run.reqs[i];
        CHECK_EQ(r->err, LG_OK);
        CHECK_EQ(r->status, 200);
        CHECK_EQ(r->completion_tokens, 3);
        CHECK_EQ(r->cached_tokens, 16);
        CHECK_EQ(r->n_content, 3);
        CHECK_EQ(r->n_itl, 2);
        CHECK_STR(r->pod, "pod-a");
        CHECK(r->send_ns > 0 && r->first_ns >= r->send_ns && r->end_ns >= r->last_ns);
    }
    fixture_free(&f);
}

TEST(rst_stream_is_a_closed_error_and_the_connection_stays)
{
    struct fixture f;
    CHECK_EQ(run_h2(&f, M_RST, 3, 100, 10), 0);
    CHECK_EQ(count_err(&f, LG_E_CLOSED), 3);
    CHECK_EQ(f.srv.accepted, 1);
    CHECK(f.run.reqs[0].errmsg && strstr(f.run.reqs[0].errmsg, "RST_STREAM INTERNAL_ERROR"));
    CHECK_EQ(f.run.reqs[0].n_content, 1); /* what came before the reset was parsed */
    fixture_free(&f);
}

TEST(goaway_before_processing_resends_once_on_a_new_connection)
{
    struct fixture f;
    CHECK_EQ(run_h2(&f, M_GOAWAY_REFUSE, 3, 100, 10), 0);
    CHECK_EQ(f.run.n_ok, 3);
    CHECK_EQ(f.srv.accepted, 2);
    for (size_t i = 0; i < f.run.nreqs; i++)
        CHECK_EQ(f.run.reqs[i].retried, 1);
    fixture_free(&f);
}

TEST(goaway_then_close_fails_the_processed_stream_and_resends_the_rest)
{
    struct fixture f;
    CHECK_EQ(run_h2(&f, M_GOAWAY_PARTIAL, 3, 100, 10), 0);
    CHECK_EQ(f.run.n_ok, 2);
    CHECK_EQ(count_err(&f, LG_E_CLOSED), 1);
    CHECK_EQ(f.srv.accepted, 2);
    for (size_t i = 0; i < f.run.nreqs; i++) {
        struct lg_req *r = &f.run.reqs[i];
        if (r->err == LG_E_CLOSED) {
            CHECK(!r->retried);
            CHECK(r->errmsg && strstr(r->errmsg, "mid-response after GOAWAY INTERNAL_ERROR"));
        } else {
            CHECK_EQ(r->retried, 1);
        }
    }
    fixture_free(&f);
}

TEST(connection_loss_mid_response_fails_every_stream_on_it)
{
    struct fixture f;
    CHECK_EQ(run_h2(&f, M_DROP, 4, 100, 10), 0);
    CHECK_EQ(count_err(&f, LG_E_CLOSED), 4);
    CHECK_EQ(f.srv.accepted, 1);
    for (size_t i = 0; i < f.run.nreqs; i++)
        CHECK(f.run.reqs[i].errmsg && strstr(f.run.reqs[i].errmsg, "mid-response"));
    fixture_free(&f);
}

TEST(timeouts_reset_their_streams_not_the_connection)
{
    struct fixture f;
    CHECK_EQ(run_h2(&f, M_SILENT, 5, 100, 0.2), 0);
    CHECK_EQ(count_err(&f, LG_E_TIMEOUT), 5);
    CHECK_EQ(f.srv.accepted, 1);
    /* the RST_STREAMs reach the server before the loop stops, or soon after */
    for (int k = 0; k < 50 && f.srv.rst_recv < 5 && f.srv.conns[0]; k++) {
        usleep(2000);
        srv_io(f.run.loop, f.srv.conns[0]->fd, EPOLLIN, f.srv.conns[0]);
    }
    CHECK_EQ(f.srv.rst_recv, 5);
    fixture_free(&f);
}

TEST(a_refused_connect_is_a_connect_error)
{
    struct fixture f;
    struct lg_wl_spec spec = {
        .kind = LG_WL_SHARED_PREFIX, .seed = 1, .groups = 1, .prompts_per_group = 3,
        .system_len = 32, .question_len = 8, .output_len = 3, .requests = 3, .skew = 1,
        .trace_speedup = 1, .sched = { .kind = LG_ARR_POISSON, .rate = 0, .burstiness = 1 },
    };
    char err[256];
    memset(&f, 0, sizeof(f));
    int fd = socket(AF_INET, SOCK_STREAM, 0); /* bound, never listening: connects refused */
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    CHECK(fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof(a)) &&
          !getsockname(fd, (struct sockaddr *)&a, &al));
    snprintf(f.url, sizeof(f.url), "http://127.0.0.1:%u", ntohs(a.sin_port));
    f.cfg = (struct lg_cfg){ .ntargets = 1, .path = "/", .transport = "h2c", .time_scale = 1,
                             .timeout_s = 10, .max_conns = 16, .h2_streams = 100, .quiet = 1 };
    f.cfg.targets[0] = f.url;
    CHECK_EQ(lg_wl_init(&f.wl, &spec, err, sizeof(err)), 0);
    CHECK_EQ(lg_run_init(&f.run, &f.cfg, &f.wl, err, sizeof(err)), 0);
    CHECK_EQ(lg_run_go(&f.run), 0);
    CHECK_EQ(count_err(&f, LG_E_CONNECT), 3);
    close(fd);
    lg_run_free(&f.run);
    lg_wl_free(&f.wl);
}

int main(void)
{
    RUN(answers_parse_as_over_http1_and_streams_multiplex);
    RUN(rst_stream_is_a_closed_error_and_the_connection_stays);
    RUN(goaway_before_processing_resends_once_on_a_new_connection);
    RUN(goaway_then_close_fails_the_processed_stream_and_resends_the_rest);
    RUN(connection_loss_mid_response_fails_every_stream_on_it);
    RUN(timeouts_reset_their_streams_not_the_connection);
    RUN(a_refused_connect_is_a_connect_error);
    return harness_done();
}
