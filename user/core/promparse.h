/* promparse: a whole-buffer parser of the Prometheus text exposition format
 * 0.0.4, as the model servers' /metrics pages are written.
 *
 * Lines are `# HELP ...`, `# TYPE ...`, other `#` comments, blank lines and
 * samples `name{label="value",...} value [timestamp]`. Every sample is handed
 * to a callback with pointers into the caller's buffer (nothing is copied or
 * allocated); label values stay raw, i.e. still escaped (\\ \" \n), and
 * prom_label_eq / prom_unescape read them.
 *
 * Robustness contract (the control thread parses untrusted pages every
 * 50 ms): the buffer need not be NUL-terminated; work is linear in its
 * length; a malformed line is skipped and counted, it never aborts the page;
 * a final line without its '\n' (a page cut short) is never delivered,
 * because "12" cut to "1" would parse as a wrong number. The page as a whole
 * is rejected (-EINVAL) when it contains a NUL byte or when more than half of
 * its non-blank lines are malformed; by then callbacks may already have run,
 * so a caller accumulates into scratch state and discards it on error.
 *
 * Accepted syntax, following the Go reference parser (expfmt): blanks
 * (space, tab) may lead a line and surround '{', '=', ',' and '}'; label
 * sets may be empty `{}` or end with a comma `{a="b",}`; a label name may
 * not repeat within a sample; values are decimal floats with optional
 * exponent, or Inf / +Inf / -Inf / Infinity / NaN in any case (hex floats
 * are not accepted); timestamps are int64 milliseconds; a '\r' before the
 * '\n' is ignored. Decimal parsing is exact (correctly rounded); tokens the
 * fast path cannot do exactly go to strtod(), which reads the C locale's
 * decimal point: kvgate never calls setlocale(). */
#ifndef KVGATE_CORE_PROMPARSE_H
#define KVGATE_CORE_PROMPARSE_H

#include <stddef.h>
#include <stdint.h>

/* Labels in one sample; a line with more is malformed. 64, not 16: vLLM's
 * vllm:cache_config_info carries one label per CacheConfig field (about 35
 * in vLLM 0.11+), and it is the only source of num_gpu_blocks. */
#define PROM_MAX_LABELS 64
/* Longest line in bytes, without its '\n'; a longer one is malformed. */
#define PROM_MAX_LINE (64 * 1024)
/* Longest value token; a longer one is malformed. */
#define PROM_MAX_NUMBER 127

struct prom_str {
    const char *ptr; /* into the parsed buffer; not NUL-terminated */
    size_t len;
};

struct prom_label {
    struct prom_str name;
    struct prom_str value; /* raw: between the quotes, still escaped */
};

struct prom_sample {
    struct prom_str name;
    unsigned nlabels;
    struct prom_label labels[PROM_MAX_LABELS];
    double value;
    struct prom_str value_text; /* the value token as written */
    int has_timestamp;
    int64_t timestamp;          /* milliseconds since the epoch */
    uint32_t line;              /* 1-based line number, for diagnostics */
};

struct prom_stats {
    uint32_t lines;           /* non-blank lines, the unterminated tail included */
    uint32_t samples;         /* delivered to the callback */
    uint32_t comments;        /* HELP, TYPE and other '#' lines */
    uint32_t malformed;       /* skipped lines */
    uint32_t first_malformed; /* line number of the first one, 0 if none */
    uint32_t truncated;       /* 1: the page did not end in '\n'; its last
                               * line was not delivered */
};

/* Returns 0 to go on; any other value stops the parse, and prom_parse
 * returns it. */
typedef int (*prom_sample_fn)(void *ctx, const struct prom_sample *s);

/* Parses buf[0..len) and calls on_sample (which may be NULL) once per valid,
 * complete sample line, in page order. Returns 0, -EINVAL for a page that is
 * not Prometheus text (see above), or the callback's stop value. */
int prom_parse(const char *buf, size_t len, prom_sample_fn on_sample,
               void *ctx);

/* The same, filling *st (which may be NULL) even when it fails. */
int prom_parse_stats(const char *buf, size_t len, prom_sample_fn on_sample,
                     void *ctx, struct prom_stats *st);

/* 1 when the raw (escaped) label value reads as the C string s, else 0. */
int prom_label_eq(struct prom_str raw, const char *s);

/* Unescapes a raw label value into dst (always NUL-terminated when
 * dstsz > 0). Returns the unescaped length, -ENOSPC when it did not fit
 * (dst then holds the longest prefix that did, cut at a character, not
 * inside an escape), -EINVAL for an invalid escape (never the case for a
 * value prom_parse delivered). */
int prom_unescape(struct prom_str raw, char *dst, size_t dstsz);

/* The first label of s named name, or NULL. */
const struct prom_label *prom_find_label(const struct prom_sample *s,
                                         const char *name);

/* 1 when a (not NUL-terminated) equals the C string s. */
int prom_str_eq(struct prom_str a, const char *s);

#endif
