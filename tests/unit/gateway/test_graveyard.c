/* Unit tests for user/gateway/graveyard.c: what is buried is freed after
 * the current callback, in burial order, by its own destructor, and what
 * a destructor buries is freed in the same reap. */
#include "harness.h"

#include <stdlib.h>

#include "common/ev.h"
#include "gateway/graveyard.h"

struct obj {
    int id;
    struct grave grave;
};

static int g_order[16], g_n;
static struct graveyard *g_gy;

static void destroy(struct grave *g)
{
    struct obj *o = GRAVE_OWNER(g, struct obj, grave);
    g_order[g_n++] = o->id;
    free(o);
}

static struct obj *child; /* buried by its parent's destructor */
static void destroy_parent(struct grave *g)
{
    destroy(g);
    if (child) {
        gy_bury(g_gy, &child->grave, destroy);
        child = NULL;
    }
}

static struct obj *mk(int id)
{
    struct obj *o = calloc(1, sizeof(*o));
    o->id = id;
    return o;
}

static void in_callback(struct ev_loop *l, void *arg)
{
    /* buried inside a callback: still alive when the callback returns */
    gy_bury(g_gy, &mk(1)->grave, destroy);
    gy_bury(g_gy, &mk(2)->grave, destroy_parent);
    child = mk(3);
    gy_bury(g_gy, &mk(4)->grave, destroy);
    CHECK_EQ(g_n, 0);
}

static void stop_cb(struct ev_loop *l, void *arg)
{
    ev_stop(l);
}

TEST(freed_after_the_callback_in_order)
{
    struct ev_loop *l = ev_new();
    struct graveyard gy;
    gy_init(&gy, l);
    g_gy = &gy;
    g_n = 0;
    ev_timer_at(l, ev_now_ns(), in_callback, NULL);
    ev_timer_at(l, ev_now_ns() + 5000000, stop_cb, NULL);
    ev_run(l);
    CHECK_EQ(g_n, 4);
    CHECK_EQ(g_order[0], 1);
    CHECK_EQ(g_order[1], 2);
    CHECK_EQ(g_order[2], 4);
    CHECK_EQ(g_order[3], 3); /* buried by 2's destructor, freed in the same reap */
    CHECK(gy.head == NULL && gy.tail == NULL);
    ev_free(l);
}

TEST(close_frees_at_once_and_arms_no_timer)
{
    struct ev_loop *l = ev_new();
    struct graveyard gy;
    gy_init(&gy, l);
    g_gy = &gy;
    g_n = 0;
    gy_bury(&gy, &mk(7)->grave, destroy);
    gy_close(&gy);
    CHECK_EQ(g_n, 1);
    gy_bury(&gy, &mk(8)->grave, destroy); /* the loop is going: no timer */
    CHECK_EQ(gy.timer, 0);
    gy_reap(&gy);
    CHECK_EQ(g_n, 2);
    ev_free(l);
}

int main(void)
{
    RUN(freed_after_the_callback_in_order);
    RUN(close_frees_at_once_and_arms_no_timer);
    return harness_done();
}
