/* sse: event framing and classification. See sse.h. */
#include "gateway/sse.h"

#include <string.h>

size_t sse_split(const char *d, size_t len,
                 void (*on_event)(void *arg, const char *e, size_t n), void *arg)
{
    size_t start = 0, done = 0;
    for (size_t i = 0; i + 1 < len; i++) {
        if (d[i] != '\n')
            continue;
        size_t j = i + 1;
        if (d[j] == '\r' && j + 1 < len)
            j++;
        if (d[j] != '\n')
            continue;
        on_event(arg, d + start, i - start);
        start = done = j + 1;
        i = j;
    }
    return done;
}

/* Skips spaces after a key and says whether a non-empty string follows. */
static int nonempty_string_after(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p + 1 < end && p[0] == '"' && p[1] != '"';
}

static int has_content(const char *e, size_t n)
{
    static const char *const keys[] = { "\"content\":", "\"text\":", NULL };
    const char *end = e + n;
    for (int k = 0; keys[k]; k++) {
        size_t kl = strlen(keys[k]);
        const char *p = e;
        while (p < end && (p = memmem(p, (size_t)(end - p), keys[k], kl))) {
            p += kl;
            if (nonempty_string_after(p, end))
                return 1;
        }
    }
    return 0;
}

enum sse_kind sse_kind(const char *e, size_t n)
{
    const char *p = e, *end = e + n;
    while (p < end) { /* any line starting with "data:" */
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le - p >= 5 && memcmp(p, "data:", 5) == 0)
            return has_content(e, n) ? SSE_CONTENT : SSE_DATA;
        p = nl ? nl + 1 : end;
    }
    return SSE_NO_DATA;
}
