/* podtable: what the gateway knows about each pod, published to worker
 * threads as an immutable, reference-counted snapshot.
 *
 * The control thread owns the mutable table (scrape results, health,
 * admin changes) and publishes a fresh snapshot after every change; a
 * worker takes a reference for the duration of one routing decision
 * (snapshot_get / snapshot_put). Per-pod in-flight counts are not in the
 * snapshot: they change on every request, so they live in a shared array of
 * atomics indexed by the pod's stable slot. */
#ifndef KVGATE_CORE_PODTABLE_H
#define KVGATE_CORE_PODTABLE_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#define POD_NAME_MAX 64
#define POD_MODEL_MAX 128
#define POD_MAX_MODELS 8
#define POD_MAX_ADAPTERS 32 /* at most 64: running_loras is a bit mask */
#define POD_MAX 512

enum pod_engine { POD_ENGINE_VLLM, POD_ENGINE_SGLANG, POD_ENGINE_TRTLLM };

struct pod_info {
    uint32_t slot;                  /* stable id < POD_MAX (prefix index, counters) */
    char name[POD_NAME_MAX];        /* "host:port" unless configured */
    char host[POD_NAME_MAX];
    uint16_t port;
    struct sockaddr_storage addr;   /* resolved host:port, for connect() */
    socklen_t addrlen;
    enum pod_engine engine;
    uint8_t h2c;                    /* speaks h2c with prior knowledge (configured) */
    uint8_t healthy;                /* last health check passed */
    uint8_t draining;               /* admin: no new requests */
    uint8_t metrics_ok;             /* at least one scrape parsed */
    uint32_t nmodels, nadapters;
    char models[POD_MAX_MODELS][POD_MODEL_MAX];      /* base models served */
    char adapters[POD_MAX_ADAPTERS][POD_MODEL_MAX];  /* LoRA adapters served */
    uint64_t running_loras;         /* bit i: adapters[i] is resident/running */
    double waiting, running, kv_usage;
    uint64_t scraped_ns;            /* CLOCK_MONOTONIC of the last good scrape */
    uint32_t cache_tokens;          /* KV capacity in tokens, 0 unknown */
    uint32_t block_size;            /* tokens per KV block (cache_config_info), 0 unknown */
    uint64_t foreign_at_scrape;     /* kvx_pod_foreign_tokens (the exact index) when the
                                     * scrape was read: others' blocks since are news */
    uint32_t own_at_scrape;         /* this gateway's requests at the pod (pod_inflight)
                                     * when the scrape was read: the rest of
                                     * running + waiting is other senders' */
};

struct pod_snapshot {
    atomic_uint refs;
    uint64_t generation;
    uint32_t npods;
    struct pod_info pods[];         /* npods entries */
};

/* Requests the kernel itself sent to a pod (the sockmap splice's session
 * flows; the bypass later), by slot, in memory the kernel writes (the BPF
 * array kvg_pod_load, mmapped: bpf/kvgate.h struct kvg_pod_load has this
 * layout). kvgated never saw these requests, yet they load the pod like
 * its own: every path counts. */
struct pod_kload {
    uint64_t sent;      /* requests forwarded (heads) */
    uint64_t done;      /* their answers completed */
    uint64_t sent_body; /* body bytes of the requests forwarded */
    uint64_t reserved;
};

/* Serving counters shared by workers and the control thread, by slot. */
struct pod_counters {
    atomic_uint inflight[POD_MAX];          /* requests at the pod now, sent by kvgated */
    /* the kernel's (NULL: no BPF), and what kvgated wrote off of them:
     * requests whose flow ended before their answer did */
    const volatile struct pod_kload *kload;
    atomic_uint_fast64_t kload_lost[POD_MAX];
    atomic_uint_fast64_t down_until_ns[POD_MAX]; /* data path saw it fail to connect */
    /* passive outlier detection (core/outlier.c) */
    atomic_uint_fast64_t ejected_until_ns[POD_MAX]; /* ejected until then */
    atomic_uint_fast64_t last_fail_ns[POD_MAX];     /* its last failed attempt */
    atomic_uint_fast64_t ejections[POD_MAX];        /* times ejected (a counter) */
};

/* Requests at the pod the kernel sent (see struct pod_kload), never below 0. */
static inline uint32_t pod_kernel_inflight(const struct pod_counters *c, uint32_t slot)
{
    if (!c->kload || slot >= POD_MAX)
        return 0;
    /* done before sent: an answer is counted after its request */
    uint64_t done = __atomic_load_n(&c->kload[slot].done, __ATOMIC_ACQUIRE);
    uint64_t sent = __atomic_load_n(&c->kload[slot].sent, __ATOMIC_ACQUIRE);
    uint64_t lost = atomic_load_explicit(&c->kload_lost[slot], memory_order_relaxed);
    int64_t n = (int64_t)(sent - done - lost);
    return n > 0 ? (uint32_t)(n > (int64_t)UINT32_MAX ? UINT32_MAX : n) : 0;
}

/* Mean body bytes of the requests the kernel sent the pod, 0 none yet. */
static inline double pod_kernel_mean_body(const struct pod_counters *c, uint32_t slot)
{
    if (!c->kload || slot >= POD_MAX)
        return 0;
    uint64_t sent = __atomic_load_n(&c->kload[slot].sent, __ATOMIC_RELAXED);
    uint64_t body = __atomic_load_n(&c->kload[slot].sent_body, __ATOMIC_RELAXED);
    return sent ? (double)body / (double)sent : 0;
}

/* Writes off whatever the kernel's counts hold now (at start: an earlier
 * process's flows are gone with it). */
void pod_kload_rebase(struct pod_counters *c);

/* Every request at the pod, whoever sent it: what load decisions use. */
static inline uint32_t pod_inflight(const struct pod_counters *c, uint32_t slot)
{
    uint32_t own = atomic_load_explicit(&c->inflight[slot], memory_order_relaxed);
    uint32_t k = pod_kernel_inflight(c, slot);
    return own > UINT32_MAX - k ? UINT32_MAX : own + k;
}

struct pod_snapshot *snapshot_new(uint32_t npods);
/* The current snapshot, with a reference; never NULL once published. */
struct pod_snapshot *snapshot_get(void);
void snapshot_put(struct pod_snapshot *s);
/* Makes s current (takes over the caller's reference). */
void snapshot_publish(struct pod_snapshot *s);

/* Does the pod serve this model name (a base model or an adapter)?
 * Returns 1 base model, 2 adapter (and sets *adapter_idx), 0 no. */
int pod_serves(const struct pod_info *p, const char *model, int *adapter_idx);

#endif
