/* Unit tests for user/common/promtext.c: numbers as prometheus_client
 * prints them, histogram bucketing, and the text writers podsim and
 * kvgated compose their /metrics pages from (family head, labels, sample
 * values, histograms); a page written with them is checked by promtool
 * when it is installed. */
#include "common/promtext.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/sbuf.h"
#include "harness.h"

/* The text written so far, NUL-terminated (b keeps ownership). */
static const char *text(struct sbuf *b)
{
    sbuf_append(b, "", 1);
    b->len--;
    return b->data ? b->data : "";
}

/* ---- number formatting ---- */

TEST(numbers_like_prometheus_client)
{
    static const struct {
        double v;
        const char *want;
    } cases[] = {
        {0.0, "0.0"},          {3.0, "3.0"},
        {0.001, "0.001"},      {0.25, "0.25"},
        {1.0, "1.0"},          {10.0, "10.0"},
        {2560.0, "2560.0"},    {7680.0, "7680.0"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e-5, "1e-05"},       {0.0001, "0.0001"},
        {123456.0, "123456.0"}, {999999.5, "999999.5"},
        {1234567.0, "1.234567e+06"}, {1000000.0, "1e+06"},
        {1712345678.5, "1.7123456785e+09"},
        /* Python's "e+0" + str(n) quirk once the exponent has two digits */
        {12345678901.0, "1.2345678901e+010"},
        {1e16, "1e+16"},       {1.5e300, "1.5e+300"},
        {-2.5, "-2.5"},        {-1234567.0, "-1234567.0"},
        {INFINITY, "+Inf"},    {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    char buf[PROM_NUM_MAX];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        prom_fmt_num(buf, cases[i].v);
        CHECK_STR(buf, cases[i].want);
    }
}

/* ---- histograms ---- */

TEST(hist_bucket_edges)
{
    struct hist h;
    hist_init(&h, VLLM_TTFT_BUCKETS, VLLM_TTFT_NBUCKETS);
    CHECK_EQ(h.nbounds, 22);
    CHECK_EQ(VLLM_ITL_NBUCKETS, 19);
    CHECK_EQ(VLLM_E2E_NBUCKETS, 21);

    hist_observe(&h, 0.001);   /* equal to the first bound: bucket 0 */
    hist_observe(&h, 0.0);     /* bucket 0 */
    hist_observe(&h, -1.0);    /* below everything: bucket 0 */
    hist_observe(&h, 0.0011);  /* just above: bucket 1 (0.005) */
    hist_observe(&h, 1.0);     /* equal to 1.0: bucket 11 */
    hist_observe(&h, 2560.0);  /* the last bound: bucket 21 */
    hist_observe(&h, 2560.01); /* +Inf: bucket 22 */
    hist_observe(&h, NAN);     /* ignored */
    CHECK_EQ(h.counts[0], 3);
    CHECK_EQ(h.counts[1], 1);
    CHECK_EQ(h.counts[11], 1);
    CHECK_EQ(h.counts[21], 1);
    CHECK_EQ(h.counts[22], 1);
    CHECK_EQ(h.count, 7);
    CHECK_NEAR(h.sum, 0.001 + 0.0 - 1.0 + 0.0011 + 1.0 + 2560.0 + 2560.01,
               1e-9);

    /* every bound lands in its own bucket */
    struct hist e;
    hist_init(&e, VLLM_E2E_BUCKETS, VLLM_E2E_NBUCKETS);
    for (int i = 0; i < VLLM_E2E_NBUCKETS; i++)
        hist_observe(&e, VLLM_E2E_BUCKETS[i]);
    for (int i = 0; i < VLLM_E2E_NBUCKETS; i++)
        CHECK_EQ(e.counts[i], 1);
    CHECK_EQ(e.counts[VLLM_E2E_NBUCKETS], 0);
}

/* ---- writers ---- */

TEST(family_head)
{
    struct sbuf b;
    sbuf_init(&b);
    prom_head(&b, "kvgate_x_total", "counter", "Things, by kind.");
    CHECK_STR(text(&b), "# HELP kvgate_x_total Things, by kind.\n"
                        "# TYPE kvgate_x_total counter\n");
    sbuf_free(&b);
}

TEST(labels_and_values)
{
    struct sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "x{");
    prom_label(&b, "a", "plain", 1);
    prom_label(&b, "b", "q\"b\\s\nn", 0);
    sbuf_puts(&b, "}");
    prom_value(&b, 2.0);
    sbuf_puts(&b, "y");
    prom_value(&b, 1234567.0);
    sbuf_puts(&b, "z");
    prom_value(&b, INFINITY);
    CHECK_STR(text(&b), "x{a=\"plain\",b=\"q\\\"b\\\\s\\nn\"} 2.0\n"
                        "y 1.234567e+06\n"
                        "z +Inf\n");
    sbuf_free(&b);
}

TEST(histogram_writer)
{
    static const double bounds[] = {0.1, 1.0};
    struct hist h;
    hist_init(&h, bounds, 2);
    hist_observe(&h, 0.05);
    hist_observe(&h, 0.5);
    hist_observe(&h, 0.5);
    hist_observe(&h, 7.0);
    struct sbuf b;
    sbuf_init(&b);
    prom_hist(&b, "lat", "", &h);
    CHECK_STR(text(&b), "lat_bucket{le=\"0.1\"} 1.0\n"
                        "lat_bucket{le=\"1.0\"} 3.0\n"
                        "lat_bucket{le=\"+Inf\"} 4.0\n"
                        "lat_count 4.0\n"
                        "lat_sum 8.05\n");
    sbuf_reset(&b);
    prom_hist(&b, "lat", "m=\"a\",t=\"b\"", &h);
    CHECK_STR(text(&b), "lat_bucket{m=\"a\",t=\"b\",le=\"0.1\"} 1.0\n"
                        "lat_bucket{m=\"a\",t=\"b\",le=\"1.0\"} 3.0\n"
                        "lat_bucket{m=\"a\",t=\"b\",le=\"+Inf\"} 4.0\n"
                        "lat_count{m=\"a\",t=\"b\"} 4.0\n"
                        "lat_sum{m=\"a\",t=\"b\"} 8.05\n");
    /* never initialised: only the +Inf bucket, whatever the garbage */
    struct hist z;
    memset(&z, 0, sizeof(z));
    z.nbounds = 99;
    sbuf_reset(&b);
    prom_hist(&b, "z", "", &z);
    CHECK_STR(text(&b), "z_bucket{le=\"+Inf\"} 0.0\nz_count 0.0\nz_sum 0.0\n");
    /* _count is the +Inf bucket even when count disagrees (it cannot,
     * through hist_observe: the page never shows two totals) */
    h.count = 99;
    sbuf_reset(&b);
    prom_hist(&b, "lat", "", &h);
    CHECK(strstr(text(&b), "lat_count 4.0\n") != NULL);
    sbuf_free(&b);
}

/* A page written only with the writers passes promtool: exit 0, or 3 for
 * lint findings, none of them but the colon in a name. */
TEST(promtool_parses_writers_page)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        printf("  promtool not installed: promtool check skipped\n");
        return;
    }
    static const double bounds[] = {0.001, 0.01, 1.0};
    struct hist h;
    hist_init(&h, bounds, 3);
    hist_observe(&h, 0.002);
    hist_observe(&h, 3.0);
    struct sbuf b;
    sbuf_init(&b);
    prom_head(&b, "kvgate_things_total", "counter", "Things seen, by kind.");
    sbuf_puts(&b, "kvgate_things_total{");
    prom_label(&b, "kind", "a \"quoted\" \\ one\nline", 1);
    prom_label(&b, "pod", "10.0.0.5:8000", 0);
    sbuf_puts(&b, "}");
    prom_value(&b, 12.0);
    prom_head(&b, "kvgate_level", "gauge", "A level.");
    sbuf_puts(&b, "kvgate_level");
    prom_value(&b, 0.25);
    prom_head(&b, "kvgate_wait_seconds", "histogram", "Waits.");
    prom_hist(&b, "kvgate_wait_seconds", "", &h);
    prom_head(&b, "kvgate_lat_seconds", "histogram", "Latency, by model.");
    prom_hist(&b, "kvgate_lat_seconds", "model=\"m\"", &h);
    prom_hist(&b, "kvgate_lat_seconds", "model=\"n\"", &h);
    CHECK(!b.oom);

    char path[] = "/tmp/test_promtext_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) {
        sbuf_free(&b);
        return;
    }
    CHECK_EQ(write(fd, b.data, b.len), (long long)b.len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    char line[512];
    int other = 0;
    while (f && fgets(line, sizeof(line), f)) {
        other++;
        fprintf(stderr, "  promtool: %s", line);
    }
    int st = f ? pclose(f) : -1;
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_EQ(other, 0);
    unlink(path);
    sbuf_free(&b);
}

int main(void)
{
    RUN(numbers_like_prometheus_client);
    RUN(hist_bucket_edges);
    RUN(family_head);
    RUN(labels_and_values);
    RUN(histogram_writer);
    RUN(promtool_parses_writers_page);
    return harness_done();
}
