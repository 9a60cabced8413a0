/* accesslog: JSON lines. See accesslog.h. */
#include "gateway/accesslog.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/sbuf.h"
#include "gateway/gateway.h"

struct accesslog {
    pthread_mutex_t mu;
    FILE *f;
    int own;
};

struct accesslog *accesslog_open(const char *path)
{
    if (!path || !*path) {
        errno = 0;
        return NULL;
    }
    struct accesslog *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    if (!strcmp(path, "-")) {
        a->f = stdout;
    } else {
        a->f = fopen(path, "a");
        a->own = 1;
        if (!a->f) {
            int e = errno;
            free(a);
            errno = e;
            return NULL;
        }
    }
    pthread_mutex_init(&a->mu, NULL);
    return a;
}

void accesslog_close(struct accesslog *a)
{
    if (!a)
        return;
    if (a->own)
        fclose(a->f);
    else
        fflush(a->f);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static void str(struct sbuf *b, const char *k, const char *v)
{
    sbuf_printf(b, ",\"%s\":\"", k);
    sbuf_json_escape(b, v, strlen(v));
    sbuf_puts(b, "\"");
}

static double ms(uint64_t a, uint64_t b)
{
    return a && b && b >= a ? (double)(b - a) / 1e6 : -1;
}

void accesslog_write(struct accesslog *a, const struct gw_request *r)
{
    if (!a)
        return;
    struct sbuf b;
    sbuf_init(&b);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sbuf_printf(&b, "{\"ts\":%lld.%03ld", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
    str(&b, "model", r->model);
    if (r->tenant[0])
        str(&b, "tenant", r->tenant);
    if (r->session[0])
        str(&b, "session", r->session);
    sbuf_printf(&b, ",\"status\":%d,\"stream\":%s", r->status, r->stream ? "true" : "false");
    if (r->outcome)
        str(&b, "outcome", r->outcome);
    if (r->d.idx >= 0 && r->pod.name[0]) {
        str(&b, "pod", r->pod.name);
        str(&b, "mode", policy_mode_name(r->d.mode));
        str(&b, "reason", route_reason_name(r->d.reason));
        sbuf_printf(&b, ",\"prefix_blocks\":%u,\"blocks\":%u,\"candidates\":%u,\"stale\":%u",
                    r->d.prefix_blocks, r->nkeys, r->d.candidates, r->d.stale);
        if (r->d.degraded)
            sbuf_puts(&b, ",\"degraded\":true");
        if (r->d.all_saturated)
            sbuf_puts(&b, ",\"all_saturated\":true");
        if (r->d.ejected)
            sbuf_printf(&b, ",\"ejected\":%u", r->d.ejected); /* candidates left out */
        if (r->d.shadow_idx >= 0)
            sbuf_printf(&b, ",\"shadow_agrees\":%s", r->d.shadow_idx == r->d.idx ? "true" : "false");
    }
    if (r->fallback)
        str(&b, "fallback", r->fallback);
    if (r->retries)
        sbuf_printf(&b, ",\"retries\":%d", r->retries);
    if (r->error)
        str(&b, "error", r->error);
    sbuf_printf(&b, ",\"decision_us\":%.1f,\"ttft_ms\":%.3f,\"e2e_ms\":%.3f,\"events\":%u,\"bytes_in\":%llu}\n",
                r->t_decide && r->t_routed ? (double)(r->t_routed - r->t_decide) / 1e3 : -1,
                ms(r->t_start, r->t_first_token), ms(r->t_start, r->t_end), r->events,
                (unsigned long long)r->body_bytes);
    if (!b.oom) {
        pthread_mutex_lock(&a->mu);
        fwrite(b.data, 1, b.len, a->f);
        fflush(a->f);
        pthread_mutex_unlock(&a->mu);
    }
    sbuf_free(&b);
}
