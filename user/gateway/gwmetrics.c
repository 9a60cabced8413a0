/* gwmetrics: kvgated's own metrics. See gwmetrics.h. */
#include "gateway/gwmetrics.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "common/alloc.h"
#include "common/promtext.h"
#include "common/sbuf.h"
#include "core/podtable.h"
#include "core/tokload.h"
#include "gateway/gateway.h"

#define MAX_MODELS 64
#define MAX_TENANTS 256
#define MAX_MT 1024    /* latency series (model, tenant, class, arm); the last slot is
                        * kept for the overflow series, labels "other" */
#define MAX_REQ 4096   /* (model, pod, status) series */
#define MAX_NAMED 1024 /* small labelled counters */
#define MAX_CLASSES 32 /* workload classes (client-chosen through a header) */
#define MAX_TOK 4096   /* token series (model, tenant, class, arm, estimated); the
                        * last slot is kept for the overflow series, labels "other" */
#define MAX_BPREQ 1024 /* later-request series on bypass connections (model, tenant, pod) */
#define MAX_SERVED 1024   /* distinct served model / adapter names looked up */
#define SERVED_SLOTS 2048 /* open addressing, power of two, > 2 x MAX_SERVED */

static const double RATIO_BUCKETS[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0};
static const double DECISION_BUCKETS[] = {1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4,
                                          2e-4, 5e-4, 1e-3, 1e-2};
static const double ADDED_BUCKETS[] = {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                       2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1};
#define NB(a) ((int)(sizeof(a) / sizeof(a[0])))

/* Latency histograms by model, tenant, class and arm: the labels of the
 * token counters (less estimated), so that a TTFT quantile per tenant and
 * arm sits next to the hit rate and cost of the same requests. */
struct mt_series {
    char model[128], tenant[128], wclass[64];
    const char *arm; /* static text; NULL: slot unused */
    const char *pmodel, *ptenant, *pclass; /* the labels' interned texts (label_ptrs_match) */
    struct hist ttft, itl, e2e;
};

struct req_series {
    char model[128], pod[POD_NAME_MAX];
    int status;
    const char *outcome; /* static text (gw_request.outcome) */
    uint64_t n;
};

/* Tokens by model, tenant, class, arm and estimated (accounting.h). */
struct tok_series {
    char model[128], tenant[128], wclass[64];
    const char *arm;     /* static text */
    const char *pmodel, *ptenant, *pclass; /* the labels' interned texts (label_ptrs_match) */
    int estimated;
    uint64_t prompt, cached, completion;
    uint64_t charged;    /* prompt + completion tokens of the requests charged a cost */
    double cost;         /* what they were charged (route.c request_cost) */
};

/* Requests after the first on spliced bypass connections, framed by XDP
 * and reported by the worker (REQS): labelled with the connection's first
 * request's model and tenant and the pod the connection is bound to. */
struct bpreq_series {
    char model[128], tenant[128], pod[POD_NAME_MAX];
    uint64_t n;
    uint64_t body;       /* their body bytes (Content-Lengths, REQS version 5) */
};

struct named {
    char family[24];  /* which counter family */
    char a[POD_NAME_MAX], b[32]; /* label values */
    uint64_t n;
};

/* What the pods serve (gw_metrics_served): a hash set of names. */
struct served {
    uint32_t n;
    uint64_t fp;                   /* XXH3 of the snapshot's names, in order */
    uint16_t slot[SERVED_SLOTS];   /* 0: empty, else index + 1 */
    char names[MAX_SERVED][POD_MODEL_MAX];
};

struct gw_metrics {
    pthread_mutex_t mu;
    /* served[cur] is read under mu; the control thread builds the other
     * one without it, then flips cur under mu */
    struct served served[2];
    int cur, have_served;
    struct mt_series mt[MAX_MT];
    uint32_t nmt;
    struct req_series req[MAX_REQ];
    uint32_t nreq;
    struct named named[MAX_NAMED];
    uint32_t nnamed;
    struct bpreq_series bpreq[MAX_BPREQ];
    uint32_t nbpreq;
    char models[MAX_MODELS][128];
    uint32_t nmodels;
    char tenants[MAX_TENANTS][128];
    uint32_t ntenants;
    char classes[MAX_CLASSES][128];
    uint32_t nclasses;
    struct tok_series tok[MAX_TOK];
    uint32_t ntok;
    uint64_t decisions[POLICY__COUNT][REASON__COUNT];
    uint64_t shadow_agree, shadow_disagree;
    /* shadow mode: prefix blocks the actual and the shadow picks held, of
     * the requests' blocks: the hit-rate gain estimated before any
     * traffic moves */
    uint64_t shadow_blocks_actual, shadow_blocks_shadow, shadow_blocks;
    atomic_uint_fast64_t pod_connects;
    struct hist ratio, decision, added;
};

struct gw_metrics *gw_metrics_new(void)
{
    struct gw_metrics *m = kv_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    pthread_mutex_init(&m->mu, NULL);
    hist_init(&m->ratio, RATIO_BUCKETS, NB(RATIO_BUCKETS));
    hist_init(&m->decision, DECISION_BUCKETS, NB(DECISION_BUCKETS));
    hist_init(&m->added, ADDED_BUCKETS, NB(ADDED_BUCKETS));
    return m;
}

void gw_metrics_free(struct gw_metrics *m)
{
    if (m) {
        pthread_mutex_destroy(&m->mu);
        kv_free(m);
    }
}

static uint32_t served_slot(const char *name, size_t n)
{
    return (uint32_t)XXH3_64bits(name, n) & (SERVED_SLOTS - 1);
}

static int served_has(const struct served *sv, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = served_slot(name, n);; i = (i + 1) & (SERVED_SLOTS - 1)) {
        if (!sv->slot[i])
            return 0;
        if (!strcmp(sv->names[sv->slot[i] - 1], name))
            return 1;
    }
}

static void served_add(struct served *sv, const char *name)
{
    size_t n = strnlen(name, POD_MODEL_MAX - 1);
    if (!n || sv->n == MAX_SERVED)
        return;
    uint32_t i = served_slot(name, n);
    for (; sv->slot[i]; i = (i + 1) & (SERVED_SLOTS - 1))
        if (!strncmp(sv->names[sv->slot[i] - 1], name, POD_MODEL_MAX))
            return;
    memcpy(sv->names[sv->n], name, n);
    sv->names[sv->n][n] = 0;
    sv->slot[i] = (uint16_t)++sv->n;
}

void gw_metrics_served(struct gw_metrics *m, const struct pod_snapshot *s)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    for (uint32_t i = 0; s && i < s->npods; i++) {
        const struct pod_info *p = &s->pods[i];
        for (uint32_t k = 0; k < p->nmodels && k < POD_MAX_MODELS; k++)
            XXH3_64bits_update(&st, p->models[k], strnlen(p->models[k], POD_MODEL_MAX) + 1);
        for (uint32_t k = 0; k < p->nadapters && k < POD_MAX_ADAPTERS; k++)
            XXH3_64bits_update(&st, p->adapters[k], strnlen(p->adapters[k], POD_MODEL_MAX) + 1);
    }
    uint64_t fp = XXH3_64bits_digest(&st);
    pthread_mutex_lock(&m->mu);
    int cur = m->cur, same = m->have_served && m->served[cur].fp == fp;
    pthread_mutex_unlock(&m->mu);
    if (same)
        return;
    struct served *sv = &m->served[!cur]; /* no reader looks at it */
    sv->n = 0;
    sv->fp = fp;
    memset(sv->slot, 0, sizeof(sv->slot));
    for (uint32_t i = 0; s && i < s->npods; i++) {
        const struct pod_info *p = &s->pods[i];
        for (uint32_t k = 0; k < p->nmodels && k < POD_MAX_MODELS; k++)
            served_add(sv, p->models[k]);
        for (uint32_t k = 0; k < p->nadapters && k < POD_MAX_ADAPTERS; k++)
            served_add(sv, p->adapters[k]);
    }
    pthread_mutex_lock(&m->mu);
    m->cur = !cur;
    m->have_served = 1;
    pthread_mutex_unlock(&m->mu);
}

static atomic_int tenant_from_user;

void gw_set_tenant_from_user(int on)
{
    atomic_store_explicit(&tenant_from_user, !!on, memory_order_relaxed);
}

int gw_tenant_from_user(void)
{
    return atomic_load_explicit(&tenant_from_user, memory_order_relaxed);
}

/* Bounded label sets: the first N distinct values are kept, later ones are
 * counted as "other" so a client cannot blow up the page. */
static const char *bounded(char (*set)[128], uint32_t *n, uint32_t cap, const char *v)
{
    if (!v[0])
        return "none";
    for (uint32_t i = 0; i < *n; i++)
        if (!strcmp(set[i], v))
            return set[i];
    if (*n == cap)
        return "other";
    snprintf(set[*n], 128, "%s", v);
    return set[(*n)++];
}

/* A model's label: its name only while a pod serves it (a client cannot
 * mint labels with bogus names, nor push real models out), else "other". */
static const char *model_label(struct gw_metrics *m, const char *model)
{
    if (!model[0])
        return "none";
    if (!served_has(&m->served[m->cur], model))
        return "other";
    return bounded(m->models, &m->nmodels, MAX_MODELS, model);
}

/* Label texts as model_label, bounded and class_label return them are
 * interned: a slot of a bounded set (written once, under m->mu, and kept
 * for m's life) or a static string. The same pointer is always the same
 * text, so a series made from these pointers is found again by comparing
 * them (no strcmp: issue 13's profile of the per-request metrics had
 * strcmp first); two pointers to one text (a tenant named "other", an
 * arm's name from two places) still meet by strcmp, the slow pass. */
static int label_ptrs_match(const char *pm, const char *pt, const char *pc, const char *model,
                            const char *tenant, const char *wclass)
{
    return pm == model && pt == tenant && pc == wclass;
}

static void mt_init(struct mt_series *s, const char *model, const char *tenant,
                    const char *wclass, const char *arm)
{
    snprintf(s->model, sizeof(s->model), "%s", model);
    snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
    snprintf(s->wclass, sizeof(s->wclass), "%s", wclass);
    s->arm = arm;
    s->pmodel = model;
    s->ptenant = tenant;
    s->pclass = wclass;
    hist_init(&s->ttft, VLLM_TTFT_BUCKETS, VLLM_TTFT_NBUCKETS);
    hist_init(&s->itl, VLLM_ITL_BUCKETS, VLLM_ITL_NBUCKETS);
    hist_init(&s->e2e, VLLM_E2E_BUCKETS, VLLM_E2E_NBUCKETS);
}

/* The latency series for these labels; past MAX_MT - 1 series, the last
 * one, every label "other" (so each histogram's totals stay whole). */
static struct mt_series *mt_get(struct gw_metrics *m, const char *model, const char *tenant,
                                const char *wclass, const char *arm)
{
    for (uint32_t i = 0; i < m->nmt; i++) {
        struct mt_series *s = &m->mt[i];
        if (s->arm == arm && label_ptrs_match(s->pmodel, s->ptenant, s->pclass, model, tenant, wclass))
            return s;
    }
    for (uint32_t i = 0; i < m->nmt; i++) {
        struct mt_series *s = &m->mt[i];
        if (!strcmp(s->arm, arm) && !strcmp(s->model, model) && !strcmp(s->tenant, tenant) &&
            !strcmp(s->wclass, wclass))
            return s;
    }
    if (m->nmt == MAX_MT - 1) {
        struct mt_series *s = &m->mt[MAX_MT - 1];
        if (!s->arm)
            mt_init(s, "other", "other", "other", "other");
        return s;
    }
    struct mt_series *s = &m->mt[m->nmt++];
    mt_init(s, model, tenant, wclass, arm);
    return s;
}

/* r's class label (under m->mu): bounded, "default" when it names none. */
static const char *class_label(struct gw_metrics *m, const struct gw_request *r)
{
    return bounded(m->classes, &m->nclasses, MAX_CLASSES, r->wclass[0] ? r->wclass : "default");
}

/* The series for these labels; past MAX_TOK - 1 series, the last one,
 * every label "other" (so the totals stay whole). */
static struct tok_series *tok_get(struct gw_metrics *m, const char *model, const char *tenant,
                                  const char *wclass, const char *arm, int estimated)
{
    for (uint32_t i = 0; i < m->ntok; i++) {
        struct tok_series *t = &m->tok[i];
        if (t->estimated == estimated && t->arm == arm &&
            label_ptrs_match(t->pmodel, t->ptenant, t->pclass, model, tenant, wclass))
            return t;
    }
    for (uint32_t i = 0; i < m->ntok; i++) {
        struct tok_series *t = &m->tok[i];
        if (t->estimated == estimated && !strcmp(t->arm, arm) && !strcmp(t->model, model) &&
            !strcmp(t->tenant, tenant) && !strcmp(t->wclass, wclass))
            return t;
    }
    if (m->ntok == MAX_TOK - 1) {
        struct tok_series *t = &m->tok[MAX_TOK - 1];
        if (!t->arm) {
            strcpy(t->model, "other");
            strcpy(t->tenant, "other");
            strcpy(t->wclass, "other");
            t->arm = t->pmodel = t->ptenant = t->pclass = "other";
        }
        return t;
    }
    struct tok_series *t = &m->tok[m->ntok++];
    snprintf(t->model, sizeof(t->model), "%s", model);
    snprintf(t->tenant, sizeof(t->tenant), "%s", tenant);
    snprintf(t->wclass, sizeof(t->wclass), "%s", wclass);
    t->arm = arm;
    t->pmodel = model;
    t->ptenant = tenant;
    t->pclass = wclass;
    t->estimated = estimated;
    return t;
}

static void named_inc(struct gw_metrics *m, const char *family, const char *a, const char *b)
{
    for (uint32_t i = 0; i < m->nnamed; i++) {
        struct named *x = &m->named[i];
        if (!strcmp(x->family, family) && !strcmp(x->a, a) && !strcmp(x->b, b)) {
            x->n++;
            return;
        }
    }
    if (m->nnamed == MAX_NAMED)
        return;
    struct named *x = &m->named[m->nnamed++];
    snprintf(x->family, sizeof(x->family), "%s", family);
    snprintf(x->a, sizeof(x->a), "%s", a);
    snprintf(x->b, sizeof(x->b), "%s", b);
    x->n = 1;
}

/* named_inc by n */
static void named_add(struct gw_metrics *m, const char *family, const char *a, const char *b,
                      uint64_t n)
{
    named_inc(m, family, a, b);
    for (uint32_t i = 0; n > 1 && i < m->nnamed; i++) {
        struct named *x = &m->named[i];
        if (!strcmp(x->family, family) && !strcmp(x->a, a) && !strcmp(x->b, b)) {
            x->n += n - 1;
            return;
        }
    }
}

static double secs(uint64_t a, uint64_t b)
{
    return (double)(b - a) / 1e9;
}

void gw_metrics_request(struct gw_metrics *m, const struct gw_request *r)
{
    gw_metrics_request_labeled(m, r, NULL);
}

void gw_metrics_request_labeled(struct gw_metrics *m, const struct gw_request *r,
                                struct gw_labels *out)
{
    pthread_mutex_lock(&m->mu);
    const char *model = model_label(m, r->model);
    const char *tenant = bounded(m->tenants, &m->ntenants, MAX_TENANTS, r->tenant);
    const char *wclass = NULL; /* class_label, once, when a series or out needs it */
    const char *pod = r->d.idx >= 0 && r->pod.name[0] ? r->pod.name : "none";

    const char *outcome = r->outcome ? r->outcome : "ok";
    struct req_series *rs = NULL;
    for (uint32_t i = 0; i < m->nreq && !rs; i++)
        if (m->req[i].status == r->status && !strcmp(m->req[i].model, model) &&
            !strcmp(m->req[i].pod, pod) && !strcmp(m->req[i].outcome, outcome))
            rs = &m->req[i];
    if (!rs && m->nreq < MAX_REQ) {
        rs = &m->req[m->nreq++];
        snprintf(rs->model, sizeof(rs->model), "%s", model);
        snprintf(rs->pod, sizeof(rs->pod), "%s", pod);
        rs->status = r->status;
        rs->outcome = outcome;
    }
    if (rs)
        rs->n++;
    named_inc(m, "path", r->path ? r->path : "socket", "");

    if (r->d.status == ROUTE_OK && r->d.idx >= 0) {
        m->decisions[r->d.mode < POLICY__COUNT ? r->d.mode : 0]
                    [r->d.reason < REASON__COUNT ? r->d.reason : 0]++;
        if (r->index_mode)
            named_inc(m, "index", r->index_mode, "");
        if (r->d.blocks)
            hist_observe(&m->ratio, (double)r->d.prefix_blocks / r->d.blocks);
        if (r->d.shadow_idx >= 0) {
            m->shadow_blocks_actual += r->d.prefix_blocks;
            m->shadow_blocks_shadow += r->d.shadow_prefix_blocks;
            m->shadow_blocks += r->d.blocks;
            if (r->d.shadow_idx == r->d.idx)
                m->shadow_agree++;
            else
                m->shadow_disagree++;
        }
        if (r->fallback)
            named_inc(m, "fallback", r->fallback, "");
    }
    if (r->t_decide && r->t_routed >= r->t_decide)
        hist_observe(&m->decision, secs(r->t_decide, r->t_routed));
    if (r->t_body && r->t_upstream_sent >= r->t_body)
        hist_observe(&m->added, secs(r->t_body, r->t_upstream_sent));

    const char *arm = r->arm ? r->arm : "none";
    if (r->tokens.src != GW_USAGE_NONE) {
        wclass = class_label(m, r);
        struct tok_series *t = tok_get(m, model, tenant, wclass, arm,
                                       r->tokens.src == GW_USAGE_ESTIMATED);
        t->prompt += r->tokens.prompt;
        /* of the prompt tokens (core/report.c clamps the same way) */
        t->cached += r->tokens.cached < r->tokens.prompt ? r->tokens.cached : r->tokens.prompt;
        t->completion += r->tokens.completion;
        if (r->cost >= 0) {
            t->cost += r->cost;
            t->charged += r->tokens.prompt + r->tokens.completion;
        }
    }

    /* latency only for requests a pod answered (routed: they have an
     * arm); a 404, /health or /v1/models mints no series */
    if (r->status == 200 && r->arm) {
        if (!wclass)
            wclass = class_label(m, r);
        struct mt_series *s = mt_get(m, model, tenant, wclass, arm);
        if (r->t_first_token && r->t_first_token >= r->t_start)
            hist_observe(&s->ttft, secs(r->t_start, r->t_first_token));
        if (r->t_end >= r->t_start)
            hist_observe(&s->e2e, secs(r->t_start, r->t_end));
    }
    if (out) {
        out->model = model;
        out->tenant = tenant;
        out->wclass = wclass ? wclass : class_label(m, r);
    }
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_bypass_requests(struct gw_metrics *m, const struct gw_request *r, uint64_t n,
                                uint64_t body)
{
    if (!n && !body)
        return;
    pthread_mutex_lock(&m->mu);
    const char *model = model_label(m, r->model);
    const char *tenant = bounded(m->tenants, &m->ntenants, MAX_TENANTS, r->tenant);
    const char *pod = r->pod.name[0] ? r->pod.name : "none";
    struct bpreq_series *s = NULL;
    for (uint32_t i = 0; i < m->nbpreq && !s; i++)
        if (!strcmp(m->bpreq[i].model, model) && !strcmp(m->bpreq[i].tenant, tenant) &&
            !strcmp(m->bpreq[i].pod, pod))
            s = &m->bpreq[i];
    if (!s && m->nbpreq < MAX_BPREQ) {
        s = &m->bpreq[m->nbpreq++];
        snprintf(s->model, sizeof(s->model), "%s", model);
        snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
        snprintf(s->pod, sizeof(s->pod), "%s", pod);
    }
    if (s) {
        s->n += n;
        s->body += body;
    }
    if (n)
        named_add(m, "path", r->path ? r->path : "bypass", "", n);
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_bypass_ttft(struct gw_metrics *m, const struct gw_request *r, uint32_t n,
                            double seconds)
{
    if (!n || !r->arm) /* latency only for routed requests, as gw_metrics_request */
        return;
    pthread_mutex_lock(&m->mu);
    const char *model = model_label(m, r->model);
    const char *tenant = bounded(m->tenants, &m->ntenants, MAX_TENANTS, r->tenant);
    struct mt_series *s = mt_get(m, model, tenant, class_label(m, r), r->arm);
    for (uint32_t i = 0; i < n; i++)
        hist_observe(&s->ttft, seconds);
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_itl(struct gw_metrics *m, const struct gw_request *r, double seconds)
{
    pthread_mutex_lock(&m->mu);
    const char *model = model_label(m, r->model);
    const char *tenant = bounded(m->tenants, &m->ntenants, MAX_TENANTS, r->tenant);
    struct mt_series *s = mt_get(m, model, tenant, class_label(m, r), r->arm ? r->arm : "none");
    hist_observe(&s->itl, seconds);
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_scrape(struct gw_metrics *m, const char *pod, const char *cause)
{
    pthread_mutex_lock(&m->mu);
    named_inc(m, "scrape", pod, cause ? cause : "ok");
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_retry(struct gw_metrics *m, const char *cause)
{
    pthread_mutex_lock(&m->mu);
    named_inc(m, "retry", cause, "");
    named_inc(m, "fallback", "retry", "");
    pthread_mutex_unlock(&m->mu);
}

void gw_metrics_pod_connect(struct gw_metrics *m)
{
    atomic_fetch_add_explicit(&m->pod_connects, 1, memory_order_relaxed);
}

void gw_metrics_limit(struct gw_metrics *m, const char *which)
{
    pthread_mutex_lock(&m->mu);
    named_inc(m, "limit", which, "");
    pthread_mutex_unlock(&m->mu);
}

int gw_errno_is_local(int err)
{
    if (err < 0)
        err = -err;
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ||
           err == EADDRNOTAVAIL || err == EAGAIN;
}

void gw_metrics_local_error(struct gw_metrics *m, const char *where, int err)
{
    if (err < 0)
        err = -err;
    const char *name = strerrorname_np(err);
    char num[16];
    if (!name) {
        snprintf(num, sizeof(num), "%d", err);
        name = num;
    }
    pthread_mutex_lock(&m->mu);
    named_inc(m, "local", where, name);
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---- */

static void named_out(struct sbuf *o, const struct gw_metrics *m, const char *family,
                      const char *name, const char *help, const char *la, const char *lb)
{
    prom_head(o, name, "counter", help);
    for (uint32_t i = 0; i < m->nnamed; i++) {
        const struct named *x = &m->named[i];
        if (strcmp(x->family, family))
            continue;
        sbuf_printf(o, "%s{", name);
        prom_label(o, la, x->a, 1);
        if (lb)
            prom_label(o, lb, x->b, 0);
        sbuf_puts(o, "}");
        prom_value(o, (double)x->n);
    }
}

static void mt_hist_out(struct sbuf *o, const struct gw_metrics *m, const char *name,
                        const char *help, size_t off)
{
    prom_head(o, name, "histogram", help);
    for (uint32_t i = 0; i < MAX_MT; i++) {
        const struct mt_series *s = &m->mt[i];
        if (i >= m->nmt && !(i == MAX_MT - 1 && s->arm))
            continue;
        struct sbuf l;
        sbuf_init(&l);
        prom_label(&l, "model", s->model, 1);
        prom_label(&l, "tenant", s->tenant, 0);
        prom_label(&l, "class", s->wclass, 0);
        prom_label(&l, "arm", s->arm, 0);
        sbuf_append(&l, "", 1);
        prom_hist(o, name, l.oom ? "" : l.data, (const struct hist *)((const char *)s + off));
        sbuf_free(&l);
    }
}

/* The token counters (under m->mu). */
static void render_tokens(const struct gw_metrics *m, struct sbuf *o)
{
    static const struct {
        const char *name, *help;
        size_t off;
    } F[] = {
        {"kvgate_prompt_tokens_total",
         "Prompt tokens of answered requests, by model, tenant, workload class and arm; "
         "estimated=\"true\": the pod reported no usage, the gateway's own count.",
         offsetof(struct tok_series, prompt)},
        {"kvgate_cached_prompt_tokens_total",
         "Of the prompt tokens, those the pod reported served from its prefix cache "
         "(prompt_tokens_details.cached_tokens; estimated: the gateway index's match on the pod).",
         offsetof(struct tok_series, cached)},
        {"kvgate_completion_tokens_total",
         "Completion tokens of answered requests; estimated=\"true\": events with generated "
         "text the gateway relayed, the pod reported no usage.",
         offsetof(struct tok_series, completion)},
        {"kvgate_cost_tokens_total",
         "Prompt + completion tokens of the requests charged a cost (their pod has a price): "
         "the denominator of cost per token.",
         offsetof(struct tok_series, charged)},
        {"kvgate_cost_total",
         "Cost charged to answered requests: each request's computed tokens (uncached prompt "
         "+ completion) at its pod's cost per computed token over the last minute (the pod's "
         "price x wall time over the tokens it computed).",
         offsetof(struct tok_series, cost)},
    };
    uint32_t n = m->ntok;
    for (size_t f = 0; f < sizeof(F) / sizeof(F[0]); f++) {
        prom_head(o, F[f].name, "counter", F[f].help);
        for (uint32_t i = 0; i < MAX_TOK; i++) {
            const struct tok_series *t = &m->tok[i];
            if (i >= n && !(i == MAX_TOK - 1 && t->arm))
                continue;
            sbuf_printf(o, "%s{", F[f].name);
            prom_label(o, "model", t->model, 1);
            prom_label(o, "tenant", t->tenant, 0);
            prom_label(o, "class", t->wclass, 0);
            prom_label(o, "arm", t->arm, 0);
            prom_label(o, "estimated", t->estimated ? "true" : "false", 0);
            sbuf_puts(o, "}");
            const char *v = (const char *)t + F[f].off;
            prom_value(o, F[f].off == offsetof(struct tok_series, cost) ? *(const double *)v
                                                                        : (double)*(const uint64_t *)v);
        }
    }
}

/* Requests and decisions (under m->mu). */
static void render_decisions(const struct gw_metrics *m, struct sbuf *o)
{
    prom_head(o, "kvgate_requests_total", "counter",
         "Requests answered, by model, pod, HTTP status and outcome (ok, rejected, pod_error, "
         "client_abort, timeout, shutdown).");
    for (uint32_t i = 0; i < m->nreq; i++) {
        char st[16];
        snprintf(st, sizeof(st), "%d", m->req[i].status);
        sbuf_puts(o, "kvgate_requests_total{");
        prom_label(o, "model", m->req[i].model, 1);
        prom_label(o, "pod", m->req[i].pod, 0);
        prom_label(o, "status", st, 0);
        prom_label(o, "outcome", m->req[i].outcome, 0);
        sbuf_puts(o, "}");
        prom_value(o, (double)m->req[i].n);
    }
    static const struct {
        const char *name, *help;
        size_t off;
    } BP[] = {
        {"kvgate_bypass_requests_total",
         "Requests after the first on spliced bypass connections (HTTP/1.1 keep-alive), framed "
         "by XDP and reported by the worker; model and tenant are the connection's first "
         "request's, the pod the one the connection is bound to. Also counted in "
         "kvgate_requests_by_path_total{path=\"bypass\"}; not in kvgate_requests_total "
         "(their status is not seen).",
         offsetof(struct bpreq_series, n)},
        {"kvgate_bypass_request_body_bytes_total",
         "Body bytes (Content-Lengths) of the requests in kvgate_bypass_requests_total, same "
         "labels: their prompt size, as kvgated estimates tokens from bytes (bytes_per_token) "
         "where no tokenizer saw them; at most limits.max_body_bytes a request. Not in "
         "kvgate_prompt_tokens_total: XDP sees no usage, "
         "and counting their prompts without their cached share would understate hit rates.",
         offsetof(struct bpreq_series, body)},
    };
    for (size_t f = 0; f < sizeof(BP) / sizeof(BP[0]); f++) {
        prom_head(o, BP[f].name, "counter", BP[f].help);
        for (uint32_t i = 0; i < m->nbpreq; i++) {
            const struct bpreq_series *b = &m->bpreq[i];
            sbuf_printf(o, "%s{", BP[f].name);
            prom_label(o, "model", b->model, 1);
            prom_label(o, "tenant", b->tenant, 0);
            prom_label(o, "pod", b->pod, 0);
            sbuf_puts(o, "}");
            prom_value(o, (double)*(const uint64_t *)((const char *)b + BP[f].off));
        }
    }
    prom_head(o, "kvgate_decisions_total", "counter", "Routing decisions, by mode and the reason the pod won.");
    for (int md = 0; md < POLICY__COUNT; md++)
        for (int r = 0; r < REASON__COUNT; r++) {
            if (!m->decisions[md][r])
                continue;
            sbuf_puts(o, "kvgate_decisions_total{");
            prom_label(o, "mode", policy_mode_name((enum policy_mode)md), 1);
            prom_label(o, "reason", route_reason_name((enum route_reason)r), 0);
            sbuf_puts(o, "}");
            prom_value(o, (double)m->decisions[md][r]);
        }
}

/* The small labelled counters and the histograms (under m->mu). */
static void render_counters(const struct gw_metrics *m, struct sbuf *o)
{
    named_out(o, m, "fallback", "kvgate_fallbacks_total",
              "Decisions off the happy path: stale_metrics, all_saturated, degraded, bounded_load, retry.",
              "cause", NULL);
    named_out(o, m, "retry", "kvgate_retries_total", "Requests retried on another pod, by cause.",
              "cause", NULL);
    named_out(o, m, "index", "kvgate_index_decisions_total",
              "Prefix-aware decisions by the index that judged the chosen pod: exact (its KV "
              "events), syncing, gapped, approximate.",
              "index", NULL);
    named_out(o, m, "path", "kvgate_requests_by_path_total",
              "Requests answered, by the path that carried them: socket (kvgated's workers) "
              "or bypass (a kvg-bypassd worker, routed over the decision channel; with the "
              "later requests on its spliced connections as the worker reports them).",
              "path", NULL);
    named_out(o, m, "limit", "kvgate_limit_rejections_total",
              "Connections or requests refused by a limit.", "limit", NULL);
    named_out(o, m, "scrape", "kvgate_scrapes_total", "Metric scrapes of pods, by result.",
              "pod", "result");
    prom_head(o, "kvgate_pod_connections_opened_total", "counter",
         "Connections the data path opened to pods (requests on pooled ones open none).");
    sbuf_puts(o, "kvgate_pod_connections_opened_total");
    prom_value(o, (double)atomic_load(&m->pod_connects));
    named_out(o, m, "local", "kvgate_local_errors_total",
              "Failures of this host's own resources (descriptors, memory, local ports), "
              "by where they happened and errno; no pod is blamed for them.",
              "where", "errno");
    prom_head(o, "kvgate_shadow_decisions_total", "counter",
         "Shadow mode: whether the shadow policy agreed with the baseline's pick.");
    sbuf_puts(o, "kvgate_shadow_decisions_total{agree=\"true\"}");
    prom_value(o, (double)m->shadow_agree);
    sbuf_puts(o, "kvgate_shadow_decisions_total{agree=\"false\"}");
    prom_value(o, (double)m->shadow_disagree);
    prom_head(o, "kvgate_shadow_prefix_blocks_total", "counter",
              "Shadow mode: prefix blocks held by the pod each pick chose (pick=\"actual\": the "
              "baseline's, which routed; pick=\"shadow\": the policy's, which would have), and "
              "pick=\"all\": the requests' blocks. shadow / all - actual / all estimates the "
              "policy's hit-rate gain before any traffic moves.");
    sbuf_puts(o, "kvgate_shadow_prefix_blocks_total{pick=\"actual\"}");
    prom_value(o, (double)m->shadow_blocks_actual);
    sbuf_puts(o, "kvgate_shadow_prefix_blocks_total{pick=\"shadow\"}");
    prom_value(o, (double)m->shadow_blocks_shadow);
    sbuf_puts(o, "kvgate_shadow_prefix_blocks_total{pick=\"all\"}");
    prom_value(o, (double)m->shadow_blocks);
    prom_head(o, "kvgate_prefix_match_ratio", "histogram",
         "Share of the request's prefix blocks the chosen pod was believed to hold.");
    prom_hist(o, "kvgate_prefix_match_ratio", "", &m->ratio);
    prom_head(o, "kvgate_decision_seconds", "histogram", "Time to pick a pod.");
    prom_hist(o, "kvgate_decision_seconds", "", &m->decision);
    prom_head(o, "kvgate_gateway_added_seconds", "histogram",
         "From the end of the request body to the request written to the pod.");
    prom_hist(o, "kvgate_gateway_added_seconds", "", &m->added);
    mt_hist_out(o, m, "kvgate_time_to_first_token_seconds",
                "Time to first token as the client saw it, by model, tenant, class and arm.",
                offsetof(struct mt_series, ttft));
    mt_hist_out(o, m, "kvgate_inter_token_latency_seconds",
                "Gaps between streamed events as the client saw them, by model, tenant, class and arm.",
                offsetof(struct mt_series, itl));
    mt_hist_out(o, m, "kvgate_e2e_request_latency_seconds",
                "Whole request latency at the gateway, by model, tenant, class and arm.",
                offsetof(struct mt_series, e2e));
}

/* Per-pod gauges from the snapshot and the shared counters. */
static void render_pods(const struct pod_snapshot *s, const struct pod_counters *c,
                        const struct tokload *tl, uint64_t now_ns, struct sbuf *o)
{
    static const struct {
        const char *name, *help;
    } G[] = {
        {"kvgate_pod_healthy", "1 if the pod's last health check passed."},
        {"kvgate_pod_draining", "1 if the pod is draining (no new requests)."},
        {"kvgate_pod_waiting", "Requests waiting at the pod (scraped)."},
        {"kvgate_pod_running", "Requests running at the pod (scraped)."},
        {"kvgate_pod_kv_usage", "KV-cache usage of the pod, 0..1 (scraped)."},
        {"kvgate_pod_metrics_age_seconds", "Age of the pod's last good scrape (+Inf: never)."},
        {"kvgate_pod_inflight", "Requests the gateway has in flight at the pod, whichever path sent them (kvgated's own and the kernel's on spliced flows)."},
        {"kvgate_pod_failed", "1 while the data path keeps the pod out after a failed connect."},
        {"kvgate_pod_ejected", "1 while the pod is ejected by outlier detection (its answers failed)."},
        {"kvgate_pod_ejections_total", "Times outlier detection ejected the pod."},
        {"kvgate_pod_prefill_tokens", "Uncached prompt tokens the gateway sent to the pod that have no first token yet."},
        {"kvgate_pod_decode_tokens", "Context tokens (prompt + output so far) of the gateway's requests decoding at the pod."},
        {"kvgate_pod_prefill_rate", "Prefill tokens per second the pod retires, as the gateway measures it (0: not yet measured)."},
        {"kvgate_pod_kernel_inflight", "Of kvgate_pod_inflight, requests the kernel sent the pod itself (spliced session flows)."},
    };
    for (size_t k = 0; k < sizeof(G) / sizeof(G[0]); k++) {
        prom_head(o, G[k].name, k == 9 ? "counter" : "gauge", G[k].help);
        for (uint32_t i = 0; i < s->npods; i++) {
            const struct pod_info *p = &s->pods[i];
            double v = 0;
            switch (k) {
            case 0: v = p->healthy; break;
            case 1: v = p->draining; break;
            case 2: v = p->waiting; break;
            case 3: v = p->running; break;
            case 4: v = p->kv_usage; break;
            case 5: v = p->metrics_ok ? secs(p->scraped_ns, now_ns > p->scraped_ns ? now_ns : p->scraped_ns) : INFINITY; break;
            case 6: v = pod_inflight(c, p->slot); break;
            case 7: v = atomic_load(&c->down_until_ns[p->slot]) > now_ns; break;
            case 8: v = atomic_load(&c->ejected_until_ns[p->slot]) > now_ns; break;
            case 9: v = (double)atomic_load(&c->ejections[p->slot]); break;
            case 10: v = tl ? (double)tokload_prefill(tl, p->slot) : 0; break;
            case 11: v = tl ? (double)tokload_decode(tl, p->slot) : 0; break;
            case 12: v = tl ? tokload_rate(tl, p->slot) : 0; break;
            case 13: v = pod_kernel_inflight(c, p->slot); break;
            }
            sbuf_printf(o, "%s{", G[k].name);
            prom_label(o, "pod", p->name, 1);
            sbuf_puts(o, "}");
            prom_value(o, v);
        }
    }
}

void gw_metrics_render(struct gw_metrics *m, const struct pod_snapshot *s,
                       const struct pod_counters *c, const struct tokload *tl,
                       uint64_t now_ns, struct sbuf *o)
{
    pthread_mutex_lock(&m->mu);
    render_decisions(m, o);
    render_tokens(m, o);
    render_counters(m, o);
    pthread_mutex_unlock(&m->mu);
    if (s)
        render_pods(s, c, tl, now_ns, o);
}
