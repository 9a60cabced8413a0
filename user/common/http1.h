/* http1: incremental HTTP/1.1 request-head parser (no I/O, no allocation).
 *
 * Feed it the bytes received so far; it tells whether the head is complete,
 * and if so where the body begins and how it is framed. Shared by
 * kvgate-podsim and kvgated; has a libFuzzer target (tests/fuzz/fuzz_http1.c).
 * Header names and values point into the caller's buffer. */
#ifndef KVGATE_HTTP1_H
#define KVGATE_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#define HTTP1_MAX_HEADERS 64

struct http1_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct http1_request {
    const char *method;
    size_t method_len;
    const char *target; /* request-target, e.g. "/v1/models" */
    size_t target_len;
    int minor;          /* HTTP/1.<minor> */
    struct http1_header headers[HTTP1_MAX_HEADERS];
    size_t nheaders;
    size_t head_len;    /* bytes of request line + headers + blank line */
    int64_t content_length; /* -1 when absent */
    int chunked;        /* Transfer-Encoding: chunked */
    int keep_alive;     /* after HTTP version and Connection header */
    int upgrade_h2c;    /* Upgrade: h2c with HTTP2-Settings */
    int expect_continue;
};

enum {
    HTTP1_INCOMPLETE = 0, /* need more bytes */
    /* > 0: complete, value is head_len */
    HTTP1_ERR_BAD = -1,      /* malformed -> 400 */
    HTTP1_ERR_TOO_LARGE = -2,/* head larger than max_head -> 431 */
    HTTP1_ERR_VERSION = -3,  /* not HTTP/1.x -> 505 */
};

/* Parses buf[0..len). Returns HTTP1_INCOMPLETE, head length (> 0), or an
 * HTTP1_ERR_*. max_head bounds the head (request line + headers). */
int http1_parse_request(const char *buf, size_t len, size_t max_head,
                        struct http1_request *req);

/* A response head (a pod's answer to kvgated). */
struct http1_response {
    int status;         /* 100..999 */
    int minor;          /* HTTP/1.<minor> */
    int64_t content_length; /* -1 when absent or overridden by Transfer-Encoding */
    int chunked;        /* Transfer-Encoding ends in chunked */
    int until_close;    /* no framing: the body ends when the connection does */
    int keep_alive;     /* the connection may carry another request */
    size_t head_len;
    size_t nheaders;
    struct http1_header headers[HTTP1_MAX_HEADERS];
};

/* Parses a response head in buf[0..len) with the request parser's
 * strictness: CRLF lines, tchar names, no control byte (but HTAB) in a
 * value or the reason phrase, no obs-fold, Content-Length digits only and
 * repeated only with the same value. Returns HTTP1_INCOMPLETE, the head
 * length, HTTP1_ERR_BAD or HTTP1_ERR_TOO_LARGE (over max_head or more than
 * HTTP1_MAX_HEADERS fields). 1xx heads parse like any other. Whether the
 * status carries a body (HEAD, 204, 304) is the caller's to judge. */
int http1_parse_response(const char *buf, size_t len, size_t max_head,
                         struct http1_response *resp);

/* Does the comma-separated list v[0..n) hold token tok (case-insensitive,
 * OWS trimmed)? For Connection and similar list fields. */
int http1_has_token(const char *v, size_t n, const char *tok);

/* Is name[0..len) the NUL-terminated lit, ASCII case ignored? Header
 * names, tokens: the one case-insensitive compare of the tree. */
int http1_name_eq(const char *name, size_t len, const char *lit);

/* Is the media type of a Content-Type value v[0..n) `type` (case
 * ignored, parameters after ';' and OWS ignored)?
 * "Text/Event-Stream; charset=utf-8" is "text/event-stream";
 * "text/event-streams" is not. */
int http1_media_type_is(const char *v, size_t n, const char *type);

/* Case-insensitive header lookup; NULL if absent. */
const struct http1_header *http1_find(const struct http1_request *req,
                                      const char *name);

/* Incremental chunked-body decoder: decodes in place. */
struct http1_chunked {
    int state;
    uint64_t remaining; /* bytes left in current chunk */
    int done;           /* final chunk and trailers consumed */
};
/* Consumes in[0..len), writes body bytes to out (may equal in), returns
 * bytes consumed (>= 0) and sets *out_len, or -1 on malformed framing. */
long http1_chunked_decode(struct http1_chunked *c, const char *in, size_t len,
                          char *out, size_t *out_len);

#endif
