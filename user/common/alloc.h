/* alloc: the allocator of user/common and user/core, injectable so that
 * their out-of-memory branches are tested rather than assumed.
 *
 * kv_malloc / kv_calloc / kv_realloc / kv_strdup / kv_free are inline calls
 * to libc behind one predictable branch on `alloc_hooked`, which is false
 * unless a test installs a schedule:
 *
 *   alloc_fail_after(n)   the next n allocations succeed, every later one
 *                         fails (n = 0: all fail)
 *   alloc_fail_every(n)   every n-th allocation fails (n = 1: all fail)
 *   alloc_fail_never()    none fails; calls and live blocks are counted
 *   alloc_unhook()        back to plain libc, counters cleared
 *
 * While a schedule is installed, every call goes through alloc.c, which
 * counts it, fails it when the schedule says so (NULL, errno = ENOMEM, as
 * libc does; a failed kv_realloc leaves the block as it was) and keeps the
 * number of live blocks, so a test can drive each allocation of an
 * operation to failure in turn and check the documented result and that
 * nothing leaked:
 *
 *   for (long n = 0;; n++) {
 *       alloc_fail_after(n);
 *       struct thing *t = thing_new();   // NULL while an allocation fails
 *       if (t) { thing_free(t); break; }
 *       CHECK_EQ(alloc_live(), 0);
 *   }
 *   alloc_unhook();
 *
 * Rules: a block from kv_* is freed with kv_free, and kv_free frees only
 * those (the live count is only right then); kv_realloc's size is > 0.
 * Installing a schedule zeroes the call and failure counts, not the live
 * count (a test may switch schedules with blocks outstanding). The counters
 * are atomic; install schedules while no other thread allocates. */
#ifndef KVGATE_COMMON_ALLOC_H
#define KVGATE_COMMON_ALLOC_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

extern int alloc_hooked; /* a schedule is installed: calls go to alloc.c */

void *alloc_hooked_malloc(size_t n);
void *alloc_hooked_calloc(size_t nmemb, size_t size);
void *alloc_hooked_realloc(void *p, size_t n);
void alloc_hooked_free(void *p);

static inline void *kv_malloc(size_t n)
{
    if (__builtin_expect(alloc_hooked, 0))
        return alloc_hooked_malloc(n);
    return malloc(n);
}

static inline void *kv_calloc(size_t nmemb, size_t size)
{
    if (__builtin_expect(alloc_hooked, 0))
        return alloc_hooked_calloc(nmemb, size);
    return calloc(nmemb, size);
}

static inline void *kv_realloc(void *p, size_t n)
{
    if (__builtin_expect(alloc_hooked, 0))
        return alloc_hooked_realloc(p, n);
    return realloc(p, n);
}

static inline void kv_free(void *p)
{
    if (__builtin_expect(alloc_hooked, 0))
        alloc_hooked_free(p);
    else
        free(p);
}

/* One allocation (counted and failed as one). */
static inline char *kv_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = kv_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* ---- for tests ---- */
void alloc_fail_after(long n);
void alloc_fail_every(long n);
void alloc_fail_never(void);
void alloc_unhook(void);
long alloc_calls(void);    /* allocations asked for since the schedule began */
long alloc_failures(void); /* of which failed */
long alloc_live(void);     /* blocks from kv_* not yet given to kv_free */

#endif
