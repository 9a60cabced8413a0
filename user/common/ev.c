/* ev: single-threaded epoll loop with one-shot timers. See ev.h.
 *
 * File descriptors: a registration table indexed by fd. Each ev_add gives
 * the slot a new generation, and the epoll cookie carries (gen << 32 | fd),
 * so an event that was fetched in the same epoll_wait batch as an ev_del
 * (or as an ev_del + close + a new ev_add reusing the fd number) is
 * recognised as stale and dropped.
 *
 * Timers: nodes live in a pool (array, free list) and a binary min-heap of
 * pool indices ordered by (deadline, id). A timer id is
 * (sequence << TIMER_SLOT_BITS | pool slot): it increases with every
 * ev_timer_at, and cancel finds the node in O(1) and removes it from the
 * heap in O(log n). The node remembers its own id, so cancelling a stale id
 * (fired, cancelled, slot reused) is a no-op. The 44-bit sequence lasts for
 * 1.7e13 timers (5 years at 100k timers/s).
 *
 * ev_stop is safe from a signal handler and from another thread: it sets a
 * flag and writes to an eventfd watched by the loop. */
#include "common/ev.h"
#include "common/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define TIMER_SLOT_BITS 20
#define TIMER_MAX_SLOTS (1u << TIMER_SLOT_BITS)
#define EV_BATCH 256

struct ev_reg {
    ev_io_cb cb;
    void *arg;
    uint32_t events;
    uint32_t gen;   /* bumped by every ev_add and ev_del */
    int active;
};

struct ev_tnode {
    uint64_t at;
    uint64_t id;     /* 0 when the slot is free */
    ev_timer_cb cb;
    void *arg;
    uint32_t heap_pos; /* index in heap[] while armed */
    uint32_t next_free;
};

struct ev_loop {
    int epfd;
    int wakefd;
    _Atomic int stop; /* set by ev_stop from any thread or a signal handler (lock-free) */

    struct ev_reg *regs;
    size_t nregs;

    struct ev_tnode *pool;
    uint32_t npool, free_head; /* free_head == UINT32_MAX: none */
    uint32_t *heap;
    uint32_t nheap;
    uint64_t seq;              /* last timer sequence handed out */
    int no_pwait2;             /* kernel or libc lacks epoll_pwait2 */
};

uint64_t ev_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct ev_loop *ev_new(void)
{
    struct ev_loop *l = kv_calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->free_head = UINT32_MAX;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->epfd < 0 || l->wakefd < 0)
        goto fail;
    /* The wake fd is registered directly (not in regs); its cookie would
     * need fd == -1 as a user cookie, so it cannot collide. */
    struct epoll_event e = { .events = EPOLLIN,
                             .data.u64 = UINT64_MAX };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wakefd, &e) < 0)
        goto fail;
    return l;
fail: {
    int err = errno;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->wakefd >= 0)
        close(l->wakefd);
    kv_free(l);
    errno = err;
    return NULL;
}
}

void ev_free(struct ev_loop *l)
{
    if (!l)
        return;
    close(l->epfd);
    close(l->wakefd);
    kv_free(l->regs);
    kv_free(l->pool);
    kv_free(l->heap);
    kv_free(l);
}

/* ---- file descriptors ---- */

static int reg_grow(struct ev_loop *l, int fd)
{
    if ((size_t)fd < l->nregs)
        return 0;
    size_t n = l->nregs ? l->nregs : 64;
    while (n <= (size_t)fd)
        n *= 2;
    struct ev_reg *r = kv_realloc(l->regs, n * sizeof(*r));
    if (!r)
        return -ENOMEM;
    memset(r + l->nregs, 0, (n - l->nregs) * sizeof(*r));
    l->regs = r;
    l->nregs = n;
    return 0;
}

static uint64_t cookie(const struct ev_loop *l, int fd)
{
    return (uint64_t)l->regs[fd].gen << 32 | (uint32_t)fd;
}

int ev_add(struct ev_loop *l, int fd, uint32_t events, ev_io_cb cb, void *arg)
{
    if (fd < 0 || !cb)
        return -EINVAL;
    int rc = reg_grow(l, fd);
    if (rc)
        return rc;
    struct ev_reg *r = &l->regs[fd];
    if (r->active)
        return -EEXIST;
    r->gen++;
    struct epoll_event e = { .events = events, .data.u64 = cookie(l, fd) };
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &e) < 0)
        return -errno;
    r->cb = cb;
    r->arg = arg;
    r->events = events;
    r->active = 1;
    return 0;
}

int ev_mod(struct ev_loop *l, int fd, uint32_t events)
{
    if (fd < 0 || (size_t)fd >= l->nregs || !l->regs[fd].active)
        return -ENOENT;
    struct ev_reg *r = &l->regs[fd];
    if (r->events == events)
        return 0;
    struct epoll_event e = { .events = events, .data.u64 = cookie(l, fd) };
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &e) < 0)
        return -errno;
    r->events = events;
    return 0;
}

int ev_del(struct ev_loop *l, int fd)
{
    if (fd < 0 || (size_t)fd >= l->nregs || !l->regs[fd].active)
        return -ENOENT;
    struct ev_reg *r = &l->regs[fd];
    r->active = 0;
    r->gen++; /* events already fetched for this fd are now stale */
    r->cb = NULL;
    r->arg = NULL;
    /* EBADF: the caller closed the fd first; epoll already forgot it. */
    if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != EBADF)
        return -errno;
    return 0;
}

/* ---- timers ---- */

static int t_less(const struct ev_loop *l, uint32_t a, uint32_t b)
{
    const struct ev_tnode *x = &l->pool[a], *y = &l->pool[b];
    return x->at < y->at || (x->at == y->at && x->id < y->id);
}

static void heap_set(struct ev_loop *l, uint32_t pos, uint32_t slot)
{
    l->heap[pos] = slot;
    l->pool[slot].heap_pos = pos;
}

static void sift_up(struct ev_loop *l, uint32_t pos)
{
    uint32_t slot = l->heap[pos];
    while (pos > 0) {
        uint32_t parent = (pos - 1) / 2;
        if (!t_less(l, slot, l->heap[parent]))
            break;
        heap_set(l, pos, l->heap[parent]);
        pos = parent;
    }
    heap_set(l, pos, slot);
}

static void sift_down(struct ev_loop *l, uint32_t pos)
{
    uint32_t slot = l->heap[pos];
    for (;;) {
        uint32_t c = 2 * pos + 1;
        if (c >= l->nheap)
            break;
        if (c + 1 < l->nheap && t_less(l, l->heap[c + 1], l->heap[c]))
            c++;
        if (!t_less(l, l->heap[c], slot))
            break;
        heap_set(l, pos, l->heap[c]);
        pos = c;
    }
    heap_set(l, pos, slot);
}

/* Removes the node at heap position pos and returns its slot to the pool. */
static void heap_remove(struct ev_loop *l, uint32_t pos)
{
    uint32_t slot = l->heap[pos];
    l->nheap--;
    if (pos < l->nheap) {
        heap_set(l, pos, l->heap[l->nheap]);
        /* The moved node may belong above or below its new position. */
        if (pos > 0 && t_less(l, l->heap[pos], l->heap[(pos - 1) / 2]))
            sift_up(l, pos);
        else
            sift_down(l, pos);
    }
    l->pool[slot].id = 0;
    l->pool[slot].cb = NULL;
    l->pool[slot].next_free = l->free_head;
    l->free_head = slot;
}

static int pool_grow(struct ev_loop *l)
{
    if (l->npool >= TIMER_MAX_SLOTS)
        return -ENOMEM;
    uint32_t n = l->npool ? l->npool * 2 : 64;
    if (n > TIMER_MAX_SLOTS)
        n = TIMER_MAX_SLOTS;
    struct ev_tnode *p = kv_realloc(l->pool, n * sizeof(*p));
    if (!p)
        return -ENOMEM;
    l->pool = p;
    uint32_t *h = kv_realloc(l->heap, n * sizeof(*h));
    if (!h)
        return -ENOMEM; /* pool is larger now, harmless */
    l->heap = h;
    /* Thread the new slots onto the free list, lowest index first. */
    for (uint32_t i = n; i-- > l->npool;) {
        memset(&p[i], 0, sizeof(p[i]));
        p[i].next_free = l->free_head;
        l->free_head = i;
    }
    l->npool = n;
    return 0;
}

uint64_t ev_timer_at(struct ev_loop *l, uint64_t at_ns, ev_timer_cb cb, void *arg)
{
    if (!cb)
        return 0;
    if (l->free_head == UINT32_MAX && pool_grow(l) < 0)
        return 0;
    uint32_t slot = l->free_head;
    struct ev_tnode *t = &l->pool[slot];
    l->free_head = t->next_free;
    t->at = at_ns;
    t->id = ++l->seq << TIMER_SLOT_BITS | slot;
    t->cb = cb;
    t->arg = arg;
    l->heap[l->nheap] = slot;
    t->heap_pos = l->nheap++;
    sift_up(l, t->heap_pos);
    return t->id;
}

void ev_timer_cancel(struct ev_loop *l, uint64_t id)
{
    uint32_t slot = (uint32_t)(id & (TIMER_MAX_SLOTS - 1));
    if (id == 0 || slot >= l->npool || l->pool[slot].id != id)
        return;
    heap_remove(l, l->pool[slot].heap_pos);
}

/* Fires due timers. Timers created while firing (even already due ones) wait
 * for the next loop iteration, so a callback that re-arms itself at "now"
 * cannot starve I/O. */
static void run_timers(struct ev_loop *l)
{
    uint64_t now = ev_now_ns();
    uint64_t seq_limit = l->seq;
    while (l->nheap && !l->stop) {
        struct ev_tnode *t = &l->pool[l->heap[0]];
        if (t->at > now || (t->id >> TIMER_SLOT_BITS) > seq_limit)
            break;
        ev_timer_cb cb = t->cb;
        void *arg = t->arg;
        heap_remove(l, 0); /* before the call: it may cancel its own id */
        cb(l, arg);
    }
}

/* ---- loop ---- */

void ev_stop(struct ev_loop *l)
{
    l->stop = 1;
    uint64_t one = 1;
    ssize_t n = write(l->wakefd, &one, sizeof(one));
    (void)n; /* EAGAIN: counter saturated, a wakeup is pending anyway */
}

static int wait_events(struct ev_loop *l, struct epoll_event *evs)
{
    int64_t wait_ns = -1;
    if (l->nheap) {
        uint64_t at = l->pool[l->heap[0]].at, now = ev_now_ns();
        wait_ns = at > now ? (int64_t)(at - now) : 0;
    }
    if (!l->no_pwait2) {
        struct timespec ts, *tsp = NULL;
        if (wait_ns >= 0) {
            ts.tv_sec = wait_ns / 1000000000;
            ts.tv_nsec = wait_ns % 1000000000;
            tsp = &ts;
        }
        int n = epoll_pwait2(l->epfd, evs, EV_BATCH, tsp, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        l->no_pwait2 = 1;
    }
    int ms = -1;
    if (wait_ns >= 0) /* round up so we do not wake before the deadline */
        ms = wait_ns > INT32_MAX * 1000000ll ? INT32_MAX
                                             : (int)((wait_ns + 999999) / 1000000);
    return epoll_wait(l->epfd, evs, EV_BATCH, ms);
}

int ev_run(struct ev_loop *l)
{
    struct epoll_event evs[EV_BATCH];
    int rc = 0;
    while (!l->stop) {
        int n = wait_events(l, evs);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        for (int i = 0; i < n && !l->stop; i++) {
            uint64_t ck = evs[i].data.u64;
            if (ck == UINT64_MAX) { /* wake fd: drain the counter */
                uint64_t v;
                ssize_t r = read(l->wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            int fd = (int)(uint32_t)ck;
            uint32_t gen = (uint32_t)(ck >> 32);
            /* Re-read the table each time: callbacks may grow it. */
            if ((size_t)fd >= l->nregs)
                continue;
            struct ev_reg *r = &l->regs[fd];
            if (!r->active || r->gen != gen)
                continue; /* removed (or replaced) earlier in this batch */
            r->cb(l, fd, evs[i].events, r->arg);
        }
        run_timers(l);
    }
    l->stop = 0; /* so the loop can be run again */
    return rc;
}
