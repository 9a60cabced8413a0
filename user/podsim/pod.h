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
    double kv_drop_rate;   /* share of KV-event batches lost on the way out */
    uint32_t kv_delay_ms;  /* every KV-event batch this late (order kept) */
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
    uint64_t kv_timer;       /* KV-event ring: replay requests, delayed batches */
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
/* KV events beyond the PUB socket: adapter names in BlockStored, the
 * replay endpoint tcp://host:replay_port (0: none), the event faults from
 * p->faults, and the ring's tick. 0, or -1 (said why). */
int pod_kv_setup(struct pod *p, const char *host, uint32_t replay_port);
/* Applies p->faults' KV-event faults to its batch. 0 or -ENOMEM. */
int pod_kv_faults(struct pod *p);
/* engine_reset_prefix_cache, and AllBlocksCleared published at once (not
 * at the next step, which an idle pod may not take for a long time). 0 or
 * -EBUSY. */
int pod_reset_prefix_cache(struct pod *p);
/* Starts the KV-event ring's periodic tick if the pod's batch has a ring
 * (replay endpoint or event faults); idempotent. */
void pod_kv_arm(struct pod *p);
/* Uniform [0,1) from the pod's fault RNG. */
double pod_rand(struct pod *p);

#endif
