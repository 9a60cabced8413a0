/* Unit tests for bench/loadgen/sse.c, stream.c, httpresp.c and the
 * percentile math of stats.c: SSE framing split at every byte, CRLF and CR
 * line ends, comments, chunked encoding cut inside "data:", and the request
 * record a stream produces. */
#include "harness.h"

#include <stdlib.h>

#include "../../../bench/loadgen/httpresp.c"
#include "../../../bench/loadgen/sse.c"
#include "../../../bench/loadgen/stats.c"
#include "../../../bench/loadgen/stream.c"

/* A realistic vLLM chat stream: role chunk, 3 tokens, finish, usage, DONE. */
#define HEAD_ID "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
static const char STREAM[] =
    "data: " HEAD_ID "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    "data: " HEAD_ID "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" abc\"},"
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    ": ping\n\n"
    "data: " HEAD_ID "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" d\\\"e\"},"
    "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
    "data: " HEAD_ID "\"choices\":[{\"index\":0,\"delta\":{\"content\":\" xyz\"},"
    "\"logprobs\":null,\"finish_reason\":\"length\",\"stop_reason\":null}]}\n\n"
    "data: " HEAD_ID "\"choices\":[],\"usage\":{\"prompt_tokens\":300,\"total_tokens\":303,"
    "\"completion_tokens\":3,\"prompt_tokens_details\":{\"cached_tokens\":288}}}\n\n"
    "data: [DONE]\n\n";
#define STREAM_EVENTS 6

/* ---- raw SSE parser ---- */

struct collected {
    int n;
    char ev[16][1024];
};

static int collect(void *arg, const char *d, size_t n)
{
    struct collected *c = arg;
    if (c->n < 16 && n < 1024) {
        memcpy(c->ev[c->n], d, n);
        c->ev[c->n][n] = 0;
    }
    c->n++;
    return 0;
}

/* Feeds s as pieces cut at a and b (a <= b). */
static int feed3(struct lg_sse *p, const char *s, size_t n, size_t a, size_t b,
                 struct collected *c)
{
    int rc = lg_sse_feed(p, s, a, collect, c);
    rc |= lg_sse_feed(p, s + a, b - a, collect, c);
    rc |= lg_sse_feed(p, s + b, n - b, collect, c);
    return rc;
}

TEST(sse_every_split_point)
{
    static struct collected ref, got;
    struct lg_sse p;
    size_t n = strlen(STREAM);
    memset(&ref, 0, sizeof(ref));
    lg_sse_init(&p);
    CHECK_EQ(lg_sse_feed(&p, STREAM, n, collect, &ref), 0);
    lg_sse_free(&p);
    CHECK_EQ(ref.n, STREAM_EVENTS);
    CHECK_STR(ref.ev[5], "[DONE]");
    CHECK(strstr(ref.ev[4], "\"cached_tokens\":288") != NULL);
    int bad = 0;
    for (size_t a = 0; a <= n; a++) {
        memset(&got, 0, sizeof(got));
        lg_sse_init(&p);
        feed3(&p, STREAM, n, a, a, &got);
        lg_sse_free(&p);
        if (got.n != ref.n || memcmp(&got, &ref, sizeof(got)))
            bad++;
    }
    CHECK_EQ(bad, 0);
    /* byte by byte */
    memset(&got, 0, sizeof(got));
    lg_sse_init(&p);
    for (size_t i = 0; i < n; i++)
        lg_sse_feed(&p, STREAM + i, 1, collect, &got);
    lg_sse_free(&p);
    CHECK(memcmp(&got, &ref, sizeof(got)) == 0);
}

/* Replaces "\n" with eol. */
static char *with_eol(const char *s, const char *eol)
{
    size_t n = strlen(s), k = strlen(eol);
    char *o = malloc(n * k + 1), *q = o;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            memcpy(q, eol, k);
            q += k;
        } else {
            *q++ = s[i];
        }
    }
    *q = 0;
    return o;
}

TEST(sse_crlf_and_cr_line_ends_split_anywhere)
{
    static struct collected ref, got;
    struct lg_sse p;
    memset(&ref, 0, sizeof(ref));
    lg_sse_init(&p);
    lg_sse_feed(&p, STREAM, strlen(STREAM), collect, &ref);
    lg_sse_free(&p);
    const char *eols[] = { "\r\n", "\r" };
    for (int e = 0; e < 2; e++) {
        char *s = with_eol(STREAM, eols[e]);
        size_t n = strlen(s);
        int bad = 0;
        /* every pair of cut points, on a stride to keep it quick */
        for (size_t a = 0; a <= n; a += 1)
            for (size_t b = a; b <= n; b += (a % 7 == 0) ? 1 : 97) {
                memset(&got, 0, sizeof(got));
                lg_sse_init(&p);
                feed3(&p, s, n, a, b, &got);
                lg_sse_free(&p);
                if (memcmp(&got, &ref, sizeof(got)))
                    bad++;
            }
        CHECK_EQ(bad, 0);
        free(s);
    }
}

TEST(sse_fields_comments_multiline)
{
    static struct collected got;
    struct lg_sse p;
    const char s[] = ": keep-alive\n"
                     "event: message\nid: 7\nretry: 1000\ndata: one\n\n"
                     ":ping\r\n\r\n"          /* a comment alone dispatches nothing */
                     "data:two\ndata: three\n\n" /* no space; two data lines */
                     "data\n\n"                /* a field with no colon: empty data */
                     "unknown: x\n\n"          /* no data: no event */
                     "data: tail";             /* incomplete: not dispatched */
    memset(&got, 0, sizeof(got));
    lg_sse_init(&p);
    CHECK_EQ(lg_sse_feed(&p, s, strlen(s), collect, &got), 0);
    CHECK_EQ(got.n, 3);
    CHECK_STR(got.ev[0], "one");
    CHECK_STR(got.ev[1], "two\nthree");
    CHECK_STR(got.ev[2], "");
    lg_sse_feed(&p, "\n\n", 2, collect, &got);
    CHECK_EQ(got.n, 4);
    CHECK_STR(got.ev[3], "tail");
    lg_sse_free(&p);
}

TEST(sse_line_too_long)
{
    struct lg_sse p;
    struct collected got = { 0 };
    lg_sse_init(&p);
    p.max_line = 64;
    char big[200];
    memset(big, 'x', sizeof(big));
    memcpy(big, "data: ", 6);
    CHECK_EQ(lg_sse_feed(&p, big, sizeof(big), collect, &got), -E2BIG);
    lg_sse_free(&p);
}

/* ---- HTTP framing + stream -> request record ---- */

/* What a transport does: head into a buffer, then the body decoded in
 * place and handed to the stream, with a clock that ticks per piece. */
struct client {
    struct lg_hresp hr;
    char head[4096];
    size_t head_len;
    int head_done, complete, bad;
    struct lg_req *r;
    uint64_t now;
};

static void client_feed(struct client *c, const char *p, size_t n)
{
    char buf[8192];
    c->now += 1000000; /* 1 ms per piece */
    if (c->bad || c->complete)
        return;
    if (!c->head_done) {
        memcpy(c->head + c->head_len, p, n);
        c->head_len += n;
        int rc = lg_hresp_head(&c->hr, c->head, c->head_len);
        if (rc == 0)
            return;
        if (rc < 0) {
            c->bad = 1;
            return;
        }
        c->head_done = 1;
        lg_stream_head(c->r, c->hr.status, c->hr.event_stream, c->hr.dest, c->hr.dest_len);
        n = c->head_len - (size_t)rc;
        memcpy(buf, c->head + rc, n);
    } else {
        memcpy(buf, p, n);
    }
    size_t out;
    long used = lg_hresp_body(&c->hr, buf, n, &out);
    if (used < 0) {
        c->bad = 1;
        return;
    }
    lg_stream_body(c->r, buf, out, c->now);
    if (c->hr.done) {
        c->complete = 1;
        lg_stream_end(c->r, c->now);
    }
}

/* The stream as a chunked response, chunk i of size sizes[i % nsizes]. */
static size_t chunked_response(char *out, const char *body, const size_t *sizes, size_t nsizes)
{
    size_t o = (size_t)sprintf(out, "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; "
                                    "charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
                                    "X-Gateway-Destination-Endpoint: 10.0.0.7:8000\r\n\r\n");
    size_t n = strlen(body), i = 0, k = 0;
    while (i < n) {
        size_t c = sizes[k++ % nsizes];
        if (c > n - i)
            c = n - i;
        o += (size_t)sprintf(out + o, "%zx\r\n", c);
        memcpy(out + o, body + i, c);
        o += c;
        memcpy(out + o, "\r\n", 2);
        o += 2;
        i += c;
    }
    memcpy(out + o, "0\r\n\r\n", 5);
    return o + 5;
}

static void req_reset(struct lg_req *r)
{
    lg_stream_close(r);
    free(r->itl_us);
    free(r->errmsg);
    memset(r, 0, sizeof(*r));
    lg_stream_open(r, 1);
}

static int check_record(struct lg_req *r)
{
    int ok = r->err == LG_OK && r->status == 200 && r->n_content == 3 && r->has_usage &&
             r->completion_tokens == 3 && r->prompt_tokens == 300 && r->cached_tokens == 288 &&
             r->n_itl == 2 && !strcmp(r->pod, "10.0.0.7:8000") && r->first_ns > 0 &&
             r->last_ns >= r->first_ns;
    if (ok && r->st)
        ok = r->st->text.len == 12 && !memcmp(r->st->text.data, " abc d\"e xyz", 12);
    return ok;
}

TEST(stream_record_from_chunked_response_every_split)
{
    static char raw[16384];
    /* chunks of 5 and 3 bytes: boundaries fall inside "data:" again and again */
    const size_t sizes[] = { 5, 3, 1, 17 };
    size_t n = chunked_response(raw, STREAM, sizes, 4);
    CHECK(strstr(raw, "\r\nda\r\n") != NULL || strstr(raw, "\r\nd\r\n") != NULL ||
          strstr(raw, "dat\r\n") != NULL);
    struct lg_req r = { 0 };
    int bad = 0;
    for (size_t a = 0; a <= n; a++) {
        req_reset(&r);
        struct client c = { .r = &r };
        client_feed(&c, raw, a);
        client_feed(&c, raw + a, n - a);
        if (!c.complete || c.bad || !check_record(&r))
            bad++;
    }
    CHECK_EQ(bad, 0);
    /* byte by byte: every event in its own piece, 1 ms apart */
    req_reset(&r);
    struct client c = { .r = &r };
    for (size_t i = 0; i < n; i++)
        client_feed(&c, raw + i, 1);
    CHECK(c.complete && check_record(&r));
    CHECK(r.itl_us[0] > 0 && r.itl_us[1] > 0);
    lg_stream_close(&r);
    free(r.itl_us);
    free(r.errmsg);
}

TEST(stream_chunk_boundary_inside_data_keyword)
{
    /* chunk boundaries split "da" / "ta: ", "d" / "ata:", and CR / LF */
    const char *pieces[] = {
        "da",
        "ta: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\r",
        "\n\r\nd",
        "ata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,"
        "\"prompt_tokens_details\":{\"cached_tokens\":0}}}\r\n\r\n",
        "data: [DONE]\r\n\r\n",
    };
    char raw[2048];
    size_t o = (size_t)sprintf(raw, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                    "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++)
        o += (size_t)sprintf(raw + o, "%zx\r\n%s\r\n", strlen(pieces[k]), pieces[k]);
    o += (size_t)sprintf(raw + o, "0\r\n\r\n");
    struct lg_req r = { 0 };
    size_t n = strlen(raw);
    int bad = 0;
    for (size_t a = 0; a <= n; a++) {
        req_reset(&r);
        r.st->keep_text = 0;
        struct client c = { .r = &r };
        client_feed(&c, raw, a);
        client_feed(&c, raw + a, n - a);
        if (!c.complete || c.bad || r.err != LG_OK || r.n_content != 1 ||
            r.completion_tokens != 1 || r.prompt_tokens != 5 || !r.has_usage)
            bad++;
    }
    CHECK_EQ(bad, 0);
    lg_stream_close(&r);
    free(r.itl_us);
    free(r.errmsg);
}

TEST(stream_errors_and_incomplete)
{
    struct lg_req r = { 0 };
    /* a 429 with an OpenAI error body (content-length framing) */
    const char ebody[] = "{\"error\":{\"message\":\"overloaded\",\"type\":\"x\",\"param\":null,"
                         "\"code\":429}}";
    char e429[512];
    snprintf(e429, sizeof(e429), "HTTP/1.1 429 Too Many Requests\r\ncontent-type: "
             "application/json\r\ncontent-length: %zu\r\n\r\n%s", strlen(ebody), ebody);
    req_reset(&r);
    struct client c = { .r = &r };
    client_feed(&c, e429, strlen(e429) - 10);
    CHECK(!c.complete);
    client_feed(&c, e429 + strlen(e429) - 10, 10);
    CHECK(c.complete);
    CHECK_EQ(r.status, 429);
    CHECK_EQ(r.err, LG_E_HTTP);
    CHECK_STR(r.errmsg, "overloaded");
    /* an error event mid-stream, then DONE */
    const char body[] = "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"
                        "data: {\"error\":{\"message\":\"boom\",\"code\":500}}\n\n"
                        "data: [DONE]\n\n";
    char mid[512];
    snprintf(mid, sizeof(mid), "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                               "content-length: %zu\r\n\r\n%s", strlen(body), body);
    req_reset(&r);
    struct client c2 = { .r = &r };
    client_feed(&c2, mid, strlen(mid));
    CHECK(c2.complete);
    CHECK_EQ(r.err, LG_E_STREAM);
    CHECK_STR(r.errmsg, "boom");
    /* a stream without [DONE] */
    req_reset(&r);
    r.status = 200;
    r.st->event_stream = 1;
    lg_stream_body(&r, "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n", 48, 5);
    CHECK_EQ(lg_stream_end(&r, 6), LG_E_INCOMPLETE);
    CHECK_EQ(r.n_content, 1);
    lg_stream_close(&r);
    free(r.itl_us);
    free(r.errmsg);
}

TEST(response_heads)
{
    struct lg_hresp h;
    const char a[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
    CHECK_EQ(lg_hresp_head(&h, a, strlen(a)), (int)strlen(a) - 5);
    CHECK(h.mode == LG_BODY_LENGTH && h.content_length == 5 && !h.keep_alive);
    CHECK_EQ(lg_hresp_head(&h, a, 20), LG_HRESP_INCOMPLETE);
    const char b[] = "HTTP/1.0 200 OK\nContent-Type: text/event-stream\n\n";
    CHECK_EQ(lg_hresp_head(&h, b, strlen(b)), (int)strlen(b));
    CHECK(h.mode == LG_BODY_CLOSE && !h.keep_alive && h.event_stream && h.minor == 0);
    CHECK(lg_hresp_eof(&h));
    const char c[] = "HTTP/1.1 100 Continue\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, c, strlen(c)), (int)strlen(c));
    CHECK(h.status == 100 && h.mode == LG_BODY_NONE && h.done);
    const char d[] = "HTTP/1.1 204 No Content\r\n\r\n";
    CHECK(lg_hresp_head(&h, d, strlen(d)) > 0 && h.done && h.keep_alive);
    const char bad1[] = "HTTP/2 200\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, bad1, strlen(bad1)), LG_HRESP_BAD);
    const char bad2[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, bad2, strlen(bad2)), LG_HRESP_BAD);
    const char bad3[] = "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, bad3, strlen(bad3)), LG_HRESP_BAD);
    const char te[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
    CHECK(lg_hresp_head(&h, te, strlen(te)) > 0 && h.mode == LG_BODY_CHUNKED);
}

/* The head parser is common/http1's http1_parse_response: kvgated's rules
 * for what frames a body and what is malformed, loadgen's tolerance of
 * bare LF line ends kept. */
TEST(response_heads_shared_rules)
{
    struct lg_hresp h;
    /* response splitting: a control byte in a value, a name outside tchar */
    const char ctl[] = "HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, ctl, sizeof(ctl) - 1), LG_HRESP_BAD);
    const char nm[] = "HTTP/1.1 200 OK\r\nX(A): 1\r\nContent-Length: 0\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, nm, sizeof(nm) - 1), LG_HRESP_BAD);
    /* chunked twice is ambiguous framing */
    const char cc[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n";
    CHECK_EQ(lg_hresp_head(&h, cc, sizeof(cc) - 1), LG_HRESP_BAD);
    /* Transfer-Encoding over Content-Length: framed by chunks, and the
     * connection is not reused */
    const char te[] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK(lg_hresp_head(&h, te, sizeof(te) - 1) > 0 && h.mode == LG_BODY_CHUNKED && !h.keep_alive);
    /* a coding other than chunked last: until close */
    const char gz[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
    CHECK(lg_hresp_head(&h, gz, sizeof(gz) - 1) > 0 && h.mode == LG_BODY_CLOSE && !h.keep_alive);
    /* the media type, not a prefix of it */
    const char es[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-streams\r\n"
                      "Content-Length: 0\r\n\r\n";
    CHECK(lg_hresp_head(&h, es, sizeof(es) - 1) > 0 && !h.event_stream);
    const char es2[] = "HTTP/1.1 200 OK\r\ncontent-type: Text/Event-Stream; charset=utf-8\r\n"
                       "X-Gateway-Destination-Endpoint:  10.0.0.5:8000 \r\n"
                       "Transfer-Encoding: chunked\r\n\r\n";
    CHECK(lg_hresp_head(&h, es2, sizeof(es2) - 1) > 0 && h.event_stream && h.keep_alive);
    CHECK(h.dest_len == 13 && !strcmp(h.dest, "10.0.0.5:8000"));
    /* bare LF heads, split anywhere: incomplete until the blank line */
    const char lf[] = "HTTP/1.1 200 OK\nContent-Length: 2\nX-Gateway-Destination-Endpoint: p:1\n\nok";
    for (size_t n = 0; n < sizeof(lf) - 3; n++)
        CHECK_EQ(lg_hresp_head(&h, lf, n), LG_HRESP_INCOMPLETE);
    CHECK_EQ(lg_hresp_head(&h, lf, sizeof(lf) - 1), (int)sizeof(lf) - 3);
    CHECK(h.mode == LG_BODY_LENGTH && h.left == 2 && h.keep_alive && !strcmp(h.dest, "p:1"));
    /* 204 without framing keeps the connection (no body to delimit) */
    const char nc[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
    CHECK(lg_hresp_head(&h, nc, sizeof(nc) - 1) > 0 && h.done && !h.keep_alive);
    const char k10[] = "HTTP/1.0 304 Not Modified\r\nConnection: keep-alive\r\n\r\n";
    CHECK(lg_hresp_head(&h, k10, sizeof(k10) - 1) > 0 && h.done && h.keep_alive);
}

/* ---- percentiles ---- */

TEST(percentiles_linear_interpolation)
{
    double v[10];
    for (int i = 0; i < 10; i++)
        v[i] = i + 1; /* 1..10 */
    CHECK_NEAR(lg_percentile(v, 10, 50), 5.5, 1e-12);
    CHECK_NEAR(lg_percentile(v, 10, 90), 9.1, 1e-12);
    CHECK_NEAR(lg_percentile(v, 10, 99), 9.91, 1e-12);
    CHECK_NEAR(lg_percentile(v, 10, 99.9), 9.991, 1e-12);
    CHECK_NEAR(lg_percentile(v, 10, 0), 1, 1e-12);
    CHECK_NEAR(lg_percentile(v, 10, 100), 10, 1e-12);
    /* numpy.percentile([15, 20, 35, 40, 50], 40) == 29 */
    double w[] = { 15, 20, 35, 40, 50 };
    CHECK_NEAR(lg_percentile(w, 5, 40), 29, 1e-12);
    CHECK_NEAR(lg_percentile(w, 5, 50), 35, 1e-12);
    double one[] = { 7 };
    CHECK_NEAR(lg_percentile(one, 1, 99.9), 7, 1e-12);
    CHECK(isnan(lg_percentile(one, 0, 50)));
    /* 1..1000: p99.9 = 999.001, p99 = 990.01 */
    static double k[1000];
    for (int i = 0; i < 1000; i++)
        k[i] = 1000 - i; /* unsorted: lg_dist_of sorts */
    struct lg_dist d;
    lg_dist_of(k, 1000, &d);
    CHECK_NEAR(d.p50, 500.5, 1e-9);
    CHECK_NEAR(d.p90, 900.1, 1e-9);
    CHECK_NEAR(d.p99, 990.01, 1e-9);
    CHECK_NEAR(d.p999, 999.001, 1e-9);
    CHECK_NEAR(d.mean, 500.5, 1e-9);
    CHECK(d.min == 1 && d.max == 1000 && d.n == 1000);
}

TEST(request_metrics_in_simulated_ms)
{
    struct lg_cfg cfg = { .time_scale = 4 };
    struct lg_run run = { .cfg = &cfg, .ns_per_sim_s = 4e9 };
    struct lg_req r = { 0 };
    r.state = LG_R_DONE;
    r.sched_ns = 1000000000;
    r.send_ns = 1004000000;  /* 4 ms wall late = 1 ms simulated */
    r.first_ns = 1044000000; /* 40 ms wall = 10 ms simulated */
    r.end_ns = 1444000000;   /* 440 ms wall = 110 ms simulated */
    r.n_content = 11;
    r.completion_tokens = 11;
    CHECK_NEAR(lg_req_lag_ms(&run, &r), 1.0, 1e-9);
    CHECK_NEAR(lg_req_ttft_ms(&run, &r), 10.0, 1e-9);
    CHECK_NEAR(lg_req_e2e_ms(&run, &r), 110.0, 1e-9);
    CHECK_NEAR(lg_req_tpot_ms(&run, &r), 10.0, 1e-9); /* (110 - 10) / 10 */
    r.completion_tokens = 1;
    r.n_content = 1;
    CHECK(isnan(lg_req_tpot_ms(&run, &r)));
}

int main(void)
{
    RUN(sse_every_split_point);
    RUN(sse_crlf_and_cr_line_ends_split_anywhere);
    RUN(sse_fields_comments_multiline);
    RUN(sse_line_too_long);
    RUN(stream_record_from_chunked_response_every_split);
    RUN(stream_chunk_boundary_inside_data_keyword);
    RUN(stream_errors_and_incomplete);
    RUN(response_heads);
    RUN(response_heads_shared_rules);
    RUN(percentiles_linear_interpolation);
    RUN(request_metrics_in_simulated_ms);
    return harness_done();
}
