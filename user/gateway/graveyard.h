/* graveyard: objects torn down inside a callback are freed after it.
 *
 * Tearing an object down (closing its fd, unlinking it) happens at once;
 * its memory is freed by a zero-delay timer once the current callback has
 * returned, so that no caller up the stack has an object freed under its
 * feet (callers re-check a `dead` flag after calling out instead). Each
 * object embeds a struct grave and says how it is freed; the graveyard
 * knows no type. One per worker thread (event loop). */
#ifndef KVGATE_GATEWAY_GRAVEYARD_H
#define KVGATE_GATEWAY_GRAVEYARD_H

#include <stddef.h>
#include <stdint.h>

struct ev_loop;

struct grave {
    struct grave *next;
    void (*destroy)(struct grave *g); /* frees the object that embeds g */
};

struct graveyard {
    struct ev_loop *l;
    struct grave *head, *tail;
    uint64_t timer;
    int closed;              /* the loop is going away: no more timers */
};

void gy_init(struct graveyard *gy, struct ev_loop *l);
/* g's object is dead: destroy(g) runs after the current callback. */
void gy_bury(struct graveyard *gy, struct grave *g, void (*destroy)(struct grave *g));
/* Frees everything buried, in burial order (and what that buries). */
void gy_reap(struct graveyard *gy);
/* Frees everything now and stops arming timers (the loop's last act). */
void gy_close(struct graveyard *gy);

#define GRAVE_OWNER(g, type, member) ((type *)((char *)(g) - offsetof(type, member)))

#endif
