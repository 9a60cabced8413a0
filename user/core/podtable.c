/* podtable: snapshot publication. See podtable.h. */
#include "core/podtable.h"
#include "common/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t cur_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pod_snapshot *cur;

struct pod_snapshot *snapshot_new(uint32_t npods)
{
    struct pod_snapshot *s = kv_calloc(1, sizeof(*s) + npods * sizeof(s->pods[0]));
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->npods = npods;
    return s;
}

struct pod_snapshot *snapshot_get(void)
{
    /* a mutex, not a lock-free scheme: taken once per request for a few
     * nanoseconds, and it makes the reference grab race-free */
    pthread_mutex_lock(&cur_mu);
    struct pod_snapshot *s = cur;
    if (s)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&cur_mu);
    return s;
}

void snapshot_put(struct pod_snapshot *s)
{
    if (s && atomic_fetch_sub(&s->refs, 1) == 1)
        kv_free(s);
}

void snapshot_publish(struct pod_snapshot *s)
{
    pthread_mutex_lock(&cur_mu);
    struct pod_snapshot *old = cur;
    cur = s;
    pthread_mutex_unlock(&cur_mu);
    snapshot_put(old);
}

int pod_serves(const struct pod_info *p, const char *model, int *adapter_idx)
{
    for (uint32_t i = 0; i < p->nmodels; i++)
        if (!strcmp(p->models[i], model))
            return 1;
    for (uint32_t i = 0; i < p->nadapters; i++)
        if (!strcmp(p->adapters[i], model)) {
            if (adapter_idx)
                *adapter_idx = (int)i;
            return 2;
        }
    return 0;
}

void pod_kload_rebase(struct pod_counters *c)
{
    for (uint32_t i = 0; c->kload && i < POD_MAX; i++) {
        uint64_t done = __atomic_load_n(&c->kload[i].done, __ATOMIC_ACQUIRE);
        uint64_t sent = __atomic_load_n(&c->kload[i].sent, __ATOMIC_ACQUIRE);
        atomic_store(&c->kload_lost[i], sent - done);
    }
}
