/* listener: listening sockets and the accept loop. See listener.h. */
#include "common/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/ev.h"

#define ACCEPT_BATCH 64

int listener_socket(const struct sockaddr *sa, socklen_t salen, int backlog,
                    int flags)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (((flags & LISTENER_REUSEPORT) &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
        bind(fd, sa, salen) < 0 || listen(fd, backlog) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static void resume_cb(struct ev_loop *l, void *arg)
{
    struct listener *ls = arg;
    ls->retry_timer = 0;
    if (ls->l)
        ev_mod(l, ls->fd, EPOLLIN);
}

static void accept_cb(struct ev_loop *l, int lfd, uint32_t ev, void *arg)
{
    struct listener *ls = arg;
    for (int i = 0; i < ACCEPT_BATCH && ls->l; i++) {
        struct sockaddr_storage sa;
        socklen_t salen = sizeof(sa);
        int fd = accept4(lfd, (struct sockaddr *)&sa, &salen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                errno == ENOMEM) {
                /* Out of fds: stop polling the listener for a moment
                 * instead of spinning on a level-triggered event. */
                ev_mod(l, lfd, 0);
                if (!ls->retry_timer)
                    ls->retry_timer = ev_timer_at(l, ev_now_ns() + LISTENER_RETRY_NS,
                                                  resume_cb, ls);
            }
            return; /* EAGAIN: all taken */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        ls->cb(ls, fd, &sa, salen);
    }
}

int listener_start(struct listener *ls, struct ev_loop *l, int fd,
                   listener_cb cb, void *arg)
{
    ls->l = NULL;
    ls->fd = -1;
    ls->retry_timer = 0;
    ls->cb = cb;
    ls->arg = arg;
    int rc = ev_add(l, fd, EPOLLIN, accept_cb, ls);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    ls->l = l;
    ls->fd = fd;
    return 0;
}

void listener_stop(struct listener *ls)
{
    if (!ls->l)
        return;
    ev_del(ls->l, ls->fd);
    close(ls->fd);
    ev_timer_cancel(ls->l, ls->retry_timer);
    ls->retry_timer = 0;
    ls->fd = -1;
    ls->l = NULL;
}
