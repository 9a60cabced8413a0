/* admin_api: the admin listener's endpoints (admin.c holds the
 * connections). All run on the control thread's loop.
 *
 *   GET    /metrics                     kvgated's Prometheus page
 *   GET    /health                      200 {"status":"ok"}
 *   GET    /admin/pods                  the pod table (JSON array)
 *   POST   /admin/pods                  add {"url","name","engine","models"}:
 *                                       201, 400 (key path, cannot resolve),
 *                                       409 exists / full. A host name is
 *                                       resolved on the resolver thread; the
 *                                       answer waits for it, the loop does not
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
 *   GET    /admin/rollout               the guarded rollout: state, step,
 *                                       canary share, the last step's result,
 *                                       the verdict of a rollback, and this
 *                                       step's figures per tenant and class
 *                                       and arm
 *   POST   /admin/rollout               {"action": "start" | "pause" |
 *                                       "resume" | "abort" | "reset"}: 200
 *                                       with the status, 409 when the state
 *                                       does not allow it, 400 otherwise
 *   GET    /admin/report                per model, tenant, class and arm:
 *                                       requests, errors, TTFT p50 / p99,
 *                                       ITL p50, hit rate, tokens/s, cost per
 *                                       million tokens, the rollout's word
 *                                       (admin_report.c); ?format=text: a
 *                                       table
 *   POST   /admin/reload                re-read the config file: 200
 *                                       {"reloaded":true,"resolving":[names of
 *                                       pods added once their host resolves]},
 *                                       400
 *
 * POST /admin/reload also answers "restart_required": the changed keys that
 * keep their running value until a restart.
 *
 * With admin.token set, everything under /admin/ needs the bearer token
 * (401 otherwise; admin.c checks it); /metrics and /health stay open.
 * Errors are OpenAI's {"error":{"message","type","param":null,"code"}},
 * typed as the OpenAI SDK names its exceptions (AuthenticationError,
 * NotFoundError, ConflictError, ...). Pod names in paths may be
 * percent-encoded.
 *
 * /metrics is composed here from each module's render: kvgated's own
 * (gwmetrics.c, per-pod gauges included), the kernel fast path's (bpf.c),
 * the splice's and the access log's. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ev.h"
#include "common/http1.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "core/podtable.h"
#include "core/prefix_index.h"
#include "gateway/accesslog.h"
#include "gateway/admin_priv.h"
#include "gateway/bpf.h"
#include "gateway/control_priv.h"
#include "gateway/adopt_srv.h"
#include "gateway/decide_srv.h"
#include "gateway/gwmetrics.h"
#include "gateway/splice.h"

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

static void pods_json(struct ctl *ctl, struct sbuf *o, uint64_t now)
{
    struct gw *g = ctl->g;
    char addr[POD_NAME_MAX + 8];
    uint32_t n = 0;
    sbuf_puts(o, "[");
    for (uint32_t i = 0; i < POD_MAX; i++) {
        const struct cpod *p = ctl->pods[i];
        if (!p)
            continue;
        const struct pod_info *in = &p->info;
        sbuf_puts(o, n++ ? ",{\"name\":\"" : "{\"name\":\"");
        sbuf_json_escape(o, in->name, strlen(in->name));
        gw_hostport_text(in->host, in->port, addr, sizeof(addr));
        sbuf_printf(o, "\",\"address\":\"%s\"", addr);
        sbuf_printf(o, ",\"slot\":%u,\"engine\":\"%s\",\"h2c\":%s,\"healthy\":%s,"
                       "\"draining\":%s",
                    in->slot, gwc_engine_name(in->engine), in->h2c ? "true" : "false",
                    in->healthy ? "true" : "false", in->draining ? "true" : "false");
        if (in->metrics_ok)
            sbuf_printf(o, ",\"metrics_age_ms\":%.1f",
                        now > in->scraped_ns ? (double)(now - in->scraped_ns) / 1e6 : 0.0);
        else
            sbuf_puts(o, ",\"metrics_age_ms\":null");
        sbuf_printf(o, ",\"waiting\":%g,\"running\":%g,\"kv_usage\":%g,\"inflight\":%u"
                       ",\"kernel_inflight\":%u",
                    in->waiting, in->running, in->kv_usage, pod_inflight(&g->counters, in->slot),
                    pod_kernel_inflight(&g->counters, in->slot));
        if (in->metrics_ok) /* what other senders had there at the scrape */
            sbuf_printf(o, ",\"own_at_scrape\":%u,\"others_at_scrape\":%g", in->own_at_scrape,
                        in->running + in->waiting > in->own_at_scrape
                            ? in->running + in->waiting - in->own_at_scrape : 0.0);
        sbuf_printf(o, ",\"prefill_tokens\":%llu,\"decode_tokens\":%llu,\"prefill_rate\":%.0f",
                    (unsigned long long)tokload_prefill(&g->tl, in->slot),
                    (unsigned long long)tokload_decode(&g->tl, in->slot),
                    tokload_rate(&g->tl, in->slot));
        sbuf_puts(o, ",\"index\":");
        ctl_kv_pod_json(ctl, in->slot, o);
        sbuf_puts(o, ",\"utilisation\":");
        ctl_util_pod_json(ctl, in->slot, o);
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
        sbuf_printf(o, "],\"cache_tokens\":%u,\"index_blocks\":%u,\"index_limit\":%u}",
                    in->cache_tokens, g->pidx ? pidx_pod_blocks(g->pidx, in->slot) : 0,
                    g->pidx ? pidx_pod_limit(g->pidx, in->slot) : 0);
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
        adm_respond_error(c, 400, msg, NULL);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void h_pods_get(struct aconn *c)
{
    struct sbuf b;
    sbuf_init(&b);
    pods_json(c->a->ctl, &b, ev_now_ns());
    adm_respond_json(c, 200, &b);
    sbuf_free(&b);
}

static void answer_added(struct aconn *c, int rc, const char *name, const char *err)
{
    if (rc) {
        adm_respond_error(c,
                          rc == -EEXIST || rc == -ENOSPC || rc == -ECANCELED ? 409
                          : rc == -ENOMEM                                    ? 500
                                                                             : 400,
                          err, NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"added\":\"");
    sbuf_json_escape(&b, name, strlen(name));
    sbuf_puts(&b, "\"}");
    adm_respond_json(c, 201, &b);
    sbuf_free(&b);
}

/* A pod named by a host name was added (or not) after the resolver thread
 * looked it up: the POST that asked gets its answer now, if still there. */
static void on_added(void *arg, uint64_t cookie, int rc, const char *err)
{
    struct aconn *c = adm_find(arg, cookie);
    if (!c)
        return; /* the client left; the pod was added all the same */
    answer_added(c, rc, c->pending_name, err);
    adm_finish(c);
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
        adm_respond_error(c, 400, err, NULL);
        return;
    }
    rc = ctl_add_pod(c->a->ctl, &p, err, sizeof(err), on_added, c->a, c->id);
    if (rc == -EINPROGRESS) { /* its host is a name: answered when it resolves */
        snprintf(c->pending_name, sizeof(c->pending_name), "%s", p.name);
        c->pending = 1;
        return;
    }
    answer_added(c, rc, p.name, err);
}

static void h_pod_action(struct aconn *c, const char *name, const char *action)
{
    struct ctl *ctl = c->a->ctl;
    int rc = !strcmp(action, "remove") ? ctl_remove_pod(ctl, name)
             : !strcmp(action, "drain") ? ctl_drain_pod(ctl, name, 1)
                                        : ctl_drain_pod(ctl, name, 0);
    if (rc) {
        char msg[160];
        snprintf(msg, sizeof(msg), "no pod named \"%s\"", name);
        adm_respond_error(c, 404, msg, NULL);
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
    adm_respond_json(c, 200, &b);
    sbuf_free(&b);
}

static void h_policy_get(struct aconn *c)
{
    static struct gw_policies p;
    struct gw *g = c->a->ctl->g;
    pthread_mutex_lock(&g->policy_mu);
    p = g->policies;
    pthread_mutex_unlock(&g->policy_mu);
    cJSON *j = gwc_policies_json(&p);
    adm_respond_cjson(c, 200, j);
    cJSON_Delete(j);
}

static void h_policy_put(struct aconn *c, const char *body, size_t len)
{
    static struct gw_policies cur, np;
    char err[384];
    cJSON *patch = body_object(c, body, len);
    if (!patch)
        return;
    ctl_base_policies(c->a->ctl, &cur);
    int rc = gwc_policies_patch(&cur, patch, &np, err, sizeof(err));
    cJSON_Delete(patch);
    if (rc) {
        adm_respond_error(c, rc == -ENOMEM ? 500 : 400, err, NULL);
        return;
    }
    ctl_set_policies(c->a->ctl, &np);
    h_policy_get(c);
}

static void h_rollout(struct aconn *c, int post, const char *body, size_t len)
{
    if (post) {
        cJSON *o = body_object(c, body, len);
        if (!o)
            return;
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "action");
        char action[16] = "";
        if (cJSON_IsString(a) && cJSON_GetArraySize(o) == 1)
            snprintf(action, sizeof(action), "%s", a->valuestring);
        cJSON_Delete(o);
        int rc = action[0] ? ctl_rollout_action(c->a->ctl, action) : -ENOENT;
        if (rc == -ENOENT) {
            adm_respond_error(c, 400, "expected {\"action\": \"start\", \"pause\", \"resume\", "
                                      "\"abort\" or \"reset\"}", NULL);
            return;
        }
        if (rc == -EOPNOTSUPP) {
            adm_respond_error(c, 409, "accounting.enabled is false: a guarded rollout would "
                                      "have no requests to judge its steps by", NULL);
            return;
        }
        if (rc) {
            adm_respond_error(c, 409,
                              rc == -EALREADY ? "the rollout is already in that state"
                                              : "the rollout's state does not allow that "
                                                "(GET /admin/rollout)",
                              NULL);
            return;
        }
    }
    struct sbuf b;
    sbuf_init(&b);
    ctl_rollout_json(c->a->ctl, &b);
    adm_respond_json(c, 200, &b);
    sbuf_free(&b);
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
            adm_respond_error(c, 400, "expected {\"enabled\": true or false}", NULL);
            return;
        }
        ctl_killswitch(c->a->ctl, on);
    }
    struct sbuf b;
    struct gw *g = c->a->ctl->g;
    sbuf_init(&b);
    pthread_mutex_lock(&g->policy_mu);
    enum policy_mode m = g->policies.global.mode;
    pthread_mutex_unlock(&g->policy_mu);
    sbuf_printf(&b, "{\"enabled\":%s,\"mode\":\"%s\"}",
                ctl_killswitch_on(c->a->ctl) ? "true" : "false",
                policy_mode_name(m));
    adm_respond_json(c, 200, &b);
    sbuf_free(&b);
}

/* "a, b" -> ["a","b"] */
static void json_list(struct sbuf *o, const char *list)
{
    sbuf_puts(o, "[");
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        sbuf_puts(o, p == list ? "\"" : ",\"");
        sbuf_json_escape(o, p, n);
        sbuf_puts(o, "\"");
        p += n;
        p += strspn(p, ", ");
    }
    sbuf_puts(o, "]");
}

static void h_reload(struct aconn *c)
{
    char err[512], restart[512];
    if (ctl_reload(c->a->ctl, err, sizeof(err), restart, sizeof(restart))) {
        adm_respond_error(c, 400, err, NULL);
        return;
    }
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"reloaded\":true,\"resolving\":"); /* pods added when their name resolves */
    ctl_resolving_json(c->a->ctl, &b);
    sbuf_puts(&b, ",\"restart_required\":");
    json_list(&b, restart);
    sbuf_puts(&b, "}");
    adm_respond_json(c, 200, &b);
    sbuf_free(&b);
}

/* The page: each module renders its own families. */
static void h_metrics(struct aconn *c)
{
    struct gw *g = c->a->ctl->g;
    struct sbuf b;
    sbuf_init(&b);
    struct pod_snapshot *s = snapshot_get();
    gw_metrics_render(g->metrics, s, &g->counters, &g->tl, ev_now_ns(), &b);
    ctl_kv_metrics_render(c->a->ctl, s, &b);
    ctl_rollout_metrics(c->a->ctl, &b);
    ctl_util_metrics_render(c->a->ctl, &b);
    snapshot_put(s);
    prom_head(&b, "kvgate_load_share", "gauge",
              "This gateway's share of the load at the pods (its in-flight requests against "
              "the pods' running + waiting, moving averages): below 1 with replicas, whose "
              "load estimates extrapolate the others' sends by it.");
    sbuf_puts(&b, "kvgate_load_share");
    prom_value(&b, (double)atomic_load(&g->load_share_micro) / 1e6);
    gwbpf_metrics_render(g->bpf, &b);
    splice_metrics_render(&b);
    decide_srv_metrics_render(&b);
    adopt_srv_metrics_render(&b);
    accesslog_metrics_render(&b);
    if (b.oom)
        adm_respond_error(c, 500, "out of memory", NULL);
    else
        adm_respond(c, 200, "text/plain; version=0.0.4", b.data ? b.data : "", b.len, NULL);
    sbuf_free(&b);
}

static int pct_hexval(char ch)
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
            int hi = pct_hexval(s[i + 1]), lo = pct_hexval(s[i + 2]);
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

#define METHOD(m) (mlen == sizeof(m) - 1 && !memcmp(rq->method, m, mlen))

static void not_allowed(struct aconn *c, const char *allow)
{
    char h[64];
    snprintf(h, sizeof(h), "Allow: %s\r\n", allow);
    adm_respond_error(c, 405, "method not allowed", h);
}

/* /admin/pods/<name>[/drain|/undrain] */
static void h_pod_path(struct aconn *c, const struct http1_request *rq, const char *nm)
{
    size_t mlen = rq->method_len;
    const char *slash = strchr(nm, '/');
    const char *action = slash ? slash + 1 : "remove";
    char name[POD_NAME_MAX];
    if (pct_decode(nm, slash ? (size_t)(slash - nm) : strlen(nm), name, sizeof(name)) ||
        (slash && strcmp(action, "drain") && strcmp(action, "undrain")))
        adm_respond_error(c, 404, "no such endpoint", NULL);
    else if (!slash && !METHOD("DELETE"))
        not_allowed(c, "DELETE");
    else if (slash && !METHOD("POST"))
        not_allowed(c, "POST");
    else
        h_pod_action(c, name, action);
}

/* Everything under /admin/ (sub: the rest of the path), token checked. */
static int query_has(const struct http1_request *rq, const char *kv)
{
    const char *q = memchr(rq->target, '?', rq->target_len);
    if (!q)
        return 0;
    size_t n = strlen(kv), left = rq->target_len - (size_t)(q + 1 - rq->target);
    for (const char *p = q + 1; left >= n;) {
        if (!memcmp(p, kv, n) && (left == n || p[n] == '&'))
            return 1;
        const char *amp = memchr(p, '&', left);
        if (!amp)
            break;
        left -= (size_t)(amp + 1 - p);
        p = amp + 1;
    }
    return 0;
}

static void h_admin(struct aconn *c, const struct http1_request *rq, const char *sub,
                    const char *body, size_t blen)
{
    size_t mlen = rq->method_len;
    if (!strcmp(sub, "pods")) {
        if (METHOD("GET"))
            h_pods_get(c);
        else if (METHOD("POST"))
            h_pods_post(c, body, blen);
        else
            not_allowed(c, "GET, POST");
    } else if (!strncmp(sub, "pods/", 5)) {
        h_pod_path(c, rq, sub + 5);
    } else if (!strcmp(sub, "policy")) {
        if (METHOD("GET"))
            h_policy_get(c);
        else if (METHOD("PUT"))
            h_policy_put(c, body, blen);
        else
            not_allowed(c, "GET, PUT");
    } else if (!strcmp(sub, "killswitch")) {
        if (METHOD("GET") || METHOD("POST"))
            h_killswitch(c, METHOD("POST"), body, blen);
        else
            not_allowed(c, "GET, POST");
    } else if (!strcmp(sub, "report")) {
        if (METHOD("GET"))
            adm_report(c, query_has(rq, "format=text"));
        else
            not_allowed(c, "GET");
    } else if (!strcmp(sub, "rollout")) {
        if (METHOD("GET") || METHOD("POST"))
            h_rollout(c, METHOD("POST"), body, blen);
        else
            not_allowed(c, "GET, POST");
    } else if (!strcmp(sub, "reload")) {
        if (METHOD("POST"))
            h_reload(c);
        else
            not_allowed(c, "POST");
    } else {
        adm_respond_error(c, 404, "no such endpoint", NULL);
    }
}

void adm_handle(struct aconn *c, const struct http1_request *rq, const char *body,
                size_t blen)
{
    size_t mlen = rq->method_len;
    char path[512];
    size_t pl = rq->target_len;
    const char *q = memchr(rq->target, '?', pl);
    if (q)
        pl = (size_t)(q - rq->target);
    if (pl >= sizeof(path)) {
        adm_respond_error(c, 404, "no such endpoint", NULL);
        return;
    }
    memcpy(path, rq->target, pl);
    path[pl] = 0;

    if (!strcmp(path, "/metrics") || !strcmp(path, "/health")) {
        if (!METHOD("GET")) {
            not_allowed(c, "GET");
        } else if (path[1] == 'm') {
            h_metrics(c);
        } else {
            static const char ok[] = "{\"status\":\"ok\"}";
            adm_respond(c, 200, "application/json", ok, sizeof(ok) - 1, NULL);
        }
        return;
    }
    if (strncmp(path, "/admin/", 7)) {
        adm_respond_error(c, 404, "no such endpoint", NULL);
        return;
    }
    if (!adm_token_ok(c->a, rq)) {
        adm_respond_error(c, 401, "missing or wrong bearer token",
                          "WWW-Authenticate: Bearer realm=\"kvgated\"\r\n");
        return;
    }
    h_admin(c, rq, path + 7, body, blen);
}
