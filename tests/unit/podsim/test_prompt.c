/* Unit tests for user/podsim/prompt.c: template rendering, pseudo-tokens. */
#include "harness.h"
#include "podsim/prompt.h"

#include <cjson/cJSON.h>
#include <errno.h>

#include "common/sbuf.h"

TEST(four_bytes_a_token_little_endian_padded)
{
    uint32_t t[3] = {0, 0, 0xdeadbeef};
    CHECK_EQ(prompt_ntokens(0), 0);
    CHECK_EQ(prompt_ntokens(4), 1);
    CHECK_EQ(prompt_ntokens(9), 3);
    prompt_tokenize("abcdefghi", 9, t);
    CHECK_EQ(t[0], 'a' | 'b' << 8 | 'c' << 16 | (uint32_t)'d' << 24);
    CHECK_EQ(t[1], 'e' | 'f' << 8 | 'g' << 16 | (uint32_t)'h' << 24);
    CHECK_EQ(t[2], 'i'); /* zero padded */
}

static int render(const char *json, struct sbuf *out, const char **err)
{
    cJSON *m = cJSON_Parse(json);
    sbuf_reset(out);
    int rc = prompt_render_chat(m, out, err);
    cJSON_Delete(m);
    return rc;
}

TEST(chat_template_llama3)
{
    struct sbuf b;
    const char *err = NULL;
    sbuf_init(&b);
    CHECK_EQ(render("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":\"Q\"}]",
                    &b, &err), 0);
    sbuf_append(&b, "", 1);
    CHECK_STR(b.data, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* content parts are joined with newlines; null content renders empty */
    CHECK_EQ(render("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                    "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null}]",
                    &b, &err), 0);
    sbuf_append(&b, "", 1);
    CHECK(strstr(b.data, "user<|end_header_id|>\n\na\nb<|eot_id|>") != NULL);
    CHECK(strstr(b.data, "assistant<|end_header_id|>\n\n<|eot_id|>") != NULL);
    sbuf_free(&b);
}

TEST(shared_prefix_gives_shared_tokens)
{
    struct sbuf a, b;
    const char *err;
    sbuf_init(&a);
    sbuf_init(&b);
    render("[{\"role\":\"system\",\"content\":\"long shared system prompt .....\"},"
           "{\"role\":\"user\",\"content\":\"first\"}]", &a, &err);
    render("[{\"role\":\"system\",\"content\":\"long shared system prompt .....\"},"
           "{\"role\":\"user\",\"content\":\"second\"}]", &b, &err);
    size_t common = 0;
    while (common < a.len && common < b.len && a.data[common] == b.data[common])
        common++;
    uint32_t ta[64], tb[64];
    prompt_tokenize(a.data, a.len, ta);
    prompt_tokenize(b.data, b.len, tb);
    size_t k = 0;
    while (ta[k] == tb[k])
        k++;
    CHECK_EQ(k, common / 4);
    sbuf_free(&a);
    sbuf_free(&b);
}

TEST(chat_errors_name_the_field)
{
    struct sbuf b;
    const char *err = NULL;
    sbuf_init(&b);
    CHECK_EQ(render("[]", &b, &err), -EINVAL);
    CHECK(err && strstr(err, "messages"));
    CHECK_EQ(render("{\"role\":\"user\"}", &b, &err), -EINVAL);
    CHECK_EQ(render("[{\"content\":\"x\"}]", &b, &err), -EINVAL);
    CHECK(err && strstr(err, "role"));
    CHECK_EQ(render("[{\"role\":\"user\",\"content\":5}]", &b, &err), -EINVAL);
    CHECK(err && strstr(err, "content"));
    CHECK_EQ(render("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]", &b, &err), -EINVAL);
    sbuf_free(&b);
}

TEST(completion_prompt_forms)
{
    struct sbuf b;
    const char *err = NULL;
    sbuf_init(&b);
    cJSON *p = cJSON_Parse("\"hello\"");
    CHECK_EQ(prompt_render_completion(p, &b, &err), 0);
    CHECK_EQ(b.len, 5);
    cJSON_Delete(p);
    sbuf_reset(&b);
    p = cJSON_Parse("[1, 2, 3]");
    CHECK_EQ(prompt_render_completion(p, &b, &err), 0);
    CHECK_EQ(b.len, 12); /* a token id is 4 bytes */
    cJSON_Delete(p);
    p = cJSON_Parse("[\"a\", \"b\"]");
    CHECK_EQ(prompt_render_completion(p, &b, &err), -EINVAL);
    cJSON_Delete(p);
    p = cJSON_Parse("{}");
    CHECK_EQ(prompt_render_completion(p, &b, &err), -EINVAL);
    cJSON_Delete(p);
    sbuf_free(&b);
}

int main(void)
{
    RUN(four_bytes_a_token_little_endian_padded);
    RUN(chat_template_llama3);
    RUN(shared_prefix_gives_shared_tokens);
    RUN(chat_errors_name_the_field);
    RUN(completion_prompt_forms);
    return harness_done();
}
