/* httpresp: HTTP/1.x response head and body framing. See httpresp.h.
 *
 * The head is parsed by common/http1's http1_parse_response, the parser
 * kvgated reads pods' answers with, so loadgen and the gateway agree on
 * what frames a body (Transfer-Encoding ending in chunked wins over
 * Content-Length, another coding last means "until close", Content-Length
 * digits only and consistent) and on what is malformed (control bytes,
 * names outside tchar, obs-fold). Loadgen stays tolerant of one thing
 * servers differ on: bare LF line ends, which it turns into CRLF before
 * parsing. */
#include "httpresp.h"

#include <stdlib.h>
#include <string.h>

/* Finds the end of the head: the blank line (LF or CRLF ends). Returns its
 * length or 0. */
static size_t head_end(const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b[i] != '\n')
            continue;
        if (i + 1 < len && b[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int has_bare_lf(const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
            return 1;
    return 0;
}

/* A copy of b[0..n) with every bare LF made CRLF (malloc'd, *out_n set). */
static char *crlf_copy(const char *b, size_t n, size_t *out_n)
{
    char *c = malloc(2 * n + 1);
    size_t o = 0;
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (b[i] == '\n' && (i == 0 || b[i - 1] != '\r'))
            c[o++] = '\r';
        c[o++] = b[i];
    }
    *out_n = o;
    return c;
}

/* Keep-alive from the Connection field and the version alone: for heads
 * that carry no body, whose framing cannot end the connection. */
static int conn_keep_alive(const struct http1_response *r)
{
    int close = 0, keep = 0;
    for (size_t k = 0; k < r->nheaders; k++) {
        const struct http1_header *f = &r->headers[k];
        if (!http1_name_eq(f->name, f->name_len, "connection"))
            continue;
        close |= http1_has_token(f->value, f->value_len, "close");
        keep |= http1_has_token(f->value, f->value_len, "keep-alive");
    }
    return !close && (r->minor >= 1 || keep);
}

/* What loadgen keeps from a parsed head. */
static void take_head(struct lg_hresp *h, const struct http1_response *r)
{
    h->status = r->status;
    h->minor = r->minor;
    h->content_length = r->content_length;
    h->keep_alive = r->keep_alive;
    for (size_t k = 0; k < r->nheaders; k++) {
        const struct http1_header *f = &r->headers[k];
        if (http1_name_eq(f->name, f->name_len, "content-type")) {
            h->event_stream = http1_media_type_is(f->value, f->value_len, "text/event-stream");
        } else if (http1_name_eq(f->name, f->name_len, "x-gateway-destination-endpoint")) {
            h->dest_len = f->value_len < sizeof(h->dest) - 1 ? f->value_len : sizeof(h->dest) - 1;
            memcpy(h->dest, f->value, h->dest_len);
            h->dest[h->dest_len] = 0;
        }
    }
    if ((r->status >= 100 && r->status < 200) || r->status == 204 || r->status == 304) {
        h->mode = LG_BODY_NONE;
        h->done = 1;
        h->keep_alive = conn_keep_alive(r);
    } else if (r->chunked) {
        h->mode = LG_BODY_CHUNKED;
    } else if (r->until_close) {
        h->mode = LG_BODY_CLOSE;
    } else {
        h->mode = LG_BODY_LENGTH;
        h->left = (uint64_t)r->content_length;
        h->done = h->left == 0;
    }
}

int lg_hresp_head(struct lg_hresp *h, const char *buf, size_t len)
{
    size_t hl = head_end(buf, len);
    if (!hl)
        return len > LG_HRESP_MAX_HEAD ? LG_HRESP_TOO_LARGE : LG_HRESP_INCOMPLETE;
    if (hl > LG_HRESP_MAX_HEAD)
        return LG_HRESP_TOO_LARGE;
    const char *p = buf;
    size_t pn = hl;
    char *copy = NULL;
    if (has_bare_lf(buf, hl)) {
        copy = crlf_copy(buf, hl, &pn);
        if (!copy)
            return LG_HRESP_TOO_LARGE; /* no memory for it: as good as too large */
        p = copy;
    }
    struct http1_response r;
    int rc = http1_parse_response(p, pn, 2 * LG_HRESP_MAX_HEAD, &r);
    if (rc > 0) {
        memset(h, 0, sizeof(*h));
        h->head_len = hl;
        take_head(h, &r);
    }
    free(copy);
    if (rc == HTTP1_ERR_TOO_LARGE)
        return LG_HRESP_TOO_LARGE; /* more fields than HTTP1_MAX_HEADERS */
    if (rc <= 0)
        return LG_HRESP_BAD; /* the whole head is there: incomplete is malformed */
    return (int)hl;
}

long lg_hresp_body(struct lg_hresp *h, char *in, size_t len, size_t *out_len)
{
    *out_len = 0;
    if (h->done)
        return 0;
    switch (h->mode) {
    case LG_BODY_NONE:
        h->done = 1;
        return 0;
    case LG_BODY_LENGTH: {
        size_t n = (uint64_t)len < h->left ? len : (size_t)h->left;
        h->left -= n;
        h->done = h->left == 0;
        *out_len = n;
        return (long)n;
    }
    case LG_BODY_CHUNKED: {
        long used = http1_chunked_decode(&h->ck, in, len, in, out_len);
        if (used < 0)
            return -1;
        h->done = h->ck.done;
        return used;
    }
    case LG_BODY_CLOSE:
        *out_len = len;
        return (long)len;
    }
    return -1;
}

int lg_hresp_eof(struct lg_hresp *h)
{
    if (h->mode == LG_BODY_CLOSE)
        h->done = 1;
    return h->done;
}
