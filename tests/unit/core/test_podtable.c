/* Unit tests for user/core/podtable.c: snapshot life cycle (publish, get,
 * put, the last reference frees) and snapshot_new out of memory. */
#include "core/podtable.h"
#include "common/alloc.h"

#include <errno.h>

#include "harness.h"

TEST(publish_get_put)
{
    alloc_fail_never();
    struct pod_snapshot *a = snapshot_new(3);
    CHECK(a != NULL);
    CHECK_EQ(a->npods, 3);
    CHECK_EQ(a->pods[2].nmodels, 0); /* zeroed */
    snapshot_publish(a);
    struct pod_snapshot *g = snapshot_get();
    CHECK(g == a);
    struct pod_snapshot *b = snapshot_new(1);
    snapshot_publish(b); /* a lives on while the reader holds it */
    CHECK_EQ(alloc_live(), 2);
    snapshot_put(g);
    CHECK_EQ(alloc_live(), 1);
    snapshot_publish(NULL);
    CHECK(snapshot_get() == NULL);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

/* snapshot_new's allocation fails: NULL with ENOMEM; the published
 * snapshot is untouched and nothing leaked. */
TEST(oom_new)
{
    alloc_fail_never();
    struct pod_snapshot *cur = snapshot_new(2);
    snapshot_publish(cur);
    long n;
    for (n = 0; n < 8; n++) {
        alloc_fail_after(n);
        errno = 0;
        struct pod_snapshot *s = snapshot_new(POD_MAX);
        if (s) {
            snapshot_put(s);
            break;
        }
        CHECK_EQ(errno, ENOMEM);
        CHECK_EQ(alloc_live(), 1);
        struct pod_snapshot *g = snapshot_get();
        CHECK(g == cur);
        snapshot_put(g);
    }
    CHECK(n > 0 && n < 8);
    snapshot_publish(NULL);
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

int main(void)
{
    RUN(publish_get_put);
    RUN(oom_new);
    return harness_done();
}
