/* sse: Server-Sent Events line and event framing. See sse.h. */
#include "sse.h"

#include <errno.h>
#include <string.h>

void lg_sse_init(struct lg_sse *s)
{
    memset(s, 0, sizeof(*s));
    sbuf_init(&s->line);
    sbuf_init(&s->data);
    s->max_line = LG_SSE_MAX_LINE;
}

void lg_sse_free(struct lg_sse *s)
{
    sbuf_free(&s->line);
    sbuf_free(&s->data);
}

/* One complete line (without its end). */
static int on_line(struct lg_sse *s, const char *l, size_t n, lg_sse_cb cb, void *arg)
{
    if (n == 0) { /* blank line: dispatch */
        int rc = 0;
        if (s->has_data) {
            s->events++;
            /* data lines are joined with '\n'; the last one is dropped */
            size_t len = s->data.len ? s->data.len - 1 : 0;
            rc = cb(arg, s->data.data ? s->data.data : "", len);
        }
        sbuf_reset(&s->data);
        s->has_data = 0;
        return rc;
    }
    if (l[0] == ':')
        return 0; /* comment / keep-alive */
    const char *colon = memchr(l, ':', n);
    size_t fl = colon ? (size_t)(colon - l) : n;
    if (fl != 4 || memcmp(l, "data", 4))
        return 0; /* event, id, retry, unknown: not needed here */
    const char *v = colon ? colon + 1 : l + n;
    size_t vl = (size_t)(l + n - v);
    if (vl && *v == ' ') {
        v++;
        vl--;
    }
    if (sbuf_append(&s->data, v, vl) < 0 || sbuf_append(&s->data, "\n", 1) < 0)
        return -ENOMEM;
    if (s->data.len > s->max_line)
        return -E2BIG;
    s->has_data = 1;
    return 0;
}

int lg_sse_feed(struct lg_sse *s, const char *p, size_t n, lg_sse_cb cb, void *arg)
{
    size_t i = 0;
    while (i < n) {
        if (s->cr) {
            s->cr = 0;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        /* find the end of the line: LF or CR */
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        if (j == n) { /* partial line: keep it */
            if (s->line.len + (n - i) > s->max_line)
                return -E2BIG;
            if (sbuf_append(&s->line, p + i, n - i) < 0)
                return -ENOMEM;
            return 0;
        }
        int rc;
        if (s->line.len) {
            if (sbuf_append(&s->line, p + i, j - i) < 0)
                return -ENOMEM;
            rc = on_line(s, s->line.data, s->line.len, cb, arg);
            sbuf_reset(&s->line);
        } else {
            rc = on_line(s, p + i, j - i, cb, arg);
        }
        s->cr = p[j] == '\r';
        i = j + 1;
        if (rc)
            return rc;
    }
    return 0;
}
