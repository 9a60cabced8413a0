/* admin: kvgated's admin listener (cfg.admin_listen), HTTP/1.1 with
 * keep-alive, served on the control thread's loop (control.c).
 *
 *   GET    /metrics                     kvgated's Prometheus page
 *   GET    /health                      200 {"status":"ok"}
 *   GET    /admin/pods                  the pod table (JSON array)
 *   POST   /admin/pods                  add {"url","name","engine","models"}:
 *                                       201, 400 (key path), 409 exists / full
 *   DELETE /admin/pods/<name>           remove: 200, 404
 *   POST   /admin/pods/<name>/drain     no new requests: 200, 404
 *   POST   /admin/pods/<name>/undrain   200, 404
 *   GET    /admin/policy                the routing policy in force, in the
 *                                       config's "policy" layout (overrides
 *                                       list only what differs from global)
 *   PUT    /admin/policy                a JSON merge patch (RFC 7386) over
 *                                       it, validated as the config's
 *                                       "policy" (400 names the key path);
 *                                       null removes a key: back to the
 *                                       default, or inherited for an
 *                                       override; answers the new policy
 *   GET    /admin/killswitch            {"enabled":bool,"mode":...}
 *   POST   /admin/killswitch            {"enabled":true}: every policy,
 *                                       overrides too, round-robin without
 *                                       shadow or canary; {"enabled":false}:
 *                                       their mode, shadow and canary back.
 *                                       While on, PUT /admin/policy and
 *                                       reloads change what comes back
 *   POST   /admin/reload                re-read the config file: 200, 400
 *
 * With admin.token set, everything under /admin/ needs "Authorization:
 * Bearer <token>" (401 otherwise); /metrics and /health stay open. Errors
 * are {"error":{"message","type","param":null,"code"}}. Pod names in paths
 * may be percent-encoded. Bodies: Content-Length only, at most 1 MiB. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/ev.h"
#include "common/listener.h"
#include "common/http1.h"
#include "common/sbuf.h"
#include "core/podtable.h"
#include "core/prefix_index.h"
#include "gateway/control_priv.h"
#include "gateway/hostport.h"
#include "gateway/gwmetrics.h"

#define ADMIN_MAX_CONNS 64
#define ADMIN_MAX_HEAD 16384
#define ADMIN_MAX_BODY (1u << 20)
#define ADMIN_IDLE_NS (30ull * 1000000000ull)

struct aconn {
    int fd;
    struct sbuf in, out;
    size_t out_off;
    int close_after, continued;
    uint64_t timer;
    struct aconn *prev, *next;
};

static struct {
    struct gw *g;
    struct ev_loop *l;
    struct listener ls;   /* stopped while zero */
    struct aconn *conns;
    uint32_t nconns;
} A;

/* ---- connections ---- */

static void conn_close(struct aconn *c)
{
    ev_del(A.l, c->fd);
    close(c->fd);
    ev_timer_cancel(A.l, c->timer);
    if (c->prev)
        c->prev->next = c->next;
    else
        A.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    A.nconns--;
    sbuf_free(&c->in);
    sbuf_free(&c->out);
    free(c);
}

static void on_idle(struct ev_loop *l, void *arg)
{
    struct aconn *c = arg;
    c->timer = 0;
    conn_close(c);
}

static void conn_flush(struct aconn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off,
                         MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                ev_mod(A.l, c->fd, EPOLLIN | EPOLLOUT);
                return;
            }
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    sbuf_reset(&c->out);
    c->out_off = 0;
    if (c->close_after) {
        conn_close(c);
        return;
    }
    ev_mod(A.l, c->fd, EPOLLIN);
}

static const char *reason(int code)
{
    switch (code) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    default: return code < 500 ? "Bad Request" : "Internal Server Error";
    }
}

static void respond(struct aconn *c, int code, const char *ctype, const char *body,
                    size_t len, const char *extra)
{
    sbuf_printf(&c->out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                code, reason(code), ctype, len, extra ? extra : "",
                c->close_after ? "Connection: close\r\n" : "");
    sbuf_append(&c->out, body, len);
}

static void respond_json(struct aconn *c, int code, struct sbuf *b)
{
    if (b->oom) {
        code = 500;
        sbuf_reset(b);
        sbuf_puts(b, "{\"error\":{\"message\":\"out of memory\",\"type\":\"internal_error\","
                     "\"param\":null,\"code\":500}}");
    }
    respond(c, code, "application/json", b->data ? b->data : "", b->len, NULL);
}

static void respond_error(struct aconn *c, int code, const char *msg, const char *extra)
{
    const char *type = code == 401   ? "authentication_error"
                       : code == 404 ? "not_found_error"
                       : code == 409 ? "conflict_error"
                       : code >= 500 ? "internal_error"
                                     : "invalid_request_error";
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"error\":{\"message\":\"");
    sbuf_json_escape(&b, msg, strlen(msg));
    sbuf_printf(&b, "\",\"type\":\"%s\",\"param\":null,\"code\":%d}}", type, code);
    respond(c, code, "application/json", b.data ? b.data : "", b.len, extra);
    sbuf_free(&b);
}

static void respond_cjson(struct aconn *c, int code, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    if (!s) {
        respond_error(c, 500, "out of memory", NULL);
        return;
    }
    respond(c, code, "application/json", s, strlen(s), NULL);
    free(s);
}

/* ---- GET /admin/pods ---- */

static void json_names(struct sbuf *o, const char (*names)[POD_MODEL_MAX], uint32_t n)
{
    sbuf_puts(o, "[");
    for (uint32_t i = 0; i < n; i++) {
        sbuf_puts(o, i ? ",\"" : "\"");
        sbuf_json_escape(o, names[i], strlen(names[i]));
        sbuf_puts(o, "\"");
    }
    sbuf_puts(o, "]");
}

static void pods_json(struct sbuf *o, uint64_t now)
{
    struct gw *g = A.g;
    uint32_t n = 0;
    sbuf_puts(o, "[");
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct cpod *p = ctl_pod(i);
        if (!p)
            continue;
        const struct pod_info *in = &p->info;
        sbuf_puts(o, n++ ? ",{\"name\":\"" : "{\"name\":\"");
        sbuf_json_escape(o, in->name, strlen(in->name));
        sbuf_printf(o, strchr(in->host, ':') ? "\",\"address\":\"[%s]:%u\"" : "\",\"address\":\"%s:%u\"",
                    in->host, in->port);
        sbuf_printf(o, ",\"slot\":%u,\"engine\":\"%s\",\"healthy\":%s,\"draining\":%s",
                    in->slot, gwc_engine_name(in->engine), in->healthy ? "true" : "false",
                    in->draining ? "true" : "false");
        if (in->metrics_ok)
            sbuf_printf(o, ",\"metrics_age_ms\":%.1f",
                        now > in->scraped_ns ? (double)(now - in->scraped_ns) / 1e6 : 0.0);
        else
            sbuf_puts(o, ",\"metrics_age_ms\":null");
        sbuf_printf(o, ",\"waiting\":%g,\"running\":%g,\"kv_usage\":%g,\"inflight\":%u",
                    in->waiting, in->running, in->kv_usage,
                    atomic_load(&g->counters.inflight[in->slot]));
        sbuf_puts(o, ",\"models\":");
        json_names(o, in->models, in->nmodels);
        sbuf_puts(o, ",\"adapters\":");
        json_names(o, in->adapters, in->nadapters);
        sbuf_puts(o, ",\"running_adapters\":[");
        for (uint32_t a = 0, k = 0; a < in->nadapters && a < 64; a++)
            if (in->running_loras >> a & 1) {
                sbuf_puts(o, k++ ? ",\"" : "\"");
                sbuf_json_escape(o, in->adapters[a], strlen(in->adapters[a]));
                sbuf_puts(o, "\"");
            }
        sbuf_printf(o, "],\"cache_tokens\":%u,\"index_blocks\":%u}", in->cache_tokens,
                    g->pidx ? pidx_pod_blocks(g->pidx, in->slot) : 0);
    }
    sbuf_puts(o, "]");
}

/* ---- handlers ---- */

/* The body as a JSON object, or answers 400 and returns NULL. */
static cJSON *body_object(struct aconn *c, const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!o || !cJSON_IsObject(o)) {
        char msg[96];
        if (o)
            snprintf(msg, sizeof(msg), "the body must be a JSON object");
        else
            snprintf(msg, sizeof(msg), "invalid JSON body near byte %zu",
                     end && end >= body ? (size_t)(end - body) : (size_t)0);
        respond_error(c, 400, msg, NULL);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void h_pods_get(struct aconn *c)
{
    struct sbuf b;
    sbuf_init(&b);
    pods_json(&b, ev_now_ns());
    respond_json(c, 200, &b);
    sbuf_free(&b);
}

static void h_pods_post(struct aconn *c, const char *body, size_t len)
{
    cJSON *o = body_object(c, body, len);
    if (!o)
        return;
    struct gw_pod_cfg p;
    char err[384];
    int rc = gwc_pod_parse(o, "", &p, err, sizeof(err));
    cJSON_Delete(o);
    if (rc) {
        respond_error(c, 400, err, NULL);
        return;
    }
    rc = ctl_add_pod(&p, err, sizeof(err));
    if (rc) {
        respond_error(c, rc == -EEXIST || rc == -ENOSPC ? 409 : rc == -ENOMEM ? 500 : 400, err,
                      NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"added\":\"");
    sbuf_json_escape(&b, p.name, strlen(p.name));
    sbuf_puts(&b, "\"}");
    respond_json(c, 201, &b);
    sbuf_free(&b);
}

static void h_pod_action(struct aconn *c, const char *name, const char *action)
{
    int rc = !strcmp(action, "remove") ? ctl_remove_pod(name)
             : !strcmp(action, "drain") ? ctl_drain_pod(name, 1)
                                        : ctl_drain_pod(name, 0);
    if (rc) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no pod named \"%s\"", name);
        respond_error(c, 404, msg, NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"name\":\"");
    sbuf_json_escape(&b, name, strlen(name));
    if (!strcmp(action, "remove"))
        sbuf_puts(&b, "\",\"removed\":true}");
    else
        sbuf_printf(&b, "\",\"draining\":%s}", strcmp(action, "drain") ? "false" : "true");
    respond_json(c, 200, &b);
    sbuf_free(&b);
}

static void h_policy_get(struct aconn *c)
{
    static struct gw_policies p;
    pthread_mutex_lock(&A.g->policy_mu);
    p = A.g->policies;
    pthread_mutex_unlock(&A.g->policy_mu);
    cJSON *j = gwc_policies_json(&p);
    respond_cjson(c, 200, j);
    cJSON_Delete(j);
}

/* RFC 7386: objects merge key by key, null deletes, anything else replaces. */
static int merge_patch(cJSON *dst, const cJSON *patch)
{
    for (const cJSON *k = patch->child; k; k = k->next) {
        if (!k->string)
            continue;
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, k->string);
        if (cJSON_IsNull(k)) {
            cJSON_DeleteItemFromObjectCaseSensitive(dst, k->string);
        } else if (cJSON_IsObject(k)) {
            if (!cJSON_IsObject(d)) {
                cJSON_DeleteItemFromObjectCaseSensitive(dst, k->string);
                d = cJSON_AddObjectToObject(dst, k->string);
                if (!d)
                    return -ENOMEM;
            }
            if (merge_patch(d, k))
                return -ENOMEM;
        } else {
            cJSON *v = cJSON_Duplicate(k, 1);
            if (!v)
                return -ENOMEM;
            cJSON_DeleteItemFromObjectCaseSensitive(dst, k->string);
            cJSON_AddItemToObject(dst, k->string, v);
        }
    }
    return 0;
}

static void h_policy_put(struct aconn *c, const char *body, size_t len)
{
    static struct gw_policies cur, np;
    char err[384];
    cJSON *patch = body_object(c, body, len);
    if (!patch)
        return;
    ctl_base_policies(&cur);
    cJSON *doc = gwc_policies_json(&cur);
    if (!doc || merge_patch(doc, patch)) {
        cJSON_Delete(doc);
        cJSON_Delete(patch);
        respond_error(c, 500, "out of memory", NULL);
        return;
    }
    cJSON_Delete(patch);
    int rc = gwc_policies_parse(doc, "policy", &np, err, sizeof(err));
    cJSON_Delete(doc);
    if (rc) {
        respond_error(c, 400, err, NULL);
        return;
    }
    ctl_set_policies(&np);
    h_policy_get(c);
}

static void h_killswitch(struct aconn *c, int post, const char *body, size_t len)
{
    if (post) {
        cJSON *o = body_object(c, body, len);
        if (!o)
            return;
        const cJSON *en = cJSON_GetObjectItemCaseSensitive(o, "enabled");
        int ok = cJSON_IsBool(en) && cJSON_GetArraySize(o) == 1;
        int on = cJSON_IsTrue(en);
        cJSON_Delete(o);
        if (!ok) {
            respond_error(c, 400, "expected {\"enabled\": true or false}", NULL);
            return;
        }
        ctl_killswitch(on);
    }
    struct sbuf b;
    sbuf_init(&b);
    pthread_mutex_lock(&A.g->policy_mu);
    enum policy_mode m = A.g->policies.global.mode;
    pthread_mutex_unlock(&A.g->policy_mu);
    sbuf_printf(&b, "{\"enabled\":%s,\"mode\":\"%s\"}", ctl_killswitch_on() ? "true" : "false",
                policy_mode_name(m));
    respond_json(c, 200, &b);
    sbuf_free(&b);
}

static void h_reload(struct aconn *c)
{
    char err[512];
    if (ctl_reload(err, sizeof(err))) {
        respond_error(c, 400, err, NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"reloaded\":true}");
    respond_json(c, 200, &b);
    sbuf_free(&b);
}

static void h_metrics(struct aconn *c)
{
    struct sbuf b;
    sbuf_init(&b);
    struct pod_snapshot *s = snapshot_get();
    gw_metrics_render(A.g->metrics, s, &A.g->counters, ev_now_ns(), &b);
    snapshot_put(s);
    if (b.oom)
        respond_error(c, 500, "out of memory", NULL);
    else
        respond(c, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    sbuf_free(&b);
}

static int hexval(char ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* "%41" -> 'A'; -1 on a bad escape, an empty name, or '/' / NUL in it */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            ch = (char)(hi << 4 | lo);
            i += 2;
        }
        if (ch == 0 || ch == '/' || o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return o ? 0 : -1;
}

static int bearer_ok(const struct http1_request *rq, const char *token)
{
    const struct http1_header *h = http1_find(rq, "authorization");
    size_t tl = strlen(token);
    if (!h || h->value_len != tl + 7 || strncasecmp(h->value, "Bearer ", 7))
        return 0;
    unsigned char diff = 0; /* constant time in the token's bytes */
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned char)(h->value[7 + i] ^ token[i]);
    return diff == 0;
}

#define METHOD(m) (mlen == sizeof(m) - 1 && !memcmp(rq->method, m, mlen))

static void handle(struct aconn *c, const struct http1_request *rq, const char *body,
                   size_t blen)
{
    size_t mlen = rq->method_len;
    char path[512];
    size_t pl = rq->target_len;
    const char *q = memchr(rq->target, '?', pl);
    if (q)
        pl = (size_t)(q - rq->target);
    if (pl >= sizeof(path)) {
        respond_error(c, 404, "no such endpoint", NULL);
        return;
    }
    memcpy(path, rq->target, pl);
    path[pl] = 0;

    if (!strcmp(path, "/metrics") || !strcmp(path, "/health")) {
        if (!METHOD("GET")) {
            respond_error(c, 405, "method not allowed", "Allow: GET\r\n");
        } else if (path[1] == 'm') {
            h_metrics(c);
        } else {
            static const char ok[] = "{\"status\":\"ok\"}";
            respond(c, 200, "application/json", ok, sizeof(ok) - 1, NULL);
        }
        return;
    }
    if (strncmp(path, "/admin/", 7)) {
        respond_error(c, 404, "no such endpoint", NULL);
        return;
    }
    if (A.g->cfg.admin_token[0] && !bearer_ok(rq, A.g->cfg.admin_token)) {
        respond_error(c, 401, "missing or wrong bearer token",
                      "WWW-Authenticate: Bearer realm=\"kvgated\"\r\n");
        return;
    }
    const char *sub = path + 7;
    if (!strcmp(sub, "pods")) {
        if (METHOD("GET"))
            h_pods_get(c);
        else if (METHOD("POST"))
            h_pods_post(c, body, blen);
        else
            respond_error(c, 405, "method not allowed", "Allow: GET, POST\r\n");
    } else if (!strncmp(sub, "pods/", 5)) {
        const char *nm = sub + 5, *slash = strchr(nm, '/');
        const char *action = slash ? slash + 1 : "remove";
        char name[POD_NAME_MAX];
        if (pct_decode(nm, slash ? (size_t)(slash - nm) : strlen(nm), name, sizeof(name)) ||
            (slash && strcmp(action, "drain") && strcmp(action, "undrain"))) {
            respond_error(c, 404, "no such endpoint", NULL);
        } else if (!slash && !METHOD("DELETE")) {
            respond_error(c, 405, "method not allowed", "Allow: DELETE\r\n");
        } else if (slash && !METHOD("POST")) {
            respond_error(c, 405, "method not allowed", "Allow: POST\r\n");
        } else {
            h_pod_action(c, name, action);
        }
    } else if (!strcmp(sub, "policy")) {
        if (METHOD("GET"))
            h_policy_get(c);
        else if (METHOD("PUT"))
            h_policy_put(c, body, blen);
        else
            respond_error(c, 405, "method not allowed", "Allow: GET, PUT\r\n");
    } else if (!strcmp(sub, "killswitch")) {
        if (METHOD("GET") || METHOD("POST"))
            h_killswitch(c, METHOD("POST"), body, blen);
        else
            respond_error(c, 405, "method not allowed", "Allow: GET, POST\r\n");
    } else if (!strcmp(sub, "reload")) {
        if (METHOD("POST"))
            h_reload(c);
        else
            respond_error(c, 405, "method not allowed", "Allow: POST\r\n");
    } else {
        respond_error(c, 404, "no such endpoint", NULL);
    }
}

/* Serves every complete request in c->in. */
static void process(struct aconn *c)
{
    while (!c->close_after && c->in.len) {
        struct http1_request rq;
        int rc = http1_parse_request(c->in.data, c->in.len, ADMIN_MAX_HEAD, &rq);
        if (rc == HTTP1_INCOMPLETE)
            return;
        if (rc < 0) {
            c->close_after = 1;
            int code = rc == HTTP1_ERR_TOO_LARGE ? 431 : rc == HTTP1_ERR_VERSION ? 505 : 400;
            respond_error(c, code, "malformed request", NULL);
            return;
        }
        if (rq.chunked) {
            c->close_after = 1;
            respond_error(c, 411, "send the body with a Content-Length", NULL);
            return;
        }
        size_t blen = rq.content_length > 0 ? (size_t)rq.content_length : 0;
        if (rq.content_length > (int64_t)ADMIN_MAX_BODY) {
            c->close_after = 1;
            respond_error(c, 413, "admin bodies are at most 1 MiB", NULL);
            return;
        }
        if (c->in.len < (size_t)rc + blen) {
            if (rq.expect_continue && !c->continued) {
                c->continued = 1;
                sbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
            }
            return;
        }
        if (!rq.keep_alive)
            c->close_after = 1;
        handle(c, &rq, c->in.data + rc, blen);
        sbuf_consume(&c->in, (size_t)rc + blen);
        c->continued = 0;
    }
}

static void on_conn(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct aconn *c = arg;
    if (events & EPOLLIN) {
        for (;;) {
            if (sbuf_reserve(&c->in, 16384)) {
                conn_close(c);
                return;
            }
            ssize_t n = recv(fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
            if (n > 0) {
                c->in.len += (size_t)n;
                c->in.data[c->in.len] = 0;
                if (c->in.len > ADMIN_MAX_HEAD + ADMIN_MAX_BODY + 4096)
                    break; /* process() answers 413 or 431 */
                continue;
            }
            if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                conn_close(c);
                return;
            }
            if (errno == EAGAIN)
                break;
        }
        ev_timer_cancel(l, c->timer);
        c->timer = ev_timer_at(l, ev_now_ns() + ADMIN_IDLE_NS, on_idle, c);
        process(c);
    }
    if (c->out.len)
        conn_flush(c);
    else if (c->close_after)
        conn_close(c);
}

static void on_accept(struct listener *ls, int cfd, const struct sockaddr_storage *peer,
                      socklen_t peerlen)
{
    struct ev_loop *l = A.l;
    struct aconn *c = A.nconns < ADMIN_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c || ev_add(l, cfd, EPOLLIN, on_conn, c) < 0) {
        free(c);
        close(cfd);
        return;
    }
    c->fd = cfd;
    sbuf_init(&c->in);
    sbuf_init(&c->out);
    c->next = A.conns;
    if (A.conns)
        A.conns->prev = c;
    A.conns = c;
    A.nconns++;
    c->timer = ev_timer_at(l, ev_now_ns() + ADMIN_IDLE_NS, on_idle, c);
}

int admin_start(struct gw *g, struct ev_loop *l)
{
    const char *spec = g->cfg.admin_listen;
    A.g = g;
    A.l = l;
    if (!spec[0])
        return 0;
    char host[64], err[256];
    uint16_t port;
    const char *why = NULL;
    struct sockaddr_storage ss;
    socklen_t sl;
    if (hostport_split(spec, strlen(spec), 1, host, sizeof(host), &port, &why)) {
        fprintf(stderr, "kvgated: admin.listen: expected \"host:port\", got \"%s\" (%s)\n",
                spec, why);
        return -EINVAL;
    }
    if (!host[0]) /* ":9090": every IPv4 address */
        strcpy(host, "0.0.0.0");
    if (hostport_resolve(host, port, &ss, &sl, err, sizeof(err))) {
        fprintf(stderr, "kvgated: admin.listen \"%s\": %s\n", spec, err);
        return -EINVAL;
    }
    /* the shared listener: accept loop with the EMFILE back-off */
    int fd = listener_socket((struct sockaddr *)&ss, sl, 64, 0);
    if (fd < 0) {
        fprintf(stderr, "kvgated: admin.listen \"%s\": %s\n", g->cfg.admin_listen, strerror(-fd));
        return fd;
    }
    int rc = listener_start(&A.ls, l, fd, on_accept, NULL);
    if (rc < 0) {
        fprintf(stderr, "kvgated: admin listener: %s\n", strerror(-rc));
        return rc;
    }
    return 0;
}

void admin_stop(void)
{
    while (A.conns)
        conn_close(A.conns);
    listener_stop(&A.ls);
}
