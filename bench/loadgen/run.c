/* run: schedule, timeouts, follow-ups, progress, stop. See run.h. */
#include "run.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "stream.h"

#define PROGRESS_NS 1000000000ull
#define STOP_SLACK_NS 10000000000ull /* safety net past every timeout */

/* ---- targets ---- */

static int parse_target(struct lg_target *t, const char *url, char *err, size_t errlen)
{
    const char *p = url;
    if (!strncmp(p, "http://", 7))
        p += 7;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "--target %s: only http:// is supported", url);
        return -1;
    }
    char host[256], port[16] = "80";
    size_t hl;
    const char *end = p + strcspn(p, "/");
    if (*p == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb)
            goto bad;
        hl = (size_t)(rb - p - 1);
        if (hl >= sizeof(host))
            goto bad;
        memcpy(host, p + 1, hl);
        host[hl] = 0;
        p = rb + 1;
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        const char *he = colon ? colon : end;
        hl = (size_t)(he - p);
        if (!hl || hl >= sizeof(host))
            goto bad;
        memcpy(host, p, hl);
        host[hl] = 0;
        p = he;
    }
    if (*p == ':') {
        size_t pl = (size_t)(end - p - 1);
        if (!pl || pl >= sizeof(port) || strspn(p + 1, "0123456789") < pl)
            goto bad;
        memcpy(port, p + 1, pl);
        port[pl] = 0;
    } else if (p != end) {
        goto bad;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        snprintf(err, errlen, "--target %s: %s", url, gai_strerror(rc));
        return -1;
    }
    memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
    t->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(t->url, sizeof(t->url), "%s", url);
    const char *auth = url + (strncmp(url, "http://", 7) ? 0 : 7);
    snprintf(t->authority, sizeof(t->authority), "%.*s", (int)(end - auth), auth);
    return 0;
bad:
    snprintf(err, errlen, "--target %s: expected http://host:port", url);
    return -1;
}

/* ---- helpers ---- */

static double sim_ms(const struct lg_run *run, uint64_t ns)
{
    return (double)ns / run->ns_per_sim_s * 1000.0;
}

static void finish_one(struct lg_run *run)
{
    run->n_finished++;
    if (run->n_finished >= run->nreqs)
        ev_stop(run->loop);
}

/* A request that will never be sent. */
static void not_sent(struct lg_run *run, struct lg_req *r, const char *why)
{
    if (r->state == LG_R_DONE)
        return;
    r->state = LG_R_DONE;
    lg_req_fail(r, LG_E_NOT_SENT, why);
    finish_one(run);
}

static void on_timeout(struct ev_loop *l, void *arg);

static void dispatch(struct lg_run *run, struct lg_req *r, uint64_t now)
{
    if (r->state != LG_R_WAITING)
        return;
    r->state = LG_R_QUEUED;
    r->target = (uint16_t)(run->rr++ % run->ntargets);
    run->targets[r->target].dispatched++;
    run->n_dispatched++;
    run->n_inflight++;
    r->timer = ev_timer_at(run->loop, now + run->timeout_ns, on_timeout, r);
    run->tp->submit(run, r);
}

static void on_timeout(struct ev_loop *l, void *arg)
{
    struct lg_req *r = arg;
    struct lg_run *run = r->run;
    r->timer = 0;
    if (r->state == LG_R_DONE)
        return;
    run->tp->cancel(run, r);
    lg_req_fail(r, LG_E_TIMEOUT, r->state == LG_R_QUEUED ? "timed out waiting for a connection"
                                                          : "timed out");
    lg_run_done(run, r, ev_now_ns(), 0);
}

static void on_dispatch(struct ev_loop *l, void *arg)
{
    struct lg_run *run = arg;
    run->disp_timer = 0;
    uint64_t now = ev_now_ns();
    struct lg_workload *wl = run->wl;
    while (run->cursor < wl->norder && !run->interrupted) {
        struct lg_req *r = &run->reqs[wl->order[run->cursor]];
        if (r->sched_ns > now) {
            run->disp_timer = ev_timer_at(l, r->sched_ns, on_dispatch, run);
            return;
        }
        run->cursor++;
        dispatch(run, r, now);
    }
}

static void on_turn_due(struct ev_loop *l, void *arg)
{
    struct lg_req *r = arg;
    r->timer = 0;
    if (!r->run->interrupted)
        dispatch(r->run, r, ev_now_ns());
}

/* ---- transport callbacks ---- */

int lg_run_build(struct lg_run *run, struct lg_req *r)
{
    /* a resend starts the record over, except the send time */
    free(r->itl_us);
    r->itl_us = NULL;
    r->n_itl = r->cap_itl = r->n_content = 0;
    r->first_ns = r->last_ns = 0;
    r->status = 0;
    r->has_usage = 0;
    r->pod[0] = 0;
    sbuf_reset(&run->body);
    sbuf_reset(&run->rendered);
    int rc = lg_wl_build(run->wl, r->id, &run->body, r->built ? NULL : &run->rendered,
                         &run->meta, 0);
    if (!rc && !r->built) {
        r->est_prompt = run->meta.prompt_tokens;
        r->ideal_hit = lg_ideal_add(&run->ideal, run->meta.model, run->rendered.data,
                                    run->rendered.len);
        r->ideal_finite_hit = run->ideal.last_finite_hit;
        r->built = 1;
    }
    if (!rc)
        rc = lg_stream_open(r, lg_wl_next_turn(run->wl, r->id) >= 0);
    if (rc)
        lg_req_fail(r, LG_E_BUILD, "could not build the request");
    return rc;
}

void lg_run_sent(struct lg_run *run, struct lg_req *r, uint64_t now)
{
    if (r->send_ns)
        return; /* a resend keeps the first send time */
    r->send_ns = now;
    r->state = LG_R_SENT;
    run->n_sent++;
    uint64_t lag = now > r->sched_ns ? now - r->sched_ns : 0;
    run->lag_last = lag;
    if (lag > run->lag_window_max)
        run->lag_window_max = lag;
}

static void end_session(struct lg_run *run, size_t i)
{
    for (long j = lg_wl_next_turn(run->wl, i); j >= 0; j = lg_wl_next_turn(run->wl, (size_t)j))
        not_sent(run, &run->reqs[j], "an earlier turn of its session failed");
}

void lg_run_done(struct lg_run *run, struct lg_req *r, uint64_t now, int complete)
{
    if (r->state == LG_R_DONE)
        return;
    if (r->timer) {
        ev_timer_cancel(run->loop, r->timer);
        r->timer = 0;
    }
    if (complete)
        lg_stream_end(r, now);
    else if (r->err == LG_OK)
        lg_req_fail(r, LG_E_CLOSED, "connection lost");
    r->end_ns = now;
    r->conn = NULL;
    r->state = LG_R_DONE;
    run->n_inflight--;
    if (now > run->t_end)
        run->t_end = now;
    if (r->err == LG_OK)
        run->n_ok++;
    else
        run->n_failed++;
    long next = lg_wl_next_turn(run->wl, r->id);
    if (next >= 0) {
        if (r->err == LG_OK && !run->interrupted) {
            struct lg_req *n = &run->reqs[next];
            lg_wl_set_answer(run->wl, r->id, r->st ? r->st->text.data : "",
                             r->st ? r->st->text.len : 0);
            n->sched_ns = now + run->think_ns;
            run->wl->items[next].sched_s = (double)(n->sched_ns - run->t0) / run->ns_per_sim_s;
            n->timer = ev_timer_at(run->loop, n->sched_ns, on_turn_due, n);
            if (!n->timer)
                not_sent(run, n, "out of timers");
        } else {
            end_session(run, r->id);
        }
    }
    lg_stream_close(r);
    finish_one(run);
}

/* ---- progress, stop ---- */

static void on_progress(struct ev_loop *l, void *arg)
{
    struct lg_run *run = arg;
    size_t conns = 0, queued = 0;
    run->tp->gauges(run, &conns, &queued);
    if (!run->cfg->quiet)
        fprintf(stderr,
                "[%6.1fs] sent %zu/%zu  done %zu  in flight %zu  errors %zu  queued %zu  "
                "conns %zu  lag %.1f ms (max %.1f)\n",
                (double)(ev_now_ns() - run->t0) / 1e9, run->n_sent, run->nreqs,
                run->n_ok + run->n_failed, run->n_inflight, run->n_failed, queued, conns,
                sim_ms(run, run->lag_last), sim_ms(run, run->lag_window_max));
    run->lag_window_max = 0;
    run->prog_timer = ev_timer_at(l, ev_now_ns() + PROGRESS_NS, on_progress, run);
}

static void interrupt(struct lg_run *run, const char *why)
{
    if (run->interrupted)
        return;
    run->interrupted = 1;
    uint64_t now = ev_now_ns();
    for (size_t i = 0; i < run->nreqs; i++) {
        struct lg_req *r = &run->reqs[i];
        if (r->state == LG_R_WAITING) {
            if (r->timer)
                ev_timer_cancel(run->loop, r->timer);
            r->timer = 0;
            not_sent(run, r, why);
        } else if (r->state != LG_R_DONE) {
            run->tp->cancel(run, r);
            lg_req_fail(r, LG_E_INTERRUPTED, why);
            lg_run_done(run, r, now, 0);
        }
    }
    ev_stop(run->loop);
}

static void on_stop_deadline(struct ev_loop *l, void *arg)
{
    struct lg_run *run = arg;
    run->stop_timer = 0;
    fprintf(stderr, "loadgen: run deadline passed; stopping what is left\n");
    interrupt(run, "run deadline passed");
}

static void on_signal(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct lg_run *run = arg;
    struct signalfd_siginfo si;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    }
    fprintf(stderr, "loadgen: interrupted; reporting what finished\n");
    interrupt(run, "interrupted");
}

/* ---- life cycle ---- */

int lg_run_init(struct lg_run *run, const struct lg_cfg *cfg, struct lg_workload *wl,
                char *err, size_t errlen)
{
    memset(run, 0, sizeof(*run));
    run->cfg = cfg;
    run->wl = wl;
    run->sigfd = -1;
    sbuf_init(&run->body);
    sbuf_init(&run->rendered);
    lg_ideal_init(&run->ideal);
    lg_ideal_set_capacity(&run->ideal, cfg->fleet_kv_blocks); /* checked by main */
    run->ns_per_sim_s = 1e9 * cfg->time_scale;
    run->timeout_ns = (uint64_t)(cfg->timeout_s * run->ns_per_sim_s);
    run->think_ns = (uint64_t)(wl->spec.think_ms / 1000.0 * run->ns_per_sim_s);
    if (!cfg->ntargets) {
        snprintf(err, errlen, "at least one --target is needed");
        return -1;
    }
    for (size_t k = 0; k < cfg->ntargets; k++)
        if (parse_target(&run->targets[k], cfg->targets[k], err, errlen))
            return -1;
    run->ntargets = cfg->ntargets;
    static const struct lg_transport *const transports[] = { &lg_h1_transport,
                                                             &lg_h2c_transport };
    const char *want = cfg->transport ? cfg->transport : transports[0]->name;
    for (size_t k = 0; k < sizeof(transports) / sizeof(transports[0]); k++)
        if (!strcmp(transports[k]->name, want))
            run->tp = transports[k];
    if (!run->tp) {
        snprintf(err, errlen, "--transport %s: not available (http1, h2c)", want);
        return -1;
    }
    run->nreqs = wl->n;
    run->reqs = calloc(run->nreqs ? run->nreqs : 1, sizeof(*run->reqs));
    run->loop = ev_new();
    if (!run->reqs || !run->loop) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < run->nreqs; i++) {
        run->reqs[i].id = (uint32_t)i;
        run->reqs[i].run = run;
        run->reqs[i].sched_ns = UINT64_MAX;
        run->reqs[i].model = wl->items[i].model;
    }
    if (run->tp->init(run, err, errlen))
        return -1;
    return 0;
}

int lg_run_go(struct lg_run *run)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    run->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (run->sigfd >= 0)
        ev_add(run->loop, run->sigfd, EPOLLIN, on_signal, run);

    struct lg_workload *wl = run->wl;
    run->t0 = ev_now_ns();
    run->t_end = run->t0;
    double last_s = 0;
    for (size_t k = 0; k < wl->norder; k++) {
        uint32_t i = wl->order[k];
        double s = wl->items[i].sched_s;
        run->reqs[i].sched_ns = run->t0 + (uint64_t)(s * run->ns_per_sim_s);
        if (s > last_s)
            last_s = s;
    }
    /* safety net: every request is bounded by its timeout; sessions by
     * turns x (timeout + think) */
    uint32_t turns = wl->spec.kind == LG_WL_MULTI_TURN ? wl->spec.turns : 1;
    uint64_t span = (uint64_t)(last_s * run->ns_per_sim_s) +
                    turns * (run->timeout_ns + run->think_ns) + STOP_SLACK_NS;
    run->stop_timer = ev_timer_at(run->loop, run->t0 + span, on_stop_deadline, run);
    run->prog_timer = ev_timer_at(run->loop, run->t0 + PROGRESS_NS, on_progress, run);
    int rc = 0;
    if (run->nreqs) {
        on_dispatch(run->loop, run);
        rc = ev_run(run->loop);
    }
    if (run->prog_timer)
        ev_timer_cancel(run->loop, run->prog_timer);
    if (run->stop_timer)
        ev_timer_cancel(run->loop, run->stop_timer);
    if (run->disp_timer)
        ev_timer_cancel(run->loop, run->disp_timer);
    if (!run->interrupted && run->n_finished < run->nreqs)
        interrupt(run, "event loop stopped");
    if (run->sigfd >= 0) {
        ev_del(run->loop, run->sigfd);
        close(run->sigfd);
        run->sigfd = -1;
    }
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    return rc;
}

void lg_run_free(struct lg_run *run)
{
    if (run->tp && run->tpd)
        run->tp->fini(run);
    if (run->reqs) {
        for (size_t i = 0; i < run->nreqs; i++) {
            lg_stream_close(&run->reqs[i]);
            free(run->reqs[i].itl_us);
            free(run->reqs[i].errmsg);
        }
        free(run->reqs);
    }
    if (run->loop)
        ev_free(run->loop);
    sbuf_free(&run->body);
    sbuf_free(&run->rendered);
    lg_ideal_free(&run->ideal);
    memset(run, 0, sizeof(*run));
}
