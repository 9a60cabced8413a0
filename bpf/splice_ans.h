/* splice_ans.h: the pod direction's answer framing of the splice verdict
 * (bpf/splice.bpf.c): status line, fields, Content-Length or chunked body
 * or a body that ends with the pod's close, answers counted, invalid ones
 * stopped. The byte machine only: splice.bpf.c feeds it from the skb
 * (tests/fuzz/fuzz_splice.c from a buffer). Included after splice_http.h. */
#ifndef KVGATE_BPF_SPLICE_ANS_H
#define KVGATE_BPF_SPLICE_ANS_H

/* An answer is complete. It is counted in st->requests only once the skb
 * was redirected or passed (pod_side): a reader that sees the count also
 * sees the bytes (kvgated's quiet check compares both). */
static __always_inline void ans_done(struct kvg_ans_scan *a, struct kvg_flow_st *st)
{
    a->done++;
    st->phase = KVG_AN_IDLE;
}

static __always_inline int ans_bad(struct kvg_ans_scan *a, struct kvg_flow_st *st)
{
    st->phase = KVG_AN_BAD;
    a->bad = 1;
    a->bad_start = a->start;
    return 1;
}

/* The head is complete: how the body is framed (RFC 9112 6.3; an answer
 * to a POST). */
static __always_inline int ans_head_done(struct kvg_ans_scan *a, struct kvg_flow_st *st)
{
    __u16 s = st->status;

    if (s < 200) { /* interim (100, 103): the final answer follows */
        if (s == 101)
            return ans_bad(a, st); /* no protocol switch was asked for */
        st->phase = KVG_AN_IDLE;
        return 0;
    }
    if (s == 204 || s == 304) {
        ans_done(a, st);
        return 0;
    }
    if (st->flags & KVG_ST_F_CHUNKED) {
        if (st->flags & KVG_ST_F_HAVE_CL)
            return ans_bad(a, st); /* both: refuse to guess */
        st->phase = KVG_AN_CSIZE0;
        return 0;
    }
    if (st->flags & KVG_ST_F_HAVE_CL) {
        if (st->body_left)
            st->phase = KVG_AN_BODY;
        else
            ans_done(a, st);
        return 0;
    }
    st->phase = KVG_AN_CLOSE; /* delimited by the pod's close */
    return 0;
}

static __always_inline int spl_hexval(__u8 c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = spl_lower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* A value byte of an answer's field (not CR). 1 stops (invalid). */
static __always_inline int ans_value(struct kvg_ans_scan *a, struct kvg_flow_st *st, __u8 c)
{
    int ows = c == ' ' || c == '\t';

    if (!spl_is_value_char(c))
        return ans_bad(a, st);
    if (st->hv == 1) { /* content-length */
        if (ows) {
            if (st->flags & KVG_ST_F_DIGIT)
                st->flags |= KVG_ST_F_TRAIL;
            return 0;
        }
        if (c < '0' || c > '9' || (st->flags & KVG_ST_F_TRAIL) ||
            st->body_left > (1ull << 50))
            return ans_bad(a, st);
        st->body_left = st->body_left * 10 + (c - '0');
        st->flags |= KVG_ST_F_DIGIT;
    } else if (st->hv == 2) { /* transfer-encoding: exactly "chunked" */
        if (ows) {
            if (st->pos)
                st->flags |= KVG_ST_F_TRAIL;
            return 0;
        }
        if ((st->flags & KVG_ST_F_TRAIL) || st->pos >= CHUNKED_LEN ||
            CHUNKED_TOK[st->pos] != spl_lower(c))
            return ans_bad(a, st);
        st->pos++;
    } else if (st->hv == 3) { /* connection: a "close" token? */
        __s8 tok = (__s8)st->pos;

        if (c == ',' && (tok == CLOSE_LEN || tok == CLOSE_LEN + 1))
            st->flags |= KVG_ST_F_CLOSE;
        st->pos = (__u8)spl_close_step(tok, c);
    }
    return 0;
}

/* One byte of an answer's head, chunk-size line or trailer. 1 stops. */
static __always_inline int ans_byte(struct kvg_ans_scan *a, struct kvg_flow_st *st, __u32 off,
                                    __u8 c)
{
    __u8 p = st->phase;

    if (p >= KVG_AN_STATUS && p <= KVG_AN_END_LF && ++st->head_bytes > KVG_ANS_HEAD_MAX)
        return ans_bad(a, st);
    if (p == KVG_AN_IDLE) { /* an answer begins */
        a->start = (__s32)off;
        st->status = 0;
        st->pos = 0;
        st->head_bytes = 1;
        st->body_left = 0;
        st->flags &= KVG_ST_F_CLOSE; /* the only one that outlives an answer */
        st->phase = p = KVG_AN_STATUS;
    }
    if (p == KVG_AN_STATUS) {
        __u8 k = st->pos;

        if (k < ANS_VERSION_LEN) {
            if (ANS_VERSION[k] != c)
                return ans_bad(a, st);
        } else if (k < ANS_VERSION_LEN + 3) {
            if (c < '0' || c > '9' || (k == ANS_VERSION_LEN && (c < '1' || c > '5')))
                return ans_bad(a, st);
            st->status = st->status * 10 + (c - '0');
        } else if (c == ' ') {
            st->phase = KVG_AN_REASON;
        } else if (c == '\r') {
            st->phase = KVG_AN_STATUS_LF;
        } else {
            return ans_bad(a, st);
        }
        st->pos = k + 1;
        return 0;
    }
    if (p == KVG_AN_REASON) {
        if (c == '\r')
            st->phase = KVG_AN_STATUS_LF;
        else if (!spl_is_value_char(c))
            return ans_bad(a, st);
        return 0;
    }
    if (p == KVG_AN_STATUS_LF || p == KVG_AN_LF) {
        if (c != '\n')
            return ans_bad(a, st);
        st->phase = KVG_AN_LINE;
        return 0;
    }
    if (p == KVG_AN_LINE) {
        if (c == '\r') {
            st->phase = KVG_AN_END_LF;
            return 0;
        }
        if (!spl_is_tchar(c))
            return ans_bad(a, st);
        st->m_cl = st->m_te = st->m_co = 0;
        st->phase = p = KVG_AN_NAME;
    }
    if (p == KVG_AN_NAME) {
        __u8 lc = spl_lower(c);

        if (c != ':' && !spl_is_tchar(c))
            return ans_bad(a, st);
        st->m_cl = spl_name_step(st->m_cl, lc, CL_NAME, CL_LEN);
        st->m_te = spl_name_step(st->m_te, lc, TE_NAME, TE_LEN);
        st->m_co = spl_name_step(st->m_co, lc, CO_NAME, CO_LEN);
        if (c != ':')
            return 0;
        st->hv = 0;
        st->flags &= ~(KVG_ST_F_DIGIT | KVG_ST_F_TRAIL);
        st->pos = 0;
        if (st->m_cl == CL_LEN) {
            if (st->flags & KVG_ST_F_HAVE_CL)
                return ans_bad(a, st);
            st->flags |= KVG_ST_F_HAVE_CL;
            st->body_left = 0;
            st->hv = 1;
        } else if (st->m_te == TE_LEN) {
            if (st->flags & KVG_ST_F_CHUNKED)
                return ans_bad(a, st);
            st->hv = 2;
        } else if (st->m_co == CO_LEN) {
            st->hv = 3;
        }
        st->phase = KVG_AN_OWS;
        return 0;
    }
    if (p == KVG_AN_OWS) {
        if (c == ' ' || c == '\t')
            return 0;
        st->phase = p = KVG_AN_VALUE;
    }
    if (p == KVG_AN_VALUE) {
        if (c != '\r')
            return ans_value(a, st, c);
        if (st->hv == 1 && !(st->flags & KVG_ST_F_DIGIT))
            return ans_bad(a, st);
        if (st->hv == 2) {
            if (st->pos != CHUNKED_LEN)
                return ans_bad(a, st); /* gzip, chunked and such: not from a pod */
            st->flags |= KVG_ST_F_CHUNKED;
        }
        if (st->hv == 3 && ((__s8)st->pos == CLOSE_LEN || (__s8)st->pos == CLOSE_LEN + 1))
            st->flags |= KVG_ST_F_CLOSE;
        st->flags &= ~(KVG_ST_F_DIGIT | KVG_ST_F_TRAIL);
        st->phase = KVG_AN_LF;
        return 0;
    }
    if (p == KVG_AN_END_LF) {
        if (c != '\n')
            return ans_bad(a, st);
        return ans_head_done(a, st);
    }
    if (p == KVG_AN_CSIZE0 || p == KVG_AN_CSIZE) {
        int v = spl_hexval(c);

        if (v >= 0) {
            if (st->body_left > (1ull << 56))
                return ans_bad(a, st);
            st->body_left = st->body_left * 16 + (__u64)v;
            st->phase = KVG_AN_CSIZE;
        } else if (p == KVG_AN_CSIZE0) {
            return ans_bad(a, st);
        } else if (c == ';' || c == ' ' || c == '\t') {
            st->phase = KVG_AN_CEXT;
        } else if (c == '\r') {
            st->phase = KVG_AN_CSIZE_LF;
        } else {
            return ans_bad(a, st);
        }
        return 0;
    }
    if (p == KVG_AN_CEXT) {
        if (c == '\r')
            st->phase = KVG_AN_CSIZE_LF;
        else if (!spl_is_value_char(c))
            return ans_bad(a, st);
        return 0;
    }
    if (p == KVG_AN_CSIZE_LF) {
        if (c != '\n')
            return ans_bad(a, st);
        st->phase = st->body_left ? KVG_AN_CDATA : KVG_AN_TRAILER;
        return 0;
    }
    if (p == KVG_AN_CDATA_CR) {
        if (c != '\r')
            return ans_bad(a, st);
        st->phase = KVG_AN_CDATA_LF;
        return 0;
    }
    if (p == KVG_AN_CDATA_LF) {
        if (c != '\n')
            return ans_bad(a, st);
        st->phase = KVG_AN_CSIZE0;
        return 0;
    }
    if (p == KVG_AN_TRAILER) {
        if (c == '\r')
            st->phase = KVG_AN_FINAL_LF;
        else if (c == '\n')
            return ans_bad(a, st);
        else
            st->phase = KVG_AN_TLINE;
        return 0;
    }
    if (p == KVG_AN_TLINE) {
        if (c == '\r')
            st->phase = KVG_AN_TLF;
        else if (!spl_is_value_char(c))
            return ans_bad(a, st);
        return 0;
    }
    if (p == KVG_AN_TLF) {
        if (c != '\n')
            return ans_bad(a, st);
        st->phase = KVG_AN_TRAILER;
        return 0;
    }
    if (p == KVG_AN_FINAL_LF) {
        if (c != '\n')
            return ans_bad(a, st);
        ans_done(a, st);
        return 0;
    }
    return ans_bad(a, st); /* BODY / CDATA / CLOSE never get here; BAD stays */
}

/* A run of body bytes (Content-Length body, chunk data, a body up to the
 * close) skipped at once: 1 when the phase is one of those (a->off moved),
 * 0 when the next byte is the byte machine's (ans_byte). */
static __always_inline int ans_data(struct kvg_ans_scan *a, struct kvg_flow_st *st)
{
    __u8 p = st->phase;

    if (p == KVG_AN_CLOSE) {
        a->off = a->len;
        return 1;
    }
    if (p != KVG_AN_BODY && p != KVG_AN_CDATA)
        return 0;
    __u64 n = a->len - a->off;

    if (n > st->body_left)
        n = st->body_left;
    a->off += (__u32)n;
    st->body_left -= n;
    if (!st->body_left) {
        if (p == KVG_AN_BODY)
            ans_done(a, st);
        else
            st->phase = KVG_AN_CDATA_CR;
    }
    return 1;
}

#endif
