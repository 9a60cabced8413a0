/* splice_req.h: the HTTP/1.1 request-head framing of the client direction,
 * shared by the splice verdict (bpf/splice.bpf.c: what may go to a pod is
 * exactly what kvgated would forward, kvgate.h KVG_SPLICE_PATHS) and the
 * bypass's request counting in XDP (bpf/bp_frame.h, kvg_head_scan.any:
 * any method and path, a head without Content-Length has no body). The
 * byte machine only: splice.bpf.c feeds it from the skb, bp_frame.h from
 * the frame, tests/fuzz/fuzz_splice.c from a buffer. Included after
 * splice_http.h and splice_scan.h. */
#ifndef KVGATE_BPF_SPLICE_REQ_H
#define KVGATE_BPF_SPLICE_REQ_H

_Static_assert((KVG_HEAD_MAX & (KVG_HEAD_MAX - 1)) == 0, "KVG_HEAD_MAX: a power of two");

enum req_state { RQ_METHOD, RQ_PATH, RQ_QUERY, RQ_VERSION, RQ_LINE, RQ_NAME, RQ_OWS, RQ_VALUE,
                 RQ_LF, RQ_END_LF };

static __always_inline int req_stop(struct kvg_head_scan *h, __u32 why)
{
    h->why = why;
    return 1;
}

/* A value byte of a request field (not CR). 1 stops the scan. */
static __always_inline int req_value(struct kvg_head_scan *h, __u8 c)
{
    if (!spl_is_value_char(c))
        return req_stop(h, KVG_SPL_UP_UNPARSABLE); /* NUL, bare LF, CTL */
    if (h->hv == 1) { /* content-length: digits, then OWS only */
        if (c == ' ' || c == '\t') {
            h->trail = h->digit;
            return 0;
        }
        if (c < '0' || c > '9' || h->trail)
            return req_stop(h, KVG_SPL_UP_UNPARSABLE); /* kvgated answers 400 */
        h->clen = h->clen * 10 + (c - '0');
        h->digit = 1;
        if (h->clen > h->max_body) /* max_body <= 1 GiB: clen never wraps */
            return req_stop(h, KVG_SPL_UP_TOO_LARGE);
    } else if (h->hv == 2) { /* connection: a "close" token? */
        if (c == ',' && (h->tok == CLOSE_LEN || h->tok == CLOSE_LEN + 1))
            h->close = 1;
        h->tok = spl_close_step(h->tok, c);
    }
    return 0;
}

/* One byte of a request head; 1 stops the scan (the head's end, or why). */
static __always_inline int req_byte(struct kvg_head_scan *h, __u32 i, __u8 c)
{
    __u8 s = h->st;

    if (s == RQ_METHOD && h->any) { /* a token, then one SP */
        if (c == ' ' && h->pos) {
            h->st = RQ_PATH;
            h->m1 = h->m2 = -1; /* no path is matched */
            return 0;
        }
        if (!spl_is_tchar(c) || ++h->pos > 16)
            return req_stop(h, KVG_SPL_UP_UNPARSABLE);
        return 0;
    }
    if (s == RQ_METHOD) {
        if (h->pos >= METHOD_LEN || METHOD[h->pos] != c)
            return req_stop(h, spl_is_tchar(c) || c == ' ' ? KVG_SPL_UP_FILTERED
                                                       : KVG_SPL_UP_UNPARSABLE);
        if (++h->pos == METHOD_LEN) {
            h->st = RQ_PATH;
            h->m1 = h->m2 = 0;
        }
        return 0;
    }
    if (s == RQ_PATH || s == RQ_QUERY) {
        int full = h->m1 == PATH1_LEN || h->m2 == PATH2_LEN;

        if (c == ' ' && h->any) {
            h->st = RQ_VERSION;
            h->pos = 0;
            return 0;
        }
        if (h->any) /* any target: visible ASCII */
            return c <= 0x20 || c >= 0x7f ? req_stop(h, KVG_SPL_UP_UNPARSABLE) : 0;
        if (c == ' ') {
            if (s == RQ_PATH && !full)
                return req_stop(h, KVG_SPL_UP_FILTERED);
            h->st = RQ_VERSION;
            h->pos = 0;
            return 0;
        }
        if (c <= 0x20 || c >= 0x7f)
            return req_stop(h, KVG_SPL_UP_UNPARSABLE);
        if (s == RQ_QUERY)
            return 0;
        if (c == '?') {
            if (!full)
                return req_stop(h, KVG_SPL_UP_FILTERED);
            h->st = RQ_QUERY;
            return 0;
        }
        h->m1 = spl_name_step(h->m1, c, PATH1, PATH1_LEN);
        h->m2 = spl_name_step(h->m2, c, PATH2, PATH2_LEN);
        if (h->m1 < 0 && h->m2 < 0)
            return req_stop(h, KVG_SPL_UP_FILTERED); /* kvgated: 404 */
        return 0;
    }
    if (s == RQ_VERSION) {
        if (h->pos >= VERSION_LEN || VERSION[h->pos] != c) /* HTTP/1.0: kvgated's */
            return req_stop(h, h->pos == 7 && c == '0' ? KVG_SPL_UP_FILTERED
                                                       : KVG_SPL_UP_UNPARSABLE);
        if (++h->pos == VERSION_LEN)
            h->st = RQ_LINE;
        return 0;
    }
    if (s == RQ_LINE) {
        if (c == '\r') {
            h->st = RQ_END_LF;
            return 0;
        }
        if (!spl_is_tchar(c)) /* obs-fold, a bare LF, junk */
            return req_stop(h, KVG_SPL_UP_UNPARSABLE);
        if (++h->fields > KVG_REQ_FIELDS_MAX)
            return req_stop(h, KVG_SPL_UP_UNPARSABLE); /* kvgated: 431 */
        h->m_cl = h->m_te = h->m_up = h->m_ex = h->m_co = 0;
        h->st = RQ_NAME;
        /* fall through to the name */
        s = RQ_NAME;
    }
    if (s == RQ_NAME) {
        __u8 lc = spl_lower(c);

        if (c != ':' && !spl_is_tchar(c)) /* "Content-Length : 5": a smuggling classic */
            return req_stop(h, KVG_SPL_UP_UNPARSABLE);
        h->m_cl = spl_name_step(h->m_cl, lc, CL_NAME, CL_LEN);
        h->m_te = spl_name_step(h->m_te, lc, TE_NAME, TE_LEN);
        h->m_up = spl_name_step(h->m_up, lc, UP_NAME, UP_LEN);
        h->m_ex = spl_name_step(h->m_ex, lc, EX_NAME, EX_LEN);
        h->m_co = spl_name_step(h->m_co, lc, CO_NAME, CO_LEN);
        if (c != ':')
            return 0;
        h->hv = 0;
        if (h->m_cl == CL_LEN) {
            if (h->have_cl)
                return req_stop(h, KVG_SPL_UP_UNFRAMED); /* a second one: kvgated decides */
            h->have_cl = 1;
            h->hv = 1;
            h->digit = h->trail = 0;
            h->clen = 0;
        } else if (h->m_te == TE_LEN || h->m_up == UP_LEN || h->m_ex == EX_LEN) {
            return req_stop(h, KVG_SPL_UP_UNFRAMED); /* kvgated frames / answers 100 */
        } else if (h->m_co == CO_LEN) {
            h->hv = 2;
            h->tok = 0;
        }
        h->st = RQ_OWS;
        return 0;
    }
    if (s == RQ_OWS) {
        if (c == ' ' || c == '\t')
            return 0;
        h->st = RQ_VALUE;
        s = RQ_VALUE; /* this byte is the value's first */
    }
    if (s == RQ_VALUE) {
        if (c != '\r')
            return req_value(h, c);
        if (h->hv == 1 && !h->digit)
            return req_stop(h, KVG_SPL_UP_UNPARSABLE); /* empty Content-Length */
        if (h->hv == 2 && (h->tok == CLOSE_LEN || h->tok == CLOSE_LEN + 1))
            h->close = 1;
        h->st = RQ_LF;
        return 0;
    }
    if (s == RQ_LF) {
        if (c != '\n')
            return req_stop(h, KVG_SPL_UP_UNPARSABLE); /* a bare CR */
        h->st = RQ_LINE;
        return 0;
    }
    /* RQ_END_LF */
    if (c != '\n')
        return req_stop(h, KVG_SPL_UP_UNPARSABLE);
    h->hlen = i + 1;
    return 1;
}

/* The verdict on a head scanned over n bytes (at most max_head): 0 when it
 * is complete and eligible, else the hand-up reason. */
static __always_inline __u32 req_verdict(const struct kvg_head_scan *h, __u32 n, __u32 max_head)
{
    if (h->why)
        return h->why;
    if (!h->hlen) /* longer than kvgated takes (431), or it goes on in the next skb */
        return n >= max_head ? KVG_SPL_UP_UNPARSABLE : KVG_SPL_UP_INCOMPLETE;
    if (!h->have_cl && !h->any) /* any: no Content-Length, no body (RFC 9112 6.3) */
        return KVG_SPL_UP_UNFRAMED;
    return 0;
}

#endif
