/* prompt: rendering and pseudo-tokenizing. See prompt.h. */
#include "podsim/prompt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>

#include "common/sbuf.h"

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

static int render_content(const cJSON *content, struct sbuf *out,
                          const char **err)
{
    if (!content || cJSON_IsNull(content))
        return 0;
    if (cJSON_IsString(content))
        return sbuf_puts(out, content->valuestring);
    if (!cJSON_IsArray(content)) {
        *err = "messages[].content must be a string, an array of content parts or null";
        return -EINVAL;
    }
    /* text parts joined by newlines, as vLLM's chat utils do */
    int first = 1;
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
            !cJSON_IsString(text)) {
            *err = "messages[].content[]: only {\"type\":\"text\",\"text\":...} parts are supported";
            return -EINVAL;
        }
        if (!first)
            sbuf_puts(out, "\n");
        sbuf_puts(out, text->valuestring);
        first = 0;
    }
    return 0;
}

int prompt_render_chat(const cJSON *messages, struct sbuf *out,
                       const char **err)
{
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        *err = "messages must be a non-empty array";
        return -EINVAL;
    }
    sbuf_puts(out, "<|begin_of_text|>");
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            *err = "messages[] must be objects with a string role";
            return -EINVAL;
        }
        sbuf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n",
                    role->valuestring);
        int rc = render_content(cJSON_GetObjectItemCaseSensitive(m, "content"),
                                out, err);
        if (rc)
            return rc;
        sbuf_puts(out, "<|eot_id|>");
    }
    sbuf_puts(out, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return out->oom ? -ENOMEM : 0;
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
