/* ev: a single-threaded epoll event loop with one-shot timers.
 *
 * One job: wait for fd readiness and deadlines, call back. No allocation on
 * the hot path except timer nodes (pooled). Times are CLOCK_MONOTONIC
 * nanoseconds. Callbacks may add/remove fds and timers, including their own. */
#ifndef KVGATE_EV_H
#define KVGATE_EV_H

#include <stdint.h>

struct ev_loop;

typedef void (*ev_io_cb)(struct ev_loop *l, int fd, uint32_t events, void *arg);
typedef void (*ev_timer_cb)(struct ev_loop *l, void *arg);

uint64_t ev_now_ns(void); /* CLOCK_MONOTONIC, ns */

struct ev_loop *ev_new(void);
void ev_free(struct ev_loop *l);

/* events: EPOLLIN / EPOLLOUT / ... (level-triggered). 0 or -errno. */
int ev_add(struct ev_loop *l, int fd, uint32_t events, ev_io_cb cb, void *arg);
int ev_mod(struct ev_loop *l, int fd, uint32_t events);
int ev_del(struct ev_loop *l, int fd);

/* One-shot timer at absolute time at_ns; returns an id > 0 (0 on ENOMEM).
 * Cancelling an id that already fired or was cancelled is a no-op. */
uint64_t ev_timer_at(struct ev_loop *l, uint64_t at_ns, ev_timer_cb cb, void *arg);
void ev_timer_cancel(struct ev_loop *l, uint64_t id);

/* Runs until ev_stop() is called (from a callback or a signal handler via
 * the flag). Returns 0, or -errno if epoll fails. */
int ev_run(struct ev_loop *l);
void ev_stop(struct ev_loop *l);

#endif
