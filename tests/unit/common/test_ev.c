/* Unit tests for user/common/ev.c */
#include "common/ev.h"
#include "common/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "harness.h"

#define MS 1000000ull

struct log {
    int seq[64];
    int n;
};

struct tctx {
    struct log *log;
    int tag;
    struct ev_loop *l;
    uint64_t cancel_id; /* cancelled by this timer's callback */
    int stop;
};

static void t_record(struct ev_loop *l, void *arg)
{
    struct tctx *t = arg;
    if (t->log->n < 64)
        t->log->seq[t->log->n++] = t->tag;
    if (t->cancel_id)
        ev_timer_cancel(l, t->cancel_id);
    if (t->stop)
        ev_stop(l);
}

TEST(timer_ordering)
{
    struct ev_loop *l = ev_new();
    struct log log = { .n = 0 };
    uint64_t now = ev_now_ns();
    /* Deadlines out of insertion order; ties fire in creation order. */
    int at_ms[] = { 30, 10, 20, 10, 5, 25 };
    struct tctx t[7];
    uint64_t prev = 0;
    for (int i = 0; i < 6; i++) {
        t[i] = (struct tctx){ .log = &log, .tag = i };
        uint64_t id = ev_timer_at(l, now + at_ms[i] * MS, t_record, &t[i]);
        CHECK(id > prev); /* monotonically increasing */
        prev = id;
    }
    t[6] = (struct tctx){ .log = &log, .tag = 6, .stop = 1 };
    ev_timer_at(l, now + 40 * MS, t_record, &t[6]);
    CHECK_EQ(ev_run(l), 0);
    int want[] = { 4, 1, 3, 2, 5, 0, 6 };
    CHECK_EQ(log.n, 7);
    for (int i = 0; i < 7; i++)
        CHECK_EQ(log.seq[i], want[i]);
    CHECK(ev_now_ns() - now >= 40 * MS);
    ev_free(l);
}

TEST(timer_cancel)
{
    struct ev_loop *l = ev_new();
    struct log log = { .n = 0 };
    uint64_t now = ev_now_ns();
    struct tctx t[40];
    uint64_t ids[40];
    /* Many timers; cancel every third one, including the heap root. */
    for (int i = 0; i < 40; i++) {
        t[i] = (struct tctx){ .log = &log, .tag = i };
        ids[i] = ev_timer_at(l, now + (uint64_t)((i * 7) % 40) * MS / 4, t_record, &t[i]);
    }
    for (int i = 0; i < 40; i += 3)
        ev_timer_cancel(l, ids[i]);
    ev_timer_cancel(l, ids[0]);   /* twice: no-op */
    ev_timer_cancel(l, 0);        /* never valid */
    ev_timer_cancel(l, 12345678); /* unknown */
    /* Timer 1 cancels timer 2 from its callback (2 would fire later). */
    t[1].cancel_id = ids[2];
    struct tctx stop = { .log = &log, .tag = 99, .stop = 1 };
    ev_timer_at(l, now + 20 * MS, t_record, &stop);
    ev_run(l);
    int fired[40] = { 0 };
    int last_at = -1, ordered = 1;
    for (int i = 0; i < log.n - 1; i++) {
        int tag = log.seq[i];
        fired[tag]++;
        int at = (tag * 7) % 40;
        ordered &= at >= last_at;
        last_at = at;
    }
    CHECK(ordered);
    CHECK_EQ(log.seq[log.n - 1], 99);
    for (int i = 0; i < 40; i++) {
        int want = i % 3 != 0 && i != 2;
        if (fired[i] != want)
            fprintf(stderr, "  timer %d fired %d times\n", i, fired[i]);
        CHECK_EQ(fired[i], want);
    }
    /* Cancelling an id that already fired is a no-op, even once its pool
     * slot was reused by a new timer. */
    struct tctx late = { .log = &log, .tag = 77, .stop = 1 };
    ev_timer_at(l, ev_now_ns(), t_record, &late);
    ev_timer_cancel(l, ids[1]);
    int n0 = log.n;
    ev_run(l);
    CHECK_EQ(log.n, n0 + 1);
    CHECK_EQ(log.seq[log.n - 1], 77);
    ev_free(l);
}

struct chain {
    struct ev_loop *l;
    int left;
    uint64_t self_id;
    int self_cancel_ok;
};

static void t_chain(struct ev_loop *l, void *arg)
{
    struct chain *c = arg;
    ev_timer_cancel(l, c->self_id); /* cancelling itself while firing: no-op */
    c->self_cancel_ok = 1;
    if (--c->left == 0) {
        ev_stop(l);
        return;
    }
    /* Re-arm at "now": must not starve the loop (fires next iteration). */
    c->self_id = ev_timer_at(l, ev_now_ns(), t_chain, c);
}

TEST(timer_from_callback)
{
    struct ev_loop *l = ev_new();
    struct chain c = { .l = l, .left = 1000 };
    c.self_id = ev_timer_at(l, ev_now_ns(), t_chain, &c);
    CHECK(c.self_id != 0);
    CHECK_EQ(ev_run(l), 0);
    CHECK_EQ(c.left, 0);
    CHECK(c.self_cancel_ok);
    ev_free(l);
}

struct pipe_ctx {
    int rfd[2];
    int calls[2];
    int del_other;   /* first callback removes the other read end */
    struct ev_loop *l;
};

static void on_read(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct pipe_ctx *p = arg;
    int idx = fd == p->rfd[0] ? 0 : 1;
    p->calls[idx]++;
    char buf[64];
    ssize_t n = read(fd, buf, sizeof(buf));
    (void)n;
    if (p->del_other) {
        /* Both pipes are ready in the same batch: whichever runs first
         * removes the other, which must then not be called. */
        ev_del(l, p->rfd[1 - idx]);
        p->del_other = 0;
    }
}

static void t_stop(struct ev_loop *l, void *arg)
{
    ev_stop(l);
}

TEST(fd_readiness)
{
    struct ev_loop *l = ev_new();
    int a[2], b[2];
    CHECK_EQ(pipe2(a, O_NONBLOCK), 0);
    CHECK_EQ(pipe2(b, O_NONBLOCK), 0);
    struct pipe_ctx p = { .rfd = { a[0], b[0] }, .l = l };
    CHECK_EQ(ev_add(l, a[0], EPOLLIN, on_read, &p), 0);
    CHECK_EQ(ev_add(l, b[0], EPOLLIN, on_read, &p), 0);
    CHECK_EQ(ev_add(l, a[0], EPOLLIN, on_read, &p), -EEXIST);
    CHECK_EQ(ev_mod(l, 1000, EPOLLIN), -ENOENT);
    /* Nothing written yet: a short run sees no callback. */
    ev_timer_at(l, ev_now_ns() + 5 * MS, t_stop, NULL);
    ev_run(l);
    CHECK_EQ(p.calls[0] + p.calls[1], 0);
    /* Write to one pipe. */
    CHECK_EQ(write(a[1], "x", 1), 1);
    ev_timer_at(l, ev_now_ns() + 5 * MS, t_stop, NULL);
    ev_run(l);
    CHECK_EQ(p.calls[0], 1);
    CHECK_EQ(p.calls[1], 0);
    /* Disable with ev_mod(0): data pending but no callback. */
    CHECK_EQ(ev_mod(l, a[0], 0), 0);
    CHECK_EQ(write(a[1], "y", 1), 1);
    ev_timer_at(l, ev_now_ns() + 5 * MS, t_stop, NULL);
    ev_run(l);
    CHECK_EQ(p.calls[0], 1);
    CHECK_EQ(ev_mod(l, a[0], EPOLLIN), 0);
    /* Both ready in one batch; the first callback deletes the other. */
    CHECK_EQ(write(b[1], "z", 1), 1);
    p.del_other = 1;
    ev_timer_at(l, ev_now_ns() + 5 * MS, t_stop, NULL);
    ev_run(l);
    CHECK_EQ(p.calls[0] + p.calls[1], 2); /* 1 before + exactly 1 now */
    ev_del(l, a[0]);
    ev_del(l, b[0]);
    CHECK_EQ(ev_del(l, a[0]), -ENOENT);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    ev_free(l);
}

static void on_self_del(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    int *calls = arg;
    (*calls)++;
    ev_del(l, fd); /* level-triggered data still pending: must not repeat */
}

TEST(ev_del_self_inside_callback)
{
    struct ev_loop *l = ev_new();
    int a[2];
    CHECK_EQ(pipe2(a, O_NONBLOCK), 0);
    int calls = 0;
    ev_add(l, a[0], EPOLLIN, on_self_del, &calls);
    CHECK_EQ(write(a[1], "x", 1), 1);
    ev_timer_at(l, ev_now_ns() + 10 * MS, t_stop, NULL);
    ev_run(l);
    CHECK_EQ(calls, 1);
    /* Re-adding the same fd number works and gets a fresh registration. */
    CHECK_EQ(ev_add(l, a[0], EPOLLIN, on_self_del, &calls), 0);
    ev_timer_at(l, ev_now_ns() + 10 * MS, t_stop, NULL);
    ev_run(l);
    CHECK_EQ(calls, 2);
    close(a[0]);
    close(a[1]);
    ev_free(l);
}

/* Callback adds a high-numbered fd (forces the registration table to grow
 * while the dispatch loop is running). */
struct grow_ctx {
    int hi;
    int hi_calls;
};

static void on_hi(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct grow_ctx *g = arg;
    g->hi_calls++;
    ev_del(l, fd);
    ev_stop(l);
}

static void on_lo(struct ev_loop *l, int fd, uint32_t events, void *arg)
{
    struct grow_ctx *g = arg;
    char c;
    ssize_t n = read(fd, &c, 1);
    (void)n;
    ev_add(l, g->hi, EPOLLIN, on_hi, g);
}

TEST(add_fd_from_callback_grows_table)
{
    struct ev_loop *l = ev_new();
    int a[2], b[2];
    CHECK_EQ(pipe2(a, O_NONBLOCK), 0);
    CHECK_EQ(pipe2(b, O_NONBLOCK), 0);
    int hi = fcntl(b[0], F_DUPFD_CLOEXEC, 900);
    CHECK(hi >= 900);
    struct grow_ctx g = { .hi = hi };
    ev_add(l, a[0], EPOLLIN, on_lo, &g);
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK_EQ(write(b[1], "y", 1), 1);
    ev_run(l);
    CHECK_EQ(g.hi_calls, 1);
    ev_del(l, a[0]);
    close(hi);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    ev_free(l);
}

TEST(stop_before_run_and_rerun)
{
    struct ev_loop *l = ev_new();
    ev_stop(l);
    CHECK_EQ(ev_run(l), 0); /* returns at once */
    int fired = 0;
    struct log log = { .n = 0 };
    struct tctx t = { .log = &log, .tag = 1, .stop = 1 };
    ev_timer_at(l, ev_now_ns() + MS, t_record, &t);
    CHECK_EQ(ev_run(l), 0); /* runs again after a stop */
    fired = log.n;
    CHECK_EQ(fired, 1);
    ev_free(l);
}

/* ---- out of memory ---- */

static int open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* ev_new's allocation fails: NULL with ENOMEM, no descriptor left open. */
TEST(oom_new)
{
    int fds = open_fds();
    long n;
    for (n = 0; n < 8; n++) {
        alloc_fail_after(n);
        errno = 0;
        struct ev_loop *l = ev_new();
        if (l) {
            ev_free(l);
            break;
        }
        CHECK_EQ(errno, ENOMEM);
        CHECK_EQ(alloc_live(), 0);
        CHECK_EQ(open_fds(), fds);
    }
    CHECK(n > 0 && n < 8);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

static void on_byte(struct ev_loop *l, int fd, uint32_t ev, void *arg)
{
    char c;
    if (read(fd, &c, 1) == 1)
        ++*(int *)arg;
    ev_stop(l);
}

/* The fd table cannot grow: ev_add says -ENOMEM and registers nothing; the
 * fds already registered keep working, and a later ev_add succeeds. */
TEST(oom_add_leaves_the_loop_working)
{
    alloc_fail_never();
    struct ev_loop *l = ev_new();
    int a[2], b[2];
    CHECK_EQ(pipe2(a, O_NONBLOCK), 0);
    CHECK_EQ(pipe2(b, O_NONBLOCK), 0);
    int hi = fcntl(b[0], F_DUPFD_CLOEXEC, 700); /* past the first table */
    CHECK(hi >= 700);
    int lo_calls = 0, hi_calls = 0;
    alloc_fail_after(0);
    CHECK_EQ(ev_add(l, a[0], EPOLLIN, on_byte, &lo_calls), -ENOMEM); /* no table yet */
    alloc_fail_after(1);
    CHECK_EQ(ev_add(l, a[0], EPOLLIN, on_byte, &lo_calls), 0);
    CHECK_EQ(ev_add(l, hi, EPOLLIN, on_byte, &hi_calls), -ENOMEM);
    CHECK_EQ(ev_del(l, hi), -ENOENT); /* not half-registered */
    CHECK_EQ(write(a[1], "x", 1), 1);
    CHECK_EQ(write(b[1], "y", 1), 1);
    CHECK_EQ(ev_run(l), 0);
    CHECK_EQ(lo_calls, 1);
    CHECK_EQ(hi_calls, 0);
    alloc_fail_never();
    CHECK_EQ(ev_add(l, hi, EPOLLIN, on_byte, &hi_calls), 0);
    CHECK_EQ(ev_run(l), 0);
    CHECK_EQ(hi_calls, 1);
    ev_del(l, a[0]);
    ev_del(l, hi);
    close(hi);
    close(a[0]); close(a[1]); close(b[0]); close(b[1]);
    ev_free(l);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

/* The timer pool cannot grow (its node array, or its heap): ev_timer_at
 * returns 0, the timers already armed still fire in order, and once memory
 * is back new timers work. */
TEST(oom_timers)
{
    alloc_fail_never();
    struct ev_loop *l = ev_new();
    struct log log = { .n = 0 };
    uint64_t now = ev_now_ns();
    alloc_fail_after(0);
    CHECK(ev_timer_at(l, now, t_record, &(struct tctx){ .log = &log }) == 0);
    alloc_fail_after(1); /* nodes grow, the heap does not */
    CHECK(ev_timer_at(l, now, t_record, &(struct tctx){ .log = &log }) == 0);
    alloc_fail_never();
    /* fill the first pool (64 nodes): the last one stops the loop */
    struct tctx t[64];
    for (int i = 0; i < 64; i++) {
        t[i] = (struct tctx){ .log = &log, .tag = i, .stop = i == 63 };
        CHECK(ev_timer_at(l, now + (uint64_t)(i + 1) * MS / 8, t_record, &t[i]) != 0);
    }
    alloc_fail_after(0);
    struct tctx extra = { .log = &log, .tag = 99 };
    CHECK(ev_timer_at(l, now, t_record, &extra) == 0); /* the pool is full */
    alloc_fail_after(1);
    CHECK(ev_timer_at(l, now, t_record, &extra) == 0);
    CHECK_EQ(ev_run(l), 0);
    CHECK_EQ(log.n, 64);
    int ordered = 1;
    for (int i = 0; i < 64 && i < log.n; i++)
        ordered &= log.seq[i] == i;
    CHECK(ordered);
    alloc_fail_never();
    struct tctx last = { .log = &log, .tag = 7, .stop = 1 };
    log.n = 0;
    CHECK(ev_timer_at(l, ev_now_ns(), t_record, &last) != 0);
    CHECK_EQ(ev_run(l), 0);
    CHECK_EQ(log.n, 1);
    ev_free(l);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

int main(void)
{
    RUN(timer_ordering);
    RUN(timer_cancel);
    RUN(timer_from_callback);
    RUN(fd_readiness);
    RUN(ev_del_self_inside_callback);
    RUN(add_fd_from_callback_grows_table);
    RUN(stop_before_run_and_rerun);
    RUN(oom_new);
    RUN(oom_add_leaves_the_loop_working);
    RUN(oom_timers);
    return harness_done();
}
