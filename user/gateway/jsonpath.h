/* jsonpath: typed reads of cJSON values whose errors name the key path,
 * e.g. `policy.weights.kv: expected a number >= 0`. Used by the config
 * loader (config.c) and the admin API (admin.c).
 *
 * Paths are built with jp_join: "a.b.c" for plain keys ([A-Za-z0-9_-]+),
 * `a["org/model"]` otherwise. Every jp_* check returns 0, or -1 after
 * writing "<path>: <what is wrong>" into the error buffer (truncated, always
 * NUL-terminated). Strings from the document are echoed shortened and with
 * unprintable bytes escaped. */
#ifndef KVGATE_GATEWAY_JSONPATH_H
#define KVGATE_GATEWAY_JSONPATH_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define JP_PATH_MAX 384 /* a key path buffer */

struct jp_err {
    char *buf;
    size_t len;
};

/* Writes "path: <fmt>" (just <fmt> when path is NULL or ""); returns -1. */
int jp_fail(struct jp_err *e, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* s shortened to fit cap, bytes outside printable ASCII and '"' '\' as
 * \xNN; returns buf. */
const char *jp_shown(const char *s, char *buf, size_t cap);
/* out (JP_PATH_MAX bytes) = path joined with key. */
void jp_join(char *out, const char *path, const char *key);
/* k, a member of object o, repeats an earlier key: -1. */
int jp_dup_key(struct jp_err *e, const char *path, const struct cJSON *o,
               const struct cJSON *k);
/* `path: unknown key "k"` (`unknown key "k" at top level` for path ""). */
int jp_unknown_key(struct jp_err *e, const char *path, const struct cJSON *k);

/* An integral number in [lo, hi]. */
int jp_int(struct jp_err *e, const char *path, const struct cJSON *v, double lo,
           double hi, double *out);
int jp_u32(struct jp_err *e, const char *path, const struct cJSON *v, double lo,
           double hi, uint32_t *out);
/* A finite number >= lo (> lo when strict) and <= hi (INFINITY: no bound). */
int jp_num(struct jp_err *e, const char *path, const struct cJSON *v, double lo,
           int strict, double hi, double *out);
int jp_bool(struct jp_err *e, const char *path, const struct cJSON *v, int *out);
/* A string of min_len to cap-1 bytes, copied into out. */
int jp_str(struct jp_err *e, const char *path, const struct cJSON *v, char *out,
           size_t cap, size_t min_len);
int jp_obj(struct jp_err *e, const char *path, const struct cJSON *v);

#endif
