/* tok_chat: recognising a chat template and rendering messages as it
 * would. Not a Jinja interpreter: each family's template is reproduced in
 * C, and a template is taken for a family only when it carries that
 * family's characteristic text (tok_chat_detect). See tok.h.
 *
 * What vLLM hands the template: each message's content as a string (its
 * "string" content format): a string as is, text parts joined with "\n",
 * null or absent as "". Python's string methods are what the template's
 * `trim` / `strip` / `split` run, so their whitespace is Python's. */
#include "tok/tok_priv.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/sbuf.h"

const char *tok_template_name(enum tok_template t)
{
    switch (t) {
    case TOK_TEMPLATE_LLAMA3: return "llama3";
    case TOK_TEMPLATE_LLAMA31: return "llama3.1";
    case TOK_TEMPLATE_QWEN3: return "qwen3";
    case TOK_TEMPLATE_QWEN2: return "qwen2";
    case TOK_TEMPLATE_QWEN25: return "qwen2.5";
    case TOK_TEMPLATE_PSEUDO: return "pseudo";
    default: return "unknown";
    }
}

static int has(const char *s, const char *needle)
{
    return strstr(s, needle) != NULL;
}

/* The text between `open` and `close` right after `from` in x, if it has
 * no quote or brace (a literal of the template), kv_strdup'd; else NULL. */
static char *literal_after(const char *from, const char *open, const char *close)
{
    const char *a = from ? strstr(from, open) : NULL;
    const char *b = a ? strstr(a + strlen(open), close) : NULL;
    if (!b)
        return NULL;
    a += strlen(open);
    for (const char *p = a; p < b; p++)
        if (*p == '\'' || *p == '"' || *p == '{' || *p == '}' || *p == '\\')
            return NULL;
    char *r = kv_malloc((size_t)(b - a) + 1);
    if (r) {
        memcpy(r, a, (size_t)(b - a));
        r[b - a] = 0;
    }
    return r;
}

static void detect(struct tok *t, const char *x)
{
    /* Llama 3 (3.0 and the 3.x files that ship its template): header ids,
     * trimmed content, bos_token before the first message; no tool or date
     * preamble (3.1's "Cutting Knowledge Date" template is not this one) */
    if (has(x, "'<|start_header_id|>' + message['role'] + '<|end_header_id|>") &&
        has(x, "message['content'] | trim + '<|eot_id|>'") &&
        has(x, "{% set content = bos_token + content %}") &&
        has(x, "{{ '<|start_header_id|>assistant<|end_header_id|>") &&
        !has(x, "Cutting Knowledge") && !has(x, "tools") && !has(x, "date_string"))
        t->tmpl = TOK_TEMPLATE_LLAMA3;
    /* Llama 3.1: bos_token, a system block with the two dates, the first
     * system message moved into it, ipython / tool turns; its date fixed
     * (no strftime_now: see tok.h) */
    else if (has(x, "{{- bos_token }}") && has(x, "Cutting Knowledge Date: December 2023") &&
             has(x, "\"Today Date: \" + date_string") &&
             has(x, "set date_string = \"26 Jul 2024\"") &&
             has(x, "{%- set system_message = messages[0]['content']|trim %}") &&
             has(x, "message['content'] | trim + ") &&
             has(x, "<|start_header_id|>ipython<|end_header_id|>") &&
             has(x, "message.content | tojson") && !has(x, "strftime_now") &&
             !has(x, "{% generation %}") && !has(x, "{%- generation %}"))
        t->tmpl = TOK_TEMPLATE_LLAMA31;
    /* Qwen3: ChatML plus reasoning_content / <think> handling around the
     * last user query */
    else if (has(x, "<|im_start|>") && has(x, "<|im_end|>") &&
             has(x, "reasoning_content") && has(x, "</think>") &&
             has(x, "last_query_index") && has(x, "<tool_response>") &&
             has(x, "enable_thinking"))
        t->tmpl = TOK_TEMPLATE_QWEN3;
    /* Qwen2.5: a system turn (the first message's or a default one), then
     * user / system / plain assistant turns alike, tool responses grouped */
    else if (has(x, "{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}") &&
             has(x, "(message.role == \"user\") or (message.role == \"system\" and not "
                    "loop.first) or (message.role == \"assistant\" and not message.tool_calls)") &&
             has(x, "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' "
                    "+ '\n' }}") &&
             has(x, "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != \"tool\") %}") &&
             has(x, "{{- '\n<tool_response>\n' }}") && has(x, "{{- '<|im_start|>assistant\n' }}") &&
             !has(x, "reasoning_content") && !has(x, "<think>") && !has(x, "generation %}")) {
        const char *e = strstr(x, "{{- '<|im_start|>system\n' + messages[0]['content']");
        e = e ? strstr(e, "{%- else %}") : NULL;
        if ((t->sys_default = literal_after(e, "{{- '<|im_start|>system\n", "<|im_end|>\n' }}")))
            t->tmpl = TOK_TEMPLATE_QWEN25;
    }
    /* Qwen2: the whole template, a default system turn when the first is
     * not one, every turn alike */
    else {
        static const char pre[] = "{% for message in messages %}{% if loop.first and "
                                  "messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n";
        static const char post[] = "<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
                                   "message['role'] + '\n' + message['content'] + '<|im_end|>' "
                                   "+ '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
                                   "'<|im_start|>assistant\n' }}{% endif %}";
        size_t lx = strlen(x), lpre = strlen(pre), lpost = strlen(post);
        if (lx > lpre + lpost && !strncmp(x, pre, lpre) && !strcmp(x + lx - lpost, post) &&
            (t->sys_default = literal_after(x + lpre - 1, "\n", "<|im_end|>\n' }}{% endif %}")) &&
            strlen(t->sys_default) == lx - lpre - lpost)
            t->tmpl = TOK_TEMPLATE_QWEN2;
        else if (t->sys_default) {
            kv_free(t->sys_default);
            t->sys_default = NULL;
        }
    }
}

void tok_chat_detect(struct tok *t, const char *x)
{
    t->tmpl = TOK_TEMPLATE_UNKNOWN;
    if (!x)
        return;
    /* Jinja's "\n" in a string literal and a newline in the file are the
     * same text: look at the template with the escape turned into one */
    char *y = kv_malloc(strlen(x) + 1);
    if (!y)
        return; /* unknown: the pod stays approximate */
    size_t n = 0;
    for (const char *p = x; *p; p++) {
        if (p[0] == '\\' && p[1] == 'n') {
            y[n++] = '\n';
            p++;
        } else
            y[n++] = *p;
    }
    y[n] = 0;
    detect(t, y);
    kv_free(y);
}

/* ---- messages as vLLM hands them over ---- */

struct msg {
    const char *role;
    struct sbuf content;
    const cJSON *obj;
};

static int msg_content(const cJSON *c, struct sbuf *out, const char **err)
{
    if (!c || cJSON_IsNull(c))
        return 0;
    if (cJSON_IsString(c))
        return sbuf_puts(out, c->valuestring);
    if (!cJSON_IsArray(c)) {
        *err = "messages[].content must be a string, an array of content parts or null";
        return -EINVAL;
    }
    int first = 1;
    const cJSON *part;
    cJSON_ArrayForEach(part, c) {
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

static void msgs_free(struct msg *m, int n)
{
    for (int i = 0; i < n; i++)
        sbuf_free(&m[i].content);
    kv_free(m);
}

static int msgs_get(const cJSON *messages, struct msg **out, int *nout, const char **err)
{
    int n = cJSON_IsArray(messages) ? cJSON_GetArraySize(messages) : 0;
    if (n <= 0) {
        *err = "messages must be a non-empty array";
        return -EINVAL;
    }
    struct msg *m = kv_calloc((size_t)n, sizeof(*m));
    if (!m)
        return -ENOMEM;
    int i = 0, rc = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "role");
        sbuf_init(&m[i].content);
        i++;
        if (!cJSON_IsObject(e) || !cJSON_IsString(role)) {
            *err = "messages[] must be objects with a string role";
            rc = -EINVAL;
            break;
        }
        m[i - 1].role = role->valuestring;
        m[i - 1].obj = e;
        if ((rc = msg_content(cJSON_GetObjectItemCaseSensitive(e, "content"), &m[i - 1].content,
                              err)))
            break;
        /* NUL-terminate for the string helpers below */
        if (sbuf_reserve(&m[i - 1].content, 1) || m[i - 1].content.oom) {
            rc = -ENOMEM;
            break;
        }
        m[i - 1].content.data[m[i - 1].content.len] = 0;
    }
    if (rc) {
        msgs_free(m, i);
        return rc;
    }
    *out = m;
    *nout = n;
    return 0;
}

/* ---- Python string helpers on [s, s+n) ---- */

struct str {
    const char *p;
    size_t n;
};

static struct str py_strip(struct str s)
{
    size_t b = 0, e = s.n;
    while (b < e) {
        uint32_t cp;
        size_t l = tok_utf8_next_n((const unsigned char *)s.p + b, e - b, &cp);
        if (!tok_py_space(cp))
            break;
        b += l;
    }
    while (e > b) {
        size_t k = e - 1;
        while (k > b && ((unsigned char)s.p[k] & 0xC0) == 0x80)
            k--;
        uint32_t cp;
        if (tok_utf8_next_n((const unsigned char *)s.p + k, e - k, &cp) != e - k)
            cp = 0xFFFD; /* not one whole code point: not space */
        if (!tok_py_space(cp))
            break;
        e = k;
    }
    return (struct str){s.p + b, e - b};
}

static struct str lstrip_nl(struct str s)
{
    while (s.n && s.p[0] == '\n')
        s.p++, s.n--;
    return s;
}

static struct str rstrip_nl(struct str s)
{
    while (s.n && s.p[s.n - 1] == '\n')
        s.n--;
    return s;
}

static const char *find_last(struct str s, const char *needle)
{
    size_t l = strlen(needle);
    const char *last = NULL;
    for (const char *p = s.p; p + l <= s.p + s.n; p++) {
        p = memmem(p, (size_t)(s.p + s.n - p), needle, l);
        if (!p)
            break;
        last = p;
    }
    return last;
}

static int starts(struct str s, const char *x)
{
    size_t l = strlen(x);
    return s.n >= l && !memcmp(s.p, x, l);
}

static int ends(struct str s, const char *x)
{
    size_t l = strlen(x);
    return s.n >= l && !memcmp(s.p + s.n - l, x, l);
}

static void put(struct sbuf *o, struct str s)
{
    sbuf_append(o, s.p, s.n);
}

/* ---- the families ---- */

static int render_llama3(const struct tok *t, struct msg *m, int n, int agp, int trim,
                         struct sbuf *o)
{
    for (int i = 0; i < n; i++) {
        if (i == 0)
            sbuf_puts(o, t->bos_token ? t->bos_token : "<|begin_of_text|>");
        sbuf_printf(o, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
        struct str c = {m[i].content.data, m[i].content.len};
        put(o, trim ? py_strip(c) : c);
        sbuf_puts(o, "<|eot_id|>");
    }
    if (agp)
        sbuf_puts(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* Python's json.dumps(s, ensure_ascii=False), as transformers' tojson */
static void put_json_string(struct sbuf *o, struct str s)
{
    sbuf_puts(o, "\"");
    size_t run = 0;
    for (size_t i = 0; i < s.n; i++) {
        unsigned char c = (unsigned char)s.p[i];
        const char *esc = NULL;
        char u[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(u, sizeof(u), "\\u%04x", c);
                esc = u;
            }
        }
        if (!esc)
            continue;
        sbuf_append(o, s.p + run, i - run);
        sbuf_puts(o, esc);
        run = i + 1;
    }
    sbuf_append(o, s.p + run, s.n - run);
    sbuf_puts(o, "\"");
}

static int has_tool_calls(const struct msg *m)
{
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m->obj, "tool_calls");
    return tc && !cJSON_IsNull(tc);
}

static int render_llama31(const struct tok *t, struct msg *m, int n, int agp, struct sbuf *o,
                          const char **err)
{
    sbuf_puts(o, t->bos_token ? t->bos_token : "<|begin_of_text|>");
    int first = 0;
    struct str sys = {"", 0};
    if (n > 0 && !strcmp(m[0].role, "system")) {
        sys = py_strip((struct str){m[0].content.data, m[0].content.len});
        first = 1;
    }
    sbuf_puts(o, "<|start_header_id|>system<|end_header_id|>\n\n"
                 "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
    put(o, sys);
    sbuf_puts(o, "<|eot_id|>");
    for (int i = first; i < n; i++) {
        struct str c = {m[i].content.data, m[i].content.len};
        int tool = !strcmp(m[i].role, "tool") || !strcmp(m[i].role, "ipython");
        if (has_tool_calls(&m[i])) {
            *err = "messages[].tool_calls: not rendered by the gateway";
            return -EINVAL;
        }
        if (!tool) {
            sbuf_printf(o, "<|start_header_id|>%s<|end_header_id|>\n\n", m[i].role);
            put(o, py_strip(c));
        } else { /* a string is iterable for Jinja: tojson */
            sbuf_puts(o, "<|start_header_id|>ipython<|end_header_id|>\n\n");
            put_json_string(o, c);
        }
        sbuf_puts(o, "<|eot_id|>");
    }
    if (agp)
        sbuf_puts(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* Qwen2 and 2.5 */
static int render_chatml(const struct tok *t, struct msg *m, int n, int agp, struct sbuf *o,
                         const char **err)
{
    int q25 = t->tmpl == TOK_TEMPLATE_QWEN25;
    if (q25 && !strcmp(m[0].role, "system")) {
        sbuf_puts(o, "<|im_start|>system\n");
        put(o, (struct str){m[0].content.data, m[0].content.len});
        sbuf_puts(o, "<|im_end|>\n");
    } else if (q25 || strcmp(m[0].role, "system"))
        sbuf_printf(o, "<|im_start|>system\n%s<|im_end|>\n", t->sys_default);
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role;
        struct str c = {m[i].content.data, m[i].content.len};
        /* Qwen2's template never looks at tool_calls; Qwen2.5's writes them */
        const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m[i].obj, "tool_calls");
        int calls = tc && !cJSON_IsNull(tc) && !(cJSON_IsArray(tc) && !cJSON_GetArraySize(tc));
        if (!q25 || !strcmp(role, "user") || (!strcmp(role, "system") && i > 0) ||
            (!strcmp(role, "assistant") && !calls)) {
            if (q25 && !strcmp(role, "system") && i == 0)
                continue; /* written above */
            sbuf_printf(o, "<|im_start|>%s\n", role);
            put(o, c);
            sbuf_puts(o, "<|im_end|>\n");
        } else if (!strcmp(role, "assistant")) {
            *err = "messages[].tool_calls: not rendered by the gateway";
            return -EINVAL;
        } else if (!strcmp(role, "tool")) {
            if (i == 0 || strcmp(m[i - 1].role, "tool"))
                sbuf_puts(o, "<|im_start|>user");
            sbuf_puts(o, "\n<tool_response>\n");
            put(o, c);
            sbuf_puts(o, "\n</tool_response>");
            if (i == n - 1 || strcmp(m[i + 1].role, "tool"))
                sbuf_puts(o, "<|im_end|>\n");
        }
    }
    if (agp)
        sbuf_puts(o, "<|im_start|>assistant\n");
    return 0;
}

static int render_qwen3(struct msg *m, int n, int agp, struct sbuf *o, const char **err)
{
    if (!strcmp(m[0].role, "system")) {
        sbuf_puts(o, "<|im_start|>system\n");
        put(o, (struct str){m[0].content.data, m[0].content.len});
        sbuf_puts(o, "<|im_end|>\n");
    }
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        struct str c = {m[i].content.data, m[i].content.len};
        if (!strcmp(m[i].role, "user") &&
            !(starts(c, "<tool_response>") && ends(c, "</tool_response>"))) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role;
        struct str c = {m[i].content.data, m[i].content.len};
        if (!strcmp(role, "user") || (!strcmp(role, "system") && i > 0)) {
            sbuf_printf(o, "<|im_start|>%s\n", role);
            put(o, c);
            sbuf_puts(o, "<|im_end|>\n");
        } else if (!strcmp(role, "assistant")) {
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m[i].obj, "tool_calls");
            if (tc && !cJSON_IsNull(tc) && !(cJSON_IsArray(tc) && !cJSON_GetArraySize(tc))) {
                *err = "messages[].tool_calls: not rendered by the gateway";
                return -EINVAL;
            }
            struct str content = c, reasoning = {"", 0};
            const cJSON *rc = cJSON_GetObjectItemCaseSensitive(m[i].obj, "reasoning_content");
            if (rc && !cJSON_IsNull(rc)) {
                if (!cJSON_IsString(rc)) {
                    *err = "messages[].reasoning_content must be a string";
                    return -EINVAL;
                }
                reasoning = (struct str){rc->valuestring, strlen(rc->valuestring)};
            } else {
                const char *close = find_last(c, "</think>");
                if (close) {
                    const char *after = close + 8;
                    content = lstrip_nl((struct str){after, (size_t)(c.p + c.n - after)});
                    const char *first = memmem(c.p, c.n, "</think>", 8);
                    struct str before = rstrip_nl((struct str){c.p, (size_t)(first - c.p)});
                    const char *open = find_last(before, "<think>");
                    if (open)
                        before = (struct str){open + 7, (size_t)(before.p + before.n - open - 7)};
                    reasoning = lstrip_nl(before);
                }
            }
            if (i > last_query && (i == n - 1 || reasoning.n)) {
                sbuf_puts(o, "<|im_start|>assistant\n<think>\n");
                put(o, lstrip_nl(rstrip_nl(reasoning)));
                sbuf_puts(o, "\n</think>\n\n");
                put(o, lstrip_nl(content));
            } else {
                sbuf_puts(o, "<|im_start|>assistant\n");
                put(o, content);
            }
            sbuf_puts(o, "<|im_end|>\n");
        } else if (!strcmp(role, "tool")) {
            if (i == 0 || strcmp(m[i - 1].role, "tool"))
                sbuf_puts(o, "<|im_start|>user");
            sbuf_puts(o, "\n<tool_response>\n");
            put(o, c);
            sbuf_puts(o, "\n</tool_response>");
            if (i == n - 1 || strcmp(m[i + 1].role, "tool"))
                sbuf_puts(o, "<|im_end|>\n");
        }
        /* any other role: the template writes nothing */
    }
    if (agp)
        sbuf_puts(o, "<|im_start|>assistant\n");
    return 0;
}

int tok_render_chat(const struct tok *t, const cJSON *messages, int add_generation_prompt,
                    struct sbuf *out, const char **err)
{
    static const char *dummy;
    if (!err)
        err = &dummy;
    if (t->tmpl == TOK_TEMPLATE_UNKNOWN) {
        *err = "chat template not recognised";
        return -ENOTSUP;
    }
    struct msg *m;
    int n, rc = msgs_get(messages, &m, &n, err);
    if (rc)
        return rc;
    switch (t->tmpl) {
    case TOK_TEMPLATE_LLAMA3:
        rc = render_llama3(t, m, n, add_generation_prompt, 1, out);
        break;
    case TOK_TEMPLATE_LLAMA31:
        rc = render_llama31(t, m, n, add_generation_prompt, out, err);
        break;
    case TOK_TEMPLATE_PSEUDO: /* podsim's rendering: BOS, no trim */
        rc = render_llama3(t, m, n, add_generation_prompt, 0, out);
        break;
    case TOK_TEMPLATE_QWEN3:
        rc = render_qwen3(m, n, add_generation_prompt, out, err);
        break;
    case TOK_TEMPLATE_QWEN2:
    case TOK_TEMPLATE_QWEN25:
        rc = render_chatml(t, m, n, add_generation_prompt, out, err);
        break;
    default:
        rc = -ENOTSUP;
    }
    msgs_free(m, n);
    if (!rc && out->oom)
        rc = -ENOMEM;
    return rc;
}
