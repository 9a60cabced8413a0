/* Unit tests for user/gateway/gwmetrics.c: kvgated's own metrics page, and
 * what goes into its labels (issue 9): local resource errors counted apart
 * from pods. */
#include "gateway/gwmetrics.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "core/podtable.h"
#include "gateway/gateway.h"
#include "harness.h"

/* The rendered page as a NUL-terminated heap string (caller frees). */
static char *render(struct gw_metrics *m, const struct pod_snapshot *s)
{
    static struct pod_counters c;
    struct sbuf b;
    sbuf_init(&b);
    gw_metrics_render(m, s, &c, 1000000000ull, &b);
    sbuf_append(&b, "", 1);
    char *t = strdup(b.data ? b.data : "");
    sbuf_free(&b);
    return t;
}

/* Value of the sample "series value" (series exactly as rendered), or -1. */
static double sample(const char *page, const char *series)
{
    size_t n = strlen(series);
    for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, series, n) && l[n] == ' ')
            return strtod(l + n + 1, NULL);
    return -1;
}

TEST(local_errors_by_where_and_errno)
{
    struct gw_metrics *m = gw_metrics_new();
    gw_metrics_local_error(m, "scrape", -EMFILE);
    gw_metrics_local_error(m, "scrape", EMFILE);
    gw_metrics_local_error(m, "health", -EADDRNOTAVAIL);
    char *p = render(m, NULL);
    CHECK(strstr(p, "# TYPE kvgate_local_errors_total counter") != NULL);
    CHECK_NEAR(sample(p, "kvgate_local_errors_total{where=\"scrape\",errno=\"EMFILE\"}"), 2, 0);
    CHECK_NEAR(sample(p, "kvgate_local_errors_total{where=\"health\",errno=\"EADDRNOTAVAIL\"}"),
               1, 0);
    free(p);
    gw_metrics_free(m);
}

TEST(local_errno_classes)
{
    CHECK(gw_errno_is_local(-EMFILE));
    CHECK(gw_errno_is_local(ENFILE));
    CHECK(gw_errno_is_local(-EADDRNOTAVAIL));
    CHECK(gw_errno_is_local(-ENOBUFS));
    CHECK(!gw_errno_is_local(-ECONNREFUSED));
    CHECK(!gw_errno_is_local(-ETIMEDOUT));
    CHECK(!gw_errno_is_local(-ECONNRESET));
    CHECK(!gw_errno_is_local(-EHOSTUNREACH));
}

int main(void)
{
    RUN(local_errors_by_where_and_errno);
    RUN(local_errno_classes);
    return harness_done();
}
