/* resolver: one thread running hostport_resolve for the control thread.
 * See resolver.h.
 *
 * Jobs go in on `todo`, come back on `done`, both under `mu`; the loop is
 * woken through an eventfd and runs the callbacks. Stopping does not wait
 * for a lookup stuck in getaddrinfo: after a short wait the thread is
 * detached; when it returns it sees that `gen` moved on, frees its job and
 * exits, touching nothing else (all state here is static, never freed). */
#include "gateway/resolver.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/netaddr.h"

#define STOP_WAIT_NS 1000000000ull

struct job {
    char host[256];
    uint16_t port;
    resolver_cb cb;
    void *arg;
    int rc;
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    struct job *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *todo, *todo_tail, *done, *done_tail;
    int stopping, running, exited;
    uintptr_t gen;           /* a thread left behind by a stop sees it change */
    pthread_t th;
    struct ev_loop *l;
    int efd;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .efd = -1};

static void push(struct job **head, struct job **tail, struct job *j)
{
    j->next = NULL;
    if (*tail)
        (*tail)->next = j;
    else
        *head = j;
    *tail = j;
}

static void free_list(struct job *j)
{
    while (j) {
        struct job *n = j->next;
        kv_free(j);
        j = n;
    }
}

static void *thread_main(void *arg)
{
    uintptr_t gen = (uintptr_t)arg;
    pthread_mutex_lock(&R.mu);
    for (;;) {
        while (!R.todo && !R.stopping && R.gen == gen)
            pthread_cond_wait(&R.cv, &R.mu);
        if (R.stopping || R.gen != gen)
            break;
        struct job *j = R.todo;
        R.todo = j->next;
        if (!R.todo)
            R.todo_tail = NULL;
        pthread_mutex_unlock(&R.mu);
        j->rc = hostport_resolve(j->host, j->port, &j->ss, &j->len, j->err, sizeof(j->err));
        pthread_mutex_lock(&R.mu);
        if (R.stopping || R.gen != gen) { /* nobody wants it any more */
            kv_free(j);
            break;
        }
        push(&R.done, &R.done_tail, j);
        uint64_t one = 1;
        ssize_t n = write(R.efd, &one, sizeof(one));
        (void)n; /* EAGAIN: a wake-up is pending anyway */
    }
    if (R.gen == gen) {
        R.exited = 1;
        pthread_cond_broadcast(&R.cv);
    }
    pthread_mutex_unlock(&R.mu);
    return NULL;
}

static void on_wake(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof(v));
    (void)n;
    for (;;) {
        pthread_mutex_lock(&R.mu);
        struct job *j = R.done;
        if (j) {
            R.done = j->next;
            if (!R.done)
                R.done_tail = NULL;
        }
        pthread_mutex_unlock(&R.mu);
        if (!j)
            return;
        j->cb(j->arg, j->rc, j->rc ? NULL : &j->ss, j->rc ? 0 : j->len, j->rc ? j->err : NULL);
        kv_free(j);
    }
}

int resolver_start(struct ev_loop *l)
{
    if (R.running)
        return 0;
    R.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (R.efd < 0)
        return -errno;
    int rc = ev_add(l, R.efd, EPOLLIN, on_wake, NULL);
    if (rc < 0)
        goto fail;
    R.l = l;
    pthread_mutex_lock(&R.mu);
    R.stopping = R.exited = 0;
    uintptr_t gen = ++R.gen;
    pthread_mutex_unlock(&R.mu);
    /* the thread takes no signals: main reads them from a signalfd */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    rc = -pthread_create(&R.th, NULL, thread_main, (void *)gen);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc < 0) {
        ev_del(l, R.efd);
        goto fail;
    }
    R.running = 1;
    return 0;
fail:
    close(R.efd);
    R.efd = -1;
    return rc;
}

void resolver_stop(void)
{
    if (!R.running)
        return;
    pthread_mutex_lock(&R.mu);
    R.stopping = 1;
    pthread_cond_broadcast(&R.cv);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += STOP_WAIT_NS / 1000000000ull;
    while (!R.exited)
        if (pthread_cond_timedwait(&R.cv, &R.mu, &ts) == ETIMEDOUT)
            break;
    int exited = R.exited;
    struct job *todo = R.todo, *done = R.done;
    R.todo = R.todo_tail = R.done = R.done_tail = NULL;
    pthread_mutex_unlock(&R.mu);
    if (exited)
        pthread_join(R.th, NULL);
    else
        pthread_detach(R.th); /* stuck in getaddrinfo: it ends on its own */
    pthread_mutex_lock(&R.mu);
    R.gen++; /* whatever it finds when it returns is not for us */
    pthread_mutex_unlock(&R.mu);
    free_list(todo);
    free_list(done);
    ev_del(R.l, R.efd);
    close(R.efd); /* a thread left behind sees gen change and never writes it */
    R.efd = -1;
    R.running = 0;
}

int resolver_submit(const char *host, uint16_t port, resolver_cb cb, void *arg)
{
    if (!R.running)
        return -ESRCH;
    struct job *j = kv_calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    snprintf(j->host, sizeof(j->host), "%s", host);
    j->port = port;
    j->cb = cb;
    j->arg = arg;
    pthread_mutex_lock(&R.mu);
    push(&R.todo, &R.todo_tail, j);
    pthread_cond_signal(&R.cv);
    pthread_mutex_unlock(&R.mu);
    return 0;
}
