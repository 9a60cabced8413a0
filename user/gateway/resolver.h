/* resolver: host names resolved off the control thread (issue 9).
 *
 * getaddrinfo can take seconds (a slow or dead DNS server), and the
 * control thread also scrapes every pod and serves the admin API, so it
 * never calls it at run time: POST /admin/pods and reloads hand a name to
 * this module, whose own thread resolves it (hostport_resolve) and posts
 * the result back to the control loop through an eventfd. Numeric
 * addresses and "localhost" need no DNS and never come here. */
#ifndef KVGATE_GATEWAY_RESOLVER_H
#define KVGATE_GATEWAY_RESOLVER_H

#include <stdint.h>
#include <sys/socket.h>

struct ev_loop;

/* On the loop's thread: rc 0 with the address, or -1 with err (a
 * sentence, "cannot resolve host ..."). */
typedef void (*resolver_cb)(void *arg, int rc, const struct sockaddr_storage *ss,
                            socklen_t len, const char *err);

/* Starts the thread; results are delivered on l. 0 or -errno. */
int resolver_start(struct ev_loop *l);
/* Stops the thread (waiting at most ~1 s for a lookup in progress, which
 * then finishes on its own); callbacks not yet delivered are dropped. */
void resolver_stop(void);
/* Queues host:port; cb(arg, ...) runs later on the loop, never from here.
 * 0, -ENOMEM, or -ESRCH (not started). */
int resolver_submit(const char *host, uint16_t port, resolver_cb cb, void *arg);

#endif
