/* usage: a model server's reported token counts, read as bytes pass. See
 * usage.h.
 *
 * A resumable JSON scanner that keeps only what the next byte needs: the
 * state, the depth and a bit per level (object or array), the key being
 * read (at the three levels where keys matter), the number being read.
 * Any byte may end a piece; within one, a string's run, a number or a
 * literal is taken in one call and the common `,"` / `":` steps at once
 * (fast_next), the state switch only for the rest. Strings are skipped,
 * so "usage" inside generated text is never a key; keys are matched only at depth 1 (the top-level object), depth 2
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

/* Which field a key names at the current depth (only the depths where keys
 * matter get here: key_relevant). By length first, so that each compare is
 * one of known size. */
static unsigned key_field(unsigned depth, const unsigned char *k, size_t len)
{
    switch (len) {
    case 5:
        return depth == 1 && !memcmp(k, "usage", 5) ? F_USAGE : F_NONE;
    case 7:
        return depth == 1 && !memcmp(k, "choices", 7) ? F_CHOICES : F_NONE;
    case 13:
        if (depth == 2 && !memcmp(k, "prompt_tokens", 13))
            return F_PROMPT;
        return depth == 3 && !memcmp(k, "cached_tokens", 13) ? F_CACHED : F_NONE;
    case 17:
        return depth == 2 && !memcmp(k, "completion_tokens", 17) ? F_COMPLETION : F_NONE;
    case 21:
        return depth == 2 && !memcmp(k, "prompt_tokens_details", 21) ? F_DETAILS : F_NONE;
    default:
        return F_NONE;
    }
}

/* Whether a key at the current depth can name a field: the top level, the
 * "usage" object's level, "prompt_tokens_details"'s. Other keys are not
 * kept (most of an answer's: "choices"' insides). */
static int key_relevant(const struct usage_json *j)
{
    return j->depth == 1 || (j->depth == 2 && j->in_usage) || (j->depth == 3 && j->in_details);
}

/* The key just read (k[0..len), len > USAGE_KEY_MAX: none) at the current
 * depth: which field its value is. A field given twice voids the usage. */
static void key_done(struct usage_json *j, const unsigned char *k, size_t len)
{
    j->field = F_NONE;
    if (len > USAGE_KEY_MAX)
        return;
    unsigned f = key_field(j->depth, k, len);
    if (f == F_NONE)
        return;
    if (f != F_CHOICES && (j->seen >> f & 1))
        j->ubad = 1;
    j->seen |= (uint8_t)(1u << f);
    j->field = (uint8_t)f;
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

/* Bytes that may continue a number: the scan takes a number as its first
 * byte and any run of these (what is not a count is not checked further). */
static const uint8_t NUM_CHAR[256] = {
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,
    ['7'] = 1, ['8'] = 1, ['9'] = 1, ['.'] = 1, ['e'] = 1, ['E'] = 1, ['+'] = 1, ['-'] = 1,
};

/* One structural byte (not white space) in a state outside a token. */
static void structural(struct usage_json *j, unsigned char c)
{
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
        j->str_key = key_relevant(j) ? 1 : 2;
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

/* A number's bytes from s (the state is J_NUM): to its end, which is not
 * consumed (it starts what follows), or to end. */
static const unsigned char *num_run(struct usage_json *j, const unsigned char *s,
                                    const unsigned char *end)
{
    if (!j->num_field) { /* not a count: only where it ends matters */
        while (s < end && NUM_CHAR[*s])
            s++;
    } else {
        for (; s < end && NUM_CHAR[*s]; s++) {
            unsigned char c = *s;
            if (c < '0' || c > '9') {
                j->ubad = 1; /* a fraction, exponent or sign */
                j->num_field = F_NONE;
                while (s < end && NUM_CHAR[*s])
                    s++;
                break;
            }
            if (j->num > USAGE_MAX_TOKENS) {
                j->ubad = 1;
                j->num_field = F_NONE;
                while (s < end && NUM_CHAR[*s])
                    s++;
                break;
            }
            j->num = j->num * 10 + (uint64_t)(c - '0');
        }
    }
    if (s == end)
        return s; /* it may go on in the next piece */
    if (j->num_field) {
        if (j->num > USAGE_MAX_TOKENS)
            j->ubad = 1;
        else
            store(j, j->num_field, j->num);
    }
    j->num_field = F_NONE;
    value_done(j);
    return s;
}

/* A literal's bytes from s (the state is J_LIT, its first byte read). */
static const unsigned char *lit_run(struct usage_json *j, const unsigned char *s,
                                    const unsigned char *end)
{
    const char *l = LIT[j->lit];
    unsigned len = LIT_LEN[j->lit], i = j->lit_i;
    while (i < len && s < end) {
        if (*s != (unsigned char)l[i]) {
            j->bad = 1;
            return s;
        }
        i++, s++;
    }
    j->lit_i = (uint8_t)i;
    if (i == len)
        value_done(j);
    return s;
}

/* The end of the run of plain string bytes from s: the first '"', '\\' or
 * control byte, or end. Eight bytes at a time (haszero on the word xor'd
 * with each; bytes < 0x20 by the same borrow test; the lowest flagged byte
 * is exact, so its place is the first stop): most of an answer's bytes are
 * string content, and this is on the path of every non-streamed answer
 * (issue 13's overhead). */
static const unsigned char *str_run(const unsigned char *s, const unsigned char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    while (end - s >= 8) {
        uint64_t w, q, b, m;
        memcpy(&w, s, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        m = (((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs;
        if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return s + (__builtin_ctzll(m) >> 3);
#else
            break; /* find it below */
#endif
        }
        s += 8;
    }
    while (s < end && *s != '"' && *s != '\\' && *s >= 0x20)
        s++;
    return s;
}

/* A string's bytes from s (the state is J_STR): its run of plain bytes and
 * what ends it (the closing quote, an escape, a control byte), or to end. */
static const unsigned char *str_feed(struct usage_json *j, const unsigned char *s,
                                     const unsigned char *end)
{
    const unsigned char *q = str_run(s, end);
    size_t k = (size_t)(q - s);
    if (j->str_key == 1 && (q == end || *q != '"' || j->klen)) {
        /* a key that goes on (or went on) past this run: kept in kbuf */
        if (j->klen + k <= USAGE_KEY_MAX)
            memcpy(j->kbuf + j->klen, s, k);
        j->klen = j->klen + k <= USAGE_KEY_MAX ? (uint8_t)(j->klen + k) : USAGE_KEY_MAX + 1;
    }
    if (q == end)
        return q;
    if (*q < 0x20) {
        j->bad = 1; /* a raw control byte in a string */
    } else if (*q == '\\') {
        if (j->str_key)
            j->klen = USAGE_KEY_MAX + 1; /* an escaped key matches nothing */
        j->st = J_STR_ESC;
    } else if (j->str_key == 1) {
        /* the key whole in this run (klen 0: nothing kept), else in kbuf */
        if (j->klen)
            key_done(j, (const unsigned char *)j->kbuf, j->klen);
        else
            key_done(j, s, k);
        j->st = J_COLON;
    } else if (j->str_key) {
        j->field = F_NONE; /* a key that names nothing here */
        j->st = J_COLON;
    } else {
        value_done(j);
    }
    return q + 1;
}

/* The two-byte steps most of an answer's structure is made of, taken at
 * once after a string, number or literal ends (where a branch on the byte
 * is cheaper than another round of the state switch): `,"` in an object
 * (the next key begins) and `":` + the value's first byte after a key.
 * Anything else is left to the state switch. */
static const unsigned char *fast_next(struct usage_json *j, const unsigned char *s,
                                      const unsigned char *end)
{
    if (end - s < 2)
        return s;
    if (j->st == J_AFTER) {
        if (s[0] != ',' || s[1] != '"' || !is_obj(j))
            return s;
        j->field = F_NONE;
        j->str_key = key_relevant(j) ? 1 : 2;
        j->klen = 0;
        j->st = J_STR;
        return s + 2;
    }
    if (j->st == J_COLON && s[0] == ':' && !is_ws(s[1])) {
        j->st = J_VALUE;
        begin_value(j, s[1]);
        return s + 2;
    }
    return s;
}

void usage_json_feed(struct usage_json *j, const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p, *end = s + n;
    while (s < end && !j->bad) {
        switch (j->st) {
        case J_STR:
            s = str_feed(j, s, end);
            s = fast_next(j, s, end);
            break;
        case J_STR_ESC:
            j->st = J_STR; /* the escaped byte (or \u's first hex digit) */
            s++;
            break;
        case J_NUM:
            s = num_run(j, s, end);
            s = fast_next(j, s, end);
            break;
        case J_LIT:
            s = lit_run(j, s, end);
            s = fast_next(j, s, end);
            break;
        default: {
            unsigned char c = *s++;
            if (!is_ws(c))
                structural(j, c);
        }
        }
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
