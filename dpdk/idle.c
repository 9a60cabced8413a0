/* idle: a worker's wait when idle (idle.h). */
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

static __thread int socks[IDLE_MAX_SOCKS];
static __thread int nsocks;

int idle_scan(int *fds, int max)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return 0;
    int dfd = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == dfd)
            continue;
        int dom = 0;
        socklen_t len = sizeof(dom);
        if (getsockopt((int)fd, SOL_SOCKET, SO_DOMAIN, &dom, &len) == 0 && dom == AF_XDP)
            fds[n++] = (int)fd;
    }
    closedir(d);
    return n;
}

void idle_use(const int *fds, int n)
{
    nsocks = 0;
    for (int i = 0; i < n && i < IDLE_MAX_SOCKS; i++)
        socks[nsocks++] = fds[i];
}

int idle_wait(int extra_fd, short extra_events, int wake_fd, int timeout_ms)
{
    if (timeout_ms < 0)
        timeout_ms = 0;
    if (nsocks == 0) {
        struct timespec ts = {0, 200000}; /* never spin a shared core */
        nanosleep(&ts, NULL);
        return 0;
    }
    struct pollfd p[IDLE_MAX_SOCKS + 2];
    int n = 0;
    for (int i = 0; i < nsocks; i++)
        p[n++] = (struct pollfd){.fd = socks[i], .events = POLLIN};
    if (extra_fd >= 0 && extra_events)
        p[n++] = (struct pollfd){.fd = extra_fd, .events = extra_events};
    if (wake_fd >= 0)
        p[n++] = (struct pollfd){.fd = wake_fd, .events = POLLIN};
    /* EINTR (SIGTERM) returns to the loop, which checks its stop flag */
    (void)poll(p, (nfds_t)n, timeout_ms);
    return 1;
}
