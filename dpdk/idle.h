/* idle: how the worker waits when there is nothing to do. After IDLE_POLLS
 * empty polls it blocks in poll(2) on the AF_XDP socket the af_xdp driver
 * opened (the kernel wakes it when XDP puts a frame on the socket's Rx
 * ring) and on the decision channel's socket, until the next timer is due.
 * DPDK 22.11's af_xdp driver has no Rx interrupt mode, and it does not
 * hand out its socket: the socket is found among the process's own file
 * descriptors by its domain (AF_XDP), once the port is started. Where none
 * is found (another driver, a kernel without AF_XDP) the worker falls back
 * to a 200 us nanosleep, which wakes it ~5,000 times a second. */
#ifndef KVGATE_DPDK_IDLE_H
#define KVGATE_DPDK_IDLE_H

#include <stdint.h>

/* Finds the process's AF_XDP sockets; returns how many (0: the fallback). */
int idle_init(void);
/* Blocks until a frame is on an Rx ring, extra_fd (when >= 0) is ready
 * for extra_events, or timeout_ms passed (0 returns at once). Returns 1
 * when it blocked on the sockets, 0 when it slept (the fallback). */
int idle_wait(int extra_fd, short extra_events, int timeout_ms);
/* The AF_XDP sockets idle_init found (for the stats). */
int idle_socks(void);

#endif
