/* httpresp: HTTP/1.x response heads and body framing for the load
 * generator (no I/O). The head is parsed by common/http1.h's
 * http1_parse_response (kvgated's parser of pods' answers: one set of
 * framing rules), with bare LF line ends tolerated; a head with bare LFs
 * is copied once to parse it.
 *
 * Feed the bytes received so far to lg_hresp_head until it returns the head
 * length; then hand every later byte to lg_hresp_body, which removes the
 * framing (chunked encoding, in place) and says when the body is complete.
 * Header values the load generator needs are copied out. */
#ifndef KVGATE_BENCH_HTTPRESP_H
#define KVGATE_BENCH_HTTPRESP_H

#include <stddef.h>
#include <stdint.h>

#include "common/http1.h"

#define LG_HRESP_MAX_HEAD (64u << 10)
#define LG_HRESP_DEST_MAX 64

enum lg_body_mode {
    LG_BODY_NONE = 0, /* 1xx, 204, 304: no body */
    LG_BODY_LENGTH,   /* content-length */
    LG_BODY_CHUNKED,
    LG_BODY_CLOSE,    /* until the server closes */
};

struct lg_hresp {
    int status;
    int minor;
    int keep_alive;
    int event_stream;           /* content-type: text/event-stream */
    int64_t content_length;     /* -1 when absent or overridden by Transfer-Encoding */
    enum lg_body_mode mode;
    char dest[LG_HRESP_DEST_MAX]; /* x-gateway-destination-endpoint */
    size_t dest_len;
    size_t head_len;
    /* body framing */
    uint64_t left;              /* LG_BODY_LENGTH: bytes still due */
    struct http1_chunked ck;
    int done;                   /* body complete */
};

enum {
    LG_HRESP_INCOMPLETE = 0,
    LG_HRESP_BAD = -1,
    LG_HRESP_TOO_LARGE = -2,
};

/* Parses a response head in buf[0..len). Returns LG_HRESP_INCOMPLETE, the
 * head length (> 0, and h is filled in), or LG_HRESP_BAD / _TOO_LARGE
 * (over LG_HRESP_MAX_HEAD, or more than HTTP1_MAX_HEADERS fields).
 * A 1xx head (other than 101) is complete with mode NONE: the caller skips
 * it and parses the next head. */
int lg_hresp_head(struct lg_hresp *h, const char *buf, size_t len);

/* Decodes body bytes in place: consumes in[0..len), leaves *out_len body
 * bytes at in[0..). Returns the bytes consumed (the rest belongs to the
 * next response), or -1 on malformed framing. Sets h->done. */
long lg_hresp_body(struct lg_hresp *h, char *in, size_t len, size_t *out_len);

/* The connection reached EOF: 1 if that completes the body. */
int lg_hresp_eof(struct lg_hresp *h);

#endif
