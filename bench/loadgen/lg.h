/* lg: the load generator's per-request record, shared by the runner, the
 * transports, the stream parser and the reports.
 *
 * Times are CLOCK_MONOTONIC nanoseconds relative to the run's start (t0),
 * wall clock; reports divide them by the time scale. */
#ifndef KVGATE_BENCH_LG_H
#define KVGATE_BENCH_LG_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "sse.h"

enum lg_err {
    LG_OK = 0,
    LG_E_CONNECT,     /* connect failed */
    LG_E_HTTP,        /* non-200 status */
    LG_E_TIMEOUT,     /* --timeout passed */
    LG_E_CLOSED,      /* connection closed or reset mid-response */
    LG_E_STREAM,      /* an error event inside the stream */
    LG_E_PROTOCOL,    /* malformed HTTP or SSE */
    LG_E_INCOMPLETE,  /* stream ended without data: [DONE] */
    LG_E_INTERRUPTED, /* in flight when the run was stopped */
    LG_E_NOT_SENT,    /* never sent: run stopped, or its session ended */
    LG_E_BUILD,       /* could not build the request */
    LG_E__N,
};

const char *lg_err_name(enum lg_err e);

enum lg_rstate {
    LG_R_WAITING = 0, /* not yet due */
    LG_R_QUEUED,      /* due, waiting for a connection */
    LG_R_SENT,        /* bytes written, response pending or streaming */
    LG_R_DONE,
};

#define LG_POD_MAX 64
#define LG_ERRMSG_MAX 160

/* Parse state of one response stream (lives while the request is in flight). */
struct lg_stream {
    struct lg_sse sse;
    struct sbuf text;   /* assistant text (multi-turn) or error body */
    int keep_text;
    int event_stream;   /* content-type: text/event-stream */
    int done;           /* data: [DONE] seen */
    int bad_events;     /* data that was not JSON */
    uint64_t now;       /* arrival time of the bytes being parsed */
};

struct lg_run;

struct lg_req {
    struct lg_run *run;
    uint32_t id;          /* workload item */
    uint8_t state;        /* enum lg_rstate */
    uint8_t err;          /* enum lg_err */
    uint8_t retried;      /* resent once after a stale keep-alive connection */
    uint8_t built;        /* ideal accounted */
    uint16_t target;
    uint16_t model;
    int status;           /* HTTP status, 0 = none */
    uint64_t sched_ns;    /* due (UINT64_MAX until known) */
    uint64_t send_ns;     /* first byte written; 0 = not sent */
    uint64_t first_ns;    /* first content event (absolute, 0 = none) */
    uint64_t last_ns;     /* last content event */
    uint64_t end_ns;      /* response complete or failed */
    uint32_t n_content;   /* content events */
    uint32_t completion_tokens, prompt_tokens, cached_tokens;
    uint32_t est_prompt;  /* prompt tokens by our rendering */
    uint32_t ideal_hit;   /* ideal cached tokens (infinite cache, perfect routing) */
    uint32_t ideal_finite_hit; /* ... into the fleet's finite KV (one LRU; ideal.h) */
    int has_usage;
    uint32_t *itl_us;     /* gaps between content events, wall us */
    uint32_t n_itl, cap_itl;
    char pod[LG_POD_MAX]; /* x-gateway-destination-endpoint */
    char *errmsg;
    struct lg_stream *st; /* while in flight */
    uint64_t timer;       /* timeout timer */
    void *conn;           /* transport connection while in flight */
    struct lg_req *qnext, *qprev; /* transport queue links */
};

#endif
