/* Unit tests for user/core/session.c. */
#include "harness.h"
#include "core/session.h"
#include "common/alloc.h"

#include <errno.h>

TEST(put_get_overwrite_forget)
{
    struct session_table *t = session_new(1000);
    uint64_t a = session_hash("alice", 5), b = session_hash("bob", 3);
    CHECK(a != b);
    CHECK_EQ(session_get(t, a), -1);
    session_put(t, a, 7);
    session_put(t, b, 3);
    CHECK_EQ(session_get(t, a), 7);
    CHECK_EQ(session_get(t, b), 3);
    session_put(t, a, 9); /* the session moved */
    CHECK_EQ(session_get(t, a), 9);
    session_forget_slot(t, 9);
    CHECK_EQ(session_get(t, a), -1);
    CHECK_EQ(session_get(t, b), 3);
    session_free(t);
}

TEST(collision_costs_affinity_not_correctness)
{
    struct session_table *t = session_new(1); /* one slot */
    uint64_t a = session_hash("a", 1), b = session_hash("b", 1);
    session_put(t, a, 1);
    session_put(t, b, 2);
    CHECK_EQ(session_get(t, a), -1); /* evicted, never the wrong pod */
    CHECK_EQ(session_get(t, b), 2);
    session_free(t);
}

/* session_new's allocation fails: NULL with ENOMEM, nothing leaked. */
TEST(oom_new)
{
    long n;
    for (n = 0; n < 16; n++) {
        alloc_fail_after(n);
        errno = 0;
        struct session_table *t = session_new(64);
        if (t) {
            CHECK_EQ(alloc_failures(), 0);
            session_put(t, 7, 3);
            CHECK_EQ(session_get(t, 7), 3);
            session_free(t);
            break;
        }
        CHECK_EQ(errno, ENOMEM);
        CHECK_EQ(alloc_live(), 0);
    }
    CHECK(n > 0 && n < 16); /* at least one allocation was failed */
    CHECK_EQ(alloc_live(), 0);
    alloc_unhook();
}

int main(void)
{
    RUN(put_get_overwrite_forget);
    RUN(collision_costs_affinity_not_correctness);
    RUN(oom_new);
    return harness_done();
}
