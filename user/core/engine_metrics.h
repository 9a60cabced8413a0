/* engine_metrics: the load figures kvgate routes on, read from one scrape of
 * a model server's /metrics page (vLLM, SGLang, TensorRT-LLM serve; names in
 * DESIGN.md, "Model servers: what kvgate reads from them").
 *
 * Aggregation over several series of one metric:
 *   - series whose model_name label differs from model_filter are skipped
 *     (series without the label are kept: a single-model server may omit
 *     it);
 *   - waiting, running, cache blocks, the vLLM prefix counters and the
 *     token counters are summed
 *     over the remaining series (DP engines, several models);
 *   - except that series differing only in tp_rank / pp_rank are mirrors of
 *     one scheduler (SGLang runs one scheduler per TP and PP rank, each
 *     reporting the same queue): they count once, at their maximum;
 *   - KV usage is the maximum (the fullest engine saturates first);
 *   - vllm:lora_requests_info: the series with the newest value (a unix
 *     timestamp) wins, since vLLM keeps stale label sets.
 * A field with any insane series (negative, NaN or infinite, KV usage above
 * 1.5, counts above 1e9) is treated as missing: a partial sum would
 * understate the load. KV usage in (1, 1.5] is clamped to 1. */
#ifndef KVGATE_CORE_ENGINE_METRICS_H
#define KVGATE_CORE_ENGINE_METRICS_H

#include <stdint.h>

#include "core/promparse.h"

enum engine_kind { ENGINE_AUTO, ENGINE_VLLM, ENGINE_SGLANG, ENGINE_TRTLLM };

/* engine_load.have: which fields the page supplied (sane). */
#define HAVE_WAITING (1u << 0)
#define HAVE_RUNNING (1u << 1)
#define HAVE_KV (1u << 2)
#define HAVE_CACHE_CFG (1u << 3)  /* cache_blocks > 0; block_size may be 0 */
#define HAVE_LORA (1u << 4)       /* running/waiting_loras, max_lora, ts */
#define HAVE_PREFIX (1u << 5)     /* prefix_queries and prefix_hits */
#define HAVE_KV_LEGACY (1u << 6)  /* kv_usage came from gpu_cache_usage_perc */
#define HAVE_TOKENS (1u << 8)     /* prompt_tokens and generation_tokens */
#define HAVE_LORA_TRUNC (1u << 7) /* an adapter list did not fit: its last
                                   * names were dropped, whole */

#define ENGINE_LORA_LIST 512

struct engine_load {
    int kind_detected;          /* enum engine_kind; ENGINE_AUTO: none found */
    double waiting, running;    /* requests */
    double kv_usage;            /* 0..1 */
    int64_t cache_blocks;       /* KV capacity in blocks, 0 unknown */
    int64_t block_size;         /* tokens per block, 0 unknown */
    uint64_t prefix_queries, prefix_hits; /* vLLM counters (tokens), 0 absent */
    uint64_t prompt_tokens, generation_tokens; /* counters: tokens prefilled (cached
                                                * included) and generated */
    char running_loras[ENGINE_LORA_LIST]; /* comma-separated, unescaped */
    char waiting_loras[ENGINE_LORA_LIST];
    int max_lora;
    double lora_info_ts;        /* value of the winning lora_requests_info */
    unsigned have;              /* HAVE_* */
    struct prom_stats stats;    /* of the page, for the scrape's counters */
};

/* Parses one page. kind ENGINE_AUTO picks the engine from the first sample
 * whose name starts with "vllm:", "sglang:" or "trtllm_"; only that engine's
 * names are read. model_filter: the model_name to aggregate over, NULL for
 * every series. *out is always overwritten.
 * Returns 0 when waiting, running or KV usage was found; -ENODATA when none
 * was; -EINVAL for a page that is not Prometheus text (out->have is then 0)
 * or an unknown kind. */
int engine_load_parse(const char *buf, size_t len, enum engine_kind kind,
                      const char *model_filter, struct engine_load *out);

const char *engine_kind_name(enum engine_kind kind);

#endif
