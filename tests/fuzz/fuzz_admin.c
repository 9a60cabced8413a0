/* libFuzzer target for kvgated's admin request handler (user/gateway/admin.c
 * and admin_api.c): the bytes one admin client sends, fed to adm_process
 * as they would arrive (in pieces), with the real config parsers behind
 * POST /admin/pods and PUT /admin/policy (JSON merge patch), and a small
 * fake control plane (pod table, reload, kill switch) instead of
 * control.c. The first input byte picks options: a bearer token or none,
 * the piece size, and whether a pod add resolves "later" (the pending
 * answer path).
 *
 * Besides the sanitizers it checks what the listener promises: the output
 * is a sequence of whole HTTP/1.1 responses (status line, headers, a body
 * of exactly Content-Length bytes, nothing after the last); every error
 * body is OpenAI's JSON error with the response's status as its code;
 * nothing under /admin/ changes state or answers 2xx without the token;
 * no request is answered after "Connection: close". Host names are never
 * looked up (HOSTPORT_NO_DNS). Seeds: tests/fuzz/corpus/admin/. */
#define HOSTPORT_NO_DNS 1
#include "common/ev.c"
#include "common/http1.c"
#include "common/httpstatus.c"
#include "common/listener.c"
#include "common/sbuf.c"
#include "core/podtable.c"
#include "core/policy.c"
#include "gateway/admin.c"
#include "gateway/admin_api.c"
#include "gateway/config.c"
#include "gateway/config_pod.c"
#include "gateway/config_policy.c"
#include "common/netaddr.c"
#include "gateway/jsonpath.c"

#include <stdio.h>
#include <stdlib.h>

#define REQUIRE(c)                                                               \
    do {                                                                         \
        if (!(c)) {                                                              \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #c, __FILE__,       \
                    __LINE__);                                                   \
            abort();                                                             \
        }                                                                        \
    } while (0)

/* ---- the fake control plane ---- */

static struct gw G;
static struct ctl CTL;          /* only g and pods[] are read */
static struct admin ADM;
static int state_changes;       /* anything under /admin/ that changed state */
static int later;               /* pod adds answer -EINPROGRESS */
static ctl_added_cb later_cb;
static void *later_arg;
static uint64_t later_cookie;
static int ks;

int ctl_add_pod(struct ctl *c, const struct gw_pod_cfg *p, char *err, size_t errlen,
                ctl_added_cb done, void *arg, uint64_t cookie)
{
    REQUIRE(c == &CTL);
    REQUIRE(p->name[0] && p->host[0] && p->port);
    for (int i = 0; i < 4; i++)
        if (c->pods[i] && !strcmp(c->pods[i]->info.name, p->name)) {
            snprintf(err, errlen, "a pod named \"%s\" exists", p->name);
            return -EEXIST;
        }
    state_changes++;
    if (later && !later_cb) {
        later_cb = done;
        later_arg = arg;
        later_cookie = cookie;
        return -EINPROGRESS;
    }
    return 0;
}

int ctl_remove_pod(struct ctl *c, const char *name)
{
    REQUIRE(name[0] && !strchr(name, '/'));
    state_changes++;
    return strcmp(name, "p0") ? -ENOENT : 0;
}

int ctl_drain_pod(struct ctl *c, const char *name, int drain)
{
    REQUIRE(name[0] && !strchr(name, '/'));
    state_changes++;
    return strcmp(name, "p0") ? -ENOENT : 0;
}

int ctl_reload(struct ctl *c, char *err, size_t errlen, char *restart, size_t rlen)
{
    state_changes++;
    snprintf(err, errlen, "kvgated was started without a config file (--config)");
    return -1;
}

void ctl_resolving_json(struct ctl *c, struct sbuf *o)
{
    sbuf_puts(o, "[]");
}

void ctl_set_policies(struct ctl *c, const struct gw_policies *p)
{
    state_changes++;
    pthread_mutex_lock(&G.policy_mu);
    G.policies = *p;
    pthread_mutex_unlock(&G.policy_mu);
}

void ctl_base_policies(struct ctl *c, struct gw_policies *out)
{
    *out = G.policies;
}

void ctl_killswitch(struct ctl *c, int on)
{
    state_changes++;
    ks = on;
}

int ctl_killswitch_on(const struct ctl *c)
{
    return ks;
}

void gw_metrics_limit(struct gw_metrics *m, const char *which)
{
}

void gw_metrics_render(struct gw_metrics *m, const struct pod_snapshot *s,
                       const struct pod_counters *c, const struct tokload *tl,
                       uint64_t now_ns, struct sbuf *out)
{
    sbuf_puts(out, "# TYPE kvgate_up gauge\nkvgate_up 1\n");
}

void ctl_kv_metrics_render(struct ctl *c, const struct pod_snapshot *s, struct sbuf *o)
{
}

void ctl_kv_pod_json(struct ctl *c, uint32_t slot, struct sbuf *o)
{
    sbuf_puts(o, "{}");
}

void gwbpf_metrics_render(struct gwbpf *b, struct sbuf *out)
{
}

void splice_metrics_render(struct sbuf *out)
{
}

void decide_srv_metrics_render(struct sbuf *out)
{
}

void adopt_srv_metrics_render(struct sbuf *out)
{
}

void accesslog_metrics_render(struct sbuf *out)
{
}

uint32_t pidx_pod_blocks(struct prefix_index *x, uint32_t pod)
{
    return 0;
}

uint32_t pidx_pod_limit(struct prefix_index *x, uint32_t pod)
{
    return 0;
}

/* ---- checking the output ---- */

static int header_value(const char *head, size_t hl, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *l = head; l < head + hl;) {
        const char *e = memmem(l, (size_t)(head + hl - l), "\r\n", 2);
        if (!e)
            break;
        if ((size_t)(e - l) > nl + 1 && !strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ')
                v++;
            snprintf(out, cap, "%.*s", (int)(e - v), v);
            return 1;
        }
        l = e + 2;
    }
    return 0;
}

/* Every response in out[0..n): whole, framed, errors in OpenAI's shape.
 * Returns how many; *closed: the last said "Connection: close". */
static int check_output(const char *out, size_t n, int token, int *closed)
{
    size_t off = 0;
    int count = 0;
    *closed = 0;
    while (off < n) {
        REQUIRE(!*closed); /* nothing after a close */
        const char *p = out + off;
        const char *he = memmem(p, n - off, "\r\n\r\n", 4);
        REQUIRE(he);
        size_t hl = (size_t)(he - p) + 4;
        REQUIRE(hl > 13 && !memcmp(p, "HTTP/1.1 ", 9));
        int code = atoi(p + 9);
        REQUIRE(code >= 100 && code <= 599);
        if (code == 100) { /* 100 Continue: no headers, no body */
            off += hl;
            continue;
        }
        char v[64];
        REQUIRE(header_value(p, hl, "Content-Length", v, sizeof(v)));
        size_t cl = strtoul(v, NULL, 10);
        REQUIRE(off + hl + cl <= n);
        const char *body = p + hl;
        if (code >= 400) {
            cJSON *j = cJSON_ParseWithLength(body, cl);
            REQUIRE(j);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "code");
            REQUIRE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "message")));
            REQUIRE(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type")));
            REQUIRE(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "param")));
            REQUIRE(cJSON_IsNumber(c) && c->valueint == code);
            cJSON_Delete(j);
        }
        if (header_value(p, hl, "Connection", v, sizeof(v)) && !strcasecmp(v, "close"))
            *closed = 1;
        (void)token;
        off += hl + cl;
        count++;
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) {
        pthread_mutex_init(&G.policy_mu, NULL);
        gw_config_defaults(&G.cfg);
        policy_defaults(&G.policies.global);
        G.rollout = rollout_new(&G.cfg.rollout); /* as main.c: never NULL */
        G.report = report_new();
        REQUIRE(G.rollout && G.report);
        CTL.g = &G;
        ADM.ctl = &CTL;
        static struct cpod p0;
        snprintf(p0.info.name, sizeof(p0.info.name), "p0");
        snprintf(p0.info.host, sizeof(p0.info.host), "127.0.0.1");
        p0.info.port = 8000;
        p0.info.nmodels = 1;
        snprintf(p0.info.models[0], POD_MODEL_MAX, "m\"odel");
        CTL.pods[0] = &p0;
        snapshot_publish(snapshot_new(0));
        init = 1;
    }
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    int token = opt & 1;
    size_t step = 1 + (size_t)((opt >> 1) & 31) * 7;
    later = (opt >> 6) & 1;
    later_cb = NULL;
    admin_set_token(&ADM, token ? "s3cret" : "");
    G.policies.noverrides = 0;
    policy_defaults(&G.policies.global);
    ks = 0;
    state_changes = 0;

    struct aconn c;
    memset(&c, 0, sizeof(c));
    c.a = &ADM;
    c.fd = -1;
    c.id = 1;
    sbuf_init(&c.in);
    sbuf_init(&c.out);
    ADM.conns = &c; /* late answers find it by id */
    ADM.nconns = 1;
    for (size_t off = 1; off < size; off += step) {
        size_t n = size - off < step ? size - off : step;
        if (c.close_after)
            break;
        sbuf_append(&c.in, (const char *)data + off, n);
        adm_process(&c);
        if (later_cb && c.pending) { /* the name "resolved" */
            ctl_added_cb cb = later_cb;
            later_cb = NULL;
            later = 0;
            cb(later_arg, later_cookie, 0, "");
            REQUIRE(!c.pending);
        }
    }
    int closed;
    check_output(c.out.data ? c.out.data : "", c.out.len, token, &closed);
    REQUIRE(!closed || c.close_after);
    /* with a token, no request could change anything without it: the
     * inputs never carry "s3cret" unless they mean to */
    if (token && !memmem(data, size, "s3cret", 6))
        REQUIRE(state_changes == 0);
    ADM.conns = NULL;
    ADM.nconns = 0;
    sbuf_free(&c.in);
    sbuf_free(&c.out);
    return 0;
}
