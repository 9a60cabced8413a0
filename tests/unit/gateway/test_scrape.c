/* test_scrape: user/gateway/scrape.c, the control thread's HTTP/1.1 GET
 * client: how it reads a pod's answer (status line, headers, framing by
 * Content-Length, chunked or close, interim 1xx answers, the body cap,
 * keep-alive), with the response-head rules of common/http1.c
 * (http1_parse_response) that the data path's upstream.c applies too: a
 * head the data path would refuse is refused here, and a framing it
 * accepts is accepted here. Drives the parser directly (no sockets). */
#include "gateway/scrape.c"

#include "harness.h"

struct got {
    int rc;          /* 1 complete, 0 incomplete, < 0 error */
    int status;
    int close_after; /* the connection is not reused */
    char body[256];
    size_t len;
};

/* Feeds resp in pieces of `step` bytes, then (eof) the pod's close. */
static struct got feed(const char *resp, size_t step, size_t cap, int eof)
{
    struct hget h;
    struct got g;
    memset(&g, 0, sizeof(g));
    hget_init(&h, NULL);
    hget_set_max_body(&h, cap);
    reset_resp(&h);
    size_t n = strlen(resp);
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += step) {
        size_t k = n - off < step ? n - off : step;
        sbuf_reserve(&h.in, k + 1);
        memcpy(h.in.data + h.in.len, resp + off, k);
        h.in.len += k;
        rc = parse(&h);
    }
    if (rc == 0 && eof && h.head_done && !h.chunked && h.clen < 0) { /* as read_some */
        h.body_len = h.in.len - h.body_off;
        rc = h.body_len > h.max_body ? -EMSGSIZE : 1;
    }
    g.rc = rc;
    if (rc == 1) {
        g.status = h.status;
        g.close_after = h.close_after;
        g.len = h.body_len < sizeof(g.body) - 1 ? h.body_len : sizeof(g.body) - 1;
        memcpy(g.body, h.in.data + h.body_off, g.len);
    }
    hget_free(&h);
    return g;
}

/* The same verdict whole and byte by byte. */
static struct got both(const char *resp, size_t cap, int eof)
{
    struct got a = feed(resp, strlen(resp) ? strlen(resp) : 1, cap, eof);
    struct got b = feed(resp, 1, cap, eof);
    CHECK_EQ(a.rc < 0, b.rc < 0);
    if (a.rc == 1) {
        CHECK_EQ(b.rc, 1);
        CHECK_EQ(a.len, b.len);
        CHECK(!memcmp(a.body, b.body, a.len));
    }
    return a;
}

TEST(framings)
{
    struct got g = both("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 1024, 0);
    CHECK_EQ(g.rc, 1);
    CHECK_EQ(g.status, 200);
    CHECK_STR(g.body, "hello");
    CHECK_EQ(g.close_after, 0);
    g = both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
             "3\r\nhel\r\n2;x=y\r\nlo\r\n0\r\nTrailer: t\r\n\r\n", 1024, 0);
    CHECK_EQ(g.rc, 1);
    CHECK_STR(g.body, "hello");
    CHECK_EQ(g.close_after, 0);
    /* no framing: the body ends with the connection */
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhel", 1024, 0).rc, 0);
    g = both("HTTP/1.1 200 OK\r\nServer: x\r\n\r\nhello", 1024, 1);
    CHECK_EQ(g.rc, 1);
    CHECK_STR(g.body, "hello");
    CHECK_EQ(g.close_after, 1);
    /* interim answers are skipped; 204 has no body */
    g = both("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 1024, 0);
    CHECK_EQ(g.rc, 1);
    CHECK_STR(g.body, "ok");
    g = both("HTTP/1.1 204 No Content\r\n\r\n", 1024, 0);
    CHECK_EQ(g.rc, 1);
    CHECK_EQ(g.len, 0);
    /* a status line without a reason phrase */
    CHECK_EQ(both("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 1024, 0).rc, 1);
}

TEST(keep_alive)
{
    CHECK_EQ(both("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 64, 0).close_after, 1);
    CHECK_EQ(both("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 64,
                  0).close_after, 0);
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok", 64,
                  0).close_after, 1);
    /* both framings: chunked wins, and the connection is not trusted again */
    struct got g = both("HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "2\r\nok\r\n0\r\n\r\n", 1024, 0);
    CHECK_EQ(g.rc, 1);
    CHECK_STR(g.body, "ok");
    CHECK_EQ(g.close_after, 1);
    /* bytes nobody asked for behind the answer */
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", 64, 0).close_after, 1);
}

TEST(body_cap)
{
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 10, 0).rc, -EMSGSIZE);
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789", 10, 0).rc, 1);
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n0123456789a\r\n0\r\n\r\n",
                  10, 0).rc, -EMSGSIZE);
    CHECK_EQ(both("HTTP/1.1 200 OK\r\n\r\n0123456789a", 10, 1).rc, -EMSGSIZE);
}

/* What http1_parse_response refuses (and upstream.c with it) is not an
 * answer here either. */
TEST(heads_refused_as_the_data_path_refuses_them)
{
    static const char *const bad[] = {
        "SSH-2.0-OpenSSH\r\n\r\n",
        "HTTP/2 200\r\n\r\n",
        "HTTP/1.1 20x OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nContent-Length: 2 2\r\n\r\nok",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 2\r\n\r\nok",     /* not a token */
        "HTTP/1.1 200 OK\r\n: x\r\nContent-Length: 2\r\n\r\nok",              /* empty name */
        "HTTP/1.1 200 OK\r\nX: a\001b\r\nContent-Length: 2\r\n\r\nok",        /* control byte */
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 2\r\n\r\nok",  /* obs-fold */
        "HTTP/1.1 200 OK\nContent-Length: 2\n\nok",                           /* bare LF */
        "HTTP/1.1 200 O\001K\r\nContent-Length: 2\r\n\r\nok",                 /* reason phrase */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct got g = both(bad[i], 1024, 1);
        if (g.rc != -EPROTO)
            fprintf(stderr, "  case %zu: rc %d, expected -EPROTO\n", i, g.rc);
        CHECK_EQ(g.rc, -EPROTO);
    }
}

/* A coding other than chunked last: the body runs to the close (RFC 9112
 * 6.3), as the data path frames it; the probe's own parser judges the
 * bytes. */
TEST(other_coding_runs_to_close)
{
    CHECK_EQ(both("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 1024, 0).rc, 0);
    struct got g = both("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc", 1024, 1);
    CHECK_EQ(g.rc, 1);
    CHECK_STR(g.body, "abc");
    CHECK_EQ(g.close_after, 1);
}

TEST(head_too_large)
{
    static char big[HGET_MAX_HEAD + 64];
    strcpy(big, "HTTP/1.1 200 OK\r\nX: ");
    memset(big + strlen(big), 'a', HGET_MAX_HEAD);
    CHECK_EQ(both(big, 1024, 0).rc, -EPROTO);
}

int main(void)
{
    RUN(framings);
    RUN(keep_alive);
    RUN(body_cap);
    RUN(heads_refused_as_the_data_path_refuses_them);
    RUN(other_coding_runs_to_close);
    RUN(head_too_large);
    return harness_done();
}
