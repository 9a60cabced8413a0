/* Unit tests for user/tok/tok_chat.c: recognising templates, rendering
 * Llama 3 and Qwen3 conversations as vLLM would, what is refused. */
#include "harness.h"
#include "unit/tok/tok_fixture.h"

#include <errno.h>

#include "common/alloc.h"
#include "common/sbuf.h"
#include "podsim/prompt.h"

/* the real templates' text (tokenizer_config.json, JSON-decoded) */
static const char LLAMA3_TMPL[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
/* markers of Qwen3's (the full text is long; these are what detection reads) */
static const char QWEN3_TMPL[] =
    "{%- if tools %}...{%- endif %}{%- set ns = namespace(multi_step_tool=true, "
    "last_query_index=messages|length - 1) %}<|im_start|> ... <tool_response> ... "
    "reasoning_content ... '</think>' ... <|im_end|> ... enable_thinking";

/* what detection reads of Llama 3.1's (tokenizer_config.json of
 * Llama-3.1-8B-Instruct): a sketch with its markers, not the template */
static const char LLAMA31_TMPL[] =
    "{{- bos_token }}{%- if not date_string is defined %}{%- set date_string = \"26 Jul 2024\" %}"
    "{%- endif %}{%- set system_message = messages[0]['content']|trim %}"
    "{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: \" + date_string }}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ "
    "message['content'] | trim + '<|eot_id|>' }}"
    "{{- \"<|start_header_id|>ipython<|end_header_id|>\\n\\n\" }}{{- message.content | tojson }}";

/* Qwen2's whole template (as written in its tokenizer_config.json) */
static const char QWEN2_TMPL[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
/* what detection reads of Qwen2.5's */
static const char QWEN25_TMPL[] =
    "{%- if messages[0]['role'] == 'system' %}\n"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n        {{- '<|im_start|>system\\nYou are Qwen.<|im_end|>\\n' }}\n"
    "{%- endif %}(message.role == \"user\") or (message.role == \"system\" and not loop.first) "
    "or (message.role == \"assistant\" and not message.tool_calls)"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}"
    "{{- '\\n<tool_response>\\n' }}{{- '<|im_start|>assistant\\n' }}";

static struct tok *with_template(const char *tmpl, const char *bos)
{
    cJSON *c = cJSON_CreateObject();
    if (tmpl)
        cJSON_AddStringToObject(c, "chat_template", tmpl);
    if (bos)
        cJSON_AddStringToObject(c, "bos_token", bos);
    char *cj = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    struct tok *t = fix_tok((struct fix_opts){0}, cj);
    free(cj);
    return t;
}

static const char *render(const struct tok *t, const char *json, int agp, int *rc)
{
    static struct sbuf b;
    static int init;
    if (!init)
        sbuf_init(&b), init = 1;
    sbuf_reset(&b);
    cJSON *m = cJSON_Parse(json);
    const char *err = NULL;
    *rc = tok_render_chat(t, m, agp, &b, &err);
    cJSON_Delete(m);
    if (*rc)
        return err;
    sbuf_append(&b, "", 1);
    return b.data;
}

TEST(recognises_families_by_their_markers)
{
    struct tok *a = with_template(LLAMA3_TMPL, "<|begin_of_text|>");
    struct tok *b = with_template(QWEN3_TMPL, NULL);
    struct tok *c = with_template("{% for m in messages %}{{ m.content }}{% endfor %}", NULL);
    struct tok *d = with_template(NULL, NULL);
    CHECK_EQ(tok_template(a), TOK_TEMPLATE_LLAMA3);
    CHECK_EQ(tok_template(b), TOK_TEMPLATE_QWEN3);
    CHECK_EQ(tok_template(c), TOK_TEMPLATE_UNKNOWN);
    CHECK_EQ(tok_template(d), TOK_TEMPLATE_UNKNOWN);
    CHECK_STR(tok_template_name(tok_template(b)), "qwen3");
    /* Llama 3.1's own template (tools, "Cutting Knowledge Date") is not
     * reproduced: unknown, the pod stays approximate */
    char l31[sizeof(LLAMA3_TMPL) + 64];
    snprintf(l31, sizeof(l31), "%s{{ 'Cutting Knowledge Date: December 2023' }}", LLAMA3_TMPL);
    struct tok *e = with_template(l31, NULL);
    CHECK_EQ(tok_template(e), TOK_TEMPLATE_UNKNOWN);
    struct tok *f = with_template(LLAMA31_TMPL, "<|begin_of_text|>");
    CHECK_EQ(tok_template(f), TOK_TEMPLATE_LLAMA31);
    tok_free(f);
    /* 3.2 / 3.3 take the server's date (strftime_now): not recognised */
    char l33[sizeof(LLAMA31_TMPL) + 64];
    snprintf(l33, sizeof(l33), "%s{{ strftime_now(\"%%d %%b %%Y\") }}", LLAMA31_TMPL);
    f = with_template(l33, NULL);
    CHECK_EQ(tok_template(f), TOK_TEMPLATE_UNKNOWN);
    tok_free(f);
    int rc;
    const char *err = render(c, "[{\"role\":\"user\",\"content\":\"x\"}]", 1, &rc);
    CHECK_EQ(rc, -ENOTSUP);
    CHECK_STR(err, "chat template not recognised");
    tok_free(a);
    tok_free(b);
    tok_free(c);
    tok_free(d);
    tok_free(e);
}

TEST(llama3_bos_headers_trimmed_content)
{
    struct tok *t = with_template(LLAMA3_TMPL, "<|begin_of_text|>");
    int rc;
    CHECK_STR(render(t, "[{\"role\":\"system\",\"content\":\" S \\n\"},"
                        "{\"role\":\"user\",\"content\":\"\\u001c\\u3000Q\\t\"}]", 1, &rc),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nQ<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK_EQ(rc, 0);
    /* no generation prompt; parts joined by "\n"; null content is "" */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                        "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\","
                        "\"content\":null}]", 0, &rc),
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\na\nb<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n<|eot_id|>");
    /* U+FEFF is not Python whitespace: kept */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"\\ufeffx\"}]", 0, &rc),
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n\xef\xbb\xbfx<|eot_id|>");
    tok_free(t);
}

TEST(llama31_dates_system_block_ipython)
{
    struct tok *t = with_template(LLAMA31_TMPL, "<|begin_of_text|>");
    int rc;
    /* the first system message, trimmed, after the two date lines */
    CHECK_STR(render(t, "[{\"role\":\"system\",\"content\":\" Be brief. \"},{\"role\":\"user\","
                        "\"content\":\" hi \"},{\"role\":\"tool\",\"content\":\"a\\\"b\\n\\u0001\"}]",
                     1, &rc),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
              "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
              "<|start_header_id|>ipython<|end_header_id|>\n\n\"a\\\"b\\n\\u0001\"<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    CHECK_EQ(rc, 0);
    /* no system message: the block is there, empty; a later system is a turn */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"system\",\"content\":\"s\"}]",
                     0, &rc),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nq<|eot_id|>"
              "<|start_header_id|>system<|end_header_id|>\n\ns<|eot_id|>");
    render(t, "[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[]}]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    tok_free(t);
}

TEST(qwen2_and_qwen25_chatml)
{
    struct tok *a = with_template(QWEN2_TMPL, NULL), *b = with_template(QWEN25_TMPL, NULL);
    CHECK_EQ(tok_template(a), TOK_TEMPLATE_QWEN2);
    CHECK_EQ(tok_template(b), TOK_TEMPLATE_QWEN25);
    int rc;
    /* Qwen2: a default system turn when the first is not one; every turn alike */
    CHECK_STR(render(a, "[{\"role\":\"user\",\"content\":\" q \"},{\"role\":\"tool\","
                        "\"content\":\"t\"}]", 1, &rc),
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n q "
              "<|im_end|>\n<|im_start|>tool\nt<|im_end|>\n<|im_start|>assistant\n");
    CHECK_STR(render(a, "[{\"role\":\"system\",\"content\":\"S\"}]", 0, &rc),
              "<|im_start|>system\nS<|im_end|>\n");
    /* Qwen2.5: the template's default system message, tool responses grouped,
     * other roles dropped */
    CHECK_STR(render(b, "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"tool\",\"content\":"
                        "\"1\"},{\"role\":\"tool\",\"content\":\"2\"},{\"role\":\"developer\","
                        "\"content\":\"x\"}]", 1, &rc),
              "<|im_start|>system\nYou are Qwen.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n"
              "<|im_start|>user\n<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n"
              "</tool_response><|im_end|>\n<|im_start|>assistant\n");
    render(b, "[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":[{}]}]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    /* a default system message that is not a plain literal: not recognised */
    char odd[sizeof(QWEN2_TMPL)];
    strcpy(odd, QWEN2_TMPL);
    char *p = strstr(odd, "helpful");
    memcpy(p, "help'ul", 7);
    struct tok *c = with_template(odd, NULL);
    CHECK_EQ(tok_template(c), TOK_TEMPLATE_UNKNOWN);
    tok_free(a);
    tok_free(b);
    tok_free(c);
}

TEST(qwen3_system_users_and_generation_prompt)
{
    struct tok *t = with_template(QWEN3_TMPL, NULL);
    int rc;
    CHECK_STR(render(t, "[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":"
                        "\" q \"},{\"role\":\"system\",\"content\":\"S2\"},"
                        "{\"role\":\"developer\",\"content\":\"dropped\"}]", 1, &rc),
              "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n q <|im_end|>\n"
              "<|im_start|>system\nS2<|im_end|>\n<|im_start|>assistant\n");
    CHECK_EQ(rc, 0);
    tok_free(t);
}

TEST(qwen3_thinking_kept_only_after_the_last_query)
{
    struct tok *t = with_template(QWEN3_TMPL, NULL);
    int rc;
    /* before the last user query: the reasoning is dropped */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                        "\"<think>\\nr\\n</think>\\n\\n x\"},{\"role\":\"user\",\"content\":\"b\"}]",
                     0, &rc),
              "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n x<|im_end|>\n"
              "<|im_start|>user\nb<|im_end|>\n");
    /* after it (the last message): kept, newlines stripped (only '\n') */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                        "\"pre<think>\\n\\nr \\n</think>\\n\\n x\"}]", 0, &rc),
              "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nr \n</think>\n\n"
              " x<|im_end|>\n");
    /* last and no reasoning: an empty think block */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                        "\"\\ny\"}]", 0, &rc),
              "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\ny"
              "<|im_end|>\n");
    /* reasoning_content wins over <think> in content */
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
                        "\"<think>no</think>c\",\"reasoning_content\":\"rc\"}]", 0, &rc),
              "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n<think>\nrc\n</think>\n\n"
              "<think>no</think>c<|im_end|>\n");
    tok_free(t);
}

TEST(qwen3_tool_responses_grouped_and_not_a_query)
{
    struct tok *t = with_template(QWEN3_TMPL, NULL);
    int rc;
    CHECK_STR(render(t, "[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"content\":"
                        "\"<think>r</think>a\"},{\"role\":\"tool\",\"content\":\"1\"},{\"role\":"
                        "\"tool\",\"content\":\"2\"},{\"role\":\"user\",\"content\":"
                        "\"<tool_response>x</tool_response>\"},{\"role\":\"assistant\","
                        "\"content\":\"<think>s</think>b\"}]", 1, &rc),
              "<|im_start|>user\nq<|im_end|>\n"
              "<|im_start|>assistant\n<think>\nr\n</think>\n\na<|im_end|>\n"
              "<|im_start|>user\n<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n"
              "</tool_response><|im_end|>\n"
              "<|im_start|>user\n<tool_response>x</tool_response><|im_end|>\n"
              "<|im_start|>assistant\n<think>\ns\n</think>\n\nb<|im_end|>\n"
              "<|im_start|>assistant\n");
    tok_free(t);
}

TEST(refused_messages)
{
    struct tok *t = with_template(QWEN3_TMPL, NULL);
    int rc;
    render(t, "[]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    render(t, "[{\"content\":\"x\"}]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    render(t, "[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    render(t, "[{\"role\":\"user\",\"content\":7}]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    const char *err = render(t, "[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":"
                                "[{\"function\":{\"name\":\"f\"}}]}]", 1, &rc);
    CHECK_EQ(rc, -EINVAL);
    CHECK(err && strstr(err, "tool_calls"));
    tok_free(t);
}

TEST(pseudo_renders_as_podsim)
{
    struct tok *p = tok_pseudo();
    const char *msgs = "[{\"role\":\"system\",\"content\":\" S \"},{\"role\":\"user\",\"content\":"
                       "[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]";
    cJSON *m = cJSON_Parse(msgs);
    struct sbuf a, b;
    sbuf_init(&a);
    sbuf_init(&b);
    const char *err;
    static const char want[] = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n S "
                               "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\na\nb<|eot_id|>"
                               "<|start_header_id|>assistant<|end_header_id|>\n\n";
    CHECK_EQ(prompt_render_chat(m, &a, &err), 0);
    CHECK_EQ(tok_render_chat(p, m, 1, &b, &err), 0);
    CHECK(a.len == sizeof(want) - 1 && !memcmp(a.data, want, a.len));
    CHECK(a.len == b.len && !memcmp(a.data, b.data, a.len));
    sbuf_free(&a);
    sbuf_free(&b);
    cJSON_Delete(m);
    tok_free(p);
}

TEST(out_of_memory_in_render)
{
    struct tok *t = with_template(QWEN3_TMPL, NULL);
    cJSON *m = cJSON_Parse("[{\"role\":\"system\",\"content\":\"S\"},{\"role\":\"user\",\"content\":"
                           "\"q\"},{\"role\":\"assistant\",\"content\":\"<think>r</think>a\"}]");
    alloc_fail_never();
    long live = alloc_live();
    for (long n = 0; n < 30; n++) {
        struct sbuf b;
        sbuf_init(&b);
        const char *err;
        alloc_fail_after(n);
        int rc = tok_render_chat(t, m, 1, &b, &err);
        alloc_fail_never();
        CHECK(rc == 0 || rc == -ENOMEM);
        sbuf_free(&b);
    }
    CHECK_EQ(alloc_live(), live);
    cJSON_Delete(m);
    tok_free(t);
}

int main(void)
{
    RUN(recognises_families_by_their_markers);
    RUN(llama3_bos_headers_trimmed_content);
    RUN(llama31_dates_system_block_ipython);
    RUN(qwen2_and_qwen25_chatml);
    RUN(qwen3_system_users_and_generation_prompt);
    RUN(qwen3_thinking_kept_only_after_the_last_query);
    RUN(qwen3_tool_responses_grouped_and_not_a_query);
    RUN(refused_messages);
    RUN(pseudo_renders_as_podsim);
    RUN(out_of_memory_in_render);
    return harness_done();
}
