/* admin_priv: what the admin listener's two halves share.
 *
 *   admin.c      connections: accept (a full table evicts its oldest
 *                waiting connection, so a new one is always served), the
 *                request deadline (from a request's first byte, never
 *                restarted by later bytes), keep-alive idle, HTTP/1.1
 *                framing, the bearer token, answers
 *   admin_api.c  the endpoints behind /metrics, /health and /admin/
 *
 * Everything runs on the control thread's loop. */
#ifndef KVGATE_GATEWAY_ADMIN_PRIV_H
#define KVGATE_GATEWAY_ADMIN_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "common/http1.h"
#include "common/listener.h"
#include "common/sbuf.h"

#define ADMIN_TOKEN_WIN 128      /* > the longest admin.token (127) */

struct cJSON;
struct ctl;
struct ev_loop;

/* The admin listener (admin_start in control_priv.h makes it). */
struct admin {
    struct ctl *ctl;
    struct ev_loop *l;
    struct listener ls;          /* stopped while zero */
    struct aconn *conns;
    uint32_t nconns;
    uint64_t next_id;
    char token[ADMIN_TOKEN_WIN]; /* zero-padded */
    size_t token_len;
};

struct aconn {
    struct admin *a;
    int fd;                      /* -1: no socket (the fuzz target) */
    uint64_t id;                 /* unique; a late answer finds its conn by it */
    struct sbuf in, out;
    size_t out_off;
    int close_after, continued;
    int pending;                 /* its answer comes later (adm_finish) */
    char pending_name[64];       /* the pod a pending POST /admin/pods adds */
    uint64_t since;              /* its current wait began (eviction order) */
    uint64_t req_t0;             /* first byte of the request being read; 0: none */
    uint64_t timer, timer_at;
    struct aconn *prev, *next;
};

/* ---- admin.c ---- */

/* Queue an answer on c (sent when the handler returns). */
void adm_respond(struct aconn *c, int code, const char *ctype, const char *body,
                 size_t len, const char *extra_headers);
/* OpenAI's error object (common/httpstatus.h: http_error_json), the
 * type named after the status as the OpenAI SDK names its exceptions. */
void adm_respond_error(struct aconn *c, int code, const char *msg, const char *extra_headers);
void adm_respond_json(struct aconn *c, int code, struct sbuf *b);
void adm_respond_cjson(struct aconn *c, int code, struct cJSON *j);
/* The bearer token in force (admin.token; reloads swap it) checked in time
 * independent of either length. 1 when no token is set. */
int adm_token_ok(const struct admin *a, const struct http1_request *rq);
/* Serves every complete request in c->in into c->out. */
void adm_process(struct aconn *c);
/* A handler that set c->pending answers later: the open connection with
 * this id, or NULL (it went away). */
struct aconn *adm_find(struct admin *a, uint64_t id);
/* The late answer is in c->out: send it, clear pending, serve what the
 * client sent behind it. */
void adm_finish(struct aconn *c);

/* ---- admin_report.c ---- */

/* GET /admin/report: JSON, or the text table when text. */
void adm_report(struct aconn *c, int text);

/* ---- admin_api.c ---- */

/* One request (head parsed, whole body present): answers into c->out, or
 * sets c->pending and answers later. */
void adm_handle(struct aconn *c, const struct http1_request *rq, const char *body,
                size_t blen);

#endif
