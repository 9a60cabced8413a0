/* idle: the worker's wait when idle (idle.h). */
#include "idle.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif

#define IDLE_MAX_SOCKS 8 /* one per queue; a worker drives one */

static int socks[IDLE_MAX_SOCKS];
static int nsocks;

int idle_init(void)
{
    nsocks = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && nsocks < IDLE_MAX_SOCKS) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dfd)
            continue;
        int dom = 0;
        socklen_t len = sizeof(dom);
        if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_XDP)
            socks[nsocks++] = (int)fd;
    }
    closedir(d);
    return nsocks;
}

int idle_socks(void) { return nsocks; }

int idle_wait(int extra_fd, short extra_events, int timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (nsocks == 0) {
        struct timespec ts = {0, 200000}; /* never spin a shared core */
        nanosleep(&ts, NULL);
        return 0;
    }
    struct pollfd p[IDLE_MAX_SOCKS + 1];
    int n = 0;
    for (int i = 0; i < nsocks; i++)
        p[n++] = (struct pollfd){.fd = socks[i], .events = POLLIN};
    if (extra_fd >= 0 && extra_events)
        p[n++] = (struct pollfd){.fd = extra_fd, .events = extra_events};
    /* EINTR (SIGTERM) returns to the loop, which checks its stop flag */
    (void)poll(p, (nfds_t)n, timeout_ms);
    return 1;
}
