/* libFuzzer target for the splice verdict's framing (bpf/splice_req.h,
 * bpf/splice_ans.h), run in user space on the same byte machines the
 * kernel runs. The first input byte picks the direction and a parameter.
 *
 * Requests, differentially: the verdict's head scanner runs over the rest
 * as the kernel's parse_head would (the head at most max_head bytes). When
 * it calls a head eligible (the kernel would send it to the pod), kvgated's
 * own parser (user/common/http1.c) must accept the same bytes as a head of
 * the same length that relay.c would route unchanged: POST, the path one
 * of the two inference paths, HTTP/1.1, the same Content-Length within the
 * body limit, not chunked, no Upgrade / Expect / Transfer-Encoding, the
 * same "connection: close", at most HTTP1_MAX_HEADERS fields. (The other
 * way round is not required: the verdict may hand up what kvgated would
 * take, e.g. a repeated identical Content-Length.)
 *
 * Answers, for split invariance: the rest is a pod's byte stream, framed
 * once whole and once cut into pieces as skbs would cut it (sizes from the
 * parameter and the bytes); answers counted, the final phase, bytes left
 * and where an invalid answer began must not depend on the cuts. */
#include "../../user/common/http1.c"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../bpf/kvgate.h"
#include "../../bpf/splice_scan.h"
#include "../../bpf/splice_http.h"
#include "../../bpf/splice_req.h"
#include "../../bpf/splice_ans.h"

/* ---- requests ---- */

static int path_ok(const char *t, size_t n)
{
    const char *q = memchr(t, '?', n);
    if (q)
        n = (size_t)(q - t);
    return (n == PATH1_LEN && !memcmp(t, KVG_SPLICE_PATH1, n)) ||
           (n == PATH2_LEN && !memcmp(t, KVG_SPLICE_PATH2, n));
}

static void fuzz_request(const uint8_t *b, size_t len, uint8_t param)
{
    uint32_t max_head = param & 1 ? KVG_HEAD_MAX : 256u + (param & 0x3e) * 16u;
    uint64_t max_body = 1ull << ((param >> 1) & 31);
    struct kvg_head_scan h;
    uint32_t n = len < max_head ? (uint32_t)len : max_head;
    memset(&h, 0, sizeof(h));
    h.n = n;
    h.max_body = max_body;
    for (uint32_t i = 0; i < n; i++)
        if (req_byte(&h, i, b[i]))
            break;
    if (req_verdict(&h, n, max_head))
        return; /* handed up: kvgated decides, whatever it is */

    struct http1_request r;
    int rc = http1_parse_request((const char *)b, len, max_head, &r);
    if (rc <= 0 || (uint32_t)rc != h.hlen)
        abort(); /* the pod would frame a head kvgated would not */
    if (r.method_len != 4 || memcmp(r.method, "POST", 4) || !path_ok(r.target, r.target_len) ||
        r.minor != 1 || r.chunked || r.upgrade_h2c || r.expect_continue ||
        r.content_length < 0 || (uint64_t)r.content_length != h.clen || h.clen > max_body ||
        r.nheaders > HTTP1_MAX_HEADERS || http1_find(&r, "transfer-encoding") ||
        http1_find(&r, "upgrade") || http1_find(&r, "expect"))
        abort(); /* the pod would get a request kvgated would not forward as is */
    if ((r.keep_alive == 0) != (h.close != 0))
        abort(); /* the verdict misread "connection: close" */
}

/* ---- answers ---- */

struct framed {
    uint64_t answers;
    uint64_t bad_at; /* where the invalid answer began, absolute; UINT64_MAX none */
    uint64_t open_at; /* where the answer open now began, absolute */
};

/* One skb's worth, as the verdict's ans_step loop would frame it. */
static void frame(struct kvg_flow_st *st, struct framed *f, const uint8_t *b, uint32_t len,
                  uint64_t base)
{
    struct kvg_ans_scan a;
    int was_bad = st->phase == KVG_AN_BAD;
    memset(&a, 0, sizeof(a));
    a.len = len;
    a.start = a.bad_start = -1;
    while (a.off < a.len && st->phase != KVG_AN_BAD) {
        if (ans_data(&a, st))
            continue;
        uint32_t off = a.off++;
        if (ans_byte(&a, st, off, b[off]))
            break;
    }
    f->answers += a.done;
    if (st->phase == KVG_AN_BAD && !was_bad)
        f->bad_at = a.bad_start >= 0 ? base + (uint32_t)a.bad_start : f->open_at;
    else if (a.start >= 0)
        f->open_at = base + (uint32_t)a.start;
}

static void frame_all(const uint8_t *b, size_t len, const uint8_t *cuts, size_t ncuts,
                      struct kvg_flow_st *st, struct framed *f)
{
    memset(st, 0, sizeof(*st));
    memset(f, 0, sizeof(*f));
    f->bad_at = UINT64_MAX;
    size_t off = 0, k = 0;
    while (off < len) {
        size_t piece = len; /* whole, or a byte's worth (now and then x67: bodies) */
        if (ncuts) {
            uint8_t c = cuts[k % ncuts], d = cuts[(k + 1) % ncuts];
            piece = 1 + (size_t)c * (d & 7 ? 1 : 67);
            k++;
        }
        if (piece > len - off)
            piece = len - off;
        frame(st, f, b + off, (uint32_t)piece, off);
        off += piece;
    }
}

static void fuzz_answers(const uint8_t *b, size_t len, uint8_t param)
{
    struct kvg_flow_st s1, s2;
    struct framed f1, f2;
    size_t ncuts = 1 + (param & 15);
    if (ncuts > len)
        ncuts = len;
    frame_all(b, len, NULL, 0, &s1, &f1);
    frame_all(b, len, b, ncuts, &s2, &f2); /* the cuts come from the bytes themselves */
    if (f1.answers != f2.answers || s1.phase != s2.phase || f1.bad_at != f2.bad_at ||
        (s1.phase != KVG_AN_BAD && s1.phase != KVG_AN_CLOSE && s1.body_left != s2.body_left) ||
        s1.status != s2.status || (s1.flags & KVG_ST_F_CLOSE) != (s2.flags & KVG_ST_F_CLOSE))
        abort(); /* framing that depends on where TCP cut the stream */
    if (f1.bad_at != UINT64_MAX && f1.bad_at > len)
        abort();
    if (f1.answers > len / 12) /* "HTTP/1.1 204\r\n\r\n" is the shortest answer: 17 bytes */
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 0x80)
        fuzz_answers(data + 1, size - 1, data[0]);
    else
        fuzz_request(data + 1, size - 1, data[0]);
    return 0;
}
