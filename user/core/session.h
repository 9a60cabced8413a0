/* session: which pod a session (x-session-id) last went to, for session
 * affinity. A direct-mapped table of (session hash, slot) with a tag check:
 * bounded memory, O(1), and a collision only costs one session its
 * affinity. Thread-safe. */
#ifndef KVGATE_CORE_SESSION_H
#define KVGATE_CORE_SESSION_H

#include <stddef.h>
#include <stdint.h>

struct session_table;

/* nslots is rounded up to a power of two. NULL on ENOMEM. */
struct session_table *session_new(uint32_t nslots);
void session_free(struct session_table *t);

uint64_t session_hash(const char *id, size_t len);
/* Slot of the pod the session last used, or -1. */
int session_get(struct session_table *t, uint64_t h);
void session_put(struct session_table *t, uint64_t h, uint32_t slot);
/* Forgets every session bound to slot (the pod left). */
void session_forget_slot(struct session_table *t, uint32_t slot);

#endif
