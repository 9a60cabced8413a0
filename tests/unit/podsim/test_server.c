/* Tests for user/podsim/server.c over real loopback sockets.
 *
 * The server's ev_loop runs in a second thread; the test thread talks to it
 * with blocking sockets (5 s timeouts, so a bug fails instead of hanging).
 * Server calls that are not thread-safe (server_set_refuse, server_nconns)
 * are made with the loop stopped: loop_pause() / loop_resume().
 * HTTP/2 is checked with the nghttp client when it is installed. */
#include "podsim/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/sbuf.h"
#include "harness.h"

static struct ev_loop *g_loop;
static struct server *g_srv;
static pthread_t g_thr;
static int g_port;
static int g_cancels;      /* cancel callbacks seen (atomic) */
static int g_zombie_rc = 1; /* resp_write rc seen by /zombie's late timer */
static long long g_pending_before = -1, g_pending_after = -1; /* /pending */

/* ---- handlers (run on the loop thread) ---- */

struct job {
    struct http_resp *r;
    uint64_t timer;
    int n;      /* chunks written so far */
    int kind;   /* 0 stream, 1 slow, 2 zombie, 3 later */
};

static void job_cancel(void *arg)
{
    struct job *j = arg;
    ev_timer_cancel(g_loop, j->timer);
    free(j);
    __atomic_add_fetch(&g_cancels, 1, __ATOMIC_SEQ_CST);
}

static void echo(const struct http_req *q, struct http_resp *r)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_printf(&b, "{\"method\":\"%s\",\"path\":\"", q->method);
    sbuf_json_escape(&b, q->path, strlen(q->path));
    sbuf_printf(&b, "\",\"body_len\":%zu,\"h2\":%d,\"body\":\"", q->body_len, q->h2);
    sbuf_json_escape(&b, q->body, q->body_len < 64 ? q->body_len : 64);
    sbuf_puts(&b, "\",\"ua\":\"");
    for (size_t k = 0; k < q->nheaders; k++)
        if (strcmp(q->hname[k], "x-test") == 0)
            sbuf_json_escape(&b, q->hvalue[k], strlen(q->hvalue[k]));
    sbuf_puts(&b, "\"}");
    resp_send(r, 200, "application/json", b.data, b.len);
    sbuf_free(&b);
}

static void job_tick(struct ev_loop *l, void *arg)
{
    struct job *j = arg;
    j->timer = 0;
    if (j->kind == 3) { /* /later: a whole response from a timer */
        resp_send(j->r, 200, "text/plain", "later", 5);
        free(j);
        return;
    }
    if (j->kind == 2) { /* /zombie: the client is gone by now */
        int rc = resp_write(j->r, "x", 1);
        __atomic_store_n(&g_zombie_rc, rc, __ATOMIC_SEQ_CST);
        resp_end(j->r);
        free(j);
        return;
    }
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "chunk%d\n", j->n++);
    resp_write(j->r, buf, (size_t)n);
    if (j->kind == 0 && j->n == 3) {
        resp_end(j->r);
        free(j);
        return;
    }
    j->timer = ev_timer_at(l, ev_now_ns() + (j->kind == 1 ? 5000 : 10) * 1000000ull,
                           job_tick, j);
}

static void handler(void *ctx, const struct http_req *q, struct http_resp *r)
{
    struct job *j;
    if (strcmp(q->path, "/stream") == 0 || strcmp(q->path, "/slow") == 0 ||
        strcmp(q->path, "/zombie") == 0 || strcmp(q->path, "/later") == 0) {
        j = calloc(1, sizeof(*j));
        j->r = r;
        j->kind = q->path[1] == 's' ? (q->path[2] == 't' ? 0 : 1)
                                    : q->path[1] == 'z' ? 2 : 3;
        if (j->kind == 0 || j->kind == 1) {
            resp_on_cancel(r, job_cancel, j);
            resp_start(r, 200, "text/plain", -1, "X-Stream: yes\r\n");
        }
        uint64_t delay = j->kind == 2 ? 300 : j->kind == 3 ? 20 : 0;
        j->timer = ev_timer_at(g_loop, ev_now_ns() + delay * 1000000ull, job_tick, j);
    } else if (strcmp(q->path, "/abort") == 0) {
        resp_start(r, 200, "text/plain", -1, NULL);
        resp_write(r, "partial", 7);
        resp_abort(r);
    } else if (strcmp(q->path, "/pending") == 0) {
        /* 32 MiB to a client that reads nothing: most of it waits here */
        static char chunk[64 << 10];
        long long before = (long long)resp_pending(r);
        resp_start(r, 200, "application/octet-stream", -1, NULL);
        for (int i = 0; i < 512; i++)
            resp_write(r, chunk, sizeof(chunk));
        long long after = (long long)resp_pending(r);
        resp_end(r);
        __atomic_store_n(&g_pending_before, before, __ATOMIC_SEQ_CST);
        __atomic_store_n(&g_pending_after, after, __ATOMIC_SEQ_CST);
    } else if (strcmp(q->path, "/empty") == 0) {
        resp_end(r); /* no start: empty 200 */
    } else {
        echo(q, r);
    }
}

/* ---- loop thread ---- */

static void *loop_main(void *arg)
{
    ev_run(g_loop);
    return NULL;
}

static void loop_resume(void)
{
    pthread_create(&g_thr, NULL, loop_main, NULL);
}

static void loop_pause(void)
{
    ev_stop(g_loop);
    pthread_join(g_thr, NULL);
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    bind(fd, (struct sockaddr *)&a, sizeof(a));
    getsockname(fd, (struct sockaddr *)&a, &len);
    close(fd);
    return ntohs(a.sin_port);
}

/* ---- client helpers (test thread) ---- */

struct cli {
    int fd;
    char buf[1 << 17];
    size_t len;
};

static int cli_connect(struct cli *c)
{
    c->len = 0;
    c->buf[0] = '\0';
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)g_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        int err = errno;
        close(c->fd);
        c->fd = -1;
        return -err;
    }
    return 0;
}

static void cli_send(struct cli *c, const char *s, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void cli_puts(struct cli *c, const char *s)
{
    cli_send(c, s, strlen(s));
}

/* Reads more into c->buf; returns bytes read, 0 on EOF, -1 on error. */
static ssize_t cli_fill(struct cli *c)
{
    if (c->len >= sizeof(c->buf) - 1)
        return -1;
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
    return n;
}

static void cli_drop(struct cli *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->buf[c->len] = '\0';
}

struct resp {
    int status;
    char head[4096];
    char body[1 << 16];
    size_t body_len;
    int eof_after; /* connection closed after this response */
    int complete;  /* body framing completed (not cut by EOF) */
};

/* Reads one response. Returns 0, or -1 on timeout/garbage. */
static int cli_read(struct cli *c, struct resp *r)
{
    memset(r, 0, offsetof(struct resp, body));
    r->body_len = 0;
    r->eof_after = 0;
    r->complete = 0;
    char *end;
    while (!(end = strstr(c->buf, "\r\n\r\n")))
        if (cli_fill(c) <= 0)
            return -1;
    size_t hl = (size_t)(end - c->buf) + 4;
    if (hl >= sizeof(r->head))
        return -1;
    memcpy(r->head, c->buf, hl);
    r->head[hl] = '\0';
    cli_drop(c, hl);
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    for (char *p = r->head; *p; p++) /* lower-case for strstr checks */
        if (*p >= 'A' && *p <= 'Z')
            *p += 32;
    if (r->status == 100)
        return 0;
    char *cl = strstr(r->head, "\r\ncontent-length: ");
    if (cl) {
        size_t n = strtoul(cl + 18, NULL, 10);
        while (c->len < n)
            if (cli_fill(c) <= 0)
                return -1;
        memcpy(r->body, c->buf, n);
        r->body_len = n;
        r->body[n] = '\0';
        cli_drop(c, n);
        r->complete = 1;
    } else if (strstr(r->head, "transfer-encoding: chunked")) {
        struct http1_chunked ck = { 0 };
        for (;;) {
            size_t got;
            long used = http1_chunked_decode(&ck, c->buf, c->len, r->body + r->body_len, &got);
            if (used < 0)
                return -1;
            r->body_len += got;
            cli_drop(c, (size_t)used);
            if (ck.done)
                break;
            ssize_t n = cli_fill(c);
            if (n == 0) {
                r->eof_after = 1;
                r->body[r->body_len] = '\0';
                return 0; /* cut short (resp_abort) */
            }
            if (n < 0)
                return -1;
        }
        r->body[r->body_len] = '\0';
        r->complete = 1;
    } else { /* close-delimited */
        ssize_t n;
        while ((n = cli_fill(c)) > 0)
            ;
        if (n < 0)
            return -1;
        memcpy(r->body, c->buf, c->len);
        r->body_len = c->len;
        r->body[c->len] = '\0';
        cli_drop(c, c->len);
        r->eof_after = 1;
        r->complete = 1;
    }
    return 0;
}

/* After a response, checks whether the server closed the connection. */
static int cli_at_eof(struct cli *c)
{
    struct timeval tv = { .tv_sec = 2 };
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return c->len == 0 && cli_fill(c) == 0;
}

static void cli_close(struct cli *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int wait_cancels(int want)
{
    for (int i = 0; i < 300; i++) {
        if (__atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST) >= want)
            return 1;
        usleep(10000);
    }
    return 0;
}

static struct cli C; /* big buffers: not on the stack */
static struct resp R;

/* ---- HTTP/1.1 tests ---- */

TEST(keepalive_two_requests)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /a?x=1 HTTP/1.1\r\nHost: t\r\nX-Test: v1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.head, "content-type: application/json"));
    CHECK(strstr(R.body, "\"method\":\"GET\",\"path\":\"/a?x=1\",\"body_len\":0,\"h2\":0"));
    CHECK(strstr(R.body, "\"ua\":\"v1\""));
    cli_puts(&C, "POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.body, "\"method\":\"POST\",\"path\":\"/b\",\"body_len\":5"));
    CHECK(strstr(R.body, "\"body\":\"hello\""));
    CHECK(!strstr(R.head, "connection: close"));
    /* Third request asks to close. */
    cli_puts(&C, "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.head, "connection: close"));
    CHECK(cli_at_eof(&C));
    cli_close(&C);
}

TEST(byte_by_byte_request)
{
    CHECK_EQ(cli_connect(&C), 0);
    const char *req = "POST /slowly HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc";
    for (size_t i = 0; req[i]; i++) {
        cli_send(&C, req + i, 1);
        usleep(200);
    }
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/slowly\",\"body_len\":3"));
    cli_close(&C);
}

TEST(chunked_request_body)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "POST /ch HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.body, "\"body_len\":11"));
    CHECK(strstr(R.body, "\"body\":\"hello world\""));
    /* Still usable afterwards. */
    cli_puts(&C, "GET /after HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/after\""));
    cli_close(&C);
}

TEST(pipelining)
{
    CHECK_EQ(cli_connect(&C), 0);
    /* The middle one is answered from a timer; order must be kept. */
    cli_puts(&C, "GET /p1 HTTP/1.1\r\n\r\nGET /later HTTP/1.1\r\n\r\n"
                 "POST /p3 HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET /p4 HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/p1\""));
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_STR(R.body, "later");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/p3\",\"body_len\":2"));
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/p4\""));
    cli_close(&C);
}

TEST(expect_continue)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "POST /e HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 100);
    cli_puts(&C, "data");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.body, "\"body_len\":4"));
    cli_close(&C);
}

TEST(payload_too_large)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "POST /big HTTP/1.1\r\nContent-Length: 100000000\r\n\r\nsome");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 413);
    CHECK(strstr(R.head, "connection: close"));
    CHECK(strstr(R.body, "\"type\":\"BadRequestError\",\"param\":null,\"code\":413}}"));
    CHECK(strncmp(R.body, "{\"error\":{\"message\":\"", 21) == 0);
    CHECK(cli_at_eof(&C));
    cli_close(&C);

    /* Chunked bodies are counted as they arrive. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    static char chunk[70000];
    memset(chunk, 'a', sizeof(chunk));
    int n = snprintf(chunk, 16, "%x\r\n", 65536);
    chunk[n] = 'a'; /* snprintf's NUL */
    memcpy(chunk + n + 65536, "\r\n", 2);
    for (int i = 0; i < 20; i++) /* 1.3 MB > 1 MiB */
        cli_send(&C, chunk, (size_t)n + 65536 + 2);
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 413);
    cli_close(&C);
}

TEST(bad_requests)
{
    static const struct { const char *req; int status; } cases[] = {
        { "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400 },
        { "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
        { "GET / HTTP/1.1\nHost: x\n\n", 400 },
        { "GET / HTTP/2.0\r\n\r\n", 505 },
        { "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400 },
        { "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", 400 },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK_EQ(cli_connect(&C), 0);
        cli_puts(&C, cases[i].req);
        CHECK_EQ(cli_read(&C, &R), 0);
        if (R.status != cases[i].status)
            fprintf(stderr, "  case %zu: status %d\n", i, R.status);
        CHECK_EQ(R.status, cases[i].status);
        CHECK(strstr(R.head, "content-type: application/json"));
        /* the one vocabulary (common/httpstatus): 505 is a 5xx */
        CHECK(strstr(R.body, cases[i].status == 505 ? "\"type\":\"InternalServerError\""
                                                    : "\"type\":\"BadRequestError\""));
        CHECK(cli_at_eof(&C));
        cli_close(&C);
    }
    /* Head larger than max_head (4096): 431. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 100; i++)
        cli_puts(&C, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 431);
    CHECK(strstr(R.body, "\"code\":431"));
    cli_close(&C);
}

TEST(streamed_response)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /stream HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 200);
    CHECK(strstr(R.head, "transfer-encoding: chunked"));
    CHECK(strstr(R.head, "x-stream: yes"));
    CHECK(R.complete);
    CHECK_STR(R.body, "chunk0\nchunk1\nchunk2\n");
    /* Keep-alive after a chunked response. */
    cli_puts(&C, "GET /x HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/x\""));
    cli_close(&C);

    /* HTTP/1.0 has no chunked: close-delimited. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(!strstr(R.head, "transfer-encoding"));
    CHECK(strstr(R.head, "connection: close"));
    CHECK_STR(R.body, "chunk0\nchunk1\nchunk2\n");
    CHECK(R.eof_after);
    cli_close(&C);

    /* HTTP/1.0 keep-alive with a sized response stays open. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /k HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.head, "connection: keep-alive"));
    cli_puts(&C, "GET /k2 HTTP/1.0\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/k2\""));
    CHECK(cli_at_eof(&C));
    cli_close(&C);
}

TEST(head_and_empty)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "HEAD /h HTTP/1.1\r\n\r\n");
    /* Read the head only: a HEAD response has no body despite CL. */
    struct resp *r = &R;
    char *end;
    while (!(end = strstr(C.buf, "\r\n\r\n")))
        if (cli_fill(&C) <= 0)
            break;
    CHECK(end != NULL);
    if (end) {
        CHECK(strncmp(C.buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
        CHECK(strstr(C.buf, "content-length: "));
        cli_drop(&C, (size_t)(end - C.buf) + 4);
    }
    CHECK_EQ(C.len, 0);
    cli_puts(&C, "GET /empty HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, r), 0);
    CHECK_EQ(r->status, 200);
    CHECK_EQ(r->body_len, 0);
    CHECK(strstr(r->head, "content-length: 0"));
    cli_close(&C);
}

TEST(abort_mid_stream)
{
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /abort HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK_EQ(R.status, 200);
    CHECK(!R.complete);
    CHECK(R.eof_after);
    CHECK_STR(R.body, "partial");
    cli_close(&C);
}

TEST(client_disconnect_cancels)
{
    int before = __atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST);
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /slow HTTP/1.1\r\n\r\n");
    while (!strstr(C.buf, "chunk0"))
        if (cli_fill(&C) <= 0)
            break;
    CHECK(strstr(C.buf, "chunk0"));
    cli_close(&C);
    CHECK(wait_cancels(before + 1));
    usleep(50000);
    CHECK_EQ(__atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST), before + 1); /* once */

    /* Abortive close (RST) too. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /slow HTTP/1.1\r\n\r\n");
    while (!strstr(C.buf, "chunk0"))
        if (cli_fill(&C) <= 0)
            break;
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    setsockopt(C.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    cli_close(&C);
    CHECK(wait_cancels(before + 2));

    /* No cancel callback set: the late resp_write sees -EPIPE and the
     * handler's resp_end frees the response (valgrind checks the leak). */
    __atomic_store_n(&g_zombie_rc, 1, __ATOMIC_SEQ_CST);
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /zombie HTTP/1.1\r\n\r\n");
    usleep(50000);
    cli_close(&C);
    for (int i = 0; i < 200 && __atomic_load_n(&g_zombie_rc, __ATOMIC_SEQ_CST) == 1; i++)
        usleep(10000);
    CHECK_EQ(__atomic_load_n(&g_zombie_rc, __ATOMIC_SEQ_CST), -EPIPE);
}

/* resp_pending: what the writer queued and the client has not taken */
TEST(pending_bytes_of_a_stalled_client)
{
    CHECK_EQ(resp_pending(NULL), 0);
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /pending HTTP/1.1\r\nHost: t\r\n\r\n");
    long long after = -1;
    for (int i = 0; i < 500 && after < 0; i++) {
        usleep(10000);
        after = __atomic_load_n(&g_pending_after, __ATOMIC_SEQ_CST);
    }
    CHECK_EQ(__atomic_load_n(&g_pending_before, __ATOMIC_SEQ_CST), 0);
    /* socket buffers take a few MiB at most; 32 MiB were written */
    CHECK(after > (16 << 20));
    CHECK(after <= (32 << 20) + 512 * 16 + 64);
    cli_close(&C);
}

TEST(refuse_and_accept_again)
{
    loop_pause();
    CHECK_EQ(server_set_refuse(g_srv, 1), 0);
    loop_resume();
    CHECK_EQ(cli_connect(&C), -ECONNREFUSED);
    loop_pause();
    CHECK_EQ(server_set_refuse(g_srv, 1), 0); /* idempotent */
    CHECK_EQ(server_set_refuse(g_srv, 0), 0);
    CHECK_EQ(server_set_refuse(g_srv, 0), 0);
    loop_resume();
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /back HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"path\":\"/back\""));
    /* Idle keep-alive connections are reset by a refuse, as by a restart. */
    loop_pause();
    CHECK_EQ(server_set_refuse(g_srv, 1), 0);
    loop_resume();
    cli_puts(&C, "GET /still HTTP/1.1\r\n\r\n");
    CHECK(cli_read(&C, &R) != 0);
    cli_close(&C);
    loop_pause();
    CHECK_EQ(server_set_refuse(g_srv, 0), 0);
    loop_resume();
}

TEST(nconns_drops_to_zero)
{
    size_t n = 1;
    for (int i = 0; i < 300 && n; i++) {
        loop_pause();
        n = server_nconns(g_srv);
        loop_resume();
        if (n)
            usleep(10000);
    }
    CHECK_EQ(n, 0);
}

/* ---- HTTP/2 ---- */

TEST(h2_preface_split)
{
    /* Preface in pieces (prefix detection waits), then a SETTINGS frame:
     * the server must answer with its own SETTINGS. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_send(&C, "PRI * HTTP/2.0\r\n", 16);
    usleep(20000);
    cli_send(&C, "\r\nSM\r\n\r\n", 8);
    cli_send(&C, "\x00\x00\x00\x04\x00\x00\x00\x00\x00", 9);
    while (C.len < 9)
        if (cli_fill(&C) <= 0)
            break;
    CHECK(C.len >= 9 && C.buf[3] == 4); /* frame type SETTINGS */
    cli_close(&C);

    /* Garbage after the preface: the connection is closed, nothing else. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nthis is not a frame at all....");
    ssize_t n;
    while ((n = cli_fill(&C)) > 0)
        ;
    CHECK_EQ(n, 0);
    cli_close(&C);

    /* "PRI" that is not the preface goes the HTTP/1.1 way. */
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "PRI /x HTTP/1.1\r\n\r\n");
    CHECK_EQ(cli_read(&C, &R), 0);
    CHECK(strstr(R.body, "\"method\":\"PRI\""));
    cli_close(&C);
}

static int run_cmd(const char *cmd, struct sbuf *out)
{
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        sbuf_append(out, buf, n);
    sbuf_append(out, "", 0);
    return pclose(f);
}

static int have_nghttp(void)
{
    return access("/usr/bin/nghttp", X_OK) == 0;
}

TEST(h2_nghttp)
{
    if (!have_nghttp()) {
        printf("skip: nghttp not installed (apt-get install nghttp2-client)\n");
        return;
    }
    char cmd[512];
    struct sbuf o;
    sbuf_init(&o);
    snprintf(cmd, sizeof(cmd), "nghttp -v -H 'x-test: hv' http://127.0.0.1:%d/h2/a?q=1 2>&1", g_port);
    CHECK_EQ(run_cmd(cmd, &o), 0);
    CHECK(strstr(o.data, "\"method\":\"GET\",\"path\":\"/h2/a?q=1\",\"body_len\":0,\"h2\":1"));
    CHECK(strstr(o.data, "\"ua\":\"hv\""));
    CHECK(strstr(o.data, ":status: 200"));

    sbuf_reset(&o);
    FILE *f = fopen("/tmp/kvgate_test_server_body", "w");
    fputs("hello h2 body", f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "nghttp -d /tmp/kvgate_test_server_body http://127.0.0.1:%d/post 2>&1", g_port);
    CHECK_EQ(run_cmd(cmd, &o), 0);
    CHECK(strstr(o.data, "\"method\":\"POST\",\"path\":\"/post\",\"body_len\":13,\"h2\":1,\"body\":\"hello h2 body\""));
    unlink("/tmp/kvgate_test_server_body");

    sbuf_reset(&o);
    snprintf(cmd, sizeof(cmd), "nghttp http://127.0.0.1:%d/stream 2>&1", g_port);
    CHECK_EQ(run_cmd(cmd, &o), 0);
    CHECK_STR(o.data, "chunk0\nchunk1\nchunk2\n");
    sbuf_reset(&o);
    snprintf(cmd, sizeof(cmd), "nghttp -v http://127.0.0.1:%d/stream 2>&1", g_port);
    CHECK_EQ(run_cmd(cmd, &o), 0);
    CHECK(strstr(o.data, "x-stream: yes"));
    CHECK(strstr(o.data, "END_STREAM"));

    /* Several concurrent streams on one connection. */
    sbuf_reset(&o);
    snprintf(cmd, sizeof(cmd), "nghttp http://127.0.0.1:%d/stream http://127.0.0.1:%d/m1 "
             "http://127.0.0.1:%d/later http://127.0.0.1:%d/empty 2>&1",
             g_port, g_port, g_port, g_port);
    CHECK_EQ(run_cmd(cmd, &o), 0);
    CHECK(strstr(o.data, "chunk2"));
    CHECK(strstr(o.data, "\"path\":\"/m1\""));
    CHECK(strstr(o.data, "later"));

    /* HEAD of a streamed response: the stream ends with the HEADERS frame,
     * before the handler's resp_end; that is not a cancellation. */
    int cancels = __atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST);
    sbuf_reset(&o);
    snprintf(cmd, sizeof(cmd), "nghttp -v -H ':method: HEAD' http://127.0.0.1:%d/stream 2>&1", g_port);
    CHECK_EQ(run_cmd(cmd, &o), 0);
    CHECK(strstr(o.data, ":status: 200"));
    CHECK(!strstr(o.data, "chunk0"));
    usleep(100000); /* the handler's timers run to resp_end */
    CHECK_EQ(__atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST), cancels);

    sbuf_reset(&o);
    snprintf(cmd, sizeof(cmd), "nghttp -v http://127.0.0.1:%d/abort 2>&1", g_port);
    run_cmd(cmd, &o);
    CHECK(strstr(o.data, "RST_STREAM"));
    CHECK(strstr(o.data, "INTERNAL_ERROR"));

    /* 413 over h2 (max_body is 1 MiB). */
    sbuf_reset(&o);
    f = fopen("/tmp/kvgate_test_server_big", "w");
    static char big[1 << 16];
    memset(big, 'b', sizeof(big));
    for (int i = 0; i < 20; i++)
        fwrite(big, 1, sizeof(big), f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "nghttp -v -d /tmp/kvgate_test_server_big http://127.0.0.1:%d/big 2>&1", g_port);
    run_cmd(cmd, &o);
    CHECK(strstr(o.data, ":status: 413"));
    CHECK(strstr(o.data, "\"code\":413"));
    unlink("/tmp/kvgate_test_server_big");

    /* Client killed mid-stream: the cancel callback runs. */
    int before = __atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST);
    sbuf_reset(&o);
    snprintf(cmd, sizeof(cmd), "timeout 0.5 nghttp http://127.0.0.1:%d/slow 2>&1", g_port);
    run_cmd(cmd, &o); /* (its stdout buffer dies with it: nothing to check) */
    CHECK(wait_cancels(before + 1));
    sbuf_free(&o);
}

TEST(stop_with_open_responses)
{
    /* A streaming response is in flight when the server is stopped: its
     * cancel callback runs, nothing leaks. */
    int before = __atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST);
    CHECK_EQ(cli_connect(&C), 0);
    cli_puts(&C, "GET /slow HTTP/1.1\r\n\r\n");
    while (!strstr(C.buf, "chunk0"))
        if (cli_fill(&C) <= 0)
            break;
    loop_pause();
    server_stop(g_srv);
    g_srv = NULL;
    CHECK_EQ(__atomic_load_n(&g_cancels, __ATOMIC_SEQ_CST), before + 1);
    C.len = 0; /* drop the partial response read so far */
    CHECK(cli_at_eof(&C));
    cli_close(&C);
}

int main(void)
{
    g_loop = ev_new();
    struct server_cfg cfg = {
        .bind_addr = "127.0.0.1",
        .max_body = 1 << 20,
        .max_head = 4096,
        .handler = handler,
    };
    for (int tries = 0; tries < 20 && !g_srv; tries++) {
        cfg.port = free_port();
        g_srv = server_start(g_loop, &cfg);
    }
    if (!g_srv) {
        perror("server_start");
        return 1;
    }
    g_port = cfg.port;
    loop_resume();

    RUN(keepalive_two_requests);
    RUN(byte_by_byte_request);
    RUN(chunked_request_body);
    RUN(pipelining);
    RUN(expect_continue);
    RUN(payload_too_large);
    RUN(bad_requests);
    RUN(streamed_response);
    RUN(head_and_empty);
    RUN(abort_mid_stream);
    RUN(client_disconnect_cancels);
    RUN(pending_bytes_of_a_stalled_client);
    RUN(refuse_and_accept_again);
    RUN(h2_preface_split);
    RUN(h2_nghttp);
    RUN(nconns_drops_to_zero);
    RUN(stop_with_open_responses);

    ev_free(g_loop);
    return harness_done();
}
