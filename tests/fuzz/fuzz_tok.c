/* libFuzzer target for user/tok (tokenizing bytes clients send).
 *
 * The first input byte picks what runs, the rest is the text:
 *   bits 0-1  tokenizer: 0 Llama-3-like, 1 Qwen-like (NFC, single digits),
 *             2 with lstrip/rstrip added tokens, 3 podsim's pseudo
 *   bit 2     TOK_PARSE_SPECIAL      bit 3  TOK_ADD_BOS
 *   bit 4     the text is JSON messages: rendered with the Llama 3, 3.1,
 *             Qwen2 and Qwen3 templates first (tok_render_chat), then tokenized
 *   bits 5-7  seed of the stream's piece sizes
 * tok_encode of the whole text must equal the stream API fed in pieces;
 * abort() otherwise. The tokenizers are tests/unit/tok/tok_fixture.h's
 * small ones (the real files live outside the tree). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "tok/tok.h"
#include "unit/tok/tok_fixture.h"

static struct tok *T[4], *TL, *TQ, *TL31, *TQ2;

static const char LLAMA3[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";
static const char LLAMA31[] =
    "{{- bos_token }}{%- set date_string = \"26 Jul 2024\" %}"
    "{%- set system_message = messages[0]['content']|trim %}Cutting Knowledge Date: December 2023"
    "{{- \"Today Date: \" + date_string }}message['content'] | trim + "
    "<|start_header_id|>ipython<|end_header_id|>message.content | tojson";
static const char QWEN2[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nSys.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + "
    "message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char QWEN3[] = "<|im_start|> <|im_end|> reasoning_content </think> "
                            "last_query_index <tool_response> enable_thinking";

static struct tok *with_template(const char *tmpl)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "chat_template", tmpl);
    char *cj = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    struct tok *t = fix_tok((struct fix_opts){0}, cj);
    free(cj);
    return t;
}

static void check(const struct tok *t, const char *s, size_t n, unsigned flags, unsigned seed)
{
    struct tok_ids whole = {0}, st_ids = {0};
    int rc = tok_encode(t, s, n, flags, &whole);
    struct tok_stream st;
    tok_stream_init(&st, t, flags);
    uint32_t x = seed * 2654435761u + (uint32_t)n + 1;
    size_t pos = 0;
    int rs = 0;
    while (pos < n && !rs) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        size_t k = 1 + x % (x & 0x100 ? 64 : 5);
        if (k > n - pos)
            k = n - pos;
        rs = tok_stream_feed(&st, s + pos, k, &st_ids);
        pos += k;
    }
    if (!rs)
        rs = tok_stream_finish(&st, &st_ids);
    else
        tok_stream_free(&st);
    if (rc != rs || (!rc && (whole.n != st_ids.n ||
                             (whole.n && memcmp(whole.v, st_ids.v, whole.n * 4))))) {
        fprintf(stderr, "stream != whole: rc %d/%d, %zu vs %zu ids\n", rc, rs, whole.n,
                st_ids.n);
        abort();
    }
    for (size_t i = 0; i < whole.n; i++)
        if (!tok_is_pseudo(t) && whole.v[i] >= tok_vocab_size(t))
            abort();
    tok_ids_free(&whole);
    tok_ids_free(&st_ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t len)
{
    if (!T[0]) {
        T[0] = fix_tok((struct fix_opts){0}, NULL);
        T[1] = fix_tok((struct fix_opts){.qwen = 1}, NULL);
        T[2] = fix_tok((struct fix_opts){.lstrip_rstrip = 1, .ignore_merges = 1}, NULL);
        T[3] = tok_pseudo();
        TL = with_template(LLAMA3);
        TQ = with_template(QWEN3);
        TL31 = with_template(LLAMA31);
        TQ2 = with_template(QWEN2);
        if (!T[0] || !T[1] || !T[2] || !T[3] || !TL || !TQ ||
            tok_template(TL) != TOK_TEMPLATE_LLAMA3 || tok_template(TQ) != TOK_TEMPLATE_QWEN3 ||
            tok_template(TL31) != TOK_TEMPLATE_LLAMA31 || tok_template(TQ2) != TOK_TEMPLATE_QWEN2)
            abort();
    }
    if (len < 1)
        return 0;
    unsigned f = d[0];
    const char *s = (const char *)d + 1;
    size_t n = len - 1;
    unsigned flags = (f & 4 ? TOK_PARSE_SPECIAL : 0) | (f & 8 ? TOK_ADD_BOS : 0);
    if (!(f & 16)) {
        check(T[f & 3], s, n, flags, f >> 5);
        return 0;
    }
    char *z = malloc(n + 1);
    memcpy(z, s, n);
    z[n] = 0;
    cJSON *m = cJSON_Parse(z);
    free(z);
    const struct tok *ts[4] = {TL, TQ, TL31, TQ2};
    for (int i = 0; i < 4; i++) {
        struct sbuf b;
        sbuf_init(&b);
        const char *err = NULL;
        int rc = tok_render_chat(ts[i], m, f & 32, &b, &err);
        if (rc == 0)
            check(ts[i], b.data ? b.data : "", b.len, TOK_PARSE_SPECIAL, f >> 5);
        else if (!err)
            abort(); /* every refusal says why */
        sbuf_free(&b);
    }
    cJSON_Delete(m);
    return 0;
}
