/* usage: a model server's reported token counts, read as bytes pass. See
 * usage.h.
 *
 * A byte-at-a-time JSON scanner that keeps only what the next byte needs:
 * the state, the depth and a bit per level (object or array), the key
 * being read (at the three levels where keys matter), the number being
 * read. Strings are skipped, so "usage" inside generated text is never a
 * key; keys are matched only at depth 1 (the top-level object), depth 2
 * inside "usage" and depth 3 inside "prompt_tokens_details". The SSE layer
 * feeds each "data:" line of an event to one document. */
#include "core/usage.h"

#include <string.h>

enum { J_VALUE, J_OBJ_FIRST, J_KEY, J_COLON, J_AFTER, J_ARR_FIRST, J_STR, J_STR_ESC,
       J_NUM, J_LIT, J_DONE };

enum { F_NONE, F_USAGE, F_CHOICES, F_PROMPT, F_COMPLETION, F_DETAILS, F_CACHED };

static const char *const LIT[3] = { "true", "false", "null" };
static const uint8_t LIT_LEN[3] = { 4, 5, 4 };

void usage_json_init(struct usage_json *j)
{
    memset(j, 0, sizeof(*j));
    j->st = J_VALUE;
}

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_num_field(unsigned f)
{
    return f == F_PROMPT || f == F_COMPLETION || f == F_CACHED;
}

static int is_obj(const struct usage_json *j)
{
    return j->depth && (j->stack >> (j->depth - 1) & 1);
}

static void value_done(struct usage_json *j)
{
    j->st = j->depth == 0 ? J_DONE : J_AFTER;
}

static void store(struct usage_json *j, unsigned f, uint64_t v)
{
    if (f == F_PROMPT) {
        j->u.prompt = v;
        j->u.has_prompt = 1;
    } else if (f == F_COMPLETION) {
        j->u.completion = v;
        j->u.has_completion = 1;
    } else if (f == F_CACHED) {
        j->u.cached = v;
        j->u.has_cached = 1;
    }
}

/* The key just read (kbuf[0..klen)) at the current depth: which field its
 * value is. A field given twice voids the usage. */
static void key_done(struct usage_json *j)
{
    static const struct {
        uint8_t depth, field, len;
        const char *name;
    } K[] = {
        { 1, F_USAGE, 5, "usage" },
        { 1, F_CHOICES, 7, "choices" },
        { 2, F_PROMPT, 13, "prompt_tokens" },
        { 2, F_COMPLETION, 17, "completion_tokens" },
        { 2, F_DETAILS, 21, "prompt_tokens_details" },
        { 3, F_CACHED, 13, "cached_tokens" },
    };
    j->field = F_NONE;
    if (j->klen > USAGE_KEY_MAX)
        return;
    if ((j->depth == 2 && !j->in_usage) || (j->depth == 3 && !j->in_details) || j->depth > 3)
        return;
    for (size_t i = 0; i < sizeof(K) / sizeof(K[0]); i++)
        if (K[i].depth == j->depth && K[i].len == j->klen &&
            !memcmp(K[i].name, j->kbuf, j->klen)) {
            unsigned f = K[i].field;
            if (f != F_CHOICES && (j->seen >> f & 1))
                j->ubad = 1;
            j->seen |= (uint8_t)(1u << f);
            j->field = (uint8_t)f;
            return;
        }
}

static void push(struct usage_json *j, int obj)
{
    if (obj)
        j->stack |= 1ull << j->depth;
    else
        j->stack &= ~(1ull << j->depth);
    j->depth++;
}

static void pop(struct usage_json *j)
{
    j->depth--;
    if (j->depth == 1)
        j->in_usage = 0;
    if (j->depth == 2)
        j->in_details = 0;
    value_done(j);
}

static void begin_value(struct usage_json *j, unsigned char c)
{
    unsigned f = j->field;
    j->field = F_NONE;
    if (j->depth == 0 && c != '{') {
        j->bad = 1;
        return;
    }
    switch (c) {
    case '{': case '[':
        if (j->depth == USAGE_MAX_DEPTH) {
            j->bad = 1;
            return;
        }
        push(j, c == '{');
        if (c == '{' && f == F_USAGE) {
            j->in_usage = 1;
            j->has_usage = 1;
        } else if (c == '{' && f == F_DETAILS) {
            j->in_details = 1;
        } else if (c == '[' && f == F_CHOICES) {
            j->choices_open = 1;
        } else if (f && f != F_CHOICES) {
            j->ubad = 1; /* usage, details or a count of the wrong type */
        }
        j->st = c == '{' ? J_OBJ_FIRST : J_ARR_FIRST;
        return;
    case '"':
        if (f && f != F_CHOICES)
            j->ubad = 1;
        j->str_key = 0;
        j->st = J_STR;
        return;
    case 't': case 'f': case 'n':
        if (f && f != F_CHOICES && c != 'n')
            j->ubad = 1; /* null is absent; true / false are wrong */
        j->lit = c == 't' ? 0 : c == 'f' ? 1 : 2;
        j->lit_i = 1;
        j->st = J_LIT;
        return;
    case '-': case '0': case '1': case '2': case '3': case '4':
    case '5': case '6': case '7': case '8': case '9':
        if (f == F_USAGE || f == F_DETAILS || (is_num_field(f) && c == '-'))
            j->ubad = 1;
        j->num_field = is_num_field(f) && c != '-' ? (uint8_t)f : F_NONE;
        j->num = c == '-' ? 0 : (uint64_t)(c - '0');
        j->st = J_NUM;
        return;
    default:
        j->bad = 1;
    }
}

static int is_num_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' ||
           c == '-';
}

/* One byte outside a string's run. */
static void step(struct usage_json *j, unsigned char c)
{
    for (;;) { /* at most twice: a number's end is the next token's start */
        switch (j->st) {
        case J_NUM:
            if (is_num_char(c)) {
                if (j->num_field) {
                    if (c < '0' || c > '9') {
                        j->ubad = 1; /* a fraction, exponent or sign */
                        j->num_field = F_NONE;
                    } else if (j->num > USAGE_MAX_TOKENS) {
                        j->ubad = 1;
                        j->num_field = F_NONE;
                    } else {
                        j->num = j->num * 10 + (uint64_t)(c - '0');
                    }
                }
                return;
            }
            if (j->num_field) {
                if (j->num > USAGE_MAX_TOKENS)
                    j->ubad = 1;
                else
                    store(j, j->num_field, j->num);
            }
            j->num_field = F_NONE;
            value_done(j);
            continue; /* c starts what follows */
        case J_LIT:
            if (c != (unsigned char)LIT[j->lit][j->lit_i]) {
                j->bad = 1;
                return;
            }
            if (++j->lit_i == LIT_LEN[j->lit])
                value_done(j);
            return;
        default:
            break;
        }
        break;
    }
    if (is_ws(c))
        return;
    switch (j->st) {
    case J_VALUE:
        begin_value(j, c);
        return;
    case J_ARR_FIRST: {
        int open = j->choices_open;
        j->choices_open = 0;
        if (c == ']') {
            if (open && j->depth == 2)
                j->choices_empty = 1;
            pop(j);
        } else {
            begin_value(j, c);
        }
        return;
    }
    case J_OBJ_FIRST:
        if (c == '}') {
            pop(j);
            return;
        }
        /* fall through */
    case J_KEY:
        if (c != '"') {
            j->bad = 1;
            return;
        }
        j->str_key = 1;
        j->klen = 0;
        j->st = J_STR;
        return;
    case J_COLON:
        if (c != ':')
            j->bad = 1;
        else
            j->st = J_VALUE;
        return;
    case J_AFTER:
        if (c == ',') {
            j->field = F_NONE;
            j->st = is_obj(j) ? J_KEY : J_VALUE;
        } else if (c == (is_obj(j) ? '}' : ']')) {
            pop(j);
        } else {
            j->bad = 1;
        }
        return;
    default: /* J_DONE: only white space may follow */
        j->bad = 1;
    }
}

/* The end of the run of plain string bytes from s: the first '"', '\\' or
 * control byte, or end. Eight bytes at a time while none of them is one
 * (haszero on the word xor'd with each; bytes < 0x20 by the same borrow
 * test): most of an answer's bytes are string content, and this is on the
 * path of every non-streamed answer (issue 13's overhead). */
static const unsigned char *str_run(const unsigned char *s, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - s >= 8) {
        uint64_t w, q, b;
        memcpy(&w, s, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        if ((((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs)
            break; /* one of these eight ends the run: find it below */
        s += 8;
    }
    while (s < end && *s != '"' && *s != '\\' && *s >= 0x20)
        s++;
    return s;
}

void usage_json_feed(struct usage_json *j, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p, *end = s + n;
    while (s < end && !j->bad) {
        if (j->st == J_STR) {
            /* a run of plain string bytes at once */
            const unsigned char *q = str_run(s, end);
            if (j->str_key) {
                size_t k = (size_t)(q - s);
                if (j->klen + k <= USAGE_KEY_MAX)
                    memcpy(j->kbuf + j->klen, s, k);
                j->klen = j->klen + k <= USAGE_KEY_MAX ? (uint8_t)(j->klen + k)
                                                       : USAGE_KEY_MAX + 1;
            }
            s = q;
            if (s == end)
                break;
            if (*s < 0x20) {
                j->bad = 1; /* a raw control byte in a string */
            } else if (*s == '\\') {
                if (j->str_key)
                    j->klen = USAGE_KEY_MAX + 1; /* an escaped key matches nothing */
                j->st = J_STR_ESC;
            } else if (j->str_key) {
                key_done(j);
                j->st = J_COLON;
            } else {
                value_done(j);
            }
            s++;
            continue;
        }
        if (j->st == J_STR_ESC) {
            j->st = J_STR; /* the escaped byte (or \u's first hex digit) */
            s++;
            continue;
        }
        step(j, *s++);
    }
}

int usage_json_result(const struct usage_json *j, struct usage *out, int *usage_only)
{
    int done = !j->bad && j->st == J_DONE;
    if (usage_only)
        *usage_only = done && j->choices_empty;
    if (!done || !j->has_usage || j->ubad)
        return 0;
    *out = j->u;
    return 1;
}

/* ---- SSE ---- */

enum { L_START, L_CR, L_NAME, L_SP, L_DATA, L_SKIP };

void usage_sse_init(struct usage_sse *s)
{
    memset(s, 0, sizeof(*s));
    usage_json_init(&s->doc);
    s->ln = L_START;
}

static void event_end(struct usage_sse *s)
{
    struct usage u;
    int only = 0;
    if (s->data_lines && usage_json_result(&s->doc, &u, &only)) {
        s->last = u;
        s->have = 1;
        s->last_usage_only = (uint8_t)only;
        s->events++;
    }
    usage_json_init(&s->doc);
    s->data_lines = 0;
}

/* A "data:" line begins: lines of one event are joined with "\n". */
static void data_line(struct usage_sse *s)
{
    if (s->data_lines)
        usage_json_feed(&s->doc, "\n", 1);
    if (s->data_lines < UINT8_MAX)
        s->data_lines++;
}

void usage_sse_feed(struct usage_sse *s, const char *p, size_t n)
{
    const char *end = p + n;
    while (p < end) {
        char c = *p;
        switch (s->ln) {
        case L_START:
            if (c == '\n')
                event_end(s); /* a blank line */
            else if (c == '\r')
                s->ln = L_CR;
            else if (c == 'd')
                s->ln = L_NAME, s->name_i = 1;
            else
                s->ln = L_SKIP;
            p++;
            break;
        case L_CR: /* "\r\n" is a blank line too (sse.h) */
            if (c == '\n') {
                event_end(s);
                s->ln = L_START;
            } else {
                s->ln = L_SKIP;
                continue;
            }
            p++;
            break;
        case L_NAME:
            if (s->name_i < 4 && c == "data"[s->name_i]) {
                s->name_i++;
            } else if (s->name_i == 4 && c == ':') {
                data_line(s);
                s->ln = L_SP;
            } else if (s->name_i == 4 && c == '\n') {
                data_line(s); /* "data" alone: an empty value */
                s->ln = L_START;
            } else {
                s->ln = L_SKIP;
                continue;
            }
            p++;
            break;
        case L_SP:
            s->ln = L_DATA;
            if (c == ' ')
                p++; /* one space after the colon is not part of the value */
            break;
        case L_DATA: {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *le = nl ? nl : end;
            usage_json_feed(&s->doc, p, (size_t)(le - p));
            p = le;
            if (nl) {
                s->ln = L_START;
                p++;
            }
            break;
        }
        default: { /* L_SKIP: a line that is not data */
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl)
                return;
            s->ln = L_START;
            p = nl + 1;
        }
        }
    }
}

void usage_sse_finish(struct usage_sse *s)
{
    event_end(s);
    s->ln = L_START;
}

int usage_sse_result(const struct usage_sse *s, struct usage *out)
{
    if (!s->have)
        return 0;
    *out = s->last;
    return 1;
}

int usage_key_in(const char *p, size_t n)
{
    if (n < 7)
        return 0;
    const char *g = p + 4, *end = p + n - 2; /* 'g' is byte 4 of the 7 */
    while (g < end && (g = memchr(g, 'g', (size_t)(end - g))) != NULL) {
        if (!memcmp(g - 4, "\"usage\"", 7))
            return 1;
        g++;
    }
    return 0;
}

int usage_sse_event(const char *e, size_t n, struct usage *out, int *usage_only)
{
    struct usage_sse s;
    usage_sse_init(&s);
    usage_sse_feed(&s, e, n);
    usage_sse_finish(&s);
    if (usage_only)
        *usage_only = s.have && s.last_usage_only;
    return usage_sse_result(&s, out);
}
