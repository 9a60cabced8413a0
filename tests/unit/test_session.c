/* Unit tests for user/core/session.c. */
#include "harness.h"
#include "core/session.h"

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

int main(void)
{
    RUN(put_get_overwrite_forget);
    RUN(collision_costs_affinity_not_correctness);
    return harness_done();
}
