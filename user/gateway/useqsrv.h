/* useqsrv: a local unix SOCK_SEQPACKET service on a thread of its own, as
 * kvgated's bypass channels use it (decide_srv.c: the worker's decisions;
 * adopt_srv.c: its hand-ups). The listener and the thread; what a peer
 * says is the caller's. */
#ifndef KVGATE_GATEWAY_USEQSRV_H
#define KVGATE_GATEWAY_USEQSRV_H

#include <pthread.h>

#include "common/ev.h"

struct useqsrv {
    char path[108];
    const char *what;          /* the config key, for messages */
    const char *thread_name;   /* <= 15 characters */
    void (*on_exit)(void);     /* on the thread, after its loop stopped: close the peers */
    int lfd;
    struct ev_loop *l;         /* the thread's loop: peers are added to it */
    pthread_t th;
    int started;
};

/* Listens on s->path (mode 0600; a socket an earlier run left there is
 * replaced, any other file refused), backlog `backlog`, calls
 * on_accept(l, lfd, events, NULL) when peers wait, and runs the loop on a
 * thread of its own with every signal blocked (they are the main
 * thread's). Set path, what, thread_name and on_exit first. 0, or -errno
 * (logged, nothing left behind). */
int useqsrv_start(struct useqsrv *s, int backlog, ev_io_cb on_accept);
/* Stops the loop, joins the thread (on_exit ran), closes and unlinks. */
void useqsrv_stop(struct useqsrv *s);

#endif
