/* tokload: each pod's load in tokens, as this gateway sent it, and how fast
 * the pod works through prefills.
 *
 * Per pod, three figures the worker threads keep up to date without locks:
 *   prefill   uncached prompt tokens of requests sent to the pod that have
 *             not produced their first token yet: the prefill work queued
 *             or under way there;
 *   decode    context tokens (prompt + output so far) of requests past
 *             their first token: what each decode step reads (a step's
 *             cost grows with it: DESIGN.md's step model, vLLM's attention);
 *   rate      prefill tokens per second the pod retires, measured.
 *
 * The rate is a ratio of sums over a decaying window, not a mean of
 * per-request rates: each first token retires the request's uncached
 * tokens and adds the time since the later of (the request was sent, the
 * pod's previous first token), so requests prefilled in one batch add
 * their tokens with next to no time and a queue is not counted twice. When
 * the window holds more than TOKLOAD_WINDOW_NS of busy time both sums are
 * halved. With nothing measured yet the rate is 0 ("unknown").
 *
 * A request's share is held in struct tokload_req and given back exactly
 * once (tokload_release), whatever path it ended on. */
#ifndef KVGATE_CORE_TOKLOAD_H
#define KVGATE_CORE_TOKLOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/podtable.h"

#define TOKLOAD_WINDOW_NS (10ull * 1000000000ull)

struct tokload_pod {
    atomic_uint_fast64_t prefill;
    atomic_uint_fast64_t decode;
    atomic_uint_fast64_t last_first_ns; /* the pod's latest first token */
    pthread_mutex_t mu;                 /* the rate window below */
    double win_tokens, win_ns;
    atomic_uint_fast64_t rate_milli;    /* tokens/s x 1000, 0 unknown */
};

struct tokload {
    struct tokload_pod pods[POD_MAX];
};

enum tokload_phase { TL_NONE, TL_PREFILL, TL_DECODE };

struct tokload_req {
    uint32_t slot;
    uint32_t prompt;   /* prompt tokens */
    uint32_t uncached; /* of them, not in the pod's cache (as estimated) */
    uint64_t decode;   /* context tokens counted in the pod's decode load */
    uint64_t sent_ns;  /* the request left for the pod; 0 unknown */
    enum tokload_phase phase;
};

void tokload_init(struct tokload *t);
void tokload_fini(struct tokload *t);

/* A request was routed to slot: its uncached tokens join the pod's
 * prefill load. r must be TL_NONE (released). */
void tokload_route(struct tokload *t, struct tokload_req *r, uint32_t slot, uint32_t prompt,
                   uint32_t uncached);

/* The pod produced the request's first token at now_ns: its uncached
 * tokens leave the prefill load, feed the rate, and its prompt joins the
 * decode load. No-op past the prefill phase. */
void tokload_first_token(struct tokload *t, struct tokload_req *r, uint64_t now_ns);

/* n more output tokens extend the request's context (decode phase only). */
void tokload_output(struct tokload *t, struct tokload_req *r, uint32_t n);

/* Gives back whatever the request still holds; idempotent. */
void tokload_release(struct tokload *t, struct tokload_req *r);

static inline uint64_t tokload_prefill(const struct tokload *t, uint32_t slot)
{
    return atomic_load_explicit(&t->pods[slot].prefill, memory_order_relaxed);
}
static inline uint64_t tokload_decode(const struct tokload *t, uint32_t slot)
{
    return atomic_load_explicit(&t->pods[slot].decode, memory_order_relaxed);
}
/* Tokens per second, 0 unknown. */
static inline double tokload_rate(const struct tokload *t, uint32_t slot)
{
    return (double)atomic_load_explicit(&t->pods[slot].rate_milli, memory_order_relaxed) / 1000.0;
}

/* A slot was given to another pod: its rate window starts afresh (loads
 * drain by themselves as its requests are released). */
void tokload_forget_rate(struct tokload *t, uint32_t slot);

#endif
