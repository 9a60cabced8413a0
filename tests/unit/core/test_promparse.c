/* Unit tests for user/core/promparse.c: a table of single lines (each one
 * parsed between two good lines, so a malformed case also shows that its
 * neighbours survive), then page-level behaviour and the helpers. */
#include "harness.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/promparse.h"

#define MAXS 8

/* What the callback saw, label values unescaped. */
struct got {
    int n;
    struct {
        char name[128];
        unsigned nlabels;
        char lname[2][64], lval[2][64]; /* first and last label */
        double value;
        int has_ts;
        int64_t ts;
        uint32_t line;
    } s[MAXS];
    const char *buf;
    size_t len;
    int out_of_buf; /* a pointer outside the parsed buffer */
};

static int in_buf(const struct got *g, struct prom_str x)
{
    return x.ptr >= g->buf && x.ptr + x.len <= g->buf + g->len;
}

static int collect(void *ctx, const struct prom_sample *ps)
{
    struct got *g = ctx;
    if (g->n >= MAXS)
        return 0;
    __typeof__(g->s[0]) *o = &g->s[g->n++];
    snprintf(o->name, sizeof(o->name), "%.*s", (int)ps->name.len,
             ps->name.ptr);
    o->nlabels = ps->nlabels;
    o->lname[0][0] = o->lname[1][0] = o->lval[0][0] = o->lval[1][0] = 0;
    if (ps->nlabels) {
        const struct prom_label *f = &ps->labels[0];
        const struct prom_label *l = &ps->labels[ps->nlabels - 1];
        snprintf(o->lname[0], 64, "%.*s", (int)f->name.len, f->name.ptr);
        snprintf(o->lname[1], 64, "%.*s", (int)l->name.len, l->name.ptr);
        prom_unescape(f->value, o->lval[0], 64);
        prom_unescape(l->value, o->lval[1], 64);
    }
    o->value = ps->value;
    o->has_ts = ps->has_timestamp;
    o->ts = ps->timestamp;
    o->line = ps->line;
    g->out_of_buf |= !in_buf(g, ps->name) || !in_buf(g, ps->value_text);
    for (unsigned i = 0; i < ps->nlabels; i++)
        g->out_of_buf |= !in_buf(g, ps->labels[i].name) ||
                         !in_buf(g, ps->labels[i].value);
    return 0;
}

static int parse(const char *page, size_t len, struct got *g,
                 struct prom_stats *st)
{
    memset(g, 0, sizeof(*g));
    g->buf = page;
    g->len = len;
    return prom_parse_stats(page, len, collect, g, st);
}

/* ---- the line table ---- */

#define BAD 0
#define OK 1
#define NOTS 0, 0

struct line_case {
    const char *what;
    const char *line; /* without '\n' */
    int ok;
    const char *name;
    unsigned nlabels;
    const char *l0, *v0;       /* first label (unescaped value) */
    const char *ln, *vn;       /* last label */
    double value;              /* NAN: expect NaN */
    int has_ts;
    int64_t ts;
};

static const struct line_case lines[] = {
    {"plain", "foo 1", OK, "foo", 0, "", "", "", "", 1, NOTS},
    {"colon name", "vllm:num_requests_waiting{engine=\"0\",model_name=\"m\"} 3.0",
     OK, "vllm:num_requests_waiting", 2, "engine", "0", "model_name", "m", 3,
     NOTS},
    {"leading colon", ":foo:bar 2", OK, ":foo:bar", 0, "", "", "", "", 2, NOTS},
    {"empty label set", "foo{} 2", OK, "foo", 0, "", "", "", "", 2, NOTS},
    {"trailing comma", "foo{a=\"b\",} 3", OK, "foo", 1, "a", "b", "a", "b", 3,
     NOTS},
    {"blanks everywhere", "foo { a = \"b\" , c=\"d\" , } 4", OK, "foo", 2, "a",
     "b", "c", "d", 4, NOTS},
    {"tabs", "foo\t5\t", OK, "foo", 0, "", "", "", "", 5, NOTS},
    {"leading blanks", "  \tfoo 6", OK, "foo", 0, "", "", "", "", 6, NOTS},
    {"escapes", "foo{a=\"x\\\\y\\\"z\\n\"} 1", OK, "foo", 1, "a",
     "x\\y\"z\n", "a", "x\\y\"z\n", 1, NOTS},
    {"syntax inside a value", "foo{a=\"}{,= #\",b=\"c\"} 1", OK, "foo", 2, "a",
     "}{,= #", "b", "c", 1, NOTS},
    {"empty value", "foo{a=\"\"} 1", OK, "foo", 1, "a", "", "a", "", 1, NOTS},
    {"utf-8 value", "foo{a=\"h\xc3\xa9llo\"} 1", OK, "foo", 1, "a",
     "h\xc3\xa9llo", "a", "h\xc3\xa9llo", 1, NOTS},
    {"no blank after }", "foo{a=\"b\"}8", OK, "foo", 1, "a", "b", "a", "b", 8,
     NOTS},
    {"label name chars", "_a1{_b2=\"v\",Z9_=\"w\"} 1", OK, "_a1", 2, "_b2", "v",
     "Z9_", "w", 1, NOTS},
    {"CRLF", "foo{a=\"b\"} 7\r", OK, "foo", 1, "a", "b", "a", "b", 7, NOTS},
    {"exp lower", "foo 1e-05", OK, "foo", 0, "", "", "", "", 1e-05, NOTS},
    {"exp python", "foo 1.234567e+06", OK, "foo", 0, "", "", "", "", 1234567,
     NOTS},
    {"exp upper neg", "foo -2.5E3", OK, "foo", 0, "", "", "", "", -2500, NOTS},
    {"leading dot", "foo .5", OK, "foo", 0, "", "", "", "", 0.5, NOTS},
    {"trailing dot", "foo 5.", OK, "foo", 0, "", "", "", "", 5, NOTS},
    {"plus sign", "foo +3", OK, "foo", 0, "", "", "", "", 3, NOTS},
    {"created stamp", "foo_created 1.7123456789e+09", OK, "foo_created", 0, "",
     "", "", "", 1712345678.9, NOTS},
    {"long mantissa", "foo 123456789012345678901234567890", OK, "foo", 0, "",
     "", "", "", 123456789012345678901234567890.0, NOTS},
    {"overflow is inf", "foo 1e400", OK, "foo", 0, "", "", "", "", INFINITY,
     NOTS},
    {"denormal", "foo 4.9e-324", OK, "foo", 0, "", "", "", "", 4.9e-324, NOTS},
    {"+Inf", "foo_bucket{le=\"+Inf\"} +Inf", OK, "foo_bucket", 1, "le", "+Inf",
     "le", "+Inf", INFINITY, NOTS},
    {"-Inf", "foo -Inf", OK, "foo", 0, "", "", "", "", -INFINITY, NOTS},
    {"Inf", "foo Inf", OK, "foo", 0, "", "", "", "", INFINITY, NOTS},
    {"infinity", "foo -infinity", OK, "foo", 0, "", "", "", "", -INFINITY,
     NOTS},
    {"NaN", "foo NaN", OK, "foo", 0, "", "", "", "", NAN, NOTS},
    {"nan", "foo nan", OK, "foo", 0, "", "", "", "", NAN, NOTS},
    {"timestamp", "foo 1 1712345678000", OK, "foo", 0, "", "", "", "", 1, 1,
     1712345678000},
    {"negative ts", "foo{a=\"b\"} 2 -5  ", OK, "foo", 1, "a", "b", "a", "b", 2,
     1, -5},
    {"ts int64 min", "foo 2 -9223372036854775808", OK, "foo", 0, "", "", "",
     "", 2, 1, INT64_MIN},

    {"no value", "foo", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"blank, no value", "foo  ", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"labels, no value", "foo{a=\"b\"}", BAD, NULL, 0, NULL, NULL, NULL, NULL,
     0, NOTS},
    {"digit first", "1foo 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"dash in name", "foo-bar 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"unclosed set", "foo{a=\"b\" 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0,
     NOTS},
    {"unterminated value", "foo{a=\"b} 1", BAD, NULL, 0, NULL, NULL, NULL,
     NULL, 0, NOTS},
    {"unquoted value", "foo{a=b} 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0,
     NOTS},
    {"lone comma", "foo{,} 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"double comma", "foo{a=\"b\",,} 1", BAD, NULL, 0, NULL, NULL, NULL, NULL,
     0, NOTS},
    {"missing comma", "foo{a=\"b\"c=\"d\"} 1", BAD, NULL, 0, NULL, NULL, NULL,
     NULL, 0, NOTS},
    {"digit label", "foo{1a=\"b\"} 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0,
     NOTS},
    {"colon label", "foo{a:b=\"c\"} 1", BAD, NULL, 0, NULL, NULL, NULL, NULL,
     0, NOTS},
    {"bad escape", "foo{a=\"\\t\"} 1", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0,
     NOTS},
    {"duplicate label", "foo{a=\"b\",a=\"c\"} 1", BAD, NULL, 0, NULL, NULL,
     NULL, NULL, 0, NOTS},
    {"word value", "foo abc", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"two dots", "foo 1.2.3", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"hex", "foo 0x10", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"signed nan", "foo +NaN", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"bare exponent", "foo 1e", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"lone dot", "foo .", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"infin", "foo infin", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"word ts", "foo 1 abc", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"float ts", "foo 1 1.5", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0, NOTS},
    {"extra token", "foo 1 2 3", BAD, NULL, 0, NULL, NULL, NULL, NULL, 0,
     NOTS},
    {"ts overflow", "foo 1 9223372036854775808", BAD, NULL, 0, NULL, NULL,
     NULL, NULL, 0, NOTS},
    {"html", "<html><body>502 Bad Gateway</body></html>", BAD, NULL, 0, NULL,
     NULL, NULL, NULL, 0, NOTS},
};

static int same_double(double a, double b)
{
    if (isnan(b))
        return isnan(a);
    return a == b;
}

TEST(line_table)
{
    char page[1024];
    struct got g;
    struct prom_stats st;

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        const struct line_case *c = &lines[i];
        int n = snprintf(page, sizeof(page), "before 1\n%s\nafter 2\n",
                         c->line);
        int rc = parse(page, (size_t)n, &g, &st);
        int ok = 1;

        ok &= rc == 0 && !g.out_of_buf;
        ok &= st.lines == 3 && st.malformed == (c->ok ? 0u : 1u);
        ok &= g.n == (c->ok ? 3 : 2);
        ok &= g.n >= 2 && strcmp(g.s[0].name, "before") == 0 &&
              strcmp(g.s[g.n - 1].name, "after") == 0 &&
              g.s[g.n - 1].value == 2 && g.s[g.n - 1].line == 3;
        if (ok && c->ok) {
            __typeof__(g.s[0]) *s = &g.s[1];
            ok &= strcmp(s->name, c->name) == 0;
            ok &= s->nlabels == c->nlabels;
            ok &= strcmp(s->lname[0], c->l0) == 0 &&
                  strcmp(s->lval[0], c->v0) == 0;
            ok &= strcmp(s->lname[1], c->ln) == 0 &&
                  strcmp(s->lval[1], c->vn) == 0;
            ok &= same_double(s->value, c->value);
            ok &= s->has_ts == c->has_ts && s->ts == c->ts;
            ok &= s->line == 2;
        }
        if (!ok)
            fprintf(stderr, "  case \"%s\": rc %d, %d samples, %u malformed\n",
                    c->what, rc, g.n, st.malformed);
        CHECK(ok);
    }
}

/* 64 labels parse; the 65th makes the line malformed. */
TEST(label_limit)
{
    char page[4096];
    struct got g;
    struct prom_stats st;

    for (int nl = PROM_MAX_LABELS; nl <= PROM_MAX_LABELS + 1; nl++) {
        int n = snprintf(page, sizeof(page), "ok 1\nmany{");
        for (int i = 0; i < nl; i++)
            n += snprintf(page + n, sizeof(page) - (size_t)n, "l%d=\"%d\",", i,
                          i);
        n += snprintf(page + n, sizeof(page) - (size_t)n, "} 5\nok 2\n");
        CHECK_EQ(parse(page, (size_t)n, &g, &st), 0);
        if (nl == PROM_MAX_LABELS) {
            CHECK_EQ(g.n, 3);
            CHECK_EQ(g.s[1].nlabels, PROM_MAX_LABELS);
            CHECK_STR(g.s[1].lname[1], "l63");
            CHECK_STR(g.s[1].lval[1], "63");
        } else {
            CHECK_EQ(g.n, 2);
            CHECK_EQ(st.malformed, 1);
        }
    }
}

/* A line over PROM_MAX_LINE, and a value token over PROM_MAX_NUMBER. */
TEST(length_limits)
{
    size_t big = PROM_MAX_LINE + 100;
    char *page = malloc(big + 64);
    struct got g;
    struct prom_stats st;
    int n;

    n = sprintf(page, "ok 1\nlong{a=\"");
    memset(page + n, 'x', big);
    n += (int)big;
    n += sprintf(page + n, "\"} 1\nok 2\n");
    CHECK_EQ(parse(page, (size_t)n, &g, &st), 0);
    CHECK_EQ(g.n, 2);
    CHECK_EQ(st.malformed, 1);
    CHECK_EQ(st.first_malformed, 2);

    /* just under the limit is fine */
    n = sprintf(page, "long{a=\"");
    size_t fill = PROM_MAX_LINE - (size_t)n - 5;
    memset(page + n, 'y', fill);
    n += (int)fill;
    n += sprintf(page + n, "\"} 3\n");
    CHECK_EQ(parse(page, (size_t)n, &g, &st), 0);
    CHECK_EQ(g.n, 1);

    n = sprintf(page, "ok 1\nnum 0.");
    memset(page + n, '1', PROM_MAX_NUMBER);
    n += PROM_MAX_NUMBER;
    n += sprintf(page + n, "\nok 2\n");
    CHECK_EQ(parse(page, (size_t)n, &g, &st), 0);
    CHECK_EQ(st.malformed, 1);

    /* the limit holds for tokens the fast path could take too (a fuzz
     * finding: 160 leading zeros were accepted) */
    n = sprintf(page, "ok 1\nnum ");
    memset(page + n, '0', PROM_MAX_NUMBER);
    n += PROM_MAX_NUMBER;
    n += sprintf(page + n, "5\nnum2 ");
    memset(page + n, '0', PROM_MAX_NUMBER - 1);
    n += PROM_MAX_NUMBER - 1;
    n += sprintf(page + n, "5\nok 2\n");
    CHECK_EQ(parse(page, (size_t)n, &g, &st), 0);
    CHECK_EQ(st.malformed, 1);
    CHECK_EQ(g.n, 3);
    CHECK_STR(g.s[1].name, "num2");
    CHECK_EQ(g.s[1].value, 5);
    free(page);
}

TEST(comments_and_blanks)
{
    static const char page[] =
        "# HELP vllm:num_requests_running Number of requests in model "
        "execution batches.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        "\n"
        "   \t\n"
        "#bare comment\n"
        "   # indented comment\n"
        "vllm:num_requests_running{engine=\"0\"} 4.0\n"
        "\r\n"
        "# EOF\n";
    struct got g;
    struct prom_stats st;

    CHECK_EQ(parse(page, sizeof(page) - 1, &g, &st), 0);
    CHECK_EQ(g.n, 1);
    CHECK_EQ(g.s[0].value, 4);
    CHECK_EQ(g.s[0].line, 7);
    CHECK_EQ(st.comments, 5);
    CHECK_EQ(st.lines, 6);
    CHECK_EQ(st.samples, 1);
    CHECK_EQ(st.malformed, 0);
    CHECK_EQ(st.truncated, 0);
}

TEST(truncated_tail)
{
    static const char page[] = "a 1\nb 2\nc 12";
    struct got g;
    struct prom_stats st;

    /* "c 12" may be "c 123" cut short: never delivered */
    CHECK_EQ(parse(page, sizeof(page) - 1, &g, &st), 0);
    CHECK_EQ(g.n, 2);
    CHECK_EQ(st.truncated, 1);
    CHECK_EQ(st.lines, 3);
    CHECK_EQ(st.malformed, 0);

    /* cut inside a label set: malformed and truncated, page still good */
    static const char page2[] = "a 1\nb 2\nc{model=\"x";
    CHECK_EQ(parse(page2, sizeof(page2) - 1, &g, &st), 0);
    CHECK_EQ(g.n, 2);
    CHECK_EQ(st.truncated, 1);
    CHECK_EQ(st.malformed, 1);

    /* a cut comment or trailing blanks */
    static const char page3[] = "a 1\n# HELP b Something";
    CHECK_EQ(parse(page3, sizeof(page3) - 1, &g, &st), 0);
    CHECK_EQ(g.n, 1);
    static const char page4[] = "a 1\n  ";
    CHECK_EQ(parse(page4, sizeof(page4) - 1, &g, &st), 0);
    CHECK_EQ(st.truncated, 0);
}

TEST(not_text)
{
    static const char nul[] = "a 1\nb\0 2\nc 3\n";
    static const char junk[] = "\x89PNG\r\n\x1a\nIHDR garbage\nmore junk\n";
    struct got g;
    struct prom_stats st;

    CHECK_EQ(parse(nul, sizeof(nul) - 1, &g, &st), -EINVAL);
    CHECK_EQ(g.n, 0); /* rejected before any callback */
    CHECK_EQ(parse(junk, sizeof(junk) - 1, &g, &st), -EINVAL);
    CHECK_EQ(prom_parse(NULL, 5, NULL, NULL), -EINVAL);
    CHECK_EQ(prom_parse(NULL, 0, NULL, NULL), 0);
    CHECK_EQ(prom_parse("", 0, NULL, NULL), 0);
}

/* More than half malformed fails the page; exactly half does not. */
TEST(malformed_ratio)
{
    static const char half[] = "a 1\nb 2\nbad\nworse x\n";
    static const char more[] = "a 1\nbad\nworse x\n";
    static const char json[] = "{\"error\": \"metrics disabled\"}";
    struct got g;
    struct prom_stats st;

    CHECK_EQ(parse(half, sizeof(half) - 1, &g, &st), 0);
    CHECK_EQ(st.malformed, 2);
    CHECK_EQ(st.first_malformed, 3);
    CHECK_EQ(parse(more, sizeof(more) - 1, &g, &st), -EINVAL);
    CHECK_EQ(st.malformed, 2);
    CHECK_EQ(parse(json, sizeof(json) - 1, &g, &st), -EINVAL);
}

static int stop_at_second(void *ctx, const struct prom_sample *s)
{
    int *n = ctx;
    return ++*n == 2 ? 42 : 0;
}

TEST(callback_stops)
{
    static const char page[] = "a 1\nb 2\nc 3\n";
    int n = 0;
    CHECK_EQ(prom_parse(page, sizeof(page) - 1, stop_at_second, &n), 42);
    CHECK_EQ(n, 2);
    CHECK_EQ(prom_parse(page, sizeof(page) - 1, NULL, NULL), 0);
}

TEST(label_eq)
{
    struct prom_str r = {"a\\\\b\\\"c\\nd", 10};
    CHECK(prom_label_eq(r, "a\\b\"c\nd"));
    CHECK(!prom_label_eq(r, "a\\b\"c\nde"));
    CHECK(!prom_label_eq(r, "a\\b\"c\n"));
    CHECK(!prom_label_eq(r, ""));
    struct prom_str e = {"", 0};
    CHECK(prom_label_eq(e, ""));
    CHECK(!prom_label_eq(e, "x"));
    struct prom_str bad = {"a\\", 2};
    CHECK(!prom_label_eq(bad, "a\\"));
    struct prom_str plain = {"meta-llama/Llama-3.1-8B-Instruct", 32};
    CHECK(prom_label_eq(plain, "meta-llama/Llama-3.1-8B-Instruct"));
    CHECK(!prom_label_eq(plain, "meta-llama/Llama-3.1-8B"));
}

TEST(unescape)
{
    char buf[8];
    struct prom_str r = {"x\\ny\\\"", 6}; /* x \n y " */
    CHECK_EQ(prom_unescape(r, buf, sizeof(buf)), 4);
    CHECK_STR(buf, "x\ny\"");
    CHECK_EQ(prom_unescape(r, buf, 5), 4); /* exact fit */
    CHECK_EQ(prom_unescape(r, buf, 4), -ENOSPC);
    CHECK_STR(buf, "x\ny");
    CHECK_EQ(prom_unescape(r, buf, 1), -ENOSPC);
    CHECK_STR(buf, "");
    CHECK_EQ(prom_unescape(r, buf, 0), -ENOSPC);
    struct prom_str bad = {"ab\\t", 4};
    CHECK_EQ(prom_unescape(bad, buf, sizeof(buf)), -EINVAL);
    CHECK_STR(buf, "ab");
    struct prom_str e = {"", 0};
    CHECK_EQ(prom_unescape(e, buf, 0), 0);
}

struct found {
    int engine, model, missing;
};

static int find_cb(void *ctx, const struct prom_sample *s)
{
    struct found *f = ctx;
    const struct prom_label *l = prom_find_label(s, "model_name");
    f->model = l && prom_label_eq(l->value, "llama");
    l = prom_find_label(s, "engine");
    f->engine = l && prom_str_eq(l->value, "0");
    f->missing = prom_find_label(s, "model") == NULL &&
                 prom_find_label(s, "model_name_x") == NULL;
    return 0;
}

TEST(find_label)
{
    static const char page[] = "m{engine=\"0\",model_name=\"llama\"} 1\n";
    struct found f = {0, 0, 0};
    CHECK_EQ(prom_parse(page, sizeof(page) - 1, find_cb, &f), 0);
    CHECK(f.engine && f.model && f.missing);
}

/* The exact fast path must give strtod's double for every decimal it
 * takes, and the slow path for the rest: random values in many formats. */
static int value_of(const char *tok, double *v)
{
    char page[160];
    struct got g;
    int n = snprintf(page, sizeof(page), "x %s\n", tok);
    if (parse(page, (size_t)n, &g, NULL) || g.n != 1)
        return -1;
    *v = g.s[0].value;
    return 0;
}

TEST(numbers_match_strtod)
{
    static const char *fmts[] = {"%.17g", "%.15g", "%.6g", "%.3e", "%.10f",
                                 "%.1f", "%.0f", "%.16e", "%g"};
    unsigned seed = 12345;
    int bad = 0;

    for (int i = 0; i < 200000; i++) {
        char tok[64];
        double x, got;
        seed = seed * 1103515245u + 12345u;
        int e = (int)((seed >> 8) % 80) - 40;
        seed = seed * 1103515245u + 12345u;
        x = (double)(seed >> 4) / (double)(1u << 28) * pow(10, e);
        if (i & 1)
            x = -x;
        snprintf(tok, sizeof(tok), fmts[i % 9], x);
        if (value_of(tok, &got) || got != strtod(tok, NULL)) {
            if (bad++ < 5)
                fprintf(stderr, "  %s -> %.17g, strtod %.17g\n", tok, got,
                        strtod(tok, NULL));
        }
    }
    CHECK_EQ(bad, 0);

    /* a few by hand, around the fast path's edges */
    static const char *edge[] = {
        "999999999999999", "9999999999999999", "1e22", "1e23", "1e-22",
        "1e-23", "0.000000000000000000000000001", "123456789012345e22",
        "0.1", "0.3", "2.2250738585072011e-308", "1.7976931348623157e308",
        "000000000000000000000000001", "-0", "0e999999999",
    };
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        double got;
        CHECK(value_of(edge[i], &got) == 0 &&
              memcmp(&got, &(double){strtod(edge[i], NULL)}, sizeof(got)) == 0);
    }
}

int main(void)
{
    RUN(line_table);
    RUN(label_limit);
    RUN(length_limits);
    RUN(comments_and_blanks);
    RUN(truncated_tail);
    RUN(not_text);
    RUN(malformed_ratio);
    RUN(callback_stops);
    RUN(label_eq);
    RUN(unescape);
    RUN(find_label);
    RUN(numbers_match_strtod);
    return harness_done();
}
