/* accesslog: JSON lines through a bounded ring and a writer thread. See
 * accesslog.h.
 *
 * The ring holds whole lines: a worker copies its line in only if all of
 * it fits (else drops and counts it), under `mu`, which nothing holds
 * across I/O. The writer takes the oldest contiguous bytes, writes them
 * outside the lock, then frees them. It writes at most PIPE_CHUNK bytes
 * after poll() said the fd is writable, so that even a blocking stdout
 * whose reader stalled only ever blocks this thread, and the thread stays
 * responsive to close. */
#include "gateway/accesslog.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/ev.h"
#include "common/sbuf.h"
#include "gateway/gateway.h"

#define PIPE_CHUNK 4096   /* <= PIPE_BUF: a pipe that polls writable takes it */
#define POLL_MS 200       /* the writer re-checks for close this often */

struct accesslog {
    int fd, own;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *ring;
    size_t cap, rd, used;    /* the bytes [rd, rd + used) mod cap are queued */
    int stopping;
    uint64_t stop_deadline;  /* close: give up flushing after this */
};

static atomic_uint_fast64_t dropped_total;

uint64_t accesslog_dropped_total(void)
{
    return atomic_load_explicit(&dropped_total, memory_order_relaxed);
}

void accesslog_metrics_render(struct sbuf *o)
{
    sbuf_puts(o, "# HELP kvgate_access_log_dropped_total Access-log lines dropped because "
                 "the log's reader or disk did not keep up (the data path never waits for "
                 "it).\n# TYPE kvgate_access_log_dropped_total counter\n");
    sbuf_printf(o, "kvgate_access_log_dropped_total %llu\n",
                (unsigned long long)accesslog_dropped_total());
}

static uint64_t count_lines(const char *p, size_t n)
{
    uint64_t k = 0;
    for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
        k++;
    return k;
}

/* Writes up to n bytes of p: waits (poll) until the fd takes some, in
 * slices so that close is noticed. The bytes written, or 0 when closing
 * ran out of time, or -1 on a write error. */
static ssize_t write_some(struct accesslog *a, const char *p, size_t n)
{
    if (n > PIPE_CHUNK)
        n = PIPE_CHUNK;
    for (;;) {
        struct pollfd pf = {.fd = a->fd, .events = POLLOUT};
        int pr = poll(&pf, 1, POLL_MS);
        if (pr > 0) {
            ssize_t w = write(a->fd, p, n);
            if (w > 0)
                return w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
        } else if (pr < 0 && errno != EINTR) {
            return -1;
        }
        pthread_mutex_lock(&a->mu);
        int late = a->stopping && ev_now_ns() >= a->stop_deadline;
        pthread_mutex_unlock(&a->mu);
        if (late)
            return 0;
    }
}

static void *writer(void *arg)
{
    struct accesslog *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->used && !a->stopping)
            pthread_cond_wait(&a->cv, &a->mu);
        if (!a->used)
            break; /* stopping, and everything is out */
        size_t rd = a->rd, n = a->used;
        if (n > a->cap - rd)
            n = a->cap - rd; /* up to the ring's end */
        pthread_mutex_unlock(&a->mu);
        ssize_t w = write_some(a, a->ring + rd, n);
        pthread_mutex_lock(&a->mu);
        if (w <= 0) {
            /* a dead fd, or close ran out of time: what is left is lost */
            size_t first = a->cap - a->rd < a->used ? a->cap - a->rd : a->used;
            uint64_t lost = count_lines(a->ring + a->rd, first) +
                            count_lines(a->ring, a->used - first);
            atomic_fetch_add_explicit(&dropped_total, lost, memory_order_relaxed);
            a->rd = a->used = 0;
            if (a->stopping)
                break;
            continue; /* write error: keep going (later lines may fare better) */
        }
        a->rd = (a->rd + (size_t)w) % a->cap;
        a->used -= (size_t)w;
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

struct accesslog *accesslog_open(const char *path, size_t buffer_bytes)
{
    if (!path || !*path) {
        errno = 0;
        return NULL;
    }
    struct accesslog *a = kv_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->cap = buffer_bytes ? buffer_bytes : ACCESSLOG_BUFFER_DEFAULT;
    a->ring = kv_malloc(a->cap);
    if (!a->ring) {
        kv_free(a);
        errno = ENOMEM;
        return NULL;
    }
    if (!strcmp(path, "-")) {
        a->fd = STDOUT_FILENO; /* shared: its flags stay as they are */
    } else {
        a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        a->own = 1;
        if (a->fd < 0) {
            int e = errno;
            kv_free(a->ring);
            kv_free(a);
            errno = e;
            return NULL;
        }
        /* ours alone: never block in write(), poll() says when */
        fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) | O_NONBLOCK);
    }
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    /* the thread takes no signals: main reads them from a signalfd */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&a->th, NULL, writer, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        if (a->own)
            close(a->fd);
        kv_free(a->ring);
        kv_free(a);
        errno = rc;
        return NULL;
    }
    return a;
}

void accesslog_close(struct accesslog *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    a->stopping = 1;
    a->stop_deadline = ev_now_ns() + ACCESSLOG_CLOSE_NS;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->th, NULL);
    if (a->own)
        close(a->fd);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    kv_free(a->ring);
    kv_free(a);
}

void accesslog_line(struct accesslog *a, const char *line, size_t len)
{
    if (!a || !len)
        return;
    pthread_mutex_lock(&a->mu);
    if (a->stopping || len > a->cap - a->used) {
        pthread_mutex_unlock(&a->mu);
        atomic_fetch_add_explicit(&dropped_total, 1, memory_order_relaxed);
        return;
    }
    size_t wr = (a->rd + a->used) % a->cap;
    size_t first = len < a->cap - wr ? len : a->cap - wr;
    memcpy(a->ring + wr, line, first);
    memcpy(a->ring, line + first, len - first);
    int was_empty = a->used == 0;
    a->used += len;
    if (was_empty)
        pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
}

static void str(struct sbuf *b, const char *k, const char *v)
{
    sbuf_printf(b, ",\"%s\":\"", k);
    sbuf_json_escape(b, v, strlen(v));
    sbuf_puts(b, "\"");
}

/* ,"key":N without printf (the token fields, issue 13's overhead) */
static void u64_field(struct sbuf *b, const char *k, uint64_t v)
{
    char d[24];
    int i = (int)sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    sbuf_puts(b, k);
    sbuf_append(b, d + i, sizeof(d) - (size_t)i);
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
    if (r->wclass[0])
        str(&b, "class", r->wclass);
    sbuf_printf(&b, ",\"status\":%d,\"stream\":%s", r->status, r->stream ? "true" : "false");
    if (r->outcome)
        str(&b, "outcome", r->outcome);
    if (r->path)
        str(&b, "path", r->path);
    if (r->conn_requests) /* bypass: the connection's later requests (decide_srv.c) */
        sbuf_printf(&b, ",\"conn_requests\":%u,\"conn_body_bytes\":%llu", r->conn_requests,
                    (unsigned long long)r->conn_body_bytes);
    if (r->unframed)
        str(&b, "unframed", r->unframed);
    if (r->d.idx >= 0 && r->pod.name[0]) {
        str(&b, "pod", r->pod.name);
        str(&b, "mode", policy_mode_name(r->d.mode));
        str(&b, "reason", route_reason_name(r->d.reason));
        sbuf_printf(&b, ",\"prefix_blocks\":%u,\"blocks\":%u,\"candidates\":%u,\"stale\":%u",
                    r->d.prefix_blocks, r->d.blocks, r->d.candidates, r->d.stale);
        if (r->index_mode)
            str(&b, "index", r->index_mode);
        if (r->arm)
            str(&b, "arm", r->arm);
        if (r->d.degraded)
            sbuf_puts(&b, ",\"degraded\":true");
        if (r->d.all_saturated)
            sbuf_puts(&b, ",\"all_saturated\":true");
        if (r->d.ejected)
            sbuf_printf(&b, ",\"ejected\":%u", r->d.ejected); /* candidates left out */
        if (r->d.shadow_idx >= 0)
            sbuf_printf(&b, ",\"shadow_agrees\":%s,\"shadow_prefix_blocks\":%u",
                        r->d.shadow_idx == r->d.idx ? "true" : "false", r->d.shadow_prefix_blocks);
    }
    if (r->tokens.src != GW_USAGE_NONE) { /* accounting.h; on every answered request */
        u64_field(&b, ",\"prompt_tokens\":", r->tokens.prompt);
        u64_field(&b, ",\"cached_tokens\":", r->tokens.cached);
        u64_field(&b, ",\"completion_tokens\":", r->tokens.completion);
        sbuf_puts(&b, r->tokens.src == GW_USAGE_ESTIMATED ? ",\"usage_estimated\":true"
                                                          : ",\"usage_estimated\":false");
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
    if (b.oom)
        atomic_fetch_add_explicit(&dropped_total, 1, memory_order_relaxed);
    else
        accesslog_line(a, b.data, b.len);
    sbuf_free(&b);
}
