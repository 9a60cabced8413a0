/* exact: token-exact routing (issue 11, DESIGN.md "Token-exact routing").
 *
 * A request whose model has a tokenizer (config "tokenizers") is rendered
 * and tokenized as its model server will (user/tok), cut into blocks of
 * the pods' block size and keyed with core/blockkey, the same chain the
 * exact index (core/kvindex) builds from the pods' KV events. gw_route
 * then reads, for every pod, how many leading blocks it holds:
 *
 *   pod's index mode   what the match is
 *   exact              the exact index's match (predictions included)
 *   syncing, gapped    the larger of the exact and the approximate match
 *                      (the exact one has no false hits but may miss)
 *   approximate        the approximate index's (core/prefix_index), its
 *                      fingerprint blocks converted to these blocks
 *
 * so the policy (core/policy.h) compares all pods in one unit: blocks of
 * the request's token chain, and its token-load mode counts real tokens.
 *
 * Nothing is tokenized when no pod serving the model publishes events (or
 * all of them are approximate now): such a fleet pays nothing for this.
 * A request stays on the approximate index when its model has no
 * tokenizer, its chat template is not recognised (said once per model,
 * and the pods of that model show index mode approximate, why "no_tokenizer"),
 * or the request asks for what the renderer does not reproduce ("tools",
 * "chat_template", "chat_template_kwargs", "continue_final_message",
 * "add_generation_prompt": false, a batch of prompts). */
#ifndef KVGATE_GATEWAY_EXACT_H
#define KVGATE_GATEWAY_EXACT_H

#include <stddef.h>
#include <stdint.h>

struct gw;
struct gw_config;
struct gw_request;
struct pod_snapshot;
struct tok;

/* Loads the configured tokenizers into g (once, at start; a reload does
 * not change them). 0, or -1 with a sentence in err naming the entry. */
int gw_exact_init(struct gw *g, char *err, size_t errlen);
void gw_exact_fini(struct gw *g);

/* The tokenizer for a base model (its own entry, else "*"), NULL none. */
const struct tok *gw_exact_tokenizer(const struct gw *g, const char *model);
/* May pods serving this base model be trusted with token-exact keys (a
 * tokenizer and a recognised chat template)? The control thread marks
 * the others approximate (kvx_set_untrusted); why is logged once per
 * model. */
int gw_exact_model_ok(struct gw *g, const char *model);

/* Per request (gw_route): rewrites match[slot] (the approximate index's
 * match of r->keys, in fingerprint blocks) into blocks of the request's
 * token chain for every pod in s, as the table above says, and sets
 * *nkeys, *tokens_per_key and r->prompt_tokens to that chain's. The
 * first call tokenizes r->body (kept on r for retries). Returns 1 when
 * the match is in token blocks, 0 when it stayed as it was (and the
 * other outputs untouched). */
int gw_exact_match(struct gw *g, struct gw_request *r, const struct pod_snapshot *s,
                   uint16_t *match, uint32_t *nkeys, double *tokens_per_key);

/* Tokenizing a completions prompt while the body arrives (route.c's body
 * scan hands over the prompt value's raw bytes as it scans them: a JSON
 * string is decoded by core/jstr and fed to the tokenizer's stream), so
 * that a long prompt is mostly tokenized by the time its last byte is in.
 * start: with the value's first bytes; NULL when there is nothing to
 * stream (no tokenizers, no pod with events yet, a chat request, whose
 * template needs every message, or a prompt that is not a string). end:
 * with the body complete, hands the tokens to r, where gw_exact_match
 * takes them if the tokenizer it chooses then (from the pods serving the
 * model) is the one the stream used; else the body is tokenized as
 * before. Anything the stream cannot take (limits, a malformed string)
 * leaves it to that path too. */
struct bodyscan;
struct gw_exact_stream;
struct gw_exact_stream *gw_exact_stream_start(struct gw *g, const struct bodyscan *bs,
                                              const char *raw, size_t n);
void gw_exact_stream_feed(struct gw_exact_stream *es, const char *raw, size_t n);
void gw_exact_stream_end(struct gw_exact_stream *es, const struct bodyscan *bs,
                         struct gw_request *r);
void gw_exact_stream_free(struct gw_exact_stream *es);
/* The request went to slot: predicted entries in the exact index until
 * the pod's events confirm them; r->index_mode says which index judged
 * the pod. */
void gw_exact_routed(struct gw *g, struct gw_request *r, uint32_t slot, uint32_t held);
/* The attempt failed before the pod stored anything: the predictions
 * past what it held (held, at gw_exact_routed) are taken back. */
void gw_exact_withdraw(struct gw *g, struct gw_request *r);
/* Frees what gw_exact_match kept on r. */
void gw_exact_release(struct gw_request *r);

#endif
