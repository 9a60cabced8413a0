/* workload: seeded request generators for the serving benchmark.
 *
 * A workload is a list of items (one per request) plus the order in which
 * the open-loop schedule sends them. Bodies are built on demand, from the
 * item and the seed alone, so nothing large is held in memory and any
 * request can be regenerated identically. Kinds:
 *
 *   shared-prefix  G groups, each with its own system prompt of S tokens;
 *                  questions of Q tokens; requests interleaved randomly.
 *   multi-turn     N sessions of T turns; turn k carries the whole history
 *                  (system, user/assistant pairs with the server's actual
 *                  answers); the next turn is due think time after the
 *                  previous answer arrives (the runner schedules it).
 *   no-sharing     unique prompts of L tokens (the control).
 *   hot-prefix     a fraction H of requests share one system prompt, the
 *                  rest have unique ones.
 *   lora-mix       shared-prefix prompts, the model field drawn among
 *                  adapters with Zipf skew Z.
 *   trace          Mooncake JSONL replay (timestamp ms, input_length,
 *                  output_length, hash_ids of 512-token blocks; see
 *                  trace_* in the spec for scaling).
 *   prefix-pool    a fixed pool of G x P prompts, each its group's system
 *                  prompt + its own question, shuffled once by the seed;
 *                  requests cycle through the pool in that order, so every
 *                  prompt (question included) comes back every G x P
 *                  requests. inference-perf's shared_prefix data, which
 *                  llm-d's precise-scheduling benchmark uses, does the same.
 *
 * Lengths are in tokens of kvgate-podsim's tokenizer (4 bytes each).
 * Times are simulated seconds. */
#ifndef KVGATE_BENCH_WORKLOAD_H
#define KVGATE_BENCH_WORKLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "common/sbuf.h"
#include "schedule.h"

enum lg_wl_kind {
    LG_WL_SHARED_PREFIX = 0,
    LG_WL_MULTI_TURN,
    LG_WL_NO_SHARING,
    LG_WL_HOT_PREFIX,
    LG_WL_LORA_MIX,
    LG_WL_TRACE,
    LG_WL_PREFIX_POOL,
};

#define LG_TRACE_BLOCK_TOKENS 512          /* a Mooncake hash id covers 512 tokens */
#define LG_TRACE_MAX_LINE (1u << 20)       /* bytes of one trace line */
#define LG_TRACE_MAX_HASHES_LINE 65536     /* hash ids of one request (33.5M tokens) */
#define LG_TRACE_MAX_HASHES (1u << 25)     /* hash ids of the whole trace (256 MiB) */
#define LG_TRACE_MAX_LEN 10000000u         /* input_length, output_length */
#define LG_MAX_ITEMS 10000000u
#define LG_MAX_ADAPTERS 256

struct lg_wl_spec {
    enum lg_wl_kind kind;
    uint64_t seed;
    const char *model;         /* base model name */
    uint32_t groups;           /* shared-prefix, lora-mix; multi-turn: distinct system prompts (0 = one per session) */
    uint32_t tenants;          /* tenants named (x-gateway-inference-fairness-id), 0 none */
    uint32_t prompts_per_group;
    uint32_t system_len, question_len, output_len, prompt_len; /* tokens */
    uint32_t sessions, turns;
    double think_ms;           /* simulated ms between an answer and the next turn */
    double hot_share;          /* 0..1 */
    const char *adapters;      /* comma-separated (lora-mix) */
    double skew;               /* Zipf exponent (lora-mix) */
    const char *trace_path;
    double trace_speedup;      /* trace timestamps divided by this (default 1) */
    uint32_t trace_block_tokens; /* tokens a hash id stands for here (0 = 512): input and
                                    output lengths scale by trace_block_tokens / 512 */
    uint32_t trace_max_input;  /* scaled prompts longer than this are cut (0 = none) */
    double trace_start;        /* trace seconds skipped (timestamps < start x 1000) */
    double trace_window;       /* trace seconds replayed from trace_start (0 = to the end) */
    uint32_t requests;         /* cap on requests; 0 = the workload's natural size */
    double duration;           /* simulated s; arrivals after it are not sent; 0 = none */
    struct lg_sched_cfg sched; /* arrival process (rate = requests/s; multi-turn: sessions/s) */
};

struct lg_wl_item {
    double sched_s;   /* simulated s from start; < 0 until known (later turns) */
    uint32_t a, b;    /* shared-prefix/lora-mix: group, index in group;
                         hot-prefix: hot (1/0); multi-turn: session, turn;
                         trace: line */
    uint32_t out_len;
    uint16_t model;   /* index into models[] */
};

struct lg_trace_req {
    uint32_t in_len, out_len, nhash;
    size_t hash_off; /* into hashes[] */
};

struct lg_workload {
    struct lg_wl_spec spec;
    struct lg_wl_item *items;
    size_t n;
    uint32_t *order; /* items the schedule sends, by time (multi-turn: first turns) */
    size_t norder;
    char **models;
    uint32_t nmodels;
    struct lg_trace_req *trace;
    uint64_t *hashes;
    size_t nhashes;
    size_t trace_lines, trace_cut; /* requests read; of those, cut to trace_max_input */
    struct sbuf *answers; /* multi-turn: the server's answer to each item */
    struct sbuf scratch;
};

/* What a request needs beyond its body. */
struct lg_wl_meta {
    const char *model;
    char session_id[48]; /* "" when none: x-session-id header */
    char tenant[24];     /* "" when none: x-gateway-inference-fairness-id header */
    uint32_t prompt_tokens; /* as the server will count them */
};

/* Generates the workload. 0, or -1 with a sentence in err. */
int lg_wl_init(struct lg_workload *w, const struct lg_wl_spec *spec, char *err,
               size_t errlen);
void lg_wl_free(struct lg_workload *w);

/* Builds item i: appends its JSON body to body and (if rendered != NULL)
 * its rendered prompt. placeholder: multi-turn history uses made-up answers
 * of output_len tokens where the server's are not known yet. */
int lg_wl_build(struct lg_workload *w, size_t i, struct sbuf *body,
                struct sbuf *rendered, struct lg_wl_meta *meta, int placeholder);

/* Multi-turn: records the server's answer to item i. */
void lg_wl_set_answer(struct lg_workload *w, size_t i, const char *text, size_t n);

/* Multi-turn: the item of the same session's next turn, or -1. */
long lg_wl_next_turn(const struct lg_workload *w, size_t i);

/* The ideal prefix hit rate predicted before the run (multi-turn answers are
 * placeholders of the right length); hit and prompt tokens in *hit, *prompt. */
double lg_wl_ideal(struct lg_workload *w, uint64_t *hit, uint64_t *prompt);

/* Both ceilings predicted before the run (ideal.h), the finite one for a
 * fleet of fleet_kv_blocks 16-token blocks (0: not computed, finite = -1). */
struct lg_wl_ideals {
    double infinite, finite;
    uint64_t hit, finite_hit, prompt;
    uint64_t distinct_blocks; /* the workload's cacheable set, in 16-token blocks */
};
void lg_wl_ideals(struct lg_workload *w, uint64_t fleet_kv_blocks, struct lg_wl_ideals *out);

int lg_wl_kind_parse(const char *s, enum lg_wl_kind *out);
const char *lg_wl_kind_name(enum lg_wl_kind k);

/* Text of trace block hash_id: tokens * 4 bytes appended, a function of
 * the id alone (equal ids, equal text, whatever the seed). */
void lg_trace_block(struct sbuf *b, uint64_t hash_id, uint32_t tokens);

#endif
