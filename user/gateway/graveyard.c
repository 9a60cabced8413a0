/* graveyard: see graveyard.h. */
#include "gateway/graveyard.h"

#include <stddef.h>

#include "common/ev.h"

void gy_init(struct graveyard *gy, struct ev_loop *l)
{
    *gy = (struct graveyard){ .l = l };
}

static void reap_cb(struct ev_loop *l, void *arg)
{
    struct graveyard *gy = arg;
    gy->timer = 0;
    gy_reap(gy);
}

void gy_bury(struct graveyard *gy, struct grave *g, void (*destroy)(struct grave *g))
{
    g->next = NULL;
    g->destroy = destroy;
    if (gy->tail)
        gy->tail->next = g;
    else
        gy->head = g;
    gy->tail = g;
    if (!gy->timer && !gy->closed)
        gy->timer = ev_timer_at(gy->l, ev_now_ns(), reap_cb, gy);
}

void gy_reap(struct graveyard *gy)
{
    while (gy->head) {
        struct grave *g = gy->head;
        gy->head = g->next;
        if (!gy->head)
            gy->tail = NULL;
        g->destroy(g); /* may bury more: they are freed in this loop too */
    }
}

void gy_close(struct graveyard *gy)
{
    gy->closed = 1;
    ev_timer_cancel(gy->l, gy->timer);
    gy->timer = 0;
    gy_reap(gy);
}
