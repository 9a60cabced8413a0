/* engine: one pod's continuous-batching scheduler, as vLLM v1 runs it, on a
 * simulated clock.
 *
 * A step is planned (engine_step_begin) from the requests present, lasts the
 * profile's step time, and is applied at its end (engine_step_end), which
 * samples tokens and calls the requests back. The caller (pod.c) owns the
 * clock: it arms a timer for the step's duration x time scale. Unit tests
 * drive the two calls directly on a virtual clock.
 *
 * Scheduling per step (vLLM v1, FCFS): running requests first, in order,
 * each asking num_tokens - num_computed tokens (1 for a decode, the rest of
 * the prompt for a chunked prefill) within the token budget; when blocks run
 * out, the newest running request is preempted (blocks freed, progress
 * dropped, back to the front of the waiting queue). Then waiting requests,
 * in order, while the budget and max_num_seqs allow: prefix-cache hit, then
 * a prefill chunk of at most the remaining budget; a request whose blocks
 * cannot be allocated stops the waiting scan. */
#ifndef KVGATE_PODSIM_ENGINE_H
#define KVGATE_PODSIM_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "kvcache.h"
#include "metrics.h"

/* Step-time model, in ms:
 *   overhead + max(floor, per_token * n_tokens)
 *   + decode_ctx * sum(decode context tokens)
 *   + prefill_attn * sum over prefill chunks of n * (cached + n/2)      */
struct profile {
    const char *name;
    double overhead_ms;
    double floor_ms;
    double per_token_ms;
    double decode_ctx_ms;
    double prefill_attn_ms;
    uint32_t kv_blocks; /* default capacity in 16-token blocks */
};

/* NULL if unknown. Known: "llama3-8b-h100" (default), "llama3-70b-h100-tp4". */
const struct profile *profile_find(const char *name);
double profile_step_ms(const struct profile *p, uint64_t n_tokens,
                       uint64_t decode_ctx_tokens, double prefill_attn_units);

enum req_state { REQ_NEW, REQ_WAITING, REQ_RUNNING, REQ_DONE };
enum finish_reason { FINISH_NONE, FINISH_LENGTH, FINISH_STOP, FINISH_ABORT };

struct sim_req;
typedef void (*req_token_cb)(struct sim_req *r, uint32_t token);
typedef void (*req_finish_cb)(struct sim_req *r);

#define LORA_MAX 64
#define LORA_NAME_MAX 64

struct sim_req {
    /* set by the submitter */
    uint32_t *tokens;       /* prompt then outputs; capacity tokens_cap */
    uint32_t tokens_cap;    /* >= num_prompt + max_output */
    uint32_t num_prompt;
    uint32_t max_output;    /* tokens to generate before finishing */
    int eos_early;          /* finish reason "stop" rather than "length" */
    int lora;               /* adapter index + 1, 0 = base model */
    uint64_t seed;          /* output token stream */
    req_token_cb on_token;
    req_finish_cb on_finish;
    void *user;

    /* engine state */
    enum req_state state;
    enum finish_reason finish;
    uint32_t num_tokens;    /* prompt + outputs so far */
    uint32_t num_computed;
    uint32_t num_output;
    int32_t num_cached;     /* prefix-cache hit at first schedule, -1 before */
    uint32_t *blocks;       /* block table */
    uint32_t nblocks, blocks_cap;
    uint64_t *hashes;       /* chained hashes of the full blocks of tokens[] */
    uint32_t nhashed, hashes_cap;
    uint32_t ncommitted;    /* leading blocks entered in the prefix cache */
    uint64_t extra_key;     /* adapter's key in block hashes, 0 = base */
    uint32_t sched_tokens;  /* tokens in the step being run */
    uint32_t npreempt;
    double t_arrival, t_first_sched, t_first_token, t_last_token;
    struct sim_req *next, *prev; /* waiting queue links */
};

struct lora {
    char name[LORA_NAME_MAX];
    int loaded;       /* registered (served), via --lora or the load API */
    int resident;     /* in one of max_loras GPU slots */
    double last_used;
};

struct engine_cfg {
    const struct profile *profile;
    uint32_t kv_blocks;         /* 0 = profile default */
    uint32_t max_num_seqs;      /* default 256 */
    uint32_t max_batched_tokens;/* default 8192 */
    uint32_t max_loras;         /* GPU adapter slots, default 4 */
    double lora_load_ms;        /* added to the step that loads one, default 20 */
};

struct pod_stats {
    uint64_t prompt_tokens, generation_tokens;
    uint64_t preemptions;
    uint64_t prefix_queries, prefix_hits;  /* tokens */
    uint64_t finished_stop, finished_length, finished_abort;
    uint64_t lora_loads;
    uint64_t steps;
    double busy_ms;                         /* simulated */
    struct hist ttft, itl, e2e, queue;      /* simulated seconds */
};

struct engine {
    struct engine_cfg cfg;
    struct kv_cache kv;
    struct sim_req *wait_head, *wait_tail;
    uint32_t nwaiting;
    struct sim_req **running;
    uint32_t nrunning, running_cap;
    struct sim_req **batch;     /* requests in the step being run */
    uint32_t nbatch;
    int in_step;
    double step_ms;             /* duration of the step being run */
    double slowdown;            /* fault: multiplies step time, 1.0 */
    struct lora loras[LORA_MAX];
    uint32_t nloras;
    struct pod_stats st;
};

int engine_init(struct engine *e, const struct engine_cfg *cfg);
void engine_destroy(struct engine *e); /* aborts nothing: free requests first */

/* Adapter registry (vLLM's --lora-modules and load/unload API).
 * add: index+1 on success, -EEXIST, -ENOSPC, -EINVAL.
 * remove: 0, -ENOENT, -EBUSY (requests use it). find: index+1 or 0. */
int engine_lora_add(struct engine *e, const char *name);
int engine_lora_remove(struct engine *e, const char *name);
int engine_lora_find(const struct engine *e, const char *name);

/* Allocates a request's prompt/hash/block arrays for num_prompt + max_output
 * tokens. 0 or -ENOMEM. engine_req_release frees them (not the struct). */
int engine_req_prepare(struct sim_req *r, uint32_t num_prompt,
                       uint32_t max_output);
void engine_req_release(struct sim_req *r);

/* Queues a prepared request (tokens[0..num_prompt) filled) at time now. */
void engine_submit(struct engine *e, struct sim_req *r, double now);
/* Removes a request wherever it is and frees its blocks; no callback. If it
 * is in the running step it is dropped from the step's results. */
void engine_abort(struct engine *e, struct sim_req *r);

/* Plans one step at time now; returns its duration in simulated ms, or 0
 * when there is nothing to run. */
double engine_step_begin(struct engine *e, double now);
/* Applies the step at its end time now: tokens, callbacks, finishes. */
void engine_step_end(struct engine *e, double now);

static inline int engine_busy(const struct engine *e)
{
    return e->nwaiting || e->nrunning;
}

/* Output token i of a request: 4 printable bytes, deterministic from seed. */
uint32_t engine_output_token(uint64_t seed, uint32_t i);

/* vLLM's reset_prefix_cache: 0 or -EBUSY while requests hold blocks. */
int engine_reset_prefix_cache(struct engine *e);

#endif
