/* Unit tests for user/common/http1.c (table-driven). */
#include "common/http1.h"

#include <stdlib.h>

#include "harness.h"

#define MAXH 8192

/* ---- request heads ---- */

struct head_case {
    const char *what;
    const char *in;
    int rc;            /* > 0: expect complete with head_len == strlen(in) */
    int64_t cl;
    int chunked, keep_alive, h2c, expect;
    int minor;
};

#define OK 1 /* placeholder: complete */

static const struct head_case heads[] = {
    { "simple GET", "GET /v1/models HTTP/1.1\r\nHost: a\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "POST with CL", "POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", OK, 12, 0, 1, 0, 0, 1 },
    { "CL zero", "POST / HTTP/1.1\r\ncontent-length: 0\r\n\r\n", OK, 0, 0, 1, 0, 0, 1 },
    { "duplicate identical CL", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", OK, 5, 0, 1, 0, 0, 1 },
    { "chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", OK, -1, 1, 1, 0, 0, 1 },
    { "chunked last coding", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", OK, -1, 1, 1, 0, 0, 1 },
    { "1.0 default close", "GET / HTTP/1.0\r\n\r\n", OK, -1, 0, 0, 0, 0, 0 },
    { "1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", OK, -1, 0, 1, 0, 0, 0 },
    { "1.1 close", "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", OK, -1, 0, 0, 0, 0, 1 },
    { "connection list", "GET / HTTP/1.1\r\nConnection: Upgrade ,  CLOSE\r\n\r\n", OK, -1, 0, 0, 0, 0, 1 },
    { "close wins over keep-alive", "GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", OK, -1, 0, 0, 0, 0, 0 },
    { "closed is not close", "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "h2c upgrade", "GET / HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket, H2C\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n", OK, -1, 0, 1, 1, 0, 1 },
    { "h2c without settings", "GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "upgrade h2c-ish token", "GET / HTTP/1.1\r\nUpgrade: h2cx\r\nHTTP2-Settings: x\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "expect", "POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", OK, 3, 0, 1, 0, 1, 1 },
    { "OWS trimmed", "GET / HTTP/1.1\r\nX-A: \t v a l \t \r\nX-B:\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "leading CRLF ignored", "\r\nGET / HTTP/1.1\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "obs-text in value", "GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    { "absolute-form target", "GET http://h/x?y=1 HTTP/1.1\r\n\r\n", OK, -1, 0, 1, 0, 0, 1 },
    /* malformed */
    { "CL + TE", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "TE + CL", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "duplicate different CL", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "CL list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "CL sign", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "CL hex", "POST / HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "CL empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "CL overflow", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775808\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "CL max", "POST / HTTP/1.1\r\nContent-Length: 9223372036854775807\r\n\r\n", OK, INT64_MAX, 0, 1, 0, 0, 1 },
    { "TE not chunked last", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "TE chunked twice", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "space before colon", "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "obs-fold", "GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "space first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "bare LF request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "bare LF header", "GET / HTTP/1.1\r\nHost: a\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "bare LF end", "GET / HTTP/1.1\r\nHost: a\r\n\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "bare CR in value", "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "NUL in value", "GET / HTTP/1.1\r\nX: a\001b\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "bad name char", "GET / HTTP/1.1\r\nX(a): a\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "no colon", "GET / HTTP/1.1\r\nHost\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "empty method", " / HTTP/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "bad method char", "G@T / HTTP/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "empty target", "GET  HTTP/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "target with CTL", "GET /a\001b HTTP/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "target with tab", "GET /a\tb HTTP/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "two spaces", "GET / x HTTP/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "lowercase http", "GET / http/1.1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "version junk", "GET / HTTP/1.1x\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "version 1.10", "GET / HTTP/1.10\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "version no minor", "GET / HTTP/1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "tls hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", HTTP1_ERR_BAD, 0, 0, 0, 0, 0, 0 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\n\r\n", HTTP1_ERR_VERSION, 0, 0, 0, 0, 0, 0 },
    { "HTTP/1.2", "GET / HTTP/1.2\r\n\r\n", HTTP1_ERR_VERSION, 0, 0, 0, 0, 0, 0 },
    { "HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", HTTP1_ERR_VERSION, 0, 0, 0, 0, 0, 0 },
    { "HTTP/3.0", "GET / HTTP/3.0\r\nHost: a\r\n\r\n", HTTP1_ERR_VERSION, 0, 0, 0, 0, 0, 0 },
    /* incomplete */
    { "incomplete", "GET / HTTP/1.1\r\nHost: a\r\n", HTTP1_INCOMPLETE, 0, 0, 0, 0, 0, 0 },
    { "incomplete CR", "GET / HTTP/1.1\r\nHost: a\r\n\r", HTTP1_INCOMPLETE, 0, 0, 0, 0, 0, 0 },
    { "empty", "", HTTP1_INCOMPLETE, 0, 0, 0, 0, 0, 0 },
};

TEST(head_table)
{
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        const struct head_case *t = &heads[i];
        struct http1_request req;
        size_t len = strlen(t->in);
        int rc = http1_parse_request(t->in, len, MAXH, &req);
        int want = t->rc == OK ? (int)len : t->rc;
        if (rc != want) {
            fprintf(stderr, "  case '%s': rc %d, want %d\n", t->what, rc, want);
            CHECK_EQ(rc, want);
            continue;
        }
        if (t->rc != OK)
            continue;
        int bad = req.head_len != len || req.content_length != t->cl ||
                  req.chunked != t->chunked || req.keep_alive != t->keep_alive ||
                  req.upgrade_h2c != t->h2c || req.expect_continue != t->expect ||
                  req.minor != t->minor;
        if (bad)
            fprintf(stderr, "  case '%s': cl %lld ch %d ka %d h2c %d exp %d minor %d\n",
                    t->what, (long long)req.content_length, req.chunked,
                    req.keep_alive, req.upgrade_h2c, req.expect_continue, req.minor);
        CHECK(!bad);
    }
}

TEST(fields_point_into_buffer)
{
    const char *in = "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: pod-1:8000\r\n"
                     "X-Empty:   \r\nUser-Agent:  curl/8  \r\n\r\nBODY";
    struct http1_request req;
    int rc = http1_parse_request(in, strlen(in), MAXH, &req);
    CHECK_EQ(rc, (int)(strlen(in) - 4));
    CHECK(req.method == in && req.method_len == 4);
    CHECK_EQ(req.target_len, strlen("/v1/chat/completions?x=1"));
    CHECK(memcmp(req.target, "/v1/chat/completions?x=1", req.target_len) == 0);
    CHECK_EQ(req.nheaders, 3);
    const struct http1_header *h = http1_find(&req, "HOST");
    CHECK(h && h->value_len == 10 && memcmp(h->value, "pod-1:8000", 10) == 0);
    h = http1_find(&req, "x-empty");
    CHECK(h && h->value_len == 0);
    h = http1_find(&req, "user-agent");
    CHECK(h && h->value_len == 6 && memcmp(h->value, "curl/8", 6) == 0);
    CHECK(http1_find(&req, "missing") == NULL);
}

/* Every proper prefix of a valid request is INCOMPLETE; every prefix of a
 * bad one is INCOMPLETE or the same error. */
TEST(every_split_point)
{
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++) {
        const struct head_case *t = &heads[i];
        size_t len = strlen(t->in);
        int want = t->rc == OK ? (int)len : t->rc;
        for (size_t k = 0; k < len; k++) {
            struct http1_request req;
            int rc = http1_parse_request(t->in, k, MAXH, &req);
            if (rc != HTTP1_INCOMPLETE && (t->rc == OK || rc != want)) {
                fprintf(stderr, "  case '%s' prefix %zu: rc %d\n", t->what, k, rc);
                CHECK(0);
                break;
            }
        }
        /* And with trailing body bytes, the head length does not change. */
        if (t->rc == OK) {
            char buf[512];
            snprintf(buf, sizeof(buf), "%sXYZ", t->in);
            struct http1_request req;
            CHECK_EQ(http1_parse_request(buf, len + 3, MAXH, &req), want);
        }
    }
}

TEST(too_large)
{
    char buf[4096];
    struct http1_request req;
    /* Head of 100 bytes with max_head 64: too large, complete or not. */
    snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\n\r\n",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    size_t len = strlen(buf);
    CHECK(len > 64);
    CHECK_EQ(http1_parse_request(buf, len, 64, &req), HTTP1_ERR_TOO_LARGE);
    CHECK_EQ(http1_parse_request(buf, 64, 64, &req), HTTP1_ERR_TOO_LARGE);
    CHECK_EQ(http1_parse_request(buf, 63, 64, &req), HTTP1_INCOMPLETE);
    /* Exactly max_head is fine. */
    CHECK_EQ(http1_parse_request(buf, len, len, &req), (int)len);
    CHECK_EQ(http1_parse_request(buf, len, len - 1, &req), HTTP1_ERR_TOO_LARGE);
    /* A syntax error within the window is reported as such. */
    CHECK_EQ(http1_parse_request("GET / HTTP/1.1\nxxxxxxxxxxxxx", 28, 20, &req),
             HTTP1_ERR_BAD);

    /* 64 headers ok, 65 too many. */
    for (int nh = 64; nh <= 65; nh++) {
        size_t o = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
        for (int i = 0; i < nh; i++)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o, "X-%d: v\r\n", i);
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "\r\n");
        int rc = http1_parse_request(buf, o, MAXH, &req);
        if (nh == 64) {
            CHECK_EQ(rc, (int)o);
            CHECK_EQ(req.nheaders, 64);
        } else {
            CHECK_EQ(rc, HTTP1_ERR_TOO_LARGE);
        }
    }
}

/* ---- chunked decoder ---- */

struct chunk_case {
    const char *what;
    const char *in;
    long consumed;     /* -1: error */
    const char *body;
};

static const struct chunk_case chunks[] = {
    { "simple", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", -2, "hello world" },
    { "hex upper/lower", "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", -2, "0123456789abcdefghij" },
    { "leading zeros", "0005\r\nhello\r\n000\r\n\r\n", -2, "hello" },
    { "extensions", "5;name=val;x\r\nhello\r\n3 ; q=\"a b\"\r\nabc\r\n0;last\r\n\r\n", -2, "helloabc" },
    { "trailers", "3\r\nabc\r\n0\r\nX-T: 1\r\nY: 2\r\n\r\n", -2, "abc" },
    { "empty body", "0\r\n\r\n", -2, "" },
    { "stops at end", "1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n", 11, "a" },
    { "bad hex", "g\r\nx\r\n0\r\n\r\n", -1, NULL },
    { "empty size", "\r\n", -1, NULL },
    { "missing CRLF after data", "3\r\nabcX\r\n0\r\n\r\n", -1, NULL },
    { "LF only after size", "3\nabc\r\n0\r\n\r\n", -1, NULL },
    { "LF only after data", "3\r\nabc\n0\r\n\r\n", -1, NULL },
    { "bare LF end", "0\r\n\n", -1, NULL },
    { "overflow", "10000000000000000\r\n", -1, NULL },
    { "size junk", "5x\r\nhello\r\n", -1, NULL },
};

/* Feeds in pieces of `step` bytes (0: all at once), decoding into a
 * separate buffer (or in place when inplace). Returns consumed or -1. */
static long feed(const char *in, size_t len, size_t step, int inplace,
                 char *out, size_t *out_len, int *done)
{
    struct http1_chunked c = { 0 };
    char *work = malloc(len + 1);
    memcpy(work, in, len);
    size_t pos = 0, olen = 0, pending = 0;
    long total = 0;
    while (pos < len && !c.done) {
        size_t n = step ? step : len;
        if (n > len - pos)
            n = len - pos;
        pending += n;
        size_t got;
        char *src = work + pos - (pending - n);
        long rc = http1_chunked_decode(&c, src, pending,
                                       inplace ? src : out + olen, &got);
        if (rc < 0) {
            free(work);
            return -1;
        }
        if (got > (size_t)rc) {
            free(work);
            return -3; /* invariant broken */
        }
        if (inplace)
            memcpy(out + olen, src, got);
        olen += got;
        total += rc;
        pending -= (size_t)rc;
        pos += n;
    }
    free(work);
    *out_len = olen;
    *done = c.done;
    return total;
}

TEST(chunked_table)
{
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        const struct chunk_case *t = &chunks[i];
        size_t len = strlen(t->in);
        for (size_t step = 0; step <= 3; step++) {
            for (int inplace = 0; inplace <= 1; inplace++) {
                char out[256];
                size_t olen = 0;
                int done = 0;
                long rc = feed(t->in, len, step, inplace, out, &olen, &done);
                long want = t->consumed == -2 ? (long)len : t->consumed;
                int ok = rc == want;
                if (ok && want >= 0)
                    ok = done && olen == strlen(t->body) &&
                         memcmp(out, t->body, olen) == 0;
                if (!ok)
                    fprintf(stderr, "  case '%s' step %zu inplace %d: rc %ld\n",
                            t->what, step, inplace, rc);
                CHECK(ok);
            }
        }
    }
}

TEST(chunked_incomplete_and_done)
{
    struct http1_chunked c = { 0 };
    char out[64];
    size_t n;
    /* Half a chunk: consumes the size line and the available data. */
    CHECK_EQ(http1_chunked_decode(&c, "a\r\n01234", 8, out, &n), 8);
    CHECK_EQ(n, 5);
    CHECK_EQ(c.remaining, 5);
    CHECK(!c.done);
    CHECK_EQ(http1_chunked_decode(&c, "56789\r\n0\r\n\r\n", 12, out, &n), 12);
    CHECK_EQ(n, 5);
    CHECK(c.done);
    /* Once done, nothing more is consumed. */
    CHECK_EQ(http1_chunked_decode(&c, "5\r\n", 3, out, &n), 0);
    CHECK_EQ(n, 0);
    /* Largest size that fits does not overflow; one more digit does. */
    struct http1_chunked d = { 0 };
    CHECK_EQ(http1_chunked_decode(&d, "ffffffffffffffff", 16, out, &n), 16);
    CHECK_EQ(http1_chunked_decode(&d, "f", 1, out, &n), -1);
}

/* ---- response heads (a pod's answer) ---- */

struct resp_case {
    const char *what;
    const char *in;
    int rc;            /* OK: complete with head_len == strlen(in) */
    int status;
    int64_t cl;
    int chunked, until_close, keep_alive;
};

static const struct resp_case resps[] = {
    { "200 with CL", "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", OK, 200, 5, 0, 0, 1 },
    { "chunked SSE", "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n", OK, 200, -1, 1, 0, 1 },
    { "no framing: until close", "HTTP/1.1 200 OK\r\n\r\n", OK, 200, -1, 0, 1, 0 },
    { "empty reason", "HTTP/1.1 204 \r\n\r\n", OK, 204, -1, 0, 1, 0 },
    { "no reason, no SP", "HTTP/1.1 500\r\ncontent-length: 0\r\n\r\n", OK, 500, 0, 0, 0, 1 },
    { "close", "HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 1\r\n\r\n", OK, 200, 1, 0, 0, 0 },
    { "1.0 keep-alive", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 1\r\n\r\n", OK, 200, 1, 0, 0, 1 },
    { "1.0 default close", "HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", OK, 200, 1, 0, 0, 0 },
    { "TE overrides CL, no reuse", "HTTP/1.1 200 OK\r\ncontent-length: 9\r\ntransfer-encoding: chunked\r\n\r\n", OK, 200, -1, 1, 0, 0 },
    { "TE not chunked: until close", "HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n", OK, 200, -1, 0, 1, 0 },
    { "obs-text value", "HTTP/1.1 200 OK\r\nx: caf\xc3\xa9\r\ncontent-length: 0\r\n\r\n", OK, 200, 0, 0, 0, 1 },
    { "100 continue", "HTTP/1.1 100 Continue\r\n\r\n", OK, 100, -1, 0, 1, 0 },
    { "incomplete", "HTTP/1.1 200 OK\r\ncontent-len", HTTP1_INCOMPLETE, 0, 0, 0, 0, 0 },
    { "incomplete status", "HTTP/1.", HTTP1_INCOMPLETE, 0, 0, 0, 0, 0 },
    /* a pod's bytes that must never reach a client */
    { "bare CR in value", "HTTP/1.1 200 OK\r\nx-evil: a\rInjected: 1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "bare LF ends a line", "HTTP/1.1 200 OK\r\nx-evil: a\nInjected: 1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "LF-only lines", "HTTP/1.1 200 OK\ncontent-length: 0\n\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "NUL in value", "HTTP/1.1 200 OK\r\nx: a\0b\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "control byte", "HTTP/1.1 200 OK\r\nx: a\x01" "b\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "DEL in value", "HTTP/1.1 200 OK\r\nx: a\x7f\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "space in name", "HTTP/1.1 200 OK\r\nx evil: 1\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "space before colon", "HTTP/1.1 200 OK\r\ncontent-length : 5\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "obs-fold", "HTTP/1.1 200 OK\r\nx: a\r\n b\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "two CLs", "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "CL junk", "HTTP/1.1 200 OK\r\ncontent-length: 1x\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "status 2 digits", "HTTP/1.1 20 OK\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "status below 100", "HTTP/1.1 099 X\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "HTTP/2 status line", "HTTP/2 200\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
    { "junk", "<html>", HTTP1_ERR_BAD, 0, 0, 0, 0, 0 },
};

TEST(response_table)
{
    for (size_t i = 0; i < sizeof(resps) / sizeof(resps[0]); i++) {
        const struct resp_case *t = &resps[i];
        size_t n = strlen(t->in);
        if (strstr(t->what, "NUL"))
            n = 27; /* the literal holds a NUL */
        struct http1_response r;
        int rc = http1_parse_response(t->in, n, MAXH, &r);
        if (t->rc == OK) {
            CHECK_EQ(rc, (int)n);
            if (rc != (int)n) {
                fprintf(stderr, "    case: %s\n", t->what);
                continue;
            }
            CHECK_EQ(r.status, t->status);
            CHECK_EQ(r.content_length, t->cl);
            CHECK_EQ(r.chunked, t->chunked);
            CHECK_EQ(r.until_close, t->until_close);
            CHECK_EQ(r.keep_alive, t->keep_alive);
        } else {
            CHECK_EQ(rc, t->rc);
            if (rc != t->rc)
                fprintf(stderr, "    case: %s\n", t->what);
        }
    }
}

TEST(response_every_split_point)
{
    /* every prefix of a valid head is INCOMPLETE, never an error */
    const char *in = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                     "transfer-encoding: chunked\r\nx-a: b\r\n\r\n";
    struct http1_response r;
    for (size_t k = 0; k < strlen(in); k++)
        CHECK_EQ(http1_parse_response(in, k, MAXH, &r), HTTP1_INCOMPLETE);
    CHECK_EQ(http1_parse_response(in, strlen(in), MAXH, &r), (int)strlen(in));
    CHECK_EQ(r.nheaders, 3);
    /* over max_head without an end: too large */
    CHECK_EQ(http1_parse_response(in, 20, 20, &r), HTTP1_ERR_TOO_LARGE);
}

TEST(has_token)
{
    CHECK(http1_has_token("keep-alive, X-Secret", 20, "x-secret"));
    CHECK(!http1_has_token("keep-alive, X-Secrets", 21, "x-secret"));
    CHECK(http1_has_token(" a ,b", 5, "B"));
    CHECK(!http1_has_token("", 0, "a"));
}

TEST(name_eq)
{
    CHECK(http1_name_eq("Content-Length", 14, "content-length"));
    CHECK(http1_name_eq("content-length", 14, "Content-Length"));
    CHECK(!http1_name_eq("content-lengthX", 15, "content-length"));
    CHECK(!http1_name_eq("content-lengt", 13, "content-length"));
    CHECK(!http1_name_eq("content_length", 14, "content-length"));
    CHECK(http1_name_eq("", 0, ""));
    /* only ASCII letters fold: '@' (0x40) is not '`' (0x60) */
    CHECK(!http1_name_eq("@", 1, "`"));
    /* the length rules, not a NUL: a name inside a larger buffer */
    CHECK(http1_name_eq("hostname", 4, "HOST"));
}

TEST(media_type_is)
{
    static const char es[] = "text/event-stream";
    CHECK(http1_media_type_is("text/event-stream", 17, es));
    CHECK(http1_media_type_is("Text/Event-Stream; charset=utf-8", 32, es));
    CHECK(http1_media_type_is("text/event-stream;charset=utf-8", 31, es));
    CHECK(http1_media_type_is(" text/event-stream ", 19, es));
    CHECK(!http1_media_type_is("text/event-streams", 18, es));
    CHECK(!http1_media_type_is("text/event", 10, es));
    CHECK(!http1_media_type_is("application/json", 16, es));
    CHECK(!http1_media_type_is("", 0, es));
    /* the length bounds the value: what follows in the buffer is not read */
    CHECK(http1_media_type_is("text/event-streamXYZ", 17, es));
}

int main(void)
{
    RUN(head_table);
    RUN(fields_point_into_buffer);
    RUN(every_split_point);
    RUN(too_large);
    RUN(chunked_table);
    RUN(chunked_incomplete_and_done);
    RUN(response_table);
    RUN(response_every_split_point);
    RUN(has_token);
    RUN(name_eq);
    RUN(media_type_is);
    return harness_done();
}
