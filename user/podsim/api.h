/* api: the OpenAI-compatible HTTP API of one simulated vLLM pod, and the
 * fault-injection admin endpoints. */
#ifndef KVGATE_PODSIM_API_H
#define KVGATE_PODSIM_API_H

#include "podsim/server.h"

struct pod;

/* server_handler for a pod's port (ctx = struct pod *). */
void api_handle(void *ctx, const struct http_req *req, struct http_resp *resp);

/* server_handler for the process admin port (ctx = struct podsim_admin *):
 *   GET  /pods                       every pod's port, model, faults, load
 *   POST /pods/<i>/faults  {json}    set faults of pod i (or "all")
 *   POST /pods/<i>/reset_prefix_cache */
struct podsim_admin {
    struct pod **pods;
    int npods;
};
void api_admin_handle(void *ctx, const struct http_req *req,
                      struct http_resp *resp);

/* Applies a faults JSON object ({"fail_rate":0.1,"refuse":true,
 * "metrics":"ok|stall|drop","close_after":N,"slowdown":2.0}) to a pod.
 * 0, or -EINVAL with *err naming the bad key. */
int api_apply_faults(struct pod *p, const char *json, const char **err);

/* Mean of the natural (EOS) output length when ignore_eos is false. */
extern unsigned api_output_len_mean;

/* --tokenizer: prompts rendered with its chat template (when recognised)
 * and tokenized with it, as vLLM does (chat: add_special_tokens=False;
 * completions: BOS added). NULL (the default): podsim's Llama-3 rendering
 * and 4-byte pseudo-tokens (podsim/prompt.h). Set before serving. */
struct tok;
extern const struct tok *api_tokenizer;

#endif
