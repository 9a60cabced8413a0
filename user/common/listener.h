/* listener: a listening TCP socket on an ev_loop, and its accept loop.
 *
 * One job: hand each accepted connection (non-blocking, close-on-exec,
 * TCP_NODELAY) to a callback, which owns the fd from then on. At most 64
 * accepts per readiness event, so one busy listener cannot starve the
 * loop. When the process runs out of descriptors or memory (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM) the listener stops polling for
 * LISTENER_RETRY_NS instead of spinning on a level-triggered event that
 * accept cannot clear. Shared by kvgate-podsim (one listener per pod) and
 * kvgated (one SO_REUSEPORT listener per worker). */
#ifndef KVGATE_LISTENER_H
#define KVGATE_LISTENER_H

#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;
struct listener;

#define LISTENER_RETRY_NS 100000000ull /* out of fds: poll again after */
#define LISTENER_REUSEPORT 1           /* listener_socket flag */

/* A non-blocking, close-on-exec socket bound to sa and listening, with
 * SO_REUSEADDR; with LISTENER_REUSEPORT also SO_REUSEPORT (an error if the
 * kernel refuses it). The fd, or -errno. */
int listener_socket(const struct sockaddr *sa, socklen_t salen, int backlog,
                    int flags);

/* A connection was accepted: fd is the callback's (close it to refuse). */
typedef void (*listener_cb)(struct listener *ls, int fd,
                            const struct sockaddr_storage *peer,
                            socklen_t peerlen);

struct listener {
    struct ev_loop *l;    /* NULL while stopped (a zeroed listener is) */
    int fd;
    uint64_t retry_timer; /* re-arms polling after EMFILE & co. */
    listener_cb cb;
    void *arg;            /* the callback's */
};

/* Watches fd (a listening socket, owned by ls from now on) on l. 0, or
 * -errno with fd closed and ls stopped. */
int listener_start(struct listener *ls, struct ev_loop *l, int fd,
                   listener_cb cb, void *arg);

/* Stops watching and closes the socket. A stopped listener is left
 * alone. Must run on ls's loop thread (or with the loop stopped). */
void listener_stop(struct listener *ls);

static inline int listener_running(const struct listener *ls)
{
    return ls->l != 0;
}

#endif
