/* pod: one simulated model server = engine + HTTP server + faults, driven by
 * the shared event loop. Many pods live in one process (podsim.c). */
#ifndef KVGATE_PODSIM_POD_H
#define KVGATE_PODSIM_POD_H

#include <stdint.h>

#include "engine.h"

struct ev_loop;
struct server;
struct kvev_pub;
struct kvev_batch;

struct faults {
    double fail_rate;      /* fraction of inference requests answered 500 */
    int refuse;            /* listener closed: connects refused */
    int metrics_mode;      /* 0 ok, 1 stall (never answer), 2 drop (close) */
    uint32_t close_after;  /* close streams after N tokens (0 = off) */
    double slowdown;       /* step time multiplier (1 = off) */
};

enum { METRICS_OK = 0, METRICS_STALL = 1, METRICS_DROP = 2 };

struct pod {
    int index;
    int port;
    char model[128];         /* served model name */
    uint32_t max_model_len;
    double time_scale;       /* wall = simulated x time_scale */
    int legacy_metrics;      /* gpu_cache_usage_perc instead of kv_cache_usage_perc */
    struct engine eng;
    struct faults faults;
    struct ev_loop *loop;
    struct server *srv;
    struct kvev_pub *kvpub;  /* NULL unless --kv-events */
    struct kvev_batch *kvb;
    uint64_t step_timer;
    uint64_t t0_ns;          /* process start (monotonic) */
    uint64_t rng;            /* fault draws */
    uint64_t next_id;        /* request ids */
    uint64_t inflight;       /* HTTP requests being served */
    /* lora_requests_info history: newest label sets with their timestamps */
    struct {
        char running[256], waiting[256];
        double ts;
    } lora_info[8];
    int nlora_info;
};

/* Simulated seconds since process start. */
double pod_now(const struct pod *p);
/* Wall-clock unix time (for "created" and metric timestamps). */
double pod_unix_now(void);
/* Submits r to the engine and makes sure a step is scheduled. */
void pod_submit(struct pod *p, struct sim_req *r);
void pod_abort(struct pod *p, struct sim_req *r);
/* Records the current lora running/waiting sets (called each step). */
void pod_note_lora(struct pod *p);
/* Uniform [0,1) from the pod's fault RNG. */
double pod_rand(struct pod *p);

#endif
