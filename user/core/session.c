/* session: direct-mapped session -> pod table. See session.h. */
#include "core/session.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <xxhash.h>

struct sess {
    uint64_t h;    /* 0 = empty */
    uint32_t slot;
};

struct session_table {
    pthread_mutex_t mu;
    uint32_t mask;
    struct sess s[];
};

struct session_table *session_new(uint32_t nslots)
{
    uint32_t n = 1;
    while (n < nslots && n < (1u << 24))
        n <<= 1;
    struct session_table *t = kv_calloc(1, sizeof(*t) + n * sizeof(t->s[0]));
    if (!t)
        return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->mask = n - 1;
    return t;
}

void session_free(struct session_table *t)
{
    if (t) {
        pthread_mutex_destroy(&t->mu);
        kv_free(t);
    }
}

uint64_t session_hash(const char *id, size_t len)
{
    uint64_t h = XXH3_64bits(id, len);
    return h ? h : 1;
}

int session_get(struct session_table *t, uint64_t h)
{
    pthread_mutex_lock(&t->mu);
    struct sess *e = &t->s[h & t->mask];
    int slot = e->h == h ? (int)e->slot : -1;
    pthread_mutex_unlock(&t->mu);
    return slot;
}

void session_put(struct session_table *t, uint64_t h, uint32_t slot)
{
    pthread_mutex_lock(&t->mu);
    t->s[h & t->mask] = (struct sess){h, slot};
    pthread_mutex_unlock(&t->mu);
}

void session_forget_slot(struct session_table *t, uint32_t slot)
{
    pthread_mutex_lock(&t->mu);
    for (uint32_t i = 0; i <= t->mask; i++)
        if (t->s[i].h && t->s[i].slot == slot)
            t->s[i].h = 0;
    pthread_mutex_unlock(&t->mu);
}
