/* useqsrv: a local unix SOCK_SEQPACKET service on a thread of its own. See useqsrv.h. */
#include "gateway/useqsrv.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/epoll.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"

static int listen_unix(const char *path, int backlog)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path));
    struct stat st;
    if (!lstat(path, &st)) { /* a socket left by an earlier run is replaced; nothing else */
        if (!S_ISSOCK(st.st_mode))
            return -EEXIST;
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || chmod(path, 0600) ||
        listen(fd, backlog)) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static void *useqsrv_main(void *arg)
{
    struct useqsrv *s = arg;
    pthread_setname_np(pthread_self(), s->thread_name);
    ev_run(s->l);
    if (s->on_exit)
        s->on_exit();
    return NULL;
}

int useqsrv_start(struct useqsrv *s, int backlog, ev_io_cb on_accept)
{
    if (s->started)
        return -EBUSY;
    int fd = listen_unix(s->path, backlog);
    if (fd < 0) {
        LOG_ERR("%s: cannot listen on %s: %s", s->what, s->path,
                fd == -EEXIST ? "a file that is not a socket is there" : strerror(-fd));
        return fd;
    }
    s->lfd = fd;
    s->l = ev_new();
    int rc = s->l ? ev_add(s->l, fd, EPOLLIN, on_accept, NULL) : -ENOMEM;
    if (!rc) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old); /* signals belong to the main thread */
        rc = -pthread_create(&s->th, NULL, useqsrv_main, s);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc) {
        LOG_ERR("%s: cannot start: %s", s->what, strerror(-rc));
        if (s->l)
            ev_free(s->l);
        s->l = NULL;
        close(fd);
        s->lfd = -1;
        unlink(s->path);
        return rc;
    }
    s->started = 1;
    return 0;
}

void useqsrv_stop(struct useqsrv *s)
{
    if (!s->started)
        return;
    ev_stop(s->l);
    pthread_join(s->th, NULL);
    ev_free(s->l);
    s->l = NULL;
    close(s->lfd);
    s->lfd = -1;
    unlink(s->path);
    s->started = 0;
}
