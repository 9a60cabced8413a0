/* run: the open-loop runner. Owns the event loop, the schedule, the
 * per-request timeouts, multi-turn follow-ups, progress and stop; hands each
 * due request to a transport, which owns connections and calls back.
 *
 * Open loop: a request is handed to the transport at its scheduled time
 * whatever is still in flight; the transport sends it on an idle keep-alive
 * connection or a new one (up to --max-conns), or queues it. The lag
 * between the scheduled and the actual first write is recorded per request,
 * so coordinated omission shows instead of hiding. */
#ifndef KVGATE_BENCH_RUN_H
#define KVGATE_BENCH_RUN_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/ev.h"
#include "common/sbuf.h"
#include "ideal.h"
#include "lg.h"
#include "workload.h"

#define LG_MAX_TARGETS 256

struct lg_cfg {
    const char *targets[LG_MAX_TARGETS]; /* http://host:port */
    size_t ntargets;
    const char *path;      /* /v1/chat/completions */
    const char *transport; /* "http1" or "h2c" */
    double time_scale;     /* wall = simulated x scale */
    double timeout_s;      /* per request, simulated */
    uint32_t max_conns;
    uint32_t h2_streams;   /* h2c: concurrent streams per connection */
    int session_conns;     /* http1, multi-turn: one connection per session */
    int quiet;
    double slo_ttft_ms, slo_tpot_ms; /* simulated; <= 0: none */
    uint64_t fleet_kv_blocks; /* finite-cache ideal capacity (16-token blocks); 0 = none */
};

struct lg_target {
    char url[300];
    char authority[280]; /* Host header */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    void *tp;            /* transport's per-target state */
    uint64_t dispatched;
};

struct lg_run;

/* A transport: HTTP/1.1 (h1.c) or HTTP/2 cleartext (h2.c). */
struct lg_transport {
    const char *name;
    int (*init)(struct lg_run *run, char *err, size_t errlen);
    void (*fini)(struct lg_run *run);
    /* r is due, r->target chosen: send it now or queue it. Outcomes come
     * back through lg_run_sent / lg_run_done. */
    void (*submit)(struct lg_run *run, struct lg_req *r);
    /* Drop r wherever it is (queue or connection); no callbacks. */
    void (*cancel)(struct lg_run *run, struct lg_req *r);
    /* Open connections and requests waiting for one. */
    void (*gauges)(struct lg_run *run, size_t *conns, size_t *queued);
};

extern const struct lg_transport lg_h1_transport;
extern const struct lg_transport lg_h2c_transport;

struct lg_run {
    struct ev_loop *loop;
    const struct lg_cfg *cfg;
    struct lg_workload *wl;
    struct lg_req *reqs; /* one per workload item */
    size_t nreqs;
    struct lg_target targets[LG_MAX_TARGETS];
    size_t ntargets;
    uint32_t rr;
    const struct lg_transport *tp;
    void *tpd;

    uint64_t t0;          /* start (monotonic ns) */
    uint64_t t_end;       /* last request finished */
    double ns_per_sim_s;  /* 1e9 x time scale */
    uint64_t timeout_ns, think_ns;
    size_t cursor;        /* next in wl->order */
    uint64_t disp_timer, prog_timer, stop_timer;

    size_t n_dispatched, n_sent, n_finished, n_ok, n_failed, n_inflight;
    uint64_t lag_window_max; /* largest lag sent in the current second */
    uint64_t lag_last;

    struct lg_ideal ideal; /* online, over what was sent, in send order */
    struct sbuf body, rendered;
    struct lg_wl_meta meta;
    int interrupted;
    int sigfd;
};

int lg_run_init(struct lg_run *run, const struct lg_cfg *cfg, struct lg_workload *wl,
                char *err, size_t errlen);
/* Runs to the end (every request finished, or interrupted). 0 or -errno. */
int lg_run_go(struct lg_run *run);
void lg_run_free(struct lg_run *run);

/* ---- for transports ---- */

/* Builds r's body (run->body) and meta (run->meta) and opens its stream;
 * called when r gets a connection. 0 or -errno (r is then failed). */
int lg_run_build(struct lg_run *run, struct lg_req *r);
/* The first bytes of r were written at now. */
void lg_run_sent(struct lg_run *run, struct lg_req *r, uint64_t now);
/* r is over: complete (body framing finished: classify it) or failed (the
 * transport set r->err with lg_req_fail). r is detached from the transport. */
void lg_run_done(struct lg_run *run, struct lg_req *r, uint64_t now, int complete);

#endif
