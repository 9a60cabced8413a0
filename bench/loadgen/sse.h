/* sse: incremental Server-Sent Events parser (no I/O).
 *
 * Feed the decoded response body as it arrives, split anywhere; complete
 * events are delivered to a callback with their data field (data lines
 * joined by '\n'). Lines end in LF, CRLF or CR (a CR at the end of one
 * feed and an LF at the start of the next are one line end). Comments
 * (": ping"), event/id/retry fields and unknown fields are skipped. A line
 * longer than max_line makes the stream malformed. */
#ifndef KVGATE_BENCH_SSE_H
#define KVGATE_BENCH_SSE_H

#include <stddef.h>

#include "common/sbuf.h"

#define LG_SSE_MAX_LINE (4u << 20)

struct lg_sse {
    struct sbuf line; /* current partial line */
    struct sbuf data; /* data of the current event */
    int has_data;
    int cr;           /* last byte fed was CR */
    size_t max_line;
    unsigned long events;
};

/* Returns 0 to go on, non-zero to stop parsing (lg_sse_feed returns it). */
typedef int (*lg_sse_cb)(void *arg, const char *data, size_t len);

void lg_sse_init(struct lg_sse *s);
void lg_sse_free(struct lg_sse *s);

/* 0, the callback's non-zero value, or -E2BIG / -ENOMEM. */
int lg_sse_feed(struct lg_sse *s, const char *p, size_t n, lg_sse_cb cb, void *arg);

#endif
