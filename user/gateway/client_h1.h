/* client_h1: the HTTP/1.1 client side of a connection (conn.h ops and
 * the exchange sink). */
#ifndef KVGATE_GATEWAY_CLIENT_H1_H
#define KVGATE_GATEWAY_CLIENT_H1_H

#include <stddef.h>

struct cconn;
struct xreq;

/* c speaks HTTP/1.1 from now on (its first bytes are not the h2
 * preface). 0, or -ENOMEM. */
int h1_attach(struct cconn *c);
/* Is c an HTTP/1.1 connection (a layer may stand in front of it)? */
int h1_is(const struct cconn *c);
/* HTTP/1.1 and between requests: none being read or served. */
int h1_idle(const struct cconn *c);

/* Answers status (an OpenAI-style error) without an exchange and closes
 * the connection behind it (a head that cannot be parsed; the splice's
 * invalid pod answer). */
void h1_reject(struct cconn *c, int status, const char *msg);

#endif
