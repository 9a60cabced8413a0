/* server: podsim's HTTP front end. One listening socket per pod, all on one
 * ev_loop; HTTP/1.1 (keep-alive, Content-Length or chunked request bodies)
 * and HTTP/2 cleartext by prior knowledge (nghttp2). Bodies are buffered
 * whole (up to max_body) before the handler is called; responses are
 * streamed through a writer.
 *
 * Which protocol carries a request is the server's business: a handler
 * sees struct http_req (h2 says which, for the record) and writes through
 * resp_*, the same calls for both.
 *
 * Lifetime of a writer (struct http_resp):
 *   - the handler gets it in on_request and must finish it with resp_end()
 *     or resp_abort(), now or later (from a timer);
 *   - if the client goes away first, the server calls the cancel callback
 *     set by resp_on_cancel(); after that the handler must not touch it;
 *   - after resp_end()/resp_abort() the handler must not touch it. */
#ifndef KVGATE_PODSIM_SERVER_H
#define KVGATE_PODSIM_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;
struct http_resp;

struct http_req {
    const char *method;   /* NUL-terminated */
    const char *path;     /* NUL-terminated, query string included */
    const char *body;     /* NUL-terminated copy, body_len bytes */
    size_t body_len;
    int h2;               /* arrived over HTTP/2 */
    /* headers, lower-cased names, NUL-terminated */
    size_t nheaders;
    const char *hname[64];
    const char *hvalue[64];
};

typedef void (*server_handler)(void *ctx, const struct http_req *req,
                               struct http_resp *resp);

struct server_cfg {
    const char *bind_addr;  /* e.g. "127.0.0.1" */
    int port;
    size_t max_body;        /* 413 above this (default 32 MiB) */
    size_t max_head;        /* 431 above this (default 64 KiB) */
    server_handler handler;
    void *ctx;
    uint32_t keepalive_ms;  /* HTTP/1.1: close a connection idle this long (wall);
                             * 0 = never. vLLM (uvicorn) closes after 5 s */
};

struct server;

/* Listens and registers with the loop. NULL and errno on failure. */
struct server *server_start(struct ev_loop *l, const struct server_cfg *cfg);
/* Closes the listener and every connection (cancelling open responses). */
void server_stop(struct server *s);
/* Fault injection: close the listening socket so that connects are refused
 * (ECONNREFUSED) and reset idle keep-alive connections, or listen again.
 * Connections with a response in progress are left to finish.
 * 0 or -errno. */
int server_set_refuse(struct server *s, int refuse);
/* Number of open client connections. */
size_t server_nconns(const struct server *s);

/* Writer API. extra_headers: NULL or "name: value\r\n"... lines (HTTP/1.1
 * form; the h2 side converts them). content_length < 0 means streamed (chunked
 * on HTTP/1.1, DATA frames on h2). */
void resp_start(struct http_resp *r, int status, const char *content_type,
                long long content_length, const char *extra_headers);
/* Queues body bytes; 0 or -errno (-EPIPE when the client has gone). */
int resp_write(struct http_resp *r, const void *data, size_t len);
void resp_end(struct http_resp *r);
/* Ends the exchange abruptly: closes the connection (HTTP/1.1) or resets the
 * stream (h2) without finishing the body. Used by the close-after fault. */
void resp_abort(struct http_resp *r);
void resp_on_cancel(struct http_resp *r, void (*cb)(void *arg), void *arg);
/* Bytes written to r that the client has not taken yet (queued in this
 * process: HTTP/1.1 the connection's output, h2 the stream's unframed
 * body); 0 before resp_start and once the client is gone. A handler that
 * wants backpressure waits while it grows. */
size_t resp_pending(const struct http_resp *r);
/* Convenience: whole response in one call. */
void resp_send(struct http_resp *r, int status, const char *content_type,
               const void *body, size_t len);

#endif
