/* jsonpath: typed cJSON reads with key-path errors. See jsonpath.h. */
#include "gateway/jsonpath.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int jp_fail(struct jp_err *e, const char *path, const char *fmt, ...)
{
    if (!e->buf || !e->len)
        return -1;
    int n = 0;
    if (path && *path)
        n = snprintf(e->buf, e->len, "%s: ", path);
    if (n < 0 || (size_t)n >= e->len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A user-supplied string, shortened and with unprintable bytes escaped, for
 * echoing in a message (keys and values may be anything). */
const char *jp_shown(const char *s, char *buf, size_t cap)
{
    size_t o = 0;
    for (; s && *s && o + 5 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\')
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    if (s && *s && o + 3 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o < cap ? o : cap - 1] = 0;
    return buf;
}

static int plain_word(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!(*s == '_' || *s == '-' || (*s >= '0' && *s <= '9') ||
              (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
            return 0;
    return 1;
}

/* path + "." + key, or path + "[\"key\"]" when key is not a plain word */
void jp_join(char *out, const char *path, const char *key)
{
    char q[96];
    const char *k = key ? key : "";
    if (plain_word(k))
        snprintf(out, JP_PATH_MAX, "%s%s%s", path, *path ? "." : "", k);
    else
        snprintf(out, JP_PATH_MAX, "%s[\"%s\"]", path, jp_shown(k, q, sizeof(q)));
}

/* Rejects a key seen earlier in the same object. */
int jp_dup_key(struct jp_err *e, const char *path, const cJSON *o, const cJSON *k)
{
    for (const cJSON *p = o->child; p && p != k; p = p->next) {
        if (p->string && k->string && !strcmp(p->string, k->string)) {
            char q[96];
            jp_shown(k->string, q, sizeof(q));
            return *path ? jp_fail(e, path, "duplicate key \"%s\"", q)
                         : jp_fail(e, NULL, "duplicate key \"%s\" at top level", q);
        }
    }
    return 0;
}

int jp_unknown_key(struct jp_err *e, const char *path, const cJSON *k)
{
    char q[96];
    jp_shown(k->string, q, sizeof(q));
    return *path ? jp_fail(e, path, "unknown key \"%s\"", q)
                 : jp_fail(e, NULL, "unknown key \"%s\" at top level", q);
}

/* ---- typed values ---- */

int jp_int(struct jp_err *e, const char *path, const cJSON *v, double lo,
                    double hi, double *out)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
        v->valuedouble < lo || v->valuedouble > hi)
        return jp_fail(e, path, "expected an integer in [%.0f, %.0f]", lo, hi);
    *out = v->valuedouble;
    return 0;
}

int jp_u32(struct jp_err *e, const char *path, const cJSON *v, double lo,
                    double hi, uint32_t *out)
{
    double d = 0;
    if (jp_int(e, path, v, lo, hi, &d))
        return -1;
    *out = (uint32_t)d;
    return 0;
}

/* number >= lo (or > lo when strict), <= hi */
int jp_num(struct jp_err *e, const char *path, const cJSON *v, double lo,
                    int strict, double hi, double *out)
{
    int ok = cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
             (strict ? v->valuedouble > lo : v->valuedouble >= lo) &&
             v->valuedouble <= hi;
    if (!ok) {
        if (isinf(hi))
            return jp_fail(e, path, "expected a number %s %g", strict ? ">" : ">=", lo);
        return jp_fail(e, path, "expected a number in %c%g, %g]", strict ? '(' : '[',
                   lo, hi);
    }
    *out = v->valuedouble;
    return 0;
}

int jp_bool(struct jp_err *e, const char *path, const cJSON *v, int *out)
{
    if (!cJSON_IsBool(v))
        return jp_fail(e, path, "expected true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

/* string of at most cap-1 bytes (min_len: 1 = must not be empty) */
int jp_str(struct jp_err *e, const char *path, const cJSON *v, char *out,
                    size_t cap, size_t min_len)
{
    size_t n = cJSON_IsString(v) && v->valuestring ? strlen(v->valuestring) : 0;
    if (!cJSON_IsString(v) || !v->valuestring || n >= cap || n < min_len)
        return jp_fail(e, path, "expected a %sstring of at most %zu bytes",
                   min_len ? "non-empty " : "", cap - 1);
    memcpy(out, v->valuestring, n + 1);
    return 0;
}

int jp_obj(struct jp_err *e, const char *path, const cJSON *v)
{
    return cJSON_IsObject(v) ? 0 : jp_fail(e, path, "expected an object");
}
