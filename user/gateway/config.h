/* config: kvgated's configuration, from one JSON file or from flags.
 *
 * Every key is documented in README.md ("kvgated configuration") and in
 * config.c's key table, which also says what a reload does with it:
 * applied at once, or kept until a restart. Errors name the key path,
 * e.g. `pods[2].url: expected "http://host:port"`. Unknown keys are
 * errors too (a typo must not silently fall back).
 *
 *   config.c         the document: the key table, sections, loading
 *   config_pod.c     one pod: its URL, its object, the "pods" array
 *   config_policy.c  the "policy" object (config_policy.h) */
#ifndef KVGATE_GATEWAY_CONFIG_H
#define KVGATE_GATEWAY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "core/outlier.h"
#include "core/rollout.h"
#include "core/podtable.h"
#include "core/policy.h"
#include "gateway/config_policy.h"

struct cJSON;

#define POD_KV_EP_MAX 128

#define GW_ACCEL_MAX 64
#define GW_MAX_COSTS 32

struct gw_pod_cfg {
    char name[POD_NAME_MAX];      /* default "host:port" */
    char host[POD_NAME_MAX];      /* numeric IPv4/IPv6 or a name resolved at load */
    uint16_t port;
    enum pod_engine engine;       /* "vllm" (default), "sglang", "trtllm" */
    uint32_t nmodels;             /* 0: discovered from GET /v1/models */
    char models[POD_MAX_MODELS][POD_MODEL_MAX];
    /* KV events (issue 11, gateway/kvsub.h): "" none */
    char kv_events[POD_KV_EP_MAX];  /* "tcp://host:port", the pod's ZMQ PUB */
    char kv_replay[POD_KV_EP_MAX];  /* "tcp://host:port", its replay ROUTER */
    char kv_topic[POD_KV_EP_MAX];   /* subscription prefix ("" every topic) */
    /* cost and utilisation (issue 13, core/podutil.h) */
    double cost_per_hour;           /* < 0: from costs[accelerator], else unpriced */
    char accelerator[GW_ACCEL_MAX]; /* a key of the costs table, "" none */
    uint32_t max_num_seqs;          /* the engine's batch limit (vLLM's 256) */
    /* the pod accepts HTTP/2 cleartext with prior knowledge (kvgate-podsim
     * does; vLLM's and SGLang's uvicorn do not): the bypass splices an h2c
     * client's connection to it, and hands one bound for another pod up to
     * kvgated (dpdk/README.md). kvgated itself speaks HTTP/1.1 to pods. */
    uint8_t h2c;
};

/* "costs": accelerator type -> cost per hour of one pod of that type */
struct gw_cost {
    char accelerator[GW_ACCEL_MAX];
    double per_hour;
};

/* splice.mode values: when a session's HTTP/1.1 connection is spliced to
 * its pod in the kernel (user/gateway/splice.c). */
enum gw_splice_mode {
    GW_SPLICE_AUTO = 0,  /* where the model's policy pins sessions and nothing needs to
                          * see each request: mode prefix-aware, no shadow, no canary */
    GW_SPLICE_ON = 1,
    GW_SPLICE_OFF = 2,
};

struct gw_splice_model {
    char model[POD_MODEL_MAX];
    int mode;                     /* enum gw_splice_mode */
};

/* "tokenizers": {"<base model>" | "*": "pseudo" |
 *                {"file": "tokenizer.json", "config": "tokenizer_config.json"}}
 * for token-exact routing (gateway/exact.h). */
struct gw_tok_cfg {
    char model[POD_MODEL_MAX];    /* "*": every model without its own entry */
    int pseudo;                   /* kvgate-podsim's pseudo-tokenizer */
    char file[256];               /* tokenizer.json */
    char config[256];             /* tokenizer_config.json (the chat template); "" none */
};

/* "classes": [{"class": name, "model": m, "path": p}, ...]: the workload
 * class of a request no header names one for (accounting.h); the first
 * rule whose model and path (those it gives) match wins. */
#define GW_CLASS_MAX 64           /* a class name's bytes, NUL included */
#define GW_MAX_CLASS_RULES 32
struct gw_class_rule {
    char name[GW_CLASS_MAX];
    char model[POD_MODEL_MAX];    /* "" any */
    char path[128];               /* "" any; compared without the query */
};

struct gw_config {
    char listen[128];             /* "0.0.0.0:8080" */
    char admin_listen[128];       /* "127.0.0.1:9090" */
    char admin_token[128];        /* bearer token for /admin (empty = none) */
    int admin_insecure;           /* allow a non-loopback admin.listen without a token */
    uint32_t workers;             /* 0 = number of cores */
    uint32_t npods;
    struct gw_pod_cfg pods[POD_MAX];
    struct gw_policies policies;  /* "policy": global and per-model overrides */
    /* fingerprint */
    uint32_t block_bytes;         /* 64 */
    uint32_t max_blocks;          /* 256 */
    /* prefix index */
    uint32_t index_max_entries;   /* 2,000,000 */
    uint32_t index_default_blocks;/* per pod until its cache size is scraped */
    double bytes_per_token;       /* prompt bytes per model token (4) */
    /* exact index and KV-event subscriber (kv_events.*) */
    uint32_t kv_max_entries;      /* 1,048,576 (block, pod) pairs */
    uint32_t kv_replay_timeout_ms;/* 2000 */
    uint32_t kv_silence_ms;       /* 3000 */
    uint64_t kv_silence_tokens;   /* 4096 */
    uint32_t ntokenizers;         /* "tokenizers" */
    struct gw_tok_cfg tokenizers[GW_MAX_OVERRIDES];
    /* control thread */
    uint32_t scrape_ms;           /* 50 */
    uint32_t scrape_timeout_ms;   /* 1000 */
    uint32_t health_ms;           /* 1000 */
    uint32_t models_ms;           /* 5000: /v1/models refresh */
    size_t scrape_max_page;       /* 4 MiB: a /metrics or /v1/models body past it fails */
    /* limits */
    uint32_t max_header_bytes;    /* 65536 */
    uint64_t max_body_bytes;      /* 32 MiB */
    uint32_t max_connections;     /* 10000 (all workers) */
    uint32_t header_timeout_ms;   /* 10000: whole request head + body */
    uint32_t idle_timeout_ms;     /* 60000: keep-alive idle */
    uint32_t connect_timeout_ms;  /* 1000 */
    uint32_t first_byte_timeout_ms; /* 120000: pod's first response byte */
    size_t max_buffered_bytes;    /* 1 MiB: output buffered per stream before backpressure */
    uint64_t max_buffered_total_bytes; /* 1 GiB: request bodies buffered, all connections */
    uint32_t stream_idle_timeout_ms;/* 60000: a started answer with no byte from its pod */
    uint32_t send_timeout_ms;     /* 60000: a client that takes none of its answer */
    uint32_t drain_timeout_ms;    /* 30000: SIGTERM: in-flight streams finish within this */
    /* passive outlier detection and the retry budget (core/outlier.h) */
    struct outlier_cfg outlier;
    /* the guarded canary (core/rollout.h; started by POST /admin/rollout) */
    struct rollout_cfg rollout;
    int has_candidate;            /* rollout.candidate given */
    struct gw_policies candidate; /* the policy the canary routes by, when given */
    /* accelerator costs (pods[].accelerator names one) */
    uint32_t ncosts;
    struct gw_cost costs[GW_MAX_COSTS];
    /* metrics */
    int tenant_from_user;         /* tenant label from the body's "user" (off) */
    /* accounting (issue 13, accounting.h) */
    int accounting;               /* accounting.enabled (on): the usage scan, token and
                                   * cost counters, the report book, the rollout book */
    int request_usage;            /* ask pods for usage on streams (off) */
    uint32_t nclasses;
    struct gw_class_rule classes[GW_MAX_CLASS_RULES];
    /* access log */
    char access_log[256];         /* path, "-" for stdout, "" off */
    size_t access_log_buffer;     /* 1 MiB: lines queued for the log's writer thread */
    /* kernel splice of session flows (issue 5) */
    int splice_mode;              /* enum gw_splice_mode, AUTO */
    uint64_t splice_budget;       /* bytes in flight per direction per flow, 4 MiB */
    uint32_t nsplice_models;
    struct gw_splice_model splice_models[GW_MAX_OVERRIDES];
    /* the bypass workers' decision channel (issue 12, gateway/decide_srv.h) */
    char bypass_decide_socket[108];  /* unix SOCK_SEQPACKET path (sun_path), "" off */
    uint32_t bypass_max_outstanding; /* 256: decisions one worker may hold open */
    /* the bypass workers' hand-ups (issue 12, gateway/adopt_srv.h) */
    char bypass_adopt_socket[108];   /* unix SOCK_SEQPACKET path (sun_path), "" off */
};

void gw_config_defaults(struct gw_config *c);

/* A pod's cost per hour: its own cost_per_hour, else its accelerator's in
 * c->costs; -1 when it has neither (unpriced). */
double gw_pod_cost_per_hour(const struct gw_config *c, const struct gw_pod_cfg *p);

/* Loads a JSON file over the defaults. 0, or -1 with err filled with
 * "<path>: <key path>: <what is wrong>". */
int gw_config_load(const char *path, struct gw_config *c, char *err, size_t errlen);
/* Parses JSON text (same rules). */
int gw_config_parse(const char *json, size_t len, struct gw_config *c, char *err,
                    size_t errlen);

/* The admin API on a non-loopback address (admin_listen; "" = c's) with
 * no admin.token is refused unless admin.insecure is true: anyone who
 * reaches it could reroute every request. 0, or -1 with a sentence naming
 * both keys. Host names other than "localhost" count as non-loopback (no
 * DNS here: reloads call it on the control thread). */
int gw_config_check_admin(const struct gw_config *c, const char *admin_listen, char *err,
                          size_t errlen);
/* A listener's "host:port" (allow_off: "" too), as `listen` and
 * `admin.listen` take it (--listen, --admin). No DNS. 0, or -1 with err =
 * `expected "host:port", got "..." (why)`. */
int gw_config_check_listen(const char *spec, int allow_off, char *err, size_t errlen);

/* The keys a reload does not apply (they keep their running value until a
 * restart: listen, workers, limits.*, splice.*, ...; config.c's key table
 * says which) whose value differs between the running config and the one
 * just loaded, as key paths ("splice.mode, limits.send_timeout_ms") in
 * out. Returns how many. */
int gw_config_restart_keys(const struct gw_config *running, const struct gw_config *next,
                           char *out, size_t cap);

/* ---- config_pod.c ---- */

/* "http://host:port" -> pod entry (flags and admin API). 0 or -1 + err. */
int gw_pod_from_url(const char *url, struct gw_pod_cfg *p, char *err, size_t errlen);
/* One pod object {"url","name","engine","models"} found at key path `path`
 * ("" for a bare request body). 0, or -1 with err = "<path>.<key>: <what
 * is wrong>". */
int gwc_pod_parse(const struct cJSON *o, const char *path, struct gw_pod_cfg *p,
                  char *err, size_t errlen);
/* The "pods" array into c->pods / c->npods (names and addresses unique). */
int gwc_pods_parse(const struct cJSON *arr, struct gw_config *c, char *err, size_t errlen);
/* "vllm", "sglang", "trtllm". */
const char *gwc_engine_name(enum pod_engine e);
/* "host:port", "[v6]:port" into out. 0, or -1 when it does not fit. */
int gw_hostport_text(const char *host, uint16_t port, char *out, size_t n);

#endif
