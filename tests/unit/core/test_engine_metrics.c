/* Unit tests for user/core/engine_metrics.c over hand-written pages shaped
 * like each server's output (prometheus_client number formatting, HELP and
 * TYPE lines, counters as _total plus _created, histograms). */
#include "harness.h"

#include <errno.h>
#include <stdlib.h>

#include "core/engine_metrics.h"

#define MODEL "meta-llama/Llama-3.1-8B-Instruct"
#define VL "engine=\"0\",model_name=\"" MODEL "\""

#define GAUGE(name, help) "# HELP " name " " help "\n# TYPE " name " gauge\n"
#define COUNTER(name, help) \
    "# HELP " name "_total " help "\n# TYPE " name "_total counter\n"
#define CREATED(name, help) \
    "# HELP " name "_created " help "\n# TYPE " name "_created gauge\n"

/* vLLM v1 (0.10-style): process metrics first, then vllm: families. */
static const char vllm_page[] =
    "# HELP python_gc_objects_collected_total Objects collected during gc\n"
    "# TYPE python_gc_objects_collected_total counter\n"
    "python_gc_objects_collected_total{generation=\"0\"} 12034.0\n"
    "python_gc_objects_collected_total{generation=\"1\"} 2311.0\n"
    "python_gc_objects_collected_total{generation=\"2\"} 391.0\n"
    "# HELP python_info Python platform information\n"
    "# TYPE python_info gauge\n"
    "python_info{implementation=\"CPython\",major=\"3\",minor=\"12\","
    "patchlevel=\"3\",version=\"3.12.3\"} 1.0\n"
    "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
    "# TYPE process_virtual_memory_bytes gauge\n"
    "process_virtual_memory_bytes 4.2717224448e+010\n"
    "# HELP process_start_time_seconds Start time of the process since unix "
    "epoch in seconds.\n"
    "# TYPE process_start_time_seconds gauge\n"
    "process_start_time_seconds 1.72345678912e+09\n"
    GAUGE("vllm:num_requests_running",
          "Number of requests in model execution batches.")
    "vllm:num_requests_running{" VL "} 7.0\n"
    GAUGE("vllm:num_requests_waiting",
          "Number of requests waiting to be processed.")
    "vllm:num_requests_waiting{" VL "} 12.0\n"
    GAUGE("vllm:kv_cache_usage_perc",
          "KV-cache usage. 1 means 100 percent usage.")
    "vllm:kv_cache_usage_perc{" VL "} 0.42137096774193544\n"
    COUNTER("vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.")
    "vllm:prefix_cache_queries_total{" VL "} 1.234567e+06\n"
    CREATED("vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.")
    "vllm:prefix_cache_queries_created{" VL "} 1.7234567891234e+09\n"
    COUNTER("vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.")
    "vllm:prefix_cache_hits_total{" VL "} 654320.0\n"
    CREATED("vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.")
    "vllm:prefix_cache_hits_created{" VL "} 1.7234567891234e+09\n"
    COUNTER("vllm:num_preemptions",
            "Cumulative number of preemption from the engine.")
    "vllm:num_preemptions_total{" VL "} 3.0\n"
    COUNTER("vllm:prompt_tokens", "Number of prefill tokens processed.")
    "vllm:prompt_tokens_total{" VL "} 2.5e+06\n"
    COUNTER("vllm:generation_tokens", "Number of generation tokens processed.")
    "vllm:generation_tokens_total{" VL "} 98765.0\n"
    GAUGE("vllm:lora_requests_info", "Running stats on lora requests.")
    /* three label sets, not in time order: the middle one is newest */
    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"sql-lora\","
    "waiting_lora_adapters=\"\"} 1.7234568e+09\n"
    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"sql-lora,"
    "chat-lora\",waiting_lora_adapters=\"tool-lora\"} 1.7234569005e+09\n"
    "vllm:lora_requests_info{max_lora=\"4\",running_lora_adapters=\"\","
    "waiting_lora_adapters=\"\"} 1.723456e+09\n"
    GAUGE("vllm:cache_config_info",
          "Information of the LLMEngine CacheConfig")
    /* one label per CacheConfig field: 24 here, more in newer releases */
    "vllm:cache_config_info{block_size=\"16\",cache_dtype=\"auto\","
    "calculate_kv_scales=\"False\",cpu_kvcache_space_bytes=\"None\","
    "cpu_offload_gb=\"0\",enable_prefix_caching=\"True\",engine=\"0\","
    "gpu_memory_utilization=\"0.9\",is_attention_free=\"False\","
    "kv_cache_memory_bytes=\"None\",kv_sharing_fast_prefill=\"False\","
    "mamba_cache_dtype=\"auto\",mamba_page_size_padded=\"None\","
    "mamba_ssm_cache_dtype=\"auto\",num_cpu_blocks=\"None\","
    "num_gpu_blocks=\"27153\",num_gpu_blocks_override=\"None\","
    "prefix_caching_hash_algo=\"sha256\",sliding_window=\"None\","
    "swap_space=\"4\",swap_space_bytes=\"4294967296\","
    "kv_offloading_backend=\"native\",kv_offloading_size=\"None\","
    "user_specified_block_size=\"False\"} 1.0\n"
    "# HELP vllm:time_to_first_token_seconds Histogram of time to first "
    "token in seconds.\n"
    "# TYPE vllm:time_to_first_token_seconds histogram\n"
    "vllm:time_to_first_token_seconds_sum{" VL "} 41.82713\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"0.001\"} 0.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"0.005\"} 0.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"0.01\"} 3.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"0.02\"} 40.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"0.04\"} 210.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"0.1\"} 800.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"1.0\"} 999.0\n"
    "vllm:time_to_first_token_seconds_bucket{" VL ",le=\"+Inf\"} 1000.0\n"
    "vllm:time_to_first_token_seconds_count{" VL "} 1000.0\n"
    CREATED("vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.")
    "vllm:time_to_first_token_seconds_created{" VL "} 1.7234567891234e+09\n"
    COUNTER("vllm:request_success",
            "Count of successfully processed requests.")
    "vllm:request_success_total{" VL ",finished_reason=\"stop\"} 950.0\n"
    "vllm:request_success_total{" VL ",finished_reason=\"length\"} 48.0\n"
    "vllm:request_success_total{" VL ",finished_reason=\"abort\"} 2.0\n";

/* SGLang, TP=2 (every TP rank's scheduler reports the same queue), DP=2. */
#define SGL(dp, tp)                                                        \
    "model_name=\"" MODEL "\",engine_type=\"unified\",tp_rank=\"" tp        \
    "\",pp_rank=\"0\",dp_rank=\"" dp "\""

static const char sglang_page[] =
    "# HELP sglang:num_running_reqs The number of running requests.\n"
    "# TYPE sglang:num_running_reqs gauge\n"
    "sglang:num_running_reqs{" SGL("0", "0") "} 5.0\n"
    "sglang:num_running_reqs{" SGL("0", "1") "} 5.0\n"
    "sglang:num_running_reqs{" SGL("1", "0") "} 3.0\n"
    "sglang:num_running_reqs{" SGL("1", "1") "} 3.0\n"
    "# HELP sglang:num_used_tokens The number of used tokens.\n"
    "# TYPE sglang:num_used_tokens gauge\n"
    "sglang:num_used_tokens{" SGL("0", "0") "} 81234.0\n"
    "# HELP sglang:token_usage The token usage.\n"
    "# TYPE sglang:token_usage gauge\n"
    "sglang:token_usage{" SGL("0", "0") "} 0.28\n"
    "sglang:token_usage{" SGL("0", "1") "} 0.28\n"
    "sglang:token_usage{" SGL("1", "0") "} 0.61\n"
    "sglang:token_usage{" SGL("1", "1") "} 0.61\n"
    "# HELP sglang:num_queue_reqs The number of requests in the waiting "
    "queue.\n"
    "# TYPE sglang:num_queue_reqs gauge\n"
    "sglang:num_queue_reqs{" SGL("0", "0") "} 2.0\n"
    "sglang:num_queue_reqs{" SGL("0", "1") "} 2.0\n"
    "sglang:num_queue_reqs{" SGL("1", "0") "} 4.0\n"
    "sglang:num_queue_reqs{" SGL("1", "1") "} 4.0\n"
    "# HELP sglang:cache_hit_rate The prefix cache hit rate.\n"
    "# TYPE sglang:cache_hit_rate gauge\n"
    "sglang:cache_hit_rate{" SGL("0", "0") "} 0.007507552643049313\n"
    "# HELP sglang:cache_config_info Information of the cache config\n"
    "# TYPE sglang:cache_config_info gauge\n"
    "sglang:cache_config_info{" SGL("0", "0") ",page_size=\"1\","
    "num_pages=\"400000\"} 1.0\n"
    "sglang:cache_config_info{" SGL("0", "1") ",page_size=\"1\","
    "num_pages=\"400000\"} 1.0\n"
    "sglang:cache_config_info{" SGL("1", "0") ",page_size=\"1\","
    "num_pages=\"400000\"} 1.0\n"
    "# HELP sglang:prompt_tokens_total Number of prefill tokens processed.\n"
    "# TYPE sglang:prompt_tokens_total counter\n"
    "sglang:prompt_tokens_total{model_name=\"" MODEL "\"} 8.128902e+06\n"
    "# HELP sglang:time_to_first_token_seconds Histogram of time to first "
    "token in seconds.\n"
    "# TYPE sglang:time_to_first_token_seconds histogram\n"
    "sglang:time_to_first_token_seconds_sum{model_name=\"" MODEL "\"} "
    "2.3518e+04\n"
    "sglang:time_to_first_token_seconds_bucket{le=\"0.1\",model_name=\""
    MODEL "\"} 0.0\n"
    "sglang:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\""
    MODEL "\"} 11008.0\n"
    "sglang:time_to_first_token_seconds_count{model_name=\"" MODEL "\"} "
    "11008.0\n";

#define TL "model_name=\"llama-3.1-8b\",engine_type=\"pytorch\""

static const char trtllm_page[] =
    "# HELP trtllm_request_success_total Count of successfully processed "
    "requests.\n"
    "# TYPE trtllm_request_success_total counter\n"
    "trtllm_request_success_total{" TL ",finished_reason=\"stop\"} 120.0\n"
    "# HELP trtllm_e2e_request_latency_seconds Histogram of end to end "
    "request latency in seconds.\n"
    "# TYPE trtllm_e2e_request_latency_seconds histogram\n"
    "trtllm_e2e_request_latency_seconds_bucket{" TL ",le=\"0.3\"} 4.0\n"
    "trtllm_e2e_request_latency_seconds_bucket{" TL ",le=\"+Inf\"} 120.0\n"
    "trtllm_e2e_request_latency_seconds_count{" TL "} 120.0\n"
    "trtllm_e2e_request_latency_seconds_sum{" TL "} 301.5\n"
    "# HELP trtllm_num_requests_running Number of active requests.\n"
    "# TYPE trtllm_num_requests_running gauge\n"
    "trtllm_num_requests_running{" TL "} 9.0\n"
    "# HELP trtllm_num_requests_waiting Number of queued requests.\n"
    "# TYPE trtllm_num_requests_waiting gauge\n"
    "trtllm_num_requests_waiting{" TL "} 1.0\n"
    "# HELP trtllm_kv_cache_utilization KV cache utilization.\n"
    "# TYPE trtllm_kv_cache_utilization gauge\n"
    "trtllm_kv_cache_utilization{" TL "} 0.75\n"
    "# HELP trtllm_kv_cache_tokens_per_block Tokens per KV cache block.\n"
    "# TYPE trtllm_kv_cache_tokens_per_block gauge\n"
    "trtllm_kv_cache_tokens_per_block{" TL "} 32.0\n"
    "# HELP trtllm_kv_cache_max_blocks Max number of KV cache blocks.\n"
    "# TYPE trtllm_kv_cache_max_blocks gauge\n"
    "trtllm_kv_cache_max_blocks{" TL "} 8192.0\n"
    "# HELP trtllm_kv_cache_hit_rate KV cache reuse rate.\n"
    "# TYPE trtllm_kv_cache_hit_rate gauge\n"
    "trtllm_kv_cache_hit_rate{" TL "} 0.5\n";

static int parse(const char *page, enum engine_kind k, const char *filter,
                 struct engine_load *out)
{
    return engine_load_parse(page, strlen(page), k, filter, out);
}

static void check_vllm(const struct engine_load *l)
{
    CHECK_EQ(l->kind_detected, ENGINE_VLLM);
    CHECK_EQ(l->have & (HAVE_WAITING | HAVE_RUNNING | HAVE_KV |
                        HAVE_CACHE_CFG | HAVE_LORA | HAVE_PREFIX),
             HAVE_WAITING | HAVE_RUNNING | HAVE_KV | HAVE_CACHE_CFG |
                 HAVE_LORA | HAVE_PREFIX);
    CHECK_EQ(l->have & (HAVE_KV_LEGACY | HAVE_LORA_TRUNC), 0);
    CHECK_EQ(l->waiting, 12);
    CHECK_EQ(l->running, 7);
    CHECK_NEAR(l->kv_usage, 0.42137096774193544, 0);
    CHECK_EQ(l->cache_blocks, 27153);
    CHECK_EQ(l->block_size, 16);
    CHECK_EQ(l->prefix_queries, 1234567);
    CHECK_EQ(l->prefix_hits, 654320);
    CHECK(l->have & HAVE_TOKENS);
    CHECK_EQ(l->prompt_tokens, 2500000);
    CHECK_EQ(l->generation_tokens, 98765);
    CHECK_STR(l->running_loras, "sql-lora,chat-lora");
    CHECK_STR(l->waiting_loras, "tool-lora");
    CHECK_EQ(l->max_lora, 4);
    CHECK_NEAR(l->lora_info_ts, 1723456900.5, 1e-6);
}

TEST(vllm_v1)
{
    struct engine_load l;
    CHECK_EQ(parse(vllm_page, ENGINE_VLLM, NULL, &l), 0);
    check_vllm(&l);
    CHECK_EQ(l.stats.malformed, 0);
    CHECK_EQ(l.stats.truncated, 0);
    CHECK_EQ(parse(vllm_page, ENGINE_AUTO, NULL, &l), 0);
    check_vllm(&l);
    CHECK_EQ(parse(vllm_page, ENGINE_AUTO, MODEL, &l), 0);
    check_vllm(&l);
    /* the wrong engine finds nothing, and says so */
    CHECK_EQ(parse(vllm_page, ENGINE_SGLANG, NULL, &l), -ENODATA);
    CHECK_EQ(l.kind_detected, ENGINE_SGLANG);
    CHECK_EQ(l.have, 0);
}

TEST(vllm_legacy_kv)
{
    static const char old_only[] =
        GAUGE("vllm:gpu_cache_usage_perc", "GPU KV-cache usage.")
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n";
    static const char both[] =
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n"
        "vllm:kv_cache_usage_perc{model_name=\"m\"} 0.5\n"
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.75\n";
    static const char new_insane[] =
        "vllm:kv_cache_usage_perc{model_name=\"m\"} NaN\n"
        "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n";
    struct engine_load l;

    CHECK_EQ(parse(old_only, ENGINE_AUTO, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_KV | HAVE_KV_LEGACY);
    CHECK_NEAR(l.kv_usage, 0.25, 0);
    CHECK_EQ(parse(both, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_KV);
    CHECK_NEAR(l.kv_usage, 0.5, 0);
    /* the new name present but insane: missing, no fallback */
    CHECK_EQ(parse(new_insane, ENGINE_VLLM, NULL, &l), -ENODATA);
    CHECK_EQ(l.have, 0);
}

TEST(sglang)
{
    struct engine_load l;

    CHECK_EQ(parse(sglang_page, ENGINE_AUTO, NULL, &l), 0);
    CHECK_EQ(l.kind_detected, ENGINE_SGLANG);
    /* TP mirrors count once, DP ranks add up */
    CHECK_EQ(l.waiting, 6);
    CHECK_EQ(l.running, 8);
    CHECK_NEAR(l.kv_usage, 0.61, 0);
    CHECK_EQ(l.cache_blocks, 800000);
    CHECK_EQ(l.block_size, 1);
    CHECK_EQ(l.have, HAVE_WAITING | HAVE_RUNNING | HAVE_KV | HAVE_CACHE_CFG);
    CHECK_EQ(parse(sglang_page, ENGINE_SGLANG, MODEL, &l), 0);
    CHECK_EQ(l.waiting, 6);
    CHECK_EQ(parse(sglang_page, ENGINE_SGLANG, "other", &l), -ENODATA);
}

TEST(trtllm)
{
    struct engine_load l;

    CHECK_EQ(parse(trtllm_page, ENGINE_AUTO, NULL, &l), 0);
    CHECK_EQ(l.kind_detected, ENGINE_TRTLLM);
    CHECK_EQ(l.waiting, 1);
    CHECK_EQ(l.running, 9);
    CHECK_NEAR(l.kv_usage, 0.75, 0);
    CHECK_EQ(l.cache_blocks, 8192);
    CHECK_EQ(l.block_size, 32);
    CHECK_EQ(l.have, HAVE_WAITING | HAVE_RUNNING | HAVE_KV | HAVE_CACHE_CFG);
    CHECK_EQ(parse(trtllm_page, ENGINE_TRTLLM, "llama-3.1-8b", &l), 0);
    CHECK_EQ(l.running, 9);
}

/* AUTO takes the first recognised prefix and reads only that engine. */
TEST(auto_detect)
{
    static const char mixed[] =
        "process_cpu_seconds_total 12.5\n"
        "trtllm_num_requests_waiting 3.0\n"
        "vllm:num_requests_waiting 5.0\n"
        "sglang:num_queue_reqs 7.0\n";
    static const char none[] =
        "process_cpu_seconds_total 12.5\n"
        "# HELP vllm:num_requests_waiting only a comment\n";
    struct engine_load l;

    CHECK_EQ(parse(mixed, ENGINE_AUTO, NULL, &l), 0);
    CHECK_EQ(l.kind_detected, ENGINE_TRTLLM);
    CHECK_EQ(l.waiting, 3);
    CHECK_EQ(parse(mixed, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.waiting, 5);
    CHECK_EQ(parse(mixed, ENGINE_SGLANG, NULL, &l), 0);
    CHECK_EQ(l.waiting, 7);
    CHECK_EQ(parse(none, ENGINE_AUTO, NULL, &l), -ENODATA);
    CHECK_EQ(l.kind_detected, ENGINE_AUTO);
    CHECK_EQ(parse("", ENGINE_AUTO, NULL, &l), -ENODATA);
    CHECK_EQ(engine_load_parse(mixed, sizeof(mixed) - 1, (enum engine_kind)9,
                               NULL, &l), -EINVAL);
    CHECK_STR(engine_kind_name(ENGINE_AUTO), "auto");
    CHECK_STR(engine_kind_name(ENGINE_VLLM), "vllm");
    CHECK_STR(engine_kind_name(ENGINE_SGLANG), "sglang");
    CHECK_STR(engine_kind_name(ENGINE_TRTLLM), "trtllm");
    CHECK_STR(engine_kind_name((enum engine_kind)7), "?");
}

/* Two models (one with two DP engines) behind one endpoint. */
TEST(multi_model)
{
    static const char page[] =
        "vllm:num_requests_waiting{engine=\"0\",model_name=\"a\"} 1.0\n"
        "vllm:num_requests_waiting{engine=\"1\",model_name=\"a\"} 2.0\n"
        "vllm:num_requests_waiting{engine=\"0\",model_name=\"b\"} 10.0\n"
        "vllm:num_requests_running{engine=\"0\",model_name=\"a\"} 3.0\n"
        "vllm:num_requests_running{engine=\"1\",model_name=\"a\"} 4.0\n"
        "vllm:num_requests_running{engine=\"0\",model_name=\"b\"} 20.0\n"
        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"a\"} 0.1\n"
        "vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"a\"} 0.3\n"
        "vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"b\"} 0.9\n"
        "vllm:cache_config_info{block_size=\"16\",engine=\"0\","
        "num_gpu_blocks=\"1000\"} 1.0\n"
        "vllm:cache_config_info{block_size=\"16\",engine=\"1\","
        "num_gpu_blocks=\"1000\"} 1.0\n"
        /* a model name that needs escaping */
        "vllm:num_requests_waiting{engine=\"0\",model_name=\"q\\\"x\"} 100.0\n";
    struct engine_load l;

    CHECK_EQ(parse(page, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.waiting, 113);
    CHECK_EQ(l.running, 27);
    CHECK_NEAR(l.kv_usage, 0.9, 0);
    CHECK_EQ(l.cache_blocks, 2000); /* two engines, two caches */
    CHECK_EQ(parse(page, ENGINE_VLLM, "a", &l), 0);
    CHECK_EQ(l.waiting, 3);
    CHECK_EQ(l.running, 7);
    CHECK_NEAR(l.kv_usage, 0.3, 0);
    CHECK_EQ(l.cache_blocks, 2000); /* no model_name label: kept */
    CHECK_EQ(parse(page, ENGINE_VLLM, "b", &l), 0);
    CHECK_EQ(l.waiting, 10);
    CHECK_EQ(parse(page, ENGINE_VLLM, "q\"x", &l), 0);
    CHECK_EQ(l.waiting, 100);
    CHECK_EQ(l.have & HAVE_RUNNING, 0);
    CHECK_EQ(parse(page, ENGINE_VLLM, "c", &l), -ENODATA);
}

TEST(insane_values)
{
    static const char page[] =
        "vllm:num_requests_waiting{engine=\"0\"} 2.0\n"
        "vllm:num_requests_waiting{engine=\"1\"} -1.0\n" /* spoils the sum */
        "vllm:num_requests_running{engine=\"0\"} 3.0\n"
        "vllm:kv_cache_usage_perc{engine=\"0\"} 1.7\n"
        "vllm:cache_config_info{block_size=\"16\",num_gpu_blocks=\"-5\"} 1\n"
        "vllm:prefix_cache_queries_total 100\n"
        "vllm:prefix_cache_hits_total NaN\n";
    static const char all_bad[] =
        "vllm:num_requests_waiting NaN\n"
        "vllm:num_requests_running +Inf\n"
        "vllm:kv_cache_usage_perc -0.1\n";
    static const char clamp[] =
        "sglang:token_usage 1.2\n"
        "sglang:num_running_reqs 1e12\n"
        "sglang:cache_config_info{page_size=\"16\",num_pages=\"None\"} 1\n";
    static const char trt[] =
        "trtllm_num_requests_waiting 0\n"
        "trtllm_kv_cache_tokens_per_block 0.5\n"
        "trtllm_kv_cache_max_blocks 100\n";
    struct engine_load l;

    CHECK_EQ(parse(page, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_RUNNING);
    CHECK_EQ(l.running, 3);
    CHECK_EQ(l.waiting, 0);
    CHECK_EQ(l.kv_usage, 0);
    CHECK_EQ(parse(all_bad, ENGINE_VLLM, NULL, &l), -ENODATA);
    CHECK_EQ(l.have, 0);
    CHECK_EQ(parse(clamp, ENGINE_SGLANG, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_KV); /* num_pages="None": not known yet */
    CHECK_NEAR(l.kv_usage, 1.0, 0);
    CHECK_EQ(parse(trt, ENGINE_TRTLLM, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_WAITING | HAVE_CACHE_CFG);
    CHECK_EQ(l.cache_blocks, 100);
    CHECK_EQ(l.block_size, 0); /* fractional tokens per block: rejected */

    /* mirrors that disagree (one rank lagging) count at their maximum */
    static const char lag[] =
        "sglang:num_queue_reqs{tp_rank=\"0\",dp_rank=\"0\"} 2\n"
        "sglang:num_queue_reqs{tp_rank=\"1\",dp_rank=\"0\"} 3\n"
        "sglang:num_queue_reqs{tp_rank=\"0\",dp_rank=\"1\"} 1\n";
    CHECK_EQ(parse(lag, ENGINE_SGLANG, NULL, &l), 0);
    CHECK_EQ(l.waiting, 4);

    /* a bad block size spoils only the block size */
    static const char bs[] =
        "vllm:num_requests_running 1\n"
        "vllm:cache_config_info{block_size=\"abc\",num_gpu_blocks=\"100\"} 1\n";
    CHECK_EQ(parse(bs, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_RUNNING | HAVE_CACHE_CFG);
    CHECK_EQ(l.cache_blocks, 100);
    CHECK_EQ(l.block_size, 0);
    static const char big[] =
        "vllm:num_requests_running 1\n"
        "vllm:cache_config_info{block_size=\"16\","
        "num_gpu_blocks=\"1234567890123456789\"} 1\n"
        "trtllm_kv_cache_max_blocks -1\n";
    CHECK_EQ(parse(big, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_RUNNING);
    CHECK_EQ(parse(strchr(big, '\n') + 1, ENGINE_AUTO, NULL, &l), -ENODATA);
    CHECK_EQ(l.kind_detected, ENGINE_VLLM);
    CHECK_EQ(l.have, 0);
    CHECK_EQ(parse(strstr(big, "trtllm_"), ENGINE_AUTO, NULL, &l), -ENODATA);
    CHECK_EQ(l.kind_detected, ENGINE_TRTLLM);
    CHECK_EQ(l.have, 0);
}

/* Cut the page at every byte: whatever is reported must be what the whole
 * page says (a cut "12.0" must never read as 1). */
TEST(truncated_everywhere)
{
    size_t n = sizeof(vllm_page) - 1;
    char *buf = malloc(n);
    int wrong = 0, last_rc = 0;
    struct engine_load l;

    for (size_t cut = 0; cut <= n; cut++) {
        memcpy(buf, vllm_page, cut); /* an exact-size copy for ASan */
        int rc = engine_load_parse(buf, cut, ENGINE_AUTO, NULL, &l);
        if (rc != 0 && rc != -ENODATA)
            wrong++;
        if ((l.have & HAVE_WAITING) && l.waiting != 12)
            wrong++;
        if ((l.have & HAVE_RUNNING) && l.running != 7)
            wrong++;
        if ((l.have & HAVE_KV) && l.kv_usage != 0.42137096774193544)
            wrong++;
        if ((l.have & HAVE_CACHE_CFG) &&
            (l.cache_blocks != 27153 || l.block_size != 16))
            wrong++;
        if ((l.have & HAVE_PREFIX) &&
            (l.prefix_queries != 1234567 || l.prefix_hits != 654320))
            wrong++;
        last_rc = rc;
    }
    CHECK_EQ(wrong, 0);
    CHECK_EQ(last_rc, 0);

    /* cut mid-line right after the waiting gauge's value began */
    const char *w = strstr(vllm_page, "} 12.0\n");
    size_t cut = (size_t)(w - vllm_page) + 3; /* "...} 1" */
    memcpy(buf, vllm_page, cut);
    CHECK_EQ(engine_load_parse(buf, cut, ENGINE_AUTO, NULL, &l), 0);
    CHECK_EQ(l.have, HAVE_RUNNING);
    CHECK_EQ(l.running, 7);
    CHECK_EQ(l.stats.truncated, 1);
    free(buf);
}

TEST(garbage)
{
    static const char html[] =
        "<!DOCTYPE html>\n<html>\n<head><title>502 Bad Gateway</title></head>\n"
        "<body>\n<center><h1>502 Bad Gateway</h1></center>\n</body>\n</html>\n";
    static const char bin[] = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03";
    static const char json[] = "{\"object\":\"error\",\"message\":\"Not Found\"}\n";
    struct engine_load l;

    CHECK_EQ(parse(html, ENGINE_AUTO, NULL, &l), -EINVAL);
    CHECK_EQ(l.have, 0);
    CHECK_EQ(engine_load_parse(bin, sizeof(bin) - 1, ENGINE_VLLM, NULL, &l),
             -EINVAL);
    CHECK_EQ(parse(json, ENGINE_VLLM, NULL, &l), -EINVAL);

    /* a good gauge amid more garbage than text: the page is refused */
    static const char mostly_bad[] =
        "vllm:num_requests_waiting 1.0\n%%%\n@@@\n";
    CHECK_EQ(parse(mostly_bad, ENGINE_VLLM, NULL, &l), -EINVAL);
    CHECK_EQ(l.have, 0);
    CHECK_EQ(l.waiting, 0);
    /* a few bad lines in a good page are skipped */
    char *page = malloc(sizeof(vllm_page) + 64);
    strcpy(page, "%%% not a sample\n");
    strcat(page, vllm_page);
    strcat(page, "vllm:num_requests_waiting{ 3\n");
    CHECK_EQ(parse(page, ENGINE_AUTO, NULL, &l), 0);
    check_vllm(&l);
    CHECK_EQ(l.stats.malformed, 2);
    free(page);
}

TEST(lora_edge_cases)
{
    char page[2048];
    struct engine_load l;
    int n;

    /* an adapter list longer than the field: whole names only */
    n = snprintf(page, sizeof(page),
                 "vllm:num_requests_running 1\n"
                 "vllm:lora_requests_info{max_lora=\"64\","
                 "running_lora_adapters=\"");
    for (int i = 0; i < 60; i++)
        n += snprintf(page + n, sizeof(page) - (size_t)n, "%sadapter-%04d",
                      i ? "," : "", i);
    n += snprintf(page + n, sizeof(page) - (size_t)n,
                  "\",waiting_lora_adapters=\"w\\\"1\"} 5\n");
    CHECK_EQ(engine_load_parse(page, (size_t)n, ENGINE_VLLM, NULL, &l), 0);
    CHECK(l.have & HAVE_LORA);
    CHECK(l.have & HAVE_LORA_TRUNC);
    size_t len = strlen(l.running_loras);
    CHECK(len > 400 && len < sizeof(l.running_loras));
    CHECK(strncmp(l.running_loras + len - 12, "adapter-", 8) == 0);
    CHECK_STR(l.waiting_loras, "w\"1");
    CHECK_EQ(l.max_lora, 64);

    /* one name longer than the field: nothing left of it */
    n = snprintf(page, sizeof(page),
                 "vllm:num_requests_running 1\n"
                 "vllm:lora_requests_info{running_lora_adapters=\"%0600d\"} 5\n",
                 7);
    CHECK_EQ(engine_load_parse(page, (size_t)n, ENGINE_VLLM, NULL, &l), 0);
    CHECK_EQ(l.have & (HAVE_LORA | HAVE_LORA_TRUNC),
             HAVE_LORA | HAVE_LORA_TRUNC);
    CHECK_STR(l.running_loras, "");

    /* NaN / negative stamps never win; labels may be missing */
    static const char odd[] =
        "vllm:num_requests_running 1\n"
        "vllm:lora_requests_info{running_lora_adapters=\"x\"} NaN\n"
        "vllm:lora_requests_info{running_lora_adapters=\"y\"} 10\n"
        "vllm:lora_requests_info{running_lora_adapters=\"z\"} -20\n"
        "vllm:lora_requests_info{max_lora=\"many\"} 9\n";
    CHECK_EQ(parse(odd, ENGINE_VLLM, NULL, &l), 0);
    CHECK_STR(l.running_loras, "y");
    CHECK_STR(l.waiting_loras, "");
    CHECK_EQ(l.max_lora, 0);
    CHECK_EQ(l.lora_info_ts, 10);
}

int main(void)
{
    RUN(vllm_v1);
    RUN(vllm_legacy_kv);
    RUN(sglang);
    RUN(trtllm);
    RUN(auto_detect);
    RUN(multi_model);
    RUN(insane_values);
    RUN(truncated_everywhere);
    RUN(garbage);
    RUN(lora_edge_cases);
    return harness_done();
}
