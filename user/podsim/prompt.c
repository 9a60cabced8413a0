/* prompt: rendering and pseudo-tokenizing. See prompt.h. */
#include "podsim/prompt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

#include "common/sbuf.h"
#include "tok/tok.h"

void prompt_tokenize(const char *s, size_t n, uint32_t *out)
{
    size_t full = n / 4;
    for (size_t i = 0; i < full; i++) {
        const unsigned char *p = (const unsigned char *)s + 4 * i;
        out[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    }
    if (n % 4) {
        uint32_t t = 0;
        for (size_t j = 0; j < n % 4; j++)
            t |= (uint32_t)(unsigned char)s[4 * full + j] << (8 * j);
        out[full] = t;
    }
}

/* The chat template is user/tok's pseudo one (Llama 3's shape, nothing
 * trimmed), the same code the gateway renders with: one copy of the rule. */
int prompt_render_chat(const cJSON *messages, struct sbuf *out,
                       const char **err)
{
    static struct tok *pseudo; /* podsim is one thread */
    if (!pseudo && !(pseudo = tok_pseudo())) {
        *err = "out of memory";
        return -ENOMEM;
    }
    return tok_render_chat(pseudo, messages, 1, out, err);
}

int prompt_render_completion(const cJSON *prompt, struct sbuf *out,
                             const char **err)
{
    if (cJSON_IsString(prompt)) {
        sbuf_puts(out, prompt->valuestring);
        return out->oom ? -ENOMEM : 0;
    }
    if (cJSON_IsArray(prompt) && cJSON_GetArraySize(prompt) > 0) {
        const cJSON *t;
        cJSON_ArrayForEach(t, prompt) {
            if (!cJSON_IsNumber(t) || t->valuedouble < 0 ||
                t->valuedouble > 4294967295.0) {
                *err = "prompt: a list must hold token ids (batched prompts are not supported)";
                return -EINVAL;
            }
            uint32_t id = (uint32_t)t->valuedouble;
            sbuf_append(out, &id, 4);
        }
        return out->oom ? -ENOMEM : 0;
    }
    *err = "prompt must be a string or a non-empty list of token ids";
    return -EINVAL;
}
