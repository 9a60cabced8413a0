/* alloc: the hooked side of the injectable allocator. See alloc.h.
 *
 * Reached only while a test has a schedule installed; the plain path is
 * the inline call to libc in alloc.h. */
#include "common/alloc.h"

#include <errno.h>

int alloc_hooked;

enum { SCHED_NEVER, SCHED_AFTER, SCHED_EVERY };

static int sched;
static long sched_n;
static long calls, failures, live;

static long add(long *v, long d)
{
    return __atomic_add_fetch(v, d, __ATOMIC_RELAXED);
}

/* Counts one allocation call; true (errno ENOMEM) when it is to fail. */
static int fails(void)
{
    long k = add(&calls, 1);
    int f = (sched == SCHED_AFTER && k > sched_n) ||
            (sched == SCHED_EVERY && k % sched_n == 0);
    if (f) {
        add(&failures, 1);
        errno = ENOMEM;
    }
    return f;
}

void *alloc_hooked_malloc(size_t n)
{
    if (fails())
        return NULL;
    void *p = malloc(n);
    if (p)
        add(&live, 1);
    return p;
}

void *alloc_hooked_calloc(size_t nmemb, size_t size)
{
    if (fails())
        return NULL;
    void *p = calloc(nmemb, size);
    if (p)
        add(&live, 1);
    return p;
}

void *alloc_hooked_realloc(void *old, size_t n)
{
    if (fails())
        return NULL;
    void *p = realloc(old, n);
    if (p && !old)
        add(&live, 1);
    return p;
}

void alloc_hooked_free(void *p)
{
    if (p)
        add(&live, -1);
    free(p);
}

static void install(int s, long n)
{
    sched = s;
    sched_n = n;
    __atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&failures, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&alloc_hooked, 1, __ATOMIC_SEQ_CST);
}

void alloc_fail_after(long n)
{
    install(SCHED_AFTER, n < 0 ? 0 : n);
}

void alloc_fail_every(long n)
{
    install(SCHED_EVERY, n < 1 ? 1 : n);
}

void alloc_fail_never(void)
{
    install(SCHED_NEVER, 0);
}

void alloc_unhook(void)
{
    __atomic_store_n(&alloc_hooked, 0, __ATOMIC_SEQ_CST);
    sched = SCHED_NEVER;
    __atomic_store_n(&calls, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&failures, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&live, 0, __ATOMIC_RELAXED);
}

long alloc_calls(void)
{
    return __atomic_load_n(&calls, __ATOMIC_RELAXED);
}

long alloc_failures(void)
{
    return __atomic_load_n(&failures, __ATOMIC_RELAXED);
}

long alloc_live(void)
{
    return __atomic_load_n(&live, __ATOMIC_RELAXED);
}
