/* engine: vLLM v1's continuous-batching scheduler on a simulated clock.
 * See engine.h for the scheduling rules; kvcache.c for the block pool. */
#include "podsim/engine.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* Llama-3.1-8B BF16 on one H100, from published kernel profiles (DESIGN.md):
 * TTFT ~25 ms at 1k prompt tokens, ~104 ms at 4k, ~227 ms at 8k; a decode
 * step ~7.5 ms at batch 1, ~20.7 ms at batch 128 with 2k context.
 * 70B TP4: floor and per-token cost from DESIGN.md; its attention terms are
 * the 8B's scaled by query-heads x layers / TP = (64*80/4)/(32*32) = 1.25;
 * 461k tokens of KV = 28813 blocks. */
static const struct profile PROFILES[] = {
    {"llama3-8b-h100", 1.0, 6.5, 0.0222, 50e-6, 1.3e-6, 27000},
    {"llama3-70b-h100-tp4", 1.0, 14.5, 0.0535, 62.5e-6, 1.625e-6, 28813},
};

const struct profile *profile_find(const char *name)
{
    for (size_t i = 0; i < sizeof(PROFILES) / sizeof(PROFILES[0]); i++)
        if (!strcmp(PROFILES[i].name, name))
            return &PROFILES[i];
    return NULL;
}

double profile_step_ms(const struct profile *p, uint64_t n_tokens,
                       uint64_t decode_ctx_tokens, double prefill_attn_units)
{
    double lin = p->per_token_ms * (double)n_tokens;
    return p->overhead_ms + (lin > p->floor_ms ? lin : p->floor_ms) +
           p->decode_ctx_ms * (double)decode_ctx_tokens +
           p->prefill_attn_ms * prefill_attn_units;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint32_t engine_output_token(uint64_t seed, uint32_t i)
{
    /* " abc": a space and three lowercase letters, so generated text is
     * 4 bytes a token, exactly as the pseudo-tokenizer reads prompts */
    uint64_t r = splitmix64(seed ^ ((uint64_t)i << 32 | i));
    uint32_t b0 = ' ', b1 = 'a' + r % 26, b2 = 'a' + (r >> 8) % 26,
             b3 = 'a' + (r >> 16) % 26;
    return b0 | b1 << 8 | b2 << 16 | b3 << 24;
}

/* ---- setup ---- */

int engine_init(struct engine *e, const struct engine_cfg *cfg)
{
    memset(e, 0, sizeof(*e));
    e->cfg = *cfg;
    if (!e->cfg.profile)
        e->cfg.profile = &PROFILES[0];
    if (!e->cfg.kv_blocks)
        e->cfg.kv_blocks = e->cfg.profile->kv_blocks;
    if (!e->cfg.max_num_seqs)
        e->cfg.max_num_seqs = 256;
    if (!e->cfg.max_batched_tokens)
        e->cfg.max_batched_tokens = 8192;
    if (!e->cfg.max_loras)
        e->cfg.max_loras = 4;
    if (e->cfg.max_loras > LORA_MAX)
        e->cfg.max_loras = LORA_MAX;
    e->slowdown = 1.0;
    int rc = kv_init(&e->kv, e->cfg.kv_blocks);
    if (rc)
        return rc;
    e->running_cap = e->cfg.max_num_seqs;
    e->running = calloc(e->running_cap, sizeof(*e->running));
    e->batch = calloc(e->running_cap, sizeof(*e->batch));
    if (!e->running || !e->batch) {
        engine_destroy(e);
        return -ENOMEM;
    }
    hist_init(&e->st.ttft, VLLM_TTFT_BUCKETS, VLLM_TTFT_NBUCKETS);
    hist_init(&e->st.itl, VLLM_ITL_BUCKETS, VLLM_ITL_NBUCKETS);
    hist_init(&e->st.e2e, VLLM_E2E_BUCKETS, VLLM_E2E_NBUCKETS);
    hist_init(&e->st.queue, VLLM_E2E_BUCKETS, VLLM_E2E_NBUCKETS);
    return 0;
}

void engine_destroy(struct engine *e)
{
    kv_destroy(&e->kv);
    free(e->running);
    free(e->batch);
    e->running = e->batch = NULL;
}

int engine_req_prepare(struct sim_req *r, uint32_t num_prompt,
                       uint32_t max_output)
{
    uint64_t cap = (uint64_t)num_prompt + max_output;
    if (cap == 0 || cap > UINT32_MAX / 2)
        return -EINVAL;
    r->tokens_cap = (uint32_t)cap;
    r->num_prompt = num_prompt;
    r->max_output = max_output;
    r->blocks_cap = r->tokens_cap / KV_BLOCK_TOKENS + 1;
    r->hashes_cap = r->blocks_cap;
    r->tokens = malloc(cap * sizeof(*r->tokens));
    r->blocks = malloc(r->blocks_cap * sizeof(*r->blocks));
    r->hashes = malloc(r->hashes_cap * sizeof(*r->hashes));
    if (!r->tokens || !r->blocks || !r->hashes) {
        engine_req_release(r);
        return -ENOMEM;
    }
    return 0;
}

void engine_req_release(struct sim_req *r)
{
    free(r->tokens);
    free(r->blocks);
    free(r->hashes);
    r->tokens = NULL;
    r->blocks = NULL;
    r->hashes = NULL;
}

/* ---- adapters ---- */

int engine_lora_find(const struct engine *e, const char *name)
{
    for (uint32_t i = 0; i < e->nloras; i++)
        if (e->loras[i].loaded && !strcmp(e->loras[i].name, name))
            return (int)i + 1;
    return 0;
}

int engine_lora_add(struct engine *e, const char *name)
{
    if (!name || !*name || strlen(name) >= LORA_NAME_MAX)
        return -EINVAL;
    if (engine_lora_find(e, name))
        return -EEXIST;
    uint32_t i = 0;
    while (i < e->nloras && e->loras[i].loaded)
        i++;
    if (i == LORA_MAX)
        return -ENOSPC;
    if (i == e->nloras)
        e->nloras++;
    memset(&e->loras[i], 0, sizeof(e->loras[i]));
    strcpy(e->loras[i].name, name);
    e->loras[i].loaded = 1;
    return (int)i + 1;
}

static int lora_in_use(const struct engine *e, int lora)
{
    for (uint32_t i = 0; i < e->nrunning; i++)
        if (e->running[i]->lora == lora)
            return 1;
    for (const struct sim_req *r = e->wait_head; r; r = r->next)
        if (r->lora == lora)
            return 1;
    return 0;
}

int engine_lora_remove(struct engine *e, const char *name)
{
    int id = engine_lora_find(e, name);
    if (!id)
        return -ENOENT;
    if (lora_in_use(e, id))
        return -EBUSY;
    e->loras[id - 1].loaded = 0;
    e->loras[id - 1].resident = 0;
    return 0;
}

/* ---- queues ---- */

static void wait_unlink(struct engine *e, struct sim_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        e->wait_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        e->wait_tail = r->prev;
    r->next = r->prev = NULL;
    e->nwaiting--;
}

static void wait_push_front(struct engine *e, struct sim_req *r)
{
    r->prev = NULL;
    r->next = e->wait_head;
    if (e->wait_head)
        e->wait_head->prev = r;
    else
        e->wait_tail = r;
    e->wait_head = r;
    e->nwaiting++;
}

static void wait_push_back(struct engine *e, struct sim_req *r)
{
    r->next = NULL;
    r->prev = e->wait_tail;
    if (e->wait_tail)
        e->wait_tail->next = r;
    else
        e->wait_head = r;
    e->wait_tail = r;
    e->nwaiting++;
}

static void running_remove(struct engine *e, struct sim_req *r)
{
    for (uint32_t i = 0; i < e->nrunning; i++) {
        if (e->running[i] == r) {
            memmove(&e->running[i], &e->running[i + 1],
                    (e->nrunning - i - 1) * sizeof(*e->running));
            e->nrunning--;
            return;
        }
    }
}

void engine_submit(struct engine *e, struct sim_req *r, double now)
{
    r->state = REQ_WAITING;
    r->finish = FINISH_NONE;
    r->num_tokens = r->num_prompt;
    r->num_computed = 0;
    r->num_output = 0;
    r->num_cached = -1;
    r->nblocks = r->nhashed = r->ncommitted = 0;
    r->npreempt = 0;
    r->t_arrival = now;
    r->t_first_sched = r->t_first_token = r->t_last_token = -1;
    r->extra_key = r->lora ? XXH3_64bits(e->loras[r->lora - 1].name,
                                         strlen(e->loras[r->lora - 1].name))
                           : 0;
    wait_push_back(e, r);
}

static void release_blocks(struct engine *e, struct sim_req *r)
{
    kv_free(&e->kv, r->blocks, r->nblocks);
    r->nblocks = 0;
    r->ncommitted = 0;
}

void engine_abort(struct engine *e, struct sim_req *r)
{
    if (r->state == REQ_WAITING) {
        wait_unlink(e, r);
    } else if (r->state == REQ_RUNNING) {
        running_remove(e, r);
        if (e->in_step)
            for (uint32_t i = 0; i < e->nbatch; i++)
                if (e->batch[i] == r)
                    e->batch[i] = NULL;
    } else {
        return;
    }
    release_blocks(e, r);
    r->state = REQ_DONE;
    r->finish = FINISH_ABORT;
    e->st.finished_abort++;
}

/* ---- blocks of one request ---- */

/* Extends r->hashes to cover the first nblk full blocks of r->tokens. */
static void ensure_hashes(struct sim_req *r, uint32_t nblk)
{
    while (r->nhashed < nblk) {
        uint32_t k = r->nhashed;
        uint64_t parent = k ? r->hashes[k - 1] : 0;
        r->hashes[k] = kv_block_hash(parent, &r->tokens[k * KV_BLOCK_TOKENS],
                                     r->extra_key);
        r->nhashed++;
    }
}

/* Enters the request's blocks that will be full once `upto` tokens are
 * computed into the prefix cache (vLLM v1 caches at allocation time). */
static void commit_full_blocks(struct engine *e, struct sim_req *r,
                               uint32_t upto)
{
    uint32_t full = upto / KV_BLOCK_TOKENS;
    if (full > r->nblocks)
        full = r->nblocks;
    ensure_hashes(r, full);
    for (uint32_t k = r->ncommitted; k < full; k++)
        kv_commit(&e->kv, r->blocks[k], r->hashes[k], k ? r->hashes[k - 1] : 0,
                  &r->tokens[k * KV_BLOCK_TOKENS], (uint32_t)r->lora);
    if (full > r->ncommitted)
        r->ncommitted = full;
}

/* Blocks for num_computed + n tokens. 0 or -ENOSPC (nothing taken). */
static int allocate_slots(struct engine *e, struct sim_req *r, uint32_t n)
{
    uint32_t total = r->num_computed + n;
    uint32_t need_blocks = (total + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS;
    if (need_blocks > r->nblocks) {
        int rc = kv_alloc(&e->kv, need_blocks - r->nblocks, &r->blocks[r->nblocks]);
        if (rc)
            return rc;
        r->nblocks = need_blocks;
    }
    commit_full_blocks(e, r, total);
    return 0;
}

static void preempt(struct engine *e, struct sim_req *r)
{
    release_blocks(e, r);
    r->num_computed = 0;
    r->state = REQ_WAITING;
    r->npreempt++;
    e->st.preemptions++;
    wait_push_front(e, r);
}

/* ---- one step ---- */

struct step_cost {
    uint64_t n_tokens, decode_ctx;
    double prefill_units, extra_ms;
};

static void batch_add(struct engine *e, struct sim_req *r, uint32_t n,
                      struct step_cost *c)
{
    r->sched_tokens = n;
    e->batch[e->nbatch++] = r;
    c->n_tokens += n;
    if (n == 1 && r->num_computed + 1 == r->num_tokens &&
        r->num_computed >= r->num_prompt)
        c->decode_ctx += r->num_computed + 1;
    else
        c->prefill_units += (double)n * ((double)r->num_computed + n / 2.0);
}

static uint64_t running_lora_mask(const struct engine *e)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < e->nrunning; i++)
        if (e->running[i]->lora)
            m |= 1ull << (e->running[i]->lora - 1);
    return m;
}

/* Makes adapter `lora` resident, evicting the least recently used idle one
 * when all max_loras slots are taken. Returns 1 if a load was started, 0 if
 * already resident, -1 if no slot can be freed now. */
static int lora_make_resident(struct engine *e, int lora, uint64_t busy,
                              double now)
{
    struct lora *l = &e->loras[lora - 1];
    l->last_used = now;
    if (l->resident)
        return 0;
    uint32_t nres = 0;
    int victim = -1;
    for (uint32_t i = 0; i < e->nloras; i++) {
        if (!e->loras[i].resident)
            continue;
        nres++;
        if (!(busy & (1ull << i)) &&
            (victim < 0 || e->loras[i].last_used < e->loras[victim].last_used))
            victim = (int)i;
    }
    if (nres >= e->cfg.max_loras) {
        if (victim < 0)
            return -1;
        e->loras[victim].resident = 0;
    }
    l->resident = 1;
    e->st.lora_loads++;
    return 1;
}

static void schedule_running(struct engine *e, uint32_t *budget,
                             struct step_cost *c, int *preempted)
{
    for (uint32_t i = 0; i < e->nrunning && *budget > 0; i++) {
        struct sim_req *r = e->running[i];
        uint32_t n = r->num_tokens - r->num_computed;
        if (n > *budget)
            n = *budget;
        if (n == 0)
            continue;
        int ok = 1;
        while (allocate_slots(e, r, n) != 0) {
            struct sim_req *victim = e->running[--e->nrunning];
            preempt(e, victim);
            *preempted = 1;
            if (victim == r) {
                ok = 0;
                break;
            }
        }
        if (!ok)
            break;
        batch_add(e, r, n, c);
        *budget -= n;
    }
}

static void schedule_waiting(struct engine *e, uint32_t *budget,
                             struct step_cost *c, double now)
{
    struct sim_req *skip_head = NULL, *skip_tail = NULL;
    uint64_t loras = running_lora_mask(e);

    while (e->wait_head && *budget > 0 && e->nrunning < e->cfg.max_num_seqs) {
        struct sim_req *r = e->wait_head;
        if (r->lora) {
            uint64_t bit = 1ull << (r->lora - 1);
            int distinct = __builtin_popcountll(loras);
            int load = (loras & bit) ? 0 : distinct >= (int)e->cfg.max_loras
                                               ? -1
                                               : lora_make_resident(e, r->lora, loras, now);
            if (load < 0) { /* no adapter slot this step: skip it, as vLLM */
                wait_unlink(e, r);
                r->next = NULL;
                r->prev = skip_tail;
                if (skip_tail)
                    skip_tail->next = r;
                else
                    skip_head = r;
                skip_tail = r;
                continue;
            }
            if (load > 0)
                c->extra_ms += e->cfg.lora_load_ms;
        }
        /* prefix-cache hit: full blocks only, at least one token computed */
        uint32_t max_hit = r->num_tokens ? (r->num_tokens - 1) / KV_BLOCK_TOKENS : 0;
        ensure_hashes(r, max_hit);
        uint32_t hit = (uint32_t)kv_lookup(&e->kv, r->hashes, max_hit);
        uint32_t hit_tokens = hit * KV_BLOCK_TOKENS;
        uint32_t n = r->num_tokens - hit_tokens;
        if (n > *budget)
            n = *budget;
        uint32_t need = (hit_tokens + n + KV_BLOCK_TOKENS - 1) / KV_BLOCK_TOKENS - hit;
        size_t evictable_hits = kv_count_free_hits(&e->kv, r->hashes, hit);
        if (need + evictable_hits > e->kv.nfree)
            break; /* out of blocks: the waiting scan stops */

        kv_touch(&e->kv, r->hashes, hit, r->blocks);
        r->nblocks = r->ncommitted = hit;
        r->num_computed = hit_tokens;
        if (allocate_slots(e, r, n) != 0)
            abort(); /* checked above */
        if (r->num_cached < 0) {
            r->num_cached = (int32_t)hit_tokens;
            e->st.prompt_tokens += r->num_prompt;
        }
        e->st.prefix_queries += r->num_tokens;
        e->st.prefix_hits += hit_tokens;
        if (r->t_first_sched < 0) {
            r->t_first_sched = now;
            hist_observe(&e->st.queue, now - r->t_arrival);
        }
        if (r->lora)
            loras |= 1ull << (r->lora - 1);
        wait_unlink(e, r);
        r->state = REQ_RUNNING;
        e->running[e->nrunning++] = r;
        batch_add(e, r, n, c);
        *budget -= n;
    }
    /* skipped requests go back to the front, in their order */
    if (skip_head) {
        for (struct sim_req *r = skip_tail, *p; r; r = p) {
            p = r->prev;
            wait_push_front(e, r);
        }
    }
}

double engine_step_begin(struct engine *e, double now)
{
    struct step_cost c = {0};
    uint32_t budget = e->cfg.max_batched_tokens;
    int preempted = 0;

    e->nbatch = 0;
    schedule_running(e, &budget, &c, &preempted);
    if (!preempted)
        schedule_waiting(e, &budget, &c, now);
    if (e->nbatch == 0)
        return 0.0;
    e->in_step = 1;
    e->step_ms = profile_step_ms(e->cfg.profile, c.n_tokens, c.decode_ctx,
                                 c.prefill_units) * e->slowdown + c.extra_ms;
    e->st.steps++;
    e->st.busy_ms += e->step_ms;
    return e->step_ms;
}

static void finish(struct engine *e, struct sim_req *r, double now)
{
    running_remove(e, r);
    release_blocks(e, r);
    r->state = REQ_DONE;
    r->finish = r->eos_early ? FINISH_STOP : FINISH_LENGTH;
    if (r->finish == FINISH_STOP)
        e->st.finished_stop++;
    else
        e->st.finished_length++;
    hist_observe(&e->st.e2e, now - r->t_arrival);
    if (r->on_finish)
        r->on_finish(r); /* may free r */
}

void engine_step_end(struct engine *e, double now)
{
    if (!e->in_step)
        return;
    for (uint32_t i = 0; i < e->nbatch; i++) {
        struct sim_req *r = e->batch[i];
        if (!r)
            continue; /* aborted during the step */
        r->num_computed += r->sched_tokens;
        if (r->num_computed < r->num_tokens)
            continue; /* a prefill chunk that is not the last */
        uint32_t tok = engine_output_token(r->seed, r->num_output);
        r->tokens[r->num_tokens++] = tok;
        r->num_output++;
        e->st.generation_tokens++;
        if (r->num_output == 1) {
            r->t_first_token = now;
            hist_observe(&e->st.ttft, now - r->t_arrival);
        } else {
            hist_observe(&e->st.itl, now - r->t_last_token);
        }
        r->t_last_token = now;
        if (r->on_token)
            r->on_token(r, tok); /* may abort (and free) r */
        if (!e->batch[i])
            continue;
        if (r->num_output >= r->max_output)
            finish(e, r, now);
    }
    e->nbatch = 0;
    e->in_step = 0;
}

int engine_reset_prefix_cache(struct engine *e)
{
    return kv_reset(&e->kv);
}
