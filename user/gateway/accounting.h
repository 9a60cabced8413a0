/* accounting: what each answer cost in tokens, and which workload class
 * asked for it (issue 13). No I/O; the relay feeds it the answer as it
 * passes, and x_account asks it for the figures before the request's
 * metrics and access-log line are written.
 *
 * Tokens. A 2xx answer from a pod is read for its "usage" object as its
 * bytes pass (core/usage.h): a non-streamed body whole-document, a stream
 * event by event (the relay holds whole events anyway). When the pod
 * reported usage, r->tokens holds its prompt_tokens,
 * prompt_tokens_details.cached_tokens and completion_tokens
 * (GW_USAGE_REPORTED). When it did not (a stream without include_usage,
 * a stream cut before its last chunk, a client that left), the gateway
 * estimates (GW_USAGE_ESTIMATED): completion = the events with generated
 * text it relayed (one token each, as vLLM streams them; speculative
 * decoding or n > 1 make it an undercount), prompt = the gateway's own
 * count of the prompt (exact when the request was tokenized for the
 * exact index, else prompt bytes / index.bytes_per_token), cached = the
 * share of the prompt the gateway's index matched on the chosen pod (the
 * exact index's where the pod's events are trusted; only the pod knows for
 * sure). Answers that are not 2xx count no tokens.
 *
 * accounting.enabled (on by default; config.c says what it covers): off,
 * the relay never calls acct_answer_head, so an answer is not read
 * (read = 0: each body chunk and event costs one branch), r->tokens stays
 * GW_USAGE_NONE, and gw_request_done records no cost and no book.
 *
 * accounting.request_usage (off by default). With it on, a streamed
 * request that did not ask for usage is changed on its way to the pod so
 * that the pod reports it, and the client gets exactly the stream it
 * would have got without: on the wire,
 *   - request body: no "stream_options": `"stream_options":
 *     {"include_usage":true},` is inserted after the top-level '{';
 *     "stream_options": null becomes {"include_usage":true};
 *     "stream_options": {...} without include_usage gets
 *     `"include_usage":true` (and a comma if the object is not empty)
 *     after its '{'; "include_usage": false becomes `true ` (one space
 *     keeps the length) and null becomes `true`. Content-Length follows.
 *     Nothing else in the body changes, byte for byte.
 *   - answer: the one event whose data has "choices": [] and a "usage"
 *     object (the chunk include_usage adds, before [DONE]) is not relayed;
 *     every other byte is. vLLM adds nothing else for include_usage (its
 *     other chunks carry no "usage" key; OpenAI's own API adds
 *     "usage": null to every chunk, vLLM does not). An answer framed by
 *     Content-Length (not what vLLM sends) is relayed whole: dropping
 *     bytes would break its framing.
 * A request that asked for usage itself (include_usage: true) is left
 * alone and gets its usage chunk.
 *
 * Workload class. x-gateway-inference-objective, else
 * x-llm-d-inference-objective (the header is forwarded as is), else the
 * first "classes" rule whose model and path match, else "default". The
 * label set on /metrics is bounded (gwmetrics.h). */
#ifndef KVGATE_GATEWAY_ACCOUNTING_H
#define KVGATE_GATEWAY_ACCOUNTING_H

#include <stddef.h>
#include <stdint.h>

#include "core/usage.h"

struct gw_config;
struct gw_request;
struct sbuf;

/* r->wclass from the config's rules when no header named one (path: the
 * request-target, its query ignored), else "default". */
void acct_class(const struct gw_config *c, struct gw_request *r, const char *path, size_t plen);

/* The request body for the pod when accounting.request_usage asks for
 * usage on r's stream (r: the body scan's results), into out. 1: out
 * holds the rewritten body (strip the usage chunk from the answer); 0:
 * nothing to change (not streamed, or the client asked for usage
 * itself); -ENOMEM. */
int acct_request_rewrite(const struct gw_request *r, const char *body, size_t len,
                         struct sbuf *out);

/* One exchange's answer, as it passes. */
struct acct_answer {
    struct usage_json json; /* a non-streamed body */
    struct usage u;         /* the pod's usage, valid when have */
    uint8_t read;           /* a 2xx answer from a pod: read it */
    uint8_t sse;
    uint8_t have;
    uint8_t strip;          /* drop the usage-only event (request_usage added it) */
};

void acct_answer_init(struct acct_answer *a);
/* A pod's answer head: status, text/event-stream or not, and whether the
 * usage-only event may be dropped (request_usage rewrote the request and
 * the body is not framed by Content-Length). */
void acct_answer_head(struct acct_answer *a, int status, int sse, int strip);
/* Bytes of a non-streamed body. */
void acct_answer_body(struct acct_answer *a, const char *p, size_t n);
/* One whole SSE event (sse_split's): 1 when it is the usage-only event
 * the client did not ask for (not to be relayed), else 0. */
int acct_answer_event(struct acct_answer *a, const char *e, size_t n);
/* r->tokens from the answer (the pod's usage, else the estimate above). */
void acct_finish(struct acct_answer *a, struct gw_request *r);
/* r's tokens as the gateway estimates an answer it got no usage for:
 * completion as given, prompt its own count of the prompt, cached the
 * share of it the index matched on the chosen pod (GW_USAGE_ESTIMATED).
 * acct_finish's fallback, and a bypass connection's (decide_srv.c). */
void acct_estimate(struct gw_request *r, uint64_t completion);

#endif
