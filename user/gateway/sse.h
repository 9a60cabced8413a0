/* sse: the server-sent events a pod streams back, as kvgated relays them.
 * No I/O, no allocation; parses untrusted bytes (tests/fuzz/fuzz_sse.c).
 *
 * kvgated relays an SSE answer whole events at a time, so that an error
 * event it adds (a pod failing mid-stream, a drain deadline) never lands
 * inside one, and it times every event that carries generated text (TTFT,
 * inter-token latency). An event ends at a blank line: "\n\n" or
 * "\n\r\n" (a CR before the first LF is part of the line). */
#ifndef KVGATE_GATEWAY_SSE_H
#define KVGATE_GATEWAY_SSE_H

#include <stddef.h>

enum sse_kind {
    SSE_NO_DATA = 0,  /* comments, "event:", "id:" only */
    SSE_DATA = 1,     /* a "data:" line, no generated text in it */
    SSE_CONTENT = 2,  /* a non-empty "content" or "text" string in the data */
};

/* Calls on_event(arg, e, n) for each complete event at the start of
 * d[0..len) (e without its blank line) and returns the bytes they take,
 * blank lines included; what follows is a partial event. */
size_t sse_split(const char *d, size_t len,
                 void (*on_event)(void *arg, const char *e, size_t n), void *arg);

/* What one event (as sse_split hands it over) carries. */
enum sse_kind sse_kind(const char *e, size_t n);

#endif
