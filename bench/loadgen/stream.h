/* stream: what one response says about its request, fed by a transport.
 *
 * The transport reports the status and headers, then the decoded body as
 * it arrives (with its arrival time), then the end of the body; this module
 * parses SSE events and fills the request record: TTFT (first event with
 * non-empty content), gaps between content events, usage (prompt,
 * completion, cached tokens), errors. Transport-independent: an HTTP/2
 * transport calls the same four functions. */
#ifndef KVGATE_BENCH_STREAM_H
#define KVGATE_BENCH_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "lg.h"

#define LG_ERR_BODY_MAX 4096     /* kept of a non-200 body */
#define LG_JSON_BODY_MAX (8u << 20) /* kept of a non-streaming 200 body */

/* 0 or -ENOMEM. keep_text: collect the assistant's text (multi-turn). */
int lg_stream_open(struct lg_req *r, int keep_text);
void lg_stream_close(struct lg_req *r);

void lg_stream_head(struct lg_req *r, int status, int event_stream,
                    const char *pod, size_t pod_len);

/* Body bytes that arrived at now (absolute ns, same clock as the record).
 * 0, or -1 when the stream is malformed (r->err set). */
int lg_stream_body(struct lg_req *r, const char *p, size_t n, uint64_t now);

/* The body is complete: classifies the request (sets r->err, errmsg,
 * token counts); returns r->err. */
int lg_stream_end(struct lg_req *r, uint64_t now);

/* Sets r->err and a copy of the message (first error wins). */
void lg_req_fail(struct lg_req *r, enum lg_err e, const char *msg);

#endif
