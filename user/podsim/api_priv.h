/* api_priv: what api.c (the router and the small endpoints) and
 * api_infer.c (completions and chat completions) share. */
#ifndef KVGATE_PODSIM_API_PRIV_H
#define KVGATE_PODSIM_API_PRIV_H

#include <cjson/cJSON.h>

#include "podsim/server.h"

struct pod;
struct sbuf;

/* An OpenAI error ({"error":{...}}, common/httpstatus.h's vocabulary),
 * param naming the request field at fault (NULL: null). */
void api_send_error(struct http_resp *resp, int status, const char *param,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* b as an application/json answer; a 500 if building b ran out of memory. */
void api_send_json(struct http_resp *resp, int status, struct sbuf *b);
/* The request body as a JSON object, or NULL with the 400 sent. */
cJSON *api_parse_body(const struct http_req *req, struct http_resp *resp);

/* POST /v1/chat/completions (chat) or /v1/completions. */
void api_inference(struct pod *p, const struct http_req *req,
                   struct http_resp *resp, int chat);

#endif
