/* idle: how a worker waits when there is nothing to do. After IDLE_POLLS
 * empty polls it blocks in poll(2) on its queue's AF_XDP socket (the
 * kernel wakes it when XDP puts a frame on the socket's Rx ring), on the
 * decision channel's socket and on its inbox's eventfd (steer.h), until
 * the next timer is due. DPDK 22.11's af_xdp driver has no Rx interrupt
 * mode, and it does not hand out its sockets: each is found among the
 * process's own file descriptors by its domain (AF_XDP), the one that
 * appeared when its queue was set up (idle_scan before and after). Where
 * none is found (another driver, a kernel without AF_XDP) the worker falls
 * back to a 200 us nanosleep, which wakes it ~5,000 times a second. */
#ifndef KVGATE_DPDK_IDLE_H
#define KVGATE_DPDK_IDLE_H

#include <stdint.h>

#define IDLE_MAX_SOCKS 8

/* The process's AF_XDP sockets now (at most max into fds); how many. */
int idle_scan(int *fds, int max);
/* This worker's sockets (n 0: the fallback). */
void idle_use(const int *fds, int n);
/* Blocks until a frame is on one of this worker's Rx rings, extra_fd
 * (when >= 0) is ready for extra_events, wake_fd (when >= 0) is readable,
 * or timeout_ms passed (0 returns at once). Returns 1 when it blocked on
 * the sockets, 0 when it slept (the fallback). */
int idle_wait(int extra_fd, short extra_events, int wake_fd, int timeout_ms);

#endif
