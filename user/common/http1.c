/* http1: HTTP/1.1 request-head parser and chunked-body decoder. See http1.h.
 *
 * The head parser keeps no state between calls: each call re-scans from the
 * start of the buffer (heads are small and bounded by max_head). It checks
 * every byte as soon as it is seen, so garbage (a TLS hello, a bare LF) is
 * rejected without waiting for the end of the head, and a prefix of a valid
 * request always answers HTTP1_INCOMPLETE.
 *
 * Strictness (a gateway forwards requests, so ambiguity is an attack
 * surface): CRLF only; no whitespace between field name and colon; no
 * obs-fold; request-target is visible ASCII; Content-Length is digits only,
 * repeated only with the same value; Transfer-Encoding must end in chunked,
 * chunked may appear only once, and it may not be combined with
 * Content-Length or sent by an HTTP/1.0 client (RFC 9112 6.1, 6.3). */
#include "common/http1.h"

#include <stddef.h>
#include <string.h>

/* tchar from RFC 9110 5.6.2 */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar / SP / HTAB (obs-text allowed) */
static int is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
            return 0;
    return 1;
}

/* Calls fn on each element of a comma-separated list (OWS trimmed, empty
 * elements skipped); stops early when fn returns non-zero and returns it. */
static int each_token(const char *v, size_t n,
                      int (*fn)(const char *t, size_t tn, void *arg), void *arg)
{
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (s < e && (v[s] == ' ' || v[s] == '\t'))
            s++;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e > s) {
            int rc = fn(v + s, e - s, arg);
            if (rc)
                return rc;
        }
        i++; /* skip the comma */
    }
    return 0;
}

static int tok_eq(const char *t, size_t n, void *arg)
{
    return ieq(t, n, *(const char **)arg);
}

/* ---- request head ---- */

/* Scanner result codes local to this file. */
#define NEED_MORE 1

struct scan {
    const char *p;
    size_t n;  /* scan window: min(len, max_head) */
    size_t i;
};

/* Expects CRLF at the cursor. 0, NEED_MORE or HTTP1_ERR_BAD. */
static int expect_crlf(struct scan *s)
{
    if (s->i >= s->n)
        return NEED_MORE;
    if (s->p[s->i] != '\r')
        return HTTP1_ERR_BAD;
    if (s->i + 1 >= s->n)
        return NEED_MORE;
    if (s->p[s->i + 1] != '\n')
        return HTTP1_ERR_BAD;
    s->i += 2;
    return 0;
}

static int parse_request_line(struct scan *s, struct http1_request *req)
{
    /* method: 1*tchar SP */
    size_t st = s->i;
    while (s->i < s->n && is_tchar((unsigned char)s->p[s->i]))
        s->i++;
    if (s->i >= s->n)
        return NEED_MORE;
    if (s->p[s->i] != ' ' || s->i == st)
        return HTTP1_ERR_BAD;
    req->method = s->p + st;
    req->method_len = s->i - st;
    s->i++;

    /* request-target: 1*(visible ASCII) SP */
    st = s->i;
    while (s->i < s->n) {
        unsigned char c = (unsigned char)s->p[s->i];
        if (c <= 0x20 || c >= 0x7f)
            break;
        s->i++;
    }
    if (s->i >= s->n)
        return NEED_MORE;
    if (s->p[s->i] != ' ' || s->i == st)
        return HTTP1_ERR_BAD;
    req->target = s->p + st;
    req->target_len = s->i - st;
    s->i++;

    /* HTTP-version: "HTTP/" DIGIT "." DIGIT, then CRLF */
    static const char pfx[] = "HTTP/";
    for (size_t k = 0; k < 5; k++, s->i++) {
        if (s->i >= s->n)
            return NEED_MORE;
        if (s->p[s->i] != pfx[k])
            return HTTP1_ERR_BAD;
    }
    if (s->n - s->i < 3) {
        /* Validate what is there so garbage fails early. */
        for (size_t k = s->i; k < s->n; k++) {
            char c = s->p[k];
            if (k - s->i == 1 ? c != '.' : (c < '0' || c > '9'))
                return HTTP1_ERR_BAD;
        }
        return NEED_MORE;
    }
    char maj = s->p[s->i], dot = s->p[s->i + 1], min = s->p[s->i + 2];
    if (maj < '0' || maj > '9' || dot != '.' || min < '0' || min > '9')
        return HTTP1_ERR_BAD;
    s->i += 3;
    /* "HTTP/1.10" and similar are malformed, not another version. Decide
     * only once the next byte is known, so every prefix of the input gets
     * either INCOMPLETE or the final verdict. */
    if (s->i >= s->n)
        return NEED_MORE;
    if (s->p[s->i] != '\r')
        return HTTP1_ERR_BAD;
    if (maj != '1' || (min != '0' && min != '1'))
        return HTTP1_ERR_VERSION;
    req->minor = min - '0';
    return expect_crlf(s);
}

/* One header line into hs[*nh] (at most max), or the blank line ending the
 * head (*end = 1). */
static int parse_header_line(struct scan *s, struct http1_header *hs, size_t *nh,
                             size_t max, int *end)
{
    if (s->i >= s->n)
        return NEED_MORE;
    char c0 = s->p[s->i];
    if (c0 == '\r') {
        int rc = expect_crlf(s);
        if (rc == 0)
            *end = 1;
        return rc;
    }
    if (c0 == ' ' || c0 == '\t')
        return HTTP1_ERR_BAD; /* obs-fold (or whitespace before the first field) */

    size_t st = s->i;
    while (s->i < s->n && is_tchar((unsigned char)s->p[s->i]))
        s->i++;
    if (s->i >= s->n)
        return NEED_MORE;
    /* Anything but ':' right after the name (notably SP/HTAB) is rejected:
     * "Content-Length : 5" is a classic smuggling vector. */
    if (s->p[s->i] != ':' || s->i == st)
        return HTTP1_ERR_BAD;
    if (*nh >= max)
        return HTTP1_ERR_TOO_LARGE;
    struct http1_header *h = &hs[*nh];
    h->name = s->p + st;
    h->name_len = s->i - st;
    s->i++;

    while (s->i < s->n && (s->p[s->i] == ' ' || s->p[s->i] == '\t'))
        s->i++;
    st = s->i;
    while (s->i < s->n && is_value_char((unsigned char)s->p[s->i]))
        s->i++;
    if (s->i >= s->n)
        return NEED_MORE;
    size_t e = s->i;
    while (e > st && (s->p[e - 1] == ' ' || s->p[e - 1] == '\t'))
        e--;
    int rc = expect_crlf(s); /* also rejects NUL, bare CR, bare LF */
    if (rc)
        return rc;
    h->value = s->p + st;
    h->value_len = e - st;
    (*nh)++;
    return 0;
}

static int conn_token(const char *t, size_t n, void *arg)
{
    int *ka = arg;
    if (ieq(t, n, "close"))
        *ka = -1; /* close wins over keep-alive */
    else if (ieq(t, n, "keep-alive") && *ka != -1)
        *ka = 1;
    return 0;
}

static int h2c_token(const char *t, size_t n, void *arg)
{
    return ieq(t, n, "h2c");
}

struct te_state {
    int chunked_seen; /* chunked appeared (must be last, once) */
    int last_chunked;
    int bad;
};

static int te_token(const char *t, size_t n, void *arg)
{
    struct te_state *st = arg;
    /* A coding may carry parameters ("gzip;q=1"); compare the name only. */
    size_t k = 0;
    while (k < n && t[k] != ';' && t[k] != ' ' && t[k] != '\t')
        k++;
    int ch = ieq(t, k, "chunked");
    if (ch && st->chunked_seen)
        st->bad = 1;
    st->chunked_seen |= ch;
    st->last_chunked = ch;
    return 0;
}

/* Framing and connection semantics once the head is complete. */
static int interpret_headers(struct http1_request *req)
{
    int have_cl = 0, have_te = 0, have_settings = 0, want_h2c = 0;
    struct te_state te = { 0 };
    req->keep_alive = req->minor >= 1 ? 1 : 0;
    int conn_ka = 0; /* 0 none, 1 keep-alive, -1 close */

    for (size_t k = 0; k < req->nheaders; k++) {
        const struct http1_header *h = &req->headers[k];
        if (ieq(h->name, h->name_len, "content-length")) {
            if (h->value_len == 0)
                return HTTP1_ERR_BAD;
            int64_t v = 0;
            for (size_t j = 0; j < h->value_len; j++) {
                char c = h->value[j];
                if (c < '0' || c > '9')
                    return HTTP1_ERR_BAD;
                if (v > (INT64_MAX - (c - '0')) / 10)
                    return HTTP1_ERR_BAD;
                v = v * 10 + (c - '0');
            }
            if (have_cl && v != req->content_length)
                return HTTP1_ERR_BAD;
            have_cl = 1;
            req->content_length = v;
        } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
            have_te = 1;
            each_token(h->value, h->value_len, te_token, &te);
        } else if (ieq(h->name, h->name_len, "connection")) {
            each_token(h->value, h->value_len, conn_token, &conn_ka);
        } else if (ieq(h->name, h->name_len, "upgrade")) {
            if (each_token(h->value, h->value_len, h2c_token, NULL))
                want_h2c = 1;
        } else if (ieq(h->name, h->name_len, "http2-settings")) {
            have_settings = 1;
        } else if (ieq(h->name, h->name_len, "expect")) {
            if (ieq(h->value, h->value_len, "100-continue"))
                req->expect_continue = 1;
        }
    }
    if (have_te) {
        if (have_cl || req->minor == 0 || te.bad || !te.last_chunked)
            return HTTP1_ERR_BAD;
        req->chunked = 1;
    }
    if (conn_ka == -1)
        req->keep_alive = 0;
    else if (conn_ka == 1)
        req->keep_alive = 1;
    req->upgrade_h2c = want_h2c && have_settings;
    return 0;
}

int http1_parse_request(const char *buf, size_t len, size_t max_head,
                        struct http1_request *req)
{
    /* Everything but the (large) header array. */
    memset(req, 0, offsetof(struct http1_request, headers));
    req->nheaders = 0;
    req->head_len = 0;
    req->content_length = -1;
    req->chunked = req->keep_alive = req->upgrade_h2c = req->expect_continue = 0;

    struct scan s = { .p = buf, .n = len < max_head ? len : max_head, .i = 0 };
    /* RFC 9112 2.2: ignore empty lines before the request-line (some
     * clients send a stray CRLF after a POST body). */
    int rc = 0;
    while (rc == 0 && s.i < s.n && buf[s.i] == '\r')
        rc = expect_crlf(&s);
    if (rc == 0)
        rc = parse_request_line(&s, req);
    int end = 0;
    while (rc == 0 && !end)
        rc = parse_header_line(&s, req->headers, &req->nheaders, HTTP1_MAX_HEADERS, &end);
    if (rc == NEED_MORE)
        /* The window is full and the head has not ended: it is too big. */
        return len >= max_head ? HTTP1_ERR_TOO_LARGE : HTTP1_INCOMPLETE;
    if (rc < 0)
        return rc;
    rc = interpret_headers(req);
    if (rc < 0)
        return rc;
    if (s.i > (size_t)INT32_MAX)
        return HTTP1_ERR_TOO_LARGE; /* the return type is int */
    req->head_len = s.i;
    return (int)s.i;
}

/* ---- response head (what a pod sends back) ----
 *
 * The same strictness as requests, for the same reason in the other
 * direction: kvgated re-frames every field it relays (HTTP/1.1 lines or
 * HTTP/2 HEADERS), so a byte that could end a line early (bare CR or LF),
 * a NUL or another control byte in a value, or a name outside tchar would
 * reach the client as response splitting or make nghttp2 end the whole
 * client connection. Such a head is malformed: the pod failed. */

static int parse_status_line(struct scan *s, struct http1_response *resp)
{
    static const char pfx[] = "HTTP/1.";
    for (size_t k = 0; k < 7; k++, s->i++) {
        if (s->i >= s->n)
            return NEED_MORE;
        if (s->p[s->i] != pfx[k])
            return HTTP1_ERR_BAD;
    }
    /* DIGIT SP 3DIGIT SP reason-phrase CRLF; the reason may be empty and
     * some servers omit the SP before an empty one */
    for (size_t k = 0; k < 5; k++, s->i++) {
        if (s->i >= s->n)
            return NEED_MORE;
        char c = s->p[s->i];
        if (k == 0 ? (c != '0' && c != '1') : k == 1 ? c != ' ' : (c < '0' || c > '9'))
            return HTTP1_ERR_BAD;
    }
    const char *d = s->p + s->i - 5;
    resp->minor = d[0] - '0';
    resp->status = (d[2] - '0') * 100 + (d[3] - '0') * 10 + (d[4] - '0');
    if (resp->status < 100)
        return HTTP1_ERR_BAD;
    if (s->i >= s->n)
        return NEED_MORE;
    if (s->p[s->i] == ' ') {
        s->i++;
        while (s->i < s->n && is_value_char((unsigned char)s->p[s->i]))
            s->i++;
    }
    return expect_crlf(s); /* also rejects a bare CR/LF or a control byte */
}

int http1_parse_response(const char *buf, size_t len, size_t max_head,
                         struct http1_response *resp)
{
    memset(resp, 0, offsetof(struct http1_response, headers));
    resp->content_length = -1;
    struct scan s = { .p = buf, .n = len < max_head ? len : max_head, .i = 0 };
    int rc = parse_status_line(&s, resp);
    int end = 0;
    while (rc == 0 && !end)
        rc = parse_header_line(&s, resp->headers, &resp->nheaders, HTTP1_MAX_HEADERS, &end);
    if (rc == NEED_MORE)
        return len >= max_head ? HTTP1_ERR_TOO_LARGE : HTTP1_INCOMPLETE;
    if (rc < 0)
        return rc;
    int have_te = 0, conn_ka = 0;
    struct te_state te = { 0 };
    for (size_t k = 0; k < resp->nheaders; k++) {
        const struct http1_header *h = &resp->headers[k];
        if (ieq(h->name, h->name_len, "content-length")) {
            int64_t v = 0;
            if (h->value_len == 0)
                return HTTP1_ERR_BAD;
            for (size_t j = 0; j < h->value_len; j++) {
                char c = h->value[j];
                if (c < '0' || c > '9' || v > (INT64_MAX - (c - '0')) / 10)
                    return HTTP1_ERR_BAD;
                v = v * 10 + (c - '0');
            }
            if (resp->content_length >= 0 && v != resp->content_length)
                return HTTP1_ERR_BAD;
            resp->content_length = v;
        } else if (ieq(h->name, h->name_len, "transfer-encoding")) {
            have_te = 1;
            each_token(h->value, h->value_len, te_token, &te);
        } else if (ieq(h->name, h->name_len, "connection")) {
            each_token(h->value, h->value_len, conn_token, &conn_ka);
        }
    }
    resp->keep_alive = resp->minor >= 1 ? conn_ka != -1 : conn_ka == 1;
    if (have_te) {
        if (te.bad)
            return HTTP1_ERR_BAD;
        /* RFC 9112 6.3: chunked last frames the body; any other coding
         * last means "until close"; either way Transfer-Encoding overrides
         * Content-Length, and such a connection is not reused */
        resp->chunked = te.last_chunked;
        resp->until_close = !te.last_chunked;
        if (resp->content_length >= 0 || resp->until_close)
            resp->keep_alive = 0;
        resp->content_length = -1;
    } else if (resp->content_length < 0) {
        resp->until_close = 1;
        resp->keep_alive = 0;
    }
    if (s.i > (size_t)INT32_MAX)
        return HTTP1_ERR_TOO_LARGE;
    resp->head_len = s.i;
    return (int)s.i;
}

int http1_has_token(const char *v, size_t n, const char *tok)
{
    return each_token(v, n, tok_eq, &tok);
}

int http1_name_eq(const char *name, size_t len, const char *lit)
{
    return ieq(name, len, lit);
}

int http1_media_type_is(const char *v, size_t n, const char *type)
{
    size_t k = 0;
    while (k < n && (v[k] == ' ' || v[k] == '\t'))
        k++;
    size_t s = k;
    while (k < n && v[k] != ';' && v[k] != ' ' && v[k] != '\t')
        k++;
    return ieq(v + s, k - s, type);
}

const struct http1_header *http1_find(const struct http1_request *req,
                                      const char *name)
{
    for (size_t k = 0; k < req->nheaders; k++)
        if (ieq(req->headers[k].name, req->headers[k].name_len, name))
            return &req->headers[k];
    return NULL;
}

/* ---- chunked body ---- */

enum {
    CK_SIZE0 = 0,  /* start of a chunk-size line, no digit yet */
    CK_SIZE,       /* in the hex digits */
    CK_EXT,        /* chunk extension: skipped up to CR */
    CK_SIZE_LF,    /* CR seen after the size line */
    CK_DATA,
    CK_DATA_CR,    /* CRLF after chunk data */
    CK_DATA_LF,
    CK_TRAILER,    /* start of a trailer line (or the final CRLF) */
    CK_TRAILER_LINE,
    CK_TRAILER_LF,
    CK_END_LF,     /* final CR seen */
    CK_DONE,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

long http1_chunked_decode(struct http1_chunked *c, const char *in, size_t len,
                          char *out, size_t *out_len)
{
    size_t i = 0, o = 0;
    *out_len = 0;
    if (len > (size_t)0x7fffffffffffffffull)
        len = 0x7fffffffffffffffull; /* keep the return value representable */
    while (i < len && c->state != CK_DONE) {
        unsigned char ch = (unsigned char)in[i];
        switch (c->state) {
        case CK_SIZE0:
        case CK_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (c->remaining > (UINT64_MAX >> 4))
                    return -1;
                c->remaining = c->remaining << 4 | (uint64_t)v;
                c->state = CK_SIZE;
            } else if (c->state == CK_SIZE0) {
                return -1; /* size line must start with a hex digit */
            } else if (ch == ';' || ch == ' ' || ch == '\t') {
                c->state = CK_EXT; /* BWS and chunk-ext are ignored */
            } else if (ch == '\r') {
                c->state = CK_SIZE_LF;
            } else {
                return -1;
            }
            i++;
            break;
        }
        case CK_EXT:
            if (ch == '\r')
                c->state = CK_SIZE_LF;
            else if (ch == '\n' || (ch < 0x20 && ch != '\t') || ch == 0x7f)
                return -1;
            i++;
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return -1;
            i++;
            c->state = c->remaining ? CK_DATA : CK_TRAILER;
            break;
        case CK_DATA: {
            size_t n = len - i;
            if ((uint64_t)n > c->remaining)
                n = (size_t)c->remaining;
            if (out + o != in + i)
                memmove(out + o, in + i, n); /* in place: out <= in */
            o += n;
            i += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (ch != '\r')
                return -1;
            i++;
            c->state = CK_DATA_LF;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return -1;
            i++;
            c->state = CK_SIZE0;
            break;
        case CK_TRAILER:
            i++;
            if (ch == '\r')
                c->state = CK_END_LF;
            else if (ch == '\n')
                return -1;
            else
                c->state = CK_TRAILER_LINE;
            break;
        case CK_TRAILER_LINE:
            if (ch == '\r')
                c->state = CK_TRAILER_LF;
            else if (ch == '\n')
                return -1;
            i++;
            break;
        case CK_TRAILER_LF:
            if (ch != '\n')
                return -1;
            i++;
            c->state = CK_TRAILER;
            break;
        case CK_END_LF:
            if (ch != '\n')
                return -1;
            i++;
            c->state = CK_DONE;
            c->done = 1;
            break;
        default:
            return -1;
        }
    }
    *out_len = o;
    return (long)i;
}
