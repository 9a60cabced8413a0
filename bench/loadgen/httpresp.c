/* httpresp: HTTP/1.x response head and body framing. See httpresp.h.
 *
 * Tolerant where servers differ (bare LF line ends, any reason phrase,
 * header names in any case), strict where framing depends on it
 * (Content-Length digits only and consistent, Transfer-Encoding ending in
 * chunked, which wins over Content-Length as RFC 9112 says). */
#include "httpresp.h"

#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int ieq(const char *a, size_t n, const char *lit)
{
    size_t k = strlen(lit);
    if (n != k)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lit[i])
            return 0;
    return 1;
}

/* Is token tok (lowercase) in the comma-separated list v? Last token too. */
static int has_token(const char *v, size_t n, const char *tok, int *is_last)
{
    int found = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        size_t s = i;
        while (i < n && v[i] != ',')
            i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
            e--;
        if (e == s)
            continue;
        int m = ieq(v + s, e - s, tok);
        found |= m;
        if (is_last)
            *is_last = m;
    }
    return found;
}

/* Finds the end of the head: the blank line. Returns its length or 0. */
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

int lg_hresp_head(struct lg_hresp *h, const char *buf, size_t len)
{
    size_t hl = head_end(buf, len);
    if (!hl)
        return len > LG_HRESP_MAX_HEAD ? LG_HRESP_TOO_LARGE : LG_HRESP_INCOMPLETE;
    if (hl > LG_HRESP_MAX_HEAD)
        return LG_HRESP_TOO_LARGE;
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    h->head_len = hl;
    /* status line: HTTP/1.x SP 3DIGIT [SP reason] */
    if (hl < 13 || memcmp(buf, "HTTP/1.", 7) || buf[7] < '0' || buf[7] > '9' ||
        buf[8] != ' ')
        return LG_HRESP_BAD;
    h->minor = buf[7] - '0';
    for (int k = 9; k < 12; k++)
        if (buf[k] < '0' || buf[k] > '9')
            return LG_HRESP_BAD;
    h->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (h->status < 100 || (buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n'))
        return LG_HRESP_BAD;
    int conn_close = 0, conn_keep = 0, chunked = 0, te = 0;
    const char *p = memchr(buf, '\n', hl);
    size_t i = (size_t)(p - buf) + 1;
    while (i < hl) {
        const char *l = buf + i;
        const char *nl = memchr(l, '\n', hl - i);
        size_t ln = (size_t)(nl - l);
        i += ln + 1;
        if (ln && l[ln - 1] == '\r')
            ln--;
        if (!ln)
            break; /* the blank line */
        const char *colon = memchr(l, ':', ln);
        if (!colon || colon == l)
            return LG_HRESP_BAD;
        size_t nn = (size_t)(colon - l);
        for (size_t k = 0; k < nn; k++)
            if (l[k] == ' ' || l[k] == '\t')
                return LG_HRESP_BAD; /* no whitespace before the colon */
        const char *v = colon + 1;
        size_t vn = (size_t)(l + ln - v);
        while (vn && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
            vn--;
        if (ieq(l, nn, "content-length")) {
            if (!vn)
                return LG_HRESP_BAD;
            int64_t cl = 0;
            for (size_t k = 0; k < vn; k++) {
                if (v[k] < '0' || v[k] > '9' || cl > (INT64_MAX - 9) / 10)
                    return LG_HRESP_BAD;
                cl = cl * 10 + (v[k] - '0');
            }
            if (h->content_length >= 0 && h->content_length != cl)
                return LG_HRESP_BAD;
            h->content_length = cl;
        } else if (ieq(l, nn, "transfer-encoding")) {
            int last = 0;
            te = 1;
            has_token(v, vn, "chunked", &last);
            chunked = last;
        } else if (ieq(l, nn, "connection")) {
            conn_close |= has_token(v, vn, "close", NULL);
            conn_keep |= has_token(v, vn, "keep-alive", NULL);
        } else if (ieq(l, nn, "content-type")) {
            static const char es[] = "text/event-stream";
            h->event_stream = vn >= sizeof(es) - 1 && ieq(v, sizeof(es) - 1, es);
        } else if (ieq(l, nn, "x-gateway-destination-endpoint")) {
            h->dest_len = vn < sizeof(h->dest) - 1 ? vn : sizeof(h->dest) - 1;
            memcpy(h->dest, v, h->dest_len);
            h->dest[h->dest_len] = 0;
        }
    }
    h->keep_alive = h->minor >= 1 ? !conn_close : (conn_keep && !conn_close);
    if ((h->status >= 100 && h->status < 200) || h->status == 204 || h->status == 304) {
        h->mode = LG_BODY_NONE;
        h->done = 1;
    } else if (te) {
        /* a transfer coding other than chunked last: delimited by close */
        h->mode = chunked ? LG_BODY_CHUNKED : LG_BODY_CLOSE;
    } else if (h->content_length >= 0) {
        h->mode = LG_BODY_LENGTH;
        h->left = (uint64_t)h->content_length;
        h->done = h->left == 0;
    } else {
        h->mode = LG_BODY_CLOSE;
    }
    if (h->mode == LG_BODY_CLOSE)
        h->keep_alive = 0;
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
