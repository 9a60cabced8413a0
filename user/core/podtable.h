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
};

struct pod_snapshot {
    atomic_uint refs;
    uint64_t generation;
    uint32_t npods;
    struct pod_info pods[];         /* npods entries */
};

/* Serving counters shared by workers and the control thread, by slot. */
struct pod_counters {
    atomic_uint inflight[POD_MAX];          /* requests at the pod now */
    atomic_uint_fast64_t down_until_ns[POD_MAX]; /* data path saw it fail to connect */
    /* passive outlier detection (core/outlier.c) */
    atomic_uint_fast64_t ejected_until_ns[POD_MAX]; /* ejected until then */
    atomic_uint_fast64_t last_fail_ns[POD_MAX];     /* its last failed attempt */
    atomic_uint_fast64_t ejections[POD_MAX];        /* times ejected (a counter) */
};

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
