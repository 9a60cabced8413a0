/* evtest: running an ev_loop for a bounded time in unit tests. */
#ifndef KVGATE_TEST_EVTEST_H
#define KVGATE_TEST_EVTEST_H

#include "common/ev.h"

#define MS 1000000ull

static void evtest_stop_cb(struct ev_loop *l, void *arg)
{
    ev_stop(l);
}

/* Runs l until a callback stops it, or ms pass. */
static inline void run_for(struct ev_loop *l, unsigned ms)
{
    uint64_t t = ev_timer_at(l, ev_now_ns() + ms * MS, evtest_stop_cb, NULL);
    ev_run(l);
    ev_timer_cancel(l, t);
}

#endif
