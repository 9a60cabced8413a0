/* tokload: per-pod token load and measured prefill rate. See tokload.h. */
#include "core/tokload.h"

#include <string.h>

void tokload_init(struct tokload *t)
{
    memset(t, 0, sizeof(*t));
    for (uint32_t i = 0; i < POD_MAX; i++)
        pthread_mutex_init(&t->pods[i].mu, NULL);
}

void tokload_fini(struct tokload *t)
{
    for (uint32_t i = 0; i < POD_MAX; i++)
        pthread_mutex_destroy(&t->pods[i].mu);
}

void tokload_route(struct tokload *t, struct tokload_req *r, uint32_t slot, uint32_t prompt,
                   uint32_t uncached)
{
    if (slot >= POD_MAX || r->phase != TL_NONE)
        return;
    if (uncached > prompt)
        uncached = prompt;
    *r = (struct tokload_req){.slot = slot, .prompt = prompt, .uncached = uncached,
                              .phase = TL_PREFILL};
    atomic_fetch_add_explicit(&t->pods[slot].prefill, uncached, memory_order_relaxed);
}

/* Adds one retirement to the pod's window; the caller holds p->mu. */
static void rate_add(struct tokload_pod *p, double tokens, double ns)
{
    p->win_tokens += tokens;
    p->win_ns += ns;
    while (p->win_ns > (double)TOKLOAD_WINDOW_NS) {
        p->win_tokens /= 2;
        p->win_ns /= 2;
    }
    /* A window with under a millisecond of busy time says little: batched
     * first tokens arrive together and would read as a huge rate. */
    if (p->win_ns >= 1e6 && p->win_tokens > 0)
        atomic_store_explicit(&p->rate_milli, (uint64_t)(p->win_tokens / p->win_ns * 1e12),
                              memory_order_relaxed);
}

void tokload_first_token(struct tokload *t, struct tokload_req *r, uint64_t now_ns)
{
    if (r->phase != TL_PREFILL)
        return;
    struct tokload_pod *p = &t->pods[r->slot];
    atomic_fetch_sub_explicit(&p->prefill, r->uncached, memory_order_relaxed);
    r->decode = r->prompt;
    atomic_fetch_add_explicit(&p->decode, r->decode, memory_order_relaxed);
    r->phase = TL_DECODE;

    uint64_t prev = atomic_exchange_explicit(&p->last_first_ns, now_ns, memory_order_relaxed);
    if (!r->sent_ns || now_ns < r->sent_ns || !r->uncached)
        return; /* nothing prefilled, or no start time: no sample */
    uint64_t from = prev > r->sent_ns && prev <= now_ns ? prev : r->sent_ns;
    pthread_mutex_lock(&p->mu);
    rate_add(p, (double)r->uncached, (double)(now_ns - from));
    pthread_mutex_unlock(&p->mu);
}

void tokload_output(struct tokload *t, struct tokload_req *r, uint32_t n)
{
    if (r->phase != TL_DECODE)
        return;
    r->decode += n;
    atomic_fetch_add_explicit(&t->pods[r->slot].decode, n, memory_order_relaxed);
}

void tokload_release(struct tokload *t, struct tokload_req *r)
{
    if (r->phase == TL_PREFILL)
        atomic_fetch_sub_explicit(&t->pods[r->slot].prefill, r->uncached, memory_order_relaxed);
    else if (r->phase == TL_DECODE)
        atomic_fetch_sub_explicit(&t->pods[r->slot].decode, r->decode, memory_order_relaxed);
    r->phase = TL_NONE;
}

void tokload_forget_rate(struct tokload *t, uint32_t slot)
{
    if (slot >= POD_MAX)
        return;
    struct tokload_pod *p = &t->pods[slot];
    pthread_mutex_lock(&p->mu);
    p->win_tokens = p->win_ns = 0;
    atomic_store_explicit(&p->rate_milli, 0, memory_order_relaxed);
    atomic_store_explicit(&p->last_first_ns, 0, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
}
