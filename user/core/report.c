/* report: the per-group book behind GET /admin/report. See report.h. */
#include "core/report.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "core/loghist.h"

struct group {
    char model[REPORT_LABEL_MAX], tenant[REPORT_LABEL_MAX], cls[REPORT_LABEL_MAX],
        arm[REPORT_LABEL_MAX];
    uint64_t requests, errors, estimated;
    uint64_t prompt, cached, completion, charged_tokens;
    double cost;
    struct loghist ttft, itl;
    uint64_t first_ns, last_ns;
};

struct report {
    pthread_mutex_t mu;
    int n;
    struct group *g[REPORT_GROUPS_MAX + 1]; /* + the overflow group */
};

struct report *report_new(void)
{
    struct report *r = kv_calloc(1, sizeof(*r));
    if (r)
        pthread_mutex_init(&r->mu, NULL);
    return r;
}

void report_free(struct report *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        kv_free(r->g[i]);
    pthread_mutex_destroy(&r->mu);
    kv_free(r);
}

static const char *nz(const char *s)
{
    return s && *s ? s : "default";
}

static int same(const struct group *g, const char *m, const char *t, const char *c, const char *a)
{
    return !strcmp(g->model, m) && !strcmp(g->tenant, t) && !strcmp(g->cls, c) &&
           !strcmp(g->arm, a);
}

static struct group *find(struct report *r, const char *m, const char *t, const char *c,
                          const char *a)
{
    for (int i = 0; i < r->n; i++)
        if (same(r->g[i], m, t, c, a))
            return r->g[i];
    if (r->n >= REPORT_GROUPS_MAX && strcmp(m, "other"))
        return find(r, "other", "other", "other", "other");
    if (r->n > REPORT_GROUPS_MAX)
        return NULL;
    struct group *g = kv_calloc(1, sizeof(*g));
    if (!g)
        return NULL; /* the sample goes uncounted */
    snprintf(g->model, sizeof(g->model), "%s", m);
    snprintf(g->tenant, sizeof(g->tenant), "%s", t);
    snprintf(g->cls, sizeof(g->cls), "%s", c);
    snprintf(g->arm, sizeof(g->arm), "%s", a);
    r->g[r->n++] = g;
    return g;
}

void report_record(struct report *r, const struct report_key *k, const struct report_sample *s,
                   uint64_t now_ns)
{
    pthread_mutex_lock(&r->mu);
    struct group *g = find(r, nz(k->model), nz(k->tenant), nz(k->cls), nz(k->arm));
    if (g) {
        g->requests++;
        g->errors += s->error != 0;
        g->estimated += s->estimated != 0;
        uint64_t cached = s->cached_tokens < s->prompt_tokens ? s->cached_tokens : s->prompt_tokens;
        g->prompt += s->prompt_tokens;
        g->cached += cached;
        g->completion += s->completion_tokens;
        if (s->cost >= 0) {
            g->cost += s->cost;
            g->charged_tokens += s->prompt_tokens + s->completion_tokens;
        }
        if (s->ttft_ms >= 0)
            loghist_add(&g->ttft, s->ttft_ms);
        if (s->itl_ms >= 0)
            loghist_add(&g->itl, s->itl_ms);
        if (g->requests == 1 || now_ns < g->first_ns)
            g->first_ns = now_ns;
        if (now_ns > g->last_ns)
            g->last_ns = now_ns;
    }
    pthread_mutex_unlock(&r->mu);
}

static int cmp_rows(const void *a, const void *b)
{
    const struct report_row *x = a, *y = b;
    int c = strcmp(x->model, y->model);
    if (!c)
        c = strcmp(x->tenant, y->tenant);
    if (!c)
        c = strcmp(x->cls, y->cls);
    if (!c)
        c = strcmp(x->arm, y->arm);
    return c;
}

int report_rows(struct report *r, struct report_row *out, int max)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n, k = 0;
    for (int i = 0; i < n && k < max; i++, k++) {
        const struct group *g = r->g[i];
        struct report_row *o = &out[k];
        memset(o, 0, sizeof(*o));
        memcpy(o->model, g->model, sizeof(o->model));
        memcpy(o->tenant, g->tenant, sizeof(o->tenant));
        memcpy(o->cls, g->cls, sizeof(o->cls));
        memcpy(o->arm, g->arm, sizeof(o->arm));
        o->requests = g->requests;
        o->errors = g->errors;
        o->estimated = g->estimated;
        o->prompt_tokens = g->prompt;
        o->cached_tokens = g->cached;
        o->completion_tokens = g->completion;
        o->ttft_p50 = loghist_quantile(&g->ttft, 0.50);
        o->ttft_p99 = loghist_quantile(&g->ttft, 0.99);
        o->itl_p50 = loghist_quantile(&g->itl, 0.50);
        o->hit_rate = g->prompt ? (double)g->cached / (double)g->prompt : -1;
        double span = g->last_ns > g->first_ns ? (double)(g->last_ns - g->first_ns) / 1e9 : 0;
        o->tokens_per_s = span > 0 ? (double)g->completion / span : 0;
        o->cost = g->cost;
        o->cost_per_mtok = g->charged_tokens ? g->cost / (double)g->charged_tokens * 1e6 : -1;
    }
    pthread_mutex_unlock(&r->mu);
    qsort(out, (size_t)k, sizeof(*out), cmp_rows);
    return n;
}
