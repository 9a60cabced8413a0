/* Unit tests for user/core/jstr.c: a JSON string's raw bytes decoded in
 * pieces: every escape, surrogate pairs, any split point giving the same
 * text, and each malformed string failing for good. */
#include "harness.h"
#include "core/jstr.h"

#include <string.h>

struct out {
    char buf[512];
    size_t len;
    int calls, stop_after;
};

static int collect(void *ctx, const char *p, size_t n)
{
    struct out *o = ctx;
    if (o->len + n > sizeof(o->buf))
        return -1;
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return o->stop_after && ++o->calls >= o->stop_after ? -1 : 0;
}

/* Decodes raw in pieces of `piece` bytes; 0 ok (done), -1 failed. */
static int decode(const char *raw, size_t n, size_t piece, struct out *o)
{
    struct jstr j;
    jstr_init(&j);
    memset(o, 0, sizeof(*o));
    for (size_t i = 0; i < n; i += piece) {
        size_t k = n - i < piece ? n - i : piece;
        if (jstr_feed(&j, raw + i, k, collect, o) < 0)
            return -1;
    }
    return j.done ? 0 : 1;
}

TEST(escapes_and_pairs_decode_at_any_split)
{
    static const char raw[] = "\"a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti \\u0041\\u00e9\\u20ac"
                              "\\ud83d\\ude00 z\xc3\xa9\"";
    static const char want[] = "a\"b\\c/d\be\ff\ng\rh\ti A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 z\xc3\xa9";
    for (size_t piece = 1; piece <= sizeof(raw); piece++) {
        struct out o;
        CHECK_EQ(decode(raw, strlen(raw), piece, &o), 0);
        CHECK_EQ(o.len, strlen(want));
        CHECK(memcmp(o.buf, want, o.len) == 0);
    }
    /* \u0000 is a NUL byte in the text */
    struct out o;
    CHECK_EQ(decode("\"x\\u0000y\"", 10, 3, &o), 0);
    CHECK_EQ(o.len, 3);
    CHECK(o.buf[1] == '\0');
    /* the empty string, and a string not finished yet */
    CHECK_EQ(decode("\"\"", 2, 1, &o), 0);
    CHECK_EQ(o.len, 0);
    CHECK_EQ(decode("\"abc", 4, 2, &o), 1);
    CHECK_EQ(o.len, 3);
}

TEST(malformed_strings_fail_for_good)
{
    static const char *const bad[] = {
        "abc\"",             /* no opening quote */
        "\"a\\x\"",          /* unknown escape */
        "\"\\u12g4\"",       /* bad hex digit */
        "\"\\ud83d x\"",     /* high surrogate alone */
        "\"\\ud83d\\u0041\"",/* high surrogate, then not a low one */
        "\"\\ude00\"",       /* low surrogate first */
        "\"a\nb\"",          /* a control byte */
        "\"a\" ",            /* bytes after the closing quote */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct out o;
        CHECK_EQ(decode(bad[i], strlen(bad[i]), 1, &o), -1);
        struct jstr j;
        jstr_init(&j);
        jstr_feed(&j, bad[i], strlen(bad[i]), collect, &o);
        CHECK(j.failed);
        CHECK_EQ(jstr_feed(&j, "\"", 1, collect, &o), -1); /* sticky */
    }
    /* the receiver saying stop fails the decoder too */
    struct out o;
    memset(&o, 0, sizeof(o));
    o.stop_after = 1;
    struct jstr j;
    jstr_init(&j);
    CHECK_EQ(jstr_feed(&j, "\"abc", 4, collect, &o), -1);
    CHECK(j.failed);
}

int main(void)
{
    RUN(escapes_and_pairs_decode_at_any_split);
    RUN(malformed_strings_fail_for_good);
    return harness_done();
}
