/* log: see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int log_level_now = LOG_LVL_INFO;
static char g_prog[32] = "kvgate";

int log_level_parse(const char *s, enum log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (enum log_level)i;
            return 0;
        }
    return -1;
}

void log_set_level(enum log_level l)
{
    log_level_now = (int)l;
}

void log_init(const char *prog)
{
    snprintf(g_prog, sizeof(g_prog), "%s", prog);
    const char *e = getenv("KVGATE_LOG");
    enum log_level l;
    if (e && !log_level_parse(e, &l))
        log_set_level(l);
}

void log_write(enum log_level l, const char *fmt, ...)
{
    (void)l;
    char line[1024];
    int n = snprintf(line, sizeof(line), "%s: ", g_prog);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2; /* cut: a log line is not where a page goes */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w; /* nowhere to say that saying failed */
}
