/* log: one way to say something on stderr, for every program here.
 *
 *   LOG_ERR("listen: cannot listen on %s: %s", addr, strerror(-rc));
 *
 * prints "kvgated: listen: cannot listen on ...\n" (the program name set
 * by log_init) as one write(2), so lines from several threads never
 * interleave. The level is checked before anything is formatted: a
 * LOG_DEBUG on the data path costs a load and a compare when it is off.
 * Errors, warnings and notices are on by default (notices are what an
 * operator reads at start and stop); KVGATE_LOG=debug|info|warn|error
 * in the environment, or log_set_level, changes it. */
#ifndef KVGATE_COMMON_LOG_H
#define KVGATE_COMMON_LOG_H

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

extern int log_level_now; /* messages at or below it are printed */

/* prog: the prefix ("kvgated"); also reads KVGATE_LOG. */
void log_init(const char *prog);
void log_set_level(enum log_level l);
/* "error", "warn", "info", "debug": 0, or -1 for anything else. */
int log_level_parse(const char *s, enum log_level *out);

void log_write(enum log_level l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_AT(l, ...)                                                        \
    do {                                                                      \
        if ((int)(l) <= log_level_now)                                        \
            log_write((l), __VA_ARGS__);                                      \
    } while (0)
#define LOG_ERR(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
