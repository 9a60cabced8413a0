/* reqq: a target's queue of requests waiting for a connection (or a
 * stream), shared by the transports (h1.c, h2.c). Intrusive: the links are
 * struct lg_req's qnext / qprev. */
#ifndef KVGATE_BENCH_REQQ_H
#define KVGATE_BENCH_REQQ_H

#include <stddef.h>

#include "lg.h"

struct lg_reqq {
    struct lg_req *head, *tail;
    size_t n;
};

/* At the tail, or at the head with front (a request put back). */
static inline void lg_reqq_push(struct lg_reqq *q, struct lg_req *r, int front)
{
    if (front) {
        r->qprev = NULL;
        r->qnext = q->head;
        if (q->head)
            q->head->qprev = r;
        else
            q->tail = r;
        q->head = r;
    } else {
        r->qnext = NULL;
        r->qprev = q->tail;
        if (q->tail)
            q->tail->qnext = r;
        else
            q->head = r;
        q->tail = r;
    }
    q->n++;
}

static inline void lg_reqq_remove(struct lg_reqq *q, struct lg_req *r)
{
    if (r->qprev)
        r->qprev->qnext = r->qnext;
    else
        q->head = r->qnext;
    if (r->qnext)
        r->qnext->qprev = r->qprev;
    else
        q->tail = r->qprev;
    r->qnext = r->qprev = NULL;
    q->n--;
}

#endif
