/* dlist: intrusive doubly-linked lists reached from a head pointer (no
 * tail): push at the head, remove from anywhere in O(1). The links are two
 * members of the node, named by the caller, so one node type can sit on
 * several lists. Macros, for any node type; every argument is evaluated
 * more than once, so pass plain lvalues. */
#ifndef KVGATE_DLIST_H
#define KVGATE_DLIST_H

#include <stddef.h>

#define DLIST_PUSH(head, n, prev, next)                                       \
    do {                                                                      \
        (n)->prev = NULL;                                                     \
        (n)->next = (head);                                                   \
        if (head)                                                             \
            (head)->prev = (n);                                               \
        (head) = (n);                                                         \
    } while (0)

/* n must be on the list that head starts. Leaves n's links NULL. */
#define DLIST_REMOVE(head, n, prev, next)                                     \
    do {                                                                      \
        if ((n)->prev)                                                        \
            (n)->prev->next = (n)->next;                                      \
        else                                                                  \
            (head) = (n)->next;                                               \
        if ((n)->next)                                                        \
            (n)->next->prev = (n)->prev;                                      \
        (n)->prev = (n)->next = NULL;                                         \
    } while (0)

#endif
