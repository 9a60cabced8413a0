/* promtext: shared Prometheus text pieces. See promtext.h. */
#include "common/promtext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"

/* ---- vLLM's bucket bounds (vllm/v1/metrics/loggers.py) ---- */

const double VLLM_TTFT_BUCKETS[] = {
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
};
const int VLLM_TTFT_NBUCKETS =
    (int)(sizeof(VLLM_TTFT_BUCKETS) / sizeof(VLLM_TTFT_BUCKETS[0]));

const double VLLM_ITL_BUCKETS[] = {
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
    0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
};
const int VLLM_ITL_NBUCKETS =
    (int)(sizeof(VLLM_ITL_BUCKETS) / sizeof(VLLM_ITL_BUCKETS[0]));

/* also vllm:request_queue_time_seconds' bounds */
const double VLLM_E2E_BUCKETS[] = {
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
};
const int VLLM_E2E_NBUCKETS =
    (int)(sizeof(VLLM_E2E_BUCKETS) / sizeof(VLLM_E2E_BUCKETS[0]));

_Static_assert(sizeof(VLLM_TTFT_BUCKETS) / sizeof(double) <= HIST_MAX_BUCKETS,
               "TTFT bounds exceed HIST_MAX_BUCKETS");
_Static_assert(sizeof(VLLM_ITL_BUCKETS) / sizeof(double) <= HIST_MAX_BUCKETS,
               "ITL bounds exceed HIST_MAX_BUCKETS");
_Static_assert(sizeof(VLLM_E2E_BUCKETS) / sizeof(double) <= HIST_MAX_BUCKETS,
               "E2E bounds exceed HIST_MAX_BUCKETS");

/* ---- histograms ---- */

void hist_init(struct hist *h, const double *bounds, int nbounds)
{
    memset(h, 0, sizeof(*h));
    if (nbounds < 0 || !bounds)
        nbounds = 0;
    if (nbounds > HIST_MAX_BUCKETS)
        nbounds = HIST_MAX_BUCKETS; /* the tail folds into +Inf */
    h->bounds = bounds;
    h->nbounds = nbounds;
}

/* First bucket whose bound is >= v (Prometheus' le semantics); nbounds is
 * the +Inf bucket. A NaN is not observed at all: it has no bucket, and
 * would poison _sum for the life of the process. */
void hist_observe(struct hist *h, double v)
{
    if (isnan(v))
        return;
    int lo = 0, hi = h->nbounds;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    h->counts[lo]++;
    h->count++;
    h->sum += v;
}

/* ---- number formatting ---- */


/* Python's repr(v) for a finite double: the shortest decimal that reads back
 * as v, in fixed notation when its exponent is in [-4, 16), else as
 * d[.ddd]e[+-]XX. */
static void py_repr(char *buf, double v)
{
    char e[PROM_NUM_MAX];
    /* Integers below 1e16 (most samples: counts) print exactly as "N.0". */
    if (v == trunc(v) && fabs(v) < 1e16) {
        snprintf(buf, PROM_NUM_MAX, "%.0f.0", v);
        return;
    }
    /* Fewest significant digits that round-trip. The correctly rounded
     * p-digit decimal is the closest p-digit one, so if any p-digit string
     * round-trips this one does, and so does every longer one: bisect. */
    int lo = 1, hi = 17;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        snprintf(e, sizeof(e), "%.*e", mid - 1, v);
        if (strtod(e, NULL) == v)
            hi = mid;
        else
            lo = mid + 1;
    }
    snprintf(e, sizeof(e), "%.*e", lo - 1, v);

    /* e = [-]d[.ddd]e[+-]XX: split into sign, digits, exponent */
    const char *s = e;
    char *o = buf;
    if (*s == '-')
        *o++ = *s++;
    char dig[20];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            dig[nd++] = *s;
    while (nd > 1 && dig[nd - 1] == '0') /* "1e+00" has no zeros; be safe */
        nd--;
    int exp = atoi(s + 1);

    if (exp >= -4 && exp < 16) {
        if (exp < 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -exp - 1; i++)
                *o++ = '0';
            memcpy(o, dig, nd);
            o += nd;
        } else {
            for (int i = 0; i <= exp; i++)
                *o++ = i < nd ? dig[i] : '0';
            *o++ = '.';
            if (nd > exp + 1) {
                memcpy(o, dig + exp + 1, nd - exp - 1);
                o += nd - exp - 1;
            } else {
                *o++ = '0';
            }
        }
        *o = '\0';
    } else {
        *o++ = dig[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, nd - 1);
            o += nd - 1;
        }
        sprintf(o, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
    }
}

/* prometheus_client's floatToGoString(v), used for sample values and le. */
void prom_fmt_num(char *buf, double v)
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return;
    }
    if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    py_repr(buf, v);
    const char *dot = strchr(buf, '.');
    int pos = dot ? (int)(dot - buf) : -1;
    if (v > 0 && pos > 6 && !strchr(buf, 'e')) {
        /* "1234567.5" -> "1.2345675e+06": Python writes the exponent as
         * "e+0" followed by the digit count - 1, whatever its width. */
        char m[PROM_NUM_MAX];
        int n = 0;
        m[n++] = buf[0];
        m[n++] = '.';
        for (const char *c = buf + 1; *c; c++)
            if (*c != '.')
                m[n++] = *c;
        while (n > 0 && (m[n - 1] == '0' || m[n - 1] == '.'))
            n--;
        m[n] = '\0';
        /* pos <= 17 here (repr switches to an exponent at 1e16) */
        snprintf(buf, PROM_NUM_MAX, "%.24se+0%u", m, (unsigned)(pos - 1) % 100u);
    }
}

/* Label value escaping of the text format: \ " and newline. */
void prom_label_value(struct sbuf *out, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *esc = NULL;
        if (*s == '\\')
            esc = "\\\\";
        else if (*s == '"')
            esc = "\\\"";
        else if (*s == '\n')
            esc = "\\n";
        if (!esc)
            continue;
        sbuf_append(out, run, (size_t)(s - run));
        sbuf_puts(out, esc);
        run = s + 1;
    }
    sbuf_append(out, run, (size_t)(s - run));
}


/* ---- writers ---- */

void prom_head(struct sbuf *out, const char *name, const char *type, const char *help)
{
    sbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void prom_label(struct sbuf *out, const char *key, const char *value, int first)
{
    sbuf_printf(out, "%s%s=\"", first ? "" : ",", key);
    prom_label_value(out, value);
    sbuf_puts(out, "\"");
}

void prom_value(struct sbuf *out, double v)
{
    char num[PROM_NUM_MAX];
    prom_fmt_num(num, v);
    sbuf_printf(out, " %s\n", num);
}

void prom_hist(struct sbuf *out, const char *name, const char *labels, const struct hist *h)
{
    char le[PROM_NUM_MAX];
    const char *sep = labels[0] ? "," : "";
    uint64_t acc = 0;
    int nb = h->nbounds;
    if (nb < 0 || nb > HIST_MAX_BUCKETS || !h->bounds)
        nb = 0; /* never initialised: only +Inf */
    for (int i = 0; i <= nb; i++) {
        acc += h->counts[i];
        if (i < nb)
            prom_fmt_num(le, h->bounds[i]);
        else
            strcpy(le, "+Inf");
        sbuf_printf(out, "%s_bucket{%s%sle=\"%s\"}", name, labels, sep, le);
        prom_value(out, (double)acc);
    }
    if (labels[0])
        sbuf_printf(out, "%s_count{%s}", name, labels);
    else
        sbuf_printf(out, "%s_count", name);
    prom_value(out, (double)acc);
    if (labels[0])
        sbuf_printf(out, "%s_sum{%s}", name, labels);
    else
        sbuf_printf(out, "%s_sum", name);
    prom_value(out, h->sum);
}
