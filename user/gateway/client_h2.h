/* client_h2: the HTTP/2 (h2c) client side of a connection (conn.h ops and
 * the exchange sink), on nghttp2 1.52 through common/h2srv.c. */
#ifndef KVGATE_GATEWAY_CLIENT_H2_H
#define KVGATE_GATEWAY_CLIENT_H2_H

#include <stddef.h>

struct cconn;
struct xreq;

/* c speaks h2c by prior knowledge (its first bytes are the preface). 0,
 * or -errno with c left as it was. */
int h2_attach(struct cconn *c);
/* HTTP/1.1 `Upgrade: h2c` (client_h1.c, after its 101): the session
 * starts with the complete request x as stream 1. x's content moves to the
 * stream (x is left empty for its owner to free) and is dispatched. 0, or
 * -errno with c and x left as they were. */
int h2_upgrade(struct cconn *c, struct xreq *x, const char *settings_b64, size_t len);

#endif
